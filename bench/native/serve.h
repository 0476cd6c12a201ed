// What the benchmark's C drivers share (bench/native/driver.c, the core through wasm2c;
// bench/reference/reference.c, the C reference): reading a case (bench/lib/corpus.mjs),
// the CRC-32 of verdict records, the descriptor streams with their new-flow rewrite,
// and the serve protocol of bench/lib/worker.mjs — warm-up (bench/lib/harness.mjs),
// then `RUN <variant> <packets> <rewarm>` timed in process CPU time, and `END`.
//
// A driver includes this file, defines its own `run(stream_t*, B, packets)` (descriptors
// of the stream into its batch, process, advance), and calls serve_warm_up() and
// serve_requests().
#ifndef HAPORTS_BENCH_SERVE_H
#define HAPORTS_BENCH_SERVE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
// Wall clock, and process CPU time (the primary measure, as in harness.mjs).
static uint64_t wall_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
static uint64_t cpu_ns(void) { return clock_ns(CLOCK_PROCESS_CPUTIME_ID); }

/** The file `name` in `dir` (or the path `dir` when name is NULL), NUL-terminated. */
static uint8_t* read_file(const char* dir, const char* name, size_t* len) {
  char path[4096];
  if (name) snprintf(path, sizeof path, "%s/%s", dir, name); else snprintf(path, sizeof path, "%s", dir);
  FILE* f = fopen(path, "rb");
  if (!f) { fprintf(stderr, "cannot open %s\n", path); exit(2); }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t* buf = malloc((size_t)n + 1);
  if (fread(buf, 1, (size_t)n, f) != (size_t)n) { fprintf(stderr, "short read %s\n", path); exit(2); }
  fclose(f);
  buf[n] = 0;
  *len = (size_t)n;
  return buf;
}

// ---- CRC-32 (IEEE, reflected), chained over verdict records as zlib.crc32 is ----------------

static uint32_t crc_table[256];
static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    crc_table[i] = c;
  }
}
static uint32_t crc32_update(uint32_t crc, const uint8_t* p, size_t n) {
  crc = ~crc;
  while (n--) crc = crc_table[(crc ^ *p++) & 255] ^ (crc >> 8);
  return ~crc;
}

// ---- The case (case.txt of bench/lib/corpus.mjs) ---------------------------------------------

static struct {
  uint32_t L, F, C, R, period, mut_off, mut_every, chunk, ingress, link, check;
  double now, pop_now;
} cs;

static void read_spec(const char* dir) {
  size_t len;
  char* text = (char*)read_file(dir, "case.txt", &len);
  char key[64];
  double v;
  int off = 0, n = 0;
  cs.ingress = 0xffff;
  while (sscanf(text + off, "%63s %lf%n", key, &v, &n) == 2) {
    off += n;
    const uint32_t u = (uint32_t)v;
    if (!strcmp(key, "L")) cs.L = u;
    else if (!strcmp(key, "F")) cs.F = u;
    else if (!strcmp(key, "C")) cs.C = u;
    else if (!strcmp(key, "R")) cs.R = u;
    else if (!strcmp(key, "period")) cs.period = u;
    else if (!strcmp(key, "mut_off")) cs.mut_off = u;
    else if (!strcmp(key, "mut_every")) cs.mut_every = u;
    else if (!strcmp(key, "chunk")) cs.chunk = u;
    else if (!strcmp(key, "now")) cs.now = v;
    else if (!strcmp(key, "pop_now")) cs.pop_now = v;
    else if (!strcmp(key, "ingress")) cs.ingress = u;
    else if (!strcmp(key, "link")) cs.link = u;
    else if (!strcmp(key, "check")) cs.check = u;
  }
  free(text);
}

// ---- Streams ----------------------------------------------------------------------------------

typedef struct { const uint32_t* desc; uint32_t period, pos, gen; int mix; } stream_t;
static stream_t hit_st, mix_st;

/** newSource(gen, r) of bench/lib/corpus.mjs into every new-flow slot of the arena at `arena`. */
static void mutate(stream_t* st, uint8_t* arena) {
  const uint32_t hi = (0x8000u | (st->gen & 0x7fffu)) << 16;
  uint8_t* p = arena + (size_t)cs.C * cs.L + cs.mut_off;
  for (uint32_t r = 0; r < cs.R; r++) {
    const uint32_t v = hi | r;
    memcpy(p + (size_t)r * cs.L, &v, 4);
  }
  st->gen++;
}

// ---- The serve protocol -------------------------------------------------------------------------

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

typedef void (*run_fn)(stream_t* st, uint32_t batch, uint64_t packets);

/** The stream and batch size of a variant "<hit|mix>/<batch>"; exits on a batch outside [1, max]. */
static stream_t* variant(const char* v, uint32_t max, uint32_t* batch) {
  const char* slash = strchr(v, '/');
  *batch = slash ? (uint32_t)atoi(slash + 1) : 0;
  if (*batch < 1 || *batch > max) { fprintf(stderr, "variant %s: batch size out of range\n", v); exit(2); }
  return v[0] == 'h' ? &hit_st : &mix_st;
}

/**
 * Warms every variant of the comma-separated list `variants` up (bench/lib/harness.mjs
 * warmUp) and prints the "warm" member of the READY line: the caller has printed
 * `READY {...,` before and prints `}` after.
 */
static void serve_warm_up(run_fn run, char* variants, uint32_t max_batch, uint64_t iter, int min_warm,
                          int max_warm, int window, double tol) {
  printf("\"warm\":{");
  double* warm = malloc(sizeof(double) * (size_t)(max_warm > 0 ? max_warm : 1));
  int first = 1;
  for (char* v = strtok(variants, ","); v; v = strtok(NULL, ",")) {
    uint32_t B;
    stream_t* st = variant(v, max_batch, &B);
    const uint64_t packets = (iter + B - 1) / B * B;
    int n = 0, stable = 0;
    while (n < max_warm) {
      const uint64_t a = cpu_ns();
      run(st, B, packets);
      warm[n++] = (double)(cpu_ns() - a) / (double)packets;
      if (n >= min_warm && n >= 2 * window) {
        const double last = median_of(warm + n - window, window);
        const double prev = median_of(warm + n - 2 * window, window);
        if ((last > prev ? last - prev : prev - last) / prev <= tol) { stable = 1; break; }
      }
    }
    printf("%s\"%s\":{\"warmIters\":%d,\"stable\":%s,\"firstIterNs\":%.3f,\"warmLastNs\":%.3f}",
           first ? "" : ",", v, n, stable ? "true" : "false", n ? warm[0] : 0.0, n ? warm[n - 1] : 0.0);
    first = 0;
  }
  printf("}");
  free(warm);
}

/**
 * Answers `RUN <variant> <packets> <rewarm>` with {"cpu":…,"wall":…} ns per packet until
 * `END`, then prints "END " and lets `end` print the JSON object that follows.
 */
static void serve_requests(run_fn run, uint32_t max_batch, void (*end)(void)) {
  char line[256];
  while (fgets(line, sizeof line, stdin)) {
    char key[64];
    unsigned long long n = 0, re = 0;
    if (!strncmp(line, "END", 3)) {
      printf("END ");
      end();
      printf("\n");
      fflush(stdout);
      break;
    }
    if (sscanf(line, "RUN %63s %llu %llu", key, &n, &re) != 3) continue;
    uint32_t B;
    stream_t* st = variant(key, max_batch, &B);
    const uint64_t rewarm = (re + B - 1) / B * B;
    const uint64_t packets = (n + B - 1) / B * B;
    if (rewarm) run(st, B, rewarm);
    const uint64_t c = cpu_ns(), a = wall_ns();
    run(st, B, packets);
    const double wall = (double)(wall_ns() - a) / (double)packets;
    const double cpu = (double)(cpu_ns() - c) / (double)packets;
    printf("{\"cpu\":%.3f,\"wall\":%.3f}\n", cpu, wall);
    fflush(stdout);
  }
}

#endif
