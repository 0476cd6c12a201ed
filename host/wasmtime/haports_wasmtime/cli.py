"""The Python host's command line: `replay` and `validate`, with the output, options and exit
codes of `haports replay` / `haports validate` (host/cli/cli.ts), so the two can be compared
line for line (test/conformance/test_conformance.py)."""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List, Optional, Sequence

from .abi import LINK_ETHERNET, LINK_RAW_IP, NONE
from .core import ConfigError, Dataplane
from .pcap import (LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_RAW, CaptureError, read_capture,
                   write_pcap)

USAGE = """usage: haports-wasmtime <command> [options]

commands:
  replay    run a capture through the dataplane (in wasmtime) and report a verdict per packet
  validate  check a configuration file

Each is `haports <command>` run in wasmtime instead of V8: the same options, output and
exit codes (0 success, 1 invalid configuration, 2 usage error or unreadable input);
`haports <command> --help` explains them.
"""

REPLAY_USAGE = """usage: haports-wasmtime replay --config CONFIG.json [--verdicts OUT.jsonl] [--out OUT.pcap]
                       [--events EVENTS.jsonl] [--frontend NAME] [--quiet] [--wasm MODULE.wasm]
                       INPUT.pcap|INPUT.pcapng

`haports replay` in wasmtime: the same options, verdict lines and summary (`haports replay
--help` explains them), plus
  --wasm FILE       the core module (default: build/haports.wasm)
"""

VALIDATE_USAGE = """usage: haports-wasmtime validate [--json] [--wasm MODULE.wasm] CONFIG.json

`haports validate` in wasmtime: the same output and exit codes, plus
  --wasm FILE       the core module (default: build/haports.wasm)
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
    try:
        text = _read_text(positionals[0], "configuration")
    except UsageError as e:
        # --json answers in JSON even when the file cannot be read (exit 2 all the same).
        if values.get("json"):
            out.write(_dumps({"valid": False, "errors": [{"path": "$", "message": str(e)}], "warnings": [], "info": []})
                      + "\n")
            return 2
        raise
    result = Dataplane.check(text, values.get("wasm"))
    errors, warnings, info = result["errors"], result["warnings"], result["info"]
    if values.get("json"):
        # Every line is `path: message` (the core's style): as objects for programs.
        def split(line: str) -> dict:
            path, sep, message = line.partition(": ")
            return {"path": path, "message": message} if sep else {"path": "$", "message": line}
        out.write(_dumps({"valid": not errors, "errors": [split(e) for e in errors],
                          "warnings": [split(w) for w in warnings], "info": [split(i) for i in info]}) + "\n")
    else:
        if not errors:
            out.write(f"{positionals[0]}: valid\n")
        else:
            out.write("\n".join(errors) + "\n")
        for w in warnings:
            out.write(f"warning: {w}\n")
        for i in info:
            out.write(f"info: {i}\n")
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




def run() -> None:
    """The console entry point: main() with the process's arguments and exit status."""
    try:
        sys.exit(main())
    except BrokenPipeError:
        sys.exit(0)
