// Health probes: the core's threshold/damping policy through the binding on a fake
// clock, each probe kind against real local servers, and the monitor reporting to the core.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import https from 'node:https';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Core } from '../../build/host/core.mjs';
import { HealthMonitor, probeOnce } from '../../build/host/probes.mjs';
import { MetricsWriter } from '../../build/host/metrics.mjs';

const S = 1000;

/** A core with one backend probed by one probe of `threshold`, and `damping` (false: off). */
function coreWith(threshold, damping) {
  const core = Core.load();
  core.configure({
    frontends: [{ name: 'fe', address: '10.0.0.1' }],
    backendPools: [{ name: 'p', backends: [{ name: 'a', address: '10.0.1.1' }] }],
    probes: [{ name: 't', protocol: 'tcp', port: 1, intervalSeconds: 5, threshold }],
    rules: [{ name: 'r', frontend: 'fe', backendPool: 'p', protocol: 'all', frontendPort: 0, backendPort: 0, floatingIp: true, probe: 't' }],
    health: { damping },
  });
  return core;
}

/** Feeds results ('+' success, '-' failure) one interval apart; returns the states after each. */
function feed(core, results, { start = 0, interval = 5 * S } = {}) {
  let t = start;
  return [...results].map((r) => {
    core.probeResult(0, r === '+', t);
    t += interval;
    return core.probeTarget(0).state[0];
  }).join('');
}

const held = (core) => core.probeTarget(0).held;

// The policy itself is the core's (assembly/health.ts); test/health/ runs one table of
// probe sequences through every host. These check its finer points through the binding.
test('threshold: first result decides, then threshold consecutive failures / successes', () => {
  assert.equal(feed(coreWith(2, false), '+--+--'), 'uudddd');
  assert.equal(feed(coreWith(2, false), '-+-++'), 'ddddu');
  assert.equal(feed(coreWith(3, false), '+--+---+++'), 'uuuuuudddu');
  assert.equal(feed(coreWith(1, false), '+-+-'), 'udud');
});

test('threshold: a transition is reported with the result that caused it; the backend follows', () => {
  const core = coreWith(2, false);
  assert.equal(core.probeResult(0, true, 0), 'initially up');
  assert.equal(core.probeResult(0, false, 1), 'none');
  assert.equal(core.exports.backendState(0), 0);
  assert.equal(core.probeResult(0, false, 2), 'down');
  assert.equal(core.exports.backendState(0), 1);
  assert.equal(core.probeResult(0, true, 3), 'none');
  assert.equal(core.probeResult(0, true, 4), 'up');
  assert.equal(core.exports.backendState(0), 0);
  assert.deepEqual(core.probeTarget(0), {
    state: 'up', held: false, successRun: 2, failureRun: 0, transitionsUp: 1, transitionsDown: 1, checksSuccess: 3, checksFailure: 2,
  });
  assert.throws(() => core.probeResult(1, true, 5), /no probe target 1/);
});

test('damping: one fall is never held; the second within a half-life holds the way back up', () => {
  const core = coreWith(2, { halfLifeSeconds: 60 });
  // t=0 up; falls at 10 s, recovers at 20 s (penalty 1 < suppress 2): up at once.
  assert.equal(feed(core, '+--++', { interval: 5 * S }), 'uuddu');
  // Falls again at 30 s: penalty 1 × 2^(-20/60) + 1 ≈ 1.79 < 2 → still not held.
  assert.equal(feed(core, '--++', { start: 25 * S }), 'uddu');
  // Third fall at 55 s: penalty ≈ 1.79 × 2^(-25/60) + 1 ≈ 2.34 ≥ 2 → suppressed.
  assert.equal(feed(core, '--', { start: 50 * S }), 'ud');
  // Passing probes from 60 s on: held while the penalty ≥ reuse (1).
  let t = 60 * S;
  assert.equal(core.probeResult(0, true, t), 'none');
  t += 5 * S;
  assert.equal(core.probeResult(0, true, t), 'held');
  assert.equal(core.probeTarget(0).state, 'down');
  assert.ok(held(core));
  const wait = core.exports.probeHoldSeconds(0, t);
  assert.ok(wait > 60 && wait < 90, `hold ${wait}`);
  // Released at the first success after the penalty decayed below reuse.
  const release = t + Math.ceil(wait + 0.001) * S;
  assert.equal(core.probeResult(0, true, release - 2 * S), 'none');
  assert.equal(core.probeResult(0, true, release), 'up');
  assert.ok(!held(core));
});

test('damping: failures while held add penalty; the hold is capped by maxHoldSeconds', () => {
  const core = coreWith(1, { halfLifeSeconds: 10, suppressPenalty: 2, reusePenalty: 1, maxHoldSeconds: 30 });
  assert.equal(feed(core, '+-+-', { interval: 0 }), 'udud');
  // Keeps flapping while held: each failure of the held target is a fall; the penalty
  // stops at reuse × 2^(30/10) = 8.
  let t = 10;
  for (let i = 0; i < 20; i++) {
    assert.equal(core.probeResult(0, true, t++), 'held');
    assert.ok(held(core), 'held');
    core.probeResult(0, false, t++);
    assert.ok(!held(core), 'a failure ends the hold (and the success run)');
  }
  assert.ok(Math.abs(core.exports.probePenalty(0, t) - 8) < 0.01, `penalty ${core.exports.probePenalty(0, t)}`);
  assert.ok(Math.abs(core.exports.probeHoldSeconds(0, t) - 30) < 0.01);
  assert.equal(core.probeResult(0, true, t + 29.9 * S), 'held');
  assert.equal(core.probeResult(0, true, t + 30.1 * S), 'up', 'up within maxHoldSeconds of the last fall');
});

test('damping off: never held', () => {
  assert.equal(feed(coreWith(1, false), '+-+-+-+-+-+'), 'udududududu');
});

test('damping settings are checked by the core', () => {
  const errors = Core.validate({ health: { damping: { halfLifeSeconds: -1, reusePenalty: 3, suppressPenalty: 2, x: 1 } } });
  assert.deepEqual(errors, [
    'health.damping.x: unknown field',
    'health.damping.halfLifeSeconds: must be a positive number up to 1e9, got -1',
  ]);
  assert.deepEqual(Core.validate({ health: { damping: { reusePenalty: 3, suppressPenalty: 2 } } }),
    ['health.damping.reusePenalty: must not exceed suppressPenalty']);
  assert.deepEqual(Core.validate({ health: { damping: { halfLifeSeconds: 60, maxHoldSeconds: 30 } } }),
    ['health.damping.maxHoldSeconds: must be at least halfLifeSeconds × log2(suppressPenalty / reusePenalty) = 60, or the penalty could never reach suppressPenalty']);
  assert.deepEqual(Core.validate({ health: { damping: true } }), ['health.damping: expected an object or false, got true']);
  assert.deepEqual(Core.validate({ probes: [{ name: 'p', port: 1, intervalSeconds: 2, timeoutSeconds: 3 }] }),
    ['probes[0].timeoutSeconds: probe "p": must not exceed intervalSeconds (2): a probe ends before the next one is due']);
});

// ---- Probes against real servers -------------------------------------------------------

const listen = (server, host = '127.0.0.1') => new Promise((r) => server.listen(0, host, () => r(server.address().port)));
const close = (server) => new Promise((r) => { server.closeAllConnections?.(); server.close(r); });

test('tcp: connect succeeds, refused fails, silence times out', async () => {
  const server = net.createServer((c) => c.destroy());
  const port = await listen(server);
  assert.deepEqual(await probeOnce({ protocol: 'tcp', address: '127.0.0.1', port, path: '/', timeoutMs: 1000 }), { ok: true, detail: 'connected' });
  await close(server);
  assert.deepEqual(await probeOnce({ protocol: 'tcp', address: '127.0.0.1', port, path: '/', timeoutMs: 1000 }), { ok: false, detail: 'ECONNREFUSED' });
  // 192.0.2.0/24 (TEST-NET-1) is not routed: the connect hangs (or fails at once where
  // there is no route at all); never a success.
  const r = await probeOnce({ protocol: 'tcp', address: '192.0.2.1', port: 9, path: '/', timeoutMs: 200 });
  assert.equal(r.ok, false);
});

test('http: 2xx succeeds (path and method checked), other statuses and hangs fail', async () => {
  let status = 200;
  const seen = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (status === 0) return; // never answers
    res.writeHead(status).end('x');
  });
  const port = await listen(server);
  const probe = (timeoutMs = 1000) => probeOnce({ protocol: 'http', address: '127.0.0.1', port, path: '/healthz', timeoutMs });
  assert.deepEqual(await probe(), { ok: true, detail: 'HTTP 200' });
  status = 204;
  assert.deepEqual(await probe(), { ok: true, detail: 'HTTP 204' });
  status = 301;
  assert.deepEqual(await probe(), { ok: false, detail: 'HTTP 301' });
  status = 503;
  assert.deepEqual(await probe(), { ok: false, detail: 'HTTP 503' });
  status = 0;
  assert.deepEqual(await probe(200), { ok: false, detail: 'timeout' });
  assert.deepEqual(seen.slice(0, 2), ['GET /healthz', 'GET /healthz']);
  await close(server);
  assert.deepEqual(await probe(), { ok: false, detail: 'ECONNREFUSED' });
});

test('https: a self-signed certificate is accepted (liveness, not identity)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'haports-probe-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-days', '1', '-subj', '/CN=appliance.invalid'], { stdio: 'ignore' });
  } catch (e) {
    assert.fail(`openssl is needed to make the test certificate (apt-get install openssl): ${e.message}`);
  }
  let status = 200;
  const server = https.createServer({ key: readFileSync(join(dir, 'k.pem')), cert: readFileSync(join(dir, 'c.pem')) },
    (req, res) => res.writeHead(req.url === '/ok' ? status : 404).end());
  const port = await listen(server);
  assert.deepEqual(await probeOnce({ protocol: 'https', address: '127.0.0.1', port, path: '/ok', timeoutMs: 2000 }), { ok: true, detail: 'HTTP 200' });
  status = 500;
  assert.deepEqual(await probeOnce({ protocol: 'https', address: '127.0.0.1', port, path: '/ok', timeoutMs: 2000 }), { ok: false, detail: 'HTTP 500' });
  // Plain HTTP against the TLS port fails.
  const r = await probeOnce({ protocol: 'http', address: '127.0.0.1', port, path: '/ok', timeoutMs: 2000 });
  assert.equal(r.ok, false);
  await close(server);
});

// ---- The monitor ---------------------------------------------------------------------------

function config() {
  return {
    frontends: [{ name: 'fa', address: '10.0.0.1' }, { name: 'fb', address: '10.0.0.2' }, { name: 'fc', address: '10.0.0.3' }],
    backendPools: [
      { name: 'p1', backends: [{ name: 'x', address: '127.0.0.2' }, { name: 'y', address: '127.0.0.3' }] },
      { name: 'p2', backends: [{ name: 'x2', address: '127.0.0.2' }] },
      { name: 'p3', backends: [{ name: 'z', address: '127.0.0.9' }] },
    ],
    probes: [
      { name: 'tcp', protocol: 'tcp', port: 1, intervalSeconds: 2, threshold: 2 },
      { name: 'web', protocol: 'http', port: 2, path: '/h', intervalSeconds: 3 },
    ],
    rules: [
      { name: 'r1', frontend: 'fa', backendPool: 'p1', protocol: 'all', frontendPort: 0, backendPort: 0, floatingIp: true, probe: 'tcp' },
      { name: 'r2', frontend: 'fb', backendPool: 'p1', protocol: 'all', frontendPort: 0, backendPort: 0, floatingIp: true, probe: 'web' },
      { name: 'r3', frontend: 'fc', backendPool: 'p2', protocol: 'all', frontendPort: 0, backendPort: 0, floatingIp: true, probe: 'tcp' },
    ],
  };
}

test('describe: probes with the core\'s defaults (tcp, interval 5, threshold 2, path /, timeout = interval)', () => {
  const core = Core.load();
  core.configure({ probes: [{ name: 'a', port: 1 }, { name: 'b', protocol: 'https', port: 2, intervalSeconds: 7, timeoutSeconds: 3 }] });
  const [tcp, web] = core.describe().probes;
  assert.deepEqual(tcp, { index: 0, name: 'a', protocol: 'tcp', port: 1, path: '/', intervalSeconds: 5, timeoutSeconds: 5, threshold: 2 });
  assert.equal(web.timeoutSeconds, 3);
});

test('monitor: targets per (probe, address); a backend is up only while all its probes say up', () => {
  const core = Core.load();
  core.configure({ ...config(), health: { damping: false } });
  const logs = [];
  const m = new HealthMonitor(core, { log: (level, msg, f) => logs.push({ level, msg, ...f }), now: () => 0 });
  const key = (t) => `${t.probe.name} ${t.address} [${t.backends}]`;
  assert.deepEqual(m.targets.map(key), ['tcp 127.0.0.2 [0,2]', 'tcp 127.0.0.3 [1]', 'web 127.0.0.2 [0]', 'web 127.0.0.3 [1]'],
    'p3 has no probed rule; 127.0.0.2 is probed once by tcp for both pools');
  const state = () => [0, 1, 2, 3].map((b) => core.exports.backendState(b)).join('');
  const [tcpX, tcpY, webX, webY] = m.targets;
  for (const t of [tcpX, tcpY, webX, webY]) m.record(t, { ok: true, detail: 'ok' });
  assert.equal(state(), '0000', 'initially up');
  m.record(webX, { ok: false, detail: 'HTTP 503' });
  assert.equal(state(), '0000', 'web (threshold 2 by default): one failure is not enough');
  m.record(webX, { ok: false, detail: 'HTTP 503' });
  assert.equal(state(), '1000', 'x (pool p1, rule r2) down');
  m.record(tcpX, { ok: false, detail: 'ECONNREFUSED' });
  m.record(tcpX, { ok: false, detail: 'ECONNREFUSED' });
  assert.equal(state(), '1010', 'x2 (pool p2) follows the tcp probe only');
  m.record(tcpX, { ok: true, detail: 'connected' });
  m.record(tcpX, { ok: true, detail: 'connected' });
  assert.equal(state(), '1000', 'x stays down: web still says down');
  const change = logs.filter((l) => l.msg === 'backend down' || l.msg === 'backend up').map((l) => `${l.msg} ${l.probe} ${l.backends}`);
  assert.ok(change.includes('backend down tcp p1/x,p2/x2') && change.includes('backend up tcp p1/x,p2/x2'), change.join('\n'));
  assert.ok(logs.some((l) => l.msg === 'backend down' && l.reason === '2 consecutive failures' && l.detail === 'ECONNREFUSED'));
  const w = new MetricsWriter();
  m.writeMetrics(w);
  assert.match(w.text(), /^haports_probe_up\{probe="web",address="127.0.0.2"\} 0$/m);
  assert.match(w.text(), /^haports_probe_checks_total\{probe="tcp",address="127.0.0.2",result="failure"\} 2$/m);
  assert.match(w.text(), /^haports_probe_transitions_total\{probe="tcp",address="127.0.0.2",to="down"\} 1$/m);
});

test('monitor, for real: a stopped TCP target is marked down in the core within interval × threshold, and back up', async () => {
  let server = net.createServer((c) => c.destroy());
  const port = await listen(server, '127.0.0.2');
  const cfg = {
    frontends: [{ name: 'fe', address: '10.0.0.1' }],
    backendPools: [{ name: 'p', backends: [{ name: 'a', address: '127.0.0.2' }, { name: 'b', address: '127.0.0.3' }] }],
    probes: [{ name: 't', protocol: 'tcp', port, intervalSeconds: 1, threshold: 2 }],
    rules: [{ name: 'r', frontend: 'fe', backendPool: 'p', protocol: 'all', frontendPort: 0, backendPort: 0, floatingIp: true, probe: 't' }],
  };
  const core = Core.load();
  core.configure(cfg);
  const logs = [];
  const m = new HealthMonitor(core, { log: (level, msg, f) => logs.push({ level, msg, at: performance.now(), ...f }) });
  try {
    await m.start();
    assert.equal(core.exports.backendState(0), 0, 'a: up after the first round');
    assert.equal(core.exports.backendState(1), 1, 'b: nothing listens on 127.0.0.3 → initially down');
    const t0 = performance.now();
    await close(server);
    const deadline = Date.now() + 4000;
    while (core.exports.backendState(0) !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const down = (performance.now() - t0) / 1000;
    assert.equal(core.exports.backendState(0), 1);
    assert.ok(down <= 2.3, `down after ${down.toFixed(2)} s`);
    server = net.createServer((c) => c.destroy());
    await new Promise((r) => server.listen(port, '127.0.0.2', r));
    while (core.exports.backendState(0) !== 0 && Date.now() < deadline + 3000) await new Promise((r) => setTimeout(r, 10));
    assert.equal(core.exports.backendState(0), 0, 'up again');
    assert.deepEqual(logs.filter((l) => l.address === '127.0.0.2' && l.msg.startsWith('backend')).map((l) => l.msg),
      ['backend initially up', 'backend down', 'backend up']);
  } finally {
    m.stop();
    await close(server);
  }
});
