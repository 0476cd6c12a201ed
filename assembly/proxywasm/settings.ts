// What the filter needs from one configuration, read once in proxy_on_configure and
// never on the connection path: the "filter" section (our host section beside the
// core's, docs/design.md "The configuration"), the per-backend upstream selection
// pre-serialized as the argument of Envoy's `set_envoy_filter_state`, and the probes to
// run: the core's probe targets (probeTargetsOf), each as an HTTP call through the
// probe cluster. What a result means is the core's (health.ts).
//
//   "filter": {
//     "ingressFrontend": "fe",        frontend the listener stands for (next hop); omitted:
//                                     match frontends by the connection's destination
//     "upstream": "cluster",          "cluster": envoy.tcp_proxy.cluster = clusterName
//                                     "originalDst": envoy.network.transport_socket.
//                                       original_dst_address = "backend:port"
//     "clusterName": "{backend}",     cluster per backend; {pool} and {backend} are replaced
//     "noMatch": "close",             no rule matched: "close" | "defaultCluster"
//     "noHealthyBackend": "close",    every backend down (noHealthyBackends "drop"): same
//     "defaultCluster": "",           the tcp_proxy cluster for "defaultCluster"
//     "probeCluster": "haports_probe",        ORIGINAL_DST cluster (use_http_header) for probes;
//     "probeTlsCluster": "haports_probe_tls", the same with TLS, for "https" probes; "" = no probes
//     "statPrefix": "haports",        the filter's stats: <statPrefix>.connections, … (per listener)
//     "accessLog": false,             true: each connection's "rule backend outcome" in the
//                                     property `haports` (filter state wasm.haports)
//     "initialHealth": "down"         a backend whose probe targets have no result yet (after a
//                                     start, restart or hot restart): "down" | "up"
//   }
//
// The rest of the configuration is the core's, validated by the core's own reader
// (parseConfig) so that the filter accepts exactly what the core accepts; the filter
// section is one of the model's host sections, so the text is parsed once.

import { NONE } from "../consts";
import { ConfigModel, Errors, probeTargetsOf } from "../config";
import { JsonBool, JsonKind, JsonObject, JsonString, JsonValue } from "../json";

export const UPSTREAM_CLUSTER: i32 = 0;     // envoy.tcp_proxy.cluster
export const UPSTREAM_ORIGINAL_DST: i32 = 1; // envoy.network.transport_socket.original_dst_address
export const UNROUTED_CLOSE: i32 = 0;       // close the downstream connection
export const UNROUTED_DEFAULT: i32 = 1;     // tcp_proxy to filter.defaultCluster

export const PROBE_TCP: i32 = 0;
export const PROBE_HTTP: i32 = 1;
export const PROBE_HTTPS: i32 = 2;

/** Filter-state keys of Envoy's well-known objects (docs: well_known_filter_state). */
export const KEY_TCP_PROXY_CLUSTER = "envoy.tcp_proxy.cluster";
export const KEY_ORIGINAL_DST_ADDRESS = "envoy.network.transport_socket.original_dst_address";

const FILTER_FIELDS = [
  "ingressFrontend", "upstream", "clusterName", "noMatch", "noHealthyBackend", "defaultCluster",
  "probeCluster", "probeTlsCluster", "statPrefix", "accessLog", "initialHealth",
];
const INITIAL_HEALTH = ["down", "up"];
const UPSTREAMS = ["cluster", "originalDst"];
const UNROUTED = ["close", "defaultCluster"];

/** One probe target of the core (probe, address): probed every interval through the probe cluster. */
export class ProbeTarget {
  /** The core's index (probeResult). */
  index: i32 = 0;
  probeName: string = "";
  address: string = "";
  /** The backends it speaks for (the core's numbering). */
  backends: Array<i32> = new Array<i32>();
  protocol: i32 = PROBE_TCP;
  intervalMs: f64 = 5000;
  timeoutMs: u32 = 5000;
  /** The HTTP call: cluster name and serialized request headers (proxy-wasm map format). */
  cluster: ArrayBuffer = new ArrayBuffer(0);
  headers: ArrayBuffer = new ArrayBuffer(0);
  // Scheduling, driven by the tick.
  nextDueMs: f64 = 0;
  inflight: bool = false;
  /** Its last probe could not be sent (no such cluster): no result will come; it does not hold its backends down. */
  sendFailed: bool = false;
}

export class Settings {
  ingress: i32 = NONE;
  upstream: i32 = UPSTREAM_CLUSTER;
  noMatch: i32 = UNROUTED_CLOSE;
  noHealthy: i32 = UNROUTED_CLOSE;
  defaultCluster: string = "";
  /** set_envoy_filter_state argument selecting defaultCluster (empty when unused). */
  defaultClusterArg: ArrayBuffer = new ArrayBuffer(0);
  probeCluster: string = "haports_probe";
  probeTlsCluster: string = "haports_probe_tls";
  statPrefix: string = "haports";
  /** Set the property `haports` of every connection ("rule backend outcome") for access logs. */
  accessLog: bool = false;
  /** A backend with a probe target that has no result yet counts as down (else up, the core's default). */
  unknownIsDown: bool = true;
  /** Per rule: its name, UTF-8 (the access-log property). */
  ruleName: StaticArray<ArrayBuffer> = new StaticArray<ArrayBuffer>(0);
  /** Per backend: "pool.backend", UTF-8 (the access-log property). */
  backendName: StaticArray<ArrayBuffer> = new StaticArray<ArrayBuffer>(0);
  /** Per backend (the core's numbering: pools in order, backends in order). */
  backendLabel: StaticArray<string> = new StaticArray<string>(0); // "pool.backend", for metrics
  backendCluster: StaticArray<string> = new StaticArray<string>(0);
  /** upstream "cluster": the whole set_envoy_filter_state argument; "originalDst": the
   *  address text ("10.0.0.1" or "[fd00::1]") that the port is appended to. */
  backendArg: StaticArray<ArrayBuffer> = new StaticArray<ArrayBuffer>(0);
  /** Per rule: its backend port (0: the connection's own destination port). */
  ruleBackendPort: StaticArray<i32> = new StaticArray<i32>(0);
  probes: Array<ProbeTarget> = new Array<ProbeTarget>();
}

// ---- Reading helpers (the core's message style: `path: reason`) ------------------------------

function str(v: JsonValue | null, path: string, errors: Errors, def: string): string {
  if (v == null) return def;
  if (v.kind != JsonKind.String) {
    errors.add(path, "expected a string, got " + v.kindName());
    return def;
  }
  return changetype<JsonString>(v).value;
}

function oneOf(v: JsonValue | null, path: string, errors: Errors, options: Array<string>, def: i32): i32 {
  if (v == null) return def;
  const list = "one of \"" + options.join("\", \"") + "\"";
  if (v.kind != JsonKind.String) {
    errors.add(path, "expected " + list + ", got " + v.kindName());
    return def;
  }
  const s = changetype<JsonString>(v).value;
  const i = options.indexOf(s);
  if (i < 0) {
    errors.add(path, "expected " + list + ", got \"" + s + "\"");
    return def;
  }
  return i;
}

/** A stat name prefix: dot-separated words of letters, digits, '_' and '-'. */
function validStatPrefix(p: string): bool {
  if (p.length == 0 || p.length > 64) return false;
  let last = 0x2e; // '.': a word must start here
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    const word = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x5f || c == 0x2d;
    if (c == 0x2e) { if (last == 0x2e) return false; }
    else if (!word) return false;
    last = c;
  }
  return last != 0x2e;
}

// ---- Serialization ------------------------------------------------------------------------------

/** Appends a protobuf varint. */
function varint(out: Array<u8>, n: u32): void {
  while (n >= 0x80) {
    out.push(<u8>((n & 0x7f) | 0x80));
    n >>>= 7;
  }
  out.push(<u8>n);
}

function appendBytes(out: Array<u8>, s: string): void {
  const b = Uint8Array.wrap(String.UTF8.encode(s));
  for (let i = 0; i < b.length; i++) out.push(b[i]);
}

function toBuffer(bytes: Array<u8>): ArrayBuffer {
  const buf = new ArrayBuffer(bytes.length);
  for (let i = 0; i < bytes.length; i++) store<u8>(changetype<usize>(buf) + <usize>i, bytes[i]);
  return buf;
}

/**
 * The argument of Envoy's `set_envoy_filter_state` foreign function: the protobuf
 * message envoy.source.extensions.common.wasm.SetEnvoyFilterStateArguments
 * (source/extensions/common/wasm/ext/set_envoy_filter_state.proto):
 *   string path = 1;  string value = 2;  LifeSpan span = 3 (default FilterChain, omitted).
 */
export function filterStateArg(key: string, value: string): ArrayBuffer {
  const out = new Array<u8>();
  const k = String.UTF8.byteLength(key);
  const v = String.UTF8.byteLength(value);
  out.push(0x0a); // field 1, length-delimited
  varint(out, <u32>k);
  appendBytes(out, key);
  out.push(0x12); // field 2, length-delimited
  varint(out, <u32>v);
  appendBytes(out, value);
  return toBuffer(out);
}

/** Serialized header map (proxy-wasm): count, (key length, value length)*, key\0value\0*. */
function headerMap(keys: Array<string>, values: Array<string>): ArrayBuffer {
  const kb = new Array<ArrayBuffer>();
  const vb = new Array<ArrayBuffer>();
  let size = 4;
  for (let i = 0; i < keys.length; i++) {
    kb.push(String.UTF8.encode(keys[i]));
    vb.push(String.UTF8.encode(values[i]));
    size += 8 + kb[i].byteLength + vb[i].byteLength + 2;
  }
  const buf = new ArrayBuffer(size);
  const p = changetype<usize>(buf);
  store<u32>(p, keys.length);
  let at = p + 4;
  for (let i = 0; i < keys.length; i++) {
    store<u32>(at, kb[i].byteLength);
    store<u32>(at, vb[i].byteLength, 4);
    at += 8;
  }
  for (let i = 0; i < keys.length; i++) {
    memory.copy(at, changetype<usize>(kb[i]), kb[i].byteLength);
    at += kb[i].byteLength;
    store<u8>(at++, 0);
    memory.copy(at, changetype<usize>(vb[i]), vb[i].byteLength);
    at += vb[i].byteLength;
    store<u8>(at++, 0);
  }
  return buf;
}

/** "10.0.0.1" or "[fd00::1]": the address as Envoy's "ip:port" strings write it. */
function bracketed(address: string, family: u8): string {
  return family == 6 ? "[" + address + "]" : address;
}

function replaceAll(s: string, what: string, with_: string): string {
  return s.split(what).join(with_);
}

// ---- The settings of one configuration -----------------------------------------------------------

/**
 * Reads the filter section (`section`, a host section of the core's model; null when
 * absent) and builds the Settings, or returns null with `errors` filled in. `model` is
 * the core's reading of the configuration; when the core rejected it (null), the section
 * is still checked on its own, so that one answer lists every error.
 */
export function readSettings(section: JsonValue | null, model: ConfigModel | null, errors: Errors): Settings | null {
  const s = new Settings();
  const fv = section;
  let f: JsonObject | null = null;
  if (fv != null) {
    if (fv.kind != JsonKind.Object) errors.add("filter", "expected an object, got " + fv.kindName());
    else f = changetype<JsonObject>(fv);
  }
  let clusterTemplate = "{backend}";
  if (f != null) {
    for (let i = 0; i < f.keys.length; i++) {
      if (!FILTER_FIELDS.includes(f.keys[i])) errors.add("filter." + f.keys[i], "unknown field");
    }
    const ingress = str(f.get("ingressFrontend"), "filter.ingressFrontend", errors, "");
    if (f.has("ingressFrontend") && model != null) {
      for (let i = 0; i < model.frontends.length; i++) {
        if (model.frontends[i].name == ingress) s.ingress = i;
      }
      if (s.ingress == NONE) errors.add("filter.ingressFrontend", "unknown frontend \"" + ingress + "\"");
    }
    s.upstream = oneOf(f.get("upstream"), "filter.upstream", errors, UPSTREAMS, UPSTREAM_CLUSTER);
    clusterTemplate = str(f.get("clusterName"), "filter.clusterName", errors, clusterTemplate);
    s.noMatch = oneOf(f.get("noMatch"), "filter.noMatch", errors, UNROUTED, UNROUTED_CLOSE);
    s.noHealthy = oneOf(f.get("noHealthyBackend"), "filter.noHealthyBackend", errors, UNROUTED, UNROUTED_CLOSE);
    s.defaultCluster = str(f.get("defaultCluster"), "filter.defaultCluster", errors, "");
    s.probeCluster = str(f.get("probeCluster"), "filter.probeCluster", errors, s.probeCluster);
    s.probeTlsCluster = str(f.get("probeTlsCluster"), "filter.probeTlsCluster", errors, s.probeTlsCluster);
    s.statPrefix = str(f.get("statPrefix"), "filter.statPrefix", errors, s.statPrefix);
    if (!validStatPrefix(s.statPrefix)) {
      errors.add("filter.statPrefix", "must be letters, digits, '_', '-' and '.' between them, got \"" + s.statPrefix + "\"");
    }
    s.unknownIsDown = oneOf(f.get("initialHealth"), "filter.initialHealth", errors, INITIAL_HEALTH, 0) == 0;
    const al = f.get("accessLog");
    if (al != null) {
      if (al.kind != JsonKind.Bool) errors.add("filter.accessLog", "expected true or false, got " + al.kindName());
      else s.accessLog = changetype<JsonBool>(al).value;
    }
  }
  if (s.defaultCluster.length == 0) {
    if (s.noMatch == UNROUTED_DEFAULT) errors.add("filter.defaultCluster", "required when filter.noMatch is \"defaultCluster\"");
    if (s.noHealthy == UNROUTED_DEFAULT) errors.add("filter.defaultCluster", "required when filter.noHealthyBackend is \"defaultCluster\"");
  } else {
    s.defaultClusterArg = filterStateArg(KEY_TCP_PROXY_CLUSTER, s.defaultCluster);
  }
  if (s.upstream == UPSTREAM_CLUSTER && !clusterTemplate.includes("{backend}")) {
    errors.add("filter.clusterName", "must contain \"{backend}\", got \"" + clusterTemplate + "\"");
  }
  if (model == null) return null;

  // Per backend: the label, the cluster and the upstream argument.
  let n = 0;
  for (let p = 0; p < model.pools.length; p++) n += model.pools[p].backends.length;
  s.backendLabel = new StaticArray<string>(n);
  s.backendName = new StaticArray<ArrayBuffer>(n);
  s.backendCluster = new StaticArray<string>(n);
  s.backendArg = new StaticArray<ArrayBuffer>(n);
  const backendPath = new Array<string>();
  const clusters = new Map<string, i32>();
  let b = 0;
  for (let p = 0; p < model.pools.length; p++) {
    const pool = model.pools[p];
    for (let j = 0; j < pool.backends.length; j++, b++) {
      const be = pool.backends[j];
      s.backendLabel[b] = pool.name + "." + be.name;
      s.backendName[b] = String.UTF8.encode(s.backendLabel[b]);
      backendPath.push("backendPools[" + p.toString() + "].backends[" + j.toString() + "]");
      if (s.upstream == UPSTREAM_CLUSTER) {
        const name = replaceAll(replaceAll(clusterTemplate, "{pool}", pool.name), "{backend}", be.name);
        s.backendCluster[b] = name;
        if (clusters.has(name)) {
          errors.add("filter.clusterName", "\"" + clusterTemplate + "\" gives " + backendPath[b] + " the cluster \""
            + name + "\" of " + backendPath[clusters.get(name)] + "; use {pool} to tell pools apart");
        } else {
          clusters.set(name, b);
        }
        s.backendArg[b] = filterStateArg(KEY_TCP_PROXY_CLUSTER, name);
      } else {
        s.backendCluster[b] = "";
        s.backendArg[b] = String.UTF8.encode(bracketed(be.addressText, be.address.family));
      }
    }
  }

  s.ruleBackendPort = new StaticArray<i32>(model.rules.length);
  s.ruleName = new StaticArray<ArrayBuffer>(model.rules.length);
  for (let r = 0; r < model.rules.length; r++) {
    s.ruleBackendPort[r] = model.rules[r].backendPort;
    s.ruleName[r] = String.UTF8.encode(model.rules[r].name);
  }

  readProbes(model, s, errors);
  return errors.count > 0 ? null : s;
}

/** The probe of every core probe target (probeTargetsOf), as an HTTP call through a probe cluster. */
function readProbes(model: ConfigModel, s: Settings, errors: Errors): void {
  // A rule that names a probe needs the cluster its protocol goes through.
  for (let r = 0; r < model.rules.length; r++) {
    const rule = model.rules[r];
    if (rule.probeIndex < 0) continue;
    const probe = model.probes[rule.probeIndex];
    const https = probe.protocol == "https";
    if ((https ? s.probeTlsCluster : s.probeCluster).length == 0) {
      errors.add(https ? "filter.probeTlsCluster" : "filter.probeCluster",
        "empty, but rules[" + r.toString() + "] names probe \"" + probe.name + "\"");
    }
  }
  if (errors.count > 0) return;
  const targets = probeTargetsOf(model);
  for (let i = 0; i < targets.probe.length; i++) {
    const probe = model.probes[targets.probe[i]];
    const protocol = probe.protocol == "https" ? PROBE_HTTPS : probe.protocol == "http" ? PROBE_HTTP : PROBE_TCP;
    const t = new ProbeTarget();
    t.index = i;
    t.probeName = probe.name;
    t.address = targets.address[i];
    t.backends = targets.backends[i];
    t.protocol = protocol;
    t.intervalMs = <f64>probe.intervalSeconds * 1000;
    t.timeoutMs = <u32>(probe.timeoutSeconds * 1000); // the core holds it to the interval
    t.cluster = String.UTF8.encode(protocol == PROBE_HTTPS ? s.probeTlsCluster : s.probeCluster);
    const host = bracketed(targets.address[i], targets.family[i]) + ":" + probe.port.toString();
    const keys = [":method", ":path", ":authority", ":scheme", "x-envoy-original-dst-host", "user-agent"];
    const values = ["GET", protocol == PROBE_TCP ? "/" : probe.path, host,
      protocol == PROBE_HTTPS ? "https" : "http", host, "haports-probe/" + probe.name];
    t.headers = headerMap(keys, values);
    s.probes.push(t);
  }
}
