// The flow table of assembly/flows.ts over an ArrayBuffer, byte for byte the core's
// layout, with the same lookup, insertion (two candidate buckets, cuckoo moves two
// levels deep), admission, eviction order and clock — so that the port and the core
// agree on every hit, insert, move, eviction and untracked flow.
//
//   bucket (448 B; 56 B per flow):
//   0                16        24        32                                 64
//   +----------------+---------+---------+----------------------------------+
//   | tag u16 × 8    | state×8 | idle×8  | seen u32 × 8                     |  header line
//   +----------------+---------+---------+----------------------------------+
//   | entry 0: w0 w1 w2 w3 w4 (key, 40 B) | rule u16 | backend u16 | link u32 |  48 B
//   | … entry 7                                                               |
//   +-------------------------------------------------------------------------+
//
// Views: u32 (bucket b at word 112 b: seen of way i at 112 b + 8 + i, the entry of way i
// at 112 b + 16 + 12 i, its link at + 11), u16 (tag of way i at 224 b + i; rule and
// backend at 2 × (entry word + 10) and + 1), u8 (state at 448 b + 16 + i, idle at
// 448 b + 24 + i). An entry is named by its handle 1 + 8 b + way (0 = none).
// A key is ten u32s (hash.ts); a hash is (lo, hi) u32 halves.

import { FLOW_BUCKET_WAYS, FRAGMENT_TIMEOUT_MS, TCP_CLOSE_TIMEOUT_MS } from './consts';

export const STATE_USED = 1 << 0;
export const STATE_ESTABLISHED = 1 << 1;
export const STATE_CLOSING = 1 << 2;
export const STATE_REPLY = 1 << 3;
export const STATE_FRAGMENT = 1 << 4;
export const STATE_SYN = 1 << 5;
export const STATE_SWAPPED = 1 << 6;

const BUCKET_BYTES = 448;
const BUCKET_WORDS = 112;
export const FLOW_BYTES = BUCKET_BYTES / FLOW_BUCKET_WAYS;

let ft32 = new Uint32Array(0);
let ft16 = new Uint16Array(0);
let ft8 = new Uint8Array(0);
let bucketMask = 0;
export let flowCapacity = 0;
export let flowUsed = 0;
let ruleIdleMinutes: Uint8Array = new Uint8Array(0);
/** Set by flowInsert when a live entry had to be evicted. */
export let insertEvicted = false;
/** Entries moved to their other bucket (the core's C_FLOW_MOVES). */
export let flowMoves = 0;

export function flowsAllocate(capacity: number, idleMinutes: Uint8Array): void {
  const buf = new ArrayBuffer((capacity / FLOW_BUCKET_WAYS) * BUCKET_BYTES);
  ft32 = new Uint32Array(buf);
  ft16 = new Uint16Array(buf);
  ft8 = new Uint8Array(buf);
  flowCapacity = capacity;
  bucketMask = capacity / FLOW_BUCKET_WAYS - 1;
  flowUsed = 0;
  ruleIdleMinutes = idleMinutes;
}

// ---- The clock: u32 milliseconds since the first batch ---------------------------------

/** Now on the table's clock (milliseconds), set once per batch by flowsClock. */
export let tick = 0;
let clockBase = 0;
let clockSet = false;
const REBASE_AT = 2147483647 - 86400000;
const REBASE_BY = 1073741824;

export function flowsClock(now: number): void {
  if (!clockSet) {
    clockBase = now;
    clockSet = isFinite(now);
  }
  let t = now - clockBase;
  if (t >= REBASE_AT && isFinite(t)) {
    rebaseClock(now - REBASE_BY);
    t = now - clockBase;
  }
  tick = t > 0 ? Math.trunc(t) : 0;
}

function rebaseClock(base: number): void {
  const shift = Math.trunc(base - clockBase);
  clockBase = base;
  const buckets = flowCapacity / FLOW_BUCKET_WAYS;
  for (let b = 0; b < buckets; b++) {
    for (let way = 0; way < FLOW_BUCKET_WAYS; way++) {
      const i = b * BUCKET_WORDS + 8 + way;
      const seen = ft32[i] - shift;
      ft32[i] = seen > 0 ? seen : 0;
    }
  }
}

// ---- Handles and fields ----------------------------------------------------------------------
// For handle e: bucket (e − 1) >>> 3, way (e − 1) & 7.

function lineOf(e: number): number { return ((e - 1) >>> 3) * BUCKET_WORDS + 16 + ((e - 1) & 7) * 12; }
function stateAt(e: number): number { return ((e - 1) >>> 3) * BUCKET_BYTES + 16 + ((e - 1) & 7); }
function seenAt(e: number): number { return ((e - 1) >>> 3) * BUCKET_WORDS + 8 + ((e - 1) & 7); }
function tagAt(e: number): number { return ((e - 1) >>> 3) * 224 + ((e - 1) & 7); }

export function entryRule(e: number): number { return ft16[2 * lineOf(e) + 20]; }
export function entryBackend(e: number): number { return ft16[2 * lineOf(e) + 21]; }
export function entryState(e: number): number { return ft8[stateAt(e)]; }
export function setEntryBackend(e: number, b: number): void { ft16[2 * lineOf(e) + 21] = b; }
/** Milliseconds since the entry was last refreshed (unverified entries: since their first packet). */
export function entryAge(e: number): number { return tick - ft32[seenAt(e)]; }

/** Adds state bits to `e` and, when `refresh`, sets its last-seen time to now. */
export function touchEntry(e: number, addState: number, refresh: boolean): void {
  ft8[stateAt(e)] |= addState;
  if (refresh) ft32[seenAt(e)] = tick;
}

/** Starts entry `e` over for a new connection on the same key: backend `b`, state `state`. */
export function restartEntry(e: number, b: number, state: number): void {
  const line = lineOf(e);
  ft32[seenAt(e)] = tick;
  ft8[stateAt(e)] = state | STATE_USED;
  ft16[2 * line + 21] = b;
  ft32[line + 11] = 0;
}

/** The entry's partner when the link is mutual and the partner in use; 0 otherwise. */
function partnerOf(e: number): number {
  const p = ft32[lineOf(e) + 11];
  if (p === 0 || p > flowCapacity) return 0;
  if ((ft8[stateAt(p)] & STATE_USED) === 0 || ft32[lineOf(p) + 11] !== e) return 0;
  return p;
}

/** Touches `e` and its partner, if the link is mutual (one flow, one idle timer). */
export function touchFlow(e: number, addState: number): void {
  touchEntry(e, addState, true);
  const p = partnerOf(e);
  if (p !== 0) touchEntry(p, addState & (STATE_ESTABLISHED | STATE_CLOSING), true);
}

/** Whether way `way` of the bucket whose header starts at byte `hb` (word `hw`) is past its timeout. */
function expiredWay(hb: number, hw: number, way: number): boolean {
  const s = ft8[hb + 16 + way];
  const idle = (s & STATE_FRAGMENT) !== 0 ? FRAGMENT_TIMEOUT_MS
    : (s & STATE_CLOSING) !== 0 ? TCP_CLOSE_TIMEOUT_MS : ft8[hb + 24 + way] * 60000;
  return tick - ft32[hw + 8 + way] > idle;
}

/** Whether `e` is past its timeout (idle, close or fragment). */
export function entryExpired(e: number): boolean {
  const b = (e - 1) >>> 3;
  return expiredWay(b * BUCKET_BYTES, b * BUCKET_WORDS, (e - 1) & 7);
}

// ---- Buckets of a hash --------------------------------------------------------------------

/** The key's tag: bits 48–63 of its hash, never 0. */
function tagOf(hashHi: number): number {
  const t = hashHi >>> 16;
  return t !== 0 ? t : 1;
}

/**
 * The other bucket of a key in bucket `b` with tag `tag`: b ^ ((tag × 0x9e3779b97f4a7c15)
 * >> 40 & mask, or 1). The product's high word is tag × 0x9e3779b9 (low 32 bits, imul)
 * plus the carry of tag × 0x7f4a7c15 (< 2^47, exact); bits 40–63 are its top 24 bits.
 */
function otherBucket(b: number, tag: number): number {
  const hi = (Math.imul(tag, 0x9e3779b9) + Math.floor((tag * 0x7f4a7c15) / 4294967296)) >>> 0;
  const x = (hi >>> 8) & bucketMask;
  return (b ^ (x !== 0 ? x : 1)) >>> 0;
}

function keyEquals(line: number, k: Uint32Array): boolean {
  return ft32[line] === k[0] && ft32[line + 8] === k[8] && ft32[line + 4] === k[4]
    && ft32[line + 9] === k[9] && ft32[line + 1] === k[1] && ft32[line + 2] === k[2]
    && ft32[line + 3] === k[3] && ft32[line + 5] === k[5] && ft32[line + 6] === k[6]
    && ft32[line + 7] === k[7];
}

/** The entry of key `k` in bucket `b`, or 0 (ways in order, as the core's tag scan finds them). */
function findIn(b: number, k: Uint32Array, tag: number): number {
  const t = b * 224;
  for (let way = 0; way < FLOW_BUCKET_WAYS; way++) {
    if (ft16[t + way] === tag && keyEquals(b * BUCKET_WORDS + 16 + way * 12, k)) return b * 8 + way + 1;
  }
  return 0;
}

// ---- Packet path ---------------------------------------------------------------------------

/** The entry holding key `k` (hash hi:lo), live or expired; 0 when none. */
export function flowFind(k: Uint32Array, hashLo: number, hashHi: number): number {
  const tag = tagOf(hashHi);
  const b1 = (hashLo & bucketMask) >>> 0;
  const e = findIn(b1, k, tag);
  if (e !== 0) return e;
  return findIn(otherBucket(b1, tag), k, tag);
}

/** The live entry holding key `k`; 0 when none (or expired). */
export function flowLookup(k: Uint32Array, hashLo: number, hashHi: number): number {
  const e = flowFind(k, hashLo, hashHi);
  return e !== 0 && !entryExpired(e) ? e : 0;
}

// Candidates found by scanBucket (insertion only).
let candFree = 0;
let candExpired = 0;
let candPending = 0;
let candPendingSeen = 0;
let candOldest = 0;
let candOldestSeen = 0;

function scanBucket(b: number): void {
  const hb = b * BUCKET_BYTES, hw = b * BUCKET_WORDS, t = b * 224;
  for (let way = 0; way < FLOW_BUCKET_WAYS; way++) {
    if (ft16[t + way] === 0) {
      if (candFree === 0) candFree = b * 8 + way + 1;
      continue;
    }
    if (expiredWay(hb, hw, way)) {
      if (candExpired === 0) candExpired = b * 8 + way + 1;
      continue;
    }
    const seen = ft32[hw + 8 + way];
    if ((ft8[hb + 16 + way] & STATE_ESTABLISHED) === 0) {
      if (candPending === 0 || seen < candPendingSeen) { candPending = b * 8 + way + 1; candPendingSeen = seen; }
    } else if (candOldest === 0 || seen < candOldestSeen) {
      candOldest = b * 8 + way + 1;
      candOldestSeen = seen;
    }
  }
}

/** A free or expired way of bucket `b`, or -1. */
function roomIn(b: number): number {
  const hb = b * BUCKET_BYTES, hw = b * BUCKET_WORDS, t = b * 224;
  for (let way = 0; way < FLOW_BUCKET_WAYS; way++) {
    if (ft16[t + way] === 0 || expiredWay(hb, hw, way)) return way;
  }
  return -1;
}

/** Moves entry `from` into way `to` (free or expired), keeping its partner's link. */
function moveEntry(from: number, to: number): void {
  if (ft16[tagAt(to)] !== 0) flowUsed--; // an expired entry gives way
  const partner = partnerOf(from);
  ft16[tagAt(to)] = ft16[tagAt(from)];
  ft8[stateAt(to)] = ft8[stateAt(from)];
  ft8[stateAt(to) + 8] = ft8[stateAt(from) + 8]; // idle
  ft32[seenAt(to)] = ft32[seenAt(from)];
  const lt = lineOf(to), lf = lineOf(from);
  for (let k = 0; k < 12; k++) ft32[lt + k] = ft32[lf + k];
  if (partner !== 0) ft32[lineOf(partner) + 11] = to;
  ft16[tagAt(from)] = 0;
  ft8[stateAt(from)] = 0;
  flowMoves++;
}

/**
 * Frees a way of bucket b1 or b2 by moving one of their entries to its other bucket, or
 * one level further (breadth first, two levels). Returns the freed handle, or 0.
 */
function makeRoom(b1: number, b2: number): number {
  for (let i = 0; i < 2; i++) {
    const b = i === 0 ? b1 : b2;
    for (let way = 0; way < FLOW_BUCKET_WAYS; way++) {
      const a = otherBucket(b, ft16[b * 224 + way]);
      const room = roomIn(a);
      if (room >= 0) {
        moveEntry(b * 8 + way + 1, a * 8 + room + 1);
        return b * 8 + way + 1;
      }
    }
  }
  for (let i = 0; i < 2; i++) {
    const b = i === 0 ? b1 : b2;
    for (let way = 0; way < FLOW_BUCKET_WAYS; way++) {
      const a = otherBucket(b, ft16[b * 224 + way]);
      for (let way2 = 0; way2 < FLOW_BUCKET_WAYS; way2++) {
        const a2 = otherBucket(a, ft16[a * 224 + way2]);
        if (a2 === b1 || a2 === b2) continue;
        const room = roomIn(a2);
        if (room >= 0) {
          moveEntry(a * 8 + way2 + 1, a2 * 8 + room + 1);
          moveEntry(b * 8 + way + 1, a * 8 + way2 + 1);
          return b * 8 + way + 1;
        }
      }
    }
  }
  return 0;
}

function writeEntry(e: number, k: Uint32Array, tag: number, rule: number, backend: number, state: number, idle: number, seen: number): void {
  const line = lineOf(e);
  for (let i = 0; i < 10; i++) ft32[line + i] = k[i];
  ft16[2 * line + 20] = rule;
  ft16[2 * line + 21] = backend;
  ft32[line + 11] = 0;
  ft16[tagAt(e)] = tag;
  ft8[stateAt(e)] = state | STATE_USED;
  ft8[stateAt(e) + 8] = idle;
  ft32[seenAt(e)] = seen;
}

/**
 * Inserts key `k` (hash hi:lo) for `rule` and `backend` with `state`. Takes, in the
 * key's two buckets: the entry of this key, a free way (first bucket first), an expired
 * one, a way made by moving entries to their other bucket (while the table is below
 * 31/32 full), the least recently seen entry not established, and — only when the
 * newcomer is itself established — the least recently seen established entry. Returns
 * the entry, or 0 when the flow cannot be tracked.
 */
export function flowInsert(k: Uint32Array, hashLo: number, hashHi: number, rule: number, backend: number, state: number): number {
  const tag = tagOf(hashHi);
  const b1 = (hashLo & bucketMask) >>> 0;
  const b2 = otherBucket(b1, tag);
  insertEvicted = false;
  let e = findIn(b1, k, tag);
  if (e === 0) e = findIn(b2, k, tag);
  if (e === 0) {
    candFree = 0;
    candExpired = 0;
    candPending = 0;
    candOldest = 0;
    scanBucket(b1);
    if (candFree === 0) scanBucket(b2);
    if (candFree !== 0) {
      e = candFree;
      flowUsed++;
    } else if (candExpired !== 0) {
      e = candExpired;
    } else {
      if (flowUsed < flowCapacity - (flowCapacity >> 5)) e = makeRoom(b1, b2);
      if (e !== 0) {
        flowUsed++;
      } else if (candPending !== 0) {
        e = candPending;
        insertEvicted = true;
      } else if (candOldest !== 0 && (state & STATE_ESTABLISHED) !== 0) {
        e = candOldest;
        insertEvicted = true;
      } else {
        return 0;
      }
    }
  }
  writeEntry(e, k, tag, rule, backend, state, ruleIdleMinutes[rule], tick);
  return e;
}
