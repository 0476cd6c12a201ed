// Tunnel headers: a table of datagrams (how made, expected header length or error,
// VNI, link type), and the builders.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LINK_ETHERNET, LINK_RAW_IP } from '../../build/host/core.mjs';
import {
  decap, decoded, encapsulate, geneveHeader, tunnelErrorName, vxlanHeader,
} from '../../build/host/tunnel.mjs';

const eth = new Uint8Array(60);
const b = (...xs) => Uint8Array.from(xs);
const opt = (cls, type, words) => [cls >> 8, cls & 0xff, type, words, ...new Array(words * 4).fill(0xab)];

// [description, protocol, datagram, expected header length | error name, vni, link]
const TABLE = [
  ['VXLAN, I flag, VNI 0x123456', 'vxlan', encapsulate(b(0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0), eth), 8, 0x123456, LINK_ETHERNET],
  ['VXLAN, reserved bits set (ignored on receipt)', 'vxlan', encapsulate(b(0xff, 0xff, 0xff, 0xff, 0, 0, 9, 0xff), eth), 8, 9, LINK_ETHERNET],
  ['VXLAN, I flag clear', 'vxlan', encapsulate(b(0x00, 0, 0, 0, 0, 0, 9, 0), eth), 'vxlan-no-vni-flag'],
  ['VXLAN, 7 bytes', 'vxlan', b(8, 0, 0, 0, 0, 0, 9), 'tunnel-truncated'],
  ['VXLAN, empty datagram', 'vxlan', b(), 'tunnel-truncated'],
  ['VXLAN, header only', 'vxlan', b(8, 0, 0, 0, 0, 0, 9, 0), 'tunnel-empty'],
  ['GENEVE, Ethernet, no options', 'geneve', encapsulate(b(0, 0, 0x65, 0x58, 0, 0, 1, 0), eth), 8, 1, LINK_ETHERNET],
  ['GENEVE, IPv4', 'geneve', encapsulate(b(0, 0, 0x08, 0x00, 0xff, 0xff, 0xff, 0), eth), 8, 0xffffff, LINK_RAW_IP],
  ['GENEVE, IPv6', 'geneve', encapsulate(b(0, 0, 0x86, 0xdd, 0, 1, 0, 0), eth), 8, 256, LINK_RAW_IP],
  ['GENEVE, two options (3 + 2 words), C set', 'geneve', encapsulate(b(5, 0x40, 0x65, 0x58, 0, 0, 2, 0, ...opt(0x0105, 1, 2), ...opt(0xffff, 0x80, 1)), eth), 28, 2, LINK_ETHERNET],
  ['GENEVE, option of 0 words', 'geneve', encapsulate(b(1, 0, 0x65, 0x58, 0, 0, 2, 0, ...opt(1, 1, 0)), eth), 12, 2, LINK_ETHERNET],
  ['GENEVE, 63 words of options', 'geneve', encapsulate(b(63, 0, 0x65, 0x58, 0, 0, 3, 0, ...opt(1, 1, 31), ...opt(1, 2, 30)), eth), 260, 3, LINK_ETHERNET],
  ['GENEVE, version 1', 'geneve', encapsulate(b(0x40, 0, 0x65, 0x58, 0, 0, 1, 0), eth), 'geneve-bad-version'],
  ['GENEVE, version 3', 'geneve', encapsulate(b(0xc0, 0, 0x65, 0x58, 0, 0, 1, 0), eth), 'geneve-bad-version'],
  ['GENEVE, O bit (control)', 'geneve', encapsulate(b(0, 0x80, 0x65, 0x58, 0, 0, 1, 0), eth), 'geneve-control'],
  ['GENEVE, option longer than Opt Len', 'geneve', encapsulate(b(1, 0, 0x65, 0x58, 0, 0, 1, 0, ...opt(1, 1, 0).slice(0, 3), 1), eth), 'geneve-bad-options'],
  ['GENEVE, two empty options filling Opt Len', 'geneve', encapsulate(b(2, 0, 0x65, 0x58, 0, 0, 1, 0, ...opt(1, 1, 0), 0, 0, 0, 0), eth).subarray(0, 80), 12 + 4, 1, LINK_ETHERNET],
  ['GENEVE, Opt Len past the datagram', 'geneve', b(4, 0, 0x65, 0x58, 0, 0, 1, 0, 0, 1, 1, 0), 'tunnel-truncated'],
  ['GENEVE, unsupported protocol (MPLS)', 'geneve', encapsulate(b(0, 0, 0x88, 0x47, 0, 0, 1, 0), eth), 'geneve-unsupported-protocol'],
  ['GENEVE, header and options only', 'geneve', b(1, 0, 0x65, 0x58, 0, 0, 1, 0, ...opt(1, 1, 0)), 'tunnel-empty'],
  ['GENEVE, 5 bytes', 'geneve', b(0, 0, 0x65, 0x58, 0), 'tunnel-truncated'],
];

for (const [what, protocol, datagram, want, vni, link] of TABLE) {
  test(`decap: ${what}`, () => {
    const r = decap(protocol, datagram);
    if (typeof want === 'string') {
      assert.ok(r < 0, `expected ${want}, got header length ${r}`);
      assert.equal(tunnelErrorName(r), want);
    } else {
      assert.equal(r, want);
      assert.equal(decoded.vni, vni);
      assert.equal(decoded.link, link);
    }
  });
}

test('decap never throws or reads past the datagram: 100k random datagrams', () => {
  let seed = 12345;
  const next = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed >>> 16; };
  for (let i = 0; i < 100000; i++) {
    const d = new Uint8Array(next() % 80);
    for (let j = 0; j < d.length; j++) d[j] = next() & 0xff;
    if (d.length > 1 && i % 2) d[0] &= 0x3f; // GENEVE version 0 half the time
    for (const p of ['vxlan', 'geneve']) {
      const r = decap(p, d);
      assert.ok(r < 0 ? tunnelErrorName(r) !== undefined : r <= d.length - 1);
    }
  }
});

test('builders: VXLAN and GENEVE headers round-trip through decap', () => {
  assert.deepEqual([...vxlanHeader(0xabcdef)], [8, 0, 0, 0, 0xab, 0xcd, 0xef, 0]);
  const h = geneveHeader({ vni: 77, protocol: 0x86dd, options: [{ optionClass: 0x0105, type: 0x81, data: new Uint8Array(8) }] });
  assert.deepEqual([...h.subarray(0, 8)], [3, 0x40, 0x86, 0xdd, 0, 0, 77, 0]);
  assert.equal(decap('geneve', encapsulate(h, eth)), 20);
  assert.equal(decoded.link, LINK_RAW_IP);
  assert.equal(decap('geneve', encapsulate(geneveHeader({ vni: 1, control: true }), eth)), -4);
  assert.throws(() => vxlanHeader(1 << 24), RangeError);
  assert.throws(() => geneveHeader({ vni: 1, options: [{ optionClass: 1, type: 1, data: new Uint8Array(3) }] }), RangeError);
  assert.throws(() => geneveHeader({ vni: 1, options: Array.from({ length: 3 }, () => ({ optionClass: 1, type: 1, data: new Uint8Array(96) })) }), RangeError);
});
