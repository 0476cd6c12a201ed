// The haports library: `import { Dataplane } from 'haports'`.
//
// A Dataplane is one instance of the core (the release wasm, build/haports.wasm, read when the bundle loads)
// with its configuration, flow table and counters. Two ways to run packets:
//
// - convenience: `dp.process([buf, buf, …], { ingress: 'fe-v4' })` copies the packets
//   into the core and returns a Decision per packet;
// - zero copy: write packets straight into `dp.arena` (wasm memory), describe them with
//   `dp.setPacket(i, offset, length)`, call `dp.run(count)`, read `dp.decision(i)` and
//   the (possibly rewritten) bytes with `dp.packet(i)` — views into wasm memory that stay
//   valid until the next run() or reconfigure().

import wasmBytes from '../../build/haports.wasm';
import {
  ConfigError, Core, FLAGS, LINK_ETHERNET, LINK_RAW_IP, NONE, type Described, type ObjectCounters, type ProbeTargetState,
  type Tuple,
} from './core.js';
import type { Config } from './config.js';
import { findTracked, listFlows, lookupFlow, withTracked, type FlowFilter, type FlowInfo, type FlowSpec, type Lookup } from './lookup.js';

export { ConfigError };
export type { Config, Described, FlowFilter, FlowInfo, FlowSpec, Lookup, ObjectCounters, ProbeTargetState, Tuple };
export type * from './config.js';

export type Link = 'ip' | 'ethernet';
export type BackendHealth = 'up' | 'down';
export type AdminState = 'up' | 'draining';

export interface RunOptions {
  /** Milliseconds on a clock that never goes back; default Date.now(). */
  now?: number;
  /** The frontend the packets arrived on (next-hop use). Default: match by destination address. */
  ingress?: string;
  /** How packets start: 'ip' (default) or 'ethernet'. */
  link?: Link;
}

export interface Decision {
  /** reset: a TCP flow idle past its rule's timeout (enableTcpReset); send resets(i) instead. */
  verdict: 'forward' | 'drop' | 'nomatch' | 'reset';
  /** Why a packet was dropped or matched nothing; null when forwarded. */
  reason: string | null;
  rule: string | null;
  /** The chosen backend (for a translated reply: the backend it came from). */
  backend: string | null;
  pool: string | null;
  frontend: string | null;
  /** The backend came from a tracked flow. */
  tracked: boolean;
  /** This packet created a flow entry. */
  newFlow: boolean;
  /** The packet was rewritten in place (non-floating rule: NAT). */
  rewritten: boolean;
  /** A backend's reply translated back to the frontend. */
  reply: boolean;
  /** The packet's flow is established: seen to be real, so new flows cannot evict it. */
  established: boolean;
  /** Raw FLAG_* bits (see FLAGS). */
  flags: number;
}


export interface Counters {
  /** Global counters: packets, forwarded, dropped, nomatch, flowHits, flowNew, evictions, … */
  totals: Record<string, number>;
  /** Drops and no-matches by reason. */
  reasons: Record<string, number>;
  backends: Record<string, ObjectCounters>;
  rules: Record<string, ObjectCounters>;
  flowTable: { used: number; capacity: number };
}

export { FLAGS };

const LINKS: Record<Link, number> = { ip: LINK_RAW_IP, ethernet: LINK_ETHERNET };

let sharedModule: WebAssembly.Module | undefined;

/** Error codes of the library (`err.code`), stable across releases. */
export const ERROR_CODES = {
  invalidConfig: 'HAPORTS_INVALID_CONFIG', // ConfigError
  outOfRange: 'ERR_OUT_OF_RANGE',          // RangeError: an index, count, name or size outside what exists
  invalidArgType: 'ERR_INVALID_ARG_TYPE',  // TypeError: an argument of the wrong type
  closed: 'HAPORTS_CLOSED',                // Error: the dataplane was closed
} as const;

function rangeError(message: string): RangeError {
  return Object.assign(new RangeError(message), { code: ERROR_CODES.outOfRange });
}

function typeError(message: string): TypeError {
  return Object.assign(new TypeError(message), { code: ERROR_CODES.invalidArgType });
}

function closedError(): Error {
  return Object.assign(new Error('this Dataplane was closed'), { code: ERROR_CODES.closed });
}

const addCounters = (a: ObjectCounters, b: ObjectCounters | undefined): ObjectCounters =>
  (b ? { packets: a.packets + b.packets, bytes: a.bytes + b.bytes, newFlows: a.newFlows + b.newFlows } : a);

export class Dataplane {
  private instance: Core | null;
  /** Packets of the last run (decision, packet, resets and tuple take indices below it). */
  private lastRun = -1;
  /**
   * Counters of backends and rules from before the last reconfigurations, by name: the core
   * starts them at zero with every configuration; counters() adds these, so a backend or
   * rule that stays keeps counting.
   */
  private carried: { backends: Record<string, ObjectCounters>; rules: Record<string, ObjectCounters> } = { backends: {}, rules: {} };

  /** The running configuration's text (lookup() configures scratch cores with it). */
  private configText = '';

  private constructor(core: Core) {
    this.instance = core;
  }

  private get core(): Core {
    if (this.instance === null) throw closedError();
    return this.instance;
  }

  /** Releases the instance (its memory goes with the last reference); every later call throws (code HAPORTS_CLOSED). */
  close(): void {
    this.instance = null;
  }

  /** Whether close() was called. */
  get closed(): boolean {
    return this.instance === null;
  }

  /**
   * A dataplane running `config` (an object or JSON text). Throws ConfigError with every
   * `path: reason` error when the configuration is invalid.
   */
  static create(config: Config | string): Dataplane {
    sharedModule ??= new WebAssembly.Module(wasmBytes);
    const dp = new Dataplane(new Core(sharedModule));
    dp.core.configure(config);
    dp.configText = typeof config === 'string' ? config : JSON.stringify(config);
    return dp;
  }

  /** The errors (empty when valid), warnings and info of a configuration, without running it. */
  static validate(config: Config | string): { errors: string[]; warnings: string[]; info: string[] } {
    sharedModule ??= new WebAssembly.Module(wasmBytes);
    return Core.check(config, sharedModule);
  }

  /** Packets per run (the core's batch size). */
  get maxBatch(): number {
    return this.core.maxBatch;
  }

  /** Warnings of the running configuration. */
  get warnings(): string[] {
    return this.core.warnings;
  }

  /** Info of the running configuration: notes (Azure history) that call for no change. */
  get info(): string[] {
    return this.core.info;
  }

  /**
   * Applies a new configuration. Tracked flows whose rule and backend still exist keep
   * their backend. On error (ConfigError) the running configuration stays.
   */
  reconfigure(config: Config | string): void {
    const before = this.counters();
    this.core.configure(config); // throws, changing nothing, when invalid
    this.configText = typeof config === 'string' ? config : JSON.stringify(config);
    this.carried = { backends: before.backends, rules: before.rules };
    this.lastRun = -1;
  }

  /** Runs packets (at most maxBatch per call) and returns a decision per packet. */
  process(packets: Uint8Array[], options: RunOptions = {}): Decision[] {
    const maxBatch = this.maxBatch; // (throws when closed)
    if (!Array.isArray(packets)) throw typeError('process(packets): packets must be an array of Uint8Array');
    const out: Decision[] = [];
    for (let start = 0; start < packets.length; start += maxBatch) {
      const batch = packets.slice(start, start + maxBatch);
      batch.forEach((p, i) => {
        if (!(p instanceof Uint8Array)) throw typeError(`process(packets): packets[${start + i}] is not a Uint8Array`);
        if (p.length > this.core.arenaSize) {
          throw rangeError(`process(packets): packets[${start + i}] has ${p.length} bytes, more than the ${this.core.arenaSize}-byte arena`);
        }
      });
      const bytes = batch.reduce((n, p) => n + p.length, 0);
      if (bytes > this.core.arenaSize) {
        // Cut the batch where the arena is full (the core's batches are bounded by bytes too).
        let fit = 0;
        for (let used = 0; fit < batch.length && used + batch[fit].length <= this.core.arenaSize; fit++) used += batch[fit].length;
        batch.length = fit;
        start -= maxBatch - fit; // the next batch starts after the ones that fit
      }
      this.core.load(batch);
      this.run(batch.length, options);
      for (let i = 0; i < batch.length; i++) out.push(this.decision(i));
    }
    return out;
  }

  /** The receive arena: a view of wasm memory to write packets into (zero-copy path). */
  get arena(): Uint8Array {
    return this.core.arena();
  }

  /** Describes packet i of the next run: `length` bytes at `offset` in the arena. */
  setPacket(i: number, offset: number, length: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.maxBatch) throw rangeError(`setPacket: index ${i} outside 0..${this.maxBatch - 1}`);
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > this.core.arenaSize) {
      throw rangeError(`setPacket: ${length} bytes at ${offset} do not fit the ${this.core.arenaSize}-byte arena`);
    }
    this.core.setDescriptor(i, offset, length);
  }

  /** Runs packets [0, count) as described by setPacket. Returns how many were forwarded. */
  run(count: number, options: RunOptions = {}): number {
    if (!Number.isInteger(count) || count < 0 || count > this.maxBatch) {
      throw rangeError(`run: count ${count} outside 0..${this.maxBatch}`);
    }
    const link = LINKS[options.link ?? 'ip'];
    if (link === undefined) throw typeError(`run: link must be "ip" or "ethernet", got ${JSON.stringify(options.link)}`);
    let ingress = NONE;
    if (options.ingress !== undefined) {
      ingress = this.core.names.frontends.indexOf(options.ingress);
      if (ingress < 0) throw rangeError(`run: no frontend named ${JSON.stringify(options.ingress)}`);
    }
    const now = options.now ?? Date.now();
    if (!Number.isFinite(now)) throw typeError('run: now must be a finite number of milliseconds');
    const forwarded = this.core.process(count, now, ingress, link);
    this.lastRun = count;
    return forwarded;
  }

  /**
   * Where a flow goes now, in both directions: rule, pool, backend, Maglev slot and why
   * (tracked flow, consistent hash, fail-open, or why none). A flow in this dataplane's
   * flow table is answered with the backend it keeps (`tracked`); any other as a new flow,
   * asked of a scratch core with this dataplane's configuration and backend states: no
   * flow entry or counter here changes.
   */
  lookup(flow: FlowSpec, options: { ingress?: string; now?: number } = {}): { forward: Lookup; reverse: Lookup } {
    const core = this.core;
    const states = core.names.backends.map((_, b) => core.backendState(b));
    const now = options.now ?? Date.now();
    if (!Number.isFinite(now)) throw typeError('lookup: now must be a finite number of milliseconds');
    const icmp = flow.proto === 'icmp' || flow.proto === 1;
    const back: FlowSpec = {
      proto: flow.proto, src: flow.dst, dst: flow.src, sport: icmp ? flow.sport : flow.dport, dport: icmp ? flow.dport : flow.sport,
    };
    const forward = lookupFlow(sharedModule!, this.configText, states, flow, options.ingress, now);
    const reverse = lookupFlow(sharedModule!, this.configText, states, back, options.ingress, now);
    const tracked = listFlows(core, {}, Infinity);
    return {
      forward: withTracked(forward, findTracked(tracked, flow)),
      reverse: withTracked(reverse, findTracked(tracked, back)),
    };
  }

  /**
   * The flows this dataplane tracks (its flow table's entries of kind 'flow', not reply or
   * fragment entries, expired ones left out), with names for indices: at most `limit`
   * (default 1,000), those matching every filter given. Walks the table: for admin
   * tools, not the packet path.
   */
  flows(filter: FlowFilter = {}): FlowInfo[] {
    if (this.instance === null) throw closedError();
    const limit = filter.limit ?? 1000;
    if (!(limit >= 0)) throw rangeError(`flows: limit must be ≥ 0, got ${limit}`);
    return listFlows(this.core, filter, limit);
  }

  /** Pool `pool`'s Maglev table: its size and each backend's share of the slots. */
  maglev(pool: string): { size: number; shares: Record<string, number>; table: string[] } {
    const n = this.core.names;
    const p = n.pools.indexOf(pool);
    if (p < 0) throw rangeError(`maglev: no pool named ${JSON.stringify(pool)}`);
    const table = this.core.maglevTable(p);
    const shares: Record<string, number> = {};
    n.backends.forEach((b, i) => { if (n.backendPool[i] === p) shares[b] = 0; });
    const names = Array.from(table, (b) => (b === NONE ? '-' : n.backends[b]));
    for (const b of names) if (b !== '-') shares[b] = (shares[b] ?? 0) + 1;
    for (const b of Object.keys(shares)) shares[b] /= table.length || 1;
    return { size: table.length, shares, table: names };
  }

  /** Checks that i is a packet of the last run. */
  private ran(what: string, i: number): void {
    if (this.instance === null) throw closedError();
    if (this.lastRun < 0) throw rangeError(`${what}(${i}): no run since the dataplane was created or reconfigured`);
    if (!Number.isInteger(i) || i < 0 || i >= this.lastRun) {
      throw rangeError(`${what}(${i}): the last run had ${this.lastRun} packet${this.lastRun === 1 ? '' : 's'}: index 0..${this.lastRun - 1}`
        + ' (process() returns the decisions of all its packets; this reads those of its last batch)');
    }
  }

  /** The decision for packet i of the last run. */
  decision(i: number): Decision {
    this.ran('decision', i);
    const v = this.core.verdict(i);
    const n = this.core.names;
    return {
      verdict: v.action,
      reason: v.action === 'forward' ? null : v.reason,
      rule: v.rule === NONE ? null : n.rules[v.rule] ?? null,
      backend: v.backend === NONE ? null : n.backends[v.backend] ?? null,
      pool: v.backend === NONE ? null : n.pools[n.backendPool[v.backend]] ?? null,
      frontend: v.frontend === NONE ? null : n.frontends[v.frontend] ?? null,
      tracked: (v.flags & FLAGS.flowHit) !== 0,
      newFlow: (v.flags & FLAGS.flowNew) !== 0,
      rewritten: (v.flags & FLAGS.rewritten) !== 0,
      reply: (v.flags & FLAGS.reply) !== 0,
      established: (v.flags & FLAGS.established) !== 0,
      flags: v.flags,
    };
  }

  /**
   * For a 'reset' decision, the two TCP RSTs to send instead of packet i (copies):
   * `toSender` back to where the packet came from, `toBackend` to the decision's backend
   * as a forwarded packet would go. Null for other decisions.
   */
  resets(i: number): { toSender: Uint8Array; toBackend: Uint8Array } | null {
    this.ran('resets', i);
    return this.core.resets(i);
  }

  /** Packet i's bytes after the last run (rewritten in place when translated). */
  packet(i: number): Uint8Array {
    this.ran('packet', i);
    return this.core.packet(i);
  }

  /** Packet i's own header fields as parsed; null when it has no IP header. */
  tuple(i: number): Tuple | null {
    this.ran('tuple', i);
    return this.core.tuple(i);
  }

  private backendIndices(name: string, pool: string | undefined, what: string): number[] {
    const n = this.core.names;
    const found = n.backends.flatMap((b, i) => (b === name && (pool === undefined || n.pools[n.backendPool[i]] === pool) ? [i] : []));
    if (found.length === 0) {
      throw rangeError(`${what}: no backend named ${JSON.stringify(name)}${pool === undefined ? '' : ` in pool ${JSON.stringify(pool)}`}`);
    }
    return found;
  }

  /**
   * The running configuration as the core read it: every default applied, references as
   * indices, canonical addresses, the probe targets (for probeResult) and the sections the
   * core does not read (`hostSections`) as given.
   */
  configuration(): Described {
    return this.core.describe();
  }

  /**
   * One result of probe target `target` (an index into configuration().probeTargets): the
   * core applies the health policy (first result decides, thresholds, flap damping; the
   * "health" section) and the health of the target's backends. Returns the transition:
   * 'none', 'up', 'down', 'initially up', 'initially down' or 'held'.
   */
  probeResult(target: number, ok: boolean, now: number = performance.now()): ReturnType<Core['probeResult']> {
    if (!Number.isFinite(now)) throw typeError('probeResult: now must be a finite number of milliseconds');
    return this.core.probeResult(target, ok, now);
  }

  /** Probe target `target`'s state: up, down or unknown (not probed yet), held by damping, runs and counts. */
  probeTarget(target: number): ProbeTargetState {
    return this.core.probeTarget(target);
  }

  /**
   * A backend's health as judged outside the core (in every pool, or only `pool`), for
   * embedders that do not report probe results: a backend is down while this or a probe
   * target of it says down. New flows avoid a down backend.
   */
  setHealth(backend: string, health: BackendHealth, pool?: string): void {
    if (health !== 'up' && health !== 'down') throw typeError(`setHealth: health must be "up" or "down", got ${JSON.stringify(health)}`);
    for (const b of this.backendIndices(backend, pool, 'setHealth')) this.core.setBackendHealth(b, health === 'up');
  }

  /** The operator's state for a backend: "draining" takes no new flows and keeps existing ones. */
  setAdminState(backend: string, state: AdminState, pool?: string): void {
    if (state !== 'up' && state !== 'draining') throw typeError(`setAdminState: state must be "up" or "draining", got ${JSON.stringify(state)}`);
    for (const b of this.backendIndices(backend, pool, 'setAdminState')) this.core.setBackendAdmin(b, state);
  }

  /** Effective state of a backend: up, down or draining. */
  backendState(backend: string, pool?: string): ReturnType<Core['backendState']> {
    const [b] = this.backendIndices(backend, pool, 'backendState');
    return this.core.backendState(b);
  }

  counters(): Counters {
    const all = this.core.counters();
    const totals: Record<string, number> = {};
    const reasons: Record<string, number> = {};
    for (const [k, v] of Object.entries(all)) {
      if (k.startsWith('reason.')) reasons[k.slice(7)] = v;
      else totals[k] = v;
    }
    const byName = (list: ObjectCounters[], names: string[], carried: Record<string, ObjectCounters>) => {
      const out: Record<string, ObjectCounters> = {};
      names.forEach((name, i) => {
        const key = out[name] ? `${name}#${i}` : name;
        out[key] = addCounters(list[i], carried[key]);
      });
      return out;
    };
    const n = this.core.names;
    const backendNames = n.backends.map((b, i) => `${n.pools[n.backendPool[i]]}/${b}`);
    return {
      totals,
      reasons,
      backends: byName(this.core.backendCounters(), backendNames, this.carried.backends),
      rules: byName(this.core.ruleCounters(), n.rules, this.carried.rules),
      flowTable: { used: this.core.exports.flowTableUsed(), capacity: this.core.exports.flowTableCapacity() },
    };
  }
}

// `using dp = Dataplane.create(…)` (explicit resource management) closes it at the end of the block.
const dispose = (Symbol as { dispose?: symbol }).dispose;
if (dispose) (Dataplane.prototype as unknown as Record<symbol, () => void>)[dispose] = function (this: Dataplane) { this.close(); };

