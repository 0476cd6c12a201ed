// Flow-table pressure (issue 4): established flows survive a flood of new flows ten times
// the table's capacity, memory does not move, and every packet the table cannot hold
// still reaches its consistent-hash backend. Non-floating (NAT: a flow and its reply
// entry) and floating-IP variants.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Core, FLAGS } from '../../build/host/core.mjs';
import { packet, rng, randomV4 } from '../host/packets.mjs';

const FE = '10.0.0.100';
const NVAS = [0, 1, 2, 3].map((i) => ({ name: `nva-${i}`, address: `10.0.1.${4 + i}` }));
const SYN = 0x02, ACK = 0x10, SYN_ACK = 0x12;

function config(capacity, floatingIp) {
  return {
    hashSeed: '0x1f2e3d4c5b6a7988',
    flowTable: { capacity },
    frontends: [{ name: 'fe', address: FE }],
    backendPools: [{ name: 'nvas', backends: NVAS }],
    rules: [{ name: 'ha', frontend: 'fe', backendPool: 'nvas', protocol: 'all', frontendPort: 0, backendPort: 0, floatingIp }],
  };
}

/** Runs any number of packets in batches at `now`; returns [{verdict, bytes}] per packet. */
function run(core, packets, now) {
  const out = [];
  for (let i = 0; i < packets.length; i += core.maxBatch) {
    const batch = packets.slice(i, i + core.maxBatch);
    core.load(batch);
    core.process(batch.length, now);
    batch.forEach((_, j) => out.push({ v: core.verdict(j), bytes: core.packet(j).slice() }));
  }
  return out;
}

const ip4 = (b, off) => `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;

for (const { floatingIp, capacity, flows: nFlows } of [
  { floatingIp: true, capacity: 4096, flows: 1000 },
  // Non-floating: every flow also holds a reply entry, so the same load needs twice the room.
  { floatingIp: false, capacity: 8192, flows: 1000 },
]) {
  const kind = floatingIp ? 'floating IP' : 'NAT';
  test(`${kind}: ${nFlows} established flows keep their backends under a flood of ${10 * capacity} SYNs (capacity ${capacity}); memory constant`, () => {
    const core = Core.load();
    core.configure(config(capacity, floatingIp));
    const next = rng(0xf100d + capacity);
    const flows = [];
    const seen = new Set();
    while (flows.length < nFlows) {
      const src = randomV4(next);
      const sport = 1024 + (next() % 60000);
      const dport = [22, 80, 443, 3389][next() % 4];
      if (seen.has(`${src}:${sport}:${dport}`)) continue;
      seen.add(`${src}:${sport}:${dport}`);
      flows.push({ src, sport, dport });
    }
    const fwd = (f, tcpFlags) => packet({ src: f.src, dst: FE, proto: 6, sport: f.sport, dport: f.dport, tcpFlags });

    // Handshake: SYN, the backend's SYN-ACK (NAT: through the reply entry), ACK.
    const syn = run(core, flows.map((f) => fwd(f, SYN)), 1000);
    syn.forEach(({ v }, i) => {
      assert.equal(v.action, 'forward');
      assert.ok(v.flags & FLAGS.flowNew, `flow ${i} not tracked at its SYN (flags ${v.flags})`);
    });
    const backend = syn.map(({ v }) => v.backend);
    if (!floatingIp) {
      const synAck = run(core, flows.map((f, i) => packet({
        src: NVAS[backend[i]].address, dst: f.src, proto: 6, sport: f.dport, dport: f.sport, tcpFlags: SYN_ACK,
      })), 1010);
      synAck.forEach(({ v, bytes }, i) => {
        assert.ok(v.flags & FLAGS.reply, `flow ${i}: the backend's SYN-ACK is not a reply (flags ${v.flags})`);
        assert.equal(ip4(bytes, 12), FE);
      });
    }
    const ack = run(core, flows.map((f) => fwd(f, ACK)), 1020);
    // Precondition: the table holds every established flow (else the test shows nothing).
    ack.forEach(({ v }, i) => {
      assert.ok(v.flags & FLAGS.flowHit, `before the flood, flow ${i} is not tracked (flags ${v.flags}): bucket overflow; change the seed`);
      assert.equal(v.backend, backend[i]);
    });

    const memBefore = core.exports.memory.buffer.byteLength;
    const heapBefore = core.exports.heapProbe();
    const c0 = core.counters();

    // The flood: 10 × capacity SYNs from random sources, with a reference core (a table
    // large enough for all of them) giving each its consistent-hash backend.
    const ref = Core.load();
    ref.configure(config(1 << 20, floatingIp));
    const floodNext = rng(0xbad5eed);
    const flood = [];
    for (let i = 0; i < 10 * capacity; i++) {
      flood.push(packet({ src: randomV4(floodNext), dst: FE, proto: 6, sport: 1024 + (floodNext() % 60000), dport: 1 + (floodNext() % 65535), tcpFlags: SYN }));
    }
    let untracked = 0, evicted = 0, wrong = 0;
    for (let i = 0; i < flood.length; i += core.maxBatch) {
      const batch = flood.slice(i, i + core.maxBatch);
      const now = 2000 + i / core.maxBatch; // milliseconds: well inside the idle timeout
      const got = run(core, batch, now);
      const want = run(ref, batch, now);
      got.forEach(({ v }, j) => {
        if (v.flags & FLAGS.untracked) untracked++;
        if (v.flags & FLAGS.evicted) evicted++;
        if (v.action !== 'forward' || v.backend !== want[j].v.backend) wrong++;
      });
    }
    const c1 = core.counters();
    assert.equal(wrong, 0, `${wrong} flood packets did not get their consistent-hash backend`);
    assert.ok(untracked > 0 && evicted > 0, `the flood did not pressure the table (untracked ${untracked}, evicted ${evicted})`);
    assert.equal(c1.untracked - c0.untracked, untracked);
    assert.ok(core.exports.flowTableUsed() <= capacity);
    assert.ok(core.exports.flowTableUsed() > capacity * 0.9, `table ${core.exports.flowTableUsed()} of ${capacity} after the flood`);

    // Every established flow still hits its entry and its backend, in both directions.
    const after = run(core, flows.map((f) => fwd(f, ACK)), 3000);
    const lost = [];
    after.forEach(({ v, bytes }, i) => {
      if (!(v.flags & FLAGS.flowHit) || v.backend !== backend[i]) lost.push(i);
      if (!floatingIp) assert.equal(ip4(bytes, 16), NVAS[backend[i]].address, `flow ${i} not rewritten to its backend`);
      else assert.equal(ip4(bytes, 16), FE);
    });
    assert.deepEqual(lost, [], `${lost.length} established flows lost their entry or backend`);
    if (!floatingIp) {
      const replies = run(core, flows.map((f, i) => packet({
        src: NVAS[backend[i]].address, dst: f.src, proto: 6, sport: f.dport, dport: f.sport, tcpFlags: ACK,
      })), 3010);
      const untranslated = replies.filter(({ v, bytes }) => !(v.flags & FLAGS.reply) || ip4(bytes, 12) !== FE).length;
      assert.equal(untranslated, 0, `${untranslated} backend replies no longer translated back to the frontend`);
    }

    assert.equal(core.exports.memory.buffer.byteLength, memBefore, 'wasm memory grew');
    assert.equal(core.exports.heapProbe(), heapBefore, 'the allocator moved');
  });
}

test('a full table reuses expired entries first: after the idle timeout new flows are tracked without evicting anything', () => {
  const capacity = 4096;
  const core = Core.load();
  core.configure(config(capacity, true));
  const next = rng(0xe0e0);
  const old = [];
  for (let i = 0; i < 4 * capacity; i++) {
    old.push({ src: randomV4(next), dst: FE, proto: 6, sport: 1024 + (next() % 60000), dport: 443 });
  }
  // Fill: four times the capacity of established flows.
  run(core, old.map((f) => packet({ ...f, tcpFlags: SYN })), 1000);
  run(core, old.map((f) => packet({ ...f, tcpFlags: ACK })), 1010);
  assert.ok(core.exports.flowTableUsed() > capacity * 0.95, `table ${core.exports.flowTableUsed()} of ${capacity}`);
  const memBefore = core.exports.memory.buffer.byteLength;
  // Before the idle timeout (4 minutes) a new SYN cannot displace an established flow.
  const early = run(core, [packet({ src: '198.18.0.1', dst: FE, proto: 6, sport: 1, dport: 1, tcpFlags: SYN })], 1020);
  const c0 = core.counters();
  // After it, every entry is expired: new flows take expired slots, nothing is evicted.
  const fresh = [];
  for (let i = 0; i < capacity / 4; i++) {
    fresh.push(packet({ src: randomV4(next), dst: FE, proto: 17, sport: 1024 + (next() % 60000), dport: 53 }));
  }
  const later = 1010 + 4 * 60_000 + 1000;
  const got = run(core, fresh, later);
  const c1 = core.counters();
  const notNew = got.filter(({ v }) => !(v.flags & FLAGS.flowNew) || (v.flags & (FLAGS.untracked | FLAGS.evicted)));
  assert.equal(notNew.length, 0, `${notNew.length} new flows were not tracked in expired slots`);
  assert.equal(c1.evictions - c0.evictions, 0);
  assert.equal(c1.untracked - c0.untracked, 0);
  // The old flows have expired: their next packet is a new flow.
  const again = run(core, old.slice(0, 100).map((f) => packet({ ...f, tcpFlags: ACK })), later);
  assert.ok(again.every(({ v }) => !(v.flags & FLAGS.flowHit)));
  assert.equal(core.exports.memory.buffer.byteLength, memBefore);
  assert.equal(early[0].v.action, 'forward');
  assert.ok(early[0].v.flags & FLAGS.untracked, `before the idle timeout a SYN displaced an established flow (flags ${early[0].v.flags})`);
});
