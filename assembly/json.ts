// Strict RFC 8259 JSON parser for configuration documents (control plane).
//
// Guarantees
//  * Never traps/aborts on any input bytes: no `throw`, every input read is bounds-checked against
//    `len`, `(ptr, len)` itself is checked against the current memory size, no recursion (an
//    explicit heap stack is used, so `maxDepth` bounds memory, not the native/shadow stack), no
//    Map.get/Array.pop/indexing without a preceding check. The only remaining failure mode is
//    running out of memory (the allocator aborts), which is unavoidable in AssemblyScript.
//  * Linear time: strings are scanned twice at most, ASCII strings without escapes are decoded in
//    one `String.UTF8.decodeUnsafe`, strings with escapes / non-ASCII are decoded into a reusable
//    UTF-16 scratch buffer, duplicate-key detection switches to a hash index for objects with
//    more than a few keys.
//
// Accepted grammar: exactly RFC 8259 (whitespace = SP, HT, LF, CR; no comments, no trailing
// commas, no leading zeros, no NaN/Infinity, escapes \" \\ \/ \b \f \n \r \t \uXXXX, surrogate pairs
// must be escaped as pairs, control characters < 0x20 must be escaped, strings must be valid UTF-8:
// no overlongs, no UTF-8-encoded surrogates, nothing above U+10FFFF, no truncated sequences).
// Numbers are converted with a correctly rounded (round-half-even) decimal->f64 routine below, not
// the std parseFloat (which is inaccurate in AS 0.27).
// Decisions:
//  * A leading UTF-8 byte order mark (EF BB BF) is SKIPPED (RFC 8259 §8.1 permits ignoring it);
//    offsets still refer to the original input, so the first value is then at offset 3.
//  * Duplicate keys in one object are an error: `duplicate key "x"` (offset of the second key).
//  * A number whose value does not fit an f64 (e.g. 1e400) is an error: `number out of range`.
//    Underflow (1e-400) silently becomes 0, as in every JSON implementation.
//  * Nesting: `[]` has depth 1; opening a container at depth maxDepth fails with
//    `nesting deeper than <maxDepth>` at the bracket's offset. maxDepth < 0 is treated as 0
//    (only scalars accepted).
//
// Error messages (JsonResult.error) and their offsets (JsonResult.errorOffset, a byte offset into
// the input; -1 on success):
//   empty input                          no value at all (only whitespace/BOM)           offset len
//   unexpected end of input              input ends inside a value/container (not string) offset len
//   unexpected character 'x'             a value was expected (x is the char, or 0xNN for
//                                        bytes outside 0x21..0x7e)                      offset of char
//   unexpected character 'x' after value trailing non-whitespace after the top-level value
//   expected string key                  in an object, where a key is required
//   expected ':'                         after an object key
//   expected ',' or ']'                  after an array element
//   expected ',' or '}'                  after an object member value
//   trailing comma                       `[1,]`, `{"a":1,}`                             offset of ','
//   unterminated string                  no closing quote before end of input          offset of '"'
//                                        (checked first: other errors inside such a string are not reported)
//   control character in string         raw byte < 0x20 inside a string               offset of byte
//   invalid escape                       unknown escape or bad \u hex digits            offset of '\'
//                                        (for "\uD83D\uZZZZ": offset of the second '\')
//   lone surrogate                       \uD800-\uDFFF escape not forming a valid pair   offset of '\'
//   invalid utf-8                        malformed UTF-8 inside a string               offset of lead byte
//   invalid number                       a digit is required: `-x`, `1.x`, `1e+x`, `--1`  offset of number
//                                        (`-`, `1.`, `1e` at the very end: unexpected end of input;
//                                        `.5`, `+1`: unexpected character)
//   leading zero in number               `01`, `-00`                                    offset of number
//   number out of range                  |value| overflows f64                          offset of number
//   nesting deeper than N                more than maxDepth nested containers           offset of bracket
//   duplicate key "k"                    second occurrence of a key in one object        offset of key
//   string too long                      a single string/number token of >= 256 MiB      offset of token
//   input too large / invalid input range   len > 0x7FFFFFF0, len < 0, or (ptr,len) outside memory

export const enum JsonKind {
  Null = 0,
  Bool = 1,
  Number = 2,
  String = 3,
  Array = 4,
  Object = 5,
}

export class JsonValue {
  kind: JsonKind;
  /** Byte offset of the value's first character in the input. */
  offset: i32;

  constructor(kind: JsonKind, offset: i32) {
    this.kind = kind;
    this.offset = offset;
  }

  isNull(): bool { return this.kind == JsonKind.Null; }
  isBool(): bool { return this.kind == JsonKind.Bool; }
  isNumber(): bool { return this.kind == JsonKind.Number; }
  isString(): bool { return this.kind == JsonKind.String; }
  isArray(): bool { return this.kind == JsonKind.Array; }
  isObject(): bool { return this.kind == JsonKind.Object; }

  kindName(): string {
    switch (this.kind) {
      case JsonKind.Null: return "null";
      case JsonKind.Bool: return "boolean";
      case JsonKind.Number: return "number";
      case JsonKind.String: return "string";
      case JsonKind.Array: return "array";
      case JsonKind.Object: return "object";
    }
    return "unknown";
  }
}

export class JsonBool extends JsonValue {
  value: bool;
  constructor(offset: i32, value: bool) {
    super(JsonKind.Bool, offset);
    this.value = value;
  }
}

export class JsonNumber extends JsonValue {
  value: f64;
  /**
   * No fraction/exponent in the source text and |value| <= 2^53, judged on the exact decimal
   * text (so "9007199254740993", which rounds to 2^53, is not an integer).
   */
  isInteger: bool;
  /** The number's source text. */
  raw: string;
  constructor(offset: i32, value: f64, isInteger: bool, raw: string) {
    super(JsonKind.Number, offset);
    this.value = value;
    this.isInteger = isInteger;
    this.raw = raw;
  }
}

export class JsonString extends JsonValue {
  value: string;
  constructor(offset: i32, value: string) {
    super(JsonKind.String, offset);
    this.value = value;
  }
}

export class JsonArray extends JsonValue {
  items: Array<JsonValue>;
  constructor(offset: i32) {
    super(JsonKind.Array, offset);
    this.items = new Array<JsonValue>();
  }
}

/** Objects with at least this many keys get a hash index (duplicate detection and get()). */
const INDEX_THRESHOLD = 8;

export class JsonObject extends JsonValue {
  /** Keys in source order; keys[i] belongs to values[i]. */
  keys: Array<string>;
  values: Array<JsonValue>;
  /** key -> position; built by the parser for large objects. Ignored if out of sync with keys. */
  private index: Map<string, i32> | null = null;

  constructor(offset: i32) {
    super(JsonKind.Object, offset);
    this.keys = new Array<string>();
    this.values = new Array<JsonValue>();
  }

  /** Position of `key` in keys, or -1. */
  indexOf(key: string): i32 {
    let keys = this.keys;
    let n = keys.length;
    let index = this.index;
    if (index !== null && index.size == n) {
      if (!index.has(key)) return -1;
      let i = index.get(key);
      if (i >= 0 && i < n && keys[i] == key) return i;
      // index out of sync (keys edited by hand): fall through to the scan
    }
    for (let i = 0; i < n; i++) {
      if (keys[i] == key) return i;
    }
    return -1;
  }

  get(key: string): JsonValue | null {
    let i = this.indexOf(key);
    if (i < 0 || i >= this.values.length) return null;
    return this.values[i];
  }

  has(key: string): bool {
    let i = this.indexOf(key);
    return i >= 0 && i < this.values.length;
  }

  /** Parser helper: append a key; returns false if it is already present. */
  addKey(key: string): bool {
    let keys = this.keys;
    let n = keys.length;
    let index = this.index;
    if (index !== null && index.size == n) {
      if (index.has(key)) return false;
      index.set(key, n);
    } else {
      for (let i = 0; i < n; i++) {
        if (unchecked(keys[i]) == key) return false;
      }
      if (n + 1 >= INDEX_THRESHOLD) {
        let m = new Map<string, i32>();
        for (let i = 0; i < n; i++) m.set(unchecked(keys[i]), i);
        m.set(key, n);
        this.index = m;
      }
    }
    keys.push(key);
    return true;
  }
}

export class JsonResult {
  value: JsonValue | null;
  /** "" on success. */
  error: string;
  /** Byte offset of the error in the input; -1 on success. */
  errorOffset: i32;
  constructor(value: JsonValue | null, error: string, errorOffset: i32) {
    this.value = value;
    this.error = error;
    this.errorOffset = errorOffset;
  }
}

// ---------------------------------------------------------------------------------------------

const MAX_INPUT: i32 = 0x7FFFFFF0; // keeps every `pos + small` computation far from i32 overflow
const MAX_TOKEN: i32 = 1 << 28; // decoded strings must stay below the runtime's block size limit

const C_TAB: u32 = 0x09;
const C_LF: u32 = 0x0A;
const C_CR: u32 = 0x0D;
const C_SPACE: u32 = 0x20;
const C_QUOTE: u32 = 0x22;
const C_PLUS: u32 = 0x2B;
const C_COMMA: u32 = 0x2C;
const C_MINUS: u32 = 0x2D;
const C_DOT: u32 = 0x2E;
const C_SLASH: u32 = 0x2F;
const C_0: u32 = 0x30;
const C_1: u32 = 0x31;
const C_9: u32 = 0x39;
const C_COLON: u32 = 0x3A;
const C_LBRACKET: u32 = 0x5B;
const C_BACKSLASH: u32 = 0x5C;
const C_RBRACKET: u32 = 0x5D;
const C_LBRACE: u32 = 0x7B;
const C_RBRACE: u32 = 0x7D;

/** Reusable UTF-16 buffer for strings that need decoding (escapes or non-ASCII). */
let scratch: StaticArray<u16> = new StaticArray<u16>(256);
const SCRATCH_KEEP: i32 = 1 << 16;

const HEX: string = "0123456789abcdef";

function hexByte(c: u32): string {
  return "0x" + HEX.charAt(<i32>((c >> 4) & 15)) + HEX.charAt(<i32>(c & 15));
}

/** `'x'` for printable ASCII, `0xNN` otherwise. */
function describeByte(c: u32): string {
  if (c >= 0x21 && c <= 0x7E) return "'" + String.fromCharCode(<i32>c) + "'";
  return hexByte(c);
}

/** Quote a key for an error message (escapes quotes, backslashes, controls; truncates). */
function quoteForMessage(s: string): string {
  let out = new Array<string>();
  out.push("\"");
  let n = s.length;
  let limit = n > 64 ? 64 : n;
  for (let i = 0; i < limit; i++) {
    let c = <u32>s.charCodeAt(i);
    if (c == C_QUOTE) out.push("\\\"");
    else if (c == C_BACKSLASH) out.push("\\\\");
    else if (c < 0x20) out.push("\\u00" + HEX.charAt(<i32>(c >> 4)) + HEX.charAt(<i32>(c & 15)));
    else out.push(String.fromCharCode(<i32>c));
  }
  if (n > limit) out.push("...");
  out.push("\"");
  return out.join("");
}

@inline function isDigit(c: u32): bool {
  return c - C_0 < 10;
}

function hexValue(c: u32): i32 {
  if (c - C_0 < 10) return <i32>(c - C_0);
  let l = c | 0x20;
  if (l - 0x61 < 6) return <i32>(l - 0x61 + 10);
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Decimal -> f64, correctly rounded (round-half-even), without the std parseFloat: AS 0.27's
// strtod mis-scales some inputs (e.g. "3.4460414683986424e+51" -> 3.446e+38).
//
// Fast path (Clinger): <= 15 significant digits and a small power of ten -> one exact IEEE
// operation. Otherwise: an approximation within a few ulps, then exact big-integer comparisons
// against the midpoints between neighbouring doubles decide the correctly rounded result.

/** Digits beyond this many significant digits only matter as a non-zero "sticky" digit. */
const MAX_SIG_DIGITS: i32 = 800;
/** Limb capacity of the big integers: ~4800 bits are needed at most (see cmpMid). */
const BIG_CAP: i32 = 256;

const POW10: StaticArray<f64> = [
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/** Little-endian u32-limb unsigned big integer with fixed capacity (never grows past BIG_CAP). */
class Big {
  limbs: StaticArray<u32> = new StaticArray<u32>(BIG_CAP);
  len: i32 = 0; // limbs in use; limbs[len-1] != 0 unless len == 0

  setU64(v: u64): void {
    let l = this.limbs;
    unchecked(l[0] = <u32>v);
    unchecked(l[1] = <u32>(v >> 32));
    this.len = v == 0 ? 0 : (v >> 32) != 0 ? 2 : 1;
  }

  copyFrom(o: Big): void {
    let n = o.len;
    memory.copy(changetype<usize>(this.limbs), changetype<usize>(o.limbs), <usize>n << 2);
    this.len = n;
  }

  /** this = this * m + add */
  mulAdd(m: u32, add: u32): void {
    let l = this.limbs;
    let n = this.len;
    let carry: u64 = add;
    for (let i = 0; i < n; i++) {
      let t = <u64>unchecked(l[i]) * <u64>m + carry;
      unchecked(l[i] = <u32>t);
      carry = t >> 32;
    }
    if (carry != 0 && n < BIG_CAP) {
      unchecked(l[n] = <u32>carry);
      n++;
    }
    // trim (m may be 0)
    while (n > 0 && unchecked(l[n - 1]) == 0) n--;
    this.len = n;
  }

  mulPow5(k: i32): void {
    while (k >= 13) {
      this.mulAdd(1220703125, 0); // 5^13
      k -= 13;
    }
    let p: u32 = 1;
    for (let i = 0; i < k; i++) p *= 5;
    if (p != 1) this.mulAdd(p, 0);
  }

  shl(bits: i32): void {
    let n = this.len;
    if (n == 0 || bits <= 0) return;
    let words = bits >> 5;
    let b = bits & 31;
    let l = this.limbs;
    let newLen = n + words + 1;
    if (newLen > BIG_CAP) newLen = BIG_CAP; // cannot happen for JSON numbers (see cmpMid)
    for (let i = newLen - 1; i >= 0; i--) {
      let src = i - words;
      let hi: u32 = src >= 0 && src < n ? unchecked(l[src]) : 0;
      let lo: u32 = src - 1 >= 0 && src - 1 < n ? unchecked(l[src - 1]) : 0;
      unchecked(l[i] = b == 0 ? hi : (hi << b) | (lo >> (32 - b)));
    }
    while (newLen > 0 && unchecked(l[newLen - 1]) == 0) newLen--;
    this.len = newLen;
  }
}

function cmpBig(a: Big, b: Big): i32 {
  if (a.len != b.len) return a.len > b.len ? 1 : -1;
  let al = a.limbs;
  let bl = b.limbs;
  for (let i = a.len - 1; i >= 0; i--) {
    let x = unchecked(al[i]);
    let y = unchecked(bl[i]);
    if (x != y) return x > y ? 1 : -1;
  }
  return 0;
}

// lazily allocated scratch big integers for the slow path
let bigD: Big | null = null;
let bigL: Big | null = null;
let bigR: Big | null = null;

/**
 * Compare the exact value D * 10^e (D = bigD) with the midpoint between the positive finite
 * double with bit pattern `bits` and its successor. Returns -1, 0, 1.
 */
function cmpMid(bits: u64, e: i32): i32 {
  let biased = <i32>(bits >> 52);
  let frac = bits & 0xFFFFFFFFFFFFF;
  let m: u64 = biased == 0 ? frac : frac | 0x10000000000000;
  let be: i32 = biased == 0 ? -1074 : biased - 1075;
  // midpoint = (2m + 1) * 2^(be - 1);  value = D * 5^e * 2^e
  let L = bigL!;
  let R = bigR!;
  L.copyFrom(bigD!);
  let l2 = 0;
  R.setU64((m << 1) | 1);
  let r2 = be - 1;
  if (e >= 0) {
    L.mulPow5(e);
    l2 = e;
  } else {
    R.mulPow5(-e);
    r2 -= e;
  }
  if (l2 > r2) L.shl(l2 - r2);
  else R.shl(r2 - l2);
  return cmpBig(L, R);
}

/** Digit k of the significand digit sequence (integer digits followed by fraction digits). */
@inline function digitAt(ptr: usize, intStart: i32, intLen: i32, fracStart: i32, k: i32): u32 {
  let at = k < intLen ? intStart + k : fracStart + (k - intLen);
  return <u32>load<u8>(ptr + <usize>at) - C_0;
}

/**
 * The non-negative value of the validated number text (digits [intStart,intEnd), fraction digits
 * [fracStart,fracEnd), decimal exponent exp10) rounded to the nearest f64; Infinity on overflow.
 */
function decimalToF64(ptr: usize, intStart: i32, intEnd: i32, fracStart: i32, fracEnd: i32, exp10: i64): f64 {
  let intLen = intEnd - intStart;
  let total = intLen + (fracEnd - fracStart);
  // first and last non-zero digit
  let first = 0;
  while (first < total && digitAt(ptr, intStart, intLen, fracStart, first) == 0) first++;
  if (first == total) return 0;
  let last = total - 1;
  while (digitAt(ptr, intStart, intLen, fracStart, last) == 0) last--;
  let n = last - first + 1;
  // value = digits[first..last] * 10^e
  let e64: i64 = exp10 - <i64>(fracEnd - fracStart) + <i64>(total - 1 - last);
  let sticky = false;
  if (n > MAX_SIG_DIGITS) {
    // keep MAX_SIG_DIGITS digits and append a non-zero digit (digit `last` is non-zero)
    e64 += <i64>(n - MAX_SIG_DIGITS - 1);
    n = MAX_SIG_DIGITS;
    sticky = true;
  }
  let nd = sticky ? n + 1 : n; // number of digits of D
  // 10^(nd+e-1) <= value < 10^(nd+e)
  if (<i64>nd + e64 - 1 > 308) return Infinity;
  if (<i64>nd + e64 < -324) return 0;
  let e = <i32>e64; // now within [-1125, 308]

  // leading (up to) 19 digits
  let w: u64 = 0;
  let wDigits = n < 19 ? n : 19;
  for (let k = 0; k < wDigits; k++) w = w * 10 + <u64>digitAt(ptr, intStart, intLen, fracStart, first + k);

  // fast path: exact significand and exact power of ten
  if (!sticky && n <= 15) {
    if (e >= 0 && e <= 22) return <f64>w * unchecked(POW10[e]);
    if (e < 0 && e >= -22) return <f64>w / unchecked(POW10[-e]);
    if (e > 22 && e <= 22 + 15 - n) return (<f64>w * unchecked(POW10[e - 22])) * 1e22;
  }

  // approximation (a few ulps off at most), avoiding spurious intermediate overflow/underflow
  let ea = e + (nd - wDigits);
  let x = <f64>w;
  if (ea >= 0) {
    while (ea > 22) { x *= 1e22; ea -= 22; }
    x *= unchecked(POW10[ea]);
  } else {
    while (ea < -22) { x /= 1e22; ea += 22; }
    x /= unchecked(POW10[-ea]);
  }
  let bits = reinterpret<u64>(x);
  const INF_BITS: u64 = 0x7FF0000000000000;
  if (bits >= INF_BITS) bits = INF_BITS - 1; // start from f64.MAX_VALUE

  // exact D
  if (bigD === null) {
    bigD = new Big();
    bigL = new Big();
    bigR = new Big();
  }
  let D = bigD!;
  D.setU64(0);
  let k = 0;
  while (k < n) {
    let chunk: u32 = 0;
    let mul: u32 = 1;
    let stop = k + 9 < n ? k + 9 : n;
    for (; k < stop; k++) {
      chunk = chunk * 10 + digitAt(ptr, intStart, intLen, fracStart, first + k);
      mul *= 10;
    }
    D.mulAdd(mul, chunk);
  }
  if (sticky) D.mulAdd(10, 1);

  // correct to the nearest double, ties to even
  for (let iter = 0; iter < 256; iter++) {
    let up = cmpMid(bits, e);
    if (up > 0 || (up == 0 && (bits & 1) != 0)) {
      bits++; // may become +Infinity: value >= 2^1024 - 2^970 overflows
      if (bits >= INF_BITS) return Infinity;
      continue;
    }
    if (bits == 0) break;
    let down = cmpMid(bits - 1, e);
    if (down < 0 || (down == 0 && (bits & 1) != 0)) {
      bits--;
      continue;
    }
    break;
  }
  return reinterpret<f64>(bits);
}

class Parser {
  ptr: usize;
  len: i32;
  pos: i32 = 0;
  maxDepth: i32;
  error: string = "";
  errorOffset: i32 = -1;

  constructor(ptr: usize, len: i32, maxDepth: i32) {
    this.ptr = ptr;
    this.len = len;
    this.maxDepth = maxDepth < 0 ? 0 : maxDepth;
  }

  /** Byte at i; callers guarantee 0 <= i < len. */
  @inline byteAt(i: i32): u32 {
    return <u32>load<u8>(this.ptr + <usize>i);
  }

  fail(message: string, offset: i32): void {
    if (this.error.length == 0) {
      this.error = message;
      this.errorOffset = offset;
    }
  }

  skipWhitespace(): void {
    let i = this.pos;
    let len = this.len;
    while (i < len) {
      let c = this.byteAt(i);
      if (c == C_SPACE || c == C_LF || c == C_CR || c == C_TAB) i++;
      else break;
    }
    this.pos = i;
  }

  parse(): JsonValue | null {
    let len = this.len;
    // optional UTF-8 byte order mark
    if (len >= 3 && this.byteAt(0) == 0xEF && this.byteAt(1) == 0xBB && this.byteAt(2) == 0xBF) {
      this.pos = 3;
    }
    this.skipWhitespace();
    if (this.pos >= len) {
      this.fail("empty input", len);
      return null;
    }

    let stack = new Array<JsonValue>(); // open containers (JsonArray | JsonObject)
    let maxDepth = this.maxDepth;

    // Each outer iteration parses one value starting at a non-whitespace position (or EOF),
    // then the inner loop attaches completed values to their containers.
    while (true) {
      this.skipWhitespace();
      let pos = this.pos;
      if (pos >= len) {
        this.fail("unexpected end of input", len);
        return null;
      }
      let c = this.byteAt(pos);
      let value: JsonValue | null = null;

      if (c == C_LBRACKET || c == C_LBRACE) {
        if (stack.length >= maxDepth) {
          this.fail("nesting deeper than " + maxDepth.toString(), pos);
          return null;
        }
        this.pos = pos + 1;
        this.skipWhitespace();
        if (c == C_LBRACKET) {
          let arr = new JsonArray(pos);
          if (this.pos < len && this.byteAt(this.pos) == C_RBRACKET) {
            this.pos++;
            value = arr;
          } else {
            stack.push(arr);
            continue; // parse the first element
          }
        } else {
          let obj = new JsonObject(pos);
          if (this.pos < len && this.byteAt(this.pos) == C_RBRACE) {
            this.pos++;
            value = obj;
          } else {
            if (!this.parseKey(obj)) return null;
            stack.push(obj);
            continue; // parse the first member value
          }
        }
      } else {
        value = this.parseScalar(c, pos);
        if (value === null) return null;
      }

      // `value` is complete: attach it, then handle ',' / closing brackets.
      while (true) {
        let depth = stack.length;
        if (depth == 0) {
          // top-level value done
          this.skipWhitespace();
          if (this.pos < len) {
            this.fail("unexpected character " + describeByte(this.byteAt(this.pos)) + " after value", this.pos);
            return null;
          }
          return value;
        }
        let top = unchecked(stack[depth - 1]); // depth > 0
        let isArray = top.kind == JsonKind.Array;
        if (isArray) {
          changetype<JsonArray>(top).items.push(changetype<JsonValue>(value));
        } else {
          changetype<JsonObject>(top).values.push(changetype<JsonValue>(value));
        }
        this.skipWhitespace();
        let p = this.pos;
        if (p >= len) {
          this.fail("unexpected end of input", len);
          return null;
        }
        let d = this.byteAt(p);
        if (d == C_COMMA) {
          this.pos = p + 1;
          this.skipWhitespace();
          if (this.pos < len) {
            let e = this.byteAt(this.pos);
            if (e == C_RBRACKET || e == C_RBRACE) {
              this.fail("trailing comma", p);
              return null;
            }
          }
          if (!isArray) {
            if (!this.parseKey(changetype<JsonObject>(top))) return null;
          }
          break; // parse the next element / member value
        }
        if (isArray ? d == C_RBRACKET : d == C_RBRACE) {
          this.pos = p + 1;
          value = top;
          stack.length = depth - 1;
          continue; // the container itself is now a completed value
        }
        this.fail(isArray ? "expected ',' or ']'" : "expected ',' or '}'", p);
        return null;
      }
    }
    // unreachable
    return null;
  }

  /** At a (possibly whitespace-preceded) object key: parses `"key" :` and records the key. */
  parseKey(obj: JsonObject): bool {
    this.skipWhitespace();
    let pos = this.pos;
    let len = this.len;
    if (pos >= len) {
      this.fail("unexpected end of input", len);
      return false;
    }
    if (this.byteAt(pos) != C_QUOTE) {
      this.fail("expected string key", pos);
      return false;
    }
    let key = this.parseString();
    if (key === null) return false;
    if (!obj.addKey(key)) {
      this.fail("duplicate key " + quoteForMessage(key), pos);
      return false;
    }
    this.skipWhitespace();
    let p = this.pos;
    if (p >= len) {
      this.fail("unexpected end of input", len);
      return false;
    }
    if (this.byteAt(p) != C_COLON) {
      this.fail("expected ':'", p);
      return false;
    }
    this.pos = p + 1;
    return true;
  }

  parseScalar(c: u32, pos: i32): JsonValue | null {
    if (c == C_QUOTE) {
      let s = this.parseString();
      if (s === null) return null;
      return new JsonString(pos, s);
    }
    if (c == C_MINUS || isDigit(c)) return this.parseNumber();
    if (c == 0x74) { // t
      if (!this.matchLiteral("true")) return null;
      return new JsonBool(pos, true);
    }
    if (c == 0x66) { // f
      if (!this.matchLiteral("false")) return null;
      return new JsonBool(pos, false);
    }
    if (c == 0x6E) { // n
      if (!this.matchLiteral("null")) return null;
      return new JsonValue(JsonKind.Null, pos);
    }
    this.fail("unexpected character " + describeByte(c), pos);
    return null;
  }

  matchLiteral(lit: string): bool {
    let pos = this.pos;
    let len = this.len;
    let n = lit.length;
    for (let k = 0; k < n; k++) {
      let i = pos + k;
      if (i >= len) {
        this.fail("unexpected end of input", len);
        return false;
      }
      let b = this.byteAt(i);
      if (b != <u32>lit.charCodeAt(k)) {
        this.fail("unexpected character " + describeByte(b), i);
        return false;
      }
    }
    this.pos = pos + n;
    return true;
  }

  parseNumber(): JsonValue | null {
    let len = this.len;
    let start = this.pos;
    let i = start;
    let negative = this.byteAt(i) == C_MINUS;
    if (negative) i++;
    if (i >= len) {
      this.fail("unexpected end of input", len);
      return null;
    }
    let intStart = i;
    let c = this.byteAt(i);
    if (c == C_0) {
      i++;
      if (i < len && isDigit(this.byteAt(i))) {
        this.fail("leading zero in number", start);
        return null;
      }
    } else if (c >= C_1 && c <= C_9) {
      i++;
      while (i < len && isDigit(this.byteAt(i))) i++;
    } else {
      this.fail("invalid number", start);
      return null;
    }
    let intEnd = i;
    let fracStart = i;
    let fracEnd = i;
    let integer = true;
    if (i < len && this.byteAt(i) == C_DOT) {
      integer = false;
      i++;
      if (i >= len) {
        this.fail("unexpected end of input", len);
        return null;
      }
      if (!isDigit(this.byteAt(i))) {
        this.fail("invalid number", start);
        return null;
      }
      fracStart = i;
      while (i < len && isDigit(this.byteAt(i))) i++;
      fracEnd = i;
    }
    let exp10: i64 = 0;
    if (i < len && (this.byteAt(i) | 0x20) == 0x65) { // e / E
      integer = false;
      i++;
      let expNegative = false;
      if (i < len) {
        let s = this.byteAt(i);
        if (s == C_PLUS || s == C_MINUS) {
          expNegative = s == C_MINUS;
          i++;
        }
      }
      if (i >= len) {
        this.fail("unexpected end of input", len);
        return null;
      }
      if (!isDigit(this.byteAt(i))) {
        this.fail("invalid number", start);
        return null;
      }
      while (i < len) {
        let d = this.byteAt(i);
        if (!isDigit(d)) break;
        if (exp10 < 1000000000) exp10 = exp10 * 10 + <i64>(d - C_0); // saturates, far beyond any f64
        i++;
      }
      if (expNegative) exp10 = -exp10;
    }
    let n = i - start;
    if (n >= MAX_TOKEN) {
      this.fail("string too long", start);
      return null;
    }
    let v = decimalToF64(this.ptr, intStart, intEnd, fracStart, fracEnd, exp10);
    if (!isFinite(v)) {
      this.fail("number out of range", start);
      return null;
    }
    if (negative) v = -v;
    // validated ASCII: [-]digits[.digits][e[+-]digits]
    let raw = String.UTF8.decodeUnsafe(this.ptr + <usize>start, <usize>n);
    this.pos = i;
    return new JsonNumber(start, v, integer && this.intWithin2p53(start, i), raw);
  }

  /**
   * For an integer literal at [start, end) (optional '-', no leading zeros): is its exact
   * magnitude <= 2^53? Decided on the digits, so 9007199254740993 (which rounds to 2^53) is not.
   */
  intWithin2p53(start: i32, end: i32): bool {
    let i = start;
    if (this.byteAt(i) == C_MINUS) i++;
    let digits = end - i;
    if (digits < 16) return true;
    if (digits > 16) return false;
    const LIMIT = "9007199254740992";
    for (let k = 0; k < 16; k++) {
      let d = this.byteAt(i + k);
      let l = <u32>LIMIT.charCodeAt(k);
      if (d != l) return d < l;
    }
    return true;
  }

  /** At an opening quote: returns the decoded string and moves past the closing quote. */
  parseString(): string | null {
    let len = this.len;
    let start = this.pos; // the opening quote
    let i = start + 1;
    // Pass 1: find the closing quote (a backslash always consumes the following byte) and
    // whether the fast path (printable ASCII without escapes) applies.
    let simple = true;
    while (true) {
      if (i >= len) {
        this.fail("unterminated string", start);
        return null;
      }
      let c = this.byteAt(i);
      if (c == C_QUOTE) break;
      if (c == C_BACKSLASH) {
        simple = false;
        i += 2;
        continue;
      }
      if (c < 0x20 || c >= 0x80) simple = false;
      i++;
    }
    let end = i; // closing quote
    let n = end - start - 1;
    if (n >= MAX_TOKEN) {
      this.fail("string too long", start);
      return null;
    }
    this.pos = end + 1;
    if (simple) {
      if (n == 0) return "";
      return String.UTF8.decodeUnsafe(this.ptr + <usize>(start + 1), <usize>n);
    }
    return this.decodeString(start + 1, end);
  }

  /** Validating decode of string contents [from, end) into UTF-16. Needs end <= len. */
  decodeString(from: i32, end: i32): string | null {
    let n = end - from; // every source byte yields at most one UTF-16 unit
    let buf = scratch;
    if (buf.length < n) {
      let cap = buf.length;
      while (cap < n) cap = cap < (1 << 27) ? cap << 1 : n;
      buf = new StaticArray<u16>(cap);
      scratch = buf;
    }
    let out = changetype<usize>(buf);
    let k: usize = 0; // bytes written to out
    let j = from;
    while (j < end) {
      let c = this.byteAt(j);
      if (c < 0x80) {
        if (c < 0x20) {
          this.fail("control character in string", j);
          return null;
        }
        if (c != C_BACKSLASH) {
          store<u16>(out + k, <u16>c);
          k += 2;
          j++;
          continue;
        }
        // escape
        if (j + 1 >= end) {
          this.fail("invalid escape", j);
          return null;
        }
        let e = this.byteAt(j + 1);
        let u: u32 = 0;
        if (e == C_QUOTE) u = C_QUOTE;
        else if (e == C_BACKSLASH) u = C_BACKSLASH;
        else if (e == C_SLASH) u = C_SLASH;
        else if (e == 0x62) u = 0x08; // b
        else if (e == 0x66) u = 0x0C; // f
        else if (e == 0x6E) u = C_LF; // n
        else if (e == 0x72) u = C_CR; // r
        else if (e == 0x74) u = C_TAB; // t
        else if (e == 0x75) { // u
          let cu = this.hex4(j + 2, end);
          if (cu < 0) {
            this.fail("invalid escape", j);
            return null;
          }
          if (cu >= 0xD800 && cu <= 0xDBFF) {
            // must be followed by \uDC00-\uDFFF
            let lo: i32 = -1;
            if (j + 11 < end && this.byteAt(j + 6) == C_BACKSLASH && this.byteAt(j + 7) == 0x75) {
              lo = this.hex4(j + 8, end);
            }
            if (lo < 0xDC00 || lo > 0xDFFF) {
              if (lo == -1 && j + 7 < end && this.byteAt(j + 6) == C_BACKSLASH && this.byteAt(j + 7) == 0x75) {
                this.fail("invalid escape", j + 6);
              } else {
                this.fail("lone surrogate", j);
              }
              return null;
            }
            store<u16>(out + k, <u16>cu);
            store<u16>(out + k + 2, <u16>lo);
            k += 4;
            j += 12;
            continue;
          }
          if (cu >= 0xDC00 && cu <= 0xDFFF) {
            this.fail("lone surrogate", j);
            return null;
          }
          store<u16>(out + k, <u16>cu);
          k += 2;
          j += 6;
          continue;
        } else {
          this.fail("invalid escape", j);
          return null;
        }
        store<u16>(out + k, <u16>u);
        k += 2;
        j += 2;
        continue;
      }
      // multi-byte UTF-8 sequence (RFC 3629 table 4)
      let cp: u32 = 0;
      let need = 0;
      let lo: u32 = 0x80;
      let hi: u32 = 0xBF;
      if (c >= 0xC2 && c <= 0xDF) {
        need = 1; cp = c & 0x1F;
      } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2; cp = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;       // no overlongs
        else if (c == 0xED) hi = 0x9F;  // no surrogates
      } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3; cp = c & 0x07;
        if (c == 0xF0) lo = 0x90;       // no overlongs
        else if (c == 0xF4) hi = 0x8F;  // <= U+10FFFF
      } else {
        this.fail("invalid utf-8", j);
        return null;
      }
      if (j + need >= end) { // truncated (the closing quote is not a continuation byte)
        this.fail("invalid utf-8", j);
        return null;
      }
      let b1 = this.byteAt(j + 1);
      if (b1 < lo || b1 > hi) {
        this.fail("invalid utf-8", j);
        return null;
      }
      cp = (cp << 6) | (b1 & 0x3F);
      for (let t = 2; t <= need; t++) {
        let b = this.byteAt(j + t);
        if ((b & 0xC0) != 0x80) {
          this.fail("invalid utf-8", j);
          return null;
        }
        cp = (cp << 6) | (b & 0x3F);
      }
      if (cp >= 0x10000) {
        cp -= 0x10000;
        store<u16>(out + k, <u16>(0xD800 | (cp >> 10)));
        store<u16>(out + k + 2, <u16>(0xDC00 | (cp & 0x3FF)));
        k += 4;
      } else {
        store<u16>(out + k, <u16>cp);
        k += 2;
      }
      j += need + 1;
    }
    let s = String.UTF16.decodeUnsafe(out, k);
    if (buf.length > SCRATCH_KEEP) scratch = new StaticArray<u16>(256); // don't pin megabytes
    return s;
  }

  /** Four hex digits at [at, at+4) (all < end), or -1. */
  hex4(at: i32, end: i32): i32 {
    if (at + 4 > end) return -1;
    let v = 0;
    for (let t = 0; t < 4; t++) {
      let h = hexValue(this.byteAt(at + t));
      if (h < 0) return -1;
      v = (v << 4) | h;
    }
    return v;
  }
}

/**
 * Parse the UTF-8 JSON text at [ptr, ptr+len). Never traps; see the header for error messages.
 * The returned tree does not reference the input memory.
 */
export function parseJson(ptr: usize, len: i32, maxDepth: i32 = 64): JsonResult {
  if (len < 0) return new JsonResult(null, "invalid input range", 0);
  if (len > MAX_INPUT) return new JsonResult(null, "input too large", 0);
  let memBytes = <u64>memory.size() << 16;
  if (<u64>ptr + <u64>len > memBytes) return new JsonResult(null, "invalid input range", 0);
  if (len == 0) return new JsonResult(null, "empty input", 0);
  let p = new Parser(ptr, len, maxDepth);
  let v = p.parse();
  if (v === null || p.error.length != 0) {
    let msg = p.error.length != 0 ? p.error : "internal error";
    return new JsonResult(null, msg, p.errorOffset);
  }
  return new JsonResult(v, "", -1);
}

/** Convenience (tests): encodes `s` as UTF-8 (lone surrogates become WTF-8 → invalid utf-8). */
export function parseJsonString(s: string, maxDepth: i32 = 64): JsonResult {
  let buf = String.UTF8.encode(s);
  let bufPtr = changetype<usize>(buf);
  __pin(bufPtr); // the parser only holds a raw pointer; keep the buffer alive across GC steps
  let r = parseJson(bufPtr, buf.byteLength, maxDepth);
  __unpin(bufPtr);
  return r;
}

// ---- Writing ---------------------------------------------------------------------------------

/** `s` as a JSON string literal (control characters and quotes escaped). */
export function jsonString(s: string): string {
  let out = "\"";
  for (let i = 0, n = s.length; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c == 34) out += "\\\"";
    else if (c == 92) out += "\\\\";
    else if (c < 32) {
      const h = c.toString(16);
      out += "\\u00" + (h.length < 2 ? "0" + h : h);
    } else out += String.fromCharCode(c);
  }
  return out + "\"";
}

/** `v` as compact JSON text (numbers as they were written). */
export function stringifyJson(v: JsonValue): string {
  switch (v.kind) {
    case JsonKind.Null: return "null";
    case JsonKind.Bool: return changetype<JsonBool>(v).value ? "true" : "false";
    case JsonKind.Number: return changetype<JsonNumber>(v).raw;
    case JsonKind.String: return jsonString(changetype<JsonString>(v).value);
    case JsonKind.Array: {
      const items = changetype<JsonArray>(v).items;
      const parts = new Array<string>(items.length);
      for (let i = 0; i < items.length; i++) parts[i] = stringifyJson(items[i]);
      return "[" + parts.join(",") + "]";
    }
    default: {
      const o = changetype<JsonObject>(v);
      const parts = new Array<string>(o.keys.length);
      for (let i = 0; i < o.keys.length; i++) parts[i] = jsonString(o.keys[i]) + ":" + stringifyJson(o.values[i]);
      return "{" + parts.join(",") + "}";
    }
  }
}
