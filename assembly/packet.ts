// Packet parsing: L2 → IPv4/IPv6 (options, extension headers, fragments) → L4 ports,
// ICMP echo identifiers and the quoted header of ICMP errors.
//
// The parser never reads outside [p, p + len): every load is preceded by a length
// check, and a packet that fails one gets a drop reason. Results go into the packet's
// record (a `Packet`, one per packet of a pass group, at a fixed place in linear memory:
// layout.ts): the packet's own header fields (reported to hosts as the packet's tuple)
// and the flow key the balancer hashes (`key*`), which differs from the packet's own
// fields for ICMP (echo id, or the quoted header of an error, reversed) and for
// non-first fragments. The datapath's passes add what they find (rule, key, hash).

import {
  LINK_ETHERNET, MAX_IPV6_EXT_HEADERS, PROTO_AH, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP,
  PROTO_TCP, PROTO_UDP, REASON_BAD_ICMP_ERROR, REASON_BAD_IP_HEADER, REASON_BAD_IP_VERSION,
  REASON_BAD_L4_HEADER, REASON_EXT_HEADER_CHAIN, REASON_NONE, REASON_NOT_IP, REASON_TRUNCATED,
  REASON_TRUNCATED_L4, FLAG_FRAGMENT, FLAG_FRAG_3TUPLE, FLAG_ICMP_ERROR, FLAG_IPV6,
} from "./consts";

// ---- The packet record ------------------------------------------------------------

/**
 * What the passes of a batch know about one packet. The first 40 bytes are a flow key
 * (hash.ts: w0..w4) so that the record's address is also its key's address.
 * Fields are ordered by size, so the layout has no padding.
 */
@unmanaged export class Packet {
  // ---- The key of the packet's first flow-table lookup (hash.ts), and its hash.
  w0: u64;
  w1: u64;
  w2: u64;
  w3: u64;
  w4: u64;
  /** Keyed hash of w0..w4 (KEY_* in keyKind says which key they hold). */
  hash: u64;

  // ---- Parser results.
  /** Start of the packet in memory (l3 and l4 are offsets from here). */
  base: usize;
  /** Bytes given by the host. */
  len: u32;
  /** Offset of the IP header from the packet start (bytes). */
  l3: i32;
  /** Offset of the transport header from the packet start, or -1 (bytes). */
  l4: i32;
  /** Addresses of the packet's source and destination address bytes (4 or 16 bytes). */
  src: usize;
  dst: usize;
  /** IPv4 identification or IPv6 fragment identification (fragments only). */
  fragId: u32;
  /** ICMP errors: the quoted IP header, its transport header, and the bytes quoted from
   *  that transport header on (0 / 0 / 0 for other packets). */
  quoteIp: usize;
  quoteL4: usize;
  quoteL4Len: i32;
  /** The flow key's addresses (pointers into the packet). */
  keySrc: usize;
  keyDst: usize;

  // ---- Classification (datapath pass 1).
  /** Frontend (ingress, or by destination address), rule, or NONE. */
  frontend: i32;
  rule: i32;

  /** FLAG_* bits found while parsing (IPv6, fragment, ICMP error). */
  flags: u16;
  sport: u16;
  dport: u16;
  keySport: u16;
  keyDport: u16;

  /** 4 or 6; 0 when no IP header was parsed. */
  family: u8;
  /** Upper-layer protocol (after IPv6 extension headers). */
  proto: u8;
  /** Whether sport/dport hold the packet's own TCP/UDP/SCTP ports. */
  hasPorts: bool;
  /** TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10); 0 for other protocols. */
  tcpFlags: u8;
  keyFamily: u8;
  keyProto: u8;
  /** REASON_NONE, or why the packet is dropped. */
  reason: u8;
  /** The rule matched is an exact (protocol, port) rule. */
  exact: bool;
  /** KEY_NONE / KEY_FLOW / KEY_REPLY / KEY_FRAGMENT: what w0..w4 and hash hold. */
  keyKind: u8;
  /** The flow key was put in canonical order by swapping its endpoints (symmetric). */
  swapped: bool;
}

/** Size of a Packet record (bytes). */
export const PACKET_BYTES: i32 = <i32>offsetof<Packet>();

export const TCP_FIN: u8 = 0x01;
export const TCP_SYN: u8 = 0x02;
export const TCP_RST: u8 = 0x04;
export const TCP_ACK: u8 = 0x10;

@inline function be16(p: usize): u16 {
  return bswap<u16>(load<u16>(p));
}

// ---- Entry point -----------------------------------------------------------------

/**
 * Parses the packet at [p, p + len) framed by `link` (LINK_RAW_IP / LINK_ETHERNET) into
 * `pk`. Returns REASON_NONE with the record filled in, or the drop reason (also in
 * pk.reason).
 */
export function parsePacket(pk: Packet, p: usize, len: i32, link: i32): u8 {
  const r = parseFrame(pk, p, len, link);
  pk.reason = r;
  return r;
}

/**
 * Clears what every later reader of a record reads unconditionally: a packet with no
 * header parsed yet (the rest is set where it is found: fragId with FLAG_FRAGMENT,
 * quote* with FLAG_ICMP_ERROR, key* with family).
 */
@inline export function clearPacket(pk: Packet, len: u32): void {
  pk.family = 0;
  pk.hasPorts = false;
  pk.sport = 0;
  pk.dport = 0;
  pk.tcpFlags = 0;
  pk.flags = 0;
  pk.l3 = 0;
  pk.l4 = -1;
  pk.len = len;
}

function parseFrame(pk: Packet, p: usize, len: i32, link: i32): u8 {
  clearPacket(pk, <u32>len);
  pk.base = p;

  let l3 = 0;
  let isV6 = false;
  if (link == LINK_ETHERNET) {
    if (len < 14) return REASON_TRUNCATED;
    l3 = 12;
    let etherType = be16(p + 12);
    // Up to two VLAN tags (802.1Q 0x8100, 802.1ad 0x88a8, legacy QinQ 0x9100).
    for (let tags = 0; tags < 2; tags++) {
      if (etherType != 0x8100 && etherType != 0x88a8 && etherType != 0x9100) break;
      l3 += 4;
      if (len < l3 + 2) return REASON_TRUNCATED;
      etherType = be16(p + l3);
    }
    l3 += 2;
    if (etherType == 0x0800) isV6 = false;
    else if (etherType == 0x86dd) isV6 = true;
    else return REASON_NOT_IP;
    if (len <= l3) return REASON_TRUNCATED;
  } else {
    if (len < 1) return REASON_TRUNCATED;
    isV6 = (load<u8>(p) >> 4) == 6;
  }
  pk.l3 = l3;
  return isV6 ? parseIPv6(pk, p + l3, len - l3) : parseIPv4(pk, p + l3, len - l3);
}

// ---- IPv4 -------------------------------------------------------------------------

function parseIPv4(pk: Packet, q: usize, avail: i32): u8 {
  if (avail < 20) return avail > 0 && (load<u8>(q) >> 4) != 4 ? REASON_BAD_IP_VERSION : REASON_TRUNCATED;
  const b0 = load<u8>(q);
  if ((b0 >> 4) != 4) return REASON_BAD_IP_VERSION;
  const ihl = (<i32>(b0 & 15)) << 2;
  if (ihl < 20) return REASON_BAD_IP_HEADER;
  const total = <i32>be16(q + 2);
  if (total < ihl) return REASON_BAD_IP_HEADER;
  if (total > avail) return REASON_TRUNCATED;
  // Bytes past `total` are link padding and are ignored.

  const proto = load<u8>(q + 9);
  pk.family = 4;
  pk.proto = proto;
  pk.src = q + 12;
  pk.dst = q + 16;
  pk.keyFamily = 4;
  pk.keyProto = proto;
  pk.keySrc = q + 12;
  pk.keyDst = q + 16;
  pk.keySport = 0;
  pk.keyDport = 0;

  const frag = be16(q + 6);
  const fragOffset = frag & 0x1fff;
  if ((frag & 0x2000) != 0 || fragOffset != 0) {
    pk.flags |= FLAG_FRAGMENT;
    pk.fragId = <u32>be16(q + 4);
    if (fragOffset != 0) {
      // Later fragment: no transport header. Hashed on (src, dst, proto).
      pk.flags |= FLAG_FRAG_3TUPLE;
      return REASON_NONE;
    }
  }
  pk.l4 = pk.l3 + ihl;
  return parseL4(pk, q + ihl, total - ihl, false);
}

// ---- IPv6 -------------------------------------------------------------------------

// walkIPv6's result, packed in a u64 (0: a broken chain).
@inline function walkOffset(w: u64): i32 { return <i32>(w & 0xffff); }         // of the upper-layer header
@inline function walkProto(w: u64): u8 { return <u8>(w >> 16); }               // the upper-layer protocol
@inline function walkFragmentAt(w: u64): i32 { return <i32>((w >> 24) & 0xffff); } // fragment header, 0: none
@inline function walkLaterFragment(w: u64): bool { return (w >> 40) != 0; }     // no upper-layer header here

/** Whether `next` is an IPv6 extension header the walk steps over (hop-by-hop,
 *  routing, destination options, fragment, AH). */
@inline function isExtension(next: u8): bool {
  return next == 0 || next == 43 || next == 60 || next == 44 || next == PROTO_AH;
}

/**
 * Walks the extension-header chain of the IPv6 header at q (avail bytes, already
 * trimmed to the payload length). Returns the upper-layer protocol, its offset and the
 * fragment facts packed (read with walk*()), or 0 when the chain is broken.
 */
function walkIPv6(q: usize, avail: i32): u64 {
  let next = load<u8>(q + 6);
  let off = 40;
  let fragmentAt = 0;
  let later: u64 = 0;
  for (let count = 0; ; count++) {
    if (!isExtension(next)) break;
    if (count >= MAX_IPV6_EXT_HEADERS) return 0;
    if (off + 8 > avail) return 0;
    const h = q + <usize>off;
    let hlen: i32;
    if (next == 44) {
      // Fragment header (RFC 8200 §4.5): fixed 8 bytes.
      hlen = 8;
      fragmentAt = off;
      if ((be16(h + 2) & 0xfff8) != 0) {
        later = 1;
        next = load<u8>(h);
        off += hlen;
        break;
      }
    } else if (next == PROTO_AH) {
      hlen = (<i32>load<u8>(h + 1) + 2) << 2; // RFC 4302: length in 4-octet units, minus 2
    } else {
      hlen = (<i32>load<u8>(h + 1) + 1) << 3; // 8-octet units, not counting the first 8
    }
    if (off + hlen > avail) return 0;
    next = load<u8>(h);
    off += hlen;
  }
  return <u64>off | (<u64>next << 16) | (<u64>fragmentAt << 24) | (later << 40);
}

function parseIPv6(pk: Packet, q: usize, avail: i32): u8 {
  if (avail < 40) return avail > 0 && (load<u8>(q) >> 4) != 6 ? REASON_BAD_IP_VERSION : REASON_TRUNCATED;
  if ((load<u8>(q) >> 4) != 6) return REASON_BAD_IP_VERSION;
  const total = 40 + <i32>be16(q + 4);
  if (total > avail) return REASON_TRUNCATED;

  pk.family = 6;
  pk.flags |= FLAG_IPV6;
  pk.src = q + 8;
  pk.dst = q + 24;
  pk.keyFamily = 6;
  pk.keySrc = q + 8;
  pk.keyDst = q + 24;
  pk.keySport = 0;
  pk.keyDport = 0;

  // Most packets have no extension header: no walk.
  const next = load<u8>(q + 6);
  const w = isExtension(next) ? walkIPv6(q, total) : 40 | (<u64>next << 16);
  if (w == 0) {
    pk.family = 0; // the upper-layer protocol is unknown: report no tuple
    return REASON_EXT_HEADER_CHAIN;
  }
  pk.proto = walkProto(w);
  pk.keyProto = walkProto(w);
  const fragmentAt = walkFragmentAt(w);
  if (fragmentAt != 0) {
    pk.flags |= FLAG_FRAGMENT;
    pk.fragId = bswap<u32>(load<u32>(q + <usize>fragmentAt + 4));
    if (walkLaterFragment(w)) {
      pk.flags |= FLAG_FRAG_3TUPLE;
      return REASON_NONE;
    }
  }
  const off = walkOffset(w);
  pk.l4 = pk.l3 + off;
  return parseL4(pk, q + <usize>off, total - off, true);
}

// ---- Transport ----------------------------------------------------------------------

/** Sets the packet's own ports and the key's ports from a TCP/UDP/SCTP header. */
@inline function takePorts(pk: Packet, l4: usize): void {
  const sport = be16(l4);
  const dport = be16(l4 + 2);
  pk.hasPorts = true;
  pk.sport = sport;
  pk.dport = dport;
  pk.keySport = sport;
  pk.keyDport = dport;
}

@inline function parseL4(pk: Packet, l4: usize, avail: i32, isV6: bool): u8 {
  const proto = pk.proto;
  if (proto == PROTO_TCP) {
    if (avail < 20) return REASON_TRUNCATED_L4;
    const dataOffset = (<i32>(load<u8>(l4 + 12) >> 4)) << 2;
    if (dataOffset < 20) return REASON_BAD_L4_HEADER;
    if (dataOffset > avail) return REASON_TRUNCATED_L4;
    takePorts(pk, l4);
    pk.tcpFlags = load<u8>(l4 + 13);
    return REASON_NONE;
  }
  if (proto == PROTO_UDP) {
    if (avail < 8) return REASON_TRUNCATED_L4;
    takePorts(pk, l4);
    return REASON_NONE;
  }
  if (proto == PROTO_SCTP) {
    if (avail < 12) return REASON_TRUNCATED_L4;
    takePorts(pk, l4);
    return REASON_NONE;
  }
  if (proto == PROTO_ICMP && !isV6) {
    if (avail < 8) return REASON_TRUNCATED_L4;
    const type = load<u8>(l4);
    // Echo (0/8), timestamp (13/14), information (15/16): a flow per identifier.
    if (type == 0 || type == 8 || (type >= 13 && type <= 16)) {
      pk.keySport = be16(l4 + 4);
      pk.keyDport = pk.keySport;
      return REASON_NONE;
    }
    // Destination unreachable, source quench, redirect, time exceeded, parameter problem.
    if (type == 3 || type == 4 || type == 5 || type == 11 || type == 12) {
      return parseQuotedIPv4(pk, l4 + 8, avail - 8);
    }
    return REASON_NONE;
  }
  if (proto == PROTO_ICMPV6 && isV6) {
    if (avail < 8) return REASON_TRUNCATED_L4;
    const type = load<u8>(l4);
    if (type == 128 || type == 129) {
      pk.keySport = be16(l4 + 4);
      pk.keyDport = pk.keySport;
      return REASON_NONE;
    }
    // Destination unreachable, packet too big, time exceeded, parameter problem.
    if (type >= 1 && type <= 4) {
      return parseQuotedIPv6(pk, l4 + 8, avail - 8);
    }
    return REASON_NONE;
  }
  // GRE, ESP, AH, ICMP in the wrong family, anything else: portless.
  return REASON_NONE;
}

// ---- ICMP errors: the quoted header, reversed, is the flow key ------------------------
//
// An error about a packet F→C (sent by the frontend side) travels to F; reversing the
// quoted header gives C→F, the flow the error belongs to, so it reaches that flow's
// backend (PMTU discovery keeps working through the balancer).

/** Sets the key's ports from the quoted transport header (reversed). */
function quotedPorts(pk: Packet, l4: usize, avail: i32, proto: u8, isV6: bool): u8 {
  if (proto == PROTO_TCP || proto == PROTO_UDP || proto == PROTO_SCTP) {
    if (avail < 4) return REASON_BAD_ICMP_ERROR;
    pk.keySport = be16(l4 + 2);
    pk.keyDport = be16(l4);
    return REASON_NONE;
  }
  if ((proto == PROTO_ICMP && !isV6) || (proto == PROTO_ICMPV6 && isV6)) {
    if (avail < 8) return REASON_BAD_ICMP_ERROR;
    pk.keySport = be16(l4 + 4);
    pk.keyDport = pk.keySport;
    return REASON_NONE;
  }
  pk.keySport = 0;
  pk.keyDport = 0;
  return REASON_NONE;
}

function parseQuotedIPv4(pk: Packet, q: usize, avail: i32): u8 {
  pk.quoteL4 = 0;
  pk.quoteL4Len = 0;
  if (avail < 20) return REASON_BAD_ICMP_ERROR;
  const b0 = load<u8>(q);
  if ((b0 >> 4) != 4) return REASON_BAD_ICMP_ERROR;
  const ihl = (<i32>(b0 & 15)) << 2;
  if (ihl < 20 || ihl > avail) return REASON_BAD_ICMP_ERROR;
  pk.flags |= FLAG_ICMP_ERROR;
  pk.keyFamily = 4;
  pk.keyProto = load<u8>(q + 9);
  pk.keySrc = q + 16; // reversed: the quoted destination is the flow's source
  pk.keyDst = q + 12;
  pk.quoteIp = q;
  if ((be16(q + 6) & 0x1fff) != 0) {
    pk.keySport = 0;
    pk.keyDport = 0;
    return REASON_NONE;
  }
  pk.quoteL4 = q + <usize>ihl;
  pk.quoteL4Len = avail - ihl;
  return quotedPorts(pk, pk.quoteL4, pk.quoteL4Len, pk.keyProto, false);
}

function parseQuotedIPv6(pk: Packet, q: usize, avail: i32): u8 {
  pk.quoteL4 = 0;
  pk.quoteL4Len = 0;
  if (avail < 40) return REASON_BAD_ICMP_ERROR;
  if ((load<u8>(q) >> 4) != 6) return REASON_BAD_ICMP_ERROR;
  // The quote is cut short by the ICMPv6 size limit: walk only what is there.
  const w = walkIPv6(q, avail);
  if (w == 0) return REASON_BAD_ICMP_ERROR;
  pk.flags |= FLAG_ICMP_ERROR;
  pk.keyFamily = 6;
  pk.keyProto = walkProto(w);
  pk.keySrc = q + 24;
  pk.keyDst = q + 8;
  pk.quoteIp = q;
  if (walkLaterFragment(w)) {
    pk.keySport = 0;
    pk.keyDport = 0;
    return REASON_NONE;
  }
  const off = walkOffset(w);
  pk.quoteL4 = q + <usize>off;
  pk.quoteL4Len = avail - off;
  return quotedPorts(pk, pk.quoteL4, pk.quoteL4Len, walkProto(w), true);
}
