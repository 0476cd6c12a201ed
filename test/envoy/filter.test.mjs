// Unit tests of the proxy-wasm filter (build/haports-proxywasm.wasm) in the small JS
// proxy-wasm host of proxywasm-host.mjs: fast, and every decision is compared with the
// Node library (predict.mjs). The real Envoy runs in e2e.test.mjs.
//
//   node --test test/envoy/filter.test.mjs      (after npm run build)

import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DEFAULT_WASM, ProxyWasmHost, SharedData } from './proxywasm-host.mjs';
import { Predictor, readListenerConfig } from './predict.mjs';

const example = (recipe) => readListenerConfig(fileURLToPath(new URL(`../../envoy/${recipe}/listeners.yaml`, import.meta.url)));
const clusterConfig = () => structuredClone(example('cluster-per-backend'));
const originalDstConfig = () => structuredClone(example('original-dst'));
const KEY_CLUSTER = 'envoy.tcp_proxy.cluster';
const TICK = 50; // the filter's tick (ms): batched counters reach Envoy at each
const KEY_DST = 'envoy.network.transport_socket.original_dst_address';

/** A small deterministic PRNG (mulberry32). */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` random client endpoints (IPv4 and, one in four, IPv6) towards `dst4` / `dst6`. */
function tuples(n, seed, dst4 = ['127.0.0.10', 10000], dst6 = ['::1', 10000]) {
  const r = prng(seed);
  const out = [];
  for (let i = 0; i < n; i++) {
    const sport = 1024 + Math.floor(r() * 64000);
    if (r() < 0.25) {
      const g = () => Math.floor(r() * 65536).toString(16);
      out.push({ src: `2001:db8:${g()}::${g()}`, sport, dst: dst6[0], dport: dst6[1] });
    } else {
      const o = () => Math.floor(r() * 256);
      out.push({ src: `10.${o()}.${o()}.${1 + Math.floor(r() * 254)}`, sport, dst: dst4[0], dport: dst4[1] });
    }
  }
  return out;
}

const endpoint = (addr, port) => (addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);
const connect = (host, t) => host.connect(endpoint(t.src, t.sport), endpoint(t.dst, t.dport));

/**
 * The first tick's probes, all answered 200: with filter.initialHealth "down" (the
 * default) a backend takes connections only once a probe has said it is up.
 */
function ready(host) {
  host.advance(60);
  answerProbes(host, () => true);
}

/** Answers every pending probe: `up(address)` decides 200 or 503. */
function answerProbes(host, up) {
  host.respondAll((call) => {
    const address = call.headers.get('x-envoy-original-dst-host').replace(/:\d+$/, '');
    return up(address) ? { status: 200, body: 'ok' } : { status: 503, body: 'down' };
  });
}

test('the module imports only proxy-wasm host functions and exports ABI 0.2.1', () => {
  const imports = ProxyWasmHost.importsOf(readFileSync(DEFAULT_WASM));
  for (const i of imports) {
    assert.equal(i.module, 'env', `import ${i.module}.${i.name}`);
    assert.match(i.name, /^proxy_/, `import env.${i.name} is not a proxy-wasm host function`);
  }
  assert.ok(!imports.some((i) => i.name === 'abort'), 'no env.abort');
  const exports = WebAssembly.Module.exports(new WebAssembly.Module(readFileSync(DEFAULT_WASM))).map((e) => e.name);
  for (const name of ['proxy_abi_version_0_2_1', '_initialize', 'malloc', 'proxy_on_memory_allocate', 'memory',
    'proxy_on_context_create', 'proxy_on_vm_start', 'proxy_on_configure', 'proxy_on_new_connection',
    'proxy_on_downstream_connection_close', 'proxy_on_tick', 'proxy_on_http_call_response', 'proxy_on_delete']) {
    assert.ok(exports.includes(name), `export ${name}`);
  }
  assert.ok(!exports.includes('proxy_on_downstream_data'), 'no per-data-chunk callback');
});

test('every connection gets the cluster of the backend the Node library predicts; three VMs agree', () => {
  const config = clusterConfig();
  const vms = [new ProxyWasmHost(), new ProxyWasmHost(), new ProxyWasmHost()];
  for (const vm of vms) assert.ok(vm.configure(config), JSON.stringify(vm.logs));
  for (const vm of vms) ready(vm);
  const predictor = new Predictor(config);
  const counts = {};
  const all = tuples(6000, 1);
  all.forEach((t, i) => {
    const want = predictor.predict(t.src, t.sport, t.dst, t.dport);
    assert.equal(want.action, 'forward');
    const vm = vms[i % 3];
    const c = connect(vm, t);
    assert.equal(c.action, 'continue');
    assert.equal(c.filterState[KEY_CLUSTER], want.backend, `${JSON.stringify(t)}`);
    // Another VM (another Envoy worker) decides the same.
    const other = connect(vms[(i + 1) % 3], t);
    assert.equal(other.filterState[KEY_CLUSTER], want.backend);
    vm.close(c);
    vms[(i + 1) % 3].close(other);
    counts[want.backend] = (counts[want.backend] ?? 0) + 1;
  });
  for (const vm of vms) vm.advance(TICK); // counters reach Envoy at the next tick
  let total = 0;
  for (const name of ['nva-0', 'nva-1', 'nva-2']) {
    total += vms.reduce((s, vm) => s + vm.stat(`haports.backend.nvas.${name}.connections`), 0);
    assert.ok(Math.abs(counts[name] - 2000) < 200, `spread ${JSON.stringify(counts)}`);
  }
  assert.equal(total, 12000);
});

test('originalDst: "address:port" with the connection\'s own port, or the rule\'s backend port', () => {
  const config = originalDstConfig();
  config.backendPools.push({ name: 'web', backends: [{ name: 'web-0', address: '127.0.0.21' }, { name: 'web-1', address: '127.0.0.22' }] });
  config.rules.push({ name: 'https', frontend: 'fe', backendPool: 'web', protocol: 'tcp', frontendPort: 443, backendPort: 8443 });
  const host = new ProxyWasmHost();
  assert.ok(host.configure(config), JSON.stringify(host.logs));
  ready(host);
  const predictor = new Predictor(config);
  for (const t of tuples(500, 2, ['10.9.8.7', 22], ['fd00::7', 22])) {
    const want = predictor.predict(t.src, t.sport, t.dst, t.dport);
    const c = connect(host, t);
    assert.equal(c.filterState[KEY_DST], `${predictor.backendAddress(want.backendIndex)}:22`);
    assert.equal(c.filterState[KEY_CLUSTER], undefined);
  }
  for (const t of tuples(200, 3, ['10.9.8.7', 443], ['fd00::7', 443])) {
    const want = predictor.predict(t.src, t.sport, t.dst, t.dport);
    const c = connect(host, t);
    assert.match(want.backend, /^web-/);
    assert.equal(c.filterState[KEY_DST], `${predictor.backendAddress(want.backendIndex)}:8443`);
  }

  // IPv6 backends are written "[address]:port".
  const v6 = {
    frontends: [{ name: 'fe6', address: 'fd00::100' }],
    backendPools: [{ name: 'p', backends: [{ name: 'a', address: 'fd00::1' }, { name: 'b', address: 'fd00::2' }] }],
    rules: [{ name: 'ha', frontend: 'fe6', backendPool: 'p', protocol: 'all', frontendPort: 0, backendPort: 0 }],
    filter: { ingressFrontend: 'fe6', upstream: 'originalDst' },
  };
  const h6 = new ProxyWasmHost();
  assert.ok(h6.configure(v6), JSON.stringify(h6.logs));
  ready(h6);
  const p6 = new Predictor(v6);
  for (const t of tuples(200, 4, ['10.0.0.1', 80], ['2001:db8::80', 8080])) {
    const want = p6.predict(t.src, t.sport, t.dst, t.dport);
    const c = connect(h6, t);
    assert.equal(c.filterState[KEY_DST], `[${p6.backendAddress(want.backendIndex)}]:${t.dport}`);
  }
});

test('an IPv4-mapped IPv6 client (dual-stack listener) is hashed as its IPv4 address', () => {
  const config = clusterConfig();
  const host = new ProxyWasmHost();
  assert.ok(host.configure(config));
  ready(host);
  const predictor = new Predictor(config);
  for (const t of tuples(300, 5).filter((x) => !x.src.includes(':'))) {
    const c = host.connect(`[::ffff:${t.src}]:${t.sport}`, `[::ffff:${t.dst}]:${t.dport}`);
    assert.equal(c.filterState[KEY_CLUSTER], predictor.predict(t.src, t.sport, t.dst, t.dport).backend);
  }
});

test('a connection no rule matches is closed, or sent to the default cluster; both counted', () => {
  const config = clusterConfig();
  delete config.filter.ingressFrontend; // match frontends by destination address
  const host = new ProxyWasmHost();
  assert.ok(host.configure(config));
  ready(host);
  const hit = host.connect('10.0.0.1:5000', '127.0.0.10:10000');
  assert.equal(hit.action, 'continue');
  const miss = host.connect('10.0.0.1:5001', '127.0.0.99:10000');
  assert.equal(miss.action, 'pause');
  assert.ok(miss.closed);
  assert.deepEqual(miss.filterState, {});
  host.advance(TICK); // counters reach Envoy at the next tick
  assert.equal(host.stat('haports.no_match'), 1);
  assert.equal(host.stat('haports.closed'), 1);

  config.filter.noMatch = 'defaultCluster';
  config.filter.defaultCluster = 'passthrough';
  assert.ok(host.configure(config));
  ready(host);
  const d = host.connect('10.0.0.1:5002', '127.0.0.99:10000');
  assert.equal(d.action, 'continue');
  assert.equal(d.filterState[KEY_CLUSTER], 'passthrough');
  host.advance(TICK);
  assert.equal(host.stat('haports.no_match'), 2);
  assert.equal(host.stat('haports.default_cluster'), 1);
});

test('probes: a backend failing `threshold` probes gets no new connection within interval × threshold; it comes back', () => {
  const config = clusterConfig(); // probe healthz: http, port 8080, /healthz, every 1 s, threshold 2
  const host = new ProxyWasmHost();
  assert.ok(host.configure(config));
  const predictor = new Predictor(config);
  const healthy = new Set(['127.0.0.11', '127.0.0.12', '127.0.0.13']);

  host.advance(100);
  const calls = [...host.calls.values()];
  assert.equal(calls.length, 3);
  for (const call of calls) {
    assert.equal(call.upstream, 'haports_probe');
    assert.equal(call.headers.get(':method'), 'GET');
    assert.equal(call.headers.get(':path'), '/healthz');
    assert.match(call.headers.get('x-envoy-original-dst-host'), /^127\.0\.0\.1[123]:8080$/);
    assert.equal(call.headers.get(':authority'), call.headers.get('x-envoy-original-dst-host'));
    assert.ok(call.timeoutMs <= 1000);
  }
  answerProbes(host, (a) => healthy.has(a));

  // nva-1 fails from t0; within interval × threshold (2 s) it is down.
  healthy.delete('127.0.0.12');
  const t0 = host.nowMs;
  let downAt = null;
  while (host.nowMs - t0 <= 2000) {
    host.advance(100);
    answerProbes(host, (a) => healthy.has(a));
    if (host.stat('haports.backend.nvas.nva-1.healthy') === 0) { downAt = host.nowMs - t0; break; }
  }
  assert.ok(downAt !== null && downAt <= 2000, `down after ${downAt} ms`);
  assert.ok(host.logs.some((l) => l.level === 3 && /backend nvas\.nva-1 is down \(probe healthz: down\)/.test(l.message)));
  predictor.setHealth('nva-1', false);
  for (const t of tuples(1500, 6)) {
    const c = connect(host, t);
    const want = predictor.predict(t.src, t.sport, t.dst, t.dport).backend;
    assert.notEqual(c.filterState[KEY_CLUSTER], 'nva-1');
    assert.equal(c.filterState[KEY_CLUSTER], want);
    host.close(c);
  }

  // Two passed probes bring it back.
  healthy.add('127.0.0.12');
  for (let i = 0; i < 25 && host.stat('haports.backend.nvas.nva-1.healthy') === 0; i++) {
    host.advance(100);
    answerProbes(host, (a) => healthy.has(a));
  }
  assert.equal(host.stat('haports.backend.nvas.nva-1.healthy'), 1);
  predictor.setHealth('nva-1', true);
  for (const t of tuples(500, 7)) {
    assert.equal(connect(host, t).filterState[KEY_CLUSTER], predictor.predict(t.src, t.sport, t.dst, t.dport).backend);
  }
});

test('TCP probes pass when the backend accepts (502, 504) and fail on Envoy\'s connect-failure 503 or no answer', () => {
  const config = clusterConfig();
  config.probes = [{ name: 'tcp', protocol: 'tcp', port: 10000, intervalSeconds: 2, threshold: 1 }];
  config.rules[0].probe = 'tcp';
  const host = new ProxyWasmHost();
  assert.ok(host.configure(config));
  const answers = {
    '127.0.0.11': { status: 502, body: 'upstream connect error or disconnect/reset before headers. reset reason: protocol error' },
    '127.0.0.12': { status: 503, body: 'upstream connect error or disconnect/reset before headers. reset reason: remote connection failure' },
    '127.0.0.13': null,
  };
  host.advance(100);
  host.respondAll((call) => {
    assert.equal(call.headers.get(':path'), '/');
    assert.ok(call.timeoutMs <= 2000);
    return answers[call.headers.get('x-envoy-original-dst-host').replace(/:\d+$/, '')];
  });
  assert.equal(host.stat('haports.backend.nvas.nva-0.healthy'), 1);
  assert.equal(host.stat('haports.backend.nvas.nva-1.healthy'), 0);
  assert.equal(host.stat('haports.backend.nvas.nva-2.healthy'), 0);
  assert.equal(host.stat('haports.probe_failures'), 2);
  answers['127.0.0.13'] = { status: 504, body: 'upstream request timeout' };
  answers['127.0.0.12'] = { status: 503, body: 'upstream connect error or disconnect/reset before headers. reset reason: connection timeout' };
  host.advance(2000);
  host.respondAll((call) => answers[call.headers.get('x-envoy-original-dst-host').replace(/:\d+$/, '')]);
  assert.equal(host.stat('haports.backend.nvas.nva-2.healthy'), 1);
  assert.equal(host.stat('haports.backend.nvas.nva-1.healthy'), 0);
});

test('every backend down: noHealthyBackend closes, or sends to the default cluster; counted', () => {
  const config = clusterConfig();
  config.probes[0].threshold = 1;
  const host = new ProxyWasmHost();
  assert.ok(host.configure(config));
  host.advance(100);
  answerProbes(host, () => false);
  const c = host.connect('10.0.0.1:4000', '127.0.0.10:10000');
  assert.equal(c.action, 'pause');
  assert.ok(c.closed);
  host.advance(TICK);
  assert.equal(host.stat('haports.no_healthy_backend'), 1);

  config.filter.noHealthyBackend = 'defaultCluster';
  config.filter.defaultCluster = 'sorry';
  assert.ok(host.configure(config));
  // Health carries over a reconfiguration: still all down.
  const d = host.connect('10.0.0.1:4001', '127.0.0.10:10000');
  assert.equal(d.filterState[KEY_CLUSTER], 'sorry');
  host.advance(TICK);
  assert.equal(host.stat('haports.no_healthy_backend'), 2);
  assert.equal(host.stat('haports.default_cluster'), 1);
});

test('an invalid configuration is rejected with every error as `path: reason`; the running one stays', () => {
  const config = clusterConfig();
  const host = new ProxyWasmHost();
  assert.ok(host.configure(config));
  ready(host);
  const predictor = new Predictor(config);

  const bad = clusterConfig();
  bad.backendPools[0].backends[1].address = '127.0.0.300';
  bad.rules[0].backendPool = 'nope';
  bad.filter.upstream = 'somewhere';
  bad.filter.ingressFrontend = 'fe-x';
  bad.filter.extra = 1;
  const from = host.logs.length;
  assert.equal(host.configure(bad), false);
  const errors = host.errors(from);
  const expected = [
    // (the core writes this path as backendPools[0]["backends[1]"].address)
    /^invalid configuration: backendPools\[0\]\W*backends\[1\]\W*\.address: backend "[^"]+" of pool "[^"]+": not an IPv4 or IPv6 address: "127\.0\.0\.300"$/,
    /^invalid configuration: rules\[0\]\.backendPool: rule "[^"]+": unknown backend pool "nope"$/,
    /^invalid configuration: filter\.extra: unknown field$/,
    /^invalid configuration: filter\.upstream: expected one of "cluster", "originalDst", got "somewhere"$/,
  ];
  for (const e of expected) assert.ok(errors.some((l) => e.test(l)), `missing ${e} in\n${errors.join('\n')}`);
  assert.equal(errors.length, expected.length, errors.join('\n'));
  assert.equal(host.stat('haports.config.rejected'), 1);

  // The filter section's cross-references are checked when the core part is valid.
  const bad2 = clusterConfig();
  bad2.filter.ingressFrontend = 'fe-x';
  bad2.filter.noMatch = 'defaultCluster';
  bad2.backendPools.push({ name: 'more', backends: [{ name: 'nva-0', address: '127.0.0.51' }] });
  bad2.rules.push({ name: 'r2', frontend: 'fe', backendPool: 'more', protocol: 'tcp', frontendPort: 80, backendPort: 80 });
  const from2 = host.logs.length;
  assert.equal(host.configure(bad2), false);
  assert.deepEqual(host.errors(from2), [
    'invalid configuration: filter.ingressFrontend: unknown frontend "fe-x"',
    'invalid configuration: filter.defaultCluster: required when filter.noMatch is "defaultCluster"',
    'invalid configuration: filter.clusterName: "{backend}" gives backendPools[1].backends[0] the cluster "nva-0" of backendPools[0].backends[0]; use {pool} to tell pools apart',
  ]);
  assert.equal(host.configure('{"frontends": ['), false);
  assert.match(host.errors().at(-1), /^invalid configuration: \$: invalid JSON at byte \d+/);

  // Still the first configuration.
  for (const t of tuples(500, 8)) {
    assert.equal(connect(host, t).filterState[KEY_CLUSTER], predictor.predict(t.src, t.sport, t.dst, t.dport).backend);
  }

  // {pool} tells pools apart.
  bad2.filter = { ingressFrontend: 'fe', clusterName: '{pool}-{backend}' };
  assert.ok(host.configure(bad2), host.errors().join('\n'));
  ready(host);
  const c = host.connect('10.0.0.1:80', '127.0.0.10:80');
  assert.match(c.filterState[KEY_CLUSTER], /^more-nva-0$/);
});

test('connections allocate nothing: memory does not grow over 300,000 connections', () => {
  const host = new ProxyWasmHost();
  assert.ok(host.configure(clusterConfig()));
  ready(host);
  const run = (n, seed) => {
    const r = prng(seed);
    for (let i = 0; i < n; i++) {
      const c = host.connect(`10.${i & 255}.${(i >> 8) & 255}.${1 + Math.floor(r() * 254)}:${1024 + (i % 60000)}`, '127.0.0.10:10000');
      host.close(c);
    }
  };
  run(20000, 9);
  host.advance(1000); // ticks collect garbage of the probe bookkeeping
  host.respondAll(() => ({ status: 200 }));
  const before = host.exports.memory.buffer.byteLength;
  run(300000, 10); // no tick, so no garbage collection in between
  assert.equal(host.exports.memory.buffer.byteLength, before, 'wasm memory grew');
});

test('a connection\'s close reaches the core as a FIN of its 5-tuple: its flow entry ends within 10 s', () => {
  // Seen through the flow table: a tracked TCP flow keeps its backend while that backend
  // drains (and a new SYN on a still-tracked, open 5-tuple is not a new connection), an
  // ended one is hashed again, away from the draining backend.
  const config = clusterConfig();
  const host = new ProxyWasmHost();
  assert.ok(host.configure(config));
  ready(host);
  // 5000 connections open at once (the table of open connections grows from 1024 slots).
  const all = tuples(5000, 11).map((t) => ({ t, c: connect(host, t) }));
  const onNva1 = all.filter((x) => x.c.filterState[KEY_CLUSTER] === 'nva-1');
  assert.ok(onNva1.length > 1000);
  // Close all but 100 of those on nva-1, in shuffled order.
  const keepOpen = new Set(onNva1.slice(0, 100));
  const r = prng(12);
  const closing = all.filter((x) => !keepOpen.has(x)).map((x) => [r(), x]).sort((a, b) => a[0] - b[0]).map(([, x]) => x);
  for (const x of closing) host.close(x.c);
  // 11 s later (the core keeps a closed TCP flow 10 s), nva-1 starts draining (a
  // reconfiguration, which keeps tracked flows).
  host.advance(11000);
  host.respondAll(() => ({ status: 200 }));
  const draining = clusterConfig();
  for (const pool of draining.backendPools) for (const b of pool.backends) if (b.name === 'nva-1') b.adminState = 'draining';
  assert.ok(host.configure(draining));
  ready(host);
  const predictor = new Predictor(draining);
  // The same 5-tuples again: the closed ones are hashed anew, away from nva-1; the open
  // ones (their flows still tracked) stay on it.
  for (const x of onNva1) {
    const again = connect(host, x.t);
    if (keepOpen.has(x)) assert.equal(again.filterState[KEY_CLUSTER], 'nva-1');
    else {
      const predicted = predictor.predict(x.t.src, x.t.sport, x.t.dst, x.t.dport).backend;
      assert.notEqual(predicted, 'nva-1');
      assert.equal(again.filterState[KEY_CLUSTER], predicted);
    }
  }
});

// ---- Several configurations in one VM, stats per listener, access logs, probe errors ----------

/** Configuration S: the example with another hash key and without nva-2 (routes differently from A). */
function otherConfig() {
  const c = clusterConfig();
  c.hashKey = '0x0123456789abcdef0123456789abcdef';
  c.backendPools[0].backends = c.backendPools[0].backends.slice(0, 2);
  return c;
}

/** Connects every tuple through `root` and checks each lands where `predictor` says; returns the mismatches. */
function routeThrough(host, root, list, predictor) {
  let wrong = 0;
  for (const t of list) {
    const c = host.connect(endpoint(t.src, t.sport), endpoint(t.dst, t.dport), root);
    if (c.filterState[KEY_CLUSTER] !== predictor.predict(t.src, t.sport, t.dst, t.dport).backend) wrong++;
    host.close(c);
  }
  return wrong;
}

test('several configurations in one VM (two listeners; A→S→A within the drain window): each connection is routed by its own', () => {
  const A = clusterConfig();
  const S = otherConfig();
  const host = new ProxyWasmHost();
  const rootA = host.rootId;
  assert.ok(host.configure(A, rootA));
  ready(host);
  const rootS = host.addRoot();
  assert.ok(host.configure(S, rootS)); // the core now holds S
  ready(host);
  const pa = new Predictor(A);
  const ps = new Predictor(S);
  const list = tuples(900, 77);
  // The two predictions differ for most tuples, so a connection routed by the wrong configuration shows.
  const differ = list.filter((t) => pa.predict(t.src, t.sport, t.dst, t.dport).backend !== ps.predict(t.src, t.sport, t.dst, t.dport).backend).length;
  assert.ok(differ > 300, `A and S differ for ${differ} of 900`);
  // Rollback to A: Envoy reuses A's root context without configuring it again.
  assert.equal(routeThrough(host, rootA, list.slice(0, 300), pa), 0, 'A after S: routed by A');
  // Two listeners alternating: each by its own.
  let wrong = 0;
  list.slice(300).forEach((t, i) => { wrong += routeThrough(host, i % 2 ? rootS : rootA, [t], i % 2 ? ps : pa); });
  assert.equal(wrong, 0, 'alternating roots: each connection by its own root\'s configuration');
  assert.ok(host.stat('haports.config.switches') >= 300, `switches counted: ${host.stat('haports.config.switches')}`);
  assert.equal(host.stat('haports.config.applied'), 2);
  assert.deepEqual(host.errors(), []);
  // The root that holds the core goes (its listener drained): the other root's tick takes the
  // core back, and its probes run.
  host.deleteRoot(rootS); // the last connection was rootS's: it holds the core
  host.calls.clear();
  host.advance(1100);
  assert.ok([...host.calls.values()].some((c) => c.root === rootA), 'the remaining root probes');
  assert.equal(routeThrough(host, rootA, tuples(100, 78), pa), 0);
});

/** 32-bit FNV-1a of a string's UTF-8 bytes (the filter's config.hash gauge). */
function fnv32(text) {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return h;
}

test('config.hash tells which configuration runs, the same in every VM', () => {
  const shared = new SharedData();
  const vms = [new ProxyWasmHost({ shared }), new ProxyWasmHost({ shared })];
  const A = clusterConfig();
  for (const vm of vms) assert.ok(vm.configure(A));
  const text = JSON.stringify(A);
  for (const vm of vms) assert.equal(vm.stat('haports.config.hash'), fnv32(text));
  const S = otherConfig();
  assert.ok(vms[0].configure(S));
  assert.equal(vms[0].stat('haports.config.hash'), fnv32(JSON.stringify(S)), 'the last configuration applied');
});

test('a configuration equal to the running one is applied again when Envoy hands it over', () => {
  const host = new ProxyWasmHost();
  const A = clusterConfig();
  assert.ok(host.configure(A));
  ready(host);
  const root2 = host.addRoot();
  assert.ok(host.configure(A, root2));
  ready(host);
  assert.equal(host.stat('haports.config.applied'), 2);
  assert.equal(routeThrough(host, root2, tuples(50, 79), new Predictor(A)), 0);
});

test('filter.statPrefix names the stats of each listener apart; filter.accessLog gives each connection "rule backend outcome"', () => {
  const host = new ProxyWasmHost();
  const A = clusterConfig();
  A.filter.statPrefix = 'edge.a';
  A.filter.accessLog = true;
  const B = otherConfig();
  B.filter.statPrefix = 'edge.b';
  assert.ok(host.configure(A), JSON.stringify(host.logs));
  ready(host);
  const rootB = host.addRoot();
  assert.ok(host.configure(B, rootB));
  ready(host);
  const pa = new Predictor(A);
  const list = tuples(60, 80);
  for (const t of list) {
    const c = connect(host, t);
    const want = pa.predict(t.src, t.sport, t.dst, t.dport);
    assert.equal(c.properties.haports, `ha nvas.${want.backend} forwarded`);
    host.close(c);
  }
  const cb = host.connect('10.1.1.1:1000', '127.0.0.10:10000', rootB);
  assert.equal(cb.properties.haports, undefined, 'B has no access-log property');
  host.advance(TICK);
  assert.equal(host.stat('edge.a.connections'), 60);
  assert.equal(host.stat('edge.b.connections'), 1);
  assert.equal(host.stat('haports.connections'), undefined, 'no stats under the default prefix');
  assert.equal(host.stat('edge.a.config.applied'), 1);
  // No rule matches a connection to another address: "- - no_match".
  A.filter.ingressFrontend = undefined;
  delete A.filter.ingressFrontend;
  assert.ok(host.configure(A));
  ready(host);
  const nm = host.connect('10.1.1.1:1001', '127.0.0.99:10000');
  assert.equal(nm.properties.haports, '- - no_match');
  assert.equal(nm.closed, true);
  // Prefixes are checked.
  for (const bad of ['', 'a..b', '.a', 'a.', 'a b', 'x'.repeat(65)]) {
    const c = clusterConfig();
    c.filter.statPrefix = bad;
    const from = host.logs.length;
    assert.equal(host.configure(c), false, JSON.stringify(bad));
    assert.ok(host.errors(from).some((e) => e.includes('filter.statPrefix')), host.errors(from).join('\n'));
  }
  const c = clusterConfig();
  c.filter.accessLog = 'yes';
  assert.equal(host.configure(c), false);
});

test('a probe cluster Envoy does not know is an error, logged and counted, never "backend down"', () => {
  const host = new ProxyWasmHost();
  host.knownClusters = new Set(['nva-0', 'nva-1', 'nva-2']); // no haports_probe
  const config = clusterConfig();
  assert.ok(host.configure(config));
  host.advance(10_000);
  assert.ok(host.stat('haports.probe_errors') >= 20, `probe errors counted: ${host.stat('haports.probe_errors')}`);
  assert.equal(host.stat('haports.probe_failures'), 0, 'not counted as failed probes');
  assert.ok(host.errors().some((e) => /probe healthz of 127\.0\.0\.11 not sent: .*haports_probe.*is the probe cluster defined/.test(e)), host.errors().join('\n'));
  for (const b of ['nva-0', 'nva-1', 'nva-2']) assert.equal(host.stat(`haports.backend.nvas.${b}.healthy`), 1, `${b} stays up`);
  const p = new Predictor(config);
  assert.equal(routeThrough(host, host.rootId, tuples(100, 81), p), 0, 'connections still forwarded as predicted');
});

test('a connection whose cluster gives no upstream (no such cluster) is an error of its backend, counted and logged', () => {
  const host = new ProxyWasmHost();
  host.knownClusters = new Set(['nva-0', 'nva-2', 'haports_probe']); // nva-1's cluster is missing
  const config = clusterConfig();
  assert.ok(host.configure(config));
  ready(host);
  const p = new Predictor(config);
  const want = {};
  for (const t of tuples(300, 82)) {
    const b = p.predict(t.src, t.sport, t.dst, t.dport).backend;
    want[b] = (want[b] ?? 0) + 1;
    host.close(connect(host, t));
  }
  assert.equal(host.stat('haports.backend.nvas.nva-1.upstream_errors'), want['nva-1']);
  assert.equal(host.stat('haports.backend.nvas.nva-0.upstream_errors'), 0);
  assert.equal(host.stat('haports.upstream_errors'), want['nva-1']);
  assert.ok(host.errors().some((e) => /backend nvas\.nva-1 \(cluster "nva-1"\) closed without an upstream host/.test(e)), host.errors().join('\n'));
});

// ---- One view of health for every worker; the state before the first result ------------------

test('one VM probes for every worker (shared data); all switch within one tick of its decision', () => {
  const shared = new SharedData();
  const config = clusterConfig();
  const vms = [0, 1, 2].map(() => new ProxyWasmHost({ shared }));
  for (const vm of vms) assert.ok(vm.configure(config));
  let sent = [0, 0, 0];
  const count = () => vms.forEach((vm, i) => { sent[i] += vm.calls.size; });
  // 10 intervals (1 s) with every backend up.
  for (let t = 0; t < 10_000; t += 50) {
    for (const vm of vms) vm.advance(50);
    count();
    for (const vm of vms) answerProbes(vm, () => true);
  }
  assert.equal(sent.filter((n) => n > 0).length, 1, `one VM probes: ${JSON.stringify(sent)}`);
  assert.ok(sent.reduce((a, b) => a + b) <= 3 * 10 + 3, `probes = targets × intervals: ${JSON.stringify(sent)}`);
  const prober = sent.findIndex((n) => n > 0);
  const p = new Predictor(config);
  for (const vm of vms) assert.equal(routeThrough(vm, vm.rootId, tuples(60, 90), p), 0, 'every worker routes with every backend up');

  // nva-1 fails its probes: the prober decides after `threshold` failures; every other VM
  // follows at its next tick.
  const down = (a) => a !== '127.0.0.12';
  let decidedAt = -1;
  for (let step = 0; step < 60 && decidedAt < 0; step++) {
    vms[prober].advance(50);
    answerProbes(vms[prober], down);
    if (vms[prober].stat('haports.backend.nvas.nva-1.healthy') === 0) decidedAt = step;
    for (const [i, vm] of vms.entries()) if (i !== prober) vm.advance(50);
  }
  assert.ok(decidedAt >= 0, 'the prober took nva-1 out');
  for (const vm of vms) vm.advance(50); // one tick
  for (const vm of vms) assert.equal(vm.stat('haports.backend.nvas.nva-1.healthy'), 0, 'every VM within one tick');
  const pd = new Predictor(config);
  pd.setHealth('nva-1', false);
  for (const vm of vms) assert.equal(routeThrough(vm, vm.rootId, tuples(60, 91), pd), 0, 'every worker routes around nva-1');
  assert.ok(vms.some((vm, i) => i !== prober && vm.logs.some((l) => /backend nvas\.nva-1 is down \(as the probing VM found\)/.test(l.message))));

  // The prober's VM stops ticking (its worker is gone): another takes the lease and probes.
  const rest = vms.filter((_, i) => i !== prober);
  for (const vm of rest) vm.calls.clear();
  let taken = false;
  for (let t = 0; t < 2000 && !taken; t += 50) {
    for (const vm of rest) vm.advance(50);
    taken = rest.some((vm) => vm.calls.size > 0);
    for (const vm of rest) answerProbes(vm, down);
  }
  assert.ok(taken, 'another VM probes once the lease expires');
});

test('filter.initialHealth: "down" (default) — no connection reaches a backend before a probe said it is up; "up" — at once', () => {
  const config = clusterConfig();
  const host = new ProxyWasmHost();
  assert.ok(host.configure(config));
  for (const b of ['nva-0', 'nva-1', 'nva-2']) assert.equal(host.stat(`haports.backend.nvas.${b}.healthy`), 0);
  const early = connect(host, tuples(1, 92)[0]);
  assert.equal(early.closed, true, 'before any probe result: closed (noHealthyBackend "close")');
  host.advance(10); // before the first tick: the probes are not sent yet
  assert.equal(host.calls.size, 0);
  host.advance(TICK - 10); // the first tick: the probes go out at once, the counters are flushed
  assert.equal(host.stat('haports.no_healthy_backend'), 1);
  // The first results (nva-1 is down).
  answerProbes(host, (a) => a !== '127.0.0.12');
  const pd = new Predictor(config);
  pd.setHealth('nva-1', false);
  assert.equal(routeThrough(host, host.rootId, tuples(100, 93), pd), 0, 'nva-1 never gets a connection');

  const upConfig = clusterConfig();
  upConfig.filter.initialHealth = 'up';
  const h2 = new ProxyWasmHost();
  assert.ok(h2.configure(upConfig));
  assert.equal(routeThrough(h2, h2.rootId, tuples(50, 94), new Predictor(upConfig)), 0, 'initialHealth "up": forwarded at once');
  const bad = clusterConfig();
  bad.filter.initialHealth = 'maybe';
  assert.equal(h2.configure(bad), false);
  assert.ok(h2.errors().some((e) => e.includes('filter.initialHealth')));
});
