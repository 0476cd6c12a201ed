// Inner TCP/UDP checksums under each policy: a sender with checksum offload leaves the
// pseudo-header's sum in the field (partial); the core completes it (policy "complete"),
// or only flags and counts it ("count"); a wrong checksum is flagged, counted and never
// changed; "off" (the default) looks at nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Core, FLAGS, NONE } from '../../build/host/core.mjs';
import { checksumsValid, packet, pseudoSum } from '../lib/packets.mjs';
import { baseConfig, FE4, FE6 } from './configs.mjs';

const cases = [
  ['IPv4 TCP', { src: '192.168.1.7', dst: FE4, proto: 6, sport: 40000, dport: 443, tcpFlags: 0x18, payload: 333 }],
  ['IPv4 UDP', { src: '192.168.1.7', dst: FE4, proto: 17, sport: 40001, dport: 53, payload: 64 }],
  ['IPv6 TCP', { src: '2001:db8::7', dst: FE6, proto: 6, sport: 40002, dport: 443, tcpFlags: 0x18, payload: 1201 }],
  ['IPv6 UDP', { src: '2001:db8::7', dst: FE6, proto: 17, sport: 40003, dport: 53, payload: 7 }],
];

/** The packet with the field as an offload-using sender leaves it: the pseudo-header's sum. */
function partial(p) {
  const q = p.slice();
  const v6 = q[0] >> 4 === 6;
  const l4 = v6 ? 40 : 20;
  const at = l4 + ((v6 ? q[6] : q[9]) === 6 ? 16 : 6);
  const s = pseudoSum(q);
  q[at] = s >> 8;
  q[at + 1] = s & 0xff;
  return q;
}

function floating() {
  const c = baseConfig();
  for (const r of c.rules) r.floatingIp = true;
  return c;
}

function run(core, packets) {
  core.load(packets);
  core.process(packets.length, 1000, NONE);
  return packets.map((_, i) => ({ v: core.verdict(i), out: core.packet(i).slice() }));
}

test('partial checksums are completed under "complete", flagged only under "count", ignored under "off"', () => {
  for (const [name, fields] of cases) {
    const good = packet({ ...fields, checksums: true });
    assert.ok(checksumsValid(good), `${name}: the builder's checksum`);
    const half = partial(good);
    assert.ok(!checksumsValid(half), `${name}: a partial checksum is not a valid one`);

    const complete = Core.load();
    complete.configure(floating());
    complete.setChecksumPolicy('complete');
    const [fixed, untouched] = run(complete, [half, good]);
    assert.equal(fixed.v.action, 'forward', name);
    assert.ok(fixed.v.flags & FLAGS.checksumPartial, `${name}: flagged partial`);
    assert.deepEqual(fixed.out, good, `${name}: completed to the right checksum`);
    assert.equal(untouched.v.flags & (FLAGS.checksumPartial | FLAGS.checksumWrong), 0, `${name}: a right checksum passes`);
    assert.deepEqual(untouched.out, good);
    assert.equal(complete.counters().checksumPartial, 1);
    assert.equal(complete.counters().checksumWrong, 0);

    const count = Core.load();
    count.configure(floating());
    count.setChecksumPolicy('count');
    const [flagged] = run(count, [half]);
    assert.ok(flagged.v.flags & FLAGS.checksumPartial);
    assert.deepEqual(flagged.out, half, `${name}: "count" changes nothing`);
    assert.equal(count.counters().checksumPartial, 1);

    const off = Core.load();
    off.configure(floating());
    const [ignored] = run(off, [half]);
    assert.equal(ignored.v.flags & (FLAGS.checksumPartial | FLAGS.checksumWrong), 0, `${name}: "off" (the default) looks at nothing`);
    assert.deepEqual(ignored.out, half);
    assert.equal(off.counters().checksumPartial, 0);
  }
});

test('a wrong checksum is flagged and counted, never "fixed"; it is still forwarded', () => {
  const core = Core.load();
  core.configure(floating());
  core.setChecksumPolicy('complete');
  for (const [name, fields] of cases) {
    const bad = packet({ ...fields, checksums: true });
    bad[bad.length - 1] ^= 0x5a; // a damaged payload byte
    const [r] = run(core, [bad]);
    assert.equal(r.v.action, 'forward', name);
    assert.ok(r.v.flags & FLAGS.checksumWrong, `${name}: flagged wrong`);
    assert.equal(r.v.flags & FLAGS.checksumPartial, 0);
    assert.deepEqual(r.out, bad, `${name}: unchanged`);
  }
  assert.equal(core.counters().checksumWrong, cases.length);
  assert.equal(core.counters().checksumPartial, 0);
});

test('not checked: IPv4 UDP without a checksum, fragments, other protocols', () => {
  const core = Core.load();
  core.configure(floating());
  core.setChecksumPolicy('complete');
  const noChecksum = packet({ src: '192.168.1.7', dst: FE4, proto: 17, sport: 1, dport: 2, payload: 10 }); // field 0
  const fragment = packet({ src: '192.168.1.7', dst: FE4, proto: 6, sport: 1, dport: 2, payload: 100, fragment: { offset: 0, more: true, id: 3 } });
  const icmp = packet({ src: '192.168.1.7', dst: FE4, proto: 1 });
  for (const r of run(core, [noChecksum, fragment, icmp])) {
    assert.equal(r.v.flags & (FLAGS.checksumPartial | FLAGS.checksumWrong), 0);
  }
  assert.equal(core.counters().checksumWrong, 0);
  assert.throws(() => core.setChecksumPolicy('fix'), RangeError);
});

test('NAT (non-floating rule): a partial checksum is completed before the rewrite, so the translated packet is valid', () => {
  const core = Core.load();
  core.configure(baseConfig()); // the HA-ports rules of baseConfig are non-floating: DNAT to the backend
  core.setChecksumPolicy('complete');
  for (const [name, fields] of cases) {
    const half = partial(packet({ ...fields, checksums: true }));
    const [r] = run(core, [half]);
    assert.ok(r.v.flags & FLAGS.rewritten, `${name}: translated`);
    assert.ok(r.v.flags & FLAGS.checksumPartial, name);
    assert.ok(checksumsValid(r.out), `${name}: the translated packet's checksums are right`);
  }
});
