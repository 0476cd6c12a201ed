// The flow table (connection tracking): remembers the backend of every live flow, so
// that pool and health changes do not move existing flows.
//
// Besides flows it holds two kinds of entries, told apart by a marker bit in the key that
// no flow key has: reverse-NAT entries (a backend's replies → the frontend) and fragment
// entries ((src, dst, proto, IP ID) → the backend the first fragment chose, 30 s).
//
// ## Layout: buckets of a header line and eight entries
//
// Set-associative buckets of FLOW_BUCKET_WAYS (8) entries, in one region of linear
// memory taken with memory.grow (outside the allocator's heap, so exactly the pages the
// table needs). The models are DPDK's rte_hash and Cuckoo++ (Le Scouarnec, ANCS 2018):
// a bucket's first cache line holds what a lookup or an insertion decides on — a 16-bit
// tag, the state, the idle timeout and the last-seen time of each way — and the keys
// follow, 48 bytes each. A lookup reads the header line and, on a tag match, one entry:
//
//   bucket (448 B = 7 cache lines; 56 B per flow):
//   0                16        24        32                                 64
//   +----------------+---------+---------+----------------------------------+
//   | tag u16 × 8    | state×8 | idle×8  | seen u32 × 8                     |  header line
//   +----------------+---------+---------+----------------------------------+
//   | entry 0: w0 w1 w2 w3 w4 (key, 40 B) | rule u16 | backend u16 | link u32 |  48 B
//   | entry 1 …                                                               |
//   | … entry 7                                                               |
//   +-------------------------------------------------------------------------+
//
//   tag:   bits 48–63 of the key's hash, never 0; 0 marks a free way.
//   state: STATE_* below.
//   idle:  the idle timeout of the entry's rule (minutes, 4–100); fragment and closing
//          entries have their own (consts.ts), so expiry is decided from the header.
//   seen:  when the entry was last refreshed: milliseconds on the table's clock (below).
//   link:  the handle of the entry's partner (a translated flow and its reply entry),
//          0 for none. A link counts only when it is mutual: an entry reused for
//          another flow gets a new link, so its old partner's link no longer points back.
//
// An entry is named by its handle: 1 + bucket × 8 + way (0 = none).
//
// ## Two candidate buckets
//
// A key may live in bucket b1 = hash & mask or in b2 = b1 ^ f(tag) (partial-key cuckoo
// hashing: b1 follows from b2 and the tag in the same way, so an entry can be moved to
// its other bucket without its key being hashed again). Insertion takes a free way of
// b1, else of b2, else an expired way, else moves an entry of b1 or b2 to a free way of
// its other bucket (two levels deep: up to 2 × 8 + 2 × 8 × 8 header lines read, only
// while the table has room to move into), and only then evicts. With one bucket per
// key, a table at 25% load already had buckets with more than 8 live flows; with two
// and moves, a table filled to 90% with established flows evicts none of them.
//
// ## Admission: who may evict whom
//
// An entry is *established* when its flow is seen to be real:
// - TCP: a bare SYN opens the entry (STATE_SYN); the next packet of the flow that is not
//   itself a bare SYN — the SYN/ACK where the core sees both directions, else the ACK —
//   establishes it. A first packet without SYN (a mid-stream pickup, say after a
//   restart) is forwarded to its consistent-hash backend and tracked as unverified.
// - Unverified TCP, UDP, ICMP and other protocols: a packet from the other direction
//   (symmetric rules, where both directions share the entry; for NAT, the backend's
//   reply), or a packet at least FLOW_ESTABLISH_AFTER_MS (1 s) after the first. A flood
//   of spoofed single packets from random sources does neither; a real request and
//   response, or a one-way stream that lasts a second, does. Until then the entry keeps
//   the time of its first packet, so "1 s after the first" is measurable.
// - Fragment entries are never established; reply entries are established with their
//   flow.
// Eviction: a newcomer may evict only an entry that is not established (the least
// recently seen), and an established entry only when the newcomer is itself established
// (only reply entries of moved flows and flows moved by a rehash are): so no flood of
// SYNs, ACKs, UDP first packets or fragments can push out an established flow. A flow
// that finds no room is untracked, and still gets its consistent-hash backend.
//
// ## The clock
//
// `seen` is a u32 of milliseconds since the table's clock base (the first batch's
// time). When the clock reaches 2^31 − 1 day (24 days), the base moves forward by
// 2^31 − 2^30 ms and every `seen` with it (an O(capacity) pass, once every 12 days);
// entries older than the new base are far past any timeout and clamp to 0.

import {
  FLOW_BUCKET_WAYS, FLOW_ESTABLISH_AFTER_MS, FRAGMENT_TIMEOUT_MS, TCP_CLOSE_TIMEOUT_MS,
} from "./consts";
import { KEY_BYTES, keyHash } from "./hash";
import {
  C_FLOW_MOVES, count, F_BACKEND, F_IDLE_MS, F_KEY, F_RULE, F_STATE, F_TIMEOUT_MS, FLOW_RECORD_BYTES,
} from "./layout";

export const HEADER_BYTES: i32 = 64;
export const ENTRY_BYTES: i32 = 48;
/** Bytes per bucket: a header line and FLOW_BUCKET_WAYS entries. */
export const BUCKET_BYTES: i32 = HEADER_BYTES + FLOW_BUCKET_WAYS * ENTRY_BYTES;
/** Bytes of table per flow of capacity. */
export const FLOW_BYTES: i32 = BUCKET_BYTES / FLOW_BUCKET_WAYS;

// Header offsets (per way: tag u16, state u8, idle u8, seen u32).
const H_TAG: usize = 0;
const H_STATE: usize = 16;
const H_IDLE: usize = 24;
const H_SEEN: usize = 32;
// Entry offsets (after the 40-byte key).
const E_RULE: usize = 40;
const E_BACKEND: usize = 42;
const E_LINK: usize = 44;

// Entry state bits.
export const STATE_USED: u8 = 1 << 0;        // way holds an entry (its tag is not 0)
export const STATE_ESTABLISHED: u8 = 1 << 1; // seen to be real (admission, above)
export const STATE_CLOSING: u8 = 1 << 2;     // TCP FIN or RST seen: short close timeout
export const STATE_REPLY: u8 = 1 << 3;       // reverse-NAT entry: backend → client, keyed with REPLY_MARK
export const STATE_FRAGMENT: u8 = 1 << 4;    // fragment entry: (src, dst, proto, IP ID) → backend
export const STATE_SYN: u8 = 1 << 5;         // TCP entry opened by a bare SYN, not yet established
export const STATE_SWAPPED: u8 = 1 << 6;     // the first packet ran against the key's canonical order

/** Table base, capacity (entries) and bucket mask. */
export let flowBase: usize = 0;
export let flowCapacity: i32 = 0;
let bucketMask: u32 = 0;
/** Bytes of the table's region (capacity × FLOW_BYTES, whole pages). */
let flowBytes: usize = 0;
/** Entries in use (live or expired but not yet reused). */
export let flowUsed: i32 = 0;

/** Idle timeout per rule index (minutes), set by the configuration. */
let ruleIdleMinutes: StaticArray<u8> = new StaticArray<u8>(0);
export function setRuleIdleMinutes(t: StaticArray<u8>): void { ruleIdleMinutes = t; }

/** Set in flowInsert's result when a live entry had to be evicted for the new one. */
export const INSERT_EVICTED: u32 = 0x80000000;
/** The entry of a flowInsert result (0: untracked). */
@inline export function insertedEntry(r: u32): u32 { return r & ~INSERT_EVICTED; }

// ---- The clock ------------------------------------------------------------------------------

/** Now, in milliseconds on the table's clock: set once per batch by flowsClock. */
export let tick: i32 = 0;
let clockBase: f64 = 0;
let clockSet = false;
const REBASE_AT: f64 = 2147483647.0 - 86400000.0;
const REBASE_BY: f64 = 1073741824.0; // 2^30: what is kept of the past, in milliseconds

/** Sets the table's clock from the host's time `now` (milliseconds). */
export function flowsClock(now: f64): void {
  if (!clockSet) {
    clockBase = now;
    clockSet = isFinite(now);
  }
  let t = now - clockBase;
  if (t >= REBASE_AT && isFinite(t)) {
    rebaseClock(now - REBASE_BY);
    t = now - clockBase;
  }
  tick = t > 0 ? <i32>t : 0;
}

function rebaseClock(base: f64): void {
  const shift = <i64>(base - clockBase);
  clockBase = base;
  const buckets = <usize>flowCapacity / <usize>FLOW_BUCKET_WAYS;
  for (let b: usize = 0; b < buckets; b++) {
    const h = flowBase + b * <usize>BUCKET_BYTES;
    for (let w: usize = 0; w < <usize>FLOW_BUCKET_WAYS; w++) {
      const seen = <i64>load<u32>(h + H_SEEN + (w << 2)) - shift;
      store<u32>(h + H_SEEN + (w << 2), seen > 0 ? <u32>seen : 0);
    }
  }
}

// ---- Handles and fields ---------------------------------------------------------------------

@inline function headerAt(bucket: u32): usize {
  return flowBase + <usize>bucket * <usize>BUCKET_BYTES;
}
@inline function headerOf(e: u32): usize { return headerAt((e - 1) >> 3); }
@inline function wayOf(e: u32): usize { return <usize>((e - 1) & 7); }
@inline function lineOf(e: u32): usize {
  return headerOf(e) + <usize>HEADER_BYTES + wayOf(e) * <usize>ENTRY_BYTES;
}
@inline function handle(bucket: u32, way: usize): u32 { return (bucket << 3) + <u32>way + 1; }

@inline export function entryRule(e: u32): i32 { return <i32>load<u16>(lineOf(e) + E_RULE); }
@inline export function entryBackend(e: u32): i32 { return <i32>load<u16>(lineOf(e) + E_BACKEND); }
@inline export function entryState(e: u32): u8 { return load<u8>(headerOf(e) + H_STATE + wayOf(e)); }
@inline export function setEntryBackend(e: u32, b: i32): void { store<u16>(lineOf(e) + E_BACKEND, <u16>b); }
/** Milliseconds since the entry was last refreshed (for unverified entries: since their first packet). */
@inline export function entryAge(e: u32): i32 {
  return tick - <i32>load<u32>(headerOf(e) + H_SEEN + (wayOf(e) << 2));
}

/** Adds state bits to `e` and, when `refresh`, sets its last-seen time to now. */
export function touchEntry(e: u32, addState: u8, refresh: bool): void {
  const h = headerOf(e);
  const way = wayOf(e);
  store<u8>(h + H_STATE + way, load<u8>(h + H_STATE + way) | addState);
  if (refresh) store<u32>(h + H_SEEN + (way << 2), <u32>tick);
}

/** Starts entry `e` over for a new connection on the same key: backend `b`, state `state`. */
export function restartEntry(e: u32, b: i32, state: u8): void {
  const h = headerOf(e);
  const way = wayOf(e);
  const line = lineOf(e);
  store<u32>(h + H_SEEN + (way << 2), <u32>tick);
  store<u8>(h + H_STATE + way, state | STATE_USED);
  store<u16>(line + E_BACKEND, <u16>b);
  store<u32>(line + E_LINK, 0);
}

/** Frees entry `e` (its flow is over: a reset). */
export function removeEntry(e: u32): void {
  const h = headerOf(e);
  const way = wayOf(e);
  store<u16>(h + H_TAG + (way << 1), 0);
  store<u8>(h + H_STATE + way, 0);
  flowUsed--;
}

/** Frees entry `e` and its partner (a reset ends the flow in both directions). */
export function removeFlow(e: u32): void {
  const p = partnerOf(e);
  removeEntry(e);
  if (p != 0) removeEntry(p);
}

/** Links a translated flow's entry and its reply entry, so each keeps the other alive. */
export function linkEntries(a: u32, b: u32): void {
  store<u32>(lineOf(a) + E_LINK, b);
  store<u32>(lineOf(b) + E_LINK, a);
}

/** The entry's partner when the link is mutual and the partner in use; 0 otherwise. */
function partnerOf(e: u32): u32 {
  const p = load<u32>(lineOf(e) + E_LINK);
  if (p == 0 || p > <u32>flowCapacity) return 0;
  if ((entryState(p) & STATE_USED) == 0 || load<u32>(lineOf(p) + E_LINK) != e) return 0;
  return p;
}

/**
 * Touches `e` and its partner, if the link is mutual: one flow, one idle timer —
 * either direction's packets keep both entries alive, and FIN/RST from either side
 * starts both entries' close timeout. Only ESTABLISHED and CLOSING pass to the partner.
 */
export function touchFlow(e: u32, addState: u8): void {
  touchEntry(e, addState, true);
  const p = partnerOf(e);
  if (p != 0) touchEntry(p, addState & (STATE_ESTABLISHED | STATE_CLOSING), true);
}

@inline function idleOf(h: usize, way: usize): i32 {
  const s = load<u8>(h + H_STATE + way);
  if (s & STATE_FRAGMENT) return FRAGMENT_TIMEOUT_MS;
  if (s & STATE_CLOSING) return TCP_CLOSE_TIMEOUT_MS;
  return <i32>load<u8>(h + H_IDLE + way) * 60000;
}

@inline function expiredWay(h: usize, way: usize): bool {
  return tick - <i32>load<u32>(h + H_SEEN + (way << 2)) > idleOf(h, way);
}

/** Whether `e` is past its timeout (idle, close or fragment). */
export function entryExpired(e: u32): bool {
  return expiredWay(headerOf(e), wayOf(e));
}

/**
 * Writes flow records (abi: flow) of the entries in use, from entry position `cursor`
 * on, at `out`, at most `max` of them; `written[0]` gets how many. Returns the position
 * to continue from, or -1 at the table's end. Expired entries that were not yet reused
 * are left out. Outside the packet path: admin endpoints list the table with it.
 */
export function flowsDumpTo(cursor: i32, max: i32, out: usize, written: StaticArray<i32>): i32 {
  let n = 0;
  let e = <u32>(cursor < 0 ? 0 : cursor) + 1;
  const last = <u32>flowCapacity;
  for (; e <= last && n < max; e++) {
    const h = headerOf(e);
    const way = wayOf(e);
    const s = load<u8>(h + H_STATE + way);
    if ((s & STATE_USED) == 0 || expiredWay(h, way)) continue;
    const r = out + <usize>n * <usize>FLOW_RECORD_BYTES;
    memory.copy(r + F_KEY, lineOf(e), <usize>KEY_BYTES);
    store<u16>(r + F_RULE, load<u16>(lineOf(e) + E_RULE));
    store<u16>(r + F_BACKEND, load<u16>(lineOf(e) + E_BACKEND));
    store<u8>(r + F_STATE, s);
    store<u32>(r + F_IDLE_MS, <u32>(tick - <i32>load<u32>(h + H_SEEN + (way << 2))));
    store<u32>(r + F_TIMEOUT_MS, <u32>idleOf(h, way));
    n++;
  }
  unchecked(written[0] = n);
  return e > last ? -1 : <i32>(e - 1);
}

/** Whether `e` expired by its rule's idle timeout (not closing, not a fragment entry). */
export function entryIdleExpired(e: u32): bool {
  return (entryState(e) & (STATE_CLOSING | STATE_FRAGMENT)) == 0 && entryExpired(e);
}

// ---- Buckets of a hash ------------------------------------------------------------------------

/** The key's tag: bits 48–63 of its hash, never 0 (0 marks a free way). */
@inline function tagOf(hash: u64): u32 {
  const t = <u32>(hash >> 48);
  return t != 0 ? t : 1;
}

@inline function firstBucket(hash: u64): u32 {
  return <u32>hash & bucketMask;
}

/** The other bucket of a key in bucket `b` with tag `tag` (an involution: applied twice, `b`). */
@inline export function otherBucket(b: u32, tag: u32): u32 {
  const x = <u32>((<u64>tag * 0x9e3779b97f4a7c15) >> 40) & bucketMask;
  return b ^ (x != 0 ? x : 1);
}

@inline function keyEquals(line: usize, key: usize): bool {
  return load<u64>(line) == load<u64>(key) && load<u64>(line, 32) == load<u64>(key, 32)
    && load<u64>(line, 16) == load<u64>(key, 16) && load<u64>(line, 8) == load<u64>(key, 8)
    && load<u64>(line, 24) == load<u64>(key, 24);
}

const LANES_ONE: u64 = 0x0001000100010001;
const LANES_HIGH: u64 = 0x8000800080008000;

/**
 * Ways of header `h` whose tag may equal `tag`, as a bit mask (bit 15 of lane i = way i
 * of the half at `offset`). SWAR zero-lane test: exact for the lowest match, and a lane
 * above a match may show up too; the key comparison decides.
 */
@inline function tagMatches(h: usize, offset: usize, tag: u32): u64 {
  const x = load<u64>(h + offset) ^ (<u64>tag * LANES_ONE);
  return (x - LANES_ONE) & ~x & LANES_HIGH;
}

/** The entry of `key` in bucket `b`, or 0. */
@inline function findIn(b: u32, key: usize, tag: u32): u32 {
  const h = headerAt(b);
  for (let half: usize = 0; half < 16; half += 8) {
    let m = tagMatches(h, half, tag);
    while (m != 0) {
      const way = (half >> 1) + <usize>(ctz<u64>(m) >> 4);
      if (load<u16>(h + (way << 1)) == <u16>tag && keyEquals(h + <usize>HEADER_BYTES + way * <usize>ENTRY_BYTES, key)) {
        return handle(b, way);
      }
      m &= m - 1;
    }
  }
  return 0;
}

// ---- Packet path ---------------------------------------------------------------------------------

/** The entry holding the key at `key` (hash `hash`), live or expired; 0 when none. */
export function flowFind(key: usize, hash: u64): u32 {
  return flowFindInline(key, hash);
}

/** flowFind, inlined where it is on every packet's path (the flow stage). */
@inline export function flowFindInline(key: usize, hash: u64): u32 {
  const tag = tagOf(hash);
  const b1 = firstBucket(hash);
  const e = findIn(b1, key, tag);
  if (e != 0) return e;
  return findIn(otherBucket(b1, tag), key, tag);
}

/** The live entry holding the key at `key`; 0 when none (or expired). */
export function flowLookup(key: usize, hash: u64): u32 {
  const e = flowFind(key, hash);
  return e != 0 && !entryExpired(e) ? e : 0;
}

/**
 * Pass 1 of a batch: loads the header line of the key's first bucket so that it is in
 * the cache when pass 2 reads it (wasm has no prefetch; independent loads in a loop
 * are issued together). Returns a word of it, for the caller to keep the load alive.
 */
@inline export function prefetchBucket(hash: u64): u64 {
  return load<u64>(headerAt(firstBucket(hash)));
}

/**
 * Pass 2: loads the key of the first tag match in the first bucket or, when there is
 * none, the second bucket's header line (where the key lives if the first was full).
 */
export function prefetchEntry(hash: u64): u64 {
  const tag = tagOf(hash);
  const b1 = firstBucket(hash);
  const h = headerAt(b1);
  const low = tagMatches(h, 0, tag);
  const high = tagMatches(h, 8, tag);
  if ((low | high) != 0) {
    const way = low != 0 ? <usize>(ctz<u64>(low) >> 4) : 4 + <usize>(ctz<u64>(high) >> 4);
    // An entry may straddle two cache lines: load from both ends.
    const e = h + <usize>HEADER_BYTES + way * <usize>ENTRY_BYTES;
    return load<u64>(e) ^ load<u64>(e, ENTRY_BYTES - 8);
  }
  return load<u64>(headerAt(otherBucket(b1, tag)));
}

/** What scanBucket finds for an insertion, in one static record. */
@unmanaged class Candidates {
  free: u32;
  expired: u32;
  /** The least recently seen entry that is not established. */
  pending: u32;
  pendingSeen: u32;
  /** The least recently seen established entry. */
  oldest: u32;
  oldestSeen: u32;
}
const candidates = changetype<Candidates>(memory.data(offsetof<Candidates>(), 8));

function scanBucket(c: Candidates, b: u32): void {
  const h = headerAt(b);
  for (let way: usize = 0; way < <usize>FLOW_BUCKET_WAYS; way++) {
    if (load<u16>(h + (way << 1)) == 0) {
      if (c.free == 0) c.free = handle(b, way);
      continue;
    }
    if (expiredWay(h, way)) {
      if (c.expired == 0) c.expired = handle(b, way);
      continue;
    }
    const seen = load<u32>(h + H_SEEN + (way << 2));
    if ((load<u8>(h + H_STATE + way) & STATE_ESTABLISHED) == 0) {
      if (c.pending == 0 || seen < c.pendingSeen) { c.pending = handle(b, way); c.pendingSeen = seen; }
    } else if (c.oldest == 0 || seen < c.oldestSeen) {
      c.oldest = handle(b, way);
      c.oldestSeen = seen;
    }
  }
}

/** A free or expired way of bucket `b`, or -1. */
function roomIn(b: u32): i32 {
  const h = headerAt(b);
  for (let way: usize = 0; way < <usize>FLOW_BUCKET_WAYS; way++) {
    if (load<u16>(h + (way << 1)) == 0 || expiredWay(h, way)) return <i32>way;
  }
  return -1;
}

/** Moves entry `from` into way `to` (free or expired), keeping its partner's link. */
function moveEntry(from: u32, to: u32): void {
  const hf = headerOf(from);
  const wf = wayOf(from);
  const ht = headerOf(to);
  const wt = wayOf(to);
  if (load<u16>(ht + (wt << 1)) != 0) flowUsed--; // an expired entry gives way
  const partner = partnerOf(from);
  store<u16>(ht + (wt << 1), load<u16>(hf + (wf << 1)));
  store<u8>(ht + H_STATE + wt, load<u8>(hf + H_STATE + wf));
  store<u8>(ht + H_IDLE + wt, load<u8>(hf + H_IDLE + wf));
  store<u32>(ht + H_SEEN + (wt << 2), load<u32>(hf + H_SEEN + (wf << 2)));
  memory.copy(lineOf(to), lineOf(from), <usize>ENTRY_BYTES);
  if (partner != 0) store<u32>(lineOf(partner) + E_LINK, to);
  store<u16>(hf + (wf << 1), 0);
  store<u8>(hf + H_STATE + wf, 0);
  count(C_FLOW_MOVES);
}

/**
 * Frees a way of bucket b1 or b2 by moving one of their entries to its other bucket,
 * or one level further (bucketized cuckoo hashing, breadth first, two levels).
 * Returns the freed handle, or 0.
 */
function makeRoom(b1: u32, b2: u32): u32 {
  for (let i = 0; i < 2; i++) {
    const b = i == 0 ? b1 : b2;
    const h = headerAt(b);
    for (let way: usize = 0; way < <usize>FLOW_BUCKET_WAYS; way++) {
      const a = otherBucket(b, <u32>load<u16>(h + (way << 1)));
      const room = roomIn(a);
      if (room >= 0) {
        moveEntry(handle(b, way), handle(a, <usize>room));
        return handle(b, way);
      }
    }
  }
  for (let i = 0; i < 2; i++) {
    const b = i == 0 ? b1 : b2;
    const h = headerAt(b);
    for (let way: usize = 0; way < <usize>FLOW_BUCKET_WAYS; way++) {
      const a = otherBucket(b, <u32>load<u16>(h + (way << 1)));
      const ha = headerAt(a);
      for (let way2: usize = 0; way2 < <usize>FLOW_BUCKET_WAYS; way2++) {
        const a2 = otherBucket(a, <u32>load<u16>(ha + (way2 << 1)));
        if (a2 == b1 || a2 == b2) continue;
        const room = roomIn(a2);
        if (room >= 0) {
          moveEntry(handle(a, way2), handle(a2, <usize>room));
          moveEntry(handle(b, way), handle(a, way2));
          return handle(b, way);
        }
      }
    }
  }
  return 0;
}

function writeEntry(e: u32, key: usize, tag: u32, rule: i32, backend: i32, state: u8, idleMinutes: u8, seen: u32): void {
  const h = headerOf(e);
  const way = wayOf(e);
  const line = lineOf(e);
  store<u64>(line, load<u64>(key));
  store<u64>(line, load<u64>(key, 8), 8);
  store<u64>(line, load<u64>(key, 16), 16);
  store<u64>(line, load<u64>(key, 24), 24);
  store<u64>(line, load<u64>(key, 32), 32);
  store<u16>(line + E_RULE, <u16>rule);
  store<u16>(line + E_BACKEND, <u16>backend);
  store<u32>(line + E_LINK, 0);
  store<u16>(h + (way << 1), <u16>tag);
  store<u8>(h + H_STATE + way, state | STATE_USED);
  store<u8>(h + H_IDLE + way, idleMinutes);
  store<u32>(h + H_SEEN + (way << 2), seen);
}

/**
 * Inserts the key at `key` (hash `hash`) for `rule` and `backend` with `state`. Takes,
 * in the key's two buckets: the entry of this key (expired, or being replaced), a free
 * way (first bucket first), an expired one, a way made by moving entries to their other
 * bucket, the least recently seen entry not established, and — only when the newcomer
 * is itself established — the least recently seen established entry. Returns the
 * entry, with INSERT_EVICTED set when a live entry gave way (insertedEntry() strips it),
 * or 0 when the flow cannot be tracked (the caller still forwards it by hash).
 */
export function flowInsert(key: usize, hash: u64, rule: i32, backend: i32, state: u8): u32 {
  return insertAt(key, hash, rule, backend, state, unchecked(ruleIdleMinutes[rule]), <u32>tick, true, false);
}

/** flowInsert of a key that flowFind has just not found (its buckets are not searched again). */
export function flowInsertNew(key: usize, hash: u64, rule: i32, backend: i32, state: u8): u32 {
  return insertAt(key, hash, rule, backend, state, unchecked(ruleIdleMinutes[rule]), <u32>tick, true, true);
}

function insertAt(
  key: usize, hash: u64, rule: i32, backend: i32, state: u8, idle: u8, seen: u32, evict: bool, absent: bool,
): u32 {
  const tag = tagOf(hash);
  const b1 = firstBucket(hash);
  const b2 = otherBucket(b1, tag);
  let evicted: u32 = 0;
  let e: u32 = 0;
  if (!absent) {
    e = findIn(b1, key, tag);
    if (e == 0) e = findIn(b2, key, tag);
  }
  if (e == 0) {
    const c = candidates;
    c.free = 0;
    c.expired = 0;
    c.pending = 0;
    c.oldest = 0;
    scanBucket(c, b1);
    if (c.free == 0) scanBucket(c, b2);
    if (c.free != 0) {
      e = c.free;
      flowUsed++;
    } else if (c.expired != 0) {
      e = c.expired;
    } else {
      // Make room while the table has some: past 31/32 full, moves rarely find any.
      if (flowUsed < flowCapacity - (flowCapacity >> 5)) e = makeRoom(b1, b2);
      if (e != 0) {
        flowUsed++;
      } else if (!evict) {
        return 0;
      } else if (c.pending != 0) {
        e = c.pending;
        evicted = INSERT_EVICTED;
      } else if (c.oldest != 0 && (state & STATE_ESTABLISHED) != 0) {
        e = c.oldest;
        evicted = INSERT_EVICTED;
      } else {
        return 0;
      }
    }
  }
  writeEntry(e, key, tag, rule, backend, state, idle, seen);
  return e | evicted;
}

// ---- Memory (configuration time) --------------------------------------------------------------

// A table's region comes from memory.grow, in whole pages; the region of a table given
// up (a new capacity) is kept as the spare and reused by a later table that fits.
let spareBase: usize = 0;
let spareBytes: usize = 0;

/** Bytes of a table of `capacity` entries, in whole pages. */
export function flowTableBytes(capacity: i32): usize {
  return ((<usize>capacity * <usize>FLOW_BYTES) + 0xffff) & ~(<usize>0xffff);
}

function takeRegion(bytes: usize): usize {
  if (spareBytes >= bytes) {
    const base = spareBase;
    spareBase = 0;
    spareBytes = 0;
    // Only the header lines decide what is in use: clear those.
    for (let h = base; h < base + bytes - <usize>BUCKET_BYTES + 1; h += <usize>BUCKET_BYTES) memory.fill(h, 0, <usize>HEADER_BYTES);
    return base;
  }
  const before = memory.grow(<i32>(bytes >> 16));
  if (before < 0) return 0;
  return <usize>before << 16; // fresh pages are zero
}

function giveRegion(base: usize, bytes: usize): void {
  if (base != 0 && bytes > spareBytes) {
    spareBase = base;
    spareBytes = bytes;
  }
}

/**
 * Allocates an empty table of `capacity` entries (a power of two ≥ 16). Returns false,
 * keeping the running table, when the memory cannot be had.
 */
export function flowsAllocate(capacity: i32): bool {
  const bytes = flowTableBytes(capacity);
  const base = takeRegion(bytes);
  if (base == 0) return false;
  giveRegion(flowBase, flowBytes);
  flowBase = base;
  flowBytes = bytes;
  flowCapacity = capacity;
  bucketMask = <u32>(capacity / FLOW_BUCKET_WAYS - 1);
  flowUsed = 0;
  return true;
}

/** Gives the table's memory back for reuse, and restarts its clock (tests). */
export function flowsFree(): void {
  clockSet = false;
  giveRegion(flowBase, flowBytes);
  flowBase = 0;
  flowBytes = 0;
  flowCapacity = 0;
  flowUsed = 0;
}

// ---- Reconfiguration -------------------------------------------------------------------------

/**
 * Rewrites rule and backend indices of every entry after a configuration change:
 * `ruleMap[old]` / `backendMap[old]` give the new index or -1. An entry whose rule or
 * backend is gone, or whose backend is no longer in its rule's pool, is freed; the
 * others take their rule's idle timeout. Returns the number of entries freed.
 */
export function flowsRemap(
  ruleMap: StaticArray<i32>, backendMap: StaticArray<i32>,
  rulePool: StaticArray<i32>, backendPool: StaticArray<i32>,
): i32 {
  let freed = 0;
  const buckets = <u32>flowCapacity / <u32>FLOW_BUCKET_WAYS;
  for (let b: u32 = 0; b < buckets; b++) {
    const h = headerAt(b);
    for (let way: usize = 0; way < <usize>FLOW_BUCKET_WAYS; way++) {
      if (load<u16>(h + (way << 1)) == 0) continue;
      const line = h + <usize>HEADER_BYTES + way * <usize>ENTRY_BYTES;
      const r = <i32>load<u16>(line + E_RULE);
      const be = <i32>load<u16>(line + E_BACKEND);
      const nr = r < ruleMap.length ? unchecked(ruleMap[r]) : -1;
      const nb = be < backendMap.length ? unchecked(backendMap[be]) : -1;
      if (nr < 0 || nb < 0 || rulePool[nr] != backendPool[nb]) {
        store<u16>(h + (way << 1), 0);
        store<u8>(h + H_STATE + way, 0);
        flowUsed--;
        freed++;
        continue;
      }
      store<u16>(line + E_RULE, <u16>nr);
      store<u16>(line + E_BACKEND, <u16>nb);
      store<u8>(h + H_IDLE + way, unchecked(ruleIdleMinutes[nr]));
    }
  }
  return freed;
}

/**
 * Moves every live entry into a new table of `capacity` entries, hashed with the key
 * (k0, k1) (a new capacity or hash key). Entries that find no room are dropped and
 * counted in the return value; -1 when the new table's memory cannot be had (the old
 * table stays).
 */
export function flowsRehash(capacity: i32, k0: u64, k1: u64): i32 {
  const oldBase = flowBase;
  const oldBytes = flowBytes;
  const oldBuckets = <u32>flowCapacity / <u32>FLOW_BUCKET_WAYS;
  const newBytes = flowTableBytes(capacity);
  const base = takeRegion(newBytes);
  if (base == 0) return -1;
  flowBase = base;
  flowBytes = newBytes;
  flowCapacity = capacity;
  bucketMask = <u32>(capacity / FLOW_BUCKET_WAYS - 1);
  flowUsed = 0;
  let lost = 0;
  for (let b: u32 = 0; b < oldBuckets; b++) {
    const h = oldBase + <usize>b * <usize>BUCKET_BYTES;
    for (let way: usize = 0; way < <usize>FLOW_BUCKET_WAYS; way++) {
      if (load<u16>(h + (way << 1)) == 0 || expiredWay(h, way)) continue;
      const line = h + <usize>HEADER_BYTES + way * <usize>ENTRY_BYTES;
      const e = insertAt(line, keyHash(line, k0, k1), <i32>load<u16>(line + E_RULE), <i32>load<u16>(line + E_BACKEND),
        load<u8>(h + H_STATE + way), load<u8>(h + H_IDLE + way), load<u32>(h + H_SEEN + (way << 2)), false, false);
      if (e == 0) lost++; // its link was reset by writeEntry: pairs age apart from now on
    }
  }
  giveRegion(oldBase, oldBytes);
  return lost;
}
