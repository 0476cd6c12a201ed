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

#include "haports.h"
#include "serve.h"

static Z_haports_instance_t inst;

void Z_envZ_abort(struct Z_env_instance_t* env, u32 msg, u32 file, u32 line, u32 col) {
  (void)env; (void)msg; (void)file;
  fprintf(stderr, "haports core aborted at line %u col %u\n", line, col);
  exit(3);
}

static u8* mem(void) { return Z_haportsZ_memory(&inst)->data; }

static u32 mem_size(void) { return Z_haportsZ_memory(&inst)->size; }

static void configure_from(const u8* text, size_t len) {
  memcpy(mem() + Z_haportsZ_configBufferPtr(&inst), text, len);
  u32 n = Z_haportsZ_configure(&inst, (u32)len);
  if (n != 0) {
    fprintf(stderr, "configuration rejected (%u): %.*s\n", n, (int)Z_haportsZ_errorLength(&inst),
            (const char*)mem() + Z_haportsZ_errorBufferPtr(&inst));
    exit(2);
  }
}

static u8 *pop, *arena_img;
static u32 *hit_desc, *mix_desc, *pop_desc;
static size_t arena_len;
static u32 arena_ptr, desc_ptr, verd_ptr;

static inline u32 process(u32 n) {
  return Z_haportsZ_processBatch(&inst, n, cs.now, cs.ingress, cs.link);
}

static void run(stream_t* st, u32 B, u64 packets) {
  u8* m = mem();
  for (u64 done = 0; done < packets; done += B) {
    if (st->mix && st->pos % cs.mut_every == 0) mutate(st, m + arena_ptr);
    memcpy(m + desc_ptr, st->desc + 2 * (size_t)st->pos, 8 * (size_t)B);
    process(B);
    st->pos += B;
    if (st->pos == st->period) st->pos = 0;
  }
}

static void end(void) { printf("{\"memAfter\":%u}", mem_size()); }

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
  uint64_t t0 = wall_ns();
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
  double populate_ms = (double)(wall_ns() - t0) / 1e6;
  memcpy(mem() + arena_ptr, arena_img, arena_len);
  hit_st = (stream_t){ hit_desc, cs.C, 0, 0, 0 };
  mix_st = (stream_t){ mix_desc, cs.period, 0, 0, 1 };
  for (u32 done = 0; done < cs.check; done += 1024) {
    run(&mix_st, 1024, 1024);
    crc = crc32_update(crc, mem() + verd_ptr, 16 * 1024);
  }

  // Warm every variant up, then serve the RUN requests.
  printf("READY {\"crc\":\"%08x\",\"populateMs\":%.3f,\"tracked\":%u,\"memConfigured\":%u,",
         crc, populate_ms, Z_haportsZ_flowTableUsed(&inst), mem_configured);
  serve_warm_up(run, variants, Z_haportsZ_maxBatch(&inst), iter, min_warm, max_warm, window, tol);
  printf("}\n");
  fflush(stdout);
  serve_requests(run, Z_haportsZ_maxBatch(&inst), end);
  return 0;
}
