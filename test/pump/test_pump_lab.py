#!/usr/bin/env python3
"""The lab as a test: real traffic through `haports pump` and three stateful firewalls.

examples/lab/lab.sh builds the topology (it is the one description of it; this test
reads its names and addresses from `lab.sh env`), with this test's own namespace prefix:

    client (kernel VXLAN VTEP) ─┐                        ┌─ nva0 ─┐
                                ├─ VNI 100 ─▶ pump ─▶ ───┼─ nva1 ─┼─ VNI 100 ─▶ the other VTEP
    server (kernel VXLAN VTEP) ─┘                        └─ nva2 ─┘

The client's and the server's VTEPs send every frame to the pump; the pump (the real
command, `node bin/haports.mjs pump`) balances the inner packets over the appliances by
the symmetric 5-tuple hash and relays each datagram unchanged; each appliance (a kernel
VXLAN device, IP forwarding and an iptables firewall with conntrack: INVALID dropped and
counted, nf_conntrack_tcp_loose=0, new connections accepted only from the client's side)
routes the packet on to the other VTEP. Checksum offload is left on everywhere: inner
TCP/UDP checksums reach the pump partial, as they do from any sender in the same kernel,
and the pump completes them (innerChecksums "complete"). The lab's underlay switch
segments tunnel GSO frames as a NIC would (LAB_WIRE=mtu; examples/lab/README.md, "One
kernel is not a wire"). LAB_HAPORTS=.../bin/haports.mjs runs another build of the pump.

What it shows:
  1. ping, IPv4 and IPv6;
  2. TCP: iperf3 (IPv4 for 3 s, IPv6 for 2 s) and 24 HTTP requests with curl against the
     server's python3 http.server, IPv4 and IPv6;
  3. UDP: iperf3 -u, and an echo of 16 flows (IPv4 and IPv6);
  4. every connection of parts 1-3 met exactly one appliance, both directions (each is in
     one appliance's conntrack, replied, and in no other); 0 packets dropped as INVALID,
     0 denied, in every appliance, IPv4 and IPv6;
  5. failover: nva1's health endpoint stops; within interval × threshold (+ slack) the pump
     marks it down and new connections avoid it, the others keep working, and its
     established TCP connections stay; it comes back when healed;
  6. reload: nva2 set to draining in the configuration, SIGHUP; the pump keeps running,
     established connections keep working, new ones avoid nva2.
It prints what it saw: iperf3 throughput, connections per appliance, the INVALID
counters, failover and recovery times.

Needs root, iproute2, iptables, conntrack, iperf3, curl, iputils-ping, ethtool, node and a
build (`npm run build`). Missing Debian packages are installed (apt-get update, then
apt-get install -y); anything else missing, or a kernel without VXLAN, is a failure (exit
status 1) that names it, never a skip. Everything is removed at the end, on failure too.
Runs in about 25 seconds; bounded at 120 (the package installation, when one is needed,
comes before the bound).
"""
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "test" / "lib"))
from scenario import NetnsAgent, Report, first_line, install_missing, run, run_scenario  # noqa: E402

LAB = ROOT / "examples" / "lab" / "lab.sh"
TAG = f"hplt{os.getpid()}"
WORK = Path(os.environ.get("HAPORTS_PUMP_LAB_DIR", ROOT / "build" / "pump-lab"))
LAB_ENV = {**os.environ, "LAB_PREFIX": TAG, "LAB_DIR": f"/run/haports-lab/{TAG}",
           "LAB_PUMP": "haports", "LAB_WIRE": "mtu", "LAB_INNER_CHECKSUMS": "complete"}
SLACK = 0.5        # scheduling and logging latency allowed on top of interval × threshold (s)
BOUND = 120        # the whole run, after any package installation (s)

PARTS = [
    "ping, IPv4 and IPv6",
    "TCP: iperf3 and curl (HTTP), IPv4 and IPv6, checksum offload on",
    "UDP: iperf3 -u and an echo, IPv4 and IPv6",
    "symmetry: every connection in exactly one appliance's conntrack, both directions; 0 INVALID",
    "failover: nva1's health endpoint stops; new connections avoid it within interval × threshold",
    "reload: nva2 draining, SIGHUP; the pump keeps running, new connections avoid nva2",
]
lab_up = [False]
R = Report("test_pump_lab", PARTS)
part, check, figure = R.part, R.check, R.figure


def lab(*args, check_rc=True, timeout=60):
    return run("bash", str(LAB), *args, check_rc=check_rc, timeout=timeout, env=LAB_ENV)


# ---- What is needed ---------------------------------------------------------------------

TOOLS = {  # command: the Debian package that has it
    "ip": "iproute2", "bridge": "iproute2", "iptables": "iptables", "ip6tables": "iptables",
    "iptables-save": "iptables", "iptables-restore": "iptables", "ip6tables-save": "iptables",
    "conntrack": "conntrack", "iperf3": "iperf3", "curl": "curl", "ping": "iputils-ping",
    "ethtool": "ethtool", "sysctl": "procps", "setsid": "util-linux",
}


def missing_requirements():
    missing = []
    if os.geteuid() != 0:
        missing.append(f"root: running as uid {os.geteuid()}; network namespaces, VXLAN devices and iptables need root (CI runs as root)")
        return missing
    missing += install_missing("test_pump_lab", TOOLS, timeout=600)
    if shutil.which("node") is None:
        missing.append("node: not found on PATH; install Node.js >= 20")
    if not (ROOT / "build" / "host" / "cli.mjs").exists():
        missing.append(f"{ROOT / 'build' / 'host' / 'cli.mjs'}: not built (npm install && npm run build)")
    if not LAB.exists():
        missing.append(f"{LAB}: missing")
    if not missing:
        # The kernel: a namespace with a VXLAN device and conntrack.
        probe = f"{TAG}-probe"
        r = run("ip", "netns", "add", probe, check_rc=False)
        if r.returncode != 0:
            missing.append(f"network namespaces: ip netns add: {r.stderr.strip()}")
        else:
            r = run("ip", "-n", probe, "link", "add", "vxprobe", "type", "vxlan", "id", "1", "dstport", "4789", check_rc=False)
            if r.returncode != 0:
                missing.append(f"kernel VXLAN (CONFIG_VXLAN): ip link add type vxlan: {r.stderr.strip()}")
            r = run("ip", "netns", "exec", probe, "iptables", "-A", "FORWARD", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP", check_rc=False)
            if r.returncode != 0:
                missing.append(f"iptables with the conntrack match in a namespace: {r.stderr.strip()}")
            run("ip", "netns", "del", probe, check_rc=False)
    return missing


# ---- The lab ------------------------------------------------------------------------------

E = {}  # lab.sh env


def nsx(role, *cmd, timeout=30, check_rc=False, input=None):
    return run("ip", "netns", "exec", E[f"NS_{role.upper()}"], *cmd, timeout=timeout, check_rc=check_rc, input=input)


def remove_stale():
    """Labs of earlier runs of this test whose process is gone."""
    listed = run("ip", "netns", "list", check_rc=False).stdout
    for prefix, pid in sorted(set(re.findall(r"^(hplt(\d+))-\w+", listed, re.M))):
        if not Path(f"/proc/{pid}").exists():
            run("bash", str(LAB), "down", check_rc=False, timeout=60,
                env={**os.environ, "LAB_PREFIX": prefix, "LAB_DIR": f"/run/haports-lab/{prefix}"})


class PumpLog:
    """The pump's JSON log lines, as lab.sh's pump writes them to $LAB_DIR/pump.log."""

    def __init__(self, path):
        self.path = Path(path)

    def lines(self):
        out = []
        try:
            text = self.path.read_text()
        except OSError:
            return out
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def wait(self, pred, timeout, after=0):
        """The first line after the first `after` lines that satisfies pred, and when the pump wrote it (epoch seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.lines()[after:]:
                if pred(e):
                    return e, log_time(e)
            if time.monotonic() > deadline:
                return None, None
            time.sleep(0.05)


def log_time(e):
    """A log line's "time" (ISO 8601, UTC) as epoch seconds."""
    from datetime import datetime
    return datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp()


def metrics():
    r = nsx("pump", "curl", "-fsS", "--max-time", "3", f"http://{E['METRICS']}/metrics")
    out = {}
    for line in r.stdout.splitlines():
        if line.startswith("#") or not line:
            continue
        m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if m:
            labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or "")))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(ms, name, **labels):
    want = tuple(sorted((k, str(v)) for k, v in labels.items()))
    return ms.get((name, want))


# ---- Conntrack and the firewall's counters ----------------------------------------------

INNER = re.compile(r"^(192\.168\.(10|20)\.|fd00:(10|20)::)")


def conntrack(nva):
    """The inner connections in nva's conntrack table: dicts with proto, src, dst, sport, dport (or id), replied."""
    entries = []
    for fam in ("ipv4", "ipv6"):
        for line in nsx(nva, "conntrack", "-L", "-f", fam).stdout.splitlines():
            tokens = line.split()
            if not tokens:
                continue
            kv = {}
            for t in tokens:
                if "=" in t:
                    k, v = t.split("=", 1)
                    kv.setdefault(k, v)
            if not INNER.match(kv.get("src", "")):
                continue
            proto = tokens[0]
            e = {"proto": proto, "src": kv["src"], "dst": kv["dst"], "replied": "[UNREPLIED]" not in tokens,
                 "assured": "[ASSURED]" in tokens, "state": tokens[3] if proto == "tcp" and len(tokens) > 3 else ""}
            if proto in ("tcp", "udp"):
                e["sport"], e["dport"] = int(kv["sport"]), int(kv["dport"])
                e["key"] = (proto, frozenset([(e["src"], e["sport"]), (e["dst"], e["dport"])]))
            else:
                e["id"] = int(kv.get("id", -1))
                e["key"] = (proto, frozenset([e["src"], e["dst"]]), e["id"])
            entries.append(e)
    return entries


class Ledger:
    """Where each connection was seen: the union of conntrack snapshots of the three appliances."""

    def __init__(self):
        self.seen = {}  # key -> {nva: entry}

    def snapshot(self):
        for n in NVAS:
            for e in conntrack(n):
                prev = self.seen.setdefault(e["key"], {}).get(n)
                if prev is None or e["replied"]:
                    self.seen[e["key"]][n] = e

    def where(self, key):
        """(the one appliance that has it and replied, or None; every appliance that has it)."""
        at = self.seen.get(key, {})
        ok = [n for n, e in at.items() if e["replied"]]
        return (ok[0] if len(at) == 1 and len(ok) == 1 else None), sorted(at)


def tcp_key(src, sport, dst, dport):
    return ("tcp", frozenset([(src, sport), (dst, dport)]))


def udp_key(src, sport, dst, dport):
    return ("udp", frozenset([(src, sport), (dst, dport)]))


def icmp_key(src, dst, ident, v6):
    return ("icmpv6" if v6 else "icmp", frozenset([src, dst]), ident)


def fw_counters(nva):
    """Packets counted by the lab's FORWARD rules, by comment, for both families."""
    out = {}
    for fam, cmd in (("v4", "iptables-save"), ("v6", "ip6tables-save")):
        for line in nsx(nva, cmd, "-c", "-t", "filter").stdout.splitlines():
            m = re.match(r"^\[(\d+):\d+\] -A FORWARD .*--comment (lab-[\w-]+)", line)
            if m:
                out[f"{fam}:{m.group(2)[4:]}"] = int(m.group(1))
    return out


# ---- Traffic -----------------------------------------------------------------------------

# Every curl connection gets a source port of its own, below the kernel's ephemeral range:
# a port the kernel chose again would make a new connection with an old one's 5-tuple,
# which the appliances' conntrack (TIME_WAIT) and the pump's flow table may still hold.
next_port = [20000]


def curl_many(n, addrs, path="/", timeout=5):
    """n HTTP requests, alternating over addrs; returns [(addr, local port, code, bytes, ok)].
    After 3 failures in a row the rest are not tried (and count as failed): the run stays bounded."""
    out = []
    for i in range(n):
        addr = addrs[i % len(addrs)]
        if len(out) >= 3 and not any(r[4] for r in out[-3:]):
            out.append((addr, 0, "not tried after 3 failures in a row", 0, False))
            continue
        url = f"http://[{addr}]:{E['HTTP_PORT']}{path}" if ":" in addr else f"http://{addr}:{E['HTTP_PORT']}{path}"
        next_port[0] += 1
        r = nsx("client", "curl", "-sS", "-o", "/dev/null", "--max-time", str(timeout), "--connect-timeout", "2", "--local-port", str(next_port[0]),
                "-w", "%{local_port} %{http_code} %{size_download}", url, timeout=timeout + 5)
        parts = r.stdout.split()
        port = int(parts[0]) if parts and parts[0].isdigit() else 0
        code = parts[1] if len(parts) > 1 else "?"
        size = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0
        out.append((addr, port, code, size, r.returncode == 0 and code == "200"))
    return out


def iperf3(addr, seconds, udp=False, bitrate="20M"):
    cmd = ["iperf3", "-c", addr, "-p", E["IPERF_PORT"], "-t", str(seconds), "-J", "--connect-timeout", "3000"]
    if udp:
        cmd += ["-u", "-b", bitrate]
    r = nsx("client", *cmd, timeout=seconds + 15)
    try:
        j = json.loads(r.stdout)
    except ValueError:
        return {"error": (r.stderr or r.stdout).strip()[-300:] or f"exit {r.returncode}"}
    if j.get("error"):
        return {"error": j["error"]}
    conn = (j.get("start", {}).get("connected") or [{}])[0]
    end = j.get("end", {})
    if udp:
        s = end.get("sum", {})
        return {"port": conn.get("local_port"), "packets": s.get("packets", 0), "lost": s.get("lost_packets", 0),
                "lost_percent": s.get("lost_percent", 100.0), "bps": s.get("bits_per_second", 0)}
    return {"port": conn.get("local_port"), "bps": end.get("sum_received", {}).get("bits_per_second", 0),
            "bytes": end.get("sum_received", {}).get("bytes", 0), "retransmits": end.get("sum_sent", {}).get("retransmits")}


# A helper in the client's namespace: long-lived TCP connections to the server's echo
# service (are they still working?) and UDP echo flows. JSON lines in and out.
CLIENT_HELPER = r'''
import json, socket, sys, time
conns = []
def reply(o):
    sys.stdout.write(json.dumps(o) + "\n"); sys.stdout.flush()
def fam(a):
    return socket.AF_INET6 if ":" in a else socket.AF_INET
for line in sys.stdin:
    c = json.loads(line)
    if c["op"] == "tcp_open":
        out = []
        for i in range(c["n"]):
            try:
                s = socket.create_connection((c["addr"], c["port"]), timeout=2)
                s.settimeout(2)
                conns.append((c["addr"], s))
                out.append([c["addr"], s.getsockname()[1]])
            except OSError as e:
                out.append([c["addr"], 0, str(e)])
                break
        reply({"opened": out})
    elif c["op"] == "tcp_echo":
        out = []
        for i, (a, s) in enumerate(conns):
            msg = b"lab %d %d\n" % (i, c.get("round", 0))
            try:
                s.sendall(msg)
                got = b""
                while len(got) < len(msg):
                    d = s.recv(len(msg) - len(got))
                    if not d:
                        break
                    got += d
                out.append([a, s.getsockname()[1], got == msg])
            except OSError as e:
                out.append([a, 0, False])
        reply({"echo": out})
    elif c["op"] == "udp_echo":
        out = []
        deadline = time.monotonic() + 5
        for k in range(c["flows"]):
            s = socket.socket(fam(c["addr"]), socket.SOCK_DGRAM)
            s.settimeout(0.3)
            s.bind(("", 0))
            ok = 0
            for j in range(c["count"]):
                msg = b"udp %d %d" % (k, j)
                for attempt in range(2 if time.monotonic() < deadline else 0):
                    s.sendto(msg, (c["addr"], c["port"]))
                    try:
                        if s.recv(100) == msg:
                            ok += 1
                            break
                    except OSError:
                        pass
            out.append([c["addr"], s.getsockname()[1], ok])
            s.close()
        reply({"udp": out})
'''


class ClientHelper(NetnsAgent):
    """CLIENT_HELPER in the client's namespace: JSON lines in and out."""

    def __init__(self):
        super().__init__(E["NS_CLIENT"], [sys.executable, "-c", CLIENT_HELPER], "the client helper")


# ---- The scenario --------------------------------------------------------------------------

NVAS = []


def locate(ledger, keys):
    """{key: the one appliance it met, or None}; snapshots first."""
    ledger.snapshot()
    return {k: ledger.where(k)[0] for k in keys}


def per_nva(places):
    return {n: sum(1 for w in places if w == n) for n in NVAS}


def scenario(helper_box):
    global NVAS
    up = lab("up", timeout=90)
    lab_up[0] = True
    print("\n".join("  | " + l for l in up.stdout.strip().splitlines()), flush=True)
    for line in lab("env").stdout.splitlines():
        k, _, v = line.partition("=")
        E[k] = shlex.split(v)[0] if v else ""
    NVAS = E["NVAS"].split()
    log = PumpLog(E["PUMP_LOG"])
    initial = [e for e in log.lines() if e.get("msg") == "backend initially up"]
    check(len(initial) == 3, f"the pump ran one probe round before opening its listener: {len(initial)} appliances initially up")
    running = [e for e in log.lines() if e.get("msg") == "running"]
    check(bool(running), "the pump is running: " + json.dumps(running[0]["listeners"] if running else None))
    offload = {}
    for role, dev in (("client", E["VXDEV"]), ("client", "eth0"), ("server", E["VXDEV"]), ("nva0", E["VXDEV"])):
        feats = nsx(role, "ethtool", "-k", dev).stdout
        m = re.search(r"^tx-checksumming: (\w+)", feats, re.M)
        offload[f"{role}/{dev}"] = m.group(1) if m else "?"
    check(all(v == "on" for v in offload.values()), f"checksum offload left on: tx-checksumming {offload}")
    sysctl = nsx("nva0", "sysctl", "-n", "net.netfilter.nf_conntrack_tcp_loose", "net.netfilter.nf_conntrack_checksum").stdout.split()
    check(sysctl[:1] == ["0"], f"appliances: nf_conntrack_tcp_loose={sysctl[0] if sysctl else '?'}, nf_conntrack_checksum={sysctl[1] if len(sysctl) > 1 else '?'}")

    ledger = Ledger()
    c4, c6, s4, s6 = E["CLIENT4"], E["CLIENT6"], E["SERVER4"], E["SERVER6"]
    known = {}  # key -> what (every connection this test made and can name)

    part(1)
    for addr, ident, v6 in ((s4, 4101, False), (s6, 4106, True)):
        r = nsx("client", "ping", "-c", "5", "-i", "0.2", "-W", "2", "-e", str(ident), addr, timeout=20)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", r.stdout)
        check(m and m.group(1) == m.group(2) == "5", f"ping {addr}: {m.group(0) if m else r.stdout.strip()[-200:] or r.stderr.strip()}")
        known[icmp_key(c6 if v6 else c4, addr, ident, v6)] = f"ping {addr} id {ident}"
    where = locate(ledger, [k for k in known if k[0].startswith("icmp")])
    check(where and all(where.values()), f"each ping met one appliance, request and reply: {sorted(where.values(), key=str)}")

    part(2)
    t4 = iperf3(s4, 3)
    t6 = iperf3(s6, 2)
    for name, t, addr, c in (("IPv4", t4, s4, c4), ("IPv6", t6, s6, c6)):
        ok = "error" not in t and t.get("bytes", 0) > 1_000_000
        check(ok, f"iperf3 TCP {name}: " + (f"{t['bps'] / 1e6:.1f} Mbit/s, {t['bytes'] / 1e6:.1f} MB received, {t['retransmits']} retransmits"
                                             if "error" not in t else t["error"]))
        if "error" not in t:
            figure(f"iperf3 TCP {name} single stream through the pump", f"{t['bps'] / 1e6:.1f} Mbit/s ({t['retransmits']} retransmits)")
            known[tcp_key(c, t["port"], addr, int(E["IPERF_PORT"]))] = f"iperf3 TCP {name} data"
    reqs = curl_many(16, [s4, s6], "/") + curl_many(8, [s4, s6], "/1M.bin")
    good = reqs[:16] and [r for r in reqs[:16] if r[4] and r[3] > 0] + [r for r in reqs[16:] if r[4] and r[3] == 1048576]
    check(len(good) == len(reqs), f"{len(good)} of {len(reqs)} curl requests answered 200 with the whole body (16 × index.html, 8 × 1 MiB; IPv4 and IPv6)"
          + ("" if len(good) == len(reqs) else f"; failed: {[r for r in reqs if r not in good][:4]}"))
    curl_keys = [tcp_key(c4 if a == s4 else c6, p, a, int(E["HTTP_PORT"])) for a, p, *_ in reqs if p]
    for k in curl_keys:
        known[k] = "curl"
    where = locate(ledger, curl_keys)
    check(where and all(where.values()), f"each of the {len(where)} curl connections met one appliance: {per_nva(where.values())}")
    check(all(per_nva(where.values()).values()), "curl connections spread over all three appliances")
    figure("curl connections per appliance", per_nva(where.values()))

    part(3)
    u4 = iperf3(s4, 2, udp=True)
    u6 = iperf3(s6, 2, udp=True)
    for name, u, addr, c in (("IPv4", u4, s4, c4), ("IPv6", u6, s6, c6)):
        ok = "error" not in u and u["packets"] > 0 and u["lost_percent"] <= 1.0
        check(ok, f"iperf3 UDP {name} 20 Mbit/s: " + (f"{u['lost']}/{u['packets']} datagrams lost ({u['lost_percent']:.2f}%)" if "error" not in u else u["error"]))
        if "error" not in u:
            figure(f"iperf3 UDP {name} loss at 20 Mbit/s", f"{u['lost']}/{u['packets']}")
            known[udp_key(c, u["port"], addr, int(E["IPERF_PORT"]))] = f"iperf3 UDP {name}"
    helper = helper_box[0] = ClientHelper()
    echoes = []
    for addr in (s4, s6):
        echoes += helper.call(op="udp_echo", addr=addr, port=int(E["ECHO_PORT"]), flows=8, count=10)["udp"]
    check(all(ok == 10 for _, _, ok in echoes), f"UDP echo: {len(echoes)} flows × 10 datagrams, echoed {sum(ok for *_, ok in echoes)}/{10 * len(echoes)}")
    udp_keys = [udp_key(c4 if a == s4 else c6, p, a, int(E["ECHO_PORT"])) for a, p, _ in echoes]
    for k in udp_keys:
        known[k] = "udp echo"
    where = locate(ledger, udp_keys)
    check(where and all(where.values()), f"each of the {len(where)} UDP echo flows met one appliance: {per_nva(where.values())}")

    part(4)
    ledger.snapshot()
    lost = [f"{what} {sorted(k[1], key=str)}: {ledger.where(k)[1] or 'in no appliance'}" for k, what in known.items() if not ledger.where(k)[0]]
    check(not lost, f"all {len(known)} connections named above (ping, iperf3, curl, UDP) were seen, replied, by exactly one appliance"
          + (f"; not: {lost[:4]}" if lost else ""))
    multi = [(k, sorted(at)) for k, at in ledger.seen.items() if len(at) > 1]
    check(not multi, f"no connection is in two appliances' conntrack ({len(ledger.seen)} inner connections seen in all)"
          + (f": {multi[:3]}" if multi else ""))
    unreplied = [(k, n) for k, at in ledger.seen.items() for n, e in at.items() if not e["replied"]]
    check(not unreplied, "every inner connection in the appliances saw its reply direction" + (f"; not: {unreplied[:3]}" if unreplied else ""))
    counts = {n: fw_counters(n) for n in NVAS}
    invalid = {n: {k: v for k, v in c.items() if k.endswith(":invalid")} for n, c in counts.items()}
    denied = {n: {k: v for k, v in c.items() if k.endswith(":denied")} for n, c in counts.items()}
    check(all(len(v) == 2 for v in invalid.values()) and not any(x for v in invalid.values() for x in v.values()),
          f"0 packets dropped as INVALID: {invalid}")
    check(not any(x for v in denied.values() for x in v.values()), f"0 packets denied (no reply reached an appliance that had not seen its connection): {denied}")
    figure("INVALID drops per appliance (IPv4, IPv6)", {n: (v.get("v4:invalid"), v.get("v6:invalid")) for n, v in invalid.items()})
    figure("forwarded packets of known connections per appliance", {n: c.get("v4:established", 0) + c.get("v6:established", 0) for n, c in counts.items()})
    figure("connections per appliance (all inner conntrack entries)", per_nva([next(iter(at)) for at in ledger.seen.values()]))
    ms = metrics()
    partial = metric(ms, "haports_inner_checksums_partial_total")
    figure("inner checksums the pump found partial (and completed)", partial if partial is not None else "no such metric")

    part(5)
    victim = "nva1"
    interval, threshold = int(E["PROBE_INTERVAL"]), int(E["PROBE_THRESHOLD"])
    # Established connections first, until each appliance has some.
    persistent = []
    home = {}
    for _ in range(6):
        opened = helper.call(op="tcp_open", addr=s4 if len(persistent) % 2 == 0 else s6, port=int(E["ECHO_PORT"]), n=6)["opened"]
        persistent += opened
        if not all(p for _, p, *_ in opened):
            break
        where = locate(ledger, [tcp_key(c4 if a == s4 else c6, p, a, int(E["ECHO_PORT"])) for a, p, *_ in persistent])
        home = {p: w for (a, p, *_), w in zip(persistent, where.values())}
        if all(per_nva(home.values()).values()):
            break
    check(persistent and all(p for _, p, *_ in persistent),
          f"{sum(1 for _, p, *_ in persistent if p)} long-lived TCP connections to the echo service opened"
          + ("" if all(p for _, p, *_ in persistent) else f"; failed: {[x for x in persistent if not x[1]][:2]}"))
    figure("long-lived connections per appliance", per_nva(home.values()))
    mark = len(log.lines())
    t0 = time.time()  # wall clock, as the pump's log lines
    lab("fail", victim)
    # New connections, one every few tens of ms, until interval × threshold + slack + 1 s.
    placed = []  # (seconds after the stop, connection, answered)
    stop_at = interval * threshold + SLACK + 1.0
    while time.time() - t0 < stop_at:
        t = time.time() - t0
        (addr, port, code, _, ok), = curl_many(1, [s4])
        placed.append((t, tcp_key(c4, port, addr, int(E["HTTP_PORT"])), ok))
    down, t_down = log.wait(lambda e: e.get("msg") == "backend down" and e.get("address") == E[f"NVA_IP_{victim.upper()}"], 5, mark)
    dt = (t_down - t0) if down else None
    check(down is not None and dt <= interval * threshold + SLACK,
          f"{victim} marked down {dt:.2f}s after its health endpoint stopped (interval {interval}s × threshold {threshold} = {interval * threshold}s, slack {SLACK}s): {down.get('reason') if down else 'never'}"
          if down else f"{victim} never marked down in the pump's log")
    where = locate(ledger, [k for _, k, _ in placed])
    before = [where[k] for t, k, _ in placed if dt is not None and t < dt]
    check(where and all(where.values()), f"each of them met one appliance; before the pump marked {victim} down: {per_nva(before)}, after: "
          f"{per_nva([where[k] for t, k, _ in placed if dt is None or t >= dt])}"
          + "".join(f"; not: {sorted(k[1])} {ledger.seen.get(k)}" for _, k, _ in placed if not where[k]))
    last_on_victim = max((t for t, k, _ in placed if where[k] == victim), default=None)
    check(placed and all(ok for *_, ok in placed), f"all {len(placed)} new connections made during the failover succeeded")
    check(any(where.values()) and (last_on_victim is None or last_on_victim <= interval * threshold + SLACK),
          f"the last new connection placed on {victim} started {last_on_victim if last_on_victim is None else f'{last_on_victim:.2f}s'} after the stop "
          f"(≤ {interval * threshold + SLACK}s); after that: {per_nva([where[k] for t, k, _ in placed if last_on_victim is None or t > last_on_victim])}")
    figure("failover: backend down logged after", f"{dt:.2f}s" if dt is not None else "never")
    figure("failover: last new connection on the failed appliance at", f"{last_on_victim:.2f}s" if last_on_victim is not None else "none in the window")
    after = curl_many(20, [s4, s6])
    wa = locate(ledger, [tcp_key(c4 if a == s4 else c6, p, a, int(E["HTTP_PORT"])) for a, p, *_ in after])
    check(all(r[4] for r in after) and all(wa.values()) and victim not in wa.values(),
          f"20 new connections after the failover: all answered, none on {victim}: {per_nva(wa.values())}")
    check(metric(metrics(), "haports_backend_up", pool="nvas", backend=victim) == 0, f"metrics: haports_backend_up{{backend=\"{victim}\"}} 0")
    echo = helper.call(op="tcp_echo", round=1)["echo"]
    check(echo and all(ok for *_, ok in echo), f"all {len(echo)} long-lived connections still echo, the {sum(1 for w in home.values() if w == victim)} on {victim} included (persistOnUnhealthy defaultForProtocol)"
          + ("" if all(ok for *_, ok in echo) else f"; failed: {[(p, home.get(p)) for _, p, ok in echo if not ok]}"))
    mark = len(log.lines())
    t1 = time.time()
    lab("heal", victim)
    up_e, t_up = log.wait(lambda e: e.get("msg") == "backend up" and e.get("address") == E[f"NVA_IP_{victim.upper()}"], 6, mark)
    check(up_e is not None and t_up - t1 <= interval * threshold + SLACK,
          f"{victim} up again {t_up - t1:.2f}s after its health endpoint returned" if up_e else f"{victim} not up again within 6s")
    if up_e:
        figure("recovery: backend up logged after", f"{t_up - t1:.2f}s")

    part(6)
    drained = "nva2"
    cfg = json.loads(Path(E["PUMP_CONFIG"]).read_text())
    for b in cfg["backendPools"][0]["backends"]:
        if b["name"] == drained:
            b["adminState"] = "draining"
    tmp = Path(E["PUMP_CONFIG"] + ".new")
    tmp.write_text(json.dumps(cfg, indent=2))
    tmp.replace(E["PUMP_CONFIG"])
    mark = len(log.lines())
    pid = int(Path(E["PUMP_PID_FILE"]).read_text())
    r = lab("reload", check_rc=False)
    time.sleep(0.5)
    alive = Path(f"/proc/{pid}").exists()
    check(alive, f"the pump (pid {pid}) is still running after SIGHUP" + ("" if alive else f": {r.stdout.strip()} {r.stderr.strip()}"))
    if not alive:
        tail = [l for l in Path(E["PUMP_LOG"]).read_text().splitlines()[-3:]]
        print("  the pump's log ends with:\n    " + "\n    ".join(l[:300] for l in tail), flush=True)
        return
    reloaded = [e for e in log.lines()[mark:] if "reload" in e.get("msg", "")]
    figure("the pump's reload log", "; ".join(e.get("msg", "") for e in reloaded) or "nothing logged")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and metric(metrics(), "haports_backend_draining", pool="nvas", backend=drained) != 1:
        time.sleep(0.1)
    check(metric(metrics(), "haports_backend_draining", pool="nvas", backend=drained) == 1,
          f"metrics: haports_backend_draining{{backend=\"{drained}\"}} 1 (the new configuration applied)")
    after = curl_many(20, [s4, s6])
    wa = locate(ledger, [tcp_key(c4 if a == s4 else c6, p, a, int(E["HTTP_PORT"])) for a, p, *_ in after])
    check(all(r[4] for r in after) and all(wa.values()) and drained not in wa.values(),
          f"20 new connections after the reload: all answered, none on {drained}: {per_nva(wa.values())}")
    echo = helper.call(op="tcp_echo", round=2)["echo"]
    check(echo and all(ok for *_, ok in echo), f"all {len(echo)} long-lived connections still echo across the reload, the {sum(1 for w in home.values() if w == drained)} on {drained} included"
          + ("" if all(ok for *_, ok in echo) else f"; failed: {[(p, home.get(p)) for _, p, ok in echo if not ok]}"))
    counts = {n: fw_counters(n) for n in NVAS}
    check(not any(v for c in counts.values() for k, v in c.items() if k.endswith(":invalid") or k.endswith(":denied")),
          f"still 0 INVALID and 0 denied after failover and reload: { {n: {k: v for k, v in c.items() if k.endswith(('invalid', 'denied'))} for n, c in counts.items()} }")


def stop_pump():
    """SIGTERM to the pump, so that its log ends with its final counters before lab.sh down removes it."""
    pid_file = Path(LAB_ENV["LAB_DIR"]) / "pump.pid"
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                break
        except OSError:
            break
        time.sleep(0.05)
    stopped = [e for e in PumpLog(Path(LAB_ENV["LAB_DIR"]) / "pump.log").lines() if e.get("msg") == "stopped"]
    for name, l in (stopped[-1].get("listeners", {}) if stopped else {}).items():
        drops = {k: v for k, v in (l.get("drops") or {}).items() if v}
        figure(f"the pump's final counters, listener {name}",
               f"received {l.get('receivedPackets')}, sent {l.get('sentPackets')}, socket drops {l.get('socketDrops')}, drops {drops or 'none'}")


def main():
    missing = missing_requirements()
    if missing:
        print("test_pump_lab: FAIL: cannot run; missing:")
        for m in missing:
            print(f"  - {m}")
        return 1
    u = platform.uname()
    print("test_pump_lab: real traffic through haports pump and three iptables firewalls (examples/lab)", flush=True)
    print(f"  kernel    {u.system} {u.release} {u.machine}")
    for tool, cmd in (("iproute2", ("ip", "-V")), ("iptables", ("iptables", "--version")), ("conntrack", ("conntrack", "--version")),
                      ("iperf3", ("iperf3", "--version")), ("curl", ("curl", "--version")), ("node", ("node", "--version"))):
        print(f"  {tool:9} {first_line(*cmd)}")
    print(f"  python    {platform.python_version()} ({sys.executable})")
    print(f"  lab       {LAB} (prefix {TAG}, wire mtu, innerChecksums complete)")
    print("  parts     " + "\n            ".join(f"{i}. {t}" for i, t in enumerate(PARTS, 1)), flush=True)
    helper_box = [None]

    def body():
        remove_stale()
        scenario(helper_box)

    def cleanup():
        if helper_box[0]:
            helper_box[0].close()
        stop_pump()
        try:
            WORK.mkdir(parents=True, exist_ok=True)
            for name in ("pump.log", "pump.json"):
                src = Path(LAB_ENV["LAB_DIR"]) / name
                if src.exists():
                    shutil.copy(src, WORK / name)
        except OSError:
            pass
        down = run("bash", str(LAB), "down", check_rc=False, timeout=60, env=LAB_ENV)
        left = [ns for ns in run("ip", "netns", "list", check_rc=False).stdout.split() if ns.startswith(TAG + "-")]
        check(down.returncode == 0 and not left, "lab.sh down: namespaces removed" + (f"; left: {left}: {down.stderr.strip()}" if left or down.returncode else ""))
        check(not Path(LAB_ENV["LAB_DIR"]).exists(), f"{LAB_ENV['LAB_DIR']} removed (the pump's log kept in {WORK})")
    return run_scenario(R, body, cleanup, bound=BOUND)


if __name__ == "__main__":
    sys.exit(main())
