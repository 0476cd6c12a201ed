"""Deterministic random traffic for the conformance test.

`generate(seed, count, ...)` returns (ts_ns, ip_bytes) pairs: IPv4 and IPv6; TCP (with
handshakes, data, FIN and RST), UDP, SCTP, ICMP/ICMPv6 echo, ICMP/ICMPv6 errors quoting
a tracked flow, GRE, ESP and OSPF; IPv4 and IPv6 fragments (sometimes out of order);
IPv6 extension headers; replies from the frontend and from backend addresses; packets to
addresses that are no frontend; and a few truncated or corrupted packets. Flows repeat
(recently used flows are picked again most of the time) so the flow table sees hits,
new flows, idle expiry (the clock sometimes jumps past the 4-minute timeout) and, with
enough flows, pressure. Checksums are correct so rewritten packets can be checked.

Only `random.Random(seed)` drives it: the same seed gives byte-identical packets.
"""
import random
import socket
import struct

FE4 = socket.inet_pton(socket.AF_INET, "10.0.0.100")
FE6 = socket.inet_pton(socket.AF_INET6, "fd00::100")
BACKENDS4 = [socket.inet_pton(socket.AF_INET, "10.0.1.%d" % i) for i in range(4, 8)]
BACKENDS6 = [socket.inet_pton(socket.AF_INET6, "fd00:1::%d" % i) for i in range(4, 6)]
WEB4 = [socket.inet_pton(socket.AF_INET, "10.0.2.%d" % i) for i in range(4, 6)]

MAC_A = bytes.fromhex("02005e000001")
MAC_B = bytes.fromhex("02005e000064")


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4(src, dst, proto, payload, ident=0, frag=0, ttl=64, options=b""):
    ihl = 5 + len(options) // 4
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(options) + len(payload), ident, frag, ttl, proto, 0,
                      src, dst) + options
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + payload


def ipv6(src, dst, nh, payload, hlim=64, flow=0):
    return struct.pack("!IHBB16s16s", (6 << 28) | flow, len(payload), nh, hlim, src, dst) + payload


def l4_with_csum(family, src, dst, proto, seg, csum_off):
    """Fills the checksum at csum_off of a TCP/UDP/ICMPv6 segment (pseudo-header)."""
    if family == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, proto, len(seg))
    else:
        pseudo = src + dst + struct.pack("!IxxxB", len(seg), proto)
    c = csum(pseudo + seg)
    if proto == 17 and c == 0:
        c = 0xFFFF
    return seg[:csum_off] + struct.pack("!H", c) + seg[csum_off + 2:]


def tcp(family, src, dst, sport, dport, flags, seq, ack, payload=b""):
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
    return l4_with_csum(family, src, dst, 6, seg + payload, 16)


def udp(family, src, dst, sport, dport, payload=b""):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return l4_with_csum(family, src, dst, 17, seg, 6)


def sctp(sport, dport, payload):
    chunk = struct.pack("!BBHIHHI", 0, 3, 16 + len(payload), 1, 0, 0, 0) + payload
    chunk += b"\0" * (-len(chunk) % 4)
    return struct.pack("!HHII", sport, dport, 0x1234, 0) + chunk


def icmp4(type_, code, rest, payload):
    m = struct.pack("!BBH", type_, code, 0) + rest + payload
    return m[:2] + struct.pack("!H", csum(m)) + m[4:]


def icmp6(src, dst, type_, code, rest, payload):
    return l4_with_csum(6, src, dst, 58, struct.pack("!BBH", type_, code, 0) + rest + payload, 2)


def ip(family, src, dst, proto, payload, ident=0):
    if family == 4:
        return ipv4(src, dst, proto, payload, ident=ident)
    return ipv6(src, dst, proto, payload)


class Flow:
    __slots__ = ("family", "proto", "client", "server", "cport", "sport", "sent", "closed", "seq")

    def __init__(self, family, proto, client, server, cport, sport):
        self.family, self.proto, self.client, self.server = family, proto, client, server
        self.cport, self.sport = cport, sport
        self.sent = 0
        self.closed = False
        self.seq = 1000


class Generator:
    def __init__(self, seed, new_flow_share=0.3, other_dst_share=0.12):
        self.r = random.Random(seed)
        self.flows = []
        self.new_flow_share = new_flow_share
        self.other_dst_share = other_dst_share
        self.ident = 1

    # -- addresses ---------------------------------------------------------------
    def client_addr(self, family):
        r = self.r
        if family == 4:
            return bytes([r.choice([192, 198, 203, 172]), r.randrange(256), r.randrange(256), r.randrange(1, 255)])
        return bytes([0x20, 0x01, 0x0D, 0xB8]) + bytes(r.randrange(256) for _ in range(4)) + \
            (b"\0" * 6 if r.random() < 0.4 else bytes(r.randrange(256) for _ in range(6))) + \
            bytes([r.randrange(256), r.randrange(1, 256)])

    def server_addr(self, family):
        r = self.r
        if r.random() >= self.other_dst_share:
            return FE4 if family == 4 else FE6
        if family == 4:
            return bytes([10, r.randrange(256), r.randrange(256), r.randrange(1, 255)])
        return bytes([0xFD, 0]) + b"\0" * 12 + bytes([r.randrange(256), r.randrange(256)])

    # -- flows -------------------------------------------------------------------
    def new_flow(self):
        r = self.r
        family = 4 if r.random() < 0.62 else 6
        k = r.random()
        if k < 0.45:
            proto, sport = 6, r.choice([443, 80, 22, 8080, 3389, 25, r.randrange(1, 65536)])
        elif k < 0.75:
            proto, sport = 17, r.choice([53, 123, 4500, 4789, 5353, r.randrange(1, 65536)])
        elif k < 0.85:
            proto, sport = (1 if family == 4 else 58), 0
        elif k < 0.9:
            proto, sport = 132, r.choice([38412, 2905, 3868])
        else:
            proto, sport = r.choice([47, 50, 89]), 0
        f = Flow(family, proto, self.client_addr(family), self.server_addr(family), r.randrange(1024, 65536), sport)
        self.flows.append(f)
        return f

    def pick_flow(self):
        r = self.r
        live = self.flows
        if not live or r.random() < self.new_flow_share:
            return self.new_flow()
        back = min(len(live) - 1, int(r.expovariate(1 / 150.0)))
        f = live[len(live) - 1 - back]
        if f.closed and r.random() < 0.7:
            return self.new_flow()
        return f

    # -- packets -------------------------------------------------------------------
    def packets_for(self, f):
        """One or more IP packets of flow f (a datagram may come as fragments)."""
        r = self.r
        fam = f.family
        reverse = f.sent > 0 and r.random() < 0.3
        src, dst, sp, dp = f.client, f.server, f.cport, f.sport
        if reverse:
            src, dst, sp, dp = dst, src, dp, sp
            if r.random() < 0.25 and f.server in (FE4, FE6):  # a backend answering directly (NAT reply path)
                src = r.choice(BACKENDS4 if fam == 4 else BACKENDS6)
        self.ident = (self.ident + 1) & 0xFFFF
        p = f.proto
        payload = bytes(r.randrange(256) for _ in range(r.choice([0, 0, 8, 40, 200])))
        if p == 6:
            if f.sent == 0:
                flags = 0x02
            elif f.sent == 1 and reverse:
                flags = 0x12
            else:
                k = r.random()
                flags = 0x11 if k < 0.04 else 0x04 if k < 0.06 else 0x18 if payload else 0x10
                if flags in (0x11, 0x04):
                    f.closed = True
            seg = tcp(fam, src, dst, sp, dp, flags, f.seq, f.seq + 7, payload if flags & 0x08 else b"")
            f.seq += len(payload) + 1
        elif p == 17:
            if r.random() < 0.06:
                f.sent += 1
                return self.fragments(fam, src, dst, udp(fam, src, dst, sp, dp, bytes(r.randrange(256) for _ in range(1200))))
            seg = udp(fam, src, dst, sp, dp, payload)
        elif p == 1:
            seg = icmp4(0 if reverse else 8, 0, struct.pack("!HH", f.cport, f.sent & 0xFFFF), payload)
        elif p == 58:
            seg = icmp6(src, dst, 129 if reverse else 128, 0, struct.pack("!HH", f.cport, f.sent & 0xFFFF), payload)
        elif p == 132:
            seg = sctp(sp, dp, payload or b"data")
        elif p == 47:
            seg = struct.pack("!HH", 0, 0x0800) + ipv4(src[:4] if fam == 4 else FE4, FE4, 17, udp(4, FE4, FE4, 1, 2, payload))
        elif p == 50:
            seg = struct.pack("!II", 0x1000 + f.cport, f.sent + 1) + payload + b"\0" * 12
        else:
            seg = b"\x02\x01\x00\x2c" + payload
        f.sent += 1
        if fam == 6 and r.random() < 0.08:  # walk an extension header first
            nh = r.choice([0, 60])
            ext = struct.pack("!BB", p, 0) + b"\x01\x04\0\0\0\0"
            return [ipv6(src, dst, nh, ext + seg)]
        return [ip(fam, src, dst, p, seg, ident=self.ident)]

    def fragments(self, fam, src, dst, seg):
        r = self.r
        pieces = [seg[i:i + 512] for i in range(0, len(seg), 512)]  # 512: a multiple of 8
        out = []
        fid = r.randrange(1 << 16) if fam == 4 else r.randrange(1 << 32)
        for i, piece in enumerate(pieces):
            more = 1 if i < len(pieces) - 1 else 0
            off8 = i * 64
            if fam == 4:
                out.append(ipv4(src, dst, 17, piece, ident=fid, frag=(more << 13) | off8))
            else:
                fh = struct.pack("!BBHI", 17, 0, (off8 << 3) | more, fid)
                out.append(ipv6(src, dst, 44, fh + piece))
        if r.random() < 0.25:  # a later fragment overtakes the first
            out[0], out[1] = out[1], out[0]
        return out

    def icmp_error(self):
        """An ICMP error from a router to the frontend quoting a packet of a tracked flow
        as the frontend sent it (reversed)."""
        r = self.r
        cands = [f for f in self.flows[-300:] if f.proto in (6, 17) and f.server in (FE4, FE6)]
        if not cands:
            return None
        f = r.choice(cands)
        if f.family == 4:
            inner_l4 = tcp(4, f.server, f.client, f.sport, f.cport, 0x12, 5, 6) if f.proto == 6 else \
                udp(4, f.server, f.client, f.sport, f.cport, b"x" * 16)
            inner = ipv4(f.server, f.client, f.proto, inner_l4, ident=7)[:28 if r.random() < 0.5 else 60]
            t, c, rest = r.choice([(3, 4, struct.pack("!HH", 0, 1400)), (11, 0, b"\0" * 4), (3, 3, b"\0" * 4)])
            return ipv4(bytes([192, 0, 2, r.randrange(1, 255)]), f.server, 1, icmp4(t, c, rest, inner))
        inner_l4 = tcp(6, f.server, f.client, f.sport, f.cport, 0x12, 5, 6) if f.proto == 6 else \
            udp(6, f.server, f.client, f.sport, f.cport, b"y" * 16)
        inner = ipv6(f.server, f.client, f.proto, inner_l4)
        router = bytes([0x20, 0x01, 0x0D, 0xB8, 0, 2]) + b"\0" * 9 + bytes([r.randrange(1, 255)])
        t, c, rest = r.choice([(2, 0, struct.pack("!I", 1280)), (1, 4, b"\0" * 4), (3, 0, b"\0" * 4)])
        return ipv6(router, f.server, 58, icmp6(router, f.server, t, c, rest, inner))

    def mangle(self, pkt):
        r = self.r
        if r.random() < 0.5 and len(pkt) > 1:
            return pkt[:r.randrange(1, len(pkt))]
        b = bytearray(pkt)
        i = r.randrange(min(len(b), 48))
        b[i] ^= 1 << r.randrange(8)
        return bytes(b)


def generate(seed, count, start_ns=1_700_100_000 * 10**9, mean_gap_ms=30.0, new_flow_share=0.3):
    """`count` (ts_ns, ip_packet) pairs, time-ordered."""
    g = Generator(seed, new_flow_share=new_flow_share)
    r = g.r
    out = []
    t = start_ns
    while len(out) < count:
        t += int(r.expovariate(1.0 / mean_gap_ms) * 1e6) + 1
        if r.random() < 1 / 4000.0:
            t += 5 * 60 * 10**9  # past the idle timeout: tracked flows expire
        k = r.random()
        if k < 0.02:
            e = g.icmp_error()
            pkts = [e] if e else g.packets_for(g.pick_flow())
        else:
            pkts = g.packets_for(g.pick_flow())
        if r.random() < 0.02:
            pkts = [g.mangle(pkts[0])] + pkts[1:]
        for p in pkts:
            out.append((t, p))
            t += r.randrange(1, 50_000)
    return out[:count]


def ethernet(pkt, r):
    """Wraps an IP packet in Ethernet (sometimes 802.1Q-tagged); raw bytes that are no IP
    packet (truncated to nothing useful) still get the ethertype of their first nibble."""
    etype = 0x86DD if pkt and (pkt[0] >> 4) == 6 else 0x0800
    tag = struct.pack("!HH", 0x8100, r.randrange(1, 4095)) if r.random() < 0.1 else b""
    return MAC_B + MAC_A + tag + struct.pack("!H", etype) + pkt


def arp(r):
    return b"\xff" * 6 + MAC_A + struct.pack("!H", 0x0806) + bytes.fromhex("0001080006040001") + MAC_A + \
        bytes([10, 0, 0, r.randrange(1, 255)]) + b"\0" * 6 + FE4


def write_pcap(path, linktype, records):
    """Classic pcap, little-endian, nanosecond timestamps: records of (ts_ns, bytes)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, linktype))
        for ts, data in records:
            sec, ns = divmod(ts, 10**9)
            f.write(struct.pack("<IIII", sec, ns, len(data), len(data)))
            f.write(data)


def write_pcapng(path, linktype, records):
    """pcapng, one interface of `linktype`, microsecond resolution (the default)."""
    def block(t, body):
        return struct.pack("<II", t, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    with open(path, "wb") as f:
        f.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        f.write(block(1, struct.pack("<HHI", linktype, 0, 0)))
        for ts, data in records:
            us = ts // 1000
            body = struct.pack("<IIIII", 0, us >> 32, us & 0xFFFFFFFF, len(data), len(data))
            f.write(block(6, body + data + b"\0" * (-len(data) % 4)))
