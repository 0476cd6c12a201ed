// The public library API (`import { Dataplane } from 'haports'`): ESM and CommonJS,
// both run paths, health and admin state, reconfiguration, counters, and misuse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { Dataplane, ConfigError } from 'haports';
import { packet, rng, randomV4 } from '../lib/packets.mjs';
import { baseConfig, FE4 } from './configs.mjs';

const require = createRequire(import.meta.url);

function floating() {
  const c = baseConfig();
  for (const r of c.rules) r.floatingIp = true;
  return c;
}

test('ESM and CommonJS entry points are the same API and agree', () => {
  const cjs = require('haports');
  assert.equal(typeof cjs.Dataplane.create, 'function');
  const flows = Array.from({ length: 200 }, (_, i) => packet({ src: `192.168.1.${i}`, dst: FE4, sport: 3000 + i }));
  const a = Dataplane.create(floating()).process(flows, { now: 1 }).map((d) => d.backend);
  const b = cjs.Dataplane.create(floating()).process(flows, { now: 1 }).map((d) => d.backend);
  assert.deepEqual(a, b);
  assert.ok(new Set(a).size === 4);
});

test('process: decisions by name; zero-copy run gives the same decisions', () => {
  const dp = Dataplane.create(floating());
  const flows = Array.from({ length: 50 }, (_, i) => packet({ src: `192.168.2.${i}`, dst: FE4, sport: 4000 + i, proto: 17 }));
  const decisions = dp.process(flows, { now: 10 });
  assert.equal(decisions[0].verdict, 'forward');
  assert.equal(decisions[0].rule, 'ha');
  assert.equal(decisions[0].pool, 'nvas');
  assert.equal(decisions[0].frontend, 'fe-v4');
  assert.ok(decisions[0].newFlow && !decisions[0].tracked);

  const dp2 = Dataplane.create(floating());
  const arena = dp2.arena;
  let off = 0;
  flows.forEach((p, i) => { arena.set(p, off); dp2.setPacket(i, off, p.length); off += p.length; });
  assert.equal(dp2.run(flows.length, { now: 10 }), flows.length);
  assert.deepEqual(flows.map((_, i) => dp2.decision(i).backend), decisions.map((d) => d.backend));
  assert.deepEqual(dp2.packet(3), flows[3]);
  assert.equal(dp2.tuple(3).sport, 4003);
  // Second pass: tracked.
  assert.ok(dp.process(flows, { now: 20 }).every((d) => d.tracked));
});

test('more packets than a batch are processed in several runs', () => {
  const dp = Dataplane.create(floating());
  const next = rng(5);
  const flows = Array.from({ length: dp.maxBatch * 2 + 7 }, () => packet({ src: randomV4(next), dst: FE4, sport: 1 + (next() % 65000) }));
  const d = dp.process(flows);
  assert.equal(d.length, flows.length);
  assert.equal(dp.counters().totals.packets, flows.length);
});

test('NAT: a non-floating rule rewrites the packet and process returns it via packet(i)', () => {
  const dp = Dataplane.create(baseConfig());
  const [d] = dp.process([packet({ src: '192.168.3.3', dst: FE4, dport: 443, proto: 6 })]);
  assert.equal(d.rule, 'https');
  assert.ok(d.rewritten);
  const out = dp.packet(0);
  assert.deepEqual([...out.subarray(16, 20)], [10, 0, 2, 4]); // web-0
  assert.equal((out[22] << 8) | out[23], 8443);
});

test('health, admin state and backendState by name; counters by pool/backend and rule', () => {
  const dp = Dataplane.create(floating());
  const flows = Array.from({ length: 400 }, (_, i) => packet({ src: `10.9.${i >> 8}.${i & 255}`, dst: FE4, proto: 17, sport: 5000 + i }));
  dp.process(flows, { now: 1 });
  dp.setHealth('nva-1', 'down');
  assert.equal(dp.backendState('nva-1'), 'down');
  const moved = dp.process(flows, { now: 2 });
  assert.ok(!moved.some((d) => d.backend === 'nva-1'));
  dp.setHealth('nva-1', 'up');
  dp.setAdminState('nva-2', 'draining');
  assert.equal(dp.backendState('nva-2'), 'draining');
  const c = dp.counters();
  assert.equal(c.totals.packets, 800);
  assert.equal(c.rules.ha.packets, 800);
  assert.equal(Object.values(c.backends).reduce((s, b) => s + b.packets, 0), 800);
  assert.ok(c.backends['nvas/nva-0'].newFlows > 50);
  assert.ok(c.flowTable.used >= 400 && c.flowTable.capacity === 65536);
});

test('reconfigure keeps flows; a bad configuration throws ConfigError and changes nothing', () => {
  const dp = Dataplane.create(floating());
  const flows = Array.from({ length: 100 }, (_, i) => packet({ src: `172.16.0.${i}`, dst: FE4, sport: 6000 + i }));
  const before = dp.process(flows, { now: 1 }).map((d) => d.backend);
  const more = floating();
  more.backendPools[0].backends.push({ name: 'nva-9', address: '10.0.1.99' });
  dp.reconfigure(more);
  assert.deepEqual(dp.process(flows, { now: 2 }).map((d) => d.backend), before);
  assert.throws(() => dp.reconfigure({ rules: [{ name: 'x' }] }), (e) => e instanceof ConfigError
    && e.errors.includes('rules[0].frontend: rule "x": required') && e.errors.includes('rules[0].backendPool: rule "x": required'));
  assert.deepEqual(dp.process(flows, { now: 3 }).map((d) => d.backend), before);
  assert.deepEqual(Dataplane.validate({ frontends: 1 }).errors, ['frontends: expected an array, got number']);
});

test('misuse gets clear errors', () => {
  assert.throws(() => Dataplane.create('{'), ConfigError);
  const dp = Dataplane.create(floating());
  assert.throws(() => dp.process('x'), /packets must be an array/);
  assert.throws(() => dp.process([new Uint8Array(4), 'y']), /packets\[1\] is not a Uint8Array/);
  assert.throws(() => dp.run(dp.maxBatch + 1), /count 1025 outside 0..1024/);
  assert.throws(() => dp.run(1, { ingress: 'nope' }), /no frontend named "nope"/);
  assert.throws(() => dp.run(1, { link: 'token-ring' }), /link must be "ip" or "ethernet"/);
  assert.throws(() => dp.run(1, { now: NaN }), /now must be a finite number/);
  assert.throws(() => dp.setPacket(0, dp.arena.length - 1, 2), /do not fit/);
  assert.throws(() => dp.setPacket(-1, 0, 1), /index -1/);
  assert.throws(() => dp.setHealth('nva-9', 'down'), /no backend named "nva-9"/);
  assert.throws(() => dp.setHealth('nva-1', 'sideways'), /health must be "up" or "down"/);
  assert.throws(() => dp.setAdminState('nva-1', 'down'), /state must be "up" or "draining"/);
  assert.throws(() => dp.setHealth('nva-1', 'down', 'web'), /no backend named "nva-1" in pool "web"/);
});

test('the README\'s runnable example (examples/embed.mjs) runs and shows failover', () => {
  const out = execFileSync(process.execPath, [new URL('../../examples/embed.mjs', import.meta.url).pathname], { encoding: 'utf8' });
  const lines = out.split('\n');
  assert.equal(lines.filter((l) => l.startsWith('forward ha ')).length, 12);
  assert.ok(!lines.slice(12, 24).some((l) => l.includes('nva-1')), 'a flow stayed on nva-1 after it went down');
  assert.match(out, /'nvas\/nva-1'/);
});

test('the types compile for a TypeScript user', () => {
  const tsc = new URL('../../node_modules/.bin/tsc', import.meta.url).pathname;
  const dir = new URL('./', import.meta.url).pathname;
  // Type-checks test/host/typed-usage.ts against the published .d.ts (through the exports map).
  execFileSync(tsc, ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022',
    '--types', 'node', `${dir}typed-usage.ts`], { stdio: 'pipe' });
});

test('health through the library: probe targets from configuration(), results to probeResult; the core decides', () => {
  const config = floating();
  config.probes = [{ name: 'tcp', port: 22, intervalSeconds: 1, threshold: 2 }];
  config.rules[0].probe = 'tcp';
  config.health = { damping: false };
  const dp = Dataplane.create(config);
  const described = dp.configuration();
  assert.equal(described.probes[0].timeoutSeconds, 1, 'defaults applied: the timeout is the interval');
  const target = described.probeTargets.find((t) => t.address === '10.0.1.5');
  assert.deepEqual(target.backends.map((b) => described.backends[b].name), ['nva-1']);
  assert.equal(dp.probeResult(target.index, true, 0), 'initially up');
  assert.equal(dp.probeResult(target.index, false, 1000), 'none');
  assert.equal(dp.backendState('nva-1'), 'up');
  assert.equal(dp.probeResult(target.index, false, 2000), 'down');
  assert.equal(dp.backendState('nva-1'), 'down');
  assert.deepEqual(dp.probeTarget(target.index), {
    state: 'down', held: false, successRun: 0, failureRun: 2, transitionsUp: 0, transitionsDown: 1, checksSuccess: 1, checksFailure: 2,
  });
  // New flows avoid it.
  const flows = Array.from({ length: 400 }, (_, i) => packet({ src: `192.168.2.${i % 250}`, dst: FE4, sport: 4000 + i }));
  assert.ok(!dp.process(flows, { now: 3000 }).some((d) => d.backend === 'nva-1'));
  assert.throws(() => dp.probeResult(99, true), RangeError);
  assert.throws(() => dp.probeResult(target.index, true, NaN), TypeError);
});

test('indices are checked: decision, packet, resets and tuple take the packets of the last run only (RangeError, ERR_OUT_OF_RANGE)', () => {
  const dp = Dataplane.create(floating());
  const outOfRange = (fn, message) => assert.throws(fn, (e) => e instanceof RangeError && e.code === 'ERR_OUT_OF_RANGE' && message.test(e.message));
  outOfRange(() => dp.decision(0), /decision\(0\): no run since/);
  const flows = Array.from({ length: 2000 }, (_, i) => packet({ src: `10.9.${i >> 8}.${i & 255}`, dst: FE4, sport: 1000 + i }));
  const all = dp.process(flows, { now: 1 });
  // Every decision process() returned is this packet's (compare with one packet at a time).
  const one = Dataplane.create(floating());
  for (const i of [0, 1023, 1024, 1500, 1999]) assert.deepEqual(all[i], one.process([flows[i]], { now: 1 })[0], `packet ${i}`);
  const last = 2000 - dp.maxBatch; // the last batch had 976 packets
  assert.equal(dp.decision(last - 1).verdict, 'forward');
  for (const [fn, name] of [[(i) => dp.decision(i), 'decision'], [(i) => dp.packet(i), 'packet'], [(i) => dp.resets(i), 'resets'], [(i) => dp.tuple(i), 'tuple']]) {
    outOfRange(() => fn(last), new RegExp(`${name}\\(${last}\\): the last run had ${last} packets: index 0..${last - 1}`));
    outOfRange(() => fn(-1), new RegExp(`${name}\\(-1\\)`));
    outOfRange(() => fn(5000), new RegExp(`${name}\\(5000\\)`));
    outOfRange(() => fn(1.5), new RegExp(`${name}\\(1.5\\)`));
  }
  dp.reconfigure(floating());
  outOfRange(() => dp.decision(0), /no run since the dataplane was created or reconfigured/);
});

test('process(): batches are cut by the arena\'s bytes as well as by count; a packet larger than the arena is a RangeError', () => {
  const dp = Dataplane.create(floating());
  const big = Array.from({ length: 200 }, (_, i) => packet({ src: `10.8.0.${i}`, dst: FE4, sport: 2000 + i, payload: 60000 }));
  const total = big.reduce((n, p) => n + p.length, 0);
  assert.ok(total > dp.arena.length, `the test needs more bytes (${total}) than the arena (${dp.arena.length})`);
  const d = dp.process(big, { now: 1 });
  assert.equal(d.length, 200);
  assert.ok(d.every((x) => x.verdict === 'forward'));
  assert.equal(dp.counters().totals.packets, 200);
  assert.throws(() => dp.process([new Uint8Array(dp.arena.length + 1)]), (e) => e instanceof RangeError && e.code === 'ERR_OUT_OF_RANGE');
});

test('counters of backends and rules survive a reconfiguration by name; those that go are gone', () => {
  const dp = Dataplane.create(floating());
  const flows = Array.from({ length: 300 }, (_, i) => packet({ src: `10.7.${i >> 8}.${i & 255}`, dst: FE4, sport: 3000 + i }));
  dp.process(flows, { now: 1 });
  const before = dp.counters();
  dp.reconfigure(floating()); // identical
  assert.deepEqual(dp.counters().backends, before.backends);
  assert.deepEqual(dp.counters().rules, before.rules);
  dp.process(flows, { now: 2 });
  const after = dp.counters();
  for (const [name, c] of Object.entries(after.backends)) assert.ok(c.packets >= before.backends[name].packets, name);
  assert.equal(Object.values(after.backends).reduce((n, c) => n + c.packets, 0), 600, 'per-backend packets add up to the totals');
  assert.equal(after.totals.packets, 600);
  const fewer = floating();
  const gone = fewer.backendPools[0].backends.pop().name;
  dp.reconfigure(fewer);
  assert.equal(dp.counters().backends[`nvas/${gone}`], undefined, 'a backend that went is not listed');
  const kept = Object.keys(dp.counters().backends)[0];
  assert.deepEqual(dp.counters().backends[kept], after.backends[kept]);
  assert.throws(() => dp.reconfigure('{'), (e) => e instanceof ConfigError && e.code === 'HAPORTS_INVALID_CONFIG');
  assert.deepEqual(dp.counters().backends[kept], after.backends[kept], 'a rejected configuration changes nothing');
});

test('close() releases the dataplane; later calls throw HAPORTS_CLOSED; `using` closes it (Symbol.dispose)', () => {
  const dp = Dataplane.create(floating());
  assert.equal(dp.closed, false);
  dp.close();
  assert.equal(dp.closed, true);
  for (const call of [() => dp.process([]), () => dp.counters(), () => dp.arena, () => dp.reconfigure(floating()), () => dp.decision(0)]) {
    assert.throws(call, (e) => e.code === 'HAPORTS_CLOSED' && /closed/.test(e.message));
  }
  dp.close(); // twice is fine
  if (Symbol.dispose) {
    const dp2 = Dataplane.create(floating());
    dp2[Symbol.dispose]();
    assert.equal(dp2.closed, true);
  }
  // Errors carry codes.
  const dp3 = Dataplane.create(floating());
  assert.throws(() => dp3.process('x'), (e) => e.code === 'ERR_INVALID_ARG_TYPE');
  assert.throws(() => dp3.setHealth('nope', 'down'), (e) => e.code === 'ERR_OUT_OF_RANGE');
});
