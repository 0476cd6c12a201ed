// The constants of assembly/consts.ts and assembly/layout.ts the port needs (same values).

export const MAX_BATCH = 1024;
export const RX_ARENA_BYTES = 9437184;
export const FLOW_BUCKET_WAYS = 8;
export const FLOW_ESTABLISH_AFTER_MS = 1000;
export const FRAGMENT_TIMEOUT_MS = 30000;
export const TCP_CLOSE_TIMEOUT_MS = 10000;
export const MAX_IPV6_EXT_HEADERS = 8;
export const NONE = 0xffff;

export const ACTION_FORWARD = 1;
export const ACTION_DROP = 2;
export const ACTION_NOMATCH = 3;

export const REASON_NONE = 0;
export const REASON_NOT_IP = 1;
export const REASON_TRUNCATED = 2;
export const REASON_BAD_IP_VERSION = 3;
export const REASON_BAD_IP_HEADER = 4;
export const REASON_TRUNCATED_L4 = 5;
export const REASON_BAD_L4_HEADER = 6;
export const REASON_EXT_HEADER_CHAIN = 7;
export const REASON_BAD_ICMP_ERROR = 8;
export const REASON_NO_HEALTHY_BACKEND = 9;
export const REASON_NO_RULE = 10;
export const REASON_BAD_DESCRIPTOR = 11;
export const REASON_IDLE_RESET = 12;
export const REASON_COUNT = 13;

export const FLAG_IPV6 = 1 << 0;
export const FLAG_FLOW_HIT = 1 << 1;
export const FLAG_FLOW_NEW = 1 << 2;
export const FLAG_UNTRACKED = 1 << 3;
export const FLAG_FRAGMENT = 1 << 4;
export const FLAG_FRAG_3TUPLE = 1 << 5;
export const FLAG_ICMP_ERROR = 1 << 6;
export const FLAG_EXACT_RULE = 1 << 7;
export const FLAG_NEXT_HOP = 1 << 8;
export const FLAG_EVICTED = 1 << 9;
export const FLAG_FAIL_OPEN = 1 << 10;
export const FLAG_REWRITTEN = 1 << 11;
export const FLAG_REPLY = 1 << 12;
export const FLAG_ESTABLISHED = 1 << 13;

export const LINK_RAW_IP = 0;
export const LINK_ETHERNET = 1;

export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_AH = 51;
export const PROTO_ICMPV6 = 58;
export const PROTO_SCTP = 132;
export const RULE_PROTO_ALL = 0;

export const DIST_DEFAULT = 0;
export const DIST_SOURCE_IP_PROTOCOL = 1;
export const DIST_SOURCE_IP = 2;

export const BACKEND_UP = 0;
export const BACKEND_DOWN = 1;
export const BACKEND_DRAINING = 2;

/** The hash key when the configuration gives none (consts.ts DEFAULT_HASH_K0/K1): what
 *  hashSeed 0x1f2e3d4c5b6a7988 widens to. */
export const DEFAULT_HASH_SEED = '0x1f2e3d4c5b6a7988';

export const PERSIST_DEFAULT_FOR_PROTOCOL = 0;
export const PERSIST_NEVER = 1;
export const PERSIST_ALWAYS = 2;
export const NO_HEALTHY_DROP = 0;
export const NO_HEALTHY_FAIL_OPEN = 1;

// Counter slots (layout.ts C_*).
export const C_PACKETS = 0;
export const C_BYTES = 1;
export const C_FORWARDED = 2;
export const C_DROPPED = 3;
export const C_NOMATCH = 4;
export const C_FLOW_HITS = 5;
export const C_FLOW_NEW = 6;
export const C_UNTRACKED = 7;
export const C_EVICTIONS = 8;
export const C_FRAG_3TUPLE = 9;
export const C_ICMP_ERRORS = 10;
export const C_FLOW_MOVED = 11;
export const C_BATCHES = 12;
export const C_FRAG_HITS = 16;
export const C_FRAG_ENTRIES = 17;
export const C_FLOW_MOVES = 21;
export const C_FLOW_ESTABLISHED = 23;
export const C_DROP_REASON_BASE = 24;
export const COUNTER_SLOTS = C_DROP_REASON_BASE + REASON_COUNT;

export const DESCRIPTOR_BYTES = 8;
export const VERDICT_BYTES = 16;
export const TUPLE_BYTES = 40;
