// Envoy's "ip:port" property strings → address bytes and port, read straight from the
// host's buffer with no allocation (the connection path).
//   IPv4 "10.0.0.1:1234"; IPv6 "[2001:db8::1]:1234" (RFC 5952 text, `::` and a trailing
//   dotted quad allowed). An IPv4-mapped IPv6 address (::ffff:a.b.c.d, a dual-stack
//   listener's view of an IPv4 client) is read as the IPv4 address.

/** Port of the last endpoint parsed. */
export let endpointPort: u16 = 0;

@inline function digit(c: u32): i32 { return c >= 48 && c <= 57 ? <i32>(c - 48) : -1; }

function hexDigit(c: u32): i32 {
  if (c >= 48 && c <= 57) return <i32>(c - 48);
  if (c >= 97 && c <= 102) return <i32>(c - 87);
  if (c >= 65 && c <= 70) return <i32>(c - 55);
  return -1;
}

/** Dotted quad at [p, end) into out[0..4); false when malformed. */
function dotted(p: usize, end: usize, out: usize): bool {
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let q = p; q <= end; q++) {
    const c: u32 = q < end ? <u32>load<u8>(q) : 46;
    if (c == 46) {
      if (digits == 0 || part > 3) return false;
      store<u8>(out + <usize>part, <u8>value);
      part++;
      value = 0;
      digits = 0;
      continue;
    }
    const d = digit(c);
    if (d < 0 || digits >= 3) return false;
    value = value * 10 + d;
    if (value > 255) return false;
    digits++;
  }
  return part == 4;
}

/** IPv6 text at [p, end) into out[0..16); false when malformed. */
function ipv6(p: usize, end: usize, out: usize): bool {
  // Groups before and after "::" are collected, then the gap is zero-filled.
  const groups = changetype<usize>(scratch);
  let n = 0;          // groups written
  let gap = -1;       // group index where "::" stands
  let q = p;
  if (q + 1 < end && load<u8>(q) == 58 && load<u8>(q + 1) == 58) {
    gap = 0;
    q += 2;
    if (q == end) {
      memory.fill(out, 0, 16);
      return true;
    }
  }
  while (q < end) {
    // A dotted quad ends the address: it fills the last two groups.
    let r = q;
    let isDotted = false;
    while (r < end && load<u8>(r) != 58) {
      if (load<u8>(r) == 46) isDotted = true;
      r++;
    }
    if (isDotted) {
      if (r != end || n > 6) return false;
      const quad = groups + 32;
      if (!dotted(q, end, quad)) return false;
      store<u16>(groups + (<usize>n << 1), (<u16>load<u8>(quad) << 8) | load<u8>(quad, 1));
      store<u16>(groups + (<usize>(n + 1) << 1), (<u16>load<u8>(quad, 2) << 8) | load<u8>(quad, 3));
      n += 2;
      q = end;
      break;
    }
    const len = <i32>(r - q);
    if (len == 0 || len > 4 || n >= 8) return false;
    let v = 0;
    for (let i = 0; i < len; i++) {
      const h = hexDigit(load<u8>(q + <usize>i));
      if (h < 0) return false;
      v = (v << 4) | h;
    }
    store<u16>(groups + (<usize>n << 1), <u16>v);
    n++;
    q = r;
    if (q < end) {
      q++; // ':'
      if (q < end && load<u8>(q) == 58) {
        if (gap >= 0) return false;
        gap = n;
        q++;
      } else if (q == end) {
        return false; // trailing single ':'
      }
    }
  }
  if (gap < 0 && n != 8) return false;
  if (gap >= 0 && n > 7) return false;
  const zeros = 8 - n;
  let g = 0;
  for (let i = 0; i < 8; i++) {
    let v: u16 = 0;
    if (gap >= 0 && i >= gap && i < gap + zeros) v = 0;
    else {
      v = load<u16>(groups + (<usize>g << 1));
      g++;
    }
    store<u8>(out + (<usize>i << 1), <u8>(v >> 8));
    store<u8>(out + (<usize>i << 1) + 1, <u8>v);
  }
  return true;
}

const scratch = new StaticArray<u8>(48);

function port(p: usize, end: usize): bool {
  if (p >= end || end - p > 5) return false;
  let v = 0;
  for (let q = p; q < end; q++) {
    const d = digit(load<u8>(q));
    if (d < 0) return false;
    v = v * 10 + d;
  }
  if (v > 65535) return false;
  endpointPort = <u16>v;
  return true;
}

/**
 * Parses "a.b.c.d:port" or "[v6]:port" at [p, p + len) into out (16 bytes, network
 * order; IPv4 in the first 4) and endpointPort. Returns the family (4 or 6), 0 if malformed.
 */
export function parseEndpoint(p: usize, len: i32, out: usize): i32 {
  if (len <= 0) return 0;
  const end = p + <usize>len;
  if (load<u8>(p) == 91) { // '['
    let close = p + 1;
    while (close < end && load<u8>(close) != 93) close++;
    if (close + 1 >= end || load<u8>(close + 1) != 58) return 0;
    if (!ipv6(p + 1, close, out) || !port(close + 2, end)) return 0;
    // ::ffff:a.b.c.d → IPv4
    if (load<u64>(out) == 0 && load<u32>(out, 8) == 0xffff0000) {
      store<u32>(out, load<u32>(out, 12));
      return 4;
    }
    return 6;
  }
  let colon = end;
  for (let q = p; q < end; q++) if (load<u8>(q) == 58) colon = q;
  if (colon == end) return 0;
  if (!dotted(p, colon, out) || !port(colon + 1, end)) return 0;
  return 4;
}
