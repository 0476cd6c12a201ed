// Flow-table memory (issue 10): the table lives in pages of its own (memory.grow), so
// wasm memory grows by what the entries need — 56 B per flow of capacity, not the
// allocator's rounding — the largest capacity the schema allows is applied, and one
// that cannot be had is refused with a `flowTable.capacity` error while the running
// configuration and its flows stay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { Core, ConfigError, FLAGS } from '../../build/host/core.mjs';
import { packet } from '../lib/packets.mjs';

const schema = JSON.parse(readFileSync(new URL('../../config.schema.json', import.meta.url), 'utf8'));
const MAX = schema.properties.flowTable.properties.capacity.maximum;

const config = (capacity) => ({
  hashKey: '0x000102030405060708090a0b0c0d0e0f',
  flowTable: { capacity },
  frontends: [{ name: 'fe', address: '10.0.0.100' }],
  backendPools: [{ name: 'nvas', backends: [{ name: 'nva-0', address: '10.0.1.4' }, { name: 'nva-1', address: '10.0.1.5' }] }],
  rules: [{ name: 'ha', frontend: 'fe', backendPool: 'nvas', floatingIp: true }],
});
const bytes = (core) => core.exports.memory.buffer.byteLength;
const fresh = (capacity) => { const c = Core.load(); c.configure(config(capacity)); return c; };

test('wasm memory grows by at most 64 B per flow of capacity (4K → 1M → 4M)', () => {
  const sizes = [4096, 1 << 20, 1 << 22].map((cap) => [cap, bytes(fresh(cap))]);
  for (let i = 1; i < sizes.length; i++) {
    const [c0, b0] = sizes[i - 1];
    const [c1, b1] = sizes[i];
    const perFlow = (b1 - b0) / (c1 - c0);
    assert.ok(perFlow <= 64, `${c0} → ${c1} flows: ${perFlow.toFixed(2)} B per flow`);
  }
  // Reconfigured in place: the new table is new pages; the old one is kept for reuse.
  const core = fresh(1 << 20);
  const before = bytes(core);
  core.configure(config(1 << 22));
  assert.ok(bytes(core) - before <= 64 * (1 << 22), `${(bytes(core) - before) / (1 << 22)} B per flow of the new table`);
  core.configure(config(1 << 20)); // back: the kept pages are reused
  core.configure(config(1 << 22));
  assert.ok(bytes(core) - before <= 64 * (1 << 22), 'going back and forth grew memory again');
});

test(`the largest capacity the schema allows (${MAX}) is applied and tracks flows`, () => {
  const core = fresh(MAX);
  assert.equal(core.exports.flowTableCapacity(), MAX);
  core.load([packet({ src: '192.0.2.1', dst: '10.0.0.100', tcpFlags: 0x02 })]);
  core.process(1, 1000);
  assert.ok(core.verdict(0).flags & FLAGS.flowNew);
  assert.ok(bytes(core) < 4 * 2 ** 30);
});

test('a capacity whose memory cannot be had is refused cleanly; the running configuration and its flows stay', () => {
  const core = fresh(4096);
  const flow = packet({ src: '192.0.2.1', dst: '10.0.0.100', sport: 1234, dport: 443, tcpFlags: 0x02 });
  core.load([flow]);
  core.process(1, 1000);
  const backend = core.verdict(0).backend;
  // Take the wasm32 address space the table would need (pages are reserved, not touched).
  const pages = bytes(core) / 65536;
  assert.ok(core.exports.memory.grow(65536 - pages - 200) > 0, 'the engine would not grow memory: the test cannot run');
  assert.throws(() => core.configure(config(MAX)), (e) => {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.errors.length, 1);
    assert.match(e.errors[0], /^flowTable\.capacity: 16777216 flows need 896 MiB \(56 B per flow\), which the engine could not add to the 40\d\d(\.\d+)? MiB of memory in use/);
    return true;
  });
  assert.equal(core.exports.flowTableCapacity(), 4096);
  core.load([packet({ src: '192.0.2.1', dst: '10.0.0.100', sport: 1234, dport: 443, tcpFlags: 0x10 })]);
  core.process(1, 2000);
  assert.ok(core.verdict(0).flags & FLAGS.flowHit, 'the tracked flow was lost');
  assert.equal(core.verdict(0).backend, backend);
  // Still reconfigurable within what is left.
  core.configure({ ...config(4096), rules: [{ ...config(4096).rules[0], idleTimeoutMinutes: 30 }] });
  assert.equal(core.counters().configRejected, 1);
});
