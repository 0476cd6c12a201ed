#!/usr/bin/env bash
# The demo: `haports demo` — generated traffic through an HA-ports rule over four
# appliances, showing spread, stickiness, symmetry, failover and recovery. Installs and
# builds what it needs first. Extra arguments go to `haports demo` (e.g. --flows 100000).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -f build/haports.wasm ] && [ -f build/host/cli.mjs ] || npm run --silent build >/dev/null
node bin/haports.mjs demo "$@"
