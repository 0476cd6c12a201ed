#!/usr/bin/env python3
"""Cross-engine conformance: the same core module under V8 (Node), under wasmtime and
translated to C (wasm2c + gcc, the native build) must produce byte-identical results.

Usage:  python3 test/conformance/test_conformance.py [--keep DIR] [--verbose]
        (needs `npm run build` first; scripts/test.sh runs it)

One corpus: every fixture of test/fixtures/packets.json, the captures of
test/diff/make_corpus.py, examples/sample.pcap (addressed, and as next-hop traffic of
fe-v4), and generated random traffic (traffic.py, fixed seeds: IPv4/IPv6, TCP/UDP/SCTP/
ICMP/errors/GRE/ESP/OSPF, fragments, extension headers, malformed packets, repeated flows
and idle expiry; one stream batched as `haports replay` batches, one in random batch
sizes with random ingress frontends). It becomes a plan of steps — configure, health and
admin changes, batches (the same packets, `now` and ingress for both engines), Maglev
dumps, counter dumps — run under several configurations:

  diff     test/diff/config.json (floating IP)
  nat      floatingIp false, plus exact rules with port mapping (NAT rewriting)
  srcip    loadDistribution sourceIP, symmetric false
  down     backend nva-1 marked down before the run; health and drain changes mid-stream
  + a reconfiguration run (memory grows, flows remapped, a rejected configuration), and
  + Maglev tables for pools of 10, 100 and 1000 backends at M = 65537 and 655373.

test/conformance/v8_dump.mjs runs the plan through build/host/core.mjs and dumps, per
step, the raw records; this script runs it through host/wasmtime/haports_wasmtime,
and test/conformance/native_dump.c (built here with wasm2c and gcc from Debian's wabt)
runs it natively; both are compared with V8: verdict streams, tuple records, packets
after processing, TCP reset records (enableTcpReset is on in the nat and srcip
configurations, and the traffic's clock jumps past the idle timeout now and then), the
binding-level verdict()/tuple()/resets() values (V8 and wasmtime), Maglev tables,
counters, configuration results. It also
compares the two `replay` command lines on the captures (verdict lines, summaries and
--out pcaps) and checks env.abort handling. Each check prints `ok` or `FAIL` with the
first difference; the last line is `N passed, M failed`. Exit 0 when nothing failed.
"""
import copy
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "host", "wasmtime"))
sys.path.insert(0, HERE)

import haports_wasmtime as hw  # noqa: E402
from haports_wasmtime import cli as hw_cli  # noqa: E402
import traffic  # noqa: E402

WASM = os.path.join(ROOT, "build", "haports.wasm")
NONE = hw.NONE
VERBOSE = "--verbose" in sys.argv

passed = 0
failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}" + (f" ({detail})" if detail and VERBOSE else ""), flush=True)
    else:
        failed += 1
        print(f"FAIL {name}", flush=True)
        for line in str(detail).splitlines():
            print(f"     {line}", flush=True)


# ---- the plan -----------------------------------------------------------------------------


class Plan:
    """Packets in one blob; streams of batch steps that refer to it; runs of steps."""

    def __init__(self):
        self.blob = bytearray()
        self.runs = []
        self.labels = {}  # stream name -> label per packet (for failure reports)

    def batch(self, packets, now, ingress, link, stream, first, api=False):
        at = len(self.blob)
        for p in packets:
            self.blob += p
        return {"op": "batch", "ingress": ingress, "link": link, "now": now, "at": at,
                "lens": [len(p) for p in packets], "api": api, "stream": stream, "first": first}

    def add_run(self, name, steps):
        self.runs.append({"name": name, "steps": steps})


def capture_batches(plan, name, path, ingress=NONE, api=False):
    """Batches of a capture, made as `haports replay` makes them."""
    with open(path, "rb") as f:
        _, packets = hw.read_capture(f.read())
    plan.labels[name] = [f"{os.path.basename(path)}#{p.index}" for p in packets]
    steps = []
    start = 0
    while start < len(packets):
        first = packets[start]
        t0 = first.ts_sec * 1000 + first.ts_nsec / 1e6
        end = start
        while (end < len(packets) and end - start < 1024 and packets[end].linktype == first.linktype
               and packets[end].ts_sec * 1000 + packets[end].ts_nsec / 1e6 - t0 < hw_cli.BATCH_SPAN_MS):
            end += 1
        link = hw_cli._link_of(first.linktype)
        steps.append(plan.batch([p.data for p in packets[start:end]], t0, ingress, link, name, start, api))
        start = end
    return steps


def fixture_batches(plan):
    table = json.load(open(os.path.join(ROOT, "test", "fixtures", "packets.json")))
    fx = table["fixtures"]
    plan.labels["fixtures"] = [f"fixture {f['name']}" for f in fx]
    steps = []
    start = 0
    while start < len(fx):
        link = 1 if fx[start].get("link") == "ethernet" else 0
        end = start
        while end < len(fx) and (1 if fx[end].get("link") == "ethernet" else 0) == link:
            end += 1
        steps.append(plan.batch([bytes.fromhex(f["hex"]) for f in fx[start:end]], 1000.0, NONE, link,
                                "fixtures", start, api=True))
        start = end
    return steps


def random_batches(plan, name, records, seed):
    """Raw-IP batches of random sizes, each with a random ingress (none, fe-v4, fe-v6)."""
    import random
    r = random.Random(seed)
    plan.labels[name] = [f"{name}#{i}" for i in range(len(records))]
    steps = []
    i = 0
    while i < len(records):
        n = r.choice([1, 3, 16, 64, 64, 200, 1024])
        chunk = records[i:i + n]
        steps.append(plan.batch([p for _, p in chunk], chunk[0][0] / 1e6, r.choice([NONE, NONE, 0, 1]), 0, name, i))
        i += n
    return steps


# ---- configurations --------------------------------------------------------------------------


def configs():
    diff_text = open(os.path.join(ROOT, "test", "diff", "config.json")).read()
    base = json.loads(diff_text)
    nat = copy.deepcopy(base)
    for rule in nat["rules"]:
        rule["floatingIp"] = False
    nat["backendPools"] += [
        {"name": "web", "backends": [{"name": "web-0", "address": "10.0.2.4"},
                                     {"name": "web-1", "address": "10.0.2.5", "weight": 2}]},
        {"name": "dns6", "maglevTableSize": 251,
         "backends": [{"name": "dns6-0", "address": "fd00:2::4"}, {"name": "dns6-1", "address": "fd00:2::5"}]},
    ]
    nat["rules"] += [
        {"name": "https", "frontend": "fe-v4", "backendPool": "web", "protocol": "tcp", "frontendPort": 443,
         "backendPort": 8443, "floatingIp": False, "loadDistribution": "sourceIPProtocol"},
        {"name": "dns6", "frontend": "fe-v6", "backendPool": "dns6", "protocol": "udp", "frontendPort": 53,
         "backendPort": 5353, "floatingIp": False},
    ]
    srcip = copy.deepcopy(base)
    for rule in srcip["rules"]:
        rule["loadDistribution"] = "sourceIP"
        rule["symmetric"] = False
    # TCP resets on idle: the traffic's clock jumps past the idle timeout now and then.
    for c in (nat, srcip):
        for rule in c["rules"]:
            rule["enableTcpReset"] = True
    return diff_text, base, nat, srcip


def big_pools(prefix, start_octet):
    pools = []
    for n in (10, 100, 1000):
        for m in (65537, 655373):
            k = len(pools)
            pools.append({"name": f"{prefix}{n}-{m}", "maglevTableSize": m, "backends": [
                {"name": f"{prefix}{n}-{m}-{i}", "address": f"10.{start_octet + k}.{i // 250}.{i % 250 + 1}",
                 "weight": (1 + i % 4) if n == 100 else 1} for i in range(n)]})
    return pools


# ---- the native build: wasm2c + gcc, running the plan in binary form ---------------------------


def wasm2c_runtime():
    for d in ("/usr/share/wabt/wasm2c", "/usr/src/wasm2c", "/usr/local/share/wabt/wasm2c"):
        if os.path.exists(os.path.join(d, "wasm-rt-impl.c")):
            return d
    return None


def build_native(tmp):
    """build/haports.wasm → C (wasm2c, Debian's wabt) → gcc -O2 with native_dump.c.
    Returns the executable, or raises with the reason (the test then fails: it must run)."""
    rt = wasm2c_runtime()
    if not shutil.which("wasm2c") or rt is None or not shutil.which("gcc"):
        raise RuntimeError("wasm2c (Debian package wabt) and gcc are needed: scripts/setup.sh --test installs them")
    d = os.path.join(tmp, "native")
    os.makedirs(d, exist_ok=True)
    subprocess.run(["wasm2c", WASM, "-o", os.path.join(d, "haports.c"), "-n", "haports"], check=True,
                   capture_output=True)
    exe = os.path.join(d, "native_dump")
    r = subprocess.run(["gcc", "-O2", "-I", d, "-I", rt, "-o", exe, os.path.join(HERE, "native_dump.c"),
                        os.path.join(d, "haports.c"), os.path.join(rt, "wasm-rt-impl.c"), "-lm"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("gcc failed:\n" + r.stderr[-2000:])
    return exe


def write_binary_plan(plan, path):
    """The plan as native_dump.c reads it (its header comment gives the format)."""
    blob = bytes(plan.blob)
    out = [b"HPLN", u32(len(plan.runs))]
    for run in plan.runs:
        out.append(u32(len(run["steps"])))
        for s in run["steps"]:
            op = s["op"]
            if op == "configure":
                t = s["config"].encode("utf-8")
                out += [b"\x01", u32(len(t)), t]
            elif op == "health":
                out += [b"\x02", i32(s["backend"]), i32(1 if s["up"] else 0)]
            elif op == "admin":
                out += [b"\x03", i32(s["backend"]), i32(2 if s["state"] == "draining" else 0)]
            elif op == "batch":
                out += [b"\x04", i32(s["ingress"]), i32(s["link"]), struct.pack("<d", s["now"]), u32(len(s["lens"]))]
                out += [u32(n) for n in s["lens"]]
                out.append(blob[s["at"]:s["at"] + sum(s["lens"])])
            elif op == "maglev":
                out.append(b"\x05")
            elif op == "state":
                out.append(b"\x06")
            else:
                raise ValueError(op)
    with open(path, "wb") as f:
        f.write(b"".join(out))


# ---- running a plan under wasmtime (the same bytes v8_dump.mjs writes) ------------------------


def i32(n):
    return struct.pack("<i", n)


def u32(n):
    return struct.pack("<I", n & 0xFFFFFFFF)


def text(s):
    b = s.encode("utf-8")
    return u32(len(b)) + b


def run_step(dp, s, blob):
    op = s["op"]
    if op == "configure":
        try:
            dp.configure(s["config"])
            return i32(0)
        except hw.ConfigError as e:
            return i32(len(e.errors)) + "\n".join(e.errors).encode("utf-8")
    if op in ("health", "admin"):
        try:
            if op == "health":
                dp.set_backend_health(s["backend"], bool(s["up"]))
            else:
                dp.set_backend_admin(s["backend"], s["state"])
            return i32(0)
        except IndexError:
            return i32(-1)
    if op == "batch":
        n = len(s["lens"])
        packets = []
        off = s["at"]
        for length in s["lens"]:
            packets.append(blob[off:off + length])
            off += length
        dp.load(packets)
        fwd = dp.process(n, s["now"], s["ingress"], s["link"])
        parts = [i32(fwd), dp.verdict_records(n), dp.tuple_records(n),
                 dp.read_memory(dp.exports.descriptorsPtr(), n * 8)]
        parts += [dp.packet(i) for i in range(n)]
        resets = [i for i in range(n) if dp.verdict(i)["action"] == "reset"]
        parts.append(u32(len(resets)))
        for i in resets:
            parts += [u32(i), dp.read_memory(dp.exports.resetsPtr() + i * 256, 256)]
        if s.get("api"):
            def hx(r):
                return r and [r["toSender"].hex(), r["toBackend"].hex()]
            api = [[dp.verdict(i), dp.tuple(i), hx(dp.resets(i))] for i in range(n)]
            parts.append(text(json.dumps(api, separators=(",", ":"))))
        return b"".join(parts)
    if op == "maglev":
        parts = []
        for p in range(dp.exports.poolCount()):
            t = dp.maglev_table(p)
            parts += [u32(len(t) // 2), t]
        return b"".join(parts)
    if op == "state":
        x = dp.exports
        slots, nb, nr = x.counterSlots(), x.backendCount(), x.ruleCount()
        return b"".join([
            u32(slots), dp.read_memory(x.countersPtr(), slots * 8),
            u32(nb), dp.read_memory(x.backendCountersPtr(), nb * 24),
            u32(nr), dp.read_memory(x.ruleCountersPtr(), nr * 24),
            u32(x.flowTableUsed()), u32(x.flowTableCapacity()),
            text(json.dumps(dp.counters(), separators=(",", ":"))),
        ])
    raise ValueError(f"unknown op {op}")


def read_dump(path):
    out = {}
    with open(path, "rb") as f:
        data = f.read()
    mv = memoryview(data)
    off = 0
    while off < len(data):
        run, step, length = struct.unpack_from("<III", data, off)
        out[(run, step)] = mv[off + 12:off + 12 + length]
        off += 12 + length
    return out


# ---- comparing -----------------------------------------------------------------------------


def decode_verdict(rec):
    a, r, fl, rule, be, fe, l3, h = struct.unpack("<BBHHHHHI", bytes(rec))
    action = hw.ACTIONS[a] if a < len(hw.ACTIONS) else a
    reason = hw.REASONS[r] if r < len(hw.REASONS) else r
    return f"action={action} reason={reason} flags=0x{fl:x} rule={rule} backend={be} frontend={fe} l3={l3} hash=0x{h:08x}"


def decode_tuple(rec):
    rec = bytes(rec)
    fam = rec[37]
    if fam == 0:
        return "none (no IP header parsed)"
    n = 4 if fam == 4 else 16
    sp, dpt = struct.unpack_from("<HH", rec, 32)
    return (f"{hw.format_address(rec[:n])} -> {hw.format_address(rec[16:16 + n])} proto={rec[36]} "
            f"ports={sp}->{dpt} hasPorts={rec[38]} family={fam}")


def split_batch(payload, n):
    p = bytes(payload)
    ret = struct.unpack_from("<i", p, 0)[0]
    v = p[4:4 + 16 * n]
    t = p[4 + 16 * n:4 + 56 * n]
    d = p[4 + 56 * n:4 + 64 * n]
    off = 4 + 64 * n
    pk = []
    for i in range(n):
        length = struct.unpack_from("<I", d, 8 * i + 4)[0]
        pk.append(p[off:off + length])
        off += length
    r = struct.unpack_from("<I", p, off)[0]
    resets = p[off + 4:off + 4 + 260 * r]
    return ret, v, t, d, pk, resets, p[off + 4 + 260 * r:]


def resets_in(payload, n):
    """The number of reset records in a batch dump."""
    return len(split_batch(payload, n)[5]) // 260


def strip_api(payload, n):
    """A batch dump without its binding-level part (the native dumper has no binding)."""
    *_, api = split_batch(payload, n)
    return payload[:len(payload) - len(api)] if api else payload


def state_raw(payload):
    """A state dump without the JSON of the binding's counters()."""
    off = 0
    slots = struct.unpack_from("<I", payload, off)[0]
    off += 4 + 8 * slots
    nb = struct.unpack_from("<I", payload, off)[0]
    off += 4 + 24 * nb
    nr = struct.unpack_from("<I", payload, off)[0]
    off += 4 + 24 * nr + 8
    return payload[:off]


def first_diff(a, b):
    for i in range(min(len(a), len(b))):
        if a[i] != b[i]:
            return i
    return min(len(a), len(b))


class RunComparison:
    """One run of the plan, V8 against `other` ("wasmtime", or "native": the wasm2c build,
    which has no binding, so its dumps hold the raw records only)."""

    def __init__(self, run, plan, other="wasmtime"):
        self.run = run
        self.plan = plan
        self.other = other
        self.problems = {k: None for k in ("verdicts", "tuples", "packets", "resets", "api", "maglev", "counters", "config")}
        self.counts = {k: 0 for k in self.problems}

    def note(self, kind, msg):
        if self.problems[kind] is None:
            self.problems[kind] = msg

    def where(self, s, i):
        labels = self.plan.labels.get(s["stream"], [])
        idx = s["first"] + i
        label = labels[idx] if idx < len(labels) else f"#{idx}"
        return f"run {self.run['name']}, stream {s['stream']}, packet {label} (batch at {s['first']}, slot {i}, " \
               f"now {s['now']}, ingress {s['ingress']}, link {s['link']})"

    def compare(self, k, s, v8, wt, blob):
        op = s["op"]
        if op == "batch":
            n = len(s["lens"])
            self.counts["verdicts"] += n
            if self.other == "native":
                v8 = strip_api(bytes(v8), n)
            if bytes(v8) == wt:
                self.counts["tuples"] += n
                self.counts["packets"] += n
                self.counts["resets"] += resets_in(wt, n)
                self.counts["api"] += n if s.get("api") and self.other != "native" else 0
                return
            r1, v1, t1, d1, p1, x1, a1 = split_batch(v8, n)
            r2, v2, t2, d2, p2, x2, a2 = split_batch(wt, n)
            if x1 != x2:
                self.note("resets", f"{self.where(s, 0)}: reset records differ "
                          f"({len(x1) // 260} in V8, {len(x2) // 260} in {self.other})\n"
                          f"  V8       {x1[:96].hex()}\n  {self.other:8} {x2[:96].hex()}")
            if r1 != r2:
                self.note("verdicts", f"{self.where(s, 0)}: processBatch returned {r1} in V8, {r2} in {self.other}")
            for i in range(n):
                inp = blob[s["at"] + sum(s["lens"][:i]):][:s["lens"][i]]
                if v1[16 * i:16 * i + 16] != v2[16 * i:16 * i + 16]:
                    self.note("verdicts", f"first differing verdict: {self.where(s, i)}\n"
                              f"  input    {bytes(inp[:64]).hex()}{'...' if len(inp) > 64 else ''}\n"
                              f"  V8       {decode_verdict(v1[16 * i:16 * i + 16])}\n"
                              f"  {self.other:8} {decode_verdict(v2[16 * i:16 * i + 16])}")
                if t1[40 * i:40 * i + 40] != t2[40 * i:40 * i + 40]:
                    self.note("tuples", f"first differing tuple: {self.where(s, i)}\n"
                              f"  V8       {decode_tuple(t1[40 * i:40 * i + 40])}\n"
                              f"  {self.other:8} {decode_tuple(t2[40 * i:40 * i + 40])}")
                if d1[8 * i:8 * i + 8] != d2[8 * i:8 * i + 8] or p1[i] != p2[i]:
                    at = first_diff(p1[i], p2[i])
                    self.note("packets", f"first differing packet after processing: {self.where(s, i)}\n"
                              f"  lengths V8 {len(p1[i])}, {self.other} {len(p2[i])}; first difference at byte {at}\n"
                              f"  V8       {p1[i][max(0, at - 8):at + 24].hex()}\n"
                              f"  {self.other:8} {p2[i][max(0, at - 8):at + 24].hex()}")
            if a1 != a2:
                j1 = json.loads(a1[4:]) if a1 else []
                j2 = json.loads(a2[4:]) if a2 else []
                for i in range(min(len(j1), len(j2))):
                    if j1[i] != j2[i]:
                        self.note("api", f"verdict()/tuple() differ: {self.where(s, i)}\n"
                                  f"  core.ts           {json.dumps(j1[i])}\n  haports_wasmtime  {json.dumps(j2[i])}")
                        break
                else:
                    if j1 != j2:
                        self.note("api", f"verdict()/tuple() lists differ in length at {self.where(s, 0)}")
            if all(self.problems[k] is None for k in ("verdicts", "tuples", "packets", "resets", "api")):
                self.note("packets", f"{self.where(s, 0)}: batch records differ (layout)")
            return
        kind = {"configure": "config", "health": "config", "admin": "config", "maglev": "maglev",
                "state": "counters"}[op]
        self.counts[kind] += 1
        if op == "state":
            self.compare_state(k, v8, wt)
            return
        if bytes(v8) == wt:
            return
        if op == "maglev":
            self.compare_maglev(k, bytes(v8), wt)
        elif op == "configure":
            self.note(kind, f"run {self.run['name']} step {k} (configure): V8 {bytes(v8)[:4].hex()} "
                            f"{bytes(v8)[4:].decode(errors='replace')!r}, {self.other} {wt[:4].hex()} "
                            f"{wt[4:].decode(errors='replace')!r}")
        else:
            self.note(kind, f"run {self.run['name']} step {k} ({op} {s}): V8 {bytes(v8).hex()}, {self.other} {wt.hex()}")

    def compare_maglev(self, k, a, b):
        def tables(x):
            out, off = [], 0
            while off < len(x):
                m = struct.unpack_from("<I", x, off)[0]
                out.append(x[off + 4:off + 4 + 2 * m])
                off += 4 + 2 * m
            return out
        ta, tb = tables(a), tables(b)
        if len(ta) != len(tb):
            self.note("maglev", f"run {self.run['name']} step {k}: {len(ta)} pools in V8, {len(tb)} in {self.other}")
            return
        for p, (x, y) in enumerate(zip(ta, tb)):
            if x != y:
                e = first_diff(x, y) // 2
                self.note("maglev", f"run {self.run['name']} step {k}: pool {p} Maglev tables differ "
                          f"(M {len(x) // 2} vs {len(y) // 2}); first at entry {e}: "
                          f"V8 {x[2 * e:2 * e + 2].hex()} {self.other} {y[2 * e:2 * e + 2].hex()}")
                return

    def compare_state(self, k, v8, wt):
        a, b = bytes(v8), wt
        if self.other == "native":
            # The wasm2c build has no binding: the raw counters, occupancy and capacity only.
            raw = state_raw(a)
            if raw != b:
                self.note("counters", f"run {self.run['name']}: counters or flow-table occupancy differ from native")
            return
        # Raw part: everything before the JSON of counters().
        def parts(x):
            off = 0
            slots = struct.unpack_from("<I", x, off)[0]
            off += 4 + 8 * slots
            nb = struct.unpack_from("<I", x, off)[0]
            off += 4 + 24 * nb
            nr = struct.unpack_from("<I", x, off)[0]
            off += 4 + 24 * nr + 8
            return x[:off], json.loads(x[off + 4:])
        ra, ja = parts(a)
        rb, jb = parts(b)
        if ra != rb:
            slots = struct.unpack_from("<I", ra, 0)[0]
            if slots != struct.unpack_from("<I", rb, 0)[0] or ra[:4 + 8 * slots] != rb[:4 + 8 * slots]:
                ca = struct.unpack_from(f"<{slots}Q", ra, 4) if len(ra) >= 4 + 8 * slots else ()
                cb = struct.unpack_from(f"<{slots}Q", rb, 4) if len(rb) >= 4 + 8 * slots else ()
                diffs = [f"slot {i}: V8 {x} {self.other} {y}" for i, (x, y) in enumerate(zip(ca, cb)) if x != y]
                self.note("counters", f"run {self.run['name']}: global counters differ: " + "; ".join(diffs[:6]))
            else:
                self.note("counters", f"run {self.run['name']}: per-backend/per-rule counters or flow-table "
                                      f"occupancy differ")
        # The bindings' named counters: every name both know must agree.
        common = [n for n in ja if n in jb]
        bad = [f"{n}: core.ts {ja[n]} haports_wasmtime {jb[n]}" for n in common if ja[n] != jb[n]]
        if bad:
            self.note("counters", f"run {self.run['name']}: counters() differ: " + "; ".join(bad[:6]))
        if len(common) < min(len(ja), 16):
            self.note("counters", f"run {self.run['name']}: counters() share only {len(common)} names")

    def report(self):
        name = self.run["name"]
        labels = {"verdicts": "verdict stream", "tuples": "tuple records", "packets": "packets after processing",
                  "resets": "TCP reset records", "api": "verdict()/tuple()/resets() values", "maglev": "Maglev tables", "counters": "counters at the end",
                  "config": "configure/health/admin results"}
        units = {"verdicts": "packets", "tuples": "packets", "packets": "packets", "resets": "resets", "api": "packets",
                 "maglev": "dumps", "counters": "dumps", "config": "steps"}
        for kind in labels:
            if self.counts[kind] == 0 and self.problems[kind] is None:
                continue
            check(f"{name}: {labels[kind]} identical ({'V8 = ' + self.other})", self.problems[kind] is None,
                  self.problems[kind] or f"{self.counts[kind]} {units[kind]}")


# ---- the command lines ------------------------------------------------------------------------


def _first_line_diff(l1, l2):
    i = next((i for i in range(min(len(l1), len(l2))) if l1[i] != l2[i]), min(len(l1), len(l2)))
    return (f"line {i + 1}:\n  node     {l1[i] if i < len(l1) else '<end>'}\n"
            f"  wasmtime {l2[i] if i < len(l2) else '<end>'}")


def _is_subsequence(small, big):
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


def cli_pairs(tmp, cases):
    """Runs `node bin/haports.mjs` and the wasmtime CLI on the same arguments, in parallel,
    and compares exit codes, verdict lines and files byte for byte. The summary (which
    the Node CLI may grow) must hold every line the wasmtime CLI prints, in order; JSON
    output must agree on every key the wasmtime CLI prints."""
    procs = []
    for n, (name, args, files, summary) in enumerate(cases):
        pair = {}
        for engine, cmd in (("node", ["node", os.path.join(ROOT, "bin", "haports.mjs")]),
                            ("wasmtime", [sys.executable, os.path.join(ROOT, "host", "wasmtime", "haports-wasmtime")])):
            a = [x.replace("{engine}", engine) for x in args]
            # Files, not pipes: bin/haports.mjs writes verdicts with writeSync(1), which a
            # full non-blocking pipe answers with EAGAIN.
            o = open(os.path.join(tmp, f"cli{n}-{engine}.out"), "w+b")
            e = open(os.path.join(tmp, f"cli{n}-{engine}.err"), "w+b")
            pair[engine] = (subprocess.Popen(cmd + a, cwd=ROOT, stdout=o, stderr=e), o, e)
        procs.append((name, files, summary, pair))
    for name, files, summary, pair in procs:
        res = {}
        for engine, (p, o, e) in pair.items():
            p.wait()
            o.seek(0)
            e.seek(0)
            res[engine] = (p.returncode, o.read(), e.read())
            o.close()
            e.close()
        (rc1, o1, e1), (rc2, o2, e2) = res["node"], res["wasmtime"]
        problems, notes = [], []
        if rc1 != rc2:
            problems.append(f"exit codes: node {rc1}, wasmtime {rc2}\n{e1.decode()[-300:]}\n{e2.decode()[-300:]}")
        for stream, x1, x2 in (("stdout", o1, o2), ("stderr", e1, e2)):
            if x1 == x2:
                continue
            l1, l2 = x1.decode().splitlines(), x2.decode().splitlines()
            if stream == summary and rc1 == 0 and l2 and _is_subsequence(l2, l1):
                notes.append(f"node's summary has {len(l1) - len(l2)} more lines")
            elif summary == "json" and stream == "stdout" and x1.strip() and x2.strip():
                j1, j2 = json.loads(x1), json.loads(x2)
                bad = [k for k in j2 if j1.get(k) != j2[k]]
                if bad or not j2:
                    problems.append(f"JSON output differs in {bad}:\n  node     {x1.decode().strip()}\n"
                                    f"  wasmtime {x2.decode().strip()}")
            elif stream == "stderr" and rc1 != 0 and summary != "stderr":
                if x1.decode().splitlines()[:1] != x2.decode().splitlines()[:1]:
                    problems.append(f"error message differs:\n  node     {x1.decode()[:300]!r}\n"
                                    f"  wasmtime {x2.decode()[:300]!r}")
            else:
                problems.append(f"{stream} differs at " + _first_line_diff(l1, l2))
        for f in files:
            b1 = open(os.path.join(tmp, f.replace("{engine}", "node")), "rb").read()
            b2 = open(os.path.join(tmp, f.replace("{engine}", "wasmtime")), "rb").read()
            if b1 != b2:
                if f.endswith(".jsonl"):
                    problems.append(f"{f} differs at " + _first_line_diff(b1.decode().splitlines(),
                                                                          b2.decode().splitlines()))
                else:
                    problems.append(f"{f}: {len(b1)} vs {len(b2)} bytes, first difference at byte {first_diff(b1, b2)}")
        lines = len(o1.splitlines()) + sum(len(open(os.path.join(tmp, f.replace("{engine}", "node")), "rb").read()
                                               .splitlines()) for f in files if f.endswith(".jsonl"))
        check(f"cli: {name}: same output from node and wasmtime", not problems,
              "\n".join(problems) or f"exit {rc1}, {lines} lines" + (f"; {notes[0]}" if notes else ""))


# ---- addresses ---------------------------------------------------------------------------------


def check_format_address():
    """format_address() against core.ts formatAddress() (RFC 5952) on edge cases and random
    addresses with runs of zero groups."""
    import random
    r = random.Random(5952)
    cases = ["00" * 16, "00" * 15 + "01", "0001" + "00" * 14, "20010db8" + "00" * 10 + "0001",
             "20010db8000000010000000000000001", "20010db8000000000001000000000001", "00" * 10 + "ffffc6336401",
             "fe800000000000000000000000000001", "20010db800010001000100010001" + "0000", "ff" * 16,
             "00010000000100000001000000010000", "0001" * 8, "7f000001", "00000000", "ffffffff", "0a000064"]
    for _ in range(400):
        groups = [r.choice([0, 0, 0, 1, 0xabc, 0xffff, r.randrange(65536)]) for _ in range(8)]
        cases.append("".join(f"{g:04x}" for g in groups))
    js = ("import { formatAddress } from './build/host/core.mjs';"
          "const xs = JSON.parse(process.argv[1]);"
          "process.stdout.write(JSON.stringify(xs.map((h) => formatAddress(Buffer.from(h, 'hex')))));")
    p = subprocess.run(["node", "--input-type=module", "-e", js, json.dumps(cases)], cwd=ROOT,
                       capture_output=True, text=True)
    if p.returncode != 0:
        check("format_address() matches core.ts formatAddress()", False, p.stderr[-500:])
        return
    node = json.loads(p.stdout)
    bad = [f"{h}: core.ts {a} haports_wasmtime {hw.format_address(bytes.fromhex(h))}"
           for h, a in zip(cases, node) if hw.format_address(bytes.fromhex(h)) != a]
    check("format_address() matches core.ts formatAddress()", not bad, "\n".join(bad[:5]) or f"{len(cases)} addresses")


# ---- describe() and a byte-order mark ------------------------------------------------------------


def check_bom():
    """A configuration that starts with a UTF-8 byte-order mark (editors on Windows, Azure
    exports) is applied by both hosts, which then name its objects as without it: the
    names come from the core's describe(), never from a second parse of the text. Both
    hosts' describe() agree."""
    with open(os.path.join(ROOT, "examples", "config.json"), encoding="utf-8") as f:
        text = f.read()
    plain = hw.Dataplane()
    plain.configure(text)
    bom = hw.Dataplane()
    bom.configure("\ufeff" + text)
    ok = bom.names == plain.names and bom.names["backends"] and bom.describe() == plain.describe()
    check("wasmtime: a configuration with a byte-order mark is applied and named as without", bool(ok),
          f"{len(bom.names['backends'])} backends")
    js = ("import { Core } from './build/host/core.mjs';"
          "const c = Core.load(); c.configure('\\ufeff' + process.argv[1]);"
          "process.stdout.write(JSON.stringify({ names: c.names, described: c.describe() }));")
    p = subprocess.run(["node", "--input-type=module", "-e", js, text], cwd=ROOT, capture_output=True, text=True)
    node = json.loads(p.stdout) if p.returncode == 0 else None
    check("core.ts: the same configuration with a byte-order mark: the same names and describe() as wasmtime",
          node is not None and node["names"] == plain.names and node["described"] == plain.describe(),
          p.stderr[-300:] if p.returncode else "")


# ---- env.abort -------------------------------------------------------------------------------


def check_abort(tmp):
    import wasmtime
    msg = "boom: bad state".encode("utf-16-le")
    src = "core.ts".encode("utf-16-le")
    esc = lambda b: "".join(f"\\{c:02x}" for c in b)  # noqa: E731
    wat = f"""(module
      (import "env" "abort" (func $abort (param i32 i32 i32 i32)))
      (memory (export "memory") 1)
      (data (i32.const 60) "{esc(struct.pack('<I', len(msg)))}{esc(msg)}")
      (data (i32.const 200) "{esc(struct.pack('<I', len(src)))}{esc(src)}")
      (func (export "maxBatch") (result i32) (i32.const 1))
      (func (export "rxArenaSize") (result i32) (i32.const 1024))
      (func (export "configBufferPtr") (result i32) (i32.const 4096))
      (func (export "configBufferSize") (result i32) (i32.const 1024))
      (func (export "configure") (param i32) (result i32)
        (call $abort (i32.const 64) (i32.const 204) (i32.const 42) (i32.const 7)) (i32.const 0)))"""
    path = os.path.join(tmp, "abort-stub.wasm")
    with open(path, "wb") as f:
        f.write(wasmtime.wat2wasm(wat))
    try:
        hw.Dataplane(path).configure("{}")
        check("env.abort raises CoreAbort with the decoded message", False, "no exception")
    except hw.CoreAbort as e:
        ok = str(e) == "haports core aborted: boom: bad state at core.ts:42:7" and e.line == 42
        check("env.abort raises CoreAbort with the decoded message", ok, str(e))
    except Exception as e:  # noqa: BLE001
        check("env.abort raises CoreAbort with the decoded message", False, f"{type(e).__name__}: {e}")


# ---- main ------------------------------------------------------------------------------------


def main():
    t_start = time.time()
    if not os.path.exists(WASM) or not os.path.exists(os.path.join(ROOT, "build", "host", "core.mjs")):
        print("build/haports.wasm or build/host/core.mjs missing: run `npm run build` first")
        print("0 passed, 1 failed")
        return 1
    keep = sys.argv[sys.argv.index("--keep") + 1] if "--keep" in sys.argv else None
    tmp = keep or tempfile.mkdtemp(prefix="haports-conformance-")
    os.makedirs(tmp, exist_ok=True)
    corpus = os.path.join(tmp, "corpus")
    corpus_proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "test", "diff", "make_corpus.py"), corpus],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        return run(tmp, corpus, corpus_proc, t_start)
    except Exception:  # noqa: BLE001 - report it as a failure and keep the closing line
        import traceback
        traceback.print_exc(file=sys.stdout)
        check("the conformance run completed", False, "see the traceback above")
        print(f"{passed} passed, {failed} failed")
        return 1
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def run(tmp, corpus, corpus_proc, t_start):
    import random
    plan = Plan()
    diff_text, base, nat, srcip = configs()

    # Random traffic: A as an Ethernet pcap batched like `replay`, B raw IP in random batches.
    rec_a = traffic.generate(0xC0FFEE, 12000)
    ra = random.Random(7)
    eth_a = []
    for ts, p in rec_a:
        eth_a.append((ts, traffic.arp(ra) if ra.random() < 0.01 else traffic.ethernet(p, ra)))
    traffic.write_pcap(os.path.join(tmp, "random-eth.pcap"), 1, eth_a)
    rec_b = traffic.generate(0xBEEF, 10000, start_ns=1_700_200_000 * 10**9, mean_gap_ms=40.0, new_flow_share=0.5)
    traffic.write_pcapng(os.path.join(tmp, "random-raw.pcapng"), 101, rec_b)

    _, cerr = corpus_proc.communicate()
    if corpus_proc.returncode != 0:
        print(cerr.decode())
        check("make_corpus.py", False, "failed")
        print(f"{passed} passed, {failed} failed")
        return 1
    captures = ["eth.pcap", "rawip.pcap", "flows.pcapng", "multi-if.pcapng"]
    sample = os.path.join(ROOT, "examples", "sample.pcap")

    streams = [("fixtures", fixture_batches(plan))]
    for c in captures:
        streams.append((c, capture_batches(plan, c, os.path.join(corpus, c))))
    streams.append(("sample", capture_batches(plan, "sample", sample, api=True)))
    streams.append(("sample-nexthop", capture_batches(plan, "sample-nexthop", sample, ingress=0)))
    streams.append(("random-eth", capture_batches(plan, "random-eth", os.path.join(tmp, "random-eth.pcap"))))
    streams.append(("random-mixed", random_batches(plan, "random-mixed", rec_b, 11)))
    total_packets = sum(len(s["lens"]) for _, st in streams for s in st)

    def with_ops(batches, ops):
        """Inserts ops [(fraction, step), ...] between the batches."""
        out = list(batches)
        for frac, op in sorted(ops, key=lambda x: -x[0]):
            out.insert(int(len(batches) * frac), op)
        return out

    health = lambda b, up: {"op": "health", "backend": b, "up": up}  # noqa: E731
    admin = lambda b, st: {"op": "admin", "backend": b, "state": st}  # noqa: E731
    cfg = lambda c: {"op": "configure", "config": c if isinstance(c, str) else json.dumps(c)}  # noqa: E731
    tail = [{"op": "maglev"}, {"op": "state"}]
    mid_down = [(0.25, health(2, 0)), (0.4, admin(0, "draining")), (0.55, health(4, 0)), (0.56, health(5, 0)),
                (0.7, health(4, 1)), (0.71, health(5, 1)), (0.72, health(2, 1)), (0.85, admin(0, "up"))]
    for cname, config, pre in (("diff", diff_text, []), ("nat", nat, []), ("srcip", srcip, []),
                               ("down", diff_text, [health(1, 0), health(99, 0)])):
        for sname, batches in streams:
            body = with_ops(batches, mid_down) if cname == "down" and sname.startswith("random") else batches
            plan.add_run(f"{cname}/{sname}", [cfg(config)] + pre + [{"op": "maglev"}] + body + tail)

    # Reconfiguration mid-stream: a rejected configuration, then one that grows memory
    # (big Maglev pools), removes nva-3, and changes the flow-table capacity (rehash).
    grow = copy.deepcopy(base)
    grow["flowTable"] = {"capacity": 8192}
    grow["backendPools"][0]["backends"] = grow["backendPools"][0]["backends"][:3]
    grow["backendPools"] += big_pools("g", 100)
    bad = copy.deepcopy(base)
    bad["rules"][0]["backendPool"] = "nope"
    bad["flowTable"] = {"capacity": 3}
    ra_batches = dict(streams)["random-eth"]
    half = len(ra_batches) // 2
    plan.add_run("reconfigure/random-eth", [cfg(diff_text)] + ra_batches[:half] + [cfg(bad), cfg(grow), {"op": "maglev"}]
                 + ra_batches[half:] + tail)

    # Maglev tables for pools of 10, 100, 1000 backends at M = 65537 and 655373, before
    # and after health and drain changes.
    sizes = {"backendPools": big_pools("p", 10)}
    plan.add_run("maglev/sizes", [cfg(sizes), {"op": "maglev"}, health(5, 0), health(117, 0), health(1500, 0),
                                  {"op": "maglev"}, admin(3, "draining"), admin(1800, "draining"), health(117, 1),
                                  {"op": "maglev"}, {"op": "state"}])

    plan_path = os.path.join(tmp, "plan.json")
    blob_path = os.path.join(tmp, "packets.bin")
    with open(plan_path, "w") as f:
        json.dump({"wasm": WASM, "runs": plan.runs}, f)
    with open(blob_path, "wb") as f:
        f.write(plan.blob)
    dump_path = os.path.join(tmp, "v8.bin")
    t_plan = time.time()
    node = subprocess.Popen(["node", os.path.join(HERE, "v8_dump.mjs"), plan_path, blob_path, dump_path],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # The native build runs the same plan, also in parallel.
    native_exe = build_native(tmp)
    write_binary_plan(plan, os.path.join(tmp, "plan.bin"))
    native_path = os.path.join(tmp, "native.bin")
    native = subprocess.Popen([native_exe, os.path.join(tmp, "plan.bin"), native_path],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    # The same plan under wasmtime, while Node runs it.
    blob = memoryview(bytes(plan.blob))
    results = {}
    grew = None
    for r, run in enumerate(plan.runs):
        dp = hw.Dataplane(WASM)
        for k, s in enumerate(run["steps"]):
            before = len(dp.memory)
            results[(r, k)] = run_step(dp, s, blob)
            if run["name"].startswith("reconfigure") and s["op"] == "configure" and len(dp.memory) > before:
                grew = (before, len(dp.memory))
    t_wasmtime = time.time() - t_plan
    nout, nerr = node.communicate()
    t_v8 = float(nout.decode().strip() or "nan")
    if node.returncode != 0:
        check("v8_dump.mjs ran the plan", False, nerr.decode()[-2000:])
        print(f"{passed} passed, {failed} failed")
        return 1
    v8 = read_dump(dump_path)
    _, native_err = native.communicate()
    if native.returncode != 0:
        check("native_dump ran the plan", False, native_err.decode()[-2000:])
        print(f"{passed} passed, {failed} failed")
        return 1
    nat_dump = read_dump(native_path)
    print(f"# corpus: {total_packets} packets in {sum(len(s) for _, s in streams)} batches, {len(plan.runs)} runs; "
          f"wasmtime {t_wasmtime:.1f} s, V8 {t_v8:.1f} s, native (in parallel)", flush=True)

    for r, run in enumerate(plan.runs):
        for other, dumps in (("wasmtime", results), ("native", nat_dump)):
            cmp_ = RunComparison(run, plan, other)
            for k, s in enumerate(run["steps"]):
                a = v8.get((r, k))
                b = dumps.get((r, k))
                if a is None or b is None:
                    cmp_.note("config", f"run {run['name']} step {k}: no output from {'V8' if a is None else other}")
                    continue
                cmp_.compare(k, s, a, bytes(b), blob)
            cmp_.report()
    total_resets = sum(resets_in(bytes(v8[(r, k)]), len(s["lens"])) for r, run in enumerate(plan.runs)
                       for k, s in enumerate(run["steps"]) if s["op"] == "batch" and (r, k) in v8)
    check("the corpus has TCP resets (enableTcpReset, idle past the timeout) to compare", total_resets > 0,
          f"{total_resets} reset verdicts")
    check("reconfigure: memory grew and the views were re-taken", grew is not None,
          f"{grew[0]} -> {grew[1]} bytes" if grew else "memory did not grow")

    # Command lines: node bin/haports.mjs vs host/wasmtime/haports-wasmtime.
    for name, c in (("nat.json", nat), ("srcip.json", srcip), ("invalid.json", bad)):
        with open(os.path.join(tmp, name), "w") as f:
            json.dump(c, f)
    with open(os.path.join(tmp, "events.jsonl"), "w") as f:
        f.write('{"at": 2000, "backend": "nva-1", "state": "down"}\n{"at": 5000, "backend": "nva-2", "state": "draining"}\n'
                '\n{"at": 8000, "backend": "nva-1", "state": "up"}\n{"at": 6000, "backend": "nva6-0", "state": "down"}\n')
    cases = [("replay demo (examples/config.json, --frontend fe-v4, --verdicts)",
              ["replay", "--config", "examples/config.json", "--frontend", "fe-v4", "--verdicts",
               os.path.join(tmp, "demo-{engine}.jsonl"), "examples/sample.pcap"], ["demo-{engine}.jsonl"], "stdout")]
    for c in captures:
        cases.append((f"replay {c}", ["replay", "--config", "test/diff/config.json", os.path.join(corpus, c)], [],
                      "stderr"))
    cases += [
        ("replay random-eth.pcap, NAT config, --out", ["replay", "--config", os.path.join(tmp, "nat.json"), "--verdicts",
         os.path.join(tmp, "nat-{engine}.jsonl"), "--out", os.path.join(tmp, "nat-{engine}.pcap"),
         os.path.join(tmp, "random-eth.pcap")], ["nat-{engine}.jsonl", "nat-{engine}.pcap"], "stdout"),
        ("replay random-eth.pcap, --events (down, draining, up)", ["replay", "--config", "test/diff/config.json",
         "--events", os.path.join(tmp, "events.jsonl"), "--verdicts", os.path.join(tmp, "ev-{engine}.jsonl"),
         os.path.join(tmp, "random-eth.pcap")], ["ev-{engine}.jsonl"], "stdout"),
        ("replay random-raw.pcapng, sourceIP config, --frontend fe-v6", ["replay", "--config",
         os.path.join(tmp, "srcip.json"), "--frontend", "fe-v6", "--quiet", os.path.join(tmp, "random-raw.pcapng")], [],
         None),
        ("validate --json of an invalid configuration", ["validate", "--json", os.path.join(tmp, "invalid.json")], [],
         "json"),
        ("validate of the NAT configuration", ["validate", os.path.join(tmp, "nat.json")], [], "stdout"),
        ("replay with an unknown frontend (exit 2)", ["replay", "--config", "test/diff/config.json", "--frontend",
         "nope", "examples/sample.pcap"], [], None),
    ]
    cli_pairs(tmp, cases)
    check_format_address()
    check_bom()
    check_abort(tmp)
    print(f"# total {time.time() - t_start:.1f} s")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
