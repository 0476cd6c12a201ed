// Every limit, code and flag of the core in one place.
// Limits can be overridden at compile time: `asc ... --use MAX_BATCH=64`.
// (Katran's balancer_consts.h is the model.)

// ---- Limits ---------------------------------------------------------------

/** Packets per processBatch call (packets). */
export const MAX_BATCH: i32 = isDefined(HAPORTS_MAX_BATCH) ? HAPORTS_MAX_BATCH : 1024;
/** Receive arena the host writes packets into (bytes). 1024 × 9216-byte jumbo frames. */
export const RX_ARENA_BYTES: i32 = isDefined(HAPORTS_RX_ARENA_BYTES) ? HAPORTS_RX_ARENA_BYTES : 9437184;
/** Configuration text buffer (bytes). A larger configuration is rejected. */
export const CONFIG_BUFFER_BYTES: i32 = isDefined(HAPORTS_CONFIG_BUFFER_BYTES) ? HAPORTS_CONFIG_BUFFER_BYTES : 4194304;
/** Error text buffer the core writes `path: reason` lines into (bytes). */
export const ERROR_BUFFER_BYTES: i32 = isDefined(HAPORTS_ERROR_BUFFER_BYTES) ? HAPORTS_ERROR_BUFFER_BYTES : 65536;
/** Deepest JSON nesting accepted in a configuration (levels). */
export const MAX_JSON_DEPTH: i32 = isDefined(HAPORTS_MAX_JSON_DEPTH) ? HAPORTS_MAX_JSON_DEPTH : 32;

/** Frontends per configuration (count). */
export const MAX_FRONTENDS: i32 = isDefined(HAPORTS_MAX_FRONTENDS) ? HAPORTS_MAX_FRONTENDS : 4096;
/** Rules per configuration (count). Rule index 0xFFFF means "none". */
export const MAX_RULES: i32 = isDefined(HAPORTS_MAX_RULES) ? HAPORTS_MAX_RULES : 16384;
/** Backends over all pools (count). Backend index 0xFFFF means "none". */
export const MAX_BACKENDS: i32 = isDefined(HAPORTS_MAX_BACKENDS) ? HAPORTS_MAX_BACKENDS : 16384;
/** Backend pools (count). */
export const MAX_POOLS: i32 = isDefined(HAPORTS_MAX_POOLS) ? HAPORTS_MAX_POOLS : 1024;
/** Largest backend weight (integer). */
export const MAX_WEIGHT: i32 = 1000;

/** Maglev table size when a pool gives none (entries; prime). Paper §3.4 uses 65537. */
export const DEFAULT_MAGLEV_M: i32 = isDefined(HAPORTS_DEFAULT_MAGLEV_M) ? HAPORTS_DEFAULT_MAGLEV_M : 65537;
/** Largest Maglev table size accepted (entries). */
export const MAX_MAGLEV_M: i32 = 16777213; // largest prime below 2^24

/** Flow-table capacity when the configuration gives none (flows; power of two). */
export const DEFAULT_FLOW_CAPACITY: i32 = isDefined(HAPORTS_DEFAULT_FLOW_CAPACITY) ? HAPORTS_DEFAULT_FLOW_CAPACITY : 65536;
/** Smallest and largest flow-table capacity (flows; power of two). 2^24 flows × 56 B =
 *  896 MiB, which fits a wasm32 memory twice over beside everything else (a change of
 *  capacity or key holds the old and the new table while flows are moved). */
export const MIN_FLOW_CAPACITY: i32 = 16;
export const MAX_FLOW_CAPACITY: i32 = isDefined(HAPORTS_MAX_FLOW_CAPACITY) ? HAPORTS_MAX_FLOW_CAPACITY : 16777216;
/** Flow entries per bucket (entries); one bucket = a 64 B header line + 8 × 48 B entries. */
export const FLOW_BUCKET_WAYS: i32 = 8;
/** A flow that is not yet established (first packet without SYN, UDP, ICMP, other
 *  protocols) becomes established at a packet that arrives at least this long after its
 *  first (milliseconds), or at one from the other direction. See flows.ts, admission. */
export const FLOW_ESTABLISH_AFTER_MS: i32 = isDefined(HAPORTS_FLOW_ESTABLISH_AFTER_MS) ? HAPORTS_FLOW_ESTABLISH_AFTER_MS : 1000;
/** Packets per pass group of a batch: each pass runs over this many packets before the
 *  next pass starts (packets). Larger overlaps more memory accesses; smaller keeps a
 *  group's records and bucket lines in the L1 cache. */
export const PASS_GROUP: i32 = isDefined(HAPORTS_PASS_GROUP) ? HAPORTS_PASS_GROUP : 32;

/** Idle timeout when a rule gives none (minutes), and its bounds (Azure: 4–100). */
export const DEFAULT_IDLE_TIMEOUT_MIN: i32 = 4;
export const MIN_IDLE_TIMEOUT_MIN: i32 = 4;
export const MAX_IDLE_TIMEOUT_MIN: i32 = 100;
/** Life of a fragment entry: later fragments must arrive within this (milliseconds). */
export const FRAGMENT_TIMEOUT_MS: i32 = isDefined(HAPORTS_FRAGMENT_TIMEOUT_MS) ? HAPORTS_FRAGMENT_TIMEOUT_MS : 30000;
/** Life of a TCP flow after FIN or RST (milliseconds). */
export const TCP_CLOSE_TIMEOUT_MS: i32 = isDefined(HAPORTS_TCP_CLOSE_TIMEOUT_MS) ? HAPORTS_TCP_CLOSE_TIMEOUT_MS : 10000;

/** IPv6 extension headers walked before giving up (headers). */
export const MAX_IPV6_EXT_HEADERS: i32 = 8;

/** The hash key when the configuration gives none: public, so `validate` warns. It is
 *  what `hashSeed` 0x1f2e3d4c5b6a7988 widens to (SipHash k0 = k1 = the seed's bytes
 *  as written, read little-endian; config.ts). */
export const DEFAULT_HASH_K0: u64 = 0x88796a5b4c3d2e1f;
export const DEFAULT_HASH_K1: u64 = 0x88796a5b4c3d2e1f;

/** Benchmark builds only (`--use HAPORTS_UNKEYED_HASH=1`): the packet path hashes with
 *  the old unkeyed MurmurHash3-style mix instead of SipHash, so that `npm run bench` can
 *  show what the keyed hash costs. Never in a build that carries traffic: that hash can
 *  be steered (docs/flowtable.md). */
export const UNKEYED_HASH: bool = isDefined(HAPORTS_UNKEYED_HASH);

/** "No rule" / "no backend" / "no frontend" index value. */
export const NONE: i32 = 0xffff;

// ---- Verdict actions (verdict record byte 0) --------------------------------

export const ACTION_FORWARD: u8 = 1; // send to the backend named in the record
export const ACTION_DROP: u8 = 2;    // drop; the reason byte says why
export const ACTION_NOMATCH: u8 = 3; // no rule for this packet; the host decides
export const ACTION_RESET: u8 = 4;   // drop, and send the two TCP RSTs of the reset record (enableTcpReset)

// ---- Drop / no-match reasons (verdict record byte 1; counters by reason) ----

export const REASON_NONE: u8 = 0;
export const REASON_NOT_IP: u8 = 1;            // L2 frame that does not carry IPv4/IPv6
export const REASON_TRUNCATED: u8 = 2;         // shorter than the L2/L3 header or IP length claims
export const REASON_BAD_IP_VERSION: u8 = 3;    // version nibble not 4 or 6
export const REASON_BAD_IP_HEADER: u8 = 4;     // IPv4 IHL < 5 or total length < header length
export const REASON_TRUNCATED_L4: u8 = 5;      // TCP/UDP/SCTP/ICMP header incomplete
export const REASON_BAD_L4_HEADER: u8 = 6;     // TCP data offset < 5
export const REASON_EXT_HEADER_CHAIN: u8 = 7;  // IPv6 extension header chain too long or past the end
export const REASON_BAD_ICMP_ERROR: u8 = 8;    // ICMP error whose quoted header cannot be parsed
export const REASON_NO_HEALTHY_BACKEND: u8 = 9; // every backend down and the rule says drop
export const REASON_NO_RULE: u8 = 10;          // no-match verdicts carry this reason
export const REASON_BAD_DESCRIPTOR: u8 = 11;   // host gave an offset/length outside the arena
export const REASON_IDLE_RESET: u8 = 12;       // reset verdicts: a TCP flow of an enableTcpReset rule past its idle timeout
export const REASON_COUNT: i32 = 13;

// ---- Verdict flags (verdict record bytes 2–3) -------------------------------

export const FLAG_IPV6: u16 = 1 << 0;          // packet is IPv6
export const FLAG_FLOW_HIT: u16 = 1 << 1;      // backend came from a tracked flow
export const FLAG_FLOW_NEW: u16 = 1 << 2;      // a new flow entry was created
export const FLAG_UNTRACKED: u16 = 1 << 3;     // the flow table could not hold this flow; hashed anyway
export const FLAG_FRAGMENT: u16 = 1 << 4;      // packet is an IP fragment
export const FLAG_FRAG_3TUPLE: u16 = 1 << 5;   // non-first fragment hashed on (src, dst, proto)
export const FLAG_ICMP_ERROR: u16 = 1 << 6;    // keyed by the quoted header of an ICMP error
export const FLAG_EXACT_RULE: u16 = 1 << 7;    // matched an exact (protocol, port) rule, not HA ports
export const FLAG_NEXT_HOP: u16 = 1 << 8;      // matched through the batch's ingress frontend
export const FLAG_EVICTED: u16 = 1 << 9;       // inserting this flow evicted a live one
export const FLAG_FAIL_OPEN: u16 = 1 << 10;    // all backends down; spread over all (failOpen)
export const FLAG_REWRITTEN: u16 = 1 << 11;    // the packet was rewritten in place (NAT)
export const FLAG_REPLY: u16 = 1 << 12;        // a backend's reply, translated back to the frontend
export const FLAG_ESTABLISHED: u16 = 1 << 13;  // the packet's flow entry is established (admission: flows.ts)

// ---- Link types of a batch (processBatch argument) --------------------------

export const LINK_RAW_IP: i32 = 0;   // packets start with the IP header
export const LINK_ETHERNET: i32 = 1; // packets start with an Ethernet header (802.1Q/802.1ad tags allowed)

// ---- Protocol numbers -------------------------------------------------------

export const PROTO_ICMP: u8 = 1;
export const PROTO_TCP: u8 = 6;
export const PROTO_UDP: u8 = 17;
export const PROTO_GRE: u8 = 47;
export const PROTO_ESP: u8 = 50;
export const PROTO_AH: u8 = 51;
export const PROTO_ICMPV6: u8 = 58;
export const PROTO_SCTP: u8 = 132;

/** Rule protocol value meaning "all" (HA ports). */
export const RULE_PROTO_ALL: u8 = 0;

// ---- Load distribution modes --------------------------------------------------

export const DIST_DEFAULT: u8 = 0;            // 5-tuple
export const DIST_SOURCE_IP_PROTOCOL: u8 = 1; // (src IP, dst IP, protocol)
export const DIST_SOURCE_IP: u8 = 2;          // (src IP, dst IP)

// ---- Backend states -----------------------------------------------------------

export const BACKEND_UP: u8 = 0;
export const BACKEND_DOWN: u8 = 1;     // failed its probe
export const BACKEND_DRAINING: u8 = 2; // taken out by the operator; keeps its flows

// ---- Rule policies -------------------------------------------------------------

export const PERSIST_DEFAULT_FOR_PROTOCOL: u8 = 0; // TCP stays on a down backend, others move
export const PERSIST_NEVER: u8 = 1;
export const PERSIST_ALWAYS: u8 = 2;
export const NO_HEALTHY_DROP: u8 = 0;
export const NO_HEALTHY_FAIL_OPEN: u8 = 1;
