// The packet builder of the JS tests (raw IP; ether() wraps a frame). Scapy builds the
// Python tests' packets; this file builds every JS test's, so that a header field is
// written in one place.
//
//   packet({ src, dst, proto, sport, dport, tcpFlags, payload, checksums, fragment })
//
// The family follows the address text. Checksums are left zero unless `checksums` is
// true: the core neither needs nor verifies them on the way in, and tests of rewritten
// packets ask for them to check the core's incremental updates.

import { isIPv4, isIPv6 } from 'node:net';

/** The 4 or 16 bytes of an IPv4 or IPv6 address in text form (`::` and a trailing dotted quad allowed). */
export function addressBytes(text) {
  if (isIPv4(text)) return Uint8Array.from(text.split('.').map(Number));
  if (!isIPv6(text)) throw new Error(`not an IP address: ${text}`);
  let s = text;
  let tail = [];
  const m = s.match(/^(.*:)(\d+\.\d+\.\d+\.\d+)$/); // trailing dotted quad
  if (m) {
    const q = m[2].split('.').map(Number);
    tail = [(q[0] << 8) | q[1], (q[2] << 8) | q[3]];
    s = m[1].endsWith('::') ? m[1] : m[1].slice(0, -1);
  }
  const hex = (part) => (part === '' ? [] : part.split(':').map((x) => parseInt(x, 16)));
  let groups;
  if (s.includes('::')) {
    const [head, rest] = s.split('::');
    const h = hex(head);
    const r = [...hex(rest), ...tail];
    groups = [...h, ...Array(8 - h.length - r.length).fill(0), ...r];
  } else {
    groups = [...hex(s), ...tail];
  }
  const out = new Uint8Array(16);
  groups.forEach((g, i) => { out[2 * i] = g >> 8; out[2 * i + 1] = g & 0xff; });
  return out;
}

/** The ones'-complement sum of `bytes` (RFC 1071), folded to 16 bits. */
export function checksum(bytes, initial = 0) {
  let sum = initial;
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += (bytes[i] << 8) | bytes[i + 1];
  if (bytes.length & 1) sum += bytes[bytes.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** L4 header for proto: TCP (20 B, flags), UDP (8 B), SCTP (12 B), ICMP/ICMPv6 echo (8 B). */
function l4Header(proto, sport, dport, { tcpFlags = 0x02, icmpType, id = 0 }) {
  const b = new Uint8Array(proto === 6 ? 20 : proto === 132 ? 12 : 8);
  if (proto === 6 || proto === 17 || proto === 132) {
    b[0] = sport >> 8; b[1] = sport; b[2] = dport >> 8; b[3] = dport;
  }
  if (proto === 6) {
    b[7] = 1;                 // sequence number 1
    b[12] = 5 << 4; b[13] = tcpFlags;
    b[14] = 0xff; b[15] = 0xff; // window
  } else if (proto === 1 || proto === 58) {
    b[0] = icmpType ?? (proto === 1 ? 8 : 128);
    b[4] = id >> 8; b[5] = id;
  }
  return b;
}

/**
 * An IPv4 or IPv6 packet from `src` to `dst`. `payload`: a byte count (zeros) or bytes.
 * `fragment`: { offset (8-byte units), more, id }: an IPv4 fragment, or an IPv6 one with a
 * fragment header; a later fragment (offset > 0) carries the payload only, no L4 header.
 * `checksums`: fill in the IPv4 header and the UDP/TCP checksums.
 */
export function packet({
  src, dst, proto = 6, sport = 1000, dport = 80, payload = 0, checksums = false, fragment = null, ttl = 64, ...opts
}) {
  const s = addressBytes(src);
  const d = addressBytes(dst);
  if (s.length !== d.length) throw new Error(`packet: ${src} and ${dst} are of different families`);
  const data = typeof payload === 'number' ? new Uint8Array(payload) : Uint8Array.from(payload);
  const later = fragment !== null && fragment.offset > 0;
  const head = later ? new Uint8Array(0) : l4Header(proto, sport, dport, opts);
  if (proto === 17 && !later) { head[4] = (head.length + data.length) >> 8; head[5] = head.length + data.length; }
  const body = new Uint8Array(head.length + data.length);
  body.set(head);
  body.set(data, head.length);
  if (checksums && !later && (proto === 6 || proto === 17)) {
    const pseudo = new Uint8Array(s.length * 2 + 8);
    pseudo.set(s); pseudo.set(d, s.length);
    const dv = new DataView(pseudo.buffer);
    dv.setUint32(s.length * 2, body.length);
    pseudo[s.length * 2 + 7] = proto;
    const c = ~checksum(body, checksum(pseudo)) & 0xffff;
    new DataView(body.buffer).setUint16(proto === 6 ? 16 : 6, proto === 17 && c === 0 ? 0xffff : c);
  }
  if (s.length === 4) {
    const p = new Uint8Array(20 + body.length);
    const dv = new DataView(p.buffer);
    p[0] = 0x45; dv.setUint16(2, p.length); p[8] = ttl; p[9] = proto;
    if (fragment) {
      dv.setUint16(4, fragment.id ?? 1);
      dv.setUint16(6, (fragment.more ? 0x2000 : 0) | fragment.offset);
    } else {
      dv.setUint16(4, 1);
    }
    p.set(s, 12); p.set(d, 16); p.set(body, 20);
    if (checksums) dv.setUint16(10, ~checksum(p.subarray(0, 20)) & 0xffff);
    return p;
  }
  const ext = fragment ? 8 : 0;
  const p = new Uint8Array(40 + ext + body.length);
  const dv = new DataView(p.buffer);
  p[0] = 0x60; dv.setUint16(4, ext + body.length); p[6] = fragment ? 44 : proto; p[7] = ttl;
  p.set(s, 8); p.set(d, 24);
  if (fragment) {
    p[40] = proto;
    dv.setUint16(42, (fragment.offset << 3) | (fragment.more ? 1 : 0));
    dv.setUint32(44, fragment.id ?? 1);
  }
  p.set(body, 40 + ext);
  return p;
}

/** The pseudo-header sum (folded, not complemented) of a raw IPv4 or IPv6 packet's transport segment. */
export function pseudoSum(p) {
  const v6 = p[0] >> 4 === 6;
  const l4 = v6 ? 40 : (p[0] & 15) * 4;
  const total = v6 ? 40 + ((p[4] << 8) | p[5]) : (p[2] << 8) | p[3];
  const addresses = v6 ? p.subarray(8, 40) : p.subarray(12, 20);
  const proto = v6 ? p[6] : p[9];
  return checksum(Uint8Array.of(0, proto, (total - l4) >> 8, (total - l4) & 0xff), checksum(addresses));
}

/** Whether a raw packet's IPv4 header checksum (IPv4) and its UDP/TCP checksum are right (no IPv6 extension headers). */
export function checksumsValid(p) {
  const v6 = p[0] >> 4 === 6;
  if (!v6 && checksum(p.subarray(0, 20)) !== 0xffff) return false;
  const l4 = v6 ? 40 : (p[0] & 15) * 4;
  const total = v6 ? 40 + ((p[4] << 8) | p[5]) : (p[2] << 8) | p[3];
  const pseudo = pseudoSum(p);
  return checksum(p.subarray(l4, total), pseudo) === 0xffff;
}

/** An Ethernet frame around `inner` (EtherType `type`). */
export function ether(inner, type = inner[0] >> 4 === 6 ? 0x86dd : 0x0800) {
  const e = new Uint8Array(14 + inner.length);
  e.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
  e[12] = type >> 8; e[13] = type & 0xff;
  e.set(inner, 14);
  return e;
}

export const concat = (...parts) => Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.length)));

/** Deterministic pseudo-random numbers (xorshift32). */
export function rng(seed = 0x9e3779b9) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
}

/** A random IPv4 address from `next` (rng()). */
export function randomV4(next) {
  const r = next();
  return `${(r >>> 24) & 0xff}.${(r >>> 16) & 0xff}.${(r >>> 8) & 0xff}.${r & 0xff}`;
}

/** A random IPv6 address from `next` (rng()). */
export function randomV6(next) {
  const g = [];
  for (let i = 0; i < 8; i++) g.push((next() & 0xffff).toString(16));
  return g.join(':');
}
