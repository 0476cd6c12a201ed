#!/usr/bin/env python3
"""End-to-end test of `haports pump` in network namespaces.

Topology (every namespace, link and address is this test's own; all are removed at the
end, on failure too):

      client 10.211.0.2      pump 10.211.0.1      nva0 .10   nva1 .11   nva2 .12
           |                      |                  |          |          |
      ─────┴──────────── br0 (in its own namespace) ─┴──────────┴──────────┘

The pump (the real command, in its namespace) listens for VXLAN on 10.211.0.1:4789
(frontend fe-vx) and GENEVE on 10.211.0.1:6081 (frontend fe-gnv, VNIs 2002 and 2003),
with floating-IP HA-ports rules over the three appliances, probed by TCP on port 8022
every second, threshold 2. Each other namespace runs netns_agent.py: the client sends
tunnel datagrams built with scapy; each appliance receives on UDP 4789 and 6081, holds
its probe target (a TCP listener on 8022) and sends the reply direction back into the
pump. dumpcap captures the pump's wire; tshark dissects it at the end.

What it shows:
  1. every packet reaches exactly one appliance, re-encapsulated from the listener's
     socket with the same VNI and GENEVE options, inner bytes unchanged; all packets of
     a flow reach one appliance; all three appliances get flows;
  2. symmetric: the reply direction, sent by the appliance back through the pump, reaches
     the same appliance;
  3. stopping nva1's probe target marks it down within interval × threshold; new flows
     avoid it; its established TCP flows stay (persistOnUnhealthy defaultForProtocol),
     its UDP and ICMP flows move; flows elsewhere do not move; when the target returns,
     nva1 is up again within interval × threshold, takes new flows, and the flows that
     moved stay where they are;
  4. malformed tunnel datagrams are counted by reason (metrics), the pump keeps running
     and keeps forwarding;
  5. SIGTERM stops it with exit code 0 and a final JSON line whose counters add up;
  6. tshark dissects every datagram the pump sent as valid VXLAN/GENEVE with the VNIs sent.
Needs root (ip netns), ip and tc (iproute2), dumpcap and tshark, node, the Python module
scapy and a build (`npm run build`). Anything missing, or a kernel that cannot make the
namespaces, is a failure (exit status 1) that names what is missing, never a skip: CI runs
this as root. The output starts with what runs (kernel, tool versions, the parts) and
ends with a summary of the checks of each part. Runs in about 20 seconds; bounded at 150.
"""
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "test" / "lib"))
from scenario import Report, first_line, run, run_scenario  # noqa: E402

AGENT = Path(__file__).resolve().parent / "netns_agent.py"
TAG = f"hpt{os.getpid()}"
ROLES = ["client", "pump", "nva0", "nva1", "nva2"]
NS = {r: f"{TAG}-{r}" for r in ["br"] + ROLES}
NET = "10.211.0"
IP = {"pump": f"{NET}.1", "client": f"{NET}.2", "nva0": f"{NET}.10", "nva1": f"{NET}.11", "nva2": f"{NET}.12"}
NVAS = ["nva0", "nva1", "nva2"]
VX_PORT, GNV_PORT, PROBE_PORT, METRICS = 4789, 6081, 8022, "127.0.0.1:9464"
VX_VNI, GNV_VNIS = 1001, (2002, 2003)
INTERVAL, THRESHOLD = 1, 2
SLACK = 0.3  # scheduling and logging latency allowed on top of interval × threshold (s)
WORK = Path(os.environ.get("HAPORTS_PUMP_E2E_DIR", ROOT / "build" / "pump-e2e"))

processes = []
# The parts of the scenario, in order. The checks before part 1 (the pump's start) and
# after the last (clean-up) count under "set-up" and "clean-up".
PARTS = [
    "VXLAN and GENEVE flows reach one appliance each, re-encapsulated unchanged",
    "symmetric: the reply direction, sent by the appliance through the pump, reaches the same appliance",
    "nva1's probe target stops: new flows move away, established TCP stays",
    "the probe target returns: nva1 takes new flows again; flows that moved stay",
    "malformed tunnel datagrams: counted by reason, the pump keeps forwarding",
    "SIGTERM: graceful stop, final counters",
    "the capture, dissected by tshark",
    "back-pressure: a slow link fills the send buffer; queued sends keep their bytes, drops are counted",
]
R = Report("test_pump_netns", PARTS)
part, check = R.part, R.check


# ---- Topology ------------------------------------------------------------------------

def remove_stale():
    """Namespaces of earlier runs of this test whose process is gone."""
    listed = run("ip", "netns", "list", check_rc=False).stdout
    for name in re.findall(r"^(hpt(\d+)-\w+)", listed, re.M):
        if not Path(f"/proc/{name[1]}").exists():
            run("ip", "netns", "del", name[0], check_rc=False)


def create_topology():
    for ns in NS.values():
        run("ip", "netns", "add", ns)
    br = NS["br"]
    run("ip", "-n", br, "link", "add", "br0", "type", "bridge")
    run("ip", "-n", br, "link", "set", "br0", "up")
    for role in ROLES:
        ns = NS[role]
        run("ip", "-n", br, "link", "add", f"v-{role}", "type", "veth", "peer", "name", "eth0", "netns", ns)
        run("ip", "-n", br, "link", "set", f"v-{role}", "master", "br0", "up")
        run("ip", "-n", ns, "addr", "add", f"{IP[role]}/24", "dev", "eth0")
        run("ip", "-n", ns, "link", "set", "eth0", "up")
        run("ip", "-n", ns, "link", "set", "lo", "up")
    # The pump sends runs of datagrams as UDP GSO messages (udpSegmentation). veth would
    # carry them whole, and the capture on the pump's eth0 would see one frame per run;
    # without the offload they are cut into datagrams before the device, as a NIC without
    # UDP segmentation offload does, and the capture sees the wire as it is.
    run("ip", "netns", "exec", NS["pump"], "ethtool", "-K", "eth0", "tx-udp-segmentation", "off")


def destroy_topology():
    for p in processes:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(3)
            except subprocess.TimeoutExpired:
                pass
    for ns in NS.values():
        run("ip", "netns", "del", ns, check_rc=False)


# ---- Agents and the pump -------------------------------------------------------------

class Agent:
    def __init__(self, role, udp=(), tcp=None):
        self.role = role
        cmd = ["ip", "netns", "exec", NS[role], sys.executable, str(AGENT), "--name", role]
        for u in udp:
            cmd += ["--udp", u]
        if tcp:
            cmd += ["--tcp", tcp]
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        processes.append(self.p)
        self.events = []
        self.cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.wait(lambda e: e["ev"] == "ready", 10)

    def _read(self):
        for line in self.p.stdout:
            e = json.loads(line)
            e["t"] = time.monotonic()
            with self.cv:
                self.events.append(e)
                self.cv.notify_all()

    def wait(self, pred, timeout, start=0):
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for e in self.events[start:]:
                    if pred(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.role}: no event in {timeout}s")
                self.cv.wait(left)

    def cmd(self, **c):
        self.p.stdin.write(json.dumps(c) + "\n")
        self.p.stdin.flush()

    def barrier(self):
        token = random.random()
        mark = len(self.events)
        self.cmd(cmd="ping", id=token)
        self.wait(lambda e: e["ev"] == "pong" and e["id"] == token, 10, mark)

    def send(self, to_port, datagrams, from_port=None):
        for i in range(0, len(datagrams), 200):
            self.cmd(cmd="send", to=IP["pump"], port=to_port, from_port=from_port, data=[d.hex() for d in datagrams[i:i + 200]])
        self.barrier()

    def received(self):
        with self.cv:
            return [e for e in self.events if e["ev"] == "rx"]


class PumpProcess:
    def __init__(self, config_path):
        entry = [str(ROOT / "bin" / "haports.mjs"), "pump"]
        if subprocess.run(["node", *entry, "--help"], capture_output=True).returncode != 0:
            entry = [str(ROOT / "build" / "host" / "pump.mjs")]  # before cli.ts has `pump`
        self.cmdline = ["node", *entry, "--config", str(config_path), "--metrics", METRICS]
        R.notes.append("pump: " + " ".join(self.cmdline))
        self.p = subprocess.Popen(["ip", "netns", "exec", NS["pump"], *self.cmdline],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        processes.append(self.p)
        self.logs = []
        self.raw = []
        self.cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stderr:
            with self.cv:
                self.raw.append(line.rstrip("\n"))
                try:
                    e = json.loads(line)
                    e["_t"] = time.monotonic()
                    self.logs.append(e)
                except ValueError:
                    pass
                self.cv.notify_all()

    def wait_log(self, pred, timeout):
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for e in self.logs:
                    if pred(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or self.p.poll() is not None and not any(pred(e) for e in self.logs):
                    raise TimeoutError(f"pump: no such log line in {timeout}s")
                self.cv.wait(min(left, 0.2))

    def metrics(self):
        r = run("ip", "netns", "exec", NS["pump"], sys.executable, "-c",
                f"import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('http://{METRICS}/metrics', timeout=5).read().decode())")
        out = {}
        for line in r.stdout.splitlines():
            if line.startswith("#") or not line:
                continue
            m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
            labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or "")))
            out[(m.group(1), labels)] = float(m.group(3))
        return out


def metric(ms, name, **labels):
    want = tuple(sorted((k, str(v)) for k, v in labels.items()))
    return ms.get((name, want))


# ---- Packets -------------------------------------------------------------------------

try:
    from scapy.all import ARP, ICMP, IP as IPv4, IPv6, TCP, UDP, Ether, Raw  # noqa: E402
    from scapy.contrib.geneve import GENEVE, GeneveOptions  # noqa: E402
    from scapy.layers.vxlan import VXLAN  # noqa: E402
    SCAPY_ERROR = None
except ImportError as e:  # reported by main() with everything else that is missing
    SCAPY_ERROR = str(e)

TAG_RE = re.compile(rb"hp\|(\d+)\|([fr])\|(\d+)\|")
GNV_OPTIONS = [GeneveOptions(classid=0x0105, type=0x01, data=b"\x00\x00\x00\x2a\x00\x00\x00\x07"),
               GeneveOptions(classid=0xFFFF, type=0x80, data=b"hpt!")] if SCAPY_ERROR is None else []  # the second is critical


class Flow:
    counter = 0

    def __init__(self, listener, proto, family=4, encap="eth", vni=None):
        Flow.counter += 1
        self.id = Flow.counter
        self.listener, self.proto, self.family, self.encap = listener, proto, family, encap
        self.vni = vni or (VX_VNI if listener == "vx" else GNV_VNIS[self.id % 2])
        if family == 4:
            self.a, self.b = f"172.16.1.{1 + self.id % 250}", f"172.16.2.{1 + (self.id * 7) % 250}"
        else:
            self.a, self.b = f"fd00:a::{self.id:x}", f"fd00:b::{(self.id * 7) % 4096:x}"
        self.sport, self.dport = 20000 + self.id, [443, 40001, 8080, 40003][self.id % 4]

    def inner(self, d, seq, pad=0):
        """The inner packet of direction d ('f' a→b or 'r' b→a), tagged in its payload."""
        tag = f"hp|{self.id}|{d}|{seq}|".encode()
        src, dst = (self.a, self.b) if d == "f" else (self.b, self.a)
        sport, dport = (self.sport, self.dport) if d == "f" else (self.dport, self.sport)
        ip = IPv4(src=src, dst=dst) if self.family == 4 else IPv6(src=src, dst=dst)
        if self.proto == "tcp":
            flags = {("f", 0): "S", ("r", 0): "SA"}.get((d, seq), "A" if seq % 2 else "PA")
            l4 = TCP(sport=sport, dport=dport, flags=flags, seq=1000 + seq, ack=0 if flags == "S" else 1)
        elif self.proto == "udp":
            l4 = UDP(sport=sport, dport=dport)
        else:
            l4 = ICMP(type=8 if d == "f" else 0, id=self.id, seq=seq)
        pkt = ip / l4 / Raw(tag + b"payload" + bytes((self.id + i) & 0xFF for i in range(pad)))
        if self.encap == "eth":
            pkt = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / pkt
        return bytes(pkt)

    def header(self):
        if self.listener == "vx":
            return bytes(VXLAN(flags=0x08, vni=self.vni))
        proto = {"eth": 0x6558, "ip": 0x0800 if self.family == 4 else 0x86DD}[self.encap]
        return bytes(GENEVE(vni=self.vni, proto=proto, critical=1, options=GNV_OPTIONS))

    def port(self):
        return VX_PORT if self.listener == "vx" else GNV_PORT


class Ledger:
    """What was sent (by tag) and where each tagged datagram arrived."""

    def __init__(self, agents):
        self.agents = agents
        self.sent = {}      # (flow id, dir, seq) -> (flow, header, inner)
        self.seen = {role: 0 for role in NVAS}
        self.arrivals = {}  # key -> list of (role, event)

    def datagram(self, flow, d, seq, pad=0):
        h, inner = flow.header(), flow.inner(d, seq, pad)
        self.sent[(flow.id, d, seq)] = (flow, h, inner)
        return h + inner

    def collect(self, expect_keys, timeout=5):
        deadline = time.monotonic() + timeout
        while True:
            for role in NVAS:
                rx = self.agents[role].received()
                for e in rx[self.seen[role]:]:
                    data = bytes.fromhex(e["data"])
                    m = TAG_RE.search(data)
                    if m:
                        key = (int(m.group(1)), m.group(2).decode(), int(m.group(3)))
                        self.arrivals.setdefault(key, []).append((role, e, data))
                self.seen[role] = len(rx)
            if all(k in self.arrivals for k in expect_keys) or time.monotonic() > deadline:
                return

    def where(self, key):
        a = self.arrivals.get(key, [])
        return a[0][0] if len(a) == 1 else None

    def verify(self, keys):
        """Each key arrived exactly once, from the right listener socket, bytes intact."""
        bad = []
        for key in keys:
            a = self.arrivals.get(key, [])
            if len(a) != 1:
                bad.append(f"{key}: arrived {len(a)} times")
                continue
            role, e, data = a[0]
            flow, h, inner = self.sent[key]
            if e["src"] != IP["pump"] or e["sport"] != flow.port() or e["port"] != flow.port():
                bad.append(f"{key}: from {e['src']}:{e['sport']} to port {e['port']}")
            elif data != h + inner:
                bad.append(f"{key}: bytes changed (header {data[:len(h)].hex()} vs {h.hex()})")
        return bad


def send_phase(client, ledger, flows, d, seq, sender=None):
    """Sends one datagram of every flow (from the client, or for 'r' from the appliance each flow reached)."""
    by_sender = {}
    for f in flows:
        role = sender(f) if sender else "client"
        by_sender.setdefault((role, f.port()), []).append(ledger.datagram(f, d, seq))
    for (role, port), datagrams in by_sender.items():
        agent = ledger.agents[role]
        agent.send(port, datagrams, from_port=port if role != "client" else None)
    keys = [(f.id, d, seq) for f in flows]
    ledger.collect(keys)
    return keys


# ---- The test ------------------------------------------------------------------------

def config():
    return {
        "hashSeed": "0x1f2e3d4c5b6a7988",
        "flowTable": {"capacity": 4096},
        "frontends": [{"name": "fe-vx", "address": "10.250.0.1"}, {"name": "fe-gnv", "address": "10.250.0.2"}],
        "backendPools": [{"name": "nvas", "backends": [{"name": f"nva-{i}", "address": IP[n]} for i, n in enumerate(NVAS)]}],
        "probes": [{"name": "tcp-8022", "protocol": "tcp", "port": PROBE_PORT, "intervalSeconds": INTERVAL, "threshold": THRESHOLD}],
        "rules": [
            {"name": "ha-vx", "frontend": "fe-vx", "backendPool": "nvas", "protocol": "all", "frontendPort": 0,
             "backendPort": 0, "floatingIp": True, "probe": "tcp-8022", "persistOnUnhealthy": "defaultForProtocol"},
            {"name": "ha-gnv", "frontend": "fe-gnv", "backendPool": "nvas", "protocol": "all", "frontendPort": 0,
             "backendPort": 0, "floatingIp": True, "probe": "tcp-8022"},
        ],
        "pump": {
            "listeners": [
                {"name": "vx", "protocol": "vxlan", "frontend": "fe-vx", "bind": f"{IP['pump']}:{VX_PORT}",
                 "vnis": [VX_VNI], "peers": [f"{NET}.0/24"]},
                {"name": "gnv", "protocol": "geneve", "frontend": "fe-gnv", "bind": f"{IP['pump']}:{GNV_PORT}",
                 "vnis": list(GNV_VNIS), "peers": [f"{NET}.0/24"]},
            ],
            "batchSize": 64,
        },
    }


def make_flows(listener, n_tcp, n_udp, n_icmp, n_tcp6, n_udp6, encaps=("eth",)):
    flows = []
    for i, (proto, fam, n) in enumerate([("tcp", 4, n_tcp), ("udp", 4, n_udp), ("icmp", 4, n_icmp),
                                         ("tcp", 6, n_tcp6), ("udp", 6, n_udp6)]):
        for j in range(n):
            flows.append(Flow(listener, proto, fam, encaps[(i + j) % len(encaps)]))
    return flows


def handshake(client, ledger, flows):
    """Forward packet 0, the reply from the appliance it reached, then forward 1 (the ACK)."""
    k0 = send_phase(client, ledger, flows, "f", 0)
    k1 = send_phase(client, ledger, flows, "r", 0, sender=lambda f: ledger.where((f.id, "f", 0)) or "client")
    k2 = send_phase(client, ledger, flows, "f", 1)
    return k0, k1, k2


def scenario():
    agents = {"client": Agent("client")}
    for n in NVAS:
        agents[n] = Agent(n, udp=[f"{IP[n]}:{VX_PORT}", f"{IP[n]}:{GNV_PORT}"], tcp=f"{IP[n]}:{PROBE_PORT}")
    client = agents["client"]
    ledger = Ledger(agents)

    WORK.mkdir(parents=True, exist_ok=True)
    pcap = WORK / "pump.pcapng"
    if pcap.exists():
        pcap.unlink()
    cap = subprocess.Popen(["ip", "netns", "exec", NS["pump"], "dumpcap", "-q", "-i", "eth0", "-f", "udp", "-w", str(pcap)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    processes.append(cap)
    deadline = time.monotonic() + 10
    while not pcap.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)

    cfg = WORK / "config.json"
    cfg.write_text(json.dumps(config(), indent=1))
    pump = PumpProcess(cfg)
    try:
        running = pump.wait_log(lambda e: e.get("msg") == "running", 20)
    except TimeoutError:
        print("\n".join(pump.raw[-30:]))
        raise
    initial = [e for e in pump.logs if e.get("msg") == "backend initially up"]
    check(len(initial) == 3, f"one probe round before opening the listeners: {len(initial)} appliances initially up")
    check([l["name"] for l in running["listeners"]] == ["vx", "gnv"], "listeners vx (VXLAN) and gnv (GENEVE) running")

    part(1)
    vx = make_flows("vx", 24, 12, 6, 8, 4)
    gnv = make_flows("gnv", 12, 8, 4, 6, 4, encaps=("eth", "ip"))
    flows = vx + gnv
    k0, k1, k2 = handshake(client, ledger, flows)
    bad = ledger.verify(k0 + k2)
    check(not bad, f"{len(k0 + k2)} client datagrams each delivered once, from the listener's port, VNI/options/inner intact"
          + (f": {bad[:3]}" if bad else ""))
    split = [f.id for f in flows if ledger.where((f.id, "f", 0)) != ledger.where((f.id, "f", 1))]
    check(not split, f"all packets of each of {len(flows)} flows reached one appliance" + (f"; split: {split[:5]}" if split else ""))
    for name, group in (("VXLAN", vx), ("GENEVE", gnv)):
        per = {n: sum(1 for f in group if ledger.where((f.id, "f", 0)) == n) for n in NVAS}
        check(all(per.values()), f"{name} flows spread over all three appliances: {per}")
    gnv_ip = [f for f in gnv if f.encap == "ip"]
    check(all(ledger.where((f.id, "f", 0)) for f in gnv_ip), f"GENEVE carrying raw IPv4/IPv6 (protocol 0x0800/0x86DD): {len(gnv_ip)} flows delivered")

    part(2)
    bad = ledger.verify(k1)
    check(not bad, f"{len(k1)} reply datagrams delivered once, intact" + (f": {bad[:3]}" if bad else ""))
    mism = [f.id for f in flows if ledger.where((f.id, "r", 0)) != ledger.where((f.id, "f", 0))]
    check(not mism, f"replies of all {len(flows)} flows met the appliance of their forward direction" + (f"; not: {mism[:5]}" if mism else ""))
    home = {f.id: ledger.where((f.id, "f", 0)) for f in flows}

    part(3)
    victim = "nva1"
    t0 = time.monotonic()
    agents[victim].cmd(cmd="tcp", on=False)
    down = pump.wait_log(lambda e: e.get("msg") == "backend down" and e.get("address") == IP[victim], 10)
    dt = down["_t"] - t0
    check(dt <= INTERVAL * THRESHOLD + SLACK,
          f"nva1 marked down {dt:.2f}s after its probe target stopped (interval {INTERVAL}s × threshold {THRESHOLD} = {INTERVAL * THRESHOLD}s): {down.get('reason')}")
    ms = pump.metrics()
    check(metric(ms, "haports_backend_up", pool="nvas", backend="nva-1") == 0
          and metric(ms, "haports_backend_up", pool="nvas", backend="nva-0") == 1, "metrics: haports_backend_up nva-1 0, nva-0 1")
    new = make_flows("vx", 30, 10, 0, 5, 0) + make_flows("gnv", 10, 5, 0, 0, 0, encaps=("eth", "ip"))
    kn = send_phase(client, ledger, new, "f", 0)
    where_new = [ledger.where(k) for k in kn]
    check(all(where_new) and victim not in where_new,
          f"{len(new)} new flows delivered, none to nva1: { {n: where_new.count(n) for n in NVAS} }")
    on_victim = [f for f in flows if home[f.id] == victim]
    tcp_v = [f for f in on_victim if f.proto == "tcp"]
    other_v = [f for f in on_victim if f.proto != "tcp"]
    ke = send_phase(client, ledger, on_victim, "f", 2)
    check(len(tcp_v) > 0 and all(ledger.where((f.id, "f", 2)) == victim for f in tcp_v),
          f"{len(tcp_v)} established TCP flows of nva1 stay on nva1 (defaultForProtocol)")
    moved = {f.id: ledger.where((f.id, "f", 2)) for f in other_v}
    check(len(other_v) > 0 and all(w in ("nva0", "nva2") for w in moved.values()),
          f"{len(other_v)} UDP/ICMP flows of nva1 moved to healthy appliances: {sorted(set(moved.values()))}")
    kr = send_phase(client, ledger, on_victim, "r", 1, sender=lambda f: ledger.where((f.id, "f", 2)) or "client")
    check(all(ledger.where((f.id, "r", 1)) == ledger.where((f.id, "f", 2)) for f in on_victim),
          "their replies still meet the same appliance as their forward direction")
    rest = [f for f in flows if home[f.id] != victim]
    kst = send_phase(client, ledger, rest, "f", 2)
    check(all(ledger.where((f.id, "f", 2)) == home[f.id] for f in rest), f"{len(rest)} flows on nva0/nva2 did not move")

    part(4)
    t1 = time.monotonic()
    agents[victim].cmd(cmd="tcp", on=True)
    up = pump.wait_log(lambda e: e.get("msg") == "backend up" and e.get("address") == IP[victim], 10)
    dt = up["_t"] - t1
    check(dt <= INTERVAL * THRESHOLD + SLACK, f"nva1 up again {dt:.2f}s after its probe target returned: {up.get('reason')}")
    new2 = make_flows("vx", 30, 15, 0, 0, 0)
    kn2 = send_phase(client, ledger, new2, "f", 0)
    w2 = [ledger.where(k) for k in kn2]
    check(all(w2) and w2.count(victim) > 0, f"{len(new2)} new flows after recovery: { {n: w2.count(n) for n in NVAS} }")
    km = send_phase(client, ledger, other_v, "f", 3)
    check(all(ledger.where((f.id, "f", 3)) == moved[f.id] for f in other_v), "flows that moved off nva1 stay on their new appliance")
    bad = ledger.verify(kn + ke + kr + kst + kn2 + km)
    check(not bad, "every datagram of phases 3-4 delivered once, intact" + (f": {bad[:3]}" if bad else ""))

    part(5)
    eth_ip = bytes(Ether() / IPv4(src="172.16.9.1", dst="172.16.9.2") / UDP(sport=1, dport=2) / Raw(b"x"))
    vx_bad = {
        "tunnel-truncated": [b"\x08\x00\x00", b""],
        "vxlan-no-vni-flag": [bytes(VXLAN(flags=0x00, vni=1)) + eth_ip],
        "tunnel-empty": [bytes(VXLAN(flags=0x08, vni=VX_VNI))],
    }
    vx_core = {"not-ip": [bytes(VXLAN(flags=0x08, vni=VX_VNI) / Ether() / ARP())],
               "truncated": [bytes(VXLAN(flags=0x08, vni=VX_VNI)) + eth_ip[:24]]}
    g = lambda **kw: bytes(GENEVE(**{"vni": GNV_VNIS[0], "proto": 0x6558, **kw}))
    gnv_bad = {
        "geneve-bad-version": [g(version=1) + eth_ip],
        "geneve-control": [g(oam=1) + eth_ip],
        "geneve-bad-options": [bytes([2, 0, 0x65, 0x58, 0x00, 0x07, 0xd2, 0, 0x01, 0x05, 0x01, 5, 0, 0, 0, 0]) + eth_ip],
        "geneve-unsupported-protocol": [g(proto=0x1234) + eth_ip],
        "tunnel-truncated": [bytes([4, 0, 0x65, 0x58, 0, 0, 0, 0, 1, 2])],
        "unknown-vni": [g(vni=999) + eth_ip],
    }
    before = pump.metrics()
    client.send(VX_PORT, [d for ds in list(vx_bad.values()) + list(vx_core.values()) for d in ds])
    client.send(GNV_PORT, [d for ds in gnv_bad.values() for d in ds])
    time.sleep(0.3)
    after = pump.metrics()
    delta = lambda name, **l: (metric(after, name, **l) or 0) - (metric(before, name, **l) or 0)
    wrong = []
    for listener, table in (("vx", vx_bad), ("gnv", gnv_bad)):
        for reason, ds in table.items():
            got = delta("haports_drops_total", stage="pump", listener=listener, reason=reason)
            if got != len(ds):
                wrong.append(f"{listener}/{reason}: {got} != {len(ds)}")
    for reason, ds in vx_core.items():
        got = delta("haports_drops_total", stage="core", listener="", reason=reason)
        if got != len(ds):
            wrong.append(f"core/{reason}: {got} != {len(ds)}")
    check(not wrong, "each malformed datagram counted under its reason in haports_drops_total" + (f": {wrong}" if wrong else ""))
    rnd = random.Random(7)
    junk = [bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 160))) for _ in range(1500)]
    # and some with a valid VXLAN header, to get past decapsulation into the core
    junk += [bytes(VXLAN(flags=0x08, vni=VX_VNI)) + bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 80))) for _ in range(300)]
    client.send(VX_PORT, junk)
    client.send(GNV_PORT, junk[:800])
    time.sleep(0.5)
    check(pump.p.poll() is None, f"the pump survived {len(junk) + 800} random datagrams")
    alive = make_flows("vx", 3, 3, 0, 0, 0) + make_flows("gnv", 3, 0, 0, 0, 0)
    ka = send_phase(client, ledger, alive, "f", 0)
    check(not ledger.verify(ka), f"and still forwards: {len(alive)} new flows delivered intact")

    part(6)
    sent_by_port = {VX_PORT: 0, GNV_PORT: 0}
    for n in NVAS:
        for e in agents[n].received():
            if e["src"] == IP["pump"]:
                sent_by_port[e["port"]] += 1
    pump.p.send_signal(signal.SIGTERM)
    try:
        rc = pump.p.wait(10)
    except subprocess.TimeoutExpired:
        rc = None
    check(rc == 0, f"exit code {rc} after SIGTERM")
    time.sleep(0.1)
    last = pump.logs[-1] if pump.logs else {}
    check(last.get("msg") == "stopped" and last.get("signal") == "SIGTERM", "last log line is the final 'stopped' record")
    if last.get("msg") == "stopped":
        ls, core = last["listeners"], last["core"]
        received = sum(l["receivedPackets"] for l in ls.values())
        pre_core = sum(n for l in ls.values() for r, n in l["drops"].items() if r not in ("no-appliance-address", "send-error"))
        sent = sum(l["sentPackets"] for l in ls.values())
        post = sum(l["drops"].get("no-appliance-address", 0) + l["drops"].get("send-error", 0) for l in ls.values())
        check(received == pre_core + core["packets"],
              f"received {received} = dropped before the core {pre_core} + entered the core {core['packets']}")
        check(core["packets"] == core["forwarded"] + core["dropped"] + core["nomatch"] and core["forwarded"] == sent + post,
              f"core: {core['forwarded']} forwarded = {sent} sent + {post} failed; {core['dropped']} dropped, {core['nomatch']} no match")
        check(ls["vx"]["sentPackets"] == sent_by_port[VX_PORT] and ls["gnv"]["sentPackets"] == sent_by_port[GNV_PORT],
              f"the pump's sent counters equal what the appliances received: {sent_by_port}")
        check(all(l["socketDrops"] == 0 for l in ls.values()), "no kernel receive-buffer drops")

    part(7)
    time.sleep(1.2)  # libpcap hands a partly filled block to dumpcap only after its timeout
    cap.send_signal(signal.SIGINT)
    cap.wait(10)
    fields = run("tshark", "-r", str(pcap), "-Y", f"ip.src == {IP['pump']} && udp", "-T", "fields", "-E", "occurrence=f",
                 "-e", "ip.dst", "-e", "udp.srcport", "-e", "udp.dstport", "-e", "vxlan.vni", "-e", "geneve.vni",
                 "-e", "geneve.option.class").stdout.splitlines()
    rows = [l.split("\t") for l in fields if l.strip()]
    vx_rows = [r for r in rows if r[2] == str(VX_PORT)]
    gnv_rows = [r for r in rows if r[2] == str(GNV_PORT)]
    check(len(vx_rows) == sent_by_port[VX_PORT] and len(gnv_rows) == sent_by_port[GNV_PORT],
          f"captured {len(vx_rows)} VXLAN and {len(gnv_rows)} GENEVE datagrams from the pump (appliances received {sent_by_port})")
    check(all(r[1] == str(VX_PORT) and r[3] == str(VX_VNI) and r[0] in IP.values() for r in vx_rows),
          f"tshark: every VXLAN datagram from the pump is VNI {VX_VNI}, from port {VX_PORT}, to an appliance")
    tagged_gnv = [r for r in gnv_rows if r[4] and int(r[4], 0) in GNV_VNIS]
    check(len(tagged_gnv) == len(gnv_rows) and all(r[5] for r in gnv_rows),
          "tshark: every GENEVE datagram from the pump has VNI 2002/2003 and its options")
    malformed = run("tshark", "-r", str(pcap), "-Y", f"ip.src == {IP['pump']} && _ws.malformed").stdout.strip()
    check(malformed == "", "tshark finds no malformed datagram among those the pump sent")
    arrived = run("tshark", "-r", str(pcap), "-Y", f"ip.src == {IP['client']} && (vxlan || geneve || udp.dstport == {VX_PORT} || udp.dstport == {GNV_PORT})",
                  "-T", "fields", "-e", "frame.number").stdout.split()
    check(len(arrived) > 2500, f"the capture holds the {len(arrived)} datagrams the client sent, malformed ones included")

    backpressure(agents, ledger)


def backpressure(agents, ledger):
    part(8)
    # 20 Mbit/s on the pump's link and small socket buffers: the kernel soon refuses sends
    # (EAGAIN), libuv queues them holding views of wasm memory, and the pump must not
    # reuse the arena until they are gone.
    run("tc", "-n", NS["pump"], "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "20mbit", "burst", "16kb", "limit", "16mb")
    cfg = config()
    cfg["pump"].update({"socketBufferBytes": 32768, "queuePackets": 256, "batchSize": 64})
    path = WORK / "config-backpressure.json"
    path.write_text(json.dumps(cfg, indent=1))
    pump = PumpProcess(path)
    pump.wait_log(lambda e: e.get("msg") == "running", 20)
    n = 3000
    flows = [Flow("vx", "udp") for _ in range(n)]
    ledger.agents["client"].send(VX_PORT, [ledger.datagram(f, "f", 0, pad=960) for f in flows])
    deadline = time.monotonic() + 15
    last = None
    while time.monotonic() < deadline:
        ms = pump.metrics()
        now = (metric(ms, "haports_pump_sent_packets_total", listener="vx"), metric(ms, "haports_pump_queue_packets", listener="vx"))
        if now == last and now[1] == 0:
            break
        last = now
        time.sleep(0.4)
    keys = [(f.id, "f", 0) for f in flows]
    ledger.collect(keys, timeout=0.5)
    arrived = [k for k in keys if k in ledger.arrivals]
    bad = ledger.verify(arrived)
    waits = metric(ms, "haports_pump_backpressure_waits_total") or 0
    refused = metric(ms, "haports_drops_total", stage="pump", listener="vx", reason="send-buffer-full") or 0
    # node:dgram queues a refused send (holding a view of wasm memory) and the pump waits for
    # it; the native path drops and counts it (a queued send would hold the slot the next
    # batch needs). Either way the kernel refused sends, and nothing was corrupted.
    check(waits > 0 or refused > 0,
          f"the kernel refused sends: the pump waited for its queued sends {int(waits)} times (node:dgram), "
          f"dropped and counted {int(refused)} (native)")
    check(arrived and not bad, f"{len(arrived)} of {n} datagrams delivered, every one intact (no arena reuse under refused sends)"
          + (f": {bad[:3]}" if bad else ""))
    pump.p.send_signal(signal.SIGTERM)
    rc = pump.p.wait(10)
    time.sleep(0.1)
    last = pump.logs[-1]
    ls = last.get("listeners", {}).get("vx", {})
    drops = ls.get("drops", {})
    check(rc == 0 and last.get("msg") == "stopped", "stopped cleanly")
    check(ls.get("receivedPackets", 0) + (ls.get("socketDrops") or 0) >= n - 5,
          f"the client's {n} datagrams: {ls.get('receivedPackets')} received by the pump + {ls.get('socketDrops')} dropped by the kernel (receive buffer)")
    check(ls.get("sentPackets") == len(arrived), f"the pump sent {ls.get('sentPackets')}, the appliances received {len(arrived)}")
    check(ls.get("receivedPackets") == ls.get("sentPackets", 0) + sum(drops.values()),
          f"received = sent + dropped by the pump {drops} (queue bound {cfg['pump']['queuePackets']}, high water {ls.get('queueHighWater')})")
    run("tc", "-n", NS["pump"], "qdisc", "del", "dev", "eth0", "root")


# ---- What is needed, what runs, what ran ---------------------------------------------

TOOLS = {  # command: how to get it
    "ip": "apt-get install iproute2",
    "tc": "apt-get install iproute2",
    "ethtool": "apt-get install ethtool",
    "dumpcap": "apt-get install tshark (Wireshark's capture tool comes with it)",
    "tshark": "apt-get install tshark",
    "node": "install Node.js >= 20",
}


def missing_requirements():
    """Everything this test needs and does not have, one line each (empty: it can run)."""
    missing = []
    if os.geteuid() != 0:
        missing.append(f"root: running as uid {os.geteuid()}; network namespaces, veth links and tc need root (CI runs as root)")
    for tool, source in TOOLS.items():
        if shutil.which(tool) is None:
            missing.append(f"{tool}: not found on PATH; {source}")
    if SCAPY_ERROR is not None:
        missing.append(f"Python module scapy for {sys.executable}: {SCAPY_ERROR} "
                       f"(python3 -m pip install -r test/requirements.txt)")
    if not (ROOT / "build" / "host" / "pump.mjs").exists():
        missing.append(f"{ROOT / 'build' / 'host' / 'pump.mjs'}: not built (npm run build)")
    return missing


def print_environment():
    import scapy
    try:
        version = json.loads((ROOT / "package.json").read_text()).get("version", "?")
    except (OSError, ValueError):
        version = "?"
    u = platform.uname()
    print("test_pump_netns: the packet pump end to end in network namespaces", flush=True)
    print(f"  kernel   {u.system} {u.release} {u.machine}")
    print(f"  iproute2 {first_line('ip', '-V')}")
    print(f"  tc       {first_line('tc', '-V')}")
    print(f"  dumpcap  {first_line('dumpcap', '--version')}")
    print(f"  tshark   {first_line('tshark', '--version')}")
    print(f"  node     {first_line('node', '--version')}")
    print(f"  python   {platform.python_version()} ({sys.executable}), scapy {scapy.VERSION}")
    print(f"  haports  {version}, {ROOT}")
    print(f"  topology namespaces {', '.join(NS.values())}: client {IP['client']}, pump {IP['pump']}, "
          f"appliances {', '.join(IP[n] for n in NVAS)} on one bridge")
    print(f"  pump     VXLAN {IP['pump']}:{VX_PORT} (VNI {VX_VNI}), GENEVE {IP['pump']}:{GNV_PORT} (VNIs "
          f"{', '.join(map(str, GNV_VNIS))}); TCP probe :{PROBE_PORT}, interval {INTERVAL}s, threshold {THRESHOLD}")
    print("  parts    " + "\n           ".join(f"{i}. {t}" for i, t in enumerate(PARTS, 1)), flush=True)


def main():
    missing = missing_requirements()
    if missing:
        print("test_pump_netns: FAIL: cannot run; missing:")
        for m in missing:
            print(f"  - {m}")
        return 1
    print_environment()
    remove_stale()
    probe = run("ip", "netns", "add", NS["br"], check_rc=False)
    if probe.returncode != 0:
        print(f"test_pump_netns: FAIL: cannot run: cannot create a network namespace here "
              f"(ip netns add: {probe.stderr.strip() or 'exit ' + str(probe.returncode)})")
        return 1
    run("ip", "netns", "del", NS["br"])

    def body():
        create_topology()
        scenario()

    def cleanup():
        destroy_topology()
        left = [ns for ns in NS.values() if ns in run("ip", "netns", "list", check_rc=False).stdout]
        check(not left, "namespaces removed")
    return run_scenario(R, body, cleanup, bound=150)


if __name__ == "__main__":
    sys.exit(main())
