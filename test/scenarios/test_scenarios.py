#!/usr/bin/env python3
"""Forwarding-semantics scenarios (issue 4), end to end through `haports replay`.

Usage: python3 test/scenarios/test_scenarios.py [-v] [--keep] [--only WORD]
  (needs `npm run build`; scapy from test/requirements.txt; tshark)
  -v: list passing cases too; --keep: keep the captures, configurations, events and
  verdicts (kept anyway when a case fails; the directory is printed); --only: run only
  the policy scenarios whose description contains WORD.

Three parts, each a table:

1. Policy scenarios: a capture (made with scapy), backend events (--events) and a
   configuration (HA ports, non-floating, IPv4 over nva-0..3 and IPv6 over nva6-0..2);
   the expected backend of every packet. A row is one packet — (capture time in
   seconds, flow, what is sent, expected backend or "drop") where what is sent is TCP
   flags or "" (the client's packet), "reply[:FLAGS]" (the backend's reply, from the
   expected backend) or "err" (an ICMP error to the frontend quoting the flow) — or an
   event ev(backend, state) applied before the next packet, or fresh(...) (a dozen new
   flows, each expected where a fresh flow goes with the given backends out). Flows are
   written "proto@B" (a flow whose consistent-hash backend with every backend up is B)
   or "proto@B>C" (…and C when B is out of the pool), and are picked from candidate
   flows whose placement a discovery replay measured once per set of backends taken out
   (as adminState "draining" in the configuration): every expectation is a literal
   backend name, and what a scenario tests is stickiness, movement and drops. Packets
   at least 1 s apart are separate batches, each at its packet's time.
2. Rewritten packets (NAT): IPv4 and IPv6, TCP, UDP (with and without checksum over
   IPv4), ICMP echo, ICMPv6 echo, ICMP errors to the frontend about tracked flows, the
   backends' replies and ICMP errors from the backends. Every packet that leaves is
   checked with tshark (checksum validation on, bad-checksum expert fields) and with
   scapy (checksums recomputed and compared), and its addresses and ports against the
   flow's backend; a reply must carry the exact frontend address and port the client
   used. Also: packets crafted so that the translated checksum folds to zero (UDP must
   send 0xFFFF, TCP 0x0000), ICMP errors quoting only 8 bytes, and a self-test that
   every checksum field of every packet that left, corrupted, is caught by both
   checkers. Floating-IP rules and next-hop traffic leave packets byte for byte unchanged.
3. Fragments: one datagram in order reaches one backend, rewritten so that it
   reassembles with a valid checksum; a later fragment first is hashed on the 3-tuple
   (verdict line: no ports, the 3-tuple's backend; summary count); fragment entries
   last 30 s; ICMP packet too big and fragmentation needed reach the flow's backend; a
   backend's fragmented reply is translated back whole.
4. TCP resets on idle (enableTcpReset): IPv4 and IPv6, NAT (with and without port
   mapping) and floating IP, from the client's side and from the backend's: a packet of
   a connection idle past the timeout gets a reset verdict, and the two RSTs that leave
   instead are dissected by tshark — checksums, flags, raw sequence and acknowledgment
   numbers, addresses, ports, MAC addresses — against what RFC 9293 (and RFC 5961 for
   the one that goes on) says they must carry. A bare SYN after the timeout, and any
   packet under a rule without enableTcpReset, is forwarded as before.

Each scenario / checked packet is one case; the last line is "N passed, M failed";
exit status 0 iff M == 0.
"""
import argparse
import shutil
import sys
import traceback

from harness import (
    Ether, ICMP, ICMPerror, IP, IPerror, IPerror6, IPv6, IPv6ExtHdrFragment, Raw, TCP, TCPerror,
    UDP, UDPerror, ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6DestUnreach, ICMPv6PacketTooBig,
    MAC, WORK, addr, fragment, fragment6, reassembled, replay, scapy_checksum_problems,
    transport_checksum_ok, tshark_checksums, tshark_problems, tshark_tcp, wrpcap,
)


class Results:
    def __init__(self, verbose):
        self.passed = 0
        self.failed = 0
        self.verbose = verbose
        self.section = ""

    def case(self, name, problems):
        if problems:
            self.failed += 1
            print("FAIL %s: %s" % (self.section, name))
            for p in problems[:40]:
                print("       %s" % p)
            if len(problems) > 40:
                print("       ... %d more" % (len(problems) - 40))
        else:
            self.passed += 1
            if self.verbose:
                print("ok   %s: %s" % (self.section, name))


# =============================================================================================
# 1. Policy scenarios
# =============================================================================================

FE4, FE6 = "10.0.0.100", "fd00::100"
NVAS = ["nva-0", "nva-1", "nva-2", "nva-3"]
NVAS6 = ["nva6-0", "nva6-1", "nva6-2"]
T0 = 1_700_000_000.0  # capture time of t = 0
BACKEND_ADDRESS = {n: "10.0.1.%d" % (4 + i) for i, n in enumerate(NVAS)}
BACKEND_ADDRESS.update({n: "fd00:1::%x" % (4 + i) for i, n in enumerate(NVAS6)})


def scenario_config(rule=None, pool=None, admin_out=()):
    """Two HA-ports frontends (v4 over four NVAs, v6 over three), non-floating.
    `rule` / `pool` override fields of both rules / both pools; `admin_out` backends are
    configured draining (how the discovery takes backends out)."""
    def be(name, address):
        b = {"name": name, "address": address}
        if name in admin_out:
            b["adminState"] = "draining"
        return b
    cfg = {
        "hashSeed": "0x1f2e3d4c5b6a7988",
        "flowTable": {"capacity": 4096},
        "frontends": [{"name": "fe-v4", "address": FE4}, {"name": "fe-v6", "address": FE6}],
        "backendPools": [
            {"name": "nvas", "backends": [be(n, BACKEND_ADDRESS[n]) for n in NVAS]},
            {"name": "nvas6", "backends": [be(n, BACKEND_ADDRESS[n]) for n in NVAS6]},
        ],
        "rules": [
            {"name": "ha", "frontend": "fe-v4", "backendPool": "nvas", "protocol": "all",
             "frontendPort": 0, "backendPort": 0},
            {"name": "ha6", "frontend": "fe-v6", "backendPool": "nvas6", "protocol": "all",
             "frontendPort": 0, "backendPort": 0},
        ],
    }
    for r in cfg["rules"]:
        r.update(rule or {})
    for p in cfg["backendPools"]:
        p.update(pool or {})
    return cfg


class Flow:
    """A client flow towards a frontend: tcp / udp / icmp (echo, keyed by identifier)."""

    def __init__(self, proto, family, k):
        self.proto, self.family, self.k = proto, family, k
        if family == 4:
            self.src, self.dst = "192.168.%d.%d" % (10 + k // 200, 1 + k % 200), FE4
        else:
            self.src, self.dst = "fd00:9::%x" % (k + 1), FE6
        self.sport = 20000 + k * 7
        self.dport = {"tcp": 80, "udp": 53, "icmp": 0}[proto]
        self.seq = 0

    def __repr__(self):
        if self.proto == "icmp":
            return "icmp%s %s id %d" % ("" if self.family == 4 else "6", self.src, self.sport)
        return "%s %s:%d" % (self.proto, self.src, self.sport)

    def pkt(self, flags="", backend=None):
        """The client's packet (TCP `flags`); "reply" / "reply:FLAGS": the backend's reply
        (from `backend`, as the flow's packets reached it); "err": an ICMP error a router
        sends the frontend about the frontend's packet to the client (quoting it)."""
        self.seq += 1
        if flags.startswith("reply"):
            return self.reply(flags.partition(":")[2], backend)
        if flags == "err":
            return self.error()
        ip = IP(src=self.src, dst=self.dst) if self.family == 4 else IPv6(src=self.src, dst=self.dst)
        if self.proto == "tcp":
            l4 = TCP(sport=self.sport, dport=self.dport, flags=flags or "A", seq=1000 + self.seq)
        elif self.proto == "udp":
            l4 = UDP(sport=self.sport, dport=self.dport) / Raw(b"q%d" % self.seq)
        elif self.family == 4:
            l4 = ICMP(type=8, id=self.sport, seq=self.seq) / Raw(b"ping")
        else:
            l4 = ICMPv6EchoRequest(id=self.sport, seq=self.seq, data=b"ping")
        return Ether(**MAC) / ip / l4

    def reply(self, flags, backend):
        b = BACKEND_ADDRESS[backend]
        ip = IP(src=b, dst=self.src) if self.family == 4 else IPv6(src=b, dst=self.src)
        if self.proto == "tcp":
            l4 = TCP(sport=self.dport, dport=self.sport, flags=flags or "A", seq=9000 + self.seq)
        elif self.proto == "udp":
            l4 = UDP(sport=self.dport, dport=self.sport) / Raw(b"a%d" % self.seq)
        elif self.family == 4:
            l4 = ICMP(type=0, id=self.sport, seq=self.seq) / Raw(b"ping")
        else:
            l4 = ICMPv6EchoReply(id=self.sport, seq=self.seq, data=b"ping")
        return Ether(**MAC) / ip / l4

    def error(self):
        """Port unreachable / ICMPv6 unreachable about the frontend's packet to the client."""
        if self.family == 4:
            q = IPerror(src=self.dst, dst=self.src, proto={"tcp": 6, "udp": 17, "icmp": 1}[self.proto])
            outer = IP(src="198.51.100.1", dst=self.dst) / ICMP(type=3, code=1)
        else:
            q = IPerror6(src=self.dst, dst=self.src, nh={"tcp": 6, "udp": 17, "icmp": 58}[self.proto])
            outer = IPv6(src="2001:db8:ff::1", dst=self.dst) / ICMPv6DestUnreach(code=3)
        if self.proto == "tcp":
            inner = TCPerror(sport=self.dport, dport=self.sport, flags="A")
        elif self.proto == "udp":
            inner = UDPerror(sport=self.dport, dport=self.sport)
        elif self.family == 4:
            inner = ICMPerror(type=0, id=self.sport, seq=1)
        else:
            inner = ICMPv6EchoReply(id=self.sport, seq=1)
        return Ether(**MAC) / outer / q / inner


CANDIDATES = 160  # per (proto, family)


class Placement:
    """Where fresh flows land, measured by replaying every candidate flow once per set of
    backends taken out."""

    def __init__(self):
        self.flows = [Flow(p, f, k) for f in (4, 6) for p in ("tcp", "udp", "icmp") for k in range(CANDIDATES)]
        self.cache = {}

    def of(self, out=()):
        out = frozenset(out)
        if out not in self.cache:
            pkts = [fl.pkt("S") for fl in self.flows]
            for i, p in enumerate(pkts):
                p.time = T0 + i * 0.0001
            r = replay(scenario_config(admin_out=out), pkts, name="discovery")
            self.cache[out] = {id(fl): r.backends()[i] for i, fl in enumerate(self.flows)}
        return self.cache[out]

    def pick(self, spec, used):
        """A candidate flow matching "proto[6]@B[>C]" that `used` does not hold yet."""
        head, _, where = spec.partition("@")
        family = 6 if head.endswith("6") else 4
        proto = head.rstrip("6")
        on, _, then = where.partition(">")
        base = self.of()
        moved = self.of([on]) if then else None
        for fl in self.flows:
            if fl.proto != proto or fl.family != family or id(fl) in used:
                continue
            if base[id(fl)] != on or (then and moved[id(fl)] != then):
                continue
            used.add(id(fl))
            fresh = Flow(proto, family, fl.k)
            return fresh
        raise RuntimeError("no candidate flow for %r (raise CANDIDATES)" % spec)

    def fresh_flows(self, proto, family, out, n, used):
        """n unused flows (some of each all-up backend) and where they go with `out` out."""
        base, after = self.of(), self.of(out)
        chosen = []
        for fl in self.flows:
            if fl.proto == proto and fl.family == family and id(fl) not in used:
                chosen.append(fl)
        # Flows of the backends taken out first: they are the ones that must avoid them.
        chosen.sort(key=lambda fl: (base[id(fl)] not in out, fl.k))
        chosen = chosen[:n]
        for fl in chosen:
            used.add(id(fl))
        return [(Flow(proto, family, fl.k), after[id(fl)]) for fl in chosen]


def ev(backend, state):
    return ("event", backend, state)


def fresh(t, spec, out, n=12):
    """Row: n new flows of `spec` ("udp", "tcp6", ...) at t, each expected where a fresh
    flow goes with `out` taken out (none of them on a backend in `out`)."""
    return ("fresh", t, spec, tuple(out), n)


# Each scenario: description, rule / pool overrides, flows, rows.
# Rows: (t seconds, flow, TCP flags or "", expected backend or "drop"), ev(...), fresh(...).
MIN = 60

SCENARIOS = [
    dict(
        desc="defaultForProtocol: a TCP flow keeps its backend after it goes down; UDP and ICMP flows move; new flows avoid it",
        flows=dict(t="tcp@nva-1", u="udp@nva-1>nva-3", i="icmp@nva-1>nva-0", o="udp@nva-2", n="tcp@nva-1>nva-2"),
        rows=[
            (0, "t", "S", "nva-1"), (1, "t", "A", "nva-1"), (2, "u", "", "nva-1"), (3, "i", "", "nva-1"),
            (4, "o", "", "nva-2"),
            ev("nva-1", "down"),
            (5, "t", "PA", "nva-1"), (6, "u", "", "nva-3"), (7, "i", "", "nva-0"), (8, "o", "", "nva-2"),
            (9, "n", "S", "nva-2"), (10, "t", "A", "nva-1"), (11, "u", "", "nva-3"), (12, "n", "A", "nva-2"),
            fresh(13, "udp", ["nva-1"]), fresh(14, "tcp", ["nva-1"]),
        ]),
    dict(
        desc="defaultForProtocol, both directions: the backends' replies (old backend for TCP, new one for the moved UDP flow) and ICMP errors about each flow follow it",
        flows=dict(t="tcp@nva-1", u="udp@nva-1>nva-3", i="icmp@nva-2"),
        rows=[
            (0, "t", "S", "nva-1"), (1, "t", "reply:SA", "nva-1"), (2, "t", "A", "nva-1"), (3, "u", "", "nva-1"),
            (4, "u", "reply", "nva-1"), (5, "i", "", "nva-2"), (6, "i", "reply", "nva-2"),
            (7, "t", "err", "nva-1"), (8, "u", "err", "nva-1"), (9, "i", "err", "nva-2"),
            ev("nva-1", "down"),
            (10, "t", "PA", "nva-1"), (11, "t", "reply", "nva-1"), (12, "t", "err", "nva-1"),
            (13, "u", "", "nva-3"), (14, "u", "reply", "nva-3"), (15, "u", "err", "nva-3"), (16, "u", "", "nva-3"),
            (17, "i", "err", "nva-2"),
        ]),
    dict(
        desc="defaultForProtocol over IPv6: TCP stays on its down backend, UDP and ICMPv6 move",
        flows=dict(t="tcp6@nva6-1", u="udp6@nva6-1>nva6-0", i="icmp6@nva6-1>nva6-2"),
        rows=[
            (0, "t", "S", "nva6-1"), (1, "t", "A", "nva6-1"), (2, "u", "", "nva6-1"), (3, "i", "", "nva6-1"),
            ev("nva6-1", "down"),
            (4, "t", "A", "nva6-1"), (5, "u", "", "nva6-0"), (6, "i", "", "nva6-2"),
            fresh(7, "tcp6", ["nva6-1"]),
        ]),
    dict(
        desc="persistOnUnhealthy never: TCP and UDP flows both move off a down backend",
        rule={"persistOnUnhealthy": "never"},
        flows=dict(t="tcp@nva-1>nva-0", u="udp@nva-1>nva-2", o="tcp@nva-3"),
        rows=[
            (0, "t", "S", "nva-1"), (1, "t", "A", "nva-1"), (2, "u", "", "nva-1"), (3, "o", "S", "nva-3"),
            ev("nva-1", "down"),
            (4, "t", "A", "nva-0"), (5, "u", "", "nva-2"), (6, "o", "A", "nva-3"), (7, "t", "A", "nva-0"),
        ]),
    dict(
        desc="persistOnUnhealthy always: TCP, UDP and ICMP flows stay on a down backend; new flows avoid it",
        rule={"persistOnUnhealthy": "always"},
        flows=dict(t="tcp@nva-1", u="udp@nva-1", i="icmp@nva-1", n="udp@nva-1>nva-3"),
        rows=[
            (0, "t", "S", "nva-1"), (1, "t", "A", "nva-1"), (2, "u", "", "nva-1"), (3, "i", "", "nva-1"),
            ev("nva-1", "down"),
            (4, "t", "A", "nva-1"), (5, "u", "", "nva-1"), (6, "i", "", "nva-1"), (7, "n", "", "nva-3"),
            fresh(8, "udp", ["nva-1"]),
        ]),
    dict(
        desc="a backend returns: flows that moved stay where they went, the TCP flow that stayed keeps it, new flows may use it again",
        flows=dict(t="tcp@nva-1", u="udp@nva-1>nva-3", n1="udp@nva-1>nva-0", n2="udp@nva-1", n3="tcp@nva-1"),
        rows=[
            (0, "t", "S", "nva-1"), (1, "t", "A", "nva-1"), (2, "u", "", "nva-1"),
            ev("nva-1", "down"),
            (3, "u", "", "nva-3"), (4, "n1", "", "nva-0"), (5, "t", "A", "nva-1"),
            ev("nva-1", "up"),
            (6, "u", "", "nva-3"), (7, "n1", "", "nva-0"), (8, "t", "A", "nva-1"),
            (9, "n2", "", "nva-1"), (10, "n3", "S", "nva-1"),
            fresh(11, "udp", []),
        ]),
    dict(
        desc="down and draining together: 'up' clears both; until then new flows avoid the backend and its TCP flow stays",
        flows=dict(t="tcp@nva-2", n1="udp@nva-2>nva-1", n2="udp@nva-2"),
        rows=[
            (0, "t", "S", "nva-2"), (1, "t", "A", "nva-2"),
            ev("nva-2", "draining"), ev("nva-2", "down"),
            (2, "t", "A", "nva-2"), (3, "n1", "", "nva-1"),
            ev("nva-2", "up"),
            (4, "n2", "", "nva-2"), (5, "n1", "", "nva-1"), (6, "t", "A", "nva-2"),
        ]),
    dict(
        desc="draining without a drain period: TCP and UDP flows stay as long as they live (minutes); new flows avoid it",
        flows=dict(t="tcp@nva-1", u="udp@nva-1", i="icmp@nva-1"),
        rows=[
            (0, "t", "S", "nva-1"), (1, "t", "A", "nva-1"), (2, "u", "", "nva-1"), (3, "i", "", "nva-1"),
            ev("nva-1", "draining"),
            (4, "t", "A", "nva-1"), (5, "u", "", "nva-1"),
            fresh(6, "udp", ["nva-1"]), fresh(7, "tcp", ["nva-1"]), fresh(8, "icmp", ["nva-1"]),
            (3 * MIN, "t", "A", "nva-1"), (3 * MIN + 1, "u", "", "nva-1"), (3 * MIN + 2, "i", "", "nva-1"),
            (6 * MIN, "t", "A", "nva-1"), (6 * MIN + 1, "u", "", "nva-1"), (6 * MIN + 2, "i", "", "nva-1"),
            (9 * MIN, "t", "A", "nva-1"), (9 * MIN + 1, "u", "", "nva-1"),
        ]),
    dict(
        desc="draining without a drain period: a flow that ends (FIN, close timeout) and reopens is new and avoids the draining backend",
        flows=dict(t="tcp@nva-1>nva-3"),
        rows=[
            (0, "t", "S", "nva-1"), (1, "t", "A", "nva-1"),
            ev("nva-1", "draining"),
            (2, "t", "FA", "nva-1"), (3, "t", "A", "nva-1"), (20, "t", "S", "nva-3"), (21, "t", "A", "nva-3"),
        ]),
    dict(
        desc="drainPeriodSeconds 30: flows stay on the draining backend within the period and move after it",
        pool={"drainPeriodSeconds": 30},
        flows=dict(t="tcp@nva-1>nva-2", u="udp@nva-1>nva-0", o="tcp@nva-3"),
        rows=[
            (0, "t", "S", "nva-1"), (0.5, "t", "A", "nva-1"), (1, "u", "", "nva-1"), (1.5, "o", "S", "nva-3"),
            ev("nva-1", "draining"),
            (2, "t", "A", "nva-1"), (10, "u", "", "nva-1"), (20, "t", "A", "nva-1"), (25, "u", "", "nva-1"),
            fresh(26, "udp", ["nva-1"]),
            (45, "t", "A", "nva-2"), (46, "u", "", "nva-0"), (47, "o", "A", "nva-3"), (50, "t", "A", "nva-2"),
        ]),
    dict(
        desc="drainPeriodSeconds 30: 'up' ends a drain, and draining again starts a new period",
        pool={"drainPeriodSeconds": 30},
        flows=dict(t="tcp@nva-1>nva-2", u="udp@nva-1>nva-0"),
        rows=[
            (0, "t", "S", "nva-1"), (1, "t", "A", "nva-1"), (2, "u", "", "nva-1"),
            ev("nva-1", "draining"),
            (10, "t", "A", "nva-1"), (20, "u", "", "nva-1"),
            ev("nva-1", "up"),
            (30, "t", "A", "nva-1"), (40, "u", "", "nva-1"), (50, "t", "A", "nva-1"), (60, "u", "", "nva-1"),
            (70, "t", "A", "nva-1"), (80, "u", "", "nva-1"), (90, "t", "A", "nva-1"),
            ev("nva-1", "draining"),
            (100, "t", "A", "nva-1"), (105, "u", "", "nva-1"), (115, "t", "A", "nva-1"),
            (140, "t", "A", "nva-2"), (141, "u", "", "nva-0"),
        ]),
    dict(
        desc="drainPeriodSeconds 30, draining after 98 quiet seconds: the period runs from when draining began (the event), not from the last packet before it",
        pool={"drainPeriodSeconds": 30},
        flows=dict(t="tcp@nva-1>nva-2", u="udp@nva-1>nva-0"),
        rows=[
            (0, "t", "S", "nva-1"), (1, "t", "A", "nva-1"), (2, "u", "", "nva-1"),
            ev("nva-1", "draining"),
            (100, "t", "A", "nva-1"), (101, "u", "", "nva-1"), (120, "t", "A", "nva-1"),
            (125, "u", "", "nva-1"), (140, "t", "A", "nva-2"), (141, "u", "", "nva-0"),
        ]),
    dict(
        desc="all backends down, noHealthyBackends drop: new flows dropped, established TCP continues, UDP and ICMP dropped; one back: everything new goes to it",
        rule={"noHealthyBackends": "drop"},
        flows=dict(t="tcp@nva-1", t2="tcp@nva-2", u="udp@nva-3", i="icmp@nva-0", n="tcp@nva-1", n2="udp@nva-3"),
        rows=[
            (0, "t", "S", "nva-1"), (1, "t", "A", "nva-1"), (2, "t2", "S", "nva-2"), (3, "t2", "A", "nva-2"),
            (4, "u", "", "nva-3"), (5, "i", "", "nva-0"),
            ev("nva-0", "down"), ev("nva-1", "down"), ev("nva-2", "down"), ev("nva-3", "down"),
            (6, "t", "A", "nva-1"), (7, "t2", "PA", "nva-2"), (8, "u", "", "drop"), (9, "i", "", "drop"),
            (10, "n", "S", "drop"), (11, "n2", "", "drop"), (12, "n", "S", "drop"),
            ev("nva-2", "up"),
            (13, "n", "S", "nva-2"), (14, "u", "", "nva-2"), (15, "t", "A", "nva-1"), (16, "n2", "", "nva-2"),
            (17, "i", "", "nva-2"), (18, "t2", "A", "nva-2"),
        ]),
    dict(
        desc="all backends down, noHealthyBackends failOpen: flows spread over all backends as if all were up",
        rule={"noHealthyBackends": "failOpen"},
        flows=dict(t="tcp@nva-1", u="udp@nva-3", n0="tcp@nva-0", n1="udp@nva-1", n2="icmp@nva-2", n3="tcp@nva-3",
                   n4="udp@nva-0"),
        rows=[
            (0, "t", "S", "nva-1"), (1, "t", "A", "nva-1"), (2, "u", "", "nva-3"),
            ev("nva-0", "down"), ev("nva-1", "down"), ev("nva-2", "down"), ev("nva-3", "down"),
            (3, "t", "A", "nva-1"), (4, "u", "", "nva-3"), (5, "n0", "S", "nva-0"), (6, "n1", "", "nva-1"),
            (7, "n2", "", "nva-2"), (8, "n3", "S", "nva-3"), (9, "n3", "A", "nva-3"),
            ev("nva-1", "up"),
            (10, "n4", "", "nva-1"), (11, "u", "", "nva-1"), (12, "n3", "A", "nva-3"), (13, "t", "A", "nva-1"),
        ]),
    dict(
        desc="idle timeout (default 4 minutes): a TCP flow on a down backend stays while active and is hashed afresh after 4 idle minutes",
        flows=dict(t="tcp@nva-1>nva-0", u="udp@nva-2"),
        rows=[
            (0, "t", "S", "nva-1"), (1, "t", "A", "nva-1"),
            ev("nva-1", "down"),
            (3 * MIN, "t", "A", "nva-1"), (6 * MIN, "t", "A", "nva-1"), (9 * MIN + 50, "t", "A", "nva-1"),
            (13 * MIN + 55, "t", "A", "nva-0"), (14 * MIN, "t", "A", "nva-0"),
        ]),
    dict(
        desc="idleTimeoutMinutes 10: 9 idle minutes keep a UDP flow on a down backend (persist always); 11 do not",
        rule={"idleTimeoutMinutes": 10, "persistOnUnhealthy": "always"},
        flows=dict(u="udp@nva-1>nva-3", t="tcp@nva-1>nva-2"),
        rows=[
            (0, "u", "", "nva-1"), (1, "t", "S", "nva-1"), (2, "t", "A", "nva-1"),
            ev("nva-1", "down"),
            (9 * MIN, "u", "", "nva-1"), (9 * MIN + 1, "t", "A", "nva-1"),
            (20 * MIN, "u", "", "nva-3"), (20 * MIN + 1, "t", "A", "nva-2"),
        ]),
    dict(
        desc="idle timeout counts both directions: the backend's replies every 3 minutes keep a flow whose client is silent for 9 minutes (persist always, backend down)",
        rule={"persistOnUnhealthy": "always"},
        flows=dict(u="udp@nva-1>nva-3"),
        rows=[
            (0, "u", "", "nva-1"), (1, "u", "reply", "nva-1"),
            ev("nva-1", "down"),
            (3 * MIN, "u", "reply", "nva-1"), (6 * MIN, "u", "reply", "nva-1"), (9 * MIN, "u", "reply", "nva-1"),
            (9 * MIN + 30, "u", "", "nva-1"),
        ]),
    dict(
        desc="idle timeout counts both directions: a UDP client sending every 2 minutes keeps its reverse translation; the backend's reply after 6 minutes is still translated back",
        flows=dict(u="udp@nva-2"),
        rows=[
            (0, "u", "", "nva-2"), (1, "u", "reply", "nva-2"),
            (2 * MIN, "u", "", "nva-2"), (4 * MIN, "u", "", "nva-2"), (6 * MIN, "u", "", "nva-2"),
            (6 * MIN + 10, "u", "reply", "nva-2"),
        ]),
    dict(
        desc="RST from the backend closes the flow too: a new SYN on the same 5-tuple 20 s later is a new flow",
        flows=dict(t="tcp@nva-1>nva-0"),
        rows=[
            (0, "t", "S", "nva-1"), (0.5, "t", "reply:SA", "nva-1"), (1, "t", "A", "nva-1"),
            ev("nva-1", "down"),
            (2, "t", "PA", "nva-1"), (3, "t", "reply:R", "nva-1"), (30, "t", "S", "nva-0"),
        ]),
    dict(
        desc="FIN: the flow lives 10 s after its last packet; a new SYN on the same 5-tuple after that is a new flow",
        flows=dict(t="tcp@nva-1>nva-3", r="tcp@nva-1>nva-0"),
        rows=[
            (0, "t", "S", "nva-1"), (1, "t", "A", "nva-1"), (2, "r", "S", "nva-1"), (3, "r", "A", "nva-1"),
            ev("nva-1", "down"),
            (4, "t", "PA", "nva-1"), (5, "t", "FA", "nva-1"), (8, "t", "A", "nva-1"), (12, "t", "A", "nva-1"),
            (30, "t", "S", "nva-3"), (31, "t", "A", "nva-3"),
            (32, "r", "R", "nva-1"), (38, "r", "A", "nva-1"), (60, "r", "S", "nva-0"),
        ]),
]


def run_scenarios(res, placement, only):
    res.section = "scenario"
    for sc in SCENARIOS:
        if only and only not in sc["desc"]:
            continue
        used = set()
        flows = {name: placement.pick(spec, used) for name, spec in sc["flows"].items()}
        pkts, expect, events = [], [], []
        for row in sc["rows"]:
            if row[0] == "event":
                events.append({"at": len(pkts), "backend": row[1], "state": row[2]})
                continue
            if row[0] == "fresh":
                _, t, spec, out, n = row
                family = 6 if spec.endswith("6") else 4
                for fl, where in placement.fresh_flows(spec.rstrip("6"), family, out, n, used):
                    p = fl.pkt("S")
                    p.time = T0 + t
                    pkts.append(p)
                    expect.append((fl, "S", where, "new %s avoiding %s" % (spec, list(out))))
                continue
            t, name, flags, want = row
            p = flows[name].pkt(flags, want)
            p.time = T0 + t
            pkts.append(p)
            expect.append((flows[name], flags, want, name))
        cfg = scenario_config(rule=sc.get("rule"), pool=sc.get("pool"))
        try:
            r = replay(cfg, pkts, events, name="scenario")
        except RuntimeError as e:
            res.case(sc["desc"], [str(e)])
            continue
        problems = []
        for i, (v, (fl, flags, want, label)) in enumerate(zip(r.verdicts, expect)):
            if want == "drop":
                ok = v["verdict"] == "drop" and v["reason"] == "no-healthy-backend"
                got = v["verdict"] if v["verdict"] != "drop" else "drop (%s)" % v["reason"]
                if v["verdict"] == "forward":
                    got = v["backend"]
            else:
                ok = v["verdict"] == "forward" and v["backend"] == want
                got = v["backend"] if v["verdict"] == "forward" else "%s (%s)" % (v["verdict"], v["reason"])
            if not ok:
                t = pkts[i].time - T0
                problems.append("packet %d at t=%gs, flow %s (%r) %s: expected %s, got %s" % (
                    i, t, label, fl, flags, want, got))
        if problems:
            problems.append("events: %s; capture and verdicts in %s" % (events, WORK))
        res.case("%s  [%d packets]" % (sc["desc"], len(pkts)), problems)


# =============================================================================================
# 2. Rewritten packets
# =============================================================================================

ROUTER4, ROUTER6 = "198.51.100.1", "2001:db8:ff::1"


def nat_config(floating=False):
    """v4 and v6 HA-ports rules, exact TCP 443 -> 8443 rules (v4, v6), an exact UDP rule
    5300 -> 53; non-floating unless `floating`."""
    cfg = {
        "hashSeed": "0x0123456789abcdef",
        "flowTable": {"capacity": 4096},
        "frontends": [{"name": "fe-v4", "address": FE4}, {"name": "fe-v6", "address": FE6}],
        "backendPools": [
            {"name": "nvas", "backends": [{"name": "nva-%d" % i, "address": "10.0.1.%d" % (4 + i)} for i in range(4)]},
            {"name": "nvas6", "backends": [{"name": "nva6-%d" % i, "address": "fd00:1::%x" % (4 + i)} for i in range(3)]},
            {"name": "web", "backends": [{"name": "web-%d" % i, "address": "10.0.2.%d" % (4 + i)} for i in range(2)]},
            {"name": "web6", "backends": [{"name": "web6-0", "address": "fd00:2::4"}]},
            {"name": "dns", "backends": [{"name": "dns-0", "address": "10.0.3.4"}]},
        ],
        "rules": [
            {"name": "ha", "frontend": "fe-v4", "backendPool": "nvas", "protocol": "all", "frontendPort": 0, "backendPort": 0},
            {"name": "ha6", "frontend": "fe-v6", "backendPool": "nvas6", "protocol": "all", "frontendPort": 0, "backendPort": 0},
            {"name": "https", "frontend": "fe-v4", "backendPool": "web", "protocol": "tcp", "frontendPort": 443, "backendPort": 8443},
            {"name": "https6", "frontend": "fe-v6", "backendPool": "web6", "protocol": "tcp", "frontendPort": 443, "backendPort": 8443},
            {"name": "dns", "frontend": "fe-v4", "backendPool": "dns", "protocol": "udp", "frontendPort": 5300, "backendPort": 53},
        ],
    }
    if floating:
        for r in cfg["rules"]:
            r["floatingIp"] = True
    return cfg


def backend_addresses(cfg):
    return {b["name"]: addr(b["address"]) for p in cfg["backendPools"] for b in p["backends"]}


def backend_port(cfg, rule, dport):
    r = next(x for x in cfg["rules"] if x["name"] == rule)
    return r["backendPort"] if r["backendPort"] else dport


E = lambda: Ether(**MAC)  # noqa: E731


class NatCase:
    """One input packet of the NAT capture and what must hold for it once it leaves.
    kind: "fwd" (client -> frontend), "err" (ICMP error to the frontend about flow `of`),
    "rev" (backend reply of flow `of`), "reverr" (ICMP error from the backend about `of`)."""

    def __init__(self, label, kind, of=None, udp0=False):
        self.label, self.kind, self.of, self.udp0 = label, kind, of, udp0
        self.pkt = None
        self.zero = None  # the transport checksum the packet must leave with, when crafted


def client_flows():
    """The forward packets: (label, packet, udp checksum zero)."""
    c4, c6 = "192.168.50.7", "fd00:9::77"
    v4 = lambda: IP(src=c4, dst=FE4, id=4242)  # noqa: E731
    v6 = lambda: IPv6(src=c6, dst=FE6)  # noqa: E731
    return [
        ("v4 tcp :80 (HA)", E() / v4() / TCP(sport=41001, dport=80, flags="PA", seq=7) / Raw(b"GET / HTTP/1.0\r\n\r\n"), False),
        ("v4 tcp :443 -> 8443 (exact)", E() / v4() / TCP(sport=41002, dport=443, flags="S", seq=9), False),
        ("v4 udp :53 checksum", E() / v4() / UDP(sport=41003, dport=53) / Raw(b"\x12\x34query-a"), False),
        ("v4 udp :53 checksum 0", E() / v4() / UDP(sport=41004, dport=53, chksum=0) / Raw(b"\x12\x35query-b"), True),
        ("v4 udp :5300 -> 53 (exact) checksum", E() / v4() / UDP(sport=41005, dport=5300) / Raw(b"exact-udp"), False),
        ("v4 udp :5300 -> 53 (exact) checksum 0", E() / v4() / UDP(sport=41006, dport=5300, chksum=0) / Raw(b"exact-udp0"), True),
        ("v4 icmp echo", E() / v4() / ICMP(type=8, id=0x4d2, seq=1) / Raw(b"ping-payload"), False),
        ("v6 tcp :80 (HA)", E() / v6() / TCP(sport=41011, dport=80, flags="PA", seq=7) / Raw(b"GET / HTTP/1.0\r\n\r\n"), False),
        ("v6 tcp :443 -> 8443 (exact)", E() / v6() / TCP(sport=41012, dport=443, flags="S"), False),
        ("v6 udp :53", E() / v6() / UDP(sport=41013, dport=53) / Raw(b"query-v6"), False),
        ("v6 icmpv6 echo", E() / v6() / ICMPv6EchoRequest(id=0x4d3, seq=1, data=b"ping6"), False),
    ]


def quote_of(fwd_pkt, udp0=False, short=False):
    """The packet the frontend sent back to the client for this flow (reply direction as
    seen outside: frontend:port -> client:port), as an ICMP error quotes it."""
    ip = fwd_pkt[IP] if IP in fwd_pkt else fwd_pkt[IPv6]
    l4 = ip.payload
    if IP in fwd_pkt:
        q = IPerror(src=ip.dst, dst=ip.src, id=777, ttl=63, proto=ip.proto)
    else:
        q = IPerror6(src=ip.dst, dst=ip.src, hlim=63, nh=ip.nh)
    if isinstance(l4, TCP):
        inner = TCPerror(sport=l4.dport, dport=l4.sport, flags="SA", seq=555, ack=l4.seq + 1) / Raw(b"x" * 24)
    elif isinstance(l4, UDP):
        inner = UDPerror(sport=l4.dport, dport=l4.sport, chksum=0 if udp0 else None) / Raw(b"answer-quoted")
    elif isinstance(l4, ICMP):
        inner = ICMPerror(type=0, id=l4.id, seq=l4.seq) / Raw(b"pong-payload")
    else:
        raise ValueError(l4)
    # Build it whole so that the quoted checksums are those of the packet that was sent.
    cls = IPerror if IP in fwd_pkt else IPerror6
    whole = bytes(q / inner)
    if short:  # RFC 792: the IP header and the first 8 bytes of the transport header
        whole = whole[:len(q) + 8]
    return cls(whole)


def error_to_frontend(fwd_pkt, kind, udp0=False, short=False):
    quoted = quote_of(fwd_pkt, udp0, short)
    if IP in fwd_pkt:
        t, c = {"frag-needed": (3, 4), "port-unreachable": (3, 3), "time-exceeded": (11, 0)}[kind]
        icmp = ICMP(type=t, code=c, nexthopmtu=1280 if kind == "frag-needed" else 0)
        return E() / IP(src=ROUTER4, dst=FE4) / icmp / quoted
    if kind == "packet-too-big":
        return E() / IPv6(src=ROUTER6, dst=FE6) / ICMPv6PacketTooBig(mtu=1280) / quoted
    return E() / IPv6(src=ROUTER6, dst=FE6) / ICMPv6DestUnreach(code=4) / quoted


def reply_of(out_pkt, udp0=False):
    """The backend's reply to a forward packet as it left (rewritten): swap endpoints."""
    ip = out_pkt[IP] if IP in out_pkt else out_pkt[IPv6]
    l4 = ip.payload
    if IP in out_pkt:
        rip = IP(src=ip.dst, dst=ip.src, id=999)
    else:
        rip = IPv6(src=ip.dst, dst=ip.src)
    if isinstance(l4, TCP):
        rl4 = TCP(sport=l4.dport, dport=l4.sport, flags="SA" if l4.flags.S else "PA", seq=3000, ack=l4.seq + 1) / Raw(b"reply")
    elif isinstance(l4, UDP):
        rl4 = UDP(sport=l4.dport, dport=l4.sport, chksum=0 if udp0 else None) / Raw(b"answer")
    elif isinstance(l4, ICMP):
        rl4 = ICMP(type=0, id=l4.id, seq=l4.seq) / Raw(b"ping-payload")
    else:
        rl4 = ICMPv6EchoReply(id=l4.id, seq=l4.seq, data=b"ping6")
    return E() / rip / rl4


def error_from_backend(out_pkt):
    """An ICMP error the backend sends to the client about the client's packet as it
    reached the backend (quoting client -> backend:port)."""
    ip = out_pkt[IP] if IP in out_pkt else out_pkt[IPv6]
    if IP in out_pkt:
        quoted = IPerror(bytes(ip))
        return E() / IP(src=ip.dst, dst=ip.src) / ICMP(type=3, code=3) / quoted
    quoted = IPerror6(bytes(ip))
    return E() / IPv6(src=ip.dst, dst=ip.src) / ICMPv6DestUnreach(code=4) / quoted


def zero_folding(inform, outform):
    """`inform` with its first two payload bytes chosen so that `outform` (the same packet
    with the addresses and ports it must leave with) has a transport checksum that folds
    to zero. Returns (the packet to send, the checksum the core must write)."""
    def l4(p):
        return (p[IP] if IP in p else p[IPv6]).payload
    o = outform.copy()
    rest = bytes(l4(o).payload)[2:] if l4(o).payload else b"zero-sum"
    l4(o).remove_payload()
    l4(o).add_payload(Raw(b"\0\0" + rest))
    l4(o).chksum = None
    ip = o[IP] if IP in o else o[IPv6]
    if IP in o:
        ip.chksum, ip.len = None, None
    else:
        ip.plen = None
    if isinstance(l4(o), UDP):
        l4(o).len = None
    c0 = l4(Ether(bytes(o))).chksum
    word = bytes([c0 >> 8, c0 & 0xff])  # sum + ~sum = 0xffff: the checksum becomes zero
    i = inform.copy()
    l4(i).remove_payload()
    l4(i).add_payload(Raw(word + rest))
    l4(i).chksum = None
    ipi = i[IP] if IP in i else i[IPv6]
    if IP in i:
        ipi.chksum, ipi.len = None, None
    else:
        ipi.plen = None
    if isinstance(l4(i), UDP):
        l4(i).len = None
    i = Ether(bytes(i))
    return i, 0xFFFF if isinstance(l4(i), UDP) else 0x0000


def swap_frontend(reply, fwd_pkt):
    """The reply as the client must receive it: from the address and port it sent to."""
    src, dst, sport, dport = endpoints(fwd_pkt)
    o = reply.copy()
    ip = o[IP] if IP in o else o[IPv6]
    ip.src = dst
    if dport is not None:
        ip.payload.sport = dport
    return o


def endpoints(p):
    ip = p[IP] if IP in p else p[IPv6]
    l4 = ip.payload
    sport = getattr(l4, "sport", None)
    dport = getattr(l4, "dport", None)
    return addr(ip.src), addr(ip.dst), sport, dport


def check_leaving(raw, frame, need, udp0):
    """tshark's and scapy's checksum verdict on one packet that left."""
    allow = {"udp": "3"} if udp0 else {}
    # Headers quoted by ICMP errors: tshark marks quoted transport checksums Unverified
    # (scapy checks them below).
    allow_inner = dict(allow)
    if ICMP in Ether(raw) or ICMPv6DestUnreach in Ether(raw) or ICMPv6PacketTooBig in Ether(raw):
        p = Ether(raw)
        if IPerror in p or IPerror6 in p:
            allow_inner.setdefault("tcp", "2")
            allow_inner.setdefault("udp", "2")
            if IP in p:
                allow_inner["icmp"] = "2"
    return tshark_problems(frame, need, allow_inner) + scapy_checksum_problems(raw)


def run_nat(res):
    res.section = "nat"
    cfg = nat_config()
    baddr = backend_addresses(cfg)
    flows = client_flows()

    # Pass 1: the forward packets alone, to learn each flow's backend (the replay is
    # deterministic) and build the backends' replies from the packets as they left.
    fwd = [p for _, p, _ in flows]
    for i, p in enumerate(fwd):
        p.time = T0 + i
    r1 = replay(cfg, fwd, name="nat-learn")
    if any(v["verdict"] != "forward" for v in r1.verdicts):
        res.case("forward packets are forwarded", ["verdicts: %s" % r1.verdicts])
        return

    # Pass 2: forward packets, ICMP errors to the frontend, replies, errors from backends.
    cases = []
    by_label = {}
    learned = {}
    for (label, p, udp0), out, v in zip(flows, r1.out, r1.verdicts):
        c = NatCase(label, "fwd", of=label, udp0=udp0)
        c.pkt = p
        cases.append(c)
        by_label[label] = (p, Ether(out), udp0, c)
        learned[label] = v["backend"]
    # Packets whose checksum after translation is exactly zero: UDP must send 0xFFFF
    # (RFC 768), TCP 0x0000 (RFC 1624 eqn. 3 never yields 0xFFFF).
    for of in ("v4 udp :53 checksum", "v6 udp :53", "v4 tcp :443 -> 8443 (exact)", "v6 tcp :80 (HA)"):
        fp, out, _, _ = by_label[of]
        c = NatCase("%s, checksum after translation folds to zero" % of, "fwd", of=of)
        c.pkt, c.zero = zero_folding(fp, out)
        cases.append(c)
        c = NatCase("reply to %s, checksum after translation folds to zero" % of, "rev", of=of)
        reply = reply_of(out)
        c.pkt, c.zero = zero_folding(reply, swap_frontend(reply, fp))
        cases.append(c)
    errors = [
        ("v4 frag-needed about tcp :80", "v4 tcp :80 (HA)", "frag-needed"),
        ("v4 frag-needed about tcp :443 (quoted port 443 -> 8443)", "v4 tcp :443 -> 8443 (exact)", "frag-needed"),
        ("v4 port-unreachable about udp :53", "v4 udp :53 checksum", "port-unreachable"),
        ("v4 port-unreachable about udp :53 with checksum 0", "v4 udp :53 checksum 0", "port-unreachable"),
        ("v4 port-unreachable about udp :5300 (quoted port 5300 -> 53)", "v4 udp :5300 -> 53 (exact) checksum", "port-unreachable"),
        ("v4 time-exceeded about icmp echo", "v4 icmp echo", "time-exceeded"),
        ("v6 packet-too-big about tcp :80", "v6 tcp :80 (HA)", "packet-too-big"),
        ("v6 packet-too-big about tcp :443 (quoted port 443 -> 8443)", "v6 tcp :443 -> 8443 (exact)", "packet-too-big"),
        ("v6 unreachable about udp :53", "v6 udp :53", "unreachable"),
    ]
    errors += [
        ("v4 frag-needed quoting 8 bytes about tcp :443 (quoted port 443 -> 8443)", "v4 tcp :443 -> 8443 (exact)", "frag-needed", "short"),
        ("v4 port-unreachable quoting 8 bytes about udp :53", "v4 udp :53 checksum", "port-unreachable", "short"),
    ]
    # A quote cut after 8 bytes keeps the UDP checksum field but not the data it covers:
    # it must come out as in the whole quote of the same packet.
    short_twin = {"v4 port-unreachable quoting 8 bytes about udp :53": "v4 port-unreachable about udp :53"}
    quoted_checksum = {}
    for label, of, kind, *short in errors:
        fp, _, udp0, _ = by_label[of]
        c = NatCase(label, "err", of=of, udp0=udp0)
        c.pkt = error_to_frontend(fp, kind, udp0, short=bool(short))
        cases.append(c)
    for label, p, udp0 in flows:
        c = NatCase("reply to " + label, "rev", of=label, udp0=udp0)
        c.pkt = reply_of(by_label[label][1], udp0)
        cases.append(c)
    for of in ("v4 udp :53 checksum", "v4 udp :5300 -> 53 (exact) checksum", "v4 tcp :443 -> 8443 (exact)",
               "v6 udp :53", "v6 tcp :443 -> 8443 (exact)"):
        c = NatCase("ICMP error from the backend about " + of, "reverr", of=of)
        c.pkt = error_from_backend(by_label[of][1])
        cases.append(c)
    pkts = [c.pkt for c in cases]
    for i, p in enumerate(pkts):
        p.time = T0 + i
    r = replay(cfg, pkts, name="nat")
    frames = tshark_checksums(r.out_path)
    fwd_backend = {}
    k = 0
    for i, (c, v) in enumerate(zip(cases, r.verdicts)):
        problems = []
        if v["verdict"] != "forward":
            res.case(c.label, ["not forwarded: %s" % v])
            continue
        raw = r.out[k]
        frame = frames[k]
        k += 1
        p_in = c.pkt
        p_out = Ether(raw)
        src_in, dst_in, sport_in, dport_in = endpoints(p_in)
        src, dst, sport, dport = endpoints(p_out)
        if c.zero is not None:
            l4 = (p_out[IP] if IP in p_out else p_out[IPv6]).payload
            if l4.chksum != c.zero:
                problems.append("%s checksum 0x%04x, expected 0x%04x" % (l4.__class__.__name__, l4.chksum, c.zero))
        if c.kind == "fwd":
            b = v["backend"]
            fwd_backend.setdefault(c.of, (b, v["rule"]))
            if b != learned[c.of]:
                problems.append("backend %s, but %s in the first replay" % (b, learned[c.of]))
            want_dport = backend_port(cfg, v["rule"], dport_in) if dport_in is not None else None
            if dst != baddr[b]:
                problems.append("dst %s, expected backend %s %s" % (dst, b, baddr[b]))
            if src != src_in or sport != sport_in:
                problems.append("source changed: %s:%s -> %s:%s" % (src_in, sport_in, src, sport))
            if dport != want_dport:
                problems.append("dport %s, expected %s" % (dport, want_dport))
            need = ("ip",) if IP in p_out else ()
            need += {TCP: ("tcp",), UDP: () if c.udp0 else ("udp",), ICMP: ("icmp",)}.get(
                type(p_out[IP].payload) if IP in p_out else None, ())
            if IPv6 in p_out:
                need += {TCP: ("tcp",), UDP: ("udp",), ICMPv6EchoRequest: ("icmpv6",)}[type(p_out[IPv6].payload)]
            if c.udp0 and p_out[UDP].chksum != 0:
                problems.append("udp checksum 0 over IPv4 became 0x%04x" % p_out[UDP].chksum)
            # Only the destination (and the mapped port) may change.
            problems += diff_outside(p_in, p_out, c)
        elif c.kind == "err":
            b, rule = fwd_backend[c.of]
            fp = by_label[c.of][0]
            f_src, f_dst, f_sport, f_dport = endpoints(fp)
            if v["backend"] != b:
                problems.append("error reached %s, the flow it quotes is on %s" % (v["backend"], b))
            if dst != baddr[b]:
                problems.append("outer dst %s, expected backend %s %s" % (dst, b, baddr[b]))
            if src != src_in:
                problems.append("outer src changed: %s -> %s" % (src_in, src))
            q = p_out[IPerror] if IPerror in p_out else p_out[IPerror6]
            q_in = p_in[IPerror] if IPerror in p_in else p_in[IPerror6]
            if addr(q.src) != baddr[b]:
                problems.append("quoted src %s, expected backend %s" % (q.src, baddr[b]))
            if addr(q.dst) != addr(q_in.dst):
                problems.append("quoted dst changed: %s -> %s" % (q_in.dst, q.dst))
            ql4 = q.payload
            if hasattr(ql4, "sport") and not isinstance(ql4, ICMPerror):
                want = backend_port(cfg, rule, f_dport)
                if ql4.sport != want:
                    problems.append("quoted sport %s, expected %s" % (ql4.sport, want))
            if c.udp0 and q.payload.chksum != 0:
                problems.append("quoted udp checksum 0 became 0x%04x" % q.payload.chksum)
            if isinstance(ql4, UDPerror):
                quoted_checksum[c.label] = ql4.chksum
                twin = short_twin.get(c.label)
                if twin and ql4.chksum != quoted_checksum.get(twin):
                    problems.append("quoted udp checksum 0x%04x, the whole quote of the same packet has 0x%04x" % (
                        ql4.chksum, quoted_checksum.get(twin) or 0))
            need = ("ip", "icmp") if IP in p_out else ("icmpv6",)
        elif c.kind == "rev":
            b, rule = fwd_backend[c.of]
            fp = by_label[c.of][0]
            f_src, f_dst, f_sport, f_dport = endpoints(fp)
            if not (v["backend"] == b):
                problems.append("reply verdict backend %s, flow is on %s" % (v["backend"], b))
            # The client must see exactly the address and port it sent to.
            if src != f_dst:
                problems.append("reply src %s, client sent to %s" % (src, f_dst))
            if f_dport is not None and sport != f_dport:
                problems.append("reply sport %s, client sent to port %s" % (sport, f_dport))
            if dst != f_src or dport != f_sport:
                problems.append("reply dst %s:%s, client is %s:%s" % (dst, dport, f_src, f_sport))
            if c.udp0 and p_out[UDP].chksum != 0:
                problems.append("udp checksum 0 over IPv4 became 0x%04x" % p_out[UDP].chksum)
            need = ("ip",) if IP in p_out else ()
            l4 = (p_out[IP] if IP in p_out else p_out[IPv6]).payload
            need += {TCP: ("tcp",), UDP: () if c.udp0 else ("udp",), ICMP: ("icmp",),
                     ICMPv6EchoReply: ("icmpv6",)}[type(l4)]
            if IPv6 in p_out and isinstance(l4, UDP):
                need += ("udp",)
            problems += diff_outside(p_in, p_out, c)
        else:  # reverr
            b, rule = fwd_backend[c.of]
            fp = by_label[c.of][0]
            f_src, f_dst, f_sport, f_dport = endpoints(fp)
            if src != f_dst:
                problems.append("outer src %s, expected the frontend %s" % (src, f_dst))
            if dst != f_src:
                problems.append("outer dst %s, expected the client %s" % (dst, f_src))
            q = p_out[IPerror] if IPerror in p_out else p_out[IPerror6]
            if addr(q.dst) != f_dst or addr(q.src) != f_src:
                problems.append("quoted %s -> %s, expected %s -> %s (what the client sent)" % (q.src, q.dst, f_src, f_dst))
            if q.payload.dport != f_dport or q.payload.sport != f_sport:
                problems.append("quoted ports %s -> %s, expected %s -> %s" % (q.payload.sport, q.payload.dport, f_sport, f_dport))
            need = ("ip", "icmp") if IP in p_out else ("icmpv6",)
        problems += check_leaving(raw, frame, need, c.udp0)
        res.case("%s: %s" % (c.kind, c.label), problems)
    run_checker_selftest(res, r.out_path)


def run_checker_selftest(res, out_path):
    """The checks above must be able to fail: every checksum field of every packet that
    left the NAT replay, corrupted one at a time, is caught by tshark and by scapy."""
    from harness import rdpcap, wrpcap
    variants, labels = [], []
    for n, p in enumerate(rdpcap(out_path)):
        depth = 0
        layer = Ether(bytes(p))
        while layer is not None and not isinstance(layer, Raw):
            for f in ("chksum", "cksum"):
                v = layer.fields.get(f)
                if v is None or (isinstance(layer, UDP) and v == 0):
                    continue
                q = Ether(bytes(p))
                ql = q
                for _ in range(depth):
                    ql = ql.payload
                ql.setfieldval(f, (v ^ 0x0101) or 1)
                variants.append(Ether(bytes(q)))
                labels.append("packet %d %s.%s" % (n, layer.__class__.__name__, f))
            layer = layer.payload if layer.payload else None
            depth += 1
    path = out_path.replace(".out.pcap", ".corrupted.pcap")
    wrpcap(path, variants)
    frames = tshark_checksums(path)
    problems = []
    for v, label, frame in zip(variants, labels, frames):
        if not scapy_checksum_problems(bytes(v)):
            problems.append("scapy missed a corrupted %s" % label)
        if not tshark_problems(frame, ()):
            problems.append("tshark missed a corrupted %s" % label)
    res.case("checkers: each of %d checksum fields of the packets that left, corrupted, is caught by tshark and scapy"
             % len(variants), problems)


def diff_outside(p_in, p_out, c):
    """Fields other than addresses, ports and checksums must not change."""
    a, b = p_in.copy(), Ether(bytes(p_out))
    for layer in (a, b):
        ip = layer[IP] if IP in layer else layer[IPv6]
        ip.src, ip.dst = ("0.0.0.0", "0.0.0.0") if IP in layer else ("::", "::")
        if IP in layer:
            ip.chksum = 0
        l4 = ip.payload
        for f in ("sport", "dport", "chksum", "cksum"):
            if f in l4.fields or hasattr(l4, f):
                try:
                    setattr(l4, f, 0)
                except Exception:
                    pass
    if bytes(a) != bytes(b):
        return ["bytes other than addresses, ports and checksums changed"]
    return []


def run_unchanged(res):
    """Floating IP: nothing rewritten. Next hop: packets not addressed to the frontend
    pass unchanged even under a non-floating rule."""
    res.section = "nat"
    flows = client_flows()
    pkts = [p for _, p, _ in flows]
    for i, p in enumerate(pkts):
        p.time = T0 + i
    r = replay(nat_config(floating=True), pkts, name="floating")
    problems = []
    if len(r.out) != len(pkts):
        problems.append("%d of %d forwarded" % (len(r.out), len(pkts)))
    for (label, p, _), v, out in zip(flows, r.verdicts, r.out):
        if v["backend"] is None:
            problems.append("%s: no backend named" % label)
        if out != bytes(p):
            problems.append("%s: changed by a floating-IP rule" % label)
    res.case("floating IP: every packet leaves byte for byte unchanged, with a backend named", problems)

    c = "192.168.60.1"
    hop = [E() / IP(src=c, dst="203.0.113.9") / TCP(sport=1234, dport=80, flags="S"),
           E() / IP(src=c, dst="203.0.113.9") / UDP(sport=1235, dport=53) / Raw(b"q"),
           E() / IP(src=c, dst="203.0.113.10") / ICMP(type=8, id=5) / Raw(b"p")]
    for i, p in enumerate(hop):
        p.time = T0 + i
    r = replay(nat_config(), hop, frontend="fe-v4", name="next-hop")
    problems = []
    for i, (p, v) in enumerate(zip(hop, r.verdicts)):
        if v["verdict"] != "forward" or v["rule"] != "ha":
            problems.append("packet %d: %s" % (i, v))
        elif r.out_of(i) != bytes(p):
            problems.append("packet %d to %s changed" % (i, p[IP].dst))
    res.case("next hop (--frontend) under a non-floating rule: packets to other destinations leave unchanged", problems)


# =============================================================================================
# 3. Fragments
# =============================================================================================

def run_fragments(res):
    res.section = "fragments"
    cfg = nat_config()
    baddr = backend_addresses(cfg)
    c4, c6 = "192.168.70.5", "fd00:9::70"
    big = bytes(range(256)) * 12  # 3072 bytes

    # In order: UDP v4 (HA), TCP v4 to 443 (exact, port mapped), UDP v6, TCP v6 to 443.
    datagrams = [
        ("v4 udp :53", E() / IP(src=c4, dst=FE4, id=0x1111) / UDP(sport=42001, dport=53) / Raw(big)),
        ("v4 tcp :443 -> 8443", E() / IP(src=c4, dst=FE4, id=0x1112) / TCP(sport=42002, dport=443, flags="PA") / Raw(big)),
        ("v6 udp :53", E() / IPv6(src=c6, dst=FE6) / IPv6ExtHdrFragment(id=0x2221) / UDP(sport=42003, dport=53) / Raw(big)),
        ("v6 tcp :443 -> 8443", E() / IPv6(src=c6, dst=FE6) / IPv6ExtHdrFragment(id=0x2222) / TCP(sport=42004, dport=443, flags="PA") / Raw(big)),
    ]
    pkts, groups = [], []
    for label, d in datagrams:
        if IP in d:
            frags = [E() / f for f in fragment(d[IP], fragsize=1000)]
        else:
            frags = [E() / f for f in fragment6(d[IPv6], 1000)]
        groups.append((label, d, list(range(len(pkts), len(pkts) + len(frags)))))
        pkts += frags
    t = 0
    for p in pkts:
        p.time = T0 + t
        t += 0.01
    r = replay(cfg, pkts, name="fragments-in-order")
    frames = tshark_checksums(r.out_path)
    for label, d, idx in groups:
        problems = []
        vs = [r.verdicts[i] for i in idx]
        bs = {v["backend"] for v in vs}
        if len(bs) != 1 or any(v["verdict"] != "forward" for v in vs):
            problems.append("fragments went to %s" % [v["backend"] or v["verdict"] for v in vs])
        b = vs[0]["backend"]
        if vs[0]["tuple"]["sport"] is None:
            problems.append("first fragment without ports: %s" % vs[0]["tuple"])
        leaving = [r.out_of(i) for i in idx]
        for j, (i, raw) in enumerate(zip(idx, leaving)):
            if raw is None:
                continue
            if endpoints(Ether(raw))[1] != baddr.get(b):
                problems.append("fragment %d dst %s, backend %s is %s" % (j, endpoints(Ether(raw))[1], b, baddr.get(b)))
            problems += scapy_checksum_problems(raw)
            k = sum(1 for v in r.verdicts[:i] if v["verdict"] == "forward")
            problems += tshark_problems(frames[k], ("ip",) if IP in d else ())
        whole = reassembled([x for x in leaving if x is not None])
        if len(whole) != 1:
            problems.append("fragments that left do not reassemble (%d datagrams)" % len(whole))
        else:
            w = list(whole.values())[0]
            ok, why = transport_checksum_ok(w)
            if not ok:
                problems.append("reassembled datagram: %s" % why)
            want_port = 8443 if "443" in label else 53
            if w.payload.dport != want_port:
                problems.append("reassembled dport %s, expected %s" % (w.payload.dport, want_port))
            inner = d[IPv6ExtHdrFragment].payload if IPv6ExtHdrFragment in d else d[IP].payload
            if bytes(w.payload.payload) != bytes(inner.payload):
                problems.append("reassembled payload differs")
        # tshark reassembles too: the frame that completes the datagram verifies its checksum.
        proto = "udp" if "udp" in label else "tcp"
        last = sum(1 for v in r.verdicts[:idx[-1]] if v["verdict"] == "forward")
        if "1" not in frames[last]["%s.checksum.status" % proto]:
            problems.append("tshark did not verify the reassembled %s checksum (statuses %s)" % (
                proto, frames[last]["%s.checksum.status" % proto]))
        res.case("in order, one datagram, one backend, reassembles with valid checksums: %s [%d fragments]" % (label, len(idx)), problems)
    if "fragments: 4 first, %d followed their first, 0 hashed on the 3-tuple" % (len(pkts) - 4) not in r.summary:
        res.case("summary counts the in-order fragments", ["summary: %s" % r.summary])
    else:
        res.case("summary counts the in-order fragments", [])

    # Out of order: a later fragment first. It has no ports: hashed on (src, dst, proto),
    # which is where a portless packet of that protocol between the same hosts goes
    # (a UDP packet with ports 0 and 0 has exactly that key). The first fragment then
    # takes the 5-tuple's backend and the fragments after it follow.
    for fam in (4, 6):
        src = "192.168.71.%d" if fam == 4 else "fd00:9::71:%x"
        cases = []
        for k in range(1, 9):
            s = src % k
            if fam == 4:
                d = IP(src=s, dst=FE4, id=0x3300 + k) / UDP(sport=43000 + k, dport=53) / Raw(big)
                fr = fragment(d, fragsize=1000)
                probe = E() / IP(src=s, dst=FE4) / UDP(sport=0, dport=0) / Raw(b"3-tuple probe")
            else:
                d = IPv6(src=s, dst=FE6) / IPv6ExtHdrFragment(id=0x4400 + k) / UDP(sport=43000 + k, dport=53) / Raw(big)
                fr = fragment6(d, 1000)
                probe = E() / IPv6(src=s, dst=FE6) / UDP(sport=0, dport=0) / Raw(b"3-tuple probe")
            cases.append((s, [E() / x for x in fr], probe, d))
        # Capture: for each datagram its fragments 2, 0, 1, 3 (a later one first); then the probes.
        pkts, idx = [], []
        for s, fr, probe, d in cases:
            order = [2, 0, 1] + list(range(3, len(fr)))
            idx.append([len(pkts) + j for j in range(len(order))])
            pkts += [fr[j] for j in order]
        probe_at = len(pkts)
        pkts += [c[2] for c in cases]
        for i, p in enumerate(pkts):
            p.time = T0 + 100 + i * 0.01
        r = replay(cfg, pkts, name="fragments-out-of-order-v%d" % fam)
        problems = []
        differ = 0
        for n, ((s, fr, probe, d), ix) in enumerate(zip(cases, idx)):
            v_late, v_first = r.verdicts[ix[0]], r.verdicts[ix[1]]
            rest = [r.verdicts[i] for i in ix[2:]]
            v_probe = r.verdicts[probe_at + n]
            if v_late["verdict"] != "forward" or v_late["tuple"]["sport"] is not None or v_late["tuple"]["dport"] is not None:
                problems.append("%s: later fragment first: %s" % (s, v_late))
            if v_late["backend"] != v_probe["backend"]:
                problems.append("%s: later fragment first went to %s; the 3-tuple (src, dst, udp) goes to %s" % (
                    s, v_late["backend"], v_probe["backend"]))
            if any(v["backend"] != v_first["backend"] for v in rest):
                problems.append("%s: fragments after the first went to %s, the first to %s" % (
                    s, [v["backend"] for v in rest], v_first["backend"]))
            if v_first["tuple"]["sport"] != 43000 + n + 1:
                problems.append("%s: first fragment tuple %s" % (s, v_first["tuple"]))
            out = r.out_of(ix[0])
            if out is not None and endpoints(Ether(out))[1] != baddr[v_late["backend"]]:
                problems.append("%s: later fragment first left for %s, verdict says %s" % (
                    s, endpoints(Ether(out))[1], v_late["backend"]))
            differ += v_late["backend"] != v_first["backend"]
        want = "%d hashed on the 3-tuple" % len(cases)
        if want not in r.summary:
            problems.append("summary does not say %r:\n%s" % (want, r.summary))
        if differ == 0:
            problems.append("no datagram had its 3-tuple and 5-tuple on different backends: the test shows nothing")
        res.case("IPv%d out of order: a later fragment first is hashed on the 3-tuple and counted; the rest follow the first fragment" % fam, problems)

    # Fragment entries live 30 s: a later fragment 29 s after its first still follows it;
    # one 31 s after is on its own (the 3-tuple, counted).
    for fam in (4, 6):
        pkts, marks = [], []
        for k, gap in ((1, 29), (2, 31)):
            s = ("192.168.72.%d" if fam == 4 else "fd00:9::72:%x") % k
            if fam == 4:
                d = IP(src=s, dst=FE4, id=0x8800 + k) / UDP(sport=46000 + k, dport=53) / Raw(big[:1500])
                fr = fragment(d, fragsize=1000)
                probe = E() / IP(src=s, dst=FE4) / UDP(sport=0, dport=0)
            else:
                d = IPv6(src=s, dst=FE6) / IPv6ExtHdrFragment(id=0x8800 + k) / UDP(sport=46000 + k, dport=53) / Raw(big[:1500])
                fr = fragment6(d, 1000)
                probe = E() / IPv6(src=s, dst=FE6) / UDP(sport=0, dport=0)
            first, later = E() / fr[0], E() / fr[1]
            first.time = T0 + 400
            later.time = T0 + 400 + gap
            probe.time = T0 + 500
            marks.append((gap, len(pkts), len(pkts) + 1, len(pkts) + 2))
            pkts += [first, later, probe]
        order = sorted(range(len(pkts)), key=lambda i: pkts[i].time)
        pkts = [pkts[i] for i in order]
        where = {old: new for new, old in enumerate(order)}
        r = replay(cfg, pkts, name="fragments-expiry-v%d" % fam)
        problems = []
        for gap, a, b, p in marks:
            va, vb, vp = r.verdicts[where[a]], r.verdicts[where[b]], r.verdicts[where[p]]
            want = va["backend"] if gap < 30 else vp["backend"]
            what = "its first fragment's" if gap < 30 else "the 3-tuple's"
            if vb["verdict"] != "forward" or vb["backend"] != want:
                problems.append("later fragment %d s after its first went to %s, expected %s backend %s" % (
                    gap, vb["backend"], what, want))
        if "1 hashed on the 3-tuple" not in r.summary or "1 followed their first" not in r.summary:
            problems.append("summary does not count one follower and one 3-tuple fragment:\n%s" % r.summary)
        res.case("IPv%d: fragment entries last 30 s: a later fragment after 29 s follows its first, after 31 s it is hashed on the 3-tuple" % fam, problems)

    # ICMP errors about the fragmented flows reach their backends: v4 fragmentation
    # needed, v6 packet too big (quoting frontend -> client, as the replies left).
    flows = [
        ("v4 frag-needed", E() / IP(src=c4, dst=FE4, id=0x5555) / UDP(sport=44001, dport=53) / Raw(big), "frag-needed"),
        ("v6 packet-too-big", E() / IPv6(src=c6, dst=FE6) / IPv6ExtHdrFragment(id=0x6666) / UDP(sport=44002, dport=53) / Raw(big), "packet-too-big"),
        ("v6 packet-too-big, tcp :443 -> 8443", E() / IPv6(src=c6, dst=FE6) / IPv6ExtHdrFragment(id=0x6667) / TCP(sport=44003, dport=443, flags="PA") / Raw(big), "packet-too-big"),
    ]
    pkts, idx = [], []
    for label, d, kind in flows:
        fr = fragment(d[IP], fragsize=1000) if IP in d else fragment6(d[IPv6], 1000)
        start = len(pkts)
        pkts += [E() / f for f in fr]
        unfragmented = d.copy()
        if IPv6ExtHdrFragment in unfragmented:
            ip6 = unfragmented[IPv6]
            unfragmented = E() / IPv6(src=ip6.src, dst=ip6.dst) / ip6[IPv6ExtHdrFragment].payload
        err = error_to_frontend(Ether(bytes(unfragmented)), kind)
        pkts.append(err)
        idx.append((label, start, len(pkts) - 1))
    for i, p in enumerate(pkts):
        p.time = T0 + 200 + i * 0.01
    r = replay(cfg, pkts, name="fragments-icmp")
    frames = tshark_checksums(r.out_path)
    for label, first, err in idx:
        problems = []
        vf, ve = r.verdicts[first], r.verdicts[err]
        if ve["verdict"] != "forward" or ve["backend"] != vf["backend"]:
            problems.append("error went to %s, the flow is on %s" % (ve["backend"] or ve, vf["backend"]))
        raw = r.out_of(err)
        if raw is not None:
            p = Ether(raw)
            if endpoints(p)[1] != baddr.get(vf["backend"]):
                problems.append("error left for %s, backend %s is %s" % (endpoints(p)[1], vf["backend"], baddr.get(vf["backend"])))
            q = p[IPerror] if IPerror in p else p[IPerror6]
            if addr(q.src) != baddr.get(vf["backend"]):
                problems.append("quoted source %s, expected the backend %s" % (q.src, baddr.get(vf["backend"])))
            if "443" in label and q.payload.sport != 8443:
                problems.append("quoted sport %s, expected 8443" % q.payload.sport)
            k = sum(1 for v in r.verdicts[:err] if v["verdict"] == "forward")
            problems += check_leaving(raw, frames[k], ("ip", "icmp") if IP in p else ("icmpv6",), False)
        res.case("%s about a fragmented flow reaches the flow's backend, translated, valid checksums" % label, problems)

    # A backend's fragmented reply (a large UDP answer) is translated back: every fragment
    # leaves from the frontend, and the datagram reassembles with a valid checksum.
    for fam in (4, 6):
        if fam == 4:
            q = E() / IP(src=c4, dst=FE4) / UDP(sport=45001, dport=53) / Raw(b"question")
        else:
            q = E() / IPv6(src=c6, dst=FE6) / UDP(sport=45002, dport=53) / Raw(b"question")
        q.time = T0 + 300
        r0 = replay(cfg, [q], name="frag-reply-learn")
        b = r0.verdicts[0]["backend"]
        if fam == 4:
            ans = IP(src=baddr[b], dst=c4, id=0x7777) / UDP(sport=53, dport=45001) / Raw(big)
            fr = [E() / f for f in fragment(ans, fragsize=1000)]
        else:
            ans = IPv6(src=baddr[b], dst=c6) / IPv6ExtHdrFragment(id=0x7778) / UDP(sport=53, dport=45002) / Raw(big)
            fr = [E() / f for f in fragment6(ans, 1000)]
        pkts = [q] + fr
        for i, p in enumerate(pkts):
            p.time = T0 + 300 + i * 0.01
        r = replay(cfg, pkts, name="frag-reply-v%d" % fam)
        problems = []
        for i in range(1, len(pkts)):
            v = r.verdicts[i]
            if v["verdict"] != "forward" or v["backend"] != b:
                problems.append("reply fragment %d: %s (%s), expected forward to %s" % (
                    i - 1, v["verdict"], v["backend"] or v["reason"], b))
                continue
            src = endpoints(Ether(r.out_of(i)))[0]
            if src != addr(FE4 if fam == 4 else FE6):
                problems.append("reply fragment %d left from %s, not the frontend" % (i - 1, src))
        leaving = [r.out_of(i) for i in range(1, len(pkts)) if r.out_of(i) is not None]
        whole = reassembled(leaving)
        if len(whole) != 1:
            problems.append("reply fragments that left do not reassemble into one datagram (%d)" % len(whole))
        else:
            ok, why = transport_checksum_ok(list(whole.values())[0])
            if not ok:
                problems.append("reassembled reply: %s" % why)
        res.case("IPv%d: a backend's fragmented UDP reply leaves from the frontend, every fragment" % fam, problems)


# =============================================================================================
# 4. TCP resets on idle (enableTcpReset)
# =============================================================================================

def reset_config(floating):
    cfg = nat_config(floating)
    for r in cfg["rules"]:
        r["enableTcpReset"] = r["name"] != "https6"  # https6: the control, no resets
    return cfg


def run_resets(res):
    res.section = "tcp reset"
    idle = 4 * 60 + 1  # seconds: past the default 4-minute idle timeout
    cases = []  # (label, fam, floating, dport, from_backend, no_ack, reset_expected)
    for fam in (4, 6):
        for floating in (False, True):
            cases.append(("IPv%d %s, port 80, the client speaks" % (fam, "floating" if floating else "NAT"), fam, floating, 80, False, False, True))
            if not floating:
                cases.append(("IPv%d NAT, port 80, the backend speaks" % fam, fam, floating, 80, True, False, True))
    cases.append(("IPv4 NAT, exact rule 443 -> 8443, the client speaks", 4, False, 443, False, False, True))
    cases.append(("IPv4 NAT, exact rule 443 -> 8443, the backend speaks", 4, False, 443, True, False, True))
    cases.append(("IPv4 NAT, a segment without ACK (PSH only)", 4, False, 80, False, True, True))
    cases.append(("IPv6 NAT, exact rule https6 without enableTcpReset: forwarded", 6, False, 443, False, False, False))
    for n, (label, fam, floating, dport, from_backend, no_ack, expect_reset) in enumerate(cases):
        cfg = reset_config(floating)
        baddr = backend_addresses(cfg)
        client = "192.0.2.%d" % (10 + n) if fam == 4 else "2001:db8::%x" % (10 + n)
        fe = FE4 if fam == 4 else FE6
        L3 = (lambda s, d: IP(src=s, dst=d)) if fam == 4 else (lambda s, d: IPv6(src=s, dst=d))
        sport = 40000 + n
        cseq, bseq = 1000, 5000
        syn = E() / L3(client, fe) / TCP(sport=sport, dport=dport, flags="S", seq=cseq - 1)
        syn.time = T0
        learn = replay(cfg, [syn], name="reset-learn")
        b = learn.verdicts[0]["backend"]
        bport = backend_port(cfg, learn.verdicts[0]["rule"], dport)
        pkts = [syn]
        if not floating:
            pkts.append(E() / L3(baddr[b], client) / TCP(sport=bport, dport=sport, flags="SA", seq=bseq - 1, ack=cseq))
        pkts.append(E() / L3(client, fe) / TCP(sport=sport, dport=dport, flags="A", seq=cseq, ack=bseq))
        pkts.append(E() / L3(client, fe) / TCP(sport=sport, dport=dport, flags="PA", seq=cseq, ack=bseq) / Raw(b"x" * 10))
        cseq += 10
        if from_backend:
            last = E() / L3(baddr[b], client) / TCP(sport=bport, dport=sport, flags="PA", seq=bseq, ack=cseq) / Raw(b"y" * 30)
        else:
            last = E() / L3(client, fe) / TCP(sport=sport, dport=dport, flags="P" if no_ack else "PA", seq=cseq, ack=0 if no_ack else bseq) / Raw(b"z" * 20)
        for i, p in enumerate(pkts):
            p.time = T0 + i * 0.01
        last.time = T0 + idle
        fresh = E() / L3(client, fe) / TCP(sport=sport, dport=dport, flags="S", seq=7777)
        fresh.time = T0 + idle + 0.5
        pkts += [last, fresh]
        r = replay(cfg, pkts, name="reset-%d" % n)
        i_last = len(pkts) - 2
        v = r.verdicts[i_last]
        problems = []
        if not expect_reset:
            if v["verdict"] != "forward":
                problems.append("verdict %s, expected forward (no enableTcpReset)" % v["verdict"])
            res.case(label, problems)
            continue
        if v["verdict"] != "reset" or v["backend"] != b or v["reason"] != "idle-reset":
            res.case(label, ["verdict %s" % v])
            continue
        if r.verdicts[-1]["verdict"] != "forward":
            problems.append("the SYN after the reset: %s, expected forward" % r.verdicts[-1]["verdict"])
        to_sender, onward = r.resets_of(i_last)
        path = r.out_path.replace(".out.pcap", ".rst.pcap")
        wrpcap(path, [Ether(to_sender), Ether(onward)])
        sums = tshark_checksums(path, defragment=False)
        fields = tshark_tcp(path)
        for raw, frame in zip((to_sender, onward), sums):
            problems += check_leaving(raw, frame, ("ip", "tcp") if fam == 4 else ("tcp",), False)
        # Who speaks, and who is on the other side, as addresses and ports on the wire.
        if from_backend:
            speaker, speaker_port = addr(baddr[b]), bport
            listener, listener_port = addr(client), sport
            onward_src, onward_sport = addr(fe), dport  # goes to the client from the frontend
            onward_dst, onward_dport = addr(client), sport
        else:
            speaker, speaker_port = addr(client), sport
            listener, listener_port = addr(fe), dport
            onward_src, onward_sport = addr(client), sport
            onward_dst = addr(fe) if floating else addr(baddr[b])
            onward_dport = dport if floating else bport
        seq, ack = last[TCP].seq, last[TCP].ack
        seg = len(last[TCP].payload)
        want = [
            ("RST back to the sender", to_sender, listener, listener_port, speaker, speaker_port,
             (0, seq + seg, "0x0014") if no_ack else (ack, None, "0x0004"), (MAC["dst"], MAC["src"])),
            ("RST on to the far end", onward, onward_src, onward_sport, onward_dst, onward_dport,
             (seq, None, "0x0004") if no_ack else (seq, ack, "0x0014"), (MAC["src"], MAC["dst"])),
        ]
        for (what, raw, src, sp, dst, dp, (wseq, wack, wflags), (esrc, edst)), f in zip(want, fields):
            ip_src = f["ip.src"] or f["ipv6.src"]
            ip_dst = f["ip.dst"] or f["ipv6.dst"]
            if (addr(ip_src), int(f["tcp.srcport"]), addr(ip_dst), int(f["tcp.dstport"])) != (src, sp, dst, dp):
                problems.append("%s: %s:%s -> %s:%s, expected %s:%s -> %s:%s" % (
                    what, ip_src, f["tcp.srcport"], ip_dst, f["tcp.dstport"], src, sp, dst, dp))
            if f["tcp.flags"] != wflags:
                problems.append("%s: flags %s, expected %s" % (what, f["tcp.flags"], wflags))
            if int(f["tcp.seq_raw"]) != wseq:
                problems.append("%s: seq %s, expected %d" % (what, f["tcp.seq_raw"], wseq))
            if wack is not None and int(f["tcp.ack_raw"]) != wack:
                problems.append("%s: ack %s, expected %d" % (what, f["tcp.ack_raw"], wack))
            if f["tcp.len"] != "0":
                problems.append("%s: %s bytes of payload" % (what, f["tcp.len"]))
            if (f["ip.ttl"] or f["ipv6.hlim"]) != "64":
                problems.append("%s: TTL %s" % (what, f["ip.ttl"] or f["ipv6.hlim"]))
            if (f["eth.src"], f["eth.dst"]) != (esrc, edst):
                problems.append("%s: MACs %s -> %s, expected %s -> %s" % (what, f["eth.src"], f["eth.dst"], esrc, edst))
        res.case(label, problems)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-v", "--verbose", action="store_true", help="print passing cases too")
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    ap.add_argument("--only", help="run only scenarios whose description contains this")
    args = ap.parse_args()
    res = Results(args.verbose)
    placement = Placement()
    parts = [("scenario", lambda: run_scenarios(res, placement, args.only))]
    if not args.only:
        parts += [("nat", lambda: run_nat(res)), ("nat", lambda: run_unchanged(res)),
                  ("fragments", lambda: run_fragments(res)), ("tcp reset", lambda: run_resets(res))]
    for section, part in parts:
        try:
            part()
        except Exception:  # a broken part is a failed case, and the others still run
            res.section = section
            res.case("part stopped by an exception", traceback.format_exc().splitlines())
    if res.failed or args.keep:
        print("captures, configurations, events and verdicts: %s" % WORK)
    else:
        shutil.rmtree(WORK, ignore_errors=True)
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 0 if res.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
