#!/usr/bin/env python3
"""Generate examples/sample.pcap: a small, deterministic Ethernet capture of
traffic through an HA-ports frontend.

Usage:  python3 examples/make_sample.py [OUT.pcap]     (default: examples/sample.pcap)

Scenario (see test/diff/config.json for a matching configuration): the
frontend 10.0.0.100 / fd00::100 (an internal load balancer with an HA-ports
rule: every protocol, every port) sits in front of a pool of NVAs.  Clients on
192.168.0.0/16 talk to services whose traffic is routed through the frontend;
for simplicity the services answer as 10.0.0.100 itself.  So client -> service
packets have dst 10.0.0.100 (verdict forward), service -> client packets have
src 10.0.0.100 (verdict nomatch with that config).

Contents (about 200 frames, time-ordered, flows interleaved):
  * 1 ARP who-has 10.0.0.100 from the router, and its reply
  * 20 TCP connections: SYN, SYN-ACK, ACK, request, response, FIN-ACK, FIN-ACK, ACK
    (both directions of the handshake and teardown)
  * 12 DNS-like UDP query/response pairs to 10.0.0.100:53
  * 3 ICMP echo request/reply pairs
  * 1 IPv6 TCP connection 2001:db8:100::10 -> [fd00::100]:443 (8 packets)
  * 1 UDP datagram of 3000 bytes sent as 3 IPv4 fragments

Deterministic: fixed seed, fixed timestamps and our own pcap writer, so the
file is byte-identical on every run.
"""
import os
import random
import struct
import sys

from scapy.config import conf
conf.verb = 0
from scapy.compat import raw  # noqa: E402
from scapy.layers.dns import DNS, DNSQR, DNSRR  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers.l2 import ARP, Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402

VIP4 = "10.0.0.100"
VIP6 = "fd00::100"
MAC_ROUTER = "02:00:5e:10:00:01"   # the client-side router that sends to the frontend
MAC_LB = "02:00:5e:10:00:64"       # the frontend's MAC
T0_US = 1_700_000_000 * 1_000_000
SEED = 20240501


def to_lb(l3):
    return Ether(src=MAC_ROUTER, dst=MAC_LB) / l3


def from_lb(l3):
    return Ether(src=MAC_LB, dst=MAC_ROUTER) / l3


def tcp_conversation(rng, t_us, csrc, cport, sdst, sport, v6=False, req=b"", resp=b""):
    """Eight packets of one TCP connection; returns [(t_us, frame)]."""
    L3 = (lambda s, d: IPv6(src=s, dst=d, hlim=64)) if v6 else \
         (lambda s, d: IP(src=s, dst=d, ttl=63 if s != sdst else 64, id=rng.randrange(65536), flags="DF"))
    rtt = rng.randrange(800, 30000)          # microseconds, client <-> service
    cseq, sseq = rng.randrange(1 << 32), rng.randrange(1 << 32)
    M = 1 << 32
    syn_opts = [("MSS", 1460 if not v6 else 1440), ("NOP", None), ("WScale", 7), ("SAckOK", b"")]
    out = []

    def c2s(dt, **kw):
        kw.setdefault("window", 502)
        out.append((t_us + dt, to_lb(L3(csrc, sdst) / TCP(sport=cport, dport=sport, **kw))))

    def s2c(dt, **kw):
        kw.setdefault("window", 509)
        out.append((t_us + dt, from_lb(L3(sdst, csrc) / TCP(sport=sport, dport=cport, **kw))))

    c2s(0, flags="S", seq=cseq, window=64240, options=syn_opts)
    s2c(rtt, flags="SA", seq=sseq, ack=(cseq + 1) % M, options=syn_opts)
    c2s(rtt + 150, flags="A", seq=(cseq + 1) % M, ack=(sseq + 1) % M)
    c2s(rtt + 400, flags="PA", seq=(cseq + 1) % M, ack=(sseq + 1) % M)
    out[-1] = (out[-1][0], out[-1][1] / Raw(req))
    s2c(2 * rtt + 900, flags="PA", seq=(sseq + 1) % M, ack=(cseq + 1 + len(req)) % M)
    out[-1] = (out[-1][0], out[-1][1] / Raw(resp))
    c2s(2 * rtt + 5000, flags="FA", seq=(cseq + 1 + len(req)) % M, ack=(sseq + 1 + len(resp)) % M)
    s2c(3 * rtt + 5200, flags="FA", seq=(sseq + 1 + len(resp)) % M, ack=(cseq + 2 + len(req)) % M)
    c2s(3 * rtt + 5350, flags="A", seq=(cseq + 2 + len(req)) % M, ack=(sseq + 2 + len(resp)) % M)
    return out


def build():
    rng = random.Random(SEED)
    frames = []

    # ARP for the frontend's address from the router.
    frames.append((T0_US, Ether(src=MAC_ROUTER, dst="ff:ff:ff:ff:ff:ff") /
                   ARP(op=1, hwsrc=MAC_ROUTER, psrc="10.0.0.1", pdst=VIP4)))
    frames.append((T0_US + 120, Ether(src=MAC_LB, dst=MAC_ROUTER) /
                   ARP(op=2, hwsrc=MAC_LB, psrc=VIP4, hwdst=MAC_ROUTER, pdst="10.0.0.1")))

    services = [(80, b"GET /index.html HTTP/1.1\r\nHost: app.internal\r\n\r\n",
                 b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
                (443, None, None), (22, b"SSH-2.0-OpenSSH_9.2\r\n", b"SSH-2.0-OpenSSH_9.6\r\n"),
                (8080, b"GET /health HTTP/1.1\r\nHost: api\r\n\r\n", b"HTTP/1.1 204 No Content\r\n\r\n"),
                (5432, None, None)]
    t = T0_US + 5_000
    for i in range(20):
        client = "192.168.%d.%d" % (rng.randrange(1, 4), rng.randrange(10, 250))
        port, req, resp = services[i % len(services)]
        if req is None:
            req, resp = rng.randbytes(rng.randrange(40, 300)), rng.randbytes(rng.randrange(100, 900))
        frames += tcp_conversation(rng, t, client, rng.randrange(49152, 65536), VIP4, port, req=req, resp=resp)
        t += rng.randrange(20_000, 400_000)

    # DNS-like UDP flows.
    t2 = T0_US + 50_000
    for i in range(12):
        client = "192.168.%d.%d" % (rng.randrange(1, 4), rng.randrange(10, 250))
        cport, qid = rng.randrange(49152, 65536), rng.randrange(65536)
        name = "svc%d.corp.example." % i
        q = DNS(id=qid, rd=1, qd=DNSQR(qname=name, qtype="A"))
        a = DNS(id=qid, qr=1, rd=1, ra=1, qd=DNSQR(qname=name, qtype="A"),
                an=DNSRR(rrname=name, type="A", ttl=300, rdata="172.16.%d.%d" % (i, rng.randrange(1, 255))))
        frames.append((t2, to_lb(IP(src=client, dst=VIP4, ttl=63, id=rng.randrange(65536)) /
                                 UDP(sport=cport, dport=53) / q)))
        frames.append((t2 + rng.randrange(300, 3000), from_lb(IP(src=VIP4, dst=client, id=rng.randrange(65536)) /
                                                                UDP(sport=53, dport=cport) / a)))
        t2 += rng.randrange(100_000, 700_000)

    # ICMP echo.
    t3 = T0_US + 200_000
    ident = 0x3a7c
    for seq in range(1, 4):
        payload = bytes(range(8, 64))
        frames.append((t3, to_lb(IP(src="192.168.1.50", dst=VIP4, ttl=63, id=0x1000 + seq) /
                                 ICMP(type=8, id=ident, seq=seq) / Raw(payload))))
        frames.append((t3 + 1_234, from_lb(IP(src=VIP4, dst="192.168.1.50", id=0x2000 + seq) /
                                           ICMP(type=0, id=ident, seq=seq) / Raw(payload))))
        t3 += 1_000_000

    # One IPv6 TCP connection to the IPv6 frontend.
    frames += tcp_conversation(rng, T0_US + 1_500_000, "2001:db8:100::10", 51515, VIP6, 443, v6=True,
                               req=rng.randbytes(220), resp=rng.randbytes(700))

    # One fragmented UDP datagram (3000 bytes of payload -> 3 fragments at MTU 1500).
    big = IP(src="192.168.2.77", dst=VIP4, ttl=63, id=0x5a5a) / UDP(sport=40514, dport=514) / \
        Raw((b"<134>sample syslog burst " * 130)[:3000])
    for j, fr in enumerate(fragment(big, fragsize=1480)):
        frames.append((T0_US + 2_500_000 + 40 * j, to_lb(fr)))

    frames.sort(key=lambda f: f[0])   # stable: equal timestamps keep build order
    return frames


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for t_us, pkt in frames:
            b = raw(pkt)
            f.write(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(b), len(b)))
            f.write(b)


def main(argv):
    out = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample.pcap")
    frames = build()
    write_pcap(out, frames)
    print("wrote %d packets to %s" % (len(frames), out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
