// A plain TypeScript port of the core's packet pipeline (assembly/datapath.ts and the
// stages it calls), over typed arrays: what the same algorithm costs without
// WebAssembly. It keeps the core's host interface — one linear memory with the rx arena,
// descriptors, verdict and tuple records at fixed offsets — so that the benchmark
// drives it with the same host code, and writes byte-identical verdict and tuple records
// (the benchmark checks that it does, packet by packet, before it reports a number).
//
//   descriptor → parse → later fragment → rule → flow → pick → track → verdict
//
// Covered as the core does it: parse (Ethernet/VLAN, IPv4 options and fragments, IPv6
// extension headers, ICMP echo and errors), exact and HA-ports rules, distribution
// modes, symmetric keys, the keyed SipHash-1-3 flow hash (hashKey / hashSeed), the
// two-bucket flow table with cuckoo moves, its clock, admission (SYN, established,
// swapped, 1 s) and eviction rules, the restart of a flow by a bare SYN, fragment
// entries (later fragments follow their first), health, persistence, failOpen, counters.
// The core runs a batch in pass groups (classify and hash every packet of a group, then
// decide); classification reads nothing the decisions write, so the port runs each
// packet through both at once, with the same results.
// Not ported: configuration validation (the port trusts its configuration), and what
// the benchmark's traffic (one floating-IP rule, no fragments, every backend up, no
// enableTcpReset) never reaches: NAT rewriting and reply entries (non-floating rules),
// drain periods (a draining backend keeps its flows, as with drainSeconds 0), and the
// RSTs of enableTcpReset (an idle-expired TCP flow starts over, as without it).

import {
  ACTION_DROP, ACTION_FORWARD, ACTION_NOMATCH, BACKEND_DOWN, BACKEND_UP, C_BATCHES, C_BYTES,
  C_DROP_REASON_BASE, C_DROPPED, C_EVICTIONS, C_FLOW_ESTABLISHED, C_FLOW_HITS, C_FLOW_MOVED,
  C_FLOW_MOVES, C_FLOW_NEW, C_FORWARDED, C_FRAG_3TUPLE, C_FRAG_ENTRIES, C_FRAG_HITS, C_ICMP_ERRORS,
  C_NOMATCH, C_PACKETS, C_UNTRACKED, COUNTER_SLOTS, DEFAULT_HASH_SEED, DESCRIPTOR_BYTES, DIST_DEFAULT,
  DIST_SOURCE_IP, DIST_SOURCE_IP_PROTOCOL, FLAG_ESTABLISHED, FLAG_EVICTED, FLAG_EXACT_RULE,
  FLAG_FAIL_OPEN, FLAG_FLOW_HIT, FLAG_FLOW_NEW, FLAG_FRAG_3TUPLE, FLAG_FRAGMENT, FLAG_ICMP_ERROR,
  FLAG_NEXT_HOP, FLAG_UNTRACKED, FLOW_ESTABLISH_AFTER_MS, LINK_ETHERNET, LINK_RAW_IP, MAX_BATCH,
  NO_HEALTHY_FAIL_OPEN, NONE, PERSIST_ALWAYS, PERSIST_NEVER, PROTO_TCP, REASON_BAD_DESCRIPTOR,
  REASON_NO_HEALTHY_BACKEND, REASON_NO_RULE, REASON_NONE, RULE_PROTO_ALL, RX_ARENA_BYTES, TUPLE_BYTES,
  VERDICT_BYTES,
} from './consts';
import { fmix64, fmix64Inline, keyHash, mul64, R, setHashKey, w, ws } from './hash';
import {
  keyDport, keyDst, keyFamily, keyProto, keySport, keySrc, noPacket, parsePacket, pktDport, pktFamily,
  pktFlags, pktFragId, pktHasPorts, pktL3, pktProto, pktSport, pktSrc, pktDst, pktTcpFlags,
  setPacketMemory, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN,
} from './packet';
import { buildTable, lookup, Pool, preparePool } from './maglev';
import {
  entryAge, entryBackend, entryExpired, entryRule, entryState, flowFind, flowInsert, flowLookup,
  flowMoves, flowsAllocate, flowsClock, insertEvicted, restartEntry, setEntryBackend, STATE_CLOSING,
  STATE_ESTABLISHED, STATE_FRAGMENT, STATE_SWAPPED, STATE_SYN, touchEntry, touchFlow,
} from './flows';

// ---- Memory: the core's regions, at fixed offsets of one ArrayBuffer ---------------------

export const ARENA_PTR = 0;
export const DESCRIPTORS_PTR = RX_ARENA_BYTES;
export const VERDICTS_PTR = DESCRIPTORS_PTR + MAX_BATCH * DESCRIPTOR_BYTES;
export const TUPLES_PTR = VERDICTS_PTR + MAX_BATCH * VERDICT_BYTES;
const MEMORY_BYTES = TUPLES_PTR + MAX_BATCH * TUPLE_BYTES;

const memory = new ArrayBuffer(MEMORY_BYTES);
const u8 = new Uint8Array(memory);
const u16 = new Uint16Array(memory);
const u32 = new Uint32Array(memory);
setPacketMemory(u8);

const counters = new Float64Array(COUNTER_SLOTS);

// ---- The compiled configuration ----------------------------------------------------------

interface Plan {
  frontendFamily: number[]; frontendLo: Uint32Array; frontendHi: Uint32Array; // 2 u32 per frontend
  frontendHaRule: number[]; frontendSlots: Int32Array;
  exactKeys: Uint32Array; exactRules: Int32Array; hasExact: boolean; // 2 u32 per slot; 0:0 = empty
  ruleFrontend: number[]; rulePool: number[]; ruleDistribution: number[]; ruleSymmetric: boolean[];
  ruleIdleMinutes: Uint8Array;
  rulePersist: number[]; ruleNoHealthy: number[];
  pools: Pool[]; tableAll: Uint16Array[];
  backendNames: string[]; backendState: number[]; backendWeight: number[];
  backendCounters: Float64Array; ruleCounters: Float64Array;
}

let plan: Plan;

/** An address as the core's key words: IPv4 lo = LE u32 of its bytes; IPv6 two LE u64. */
function addressWords(text: string): { family: number; words: number[] } {
  const bytes: number[] = [];
  if (text.includes(':')) {
    const [head, tail] = text.split('::');
    const parse = (s: string | undefined) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
    const h = parse(head);
    const t = tail === undefined ? [] : parse(tail);
    const groups = tail === undefined ? h : [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
    for (const g of groups) bytes.push(g >> 8, g & 255);
  } else {
    bytes.push(...text.split('.').map(Number), ...new Array(12).fill(0));
  }
  const le = (o: number) => (bytes[o] | (bytes[o + 1] << 8) | (bytes[o + 2] << 16) | (bytes[o + 3] << 24)) >>> 0;
  return { family: text.includes(':') ? 6 : 4, words: [le(0), le(4), le(8), le(12)] };
}

function nextPowerOfTwo(n: number): number { let p = 1; while (p < n) p <<= 1; return p; }

/** addressSlot of assembly/rules.ts: fmix64(lo ^ hi × φ ^ family << 56) & mask. */
function addressSlot(family: number, w0: number, w1: number, w2: number, w3: number, mask: number): number {
  mul64(w2, w3, 0x7f4a7c15, 0x9e3779b9);
  fmix64((w0 ^ R[0]) >>> 0, (w1 ^ R[1] ^ (family << 24)) >>> 0);
  return R[0] & mask;
}

/** exactKey(frontend, proto, port) = (frontend + 1) | proto << 32 | port << 40. */
function exactSlot(frontend: number, proto: number, port: number, mask: number): number {
  fmix64Inline(frontend + 1, proto | (port << 8));
  return R[0] & mask;
}

/** The bytes of `v` in the other order (a u64: hashSeed's and hashKey's words → SipHash's). */
function bswap64(v: bigint): bigint {
  let r = 0n;
  for (let i = 0n; i < 64n; i += 8n) r = (r << 8n) | ((v >> i) & 0xffn);
  return r;
}

/**
 * readKey of assembly/config.ts: `hashKey` ("0x" + 32 hex digits, k0 = bytes 0–7 and
 * k1 = bytes 8–15 read little-endian), or `hashSeed` S (k0 = k1 = S's 8 bytes as written,
 * read little-endian), or the public default (hashSeed 0x1f2e3d4c5b6a7988).
 */
function setKey(config: any): void {
  let k0: bigint, k1: bigint;
  if (config.hashKey !== undefined) {
    const s = String(config.hashKey);
    k0 = bswap64(BigInt('0x' + s.slice(2, 18)));
    k1 = bswap64(BigInt('0x' + s.slice(18, 34)));
  } else {
    const seed = config.hashSeed ?? DEFAULT_HASH_SEED;
    k0 = bswap64(BigInt(typeof seed === 'string' ? '0x' + seed.slice(2) : seed));
    k1 = k0;
  }
  setHashKey(Number(k0 & 0xffffffffn), Number(k0 >> 32n), Number(k1 & 0xffffffffn), Number(k1 >> 32n));
}

export function configure(config: any): void {
  setKey(config);
  const frontends = config.frontends ?? [];
  const nf = frontends.length;
  const p: Plan = {
    frontendFamily: [], frontendLo: new Uint32Array(2 * nf), frontendHi: new Uint32Array(2 * nf),
    frontendHaRule: new Array(nf).fill(NONE), frontendSlots: new Int32Array(nextPowerOfTwo(nf * 2 + 2)).fill(-1),
    exactKeys: new Uint32Array(0), exactRules: new Int32Array(0), hasExact: false,
    ruleFrontend: [], rulePool: [], ruleDistribution: [], ruleSymmetric: [], ruleIdleMinutes: new Uint8Array(0), rulePersist: [],
    ruleNoHealthy: [], pools: [], tableAll: [], backendNames: [], backendState: [], backendWeight: [],
    backendCounters: new Float64Array(0), ruleCounters: new Float64Array(0),
  };
  const frontendIndex = new Map<string, number>();
  frontends.forEach((f: any, i: number) => {
    const a = addressWords(f.address);
    frontendIndex.set(f.name, i);
    p.frontendFamily.push(a.family);
    p.frontendLo.set(a.words.slice(0, 2), 2 * i);
    p.frontendHi.set(a.words.slice(2, 4), 2 * i);
    const mask = p.frontendSlots.length - 1;
    let s = addressSlot(a.family, a.words[0], a.words[1], a.words[2], a.words[3], mask);
    while (p.frontendSlots[s] >= 0) s = (s + 1) & mask;
    p.frontendSlots[s] = i;
  });
  const poolIndex = new Map<string, number>();
  (config.backendPools ?? []).forEach((pm: any, i: number) => {
    poolIndex.set(pm.name, i);
    const pool = new Pool();
    pool.name = pm.name;
    pool.m = pm.maglevTableSize ?? 65537;
    const members: number[] = [];
    for (const b of pm.backends ?? []) {
      members.push(p.backendNames.length);
      p.backendNames.push(b.name);
      p.backendWeight.push(b.weight ?? 1);
      p.backendState.push(b.adminState === 'draining' ? 2 : BACKEND_UP);
    }
    const names = p.backendNames;
    members.sort((a, b) => (names[a] === names[b] ? a - b : names[a] < names[b] ? -1 : 1));
    pool.members = members;
    preparePool(pool, names);
    p.pools.push(pool);
  });
  for (const pool of p.pools) {
    const all = new Pool();
    Object.assign(all, pool);
    buildTable(all, p.backendWeight, p.backendState.map(() => 0));
    p.tableAll.push(all.table);
    buildTable(pool, p.backendWeight, p.backendState);
  }
  const rules = config.rules ?? [];
  const nr = rules.length;
  p.exactKeys = new Uint32Array(2 * nextPowerOfTwo(nr * 2 + 2));
  p.exactRules = new Int32Array(p.exactKeys.length / 2);
  p.ruleIdleMinutes = new Uint8Array(nr);
  rules.forEach((r: any, i: number) => {
    const proto = r.protocol === 'tcp' ? 6 : r.protocol === 'udp' ? 17 : RULE_PROTO_ALL;
    const fe = frontendIndex.get(r.frontend)!;
    const haPorts = proto === RULE_PROTO_ALL && (r.frontendPort ?? 0) === 0 && (r.backendPort ?? 0) === 0;
    p.ruleFrontend.push(fe);
    p.rulePool.push(poolIndex.get(r.backendPool)!);
    p.ruleDistribution.push(({ default: DIST_DEFAULT, sourceIPProtocol: DIST_SOURCE_IP_PROTOCOL, sourceIP: DIST_SOURCE_IP } as any)[r.loadDistribution ?? 'default']);
    p.ruleSymmetric.push(r.symmetric ?? haPorts);
    p.ruleIdleMinutes[i] = r.idleTimeoutMinutes ?? 4;
    p.rulePersist.push(({ defaultForProtocol: 0, never: PERSIST_NEVER, always: PERSIST_ALWAYS } as any)[r.persistOnUnhealthy ?? 'defaultForProtocol']);
    p.ruleNoHealthy.push(r.noHealthyBackends === 'failOpen' ? NO_HEALTHY_FAIL_OPEN : 0);
    if (proto === RULE_PROTO_ALL) {
      p.frontendHaRule[fe] = i;
    } else {
      const mask = p.exactRules.length - 1;
      let s = exactSlot(fe, proto, r.frontendPort, mask);
      while (p.exactKeys[2 * s] !== 0 || p.exactKeys[2 * s + 1] !== 0) s = (s + 1) & mask;
      p.exactKeys[2 * s] = fe + 1;
      p.exactKeys[2 * s + 1] = proto | (r.frontendPort << 8);
      p.exactRules[s] = i;
      p.hasExact = true;
    }
  });
  p.backendCounters = new Float64Array(p.backendNames.length * 3);
  p.ruleCounters = new Float64Array(nr * 3);
  plan = p;
  flowsAllocate(config.flowTable?.capacity ?? 65536, p.ruleIdleMinutes);
}

// ---- Packet path ---------------------------------------------------------------------------

function findFrontend(family: number, at: number): number {
  const a0 = u8[at] | (u8[at + 1] << 8) | (u8[at + 2] << 16) | (u8[at + 3] << 24);
  let w0 = a0 >>> 0, w1 = 0, w2 = 0, w3 = 0;
  if (family === 6) {
    w1 = (u8[at + 4] | (u8[at + 5] << 8) | (u8[at + 6] << 16) | (u8[at + 7] << 24)) >>> 0;
    w2 = (u8[at + 8] | (u8[at + 9] << 8) | (u8[at + 10] << 16) | (u8[at + 11] << 24)) >>> 0;
    w3 = (u8[at + 12] | (u8[at + 13] << 8) | (u8[at + 14] << 16) | (u8[at + 15] << 24)) >>> 0;
  }
  const slots = plan.frontendSlots;
  const mask = slots.length - 1;
  let s = addressSlot(family, w0, w1, w2, w3, mask);
  let f = slots[s];
  while (f >= 0) {
    if (plan.frontendLo[2 * f] === w0 && plan.frontendLo[2 * f + 1] === w1 && plan.frontendHi[2 * f] === w2
      && plan.frontendHi[2 * f + 1] === w3 && plan.frontendFamily[f] === family) return f;
    s = (s + 1) & mask;
    f = slots[s];
  }
  return NONE;
}

let matchedExact = false;
function matchRule(frontend: number, proto: number, port: number, hasPort: boolean): number {
  matchedExact = false;
  const keys = plan.exactKeys;
  if (hasPort && plan.hasExact) {
    const lo = frontend + 1;
    const hi = proto | (port << 8);
    const mask = plan.exactRules.length - 1;
    let s = exactSlot(frontend, proto, port, mask);
    for (;;) {
      const klo = keys[2 * s], khi = keys[2 * s + 1];
      if (klo === 0 && khi === 0) break;
      if (klo === lo && khi === hi) {
        matchedExact = true;
        return plan.exactRules[s];
      }
      s = (s + 1) & mask;
    }
  }
  return plan.frontendHaRule[frontend];
}

function le32(p: number): number { return (u8[p] | (u8[p + 1] << 8) | (u8[p + 2] << 16) | (u8[p + 3] << 24)) >>> 0; }

/** flowKey of assembly/hash.ts: the flow key into `w`, canonical when symmetric. */
let keySwapped = false;
function loadKey(symmetric: boolean): void {
  if (keyFamily === 4) {
    w[0] = le32(keySrc); w[1] = 0; w[2] = 0; w[3] = 0;
    w[4] = le32(keyDst); w[5] = 0; w[6] = 0; w[7] = 0;
  } else {
    w[0] = le32(keySrc); w[1] = le32(keySrc + 4); w[2] = le32(keySrc + 8); w[3] = le32(keySrc + 12);
    w[4] = le32(keyDst); w[5] = le32(keyDst + 4); w[6] = le32(keyDst + 8); w[7] = le32(keyDst + 12);
  }
  let sport = keySport;
  let dport = keyDport;
  keySwapped = false;
  if (symmetric) {
    // u64 comparisons w0 > w2 || (w0 == w2 && (w1 > w3 || (w1 == w3 && sport > dport))),
    // each u64 compared high half first.
    const c0 = cmp64(w[0], w[1], w[4], w[5]);
    const c1 = c0 === 0 ? cmp64(w[2], w[3], w[6], w[7]) : 0;
    if (c0 > 0 || (c0 === 0 && (c1 > 0 || (c1 === 0 && sport > dport)))) {
      for (let k = 0; k < 4; k++) { const t = w[k]; w[k] = w[k + 4]; w[k + 4] = t; }
      const t = sport; sport = dport; dport = t;
      keySwapped = true;
    }
  }
  w[8] = (sport | (dport << 16)) >>> 0;
  w[9] = keyProto | (keyFamily << 8);
}

function cmp64(aLo: number, aHi: number, bLo: number, bHi: number): number {
  if (aHi !== bHi) return aHi > bHi ? 1 : -1;
  return aLo === bLo ? 0 : aLo > bLo ? 1 : -1;
}

/** fragmentKey of assembly/hash.ts into `ws`: (src, dst, proto, IP ID) | FRAGMENT_MARK. */
function loadFragmentKey(): void {
  if (pktFamily === 4) {
    ws[0] = le32(pktSrc); ws[1] = 0; ws[2] = 0; ws[3] = 0;
    ws[4] = le32(pktDst); ws[5] = 0; ws[6] = 0; ws[7] = 0;
  } else {
    ws[0] = le32(pktSrc); ws[1] = le32(pktSrc + 4); ws[2] = le32(pktSrc + 8); ws[3] = le32(pktSrc + 12);
    ws[4] = le32(pktDst); ws[5] = le32(pktDst + 4); ws[6] = le32(pktDst + 8); ws[7] = le32(pktDst + 12);
  }
  ws[8] = pktFragId >>> 0;
  ws[9] = (pktProto | (pktFamily << 8) | (1 << 17)) >>> 0; // FRAGMENT_MARK = 1 << 49
}

/** distributionHash: the key in `w` reduced to the rule's mode → R (the key is left as it was). */
function distributionHash(mode: number): void {
  const lo = w[8], hi = w[9];
  if (mode === DIST_SOURCE_IP_PROTOCOL) { w[8] = 0; }
  else if (mode === DIST_SOURCE_IP) { w[8] = 0; w[9] = hi & 0xffffff00; }
  keyHash(w);
  w[8] = lo; w[9] = hi;
}

function verdict(v: number, action: number, reason: number, flags: number, rule: number, backend: number, frontend: number, hashLo: number): void {
  u8[v] = action;
  u8[v + 1] = reason;
  const h = v >>> 1;
  u16[h + 1] = flags;
  u16[h + 2] = rule;
  u16[h + 3] = backend;
  u16[h + 4] = frontend;
  u16[h + 5] = pktL3;
  u32[(v >>> 2) + 3] = hashLo;
}

function drop(v: number, reason: number, flags: number, rule: number, frontend: number): void {
  verdict(v, ACTION_DROP, reason, flags, rule, NONE, frontend, 0);
  counters[C_DROPPED]++;
  counters[C_DROP_REASON_BASE + reason]++;
}

function writeTuple(t: number): void {
  const family = pktFamily;
  u8[t + 37] = family;
  if (family === 4) {
    u8[t] = u8[pktSrc]; u8[t + 1] = u8[pktSrc + 1]; u8[t + 2] = u8[pktSrc + 2]; u8[t + 3] = u8[pktSrc + 3];
    u8[t + 16] = u8[pktDst]; u8[t + 17] = u8[pktDst + 1]; u8[t + 18] = u8[pktDst + 2]; u8[t + 19] = u8[pktDst + 3];
    const q = t >>> 2; // records are 8-byte aligned
    u32[q + 1] = 0; u32[q + 2] = 0; u32[q + 3] = 0;
    u32[q + 5] = 0; u32[q + 6] = 0; u32[q + 7] = 0;
  } else if (family === 6) {
    for (let k = 0; k < 16; k++) { u8[t + k] = u8[pktSrc + k]; u8[t + 16 + k] = u8[pktDst + k]; }
  }
  u16[(t + 32) >>> 1] = pktSport;
  u16[(t + 34) >>> 1] = pktDport;
  u8[t + 36] = family !== 0 ? pktProto : 0;
  u8[t + 38] = pktHasPorts ? 1 : 0;
}

function countObject(arr: Float64Array, index: number, bytes: number, newFlow: boolean): void {
  const p = index * 3;
  arr[p]++;
  arr[p + 1] += bytes;
  if (newFlow) arr[p + 2]++;
}

/** Whether a tracked flow on backend `b` must move (drain periods not ported: a draining backend keeps its flows). */
function mustLeave(rule: number, b: number): boolean {
  if (plan.backendState[b] !== BACKEND_DOWN) return false;
  const persist = plan.rulePersist[rule];
  if (persist === PERSIST_ALWAYS) return false;
  if (persist === PERSIST_NEVER) return true;
  return keyProto !== PROTO_TCP;
}

function isBareSyn(): boolean {
  return pktProto === PROTO_TCP && (pktTcpFlags & (TCP_SYN | TCP_ACK)) === TCP_SYN;
}

/**
 * Admission (assembly/datapath.ts establishes): whether this packet shows the
 * not-yet-established flow of entry `e` (state `s`) to be real.
 */
function establishes(e: number, s: number): boolean {
  if (pktFlags & FLAG_ICMP_ERROR) return false;
  if (s & STATE_SYN) return !isBareSyn();
  return keySwapped !== ((s & STATE_SWAPPED) !== 0) || entryAge(e) >= FLOW_ESTABLISH_AFTER_MS;
}

/** The state a new flow entry starts in (newFlowState). */
function newFlowState(): number {
  let state = keySwapped ? STATE_SWAPPED : 0;
  if (keyProto === PROTO_TCP) {
    if (isBareSyn()) state |= STATE_SYN;
    if (pktTcpFlags & (TCP_FIN | TCP_RST)) state |= STATE_CLOSING;
  }
  return state;
}

let selectedFailOpen = false;
function selectBackend(pool: number, rule: number, hashHi: number): number {
  selectedFailOpen = false;
  const p = plan.pools[pool];
  if (p.eligible > 0) return lookup(p.table, p.m, hashHi);
  if (plan.ruleNoHealthy[rule] === NO_HEALTHY_FAIL_OPEN) {
    selectedFailOpen = true;
    return lookup(plan.tableAll[pool], p.m, hashHi);
  }
  return NONE;
}

function forward(v: number, b: number, rule: number, frontend: number, flags: number, hashLo: number, len: number, newFlow: boolean): void {
  if (b === NONE) {
    drop(v, REASON_NO_HEALTHY_BACKEND, flags, rule, frontend);
    return;
  }
  countObject(plan.backendCounters, b, len, newFlow);
  countObject(plan.ruleCounters, rule, len, newFlow);
  verdict(v, ACTION_FORWARD, REASON_NONE, flags, rule, b, frontend, hashLo);
}

/** Records the backend of a first fragment for the later fragments of its datagram (never established). */
function recordFragment(rule: number, b: number): void {
  loadFragmentKey();
  keyHash(ws);
  if (flowInsert(ws, R[0], R[1], rule, b, STATE_FRAGMENT) !== 0) counters[C_FRAG_ENTRIES]++;
}

/** Packet i of the batch: both passes of the core (classify, then decide). Returns its length. */
function processPacket(i: number, ingress: number, link: number, v: number): number {
  const t = TUPLES_PTR + i * TUPLE_BYTES;
  const d = (DESCRIPTORS_PTR >>> 2) + 2 * i;
  const off = u32[d];
  const len = u32[d + 1];

  // ---- Descriptor and parse.
  if (off > RX_ARENA_BYTES || len > RX_ARENA_BYTES - off) {
    noPacket();
    writeTuple(t);
    drop(v, REASON_BAD_DESCRIPTOR, 0, NONE, NONE);
    return len;
  }
  const reason = parsePacket(ARENA_PTR + off, len, link);
  writeTuple(t);
  let flags = pktFlags;
  if (reason !== REASON_NONE) {
    drop(v, reason, flags, NONE, NONE);
    return len;
  }
  if (flags & FLAG_ICMP_ERROR) counters[C_ICMP_ERRORS]++;
  let frontend = ingress;
  if (frontend === NONE) frontend = findFrontend(keyFamily, keyDst);
  else flags |= FLAG_NEXT_HOP;
  const rule = frontend === NONE ? NONE : matchRule(frontend, keyProto, keyDport, keySport !== 0 || keyDport !== 0);

  // ---- Later fragment: follows the backend its first fragment chose.
  if (flags & FLAG_FRAG_3TUPLE) {
    loadFragmentKey();
    keyHash(ws);
    const e = flowLookup(ws, R[0], R[1]);
    if (e !== 0) {
      const r = entryRule(e);
      touchEntry(e, 0, true);
      counters[C_FRAG_HITS]++;
      // (Reply fragment entries and NAT: not ported; they need a non-floating rule.)
      forward(v, entryBackend(e), r, plan.ruleFrontend[r], flags | FLAG_FLOW_HIT, 0, len, false);
      return len;
    }
    // Its first fragment was not seen: the 3-tuple below, counted.
  }

  // ---- Rule.
  if (rule === NONE) {
    verdict(v, ACTION_NOMATCH, REASON_NO_RULE, flags, NONE, NONE, frontend, 0);
    counters[C_NOMATCH]++;
    counters[C_DROP_REASON_BASE + REASON_NO_RULE]++;
    return len;
  }
  if (matchedExact) flags |= FLAG_EXACT_RULE;

  const pool = plan.rulePool[rule];
  const mode = plan.ruleDistribution[rule];
  loadKey(plan.ruleSymmetric[rule]);
  keyHash(w);
  const fLo = R[0], fHi = R[1];

  // ---- Later fragment without its first: (src, dst, proto), untracked.
  if (flags & FLAG_FRAG_3TUPLE) {
    counters[C_FRAG_3TUPLE]++;
    distributionHash(mode === DIST_DEFAULT ? DIST_SOURCE_IP_PROTOCOL : mode);
    const hLo = R[0], hHi = R[1];
    forward(v, selectBackend(pool, rule, hHi), rule, frontend, flags, hLo, len, false);
    return len;
  }

  // ---- Flow: a tracked flow keeps its backend.
  const closing = keyProto === PROTO_TCP && (pktTcpFlags & (TCP_FIN | TCP_RST)) !== 0 ? STATE_CLOSING : 0;
  let b = NONE;
  let hLo = fLo, hHi = fHi;
  let newFlow = false;
  let e = flowFind(w, fLo, fHi);
  if (e !== 0 && entryExpired(e)) e = 0; // a new flow: its insertion reuses the entry
  if (e !== 0 && entryRule(e) === rule) {
    b = entryBackend(e);
    // A bare SYN on a closing flow, or on one whose backend is down: a new connection.
    if (isBareSyn() && ((entryState(e) & STATE_CLOSING) !== 0 || plan.backendState[b] === BACKEND_DOWN)) {
      if (mode !== DIST_DEFAULT) { distributionHash(mode); hLo = R[0]; hHi = R[1]; }
      b = selectBackend(pool, rule, hHi);
      if (selectedFailOpen) flags |= FLAG_FAIL_OPEN;
      if (b === NONE) {
        drop(v, REASON_NO_HEALTHY_BACKEND, flags, rule, frontend);
        return len;
      }
      restartEntry(e, b, newFlowState());
      flags |= FLAG_FLOW_NEW;
      newFlow = true;
      counters[C_FLOW_NEW]++;
    } else {
      flags |= FLAG_FLOW_HIT;
      counters[C_FLOW_HITS]++;
    }
    if (!newFlow && mustLeave(rule, b)) {
      counters[C_FLOW_MOVED]++;
      if (mode !== DIST_DEFAULT) { distributionHash(mode); hLo = R[0]; hHi = R[1]; }
      b = selectBackend(pool, rule, hHi);
      if (b === NONE) {
        drop(v, REASON_NO_HEALTHY_BACKEND, flags, rule, frontend);
        return len;
      }
      setEntryBackend(e, b);
    }
    if (!newFlow) {
      // Admission: established → refreshed; otherwise established when this packet
      // proves the flow real, else it keeps the time of its first packet.
      const s = entryState(e);
      if (s & STATE_ESTABLISHED) {
        touchFlow(e, closing);
      } else if (establishes(e, s)) {
        touchFlow(e, closing | STATE_ESTABLISHED);
        counters[C_FLOW_ESTABLISHED]++;
      } else {
        touchEntry(e, closing, false);
      }
    }
    if (entryState(e) & STATE_ESTABLISHED) flags |= FLAG_ESTABLISHED;
  } else {
    // ---- Pick: Maglev over the pool's healthy backends.
    if (mode !== DIST_DEFAULT) { distributionHash(mode); hLo = R[0]; hHi = R[1]; }
    b = selectBackend(pool, rule, hHi);
    if (selectedFailOpen) flags |= FLAG_FAIL_OPEN;
    if (b === NONE) {
      drop(v, REASON_NO_HEALTHY_BACKEND, flags, rule, frontend);
      return len;
    }
    // ---- Track the new flow; untracked, it still gets its consistent-hash backend.
    if (flowInsert(w, fLo, fHi, rule, b, newFlowState()) === 0) {
      flags |= FLAG_UNTRACKED;
      counters[C_UNTRACKED]++;
    } else {
      flags |= FLAG_FLOW_NEW;
      newFlow = true;
      counters[C_FLOW_NEW]++;
      if (insertEvicted) {
        flags |= FLAG_EVICTED;
        counters[C_EVICTIONS]++;
      }
    }
  }

  // ---- First fragments are recorded so that later ones follow.
  if (flags & FLAG_FRAGMENT) recordFragment(rule, b);
  forward(v, b, rule, frontend, flags, hLo, len, newFlow);
  return len;
}

/** processBatch of the core's ABI: descriptors [0, n) at time `now`. */
export function processBatch(n: number, now: number, ingress: number, link: number): number {
  if (n < 0 || n > MAX_BATCH) return -1;
  if (link !== LINK_RAW_IP && link !== LINK_ETHERNET) return -1;
  if (ingress !== NONE && (ingress < 0 || ingress >= plan.frontendFamily.length)) return -1;
  flowsClock(now);
  let forwarded = 0;
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const v = VERDICTS_PTR + i * VERDICT_BYTES;
    bytes += processPacket(i, ingress, link, v);
    if (u8[v] === ACTION_FORWARD) forwarded++;
  }
  counters[C_PACKETS] += n;
  counters[C_BYTES] += bytes;
  counters[C_FORWARDED] += forwarded;
  counters[C_FLOW_MOVES] = flowMoves;
  counters[C_BATCHES]++;
  return forwarded;
}

export function getMemory(): ArrayBuffer { return memory; }
export function getCounters(): Float64Array { return counters; }
export function maglevTable(pool: number): Uint16Array { return plan.pools[pool].table; }
export { flowUsed as flowTableUsed, flowCapacity as flowTableCapacity } from './flows';
