// Prometheus metrics: the writer, HOST:PORT parsing, the HTTP endpoint, and a strict
// check of the text exposition format (0.0.4) over everything a running pump exports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { HealthMonitor } from '../../build/host/probes.mjs';
import { CONTENT_TYPE, MetricsWriter, parseHostPort, startMetricsServer, writeCoreMetrics } from '../../build/host/metrics.mjs';
import { vxlanHeader } from '../../build/host/tunnel.mjs';
import { appliances, baseConfig, concat, ether, ipv4, startPump, waitFor } from './helpers.mjs';

/**
 * Checks the text format: `# HELP name text` then `# TYPE name type` once per family,
 * before its samples, samples of a family together; names and labels well-formed; label
 * values escaped; values floats. Returns Map(name → {type, samples: [{labels, value}]}).
 */
export function parseExposition(text) {
  assert.ok(text.endsWith('\n'), 'ends with a newline');
  const families = new Map();
  let current = null;
  const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  for (const line of text.slice(0, -1).split('\n')) {
    let m;
    if ((m = /^# HELP (\S+) (.*)$/.exec(line))) {
      assert.match(m[1], NAME);
      assert.ok(!families.has(m[1]), `second HELP for ${m[1]}`);
      current = { help: m[2], type: null, samples: [] };
      families.set(m[1], current);
      current.name = m[1];
    } else if ((m = /^# TYPE (\S+) (counter|gauge|summary|histogram|untyped)$/.exec(line))) {
      assert.equal(m[1], current?.name, `TYPE ${m[1]} right after its HELP`);
      assert.equal(current.type, null, `second TYPE for ${m[1]}`);
      current.type = m[2];
    } else {
      m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
      assert.ok(m, `malformed sample line: ${JSON.stringify(line)}`);
      const base = m[1].replace(/_(sum|count)$/, '');
      assert.ok(current && (m[1] === current.name || (current.type === 'summary' && base === current.name)),
        `sample ${m[1]} outside its family (current ${current?.name})`);
      const labels = {};
      if (m[3] !== undefined && m[3] !== '') {
        const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y;
        let at = 0;
        while (at < m[3].length) {
          re.lastIndex = at;
          const l = re.exec(m[3]);
          assert.ok(l, `bad labels in ${line}`);
          assert.ok(!(l[1] in labels), `duplicate label ${l[1]}`);
          labels[l[1]] = l[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
          at = re.lastIndex;
        }
      }
      assert.ok(/^([+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|NaN|[+-]Inf)$/.test(m[4]), `value ${m[4]}`);
      current.samples.push({ name: m[1], labels, value: Number(m[4]) });
    }
  }
  for (const [name, f] of families) {
    assert.ok(f.type, `${name} has a TYPE`);
    if (f.type === 'counter') assert.match(name, /_total$/, `counter ${name} ends in _total`);
  }
  return families;
}

test('writer: HELP/TYPE once, a continued family stays together, label escaping, BigInt exact, special floats', () => {
  const w = new MetricsWriter();
  w.family('a_total', 'counter', 'help with \\ and\nnewline').sample(2n ** 63n + 5n, { l: 'q"uo\\te\nnl' });
  w.family('b', 'gauge', 'g').sample(NaN).sample(Infinity, { x: 1 }).sample(-Infinity, { x: 2 });
  w.family('a_total', 'counter', 'again').sample(1, { l: 'second' });
  assert.equal(w.text(), [
    '# HELP a_total help with \\\\ and\\nnewline',
    '# TYPE a_total counter',
    'a_total{l="q\\"uo\\\\te\\nnl"} 9223372036854775813',
    'a_total{l="second"} 1',
    '# HELP b g',
    '# TYPE b gauge',
    'b NaN',
    'b{x="1"} +Inf',
    'b{x="2"} -Inf',
    '',
  ].join('\n'));
});

test('HOST:PORT', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:9464'), { host: '127.0.0.1', port: 9464 });
  assert.deepEqual(parseHostPort('[::1]:80'), { host: '::1', port: 80 });
  assert.deepEqual(parseHostPort('localhost:0'), { host: 'localhost', port: 0 });
  assert.deepEqual(parseHostPort('[fd00::1]', 6081), { host: 'fd00::1', port: 6081 });
  assert.deepEqual(parseHostPort('10.0.0.1', 4789), { host: '10.0.0.1', port: 4789 });
  for (const bad of ['', ':80', '10.0.0.1', '10.0.0.1:x', '10.0.0.1:65536', '::1:80', '[::1]:', 'h:-1']) {
    assert.throws(() => parseHostPort(bad), RangeError, bad);
  }
});

function get(port, path, method = 'GET') {
  return new Promise((resolve, reject) => {
    const r = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    r.on('error', reject);
    r.end();
  });
}

test('endpoint: GET/HEAD /metrics, 404 elsewhere, 405 for other methods, 500 if rendering fails', async () => {
  let fail = false;
  const server = await startMetricsServer({ host: '127.0.0.1', port: 0 }, () => {
    if (fail) throw new Error('boom');
    return new MetricsWriter().family('x', 'gauge', 'x').sample(1).text();
  });
  const { port } = server.address();
  try {
    const ok = await get(port, '/metrics?x=1');
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['content-type'], CONTENT_TYPE);
    assert.equal(ok.body, '# HELP x x\n# TYPE x gauge\nx 1\n');
    const head = await get(port, '/metrics', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.equal((await get(port, '/')).status, 404);
    assert.equal((await get(port, '/metrics', 'POST')).status, 405);
    fail = true;
    assert.equal((await get(port, '/metrics')).status, 500);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
  await assert.rejects(startMetricsServer({ host: '192.0.2.55', port: 0 }, () => ''), /EADDRNOTAVAIL/);
});

test('everything a running pump exports is well-formed and adds up', async () => {
  const apps = await appliances(3);
  const config = baseConfig(apps.list, { listeners: [{ name: 'vx', protocol: 'vxlan', frontend: 'fe', bind: '127.0.0.1:0', appliancePort: apps.port, vnis: [1], peers: ['127.0.0.0/8'] }] });
  config.probes = [{ name: 'p', protocol: 'tcp', port: 1, intervalSeconds: 60 }];
  config.rules[0].probe = 'p';
  config.health = { damping: false };
  const p = await startPump(config);
  const monitor = new HealthMonitor(p.core);
  try {
    for (let i = 0; i < 30; i++) {
      p.send('vx', concat(vxlanHeader(1), ether(ipv4({ src: `192.168.0.${i + 1}`, dst: '172.16.0.1', sport: 1000 + i, dport: 80 }))));
    }
    p.send('vx', Buffer.from('junk'));
    await waitFor(() => apps.list.reduce((n, a) => n + a.got.length, 0) === 30);
    for (const t of monitor.targets) monitor.record(t, { ok: t.address !== '127.0.0.3', detail: 'x' });
    const w = new MetricsWriter();
    writeCoreMetrics(w, p.core);
    p.pump.writeMetrics(w);
    monitor.writeMetrics(w);
    const f = parseExposition(w.text());
    const sum = (name, pred = () => true) => f.get(name).samples.filter((s) => pred(s.labels)).reduce((n, s) => n + s.value, 0);
    assert.equal(sum('haports_packets_total'), 30);
    assert.equal(sum('haports_backend_packets_total'), 30);
    assert.equal(sum('haports_rule_packets_total', (l) => l.rule === 'ha'), 30);
    assert.equal(sum('haports_backend_flows_total'), 30);
    assert.equal(sum('haports_drops_total', (l) => l.stage === 'pump' && l.reason === 'tunnel-truncated'), 1);
    assert.deepEqual(f.get('haports_backend_up').samples.map((s) => `${s.labels.backend}=${s.value}`), ['a0=1', 'a1=0', 'a2=1']);
    assert.deepEqual(f.get('haports_probe_up').samples.map((s) => s.value), [1, 0, 1]);
    assert.equal(sum('haports_flow_table_entries'), 30);
    assert.equal(sum('haports_flow_table_capacity'), 4096);
    assert.equal(sum('haports_pump_sent_packets_total'), 30);
    for (const name of ['haports_rule_bytes_total', 'haports_backend_bytes_total', 'haports_pump_received_bytes_total',
      'haports_pump_queue_packets', 'haports_pump_socket_drops_total', 'haports_pump_core_seconds_total',
      'haports_probe_checks_total', 'haports_probe_penalty', 'haports_backend_draining', 'haports_backend_info']) {
      assert.ok(f.has(name), name);
    }
  } finally {
    monitor.stop();
    await p.close();
    apps.close();
  }
});
