// The C reference: the benchmark's packet path written by hand in C for speed (issue 10),
// to show how far the core (in V8, in wasmtime, and as wasm2c native) is from what this
// machine can do, not only how far the engines are from each other.
//
// What it implements: exactly what assembly/datapath.ts, packet.ts, hash.ts, flows.ts and
// maglev.ts do for the packets of the bench's cases (bench/lib/corpus.mjs), with
// byte-identical verdict (16 B) and tuple (40 B) records (assembly/layout.ts):
//   - raw IPv4 / IPv6 TCP packets (IPv4 options and TCP options allowed), with every
//     length and version check the core makes on them and the same drop verdicts;
//   - one next-hop HA-ports rule on the batch's ingress frontend: floatingIp (no NAT),
//     loadDistribution default, symmetric or not, any idle timeout, enableTcpReset off;
//   - the symmetric flow key (five u64 words), SipHash-1-3 of its 16 / 40 bytes;
//   - the flow table of flows.ts: buckets of a 64-byte header line and 8 entries of
//     48 B, tags, two candidate buckets, lookup, expiry, insertion order, cuckoo moves two
//     levels deep, eviction by admission, the table clock; admission and refresh;
//   - Maglev: the pool's table built as maglev.ts builds it (backends sorted by name,
//     offset/skip from the name hashes, integer weights by turns); slot = multiply-shift;
//   - the global, per-backend and per-rule counters the core keeps on this path.
// What it does not: anything the bench's cases never reach. Ethernet framing, fragments,
// IPv6 extension headers, UDP/ICMP/other protocols, ICMP errors, matching frontends by
// address, exact rules, NAT and reply entries, TCP resets, health changes and draining,
// other distribution modes, a rehash. A configuration or a packet that would need one of
// them stops the program with a message (exit 2) instead of deciding differently.
//
// How it is fast: one loop per pass with every stage inlined and the packet's state in
// locals, SSE2 tag compares, and __builtin_prefetch (which wasm lacks) for the entries.
// A batch runs in groups of REF_GROUP (16) packets in four passes: (1) parse, key and
// SipHash; (2) a load of each first bucket's header line, in a loop of nothing else, so
// that the group's misses are in flight at once; (3) the 8 tags of that line compared at
// once, and a prefetch of the matching entry's lines (the header's page, whose
// translation the load of pass 2 has just brought into the TLB) or of the second
// bucket's header line; (4) the decisions, whose table accesses then hit the cache. The
// rare paths (cuckoo moves, drops, unsupported input) are out of line.
// Pass 2 loads rather than prefetches, as the core does: with 4 KiB pages most of those
// lines are TLB misses as well, and on the bench's VM a version that prefetched them
// (and pipelined groups, so that the prefetches had a whole group's work to complete)
// ran anywhere between 0.8x and 1.5x this one from one process to the next, where this
// one stays within a few percent; with huge pages (HAPORTS_REF_HUGEPAGES=1) the
// prefetching pipeline was the faster, by about a third on the 1M-flow cases.
//
//   reference serve CASE_DIR ITER MIN_WARM MAX_WARM WINDOW TOL VARIANTS(hit/1024,mix/64,…)
//     the serve protocol of bench/native/driver.c and bench/lib/worker.mjs: sets up
//     (configure, populate at pop_now, check phase at now), warms every variant up,
//     prints `READY {json}` with the verdict CRC, then answers `RUN <variant> <packets>
//     <rewarm>` with one timed iteration (process CPU time) and `END`
//   reference verify CASE_DIR PACKETS
//     population, check phase, then PACKETS packets of the mix stream at batch 1024,
//     printing {"crc":…} over all their verdicts (to compare with the core over a run
//     long enough to fill the table: moves and evictions) and "tupleCrc" over the tuple
//     records of the population and check phase
//
// Environment: HAPORTS_REF_HUGEPAGES=1 asks for transparent huge pages on the flow
// table (madvise); off by default, so that the table is mapped with the same 4 KiB
// pages as the engines' wasm memories.

#define _GNU_SOURCE
#include <emmintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "../native/serve.h"

#define INLINE static inline __attribute__((always_inline))
#define COLD static __attribute__((noinline, cold))
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int32_t i32;

// ---- Constants of the core (assembly/consts.ts, layout.ts, flows.ts) --------------------

#define MAX_BATCH 1024
#define RX_ARENA_BYTES 9437184u
#ifndef REF_GROUP
#define REF_GROUP 16 /* packets per pass group (the core's PASS_GROUP is 32; 16 measured best here) */
#endif
#define NONE 0xffff
#define FLOW_ESTABLISH_AFTER_MS 1000
#define FRAGMENT_TIMEOUT_MS 30000
#define TCP_CLOSE_TIMEOUT_MS 10000

#define ACTION_FORWARD 1
#define ACTION_DROP 2

#define REASON_NONE 0
#define REASON_TRUNCATED 2
#define REASON_BAD_IP_VERSION 3
#define REASON_BAD_IP_HEADER 4
#define REASON_TRUNCATED_L4 5
#define REASON_BAD_L4_HEADER 6
#define REASON_BAD_DESCRIPTOR 11
#define REASON_COUNT 13

#define FLAG_IPV6 (1u << 0)
#define FLAG_FLOW_HIT (1u << 1)
#define FLAG_FLOW_NEW (1u << 2)
#define FLAG_UNTRACKED (1u << 3)
#define FLAG_NEXT_HOP (1u << 8)
#define FLAG_EVICTED (1u << 9)
#define FLAG_ESTABLISHED (1u << 13)

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10
#define PROTO_TCP 6

// Global counter slots (layout.ts C_*).
enum {
  C_PACKETS, C_BYTES, C_FORWARDED, C_DROPPED, C_NOMATCH, C_FLOW_HITS, C_FLOW_NEW, C_UNTRACKED,
  C_EVICTIONS, C_FRAG_3TUPLE, C_ICMP_ERRORS, C_FLOW_MOVED, C_BATCHES, C_CONFIG_APPLIED,
  C_CONFIG_REJECTED, C_FLOWS_DROPPED_BY_CONFIG, C_FRAG_HITS, C_FRAG_ENTRIES, C_NAT_FORWARD,
  C_NAT_REPLY, C_FLOW_DRAINED, C_FLOW_MOVES, C_RESETS, C_FLOW_ESTABLISHED, C_DROP_REASON_BASE,
  COUNTER_SLOTS = C_DROP_REASON_BASE + REASON_COUNT
};

// Flow-table layout (flows.ts): a bucket is a 64-byte header line and 8 entries of 48 B.
#define WAYS 8
#define HEADER_BYTES 64
#define ENTRY_BYTES 48
#define BUCKET_BYTES (HEADER_BYTES + WAYS * ENTRY_BYTES)
#define H_STATE 16
#define H_IDLE 24
#define H_SEEN 32
#define E_RULE 40
#define E_BACKEND 42
#define E_LINK 44

#define STATE_USED (1u << 0)
#define STATE_ESTABLISHED (1u << 1)
#define STATE_CLOSING (1u << 2)
#define STATE_FRAGMENT (1u << 4)
#define STATE_SYN (1u << 5)
#define STATE_SWAPPED (1u << 6)

static void die(const char* what) {
  fprintf(stderr, "reference: %s\n", what);
  exit(2);
}

// ---- Unaligned loads (packets are byte arrays) ------------------------------------------

INLINE u16 be16(const u8* p) { return (u16)(p[0] << 8 | p[1]); }
INLINE u32 le32(const u8* p) { u32 v; memcpy(&v, p, 4); return v; }
INLINE u64 le64(const u8* p) { u64 v; memcpy(&v, p, 8); return v; }
INLINE u64 rotl(u64 x, int r) { return (x << r) | (x >> (64 - r)); }

// ---- Configuration ------------------------------------------------------------------------

static struct {
  u64 k0, k1;
  u32 capacity;   // flow-table entries (power of two)
  u32 frontends;  // count
  u32 rule_frontend;
  u32 idle_minutes;
  int symmetric;
  u32 backends;   // count (global indices, configuration order)
  u32 m;          // Maglev table size
  u16* table;     // Maglev table over the eligible backends
  u32 eligible;
} cfg;

// A small JSON reader: the configuration becomes a tree of nodes.
enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };
typedef struct { int type; double num; char* str; char* key; int child, next; } jnode;
static jnode* jn;
static int jcount, jcap;
static const char* jp;

static int jnew(int type) {
  if (jcount == jcap) { jcap = jcap ? jcap * 2 : 256; jn = realloc(jn, sizeof(jnode) * (size_t)jcap); }
  jn[jcount] = (jnode){ type, 0, NULL, NULL, -1, -1 };
  return jcount++;
}
static void jws(void) { while (*jp == ' ' || *jp == '\n' || *jp == '\r' || *jp == '\t') jp++; }
static char* jstring(void) {
  if (*jp != '"') die("config.json: expected a string");
  jp++;
  size_t cap = 16, n = 0;
  char* s = malloc(cap);
  while (*jp != '"') {
    if (!*jp) die("config.json: unterminated string");
    char c = *jp++;
    if (c == '\\') {
      c = *jp++;
      if (c == 'n') c = '\n'; else if (c == 't') c = '\t'; else if (c == 'r') c = '\r';
      else if (c == 'b') c = '\b'; else if (c == 'f') c = '\f';
      else if (c == 'u') die("config.json: \\u escapes are not supported by the reference");
    }
    if (n + 2 > cap) s = realloc(s, cap *= 2);
    s[n++] = c;
  }
  jp++;
  s[n] = 0;
  return s;
}
static int jvalue(void) {
  jws();
  int id;
  if (*jp == '{' || *jp == '[') {
    int obj = *jp == '{';
    id = jnew(obj ? J_OBJ : J_ARR);
    jp++;
    jws();
    int last = -1;
    if (*jp == (obj ? '}' : ']')) { jp++; return id; }
    for (;;) {
      char* key = NULL;
      if (obj) { jws(); key = jstring(); jws(); if (*jp++ != ':') die("config.json: expected ':'"); }
      int v = jvalue();
      jn[v].key = key;
      if (last < 0) jn[id].child = v; else jn[last].next = v;
      last = v;
      jws();
      if (*jp == ',') { jp++; continue; }
      if (*jp++ != (obj ? '}' : ']')) die("config.json: expected ',' or a closing bracket");
      return id;
    }
  }
  if (*jp == '"') { char* s = jstring(); id = jnew(J_STR); jn[id].str = s; return id; }
  if (!strncmp(jp, "true", 4)) { jp += 4; id = jnew(J_BOOL); jn[id].num = 1; return id; }
  if (!strncmp(jp, "false", 5)) { jp += 5; id = jnew(J_BOOL); return id; }
  if (!strncmp(jp, "null", 4)) { jp += 4; return jnew(J_NULL); }
  char* end;
  double d = strtod(jp, &end);
  if (end == jp) die("config.json: unexpected character");
  jp = end;
  id = jnew(J_NUM);
  jn[id].num = d;
  return id;
}
static int jget(int obj, const char* key) {
  if (obj < 0 || jn[obj].type != J_OBJ) return -1;
  for (int c = jn[obj].child; c >= 0; c = jn[c].next) if (!strcmp(jn[c].key, key)) return c;
  return -1;
}
static int jlen(int arr) {
  int n = 0;
  if (arr >= 0) for (int c = jn[arr].child; c >= 0; c = jn[c].next) n++;
  return n;
}
static int jat(int arr, int i) {
  int c = jn[arr].child;
  while (i-- > 0) c = jn[c].next;
  return c;
}
static const char* jstr_or(int obj, const char* key, const char* dflt) {
  int v = jget(obj, key);
  if (v < 0) return dflt;
  if (jn[v].type != J_STR) die("config.json: expected a string value");
  return jn[v].str;
}
static double jnum_or(int obj, const char* key, double dflt) {
  int v = jget(obj, key);
  if (v < 0) return dflt;
  if (jn[v].type != J_NUM) die("config.json: expected a number value");
  return jn[v].num;
}
static int jbool_or(int obj, const char* key, int dflt) {
  int v = jget(obj, key);
  if (v < 0) return dflt;
  if (jn[v].type != J_BOOL) die("config.json: expected a boolean value");
  return jn[v].num != 0;
}

static u64 hex_word(const char* s, int from, int to) {
  u64 w = 0;
  for (int i = from; i < to; i++) {
    char c = s[i];
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (v < 0) die("config.json: bad hex digit in hashKey/hashSeed");
    w = w << 4 | (u64)v;
  }
  return w;
}

// Configuration-time hashes (hash.ts hashBytes: MurmurHash3-style words, fmix64).
static u64 mix_word(u64 h, u64 w) {
  u64 k = w * 0x87c37b91114253d5ull;
  k = rotl(k, 31);
  k *= 0x4cf5ad432745937full;
  h ^= k;
  h = rotl(h, 27);
  return h * 5 + 0x52dce729;
}
static u64 fmix64(u64 h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}
static u64 hash_bytes(const u8* p, int len, u64 seed) {
  u64 h = seed ^ (u64)len;
  int i = 0;
  for (; i + 8 <= len; i += 8) h = mix_word(h, le64(p + i));
  u64 tail = 0;
  for (int s = 0; i < len; i++, s += 8) tail |= (u64)p[i] << s;
  return fmix64(mix_word(h, tail));
}

static const char** sort_names;
static int by_name(const void* a, const void* b) {
  int x = *(const int*)a, y = *(const int*)b;
  int c = strcmp(sort_names[x], sort_names[y]);
  return c ? c : x - y;
}

// Maglev (maglev.ts buildTable): permutation walks by turns, weights as in Envoy.
static void build_maglev(const char** names, const int* weights, u32 n_backends) {
  u32 m = cfg.m;
  int* members = malloc(sizeof(int) * n_backends);
  for (u32 i = 0; i < n_backends; i++) members[i] = (int)i;
  sort_names = names;
  qsort(members, n_backends, sizeof(int), by_name);
  u32 *next = malloc(4 * n_backends), *skip = malloc(4 * n_backends);
  u64 *weight = malloc(8 * n_backends), *target = malloc(8 * n_backends);
  int* member = malloc(sizeof(int) * n_backends);
  u32 n = 0;
  u64 max_weight = 0;
  for (u32 i = 0; i < n_backends; i++) {
    int b = members[i];
    const u8* name = (const u8*)names[b];
    int len = (int)strlen(names[b]);
    u32 offset = (u32)(hash_bytes(name, len, 0x6d61676c65763031ull) % m); // "maglev01"
    u32 sk = (u32)(hash_bytes(name, len, 0x6d61676c65763032ull) % (m - 1) + 1); // "maglev02"
    if (weights[b] <= 0) continue;
    member[n] = b;
    next[n] = offset;
    skip[n] = sk;
    weight[n] = (u64)weights[b];
    target[n] = 0;
    if ((u64)weights[b] > max_weight) max_weight = (u64)weights[b];
    n++;
  }
  cfg.table = malloc(2 * (size_t)m);
  memset(cfg.table, 0xff, 2 * (size_t)m);
  cfg.eligible = n;
  u32 filled = 0;
  for (u64 round = 0; n > 0 && filled < m; round++) {
    for (u32 k = 0; k < n; k++) {
      if (round * weight[k] < target[k]) continue;
      target[k] += max_weight;
      u32 c = next[k];
      while (cfg.table[c] != NONE) { c += skip[k]; if (c >= m) c -= m; }
      cfg.table[c] = (u16)member[k];
      c += skip[k];
      if (c >= m) c -= m;
      next[k] = c;
      if (++filled == m) break;
    }
  }
  free(members); free(next); free(skip); free(weight); free(target); free(member);
}

static int is_prime(u32 n) {
  if (n < 2) return 0;
  if (n % 2 == 0) return n == 2;
  for (u64 d = 3; d * d <= n; d += 2) if (n % d == 0) return 0;
  return 1;
}

/** Reads the bench's configuration; refuses what the reference does not implement. */
static void configure(char* text, u32 ingress) {
  jp = text;
  int root = jvalue();
  // The key (config.ts readKey): hashKey = two words, hashSeed = one for both; each
  // word is the hex value byte-swapped (the bytes as written, read little-endian).
  const char* key = jstr_or(root, "hashKey", NULL);
  int seed = jget(root, "hashSeed");
  if (key) {
    if (strlen(key) != 34 || key[0] != '0' || (key[1] != 'x' && key[1] != 'X')) die("config.json: bad hashKey");
    cfg.k0 = __builtin_bswap64(hex_word(key, 2, 18));
    cfg.k1 = __builtin_bswap64(hex_word(key, 18, 34));
  } else if (seed >= 0) {
    u64 v;
    if (jn[seed].type == J_NUM) v = (u64)jn[seed].num;
    else {
      const char* s = jn[seed].str;
      size_t n = strlen(s);
      if (n < 3 || n > 18 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X')) die("config.json: bad hashSeed");
      v = hex_word(s, 2, (int)n);
    }
    cfg.k0 = cfg.k1 = __builtin_bswap64(v);
  } else {
    cfg.k0 = cfg.k1 = 0x88796a5b4c3d2e1full; // consts.ts DEFAULT_HASH_K0/K1
  }
  cfg.capacity = (u32)jnum_or(jget(root, "flowTable"), "capacity", 65536);
  if (cfg.capacity < 16 || (cfg.capacity & (cfg.capacity - 1))) die("config.json: flowTable.capacity must be a power of two >= 16");

  int fes = jget(root, "frontends");
  cfg.frontends = (u32)jlen(fes);
  if (ingress >= cfg.frontends) die("the reference needs an ingress frontend (next-hop use)");

  int pools = jget(root, "backendPools");
  if (jlen(pools) != 1) die("the reference implements one backend pool");
  int pool = jat(pools, 0);
  cfg.m = (u32)jnum_or(pool, "maglevTableSize", 65537);
  if (!is_prime(cfg.m)) die("config.json: maglevTableSize must be prime");
  if (jget(pool, "drainPeriodSeconds") >= 0 && jnum_or(pool, "drainPeriodSeconds", 0) != 0) die("drain periods are not implemented");
  int bes = jget(pool, "backends");
  cfg.backends = (u32)jlen(bes);
  if (cfg.backends == 0 || cfg.backends > 16384) die("config.json: 1..16384 backends");
  const char** names = malloc(sizeof(char*) * cfg.backends);
  int* weights = malloc(sizeof(int) * cfg.backends);
  for (u32 i = 0; i < cfg.backends; i++) {
    int b = jat(bes, (int)i);
    names[i] = jstr_or(b, "name", NULL);
    if (!names[i]) die("config.json: a backend without a name");
    for (const char* c = names[i]; *c; c++) if ((u8)*c >= 0x80) die("non-ASCII backend names are not implemented (sort order)");
    weights[i] = (int)jnum_or(b, "weight", 1);
    if (strcmp(jstr_or(b, "adminState", "up"), "up")) die("draining backends are not implemented");
  }
  build_maglev(names, weights, cfg.backends);
  if (cfg.eligible == 0) die("a pool without healthy backends is not implemented");

  int rules = jget(root, "rules");
  if (jlen(rules) != 1) die("the reference implements one rule");
  int r = jat(rules, 0);
  const char* fe = jstr_or(r, "frontend", "");
  int fi = -1;
  for (int i = 0; i < (int)cfg.frontends; i++) if (!strcmp(jstr_or(jat(fes, i), "name", ""), fe)) fi = i;
  if (fi < 0) die("config.json: the rule's frontend is unknown");
  cfg.rule_frontend = (u32)fi;
  if (strcmp(jstr_or(r, "protocol", "all"), "all") || jnum_or(r, "frontendPort", 0) != 0 || jnum_or(r, "backendPort", 0) != 0)
    die("the reference implements an HA-ports rule only");
  if (!jbool_or(r, "floatingIp", 0)) die("the reference implements floatingIp rules only (no NAT)");
  if (strcmp(jstr_or(r, "loadDistribution", "default"), "default")) die("the reference implements loadDistribution default only");
  if (jbool_or(r, "enableTcpReset", 0)) die("enableTcpReset is not implemented");
  cfg.symmetric = jbool_or(r, "symmetric", 1);
  cfg.idle_minutes = (u32)jnum_or(r, "idleTimeoutMinutes", 4);
  if (cfg.idle_minutes < 4 || cfg.idle_minutes > 100) die("config.json: idleTimeoutMinutes 4..100");
  if (cfg.rule_frontend != ingress) die("the ingress frontend has no rule (no-match verdicts are not implemented)");
  free(names);
  free(weights);
}

// ---- State: buffers, counters, flow table, clock ----------------------------------------

static u8* arena;                                       // RX_ARENA_BYTES
static u32 descs[MAX_BATCH * 2] __attribute__((aligned(64)));
static u8 verdicts[MAX_BATCH * 16] __attribute__((aligned(64)));
static u8 tuples[MAX_BATCH * 40] __attribute__((aligned(64)));
static u64 counters[COUNTER_SLOTS];
static u64* backend_counters; // packets, bytes, new flows per backend
static u64 rule_counters[3];

static u8* ft;          // the flow table's region
static u32 bucket_mask;
static i32 flow_used;
static u8 rule_idle;    // the rule's idle timeout (minutes), as in the header's idle byte
static int insert_evicted;
static int huge_pages;

static i32 tick;
static double clock_base;
static int clock_set;

static void flows_allocate(u32 capacity) {
  size_t bytes = ((size_t)capacity * (BUCKET_BYTES / WAYS) + 0xffff) & ~(size_t)0xffff;
  ft = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ft == MAP_FAILED) die("cannot map the flow table");
  const char* hp = getenv("HAPORTS_REF_HUGEPAGES");
  huge_pages = hp && !strcmp(hp, "1") && madvise(ft, bytes, MADV_HUGEPAGE) == 0;
  bucket_mask = capacity / WAYS - 1;
  flow_used = 0;
}

/** flows.ts flowsClock: ms since the first batch's time (the rebase needs 24 days). */
static void flows_clock(double now) {
  if (!clock_set) { clock_base = now; clock_set = now - now == 0; }
  double t = now - clock_base;
  if (t >= 2147483647.0 - 86400000.0 && t - t == 0) die("the table clock's rebase is not implemented");
  tick = t > 0 ? (i32)t : 0;
}

INLINE u8* header_at(u32 b) { return ft + (size_t)b * BUCKET_BYTES; }
INLINE u8* header_of(u32 e) { return header_at((e - 1) >> 3); }
INLINE u32 way_of(u32 e) { return (e - 1) & 7; }
INLINE u8* line_of(u32 e) { return header_of(e) + HEADER_BYTES + way_of(e) * ENTRY_BYTES; }
INLINE u32 handle(u32 b, u32 way) { return (b << 3) + way + 1; }
INLINE u16* tags_of(u8* h) { return (u16*)h; }
INLINE u32* seen_of(u8* h) { return (u32*)(h + H_SEEN); }

INLINE u32 tag_of(u64 hash) { u32 t = (u32)(hash >> 48); return t ? t : 1; }
INLINE u32 first_bucket(u64 hash) { return (u32)hash & bucket_mask; }
INLINE u32 other_bucket(u32 b, u32 tag) {
  u32 x = (u32)(((u64)tag * 0x9e3779b97f4a7c15ull) >> 40) & bucket_mask;
  return b ^ (x ? x : 1);
}

INLINE i32 idle_of(const u8* h, u32 way) {
  u8 s = h[H_STATE + way];
  if (s & STATE_FRAGMENT) return FRAGMENT_TIMEOUT_MS;
  if (s & STATE_CLOSING) return TCP_CLOSE_TIMEOUT_MS;
  return (i32)h[H_IDLE + way] * 60000;
}
INLINE i32 age_of(u8* h, u32 way) { return (i32)((u32)tick - seen_of(h)[way]); }
INLINE int expired_way(u8* h, u32 way) { return age_of(h, way) > idle_of(h, way); }

/** Ways of header `h` whose tag is `tag`: bit 2·way of an SSE2 byte mask. */
INLINE u32 tag_mask(const u8* h, u32 tag) {
  __m128i t = _mm_load_si128((const __m128i*)h);
  return (u32)_mm_movemask_epi8(_mm_cmpeq_epi16(t, _mm_set1_epi16((short)tag))) & 0x5555u;
}

INLINE int key_equals(const u8* line, const u64* key) {
  const u64* l = (const u64*)line;
  return ((l[0] ^ key[0]) | (l[1] ^ key[1]) | (l[2] ^ key[2]) | (l[3] ^ key[3]) | (l[4] ^ key[4])) == 0;
}

INLINE u32 find_in(u32 b, const u64* key, u32 tag) {
  u8* h = header_at(b);
  for (u32 m = tag_mask(h, tag); m; m &= m - 1) {
    u32 way = (u32)__builtin_ctz(m) >> 1;
    if (key_equals(h + HEADER_BYTES + way * ENTRY_BYTES, key)) return handle(b, way);
  }
  return 0;
}

/** flows.ts flowFind: the entry of the key, live or expired; 0 when none. */
INLINE u32 flow_find(const u64* key, u64 hash) {
  u32 tag = tag_of(hash);
  u32 b1 = first_bucket(hash);
  u32 e = find_in(b1, key, tag);
  return e ? e : find_in(other_bucket(b1, tag), key, tag);
}

INLINE void touch_entry(u32 e, u8 add, int refresh) {
  u8* h = header_of(e);
  u32 way = way_of(e);
  h[H_STATE + way] |= add;
  if (refresh) seen_of(h)[way] = (u32)tick;
}

/** The entry's partner when the link is mutual (never, without NAT; checked as the core does). */
INLINE u32 partner_of(u32 e) {
  u32 p;
  memcpy(&p, line_of(e) + E_LINK, 4);
  if (LIKELY(p == 0) || p > cfg.capacity) return 0;
  u32 back;
  memcpy(&back, line_of(p) + E_LINK, 4);
  if (!(header_of(p)[H_STATE + way_of(p)] & STATE_USED) || back != e) return 0;
  return p;
}

INLINE void touch_flow(u32 e, u8 add) {
  touch_entry(e, add, 1);
  u32 p = partner_of(e);
  if (p) touch_entry(p, add & (STATE_ESTABLISHED | STATE_CLOSING), 1);
}

// ---- Insertion (flows.ts insertAt) --------------------------------------------------------

static struct { u32 free_, expired, pending, pending_seen, oldest, oldest_seen; } cand;

INLINE void scan_bucket(u32 b) {
  u8* h = header_at(b);
  for (u32 way = 0; way < WAYS; way++) {
    if (tags_of(h)[way] == 0) { if (!cand.free_) cand.free_ = handle(b, way); continue; }
    if (expired_way(h, way)) { if (!cand.expired) cand.expired = handle(b, way); continue; }
    u32 seen = seen_of(h)[way];
    if (!(h[H_STATE + way] & STATE_ESTABLISHED)) {
      if (!cand.pending || seen < cand.pending_seen) { cand.pending = handle(b, way); cand.pending_seen = seen; }
    } else if (!cand.oldest || seen < cand.oldest_seen) {
      cand.oldest = handle(b, way);
      cand.oldest_seen = seen;
    }
  }
}

static int room_in(u32 b) {
  u8* h = header_at(b);
  for (u32 way = 0; way < WAYS; way++) if (tags_of(h)[way] == 0 || expired_way(h, way)) return (int)way;
  return -1;
}

static void move_entry(u32 from, u32 to) {
  u8 *hf = header_of(from), *ht = header_of(to);
  u32 wf = way_of(from), wt = way_of(to);
  if (tags_of(ht)[wt] != 0) flow_used--; // an expired entry gives way
  u32 partner = partner_of(from);
  tags_of(ht)[wt] = tags_of(hf)[wf];
  ht[H_STATE + wt] = hf[H_STATE + wf];
  ht[H_IDLE + wt] = hf[H_IDLE + wf];
  seen_of(ht)[wt] = seen_of(hf)[wf];
  memcpy(line_of(to), line_of(from), ENTRY_BYTES);
  if (partner) memcpy(line_of(partner) + E_LINK, &to, 4);
  tags_of(hf)[wf] = 0;
  hf[H_STATE + wf] = 0;
  counters[C_FLOW_MOVES]++;
}

/** flows.ts makeRoom: moves an entry of b1 or b2 (two levels deep); the freed handle or 0. */
COLD u32 make_room(u32 b1, u32 b2) {
  for (int i = 0; i < 2; i++) {
    u32 b = i == 0 ? b1 : b2;
    u8* h = header_at(b);
    for (u32 way = 0; way < WAYS; way++) {
      u32 a = other_bucket(b, tags_of(h)[way]);
      int room = room_in(a);
      if (room >= 0) { move_entry(handle(b, way), handle(a, (u32)room)); return handle(b, way); }
    }
  }
  for (int i = 0; i < 2; i++) {
    u32 b = i == 0 ? b1 : b2;
    u8* h = header_at(b);
    for (u32 way = 0; way < WAYS; way++) {
      u32 a = other_bucket(b, tags_of(h)[way]);
      u8* ha = header_at(a);
      for (u32 way2 = 0; way2 < WAYS; way2++) {
        u32 a2 = other_bucket(a, tags_of(ha)[way2]);
        if (a2 == b1 || a2 == b2) continue;
        int room = room_in(a2);
        if (room >= 0) {
          move_entry(handle(a, way2), handle(a2, (u32)room));
          move_entry(handle(b, way), handle(a, way2));
          return handle(b, way);
        }
      }
    }
  }
  return 0;
}

INLINE void write_entry(u32 e, const u64* key, u32 tag, u32 rule, u32 backend, u8 state) {
  u8* h = header_of(e);
  u32 way = way_of(e);
  u8* line = line_of(e);
  memcpy(line, key, 40);
  u64 tail = (u64)(u16)rule | (u64)(u16)backend << 16; // rule, backend, link 0
  memcpy(line + E_RULE, &tail, 8);
  tags_of(h)[way] = (u16)tag;
  h[H_STATE + way] = state | STATE_USED;
  h[H_IDLE + way] = rule_idle;
  seen_of(h)[way] = (u32)tick;
}

/**
 * flows.ts flowInsert for a key that flowFind did not find live (`found`: its entry when
 * it is there expired or under another rule — insertAt would find that entry again).
 */
INLINE u32 flow_insert(const u64* key, u64 hash, u32 rule, u32 backend, u8 state, u32 found) {
  u32 tag = tag_of(hash);
  u32 b1 = first_bucket(hash);
  insert_evicted = 0;
  u32 e = found;
  if (!e) {
    u32 b2 = other_bucket(b1, tag);
    cand.free_ = cand.expired = cand.pending = cand.oldest = 0;
    scan_bucket(b1);
    if (!cand.free_) scan_bucket(b2);
    if (cand.free_) {
      e = cand.free_;
      flow_used++;
    } else if (cand.expired) {
      e = cand.expired;
    } else {
      if (flow_used < (i32)cfg.capacity - (i32)(cfg.capacity >> 5)) e = make_room(b1, b2);
      if (e) flow_used++;
      else if (cand.pending) { e = cand.pending; insert_evicted = 1; }
      else if (cand.oldest && (state & STATE_ESTABLISHED)) { e = cand.oldest; insert_evicted = 1; }
      else return 0;
    }
  }
  write_entry(e, key, tag, rule, backend, state);
  return e;
}

// ---- SipHash-1-3 of a flow key (hash.ts keyHash) -------------------------------------------

#define SIPROUND                                                      \
  do {                                                                \
    v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);         \
    v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;                            \
    v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;                            \
    v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);         \
  } while (0)
#define SIPBLOCK(x) do { u64 m_ = (x); v3 ^= m_; SIPROUND; v0 ^= m_; } while (0)

INLINE u64 key_hash(const u64* w, int v6) {
  u64 v0 = cfg.k0 ^ 0x736f6d6570736575ull;
  u64 v1 = cfg.k1 ^ 0x646f72616e646f6dull;
  u64 v2 = cfg.k0 ^ 0x6c7967656e657261ull;
  u64 v3 = cfg.k1 ^ 0x7465646279746573ull;
  if (!v6) {
    // 16 bytes: the two IPv4 addresses, then w4.
    SIPBLOCK(w[0] | w[2] << 32);
    SIPBLOCK(w[4]);
    SIPBLOCK((u64)16 << 56);
  } else {
    SIPBLOCK(w[0]);
    SIPBLOCK(w[1]);
    SIPBLOCK(w[2]);
    SIPBLOCK(w[3]);
    SIPBLOCK(w[4]);
    SIPBLOCK((u64)40 << 56);
  }
  v2 ^= 0xff;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  return v0 ^ v1 ^ v2 ^ v3;
}

// ---- The packet path -------------------------------------------------------------------------

/** What pass 1 leaves for passes 2 to 4 about one packet. */
typedef struct {
  u64 w[5];     // the flow key (hash.ts flowKey)
  u64 hash;
  u32 len;
  u16 flags;    // FLAG_IPV6
  u8 reason;    // REASON_NONE, or the drop reason
  u8 tcp_flags;
  u8 swapped;
  u8 pad[7];
} rec_t;

_Static_assert(sizeof(rec_t) == 64, "one packet record per cache line");

static rec_t recs[REF_GROUP] __attribute__((aligned(64)));

COLD void unsupported(u32 i, const char* what) {
  fprintf(stderr, "reference: packet %u of the batch: %s (the reference implements only the bench's raw IPv4/IPv6 TCP packets)\n", i, what);
  exit(2);
}

/** The tuple record of a packet whose parse stopped before any IP header. */
INLINE void tuple_none(u8* t) { memset(t + 32, 0, 8); }

/** Pass 1: descriptor, parse (packet.ts), tuple record, flow key and hash. */
INLINE void classify(u32 i, rec_t* r) {
  const u32 off = descs[2 * i], len = descs[2 * i + 1];
  u8* t = tuples + (size_t)i * 40;
  r->len = len;
  r->flags = 0;
  r->tcp_flags = 0;
  if (UNLIKELY(off > RX_ARENA_BYTES || len > RX_ARENA_BYTES - off)) { r->reason = REASON_BAD_DESCRIPTOR; tuple_none(t); return; }
  const u8* p = arena + off;
  if (UNLIKELY(len < 1)) { r->reason = REASON_TRUNCATED; tuple_none(t); return; }
  const u8 b0 = p[0];
  u64 w0, w1, w2, w3;
  u32 family, l4, avail;
  if ((b0 >> 4) != 6) {
    // IPv4 (packet.ts parseIPv4).
    if (UNLIKELY(len < 20)) { r->reason = (b0 >> 4) != 4 ? REASON_BAD_IP_VERSION : REASON_TRUNCATED; tuple_none(t); return; }
    if (UNLIKELY((b0 >> 4) != 4)) { r->reason = REASON_BAD_IP_VERSION; tuple_none(t); return; }
    const u32 ihl = (u32)(b0 & 15) << 2;
    const u32 total = be16(p + 2);
    if (UNLIKELY(ihl < 20 || total < ihl)) { r->reason = REASON_BAD_IP_HEADER; tuple_none(t); return; }
    if (UNLIKELY(total > len)) { r->reason = REASON_TRUNCATED; tuple_none(t); return; }
    if (UNLIKELY(be16(p + 6) & 0x3fff)) unsupported(i, "an IPv4 fragment");
    if (UNLIKELY(p[9] != PROTO_TCP)) unsupported(i, "not TCP");
    family = 4;
    w0 = le32(p + 12);
    w2 = le32(p + 16);
    w1 = w3 = 0;
    u64 a[4] = { w0, 0, w2, 0 };
    memcpy(t, a, 32);
    l4 = ihl;
    avail = total - ihl;
  } else {
    // IPv6 (packet.ts parseIPv6, walkIPv6).
    if (UNLIKELY(len < 40)) { r->reason = REASON_TRUNCATED; tuple_none(t); return; }
    const u32 total = 40 + (u32)be16(p + 4);
    if (UNLIKELY(total > len)) { r->reason = REASON_TRUNCATED; tuple_none(t); return; }
    const u8 next = p[6];
    if (UNLIKELY(next == 0 || next == 43 || next == 60 || next == 44 || next == 51)) unsupported(i, "IPv6 extension headers");
    if (UNLIKELY(next != PROTO_TCP)) unsupported(i, "not TCP");
    family = 6;
    r->flags = FLAG_IPV6;
    w0 = le64(p + 8);
    w1 = le64(p + 16);
    w2 = le64(p + 24);
    w3 = le64(p + 32);
    memcpy(t, p + 8, 32);
    l4 = 40;
    avail = total - 40;
  }
  // TCP (packet.ts parseL4).
  u8 reason = REASON_NONE;
  if (UNLIKELY(avail < 20)) reason = REASON_TRUNCATED_L4;
  else {
    const u32 data_offset = (u32)(p[l4 + 12] >> 4) << 2;
    if (UNLIKELY(data_offset < 20)) reason = REASON_BAD_L4_HEADER;
    else if (UNLIKELY(data_offset > avail)) reason = REASON_TRUNCATED_L4;
  }
  if (UNLIKELY(reason != REASON_NONE)) {
    // The IP header was parsed: the tuple has addresses, protocol and family, no ports.
    const u64 rest = (u64)PROTO_TCP << 32 | (u64)family << 40;
    memcpy(t + 32, &rest, 8);
    r->reason = reason;
    return;
  }
  r->reason = REASON_NONE;
  u64 sport = be16(p + l4), dport = be16(p + l4 + 2);
  r->tcp_flags = p[l4 + 13];
  const u64 rest = sport | dport << 16 | (u64)PROTO_TCP << 32 | (u64)family << 40 | (u64)1 << 48;
  memcpy(t + 32, &rest, 8);
  // The flow key (hash.ts flowKey), in canonical order when symmetric.
  int swap = cfg.symmetric && (w0 > w2 || (w0 == w2 && (w1 > w3 || (w1 == w3 && sport > dport))));
  if (swap) {
    u64 x = w0; w0 = w2; w2 = x;
    x = w1; w1 = w3; w3 = x;
    x = sport; sport = dport; dport = x;
  }
  r->swapped = (u8)swap;
  r->w[0] = w0;
  r->w[1] = w1;
  r->w[2] = w2;
  r->w[3] = w3;
  r->w[4] = sport | dport << 16 | (u64)PROTO_TCP << 32 | (u64)family << 40;
  r->hash = key_hash(r->w, family == 6);
}

/** Pass 3: the entry a tag in the first bucket's header points at, or the second bucket's header. */
INLINE void prefetch_entry(const rec_t* r) {
  const u32 tag = tag_of(r->hash);
  const u32 b1 = first_bucket(r->hash);
  const u8* h = header_at(b1);
  const u32 m = tag_mask(h, tag);
  if (m) {
    const u8* line = h + HEADER_BYTES + ((u32)__builtin_ctz(m) >> 1) * ENTRY_BYTES;
    __builtin_prefetch(line, 0, 3);
    __builtin_prefetch(line + ENTRY_BYTES - 1, 0, 3);
  } else {
    __builtin_prefetch(header_at(other_bucket(b1, tag)), 1, 3);
  }
}

INLINE void verdict(u8* v, u8 action, u8 reason, u32 flags, u32 rule, u32 backend, u32 frontend, u64 hash) {
  const u64 a = (u64)action | (u64)reason << 8 | (u64)(u16)flags << 16 | (u64)(u16)rule << 32 | (u64)(u16)backend << 48;
  const u64 b = (u64)(u16)frontend | (hash & 0xffffffffull) << 32; // l3 offset 0 (raw IP)
  memcpy(v, &a, 8);
  memcpy(v + 8, &b, 8);
}

COLD void drop_parse(u8* v, const rec_t* r) {
  verdict(v, ACTION_DROP, r->reason, r->reason == REASON_BAD_DESCRIPTOR ? 0 : r->flags, NONE, NONE, NONE, 0);
  counters[C_DROPPED]++;
  counters[C_DROP_REASON_BASE + r->reason]++;
}

/** Pass 4: the decisions of datapath.ts processPacket for this packet (a flow key of the rule). */
INLINE int decide(const rec_t* r, u8* v, u32 frontend) {
  if (UNLIKELY(r->reason != REASON_NONE)) { drop_parse(v, r); return 0; }
  const u32 rule = 0;
  u32 flags = r->flags | FLAG_NEXT_HOP;
  const u8 tf = r->tcp_flags;
  const u8 closing = (tf & (TCP_FIN | TCP_RST)) ? STATE_CLOSING : 0;
  const int bare_syn = (tf & (TCP_SYN | TCP_ACK)) == TCP_SYN;
  const u64 hash = r->hash;
  int new_flow = 0;
  u32 b;
  const u32 found = flow_find(r->w, hash);
  u32 e = found;
  if (e && expired_way(header_of(e), way_of(e))) e = 0; // a new flow: its insertion reuses the entry
  u16 erule = 0;
  if (e) memcpy(&erule, line_of(e) + E_RULE, 2);
  if (LIKELY(e != 0) && erule == rule) {
    u8* h = header_of(e);
    const u32 way = way_of(e);
    u16 eb;
    memcpy(&eb, line_of(e) + E_BACKEND, 2);
    b = eb;
    if (UNLIKELY(bare_syn && (h[H_STATE + way] & STATE_CLOSING))) {
      // A bare SYN on a closing flow opens a new connection on a reused 5-tuple: picked
      // afresh (every backend is up here, so the other half of the core's test is false).
      b = cfg.table[((hash >> 32) * cfg.m) >> 32];
      u8 state = (r->swapped ? STATE_SWAPPED : 0) | STATE_SYN | closing;
      seen_of(h)[way] = (u32)tick;
      h[H_STATE + way] = state | STATE_USED;
      u64 tail = (u64)(u16)rule | (u64)(u16)b << 16;
      memcpy(line_of(e) + E_RULE, &tail, 8);
      flags |= FLAG_FLOW_NEW;
      new_flow = 1;
      counters[C_FLOW_NEW]++;
    } else {
      flags |= FLAG_FLOW_HIT;
      counters[C_FLOW_HITS]++;
      // Admission: established entries are refreshed; an unverified one becomes
      // established when this packet proves it real, else keeps its first packet's time.
      const u8 s = h[H_STATE + way];
      if (s & STATE_ESTABLISHED) {
        touch_flow(e, closing);
      } else if ((s & STATE_SYN) ? !bare_syn : (r->swapped != ((s & STATE_SWAPPED) != 0) || age_of(h, way) >= FLOW_ESTABLISH_AFTER_MS)) {
        touch_flow(e, closing | STATE_ESTABLISHED);
        counters[C_FLOW_ESTABLISHED]++;
      } else {
        h[H_STATE + way] = s | closing;
      }
    }
    if (h[H_STATE + way] & STATE_ESTABLISHED) flags |= FLAG_ESTABLISHED;
  } else {
    // Pick: Maglev (lookup: the hash's high 32 bits scaled to [0, M)), then track.
    b = cfg.table[((hash >> 32) * cfg.m) >> 32];
    const u8 state = (r->swapped ? STATE_SWAPPED : 0) | (bare_syn ? STATE_SYN : 0) | closing;
    const u32 ne = flow_insert(r->w, hash, rule, b, state, found);
    if (!ne) {
      flags |= FLAG_UNTRACKED;
      counters[C_UNTRACKED]++;
    } else {
      flags |= FLAG_FLOW_NEW;
      new_flow = 1;
      counters[C_FLOW_NEW]++;
      if (insert_evicted) { flags |= FLAG_EVICTED; counters[C_EVICTIONS]++; }
    }
  }
  u64* bc = backend_counters + 3 * (size_t)b;
  bc[0]++;
  bc[1] += r->len;
  bc[2] += (u64)new_flow;
  rule_counters[0]++;
  rule_counters[1] += r->len;
  rule_counters[2] += (u64)new_flow;
  verdict(v, ACTION_FORWARD, REASON_NONE, flags, rule, b, frontend, hash);
  return 1;
}

/** datapath.ts processBatch: descriptors [0, n) at time `now` (ms), next hop of `ingress`. */
static u32 process_batch(u32 n, double now, u32 ingress) {
  flows_clock(now);
  u32 forwarded = 0;
  u64 bytes = 0, sink = 0;
  for (u32 s = 0; s < n; s += REF_GROUP) {
    const u32 e = n - s < REF_GROUP ? n : s + REF_GROUP;
    for (u32 i = s; i < e; i++) {
      classify(i, &recs[i - s]);
      bytes += recs[i - s].len;
    }
    // Pass 2: loads, not prefetches, of the header lines (see the top of this file).
    for (u32 i = s; i < e; i++) {
      if (recs[i - s].reason == REASON_NONE) sink ^= *(const u64*)header_at(first_bucket(recs[i - s].hash));
    }
    for (u32 i = s; i < e; i++) {
      if (recs[i - s].reason == REASON_NONE) prefetch_entry(&recs[i - s]);
    }
    for (u32 i = s; i < e; i++) forwarded += (u32)decide(&recs[i - s], verdicts + (size_t)i * 16, ingress);
  }
  __asm__ volatile("" : : "r"(sink)); // the loads of pass 2 stay
  counters[C_PACKETS] += n;
  counters[C_BYTES] += bytes;
  counters[C_FORWARDED] += forwarded;
  counters[C_BATCHES]++;
  return forwarded;
}

// ---- The driver (the protocol and streams of bench/native/driver.c) --------------------------

static u8 *pop, *arena_img;
static u32 *hit_desc, *mix_desc, *pop_desc;
static size_t arena_len;

static void run(stream_t* st, u32 B, u64 packets) {
  for (u64 done = 0; done < packets; done += B) {
    if (st->mix && st->pos % cs.mut_every == 0) mutate(st, arena);
    memcpy(descs, st->desc + 2 * (size_t)st->pos, 8 * (size_t)B);
    process_batch(B, cs.now, cs.ingress);
    st->pos += B;
    if (st->pos == st->period) st->pos = 0;
  }
}

/** The CRC of the tuple records too (verify only): the TypeScript port is held to those. */
static int tuple_crc_on;
static uint32_t tuple_crc;

/** Reads the case, configures, populates at pop_now and runs the check phase at now: the CRC. */
static uint32_t set_up(const char* dir, double* populate_ms) {
  read_spec(dir);
  if (cs.link != 0) die("the reference implements raw IP batches only (link 0)");
  size_t len;
  char* config = (char*)read_file(dir, "config.json", &len);
  configure(config, cs.ingress);
  free(config);
  backend_counters = calloc(3 * (size_t)cfg.backends, sizeof(u64));
  rule_idle = (u8)cfg.idle_minutes;
  flows_allocate(cfg.capacity);
  arena = aligned_alloc(64, RX_ARENA_BYTES);
  memset(arena, 0, RX_ARENA_BYTES);
  pop = read_file(dir, "pop.bin", &len);
  arena_img = read_file(dir, "arena.bin", &arena_len);
  hit_desc = (u32*)read_file(dir, "hit.desc", &len);
  mix_desc = (u32*)read_file(dir, "mix.desc", &len);
  pop_desc = (u32*)read_file(dir, "pop.desc", &len);
  if ((size_t)cs.chunk * cs.L > RX_ARENA_BYTES || arena_len > RX_ARENA_BYTES) die("the case does not fit the rx arena");

  uint32_t crc = 0;
  uint64_t t0 = wall_ns();
  for (u32 s = 0; s < cs.F; s += cs.chunk) {
    const u32 n = cs.F - s < cs.chunk ? cs.F - s : cs.chunk;
    memcpy(arena, pop + (size_t)s * cs.L, (size_t)n * cs.L);
    for (u32 b = 0; b < n; b += 1024) {
      const u32 cnt = n - b < 1024 ? n - b : 1024;
      memcpy(descs, pop_desc + 2 * (size_t)b, 8 * (size_t)cnt);
      process_batch(cnt, cs.pop_now, cs.ingress);
      crc = crc32_update(crc, verdicts, 16 * (size_t)cnt);
      if (tuple_crc_on) tuple_crc = crc32_update(tuple_crc, tuples, 40 * (size_t)cnt);
    }
  }
  *populate_ms = (double)(wall_ns() - t0) / 1e6;
  memcpy(arena, arena_img, arena_len);
  hit_st = (stream_t){ hit_desc, cs.C, 0, 0, 0 };
  mix_st = (stream_t){ mix_desc, cs.period, 0, 0, 1 };
  for (u32 done = 0; done < cs.check; done += 1024) {
    run(&mix_st, 1024, 1024);
    crc = crc32_update(crc, verdicts, 16 * 1024);
    if (tuple_crc_on) tuple_crc = crc32_update(tuple_crc, tuples, 40 * 1024);
  }
  return crc;
}

static void print_counters(void);
static void end(void) {
  printf("{\"tracked\":%d,", flow_used);
  print_counters();
  printf("}");
}

static void print_counters(void) {
  printf("\"counters\":{\"packets\":%llu,\"forwarded\":%llu,\"dropped\":%llu,\"flowHits\":%llu,\"flowNew\":%llu,"
         "\"untracked\":%llu,\"evictions\":%llu,\"moves\":%llu,\"established\":%llu}",
         (unsigned long long)counters[C_PACKETS], (unsigned long long)counters[C_FORWARDED],
         (unsigned long long)counters[C_DROPPED], (unsigned long long)counters[C_FLOW_HITS],
         (unsigned long long)counters[C_FLOW_NEW], (unsigned long long)counters[C_UNTRACKED],
         (unsigned long long)counters[C_EVICTIONS], (unsigned long long)counters[C_FLOW_MOVES],
         (unsigned long long)counters[C_FLOW_ESTABLISHED]);
}

int main(int argc, char** argv) {
  crc_init();
  if (argc == 4 && !strcmp(argv[1], "verify")) {
    double populate_ms;
    tuple_crc_on = 1;
    uint32_t crc = set_up(argv[2], &populate_ms);
    const u64 packets = strtoull(argv[3], NULL, 10) / 1024 * 1024;
    for (u64 done = 0; done < packets; done += 1024) {
      run(&mix_st, 1024, 1024);
      crc = crc32_update(crc, verdicts, 16 * 1024);
    }
    printf("{\"crc\":\"%08x\",\"tupleCrc\":\"%08x\",\"tracked\":%d,", crc, tuple_crc, flow_used);
    print_counters();
    printf("}\n");
    return 0;
  }
  if (argc != 9 || strcmp(argv[1], "serve")) {
    fprintf(stderr, "usage: reference serve CASE_DIR ITER MIN_WARM MAX_WARM WINDOW TOL VARIANTS\n"
                    "       reference verify CASE_DIR PACKETS\n");
    return 2;
  }
  const char* dir = argv[2];
  const u64 iter = strtoull(argv[3], NULL, 10);
  const int min_warm = atoi(argv[4]), max_warm = atoi(argv[5]), window = atoi(argv[6]);
  const double tol = atof(argv[7]);
  char* variants = argv[8];

  double populate_ms;
  const uint32_t crc = set_up(dir, &populate_ms);

  // Warm every variant up (caches and branch predictors), then serve the RUN requests.
  printf("READY {\"crc\":\"%08x\",\"populateMs\":%.3f,\"tracked\":%d,\"capacity\":%u,\"group\":%d,\"hugePages\":%s,",
         crc, populate_ms, flow_used, cfg.capacity, REF_GROUP, huge_pages ? "true" : "false");
  serve_warm_up(run, variants, MAX_BATCH, iter, min_warm, max_warm, window, tol);
  printf("}\n");
  fflush(stdout);
  serve_requests(run, MAX_BATCH, end);
  return 0;
}
