#!/usr/bin/env python3
"""One health policy, every host: the probe sequences of transitions.json fed to the
wasmtime host (Dataplane.probe_result on the same clock as the Node hosts), expected to
report the same transitions at the same steps and to leave the backend in the same state
(transitions.test.mjs does the same for the pump and the Envoy filter).

    python3 test/health/test_transitions.py        (after npm run build)
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "host", "wasmtime"))

from haports_wasmtime import Dataplane  # noqa: E402

INTERVAL_MS = 1000
ADDRESS = "10.0.1.1"
CODE = {"none": ".", "initially up": "u", "initially down": "d", "up": "U", "down": "D", "held": "H"}


def config_of(c):
    """The configuration of a case (as transitions.test.mjs configOf)."""
    return {
        "frontends": [{"name": f"fe-{p['name']}", "address": f"10.0.0.{i + 1}"} for i, p in enumerate(c["probes"])],
        "backendPools": [{"name": "p", "backends": [{"name": "b", "address": ADDRESS}]}],
        "probes": [{"name": p["name"], "protocol": "http", "port": 8080, "path": "/health", "intervalSeconds": 1,
                    "threshold": p["threshold"]} for p in c["probes"]],
        "rules": [{"name": f"r-{p['name']}", "frontend": f"fe-{p['name']}", "backendPool": "p", "protocol": "all",
                   "frontendPort": 0, "backendPort": 0, "floatingIp": True, "probe": p["name"]} for p in c["probes"]],
        "health": {"damping": c["damping"]},
    }


def via_wasmtime(c):
    dp = Dataplane()
    dp.configure(config_of(c))
    targets = {dp.describe()["probes"][t["probe"]]["name"]: t["index"] for t in dp.describe()["probeTargets"]}
    out = {"transitions": {p["name"]: "" for p in c["probes"]}, "backend": ""}
    n = len(c["results"][c["probes"][0]["name"]])
    for k in range(n):
        for p in c["probes"]:
            name = p["name"]
            transition = dp.probe_result(targets[name], c["results"][name][k] == "+", k * INTERVAL_MS)
            out["transitions"][name] += CODE[transition]
        out["backend"] += "d" if dp.backend_state(0) == 1 else "u"
    return out


def main():
    with open(os.path.join(HERE, "transitions.json"), encoding="utf-8") as f:
        table = json.load(f)
    failed = 0
    for c in table["cases"]:
        got = via_wasmtime(c)
        want = {"transitions": c["transitions"], "backend": c["backend"]}
        if got == want:
            print(f"ok   wasmtime: {c['name']}")
        else:
            failed += 1
            print(f"FAIL wasmtime: {c['name']}\n     want {want}\n     got  {got}")
    print(f"{len(table['cases']) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
