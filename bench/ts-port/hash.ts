// The keyed flow hash of assembly/hash.ts, in 32-bit halves: JavaScript numbers hold
// 53-bit integers and Math.imul gives the low 32 bits of a 32 × 32 product, so a 64-bit
// multiply is four 16 × 16 partial products for the low word's carry plus two imuls —
// no BigInt on the packet path. Results come back in the registers R[0] (low) and R[1] (high).
//
// Key words w0..w4 (64-bit each) are kept as ten u32s in `w` (lo, hi pairs), laid out as
// in the flow-table entry.

/** Result registers: R[0] low, R[1] high half. A typed array, not two `let`s: V8 would box
 *  every u32 ≥ 2^30 stored into a module variable as a heap number (an allocation). */
export const R = new Uint32Array(2);

/** The key: w[2k] = low, w[2k + 1] = high half of word k. */
export const w = new Uint32Array(10);

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

/**
 * Hash of the key words in `w` with the seed (seedHi:seedLo) → R. The packet path:
 * mixWord, mul64 and fmix64 written out inline with local variables only, because a
 * u32 ≥ 2^30 passed to a function V8 did not inline is boxed as a heap number (an
 * allocation per call, and garbage collections in the benchmark).
 */
export function hashKey(seedLo: number, seedHi: number): void {
  let hLo = (seedLo ^ 40) >>> 0;
  let hHi = seedHi >>> 0;
  let a0 = 0, a1 = 0, p00 = 0, p01 = 0, p10 = 0, p11 = 0, mid = 0, kLo = 0, kHi = 0, tLo = 0, tHi = 0;
  for (let k = 0; k < 10; k += 2) {
    kLo = w[k];
    kHi = w[k + 1];
    // k × C1
    a0 = kLo & 0xffff; a1 = kLo >>> 16;
    p00 = a0 * 0x53d5; p01 = a0 * 0x1142; p10 = a1 * 0x53d5; p11 = a1 * 0x1142;
    mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
    tLo = ((mid << 16) | (p00 & 0xffff)) >>> 0;
    tHi = (p11 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16) + Math.imul(kLo, C1_HI) + Math.imul(kHi, C1_LO)) >>> 0;
    // rotl 31
    kLo = ((tLo << 31) | (tHi >>> 1)) >>> 0;
    kHi = ((tHi << 31) | (tLo >>> 1)) >>> 0;
    // × C2
    a0 = kLo & 0xffff; a1 = kLo >>> 16;
    p00 = a0 * 0x937f; p01 = a0 * 0x2745; p10 = a1 * 0x937f; p11 = a1 * 0x2745;
    mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
    tLo = ((mid << 16) | (p00 & 0xffff)) >>> 0;
    tHi = (p11 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16) + Math.imul(kLo, C2_HI) + Math.imul(kHi, C2_LO)) >>> 0;
    // h ^= k; h = rotl(h, 27)
    hLo = (hLo ^ tLo) >>> 0;
    hHi = (hHi ^ tHi) >>> 0;
    tLo = ((hLo << 27) | (hHi >>> 5)) >>> 0;
    tHi = ((hHi << 27) | (hLo >>> 5)) >>> 0;
    // h × 5 + 0x52dce729
    p00 = tLo * 5;
    p01 = (p00 >>> 0) + 0x52dce729;
    hLo = p01 >>> 0;
    hHi = (Math.imul(tHi, 5) + Math.floor(p00 / 4294967296) + (p01 > 0xffffffff ? 1 : 0)) >>> 0;
  }
  // fmix64
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

/** The same hash through the helpers (configuration time, and a cross-check in tests). */
export function hashKeySlow(seedLo: number, seedHi: number): void {
  let hLo = (seedLo ^ 40) >>> 0;
  let hHi = seedHi;
  for (let k = 0; k < 10; k += 2) {
    mixWord(hLo, hHi, w[k], w[k + 1]);
    hLo = R[0]; hHi = R[1];
  }
  fmix64(hLo, hHi);
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
