// Health policy: what probe results mean for a backend. Hosts only run the probes (TCP
// connect, HTTP GET, through Envoy's probe cluster, …) and report each result with
// probeResult(target, ok, nowMs); this file decides, so every host behaves the same.
// docs/health.md is the reference; the rules, after Azure Load Balancer's health-probe
// overview and BGP route-flap damping (RFC 2439):
//
//   - A target is one (probe, backend address) of the rules that name a probe: an
//     address in several pools is probed once per probe; a backend whose pools' rules
//     name several probes has several targets, and is down while any of them is down.
//   - The first result decides the initial state (no threshold to wait for). Before it,
//     the target is "unknown" and counts as up.
//   - `threshold` consecutive failures mark an up target down; `threshold` consecutive
//     successes mark a down target up; one result of the other kind resets the run.
//   - Damping, applied only to the way back up: every fall (up → down, or a failure of a
//     target damping holds down although it passed) adds 1 to the target's penalty,
//     which halves every halfLifeSeconds and is capped at reusePenalty ×
//     2^(maxHoldSeconds / halfLifeSeconds). A fall that brings it to suppressPenalty
//     suppresses the target: once it has passed `threshold` probes it stays down
//     ("held") until the penalty has decayed below reusePenalty, then goes up at its next
//     success. A single failure and recovery is never held.
//
// State lives in PROBE_TARGET_BYTES records (abi/haports.abi.json "probeTarget") that
// hosts read for their metrics, and carries over a reconfiguration by (probe name,
// address). The clock is the host's, in milliseconds, never going back.

import {
  BACKEND_DOWN, BACKEND_UP, PROBE_TARGET_BYTES, PT_CHECKS_FAILURE, PT_CHECKS_SUCCESS, PT_FAILURE_RUN, PT_HELD,
  PT_HELD_SINCE, PT_PENALTY, PT_PENALTY_AT, PT_PROBE, PT_STATE, PT_SUCCESS_RUN, PT_SUPPRESSED, PT_TRANSITIONS_DOWN,
  PT_TRANSITIONS_UP, TARGET_DOWN, TARGET_UNKNOWN, TARGET_UP, TRANSITION_DOWN, TRANSITION_HELD,
  TRANSITION_INITIALLY_DOWN, TRANSITION_INITIALLY_UP, TRANSITION_NONE, TRANSITION_UP,
} from "./abi";
import { Plan } from "./rules";

@inline function record(plan: Plan, t: i32): usize {
  return changetype<usize>(plan.targetRecords) + <usize>t * <usize>PROBE_TARGET_BYTES;
}

/** A fresh record: unknown, not held, no penalty. */
export function initRecord(plan: Plan, t: i32, probe: i32): void {
  const r = record(plan, t);
  memory.fill(r, 0, <usize>PROBE_TARGET_BYTES);
  store<u8>(r + PT_STATE, TARGET_UNKNOWN);
  store<u16>(r + PT_PROBE, <u16>probe);
  store<f64>(r + PT_HELD_SINCE, -1);
}

/** Copies target `from` of `previous` into target `t` of `plan` (a reconfiguration). */
export function carryRecord(previous: Plan, from: i32, plan: Plan, t: i32, probe: i32): void {
  memory.copy(record(plan, t), record(previous, from), <usize>PROBE_TARGET_BYTES);
  store<u16>(record(plan, t) + PT_PROBE, <u16>probe);
}

/** The penalty of target `t` decayed to `nowMs` (0 without damping). */
export function penaltyAt(plan: Plan, t: i32, nowMs: f64): f64 {
  const r = record(plan, t);
  const p = load<f64>(r + PT_PENALTY);
  if (!plan.dampingEnabled || p == 0) return 0;
  const elapsed = max(0, nowMs - load<f64>(r + PT_PENALTY_AT));
  return p * Math.pow(0.5, elapsed / plan.halfLifeMs);
}

/** Seconds until target `t`'s penalty decays below reusePenalty (0 when it has). */
export function holdSeconds(plan: Plan, t: i32, nowMs: f64): f64 {
  if (!plan.dampingEnabled) return 0;
  const p = penaltyAt(plan, t, nowMs);
  if (p < plan.reusePenalty) return 0;
  return plan.halfLifeMs / 1000 * Math.log2(p / plan.reusePenalty);
}

/** A fall: +1 penalty (decayed to now, capped); suppressed from suppressPenalty on. */
function fall(plan: Plan, t: i32, nowMs: f64): void {
  const r = record(plan, t);
  store<u8>(r + PT_HELD, 0);
  store<f64>(r + PT_HELD_SINCE, -1);
  if (!plan.dampingEnabled) return;
  const p = min(penaltyAt(plan, t, nowMs) + 1, plan.penaltyCap);
  store<f64>(r + PT_PENALTY, p);
  store<f64>(r + PT_PENALTY_AT, nowMs);
  if (p >= plan.suppressPenalty) store<u8>(r + PT_SUPPRESSED, 1);
}

/**
 * Records one result of target `t` at `nowMs` and returns the transition it caused
 * (TRANSITION_*). The backends' probe health is updated by the caller (index.ts), which
 * rebuilds their pools' Maglev tables when a backend's state changes.
 */
export function observe(plan: Plan, t: i32, ok: bool, nowMs: f64): i32 {
  const r = record(plan, t);
  let okRun = load<u32>(r + PT_SUCCESS_RUN);
  let failRun = load<u32>(r + PT_FAILURE_RUN);
  if (ok) {
    okRun = okRun == u32.MAX_VALUE ? okRun : okRun + 1;
    failRun = 0;
    store<u64>(r + PT_CHECKS_SUCCESS, load<u64>(r + PT_CHECKS_SUCCESS) + 1);
  } else {
    failRun = failRun == u32.MAX_VALUE ? failRun : failRun + 1;
    okRun = 0;
    store<u64>(r + PT_CHECKS_FAILURE, load<u64>(r + PT_CHECKS_FAILURE) + 1);
  }
  store<u32>(r + PT_SUCCESS_RUN, okRun);
  store<u32>(r + PT_FAILURE_RUN, failRun);
  const threshold = <u32>plan.probeThreshold[plan.targetProbe[t]];
  const state = load<u8>(r + PT_STATE);

  if (state == TARGET_UNKNOWN) {
    store<u8>(r + PT_STATE, ok ? TARGET_UP : TARGET_DOWN);
    return ok ? TRANSITION_INITIALLY_UP : TRANSITION_INITIALLY_DOWN;
  }
  if (state == TARGET_UP) {
    if (ok || failRun < threshold) return TRANSITION_NONE;
    store<u8>(r + PT_STATE, TARGET_DOWN);
    store<u32>(r + PT_TRANSITIONS_DOWN, load<u32>(r + PT_TRANSITIONS_DOWN) + 1);
    fall(plan, t, nowMs);
    return TRANSITION_DOWN;
  }
  // Down: up again after `threshold` successes, unless damping holds it.
  const held = load<u8>(r + PT_HELD) != 0;
  if (!ok) {
    // A held target would have been up: its failure is a fall too (RFC 2439 keeps
    // charging a route that flaps while suppressed).
    if (held) fall(plan, t, nowMs);
    return TRANSITION_NONE;
  }
  if (okRun < threshold) return TRANSITION_NONE;
  if (plan.dampingEnabled && load<u8>(r + PT_SUPPRESSED) != 0) {
    if (penaltyAt(plan, t, nowMs) >= plan.reusePenalty) {
      if (held) return TRANSITION_NONE;
      store<u8>(r + PT_HELD, 1);
      store<f64>(r + PT_HELD_SINCE, nowMs);
      return TRANSITION_HELD;
    }
    store<u8>(r + PT_SUPPRESSED, 0);
  }
  store<u8>(r + PT_HELD, 0);
  store<f64>(r + PT_HELD_SINCE, -1);
  store<u8>(r + PT_STATE, TARGET_UP);
  store<u32>(r + PT_TRANSITIONS_UP, load<u32>(r + PT_TRANSITIONS_UP) + 1);
  return TRANSITION_UP;
}

/** Backend `b`'s health by its targets: BACKEND_DOWN while any target is down. */
export function probeHealthOf(plan: Plan, b: i32): u8 {
  const targets = plan.backendTargets[b];
  for (let i = 0; i < targets.length; i++) {
    if (load<u8>(record(plan, targets[i]) + PT_STATE) == TARGET_DOWN) return BACKEND_DOWN;
  }
  return BACKEND_UP;
}
