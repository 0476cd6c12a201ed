// Pool changes through Core.configure() (issue 4: "adding a backend moves no tracked
// flow"). Two replays cannot share a flow table, so this runs on one core: establish
// flows, apply a second configuration, check where the same flows go.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Core, FLAGS } from '../../build/host/core.mjs';
import { packet, rng, randomV4, randomV6 } from '../lib/packets.mjs';

const FE4 = '10.0.0.100';
const FE6 = 'fd00::100';
const SYN = 0x02, ACK = 0x10, SYN_ACK = 0x12;

function config({ nvas = [0, 1, 2, 3], nvas6 = [0, 1], floatingIp = false, capacity = 65536 } = {}) {
  return {
    hashSeed: '0x1f2e3d4c5b6a7988',
    flowTable: { capacity },
    frontends: [{ name: 'fe-v4', address: FE4 }, { name: 'fe-v6', address: FE6 }],
    backendPools: [
      { name: 'nvas', backends: nvas.map((i) => ({ name: `nva-${i}`, address: `10.0.1.${4 + i}` })) },
      { name: 'nvas6', backends: nvas6.map((i) => ({ name: `nva6-${i}`, address: `fd00:1::${(4 + i).toString(16)}` })) },
    ],
    rules: [
      { name: 'ha', frontend: 'fe-v4', backendPool: 'nvas', protocol: 'all', frontendPort: 0, backendPort: 0, floatingIp },
      { name: 'ha6', frontend: 'fe-v6', backendPool: 'nvas6', protocol: 'all', frontendPort: 0, backendPort: 0, floatingIp },
    ],
  };
}

const ADDRESS = {};
for (let i = 0; i < 8; i++) {
  ADDRESS[`nva-${i}`] = `10.0.1.${4 + i}`;
  ADDRESS[`nva6-${i}`] = `fd00:1::${(4 + i).toString(16)}`;
}

/** Runs packets in batches; returns [{v, name, bytes}] with the backend by name. */
function run(core, packets, now) {
  const out = [];
  for (let i = 0; i < packets.length; i += core.maxBatch) {
    const batch = packets.slice(i, i + core.maxBatch);
    core.load(batch);
    core.process(batch.length, now);
    batch.forEach((_, j) => {
      const v = core.verdict(j);
      out.push({ v, name: core.names.backends[v.backend] ?? null, bytes: core.packet(j).slice() });
    });
  }
  return out;
}

/** Mixed flows: TCP, UDP, SCTP, ICMP echo over IPv4, TCP and UDP over IPv6. */
function makeFlows(n, seed) {
  const next = rng(seed);
  const flows = [];
  for (let i = 0; i < n; i++) {
    const v6 = i % 5 === 4;
    const proto = v6 ? [6, 17][next() % 2] : [6, 17, 132, 1][next() % 4];
    flows.push({
      src: v6 ? randomV6(next) : randomV4(next), dst: v6 ? FE6 : FE4, proto,
      sport: 1024 + (next() % 60000), dport: [53, 80, 443, 8080][next() % 4], id: next() & 0xffff,
    });
  }
  return flows;
}

const fwd = (f, tcpFlags = ACK) => packet({ src: f.src, dst: f.dst, proto: f.proto, sport: f.sport, dport: f.dport, tcpFlags, id: f.id });

/** Establishes flows (two packets each; TCP: SYN then ACK); returns their backends by name. */
function establish(core, flows, now) {
  const first = run(core, flows.map((f) => fwd(f, SYN)), now);
  const second = run(core, flows.map((f) => fwd(f, ACK)), now + 10);
  second.forEach(({ v }, i) => assert.ok(v.flags & FLAGS.flowHit, `flow ${i} not tracked`));
  return first.map(({ name }) => name);
}

/** How many of `flows` a fresh core with `cfg` would put elsewhere than `names`. */
function wouldMove(cfg, flows, names) {
  const fresh = Core.load();
  fresh.configure(cfg);
  return run(fresh, flows.map((f) => fwd(f, SYN)), 1000).filter(({ name }, i) => name !== names[i]).length;
}

const FLOWS = makeFlows(3000, 77);

for (const floatingIp of [false, true]) {
  const kind = floatingIp ? 'floating IP' : 'NAT';

  test(`${kind}: adding a backend moves no tracked flow; new flows use it`, () => {
    const core = Core.load();
    core.configure(config({ floatingIp }));
    const before = establish(core, FLOWS, 1000);
    const grown = config({ nvas: [0, 1, 2, 3, 4], nvas6: [0, 1, 2], floatingIp });
    // Meaningful only if the new Maglev tables would move some of these flows.
    const moved = wouldMove(grown, FLOWS, before);
    assert.ok(moved > FLOWS.length * 0.1, `only ${moved} flows would move untracked`);
    core.configure(grown);
    const after = run(core, FLOWS.map((f) => fwd(f)), 2000);
    const changed = after.filter(({ v, name }, i) => name !== before[i] || !(v.flags & FLAGS.flowHit));
    assert.equal(changed.length, 0, `${changed.length} tracked flows moved or lost their entry`);
    if (!floatingIp) {
      after.forEach(({ v, bytes }, i) => {
        assert.ok(v.flags & FLAGS.rewritten, `flow ${i} not rewritten`);
      });
    }
    const fresh = run(core, makeFlows(3000, 78).map((f) => fwd(f, SYN)), 2000);
    const onNew = fresh.filter(({ name }) => name === 'nva-4' || name === 'nva6-2').length;
    assert.ok(onNew > 300, `only ${onNew} of 3000 new flows on the new backends`);
  });

  test(`${kind}: reordering and inserting backends (indices all shift) keeps every tracked flow on its backend by name`, () => {
    const core = Core.load();
    core.configure(config({ floatingIp }));
    const before = establish(core, FLOWS, 1000);
    const shuffled = config({ nvas: [5, 3, 2, 1, 0], nvas6: [2, 1, 0], floatingIp });
    shuffled.backendPools.reverse(); // pool order too
    core.configure(shuffled);
    const after = run(core, FLOWS.map((f) => fwd(f)), 2000);
    const changed = after.filter(({ v, name }, i) => name !== before[i] || !(v.flags & FLAGS.flowHit));
    assert.equal(changed.length, 0, `${changed.length} tracked flows moved or lost their entry`);
  });

  test(`${kind}: removing a backend moves only its flows; the rest keep their entries`, () => {
    const core = Core.load();
    core.configure(config({ floatingIp }));
    const before = establish(core, FLOWS, 1000);
    const droppedBefore = core.counters().flowsDroppedByConfig;
    core.configure(config({ nvas: [0, 1, 3], nvas6: [0, 1], floatingIp }));
    assert.ok(core.counters().flowsDroppedByConfig > droppedBefore);
    const after = run(core, FLOWS.map((f) => fwd(f)), 2000);
    after.forEach(({ v, name }, i) => {
      if (before[i] === 'nva-2') assert.notEqual(name, 'nva-2', `flow ${i} still on the removed backend`);
      else {
        assert.equal(name, before[i], `flow ${i} moved from ${before[i]} to ${name}`);
        assert.ok(v.flags & FLAGS.flowHit, `flow ${i} lost its entry`);
      }
    });
  });
}

test('NAT: after adding a backend and a new table capacity (rehash), replies of tracked flows are still translated to the frontend', () => {
  const core = Core.load();
  core.configure(config());
  const tcp = FLOWS.filter((f) => f.proto === 6);
  const before = establish(core, tcp, 1000);
  core.configure(config({ nvas: [0, 1, 2, 3, 4], nvas6: [0, 1, 2], capacity: 131072 }));
  const replies = run(core, tcp.map((f, i) => packet({
    src: ADDRESS[before[i]], dst: f.src, proto: 6, sport: f.dport, dport: f.sport, tcpFlags: SYN_ACK,
  })), 2000);
  replies.forEach(({ v, name, bytes }, i) => {
    assert.ok(v.flags & FLAGS.reply, `reply of flow ${i} (${before[i]}) not recognised (flags ${v.flags}, ${v.action})`);
    assert.equal(name, before[i]);
    const v6 = tcp[i].dst === FE6;
    const src = v6 ? Buffer.from(bytes.subarray(8, 24)).toString('hex') : [...bytes.subarray(12, 16)].join('.');
    assert.equal(src, v6 ? 'fd000000000000000000000000000100' : FE4, `reply of flow ${i} not from the frontend`);
  });
  const after = run(core, tcp.map((f) => fwd(f)), 2001);
  after.forEach(({ v, name }, i) => {
    assert.equal(name, before[i]);
    assert.ok(v.flags & FLAGS.flowHit);
  });
});

test('health carries over a reconfiguration: a down backend stays down, new flows avoid it, its TCP flows stay', () => {
  const core = Core.load();
  core.configure(config());
  const tcp = FLOWS.filter((f) => f.proto === 6 && f.dst === FE4);
  const before = establish(core, tcp, 1000);
  core.setBackendHealth(core.names.backends.indexOf('nva-1'), false);
  core.configure(config({ nvas: [0, 1, 2, 3, 4] }));
  assert.equal(core.exports.backendState(core.names.backends.indexOf('nva-1')), 1);
  const after = run(core, tcp.map((f) => fwd(f)), 2000);
  after.forEach(({ name }, i) => assert.equal(name, before[i]));
  const fresh = run(core, makeFlows(2000, 79).filter((f) => f.dst === FE4).map((f) => fwd(f, SYN)), 2000);
  assert.ok(!fresh.some(({ name }) => name === 'nva-1'), 'a new flow went to the down backend');
});
