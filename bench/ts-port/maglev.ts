// Maglev tables as assembly/maglev.ts builds them (Eisenbud et al., NSDI 2016, §3.4,
// with weights by turns), and the packet-path lookup: table[(hash >> 32) × M >> 32].

import { hashBytes, R } from './hash';

const OFFSET_SEED_LO = 0x65763031, OFFSET_SEED_HI = 0x6d61676c; // "maglev01"
const SKIP_SEED_LO = 0x65763032, SKIP_SEED_HI = 0x6d61676c;     // "maglev02"

export class Pool {
  name = '';
  m = 0;
  members: number[] = [];
  offsets: number[] = [];
  skips: number[] = [];
  table = new Uint16Array(0);
  eligible = 0;
}

/** (hi:lo) mod m, exactly, for m < 2^24 (configuration time). */
function mod64(lo: number, hi: number, m: number): number {
  let r = hi % m;
  r = (r * 65536 + (lo >>> 16)) % m;
  return (r * 65536 + (lo & 0xffff)) % m;
}

export function preparePool(pool: Pool, names: string[]): void {
  const enc = new TextEncoder();
  pool.offsets = [];
  pool.skips = [];
  for (const b of pool.members) {
    const bytes = enc.encode(names[b]);
    hashBytes(bytes, OFFSET_SEED_LO, OFFSET_SEED_HI);
    pool.offsets.push(mod64(R[0], R[1], pool.m));
    hashBytes(bytes, SKIP_SEED_LO, SKIP_SEED_HI);
    pool.skips.push(mod64(R[0], R[1], pool.m - 1) + 1);
  }
}

/** Builds `pool.table` over members with weight > 0 that are up. Returns the member count. */
export function buildTable(pool: Pool, weights: number[], states: number[]): number {
  const m = pool.m;
  const member: number[] = [], next: number[] = [], skip: number[] = [], weight: number[] = [], target: number[] = [];
  let maxWeight = 0;
  pool.members.forEach((b, i) => {
    const wt = weights[b];
    if (wt <= 0 || states[b] !== 0) return;
    member.push(b); next.push(pool.offsets[i]); skip.push(pool.skips[i]); weight.push(wt); target.push(0);
    if (wt > maxWeight) maxWeight = wt;
  });
  const out = new Uint16Array(m).fill(0xffff);
  const n = member.length;
  pool.table = out;
  pool.eligible = n;
  if (n === 0) return 0;
  let filled = 0;
  for (let round = 0; filled < m; round++) {
    for (let k = 0; k < n; k++) {
      if (round * weight[k] < target[k]) continue;
      target[k] += maxWeight;
      const s = skip[k];
      let c = next[k];
      while (out[c] !== 0xffff) {
        c += s;
        if (c >= m) c -= m;
      }
      out[c] = member[k];
      c += s;
      if (c >= m) c -= m;
      next[k] = c;
      if (++filled === m) break;
    }
  }
  return n;
}

/** Backend for a hash whose high 32 bits are `hashHi`: table[floor(hashHi × M / 2^32)]. */
export function lookup(table: Uint16Array, m: number, hashHi: number): number {
  // hashHi × M can exceed 2^53: split hashHi in 16-bit halves to keep every step exact.
  const t = (hashHi >>> 16) * m + Math.floor(((hashHi & 0xffff) * m) / 65536);
  return table[Math.floor(t / 65536)];
}
