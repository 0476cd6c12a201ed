// The Node binding of the core: loads the wasm module, applies configurations, writes
// packets into the rx arena and reads verdict and tuple records back. Views over wasm
// memory are rebuilt whenever memory may have grown (after configure()).
//
// Record layouts and codes come from host/lib/abi.ts (generated from abi/haports.abi.json;
// docs/abi.md draws them).

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import {
  ACTION_RESET, ACTIONS, C_DROP_REASON_BASE, COUNTERS, DESCRIPTOR, DESCRIPTOR_BYTES, LINK_RAW_IP, NONE, REASONS,
  RESET, RESET_BYTES, TUPLE, TUPLE_BYTES, VERDICT, VERDICT_BYTES,
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
