// The linear-memory map shared with hosts. Every region is allocated once, when the
// module starts (or, for per-configuration tables, when a configuration is applied);
// nothing is allocated per packet.
//
//   host → core, per batch   rx arena (RX_ARENA_BYTES): packets, anywhere in it;
//                            descriptors (MAX_BATCH × DESCRIPTOR_BYTES): offset, length
//   core → host, per batch   verdicts (MAX_BATCH × VERDICT_BYTES), tuples (× TUPLE_BYTES),
//                            resets (× RESET_BYTES, for reset verdicts): record i
//                            belongs to descriptor i
//   configuration            config buffer (CONFIG_BUFFER_BYTES); error, warning and
//                            info buffers (ERROR_BUFFER_BYTES each)
//   state                    counters (COUNTER_SLOTS × u64); per-object counters and
//                            probe-target records live in the running Plan
//
// The records' fields are the host interface's, described once in
// abi/haports.abi.json and drawn in docs/abi.md ("Records"). All multi-byte fields are
// little-endian (wasm's byte order), except addresses and the packets themselves
// (network byte order).

import { CONFIG_BUFFER_BYTES, ERROR_BUFFER_BYTES, MAX_BATCH, PASS_GROUP, RX_ARENA_BYTES } from "./consts";
import {
  COUNTER_SLOTS, DESCRIPTOR_BYTES, FLOW_RECORD_BYTES, OBJECT_COUNTER_BYTES, RESET_BYTES, TUPLE_BYTES, VERDICT_BYTES,
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
export const infoBuffer: usize = heap.alloc(<usize>ERROR_BUFFER_BYTES);
export const counters: usize = heap.alloc(<usize>(COUNTER_SLOTS * 8));
export const resets: usize = heap.alloc(<usize>(MAX_BATCH * RESET_BYTES));
/** Flow records of flowsDump() (the flow table's listing for admin endpoints). */
export const FLOW_DUMP_RECORDS: i32 = 256;
export const flowDump: usize = heap.alloc(<usize>(FLOW_DUMP_RECORDS * FLOW_RECORD_BYTES));
/** The Packet records of one pass group (datapath.ts), 64-byte aligned. */
export const packets: usize = (heap.alloc(<usize>(PASS_GROUP * PACKET_BYTES + 64)) + 63) & ~(<usize>63);

@inline export function count(slot: i32, n: u64 = 1): void {
  const p = counters + (<usize>slot << 3);
  store<u64>(p, load<u64>(p) + n);
}
