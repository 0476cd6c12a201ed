// The packet pipeline, top to bottom:
//
//   descriptor → parse → later fragment → reply → rule → flow → pick → track → rewrite → verdict
//
// Each stage returns early with a verdict. No allocation: packets are read and rewritten
// in place in the rx arena, results are written into the verdict and tuple records.
//
// A batch runs in groups of PASS_GROUP packets, each group in three passes, so that
// the flow-table memory of many packets is fetched at once instead of one packet after
// another (the bulk lookup of DPDK's rte_hash; wasm has no prefetch instruction, but
// independent loads in a tight loop are issued together by an out-of-order core):
//
//   1. classify: descriptor, parse, rule, the key of the packet's first flow-table
//      lookup and its keyed hash (into the packet's record);
//   2. load each key's first bucket header line, in a loop of nothing else, so that the
//      misses of the whole group are in flight at once;
//   3. compare tags in those lines and load each matching entry (or, without a match,
//      the second bucket's header line);
//   4. decide: the stages below, whose flow-table accesses now hit the cache.
//
// Passes 1 to 3 change nothing but the packet records, so the verdicts are those of
// running the stages packet by packet.

import {
  ACTION_DROP, ACTION_FORWARD, ACTION_NOMATCH, ACTION_RESET, BACKEND_DOWN, BACKEND_DRAINING, CHECKSUM_OFF,
  FLAG_CHECKSUM_WRONG,
  DIST_DEFAULT, DIST_SOURCE_IP_PROTOCOL, FLAG_ESTABLISHED, FLAG_EVICTED, FLAG_EXACT_RULE,
  BACKEND_UP, FLAG_FAIL_OPEN, FLAG_FLOW_HIT, FLAG_FLOW_NEW, FLAG_FRAG_3TUPLE, FLAG_FRAGMENT, FLAG_ICMP_ERROR,
  FLAG_NEXT_HOP, FLAG_REPLY, FLAG_REWRITTEN, FLAG_UNTRACKED, FLOW_ESTABLISH_AFTER_MS,
  NO_HEALTHY_FAIL_OPEN, NONE, PASS_GROUP, PERSIST_ALWAYS, PERSIST_NEVER, PROTO_TCP,
  REASON_BAD_DESCRIPTOR, REASON_IDLE_RESET, REASON_NO_HEALTHY_BACKEND, REASON_NO_RULE,
  REASON_NONE, RX_ARENA_BYTES,
} from "./consts";
import {
  C_BATCHES, C_BYTES, C_CHECKSUM_PARTIAL, C_CHECKSUM_WRONG, C_DROP_REASON_BASE, C_DROPPED, C_EVICTIONS, C_FLOW_DRAINED,
  C_FLOW_ESTABLISHED, C_FLOW_HITS, C_FLOW_MOVED, C_FLOW_NEW, C_FORWARDED, C_FRAG_3TUPLE,
  C_FRAG_ENTRIES, C_FRAG_HITS, C_ICMP_ERRORS, C_NAT_FORWARD, C_NAT_REPLY, C_NOMATCH, C_PACKETS,
  C_HANDOVER, C_RESETS, C_UNTRACKED, count, DESCRIPTOR_BYTES, descriptors, packets, PB_BYTES, PB_NEW_FLOWS,
  PB_PACKETS, PER_OBJECT_COUNTERS, RESET_BYTES, resets, rxArena, T_DPORT, T_DST, T_FAMILY,
  T_HAS_PORTS, T_PROTO, T_SPORT, T_SRC, TUPLE_BYTES, tuples, V_ACTION, V_BACKEND, V_FLAGS,
  V_FRONTEND, V_HASH, V_L3, V_REASON, V_RULE, VERDICT_BYTES, verdicts,
} from "./layout";
import { clearPacket, Packet, PACKET_BYTES, parsePacket, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from "./packet";
import { distributionHash, flowKey, fragmentKey, keyHash, keyHashInline, ownReplyKey, replyKey } from "./hash";
import { findFrontend, findNatBackend, isFrontendAddress, MATCH_EXACT, matchRule, Plan } from "./rules";
import { lookup, Pool } from "./maglev";
import {
  entryAge, entryBackend, entryExpired, entryIdleExpired, entryRule, entryState, flowFind, flowFindInline,
  flowInsert, flowInsertNew, flowLookup, flowsClock, INSERT_EVICTED, insertedEntry, linkEntries, prefetchBucket, prefetchEntry,
  removeFlow, restartEntry, setEntryBackend, tick, STATE_CLOSING, STATE_ESTABLISHED, STATE_FRAGMENT, STATE_REPLY, STATE_SWAPPED, STATE_SYN, touchEntry, touchFlow,
} from "./flows";
import { natForward, natReverse } from "./nat";
import { writeResets } from "./reset";
import { checkTransport } from "./checksum";

// What a Packet record's key (w0..w4) and hash hold.
const KEY_NONE: u8 = 0;
const KEY_FLOW: u8 = 1;     // the flow key of the packet's rule (symmetric or not)
const KEY_REPLY: u8 = 2;    // the packet's own key marked as a backend's reply
const KEY_FRAGMENT: u8 = 3; // the later fragment's (src, dst, proto, IP ID)

/** A key for the entries a packet adds besides its own (reply and fragment entries). */
const scratchKey = memory.data(48, 16);

/** How TCP/UDP checksums are treated (CHECKSUM_*): a host's setting (setChecksumPolicy). */
let checksumPolicy: i32 = CHECKSUM_OFF;
export function setChecksumPolicy(policy: i32): void { checksumPolicy = policy; }

/** Loads of passes 1 and 2 end here, so that no optimizer drops them. */
let touched: u64 = 0;

@inline function recordAt(j: i32): Packet {
  return changetype<Packet>(packets + <usize>(j * PACKET_BYTES));
}

/**
 * Processes descriptors [0, n) of the current batch at time `now` (milliseconds).
 * `ingress` is the frontend the batch arrived on (next-hop use), or NONE to match
 * frontends by destination address. `link` is LINK_RAW_IP or LINK_ETHERNET.
 * Returns the number of forward verdicts.
 */
export function processBatch(plan: Plan, n: i32, now: f64, ingress: i32, link: i32): i32 {
  if (plan.drainPending) stampDrains(plan, now);
  flowsClock(now);
  if (plan.handoverPending) stampHandovers(plan);
  let forwarded = 0;
  let bytes: u64 = 0;
  let sink: u64 = 0;
  for (let start = 0; start < n; start += PASS_GROUP) {
    const end = min(n, start + PASS_GROUP);
    for (let i = start; i < end; i++) bytes += <u64>classify(plan, i, recordAt(i - start), ingress, link);
    // Tight loops of independent loads: the header lines, then the entries, of the group.
    for (let i = start; i < end; i++) {
      const pk = recordAt(i - start);
      if (pk.keyKind != KEY_NONE) sink ^= prefetchBucket(pk.hash);
    }
    for (let i = start; i < end; i++) {
      const pk = recordAt(i - start);
      if (pk.keyKind != KEY_NONE) sink ^= prefetchEntry(pk.hash);
    }
    for (let i = start; i < end; i++) {
      const v = verdicts + <usize>(i * VERDICT_BYTES);
      processPacket(plan, i, recordAt(i - start), now, ingress != NONE, link, v);
      if (load<u8>(v) == ACTION_FORWARD) forwarded++;
    }
  }
  touched = sink;
  count(C_PACKETS, <u64>n);
  count(C_BYTES, bytes);
  count(C_FORWARDED, <u64>forwarded);
  count(C_BATCHES);
  return forwarded;
}

/** Drains begun since the last batch start now (their period is measured from here). */
function stampDrains(plan: Plan, now: f64): void {
  for (let b = 0; b < plan.backendDrainSince.length; b++) {
    if (plan.backendAdmin[b] == BACKEND_DRAINING && plan.backendDrainSince[b] < 0) plan.backendDrainSince[b] = now;
  }
  plan.drainPending = false;
}

/** Backend-set changes since the last batch start their handover windows now. */
function stampHandovers(plan: Plan): void {
  for (let p = 0; p < plan.pools.length; p++) {
    const pool = unchecked(plan.pools[p]);
    if (!pool.changePending) continue;
    pool.changedTick = tick;
    pool.changePending = false;
  }
  plan.handoverPending = false;
}

// ---- Pass 1: classify -------------------------------------------------------------------

/**
 * Parses packet `i` into `pk`, finds its frontend and rule, builds the key of its first
 * flow-table lookup (a later fragment's, a backend reply's, or its flow's) and hashes it.
 * Returns the packet's length as the host gave it.
 */
function classify(plan: Plan, i: i32, pk: Packet, ingress: i32, link: i32): u32 {
  pk.keyKind = KEY_NONE;
  pk.frontend = NONE;
  pk.rule = NONE;
  pk.exact = false;
  const d = descriptors + <usize>(i * DESCRIPTOR_BYTES);
  const off = load<u32>(d);
  const len = load<u32>(d, 4);
  // The host's offset and length must lie inside the arena.
  if (off > <u32>RX_ARENA_BYTES || len > <u32>RX_ARENA_BYTES - off) {
    clearPacket(pk, len);
    pk.reason = REASON_BAD_DESCRIPTOR;
    return len;
  }
  if (parsePacket(pk, rxArena + <usize>off, <i32>len, link) != REASON_NONE) return len;
  if (checksumPolicy != CHECKSUM_OFF) {
    // Before anything rewrites the packet: NAT's incremental update needs a whole checksum.
    const found = checkTransport(pk, checksumPolicy);
    if (found != 0) {
      pk.flags |= found;
      count(found == FLAG_CHECKSUM_WRONG ? C_CHECKSUM_WRONG : C_CHECKSUM_PARTIAL);
    }
  }

  const frontend = ingress != NONE ? ingress : findFrontend(plan, pk.keyFamily, pk.keyDst);
  const match = frontend == NONE ? NONE
    : matchRule(plan, frontend, pk.keyProto, pk.keyDport, pk.keySport != 0 || pk.keyDport != 0);
  const rule = match & 0xffff;
  pk.frontend = frontend;
  pk.rule = rule;
  pk.exact = (match & MATCH_EXACT) != 0;

  if (pk.flags & FLAG_FRAG_3TUPLE) {
    fragmentKey(pk, changetype<usize>(pk));
    pk.keyKind = KEY_FRAGMENT;
  } else if (plan.natBackendSlots.length > 0 && findNatBackend(plan, pk.family, pk.src) != NONE) {
    ownReplyKey(pk, changetype<usize>(pk));
    pk.keyKind = KEY_REPLY;
  } else if (rule != NONE) {
    flowKey(pk, unchecked(plan.ruleSymmetric[rule]));
    pk.keyKind = KEY_FLOW;
  } else {
    return len;
  }
  pk.hash = keyHashInline(changetype<usize>(pk), plan.hashK0, plan.hashK1);
  return len;
}

/** Puts the flow key of `rule` (and its hash) into the packet's record, unless there. */
function useFlowKey(plan: Plan, pk: Packet, rule: i32): u64 {
  if (pk.keyKind != KEY_FLOW) {
    flowKey(pk, unchecked(plan.ruleSymmetric[rule]));
    pk.hash = keyHash(changetype<usize>(pk), plan.hashK0, plan.hashK1);
    pk.keyKind = KEY_FLOW;
  }
  return pk.hash;
}

// ---- Verdicts ----------------------------------------------------------------------------

/** Writes a verdict record (layout.ts) as two 64-bit stores. */
@inline function verdict(
  v: usize, action: u8, reason: u8, flags: u16, rule: i32, backend: i32, frontend: i32, l3: i32, hash: u64,
): void {
  store<u64>(v, <u64>action | (<u64>reason << (V_REASON << 3)) | (<u64>flags << (V_FLAGS << 3))
    | (<u64>(<u16>rule) << (V_RULE << 3)) | (<u64>(<u16>backend) << (V_BACKEND << 3)));
  store<u64>(v + V_FRONTEND, <u64>(<u16>frontend) | (<u64>(<u16>l3) << ((V_L3 - V_FRONTEND) << 3))
    | ((hash >> 32) << ((V_HASH - V_FRONTEND) << 3)));
}

function drop(v: usize, pk: Packet, reason: u8, flags: u16, rule: i32, frontend: i32): void {
  verdict(v, ACTION_DROP, reason, flags, rule, NONE, frontend, pk.l3, 0);
  count(C_DROPPED);
  count(C_DROP_REASON_BASE + <i32>reason);
}

function writeTuple(t: usize, pk: Packet): void {
  const family = pk.family;
  if (family == 4) {
    store<u64>(t + T_SRC, <u64>load<u32>(pk.src));
    store<u64>(t + T_SRC + 8, 0);
    store<u64>(t + T_DST, <u64>load<u32>(pk.dst));
    store<u64>(t + T_DST + 8, 0);
  } else if (family == 6) {
    store<u64>(t + T_SRC, load<u64>(pk.src));
    store<u64>(t + T_SRC + 8, load<u64>(pk.src, 8));
    store<u64>(t + T_DST, load<u64>(pk.dst));
    store<u64>(t + T_DST + 8, load<u64>(pk.dst, 8));
  }
  // Ports, protocol, family and hasPorts in one store (the record's byte 39 stays 0).
  const proto = family != 0 ? pk.proto : 0;
  store<u64>(t + T_SPORT, <u64>pk.sport | (<u64>pk.dport << ((T_DPORT - T_SPORT) << 3))
    | (<u64>proto << ((T_PROTO - T_SPORT) << 3)) | (<u64>family << ((T_FAMILY - T_SPORT) << 3))
    | (<u64>pk.hasPorts << ((T_HAS_PORTS - T_SPORT) << 3)));
}

@inline function countObject(arr: StaticArray<u64>, index: i32, bytes: u64, newFlow: bool): void {
  const p = changetype<usize>(arr) + (<usize>(index * PER_OBJECT_COUNTERS) << 3);
  store<u64>(p, load<u64>(p) + 1, PB_PACKETS << 3);
  store<u64>(p, load<u64>(p, PB_BYTES << 3) + bytes, PB_BYTES << 3);
  if (newFlow) store<u64>(p, load<u64>(p, PB_NEW_FLOWS << 3) + 1, PB_NEW_FLOWS << 3);
}

// ---- Policies ----------------------------------------------------------------------------

/** Whether a tracked flow on backend `b` must move to another backend. */
@inline function mustLeave(plan: Plan, pk: Packet, pool: Pool, rule: i32, b: i32, now: f64): bool {
  const state = unchecked(plan.backendState[b]);
  if (state == BACKEND_DRAINING) {
    // Draining keeps its flows until they end, or until the pool's drain period passes.
    return pool.drainMs > 0 && now - unchecked(plan.backendDrainSince[b]) > pool.drainMs;
  }
  if (state != BACKEND_DOWN) return false;
  const persist = unchecked(plan.rulePersist[rule]);
  if (persist == PERSIST_ALWAYS) return false;
  if (persist == PERSIST_NEVER) return true;
  return pk.keyProto != PROTO_TCP; // defaultForProtocol: TCP stays, others move
}

/**
 * Admission (flows.ts): whether this packet shows the not-yet-established flow of entry
 * `e` (state `s`) to be real. A TCP flow opened by a bare SYN: any later packet but a
 * bare SYN. Others: a packet from the other direction, or one FLOW_ESTABLISH_AFTER_MS
 * after the first. ICMP errors prove nothing (anyone can send one).
 */
@inline function establishes(pk: Packet, e: u32, s: u8): bool {
  if (pk.flags & FLAG_ICMP_ERROR) return false;
  if (s & STATE_SYN) return !isBareSyn(pk);
  return pk.swapped != ((s & STATE_SWAPPED) != 0) || entryAge(e) >= FLOW_ESTABLISH_AFTER_MS;
}

@inline function isBareSyn(pk: Packet): bool {
  return pk.proto == PROTO_TCP && (pk.tcpFlags & (TCP_SYN | TCP_ACK)) == TCP_SYN;
}

/**
 * Admission of a packet of a kept flow (entry `e`): an established flow is refreshed;
 * one not yet established becomes established when this packet proves it real, and
 * otherwise keeps the time of its first packet. Returns FLAG_ESTABLISHED when the flow
 * is (now) established.
 */
@inline function admit(pk: Packet, e: u32, closing: u8): u16 {
  const s = entryState(e);
  if (s & STATE_ESTABLISHED) {
    touchFlow(e, closing);
  } else if (establishes(pk, e, s)) {
    touchFlow(e, closing | STATE_ESTABLISHED);
    count(C_FLOW_ESTABLISHED);
  } else {
    touchEntry(e, closing, false);
    return 0;
  }
  return FLAG_ESTABLISHED;
}

/** The state a new flow entry starts in (admission, flows.ts). */
@inline function newFlowState(pk: Packet): u8 {
  let state: u8 = pk.swapped ? STATE_SWAPPED : 0;
  if (pk.keyProto == PROTO_TCP) {
    if (isBareSyn(pk)) state |= STATE_SYN;
    if (pk.tcpFlags & (TCP_FIN | TCP_RST)) state |= STATE_CLOSING;
  }
  return state;
}

/** The destination port a flow of `rule` has at the backend (the rule's mapping, or its own). */
@inline function backendPortOf(plan: Plan, pk: Packet, rule: i32): u16 {
  const bport = unchecked(plan.ruleBackendPort[rule]);
  return bport != 0 ? bport : pk.keyDport;
}

/** Whether packets of `rule` to `frontend` are translated: a non-floating rule, and the
 *  packet (and for ICMP errors the quoted header) addressed to the frontend itself. */
@inline function translates(plan: Plan, pk: Packet, rule: i32, frontend: i32): bool {
  return !unchecked(plan.ruleFloating[rule])
    && isFrontendAddress(plan, frontend, pk.family, pk.dst)
    && isFrontendAddress(plan, frontend, pk.keyFamily, pk.keyDst);
}

/** Forward NAT of `pk` towards backend `b` (port: 0 = keep). */
@inline function toBackend(plan: Plan, pk: Packet, b: i32, port: u32): void {
  natForward(pk, unchecked(plan.backendLo[b]), unchecked(plan.backendHi[b]), port);
}

/** Reverse NAT of `pk` back to frontend `fe` (port: 0 = keep). */
@inline function toFrontend(plan: Plan, pk: Packet, fe: i32, port: u32): void {
  natReverse(pk, unchecked(plan.frontendLo[fe]), unchecked(plan.frontendHi[fe]), port);
}

/** The port to write when translating `rule`'s packets: 0 when the rule maps no port. */
@inline function mappedPort(plan: Plan, rule: i32, towardsBackend: bool): u32 {
  const fport = unchecked(plan.ruleFrontendPort[rule]);
  const bport = unchecked(plan.ruleBackendPort[rule]);
  if (fport == bport) return 0;
  return towardsBackend ? <u32>bport : <u32>fport;
}

/** Whether a packet that finds its TCP flow's entry `e` idle-expired gets RSTs instead. */
@inline function resetsOnIdle(plan: Plan, pk: Packet, e: u32): bool {
  return pk.proto == PROTO_TCP && pk.keyProto == PROTO_TCP && !isBareSyn(pk)
    && unchecked(plan.ruleTcpReset[entryRule(e)]) && entryIdleExpired(e);
}

// ---- Pass 3: decide ------------------------------------------------------------------------

function processPacket(plan: Plan, i: i32, pk: Packet, now: f64, nextHop: bool, link: i32, v: usize): void {
  writeTuple(tuples + <usize>(i * TUPLE_BYTES), pk);
  let flags = pk.flags;

  // ---- Descriptor and parse (pass 1).
  if (pk.reason != REASON_NONE) {
    drop(v, pk, pk.reason, pk.reason == REASON_BAD_DESCRIPTOR ? 0 : flags, NONE, NONE);
    return;
  }
  if (flags & FLAG_ICMP_ERROR) count(C_ICMP_ERRORS);
  if (nextHop) flags |= FLAG_NEXT_HOP;
  const k0 = plan.hashK0;
  const k1 = plan.hashK1;

  // ---- Later fragment: follows the backend its first fragment chose.
  if (pk.keyKind == KEY_FRAGMENT) {
    const e = flowLookup(changetype<usize>(pk), pk.hash);
    if (e != 0) {
      const rule = entryRule(e);
      const b = entryBackend(e);
      const frontend = unchecked(plan.ruleFrontend[rule]);
      touchEntry(e, 0, true);
      count(C_FRAG_HITS);
      if (entryState(e) & STATE_REPLY) {
        toFrontend(plan, pk, frontend, 0);
        flags |= FLAG_REPLY | FLAG_REWRITTEN;
      } else if (translates(plan, pk, rule, frontend)) {
        toBackend(plan, pk, b, 0);
        flags |= FLAG_REWRITTEN;
      }
      forward(plan, pk, v, b, rule, frontend, flags | FLAG_FLOW_HIT, 0, false);
      return;
    }
    // Its first fragment was not seen: the 3-tuple below, counted.
  }

  // ---- Reply: a backend's packet of a translated flow goes back as the frontend.
  if (pk.keyKind == KEY_REPLY) {
    const e = flowFind(changetype<usize>(pk), pk.hash);
    if (e != 0 && !entryExpired(e)) {
      const rule = entryRule(e);
      const b = entryBackend(e);
      const fe = unchecked(plan.ruleFrontend[rule]);
      // The backend answered: established; its FIN or RST closes the flow too.
      let seen = STATE_ESTABLISHED;
      if (pk.proto == PROTO_TCP && (pk.tcpFlags & (TCP_FIN | TCP_RST)) != 0) seen |= STATE_CLOSING;
      if ((entryState(e) & STATE_ESTABLISHED) == 0) count(C_FLOW_ESTABLISHED);
      touchFlow(e, seen);
      // Record a first fragment before the rewrite: later fragments still carry the backend's address.
      if (flags & FLAG_FRAGMENT) recordFragment(plan, pk, rule, b, STATE_REPLY);
      toFrontend(plan, pk, fe, mappedPort(plan, rule, false));
      count(C_NAT_REPLY);
      forward(plan, pk, v, b, rule, fe, flags | FLAG_REPLY | FLAG_REWRITTEN | FLAG_FLOW_HIT | FLAG_ESTABLISHED, 0, false);
      return;
    }
    if (e != 0 && resetsOnIdle(plan, pk, e)) {
      // The backend speaks on a connection idle past its timeout: RSTs to both ends,
      // the client's translated back from the frontend.
      const rule = entryRule(e);
      const fe = unchecked(plan.ruleFrontend[rule]);
      const rst = writeResets(pk, resets + <usize>(i * RESET_BYTES));
      toFrontend(plan, rst, fe, mappedPort(plan, rule, false));
      reset(v, pk, e, rule, fe, flags | FLAG_REPLY);
      return;
    }
  }

  // ---- Rule: the ingress frontend (next hop) or the frontend addressed (pass 1).
  const frontend = pk.frontend;
  const rule = pk.rule;
  if (rule == NONE) {
    verdict(v, ACTION_NOMATCH, REASON_NO_RULE, flags, NONE, NONE, frontend, pk.l3, 0);
    count(C_NOMATCH);
    count(C_DROP_REASON_BASE + <i32>REASON_NO_RULE);
    return;
  }
  if (pk.exact) flags |= FLAG_EXACT_RULE;

  const pool = unchecked(plan.pools[unchecked(plan.rulePool[rule])]);
  const mode = unchecked(plan.ruleDistribution[rule]);
  const nat = translates(plan, pk, rule, frontend);
  const flowHash = useFlowKey(plan, pk, rule);
  const key = changetype<usize>(pk);

  // ---- Later fragment without its first: (src, dst, proto), untracked.
  if (flags & FLAG_FRAG_3TUPLE) {
    count(C_FRAG_3TUPLE);
    const h = distributionHash(key, k0, k1, mode == DIST_DEFAULT ? DIST_SOURCE_IP_PROTOCOL : mode);
    const picked = pick(plan, pool, rule, h);
    const b = <i32>(picked & 0xffff);
    flags |= <u16>(picked >>> 16);
    if (b != NONE && nat) {
      toBackend(plan, pk, b, 0);
      flags |= FLAG_REWRITTEN;
    }
    forward(plan, pk, v, b, rule, frontend, flags, h, false);
    return;
  }

  // ---- Flow: a tracked flow keeps its backend, unless it must be picked afresh.
  const closing: u8 = pk.keyProto == PROTO_TCP && (pk.tcpFlags & (TCP_FIN | TCP_RST)) != 0 ? STATE_CLOSING : 0;
  let e = flowFindInline(key, flowHash);
  const absent = e == 0; // then the insertion below need not search the buckets again
  if (e != 0 && entryExpired(e)) {
    if (resetsOnIdle(plan, pk, e)) {
      // Idle past its timeout on an enableTcpReset rule: RSTs to both ends instead.
      const rst = writeResets(pk, resets + <usize>(i * RESET_BYTES));
      if (nat) toBackend(plan, rst, entryBackend(e), mappedPort(plan, rule, true));
      reset(v, pk, e, rule, frontend, flags);
      return;
    }
    e = 0; // a new flow: its insertion reuses the entry
  }
  const hit = e != 0 && entryRule(e) == rule;
  let b = NONE;
  let h = flowHash;
  let restart = false;
  let move = false;
  let kept = false;
  if (hit) {
    b = entryBackend(e);
    // A bare SYN on a closing flow, or on one whose backend is down, opens a new
    // connection on a reused 5-tuple: it is picked afresh (as IPVS does), not kept.
    restart = isBareSyn(pk)
      && ((entryState(e) & STATE_CLOSING) != 0 || unchecked(plan.backendState[b]) == BACKEND_DOWN);
    if (!restart) {
      flags |= FLAG_FLOW_HIT;
      count(C_FLOW_HITS);
      // A kept flow whose backend is down (and the rule's persistence says move), or
      // drained past its period, moves: re-picked, its entry pointing at the new backend.
      move = mustLeave(plan, pk, pool, rule, b, now);
      if (move) {
        count(unchecked(plan.backendState[b]) == BACKEND_DRAINING ? C_FLOW_DRAINED : C_FLOW_MOVED);
      } else {
        flags |= admit(pk, e, closing);
        kept = true;
      }
    }
  }
  let newFlow = false;
  if (!kept) {
    // ---- Pick: Maglev over the pool's healthy backends (or all of them, failOpen).
    if (mode != DIST_DEFAULT) h = distributionHash(key, k0, k1, mode);
    const picked = pick(plan, pool, rule, h);
    b = <i32>(picked & 0xffff);
    flags |= <u16>(picked >>> 16);
    if (b == NONE) {
      drop(v, pk, REASON_NO_HEALTHY_BACKEND, flags, rule, frontend);
      return;
    }
    // ---- Handover: a mid-stream TCP packet of a flow this instance does not track, soon
    // after the pool's backend set changed, most likely belongs to a connection that began
    // before the change (on another instance of a fleet, or before a restart): it keeps the
    // backend the previous table gives it, as a tracked flow on that backend would — while
    // it is up, and while it is down or draining if the rule keeps flows there
    // (persistOnUnhealthy, drainPeriodSeconds) (docs/design.md, Handover).
    if (!hit && pool.previousValid && pk.proto == PROTO_TCP && (pk.tcpFlags & TCP_SYN) == 0
      && tick - pool.changedTick < pool.handoverMs && (flags & FLAG_FAIL_OPEN) == 0) {
      const prev = lookup(pool.spare, pool.m, h);
      if (prev != b && prev != NONE && !mustLeave(plan, pk, pool, rule, prev, now)) {
        b = prev;
        count(C_HANDOVER);
      }
    }
    // ---- Track: a new flow gets an entry (when the table cannot hold it, it still gets
    // its consistent-hash backend); a restarted one starts its entry over; a moved one
    // points it at the new backend.
    if (!hit) {
      const r = absent ? flowInsertNew(key, flowHash, rule, b, newFlowState(pk)) : flowInsert(key, flowHash, rule, b, newFlowState(pk));
      if (r == 0) {
        flags |= FLAG_UNTRACKED;
        count(C_UNTRACKED);
      } else {
        flags |= FLAG_FLOW_NEW;
        newFlow = true;
        count(C_FLOW_NEW);
        if (r & INSERT_EVICTED) {
          flags |= FLAG_EVICTED;
          count(C_EVICTIONS);
        }
      }
      if (nat && (flags & FLAG_ICMP_ERROR) == 0) insertReply(plan, pk, rule, b, 0, insertedEntry(r));
    } else if (restart) {
      restartEntry(e, b, newFlowState(pk));
      flags |= FLAG_FLOW_NEW;
      newFlow = true;
      count(C_FLOW_NEW);
      if (nat) insertReply(plan, pk, rule, b, 0, e);
    } else {
      setEntryBackend(e, b);
      if (nat) insertReply(plan, pk, rule, b, entryState(e) & STATE_ESTABLISHED, e);
      flags |= admit(pk, e, closing);
    }
  }

  // ---- Rewrite: destination NAT for non-floating rules; first fragments are recorded
  // so that later ones follow.
  if (flags & FLAG_FRAGMENT) recordFragment(plan, pk, rule, b, 0);
  if (nat) {
    toBackend(plan, pk, b, mappedPort(plan, rule, true));
    flags |= FLAG_REWRITTEN;
    count(C_NAT_FORWARD);
  }
  forward(plan, pk, v, b, rule, frontend, flags, h, newFlow);
}

/**
 * Tracks the reply direction of a translated flow: backend:port → client:port, linked
 * to the flow's entry (`flow`, 0 when untracked) so that the two age as one. It is
 * established when its flow is (so a flood of half-open flows cannot pin reply entries),
 * and becomes so at the backend's first reply.
 */
function insertReply(plan: Plan, pk: Packet, rule: i32, b: i32, state: u8, flow: u32): void {
  replyKey(pk, scratchKey, unchecked(plan.backendLo[b]), unchecked(plan.backendHi[b]), backendPortOf(plan, pk, rule));
  const reply = insertedEntry(flowInsert(scratchKey, keyHash(scratchKey, plan.hashK0, plan.hashK1), rule, b, STATE_REPLY | state));
  if (reply != 0 && flow != 0) linkEntries(flow, reply);
}

/** Records the backend of a first fragment for the later fragments of its datagram.
 *  Fragment entries are never established: a flood of first fragments evicts no flow. */
function recordFragment(plan: Plan, pk: Packet, rule: i32, b: i32, extra: u8): void {
  fragmentKey(pk, scratchKey);
  if (flowInsert(scratchKey, keyHash(scratchKey, plan.hashK0, plan.hashK1), rule, b, STATE_FRAGMENT | extra) != 0) {
    count(C_FRAG_ENTRIES);
  }
}

/**
 * The backend for hash `h` in the rule's pool: Maglev over its healthy backends, or,
 * with none and the rule's noHealthyBackends "failOpen", over all of them. Returns the
 * backend (NONE: none) in the low 16 bits and the verdict flags the pick adds
 * (FLAG_FAIL_OPEN) in the high 16, so that every path that picks reports fail-open.
 */
function pick(plan: Plan, pool: Pool, rule: i32, h: u64): u32 {
  if (pool.eligible > 0) return <u32>lookup(pool.table, pool.m, h);
  if (unchecked(plan.ruleNoHealthy[rule]) == NO_HEALTHY_FAIL_OPEN) {
    return <u32>lookup(pool.tableAll, pool.m, h) | (<u32>FLAG_FAIL_OPEN << 16);
  }
  return <u32>NONE;
}

/** Writes the forward verdict for backend `b`, or a drop when there is none. */
function forward(
  plan: Plan, pk: Packet, v: usize, b: i32, rule: i32, frontend: i32, flags: u16, h: u64, newFlow: bool,
): void {
  if (b == NONE) {
    drop(v, pk, REASON_NO_HEALTHY_BACKEND, flags, rule, frontend);
    return;
  }
  const len = <u64>pk.len;
  countObject(plan.backendCounters, b, len, newFlow);
  countObject(plan.ruleCounters, rule, len, newFlow);
  verdict(v, ACTION_FORWARD, REASON_NONE, flags, rule, b, frontend, pk.l3, h);
}

/**
 * Writes the reset verdict for the packet whose flow entry `e` was idle past its
 * timeout (its RSTs are in the reset record); the flow, and its reply entry, end here.
 */
function reset(v: usize, pk: Packet, e: u32, rule: i32, frontend: i32, flags: u16): void {
  const b = entryBackend(e);
  verdict(v, ACTION_RESET, REASON_IDLE_RESET, flags, rule, b, frontend, pk.l3, 0);
  removeFlow(e);
  count(C_RESETS);
  count(C_DROPPED);
  count(C_DROP_REASON_BASE + <i32>REASON_IDLE_RESET);
}
