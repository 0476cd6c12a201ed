// Flow-table attacks (issues 4 and 10): established flows survive floods of spoofed
// ACKs, SYNs, UDP first packets and first fragments ten times the table's capacity —
// each kind alone and mixed, with a backend draining — without one being lost or moved;
// every flood packet still reaches its consistent-hash backend; memory does not move.
// Also: a table filled to 90% with established flows evicts none, expired entries are
// reused first, and a mid-stream packet after a restart reaches the same backend.
// Non-floating (NAT: a flow and its reply entry) and floating-IP variants.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Core, FLAGS } from '../../build/host/core.mjs';
import { packet, rng, randomV4 } from '../lib/packets.mjs';

const FE = '10.0.0.100';
const NVAS = [0, 1, 2, 3].map((i) => ({ name: `nva-${i}`, address: `10.0.1.${4 + i}` }));
const SYN = 0x02, ACK = 0x10, SYN_ACK = 0x12, PSH_ACK = 0x18;
const DRAINING = 1; // nva-1 drains during the floods: its flows must stay, new flows avoid it

function config(capacity, floatingIp, draining = -1) {
  return {
    hashKey: '0x5a17e3c09b2d4f6e8a1c3b5d7f9e0a2c',
    flowTable: { capacity },
    frontends: [{ name: 'fe', address: FE }],
    backendPools: [{
      name: 'nvas',
      backends: NVAS.map((b, i) => (i === draining ? { ...b, adminState: 'draining' } : b)),
    }],
    rules: [{ name: 'ha', frontend: 'fe', backendPool: 'nvas', protocol: 'all', frontendPort: 0, backendPort: 0, floatingIp }],
  };
}

/** Runs any number of packets in batches at `now`; returns [{v, bytes}] per packet. */
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

function randomFlows(n, seed) {
  const next = rng(seed);
  const flows = [];
  const seen = new Set();
  while (flows.length < n) {
    const f = { src: randomV4(next), sport: 1024 + (next() % 60000), dport: [22, 80, 443, 3389][next() % 4] };
    if (seen.has(`${f.src}:${f.sport}:${f.dport}`)) continue;
    seen.add(`${f.src}:${f.sport}:${f.dport}`);
    flows.push(f);
  }
  return flows;
}

const fwd = (f, tcpFlags) => packet({ src: f.src, dst: FE, proto: 6, sport: f.sport, dport: f.dport, tcpFlags });

/**
 * Opens `flows` as real connections: SYN, the backend's SYN-ACK (NAT: through the reply
 * entry; floating: the core does not see it), ACK. Returns each flow's backend.
 */
function establish(core, flows, floatingIp, now) {
  const syn = run(core, flows.map((f) => fwd(f, SYN)), now);
  syn.forEach(({ v }, i) => assert.ok(v.action === 'forward' && v.flags & FLAGS.flowNew, `flow ${i} not tracked at its SYN (flags ${v.flags})`));
  const backend = syn.map(({ v }) => v.backend);
  if (!floatingIp) {
    run(core, flows.map((f, i) => packet({
      src: NVAS[backend[i]].address, dst: f.src, proto: 6, sport: f.dport, dport: f.sport, tcpFlags: SYN_ACK,
    })), now + 10);
  }
  const ack = run(core, flows.map((f) => fwd(f, ACK)), now + 20);
  ack.forEach(({ v }, i) => {
    assert.ok(v.flags & FLAGS.flowHit && v.flags & FLAGS.established, `flow ${i} not established (flags ${v.flags})`);
    assert.equal(v.backend, backend[i]);
  });
  return backend;
}

// ---- Flood packets: spoofed sources, nothing a real connection would send first ----

const FLOODS = {
  'ACK': (next) => packet({ src: randomV4(next), dst: FE, proto: 6, sport: 1024 + (next() % 60000), dport: 1 + (next() % 65535), tcpFlags: ACK }),
  'SYN': (next) => packet({ src: randomV4(next), dst: FE, proto: 6, sport: 1024 + (next() % 60000), dport: 1 + (next() % 65535), tcpFlags: SYN }),
  'UDP first-packet': (next) => packet({ src: randomV4(next), dst: FE, proto: 17, sport: 1024 + (next() % 60000), dport: 1 + (next() % 65535) }),
  'first-fragment': (next) => {
    const p = packet({ src: randomV4(next), dst: FE, proto: 17, sport: 1024 + (next() % 60000), dport: 1 + (next() % 65535), payload: 64 });
    const id = next() & 0xffff;
    p[4] = id >> 8; p[5] = id & 0xff;
    p[6] = 0x20; // MF, offset 0: a first fragment
    return p;
  },
};
FLOODS.mixed = (next) => Object.values(FLOODS)[next() % 4](next);

for (const { floatingIp, capacity } of [{ floatingIp: true, capacity: 4096 }, { floatingIp: false, capacity: 8192 }]) {
  const kind = floatingIp ? 'floating IP' : 'NAT';
  for (const [flood, make] of Object.entries(FLOODS)) {
    test(`${kind}: a ${flood} flood of 10 × the capacity (${capacity}), nva-1 draining: 0 of 1,000 established flows lost or moved; memory constant`, () => {
      const core = Core.load();
      core.configure(config(capacity, floatingIp));
      const flows = randomFlows(1000, 0xf100d + capacity);
      const backend = establish(core, flows, floatingIp, 1000);
      assert.ok(backend.filter((b) => b === DRAINING).length > 100, 'too few flows on the backend that drains');
      core.setBackendAdmin(DRAINING, 'draining');

      const memBefore = core.exports.memory.buffer.byteLength;
      const heapBefore = core.exports.heapProbe();
      const c0 = core.counters();

      // The flood, with a reference core (a table large enough for all of it, the same
      // backend draining) giving each packet its consistent-hash backend.
      const ref = Core.load();
      // The reference drains the same way (a change of the backend set, so that mid-stream
      // packets meet the same handover window, handoverSeconds).
      ref.configure(config(1 << 20, floatingIp));
      ref.setBackendAdmin(DRAINING, 'draining');
      const next = rng(0xbad5eed ^ flood.length);
      const packets = Array.from({ length: 10 * capacity }, () => make(next));
      let wrong = 0;
      for (let i = 0; i < packets.length; i += core.maxBatch) {
        const batch = packets.slice(i, i + core.maxBatch);
        const now = 2000 + i / core.maxBatch; // milliseconds: well inside the idle timeout
        const got = run(core, batch, now);
        const want = run(ref, batch, now);
        got.forEach(({ v }, j) => { if (v.action !== 'forward' || v.backend !== want[j].v.backend) wrong++; });
      }
      const c1 = core.counters();
      assert.equal(wrong, 0, `${wrong} flood packets did not get their consistent-hash backend`);
      assert.ok(c1.evictions - c0.evictions + c1.untracked - c0.untracked > capacity,
        `the flood did not fill the table (evictions ${c1.evictions - c0.evictions}, untracked ${c1.untracked - c0.untracked})`);
      assert.equal(c1.flowEstablished - c0.flowEstablished, 0, 'flood packets made flows established');
      assert.ok(core.exports.flowTableUsed() <= capacity);

      // Every established flow still hits its entry and its backend, in both directions.
      const after = run(core, flows.map((f) => fwd(f, PSH_ACK)), 3000);
      const lost = [];
      after.forEach(({ v, bytes }, i) => {
        if (!(v.flags & FLAGS.flowHit) || v.backend !== backend[i]) lost.push(i);
        assert.equal(ip4(bytes, 16), floatingIp ? FE : NVAS[backend[i]].address, `flow ${i} rewritten wrongly`);
      });
      assert.deepEqual(lost, [], `${lost.length} established flows lost their entry or backend`);
      const c2 = core.counters();
      assert.equal(c2.flowMoved + c2.flowDrained - c0.flowMoved - c0.flowDrained, 0, 'flows moved');
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

  test(`${kind}: a table filled to 90% of its capacity with established flows evicts none of them`, () => {
    const cap = 65536;
    const core = Core.load();
    core.configure(config(cap, floatingIp));
    // NAT: each flow holds two entries (the flow and its reply).
    const n = Math.floor((0.9 * cap) / (floatingIp ? 1 : 2));
    const flows = randomFlows(n, 0x90 + n);
    const backends = [];
    for (let i = 0; i < n; i += 4096) backends.push(...establish(core, flows.slice(i, i + 4096), floatingIp, 1000 + i / 100));
    const c = core.counters();
    assert.equal(c.evictions, 0, `${c.evictions} evictions filling to 90%`);
    assert.equal(c.untracked, 0, `${c.untracked} flows untracked filling to 90%`);
    assert.equal(core.exports.flowTableUsed(), floatingIp ? n : 2 * n);
    const again = run(core, flows.map((f) => fwd(f, PSH_ACK)), 5000);
    const missing = again.filter(({ v }, i) => !(v.flags & FLAGS.flowHit) || v.backend !== backends[i]).length;
    assert.equal(missing, 0, `${missing} of ${n} established flows not found at 90% load`);
  });
}

test('a full table reuses expired entries first: after the idle timeout new flows are tracked without evicting anything', () => {
  const capacity = 4096;
  const core = Core.load();
  core.configure(config(capacity, true));
  const next = rng(0xe0e0);
  const old = [];
  for (let i = 0; i < 2 * capacity; i++) {
    old.push({ src: randomV4(next), dst: FE, proto: 6, sport: 1024 + (next() % 60000), dport: 443 });
  }
  // Fill with established flows, a batch at a time (SYN, then ACK), to past capacity:
  // the last ones find no room and stay untracked.
  for (let i = 0; i < old.length; i += 1024) {
    const chunk = old.slice(i, i + 1024);
    run(core, chunk.map((f) => packet({ ...f, tcpFlags: SYN })), 1000);
    run(core, chunk.map((f) => packet({ ...f, tcpFlags: ACK })), 1010);
  }
  assert.ok(core.exports.flowTableUsed() > capacity * 0.95, `table ${core.exports.flowTableUsed()} of ${capacity}`);
  const memBefore = core.exports.memory.buffer.byteLength;
  // Before the idle timeout (4 minutes) a new SYN cannot displace an established flow.
  const early = run(core, [packet({ src: '198.18.0.1', dst: FE, proto: 6, sport: 1, dport: 1, tcpFlags: SYN })], 1020);
  assert.equal(early[0].v.action, 'forward');
  assert.ok(early[0].v.flags & FLAGS.untracked, `before the idle timeout a SYN displaced an established flow (flags ${early[0].v.flags})`);
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
});

for (const floatingIp of [true, false]) {
  test(`${floatingIp ? 'floating IP' : 'NAT'}: after a restart, a mid-stream ACK reaches the same backend, tracked unverified until the flow proves itself`, () => {
    const before = Core.load();
    before.configure(config(4096, floatingIp));
    const flows = randomFlows(500, 0x5ea1);
    const backend = establish(before, flows, floatingIp, 1000);

    const after = Core.load(); // a restart: same configuration, empty table
    after.configure(config(4096, floatingIp));
    const first = run(after, flows.map((f) => fwd(f, PSH_ACK)), 50_000);
    first.forEach(({ v }, i) => {
      assert.equal(v.action, 'forward');
      assert.equal(v.backend, backend[i], `flow ${i} went to another backend after the restart`);
      assert.ok(v.flags & FLAGS.flowNew && !(v.flags & FLAGS.established), `flow ${i}: a mid-stream ACK is tracked, unverified (flags ${v.flags})`);
    });
    // Within a second: still unverified. A second later: established.
    const soon = run(after, flows.map((f) => fwd(f, PSH_ACK)), 50_500);
    assert.ok(soon.every(({ v }, i) => v.flags & FLAGS.flowHit && !(v.flags & FLAGS.established) && v.backend === backend[i]));
    const later = run(after, flows.map((f) => fwd(f, PSH_ACK)), 51_000);
    assert.ok(later.every(({ v }, i) => v.flags & FLAGS.established && v.backend === backend[i]));
    assert.equal(after.counters().flowEstablished, floatingIp ? 500 : 500);
  });
}

test('symmetric next hop: the other direction establishes a mid-stream flow at once', () => {
  const core = Core.load();
  core.configure(config(4096, true));
  const a = { src: '192.0.2.10', dst: '198.51.100.20', proto: 6, sport: 40000, dport: 443 };
  const b = { src: a.dst, dst: a.src, proto: 6, sport: a.dport, dport: a.sport };
  const NONE = 0xffff;
  core.load([packet({ ...a, tcpFlags: PSH_ACK })]);
  core.process(1, 1000, 0);
  assert.ok(!(core.verdict(0).flags & FLAGS.established));
  core.load([packet({ ...b, tcpFlags: ACK })]);
  core.process(1, 1001, 0);
  assert.ok(core.verdict(0).flags & FLAGS.established && core.verdict(0).flags & FLAGS.flowHit);
  assert.notEqual(core.verdict(0).backend, NONE);
});
