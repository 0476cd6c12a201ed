"""pcap and pcapng reading and pcap writing (a port of host/cli/pcap.ts: same results and messages)."""

from __future__ import annotations

import struct
from typing import List, NoReturn, Sequence

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229


class CaptureError(ValueError):
    pass


class CapturedPacket:
    __slots__ = ("index", "linktype", "ts_sec", "ts_nsec", "data", "orig_len")

    def __init__(self, index: int, linktype: int, ts_sec: int, ts_nsec: int, data: bytes, orig_len: int):
        self.index, self.linktype, self.ts_sec, self.ts_nsec = index, linktype, ts_sec, ts_nsec
        self.data, self.orig_len = data, orig_len

    def time_ms(self) -> float:
        """tsSec * 1000 + tsNsec / 1e6, computed as JavaScript does (doubles)."""
        return self.ts_sec * 1000 + self.ts_nsec / 1e6


def _fail(what: str, offset: int) -> NoReturn:
    raise CaptureError(f"capture: {what} at byte offset {offset}")


class _Reader:
    def __init__(self, buf: bytes, le: bool):
        self.buf, self.le = buf, le

    def u16(self, off: int) -> int:
        return struct.unpack_from("<H" if self.le else ">H", self.buf, off)[0]

    def u32(self, off: int) -> int:
        return struct.unpack_from("<I" if self.le else ">I", self.buf, off)[0]

    def i64(self, off: int) -> int:
        return struct.unpack_from("<q" if self.le else ">q", self.buf, off)[0]

    def need(self, off: int, length: int, what: str) -> None:
        if off + length > len(self.buf):
            _fail(f"truncated {what}: need {length} bytes, only {len(self.buf) - off} left", off)


def read_capture(buf: bytes) -> "tuple[str, List[CapturedPacket]]":
    """(format, packets) of a pcap or pcapng file's bytes. Raises CaptureError."""
    if len(buf) < 4:
        _fail(f"file too short ({len(buf)} bytes) to hold a capture header", 0)
    for le in (True, False):
        r = _Reader(buf, le)
        magic = r.u32(0)
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            return "pcap", _read_pcap(r, magic == 0xA1B23C4D)
    be = _Reader(buf, False)
    if be.u32(0) == 0x0A0D0D0A:
        return "pcapng", _read_pcapng(be)
    _fail(f"unrecognised file magic 0x{be.u32(0):08x} (not pcap or pcapng)", 0)
    raise AssertionError  # unreachable


def _read_pcap(r: _Reader, nano: bool) -> List[CapturedPacket]:
    r.need(0, 24, "pcap global header")
    major = r.u16(4)
    if major != 2:
        _fail(f"unsupported pcap version {major}.{r.u16(6)}", 4)
    linktype = r.u32(20) & 0xFFFF
    frac_per_sec = 1_000_000_000 if nano else 1_000_000
    packets: List[CapturedPacket] = []
    off = 24
    n = len(r.buf)
    while off < n:
        r.need(off, 16, f"header of pcap record {len(packets)}")
        sec, frac, incl, orig = r.u32(off), r.u32(off + 4), r.u32(off + 8), r.u32(off + 12)
        data_off = off + 16
        if incl > n - data_off:
            _fail(f"pcap record {len(packets)} claims {incl} captured bytes but only {n - data_off} remain", off + 8)
        packets.append(CapturedPacket(len(packets), linktype, sec + frac // frac_per_sec,
                                      (frac % frac_per_sec) * (1 if nano else 1000),
                                      r.buf[data_off:data_off + incl], orig))
        off = data_off + incl
    return packets


def _read_pcapng(r: _Reader) -> List[CapturedPacket]:
    packets: List[CapturedPacket] = []
    ifaces: List[Dict[str, int]] = []
    off = 0
    n = len(r.buf)
    while off < n:
        r.need(off, 8, "block header")
        btype = r.u32(off)
        if btype == 0x0A0D0D0A:
            r.need(off, 12, "section header block")
            r.le = True
            bom = r.u32(off + 8)
            if bom == 0x1A2B3C4D:
                r.le = True
            elif bom == 0x4D3C2B1A:
                r.le = False
            else:
                _fail(f"bad pcapng byte-order magic 0x{bom:08x}", off + 8)
        total = r.u32(off + 4)
        if total < 12 or total % 4 != 0:
            _fail(f"invalid block total length {total} (must be a multiple of 4 and >= 12)", off + 4)
        if total > n - off:
            _fail(f"truncated block of type {btype}: length {total} but only {n - off} bytes remain", off)
        trailer = r.u32(off + total - 4)
        if trailer != total:
            _fail(f"block trailing length {trailer} does not match leading length {total}", off + total - 4)
        body, end = off + 8, off + total - 4

        def min_body(k: int, name: str) -> None:
            if end - body < k:
                _fail(f"{name} too short ({total} bytes)", off)

        if btype == 0x0A0D0D0A:
            min_body(16, "section header block")
            major = r.u16(body + 4)
            if major != 1:
                _fail(f"unsupported pcapng version {major}.{r.u16(body + 6)}", body + 4)
            ifaces = []
        elif btype == 1:
            min_body(8, "interface description block")
            iface = {"linktype": r.u16(body), "snaplen": r.u32(body + 4), "decimal": 1, "exp": 6, "offset": 0}
            o = body + 8
            while o + 4 <= end:
                code, length = r.u16(o), r.u16(o + 2)
                if code == 0:
                    break
                if o + 4 + length > end:
                    _fail(f"option {code} length {length} overruns its block", o + 2)
                if code == 9:
                    if length < 1:
                        _fail("if_tsresol option has no value", o)
                    v = r.buf[o + 4]
                    iface["decimal"] = 0 if v & 0x80 else 1
                    iface["exp"] = v & 0x7F
                elif code == 14:
                    if length < 8:
                        _fail(f"if_tsoffset option is {length} bytes, expected 8", o)
                    iface["offset"] = r.i64(o + 4)
                o += 4 + ((length + 3) & ~3)
            ifaces.append(iface)
        elif btype in (6, 2):
            name = "enhanced packet block" if btype == 6 else "packet block"
            min_body(20, name)
            if_id = r.u32(body) if btype == 6 else r.u16(body)
            if if_id >= len(ifaces):
                _fail(f"{name} refers to interface {if_id} but the section defines {len(ifaces)}", body)
            iface = ifaces[if_id]
            ts = (r.u32(body + 4) << 32) | r.u32(body + 8)
            cap, orig = r.u32(body + 12), r.u32(body + 16)
            data_off = body + 20
            if cap > end - data_off:
                _fail(f"{name} captured length {cap} exceeds the block (room for {end - data_off})", body + 12)
            exp = iface["exp"]
            if iface["decimal"]:
                units = 10 ** exp
                sec, rem = ts // units, ts % units
                nsec = rem * 10 ** (9 - exp) if exp <= 9 else rem // 10 ** (exp - 9)
            else:
                sec, rem = ts >> exp, ts & ((1 << exp) - 1)
                nsec = (rem * 1_000_000_000) >> exp
            packets.append(CapturedPacket(len(packets), iface["linktype"], sec + iface["offset"], nsec,
                                          r.buf[data_off:data_off + cap], orig))
        elif btype == 3:
            min_body(4, "simple packet block")
            if not ifaces:
                _fail("simple packet block before any interface description block", off)
            iface = ifaces[0]
            orig = r.u32(body)
            data_off = body + 4
            cap = min(orig, end - data_off)
            if iface["snaplen"] > 0:
                cap = min(cap, iface["snaplen"])
            packets.append(CapturedPacket(len(packets), iface["linktype"], 0, 0, r.buf[data_off:data_off + cap], orig))
        off += total
    return packets


def write_pcap(packets: Sequence["tuple[bytes, int, int]"], linktype: int) -> bytes:
    """Classic little-endian nanosecond pcap of (data, ts_sec, ts_nsec) records."""
    out = [struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, linktype)]
    for data, sec, nsec in packets:
        out.append(struct.pack("<IIII", sec, nsec, len(data), len(data)))
        out.append(bytes(data))
    return b"".join(out)


