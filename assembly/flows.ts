// The flow table (connection tracking): remembers the backend of every live flow, so
// that pool and health changes do not move existing flows.
//
// Besides flows it holds two kinds of entries, told apart by a marker bit in the key that
// no flow key has: reverse-NAT entries (a backend's replies → the frontend) and fragment
// entries ((src, dst, proto, IP ID) → the backend the first fragment chose, 30 s).
//
// Design: set-associative buckets of FLOW_BUCKET_WAYS (8) entries, 64 bytes each, in
// one region of linear memory allocated at configuration time. A flow lives only in
// bucket (hash & bucketMask). Chosen over open addressing because:
// - a lookup touches one 512-byte bucket (8 cache lines, tag compare first), bounded,
//   with no probe chains that grow as the table fills;
// - deletion and expiry need no tombstones: a slot is free, expired or live;
// - eviction under pressure is local and O(ways): expired first, then a flow not yet
//   established, and a live established flow only for another established flow — so
//   a flood of new flows cannot push out established ones.
// Capacity is a power of two ≥ 16, fixed per configuration; memory never grows with
// traffic.
//
// Entry layout (64 bytes; key words as in hash.ts):
//
//   0        8        16       24       32       40          48     52     54      56    57    60    64
//   +--------+--------+--------+--------+--------+-----------+------+------+-------+-----+-----+-----+
//   |   w0   |   w1   |   w2   |   w3   |   w4   | lastSeen  | tag  | rule |backend|state|spare| link|
//   |  src address    |  dst address    | ports… | f64 ms    | u32  | u16  | u16   | u8  |     | u32 |
//   +--------+--------+--------+--------+--------+-----------+------+------+-------+-----+-----+-----+
//
// tag = high 32 bits of the key hash (a fast reject before comparing the key).
// link = 1 + the index of the entry's partner (a translated flow and its reply entry),
// 0 for none. A link counts only when it is mutual: an entry reused for another flow
// gets a new link, so its old partner's link no longer points back.

import { FLOW_BUCKET_WAYS, FRAGMENT_TIMEOUT_MS, TCP_CLOSE_TIMEOUT_MS } from "./consts";
import { hashKey, setKeyWords, w0, w1, w2, w3, w4 } from "./hash";

export const ENTRY_BYTES: i32 = 64;
const BUCKET_BYTES: usize = <usize>(FLOW_BUCKET_WAYS * ENTRY_BYTES);

// Entry field offsets.
const F_LAST_SEEN: usize = 40;
const F_TAG: usize = 48;
const F_RULE: usize = 52;
const F_BACKEND: usize = 54;
const F_STATE: usize = 56;
const F_LINK: usize = 60;

// Entry state bits.
export const STATE_USED: u8 = 1 << 0;        // slot holds a flow
export const STATE_ESTABLISHED: u8 = 1 << 1; // TCP: an ACK was seen; others: a second packet
export const STATE_CLOSING: u8 = 1 << 2;     // TCP FIN or RST seen: short close timeout
export const STATE_REPLY: u8 = 1 << 3;       // reverse-NAT entry: backend → client, keyed with REPLY_MARK
export const STATE_FRAGMENT: u8 = 1 << 4;    // fragment entry: (src, dst, proto, IP ID) → backend

/** Table base, capacity (entries) and bucket mask. */
export let flowBase: usize = 0;
export let flowCapacity: i32 = 0;
let bucketMask: u64 = 0;
/** Entries in use (live or expired but not yet reused). */
export let flowUsed: i32 = 0;

/** Idle timeout per rule index (milliseconds), set by the configuration. */
export let ruleIdleMs: StaticArray<f64> = new StaticArray<f64>(0);
export function setRuleIdleMs(t: StaticArray<f64>): void { ruleIdleMs = t; }

/** Set by flowInsert when a live entry had to be evicted. */
export let lastInsertEvicted: bool = false;

// ---- Entry accessors -------------------------------------------------------------------

@inline export function entryRule(e: usize): i32 { return <i32>load<u16>(e + F_RULE); }
@inline export function entryBackend(e: usize): i32 { return <i32>load<u16>(e + F_BACKEND); }
@inline export function entryState(e: usize): u8 { return load<u8>(e + F_STATE); }
@inline export function setEntryBackend(e: usize, b: i32): void { store<u16>(e + F_BACKEND, <u16>b); }
@inline export function setEntryRule(e: usize, r: i32): void { store<u16>(e + F_RULE, <u16>r); }
@inline export function touchEntry(e: usize, now: f64, addState: u8): void {
  store<f64>(e + F_LAST_SEEN, now);
  store<u8>(e + F_STATE, load<u8>(e + F_STATE) | addState);
}

/** Starts entry `e` over for a new connection on the same key: backend `b`, state `state`. */
export function restartEntry(e: usize, now: f64, b: i32, state: u8): void {
  store<f64>(e + F_LAST_SEEN, now);
  store<u16>(e + F_BACKEND, <u16>b);
  store<u8>(e + F_STATE, state | STATE_USED);
  store<u32>(e + F_LINK, 0);
}

@inline function indexOf(e: usize): u32 {
  return <u32>((e - flowBase) >> 6) + 1; // ENTRY_BYTES = 64
}

/** Links a translated flow's entry and its reply entry, so each keeps the other alive. */
export function linkEntries(a: usize, b: usize): void {
  store<u32>(a + F_LINK, indexOf(b));
  store<u32>(b + F_LINK, indexOf(a));
}

/**
 * Touches `e` and its partner, if the link is mutual: one flow, one idle timer —
 * either direction's packets keep both entries alive, and FIN/RST from either side
 * starts both entries' close timeout. Only ESTABLISHED and CLOSING pass to the partner.
 */
export function touchFlow(e: usize, now: f64, addState: u8): void {
  touchEntry(e, now, addState);
  const link = load<u32>(e + F_LINK);
  if (link == 0) return;
  const p = flowBase + (<usize>(link - 1) << 6);
  if ((load<u8>(p + F_STATE) & STATE_USED) == 0 || load<u32>(p + F_LINK) != indexOf(e)) return;
  touchEntry(p, now, addState & (STATE_ESTABLISHED | STATE_CLOSING));
}

@inline function isExpired(e: usize, now: f64): bool {
  const state = load<u8>(e + F_STATE);
  const idle = (state & STATE_FRAGMENT) != 0 ? FRAGMENT_TIMEOUT_MS
    : (state & STATE_CLOSING) != 0 ? TCP_CLOSE_TIMEOUT_MS
    : unchecked(ruleIdleMs[<i32>load<u16>(e + F_RULE)]);
  return now - load<f64>(e + F_LAST_SEEN) > idle;
}

@inline function bucketOf(hash: u64): usize {
  return flowBase + <usize>(hash & bucketMask) * BUCKET_BYTES;
}

@inline function keyEquals(e: usize): bool {
  return load<u64>(e) == w0 && load<u64>(e, 8) == w1 && load<u64>(e, 16) == w2
    && load<u64>(e, 24) == w3 && load<u64>(e, 32) == w4;
}

// ---- Lifecycle (configuration time) --------------------------------------------------------

/** Allocates an empty table of `capacity` entries (power of two ≥ FLOW_BUCKET_WAYS). */
export function flowsAllocate(capacity: i32): void {
  const bytes = <usize>capacity * <usize>ENTRY_BYTES;
  flowBase = heap.alloc(bytes);
  memory.fill(flowBase, 0, bytes);
  flowCapacity = capacity;
  bucketMask = <u64>(capacity / FLOW_BUCKET_WAYS - 1);
  flowUsed = 0;
}

export function flowsFree(): void {
  if (flowBase != 0) heap.free(flowBase);
  flowBase = 0;
  flowCapacity = 0;
  flowUsed = 0;
}

// ---- Packet path -----------------------------------------------------------------------------

/** Finds the live entry for the key in w0..w4 with hash `hash`; 0 when none. */
export function flowLookup(hash: u64, now: f64): usize {
  let e = bucketOf(hash);
  const tag = <u32>(hash >> 32);
  for (let i = 0; i < FLOW_BUCKET_WAYS; i++, e += <usize>ENTRY_BYTES) {
    if ((load<u8>(e + F_STATE) & STATE_USED) == 0) continue;
    if (load<u32>(e + F_TAG) != tag) continue;
    if (!keyEquals(e)) continue;
    return isExpired(e, now) ? 0 : e;
  }
  return 0;
}

/**
 * Inserts the key in w0..w4. Picks, in its bucket: the slot holding this key (expired),
 * a free slot, an expired one, the oldest not-established flow, and — only when the new
 * flow is itself established — the oldest established flow. Returns the entry, or 0
 * when the flow cannot be tracked (the caller still forwards it by hash).
 */
export function flowInsert(hash: u64, now: f64, rule: i32, backend: i32, state: u8): usize {
  const bucket = bucketOf(hash);
  const tag = <u32>(hash >> 32);
  let free: usize = 0;
  let expired: usize = 0;
  let pendingOldest: usize = 0; // least recently seen flow not yet established
  let oldest: usize = 0;        // least recently seen established flow
  let pendingSeen = Infinity;
  let oldSeen = Infinity;
  let e = bucket;
  for (let i = 0; i < FLOW_BUCKET_WAYS; i++, e += <usize>ENTRY_BYTES) {
    const s = load<u8>(e + F_STATE);
    if ((s & STATE_USED) == 0) {
      if (free == 0) free = e;
      continue;
    }
    if (load<u32>(e + F_TAG) == tag && keyEquals(e)) { expired = e; break; }
    if (isExpired(e, now)) {
      if (expired == 0) expired = e;
      continue;
    }
    const seen = load<f64>(e + F_LAST_SEEN);
    if ((s & STATE_ESTABLISHED) == 0) {
      if (seen < pendingSeen) { pendingSeen = seen; pendingOldest = e; }
    } else if (seen < oldSeen) {
      oldSeen = seen; oldest = e;
    }
  }
  lastInsertEvicted = false;
  let slot: usize = expired;
  if (slot == 0) {
    if (free != 0) {
      slot = free;
      flowUsed++;
    } else if (pendingOldest != 0) {
      slot = pendingOldest;
      lastInsertEvicted = true;
    } else if (oldest != 0 && (state & STATE_ESTABLISHED) != 0) {
      slot = oldest;
      lastInsertEvicted = true;
    } else {
      return 0;
    }
  }
  store<u64>(slot, w0);
  store<u64>(slot, w1, 8);
  store<u64>(slot, w2, 16);
  store<u64>(slot, w3, 24);
  store<u64>(slot, w4, 32);
  store<f64>(slot + F_LAST_SEEN, now);
  store<u32>(slot + F_TAG, tag);
  store<u16>(slot + F_RULE, <u16>rule);
  store<u16>(slot + F_BACKEND, <u16>backend);
  store<u8>(slot + F_STATE, state | STATE_USED);
  store<u32>(slot + F_LINK, 0);
  return slot;
}

// ---- Reconfiguration -------------------------------------------------------------------------

/**
 * Rewrites rule and backend indices of every entry after a configuration change:
 * `ruleMap[old]` / `backendMap[old]` give the new index or -1. An entry whose rule or
 * backend is gone, or whose backend is no longer in its rule's pool, is freed.
 * Returns the number of entries freed.
 */
export function flowsRemap(
  ruleMap: StaticArray<i32>, backendMap: StaticArray<i32>,
  rulePool: StaticArray<i32>, backendPool: StaticArray<i32>,
): i32 {
  let freed = 0;
  const end = flowBase + <usize>flowCapacity * <usize>ENTRY_BYTES;
  for (let e = flowBase; e < end; e += <usize>ENTRY_BYTES) {
    if ((load<u8>(e + F_STATE) & STATE_USED) == 0) continue;
    const r = <i32>load<u16>(e + F_RULE);
    const b = <i32>load<u16>(e + F_BACKEND);
    const nr = r < ruleMap.length ? unchecked(ruleMap[r]) : -1;
    const nb = b < backendMap.length ? unchecked(backendMap[b]) : -1;
    if (nr < 0 || nb < 0 || rulePool[nr] != backendPool[nb]) {
      store<u8>(e + F_STATE, 0);
      flowUsed--;
      freed++;
      continue;
    }
    store<u16>(e + F_RULE, <u16>nr);
    store<u16>(e + F_BACKEND, <u16>nb);
  }
  return freed;
}

/**
 * Moves every entry into a new table of `capacity` entries, rehashed with `seed`
 * (a new capacity or hash seed). Entries that find no free slot in their new bucket
 * are dropped and counted in the return value.
 */
export function flowsRehash(capacity: i32, seed: u64): i32 {
  const oldBase = flowBase;
  const oldEnd = flowBase + <usize>flowCapacity * <usize>ENTRY_BYTES;
  flowsAllocate(capacity);
  let lost = 0;
  for (let e = oldBase; e < oldEnd; e += <usize>ENTRY_BYTES) {
    if ((load<u8>(e + F_STATE) & STATE_USED) == 0) continue;
    setKeyWords(load<u64>(e), load<u64>(e, 8), load<u64>(e, 16), load<u64>(e, 24), load<u64>(e, 32));
    const hash = hashKey(seed);
    let slot = bucketOf(hash);
    let i = 0;
    for (; i < FLOW_BUCKET_WAYS; i++, slot += <usize>ENTRY_BYTES) {
      if ((load<u8>(slot + F_STATE) & STATE_USED) == 0) break;
    }
    if (i == FLOW_BUCKET_WAYS) { lost++; continue; }
    memory.copy(slot, e, <usize>ENTRY_BYTES);
    store<u32>(slot + F_TAG, <u32>(hash >> 32));
    store<u32>(slot + F_LINK, 0); // indices changed: pairs age apart from now on
    flowUsed++;
  }
  if (oldBase != 0) heap.free(oldBase);
  return lost;
}
