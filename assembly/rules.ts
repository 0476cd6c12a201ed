// The compiled configuration (a Plan) and rule lookup.
//
// config.ts builds a Plan outside the packet path; index.ts swaps it in between
// batches. The packet path only indexes arrays: frontend by destination address
// (open-addressed hash), then the exact rule on (frontend, protocol, port), then the
// frontend's HA-ports rule.

import { NONE } from "./consts";
import { fmix64 } from "./hash";
import { Pool } from "./maglev";

export class Plan {
  /** The SipHash key (hash.ts) of flow keys and backend selection. */
  hashK0: u64 = 0;
  hashK1: u64 = 0;
  flowCapacity: i32 = 0;

  // Frontends, by index (configuration order).
  frontendNames: StaticArray<string> = new StaticArray<string>(0);
  frontendFamily: StaticArray<u8> = new StaticArray<u8>(0);
  /** Address as key words (hash.ts): IPv4 in lo (little-endian u32 of the 4 bytes), hi = 0. */
  frontendLo: StaticArray<u64> = new StaticArray<u64>(0);
  frontendHi: StaticArray<u64> = new StaticArray<u64>(0);
  /** The frontend's HA-ports rule, or NONE. */
  frontendHaRule: StaticArray<i32> = new StaticArray<i32>(0);
  /** Open-addressed index: frontend index or -1; size a power of two ≥ 2 × frontends. */
  frontendSlots: StaticArray<i32> = new StaticArray<i32>(0);

  // Exact rules: open-addressed (frontend, protocol, port) → rule index.
  exactKeys: StaticArray<u64> = new StaticArray<u64>(0); // 0 = empty
  exactRules: StaticArray<i32> = new StaticArray<i32>(0);
  /** Any exact rule at all (else the probe is skipped: HA-ports-only plans are common). */
  hasExact: bool = false;

  // Rules, by index (configuration order).
  ruleNames: StaticArray<string> = new StaticArray<string>(0);
  ruleFrontend: StaticArray<i32> = new StaticArray<i32>(0);
  rulePool: StaticArray<i32> = new StaticArray<i32>(0);
  ruleProto: StaticArray<u8> = new StaticArray<u8>(0);        // RULE_PROTO_ALL, 6, 17
  ruleFrontendPort: StaticArray<u16> = new StaticArray<u16>(0);
  ruleBackendPort: StaticArray<u16> = new StaticArray<u16>(0);
  ruleFloating: StaticArray<bool> = new StaticArray<bool>(0);
  ruleDistribution: StaticArray<u8> = new StaticArray<u8>(0); // DIST_*
  ruleSymmetric: StaticArray<bool> = new StaticArray<bool>(0);
  ruleIdleMinutes: StaticArray<u8> = new StaticArray<u8>(0);
  ruleTcpReset: StaticArray<bool> = new StaticArray<bool>(0);
  rulePersist: StaticArray<u8> = new StaticArray<u8>(0);      // PERSIST_*
  ruleNoHealthy: StaticArray<u8> = new StaticArray<u8>(0);    // NO_HEALTHY_*

  // Pools and backends. Backend indices are global: pools in order, backends in order.
  pools: StaticArray<Pool> = new StaticArray<Pool>(0);
  backendNames: StaticArray<string> = new StaticArray<string>(0);
  backendPool: StaticArray<i32> = new StaticArray<i32>(0);
  backendFamily: StaticArray<u8> = new StaticArray<u8>(0);
  backendLo: StaticArray<u64> = new StaticArray<u64>(0);
  backendHi: StaticArray<u64> = new StaticArray<u64>(0);
  backendWeight: StaticArray<i32> = new StaticArray<i32>(0);
  /** Admin state from the configuration: BACKEND_UP or BACKEND_DRAINING. */
  backendAdmin: StaticArray<u8> = new StaticArray<u8>(0);
  /** Probe state set by hosts: BACKEND_UP or BACKEND_DOWN. */
  backendHealth: StaticArray<u8> = new StaticArray<u8>(0);
  /** Effective state used for new flows: UP only when admin and health are both up. */
  backendState: StaticArray<u8> = new StaticArray<u8>(0);

  /** Backends of pools behind non-floating rules, by address (their replies are translated). */
  natBackendSlots: StaticArray<i32> = new StaticArray<i32>(0);
  /** When each backend started draining (host milliseconds), for its pool's drain period;
   *  -1 until the first batch after the drain began stamps it with that batch's time. */
  backendDrainSince: StaticArray<f64> = new StaticArray<f64>(0);
  /** Some backendDrainSince is waiting for its stamp. */
  drainPending: bool = false;
  /** A pool's backend set changed since the last batch: its handover window starts at the next batch (datapath.ts). */
  handoverPending: bool = false;

  /** Counters, PER_OBJECT_COUNTERS (packets, bytes, new flows) per backend and per rule. */
  backendCounters: StaticArray<u64> = new StaticArray<u64>(0);
  ruleCounters: StaticArray<u64> = new StaticArray<u64>(0);

  // Health (health.ts). Probes by index (configuration order); a target is one
  // (probe, backend address) of the rules that name a probe, in the order first met.
  probeNames: StaticArray<string> = new StaticArray<string>(0);
  probeThreshold: StaticArray<i32> = new StaticArray<i32>(0);
  targetProbe: StaticArray<i32> = new StaticArray<i32>(0);
  /** The target's address in canonical form (formatAddress). */
  targetAddress: StaticArray<string> = new StaticArray<string>(0);
  targetFamily: StaticArray<u8> = new StaticArray<u8>(0);
  /** The backends each target speaks for, and the targets of each backend. */
  targetBackends: StaticArray<StaticArray<i32>> = new StaticArray<StaticArray<i32>>(0);
  backendTargets: StaticArray<StaticArray<i32>> = new StaticArray<StaticArray<i32>>(0);
  /** PROBE_TARGET_BYTES per target: the state machine's state, read by hosts. */
  targetRecords: StaticArray<u8> = new StaticArray<u8>(0);
  /** Per backend: a target of it is down (BACKEND_DOWN) or none is (BACKEND_UP). */
  backendProbeHealth: StaticArray<u8> = new StaticArray<u8>(0);
  dampingEnabled: bool = true;
  halfLifeMs: f64 = 60000;
  suppressPenalty: f64 = 2;
  reusePenalty: f64 = 1;
  /** reusePenalty × 2^(maxHoldSeconds / halfLifeSeconds): no hold outlasts maxHoldSeconds. */
  penaltyCap: f64 = 32;
}

@inline function addressSlot(family: u8, lo: u64, hi: u64, mask: i32): i32 {
  return <i32>(fmix64(lo ^ (hi * 0x9e3779b97f4a7c15) ^ (<u64>family << 56)) & <u64>mask);
}

/**
 * Adds `index` to an open-addressed address index `slots` (a power of two, at least
 * twice the entries, -1 = empty) over the address arrays (configuration time).
 */
export function indexAddress(
  slots: StaticArray<i32>, family: StaticArray<u8>, lo: StaticArray<u64>, hi: StaticArray<u64>, index: i32,
): void {
  const mask = slots.length - 1;
  let s = addressSlot(family[index], lo[index], hi[index], mask);
  while (slots[s] >= 0) s = (s + 1) & mask;
  slots[s] = index;
}

/** The index whose address is the `fam` address at `p` in an address index, or NONE. */
export function findAddress(
  slots: StaticArray<i32>, family: StaticArray<u8>, lo: StaticArray<u64>, hi: StaticArray<u64>,
  fam: u8, p: usize,
): i32 {
  let a: u64, b: u64;
  if (fam == 4) {
    a = <u64>load<u32>(p);
    b = 0;
  } else {
    a = load<u64>(p);
    b = load<u64>(p, 8);
  }
  const mask = slots.length - 1;
  if (mask < 0) return NONE;
  // The slots outnumber the entries, so an empty slot ends the probe.
  let s = addressSlot(fam, a, b, mask);
  let i = unchecked(slots[s]);
  while (i >= 0) {
    if (unchecked(lo[i]) == a && unchecked(hi[i]) == b && unchecked(family[i]) == fam) return i;
    s = (s + 1) & mask;
    i = unchecked(slots[s]);
  }
  return NONE;
}

/** Frontend whose address is the `family` address at `p`, or NONE. */
@inline export function findFrontend(plan: Plan, family: u8, p: usize): i32 {
  return findAddress(plan.frontendSlots, plan.frontendFamily, plan.frontendLo, plan.frontendHi, family, p);
}

/** Whether the `family` address at `p` is frontend `f`'s. */
@inline export function isFrontendAddress(plan: Plan, f: i32, family: u8, p: usize): bool {
  if (unchecked(plan.frontendFamily[f]) != family) return false;
  if (family == 4) return <u64>load<u32>(p) == unchecked(plan.frontendLo[f]);
  return load<u64>(p) == unchecked(plan.frontendLo[f]) && load<u64>(p, 8) == unchecked(plan.frontendHi[f]);
}

/** A backend of a non-floating rule whose address is the `family` address at `p`, or NONE. */
@inline export function findNatBackend(plan: Plan, family: u8, p: usize): i32 {
  return findAddress(plan.natBackendSlots, plan.backendFamily, plan.backendLo, plan.backendHi, family, p);
}

@inline export function exactKey(frontend: i32, proto: u8, port: u16): u64 {
  // +1 so that no key is 0 (the empty marker).
  return <u64>(frontend + 1) | (<u64>proto << 32) | (<u64>port << 40);
}

/** Adds exact rule `rule` (configuration time); returns false when the key is taken. */
export function indexExactRule(plan: Plan, rule: i32): bool {
  const key = exactKey(plan.ruleFrontend[rule], plan.ruleProto[rule], plan.ruleFrontendPort[rule]);
  const keys = plan.exactKeys;
  const mask = keys.length - 1;
  let s = <i32>(fmix64(key) & <u64>mask);
  while (keys[s] != 0) {
    if (keys[s] == key) return false;
    s = (s + 1) & mask;
  }
  keys[s] = key;
  plan.exactRules[s] = rule;
  return true;
}

/** Set in matchRule's result when the rule is an exact (protocol, port) rule. */
export const MATCH_EXACT: i32 = 1 << 16;

/**
 * The rule for a flow of `proto` to `port` on `frontend`: the exact rule on
 * (frontend, protocol, port) first, then the frontend's HA-ports rule; NONE if neither.
 * An exact rule comes back with MATCH_EXACT set.
 */
export function matchRule(plan: Plan, frontend: i32, proto: u8, port: u16, hasPort: bool): i32 {
  const keys = plan.exactKeys;
  if (hasPort && plan.hasExact) {
    const key = exactKey(frontend, proto, port);
    const mask = keys.length - 1;
    let s = <i32>(fmix64(key) & <u64>mask);
    for (;;) {
      const k = unchecked(keys[s]);
      if (k == 0) break;
      if (k == key) return unchecked(plan.exactRules[s]) | MATCH_EXACT;
      s = (s + 1) & mask;
    }
  }
  return unchecked(plan.frontendHaRule[frontend]);
}
