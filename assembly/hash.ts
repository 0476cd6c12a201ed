// Flow keys and the keyed hash of the packet path.
//
// A flow key is five 64-bit words at an address (a Packet record starts with one, a
// flow-table entry starts with one):
//
//   w0, w1  source address      IPv4: w0 = address bytes as a little-endian u32, w1 = 0
//   w2, w3  destination address IPv6: the 16 bytes as two little-endian u64
//   w4      sport | dport << 16 | proto << 32 | family << 40 (| REPLY_MARK | FRAGMENT_MARK)
//
// Wasm is little-endian on every engine, so the words — and every hash of them — are
// the same in V8, wasmtime and a wasm2c native build. Distribution modes zero the
// fields they ignore; symmetric mode swaps (w0, w1, sport) with (w2, w3, dport) when the
// source sorts after the destination, so both directions of a flow give one key.
//
// The hash is SipHash-1-3 (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
// INDOCRYPT 2012; 1 compression and 3 finalization rounds, the variant Rust's HashMap
// and CPython use against hash flooding) keyed with the configuration's 128-bit
// `hashKey`. Without the key, nobody can compute which flows share a flow-table bucket,
// a tag or a Maglev slot, so nobody can aim packets at a chosen flow's entry or
// backend: the attack the unkeyed MurmurHash3 mix used before allowed (its per-word
// steps could be inverted, so that two IPv6 sources collided under every seed).
//
// The message hashed is the key's bytes: 16 for IPv4 (source, destination, w4) and 40
// for IPv6 (w0..w4); SipHash's final block carries the length, so the two never meet.

import { DIST_SOURCE_IP, DIST_SOURCE_IP_PROTOCOL, UNKEYED_HASH } from "./consts";
import { Packet } from "./packet";

/** Bytes of a flow key. */
export const KEY_BYTES: i32 = 40;

/** w4 marker of a backend's reply entry (reverse NAT): never set in a flow key. */
export const REPLY_MARK: u64 = 1 << 48;
/** w4 marker of a fragment entry: never set in a flow key. */
export const FRAGMENT_MARK: u64 = 1 << 49;

// ---- SipHash-1-3 ---------------------------------------------------------------------

/**
 * SipHash-1-3 of `words` message words at `m` followed by the final block holding the
 * message length `len` (bytes) in its top byte and `tail` (the last len % 8 bytes,
 * little-endian) below it (configuration time and tests: any length).
 */
function sip13(k0: u64, k1: u64, m: usize, words: i32, len: i32, tail: u64): u64 {
  let v0: u64 = k0 ^ 0x736f6d6570736575;
  let v1: u64 = k1 ^ 0x646f72616e646f6d;
  let v2: u64 = k0 ^ 0x6c7967656e657261;
  let v3: u64 = k1 ^ 0x7465646279746573;
  // Compression: one SipRound per block; the last block is the length block.
  for (let i = 0; i <= words; i++) {
    const x: u64 = i < words ? load<u64>(m + (<usize>i << 3)) : ((<u64>len << 56) | tail);
    v3 ^= x;
    v0 += v1; v1 = rotl<u64>(v1, 13); v1 ^= v0; v0 = rotl<u64>(v0, 32);
    v2 += v3; v3 = rotl<u64>(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl<u64>(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl<u64>(v1, 17); v1 ^= v2; v2 = rotl<u64>(v2, 32);
    v0 ^= x;
  }
  // Finalization: three SipRounds.
  v2 ^= 0xff;
  for (let r = 0; r < 3; r++) {
    v0 += v1; v1 = rotl<u64>(v1, 13); v1 ^= v0; v0 = rotl<u64>(v0, 32);
    v2 += v3; v3 = rotl<u64>(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl<u64>(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl<u64>(v1, 17); v1 ^= v2; v2 = rotl<u64>(v2, 32);
  }
  return v0 ^ v1 ^ v2 ^ v3;
}

/** SipHash-1-3 of the `len` bytes at `p` under the key (k0, k1) (configuration time, tests). */
export function sipHash13(p: usize, len: i32, k0: u64, k1: u64): u64 {
  const words = len >> 3;
  let tail: u64 = 0;
  for (let i = words << 3, s: u64 = 0; i < len; i++, s += 8) tail |= (<u64>load<u8>(p + <usize>i)) << s;
  return sip13(k0, k1, p, words, len, tail);
}

/**
 * The keyed hash of the flow key at `key`: SipHash-1-3 of its 16 (IPv4) or 40 bytes.
 * The packet path's SipHash, written out for those two lengths: the state stays in
 * locals, with no loop and no message in memory (each block is one SipRound between
 * `v3 ^= m` and `v0 ^= m`; then three finalization rounds).
 */
export function keyHash(key: usize, k0: u64, k1: u64): u64 {
  return keyHashInline(key, k0, k1);
}

/** keyHash, inlined where it is on every packet's path (classify). */
@inline export function keyHashInline(key: usize, k0: u64, k1: u64): u64 {
  if (UNKEYED_HASH) {
    // Benchmark builds only (consts.ts): the old unkeyed mix, to measure SipHash's cost.
    let h = k0 ^ 40;
    h = mixWord(h, load<u64>(key));
    h = mixWord(h, load<u64>(key, 8));
    h = mixWord(h, load<u64>(key, 16));
    h = mixWord(h, load<u64>(key, 24));
    h = mixWord(h, load<u64>(key, 32));
    return fmix64(h);
  }
  let v0: u64 = k0 ^ 0x736f6d6570736575;
  let v1: u64 = k1 ^ 0x646f72616e646f6d;
  let v2: u64 = k0 ^ 0x6c7967656e657261;
  let v3: u64 = k1 ^ 0x7465646279746573;
  let m: u64;
  const w4 = load<u64>(key, 32);
  if (((w4 >> 40) & 0xff) == 4) {
    m = load<u64>(key) | (load<u64>(key, 16) << 32);
    v3 ^= m;
    v0 += v1; v1 = rotl<u64>(v1, 13); v1 ^= v0; v0 = rotl<u64>(v0, 32);
    v2 += v3; v3 = rotl<u64>(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl<u64>(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl<u64>(v1, 17); v1 ^= v2; v2 = rotl<u64>(v2, 32);
    v0 ^= m;
    m = w4;
    v3 ^= m;
    v0 += v1; v1 = rotl<u64>(v1, 13); v1 ^= v0; v0 = rotl<u64>(v0, 32);
    v2 += v3; v3 = rotl<u64>(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl<u64>(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl<u64>(v1, 17); v1 ^= v2; v2 = rotl<u64>(v2, 32);
    v0 ^= m;
    m = <u64>16 << 56;
    v3 ^= m;
    v0 += v1; v1 = rotl<u64>(v1, 13); v1 ^= v0; v0 = rotl<u64>(v0, 32);
    v2 += v3; v3 = rotl<u64>(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl<u64>(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl<u64>(v1, 17); v1 ^= v2; v2 = rotl<u64>(v2, 32);
    v0 ^= m;
  } else {
    m = load<u64>(key);
    v3 ^= m;
    v0 += v1; v1 = rotl<u64>(v1, 13); v1 ^= v0; v0 = rotl<u64>(v0, 32);
    v2 += v3; v3 = rotl<u64>(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl<u64>(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl<u64>(v1, 17); v1 ^= v2; v2 = rotl<u64>(v2, 32);
    v0 ^= m;
    m = load<u64>(key, 8);
    v3 ^= m;
    v0 += v1; v1 = rotl<u64>(v1, 13); v1 ^= v0; v0 = rotl<u64>(v0, 32);
    v2 += v3; v3 = rotl<u64>(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl<u64>(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl<u64>(v1, 17); v1 ^= v2; v2 = rotl<u64>(v2, 32);
    v0 ^= m;
    m = load<u64>(key, 16);
    v3 ^= m;
    v0 += v1; v1 = rotl<u64>(v1, 13); v1 ^= v0; v0 = rotl<u64>(v0, 32);
    v2 += v3; v3 = rotl<u64>(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl<u64>(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl<u64>(v1, 17); v1 ^= v2; v2 = rotl<u64>(v2, 32);
    v0 ^= m;
    m = load<u64>(key, 24);
    v3 ^= m;
    v0 += v1; v1 = rotl<u64>(v1, 13); v1 ^= v0; v0 = rotl<u64>(v0, 32);
    v2 += v3; v3 = rotl<u64>(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl<u64>(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl<u64>(v1, 17); v1 ^= v2; v2 = rotl<u64>(v2, 32);
    v0 ^= m;
    m = w4;
    v3 ^= m;
    v0 += v1; v1 = rotl<u64>(v1, 13); v1 ^= v0; v0 = rotl<u64>(v0, 32);
    v2 += v3; v3 = rotl<u64>(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl<u64>(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl<u64>(v1, 17); v1 ^= v2; v2 = rotl<u64>(v2, 32);
    v0 ^= m;
    m = <u64>40 << 56;
    v3 ^= m;
    v0 += v1; v1 = rotl<u64>(v1, 13); v1 ^= v0; v0 = rotl<u64>(v0, 32);
    v2 += v3; v3 = rotl<u64>(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl<u64>(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl<u64>(v1, 17); v1 ^= v2; v2 = rotl<u64>(v2, 32);
    v0 ^= m;
  }
  v2 ^= 0xff;
  v0 += v1; v1 = rotl<u64>(v1, 13); v1 ^= v0; v0 = rotl<u64>(v0, 32);
  v2 += v3; v3 = rotl<u64>(v3, 16); v3 ^= v2;
  v0 += v3; v3 = rotl<u64>(v3, 21); v3 ^= v0;
  v2 += v1; v1 = rotl<u64>(v1, 17); v1 ^= v2; v2 = rotl<u64>(v2, 32);
  v0 += v1; v1 = rotl<u64>(v1, 13); v1 ^= v0; v0 = rotl<u64>(v0, 32);
  v2 += v3; v3 = rotl<u64>(v3, 16); v3 ^= v2;
  v0 += v3; v3 = rotl<u64>(v3, 21); v3 ^= v0;
  v2 += v1; v1 = rotl<u64>(v1, 17); v1 ^= v2; v2 = rotl<u64>(v2, 32);
  v0 += v1; v1 = rotl<u64>(v1, 13); v1 ^= v0; v0 = rotl<u64>(v0, 32);
  v2 += v3; v3 = rotl<u64>(v3, 16); v3 ^= v2;
  v0 += v3; v3 = rotl<u64>(v3, 21); v3 ^= v0;
  v2 += v1; v1 = rotl<u64>(v1, 17); v1 ^= v2; v2 = rotl<u64>(v2, 32);
  return v0 ^ v1 ^ v2 ^ v3;
}

// ---- Configuration-time hashes (not keyed: their inputs come from the configuration) --

@inline function mixWord(h: u64, w: u64): u64 {
  let k = w * 0x87c37b91114253d5;
  k = rotl<u64>(k, 31);
  k *= 0x4cf5ad432745937f;
  h ^= k;
  h = rotl<u64>(h, 27);
  return h * 5 + 0x52dce729;
}

/** MurmurHash3's 64-bit finalizer (the address indexes of rules.ts). */
@inline export function fmix64(h: u64): u64 {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccd;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53;
  h ^= h >> 33;
  return h;
}

/** MurmurHash3-style hash of `len` bytes at `p` (backend names for Maglev). */
export function hashBytes(p: usize, len: i32, seed: u64): u64 {
  let h = seed ^ <u64>len;
  let i = 0;
  for (; i + 8 <= len; i += 8) h = mixWord(h, load<u64>(p + <usize>i));
  let tail: u64 = 0;
  for (let s: u64 = 0; i < len; i++, s += 8) tail |= (<u64>load<u8>(p + <usize>i)) << s;
  h = mixWord(h, tail);
  return fmix64(h);
}

// ---- Keys -------------------------------------------------------------------------------

@inline function addressWords(key: usize, family: u8, at: usize, offset: usize): void {
  if (family == 4) {
    store<u64>(key + offset, <u64>load<u32>(at));
    store<u64>(key + offset, 0, 8);
  } else {
    store<u64>(key + offset, load<u64>(at));
    store<u64>(key + offset, load<u64>(at, 8), 8);
  }
}

/**
 * Writes the packet's flow key (what the flow table tracks) into its record, in
 * canonical order when `symmetric`. Returns whether the endpoints were swapped: both
 * directions of a flow give one key and opposite answers.
 */
export function flowKey(pk: Packet, symmetric: bool): bool {
  const key = changetype<usize>(pk);
  const family = pk.keyFamily;
  let w0: u64, w1: u64, w2: u64, w3: u64;
  if (family == 4) {
    w0 = <u64>load<u32>(pk.keySrc);
    w1 = 0;
    w2 = <u64>load<u32>(pk.keyDst);
    w3 = 0;
  } else {
    w0 = load<u64>(pk.keySrc);
    w1 = load<u64>(pk.keySrc, 8);
    w2 = load<u64>(pk.keyDst);
    w3 = load<u64>(pk.keyDst, 8);
  }
  let sport = <u64>pk.keySport;
  let dport = <u64>pk.keyDport;
  // Source sorts after destination → swap endpoints.
  const swap = symmetric && (w0 > w2 || (w0 == w2 && (w1 > w3 || (w1 == w3 && sport > dport))));
  if (swap) {
    let t = w0; w0 = w2; w2 = t;
    t = w1; w1 = w3; w3 = t;
    t = sport; sport = dport; dport = t;
  }
  store<u64>(key, w0);
  store<u64>(key, w1, 8);
  store<u64>(key, w2, 16);
  store<u64>(key, w3, 24);
  store<u64>(key, sport | (dport << 16) | (<u64>pk.keyProto << 32) | (<u64>family << 40), 32);
  pk.swapped = swap;
  return swap;
}

/**
 * Writes at `key` the key of a reply entry: the backend's (lo, hi):bport towards the
 * client endpoint of the packet's flow key (call while pk holds the client's flow).
 */
export function replyKey(pk: Packet, key: usize, lo: u64, hi: u64, bport: u16): void {
  const family = pk.keyFamily;
  const sport = pk.keySport;
  addressWords(key, family, pk.keySrc, 16);
  store<u64>(key, lo);
  store<u64>(key, hi, 8);
  store<u64>(key, <u64>bport | (<u64>sport << 16) | (<u64>pk.keyProto << 32) | (<u64>family << 40) | REPLY_MARK, 32);
}

/** Writes at `key` the packet's own directional flow key marked as a reply (a backend's packet). */
export function ownReplyKey(pk: Packet, key: usize): void {
  addressWords(key, pk.keyFamily, pk.keySrc, 0);
  addressWords(key, pk.keyFamily, pk.keyDst, 16);
  store<u64>(key, <u64>pk.keySport | (<u64>pk.keyDport << 16) | (<u64>pk.keyProto << 32)
    | (<u64>pk.keyFamily << 40) | REPLY_MARK, 32);
}

/** Writes at `key` the key of the packet's fragment entry: (src, dst, proto, IP ID), directional. */
export function fragmentKey(pk: Packet, key: usize): void {
  addressWords(key, pk.family, pk.src, 0);
  addressWords(key, pk.family, pk.dst, 16);
  store<u64>(key, <u64>pk.fragId | (<u64>pk.proto << 32) | (<u64>pk.family << 40) | FRAGMENT_MARK, 32);
}

/**
 * Hash for backend selection: the key at `key` reduced to the rule's distribution mode
 * (the key is left as it was).
 */
export function distributionHash(key: usize, k0: u64, k1: u64, mode: u8): u64 {
  const full = load<u64>(key, 32);
  let w4 = full;
  if (mode == DIST_SOURCE_IP_PROTOCOL) {
    w4 &= ~(<u64>0xffffffff);
  } else if (mode == DIST_SOURCE_IP) {
    w4 &= ~(<u64>0xff_ffffffff);
  }
  store<u64>(key, w4, 32);
  const h = keyHash(key, k0, k1);
  store<u64>(key, full, 32);
  return h;
}
