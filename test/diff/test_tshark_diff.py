#!/usr/bin/env python3
"""Differential test: `haports replay` against tshark, packet by packet.

Usage:
  python3 test/diff/test_tshark_diff.py               # the diff test (needs the built CLI)
  python3 test/diff/test_tshark_diff.py --self-check  # tshark-derived expectations vs scapy's
                                                      # parse and the generator's intent (no CLI)
Options: --max-diffs N (default 25), --keep DIR (keep the corpus, the derived
expectations *.expect.jsonl and the verdict files there), --no-sample (skip
examples/sample.pcap), --cmd "..." (replay command prefix, default
`node bin/haports.mjs replay`), --lenient-text (see below).

What it does
  1. Runs test/diff/make_corpus.py into a temporary directory (deterministic
     pcap / pcapng captures with link types 1, 101, 228 and 229) and adds
     examples/sample.pcap if it exists.
  2. For every capture runs
        node bin/haports.mjs replay --config test/diff/config.json --verdicts X.jsonl CAPTURE
     and reads one JSON verdict per packet.
  3. Runs tshark on the same capture with IP / IPv6 reassembly and TCP
     desegmentation disabled, `-T json -x` (field offsets), and derives for every
     packet what haports must report:
       * tuple = the OUTERMOST IPv4/IPv6 header (src, dst) and the L4 that
         directly follows it: the first top-level ip/ipv6 layer in tshark's layer
         list, its IPv6 extension headers (hop-by-hop, routing, destination
         options, fragment, AH, which tshark nests inside the ipv6 layer) walked
         to the final protocol, and ports only from a tcp/udp/sctp layer that is
         the next top-level layer.  Headers quoted by ICMP errors are nested
         inside tshark's icmp/icmpv6 layer and tunnels (GRE, VXLAN...) come
         later in the layer list, so neither can leak into the tuple.  Non-first
         fragments have no ports.  ICMP / ICMPv6 / GRE / ESP: ports null.
       * drop + reason from the header fields tshark decoded and the number of
         captured bytes (frame.cap_len minus the offset tshark reports for the IP
         header): not-ip, truncated, bad-ip-version, bad-ip-header,
         truncated-l4, bad-l4-header, ext-header-chain, bad-icmp-error.
       * for packets that are not dropped: verdict forward (with the rule for
         that frontend and one of its pool's backends) when the outer dst is a
         frontend in test/diff/config.json, else nomatch.
     IPv6 addresses from both sides are normalised with Python's ipaddress
     before comparing.  Separately, haports' address text must be canonical:
     RFC 5952 for IPv6 (an IPv4-mapped address may also use the dotted form),
     plain dotted quad for IPv4 (--lenient-text turns this check off).
  4. Compares; each packet is one test case.  Prints the first mismatches with
     the capture name, packet index, the generator's label, expected and actual
     values, then a final line "N passed, M failed".  Exit status 0 iff M == 0.

Leniency (spec corners that are not pinned down): for L4-level drops
(truncated-l4, bad-l4-header, bad-icmp-error) the tuple must carry the right
src/dst/proto but ports may be null or the parsed ports; for ext-header-chain
the tuple may be null, or carry the right src/dst, null ports and a proto that
is null or one of the next-header values present in that packet's chain.  A
link-level cut (frame ends inside a VLAN tag) may be reported as truncated or
not-ip.  The reason of a forward/nomatch verdict is not checked (beyond not
being a drop reason).  An IPv6 packet on linktype 228 (IPv4 on 229) may be
dropped as bad-ip-version or decoded by its version nibble (STRICT_RAW_FAMILY).

--self-check runs steps 1 and 3 only and checks the tshark derivation against
  (a) an independent derivation from scapy's dissection of the same bytes, and
  (b) the drop reason the generator intended for each packet (manifest.json),
  (c) tshark's own opinion: packets tshark flags as malformed / bogus at the IP
      or L4 layer must be expected drops, and every expected IP-level drop must
      be something tshark flags or cannot decode as IP.
"""
import argparse
import ipaddress
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "host", "wasmtime"))
from haports_wasmtime.abi import PARSE_REASONS  # noqa: E402  (abi/haports.abi.json: "parse": true)
CONFIG = os.path.join(HERE, "config.json")
SAMPLE = os.path.join(REPO, "examples", "sample.pcap")

TSHARK_OPTS = [
    "-n",
    "-o", "ip.defragment:FALSE",
    "-o", "ipv6.defragment:FALSE",
    "-o", "tcp.desegment_tcp_streams:FALSE",
    "-o", "tcp.reassemble_out_of_order:FALSE",
    "-o", "tcp.analyze_sequence_numbers:FALSE",
    "-o", "udp.try_heuristic_first:FALSE",
    "-o", "sctp.reassembly:FALSE",
]

# Linktypes 228 / 229 declare the IP version. tshark (and, as of writing, haports)
# decode an IPv6 packet on a 228 link (or IPv4 on 229) by its version nibble.
# False: accept either that or a bad-ip-version drop.  True: require the drop.
STRICT_RAW_FAMILY = False
UNDECODABLE_229 = "IPv4 on linktype 229: tshark does not decode it, tuple unchecked"

L4_PORTS = {6: "tcp", 17: "udp", 132: "sctp"}
EXT_V6 = {0: "ipv6.hopopts", 43: "ipv6.routing", 60: "ipv6.dstopts", 44: "ipv6.fraghdr", 51: "ah"}
ICMP4_ERRORS = {3, 4, 5, 11, 12}
ICMP6_ERRORS = {1, 2, 3, 4}
ENCAP = {"1": 1, "7": 101, "129": 228, "130": 229}   # tshark frame.encap_type -> pcap linktype
DROP_REASONS = PARSE_REASONS  # the reasons tshark can confirm: the packet is malformed

# ----------------------------------------------------------------------------
# Expectation records (shared by the tshark and scapy derivations)
# ----------------------------------------------------------------------------


class Expect:
    """What haports must say about one packet.

    drop:     True / False, or None when the case is ambiguous (verdict unchecked)
    reasons:  set of acceptable drop reasons (when drop)
    tuple:    dict(src,dst,proto,sport,dport) or None
    """
    __slots__ = ("drop", "reasons", "tuple", "note", "tshark_flags", "alt_reasons")

    def __init__(self, drop, reasons=(), tuple_=None, note=""):
        self.tshark_flags = []
        self.alt_reasons = set()   # also acceptable: drop with one of these and a null tuple
        self.drop = drop
        self.reasons = set(reasons)
        self.tuple = tuple_
        self.note = note

    def as_dict(self):
        v = {True: "drop", False: "forward|nomatch", None: "(either)"}.get(self.drop, "(oracle error)")
        d = {"verdict": v,
             "tuple": self.tuple}
        if self.drop is True or (self.drop is None and self.reasons):
            d["reason"] = "|".join(sorted(self.reasons))
        if self.alt_reasons:
            d["or"] = "drop %s with tuple null" % "|".join(sorted(self.alt_reasons))
        if self.note:
            d["note"] = self.note
        return d

    def key(self):
        """Comparable summary for the self-check."""
        return (self.drop, tuple(sorted(self.reasons)), json.dumps(self.tuple, sort_keys=True),
                tuple(sorted(self.alt_reasons)))


def mk_tuple(src, dst, proto, sport=None, dport=None):
    return {"src": norm_ip(src), "dst": norm_ip(dst), "proto": proto, "sport": sport, "dport": dport}


def norm_ip(s):
    if s is None:
        return None
    try:
        return str(ipaddress.ip_address(s))
    except ValueError:
        return "<unparsable %r>" % (s,)


def rfc5952(addr):
    """RFC 5952 text of an IPv6Address (independent of the Python version)."""
    g = [int.from_bytes(addr.packed[i:i + 2], "big") for i in range(0, 16, 2)]
    best, bestlen, i = -1, 1, 0
    while i < 8:
        if g[i] == 0:
            j = i
            while j < 8 and g[j] == 0:
                j += 1
            if j - i > bestlen:          # strictly longer: the first run wins ties
                best, bestlen = i, j - i
            i = j
        else:
            i += 1
    h = ["%x" % x for x in g]
    if best < 0:
        return ":".join(h)
    return ":".join(h[:best]) + "::" + ":".join(h[best + bestlen:])


def text_problem(s):
    """Why `s` is not the canonical text of its address (None if it is)."""
    if not isinstance(s, str):
        return "not a string: %r" % (s,)
    try:
        a = ipaddress.ip_address(s)
    except ValueError:
        return "unparsable address %r" % s
    if a.version == 4:
        return None if s == str(a) else "%r is not the dotted-quad form %r" % (s, str(a))
    ok = {rfc5952(a)}
    if a.ipv4_mapped is not None:
        ok.add("::ffff:%s" % a.ipv4_mapped)   # RFC 5952 section 5 mixed notation, also fine
    return None if s in ok else "%r is not RFC 5952 canonical (%s)" % (s, " or ".join(sorted(ok)))


def drop(reasons, tuple_=None, note=""):
    if isinstance(reasons, str):
        reasons = [reasons]
    return Expect(True, reasons, tuple_, note)


# ----------------------------------------------------------------------------
# tshark side
# ----------------------------------------------------------------------------


class TsharkError(Exception):
    pass


def run_tshark(path):
    try:
        p = subprocess.run(["tshark", "-r", path] + TSHARK_OPTS + ["-T", "json", "-x"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    except FileNotFoundError:
        raise TsharkError("tshark not found in PATH (Debian: apt-get install tshark)")
    if p.returncode != 0:
        raise TsharkError("tshark failed on %s: %s" % (path, p.stderr.decode(errors="replace").strip()))
    pkts = json.loads(p.stdout.decode("utf-8", errors="replace"), object_pairs_hook=lambda pairs: pairs)
    return [lookup(lookup(pk, "_source"), "layers") for pk in pkts]


def is_obj(v):
    return isinstance(v, list) and all(isinstance(x, tuple) and len(x) == 2 for x in v)


def lookup(obj, key, default=None):
    for k, v in obj:
        if k == key:
            return v
    return default


def lookup_deep(obj, key, default=None):
    """First value of `key` anywhere below obj (depth first, document order),
    not descending into nested protocol layers (ip/ipv6/tcp/... objects)."""
    for k, v in obj:
        if k == key:
            return v
    for k, v in obj:
        if is_obj(v) and (k.endswith("_tree") or k.startswith("_ws") or k in ("Timestamps",)):
            r = lookup_deep(v, key)
            if r is not None:
                return r
    return default


def ival(v):
    if v is None:
        return None
    if isinstance(v, list):
        v = v[0]
    return int(v, 0)


def protocol_layers(obj):
    """[(name, obj, raw)] for the protocol-layer children of obj, in order."""
    out = []
    pending = {}
    for k, v in obj:
        if k.endswith("_raw"):
            # tshark -x writes "<layer>_raw" right before "<layer>"; layer names
            # repeat (tunnels), so pair each layer with the latest raw entry.
            pending[k[:-4]] = v
            continue
        if is_obj(v) or k.startswith("_ws."):
            out.append((k, v if is_obj(v) else [], pending.pop(k, None)))
    return out


def has_expert(obj, names):
    """Does obj (or its _tree / _ws.expert children) carry one of the named expert infos?"""
    for k, v in obj:
        if k in names:
            return True
        if is_obj(v) and (k.endswith("_tree") or k.startswith("_ws.expert") or k in names or "." in k):
            if k.startswith("ipv6.") and k in EXT_V6.values():
                continue
            if has_expert(v, names):
                return True
    return False


def malformed_in(obj):
    for k, v in obj:
        if k == "_ws.malformed" or k == "_ws.malformed.expert":
            return True
        if is_obj(v) and (k.endswith("_tree") or k.startswith("_ws")):
            if malformed_in(v):
                return True
    return False


class Derivation:
    """Derive the expected haports output for one packet from tshark's decode."""

    def __init__(self, layers):
        self.layers = layers
        self.top = protocol_layers(layers)
        frame = lookup(layers, "frame")
        self.cap_len = ival(lookup(frame, "frame.cap_len"))
        self.linktype = ENCAP.get(lookup(frame, "frame.encap_type"))
        self.alt_reasons = set()
        self.tshark_flags = []   # for --self-check: what tshark itself complained about
        if ival(lookup(frame, "frame.len")) > self.cap_len:
            self.tshark_flags.append("short")   # record says the wire frame was longer

    def run(self):
        top = self.top
        names = [n for n, _, _ in top]
        l3i = next((i for i, n in enumerate(names) if n in ("ip", "ipv6")), None)
        # --- link layer
        if self.linktype == 1:
            etype, l2_ok = None, True
            for n, o, _ in top[:l3i if l3i is not None else len(top)]:
                if n == "eth":
                    etype = lookup(o, "eth.type")
                    if etype is None and lookup(o, "eth.len") is not None:
                        etype = "llc"
                elif n == "vlan":
                    etype = lookup(o, "vlan.etype")
                    if etype is None:
                        l2_ok = False
            if l3i is None:
                if not l2_ok:
                    self.tshark_flags.append("l2-malformed")
                    return drop({"truncated", "not-ip"}, note="frame ends inside the link-layer header")
                if etype in ("0x0800", "0x86dd"):
                    self.tshark_flags.append("ip-undecodable")
                    return drop({"truncated", "bad-ip-version"}, note="IP ethertype but tshark found no IP header")
                return drop("not-ip", note="ethertype %s" % etype)
            want = {"0x0800": "ip", "0x86dd": "ipv6"}.get(etype)
            if want != names[l3i]:
                # e.g. ethertype 0x0800 carrying an IPv6 header: tshark's ip dissector
                # flags the version and hands over to ipv6 at the same level.
                self.tshark_flags.append("ip-version-mismatch")
                return drop("bad-ip-version", note="ethertype %s but tshark decoded %s" % (etype, names[l3i]))
        else:
            if l3i is None:
                self.tshark_flags.append("ip-undecodable")
                return drop("bad-ip-version", note="raw link, version nibble not 4/6 (tshark: %s)" % names)
            if (self.linktype == 228 and names[l3i] != "ip") or (self.linktype == 229 and names[l3i] != "ipv6"):
                if STRICT_RAW_FAMILY:
                    return drop("bad-ip-version", note="linktype %d but packet is %s" % (self.linktype, names[l3i]))
                self.alt_reasons = {"bad-ip-version"}
        name, l3, raw = top[l3i]
        if raw is None:
            # tshark omits "<layer>_raw" when the dissector bailed out early
            # (e.g. bogus version); the first field's offset is the header's.
            raw = next((v for k, v in l3 if k.endswith("_raw")), None)
        if raw is None:
            raise TsharkError("no %s_raw offset (tshark must be run with -x)" % name)
        self.l3_off = ival(str(raw[1]))
        self.captured = self.cap_len - self.l3_off
        self.next_top = top[l3i + 1] if l3i + 1 < len(top) else (None, None, None)
        if name == "ip":
            return self.ipv4(l3)
        return self.ipv6(l3)

    # --- IPv4
    def ipv4(self, ip):
        if has_expert(ip, {"ip.bogus_ip_version"}) or lookup_deep(ip, "ip.version") not in (None, "4"):
            self.tshark_flags.append("bogus-version")
            return drop("bad-ip-version")
        if self.captured < 20:
            if malformed_in(ip) or self.flagged_after():
                self.tshark_flags.append("short")
            return drop("truncated", note="%d bytes of IPv4 header captured" % self.captured)
        hlen = ival(lookup_deep(ip, "ip.hdr_len"))
        total = ival(lookup_deep(ip, "ip.len"))
        if (has_expert(ip, {"ip.bogus_header_length", "ip.bogus_ip_length", "ip.len.bad"}) or malformed_in(ip)
                or any(n == "_ws.short" for n, _, _ in self.top)):
            self.tshark_flags.append("ip-flagged")
        if hlen < 20:
            return drop("bad-ip-header", note="IHL %d" % (hlen // 4))
        if self.captured < hlen:
            return drop("truncated", note="captured %d < IHL*4 %d" % (self.captured, hlen))
        if total < hlen:
            return drop("bad-ip-header", note="total length %d < IHL*4 %d" % (total, hlen))
        if self.captured < total:
            return drop("truncated", note="captured %d < total length %d" % (self.captured, total))
        src, dst = lookup_deep(ip, "ip.src"), lookup_deep(ip, "ip.dst")
        proto = ival(lookup_deep(ip, "ip.proto"))
        first = ival(lookup_deep(ip, "ip.frag_offset")) == 0
        return self.l4(4, src, dst, proto, first, total - hlen)

    # --- IPv6
    def ipv6(self, ip6):
        if self.linktype == 229 and lookup_deep(ip6, "ipv6.version") == "4" and not STRICT_RAW_FAMILY:
            return Expect(None, {"bad-ip-version"}, None, note=UNDECODABLE_229)
        if has_expert(ip6, {"ipv6.bogus_ipv6_version"}) or lookup_deep(ip6, "ipv6.version") not in (None, "6"):
            self.tshark_flags.append("bogus-version")
            return drop("bad-ip-version")
        if self.captured < 40:
            if has_expert(ip6, {"ipv6.invalid_header"}) or malformed_in(ip6):
                self.tshark_flags.append("short")
            return drop("truncated", note="%d bytes of IPv6 header captured" % self.captured)
        plen = ival(lookup(ip6, "ipv6.plen"))
        if self.captured < 40 + plen:
            if has_expert(ip6, {"ipv6.plen_exceeds_framing"}) or any(n == "_ws.short" for n, _, _ in self.top):
                self.tshark_flags.append("ip-flagged")
            return drop("truncated", note="captured %d < 40 + payload length %d" % (self.captured, plen))
        src, dst = lookup(ip6, "ipv6.src"), lookup(ip6, "ipv6.dst")
        exts = [(k, v) for k, v in ip6 if k in EXT_V6.values() and is_obj(v)]
        nh = ival(lookup(ip6, "ipv6.nxt"))
        pos, count, first = 40, 0, True
        seen = [nh]   # next-header values read so far: the only sane "proto" for an ext-header-chain drop

        def chain_drop(note):
            return drop("ext-header-chain", mk_tuple(src, dst, sorted(set(seen))), note=note)
        while nh in EXT_V6:
            count += 1
            if count > 8:
                return chain_drop("more than 8 extension headers")
            if not exts or exts[0][0] != EXT_V6[nh]:
                return chain_drop("tshark could not decode extension header %d" % nh)
            k, e = exts.pop(0)
            if nh == 44:
                hl = 8
                nxt = lookup(e, "ipv6.fraghdr.nxt")
                off = ival(lookup(e, "ipv6.fraghdr.offset"))
            elif nh == 51:
                ln = lookup(e, "ah.length")
                hl = None if ln is None else (ival(ln) + 2) * 4
                nxt = lookup(e, "ah.next_header")
            else:
                lo = lookup(e, k + ".len_oct")
                hl = None if lo is None else ival(lo)
                nxt = lookup(e, k + ".nxt")
            if nxt is not None:
                seen.append(ival(nxt))
            if hl is None or nxt is None or pos + hl > 40 + plen:
                return chain_drop("extension header %d runs past the packet" % nh)
            pos += hl
            nh = ival(nxt)
            if k == "ipv6.fraghdr" and off != 0:
                first = False
                break
        return self.l4(6, src, dst, nh, first, 40 + plen - pos)

    def flagged_after(self):
        return self.next_top[0] in ("_ws.malformed", "_ws.short")

    # --- L4
    def l4(self, fam, src, dst, proto, first, l4len):
        tup = mk_tuple(src, dst, proto)
        nname, nobj, _ = self.next_top
        if nname in ("tcp", "udp", "sctp", "icmp", "icmpv6") and nobj is not None and malformed_in(nobj):
            self.tshark_flags.append("l4-flagged")
        if not first:
            return Expect(False, (), tup, note="non-first fragment")
        if proto in L4_PORTS:
            need = {6: 20, 17: 8, 132: 12}[proto]
            if l4len < need:
                return drop("truncated-l4", tup, note="%d bytes of %s header" % (l4len, L4_PORTS[proto]))
            lname = L4_PORTS[proto]
            if nname != lname:
                raise TsharkError("tshark did not decode %s right after the IP header (layers: %s)"
                                  % (lname, [n for n, _, _ in self.top]))
            if proto == 6:
                thl = ival(lookup_deep(nobj, "tcp.hdr_len"))
                if thl < 20:
                    return drop("bad-l4-header", tup, note="TCP data offset %d" % (thl // 4))
                if l4len < thl:
                    return drop("truncated-l4", tup, note="TCP data offset %d beyond %d bytes" % (thl // 4, l4len))
            tup["sport"] = ival(lookup(nobj, lname + ".srcport"))
            tup["dport"] = ival(lookup(nobj, lname + ".dstport"))
            return Expect(False, (), tup)
        if (fam == 4 and proto == 1) or (fam == 6 and proto == 58):
            if l4len < 8:
                return drop("truncated-l4", tup, note="%d bytes of ICMP header" % l4len)
            iname = "icmp" if fam == 4 else "icmpv6"
            if nname != iname:
                raise TsharkError("tshark did not decode %s (layers: %s)" % (iname, [n for n, _, _ in self.top]))
            itype = ival(lookup(nobj, iname + ".type"))
            if itype in (ICMP4_ERRORS if fam == 4 else ICMP6_ERRORS):
                bad = self.quoted_problem(fam, nobj, l4len - 8)
                if bad == "ambiguous":
                    return Expect(None, ("bad-icmp-error",), tup, note="quoted header has < 4 bytes of L4")
                if bad:
                    return drop("bad-icmp-error", tup, note=bad)
        return Expect(False, (), tup)

    def quoted_problem(self, fam, icmp, qlen):
        inner = [(n, o) for n, o, _ in protocol_layers(icmp) if n in ("ip", "ipv6", "data")]
        want = "ip" if fam == 4 else "ipv6"
        if qlen < (20 if fam == 4 else 40):
            return "only %d bytes quoted" % qlen
        if not inner or inner[0][0] != want:
            return "quoted data is not %s (tshark: %s)" % (want, inner[0][0] if inner else "nothing")
        o = inner[0][1]
        if fam == 4:
            if lookup_deep(o, "ip.version") != "4":
                return "quoted IP version %s" % lookup_deep(o, "ip.version")
            hl = ival(lookup_deep(o, "ip.hdr_len"))
            if hl < 20 or qlen < hl:
                return "quoted IHL %d with %d bytes" % (hl, qlen)
            iproto = ival(lookup_deep(o, "ip.proto"))
        else:
            if lookup_deep(o, "ipv6.version") != "6":
                return "quoted IPv6 version %s" % lookup_deep(o, "ipv6.version")
            hl = 40
            iproto = ival(lookup(o, "ipv6.nxt"))
            if iproto in EXT_V6:
                return "ambiguous"
        if iproto in L4_PORTS and qlen - hl < 4:
            return "ambiguous"
        return None


def tshark_expectations(path):
    out = []
    for i, layers in enumerate(run_tshark(path)):
        d = Derivation(layers)
        try:
            e = d.run()
            if not e.drop:
                e.alt_reasons = d.alt_reasons
        except (TsharkError, TypeError, ValueError) as ex:
            e = Expect(None, (), None, note="ORACLE ERROR: %s" % ex)
            e.drop = "oracle-error"
        e.tshark_flags = d.tshark_flags
        out.append(e)
    return out


# ----------------------------------------------------------------------------
# scapy side (self-check only)
# ----------------------------------------------------------------------------

def scapy_packets(path):
    from scapy.utils import RawPcapNgReader, RawPcapReader
    with open(path, "rb") as f:
        magic = f.read(4)
    out = []
    if magic == b"\x0a\x0d\x0d\x0a":
        with RawPcapNgReader(path) as r:
            for data, meta in r:
                out.append((data, meta.linktype))
    else:
        with RawPcapReader(path) as r:
            for data, meta in r:
                out.append((data, r.linktype))
    return out


def scapy_expect(data, linktype):
    from scapy.layers.l2 import Ether, Dot1Q, Dot1AD
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    off = 0
    if linktype == 1:
        if len(data) < 14:
            return drop({"truncated", "not-ip"})
        etype = int.from_bytes(data[12:14], "big")
        if etype <= 1500:
            return drop("not-ip")   # 802.3 length field + LLC
        off = 14
        layer = Ether(data).payload
        while etype in (0x8100, 0x88A8):
            if len(data) < off + 4 or not isinstance(layer, (Dot1Q, Dot1AD)):
                return drop({"truncated", "not-ip"})
            etype = layer.type
            off += 4
            layer = layer.payload
        if etype <= 1500 or etype not in (0x0800, 0x86DD):
            return drop("not-ip")
        fam = 4 if etype == 0x0800 else 6
        b = data[off:]
        if not b:
            return drop({"truncated", "bad-ip-version"})
        if b[0] >> 4 != fam:
            return drop("bad-ip-version")
    else:
        b = data
        if not b:
            return drop("bad-ip-version")
        fam = b[0] >> 4
        if fam not in (4, 6):
            return drop("bad-ip-version")
        if linktype == 228 and fam != 4 or linktype == 229 and fam != 6:
            if STRICT_RAW_FAMILY:
                return drop("bad-ip-version")
            if linktype == 229:
                return Expect(None, {"bad-ip-version"}, None, note=UNDECODABLE_229)
            e = scapy_expect(data, 101)
            if not e.drop:
                e.alt_reasons = {"bad-ip-version"}
            return e
    if fam == 4:
        if len(b) < 20:
            return drop("truncated")
        ip = IP(b)
        hlen = ip.ihl * 4
        if hlen < 20:
            return drop("bad-ip-header")
        if len(b) < hlen:
            return drop("truncated")
        if ip.len < hlen:
            return drop("bad-ip-header")
        if len(b) < ip.len:
            return drop("truncated")
        return scapy_l4(4, ip.src, ip.dst, ip.proto, ip.frag == 0, b[hlen:ip.len])
    if len(b) < 40:
        return drop("truncated")
    ip6 = IPv6(b[:40])
    if len(b) < 40 + ip6.plen:
        return drop("truncated")
    body = b[40:40 + ip6.plen]
    nh, count, first = ip6.nh, 0, True
    from scapy.layers.inet6 import IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment
    from scapy.layers.ipsec import AH
    cls = {0: IPv6ExtHdrHopByHop, 43: IPv6ExtHdrRouting, 60: IPv6ExtHdrDestOpt, 44: IPv6ExtHdrFragment, 51: AH}
    seen = [nh]

    def chain_drop():
        return drop("ext-header-chain", mk_tuple(ip6.src, ip6.dst, sorted(set(seen))))
    while nh in cls:
        count += 1
        if count > 8:
            return chain_drop()
        if len(body) >= 1:
            seen.append(body[0])
        if len(body) < 8:
            return chain_drop()
        h = cls[nh](body)
        if nh == 44:
            hl = 8
        elif nh == 51:
            hl = (h.payloadlen + 2) * 4
        else:
            hl = (h.len + 1) * 8
        if hl > len(body):
            return chain_drop()
        body = body[hl:]
        nh = h.nh
        if isinstance(h, IPv6ExtHdrFragment) and h.offset != 0:
            first = False
            break
    return scapy_l4(6, ip6.src, ip6.dst, nh, first, body)


def scapy_l4(fam, src, dst, proto, first, l4):
    from scapy.layers.inet import TCP, UDP, IP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.sctp import SCTP
    tup = mk_tuple(src, dst, proto)
    if not first:
        return Expect(False, (), tup)
    if proto in L4_PORTS:
        need = {6: 20, 17: 8, 132: 12}[proto]
        if len(l4) < need:
            return drop("truncated-l4", tup)
        h = {6: TCP, 17: UDP, 132: SCTP}[proto](l4)
        if proto == 6:
            if h.dataofs < 5:
                return drop("bad-l4-header", tup)
            if len(l4) < h.dataofs * 4:
                return drop("truncated-l4", tup)
        tup["sport"], tup["dport"] = h.sport, h.dport
        return Expect(False, (), tup)
    if (fam == 4 and proto == 1) or (fam == 6 and proto == 58):
        if len(l4) < 8:
            return drop("truncated-l4", tup)
        typ = l4[0]
        if typ in (ICMP4_ERRORS if fam == 4 else ICMP6_ERRORS):
            q = l4[8:]
            if len(q) < (20 if fam == 4 else 40) or q[0] >> 4 != fam:
                return drop("bad-icmp-error", tup)
            if fam == 4:
                qi = IP(q)
                hl, iproto = qi.ihl * 4, qi.proto
                if hl < 20 or len(q) < hl:
                    return drop("bad-icmp-error", tup)
            else:
                qi = IPv6(q)
                hl, iproto = 40, qi.nh
                if iproto in (0, 43, 60, 44, 51):
                    return Expect(None, ("bad-icmp-error",), tup)
            if iproto in L4_PORTS and len(q) - hl < 4:
                return Expect(None, ("bad-icmp-error",), tup)
    return Expect(False, (), tup)


# ----------------------------------------------------------------------------
# haports side
# ----------------------------------------------------------------------------

def load_config():
    with open(CONFIG) as f:
        cfg = json.load(f)
    fes = {fe["name"]: norm_ip(fe["address"]) for fe in cfg["frontends"]}
    pools = {p["name"]: {b["name"] for b in p["backends"]} for p in cfg["backendPools"]}
    rules = []
    for r in cfg["rules"]:
        rules.append({"name": r["name"], "addr": fes[r["frontend"]], "backends": pools[r["backendPool"]],
                      "protocol": r.get("protocol", "all"), "port": r.get("frontendPort", 0)})
    return rules


def match_rule(rules, tup):
    for r in rules:
        if r["addr"] != tup["dst"]:
            continue
        if r["protocol"] != "all" and {"tcp": 6, "udp": 17}.get(r["protocol"]) != tup["proto"]:
            continue
        if r["port"] and tup["dport"] != r["port"]:
            continue
        return r
    return None


def run_haports(cmd, capture, out_jsonl):
    argv = cmd + ["--config", CONFIG, "--verdicts", out_jsonl, capture]
    try:
        p = subprocess.run(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    except FileNotFoundError as ex:
        return None, "cannot run %s: %s" % (argv[0], ex)
    except subprocess.TimeoutExpired:
        return None, "timed out after 600 s: %s" % " ".join(argv)
    if p.returncode != 0:
        return None, "exit status %d from `%s`:\n%s" % (p.returncode, " ".join(shlex.quote(a) for a in argv),
                                                        (p.stderr.decode(errors="replace") or
                                                         p.stdout.decode(errors="replace")).strip()[-2000:])
    try:
        with open(out_jsonl) as f:
            lines = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError) as ex:
        return None, "bad verdicts file %s: %s" % (out_jsonl, ex)
    return lines, None


def compare(exp, got, rules, strict_text=True):
    """Return a list of problems (empty = pass)."""
    probs = []
    if exp.drop == "oracle-error":
        return [exp.note]
    v = got.get("verdict")
    gt = got.get("tuple")
    if gt is not None:
        gt = dict(gt)
        for k in ("src", "dst"):
            if k in gt:
                if strict_text and gt[k] is not None and text_problem(gt[k]):
                    probs.append("tuple.%s text: %s" % (k, text_problem(gt[k])))
                gt[k] = norm_ip(gt[k])
    et = exp.tuple

    if exp.drop is True:
        if v != "drop":
            probs.append("verdict: expected drop (%s), got %r" % ("|".join(sorted(exp.reasons)), v))
        elif got.get("reason") not in exp.reasons:
            probs.append("reason: expected %s, got %r" % ("|".join(sorted(exp.reasons)), got.get("reason")))
        reason = got.get("reason")
        if et is None:
            if gt is not None:
                probs.append("tuple: expected null for this drop, got %s" % json.dumps(gt, sort_keys=True))
        elif reason == "ext-header-chain" or "ext-header-chain" in exp.reasons:
            # null, or src/dst with proto null or a next-header value actually
            # present in the chain (anything else is e.g. state left over from
            # an earlier packet), and no ports.
            if gt is not None:
                for k in ("src", "dst"):
                    if gt.get(k) != et[k]:
                        probs.append("tuple.%s: expected %r, got %r" % (k, et[k], gt.get(k)))
                if gt.get("proto") is not None and gt.get("proto") not in et["proto"]:
                    probs.append("tuple.proto: expected null or a next-header value of this packet's chain %s, "
                                 "got %r" % (et["proto"], gt.get("proto")))
                for k in ("sport", "dport"):
                    if gt.get(k) is not None:
                        probs.append("tuple.%s: expected null, got %r" % (k, gt.get(k)))
        else:
            if gt is None:
                probs.append("tuple: expected %s, got null" % json.dumps(et, sort_keys=True))
            else:
                for k in ("src", "dst", "proto"):
                    if gt.get(k) != et[k]:
                        probs.append("tuple.%s: expected %r, got %r" % (k, et[k], gt.get(k)))
                for k in ("sport", "dport"):
                    if gt.get(k) is not None and gt.get(k) != et[k]:
                        probs.append("tuple.%s: expected null or %r, got %r" % (k, et[k], gt.get(k)))
        return probs

    if exp.drop is None and exp.tuple is None:
        if v == "drop" and (got.get("reason") not in exp.reasons or gt is not None):
            probs.append("expected drop %s with tuple null, or no drop" % "|".join(sorted(exp.reasons)))
        return probs
    if v == "drop" and got.get("reason") in exp.alt_reasons:
        if gt is not None:
            probs.append("tuple: expected null with reason %r, got %s" % (got.get("reason"), json.dumps(gt)))
        return probs
    # not dropped (or ambiguous)
    if exp.drop is False and v == "drop":
        probs.append("verdict: expected not dropped, got drop (reason %r)" % got.get("reason"))
    if gt is None:
        probs.append("tuple: expected %s, got null" % json.dumps(et, sort_keys=True))
    else:
        for k in ("src", "dst", "proto", "sport", "dport"):
            if gt.get(k) != et[k]:
                probs.append("tuple.%s: expected %r, got %r" % (k, et[k], gt.get(k)))
    if exp.drop is False and v != "drop":
        rule = match_rule(rules, et)
        if rule is None:
            if v != "nomatch" or got.get("rule") is not None or got.get("backend") is not None:
                probs.append("verdict: expected nomatch (dst %s is not a frontend), got %r rule=%r backend=%r"
                             % (et["dst"], v, got.get("rule"), got.get("backend")))
        else:
            if v != "forward" or got.get("rule") != rule["name"] or got.get("backend") not in rule["backends"]:
                probs.append("verdict: expected forward by rule %r to one of %s, got %r rule=%r backend=%r"
                             % (rule["name"], sorted(rule["backends"]), v, got.get("rule"), got.get("backend")))
        # The reason of a forward/nomatch verdict is not specified (e.g. "no-rule"
        # for nomatch), but it must not be a drop reason.
        if got.get("reason") in DROP_REASONS:
            probs.append("reason: %r on a %s verdict" % (got.get("reason"), v))
    return probs


# ----------------------------------------------------------------------------

def build_corpus(dest, include_sample):
    subprocess.run([sys.executable, os.path.join(HERE, "make_corpus.py"), dest], check=True,
                   stdout=subprocess.DEVNULL)
    with open(os.path.join(dest, "manifest.json")) as f:
        manifest = json.load(f)
    caps = []
    for name in sorted(manifest):
        pk = manifest[name]["packets"]
        caps.append((name, os.path.join(dest, name), [p["label"] for p in pk], [p["reason"] for p in pk]))
    if include_sample and os.path.exists(SAMPLE):
        caps.append(("examples/sample.pcap", SAMPLE, None, None))
    return caps


def label_of(labels, i):
    return labels[i] if labels and i < len(labels) else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--self-check", action="store_true")
    ap.add_argument("--max-diffs", type=int, default=25)
    ap.add_argument("--keep", metavar="DIR")
    ap.add_argument("--no-sample", action="store_true")
    ap.add_argument("--cmd", default="node bin/haports.mjs replay")
    ap.add_argument("--lenient-text", action="store_true",
                    help="only compare addresses after normalisation; do not require RFC 5952 / dotted-quad text")
    args = ap.parse_args()

    work = args.keep or tempfile.mkdtemp(prefix="haports-diff-")
    os.makedirs(work, exist_ok=True)
    try:
        caps = build_corpus(os.path.join(work, "corpus"), not args.no_sample)
        passed = failed = shown = 0
        rules = load_config()

        def report(cap, i, label, probs, exp, got):
            nonlocal shown
            if shown < args.max_diffs:
                print("FAIL %s #%d [%s]" % (cap, i, label))
                for p in probs:
                    print("    - " + p)
                print("    expected: " + json.dumps(exp.as_dict(), sort_keys=True))
                if got is not None:
                    print("    got:      " + json.dumps(got, sort_keys=True))
            elif shown == args.max_diffs:
                print("... (further failures not shown; use --max-diffs)")
            shown += 1

        for cap, path, labels, intents in caps:
            try:
                exps = tshark_expectations(path)
            except TsharkError as ex:
                print("ERROR: %s" % ex)
                return 2
            if args.keep:
                with open(os.path.join(work, os.path.basename(cap) + ".expect.jsonl"), "w") as f:
                    for i, e in enumerate(exps):
                        f.write(json.dumps(dict(index=i, label=label_of(labels, i), **e.as_dict()),
                                           sort_keys=True) + "\n")
            cap_fail = 0
            if args.self_check:
                sp = scapy_packets(path)
                if len(sp) != len(exps):
                    print("FAIL %s: scapy read %d packets, tshark %d" % (cap, len(sp), len(exps)))
                    failed += max(len(sp), len(exps))
                    continue
                for i, (e, (data, lt)) in enumerate(zip(exps, sp)):
                    probs = []
                    if e.drop == "oracle-error":
                        probs.append(e.note)
                    else:
                        s = scapy_expect(data, lt)
                        if s.key() != e.key():
                            probs.append("tshark-derived %s != scapy-derived %s"
                                         % (json.dumps(e.as_dict(), sort_keys=True),
                                            json.dumps(s.as_dict(), sort_keys=True)))
                        if intents is not None:
                            want = intents[i]
                            if want is None and e.drop is not False and not e.alt_reasons:
                                probs.append("generator meant a valid packet, tshark derivation says %s"
                                             % json.dumps(e.as_dict()))
                            if want is not None and (e.drop is False or want not in e.reasons) and \
                                    want not in e.alt_reasons:
                                probs.append("generator meant drop %r, tshark derivation says %s"
                                             % (want, json.dumps(e.as_dict())))
                        fl = set(e.tshark_flags)
                        ip_level = {"truncated", "bad-ip-version", "bad-ip-header"}
                        if e.drop is True and e.reasons & ip_level and e.tuple is None and not (
                                fl & {"short", "ip-flagged", "bogus-version", "ip-undecodable",
                                      "ip-version-mismatch", "l2-malformed"}) and "linktype" not in e.note:
                            probs.append("expected IP-level drop %s but tshark raised no complaint"
                                         % sorted(e.reasons))
                        if fl & {"ip-flagged", "l4-flagged", "short"} and e.drop is False:
                            probs.append("tshark flags %s but the derivation expects a valid packet" % sorted(fl))
                    if probs:
                        cap_fail += 1
                        report(cap, i, label_of(labels, i), probs, e, None)
                failed += cap_fail
                passed += len(exps) - cap_fail
                print("# %s: %d packets, %d failed (self-check)" % (cap, len(exps), cap_fail))
                continue

            out = os.path.join(work, os.path.basename(cap) + ".verdicts.jsonl")
            got, err = run_haports(shlex.split(args.cmd), path, out)
            if err:
                print("FAIL %s: haports replay failed: %s" % (cap, err))
                failed += len(exps)
                print("# %s: %d packets, %d failed" % (cap, len(exps), len(exps)))
                continue
            if len(got) != len(exps):
                print("FAIL %s: haports wrote %d verdict lines, tshark saw %d packets"
                      % (cap, len(got), len(exps)))
            for i, e in enumerate(exps):
                g = got[i] if i < len(got) else None
                if g is None:
                    probs = ["no verdict line"]
                elif g.get("index") != i:
                    probs = ["verdict line %d has index %r" % (i, g.get("index"))]
                else:
                    probs = compare(e, g, rules, strict_text=not args.lenient_text)
                if probs:
                    cap_fail += 1
                    report(cap, i, label_of(labels, i), probs, e, g)
            if len(got) > len(exps):
                cap_fail += 1
                print("FAIL %s: %d extra verdict lines" % (cap, len(got) - len(exps)))
            failed += cap_fail
            passed += len(exps) - min(cap_fail, len(exps))
            print("# %s: %d packets, %d failed" % (cap, len(exps), cap_fail))
        print("%d passed, %d failed" % (passed, failed))
        return 0 if failed == 0 else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
