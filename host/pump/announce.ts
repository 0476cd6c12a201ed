// Announce while ready (docs/fleet.md): a fleet of pumps shares one frontend address,
// announced by a BGP daemon on each instance's host and spread over by the routers' ECMP.
// The pump holds that address on a dummy interface only while it can forward; the BGP
// daemon (BIRD's `protocol direct`, FRR's `redistribute connected`) announces what the
// interface holds. So the route follows the pump's readiness without the pump speaking
// BGP:
//
//   ready      listeners bound, the configuration applied, and every listener's frontend
//              has at least one healthy appliance (a rule of it whose pool has one up)
//   announce   `ip address replace ADDRESS dev INTERFACE` for every address
//   withdraw   `ip address del …` when it stops being ready, on a reload that leaves a
//              listener unbound, and on SIGTERM (then `withdrawSeconds` before the pump
//              stops forwarding, so that routers move the flows first)
//
// A process killed with SIGKILL cannot withdraw: run it under a supervisor that flushes
// the interface when it exits (systemd: ExecStopPost=ip address flush dev INTERFACE), and
// let BFD cover a host that dies whole. At start the pump removes its addresses first, in
// case a previous process left them.

import { execFile } from 'node:child_process';
import { isIP } from 'node:net';
import type { Described } from '../lib/core.js';
import type { LogFn } from './probes.js';

export interface AnnounceSettings {
  /** The interface that holds the addresses (created as a dummy interface when missing; "lo" works everywhere). */
  interface: string;
  /** ADDRESS/PREFIX, usually a /32 or /128. */
  addresses: string[];
  /** On SIGTERM: seconds between the withdrawal and the end of forwarding. */
  withdrawSeconds: number;
}

const ANNOUNCE_FIELDS = ['interface', 'addresses', 'withdrawSeconds'];

/** Reads pump.announce (absent: null); errors as `path: reason`. */
export function readAnnounce(a: unknown, errors: string[]): AnnounceSettings | null {
  if (a === undefined) return null;
  const at = 'pump.announce';
  if (typeof a !== 'object' || a === null || Array.isArray(a)) { errors.push(`${at}: must be an object`); return null; }
  const o = a as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!ANNOUNCE_FIELDS.includes(k)) errors.push(`${at}.${k}: unknown field`);
  const before = errors.length;
  // Linux interface names: 1-15 characters, no '/', no whitespace.
  if (typeof o.interface !== 'string' || !/^[A-Za-z0-9_.:-]{1,15}$/.test(o.interface)) {
    errors.push(`${at}.interface: required, a Linux interface name (1-15 letters, digits, "_", ".", ":" or "-")`);
  }
  if (!Array.isArray(o.addresses) || o.addresses.length === 0) {
    errors.push(`${at}.addresses: required, a non-empty array of "ADDRESS/PREFIX" (the frontend addresses to announce)`);
  } else {
    o.addresses.forEach((x, i) => {
      const m = typeof x === 'string' ? /^([^/]+)\/(\d{1,3})$/.exec(x) : null;
      const family = m ? isIP(m[1]) : 0;
      if (!m || family === 0 || Number(m[2]) > (family === 4 ? 32 : 128)) {
        errors.push(`${at}.addresses[${i}]: ${JSON.stringify(x)} is not ADDRESS/PREFIX (e.g. "10.250.0.1/32")`);
      }
    });
  }
  let withdrawSeconds = 1;
  if (o.withdrawSeconds !== undefined) {
    if (typeof o.withdrawSeconds !== 'number' || !(o.withdrawSeconds >= 0 && o.withdrawSeconds <= 300)) {
      errors.push(`${at}.withdrawSeconds: must be a number of seconds, 0-300`);
    } else withdrawSeconds = o.withdrawSeconds;
  }
  if (errors.length > before) return null;
  return { interface: o.interface as string, addresses: [...(o.addresses as string[])], withdrawSeconds };
}

/**
 * Whether the configuration can forward with these backend states: every listener's
 * frontend has a rule whose pool has a backend up. Returns the reasons it cannot ([]: ready).
 */
export function notReadyReasons(d: Described, frontends: string[], state: (b: number) => string): string[] {
  const reasons: string[] = [];
  for (const name of new Set(frontends)) {
    const fe = d.frontends.findIndex((f) => f.name === name);
    const pools = new Set(d.rules.filter((r) => r.frontend === fe).map((r) => r.backendPool));
    const up = [...pools].some((p) => d.backendPools[p].backends.some((b) => state(b) === 'up'));
    if (!up) reasons.push(`frontend ${JSON.stringify(name)}: no healthy appliance`);
  }
  return reasons;
}

type Run = (args: string[]) => Promise<{ ok: boolean; stderr: string }>;

const runIp: Run = (args) => new Promise((resolve) => {
  execFile('ip', args, { timeout: 5000 }, (e, _out, stderr) => resolve({ ok: !e, stderr: String(stderr || e?.message || '').trim() }));
});

/**
 * Holds the announced addresses on the interface while the pump is ready. Changes run one
 * at a time, in order; `set(true)` twice does nothing the second time.
 */
export class Announcer {
  private announced: boolean | null = null;
  private chain: Promise<void> = Promise.resolve();
  /** Announcements and withdrawals done (for the metrics). */
  changes = 0;

  constructor(readonly settings: AnnounceSettings, private readonly log: LogFn, private readonly run: Run = runIp) {}

  get isAnnounced(): boolean { return this.announced === true; }

  /** Creates the interface if missing and removes addresses a previous process left. */
  prepare(): Promise<void> {
    return this.enqueue(async () => {
      const dev = this.settings.interface;
      const show = await this.run(['link', 'show', 'dev', dev]);
      if (!show.ok) {
        const add = await this.run(['link', 'add', dev, 'type', 'dummy']);
        if (!add.ok) {
          throw new Error(`cannot create dummy interface ${dev}: ${add.stderr}`
            + (/Unknown device type/.test(add.stderr) ? ' (this kernel has no dummy interfaces: name an existing one, such as "lo")' : ''));
        }
        this.log('info', 'announce: created the interface', { interface: dev, type: 'dummy' });
      }
      const up = await this.run(['link', 'set', 'dev', dev, 'up']);
      if (!up.ok) throw new Error(`cannot set ${dev} up: ${up.stderr}`);
      for (const a of this.settings.addresses) await this.run(['address', 'del', a, 'dev', dev]);
      this.announced = false;
    });
  }

  /** Announces (ready) or withdraws (not ready); `why` goes to the log. */
  set(ready: boolean, why: Record<string, unknown> = {}): Promise<void> {
    return this.enqueue(async () => {
      // Not prepared yet (the pump is still starting), or already so: nothing to do.
      if (this.announced === null || this.announced === ready) return;
      const dev = this.settings.interface;
      const failures: string[] = [];
      for (const a of this.settings.addresses) {
        const r = await this.run(['address', ready ? 'replace' : 'del', a, 'dev', dev]);
        // Deleting an address that is not there is what we wanted.
        if (!r.ok && !(ready === false && /Cannot assign|not found|No such/i.test(r.stderr))) failures.push(`${a}: ${r.stderr}`);
      }
      this.announced = ready;
      this.changes++;
      if (failures.length > 0) this.log('error', ready ? 'announce failed' : 'withdraw failed', { interface: dev, failures });
      else this.log(ready ? 'info' : 'warn', ready ? 'announced' : 'withdrawn', { interface: dev, addresses: this.settings.addresses, ...why });
    });
  }

  private enqueue(f: () => Promise<void>): Promise<void> {
    const next = this.chain.then(f);
    this.chain = next.catch(() => {});
    return next;
  }
}
