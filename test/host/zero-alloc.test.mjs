// The packet path allocates nothing: over 10 million packets (new flows, hits, IPv4 and
// IPv6, NAT rewrites, evictions under a small flow table, drops) wasm memory does not
// grow and the allocator hands out the same block before and after.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Core } from '../../build/host/core.mjs';
import { packet, rng, randomV4, randomV6 } from '../lib/packets.mjs';
import { baseConfig, FE4, FE6 } from './configs.mjs';

const PACKETS = Number(process.env.HAPORTS_ZERO_ALLOC_PACKETS ?? 10_000_000);

test(`zero allocation over ${PACKETS.toLocaleString('en')} packets`, () => {
  const core = Core.load();
  core.configure(baseConfig({ flowTable: { capacity: 4096 } })); // small: forces evictions
  const next = rng(99);
  const batch = [];
  for (let i = 0; i < core.maxBatch; i++) {
    const v6 = i % 4 === 3;
    batch.push(packet({
      src: v6 ? randomV6(next) : randomV4(next), dst: v6 ? FE6 : FE4,
      proto: [6, 17, 132, 1][i % 4 === 3 ? (i >> 2) % 3 : i % 4], sport: 1024 + (next() % 60000), dport: 80,
    }));
  }
  batch[5] = batch[5].slice(0, 10); // a truncated packet: a drop every batch
  core.load(batch);
  const arena = core.arena();
  // NAT rewrites packets in place: every batch starts from fresh copies, as a host's would.
  let total = 0;
  for (const p of batch) total += p.length;
  const pristine = arena.slice(0, total);
  // Offsets of each packet's source port (TCP/UDP/SCTP at 20 or 40 bytes in).
  const offsets = [];
  let off = 0;
  for (const p of batch) { offsets.push(off + ((p[0] >> 4) === 4 ? 20 : 40)); off += p.length; }

  core.process(core.maxBatch, 0); // warm: first flows, any lazy state
  const memBefore = core.exports.memory.buffer.byteLength;
  const probeBefore = core.exports.heapProbe();
  let processed = 0;
  for (let round = 1; processed < PACKETS; round++) {
    arena.set(pristine, 0);
    if (round % 4 === 0) {
      // New flows every fourth batch: rewrite the source ports in place.
      for (let i = 0; i < offsets.length; i += 2) pristine[offsets[i]] = round & 0xff;
    }
    core.process(core.maxBatch, round); // 1 ms per batch
    processed += core.maxBatch;
  }
  const c = core.counters();
  assert.equal(core.exports.memory.buffer.byteLength, memBefore, 'wasm memory grew');
  assert.equal(core.exports.heapProbe(), probeBefore, 'the allocator moved: something was allocated');
  assert.ok(c.packets >= PACKETS);
  assert.ok(c.flowNew > 1000 && c.flowHits > PACKETS / 4 && c.evictions > 0 && c.dropped > 0 && c.natForward > PACKETS / 2,
    JSON.stringify(c));
});
