// Handover (backendPools[].handoverSeconds, docs/fleet.md): two instances of a fleet with
// one configuration. Connections open on instance A; an appliance fails (both instances
// see it); then A leaves the fleet and its connections' next packets reach instance B,
// which has never seen them. Maglev moves some flows of the appliances that stayed up when
// one leaves the table; B sends those mid-stream packets to the appliance the previous
// table gave them, so their stateful firewall still knows them. Without handover
// (handoverSeconds 0) those same flows land on another appliance: the test would fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Core } from '../../build/host/core.mjs';
import { packet, rng, randomV4 } from '../lib/packets.mjs';

const FE = '10.0.0.100';
const SYN = 0x02, ACK = 0x10;
const NVAS = ['nva-0', 'nva-1', 'nva-2', 'nva-3'];

function config(handoverSeconds, persistOnUnhealthy = 'defaultForProtocol') {
  return JSON.stringify({
    hashKey: '0x000102030405060708090a0b0c0d0e0f',
    frontends: [{ name: 'hub', address: FE }],
    backendPools: [{
      name: 'nvas', maglevTableSize: 1009, ...(handoverSeconds === undefined ? {} : { handoverSeconds }),
      backends: NVAS.map((name, i) => ({ name, address: `10.0.1.${4 + i}` })),
    }],
    rules: [{ name: 'ha', frontend: 'hub', backendPool: 'nvas', protocol: 'all', frontendPort: 0, backendPort: 0, floatingIp: true, persistOnUnhealthy }],
  });
}

/** Backend name per packet (null when not forwarded). */
function run(core, packets, now) {
  const out = [];
  for (let i = 0; i < packets.length; i += core.maxBatch) {
    const batch = packets.slice(i, i + core.maxBatch);
    core.load(batch);
    core.process(batch.length, now, 0);
    for (let j = 0; j < batch.length; j++) {
      const v = core.verdict(j);
      out.push(v.action === 'forward' ? core.names.backends[v.backend] : null);
    }
  }
  return out;
}

function fleetChange(handoverSeconds, { gapMs = 1000, persist } = {}) {
  const next = rng(7);
  const flows = Array.from({ length: 4000 }, (_, i) => ({ src: randomV4(next), sport: 1024 + (i % 60000), dport: 443 }));
  const syn = flows.map((f) => packet({ src: f.src, dst: FE, sport: f.sport, dport: f.dport, tcpFlags: SYN }));
  const ack = flows.map((f) => packet({ src: f.src, dst: FE, sport: f.sport, dport: f.dport, tcpFlags: ACK }));
  const a = new Core(Core.load().module);
  const b = new Core(Core.load().module);
  a.configure(config(handoverSeconds, persist));
  b.configure(config(handoverSeconds, persist));
  // Both instances carry traffic (B: others' flows); A carries these connections.
  const other = () => packet({ src: '192.0.2.1', dst: FE, sport: 5000, dport: 53, proto: 17 });
  run(b, [other()], 1000);
  const first = run(a, syn, 1000);
  run(a, ack, 1100);
  // nva-2 fails its probes: both instances rebuild their tables at once.
  const down = NVAS.indexOf('nva-2');
  a.setBackendHealth(down, false);
  b.setBackendHealth(down, false);
  run(b, [other()], 1100); // B's next batch: the change's time (its handover window starts)
  // A leaves the fleet; B gets the next packets of A's connections.
  const after = run(b, ack, 1100 + gapMs);
  const c = b.counters();
  return { first, after, handovers: c.handover };
}

test('handover: after an appliance fails, connections that move to another instance keep their appliance', () => {
  const { first, after, handovers } = fleetChange(undefined); // the default, 60 s
  let kept = 0, moved = 0, onFailed = 0;
  first.forEach((was, i) => {
    if (was === 'nva-2') onFailed++;
    if (after[i] === was) kept++; else moved++;
  });
  assert.ok(onFailed > 600 && onFailed < 1400, `about a quarter of the flows were on nva-2 (${onFailed})`);
  // persistOnUnhealthy defaultForProtocol: a TCP flow stays on a down appliance (its probe
  // may fail while it still forwards), on the instance that tracks it and on the one it moves to.
  assert.equal(moved, 0, `flows that changed appliance: ${moved} (kept ${kept})`);
  assert.ok(handovers > onFailed, 'the handover counter counts the flows it kept');
});

test('handover with persistOnUnhealthy "never": the failed appliance\'s flows move, the others keep theirs', () => {
  const { first, after } = fleetChange(undefined, { persist: 'never' });
  let moved = 0, lost = 0;
  first.forEach((was, i) => {
    if (was === 'nva-2') { lost++; assert.notEqual(after[i], 'nva-2', 'nothing goes to the failed appliance'); return; }
    if (after[i] !== was) moved++;
  });
  assert.ok(lost > 600);
  assert.equal(moved, 0, `flows of the appliances still up that changed appliance: ${moved}`);
});

test('handover off (handoverSeconds 0), or past its window: Maglev alone moves some flows of the appliances still up', () => {
  for (const [label, r] of [['off', fleetChange(0)], ['after the window', fleetChange(5, { gapMs: 6000 })]]) {
    let moved = 0;
    r.first.forEach((was, i) => { if (was !== 'nva-2' && r.after[i] !== was) moved++; });
    assert.ok(r.first.every((was, i) => was !== 'nva-2' || r.after[i] !== 'nva-2'), `${label}: the untracked flows of the down appliance move`);
    assert.ok(moved > 0, `${label}: without handover some flows move (${moved}); else the test above proves nothing`);
    assert.equal(r.handovers, 0, label);
  }
});

test('handover applies to mid-stream TCP only: a SYN (a new connection) takes the current table', () => {
  const next = rng(11);
  const core = new Core(Core.load().module);
  core.configure(config(60));
  const flows = Array.from({ length: 3000 }, (_, i) => ({ src: randomV4(next), sport: 2000 + i }));
  const p = (f, tcpFlags) => packet({ src: f.src, dst: FE, sport: f.sport, dport: 80, tcpFlags });
  const before = run(core, flows.map((f) => p(f, ACK)), 1000); // untracked until established; entries now exist
  core.setBackendHealth(NVAS.indexOf('nva-1'), false);
  // A fresh instance (nothing tracked) with the same change: SYNs follow the current table.
  const fresh = new Core(Core.load().module);
  fresh.configure(config(60));
  fresh.setBackendHealth(NVAS.indexOf('nva-1'), false);
  const syns = run(fresh, flows.map((f) => p(f, SYN)), 1500);
  const reference = new Core(Core.load().module);
  reference.configure(config(0));
  reference.setBackendHealth(NVAS.indexOf('nva-1'), false);
  assert.deepEqual(syns, run(reference, flows.map((f) => p(f, SYN)), 1500), 'SYNs: exactly the current table');
  assert.ok(before.some((x, i) => x !== syns[i] && x !== 'nva-1'), 'some flows differ between the tables (else this proves nothing)');
});
