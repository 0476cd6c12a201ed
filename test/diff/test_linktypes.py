#!/usr/bin/env python3
"""`haports replay` on the link types tcpdump and Wireshark users meet, against tshark.

The same IPv4 and IPv6 packets (TCP, UDP, ICMP) are written with each link layer, as
scapy builds them: Linux cooked capture v1 (SLL, 113: `tcpdump -i any`) and v2 (SLL2,
276), BSD loopback / null (0, the family in host byte order; AF_INET6 24, 28 or 30),
OpenBSD loopback (108, network byte order) and PPP (9, with and without the address and
control bytes); each capture also holds a frame that carries no IP (ARP in SLL, LCP on
PPP). For every packet the tuple haports reports (src, dst, proto, ports) must equal
tshark's dissection of the same frame, and a frame without IP must be dropped, counted
and not crash anything. Prints "N passed, M failed"; exit status 0 iff M == 0.

  python3 test/diff/test_linktypes.py        (after npm run build; needs scapy and tshark)
"""
import ipaddress
import json
import os
import struct
import subprocess
import sys
import tempfile

from scapy.all import ICMP, IP, TCP, UDP, ARP, IPv6, ICMPv6EchoRequest, Raw, raw  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "test", "diff", "config.json")

PACKETS = [
    IP(src="10.1.2.3", dst="10.0.0.4") / TCP(sport=40001, dport=443, flags="S"),
    IP(src="10.1.2.4", dst="10.9.9.9") / UDP(sport=5353, dport=53) / Raw(b"q" * 20),
    IP(src="10.1.2.5", dst="10.0.0.4") / ICMP(),
    IPv6(src="2001:db8::5", dst="2001:db8:1::4") / TCP(sport=40002, dport=80, flags="S"),
    IPv6(src="2001:db8::6", dst="2001:db8:1::9") / UDP(sport=1234, dport=4321),
    IPv6(src="2001:db8::7", dst="2001:db8:1::4") / ICMPv6EchoRequest(),
]


def sll(ip):
    proto = 0x0800 if ip.version == 4 else 0x86DD
    return struct.pack("!HHH8sH", 0, 1, 6, b"\x02\x00\x00\x00\x00\x01\x00\x00", proto) + raw(ip)


def sll2(ip):
    proto = 0x0800 if ip.version == 4 else 0x86DD
    return struct.pack("!HHIHBB8s", proto, 0, 2, 1, 0, 6, b"\x02\x00\x00\x00\x00\x01\x00\x00") + raw(ip)


def null(family6):
    return lambda ip: struct.pack("<I", 2 if ip.version == 4 else family6) + raw(ip)


def loop(ip):
    return struct.pack("!I", 2 if ip.version == 4 else 24) + raw(ip)


def ppp(with_address):
    return lambda ip: (b"\xff\x03" if with_address else b"") + struct.pack("!H", 0x0021 if ip.version == 4 else 0x0057) + raw(ip)


# name, pcap link type, framing of an IP packet, a frame without IP
CASES = [
    ("sll", 113, sll, struct.pack("!HHH8sH", 0, 1, 6, b"\x02" + b"\x00" * 7, 0x0806) + raw(ARP())),
    ("sll2", 276, sll2, struct.pack("!HHIHBB8s", 0x0806, 0, 2, 1, 0, 6, b"\x02" + b"\x00" * 7) + raw(ARP())),
    ("null-bsd", 0, null(24), struct.pack("<I", 17) + b"\x00" * 20),
    ("null-freebsd", 0, null(28), None),
    ("null-macos", 0, null(30), None),
    ("loop", 108, loop, None),
    ("ppp", 9, ppp(True), b"\xff\x03\xc0\x21" + b"\x01\x01\x00\x04"),
    ("ppp-bare", 9, ppp(False), None),
]


def write_pcap(path, linktype, frames):
    """Classic pcap, microseconds, little-endian (scapy's writer takes link type 0 for "guess")."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype))
        for i, frame in enumerate(frames):
            f.write(struct.pack("<IIII", 1700000000 + i, 0, len(frame), len(frame)))
            f.write(frame)


def tshark_tuples(path):
    fields = ["ip.src", "ip.dst", "ip.proto", "ipv6.src", "ipv6.dst", "ipv6.nxt", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport"]
    cmd = ["tshark", "-r", path, "-T", "fields", "-E", "occurrence=f"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.rstrip("\n").split("\n"):
        v = dict(zip(fields, line.split("\t")))
        if v["ip.src"]:
            src, dst, proto = v["ip.src"], v["ip.dst"], int(v["ip.proto"])
        elif v["ipv6.src"]:
            src, dst, proto = v["ipv6.src"], v["ipv6.dst"], int(v["ipv6.nxt"])
        else:
            rows.append(None)
            continue
        sport = v["tcp.srcport"] or v["udp.srcport"]
        dport = v["tcp.dstport"] or v["udp.dstport"]
        rows.append({"src": str(ipaddress.ip_address(src)), "dst": str(ipaddress.ip_address(dst)), "proto": proto,
                     "sport": int(sport) if sport else None, "dport": int(dport) if dport else None})
    return rows


def haports_tuples(path):
    r = subprocess.run(["node", os.path.join(ROOT, "bin", "haports.mjs"), "replay", "--config", CONFIG, "--quiet", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("replay %s: exit %d: %s" % (path, r.returncode, r.stderr.strip()))
    rows = []
    for line in r.stdout.strip().split("\n"):
        v = json.loads(line)
        t = v["tuple"]
        rows.append((v, None if t is None else {"src": str(ipaddress.ip_address(t["src"])), "dst": str(ipaddress.ip_address(t["dst"])),
                                                "proto": t["proto"], "sport": t.get("sport"), "dport": t.get("dport")}))
    return rows


def main():
    passed, failed = 0, []
    with tempfile.TemporaryDirectory(prefix="haports-linktypes-") as d:
        for name, linktype, frame, non_ip in CASES:
            path = os.path.join(d, name + ".pcap")
            frames = [frame(p) for p in PACKETS] + ([non_ip] if non_ip else [])
            write_pcap(path, linktype, frames)
            want = tshark_tuples(path)
            got = haports_tuples(path)
            if len(got) != len(frames):
                failed.append("%s: %d verdicts for %d frames" % (name, len(got), len(frames)))
                continue
            for i, (verdict, t) in enumerate(got):
                if i < len(PACKETS):
                    if t == want[i] and verdict["verdict"] in ("forward", "nomatch"):
                        passed += 1
                    else:
                        failed.append("%s[%d]: haports %s %s, tshark %s" % (name, i, verdict["verdict"], t, want[i]))
                else:
                    if verdict["verdict"] == "drop" and t is None:
                        passed += 1
                    else:
                        failed.append("%s[%d] (no IP): haports %s" % (name, i, verdict))
    for f in failed[:25]:
        print("FAIL " + f)
    print("%d passed, %d failed" % (passed, len(failed)))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
