// The native side of the conformance test: the core translated to C by wasm2c (wabt)
// and compiled with gcc, running the plan test_conformance.py wrote in binary form, and
// dumping what the core produced in the format of v8_dump.mjs (without the parts that
// come from a binding: the JSON of verdict()/tuple()/resets() and of counters()).
//
// usage: native_dump PLAN.bin OUT.bin
//
// PLAN.bin: "HPLN", u32 runs; per run u32 steps; per step u8 op, then
//   1 configure  u32 length, the configuration text
//   2 health     i32 backend, i32 up (0/1)
//   3 admin      i32 backend, i32 state (0 up, 2 draining)
//   4 batch      i32 ingress, i32 link, f64 now, u32 n, n × u32 length, the packets
//   5 maglev
//   6 state
// OUT.bin: per step u32 run, u32 step, u32 length, then the bytes v8_dump.mjs writes.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haports.h"

static Z_haports_instance_t inst;

void Z_envZ_abort(struct Z_env_instance_t* env, u32 msg, u32 file, u32 line, u32 col) {
  (void)env; (void)msg; (void)file;
  fprintf(stderr, "haports core aborted at line %u col %u\n", line, col);
  exit(3);
}

static u8* mem(void) { return Z_haportsZ_memory(&inst)->data; }

static const u8* plan;
static size_t plan_len, plan_pos;
static void need(size_t n) {
  if (plan_pos + n > plan_len) { fprintf(stderr, "plan truncated at %zu\n", plan_pos); exit(2); }
}
static u32 rd32(void) { need(4); u32 v; memcpy(&v, plan + plan_pos, 4); plan_pos += 4; return v; }
static double rdf64(void) { need(8); double v; memcpy(&v, plan + plan_pos, 8); plan_pos += 8; return v; }
static u8 rd8(void) { need(1); return plan[plan_pos++]; }

// The output of one step is built here, then written with its header.
static u8* out;
static size_t out_len, out_cap;
static void put(const void* p, size_t n) {
  if (out_len + n > out_cap) {
    while (out_len + n > out_cap) out_cap = out_cap ? out_cap * 2 : 1 << 20;
    out = realloc(out, out_cap);
  }
  memcpy(out + out_len, p, n);
  out_len += n;
}
static void put32(u32 v) { put(&v, 4); }
static void putmem(u32 ptr, size_t n) { put(mem() + ptr, n); }

static FILE* dump;
static void emit(u32 run, u32 step) {
  u32 h[3] = { run, step, (u32)out_len };
  fwrite(h, 4, 3, dump);
  fwrite(out, 1, out_len, dump);
  out_len = 0;
}

int main(int argc, char** argv) {
  if (argc != 3) { fprintf(stderr, "usage: native_dump PLAN.bin OUT.bin\n"); return 2; }
  FILE* f = fopen(argv[1], "rb");
  if (!f) { perror(argv[1]); return 2; }
  fseek(f, 0, SEEK_END);
  plan_len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  u8* buf = malloc(plan_len);
  if (fread(buf, 1, plan_len, f) != plan_len) { fprintf(stderr, "short read\n"); return 2; }
  fclose(f);
  plan = buf;
  if (plan_len < 8 || memcmp(plan, "HPLN", 4) != 0) { fprintf(stderr, "not a plan\n"); return 2; }
  plan_pos = 4;
  dump = fopen(argv[2], "wb");
  if (!dump) { perror(argv[2]); return 2; }

  wasm_rt_init();
  Z_haports_init_module();
  u32 runs = rd32();
  for (u32 r = 0; r < runs; r++) {
    Z_haports_instantiate(&inst, NULL);
    u32 steps = rd32();
    for (u32 k = 0; k < steps; k++) {
      u8 op = rd8();
      if (op == 1) {
        u32 len = rd32();
        need(len);
        memcpy(mem() + Z_haportsZ_configBufferPtr(&inst), plan + plan_pos, len);
        plan_pos += len;
        u32 n = Z_haportsZ_configure(&inst, len);
        if (n == 0) {
          put32(0);
        } else {
          // As the bindings report it: the number of non-empty lines, then the lines.
          u32 elen = Z_haportsZ_errorLength(&inst);
          const char* e = (const char*)mem() + Z_haportsZ_errorBufferPtr(&inst);
          u32 lines = 0;
          for (u32 i = 0, start = 0; i <= elen; i++) {
            if (i == elen || e[i] == '\n') { if (i > start) lines++; start = i + 1; }
          }
          put32(lines);
          put(e, elen);
        }
      } else if (op == 2 || op == 3) {
        int32_t b = (int32_t)rd32();
        int32_t v = (int32_t)rd32();
        int32_t res = op == 2 ? (int32_t)Z_haportsZ_setBackendHealth(&inst, (u32)b, (u32)v)
                              : (int32_t)Z_haportsZ_setBackendAdmin(&inst, (u32)b, (u32)v);
        put32(res < 0 ? (u32)-1 : 0);
      } else if (op == 4) {
        u32 ingress = rd32(), link = rd32();
        double now = rdf64();
        u32 n = rd32();
        need((size_t)n * 4);
        const u8* lens = plan + plan_pos;
        plan_pos += (size_t)n * 4;
        u32 arena = Z_haportsZ_rxArenaPtr(&inst), desc = Z_haportsZ_descriptorsPtr(&inst);
        u32 off = 0;
        for (u32 i = 0; i < n; i++) {
          u32 len;
          memcpy(&len, lens + 4 * i, 4);
          need(len);
          memcpy(mem() + arena + off, plan + plan_pos, len);
          plan_pos += len;
          u32 d[2] = { off, len };
          memcpy(mem() + desc + 8 * i, d, 8);
          off += len;
        }
        int32_t fwd = (int32_t)Z_haportsZ_processBatch(&inst, n, now, ingress, link);
        put32((u32)fwd);
        putmem(Z_haportsZ_verdictsPtr(&inst), (size_t)n * 16);
        putmem(Z_haportsZ_tuplesPtr(&inst), (size_t)n * 40);
        putmem(desc, (size_t)n * 8);
        for (u32 i = 0; i < n; i++) {
          u32 d[2];
          memcpy(d, mem() + desc + 8 * i, 8);
          putmem(arena + d[0], d[1]);
        }
        u32 verdicts = Z_haportsZ_verdictsPtr(&inst), resets = Z_haportsZ_resetsPtr(&inst);
        u32 count = 0;
        for (u32 i = 0; i < n; i++) count += mem()[verdicts + 16 * i] == 4; // ACTION_RESET
        put32(count);
        for (u32 i = 0; i < n; i++) {
          if (mem()[verdicts + 16 * i] != 4) continue;
          put32(i);
          putmem(resets + 256 * i, 256);
        }
      } else if (op == 5) {
        u32 pools = Z_haportsZ_poolCount(&inst);
        for (u32 p = 0; p < pools; p++) {
          u32 m = Z_haportsZ_maglevTableSize(&inst, p);
          put32(m);
          putmem(Z_haportsZ_maglevTablePtr(&inst, p), (size_t)m * 2);
        }
      } else if (op == 6) {
        u32 slots = Z_haportsZ_counterSlots(&inst);
        u32 nb = Z_haportsZ_backendCount(&inst), nr = Z_haportsZ_ruleCount(&inst);
        put32(slots);
        putmem(Z_haportsZ_countersPtr(&inst), (size_t)slots * 8);
        put32(nb);
        putmem(Z_haportsZ_backendCountersPtr(&inst), (size_t)nb * 24);
        put32(nr);
        putmem(Z_haportsZ_ruleCountersPtr(&inst), (size_t)nr * 24);
        put32(Z_haportsZ_flowTableUsed(&inst));
        put32(Z_haportsZ_flowTableCapacity(&inst));
      } else {
        fprintf(stderr, "run %u step %u: unknown op %u\n", r, k, op);
        return 2;
      }
      emit(r, k);
    }
    Z_haports_free(&inst);
  }
  fclose(dump);
  return 0;
}
