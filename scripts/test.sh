#!/usr/bin/env bash
# The whole test suite, as CI runs it: install, build, then every kind of test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
echo "== the generated interface files match abi/haports.abi.json"
node scripts/gen-abi.mjs --check
node scripts/gen-config-doc.mjs --check
npm run build
npm run build:envoy-native

echo "== AssemblyScript unit tests (as-pect)"
npx asp --config as-pect.config.js
echo "== host tests (node --test)"
node --test test/host/ test/arm/
echo "== health policy: one table of probe sequences through the pump, the Envoy filter and wasmtime"
node --test test/health/
python3 test/health/test_transitions.py
echo "== differential test against tshark"
python3 test/diff/test_tshark_diff.py
python3 test/diff/test_linktypes.py
echo "== forwarding scenarios: failover policies, NAT checksums, fragments, TCP resets; the flow table under attack"
node --test test/scenarios/
python3 test/scenarios/test_scenarios.py
echo "== conformance: V8, wasmtime and native (wasm2c) give byte-identical results"
python3 test/conformance/test_conformance.py
echo "== Envoy: end to end in a real Envoy (the Wasm filter and the native dynamic module), and the proxy-wasm filter in a JS host"
node --test --test-concurrency=1 test/envoy/
echo "== packet pump: tunnels, probes, metrics, then end to end in network namespaces (root)"
node --test test/pump/
echo "== the same pump tests over the native I/O path (recvmmsg/sendmmsg through wasm memory)"
HAPORTS_PUMP_IO=native node --test test/pump/pump.test.mjs test/pump/metrics.test.mjs
python3 test/pump/test_pump_netns.py
echo "== the lab: kernel VXLAN endpoints, stateful iptables firewalls, iperf3, curl and ping through the pump (offload on)"
python3 test/pump/test_pump_lab.py
echo "== the fleet: three pumps behind a BGP/ECMP router (BIRD, BFD), stateful firewalls; kills, joins, reloads and appliance failures under load"
python3 test/fleet/test_fleet.py
