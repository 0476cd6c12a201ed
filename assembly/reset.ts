// TCP resets for enableTcpReset (Azure: "bidirectional TCP reset on idle timeout").
//
// When a packet of a TCP flow arrives after its rule's idle timeout, the flow's state
// is gone on the balancer, and probably on the appliance too; without a reset both ends
// would keep sending into a connection that no longer exists. The core answers such a
// packet (not a bare SYN) with a reset verdict and writes two RSTs into the packet's
// reset record (layout.ts), which the host sends instead of the packet:
//
//   A  back to the packet's sender, from the address and port it sent to:
//      with the packet's ACK bit, seq = its acknowledgment number (RFC 9293 §3.10.7.1);
//      without, seq 0 and RST+ACK acknowledging the packet (seq + length, SYN and FIN
//      counting one each).
//   B  onward to the far end, as if from the sender, delivered to the flow's backend as
//      a forwarded packet would be: seq = the packet's own sequence number, which is the
//      next one the far end expects since the packet itself is not delivered (RFC 5961
//      §3.2 accepts a RST whose seq is exactly the expected one); RST+ACK with the
//      packet's acknowledgment number when it has one. For non-floating rules it is
//      translated as the packet would have been (NAT).
//
// Both are 40-byte IPv4 or 60-byte IPv6 packets with valid IP and TCP checksums, TTL
// (hop limit) 64, framed like the batch: with link type Ethernet, A carries the
// packet's Ethernet header (and VLAN tags) with the MAC addresses swapped, B carries it
// unchanged.

import { FLAG_IPV6, PROTO_TCP } from "./consts";
import { R_A, R_B, R_LEN_A, R_LEN_B } from "./layout";
import { Packet, PACKET_BYTES, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from "./packet";
import { be16, fold, storeBe16, sum16 } from "./checksum";

@inline function be32(p: usize): u32 {
  return bswap<u32>(load<u32>(p));
}
@inline function storeBe32(p: usize, v: u32): void {
  store<u32>(p, bswap<u32>(v));
}

/** A parsed view of a RST being built, for the NAT functions (which take a Packet). */
const rstRecord = memory.data(PACKET_BYTES, 16);

/**
 * Writes one RST at `out` and returns its length: link header `l2` bytes copied from
 * `frame` (with MACs swapped when `swapMacs`), then IP from `src` to `dst` (`alen`
 * bytes each) and TCP sport → dport with `seq`, `ack`, `flags`.
 */
function writeRst(
  out: usize, frame: usize, l2: i32, swapMacs: bool, v6: bool, src: usize, dst: usize,
  sport: u32, dport: u32, seq: u32, ack: u32, flags: u32,
): i32 {
  if (l2 > 0) {
    memory.copy(out, frame, <usize>l2);
    if (swapMacs) {
      memory.copy(out, frame + 6, 6);
      memory.copy(out + 6, frame, 6);
    }
  }
  const ip = out + <usize>l2;
  const alen: usize = v6 ? 16 : 4;
  let tcp: usize;
  if (v6) {
    storeBe32(ip, 0x60000000);
    storeBe16(ip + 4, 20);
    store<u8>(ip + 6, PROTO_TCP);
    store<u8>(ip + 7, 64);
    memory.copy(ip + 8, src, alen);
    memory.copy(ip + 24, dst, alen);
    tcp = ip + 40;
  } else {
    storeBe32(ip, 0x45000028); // version 4, IHL 5, TOS 0, total length 40
    storeBe32(ip + 4, 0x00004000); // ID 0, DF
    store<u8>(ip + 8, 64);
    store<u8>(ip + 9, PROTO_TCP);
    store<u16>(ip + 10, 0);
    memory.copy(ip + 12, src, alen);
    memory.copy(ip + 16, dst, alen);
    storeBe16(ip + 10, (~fold(sum16(ip, 20))) & 0xffff);
    tcp = ip + 20;
  }
  storeBe16(tcp, sport);
  storeBe16(tcp + 2, dport);
  storeBe32(tcp + 4, seq);
  storeBe32(tcp + 8, ack);
  storeBe16(tcp + 12, (5 << 12) | flags); // data offset 5, flags
  storeBe16(tcp + 14, 0);                 // window
  storeBe16(tcp + 16, 0);                 // checksum, below
  storeBe16(tcp + 18, 0);                 // urgent pointer
  // Pseudo-header: addresses, protocol, TCP length 20.
  const sum = sum16(ip + (v6 ? 8 : 12), <i32>(alen << 1)) + <u64>PROTO_TCP + 20 + sum16(tcp, 20);
  let c = (~fold(sum)) & 0xffff;
  storeBe16(tcp + 16, c);
  return l2 + <i32>(v6 ? 60 : 40);
}

/** A Packet record describing the RST at `at` (link header `l2` bytes), for NAT. */
function viewOf(at: usize, l2: i32, v6: bool): Packet {
  const r = changetype<Packet>(rstRecord);
  r.base = at;
  r.l3 = l2;
  r.l4 = l2 + (v6 ? 40 : 20);
  r.family = v6 ? 6 : 4;
  r.proto = PROTO_TCP;
  r.keyProto = PROTO_TCP;
  r.flags = v6 ? FLAG_IPV6 : 0;
  r.quoteIp = 0;
  r.quoteL4 = 0;
  r.quoteL4Len = 0;
  return r;
}

/**
 * Writes the two RSTs for TCP packet `pk` into the reset record at `rec`, and returns a
 * view of RST B for the caller to translate (NAT) like the packet it stands for.
 */
export function writeResets(pk: Packet, rec: usize): Packet {
  const v6 = pk.family == 6;
  const ip = pk.base + <usize>pk.l3;
  const l4 = pk.base + <usize>pk.l4;
  const seq = be32(l4 + 4);
  const ack = be32(l4 + 8);
  const flags = <u32>pk.tcpFlags;
  const ipEnd = pk.l3 + <i32>(v6 ? 40 + be16(ip + 4) : be16(ip + 2));
  let segLen = <u32>(ipEnd - pk.l4 - ((<i32>load<u8>(l4 + 12) >> 4) << 2));
  if (flags & TCP_SYN) segLen++;
  if (flags & TCP_FIN) segLen++;
  const hasAck = (flags & TCP_ACK) != 0;

  const a = rec + R_A;
  const lenA = hasAck
    ? writeRst(a, pk.base, pk.l3, true, v6, pk.dst, pk.src, pk.dport, pk.sport, ack, 0, TCP_RST)
    : writeRst(a, pk.base, pk.l3, true, v6, pk.dst, pk.src, pk.dport, pk.sport, 0, seq + segLen, TCP_RST | TCP_ACK);
  const b = rec + R_B;
  const lenB = writeRst(b, pk.base, pk.l3, false, v6, pk.src, pk.dst, pk.sport, pk.dport, seq,
    hasAck ? ack : 0, hasAck ? TCP_RST | TCP_ACK : TCP_RST);
  store<u16>(rec + R_LEN_A, <u16>lenA);
  store<u16>(rec + R_LEN_B, <u16>lenB);
  return viewOf(b, pk.l3, v6);
}
