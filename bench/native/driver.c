// The native ceiling's host: build/haports.wasm translated to C by wasm2c (wabt) and
// compiled with gcc -O3, driven exactly as the Node host drives the module in V8 (see
// bench/lib/stream.mjs, bench/lib/harness.mjs): same files, same streams, same batches,
// same warm-up rule. Linear-memory bounds are checked by guard pages (wasm2c's default
// on 64-bit Linux, WASM_RT_MEMCHECK_SIGNAL_HANDLER), as in V8 and wasmtime.
//
//   driver serve CASE_DIR ITER MIN_WARM MAX_WARM WINDOW TOL VARIANTS(hit/1024,mix/64,…)
//     sets up, warms every variant up, prints `READY {json}`, then answers
//     `RUN <variant> <packets> <rewarm>` with one timed iteration and `END` (the protocol
//     of bench/lib/worker.mjs, so that bench/run.mjs samples all engines interleaved)
//   driver maglev CONFIG.json REPS
//     prints {"samples":[ns per setBackendHealth call, …]}

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "haports.h"

static Z_haports_instance_t inst;

void Z_envZ_abort(struct Z_env_instance_t* env, u32 msg, u32 file, u32 line, u32 col) {
  (void)env; (void)msg; (void)file;
  fprintf(stderr, "haports core aborted at line %u col %u\n", line, col);
  exit(3);
}

static u8* mem(void) { return Z_haportsZ_memory(&inst)->data; }
static u32 mem_size(void) { return Z_haportsZ_memory(&inst)->size; }

static uint64_t clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
// Wall clock, and process CPU time (the primary measure, as in harness.mjs).
static uint64_t now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
static uint64_t cpu_ns(void) { return clock_ns(CLOCK_PROCESS_CPUTIME_ID); }

static u8* read_file(const char* dir, const char* name, size_t* len) {
  char path[4096];
  if (name) snprintf(path, sizeof path, "%s/%s", dir, name); else snprintf(path, sizeof path, "%s", dir);
  FILE* f = fopen(path, "rb");
  if (!f) { fprintf(stderr, "cannot open %s\n", path); exit(2); }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  u8* buf = malloc((size_t)n + 1);
  if (fread(buf, 1, (size_t)n, f) != (size_t)n) { fprintf(stderr, "short read %s\n", path); exit(2); }
  fclose(f);
  buf[n] = 0;
  *len = (size_t)n;
  return buf;
}

static void configure_from(const u8* text, size_t len) {
  memcpy(mem() + Z_haportsZ_configBufferPtr(&inst), text, len);
  u32 n = Z_haportsZ_configure(&inst, (u32)len);
  if (n != 0) {
    fprintf(stderr, "configuration rejected (%u): %.*s\n", n, (int)Z_haportsZ_errorLength(&inst),
            (const char*)mem() + Z_haportsZ_errorBufferPtr(&inst));
    exit(2);
  }
}

// ---- CRC-32 (IEEE), chained over verdict records, as zlib.crc32 ---------------------------

static uint32_t crc_table[256];
static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    crc_table[i] = c;
  }
}
static uint32_t crc32_update(uint32_t crc, const u8* p, size_t n) {
  crc = ~crc;
  while (n--) crc = crc_table[(crc ^ *p++) & 255] ^ (crc >> 8);
  return ~crc;
}

// ---- The case ------------------------------------------------------------------------------

static struct {
  u32 L, F, C, R, period, mut_off, mut_every, chunk, ingress, link, check;
  double now, pop_now;
} cs;

static u8 *pop, *arena_img;
static u32 *hit_desc, *mix_desc, *pop_desc;
static size_t arena_len;
static u32 arena_ptr, desc_ptr, verd_ptr;

typedef struct { const u32* desc; u32 period, pos, gen; int mix; } stream_t;
static stream_t hit_st, mix_st;

static void read_spec(const char* dir) {
  size_t len;
  char* text = (char*)read_file(dir, "case.txt", &len);
  char key[64];
  double v;
  int off = 0, n = 0;
  while (sscanf(text + off, "%63s %lf%n", key, &v, &n) == 2) {
    off += n;
    if (!strcmp(key, "L")) cs.L = (u32)v;
    else if (!strcmp(key, "F")) cs.F = (u32)v;
    else if (!strcmp(key, "C")) cs.C = (u32)v;
    else if (!strcmp(key, "R")) cs.R = (u32)v;
    else if (!strcmp(key, "period")) cs.period = (u32)v;
    else if (!strcmp(key, "mut_off")) cs.mut_off = (u32)v;
    else if (!strcmp(key, "mut_every")) cs.mut_every = (u32)v;
    else if (!strcmp(key, "chunk")) cs.chunk = (u32)v;
    else if (!strcmp(key, "now")) cs.now = v;
    else if (!strcmp(key, "pop_now")) cs.pop_now = v;
    else if (!strcmp(key, "ingress")) cs.ingress = (u32)v;
    else if (!strcmp(key, "link")) cs.link = (u32)v;
    else if (!strcmp(key, "check")) cs.check = (u32)v;
  }
  free(text);
}

// newSource(gen, r) of bench/lib/corpus.mjs.
static void mutate(stream_t* st) {
  u32 hi = (0x8000u | (st->gen & 0x7fffu)) << 16;
  u8* p = mem() + arena_ptr + cs.C * cs.L + cs.mut_off;
  for (u32 r = 0; r < cs.R; r++) {
    u32 v = hi | r;
    memcpy(p + (size_t)r * cs.L, &v, 4);
  }
  st->gen++;
}

static inline u32 process(u32 n) {
  return Z_haportsZ_processBatch(&inst, n, cs.now, cs.ingress, cs.link);
}

static void run(stream_t* st, u32 B, u64 packets) {
  u8* m = mem();
  for (u64 done = 0; done < packets; done += B) {
    if (st->mix && st->pos % cs.mut_every == 0) mutate(st);
    memcpy(m + desc_ptr, st->desc + 2 * (size_t)st->pos, 8 * (size_t)B);
    process(B);
    st->pos += B;
    if (st->pos == st->period) st->pos = 0;
  }
}

// ---- Harness (bench/lib/harness.mjs) -------------------------------------------------------

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}
static double median_of(const double* xs, int n) {
  double* s = malloc(sizeof(double) * (size_t)n);
  memcpy(s, xs, sizeof(double) * (size_t)n);
  qsort(s, (size_t)n, sizeof(double), cmp_double);
  double i = (n - 1) * 0.5;
  int lo = (int)i, hi = lo + (i > lo);
  double m = s[lo] + (s[hi] - s[lo]) * (i - lo);
  free(s);
  return m;
}


int main(int argc, char** argv) {
  if (argc < 2) { fprintf(stderr, "usage: driver stream|maglev ...\n"); return 2; }
  crc_init();
  wasm_rt_init();
  Z_haports_init_module();
  Z_haports_instantiate(&inst, NULL);

  if (!strcmp(argv[1], "maglev")) {
    // Time setBackendHealth(0, down) and (0, up): each rebuilds the pool's two tables.
    size_t len;
    u8* cfg = read_file(argv[2], NULL, &len);
    int reps = atoi(argv[3]);
    configure_from(cfg, len);
    printf("{\"samples\":[");
    for (int i = -3; i < reps; i++) {
      uint64_t t0 = cpu_ns();
      Z_haportsZ_setBackendHealth(&inst, 0, (u32)(i & 1 ? 1 : 0));
      uint64_t t = cpu_ns() - t0;
      if (i >= 0) printf("%s%.0f", i ? "," : "", (double)t);
    }
    Z_haportsZ_setBackendHealth(&inst, 0, 1);
    printf("]}\n");
    return 0;
  }

  // serve CASE_DIR ITER MIN_WARM MAX_WARM WINDOW TOL VARIANTS(hit/1024,mix/64,...)
  const char* dir = argv[2];
  u64 iter = strtoull(argv[3], NULL, 10);
  int min_warm = atoi(argv[4]), max_warm = atoi(argv[5]), window = atoi(argv[6]);
  double tol = atof(argv[7]);
  char* variants = argv[8];

  read_spec(dir);
  size_t len;
  u8* cfg = read_file(dir, "config.json", &len);
  configure_from(cfg, len);
  u32 mem_configured = mem_size();
  pop = read_file(dir, "pop.bin", &len);
  arena_img = read_file(dir, "arena.bin", &arena_len);
  hit_desc = (u32*)read_file(dir, "hit.desc", &len);
  mix_desc = (u32*)read_file(dir, "mix.desc", &len);
  pop_desc = (u32*)read_file(dir, "pop.desc", &len);
  arena_ptr = Z_haportsZ_rxArenaPtr(&inst);
  desc_ptr = Z_haportsZ_descriptorsPtr(&inst);
  verd_ptr = Z_haportsZ_verdictsPtr(&inst);

  // Populate, then the check phase (mix stream from its start), CRC over verdicts.
  uint32_t crc = 0;
  uint64_t t0 = now_ns();
  for (u32 s = 0; s < cs.F; s += cs.chunk) {
    u32 n = cs.F - s < cs.chunk ? cs.F - s : cs.chunk;
    memcpy(mem() + arena_ptr, pop + (size_t)s * cs.L, (size_t)n * cs.L);
    for (u32 b = 0; b < n; b += 1024) {
      u32 cnt = n - b < 1024 ? n - b : 1024;
      memcpy(mem() + desc_ptr, pop_desc + 2 * (size_t)b, 8 * (size_t)cnt);
      Z_haportsZ_processBatch(&inst, cnt, cs.pop_now, cs.ingress, cs.link);
      crc = crc32_update(crc, mem() + verd_ptr, 16 * (size_t)cnt);
    }
  }
  double populate_ms = (double)(now_ns() - t0) / 1e6;
  memcpy(mem() + arena_ptr, arena_img, arena_len);
  hit_st = (stream_t){ hit_desc, cs.C, 0, 0, 0 };
  mix_st = (stream_t){ mix_desc, cs.period, 0, 0, 1 };
  for (u32 done = 0; done < cs.check; done += 1024) {
    run(&mix_st, 1024, 1024);
    crc = crc32_update(crc, mem() + verd_ptr, 16 * 1024);
  }

  // Warm every variant up (bench/lib/harness.mjs warmUp).
  printf("READY {\"crc\":\"%08x\",\"populateMs\":%.3f,\"tracked\":%u,\"memConfigured\":%u,\"warm\":{",
         crc, populate_ms, Z_haportsZ_flowTableUsed(&inst), mem_configured);
  double* warm = malloc(sizeof(double) * (size_t)max_warm);
  int first = 1;
  for (char* v = strtok(variants, ","); v; v = strtok(NULL, ",")) {
    stream_t* st = v[0] == 'h' ? &hit_st : &mix_st;
    u32 B = (u32)atoi(strchr(v, '/') + 1);
    u64 packets = (iter + B - 1) / B * B;
    int n = 0, stable = 0;
    while (n < max_warm) {
      uint64_t a = cpu_ns();
      run(st, B, packets);
      warm[n++] = (double)(cpu_ns() - a) / (double)packets;
      if (n >= min_warm && n >= 2 * window) {
        double last = median_of(warm + n - window, window);
        double prev = median_of(warm + n - 2 * window, window);
        if ((last > prev ? last - prev : prev - last) / prev <= tol) { stable = 1; break; }
      }
    }
    printf("%s\"%s\":{\"warmIters\":%d,\"stable\":%s,\"firstIterNs\":%.3f,\"warmLastNs\":%.3f}",
           first ? "" : ",", v, n, stable ? "true" : "false", warm[0], warm[n - 1]);
    first = 0;
  }
  printf("}}\n");
  fflush(stdout);

  // Serve: RUN <workload>/<batch> <packets> <rewarm> → {"cpu":..,"wall":..}; END.
  char line[256];
  while (fgets(line, sizeof line, stdin)) {
    char key[64];
    unsigned long long n = 0, re = 0;
    if (!strncmp(line, "END", 3)) {
      printf("END {\"memAfter\":%u}\n", mem_size());
      fflush(stdout);
      break;
    }
    if (sscanf(line, "RUN %63s %llu %llu", key, &n, &re) != 3) continue;
    stream_t* st = key[0] == 'h' ? &hit_st : &mix_st;
    u32 B = (u32)atoi(strchr(key, '/') + 1);
    u64 rewarm = (re + B - 1) / B * B;
    u64 packets = (n + B - 1) / B * B;
    if (rewarm) run(st, B, rewarm);
    uint64_t c = cpu_ns(), a = now_ns();
    run(st, B, packets);
    double wall = (double)(now_ns() - a) / (double)packets;
    double cpu = (double)(cpu_ns() - c) / (double)packets;
    printf("{\"cpu\":%.3f,\"wall\":%.3f}\n", cpu, wall);
    fflush(stdout);
  }
  return 0;
}
