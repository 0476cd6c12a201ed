// Destination NAT for non-floating rules, and its reverse for the backend's replies,
// with incremental checksum updates (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')).
//
// Forward (client → frontend): the destination address becomes the backend's, and the
// destination port the rule's backend port where an exact rule maps ports.
// Reverse (backend → client): the source address becomes the frontend's, and the source
// port the rule's frontend port.
// ICMP errors are translated in the outer header and in the quoted header, so an error
// about a translated flow reaches (and makes sense to) the other side: PMTU discovery
// keeps working through the NAT.
//
// Checksums touched: the IPv4 header; TCP and UDP (pseudo-header; a zero UDP checksum
// over IPv4 means "none" and stays zero); ICMPv6 (pseudo-header); for ICMP errors the
// quoted IPv4 header and quoted transport checksum when quoted, and the ICMP checksum
// over all of it. SCTP's CRC32c covers no addresses and its ports are never mapped.

import { FLAG_ICMP_ERROR, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP } from "./consts";
import { be16, fold, storeBe16 } from "./checksum";
import { Packet } from "./packet";

/** Writes `n` bytes (even) from `src` over `at`; returns the checksum difference Σ(~old) + Σ(new). */
function replaceBytes(at: usize, src: usize, n: i32): u64 {
  let d: u64 = 0;
  for (let i = 0; i < n; i += 2) {
    d += <u64>((~be16(at + <usize>i)) & 0xffff) + <u64>be16(src + <usize>i);
  }
  memory.copy(at, src, <usize>n);
  return d;
}

/** Writes the 16-bit `v` at `at`; returns the checksum difference. */
function replace16(at: usize, v: u32): u64 {
  const d = <u64>((~be16(at)) & 0xffff) + <u64>v;
  storeBe16(at, v);
  return d;
}

/** Applies difference `d` to the checksum at `c`; returns the difference the change of
 *  the checksum field itself makes to an enclosing checksum. */
function adjust(c: usize, d: u64): u64 {
  const old = be16(c);
  const s = fold(<u64>((~old) & 0xffff) + d);
  const now = (~s) & 0xffff;
  storeBe16(c, now);
  return <u64>((~old) & 0xffff) + <u64>now;
}

/** A UDP checksum: zero over IPv4 is "no checksum" and stays; a computed zero is sent as 0xFFFF. */
function adjustUdp(c: usize, d: u64, v6: bool): u64 {
  const old = be16(c);
  if (old == 0 && !v6) return 0;
  const s = fold(<u64>((~old) & 0xffff) + d);
  let now = (~s) & 0xffff;
  if (now == 0) now = 0xffff;
  storeBe16(c, now);
  return <u64>((~old) & 0xffff) + <u64>now;
}

/**
 * Applies `d` (address and port changes) to the transport checksum of a `proto` header
 * at `l4` with `avail` bytes present; returns the change of that checksum field.
 */
function transportChecksum(l4: usize, avail: i32, proto: u8, v6: bool, d: u64): u64 {
  if (proto == PROTO_TCP) return avail >= 18 ? adjust(l4 + 16, d) : 0;
  if (proto == PROTO_UDP) return avail >= 8 ? adjustUdp(l4 + 6, d, v6) : 0;
  if (proto == PROTO_ICMPV6 && v6) return avail >= 4 ? adjust(l4 + 2, d) : 0;
  return 0; // ICMPv4, SCTP, GRE, ESP, …: no pseudo-header
}

/** Scratch for the new address (16 bytes). */
const addrScratch = memory.data(16);

/**
 * Replaces one endpoint of the parsed packet with address (lo, hi) and, when `port` is
 * not 0, port `port`. `outerAddr`/`outerPort` point into the packet's own headers
 * (0 = leave the port); for ICMP errors `innerAddr`/`innerPort` point into the quoted
 * header (outerPort is unused there).
 */
function rewriteEndpoint(
  pk: Packet, outerAddr: usize, outerPort: usize, innerAddr: usize, innerPort: usize, lo: u64, hi: u64, port: u32,
): void {
  const v6 = pk.family == 6;
  const alen = v6 ? 16 : 4;
  if (v6) {
    store<u64>(addrScratch, lo);
    store<u64>(addrScratch, hi, 8);
  } else {
    store<u32>(addrScratch, <u32>lo);
  }
  const ip = pk.base + <usize>pk.l3;
  const dAddr = replaceBytes(outerAddr, addrScratch, alen);
  if (!v6) adjust(ip + 10, dAddr);
  if (pk.l4 < 0) return; // a later fragment: the transport checksum is in the first one
  const l4 = pk.base + <usize>pk.l4;

  if ((pk.flags & FLAG_ICMP_ERROR) == 0) {
    let dPort: u64 = 0;
    if (port != 0 && outerPort != 0) dPort = replace16(outerPort, port);
    transportChecksum(l4, 1 << 30, pk.proto, v6, dAddr + dPort);
    return;
  }

  // ICMP error: the quoted header changes too, and the ICMP checksum covers it all
  // (ICMPv6 also covers the outer addresses through its pseudo-header).
  let dIcmp: u64 = v6 ? dAddr : 0;
  const dInner = replaceBytes(innerAddr, addrScratch, alen);
  dIcmp += dInner;
  if (!v6) dIcmp += adjust(pk.quoteIp + 10, dInner);
  if (pk.quoteL4 != 0) {
    let dInnerPort: u64 = 0;
    if (port != 0 && pk.quoteL4Len >= 4) {
      dInnerPort = replace16(innerPort, port);
      dIcmp += dInnerPort;
    }
    dIcmp += transportChecksum(pk.quoteL4, pk.quoteL4Len, pk.keyProto, v6, dInner + dInnerPort);
  }
  adjust(l4 + 2, dIcmp);
}

/**
 * Forward NAT: destination → backend (lo, hi), destination port → `port` (0 = keep).
 * For an ICMP error sent to the frontend, the quoted header's source is the frontend
 * and is rewritten instead of a port.
 */
export function natForward(pk: Packet, lo: u64, hi: u64, port: u32): void {
  const ip = pk.base + <usize>pk.l3;
  const v6 = pk.family == 6;
  const dst = ip + (v6 ? 24 : 16);
  const l4 = pk.l4 >= 0 ? pk.base + <usize>pk.l4 : 0;
  const error = (pk.flags & FLAG_ICMP_ERROR) != 0;
  const innerSrc = error ? pk.quoteIp + (v6 ? 8 : 12) : 0;
  rewriteEndpoint(pk, dst, l4 != 0 ? l4 + 2 : 0, innerSrc, error ? pk.quoteL4 : 0, lo, hi, port);
}

/**
 * Reverse NAT for a backend's reply: source → frontend (lo, hi), source port → `port`
 * (0 = keep). For an ICMP error from the backend, the quoted destination and port.
 */
export function natReverse(pk: Packet, lo: u64, hi: u64, port: u32): void {
  const ip = pk.base + <usize>pk.l3;
  const v6 = pk.family == 6;
  const src = ip + (v6 ? 8 : 12);
  const l4 = pk.l4 >= 0 ? pk.base + <usize>pk.l4 : 0;
  const error = (pk.flags & FLAG_ICMP_ERROR) != 0;
  const innerDst = error ? pk.quoteIp + (v6 ? 24 : 16) : 0;
  rewriteEndpoint(pk, src, l4, innerDst, error ? pk.quoteL4 + 2 : 0, lo, hi, port);
}
