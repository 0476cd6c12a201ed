// Behaviour of the core through the Node binding: rule match, hashing, Maglev, the
// flow table, health, configuration errors and the zero-allocation packet path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

import { Core, ConfigError, NONE, FLAGS } from '../../build/host/core.mjs';
import { packet, rng, randomV4, randomV6 } from '../lib/packets.mjs';
import { baseConfig, FE4, FE6 } from './configs.mjs';

function coreWith(config = baseConfig()) {
  const core = Core.load();
  core.configure(config);
  return core;
}

/** Runs packets (≤ maxBatch) and returns their verdicts. */
function run(core, packets, now = 1000, ingress = NONE) {
  core.load(packets);
  core.process(packets.length, now, ingress);
  return packets.map((_, i) => core.verdict(i));
}

/** Runs any number of packets in batches and returns the backend index of each. */
function backendsOf(core, packets, now = 1000, ingress = NONE) {
  const out = [];
  for (let i = 0; i < packets.length; i += core.maxBatch) {
    for (const v of run(core, packets.slice(i, i + core.maxBatch), now, ingress)) out.push(v.backend);
  }
  return out;
}

function randomFlows(n, seed, family = 4) {
  const next = rng(seed);
  const flows = [];
  for (let i = 0; i < n; i++) {
    flows.push(packet({
      src: family === 4 ? randomV4(next) : randomV6(next),
      dst: family === 4 ? FE4 : FE6,
      proto: [6, 17, 132][next() % 3],
      sport: 1024 + (next() % 60000),
      dport: 1 + (next() % 65535),
    }));
  }
  return flows;
}

test('rule match: exact (frontend, protocol, port) before HA ports; other destinations no-match', () => {
  const core = coreWith();
  const [https, http, udp443, other, v6] = run(core, [
    packet({ src: '192.168.0.1', dst: FE4, proto: 6, dport: 443 }),
    packet({ src: '192.168.0.1', dst: FE4, proto: 6, dport: 80 }),
    packet({ src: '192.168.0.1', dst: FE4, proto: 17, dport: 443 }),
    packet({ src: '192.168.0.1', dst: '10.9.9.9', proto: 6, dport: 443 }),
    packet({ src: 'fd00:2::1', dst: FE6, proto: 6, dport: 443 }),
  ]);
  assert.equal(core.names.rules[https.rule], 'https');
  assert.equal(core.names.backends[https.backend], 'web-0');
  assert.ok(https.flags & FLAGS.exactRule);
  assert.equal(core.names.rules[http.rule], 'ha');
  assert.equal(core.names.rules[udp443.rule], 'ha');
  assert.match(core.names.backends[http.backend], /^nva-\d$/);
  assert.equal(other.action, 'nomatch');
  assert.equal(other.reason, 'no-rule');
  assert.equal(core.names.rules[v6.rule], 'ha6');
  assert.match(core.names.backends[v6.backend], /^nva6-\d$/);
  assert.equal(core.counters().nomatch, 1);
});

test('next hop: with an ingress frontend every destination uses its rules', () => {
  const core = coreWith();
  const [v] = run(core, [packet({ src: '192.168.0.1', dst: '172.16.5.5', dport: 22 })], 1000, 0);
  assert.equal(v.action, 'forward');
  assert.equal(core.names.rules[v.rule], 'ha');
  assert.ok(v.flags & FLAGS.nextHop);
  assert.throws(() => core.process(1, 1000, 7), RangeError); // no frontend 7
});

test('100k random flows over 4 equal backends land within ±5% of the mean', () => {
  const core = coreWith();
  const counts = [0, 0, 0, 0];
  for (const b of backendsOf(core, randomFlows(100_000, 42))) counts[b]++;
  const mean = 25_000;
  for (const c of counts) assert.ok(Math.abs(c - mean) / mean <= 0.05, `counts ${counts}`);
});

test('same 5-tuple, same backend: across cores and across process restarts', () => {
  const flows = randomFlows(2000, 7).concat(randomFlows(500, 8, 6));
  const a = backendsOf(coreWith(), flows);
  const b = backendsOf(coreWith(), flows);
  assert.deepEqual(a, b);
  // A new process computes the same backends.
  const script = `
    import { Core } from ${JSON.stringify(new URL('../../build/host/core.mjs', import.meta.url).href)};
    import { baseConfig } from ${JSON.stringify(new URL('./configs.mjs', import.meta.url).href)};
    import { createRequire } from 'node:module';
    const require = createRequire(import.meta.url);
    const core = Core.load(); core.configure(baseConfig());
    const hex = require('node:fs').readFileSync(0, 'utf8').split(',');
    const out = [];
    for (let i = 0; i < hex.length; i += 1024) {
      const batch = hex.slice(i, i + 1024).map((h) => Uint8Array.from(Buffer.from(h, 'hex')));
      core.load(batch); core.process(batch.length, 5);
      for (let j = 0; j < batch.length; j++) out.push(core.verdict(j).backend);
    }
    process.stdout.write(JSON.stringify(out));`;
  const arg = flows.map((p) => Buffer.from(p).toString('hex')).join(',');
  const child = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { input: arg, maxBuffer: 1 << 24 }).toString());
  assert.deepEqual(child, a);
});

test('a different hash seed gives a different spread', () => {
  const flows = randomFlows(2000, 9);
  const a = backendsOf(coreWith(), flows);
  const b = backendsOf(coreWith(baseConfig({ hashSeed: '0x1' })), flows);
  const same = a.filter((x, i) => x === b[i]).length;
  assert.ok(same < 2000 * 0.4, `${same} of 2000 unchanged`); // ~1/4 by chance
});

test('symmetric (HA-ports default): both directions of a flow reach one backend', () => {
  const core = coreWith();
  const next = rng(11);
  const fwd = [];
  const rev = [];
  for (let i = 0; i < 1000; i++) {
    const a = randomV4(next), b = randomV4(next), sp = 1024 + (next() % 60000), dp = 1 + (next() % 65535);
    const proto = [6, 17][i % 2];
    fwd.push(packet({ src: a, dst: b, proto, sport: sp, dport: dp }));
    rev.push(packet({ src: b, dst: a, proto, sport: dp, dport: sp, tcpFlags: 0x12 }));
  }
  // Next-hop: spokes' traffic routed through the frontend, in both directions.
  const f = backendsOf(coreWith(), fwd, 1000, 0);
  const r = backendsOf(core, rev, 1000, 0); // fresh core: no flow state shared
  assert.deepEqual(r, f);
});

test('symmetric false: the reverse direction is hashed on its own', () => {
  const config = baseConfig();
  config.rules[0].symmetric = false;
  const next = rng(12);
  const fwd = [], rev = [];
  for (let i = 0; i < 400; i++) {
    const a = randomV4(next), b = randomV4(next), sp = 1024 + (next() % 60000), dp = 1 + (next() % 65535);
    fwd.push(packet({ src: a, dst: b, sport: sp, dport: dp }));
    rev.push(packet({ src: b, dst: a, sport: dp, dport: sp }));
  }
  const f = backendsOf(coreWith(config), fwd, 1000, 0);
  const r = backendsOf(coreWith(config), rev, 1000, 0);
  const same = f.filter((x, i) => x === r[i]).length;
  assert.ok(same < 400 * 0.4, `${same} of 400 reversed flows agree`);
});

test('load distribution sourceIP / sourceIPProtocol ignore the fields they should', () => {
  for (const [mode, varyProto] of [['sourceIP', true], ['sourceIPProtocol', false]]) {
    const config = baseConfig();
    config.rules[0].loadDistribution = mode;
    const core = coreWith(config);
    const next = rng(13);
    for (let pair = 0; pair < 50; pair++) {
      const src = randomV4(next);
      const pkts = [];
      for (let i = 0; i < 20; i++) {
        pkts.push(packet({ src, dst: FE4, proto: varyProto ? [6, 17][i % 2] : 6, sport: 1024 + (next() % 60000), dport: 1 + (next() % 65535) }));
      }
      const bs = new Set(backendsOf(core, pkts));
      assert.equal(bs.size, 1, `${mode}: pair ${src} spread over ${[...bs]}`);
    }
  }
});

test('flow table: a tracked flow keeps its backend when a backend is added', () => {
  const core = coreWith();
  const flows = randomFlows(5000, 21);
  const before = backendsOf(core, flows, 1000);
  const config = baseConfig();
  config.backendPools[0].backends.push({ name: 'nva-4', address: '10.0.1.8' });
  core.configure(config);
  const after = backendsOf(core, flows, 2000);
  assert.deepEqual(after, before);
  // New flows do use the new backend.
  const fresh = backendsOf(core, randomFlows(5000, 22), 2000);
  assert.ok(fresh.filter((b) => core.names.backends[b] === 'nva-4').length > 700);
});

test('Maglev: removing one of N backends moves about 1/N of untracked flows', () => {
  const flows = randomFlows(20_000, 31);
  const config = baseConfig();
  config.backendPools[0].backends = [...Array(10).keys()].map((i) => ({ name: `nva-${i}`, address: `10.0.1.${10 + i}` }));
  const a = backendsOf(coreWith(config), flows);
  config.backendPools[0].backends.splice(3, 1); // remove nva-3
  const core = coreWith(config);
  const b = backendsOf(core, flows);
  let moved = 0, movedOther = 0;
  const oldNames = [...Array(10).keys()].map((i) => `nva-${i}`);
  for (let i = 0; i < flows.length; i++) {
    const was = oldNames[a[i]];
    const now = core.names.backends[b[i]];
    if (was !== now) { moved++; if (was !== 'nva-3') movedOther++; }
  }
  const share = moved / flows.length;
  assert.ok(share > 0.08 && share < 0.13, `moved ${share}`); // ideal 1/10
  assert.ok(movedOther / flows.length < 0.02, `flows not on nva-3 moved: ${movedOther}`);
});

test('Maglev: weights are honoured and the table is identical across cores', () => {
  const config = baseConfig();
  config.backendPools[0].backends[0].weight = 3;
  const a = coreWith(config);
  const t = a.maglevTable(0);
  const counts = [0, 0, 0, 0];
  for (const b of t) counts[b]++;
  assert.equal(counts.reduce((x, y) => x + y), 65537);
  assert.ok(Math.abs(counts[0] / counts[1] - 3) < 0.1, `counts ${counts}`);
  // Backend order in the configuration does not matter: sorted by name before building.
  const shuffled = baseConfig();
  shuffled.backendPools[0].backends.reverse();
  shuffled.backendPools[0].backends.find((b) => b.name === 'nva-0').weight = 3;
  const t2 = coreWith(shuffled).maglevTable(0);
  const names1 = Array.from(t, (b) => a.names.backends[b]);
  const c2 = coreWith(shuffled);
  const names2 = Array.from(t2, (b) => c2.names.backends[b]);
  assert.deepEqual(names2, names1);
});

test('health: new flows avoid a down backend; TCP stays, UDP moves (defaultForProtocol)', () => {
  const core = coreWith();
  const next = rng(41);
  const tcp = [], udp = [];
  for (let i = 0; i < 400; i++) {
    const src = randomV4(next), sport = 1024 + (next() % 60000);
    tcp.push(packet({ src, dst: FE4, proto: 6, sport, dport: 80, tcpFlags: 0x10 }));
    udp.push(packet({ src, dst: FE4, proto: 17, sport, dport: 53 }));
  }
  const tcpBefore = backendsOf(core, tcp, 1000);
  const udpBefore = backendsOf(core, udp, 1000);
  core.setBackendHealth(1, false); // nva-1 down
  const tcpAfter = backendsOf(core, tcp, 2000);
  const udpAfter = backendsOf(core, udp, 2000);
  assert.deepEqual(tcpAfter, tcpBefore);
  assert.ok(udpBefore.includes(1));
  assert.ok(!udpAfter.includes(1));
  udpBefore.forEach((b, i) => { if (b !== 1) assert.equal(udpAfter[i], b); });
  const fresh = backendsOf(core, randomFlows(2000, 42), 2000);
  assert.ok(!fresh.includes(1));
  // All down, noHealthyBackends drop: new flows dropped, established TCP continues.
  for (const b of [0, 2, 3]) core.setBackendHealth(b, false);
  const [v] = run(core, [packet({ src: '1.2.3.4', dst: FE4, proto: 6, sport: 5555 })], 3000);
  assert.equal(v.action, 'drop');
  assert.equal(v.reason, 'no-healthy-backend');
  assert.deepEqual(backendsOf(core, tcp, 3000), tcpBefore);
  // Back up: new flows spread again.
  core.setBackendHealth(1, true);
  const [w] = run(core, [packet({ src: '1.2.3.4', dst: FE4, proto: 6, sport: 5555 })], 4000);
  assert.equal(w.backend, 1);
});

test('idle timeout: an idle flow expires and is hashed afresh', () => {
  const core = coreWith();
  const p = packet({ src: '192.168.0.9', dst: FE4, proto: 17, sport: 4000, dport: 53 });
  const [first] = run(core, [p], 0);
  assert.ok(first.flags & FLAGS.flowNew);
  const [hit] = run(core, [p], 3 * 60_000);
  assert.ok(hit.flags & FLAGS.flowHit);
  const [again] = run(core, [p], 3 * 60_000 + 4 * 60_000 + 1); // default 4 minutes idle
  assert.ok(again.flags & FLAGS.flowNew, 'expired flow is new again');
});

test('configuration errors: every error as path: reason, running configuration kept', () => {
  const core = coreWith();
  const flows = randomFlows(100, 51);
  const before = backendsOf(core, flows, 1000);
  const bad = baseConfig();
  bad.rules[0].frontend = 'nope';
  bad.rules[1].backendPool = 'missing';
  bad.backendPools[0].maglevTableSize = 65536;
  bad.frontends[0].address = '10.0.0.300';
  bad.rules[2].protocol = 'all';
  let err;
  assert.throws(() => core.configure(bad), (e) => { err = e; return e instanceof ConfigError; });
  assert.deepEqual(err.errors.sort(), [
    'backendPools[0].maglevTableSize: pool "nvas": must be prime, got 65536',
    'frontends[0].address: frontend "fe-v4": not an IPv4 or IPv6 address: "10.0.0.300"',
    'rules[0].frontend: rule "ha": unknown frontend "nope"',
    'rules[1].backendPool: rule "ha6": unknown backend pool "missing"',
    'rules[2]: rule "https": protocol "all" (HA ports) needs frontendPort 0 and backendPort 0',
  ].sort());
  assert.throws(() => core.configure('{"frontends": [ }'), (e) => e instanceof ConfigError && /^\$: invalid JSON at byte 16/.test(e.errors[0]));
  assert.throws(() => core.configure('[]'), /\$: expected an object, got array/);
  assert.deepEqual(backendsOf(core, flows, 2000), before);
  assert.equal(core.counters().configRejected, 3);
  assert.equal(core.counters().flowNew, 100);
  assert.equal(core.exports.flowTableUsed(), 200); // each translated flow: its entry and its reply entry
});

test('malformed packets: random and truncated bytes never trap; each is counted', () => {
  const core = coreWith();
  const next = rng(61);
  const good = packet({ src: '192.168.0.1', dst: FE4, proto: 6 });
  let total = 0;
  for (let round = 0; round < 200; round++) {
    const batch = [];
    for (let i = 0; i < 256; i++) {
      const kind = next() % 3;
      let p;
      if (kind === 0) { // random bytes with a plausible first nibble
        p = new Uint8Array(next() % 80);
        for (let j = 0; j < p.length; j++) p[j] = next() & 0xff;
        if (p.length) p[0] = (p[0] & 0x0f) | ((next() & 1) ? 0x40 : 0x60);
      } else if (kind === 1) { // truncated good packet
        p = good.slice(0, next() % good.length);
      } else { // mutated good packet
        p = good.slice();
        for (let k = 0; k < 3; k++) p[next() % p.length] = next() & 0xff;
      }
      batch.push(p);
    }
    const vs = run(core, batch, 1000 + round);
    for (const v of vs) assert.ok(['forward', 'drop', 'nomatch'].includes(v.action));
    total += batch.length;
  }
  const c = core.counters();
  assert.equal(c.packets, total);
  assert.equal(c.forwarded + c.dropped + c.nomatch, total);
});

test('bad descriptors are dropped, not read', () => {
  const core = coreWith();
  core.setDescriptor(0, core.arenaSize - 10, 100);
  core.setDescriptor(1, 0xffffffff, 1);
  core.process(2, 1000);
  assert.equal(core.verdict(0).reason, 'bad-descriptor');
  assert.equal(core.verdict(1).reason, 'bad-descriptor');
  assert.throws(() => core.process(core.maxBatch + 1, 1000), RangeError);
});



test('a bare SYN on a reused 5-tuple (closing, or its backend down) is a new connection', () => {
  const core = coreWith();
  const next = rng(71);
  const tuples = Array.from({ length: 200 }, () => ({ src: randomV4(next), dst: FE4, proto: 6, sport: 1024 + (next() % 60000), dport: 80 }));
  const syn = tuples.map((t) => packet({ ...t, tcpFlags: 0x02 }));
  const ack = tuples.map((t) => packet({ ...t, tcpFlags: 0x10 }));
  const fin = tuples.map((t) => packet({ ...t, tcpFlags: 0x11 }));
  const first = backendsOf(core, syn, 1000);
  backendsOf(core, ack, 1100);
  // Backend 1 goes down: established flows (ACK) stay; a new SYN on the same tuple moves.
  core.setBackendHealth(1, false);
  assert.deepEqual(backendsOf(core, ack, 1200), first);
  const onDown = first.map((b) => b === 1);
  assert.ok(onDown.some(Boolean));
  const again = run(core, syn.slice(0, 200), 1300);
  again.forEach((v, i) => {
    if (onDown[i]) {
      assert.notEqual(v.backend, 1);
      assert.ok(v.flags & FLAGS.flowNew);
    } else {
      assert.equal(v.backend, first[i]);
      assert.ok(v.flags & FLAGS.flowHit); // a SYN retransmission on a healthy backend stays
    }
  });
  // After FIN the entry is closing: a new SYN is a new flow (same backend by hash here).
  core.setBackendHealth(1, true);
  backendsOf(core, fin, 1400);
  const reopened = run(core, syn.slice(0, 200), 1500);
  assert.ok(reopened.every((v) => v.flags & FLAGS.flowNew));
});

test('describe(): the configuration as the core read it, with defaults, indices, canonical addresses and host sections', () => {
  const config = baseConfig();
  config.pump = { listeners: [{ name: 'x', note: 'a host section, handed back as given', n: [1, 2.5] }] };
  const core = coreWith(config);
  const d = core.describe();
  assert.equal(d.backends.length, core.names.backends.length);
  assert.deepEqual(d.backends.map((b) => b.name), core.names.backends);
  assert.deepEqual(d.backends.map((b) => b.pool), core.names.backendPool);
  for (const pool of d.backendPools) for (const b of pool.backends) assert.equal(d.backends[b].pool, pool.index);
  assert.deepEqual(d.hostSections, { pump: config.pump });
  assert.equal(d.flowTable.capacity, config.flowTable?.capacity ?? 65536);
  for (const r of d.rules) {
    assert.equal(d.frontends[r.frontend].name, config.rules[r.index].frontend);
    assert.equal(d.backendPools[r.backendPool].name, config.rules[r.index].backendPool);
    assert.ok(['drop', 'failOpen'].includes(r.noHealthyBackends));
    assert.equal(typeof r.symmetric, 'boolean');
  }
  // IPv6 in RFC 5952 form, whatever the configuration wrote.
  const v6 = coreWith({ frontends: [{ name: 'f', address: 'FD00:0:0:0:0:0:0:0100' }] }).describe();
  assert.equal(v6.frontends[0].address, 'fd00::100');
});

test('a configuration that starts with a UTF-8 byte-order mark is applied and named as without it', () => {
  const text = JSON.stringify(baseConfig());
  const plain = coreWith(text);
  const bom = coreWith(`\ufeff${text}`);
  assert.ok(bom.names.backends.length > 0);
  assert.deepEqual(bom.names, plain.names);
  assert.deepEqual(bom.describe(), plain.describe());
});

test('noHealthyBackends failOpen: every path that picks a backend with all of them down says so (FLAG_FAIL_OPEN)', () => {
  for (const family of [4, 6]) {
    const config = baseConfig();
    for (const r of config.rules) r.noHealthyBackends = 'failOpen';
    const core = coreWith(config);
    const [fe, pool] = family === 4 ? [FE4, [0, 1, 2, 3]] : [FE6, [4, 5]];
    const client = family === 4 ? '192.168.7.1' : '2001:db8::7';
    const udp = packet({ src: client, dst: fe, proto: 17, sport: 5000, dport: 53 });
    const syn = packet({ src: client, dst: fe, proto: 6, sport: 5001, dport: 22, tcpFlags: 0x02 });
    const ack = packet({ src: client, dst: fe, proto: 6, sport: 5001, dport: 22, tcpFlags: 0x10 });
    const fin = packet({ src: client, dst: fe, proto: 6, sport: 5001, dport: 22, tcpFlags: 0x11 });
    // A UDP flow and a TCP flow, tracked while the pool is up.
    for (const v of run(core, [udp, syn, ack, fin], 1000)) {
      assert.equal(v.action, 'forward');
      assert.equal(v.flags & FLAGS.failOpen, 0);
    }
    for (const b of pool) core.setBackendHealth(b, false);
    const later = packet({ src: client, dst: fe, proto: 17, sport: 5002, dport: 53, fragment: { offset: 100, more: false, id: 9 } });
    const fresh = packet({ src: client, dst: fe, proto: 17, sport: 5003, dport: 53 });
    const [moved, restarted, fragment, added] = run(core, [udp, syn, later, fresh], 2000);
    const failOpen = (v, what) => {
      assert.equal(v.action, 'forward', what);
      assert.ok(pool.includes(v.backend), what);
      assert.ok(v.flags & FLAGS.failOpen, `${what}: flagged failOpen`);
    };
    failOpen(moved, `IPv${family}: a UDP flow moved off its down backend`);
    assert.ok(moved.flags & FLAGS.flowHit);
    failOpen(restarted, `IPv${family}: a bare SYN restarting a closing TCP flow`);
    assert.ok(restarted.flags & FLAGS.flowNew);
    failOpen(fragment, `IPv${family}: a later fragment hashed on the 3-tuple`);
    assert.ok(fragment.flags & FLAGS.frag3Tuple);
    failOpen(added, `IPv${family}: a new flow`);
    // With drop instead, the same packets are dropped: no healthy backend.
    const strict = coreWith(baseConfig());
    run(strict, [udp, syn, ack, fin], 1000);
    for (const b of pool) strict.setBackendHealth(b, false);
    for (const v of run(strict, [udp, syn, later, fresh], 2000)) {
      assert.equal(v.action, 'drop');
      assert.equal(v.reason, 'no-healthy-backend');
      assert.equal(v.flags & FLAGS.failOpen, 0);
    }
  }
});
