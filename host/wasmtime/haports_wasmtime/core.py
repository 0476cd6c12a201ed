"""The wasmtime binding of the haports core: one instance of build/haports.wasm per Dataplane.

Mirrors the Node binding (host/lib/core.ts) name for name. The record layouts, codes and
counter names come from abi.py, generated from abi/haports.abi.json like the core's own."""

from __future__ import annotations

import ctypes
import json
import os
import struct
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import wasmtime

from .abi import (ACTION_RESET, ACTIONS, C_DROP_REASON_BASE, CHECKSUM_POLICIES, COUNTERS, DESCRIPTOR_BYTES, DESCRIPTOR_FORMAT, LINK_RAW_IP, NONE,
                  OBJECT_COUNTER_BYTES, OBJECT_COUNTERS_FORMAT, PROBE_TARGET, PROBE_TARGET_BYTES, REASONS, RESET,
                  RESET_BYTES, TARGET_STATES, TRANSITIONS, TUPLE, TUPLE_BYTES, VERDICT, VERDICT_BYTES, VERDICT_FORMAT)

_VERDICT = struct.Struct(VERDICT_FORMAT)
_DESCRIPTOR = struct.Struct(DESCRIPTOR_FORMAT)
_OBJECT_COUNTERS = struct.Struct(OBJECT_COUNTERS_FORMAT)

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def default_wasm_path(debug: bool = False) -> str:
    """build/haports.wasm (or haports.debug.wasm) of the repository holding this file."""
    return os.path.join(_REPO, "build", "haports.debug.wasm" if debug else "haports.wasm")


# ---- Errors ----------------------------------------------------------------------------


class ConfigError(Exception):
    """A configuration the core rejected; `errors` are its `path: reason` lines,
    `warnings` its advice, `info` its notes (Azure history) that call for no change.
    The running configuration stays in force."""

    def __init__(self, errors: List[str], warnings: Optional[List[str]] = None, info: Optional[List[str]] = None):
        self.errors = list(errors)
        self.warnings = list(warnings or [])
        self.info = list(info or [])
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


def names_of(described: Dict[str, Any]) -> Dict[str, list]:
    """Names of the configured objects by index, from the core's describe() (as core.ts
    namesOf): frontends, rules, pools, backends (over all pools, in order) and backendPool."""
    return {
        "frontends": [f["name"] for f in described.get("frontends", [])],
        "rules": [r["name"] for r in described.get("rules", [])],
        "pools": [p["name"] for p in described.get("backendPools", [])],
        "backends": [b["name"] for b in described.get("backends", [])],
        "backendPool": [b["pool"] for b in described.get("backends", [])],
    }


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

    Mirrors host/lib/core.ts `Core`: configure(), load(), process(), verdict(), tuple(),
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
        self._described: Optional[Dict[str, Any]] = None
        #: Warnings of the last configure() (applied or rejected): advice, never a rejection.
        self.warnings: List[str] = []
        #: Info of the last configure(): notes (Azure history) that call for no change.
        self.info: List[str] = []
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
        # Info likewise (a core older than the info buffer gave its notes as warnings).
        self.info = (self._lines("infoBufferPtr", "infoLength")
                     if "infoBufferPtr" in self.exports and "infoLength" in self.exports else [])
        if n != 0:
            raise ConfigError(self._lines("errorBufferPtr", "errorLength"), self.warnings, self.info)
        self._described = None
        self.names = names_of(self.describe())

    def describe(self) -> Dict[str, Any]:
        """The running configuration as the core read it (its describe() export): every
        default applied, references as indices, canonical addresses, the probe targets and
        the sections the core does not read ("hostSections") as given."""
        if self._described is None:
            text = self.read_memory(self._ptr("describePtr"), self.exports.describeLength())
            self._described = json.loads(text.decode("utf-8"))
        return self._described

    def _lines(self, ptr_export: str, len_export: str) -> List[str]:
        text = self.read_memory(self._ptr(ptr_export), getattr(self.exports, len_export)()).decode("utf-8", "replace")
        return [line for line in text.split("\n") if line]

    @staticmethod
    def check(config: Union[str, bytes, Dict[str, Any]], wasm_path: Optional[str] = None) -> Dict[str, List[str]]:
        """{"errors": [...], "warnings": [...], "info": [...]} of a configuration, from a fresh core."""
        dp = Dataplane(wasm_path)
        try:
            dp.configure(config)
            return {"errors": [], "warnings": dp.warnings, "info": dp.info}
        except ConfigError as e:
            return {"errors": e.errors, "warnings": e.warnings, "info": e.info}

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
        family = rec[TUPLE["family"]]
        if family == 0:
            return None
        n = 4 if family == 4 else 16
        has_ports = rec[TUPLE["hasPorts"]] != 0
        (sport,) = struct.unpack_from("<H", rec, TUPLE["sport"])
        (dport,) = struct.unpack_from("<H", rec, TUPLE["dport"])
        return {
            "src": format_address(rec[TUPLE["src"]:TUPLE["src"] + n]),
            "dst": format_address(rec[TUPLE["dst"]:TUPLE["dst"] + n]),
            "proto": rec[TUPLE["proto"]],
            "sport": sport if has_ports else None,
            "dport": dport if has_ports else None,
        }

    def resets(self, i: int) -> Optional[Dict[str, bytes]]:
        """The two RSTs of reset verdict i (enableTcpReset), as core.ts resets(): None otherwise."""
        if self.memory[self._ptr("verdictsPtr") + i * VERDICT_BYTES + VERDICT["action"]] != ACTION_RESET:
            return None
        r = self._ptr("resetsPtr") + i * RESET_BYTES
        (len_a,) = struct.unpack_from("<H", self.memory, r + RESET["lengthA"])
        (len_b,) = struct.unpack_from("<H", self.memory, r + RESET["lengthB"])
        return {"toSender": self.read_memory(r + RESET["a"], len_a), "toBackend": self.read_memory(r + RESET["b"], len_b)}

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
        """Global counters by name (abi.COUNTERS), then `reason.NAME` per drop reason, as
        core.ts counters()."""
        vals = self.counter_values()
        out: Dict[str, int] = {name: vals[s] for s, name in enumerate(COUNTERS)}
        for i, reason in enumerate(REASONS):
            if reason:
                out[f"reason.{reason}"] = vals[C_DROP_REASON_BASE + i]
        return out

    def reason_base(self) -> int:
        """The first per-reason counter slot (C_DROP_REASON_BASE)."""
        return C_DROP_REASON_BASE

    def backend_counters(self) -> List[Dict[str, int]]:
        """Per backend: packets, bytes, newFlows."""
        return self._object_counters("backendCountersPtr", self.exports.backendCount())

    def rule_counters(self) -> List[Dict[str, int]]:
        """Per rule: packets, bytes, newFlows."""
        return self._object_counters("ruleCountersPtr", self.exports.ruleCount())

    def _object_counters(self, ptr_export: str, n: int) -> List[Dict[str, int]]:
        base, mem = self._ptr(ptr_export), self.memory
        out = []
        for i in range(n):
            packets, nbytes, new_flows = _OBJECT_COUNTERS.unpack_from(mem, base + i * OBJECT_COUNTER_BYTES)
            out.append({"packets": packets, "bytes": nbytes, "newFlows": new_flows})
        return out

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

    def probe_result(self, target: int, ok: bool, now_ms: float) -> str:
        """One result of probe target `target` (describe()["probeTargets"]) at `now_ms`: the
        core applies the health policy and its backends' health. Returns the transition
        ("none", "up", "down", "initially up", "initially down", "held")."""
        r = self.exports.probeResult(target, 1 if ok else 0, float(now_ms))
        self._refresh()  # a pool's Maglev table may have been rebuilt
        if r < 0:
            raise IndexError(f"no probe target {target}")
        return TRANSITIONS[r]

    def probe_target(self, target: int) -> Dict[str, Any]:
        """Probe target `target`'s state (the core's probeTarget record)."""
        if not 0 <= target < self.exports.probeTargetCount():
            raise IndexError(f"no probe target {target}")
        r = self._ptr("probeTargetsPtr") + target * PROBE_TARGET_BYTES
        rec = self.read_memory(r, PROBE_TARGET_BYTES)
        u32 = lambda f: struct.unpack_from("<I", rec, PROBE_TARGET[f])[0]  # noqa: E731
        u64 = lambda f: struct.unpack_from("<Q", rec, PROBE_TARGET[f])[0]  # noqa: E731
        return {
            "state": TARGET_STATES[rec[PROBE_TARGET["state"]]], "held": rec[PROBE_TARGET["held"]] != 0,
            "successRun": u32("successRun"), "failureRun": u32("failureRun"),
            "transitionsUp": u32("transitionsUp"), "transitionsDown": u32("transitionsDown"),
            "checksSuccess": u64("checksSuccess"), "checksFailure": u64("checksFailure"),
        }

    def set_checksum_policy(self, policy: str) -> None:
        """How the core treats TCP/UDP checksums: "off", "count" or "complete" (core.ts setChecksumPolicy)."""
        if policy not in CHECKSUM_POLICIES or self.exports.setChecksumPolicy(CHECKSUM_POLICIES.index(policy)) < 0:
            raise ValueError(f"no checksum policy {policy!r}")

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

