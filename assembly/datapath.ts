// The packet pipeline, top to bottom:
//
//   descriptor → parse → later fragment → reply → rule → flow → pick → track → rewrite → verdict
//
// Each stage returns early with a verdict. No allocation: packets are read and rewritten
// in place in the rx arena, results are written into the verdict and tuple records.

import {
  ACTION_DROP, ACTION_FORWARD, ACTION_NOMATCH, BACKEND_DOWN, BACKEND_DRAINING, DIST_DEFAULT,
  DIST_SOURCE_IP_PROTOCOL, FLAG_EVICTED, FLAG_EXACT_RULE, FLAG_FAIL_OPEN, FLAG_FLOW_HIT,
  FLAG_FLOW_NEW, FLAG_FRAG_3TUPLE, FLAG_FRAGMENT, FLAG_ICMP_ERROR, FLAG_NEXT_HOP, FLAG_REPLY,
  FLAG_REWRITTEN, FLAG_UNTRACKED, NO_HEALTHY_FAIL_OPEN, NONE, PERSIST_ALWAYS, PERSIST_NEVER,
  PROTO_TCP, REASON_BAD_DESCRIPTOR, REASON_NO_HEALTHY_BACKEND, REASON_NO_RULE, REASON_NONE,
  RX_ARENA_BYTES,
} from "./consts";
import {
  C_BATCHES, C_BYTES, C_DROP_REASON_BASE, C_DROPPED, C_EVICTIONS, C_FLOW_DRAINED, C_FLOW_HITS,
  C_FLOW_MOVED, C_FLOW_NEW, C_FORWARDED, C_FRAG_3TUPLE, C_FRAG_ENTRIES, C_FRAG_HITS,
  C_ICMP_ERRORS, C_NAT_FORWARD, C_NAT_REPLY, C_NOMATCH, C_PACKETS, C_UNTRACKED, count,
  DESCRIPTOR_BYTES, descriptors, PB_BYTES, PB_NEW_FLOWS, PB_PACKETS, PER_OBJECT_COUNTERS, rxArena,
  T_DPORT, T_DST, T_FAMILY, T_HAS_PORTS, T_PROTO, T_SPORT, T_SRC, TUPLE_BYTES, tuples, V_ACTION,
  V_BACKEND, V_FLAGS, V_FRONTEND, V_HASH, V_L3, V_REASON, V_RULE, VERDICT_BYTES, verdicts,
} from "./layout";
import {
  keyDport, keyDst, keyFamily, keyProto, keySport, parsePacket, pktDport, pktDst, pktFamily,
  pktFlags, pktHasPorts, pktL3, pktProto, pktSport, pktSrc, pktTcpFlags, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN,
} from "./packet";
import {
  distributionHash, hashKey, loadFragmentKey, loadKey, loadReplyKey, markReply,
} from "./hash";
import { findFrontend, findNatBackend, isFrontendAddress, matchedExact, matchRule, Plan } from "./rules";
import { lookup, Pool } from "./maglev";
import {
  entryBackend, entryRule, entryState, flowInsert, flowLookup, lastInsertEvicted, setEntryBackend,
  linkEntries, restartEntry, STATE_CLOSING, STATE_ESTABLISHED, STATE_FRAGMENT, STATE_REPLY, touchEntry, touchFlow,
} from "./flows";
import { natForward, natReverse } from "./nat";

/**
 * Processes descriptors [0, n) of the current batch at time `now` (milliseconds).
 * `ingress` is the frontend the batch arrived on (next-hop use), or NONE to match
 * frontends by destination address. `link` is LINK_RAW_IP or LINK_ETHERNET.
 * Returns the number of forward verdicts.
 */
export function processBatch(plan: Plan, n: i32, now: f64, ingress: i32, link: i32): i32 {
  if (plan.drainPending) stampDrains(plan, now);
  let forwarded = 0;
  for (let i = 0; i < n; i++) {
    const v = verdicts + <usize>(i * VERDICT_BYTES);
    processPacket(plan, i, now, ingress, link, v);
    if (load<u8>(v) == ACTION_FORWARD) forwarded++;
  }
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

@inline function verdict(
  v: usize, action: u8, reason: u8, flags: u16, rule: i32, backend: i32, frontend: i32, hash: u64,
): void {
  store<u8>(v + V_ACTION, action);
  store<u8>(v + V_REASON, reason);
  store<u16>(v + V_FLAGS, flags);
  store<u16>(v + V_RULE, <u16>rule);
  store<u16>(v + V_BACKEND, <u16>backend);
  store<u16>(v + V_FRONTEND, <u16>frontend);
  store<u16>(v + V_L3, <u16>pktL3);
  store<u32>(v + V_HASH, <u32>hash);
}

function drop(v: usize, reason: u8, flags: u16, rule: i32, frontend: i32): void {
  verdict(v, ACTION_DROP, reason, flags, rule, NONE, frontend, 0);
  count(C_DROPPED);
  count(C_DROP_REASON_BASE + <i32>reason);
}

function writeTuple(t: usize): void {
  const family = pktFamily;
  store<u8>(t + T_FAMILY, family);
  if (family == 4) {
    store<u32>(t + T_SRC, load<u32>(pktSrc));
    store<u32>(t + T_SRC + 4, 0);
    store<u64>(t + T_SRC + 8, 0);
    store<u32>(t + T_DST, load<u32>(pktDst));
    store<u32>(t + T_DST + 4, 0);
    store<u64>(t + T_DST + 8, 0);
  } else if (family == 6) {
    store<u64>(t + T_SRC, load<u64>(pktSrc));
    store<u64>(t + T_SRC + 8, load<u64>(pktSrc, 8));
    store<u64>(t + T_DST, load<u64>(pktDst));
    store<u64>(t + T_DST + 8, load<u64>(pktDst, 8));
  }
  store<u16>(t + T_SPORT, pktSport);
  store<u16>(t + T_DPORT, pktDport);
  store<u8>(t + T_PROTO, family != 0 ? pktProto : 0);
  store<u8>(t + T_HAS_PORTS, <u8>pktHasPorts);
}

@inline function countObject(arr: StaticArray<u64>, index: i32, bytes: u64, newFlow: bool): void {
  const p = changetype<usize>(arr) + (<usize>(index * PER_OBJECT_COUNTERS) << 3);
  store<u64>(p, load<u64>(p) + 1, PB_PACKETS << 3);
  store<u64>(p, load<u64>(p, PB_BYTES << 3) + bytes, PB_BYTES << 3);
  if (newFlow) store<u64>(p, load<u64>(p, PB_NEW_FLOWS << 3) + 1, PB_NEW_FLOWS << 3);
}

/** Whether a tracked flow on backend `b` must move to another backend. */
@inline function mustLeave(plan: Plan, pool: Pool, rule: i32, b: i32, now: f64): bool {
  const state = unchecked(plan.backendState[b]);
  if (state == BACKEND_DRAINING) {
    // Draining keeps its flows until they end, or until the pool's drain period passes.
    return pool.drainMs > 0 && now - unchecked(plan.backendDrainSince[b]) > pool.drainMs;
  }
  if (state != BACKEND_DOWN) return false;
  const persist = unchecked(plan.rulePersist[rule]);
  if (persist == PERSIST_ALWAYS) return false;
  if (persist == PERSIST_NEVER) return true;
  return keyProto != PROTO_TCP; // defaultForProtocol: TCP stays, others move
}

/** The destination port a flow of `rule` has at the backend (the rule's mapping, or its own). */
@inline function backendPortOf(plan: Plan, rule: i32): u16 {
  const bport = unchecked(plan.ruleBackendPort[rule]);
  return bport != 0 ? bport : keyDport;
}

/** Whether packets of `rule` to `frontend` are translated: a non-floating rule, and the
 *  packet (and for ICMP errors the quoted header) addressed to the frontend itself. */
@inline function translates(plan: Plan, rule: i32, frontend: i32): bool {
  return !unchecked(plan.ruleFloating[rule])
    && isFrontendAddress(plan, frontend, pktFamily, pktDst)
    && isFrontendAddress(plan, frontend, keyFamily, keyDst);
}

/** Forward NAT towards backend `b` (port: 0 = keep). */
@inline function toBackend(plan: Plan, b: i32, port: u32): void {
  natForward(unchecked(plan.backendLo[b]), unchecked(plan.backendHi[b]), port);
}

/** Reverse NAT back to frontend `fe` (port: 0 = keep). */
@inline function toFrontend(plan: Plan, fe: i32, port: u32): void {
  natReverse(unchecked(plan.frontendLo[fe]), unchecked(plan.frontendHi[fe]), port);
}

/** The port to write when translating `rule`'s packets: 0 when the rule maps no port. */
@inline function mappedPort(plan: Plan, rule: i32, toBackend: bool): u32 {
  const fport = unchecked(plan.ruleFrontendPort[rule]);
  const bport = unchecked(plan.ruleBackendPort[rule]);
  if (fport == bport) return 0;
  return toBackend ? <u32>bport : <u32>fport;
}

function processPacket(plan: Plan, i: i32, now: f64, ingress: i32, link: i32, v: usize): void {
  const t = tuples + <usize>(i * TUPLE_BYTES);
  const d = descriptors + <usize>(i * DESCRIPTOR_BYTES);
  const off = load<u32>(d);
  const len = load<u32>(d, 4);
  count(C_PACKETS);
  count(C_BYTES, <u64>len);

  // ---- Descriptor: the host's offset and length must lie inside the arena.
  if (off > <u32>RX_ARENA_BYTES || len > <u32>RX_ARENA_BYTES - off) {
    store<u8>(t + T_FAMILY, 0);
    drop(v, REASON_BAD_DESCRIPTOR, 0, NONE, NONE);
    return;
  }

  // ---- Parse.
  const reason = parsePacket(rxArena + <usize>off, <i32>len, link);
  writeTuple(t);
  let flags = pktFlags;
  if (reason != REASON_NONE) {
    drop(v, reason, flags, NONE, NONE);
    return;
  }
  if (flags & FLAG_ICMP_ERROR) count(C_ICMP_ERRORS);
  if (ingress != NONE) flags |= FLAG_NEXT_HOP;
  const seed = plan.hashSeed;

  // ---- Later fragment: follows the backend its first fragment chose.
  if (flags & FLAG_FRAG_3TUPLE) {
    loadFragmentKey();
    const e = flowLookup(hashKey(seed), now);
    if (e != 0) {
      const rule = entryRule(e);
      const b = entryBackend(e);
      const frontend = unchecked(plan.ruleFrontend[rule]);
      touchEntry(e, now, 0);
      count(C_FRAG_HITS);
      if (entryState(e) & STATE_REPLY) {
        toFrontend(plan, frontend, 0);
        flags |= FLAG_REPLY | FLAG_REWRITTEN;
      } else if (translates(plan, rule, frontend)) {
        toBackend(plan, b, 0);
        flags |= FLAG_REWRITTEN;
      }
      forward(plan, v, b, rule, frontend, flags | FLAG_FLOW_HIT, 0, len, false);
      return;
    }
    // Its first fragment was not seen: the 3-tuple below, counted.
  }

  // ---- Reply: a backend's packet of a translated flow goes back as the frontend.
  if (plan.natBackendSlots.length > 0 && (flags & FLAG_FRAG_3TUPLE) == 0
    && findNatBackend(plan, pktFamily, pktSrc) != NONE) {
    loadKey(false);
    markReply();
    const e = flowLookup(hashKey(seed), now);
    if (e != 0) {
      const rule = entryRule(e);
      const b = entryBackend(e);
      const fe = unchecked(plan.ruleFrontend[rule]);
      // The backend answered: established; its FIN or RST closes the flow too.
      let seen = STATE_ESTABLISHED;
      if (pktProto == PROTO_TCP && (pktTcpFlags & (TCP_FIN | TCP_RST)) != 0) seen |= STATE_CLOSING;
      touchFlow(e, now, seen);
      // Record a first fragment before the rewrite: later fragments still carry the backend's address.
      if (flags & FLAG_FRAGMENT) recordFragment(plan, now, rule, b, STATE_REPLY);
      toFrontend(plan, fe, mappedPort(plan, rule, false));
      count(C_NAT_REPLY);
      forward(plan, v, b, rule, fe, flags | FLAG_REPLY | FLAG_REWRITTEN | FLAG_FLOW_HIT, 0, len, false);
      return;
    }
  }

  // ---- Rule: the ingress frontend (next hop) or the frontend addressed.
  const frontend = ingress != NONE ? ingress : findFrontend(plan, keyFamily, keyDst);
  const rule = frontend == NONE ? NONE
    : matchRule(plan, frontend, keyProto, keyDport, keySport != 0 || keyDport != 0);
  if (rule == NONE) {
    verdict(v, ACTION_NOMATCH, REASON_NO_RULE, flags, NONE, NONE, frontend, 0);
    count(C_NOMATCH);
    count(C_DROP_REASON_BASE + <i32>REASON_NO_RULE);
    return;
  }
  if (matchedExact) flags |= FLAG_EXACT_RULE;

  const pool = unchecked(plan.pools[unchecked(plan.rulePool[rule])]);
  const mode = unchecked(plan.ruleDistribution[rule]);
  const nat = translates(plan, rule, frontend);
  loadKey(unchecked(plan.ruleSymmetric[rule]));

  // ---- Later fragment without its first: (src, dst, proto), untracked.
  if (flags & FLAG_FRAG_3TUPLE) {
    count(C_FRAG_3TUPLE);
    const h = distributionHash(seed, mode == DIST_DEFAULT ? DIST_SOURCE_IP_PROTOCOL : mode);
    const b = selectBackend(plan, pool, rule, h);
    if (b != NONE && nat) {
      toBackend(plan, b, 0);
      flags |= FLAG_REWRITTEN;
    }
    forward(plan, v, b, rule, frontend, flags, h, len, false);
    return;
  }

  // ---- Flow: a tracked flow keeps its backend.
  const flowHash = hashKey(seed);
  let state: u8 = 0;
  if (keyProto == PROTO_TCP) {
    if (pktTcpFlags & TCP_ACK) state |= STATE_ESTABLISHED;
    if (pktTcpFlags & (TCP_FIN | TCP_RST)) state |= STATE_CLOSING;
  }
  let b = NONE;
  let h = flowHash;
  let newFlow = false;
  const e = flowLookup(flowHash, now);
  if (e != 0 && entryRule(e) == rule) {
    b = entryBackend(e);
    // A bare SYN on a closing flow, or on one whose backend is down, opens a new
    // connection on a reused 5-tuple: it is picked afresh (as IPVS does), not kept.
    const syn = keyProto == PROTO_TCP && (pktTcpFlags & (TCP_SYN | TCP_ACK)) == TCP_SYN;
    if (syn && ((entryState(e) & STATE_CLOSING) != 0 || unchecked(plan.backendState[b]) == BACKEND_DOWN)) {
      h = mode == DIST_DEFAULT ? flowHash : distributionHash(seed, mode);
      b = selectBackend(plan, pool, rule, h);
      if (selectedFailOpen) flags |= FLAG_FAIL_OPEN;
      if (b == NONE) {
        drop(v, REASON_NO_HEALTHY_BACKEND, flags, rule, frontend);
        return;
      }
      restartEntry(e, now, b, state);
      flags |= FLAG_FLOW_NEW;
      newFlow = true;
      count(C_FLOW_NEW);
      if (nat) insertReply(plan, seed, now, rule, b, state & STATE_ESTABLISHED, e);
    } else {
      flags |= FLAG_FLOW_HIT;
      count(C_FLOW_HITS);
    }
    if (!newFlow && mustLeave(plan, pool, rule, b, now)) {
      // Down (and the rule's persistence says move), or drained past its period:
      // re-pick, and keep the entry, now pointing at the new backend.
      count(unchecked(plan.backendState[b]) == BACKEND_DRAINING ? C_FLOW_DRAINED : C_FLOW_MOVED);
      h = mode == DIST_DEFAULT ? flowHash : distributionHash(seed, mode);
      b = selectBackend(plan, pool, rule, h);
      if (b == NONE) {
        drop(v, REASON_NO_HEALTHY_BACKEND, flags, rule, frontend);
        return;
      }
      setEntryBackend(e, b);
      if (nat) insertReply(plan, seed, now, rule, b, STATE_ESTABLISHED, e);
    }
    // Non-TCP flows count as established from their second packet.
    if (!newFlow) touchFlow(e, now, keyProto == PROTO_TCP ? state : STATE_ESTABLISHED);
  } else {
    // ---- Pick: Maglev over the pool's healthy backends.
    h = mode == DIST_DEFAULT ? flowHash : distributionHash(seed, mode);
    b = selectBackend(plan, pool, rule, h);
    if (selectedFailOpen) flags |= FLAG_FAIL_OPEN;
    if (b == NONE) {
      drop(v, REASON_NO_HEALTHY_BACKEND, flags, rule, frontend);
      return;
    }
    // ---- Track the new flow. When the table cannot hold it, it still gets its
    // consistent-hash backend.
    const ne = flowInsert(flowHash, now, rule, b, state);
    if (ne == 0) {
      flags |= FLAG_UNTRACKED;
      count(C_UNTRACKED);
    } else {
      flags |= FLAG_FLOW_NEW;
      newFlow = true;
      count(C_FLOW_NEW);
      if (lastInsertEvicted) {
        flags |= FLAG_EVICTED;
        count(C_EVICTIONS);
      }
    }
    if (nat && (flags & FLAG_ICMP_ERROR) == 0) insertReply(plan, seed, now, rule, b, state & STATE_ESTABLISHED, ne);
  }

  // ---- Rewrite: destination NAT for non-floating rules; first fragments are recorded
  // so that later ones follow.
  if (flags & FLAG_FRAGMENT) recordFragment(plan, now, rule, b, 0);
  if (nat) {
    toBackend(plan, b, mappedPort(plan, rule, true));
    flags |= FLAG_REWRITTEN;
    count(C_NAT_FORWARD);
  }
  forward(plan, v, b, rule, frontend, flags, h, len, newFlow);
}

/**
 * Tracks the reply direction of a translated flow: backend:port → client:port, linked
 * to the flow's entry (`flow`, 0 when untracked) so that the two age as one. It is
 * established when its flow is (so a flood of half-open flows cannot pin reply entries),
 * and becomes so at the backend's first reply.
 */
function insertReply(plan: Plan, seed: u64, now: f64, rule: i32, b: i32, state: u8, flow: usize): void {
  loadReplyKey(unchecked(plan.backendLo[b]), unchecked(plan.backendHi[b]), backendPortOf(plan, rule));
  const reply = flowInsert(hashKey(seed), now, rule, b, STATE_REPLY | state);
  if (reply != 0 && flow != 0) linkEntries(flow, reply);
}

/** Records the backend of a first fragment for the later fragments of its datagram. */
function recordFragment(plan: Plan, now: f64, rule: i32, b: i32, extra: u8): void {
  loadFragmentKey();
  if (flowInsert(hashKey(plan.hashSeed), now, rule, b, STATE_FRAGMENT | STATE_ESTABLISHED | extra) != 0) {
    count(C_FRAG_ENTRIES);
  }
}

/** Backend for hash `h` in the rule's pool: a healthy one, or any under failOpen. */
let selectedFailOpen: bool = false;
function selectBackend(plan: Plan, pool: Pool, rule: i32, h: u64): i32 {
  selectedFailOpen = false;
  if (pool.eligible > 0) return lookup(pool.table, pool.m, h);
  if (unchecked(plan.ruleNoHealthy[rule]) == NO_HEALTHY_FAIL_OPEN) {
    selectedFailOpen = true;
    return lookup(pool.tableAll, pool.m, h);
  }
  return NONE;
}

/** Writes the forward verdict for backend `b`, or a drop when there is none. */
function forward(
  plan: Plan, v: usize, b: i32, rule: i32, frontend: i32, flags: u16, h: u64, len: u32,
  newFlow: bool,
): void {
  if (b == NONE) {
    drop(v, REASON_NO_HEALTHY_BACKEND, flags, rule, frontend);
    return;
  }
  countObject(plan.backendCounters, b, <u64>len, newFlow);
  countObject(plan.ruleCounters, rule, <u64>len, newFlow);
  verdict(v, ACTION_FORWARD, REASON_NONE, flags, rule, b, frontend, h);
  count(C_FORWARDED);
}
