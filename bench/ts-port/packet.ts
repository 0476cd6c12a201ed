// Packet parsing, ported from assembly/packet.ts line by line: L2 → IPv4/IPv6 (options,
// extension headers, fragments) → L4 ports, ICMP echo identifiers and the quoted header
// of ICMP errors. Reads the packet in place through typed-array views of the memory it
// lives in; results in module variables (no allocation per packet): the fields of the
// core's Packet record (`pkt*` for the packet's own, `key*` for its flow key), for the
// one packet the port works on at a time.

import {
  FLAG_FRAGMENT, FLAG_FRAG_3TUPLE, FLAG_ICMP_ERROR, FLAG_IPV6, LINK_ETHERNET, MAX_IPV6_EXT_HEADERS,
  PROTO_AH, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP, REASON_BAD_ICMP_ERROR,
  REASON_BAD_IP_HEADER, REASON_BAD_IP_VERSION, REASON_BAD_L4_HEADER, REASON_EXT_HEADER_CHAIN,
  REASON_NONE, REASON_NOT_IP, REASON_TRUNCATED, REASON_TRUNCATED_L4,
} from './consts';

let u8: Uint8Array = new Uint8Array(0);

/** Points the parser at the memory packets live in. */
export function setPacketMemory(mem: Uint8Array): void { u8 = mem; }

export let pktL3 = 0;
export let pktL3Len = 0;
export let pktL4 = -1;
export let pktFamily = 0;
export let pktProto = 0;
export let pktHasPorts = false;
export let pktSport = 0;
export let pktDport = 0;
export let pktSrc = 0;
export let pktDst = 0;
export let pktTcpFlags = 0;
export let pktFlags = 0;
export let pktFragId = 0;

export let keyFamily = 0;
export let keyProto = 0;
export let keySport = 0;
export let keyDport = 0;
export let keySrc = 0;
export let keyDst = 0;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

function be16(p: number): number { return (u8[p] << 8) | u8[p + 1]; }
function be32(p: number): number { return ((u8[p] << 24) | (u8[p + 1] << 16) | (u8[p + 2] << 8) | u8[p + 3]) >>> 0; }

/** The record of a packet whose descriptor lies outside the arena: nothing parsed. */
export function noPacket(): void {
  pktFamily = 0;
  pktHasPorts = false;
  pktSport = 0;
  pktDport = 0;
  pktTcpFlags = 0;
  pktFlags = 0;
  pktL3 = 0;
  pktProto = 0;
}

export function parsePacket(p: number, len: number, link: number): number {
  pktFamily = 0;
  pktHasPorts = false;
  pktSport = 0;
  pktDport = 0;
  pktTcpFlags = 0;
  pktFlags = 0;
  pktL3 = 0;
  pktL4 = -1;
  pktFragId = 0;
  pktProto = 0;

  let l3 = 0;
  let isV6 = false;
  if (link === LINK_ETHERNET) {
    if (len < 14) return REASON_TRUNCATED;
    l3 = 12;
    let etherType = be16(p + 12);
    for (let tags = 0; tags < 2; tags++) {
      if (etherType !== 0x8100 && etherType !== 0x88a8 && etherType !== 0x9100) break;
      l3 += 4;
      if (len < l3 + 2) return REASON_TRUNCATED;
      etherType = be16(p + l3);
    }
    l3 += 2;
    if (etherType === 0x0800) isV6 = false;
    else if (etherType === 0x86dd) isV6 = true;
    else return REASON_NOT_IP;
    if (len <= l3) return REASON_TRUNCATED;
  } else {
    if (len < 1) return REASON_TRUNCATED;
    isV6 = (u8[p] >> 4) === 6;
  }
  pktL3 = l3;
  return isV6 ? parseIPv6(p + l3, len - l3) : parseIPv4(p + l3, len - l3);
}

function parseIPv4(q: number, avail: number): number {
  if (avail < 20) return avail > 0 && (u8[q] >> 4) !== 4 ? REASON_BAD_IP_VERSION : REASON_TRUNCATED;
  const b0 = u8[q];
  if ((b0 >> 4) !== 4) return REASON_BAD_IP_VERSION;
  const ihl = (b0 & 15) << 2;
  if (ihl < 20) return REASON_BAD_IP_HEADER;
  const total = be16(q + 2);
  if (total < ihl) return REASON_BAD_IP_HEADER;
  if (total > avail) return REASON_TRUNCATED;

  pktFamily = 4;
  pktL3Len = total;
  pktProto = u8[q + 9];
  pktSrc = q + 12;
  pktDst = q + 16;
  keyFamily = 4;
  keyProto = pktProto;
  keySrc = pktSrc;
  keyDst = pktDst;
  keySport = 0;
  keyDport = 0;

  const frag = be16(q + 6);
  const fragOffset = frag & 0x1fff;
  if ((frag & 0x2000) !== 0 || fragOffset !== 0) {
    pktFlags |= FLAG_FRAGMENT;
    pktFragId = be16(q + 4);
    if (fragOffset !== 0) {
      pktFlags |= FLAG_FRAG_3TUPLE;
      return REASON_NONE;
    }
  }
  pktL4 = pktL3 + ihl;
  return parseL4(q + ihl, total - ihl, false);
}

let walkProto = 0;
let walkOffset = 0;
let walkLaterFragment = false;
let walkFragment = false;
let walkFragId = 0;

function walkIPv6(q: number, avail: number): number {
  let next = u8[q + 6];
  let off = 40;
  walkLaterFragment = false;
  walkFragment = false;
  walkFragId = 0;
  for (let count = 0; ; count++) {
    if (next !== 0 && next !== 43 && next !== 60 && next !== 44 && next !== PROTO_AH) break;
    if (count >= MAX_IPV6_EXT_HEADERS) return REASON_EXT_HEADER_CHAIN;
    if (off + 8 > avail) return REASON_EXT_HEADER_CHAIN;
    const h = q + off;
    let hlen: number;
    if (next === 44) {
      hlen = 8;
      walkFragment = true;
      walkFragId = be32(h + 4);
      if ((be16(h + 2) & 0xfff8) !== 0) {
        walkLaterFragment = true;
        next = u8[h];
        off += hlen;
        break;
      }
    } else if (next === PROTO_AH) {
      hlen = (u8[h + 1] + 2) << 2;
    } else {
      hlen = (u8[h + 1] + 1) << 3;
    }
    if (off + hlen > avail) return REASON_EXT_HEADER_CHAIN;
    next = u8[h];
    off += hlen;
  }
  walkProto = next;
  walkOffset = off;
  return REASON_NONE;
}

function parseIPv6(q: number, avail: number): number {
  if (avail < 40) return avail > 0 && (u8[q] >> 4) !== 6 ? REASON_BAD_IP_VERSION : REASON_TRUNCATED;
  if ((u8[q] >> 4) !== 6) return REASON_BAD_IP_VERSION;
  const total = 40 + be16(q + 4);
  if (total > avail) return REASON_TRUNCATED;

  pktFamily = 6;
  pktFlags |= FLAG_IPV6;
  pktL3Len = total;
  pktSrc = q + 8;
  pktDst = q + 24;
  keyFamily = 6;
  keySrc = pktSrc;
  keyDst = pktDst;
  keySport = 0;
  keyDport = 0;

  const r = walkIPv6(q, total);
  if (r !== REASON_NONE) {
    pktFamily = 0;
    return r;
  }
  pktProto = walkProto;
  keyProto = walkProto;
  if (walkFragment) {
    pktFlags |= FLAG_FRAGMENT;
    pktFragId = walkFragId;
    if (walkLaterFragment) {
      pktFlags |= FLAG_FRAG_3TUPLE;
      return REASON_NONE;
    }
  }
  pktL4 = pktL3 + walkOffset;
  return parseL4(q + walkOffset, total - walkOffset, true);
}

function takePorts(l4: number): void {
  pktHasPorts = true;
  pktSport = be16(l4);
  pktDport = be16(l4 + 2);
  keySport = pktSport;
  keyDport = pktDport;
}

function parseL4(l4: number, avail: number, isV6: boolean): number {
  const proto = pktProto;
  if (proto === PROTO_TCP) {
    if (avail < 20) return REASON_TRUNCATED_L4;
    const dataOffset = (u8[l4 + 12] >> 4) << 2;
    if (dataOffset < 20) return REASON_BAD_L4_HEADER;
    if (dataOffset > avail) return REASON_TRUNCATED_L4;
    takePorts(l4);
    pktTcpFlags = u8[l4 + 13];
    return REASON_NONE;
  }
  if (proto === PROTO_UDP) {
    if (avail < 8) return REASON_TRUNCATED_L4;
    takePorts(l4);
    return REASON_NONE;
  }
  if (proto === PROTO_SCTP) {
    if (avail < 12) return REASON_TRUNCATED_L4;
    takePorts(l4);
    return REASON_NONE;
  }
  if (proto === PROTO_ICMP && !isV6) {
    if (avail < 8) return REASON_TRUNCATED_L4;
    const type = u8[l4];
    if (type === 0 || type === 8 || (type >= 13 && type <= 16)) {
      keySport = be16(l4 + 4);
      keyDport = keySport;
      return REASON_NONE;
    }
    if (type === 3 || type === 4 || type === 5 || type === 11 || type === 12) {
      return parseQuotedIPv4(l4 + 8, avail - 8);
    }
    return REASON_NONE;
  }
  if (proto === PROTO_ICMPV6 && isV6) {
    if (avail < 8) return REASON_TRUNCATED_L4;
    const type = u8[l4];
    if (type === 128 || type === 129) {
      keySport = be16(l4 + 4);
      keyDport = keySport;
      return REASON_NONE;
    }
    if (type >= 1 && type <= 4) {
      return parseQuotedIPv6(l4 + 8, avail - 8);
    }
    return REASON_NONE;
  }
  return REASON_NONE;
}

function quotedPorts(l4: number, avail: number, proto: number, isV6: boolean): number {
  if (proto === PROTO_TCP || proto === PROTO_UDP || proto === PROTO_SCTP) {
    if (avail < 4) return REASON_BAD_ICMP_ERROR;
    keySport = be16(l4 + 2);
    keyDport = be16(l4);
    return REASON_NONE;
  }
  if ((proto === PROTO_ICMP && !isV6) || (proto === PROTO_ICMPV6 && isV6)) {
    if (avail < 8) return REASON_BAD_ICMP_ERROR;
    keySport = be16(l4 + 4);
    keyDport = keySport;
    return REASON_NONE;
  }
  keySport = 0;
  keyDport = 0;
  return REASON_NONE;
}

function parseQuotedIPv4(q: number, avail: number): number {
  if (avail < 20) return REASON_BAD_ICMP_ERROR;
  const b0 = u8[q];
  if ((b0 >> 4) !== 4) return REASON_BAD_ICMP_ERROR;
  const ihl = (b0 & 15) << 2;
  if (ihl < 20 || ihl > avail) return REASON_BAD_ICMP_ERROR;
  pktFlags |= FLAG_ICMP_ERROR;
  keyFamily = 4;
  keyProto = u8[q + 9];
  keySrc = q + 16;
  keyDst = q + 12;
  if ((be16(q + 6) & 0x1fff) !== 0) {
    keySport = 0;
    keyDport = 0;
    return REASON_NONE;
  }
  return quotedPorts(q + ihl, avail - ihl, keyProto, false);
}

function parseQuotedIPv6(q: number, avail: number): number {
  if (avail < 40) return REASON_BAD_ICMP_ERROR;
  if ((u8[q] >> 4) !== 6) return REASON_BAD_ICMP_ERROR;
  if (walkIPv6(q, avail) !== REASON_NONE) return REASON_BAD_ICMP_ERROR;
  pktFlags |= FLAG_ICMP_ERROR;
  keyFamily = 6;
  keyProto = walkProto;
  keySrc = q + 24;
  keyDst = q + 8;
  if (walkLaterFragment) {
    keySport = 0;
    keyDport = 0;
    return REASON_NONE;
  }
  return quotedPorts(q + walkOffset, avail - walkOffset, walkProto, true);
}
