// The Node binding of the core: loads the wasm module, applies configurations, writes
// packets into the rx arena and reads verdict and tuple records back. Views over wasm
// memory are rebuilt whenever memory may have grown (after configure()).
//
// Record layouts are documented in assembly/layout.ts; the constants below mirror it.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const NONE = 0xffff;
export const LINK_RAW_IP = 0;
export const LINK_ETHERNET = 1;

export const ACTIONS = ['', 'forward', 'drop', 'nomatch', 'reset'] as const;
export type Action = 'forward' | 'drop' | 'nomatch' | 'reset';

/** REASON_* of assembly/consts.ts, by code. */
export const REASONS = [
  null, 'not-ip', 'truncated', 'bad-ip-version', 'bad-ip-header', 'truncated-l4',
  'bad-l4-header', 'ext-header-chain', 'bad-icmp-error', 'no-healthy-backend', 'no-rule',
  'bad-descriptor', 'idle-reset',
] as const;

/** The name of a REASON_* code: null for 0 (none), `reason-N` for a code this host does not know. */
export function reasonName(code: number): string | null {
  return code === 0 ? null : REASONS[code] ?? `reason-${code}`;
}

/** FLAG_* of assembly/consts.ts. */
export const FLAGS = {
  ipv6: 1 << 0, flowHit: 1 << 1, flowNew: 1 << 2, untracked: 1 << 3, fragment: 1 << 4,
  frag3Tuple: 1 << 5, icmpError: 1 << 6, exactRule: 1 << 7, nextHop: 1 << 8, evicted: 1 << 9,
  failOpen: 1 << 10, rewritten: 1 << 11, reply: 1 << 12, established: 1 << 13,
} as const;

/** Global counter slots (assembly/layout.ts C_*), by name. */
export const COUNTERS = [
  'packets', 'bytes', 'forwarded', 'dropped', 'nomatch', 'flowHits', 'flowNew', 'untracked',
  'evictions', 'frag3Tuple', 'icmpErrors', 'flowMoved', 'batches', 'configApplied',
  'configRejected', 'flowsDroppedByConfig', 'fragHits', 'fragEntries', 'natForward', 'natReply',
  'flowDrained', 'flowMoves', 'resets', 'flowEstablished',
] as const;
const C_DROP_REASON_BASE = 24;

/** Record sizes and the forward action code (assembly/layout.ts, consts.ts), for hosts
 *  that read the records directly on their hot path. */
export const DESCRIPTOR_BYTES = 8;
export const VERDICT_BYTES = 16;
export const TUPLE_BYTES = 40;
export const RESET_BYTES = 256;
export const ACTION_FORWARD = 1;
export const ACTION_RESET = 4;

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
  hash: number;
}

export class ConfigError extends Error {
  constructor(public readonly errors: string[], public readonly warnings: string[] = []) {
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
  warningBufferPtr(): number; warningLength(): number;
  configure(len: number): number; isConfigured(): number;
  processBatch(count: number, nowMs: number, ingress: number, link: number): number;
  setBackendHealth(b: number, up: number): number; setBackendAdmin(b: number, s: number): number;
  backendState(b: number): number;
  frontendCount(): number; ruleCount(): number; backendCount(): number; poolCount(): number;
  backendCountersPtr(): number; ruleCountersPtr(): number;
  flowTableCapacity(): number; flowTableUsed(): number;
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

/** Names of the configured objects, by index, as the core numbers them. */
export interface Names {
  frontends: string[];
  rules: string[];
  pools: string[];
  /** Backends over all pools, pools in order, backends in order. */
  backends: string[];
  backendPool: number[];
}

export function namesOf(config: any): Names {
  const names: Names = { frontends: [], rules: [], pools: [], backends: [], backendPool: [] };
  for (const f of config.frontends ?? []) names.frontends.push(f.name);
  for (const r of config.rules ?? []) names.rules.push(r.name);
  (config.backendPools ?? []).forEach((p: any, i: number) => {
    names.pools.push(p.name);
    for (const b of p.backends ?? []) {
      names.backends.push(b.name);
      names.backendPool.push(i);
    }
  });
  return names;
}

export class Core {
  readonly exports: Exports;
  readonly maxBatch: number;
  readonly arenaSize: number;
  names: Names = { frontends: [], rules: [], pools: [], backends: [], backendPool: [] };
  /** Warnings of the last configure() (applied or rejected): advice, never a rejection. */
  warnings: string[] = [];
  private u8!: Uint8Array;
  private view!: DataView;

  constructor(module: WebAssembly.Module) {
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
    if (n !== 0) {
      throw new ConfigError(this.lines(this.exports.errorBufferPtr(), this.exports.errorLength()), this.warnings);
    }
    let parsed: any = config;
    if (typeof config === 'string') parsed = JSON.parse(config);
    this.names = namesOf(parsed);
  }

  private lines(at: number, length: number): string[] {
    const text = new TextDecoder().decode(this.memory.subarray(at, at + length));
    return text.split('\n').filter((l) => l.length > 0);
  }

  /** The errors (none when valid) and warnings of a configuration, from a fresh core. */
  static check(config: unknown, wasmPath?: string): { errors: string[]; warnings: string[] } {
    const core = Core.load(wasmPath);
    try {
      core.configure(config);
      return { errors: [], warnings: core.warnings };
    } catch (e) {
      if (e instanceof ConfigError) return { errors: e.errors, warnings: e.warnings };
      throw e;
    }
  }

  /** The errors of a configuration (none when valid). */
  static validate(config: unknown, wasmPath?: string): string[] {
    return Core.check(config, wasmPath).errors;
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
    this.dv.setUint32(d, offset, true);
    this.dv.setUint32(d + 4, length, true);
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
    const off = this.dv.getUint32(d, true);
    const len = this.dv.getUint32(d + 4, true);
    const base = this.exports.rxArenaPtr() + off;
    return this.memory.subarray(base, base + len);
  }

  verdict(i: number): Verdict {
    const v = this.exports.verdictsPtr() + i * VERDICT_BYTES;
    const dv = this.dv;
    return {
      action: ACTIONS[dv.getUint8(v)] as Action,
      reason: reasonName(dv.getUint8(v + 1)),
      flags: dv.getUint16(v + 2, true),
      rule: dv.getUint16(v + 4, true),
      backend: dv.getUint16(v + 6, true),
      frontend: dv.getUint16(v + 8, true),
      hash: dv.getUint32(v + 12, true),
    };
  }

  /**
   * The two RSTs of a reset verdict (enableTcpReset), copies: `toSender` goes back to
   * where packet i came from, `toBackend` goes to the verdict's backend as a forwarded
   * packet would. Null when verdict i is not a reset.
   */
  resets(i: number): { toSender: Uint8Array; toBackend: Uint8Array } | null {
    if (this.dv.getUint8(this.exports.verdictsPtr() + i * VERDICT_BYTES) !== ACTION_RESET) return null;
    const r = this.exports.resetsPtr() + i * RESET_BYTES;
    const lenA = this.dv.getUint16(r, true);
    const lenB = this.dv.getUint16(r + 2, true);
    return {
      toSender: this.memory.slice(r + 8, r + 8 + lenA),
      toBackend: this.memory.slice(r + 128, r + 128 + lenB),
    };
  }

  /** The packet's own header fields as the core parsed them; null when no IP header was parsed. */
  tuple(i: number): Tuple | null {
    const t = this.exports.tuplesPtr() + i * TUPLE_BYTES;
    const dv = this.dv;
    const family = dv.getUint8(t + 37);
    if (family === 0) return null;
    const mem = this.memory;
    const hasPorts = dv.getUint8(t + 38) !== 0;
    return {
      src: formatAddress(mem.subarray(t, t + (family === 4 ? 4 : 16))),
      dst: formatAddress(mem.subarray(t + 16, t + 16 + (family === 4 ? 4 : 16))),
      proto: dv.getUint8(t + 36),
      sport: hasPorts ? dv.getUint16(t + 32, true) : null,
      dport: hasPorts ? dv.getUint16(t + 34, true) : null,
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

  setBackendHealth(backend: number, up: boolean): void {
    if (this.exports.setBackendHealth(backend, up ? 1 : 0) < 0) throw new RangeError(`no backend ${backend}`);
  }

  setBackendAdmin(backend: number, state: 'up' | 'draining'): void {
    if (this.exports.setBackendAdmin(backend, state === 'draining' ? 2 : 0) < 0) throw new RangeError(`no backend ${backend}`);
  }

  /** Pool p's Maglev table (a copy). */
  maglevTable(p: number): Uint16Array {
    const ptr = this.exports.maglevTablePtr(p);
    const m = this.exports.maglevTableSize(p);
    return new Uint16Array(this.memory.buffer.slice(ptr, ptr + m * 2));
  }
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
