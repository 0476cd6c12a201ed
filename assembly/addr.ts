// IP address text → bytes, for the configuration (never on the packet path).
// IPv4: dotted quad, four decimal parts 0–255, no leading zeros (a leading zero is
// octal to some tools: rejected as ambiguous). IPv6: RFC 4291 §2.2 text, with `::`
// and a trailing dotted quad; no zone index, no prefix length.

/** Parsed address: family (4 or 6; 0 = invalid) and the 16 bytes in network order. */
export class Address {
  family: u8 = 0;
  bytes: StaticArray<u8> = new StaticArray<u8>(16);

  /** Key words as hash.ts builds them from packet bytes. */
  lo(): u64 {
    const p = changetype<usize>(this.bytes);
    return this.family == 4 ? <u64>load<u32>(p) : load<u64>(p);
  }
  hi(): u64 {
    const p = changetype<usize>(this.bytes);
    return this.family == 4 ? 0 : load<u64>(p, 8);
  }
}

function digit(c: i32): i32 {
  return c >= 48 && c <= 57 ? c - 48 : -1;
}

function hexDigit(c: i32): i32 {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Parses a dotted quad at s[from, to) into out[at, at + 4). */
function parseDotted(s: string, from: i32, to: i32, out: StaticArray<u8>, at: i32): bool {
  let part = 0;
  let value = -1;
  let digits = 0;
  for (let i = from; i <= to; i++) {
    const c = i < to ? s.charCodeAt(i) : 46; // a final '.' closes the last part
    if (c == 46) {
      if (digits == 0 || part > 3) return false;
      out[at + part] = <u8>value;
      part++;
      value = -1;
      digits = 0;
      continue;
    }
    const d = digit(c);
    if (d < 0) return false;
    if (digits > 0 && value == 0) return false; // leading zero
    value = digits == 0 ? d : value * 10 + d;
    digits++;
    if (value > 255) return false;
  }
  return part == 4;
}

export function parseAddress(s: string): Address {
  const a = new Address();
  const n = s.length;
  if (n == 0 || n > 45) return a;
  if (s.indexOf(":") < 0) {
    if (parseDotted(s, 0, n, a.bytes, 0)) a.family = 4;
    return a;
  }
  // IPv6: up to 8 groups; `::` once; an IPv4 tail takes two groups.
  const groups = new StaticArray<i32>(8);
  let count = 0;
  let gap = -1;
  let i = 0;
  if (s.startsWith("::")) {
    gap = 0;
    i = 2;
    if (n == 2) {
      a.family = 6;
      return a;
    }
  } else if (s.charCodeAt(0) == 58) {
    return a;
  }
  while (i < n) {
    // A dotted IPv4 tail?
    let end = i;
    let hasDot = false;
    while (end < n && s.charCodeAt(end) != 58) {
      if (s.charCodeAt(end) == 46) hasDot = true;
      end++;
    }
    if (hasDot) {
      if (end != n || count > 6) return a;
      const tail = new StaticArray<u8>(4);
      if (!parseDotted(s, i, end, tail, 0)) return a;
      groups[count++] = (<i32>tail[0] << 8) | tail[1];
      groups[count++] = (<i32>tail[2] << 8) | tail[3];
      i = end;
      break;
    }
    const len = end - i;
    if (len < 1 || len > 4 || count >= 8) return a;
    let v = 0;
    for (let k = i; k < end; k++) {
      const h = hexDigit(s.charCodeAt(k));
      if (h < 0) return a;
      v = (v << 4) | h;
    }
    groups[count++] = v;
    i = end;
    if (i == n) break;
    // At a ':'.
    if (i + 1 < n && s.charCodeAt(i + 1) == 58) {
      if (gap >= 0) return a; // a second `::`
      gap = count;
      i += 2;
      if (i == n) break;
    } else {
      i += 1;
      if (i == n) return a; // trailing single ':'
    }
  }
  if (gap < 0 && count != 8) return a;
  if (gap >= 0 && count > 7) return a;
  // Expand: groups before the gap, zeros, groups after.
  const after = gap < 0 ? 0 : count - gap;
  const before = count - after;
  for (let g = 0; g < before; g++) {
    a.bytes[g * 2] = <u8>(groups[g] >> 8);
    a.bytes[g * 2 + 1] = <u8>groups[g];
  }
  for (let g = 0; g < after; g++) {
    const at = 8 - after + g;
    a.bytes[at * 2] = <u8>(groups[before + g] >> 8);
    a.bytes[at * 2 + 1] = <u8>groups[before + g];
  }
  a.family = 6;
  return a;
}

/** The address as text: IPv4 dotted quad; IPv6 in RFC 5952 form (lowercase, the longest
 *  run of two or more zero groups as `::`). What describe() reports to hosts. */
export function formatAddress(a: Address): string {
  const b = a.bytes;
  if (a.family == 4) {
    return b[0].toString() + "." + b[1].toString() + "." + b[2].toString() + "." + b[3].toString();
  }
  if (a.family != 6) return "";
  const g = new StaticArray<i32>(8);
  for (let i = 0; i < 8; i++) g[i] = (<i32>b[i * 2] << 8) | b[i * 2 + 1];
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] != 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] == 0) j++;
    if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  let out = "";
  for (let i = 0; i < 8; i++) {
    if (i == bestAt) {
      out += "::";
      i += bestLen - 1;
      continue;
    }
    if (out.length > 0 && !out.endsWith(":")) out += ":";
    out += g[i].toString(16);
  }
  return out;
}
