"""The wasmtime host of the haports core: a binding and a `replay` / `validate` command line.

Loads the release module (build/haports.wasm, made by `npm run build`) into the wasmtime
runtime through the official `wasmtime` wheel from PyPI (it bundles the runtime; the
pinned version is in test/requirements.txt) and mirrors the Node binding host/lib/core.ts
name for name:

    from haports_wasmtime import Dataplane, ConfigError, LINK_ETHERNET

    dp = Dataplane()                      # build/haports.wasm next to this repository
    dp.configure(open("examples/config.json").read())   # or a dict
    dp.load([frame0, frame1])             # write packets into the rx arena
    forwarded = dp.process(2, now_ms=1000.0, link=LINK_ETHERNET)
    dp.verdict(0)   # {'action': 'forward', 'reason': ..., 'flags', 'rule', 'backend', 'frontend', 'hash'}
    dp.tuple(0)     # {'src': '10.0.0.1', 'dst': ..., 'proto': 6, 'sport': ..., 'dport': ...} or None
    dp.packet(0)    # the packet's bytes after processing (the core rewrites in place)

The package: abi.py (codes, records, counters and limits, generated from
abi/haports.abi.json), core.py (the binding), pcap.py (captures), cli.py (the command
line: `python3 -m haports_wasmtime replay …` with host/wasmtime on PYTHONPATH, or
host/wasmtime/haports-wasmtime). docs/abi.md describes the interface.

Every view of wasm memory is re-taken whenever memory may have grown (after configure()
and the health/admin calls, which may rebuild tables, and whenever its size changed), so
a host never reads through a stale buffer.
"""

from .abi import ACTIONS, COUNTERS, FLAGS, LINK_ETHERNET, LINK_RAW_IP, NONE, REASONS
from .cli import main
from .core import ConfigError, CoreAbort, Dataplane, default_wasm_path, format_address, names_of
from .pcap import CaptureError, CapturedPacket, read_capture, write_pcap

__all__ = [
    "Dataplane", "ConfigError", "CoreAbort", "NONE", "LINK_RAW_IP", "LINK_ETHERNET",
    "ACTIONS", "REASONS", "FLAGS", "COUNTERS", "format_address", "names_of", "default_wasm_path",
    "read_capture", "write_pcap", "CaptureError", "CapturedPacket", "main",
]
