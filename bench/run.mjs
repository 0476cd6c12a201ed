#!/usr/bin/env node
// The benchmark suite (issue 3): the core's packet path in V8, under wasmtime and as the
// native ceiling (wasm2c + gcc -O3), beside the C reference (the same packet path written
// by hand in C for speed, issue 10), a plain TypeScript port and the idiomatic Node
// approach; Maglev build time, distribution quality and memory. Writes a Markdown table,
// JSON and an SVG chart under bench/results/.
//
//   npm run bench [-- --quick | --full] [--out PREFIX] [--verbose] [--keep]
//   node bench/run.mjs ...            (the same; `main` is exported for `haports bench`)
//
// Progress goes to stderr. Exit status: 0 done (targets are reported, never asserted),
// 1 a step failed, an engine's verdict CRC differs from the core's in V8 (reported as an
// error), or the TypeScript port decided differently from the core (then nothing is
// reported), 2 usage.

import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildCase, writeCase } from './lib/corpus.mjs';
import { finish, MODES } from './lib/harness.mjs';
import { EngineProc, sampleInterleaved } from './lib/session.mjs';
import { cpuPressure, describeMachine } from './lib/machine.mjs';
import { writeReport } from './lib/report.mjs';
import { buildNative, buildPort, buildReference, buildUnkeyedWasm, ensureHost, ensureWasm, ensureWasmtime, OUT, ROOT } from './lib/setup.mjs';
import { measureOccupancy } from './lib/occupancy.mjs';

const USAGE = `usage: node bench/run.mjs [--quick | --full] [--out PREFIX] [--verbose] [--keep]
       node bench/run.mjs --report RESULTS.json   (render RESULTS.md/.svg again, e.g. after
                                                  editing bench/findings.md)

  (default)   every case, ${MODES.default.reps} samples per cell: a few minutes
  --quick     a smoke run under a minute: fewer, shorter samples; the idiomatic
              Node version skips the 1M-flow tables, Maglev only M = 65537; results
              go to bench/results/quick.local.*
  --full      more and longer samples
  --out P     write P.md, P.json, P.svg (default bench/results/latest, quick: quick.local)
  --verbose   every warm-up and sample line of every engine
  --keep      keep the generated corpus in build/bench/work

environment:
  HAPORTS_BENCH_OUT=DIR        corpus, native and C reference builds in DIR instead
                               of build/bench
  HAPORTS_BENCH_SKIP=E1,E2     leave engines out of this run: v8 is always run; the
                               others are native, wasmtime, reference, tsport, idiomatic
                               (e.g. tsport while the port is being rewritten); the
                               report names what was left out
  HAPORTS_BENCH_NO_BUILD=1     benchmark build/haports.wasm and build/host as they are,
                               never rebuild them (when others are editing assembly/)
  HAPORTS_BENCH_CFLAGS, HAPORTS_BENCH_REF_CFLAGS
                               gcc flags of the native build and of the C reference
                               (default -O3)
  HAPORTS_BENCH_NO_INSTALL=1   do not apt/pip-install missing tools
`;

const ENGINES = ['v8', 'native', 'wasmtime', 'reference', 'tsport', 'idiomatic'];

/** Engines left out by HAPORTS_BENCH_SKIP (v8, the core itself, cannot be). */
function skippedEngines() {
  const names = (process.env.HAPORTS_BENCH_SKIP ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  for (const n of names) {
    if (!ENGINES.includes(n) || n === 'v8') throw new Error(`HAPORTS_BENCH_SKIP: unknown or required engine ${n}`);
  }
  return names;
}

const CASES = [[4, 4096], [6, 4096], [4, 1 << 20], [6, 1 << 20]];
const CHECK_PACKETS = 40960;
const BATCHES = [1024, 64, 1];

function parseArgs(argv) {
  const o = { mode: 'default', out: null, verbose: false, keep: false, help: false, report: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') o.mode = 'quick';
    else if (a === '--full') o.mode = 'full';
    else if (a === '--verbose' || a === '-v') o.verbose = true;
    else if (a === '--keep') o.keep = true;
    else if (a === '--out') o.out = argv[++i];
    else if (a === '--report') o.report = argv[++i];
    else if (a === '-h' || a === '--help') o.help = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (o.out === undefined) throw new Error('--out needs a value');
  return o;
}

export async function main(argv) {
  let opts;
  try {
    opts = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`${e.message}\n${USAGE}`);
    return 2;
  }
  if (opts.help) { process.stdout.write(USAGE); return 0; }
  let skipped;
  try {
    skipped = skippedEngines();
  } catch (e) {
    process.stderr.write(`${e.message}\n${USAGE}`);
    return 2;
  }
  const use = (engine) => !skipped.includes(engine);
  if (opts.report) {
    const { table, targets, ...r } = JSON.parse(readFileSync(opts.report, 'utf8'));
    const files = writeReport(r, opts.report.replace(/\.json$/, ''), { root: ROOT });
    process.stderr.write(`rendered ${files.join(', ')}\n`);
    return 0;
  }
  const mode = MODES[opts.mode];
  const outPrefix = opts.out ?? join(ROOT, 'bench', 'results', opts.mode === 'quick' ? 'quick.local' : 'latest');
  const started = Date.now();
  const elapsed = () => { const s = Math.round((Date.now() - started) / 1000); return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`; };
  const say = (s) => process.stderr.write(`${s}\n`);

  // ---- Setup ------------------------------------------------------------------------
  say(`haports bench (${opts.mode}): setting up${skipped.length ? ` (left out: ${skipped.join(', ')})` : ''}`);
  const wasm = ensureWasm();
  ensureHost();
  const portModule = await buildPort();
  const tools = {};
  try { tools.native = buildNative(wasm); } catch (e) { tools.native = { error: `native build failed: ${e.message.split('\n')[0]}` }; }
  if (tools.native.error) say(`setup: no native ceiling: ${tools.native.error}`);
  try { tools.reference = buildReference(); } catch (e) { tools.reference = { error: `C reference build failed: ${e.message.split('\n')[0]}` }; }
  if (tools.reference.error) say(`setup: no C reference: ${tools.reference.error}`);
  tools.unkeyed = buildUnkeyedWasm(wasm);
  if (tools.unkeyed.error) say(`setup: no unkeyed variant (the keyed hash's cost is not shown): ${tools.unkeyed.error}`);
  tools.wasmtime = ensureWasmtime();
  if (tools.wasmtime.error) say(`setup: no wasmtime: ${tools.wasmtime.error}`);
  const machine = describeMachine(ROOT, tools);
  const work = join(OUT, 'work');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const cases = CASES.map(([family, flows]) => {
    const c = buildCase(family, flows);
    const dir = join(work, c.name);
    writeCase(dir, c, CHECK_PACKETS);
    return { name: c.name, family, flows, capacity: c.capacity, timed: c.C, L: c.L, dir };
  });
  say(`setup: corpus of ${cases.map((c) => c.name).join(', ')} in ${elapsed()}`);

  // ---- Steps --------------------------------------------------------------------------
  const results = { v8: {}, v8unkeyed: {}, native: {}, wasmtime: {}, reference: {}, tsport: {}, idiomatic: {}, tier: {}, pressure: [] };
  const errors = [];
  const steps = [];
  // One session per case: every engine is started, set up (populate, check phase) and
  // warmed up in turn, then all of them are sampled interleaved (bench/lib/session.mjs).
  const fast = ['native', 'v8', 'v8unkeyed', 'wasmtime', 'reference', 'tsport'];
  const spec = (c, engine, flags = []) => {
    const wv = (bs) => ['hit', 'mix'].flatMap((w) => bs.map((b) => `${w}/${b}`));
    const warm = [mode.minWarm, mode.maxWarm, mode.window, mode.tol].map(String);
    const iter = fast.includes(engine) ? mode.iterPackets : mode.slowIterPackets;
    const base = { engine, packets: iter, rewarm: Math.min(c.timed, iter / 4) };
    if (engine === 'native') {
      const variants = wv(BATCHES);
      return { ...base, variants, cmd: tools.native.exe, args: ['serve', c.dir, String(iter), ...warm, variants.join(',')] };
    }
    if (engine === 'reference') {
      // Started after V8 in every session: its READY CRC is checked against V8's before sampling.
      const variants = wv([1024, 64]);
      return { ...base, variants, checkCrc: true, cmd: tools.reference.exe, args: ['serve', c.dir, String(iter), ...warm, variants.join(',')] };
    }
    if (engine === 'wasmtime') {
      const variants = wv([1024]);
      return { ...base, variants, cmd: 'python3', args: [tools.wasmtime.driver, 'serve', wasm.path, c.dir, String(iter), ...warm, variants.join(',')] };
    }
    const variants = wv(engine === 'v8' || engine.startsWith('tier') ? (engine === 'v8' ? BATCHES : [1024]) : [1024]);
    // v8unkeyed: the core with its hash unkeyed (the keyed hash's cost); other decisions, never compared.
    const core = engine === 'v8' || engine === 'v8unkeyed' || engine.startsWith('tier');
    const task = core ? 'core' : engine;
    const argsFile = join(work, `${engine}-${c.name}.args.json`);
    writeFileSync(argsFile, JSON.stringify({
      wasm: engine === 'v8unkeyed' ? tools.unkeyed.path : wasm.path, module: portModule, case: c.dir, dump: engine === 'v8', variants, mode,
    }));
    return { ...base, variants, cmd: process.execPath, args: [...flags, join(ROOT, 'bench', 'lib', 'worker.mjs'), task, argsFile] };
  };
  for (const c of cases) {
    const engines = ['v8'];
    if (!tools.unkeyed.error) engines.push('v8unkeyed');
    if (!tools.native.error && use('native')) engines.push('native');
    if (!tools.wasmtime.error && use('wasmtime')) engines.push('wasmtime');
    if (!tools.reference.error && use('reference')) engines.push('reference');
    if (use('tsport')) engines.push('tsport');
    if (!(opts.mode === 'quick' && c.flows > 65536) && use('idiomatic')) engines.push('idiomatic');
    steps.push({
      label: `${c.name}: ${engines.join(', ')}`, kind: 'session', c,
      run: (progress) => session(c, engines.map((e) => spec(c, e, e === 'idiomatic' ? ['--expose-gc'] : [])), progress),
    });
  }
  // V8's tiers on the first case, interleaved the same way: the default tiering,
  // TurboFan from the first call, Liftoff (the baseline tier) only.
  const tierCase = cases[0];
  steps.push({
    label: `${tierCase.name}: V8 tiers (default, --no-liftoff, --liftoff-only)`, kind: 'tiers',
    run: (progress) => session(tierCase, [
      spec(tierCase, 'tier-default'), spec(tierCase, 'tier-turbofan', ['--no-liftoff']), spec(tierCase, 'tier-liftoff', ['--liftoff-only']),
    ], progress, Math.max(5, Math.ceil(mode.reps / 2))),
  });

  /** Starts the engines one by one (each sets up and warms up alone), then samples. */
  async function session(c, specs, progress, reps = mode.reps) {
    const started = [];
    const out = {};
    try {
      for (const sp of specs) {
        const proc = new EngineProc(sp.engine, sp.cmd, sp.args, { verbose: opts.verbose });
        started.push({ ...sp, proc });
        progress(`${sp.engine} setting up`);
        const info = await proc.ready();
        out[sp.engine] = { ...info };
        // The C reference must decide as the core does: the same CRC as V8 (started first).
        if (sp.checkCrc && out.v8?.crc && info.crc !== out.v8.crc) {
          out[sp.engine].mismatches = [`verdict CRC ${info.crc} differs from V8's ${out.v8.crc}: not sampled`];
          started.pop();
          proc.kill();
          await proc.exit;
        } else if (info.mismatches?.length) {
          started.pop();
          await proc.exit;
        }
      }
      progress(`sampling ${started.map((e) => e.engine).join(', ')} interleaved`);
      const timings = await sampleInterleaved(started, reps, (r) => progress(`sample ${r}/${reps}`));
      for (let i = 0; i < started.length; i++) {
        const e = started[i];
        for (const [k, t] of Object.entries(timings[i])) Object.assign(t, out[e.engine].warm?.[k] ?? {});
        out[e.engine].timings = timings[i];
        Object.assign(out[e.engine], await e.proc.end());
      }
    } finally {
      for (const e of started) e.proc.kill();
    }
    return out;
  }
  const maglevSizes = opts.mode === 'quick' ? [65537] : [65537, 655373];
  const maglevBackends = [10, 100, 1000];
  const maglevMode = { reps: opts.mode === 'quick' ? 5 : opts.mode === 'full' ? 31 : 15, minWarm: 6, maxWarm: 60, window: 3, tol: 0.05 };
  steps.push({
    label: 'Maglev build and distribution (V8)', engine: 'maglev',
    run: () => runWorker('maglev', {
      wasm: wasm.path, sizes: maglevSizes, backends: maglevBackends, configureReps: opts.mode === 'quick' ? 3 : 7,
      ringKeys: opts.mode === 'quick' ? 20000 : 200000, mode: maglevMode,
    }, [], opts),
  });
  const { benchConfig } = await import('./lib/corpus.mjs');
  const maglevConfigs = [];
  for (const m of maglevSizes) {
    for (const n of maglevBackends) {
      const file = join(work, `maglev-${n}-${m}.json`);
      writeFileSync(file, JSON.stringify(benchConfig({ family: 4, capacity: 16, backends: n, m })));
      maglevConfigs.push({ m, n, file });
    }
  }
  for (const eng of ['native', 'wasmtime']) {
    if (tools[eng].error || !use(eng)) continue;
    steps.push({
      label: `Maglev build (${eng})`, engine: `maglev-${eng}`,
      run: async () => {
        const out = [];
        for (const { m, n, file } of maglevConfigs) {
          const reps = String(maglevMode.reps + 4);
          const r = eng === 'native'
            ? await runDriver(tools.native.exe, ['maglev', file, reps], opts)
            : await runDriver('python3', [tools.wasmtime.driver, 'maglev', wasm.path, file, reps], opts);
          out.push({ ...finish({ samples: r.samples.slice(4) }), m, n });
        }
        return out;
      },
    });
  }
  const occupancyCapacity = opts.mode === 'quick' ? 1 << 16 : 1 << 20;
  steps.push({
    label: `flow-table occupancy: established flows to 25–95% of ${occupancyCapacity} entries`, engine: 'occupancy',
    run: async () => measureOccupancy(occupancyCapacity),
  });
  steps.push({
    label: 'memory: bytes per flow, 10M packets through the Node binding', engine: 'memory',
    run: () => runWorker('memory', {
      wasm: wasm.path, binding: join(ROOT, 'build', 'host', 'core.mjs'),
      cases: [cases[0].dir, cases[1].dir], fillCase: cases[3].dir, packets: 10_000_000,
    }, ['--expose-gc'], opts),
  });

  // ---- Run --------------------------------------------------------------------------------
  let maglev = null;
  const maglevEngines = {};
  let memory = null;
  let occupancy = null;
  for (let i = 0; i < steps.length; i++) {
    const st = steps[i];
    const p0 = cpuPressure();
    const t0 = Date.now();
    const head = `[${String(i + 1).padStart(2)}/${steps.length}] ${st.label}`;
    say(`${head} (${elapsed()})`);
    const tty = process.stderr.isTTY;
    const progress = (msg) => {
      if (tty) process.stderr.write(`\r\x1b[K    ${elapsed()} ${msg}`);
      else if (!/^sample \d/.test(msg) || /sample (\d+)\//.exec(msg)[1] % 5 === 0) say(`    ${elapsed()} ${msg}`);
    };
    let r;
    try {
      r = await st.run(progress);
      if (tty) process.stderr.write('\r\x1b[K');
    } catch (e) {
      errors.push(`${st.label}: ${e.message}`);
      say(`    FAILED: ${e.message}`);
      continue;
    }
    const p1 = cpuPressure();
    results.pressure.push({ step: st.label, seconds: (Date.now() - t0) / 1000, before: p0?.avg10 ?? null, after: p1?.avg10 ?? null });
    if (st.kind === 'session') {
      for (const [engine, rec] of Object.entries(r)) {
        results[engine][st.c.name] = rec;
        if (engine === 'tsport' && rec.mismatches?.length) {
          errors.push(`TS port ${st.c.name}: decisions differ from the core: ${rec.mismatches.join('; ')}`);
          say(`    REFUSED: the TypeScript port decided differently from the core (${rec.mismatches[0]})`);
        }
        if (engine === 'reference' && rec.mismatches?.length) say(`    ERROR: the C reference decided differently from the core (${rec.mismatches[0]})`);
      }
      for (const [engine, rec] of Object.entries(r)) {
        const t = rec.timings ?? {};
        const brief = Object.entries(t).filter(([k]) => k.endsWith('/1024')).map(([k, v]) => `${k.split('/')[0]} ${v.median.toFixed(1)}`).join(', ');
        if (brief) say(`    ${engine.padEnd(9)} ${brief} ns/pkt${engine === 'v8' ? ` (hits at batch 64: ${t['hit/64']?.median.toFixed(1)}, batch 1: ${t['hit/1']?.median.toFixed(1)})` : ''}`);
      }
    } else if (st.kind === 'tiers') {
      for (const [engine, rec] of Object.entries(r)) results.tier[engine.slice(5)] = rec;
      say(`    ${Object.entries(r).map(([e, x]) => `${e.slice(5)} ${x.timings['hit/1024'].median.toFixed(1)} / ${x.timings['mix/1024'].median.toFixed(1)}`).join(', ')} ns/pkt (hits / mix)`);
    } else if (st.engine === 'maglev') {
      maglev = r;
      const k = r.maglev.find((x) => x.n === 1000 && x.m === 65537);
      say(`    N=1000 M=65537: ${(k.perTableNs / 1e6).toFixed(2)} ms per table (${(k.rebuild.median / 1e6).toFixed(2)} ms per setBackendHealth)`);
    } else if (st.engine.startsWith('maglev-')) {
      maglevEngines[st.engine.slice(7)] = r;
    } else if (st.engine === 'occupancy') {
      occupancy = r;
      say(`    ${r.map((x) => `${Math.round(x.load * 100)}%: ${x.evictions} evicted, ${x.untracked} untracked, ${x.lost} lost`).join('; ')}`);
    } else if (st.engine === 'memory') {
      memory = r;
      say(`    wasm ${r.run.wasmBefore} → ${r.run.wasmAfter} B, JS heap +${r.run.heapGrowth} B over ${r.run.packets} packets`);
    }
  }

  // Same module, same decisions: the verdict CRC of population + check phase per engine.
  const crcs = {};
  for (const c of cases) {
    crcs[c.name] = {};
    for (const e of ['v8', 'native', 'wasmtime', 'reference', 'tsport']) if (results[e][c.name]?.crc) crcs[c.name][e] = results[e][c.name].crc;
    const ref = crcs[c.name].v8;
    for (const [e, x] of Object.entries(crcs[c.name])) {
      if (ref && x !== ref) errors.push(`${e} ${c.name}: verdict CRC ${x} differs from V8's ${ref}`);
    }
  }
  const refused = errors.some((e) => e.startsWith('TS port') || e.startsWith('tsport'));
  if (refused) {
    say('\nNot reporting: the TypeScript port must make the same decision as the core for every packet of the corpus.');
    for (const e of errors) say(`  ${e}`);
    return 1;
  }
  const report = {
    schema: 1, generatedAt: new Date().toISOString(), mode: opts.mode,
    command: `npm run bench${opts.mode === 'default' ? '' : ` -- --${opts.mode}`}`,
    durationSeconds: Math.round((Date.now() - started) / 1000),
    machine, module: { sha256: wasm.sha256, bytes: wasm.bytes },
    settings: { ...mode, batches: BATCHES, checkPackets: CHECK_PACKETS, skipped },
    cases: cases.map(({ dir, ...c }) => c),
    results, crcs, maglev, maglevEngines, memory, occupancy, errors,
  };
  const files = writeReport(report, outPrefix, { root: ROOT });
  if (!opts.keep) rmSync(work, { recursive: true, force: true });
  say(`\ndone in ${elapsed()}: ${files.join(', ')}`);
  process.stdout.write(readFileSync(files[0], 'utf8'));
  return errors.length ? 1 : 0;
}

// ---- Child processes ------------------------------------------------------------------------

function collect(child, opts, what) {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout?.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => {
      err += d;
      if (opts.verbose) process.stderr.write(d);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`${what} exited with ${code}: ${err.trim().split('\n').slice(-5).join(' | ')}`));
      else resolve(out);
    });
  });
}

let seq = 0;
async function runWorker(task, args, flags, opts) {
  const base = join(OUT, 'work', `${task}-${process.pid}-${seq++}`);
  writeFileSync(`${base}.args.json`, JSON.stringify(args));
  const child = spawn(process.execPath, [...flags, join(ROOT, 'bench', 'lib', 'worker.mjs'), task, `${base}.args.json`, `${base}.out.json`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  await collect(child, opts, `worker ${task}`);
  return JSON.parse(readFileSync(`${base}.out.json`, 'utf8'));
}

async function runDriver(cmd, args, opts) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = await collect(child, opts, cmd.split('/').pop());
  return JSON.parse(out);
}


if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
