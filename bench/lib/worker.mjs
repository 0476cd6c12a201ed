// One benchmark task in its own Node process (a fresh heap and fresh JIT state per
// engine, and --expose-gc / --no-liftoff where a task needs them).
//
//   node bench/lib/worker.mjs core|tsport|idiomatic ARGS.json     an engine, served:
//     sets up (configure, populate, check phase), warms every variant up, prints
//     `READY {json}`, then answers `RUN <workload>/<batch> <packets> <rewarm>` with one
//     timed iteration `{"cpu":ns/pkt,"wall":ns/pkt}` and `END` with `END {json}` —
//     the protocol of bench/native/driver.c and bench/wasmtime/driver.py too, so that
//     bench/run.mjs samples all engines of a case interleaved.
//   node bench/lib/worker.mjs maglev|memory ARGS.json OUT.json    runs, writes OUT.json.
// Progress goes to stderr.

import { createInterface } from 'node:readline';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { INGRESS, LINK, NOW_MS, readCase } from './corpus.mjs';
import { measure, timeIter, warmUp } from './harness.mjs';
import { makeHost } from './stream.mjs';
import { configure, coreEngine, counters, instantiate } from './wasmcore.mjs';

const [task, argsPath, outPath] = process.argv.slice(2);
const args = JSON.parse(readFileSync(argsPath, 'utf8'));
const say = (s) => process.stderr.write(`    ${s}\n`);
const fmt = (x) => x.toFixed(1);
const send = (line) => process.stdout.write(`${line}\n`);

const tasks = {};

/**
 * Serves timed iterations of `host`'s streams: warms up every variant (`hit/1024`, …),
 * prints READY with `info`, then runs what bench/run.mjs asks for, one iteration at a
 * time. `rewarm` packets run untimed before each timed iteration: the engine that ran
 * just before has had the caches.
 */
async function serve(host, c, info, mode, label, finalInfo = () => ({})) {
  const warm = {};
  for (const key of args.variants) {
    const [w, b] = key.split('/');
    const B = Number(b);
    const packets = Math.ceil(mode.iterPackets / B) * B;
    warm[key] = warmUp(() => host.run(w, B, packets), packets, mode);
    say(`${label} ${key}: warm ${warm[key].warmIters} iterations${warm[key].stable ? '' : ' (not stable)'}, first ${fmt(warm[key].firstIterNs)} → ${fmt(warm[key].warmLastNs)} ns/pkt`);
  }
  send(`READY ${JSON.stringify({ ...info, warm })}`);
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    const [cmd, key, n, re] = line.trim().split(' ');
    if (cmd === 'RUN') {
      const [w, b] = key.split('/');
      const B = Number(b);
      const rewarm = Math.ceil(Number(re) / B) * B;
      if (rewarm > 0) host.run(w, B, rewarm);
      const packets = Math.ceil(Number(n) / B) * B;
      send(JSON.stringify(timeIter(() => host.run(w, B, packets), packets)));
    } else if (cmd === 'END') {
      send(`END ${JSON.stringify(finalInfo())}`);
      break;
    }
  }
  rl.close();
}

// ---- The core in V8 -------------------------------------------------------------------

tasks.core = async () => {
  const c = readCase(args.case);
  const label = `v8 ${c.family === 4 ? 'v4' : 'v6'} ${c.flows}`;
  const ex = instantiate(args.wasm);
  configure(ex, c.config);
  const memConfigured = ex.memory.buffer.byteLength;
  const host = makeHost(coreEngine(ex, INGRESS, LINK, NOW_MS), c);
  const t0 = performance.now();
  const pop = host.populate(0, args.dump);
  const populateMs = performance.now() - t0;
  const afterPop = counters(ex);
  const chk = host.check(pop.crc, c.check, args.dump);
  if (args.dump) {
    writeFileSync(join(args.case, 'core.pop.verdicts'), pop.verdicts);
    writeFileSync(join(args.case, 'core.check.verdicts'), chk.verdicts);
    writeFileSync(join(args.case, 'core.check.tuples'), chk.tuples);
  }
  // Share of the hit stream that hits the table (one full period).
  const before = counters(ex);
  host.run('hit', 1024, c.C);
  const afterHit = counters(ex);
  const hitShare = (afterHit.flowHits - before.flowHits) / (afterHit.packets - before.packets);
  say(`${label}: populated ${afterPop.flowNew} flows (${afterPop.untracked} untracked) in ${populateMs.toFixed(0)} ms; hit stream hit share ${(hitShare * 100).toFixed(3)}%`);
  // The host's own cost per batch: copying 64 descriptors and calling processBatch(0).
  const u32 = new Uint32Array(ex.memory.buffer);
  const view = c.hit.subarray(0, 128);
  const d = ex.descriptorsPtr() >>> 2;
  const pb = ex.processBatch;
  const calls = [];
  for (let r = 0; r < 9; r++) {
    const t = timeIter(() => { for (let k = 0; k < 20000; k++) { u32.set(view, d); pb(0, NOW_MS, INGRESS, LINK); } }, 20000);
    if (r >= 2) calls.push(t.cpu);
  }
  const info = {
    callOverheadNs: calls.sort((a, b) => a - b)[calls.length >> 1],
    crc: (chk.crc >>> 0).toString(16).padStart(8, '0'),
    populateMs, tracked: ex.flowTableUsed(), capacity: ex.flowTableCapacity(),
    populated: { flowNew: afterPop.flowNew, untracked: afterPop.untracked }, hitShare, memConfigured,
  };
  await serve(host, c, info, args.mode, label, () => ({ memAfter: ex.memory.buffer.byteLength, counters: counters(ex) }));
};

// ---- The TypeScript port ---------------------------------------------------------------

/** First record where two verdict (16 B) or tuple (40 B) streams differ, or -1. */
function firstDifference(a, b, size) {
  const n = Math.min(a.length, b.length) / size;
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < size; k++) if (a[i * size + k] !== b[i * size + k]) return i;
  }
  return a.length === b.length ? -1 : n;
}

function describeVerdict(v, i) {
  const dv = new DataView(v.buffer, v.byteOffset + i * 16, 16);
  return `action ${dv.getUint8(0)} reason ${dv.getUint8(1)} flags 0x${dv.getUint16(2, true).toString(16)} rule ${dv.getUint16(4, true)} backend ${dv.getUint16(6, true)} hash 0x${dv.getUint32(12, true).toString(16)}`;
}

tasks.tsport = async () => {
  const port = await import(args.module);
  const c = readCase(args.case);
  const dir = args.case;
  const label = `ts-port ${c.family === 4 ? 'v4' : 'v6'} ${c.flows}`;
  port.configure(c.config);
  const eng = {
    memory: () => port.getMemory(), arenaPtr: port.ARENA_PTR, descriptorsPtr: port.DESCRIPTORS_PTR,
    verdictsPtr: port.VERDICTS_PTR, tuplesPtr: port.TUPLES_PTR,
    process: (n, now = NOW_MS) => port.processBatch(n, now, INGRESS, LINK),
  };
  const host = makeHost(eng, c);
  const t0 = performance.now();
  const pop = host.populate(0, true);
  const populateMs = performance.now() - t0;
  const chk = host.check(pop.crc, c.check, true);
  // The port must decide exactly as the core did, packet by packet.
  const mismatches = [];
  const compare = (what, mine, file, size) => {
    const core = new Uint8Array(readFileSync(join(dir, file)));
    const i = firstDifference(mine, core, size);
    if (i >= 0) {
      const show = (x) => (size === 16 ? describeVerdict(x, i) : Buffer.from(x.subarray(i * size, (i + 1) * size)).toString('hex'));
      mismatches.push(`${what} record ${i} differs: port ${show(mine)} vs core ${show(core)}`);
    }
  };
  compare('population verdict', pop.verdicts, 'core.pop.verdicts', 16);
  compare('check-phase verdict', chk.verdicts, 'core.check.verdicts', 16);
  compare('check-phase tuple', chk.tuples, 'core.check.tuples', 40);
  const compared = c.flows + c.check;
  const info = { crc: (chk.crc >>> 0).toString(16).padStart(8, '0'), compared, mismatches, populateMs };
  if (mismatches.length) {
    say(`${label}: DECISIONS DIFFER FROM THE CORE: ${mismatches.join('; ')}`);
    send(`READY ${JSON.stringify({ ...info, warm: {} })}`);
    return;
  }
  say(`${label}: ${compared} packets, verdicts and tuples identical to the core's`);
  await serve(host, c, info, args.mode, label);
};

// ---- The idiomatic Node approach -------------------------------------------------------

tasks.idiomatic = async () => {
  const { IdiomaticBalancer, ARENA_PTR, DESCRIPTORS_PTR, VERDICTS_PTR, TUPLES_PTR } = await import('../idiomatic/balancer.mjs');
  const c = readCase(args.case);
  const label = `idiomatic ${c.family === 4 ? 'v4' : 'v6'} ${c.flows}`;
  const lb = new IdiomaticBalancer(c.config);
  const eng = {
    memory: () => lb.memory, arenaPtr: ARENA_PTR, descriptorsPtr: DESCRIPTORS_PTR, verdictsPtr: VERDICTS_PTR,
    tuplesPtr: TUPLES_PTR, process: (n, now = NOW_MS) => lb.processBatch(n, now),
  };
  const host = makeHost(eng, c);
  const heap = () => { if (global.gc) { global.gc(); global.gc(); } return process.memoryUsage().heapUsed; };
  const heap0 = heap();
  const t0 = performance.now();
  host.populate(0, false);
  const populateMs = performance.now() - t0;
  const populated = lb.flows.size;
  const heapPerFlow = global.gc ? (heap() - heap0) / populated : null;
  host.check(0, c.check, false);
  say(`${label}: populated ${populated} flows in ${populateMs.toFixed(0)} ms`);
  const before = { ...lb.stats };
  await serve(host, c, { populateMs, populated, heapPerFlow }, args.mode, label, () => ({
    newShare: (lb.stats.newFlows - before.newFlows) / (lb.stats.packets - before.packets),
  }));
};

// ---- Maglev: table build time and distribution quality --------------------------------

function maglevTableCopy(ex) {
  const ptr = ex.maglevTablePtr(0);
  return new Uint16Array(ex.memory.buffer.slice(ptr, ptr + 2 * ex.maglevTableSize(0)));
}

tasks.maglev = async () => {
  const { benchConfig } = await import('./corpus.mjs');
  const out = [];
  for (const m of args.sizes) {
    for (const n of args.backends) {
      const config = benchConfig({ family: 4, capacity: 16, backends: n, m });
      const ex = instantiate(args.wasm);
      // configure(): JSON parse, compile, name hashing and both tables of the pool.
      const cfgTimes = [];
      for (let i = 0; i < args.configureReps; i++) {
        const t0 = process.hrtime.bigint();
        configure(ex, config);
        cfgTimes.push(Number(process.hrtime.bigint() - t0));
      }
      // setBackendHealth: rebuilds the pool's two tables (over all members, and over the
      // members up), alternately with backend 0 down and up.
      let up = 0;
      const timing = measure([{ key: 'rebuild', packets: 1, run: () => { ex.setBackendHealth(0, up); up ^= 1; } }], args.mode)['rebuild'];
      ex.setBackendHealth(0, 1);
      delete timing.wall;
      // Distribution over the table with every backend up.
      const before = maglevTableCopy(ex);
      const counts = new Array(n).fill(0);
      for (const b of before) counts[b]++;
      const mean = m / n;
      // Disruption: remove one backend (health down), count slots that changed backend.
      const removed = [...new Set([0, Math.floor(n / 3), Math.floor((2 * n) / 3), n - 1])];
      const moves = removed.map((b) => {
        ex.setBackendHealth(b, 0);
        const after = maglevTableCopy(ex);
        ex.setBackendHealth(b, 1);
        let moved = 0;
        for (let i = 0; i < m; i++) if (after[i] !== before[i]) moved++;
        return { backend: b, moved: moved / m, own: counts[b] / m };
      });
      const movedShare = moves.reduce((s, x) => s + x.moved, 0) / moves.length;
      const rec = {
        m, n, configureMedianNs: summarizeMedian(cfgTimes), rebuild: timing,
        perTableNs: timing.median / 2,
        maxOverMean: Math.max(...counts) / mean, minOverMean: Math.min(...counts) / mean,
        movedShare, ideal: 1 / n, moves,
      };
      say(`maglev N=${n} M=${m}: rebuild ${(timing.median / 1e6).toFixed(3)} ms (≈ ${(rec.perTableNs / 1e6).toFixed(3)} ms per table), max/mean ${rec.maxOverMean.toFixed(4)}, moved ${(movedShare * 100).toFixed(3)}% vs ideal ${(100 / n).toFixed(3)}%`);
      out.push(rec);
    }
  }
  // The idiomatic ring (hashring) on the same questions, over random keys.
  const ring = [];
  if (args.ringKeys > 0) {
    const HashRing = (await import('hashring')).default;
    for (const n of args.backends) {
      const names = Array.from({ length: n }, (_, i) => `nva-${i}`);
      const keys = Array.from({ length: args.ringKeys }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:${1024 + (i % 60000)}->10.0.0.100:443/6`);
      const r1 = new HashRing(names);
      const a = keys.map((k) => r1.get(k));
      const counts = new Map(names.map((x) => [x, 0]));
      for (const x of a) counts.set(x, counts.get(x) + 1);
      const mean = keys.length / n;
      r1.remove(names[0]);
      let moved = 0;
      keys.forEach((k, i) => { if (r1.get(k) !== a[i]) moved++; });
      const rec = { n, keys: keys.length, maxOverMean: Math.max(...counts.values()) / mean, minOverMean: Math.min(...counts.values()) / mean, movedShare: moved / keys.length, ideal: 1 / n };
      say(`hashring N=${n}: max/mean ${rec.maxOverMean.toFixed(3)}, moved ${(rec.movedShare * 100).toFixed(3)}% vs ideal ${(100 / n).toFixed(3)}%`);
      ring.push(rec);
    }
  }
  return { maglev: out, ring };
};

function summarizeMedian(xs) { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; }

// ---- Memory ---------------------------------------------------------------------------

tasks.memory = async () => {
  const { Core } = await import(args.binding);
  // Collect until V8's bytecode aging has settled (it flushes the bytecode of functions
  // not run for a few collections: without this the heap "shrinks" over the run).
  const heap = () => { for (let i = 0; i < 8; i++) global.gc(); return process.memoryUsage().heapUsed; };
  // Bytes per tracked flow: wasm memory after configuring capacity 4K and 1M, both families.
  const perFlow = [];
  for (const dir of args.cases) {
    const c = readCase(dir);
    const sizes = {};
    for (const cap of [4096, 1048576, 4194304]) {
      const ex = instantiate(args.wasm);
      configure(ex, { ...c.config, flowTable: { capacity: cap } });
      sizes[cap] = ex.memory.buffer.byteLength;
    }
    perFlow.push({
      family: c.family, mem4K: sizes[4096], mem1M: sizes[1048576], mem4M: sizes[4194304],
      bytesPerFlow4Kto1M: (sizes[1048576] - sizes[4096]) / (1048576 - 4096),
      bytesPerFlow1Mto4M: (sizes[4194304] - sizes[1048576]) / (4194304 - 1048576),
    });
  }
  // A full table of IPv6 flows: capacity 1M, filled with 1M distinct IPv6 flows.
  let fill = null;
  if (args.fillCase) {
    const c = readCase(args.fillCase);
    const ex = instantiate(args.wasm);
    configure(ex, { ...c.config, flowTable: { capacity: c.flows } });
    const before = ex.memory.buffer.byteLength;
    makeHost(coreEngine(ex, INGRESS, LINK, NOW_MS), c).populate(0, false);
    const n = counters(ex);
    fill = { family: c.family, capacity: ex.flowTableCapacity(), tracked: ex.flowTableUsed(), untracked: n.untracked, memBefore: before, memAfter: ex.memory.buffer.byteLength };
    say(`memory: ${fill.tracked} IPv${c.family} flows tracked in a table of ${fill.capacity}; wasm memory ${before} → ${fill.memAfter}`);
  }
  // 10 million packets through the Node binding: wasm memory, allocator, JS heap.
  const core = Core.load(args.wasm);
  const phases = [];
  for (const dir of args.cases) {
    const c = readCase(dir);
    phases.push({ c, host: null });
  }
  core.configure(phases[0].c.config);
  const ex = core.exports;
  const eng = {
    memory: () => ex.memory.buffer, arenaPtr: ex.rxArenaPtr(), descriptorsPtr: ex.descriptorsPtr(),
    verdictsPtr: ex.verdictsPtr(), tuplesPtr: ex.tuplesPtr(), process: (n, now = NOW_MS) => core.process(n, now, INGRESS, LINK),
  };
  for (const p of phases) p.host = makeHost(eng, p.c);
  const per = Math.ceil(args.packets / phases.length / 1024) * 1024;
  // Warm: every path once (JIT code and feedback are allocated now, not during the count).
  for (const p of phases) { p.host.populate(0, false); p.host.run('mix', 1024, 1 << 20); }
  phases[0].host.populate(0, false);
  const mem0 = ex.memory.buffer.byteLength;
  const probe0 = ex.heapProbe();
  const c0 = core.counters();
  const heap0 = heap();
  let packets = 0;
  for (const p of phases) {
    p.host.populate(0, false); // writes this family's packets into the arena
    p.host.run('mix', 1024, per);
    packets += p.c.flows + per;
  }
  const heap1 = heap();
  const c1 = core.counters();
  const rec = {
    packets, wasmBefore: mem0, wasmAfter: ex.memory.buffer.byteLength, probeBefore: probe0, probeAfter: ex.heapProbe(),
    heapBefore: heap0, heapAfter: heap1, heapGrowth: heap1 - heap0,
    newFlows: c1.flowNew - c0.flowNew, hits: c1.flowHits - c0.flowHits, evictions: c1.evictions - c0.evictions,
  };
  say(`memory: ${packets} packets: wasm ${rec.wasmBefore} → ${rec.wasmAfter}, allocator probe ${rec.probeBefore} → ${rec.probeAfter}, JS heap ${heap0} → ${heap1} (${rec.heapGrowth} B)`);
  return { perFlow, fill, run: rec };
};

const result = await tasks[task]();
if (outPath) writeFileSync(outPath, JSON.stringify(result));
