// Every limit, code and flag of the core in one place: the host interface's (actions,
// reasons, flags, backend states, link types, limits) are generated into abi.ts from
// abi/haports.abi.json and re-exported here; the core's own follow. Limits can be
// overridden at compile time: `asc ... --use HAPORTS_MAX_BATCH=64`.
// (Katran's balancer_consts.h is the model.)

export * from "./abi";

// ---- Limits of the core's own ----------------------------------------------

/** Flow entries per bucket (entries); one bucket = a 64 B header line + 8 × 48 B entries. */
export const FLOW_BUCKET_WAYS: i32 = 8;
/** Packets per pass group of a batch: each pass runs over this many packets before the
 *  next pass starts (packets). Larger overlaps more memory accesses; smaller keeps a
 *  group's records and bucket lines in the L1 cache. */
export const PASS_GROUP: i32 = isDefined(HAPORTS_PASS_GROUP) ? HAPORTS_PASS_GROUP : 32;

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

// ---- Rule policies -------------------------------------------------------------

export const PERSIST_DEFAULT_FOR_PROTOCOL: u8 = 0; // TCP stays on a down backend, others move
export const PERSIST_NEVER: u8 = 1;
export const PERSIST_ALWAYS: u8 = 2;
export const NO_HEALTHY_DROP: u8 = 0;
export const NO_HEALTHY_FAIL_OPEN: u8 = 1;
