// The pump command's admin endpoints (/ready, /flows, /lookup beside /metrics) and
// pump.announce: the frontend addresses held on a dummy interface exactly while the pump
// is ready (the BGP daemon of a fleet announces what that interface holds; docs/fleet.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import dgram from 'node:dgram';
import { vxlanHeader } from '../../build/host/tunnel.mjs';
import { appliances, baseConfig, concat, ether, ipv4, spawnPump, waitFor } from './helpers.mjs';

const CLI = fileURLToPath(new URL('../../bin/haports.mjs', import.meta.url));

/** The pump command with `config` and a metrics/admin address, in a child process. */
function startPumpCommand(config, opts = {}) {
  const file = join(mkdtempSync(join(tmpdir(), 'haports-admin-')), 'pump.json');
  writeFileSync(file, JSON.stringify(config));
  return spawnPump(['--config', file, '--metrics', '127.0.0.1:0'], opts);
}

/** GET over HTTP (inside `netns` with curl-like python, or directly): status and JSON body. */
async function get(url, netns) {
  if (netns) {
    const out = execFileSync('ip', ['netns', 'exec', netns, 'python3', '-c',
      'import sys,urllib.request,urllib.error\ntry:\n r=urllib.request.urlopen(sys.argv[1]); print(r.status); print(r.read().decode())\nexcept urllib.error.HTTPError as e:\n print(e.code); print(e.read().decode())', url]).toString();
    const [status, ...body] = out.split('\n');
    return { status: Number(status), body: JSON.parse(body.join('\n')) };
  }
  const r = await fetch(url);
  const text = await r.text();
  return { status: r.status, body: r.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
}

const listeners = (port) => [
  { name: 'vx', protocol: 'vxlan', frontend: 'fe', bind: '127.0.0.1:0', appliancePort: port, vnis: [1], peers: ['127.0.0.0/8'] },
];

test('admin endpoints: /ready, /flows (filtered, bounded), /lookup (tracked flows keep their appliance)', async () => {
  const apps = await appliances(3);
  const p = startPumpCommand(baseConfig(apps.list, { listeners: listeners(apps.port) }));
  const sender = dgram.createSocket('udp4');
  try {
    const running = await waitFor(() => p.lines.find((l) => l.msg === 'running'), 15000, 'the pump running');
    const base = p.lines.find((l) => l.msg === 'metrics').url.replace(/\/metrics$/, '');
    const port = running.listeners[0].bind.port;
    await new Promise((r) => sender.bind(0, '127.0.0.1', r));
    // 20 TCP connections open (SYN) through the tunnel.
    const flows = Array.from({ length: 20 }, (_, i) => ({ src: `172.16.1.${i + 1}`, dst: '172.16.2.1', sport: 20000 + i, dport: 443 }));
    for (const f of flows) sender.send(concat(vxlanHeader(1), ether(ipv4({ ...f, proto: 6, tcpFlags: 0x02 }))), port, '127.0.0.1');
    await waitFor(() => apps.list.reduce((n, a) => n + a.got.length, 0) === 20, 5000, '20 datagrams at the appliances');
    const got = new Map(); // sport → appliance name
    apps.list.forEach((a, i) => a.got.forEach(({ msg }) => got.set(msg.readUInt16BE(8 + 14 + 20), `a${i}`)));

    let r = await get(`${base}/ready`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { ready: true, reasons: [], announced: null });

    r = await get(`${base}/flows`);
    assert.equal(r.status, 200);
    assert.equal(r.body.returned, 20);
    assert.equal(r.body.truncated, false);
    for (const f of r.body.flows) {
      assert.equal(f.rule, 'ha');
      assert.equal(f.backend, got.get(f.sport), `flow ${f.src}:${f.sport} listed with the appliance that got it`);
      assert.equal(f.dst, '172.16.2.1');
      assert.equal(f.established, false, 'a bare SYN is not established yet');
    }
    r = await get(`${base}/flows?limit=5`);
    assert.equal(r.body.returned, 5);
    assert.equal(r.body.truncated, true);
    const a1 = [...got.values()].filter((b) => b === 'a1').length;
    r = await get(`${base}/flows?backend=a1`);
    assert.equal(r.body.returned, a1);
    assert.ok(r.body.flows.every((f) => f.backend === 'a1'));
    r = await get(`${base}/flows?port=20007&proto=tcp`);
    assert.deepEqual(r.body.flows.map((f) => f.src), ['172.16.1.8']);
    r = await get(`${base}/flows?address=172.16.1.3`);
    assert.equal(r.body.returned, 1);
    for (const bad of ['bogus=1', 'limit=-1', 'limit=20000', 'backend=nope', 'address=x', 'established=maybe']) {
      r = await get(`${base}/flows?${bad}`);
      assert.equal(r.status, 400, bad);
      assert.ok(r.body.error, bad);
    }

    // A tracked flow: its appliance, both directions.
    const f = flows[7];
    r = await get(`${base}/lookup?proto=tcp&src=${f.src}&sport=${f.sport}&dst=${f.dst}&dport=${f.dport}`);
    assert.equal(r.status, 200);
    assert.equal(r.body.frontend, 'fe');
    assert.equal(r.body.forward.backend, got.get(f.sport));
    assert.match(r.body.forward.why, /^tracked flow/);
    assert.equal(r.body.reverse.backend, got.get(f.sport));
    assert.match(r.body.reverse.why, /^tracked flow/);
    // A new one: the consistent hash, its slot.
    r = await get(`${base}/lookup?proto=tcp&src=192.0.2.9&sport=1234&dst=198.51.100.1&dport=22`);
    assert.equal(r.body.forward.why, 'consistent hash');
    assert.equal(r.body.forward.tracked, null);
    assert.ok(r.body.forward.slot >= 0 && r.body.forward.slot < r.body.forward.tableSize);
    assert.equal((await get(`${base}/lookup?proto=tcp`)).status, 400);

    // The CLI asks the same endpoints: haports flows and haports lookup --pump.
    const cli = (...args) => new Promise((resolve) => {
      const c = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '', err = '';
      c.stdout.on('data', (d) => { out += d; });
      c.stderr.on('data', (d) => { err += d; });
      c.on('exit', (code) => resolve({ code, out, err }));
    });
    let c = await cli('flows', '--pump', base, '--backend', 'a1', '--json');
    assert.equal(c.code, 0, c.err);
    assert.equal(JSON.parse(c.out).returned, a1);
    c = await cli('flows', '--pump', base, '--port', '20007');
    assert.equal(c.code, 0, c.err);
    assert.match(c.out, new RegExp(`^tcp +172\\.16\\.1\\.8:20007 → 172\\.16\\.2\\.1:443  ha/${got.get(20007)}  unverified`, 'm'));
    assert.match(c.out, /^1 flows; 20 flow-table entries in use$/m);
    c = await cli('lookup', '--pump', base, 'tcp', `${f.src}:${f.sport}`, `${f.dst}:${f.dport}`);
    assert.equal(c.code, 0, c.err);
    assert.match(c.out, new RegExp(`^forward tcp .*backend p/${got.get(f.sport)} \\(tracked flow`, 'm'));
    c = await cli('flows', '--pump', base, '--backend', 'nope');
    assert.equal(c.code, 2);
    assert.match(c.err, /no backend named "nope"/);

    const metrics = await get(`${base}/metrics`);
    assert.match(metrics.body, /^haports_pump_ready 1$/m);
    assert.equal((await get(`${base}/nothing`)).status, 404);
  } finally {
    sender.close();
    p.child.kill('SIGTERM');
    assert.equal(await p.exited, 0);
    apps.close();
  }
});

test('/ready is 503 with the reasons while probes settle and while no appliance behind a listener\'s frontend is healthy', async () => {
  // A TCP probe to a port nobody listens on: every appliance is down from the first round.
  const closed = await new Promise((r) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => r(port)); }); });
  const apps = await appliances(2);
  const cfg = baseConfig(apps.list, { listeners: listeners(apps.port) });
  cfg.probes = [{ name: 'dead', protocol: 'tcp', port: closed, intervalSeconds: 1, threshold: 2 }];
  cfg.rules[0].probe = 'dead';
  const p = startPumpCommand(cfg);
  try {
    await waitFor(() => p.lines.find((l) => l.msg === 'running'), 15000, 'the pump running');
    const base = p.lines.find((l) => l.msg === 'metrics').url.replace(/\/metrics$/, '');
    // A first failure is not trusted until `threshold` results confirm it (a route or a
    // neighbour may not have been there yet): the pump is not ready while its view settles.
    let r = await get(`${base}/ready`);
    assert.equal(r.status, 503);
    assert.equal(r.body.ready, false);
    assert.match(r.body.reasons[0], /^probes settling: 2 target\(s\) failed their first probe/);
    // Confirmed down: the only reason left is the frontend without a healthy appliance.
    for (const deadline = Date.now() + 8000; r.body.reasons.length !== 1 && Date.now() < deadline;) {
      await new Promise((res) => setTimeout(res, 100));
      r = await get(`${base}/ready`);
    }
    assert.equal(r.status, 503);
    assert.deepEqual(r.body.reasons, ['frontend "fe": no healthy appliance']);
    assert.match((await get(`${base}/metrics`)).body, /^haports_pump_ready 0$/m);
  } finally {
    p.child.kill('SIGTERM');
    await p.exited;
    apps.close();
  }
});

test('pump.announce: the address is on the interface exactly while ready; withdrawn when appliances fail and on SIGTERM', async (t) => {
  assert.equal(process.getuid(), 0, 'this test needs root (network namespaces); the suite runs as root');
  const ns = `hpa-${process.pid}`;
  const sh = (...a) => execFileSync('ip', a, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  const held = () => sh('-n', ns, '-o', 'address', 'show', 'dev', 'lo').includes('10.250.0.1/32');
  try { sh('netns', 'del', ns); } catch { /* none left */ }
  sh('netns', 'add', ns);
  t.after(() => { try { sh('netns', 'del', ns); } catch { /* gone */ } });
  sh('-n', ns, 'link', 'set', 'lo', 'up');
  sh('-n', ns, 'address', 'add', '127.0.0.2/8', 'dev', 'lo');
  // The appliances' health endpoint: a TCP listener in the namespace, started and stopped at will.
  const healthPort = 18080;
  let health = null;
  const startHealth = () => {
    health = spawn('ip', ['netns', 'exec', ns, 'python3', '-c',
      `import socket,time\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.2", ${healthPort})); s.listen(64)\nwhile True:\n c,_=s.accept(); c.close()`], { stdio: 'ignore' });
  };
  const stopHealth = () => new Promise((r) => {
    if (health.exitCode !== null || health.signalCode !== null) { r(); return; }
    health.once('exit', r);
    health.kill('SIGKILL');
  });
  startHealth();
  const cfg = baseConfig([{ address: '127.0.0.2' }], {
    listeners: [{ name: 'vx', protocol: 'vxlan', frontend: 'fe', bind: '0.0.0.0:4789', vnis: [1], peers: ['10.0.0.0/8'] }],
    // lo: this machine's kernel has no dummy interfaces; the pump creates one where it can.
    announce: { interface: 'lo', addresses: ['10.250.0.1/32'], withdrawSeconds: 1 },
  });
  cfg.probes = [{ name: 'h', protocol: 'tcp', port: healthPort, intervalSeconds: 1, threshold: 1 }];
  cfg.rules[0].probe = 'h';
  cfg.rules[1].probe = 'h';
  await new Promise((r) => setTimeout(r, 300)); // the health listener binds
  const p = startPumpCommand(cfg, { netns: ns });
  try {
    await waitFor(() => p.lines.find((l) => l.msg === 'announced'), 15000, 'the announcement');
    assert.ok(held(), 'the address is on the interface');
    const base = p.lines.find((l) => l.msg === 'metrics').url.replace(/\/metrics$/, '');
    assert.deepEqual((await get(`${base}/ready`, ns)).body, { ready: true, reasons: [], announced: true });

    // The only appliance fails: not ready, withdrawn.
    await stopHealth();
    await waitFor(() => p.lines.find((l) => l.msg === 'withdrawn'), 10000, 'the withdrawal');
    assert.ok(!held(), `withdrawn: the address is gone ${JSON.stringify(p.lines.filter((l) => /announce|withdr|probe|health|backend/.test(l.msg)))}`);
    const r = await get(`${base}/ready`, ns);
    assert.equal(r.status, 503);
    assert.equal(r.body.announced, false);

    // It returns: announced again.
    startHealth();
    await waitFor(() => p.lines.filter((l) => l.msg === 'announced').length === 2, 10000, 'the second announcement');
    assert.ok(held());

    // SIGTERM: withdrawn at once, forwarding for withdrawSeconds more, then stopped.
    const t0 = Date.now();
    p.child.kill('SIGTERM');
    await waitFor(() => p.lines.filter((l) => l.msg === 'withdrawn').length === 2, 5000, 'the withdrawal on SIGTERM');
    assert.ok(!held(), 'withdrawn before the pump stops');
    assert.equal(await p.exited, 0);
    assert.ok(Date.now() - t0 >= 1000, 'the pump kept forwarding for withdrawSeconds after the withdrawal');
  } finally {
    p.child.kill('SIGKILL');
    await stopHealth().catch(() => {});
  }
});
