// Flow-table occupancy: how full the table can get with established flows before any
// of them is evicted (issue 10). For each load, a fresh core with a table of `capacity`
// entries is filled with distinct TCP flows, each opened by a SYN and established by an
// ACK (batches of 1024 SYNs, then their ACKs), and every flow is then looked up again.
// Counts, not times: evictions, flows left untracked, entries moved to their other
// bucket (cuckoo), and established flows no longer found.
//
// One bucket per key (the layout before issue 10) overflowed at 25% load already; the
// two-bucket table with moves should report zeros up to 90%.

import { Core } from '../../build/host/core.mjs';

const LOADS = [0.25, 0.5, 0.75, 0.9, 0.95];

function config(capacity) {
  return {
    hashKey: '0x0f1e2d3c4b5a69788796a5b4c3d2e1f0',
    flowTable: { capacity },
    frontends: [{ name: 'fe', address: '10.0.0.100' }],
    backendPools: [{ name: 'nvas', backends: Array.from({ length: 8 }, (_, i) => ({ name: `nva-${i}`, address: `10.0.1.${i + 1}` })) }],
    rules: [{ name: 'ha', frontend: 'fe', backendPool: 'nvas', floatingIp: true }],
  };
}

/** Writes the 40-byte IPv4 TCP packet of flow `i` with `flags` at `at`. */
function writePacket(m, at, i, flags) {
  m.fill(0, at, at + 40);
  m[at] = 0x45; m[at + 3] = 40; m[at + 8] = 64; m[at + 9] = 6;
  const src = (Math.imul(i, 0x9e3779b1) + 0x2a2a2a2a) >>> 0; // distinct sources
  m[at + 12] = src >>> 24; m[at + 13] = src >>> 16; m[at + 14] = src >>> 8; m[at + 15] = src;
  m[at + 16] = 198; m[at + 17] = 51; m[at + 18] = 100; m[at + 19] = 7;
  m[at + 20] = 0x9c; m[at + 21] = 0x40; m[at + 22] = 1; m[at + 23] = 187; // 40000 → 443
  m[at + 32] = 0x50; m[at + 33] = flags;
}

/** Runs flows [from, to) with `flags` at time `now`; returns the verdict flags. */
function run(core, from, to, flags, now, out) {
  for (let s = from; s < to; s += 1024) {
    const n = Math.min(1024, to - s);
    const m = core.memory;
    const base = core.exports.rxArenaPtr();
    for (let j = 0; j < n; j++) {
      writePacket(m, base + j * 64, s + j, flags);
      core.setDescriptor(j, j * 64, 40);
    }
    core.process(n, now, 0);
    if (out) for (let j = 0; j < n; j++) out.push(core.verdict(j).flags);
  }
}

export function measureOccupancy(capacity) {
  const rows = [];
  for (const load of LOADS) {
    const core = Core.load();
    core.configure(config(capacity));
    const flows = Math.floor(load * capacity);
    for (let s = 0; s < flows; s += 1024) {
      const e = Math.min(flows, s + 1024);
      run(core, s, e, 0x02, 1000); // SYN
      run(core, s, e, 0x10, 1001); // ACK: established
    }
    const c = core.counters();
    const seen = [];
    run(core, 0, flows, 0x18, 2000, seen);
    const lost = seen.filter((f) => !(f & 2 /* FLAG_FLOW_HIT */)).length;
    rows.push({
      load, capacity, flows, used: core.exports.flowTableUsed(), evictions: c.evictions, untracked: c.untracked,
      moves: c.flowMoves, established: c.flowEstablished, lost,
    });
  }
  return rows;
}
