// Tunnel headers of the packet pump: VXLAN (RFC 7348) and GENEVE (RFC 8926).
//
// The pump terminates a tunnel, runs the inner packet through the core and sends it on
// re-encapsulated with the very header it arrived with (same VNI, flags and GENEVE
// options): `decap()` only validates and measures the header, it never copies it.
//
//   VXLAN, UDP 4789 (RFC 7348 §5), 8 bytes, then an Ethernet frame:
//    0                   1                   2                   3
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |R|R|R|R|I|R|R|R|            Reserved                           |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                VXLAN Network Identifier (VNI) |   Reserved    |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   I must be 1; the reserved bits are ignored on receipt (and passed on unchanged).
//
//   GENEVE, UDP 6081 (RFC 8926 §3.4), 8 bytes + Opt Len × 4 bytes of options:
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |        Virtual Network Identifier (VNI)       |    Reserved   |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                    Variable-Length Options                    |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   Each option (§3.5): Option Class (16), Type (8), R R R, Length (5, in 4-byte words),
//   then Length × 4 bytes of data. Ver must be 0 (§3.4: drop otherwise). Protocol Type
//   0x6558 carries Ethernet, 0x0800 IPv4 and 0x86DD IPv6.
//
// GENEVE choices: O (control/OAM) packets are for the tunnel endpoint, and the pump has
// no control protocol, so they are dropped and counted (§3.4: not to be forwarded as
// data). Options are relayed to the appliance unchanged and not interpreted, critical
// (C) or not: the pump is a relay between the sender and the appliance, which is the
// endpoint that acts on options (as AWS Gateway Load Balancer relays its TLVs). An
// option chain whose lengths do not add up to Opt Len is malformed and dropped.

import { LINK_ETHERNET, LINK_RAW_IP } from '../lib/core.js';

export type TunnelProtocol = 'vxlan' | 'geneve';

/** IANA UDP ports. */
export const VXLAN_PORT = 4789;
export const GENEVE_PORT = 6081;

export const VXLAN_HEADER_BYTES = 8;
export const GENEVE_BASE_BYTES = 8;
/** RFC 8926: Opt Len is 6 bits of 4-byte words. */
export const GENEVE_MAX_OPTIONS_BYTES = 63 * 4;

const VXLAN_FLAG_I = 0x08;
const GENEVE_FLAG_O = 0x80;
const ETHERTYPE_TEB = 0x6558; // Transparent Ethernet Bridging
const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;

/**
 * Why a datagram was not decapsulated; the pump counts drops by these names.
 * (Index 0 is "no error"; decap() returns the negated index.)
 */
export const TUNNEL_ERRORS = [
  null,
  'tunnel-truncated',          // shorter than its tunnel header (or its options)
  'vxlan-no-vni-flag',         // VXLAN I flag clear (RFC 7348 §5)
  'geneve-bad-version',        // GENEVE version not 0 (RFC 8926 §3.4)
  'geneve-control',            // GENEVE O bit: a control message, not data
  'geneve-bad-options',        // option lengths do not add up to Opt Len
  'geneve-unsupported-protocol', // Protocol Type other than Ethernet, IPv4, IPv6
  'tunnel-empty',              // a header and nothing inside
] as const;
export type TunnelError = Exclude<(typeof TUNNEL_ERRORS)[number], null>;

export const E_TRUNCATED = 1;
export const E_VXLAN_FLAGS = 2;
export const E_GENEVE_VERSION = 3;
export const E_GENEVE_CONTROL = 4;
export const E_GENEVE_OPTIONS = 5;
export const E_GENEVE_PROTOCOL = 6;
export const E_EMPTY = 7;

/** What decap() learnt about the last datagram (one object, reused: no allocation per packet). */
export const decoded = {
  /** 24-bit VNI. */
  vni: 0,
  /** LINK_ETHERNET or LINK_RAW_IP: how the core must parse the inner packet. */
  link: LINK_ETHERNET as number,
};

/**
 * Validates the tunnel header at the start of `b` and returns its length (the inner
 * packet starts there), or the negated TUNNEL_ERRORS index. Sets `decoded`.
 */
export function decap(protocol: TunnelProtocol, b: Uint8Array): number {
  return decapAt(protocol, b, 0, b.length);
}

/**
 * decap() of the `len`-byte datagram at `b[off]` (the zero-copy path: a datagram received
 * straight into wasm memory is read where it lies, no view made per datagram).
 */
export function decapAt(protocol: TunnelProtocol, b: Uint8Array, off: number, len: number): number {
  return protocol === 'vxlan' ? decapVxlan(b, off, len) : decapGeneve(b, off, len);
}

export function decapVxlan(b: Uint8Array, off = 0, len = b.length - off): number {
  if (len < VXLAN_HEADER_BYTES) return -E_TRUNCATED;
  if ((b[off] & VXLAN_FLAG_I) === 0) return -E_VXLAN_FLAGS;
  if (len === VXLAN_HEADER_BYTES) return -E_EMPTY;
  decoded.vni = (b[off + 4] << 16) | (b[off + 5] << 8) | b[off + 6];
  decoded.link = LINK_ETHERNET;
  return VXLAN_HEADER_BYTES;
}

export function decapGeneve(b: Uint8Array, off = 0, len = b.length - off): number {
  if (len < GENEVE_BASE_BYTES) return -E_TRUNCATED;
  if (b[off] >>> 6 !== 0) return -E_GENEVE_VERSION;
  if (b[off + 1] & GENEVE_FLAG_O) return -E_GENEVE_CONTROL;
  const optBytes = (b[off] & 0x3f) * 4;
  const header = GENEVE_BASE_BYTES + optBytes;
  if (len < header) return -E_TRUNCATED;
  // Walk the option TLVs: each 4 bytes + Length × 4, ending exactly at Opt Len.
  for (let at = GENEVE_BASE_BYTES; at < header;) {
    if (header - at < 4) return -E_GENEVE_OPTIONS;
    at += 4 + (b[off + at + 3] & 0x1f) * 4;
    if (at > header) return -E_GENEVE_OPTIONS;
  }
  const proto = (b[off + 2] << 8) | b[off + 3];
  if (proto === ETHERTYPE_TEB) decoded.link = LINK_ETHERNET;
  else if (proto === ETHERTYPE_IPV4 || proto === ETHERTYPE_IPV6) decoded.link = LINK_RAW_IP;
  else return -E_GENEVE_PROTOCOL;
  if (len === header) return -E_EMPTY;
  decoded.vni = (b[off + 4] << 16) | (b[off + 5] << 8) | b[off + 6];
  return header;
}

/** Name of a decap() error code (its negated return value). */
export function tunnelErrorName(code: number): TunnelError {
  return (TUNNEL_ERRORS[code < 0 ? -code : code] ?? 'tunnel-truncated') as TunnelError;
}

// ---- Building (tests, benchmarks, tools) -------------------------------------------

/** An 8-byte VXLAN header with the I flag and `vni`. */
export function vxlanHeader(vni: number): Uint8Array {
  checkVni(vni);
  return Uint8Array.of(VXLAN_FLAG_I, 0, 0, 0, (vni >>> 16) & 0xff, (vni >>> 8) & 0xff, vni & 0xff, 0);
}

export interface GeneveOption {
  /** Option Class (16 bits). */
  optionClass: number;
  /** Type (8 bits); the high bit marks a critical option. */
  type: number;
  /** Data, a multiple of 4 bytes, at most 124. */
  data?: Uint8Array;
}

export interface GeneveHeaderSpec {
  vni: number;
  /** Protocol Type; default 0x6558 (Ethernet). */
  protocol?: number;
  options?: GeneveOption[];
  /** O bit (control message). */
  control?: boolean;
}

/** A GENEVE header with its options; C is set when any option is critical. */
export function geneveHeader(spec: GeneveHeaderSpec): Uint8Array {
  checkVni(spec.vni);
  const options = spec.options ?? [];
  let optBytes = 0;
  for (const o of options) {
    const n = o.data?.length ?? 0;
    if (n % 4 !== 0 || n > 124) throw new RangeError('GENEVE option data must be a multiple of 4 bytes, at most 124');
    optBytes += 4 + n;
  }
  if (optBytes > GENEVE_MAX_OPTIONS_BYTES) throw new RangeError(`GENEVE options of ${optBytes} bytes > ${GENEVE_MAX_OPTIONS_BYTES}`);
  const h = new Uint8Array(GENEVE_BASE_BYTES + optBytes);
  const protocol = spec.protocol ?? ETHERTYPE_TEB;
  const critical = options.some((o) => (o.type & 0x80) !== 0);
  h[0] = optBytes / 4;
  h[1] = (spec.control ? GENEVE_FLAG_O : 0) | (critical ? 0x40 : 0);
  h[2] = protocol >>> 8;
  h[3] = protocol & 0xff;
  h[4] = (spec.vni >>> 16) & 0xff;
  h[5] = (spec.vni >>> 8) & 0xff;
  h[6] = spec.vni & 0xff;
  let at = GENEVE_BASE_BYTES;
  for (const o of options) {
    const data = o.data ?? new Uint8Array(0);
    h[at] = o.optionClass >>> 8;
    h[at + 1] = o.optionClass & 0xff;
    h[at + 2] = o.type & 0xff;
    h[at + 3] = data.length / 4;
    h.set(data, at + 4);
    at += 4 + data.length;
  }
  return h;
}

/** header ‖ inner, as one new buffer. */
export function encapsulate(header: Uint8Array, inner: Uint8Array): Uint8Array {
  const out = new Uint8Array(header.length + inner.length);
  out.set(header, 0);
  out.set(inner, header.length);
  return out;
}

function checkVni(vni: number): void {
  if (!Number.isInteger(vni) || vni < 0 || vni > 0xffffff) throw new RangeError(`VNI ${vni} is not a 24-bit integer`);
}
