"""Shared machinery of the scenario tests: run `haports replay`, read what it wrote, and
check rewritten packets with tshark and with scapy.

Nothing here knows a scenario; test_scenarios.py holds the tables.
"""
import ipaddress
import json
import os
import subprocess
import tempfile

from scapy.all import (  # noqa: F401  (re-exported for the tables)
    Ether, ICMP, ICMPerror, IP, IPerror, IPerror6, IPv6, IPv6ExtHdrFragment, Raw, TCP, TCPerror,
    UDP, UDPerror, ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6DestUnreach, ICMPv6PacketTooBig,
    conf, fragment, fragment6, rdpcap, wrpcap,
)

conf.verb = 0

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CLI = ["node", os.path.join(REPO, "bin", "haports.mjs"), "replay"]
WORK = tempfile.mkdtemp(prefix="haports-scenarios-")
MAC = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")

_counter = [0]


class Replay:
    """What one `haports replay` run produced."""

    def __init__(self, verdicts, summary, out, out_path, inputs):
        self.verdicts = verdicts   # one dict per input packet
        self.summary = summary     # the summary text
        self.out = out             # forwarded packets as they left (bytes), in order
        self.out_path = out_path   # the --out pcap
        self.inputs = inputs       # the input packets (bytes)

    def backends(self):
        return [v["backend"] if v["verdict"] == "forward" else v["verdict"] for v in self.verdicts]

    def _out_index(self, index):
        # --out holds one packet per forward verdict and two (the RSTs) per reset verdict.
        return sum({"forward": 1, "reset": 2}.get(v["verdict"], 0) for v in self.verdicts[:index])

    def out_of(self, index):
        """The bytes packet `index` left as (None when it was not forwarded)."""
        if self.verdicts[index]["verdict"] != "forward":
            return None
        return self.out[self._out_index(index)]

    def resets_of(self, index):
        """For a reset verdict: the two RSTs that left instead of packet `index` (bytes):
        (back to its sender, on to the backend); None otherwise."""
        if self.verdicts[index]["verdict"] != "reset":
            return None
        k = self._out_index(index)
        return self.out[k], self.out[k + 1]


def replay(config, packets, events=(), frontend=None, name="replay"):
    """Writes the capture (packets carry .time), config and events; runs the CLI."""
    _counter[0] += 1
    base = os.path.join(WORK, "%03d-%s" % (_counter[0], name))
    cfg, cap, ev, verd, out = (base + s for s in (".config.json", ".pcap", ".events.jsonl", ".verdicts.jsonl", ".out.pcap"))
    with open(cfg, "w") as f:
        json.dump(config, f, indent=1)
    wrpcap(cap, packets)
    cmd = CLI + ["--config", cfg, "--verdicts", verd, "--out", out]
    if events:
        with open(ev, "w") as f:
            for e in events:
                f.write(json.dumps(e) + "\n")
        cmd += ["--events", ev]
    if frontend:
        cmd += ["--frontend", frontend]
    r = subprocess.run(cmd + [cap], capture_output=True, text=True, cwd=REPO)
    if r.returncode != 0:
        raise RuntimeError("%s exited %d:\n%s%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
    with open(verd) as f:
        verdicts = [json.loads(line) for line in f if line.strip()]
    if len(verdicts) != len(packets):
        raise RuntimeError("%s: %d verdicts for %d packets" % (base, len(verdicts), len(packets)))
    outs = [bytes(p) for p in rdpcap(out)] if os.path.getsize(out) > 24 else []
    return Replay(verdicts, r.stdout, outs, out, [bytes(p) for p in packets])


def stamp(packets, start=1000.0, step=1.0):
    """Gives packets capture timestamps `step` seconds apart (in place); returns them."""
    for i, p in enumerate(packets):
        p.time = start + i * step
    return packets


# ---- Checksums ---------------------------------------------------------------------------

CHECKSUM_FIELDS = ("chksum", "cksum")


def _is_fragment(p):
    if IP in p and (p[IP].flags.MF or p[IP].frag):
        return True
    return IPv6ExtHdrFragment in p


def scapy_checksum_problems(raw):
    """Rebuilds the packet with every checksum field recomputed by scapy and compares it
    with the bytes as they left. A zero UDP checksum over IPv4 ("none") is kept. For a
    fragment only the IPv4 header checksum is recomputed (the transport checksum covers
    the whole datagram: see reassembled_checksum_problems). Returns a list of strings."""
    p = Ether(raw)
    frag = _is_fragment(p)
    q = Ether(raw)
    outer_ip = q[IP] if IP in q else None
    names = []
    layer = q
    cut = False  # inside a quote that stops short: its transport checksum cannot be recomputed
    while layer is not None and not isinstance(layer, Raw):
        if isinstance(layer, IPerror) and layer.len is not None and len(bytes(layer)) < layer.len:
            cut = True
        if isinstance(layer, IPerror6) and layer.plen is not None and len(bytes(layer)) < 40 + layer.plen:
            cut = True
        for f in CHECKSUM_FIELDS:
            if f not in layer.fields:
                continue
            if frag and layer is not outer_ip:
                continue  # a fragment: only its own IPv4 header checksum
            if cut and not isinstance(layer, (IPerror, IPerror6)):
                continue
            if isinstance(layer, UDP) and layer.fields[f] == 0 and isinstance(layer.underlayer, IP):
                continue  # "no checksum" over IPv4 stays zero
            names.append("%s.%s" % (layer.__class__.__name__, f))
            setattr(layer, f, None)
        layer = layer.payload if layer.payload else None
    rebuilt = bytes(q)
    if rebuilt == raw:
        return []
    problems = []
    a, b = Ether(raw), Ether(rebuilt)
    la, lb = a, b
    while la is not None and lb is not None and not isinstance(la, Raw):
        for f in CHECKSUM_FIELDS:
            if f in la.fields and la.fields[f] != lb.fields.get(f):
                problems.append("scapy: %s %s is 0x%04x, should be 0x%04x" % (
                    la.__class__.__name__, f, la.fields[f], lb.fields.get(f)))
        la = la.payload if la.payload else None
        lb = lb.payload if lb.payload else None
    if not problems:
        problems.append("scapy: rebuilt bytes differ (checked %s)" % ", ".join(names))
    return problems


def reassembled(frames):
    """Reassembles the fragments among `frames` (bytes, Ethernet) by IP ID / IPv6
    identification; returns {id: reassembled IP packet (scapy)}. Non-fragments ignored."""
    groups = {}
    for raw in frames:
        p = Ether(raw)
        if IP in p and (p[IP].flags.MF or p[IP].frag):
            ip = p[IP]
            groups.setdefault(("4", ip.src, ip.dst, ip.id), []).append((ip.frag * 8, ip))
        elif IPv6ExtHdrFragment in p:
            fh = p[IPv6ExtHdrFragment]
            groups.setdefault(("6", p[IPv6].src, p[IPv6].dst, fh.id), []).append((fh.offset * 8, p[IPv6]))
    out = {}
    for key, parts in groups.items():
        parts.sort(key=lambda x: x[0])
        last = parts[-1][1]
        if (last.flags.MF if key[0] == "4" else last[IPv6ExtHdrFragment].m):
            continue  # the last fragment did not leave: incomplete
        data = b""
        for off, ip in parts:
            if key[0] == "4":
                payload = bytes(ip.payload)[:ip.len - ip.ihl * 4]
            else:
                payload = bytes(ip[IPv6ExtHdrFragment].payload)
            if off != len(data):
                data = None
                break
            data += payload
        if data is None:
            continue
        first = parts[0][1]
        if key[0] == "4":
            whole = IP(src=first.src, dst=first.dst, proto=first.proto, id=first.id, ttl=first.ttl) / Raw(data)
            whole = IP(bytes(whole))
        else:
            whole = IPv6(src=first.src, dst=first.dst, nh=first[IPv6ExtHdrFragment].nh, hlim=first.hlim) / Raw(data)
            whole = IPv6(bytes(whole))
        out[key[3]] = whole
    return out


def transport_checksum_ok(ip):
    """Whether the transport checksum of a whole (reassembled) IP packet verifies."""
    l4 = ip.payload
    f = "chksum"
    if not hasattr(l4, f) or l4.fields.get(f) is None:
        return False, "no transport header"
    if isinstance(l4, UDP) and l4.chksum == 0 and isinstance(ip, IP):
        return True, "udp checksum 0 (none)"
    raw = bytes(ip)
    q = ip.__class__(raw)
    setattr(q.payload, f, None)
    good = q.__class__(bytes(q)).payload.fields[f]
    return l4.fields[f] == good, "%s checksum 0x%04x, should be 0x%04x" % (l4.__class__.__name__, l4.fields[f], good)


# ---- tshark --------------------------------------------------------------------------------

TSHARK_FIELDS = [
    "frame.number", "ip.checksum.status", "tcp.checksum.status", "udp.checksum.status",
    "icmp.checksum.status", "icmpv6.checksum.status", "ip.checksum_bad.expert",
    "tcp.checksum_bad.expert", "udp.checksum.bad", "icmp.checksum_bad",
    "icmpv6.checksum_bad.expert", "_ws.malformed", "ip.dst", "ipv6.dst",
]
STATUS = {"0": "Bad", "1": "Good", "2": "Unverified", "3": "Not present", "4": "Illegal"}


def tshark_checksums(pcap, defragment=True):
    """Per frame: {field: [values...]} from tshark with every checksum check on."""
    # DNS off: the payloads on port 53 are not DNS messages, and tshark would call them
    # malformed (a malformed IP/UDP/TCP/ICMP header still is).
    opts = ["--disable-protocol", "dns",
            "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
            "-o", "udp.check_checksum:TRUE",
            "-o", "ip.defragment:%s" % ("TRUE" if defragment else "FALSE"),
            "-o", "ipv6.defragment:%s" % ("TRUE" if defragment else "FALSE"),
            "-o", "tcp.desegment_tcp_streams:FALSE",
            "-E", "occurrence=a", "-E", "aggregator=,"]
    return [{f: [x for x in v.split(",") if x != ""] for f, v in frame.items()}
            for frame in tshark_fields(pcap, TSHARK_FIELDS, opts)]


def tshark_fields(pcap, fields, opts=()):
    """Per frame of `pcap`: {field: text} of tshark's `-T fields` output with `opts`."""
    cmd = ["tshark", "-n", "-r", pcap, *opts, "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        cmd += ["-e", f]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("tshark failed: %s" % r.stderr)
    frames = []
    for line in r.stdout.splitlines():
        cols = line.split("\t")
        cols += [""] * (len(fields) - len(cols))
        frames.append(dict(zip(fields, cols)))
    return frames


def tshark_problems(frame, need=(), allow_unverified=None):
    """Problems tshark reports for one frame. `need`: checksum fields that must be present
    and Good (e.g. "ip", "udp"); every present status must be Good, except those in
    `allow_unverified` ({"udp": "3"} style: field -> allowed non-Good status)."""
    allow_unverified = allow_unverified or {}
    problems = []
    for proto in ("ip", "tcp", "udp", "icmp", "icmpv6"):
        vals = frame["%s.checksum.status" % proto]
        for v in vals:
            if v != "1" and allow_unverified.get(proto) != v:
                problems.append("tshark: %s checksum %s" % (proto, STATUS.get(v, v)))
        if proto in need and "1" not in vals:
            problems.append("tshark: no verified %s checksum (statuses %s)" % (proto, [STATUS.get(v, v) for v in vals]))
    for f in ("ip.checksum_bad.expert", "tcp.checksum_bad.expert", "udp.checksum.bad",
              "icmp.checksum_bad", "icmpv6.checksum_bad.expert", "_ws.malformed"):
        if frame[f]:
            problems.append("tshark: %s" % f)
    return problems


TCP_FIELDS = ["frame.number", "eth.src", "eth.dst", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.ttl",
              "ipv6.hlim", "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags",
              "tcp.len", "tcp.window_size_value"]


def tshark_tcp(pcap):
    """Per frame: {field: value} of the TCP header fields tshark decodes (raw sequence
    numbers, flags as 0x hex), for RSTs checked against what they must carry."""
    return tshark_fields(pcap, TCP_FIELDS, ["-o", "tcp.relative_sequence_numbers:FALSE"])


def addr(text):
    return str(ipaddress.ip_address(text))
