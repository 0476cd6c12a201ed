"""The core under wasmtime: build/haports.wasm in the wasmtime runtime (PyPI `wasmtime`
wheel, which bundles it), driven like the Node host drives it in V8 (bench/lib/stream.mjs,
bench/lib/harness.mjs): same files, same streams, same warm-up rule.

Python calls processBatch once per batch of 1024 packets. The call goes through the
wheel's C API binding `wasmtime_func_call_unchecked` with a preallocated argument array
(`Core.fast`): the friendly `Func.__call__` rebuilds the function's type on every call
and costs tens of microseconds (`checkedCallNs` reports it), which would add tens of ns
per packet even at batch 1024. What remains (ctypes, the descriptor copy, the loop) is
measured on its own (`callOverheadNs`: the same loop calling processBatch(0), which
processes nothing) and is amortised over the 1024 packets of a batch.

    python3 driver.py serve WASM CASE_DIR ITER MIN_WARM MAX_WARM WINDOW TOL VARIANTS
        sets up, warms every variant (hit/1024, …) up, prints `READY {json}`, then
        answers `RUN <variant> <packets> <rewarm>` with one timed iteration and `END`
        (the protocol of bench/lib/worker.mjs: bench/run.mjs samples all engines of a
        case interleaved)
    python3 driver.py maglev WASM CONFIG.json REPS
        prints {"samples": [ns per setBackendHealth call, ...]}
"""

import array
import ctypes
import json
import os
import statistics
import sys
import time
import zlib

import wasmtime
from wasmtime import _bindings as B


def load(wasm_path):
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    module = wasmtime.Module.from_file(engine, wasm_path)

    def abort(msg, file, line, col):
        raise RuntimeError(f"haports core aborted at line {line} col {col}")

    i32 = wasmtime.ValType.i32()
    abort_fn = wasmtime.Func(store, wasmtime.FuncType([i32, i32, i32, i32], []), abort)
    instance = wasmtime.Instance(store, module, [abort_fn])
    return store, instance.exports(store)


class Core:
    def __init__(self, wasm_path):
        self.store, ex = load(wasm_path)
        self.ex = ex
        self.memory = ex["memory"]
        self.f = {name: ex[name] for name in (
            "configBufferPtr", "configure", "errorBufferPtr", "errorLength", "rxArenaPtr",
            "descriptorsPtr", "verdictsPtr", "processBatch", "flowTableUsed", "setBackendHealth",
            "maxBatch")}

    def call(self, name, *args):
        return self.f[name](self.store, *args)

    def fast(self, name, *kinds):
        """A caller of export `name` through wasmtime_func_call_unchecked: `kinds` are the
        parameter types ('i32' / 'f64'); returns fn(*args) -> the first result (i32)."""
        raw = (B.wasmtime_val_raw * max(1, len(kinds)))()
        call = B._wasmtime_func_call_unchecked
        ctx = self.store._context()
        func = ctypes.byref(self.f[name]._func)
        trap = ctypes.POINTER(B.wasm_trap_t)()
        trap_ref = ctypes.byref(trap)
        n = len(kinds)
        slots = [(raw[i], k) for i, k in enumerate(kinds)]

        def fn(*args):
            for (slot, k), a in zip(slots, args):
                setattr(slot, k, a)
            err = call(ctx, func, raw, n, trap_ref)
            if err or trap:
                raise RuntimeError(f"{name} trapped or failed")
            return raw[0].i32
        return fn

    def fast_process_batch(self, now, ingress, link):
        """processBatch(count, now, ingress, link) → forwarded, specialised for the loop."""
        raw = (B.wasmtime_val_raw * 4)()
        a0, a1, a2, a3 = raw[0], raw[1], raw[2], raw[3]
        call = B._wasmtime_func_call_unchecked
        ctx = self.store._context()
        func = ctypes.byref(self.f["processBatch"]._func)
        trap = ctypes.POINTER(B.wasm_trap_t)()
        trap_ref = ctypes.byref(trap)

        def pb(count):
            a0.i32 = count
            a1.f64 = now
            a2.i32 = ingress
            a3.i32 = link
            if call(ctx, func, raw, 4, trap_ref) or trap:
                raise RuntimeError("processBatch trapped or failed")
            return a0.i32
        return pb

    def base(self):
        return ctypes.cast(self.memory.data_ptr(self.store), ctypes.c_void_p).value

    def size(self):
        return self.memory.data_len(self.store)

    def configure(self, text):
        data = text if isinstance(text, bytes) else text.encode()
        ctypes.memmove(self.base() + self.call("configBufferPtr"), data, len(data))
        n = self.call("configure", len(data))
        if n != 0:
            at = self.call("errorBufferPtr")
            msg = ctypes.string_at(self.base() + at, self.call("errorLength")).decode()
            raise RuntimeError(f"configuration rejected ({n}): {msg}")


def read_spec(case_dir):
    spec = {}
    with open(os.path.join(case_dir, "case.txt")) as f:
        for line in f:
            k, v = line.split()
            spec[k] = float(v)
    return spec


def read_bytes(case_dir, name):
    with open(os.path.join(case_dir, name), "rb") as f:
        return f.read()


def median(xs):
    return statistics.median(xs)


def serve(argv):
    wasm, case_dir = argv[0], argv[1]
    it, min_warm, max_warm, window = (int(x) for x in argv[2:6])
    tol = float(argv[6])
    variants = argv[7].split(",")
    spec = read_spec(case_dir)
    L, F, C, R = (int(spec[k]) for k in ("L", "F", "C", "R"))
    chunk, mut_every, mut_off = int(spec["chunk"]), int(spec["mut_every"]), int(spec["mut_off"])
    check = int(spec["check"])
    now, ingress, link = spec["now"], int(spec["ingress"]), int(spec["link"])

    core = Core(wasm)
    with open(os.path.join(case_dir, "config.json"), "rb") as f:
        core.configure(f.read())
    mem_configured = core.size()
    base = core.base()
    arena = base + core.call("rxArenaPtr")
    dptr = base + core.call("descriptorsPtr")
    vptr = base + core.call("verdictsPtr")
    pb = core.fast_process_batch(now, ingress, link)
    pb_pop = core.fast_process_batch(spec.get("pop_now", now), ingress, link)

    pop = read_bytes(case_dir, "pop.bin")
    arena_img = read_bytes(case_dir, "arena.bin")
    # Descriptor streams in C buffers: one memmove per batch into wasm memory.
    keep = []

    def cbuf(name):
        b = ctypes.create_string_buffer(read_bytes(case_dir, name))
        keep.append(b)
        return ctypes.addressof(b)

    hit_desc, mix_desc, pop_desc = cbuf("hit.desc"), cbuf("mix.desc"), cbuf("pop.desc")

    # The new-flow slots' source addresses (newSource of bench/lib/corpus.mjs), through
    # strided views over wasm memory: the low half is the slot number, written once; each
    # generation rewrites only the high half, one strided store from C.
    nwords = core.size() // 4
    words = memoryview((ctypes.c_uint32 * nwords).from_address(base)).cast("B").cast("I")
    halves = memoryview((ctypes.c_uint16 * (nwords * 2)).from_address(base)).cast("B").cast("H")
    first_word = (core.call("rxArenaPtr") + C * L + mut_off) // 4
    step = L // 4

    streams = {
        "hit": {"desc": hit_desc, "period": C, "pos": 0, "gen": 0, "mix": False},
        "mix": {"desc": mix_desc, "period": int(spec["period"]), "pos": 0, "gen": 0, "mix": True},
    }

    def mutate(st):
        hi = 0x8000 | (st["gen"] & 0x7FFF)
        halves[2 * first_word + 1:2 * (first_word + R * step):2 * step] = array.array("H", [hi]) * R
        st["gen"] += 1

    memmove = ctypes.memmove

    def run(name, B, packets):
        st = streams[name]
        desc, period, pos, mix = st["desc"], st["period"], st["pos"], st["mix"]
        nbytes = 8 * B
        for _ in range(packets // B):
            if mix and pos % mut_every == 0:
                mutate(st)
            memmove(dptr, desc + 8 * pos, nbytes)
            pb(B)
            pos += B
            if pos == period:
                pos = 0
        st["pos"] = pos

    # Populate, then the check phase; CRC-32 over the verdict records.
    crc = 0
    t0 = time.perf_counter()
    for s in range(0, F, chunk):
        n = min(chunk, F - s)
        memmove(arena, pop[s * L:(s + n) * L], n * L)
        for b in range(0, n, 1024):
            cnt = min(1024, n - b)
            memmove(dptr, pop_desc + 8 * b, 8 * cnt)
            pb_pop(cnt)
            crc = zlib.crc32(ctypes.string_at(vptr, 16 * cnt), crc)
    populate_ms = (time.perf_counter() - t0) * 1000
    memmove(arena, arena_img, len(arena_img))
    words[first_word:first_word + R * step:step] = array.array("I", range(R))
    for _ in range(0, check, 1024):
        run("mix", 1024, 1024)
        crc = zlib.crc32(ctypes.string_at(vptr, 16 * 1024), crc)
    tracked = core.call("flowTableUsed")

    # The host's own cost per batch: the same loop body around processBatch(0).
    per_call = []
    for _ in range(7):
        c0 = time.process_time_ns()
        for _ in range(20000):
            memmove(dptr, hit_desc, 8 * 1024)
            pb(0)
        per_call.append((time.process_time_ns() - c0) / 20000)
    # For comparison: the bindings' checked Func.__call__.
    checked = []
    for _ in range(3):
        c0 = time.process_time_ns()
        for _ in range(2000):
            core.f["processBatch"](core.store, 0, now, ingress, link)
        checked.append((time.process_time_ns() - c0) / 2000)

    # Warm every variant up (bench/lib/harness.mjs warmUp).
    warm = {}
    for key in variants:
        w, b = key.split("/")
        B = int(b)
        packets = -(-it // B) * B
        times = []
        stable = False
        while len(times) < max_warm:
            c0 = time.process_time_ns()
            run(w, B, packets)
            times.append((time.process_time_ns() - c0) / packets)
            if len(times) >= max(min_warm, 2 * window):
                last = median(times[-window:])
                prev = median(times[-2 * window:-window])
                if abs(last - prev) / prev <= tol:
                    stable = True
                    break
        warm[key] = {"warmIters": len(times), "stable": stable, "firstIterNs": times[0], "warmLastNs": times[-1]}
        print(f"    wasmtime {os.path.basename(case_dir)} {key}: warm {len(times)} iterations, "
              f"{times[-1]:.1f} ns/pkt", file=sys.stderr)
    print("READY " + json.dumps({
        "crc": f"{crc:08x}", "populateMs": populate_ms, "tracked": tracked,
        "memConfigured": mem_configured, "warm": warm,
        "callOverheadNs": median(per_call), "checkedCallNs": median(checked),
    }), flush=True)

    # Serve: RUN <workload>/<batch> <packets> <rewarm> → {"cpu":..,"wall":..}; END.
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "END":
            print("END " + json.dumps({"memAfter": core.size()}), flush=True)
            break
        if parts[0] != "RUN":
            continue
        w, b = parts[1].split("/")
        B = int(b)
        rewarm = -(-int(parts[3]) // B) * B
        packets = -(-int(parts[2]) // B) * B
        if rewarm:
            run(w, B, rewarm)
        c0, t0 = time.process_time_ns(), time.perf_counter_ns()
        run(w, B, packets)
        t1, c1 = time.perf_counter_ns(), time.process_time_ns()
        print(json.dumps({"cpu": (c1 - c0) / packets, "wall": (t1 - t0) / packets}), flush=True)


def maglev(argv):
    wasm, config_path, reps = argv[0], argv[1], int(argv[2])
    core = Core(wasm)
    with open(config_path, "rb") as f:
        core.configure(f.read())
    samples = []
    for i in range(-3, reps):
        t0 = time.process_time_ns()
        core.call("setBackendHealth", 0, 1 if i & 1 else 0)
        t = time.process_time_ns() - t0
        if i >= 0:
            samples.append(t)
    core.call("setBackendHealth", 0, 1)
    print(json.dumps({"samples": samples}))


if __name__ == "__main__":
    {"serve": serve, "maglev": maglev}[sys.argv[1]](sys.argv[2:])
