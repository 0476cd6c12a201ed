#!/usr/bin/env python3
"""Generate the differential-test packet corpus for `haports replay`.

Usage:  python3 test/diff/make_corpus.py OUTDIR

Writes into OUTDIR (created if missing):

  eth.pcap        Ethernet (linktype 1), classic pcap, microsecond timestamps.
                  Every hand-picked case: IPv4/IPv6 TCP/UDP/SCTP/ICMP, IPv4
                  options, IPv4 and IPv6 fragments, IPv6 extension headers
                  (hop-by-hop, routing type 0, segment routing, destination
                  options, AH, long chains), ICMP/ICMPv6 errors, GRE, ESP,
                  802.1Q / 802.1ad tagged frames, Ethernet padding, ARP and
                  other non-IP frames, and malformed packets for every drop
                  reason.
  rawip.pcap      Raw IP (linktype 101), classic pcap with *nanosecond*
                  timestamps (magic a1b23c4d): the IP-level hand-picked cases
                  again plus half of the random flows.
  flows.pcapng    pcapng, one Ethernet interface: the other half of the random
                  flows, some of them VLAN tagged.
  multi-if.pcapng pcapng with three interfaces of different link types
                  (1 Ethernet, 228 raw IPv4, 229 raw IPv6); packets interleaved.
  manifest.json   For every capture: format, link types, and per packet a label
                  and the drop reason the generator intended (null = the packet
                  is valid and should be forwarded / nomatch).  Labels are only
                  for humans reading test failures; the diff test takes its
                  expectations from tshark, not from this file.

Everything is deterministic: fixed seeds, fixed timestamps, fixed IP/fragment
IDs, and our own pcap/pcapng writer (no wall-clock or random fields), so two
runs produce byte-identical files.
"""
import json
import os
import random
import struct
import sys

from scapy.config import conf
conf.verb = 0
from scapy.compat import raw  # noqa: E402
from scapy.layers.l2 import ARP, Ether, GRE  # noqa: E402
from scapy.layers.inet import ICMP, IP, IPOption_RR, IPOption_Router_Alert, TCP, UDP, fragment  # noqa: E402
from scapy.layers.inet6 import (  # noqa: E402
    ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6PacketTooBig, ICMPv6ParamProblem,
    ICMPv6TimeExceeded, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting,
    IPv6ExtHdrSegmentRouting, PadN, RouterAlert, fragment6)
from scapy.layers.ipsec import AH, ESP  # noqa: E402
from scapy.layers.sctp import SCTP, SCTPChunkData, SCTPChunkInit  # noqa: E402
from scapy.packet import Raw  # noqa: E402

FE4 = "10.0.0.100"
FE6 = "fd00::100"
MAC_CLIENT = "02:00:5e:00:00:01"
MAC_LB = "02:00:5e:00:00:64"
BASE_TIME_NS = 1_700_000_000 * 10**9
SEED = 0x4A5C0DE

# ----------------------------------------------------------------------------
# pcap / pcapng writers (byte-exact and deterministic; scapy's writers stamp
# packets with the wall clock unless told otherwise and cannot write
# caplen < origlen records).
# ----------------------------------------------------------------------------


class Record:
    __slots__ = ("data", "orig_len", "ts_ns", "iface", "label", "reason")

    def __init__(self, data, label, reason=None, orig_len=None, iface=0):
        self.data = bytes(data)
        self.orig_len = len(self.data) if orig_len is None else orig_len
        self.label = label
        self.reason = reason
        self.iface = iface
        self.ts_ns = 0


def write_pcap(path, linktype, records, nano=False):
    with open(path, "wb") as f:
        magic = 0xA1B23C4D if nano else 0xA1B2C3D4
        f.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 262144, linktype))
        for r in records:
            sec, frac = divmod(r.ts_ns, 10**9)
            if not nano:
                frac //= 1000
            f.write(struct.pack("<IIII", sec, frac, len(r.data), r.orig_len))
            f.write(r.data)


def _pad4(b):
    return b + b"\0" * (-len(b) % 4)


def _block(btype, body):
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def _opt(code, value):
    return struct.pack("<HH", code, len(value)) + _pad4(value)


def write_pcapng(path, linktypes, records):
    with open(path, "wb") as f:
        shb_opts = _opt(4, b"haports test/diff/make_corpus.py") + _opt(0, b"")  # shb_userappl, opt_endofopt
        f.write(_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + shb_opts))
        for lt in linktypes:
            # if_tsresol = 9 (nanoseconds) so readers must honour the option.
            idb_opts = _opt(9, bytes([9])) + _opt(0, b"")
            f.write(_block(1, struct.pack("<HHI", lt, 0, 262144) + idb_opts))
        for r in records:
            ts = r.ts_ns
            body = struct.pack("<IIIII", r.iface, ts >> 32, ts & 0xFFFFFFFF, len(r.data), r.orig_len)
            f.write(_block(6, body + _pad4(r.data)))
        # An Interface Statistics Block at the end: readers must skip it.
        f.write(_block(5, struct.pack("<III", 0, 0, 0) + _opt(0, b"")))


# ----------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------

def eth(l3, vlans=(), src=MAC_CLIENT, dst=MAC_LB):
    """Wrap an IP packet (scapy or bytes) in Ethernet with optional tags.

    vlans: sequence of (tpid, vid), outermost first."""
    b = raw(l3) if not isinstance(l3, (bytes, bytearray)) else bytes(l3)
    if isinstance(l3, (bytes, bytearray)):
        etype = 0x0800 if (b[0] >> 4) == 4 else 0x86DD
    else:
        etype = 0x0800 if isinstance(l3, IP) else 0x86DD
    return eth_raw(b, etype, vlans, src, dst)


def eth_raw(payload, etype, vlans=(), src=MAC_CLIENT, dst=MAC_LB):
    hdr = bytes.fromhex(dst.replace(":", "")) + bytes.fromhex(src.replace(":", ""))
    for tpid, vid in vlans:
        hdr += struct.pack("!HH", tpid, vid & 0xFFF)
    return hdr + struct.pack("!H", etype) + bytes(payload)


def quoted(pkt, n=None):
    """Bytes of `pkt` as an ICMP error would quote them (first n bytes)."""
    b = raw(pkt)
    return b if n is None else b[:n]


def set_u16(b, off, v):
    b = bytearray(b)
    b[off:off + 2] = struct.pack("!H", v)
    return bytes(b)


# ----------------------------------------------------------------------------
# Hand-picked cases.  Each returns a list of (label, ip_bytes, reason).
# ----------------------------------------------------------------------------

def ip_cases():
    C = []

    def add(label, pkt, reason=None):
        C.append((label, raw(pkt) if not isinstance(pkt, bytes) else pkt, reason))

    # ---- IPv4 basics
    add("v4-tcp-syn", IP(src="198.51.100.10", dst=FE4, id=101) / TCP(sport=40001, dport=443, flags="S", seq=1000,
        options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)]))
    add("v4-tcp-data", IP(src="198.51.100.10", dst=FE4, id=102) / TCP(sport=40001, dport=443, flags="PA", seq=1001,
        ack=5001) / Raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    add("v4-udp", IP(src="203.0.113.7", dst=FE4, id=103) / UDP(sport=53000, dport=4789) / Raw(b"\x00" * 16))
    add("v4-udp-port0", IP(src="203.0.113.8", dst=FE4, id=104) / UDP(sport=0, dport=0) / Raw(b"zero ports"))
    add("v4-sctp-init", IP(src="192.0.2.33", dst=FE4, id=105) / SCTP(sport=5000, dport=38412) /
        SCTPChunkInit(init_tag=0x1234, a_rwnd=65535, n_out_streams=2, n_in_streams=2, init_tsn=1))
    add("v4-sctp-data", IP(src="192.0.2.33", dst=FE4, id=106) / SCTP(sport=5000, dport=38412, tag=0x1234) /
        SCTPChunkData(tsn=1, stream_id=0, stream_seq=0, proto_id=60, data=b"ngap"))
    add("v4-icmp-echo-request", IP(src="192.168.7.9", dst=FE4, id=107) / ICMP(type=8, id=0x4242, seq=1) / Raw(b"ping" * 8))
    add("v4-icmp-echo-reply", IP(src="192.168.7.9", dst=FE4, id=108) / ICMP(type=0, id=0x4243, seq=7) / Raw(b"pong" * 8))
    # ---- IPv4 options (IHL > 5)
    add("v4-options-rr-tcp", IP(src="198.51.100.11", dst=FE4, id=109, options=[IPOption_RR(routers=["0.0.0.0"] * 3)]) /
        TCP(sport=40002, dport=22, flags="S"))
    add("v4-options-ra-udp", IP(src="198.51.100.12", dst=FE4, id=110, options=[IPOption_Router_Alert()]) /
        UDP(sport=1812, dport=1813) / Raw(b"radius"))
    add("v4-options-max-ihl15", IP(src="198.51.100.13", dst=FE4, id=111,
        options=[IPOption_RR(routers=["0.0.0.0"] * 9)]) / UDP(sport=7, dport=7))
    # ---- IPv4 fragments
    big_udp = IP(src="198.51.100.20", dst=FE4, id=0x2001) / UDP(sport=5004, dport=5005) / Raw(bytes(range(256)) * 4)
    for i, fr in enumerate(fragment(big_udp, fragsize=400)):
        add("v4-frag-udp-%s" % ("first" if i == 0 else "later%d" % i), fr)
    big_tcp = IP(src="198.51.100.21", dst=FE4, id=0x2002) / TCP(sport=40003, dport=8080, flags="PA") / Raw(b"T" * 600)
    for i, fr in enumerate(fragment(big_tcp, fragsize=256)):
        add("v4-frag-tcp-%s" % ("first" if i == 0 else "later%d" % i), fr)
    big_sctp = IP(src="198.51.100.22", dst=FE4, id=0x2003) / SCTP(sport=2905, dport=2905) / \
        SCTPChunkData(tsn=9, data=b"S" * 300)
    for i, fr in enumerate(fragment(big_sctp, fragsize=200)):
        add("v4-frag-sctp-%s" % ("first" if i == 0 else "later%d" % i), fr)
    # ---- IPv4 ICMP errors (quoting a packet the frontend sent)
    q_tcp = IP(src=FE4, dst="198.51.100.30", id=0x3001, ttl=1) / TCP(sport=443, dport=40010, flags="SA", seq=77, ack=1)
    q_udp = IP(src=FE4, dst="198.51.100.31", id=0x3002, ttl=1) / UDP(sport=53, dport=40011) / Raw(b"answer" * 10)
    add("v4-icmp-unreach-port-udp", IP(src="198.51.100.31", dst=FE4, id=112) / ICMP(type=3, code=3) / quoted(q_udp, 28))
    add("v4-icmp-unreach-fragneeded-tcp", IP(src="192.0.2.1", dst=FE4, id=113) / ICMP(type=3, code=4, nexthopmtu=1400) /
        quoted(q_tcp, 28))
    add("v4-icmp-unreach-host-tcp-full", IP(src="192.0.2.2", dst=FE4, id=114) / ICMP(type=3, code=1) / quoted(q_tcp))
    add("v4-icmp-timeexceeded-tcp", IP(src="192.0.2.3", dst=FE4, id=115) / ICMP(type=11, code=0) / quoted(q_tcp, 28))
    add("v4-icmp-timeexceeded-udp-long", IP(src="192.0.2.4", dst=FE4, id=116) / ICMP(type=11, code=0) / quoted(q_udp, 64))
    add("v4-icmp-paramproblem-udp", IP(src="192.0.2.5", dst=FE4, id=117) / ICMP(type=12, code=0, ptr=8) / quoted(q_udp, 28))
    # ---- IPv4 portless protocols
    add("v4-gre-ip", IP(src="192.0.2.40", dst=FE4, id=118) / GRE() /
        IP(src="172.16.1.1", dst="172.16.2.2") / UDP(sport=1111, dport=2222))
    add("v4-gre-keyed", IP(src="192.0.2.41", dst=FE4, id=119) / GRE(key_present=1, key=42, proto=0x6558) /
        Raw(bytes(Ether(src=MAC_CLIENT, dst=MAC_LB) / IP(src="172.16.1.1", dst="172.16.2.2") / ICMP())))
    add("v4-esp", IP(src="192.0.2.42", dst=FE4, id=120) / ESP(spi=0x1001, seq=1, data=b"\xee" * 32))
    add("v4-ah-tcp", IP(src="192.0.2.43", dst=FE4, id=121) / AH(nh=6, payloadlen=4, spi=0x2001, seq=1, icv=b"\xaa" * 12) /
        TCP(sport=40004, dport=179, flags="S"))
    add("v4-proto-ospf", IP(src="192.0.2.44", dst=FE4, id=122, proto=89) / Raw(b"\x02\x01\x00\x2c" + b"\x00" * 40))
    # ---- IPv4 nomatch (not a frontend)
    add("v4-nomatch-tcp", IP(src="198.51.100.50", dst="10.0.0.200", id=123) / TCP(sport=40005, dport=443, flags="S"))
    add("v4-nomatch-udp", IP(src="198.51.100.51", dst="8.8.8.8", id=124) / UDP(sport=40006, dport=53) / Raw(b"q" * 12))
    add("v4-nomatch-from-frontend", IP(src=FE4, dst="198.51.100.10", id=125) / TCP(sport=443, dport=40001, flags="SA"))

    # ---- IPv6 basics
    add("v6-tcp-syn", IPv6(src="2001:db8:0:1::10", dst=FE6) / TCP(sport=40101, dport=443, flags="S",
        options=[("MSS", 1440), ("SAckOK", b""), ("WScale", 8)]))
    add("v6-udp", IPv6(src="2001:db8:0:0:1:0:0:1", dst=FE6) / UDP(sport=546, dport=547) / Raw(b"dhcpv6"))
    add("v6-sctp", IPv6(src="2001:db8::1:0:0:2", dst=FE6) / SCTP(sport=3868, dport=3868) /
        SCTPChunkInit(init_tag=7, a_rwnd=1000, n_out_streams=1, n_in_streams=1, init_tsn=3))
    add("v6-icmpv6-echo-request", IPv6(src="2001:db8:aaaa:bbbb:cccc:dddd:eeee:1", dst=FE6) /
        ICMPv6EchoRequest(id=0x77, seq=1, data=b"ping6"))
    add("v6-icmpv6-echo-reply", IPv6(src="2001:db8:0:0:1::3", dst=FE6) / ICMPv6EchoReply(id=0x78, seq=2, data=b"pong6"))
    add("v6-linklocal-src", IPv6(src="fe80::1", dst=FE6) / UDP(sport=5353, dport=5353) / Raw(b"mdns"))
    add("v6-v4mapped-src", IPv6(src="::ffff:198.51.100.1", dst=FE6) / TCP(sport=1, dport=2, flags="S"))
    # ---- IPv6 extension headers
    add("v6-hbh-udp", IPv6(src="2001:db8::20", dst=FE6) / IPv6ExtHdrHopByHop(options=[RouterAlert()]) /
        UDP(sport=4000, dport=4001) / Raw(b"hbh"))
    add("v6-hbh-jumbo-padn-tcp", IPv6(src="2001:db8::21", dst=FE6) / IPv6ExtHdrHopByHop(options=[PadN(optdata=b"\0" * 12)]) /
        TCP(sport=4002, dport=4003, flags="S"))
    add("v6-rh0-tcp", IPv6(src="2001:db8::22", dst=FE6) / IPv6ExtHdrRouting(type=0, segleft=1, addresses=["2001:db8:ffff::1"]) /
        TCP(sport=4004, dport=80, flags="S"))
    add("v6-srh-tcp", IPv6(src="2001:db8::23", dst=FE6) /
        IPv6ExtHdrSegmentRouting(addresses=["2001:db8:ffff::2", FE6], segleft=1) / TCP(sport=4005, dport=80, flags="S"))
    add("v6-srh-udp-3seg", IPv6(src="2001:db8::24", dst=FE6) /
        IPv6ExtHdrSegmentRouting(addresses=["2001:db8:ffff::3", "2001:db8:ffff::4", FE6], segleft=2) /
        UDP(sport=4006, dport=4007) / Raw(b"sr"))
    add("v6-dstopt-udp", IPv6(src="2001:db8::25", dst=FE6) / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0" * 4)]) /
        UDP(sport=4008, dport=4009))
    add("v6-chain-hbh-dst-rh-dst-tcp", IPv6(src="2001:db8::26", dst=FE6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() /
        IPv6ExtHdrRouting(type=0, segleft=0, addresses=["2001:db8:ffff::5"]) / IPv6ExtHdrDestOpt() /
        TCP(sport=4010, dport=4011, flags="S"))
    add("v6-ah-tcp", IPv6(src="2001:db8::27", dst=FE6) / AH(nh=6, payloadlen=4, spi=0x3001, seq=1, icv=b"\xbb" * 12) /
        TCP(sport=4012, dport=179, flags="S"))
    add("v6-hbh-ah-udp", IPv6(src="2001:db8::28", dst=FE6) / IPv6ExtHdrHopByHop() /
        AH(nh=17, payloadlen=4, spi=0x3002, seq=2, icv=b"\xcc" * 12) / UDP(sport=4013, dport=4014))
    chain8 = IPv6(src="2001:db8::29", dst=FE6)
    for _ in range(8):
        chain8 = chain8 / IPv6ExtHdrDestOpt()
    add("v6-chain-8-dstopts-udp", chain8 / UDP(sport=4015, dport=4016))
    add("v6-dstopt-nonext", IPv6(src="2001:db8::2a", dst=FE6) / IPv6ExtHdrDestOpt(nh=59))
    add("v6-hbh-icmpv6-echo", IPv6(src="2001:db8::2b", dst=FE6) / IPv6ExtHdrHopByHop() / ICMPv6EchoRequest(id=9, seq=9))
    # ---- IPv6 fragments
    big6 = IPv6(src="2001:db8::30", dst=FE6) / IPv6ExtHdrFragment(id=0xF00D0001) / UDP(sport=5006, dport=5007) / \
        Raw(bytes(range(256)) * 4)
    for i, fr in enumerate(fragment6(big6, 500)):
        add("v6-frag-udp-%s" % ("first" if i == 0 else "later%d" % i), fr)
    big6t = IPv6(src="2001:db8::31", dst=FE6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment(id=0xF00D0002) / \
        TCP(sport=4017, dport=4018, flags="PA") / Raw(b"t" * 400)
    for i, fr in enumerate(fragment6(big6t, 300)):
        add("v6-hbh-frag-tcp-%s" % ("first" if i == 0 else "later%d" % i), fr)
    add("v6-atomic-fragment-udp", IPv6(src="2001:db8::32", dst=FE6) / IPv6ExtHdrFragment(id=0xF00D0003, m=0, offset=0) /
        UDP(sport=5008, dport=5009) / Raw(b"atomic"))
    # ---- ICMPv6 errors
    q6_tcp = IPv6(src=FE6, dst="2001:db8:1::40", hlim=1) / TCP(sport=443, dport=40110, flags="SA")
    q6_udp = IPv6(src=FE6, dst="2001:db8:1::41", hlim=1) / UDP(sport=53, dport=40111) / Raw(b"r" * 40)
    add("v6-icmpv6-ptb-tcp", IPv6(src="2001:db8:2::1", dst=FE6) / ICMPv6PacketTooBig(mtu=1280) / quoted(q6_tcp))
    add("v6-icmpv6-unreach-udp", IPv6(src="2001:db8:2::2", dst=FE6) / ICMPv6DestUnreach(code=4) / quoted(q6_udp))
    add("v6-icmpv6-unreach-tcp-48", IPv6(src="2001:db8:2::3", dst=FE6) / ICMPv6DestUnreach(code=1) / quoted(q6_tcp, 48))
    add("v6-icmpv6-timeexceeded-tcp", IPv6(src="2001:db8:2::4", dst=FE6) / ICMPv6TimeExceeded(code=0) / quoted(q6_tcp))
    add("v6-icmpv6-timeexceeded-udp", IPv6(src="2001:db8:2::5", dst=FE6) / ICMPv6TimeExceeded(code=0) / quoted(q6_udp))
    add("v6-icmpv6-paramproblem-udp", IPv6(src="2001:db8:2::6", dst=FE6) / ICMPv6ParamProblem(code=0, ptr=6) / quoted(q6_udp))
    # ---- IPv6 portless / nomatch
    add("v6-gre", IPv6(src="2001:db8::50", dst=FE6) / GRE() / IP(src="172.16.1.1", dst="172.16.2.2") / UDP(sport=1, dport=2))
    add("v6-esp", IPv6(src="2001:db8::51", dst=FE6) / ESP(spi=0x4001, seq=5, data=b"\xee" * 24))
    add("v6-nomatch-tcp", IPv6(src="2001:db8::52", dst="2001:db8::dead:beef") / TCP(sport=4019, dport=443, flags="S"))
    add("v6-nomatch-from-frontend", IPv6(src=FE6, dst="2001:db8::52") / TCP(sport=443, dport=4019, flags="SA"))

    # ---- malformed: one or more per drop reason
    tcp4 = raw(IP(src="198.51.100.60", dst=FE4, id=130) / TCP(sport=40020, dport=443, flags="PA") / Raw(b"x" * 40))
    add("bad-v4-header-cut-12", tcp4[:12], "truncated")
    add("bad-v4-totlen-exceeds-capture", tcp4[:44], "truncated")
    add("bad-v4-totlen-exceeds-by-1", tcp4[:-1], "truncated")
    udp6 = raw(IPv6(src="2001:db8::60", dst=FE6) / UDP(sport=40021, dport=53) / Raw(b"y" * 40))
    add("bad-v6-header-cut-30", udp6[:30], "truncated")
    add("bad-v6-plen-exceeds-capture", udp6[:60], "truncated")
    b = bytearray(raw(IP(src="198.51.100.61", dst=FE4, id=131) / UDP(sport=1, dport=2)))
    b[0] = 0x44  # IHL 4
    add("bad-v4-ihl-4", bytes(b), "bad-ip-header")
    add("bad-v4-totlen-lt-ihl", set_u16(raw(IP(src="198.51.100.62", dst=FE4, id=132) / UDP(sport=1, dport=2)), 2, 16),
        "bad-ip-header")
    add("bad-v4-options-totlen-lt-ihl", set_u16(raw(IP(src="198.51.100.63", dst=FE4, id=133,
        options=[IPOption_RR(routers=["0.0.0.0"] * 3)]) / UDP(sport=1, dport=2)), 2, 28), "bad-ip-header")
    add("bad-tcp-cut-10", IP(src="198.51.100.64", dst=FE4, id=134, proto=6) / raw(TCP(sport=40022, dport=443))[:10],
        "truncated-l4")
    add("bad-tcp-doff-beyond-packet", IP(src="198.51.100.65", dst=FE4, id=135) / TCP(sport=40023, dport=443, dataofs=10,
        flags="S"), "truncated-l4")
    add("bad-tcp-doff-4", IP(src="198.51.100.66", dst=FE4, id=136) / TCP(sport=40024, dport=443, dataofs=4, flags="S"),
        "bad-l4-header")
    add("bad-v6-tcp-cut-12", IPv6(src="2001:db8::61", dst=FE6, nh=6) / raw(TCP(sport=40025, dport=443))[:12],
        "truncated-l4")
    add("bad-v6-tcp-doff-0", IPv6(src="2001:db8::62", dst=FE6) / TCP(sport=40026, dport=443, dataofs=0), "bad-l4-header")
    add("bad-udp-cut-4", IP(src="198.51.100.67", dst=FE4, id=137, proto=17) / raw(UDP(sport=40027, dport=53))[:4],
        "truncated-l4")
    add("bad-v6-udp-cut-6", IPv6(src="2001:db8::63", dst=FE6, nh=17) / raw(UDP(sport=40028, dport=53))[:6],
        "truncated-l4")
    add("bad-sctp-cut-8", IP(src="198.51.100.68", dst=FE4, id=138, proto=132) / raw(SCTP(sport=5000, dport=5000))[:8],
        "truncated-l4")
    add("bad-icmp-cut-4", IP(src="198.51.100.69", dst=FE4, id=139, proto=1) / raw(ICMP(type=8, id=1))[:4],
        "truncated-l4")
    add("bad-icmpv6-cut-4", raw(IPv6(src="2001:db8::64", dst=FE6, plen=4) / ICMPv6EchoRequest(id=1))[:44],
        "truncated-l4")
    add("bad-v6-frag-first-tcp-cut", IPv6(src="2001:db8::65", dst=FE6) / IPv6ExtHdrFragment(id=0xF00D0004, m=1, nh=6) /
        raw(TCP(sport=40029, dport=443))[:8], "truncated-l4")
    chain9 = IPv6(src="2001:db8::66", dst=FE6)
    for _ in range(9):
        chain9 = chain9 / IPv6ExtHdrDestOpt()
    add("bad-v6-chain-9-dstopts", chain9 / UDP(sport=40030, dport=53), "ext-header-chain")
    # Hop-by-hop header claiming 8*(1+20) bytes, packet (and payload length) only 16 bytes past the header.
    hbh = bytearray(raw(IPv6ExtHdrHopByHop(nh=17, options=[PadN(optdata=b"\0" * 4)])))
    hbh[1] = 20
    add("bad-v6-hbh-runs-past-packet", IPv6(src="2001:db8::67", dst=FE6, nh=0) / (bytes(hbh) + b"\0" * 8),
        "ext-header-chain")
    add("bad-v6-rh-runs-past-packet", IPv6(src="2001:db8::68", dst=FE6, nh=43) / bytes([6, 10, 0, 0, 0, 0, 0, 0]),
        "ext-header-chain")
    add("bad-icmp-error-quote-cut-10", IP(src="198.51.100.70", dst=FE4, id=140) / ICMP(type=3, code=1) /
        quoted(q_tcp, 10), "bad-icmp-error")
    add("bad-icmp-error-quote-empty", IP(src="198.51.100.71", dst=FE4, id=141) / ICMP(type=11, code=0), "bad-icmp-error")
    add("bad-icmp-error-quote-v6-in-v4", IP(src="198.51.100.72", dst=FE4, id=142) / ICMP(type=3, code=3) /
        quoted(q6_udp, 48), "bad-icmp-error")
    add("bad-icmpv6-error-quote-cut-20", IPv6(src="2001:db8::69", dst=FE6) / ICMPv6TimeExceeded() / quoted(q6_udp, 20),
        "bad-icmp-error")
    add("bad-icmpv6-error-quote-v4-in-v6", IPv6(src="2001:db8::6a", dst=FE6) / ICMPv6DestUnreach(code=4) /
        quoted(q_udp, 28), "bad-icmp-error")
    return C


def l2_cases():
    """Ethernet-only cases: (label, frame_bytes, reason, orig_len)."""
    C = []
    syn4 = IP(src="198.51.100.80", dst=FE4, id=150) / TCP(sport=40040, dport=443, flags="S")
    udp6 = IPv6(src="2001:db8::80", dst=FE6) / UDP(sport=40041, dport=53) / Raw(b"v" * 20)
    C.append(("eth-vlan-8021q-v4-tcp", eth(syn4, vlans=[(0x8100, 100)]), None, None))
    C.append(("eth-vlan-8021q-prio-v6-udp", eth(udp6, vlans=[(0x8100, (5 << 13) | 200)]), None, None))
    C.append(("eth-qinq-8021ad-8021q-v4-udp", eth(IP(src="198.51.100.81", dst=FE4, id=151) / UDP(sport=40042, dport=4500),
                                                 vlans=[(0x88A8, 10), (0x8100, 20)]), None, None))
    C.append(("eth-qinq-8021q-8021q-v6-tcp", eth(IPv6(src="2001:db8::81", dst=FE6) / TCP(sport=40043, dport=80, flags="S"),
                                                vlans=[(0x8100, 30), (0x8100, 40)]), None, None))
    C.append(("eth-vlan-arp", eth_raw(raw(ARP(op=1, hwsrc=MAC_CLIENT, psrc="10.0.0.9", pdst=FE4)), 0x0806,
                                      vlans=[(0x8100, 100)]), "not-ip", None))
    small = IP(src="198.51.100.82", dst=FE4, id=152) / UDP(sport=40044, dport=7) / Raw(b"hi")
    frame = eth(small)
    C.append(("eth-padded-to-60", frame + b"\0" * (60 - len(frame)), None, None))
    C.append(("eth-padded-vlan-to-64", eth(small, vlans=[(0x8100, 7)]) + b"\xa5" * 18, None, None))
    C.append(("arp-request", raw(Ether(src=MAC_CLIENT, dst="ff:ff:ff:ff:ff:ff") /
                                 ARP(op=1, hwsrc=MAC_CLIENT, psrc="10.0.0.9", pdst=FE4)), "not-ip", None))
    C.append(("arp-reply", raw(Ether(src=MAC_LB, dst=MAC_CLIENT) /
                               ARP(op=2, hwsrc=MAC_LB, psrc=FE4, hwdst=MAC_CLIENT, pdst="10.0.0.9")), "not-ip", None))
    C.append(("eth-lldp", eth_raw(bytes.fromhex("020704") + b"\x02\x00\x5e\x00\x00\x01" + b"\x04\x03\x05ab\x06\x02\x00x"
                                  + b"\0\0", 0x88CC, dst="01:80:c2:00:00:0e"), "not-ip", None))
    # 802.3 length field + LLC (a spanning-tree BPDU): no ethertype at all.
    bpdu = bytes.fromhex("424203") + bytes.fromhex("0000000080000200005e000001000000008000020000" "5e0000018001"
                                                   "0000140002000f00")
    C.append(("eth-8023-llc-stp", bytes.fromhex("0180c2000000") + bytes.fromhex(MAC_CLIENT.replace(":", "")) +
              struct.pack("!H", len(bpdu)) + bpdu + b"\0" * 8, "not-ip", None))
    C.append(("eth-ipx-like-0x8137", eth_raw(b"\xff\xff" + b"\0" * 40, 0x8137), "not-ip", None))
    C.append(("eth-ethertype-v4-carrying-v6", eth_raw(raw(udp6), 0x0800), "bad-ip-version", None))
    C.append(("eth-ethertype-v6-carrying-v4", eth_raw(raw(syn4), 0x86DD), "bad-ip-version", None))
    # snaplen-style truncation: the record says the wire frame was longer than what was captured.
    full = eth(IP(src="198.51.100.83", dst=FE4, id=153) / TCP(sport=40045, dport=443, flags="PA") / Raw(b"s" * 200))
    C.append(("eth-snaplen-cut-tcp-payload", full[:96], "truncated", len(full)))
    C.append(("eth-snaplen-cut-in-ip-header", full[:24], "truncated", len(full)))
    C.append(("eth-frame-cut-in-vlan-tag", eth(syn4, vlans=[(0x8100, 100)])[:16], "truncated", None))
    return C


# ----------------------------------------------------------------------------
# Random flows
# ----------------------------------------------------------------------------

class RandomFlows:
    def __init__(self, seed):
        self.r = random.Random(seed)

    def v4_addr(self):
        r = self.r
        k = r.random()
        if k < 0.3:
            return "192.168.%d.%d" % (r.randrange(256), r.randrange(1, 255))
        if k < 0.45:
            return "172.%d.%d.%d" % (r.randrange(16, 32), r.randrange(256), r.randrange(1, 255))
        if k < 0.55:
            return "10.%d.%d.%d" % (r.randrange(1, 256), r.randrange(256), r.randrange(1, 255))
        while True:
            a = r.randrange(1, 224)
            if a not in (10, 127):
                return "%d.%d.%d.%d" % (a, r.randrange(256), r.randrange(256), r.randrange(256))

    def v6_addr(self):
        r = self.r
        k = r.random()
        if k < 0.05:
            return "::ffff:%d.%d.%d.%d" % tuple(r.randrange(256) for _ in range(4))
        if k < 0.1:
            return "fe80::%x:%x" % (r.randrange(65536), r.randrange(65536))
        # Lots of zero groups at random places to exercise RFC 5952 compression
        # (longest run wins, first run on ties, no "::" for a single group).
        groups = [0x2001, 0x0DB8] + [0 if r.random() < 0.45 else r.choice([r.randrange(1, 16), r.randrange(65536)])
                                     for _ in range(6)]
        if r.random() < 0.3:
            groups[0] = r.choice([0x2400, 0x2a00, 0xfd12, 0x2607])
            groups[1] = r.randrange(65536)
        return ":".join("%x" % g for g in groups)

    def port(self):
        r = self.r
        k = r.random()
        if k < 0.05:
            return 0
        if k < 0.3:
            return r.choice([22, 53, 80, 123, 443, 500, 1812, 3389, 4500, 8080, 65535])
        return r.randrange(1, 65536)

    def payload(self, maxlen=48):
        return Raw(self.r.randbytes(self.r.randrange(0, maxlen)))

    def flow(self, fid):
        """Return [(label, ip_bytes)] for one random flow."""
        r = self.r
        v6 = r.random() < 0.35
        src = self.v6_addr() if v6 else self.v4_addr()
        to_fe = r.random() < 0.85
        dst = (FE6 if v6 else FE4) if to_fe else (self.v6_addr() if v6 else self.v4_addr())
        IPc = (lambda s, d, **kw: IPv6(src=s, dst=d, hlim=r.randrange(1, 256), tc=r.randrange(256),
                                       fl=r.randrange(1 << 20))) if v6 else \
              (lambda s, d, **kw: IP(src=s, dst=d, id=r.randrange(65536), ttl=r.randrange(1, 256),
                                     tos=r.randrange(256), flags=r.choice([0, 2])))
        k = r.random()
        kind = ("tcp" if k < 0.38 else "udp" if k < 0.68 else "icmp" if k < 0.78 else "sctp" if k < 0.85
                else "gre" if k < 0.89 else "esp" if k < 0.93 else "other" if k < 0.96 else "frag")
        sp, dp = self.port(), self.port()
        label = "rand-%03d-%s-%s" % (fid, "v6" if v6 else "v4", kind)
        out = []

        def ext(p):
            # Sometimes prepend extension headers on IPv6.
            if v6 and r.random() < 0.15:
                e = r.choice([IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt(),
                              IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt(),
                              IPv6ExtHdrRouting(type=0, segleft=0, addresses=[self.v6_addr()])])
                return e / p
            return p

        n = r.randrange(1, 4)
        if kind == "tcp":
            flags = ["S", "SA", "A", "PA", "FA", "R"]
            for i in range(n):
                fwd = i != 1
                s, d, a, b = (src, dst, sp, dp) if fwd else (dst, src, dp, sp)
                opts = []
                if r.random() < 0.3:
                    opts = [("MSS", r.randrange(536, 9000)), ("NOP", None), ("WScale", r.randrange(15))]
                out.append(IPc(s, d) / ext(TCP(sport=a, dport=b, flags=flags[i] if i < 3 else r.choice(flags),
                                               seq=r.randrange(1 << 32), ack=r.randrange(1 << 32),
                                               window=r.randrange(65536), options=opts) / self.payload()))
        elif kind == "udp":
            for i in range(n):
                fwd = i != 1
                s, d, a, b = (src, dst, sp, dp) if fwd else (dst, src, dp, sp)
                out.append(IPc(s, d) / ext(UDP(sport=a, dport=b) / self.payload(200)))
        elif kind == "icmp":
            ident = r.randrange(65536)
            for i in range(n):
                fwd = i != 1
                s, d = (src, dst) if fwd else (dst, src)
                if v6:
                    m = (ICMPv6EchoRequest if fwd else ICMPv6EchoReply)(id=ident, seq=i, data=r.randbytes(16))
                else:
                    m = ICMP(type=8 if fwd else 0, id=ident, seq=i) / Raw(r.randbytes(16))
                out.append(IPc(s, d) / ext(m))
        elif kind == "sctp":
            tag = r.randrange(1 << 32)
            for i in range(n):
                out.append(IPc(src, dst) / ext(SCTP(sport=sp, dport=dp, tag=tag) /
                                               SCTPChunkData(tsn=i, data=r.randbytes(r.randrange(1, 40)))))
        elif kind == "gre":
            inner = IP(src=self.v4_addr(), dst=self.v4_addr()) / UDP(sport=sp, dport=dp)
            out.append(IPc(src, dst) / ext(GRE() / inner))
        elif kind == "esp":
            spi = r.randrange(1, 1 << 32)
            for i in range(n):
                out.append(IPc(src, dst) / ext(ESP(spi=spi, seq=i + 1, data=r.randbytes(r.randrange(16, 64)))))
        elif kind == "other":
            proto = r.choice([2, 4, 41, 89, 103, 112, 115, 136, 253])
            if proto in (4, 41):
                proto = 112  # avoid IP-in-IP: tshark would decode an inner header out of random bytes
            if v6:
                out.append(IPv6(src=src, dst=dst, nh=proto) / self.payload(60))
            else:
                out.append(IP(src=src, dst=dst, proto=proto, id=r.randrange(65536)) / self.payload(60))
        else:  # frag
            body = UDP(sport=sp, dport=dp) / Raw(r.randbytes(r.randrange(300, 900)))
            if v6:
                frags = fragment6(IPv6(src=src, dst=dst) / IPv6ExtHdrFragment(id=r.randrange(1 << 32)) / body,
                                  r.choice([200, 280, 400]))
            else:
                frags = fragment(IP(src=src, dst=dst, id=r.randrange(65536)) / body, fragsize=r.choice([128, 256, 376]))
            if r.random() < 0.3:
                frags = list(reversed(frags))
            out.extend(frags)
        return [(label, raw(p)) for p in out]


# ----------------------------------------------------------------------------

def stamp(records, start_ns=BASE_TIME_NS, step_ns=1_250_321):
    for i, r in enumerate(records):
        r.ts_ns = start_ns + i * step_ns
    return records


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: make_corpus.py OUTDIR\n")
        return 2
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)
    manifest = {}

    def note(name, fmt, linktypes, records):
        manifest[name] = {
            "format": fmt, "linktypes": linktypes,
            "packets": [{"label": r.label, "reason": r.reason, **({"iface": r.iface} if len(linktypes) > 1 else {})}
                        for r in records]}

    cases = ip_cases()
    l2 = l2_cases()

    # eth.pcap: all IP cases in Ethernet (every 9th one VLAN tagged) + L2 cases.
    recs = []
    for i, (label, b, reason) in enumerate(cases):
        if i % 9 == 4:
            recs.append(Record(eth(b, vlans=[(0x8100, 100 + i)]), label + "@vlan", reason))
        else:
            recs.append(Record(eth(b), label, reason))
    for label, frame, reason, orig in l2:
        recs.append(Record(frame, label, reason, orig_len=orig))
    write_pcap(os.path.join(outdir, "eth.pcap"), 1, stamp(recs))
    note("eth.pcap", "pcap", [1], recs)

    # random flows
    rf = RandomFlows(SEED)
    flows = [rf.flow(i) for i in range(500)]
    order = random.Random(SEED + 1)

    def interleave(flow_list):
        # Interleave packets of several flows, keeping each flow's own order.
        queues = [list(f) for f in flow_list]
        out = []
        while queues:
            q = order.choice(queues)
            out.append(q.pop(0))
            if not q:
                queues.remove(q)
        return out

    # rawip.pcap: IP cases + first half of random flows, nanosecond pcap.
    recs = [Record(b, label, reason) for label, b, reason in cases]
    # On a raw-IP link the version nibble selects v4/v6; anything else is bad.
    v4b = raw(IP(src="198.51.100.91", dst=FE4, id=161) / UDP(sport=1, dport=2))
    recs.append(Record(bytes([0x50 | (v4b[0] & 0xF)]) + v4b[1:], "raw-ip-version-5", "bad-ip-version"))
    recs.append(Record(bytes([0x05]) + v4b[1:], "raw-ip-version-0", "bad-ip-version"))
    recs += [Record(b, label) for label, b in interleave(flows[:250])]
    write_pcap(os.path.join(outdir, "rawip.pcap"), 101, stamp(recs), nano=True)
    note("rawip.pcap", "pcap", [101], recs)

    # flows.pcapng: second half of random flows in Ethernet, ~1/6 VLAN tagged.
    recs = []
    for label, b in interleave(flows[250:]):
        if order.random() < 1 / 6:
            recs.append(Record(eth(b, vlans=[(0x8100, order.randrange(1, 4095))]), label + "@vlan"))
        else:
            recs.append(Record(eth(b), label))
    write_pcapng(os.path.join(outdir, "flows.pcapng"), [1], stamp(recs))
    note("flows.pcapng", "pcapng", [1], recs)

    # multi-if.pcapng: iface 0 Ethernet, 1 raw IPv4 (228), 2 raw IPv6 (229).
    recs = []
    sel = [c for c in cases if not c[0].startswith("bad-")][::2] + [c for c in cases if c[0].startswith("bad-")][::3]
    for label, b, reason in sel:
        v = b[0] >> 4
        recs.append(Record(eth(b), label + "@if0-eth", reason, iface=0))
        if v == 4:
            recs.append(Record(b, label + "@if1-ipv4", reason, iface=1))
        elif v == 6:
            recs.append(Record(b, label + "@if2-ipv6", reason, iface=2))
    v6pkt = raw(IPv6(src="2001:db8::90", dst=FE6) / UDP(sport=1, dport=2))
    v4pkt = raw(IP(src="198.51.100.90", dst=FE4, id=160) / UDP(sport=1, dport=2))
    recs.append(Record(v6pkt, "v6-on-linktype-228", "bad-ip-version", iface=1))
    recs.append(Record(v4pkt, "v4-on-linktype-229", "bad-ip-version", iface=2))
    write_pcapng(os.path.join(outdir, "multi-if.pcapng"), [1, 228, 229], stamp(recs))
    note("multi-if.pcapng", "pcapng", [1, 228, 229], recs)

    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    total = sum(len(m["packets"]) for m in manifest.values())
    print("wrote %d captures, %d packets to %s" % (len(manifest), total, outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
