// Pump throughput: the real pump (balancing through the core) against a pass-through
// pump (same sockets, decapsulation, queue, batches and sends; no core), in one run.
//
//   sudo node bench/pump/run.mjs [--reps 3] [--measure 2] [--out bench/results/pump.md]
//
// Set-up (a private network namespace, removed at the end): the pump listens on
// 10.212.0.1 (a veth); the load generator (bench/pump/gen.c, sendmmsg) runs in the same
// namespace and sends to it over loopback, so the kernel's receive processing is paid
// on the generator's CPU; the appliances 10.212.0.10-12 are reached through the veth,
// whose egress qdisc is `blackhole`, with static neighbour entries: every datagram the
// pump sends goes through the whole UDP/IP/neighbour path and is dropped at the qdisc,
// so no receiver costs anything. With two or more CPUs the generator is pinned to CPU 0
// and the pumps to CPU 1. The generator offers more than the pump can take (saturation);
// the pump's throughput is the datagrams it sent per second of a measuring window; the
// kernel drops the excess at the pump's socket. Both pumps run all along, in separate
// processes, each on its own port; only one receives traffic at a time, in alternating
// windows (A B A B …) after a warm-up window each, so that drift falls on both alike.
// A second measurement offers a fixed rate below saturation and reports CPU time per
// datagram.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '5' }, measure: { type: 'string', default: '2' }, warm: { type: 'string', default: '1' },
    out: { type: 'string', default: join(root, 'bench/results/pump.md') }, rate: { type: 'string', default: '50000' },
    from: { type: 'string' },
  },
});
// --from RESULTS.json rewrites the report of an earlier run without measuring again.
const previous = values.from ? JSON.parse(readFileSync(values.from, 'utf8')) : null;
const REPS = Number(values.reps);
const MEASURE = Number(values.measure);
const WARM = Number(values.warm);
const FIXED_RATE = Number(values.rate);
const NS = `hpb${process.pid}`;
const PUMP_IP = '10.212.0.1';
const APPLIANCES = ['10.212.0.10', '10.212.0.11', '10.212.0.12'];
const PORTS = { balance: 4789, pass: 4790 };
const sh = (...args) => execFileSync(args[0], args.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const multiCore = cpus().length >= 2;
const pin = (cpu, argv) => (multiCore ? ['taskset', '-c', String(cpu), ...argv] : argv);
const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));

if (!previous && process.getuid?.() !== 0) {
  console.error('bench/pump: needs root (ip netns); skipped');
  process.exit(0);
}
if (!existsSync(join(root, 'build/host/pump.mjs'))) {
  console.error('bench/pump: run `npm run build` first');
  process.exit(2);
}

let results = [];
let meta;
if (previous) {
  ({ results, meta } = previous);
} else {
// ---- The generator -----------------------------------------------------------------
  const gen = join(root, 'build/bench/pump-gen');
  const genSrc = join(root, 'bench/pump/gen.c');
  if (!existsSync(gen) || statSync(gen).mtimeMs < statSync(genSrc).mtimeMs) {
    mkdirSync(dirname(gen), { recursive: true });
    sh(process.env.CC ?? 'cc', '-O2', '-o', gen, genSrc);
  }
  
  // ---- Namespace -----------------------------------------------------------------------
  const children = [];
  function cleanup() {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    spawnSync('ip', ['netns', 'del', NS]);
  }
  process.on('exit', cleanup);
  for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(130));
  
  sh('ip', 'netns', 'add', NS);
  sh('ip', '-n', NS, 'link', 'set', 'lo', 'up');
  sh('ip', '-n', NS, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'p1');
  sh('ip', '-n', NS, 'link', 'set', 'p0', 'up');
  sh('ip', '-n', NS, 'link', 'set', 'p1', 'up');
  sh('ip', '-n', NS, 'addr', 'add', `${PUMP_IP}/24`, 'dev', 'p0');
  APPLIANCES.forEach((a, i) => sh('ip', '-n', NS, 'neigh', 'add', a, 'lladdr', `02:00:00:00:00:1${i}`, 'dev', 'p0', 'nud', 'permanent'));
  sh('tc', '-n', NS, 'qdisc', 'add', 'dev', 'p0', 'root', 'blackhole');
  
  class Worker {
    constructor(mode, protocol) {
      this.mode = mode;
      this.p = spawn('ip', ['netns', 'exec', NS, ...pin(1, [process.execPath, join(root, 'bench/pump/worker.mjs'), '--mode', mode,
        '--bind', `${PUMP_IP}:${PORTS[mode]}`, '--protocol', protocol, '--appliances', APPLIANCES.join(',')])],
      { stdio: ['pipe', 'pipe', 'inherit'] });
      children.push(this.p);
      this.waiters = [];
      createInterface({ input: this.p.stdout }).on('line', (l) => this.waiters.shift()?.(JSON.parse(l)));
      this.ready = new Promise((r) => this.waiters.push(r));
    }
    stats() {
      return new Promise((r) => { this.waiters.push(r); this.p.stdin.write('stats\n'); });
    }
    async stop() {
      this.p.stdin.write('exit\n');
      await new Promise((r) => this.p.once('exit', r));
    }
  }
  
  function generate(port, protocol, inner, seconds, rate = 0) {
    return new Promise((resolve) => {
      const g = spawn('ip', ['netns', 'exec', NS, ...pin(0, [gen, '--dst', PUMP_IP, '--port', String(port), '--proto', protocol,
        '--flows', '16384', '--inner', String(inner), '--seconds', String(seconds), '--rate', String(rate)])],
      { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(g);
      let out = '';
      g.stdout.on('data', (d) => { out += d; });
      g.on('exit', () => resolve(JSON.parse(out)));
    });
  }
  
  /** One window: offer load to `w`, measure over MEASURE seconds after WARM. */
  async function window(w, protocol, inner, rate = 0) {
    const g = generate(PORTS[w.mode], protocol, inner, WARM + MEASURE + 0.3, rate);
    await sleep(WARM);
    const a = await w.stats();
    await sleep(MEASURE);
    const b = await w.stats();
    const offered = await g;
    const dt = (b.t - a.t) / 1000;
    const sent = b.sent - a.sent;
    return {
      pps: sent / dt,
      cpuShare: (b.cpuUs - a.cpuUs) / 1e6 / dt,
      cpuUsPerPacket: (b.cpuUs - a.cpuUs) / sent,
      coreUsPerPacket: ((b.coreMs - a.coreMs) * 1000) / sent,
      meanBatch: (b.batchPackets - a.batchPackets) / (b.batches - a.batches),
      offeredPps: offered.sent / offered.seconds,
      received: b.received - a.received,
      sent,
    };
  }
  
  const median = (xs) => { const s = [...xs].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
  
  const scenarios = [
    { name: 'VXLAN, 64-byte inner frames', protocol: 'vxlan', inner: 64 },
    { name: 'GENEVE (one 8-byte option), 64-byte inner frames', protocol: 'geneve', inner: 64 },
    { name: 'VXLAN, 512-byte inner frames', protocol: 'vxlan', inner: 512 },
  ];
  const loadStart = loadavg();
  for (const sc of scenarios) {
    const workers = { balance: new Worker('balance', sc.protocol), pass: new Worker('pass', sc.protocol) };
    await Promise.all(Object.values(workers).map((w) => w.ready));
    // Warm-up: JIT tiers, the flow table filled with the 16384 flows.
    for (const w of Object.values(workers)) await window(w, sc.protocol, sc.inner);
    const sat = { balance: [], pass: [] };
    for (let r = 0; r < REPS; r++) {
      const order = r % 2 ? ['pass', 'balance'] : ['balance', 'pass'];
      for (const m of order) sat[m].push(await window(workers[m], sc.protocol, sc.inner));
    }
    const fixed = { balance: [], pass: [] };
    for (let r = 0; r < Math.max(1, REPS - 1); r++) {
      for (const m of ['balance', 'pass']) fixed[m].push(await window(workers[m], sc.protocol, sc.inner, FIXED_RATE));
    }
    const check = await workers.balance.stats();
    for (const w of Object.values(workers)) await w.stop();
    const med = (list, k) => median(list.map((x) => x[k]));
    const row = { ...sc, sat, fixed, flowTableUsed: check.flowTableUsed, perBackend: check.perBackend };
    for (const m of ['balance', 'pass']) {
      row[m] = {
        pps: med(sat[m], 'pps'), cpuShare: med(sat[m], 'cpuShare'), meanBatch: med(sat[m], 'meanBatch'),
        cpuUsPerPacket: med(sat[m], 'cpuUsPerPacket'),
        offeredPps: med(sat[m], 'offeredPps'), coreUsPerPacket: med(sat[m], 'coreUsPerPacket'),
        fixedCpuUs: med(fixed[m], 'cpuUsPerPacket'), fixedPps: med(fixed[m], 'pps'),
      };
    }
    // Per-packet time two ways: wall time from throughput (1 / pps), and CPU time of the
    // pump process per packet sent (robust to time the pump was not scheduled).
    row.usBalance = 1e6 / row.balance.pps;
    row.usPass = 1e6 / row.pass.pps;
    row.costUs = row.usBalance - row.usPass;
    row.share = row.costUs / row.usBalance;
    row.cpuCostUs = row.balance.cpuUsPerPacket - row.pass.cpuUsPerPacket;
    row.cpuShare = row.cpuCostUs / row.balance.cpuUsPerPacket;
    row.coreShare = row.balance.coreUsPerPacket / row.balance.cpuUsPerPacket;
    row.fixedShare = (row.balance.fixedCpuUs - row.pass.fixedCpuUs) / row.balance.fixedCpuUs;
    results.push(row);
    console.log(`${sc.name}: balance ${Math.round(row.balance.pps)} pps, pass-through ${Math.round(row.pass.pps)} pps; `
      + `balancing ${row.costUs.toFixed(3)} µs of ${row.usBalance.toFixed(3)} µs per packet (${(row.share * 100).toFixed(1)}%); `
      + `CPU ${row.balance.cpuUsPerPacket.toFixed(3)} vs ${row.pass.cpuUsPerPacket.toFixed(3)} µs/packet (${(row.cpuShare * 100).toFixed(1)}%); `
      + `core ${row.balance.coreUsPerPacket.toFixed(3)} µs/packet; at ${FIXED_RATE} pps CPU ${row.balance.fixedCpuUs.toFixed(2)} vs ${row.pass.fixedCpuUs.toFixed(2)} µs/packet`);
  }
  meta = { date: new Date().toISOString().slice(0, 10), cpuModel: cpus()[0]?.model ?? 'unknown', cpus: cpus().length, node: process.version,
    kernel: release(), reps: REPS, measure: MEASURE, fixedRate: FIXED_RATE, loadStart, loadEnd: loadavg(), multiCore };
}

// ---- Report --------------------------------------------------------------------------
const f = (x, d = 0) => x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
const range = (xs, d, unit = '') => {
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  return lo.toFixed(d) === hi.toFixed(d) ? `${f(lo, d)}${unit}` : `${f(lo, d)}–${f(hi, d)}${unit}`;
};
const lines = [];
lines.push('# Pump throughput: balancing against pass-through');
lines.push('');
lines.push(`**Result:** balancing costs ${range(results.map((r) => r.cpuCostUs), 2, ' µs')} of CPU time per packet, `
  + `${range(results.map((r) => r.cpuShare * 100), 1, ' %')} of the pump's per-packet time `
  + `(${range(results.map((r) => r.balance.cpuUsPerPacket), 1, ' µs')}); the rest is Node's socket path. `
  + `At a fixed ${f(meta.fixedRate)} packets/s the share is ${range(results.map((r) => r.fixedShare * 100), 1, ' %')}.`);
lines.push('');
lines.push(`Measured by \`bench/pump/run.mjs\` on ${meta.date}: ${meta.cpuModel}, ${meta.cpus} CPUs`
  + `${meta.multiCore ? ' (generator pinned to CPU 0, pumps to CPU 1)' : ''}, Node ${meta.node}, Linux ${meta.kernel}.`);
lines.push(`Load average of the machine (other work running) ${meta.loadStart.map((x) => x.toFixed(2)).join(' ')} at the start, `
  + `${meta.loadEnd.map((x) => x.toFixed(2)).join(' ')} at the end.`);
lines.push(`${meta.reps} alternating saturation windows of ${meta.measure} s per pump after a warm-up window each; medians. `
  + '16,384 established TCP flows over 3 appliances; the generator offers far more than a pump can take.');
lines.push('');
lines.push('The **balancing** pump is `haports pump` (decapsulate, copy the inner packet into the core\'s arena, '
  + 'Maglev + flow table + verdict, send from wasm memory). The **pass-through** pump is the same code with '
  + '`passThrough: true`: the same sockets, decapsulation, bounded queue, batching and sends, every packet sent '
  + 'unchanged to one appliance, no core. The difference is the cost of balancing.');
lines.push('');
lines.push('| traffic | throughput, balancing | throughput, pass-through | CPU µs per packet, balancing | CPU µs per packet, pass-through | balancing cost | **share of per-packet time** | time in the core, measured inside the pump |');
lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of results) {
  lines.push(`| ${r.name} | ${f(r.balance.pps)} pps | ${f(r.pass.pps)} pps | ${f(r.balance.cpuUsPerPacket, 3)} | ${f(r.pass.cpuUsPerPacket, 3)} | `
    + `${f(r.cpuCostUs, 3)} µs | **${f(r.cpuShare * 100, 1)} %** | ${f(r.balance.coreUsPerPacket, 3)} µs (${f(r.coreShare * 100, 1)} %) |`);
}
lines.push('');
lines.push('Per-packet time is the pump process\'s CPU time (user + system) per datagram sent during the saturation '
  + 'windows; the share is (balancing − pass-through) / balancing. From throughput instead (1 / pps), the share is '
  + results.map((r) => `${f(r.share * 100, 1)} %`).join(', ') + ' (the same scenarios, in order): wall time also counts '
  + 'moments the pump was not scheduled, so it is the noisier of the two on a shared machine. '
  + `"Time in the core" is the pump's own timer around copying a batch into the arena and \`core.process\` `
  + `(mean batch ${results.map((r) => f(r.balance.meanBatch, 1)).join(', ')} packets: libuv reads at most 32 datagrams per socket per event-loop turn).`);
lines.push('');
lines.push(`CPU time per packet at a fixed ${f(meta.fixedRate)} packets/s (below saturation; user + system time of the pump process):`);
lines.push('');
lines.push('| traffic | balancing pump | pass-through pump | balancing share |');
lines.push('| --- | ---: | ---: | ---: |');
for (const r of results) {
  lines.push(`| ${r.name} | ${f(r.balance.fixedCpuUs, 2)} µs | ${f(r.pass.fixedCpuUs, 2)} µs | ${f(r.fixedShare * 100, 1)} % |`);
}
lines.push('');
lines.push('Saturation windows, packets per second (in order):');
lines.push('');
for (const r of results) {
  lines.push(`- ${r.name}: balancing ${r.sat.balance.map((x) => f(x.pps)).join(', ')}; pass-through ${r.sat.pass.map((x) => f(x.pps)).join(', ')}; `
    + `pump CPU share ${f(r.balance.cpuShare * 100)} % / ${f(r.pass.cpuShare * 100)} %; offered ${f(r.balance.offeredPps)} pps; `
    + `flow table ${f(r.flowTableUsed)} flows; per appliance ${r.perBackend.map((x) => f(x)).join(' / ')} packets`);
}
lines.push('');
lines.push('Reading: per-packet time is dominated by the Node.js socket path (one `message` event and one '
  + '`recvmsg` per datagram in, one `sendmsg` per datagram out); the core adds its copy and lookup, shown as a '
  + 'share of the whole. Numbers vary with the machine; the share is the portable result.');
writeFileSync(values.out, lines.join('\n') + '\n');
if (!previous) writeFileSync(values.out.replace(/\.md$/, '.json'), JSON.stringify({ meta, results }, null, 1) + '\n');
console.log(`wrote ${values.out}`);
