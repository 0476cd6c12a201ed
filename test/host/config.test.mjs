// Configuration lifecycle: the published JSON Schema agrees with the core on the
// bundled configurations, live reconfiguration keeps tracked flows, 10,000
// reconfigurations keep memory bounded, and a fuzz of broken configurations always
// yields a clean error with the running configuration untouched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { Core, ConfigError, FLAGS } from '../../build/host/core.mjs';
import { packet, rng, randomV4 } from '../lib/packets.mjs';
import { baseConfig, FE4 } from './configs.mjs';

const root = new URL('../../', import.meta.url);
const read = (p) => JSON.parse(readFileSync(new URL(p, root), 'utf8'));

test('config.schema.json accepts the bundled configurations and rejects malformed shapes', () => {
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  addFormats(ajv);
  const validate = ajv.compile(read('config.schema.json'));
  for (const file of ['examples/config.json', 'test/diff/config.json']) {
    assert.ok(validate(read(file)), `${file}: ${ajv.errorsText(validate.errors)}`);
    assert.deepEqual(Core.validate(read(file)), [], file);
  }
  assert.ok(validate(baseConfig()));
  const bad = [
    { hashSeed: 'seed' },
    { flowTable: { capacity: 8 } },
    { frontends: [{ name: 'f' }] },
    { frontends: [{ name: 'f', address: '10.0.0.300' }] },
    { rules: [{ name: 'r', frontend: 'f', backendPool: 'p', protocol: 'icmp' }] },
    { rules: [{ name: 'r', frontend: 'f', backendPool: 'p', idleTimeoutMinutes: 101 }] },
    { backendPools: [{ name: 'p', backends: [{ name: 'b', address: '10.0.0.1', weight: 1.5 }] }] },
  ];
  for (const cfg of bad) {
    assert.ok(!validate(cfg), `schema accepted ${JSON.stringify(cfg)}`);
    assert.notDeepEqual(Core.validate(cfg), [], `core accepted ${JSON.stringify(cfg)}`);
  }
});

/** Runs packets in batches; returns verdicts. */
function runAll(core, packets, now) {
  const out = [];
  for (let i = 0; i < packets.length; i += core.maxBatch) {
    const batch = packets.slice(i, i + core.maxBatch);
    core.load(batch);
    core.process(batch.length, now);
    for (let j = 0; j < batch.length; j++) out.push(core.verdict(j));
  }
  return out;
}

test('live reconfiguration under load: tracked flows stay unless their rule or backend went away', () => {
  const core = Core.load();
  const cfg = baseConfig();
  cfg.rules[0].floatingIp = true; // packets are reused between batches: no in-place rewrite
  core.configure(cfg);
  const next = rng(3);
  const flows = [];
  for (let i = 0; i < 20_000; i++) {
    flows.push(packet({ src: randomV4(next), dst: FE4, proto: 6, sport: 1024 + (next() % 60000), dport: 80, tcpFlags: 0x10 }));
  }
  const before = runAll(core, flows, 1000).map((v) => core.names.backends[v.backend]);

  // Reconfigure between batches while traffic continues: add nva-4, reorder pools and
  // backends, change weights, remove nva-2, change the flow-table capacity.
  const next1 = baseConfig({ flowTable: { capacity: 131072 } });
  next1.rules[0].floatingIp = true;
  next1.backendPools.reverse();
  const nvas = next1.backendPools.find((p) => p.name === 'nvas');
  nvas.backends = nvas.backends.filter((b) => b.name !== 'nva-2').reverse();
  nvas.backends.push({ name: 'nva-4', address: '10.0.1.8', weight: 5 });
  // Which flows the table holds (a few may have been evicted by bucket overflow: those
  // are untracked and follow the consistent hash, which the change may move).
  const tracked = runAll(core, flows, 2000).map((v) => (v.flags & FLAGS.flowHit) !== 0);
  assert.ok(tracked.filter(Boolean).length > 19_900);
  core.configure(next1);
  const afterVerdicts = runAll(core, flows, 3000);
  const after = afterVerdicts.map((v) => core.names.backends[v.backend]);

  let kept = 0, movedFromRemoved = 0;
  for (let i = 0; i < flows.length; i++) {
    if (!tracked[i]) continue;
    if (before[i] === 'nva-2') {
      assert.notEqual(after[i], 'nva-2');
      movedFromRemoved++;
    } else {
      assert.equal(after[i], before[i], `flow ${i} moved from ${before[i]} to ${after[i]}`);
      assert.ok(afterVerdicts[i].flags & FLAGS.flowHit);
      kept++;
    }
  }
  assert.equal(kept + movedFromRemoved, tracked.filter(Boolean).length);
  const trackedOnRemoved = before.filter((b, i) => tracked[i] && b === 'nva-2').length;
  assert.equal(movedFromRemoved, trackedOnRemoved);
  assert.ok(trackedOnRemoved > 0.2 * flows.length);
  assert.equal(core.counters().flowsDroppedByConfig, trackedOnRemoved);
  assert.equal(core.exports.flowTableCapacity(), 131072);
});

test('10,000 reconfigurations (valid and rejected) keep memory bounded', () => {
  const core = Core.load();
  const configs = [];
  for (let k = 0; k < 4; k++) {
    const c = baseConfig();
    c.backendPools[0].backends = [...Array(10 + k * 10).keys()].map((i) => ({ name: `nva-${i}`, address: `10.0.1.${i + 1}` }));
    for (const p of c.backendPools) p.maglevTableSize = 4001; // small tables: the test is about memory, not spread
    configs.push(JSON.stringify(c));
  }
  const broken = JSON.stringify(baseConfig()).replace('"fe-v4"', '"fe-x"');
  const flows = [];
  for (let i = 0; i < 256; i++) flows.push(packet({ src: `192.168.${i >> 8}.${i & 255}`, dst: FE4, sport: 2000 + i }));
  core.configure(configs[0]);
  let grownAt = 0;
  let size = 0;
  for (let i = 0; i < 10_000; i++) {
    if (i % 10 === 9) assert.throws(() => core.configure(broken), ConfigError);
    else core.configure(configs[i % configs.length]);
    if (i % 100 === 0) runAll(core, flows, i);
    const now = core.exports.memory.buffer.byteLength;
    if (now > size) { size = now; grownAt = i; }
  }
  // Memory may grow while the allocator finds its working set, then not at all.
  assert.ok(grownAt < 1000, `wasm memory still growing at reconfiguration ${grownAt} (${size} bytes)`);
  assert.equal(core.counters().configRejected, 1000);
});

test('fuzz: broken configurations always give a clean error and leave the running one', () => {
  const core = Core.load();
  const good = JSON.stringify(baseConfig());
  core.configure(good);
  const probe = [packet({ src: '192.168.9.9', dst: FE4, sport: 4444 })];
  const reference = runAll(core, probe, 1).map((v) => v.backend);
  const next = rng(77);
  const pick = (xs) => xs[next() % xs.length];
  const samples = [
    '', '{', '[]', 'null', '"x"', '{"frontends": 5}', '{"frontends": [null]}', '{"rules": [{}]}',
    `{"hashSeed": "0x${'f'.repeat(40)}"}`, '{"flowTable": {"capacity": 1e308}}', '{"flowTable": {"capacity": -0}}',
    `{"frontends": [{"name": "${'é'.repeat(5000)}", "address": "10.0.0.1"}]}`,
    '['.repeat(100_000), `{"a": ${'{"a": '.repeat(5000)}1${'}'.repeat(5000)}}`,
    '{"frontends": [{"name": "\\ud800", "address": "::1"}]}', '\xff\xfe{}',
  ];
  let rejected = 0;
  for (let i = 0; i < 3000; i++) {
    let text;
    if (i < samples.length) {
      text = samples[i];
    } else {
      const chars = [...good];
      const kind = next() % 4;
      if (kind === 0) text = good.slice(0, next() % good.length);
      else {
        for (let k = 0; k < 1 + (next() % 4); k++) {
          const at = next() % chars.length;
          if (kind === 1) chars[at] = pick(['{', '}', '[', ']', '"', ',', ':', '0', '-', 'e', '\\', ' ', 'x', '\u0000', '\u{1F600}']);
          else if (kind === 2) chars.splice(at, 1);
          else chars.splice(at, 0, pick(['9999999999999999999999', 'null', 'true', '"', '[', '{', '-1', '1.5']));
        }
        text = chars.join('');
      }
    }
    try {
      core.configure(text);
      // Some mutations are still valid configurations: put the good one back.
      core.configure(good);
    } catch (e) {
      assert.ok(e instanceof ConfigError, `not a ConfigError: ${e}`);
      assert.ok(e.errors.length > 0);
      for (const line of e.errors) assert.match(line, /^(\$|[A-Za-z]\w*(\[\d+\]|\.[A-Za-z]\w*|\["(?:[^"\\]|\\.)*"\])*): .+/, line);
      rejected++;
    }
    if (i % 100 === 0) assert.deepEqual(runAll(core, probe, 2 + i).map((v) => v.backend), reference);
  }
  assert.ok(rejected > 2000, `only ${rejected} of 3000 rejected`);
});
