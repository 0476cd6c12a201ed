#!/usr/bin/env python3
"""The fleet as a test: three `haports pump` instances behind a BGP/ECMP router, no shared
state, under real load, while instances die and join and an appliance fails.

examples/fleet/fleet.py builds the fleet from examples/fleet/topology.json (the one
description; fleet.sh and docs/fleet.svg use it too), with this test's own namespace prefix:

    client VTEP ─┐                    ┌─ pump0 (BIRD + pump) ─┐
                 ├─ router (BIRD) ────┼─ pump1 (BIRD + pump) ─┼─▶ nva0 / nva1 / nva2 ─▶ the other VTEP
    server VTEP ─┘  ECMP over the     └─ pump2 (BIRD + pump) ─┘   (stateful firewalls)
                    instances that announce 10.250.0.1 (eBGP, BFD 100 ms × 3)

The VTEPs' tunnels go to the anycast address; the router spreads them by the outer 5-tuple
(the VXLAN source port follows the inner flow), so the two directions of one connection
usually cross DIFFERENT instances. Every instance runs the same configuration (same
hashKey, appliances, probes), so they all pick the same appliance for a flow.

The load, all the time (examples/fleet/traffic.py in the client's namespace): a pool of
200 long-lived TCP connections (half IPv4, half IPv6) to the server's echo service, each
sending a byte every 100 ms; 24 UDP flows at 100 datagrams/s each (their gaps measure
re-convergence to ~10 ms); during each event also iperf3 (4 TCP streams) and short HTTP
connections at 20/s.

Parts:
  A. spread and symmetry: each instance's share (packets and flows, from its metrics);
     connections whose two directions are tracked by different instances (GET /flows)
     and whether those instances chose the same appliance; every connection in exactly
     one firewall's conntrack, replied; 0 INVALID, 0 denied, 0 RST.
  B. kill -9 of one instance's pump under load (its supervisor flushes the address, BIRD
     withdraws): connections before/after, resets and INVALID (0), re-convergence.
  C. the instance joins under load: the same counts.
  D. the whole instance dies (its switch port goes dark, then kill -9 of supervisor, pump
     and BIRD): only BFD can tell; D2: it joins again.
  E. rolling SIGHUP reload of every instance; E2: a planned stop (SIGTERM: withdraw,
     forward withdrawSeconds more, stop): no gap at all; E3: it joins again.
  (FLEET_SOAK=SECONDS: random kills, whole or pump only, and joins, with the checks of B-D.)
  F. an appliance fails (its health endpoint stops) and 0.5 s later an instance's pump is
     killed; then it heals and the instance joins.
  F3. an appliance is down in every instance, 60 connections open meanwhile, it comes
     back, and once every instance has it up an instance is killed (handover).
  F2. an appliance fails and 3 s later (every instance has marked it down) an instance
     is killed.
  G. one instance cannot probe one appliance (its probes are refused) and restarts: it
     announces with a view of health the others do not share.
  For F, F3, F2 and G it prints, per connection of the pool, what happened: kept its
  appliance / moved to another one (whose firewall drops it as INVALID) / reset, grouped
  by the appliance it was on. Asserted: 0 resets, and every connection of the appliances
  not involved kept its appliance (in F, all of them).

Figures are printed at the end and written to build/fleet/results.json. Needs root; the
Debian packages it needs (bird2, nftables, iperf3, conntrack, ...) are installed with
apt-get when missing; node and a build of haports (npm run build) must be there. About
2-3 minutes; FLEET_SOAK=SECONDS adds a soak: random kills and joins under the same load.
Everything is removed at the end, on failure too (FLEET_KEEP=1 leaves it up for a look).
"""
import ipaddress
import json
import math
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples" / "fleet"))
sys.path.insert(0, str(ROOT / "test" / "lib"))
import fleet as fleetlib  # noqa: E402
from scenario import NetnsAgent, Report, first_line, install_missing, run, run_scenario  # noqa: E402

TAG = f"hpft{os.getpid()}"
WORK = Path(os.environ.get("FLEET_TEST_DIR", ROOT / "build" / "fleet"))
BOUND = 300 + int(os.environ.get("FLEET_SOAK", "0") or 0)
POOL = int(os.environ.get("FLEET_POOL", "200"))
UDP_FLOWS = 24
IPERF_RATE = os.environ.get("FLEET_IPERF_RATE", "25M")   # per stream, 4 streams
SHORT_RATE = 20
KILL_AFTER_FAILURE = float(os.environ.get("FLEET_KILL_AFTER_FAILURE", "0.5"))

PACKAGES = {"bird": "bird2", "birdc": "bird2", "nft": "nftables", "iperf3": "iperf3", "conntrack": "conntrack",
            "iptables": "iptables", "ip": "iproute2", "bridge": "iproute2", "curl": "curl", "ping": "iputils-ping",
            "ethtool": "ethtool", "sysctl": "procps"}

R = Report("test_fleet", record=WORK / "results.json")
part, check, figure, record = R.part, R.check, R.figure, R.record


def norm(a):
    return ipaddress.ip_address(a).compressed


def key(proto, a, ap, b, bp):
    return (proto, frozenset([(norm(a), int(ap)), (norm(b), int(bp))]))


# ---- The client's load, the router's route, iperf3 -------------------------------------

class Load(NetnsAgent):
    """examples/fleet/traffic.py load, in the client's namespace: JSON lines in and out."""

    def __init__(self, F):
        super().__init__(F.ns("client"), [sys.executable, str(ROOT / "examples" / "fleet" / "traffic.py"), "load"], "the load generator")

    def call(self, **c):
        r = super().call(**c)
        if "error" in r:
            raise RuntimeError(f"load {c.get('op')}: {r['error']}")
        return r

    def close(self):
        super().close(goodbye={"op": "close"})


class RouteMonitor:
    """`ip -ts monitor route` in the router's namespace: when its route to the anycast
    address changed (the kernel's notification time), and to which next hops."""

    HEAD = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)\] (Deleted )?(\S+)(.*)$")

    def __init__(self, F):
        self.F = F
        self.lock = threading.Lock()
        self.changes = [(time.time(), F.nexthops())]
        self.pending = None   # [t, deleted, dst, hops]
        self.p = subprocess.Popen(["ip", "netns", "exec", F.ns(F.rtr), "ip", "-ts", "monitor", "route"], stdout=subprocess.PIPE, text=True, bufsize=1)
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def flush(self):
        r, self.pending = self.pending, None
        if r and r[2] in (self.F.anycast_ip, self.F.anycast):
            hops = [] if r[1] else sorted(r[3])
            if hops != self.changes[-1][1]:
                self.changes.append((r[0], hops))

    def loop(self):
        from datetime import datetime
        for line in self.p.stdout:
            m = self.HEAD.match(line)
            with self.lock:
                if m:
                    self.flush()
                    t = datetime.fromisoformat(m.group(1)).timestamp()   # local time, as ip prints it
                    via = re.search(r" via (\S+)", m.group(4))
                    self.pending = [t, bool(m.group(2)), m.group(3), [via.group(1)] if via else []]
                elif self.pending and "nexthop via" in line:
                    self.pending[3].append(line.split("nexthop via", 1)[1].split()[0])

    def when(self, hops, after):
        """The first time after `after` the route had exactly these next hops."""
        hops = sorted(hops)
        with self.lock:
            self.flush()
            for t, h in self.changes:
                if t >= after and h == hops:
                    return t
        return None

    def close(self):
        self.p.kill()
        self.p.wait()


class Iperf:
    def __init__(self, F, addr, seconds, streams=4):
        self.t0 = time.time()
        self.p = subprocess.Popen(["ip", "netns", "exec", F.ns("client"), "iperf3", "-c", addr, "-p", str(F.t["services"]["iperf3"]),
                                   "-t", str(seconds), "-P", str(streams), "-b", IPERF_RATE, "-i", "0.2", "-J", "--connect-timeout", "3000"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(self, timeout=30):
        try:
            out, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, err = self.p.communicate()
        try:
            j = json.loads(out)
        except ValueError:
            return {"error": (err or out).strip()[-300:] or f"exit {self.p.returncode}"}
        if j.get("error"):
            return {"error": j["error"]}
        end = j.get("end", {})
        iv = [(self.t0 + i["sum"]["start"], i["sum"]["bits_per_second"]) for i in j.get("intervals", []) if "sum" in i]
        return {"bps": end.get("sum_received", {}).get("bits_per_second", 0), "retransmits": end.get("sum_sent", {}).get("retransmits"),
                "intervals": iv, "ports": [c.get("local_port") for c in j.get("start", {}).get("connected", [])]}


# ---- The firewalls' view -----------------------------------------------------------------

def snapshot(F):
    s = {"where": {}, "fw": {}, "invalid": {}, "rst": {}, "t": time.time()}
    for n in F.nvas:
        for e in F.conntrack(n):
            k = e["key"]
            if e["proto"] in ("tcp", "udp"):
                k = key(e["proto"], e["src"], e["sport"], e["dst"], e["dport"])
            s["where"].setdefault(k, {})[n] = e
        s["fw"][n] = F.fw_counters(n)
        s["invalid"][n] = {key("tcp", *t): v for t, v in F.invalid_connections(n).items()}
        s.setdefault("invalid_l4", {})[n] = F.invalid_protocols(n)
        raw = F.invalid_connections(n, "rst")
        s["rst"][n] = {key("tcp", *t): v for t, v in raw.items()}
        s.setdefault("rst_dir", {})[n] = raw
    return s


def delta(a, b, n, counter):
    return b["fw"][n].get(counter, 0) - a["fw"][n].get(counter, 0)


def set_delta(a, b, which):
    """{key: {nva: packets}} of the per-connection INVALID/RST sets that grew between two snapshots."""
    out = {}
    for n in b[which]:
        for k, v in b[which][n].items():
            if v > a[which].get(n, {}).get(k, 0):
                out.setdefault(k, {})[n] = v - a[which].get(n, {}).get(k, 0)
    return out


def pump_counters(F):
    out = {}
    for p in F.pumps:
        ms = F.metrics(p) if F.pump_running(p) else {}
        out[p] = {"rx": sum(v for (k, _), v in ms.items() if k == "haports_pump_received_packets_total"),
                  "flows": sum(v for (k, _), v in ms.items() if k == "haports_rule_flows_total"),
                  "handovers": sum(v for (k, _), v in ms.items() if k == "haports_flow_handovers_total"),
                  "moved": sum(v for (k, _), v in ms.items() if k == "haports_flows_moved_total"),
                  "pid": F.pump_pid(p), "running": bool(ms),
                  "up": {dict(lb).get("backend"): int(v) for (k, lb), v in ms.items() if k == "haports_backend_up"}}
    return out


def flows_by_instance(F):
    """{connection key: {instance: backend}} from each running pump's GET /flows."""
    out = {}
    for p in F.pumps:
        if not F.pump_running(p):
            continue
        code, body = F.http_get(p, "/flows?limit=10000")
        if code != 200:
            continue
        for f in json.loads(body).get("flows", []):
            proto = {6: "tcp", 17: "udp"}.get(f.get("proto"))
            if proto:
                out.setdefault(key(proto, f["src"], f["sport"], f["dst"], f["dport"]), {})[p] = f["backend"]
    return out


def per(names, values):
    return {n: sum(1 for v in values if v == n) for n in names}


# ---- One event under load ------------------------------------------------------------------

class Ctx:
    pass


def pool_keys(C, rep):
    return {cid(c): key("tcp", C.c4 if ":" not in c["addr"] else C.c6, c["lport"], c["addr"], C.echo) for c in rep["tcp"]}


def cid(c):
    """A pool connection's identity: IPv4 and IPv6 connections may have the same local port."""
    return (c["addr"], c["lport"])


def under_load(C, title, action, settle=4.0, expect_hops=None, bound=None, assert_clean=True, classify=None):
    """Runs action() under the full load and measures what it did. Returns a dict of figures."""
    F, load = C.F, C.load
    part(title)
    rep0 = load.call(op="report")
    alive0 = {cid(c): c for c in rep0["tcp"] if c["alive"]}
    keys = pool_keys(C, rep0)
    snap0 = snapshot(F)
    home0 = {}
    for lp in alive0:
        at = snap0["where"].get(keys[lp], {})
        home0[lp] = next(iter(at)) if len(at) == 1 else None
    pumps0 = pump_counters(F)
    load.call(op="mark")
    ip = Iperf(F, C.s4, int(math.ceil(1.5 + settle + 0.5)))
    load.call(op="short", addr=C.s4, port=C.http, rate=SHORT_RATE, threads=4)
    time.sleep(1.5)
    t0 = time.time()
    info = action() or {}
    while time.time() < t0 + settle:
        time.sleep(0.05)
    shorts = load.call(op="short_stop")["short"]
    perf = ip.result()
    rep1 = load.call(op="report")
    snap1 = snapshot(F)
    pumps1 = pump_counters(F)
    out = {"t0": t0, **info}

    # Re-convergence: the UDP flows' gaps (> 50 ms without an echo) around the event, or
    # around the router's change (a join changes the route a second or two after the start).
    t_route = None
    if expect_hops is not None:
        t_route = C.mon.when([F.pump_ip[p] for p in expect_hops], t0)
        figure("router's ECMP route changed to", f"{len(expect_hops)} next hops {t_route - t0:.3f}s after the event"
               if t_route else f"NOT {sorted(expect_hops)}: {F.nexthops()}")
        out["route_s"] = round(t_route - t0, 3) if t_route else None
        check(t_route is not None, f"the router's route to {F.anycast} has next hops {', '.join(expect_hops)}")
    windows = [(t0 - 0.1, t0 + 1.0)] + ([(t_route - 0.1, t_route + 1.0)] if t_route else [])
    hit, other, flows_hit = [], [], 0
    for f in rep1["udp"]:
        mine = False
        for g0, g1 in f["gaps"]:
            if g1 is not None and g1 < t0:
                continue
            if any(a <= g0 <= b for a, b in windows):
                hit.append((g0, g1))
                mine = True
            else:
                other.append((g0, g1))
        flows_hit += mine
    unrecovered = [g for g in hit + other if g[1] is None]
    outage = [g1 - max(g0, t0) for g0, g1 in hit if g1 is not None]
    since = [g1 - t0 for g0, g1 in hit if g1 is not None]
    figure("UDP flows interrupted (> 50 ms without an echo) by the event", f"{flows_hit} of {len(rep1['udp'])}"
           + (f"; other gaps in the window: {len(other)}, longest {max((g1 or time.time()) - g0 for g0, g1 in other):.3f}s" if other else ""))
    if outage:
        figure("their outage (last echo before → first after)", f"max {max(outage):.3f}s, median {sorted(outage)[len(outage) // 2]:.3f}s; "
               f"flowing again {max(since):.3f}s after the event")
    out["udp_gaps"] = flows_hit
    out["outage_s"] = round(max(outage), 3) if outage else 0.0
    out["flowing_again_s"] = round(max(since), 3) if since else 0.0
    check(not unrecovered, f"every UDP flow flows again ({len(unrecovered)} still broken)")
    if bound is not None:
        check(not outage or max(outage) <= bound, f"outage at most {bound}s: {max(outage) if outage else 0:.3f}s")

    # The pool of long-lived connections.
    after = {cid(c): c for c in rep1["tcp"]}
    dead = {lp: after[lp] for lp in alive0 if not after[lp]["alive"]}
    reset = {lp: c for lp, c in dead.items() if c["err"] and ("reset" in c["err"].lower() or "Reset" in c["err"])}
    tcp_gaps = [g1 - t0 for c in rep1["tcp"] for g0, g1 in c["gaps"] if g1 is not None and g1 > t0]
    figure("long-lived connections alive before → after", f"{len(alive0)} → {len(alive0) - len(dead)} (reset {len(reset)}, "
           f"other errors {sum(1 for c in dead.values() if c['err'] and c not in reset.values())}, stalled {sum(1 for c in dead.values() if not c['err'])})")
    figure("long-lived connections that paused > 0.35 s", f"{len(tcp_gaps)}" + (f", longest resumed {max(tcp_gaps):.2f}s after the event" if tcp_gaps else ""))
    out.update(pool_before=len(alive0), pool_after=len(alive0) - len(dead), pool_reset=len(reset), pool_paused=len(tcp_gaps),
               pool_pause_max_s=round(max(tcp_gaps), 3) if tcp_gaps else 0.0)

    # The firewalls.
    inv = {n: delta(snap0, snap1, n, "invalid") for n in F.nvas}
    den = {n: delta(snap0, snap1, n, "denied") for n in F.nvas}
    rst_new = {k: v for k, v in set_delta(snap0, snap1, "rst").items() if C.iperf_port not in {p for _, p in k[1]}}
    inv_new = set_delta(snap0, snap1, "invalid")
    # Connections of the pool that an earlier part broke keep retransmitting into a firewall
    # that drops them: their INVALID packets are that part's, not this one's.
    stale = {keys[lp] for lp in keys if lp not in alive0}
    stale_inv = sum(v for k, at in inv_new.items() if k in stale for v in at.values())
    inv_new = {k: at for k, at in inv_new.items() if k not in stale}
    pool_set = set(keys.values())
    short_set = {key("tcp", C.c4, sh[1], C.s4, C.http) for sh in shorts if sh[1]}

    def kind(k):
        ports = {p for _, p in k[1]}
        return ("long-lived" if k in pool_set else "short" if k in short_set else "iperf3" if C.iperf_port in ports
                else "http (earlier)" if C.http in ports else "other")
    figure("INVALID drops in the firewalls", inv if not stale_inv else f"{inv}, of which {stale_inv} of connections broken earlier")
    by_proto = {}
    for n in F.nvas:
        for proto, v in snap1["invalid_l4"][n].items():
            d = v - snap0["invalid_l4"][n].get(proto, 0)
            if d:
                by_proto[proto] = by_proto.get(proto, 0) + d
    if by_proto:
        figure("INVALID drops by protocol", by_proto)
    if inv_new:
        figure("INVALID drops by connection", per(["long-lived", "short", "http (earlier)", "iperf3", "other"], [kind(k) for k in inv_new]))
    figure("denied", den)
    figure("TCP RSTs through the firewalls (iperf3's own end-of-test RSTs left out)", len(rst_new))
    answered = {key("tcp", C.c4, sh[1], C.s4, C.http) for sh in shorts if sh[1] and sh[2]}
    harmful = {k: v for k, v in rst_new.items() if k not in answered}
    if rst_new:
        dirs = [f"{n}: {t[0]}:{t[1]} → {t[2]}:{t[3]} ×{v - snap0.get('rst_dir', {}).get(n, {}).get(t, 0)}"
                for n in F.nvas for t, v in snap1["rst_dir"][n].items()
                if key("tcp", *t) in rst_new and v > snap0.get("rst_dir", {}).get(n, {}).get(t, 0)]
        figure("RSTs by connection", [(kind(k), "answered in full" if k in answered else "NOT answered") for k in rst_new] + dirs[:6])
    out.update(invalid=sum(inv.values()), denied=sum(den.values()), rst=len(rst_new))  # noqa: E501

    # Short connections and iperf3.
    bad = [s for s in shorts if not s[2]]
    slow = [s for s in shorts if s[2] and s[4] > 0.9]
    figure("short connections (HTTP, 20/s)", f"{len(shorts)} made, {len(shorts) - len(bad)} answered, {len(slow)} took > 0.9 s (a SYN retransmitted), "
           f"slowest {max((s[4] for s in shorts), default=0):.2f}s")
    out.update(short=len(shorts), short_failed=len(bad), short_slow=len(slow))
    if "error" in perf:
        figure("iperf3", perf["error"])
    else:
        low = [bps for t, bps in perf["intervals"] if t >= t0 - 0.2]
        figure("iperf3, 4 streams", f"{perf['bps'] / 1e6:.0f} Mbit/s, {perf['retransmits']} retransmits, "
               f"lowest 0.2 s interval after the event {min(low, default=0) / 1e6:.0f} Mbit/s")
        out.update(iperf_mbps=round(perf["bps"] / 1e6), iperf_retransmits=perf["retransmits"], iperf_min_mbps=round(min(low, default=0) / 1e6))
    shares = {p: pumps1[p]["rx"] - pumps0[p]["rx"] for p in F.pumps if pumps1[p]["rx"] >= pumps0[p]["rx"]}
    tot = sum(shares.values()) or 1
    figure("packets received per instance during the event", {p: f"{int(v)} ({100 * v / tot:.0f}%)" for p, v in shares.items()})
    same = [p for p in F.pumps if pumps0[p]["running"] and pumps1[p]["running"] and pumps0[p]["pid"] == pumps1[p]["pid"]]
    ho = {p: int(pumps1[p]["handovers"] - pumps0[p]["handovers"]) for p in same}
    mv = {p: int(pumps1[p]["moved"] - pumps0[p]["moved"]) for p in same}
    if any(ho.values()) or any(mv.values()):
        figure("the pumps' handovers / flows moved off a down backend (instances that ran throughout)", f"{ho} / {mv}")

    # Placement: each live connection still in exactly one firewall, the same one.
    moved, multi = [], []
    for lp in alive0:
        at = snap1["where"].get(keys[lp], {})
        if len(at) > 1:
            multi.append(lp)
        elif home0[lp] and at and next(iter(at)) != home0[lp]:
            moved.append(lp)
    out.update(moved=len(moved), multi=len(multi))
    if classify:
        out.update(classify(C, alive0, keys, home0, after, snap0, snap1, inv_new, t0))
    if assert_clean:
        check(not dead, f"all {len(alive0)} long-lived connections alive after it" + (f"; not: {[(lp, c['err']) for lp, c in list(dead.items())[:4]]}" if dead else ""))
        check(not reset and not harmful, f"0 resets (client errors {len(reset)}, RSTs seen by the firewalls {len(rst_new)}"
              + (f", {len(rst_new) - len(harmful)} of them after a short connection had its whole answer" if len(rst_new) > len(harmful) else "") + ")")
        check(sum(inv.values()) - stale_inv == 0 and sum(den.values()) == 0, f"0 INVALID and 0 denied in the firewalls: {inv} {den}"
              + (f" ({stale_inv} INVALID of connections broken earlier left out)" if stale_inv else ""))
        check(not moved and not multi, f"every long-lived connection still in its one firewall's conntrack ({len(moved)} moved, {len(multi)} in two)")
        check(not bad, f"all {len(shorts)} short connections answered" + (f"; failed: {bad[:3]}" if bad else ""))
        check("error" not in perf, f"iperf3 ran through it: {perf.get('error', 'ok')}")
    record["parts"].setdefault(R.current, {})["summary"] = {k: v for k, v in out.items() if k != "t0"}
    return out


def classify_outcomes(C, alive0, keys, home0, after, snap0, snap1, inv_new, t0):
    """Per connection of the pool: kept its appliance, moved (dropped as INVALID by another), reset, other."""
    F = C.F
    rows = {}
    detail = {}
    for lp, c0 in alive0.items():
        k = keys[lp]
        home = home0[lp]
        c1 = after[lp]
        e0 = snap0["where"].get(k, {}).get(home) if home else None
        e1 = snap1["where"].get(k, {}).get(home) if home else None
        grew = bool(e0 and e1 and e1["packets"] > e0["packets"])
        invalid_at = sorted(inv_new.get(k, {}))
        if c1["err"] and "reset" in c1["err"].lower():
            what = "reset"
        elif invalid_at and c1["alive"]:
            what = f"sent to {'+'.join(invalid_at)} for a while (INVALID there), alive again"
        elif invalid_at:
            what = f"moved to {'+'.join(invalid_at)} (INVALID there)"
        elif c1["alive"] and grew:
            what = "kept its appliance"
        elif c1["alive"]:
            what = "alive, not in its firewall's counters"
        else:
            what = f"broken ({c1['err'] or 'stalled'})"
        group = (f"{C.subset_name}, " if lp in C.subset else "") + ("hurt in an earlier part, " if lp in C.troubled else "") + f"on {home or '?'}"
        rows.setdefault(group, {}).setdefault(what, 0)
        rows[group][what] += 1
        detail[lp] = what
    for group in sorted(rows):
        figure(f"connections {group}", rows[group])
    C.last_outcomes = detail
    C.troubled |= {lp for lp, what in detail.items() if what != "kept its appliance"}
    return {"outcomes": rows}


# ---- The scenario ----------------------------------------------------------------------------

def scenario(C):
    F = C.F
    t = F.t
    C.c4, C.c6, C.s4, C.s6 = t["client"]["inner4"], t["client"]["inner6"], t["server"]["inner4"], t["server"]["inner6"]
    C.echo, C.http, C.iperf_port = t["services"]["echo"], t["services"]["http"], t["services"]["iperf3"]

    part("set-up")
    t_up = time.monotonic()
    F.up()
    figure("fleet up (namespaces, BIRD sessions, 3 pumps ready, ECMP over 3)", f"{time.monotonic() - t_up:.1f}s")
    mode = (F.dir / "announce-mode").read_text().strip()
    figure("announcement", "the pump's own pump.announce" if mode == "pump" else "emulated by the supervisor (this pump has no pump.announce)")
    figure("announce interface", (F.dir / "announce-interface").read_text().strip() if (F.dir / "announce-interface").exists() else "?")
    check(F.nexthops() == sorted(F.pump_ip.values()), f"router: {F.anycast} via {F.nexthops()}")
    check(all(F.announced(p) for p in F.pumps), "every instance holds the anycast address on " + F.announce_if)
    check(all(F.ready(p) in (True, None) for p in F.pumps), f"every instance ready: {[F.ready(p) for p in F.pumps]}")
    hp = F.nsx(F.rtr, "sysctl", "-n", "net.ipv4.fib_multipath_hash_policy").stdout.strip()
    check(hp == "1", f"router: net.ipv4.fib_multipath_hash_policy={hp}")
    bfd = F.birdc(F.rtr, "show", "bfd", "sessions").stdout
    check(bfd.count(" Up ") == 3, f"router: 3 BFD sessions up ({bfd.count(' Up ')})")
    C.mon = RouteMonitor(F)
    C.load = load = Load(F)

    part("A. spread and symmetry")
    pool4 = load.call(op="pool", addr=C.s4, port=C.echo, n=POOL // 2)
    pool6 = load.call(op="pool", addr=C.s6, port=C.echo, n=POOL - POOL // 2)
    check(not pool4["failed"] and not pool6["failed"], f"{len(pool4['opened']) + len(pool6['opened'])} long-lived TCP connections opened "
          f"({len(pool4['opened'])} IPv4, {len(pool6['opened'])} IPv6) in {pool4['seconds'] + pool6['seconds']:.1f}s")
    udp = load.call(op="udp", addr=C.s4, port=C.echo, n=UDP_FLOWS)
    c0 = pump_counters(F)
    shorts = load.call(op="batch", addr=C.s4, port=C.http, n=150, parallel=8)["short"]
    shorts += load.call(op="batch", addr=C.s6, port=C.http, n=50, parallel=8)["short"]
    ip = Iperf(F, C.s4, 3)
    perf = ip.result()
    time.sleep(0.5)
    c1 = pump_counters(F)
    rep = load.call(op="report")
    check(all(s[2] for s in shorts), f"{sum(1 for s in shorts if s[2])} of {len(shorts)} short HTTP connections answered (150 IPv4, 50 IPv6)")
    check("error" not in perf, "iperf3, 4 streams: " + (perf.get("error") or f"{perf['bps'] / 1e6:.0f} Mbit/s, {perf['retransmits']} retransmits"))
    check(all(c["alive"] for c in rep["tcp"]), f"all {len(rep['tcp'])} long-lived connections echo")
    rx = {p: c1[p]["rx"] - c0[p]["rx"] for p in F.pumps}
    fl = {p: c1[p]["flows"] - c0[p]["flows"] for p in F.pumps}
    tot = sum(rx.values()) or 1
    figure("packets received per instance", {p: f"{int(v)} ({100 * v / tot:.0f}%)" for p, v in rx.items()})
    figure("new flows per instance (each direction counts where it lands)", {p: int(v) for p, v in fl.items()})
    check(all(v > 0 for v in rx.values()) and all(v > 0 for v in fl.values()), "traffic reaches all 3 instances")
    record["parts"][R.current]["share"] = {p: round(v / tot, 3) for p, v in rx.items()}
    # Which instances track each connection (GET /flows), and whether they agree.
    fbi = flows_by_instance(F)
    keys_tcp = [key("tcp", C.c4 if ":" not in c["addr"] else C.c6, c["lport"], c["addr"], C.echo) for c in rep["tcp"]]
    keys_short = [key("tcp", C.c4 if ":" not in s_addr else C.c6, s[1], s_addr, C.http)
                  for s, s_addr in zip(shorts, [C.s4] * 150 + [C.s6] * 50) if s[1]]
    keys_udp = [key("udp", C.c4, f["lport"], C.s4, C.echo) for f in rep["udp"]]
    keys_perf = [key("tcp", C.c4, p, C.s4, C.iperf_port) for p in perf.get("ports", []) if p]
    if fbi:
        tracked = [k for k in keys_tcp + keys_udp if k in fbi]
        split = [k for k in tracked if len(fbi[k]) > 1]
        disagree = [k for k in split if len(set(fbi[k].values())) > 1]
        hist = {n: sum(1 for k in tracked if len(fbi[k]) == n) for n in (1, 2, 3)}
        figure("long-lived TCP and UDP flows tracked by 1 / 2 / 3 instances (GET /flows)", hist)
        check(len(split) > 0, f"{len(split)} of {len(tracked)} flows have their two directions on different instances")
        check(not disagree, f"every instance that tracks a flow chose the same appliance ({len(disagree)} disagree)")
        record["parts"][R.current]["instances_per_flow"] = hist
    else:
        figure("GET /flows", "not served by this pump: which instance carries which direction is not shown")
    time.sleep(0.3)
    snap = snapshot(F)
    allk = {"long-lived": keys_tcp, "short": keys_short, "udp": keys_udp, "iperf3": keys_perf}
    for what, ks in allk.items():
        where = [snap["where"].get(k, {}) for k in ks]
        one = [w for w in where if len(w) == 1 and next(iter(w.values()))["replied"]]
        check(len(one) == len(ks), f"{what}: {len(one)} of {len(ks)} connections in exactly one firewall's conntrack, replied: "
              f"{per(F.nvas, [next(iter(w)) for w in where if len(w) == 1])}" + (f"; in two: {sum(1 for w in where if len(w) > 1)}, in none: {sum(1 for w in where if not w)}"
                                                                                 if len(one) != len(ks) else ""))
    inv = {n: snap["fw"][n].get("invalid", 0) for n in F.nvas}
    den = {n: snap["fw"][n].get("denied", 0) for n in F.nvas}
    check(not any(inv.values()) and not any(den.values()), f"0 INVALID, 0 denied: {inv} {den}")
    rst = {k for n in F.nvas for k in snap["rst"][n] if C.iperf_port not in {p for _, p in k[1]}}
    check(not rst, f"0 TCP RSTs apart from iperf3's end of test ({len(rst)})")
    C.home = {cid(c): next(iter(snap["where"].get(k, {"?": 0}))) for c, k in zip(rep["tcp"], keys_tcp)}
    figure("long-lived connections per appliance", per(F.nvas, C.home.values()))

    # B, C: kill -9 of one pump, then it joins.
    victim = F.pumps[1]
    others = [p for p in F.pumps if p != victim]

    def kill_pump():
        return {"killed": F.kill(victim)}
    under_load(C, f"B. kill -9 of {victim}'s pump under load (its supervisor withdraws the route)", kill_pump, expect_hops=others, bound=1.0)

    def join():
        t = time.time()
        F.join(victim)
        return {"started_at": t}
    r = under_load(C, f"C. {victim} joins under load", join, settle=6.0, expect_hops=F.pumps, bound=1.0)
    if r.get("route_s") is not None:
        figure("from start to announced (the pump: probe round, bind, ready; BGP update)", f"{r['route_s']:.2f}s")

    # D: the whole instance dies (BFD), then joins.
    victim = F.pumps[2]
    others = [p for p in F.pumps if p != victim]

    def die():
        return {"killed": F.kill(victim, whole=True)}
    r = under_load(C, f"D. the whole instance {victim} dies (switch port dark; supervisor, pump and BIRD killed)", die,
                   expect_hops=others, bound=1.5)
    last = [" ".join(l.split()) for l in F.birdc(F.rtr, "show", "protocols", "all", victim).stdout.splitlines() if "Last error" in l]
    check(any("BFD session down" in l for l in last), f"the router's BIRD took the session to {victim} down by BFD: {last or 'no error shown'}")

    def join_whole():
        return {"started": F.join(victim)}
    under_load(C, f"D2. {victim} joins again (port, BIRD, pump)", join_whole, settle=7.0, expect_hops=F.pumps, bound=1.0)

    # E: rolling reload, then a planned stop and a join.
    def rolling():
        return {"reload": F.reload()}
    r = under_load(C, "E. rolling SIGHUP reload, one instance at a time", rolling, settle=6.0)
    for p, what in r.get("reload", []):
        check("reloaded" in what, f"{p}: {what}")
    victim = F.pumps[0]
    others = [p for p in F.pumps if p != victim]

    def planned():
        return {"supervisor": F.graceful_stop(victim)}
    r = under_load(C, f"E2. planned stop of {victim} (SIGTERM: withdraw, forward {t['announce']['withdrawSeconds']}s more, stop)", planned,
                   expect_hops=others, bound=0.2)
    check(r.get("udp_gaps", 1) == 0, f"no UDP flow saw a gap ({r.get('udp_gaps')}): the routers moved the flows before the pump stopped")
    under_load(C, f"E3. {victim} joins again", lambda: {"started": F.join(victim)}, settle=6.0, expect_hops=F.pumps, bound=1.0)

    soak = int(os.environ.get("FLEET_SOAK", "0") or 0)
    if soak:
        rnd = random.Random(os.getpid())
        end = time.time() + soak
        n = 0
        while time.time() < end:
            victim = rnd.choice(F.pumps)
            whole = rnd.random() < 0.5
            others = [p for p in F.pumps if p != victim]
            n += 1
            under_load(C, f"S{n}. soak: {'whole instance ' if whole else 'kill -9 of the pump of '}{victim}",
                       lambda: {"killed": F.kill(victim, whole=whole)}, expect_hops=others, bound=1.5)
            under_load(C, f"S{n}. soak: {victim} joins", lambda: {"started": F.join(victim)}, settle=7.0, expect_hops=F.pumps, bound=1.0)

    # F: an appliance fails while the fleet changes.
    C.subset, C.subset_name, C.troubled = set(), "", set()
    nva = F.nvas[1]
    victim = F.pumps[0]
    others = [p for p in F.pumps if p != victim]

    def fail_then_kill(delay):
        def act():
            F.fail(nva)
            t_fail = time.time()
            time.sleep(delay)
            killed = F.kill(victim)
            return {"failed": nva, "killed": killed, "kill_after_s": round(time.time() - t_fail, 3)}
        return act
    r = under_load(C, f"F. {nva}'s health endpoint stops; {KILL_AFTER_FAILURE}s later kill -9 of {victim}'s pump", fail_then_kill(KILL_AFTER_FAILURE),
                   settle=5.0, expect_hops=others, assert_clean=False, classify=classify_outcomes)
    down = {p: c["up"].get(nva) for p, c in pump_counters(F).items() if F.pump_running(p)}
    figure(f"{nva} up in the surviving instances' view afterwards", down)
    outcomes = r.get("outcomes", {})
    healthy_broken = {h: v for h, v in outcomes.items() if h != f"on {nva}" and set(v) - {"kept its appliance"}}
    check(not healthy_broken, f"the connections of the healthy appliances all kept their appliance: {healthy_broken or 'yes'}")
    check(r["pool_reset"] == 0 and r["rst"] == 0, f"no connection was reset ({r['pool_reset']} client errors, {r['rst']} RSTs)")
    check(set(outcomes.get(f"on {nva}", {})) <= {"kept its appliance"},
          f"the connections of {nva} kept it too (persistOnUnhealthy, and the survivors still saw it up when the flows moved): {outcomes.get(f'on {nva}')}")
    F.heal(nva)
    under_load(C, f"F. recovery: {nva} healed, {victim} joins", lambda: {"started": F.join(victim)}, settle=6.0, expect_hops=F.pumps,
               assert_clean=False)

    # F3: an appliance comes back while the fleet changes. Connections opened while it was
    # down went to the others, some of them away from where the full table puts them.
    nva = F.nvas[2]
    victim = F.pumps[2]
    others = [p for p in F.pumps if p != victim]
    part(f"F3. set-up: {nva} down in every instance, 60 connections opened meanwhile")
    F.fail(nva)
    t_wait = time.time()
    while time.time() - t_wait < 6 and any(c["up"].get(nva) != 0 for p, c in pump_counters(F).items() if F.pump_running(p)):
        time.sleep(0.1)
    check(all(c["up"].get(nva) == 0 for p, c in pump_counters(F).items() if F.pump_running(p)), f"every instance marked {nva} down")
    opened = load.call(op="pool", addr=C.s4, port=C.echo, n=60)["opened"]
    time.sleep(1.0)
    C.subset, C.subset_name = {(C.s4, lp) for lp in opened}, f"opened while {nva} was down"
    pool_now = load.call(op="report")["tcp"]
    snap = snapshot(F)
    where_new = [next(iter(snap["where"].get(key("tcp", C.c4, lp, C.s4, C.echo), {"?": 0}))) for lp in opened]
    figure(f"the {len(opened)} connections opened while {nva} was down, per appliance", per(F.nvas, where_new))
    check(len(opened) == 60 and all(c["alive"] for c in pool_now if cid(c) in C.subset), "all 60 opened and echoing")

    def heal_then_kill():
        F.heal(nva)
        t_heal = time.time()
        while time.time() - t_heal < 6 and any(c["up"].get(nva) != 1 for p, c in pump_counters(F).items() if F.pump_running(p)):
            time.sleep(0.1)
        marked = time.time() - t_heal
        time.sleep(0.5)
        return {"healed": nva, "all_marked_up_s": round(marked, 2), "killed": F.kill(victim)}
    r = under_load(C, f"F3. {nva} comes back; once every instance has it up, kill -9 of {victim}'s pump", heal_then_kill,
                   settle=6.0, expect_hops=others, assert_clean=False, classify=classify_outcomes)
    outcomes = r.get("outcomes", {})
    figure("every instance had it up again after", f"{r.get('all_marked_up_s')}s")
    moved_new = sum(v for g, row in outcomes.items() if g.startswith("opened") for w, v in row.items() if w.startswith("moved"))
    moved_old = sum(v for w, v in outcomes.get(f"on {nva}", {}).items() if w.startswith("moved"))
    figure(f"F3: connections opened while {nva} was down that moved (an instance without their state sent them to {nva})", moved_new)
    figure(f"F3: connections that stayed on {nva} through its outage and moved (an instance without their state sent them "
           f"where the table of the outage put them: handover)", moved_old)
    others_broken = {g: v for g, v in outcomes.items() if g.startswith("on ") and g != f"on {nva}" and set(v) - {"kept its appliance"}}
    check(not others_broken, f"the connections of the appliances that never failed all kept their appliance: {others_broken or 'yes'}")
    record["parts"][R.current]["moved_opened_while_down"] = moved_new
    record["parts"][R.current]["moved_stayed_through_outage"] = moved_old
    F.join(victim)
    F.wait_nexthops(F.pumps, 15)
    time.sleep(1.0)

    # F2 (last: the connections it breaks stay broken): the kill comes after every instance
    # has marked the appliance down.
    nva = F.nvas[0]
    victim = F.pumps[1]
    others = [p for p in F.pumps if p != victim]
    r = under_load(C, f"F2. {nva}'s health endpoint stops; 3 s later (every instance has marked it down) kill -9 of {victim}'s pump",
                   fail_then_kill(3.0), settle=7.0, expect_hops=others, assert_clean=False, classify=classify_outcomes)
    outcomes = r.get("outcomes", {})
    healthy_broken = {h: v for h, v in outcomes.items() if h.startswith("on ") and h != f"on {nva}" and set(v) - {"kept its appliance"}}
    check(not healthy_broken, f"the connections of the healthy appliances (opened with every appliance up) all kept their appliance: {healthy_broken or 'yes'}")
    check(r["pool_reset"] == 0, f"no connection was reset by the client's view ({r['pool_reset']})")
    moved_f3 = sum(v for g, row in outcomes.items() if g.startswith("opened") for w, v in row.items() if w.startswith("moved"))
    figure(f"F2: connections opened during F3's outage that moved now (placed by an older table)", moved_f3)
    moved = sum(v for w, v in outcomes.get(f"on {nva}", {}).items() if w.startswith("moved"))
    figure(f"F2: connections of {nva} that moved (broken: the new appliance has no state for them)", moved)
    record["parts"][R.current]["moved_of_failed"] = moved
    F.heal(nva)

    # G: one instance cannot probe one appliance (a partial failure: a filter, a route),
    # so its view of health differs from the others' for as long as that lasts. It
    # restarts, and announces: it is ready, it has healthy appliances.
    F.join(victim)
    F.wait_nexthops(F.pumps, 15)
    t_wait = time.time()
    while time.time() - t_wait < 6 and any(set(c["up"].values()) != {1} for c in pump_counters(F).values() if c["running"]):
        time.sleep(0.1)
    opened = load.call(op="pool", addr=C.s4, port=C.echo, n=90)["opened"]
    C.subset, C.subset_name = {(C.s4, lp) for lp in opened}, "opened for G"
    time.sleep(1.0)
    nva, victim = F.nvas[1], F.pumps[2]
    block = ["INPUT", "-s", F.pump_ip[victim], "-p", "tcp", "--dport", str(t["probe"]["port"]), "-j", "REJECT", "--reject-with", "tcp-reset"]

    def partial():
        F.nsx(nva, "iptables", "-I", *block)
        F.kill(victim)
        F.wait_nexthops([p for p in F.pumps if p != victim], 5)
        time.sleep(0.5)
        F.join(victim)
        return {"blocked": f"{victim} → {nva}:{t['probe']['port']}"}
    r = under_load(C, f"G. {victim} cannot probe {nva} (its probes are refused), restarts and rejoins", partial, settle=8.0,
                   expect_hops=F.pumps, assert_clean=False, classify=classify_outcomes)
    views = {p: c["up"] for p, c in pump_counters(F).items() if c["running"]}
    figure("health views", views)
    check(views.get(victim, {}).get(nva) == 0 and all(v.get(nva) == 1 for p, v in views.items() if p != victim),
          f"{victim} alone sees {nva} down, and still announces (ready: {F.ready(victim)}, announced: {F.announced(victim)})")
    g = r.get("outcomes", {})
    moved_g = sum(v for grp, row in g.items() if grp.startswith("opened for G") for w, v in row.items() if w.startswith("moved"))
    figure(f"G: connections opened for G that were sent to the wrong appliance and are still broken", moved_g)
    figure("G: the client's and server's net.core.txrehash (TCP picks a new flow hash, so a new outer source port "
           "and maybe another instance, at each retransmission timeout)",
           F.nsx("client", "sysctl", "-n", "net.core.txrehash", check=False).stdout.strip() or "?")
    record["parts"][R.current]["still_broken"] = moved_g
    F.nsx(nva, "iptables", "-D", *block, check=False)


def remove_stale():
    listed = run("ip", "netns", "list", check_rc=False).stdout
    for prefix, pid in sorted(set(re.findall(r"^(hpft(\d+))-\w+", listed, re.M))):
        if not Path(f"/proc/{pid}").exists():
            fleetlib.Fleet(prefix=prefix, run_dir=f"/run/haports-fleet/{prefix}").down(quiet=True)


def main():
    if os.geteuid() != 0:
        print("test_fleet: FAIL: needs root (network namespaces, BIRD, iptables)")
        return 1
    install_missing("test_fleet", PACKAGES)
    F = fleetlib.Fleet(prefix=TAG, run_dir=f"/run/haports-fleet/{TAG}")
    missing = F.missing()
    if missing:
        print("test_fleet: FAIL: cannot run; missing:\n  - " + "\n  - ".join(missing))
        return 1
    u = platform.uname()
    print("test_fleet: three haports pumps behind BGP/ECMP (BIRD, BFD), three stateful firewalls (examples/fleet)", flush=True)
    print(f"  kernel    {u.system} {u.release} {u.machine}, {os.cpu_count()} CPUs")
    for tool, cmd in (("bird", ("bird", "--version")), ("iproute2", ("ip", "-V")), ("iptables", ("iptables", "--version")),
                      ("nft", ("nft", "--version")), ("iperf3", ("iperf3", "--version")), ("node", (F.node, "--version"))):
        print(f"  {tool:9} {first_line(*cmd)}")
    print(f"  prefix    {TAG}, run directory {F.dir}", flush=True)
    record.update(kernel=u.release, cpus=os.cpu_count(), bird=first_line("bird", "--version"), node=first_line(F.node, "--version"),
                  started=time.strftime("%Y-%m-%d %H:%M:%S"))
    C = Ctx()
    C.F, C.load, C.mon = F, None, None

    def body():
        remove_stale()
        scenario(C)

    def cleanup():
        if C.load:
            C.load.close()
        if C.mon:
            C.mon.close()
        try:
            WORK.mkdir(parents=True, exist_ok=True)
            for f in [F.dir / "pump.json", F.dir / "bird-pump.conf", F.dir / "bird-rtr.conf", *F.dir.glob("*/pump.log"),
                      *F.dir.glob("*/bird.log"), *F.dir.glob("*/supervisor.log")]:
                if f.exists():
                    dst = WORK / (f.name if f.parent == F.dir else f"{f.parent.name}-{f.name}")
                    shutil.copy(f, dst)
        except OSError:
            pass
        if os.environ.get("FLEET_KEEP"):
            print(f"  FLEET_KEEP: left up; remove with FLEET_PREFIX={TAG} FLEET_DIR={F.dir} examples/fleet/fleet.sh down")
        else:
            F.down(quiet=True)
            left = [ns for ns in run("ip", "netns", "list", check_rc=False).stdout.split() if ns.startswith(TAG + "-")]
            check(not left and not F.dir.exists(), "namespaces and run directory removed" + (f"; left: {left}" if left else ""))
    return run_scenario(R, body, cleanup, bound=BOUND, note=f"logs and results in {WORK}")


if __name__ == "__main__":
    sys.exit(main())
