import {
  JsonArray,
  JsonBool,
  JsonKind,
  JsonNumber,
  JsonObject,
  JsonResult,
  JsonString,
  JsonValue,
  parseJson,
  parseJsonString,
} from "../../assembly/json";

// ---------------------------------------------------------------------------------------------
// helpers

/** Parse raw bytes placed in non-GC memory from heap.alloc (exactly `bytes.length` long). */
function parseBytes(bytes: u8[], maxDepth: i32 = 64): JsonResult {
  let n = bytes.length;
  let ptr = heap.alloc(n > 0 ? <usize>n : 1);
  for (let i = 0; i < n; i++) store<u8>(ptr + <usize>i, bytes[i]);
  let r = parseJson(ptr, n, maxDepth);
  heap.free(ptr);
  return r;
}

/** Copy a string's UTF-8 encoding into heap memory; caller frees. */
function toHeap(s: string): usize {
  let buf = String.UTF8.encode(s);
  let n = buf.byteLength;
  let ptr = heap.alloc(n > 0 ? <usize>n : 1);
  memory.copy(ptr, changetype<usize>(buf), <usize>n);
  return ptr;
}

function ok(s: string): JsonValue {
  let r = parseJsonString(s);
  expect(r.error).toBe("", "unexpected error for: " + s);
  expect(r.errorOffset).toBe(-1);
  expect(r.value).not.toBeNull();
  return r.value!;
}

function num(s: string): JsonNumber {
  let v = ok(s);
  expect(v.kind).toBe(JsonKind.Number);
  return changetype<JsonNumber>(v);
}

function str(s: string): string {
  let v = ok(s);
  expect(v.kind).toBe(JsonKind.String, "not a string: " + s);
  return changetype<JsonString>(v).value;
}

function isNegZero(x: f64): bool {
  return x == 0 && 1 / x < 0;
}

class Bad {
  constructor(public input: string, public error: string, public offset: i32) {}
}

class BadBytes {
  constructor(public bytes: u8[], public error: string, public offset: i32) {}
}

function checkBad(cases: Bad[]): void {
  for (let i = 0; i < cases.length; i++) {
    let c = cases[i];
    let r = parseJsonString(c.input);
    expect(r.value).toBeNull("expected failure for: " + c.input);
    expect(r.error).toBe(c.error, "error for: " + c.input);
    expect(r.errorOffset).toBe(c.offset, "offset for: " + c.input + " (" + r.error + ")");
  }
}

function hexBytes(b: u8[]): string {
  let parts = new Array<string>();
  for (let i = 0; i < b.length; i++) parts.push(b[i].toString(16));
  return parts.join(" ");
}

// A representative configuration document (no leading/trailing whitespace, so every proper
// prefix is invalid JSON).
const SAMPLE: string =
  '{"version":2,"name":"edge-lb \\"prod\\"","enabled":true,"debug":false,"comment":null,' +
  '"listeners":[{"port":443,"proto":"tcp","timeoutMs":1500.5,"ratio":-0.25e-3},' +
  '{"port":53,"proto":"udp","tags":[]}],' +
  '"backends":[{"addr":"10.0.0.1","weight":100,"zone":"zürich","note":"\\u00e9\\ud83d\\ude00\\t"},' +
  '{"addr":"10.0.0.2","weight":0,"zone":"東京","meta":{}},' +
  '{"addr":"fd00::1","weight":1E+2,"zone":"😀","meta":{"a":[1,[2,[3,{"b":null}]]]}}],' +
  '"limits":{"maxConns":9007199254740993,"minRtt":1e-5,"neg":-0,"big":123456789012345678901234567890}}';

// ---------------------------------------------------------------------------------------------

describe("valid documents", () => {
  it("parses scalars", () => {
    expect(ok("null").kind).toBe(JsonKind.Null);
    expect(ok("null").isNull()).toBe(true);
    let t = ok("true");
    expect(t.isBool()).toBe(true);
    expect(changetype<JsonBool>(t).value).toBe(true);
    expect(changetype<JsonBool>(ok("false")).value).toBe(false);
    expect(num("42").value).toBe(42.0);
    expect(str('"hi"')).toBe("hi");
    expect(str('""')).toBe("");
    expect(ok(" \t\r\n 7 \n\t\r ").isNumber()).toBe(true);
  });

  it("reports kind names and predicates", () => {
    expect(ok("null").kindName()).toBe("null");
    expect(ok("true").kindName()).toBe("boolean");
    expect(ok("1").kindName()).toBe("number");
    expect(ok('"s"').kindName()).toBe("string");
    expect(ok("[]").kindName()).toBe("array");
    expect(ok("{}").kindName()).toBe("object");
    let a = ok("[]");
    expect(a.isArray()).toBe(true);
    expect(a.isObject()).toBe(false);
    expect(a.isString()).toBe(false);
    expect(a.isNumber()).toBe(false);
    expect(a.isBool()).toBe(false);
    expect(a.isNull()).toBe(false);
    expect(ok("{}").isObject()).toBe(true);
    expect(ok('"x"').isString()).toBe(true);
  });

  it("parses empty and nested containers", () => {
    let a = changetype<JsonArray>(ok("[ ]"));
    expect(a.items.length).toBe(0);
    let o = changetype<JsonObject>(ok("{ }"));
    expect(o.keys.length).toBe(0);
    expect(o.values.length).toBe(0);
    let v = changetype<JsonArray>(ok('[[], {}, [[1]], {"a": {"b": [true]}}]'));
    expect(v.items.length).toBe(4);
    expect(v.items[0].isArray()).toBe(true);
    expect(v.items[1].isObject()).toBe(true);
    let inner = changetype<JsonArray>(changetype<JsonArray>(v.items[2]).items[0]);
    expect(changetype<JsonNumber>(inner.items[0]).value).toBe(1.0);
    let ab = changetype<JsonObject>(changetype<JsonObject>(v.items[3]).get("a")!);
    let b = changetype<JsonArray>(ab.get("b")!);
    expect(changetype<JsonBool>(b.items[0]).value).toBe(true);
  });

  it("keeps object order and supports get/has", () => {
    let o = changetype<JsonObject>(ok('{"z": 1, "a": "x", "m": null}'));
    expect(o.keys.length).toBe(3);
    expect(o.keys[0]).toBe("z");
    expect(o.keys[1]).toBe("a");
    expect(o.keys[2]).toBe("m");
    expect(o.has("a")).toBe(true);
    expect(o.has("b")).toBe(false);
    expect(o.has("")).toBe(false);
    expect(o.get("b")).toBeNull();
    expect(changetype<JsonString>(o.get("a")!).value).toBe("x");
    expect(o.get("m")!.isNull()).toBe(true);
  });

  it("indexes large objects (get/has/duplicates beyond the index threshold)", () => {
    let parts = new Array<string>();
    for (let i = 0; i < 2000; i++) parts.push('"k' + i.toString() + '":' + i.toString());
    let o = changetype<JsonObject>(ok("{" + parts.join(",") + "}"));
    expect(o.keys.length).toBe(2000);
    expect(o.values.length).toBe(2000);
    for (let i = 0; i < 2000; i += 37) {
      let v = o.get("k" + i.toString());
      expect(v).not.toBeNull();
      expect(changetype<JsonNumber>(v!).value).toBe(<f64>i);
    }
    expect(o.has("k2000")).toBe(false);
    expect(o.get("k")).toBeNull();
    let r = parseJsonString("{" + parts.join(",") + ',"k1999":0}');
    expect(r.error).toBe('duplicate key "k1999"');
    // offset of the second "k1999"
    expect(r.errorOffset).toBe(("{" + parts.join(",") + ",").length);
  });

  it("records value offsets", () => {
    let o = changetype<JsonObject>(ok('{"a": [1, "x", true], "b": null}'));
    expect(o.offset).toBe(0);
    let a = changetype<JsonArray>(o.get("a")!);
    expect(a.offset).toBe(6);
    expect(a.items[0].offset).toBe(7);
    expect(a.items[1].offset).toBe(10);
    expect(a.items[2].offset).toBe(15);
    expect(o.get("b")!.offset).toBe(27);
    expect(ok("   5").offset).toBe(3);
  });

  it("decodes escapes", () => {
    expect(str('"\\" \\\\ \\/ \\b \\f \\n \\r \\t"')).toBe("\" \\ / \b \f \n \r \t");
    expect(str('"\\u0041\\u00e9\\u00E9\\u4e2d"')).toBe("Aéé中");
    expect(str('"\\u0000"')).toBe("\u0000");
    expect(str('"\\u0000"').length).toBe(1);
    expect(str('"a\\u001fb"')).toBe("a\u001fb");
    expect(str('"\\uFFFF"').charCodeAt(0)).toBe(0xFFFF);
  });

  it("decodes surrogate pairs", () => {
    expect(str('"\\ud83d\\ude00"')).toBe("😀");
    expect(str('"\\uD83D\\uDE00"')).toBe("😀");
    expect(str('"x\\ud800\\udc00y"')).toBe("x\u{10000}y");
    expect(str('"\\udbff\\udfff"')).toBe("\u{10FFFF}");
  });

  it("decodes raw UTF-8", () => {
    expect(str('"héllo"')).toBe("héllo");
    expect(str('"日本語"')).toBe("日本語");
    expect(str('"😀 and 🚀"')).toBe("😀 and 🚀");
    expect(str('"😀"').length).toBe(2);
    expect(str('"mixed é \\n 😀 \\u00e9"')).toBe("mixed é \n 😀 é");
    expect(str('"\u2028\u2029"')).toBe("\u2028\u2029");
    let o = changetype<JsonObject>(ok('{"ключ": "значение"}'));
    expect(changetype<JsonString>(o.get("ключ")!).value).toBe("значение");
  });

  it("decodes boundary code points given as bytes", () => {
    let cases: u8[][] = [
      [0x22, 0xC2, 0x80, 0x22],             // U+0080
      [0x22, 0xDF, 0xBF, 0x22],             // U+07FF
      [0x22, 0xE0, 0xA0, 0x80, 0x22],       // U+0800
      [0x22, 0xED, 0x9F, 0xBF, 0x22],       // U+D7FF
      [0x22, 0xEE, 0x80, 0x80, 0x22],       // U+E000
      [0x22, 0xEF, 0xBF, 0xBF, 0x22],       // U+FFFF
      [0x22, 0xF0, 0x90, 0x80, 0x80, 0x22], // U+10000
      [0x22, 0xF4, 0x8F, 0xBF, 0xBF, 0x22], // U+10FFFF
    ];
    let expected: string[] = [
      "\u0080", "\u07FF", "\u0800", "\uD7FF", "\uE000", "\uFFFF", "\u{10000}", "\u{10FFFF}",
    ];
    for (let i = 0; i < cases.length; i++) {
      let r = parseBytes(cases[i]);
      expect(r.error).toBe("", hexBytes(cases[i]));
      expect(changetype<JsonString>(r.value!).value).toBe(expected[i], hexBytes(cases[i]));
    }
  });

  it("parses numbers", () => {
    let z = num("-0");
    expect(isNegZero(z.value)).toBe(true);
    expect(z.isInteger).toBe(true);
    expect(z.raw).toBe("-0");
    expect(num("0").value).toBe(0.0);
    expect(isNegZero(num("0").value)).toBe(false);
    expect(num("-0.0").isInteger).toBe(false);
    expect(num("1e-5").value).toBe(1e-5);
    expect(num("1e-5").isInteger).toBe(false);
    expect(num("1E+2").value).toBe(100.0);
    expect(num("1E+2").isInteger).toBe(false);
    expect(num("1e2").raw).toBe("1e2");
    expect(num("0.5").value).toBe(0.5);
    expect(num("-12.375").value).toBe(-12.375);
    expect(num("123.456e-2").value).toBe(1.23456);
    expect(num("1.0").isInteger).toBe(false);
    expect(num("0.1").value).toBe(0.1);
    expect(num("0.3").value).toBe(0.3);
    expect(num("2.5e-3").value).toBe(0.0025);
    expect(num("1.7976931348623157e308").value).toBe(1.7976931348623157e308);
    expect(num("5e-324").value).toBe(5e-324);
    expect(num("1e-400").value).toBe(0.0);
    expect(num("0e999999999").value).toBe(0.0);
    expect(num("100000000000000000000000000000000000000000000e-30").value).toBe(1e14);
  });

  it("rounds decimal to f64 correctly (cases AS's std parseFloat gets wrong)", () => {
    expect(num("3.4460414683986424e+51").value).toBe(3.4460414683986424e+51);
    expect(num("-7.3760380994936306e+50").value).toBe(-7.3760380994936306e+50);
    expect(num("1.2434986673845062e+44").value).toBe(1.2434986673845062e+44);
    expect(num("82241.951e-20").value).toBe(8.2241951e-16);
    expect(num("1e23").value).toBe(1e23);
    expect(num("8.41e21").value).toBe(8.41e21);
    // exact ties round to even
    expect(num("9007199254740993").value).toBe(9007199254740992.0);
    expect(num("9007199254740995").value).toBe(9007199254740996.0);
    expect(num("9007199254740993.0000000000000000000001").value).toBe(9007199254740994.0);
    // subnormal boundary: 2^-1075 is the tie between 0 and the smallest subnormal
    expect(num("2.4703282292062327e-324").value).toBe(0.0);
    expect(num("2.4703282292062328e-324").value).toBe(5e-324);
    expect(num("2.2250738585072011e-308").value).toBe(2.225073858507201e-308);
    // overflow boundary: 2^1024 - 2^970 rounds to infinity
    expect(num("1.7976931348623158e308").value).toBe(1.7976931348623157e308);
    expect(parseJsonString("1.7976931348623159e308").error).toBe("number out of range");
    // more than 800 significant digits (sticky digit)
    expect(num("0." + "0".repeat(500) + "1" + "2".repeat(1000) + "e500").value).toBe(0.12222222222222222);
    expect(num("9".repeat(1000) + "e-1000").value).toBe(1.0);
    expect(num("1" + "0".repeat(5000) + "e-5000").value).toBe(1.0);
    expect(num("0." + "0".repeat(5000) + "1e5001").value).toBe(1.0);
  });

  it("parses big integers and classifies isInteger", () => {
    let a = num("9007199254740992"); // 2^53
    expect(a.value).toBe(9007199254740992.0);
    expect(a.isInteger).toBe(true);
    let b = num("-9007199254740992");
    expect(b.isInteger).toBe(true);
    let c = num("9007199254740993"); // 2^53 + 1: not exactly representable
    expect(c.isInteger).toBe(false);
    expect(c.raw).toBe("9007199254740993");
    expect(c.value).toBe(9007199254740992.0);
    expect(num("9007199254740991").isInteger).toBe(true);
    expect(num("-9007199254740993").isInteger).toBe(false);
    expect(num("999999999999999").isInteger).toBe(true);
    expect(num("8999999999999999").isInteger).toBe(true);
    expect(num("9007199254740989").isInteger).toBe(true);
    expect(num("10000000000000000").isInteger).toBe(false);
    let d = num("12345678901234567890");
    expect(d.isInteger).toBe(false);
    expect(d.value).toBe(12345678901234567890.0);
    expect(num("4294967296").isInteger).toBe(true);
    expect(num("4294967296").value).toBe(4294967296.0);
    expect(num("-2147483649").value).toBe(-2147483649.0);
    let digits = "1" + "0".repeat(300);
    expect(num(digits).value).toBe(1e300);
  });

  it("skips a leading UTF-8 byte order mark", () => {
    let r = parseBytes([0xEF, 0xBB, 0xBF, 0x5B, 0x31, 0x5D]); // BOM [1]
    expect(r.error).toBe("");
    expect(r.value!.isArray()).toBe(true);
    expect(r.value!.offset).toBe(3);
    let e = parseBytes([0xEF, 0xBB, 0xBF]);
    expect(e.error).toBe("empty input");
    expect(e.errorOffset).toBe(3);
    let late = parseBytes([0x20, 0xEF, 0xBB, 0xBF, 0x31]);
    expect(late.error).toBe("unexpected character 0xef");
    expect(late.errorOffset).toBe(1);
  });

  it("parses the sample config", () => {
    let root = changetype<JsonObject>(ok(SAMPLE));
    expect(root.keys.length).toBe(8);
    expect(changetype<JsonNumber>(root.get("version")!).value).toBe(2.0);
    expect(changetype<JsonString>(root.get("name")!).value).toBe('edge-lb "prod"');
    expect(changetype<JsonBool>(root.get("enabled")!).value).toBe(true);
    expect(root.get("comment")!.isNull()).toBe(true);
    let listeners = changetype<JsonArray>(root.get("listeners")!);
    expect(listeners.items.length).toBe(2);
    let l0 = changetype<JsonObject>(listeners.items[0]);
    expect(changetype<JsonNumber>(l0.get("timeoutMs")!).value).toBe(1500.5);
    expect(changetype<JsonNumber>(l0.get("ratio")!).value).toBe(-0.25e-3);
    let backends = changetype<JsonArray>(root.get("backends")!);
    expect(backends.items.length).toBe(3);
    let b0 = changetype<JsonObject>(backends.items[0]);
    expect(changetype<JsonString>(b0.get("zone")!).value).toBe("zürich");
    expect(changetype<JsonString>(b0.get("note")!).value).toBe("é😀\t");
    let b1 = changetype<JsonObject>(backends.items[1]);
    expect(changetype<JsonString>(b1.get("zone")!).value).toBe("東京");
    let b2 = changetype<JsonObject>(backends.items[2]);
    expect(changetype<JsonNumber>(b2.get("weight")!).value).toBe(100.0);
    let limits = changetype<JsonObject>(root.get("limits")!);
    let maxConns = changetype<JsonNumber>(limits.get("maxConns")!);
    expect(maxConns.isInteger).toBe(false);
    expect(maxConns.raw).toBe("9007199254740993");
    expect(isNegZero(changetype<JsonNumber>(limits.get("neg")!).value)).toBe(true);
    expect(changetype<JsonNumber>(limits.get("big")!).value).toBe(1.2345678901234568e29);
  });

  it("handles 100 KB strings", () => {
    let plain = "a".repeat(100 * 1024);
    let s = str('"' + plain + '"');
    expect(s.length).toBe(100 * 1024);
    expect(s == plain).toBe(true);

    // escapes + multi-byte chars take the decoding path
    let esc = str('"' + "\\n\\u00e9é😀".repeat(10 * 1024) + '"');
    expect(esc.length).toBe(10 * 1024 * 5);
    expect(esc.substring(0, 5)).toBe("\néé😀");
    expect(esc.substring(esc.length - 5)).toBe("\néé😀");

    // a huge key and a huge array of strings
    let k = "k".repeat(100 * 1024);
    let o = changetype<JsonObject>(ok('{"' + k + '": 1}'));
    expect(o.has(k)).toBe(true);
    let items = new Array<string>();
    for (let i = 0; i < 5000; i++) items.push('"backend-' + i.toString() + '-ü"');
    let arr = changetype<JsonArray>(ok("[" + items.join(",") + "]"));
    expect(arr.items.length).toBe(5000);
    expect(changetype<JsonString>(arr.items[4999]).value).toBe("backend-4999-ü");
  });

  it("parses deep nesting iteratively when maxDepth allows it", () => {
    let d = 10000;
    let r = parseJsonString("[".repeat(d) + "]".repeat(d), d);
    expect(r.error).toBe("");
    let v = r.value!;
    let depth = 1;
    while (v.isArray() && changetype<JsonArray>(v).items.length > 0) {
      v = changetype<JsonArray>(v).items[0];
      depth++;
    }
    expect(depth).toBe(d);
    // exactly at the limit
    expect(parseJsonString("[[[1]]]", 3).error).toBe("");
    expect(parseJsonString('{"a":{"b":[1]}}', 3).error).toBe("");
    let over = parseJsonString('{"a":{"b":[1]}}', 2);
    expect(over.error).toBe("nesting deeper than 2");
    expect(over.errorOffset).toBe(10);
    // maxDepth 0: scalars only
    expect(parseJsonString("1", 0).error).toBe("");
    expect(parseJsonString("[]", 0).error).toBe("nesting deeper than 0");
    expect(parseJsonString("[]", -5).error).toBe("nesting deeper than 0");
  });

  it("parses JSON from raw heap memory", () => {
    let s = '{"a": [1, 2, 3]}';
    let ptr = toHeap(s);
    let r = parseJson(ptr, s.length);
    expect(r.error).toBe("");
    let a = changetype<JsonArray>(changetype<JsonObject>(r.value!).get("a")!);
    expect(a.items.length).toBe(3);
    // only the first `len` bytes are read: "[1" from "[1, 2, 3]}" etc.
    let r2 = parseJson(ptr + 6, 2);
    expect(r2.error).toBe("unexpected end of input");
    expect(r2.errorOffset).toBe(2);
    let r3 = parseJson(ptr + 7, 1);
    expect(r3.error).toBe("");
    expect(changetype<JsonNumber>(r3.value!).value).toBe(1.0);
    heap.free(ptr);
  });
});

describe("invalid documents", () => {
  it("rejects bad tokens and structure", () => {
    checkBad([
      new Bad("", "empty input", 0),
      new Bad("   ", "empty input", 3),
      new Bad("\n\t\r ", "empty input", 4),
      new Bad("[", "unexpected end of input", 1),
      new Bad("{", "unexpected end of input", 1),
      new Bad("[1", "unexpected end of input", 2),
      new Bad("[1,", "unexpected end of input", 3),
      new Bad('{"a"', "unexpected end of input", 4),
      new Bad('{"a":', "unexpected end of input", 5),
      new Bad('{"a":1', "unexpected end of input", 6),
      new Bad('{"a":1,', "unexpected end of input", 7),
      new Bad("[1,]", "trailing comma", 2),
      new Bad("[1, ]", "trailing comma", 2),
      new Bad('{"a":1,}', "trailing comma", 6),
      new Bad('{"a":1 , }', "trailing comma", 7),
      new Bad("[,1]", "unexpected character ','", 1),
      new Bad("[1,,2]", "unexpected character ','", 3),
      new Bad("{,}", "expected string key", 1),
      new Bad("{a:1}", "expected string key", 1),
      new Bad("{'a':1}", "expected string key", 1),
      new Bad("{1:1}", "expected string key", 1),
      new Bad('{"a" 1}', "expected ':'", 5),
      new Bad('{"a"}', "expected ':'", 4),
      new Bad('{"a":}', "unexpected character '}'", 5),
      new Bad('{"a":1 "b":2}', "expected ',' or '}'", 7),
      new Bad('{"a":1]', "expected ',' or '}'", 6),
      new Bad("[1 2]", "expected ',' or ']'", 3),
      new Bad("[1}", "expected ',' or ']'", 2),
      new Bad('["a":1]', "expected ',' or ']'", 4),
      new Bad("]", "unexpected character ']'", 0),
      new Bad("}", "unexpected character '}'", 0),
      new Bad(":", "unexpected character ':'", 0),
      new Bad("'a'", "unexpected character '''", 0),
      new Bad("[1]]", "unexpected character ']' after value", 3),
      new Bad("{} {}", "unexpected character '{' after value", 3),
      new Bad("1 2", "unexpected character '2' after value", 2),
      new Bad('"a" "b"', "unexpected character '\"' after value", 4),
      new Bad("truex", "unexpected character 'x' after value", 4),
      new Bad("nullnull", "unexpected character 'n' after value", 4),
      new Bad("[1] x", "unexpected character 'x' after value", 4),
      new Bad("tru", "unexpected end of input", 3),
      new Bad("nul", "unexpected end of input", 3),
      new Bad("f", "unexpected end of input", 1),
      new Bad("trUe", "unexpected character 'U'", 2),
      new Bad("True", "unexpected character 'T'", 0),
      new Bad("NULL", "unexpected character 'N'", 0),
      new Bad("undefined", "unexpected character 'u'", 0),
      new Bad("[1 /* c */]", "expected ',' or ']'", 3),
      new Bad("// c\n1", "unexpected character '/'", 0),
      new Bad("# c\n1", "unexpected character '#'", 0),
      new Bad("\f1", "unexpected character 0x0c", 0),
      new Bad("\u000b1", "unexpected character 0x0b", 0),
      new Bad("\u00a01", "unexpected character 0xc2", 0),
      new Bad("[1]\u0000", "unexpected character 0x00 after value", 3),
    ]);
  });

  it("rejects malformed numbers", () => {
    checkBad([
      new Bad("01", "leading zero in number", 0),
      new Bad("-01", "leading zero in number", 0),
      new Bad("[00]", "leading zero in number", 1),
      new Bad("007", "leading zero in number", 0),
      new Bad("1.", "unexpected end of input", 2),
      new Bad("[1.]", "invalid number", 1),
      new Bad("1.e5", "invalid number", 0),
      new Bad(".5", "unexpected character '.'", 0),
      new Bad("+1", "unexpected character '+'", 0),
      new Bad("-", "unexpected end of input", 1),
      new Bad("-a", "invalid number", 0),
      new Bad("- 1", "invalid number", 0),
      new Bad("--1", "invalid number", 0),
      new Bad("1e", "unexpected end of input", 2),
      new Bad("1e+", "unexpected end of input", 3),
      new Bad("1ea", "invalid number", 0),
      new Bad("1e+-1", "invalid number", 0),
      new Bad("1.5.3", "unexpected character '.' after value", 3),
      new Bad("0x10", "unexpected character 'x' after value", 1),
      new Bad("1_000", "unexpected character '_' after value", 1),
      new Bad("NaN", "unexpected character 'N'", 0),
      new Bad("Infinity", "unexpected character 'I'", 0),
      new Bad("-Infinity", "invalid number", 0),
      new Bad("1e400", "number out of range", 0),
      new Bad("[-1e400]", "number out of range", 1),
      new Bad("1.8e308", "number out of range", 0),
      new Bad('{"x": 1' + "0".repeat(400) + "}", "number out of range", 6),
    ]);
  });

  it("rejects malformed strings", () => {
    checkBad([
      new Bad('"abc', "unterminated string", 0),
      new Bad('["abc', "unterminated string", 1),
      new Bad('{"abc', "unterminated string", 1),
      new Bad('"\\', "unterminated string", 0),
      new Bad('"\\"', "unterminated string", 0),
      new Bad('"\\u', "unterminated string", 0),
      new Bad('"\\u12', "unterminated string", 0),
      new Bad('"\\x"', "invalid escape", 1),
      new Bad('"ab\\a"', "invalid escape", 3),
      new Bad('"\\U0041"', "invalid escape", 1),
      new Bad('"\\u12"', "invalid escape", 1),
      new Bad('"\\u12G4"', "invalid escape", 1),
      new Bad('"\\u 123"', "invalid escape", 1),
      new Bad('"\\\'"', "invalid escape", 1),
      new Bad('"\\0"', "invalid escape", 1),
      new Bad('"\\ud800"', "lone surrogate", 1),
      new Bad('"\\udc00"', "lone surrogate", 1),
      new Bad('"\\uDFFF"', "lone surrogate", 1),
      new Bad('"a\\ud83d"', "lone surrogate", 2),
      new Bad('"\\ud83dx"', "lone surrogate", 1),
      new Bad('"\\ud83d\\n"', "lone surrogate", 1),
      new Bad('"\\ud800\\u0041"', "lone surrogate", 1),
      new Bad('"\\ud800\\ud800"', "lone surrogate", 1),
      new Bad('"\\ude00\\ud83d"', "lone surrogate", 1),
      new Bad('"\\ud800\\uZZZZ"', "invalid escape", 7),
      new Bad('"a\tb"', "control character in string", 2),
      new Bad('"a\nb"', "control character in string", 2),
      new Bad('"\r"', "control character in string", 1),
      new Bad('"\u0000"', "control character in string", 1),
      new Bad('"\u001f"', "control character in string", 1),
      new Bad('{"a\u0001":1}', "control character in string", 3),
      new Bad('"é\u0007"', "control character in string", 3),
    ]);
    // \u007f (DEL) is not a control character in JSON's sense
    expect(str('"\u007f"')).toBe("\u007f");
    // a lone surrogate in an AS string is encoded as WTF-8 (ED A0 80) -> invalid utf-8
    let r = parseJsonString('"' + String.fromCharCode(0xD800) + '"');
    expect(r.error).toBe("invalid utf-8");
    expect(r.errorOffset).toBe(1);
  });

  it("rejects invalid UTF-8", () => {
    let cases: BadBytes[] = [
      new BadBytes([0x22, 0x80, 0x22], "invalid utf-8", 1),                   // lone continuation
      new BadBytes([0x22, 0xBF, 0x22], "invalid utf-8", 1),
      new BadBytes([0x22, 0xC0, 0xAF, 0x22], "invalid utf-8", 1),             // overlong '/'
      new BadBytes([0x22, 0xC1, 0xBF, 0x22], "invalid utf-8", 1),             // overlong
      new BadBytes([0x22, 0xE0, 0x80, 0xAF, 0x22], "invalid utf-8", 1),       // overlong 3-byte
      new BadBytes([0x22, 0xE0, 0x9F, 0xBF, 0x22], "invalid utf-8", 1),       // overlong U+07FF
      new BadBytes([0x22, 0xF0, 0x80, 0x80, 0xAF, 0x22], "invalid utf-8", 1), // overlong 4-byte
      new BadBytes([0x22, 0xF0, 0x8F, 0xBF, 0xBF, 0x22], "invalid utf-8", 1), // overlong U+FFFF
      new BadBytes([0x22, 0xED, 0xA0, 0x80, 0x22], "invalid utf-8", 1),       // U+D800 encoded
      new BadBytes([0x22, 0xED, 0xBF, 0xBF, 0x22], "invalid utf-8", 1),       // U+DFFF encoded
      new BadBytes([0x22, 0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80, 0x22], "invalid utf-8", 1), // CESU-8 pair
      new BadBytes([0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], "invalid utf-8", 1), // U+110000
      new BadBytes([0x22, 0xF5, 0x80, 0x80, 0x80, 0x22], "invalid utf-8", 1),
      new BadBytes([0x22, 0xF8, 0x88, 0x80, 0x80, 0x80, 0x22], "invalid utf-8", 1),
      new BadBytes([0x22, 0xFE, 0x22], "invalid utf-8", 1),
      new BadBytes([0x22, 0xFF, 0x22], "invalid utf-8", 1),
      new BadBytes([0x22, 0xC3, 0x22], "invalid utf-8", 1),                   // truncated 2-byte
      new BadBytes([0x22, 0xE2, 0x82, 0x22], "invalid utf-8", 1),             // truncated 3-byte
      new BadBytes([0x22, 0xF0, 0x9F, 0x98, 0x22], "invalid utf-8", 1),       // truncated 4-byte
      new BadBytes([0x22, 0x61, 0xC3, 0x28, 0x22], "invalid utf-8", 2),       // bad continuation
      new BadBytes([0x22, 0xE2, 0x28, 0xA1, 0x22], "invalid utf-8", 1),
      new BadBytes([0x22, 0xF0, 0x9F, 0x98, 0x41, 0x22], "invalid utf-8", 1),
      new BadBytes([0x22, 0xE2, 0x82, 0xAC, 0x41, 0x80, 0x22], "invalid utf-8", 5),
      new BadBytes([0x22, 0x5C, 0x6E, 0xC3, 0x22], "invalid utf-8", 3),       // after an escape
      new BadBytes([0x7B, 0x22, 0xC3, 0x22, 0x3A, 0x31, 0x7D], "invalid utf-8", 2), // in a key
      new BadBytes([0x22, 0xC3], "unterminated string", 0),
      new BadBytes([0x22, 0xF0, 0x9F, 0x98], "unterminated string", 0),
      new BadBytes([0xC3, 0xA9], "unexpected character 0xc3", 0),             // outside a string
      new BadBytes([0x5B, 0x31, 0x2C, 0xE2, 0x80, 0xA8, 0x32, 0x5D], "unexpected character 0xe2", 3),
    ];
    for (let i = 0; i < cases.length; i++) {
      let c = cases[i];
      let r = parseBytes(c.bytes);
      expect(r.value).toBeNull(hexBytes(c.bytes));
      expect(r.error).toBe(c.error, hexBytes(c.bytes));
      expect(r.errorOffset).toBe(c.offset, hexBytes(c.bytes));
    }
  });

  it("rejects duplicate keys", () => {
    checkBad([
      new Bad('{"a":1,"a":2}', 'duplicate key "a"', 7),
      new Bad('{"a":1,"b":2,"a":3}', 'duplicate key "a"', 13),
      new Bad('{"x":{"b":1,"b":[]}}', 'duplicate key "b"', 12),
      new Bad('[{"a":1},{"a":1,"a":1}]', 'duplicate key "a"', 16),
      new Bad('{"":1,"":2}', 'duplicate key ""', 6),
      new Bad('{"\\u0061":1,"a":2}', 'duplicate key "a"', 12),
      new Bad('{"q\\"":1,"q\\"":2}', 'duplicate key "q\\""', 9),
    ]);
    // same key in different objects is fine
    expect(parseJsonString('[{"a":1},{"a":2},{"b":{"a":3}}]').error).toBe("");
    // duplicate key message is truncated for very long keys
    let k = "k".repeat(100);
    let r = parseJsonString('{"' + k + '":1,"' + k + '":2}');
    expect(r.error).toBe('duplicate key "' + "k".repeat(64) + '..."');
  });

  it("fails cleanly on 10000-deep nesting", () => {
    let r = parseJsonString("[".repeat(10000));
    expect(r.value).toBeNull();
    expect(r.error).toBe("nesting deeper than 64");
    expect(r.errorOffset).toBe(64);
    let r2 = parseJsonString('{"a":'.repeat(10000) + "1" + "}".repeat(10000));
    expect(r2.error).toBe("nesting deeper than 64");
    expect(r2.errorOffset).toBe(64 * 5);
    let closed = parseJsonString("[".repeat(10000) + "]".repeat(10000));
    expect(closed.error).toBe("nesting deeper than 64");
    // a limit far beyond the input depth: still no native recursion
    let r3 = parseJsonString("[".repeat(100000), 1000000);
    expect(r3.error).toBe("unexpected end of input");
    expect(r3.errorOffset).toBe(100000);
    // exactly 64 is allowed
    expect(parseJsonString("[".repeat(64) + "]".repeat(64)).error).toBe("");
    let r4 = parseJsonString("[".repeat(65) + "]".repeat(65));
    expect(r4.error).toBe("nesting deeper than 64");
    expect(r4.errorOffset).toBe(64);
  });

  it("rejects bad pointer/length arguments without trapping", () => {
    let r = parseJson(0, -1);
    expect(r.error).toBe("invalid input range");
    let end = <usize>memory.size() << 16;
    let r2 = parseJson(end - 4, 10);
    expect(r2.error).toBe("invalid input range");
    let r3 = parseJson(<usize>0xFFFFFFF0, 100);
    expect(r3.error).toBe("invalid input range");
    let r4 = parseJson(0, 0);
    expect(r4.error).toBe("empty input");
    let r5 = parseJson(0, 0x7FFFFFFF);
    expect(r5.error).toBe("input too large");
  });
});

describe("robustness", () => {
  it("returns an error for every proper prefix of the sample config", () => {
    let buf = String.UTF8.encode(SAMPLE);
    let n = buf.byteLength;
    let ptr = heap.alloc(<usize>n);
    memory.copy(ptr, changetype<usize>(buf), <usize>n);
    let full = parseJson(ptr, n);
    expect(full.error).toBe("");
    for (let i = 0; i < n; i++) {
      let r = parseJson(ptr, i);
      expect(r.value).toBeNull("prefix " + i.toString());
      expect(r.error.length > 0).toBe(true, "prefix " + i.toString());
      expect(r.errorOffset >= 0 && r.errorOffset <= i).toBe(true, "prefix " + i.toString());
    }
    heap.free(ptr);
  });

  it("survives 2000 pseudo-random mutations of the sample config", () => {
    let base = String.UTF8.encode(SAMPLE);
    let baseLen = base.byteLength;
    let cap = baseLen + 64;
    let work = heap.alloc(<usize>cap);
    let seed: u32 = 0x9E3779B9;
    let okCount = 0;
    let errCount = 0;
    for (let iter = 0; iter < 2000; iter++) {
      memory.copy(work, changetype<usize>(base), <usize>baseLen);
      let len = baseLen;
      // xorshift32
      seed ^= seed << 13; seed ^= seed >> 17; seed ^= seed << 5;
      let ops = <i32>(seed % 4) + 1;
      for (let k = 0; k < ops; k++) {
        seed ^= seed << 13; seed ^= seed >> 17; seed ^= seed << 5;
        let op = seed % 4;
        seed ^= seed << 13; seed ^= seed >> 17; seed ^= seed << 5;
        let at = len > 0 ? <i32>(seed % <u32>len) : 0;
        seed ^= seed << 13; seed ^= seed >> 17; seed ^= seed << 5;
        let byte = <u8>(seed & 0xFF);
        if (op == 0 && len > 0) {
          // flip one bit
          let p = work + <usize>at;
          let bit = <u32>1 << ((seed >> 8) % 8);
          store<u8>(p, load<u8>(p) ^ <u8>bit);
        } else if (op == 1 && len > 0) {
          // overwrite with a random or structural byte
          let structural: u8[] = [0x22, 0x5C, 0x7B, 0x7D, 0x5B, 0x5D, 0x2C, 0x3A, 0x30, 0x2D];
          store<u8>(work + <usize>at, (seed >> 16) & 1 ? structural[<i32>((seed >> 8) % 10)] : byte);
        } else if (op == 2 && len < cap) {
          // insert
          memory.copy(work + <usize>at + 1, work + <usize>at, <usize>(len - at));
          store<u8>(work + <usize>at, byte);
          len++;
        } else if (len > 0) {
          // delete
          memory.copy(work + <usize>at, work + <usize>at + 1, <usize>(len - at - 1));
          len--;
        }
      }
      let r = parseJson(work, len);
      if (r.error.length == 0) {
        expect(r.value).not.toBeNull();
        expect(r.errorOffset).toBe(-1);
        okCount++;
      } else {
        expect(r.value).toBeNull();
        expect(r.errorOffset >= 0 && r.errorOffset <= len).toBe(true, "offset " + r.errorOffset.toString());
        errCount++;
      }
    }
    heap.free(work);
    expect(okCount + errCount).toBe(2000);
    expect(errCount > 0).toBe(true);
    // (log<i32>, not a built string: as-pect caches host-side strings by pointer, so a GC-reused
    // address can display a stale string)
    log<i32>(okCount);
    log<i32>(errCount);
  });

  it("parses a multi-megabyte config in linear time", () => {
    let parts = new Array<string>();
    for (let i = 0; i < 20000; i++) {
      parts.push(
        '{"addr":"10.' + (i >> 8).toString() + "." + (i & 255).toString() +
        '","port":8080,"weight":' + (i % 100).toString() +
        ',"zone":"zone-é-' + (i % 7).toString() + '","tags":["a","b\\n"],"enabled":true}',
      );
    }
    let doc = '{"backends":[' + parts.join(",") + "]}";
    expect(doc.length > 1500000).toBe(true);
    let r = parseJsonString(doc);
    expect(r.error).toBe("");
    let backends = changetype<JsonArray>(changetype<JsonObject>(r.value!).get("backends")!);
    expect(backends.items.length).toBe(20000);
    let last = changetype<JsonObject>(backends.items[19999]);
    expect(changetype<JsonString>(last.get("addr")!).value).toBe("10.78.31");
    expect(changetype<JsonString>(last.get("zone")!).value).toBe("zone-é-" + (19999 % 7).toString());
  });
});
