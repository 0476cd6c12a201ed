// The packet pump: `haports pump --config CONFIG.json [--metrics HOST:PORT]`.
//
// A listener is a UDP socket that terminates a tunnel (VXLAN or GENEVE) and stands for
// one frontend of the configuration, the way an Azure Gateway Load Balancer's tunnel
// interface or an AWS GWLB endpoint stands for its load balancer: whatever arrives on it
// was routed to that frontend (next-hop use). The pump
//
//   receive ─▶ decap ─▶ bounded queue ─▶ batch: copy inner packets once into the core's
//   rx arena ─▶ core.process(n, now, listener's frontend, link type) ─▶ per verdict:
//   forward: send [the tunnel header as received ‖ the packet, from wasm memory] to the
//            chosen appliance's address (its backend address), UDP port `appliancePort`
//            (default: the listener's port), from the listener's own socket;
//   drop / nomatch: counted by the core, not sent.
//
// The return direction is the same path: an appliance (or the far side) sends the reply
// into the pump, the symmetric hash of an HA-ports rule picks the same appliance, and the
// tracked flow keeps it there. Packets are never routed by the pump itself.
//
// Two I/O paths. With the native addon (udpio.ts, nativeloop.ts) datagrams arrive by
// recvmmsg straight into the arena and leave by sendmmsg from it: no copy at all, and
// several workers (cluster.ts) share each listener address through SO_REUSEPORT with
// kernel steering. Without it, node:dgram, as follows.
//
// Zero copy: each inner packet is copied exactly once, from the received datagram into
// the rx arena; the outgoing datagram is gathered (sendmsg iovec) from a view of the
// received header and a view of wasm memory. A view of wasm memory must not change while
// the kernel has not taken it: when a send is queued (kernel send buffer full), the
// arena is "busy" and the next batch waits for the send queues to drain; meanwhile
// datagrams wait in the listener's bounded queue, and beyond `queuePackets` they are
// dropped and counted (queue-full). Send callbacks count sent packets and errors.
//
// Drops are counted by reason: the core's (haports_drops_total{stage="core"}) and the
// pump's own (stage="pump"): peer-not-allowed (checked first: a listener relays only for
// the peers it was given), tunnel-truncated, vxlan-no-vni-flag, geneve-bad-version,
// geneve-control, geneve-bad-options, geneve-unsupported-protocol, tunnel-empty,
// unknown-vni, queue-full, no-appliance-address (the backend's address family differs
// from the listener's), send-error, stopping (arrived after shutdown began). Drops of the
// kernel's socket receive buffer (the pump could not keep up) are read from
// /proc/net/udp{,6} (haports_pump_socket_drops_total).
//
// Logs are JSON lines on standard error: {"time","level","msg",...}. SIGTERM or SIGINT
// stops the pump gracefully: it stops accepting datagrams, processes what is queued,
// waits (at most 2 s) for queued sends, closes its sockets and writes a final "stopped"
// line with every counter.
//
// The configuration file is the haports configuration plus a "pump" section:
//   "pump": {
//     "listeners": [ { "name": "vx", "protocol": "vxlan", "frontend": "fe-v4",
//                      "bind": "10.9.0.1:4789", "appliancePort": 4789, "vnis": [100],
//                      "peers": ["10.9.0.0/24"] } ],
//     "batchSize": 256, "batchTimeoutMicros": 0, "queuePackets": 8192,
//     "socketBufferBytes": 4194304 }
// See README "Packet pump" for every field. Probes and their policy (thresholds, flap
// damping: the top-level "health" section) are the core's; the pump runs the probes.
// The pump reads its section, like every other part of the configuration, from the
// core's describe(): it never parses the configuration text itself.

import { createSocket, type Socket } from 'node:dgram';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Server } from 'node:http';
import { ACTION_FORWARD, ACTION_RESET, DESCRIPTOR, DESCRIPTOR_BYTES, NONE, VERDICT, VERDICT_BYTES } from '../lib/abi.js';
import { ConfigError, Core, type Described } from '../lib/core.js';
import {
  decap, decoded, tunnelErrorName, GENEVE_PORT, VXLAN_PORT, TUNNEL_ERRORS, type TunnelProtocol,
} from './tunnel.js';
import { HealthMonitor, type LogFn } from './probes.js';
import { PeerSet } from './peers.js';
import { NativeLoop } from './nativeloop.js';
import { addressWords, loadNative, type NativeUdp } from './udpio.js';
import { finalStats, PumpCluster } from './cluster.js';
import { adminRoutes } from './admin.js';
import { listFlows } from '../lib/lookup.js';
import { Announcer, notReadyReasons, readAnnounce, type AnnounceSettings } from './announce.js';
import { DROPS_HELP, MetricsWriter, parseHostPort, startMetricsServer, writeCoreMetrics } from './metrics.js';

// ---- Settings ----------------------------------------------------------------------

export interface ListenerSettings {
  name: string;
  protocol: TunnelProtocol;
  frontend: string;
  /** Address to bind (IP literal) and port (0: any free port). */
  host: string;
  port: number;
  /** UDP port of the appliances; default: the bind port (or the protocol's when that is 0). */
  appliancePort: number;
  /** Accepted VNIs (required: a listener relays nothing it was not told to). */
  vnis: Set<number>;
  /** Accepted source prefixes of the tunnel peers (required), as written and as a matcher. */
  peers: string[];
  peerSet: PeerSet;
}

export interface PumpSettings {
  listeners: ListenerSettings[];
  /** Packets per core batch (≤ the core's maxBatch). */
  batchSize: number;
  /** How long a partial batch may wait for more packets; 0: flush at the end of every event-loop turn. */
  batchTimeoutMicros: number;
  /** Datagrams waiting per listener before queue-full drops. */
  queuePackets: number;
  /** SO_RCVBUF / SO_SNDBUF of each listener socket (bytes; 0: the system's default). */
  socketBufferBytes: number;
  /** Inner TCP/UDP checksums: complete partial ones and count wrong ones, only count, or neither. */
  innerChecksums: InnerChecksums;
  /** Worker threads (cluster.ts); null: one per CPU with the native addon, else one. */
  workers: number | null;
  /** Native path: runs of equal-length datagrams to one appliance leave as one UDP GSO message. */
  udpSegmentation: boolean;
  /** Frontend addresses held on an interface while ready, for a BGP daemon to announce (announce.ts); null: none. */
  announce: AnnounceSettings | null;
}

export type InnerChecksums = 'complete' | 'count' | 'off';
const INNER_CHECKSUMS: InnerChecksums[] = ['complete', 'count', 'off'];

export const PUMP_DEFAULTS = {
  batchSize: 256, batchTimeoutMicros: 0, queuePackets: 8192, socketBufferBytes: 4 * 1024 * 1024,
};

const PUMP_FIELDS = ['listeners', 'batchSize', 'batchTimeoutMicros', 'queuePackets', 'socketBufferBytes', 'innerChecksums', 'workers', 'udpSegmentation', 'announce'];
const LISTENER_FIELDS = ['name', 'protocol', 'frontend', 'bind', 'appliancePort', 'vnis', 'peers'];

/**
 * Reads and checks the "pump" section of a configuration the core has accepted, from the
 * core's description of it. Returns every error as `path: reason` (the core's style), or
 * the settings.
 */
export function readPumpSettings(described: Described, maxBatch: number): { settings?: PumpSettings; errors: string[] } {
  const errors: string[] = [];
  const p = described.hostSections.pump as any;
  if (p === undefined) return { errors: ['pump: required (the listeners of the pump)'] };
  if (typeof p !== 'object' || p === null || Array.isArray(p)) return { errors: ['pump: must be an object'] };
  for (const k of Object.keys(p)) {
    if (k === 'health') errors.push('pump.health: moved to the top-level "health" section, which the core reads (docs/health.md)');
    else if (!PUMP_FIELDS.includes(k)) errors.push(`pump.${k}: unknown field`);
  }

  const int = (path: string, v: unknown, min: number, max: number, dflt: number): number => {
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      errors.push(`${path}: must be an integer from ${min} to ${max}`);
      return dflt;
    }
    return v;
  };
  const batchSize = int('pump.batchSize', p.batchSize, 1, maxBatch, Math.min(PUMP_DEFAULTS.batchSize, maxBatch));
  const batchTimeoutMicros = int('pump.batchTimeoutMicros', p.batchTimeoutMicros, 0, 1_000_000, PUMP_DEFAULTS.batchTimeoutMicros);
  const queuePackets = int('pump.queuePackets', p.queuePackets, 1, 1 << 20, Math.max(PUMP_DEFAULTS.queuePackets, batchSize));
  const socketBufferBytes = int('pump.socketBufferBytes', p.socketBufferBytes, 0, 1 << 30, PUMP_DEFAULTS.socketBufferBytes);
  const workers = p.workers === undefined ? null : int('pump.workers', p.workers, 1, 256, 1);
  let innerChecksums: InnerChecksums = 'complete';
  if (p.innerChecksums !== undefined) {
    if (!INNER_CHECKSUMS.includes(p.innerChecksums)) errors.push('pump.innerChecksums: must be "complete", "count" or "off"');
    else innerChecksums = p.innerChecksums;
  }

  let udpSegmentation = true;
  if (p.udpSegmentation !== undefined) {
    if (typeof p.udpSegmentation !== 'boolean') errors.push('pump.udpSegmentation: must be true or false');
    else udpSegmentation = p.udpSegmentation;
  }

  const frontends = described.frontends.map((f) => f.name);
  const listeners: ListenerSettings[] = [];
  if (!Array.isArray(p.listeners) || p.listeners.length === 0) {
    errors.push('pump.listeners: required, a non-empty array');
  } else {
    const names = new Set<string>();
    p.listeners.forEach((l: any, i: number) => {
      const at = `pump.listeners[${i}]`;
      if (typeof l !== 'object' || l === null || Array.isArray(l)) { errors.push(`${at}: must be an object`); return; }
      const before = errors.length;
      for (const k of Object.keys(l)) if (!LISTENER_FIELDS.includes(k)) errors.push(`${at}.${k}: unknown field`);
      if (typeof l.name !== 'string' || l.name === '') errors.push(`${at}.name: required, a non-empty string`);
      else if (names.has(l.name)) errors.push(`${at}.name: duplicate listener name ${JSON.stringify(l.name)}`);
      else names.add(l.name);
      if (l.protocol !== 'vxlan' && l.protocol !== 'geneve') errors.push(`${at}.protocol: must be "vxlan" or "geneve"`);
      if (typeof l.frontend !== 'string') errors.push(`${at}.frontend: required, the name of a frontend`);
      else if (!frontends.includes(l.frontend)) errors.push(`${at}.frontend: unknown frontend ${JSON.stringify(l.frontend)}`);
      const defaultPort = l.protocol === 'geneve' ? GENEVE_PORT : VXLAN_PORT;
      let host = '';
      let port = defaultPort;
      if (typeof l.bind !== 'string') errors.push(`${at}.bind: required, "ADDRESS:PORT" (an IPv6 address in brackets)`);
      else {
        try {
          ({ host, port } = parseHostPort(l.bind, defaultPort));
          if (isIP(host) === 0) errors.push(`${at}.bind: ${JSON.stringify(host)} is not an IP address`);
        } catch (e: any) {
          errors.push(`${at}.bind: ${e.message}`);
        }
      }
      const appliancePort = int(`${at}.appliancePort`, l.appliancePort, 1, 65535, port === 0 ? defaultPort : port);
      let vnis = new Set<number>();
      if (!Array.isArray(l.vnis) || l.vnis.length === 0
        || !l.vnis.every((v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffff)) {
        errors.push(`${at}.vnis: required, a non-empty array of 24-bit integers (the VNIs this listener relays)`);
      } else vnis = new Set(l.vnis);
      const family = isIP(host) === 6 ? 6 : 4;
      let peerSet = new PeerSet([], family);
      if (!Array.isArray(l.peers) || l.peers.length === 0) {
        errors.push(`${at}.peers: required, a non-empty array of source prefixes ("10.9.0.0/24", "fd00::/64", or one address)`
          + ' of the tunnel peers this listener accepts');
      } else {
        try { peerSet = new PeerSet(l.peers, family); } catch (e: any) { errors.push(`${at}.peers${e.message}`); }
      }
      // Each error names the listener beside its path, as the core's errors name their objects.
      if (typeof l.name === 'string' && l.name !== '') {
        for (let k = before; k < errors.length; k++) {
          const cut = errors[k].indexOf(': ');
          errors[k] = `${errors[k].slice(0, cut)}: listener ${JSON.stringify(l.name)}: ${errors[k].slice(cut + 2)}`;
        }
      }
      if (errors.length === before) {
        listeners.push({
          name: l.name, protocol: l.protocol, frontend: l.frontend, host, port, appliancePort, vnis, peers: [...l.peers], peerSet,
        });
      }
    });
  }
  const announce = readAnnounce(p.announce, errors);
  if (errors.length > 0) return { errors };
  return { settings: { listeners, batchSize, batchTimeoutMicros, queuePackets, socketBufferBytes, innerChecksums, workers, udpSegmentation, announce }, errors };
}

// ---- Logging -----------------------------------------------------------------------

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
const LEVELS: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

/** A JSON-lines logger: {"time","level","msg",...fields} per line. */
export function jsonLogger(out: NodeJS.WritableStream, level: LogLevel = 'info'): LogFn {
  const max = LEVELS[level];
  return (l, msg, fields = {}) => {
    if (LEVELS[l] > max) return;
    out.write(JSON.stringify({ time: new Date().toISOString(), level: l, msg, ...fields }) + '\n');
  };
}

// ---- The pump ----------------------------------------------------------------------

/** Packets start on 8-byte boundaries in the arena. */
const ARENA_ALIGN = 8;
/** Longest wait for queued sends at shutdown (ms). */
const SHUTDOWN_DRAIN_MS = 2000;

export interface ListenerCounters {
  receivedPackets: number;
  receivedBytes: number;
  sentPackets: number;
  sentBytes: number;
  /** TCP RSTs sent for reset verdicts (enableTcpReset): two per verdict. */
  resetPackets: number;
  batches: number;
  batchPackets: number;
  queueHighWater: number;
  drops: Record<string, number>;
  sendErrors: Record<string, number>;
}

export class Listener {
  /** node:dgram path: the socket. Native path: `fd` and its watch. */
  socket!: Socket;
  fd = -1;
  watch = -1;
  boundPort = 0;
  /** Native path: appliance address words per core backend index (null: another family). */
  targetWords: (Int32Array | null)[] = [];
  /** The listener's frontend (core index); set again by each configuration. */
  frontend: number;
  family: 4 | 6;
  /** Appliance address per core backend index; null when its family differs from the socket's. */
  targets: (string | null)[] = [];
  /** Pass-through mode: the one appliance every packet goes to. */
  passTarget: string | null = null;
  // Bounded ring of datagrams waiting for a batch.
  readonly qMsg: (Buffer | undefined)[];
  readonly qHdr: Int32Array;
  readonly qLink: Uint8Array;
  /** The peer each datagram came from (where a reset's RST to the sender goes back to). */
  readonly qFrom: ({ address: string; port: number } | undefined)[];
  qHead = 0;
  qLen = 0;
  readonly counters: ListenerCounters = {
    receivedPackets: 0, receivedBytes: 0, sentPackets: 0, sentBytes: 0, resetPackets: 0, batches: 0,
    batchPackets: 0, queueHighWater: 0, drops: {}, sendErrors: {},
  };
  /** Last time a drop of each reason was logged (ms), to rate-limit drop logs. */
  readonly dropLoggedAt = new Map<string, number>();
  onSent!: (err: Error | null, bytes?: number) => void;
  onResetSent!: (err: Error | null) => void;

  constructor(public settings: ListenerSettings, core: Core, queuePackets: number) {
    this.frontend = core.names.frontends.indexOf(settings.frontend);
    this.family = isIP(settings.host) === 6 ? 6 : 4;
    this.qMsg = new Array(queuePackets);
    this.qHdr = new Int32Array(queuePackets);
    this.qLink = new Uint8Array(queuePackets);
    this.qFrom = new Array(queuePackets);
  }

  get name(): string { return this.settings.name; }
}

export interface PumpOptions {
  log?: LogFn;
  /**
   * Benchmark baseline: the same sockets, decapsulation, queues, batches and sends, but
   * no core: every packet goes unchanged to the first appliance of the listener's
   * frontend. (bench/pump compares the two in one run.)
   */
  passThrough?: boolean;
  /**
   * The dataplane's clock in milliseconds (never decreasing): the flow table's idle
   * timeouts run on it. Default performance.now(); tests pass one they can advance.
   */
  clock?: () => number;
  /**
   * The native UDP addon (udpio.ts loadNative()): batched, zero-copy I/O through wasm
   * memory (nativeloop.ts). Without it the pump uses node:dgram.
   */
  native?: NativeUdp | null;
  /** Native path: bind with SO_REUSEPORT (several workers on one listener address). */
  reusePort?: boolean;
}

export class Pump {
  listeners: Listener[];
  private readonly log: LogFn;
  private readonly passThrough: boolean;
  private flushScheduled = false;
  private arenaBusy = false;
  private stopping = false;
  /** A reconfiguration is waiting for the arena: datagrams queue, batches wait. */
  private paused = false;
  private drainWaiter: (() => void) | null = null;
  private idleWaiter: (() => void) | null = null;
  /** Kernel drops read just before the sockets closed (stats after stop()). */
  private finalSocketDrops: (number | null)[] | null = null;
  private readonly startedAt = performance.now();
  /** Time spent copying into the arena and in core.process (ms). */
  coreMs = 0;
  /** Batches after which the kernel had queued sends, so the next batch waited (back-pressure). */
  backpressureWaits = 0;
  // Per-batch scratch (sized to the core's batch).
  private readonly bMsg: (Buffer | undefined)[];
  private readonly bFrom: ({ address: string; port: number } | undefined)[];
  private readonly bHdr: Int32Array;
  private readonly bOff: Int32Array;
  private readonly bLen: Int32Array;
  private readonly flushCb = () => { this.flushScheduled = false; this.flush(); };
  readonly clock: () => number;
  /** The native I/O path, when the addon is given (else node:dgram). */
  readonly native: NativeUdp | null;
  private readonly reusePort: boolean;
  private nativeLoop: NativeLoop | null = null;
  /** Listeners a reconfiguration created that are not bound yet (bindPending). */
  private unbound: Listener[] = [];

  constructor(readonly core: Core, public settings: PumpSettings, opts: PumpOptions = {}) {
    this.log = opts.log ?? (() => {});
    this.passThrough = !!opts.passThrough;
    this.clock = opts.clock ?? (() => performance.now());
    this.native = opts.passThrough ? null : opts.native ?? null;
    this.reusePort = !!opts.reusePort;
    if (this.native) this.nativeLoop = new NativeLoop(this.native, this, settings.batchSize, settings.udpSegmentation);
    this.listeners = settings.listeners.map((l) => this.listener(l));
    this.configured();
    const n = core.maxBatch;
    this.bMsg = new Array(n);
    this.bFrom = new Array(n);
    this.bHdr = new Int32Array(n);
    this.bOff = new Int32Array(n);
    this.bLen = new Int32Array(n);
  }

  private listener(settings: ListenerSettings): Listener {
    const L = new Listener(settings, this.core, this.settings.queuePackets);
    L.onSent = (err, bytes) => this.onSent(L, err, bytes);
    L.onResetSent = (err) => this.onResetSent(L, err);
    return L;
  }

  /** What each listener takes from the core's configuration: its frontend and the appliance addresses. */
  private configured(): void {
    // Senders with checksum offload over veth hand their VTEP partial inner checksums.
    this.core.setChecksumPolicy(this.settings.innerChecksums);
    const d = this.core.describe();
    for (const L of this.listeners) {
      L.frontend = d.frontends.findIndex((f) => f.name === L.settings.frontend);
      L.targets = d.backends.map((b) => (b.family === L.family ? b.address : null));
      L.targetWords = L.targets.map((a) => (a === null ? null : addressWords(a).words));
      // Pass-through target: the first backend of the first rule of the frontend.
      const rule = d.rules.find((r) => r.frontend === L.frontend);
      const first = rule ? d.backendPools[rule.backendPool].backends[0] ?? -1 : -1;
      L.passTarget = first >= 0 ? L.targets[first] : null;
    }
  }

  /**
   * Applies a new configuration while running: `text` (which the core's reader has
   * accepted) and its pump `settings` (from readPumpSettings). What is queued runs under
   * the old one first; then the core is reconfigured, which keeps every tracked flow whose
   * rule and backend remain (so flows that failover moved stay where they are). A
   * listener whose socket settings are unchanged keeps its socket and its queue; one
   * whose address, protocol, queue or buffers changed is rebound; removed ones close,
   * new ones bind. A listener that cannot bind is logged and left out; the others run on.
   */
  async reconfigure(
    text: string, settings: PumpSettings, opts: { deferBind?: boolean } = {},
  ): Promise<Record<'kept' | 'rebound' | 'added' | 'removed' | 'failed', string[]>> {
    const report = { kept: [] as string[], rebound: [] as string[], added: [] as string[], removed: [] as string[], failed: [] as string[] };
    await this.quiesce();
    try {
      this.core.configure(text);
      const same = (a: ListenerSettings, b: ListenerSettings) => a.protocol === b.protocol && a.host === b.host
        && a.port === b.port && settings.queuePackets === this.settings.queuePackets
        && settings.socketBufferBytes === this.settings.socketBufferBytes;
      const old = new Map(this.listeners.map((L) => [L.name, L]));
      const next: Listener[] = [];
      const fresh: Listener[] = [];
      for (const ls of settings.listeners) {
        const L = old.get(ls.name);
        if (L && same(L.settings, ls)) {
          L.settings = ls;
          old.delete(ls.name);
          next.push(L);
          report.kept.push(ls.name);
        } else {
          (L ? report.rebound : report.added).push(ls.name);
          const n = this.listener(ls);
          fresh.push(n);
          next.push(n);
        }
      }
      // Close what goes (or is rebound: its address may be the new one's) before binding.
      for (const L of old.values()) {
        if (!settings.listeners.some((ls) => ls.name === L.name)) report.removed.push(L.name);
        await this.close(L);
      }
      if (this.native && (settings.batchSize !== this.settings.batchSize || settings.udpSegmentation !== this.settings.udpSegmentation)) {
        this.nativeLoop = new NativeLoop(this.native, this, settings.batchSize, settings.udpSegmentation);
      }
      this.settings = settings;
      this.listeners = next;
      this.unbound = fresh;
      this.configured();
      // Several workers bind a listener in worker order (cluster.ts): they bind later.
      if (!opts.deferBind) report.failed.push(...await this.bindPending());
    } finally {
      this.paused = false;
      this.scheduleFlush();
    }
    return report;
  }

  /** Binds the listeners a reconfiguration added or changed; returns the names of those that could not bind (left out). */
  async bindPending(): Promise<string[]> {
    const failed: string[] = [];
    for (const L of this.unbound) {
      try {
        await this.bind(L);
      } catch (e: any) {
        failed.push(L.name);
        this.listeners.splice(this.listeners.indexOf(L), 1);
        this.log('error', 'cannot bind a listener', { listener: L.name, error: e.code ?? String(e), message: e.message });
      }
    }
    this.unbound = [];
    return failed;
  }

  /**
   * Runs what is queued, then holds batches (datagrams keep queueing) and waits until no
   * send still reads the arena (at most SHUTDOWN_DRAIN_MS): the core may then replace
   * its tables and grow its memory.
   */
  private async quiesce(): Promise<void> {
    this.flush();
    this.paused = true;
    if (!this.arenaBusy) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => { this.idleWaiter = null; resolve(); }, SHUTDOWN_DRAIN_MS);
      this.idleWaiter = () => { clearTimeout(timer); resolve(); };
    });
  }

  /** Binds every listener's socket. Rejects (and closes what was opened) on a bind error. */
  async start(): Promise<void> {
    try {
      for (const L of this.listeners) await this.bind(L);
    } catch (e) {
      for (const L of this.listeners) if (L.socket) try { L.socket.close(); } catch { /* not bound */ }
      throw e;
    }
  }

  /**
   * Ports for listeners configured with port 0 (any free port): in a group of workers the
   * first binds any port and the others must join it (cluster.ts sets them).
   */
  readonly ports = new Map<string, number>();

  private bind(L: Listener): Promise<void> {
    const bufferBytes = this.settings.socketBufferBytes;
    if (this.native) {
      // Native path: recvmmsg/sendmmsg on the fd; readable callbacks run the batch loop.
      const native = this.native;
      const port = L.settings.port === 0 ? this.ports.get(L.name) ?? 0 : L.settings.port;
      L.fd = native.open(L.family, L.settings.host, port, this.reusePort, bufferBytes, bufferBytes);
      L.boundPort = native.localPort(L.fd);
      L.watch = native.watch(L.fd, () => { if (!this.paused && !this.stopping) this.nativeLoop!.poll(L); });
      return Promise.resolve();
    }
    const socket = createSocket({
      type: L.family === 6 ? 'udp6' : 'udp4',
      ...(bufferBytes > 0 ? { recvBufferSize: bufferBytes, sendBufferSize: bufferBytes } : {}),
      // Targets are IP literals: answer the lookup at once, so that send() reaches the
      // kernel synchronously (dns.lookup would defer every send to the next tick).
      lookup: (address: string, _family: unknown, cb: (err: Error | null, address: string, family: number) => void) =>
        cb(null, address, L.family),
    } as any);
    L.socket = socket;
    return new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(L.settings.port, L.settings.host, () => {
        socket.off('error', reject);
        socket.on('error', (e) => this.log('error', 'socket error', { listener: L.name, error: String(e) }));
        socket.on('message', (msg: Buffer, rinfo) => this.receive(L, msg, rinfo));
        resolve();
      });
    });
  }

  /** The address:port each listener is bound to. */
  addresses(): Record<string, { address: string; port: number }> {
    const out: Record<string, { address: string; port: number }> = {};
    for (const L of this.listeners) out[L.name] = endpointOf(L);
    return out;
  }

  /** The listeners' socket fds (native path; -1 for node:dgram), by name: a reuseport group's steering attaches to one. */
  fds(): Record<string, number> {
    return Object.fromEntries(this.listeners.map((L) => [L.name, L.fd]));
  }

  private async close(L: Listener): Promise<void> {
    if (L.fd >= 0) {
      this.native!.unwatch(L.watch);
      this.native!.close(L.fd);
      L.fd = -1;
      return;
    }
    await new Promise<void>((r) => L.socket.close(() => r()));
  }

  drop(L: Listener, reason: string, n = 1): void {
    L.counters.drops[reason] = (L.counters.drops[reason] ?? 0) + n;
    const now = performance.now();
    const last = L.dropLoggedAt.get(reason);
    // The first drop of each reason is a warning; later ones at most once a second, in debug.
    if (last === undefined) {
      L.dropLoggedAt.set(reason, now);
      this.log('warn', 'dropped', { listener: L.name, reason, note: 'first of its kind; all are counted in the metrics' });
    } else if (now - last >= 1000) {
      L.dropLoggedAt.set(reason, now);
      this.log('debug', 'dropped', { listener: L.name, reason, total: L.counters.drops[reason] });
    }
  }

  private receive(L: Listener, msg: Buffer, from: { address: string; port: number }): void {
    const c = L.counters;
    c.receivedPackets++;
    c.receivedBytes += msg.length;
    if (this.stopping) { this.drop(L, 'stopping'); return; }
    if (!L.settings.peerSet.has(from.address)) { this.drop(L, 'peer-not-allowed'); return; }
    const hdr = decap(L.settings.protocol, msg);
    if (hdr < 0) { this.drop(L, tunnelErrorName(hdr)); return; }
    if (!L.settings.vnis.has(decoded.vni)) { this.drop(L, 'unknown-vni'); return; }
    if (L.qLen === L.qMsg.length) { this.drop(L, 'queue-full'); return; }
    const at = (L.qHead + L.qLen) % L.qMsg.length;
    L.qMsg[at] = msg;
    L.qFrom[at] = from;
    L.qHdr[at] = hdr;
    L.qLink[at] = decoded.link;
    L.qLen++;
    if (L.qLen > c.queueHighWater) c.queueHighWater = L.qLen;
    if (L.qLen >= this.settings.batchSize) this.flush();
    else this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    const us = this.settings.batchTimeoutMicros;
    // 0: after the I/O phase of this event-loop turn (all datagrams libuv read in it).
    if (us === 0) setImmediate(this.flushCb);
    else setTimeout(this.flushCb, Math.max(1, Math.ceil(us / 1000)));
  }

  /** Runs every queued datagram through the core and sends the forwarded ones. */
  flush(): void {
    if (this.arenaBusy || this.paused) return; // resumed by onSent once the send queues drain, or after a reconfiguration
    for (const L of this.listeners) {
      while (L.qLen > 0) {
        if (this.passThrough) this.passBatch(L);
        else this.batch(L);
        if (this.arenaBusy) return;
      }
    }
    this.maybeDrained();
  }

  /** One core batch from the head of L's queue: same link type, ≤ batchSize, fits the arena. */
  private batch(L: Listener): void {
    const core = this.core;
    const t0 = performance.now();
    const now = this.clock();
    let mem = core.memory;
    const arenaBase = core.exports.rxArenaPtr();
    const arenaSize = core.arenaSize;
    const descBase = core.exports.descriptorsPtr();
    const dv = new DataView(mem.buffer);
    const cap = L.qMsg.length;
    const link = L.qLink[L.qHead];
    const max = this.settings.batchSize;
    let n = 0;
    let off = 0;
    while (n < max && L.qLen > 0) {
      const q = L.qHead;
      if (L.qLink[q] !== link) break;
      const msg = L.qMsg[q]!;
      const hdr = L.qHdr[q];
      const len = msg.length - hdr;
      if (off + len > arenaSize) break;
      mem.set(msg.subarray(hdr), arenaBase + off);
      dv.setUint32(descBase + n * DESCRIPTOR_BYTES + DESCRIPTOR.offset, off, true);
      dv.setUint32(descBase + n * DESCRIPTOR_BYTES + DESCRIPTOR.length, len, true);
      this.bMsg[n] = msg;
      this.bFrom[n] = L.qFrom[q];
      L.qFrom[q] = undefined;
      this.bHdr[n] = hdr;
      this.bOff[n] = off;
      this.bLen[n] = len;
      n++;
      off = (off + len + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
      L.qMsg[q] = undefined;
      L.qHead = q + 1 === cap ? 0 : q + 1;
      L.qLen--;
    }
    core.process(n, now, L.frontend, link);
    this.coreMs += performance.now() - t0;
    L.counters.batches++;
    L.counters.batchPackets += n;

    mem = core.memory;
    const verdicts = core.exports.verdictsPtr();
    const socket = L.socket;
    const port = L.settings.appliancePort;
    for (let i = 0; i < n; i++) {
      const v = verdicts + i * VERDICT_BYTES;
      const msg = this.bMsg[i]!;
      const from = this.bFrom[i];
      this.bMsg[i] = undefined;
      this.bFrom[i] = undefined;
      const action = mem[v + VERDICT.action];
      if (action !== ACTION_FORWARD && action !== ACTION_RESET) continue; // drop / nomatch: counted by the core
      const b = mem[v + VERDICT.backend] | (mem[v + VERDICT.backend + 1] << 8);
      const target = b === NONE ? null : L.targets[b];
      if (action === ACTION_RESET) {
        // enableTcpReset: the packet's flow was idle past its timeout. Its RSTs leave in
        // the same tunnel: one back to the peer it came from, one to the flow's appliance.
        const rst = core.resets(i)!;
        const tunnel = msg.subarray(0, this.bHdr[i]);
        if (from) socket.send([tunnel, rst.toSender], from.port, from.address, L.onResetSent);
        if (target) socket.send([tunnel, rst.toBackend], port, target, L.onResetSent);
        continue;
      }
      if (!target) { this.drop(L, 'no-appliance-address'); continue; }
      const p = arenaBase + this.bOff[i];
      socket.send([msg.subarray(0, this.bHdr[i]), mem.subarray(p, p + this.bLen[i])], port, target, L.onSent);
    }
    if (socket.getSendQueueCount() > 0) {
      this.arenaBusy = true;
      this.backpressureWaits++;
    }
  }

  /** The baseline: the same path without the core (bench/pump). */
  private passBatch(L: Listener): void {
    const cap = L.qMsg.length;
    const max = this.settings.batchSize;
    const target = L.passTarget;
    const port = L.settings.appliancePort;
    let n = 0;
    while (n < max && L.qLen > 0) {
      const q = L.qHead;
      const msg = L.qMsg[q]!;
      L.qMsg[q] = undefined;
      L.qHead = q + 1 === cap ? 0 : q + 1;
      L.qLen--;
      n++;
      if (!target) { this.drop(L, 'no-appliance-address'); continue; }
      // Views of the received datagram (Node keeps them alive until sent).
      L.socket.send([msg.subarray(0, L.qHdr[q]), msg.subarray(L.qHdr[q])], port, target, L.onSent);
    }
    L.counters.batches++;
    L.counters.batchPackets += n;
  }

  private onSent(L: Listener, err: Error | null, bytes?: number): void {
    if (err) {
      const code = (err as any).code ?? 'error';
      L.counters.sendErrors[code] = (L.counters.sendErrors[code] ?? 0) + 1;
      this.drop(L, 'send-error');
    } else {
      L.counters.sentPackets++;
      L.counters.sentBytes += bytes ?? 0;
    }
    this.sendDone();
  }

  private onResetSent(L: Listener, err: Error | null): void {
    if (err) {
      const code = (err as any).code ?? 'error';
      L.counters.sendErrors[code] = (L.counters.sendErrors[code] ?? 0) + 1;
    } else {
      L.counters.resetPackets++;
    }
    this.sendDone();
  }

  /** A send finished: the arena is free again once every send queue has drained. */
  private sendDone(): void {
    if (this.arenaBusy && this.listeners.every((x) => queuedSends(x) === 0)) {
      this.arenaBusy = false;
      if (this.idleWaiter) {
        const w = this.idleWaiter;
        this.idleWaiter = null;
        w();
      }
      if (this.listeners.some((x) => x.qLen > 0)) this.scheduleFlush();
    }
    this.maybeDrained();
  }

  private maybeDrained(): void {
    if (this.drainWaiter && !this.arenaBusy && this.listeners.every((x) => x.qLen === 0 && queuedSends(x) === 0)) {
      const w = this.drainWaiter;
      this.drainWaiter = null;
      w();
    }
  }

  /**
   * Stops gracefully: no more datagrams are accepted (counted as "stopping"), the queued
   * ones are processed and sent, queued sends are awaited (at most 2 s), sockets closed.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => { this.drainWaiter = null; resolve(); }, SHUTDOWN_DRAIN_MS);
      this.drainWaiter = () => { clearTimeout(timer); resolve(); };
      this.flush();
    });
    // Send callbacks of the last batch arrive on the next tick.
    await new Promise((r) => setImmediate(r));
    this.finalSocketDrops = socketDrops(this.listeners.map(endpointOf));
    await Promise.all(this.listeners.map((L) => this.close(L)));
  }

  uptimeSeconds(): number {
    return Number(((performance.now() - this.startedAt) / 1000).toFixed(3));
  }

  /** Every counter of the pump and the core, as one JSON-able object. */
  stats(): Record<string, unknown> {
    const core = this.core;
    const listeners: Record<string, unknown> = {};
    const kernel = this.finalSocketDrops ?? socketDrops(this.listeners.map(endpointOf));
    this.listeners.forEach((L, i) => {
      listeners[L.name] = { ...L.counters, queued: L.qLen, socketDrops: kernel[i] };
    });
    const names = core.names;
    const backends: Record<string, unknown> = {};
    core.backendCounters().forEach((c, b) => {
      backends[`${names.pools[names.backendPool[b]]}/${names.backends[b]}`] = {
        packets: c.packets, flows: c.newFlows, state: core.backendState(b),
      };
    });
    return {
      uptimeSeconds: Number(((performance.now() - this.startedAt) / 1000).toFixed(3)),
      coreSeconds: Number((this.coreMs / 1000).toFixed(6)),
      backpressureWaits: this.backpressureWaits,
      listeners,
      core: core.counters(),
      flowTable: { used: core.exports.flowTableUsed(), capacity: core.exports.flowTableCapacity() },
      backends,
    };
  }

  /** The pump's own counters as plain numbers (a worker sends them to the metrics process). */
  snapshot(): PumpSnapshot {
    const kernel = this.finalSocketDrops ?? socketDrops(this.listeners.map(endpointOf));
    return {
      listeners: this.listeners.map((L, i) => ({
        name: L.name, counters: structuredClone(L.counters), queued: L.qLen, capacity: L.qMsg.length, socketDrops: kernel[i],
      })),
      coreSeconds: this.coreMs / 1000,
      backpressureWaits: this.backpressureWaits,
    };
  }

  /** Pump families: haports_pump_*{listener}, and stage="pump" drops in haports_drops_total. */
  writeMetrics(w: MetricsWriter): void {
    writePumpMetrics(w, [this.snapshot()]);
  }
}

export interface PumpSnapshot {
  listeners: { name: string; counters: ListenerCounters; queued: number; capacity: number; socketDrops: number | null }[];
  coreSeconds: number;
  backpressureWaits: number;
}

/** The pump families of one pump or several workers' (summed per listener). */
export function writePumpMetrics(w: MetricsWriter, snapshots: PumpSnapshot[]): void {
  type Row = PumpSnapshot['listeners'][number];
  const byName = new Map<string, Row[]>();
  for (const s of snapshots) for (const l of s.listeners) byName.set(l.name, [...(byName.get(l.name) ?? []), l]);
  const each = (name: string, type: 'counter' | 'gauge', help: string, value: (l: Row) => number | null, combine = (a: number, b: number) => a + b) => {
    w.family(name, type, help);
    for (const [listener, rows] of byName) {
      const values = rows.map(value).filter((v): v is number => v !== null);
      if (values.length > 0) w.sample(values.reduce(combine), { listener });
    }
  };
  each('haports_pump_received_packets_total', 'counter', 'Datagrams received by the listener.', (l) => l.counters.receivedPackets);
  each('haports_pump_received_bytes_total', 'counter', 'UDP payload bytes received by the listener.', (l) => l.counters.receivedBytes);
  each('haports_pump_sent_packets_total', 'counter', 'Datagrams sent to appliances.', (l) => l.counters.sentPackets);
  each('haports_pump_resets_sent_total', 'counter', 'TCP RSTs sent for flows idle past their timeout (enableTcpReset): to the sender and to the appliance.', (l) => l.counters.resetPackets);
  each('haports_pump_sent_bytes_total', 'counter', 'UDP payload bytes sent to appliances.', (l) => l.counters.sentBytes);
  each('haports_pump_batches_total', 'counter', 'Batches run through the core.', (l) => l.counters.batches);
  each('haports_pump_batch_packets_total', 'counter', 'Packets in those batches (÷ batches = mean batch size).', (l) => l.counters.batchPackets);
  each('haports_pump_queue_packets', 'gauge', 'Datagrams waiting for a batch.', (l) => l.queued);
  each('haports_pump_queue_high_water_packets', 'gauge', 'Most datagrams ever waiting at once (the highest of the workers).', (l) => l.counters.queueHighWater, Math.max);
  each('haports_pump_queue_capacity_packets', 'gauge', 'Queue bound (pump.queuePackets, per worker).', (l) => l.capacity, Math.max);
  each('haports_pump_socket_drops_total', 'counter', 'Datagrams the kernel dropped because the socket receive buffer was full.', (l) => l.socketDrops);
  w.family('haports_pump_send_errors_total', 'counter', 'Failed sends to appliances, by error code.');
  for (const [listener, rows] of byName) {
    const codes = new Map<string, number>();
    for (const r of rows) for (const [code, n] of Object.entries(r.counters.sendErrors)) codes.set(code, (codes.get(code) ?? 0) + n);
    for (const [code, n] of codes) w.sample(n, { listener, code });
  }
  w.family('haports_pump_core_seconds_total', 'counter', 'Time spent copying packets into the core and in core.process.')
    .sample(Number(snapshots.reduce((n, s) => n + s.coreSeconds, 0).toFixed(6)));
  w.family('haports_pump_backpressure_waits_total', 'counter',
    'Batches after which the kernel queued sends (send buffer full), so the next batch waited for them.')
    .sample(snapshots.reduce((n, s) => n + s.backpressureWaits, 0));
  w.family('haports_drops_total', 'counter', DROPS_HELP);
  const reasons = ['peer-not-allowed', ...TUNNEL_ERRORS.filter((r) => r !== null), 'unknown-vni', 'too-long', 'queue-full', 'no-appliance-address',
    'send-buffer-full', 'send-error', 'stopping'];
  for (const [listener, rows] of byName) {
    const drops = new Map<string, number>(reasons.map((r) => [r, 0]));
    for (const r of rows) for (const [reason, n] of Object.entries(r.counters.drops)) drops.set(reason, (drops.get(reason) ?? 0) + n);
    for (const [reason, n] of drops) w.sample(n, { stage: 'pump', listener, reason });
  }
}

// ---- Kernel socket drops -----------------------------------------------------------

/** Where a listener is bound (its address as configured; its port as bound). */
function endpointOf(L: Listener): { family: 4 | 6; address: string; port: number } {
  if (L.fd >= 0 || !L.socket) return { family: L.family, address: L.settings.host, port: L.boundPort };
  try {
    const a = L.socket.address();
    return { family: L.family, address: a.address, port: a.port };
  } catch {
    return { family: L.family, address: L.settings.host, port: -1 }; // closed
  }
}

/** Sends node:dgram still holds (views of the arena); the native path holds none. */
function queuedSends(L: Listener): number {
  return L.fd >= 0 || !L.socket ? 0 : L.socket.getSendQueueCount();
}

/**
 * Per endpoint, the kernel's receive-buffer drop count (the last column of /proc/net/udp
 * and udp6, matched by local address and port, summed over the sockets that share it:
 * SO_REUSEPORT); null where it cannot be read.
 */
export function socketDrops(endpoints: { family: 4 | 6; address: string; port: number }[]): (number | null)[] {
  const tables: Record<string, string[] | null> = {};
  const table = (file: string) => {
    if (!(file in tables)) {
      try { tables[file] = readFileSync(file, 'utf8').split('\n').slice(1); } catch { tables[file] = null; }
    }
    return tables[file];
  };
  return endpoints.map((a) => {
    if (a.port < 0) return null;
    const v6 = a.family === 6;
    const rows = table(v6 ? '/proc/net/udp6' : '/proc/net/udp');
    if (!rows) return null;
    const local = `${procAddress(a.address, v6)}:${a.port.toString(16).toUpperCase().padStart(4, '0')}`;
    let found: number | null = null;
    for (const row of rows) {
      const cols = row.trim().split(/\s+/);
      if (cols[1] === local) found = (found ?? 0) + Number(cols[cols.length - 1]);
    }
    return found;
  });
}

/** An address as /proc/net/udp{,6} prints it: 32-bit words in host (little-endian) order. */
function procAddress(address: string, v6: boolean): string {
  const bytes: number[] = [];
  if (!v6) bytes.push(...address.split('.').map(Number));
  else {
    const [head, tail] = address.includes('::') ? address.split('::') : [address, ''];
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
    for (const g of groups) { const x = parseInt(g, 16); bytes.push(x >> 8, x & 0xff); }
  }
  let out = '';
  for (let w = 0; w < bytes.length; w += 4) {
    for (let i = 3; i >= 0; i--) out += bytes[w + i].toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

// ---- Reloading ----------------------------------------------------------------------

/**
 * Reads and checks a configuration file as a reload needs it, without touching the
 * running pump: the core's reader (in a core of its own) and the pump section.
 */
export function stage(path: string, maxBatch: number): { text: string; settings: PumpSettings } | { errors: string[] } {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e: any) { return { errors: [`cannot read ${path}: ${e.code ?? e.message}`] }; }
  return stageText(text, maxBatch);
}

/** stage() of a configuration's text. */
export function stageText(text: string, maxBatch: number): { text: string; settings: PumpSettings } | { errors: string[] } {
  const staging = Core.load();
  try {
    staging.configure(text);
  } catch (e) {
    if (e instanceof ConfigError) return { errors: e.errors };
    throw e;
  }
  const { settings, errors } = readPumpSettings(staging.describe(), maxBatch);
  return settings ? { text, settings } : { errors };
}

/**
 * Calls `onChange` after `path` changes (debounced: editors write in several steps, or
 * replace the file, which is why its directory is watched).
 */
function watchFile(path: string, onChange: () => void): FSWatcher {
  const name = basename(path);
  let timer: NodeJS.Timeout | null = null;
  return watch(dirname(resolve(path)), (_event, file) => {
    if (file !== null && file.toString() !== name) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => { timer = null; onChange(); }, 200);
  });
}

// ---- The command -------------------------------------------------------------------

export const PUMP_USAGE = `usage: haports pump --config CONFIG.json [--metrics [HOST:]PORT] [--log-level LEVEL]

Runs the packet pump: receives VXLAN (RFC 7348) or GENEVE (RFC 8926) traffic on the
listeners of the configuration's "pump" section, balances the inner packets with the
configuration's rules (each listener stands for one frontend, as its next hop), and
sends each one, re-encapsulated with the same VNI and options, to its appliance (the
chosen backend's address). Health probes of the rules mark appliances up and down.
Logs are JSON lines on standard error; SIGTERM or SIGINT stops the pump gracefully and
writes the final counters.

  --config FILE        haports configuration (JSON) with a "pump" section
  --metrics [HOST:]PORT  serve Prometheus metrics at http://HOST:PORT/metrics, and the
                       admin endpoints /ready (200 or 503 with reasons), /flows
                       (tracked flows, filtered, bounded) and /lookup (where a flow
                       goes and why); HOST defaults to 127.0.0.1 (a wildcard address
                       is allowed, with a warning: they name every appliance)
  --log-level LEVEL    error, warn, info (default) or debug
  --watch              reload when the configuration file changes (as on SIGHUP)

With "pump.announce" ({"interface", "addresses", "withdrawSeconds"}), the pump holds
the addresses on that interface (a dummy one, created if missing) only while it is
ready, for the host's BGP daemon to announce; on SIGTERM it withdraws them, forwards for
withdrawSeconds more, then stops (docs/fleet.md).

SIGHUP reloads the configuration: a valid one is applied while running (tracked flows
are kept; listeners whose address did not change keep their sockets), an invalid one is
logged and the running one stays.

exit codes: 0 stopped by a signal, 1 invalid configuration, 2 usage error, unreadable
configuration, or an address that cannot be bound.
`;

/** Resolves with the exit code once the pump has stopped (SIGTERM/SIGINT) or failed to start. */
export async function pumpCommand(argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  let values: { config?: string; metrics?: string; 'log-level'?: string; watch?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      allowPositionals: false,
      options: {
        config: { type: 'string' }, metrics: { type: 'string' }, 'log-level': { type: 'string' }, watch: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e: any) {
    err.write(`haports: pump: ${e.message}\n${PUMP_USAGE}`);
    return 2;
  }
  if (values.help) { out.write(PUMP_USAGE); return 0; }
  const usage = (m: string) => { err.write(`haports: pump: ${m}\n`); return 2; };
  if (!values.config) return usage('--config is required');
  const level = (values['log-level'] ?? 'info') as LogLevel;
  if (!(level in LEVELS)) return usage(`--log-level must be error, warn, info or debug`);
  let metricsAt: { host: string; port: number } | null = null;
  if (values.metrics !== undefined) {
    try {
      // A bare port binds loopback: metrics name every appliance and its load.
      metricsAt = parseHostPort(/^[0-9]+$/.test(values.metrics) ? `127.0.0.1:${values.metrics}` : values.metrics);
    } catch (e: any) { return usage(`--metrics: ${e.message}`); }
  }

  let text: string;
  try { text = readFileSync(values.config, 'utf8'); } catch (e: any) {
    return usage(`cannot read configuration ${values.config}: ${e.code ?? e.message}`);
  }
  const core = Core.load();
  try {
    core.configure(text);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    err.write(`haports: ${values.config} is not a valid configuration:\n`);
    for (const line of e.errors) err.write(`  ${line}\n`);
    return 1;
  }
  const { settings, errors } = readPumpSettings(core.describe(), core.maxBatch);
  if (!settings) {
    err.write(`haports: ${values.config} is not a valid pump configuration:\n`);
    for (const line of errors) err.write(`  ${line}\n`);
    return 1;
  }

  const log = jsonLogger(err, level);
  for (const w of core.warnings) log('warn', 'configuration warning', { warning: w });
  for (const i of core.info) log('info', 'configuration info', { info: i });

  // Signals: the first stops gracefully, a second one during shutdown exits at once.
  let stopRequested: string | null = null;
  let wake: (() => void) | null = null;
  const onSignal = (signal: string) => {
    if (stopRequested) {
      log('error', 'second signal during shutdown; exiting now', { signal });
      process.exit(1);
    }
    stopRequested = signal;
    wake?.();
  };
  const onTerm = () => onSignal('SIGTERM');
  const onInt = () => onSignal('SIGINT');
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);

  // I/O: the native addon when it loads (batched, zero-copy, several workers), else node:dgram.
  const { native, reason } = loadNative();
  const cluster = new PumpCluster(text, settings, core.describe(), { log, native, workers: settings.workers ?? undefined });
  log('info', 'io', native
    ? { path: 'native', note: 'recvmmsg/sendmmsg through wasm memory', addon: reason, workers: cluster.count }
    : { path: 'node:dgram', reason, workers: cluster.count });
  // Readiness (announce.ts): listeners bound, the configuration applied, an appliance up
  // behind every listener's frontend. With pump.announce, the frontend addresses are held
  // on an interface (for the host's BGP daemon) exactly while the pump is ready.
  let running = settings;
  let runningText = text;
  let listenersBound = true;
  let announcer = settings.announce ? new Announcer(settings.announce, log) : null;
  // Settling: a target whose first result failed may have failed for a passing reason (a
  // route or a neighbour not there yet): its "down" is not trusted for readiness until
  // `threshold` results in a row confirm it, or successes bring it up. A first success
  // settles at once. Until every target has settled once, the pump does not call itself
  // ready, so an instance does not join a fleet with a view of health the others lack.
  let settled = false;
  /** Per target: its last result and how many in a row; `settled` once trusted. */
  const streaks = new Map<number, { ok: boolean; n: number; settled: boolean }>();
  const unsettled = (): number => {
    if (settled) return 0;
    const n = core.describe().probeTargets.filter((t) => !streaks.get(t.index)?.settled).length;
    settled = n === 0;
    return n;
  };
  const observe = (target: number, ok: boolean) => {
    if (settled) return;
    const d = core.describe();
    const t = d.probeTargets[target];
    if (!t) return; // a result of the configuration before a reload
    const before = streaks.get(target);
    const n = before?.ok === ok ? before.n + 1 : 1;
    const threshold = d.probes[t.probe].threshold;
    const first = before === undefined;
    streaks.set(target, { ok, n, settled: (before?.settled ?? false) || (first && ok) || n >= threshold });
  };
  const notReady = (): string[] => {
    const reasons: string[] = [];
    if (!pumpStarted) reasons.push('starting: listeners not bound yet');
    const settling = unsettled();
    if (settling > 0) reasons.push(`probes settling: ${settling} target(s) failed their first probe and are not yet confirmed down or up`);
    if (stopRequested) reasons.push(`stopping (${stopRequested})`);
    if (!listenersBound) reasons.push('a listener could not be bound at the last reload');
    reasons.push(...notReadyReasons(core.describe(), running.listeners.map((l) => l.frontend), (b) => core.backendState(b)));
    return reasons;
  };
  const evaluate = (trigger: string): void => {
    if (!announcer) return;
    const reasons = notReady();
    announcer.set(reasons.length === 0, reasons.length === 0 ? { trigger } : { trigger, reasons })
      .catch((e) => log('error', 'announce', { error: String(e?.message ?? e) }));
  };
  const probeResults = (target: number, ok: boolean, now: number) => {
    cluster.probe(target, ok, now);
    observe(target, ok);
    evaluate('probe');
  };
  let monitor = new HealthMonitor(core, { log, onResult: probeResults });

  // Reload: SIGHUP (and, with --watch, a change of the file) re-reads the configuration;
  // a good one is applied while running (tracked flows kept), a bad one is logged and the
  // running one stays. SIGHUP never ends the pump. Reloads run one at a time; one asked
  // for meanwhile runs after.
  let reloading: Promise<void> | null = null;
  let reloadAgain = false;
  const reload = (why: string): void => {
    if (stopRequested || !pumpStarted) {
      log('warn', 'reload ignored: the pump is not running', { trigger: why });
      return;
    }
    if (reloading) { reloadAgain = true; return; }
    reloading = (async () => {
      const next = stage(values.config!, core.maxBatch);
      if ('errors' in next) {
        log('error', 'configuration rejected; the running one stays', { trigger: why, config: values.config, errors: next.errors });
        return;
      }
      // The control's core first (the probes' targets), then every worker's.
      core.configure(next.text);
      const report = await cluster.reconfigure(next.text, next.settings, core.describe());
      running = next.settings;
      runningText = next.text;
      listenersBound = report.failed.length === 0;
      if (JSON.stringify(next.settings.announce) !== JSON.stringify(announcer?.settings ?? null)) {
        // Another interface or other addresses: the old ones are withdrawn first.
        if (announcer) await announcer.set(false, { trigger: 'reload: pump.announce changed' });
        announcer = next.settings.announce ? new Announcer(next.settings.announce, log) : null;
        await announcer?.prepare();
      }
      evaluate(`reload (${why})`);
      monitor.stop();
      monitor = new HealthMonitor(core, { log, onResult: probeResults });
      monitor.start().catch((e) => log('error', 'probes', { error: String(e) }));
      for (const w of core.warnings) log('warn', 'configuration warning', { warning: w });
      for (const i of core.info) log('info', 'configuration info', { info: i });
      log('info', 'reloaded', { trigger: why, config: values.config, ...report, probeTargets: monitor.targets.length });
    })().catch((e) => log('error', 'reload failed; the running configuration stays', { trigger: why, error: String(e?.message ?? e) }))
      .finally(() => {
        reloading = null;
        if (reloadAgain) { reloadAgain = false; reload(why); }
      });
  };
  const onHup = () => reload('SIGHUP');
  process.on('SIGHUP', onHup);
  let watcher: FSWatcher | null = null;
  if (values.watch) watcher = watchFile(values.config, () => reload('watch'));
  let server: Server | null = null;
  let pumpStarted = false;
  let code = 0;
  let final: Awaited<ReturnType<PumpCluster['stop']>> = null;
  try {
    log('info', 'starting', {
      config: values.config, probeTargets: monitor.targets.length, batchSize: settings.batchSize,
      batchTimeoutMicros: settings.batchTimeoutMicros, queuePackets: settings.queuePackets, workers: cluster.count,
    });
    await cluster.spawn();
    // One probe round first (its results reach every worker's core): the initial health of
    // every appliance is known before the first packet is balanced.
    await monitor.start();
    if (!stopRequested) {
      try {
        await cluster.bind();
        pumpStarted = true;
      } catch (e: any) {
        log('error', 'cannot bind a listener', { error: e.code ?? String(e), message: e.message });
        code = 2;
      }
    }
    if (pumpStarted && announcer && !stopRequested) {
      try {
        await announcer.prepare();
        evaluate('started');
      } catch (e: any) {
        log('error', 'announce: cannot use the interface', { interface: announcer.settings.interface, message: e.message });
        code = 2;
      }
    }
    if (pumpStarted && metricsAt && !stopRequested) {
      try {
        server = await startMetricsServer(metricsAt, async () => {
          const snap = await cluster.snapshot();
          const w = new MetricsWriter();
          writeCoreMetrics(w, snap.core, core.describe());
          writePumpMetrics(w, snap.pump);
          monitor.writeMetrics(w);
          w.family('haports_pump_ready', 'gauge', 'Whether the pump can forward: listeners bound, configuration applied, an appliance up behind every listener\'s frontend (GET /ready).')
            .sample(notReady().length === 0 ? 1 : 0);
          if (announcer) {
            w.family('haports_pump_announced', 'gauge', 'Whether the pump holds its pump.announce addresses on their interface (for the BGP daemon).')
              .sample(announcer.isAnnounced ? 1 : 0, { interface: announcer.settings.interface });
          }
          return w.text();
        }, adminRoutes({
          ready: () => ({ reasons: notReady(), announced: announcer ? announcer.isAnnounced : null }),
          // The filter is checked here (the control's core has the same names): a bad one is a 400.
          flows: (filter, limit) => { listFlows(core, filter, 0); return cluster.flows(filter, limit); },
          lookup: (_spec, ingress) => {
            const states = core.names.backends.map((_, b) => core.backendState(b));
            return { module: core.module, text: runningText, states, ingress: ingress ?? running.listeners[0].frontend };
          },
        }));
        const a = server.address() as any;
        log('info', 'metrics', { url: `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/metrics` });
        if (a.address === '0.0.0.0' || a.address === '::') {
          log('warn', 'metrics on a wildcard address', {
            address: a.address, note: 'every host that reaches this port sees the appliances, their addresses and load; bind an address only monitoring reaches',
          });
        }
      } catch (e: any) {
        log('error', 'cannot bind the metrics address', { error: e.code ?? String(e), message: e.message });
        code = 2;
      }
    }
    if (pumpStarted && code === 0 && !stopRequested) {
      log('info', 'running', {
        listeners: settings.listeners.map((l) => ({
          name: l.name, protocol: l.protocol, frontend: l.frontend,
          bind: cluster.addresses[l.name], appliancePort: l.appliancePort, vnis: [...l.vnis], peers: l.peers,
        })),
        workers: cluster.count,
        io: native ? 'native' : 'node:dgram',
        pid: process.pid,
      });
      await new Promise<void>((r) => { wake = r; if (stopRequested) r(); });
    }
    if (pumpStarted && code === 0) log('info', 'stopping', { signal: stopRequested });
  } finally {
    monitor.stop();
    watcher?.close();
    if (reloading) await reloading;
    if (announcer?.isAnnounced) {
      // Withdraw first, then keep forwarding while the routers move the flows away.
      await announcer.set(false, { trigger: stopRequested ?? 'stopping' }).catch(() => {});
      const ms = announcer.settings.withdrawSeconds * 1000;
      if (ms > 0 && stopRequested) {
        log('info', 'withdrawn; forwarding until the routers have moved the flows', { withdrawSeconds: announcer.settings.withdrawSeconds });
        await new Promise((r) => setTimeout(r, ms));
      }
    }
    final = await cluster.stop();
    if (server) await new Promise((r) => { server!.closeAllConnections?.(); server!.close(() => r(null)); });
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    process.off('SIGHUP', onHup);
  }
  if (code === 0) log('info', 'stopped', { signal: stopRequested, ...(final ? finalStats(final, core.describe()) : {}) });
  return code;
}

// `node build/host/pump.mjs ARGS` runs the command directly (the same as `haports pump`).
const self = fileURLToPath(import.meta.url);
if (process.argv[1] && /pump\.m?js$/.test(self) && pathToFileURL(process.argv[1]).href === import.meta.url) {
  pumpCommand(process.argv.slice(2), process.stdout, process.stderr).then((c) => { process.exitCode = c; });
}

