// Flow-key hashing, keyed by the configured 64-bit seed.
//
// The key is five 64-bit words, built from the parser's key* globals:
//
//   w0, w1  source address      IPv4: w0 = address bytes as a little-endian u32, w1 = 0
//   w2, w3  destination address IPv6: the 16 bytes as two little-endian u64
//   w4      sport | dport << 16 | proto << 32 | family << 40
//
// Wasm is little-endian on every engine, so the words — and every hash of them — are
// the same in V8, wasmtime and a wasm2c native build. Distribution modes zero the
// fields they ignore; symmetric mode swaps (w0, w1, sport) with (w2, w3, dport) when the
// source sorts after the destination, so both directions of a flow give one key.
//
// The mixing is MurmurHash3's 64-bit block and finalisation steps (public domain):
// multiply-rotate per word, fmix64 at the end. No 128-bit multiply, which wasm lacks.

import { DIST_SOURCE_IP, DIST_SOURCE_IP_PROTOCOL } from "./consts";
import {
  keyDport, keyDst, keyFamily, keyProto, keySport, keySrc, pktDst, pktFamily, pktFragId, pktProto, pktSrc,
} from "./packet";

/** w4 marker of a backend's reply entry (reverse NAT): never set in a flow key. */
export const REPLY_MARK: u64 = 1 << 48;
/** w4 marker of a fragment entry: never set in a flow key. */
export const FRAGMENT_MARK: u64 = 1 << 49;

export let w0: u64 = 0;
export let w1: u64 = 0;
export let w2: u64 = 0;
export let w3: u64 = 0;
export let w4: u64 = 0;

const C1: u64 = 0x87c37b91114253d5;
const C2: u64 = 0x4cf5ad432745937f;

@inline function mixWord(h: u64, w: u64): u64 {
  let k = w * C1;
  k = rotl<u64>(k, 31);
  k *= C2;
  h ^= k;
  h = rotl<u64>(h, 27);
  return h * 5 + 0x52dce729;
}

@inline export function fmix64(h: u64): u64 {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccd;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53;
  h ^= h >> 33;
  return h;
}

/** Sets the key words directly (rehashing stored flows). */
export function setKeyWords(a: u64, b: u64, c: u64, d: u64, e: u64): void {
  w0 = a; w1 = b; w2 = c; w3 = d; w4 = e;
}

/** Hash of the current key words w0..w4 with `seed`. */
export function hashKey(seed: u64): u64 {
  let h = seed ^ 40;
  h = mixWord(h, w0);
  h = mixWord(h, w1);
  h = mixWord(h, w2);
  h = mixWord(h, w3);
  h = mixWord(h, w4);
  return fmix64(h);
}

/** Hash of `len` bytes at `p` (names for Maglev; configuration time only). */
export function hashBytes(p: usize, len: i32, seed: u64): u64 {
  let h = seed ^ <u64>len;
  let i = 0;
  for (; i + 8 <= len; i += 8) h = mixWord(h, load<u64>(p + <usize>i));
  let tail: u64 = 0;
  for (let s: u64 = 0; i < len; i++, s += 8) tail |= (<u64>load<u8>(p + <usize>i)) << s;
  h = mixWord(h, tail);
  return fmix64(h);
}

/**
 * Loads the parser's flow key into w0..w4, in canonical order when
 * `symmetric`. This is the key the flow table tracks.
 */
export function loadKey(symmetric: bool): void {
  if (keyFamily == 4) {
    w0 = <u64>load<u32>(keySrc);
    w1 = 0;
    w2 = <u64>load<u32>(keyDst);
    w3 = 0;
  } else {
    w0 = load<u64>(keySrc);
    w1 = load<u64>(keySrc, 8);
    w2 = load<u64>(keyDst);
    w3 = load<u64>(keyDst, 8);
  }
  let sport = <u64>keySport;
  let dport = <u64>keyDport;
  if (symmetric) {
    // Source sorts after destination → swap endpoints.
    if (w0 > w2 || (w0 == w2 && (w1 > w3 || (w1 == w3 && sport > dport)))) {
      let t = w0; w0 = w2; w2 = t;
      t = w1; w1 = w3; w3 = t;
      t = sport; sport = dport; dport = t;
    }
  }
  w4 = sport | (dport << 16) | (<u64>keyProto << 32) | (<u64>keyFamily << 40);
}

/** Marks the loaded (directional) key as a reply entry's key. */
export function markReply(): void {
  w4 |= REPLY_MARK;
}

/**
 * Loads the key of a reply entry: the backend's (lo, hi):bport towards the client
 * endpoint of the parser's key. Call while the parser's key is the client's flow.
 */
export function loadReplyKey(lo: u64, hi: u64, bport: u16): void {
  const family = keyFamily;
  w0 = lo;
  w1 = hi;
  if (family == 4) {
    w2 = <u64>load<u32>(keySrc);
    w3 = 0;
  } else {
    w2 = load<u64>(keySrc);
    w3 = load<u64>(keySrc, 8);
  }
  w4 = <u64>bport | (<u64>keySport << 16) | (<u64>keyProto << 32) | (<u64>family << 40) | REPLY_MARK;
}

/** Loads the key of the packet's fragment entry: (src, dst, proto, IP ID), directional. */
export function loadFragmentKey(): void {
  if (pktFamily == 4) {
    w0 = <u64>load<u32>(pktSrc);
    w1 = 0;
    w2 = <u64>load<u32>(pktDst);
    w3 = 0;
  } else {
    w0 = load<u64>(pktSrc);
    w1 = load<u64>(pktSrc, 8);
    w2 = load<u64>(pktDst);
    w3 = load<u64>(pktDst, 8);
  }
  w4 = <u64>pktFragId | (<u64>pktProto << 32) | (<u64>pktFamily << 40) | FRAGMENT_MARK;
}

/**
 * Hash for backend selection: the loaded key reduced to the rule's distribution mode.
 */
export function distributionHash(seed: u64, mode: u8): u64 {
  const full = w4;
  if (mode == DIST_SOURCE_IP_PROTOCOL) {
    w4 &= ~(<u64>0xffffffff);
  } else if (mode == DIST_SOURCE_IP) {
    w4 &= ~(<u64>0xff_ffffffff);
  }
  const h = hashKey(seed);
  w4 = full;
  return h;
}
