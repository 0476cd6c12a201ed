// "Which appliance gets this flow?": Dataplane.lookup / maglev and `haports lookup` /
// `haports maglev`. The answers must be the dataplane's own: every packet of the bundled
// capture looked up gets the verdict `haports replay` gives it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Dataplane } from 'haports';
import { readCapture } from '../../build/host/pcap.mjs';
import { packet } from '../lib/packets.mjs';
import { baseConfig, FE4 } from './configs.mjs';

const bin = new URL('../../bin/haports.mjs', import.meta.url).pathname;
const run = (...args) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
const PROTO_NAMES = { 6: 'tcp', 17: 'udp', 1: 'icmp', 58: 'icmp' };

/** The ICMP echo identifier of an Ethernet frame (IPv4 or IPv6, no VLAN), or 0. */
function echoId(frame) {
  const type = (frame[12] << 8) | frame[13];
  if (type === 0x0800) { const l4 = 14 + (frame[14] & 0x0f) * 4; return (frame[l4 + 4] << 8) | frame[l4 + 5]; }
  if (type === 0x86dd) return (frame[14 + 40 + 4] << 8) | frame[14 + 40 + 5];
  return 0;
}

test('lookup agrees with replay for every packet of examples/sample.pcap', () => {
  const capture = readCapture(readFileSync('examples/sample.pcap'));
  const lines = execFileSync(process.execPath, [bin, 'replay', '--config', 'examples/config.json', '--quiet', 'examples/sample.pcap'],
    { encoding: 'utf8' }).trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, capture.packets.length);
  const dp = Dataplane.create(readFileSync('examples/config.json', 'utf8'));
  let compared = 0;
  const wrong = [];
  for (const v of lines) {
    const t = v.tuple;
    if (!t) { assert.equal(v.verdict, 'drop'); continue; } // not IP: nothing to look up
    const icmp = t.proto === 1 || t.proto === 58;
    if (!icmp && (t.proto === 6 || t.proto === 17) && t.sport === null) continue; // a later fragment: no ports to ask with
    const sport = icmp ? echoId(capture.packets[v.index].data) : t.sport ?? 0;
    const r = dp.lookup({ proto: PROTO_NAMES[t.proto] ?? t.proto, src: t.src, dst: t.dst, sport, dport: t.dport ?? 0 }).forward;
    compared++;
    if (r.verdict !== v.verdict || r.backend !== v.backend || r.rule !== v.rule) wrong.push({ replay: v, lookup: r });
  }
  assert.ok(compared >= 190, `compared ${compared} packets`);
  assert.deepEqual(wrong, [], `${wrong.length} packets differ`);
});

test('lookup changes nothing in the dataplane, follows its backend states, and says why', () => {
  const dp = Dataplane.create(baseConfig());
  const flow = { proto: 'tcp', src: '192.168.7.9', dst: FE4, sport: 40000, dport: 443 };
  const before = dp.counters();
  const a = dp.lookup(flow);
  assert.equal(a.forward.verdict, 'forward');
  assert.equal(a.forward.why, 'consistent hash');
  assert.equal(a.forward.tracked, null);
  // The slot: the pool's table at that slot names the backend.
  const table = dp.maglev(a.forward.pool);
  assert.equal(a.forward.tableSize, table.size);
  assert.ok(Number.isInteger(a.forward.slot) && a.forward.slot >= 0 && a.forward.slot < table.size);
  assert.equal(table.table[a.forward.slot], a.forward.backend);
  assert.deepEqual(dp.counters(), before, 'no packet counted, no flow entry');
  // The same flow through the dataplane goes where lookup said.
  const d = dp.process([packet({ src: flow.src, dst: FE4, sport: 40000, dport: 443, tcpFlags: 0x02 })], { now: 1 })[0];
  assert.equal(d.backend, a.forward.backend);
  assert.equal(dp.flows().length, 1);
  // Its backend goes down: the tracked TCP flow stays (persistOnUnhealthy defaultForProtocol),
  // and lookup says so; a new flow on the same 5-tuple elsewhere (a dataplane that does not track it).
  dp.setHealth(a.forward.backend, 'down');
  const b = dp.lookup(flow);
  assert.equal(b.forward.backend, a.forward.backend);
  assert.match(b.forward.why, /^tracked flow \(not yet established\)/);
  assert.equal(b.reverse.backend, a.forward.backend, 'a symmetric rule tracks both directions as one');
  const fresh = Dataplane.create(baseConfig());
  fresh.setHealth(a.forward.backend, 'down');
  assert.notEqual(fresh.lookup(flow).forward.backend, a.forward.backend);
  assert.equal(fresh.lookup(flow).forward.tracked, null);
  // Every backend down: the rule's noHealthyBackends decides.
  for (const name of Object.keys(dp.counters().backends).map((k) => k.split('/')[1])) fresh.setHealth(name, 'down');
  const c = fresh.lookup(flow).forward;
  assert.equal(c.verdict, 'drop');
  assert.match(c.why, /dropped \(no-healthy-backend\)/);
  // IPv6 and ICMP are asked the same way; bad input is a RangeError.
  assert.equal(dp.lookup({ proto: 'udp', src: '2001:db8::1', dst: '2001:db8::2', sport: 1, dport: 2 }).forward.verdict, 'nomatch');
  for (const bad of [{ proto: 'sctp', src: '1.2.3.4', dst: FE4 }, { proto: 'tcp', src: 'x', dst: FE4 }, { proto: 'tcp', src: '::1', dst: FE4 },
    { proto: 'tcp', src: '1.2.3.4', dst: FE4, sport: 70000 }]) {
    assert.throws(() => dp.lookup(bad), (e) => e instanceof RangeError && e.code === 'ERR_OUT_OF_RANGE', JSON.stringify(bad));
  }
});

test('maglev: each backend\'s share of its pool\'s table; weights show', () => {
  const config = baseConfig();
  config.backendPools[0].backends[0].weight = 3;
  const dp = Dataplane.create(config);
  const pool = config.backendPools[0].name;
  const m = dp.maglev(pool);
  assert.equal(m.table.length, m.size);
  const shares = Object.values(m.shares);
  assert.ok(Math.abs(shares.reduce((a, b) => a + b, 0) - 1) < 1e-9);
  const [first, ...rest] = Object.entries(m.shares);
  for (const [, s] of rest) assert.ok(first[1] > 2.5 * s, `weight 3 against 1: ${JSON.stringify(m.shares)}`);
  assert.throws(() => dp.maglev('nope'), RangeError);
});

test('haports lookup and haports maglev: text, --json, and exit codes', () => {
  const t = run('lookup', '--config', 'examples/config.json', 'tcp', '192.0.2.7:40000', '10.0.0.100:443');
  assert.equal(t.status, 0, t.stderr);
  assert.match(t.stdout, /^forward tcp 192\.0\.2\.7:40000 → 10\.0\.0\.100:443: rule ha, backend nvas\/nva-\d \(consistent hash, slot \d+ of 65537\)\nreverse /);
  const j = run('lookup', '--config', 'examples/config.json', '--json', 'udp', '[2001:db8::7]:53', '[fd00::100]:53');
  assert.equal(j.status, 0, j.stderr);
  const r = JSON.parse(j.stdout);
  assert.ok(r.forward && r.reverse);
  const dp = Dataplane.create(readFileSync('examples/config.json', 'utf8'));
  assert.deepEqual(r.forward, dp.lookup({ proto: 'udp', src: '2001:db8::7', dst: 'fd00::100', sport: 53, dport: 53 }).forward);
  assert.equal(run('lookup', '--config', 'examples/config.json', 'tcp', '192.0.2.7').status, 2);
  assert.equal(run('lookup', '--config', 'examples/config.json', 'gre', '1.2.3.4', '10.0.0.100').status, 2);
  assert.equal(run('lookup', 'tcp', '1.2.3.4', '5.6.7.8').status, 2);
  const m = run('maglev', '--config', 'examples/config.json', '--json');
  assert.equal(m.status, 0, m.stderr);
  const pools = JSON.parse(m.stdout);
  assert.ok(pools.length >= 1 && pools.every((p) => p.size > 0 && Math.abs(Object.values(p.shares).reduce((a, b) => a + b, 0) - 1) < 1e-9));
  assert.equal(run('maglev', '--config', 'examples/config.json', '--pool', 'nope').status, 2);
  assert.equal(run('lookup', '--help').status, 0);
  assert.equal(run('maglev', '--help').status, 0);
});

test('flows in steps (what the pump\'s workers do between packets): each step walks a bounded part of the table; the steps list what one walk lists', async () => {
  const { Core } = await import('../../build/host/core.mjs');
  const { flowWalk, listFlows } = await import('../../build/host/lookup.mjs');
  const config = baseConfig();
  config.flowTable = { capacity: 16384 };
  const core = Core.load();
  core.configure(JSON.stringify(config));
  const pkts = Array.from({ length: 3000 }, (_, i) =>
    packet({ src: `192.168.${i >> 8}.${i & 255}`, dst: FE4, sport: 10000 + i, dport: 443, tcpFlags: 0x02 }));
  for (let i = 0; i < pkts.length; i += core.maxBatch) {
    const batch = pkts.slice(i, i + core.maxBatch);
    core.load(batch);
    core.process(batch.length, 1000);
  }
  const all = listFlows(core, {}, Infinity);
  assert.equal(all.length, 3000);
  const walk = flowWalk(core, {}, Infinity);
  let steps = 0;
  while (!walk.step(1)) steps++;
  // Pages of up to 256 entries in use (flows and, for translated rules, their reply
  // entries): every step but the last leaves the walk unfinished.
  const used = core.exports.flowTableUsed();
  assert.ok(used >= 3000);
  assert.equal(steps, Math.ceil(used / 256) - 1);
  assert.deepEqual(walk.flows, all);
  // A limit ends the walk early; a bad filter throws at once, before any step.
  const few = flowWalk(core, {}, 10);
  assert.equal(few.step(1), true);
  assert.equal(few.flows.length, 10);
  assert.throws(() => flowWalk(core, { backend: 'nope' }, 10), RangeError);
});
