// Internet checksums (RFC 1071): the helpers NAT's incremental updates (nat.ts) and the
// RSTs (reset.ts) use, and the check of a packet's own TCP/UDP checksum.
//
// Why the core checks checksums at all: a sender with transmit checksum offload hands
// its NIC a TCP or UDP packet whose checksum field holds only the pseudo-header's sum
// (Linux CHECKSUM_PARTIAL: the device is to finish it). Over veth into a kernel VXLAN
// device, nothing finishes it, so the tunnel carries the partial value; a stateful
// firewall behind the balancer then drops the packet as INVALID. A host that receives
// such traffic (the pump) asks the core to complete partial checksums and to count wrong
// ones without touching them (setChecksumPolicy: CHECKSUM_COMPLETE_PARTIAL, or
// CHECKSUM_COUNT to only count both).

import {
  CHECKSUM_COMPLETE_PARTIAL, CHECKSUM_OFF, FLAG_CHECKSUM_PARTIAL, FLAG_CHECKSUM_WRONG, FLAG_FRAGMENT,
  PROTO_TCP, PROTO_UDP,
} from "./consts";
import { Packet } from "./packet";

@inline export function be16(p: usize): u32 {
  return <u32>bswap<u16>(load<u16>(p));
}

@inline export function storeBe16(p: usize, v: u32): void {
  store<u16>(p, bswap<u16>(<u16>v));
}

/** Folds a one's-complement sum to 16 bits. */
@inline export function fold(s: u64): u32 {
  s = (s & 0xffffffff) + (s >> 32);
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  return <u32>s;
}

/** One's-complement sum of `n` bytes at `p` (n even) as big-endian 16-bit words, unfolded. */
export function sum16(p: usize, n: i32): u64 {
  let s: u64 = 0;
  for (let i = 0; i < n; i += 2) s += <u64>be16(p + <usize>i);
  return s;
}

/**
 * One's-complement sum of `n` bytes at `p` read as little-endian words, unfolded: eight
 * bytes a step. The sum is byte-order independent (RFC 1071 §2(B)): swap the folded
 * result's bytes for the big-endian sum. A trailing odd byte is the high byte of its
 * (zero-padded) big-endian word, i.e. the low byte of a little-endian one.
 */
function sumLe(p: usize, n: i32): u64 {
  let s: u64 = 0;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const x = load<u64>(p + <usize>i);
    s += (x & 0xffffffff) + (x >> 32);
  }
  for (; i + 2 <= n; i += 2) s += <u64>load<u16>(p + <usize>i);
  if (i < n) s += <u64>load<u8>(p + <usize>i);
  return s;
}

@inline function swap16(v: u32): u32 {
  return ((v & 0xff) << 8) | (v >> 8);
}

/**
 * Checks the TCP or UDP checksum of a parsed packet under `policy` (CHECKSUM_*). A
 * correct one passes. A partial one (the field holds exactly the pseudo-header's sum) is
 * completed under CHECKSUM_COMPLETE_PARTIAL and only reported under CHECKSUM_COUNT.
 * Anything else is wrong, reported and never changed: the balancer does not make a
 * damaged packet look whole. Returns the verdict flags to add (FLAG_CHECKSUM_PARTIAL or
 * FLAG_CHECKSUM_WRONG), 0 when the checksum is right or not checked (fragments, other
 * protocols, IPv4 UDP without a checksum).
 */
export function checkTransport(pk: Packet, policy: i32): u16 {
  if (policy == CHECKSUM_OFF || pk.l4 < 0 || (pk.flags & FLAG_FRAGMENT) != 0) return 0;
  const proto = pk.proto;
  if (proto != PROTO_TCP && proto != PROTO_UDP) return 0;
  const ip = pk.base + <usize>pk.l3;
  const v6 = pk.family == 6;
  // The transport segment ends where the IP header says (Ethernet may pad beyond it).
  const length = pk.l3 + <i32>(v6 ? 40 + be16(ip + 4) : be16(ip + 2)) - pk.l4;
  const l4 = pk.base + <usize>pk.l4;
  const at = l4 + (proto == PROTO_TCP ? 16 : 6);
  const field = be16(at);
  if (proto == PROTO_UDP && field == 0 && !v6) return 0; // IPv4 UDP without a checksum
  // The pseudo header (RFC 793, 768; RFC 8200 §8.1): the two addresses, which follow
  // each other in the IP header, the protocol and the transport length.
  const pseudo = sumLe(pk.src, v6 ? 32 : 8) + (<u64>proto << 8) + <u64>swap16(<u32>length);
  const total = pseudo + sumLe(l4, length);
  if (fold(total) == 0xffff) return 0;
  if (field != swap16(fold(pseudo))) return FLAG_CHECKSUM_WRONG;
  if (policy == CHECKSUM_COMPLETE_PARTIAL) {
    // Finish what the sender's offload left: the sum without the field, complemented.
    let c = (~swap16(fold(total - <u64>swap16(field)))) & 0xffff;
    if (c == 0 && proto == PROTO_UDP) c = 0xffff;
    storeBe16(at, c);
  }
  return FLAG_CHECKSUM_PARTIAL;
}
