// A small proxy-wasm ABI 0.2.1 host in JavaScript: enough of Envoy's side to unit-test
// the haports filter (build/haports-proxywasm.wasm) quickly, without Envoy. It never
// replaces the real one (test/envoy/e2e.test.mjs runs Envoy itself).
//
// It gives the module exactly the host functions Envoy gives under the names of the
// spec (module "env"); instantiation fails if the module imports anything else (so a
// WASI or env.abort import is caught here too). Like Envoy it:
//   - creates a root context, calls proxy_on_vm_start and proxy_on_configure;
//   - creates a stream context per connection with properties source.address and
//     destination.address ("ip:port", IPv6 "[ip]:port") and calls proxy_on_new_connection;
//   - implements the foreign function set_envoy_filter_state (its protobuf argument
//     decoded as Envoy does) and records the filter state per connection;
//   - runs proxy_on_tick at the tick period on a simulated clock, records proxy_http_call
//     calls, and lets the test answer them (proxy_on_http_call_response);
//   - keeps metrics by name (one stat per name, as Envoy's store does).

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** build/haports-proxywasm.wasm, or $HAPORTS_PROXYWASM. */
export const DEFAULT_WASM = process.env.HAPORTS_PROXYWASM ?? fileURLToPath(new URL('../../build/haports-proxywasm.wasm', import.meta.url));

const OK = 0;
const NOT_FOUND = 1;
const BAD_ARGUMENT = 2;
const CAS_MISMATCH = 8;

/** Filter-state keys Envoy has object factories for (those set_envoy_filter_state accepts). */
const KNOWN_FILTER_STATE = new Set([
  'envoy.tcp_proxy.cluster', 'envoy.network.transport_socket.original_dst_address',
]);

const utf8 = new TextDecoder();
const encode = (s) => new TextEncoder().encode(s);

/** Decodes a SetEnvoyFilterStateArguments message: {path, value, span}. */
export function decodeFilterStateArgs(bytes) {
  const out = { path: '', value: '', span: 0 };
  let i = 0;
  const varint = () => {
    let v = 0;
    let shift = 0;
    for (;;) {
      if (i >= bytes.length) throw new Error('truncated varint');
      const b = bytes[i++];
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
      shift += 7;
    }
  };
  while (i < bytes.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire === 2) {
      const n = varint();
      const s = utf8.decode(bytes.subarray(i, i + n));
      i += n;
      if (field === 1) out.path = s;
      else if (field === 2) out.value = s;
    } else if (wire === 0) {
      const v = varint();
      if (field === 3) out.span = v;
    } else {
      throw new Error(`unexpected wire type ${wire}`);
    }
  }
  return out;
}

/** proxy-wasm serialized header map → [[key, value], …]. */
export function decodeHeaderMap(bytes) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dv.getUint32(0, true);
  const sizes = [];
  for (let k = 0; k < n; k++) sizes.push([dv.getUint32(4 + k * 8, true), dv.getUint32(8 + k * 8, true)]);
  let at = 4 + n * 8;
  const pairs = [];
  for (const [ks, vs] of sizes) {
    const key = utf8.decode(bytes.subarray(at, at + ks));
    at += ks + 1;
    const value = utf8.decode(bytes.subarray(at, at + vs));
    at += vs + 1;
    pairs.push([key, value]);
  }
  return pairs;
}

/** Envoy's shared data: key → { value, cas }, one store for the VMs of a process; set with cas 0 or on a new key always succeeds. */
export class SharedData {
  constructor() {
    this.map = new Map();
    this.nextCas = 0;
  }
}

export class ProxyWasmHost {
  /**
   * @param {{ wasm?: string | Uint8Array, shared?: SharedData }} opts  shared: the process-wide
   *   shared data of several VMs (Envoy's workers); by default each host has its own.
   */
  constructor(opts = {}) {
    this.shared = opts.shared ?? new SharedData();
    const bytes = typeof opts.wasm === 'object' ? opts.wasm : readFileSync(opts.wasm ?? DEFAULT_WASM);
    this.module = new WebAssembly.Module(bytes);
    this.logs = [];            // { level, message }
    this.nowMs = 1_700_000_000_000; // a wall clock, as Envoy's
    this.tickPeriodMs = 0;
    this.nextTickMs = 0;
    this.calls = new Map();    // id → { upstream, headers: Map, timeoutMs }
    this.nextCallId = 1;
    this.stats = new Map();    // name → { type, value }
    this.metricIds = [];       // id → name
    this.nextContext = 2;
    this.rootId = 1;           // the default root context (configure/connect without a root)
    this.roots = [1];          // every root context, in creation order
    this.tickRoots = new Map(); // root → { periodMs, nextMs }
    this.configuring = 0;      // the root whose callback runs (tick period, http calls)
    this.connections = new Map(); // id → connection
    this.current = null;       // the connection whose callback runs
    this.response = null;      // the HTTP call response being delivered
    this.pluginConfig = new Uint8Array(0);
    this.instance = new WebAssembly.Instance(this.module, { env: this.imports() });
    this.exports = this.instance.exports;
    this.exports._initialize();
    this.exports.proxy_on_context_create(this.rootId, 0);
    if (!this.exports.proxy_on_vm_start(this.rootId, 0)) throw new Error('proxy_on_vm_start failed');
  }

  /** The module's imports, by module and name (for the import check). */
  static importsOf(bytes) {
    return WebAssembly.Module.imports(new WebAssembly.Module(bytes));
  }

  get memory() { return new Uint8Array(this.exports.memory.buffer); }
  get view() { return new DataView(this.exports.memory.buffer); }

  read(ptr, len) { return this.memory.slice(ptr, ptr + len); }
  readString(ptr, len) { return utf8.decode(this.memory.subarray(ptr, ptr + len)); }

  /** Copies bytes into a block from the module's allocator; writes pointer and size. */
  give(bytes, retPtr, retSize) {
    const p = this.exports.proxy_on_memory_allocate(Math.max(bytes.length, 1));
    if (!p) return BAD_ARGUMENT;
    this.memory.set(bytes, p);
    this.view.setUint32(retPtr, p, true);
    this.view.setUint32(retSize, bytes.length, true);
    return OK;
  }

  imports() {
    const host = this;
    return {
      proxy_log(level, ptr, len) {
        host.logs.push({ level, message: host.readString(ptr, len) });
        return OK;
      },
      proxy_get_current_time_nanoseconds(ret) {
        host.view.setBigUint64(ret, BigInt(Math.round(host.nowMs * 1e6)), true);
        return OK;
      },
      proxy_set_tick_period_milliseconds(ms) {
        const root = host.configuring || host.rootId;
        host.tickRoots.set(root, { periodMs: ms, nextMs: host.nowMs + ms });
        if (root === host.rootId) {
          host.tickPeriodMs = ms;
          host.nextTickMs = host.nowMs + ms;
        }
        return OK;
      },
      proxy_get_shared_data(kPtr, kLen, retPtr, retSize, retCas) {
        const e = host.shared.map.get(host.readString(kPtr, kLen));
        if (!e) return NOT_FOUND;
        host.view.setUint32(retCas, e.cas, true);
        return host.give(e.value, retPtr, retSize);
      },
      proxy_set_shared_data(kPtr, kLen, vPtr, vLen, cas) {
        const key = host.readString(kPtr, kLen);
        const e = host.shared.map.get(key);
        if (e && cas !== 0 && cas !== e.cas) return CAS_MISMATCH;
        host.shared.map.set(key, { value: host.read(vPtr, vLen), cas: ++host.shared.nextCas });
        return OK;
      },
      proxy_set_property(pathPtr, pathLen, valuePtr, valueLen) {
        const path = host.readString(pathPtr, pathLen).split('\0').join('.');
        if (!host.current) return NOT_FOUND;
        (host.current.properties ??= {})[path] = host.readString(valuePtr, valueLen);
        return OK;
      },
      proxy_get_buffer_bytes(type, start, max, retPtr, retSize) {
        let bytes;
        if (type === 7) bytes = host.pluginConfig;
        else if (type === 4 && host.response) bytes = host.response.body;
        else return NOT_FOUND;
        return host.give(bytes.subarray(start, start + max), retPtr, retSize);
      },
      proxy_get_property(pathPtr, pathLen, retPtr, retSize) {
        const path = host.readString(pathPtr, pathLen).split('\0').join('.');
        const c = host.current;
        if (!c) return NOT_FOUND;
        // upstream.address: tcp_proxy's host, when the cluster the filter named exists (knownClusters) and has one.
        const upstream = () => {
          const cluster = c.filterState['envoy.tcp_proxy.cluster'];
          const dst = c.filterState['envoy.network.transport_socket.original_dst_address'];
          if (dst) return dst;
          if (cluster == null || c.closed || (host.knownClusters && !host.knownClusters.has(cluster))) return null;
          return '192.0.2.1:10000';
        };
        const value = path === 'source.address' ? c.source : path === 'destination.address' ? c.destination
          : path === 'upstream.address' ? upstream() : null;
        if (value == null) return NOT_FOUND;
        return host.give(encode(value), retPtr, retSize);
      },
      proxy_call_foreign_function(namePtr, nameLen, argPtr, argLen, retPtr, retSize) {
        const name = host.readString(namePtr, nameLen);
        if (name !== 'set_envoy_filter_state') return NOT_FOUND;
        let args;
        try { args = decodeFilterStateArgs(host.read(argPtr, argLen)); } catch { return BAD_ARGUMENT; }
        if (!KNOWN_FILTER_STATE.has(args.path)) return NOT_FOUND;
        if (!host.current) return NOT_FOUND;
        host.current.filterState[args.path] = args.value;
        host.current.filterStateSpan = args.span;
        return OK;
      },
      proxy_close_stream(type) {
        if (!host.current) return NOT_FOUND;
        if (type === 2) host.current.closed = true;
        else return BAD_ARGUMENT;
        return OK;
      },
      proxy_http_call(upPtr, upLen, hPtr, hLen, bPtr, bLen, tPtr, tLen, timeout, retId) {
        const upstream = host.readString(upPtr, upLen);
        if (host.knownClusters && !host.knownClusters.has(upstream)) return BAD_ARGUMENT;
        const headers = new Map(decodeHeaderMap(host.read(hPtr, hLen)));
        for (const h of [':method', ':path', ':authority']) if (!headers.has(h)) return BAD_ARGUMENT;
        const id = host.nextCallId++;
        host.calls.set(id, { id, upstream, headers, timeoutMs: timeout, root: host.configuring || host.rootId });
        host.view.setUint32(retId, id, true);
        return OK;
      },
      proxy_get_header_map_value(type, kPtr, kLen, retPtr, retSize) {
        if (type !== 6 || !host.response) return NOT_FOUND;
        const key = host.readString(kPtr, kLen);
        const v = host.response.headers.get(key);
        if (v == null) return NOT_FOUND;
        return host.give(encode(v), retPtr, retSize);
      },
      proxy_define_metric(type, namePtr, nameLen, retId) {
        if (type < 0 || type > 2) return BAD_ARGUMENT;
        const name = host.readString(namePtr, nameLen);
        if (!host.stats.has(name)) host.stats.set(name, { type, value: 0 });
        host.metricIds.push(name);
        host.view.setUint32(retId, host.metricIds.length - 1, true);
        return OK;
      },
      proxy_increment_metric(id, delta) {
        const name = host.metricIds[id];
        if (name == null) return NOT_FOUND;
        const s = host.stats.get(name);
        if (s.type === 0 && delta < 0n) return BAD_ARGUMENT;
        s.value += Number(delta);
        return OK;
      },
      proxy_record_metric(id, value) {
        const name = host.metricIds[id];
        if (name == null) return NOT_FOUND;
        host.stats.get(name).value = Number(value);
        return OK;
      },
    };
  }

  /** A new root context (another filter configuration in this VM, as for a second listener); its id. */
  addRoot() {
    const id = this.nextContext++;
    this.roots.push(id);
    this.exports.proxy_on_context_create(id, 0);
    return id;
  }

  /** The root context goes (its listener drained): done, delete. */
  deleteRoot(root) {
    this.exports.proxy_on_done(root);
    this.exports.proxy_on_delete(root);
    this.roots = this.roots.filter((r) => r !== root);
    this.tickRoots.delete(root);
  }

  /** proxy_on_configure of root context `root` with the given configuration (object or JSON text). */
  configure(config, root = this.rootId) {
    this.pluginConfig = encode(typeof config === 'string' ? config : JSON.stringify(config));
    this.configuring = root;
    try {
      return !!this.exports.proxy_on_configure(root, this.pluginConfig.length);
    } finally {
      this.configuring = 0;
    }
  }

  /** Errors logged (level ≥ error) since `from`. */
  errors(from = 0) {
    return this.logs.slice(from).filter((l) => l.level >= 4).map((l) => l.message);
  }

  /**
   * A new downstream connection from `source` to `destination` ("ip:port" / "[ip]:port").
   * Returns { id, action: 'continue' | 'pause', closed, filterState }.
   */
  connect(source, destination, root = this.rootId) {
    const c = { id: this.nextContext++, source, destination, closed: false, filterState: {}, properties: {} };
    this.connections.set(c.id, c);
    this.current = c;
    try {
      this.exports.proxy_on_context_create(c.id, root);
      c.action = this.exports.proxy_on_new_connection(c.id) === 0 ? 'continue' : 'pause';
    } finally {
      this.current = null;
    }
    return c;
  }

  /** The connection ends: close callbacks, done, delete (as Envoy does). */
  close(c) {
    this.current = c;
    try {
      this.exports.proxy_on_downstream_connection_close(c.id, 2);
      this.exports.proxy_on_done(c.id);
      this.exports.proxy_on_delete(c.id);
    } finally {
      this.current = null;
    }
    this.connections.delete(c.id);
  }

  /** Advances the clock by `ms`, running every tick that falls due. */
  advance(ms) {
    const end = this.nowMs + ms;
    for (;;) {
      // The next tick due of any root (ties: in creation order).
      let next = null;
      for (const root of this.roots) {
        const t = this.tickRoots.get(root);
        if (t && t.periodMs > 0 && t.nextMs <= end && (!next || t.nextMs < next[1].nextMs)) next = [root, t];
      }
      if (!next) break;
      const [root, t] = next;
      this.nowMs = t.nextMs;
      t.nextMs += t.periodMs;
      if (root === this.rootId) this.nextTickMs = t.nextMs;
      this.configuring = root;
      try {
        this.exports.proxy_on_tick(root);
      } finally {
        this.configuring = 0;
      }
    }
    this.nowMs = end;
  }

  /** Answers HTTP call `id`: { status, body } or null for a failed call (no headers). */
  respond(id, answer) {
    const call = this.calls.get(id);
    if (!call) throw new Error(`no call ${id}`);
    this.calls.delete(id);
    if (answer == null) {
      this.response = null;
      this.exports.proxy_on_http_call_response(call.root, id, 0, 0, 0);
      return;
    }
    const body = encode(answer.body ?? '');
    this.response = { headers: new Map([[':status', String(answer.status)]]), body };
    try {
      this.exports.proxy_on_http_call_response(call.root, id, 1, body.length, 0);
    } finally {
      this.response = null;
    }
  }

  /** Answers every pending call with answer(call). */
  respondAll(answer) {
    for (const call of [...this.calls.values()]) this.respond(call.id, answer(call));
  }

  stat(name) { return this.stats.get(name)?.value; }
}
