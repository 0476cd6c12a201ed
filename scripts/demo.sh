#!/usr/bin/env bash
# The demo: replays the bundled capture (examples/sample.pcap) through the dataplane with
# the bundled configuration (examples/config.json), an HA-ports rule over four NVAs, as
# next-hop traffic of frontend fe-v4 (spokes routed through the NVAs, both directions).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -f build/haports.wasm ] && [ -f build/host/cli.mjs ] || npm run --silent build >/dev/null
out=build/demo-verdicts.jsonl
echo "\$ haports replay --config examples/config.json --frontend fe-v4 --verdicts $out examples/sample.pcap"
node bin/haports.mjs replay --config examples/config.json --frontend fe-v4 --verdicts "$out" examples/sample.pcap
echo
echo "first verdicts ($out):"
head -n 6 "$out"
