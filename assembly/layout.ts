// The linear-memory map shared with hosts. Every region is allocated once, when the
// module starts (or, for per-configuration tables, when a configuration is applied);
// nothing is allocated per packet.
//
// Host → core, per batch:
//
//   rx arena (RX_ARENA_BYTES)     packets, written once by the host, anywhere in the arena
//   descriptors (MAX_BATCH × 8)   one per packet:
//
//       0            4            8
//       +------------+------------+
//       | offset u32 | length u32 |   offset: from the arena start; length: bytes
//       +------------+------------+
//
// Core → host, per batch (record i belongs to descriptor i):
//
//   verdicts (MAX_BATCH × 16):
//
//       0      1      2        4        6         8          10        12          16
//       +------+------+--------+--------+---------+----------+---------+-----------+
//       |action|reason| flags  | rule   | backend | frontend | l3 off  | hash      |
//       |  u8  |  u8  |  u16   |  u16   |  u16    |   u16    |  u16    |  u32      |
//       +------+------+--------+--------+---------+----------+---------+-----------+
//       action: ACTION_*; reason: REASON_* (0 on forward); flags: FLAG_*;
//       rule/backend/frontend: indices in configuration order (backends numbered over
//       all pools in order), 0xFFFF = none; l3 off: IP header offset in the packet;
//       hash: low 32 bits of the backend-selection hash (0 when none was computed).
//
//   tuples (MAX_BATCH × 40): the packet's own header fields as parsed
//
//       0                 16                32      34      36    37     38       40
//       +-----------------+-----------------+-------+-------+-----+------+--------+
//       | src address     | dst address     | sport | dport |proto|family|hasPorts|
//       | 16 B (IPv4: 4 B | 16 B, then 0s)  |  u16  |  u16  | u8  | 4/6/0|  u8    |
//       +-----------------+-----------------+-------+-------+-----+------+--------+
//       Addresses in network byte order; ports in host order (little-endian u16);
//       family 0 = no IP header parsed; hasPorts 1 for TCP/UDP/SCTP carrying ports.
//
//   resets (MAX_BATCH × 256): for a verdict with action ACTION_RESET, the two TCP RSTs
//   to send in its place (enableTcpReset), framed as the batch's packets are (link type)
//
//       0        2        4        8                  128                 256
//       +--------+--------+--------+------------------+-------------------+
//       | lenA   | lenB   | 0      | RST A (≤ 120 B)  | RST B (≤ 128 B)   |
//       +--------+--------+--------+------------------+-------------------+
//       A goes back to the packet's sender (addresses and ports swapped; Ethernet MACs
//       swapped); B goes on where the packet was going, to the verdict's backend, as a
//       forwarded packet would (rewritten by NAT for non-floating rules).
//
// All multi-byte fields are little-endian (wasm's byte order), except addresses and
// the packets themselves (network byte order).

import { CONFIG_BUFFER_BYTES, ERROR_BUFFER_BYTES, MAX_BATCH, PASS_GROUP, REASON_COUNT, RX_ARENA_BYTES } from "./consts";
import { PACKET_BYTES } from "./packet";

export const DESCRIPTOR_BYTES: i32 = 8;
export const VERDICT_BYTES: i32 = 16;
export const TUPLE_BYTES: i32 = 40;
export const RESET_BYTES: i32 = 256;
/** Reset record offsets: the two lengths, and where each RST starts. */
export const R_LEN_A: usize = 0;
export const R_LEN_B: usize = 2;
export const R_A: usize = 8;
export const R_B: usize = 128;
export const R_A_MAX: i32 = 120;

// Verdict record field offsets.
export const V_ACTION: usize = 0;
export const V_REASON: usize = 1;
export const V_FLAGS: usize = 2;
export const V_RULE: usize = 4;
export const V_BACKEND: usize = 6;
export const V_FRONTEND: usize = 8;
export const V_L3: usize = 10;
export const V_HASH: usize = 12;

// Tuple record field offsets.
export const T_SRC: usize = 0;
export const T_DST: usize = 16;
export const T_SPORT: usize = 32;
export const T_DPORT: usize = 34;
export const T_PROTO: usize = 36;
export const T_FAMILY: usize = 37;
export const T_HAS_PORTS: usize = 38;

// Global counters: u64 slots.
export const C_PACKETS: i32 = 0;          // packets processed
export const C_BYTES: i32 = 1;            // bytes processed (as given by the host)
export const C_FORWARDED: i32 = 2;        // forward verdicts
export const C_DROPPED: i32 = 3;          // drop verdicts
export const C_NOMATCH: i32 = 4;          // no-match verdicts
export const C_FLOW_HITS: i32 = 5;        // packets whose backend came from the flow table
export const C_FLOW_NEW: i32 = 6;         // flow entries created
export const C_UNTRACKED: i32 = 7;        // flows the table could not hold (hashed anyway)
export const C_EVICTIONS: i32 = 8;        // live entries evicted to make room
export const C_FRAG_3TUPLE: i32 = 9;      // non-first fragments hashed on the 3-tuple
export const C_ICMP_ERRORS: i32 = 10;     // ICMP errors mapped through their quoted header
export const C_FLOW_MOVED: i32 = 11;      // tracked flows moved off a down (or drained) backend
export const C_BATCHES: i32 = 12;         // processBatch calls
export const C_CONFIG_APPLIED: i32 = 13;  // configurations applied
export const C_CONFIG_REJECTED: i32 = 14; // configurations rejected
export const C_FLOWS_DROPPED_BY_CONFIG: i32 = 15; // tracked flows whose rule/backend went away
export const C_FRAG_HITS: i32 = 16;       // later fragments that followed their first fragment
export const C_FRAG_ENTRIES: i32 = 17;    // fragment entries recorded (first fragments)
export const C_NAT_FORWARD: i32 = 18;     // packets rewritten towards a backend (DNAT)
export const C_NAT_REPLY: i32 = 19;       // backend replies translated back to the frontend
export const C_FLOW_DRAINED: i32 = 20;    // tracked flows moved off a backend past its drain period
export const C_FLOW_MOVES: i32 = 21;      // flow-table entries moved to their other bucket to make room
export const C_RESETS: i32 = 22;          // reset verdicts (enableTcpReset): RSTs written for both ends
export const C_FLOW_ESTABLISHED: i32 = 23; // flow entries that became established (admission)
export const C_DROP_REASON_BASE: i32 = 24; // + REASON_*: drops (and no-matches) by reason
export const COUNTER_SLOTS: i32 = C_DROP_REASON_BASE + REASON_COUNT;

// Per-backend and per-rule counters (u64 × 3 each, in the Plan): packets, bytes, new flows.
export const PB_PACKETS: i32 = 0;
export const PB_BYTES: i32 = 1;
export const PB_NEW_FLOWS: i32 = 2;
export const PER_OBJECT_COUNTERS: i32 = 3;

export const rxArena: usize = heap.alloc(<usize>RX_ARENA_BYTES);
export const descriptors: usize = heap.alloc(<usize>(MAX_BATCH * DESCRIPTOR_BYTES));
export const verdicts: usize = heap.alloc(<usize>(MAX_BATCH * VERDICT_BYTES));
export const tuples: usize = heap.alloc(<usize>(MAX_BATCH * TUPLE_BYTES));
export const configBuffer: usize = heap.alloc(<usize>CONFIG_BUFFER_BYTES);
export const errorBuffer: usize = heap.alloc(<usize>ERROR_BUFFER_BYTES);
export const warningBuffer: usize = heap.alloc(<usize>ERROR_BUFFER_BYTES);
export const counters: usize = heap.alloc(<usize>(COUNTER_SLOTS * 8));
export const resets: usize = heap.alloc(<usize>(MAX_BATCH * RESET_BYTES));
/** The Packet records of one pass group (datapath.ts), 64-byte aligned. */
export const packets: usize = (heap.alloc(<usize>(PASS_GROUP * PACKET_BYTES + 64)) + 63) & ~(<usize>63);

@inline export function count(slot: i32, n: u64 = 1): void {
  const p = counters + (<usize>slot << 3);
  store<u64>(p, load<u64>(p) + n);
}
