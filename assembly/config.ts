// Configuration: JSON text → model (read and type-checked) → checked (references,
// uniqueness, ranges, families) → compiled Plan. Every error is collected as
// `path: reason`; a configuration with any error is rejected whole and the running
// Plan stays in force. Runs outside the packet path; allocation here is bounded by the
// limits in consts.ts.
//
// Where more checks go: `checkModel` holds the cross-object rules (the HA-ports
// caveats of docs/design.md extend it); `readConfig` holds shape and type rules.

import {
  BACKEND_DOWN, BACKEND_DRAINING, BACKEND_UP, DEFAULT_FLOW_CAPACITY, DEFAULT_HASH_K0, DEFAULT_HASH_K1, DEFAULT_IDLE_TIMEOUT_MIN,
  DEFAULT_MAGLEV_M, DIST_DEFAULT, DIST_SOURCE_IP, DIST_SOURCE_IP_PROTOCOL, MAX_BACKENDS,
  MAX_FLOW_CAPACITY, MAX_FRONTENDS, MAX_IDLE_TIMEOUT_MIN, MAX_JSON_DEPTH, MAX_MAGLEV_M, MAX_POOLS,
  MAX_RULES, MAX_WEIGHT, MIN_FLOW_CAPACITY, MIN_IDLE_TIMEOUT_MIN, NO_HEALTHY_DROP,
  NO_HEALTHY_FAIL_OPEN, NONE, PERSIST_ALWAYS, PERSIST_DEFAULT_FOR_PROTOCOL, PERSIST_NEVER,
  PROBE_TARGET_BYTES, PROTO_TCP, PROTO_UDP, RULE_PROTO_ALL,
} from "./consts";
import { Address, formatAddress, parseAddress } from "./addr";
import { carryRecord, initRecord, probeHealthOf } from "./health";
import { JsonArray, JsonBool, JsonKind, JsonNumber, JsonObject, JsonString, JsonValue, parseJson } from "./json";
import { Pool, rebuildPool } from "./maglev";
import { indexAddress, indexExactRule, Plan } from "./rules";
import { PER_OBJECT_COUNTERS } from "./layout";

/** Most errors reported for one configuration (the rest are summarised). */
const MAX_ERRORS: i32 = 200;

/**
 * Errors (reject the configuration), warnings (advice: never reject, and a CI job may
 * treat them as errors) and info (notes, such as Azure history, that call for no change),
 * as `path: reason` lines. The path is a clean JSON path; when it is in (or is) a named
 * object that label() registered (a rule, frontend, pool, backend or probe), the reason
 * starts with that object's name: `rules[1]: rule "b": frontend "fe1" already has ...`.
 */
export class Errors {
  lines: Array<string> = new Array<string>();
  dropped: i32 = 0;
  warnings: Array<string> = new Array<string>();
  infos: Array<string> = new Array<string>();
  /** Object path (`rules[1]`, `backendPools[0].backends[2]`) → its name (`rule "b"`). */
  private labels: Map<string, string> = new Map<string, string>();
  add(path: string, reason: string): void {
    if (this.lines.length < MAX_ERRORS) this.lines.push(this.line(path, reason));
    else this.dropped++;
  }
  warn(path: string, reason: string): void {
    if (this.warnings.length < MAX_ERRORS) this.warnings.push(this.line(path, reason));
  }
  info(path: string, reason: string): void {
    if (this.infos.length < MAX_ERRORS) this.infos.push(this.line(path, reason));
  }
  /** Names the object at `path` (`rule "b"`) in every later line at or under it. */
  label(path: string, name: string): void {
    this.labels.set(path, name);
  }
  /** The label of the innermost labelled object that holds `path`, or "". */
  labelOf(path: string): string {
    for (let k = path.length; k > 0; k--) {
      if (k < path.length) {
        const c = path.charCodeAt(k);
        if (c != 46 && c != 91) continue; // "." or "["
      }
      const prefix = k == path.length ? path : path.substring(0, k);
      if (this.labels.has(prefix)) return this.labels.get(prefix);
    }
    return "";
  }
  private line(path: string, reason: string): string {
    const label = this.labelOf(path);
    return (path.length > 0 ? path : "$") + ": " + (label.length > 0 ? label + ": " : "") + reason;
  }
  get count(): i32 { return this.lines.length + this.dropped; }
  text(): string {
    let s = this.lines.join("\n");
    if (this.dropped > 0) s += "\n$: " + this.dropped.toString() + " more errors not shown";
    return s;
  }
}

// ---- Model --------------------------------------------------------------------------------

export class FrontendModel {
  name: string = "";
  address: Address = new Address();
}

export class BackendModel {
  name: string = "";
  address: Address = new Address();
  addressText: string = "";
  weight: i32 = 1;
  admin: u8 = BACKEND_UP;
}

export class PoolModel {
  name: string = "";
  m: i32 = DEFAULT_MAGLEV_M;
  drainSeconds: i32 = 0;
  handoverSeconds: i32 = 60;
  backends: Array<BackendModel> = new Array<BackendModel>();
}

export class ProbeModel {
  name: string = "";
  protocol: string = "tcp";
  port: i32 = 0;
  intervalSeconds: i32 = 5;
  threshold: i32 = 2;
  /** Bounds a whole probe; at most the interval, which is its default. */
  timeoutSeconds: i32 = 5;
  path: string = "/";
}

/** Flap damping of probe targets (health.ts), from the top-level "health" section. */
export class DampingModel {
  enabled: bool = true;
  halfLifeSeconds: f64 = 60;
  suppressPenalty: f64 = 2;
  reusePenalty: f64 = 1;
  maxHoldSeconds: f64 = 300;
}

export class RuleModel {
  name: string = "";
  frontend: string = "";
  pool: string = "";
  probe: string = "";
  protocol: u8 = RULE_PROTO_ALL;
  frontendPort: i32 = 0;
  backendPort: i32 = 0;
  floating: bool = false;
  distribution: u8 = DIST_DEFAULT;
  symmetric: bool = true;
  idleMinutes: i32 = DEFAULT_IDLE_TIMEOUT_MIN;
  tcpReset: bool = false;
  persist: u8 = PERSIST_DEFAULT_FOR_PROTOCOL;
  noHealthy: u8 = NO_HEALTHY_DROP;
  /** A port or the protocol was already reported invalid: skip checks built on them. */
  portsReported: bool = false;
  // Resolved by checkModel.
  frontendIndex: i32 = -1;
  poolIndex: i32 = -1;
  /** -1: no probe. */
  probeIndex: i32 = -1;
  isHaPorts(): bool { return this.protocol == RULE_PROTO_ALL && this.frontendPort == 0 && this.backendPort == 0; }
}

export class ConfigModel {
  hashK0: u64 = DEFAULT_HASH_K0;
  hashK1: u64 = DEFAULT_HASH_K1;
  /** hashKey or hashSeed was given (else the public default key is in use). */
  hashKeyGiven: bool = false;
  /** Top-level sections the core does not read, for hosts (a pump's listeners, the Envoy
   *  filter's settings): names and values, in the order given. */
  hostSectionNames: Array<string> = new Array<string>();
  hostSections: Array<JsonValue> = new Array<JsonValue>();
  flowCapacity: i32 = DEFAULT_FLOW_CAPACITY;
  frontends: Array<FrontendModel> = new Array<FrontendModel>();
  pools: Array<PoolModel> = new Array<PoolModel>();
  probes: Array<ProbeModel> = new Array<ProbeModel>();
  rules: Array<RuleModel> = new Array<RuleModel>();
  damping: DampingModel = new DampingModel();
}

// ---- Field readers ----------------------------------------------------------------------------

function isIdentifier(key: string): bool {
  if (key.length == 0) return false;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    const letter = (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95;
    if (!letter && !(i > 0 && c >= 48 && c <= 57)) return false;
  }
  return true;
}

/** `path.key`, or `path["key"]` (JSON-escaped) when the key is not an identifier. */
function join(path: string, key: string): string {
  if (!isIdentifier(key)) return (path.length == 0 ? "$" : path) + "[" + jsonQuote(key) + "]";
  return path.length == 0 ? key : path + "." + key;
}

/** A JSON string literal of `s`, cut to `max` characters. */
function jsonQuote(s: string, max: i32 = 40): string {
  let out = "\"";
  const n = min(s.length, max);
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c == 34) out += "\\\"";
    else if (c == 92) out += "\\\\";
    else if (c < 32) out += "\\u00" + (c < 16 ? "0" : "") + c.toString(16);
    else out += String.fromCharCode(c);
  }
  if (s.length > n) out += "…";
  return out + "\"";
}

function at(path: string, i: i32): string {
  return path + "[" + i.toString() + "]";
}

/** `s` in double quotes, escaped as in JSON, so that a line stays one line. */
function quote(s: string): string {
  return jsonQuote(s, i32.MAX_VALUE);
}

/** Registers the name of the object at `path` (`what "name"`) when it has a usable one. */
function labelObject(errors: Errors, path: string, what: string, name: string): void {
  if (usable(name)) errors.label(path, what + " " + quote(name));
}

/** A name readName accepted (others are reported, and name nothing). */
function usable(name: string): bool {
  return name.length > 0 && name.length <= 80;
}

/** Reports fields of `obj` not in `known`. */
function checkKnown(obj: JsonObject, path: string, known: Array<string>, errors: Errors): void {
  for (let i = 0; i < obj.keys.length; i++) {
    const k = obj.keys[i];
    if (!known.includes(k)) errors.add(join(path, k), "unknown field");
  }
}

function asObject(v: JsonValue | null, path: string, errors: Errors): JsonObject | null {
  if (v == null) return null;
  if (v.kind != JsonKind.Object) {
    errors.add(path, "expected an object, got " + v.kindName());
    return null;
  }
  return changetype<JsonObject>(v);
}

function asArray(v: JsonValue | null, path: string, errors: Errors): JsonArray | null {
  if (v == null) return null;
  if (v.kind != JsonKind.Array) {
    errors.add(path, "expected an array, got " + v.kindName());
    return null;
  }
  return changetype<JsonArray>(v);
}

function readString(obj: JsonObject, key: string, path: string, errors: Errors, required: bool, def: string): string {
  const v = obj.get(key);
  if (v == null) {
    if (required) errors.add(join(path, key), "required");
    return def;
  }
  if (v.kind != JsonKind.String) {
    errors.add(join(path, key), "expected a string, got " + v.kindName());
    return def;
  }
  return changetype<JsonString>(v).value;
}

function readName(obj: JsonObject, path: string, errors: Errors): string {
  const name = readString(obj, "name", path, errors, true, "");
  if (obj.has("name") && name.length == 0) errors.add(join(path, "name"), "must not be empty");
  if (name.length > 80) errors.add(join(path, "name"), "longer than 80 characters");
  return name;
}

function readInt(obj: JsonObject, key: string, path: string, errors: Errors, min: i64, max: i64, def: i64): i64 {
  const v = obj.get(key);
  if (v == null) return def;
  if (v.kind != JsonKind.Number) {
    errors.add(join(path, key), "expected an integer, got " + v.kindName());
    return def;
  }
  const n = changetype<JsonNumber>(v);
  if (!n.isInteger) {
    errors.add(join(path, key), "expected an integer, got " + n.raw);
    return def;
  }
  if (n.value < <f64>min || n.value > <f64>max) {
    errors.add(join(path, key), "must be between " + min.toString() + " and " + max.toString() + ", got " + n.raw);
    return def;
  }
  return <i64>n.value;
}

function readBool(obj: JsonObject, key: string, path: string, errors: Errors, def: bool): bool {
  const v = obj.get(key);
  if (v == null) return def;
  if (v.kind != JsonKind.Bool) {
    errors.add(join(path, key), "expected true or false, got " + v.kindName());
    return def;
  }
  return changetype<JsonBool>(v).value;
}

/** Index of the string value in `options`, `def` when absent, -1 (reported) when invalid. */
function readEnum(obj: JsonObject, key: string, path: string, errors: Errors, options: Array<string>, def: i32): i32 {
  const v = obj.get(key);
  if (v == null) return def;
  const list = "one of \"" + options.join("\", \"") + "\"";
  if (v.kind != JsonKind.String) {
    errors.add(join(path, key), "expected " + list + ", got " + v.kindName());
    return -1;
  }
  const s = changetype<JsonString>(v).value;
  const i = options.indexOf(s);
  if (i < 0) errors.add(join(path, key), "expected " + list + ", got " + quote(s));
  return i;
}

function readAddress(obj: JsonObject, path: string, errors: Errors): Address {
  const text = readString(obj, "address", path, errors, true, "");
  const a = parseAddress(text);
  const v = obj.get("address");
  if (v != null && v.kind == JsonKind.String && a.family == 0) {
    errors.add(join(path, "address"), "not an IPv4 or IPv6 address: " + quote(text));
  }
  return a;
}

function hexValue(c: i32): i32 {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** The bytes of `v`, most significant first, as SipHash key words (read little-endian). */
function seedWord(v: u64): u64 {
  return bswap<u64>(v);
}

/** Hex digits of `s` from index 2 as a u64 (the caller checked length and digits). */
function hexWord(s: string, from: i32, to: i32): u64 {
  let w: u64 = 0;
  for (let i = from; i < to; i++) w = (w << 4) | <u64>hexValue(s.charCodeAt(i));
  return w;
}

/** Index of the first character after "0x" that is not a hex digit, or -1. */
function badHexAt(s: string): i32 {
  for (let i = 2; i < s.length; i++) if (hexValue(s.charCodeAt(i)) < 0) return i;
  return -1;
}

/**
 * The hash key (hash.ts), as SipHash's k0 and k1:
 * - `hashKey`: "0x" + 32 hex digits, the 16 key bytes in order (k0 = bytes 0–7 and
 *   k1 = bytes 8–15, each read little-endian, as SipHash reads its key);
 * - the older `hashSeed`, 64 bits ("0x" + 1–16 hex digits, or an integer below 2^53),
 *   widens to the key made of its 8 bytes (as written, most significant first) twice:
 *   hashSeed 0x1f2e3d4c5b6a7988 is hashKey 0x1f2e3d4c5b6a79881f2e3d4c5b6a7988;
 * - neither: the public DEFAULT_HASH_K0/K1, with a warning.
 * The key is secret: errors describe what is wrong with it, never its digits.
 */
function readKey(root: JsonObject, model: ConfigModel, errors: Errors): void {
  const key = root.get("hashKey");
  const seed = root.get("hashSeed");
  if (key != null && seed != null) {
    errors.add("hashSeed", "give hashKey or hashSeed, not both (hashSeed is the older 64-bit form of hashKey)");
    return;
  }
  if (key != null) {
    const expected = "expected \"0x\" and 32 hex digits (128 bits)";
    if (key.kind != JsonKind.String) {
      errors.add("hashKey", expected + ", got " + key.kindName());
      return;
    }
    const s = changetype<JsonString>(key).value;
    if (!(s.startsWith("0x") || s.startsWith("0X"))) {
      errors.add("hashKey", expected + ", got a string that does not start with 0x");
      return;
    }
    if (s.length != 34) {
      errors.add("hashKey", expected + ", got " + (s.length - 2).toString() + " characters after 0x");
      return;
    }
    const bad = badHexAt(s);
    if (bad >= 0) {
      errors.add("hashKey", expected + ", got a character that is not a hex digit at position " + bad.toString());
      return;
    }
    model.hashK0 = seedWord(hexWord(s, 2, 18));
    model.hashK1 = seedWord(hexWord(s, 18, 34));
    model.hashKeyGiven = true;
    return;
  }
  if (seed == null) return;
  const expected = "expected a 64-bit seed as \"0x\" and 1-16 hex digits (or, better, a 128-bit hashKey)";
  let value: u64 = 0;
  if (seed.kind == JsonKind.Number) {
    const n = changetype<JsonNumber>(seed);
    if (!n.isInteger || n.value < 0) {
      errors.add("hashSeed", expected + ", got a number that is not a non-negative integer");
      return;
    }
    value = <u64>n.value;
  } else if (seed.kind != JsonKind.String) {
    errors.add("hashSeed", expected + ", got " + seed.kindName());
    return;
  } else {
    const s = changetype<JsonString>(seed).value;
    if (s.length < 3 || s.length > 18 || !(s.startsWith("0x") || s.startsWith("0X")) || badHexAt(s) >= 0) {
      errors.add("hashSeed", expected + ", got a string of " + s.length.toString() + " characters that is not one");
      return;
    }
    value = hexWord(s, 2, s.length);
  }
  model.hashK0 = seedWord(value);
  model.hashK1 = seedWord(value);
  model.hashKeyGiven = true;
}

export function isPrime(n: i64): bool {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (let d: i64 = 3; d * d <= n; d += 2) if (n % d == 0) return false;
  return true;
}

function isPowerOfTwo(n: i64): bool {
  return n > 0 && (n & (n - 1)) == 0;
}

// ---- Reading ------------------------------------------------------------------------------------

const ROOT_FIELDS = ["hashKey", "hashSeed", "flowTable", "frontends", "backendPools", "probes", "rules", "health"];
const HEALTH_FIELDS = ["damping"];
const DAMPING_FIELDS = ["halfLifeSeconds", "suppressPenalty", "reusePenalty", "maxHoldSeconds"];
const FLOW_TABLE_FIELDS = ["capacity"];
const FRONTEND_FIELDS = ["name", "address"];
const POOL_FIELDS = ["name", "maglevTableSize", "drainPeriodSeconds", "handoverSeconds", "backends"];
const BACKEND_FIELDS = ["name", "address", "weight", "adminState"];
const PROBE_FIELDS = ["name", "protocol", "port", "intervalSeconds", "threshold", "path", "timeoutSeconds"];
const RULE_FIELDS = [
  "name", "frontend", "backendPool", "protocol", "frontendPort", "backendPort", "floatingIp",
  "loadDistribution", "symmetric", "idleTimeoutMinutes", "enableTcpReset", "probe",
  "persistOnUnhealthy", "noHealthyBackends",
];
export const PROTOCOLS = ["all", "tcp", "udp"];
export const PROTOCOL_VALUES: StaticArray<u8> = [RULE_PROTO_ALL, PROTO_TCP, PROTO_UDP];
export const DISTRIBUTIONS = ["default", "sourceIPProtocol", "sourceIP"];
export const DISTRIBUTION_VALUES: StaticArray<u8> = [DIST_DEFAULT, DIST_SOURCE_IP_PROTOCOL, DIST_SOURCE_IP];
export const PERSISTS = ["defaultForProtocol", "never", "always"];
export const PERSIST_VALUES: StaticArray<u8> = [PERSIST_DEFAULT_FOR_PROTOCOL, PERSIST_NEVER, PERSIST_ALWAYS];
export const NO_HEALTHY = ["drop", "failOpen"];
export const NO_HEALTHY_VALUES: StaticArray<u8> = [NO_HEALTHY_DROP, NO_HEALTHY_FAIL_OPEN];
export const ADMIN_STATES = ["up", "draining"];
const PROBE_PROTOCOLS = ["tcp", "http", "https"];

/** Items of the optional array `key` of `root`, each an object (others reported). */
function objectsOf(root: JsonObject, path: string, key: string, errors: Errors, max: i32): Array<JsonObject | null> {
  const out = new Array<JsonObject | null>();
  const where = join(path, key);
  const arr = asArray(root.get(key), where, errors);
  if (arr == null) return out;
  if (arr.items.length > max) {
    errors.add(where, "more than " + max.toString() + " entries");
    return out;
  }
  for (let i = 0; i < arr.items.length; i++) out.push(asObject(arr.items[i], at(where, i), errors));
  return out;
}

/**
 * The "health" section: `{"damping": {...} | false}`. Damping (health.ts) holds a target
 * that keeps failing and recovering down; its fields are positive numbers, and the
 * penalty's cap, reusePenalty × 2^(maxHoldSeconds / halfLifeSeconds), must reach
 * suppressPenalty or no target could ever be suppressed.
 */
function readHealth(root: JsonObject, d: DampingModel, errors: Errors): void {
  const health = asObject(root.get("health"), "health", errors);
  if (health == null) return;
  checkKnown(health, "health", HEALTH_FIELDS, errors);
  const v = health.get("damping");
  if (v == null) return;
  if (v.kind == JsonKind.Bool) {
    if (changetype<JsonBool>(v).value) errors.add("health.damping", "expected an object or false, got true");
    else d.enabled = false;
    return;
  }
  const o = asObject(v, "health.damping", errors);
  if (o == null) return;
  checkKnown(o, "health.damping", DAMPING_FIELDS, errors);
  const before = errors.count;
  d.halfLifeSeconds = readPositive(o, "halfLifeSeconds", "health.damping", errors, d.halfLifeSeconds);
  d.suppressPenalty = readPositive(o, "suppressPenalty", "health.damping", errors, d.suppressPenalty);
  d.reusePenalty = readPositive(o, "reusePenalty", "health.damping", errors, d.reusePenalty);
  d.maxHoldSeconds = readPositive(o, "maxHoldSeconds", "health.damping", errors, d.maxHoldSeconds);
  if (errors.count > before) return;
  if (d.reusePenalty > d.suppressPenalty) {
    errors.add("health.damping.reusePenalty", "must not exceed suppressPenalty");
  } else if (d.reusePenalty * Math.pow(2, d.maxHoldSeconds / d.halfLifeSeconds) < d.suppressPenalty) {
    const least = d.halfLifeSeconds * Math.log2(d.suppressPenalty / d.reusePenalty);
    errors.add("health.damping.maxHoldSeconds", "must be at least halfLifeSeconds × log2(suppressPenalty / reusePenalty) = "
      + formatNumber(Math.round(least * 1000) / 1000) + ", or the penalty could never reach suppressPenalty");
  }
}

/** `x` as JavaScript prints it for the values used here (no ".0" on integers). */
function formatNumber(x: f64): string {
  return x == Math.floor(x) && Math.abs(x) < 1e15 ? (<i64>x).toString() : x.toString();
}

/** A positive finite number (at most 10^9). */
function readPositive(obj: JsonObject, key: string, path: string, errors: Errors, def: f64): f64 {
  const v = obj.get(key);
  if (v == null) return def;
  if (v.kind != JsonKind.Number) {
    errors.add(join(path, key), "expected a positive number, got " + v.kindName());
    return def;
  }
  const n = changetype<JsonNumber>(v);
  if (!(n.value > 0) || n.value > 1e9) {
    errors.add(join(path, key), "must be a positive number up to 1e9, got " + n.raw);
    return def;
  }
  return n.value;
}

export function readConfig(root: JsonValue, errors: Errors): ConfigModel {
  const model = new ConfigModel();
  const obj = asObject(root, "", errors);
  if (obj == null) return model;
  // Unknown top-level sections belong to hosts (a pump's listeners, say): allowed, and
  // handed back to them by describe().
  for (let i = 0; i < obj.keys.length; i++) {
    if (ROOT_FIELDS.includes(obj.keys[i])) continue;
    model.hostSectionNames.push(obj.keys[i]);
    model.hostSections.push(obj.values[i]);
  }

  readKey(obj, model, errors);
  const flowTable = asObject(obj.get("flowTable"), "flowTable", errors);
  if (flowTable != null) {
    checkKnown(flowTable, "flowTable", FLOW_TABLE_FIELDS, errors);
    const cap = readInt(flowTable, "capacity", "flowTable", errors, MIN_FLOW_CAPACITY, MAX_FLOW_CAPACITY, DEFAULT_FLOW_CAPACITY);
    if (!isPowerOfTwo(cap)) errors.add("flowTable.capacity", "must be a power of two, got " + cap.toString());
    else model.flowCapacity = <i32>cap;
  }

  const frontends = objectsOf(obj, "", "frontends", errors, MAX_FRONTENDS);
  for (let i = 0; i < frontends.length; i++) {
    const f = frontends[i];
    if (f == null) continue;
    const path = at("frontends", i);
    const m = new FrontendModel();
    m.name = readName(f, path, errors);
    labelObject(errors, path, "frontend", m.name);
    checkKnown(f, path, FRONTEND_FIELDS, errors);
    m.address = readAddress(f, path, errors);
    model.frontends.push(m);
  }

  const pools = objectsOf(obj, "", "backendPools", errors, MAX_POOLS);
  let backendTotal = 0;
  for (let i = 0; i < pools.length; i++) {
    const p = pools[i];
    if (p == null) continue;
    const path = at("backendPools", i);
    const m = new PoolModel();
    m.name = readName(p, path, errors);
    labelObject(errors, path, "pool", m.name);
    checkKnown(p, path, POOL_FIELDS, errors);
    m.m = <i32>readInt(p, "maglevTableSize", path, errors, 3, MAX_MAGLEV_M, DEFAULT_MAGLEV_M);
    if (!isPrime(m.m)) errors.add(join(path, "maglevTableSize"), "must be prime, got " + m.m.toString());
    m.drainSeconds = <i32>readInt(p, "drainPeriodSeconds", path, errors, 0, 86400, 0);
    m.handoverSeconds = <i32>readInt(p, "handoverSeconds", path, errors, 0, 3600, 60);
    const backends = objectsOf(p, path, "backends", errors, MAX_BACKENDS);
    for (let j = 0; j < backends.length; j++) {
      const b = backends[j];
      if (b == null) continue;
      const bpath = at(join(path, "backends"), j);
      const bm = new BackendModel();
      bm.name = readName(b, bpath, errors);
      // A backend is named with its pool: `backend "nva-1" of pool "nvas"`.
      if (usable(bm.name)) {
        errors.label(bpath, "backend " + quote(bm.name) + (usable(m.name) ? " of pool " + quote(m.name) : ""));
      }
      checkKnown(b, bpath, BACKEND_FIELDS, errors);
      bm.address = readAddress(b, bpath, errors);
      bm.addressText = readString(b, "address", bpath, new Errors(), false, "");
      bm.weight = <i32>readInt(b, "weight", bpath, errors, 0, MAX_WEIGHT, 1);
      const admin = readEnum(b, "adminState", bpath, errors, ADMIN_STATES, 0);
      bm.admin = admin == 1 ? BACKEND_DRAINING : BACKEND_UP;
      m.backends.push(bm);
    }
    backendTotal += m.backends.length;
    model.pools.push(m);
  }
  if (backendTotal > MAX_BACKENDS) errors.add("backendPools", "more than " + MAX_BACKENDS.toString() + " backends in all");

  const probes = objectsOf(obj, "", "probes", errors, MAX_RULES);
  for (let i = 0; i < probes.length; i++) {
    const p = probes[i];
    if (p == null) continue;
    const path = at("probes", i);
    const m = new ProbeModel();
    m.name = readName(p, path, errors);
    labelObject(errors, path, "probe", m.name);
    checkKnown(p, path, PROBE_FIELDS, errors);
    const proto = readEnum(p, "protocol", path, errors, PROBE_PROTOCOLS, 0);
    if (proto >= 0) m.protocol = PROBE_PROTOCOLS[proto];
    if (!p.has("port")) errors.add(join(path, "port"), "required");
    m.port = <i32>readInt(p, "port", path, errors, 1, 65535, 0);
    m.intervalSeconds = <i32>readInt(p, "intervalSeconds", path, errors, 1, 3600, 5);
    m.threshold = <i32>readInt(p, "threshold", path, errors, 1, 100, 2);
    m.timeoutSeconds = <i32>readInt(p, "timeoutSeconds", path, errors, 1, 3600, m.intervalSeconds);
    if (m.timeoutSeconds > m.intervalSeconds) {
      errors.add(join(path, "timeoutSeconds"), "must not exceed intervalSeconds (" + m.intervalSeconds.toString()
        + "): a probe ends before the next one is due");
    }
    m.path = readString(p, "path", path, errors, false, "/");
    model.probes.push(m);
  }

  readHealth(obj, model.damping, errors);

  const rules = objectsOf(obj, "", "rules", errors, MAX_RULES);
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i];
    if (r == null) continue;
    const path = at("rules", i);
    const m = new RuleModel();
    m.name = readName(r, path, errors);
    labelObject(errors, path, "rule", m.name);
    checkKnown(r, path, RULE_FIELDS, errors);
    m.frontend = readString(r, "frontend", path, errors, true, "");
    m.pool = readString(r, "backendPool", path, errors, true, "");
    m.probe = readString(r, "probe", path, errors, false, "");
    const proto = readEnum(r, "protocol", path, errors, PROTOCOLS, 0);
    if (proto >= 0) m.protocol = PROTOCOL_VALUES[proto];
    const before = errors.count;
    m.frontendPort = <i32>readInt(r, "frontendPort", path, errors, 0, 65534, 0);
    m.backendPort = <i32>readInt(r, "backendPort", path, errors, 0, 65535, 0);
    m.portsReported = errors.count > before || proto < 0;
    m.floating = readBool(r, "floatingIp", path, errors, false);
    const dist = readEnum(r, "loadDistribution", path, errors, DISTRIBUTIONS, 0);
    if (dist >= 0) m.distribution = DISTRIBUTION_VALUES[dist];
    m.symmetric = readBool(r, "symmetric", path, errors, m.isHaPorts());
    m.idleMinutes = <i32>readInt(r, "idleTimeoutMinutes", path, errors, MIN_IDLE_TIMEOUT_MIN, MAX_IDLE_TIMEOUT_MIN, DEFAULT_IDLE_TIMEOUT_MIN);
    m.tcpReset = readBool(r, "enableTcpReset", path, errors, false);
    const persist = readEnum(r, "persistOnUnhealthy", path, errors, PERSISTS, 0);
    if (persist >= 0) m.persist = PERSIST_VALUES[persist];
    const noHealthy = readEnum(r, "noHealthyBackends", path, errors, NO_HEALTHY, 0);
    if (noHealthy >= 0) m.noHealthy = NO_HEALTHY_VALUES[noHealthy];
    model.rules.push(m);
  }
  return model;
}

// ---- Checking -----------------------------------------------------------------------------------

/** Reports a name already used by an earlier entry of the same list. */
function checkUnique(names: Array<string>, path: string, errors: Errors): void {
  const seen = new Map<string, i32>();
  for (let i = 0; i < names.length; i++) {
    const n = names[i];
    if (n.length == 0) continue;
    if (seen.has(n)) {
      errors.add(join(at(path, i), "name"), "name already used by " + at(path, seen.get(n)));
    } else {
      seen.set(n, i);
    }
  }
}

/** Identity of a backend address across pools. */
function addressKey(a: Address): string {
  return a.family.toString() + "/" + a.lo().toString() + "/" + a.hi().toString();
}

/** `rule "a" (rules[0])`: a rule by name and path (by path alone when it has no name). */
function ruleRef(model: ConfigModel, i: i32): string {
  const name = model.rules[i].name;
  return usable(name) ? "rule " + quote(name) + " (" + at("rules", i) + ")" : at("rules", i);
}

/** Most rules one line lists by name; the rest are counted. */
const MAX_LISTED: i32 = 8;

/**
 * Every rule of `list` by name and path: `rule "a" (rules[0])`, or
 * `rules "a" (rules[0]), "b" (rules[2]) and "c" (rules[3])`.
 */
function ruleList(model: ConfigModel, list: Array<i32>): string {
  if (list.length == 1) return ruleRef(model, list[0]);
  const shown = min(list.length, MAX_LISTED);
  let s = "rules ";
  for (let x = 0; x < shown; x++) {
    if (x > 0) s += x == list.length - 1 ? " and " : ", ";
    const name = model.rules[list[x]].name;
    s += usable(name) ? quote(name) + " (" + at("rules", list[x]) + ")" : at("rules", list[x]);
  }
  if (list.length > shown) s += " and " + (list.length - shown).toString() + " more";
  return s;
}

/** `backend "nva-1" of pool "nvas"` (by path when unnamed). */
function backendRef(model: ConfigModel, p: i32, j: i32): string {
  const pool = model.pools[p];
  const name = pool.backends[j].name;
  if (!usable(name)) return at(join(at("backendPools", p), "backends"), j);
  return "backend " + quote(name) + (usable(pool.name) ? " of pool " + quote(pool.name) : "");
}

/**
 * The HA-ports caveats of Azure's HA-ports overview (docs/design.md "The HA-ports caveats"), each reported with
 * every rule involved (by name and path), and the frontend, pools and backends. A
 * "backend" in the caveats is a backend address: the same address may stand in several pools.
 */
function checkCaveats(model: ConfigModel, errors: Errors): void {
  const rules = model.rules;
  // Per rule: the backends of its pool, by address key → the first backend's index.
  const addresses = new Array<Map<string, i32>>();
  for (let i = 0; i < rules.length; i++) {
    const m = new Map<string, i32>();
    const p = rules[i].poolIndex;
    if (p >= 0) {
      const backends = model.pools[p].backends;
      for (let j = 0; j < backends.length; j++) {
        const key = addressKey(backends[j].address);
        if (backends[j].address.family != 0 && !m.has(key)) m.set(key, j);
      }
    }
    addresses.push(m);
  }

  // Caveats 2 and 3: rules that share a backend address.
  for (let i = 0; i < rules.length; i++) {
    for (let k = 0; k < rules.length; k++) {
      if (k == i || rules[i].poolIndex < 0 || rules[k].poolIndex < 0) continue;
      const a = rules[i];
      const b = rules[k];
      // The first shared address, and how many more.
      const keys = addresses[i].keys();
      let shared = "";
      let more = 0;
      for (let x = 0; x < keys.length; x++) {
        if (!addresses[k].has(keys[x])) continue;
        if (shared.length == 0) shared = keys[x];
        else more++;
      }
      if (shared.length == 0) continue;
      let kind = "";
      if (a.isHaPorts() && !a.floating) {
        if (b.isHaPorts() && !b.floating && k < i) continue; // reported from the other rule
        kind = "non-floating";
      } else if (k > i && a.isHaPorts() && a.floating && b.isHaPorts() && b.floating && a.frontendIndex == b.frontendIndex) {
        kind = "floating-IP";
      } else {
        continue;
      }
      // Reported at rule k, whose name the line starts with; rule i by name and path.
      const ji = addresses[i].get(shared);
      const jk = addresses[k].get(shared);
      let s = "its " + backendRef(model, b.poolIndex, jk) + " has address " + model.pools[b.poolIndex].backends[jk].addressText
        + ", which is in " + kind + " HA-ports " + ruleRef(model, i)
        + (a.poolIndex == b.poolIndex && ji == jk ? " too" : " as " + backendRef(model, a.poolIndex, ji));
      if (kind == "non-floating") {
        s += ", so it may be in no other rule";
      } else {
        s += ", on the same frontend " + quote(a.frontend) + "; floating-IP HA-ports rules that share a backend address"
          + " need distinct frontends";
      }
      if (more > 0) s += "; " + more.toString() + " more " + (more == 1 ? "address is" : "addresses are") + " shared the same way";
      errors.add(at("rules", k), s + " (HA-ports caveat " + (kind == "non-floating" ? "2" : "3") + ")");
    }
  }

  // Caveat 4: the rules of one pool are all HA-ports rules (then floating IP) or none is.
  for (let p = 0; p < model.pools.length; p++) {
    const ha = new Array<i32>();
    const nonHa = new Array<i32>();
    const haNonFloating = new Array<i32>();
    for (let i = 0; i < rules.length; i++) {
      if (rules[i].poolIndex != p) continue;
      if (rules[i].isHaPorts()) {
        ha.push(i);
        if (!rules[i].floating) haNonFloating.push(i);
      } else {
        nonHa.push(i);
      }
    }
    if (ha.length + nonHa.length < 2) continue;
    const path = at("backendPools", p);
    if (ha.length > 0 && nonHa.length > 0) {
      errors.add(path, "used by HA-ports " + ruleList(model, ha) + " and by non-HA-ports " + ruleList(model, nonHa)
        + "; the rules of one pool must all be HA-ports rules (with floating IP) or all non-HA-ports rules (HA-ports caveat 4)");
    } else if (ha.length > 1 && haNonFloating.length > 0) {
      errors.add(path, "used by HA-ports " + ruleList(model, ha) + ", so all must have floatingIp true, but "
        + ruleList(model, haNonFloating) + (haNonFloating.length == 1 ? " does" : " do") + " not (HA-ports caveat 4)");
    }
  }
}

/** Advice (warnings) and notes (info) that never reject a configuration. */
function checkWarnings(model: ConfigModel, errors: Errors): void {
  if (!model.hashKeyGiven) {
    errors.warn("hashKey", "not set: the built-in public key is used, so instances still agree but anyone can"
      + " compute which flows share a flow-table bucket or a backend and aim a flood at chosen flows;"
      + " set the same secret \"0x\" + 32 hex digits on every instance");
  }
  for (let i = 0; i < model.rules.length; i++) {
    const r = model.rules[i];
    if (r.isHaPorts() && r.frontendIndex >= 0 && model.frontends[r.frontendIndex].address.family == 6) {
      // Azure history, not advice: info, so that a job failing on warnings passes.
      errors.info(at("rules", i), "HA ports on IPv6 frontend " + quote(r.frontend)
        + " were not available in Azure's original (2017) HA-ports release; Azure supports them now, and so does haports");
    }
  }
  for (let p = 0; p < model.pools.length; p++) {
    const pool = model.pools[p];
    if (<i64>pool.m < 100 * <i64>pool.backends.length) {
      errors.warn(join(at("backendPools", p), "maglevTableSize"), pool.m.toString() + " is less than 100 × "
        + pool.backends.length.toString() + " backends; the spread over backends will be uneven");
    }
  }
}

export function checkModel(model: ConfigModel, errors: Errors): void {
  const feNames = new Array<string>();
  for (let i = 0; i < model.frontends.length; i++) feNames.push(model.frontends[i].name);
  checkUnique(feNames, "frontends", errors);
  const poolNames = new Array<string>();
  for (let i = 0; i < model.pools.length; i++) {
    const pool = model.pools[i];
    poolNames.push(pool.name);
    const bnames = new Array<string>();
    for (let j = 0; j < pool.backends.length; j++) bnames.push(pool.backends[j].name);
    checkUnique(bnames, join(at("backendPools", i), "backends"), errors);
  }
  checkUnique(poolNames, "backendPools", errors);
  const probeNames = new Array<string>();
  for (let i = 0; i < model.probes.length; i++) probeNames.push(model.probes[i].name);
  checkUnique(probeNames, "probes", errors);
  const ruleNames = new Array<string>();
  for (let i = 0; i < model.rules.length; i++) ruleNames.push(model.rules[i].name);
  checkUnique(ruleNames, "rules", errors);

  // Frontend addresses are distinct (a packet's destination names one frontend).
  const feAddr = new Map<string, i32>();
  for (let i = 0; i < model.frontends.length; i++) {
    const a = model.frontends[i].address;
    if (a.family == 0) continue;
    const key = a.lo().toString() + "/" + a.hi().toString() + "/" + a.family.toString();
    if (feAddr.has(key)) {
      const other = feAddr.get(key);
      const name = model.frontends[other].name;
      errors.add(join(at("frontends", i), "address"), "same address as "
        + (usable(name) ? "frontend " + quote(name) + " (" + at("frontends", other) + ")" : at("frontends", other)));
    } else {
      feAddr.set(key, i);
    }
  }

  // Rules: references, ports, one rule per (frontend, protocol, port).
  const used = new Map<string, i32>();
  for (let i = 0; i < model.rules.length; i++) {
    const r = model.rules[i];
    const path = at("rules", i);
    if (r.frontend.length > 0) {
      r.frontendIndex = feNames.indexOf(r.frontend);
      if (r.frontendIndex < 0) errors.add(join(path, "frontend"), "unknown frontend " + quote(r.frontend));
    }
    if (r.pool.length > 0) {
      r.poolIndex = poolNames.indexOf(r.pool);
      if (r.poolIndex < 0) errors.add(join(path, "backendPool"), "unknown backend pool " + quote(r.pool));
    }
    if (r.probe.length > 0) {
      r.probeIndex = probeNames.indexOf(r.probe);
      if (r.probeIndex < 0) errors.add(join(path, "probe"), "unknown probe " + quote(r.probe));
    }
    const all = r.protocol == RULE_PROTO_ALL;
    const zero = r.frontendPort == 0 && r.backendPort == 0;
    if (r.portsReported) {
      // Already reported; its ports prove nothing more.
    } else if (all && !zero) {
      errors.add(path, "protocol \"all\" (HA ports) needs frontendPort 0 and backendPort 0");
    } else if (!all && (r.frontendPort == 0 || r.backendPort == 0)) {
      errors.add(path, "ports 0 mean HA ports, which needs protocol \"all\"; a " + (r.protocol == PROTO_TCP ? "tcp" : "udp")
        + " rule needs frontendPort 1-65534 and backendPort 1-65535");
    }
    if (r.frontendIndex >= 0) {
      const key = r.frontendIndex.toString() + "/" + r.protocol.toString() + "/" + r.frontendPort.toString();
      if (used.has(key)) {
        const other = used.get(key);
        if (all) {
          errors.add(path, "frontend " + quote(r.frontend) + " already has HA-ports " + ruleRef(model, other)
            + "; a frontend may have one floating-IP or one non-floating HA-ports rule, never both"
            + " (HA-ports caveat 1)");
        } else {
          errors.add(path, "same frontend, protocol and port as " + ruleRef(model, other));
        }
      } else {
        used.set(key, i);
      }
      // A non-floating rule rewrites the destination: the families must agree.
      if (!r.floating && r.poolIndex >= 0) {
        const fam = model.frontends[r.frontendIndex].address.family;
        const pool = model.pools[r.poolIndex];
        for (let j = 0; j < pool.backends.length; j++) {
          const bf = pool.backends[j].address.family;
          if (fam != 0 && bf != 0 && bf != fam) {
            errors.add(path, "frontend " + quote(r.frontend) + " is IPv" + fam.toString() + " but "
              + backendRef(model, r.poolIndex, j) + " is IPv" + bf.toString()
              + "; a non-floating rule needs one address family");
            break;
          }
        }
      }
    }
  }
  checkCaveats(model, errors);
  checkWarnings(model, errors);
}

// ---- Compiling ---------------------------------------------------------------------------------

function nextPowerOfTwo(n: i32): i32 {
  let p = 1;
  while (p < n) p <<= 1;
  return p;
}

let sortKeys: StaticArray<string> = new StaticArray<string>(0);
function byName(a: i32, b: i32): i32 {
  const x = sortKeys[a];
  const y = sortKeys[b];
  return x == y ? a - b : (x < y ? -1 : 1);
}

/** Backend identity across configurations: pool name and backend name. */
export function backendKey(pool: string, backend: string): string {
  return pool + "\u0000" + backend;
}

/**
 * Compiles a checked model into a Plan, with Maglev tables built. Health carries over
 * from `previous` for backends with the same pool and name.
 */
export function compile(model: ConfigModel, previous: Plan | null): Plan {
  const plan = new Plan();
  plan.hashK0 = model.hashK0;
  plan.hashK1 = model.hashK1;
  plan.flowCapacity = model.flowCapacity;

  const nf = model.frontends.length;
  plan.frontendNames = new StaticArray<string>(nf);
  plan.frontendFamily = new StaticArray<u8>(nf);
  plan.frontendLo = new StaticArray<u64>(nf);
  plan.frontendHi = new StaticArray<u64>(nf);
  plan.frontendHaRule = new StaticArray<i32>(nf);
  plan.frontendSlots = new StaticArray<i32>(nextPowerOfTwo(nf * 2 + 2));
  plan.frontendSlots.fill(-1);
  for (let i = 0; i < nf; i++) {
    const f = model.frontends[i];
    plan.frontendNames[i] = f.name;
    plan.frontendFamily[i] = f.address.family;
    plan.frontendLo[i] = f.address.lo();
    plan.frontendHi[i] = f.address.hi();
    plan.frontendHaRule[i] = NONE;
    indexAddress(plan.frontendSlots, plan.frontendFamily, plan.frontendLo, plan.frontendHi, i);
  }

  // Backends: global indices, pools in order, backends in order.
  let nb = 0;
  for (let i = 0; i < model.pools.length; i++) nb += model.pools[i].backends.length;
  plan.backendNames = new StaticArray<string>(nb);
  plan.backendPool = new StaticArray<i32>(nb);
  plan.backendFamily = new StaticArray<u8>(nb);
  plan.backendLo = new StaticArray<u64>(nb);
  plan.backendHi = new StaticArray<u64>(nb);
  plan.backendWeight = new StaticArray<i32>(nb);
  plan.backendAdmin = new StaticArray<u8>(nb);
  plan.backendHealth = new StaticArray<u8>(nb);
  plan.backendState = new StaticArray<u8>(nb);
  plan.backendCounters = new StaticArray<u64>(nb * PER_OBJECT_COUNTERS);
  plan.backendDrainSince = new StaticArray<f64>(nb);
  const previousIndex = new Map<string, i32>();
  if (previous != null) {
    for (let b = 0; b < previous.backendNames.length; b++) {
      const poolName = previous.pools[previous.backendPool[b]].name;
      previousIndex.set(backendKey(poolName, previous.backendNames[b]), b);
    }
  }
  plan.pools = new StaticArray<Pool>(model.pools.length);
  let g = 0;
  for (let i = 0; i < model.pools.length; i++) {
    const pm = model.pools[i];
    const pool = new Pool();
    pool.name = pm.name;
    pool.m = pm.m;
    pool.drainMs = <f64>pm.drainSeconds * 1000.0;
    pool.handoverMs = pm.handoverSeconds * 1000;
    const members = new Array<i32>();
    for (let j = 0; j < pm.backends.length; j++, g++) {
      const bm = pm.backends[j];
      plan.backendNames[g] = bm.name;
      plan.backendPool[g] = i;
      plan.backendFamily[g] = bm.address.family;
      plan.backendLo[g] = bm.address.lo();
      plan.backendHi[g] = bm.address.hi();
      plan.backendWeight[g] = bm.weight;
      plan.backendAdmin[g] = bm.admin;
      // Health, and a drain already under way, carry over from the running configuration.
      const key = backendKey(pm.name, bm.name);
      const old = previousIndex.has(key) ? previousIndex.get(key) : -1;
      plan.backendHealth[g] = old >= 0 ? previous!.backendHealth[old] : BACKEND_UP;
      plan.backendDrainSince[g] = old >= 0 && previous!.backendAdmin[old] == BACKEND_DRAINING
        ? previous!.backendDrainSince[old] : -1;
      if (bm.admin == BACKEND_DRAINING && plan.backendDrainSince[g] < 0) plan.drainPending = true;
      members.push(g);
    }
    // The stable order: by backend name (§3.4 needs every instance to agree).
    sortKeys = plan.backendNames;
    members.sort(byName);
    pool.members = StaticArray.fromArray<i32>(members);
    pool.prepare(plan.backendNames);
    pool.allocateTables();
    plan.pools[i] = pool;
  }
  compileHealth(model, plan, previous);
  updateStates(plan);
  for (let i = 0; i < plan.pools.length; i++) rebuildPool(plan.pools[i], plan.backendWeight, plan.backendState, true);

  const nr = model.rules.length;
  plan.ruleNames = new StaticArray<string>(nr);
  plan.ruleFrontend = new StaticArray<i32>(nr);
  plan.rulePool = new StaticArray<i32>(nr);
  plan.ruleProto = new StaticArray<u8>(nr);
  plan.ruleFrontendPort = new StaticArray<u16>(nr);
  plan.ruleBackendPort = new StaticArray<u16>(nr);
  plan.ruleFloating = new StaticArray<bool>(nr);
  plan.ruleDistribution = new StaticArray<u8>(nr);
  plan.ruleSymmetric = new StaticArray<bool>(nr);
  plan.ruleIdleMinutes = new StaticArray<u8>(nr);
  plan.ruleTcpReset = new StaticArray<bool>(nr);
  plan.rulePersist = new StaticArray<u8>(nr);
  plan.ruleNoHealthy = new StaticArray<u8>(nr);
  plan.ruleCounters = new StaticArray<u64>(nr * PER_OBJECT_COUNTERS);
  plan.exactKeys = new StaticArray<u64>(nextPowerOfTwo(nr * 2 + 2));
  plan.exactRules = new StaticArray<i32>(plan.exactKeys.length);
  for (let i = 0; i < nr; i++) {
    const r = model.rules[i];
    plan.ruleNames[i] = r.name;
    plan.ruleFrontend[i] = r.frontendIndex;
    plan.rulePool[i] = r.poolIndex;
    plan.ruleProto[i] = r.protocol;
    plan.ruleFrontendPort[i] = <u16>r.frontendPort;
    plan.ruleBackendPort[i] = <u16>r.backendPort;
    plan.ruleFloating[i] = r.floating;
    plan.ruleDistribution[i] = r.distribution;
    plan.ruleSymmetric[i] = r.symmetric;
    plan.ruleIdleMinutes[i] = <u8>r.idleMinutes;
    plan.ruleTcpReset[i] = r.tcpReset;
    plan.rulePersist[i] = r.persist;
    plan.ruleNoHealthy[i] = r.noHealthy;
    if (r.protocol == RULE_PROTO_ALL) plan.frontendHaRule[r.frontendIndex] = i;
    else {
      indexExactRule(plan, i);
      plan.hasExact = true;
    }
  }

  // Backends behind non-floating rules: their replies are recognised by source address.
  let natCount = 0;
  const isNat = new StaticArray<bool>(nb);
  for (let i = 0; i < nr; i++) {
    if (plan.ruleFloating[i]) continue;
    const pool = plan.pools[plan.rulePool[i]];
    for (let k = 0; k < pool.members.length; k++) {
      if (!isNat[pool.members[k]]) natCount++;
      isNat[pool.members[k]] = true;
    }
  }
  plan.natBackendSlots = new StaticArray<i32>(natCount > 0 ? nextPowerOfTwo(natCount * 2 + 2) : 0);
  plan.natBackendSlots.fill(-1);
  const seenAddress = new Map<string, bool>();
  for (let b = 0; b < nb; b++) {
    if (!isNat[b]) continue;
    // One entry per address: a backend in several pools is found once (its reply
    // entries name the rule and backend exactly).
    const key = plan.backendLo[b].toString() + "/" + plan.backendHi[b].toString() + "/" + plan.backendFamily[b].toString();
    if (seenAddress.has(key)) continue;
    seenAddress.set(key, true);
    indexAddress(plan.natBackendSlots, plan.backendFamily, plan.backendLo, plan.backendHi, b);
  }
  return plan;
}

/** Probe targets of a configuration: one per (probe, backend address) of the rules that name a probe. */
export class ProbeTargets {
  probe: Array<i32> = new Array<i32>();
  /** The address in canonical form (formatAddress). */
  address: Array<string> = new Array<string>();
  family: Array<u8> = new Array<u8>();
  /** The backends each target speaks for (global indices), and the targets of each backend. */
  backends: Array<Array<i32>> = new Array<Array<i32>>();
  ofBackend: Array<Array<i32>> = new Array<Array<i32>>();
}

/**
 * The probe targets of a checked model, numbered in rule order, then pool order: the
 * core's numbering (probeResult), which the Envoy filter builds its probes from too.
 */
export function probeTargetsOf(model: ConfigModel): ProbeTargets {
  const out = new ProbeTargets();
  const poolStart = new Array<i32>();
  let nb = 0;
  for (let p = 0; p < model.pools.length; p++) {
    poolStart.push(nb);
    nb += model.pools[p].backends.length;
  }
  for (let b = 0; b < nb; b++) out.ofBackend.push(new Array<i32>());
  const index = new Map<string, i32>();
  for (let r = 0; r < model.rules.length; r++) {
    const rule = model.rules[r];
    if (rule.probeIndex < 0 || rule.poolIndex < 0) continue;
    const pool = model.pools[rule.poolIndex];
    for (let j = 0; j < pool.backends.length; j++) {
      const b = poolStart[rule.poolIndex] + j;
      const address = formatAddress(pool.backends[j].address);
      const key = rule.probeIndex.toString() + "/" + address;
      let t: i32;
      if (index.has(key)) {
        t = index.get(key);
      } else {
        t = out.probe.length;
        index.set(key, t);
        out.probe.push(rule.probeIndex);
        out.address.push(address);
        out.family.push(pool.backends[j].address.family);
        out.backends.push(new Array<i32>());
      }
      if (!out.backends[t].includes(b)) out.backends[t].push(b);
      if (!out.ofBackend[b].includes(t)) out.ofBackend[b].push(t);
    }
  }
  return out;
}

/**
 * Probes, their targets and the damping settings (health.ts). A target's state carries
 * over from `previous` by probe name and address.
 */
function compileHealth(model: ConfigModel, plan: Plan, previous: Plan | null): void {
  const np = model.probes.length;
  plan.probeNames = new StaticArray<string>(np);
  plan.probeThreshold = new StaticArray<i32>(np);
  for (let i = 0; i < np; i++) {
    plan.probeNames[i] = model.probes[i].name;
    plan.probeThreshold[i] = model.probes[i].threshold;
  }
  const d = model.damping;
  plan.dampingEnabled = d.enabled;
  plan.halfLifeMs = d.halfLifeSeconds * 1000;
  plan.suppressPenalty = d.suppressPenalty;
  plan.reusePenalty = d.reusePenalty;
  plan.penaltyCap = d.reusePenalty * Math.pow(2, d.maxHoldSeconds / d.halfLifeSeconds);

  const targets = probeTargetsOf(model);
  const nt = targets.probe.length;
  const nb = targets.ofBackend.length;
  plan.targetProbe = StaticArray.fromArray<i32>(targets.probe);
  plan.targetAddress = StaticArray.fromArray<string>(targets.address);
  plan.targetFamily = StaticArray.fromArray<u8>(targets.family);
  plan.targetBackends = new StaticArray<StaticArray<i32>>(nt);
  for (let t = 0; t < nt; t++) plan.targetBackends[t] = StaticArray.fromArray<i32>(targets.backends[t]);
  plan.backendTargets = new StaticArray<StaticArray<i32>>(nb);
  for (let b = 0; b < nb; b++) plan.backendTargets[b] = StaticArray.fromArray<i32>(targets.ofBackend[b]);

  plan.targetRecords = new StaticArray<u8>(nt * PROBE_TARGET_BYTES);
  const old = new Map<string, i32>();
  if (previous != null) {
    for (let t = 0; t < previous.targetProbe.length; t++) {
      old.set(previous.probeNames[previous.targetProbe[t]] + "\u0000" + previous.targetAddress[t], t);
    }
  }
  for (let t = 0; t < nt; t++) {
    const key = plan.probeNames[targets.probe[t]] + "\u0000" + targets.address[t];
    if (old.has(key)) carryRecord(previous!, old.get(key), plan, t, targets.probe[t]);
    else initRecord(plan, t, targets.probe[t]);
  }
  plan.backendProbeHealth = new StaticArray<u8>(nb);
  for (let b = 0; b < nb; b++) plan.backendProbeHealth[b] = probeHealthOf(plan, b);
}

/**
 * Effective state per backend: down if a probe target of it is down or its host said
 * so (setBackendHealth), else its admin state.
 */
export function updateStates(plan: Plan): void {
  for (let b = 0; b < plan.backendState.length; b++) {
    const down = plan.backendHealth[b] != BACKEND_UP || plan.backendProbeHealth[b] != BACKEND_UP;
    plan.backendState[b] = down ? BACKEND_DOWN : plan.backendAdmin[b];
  }
}

/** Frees what a Plan holds outside the GC heap (its Maglev tables). */
export function releasePlan(plan: Plan): void {
  for (let i = 0; i < plan.pools.length; i++) plan.pools[i].freeTables();
}

/**
 * Parses, reads and checks the configuration text at [ptr, ptr + len). Returns the
 * model, or null with `errors` filled in.
 */
export function parseConfig(ptr: usize, len: i32, errors: Errors): ConfigModel | null {
  const model = readModel(ptr, len, errors);
  return errors.count > 0 ? null : model;
}

/**
 * parseConfig's reading, kept even when `errors` has some (null only when the text is
 * not JSON): a host checks its own section (model.hostSections) of a rejected
 * configuration too, so one answer lists every error.
 */
export function readModel(ptr: usize, len: i32, errors: Errors): ConfigModel | null {
  const parsed = parseJson(ptr, len, MAX_JSON_DEPTH);
  const value = parsed.value;
  if (value == null || parsed.error.length > 0) {
    errors.add("$", "invalid JSON at byte " + parsed.errorOffset.toString() + ": " + parsed.error);
    return null;
  }
  const model = readConfig(value, errors);
  checkModel(model, errors);
  return model;
}
