// A/B of two (or more) builds of the core on the packet path, in one process, sampled
// interleaved: the answer to "did this change make the core slower?" when the machine's
// own speed drifts by more than the change (a shared VM). The first module is the
// baseline; each other is reported as the median of its per-round ratios to it.
//
//   git stash && npm run build:release && cp build/haports.wasm /tmp/before.wasm && git stash pop
//   npm run build:release && node bench/ab.mjs /tmp/before.wasm build/haports.wasm
//   node bench/ab.mjs --flows 1048576 --family 6 --rounds 15 A.wasm B.wasm
//
// Traffic: hits of live TCP flows (established by SYN then ACK) through one next-hop
// HA-ports rule over 8 backends, flow table at 4 × the flows, batches of 1024; CPU time.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Core } from '../build/host/core.mjs';

const { values, positionals: wasms } = parseArgs({
  allowPositionals: true,
  options: {
    flows: { type: 'string', default: '4096' },
    family: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '9' },
  },
});
if (wasms.length < 2) {
  process.stderr.write('usage: node bench/ab.mjs [--flows N] [--family 4|6] [--rounds R] BASELINE.wasm OTHER.wasm...\n');
  process.exit(2);
}
const FLOWS = Number(values.flows);
const V6 = values.family === '6';
const BATCH = 1024;
const SLOT = 64;

function config() {
  return {
    hashSeed: '0x1f2e3d4c5b6a7988',
    flowTable: { capacity: FLOWS * 4 },
    frontends: [{ name: 'fe', address: V6 ? 'fd00::100' : '10.0.0.100' }],
    backendPools: [{
      name: 'nvas',
      backends: Array.from({ length: 8 }, (_, i) => ({ name: `nva-${i}`, address: V6 ? `fd00:1::${i + 1}` : `10.0.1.${i + 1}` })),
    }],
    rules: [{ name: 'ha', frontend: 'fe', backendPool: 'nvas', floatingIp: true }],
  };
}

/** Writes flow i's TCP packet (flags) at `o`, in place in the arena; returns its length. */
function write(buf, o, i, flags) {
  buf.fill(0, o, o + SLOT);
  if (!V6) {
    buf[o] = 0x45; buf[o + 3] = 40; buf[o + 8] = 64; buf[o + 9] = 6;
    buf.set([192, (i >> 16) & 255, (i >> 8) & 255, i & 255, 198, 51, 100, 7], o + 12);
    buf[o + 20] = ((i * 7) >> 8) & 255; buf[o + 21] = i & 255; buf[o + 22] = 1; buf[o + 23] = 187;
    buf[o + 32] = 0x50; buf[o + 33] = flags;
    return 40;
  }
  buf[o] = 0x60; buf[o + 5] = 20; buf[o + 6] = 6; buf[o + 7] = 64;
  buf[o + 8] = 0x20; buf[o + 9] = 1; buf[o + 21] = (i >> 16) & 255; buf[o + 22] = (i >> 8) & 255; buf[o + 23] = i & 255;
  buf[o + 24] = 0x20; buf[o + 25] = 2; buf[o + 39] = 7;
  buf[o + 40] = ((i * 7) >> 8) & 255; buf[o + 41] = i & 255; buf[o + 42] = 1; buf[o + 43] = 187;
  buf[o + 52] = 0x50; buf[o + 53] = flags;
  return 60;
}

function setup(path) {
  const core = new Core(new WebAssembly.Module(readFileSync(path)));
  core.configure(config());
  const arena = core.arena();
  for (const flags of [0x02, 0x10]) {
    for (let s = 0; s < FLOWS; s += BATCH) {
      const n = Math.min(BATCH, FLOWS - s);
      for (let j = 0; j < n; j++) core.setDescriptor(j, j * SLOT, write(arena, j * SLOT, s + j, flags));
      core.process(n, 1000, 0);
    }
  }
  const live = Math.min(FLOWS, 131072);
  const stride = Math.floor(FLOWS / live);
  for (let j = 0; j < live; j++) write(arena, j * SLOT, j * stride, 0x18);
  return { core, live };
}

/** ns per packet (CPU time) over `packets` hits. */
function time({ core, live }, packets) {
  let pos = 0;
  const length = V6 ? 60 : 40;
  const descriptors = new Uint32Array(core.exports.memory.buffer, core.exports.descriptorsPtr(), 2 * BATCH);
  const t0 = process.cpuUsage();
  for (let done = 0; done < packets; done += BATCH) {
    for (let j = 0; j < BATCH; j++) {
      descriptors[2 * j] = ((pos + j) % live) * SLOT;
      descriptors[2 * j + 1] = length;
    }
    pos = (pos + BATCH) % live;
    core.process(BATCH, 1000, 0);
  }
  const t = process.cpuUsage(t0);
  return ((t.user + t.system) * 1000) / packets;
}

const states = wasms.map(setup);
// The builds must decide alike, or the comparison means nothing.
const decisions = states.map(({ core }) => {
  for (let j = 0; j < 64; j++) core.setDescriptor(j, j * SLOT, V6 ? 60 : 40);
  core.process(64, 1000, 0);
  return JSON.stringify(Array.from({ length: 64 }, (_, j) => core.verdict(j)));
});
if (decisions.some((d) => d !== decisions[0])) {
  process.stderr.write('bench/ab: the modules decide differently on the same packets; not comparing\n');
  process.exit(1);
}
const packets = FLOWS > 100000 ? 262144 : 1 << 20;
for (let r = 0; r < 3; r++) states.forEach((s) => time(s, packets)); // warm-up, both tiers
const samples = wasms.map(() => []);
for (let r = 0; r < Number(values.rounds); r++) states.forEach((s, k) => samples[k].push(time(s, packets)));
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
console.log(`IPv${V6 ? 6 : 4}, ${FLOWS} live flows, hits, ${values.rounds} rounds (ns per packet; ratio: median of per-round ratios to the first)`);
wasms.forEach((w, k) => {
  const ratio = median(samples[k].map((x, r) => x / samples[0][r]));
  console.log(`  ${w}  ${median(samples[k]).toFixed(1)} ns  ×${ratio.toFixed(3)}`);
});
