// One health policy, every host: the probe sequences of transitions.json fed to the pump
// (its HealthMonitor reporting to the core, on a fake clock) and to the Envoy filter (in
// the JS proxy-wasm host: probes sent on its tick, answered 200 or 503), each expected to
// report the same transitions at the same steps and to leave the backend in the same
// state. test_transitions.py feeds the same table to the wasmtime host.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Core } from '../../build/host/core.mjs';
import { HealthMonitor } from '../../build/host/probes.mjs';
import { ProxyWasmHost } from '../envoy/proxywasm-host.mjs';

const table = JSON.parse(readFileSync(new URL('./transitions.json', import.meta.url), 'utf8'));
const INTERVAL_MS = 1000;
const ADDRESS = '10.0.1.1';

/** The configuration of a case: one backend, one probe per rule, one rule per frontend. */
export function configOf(c) {
  return {
    frontends: c.probes.map((p, i) => ({ name: `fe-${p.name}`, address: `10.0.0.${i + 1}` })),
    backendPools: [{ name: 'p', backends: [{ name: 'b', address: ADDRESS }] }],
    probes: c.probes.map((p) => ({ name: p.name, protocol: 'http', port: 8080, path: '/health', intervalSeconds: 1, threshold: p.threshold })),
    rules: c.probes.map((p) => ({
      name: `r-${p.name}`, frontend: `fe-${p.name}`, backendPool: 'p', protocol: 'all', frontendPort: 0, backendPort: 0,
      floatingIp: true, probe: p.name,
    })),
    health: { damping: c.damping },
  };
}

const steps = (c) => c.results[c.probes[0].name].length;
const CODE = { 'initially up': 'u', 'initially down': 'd', up: 'U', down: 'D', held: 'H' };

/** What one host reported: transitions per probe per step, the backend's state per step. */
function blank(c) {
  return { transitions: Object.fromEntries(c.probes.map((p) => [p.name, ''])), backend: '' };
}

function viaPump(c) {
  const core = Core.load();
  core.configure(configOf(c));
  let now = 0;
  let last = null;
  const monitor = new HealthMonitor(core, {
    now: () => now,
    log: (level, msg) => {
      if (msg === 'backend held down by flap damping') last = 'H';
      else if (msg.startsWith('backend ')) last = CODE[msg.slice(8)];
    },
  });
  const out = blank(c);
  for (let k = 0; k < steps(c); k++) {
    now = k * INTERVAL_MS;
    for (const p of c.probes) {
      const target = monitor.targets.find((t) => t.probe.name === p.name);
      last = null;
      const ok = c.results[p.name][k] === '+';
      monitor.record(target, { ok, detail: ok ? 'HTTP 200' : 'HTTP 503' });
      out.transitions[p.name] += last ?? '.';
    }
    out.backend += core.exports.backendState(0) === 1 ? 'd' : 'u';
  }
  return out;
}

function viaEnvoyFilter(c) {
  const host = new ProxyWasmHost();
  const config = configOf(c);
  config.filter = { upstream: 'cluster', clusterName: '{backend}' };
  assert.ok(host.configure(config), host.errors().join('\n'));
  const out = blank(c);
  for (let k = 0; k < steps(c); k++) {
    // The first probes go out at the first tick, then one interval apart.
    host.advance(k === 0 ? 50 : INTERVAL_MS);
    const calls = [...host.calls.values()];
    assert.equal(calls.length, c.probes.length, `step ${k}: one probe per target is due`);
    const from = host.logs.length;
    for (const p of c.probes) {
      const call = calls.find((x) => x.headers.get('user-agent') === `haports-probe/${p.name}`);
      assert.equal(call.headers.get('x-envoy-original-dst-host'), `${ADDRESS}:8080`);
      const before = host.logs.length;
      host.respond(call.id, c.results[p.name][k] === '+' ? { status: 200, body: 'ok' } : { status: 503, body: 'no' });
      const line = host.logs.slice(before).map((l) => l.message).find((m) => m.startsWith(`probe ${p.name} of ${ADDRESS}: `));
      const name = line?.slice(`probe ${p.name} of ${ADDRESS}: `.length).replace(/ down by flap damping.*$/, '');
      out.transitions[p.name] += line ? CODE[name] : '.';
    }
    assert.ok(host.logs.slice(from).every((l) => l.level < 4), 'no errors');
    out.backend += host.stat('haports.backend.p.b.healthy') === 0 ? 'd' : 'u';
  }
  return out;
}

for (const c of table.cases) {
  const expected = { transitions: c.transitions, backend: c.backend };
  test(`pump: ${c.name}`, () => assert.deepEqual(viaPump(c), expected));
  test(`Envoy filter: ${c.name}`, () => assert.deepEqual(viaEnvoyFilter(c), expected));
}

test('the table covers every transition and more than one probe per backend', () => {
  const seen = new Set(table.cases.flatMap((c) => Object.values(c.transitions).join('').split('')));
  for (const code of ['u', 'd', 'U', 'D', 'H']) assert.ok(seen.has(code), code);
  assert.ok(table.cases.some((c) => c.probes.length > 1));
});
