// The Node binding of the core: loads the wasm module, applies configurations, writes
// packets into the rx arena and reads verdict and tuple records back. Views over wasm
// memory are rebuilt whenever memory may have grown (after configure()).
//
// Record layouts and codes come from host/lib/abi.ts (generated from abi/haports.abi.json;
// docs/abi.md draws them).

import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { fileURLToPath } from 'node:url';

import {
  ACTION_RESET, ACTIONS, BACKEND_STATES, C_DROP_REASON_BASE, CHECKSUM_POLICIES, COUNTERS, DESCRIPTOR, DESCRIPTOR_BYTES, FLOW, FLOW_RECORD_BYTES, LINK_RAW_IP, NONE,
  OBJECT_COUNTER_BYTES, OBJECT_COUNTERS, PROBE_TARGET, PROBE_TARGET_BYTES, REASONS, RESET, RESET_BYTES, TARGET_STATES, TRANSITIONS, TUPLE, TUPLE_BYTES,
  VERDICT, VERDICT_BYTES,
} from './abi.js';
import type { Action } from './abi.js';

// The codes, record layouts and counter names, generated from abi/haports.abi.json.
export {
  ACTION_FORWARD, ACTION_RESET, ACTIONS, COUNTERS, DESCRIPTOR_BYTES, FLAGS, LINK_ETHERNET, LINK_RAW_IP, NONE,
  REASONS, RESET_BYTES, TUPLE_BYTES, VERDICT_BYTES,
} from './abi.js';
export type { Action } from './abi.js';

/** The name of a REASON_* code: null for 0 (none), `reason-N` for a code this host does not know. */
export function reasonName(code: number): string | null {
  return code === 0 ? null : REASONS[code] ?? `reason-${code}`;
}

export interface Tuple {
  src: string;
  dst: string;
  proto: number;
  sport: number | null;
  dport: number | null;
}

export interface Verdict {
  action: Action;
  reason: string | null;
  flags: number;
  rule: number;     // index or NONE
  backend: number;  // index or NONE
  frontend: number; // index or NONE
  /** High 32 bits of the backend-selection hash: the Maglev slot is (hash × M) >> 32. */
  hash: number;
}

export class ConfigError extends Error {
  /** Stable, for programs: 'HAPORTS_INVALID_CONFIG'. */
  readonly code = 'HAPORTS_INVALID_CONFIG';
  constructor(public readonly errors: string[], public readonly warnings: string[] = [], public readonly info: string[] = []) {
    super(`invalid configuration:\n  ${errors.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

interface Exports {
  memory: WebAssembly.Memory;
  rxArenaPtr(): number; rxArenaSize(): number; descriptorsPtr(): number; verdictsPtr(): number;
  tuplesPtr(): number; maxBatch(): number; configBufferPtr(): number; configBufferSize(): number;
  errorBufferPtr(): number; errorLength(): number; countersPtr(): number; counterSlots(): number;
  resetsPtr(): number;
  warningBufferPtr(): number; warningLength(): number; infoBufferPtr(): number; infoLength(): number;
  configure(len: number): number; isConfigured(): number;
  processBatch(count: number, nowMs: number, ingress: number, link: number): number;
  setChecksumPolicy(policy: number): number;
  setBackendHealth(b: number, up: number): number; setBackendAdmin(b: number, s: number): number;
  backendState(b: number): number;
  describePtr(): number; describeLength(): number;
  probeTargetCount(): number; probeTargetsPtr(): number;
  probeResult(t: number, ok: number, nowMs: number): number;
  probePenalty(t: number, nowMs: number): number; probeHoldSeconds(t: number, nowMs: number): number;
  frontendCount(): number; ruleCount(): number; backendCount(): number; poolCount(): number;
  backendCountersPtr(): number; ruleCountersPtr(): number;
  flowTableCapacity(): number; flowTableUsed(): number;
  flowsDump(cursor: number, max: number): number; flowsDumped(): number; flowDumpPtr(): number; flowDumpCapacity(): number;
  maglevTablePtr(p: number): number; maglevTableSize(p: number): number; heapProbe(): number;
}

const defaultWasm = (debug: boolean) =>
  fileURLToPath(new URL(debug ? '../haports.debug.wasm' : '../haports.wasm', import.meta.url));

function decodeAbort(mem: WebAssembly.Memory, ptr: number): string {
  if (!ptr) return '';
  const u16 = new Uint16Array(mem.buffer);
  const len = new Uint32Array(mem.buffer)[(ptr - 4) >>> 2] >>> 1;
  return String.fromCharCode(...u16.subarray(ptr >>> 1, (ptr >>> 1) + len));
}

/** The flow record's state bits (abi: flow.state). */
export const FLOW_STATE = { established: 2, closing: 4, reply: 8, fragment: 16, syn: 32, swapped: 64 } as const;

/** A flow-table entry, as `Core.flowsPage` lists it (indices as the core numbers them). */
export interface TrackedFlow {
  /** 'flow': a flow's entry; 'reply': a translated flow's reply entry (backend → client); 'fragment': a datagram's later fragments. */
  kind: 'flow' | 'reply' | 'fragment';
  proto: number;
  family: 4 | 6;
  /** As the flow's first packet had them. */
  src: string;
  dst: string;
  sport: number;
  dport: number;
  rule: number;
  backend: number;
  /** Seen to be real (only established entries are never evicted by new flows). */
  established: boolean;
  /** TCP FIN or RST seen: a short close timeout. */
  closing: boolean;
  idleMs: number;
  timeoutMs: number;
}

/** Names of the configured objects, by index, as the core numbers them. */
export interface Names {
  frontends: string[];
  rules: string[];
  pools: string[];
  /** Backends over all pools, pools in order, backends in order. */
  backends: string[];
  backendPool: number[];
}

/**
 * The running configuration as the core read it (the core's describe() export): every
 * default applied, references as indices, addresses in canonical form (IPv6 per RFC
 * 5952), the probe targets, and the top-level sections the core does not read
 * (`hostSections`: a pump's "pump", the Envoy filter's "filter") as given.
 */
export interface Described {
  hashKeyGiven: boolean;
  flowTable: { capacity: number };
  frontends: { index: number; name: string; address: string; family: 4 | 6 }[];
  backendPools: { index: number; name: string; maglevTableSize: number; drainPeriodSeconds: number; backends: number[] }[];
  backends: {
    index: number; name: string; pool: number; address: string; family: 4 | 6; weight: number;
    adminState: 'up' | 'draining'; probeTargets: number[];
  }[];
  probes: {
    index: number; name: string; protocol: 'tcp' | 'http' | 'https'; port: number; path: string;
    intervalSeconds: number; timeoutSeconds: number; threshold: number;
  }[];
  /** One per (probe, backend address) of the rules that name a probe: probeResult()'s index. */
  probeTargets: { index: number; probe: number; address: string; family: 4 | 6; backends: number[] }[];
  health: { damping: false | { halfLifeSeconds: number; suppressPenalty: number; reusePenalty: number; maxHoldSeconds: number } };
  rules: {
    index: number; name: string; frontend: number; backendPool: number; probe: number | null;
    protocol: 'all' | 'tcp' | 'udp'; frontendPort: number; backendPort: number; floatingIp: boolean;
    loadDistribution: 'default' | 'sourceIPProtocol' | 'sourceIP'; symmetric: boolean; idleTimeoutMinutes: number;
    enableTcpReset: boolean; persistOnUnhealthy: 'defaultForProtocol' | 'never' | 'always'; noHealthyBackends: 'drop' | 'failOpen';
  }[];
  hostSections: Record<string, unknown>;
}

function namesOf(d: Described): Names {
  return {
    frontends: d.frontends.map((f) => f.name),
    rules: d.rules.map((r) => r.name),
    pools: d.backendPools.map((p) => p.name),
    backends: d.backends.map((b) => b.name),
    backendPool: d.backends.map((b) => b.pool),
  };
}

/** A backend's or a rule's counters. */
export interface ObjectCounters { packets: number; bytes: number; newFlows: number }

/** A probe target's state (the core's probeTarget record). */
export interface ProbeTargetState {
  state: (typeof TARGET_STATES)[number];
  held: boolean;
  successRun: number;
  failureRun: number;
  transitionsUp: number;
  transitionsDown: number;
  checksSuccess: number;
  checksFailure: number;
}

export class Core {
  readonly exports: Exports;
  readonly maxBatch: number;
  readonly arenaSize: number;
  names: Names = { frontends: [], rules: [], pools: [], backends: [], backendPool: [] };
  private described: Described | null = null;
  /** Warnings of the last configure() (applied or rejected): advice, never a rejection. */
  warnings: string[] = [];
  /** Info of the last configure(): notes (Azure history) that call for no change. */
  info: string[] = [];
  private u8!: Uint8Array;
  private view!: DataView;

  constructor(readonly module: WebAssembly.Module) {
    let memory: WebAssembly.Memory | undefined;
    const instance = new WebAssembly.Instance(module, {
      env: {
        abort(msg: number, file: number, line: number, col: number) {
          const m = memory ? `${decodeAbort(memory, msg)} at ${decodeAbort(memory, file)}:${line}:${col}` : '';
          throw new Error(`haports core aborted: ${m}`);
        },
      },
    });
    this.exports = instance.exports as unknown as Exports;
    memory = this.exports.memory;
    this.maxBatch = this.exports.maxBatch();
    this.arenaSize = this.exports.rxArenaSize();
    this.refresh();
  }

  static load(path?: string, opts: { debug?: boolean } = {}): Core {
    const bytes = readFileSync(path ?? defaultWasm(!!opts.debug));
    return new Core(new WebAssembly.Module(bytes));
  }

  /** Rebuilds the memory views (after memory growth). */
  private refresh(): void {
    this.u8 = new Uint8Array(this.exports.memory.buffer);
    this.view = new DataView(this.exports.memory.buffer);
  }

  get memory(): Uint8Array {
    if (this.u8.buffer !== this.exports.memory.buffer) this.refresh();
    return this.u8;
  }

  private get dv(): DataView {
    if (this.view.buffer !== this.exports.memory.buffer) this.refresh();
    return this.view;
  }

  /** Applies a configuration (object or JSON text). Throws ConfigError, keeping the running one. */
  configure(config: unknown): void {
    const text = typeof config === 'string' ? config : JSON.stringify(config);
    const bytes = new TextEncoder().encode(text);
    const size = this.exports.configBufferSize();
    if (bytes.length > size) throw new ConfigError([`$: configuration larger than ${size} bytes`]);
    this.memory.set(bytes, this.exports.configBufferPtr());
    const n = this.exports.configure(bytes.length);
    this.refresh();
    this.warnings = this.lines(this.exports.warningBufferPtr(), this.exports.warningLength());
    this.info = this.lines(this.exports.infoBufferPtr(), this.exports.infoLength());
    if (n !== 0) {
      throw new ConfigError(this.lines(this.exports.errorBufferPtr(), this.exports.errorLength()), this.warnings, this.info);
    }
    this.described = null;
    this.names = namesOf(this.describe());
  }

  /** The running configuration as the core read it (see Described). */
  describe(): Described {
    if (!this.described) {
      const at = this.exports.describePtr();
      this.described = JSON.parse(new TextDecoder().decode(this.memory.subarray(at, at + this.exports.describeLength())));
    }
    return this.described!;
  }

  private lines(at: number, length: number): string[] {
    const text = new TextDecoder().decode(this.memory.subarray(at, at + length));
    return text.split('\n').filter((l) => l.length > 0);
  }

  /**
   * The errors (none when valid), warnings and info of a configuration, from a fresh core of
   * `module` (a compiled module, or a path; default build/haports.wasm).
   */
  static check(config: unknown, module?: string | WebAssembly.Module): { errors: string[]; warnings: string[]; info: string[] } {
    const core = module instanceof WebAssembly.Module ? new Core(module) : Core.load(module);
    try {
      core.configure(config);
      return { errors: [], warnings: core.warnings, info: core.info };
    } catch (e) {
      if (e instanceof ConfigError) return { errors: e.errors, warnings: e.warnings, info: e.info };
      throw e;
    }
  }

  /** The errors of a configuration (none when valid). */
  static validate(config: unknown, module?: string | WebAssembly.Module): string[] {
    return Core.check(config, module).errors;
  }

  /**
   * Copies `packets` into the rx arena and writes their descriptors. The zero-copy path
   * for callers who build packets in place is `arena()` + `setDescriptor()`.
   */
  load(packets: Uint8Array[]): void {
    if (packets.length > this.maxBatch) throw new RangeError(`batch of ${packets.length} > ${this.maxBatch}`);
    const mem = this.memory;
    const base = this.exports.rxArenaPtr();
    let off = 0;
    for (let i = 0; i < packets.length; i++) {
      const p = packets[i];
      if (off + p.length > this.arenaSize) throw new RangeError('batch larger than the rx arena');
      mem.set(p, base + off);
      this.setDescriptor(i, off, p.length);
      off += p.length;
    }
  }

  /** The rx arena as a view over wasm memory (valid until the next configure()). */
  arena(): Uint8Array {
    const base = this.exports.rxArenaPtr();
    return this.memory.subarray(base, base + this.arenaSize);
  }

  setDescriptor(i: number, offset: number, length: number): void {
    const d = this.exports.descriptorsPtr() + i * DESCRIPTOR_BYTES;
    this.dv.setUint32(d + DESCRIPTOR.offset, offset, true);
    this.dv.setUint32(d + DESCRIPTOR.length, length, true);
  }

  /** Runs descriptors [0, count). Returns the number forwarded. */
  process(count: number, nowMs: number, ingress = NONE, link = LINK_RAW_IP): number {
    const r = this.exports.processBatch(count, nowMs, ingress, link);
    if (r < 0) throw new RangeError(`processBatch rejected its arguments (count ${count}, ingress ${ingress}, link ${link})`);
    return r;
  }

  /** Packet i's bytes in the arena after processing (rewritten in place). */
  packet(i: number): Uint8Array {
    const d = this.exports.descriptorsPtr() + i * DESCRIPTOR_BYTES;
    const off = this.dv.getUint32(d + DESCRIPTOR.offset, true);
    const len = this.dv.getUint32(d + DESCRIPTOR.length, true);
    const base = this.exports.rxArenaPtr() + off;
    return this.memory.subarray(base, base + len);
  }

  verdict(i: number): Verdict {
    const v = this.exports.verdictsPtr() + i * VERDICT_BYTES;
    const dv = this.dv;
    return {
      action: ACTIONS[dv.getUint8(v + VERDICT.action)] as Action,
      reason: reasonName(dv.getUint8(v + VERDICT.reason)),
      flags: dv.getUint16(v + VERDICT.flags, true),
      rule: dv.getUint16(v + VERDICT.rule, true),
      backend: dv.getUint16(v + VERDICT.backend, true),
      frontend: dv.getUint16(v + VERDICT.frontend, true),
      hash: dv.getUint32(v + VERDICT.hash, true),
    };
  }

  /**
   * The two RSTs of a reset verdict (enableTcpReset), copies: `toSender` goes back to
   * where packet i came from, `toBackend` goes to the verdict's backend as a forwarded
   * packet would. Null when verdict i is not a reset.
   */
  resets(i: number): { toSender: Uint8Array; toBackend: Uint8Array } | null {
    if (this.dv.getUint8(this.exports.verdictsPtr() + i * VERDICT_BYTES + VERDICT.action) !== ACTION_RESET) return null;
    const r = this.exports.resetsPtr() + i * RESET_BYTES;
    const lenA = this.dv.getUint16(r + RESET.lengthA, true);
    const lenB = this.dv.getUint16(r + RESET.lengthB, true);
    return {
      toSender: this.memory.slice(r + RESET.a, r + RESET.a + lenA),
      toBackend: this.memory.slice(r + RESET.b, r + RESET.b + lenB),
    };
  }

  /** The packet's own header fields as the core parsed them; null when no IP header was parsed. */
  tuple(i: number): Tuple | null {
    const t = this.exports.tuplesPtr() + i * TUPLE_BYTES;
    const dv = this.dv;
    const family = dv.getUint8(t + TUPLE.family);
    if (family === 0) return null;
    const mem = this.memory;
    const n = family === 4 ? 4 : 16;
    const hasPorts = dv.getUint8(t + TUPLE.hasPorts) !== 0;
    return {
      src: formatAddress(mem.subarray(t + TUPLE.src, t + TUPLE.src + n)),
      dst: formatAddress(mem.subarray(t + TUPLE.dst, t + TUPLE.dst + n)),
      proto: dv.getUint8(t + TUPLE.proto),
      sport: hasPorts ? dv.getUint16(t + TUPLE.sport, true) : null,
      dport: hasPorts ? dv.getUint16(t + TUPLE.dport, true) : null,
    };
  }

  counters(): Record<string, number> {
    const base = this.exports.countersPtr();
    const out: Record<string, number> = {};
    COUNTERS.forEach((name, i) => { out[name] = Number(this.dv.getBigUint64(base + i * 8, true)); });
    REASONS.forEach((name, i) => {
      if (name) out[`reason.${name}`] = Number(this.dv.getBigUint64(base + (C_DROP_REASON_BASE + i) * 8, true));
    });
    return out;
  }

  /** Per backend (core order): packets, bytes and new flows. */
  backendCounters(): ObjectCounters[] {
    return this.objectCounters(this.exports.backendCountersPtr(), this.exports.backendCount());
  }

  /** Per rule: packets, bytes and new flows. */
  ruleCounters(): ObjectCounters[] {
    return this.objectCounters(this.exports.ruleCountersPtr(), this.exports.ruleCount());
  }

  private objectCounters(base: number, n: number): ObjectCounters[] {
    const dv = this.dv;
    const u64 = (at: number) => Number(dv.getBigUint64(at, true));
    return Array.from({ length: n }, (_, i) => {
      const at = base + i * OBJECT_COUNTER_BYTES;
      return {
        packets: u64(at + OBJECT_COUNTERS.packets), bytes: u64(at + OBJECT_COUNTERS.bytes),
        newFlows: u64(at + OBJECT_COUNTERS.newFlows),
      };
    });
  }

  setBackendHealth(backend: number, up: boolean): void {
    if (this.exports.setBackendHealth(backend, up ? 1 : 0) < 0) throw new RangeError(`no backend ${backend}`);
  }

  setBackendAdmin(backend: number, state: 'up' | 'draining'): void {
    if (this.exports.setBackendAdmin(backend, state === 'draining' ? 2 : 0) < 0) throw new RangeError(`no backend ${backend}`);
  }

  /**
   * One probe result of target `t` (describe().probeTargets) at `nowMs` (milliseconds on
   * a clock that never goes back): the core applies the health policy and its backends'
   * health. Returns the transition it caused.
   */
  probeResult(t: number, ok: boolean, nowMs: number): (typeof TRANSITIONS)[number] {
    const r = this.exports.probeResult(t, ok ? 1 : 0, nowMs);
    if (r < 0) throw new RangeError(`no probe target ${t}`);
    return TRANSITIONS[r];
  }

  /** Probe target `t`'s state. */
  probeTarget(t: number): ProbeTargetState {
    if (!(t >= 0 && t < this.exports.probeTargetCount())) throw new RangeError(`no probe target ${t}`);
    const r = this.exports.probeTargetsPtr() + t * PROBE_TARGET_BYTES;
    const dv = this.dv;
    return {
      state: TARGET_STATES[dv.getUint8(r + PROBE_TARGET.state)],
      held: dv.getUint8(r + PROBE_TARGET.held) !== 0,
      successRun: dv.getUint32(r + PROBE_TARGET.successRun, true),
      failureRun: dv.getUint32(r + PROBE_TARGET.failureRun, true),
      transitionsUp: dv.getUint32(r + PROBE_TARGET.transitionsUp, true),
      transitionsDown: dv.getUint32(r + PROBE_TARGET.transitionsDown, true),
      checksSuccess: Number(dv.getBigUint64(r + PROBE_TARGET.checksSuccess, true)),
      checksFailure: Number(dv.getBigUint64(r + PROBE_TARGET.checksFailure, true)),
    };
  }

  /**
   * How the core treats the TCP/UDP checksums of the packets it parses: 'off' (the
   * default), 'count' (flag and count partial and wrong ones) or 'complete' (also complete
   * partial ones, which a sender's checksum offload left unfinished).
   */
  setChecksumPolicy(policy: (typeof CHECKSUM_POLICIES)[number]): void {
    const code = CHECKSUM_POLICIES.indexOf(policy);
    if (code < 0 || this.exports.setChecksumPolicy(code) < 0) throw new RangeError(`no checksum policy ${JSON.stringify(policy)}`);
  }

  /** Backend `backend`'s effective state, by name (BACKEND_STATES). */
  backendState(backend: number): (typeof BACKEND_STATES)[number] {
    const s = this.exports.backendState(backend);
    if (s < 0) throw new RangeError(`no backend ${backend}`);
    return BACKEND_STATES[s];
  }

  /**
   * One page of the flow table's entries in use (expired ones left out), from position
   * `cursor` (0 to start) on, at most `max` (≤ 256 per call; more are walked in
   * several calls). `next` continues the walk; -1 when the table's end was reached.
   */
  flowsPage(cursor: number, max: number): { flows: TrackedFlow[]; next: number } {
    const flows: TrackedFlow[] = [];
    let next = cursor;
    while (next >= 0 && flows.length < max) {
      next = this.exports.flowsDump(next, Math.min(max - flows.length, this.exports.flowDumpCapacity()));
      const n = this.exports.flowsDumped();
      const base = this.exports.flowDumpPtr();
      for (let i = 0; i < n; i++) flows.push(this.flowRecord(base + i * FLOW_RECORD_BYTES));
    }
    return { flows, next };
  }

  private flowRecord(r: number): TrackedFlow {
    const dv = this.dv;
    const k = r + FLOW.key;
    const family = dv.getUint8(k + 37);
    const len = family === 6 ? 16 : 4;
    let src = formatAddress(this.memory.slice(k, k + len));
    let dst = formatAddress(this.memory.slice(k + 16, k + 16 + len));
    let sport = dv.getUint16(k + 32, true);
    let dport = dv.getUint16(k + 34, true);
    const s = dv.getUint8(r + FLOW.state);
    // Symmetric keys are stored in canonical order; "swapped" says the flow's first packet
    // ran the other way: shown as the flow began.
    if (s & FLOW_STATE.swapped) { [src, dst] = [dst, src]; [sport, dport] = [dport, sport]; }
    const kind = (s & FLOW_STATE.reply) ? 'reply' : (s & FLOW_STATE.fragment) ? 'fragment' : 'flow';
    return {
      kind, proto: dv.getUint8(k + 36), family: family === 6 ? 6 : 4, src, dst, sport, dport,
      rule: dv.getUint16(r + FLOW.rule, true), backend: dv.getUint16(r + FLOW.backend, true),
      established: (s & FLOW_STATE.established) !== 0, closing: (s & FLOW_STATE.closing) !== 0,
      idleMs: dv.getUint32(r + FLOW.idleMs, true), timeoutMs: dv.getUint32(r + FLOW.timeoutMs, true),
    };
  }

  /** Pool p's Maglev table (a copy). */
  maglevTable(p: number): Uint16Array {
    const ptr = this.exports.maglevTablePtr(p);
    const m = this.exports.maglevTableSize(p);
    return new Uint16Array(this.memory.buffer.slice(ptr, ptr + m * 2));
  }
}

/** The 4 (IPv4) or 16 (IPv6) bytes of an IP literal (IPv6 in any form: `::`, a trailing dotted quad). */
export function addressBytes(text: string): Uint8Array {
  if (isIPv4(text)) return Uint8Array.from(text.split('.').map(Number));
  // A zone (fe80::1%eth0) has no place in a packet or a record.
  if (!isIPv6(text) || text.includes('%')) throw new RangeError(`not an IP address: ${JSON.stringify(text)}`);
  let s = text;
  let tail: number[] = [];
  const quad = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (quad) {
    const q = quad[2].split('.').map(Number);
    tail = [(q[0] << 8) | q[1], (q[2] << 8) | q[3]];
    s = quad[1].endsWith('::') ? quad[1] : quad[1].slice(0, -1);
  }
  const hex = (part: string) => (part === '' ? [] : part.split(':').map((x) => parseInt(x, 16)));
  let groups: number[];
  if (s.includes('::')) {
    const [head, rest] = s.split('::');
    const h = hex(head);
    const r = [...hex(rest), ...tail];
    groups = [...h, ...new Array(8 - h.length - r.length).fill(0), ...r];
  } else {
    groups = [...hex(s), ...tail];
  }
  const out = new Uint8Array(16);
  groups.forEach((g, i) => { out[2 * i] = g >> 8; out[2 * i + 1] = g & 0xff; });
  return out;
}

/** IPv4 dotted quad; IPv6 in RFC 5952 form (lowercase, longest zero run ≥ 2 as ::). */
export function formatAddress(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((b[i] << 8) | b[i + 1]);
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (bestAt < 0) return hex(g);
  return `${hex(g.slice(0, bestAt))}::${hex(g.slice(bestAt + bestLen))}`;
}
