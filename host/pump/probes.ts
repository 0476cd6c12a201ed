// Health probes: TCP connect, HTTP GET and HTTPS GET against every backend of the
// rules that name a probe; their results drive the core's backend health.
//
// Semantics, after Azure Load Balancer. Its health-probe overview
// (learn.microsoft.com/azure/load-balancer/load-balancer-custom-probe-overview)
// defines the probe threshold as "the number of times the health probe needs to succeed
// or fail in order to allow or deny traffic" to the instance, and says that when a probe
// fails the load balancer stops sending *new* connections to the instance (existing ones
// follow the rule: here `persistOnUnhealthy`, applied by the core). So:
//   - `threshold` consecutive failures mark a target down; `threshold` consecutive
//     successes mark it up again; one result of the other kind resets the run.
//   - Down is never delayed: after a target stops answering, it is marked down within
//     intervalSeconds × threshold (its next probe comes at most one interval later, and
//     each probe ends within its timeout ≤ the interval by default).
//   - The first result after start decides the initial state (no threshold to wait
//     for): the pump runs one probe round before it opens its listeners, so it never
//     balances onto a backend that is already dead, and never drops traffic for
//     threshold × interval seconds while healthy backends "warm up".
//   - TCP: success when the three-way handshake completes (then the pump closes the
//     connection); failure on reset, unreachable or timeout.
//   - HTTP/HTTPS: GET `path`; success on any 2xx status. (Azure itself accepts only 200;
//     2xx lets health endpoints answer 204.) HTTPS does not verify the server's
//     certificate or name: probes go to the configured backend addresses, whose
//     appliances usually present self-signed certificates, and the probe tests liveness,
//     not identity (Azure does not validate probe certificates either).
//   - timeoutSeconds (default: the interval) bounds a whole probe: connect, TLS, request
//     and response headers. A probe never overlaps the previous one of its target.
//
// Damping of flapping (so a backend that keeps failing and recovering stops taking new
// flows each time it recovers), after BGP route-flap damping (RFC 2439), applied only to
// the way back up:
//   - every fall adds 1 to the target's penalty, which decays exponentially with a
//     half-life (`halfLifeSeconds`, default 60); a fall is an up → down transition, or a
//     failure of a target that damping holds down although it passed its probes;
//   - when a transition brings the penalty to `suppressPenalty` or more (default 2: the
//     second fall within about a half-life), the target is suppressed: once it has
//     passed `threshold` probes again it stays down ("held") until its penalty has
//     decayed below `reusePenalty` (default 1), then goes up at its next success;
//   - the penalty is capped at reusePenalty × 2^(maxHoldSeconds / halfLifeSeconds), so
//     that no hold lasts longer than `maxHoldSeconds` (default 300) after the last fall
//     (the cap must reach suppressPenalty; the pump's configuration check says so).
// A single failure and recovery is never held. `"damping": false` turns damping off.
//
// A probe target is (probe, address): a backend address that appears in several pools
// is probed once per probe. A backend in the pools of several rules with different
// probes is up only while every one of them says up.

import { connect } from 'node:net';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { MetricsWriter } from './metrics.js';

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

export interface DampingOptions {
  halfLifeSeconds: number;
  suppressPenalty: number;
  reusePenalty: number;
  maxHoldSeconds: number;
}

export const DEFAULT_DAMPING: DampingOptions = {
  halfLifeSeconds: 60, suppressPenalty: 2, reusePenalty: 1, maxHoldSeconds: 300,
};

export type TargetState = 'unknown' | 'up' | 'down';

/** What one result did to a target. */
export interface Transition {
  to: 'up' | 'down';
  /** True for the first result after start. */
  initial: boolean;
  reason: string;
}

/**
 * The state machine of one probe target: consecutive-result thresholds and damping.
 * Pure (time is passed in), so it is tested with a fake clock.
 */
export class ProbeState {
  state: TargetState = 'unknown';
  successRun = 0;
  failureRun = 0;
  /** Penalty as of `penaltyAt` (ms). */
  private penalty = 0;
  private penaltyAt = 0;
  suppressed = false;
  /** Set while passing probes but kept down by damping (ms when the hold began). */
  heldSince: number | null = null;

  constructor(readonly threshold: number, readonly damping: DampingOptions | null) {}

  penaltyAtTime(nowMs: number): number {
    if (!this.damping || this.penalty === 0) return 0;
    return this.penalty * Math.pow(0.5, (nowMs - this.penaltyAt) / (this.damping.halfLifeSeconds * 1000));
  }

  /** Seconds until the penalty decays below the reuse level (0 when it is already). */
  holdRemainingSeconds(nowMs: number): number {
    if (!this.damping) return 0;
    const p = this.penaltyAtTime(nowMs);
    if (p < this.damping.reusePenalty) return 0;
    return this.damping.halfLifeSeconds * Math.log2(p / this.damping.reusePenalty);
  }

  /** A fall: +1 penalty (decayed to now, capped), suppressed from `suppressPenalty` on. */
  private fall(nowMs: number): void {
    this.heldSince = null;
    const d = this.damping;
    if (!d) return;
    const cap = d.reusePenalty * Math.pow(2, d.maxHoldSeconds / d.halfLifeSeconds);
    this.penalty = Math.min(this.penaltyAtTime(nowMs) + 1, cap);
    this.penaltyAt = nowMs;
    if (this.penalty >= d.suppressPenalty) this.suppressed = true;
  }

  /** Records one result at time `nowMs`; returns the transition it caused, if any. */
  observe(ok: boolean, nowMs: number): Transition | null {
    if (ok) {
      this.successRun++;
      this.failureRun = 0;
    } else {
      this.failureRun++;
      this.successRun = 0;
    }
    if (this.state === 'unknown') {
      this.state = ok ? 'up' : 'down';
      return { to: this.state, initial: true, reason: ok ? 'first probe succeeded' : 'first probe failed' };
    }
    if (this.state === 'up') {
      if (ok || this.failureRun < this.threshold) return null;
      this.state = 'down';
      this.fall(nowMs);
      return { to: 'down', initial: false, reason: `${this.failureRun} consecutive failures` };
    }
    // Down: up again after `threshold` successes, unless damping holds it.
    if (!ok) {
      // A held target would have been up: its failure is a fall too (RFC 2439 keeps
      // charging a route that flaps while suppressed).
      if (this.heldSince !== null) this.fall(nowMs);
      this.heldSince = null;
      return null;
    }
    if (this.successRun < this.threshold) return null;
    if (this.suppressed && this.damping) {
      if (this.penaltyAtTime(nowMs) >= this.damping.reusePenalty) {
        if (this.heldSince === null) this.heldSince = nowMs;
        return null;
      }
      this.suppressed = false;
    }
    const held = this.heldSince !== null;
    this.heldSince = null;
    this.state = 'up';
    return {
      to: 'up', initial: false,
      reason: held ? `${this.successRun} consecutive successes, after a damping hold` : `${this.successRun} consecutive successes`,
    };
  }
}

export interface ProbeDefinition {
  name: string;
  protocol: ProbeProtocol;
  port: number;
  path: string;
  intervalSeconds: number;
  threshold: number;
  timeoutSeconds: number;
}

/** The probe definitions of a configuration, with the core's defaults filled in. */
export function probeDefinitions(config: any): ProbeDefinition[] {
  return (config.probes ?? []).map((p: any) => {
    const intervalSeconds = p.intervalSeconds ?? 5;
    return {
      name: p.name,
      protocol: p.protocol ?? 'tcp',
      port: p.port,
      path: p.path ?? '/',
      intervalSeconds,
      threshold: p.threshold ?? 2,
      timeoutSeconds: p.timeoutSeconds ?? intervalSeconds,
    };
  });
}

/** One probed (probe, address) and the backends (core indices) it speaks for. */
export interface ProbeTarget {
  probe: ProbeDefinition;
  address: string;
  backends: number[];
  state: ProbeState;
  checks: { success: number; failure: number };
  transitions: { up: number; down: number };
  lastDetail: string;
  inFlight: boolean;
}

/** What the monitor drives: Core (or anything with the same two members). */
export interface HealthSink {
  setBackendHealth(backend: number, up: boolean): void;
  names: { backends: string[]; pools: string[]; backendPool: number[] };
}

export type LogFn = (level: 'error' | 'warn' | 'info' | 'debug', msg: string, fields?: Record<string, unknown>) => void;

export interface HealthMonitorOptions {
  /** `false` disables damping; fields left out take DEFAULT_DAMPING's. */
  damping?: Partial<DampingOptions> | false;
  log?: LogFn;
  /** Replaces probeOnce (tests). */
  runProbe?: (req: ProbeRequest) => Promise<ProbeResult>;
  /** Milliseconds on a clock that never goes back (tests). */
  now?: () => number;
}

/**
 * Runs every probe target on its interval and keeps the core's backend health equal to
 * the AND of the targets that speak for each backend.
 */
export class HealthMonitor {
  readonly targets: ProbeTarget[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly backendUp: boolean[];
  private running = false;
  private readonly log: LogFn;
  private readonly runProbe: (req: ProbeRequest) => Promise<ProbeResult>;
  private readonly now: () => number;

  constructor(private readonly sink: HealthSink, config: any, opts: HealthMonitorOptions = {}) {
    this.log = opts.log ?? (() => {});
    this.runProbe = opts.runProbe ?? probeOnce;
    this.now = opts.now ?? (() => performance.now());
    const damping = opts.damping === false ? null : { ...DEFAULT_DAMPING, ...(opts.damping ?? {}) };

    const probes = new Map(probeDefinitions(config).map((p) => [p.name, p]));
    // Backend indices of each pool, and each backend's address, in core order.
    const poolBackends: number[][] = [];
    const addresses: string[] = [];
    for (const pool of config.backendPools ?? []) {
      const list: number[] = [];
      for (const b of pool.backends ?? []) {
        list.push(addresses.length);
        addresses.push(b.address);
      }
      poolBackends.push(list);
    }
    const poolIndex = new Map<string, number>((config.backendPools ?? []).map((p: any, i: number) => [p.name, i]));
    const byKey = new Map<string, ProbeTarget>();
    for (const rule of config.rules ?? []) {
      const probe = rule.probe ? probes.get(rule.probe) : undefined;
      const p = poolIndex.get(rule.backendPool);
      if (!probe || p === undefined) continue;
      for (const b of poolBackends[p]) {
        const key = `${probe.name}\u0000${addresses[b]}`;
        let t = byKey.get(key);
        if (!t) {
          t = {
            probe, address: addresses[b], backends: [], state: new ProbeState(probe.threshold, damping),
            checks: { success: 0, failure: 0 }, transitions: { up: 0, down: 0 }, lastDetail: '', inFlight: false,
          };
          byKey.set(key, t);
          this.targets.push(t);
        }
        if (!t.backends.includes(b)) t.backends.push(b);
      }
    }
    this.backendUp = addresses.map(() => true);
  }

  /**
   * Runs one probe round (every target at once), applies the initial states, then keeps
   * probing every target on its interval. Resolves after the first round.
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

  /** Applies one result to a target (exposed for tests). */
  record(t: ProbeTarget, result: ProbeResult): void {
    const now = this.now();
    t.lastDetail = result.detail;
    if (result.ok) t.checks.success++;
    else t.checks.failure++;
    const wasHeld = t.state.heldSince !== null;
    const tr = t.state.observe(result.ok, now);
    this.log('debug', 'probe result', {
      probe: t.probe.name, address: t.address, ok: result.ok, detail: result.detail,
      successRun: t.state.successRun, failureRun: t.state.failureRun,
    });
    const backends = t.backends.map((b) => this.backendName(b));
    if (!wasHeld && t.state.heldSince !== null) {
      this.log('warn', 'backend held down by flap damping', {
        probe: t.probe.name, address: t.address, backends,
        penalty: Number(t.state.penaltyAtTime(now).toFixed(3)),
        releaseInSeconds: Number(t.state.holdRemainingSeconds(now).toFixed(1)),
      });
    }
    if (!tr) return;
    if (!tr.initial) t.transitions[tr.to]++;
    this.log(tr.to === 'down' ? 'warn' : 'info', tr.initial ? `backend initially ${tr.to}` : `backend ${tr.to}`, {
      probe: t.probe.name, protocol: t.probe.protocol, address: t.address, port: t.probe.port, backends,
      reason: tr.reason, detail: result.detail,
    });
    this.apply(t.backends);
  }

  /** Pushes the AND of every target of these backends into the sink where it changed. */
  private apply(backends: number[]): void {
    for (const b of backends) {
      const up = this.targets.every((t) => !t.backends.includes(b) || t.state.state !== 'down');
      if (up !== this.backendUp[b]) {
        this.backendUp[b] = up;
        this.sink.setBackendHealth(b, up);
      }
    }
  }

  private backendName(b: number): string {
    const n = this.sink.names;
    return `${n.pools[n.backendPool[b]]}/${n.backends[b]}`;
  }

  /** Probe families: haports_probe_up, _checks_total, _transitions_total, _held, _penalty. */
  writeMetrics(w: MetricsWriter): void {
    const now = this.now();
    const labels = (t: ProbeTarget) => ({ probe: t.probe.name, address: t.address });
    w.family('haports_probe_up', 'gauge', 'Probe target state: 1 up, 0 down (or not yet probed).');
    for (const t of this.targets) w.sample(t.state.state === 'up' ? 1 : 0, labels(t));
    w.family('haports_probe_checks_total', 'counter', 'Probes run, by result.');
    for (const t of this.targets) {
      w.sample(t.checks.success, { ...labels(t), result: 'success' });
      w.sample(t.checks.failure, { ...labels(t), result: 'failure' });
    }
    w.family('haports_probe_transitions_total', 'counter', 'State changes after the initial one, by new state.');
    for (const t of this.targets) {
      w.sample(t.transitions.up, { ...labels(t), to: 'up' });
      w.sample(t.transitions.down, { ...labels(t), to: 'down' });
    }
    w.family('haports_probe_held', 'gauge', '1 while flap damping keeps a passing target down.');
    for (const t of this.targets) w.sample(t.state.heldSince !== null ? 1 : 0, labels(t));
    w.family('haports_probe_penalty', 'gauge', 'Flap-damping penalty (decays with the half-life).');
    for (const t of this.targets) w.sample(Number(t.state.penaltyAtTime(now).toFixed(6)), labels(t));
  }
}
