#!/usr/bin/env python3
"""The fleet lab: three `haports pump` instances behind a BGP/ECMP router, in network
namespaces on one machine. fleet.sh runs this file; test/fleet/test_fleet.py imports it.

    fleet.py up                 build the fleet, start everything (root)
    fleet.py status             processes, BGP sessions, the router's ECMP route, each
                                instance's metrics, each firewall's connections and counters
    fleet.py traffic            ping, curl, iperf3 and a UDP echo through the fleet, then status
    fleet.py kill PUMP          kill -9 the pump of instance PUMP (its supervisor withdraws it)
    fleet.py kill PUMP --whole  the whole instance dies: its switch port goes dark, then
                                kill -9 of its supervisor, pump and BIRD (BFD finds out)
    fleet.py join PUMP          start what is missing of instance PUMP (port, BIRD, pump)
    fleet.py stop PUMP          SIGTERM: the pump withdraws, waits, stops (planned maintenance)
    fleet.py reload [PUMP]      SIGHUP, one instance at a time, each ready before the next
    fleet.py fail NVA | heal NVA   stop / start appliance NVA's health endpoint
    fleet.py env                names and addresses as KEY=VALUE lines
    fleet.py down               stop everything, delete the namespaces and the run directory

The topology is examples/fleet/topology.json (docs/fleet.md draws it):

  client VTEP 10.214.0.2 ─┐                              ┌─ pump0 10.251.0.11 ─┐
  server VTEP 10.214.0.3 ─┼─ edge ─ router (BIRD) ─ pump LAN ─ pump1 10.251.0.12 ─┤ each: BIRD + haports pump,
  nva0..2 10.214.0.1x ────┘  10.214.0.0/24   ECMP      10.251.0.0/24  pump2 10.251.0.13 ─┘ anycast 10.250.0.1 on haports0

  - the VTEPs' `remote` is the anycast address 10.250.0.1; the router has one route to it
    with a next hop per instance that announces it (eBGP, BFD), and spreads the tunnels
    by the outer 5-tuple (fib_multipath_hash_policy=1; the VXLAN source port follows the
    inner flow, so inner flows spread);
  - every instance runs the same configuration (same hashKey, same appliances, same
    probes), so every instance picks the same appliance for a flow, in both directions,
    with no shared state;
  - the appliances are the lab's stateful firewalls (examples/lab): anycast gateway MAC,
    static FDB to the destination VTEP, conntrack with INVALID dropped and counted.

Environment: FLEET_PREFIX (hpf), FLEET_DIR (/run/haports-fleet/$FLEET_PREFIX), FLEET_NODE
(node), FLEET_HAPORTS (bin/haports.mjs of this repository), FLEET_ANNOUNCE (auto: the
pump's own "announce" when it has it, else the supervisor emulates it | pump | emulate),
FLEET_WIRE (mtu: the switch segments tunnel GSO frames, as a wire does | gso).
"""
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TOPOLOGY = HERE / "topology.json"
PYTHON = sys.executable or "python3"


def load_topology(path=TOPOLOGY):
    return json.loads(Path(path).read_text())


class FleetError(Exception):
    pass


def run(*cmd, check=True, timeout=30, input=None):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, input=input)
    if check and r.returncode != 0:
        raise FleetError(f"{' '.join(map(str, cmd))}: exit {r.returncode}: {(r.stderr or r.stdout).strip()[-600:]}")
    return r


def running(pid):
    """The process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


REQUIRED = {  # command: Debian package
    "ip": "iproute2", "bridge": "iproute2", "iptables": "iptables", "ip6tables": "iptables",
    "iptables-save": "iptables", "iptables-restore": "iptables", "ip6tables-restore": "iptables",
    "conntrack": "conntrack", "nft": "nftables", "bird": "bird2", "birdc": "bird2", "iperf3": "iperf3",
    "curl": "curl", "ping": "iputils-ping", "ethtool": "ethtool", "sysctl": "procps",
}


class Fleet:
    def __init__(self, prefix=None, run_dir=None, topology=None, node=None, haports=None, announce=None, wire=None):
        self.t = topology or load_topology()
        t = self.t
        self.prefix = prefix or os.environ.get("FLEET_PREFIX") or t["prefix"]
        self.dir = Path(run_dir or os.environ.get("FLEET_DIR") or f"/run/haports-fleet/{self.prefix}")
        self.node = node or os.environ.get("FLEET_NODE", "node")
        self.haports = haports or os.environ.get("FLEET_HAPORTS", str(ROOT / "bin" / "haports.mjs"))
        self.announce_mode = announce or os.environ.get("FLEET_ANNOUNCE", "auto")
        self.wire = wire or os.environ.get("FLEET_WIRE", "mtu")
        self.pumps = [p["name"] for p in t["pumps"]]
        self.pump_ip = {p["name"]: p["address"] for p in t["pumps"]}
        self.nvas = [n["name"] for n in t["appliances"]["members"]]
        self.nva_ip = {n["name"]: n["address"] for n in t["appliances"]["members"]}
        self.rtr = t["router"]["name"]
        self.roles = ["sw", self.rtr, "client", "server", *self.pumps, *self.nvas]
        self.anycast = t["anycast"]
        self.anycast_ip = t["anycast"].split("/")[0]
        self.edge_len = ipaddress.ip_network(t["edge"]["network"]).prefixlen
        self.pump_len = ipaddress.ip_network(t["pumpLan"]["network"]).prefixlen
        self.tun = t["tunnel"]
        self.announce_if = t["announce"]["interface"]

    # ---- names and helpers -----------------------------------------------------------

    def ns(self, role):
        return f"{self.prefix}-{role}"

    def nsx(self, role, *cmd, check=True, timeout=30, input=None):
        return run("ip", "netns", "exec", self.ns(role), *cmd, check=check, timeout=timeout, input=input)

    def ns_exists(self, role):
        return Path(f"/run/netns/{self.ns(role)}").exists()

    def exists(self):
        return any(self.ns_exists(r) for r in self.roles)

    def say(self, *a):
        print(*a, flush=True)

    def pidfile(self, name):
        return self.dir / f"{name}.pid"

    def spawn(self, name, role, *cmd, log=None):
        """Runs cmd in role's namespace, detached (its own session), its output in NAME.log."""
        logf = open(log or self.dir / f"{name}.log", "ab")
        p = subprocess.Popen(["ip", "netns", "exec", self.ns(role), *map(str, cmd)], stdin=subprocess.DEVNULL,
                             stdout=logf, stderr=logf, start_new_session=True)
        logf.close()
        self.pidfile(name).write_text(str(p.pid))
        return p.pid

    def pid(self, name):
        try:
            return int(self.pidfile(name).read_text())
        except (OSError, ValueError):
            return None

    def alive(self, name):
        pid = self.pid(name)
        if pid is None or not running(pid):
            return False
        r = run("ip", "netns", "identify", str(pid), check=False)
        return r.stdout.strip().startswith(self.prefix + "-")

    def stop(self, name, sig=signal.SIGTERM, wait=5.0):
        pid = self.pid(name)
        if pid is not None and self.alive(name):
            try:
                os.kill(pid, sig)
            except OSError:
                pass
            deadline = time.monotonic() + wait
            while running(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if running(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        self.pidfile(name).unlink(missing_ok=True)

    def wait_port(self, role, addr, port, seconds=5.0):
        code = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 0.5).close()"
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.nsx(role, PYTHON, "-c", code, addr, port, check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise FleetError(f"nothing listens on {addr}:{port} in {self.ns(role)} (see {self.dir}/*.log)")

    # ---- requirements ----------------------------------------------------------------

    def missing(self):
        out = []
        if os.geteuid() != 0:
            out.append("root (network namespaces need it): run with sudo")
        for cmd, pkg in REQUIRED.items():
            if shutil.which(cmd) is None:
                out.append(f"{cmd} (apt-get install {pkg})")
        if shutil.which(self.node) is None:
            out.append(f"{self.node} (Node.js >= 20)")
        cli = Path(self.haports).resolve().parent.parent / "build" / "host" / "cli.mjs"
        if not cli.exists():
            out.append(f"a build of haports: {cli} (npm install && npm run build)")
        if self.announce_mode not in ("auto", "pump", "emulate"):
            out.append(f"FLEET_ANNOUNCE={self.announce_mode}: auto, pump or emulate")
        if self.wire not in ("mtu", "gso"):
            out.append(f"FLEET_WIRE={self.wire}: mtu or gso")
        return out

    def pump_has_announce(self):
        """Whether this build of the pump accepts pump.announce (the pump announces itself)."""
        cfg = json.loads(self.pump_config("0x" + "00" * 16, announce=True))
        pump_mjs = Path(self.haports).resolve().parent.parent / "build" / "host" / "pump.mjs"
        code = ("const m = await import(process.argv[1]); const r = m.stageText(process.argv[2], 256);"
                "console.log(JSON.stringify(r.errors ?? []));")
        r = run(self.node, "--input-type=module", "-e", code, pump_mjs.as_uri(), json.dumps(cfg), check=False)
        try:
            errors = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return False
        return not any("announce" in e for e in errors)

    # ---- configuration ---------------------------------------------------------------

    def hash_key(self):
        f = self.dir / "hashKey"
        if not f.exists():
            f.write_text("0x" + os.urandom(16).hex())
        return f.read_text().strip()

    def pump_config(self, key, announce):
        t = self.t
        pump = {
            "listeners": [{"name": f"vx{self.tun['vni']}", "protocol": "vxlan", "frontend": "fe-fleet",
                           "bind": f"0.0.0.0:{self.tun['port']}", "vnis": [self.tun["vni"]],
                           "peers": [t["client"]["vtep"], t["server"]["vtep"]]}],
            "innerChecksums": "complete",
            "workers": 1,
        }
        if announce:
            pump["announce"] = {"interface": self.announce_if, "addresses": [self.anycast],
                                "withdrawSeconds": t["announce"]["withdrawSeconds"]}
        p = t["probe"]
        cfg = {
            "hashKey": key,
            "flowTable": {"capacity": 65536},
            "frontends": [{"name": "fe-fleet", "address": self.anycast_ip}],
            "backendPools": [{"name": "nvas", "backends": [{"name": n, "address": self.nva_ip[n]} for n in self.nvas]}],
            "probes": [{"name": "nva-health", "protocol": "http", "port": p["port"], "path": p["path"],
                        "intervalSeconds": p["intervalSeconds"], "threshold": p["threshold"]}],
            "rules": [{"name": "ha-ports", "frontend": "fe-fleet", "backendPool": "nvas", "protocol": "all",
                       "frontendPort": 0, "backendPort": 0, "floatingIp": True, "probe": "nva-health",
                       "persistOnUnhealthy": "defaultForProtocol"}],
            "pump": pump,
        }
        return json.dumps(cfg, indent=2) + "\n"

    def bird_router_config(self):
        t, b, f = self.t, self.t["bgp"], self.t["bfd"]
        peers = "\n".join(
            f'protocol bgp {p} from pumps {{ neighbor {self.pump_ip[p]} as {b["pumpAsn"]}; }}' for p in self.pumps)
        return f"""# BIRD 2 on the router ({self.ns(self.rtr)}): eBGP to every pump instance, one ECMP
# route to the anycast address in the kernel, BFD on the pump LAN.
log stderr all;
debug protocols {{ states }};   # session ups and downs in the log, with the reason
router id {t["router"]["pumpLan"]};

protocol device {{ scan time 10; }}

# The kernel gets one route to {self.anycast} with a next hop per instance that announces
# it: BIRD merges equal BGP routes (same preference, AS path length, origin, MED) into
# one multipath route ("merge paths"). BIRD 2.0 writes RTA_MULTIPATH routes, not nexthop
# objects, so the kernel's group is a hash-threshold one, not a resilient one.
protocol kernel {{
  ipv4 {{ import none; export where source = RTS_BGP; }};
  merge paths on;
}}

# 100 ms x 3: an instance that stops answering is routed around in about 0.3 s.
protocol bfd {{
  interface "pumps" {{ min rx interval {f["intervalMs"]} ms; min tx interval {f["intervalMs"]} ms; multiplier {f["multiplier"]}; }};
}}

template bgp pumps {{
  local {t["router"]["pumpLan"]} as {t["router"]["asn"]};
  direct;
  bfd on;
  hold time {b["holdSeconds"]}; keepalive time {b["keepaliveSeconds"]};
  connect delay time 1; connect retry time 1; error wait time 1, 5;
  graceful restart off;      # a dead instance's routes must go, not be kept as stale
  ipv4 {{
    import where net = {self.anycast};   # the anycast address, nothing else
    export none;
  }};
}}
{peers}
"""

    def bird_pump_config(self):
        t, b, f = self.t, self.t["bgp"], self.t["bfd"]
        return f"""# BIRD 2 on every pump instance: the same file everywhere. The pump adds {self.anycast}
# to "{self.announce_if}" while it is ready and removes it when it is not (and its supervisor
# flushes the interface when the pump process ends); "protocol direct" turns the address
# into a route, which eBGP announces to the router.
log stderr all;
debug protocols {{ states }};
router id from "eth0";

protocol device {{ scan time 10; }}

protocol direct anycast {{
  ipv4 {{ import where net = {self.anycast}; }};
  interface "{self.announce_if}";
}}

protocol bfd {{
  interface "eth0" {{ min rx interval {f["intervalMs"]} ms; min tx interval {f["intervalMs"]} ms; multiplier {f["multiplier"]}; }};
}}

protocol bgp uplink {{
  local as {b["pumpAsn"]};
  neighbor {t["router"]["pumpLan"]} as {t["router"]["asn"]};
  direct;
  bfd on;
  hold time {b["holdSeconds"]}; keepalive time {b["keepaliveSeconds"]};
  connect delay time 1; connect retry time 1; error wait time 1, 5;
  graceful restart off;
  ipv4 {{
    import none;
    export where proto = "anycast";
  }};
}}
"""

    # ---- building ----------------------------------------------------------------------

    def build_underlay(self):
        for role in self.roles:
            run("ip", "netns", "add", self.ns(role))
        for role in self.roles:
            self.nsx(role, "ip", "link", "set", "lo", "up")
        for br in ("br-edge", "br-pump"):
            self.nsx("sw", "ip", "link", "add", br, "type", "bridge")
            self.nsx("sw", "ip", "link", "set", br, "up")
        ports = [("e-client", "client", "eth0", "br-edge"), ("e-server", "server", "eth0", "br-edge"),
                 *[(f"e-{n}", n, "eth0", "br-edge") for n in self.nvas],
                 ("e-rtr", self.rtr, "edge", "br-edge"), ("p-rtr", self.rtr, "pumps", "br-pump"),
                 *[(f"p-{p}", p, "eth0", "br-pump") for p in self.pumps]]
        for port, role, dev, br in ports:
            self.nsx("sw", "ip", "link", "add", port, "type", "veth", "peer", "name", dev, "netns", self.ns(role))
            self.nsx("sw", "ip", "link", "set", port, "master", br, "up")
            if self.wire == "mtu":
                # A wire carries frames of at most the MTU: the switch segments the senders'
                # tunnel GSO frames (examples/lab/README.md, "One kernel is not a wire").
                self.nsx("sw", "ethtool", "-K", port, "tx-udp_tnl-segmentation", "off", "tx-udp_tnl-csum-segmentation", "off")
            self.nsx(role, "ip", "link", "set", dev, "up")

    def build_router(self):
        r, t = self.rtr, self.t
        self.nsx(r, "ip", "addr", "add", f"{t['router']['edge']}/{self.edge_len}", "dev", "edge")
        self.nsx(r, "ip", "addr", "add", f"{t['router']['pumpLan']}/{self.pump_len}", "dev", "pumps")
        self.nsx(r, "sysctl", "-qw", "net.ipv4.ip_forward=1",
                 f"net.ipv4.fib_multipath_hash_policy={t['router']['multipathHashPolicy']}",
                 "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.default.send_redirects=0",
                 "net.ipv4.conf.edge.send_redirects=0", "net.ipv4.conf.pumps.send_redirects=0")
        (self.dir / "bird-rtr.conf").write_text(self.bird_router_config())
        self.start_bird(r)

    def build_vtep(self, role):
        t, c = self.t, self.t[role]
        gw = t["appliances"]["gateways"]
        mac = t["appliances"]["mac"]
        self.nsx(role, "ip", "addr", "add", f"{c['vtep']}/{self.edge_len}", "dev", "eth0")
        # The tunnel's far end is the anycast address: the router spreads it over the instances.
        self.nsx(role, "ip", "route", "add", self.anycast, "via", t["router"]["edge"])
        dev = self.tun["device"]
        self.nsx(role, "ip", "link", "add", dev, "mtu", self.tun["mtu"], "address", c["mac"], "type", "vxlan",
                 "id", self.tun["vni"], "dstport", self.tun["port"], "dev", "eth0", "local", c["vtep"],
                 "remote", self.anycast_ip, "nolearning")
        self.nsx(role, "ip", "link", "set", dev, "addrgenmode", "none")
        self.nsx(role, "ip", "addr", "add", f"{c['inner4']}/24", "dev", dev)
        self.nsx(role, "ip", "-6", "addr", "add", f"{c['inner6']}/64", "dev", dev, "nodad")
        self.nsx(role, "ip", "link", "set", dev, "up")
        g4, g6 = gw[f"{role}4"], gw[f"{role}6"]
        self.nsx(role, "ip", "neigh", "add", g4, "lladdr", mac, "dev", dev, "nud", "permanent")
        self.nsx(role, "ip", "-6", "neigh", "add", g6, "lladdr", mac, "dev", dev, "nud", "permanent")
        self.nsx(role, "ip", "route", "add", "default", "via", g4, "dev", dev)
        self.nsx(role, "ip", "-6", "route", "add", "default", "via", g6, "dev", dev)
        self.nsx(role, "sysctl", "-qw", "net.ipv6.conf.all.accept_redirects=0", "net.ipv4.conf.all.accept_redirects=0")

    def firewall_rules(self, fam):
        t = self.t
        cnet, snet = (t["client"]["net4"], t["server"]["net4"]) if fam == 4 else (t["client"]["net6"], t["server"]["net6"])
        icmp = "-p icmp" if fam == 4 else "-p ipv6-icmp"
        lines = ["*filter", ":INPUT DROP [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]",
                 "-A INPUT -i lo -j ACCEPT",
                 "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"]
        if fam == 4:
            for net in (t["edge"]["network"], t["pumpLan"]["network"]):
                lines.append(f"-A INPUT -s {net} -p udp --dport {self.tun['port']} -m comment --comment fleet-vxlan-in -j ACCEPT")
            lines.append(f"-A INPUT -s {t['pumpLan']['network']} -p tcp --dport {t['probe']['port']} -m comment --comment fleet-probe -j ACCEPT")
        lines += [f"-A INPUT {icmp} -j ACCEPT",
                  # counted, not decided: every TCP RST the appliance sees pass
                  "-A FORWARD -p tcp --tcp-flags RST RST -m comment --comment fleet-rst",
                  "-A FORWARD -m conntrack --ctstate INVALID -m comment --comment fleet-invalid -j DROP",
                  "-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -m comment --comment fleet-established -j ACCEPT",
                  f"-A FORWARD -s {cnet} -d {snet} -m conntrack --ctstate NEW -m comment --comment fleet-new-from-client -j ACCEPT",
                  "-A FORWARD -m comment --comment fleet-denied -j DROP", "COMMIT", ""]
        return "\n".join(lines)

    # Per-connection accounting of INVALID packets: which connection's packets reached an
    # appliance that had not seen it (the firewall's own rule only counts packets).
    NFT_ACCT = """table inet fleetacct {
  set invalid4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; flags dynamic; counter; size 65536; }
  set invalid6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; flags dynamic; counter; size 65536; }
  set rst4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; flags dynamic; counter; size 65536; }
  set rst6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; flags dynamic; counter; size 65536; }
  set invalid_l4 { type inet_proto; flags dynamic; counter; size 256; }
  chain acct {
    type filter hook forward priority -10; policy accept;
    ct state invalid update @invalid_l4 { meta l4proto }
    meta nfproto ipv4 tcp flags & rst == rst update @rst4 { ip saddr . tcp sport . ip daddr . tcp dport }
    meta nfproto ipv6 tcp flags & rst == rst update @rst6 { ip6 saddr . tcp sport . ip6 daddr . tcp dport }
    ct state invalid meta nfproto ipv4 meta l4proto tcp update @invalid4 { ip saddr . tcp sport . ip daddr . tcp dport }
    ct state invalid meta nfproto ipv6 meta l4proto tcp update @invalid6 { ip6 saddr . tcp sport . ip6 daddr . tcp dport }
  }
}
"""

    def build_nva(self, n):
        t = self.t
        ip = self.nva_ip[n]
        dev = self.tun["device"]
        gw = t["appliances"]["gateways"]
        self.nsx(n, "ip", "addr", "add", f"{ip}/{self.edge_len}", "dev", "eth0")
        self.nsx(n, "ip", "route", "add", "default", "via", t["router"]["edge"])
        self.nsx(n, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
                 "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.default.send_redirects=0")
        self.nsx(n, "ip", "link", "add", dev, "mtu", self.tun["mtu"], "address", t["appliances"]["mac"], "type", "vxlan",
                 "id", self.tun["vni"], "dstport", self.tun["port"], "dev", "eth0", "local", ip, "nolearning")
        self.nsx(n, "ip", "link", "set", dev, "addrgenmode", "none")
        for a in (gw["client4"] + "/24", gw["server4"] + "/24"):
            self.nsx(n, "ip", "addr", "add", a, "dev", dev)
        for a in (gw["client6"] + "/64", gw["server6"] + "/64"):
            self.nsx(n, "ip", "-6", "addr", "add", a, "dev", dev, "nodad")
        self.nsx(n, "ip", "link", "set", dev, "up")
        for side in ("client", "server"):
            c = t[side]
            self.nsx(n, "bridge", "fdb", "add", c["mac"], "dev", dev, "dst", c["vtep"], "self", "permanent")
            self.nsx(n, "ip", "neigh", "add", c["inner4"], "lladdr", c["mac"], "dev", dev, "nud", "permanent")
            self.nsx(n, "ip", "-6", "neigh", "add", c["inner6"], "lladdr", c["mac"], "dev", dev, "nud", "permanent")
        self.nsx(n, "iptables-restore", input=self.firewall_rules(4))
        self.nsx(n, "ip6tables-restore", input=self.firewall_rules(6))
        self.nsx(n, "nft", "-f", "-", input=self.NFT_ACCT)
        self.nsx(n, "sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=0", "net.netfilter.nf_conntrack_acct=1")
        d = self.dir / n
        d.mkdir(parents=True, exist_ok=True)
        (d / t["probe"]["path"].lstrip("/")).write_text("ok\n")
        self.heal(n)

    def heal(self, n):
        if self.alive(f"{n}-health"):
            return
        self.spawn(f"{n}-health", n, PYTHON, "-m", "http.server", self.t["probe"]["port"], "--bind", self.nva_ip[n],
                   "--directory", self.dir / n)
        self.wait_port(n, self.nva_ip[n], self.t["probe"]["port"])

    def fail(self, n):
        self.stop(f"{n}-health")

    def server_services(self):
        s = self.t["services"]
        www = self.dir / "www"
        www.mkdir(parents=True, exist_ok=True)
        (www / "index.html").write_text("hello from the server behind the haports fleet\n")
        (www / "1M.bin").write_bytes(os.urandom(1 << 20))
        # ThreadingHTTPServer (python3 -m http.server) answers each connection in a thread.
        self.spawn("http", "server", PYTHON, "-m", "http.server", s["http"], "--bind", "::", "--directory", www)
        self.spawn("iperf3", "server", "iperf3", "-s", "-p", s["iperf3"])
        self.spawn("echo", "server", PYTHON, HERE / "traffic.py", "echo-server", s["echo"])
        for port in (s["http"], s["iperf3"], s["echo"]):
            self.wait_port("server", self.t["server"]["inner4"], port)

    # ---- the instances -----------------------------------------------------------------

    def start_bird(self, role):
        conf = self.dir / ("bird-rtr.conf" if role == self.rtr else "bird-pump.conf")
        d = self.dir / role
        d.mkdir(parents=True, exist_ok=True)
        run("bird", "-p", "-c", conf)   # parse only: a clear error before anything starts
        self.spawn(f"{role}-bird", role, "bird", "-f", "-c", conf, "-s", d / "bird.ctl", "-P", d / "bird.pid",
                   log=d / "bird.log")

    def birdc(self, role, *cmd, check=False):
        return run("birdc", "-s", self.dir / role / "bird.ctl", *cmd, check=check, timeout=10)

    def build_pump_host(self, p):
        self.nsx(p, "ip", "addr", "add", f"{self.pump_ip[p]}/{self.pump_len}", "dev", "eth0")
        self.nsx(p, "ip", "route", "add", "default", "via", self.t["router"]["pumpLan"])
        self.announce_interface(p)
        self.start_bird(p)

    def announce_interface(self, p):
        """The pump creates its announce interface, a dummy, when it is missing. A kernel
        without dummy interfaces (CONFIG_DUMMY off) gets an ifb device instead, made here:
        any interface that is up holds a local address as well, and the pump uses the one
        it finds."""
        dev = self.announce_if
        if self.nsx(p, "ip", "link", "show", "dev", dev, check=False).returncode == 0:
            return
        if self.nsx(p, "ip", "link", "add", dev, "type", "dummy", check=False).returncode == 0:
            self.nsx(p, "ip", "link", "del", dev)     # it works: leave it to the pump
            (self.dir / "announce-interface").write_text("dummy (created by the pump)\n")
            return
        self.nsx(p, "ip", "link", "add", dev, "type", "ifb")
        self.nsx(p, "ip", "link", "set", dev, "up")
        (self.dir / "announce-interface").write_text("ifb (this kernel has no dummy interfaces)\n")

    def announce_by_pump(self):
        mode_file = self.dir / "announce-mode"
        if mode_file.exists():
            return mode_file.read_text().strip() == "pump"
        if self.announce_mode == "pump":
            mode = "pump"
        elif self.announce_mode == "emulate":
            mode = "emulate"
        else:
            mode = "pump" if self.pump_has_announce() else "emulate"
        mode_file.write_text(mode + "\n")
        return mode == "pump"

    def start_pump(self, p):
        """The pump of instance p, under its supervisor (supervise.py: ExecStopPost flushes the announce interface)."""
        d = self.dir / p
        d.mkdir(parents=True, exist_ok=True)
        by_pump = self.announce_by_pump()
        sup = [PYTHON, HERE / "supervise.py", "--interface", self.announce_if, "--pid-file", d / "pump.pid",
               "--log", d / "pump.log", "--metrics", self.t["metrics"],
               "--withdraw-seconds", self.t["announce"]["withdrawSeconds"]]
        if not by_pump:
            sup += ["--emulate", self.anycast]
        (d / "pump.pid").unlink(missing_ok=True)
        self.spawn(f"{p}-supervisor", p, *sup, "--", self.node, self.haports, "pump", "--config", self.dir / "pump.json",
                   "--metrics", self.t["metrics"], log=d / "supervisor.log")

    def pump_pid(self, p):
        try:
            return int((self.dir / p / "pump.pid").read_text())
        except (OSError, ValueError):
            return None

    def pump_running(self, p):
        pid = self.pump_pid(p)
        return pid is not None and running(pid)

    def announced(self, p):
        r = self.nsx(p, "ip", "-j", "addr", "show", "dev", self.announce_if, check=False)
        try:
            return any(f"{a['local']}/{a['prefixlen']}" == self.anycast for i in json.loads(r.stdout or "[]") for a in i.get("addr_info", []))
        except ValueError:
            return False

    def nexthops(self):
        """The router's next hops to the anycast address (the instances it spreads over)."""
        r = self.nsx(self.rtr, "ip", "-j", "route", "show", self.anycast, check=False)
        try:
            routes = json.loads(r.stdout or "[]")
        except ValueError:
            return []
        hops = []
        for rt in routes:
            if "nexthops" in rt:
                hops += [h.get("gateway") for h in rt["nexthops"]]
            elif rt.get("gateway"):
                hops.append(rt["gateway"])
        return sorted(h for h in hops if h)

    def wait_nexthops(self, want, seconds=15.0):
        want = sorted(self.pump_ip[p] for p in want)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.nexthops() == want:
                return True
            time.sleep(0.05)
        return False

    def pump_log(self, p):
        out = []
        try:
            text = (self.dir / p / "pump.log").read_text()
        except OSError:
            return out
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def http_get(self, role, path, timeout=3):
        r = self.nsx(role, "curl", "-sS", "--max-time", str(timeout), "-w", "\n%{http_code}", f"http://{self.t['metrics']}{path}",
                     check=False, timeout=timeout + 5)
        body, _, code = r.stdout.rpartition("\n")
        return (int(code) if code.isdigit() else 0), body

    def metrics(self, p):
        code, text = self.http_get(p, "/metrics")
        out = {}
        if code != 200:
            return out
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
            if m:
                labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or "")))
                try:
                    out[(m.group(1), labels)] = float(m.group(3))
                except ValueError:
                    pass
        return out

    def ready(self, p):
        """GET /ready: 200 ready, 503 not ready; None when the pump has no such endpoint or does not answer."""
        code, _ = self.http_get(p, "/ready", timeout=1)
        return {200: True, 503: False}.get(code)

    # ---- commands ----------------------------------------------------------------------

    def up(self):
        missing = self.missing()
        if missing:
            raise FleetError("cannot build the fleet; missing:\n  - " + "\n  - ".join(missing))
        if self.exists():
            raise FleetError(f"a fleet with prefix {self.prefix} is already up (fleet.sh down first)")
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            self.build_underlay()
            self.build_router()
            self.build_vtep("client")
            self.build_vtep("server")
            for n in self.nvas:
                self.build_nva(n)
            self.server_services()
            by_pump = self.announce_by_pump()
            (self.dir / "pump.json").write_text(self.pump_config(self.hash_key(), announce=by_pump))
            (self.dir / "bird-pump.conf").write_text(self.bird_pump_config())
            for p in self.pumps:
                self.build_pump_host(p)
            for p in self.pumps:
                self.start_pump(p)
            if not self.wait_nexthops(self.pumps, 20):
                raise FleetError(f"the router has next hops {self.nexthops()} for {self.anycast}, not the 3 instances "
                                 f"(see {self.dir}/*/bird.log and */pump.log)")
        except BaseException:
            if os.environ.get("FLEET_KEEP_ON_FAILURE"):
                self.say(f"fleet: up failed; FLEET_KEEP_ON_FAILURE: left as it is ({self.dir})")
                raise
            self.say("fleet: up failed; removing what was built")
            self.down(quiet=True)
            raise
        self.describe()

    def describe(self):
        t = self.t
        mode = (self.dir / "announce-mode").read_text().strip()
        self.say(f"haports fleet \"{self.prefix}\" is up ({self.dir})")
        self.say(f"  router     {self.ns(self.rtr)}: edge {t['router']['edge']}, pump LAN {t['router']['pumpLan']}, AS {t['router']['asn']}, "
                 f"BIRD; route {self.anycast} via {', '.join(self.nexthops())} (ECMP, fib_multipath_hash_policy={t['router']['multipathHashPolicy']})")
        for p in self.pumps:
            self.say(f"  {p:9}  {self.ns(p)}: {self.pump_ip[p]}, AS {t['bgp']['pumpAsn']}, BIRD + haports pump (pid {self.pump_pid(p)}), "
                     f"{self.anycast} on {self.announce_if} while ready ({'the pump announces' if mode == 'pump' else 'announce emulated by the supervisor'})")
        for n in self.nvas:
            self.say(f"  {n:9}  {self.ns(n)}: {self.nva_ip[n]}, VXLAN {self.tun['vni']}, stateful firewall, health http://{self.nva_ip[n]}:{t['probe']['port']}{t['probe']['path']}")
        for side in ("client", "server"):
            c = t[side]
            self.say(f"  {side:9}  {self.ns(side)}: VTEP {c['vtep']} -> remote {self.anycast_ip}; inner {c['inner4']}, {c['inner6']}")
        self.say(f"  configuration: {self.dir}/pump.json and {self.dir}/bird-pump.conf (the same for every instance), {self.dir}/bird-rtr.conf")

    def down(self, quiet=False):
        say = (lambda *a: None) if quiet else self.say
        if self.dir.exists():
            # The pumps first, by SIGTERM through their supervisors (final counters in their logs).
            for p in self.pumps:
                if self.alive(f"{p}-supervisor"):
                    self.stop(f"{p}-supervisor", signal.SIGTERM, wait=6)
            for f in sorted(self.dir.glob("*.pid")):
                self.stop(f.stem)
        for role in self.roles:
            if self.ns_exists(role):
                pids = run("ip", "netns", "pids", self.ns(role), check=False).stdout.split()
                for pid in pids:
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (OSError, ValueError):
                        pass
        for role in self.roles:
            if self.ns_exists(role):
                run("ip", "netns", "del", self.ns(role), check=False)
                say(f"deleted namespace {self.ns(role)}")
        if self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
            say(f"removed {self.dir}")
        try:
            self.dir.parent.rmdir()
        except OSError:
            pass

    def kill(self, p, whole=False):
        """kill -9 the pump of instance p; whole: the instance dies (dark switch port, supervisor, pump and BIRD killed)."""
        killed = []
        if whole:
            self.nsx("sw", "ip", "link", "set", f"p-{p}", "down")
            for name in (f"{p}-supervisor",):
                pid = self.pid(name)
                if pid and running(pid):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(name)
        pid = self.pump_pid(p)
        if pid and running(pid):
            os.kill(pid, signal.SIGKILL)
            killed.append("pump")
        if whole:
            pid = self.pid(f"{p}-bird")
            if pid and running(pid):
                os.kill(pid, signal.SIGKILL)
                killed.append("bird")
        return killed

    def join(self, p):
        """Starts what is missing of instance p: its switch port, its BIRD, its pump."""
        started = []
        self.nsx("sw", "ip", "link", "set", f"p-{p}", "up")
        if not self.alive(f"{p}-bird"):
            # The host boots: nothing is left on the announce interface (a dead host's address
            # would be announced by BIRD before the pump is ready; on a real host the pump's
            # unit flushes it: ExecStartPre=-ip address flush dev haports0, docs/fleet.md).
            self.nsx(p, "ip", "addr", "flush", "dev", self.announce_if, check=False)
            # ... and an empty neighbour table (the dead host's FAILED entry for the router would
            # make the pump's first probe round fail with EHOSTUNREACH). Services start once the
            # network is up (network-online.target): here, once the router answers.
            self.nsx(p, "ip", "neigh", "flush", "dev", "eth0", check=False)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if self.nsx(p, "ping", "-c", "1", "-W", "1", self.t["router"]["pumpLan"], check=False).returncode == 0:
                    break
            (self.dir / p / "bird.ctl").unlink(missing_ok=True)
            self.start_bird(p)
            started.append("bird")
        if not self.pump_running(p) and not self.alive(f"{p}-supervisor"):
            self.start_pump(p)
            started.append("pump")
        return started

    def graceful_stop(self, p):
        """SIGTERM to the supervisor: the pump withdraws its address, waits withdrawSeconds, stops."""
        pid = self.pid(f"{p}-supervisor")
        if pid and running(pid):
            os.kill(pid, signal.SIGTERM)
            return pid
        return None

    def reload(self, which=None, wait=10.0):
        """SIGHUP, one instance at a time; the next only once this one logged "reloaded" and is ready again."""
        out = []
        for p in ([which] if which else self.pumps):
            pid = self.pump_pid(p)
            if not pid or not running(pid):
                out.append((p, "not running"))
                continue
            mark = len(self.pump_log(p))
            t0 = time.monotonic()
            os.kill(pid, signal.SIGHUP)
            result = "no reload logged"
            while time.monotonic() - t0 < wait:
                new = [e for e in self.pump_log(p)[mark:] if "reload" in e.get("msg", "") or "rejected" in e.get("msg", "")]
                if new:
                    result = new[-1]["msg"]
                    break
                time.sleep(0.05)
            while time.monotonic() - t0 < wait and self.ready(p) is False:
                time.sleep(0.05)
            out.append((p, f"{result} in {time.monotonic() - t0:.2f}s, ready: {self.ready(p)}, announced: {self.announced(p)}"))
        return out

    # ---- the firewalls -----------------------------------------------------------------

    INNER = re.compile(r"^(192\.168\.(10|20)\.|fd00:(10|20)::)")

    def conntrack(self, n):
        """The inner connections in n's conntrack: dicts (proto, src, dst, sport, dport, replied, state, packets)."""
        out = []
        for fam in ("ipv4", "ipv6"):
            for line in self.nsx(n, "conntrack", "-L", "-f", fam, check=False).stdout.splitlines():
                tokens = line.split()
                if not tokens:
                    continue
                kv, packets = {}, []
                for tok in tokens:
                    if "=" in tok:
                        k, v = tok.split("=", 1)
                        kv.setdefault(k, v)
                        if k == "packets":
                            packets.append(int(v))
                if not self.INNER.match(kv.get("src", "")):
                    continue
                e = {"proto": tokens[0], "src": kv["src"], "dst": kv["dst"], "replied": "[UNREPLIED]" not in tokens,
                     "state": tokens[3] if tokens[0] == "tcp" and len(tokens) > 3 else "", "packets": sum(packets)}
                if e["proto"] in ("tcp", "udp"):
                    e["sport"], e["dport"] = int(kv["sport"]), int(kv["dport"])
                    e["key"] = (e["proto"], frozenset([(e["src"], e["sport"]), (e["dst"], e["dport"])]))
                else:
                    e["key"] = (e["proto"], frozenset([e["src"], e["dst"]]), int(kv.get("id", -1)))
                out.append(e)
        return out

    def fw_counters(self, n):
        """Packets counted by the FORWARD rules, by comment, IPv4 and IPv6 added up."""
        out = {}
        for cmd in ("iptables-save", "ip6tables-save"):
            for line in self.nsx(n, cmd, "-c", "-t", "filter", check=False).stdout.splitlines():
                m = re.match(r"^\[(\d+):\d+\] -A FORWARD .*--comment fleet-([\w-]+)", line)
                if m:
                    out[m.group(2)] = out.get(m.group(2), 0) + int(m.group(1))
        return out

    def invalid_protocols(self, n):
        """{protocol: packets} n dropped as INVALID (the firewall's rule counts them all together)."""
        r = self.nsx(n, "nft", "-j", "list", "set", "inet", "fleetacct", "invalid_l4", check=False)
        out = {}
        try:
            for it in json.loads(r.stdout)["nftables"]:
                for el in it.get("set", {}).get("elem", []) or []:
                    e = el.get("elem", el)
                    out[str(e.get("val"))] = (e.get("counter") or {}).get("packets", 0)
        except (ValueError, KeyError):
            pass
        return out

    def invalid_connections(self, n, what="invalid"):
        """{(src, sport, dst, dport): packets} of the TCP packets n dropped as INVALID (what="rst":
        the TCP RSTs it saw), per connection and direction."""
        out = {}
        for s in (f"{what}4", f"{what}6"):
            r = self.nsx(n, "nft", "-j", "list", "set", "inet", "fleetacct", s, check=False)
            try:
                items = json.loads(r.stdout)["nftables"]
            except (ValueError, KeyError):
                continue
            for it in items:
                for el in it.get("set", {}).get("elem", []) or []:
                    e = el.get("elem", el)
                    val = e.get("val", e)
                    if isinstance(val, dict) and "concat" in val:
                        src, sport, dst, dport = val["concat"]
                        pk = (e.get("counter") or {}).get("packets", 1)
                        out[(src, int(sport), dst, int(dport))] = pk
        return out

    # ---- status and traffic ------------------------------------------------------------

    def status(self):
        self.say(f"fleet {self.prefix} ({self.dir})")
        missing = [self.ns(r) for r in self.roles if not self.ns_exists(r)]
        if missing:
            self.say(f"  namespaces missing: {' '.join(missing)}")
        if not self.exists():
            self.say("  (the fleet is down)")
            return
        self.say(f"  router: {self.anycast} via {', '.join(self.nexthops()) or 'NOTHING'}")
        r = self.birdc(self.rtr, "show", "protocols")
        for line in r.stdout.splitlines():
            if line.startswith("pump"):
                self.say("    bgp " + " ".join(line.split()))
        r = self.birdc(self.rtr, "show", "bfd", "sessions")
        for line in r.stdout.splitlines()[2:]:
            if line.strip():
                self.say("    bfd " + " ".join(line.split()))
        for p in self.pumps:
            ms = self.metrics(p)
            rx = sum(v for (k, _), v in ms.items() if k == "haports_pump_received_packets_total")
            flows = sum(v for (k, _), v in ms.items() if k == "haports_rule_flows_total")
            up = {dict(lb).get("backend"): int(v) for (k, lb), v in ms.items() if k == "haports_backend_up"}
            self.say(f"  {p}: pump {'running pid ' + str(self.pump_pid(p)) if self.pump_running(p) else 'NOT running'}, "
                     f"bird {'running' if self.alive(p + '-bird') else 'NOT running'}, announced {self.announced(p)}, ready {self.ready(p)}; "
                     f"received {int(rx)} packets, {int(flows)} flows; appliances up {up}")
        for n in self.nvas:
            ct = self.conntrack(n)
            self.say(f"  {n}: {len(ct)} inner connections in conntrack, health {'running' if self.alive(n + '-health') else 'STOPPED'}; "
                     f"FORWARD packets {self.fw_counters(n)}")

    def traffic(self):
        t = self.t
        s4, s6 = t["server"]["inner4"], t["server"]["inner6"]
        svc = t["services"]
        self.say("== ping")
        for a in (s4, s6):
            r = self.nsx("client", "ping", "-c", "3", "-i", "0.2", "-W", "2", a, check=False)
            self.say("  " + (r.stdout.strip().splitlines() or ["?"])[-2 if r.stdout.strip() else 0])
        self.say("== curl, 12 connections over IPv4 and IPv6")
        for i in range(12):
            a = s4 if i % 2 == 0 else f"[{s6}]"
            r = self.nsx("client", "curl", "-sS", "-o", "/dev/null", "--max-time", "5", "-w", "%{http_code} %{local_port}",
                         f"http://{a}:{svc['http']}/", check=False)
            self.say(f"  {a}: {r.stdout.strip() or r.stderr.strip()}")
        self.say("== iperf3, 4 TCP streams for 3 s")
        r = self.nsx("client", "iperf3", "-c", s4, "-p", svc["iperf3"], "-t", "3", "-P", "4", "--connect-timeout", "3000",
                     check=False, timeout=30)
        for line in r.stdout.splitlines():
            if "SUM" in line and ("sender" in line or "receiver" in line):
                self.say("  " + " ".join(line.split()))
        self.say("== UDP echo")
        code = ("import socket,sys\nok=0\nfor i in range(20):\n s=socket.socket(); s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(1)\n"
                " s.sendto(b'x%d'%i,(sys.argv[1],int(sys.argv[2])))\n try: ok+=s.recv(64)==b'x%d'%i\n except OSError: pass\nprint(f'  {ok}/20 flows echoed')")
        self.say(self.nsx("client", PYTHON, "-c", code, s4, svc["echo"], check=False).stdout.rstrip())
        self.status()

    def env(self):
        t = self.t
        lines = [f"NS_{r.upper()}={self.ns(r)}" for r in self.roles]
        lines += [f"FLEET_PREFIX={self.prefix}", f"FLEET_DIR={self.dir}", f"ANYCAST={self.anycast}",
                  f"PUMPS=\"{' '.join(self.pumps)}\"", f"NVAS=\"{' '.join(self.nvas)}\"",
                  f"CLIENT4={t['client']['inner4']}", f"SERVER4={t['server']['inner4']}",
                  f"CLIENT6={t['client']['inner6']}", f"SERVER6={t['server']['inner6']}", f"METRICS={t['metrics']}"]
        lines += [f"PUMP_IP_{p.upper()}={self.pump_ip[p]}" for p in self.pumps]
        lines += [f"NVA_IP_{n.upper()}={self.nva_ip[n]}" for n in self.nvas]
        self.say("\n".join(lines))


def main(argv):
    f = Fleet()
    cmd = argv[0] if argv else ""
    arg = argv[1] if len(argv) > 1 else None
    try:
        if cmd == "up":
            f.up()
        elif cmd == "down":
            f.down()
        elif cmd == "status":
            f.status()
        elif cmd == "traffic":
            f.traffic()
        elif cmd == "kill" and arg in f.pumps:
            whole = "--whole" in argv[2:]
            t0 = time.time()
            killed = f.kill(arg, whole=whole)
            f.say(f"{arg}: killed {', '.join(killed) or 'nothing (not running)'} with SIGKILL"
                  + (" after darkening its switch port" if whole else ""))
            f.wait_nexthops([p for p in f.pumps if p != arg], 5)
            f.say(f"router: {f.anycast} via {', '.join(f.nexthops())} ({time.time() - t0:.2f}s after the kill)")
        elif cmd == "join" and arg in f.pumps:
            t0 = time.time()
            started = f.join(arg)
            ok = f.wait_nexthops([p for p in f.pumps if f.alive(p + "-supervisor") and f.alive(p + "-bird")], 15)
            f.say(f"{arg}: started {', '.join(started) or 'nothing (all running)'}; router: {f.anycast} via "
                  f"{', '.join(f.nexthops())}{'' if ok else ' (not all instances yet)'} ({time.time() - t0:.2f}s)")
        elif cmd == "stop" and arg in f.pumps:
            f.graceful_stop(arg)
            f.say(f"{arg}: SIGTERM to its supervisor; the pump withdraws, waits {f.t['announce']['withdrawSeconds']}s and stops")
        elif cmd == "reload":
            for p, what in f.reload(arg if arg in f.pumps else None):
                f.say(f"{p}: {what}")
        elif cmd == "fail" and arg in f.nvas:
            f.fail(arg)
            f.say(f"{arg}: health endpoint stopped")
        elif cmd == "heal" and arg in f.nvas:
            f.heal(arg)
            f.say(f"{arg}: health endpoint running")
        elif cmd == "env":
            f.env()
        elif cmd == "config":
            print((f.dir / "pump.json").read_text(), end="")
        else:
            sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
            return 2
    except FleetError as e:
        sys.stderr.write(f"fleet: {e}\n")
        return 1
    except BrokenPipeError:   # | head
        sys.stderr.close()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
