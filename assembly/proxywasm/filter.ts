// Part 3 of the proxy-wasm layer (envoy/README.md "How it works"): the haports network filter. It runs the
// core unchanged: every new downstream connection becomes one synthetic TCP SYN of its
// 5-tuple in the core's rx arena, processed by processBatch exactly as a packet would be
// (rule match, flow tracking, Maglev); the verdict picks the upstream through Envoy's
// `set_envoy_filter_state` foreign function. Probes run on the root context's tick; each
// result goes to the core's probeResult, which applies the health policy (health.ts).
//
//   new connection ─ source.address, destination.address ─▶ SYN in the rx arena
//        ─▶ processBatch(1, now, ingressFrontend, raw IP) ─▶ verdict
//        ─▶ forward: envoy.tcp_proxy.cluster = clusterName(backend)           ("cluster")
//                 or envoy.network.transport_socket.original_dst_address
//                      = "backend:port"                                       ("originalDst")
//        ─▶ no match / no healthy backend: close, or filter.defaultCluster; counted
//   downstream close ─▶ FIN|ACK of the same 5-tuple, kept since the SYN (connections.ts):
//        the flow entry's life is shortened
//   tick ─▶ due probes: HTTP call through the probe cluster ─▶ response ─▶ probeResult:
//        the core's policy (first result, thresholds, damping) sets the backends' health
//        (Maglev rebuilt by the core)
//
// The connection path allocates no managed memory: property values arrive in blocks the
// host allocates through our malloc and that are freed at once; foreign-function
// arguments are pre-serialized per backend (settings.ts) or written into a fixed buffer;
// open connections are kept in a raw-memory table (connections.ts).

import {
  BACKEND_DOWN, LINK_RAW_IP, ACTION_FORWARD, ACTION_NOMATCH, REASON_NO_HEALTHY_BACKEND, TRANSITION_DOWN,
  TRANSITION_HELD, TRANSITION_INITIALLY_DOWN, TRANSITION_NONE,
} from "../consts";
import { V_ACTION, V_BACKEND, V_REASON, V_RULE } from "../layout";
import { Errors, readModel } from "../config";
import { JsonValue } from "../json";
import {
  backendState, configBufferPtr, configBufferSize, configure as coreConfigure, descriptorsPtr,
  errorBufferPtr, errorLength, probeHoldSeconds, probeResult as coreProbeResult, probeTargetCount, probeTargetsPtr,
  processBatch, rxArenaPtr, setBackendHealth, syncProbeTargets, verdictsPtr,
} from "../index";
import { PROBE_TARGET_BYTES, PT_STATE, TARGET_UNKNOWN } from "../abi";
import {
  ACTION_CONTINUE, ACTION_PAUSE, BUFFER_HTTP_CALL_RESPONSE_BODY, BUFFER_PLUGIN_CONFIGURATION, LOG_ERROR, LOG_INFO, LOG_WARN,
  MAP_HTTP_CALL_RESPONSE_HEADERS, METRIC_GAUGE, STATUS_OK, STATUS_UNIMPLEMENTED,
} from "./imports";
import {
  callForeign, closeDownstream, currentTimeMs, defineCounter, defineMetric, freeResult, getBuffer,
  getHeader, getProperty, getSharedData, httpCall, incrementMetric, lastStatus, log, recordMetric, resultData,
  resultSize, setProperty, setSharedData, setTickPeriod, sharedCas,
} from "./hostcalls";
import { endpointPort, parseEndpoint } from "./endpoint";
import { forget, recall, recalledBackend, recalledDport, recalledFamily, recalledRoot, recalledSport, remember } from "./connections";
import {
  KEY_ORIGINAL_DST_ADDRESS, PROBE_TCP, ProbeTarget, readSettings, Settings, UNROUTED_DEFAULT,
  UPSTREAM_CLUSTER,
} from "./settings";

/** Tick period (milliseconds): probe scheduling granularity. */
export const TICK_MS: u32 = 50;
/** Garbage collection every this many ticks (configuration and probe bookkeeping only). */
const COLLECT_EVERY_TICKS: i32 = 20;
/** Per-connection errors logged in full before only every power of two is. */
const ERRORS_LOGGED: i64 = 10;

const TCP_SYN: u8 = 0x02;
const TCP_FIN_ACK: u8 = 0x11;

// ---- Constant byte strings ------------------------------------------------------------------

function bytes(s: string): ArrayBuffer { return String.UTF8.encode(s); }
const PATH_SOURCE = bytes("source\0address");
const PATH_DESTINATION = bytes("destination\0address");
const FN_SET_FILTER_STATE = bytes("set_envoy_filter_state");
const KEY_STATUS = bytes(":status");
const KEY_ORIGINAL_DST = bytes(KEY_ORIGINAL_DST_ADDRESS);

@inline function ptr(b: ArrayBuffer): usize { return changetype<usize>(b); }
@inline function len(b: ArrayBuffer): i32 { return b.byteLength; }

/** Fixed buffers: the two endpoints (16 bytes each) and the originalDst argument. */
const srcAddr: usize = heap.alloc(16);
const dstAddr: usize = heap.alloc(16);
const argBuffer: usize = heap.alloc(256);

// ---- State ---------------------------------------------------------------------------------

/** A filter's counters and gauges, named under its settings' statPrefix. */
class Metrics {
  connections: i64 = -1;       // forwarded to a backend
  noMatch: i64 = -1;           // no rule matched
  noHealthy: i64 = -1;         // every backend of the rule down (noHealthyBackends "drop")
  defaultCluster: i64 = -1;    // sent to filter.defaultCluster
  closed: i64 = -1;            // closed by the filter
  errors: i64 = -1;            // host calls that failed (properties, filter state, probes)
  probeFailures: i64 = -1;     // probes that failed (the backend answered no, or not at all)
  probeErrors: i64 = -1;       // probes that could not be sent (e.g. no such probe cluster)
  configApplied: i64 = -1;     // configurations this VM applied (proxy_on_configure)
  configRejected: i64 = -1;
  configSwitches: i64 = -1;    // the core switched to this configuration for its connections
  configHash: i64 = -1;        // gauge: the configuration's 32-bit FNV-1a hash (which one runs)
  upstreamErrors: i64 = -1;    // connections closed without an upstream host (the cluster could not take them)
  backendConnections: StaticArray<i64> = new StaticArray<i64>(0);
  backendHealthy: StaticArray<i64> = new StaticArray<i64>(0);
  backendUpstreamErrors: StaticArray<i64> = new StaticArray<i64>(0);
  /**
   * The connection path's counters, batched: counts since the last flush, per slot
   * (SLOT_*, then SLOT_BACKEND + backend), and the metric each slot goes to. A tick
   * flushes them (one host call per counter that moved, instead of two per connection).
   */
  pending: StaticArray<i64> = new StaticArray<i64>(SLOT_BACKEND);
  pendingId: StaticArray<i64> = new StaticArray<i64>(SLOT_BACKEND);
}

const SLOT_CONNECTIONS: i32 = 0;
const SLOT_NO_MATCH: i32 = 1;
const SLOT_NO_HEALTHY: i32 = 2;
const SLOT_DEFAULT_CLUSTER: i32 = 3;
const SLOT_CLOSED: i32 = 4;
const SLOT_BACKEND: i32 = 5;

/** Counts one in a batched counter (no host call). */
@inline function count(m: Metrics, slot: i32): void {
  unchecked(m.pending[slot] = unchecked(m.pending[slot]) + 1);
}

/** Hands the batched counts to the host. */
function flushMetrics(m: Metrics): void {
  const pending = m.pending;
  for (let i = 0; i < pending.length; i++) {
    const n = unchecked(pending[i]);
    if (n == 0) continue;
    incrementMetric(unchecked(m.pendingId[i]), n);
    unchecked(pending[i] = 0);
  }
}

function defineMetrics(prefix: string, s: Settings | null): Metrics {
  const m = new Metrics();
  const p = prefix + ".";
  m.connections = defineCounter(p + "connections");
  m.noMatch = defineCounter(p + "no_match");
  m.noHealthy = defineCounter(p + "no_healthy_backend");
  m.defaultCluster = defineCounter(p + "default_cluster");
  m.closed = defineCounter(p + "closed");
  m.errors = defineCounter(p + "errors");
  m.probeFailures = defineCounter(p + "probe_failures");
  m.probeErrors = defineCounter(p + "probe_errors");
  m.configApplied = defineCounter(p + "config.applied");
  m.configRejected = defineCounter(p + "config.rejected");
  m.configSwitches = defineCounter(p + "config.switches");
  m.configHash = defineMetric(METRIC_GAUGE, p + "config.hash");
  m.upstreamErrors = defineCounter(p + "upstream_errors");
  const nb = s != null ? s.backendLabel.length : 0;
  m.pending = new StaticArray<i64>(SLOT_BACKEND + nb);
  m.pendingId = new StaticArray<i64>(SLOT_BACKEND + nb);
  m.pendingId[SLOT_CONNECTIONS] = m.connections;
  m.pendingId[SLOT_NO_MATCH] = m.noMatch;
  m.pendingId[SLOT_NO_HEALTHY] = m.noHealthy;
  m.pendingId[SLOT_DEFAULT_CLUSTER] = m.defaultCluster;
  m.pendingId[SLOT_CLOSED] = m.closed;
  if (s != null) {
    const n = s.backendLabel.length;
    m.backendConnections = new StaticArray<i64>(n);
    m.backendHealthy = new StaticArray<i64>(n);
    m.backendUpstreamErrors = new StaticArray<i64>(n);
    for (let b = 0; b < n; b++) {
      m.backendUpstreamErrors[b] = defineCounter(p + "backend." + s.backendLabel[b] + ".upstream_errors");
      m.backendConnections[b] = defineCounter(p + "backend." + s.backendLabel[b] + ".connections");
      m.pendingId[SLOT_BACKEND + b] = m.backendConnections[b];
      m.backendHealthy[b] = defineMetric(METRIC_GAUGE, p + "backend." + s.backendLabel[b] + ".healthy");
    }
  }
  return m;
}

/**
 * One root context (one filter configuration as Envoy hands it to this VM: a listener's,
 * or an earlier one Envoy still keeps, e.g. while a listener drains). Each keeps its own
 * configuration; the core holds one at a time, the `current` root's, and switches to a
 * connection's own before routing it (envoy/README.md "Configurations and rollbacks").
 */
class Root {
  id: u32 = 0;
  /** The configuration text as applied (the plugin configuration). */
  config: ArrayBuffer = new ArrayBuffer(0);
  settings: Settings = new Settings();
  metrics: Metrics = new Metrics();
  /**
   * Per backend: closes until its next upstream check. 0: check every close (from the
   * start, and while its connections find no upstream); after one that had an upstream,
   * UPSTREAM_RECHECK closes go by unchecked (each check is a property read).
   */
  untilCheck: StaticArray<i32> = new StaticArray<i32>(0);
  // One view of health for every VM (every Envoy worker) of this configuration: shared
  // data keyed by a hash of the configuration text. One VM holds the lease and probes;
  // it publishes the probe target records after each result; the others copy them.
  leaseKey: ArrayBuffer = new ArrayBuffer(0);
  healthKey: ArrayBuffer = new ArrayBuffer(0);
  leader: bool = false;
  leaseCas: u32 = 0;
  healthCas: u32 = 0;
  /** Scratch per backend (tick path): state before a change; "has a target without a result". */
  stateBefore: StaticArray<i32> = new StaticArray<i32>(0);
  unknown: StaticArray<bool> = new StaticArray<bool>(0);
  /** What the prober publishes: the probe target records, then one byte per target: its probe could not be sent. */
  published: ArrayBuffer = new ArrayBuffer(0);
}

/** The probing VM's lease lasts this long without renewal (it renews every tick). */
const LEASE_MS: f64 = 500;

/** 32-bit FNV-1a of n bytes at p. */
function fnv32(p: usize, n: i32): u32 {
  let h: u32 = 0x811c9dc5;
  for (let i = 0; i < n; i++) h = (h ^ <u32>load<u8>(p + <usize>i)) * 0x01000193;
  return h;
}

/** 64-bit FNV-1a of n bytes at p, as 16 hex digits. */
function hashText(p: usize, n: i32): string {
  let h: u64 = 0xcbf29ce484222325;
  for (let i = 0; i < n; i++) h = (h ^ <u64>load<u8>(p + <usize>i)) * 0x100000001b3;
  let out = "";
  for (let i = 60; i >= 0; i -= 4) out += "0123456789abcdef".charAt(<i32>((h >> <u64>i) & 0xf));
  return out;
}

/** Closes between two upstream checks of a backend whose cluster works. */
const UPSTREAM_RECHECK: i32 = 1024;

/** Root contexts with an applied configuration, by id. */
const rootsById = new Map<u32, Root>();
/** The root whose configuration the core holds (null until the first is applied). */
let current: Root | null = null;
/** Settings and text being applied: held by globals across the core's configure(), which collects garbage. */
let pending: Settings | null = null;
let pendingText: ArrayBuffer | null = null;
/** Counters of configurations that never got a root (rejected ones), under the default prefix. */
let vmMetrics: Metrics | null = null;

function defaultMetrics(): Metrics {
  if (vmMetrics == null) vmMetrics = defineMetrics("haports", null);
  return changetype<Metrics>(vmMetrics);
}

/** In-flight probe calls: call id → index into the current root's probes. */
const calls = new Map<u32, i32>();
let lastNowMs: f64 = 0;
let ticks: i32 = 0;
let errorCount: i64 = 0;
let switchCount: i64 = 0;

/** The host clock in milliseconds, never going back (the core's flow timeouts need that). */
function nowMs(): f64 {
  const t = currentTimeMs();
  if (t > lastNowMs) lastNowMs = t;
  return lastNowMs;
}

/**
 * The connection path's clock: the time of the last tick (every 50 ms) or configuration,
 * read without a host call. Flow timeouts are seconds; a flow's time may be up to one
 * tick early, never later, and never goes back.
 */
let tickClockMs: f64 = 0;
@inline function connectionClock(): f64 {
  return tickClockMs > 0 ? tickClockMs : nowMs();
}

/** Logs every power of two of `count` after the first ERRORS_LOGGED. */
@inline function logged(count: i64): bool {
  return count <= ERRORS_LOGGED || (count & (count - 1)) == 0;
}

function countError(m: Metrics, what: string, level: i32 = LOG_WARN): void {
  errorCount++;
  incrementMetric(m.errors);
  if (logged(errorCount)) log(level, what + " (error " + errorCount.toString() + ")");
}

// ---- Configuration ---------------------------------------------------------------------------

function rejectWith(lines: Array<string>, prefix: string): bool {
  for (let i = 0; i < lines.length; i++) log(LOG_ERROR, "invalid configuration: " + lines[i]);
  incrementMetric((prefix == "haports" ? defaultMetrics() : defineMetrics(prefix, null)).configRejected);
  return false;
}

/**
 * proxy_on_configure of root context `root`: reads the plugin configuration (the core's
 * JSON plus our "filter" section), validates all of it, and only then applies it, to the
 * core and as this root's own configuration. Invalid: every error is logged as `path:
 * reason` and false is returned, so Envoy rejects the configuration and keeps the one it
 * had (Envoy checks it in a throwaway VM first). A configuration equal to an earlier one
 * is applied all the same.
 */
export function configure(root: u32, size: i32): bool {
  const errors = new Errors();
  if (size <= 0) {
    errors.add("$", "no configuration: give the haports JSON as the Wasm filter's `configuration`");
    return rejectWith(errors.lines, "haports");
  }
  if (size > configBufferSize()) {
    errors.add("$", "configuration larger than " + configBufferSize().toString() + " bytes");
    return rejectWith(errors.lines, "haports");
  }
  if (!getBuffer(BUFFER_PLUGIN_CONFIGURATION, size)) {
    errors.add("$", "the host gave no plugin configuration");
    return rejectWith(errors.lines, "haports");
  }
  const n = min(resultSize, size);
  memory.copy(configBufferPtr(), resultData, <usize>n);
  freeResult();

  // The core's reader, without applying anything; then our section, one of its host
  // sections (checked even when the core rejects the rest, so every error is listed).
  const read = readModel(configBufferPtr(), n, errors);
  if (read != null) {
    let section: JsonValue | null = null;
    const at = read.hostSectionNames.indexOf("filter");
    if (at >= 0) section = read.hostSections[at];
    pending = readSettings(section, errors.count > 0 ? null : read, errors);
  }
  for (let i = 0; i < errors.warnings.length; i++) log(LOG_WARN, "configuration warning: " + errors.warnings[i]);
  for (let i = 0; i < errors.infos.length; i++) log(LOG_INFO, "configuration info: " + errors.infos[i]);
  if (errors.count > 0 || pending == null) {
    const prefix = pending != null ? changetype<Settings>(pending).statPrefix : "haports";
    pending = null;
    if (errors.dropped > 0) errors.lines.push("$: " + errors.dropped.toString() + " more errors not shown");
    return rejectWith(errors.lines, prefix);
  }
  const text = new ArrayBuffer(n);
  memory.copy(changetype<usize>(text), configBufferPtr(), <usize>n);
  pendingText = text;

  // Apply. The core collects garbage inside configure(): from here on only globals are used.
  if (coreConfigure(n) != 0) {
    // Cannot happen (the same reader accepted it above); reported all the same.
    const message = String.UTF8.decodeUnsafe(errorBufferPtr(), <usize>errorLength());
    const prefix = changetype<Settings>(pending).statPrefix;
    pending = null;
    pendingText = null;
    return rejectWith(message.split("\n"), prefix);
  }
  const r = new Root();
  r.id = root;
  r.config = changetype<ArrayBuffer>(pendingText);
  r.settings = changetype<Settings>(pending);
  r.metrics = defineMetrics(r.settings.statPrefix, r.settings);
  r.untilCheck = new StaticArray<i32>(r.settings.backendLabel.length);
  r.stateBefore = new StaticArray<i32>(r.settings.backendLabel.length);
  r.unknown = new StaticArray<bool>(r.settings.backendLabel.length);
  r.published = new ArrayBuffer(r.settings.probes.length * (PROBE_TARGET_BYTES + 1));
  const hash = hashText(changetype<usize>(r.config), r.config.byteLength);
  r.leaseKey = String.UTF8.encode("haports.lease." + hash);
  r.healthKey = String.UTF8.encode("haports.health." + hash);
  pending = null;
  pendingText = null;
  rootsById.set(root, r);
  current = r;
  tickClockMs = nowMs();
  startSettings(r);
  return true;
}

/** Counts the new configuration, aligns probe state and gauges with the core's health. */
function startSettings(r: Root): void {
  const s = r.settings;
  incrementMetric(r.metrics.configApplied);
  recordMetric(r.metrics.configHash, fnv32(changetype<usize>(r.config), r.config.byteLength));
  resetProbes(r);
  setTickPeriod(TICK_MS); // this root context's tick (the current root's runs the probes)
  log(LOG_INFO, "configuration applied: " + s.backendLabel.length.toString() + " backends, "
    + s.probes.length.toString() + " probe targets, upstream "
    + (s.upstream == UPSTREAM_CLUSTER ? "cluster" : "originalDst") + ", stats " + s.statPrefix + ".*");
}

/** Probe bookkeeping after the core took root r's configuration (its health carries over by probe and address). */
function resetProbes(r: Root): void {
  calls.clear();
  r.leader = false;
  r.healthCas = 0;
  const probes = r.settings.probes;
  for (let i = 0; i < probes.length; i++) unchecked(probes[i]).inflight = false;
  adoptShared(r);
  applyUnknown(r);
  recordHealth(r);
}

/**
 * Targets without a result here (new to this VM, or lost while the core held another
 * configuration) take the prober's record of them, if there is one: a VM that starts,
 * or switches back, knows at once what the others know.
 */
function adoptShared(r: Root): void {
  const key = r.healthKey;
  const status = getSharedData(ptr(key), len(key));
  const n = probeTargetCount();
  const size = n * PROBE_TARGET_BYTES;
  if (status != STATUS_OK || resultSize != size + n) {
    freeResult();
    return;
  }
  const records = probeTargetsPtr();
  const probes = r.settings.probes;
  for (let i = 0; i < probes.length; i++) {
    const t = unchecked(probes[i]);
    const at = <usize>t.index * <usize>PROBE_TARGET_BYTES;
    if (load<u8>(records + at + PT_STATE) != TARGET_UNKNOWN) continue;
    memory.copy(records + at, resultData + at, <usize>PROBE_TARGET_BYTES);
    t.sendFailed = load<u8>(resultData + <usize>(size + t.index)) != 0;
  }
  freeResult();
  syncProbeTargets();
}

function recordHealth(r: Root): void {
  const m = r.metrics;
  for (let b = 0; b < m.backendHealthy.length; b++) recordMetric(m.backendHealthy[b], backendState(b) == BACKEND_DOWN ? 0 : 1);
}

/**
 * filter.initialHealth "down": a backend with a probe target that has no result yet is
 * down (host health), so that after a start or a hot restart no connection reaches a
 * backend before a probe said it is up; noHealthyBackend governs those first moments.
 */
function applyUnknown(r: Root): void {
  const s = r.settings;
  const unknown = r.unknown;
  for (let b = 0; b < unknown.length; b++) unchecked(unknown[b] = false);
  if (s.unknownIsDown) {
    const records = probeTargetsPtr();
    for (let i = 0; i < s.probes.length; i++) {
      const t = unchecked(s.probes[i]);
      if (t.sendFailed || load<u8>(records + <usize>t.index * <usize>PROBE_TARGET_BYTES + PT_STATE) != TARGET_UNKNOWN) continue;
      for (let k = 0; k < t.backends.length; k++) unchecked(unknown[t.backends[k]] = true);
    }
  }
  for (let b = 0; b < unknown.length; b++) setBackendHealth(b, unchecked(unknown[b]) ? 0 : 1);
}

/**
 * The lease of the probing VM (shared data, compare-and-swap): taken when free or
 * expired, renewed every tick by its holder. Two VMs may both hold it for one tick at
 * most (both then probe once); the next renewal leaves one.
 */
function leadership(r: Root, now: f64): void {
  const key = r.leaseKey;
  const status = getSharedData(ptr(key), len(key));
  let heartbeat: f64 = 0;
  if (status == STATUS_OK && resultSize == 8) heartbeat = load<f64>(resultData);
  const cas = sharedCas;
  freeResult();
  const mine = r.leader && status == STATUS_OK && cas == r.leaseCas;
  if (!mine && status == STATUS_OK && now - heartbeat < LEASE_MS) {
    r.leader = false;
    return;
  }
  store<f64>(argBuffer, now);
  if (setSharedData(ptr(key), len(key), argBuffer, 8, status == STATUS_OK ? cas : 0) != STATUS_OK) {
    r.leader = false;
    return;
  }
  getSharedData(ptr(key), len(key));
  freeResult();
  if (!r.leader) log(LOG_INFO, "this VM probes for every worker (" + r.settings.statPrefix + ")");
  r.leader = true;
  r.leaseCas = sharedCas;
}

/** The prober: every probe target's record, for the other VMs. */
function publish(r: Root): void {
  const key = r.healthKey;
  const n = probeTargetCount();
  const out = changetype<usize>(r.published);
  if (r.published.byteLength != n * (PROBE_TARGET_BYTES + 1)) return; // never: the same configuration
  memory.copy(out, probeTargetsPtr(), <usize>(n * PROBE_TARGET_BYTES));
  const probes = r.settings.probes;
  for (let i = 0; i < probes.length; i++) {
    const t = unchecked(probes[i]);
    store<u8>(out + <usize>(n * PROBE_TARGET_BYTES + t.index), t.sendFailed ? 1 : 0);
  }
  setSharedData(ptr(key), len(key), out, r.published.byteLength, 0);
}

/** The others: the prober's records, when they changed; logs the backends that changed. */
function follow(r: Root): void {
  const key = r.healthKey;
  const status = getSharedData(ptr(key), len(key));
  const n = probeTargetCount();
  const size = n * PROBE_TARGET_BYTES;
  if (status != STATUS_OK || sharedCas == r.healthCas || resultSize != size + n) {
    freeResult();
    return;
  }
  r.healthCas = sharedCas;
  const before = r.stateBefore;
  for (let b = 0; b < before.length; b++) unchecked(before[b] = backendState(b));
  memory.copy(probeTargetsPtr(), resultData, <usize>size);
  const probes = r.settings.probes;
  for (let i = 0; i < probes.length; i++) {
    const t = unchecked(probes[i]);
    t.sendFailed = load<u8>(resultData + <usize>(size + t.index)) != 0;
  }
  freeResult();
  syncProbeTargets();
  applyUnknown(r);
  recordHealth(r);
  for (let b = 0; b < before.length; b++) {
    const isDown = backendState(b) == BACKEND_DOWN;
    if (isDown == (unchecked(before[b]) == BACKEND_DOWN)) continue;
    log(isDown ? LOG_WARN : LOG_INFO, "backend " + r.settings.backendLabel[b] + " is " + (isDown ? "down" : "up") + " (as the probing VM found)");
  }
}

/**
 * Gives the core root r's configuration (another root's was current). Flows and the
 * health of probe targets carry over, as in any reconfiguration. False when the core
 * refuses it (it accepted the same text before: never expected).
 */
function switchTo(r: Root): bool {
  const n = r.config.byteLength;
  memory.copy(configBufferPtr(), changetype<usize>(r.config), <usize>n);
  if (coreConfigure(n) != 0) {
    countError(r.metrics, "the core refused the configuration of root context " + r.id.toString() + " it had accepted", LOG_ERROR);
    return false;
  }
  current = r;
  resetProbes(r);
  incrementMetric(r.metrics.configSwitches);
  switchCount++;
  if (logged(switchCount)) {
    log(LOG_INFO, "switched to the configuration of root context " + r.id.toString() + " (" + r.settings.statPrefix
      + ") for its connections (switch " + switchCount.toString() + "; several configurations share this VM: see envoy/README.md)");
  }
  return true;
}

/** proxy_on_delete of root context `root`: its configuration is forgotten (the core keeps
 *  holding it if it is current, until another root's connection or tick needs the core). */
export function rootDeleted(root: u32): void {
  if (!rootsById.has(root)) return;
  flushMetrics(rootsById.get(root).metrics);
  rootsById.delete(root);
}

// ---- Connections -------------------------------------------------------------------------------

/** Reads one endpoint property into `out`; returns the family (0 on failure). */
function readEndpoint(path: ArrayBuffer, out: usize): i32 {
  if (!getProperty(ptr(path), len(path))) return 0;
  const family = parseEndpoint(resultData, resultSize, out);
  freeResult();
  return family;
}

/**
 * Writes a TCP segment with `flags` from the endpoints (srcAddr:sport → dstAddr:dport)
 * at the start of the rx arena and its descriptor; returns its length.
 */
function writeSegment(family: i32, sport: u16, dport: u16, flags: u8): i32 {
  const p = rxArenaPtr();
  let tcp: usize;
  let total: i32;
  if (family == 4) {
    total = 40;
    store<u64>(p, 0); store<u64>(p, 0, 8); store<u32>(p, 0, 16);
    store<u8>(p, 0x45);                       // version 4, IHL 5
    store<u8>(p, 0, 2); store<u8>(p, 40, 3);  // total length
    store<u8>(p, 0x40, 6);                    // DF
    store<u8>(p, 64, 8);                      // TTL
    store<u8>(p, 6, 9);                       // TCP
    store<u32>(p, load<u32>(srcAddr), 12);
    store<u32>(p, load<u32>(dstAddr), 16);
    let sum: u32 = 0;
    for (let i = 0; i < 20; i += 2) sum += (<u32>load<u8>(p + <usize>i) << 8) | load<u8>(p + <usize>i + 1);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    const csum = ~sum & 0xffff;
    store<u8>(p, <u8>(csum >> 8), 10);
    store<u8>(p, <u8>csum, 11);
    tcp = p + 20;
  } else {
    total = 60;
    store<u32>(p, 0x60);                      // version 6 (bytes 60 00 00 00)
    store<u8>(p, 0, 4); store<u8>(p, 20, 5);  // payload length
    store<u8>(p, 6, 6);                       // next header TCP
    store<u8>(p, 64, 7);                      // hop limit
    memory.copy(p + 8, srcAddr, 16);
    memory.copy(p + 24, dstAddr, 16);
    tcp = p + 40;
  }
  store<u64>(tcp, 0); store<u64>(tcp, 0, 8); store<u32>(tcp, 0, 16);
  store<u8>(tcp, <u8>(sport >> 8)); store<u8>(tcp, <u8>sport, 1);
  store<u8>(tcp, <u8>(dport >> 8), 2); store<u8>(tcp, <u8>dport, 3);
  store<u8>(tcp, 1, 7);                      // sequence number 1
  store<u8>(tcp, 0x50, 12);                  // data offset 5
  store<u8>(tcp, flags, 13);
  store<u8>(tcp, 0xff, 14); store<u8>(tcp, 0xff, 15); // window
  const d = descriptorsPtr();
  store<u32>(d, 0);
  store<u32>(d, <u32>total, 4);
  return total;
}

/** The connection's endpoints, read into srcAddr / dstAddr; the family, 0 when unreadable. */
let connSport: u16 = 0;
let connDport: u16 = 0;
function readConnection(): i32 {
  const family = readEndpoint(PATH_SOURCE, srcAddr);
  connSport = endpointPort;
  const dfamily = readEndpoint(PATH_DESTINATION, dstAddr);
  connDport = endpointPort;
  if (family == 0 || dfamily == 0) return 0;
  return family == dfamily ? family : 0; // one socket has one family; never guessed
}

/** Runs one segment of the endpoints in srcAddr / dstAddr through the core. */
function runSegment(s: Settings, family: i32, sport: u16, dport: u16, flags: u8): void {
  writeSegment(family, sport, dport, flags);
  processBatch(1, connectionClock(), s.ingress, LINK_RAW_IP);
}

function setFilterState(arg: usize, argLen: i32): i32 {
  return callForeign(ptr(FN_SET_FILTER_STATE), len(FN_SET_FILTER_STATE), arg, argLen);
}

/** Selects backend `b` of `rule` as the upstream; returns the foreign call's status. */
function selectUpstream(s: Settings, b: i32, rule: i32): i32 {
  const arg = unchecked(s.backendArg[b]);
  if (s.upstream == UPSTREAM_CLUSTER) return setFilterState(ptr(arg), len(arg));
  // originalDst: "address:port", the rule's backend port or the connection's own.
  const bport = unchecked(s.ruleBackendPort[rule]);
  const port = bport != 0 ? <u32>bport : <u32>connDport;
  let q = argBuffer;
  store<u8>(q++, 0x0a);
  store<u8>(q++, <u8>len(KEY_ORIGINAL_DST));
  memory.copy(q, ptr(KEY_ORIGINAL_DST), <usize>len(KEY_ORIGINAL_DST));
  q += <usize>len(KEY_ORIGINAL_DST);
  store<u8>(q++, 0x12);
  const lenAt = q++;
  const v = q;
  memory.copy(q, ptr(arg), <usize>len(arg));
  q += <usize>len(arg);
  store<u8>(q++, 58); // ':'
  let digits = 1;
  for (let x = port; x >= 10; x /= 10) digits++;
  for (let i = digits - 1, x = port; i >= 0; i--, x /= 10) store<u8>(q + <usize>i, <u8>(48 + x % 10));
  q += <usize>digits;
  store<u8>(lenAt, <u8>(q - v)); // at most 47 + 6 bytes: one varint byte
  return setFilterState(argBuffer, <i32>(q - argBuffer));
}

/** Connections that no backend takes: the filter's setting, counted. */
function unrouted(r: Root, how: i32, outcome: ArrayBuffer, rule: i32): i32 {
  const s = r.settings;
  if (how == UNROUTED_DEFAULT) {
    const status = setFilterState(ptr(s.defaultClusterArg), len(s.defaultClusterArg));
    if (status == STATUS_OK) {
      count(r.metrics, SLOT_DEFAULT_CLUSTER);
      if (s.accessLog) accessLog(r, rule, NONE_BACKEND, outcome);
      return ACTION_CONTINUE;
    }
    countError(r.metrics, "set_envoy_filter_state(envoy.tcp_proxy.cluster) for the default cluster failed with status " + status.toString());
  }
  if (s.accessLog) accessLog(r, rule, NONE_BACKEND, outcome);
  count(r.metrics, SLOT_CLOSED);
  closeDownstream();
  return ACTION_PAUSE;
}

const NONE_BACKEND: i32 = -1;
const PROPERTY_HAPORTS = bytes("haports");
const OUTCOME_FORWARDED = bytes("forwarded");
const OUTCOME_NO_MATCH = bytes("no_match");
const OUTCOME_NO_HEALTHY = bytes("no_healthy_backend");
const OUTCOME_DROPPED = bytes("dropped");
const DASH = bytes("-");

function put(at: usize, b: ArrayBuffer): usize {
  memory.copy(at, ptr(b), <usize>len(b));
  return at + <usize>len(b);
}

/**
 * filter.accessLog: the connection's property `haports` = "rule backend outcome" (a "-"
 * for none), which Envoy keeps as filter state `wasm.haports`; an access log prints it
 * with %FILTER_STATE(wasm.haports:PLAIN)%. Written from pre-encoded names: no allocation.
 */
function accessLog(r: Root, rule: i32, backend: i32, outcome: ArrayBuffer): void {
  const s = r.settings;
  let q = argBuffer;
  q = put(q, rule >= 0 && rule < s.ruleName.length ? unchecked(s.ruleName[rule]) : DASH);
  store<u8>(q++, 0x20);
  q = put(q, backend >= 0 && backend < s.backendName.length ? unchecked(s.backendName[backend]) : DASH);
  store<u8>(q++, 0x20);
  q = put(q, outcome);
  const status = setProperty(ptr(PROPERTY_HAPORTS), len(PROPERTY_HAPORTS), argBuffer, <i32>(q - argBuffer));
  if (status != STATUS_OK) countError(r.metrics, "set_property(haports) for the access log failed with status " + status.toString());
}

/**
 * Benchmark only (bench/envoy builds it with `--use HAPORTS_BENCH_FLOOR=1`): every
 * connection goes to the first backend's cluster, without reading the connection or
 * running the core: the cost of Envoy's Wasm filter machinery alone.
 */
const BENCH_FLOOR: bool = isDefined(HAPORTS_BENCH_FLOOR);

/** proxy_on_new_connection: choose the upstream of connection `context` of root context `root`. */
export function newConnection(context: u32, root: u32): i32 {
  // The connection's own root (its listener's configuration), else the current one.
  let r = current;
  if (rootsById.has(root)) r = rootsById.get(root);
  if (r == null) {
    countError(defaultMetrics(), "connection before any configuration was applied: closed");
    closeDownstream();
    return ACTION_PAUSE;
  }
  if (r !== current && !switchTo(r)) {
    count(r.metrics, SLOT_CLOSED);
    closeDownstream();
    return ACTION_PAUSE;
  }
  const s = r.settings;
  const m = r.metrics;
  if (BENCH_FLOOR) {
    setFilterState(ptr(unchecked(s.backendArg[0])), len(unchecked(s.backendArg[0])));
    return ACTION_CONTINUE;
  }
  const family = readConnection();
  if (family == 0) {
    countError(m, "could not read the connection's source.address / destination.address as IP endpoints: closed");
    count(m, SLOT_CLOSED);
    closeDownstream();
    return ACTION_PAUSE;
  }
  runSegment(s, family, connSport, connDport, TCP_SYN);
  const v = verdictsPtr();
  const action = load<u8>(v + V_ACTION);
  const rule = <i32>load<u16>(v + V_RULE);
  if (action == ACTION_FORWARD) {
    const b = <i32>load<u16>(v + V_BACKEND);
    const status = selectUpstream(s, b, rule);
    if (status != STATUS_OK) {
      countError(m, "set_envoy_filter_state failed with status " + status.toString() + " (Envoy >= 1.28 is needed): closed");
      count(m, SLOT_CLOSED);
      closeDownstream();
      return ACTION_PAUSE;
    }
    remember(context, r.id, b, family, connSport, connDport, srcAddr, dstAddr);
    count(m, SLOT_CONNECTIONS);
    count(m, SLOT_BACKEND + b);
    if (s.accessLog) accessLog(r, rule, b, OUTCOME_FORWARDED);
    return ACTION_CONTINUE;
  }
  if (action == ACTION_NOMATCH) {
    count(m, SLOT_NO_MATCH);
    return unrouted(r, s.noMatch, OUTCOME_NO_MATCH, NONE_BACKEND);
  }
  // Drop: every backend of the rule is down (or, never for these segments, a parse error).
  if (load<u8>(v + V_REASON) == REASON_NO_HEALTHY_BACKEND) {
    count(m, SLOT_NO_HEALTHY);
    return unrouted(r, s.noHealthy, OUTCOME_NO_HEALTHY, rule);
  }
  countError(m, "the core dropped the connection's SYN (reason " + load<u8>(v + V_REASON).toString() + ")");
  return unrouted(r, s.noHealthy, OUTCOME_DROPPED, rule);
}

/**
 * proxy_on_downstream_connection_close: a FIN of the 5-tuple ends its flow entry soon,
 * when the core still holds the configuration the connection was routed by (else the
 * entry ends by its idle timeout).
 */
export function connectionClosed(context: u32): void {
  if (!recall(context, srcAddr, dstAddr)) return;
  if (rootsById.has(recalledRoot)) checkUpstream(rootsById.get(recalledRoot), recalledBackend);
  const r = current;
  if (r == null || recalledRoot != r.id) return;
  runSegment(r.settings, recalledFamily, recalledSport, recalledDport, TCP_FIN_ACK);
}

const PATH_UPSTREAM = bytes("upstream\0address");

/**
 * Whether the connection just closed, sent to backend b, ever had an upstream host:
 * tcp_proxy picks one from the cluster the filter named, so none means the cluster
 * does not exist or has no host to give (a backend that refuses the connection still
 * had a host). Such a connection is an error of its backend, counted and logged; the
 * check runs on every close until the backend's cluster has carried one, then on one
 * close in UPSTREAM_RECHECK.
 */
function checkUpstream(r: Root, b: i32): void {
  if (b < 0 || b >= r.untilCheck.length) return;
  const left = unchecked(r.untilCheck[b]);
  if (left > 0) {
    unchecked(r.untilCheck[b] = left - 1);
    return;
  }
  if (getProperty(ptr(PATH_UPSTREAM), len(PATH_UPSTREAM))) {
    freeResult();
    unchecked(r.untilCheck[b] = UPSTREAM_RECHECK);
    return;
  }
  incrementMetric(r.metrics.upstreamErrors);
  incrementMetric(unchecked(r.metrics.backendUpstreamErrors[b]));
  const s = r.settings;
  countError(r.metrics, "a connection sent to backend " + s.backendLabel[b]
    + (s.upstream == UPSTREAM_CLUSTER ? " (cluster \"" + s.backendCluster[b] + "\")" : "")
    + " closed without an upstream host: does the cluster exist and have a host?", LOG_ERROR);
}

/** proxy_on_delete of a stream context. */
export function connectionDeleted(context: u32): void {
  forget(context);
}

// ---- Health probes ------------------------------------------------------------------------------

/**
 * proxy_on_tick of root context `root`: the current root's tick sends the probes that are
 * due (the core's health is the current configuration's); collects garbage now and then.
 * When the current root is gone (its listener drained), the next root to tick takes the core.
 */
export function tick(root: u32): void {
  if (++ticks % COLLECT_EVERY_TICKS == 0) __collect(); // no managed local is live here
  tickClockMs = nowMs();
  if (rootsById.has(root)) flushMetrics(rootsById.get(root).metrics);
  let r = current;
  if (r == null || !rootsById.has(r.id)) {
    if (!rootsById.has(root) || !switchTo(rootsById.get(root))) return;
    r = current;
  }
  if (r == null || r.id != root) return;
  const s = r.settings;
  const now = nowMs();
  const probes = s.probes;
  if (probes.length == 0) return;
  leadership(r, now);
  if (!r.leader) {
    follow(r);
    return;
  }
  let sendFailures = 0; // targets whose probe could, or could no longer, be sent
  for (let i = 0; i < probes.length; i++) {
    const t = unchecked(probes[i]);
    if (t.inflight || now < t.nextDueMs) continue;
    t.nextDueMs = t.nextDueMs == 0 || t.nextDueMs + t.intervalMs <= now ? now + t.intervalMs : t.nextDueMs + t.intervalMs;
    const id = httpCall(ptr(t.cluster), len(t.cluster), ptr(t.headers), len(t.headers), t.timeoutMs);
    if (id < 0) {
      // Not the backend's failure but the configuration's (no such cluster): an error,
      // never a "down" result, which would take every backend out with clean counters;
      // nor does the target hold its backends down as one without a result yet.
      if (!t.sendFailed) {
        t.sendFailed = true;
        sendFailures++;
      }
      incrementMetric(r.metrics.probeErrors);
      countError(r.metrics, "probe " + t.probeName + " of " + t.address + " not sent: http call through cluster \""
        + String.UTF8.decode(t.cluster) + "\" failed with status " + lastStatus.toString()
        + (lastStatus == STATUS_UNIMPLEMENTED ? " (this host makes no HTTP calls)" : " (is the probe cluster defined?)")
        + "; the backend's health stays as it is", LOG_ERROR);
      continue;
    }
    if (t.sendFailed) {
      t.sendFailed = false;
      sendFailures++;
    }
    t.inflight = true;
    calls.set(<u32>id, i);
  }
  if (sendFailures > 0) {
    applyUnknown(r);
    recordHealth(r);
    publish(r);
  }
}

/**
 * proxy_on_http_call_response. HTTP and HTTPS probes pass on a 2xx status. TCP probes
 * pass when the backend accepted the connection: anything but no response at all or
 * Envoy's own 503 for a failed connect ("… reset reason: remote connection failure",
 * "… connection timeout"); a backend that accepts and does not speak HTTP gets a 502
 * (protocol error) or, silent, a 504 at the timeout — both pass.
 */
export function httpCallResponse(id: u32, headers: i32, bodySize: i32): void {
  if (!calls.has(id)) return;
  const i = calls.get(id);
  calls.delete(id);
  const r = current;
  if (r == null || i >= r.settings.probes.length) return;
  const t = r.settings.probes[i];
  t.inflight = false;
  let ok = false;
  if (headers > 0 && getHeader(MAP_HTTP_CALL_RESPONSE_HEADERS, ptr(KEY_STATUS), len(KEY_STATUS))) {
    let status = 0;
    for (let k = 0; k < resultSize; k++) status = status * 10 + (<i32>load<u8>(resultData + <usize>k) - 48);
    freeResult();
    if (t.protocol == PROBE_TCP) ok = status != 503 || !connectFailed(bodySize);
    else ok = status >= 200 && status < 300;
  }
  probeResult(r, t, ok);
}

/** Whether Envoy's local reply body (of a TCP probe) says the connect itself failed. */
function connectFailed(bodySize: i32): bool {
  if (bodySize <= 0 || !getBuffer(BUFFER_HTTP_CALL_RESPONSE_BODY, min(bodySize, 512))) return true;
  const failed = contains(resultData, resultSize, CONNECTION_FAILURE) || contains(resultData, resultSize, CONNECTION_TIMEOUT);
  freeResult();
  return failed;
}

const CONNECTION_FAILURE = bytes("connection failure");
const CONNECTION_TIMEOUT = bytes("connection timeout");

function contains(p: usize, n: i32, what: ArrayBuffer): bool {
  const m = len(what);
  for (let i = 0; i + m <= n; i++) {
    if (memory.compare(p + <usize>i, ptr(what), <usize>m) == 0) return true;
  }
  return false;
}

const TRANSITION_NAMES = ["none", "up", "down", "initially up", "initially down", "held"];

/**
 * Hands one result to the core, which applies the health policy and the backends'
 * health; logs the target's transition and each backend whose state changed.
 */
function probeResult(r: Root, t: ProbeTarget, ok: bool): void {
  const s = r.settings;
  const metrics = r.metrics;
  if (!ok) incrementMetric(metrics.probeFailures);
  const backends = t.backends;
  const wasDown = new StaticArray<bool>(backends.length);
  for (let i = 0; i < backends.length; i++) wasDown[i] = backendState(backends[i]) == BACKEND_DOWN;
  const now = nowMs();
  const transition = coreProbeResult(t.index, ok ? 1 : 0, now);
  if (r.leader) publish(r);
  if (transition == TRANSITION_NONE || transition < 0) return;
  applyUnknown(r);
  const down = transition == TRANSITION_DOWN || transition == TRANSITION_INITIALLY_DOWN || transition == TRANSITION_HELD;
  let what = "probe " + t.probeName + " of " + t.address + ": " + TRANSITION_NAMES[transition];
  if (transition == TRANSITION_HELD) {
    what += " down by flap damping for " + (<i64>Math.ceil(probeHoldSeconds(t.index, now))).toString() + " s more";
  }
  log(down ? LOG_WARN : LOG_INFO, what);
  for (let i = 0; i < backends.length; i++) {
    const b = backends[i];
    const isDown = backendState(b) == BACKEND_DOWN;
    recordMetric(metrics.backendHealthy[b], isDown ? 0 : 1);
    if (isDown == wasDown[i]) continue;
    log(isDown ? LOG_WARN : LOG_INFO, "backend " + s.backendLabel[b] + " is " + (isDown ? "down" : "up")
      + " (probe " + t.probeName + ": " + TRANSITION_NAMES[transition] + ")");
  }
}
