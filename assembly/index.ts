// The host ABI: scalars and shared buffers only (abi/haports.abi.json describes the
// exports and records; docs/abi.md draws them).
//
// A host:
//   1. writes the configuration JSON (UTF-8) at configBufferPtr() and calls
//      configure(length) → 0, or the number of errors, whose `path: reason` lines are at
//      errorBufferPtr() (errorLength() bytes, UTF-8, one per line);
//   2. writes packets anywhere in the rx arena (rxArenaPtr(), rxArenaSize() bytes) and a
//      descriptor (offset, length) per packet at descriptorsPtr();
//   3. calls processBatch(count, nowMs, ingressFrontend, linkType) and reads a verdict
//      record (and a tuple record) per packet at verdictsPtr() / tuplesPtr().
// Health and admin changes, counters and the Maglev tables are reached by index.

import {
  BACKEND_DOWN, BACKEND_DRAINING, BACKEND_UP, CONFIG_BUFFER_BYTES, LINK_ETHERNET, LINK_RAW_IP,
  MAX_BATCH, NONE, RX_ARENA_BYTES, ERROR_BUFFER_BYTES, TRANSITION_HELD, TRANSITION_NONE, CHECKSUM_COUNT,
  CHECKSUM_COMPLETE_PARTIAL, CHECKSUM_OFF,
} from "./consts";
import {
  C_CONFIG_APPLIED, C_CONFIG_REJECTED, C_FLOWS_DROPPED_BY_CONFIG, configBuffer, count, counters,
  COUNTER_SLOTS, descriptors, errorBuffer, infoBuffer, FLOW_DUMP_RECORDS, flowDump, resets, rxArena, tuples, verdicts, warningBuffer,
} from "./layout";
import { backendKey, compile, ConfigModel, Errors, parseConfig, releasePlan, updateStates } from "./config";
import { describe } from "./describe";
import { holdSeconds, observe, penaltyAt, probeHealthOf } from "./health";
import { Plan } from "./rules";
import { rebuildPool } from "./maglev";
import { processBatch as runBatch, setChecksumPolicy as setPolicy } from "./datapath";
import {
  FLOW_BYTES, flowCapacity as capacity, flowsAllocate, flowsDumpTo, flowsRehash, flowsRemap, flowTableBytes, flowUsed,
  setRuleIdleMinutes,
} from "./flows";

export {
  ACTION_FORWARD, ACTION_DROP, ACTION_NOMATCH, LINK_RAW_IP, LINK_ETHERNET, NONE,
} from "./consts";

memory.fill(counters, 0, <usize>(COUNTER_SLOTS * 8));

let current: Plan = new Plan();
let configured = false;
/** describe() of the running configuration, as UTF-8 JSON. */
let described: ArrayBuffer = String.UTF8.encode(describe(new ConfigModel(), current));
let errorLen = 0;
let warningLen = 0;
let infoLen = 0;

// ---- Buffers ------------------------------------------------------------------------

export function rxArenaPtr(): usize { return rxArena; }
export function rxArenaSize(): i32 { return RX_ARENA_BYTES; }
export function descriptorsPtr(): usize { return descriptors; }
export function verdictsPtr(): usize { return verdicts; }
export function tuplesPtr(): usize { return tuples; }
export function maxBatch(): i32 { return MAX_BATCH; }
export function configBufferPtr(): usize { return configBuffer; }
export function configBufferSize(): i32 { return CONFIG_BUFFER_BYTES; }
export function errorBufferPtr(): usize { return errorBuffer; }
export function errorLength(): i32 { return errorLen; }
/** Warnings of the last configure() call (applied or not), `path: reason` lines. */
export function warningBufferPtr(): usize { return warningBuffer; }
export function warningLength(): i32 { return warningLen; }
/** Info of the last configure() call: notes (Azure history) that call for no change, same form. */
export function infoBufferPtr(): usize { return infoBuffer; }
export function infoLength(): i32 { return infoLen; }
export function countersPtr(): usize { return counters; }
/** Reset records (layout.ts): RSTs for verdicts with action ACTION_RESET. */
export function resetsPtr(): usize { return resets; }
export function counterSlots(): i32 { return COUNTER_SLOTS; }

/** Writes `text` as UTF-8 into a buffer of ERROR_BUFFER_BYTES; returns the length written. */
function writeText(buffer: usize, text: string): i32 {
  const bytes = String.UTF8.encode(text);
  let n = bytes.byteLength;
  if (n > ERROR_BUFFER_BYTES) n = ERROR_BUFFER_BYTES;
  memory.copy(buffer, changetype<usize>(bytes), <usize>n);
  return n;
}

// ---- Configuration ----------------------------------------------------------------------

/**
 * Applies the configuration text at configBufferPtr() (`len` bytes). Returns 0 when
 * applied, else the number of errors; the running configuration and tracked flows stay.
 * Tracked flows whose rule (by name) and backend (by pool and name) still exist keep
 * their backend.
 */
export function configure(len: i32): i32 {
  const errors = new Errors();
  if (len < 0 || len > CONFIG_BUFFER_BYTES) {
    errors.add("$", "configuration larger than " + CONFIG_BUFFER_BYTES.toString() + " bytes");
  }
  const model = errors.count == 0 ? parseConfig(configBuffer, len, errors) : null;
  warningLen = writeText(warningBuffer, errors.warnings.join("\n"));
  infoLen = writeText(infoBuffer, errors.infos.join("\n"));
  if (model == null) {
    errorLen = writeText(errorBuffer, errors.text());
    count(C_CONFIG_REJECTED);
    __collect();
    return errors.count;
  }

  const old = current;
  const plan = compile(model, configured ? old : null);
  // The flow table first: it is the one part that may not fit, and nothing has changed yet.
  let lost = 0;
  const rehash = configured && (plan.flowCapacity != old.flowCapacity || plan.hashK0 != old.hashK0 || plan.hashK1 != old.hashK1);
  if (!configured && !flowsAllocate(plan.flowCapacity) || rehash && (lost = flowsRehash(plan.flowCapacity, plan.hashK0, plan.hashK1)) < 0) {
    const mib = (flowTableBytes(plan.flowCapacity) + 1048575) >> 20;
    errors.add("flowTable.capacity", plan.flowCapacity.toString() + " flows need " + mib.toString() + " MiB ("
      + FLOW_BYTES.toString() + " B per flow), which the engine could not add to the "
      + ((memory.size() + 15) >> 4).toString() + " MiB of memory in use (a wasm32 memory holds at most 4096 MiB,"
      + " and an engine may allow less; while the capacity changes, the old table is held too)");
    releasePlan(plan);
    errorLen = writeText(errorBuffer, errors.text());
    count(C_CONFIG_REJECTED);
    __collect();
    return errors.count;
  }
  setRuleIdleMinutes(plan.ruleIdleMinutes);
  if (configured) {
    const ruleIndex = new Map<string, i32>();
    for (let i = 0; i < plan.ruleNames.length; i++) ruleIndex.set(plan.ruleNames[i], i);
    const ruleMap = new StaticArray<i32>(old.ruleNames.length);
    for (let i = 0; i < old.ruleNames.length; i++) {
      ruleMap[i] = ruleIndex.has(old.ruleNames[i]) ? ruleIndex.get(old.ruleNames[i]) : -1;
    }
    const backendIndex = new Map<string, i32>();
    for (let b = 0; b < plan.backendNames.length; b++) {
      backendIndex.set(backendKey(plan.pools[plan.backendPool[b]].name, plan.backendNames[b]), b);
    }
    const backendMap = new StaticArray<i32>(old.backendNames.length);
    for (let b = 0; b < old.backendNames.length; b++) {
      const key = backendKey(old.pools[old.backendPool[b]].name, old.backendNames[b]);
      backendMap[b] = backendIndex.has(key) ? backendIndex.get(key) : -1;
    }
    lost += flowsRemap(ruleMap, backendMap, plan.rulePool, plan.backendPool);
    count(C_FLOWS_DROPPED_BY_CONFIG, <u64>lost);
  }
  current = plan;
  configured = true;
  described = String.UTF8.encode(describe(model, plan));
  if (old.pools.length > 0) releasePlan(old);
  errorLen = 0;
  count(C_CONFIG_APPLIED);
  __collect();
  return 0;
}

export function isConfigured(): bool { return configured; }

/**
 * The running configuration as the core read it (describe.ts): JSON, UTF-8, with every
 * default applied, indices, canonical addresses, the probe targets and the host
 * sections. Valid until the next configure().
 */
export function describePtr(): usize { return changetype<usize>(described); }
export function describeLength(): i32 { return described.byteLength; }

// ---- Packets ---------------------------------------------------------------------------------

/**
 * Processes descriptors [0, count) at time `nowMs` (milliseconds, any epoch, never
 * decreasing). `ingressFrontend` is the index of the frontend the batch arrived on (the
 * next-hop use), or NONE (0xFFFF) to match by destination address. `linkType` is
 * LINK_RAW_IP (0) or LINK_ETHERNET (1). Returns the number of forward verdicts, or -1
 * when the arguments are invalid (nothing processed).
 */
export function processBatch(count: i32, nowMs: f64, ingressFrontend: i32, linkType: i32): i32 {
  if (count < 0 || count > MAX_BATCH) return -1;
  if (linkType != LINK_RAW_IP && linkType != LINK_ETHERNET) return -1;
  if (ingressFrontend != NONE && (ingressFrontend < 0 || ingressFrontend >= current.frontendNames.length)) return -1;
  return runBatch(current, count, nowMs, ingressFrontend, linkType);
}

/**
 * How processBatch treats the TCP/UDP checksums of the packets it parses: CHECKSUM_OFF
 * (the default), CHECKSUM_COUNT (flag and count partial and wrong ones) or
 * CHECKSUM_COMPLETE_PARTIAL (also complete partial ones; checksum.ts says why). Returns
 * 0, or -1 for an unknown policy (the policy in force stays).
 */
export function setChecksumPolicy(policy: i32): i32 {
  if (policy != CHECKSUM_OFF && policy != CHECKSUM_COUNT && policy != CHECKSUM_COMPLETE_PARTIAL) return -1;
  setPolicy(policy);
  return 0;
}

// ---- Health and admin state ----------------------------------------------------------------

function applyState(b: i32): void {
  const plan = current;
  const before = plan.backendState[b];
  updateStates(plan);
  if (plan.backendState[b] != before) {
    const pool = plan.pools[plan.backendPool[b]];
    rebuildPool(pool, plan.backendWeight, plan.backendState, false);
    pool.changePending = true;
    plan.handoverPending = true;
  }
}

/**
 * Sets backend `b`'s health as its host sees it: 1 up, 0 down (for hosts that judge
 * health themselves; probe results go to probeResult). The backend is down while this
 * or a probe target of it says down. Returns 0, or -1 for a bad index.
 */
export function setBackendHealth(b: i32, up: i32): i32 {
  if (b < 0 || b >= current.backendNames.length) return -1;
  current.backendHealth[b] = up != 0 ? BACKEND_UP : BACKEND_DOWN;
  applyState(b);
  return 0;
}

/** Sets backend `b`'s admin state: 0 up, 2 draining. Returns 0, or -1 when invalid. */
export function setBackendAdmin(b: i32, state: i32): i32 {
  if (b < 0 || b >= current.backendNames.length) return -1;
  if (state != BACKEND_UP && state != BACKEND_DRAINING) return -1;
  if (state == BACKEND_DRAINING && current.backendAdmin[b] != BACKEND_DRAINING) {
    // The drain period runs from the next batch's time (the core has no clock of its own).
    current.backendDrainSince[b] = -1;
    current.drainPending = true;
  }
  current.backendAdmin[b] = <u8>state;
  applyState(b);
  return 0;
}

// ---- Health probes (health.ts: the policy; hosts run the probes) ---------------------------

export function probeTargetCount(): i32 { return current.targetProbe.length; }
/** PROBE_TARGET_BYTES per target. Valid until the next configure(). */
export function probeTargetsPtr(): usize { return changetype<usize>(current.targetRecords); }

/**
 * One probe result of target `t` (`ok` 1 passed, 0 failed) at `nowMs` (milliseconds on a
 * clock that never goes back). Applies the health policy and the health of the target's
 * backends (rebuilding their pools' Maglev tables when a state changes). Returns the
 * transition (TRANSITION_*), or -1 for a bad index.
 */
export function probeResult(t: i32, ok: i32, nowMs: f64): i32 {
  const plan = current;
  if (t < 0 || t >= plan.targetProbe.length) return -1;
  const transition = observe(plan, t, ok != 0, nowMs);
  if (transition != TRANSITION_NONE && transition != TRANSITION_HELD) {
    const backends = plan.targetBackends[t];
    for (let i = 0; i < backends.length; i++) {
      const b = backends[i];
      plan.backendProbeHealth[b] = probeHealthOf(plan, b);
      applyState(b);
    }
  }
  return transition;
}

/**
 * The host wrote the probe target records (probeTargetsPtr) from another instance of the
 * same configuration, which runs the probes and decides (Envoy: one VM probes for all
 * workers): every backend's probe health follows the records. Returns how many backends
 * changed state.
 */
export function syncProbeTargets(): i32 {
  const plan = current;
  let changed = 0;
  for (let b = 0; b < plan.backendNames.length; b++) {
    const health = probeHealthOf(plan, b);
    if (health == plan.backendProbeHealth[b]) continue;
    const before = plan.backendState[b];
    plan.backendProbeHealth[b] = health;
    applyState(b);
    if (plan.backendState[b] != before) changed++;
  }
  return changed;
}

/** Target `t`'s flap-damping penalty at `nowMs` (0 without damping; -1 for a bad index). */
export function probePenalty(t: i32, nowMs: f64): f64 {
  return t >= 0 && t < current.targetProbe.length ? penaltyAt(current, t, nowMs) : -1;
}

/** Seconds until target `t`'s penalty decays below reusePenalty (0 when it has; -1: bad index). */
export function probeHoldSeconds(t: i32, nowMs: f64): f64 {
  return t >= 0 && t < current.targetProbe.length ? holdSeconds(current, t, nowMs) : -1;
}

/** Effective state of backend `b`: 0 up, 1 down, 2 draining; -1 for a bad index. */
export function backendState(b: i32): i32 {
  if (b < 0 || b >= current.backendNames.length) return -1;
  return current.backendState[b];
}

// ---- Introspection -----------------------------------------------------------------------------

export function frontendCount(): i32 { return current.frontendNames.length; }
export function ruleCount(): i32 { return current.ruleNames.length; }
export function backendCount(): i32 { return current.backendNames.length; }
export function poolCount(): i32 { return current.pools.length; }
/** u64 × 3 per backend / rule: packets, bytes, new flows. Valid until the next configure(). */
export function backendCountersPtr(): usize { return changetype<usize>(current.backendCounters); }
export function ruleCountersPtr(): usize { return changetype<usize>(current.ruleCounters); }
export function flowTableCapacity(): i32 { return capacity; }
export function flowTableUsed(): i32 { return flowUsed; }
const dumped = new StaticArray<i32>(1);
/** Flow records of the entries in use from position `cursor` on (abi: flowsDump). */
export function flowsDump(cursor: i32, max: i32): i32 {
  const n = max < 0 ? 0 : max > FLOW_DUMP_RECORDS ? FLOW_DUMP_RECORDS : max;
  return flowsDumpTo(cursor, n, flowDump, dumped);
}
export function flowsDumped(): i32 { return unchecked(dumped[0]); }
export function flowDumpPtr(): usize { return flowDump; }
export function flowDumpCapacity(): i32 { return FLOW_DUMP_RECORDS; }
/** Pool `p`'s Maglev table for new flows: M u16 backend indices (0xFFFF = none). */
export function maglevTablePtr(p: i32): usize {
  return p >= 0 && p < current.pools.length ? current.pools[p].table : 0;
}
export function maglevTableSize(p: i32): i32 {
  return p >= 0 && p < current.pools.length ? current.pools[p].m : 0;
}

/**
 * Allocates and frees a small block and returns its address: the allocator hands out
 * the same block again unless something else was allocated meanwhile. Tests call it
 * before and after millions of packets to show the packet path allocates nothing.
 */
export function heapProbe(): usize {
  const p = heap.alloc(64);
  heap.free(p);
  return p;
}
