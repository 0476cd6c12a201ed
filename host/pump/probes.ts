// Health probes: TCP connect, HTTP GET and HTTPS GET against every backend of the
// rules that name a probe; their results drive the core's backend health.
//
// The pump runs the probes; the core decides what their results mean (assembly/health.ts,
// docs/health.md): the initial state, thresholds, flap damping, several probes per
// backend. Each result goes to core.probeResult(target, ok, now), which sets the
// backends' health; this file only schedules probes, performs them, logs the
// transitions the core reports and writes the probe metrics from the core's records.
//
//   - A target is one (probe, backend address) of the rules that name a probe
//     (core.describe().probeTargets).
//   - The pump runs one probe round before it opens its listeners, so the first result
//     (which decides the initial state) is known before any packet is balanced.
//   - TCP: success when the three-way handshake completes (then the pump closes the
//     connection); failure on reset, unreachable or timeout.
//   - HTTP/HTTPS: GET `path`; success on any 2xx status. (Azure itself accepts only 200;
//     2xx lets health endpoints answer 204.) HTTPS does not verify the server's
//     certificate or name: probes go to the configured backend addresses, whose
//     appliances usually present self-signed certificates, and the probe tests liveness,
//     not identity (Azure does not validate probe certificates either).
//   - timeoutSeconds (default and most: the interval) bounds a whole probe: connect,
//     TLS, request and response headers. A probe never overlaps the previous one of its
//     target.

import { connect } from 'node:net';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { MetricsWriter } from './metrics.js';
import type { Core, Described } from '../lib/core.js';

export type ProbeProtocol = 'tcp' | 'http' | 'https';

export interface ProbeResult {
  ok: boolean;
  /** "connected", "HTTP 200", an errno code (ECONNREFUSED, ...), "timeout". */
  detail: string;
}

export interface ProbeRequest {
  protocol: ProbeProtocol;
  address: string;
  port: number;
  path: string;
  timeoutMs: number;
}

/** One probe. Never rejects. */
export function probeOnce(req: ProbeRequest): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (ok: boolean, detail: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      cleanup();
      resolve({ ok, detail });
    };
    let cleanup = () => {};
    const timer = setTimeout(() => finish(false, 'timeout'), req.timeoutMs);

    if (req.protocol === 'tcp') {
      const s = connect({ host: req.address, port: req.port });
      cleanup = () => s.destroy();
      s.once('connect', () => finish(true, 'connected'));
      s.once('error', (e: any) => finish(false, e?.code ?? String(e?.message ?? e)));
      return;
    }
    const options = {
      host: req.address,
      port: req.port,
      path: req.path,
      method: 'GET',
      agent: false as const,
      headers: { 'user-agent': 'haports-probe/1', connection: 'close', accept: '*/*' },
      // HTTPS: liveness, not identity (see the header of this file).
      rejectUnauthorized: false,
    };
    const r = (req.protocol === 'https' ? httpsRequest : httpRequest)(options, (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      finish(status >= 200 && status < 300, `HTTP ${status}`);
    });
    cleanup = () => r.destroy();
    r.once('error', (e: any) => finish(false, e?.code ?? String(e?.message ?? e)));
    r.end();
  });
}

/** One probed (probe, address): the core's target `index` and the backends it speaks for. */
export interface ProbeTarget {
  index: number;
  probe: Described['probes'][number];
  address: string;
  backends: number[];
  lastDetail: string;
  inFlight: boolean;
}

/** What the monitor drives: Core (or anything with the same members). */
export type HealthCore = Pick<Core, 'describe' | 'probeResult' | 'probeTarget' | 'names'> & {
  exports: Pick<Core['exports'], 'probePenalty' | 'probeHoldSeconds'>;
};

export type LogFn = (level: 'error' | 'warn' | 'info' | 'debug', msg: string, fields?: Record<string, unknown>) => void;

export interface HealthMonitorOptions {
  log?: LogFn;
  /** Replaces probeOnce (tests). */
  runProbe?: (req: ProbeRequest) => Promise<ProbeResult>;
  /** Milliseconds on a clock that never goes back (tests). */
  now?: () => number;
  /**
   * Called with every result after the core has it: the pump's workers each run a core
   * of their own, and apply the same results at the same times (so they agree).
   */
  onResult?: (target: number, ok: boolean, nowMs: number) => void;
}

const TRANSITION_LOG: Record<string, string> = {
  'initially up': 'first probe succeeded', 'initially down': 'first probe failed',
};

/** Runs every probe target of the core's configuration on its interval and reports each result to the core. */
export class HealthMonitor {
  readonly targets: ProbeTarget[];
  private readonly timers = new Set<NodeJS.Timeout>();
  private running = false;
  private readonly log: LogFn;
  private readonly runProbe: (req: ProbeRequest) => Promise<ProbeResult>;
  private readonly now: () => number;
  private readonly onResult: (target: number, ok: boolean, nowMs: number) => void;

  constructor(private readonly core: HealthCore, opts: HealthMonitorOptions = {}) {
    this.log = opts.log ?? (() => {});
    this.onResult = opts.onResult ?? (() => {});
    this.runProbe = opts.runProbe ?? probeOnce;
    this.now = opts.now ?? (() => performance.now());
    const d = core.describe();
    this.targets = d.probeTargets.map((t) => ({
      index: t.index, probe: d.probes[t.probe], address: t.address, backends: t.backends, lastDetail: '', inFlight: false,
    }));
  }

  /**
   * Runs one probe round (every target at once), which decides the initial states, then
   * keeps probing every target on its interval. Resolves after the first round.
   */
  async start(): Promise<void> {
    this.running = true;
    const t0 = this.now();
    await Promise.all(this.targets.map((t) => this.probe(t)));
    for (const t of this.targets) this.schedule(t, t0 + t.probe.intervalSeconds * 1000);
  }

  stop(): void {
    this.running = false;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  private schedule(t: ProbeTarget, at: number): void {
    if (!this.running) return;
    const timer = setTimeout(async () => {
      this.timers.delete(timer);
      if (!this.running) return;
      await this.probe(t);
      // The next probe one interval after this one was due; never overlapping (a probe
      // that overran its interval is followed at once).
      this.schedule(t, Math.max(at + t.probe.intervalSeconds * 1000, this.now()));
    }, Math.max(0, at - this.now()));
    this.timers.add(timer);
  }

  private async probe(t: ProbeTarget): Promise<void> {
    if (t.inFlight) return;
    t.inFlight = true;
    const result = await this.runProbe({
      protocol: t.probe.protocol, address: t.address, port: t.probe.port, path: t.probe.path,
      timeoutMs: t.probe.timeoutSeconds * 1000,
    });
    t.inFlight = false;
    if (!this.running) return;
    this.record(t, result);
  }

  /** Reports one result of a target to the core and logs what it did (exposed for tests). */
  record(t: ProbeTarget, result: ProbeResult): void {
    const now = this.now();
    t.lastDetail = result.detail;
    const wasHeld = this.core.probeTarget(t.index).held;
    const transition = this.core.probeResult(t.index, result.ok, now);
    this.onResult(t.index, result.ok, now);
    const state = this.core.probeTarget(t.index);
    this.log('debug', 'probe result', {
      probe: t.probe.name, address: t.address, ok: result.ok, detail: result.detail,
      successRun: state.successRun, failureRun: state.failureRun,
    });
    const backends = t.backends.map((b) => this.backendName(b));
    if (transition === 'held') {
      this.log('warn', 'backend held down by flap damping', {
        probe: t.probe.name, address: t.address, backends,
        penalty: Number(this.core.exports.probePenalty(t.index, now).toFixed(3)),
        releaseInSeconds: Number(this.core.exports.probeHoldSeconds(t.index, now).toFixed(1)),
      });
      return;
    }
    if (transition === 'none') return;
    const up = transition === 'up' || transition === 'initially up';
    const run = up ? state.successRun : state.failureRun;
    this.log(up ? 'info' : 'warn', `backend ${transition}`, {
      probe: t.probe.name, protocol: t.probe.protocol, address: t.address, port: t.probe.port, backends,
      reason: TRANSITION_LOG[transition] ?? `${run} consecutive ${up ? 'successes' : 'failures'}${wasHeld ? ', after a damping hold' : ''}`,
      detail: result.detail,
    });
  }

  private backendName(b: number): string {
    const n = this.core.names;
    return `${n.pools[n.backendPool[b]]}/${n.backends[b]}`;
  }

  /** Probe families: haports_probe_up, _checks_total, _transitions_total, _held, _penalty. */
  writeMetrics(w: MetricsWriter): void {
    const now = this.now();
    const labels = (t: ProbeTarget) => ({ probe: t.probe.name, address: t.address });
    const states = this.targets.map((t) => this.core.probeTarget(t.index));
    w.family('haports_probe_up', 'gauge', 'Probe target state: 1 up, 0 down (or not yet probed).');
    this.targets.forEach((t, i) => w.sample(states[i].state === 'up' ? 1 : 0, labels(t)));
    w.family('haports_probe_checks_total', 'counter', 'Probes run, by result.');
    this.targets.forEach((t, i) => {
      w.sample(states[i].checksSuccess, { ...labels(t), result: 'success' });
      w.sample(states[i].checksFailure, { ...labels(t), result: 'failure' });
    });
    w.family('haports_probe_transitions_total', 'counter', 'State changes after the initial one, by new state.');
    this.targets.forEach((t, i) => {
      w.sample(states[i].transitionsUp, { ...labels(t), to: 'up' });
      w.sample(states[i].transitionsDown, { ...labels(t), to: 'down' });
    });
    w.family('haports_probe_held', 'gauge', '1 while flap damping keeps a passing target down.');
    this.targets.forEach((t, i) => w.sample(states[i].held ? 1 : 0, labels(t)));
    w.family('haports_probe_penalty', 'gauge', 'Flap-damping penalty (decays with the half-life).');
    for (const t of this.targets) w.sample(Number(this.core.exports.probePenalty(t.index, now).toFixed(6)), labels(t));
  }
}
