// Maglev consistent hashing per backend pool.
// Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer",
// NSDI 2016, §3.4 "Consistent Hashing" and Pseudocode 1.
//
// Control plane builds, data plane indexes: tables are built here, outside the packet
// path, into a spare buffer and swapped in; the packet path is
// `table[((hash >> 32) * M) >> 32]`, the hash's high 32 bits scaled onto [0, M) by a
// multiply and a shift instead of `hash % M` (`lookup`, at the end of this file).

import { MAX_BACKENDS, NONE } from "./consts";
import { hashBytes } from "./hash";

/** Seeds for the two name hashes of §3.4 (offset and skip). Fixed, so every instance
 *  and engine builds the byte-identical table for the same pool. */
const OFFSET_SEED: u64 = 0x6d61676c65763031; // "maglev01"
const SKIP_SEED: u64 = 0x6d61676c65763032;   // "maglev02"

/** A pool's backends and its lookup tables. Table entries are global backend indices (u16). */
export class Pool {
  name: string = "";
  /** Table size M (prime). */
  m: i32 = 0;
  /** Global backend indices of the members, sorted by backend name (the stable key). */
  members: StaticArray<i32> = new StaticArray<i32>(0);
  /** Per member: permutation offset and skip (§3.4: offset = h1 % M, skip = h2 % (M−1) + 1). */
  offsets: StaticArray<u32> = new StaticArray<u32>(0);
  skips: StaticArray<u32> = new StaticArray<u32>(0);
  /** Table over the eligible members (up, not draining, weight > 0): new flows go here. */
  table: usize = 0;
  /** Table over every member with weight > 0 (failOpen when none is eligible). */
  tableAll: usize = 0;
  /** Build buffer; swapped with `table` after each rebuild. */
  spare: usize = 0;
  /** Members in `table`. 0 means no healthy backend. */
  eligible: i32 = 0;
  /** How long a draining member keeps its flows (milliseconds; 0 = until they end). */
  drainMs: f64 = 0;
  /**
   * Handover (docs/fleet.md): after a backend-set change, `spare` holds the table from
   * before it. For `handoverMs` after the change (the flow clock's tick at the change is
   * `changedTick`), a mid-stream TCP packet of a flow this instance does not track keeps
   * the backend that previous table gives it, if that backend is still up.
   */
  handoverMs: i32 = 0;
  previousValid: bool = false;
  changedTick: i32 = 0;
  /** Changed since the last batch: `changedTick` is set at the next batch's start. */
  changePending: bool = false;

  /** Fills offsets/skips from the members' names. */
  prepare(names: StaticArray<string>): void {
    const n = this.members.length;
    this.offsets = new StaticArray<u32>(n);
    this.skips = new StaticArray<u32>(n);
    const m = <u64>this.m;
    for (let i = 0; i < n; i++) {
      const bytes = String.UTF8.encode(unchecked(names[unchecked(this.members[i])]));
      const p = changetype<usize>(bytes);
      const len = bytes.byteLength;
      unchecked(this.offsets[i] = <u32>(hashBytes(p, len, OFFSET_SEED) % m));
      unchecked(this.skips[i] = <u32>(hashBytes(p, len, SKIP_SEED) % (m - 1) + 1));
    }
  }

  allocateTables(): void {
    const bytes = <usize>this.m << 1;
    this.table = heap.alloc(bytes);
    this.tableAll = heap.alloc(bytes);
    this.spare = heap.alloc(bytes);
  }

  freeTables(): void {
    if (this.table != 0) heap.free(this.table);
    if (this.tableAll != 0) heap.free(this.tableAll);
    if (this.spare != 0) heap.free(this.spare);
    this.table = 0;
    this.tableAll = 0;
    this.spare = 0;
  }
}

// Scratch for the build, sized for the largest pool (configuration time only).
const scratchNext = new StaticArray<u32>(MAX_BACKENDS);
const scratchSkip = new StaticArray<u32>(MAX_BACKENDS);
const scratchWeight = new StaticArray<u64>(MAX_BACKENDS);
const scratchTarget = new StaticArray<u64>(MAX_BACKENDS);
const scratchMember = new StaticArray<i32>(MAX_BACKENDS);

/**
 * Builds a Maglev table of `pool.m` u16 entries at `out` over the members for which
 * `weights[b] > 0` and (when `onlyUp`) `states[b] == 0` (up). Returns the member count.
 *
 * Pseudocode 1 of the paper, with two changes:
 * - No modulo per step: `next += skip; if (next >= M) next -= M` walks the same
 *   permutation (offset + j·skip) mod M incrementally.
 * - Integer weights by turns (as Envoy's maglev_lb.cc does): in round r, member k
 *   claims a slot when r·w_k ≥ target_k, then target_k += max w. A member of weight
 *   max w claims every round; one of weight max w / 3 every third round.
 */
export function buildTable(
  pool: Pool, out: usize, weights: StaticArray<i32>, states: StaticArray<u8>, onlyUp: bool,
): i32 {
  const m = pool.m;
  let n = 0;
  let maxWeight: u64 = 0;
  for (let i = 0, count = pool.members.length; i < count; i++) {
    const b = unchecked(pool.members[i]);
    const w = unchecked(weights[b]);
    if (w <= 0) continue;
    if (onlyUp && unchecked(states[b]) != 0) continue;
    unchecked(scratchMember[n] = b);
    unchecked(scratchNext[n] = pool.offsets[i]);
    unchecked(scratchSkip[n] = pool.skips[i]);
    unchecked(scratchWeight[n] = <u64>w);
    unchecked(scratchTarget[n] = 0);
    if (<u64>w > maxWeight) maxWeight = <u64>w;
    n++;
  }
  memory.fill(out, 0xff, <usize>m << 1); // 0xFFFF = empty (NONE)
  if (n == 0) return 0;

  let filled = 0;
  for (let round: u64 = 0; filled < m; round++) {
    for (let k = 0; k < n; k++) {
      if (round * unchecked(scratchWeight[k]) < unchecked(scratchTarget[k])) continue;
      unchecked(scratchTarget[k] += maxWeight);
      const skip = unchecked(scratchSkip[k]);
      let c = unchecked(scratchNext[k]);
      while (load<u16>(out + (<usize>c << 1)) != <u16>NONE) {
        c += skip;
        if (c >= <u32>m) c -= <u32>m;
      }
      store<u16>(out + (<usize>c << 1), <u16>unchecked(scratchMember[k]));
      c += skip;
      if (c >= <u32>m) c -= <u32>m;
      unchecked(scratchNext[k] = c);
      if (++filled == m) break;
    }
  }
  return n;
}

/**
 * Rebuilds `pool`'s table for new flows from the current weights and states, and with
 * `all` its failOpen table too (that one depends on weights only: configuration time).
 */
export function rebuildPool(pool: Pool, weights: StaticArray<i32>, states: StaticArray<u8>, all: bool): void {
  if (all) buildTable(pool, pool.tableAll, weights, states, false);
  // After a configuration's first build, `spare` is not a table yet; after a change of
  // the backend set (all = false), it is the previous one (the swap below).
  pool.previousValid = !all;
  const spare = pool.spare;
  pool.eligible = buildTable(pool, spare, weights, states, true);
  // Swap: the packet path reads pool.table, which is never half-built.
  pool.spare = pool.table;
  pool.table = spare;
}

/**
 * The packet-path lookup: backend index for `hash`, or NONE.
 * The slot is the high 32 bits of the hash scaled to [0, M) by a multiply and a shift
 * (Lemire's fast range reduction) instead of a 64-bit modulo: same uniformity, a
 * fraction of the cost.
 */
@inline export function lookup(table: usize, m: i32, hash: u64): i32 {
  const slot = ((hash >> 32) * <u64>m) >> 32;
  return <i32>load<u16>(table + (<usize>slot << 1));
}
