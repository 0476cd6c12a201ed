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
//   resets (MAX_BATCH × RESET_BYTES): for a verdict with action ACTION_RESET, the two TCP RSTs
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

import { CONFIG_BUFFER_BYTES, ERROR_BUFFER_BYTES, MAX_BATCH, PASS_GROUP, RX_ARENA_BYTES } from "./consts";
import {
  COUNTER_SLOTS, DESCRIPTOR_BYTES, OBJECT_COUNTER_BYTES, RESET_BYTES, TUPLE_BYTES, VERDICT_BYTES,
} from "./abi";
import { PACKET_BYTES } from "./packet";

// The records' sizes and field offsets (V_*, T_*, R_*), the counter slots (C_*) and the
// per-object counters (PB_*) are the host interface's: generated into abi.ts from
// abi/haports.abi.json, and re-exported here with the memory map that uses them.
export * from "./abi";
/** Longest RST to the sender that fits its slot of the reset record (bytes). */
export const R_A_MAX: i32 = 120;

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
