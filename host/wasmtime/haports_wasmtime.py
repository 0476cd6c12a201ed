#!/usr/bin/env python3
"""The wasmtime binding of the haports core, and a `replay` command line.

Loads the release module (build/haports.wasm, made by `npm run build`) into the
wasmtime runtime through the official `wasmtime` wheel from PyPI (it bundles the
runtime; the pinned version is in test/requirements.txt) and mirrors the Node
binding host/core.ts name for name:

    from haports_wasmtime import Dataplane, ConfigError, LINK_ETHERNET

    dp = Dataplane()                      # build/haports.wasm next to this repository
    dp.configure(open("examples/config.json").read())   # or a dict
    dp.load([frame0, frame1])             # write packets into the rx arena
    forwarded = dp.process(2, now_ms=1000.0, link=LINK_ETHERNET)
    dp.verdict(0)   # {'action': 'forward', 'reason': ..., 'flags', 'rule', 'backend', 'frontend', 'hash'}
    dp.tuple(0)     # {'src': '10.0.0.1', 'dst': ..., 'proto': 6, 'sport': ..., 'dport': ...} or None
    dp.packet(0)    # the packet's bytes after processing (the core rewrites in place)

The ABI is in docs/abi.md and the record layouts in assembly/layout.ts. Every view
of wasm memory is re-taken whenever memory may have grown (after configure() and
the health/admin calls, which may rebuild tables, and whenever its size changed),
so a host never reads through a stale buffer.

Command line (the same JSON lines and summary as `node bin/haports.mjs replay`):

    python3 host/wasmtime/haports_wasmtime.py replay --config CONFIG.json [--frontend NAME] \\
        [--verdicts OUT.jsonl] [--out OUT.pcap] [--events EVENTS.jsonl] [--quiet] CAPTURE
    python3 host/wasmtime/haports_wasmtime.py validate [--json] CONFIG.json

Exit codes: 0 success, 1 invalid configuration, 2 usage error or unreadable input.
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
import sys
from typing import Any, Callable, Dict, List, NoReturn, Optional, Sequence, Union

import wasmtime

__all__ = [
    "Dataplane", "ConfigError", "CoreAbort", "NONE", "LINK_RAW_IP", "LINK_ETHERNET",
    "ACTIONS", "REASONS", "FLAGS", "COUNTERS", "format_address", "names_of",
    "read_capture", "write_pcap", "CaptureError", "main",
]

# ---- Constants (mirroring host/core.ts, which mirrors assembly/consts.ts and layout.ts) --

NONE = 0xFFFF
LINK_RAW_IP = 0
LINK_ETHERNET = 1

#: ACTION_* by code.
ACTIONS = ["", "forward", "drop", "nomatch", "reset"]
#: REASON_* by code (assembly/consts.ts).
REASONS = [
    None, "not-ip", "truncated", "bad-ip-version", "bad-ip-header", "truncated-l4",
    "bad-l4-header", "ext-header-chain", "bad-icmp-error", "no-healthy-backend", "no-rule",
    "bad-descriptor", "idle-reset",
]
#: FLAG_* (assembly/consts.ts).
FLAGS = {
    "ipv6": 1 << 0, "flowHit": 1 << 1, "flowNew": 1 << 2, "untracked": 1 << 3,
    "fragment": 1 << 4, "frag3Tuple": 1 << 5, "icmpError": 1 << 6, "exactRule": 1 << 7,
    "nextHop": 1 << 8, "evicted": 1 << 9, "failOpen": 1 << 10, "rewritten": 1 << 11, "reply": 1 << 12,
    "established": 1 << 13,
}
#: Global counter slots C_* (assembly/layout.ts), by name, from slot 0. The per-reason
#: slots are the last len(REASONS) slots (layout.ts: COUNTER_SLOTS = C_DROP_REASON_BASE +
#: REASON_COUNT), so their base is found from counterSlots(); a slot this list does not
#: name is reported as "slot.N" by Dataplane.counters().
COUNTERS = [
    "packets", "bytes", "forwarded", "dropped", "nomatch", "flowHits", "flowNew", "untracked",
    "evictions", "frag3Tuple", "icmpErrors", "flowMoved", "batches", "configApplied",
    "configRejected", "flowsDroppedByConfig", "fragHits", "fragEntries", "natForward", "natReply",
    "flowDrained", "flowMoves", "resets", "flowEstablished",
]

DESCRIPTOR_BYTES = 8
VERDICT_BYTES = 16
TUPLE_BYTES = 40
RESET_BYTES = 256
ACTION_RESET = 4
PER_OBJECT_COUNTERS = 3  # u64 packets, bytes, new flows per backend / rule

_VERDICT = struct.Struct("<BBHHHHHI")  # action reason flags rule backend frontend l3 hash
_DESCRIPTOR = struct.Struct("<II")     # offset length

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def default_wasm_path(debug: bool = False) -> str:
    """build/haports.wasm (or haports.debug.wasm) of the repository holding this file."""
    return os.path.join(_REPO, "build", "haports.debug.wasm" if debug else "haports.wasm")


# ---- Errors ----------------------------------------------------------------------------


class ConfigError(Exception):
    """A configuration the core rejected; `errors` are its `path: reason` lines,
    `warnings` its advice. The running configuration stays in force."""

    def __init__(self, errors: List[str], warnings: Optional[List[str]] = None):
        self.errors = list(errors)
        self.warnings = list(warnings or [])
        super().__init__("invalid configuration:\n  " + "\n  ".join(self.errors))


class CoreAbort(RuntimeError):
    """The core called env.abort (a bug in the core, never bad input)."""

    def __init__(self, message: str, file: str, line: int, column: int):
        self.message, self.file, self.line, self.column = message, file, line, column
        super().__init__(f"haports core aborted: {message} at {file}:{line}:{column}")


# ---- Module loading --------------------------------------------------------------------

_engine: Optional[wasmtime.Engine] = None
_modules: Dict[Any, wasmtime.Module] = {}


def _module(path: str) -> "tuple[wasmtime.Engine, wasmtime.Module]":
    """The compiled module at `path`, compiled once per process (and per file version)."""
    global _engine
    if _engine is None:
        _engine = wasmtime.Engine()
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such module (run `npm run build` to make build/haports.wasm)") from None
    key = (os.path.realpath(path), st.st_mtime_ns, st.st_size)
    mod = _modules.get(key)
    if mod is None:
        with open(path, "rb") as f:
            mod = wasmtime.Module(_engine, f.read())
        _modules[key] = mod
    return _engine, mod


def _as_string(mem: wasmtime.Memory, store: Any, ptr: int) -> str:
    """An AssemblyScript string: UTF-16LE, its byte length in the u32 before it."""
    if not ptr:
        return ""
    size = mem.data_len(store)
    if ptr < 4 or ptr > size:
        return f"<string at {ptr}>"
    n = struct.unpack("<I", bytes(mem.read(store, ptr - 4, ptr)))[0] & ~1
    return bytes(mem.read(store, ptr, min(ptr + n, size))).decode("utf-16-le", "replace")


class _Exports:
    """The module's exported functions, called by name: `dp.exports.flowTableUsed()`.
    Every export the core has is reachable, including ones added after this file."""

    def __init__(self, store: wasmtime.Store, exports: Any):
        self._store = store
        self._exports = exports
        self._cache: Dict[str, Callable[..., Any]] = {}

    def __getattr__(self, name: str) -> Callable[..., Any]:
        fn = self._cache.get(name)
        if fn is None:
            ext = self._exports.get(name) if not name.startswith("_") else None
            if not isinstance(ext, wasmtime.Func):
                raise AttributeError(f"the core exports no function {name!r}")
            store = self._store
            fn = lambda *args: ext(store, *args)  # noqa: E731
            self._cache[name] = fn
        return fn

    def __contains__(self, name: str) -> bool:
        return isinstance(self._exports.get(name), wasmtime.Func)


def names_of(config: Dict[str, Any]) -> Dict[str, list]:
    """Names of the configured objects by index, as the core numbers them (core.ts namesOf):
    frontends, rules, pools, backends (over all pools, in order) and backendPool."""
    names: Dict[str, list] = {"frontends": [], "rules": [], "pools": [], "backends": [], "backendPool": []}
    for f in config.get("frontends") or []:
        names["frontends"].append(f.get("name"))
    for r in config.get("rules") or []:
        names["rules"].append(r.get("name"))
    for i, p in enumerate(config.get("backendPools") or []):
        names["pools"].append(p.get("name"))
        for b in p.get("backends") or []:
            names["backends"].append(b.get("name"))
            names["backendPool"].append(i)
    return names


def format_address(b: bytes) -> str:
    """IPv4 dotted quad; IPv6 in RFC 5952 form (lowercase, longest zero run >= 2 as ::)."""
    if len(b) == 4:
        return f"{b[0]}.{b[1]}.{b[2]}.{b[3]}"
    g = [(b[i] << 8) | b[i + 1] for i in range(0, 16, 2)]
    best_at, best_len = -1, 1
    i = 0
    while i < 8:
        if g[i] != 0:
            i += 1
            continue
        j = i
        while j < 8 and g[j] == 0:
            j += 1
        if j - i > best_len:
            best_at, best_len = i, j - i
        i = j
    hexs = lambda xs: ":".join(format(x, "x") for x in xs)  # noqa: E731
    if best_at < 0:
        return hexs(g)
    return f"{hexs(g[:best_at])}::{hexs(g[best_at + best_len:])}"


# ---- The binding -----------------------------------------------------------------------


class Dataplane:
    """One instance of the haports core in its own wasmtime store.

    Mirrors host/core.ts `Core`: configure(), load(), process(), verdict(), tuple(),
    packet(), counters(), set_backend_health(), set_backend_admin(), maglev_table(); raw
    records through verdict_records() / tuple_records(); any export through `exports`.
    Indices (frontends, rules, pools, backends) are in configuration order, backends
    numbered over all pools; NONE (0xFFFF) means none. Not thread-safe (one store).
    """

    def __init__(self, wasm_path: Optional[str] = None, debug: bool = False):
        engine, module = _module(wasm_path or default_wasm_path(debug))
        self.store = wasmtime.Store(engine)
        linker = wasmtime.Linker(engine)
        i32 = wasmtime.ValType.i32()

        def abort(caller: wasmtime.Caller, msg: int, file: int, line: int, col: int) -> None:
            mem = caller.get("memory")
            if isinstance(mem, wasmtime.Memory):
                raise CoreAbort(_as_string(mem, caller, msg), _as_string(mem, caller, file), line, col)
            raise CoreAbort("", "", line, col)

        linker.define_func("env", "abort", wasmtime.FuncType([i32, i32, i32, i32], []), abort, access_caller=True)
        self.instance = linker.instantiate(self.store, module)
        raw = self.instance.exports(self.store)
        mem = raw.get("memory")
        if not isinstance(mem, wasmtime.Memory):
            raise RuntimeError("the module exports no memory")
        self._memory: wasmtime.Memory = mem
        #: Every exported function, by name: `dp.exports.flowTableUsed()`.
        self.exports = _Exports(self.store, raw)
        self.max_batch: int = self.exports.maxBatch()
        self.arena_size: int = self.exports.rxArenaSize()
        #: Names of the configured objects by index (see names_of()).
        self.names: Dict[str, list] = names_of({})
        #: Warnings of the last configure() (applied or rejected): advice, never a rejection.
        self.warnings: List[str] = []
        self._view: Optional[memoryview] = None
        self._view_len = -1
        self._refresh()

    # -- memory views ------------------------------------------------------------------

    def _refresh(self) -> None:
        """Re-takes the view of linear memory (its base and size may have changed)."""
        n = self._memory.data_len(self.store)
        base = ctypes.addressof(self._memory.data_ptr(self.store).contents)
        self._view = memoryview((ctypes.c_ubyte * n).from_address(base)).cast("B")
        self._view_len = n

    @property
    def memory(self) -> memoryview:
        """All of linear memory as a writable memoryview; re-taken when memory grew.
        Do not keep it across configure() or the health/admin calls."""
        if self._memory.data_len(self.store) != self._view_len:
            self._refresh()
        assert self._view is not None
        return self._view

    def _ptr(self, name: str, *args: int) -> int:
        return getattr(self.exports, name)(*args) & 0xFFFFFFFF

    def read_memory(self, ptr: int, length: int) -> bytes:
        """A copy of `length` bytes of linear memory at `ptr`."""
        return bytes(self.memory[ptr:ptr + length])

    # -- configuration ------------------------------------------------------------------

    def configure(self, config: Union[str, bytes, Dict[str, Any]]) -> None:
        """Applies a configuration (JSON text or a dict). Raises ConfigError with every
        `path: reason`; the running configuration is then kept."""
        if isinstance(config, (str, bytes)):
            data = config.encode("utf-8") if isinstance(config, str) else bytes(config)
        else:
            data = json.dumps(config, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        size = self.exports.configBufferSize()
        if len(data) > size:
            raise ConfigError([f"$: configuration larger than {size} bytes"])
        at = self._ptr("configBufferPtr")
        self.memory[at:at + len(data)] = data
        n = self.exports.configure(len(data))
        self._refresh()  # the core allocates its tables here: memory may have grown
        # Warnings: a core without a warning buffer (older than the caveat checks) has none.
        self.warnings = (self._lines("warningBufferPtr", "warningLength")
                         if "warningBufferPtr" in self.exports and "warningLength" in self.exports else [])
        if n != 0:
            raise ConfigError(self._lines("errorBufferPtr", "errorLength"), self.warnings)
        parsed = json.loads(data) if isinstance(config, (str, bytes)) else config
        self.names = names_of(parsed if isinstance(parsed, dict) else {})

    def _lines(self, ptr_export: str, len_export: str) -> List[str]:
        text = self.read_memory(self._ptr(ptr_export), getattr(self.exports, len_export)()).decode("utf-8", "replace")
        return [line for line in text.split("\n") if line]

    @staticmethod
    def check(config: Union[str, bytes, Dict[str, Any]], wasm_path: Optional[str] = None) -> Dict[str, List[str]]:
        """{"errors": [...], "warnings": [...]} of a configuration, from a fresh core."""
        dp = Dataplane(wasm_path)
        try:
            dp.configure(config)
            return {"errors": [], "warnings": dp.warnings}
        except ConfigError as e:
            return {"errors": e.errors, "warnings": e.warnings}

    @staticmethod
    def validate(config: Union[str, bytes, Dict[str, Any]], wasm_path: Optional[str] = None) -> List[str]:
        """The errors of a configuration (none when valid)."""
        return Dataplane.check(config, wasm_path)["errors"]

    # -- packets ----------------------------------------------------------------------

    def load(self, packets: Sequence[Union[bytes, bytearray, memoryview]]) -> None:
        """Copies `packets` into the rx arena, one after another, and writes descriptors
        0..len-1. (The zero-copy path: arena() + set_descriptor().)"""
        if len(packets) > self.max_batch:
            raise ValueError(f"batch of {len(packets)} > {self.max_batch}")
        total = sum(len(p) for p in packets)
        if total > self.arena_size:
            raise ValueError("batch larger than the rx arena")
        mem = self.memory
        base = self._ptr("rxArenaPtr")
        mem[base:base + total] = b"".join(packets)
        desc = bytearray(DESCRIPTOR_BYTES * len(packets))
        off = 0
        for i, p in enumerate(packets):
            _DESCRIPTOR.pack_into(desc, i * DESCRIPTOR_BYTES, off, len(p))
            off += len(p)
        d = self._ptr("descriptorsPtr")
        mem[d:d + len(desc)] = desc

    def arena(self) -> memoryview:
        """The rx arena as a writable view of wasm memory (valid until the next configure())."""
        base = self._ptr("rxArenaPtr")
        return self.memory[base:base + self.arena_size]

    def set_descriptor(self, i: int, offset: int, length: int) -> None:
        """Descriptor i: packet at `offset` (from the arena start), `length` bytes."""
        _DESCRIPTOR.pack_into(self.memory, self._ptr("descriptorsPtr") + i * DESCRIPTOR_BYTES, offset, length)

    def process(self, count: int, now_ms: float, ingress: int = NONE, link: int = LINK_RAW_IP) -> int:
        """Runs descriptors [0, count) at `now_ms` (milliseconds on a clock that never goes
        back). `ingress`: the frontend index the batch arrived on (next hop), or NONE to
        match by destination address; `link`: LINK_RAW_IP or LINK_ETHERNET.
        Returns the number forwarded; ValueError when the core rejects the arguments."""
        r = self.exports.processBatch(count, float(now_ms), ingress, link)
        if r < 0:
            raise ValueError(f"processBatch rejected its arguments (count {count}, ingress {ingress}, link {link})")
        return r

    def packet(self, i: int) -> bytes:
        """Packet i's bytes in the arena after processing (a copy; rewritten in place)."""
        off, length = _DESCRIPTOR.unpack_from(self.memory, self._ptr("descriptorsPtr") + i * DESCRIPTOR_BYTES)
        base = self._ptr("rxArenaPtr") + off
        return self.read_memory(base, length)

    def verdict(self, i: int) -> Dict[str, Any]:
        """Packet i's verdict: action, reason, flags, rule, backend, frontend, hash (as core.ts)."""
        action, reason, flags, rule, backend, frontend, _l3, h = _VERDICT.unpack_from(
            self.memory, self._ptr("verdictsPtr") + i * VERDICT_BYTES)
        name = REASONS[reason] if reason < len(REASONS) else None
        return {
            "action": ACTIONS[action] if action < len(ACTIONS) else None,
            # core.ts reasonName(): None for 0, `reason-N` for an unknown code.
            "reason": None if reason == 0 else (name if name is not None else f"reason-{reason}"),
            "flags": flags, "rule": rule, "backend": backend, "frontend": frontend, "hash": h,
        }

    def tuple(self, i: int) -> Optional[Dict[str, Any]]:
        """Packet i's own header fields as parsed; None when no IP header was parsed."""
        t = self._ptr("tuplesPtr") + i * TUPLE_BYTES
        rec = self.read_memory(t, TUPLE_BYTES)
        family = rec[37]
        if family == 0:
            return None
        n = 4 if family == 4 else 16
        has_ports = rec[38] != 0
        sport, dport = struct.unpack_from("<HH", rec, 32)
        return {
            "src": format_address(rec[0:n]),
            "dst": format_address(rec[16:16 + n]),
            "proto": rec[36],
            "sport": sport if has_ports else None,
            "dport": dport if has_ports else None,
        }

    def resets(self, i: int) -> Optional[Dict[str, bytes]]:
        """The two RSTs of reset verdict i (enableTcpReset), as core.ts resets(): None otherwise."""
        if self.memory[self._ptr("verdictsPtr") + i * VERDICT_BYTES] != ACTION_RESET:
            return None
        r = self._ptr("resetsPtr") + i * RESET_BYTES
        len_a, len_b = struct.unpack_from("<HH", self.memory, r)
        return {"toSender": self.read_memory(r + 8, len_a), "toBackend": self.read_memory(r + 128, len_b)}

    def reset_records(self, count: int) -> bytes:
        """The raw 256-byte reset records of packets [0, count)."""
        return self.read_memory(self._ptr("resetsPtr"), count * RESET_BYTES)

    def verdict_records(self, count: int) -> bytes:
        """The raw 16-byte verdict records of packets [0, count)."""
        return self.read_memory(self._ptr("verdictsPtr"), count * VERDICT_BYTES)

    def tuple_records(self, count: int) -> bytes:
        """The raw 40-byte tuple records of packets [0, count)."""
        return self.read_memory(self._ptr("tuplesPtr"), count * TUPLE_BYTES)

    # -- state ------------------------------------------------------------------------

    def counter_values(self) -> List[int]:
        """Every global u64 counter slot, counterSlots() of them."""
        n = self.exports.counterSlots()
        return list(struct.unpack_from(f"<{n}Q", self.memory, self._ptr("countersPtr")))

    def counters(self) -> Dict[str, int]:
        """Global counters by the names of core.ts, then `reason.NAME` per drop reason;
        slots this binding has no name for (a newer core) appear as `slot.N`."""
        vals = self.counter_values()
        base = self.reason_base()
        out: Dict[str, int] = {}
        for s, v in enumerate(vals):
            if s < base and s < len(COUNTERS):
                out[COUNTERS[s]] = v
            elif s >= base and s - base < len(REASONS) and REASONS[s - base]:
                out[f"reason.{REASONS[s - base]}"] = v
            elif s >= base and s - base == 0:
                continue  # REASON_NONE is never counted
            else:
                out[f"slot.{s}"] = v
        return out

    def reason_base(self) -> int:
        """The first per-reason counter slot (C_DROP_REASON_BASE)."""
        return max(0, self.exports.counterSlots() - len(REASONS))

    def backend_counters(self) -> List[Dict[str, int]]:
        """Per backend: packets, bytes, newFlows."""
        return self._object_counters("backendCountersPtr", self.exports.backendCount())

    def rule_counters(self) -> List[Dict[str, int]]:
        """Per rule: packets, bytes, newFlows."""
        return self._object_counters("ruleCountersPtr", self.exports.ruleCount())

    def _object_counters(self, ptr_export: str, n: int) -> List[Dict[str, int]]:
        vals = struct.unpack_from(f"<{n * PER_OBJECT_COUNTERS}Q", self.memory, self._ptr(ptr_export))
        return [{"packets": vals[3 * i], "bytes": vals[3 * i + 1], "newFlows": vals[3 * i + 2]} for i in range(n)]

    def set_backend_health(self, backend: int, up: bool) -> None:
        """Probe result for backend `backend` (index over all pools)."""
        r = self.exports.setBackendHealth(backend, 1 if up else 0)
        self._refresh()  # a pool's Maglev table may have been rebuilt
        if r < 0:
            raise IndexError(f"no backend {backend}")

    def set_backend_admin(self, backend: int, state: str) -> None:
        """Admin state 'up' or 'draining'."""
        if state not in ("up", "draining"):
            raise ValueError(f"admin state {state!r} is not 'up' or 'draining'")
        r = self.exports.setBackendAdmin(backend, 2 if state == "draining" else 0)
        self._refresh()
        if r < 0:
            raise IndexError(f"no backend {backend}")

    def backend_state(self, backend: int) -> int:
        return self.exports.backendState(backend)

    def maglev_table(self, pool: int) -> bytes:
        """Pool `pool`'s Maglev table: M little-endian u16 backend indices (a copy)."""
        ptr = self._ptr("maglevTablePtr", pool)
        m = self.exports.maglevTableSize(pool)
        return self.read_memory(ptr, m * 2)

    def flow_table_used(self) -> int:
        return self.exports.flowTableUsed()

    def flow_table_capacity(self) -> int:
        return self.exports.flowTableCapacity()


# ---- Captures (a port of host/pcap.ts, same results and messages) -----------------------

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


# ---- Command line (mirrors host/cli.ts) ----------------------------------------------------

USAGE = """usage: haports_wasmtime.py <command> [options]

commands:
  replay    run a capture through the dataplane (in wasmtime) and report a verdict per packet
  validate  check a configuration file

run 'haports_wasmtime.py <command> --help' for the options of a command.
exit codes: 0 success, 1 invalid configuration, 2 usage error or unreadable input.
"""

REPLAY_USAGE = """usage: haports_wasmtime.py replay --config CONFIG.json [--verdicts OUT.jsonl] [--out OUT.pcap]
                      [--events EVENTS.jsonl] [--frontend NAME] [--quiet] [--wasm MODULE.wasm]
                      INPUT.pcap|INPUT.pcapng

Runs every packet of INPUT (pcap or pcapng; link types Ethernet, raw IP) through the
dataplane in wasmtime and writes one JSON line per packet, as `haports replay` does:
  {"index","verdict":"forward"|"drop"|"nomatch"|"reset","rule","backend","reason",
   "tuple":{"src","dst","proto","sport","dport"}}
to --verdicts (or standard output), then a summary (to standard error when the verdicts
go to standard output). "reset": a TCP flow of an enableTcpReset rule sent after its
idle timeout; instead of the packet, two RSTs leave (in --out): one back to its sender,
one on to the backend.

  --config FILE     haports configuration (JSON)
  --verdicts FILE   write the verdict lines here instead of standard output
  --out FILE        write the forwarded packets as they leave (rewritten) to a pcap file,
                    and for each reset verdict its two RSTs
  --events FILE     backend state changes, one JSON line each, applied before packet "at":
                    {"at": 120, "backend": "nva-1", "state": "down"|"up"|"draining"}
                    (every backend of that name, in every pool)
  --frontend NAME   treat the capture as next-hop traffic routed to frontend NAME
  --quiet           no summary
  --wasm FILE       the core module (default: build/haports.wasm)
"""

VALIDATE_USAGE = """usage: haports_wasmtime.py validate [--json] [--wasm MODULE.wasm] CONFIG.json

Checks a configuration: shape, references, ranges and the HA-ports caveats. Prints
one 'path: reason' line per error, then 'warning: path: reason' lines (warnings never
fail validation); exit 0 when valid, 1 when invalid, 2 when the file cannot be read.

  --json   print {"valid": bool, "errors": [...], "warnings": [...]} instead
"""

#: A batch ends at the core's batch size, a link-type change, or a second of capture time.
BATCH_SPAN_MS = 1000


class UsageError(Exception):
    pass


def _parse_args(argv: List[str], strings: Sequence[str], flags: Sequence[str]) -> "tuple[Dict[str, Any], List[str]]":
    values: Dict[str, Any] = {}
    positionals: List[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            positionals.extend(argv[i + 1:])
            break
        if a in ("-h", "--help"):
            values["help"] = True
        elif a.startswith("--"):
            name, eq, val = a[2:].partition("=")
            if name in strings:
                if not eq:
                    i += 1
                    if i >= len(argv):
                        raise UsageError(f"option '--{name} <value>' argument missing")
                    val = argv[i]
                values[name] = val
            elif name in flags and not eq:
                values[name] = True
            else:
                raise UsageError(f"unknown option '{a}'\n{USAGE}".rstrip("\n"))
        elif a.startswith("-") and a != "-":
            raise UsageError(f"unknown option '{a}'\n{USAGE}".rstrip("\n"))
        else:
            positionals.append(a)
        i += 1
    return values, positionals


def _read_text(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as e:
        raise UsageError(f"cannot read {what} {path}: {_errcode(e)}")


def _errcode(e: OSError) -> str:
    import errno
    return errno.errorcode.get(e.errno or 0, str(e))


def _link_of(linktype: int) -> int:
    if linktype == LINKTYPE_ETHERNET:
        return LINK_ETHERNET
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        return LINK_RAW_IP
    return -1


def _read_events(path: str, backend_names: List[str]) -> List[Dict[str, Any]]:
    """An events file: one {"at", "backend", "state"} object per line, sorted by "at"."""
    out = []
    for i, line in enumerate(_read_text(path, "events").split("\n")):
        if line.strip() == "":
            continue
        where = f"{path}:{i + 1}"
        try:
            e = json.loads(line)
        except ValueError:
            raise UsageError(f"{where}: not JSON")
        at = e.get("at") if isinstance(e, dict) else None
        if isinstance(at, bool) or not isinstance(at, (int, float)) or at != at or int(at) != at or at < 0:
            raise UsageError(f'{where}: "at" must be a packet index')
        if e.get("state") not in ("up", "down", "draining"):
            raise UsageError(f'{where}: "state" must be "up", "down" or "draining"')
        name = e.get("backend")
        backends = [b for b, n in enumerate(backend_names) if isinstance(name, str) and n == name]
        if not backends:
            raise UsageError(f"{where}: no backend named {_dumps(name) if 'backend' in e else 'undefined'}")
        out.append({"at": int(at), "backends": backends, "state": e["state"], "line": i + 1})
    out.sort(key=lambda ev: (ev["at"], ev["line"]))
    return out


def _apply_event(dp: "Dataplane", e: Dict[str, Any]) -> None:
    """down/up is the probe's verdict; draining/up the operator's. "up" clears both."""
    for b in e["backends"]:
        if e["state"] == "down":
            dp.set_backend_health(b, False)
        elif e["state"] == "draining":
            dp.set_backend_admin(b, "draining")
        else:
            dp.set_backend_health(b, True)
            dp.set_backend_admin(b, "up")


def _js_sort_key(s: str) -> "tuple[int, ...]":
    """JavaScript's default sort order (UTF-16 code units)."""
    return tuple(s.encode("utf-16-be"))


def _dumps(v: Any) -> str:
    """JSON.stringify of plain values."""
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def replay(argv: List[str], out: Any, err: Any) -> int:
    values, positionals = _parse_args(argv, ("config", "verdicts", "out", "frontend", "events", "wasm"),
                                    ("quiet",))
    if values.get("help"):
        out.write(REPLAY_USAGE)
        return 0
    if "config" not in values:
        raise UsageError("replay: --config is required")
    if len(positionals) != 1:
        raise UsageError("replay: give exactly one capture file")
    config_path, capture_path = values["config"], positionals[0]
    config_text = _read_text(config_path, "configuration")
    dp = Dataplane(values.get("wasm"))
    try:
        dp.configure(config_text)
    except ConfigError as e:
        err.write(f"haports: {config_path} is not a valid configuration:\n")
        for line in e.errors:
            err.write(f"  {line}\n")
        return 1
    ingress = NONE
    if "frontend" in values:
        name = values["frontend"]
        if name not in dp.names["frontends"]:
            raise UsageError(f"replay: no frontend named {_dumps(name)} in {config_path}")
        ingress = dp.names["frontends"].index(name)
    events = _read_events(values["events"], dp.names["backends"]) if "events" in values else []
    next_event = 0
    try:
        with open(capture_path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UsageError(f"cannot read capture {capture_path}: {_errcode(e)}")
    try:
        _, packets = read_capture(data)
    except CaptureError as e:
        raise UsageError(f"{capture_path}: {e}")

    verdict_file = open(values["verdicts"], "w", encoding="utf-8", newline="\n") if "verdicts" in values else None
    vout = verdict_file if verdict_file is not None else out
    summary_to = out if verdict_file is not None else err
    forwarded: List["tuple[bytes, int, int]"] = []
    out_linktype = -1
    per_verdict = {"forward": 0, "drop": 0, "nomatch": 0, "reset": 0}
    per_backend: Dict[str, int] = {}
    per_reason: Dict[str, int] = {}
    flows: Dict[str, "tuple[set, set]"] = {}
    names = dp.names
    lines: List[str] = []
    try:
        start = 0
        while start < len(packets):
            # Events due before this packet, then a batch that stops at the next event.
            while next_event < len(events) and events[next_event]["at"] <= start:
                _apply_event(dp, events[next_event])
                next_event += 1
            stop_at = events[next_event]["at"] if next_event < len(events) else len(packets)
            first = packets[start]
            link = _link_of(first.linktype)
            if link < 0:
                raise UsageError(f"{capture_path}: packet {start}: unsupported link type {first.linktype}")
            t0 = first.ts_sec * 1000 + first.ts_nsec / 1e6
            end = start
            while (end < len(packets) and end < stop_at and end - start < dp.max_batch and packets[end].linktype == first.linktype
                   and packets[end].ts_sec * 1000 + packets[end].ts_nsec / 1e6 - t0 < BATCH_SPAN_MS):
                end += 1
            dp.load([p.data for p in packets[start:end]])
            dp.process(end - start, t0, ingress, link)
            for i in range(end - start):
                v = dp.verdict(i)
                rule = names["rules"][v["rule"]] if v["rule"] != NONE and v["rule"] < len(names["rules"]) else None
                backend = (names["backends"][v["backend"]]
                           if v["backend"] != NONE and v["backend"] < len(names["backends"]) else None)
                reason = None if v["action"] == "forward" else v["reason"]
                t = dp.tuple(i)
                lines.append(_dumps({"index": start + i, "verdict": v["action"], "rule": rule, "backend": backend,
                                     "reason": reason, "tuple": t}))
                per_verdict[v["action"]] = per_verdict.get(v["action"], 0) + 1
                if backend is not None and v["action"] == "forward":
                    per_backend[backend] = per_backend.get(backend, 0) + 1
                if reason is not None:
                    per_reason[reason] = per_reason.get(reason, 0) + 1
                if t and backend is not None and v["action"] == "forward":
                    js = lambda x: "null" if x is None else str(x)  # noqa: E731
                    a = f"{t['src']}|{js(t['sport'])}"
                    b = f"{t['dst']}|{js(t['dport'])}"
                    key = f"{t['proto']}|" + (a + "|" + b if _js_sort_key(a) < _js_sort_key(b) else b + "|" + a)
                    fl = flows.setdefault(key, (set(), set()))
                    fl[0].add(backend)
                    fl[1].add(a)
                if "out" in values and v["action"] in ("forward", "reset"):
                    if out_linktype < 0:
                        out_linktype = first.linktype
                    if first.linktype == out_linktype:
                        p = packets[start + i]
                        if v["action"] == "forward":
                            forwarded.append((dp.packet(i), p.ts_sec, p.ts_nsec))
                        else:
                            # enableTcpReset: the two RSTs leave instead, the one to the sender first.
                            rst = dp.resets(i)
                            forwarded.append((rst["toSender"], p.ts_sec, p.ts_nsec))
                            forwarded.append((rst["toBackend"], p.ts_sec, p.ts_nsec))
            if len(lines) >= 4096:
                vout.write("\n".join(lines) + "\n")
                lines = []
            start = end
        if lines:
            vout.write("\n".join(lines) + "\n")
        vout.flush()
    finally:
        if verdict_file is not None:
            verdict_file.close()
    if "out" in values:
        with open(values["out"], "wb") as f:
            f.write(write_pcap(forwarded, LINKTYPE_ETHERNET if out_linktype < 0 else out_linktype))

    if not values.get("quiet"):
        s = [f"packets {len(packets)}: forward {per_verdict['forward']}, drop {per_verdict['drop']}, "
             f"nomatch {per_verdict['nomatch']}"
             + (f", reset {per_verdict['reset']} (idle past the timeout: RSTs sent to both ends)" if per_verdict["reset"] else "")]
        for name in names["backends"]:
            if name in per_backend:
                s.append(f"  backend {name}: {per_backend[name]}")
        for reason, n in sorted(per_reason.items(), key=lambda kv: _js_sort_key(f"{kv[0]},{kv[1]}")):
            s.append(f"  {reason}: {n}")
        both = sum(1 for f in flows.values() if len(f[1]) > 1)
        split = sum(1 for f in flows.values() if len(f[0]) > 1)
        s.append(f"flows {len(flows)} ({both} seen in both directions): "
                 + ("each stayed on one backend" if split == 0 else f"{split} reached more than one backend"))
        c = dp.counters()
        g = lambda k: c.get(k, 0)  # noqa: E731
        s.append(f"flows tracked {dp.flow_table_used()} of {dp.flow_table_capacity()}, "
                 f"new {g('flowNew')}, hits {g('flowHits')}"
                 + (f", evicted {g('evictions')}, untracked {g('untracked')}" if g("evictions") or g("untracked") else "")
                 + (f", moved off down backends {g('flowMoved')}, off drained {g('flowDrained')}"
                    if g("flowMoved") or g("flowDrained") else ""))
        if g("natForward") or g("natReply"):
            s.append(f"nat: {g('natForward')} rewritten to backends, {g('natReply')} replies translated back")
        if g("fragEntries") or g("fragHits") or g("frag3Tuple"):
            s.append(f"fragments: {g('fragEntries')} first, {g('fragHits')} followed their first, "
                     f"{g('frag3Tuple')} hashed on the 3-tuple")
        summary_to.write("\n".join(s) + "\n")
    return 0


def validate(argv: List[str], out: Any) -> int:
    values, positionals = _parse_args(argv, ("wasm",), ("json",))
    if values.get("help"):
        out.write(VALIDATE_USAGE)
        return 0
    if len(positionals) != 1:
        raise UsageError("validate: give exactly one configuration file")
    text = _read_text(positionals[0], "configuration")
    result = Dataplane.check(text, values.get("wasm"))
    errors, warnings = result["errors"], result["warnings"]
    if values.get("json"):
        out.write(_dumps({"valid": not errors, "errors": errors, "warnings": warnings}) + "\n")
    else:
        if not errors:
            out.write(f"{positionals[0]}: valid\n")
        else:
            out.write("\n".join(errors) + "\n")
        for w in warnings:
            out.write(f"warning: {w}\n")
    return 0 if not errors else 1


def main(argv: Optional[List[str]] = None, out: Any = None, err: Any = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    command, rest = (argv[0], argv[1:]) if argv else (None, [])
    try:
        if command == "replay":
            return replay(rest, out, err)
        if command == "validate":
            return validate(rest, out)
        if command in (None, "-h", "--help", "help"):
            out.write(USAGE)
            return 2 if command is None else 0
        raise UsageError(f"unknown command {_dumps(command)}")
    except UsageError as e:
        err.write(f"haports: {e}\n")
        return 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        sys.exit(0)
