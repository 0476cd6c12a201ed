// Hand-built packets for host tests (raw IP, no L2). Checksums are left zero: the core
// neither needs nor verifies them on the way in.

function addrBytes(text) {
  if (text.includes(':')) {
    const [head, tail] = text.split('::');
    const parse = (s) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
    const h = parse(head);
    const t = tail === undefined ? [] : parse(tail);
    const groups = tail === undefined ? h : [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
    const out = new Uint8Array(16);
    groups.forEach((g, i) => { out[i * 2] = g >> 8; out[i * 2 + 1] = g & 0xff; });
    return out;
  }
  return Uint8Array.from(text.split('.').map(Number));
}

/** L4 header for proto: TCP (20 B, flags), UDP (8 B), SCTP (12 B), ICMP/ICMPv6 echo (8 B). */
function l4(proto, sport, dport, { tcpFlags = 0x02, icmpType, id = 0 } = {}) {
  if (proto === 6) {
    const b = new Uint8Array(20);
    b[0] = sport >> 8; b[1] = sport; b[2] = dport >> 8; b[3] = dport;
    b[12] = 5 << 4; b[13] = tcpFlags;
    return b;
  }
  if (proto === 17 || proto === 132) {
    const b = new Uint8Array(proto === 17 ? 8 : 12);
    b[0] = sport >> 8; b[1] = sport; b[2] = dport >> 8; b[3] = dport;
    if (proto === 17) { b[4] = 0; b[5] = 8; }
    return b;
  }
  if (proto === 1 || proto === 58) {
    const b = new Uint8Array(8);
    b[0] = icmpType ?? (proto === 1 ? 8 : 128);
    b[4] = id >> 8; b[5] = id;
    return b;
  }
  return new Uint8Array(8);
}

/** An IPv4 or IPv6 packet from `src` to `dst` (the family follows the address text). */
export function packet({ src, dst, proto = 6, sport = 1000, dport = 80, payload = 0, ...opts }) {
  const s = addrBytes(src);
  const d = addrBytes(dst);
  const body = l4(proto, sport, dport, opts);
  const len = body.length + payload;
  if (s.length === 4) {
    const p = new Uint8Array(20 + len);
    p[0] = 0x45; p[2] = (20 + len) >> 8; p[3] = (20 + len) & 0xff; p[8] = 64; p[9] = proto;
    p.set(s, 12); p.set(d, 16); p.set(body, 20);
    return p;
  }
  const p = new Uint8Array(40 + len);
  p[0] = 0x60; p[4] = len >> 8; p[5] = len & 0xff; p[6] = proto; p[7] = 64;
  p.set(s, 8); p.set(d, 24); p.set(body, 40);
  return p;
}

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

export function randomV4(next) {
  const r = next();
  return `${(r >>> 24) & 0xff}.${(r >>> 16) & 0xff}.${(r >>> 8) & 0xff}.${r & 0xff}`;
}

export function randomV6(next) {
  const g = [];
  for (let i = 0; i < 8; i++) g.push((next() & 0xffff).toString(16));
  return g.join(':');
}
