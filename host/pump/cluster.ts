// The pump's workers: one worker thread per core of the machine (by default), each with
// a core of its own and its own socket on every listener address, all the sockets of an
// address in one SO_REUSEPORT group. A classic BPF program on each group (steering.ts)
// hands every datagram to the worker its flow belongs to, by the inner addresses,
// symmetrically and NAT-aware, so both directions of a flow, and every fragment, meet the
// same core. No packet crosses between threads.
//
// The process's main thread is the control: it runs the health probes (their results go
// to every worker's core, at the same times, so the workers agree), serves the metrics
// (the workers' counters, added up), logs (the workers' log records carry `worker`), and
// reloads (every worker reconfigures; new sockets bind in worker order; the steering
// program is attached again). Without the native addon there is one worker, on node:dgram.

import { availableParallelism } from 'node:os';
import { BACKEND_STATES, C_DROP_REASON_BASE, COUNTERS, REASONS } from '../lib/abi.js';
import { Worker } from 'node:worker_threads';
import type { Described } from '../lib/core.js';
import type { FlowFilter, FlowInfo } from '../lib/lookup.js';
import { addCoreSnapshots, type CoreSnapshot } from './metrics.js';
import type { LogFn } from './probes.js';
import type { PumpSettings, PumpSnapshot } from './pump.js';
import { steeringProgram } from './steering.js';
import type { NativeUdp } from './udpio.js';
import type { WorkerData } from './pumpworker.js';

export interface ClusterOptions {
  log: LogFn;
  /** The native addon, or null (then one worker, node:dgram). */
  native: NativeUdp | null;
  /** Workers asked for (pump.workers); default: one per CPU with the addon, else 1. */
  workers?: number;
}

type Reply = Record<string, any>;

class WorkerHandle {
  private readonly waiting = new Map<string, (m: Reply) => void>();
  private next = 0;
  exited = false;

  constructor(readonly index: number, readonly thread: Worker, onLog: (m: Reply) => void, onExit: (code: number) => void) {
    thread.on('message', (m: Reply) => {
      if (m.type === 'log') { onLog(m); return; }
      const key = m.id !== undefined ? `${m.id}` : m.type;
      const w = this.waiting.get(key);
      if (w) { this.waiting.delete(key); w(m); }
    });
    thread.on('exit', (code) => { this.exited = true; onExit(code); for (const w of this.waiting.values()) w({ type: 'failed', error: 'worker exited' }); });
  }

  /** Waits for the next message of `type` (those without an id). */
  expect(type: string): Promise<Reply> {
    return new Promise((resolve) => this.waiting.set(type, resolve));
  }

  /** Sends a request and resolves with its reply (or its failure, as { type: 'failed' }). */
  request(m: Reply): Promise<Reply> {
    const id = this.next++;
    return new Promise((resolve) => {
      this.waiting.set(`${id}`, resolve);
      this.thread.postMessage({ ...m, id });
    });
  }

  send(m: Reply): void {
    if (!this.exited) this.thread.postMessage(m);
  }
}

export class PumpCluster {
  readonly workers: WorkerHandle[] = [];
  readonly count: number;
  private readonly log: LogFn;
  private readonly native: NativeUdp | null;
  /** Listener address:port by name, as worker 0 bound them. */
  addresses: Record<string, { address: string; port: number }> = {};
  /** Worker 0's listener sockets, by name: the steering program attaches through them. */
  private fds: Record<string, number> = {};
  private stopping = false;

  constructor(private text: string, private settings: PumpSettings, private described: Described, opts: ClusterOptions) {
    this.log = opts.log;
    this.native = opts.native;
    let count = opts.workers ?? (this.native ? availableParallelism() : 1);
    if (count > 1 && !this.native) {
      this.log('warn', 'one worker: several need the native UDP addon (SO_REUSEPORT steering)', { asked: count });
      count = 1;
    }
    const unfit = count > 1 ? this.settings.listeners.map((l) => this.fits(l.protocol, count)).find((why) => why !== null) : null;
    if (unfit) {
      this.log('warn', 'one worker: the steering program cannot be attached', { asked: count, reason: unfit });
      count = 1;
    }
    this.count = count;
  }

  /**
   * Whether the kernel takes this configuration's steering program (it may not: more than
   * BPF_MAXINSNS instructions, or more than net.core.optmem_max allows). Tried on a socket
   * of its own, before any worker binds, so a refusal means one worker rather than several
   * unsteered ones (which would split flows). Returns null, or why not.
   */
  private fits(protocol: 'vxlan' | 'geneve', workers: number): string | null {
    const program = this.program(protocol, workers);
    if (!program) return 'more instructions than a classic BPF program may have (NAT addresses)';
    const native = this.native!;
    let fd = -1;
    try {
      fd = native.open(4, '127.0.0.1', 0, true, 0, 0);
      native.attachReuseportCbpf(fd, program);
      return null;
    } catch (e: any) {
      return `${e.code ?? 'error'}: ${e.message}${e.code === 'ENOMEM' ? ' (raise net.core.optmem_max)' : ''}`;
    } finally {
      if (fd >= 0) native.close(fd);
    }
  }

  /** The steering program of a listener's protocol for `workers` sockets (null: too large). */
  private program(protocol: 'vxlan' | 'geneve', workers = this.count): Uint8Array | null {
    const d = this.described;
    const nat = d.rules.filter((r) => !r.floatingIp);
    return steeringProgram({
      workers, protocol,
      natFrontends: [...new Set(nat.map((r) => d.frontends[r.frontend].address))],
      natBackends: [...new Set(nat.flatMap((r) => d.backendPools[r.backendPool].backends.map((b) => d.backends[b].address)))],
    });
  }

  /** Starts the worker threads (each configures its core); no socket yet. */
  async spawn(): Promise<void> {
    const url = new URL('./pumpworker.mjs', import.meta.url);
    for (let index = 0; index < this.count; index++) {
      const data: WorkerData = { index, workers: this.count, text: this.text, native: !!this.native };
      const thread = new Worker(url, { workerData: data });
      const w = new WorkerHandle(index, thread,
        (m) => this.log(m.level, m.msg, m.fields),
        (code) => { if (code !== 0 && !this.stopping) this.log('error', 'worker exited', { worker: index, code }); });
      this.workers.push(w);
      const ready = await Promise.race([
        w.expect('ready'),
        new Promise<Reply>((r) => thread.once('error', (e) => r({ type: 'failed', error: String(e) }))),
      ]);
      if (ready.type !== 'ready') throw new Error(`worker ${index} did not start: ${ready.error}`);
    }
  }

  /** Binds every worker's listeners, in worker order; rejects when a listener cannot bind. */
  async bind(): Promise<void> {
    // A steering program numbers a group's sockets by the order they joined it.
    for (const w of this.workers) {
      // Listeners on port 0 (any free port): the others join the port worker 0 got.
      const started = await this.call(w, { type: 'start', ports: this.ports() }, 'started');
      if (w.index === 0) this.addresses = started.addresses;
    }
    this.steer();
  }

  /** A request to one worker; its failure becomes an exception (with the worker's error code). */
  private async call(w: WorkerHandle, m: Reply, expected: string): Promise<Reply> {
    const reply = await w.request(m);
    if (reply.type === 'failed') {
      const e: any = new Error(`worker ${w.index}: ${reply.message ?? reply.error}`);
      e.code = reply.error;
      throw e;
    }
    if (reply.type !== expected) throw new Error(`worker ${w.index}: expected ${expected}, got ${reply.type}`);
    if (w.index === 0 && reply.fds) this.fds = reply.fds;
    return reply;
  }

  /** The ports worker 0's listeners are bound to, by name. */
  private ports(): Record<string, number> {
    return Object.fromEntries(Object.entries(this.addresses).map(([name, a]) => [name, a.port]));
  }

  /** Attaches the steering program to every listener's group, through worker 0's socket (one program serves a group). */
  private steer(): void {
    if (this.count < 2 || !this.native) return;
    for (const l of this.settings.listeners) {
      const fd = this.fds[l.name];
      if (fd === undefined || fd < 0) continue;
      this.native.attachReuseportCbpf(fd, this.program(l.protocol)!);
    }
  }

  /** A probe result, applied by every worker's core as the control applied it. */
  probe(target: number, ok: boolean, now: number): void {
    for (const w of this.workers) w.send({ type: 'probe', target, ok, now });
  }

  /**
   * Reload: every worker reconfigures (flows kept); sockets that change are closed in all
   * workers first, then bound in worker order; the steering program (its NAT addresses
   * may have changed) is attached again.
   */
  async reconfigure(text: string, settings: PumpSettings, described: Described): Promise<Record<string, string[]>> {
    this.text = text;
    this.settings = settings;
    this.described = described;
    const reports = await Promise.all(this.workers.map((w) => this.call(w, { type: 'configure', text, deferBind: true }, 'configured')));
    const failed = new Set<string>();
    for (const w of this.workers) {
      const bound = await this.call(w, { type: 'bind', ports: w.index === 0 ? {} : this.ports() }, 'bound');
      for (const name of bound.failed) failed.add(name);
      if (w.index === 0) this.addresses = bound.addresses;
    }
    this.steer();
    return { ...reports[0].report, failed: [...failed] };
  }

  /** Every worker's counters, added up. */
  async snapshot(): Promise<{ core: CoreSnapshot; pump: PumpSnapshot[] }> {
    const replies = await Promise.all(this.workers.map((w) => this.call(w, { type: 'snapshot' }, 'snapshot')));
    return { core: addCoreSnapshots(replies.map((r) => r.core)), pump: replies.map((r) => r.pump) };
  }

  /**
   * The tracked flows of every worker that pass `filter` (lib/lookup.ts listFlows), at
   * most `limit` in all, each with its worker; `entries` is the flow tables' fill.
   */
  async flows(filter: FlowFilter, limit: number): Promise<{ flows: (FlowInfo & { worker: number })[]; entries: number; truncated: boolean }> {
    const replies = await Promise.all(this.workers.map((w) => this.call(w, { type: 'flows', filter, limit: limit + 1 }, 'flows')));
    const all = replies.flatMap((r, worker) => (r.flows as FlowInfo[]).map((f) => ({ ...f, worker })));
    return { flows: all.slice(0, limit), entries: replies.reduce((n, r) => n + r.used, 0), truncated: all.length > limit };
  }

  /** Stops every worker gracefully; resolves with their final counters, added up. */
  async stop(): Promise<{ core: CoreSnapshot; pump: PumpSnapshot[]; uptimeSeconds: number } | null> {
    this.stopping = true;
    const replies = await Promise.all(this.workers.filter((w) => !w.exited).map((w) => this.call(w, { type: 'stop' }, 'stopped').catch(() => null)));
    await Promise.all(this.workers.map((w) => w.thread.terminate()));
    const ok = replies.filter((r): r is Reply => r !== null);
    if (ok.length === 0) return null;
    return { core: addCoreSnapshots(ok.map((r) => r.core)), pump: ok.map((r) => r.pump), uptimeSeconds: Math.max(...ok.map((r) => r.uptimeSeconds)) };
  }
}

/** The final counters of a stopped cluster, as the pump's `stopped` log line reports them. */
export function finalStats(final: { core: CoreSnapshot; pump: PumpSnapshot[]; uptimeSeconds: number }, d: Described): Record<string, unknown> {
  const listeners: Record<string, Record<string, unknown>> = {};
  for (const p of final.pump) {
    for (const l of p.listeners) {
      const acc = listeners[l.name] as any;
      if (!acc) { listeners[l.name] = { ...structuredClone(l.counters), queued: l.queued, socketDrops: l.socketDrops }; continue; }
      for (const [k, v] of Object.entries(l.counters)) {
        if (typeof v === 'number') acc[k] = k === 'queueHighWater' ? Math.max(acc[k], v) : acc[k] + v;
        else for (const [r, n] of Object.entries(v as Record<string, number>)) acc[k][r] = (acc[k][r] ?? 0) + n;
      }
      acc.queued += l.queued;
      acc.socketDrops = acc.socketDrops === null || l.socketDrops === null ? null : acc.socketDrops + l.socketDrops;
    }
  }
  const core: Record<string, number> = {};
  COUNTERS.forEach((name, i) => { core[name] = final.core.counters[i]; });
  REASONS.forEach((reason, i) => { if (reason) core[`reason.${reason}`] = final.core.counters[C_DROP_REASON_BASE + i]; });
  const backends: Record<string, unknown> = {};
  d.backends.forEach((b, i) => {
    backends[`${d.backendPools[b.pool].name}/${b.name}`] = {
      packets: final.core.backends[i].packets, flows: final.core.backends[i].newFlows, state: BACKEND_STATES[final.core.backendStates[i]],
    };
  });
  return {
    uptimeSeconds: final.uptimeSeconds,
    coreSeconds: Number(final.pump.reduce((n, p) => n + p.coreSeconds, 0).toFixed(6)),
    backpressureWaits: final.pump.reduce((n, p) => n + p.backpressureWaits, 0),
    workers: final.pump.length,
    listeners,
    core,
    flowTable: final.core.flowTable,
    backends,
  };
}
