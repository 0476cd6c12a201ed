// The packet fixture table (test/fixtures/packets.json, made by make_fixtures.py with
// scapy or by hand): each packet's verdict, drop reason and parsed tuple; and for
// forwarded packets, that the flow key the core tracks is the one the table gives — a
// plain packet carrying that key must hit the flow the fixture created (for ICMP
// errors: the flow they quote).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Core, FLAGS, LINK_ETHERNET, LINK_RAW_IP } from '../../build/host/core.mjs';
import { packet } from '../lib/packets.mjs';

const root = new URL('../../', import.meta.url);
const table = JSON.parse(readFileSync(new URL('test/fixtures/packets.json', root), 'utf8'));
const config = readFileSync(new URL(table.config, root), 'utf8');

function runOne(core, bytes, link) {
  core.load([bytes]);
  core.process(1, 1000, 0xffff, link);
  return { verdict: core.verdict(0), tuple: core.tuple(0) };
}

for (const f of table.fixtures) {
  test(`${f.name}: ${f.description}`, () => {
    const core = Core.load();
    core.configure(config);
    const link = f.link === 'ethernet' ? LINK_ETHERNET : LINK_RAW_IP;
    const { verdict, tuple } = runOne(core, Buffer.from(f.hex, 'hex'), link);
    const e = f.expect;
    assert.equal(verdict.action, e.verdict, `made by ${f.made}`);
    if (e.verdict === 'drop') assert.equal(verdict.reason, e.reason);
    assert.deepEqual(tuple, e.tuple);
    const k = e.flowKey;
    if (e.verdict === 'forward' && k && [6, 17, 132].includes(k.proto) && k.sport !== null) {
      const probe = runOne(core, packet({ src: k.src, dst: k.dst, proto: k.proto, sport: k.sport, dport: k.dport }), LINK_RAW_IP);
      // Same key → the entry the fixture packet created: a flow-table hit, same backend.
      assert.ok(probe.verdict.flags & FLAGS.flowHit, `no tracked flow for key ${JSON.stringify(k)}`);
      assert.equal(probe.verdict.backend, verdict.backend, `flow key ${JSON.stringify(k)}`);
    }
  });
}
