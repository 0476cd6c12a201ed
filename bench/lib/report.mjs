// Turns a run into bench/results/<name>.json, .md (tables, targets, findings) and .svg
// (a hand-written bar chart: no dependencies).

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const ENGINES = [
  { key: 'reference', name: 'C reference (by hand, gcc -O3)', color: '#9467bd' },
  { key: 'native', name: 'native (wasm2c, gcc -O3)', color: '#4d4d4d' },
  { key: 'v8', name: 'core in V8 (Node)', color: '#1f77b4' },
  { key: 'wasmtime', name: 'core in wasmtime', color: '#ff7f0e' },
  { key: 'tsport', name: 'TypeScript port', color: '#2ca02c' },
  { key: 'idiomatic', name: 'idiomatic Node', color: '#d62728' },
];
const WORKLOADS = { hit: 'hits', mix: '10% new flows' };

const f1 = (x) => (x == null || Number.isNaN(x) ? '—' : x >= 100 ? x.toFixed(0) : x.toFixed(1));
const f2 = (x) => (x == null || Number.isNaN(x) ? '—' : `${x.toFixed(2)}×`);
const pct = (x, d = 1) => (x == null ? '—' : `${(x * 100).toFixed(d)}%`);
const sgn = (x) => (x == null ? '—' : `${x >= 0 ? '+' : ''}${pct(x)}`);
const ms = (ns) => (ns == null ? '—' : `${(ns / 1e6).toFixed(2)} ms`);

function med(r, engine, c, key) {
  return r.results[engine]?.[c]?.timings?.[key]?.median ?? null;
}

function geomean(xs) {
  const v = xs.filter((x) => x != null && x > 0);
  return v.length ? Math.exp(v.reduce((s, x) => s + Math.log(x), 0) / v.length) : null;
}

/**
 * The ratio of two cells: the median of their per-round ratios when they were sampled
 * in the same rounds (run.mjs samples every engine and batch size once per round,
 * adjacent in time, so a slow spell of the machine cancels out of each round's ratio);
 * else the ratio of their medians.
 */
function ratio(r, [e1, c1, k1], [e2, c2, k2]) {
  const a = r.results[e1]?.[c1]?.timings?.[k1];
  const b = r.results[e2]?.[c2]?.timings?.[k2];
  if (!a || !b) return null;
  if (a.samples?.length && a.samples.length === b.samples?.length) {
    const q = a.samples.map((x, i) => x / b.samples[i]).sort((x, y) => x - y);
    const m = (q.length - 1) / 2;
    return (q[Math.floor(m)] + q[Math.ceil(m)]) / 2;
  }
  return a.median / b.median;
}

/** The difference of two cells (ns), per round when sampled in the same rounds (as ratio()). */
function difference(r, [e1, c1, k1], [e2, c2, k2]) {
  const a = r.results[e1]?.[c1]?.timings?.[k1];
  const b = r.results[e2]?.[c2]?.timings?.[k2];
  if (!a || !b) return null;
  if (a.samples?.length && a.samples.length === b.samples?.length) {
    const q = a.samples.map((x, i) => x - b.samples[i]).sort((x, y) => x - y);
    const m = (q.length - 1) / 2;
    return (q[Math.floor(m)] + q[Math.ceil(m)]) / 2;
  }
  return a.median - b.median;
}

/** Rows of the batch-1024 comparison: one per case × workload. */
function rows(r) {
  const out = [];
  for (const c of r.cases) {
    for (const w of Object.keys(WORKLOADS)) {
      const k = `${w}/1024`;
      const row = { case: c.name, family: c.family, flows: c.flows, workload: w };
      for (const e of ENGINES) row[e.key] = med(r, e.key, c.name, k);
      row.v8unkeyed = med(r, 'v8unkeyed', c.name, k);
      row.hashCost = difference(r, ['v8', c.name, k], ['v8unkeyed', c.name, k]);
      row.v8_reference = ratio(r, ['v8', c.name, k], ['reference', c.name, k]);
      row.native_reference = ratio(r, ['native', c.name, k], ['reference', c.name, k]);
      row.v8_native = ratio(r, ['v8', c.name, k], ['native', c.name, k]);
      row.wasmtime_native = ratio(r, ['wasmtime', c.name, k], ['native', c.name, k]);
      row.tsport_v8 = ratio(r, ['tsport', c.name, k], ['v8', c.name, k]);
      row.idiomatic_v8 = ratio(r, ['idiomatic', c.name, k], ['v8', c.name, k]);
      row.v8_b64 = med(r, 'v8', c.name, `${w}/64`);
      row.v8_b1 = med(r, 'v8', c.name, `${w}/1`);
      row.native_b64 = med(r, 'native', c.name, `${w}/64`);
      row.native_b1 = med(r, 'native', c.name, `${w}/1`);
      row.reference_b64 = med(r, 'reference', c.name, `${w}/64`);
      const b64 = ratio(r, ['v8', c.name, `${w}/64`], ['v8', c.name, k]);
      row.b64_vs_1024 = b64 == null ? null : b64 - 1;
      const n64 = ratio(r, ['native', c.name, `${w}/64`], ['native', c.name, k]);
      row.native_b64_vs_1024 = n64 == null ? null : n64 - 1;
      out.push(row);
    }
  }
  return out;
}

function worst(rs, key, better) {
  const v = rs.filter((x) => x[key] != null);
  if (!v.length) return null;
  return v.reduce((a, b) => (better(a[key], b[key]) ? b : a));
}

/** The issue's targets, each PASS, MISS or N/A (not measured), with the value behind it. */
export function targets(r, rs) {
  const t = [];
  const add = (id, name, status, value) => t.push({ id, name, status, value });
  const ratioTarget = (id, name, key, limit, atMost) => {
    const w = worst(rs, key, atMost ? (a, b) => b > a : (a, b) => b < a);
    if (!w) return add(id, name, 'N/A', 'not measured');
    const g = geomean(rs.map((x) => x[key]));
    const ok = atMost ? w[key] <= limit : w[key] >= limit;
    add(id, name, ok ? 'PASS' : 'MISS', `worst ${f2(w[key])} (${w.case} ${WORKLOADS[w.workload]}), geometric mean ${f2(g)} over ${rs.filter((x) => x[key] != null).length} cells`);
  };
  const speed = (id, name, flows, limit) => {
    const cells = rs.filter((x) => x.flows === flows && x.v8 != null);
    if (!cells.length) return add(id, name, 'N/A', 'not measured');
    const w = cells.reduce((a, b) => (b.v8 > a.v8 ? b : a));
    add(id, name, w.v8 <= limit ? 'PASS' : 'MISS', `worst ${f1(w.v8)} ns (${w.case} ${WORKLOADS[w.workload]}); ${cells.map((x) => `${x.case} ${x.workload} ${f1(x.v8)}`).join(', ')}`);
  };
  speed('speed-4k', 'core in V8 ≤ 30 ns per packet with 4K live flows, keyed hash included (batch 1024)', 4096, 30);
  speed('speed-1m', 'core in V8 ≤ 60 ns per packet with 1M live flows, keyed hash included (batch 1024)', 1 << 20, 60);
  ratioTarget('v8-native', 'core batch path ≤ 1.15× native, in V8 (batch 1024)', 'v8_native', 1.15, true);
  ratioTarget('wasmtime-native', 'core batch path ≤ 1.3× native, in wasmtime (batch 1024)', 'wasmtime_native', 1.3, true);
  ratioTarget('reference', 'core batch path ≤ 1.5× the C reference, in V8 (batch 1024)', 'v8_reference', 1.5, true);
  ratioTarget('ts-port', '≥ 2× faster than the TypeScript port (batch 1024)', 'tsport_v8', 2, false);
  ratioTarget('idiomatic', '≥ 20× faster than the idiomatic Node approach (batch 1024)', 'idiomatic_v8', 20, false);
  {
    const w = worst(rs, 'b64_vs_1024', (a, b) => b > a);
    if (!w) add('batch64', 'batch 64 within 5% of batch 1024 per packet (V8)', 'N/A', 'not measured');
    else add('batch64', 'batch 64 within 5% of batch 1024 per packet (V8)', w.b64_vs_1024 <= 0.05 ? 'PASS' : 'MISS',
      `worst ${w.b64_vs_1024 >= 0 ? '+' : ''}${pct(w.b64_vs_1024)} (${w.case} ${WORKLOADS[w.workload]}); per-round (batch 64 − batch 1024) / batch 1024, median over rounds`);
  }
  {
    const k = r.maglev?.maglev?.find((x) => x.n === 1000 && x.m === 65537);
    if (!k) add('maglev-build', 'Maglev build N=1000, M=65537 ≤ 2 ms (V8)', 'N/A', 'not measured');
    else add('maglev-build', 'Maglev build N=1000, M=65537 ≤ 2 ms (V8)', k.perTableNs <= 2e6 ? 'PASS' : 'MISS',
      `${ms(k.perTableNs)} per table; setBackendHealth, which builds two, ${ms(k.rebuild.median)}`);
  }
  {
    const o = r.occupancy;
    if (!o) add('occupancy', 'a table filled to 90% with established flows evicts none', 'N/A', 'not measured');
    else {
      const upTo90 = o.filter((x) => x.load <= 0.9 + 1e-9);
      const bad = upTo90.filter((x) => x.evictions || x.untracked || x.lost);
      add('occupancy', 'a table filled to 90% with established flows evicts none', bad.length ? 'MISS' : 'PASS',
        `${o.map((x) => `${Math.round(x.load * 100)}%: ${x.evictions} evicted, ${x.untracked} untracked`).join('; ')} (capacity ${o[0].capacity.toLocaleString('en')})`);
    }
  }
  {
    const m = r.memory;
    if (!m) add('bytes-per-flow', '≤ 64 B per tracked flow, IPv6 included', 'N/A', 'not measured');
    else {
      const marg = Math.max(...m.perFlow.map((p) => p.bytesPerFlow1Mto4M));
      const first = Math.max(...m.perFlow.map((p) => p.bytesPerFlow4Kto1M));
      add('bytes-per-flow', '≤ 64 B per tracked flow, IPv6 included', Math.max(marg, first) <= 64.01 ? 'PASS' : 'MISS',
        `56 B per flow of capacity (a 64 B header line per 8 entries of 48 B); wasm memory grows ${marg.toFixed(2)} B per flow of capacity from 1M to 4M, ${first.toFixed(2)} B from 4K to 1M`);
    }
  }
  {
    const m = r.memory?.run;
    if (!m) {
      add('wasm-growth', 'zero wasm memory growth over 10M packets', 'N/A', 'not measured');
      add('heap-growth', 'JS heap growth < 64 KiB over 10M packets', 'N/A', 'not measured');
    } else {
      const g = m.wasmAfter - m.wasmBefore;
      add('wasm-growth', 'zero wasm memory growth over 10M packets', g === 0 && m.probeBefore === m.probeAfter ? 'PASS' : 'MISS',
        `${g} B over ${m.packets.toLocaleString('en')} packets; allocator probe ${m.probeBefore === m.probeAfter ? 'unmoved' : 'moved'}`);
      add('heap-growth', 'JS heap growth < 64 KiB over 10M packets', m.heapGrowth < 65536 ? 'PASS' : 'MISS',
        `${m.heapGrowth} B (heapUsed after eight forced collections, before and after)`);
    }
  }
  return t;
}

function table(header, lines) {
  return [`| ${header.join(' | ')} |`, `| ${header.map((h, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`, ...lines.map((l) => `| ${l.join(' | ')} |`)].join('\n');
}

function findings(root) {
  const file = join(root, 'bench', 'findings.md');
  if (!existsSync(file)) return {};
  const out = {};
  let id = null;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^## (\S+)/.exec(line);
    if (m) { id = m[1]; out[id] = []; continue; }
    if (id) out[id].push(line);
  }
  for (const k of Object.keys(out)) out[k] = out[k].join('\n').trim();
  return out;
}

function markdown(r, rs, ts, root) {
  const m = r.machine;
  const L = [];
  L.push('# haports benchmark results', '');
  L.push(`\`${r.command}\` — ${r.generatedAt.slice(0, 16).replace('T', ' ')} UTC, ${r.durationSeconds} s, mode ${r.mode}. Module \`build/haports.wasm\` sha256 \`${r.module.sha256.slice(0, 16)}…\` (${r.module.bytes} B) at commit ${m.gitHead}${m.assemblyDirty ? ' with uncommitted changes in assembly/' : ''}.`, '');
  L.push('## Machine', '');
  L.push(table(['', ''], [
    ['CPU', `${m.cpu} (family ${m.cpuFamily}, model ${m.cpuModel}, stepping ${m.cpuStepping})${m.virtualised ? ', virtualised' : ''}`],
    ['cores, memory', `${m.cores} cores, ${m.memoryGiB} GiB; caches ${m.cache}`],
    ['OS', m.os],
    ['Node / V8', `${m.node} / ${m.v8}`],
    ['wasmtime', m.wasmtime ? `${m.wasmtime} (PyPI wheel, ${m.python})` : 'not available'],
    ['native', m.gcc ? `${m.wasm2c} → ${m.gcc}, \`${m.cflags}\`` : 'not available'],
    ['C reference', m.referenceGcc ? `${m.referenceGcc}, \`${m.referenceCflags}\`` : 'not available'],
    ['AssemblyScript, hashring', `${m.assemblyscript}, ${m.hashring}`],
  ]), '');
  const skipped = r.settings.skipped ?? [];
  if (skipped.length) {
    const their = skipped.length > 1 ? 'Their columns are empty and their' : 'Its columns are empty and its';
    L.push(`> Left out of this run (\`HAPORTS_BENCH_SKIP\`): ${skipped.map((e) => ENGINES.find((k) => k.key === e)?.name.split(' (')[0] ?? e).join(', ')}. ${their} targets not measured.`, '');
  }
  const press = r.results.pressure.filter((p) => p.before != null);
  const busy = press.filter((p) => Math.max(p.before, p.after ?? 0) > 20);
  if (busy.length) {
    L.push(`> The machine was shared while this ran: CPU pressure (PSI \`some avg10\`) above 20% during ${busy.length} of ${press.length} steps (${busy.map((p) => p.step).slice(0, 6).join('; ')}${busy.length > 6 ? '; …' : ''}). Timings are process CPU time, which a descheduled process does not accumulate, but caches and memory bandwidth were shared too.`, '');
  }

  L.push('## Packet path', '');
  L.push(`Median ns per packet over ${r.settings.reps} samples of ${r.settings.iterPackets.toLocaleString('en')} packets (CPU time of the process: user + system), batch 1024, after warm-up; the engines of a case are sampled interleaved (one iteration of each in turn, each preceded by an untimed pass over the flows to refill the caches the previous engine used). Each case: one next-hop HA-ports rule (symmetric, floatingIp) over 8 backends, M = 65537; a flow table of capacity 4 × the live flows; raw IPv4/IPv6 TCP packets. *hits*: every packet belongs to a live flow (the timed set cycles through ${'min(flows, 131072)'} of them); *10% new flows*: one packet in ten is the SYN of a flow never seen. *C reference*: the same packet path written by hand in C for these cases (bench/reference/reference.c, see Method), so V8 ÷ reference is the core's distance to what this machine can do, of which V8 ÷ native (the core itself, translated by wasm2c and compiled by gcc) is the engine's share. Ratios (engine ÷ C reference, engine ÷ native, port ÷ core in V8) are the median of the per-round ratios: every round runs each engine once, one after the other, so a slow spell of the machine largely cancels out of each round's ratio (a ratio of the medians shown can differ slightly).`, '');
  L.push(table(
    ['case', 'traffic', 'C reference', 'native', 'V8', 'wasmtime', 'TS port', 'idiomatic Node', 'V8 ÷ reference', 'native ÷ reference', 'V8 ÷ native', 'wasmtime ÷ native', 'TS port ÷ V8', 'idiomatic ÷ V8'],
    rs.map((x) => [x.case, WORKLOADS[x.workload], f1(x.reference), f1(x.native), f1(x.v8), f1(x.wasmtime), f1(x.tsport), f1(x.idiomatic), f2(x.v8_reference), f2(x.native_reference), f2(x.v8_native), f2(x.wasmtime_native), f2(x.tsport_v8), f2(x.idiomatic_v8)]),
  ), '');
  // Engines whose CRC equals V8's are listed as agreeing; any other is named with its CRC.
  const short = (e) => ENGINES.find((k) => k.key === e)?.name.split(' (')[0] ?? e;
  const crcCases = Object.entries(r.crcs ?? {});
  const agree = crcCases.map(([c, x]) => {
    const same = Object.keys(x).filter((e) => x[e] === x.v8);
    const differ = Object.keys(x).filter((e) => x[e] !== x.v8);
    return `${c} \`${x.v8}\` (${same.map(short).join(' = ')}${differ.length ? `; differs: ${differ.map((e) => `${short(e)} \`${x[e]}\``).join(', ')}` : ''})`;
  });
  const allSame = crcCases.every(([, x]) => Object.values(x).every((v) => v === x.v8));
  if (agree.length) L.push(`${allSame ? 'Same decisions everywhere' : '**Not the same decisions everywhere** (see Errors)'}: CRC-32 of the verdict records of the population and check phase, ${agree.join('; ')}.`, '');
  const wt = Object.values(r.results.wasmtime)[0];
  if (wt) {
    L.push(`wasmtime is driven from Python (bench/wasmtime/driver.py): one call per batch of 1024 through the wheel's C-API binding \`wasmtime_func_call_unchecked\`; the host's own cost per batch (the same loop around \`processBatch(0)\`) is ${(wt.callOverheadNs / 1000).toFixed(1)} µs, ${(wt.callOverheadNs / 1024).toFixed(1)} ns per packet, and is included above. The bindings' friendly \`Func.__call__\` costs ${(wt.checkedCallNs / 1000).toFixed(0)} µs per call (it rebuilds the function type each time) and is not used.`, '');
  }
  if (rs.some((x) => x.hashCost != null)) {
    L.push('### The keyed hash', '');
    L.push('What SipHash-1-3 under the secret key costs per packet: the same core built with `--use HAPORTS_UNKEYED_HASH=1` (the old, unkeyed MurmurHash3-style mix, which can be steered: docs/flowtable.md) is sampled in the same rounds as V8; the difference is the median of the per-round differences. That variant decides differently (another hash) and is never compared.', '');
    L.push(table(['case', 'traffic', 'V8 (SipHash-1-3)', 'V8 (unkeyed mix)', 'keyed hash, ns per packet', 'share of the packet'],
      rs.filter((x) => x.hashCost != null).map((x) => [x.case, WORKLOADS[x.workload], f1(x.v8), f1(x.v8unkeyed), f1(x.hashCost), x.v8 ? pct(x.hashCost / x.v8) : '—'])), '');
  }
  L.push('### Batch size (V8; native and the C reference for comparison)', '');
  const v8call = Object.values(r.results.v8).map((x) => x.callOverheadNs).filter((x) => x != null);
  if (v8call.length) {
    const c = v8call.sort((a, b) => a - b)[v8call.length >> 1];
    L.push(`The Node host's own cost per batch (copying 64 descriptors and calling \`processBatch(0)\`, which processes nothing) is ${f1(c)} ns: ${(c / 64).toFixed(2)} ns per packet at batch 64, ${(c / 1024).toFixed(2)} at batch 1024, so batch 64 is expected to cost ${pct((c / 64 - c / 1024) / (r.table?.find((x) => x.case === r.cases[0].name && x.workload === 'hit')?.v8 ?? 60), 1)} more per packet than batch 1024 on ${r.cases[0].name}; differences beyond that are noise of this machine (native shows the same spread between its batch sizes).`, '');
  }
  L.push(table(
    ['case', 'traffic', 'V8 batch 1', 'V8 batch 64', 'V8 batch 1024', 'V8: 64 vs 1024', 'native batch 1', 'native batch 64', 'native batch 1024', 'native: 64 vs 1024', 'C reference batch 64', 'C reference batch 1024'],
    rs.map((x) => [x.case, WORKLOADS[x.workload], f1(x.v8_b1), f1(x.v8_b64), f1(x.v8), sgn(x.b64_vs_1024), f1(x.native_b1), f1(x.native_b64), f1(x.native), sgn(x.native_b64_vs_1024), f1(x.reference_b64), f1(x.reference)]),
  ), '');

  L.push('### V8 warm-up', '');
  const c0 = r.cases[0].name;
  const tier = r.results.tier;
  const v = tier.default?.timings;
  if (v && tier.turbofan && tier.liftoff) {
    const d = (a, b) => `${a / b >= 1 ? '+' : ''}${pct(a / b - 1)}`;
    L.push(`Timing starts when the median of the last ${r.settings.window} iterations is within ${pct(r.settings.tol, 0)} of the ${r.settings.window} before (at least ${r.settings.minWarm} iterations). On ${c0}, batch 1024: V8 with Liftoff only (\`--liftoff-only\`, the baseline tier) takes ${f1(tier.liftoff.timings['hit/1024'].median)} / ${f1(tier.liftoff.timings['mix/1024'].median)} ns per packet (hits / new-flow mix); TurboFan from the first call (\`--no-liftoff\`) ${f1(tier.turbofan.timings['hit/1024'].median)} / ${f1(tier.turbofan.timings['mix/1024'].median)}; the default tiering after warm-up ${f1(v['hit/1024'].median)} / ${f1(v['mix/1024'].median)} (${d(v['hit/1024'].median, tier.turbofan.timings['hit/1024'].median)} / ${d(v['mix/1024'].median, tier.turbofan.timings['mix/1024'].median)} from TurboFan-only; the three processes sampled interleaved). Warm-up iterations per cell of the main V8 runs: ${Object.values(r.results.v8).flatMap((x) => Object.values(x.timings ?? {}).map((t) => t.warmIters)).join(', ')}.`, '');
  }

  L.push('## Maglev', '');
  if (r.maglev) {
    const eng = r.maglevEngines ?? {};
    const row = (k) => {
      const n = eng.native?.find((x) => x.n === k.n && x.m === k.m);
      const w = eng.wasmtime?.find((x) => x.n === k.n && x.m === k.m);
      return [k.n, k.m, ms(k.rebuild.median), ms(k.perTableNs), n ? ms(n.median / 2) : '—', w ? ms(w.median / 2) : '—', ms(k.configureMedianNs)];
    };
    L.push('Build time, timed as `setBackendHealth(0, down)` / `(0, up)` alternately: each call rebuilds the pool\'s two tables (over all members, for failOpen, and over the members up) and swaps them in, so one table is half of it. `configure()` (JSON, compile, name hashing, both tables) for scale. Median of CPU time per call.', '');
    L.push(table(['N', 'M', 'setBackendHealth (V8)', 'per table (V8)', 'per table (native)', 'per table (wasmtime)', 'configure() (V8)'], r.maglev.maglev.map(row)), '');
    L.push('Distribution: table entries per backend (max and min over the mean M/N), and the share of flows (table slots, each an equal share of uniformly hashed flows) that change backend when one backend goes down, against the ideal 1/N (only that backend\'s own flows). Average over removing backends 0, N/3, 2N/3, N−1.', '');
    const ring = new Map((r.maglev.ring ?? []).map((x) => [x.n, x]));
    L.push(table(['N', 'M', 'max / mean', 'min / mean', 'moved', 'ideal 1/N', 'moved ÷ ideal', 'hashring max / mean', 'hashring moved'],
      r.maglev.maglev.map((k) => [k.n, k.m, k.maxOverMean.toFixed(4), k.minOverMean.toFixed(4), pct(k.movedShare, 3), pct(k.ideal, 3), f2(k.movedShare / k.ideal),
        k.m === 65537 && ring.get(k.n) ? ring.get(k.n).maxOverMean.toFixed(3) : '', k.m === 65537 && ring.get(k.n) ? pct(ring.get(k.n).movedShare, 3) : ''])), '');
    if (r.maglev.ring?.length) L.push(`hashring (the idiomatic version's ring, 160 points per backend, md5): over ${r.maglev.ring[0].keys.toLocaleString('en')} random flow keys.`, '');
  }

  if (r.occupancy) {
    L.push('## Flow-table occupancy', '');
    L.push(`A table of ${r.occupancy[0].capacity.toLocaleString('en')} entries filled with established TCP flows (each a SYN, then an ACK) to each load, then every flow looked up again (bench/lib/occupancy.mjs). Two candidate buckets per key and cuckoo moves (docs/flowtable.md): a flow is evicted or left untracked only when both of its buckets, and the buckets their entries could move to, are full of established flows.`, '');
    L.push(table(['load', 'established flows', 'evicted', 'untracked', 'entries moved to their other bucket', 'flows not found again'],
      r.occupancy.map((x) => [`${Math.round(x.load * 100)}%`, x.flows.toLocaleString('en'), x.evictions, x.untracked, x.moves.toLocaleString('en'), x.lost])), '');
  }
  L.push('## Memory', '');
  if (r.memory) {
    const mm = r.memory;
    L.push(table(['', 'IPv4', 'IPv6'], [
      ['wasm memory, flow capacity 4K / 1M / 4M', ...mm.perFlow.map((p) => `${(p.mem4K / 2 ** 20).toFixed(1)} / ${(p.mem1M / 2 ** 20).toFixed(1)} / ${(p.mem4M / 2 ** 20).toFixed(1)} MiB`)],
      ['growth per flow of capacity, 4K → 1M', ...mm.perFlow.map((p) => `${p.bytesPerFlow4Kto1M.toFixed(2)} B`)],
      ['growth per flow of capacity, 1M → 4M', ...mm.perFlow.map((p) => `${p.bytesPerFlow1Mto4M.toFixed(2)} B`)],
    ]), '');
    L.push('A flow costs 56 B of table for either family: buckets of a 64-byte header line (tags, states, idle timeouts, last-seen times) and eight 48-byte entries (a key of five 64-bit words, IPv4 addresses zero-extended, then rule, backend and link). The table is taken with `memory.grow` in whole pages when the configuration is applied, outside the allocator\'s heap, so memory grows by exactly that (docs/flowtable.md).', '');
    if (mm.fill) L.push(`Offering ${mm.fill.capacity.toLocaleString('en')} distinct IPv6 flows (one ACK each, so none is established) to a table of capacity ${mm.fill.capacity.toLocaleString('en')}: ${mm.fill.tracked.toLocaleString('en')} tracked (${pct(mm.fill.tracked / mm.fill.capacity)}), wasm memory ${mm.fill.memBefore === mm.fill.memAfter ? 'unchanged' : `${mm.fill.memBefore} → ${mm.fill.memAfter}`} while filling.`, '');
    const run = mm.run;
    L.push(`${run.packets.toLocaleString('en')} packets through the Node binding (\`Core.process\`, batches of 1024; IPv4 then IPv6, 1 in 10 a new flow, ${run.newFlows.toLocaleString('en')} new flows, ${run.evictions.toLocaleString('en')} evictions, ${run.hits.toLocaleString('en')} hits): wasm memory ${run.wasmBefore} → ${run.wasmAfter} B, allocator probe ${run.probeBefore} → ${run.probeAfter}, JS heap (heapUsed after eight forced collections, \`--expose-gc\`) ${run.heapBefore} → ${run.heapAfter} B (${run.heapGrowth >= 0 ? '+' : ''}${run.heapGrowth} B).`, '');
  }
  const idio = Object.values(r.results.idiomatic).filter((x) => x.heapPerFlow != null).sort((a, b) => b.populated - a.populated)[0];
  if (idio) L.push(`For scale, the idiomatic version's Map holds a flow in ${idio.heapPerFlow.toFixed(0)} B of JS heap (string key and entry object; measured over its ${idio.populated.toLocaleString('en')}-flow population).`, '');

  L.push('## Targets', '');
  L.push('Reported, never asserted: the issue\'s targets against this run.', '');
  L.push(table(['target', 'result', 'measured'], ts.map((t) => [t.name, `**${t.status}**`, t.value])), '');
  const notes = findings(root);
  const missed = ts.filter((t) => t.status === 'MISS');
  if (missed.length) {
    L.push('## What limits the missed targets', '');
    for (const t of missed) {
      L.push(`### ${t.name}`, '');
      L.push(notes[t.id] ?? '_No analysis recorded for this target yet (bench/findings.md)._', '');
    }
  }
  if (notes.general) L.push('## Notes', '', notes.general, '');
  if (r.errors.length) L.push('## Errors', '', ...r.errors.map((e) => `- ${e}`), '');
  L.push('## Method', '');
  L.push([
    'Every engine processes byte-identical packets in the same order: the corpus is written once to files (bench/lib/corpus.mjs) and each engine runs in its own process (V8 workers, the C driver, the Python driver). Per case: populate the flow table with one ACK per live flow (tracked unverified, at a clock 1 s earlier, so that each flow\'s first timed packet establishes it: the timed hits are hits on established flows), run a check phase (40,960 packets of the new-flow mix), then time.',
    'Decisions are checked before anything is timed: the CRC-32 of every verdict record of the population and check phase must be equal for V8, wasmtime, native and the C reference (a C reference that differs is not sampled, and the run reports the error), and the TypeScript port must produce the same verdict and tuple records as the core, packet by packet, or the run reports nothing.',
    'The C reference (bench/reference/reference.c, gcc -O3) is the packet path of these cases written by hand in C for speed, not a translation of the core: the same parse and length checks, symmetric flow key, SipHash-1-3, flow table (bucket header lines, tags, two buckets, cuckoo moves, admission, eviction) and Maglev table as the core, giving byte-identical verdict and tuple records, but with every stage inlined, the packet\'s state in locals, SSE2 tag compares and `__builtin_prefetch` (which wasm lacks) for the entries. A batch runs in groups of 16 packets in four passes: parse and hash; load each first bucket\'s header line in a loop of nothing else; compare its tags and prefetch the matching entry (or the second bucket\'s header line); decide. The flow table is mapped with 4 KiB pages like the engines\' wasm memories (\`HAPORTS_REF_HUGEPAGES=1\` asks for transparent huge pages instead). It implements only what these cases reach (raw IPv4/IPv6 TCP, one floating-IP HA-ports rule on the ingress frontend, every backend up) and stops on anything else rather than decide differently; it is driven through the same files, streams, batches and serve protocol as the native driver.',
    'Timing (bench/lib/harness.mjs; the drivers do the same): an iteration is a fixed number of packets; warm-up runs iterations until the median of the last few is within the tolerance of the few before; batch sizes are then sampled interleaved. The time is the process\'s CPU time (user + system, all threads): the machine may be shared, and a descheduled process keeps its wall clock running but not its CPU clock. Wall-clock medians are in the JSON.',
    'The host\'s per-batch work is part of every number: writing the batch\'s descriptors (a copy of 8 B per packet) and, in the new-flow mix, rewriting the source address of 512 new-flow slots every 5,120 packets.',
  ].join('\n\n'), '');
  return L.join('\n');
}

// ---- SVG ---------------------------------------------------------------------------------

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function svg(r, rs) {
  const engines = ENGINES.filter((e) => rs.some((x) => x[e.key] != null));
  const values = rs.flatMap((x) => engines.map((e) => x[e.key])).filter((x) => x != null && x > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(...values)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...values)));
  const left = 150, right = 60, top = 66, barH = 9, gap = 1, groupGap = 12, width = 900;
  const plotW = width - left - right;
  const groupH = engines.length * (barH + gap) + groupGap;
  // The legend, in as many rows as the engines' names need.
  const legend = [];
  let legendRows = 1;
  for (let i = 0, lx = left; i < engines.length; i++) {
    const w = 28 + engines[i].name.length * 6;
    if (lx > left && lx + w - 14 > width - 10) { lx = left; legendRows++; }
    legend.push({ e: engines[i], x: lx, row: legendRows - 1 });
    lx += w;
  }
  const height = top + rs.length * groupH + 70 + (legendRows - 1) * 16;
  const x = (v) => left + (Math.log10(v / lo) / Math.log10(hi / lo)) * plotW;
  const o = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="11">`);
  o.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  o.push(`<text x="${left}" y="20" font-size="14" font-weight="bold">haports: ns per packet, batch 1024 (median CPU time, log scale; shorter is faster)</text>`);
  o.push(`<text x="${left}" y="36" fill="#555">${esc(`${r.machine.cpu}, ${r.machine.cores} cores · Node ${r.machine.node} · wasmtime ${r.machine.wasmtime ?? '—'} · ${r.machine.gcc ?? ''} · ${r.generatedAt.slice(0, 10)}`)}</text>`);
  for (let d = lo; d <= hi; d *= 10) {
    for (const k of [1, 2, 5]) {
      const v = d * k;
      if (v > hi) break;
      const xx = x(v).toFixed(1);
      o.push(`<line x1="${xx}" y1="${top - 6}" x2="${xx}" y2="${top + rs.length * groupH - groupGap}" stroke="${k === 1 ? '#bbb' : '#e6e6e6'}" stroke-width="1"/>`);
      o.push(`<text x="${xx}" y="${top - 9}" text-anchor="middle" fill="#555">${v >= 1000 ? `${v / 1000} µs` : `${v} ns`}</text>`);
    }
  }
  rs.forEach((row, g) => {
    const y0 = top + g * groupH;
    o.push(`<text x="${left - 8}" y="${y0 + (engines.length * (barH + gap)) / 2 - 2}" text-anchor="end" font-weight="bold">${esc(row.case)}</text>`);
    o.push(`<text x="${left - 8}" y="${y0 + (engines.length * (barH + gap)) / 2 + 11}" text-anchor="end" fill="#555">${esc(WORKLOADS[row.workload])}</text>`);
    engines.forEach((e, i) => {
      const v = row[e.key];
      const y = y0 + i * (barH + gap);
      if (v == null) return;
      const w = Math.max(1, x(v) - left);
      o.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${e.color}"><title>${esc(`${e.name}: ${f1(v)} ns/packet`)}</title></rect>`);
      o.push(`<text x="${(left + w + 3).toFixed(1)}" y="${y + barH - 1}" font-size="9" fill="#333">${f1(v)}</text>`);
    });
  });
  const ly = top + rs.length * groupH + 10;
  for (const { e, x: lx, row } of legend) {
    o.push(`<rect x="${lx}" y="${ly + row * 16}" width="10" height="10" fill="${e.color}"/>`);
    o.push(`<text x="${lx + 14}" y="${ly + row * 16 + 9}">${esc(e.name)}</text>`);
  }
  o.push(`<text x="${left}" y="${ly + (legendRows - 1) * 16 + 30}" fill="#555">${esc(`${r.command} · ${r.cases.map((c) => c.name).join(', ')}: IPv4/IPv6 × live flows; flow table capacity 4 × flows`)}</text>`);
  o.push('</svg>');
  return o.join('\n') + '\n';
}

/** Writes PREFIX.json, PREFIX.md, PREFIX.svg; returns their paths (the .md first). */
export function writeReport(r, prefix, { root }) {
  mkdirSync(dirname(prefix), { recursive: true });
  const rs = rows(r);
  const ts = targets(r, rs);
  const full = { ...r, table: rs, targets: ts };
  writeFileSync(`${prefix}.json`, JSON.stringify(full, null, 1) + '\n');
  writeFileSync(`${prefix}.md`, markdown(full, rs, ts, root));
  writeFileSync(`${prefix}.svg`, svg(full, rs));
  return [`${prefix}.md`, `${prefix}.json`, `${prefix}.svg`];
}
