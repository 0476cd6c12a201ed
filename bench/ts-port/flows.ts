// The flow table of assembly/flows.ts over an ArrayBuffer: set-associative buckets of 8
// entries of 64 bytes, the same entry layout, the same lookup, insert and eviction order
// (so the port and the core agree on every hit, insert, eviction and untracked flow).
//
//   0        8        16       24       32       40          48     52     54      56
//   |   w0   |   w1   |   w2   |   w3   |   w4   | lastSeen  | tag  | rule |backend|state|
//
// Views: u32 (entry e at word 16e), f64 (lastSeen at 8e + 5), u16 (rule 32e + 26,
// backend 32e + 27), u8 (state 64e + 56).

import { FLOW_BUCKET_WAYS, TCP_CLOSE_TIMEOUT_MS } from './consts';
import { w } from './hash';

export const STATE_USED = 1 << 0;
export const STATE_ESTABLISHED = 1 << 1;
export const STATE_CLOSING = 1 << 2;

let ft32 = new Uint32Array(0);
let ft64 = new Float64Array(0);
let ft16 = new Uint16Array(0);
let ft8 = new Uint8Array(0);
let bucketMask = 0;
export let flowCapacity = 0;
export let flowUsed = 0;
let ruleIdleMs: Float64Array = new Float64Array(0);
export let lastInsertEvicted = false;

export function flowsAllocate(capacity: number, idleMs: Float64Array): void {
  const buf = new ArrayBuffer(capacity * 64);
  ft32 = new Uint32Array(buf);
  ft64 = new Float64Array(buf);
  ft16 = new Uint16Array(buf);
  ft8 = new Uint8Array(buf);
  flowCapacity = capacity;
  bucketMask = capacity / FLOW_BUCKET_WAYS - 1;
  flowUsed = 0;
  ruleIdleMs = idleMs;
}

export function entryRule(e: number): number { return ft16[32 * e + 26]; }
export function entryBackend(e: number): number { return ft16[32 * e + 27]; }
export function setEntryBackend(e: number, b: number): void { ft16[32 * e + 27] = b; }
export function touchEntry(e: number, now: number, addState: number): void {
  ft64[8 * e + 5] = now;
  ft8[64 * e + 56] |= addState;
}

function isExpired(e: number, now: number): boolean {
  const state = ft8[64 * e + 56];
  const idle = (state & STATE_CLOSING) !== 0 ? TCP_CLOSE_TIMEOUT_MS : ruleIdleMs[ft16[32 * e + 26]];
  return now - ft64[8 * e + 5] > idle;
}

function keyEquals(e: number): boolean {
  const b = 16 * e;
  return ft32[b] === w[0] && ft32[b + 1] === w[1] && ft32[b + 2] === w[2] && ft32[b + 3] === w[3]
    && ft32[b + 4] === w[4] && ft32[b + 5] === w[5] && ft32[b + 6] === w[6] && ft32[b + 7] === w[7]
    && ft32[b + 8] === w[8] && ft32[b + 9] === w[9];
}

/** The live entry (index + 1, so that 0 is "none") for the key in `w` with hash (hi:lo). */
export function flowLookup(hashLo: number, hashHi: number, now: number): number {
  let e = (hashLo & bucketMask) * FLOW_BUCKET_WAYS;
  for (let i = 0; i < FLOW_BUCKET_WAYS; i++, e++) {
    if ((ft8[64 * e + 56] & STATE_USED) === 0) continue;
    if (ft32[16 * e + 12] !== hashHi) continue;
    if (!keyEquals(e)) continue;
    return isExpired(e, now) ? 0 : e + 1;
  }
  return 0;
}

/** Inserts the key in `w`; returns the entry index + 1, or 0 when it cannot be tracked. */
export function flowInsert(hashLo: number, hashHi: number, now: number, rule: number, backend: number, state: number): number {
  const bucket = (hashLo & bucketMask) * FLOW_BUCKET_WAYS;
  let free = -1;
  let expired = -1;
  let pendingOldest = -1;
  let oldest = -1;
  let pendingSeen = Infinity;
  let oldSeen = Infinity;
  for (let i = 0, e = bucket; i < FLOW_BUCKET_WAYS; i++, e++) {
    const s = ft8[64 * e + 56];
    if ((s & STATE_USED) === 0) {
      if (free < 0) free = e;
      continue;
    }
    if (ft32[16 * e + 12] === hashHi && keyEquals(e)) { expired = e; break; }
    if (isExpired(e, now)) {
      if (expired < 0) expired = e;
      continue;
    }
    const seen = ft64[8 * e + 5];
    if ((s & STATE_ESTABLISHED) === 0) {
      if (seen < pendingSeen) { pendingSeen = seen; pendingOldest = e; }
    } else if (seen < oldSeen) {
      oldSeen = seen; oldest = e;
    }
  }
  lastInsertEvicted = false;
  let slot = expired;
  if (slot < 0) {
    if (free >= 0) {
      slot = free;
      flowUsed++;
    } else if (pendingOldest >= 0) {
      slot = pendingOldest;
      lastInsertEvicted = true;
    } else if (oldest >= 0 && (state & STATE_ESTABLISHED) !== 0) {
      slot = oldest;
      lastInsertEvicted = true;
    } else {
      return 0;
    }
  }
  const b = 16 * slot;
  for (let k = 0; k < 10; k++) ft32[b + k] = w[k];
  ft64[8 * slot + 5] = now;
  ft32[b + 12] = hashHi;
  ft16[32 * slot + 26] = rule;
  ft16[32 * slot + 27] = backend;
  ft8[64 * slot + 56] = state | STATE_USED;
  return slot + 1;
}
