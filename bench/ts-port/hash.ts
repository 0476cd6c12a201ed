// The hashes of assembly/hash.ts in 32-bit halves, with no BigInt on the packet path: the
// keyed flow hash (SipHash-1-3, whose 64-bit additions, rotations and xors are done on
// pairs of int32s), and the unkeyed MurmurHash3-style mixes the configuration uses (rule
// indexes, Maglev): JavaScript numbers hold 53-bit integers and Math.imul gives the low
// 32 bits of a 32 × 32 product, so a 64-bit multiply is four 16 × 16 partial products
// for the low word's carry plus two imuls. Results come back in the registers R[0] (low)
// and R[1] (high).
//
// Key words w0..w4 (64-bit each) are kept as ten u32s (lo, hi pairs), laid out as in a
// flow-table entry: `w` holds the packet's flow key, `ws` a second key (fragment entries).

/** Result registers: R[0] low, R[1] high half. A typed array, not two `let`s: V8 would box
 *  every u32 ≥ 2^30 stored into a module variable as a heap number (an allocation). */
export const R = new Uint32Array(2);

/** The flow key: w[2k] = low, w[2k + 1] = high half of word k. */
export const w = new Uint32Array(10);
/** A second key, the datapath's scratch key (fragment entries). */
export const ws = new Uint32Array(10);

const C1_LO = 0x114253d5, C1_HI = 0x87c37b91;
const C2_LO = 0x2745937f, C2_HI = 0x4cf5ad43;
const F1_LO = 0xed558ccd, F1_HI = 0xff51afd7;
const F2_LO = 0x1a85ec53, F2_HI = 0xc4ceb9fe;

/** (aHi:aLo) × (bHi:bLo) mod 2^64 → R. */
export function mul64(aLo: number, aHi: number, bLo: number, bHi: number): void {
  const a0 = aLo & 0xffff, a1 = aLo >>> 16, b0 = bLo & 0xffff, b1 = bLo >>> 16;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  R[0] = (((mid & 0xffff) << 16) | (p00 & 0xffff)) >>> 0;
  R[1] = (p11 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16) + Math.imul(aLo, bHi) + Math.imul(aHi, bLo)) >>> 0;
}

/** MurmurHash3's 64-bit block step: h = rotl(h ^ mix(k), 27) × 5 + 0x52dce729. */
function mixWord(hLo: number, hHi: number, kLo: number, kHi: number): void {
  mul64(kLo, kHi, C1_LO, C1_HI);
  // rotl 31
  const tLo = ((R[0] << 31) | (R[1] >>> 1)) >>> 0;
  const tHi = ((R[1] << 31) | (R[0] >>> 1)) >>> 0;
  mul64(tLo, tHi, C2_LO, C2_HI);
  hLo = (hLo ^ R[0]) >>> 0;
  hHi = (hHi ^ R[1]) >>> 0;
  // rotl 27
  const uLo = ((hLo << 27) | (hHi >>> 5)) >>> 0;
  const uHi = ((hHi << 27) | (hLo >>> 5)) >>> 0;
  // × 5 + 0x52dce729
  const lo5 = uLo * 5; // < 2^35, exact
  const carry = Math.floor(lo5 / 4294967296);
  const lo = (lo5 >>> 0) + 0x52dce729;
  R[0] = lo >>> 0;
  R[1] = (Math.imul(uHi, 5) + carry + (lo > 0xffffffff ? 1 : 0)) >>> 0;
}

/** fmix64 of (hHi:hLo) → R. */
export function fmix64(hLo: number, hHi: number): void {
  hLo = (hLo ^ (hHi >>> 1)) >>> 0;
  mul64(hLo, hHi, F1_LO, F1_HI);
  hLo = (R[0] ^ (R[1] >>> 1)) >>> 0;
  mul64(hLo, R[1], F2_LO, F2_HI);
  R[0] = (R[0] ^ (R[1] >>> 1)) >>> 0;
}

// ---- SipHash-1-3: the keyed flow hash (assembly/hash.ts keyHash) --------------------------
//
// The 64-bit state words v0..v3 are pairs of int32 locals (a0:a1, b0:b1, c0:c1, d0:d1 =
// low:high), kept int32 throughout (`|`, `^`, `<<`, `>>>` on int32s) so that V8 keeps
// them in registers, never as heap numbers. Per 64-bit operation:
//   v += u   lo = (vlo + ulo) | 0;  hi = (vhi + uhi + carry) | 0, with the carry out of
//            bit 31 computed without a branch (a 50/50 branch mispredicts half the time):
//            carry = ((vlo & ulo) | ((vlo | ulo) & ~lo)) >>> 31
//   rotl n   (0 < n < 32)  lo' = lo << n | hi >>> 32 − n;  hi' = hi << n | lo >>> 32 − n
//   rotl 32  swaps the halves
// which is exact: each half is a 32-bit value, and the carry is the unsigned overflow of
// the low half.

/** SipHash's initial state for the configured key: v0..v3 as (lo, hi) int32 pairs. */
const V = new Int32Array(8);
/** The message blocks of one key, length block included (lo, hi int32 pairs). */
const MSG = new Int32Array(12);

/** Sets the SipHash key: k0 = (k0Hi:k0Lo), k1 = (k1Hi:k1Lo), the words SipHash reads. */
export function setHashKey(k0Lo: number, k0Hi: number, k1Lo: number, k1Hi: number): void {
  V[0] = k0Lo ^ 0x70736575; V[1] = k0Hi ^ 0x736f6d65; // v0 = k0 ^ "somepseu"
  V[2] = k1Lo ^ 0x6e646f6d; V[3] = k1Hi ^ 0x646f7261; // v1 = k1 ^ "dorandom"
  V[4] = k0Lo ^ 0x6e657261; V[5] = k0Hi ^ 0x6c796765; // v2 = k0 ^ "lygenera"
  V[6] = k1Lo ^ 0x79746573; V[7] = k1Hi ^ 0x74656462; // v3 = k1 ^ "tedbytes"
}

/**
 * The keyed hash of the flow key in `k` (ten u32s: w0..w4 as lo, hi pairs, as in
 * assembly/hash.ts) → R: SipHash-1-3 of its 16 bytes (IPv4: w0 | w2 << 32, then w4) or
 * its 40 bytes (IPv6: w0..w4), then the length block (length << 56), gathered in MSG. One SipRound per
 * block between `v3 ^= m` and `v0 ^= m`; then `v2 ^= 0xff` and three rounds. Locals
 * only: no allocation and no call on the packet path.
 */
export function keyHash(k: Uint32Array): void {
  let a0 = V[0], a1 = V[1], b0 = V[2], b1 = V[3], c0 = V[4], c1 = V[5], d0 = V[6], d1 = V[7];
  let t = 0, m0 = 0, m1 = 0;
  let blocks = 6;
  if (((k[9] >>> 8) & 0xff) === 4) { // w4's family byte: IPv4, 16 bytes
    MSG[0] = k[0]; MSG[1] = k[4]; MSG[2] = k[8]; MSG[3] = k[9]; MSG[4] = 0; MSG[5] = 16 << 24;
    blocks = 3;
  } else { // IPv6, 40 bytes
    for (let i = 0; i < 10; i++) MSG[i] = k[i];
    MSG[10] = 0; MSG[11] = 40 << 24;
  }
  for (let i = 0; i < blocks; i++) {
    m0 = MSG[2 * i]; m1 = MSG[2 * i + 1];
    d0 ^= m0; d1 ^= m1;
    // v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32)
    t = (a0 + b0) | 0; a1 = (a1 + b1 + (((a0 & b0) | ((a0 | b0) & ~t)) >>> 31)) | 0; a0 = t;
    t = (b0 << 13) | (b1 >>> 19); b1 = ((b1 << 13) | (b0 >>> 19)) ^ a1; b0 = t ^ a0;
    t = a0; a0 = a1; a1 = t;
    // v2 += v3; v3 = rotl(v3, 16); v3 ^= v2
    t = (c0 + d0) | 0; c1 = (c1 + d1 + (((c0 & d0) | ((c0 | d0) & ~t)) >>> 31)) | 0; c0 = t;
    t = (d0 << 16) | (d1 >>> 16); d1 = ((d1 << 16) | (d0 >>> 16)) ^ c1; d0 = t ^ c0;
    // v0 += v3; v3 = rotl(v3, 21); v3 ^= v0
    t = (a0 + d0) | 0; a1 = (a1 + d1 + (((a0 & d0) | ((a0 | d0) & ~t)) >>> 31)) | 0; a0 = t;
    t = (d0 << 21) | (d1 >>> 11); d1 = ((d1 << 21) | (d0 >>> 11)) ^ a1; d0 = t ^ a0;
    // v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32)
    t = (c0 + b0) | 0; c1 = (c1 + b1 + (((c0 & b0) | ((c0 | b0) & ~t)) >>> 31)) | 0; c0 = t;
    t = (b0 << 17) | (b1 >>> 15); b1 = ((b1 << 17) | (b0 >>> 15)) ^ c1; b0 = t ^ c0;
    t = c0; c0 = c1; c1 = t;
    a0 ^= m0; a1 ^= m1;
  }
  c0 ^= 0xff;
  for (let r = 0; r < 3; r++) {
    t = (a0 + b0) | 0; a1 = (a1 + b1 + (((a0 & b0) | ((a0 | b0) & ~t)) >>> 31)) | 0; a0 = t;
    t = (b0 << 13) | (b1 >>> 19); b1 = ((b1 << 13) | (b0 >>> 19)) ^ a1; b0 = t ^ a0;
    t = a0; a0 = a1; a1 = t;
    t = (c0 + d0) | 0; c1 = (c1 + d1 + (((c0 & d0) | ((c0 | d0) & ~t)) >>> 31)) | 0; c0 = t;
    t = (d0 << 16) | (d1 >>> 16); d1 = ((d1 << 16) | (d0 >>> 16)) ^ c1; d0 = t ^ c0;
    t = (a0 + d0) | 0; a1 = (a1 + d1 + (((a0 & d0) | ((a0 | d0) & ~t)) >>> 31)) | 0; a0 = t;
    t = (d0 << 21) | (d1 >>> 11); d1 = ((d1 << 21) | (d0 >>> 11)) ^ a1; d0 = t ^ a0;
    t = (c0 + b0) | 0; c1 = (c1 + b1 + (((c0 & b0) | ((c0 | b0) & ~t)) >>> 31)) | 0; c0 = t;
    t = (b0 << 17) | (b1 >>> 15); b1 = ((b1 << 17) | (b0 >>> 15)) ^ c1; b0 = t ^ c0;
    t = c0; c0 = c1; c1 = t;
  }
  R[0] = a0 ^ b0 ^ c0 ^ d0;
  R[1] = a1 ^ b1 ^ c1 ^ d1;
}

/**
 * SipHash-1-3 of `bytes` under (k0, k1) in BigInt, straight from the definition: a
 * cross-check of keyHash for tests, never on the packet path.
 */
export function sipHash13Slow(bytes: Uint8Array, k0: bigint, k1: bigint): bigint {
  const M = (1n << 64n) - 1n;
  const rotl = (x: bigint, n: bigint): bigint => ((x << n) | (x >> (64n - n))) & M;
  let v0 = k0 ^ 0x736f6d6570736575n;
  let v1 = k1 ^ 0x646f72616e646f6dn;
  let v2 = k0 ^ 0x6c7967656e657261n;
  let v3 = k1 ^ 0x7465646279746573n;
  const round = (): void => {
    v0 = (v0 + v1) & M; v1 = rotl(v1, 13n); v1 ^= v0; v0 = rotl(v0, 32n);
    v2 = (v2 + v3) & M; v3 = rotl(v3, 16n); v3 ^= v2;
    v0 = (v0 + v3) & M; v3 = rotl(v3, 21n); v3 ^= v0;
    v2 = (v2 + v1) & M; v1 = rotl(v1, 17n); v1 ^= v2; v2 = rotl(v2, 32n);
  };
  const len = bytes.length;
  const words = len >> 3;
  for (let i = 0; i <= words; i++) {
    let x = 0n;
    const from = 8 * i, to = i < words ? from + 8 : len;
    for (let j = to - 1; j >= from; j--) x = (x << 8n) | BigInt(bytes[j]);
    if (i === words) x |= BigInt(len & 255) << 56n;
    v3 ^= x; round(); v0 ^= x;
  }
  v2 ^= 0xffn;
  round(); round(); round();
  return v0 ^ v1 ^ v2 ^ v3;
}

/**
 * fmix64 of (hHi:hLo) → R, inline (the packet path's rule lookup hashes its key with it).
 */
export function fmix64Inline(hLo: number, hHi: number): void {
  let a0 = 0, a1 = 0, p00 = 0, p01 = 0, p10 = 0, p11 = 0, mid = 0, tLo = 0, tHi = 0;
  hLo = (hLo ^ (hHi >>> 1)) >>> 0;
  a0 = hLo & 0xffff; a1 = hLo >>> 16;
  p00 = a0 * 0x8ccd; p01 = a0 * 0xed55; p10 = a1 * 0x8ccd; p11 = a1 * 0xed55;
  mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  tLo = ((mid << 16) | (p00 & 0xffff)) >>> 0;
  tHi = (p11 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16) + Math.imul(hLo, F1_HI) + Math.imul(hHi, F1_LO)) >>> 0;
  hLo = (tLo ^ (tHi >>> 1)) >>> 0;
  hHi = tHi;
  a0 = hLo & 0xffff; a1 = hLo >>> 16;
  p00 = a0 * 0xec53; p01 = a0 * 0x1a85; p10 = a1 * 0xec53; p11 = a1 * 0x1a85;
  mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  tLo = ((mid << 16) | (p00 & 0xffff)) >>> 0;
  tHi = (p11 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16) + Math.imul(hLo, F2_HI) + Math.imul(hHi, F2_LO)) >>> 0;
  R[0] = (tLo ^ (tHi >>> 1)) >>> 0;
  R[1] = tHi;
}

/** Hash of bytes (configuration time: backend names for Maglev) → R. */
export function hashBytes(bytes: Uint8Array, seedLo: number, seedHi: number): void {
  const len = bytes.length;
  let hLo = (seedLo ^ len) >>> 0;
  let hHi = seedHi;
  let i = 0;
  const word = (at: number, n: number): [number, number] => {
    let lo = 0, hi = 0;
    for (let j = 0; j < n; j++) {
      if (j < 4) lo = (lo | (bytes[at + j] << (8 * j))) >>> 0;
      else hi = (hi | (bytes[at + j] << (8 * (j - 4)))) >>> 0;
    }
    return [lo, hi];
  };
  for (; i + 8 <= len; i += 8) {
    const [lo, hi] = word(i, 8);
    mixWord(hLo, hHi, lo, hi);
    hLo = R[0]; hHi = R[1];
  }
  const [lo, hi] = word(i, len - i);
  mixWord(hLo, hHi, lo, hi);
  fmix64(R[0], R[1]);
}
