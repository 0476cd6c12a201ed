"""python3 -m haports_wasmtime replay|validate … (host/wasmtime on PYTHONPATH)."""

from .cli import run

run()
