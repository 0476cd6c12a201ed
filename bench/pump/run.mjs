// Pump throughput: `haports pump` (native recvmmsg/sendmmsg path, worker threads with
// SO_REUSEPORT steering) against the kernel forwarding the same traffic in the same
// topology, in one run; and the pump under overload.
//
//   sudo node bench/pump/run.mjs [--reps 3] [--measure 2] [--warm 0.5] [--levels 0.2,0.3,0.4,0.5,0.6,0.75]
//                                [--inner 64] [--out bench/results/pump.md] [--from RESULTS.json]
//
// Topology (two private network namespaces, hpg<pid> and hpb<pid>, removed at the end):
//
//   generator ns                    forwarder ns
//   gen.c ─ AF_PACKET ─ g0 ═veth═ g1 10.212.0.1 ──▶ pump / kernel ──▶ p0 10.212.1.1 ═veth═ p1
//                                    (RPS: rx on the forwarder's CPU)  appliances 10.212.1.10-12:
//                                                                       static neighbours; p1
//                                                                       drops (not its MAC)
//
// The generator (bench/pump/gen.c) writes VXLAN frames (64-byte inner Ethernet/IPv4/TCP
// frames of 16,384 established flows; outer UDP source port per flow, as a VTEP sets it)
// straight to g0 with AF_PACKET, pinned to CPU 0. Whatever the forwarder sends to an
// appliance goes through the whole IP/neighbour path of p0 and leaves on it, one frame
// per datagram: p0 has no UDP segmentation offload (`ethtool -K p0
// tx-udp-segmentation off`), so the pump's UDP GSO messages are cut apart in software
// before the device, as on a NIC without it (the dearer case). p0's transmit counter is
// the one delivery counter for every forwarder (pump or kernel); p1 drops each frame at
// once (addressed to another MAC).
//
// Forwarders, all in the forwarder namespace, all started once and idle except in their
// own windows:
//   pump, 1 worker    `node bin/haports.mjs pump --config …` ("workers": 1), pinned to
//                     CPU 1; g1's RPS mask = CPU 1: the receive path runs there too.
//   pump, node:dgram  bench/pump/worker.mjs --io dgram (the same Pump without the addon),
//                     pinned to CPU 1, RPS = CPU 1.
//   kernel DNAT       an nftables nat rule (conntrack): the outer datagram to the pump's
//                     address is sent to an appliance chosen by a hash of its source
//                     address and port; RPS = CPU 1 (the rule exists only during its
//                     windows, so conntrack costs nothing in the others).
//   kernel routing    the generator addresses the appliances directly and the kernel
//                     routes the outer datagrams (its cheapest forwarding path); RPS = CPU 1.
//   … all CPUs        the pump with "workers": 2 (the machine's CPUs), and the two kernel
//                     paths, with RPS over both CPUs; the generator stays on CPU 0 and
//                     shares it.
//
// Windows: each forwarder gets a warm-up window, then `--reps` rounds of one window each
// at the generator's maximum rate, in rotating order (A B C … then B C … A), so that
// drift of the machine falls on all alike. Then the pumps' sweep: fixed offered rates,
// `--levels` × the generator's maximum (its median offered rate to kernel routing),
// interleaved, to find each pump's peak; the overload result is the rate at the
// generator's maximum as a fraction of that peak.
// Per window: delivered packets/s (p0), offered (the generator, and the kernel's
// receive counters /proc/net/softnet_stat), CPU time by CPU and kind (/proc/stat), the
// pump's own counters (received, socket drops, time in the core) from its metrics.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '3' }, measure: { type: 'string', default: '2' }, warm: { type: 'string', default: '0.5' },
    levels: { type: 'string', default: '0.2,0.3,0.4,0.5,0.6,0.75' }, 'sweep-reps': { type: 'string', default: '2' },
    calibrate: { type: 'string', default: '50000' }, quiet: { type: 'string', default: '10' }, 'wait-budget': { type: 'string', default: '120' }, inner: { type: 'string', default: '64' },
    out: { type: 'string', default: join(root, 'bench/results/pump.md') }, from: { type: 'string' },
    only: { type: 'string' },
    quota: { type: 'string', default: '10' }, 'quota-levels': { type: 'string', default: '0.02,0.05,0.1,0.2,0.5' }, // comma-separated target ids: a quick look, printed only (no report)
  },
});
const command = ['sudo node bench/pump/run.mjs', ...process.argv.slice(2)].join(' ');
// --from RESULTS.json rewrites the report of an earlier run without measuring again.
const previous = values.from ? JSON.parse(readFileSync(values.from, 'utf8')) : null;
const REPS = Number(values.reps);
const MEASURE = Number(values.measure);
const WARM = Number(values.warm);
const LEVELS = values.levels.split(',').map(Number);
const SWEEP_REPS = Number(values['sweep-reps']);
const CAL_RATE = Number(values.calibrate);
const QUIET = Number(values.quiet) / 100;
const WAIT_BUDGET = Number(values['wait-budget']);
const INNER = Number(values.inner);
const QUOTA = Number(values.quota); // % of a CPU for the overload pump (0: no such section)
const QUOTA_LEVELS = values['quota-levels'].split(',').map(Number);
const CGROUP = '/sys/fs/cgroup/cpu'; // cgroup v1 cpu controller (cfs quota)
const FLOWS = 16384;
const NS = `hpb${process.pid}`; // the forwarder
const GNS = `hpg${process.pid}`; // the generator
const PUMP_IP = '10.212.0.1';
const GEN_IP = '10.212.0.2';
const APPLIANCES = ['10.212.1.10', '10.212.1.11', '10.212.1.12'];
const USER_HZ = 100; // /proc/stat and /proc/PID/stat tick unit
const sh = (...args) => execFileSync(args[0], args.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));
const median = (xs) => { const s = [...xs].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

if (!previous) {
  if (process.getuid?.() !== 0) {
    console.error('bench/pump: needs root (ip netns); skipped');
    process.exit(0);
  }
  if (!existsSync(join(root, 'build/host/pump.mjs')) || !existsSync(join(root, 'build/native/udpio.node'))) {
    console.error('bench/pump: run `npm run build` first (it builds the native addon too)');
    process.exit(2);
  }
  if (cpus().length < 2) {
    console.error('bench/pump: needs 2 CPUs or more (generator and forwarder on separate CPUs)');
    process.exit(2);
  }
}

let results;
let meta;
if (previous) {
  ({ results, meta } = previous);
} else {
  ({ results, meta } = await measure());
}
if (values.only) process.exit(0);
const quotaRun = results.find((r) => r.id === 'pump-q') ?? null;
const measured = results;
results = results.filter((r) => r.id !== 'pump-q');
writeReport();

// ---- Measurement ---------------------------------------------------------------------

async function measure() {
  const gen = join(root, 'build/bench/pump-gen');
  const genSrc = join(root, 'bench/pump/gen.c');
  if (!existsSync(gen) || statSync(gen).mtimeMs < statSync(genSrc).mtimeMs) {
    mkdirSync(dirname(gen), { recursive: true });
    sh(process.env.CC ?? 'cc', '-O2', '-o', gen, genSrc);
  }
  const tmp = mkdtempSync(join(tmpdir(), 'haports-bench-pump-'));

  const children = [];
  let nftActive = false;
  const cgroup = join(CGROUP, `hpb${process.pid}`);
  function cleanup() {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    spawnSync('ip', ['netns', 'del', NS]);
    spawnSync('ip', ['netns', 'del', GNS]);
    rmSync(tmp, { recursive: true, force: true });
    // The quota cgroup goes once its process has (SIGKILL takes a moment).
    for (let i = 0; i < 40 && existsSync(cgroup); i++) {
      try { rmdirSync(cgroup); } catch { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50); }
    }
  }
  process.on('exit', cleanup);
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(s, () => process.exit(130));
  process.on('uncaughtException', (e) => { console.error(e); process.exit(1); });
  process.on('unhandledRejection', (e) => { console.error(e); process.exit(1); });

  // ---- Namespaces ----------------------------------------------------------------------
  sh('ip', 'netns', 'add', NS);
  sh('ip', 'netns', 'add', GNS);
  sh('ip', '-n', NS, 'link', 'set', 'lo', 'up');
  sh('ip', '-n', GNS, 'link', 'set', 'lo', 'up');
  sh('ip', '-n', NS, 'link', 'add', 'g1', 'type', 'veth', 'peer', 'name', 'g0', 'netns', GNS);
  sh('ip', '-n', NS, 'addr', 'add', `${PUMP_IP}/24`, 'dev', 'g1');
  sh('ip', '-n', GNS, 'addr', 'add', `${GEN_IP}/24`, 'dev', 'g0');
  sh('ip', '-n', NS, 'link', 'set', 'g1', 'up');
  sh('ip', '-n', GNS, 'link', 'set', 'g0', 'up');
  sh('ip', '-n', NS, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'p1');
  sh('ip', '-n', NS, 'addr', 'add', '10.212.1.1/24', 'dev', 'p0');
  sh('ip', '-n', NS, 'link', 'set', 'p0', 'up');
  sh('ip', '-n', NS, 'link', 'set', 'p1', 'up');
  APPLIANCES.forEach((a, i) => sh('ip', '-n', NS, 'neigh', 'add', a, 'lladdr', `02:00:00:00:00:1${i}`, 'dev', 'p0', 'nud', 'permanent'));
  // One frame per datagram on the wire: GSO messages are segmented in software before p0.
  sh('ip', 'netns', 'exec', NS, 'ethtool', '-K', 'p0', 'tx-udp-segmentation', 'off');
  sh('ip', 'netns', 'exec', NS, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  // g1 without GRO (the default): veth hands each frame to netif_rx, which RPS steers.
  sh('ip', 'netns', 'exec', NS, 'ethtool', '-K', 'g1', 'gro', 'off');
  const g1Mac = JSON.parse(sh('ip', '-n', NS, '-j', 'link', 'show', 'g1'))[0].address;
  let rps = null;
  const setRps = (mask) => {
    if (rps === mask) return;
    sh('ip', 'netns', 'exec', NS, 'sh', '-c', `echo ${mask} > /sys/class/net/g1/queues/rx-0/rps_cpus`);
    rps = mask;
  };
  const NFT = `table ip hpbench {
  chain pre { type nat hook prerouting priority dstnat; policy accept;
    ip daddr ${PUMP_IP} udp dport 4792 dnat to jhash ip saddr . udp sport mod ${APPLIANCES.length} map { ${APPLIANCES.map((a, i) => `${i} : ${a}`).join(', ')} }
  }
}
`;
  const nft = (on) => {
    if (on === nftActive) return;
    if (on) execFileSync('ip', ['netns', 'exec', NS, 'nft', '-f', '-'], { input: NFT });
    else sh('ip', 'netns', 'exec', NS, 'nft', 'delete', 'table', 'ip', 'hpbench');
    nftActive = on;
  };

  // ---- Forwarders ------------------------------------------------------------------------
  const config = (port, workers, extra = {}) => ({
    hashSeed: '0x1f2e3d4c5b6a7988',
    flowTable: { capacity: 65536 },
    frontends: [{ name: 'fe', address: '10.250.0.1' }],
    backendPools: [{ name: 'nvas', backends: APPLIANCES.map((a, i) => ({ name: `nva-${i}`, address: a })) }],
    rules: [{ name: 'ha', frontend: 'fe', backendPool: 'nvas', protocol: 'all', frontendPort: 0, backendPort: 0, floatingIp: true }],
    pump: {
      listeners: [{ name: 'vx', protocol: 'vxlan', frontend: 'fe', bind: `${PUMP_IP}:${port}`, vnis: [1001], peers: ['10.212.0.0/24'] }],
      ...(workers ? { workers } : {}),
      ...extra,
    },
  });
  const writeConfig = (name, c) => { const p = join(tmp, `${name}.json`); writeFileSync(p, JSON.stringify(c, null, 1)); return p; };

  /** `haports pump` as an operator runs it; counters from its metrics endpoint. */
  class PumpCommand {
    constructor(id, workers, port, metricsPort, cpuList, extra = {}) {
      Object.assign(this, { id, workers, port, metricsPort });
      const path = writeConfig(id, config(port, workers, extra));
      this.argv = ['node', 'bin/haports.mjs', 'pump', '--config', path, '--metrics', `127.0.0.1:${metricsPort}`, '--log-level', 'warn'];
      this.p = spawn('ip', ['netns', 'exec', NS, 'taskset', '-c', cpuList, process.execPath, join(root, 'bin/haports.mjs'),
        ...this.argv.slice(2)], { stdio: ['ignore', 'ignore', 'pipe'], cwd: root });
      children.push(this.p);
      this.p.stderr.on('data', (d) => process.stderr.write(`[${id}] ${d}`));
    }
    async ready() {
      for (let i = 0; i < 100; i++) {
        if (this.p.exitCode !== null) throw new Error(`${this.id} exited with ${this.p.exitCode}`);
        try { this.stats(); return; } catch { await sleep(0.1); }
      }
      throw new Error(`${this.id}: no metrics after 10 s`);
    }
    stats() {
      const text = execFileSync('ip', ['netns', 'exec', NS, 'curl', '-sf', '--max-time', '2', `http://127.0.0.1:${this.metricsPort}/metrics`],
        { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
      const sum = {};
      const backends = [];
      for (const line of text.split('\n')) {
        const m = /^([a-z_]+)(\{[^}]*\})? ([-0-9.e+]+|NaN)$/.exec(line);
        if (!m) continue;
        sum[m[1]] = (sum[m[1]] ?? 0) + Number(m[3]);
        if (m[1] === 'haports_backend_packets_total') backends.push(Number(m[3]));
      }
      return {
        received: sum.haports_pump_received_packets_total ?? 0, sent: sum.haports_pump_sent_packets_total ?? 0,
        socketDrops: sum.haports_pump_socket_drops_total ?? 0, batches: sum.haports_pump_batches_total ?? 0,
        batchPackets: sum.haports_pump_batch_packets_total ?? 0, coreSeconds: sum.haports_pump_core_seconds_total ?? 0,
        flowTableUsed: sum.haports_flow_table_entries ?? 0, perBackend: backends,
      };
    }
    get pid() { return this.p.pid; }
    async stop() { this.p.kill('SIGTERM'); await new Promise((r) => (this.p.exitCode !== null ? r() : this.p.once('exit', r))); }
  }

  /** bench/pump/worker.mjs: a Pump built directly, here on the node:dgram path. */
  class PumpWorker {
    constructor(id, io, port, cpuList) {
      Object.assign(this, { id, workers: 1, port });
      const path = writeConfig(id, config(port, 1));
      this.p = spawn('ip', ['netns', 'exec', NS, 'taskset', '-c', cpuList, process.execPath, join(root, 'bench/pump/worker.mjs'),
        '--io', io, '--config', path], { stdio: ['pipe', 'pipe', 'inherit'] });
      children.push(this.p);
      this.waiters = [];
      createInterface({ input: this.p.stdout }).on('line', (l) => { const w = this.waiters.shift(); if (w) w(JSON.parse(l)); });
      this.started = new Promise((r) => this.waiters.push(r));
    }
    async ready() { await this.started; }
    /** Synchronous like PumpCommand's: asks and waits on the reply. */
    statsAsync() { return new Promise((r) => { this.waiters.push(r); this.p.stdin.write('stats\n'); }); }
    get pid() { return this.p.pid; }
    async stop() { this.p.stdin.write('exit\n'); await new Promise((r) => (this.p.exitCode !== null ? r() : this.p.once('exit', r))); }
  }

  const pump1 = new PumpCommand('pump-1', 1, 4789, 9461, '1');
  const pump2 = new PumpCommand('pump-2', 2, 4790, 9462, '0,1');
  const pumpPlain = new PumpCommand('pump-1p', 1, 4793, 9463, '1', { udpSegmentation: false });
  const dgram = new PumpWorker('dgram-1', 'dgram', 4791, '1');
  // The overload pump: held to QUOTA % of CPU 1 by a CFS quota, so that the generator can
  // offer it 10× what it can forward.
  const quotaOk = QUOTA > 0 && existsSync(join(CGROUP, 'cpu.cfs_quota_us'));
  if (QUOTA > 0 && !quotaOk) console.error(`bench/pump: no cgroup v1 cpu controller at ${CGROUP}: the 10× overload section is left out`);
  const pumpQ = quotaOk ? new PumpCommand('pump-q', 1, 4794, 9464, '1') : null;
  await Promise.all([pump1.ready(), pump2.ready(), pumpPlain.ready(), dgram.ready(), pumpQ?.ready()]);
  if (pumpQ) {
    mkdirSync(cgroup);
    writeFileSync(join(cgroup, 'cpu.cfs_period_us'), '10000');
    writeFileSync(join(cgroup, 'cpu.cfs_quota_us'), String(Math.round(QUOTA * 100)));
    writeFileSync(join(cgroup, 'cgroup.procs'), String(pumpQ.pid)); // every thread of the process
  }

  const forwarders = [pump1, pump2, pumpPlain, dgram, ...(pumpQ ? [pumpQ] : [])];

  // A target: what the generator sends where, with which RPS mask, and what forwards it.
  const targets = [
    { id: 'pump-1', name: 'haports pump, 1 worker', cpus: 1, rps: '2', dst: PUMP_IP, port: 4789, fwd: pump1 },
    { id: 'pump-1r', name: 'haports pump, 1 worker, receive path on CPU 0', cpus: 1, rps: '1', dst: PUMP_IP, port: 4789, fwd: pump1 },
    { id: 'pump-1rp', name: 'haports pump, 1 worker, receive path on CPU 0, `udpSegmentation: false`', cpus: 1, rps: '1', dst: PUMP_IP, port: 4793, fwd: pumpPlain },
    { id: 'dgram-1', name: 'haports pump on node:dgram (bench/pump/worker.mjs), 1 worker', cpus: 1, rps: '2', dst: PUMP_IP, port: 4791, fwd: dgram },
    { id: 'dnat-1', name: 'kernel, nftables DNAT (conntrack)', cpus: 1, rps: '2', dst: PUMP_IP, port: 4792, nft: true },
    { id: 'route-1', name: 'kernel, IP routing', cpus: 1, rps: '2', dst: APPLIANCES.join(','), port: 4789 },
    { id: 'pump-2', name: 'haports pump, 2 workers', cpus: 2, rps: '3', dst: PUMP_IP, port: 4790, fwd: pump2 },
    { id: 'dnat-2', name: 'kernel, nftables DNAT (conntrack)', cpus: 2, rps: '3', dst: PUMP_IP, port: 4792, nft: true },
    { id: 'route-2', name: 'kernel, IP routing', cpus: 2, rps: '3', dst: APPLIANCES.join(','), port: 4789 },
  ];
  if (values.only) {
    const keep = new Set(values.only.split(','));
    for (let i = targets.length - 1; i >= 0; i--) if (!keep.has(targets[i].id)) targets.splice(i, 1);
  }
  const genArgv = (t, seconds, rate) => [gen, '--ifname', 'g0', '--dst-mac', g1Mac, '--src', GEN_IP, '--dst', t.dst,
    '--port', String(t.port), '--proto', 'vxlan', '--flows', String(FLOWS), '--inner', String(INNER),
    '--seconds', String(seconds), '--rate', String(Math.round(rate))];

  const procTicks = (pid) => {
    // utime, stime: fields 14 and 15 of /proc/PID/stat (after the parenthesised name).
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return [Number(f[11]), Number(f[12])];
  };
  const threadTicks = (pid) => {
    const out = {};
    try {
      for (const tid of sh('ls', `/proc/${pid}/task`).split('\n').filter(Boolean)) {
        try { const [u, s] = procTicks(`${pid}/task/${tid}`); out[tid] = u + s; } catch { /* gone */ }
      }
    } catch { /* gone */ }
    return out;
  };
  const cpuTicks = () => {
    const out = [];
    for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
      const m = /^cpu(\d+) (.*)$/.exec(line);
      if (!m) continue;
      const [user, nice, system, idle, iowait, irq, softirq, steal] = m[2].split(' ').map(Number);
      out[Number(m[1])] = { user: user + nice, system, idle: idle + iowait, irq, softirq, steal };
    }
    return out;
  };
  // What the generator got into the forwarder's receive path: g0's transmit counters
  // (veth counts a frame the peer's receive backlog refused as a transmit drop).
  const offeredCount = () => {
    const st = JSON.parse(sh('ip', '-n', GNS, '-s', '-j', 'link', 'show', 'g0'))[0].stats64.tx;
    return { packets: st.packets + st.dropped, dropped: st.dropped };
  };
  // CPU time of every process on the machine that is not ours (user + system, kernel
  // threads left out): the noise of a shared machine, reported per window.
  const PF_KTHREAD = 0x00200000;
  const foreignTicks = (ours) => {
    const out = new Map();
    for (const pid of readdirSync('/proc')) {
      if (!/^[0-9]+$/.test(pid) || ours.has(Number(pid))) continue;
      try {
        const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
        if (Number(f[6]) & PF_KTHREAD) continue;
        out.set(pid, Number(f[11]) + Number(f[12]));
      } catch { /* gone */ }
    }
    return out;
  };
  /** Ticks used between two foreignTicks() maps (a process that ended meanwhile is not counted; one that started is, whole). */
  const foreignDelta = (a, b) => { let n = 0; for (const [pid, t] of b) n += t - (a.get(pid) ?? 0); return n; };
  const delivered = () => JSON.parse(sh('ip', '-n', NS, '-s', '-j', 'link', 'show', 'p0'))[0].stats64.tx.packets;

  async function sample(t, genPid) {
    // Each counter with the time it was read (the commands take a while on busy CPUs).
    const timed = (fn) => { const t0 = performance.now(); const v = fn(); return { v, t: (t0 + performance.now()) / 2 }; };
    const wire = timed(delivered);
    const cpu = timed(cpuTicks);
    const offered = timed(offeredCount);
    const s = { wire, cpu, offered };
    try { s.gen = procTicks(genPid); } catch { s.gen = null; }
    s.foreign = foreignTicks(new Set([process.pid, genPid, ...forwarders.map((x) => x.pid)]));
    if (t.fwd) {
      s.threads = threadTicks(t.fwd.pid);
      const t0 = performance.now();
      const v = t.fwd.statsAsync ? await t.fwd.statsAsync() : t.fwd.stats();
      s.pump = { v, t: (t0 + performance.now()) / 2 };
    }
    return s;
  }

  function generate(t, seconds, rate) {
    const g = spawn('ip', ['netns', 'exec', GNS, 'taskset', '-c', '0', ...genArgv(t, seconds, rate)], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(g);
    let out = '';
    g.stdout.on('data', (d) => { out += d; });
    return { pid: g.pid, done: new Promise((resolve, reject) => g.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`gen exited ${code}`))))) };
  }

  // A shared machine: before a window, wait (within a budget) until other processes have
  // been using less than QUIET of a CPU for half a second; a window during which they used
  // more is measured again (twice at most), and the quietest one is kept.
  const ours = () => new Set([process.pid, ...forwarders.map((x) => x.pid)]);
  let waited = 0;
  async function quiet() {
    for (;;) {
      const a = foreignTicks(ours());
      const t0 = performance.now();
      await sleep(0.5);
      const load = foreignDelta(a, foreignTicks(ours())) / USER_HZ / ((performance.now() - t0) / 1000);
      if (load <= QUIET || waited >= WAIT_BUDGET) return;
      if (waited === 0 || Math.floor(waited) % 10 === 0) console.log(`(other processes use ${Math.round(load * 100)} % of a CPU: waiting)`);
      await sleep(1);
      waited += 1.5;
    }
  }
  async function window(t, rate = 0, level = null) {
    let best = null;
    for (let attempt = 0; attempt < 3; attempt++) {
      await quiet();
      const w = await measureWindow(t, rate, level);
      w.attempts = attempt + 1;
      if (!best || w.foreignCpu < best.foreignCpu) best = w;
      if (w.foreignCpu <= QUIET || waited >= WAIT_BUDGET) break;
    }
    return best;
  }

  /** One window: the generator offers `rate` (0: its maximum) to target t; measured over MEASURE s after WARM s. */
  async function measureWindow(t, rate, level) {
    setRps(t.rps);
    nft(!!t.nft);
    const g = generate(t, WARM + MEASURE + 0.3, rate);
    await sleep(WARM);
    const a = await sample(t, g.pid);
    await sleep(MEASURE);
    const b = await sample(t, g.pid);
    const offered = await g.done;
    nft(false);
    const rate_ = (key, v) => (v(b[key].v) - v(a[key].v)) / ((b[key].t - a[key].t) / 1000);
    const dt = (b.cpu.t - a.cpu.t) / 1000;
    const w = {
      level, rate,
      pps: rate_('wire', (x) => x),
      offeredPps: rate_('offered', (x) => x.packets),
      genPps: offered.sent / offered.seconds,
      backlogDropPps: rate_('offered', (x) => x.dropped),
      foreignCpu: foreignDelta(a.foreign, b.foreign) / USER_HZ / dt,
      dt,
      cpu: b.cpu.v.map((c, i) => Object.fromEntries(Object.keys(c).map((k) => [k, (c[k] - a.cpu.v[i][k]) / USER_HZ / dt]))),
      genCpu: a.gen && b.gen ? (b.gen[0] + b.gen[1] - a.gen[0] - a.gen[1]) / USER_HZ / dt : null,
    };
    if (t.fwd) {
      const d = (k) => b.pump.v[k] - a.pump.v[k];
      w.pump = {
        receivedPps: rate_('pump', (x) => x.received), sentPps: rate_('pump', (x) => x.sent), socketDropPps: rate_('pump', (x) => x.socketDrops),
        coreUsPerPacket: d('sent') > 0 ? (d('coreSeconds') * 1e6) / d('sent') : 0,
        meanBatch: d('batches') > 0 ? d('batchPackets') / d('batches') : 0,
      };
      w.threads = Object.keys(b.threads).filter((k) => k in a.threads)
        .map((k) => (b.threads[k] - a.threads[k]) / USER_HZ / dt).sort((x, y) => y - x).slice(0, t.fwd.workers);
    }
    return w;
  }

  const log = (t, w) => console.log(`${t.id.padEnd(8)} ${w.level === null ? 'max ' : (w.level === 'cal' ? 'cal' : `${w.level}x`).padEnd(4)} delivered ${Math.round(w.pps).toLocaleString('en-US').padStart(9)} pps, `
    + `offered ${Math.round(w.offeredPps).toLocaleString('en-US').padStart(9)} pps; CPU ${w.cpu.map((c) => `${Math.round((1 - c.idle - c.steal) * 100)}%`).join(' ')}`
    + `; others ${Math.round(w.foreignCpu * 100)}%`
    + (w.pump ? `; pump recv ${Math.round(w.pump.receivedPps).toLocaleString('en-US')} pps, socket drops ${Math.round(w.pump.socketDropPps).toLocaleString('en-US')} pps` : ''));

  const loadStart = loadavg();
  const started = Date.now();
  // Warm-up (JIT tiers, flow tables filled, conntrack entries made): one window each.
  for (const t of targets) { const w = await window(t); process.stdout.write('warm-up: '); log(t, w); }
  // At the generator's maximum, rotating order.
  const sat = Object.fromEntries(targets.map((t) => [t.id, []]));
  for (let r = 0; r < REPS; r++) {
    for (let i = 0; i < targets.length; i++) {
      const t = targets[(i + r) % targets.length];
      const w = await window(t);
      sat[t.id].push(w);
      log(t, w);
    }
  }
  // The pumps' sweep. A calibration window at a low fixed rate gives each pump's CPU cost
  // per packet with small batches; then windows at fixed rates, `--levels` × the
  // generator's maximum, interleaved, levels ascending then descending.
  const genMax = median((sat['route-1'] ?? Object.values(sat).flat()).map((w) => w.offeredPps));
  const sweepTargets = targets.filter((t) => t.fwd);
  const sweep = Object.fromEntries(sweepTargets.map((t) => [t.id, []]));
  const calibration = {};
  for (const t of sweepTargets) {
    const w = await window(t, CAL_RATE, 'cal');
    calibration[t.id] = w;
    log(t, w);
  }
  for (let r = 0; r < SWEEP_REPS; r++) {
    const order = r % 2 ? [...LEVELS].reverse() : LEVELS;
    for (const k of order) {
      for (const t of sweepTargets) {
        const w = await window(t, k * genMax, k);
        sweep[t.id].push(w);
        log(t, w);
      }
    }
  }
  // 10× overload: the quota pump at fixed offered rates (QUOTA_LEVELS × the generator's
  // maximum), then at the maximum, interleaved.
  const quotaTarget = pumpQ && !values.only ? {
    id: 'pump-q', name: `haports pump, 1 worker held to ${QUOTA} % of CPU 1 (CFS quota), receive path on CPU 0`, cpus: 1, rps: '1',
    dst: PUMP_IP, port: 4794, fwd: pumpQ,
  } : null;
  const quotaSat = [];
  const quotaSweep = [];
  if (quotaTarget) {
    const w0 = await window(quotaTarget); process.stdout.write('warm-up: '); log(quotaTarget, w0);
    for (let r = 0; r < SWEEP_REPS; r++) {
      const order = r % 2 ? [0, ...[...QUOTA_LEVELS].reverse()] : [...QUOTA_LEVELS, 0];
      for (const k of order) {
        const w = await window(quotaTarget, k * genMax, k || null);
        (k ? quotaSweep : quotaSat).push(w);
        log(quotaTarget, w);
      }
    }
  }

  const check = { 'pump-1': pump1.stats(), 'pump-2': pump2.stats(), 'pump-1rp': pumpPlain.stats(), 'dgram-1': await dgram.statsAsync() };
  check['pump-1r'] = check['pump-1'];
  if (pumpQ) check['pump-q'] = pumpQ.stats();
  await Promise.all([pump1.stop(), pump2.stop(), pumpPlain.stop(), dgram.stop(), pumpQ?.stop()]);

  if (quotaTarget) {
    targets.push(quotaTarget);
    sat['pump-q'] = quotaSat;
    sweep['pump-q'] = quotaSweep;
  }
  const res = targets.map((t) => ({
    id: t.id, name: t.name, cpus: t.cpus, rps: t.rps, sat: sat[t.id], sweep: sweep[t.id] ?? null, calibration: calibration[t.id] ?? null,
    argv: t.fwd?.argv ?? null, flowTableUsed: check[t.id]?.flowTableUsed ?? null, perBackend: check[t.id]?.perBackend ?? null,
  }));
  return {
    results: res,
    meta: {
      date: new Date().toISOString().slice(0, 10), cpuModel: cpus()[0]?.model ?? 'unknown', cpus: cpus().length, node: process.version,
      kernel: release(), quota: quotaTarget ? QUOTA : null, quotaLevels: QUOTA_LEVELS, reps: REPS, sweepReps: SWEEP_REPS, calibrationRate: CAL_RATE, genMax, measure: MEASURE, warm: WARM, levels: LEVELS, inner: INNER, flows: FLOWS,
      loadStart, loadEnd: loadavg(), seconds: (Date.now() - started) / 1000, command, quiet: QUIET, waitBudget: WAIT_BUDGET, waited,
      pumpConfig: config(4789, 1),
    },
  };
}

// ---- Report ----------------------------------------------------------------------------
function writeReport() {
  const f = (x, d = 0) => (x === null || x === undefined || Number.isNaN(x) ? '–' : x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }));
  const k = (x) => (x >= 1e6 ? `${f(x / 1e6, 2)} M` : `${f(x / 1e3, 0)} k`);
  const range = (xs) => `${f(Math.min(...xs))}–${f(Math.max(...xs))}`;
  const pct = (x) => `${f(x * 100)} %`;
  const by = Object.fromEntries(results.map((r) => [r.id, r]));
  const med = (ws, fn) => median(ws.map(fn));
  const busy = (c) => c.user + c.system + c.irq + c.softirq;
  // The forwarder's CPU time, in CPUs. One-CPU rows: all of CPU 1 (the forwarder and, but
  // for pump-1r, its receive path are all that runs there). Two-CPU rows: both CPUs'
  // busy time less the generator process's.
  const fwdCpu = (r, w) => (r.cpus === 1 ? busy(w.cpu[1]) : w.cpu.reduce((n, c) => n + busy(c), 0) - (w.genCpu ?? 0));
  const usPerPacket = (r, w) => (fwdCpu(r, w) * 1e6) / w.pps;
  for (const r of results) {
    r.pps = med(r.sat, (w) => w.pps);
    r.offered = med(r.sat, (w) => w.offeredPps);
    r.gen = med(r.sat, (w) => w.genPps);
    r.genCpu = med(r.sat, (w) => w.genCpu ?? 0);
    r.cpu = med(r.sat, (w) => fwdCpu(r, w));
    r.us = med(r.sat, (w) => usPerPacket(r, w));
    r.backlogDrops = med(r.sat, (w) => w.backlogDropPps);
    r.peakWindows = r.sat;
    r.peak = { level: null, offered: r.offered, pps: r.pps };
    if (r.sweep) {
      // The peak: the highest median delivered rate of any offered level, the generator's maximum included.
      const levels = [...new Set(r.sweep.map((w) => w.level))].sort((a, b) => a - b);
      r.levels = levels.map((level) => {
        const ws = r.sweep.filter((w) => w.level === level);
        return { level, windows: ws, offered: med(ws, (w) => w.offeredPps), pps: med(ws, (w) => w.pps), us: med(ws, (w) => usPerPacket(r, w)) };
      });
      r.levels.push({ level: null, windows: r.sat, offered: r.offered, pps: r.pps, us: r.us });
      r.peak = r.levels.reduce((a, b) => (b.pps > a.pps ? b : a));
      r.peakWindows = r.peak.windows;
      r.calUs = usPerPacket(r, r.calibration);
    }
    r.overload = r.pps / r.peak.pps;
    r.overloadFactor = r.offered / r.peak.pps;
    // Where the time goes, at the peak (not in overload, where part of it goes to packets dropped at the socket).
    const pw = r.peakWindows;
    const part = (key) => med(pw, (w) => (w.cpu[1][key] * 1e6) / w.pps);
    r.split = { user: part('user'), system: part('system'), softirq: part('softirq') + part('irq'), idle: med(pw, (w) => w.cpu[1].idle), total: med(pw, (w) => usPerPacket(r, w)) };
    if (pw[0].pump) {
      r.core = med(pw, (w) => w.pump.coreUsPerPacket);
      r.batch = med(pw, (w) => w.pump.meanBatch);
      r.threads = pw[0].threads.map((_, i) => med(pw, (w) => w.threads[i] ?? 0));
      r.socketDrops = med(r.sat, (w) => w.pump.socketDropPps);
      r.received = med(r.sat, (w) => w.pump.receivedPps);
    }
  }
  // The quota pump (10× overload): per offered level, then at the generator's maximum.
  let Q = null;
  if (quotaRun) {
    const q = quotaRun;
    const lv = [...new Set(q.sweep.map((w) => w.level))].sort((a, b) => a - b).map((level) => {
      const ws = q.sweep.filter((w) => w.level === level);
      return { level, offered: med(ws, (w) => w.offeredPps), pps: med(ws, (w) => w.pps), drops: med(ws, (w) => w.pump.socketDropPps) };
    });
    const atMax = { level: null, offered: med(q.sat, (w) => w.offeredPps), pps: med(q.sat, (w) => w.pps), drops: med(q.sat, (w) => w.pump.socketDropPps) };
    const peak = Math.max(...lv.map((l) => l.pps), atMax.pps);
    Q = { levels: [...lv, atMax], atMax, peak, overload: atMax.pps / peak, factor: atMax.offered / peak };
  }
  const all = results.flatMap((r) => [...r.sat, ...(r.sweep ?? [])]);
  const foreign = all.map((w) => w.foreignCpu);
  const p1 = by['pump-1']; const p1r = by['pump-1r']; const pp = by['pump-1rp']; const p2 = by['pump-2']; const dg = by['dgram-1'];
  const d1 = by['dnat-1']; const r1 = by['route-1']; const d2 = by['dnat-2']; const r2 = by['route-2'];
  const best = [p1, p1r, p2].reduce((a, b) => (b.peak.pps > a.peak.pps ? b : a));
  const ratio = (a, b) => `${f(a / b, 2)}×`;
  const goal = (ok) => (ok ? 'met' : '**not met**');
  const lines = [];
  const L = (s = '') => lines.push(s);

  L('# Pump throughput: `haports pump` against the kernel, 64-byte inner frames (VXLAN)');
  L();
  L(`Measured by \`${meta.command}\` on ${meta.date} (${f(meta.seconds / 60, 1)} minutes): `
    + `${meta.cpuModel}, ${meta.cpus} CPUs (a VM), Node ${meta.node}, Linux ${meta.kernel}. `
    + `Load average ${meta.loadStart.map((x) => x.toFixed(2)).join(' ')} at the start, ${meta.loadEnd.map((x) => x.toFixed(2)).join(' ')} at the end; `
    + `other processes on the machine used ${pct(median(foreign))} of a CPU in the median window (${pct(Math.max(...foreign))} at most).`);
  L();
  L('## Goals (issue 12)');
  L();
  L('| goal | measured | |');
  L('| --- | --- | --- |');
  const limited = (r) => (r.socketDrops ?? 0) < 0.01 * r.pps; // the pump dropped nothing: the offer was the limit
  L(`| ≥ 500,000 packets/s on the 2-CPU machine | peak ${f(p1r.peak.pps)} packets/s with 1 worker and the receive path on CPU 0`
    + `${limited(p1r) ? ' (the generator\'s limit, sharing CPU 0 with the receive path: the pump dropped nothing)' : ''}; `
    + `${f(p1.peak.pps)} with 1 worker and its receive path on its own CPU; ${f(p2.peak.pps)} with 2 workers (${f(p2.peak.pps / 2)} per worker) `
    + `while the generator takes most of CPU 0 | ${goal(best.peak.pps >= 500000)} |`);
  L(`| ≥ 0.8× the kernel's rate | best pump peak ÷ kernel on one CPU: ${ratio(best.peak.pps, d1.pps)} (DNAT, conntrack), ${ratio(best.peak.pps, r1.pps)} (plain routing); `
    + `on both CPUs: ${ratio(p2.peak.pps, d2.pps)}, ${ratio(p2.peak.pps, r2.pps)}. Per packet the kernel spends ${f(d1.split.total, 2)} µs (DNAT) or `
    + `${f(r1.split.total, 2)} µs (routing) of CPU, all on CPU 1; the pump ${f(p1r.split.total, 2)} µs on CPU 1 plus its receive path on CPU 0. `
    + `Kernel routing is the generator's limit (CPU 1 ${pct(r1.split.idle)} idle) | `
    + `${goal(best.peak.pps >= 0.8 * Math.max(d1.pps, r1.pps))} (${best.peak.pps >= 0.8 * d1.pps ? 'met against DNAT, ' : ''}not against routing) |`);
  L(`| under 10× overload, ≥ 90 % of the peak | ${Q ? `the pump's loop (receive path on another CPU, the pump held to ${meta.quota} % of a CPU): **${pct(Q.overload)}** of its peak at ${f(Q.factor, 1)}× the peak offered; ` : ''}`
    + `receive path on the pump's own CPU: ${pct(p1.overload)} of the peak at ${f(p1.overloadFactor, 1)}× (the kernel's receive work for the packets it then drops takes the CPU), `
    + `${p2.overloadFactor >= 1.05 ? `2 workers ${pct(p2.overload)} at ${f(p2.overloadFactor, 1)}×` : '2 workers: the generator, on one of their CPUs, cannot overload them'} | ${Q && Q.overload >= 0.9 && Q.factor >= 8 ? 'met for the pump; **not met** with the receive path on a worker\'s CPU' : goal(false)} |`);
  L();
  L('## Delivered packets/s at the generator\'s maximum');
  L();
  L(`Medians of ${meta.reps} windows of ${meta.measure} s (after ${meta.warm} s of load), every forwarder in turn, in rotating order (range in brackets). `
    + '*Offered*: frames the generator got into the forwarder\'s receive path (drops at the receive backlog included). '
    + '*Forwarder CPU*: one-CPU rows, all of CPU 1; two-CPU rows, both CPUs less the generator process\'s time. '
    + '*CPU µs / packet*: the forwarder\'s CPU time per delivered packet.');
  L();
  L('| forwarder | CPUs | delivered, packets/s | per worker | offered, packets/s | forwarder CPU | CPU µs / packet | ÷ kernel DNAT | ÷ kernel routing |');
  L('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    const isPump = !!r.argv || r.id === 'dgram-1';
    const [dn, rt] = r.cpus === 1 ? [d1, r1] : [d2, r2];
    const workers = r.id === 'pump-2' ? 2 : 1;
    const where = r.cpus === 2 ? 'both (generator on CPU 0)' : r.rps === '1' ? 'CPU 1 (receive path on CPU 0)' : 'CPU 1';
    L(`| ${r.name} | ${where} | **${f(r.pps)}** (${range(r.sat.map((w) => w.pps))}) | ${isPump ? f(r.pps / workers) : ''} | ${f(r.offered)} | `
      + `${pct(r.cpu)} | ${f(r.us, 2)} | ${isPump ? ratio(r.pps, dn.pps) : ''} | ${isPump ? ratio(r.pps, rt.pps) : ''} |`);
  }
  L();
  L('## Peak and overload');
  L();
  L(`A calibration window at ${f(meta.calibrationRate)} packets/s (small batches: the dearest per packet); then windows at fixed `
    + `offered rates, ${meta.levels.join(', ')} × the generator's maximum (${f(meta.genMax)} packets/s, its median offered rate to kernel routing), `
    + `every pump in turn, levels ascending then descending, ${meta.sweepReps} window(s) each; medians. `
    + 'The peak is the highest delivered rate of any level, the generator\'s maximum included.');
  L();
  L('| pump | offered → delivered, packets/s (CPU µs / packet) | peak | at the generator\'s maximum | **÷ peak** |');
  L('| --- | --- | ---: | ---: | ---: |');
  for (const r of [p1, p1r, pp, dg, p2]) {
    const cal = r.calibration;
    const pts = [`${k(cal.offeredPps)} → ${k(cal.pps)} (${f(r.calUs, 1)})`, ...r.levels.map((l) => `${k(l.offered)} → ${k(l.pps)} (${f(l.us, 1)})${l.level === null ? ' max' : ''}`)];
    const over = r.overloadFactor >= 1.05 ? `**${pct(r.overload)}**` : '– (offered less than its peak: not overloaded)';
    L(`| ${r.name} | ${pts.join('; ')} | ${f(r.peak.pps)} | ${f(r.pps)} at ${f(r.offered)} offered (${f(r.overloadFactor, 1)}× the peak) | ${over} |`);
  }
  L();
  if (Q) {
    L(`## Overload at ${f(Q.factor, 1)}× the peak`);
    L();
    L(`The generator cannot offer 10× what the pump forwards on a CPU of its own. To overload it that much, one more pump (the same command `
      + `and configuration, port 4794) is held to ${meta.quota} % of CPU 1 by a CFS quota (cgroup v1 \`cpu.cfs_quota_us\`, 10 ms period), with the receive `
      + 'path on CPU 0, and offered fixed rates, then the generator\'s maximum, ascending then descending; medians. This is the pump\'s own loop under '
      + 'overload: bounded batches per turn, the excess dropped by the kernel at the full socket buffer (counted), the rest forwarded.');
    L();
    L('| offered, packets/s | delivered, packets/s | ÷ peak | dropped at the socket, packets/s |');
    L('| ---: | ---: | ---: | ---: |');
    for (const l of Q.levels) L(`| ${f(l.offered)}${l.level === null ? ' (max)' : ''} | ${f(l.pps)} | ${pct(l.pps / Q.peak)} | ${f(l.drops)} |`);
    L();
    L(`Peak ${f(Q.peak)} packets/s; at ${f(Q.factor, 1)}× the peak offered, ${f(Q.atMax.pps)} delivered: **${pct(Q.overload)} of the peak**.`);
    L();
  }
  L('## Where the time goes (one CPU for the forwarder)');
  L();
  L('CPU 1\'s time per delivered packet (µs), from /proc/stat, at each forwarder\'s peak (for the kernel, at the generator\'s maximum): '
    + '*user* is JavaScript and WebAssembly, of which *core* is the pump\'s own timer around `core.process`; *system* is the system calls '
    + '(`recvmmsg` copying the datagrams out; `sendmmsg` building each datagram and taking it through UDP and IP output, route, neighbour and qdisc); '
    + '*softirq* is the receive path (IP input, socket lookup and enqueue, wake-ups; for the kernel, the whole forwarding).');
  L();
  L('| forwarder | user (core) | system | softirq | total | CPU 1 idle | mean batch |');
  L('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results.filter((x) => x.cpus === 1)) {
    L(`| ${r.name} | ${f(r.split.user, 2)}${r.core !== undefined ? ` (${f(r.core, 2)})` : ''} | ${f(r.split.system, 2)} | ${f(r.split.softirq, 2)} | `
      + `${f(r.split.total, 2)} | ${pct(r.split.idle)} | ${r.batch !== undefined ? f(r.batch, 1) : ''} |`);
  }
  L();
  L(`At the generator's maximum the pump with 1 worker received ${f(p1.received)} packets/s and its socket's full buffer dropped ${f(p1.socketDrops)} packets/s; `
    + `the node:dgram pump received ${f(dg.received)} and dropped ${f(dg.socketDrops)}. `
    + `With 2 workers at their peak, the two busiest threads of the pump (the workers) were busy ${p2.threads.map((x) => pct(x)).join(' and ')} of a CPU. `
    + `The generator used ${pct(r1.genCpu)} of CPU 0 and offered ${f(r1.gen)} frames/s alongside kernel routing.`);
  L();
  L('## What limits it');
  L();
  L(`- **The kernel's UDP socket path, not the balancing.** With its receive path on the other CPU, the pump spends ${f(p1r.split.total, 2)} µs of its CPU per packet `
    + `at its peak: ${f(p1r.split.system, 2)} µs in system calls (\`recvmmsg\` copying datagrams out; \`sendmmsg\` taking each GSO message through UDP and IP output, `
    + `then the software segmentation and the device, per datagram) and ${f(p1r.split.user, 2)} µs in JavaScript and WebAssembly, of which ${f(p1r.core, 2)} µs in the core. `
    + `The kernel forwards a packet with ${f(d1.split.total, 2)} µs (DNAT) or ${f(r1.split.total, 2)} µs (routing), all in softirq: it builds no new datagram, `
    + 'never crosses into user space, and does no socket lookup, enqueue or wake-up.');
  L(`- **UDP GSO** (\`udpSegmentation\`, on by default) sends each run of equal-length datagrams to one appliance as one message: one route lookup, one skb `
    + `through UDP/IP output and the qdisc, segmented late. Without it (same run, same set-up): ${f(pp.peak.pps)} packets/s at the peak, ${f(pp.split.total, 2)} µs `
    + `per packet; with it ${f(p1r.peak.pps)}, ${f(p1r.split.total, 2)} µs (${ratio(p1r.peak.pps, pp.peak.pps)}). `
    + 'Runs are long when the datagrams of a batch have one size (floods of small packets, bulk TCP at the MTU); mixed sizes fall back to shorter runs.');
  L('- **Overload on the pump\'s own CPU.** Every offered packet, delivered or dropped at the pump\'s full socket buffer, first goes through the receive path in '
    + 'softirq on the CPU that RPS (or a NIC queue\'s interrupt) assigns, and softirq runs before any thread. With the receive path on the pump\'s CPU, '
    + `overload takes that CPU from the pump: it delivers ${pct(p1.overload)} of its peak at ${f(p1.overloadFactor, 1)}× the peak offered, at ${f(p1.split.softirq, 2)} µs `
    + 'of softirq per delivered packet at the peak. The pump\'s own loop does not collapse'
    + `${Q ? ` (${pct(Q.overload)} of its peak at ${f(Q.factor, 1)}× with its receive path elsewhere, above)` : ''}: the loss is the kernel\'s cost of receiving what it then drops. `
    + 'Deploy with the NIC\'s receive queues (RSS, or RPS) on CPUs that run no worker, and `workers` = the remaining CPUs.');
  L(`- **The generator shares the machine.** It spends about ${f((r1.genCpu * 1e6) / r1.gen, 2)} µs of CPU 0 per frame (AF_PACKET \`sendmmsg\`, the veth, `
    + `the hand-off to CPU 1), so it offers at most ≈ ${f(r1.gen)} frames/s: kernel routing is bounded by it, and so is the pump with its receive path on CPU 0. `
    + 'With 2 workers one worker shares CPU 0 with the generator, and with RPS over both CPUs half the receive path runs there too: the 2-worker rates are '
    + 'what the machine does with load generation on board, a lower bound for two cores given to the pump.');
  L(`- **node:dgram** (no addon): ${f(dg.split.total, 2)} µs per packet at its peak of ${f(dg.peak.pps)} packets/s, one event and one \`recvmsg\` per datagram in, `
    + `one \`sendmsg\` out; with its receive path on its CPU it collapses under overload (${pct(dg.overload)} of its peak at ${f(dg.overloadFactor, 1)}×). `
    + 'It is the fallback where the addon cannot be built, and the pump logs when it runs on it.');
  L();
  L('## Set-up');
  L();
  L('- Two network namespaces. The generator (`bench/pump/gen.c`, pinned to CPU 0 with `taskset`) writes whole VXLAN frames (VNI 1001, outer UDP source port '
    + `from the inner flow, outer UDP checksum 0) to a veth with AF_PACKET: ${meta.inner}-byte inner Ethernet/IPv4/TCP (ACK) frames of ${f(meta.flows)} flows. `
    + 'In the forwarder namespace the veth peer hands each frame to the receive path, which RPS runs on CPU 1 (one-CPU rows), on CPU 0 (pump-1r) or on both CPUs (two-CPU rows).');
  L('- Delivery is counted in one place for every forwarder: the appliances 10.212.1.10-12 sit behind a second veth (p0) with static neighbour entries; '
    + 'p0 has no UDP segmentation offload (`ethtool -K p0 tx-udp-segmentation off`), so GSO messages are cut into datagrams in software before it, '
    + 'as for a NIC without that offload, and p0\'s transmit counter counts one frame per datagram. Its peer drops each frame at once (another MAC).');
  L(`- The pump is the real command, pinned with \`taskset\` (CPU 1 for 1 worker, CPUs 0-1 for 2 workers): \`${(p1.argv ?? []).join(' ')}\` with`);
  L();
  L('```json');
  L(JSON.stringify(meta.pumpConfig));
  L('```');
  L();
  L('  (`"workers": 2` and port 4790 for the 2-worker pump; `"udpSegmentation": false` and port 4793 for the row without GSO). The node:dgram row is `node bench/pump/worker.mjs --io dgram --config …` with the same configuration, pinned to CPU 1.');
  L('- The kernel\'s DNAT is one nftables rule, present only during its windows (so conntrack costs nothing in the others): '
    + '`ip daddr 10.212.0.1 udp dport 4792 dnat to jhash ip saddr . udp sport mod 3 map { 0 : 10.212.1.10, 1 : 10.212.1.11, 2 : 10.212.1.12 }`. '
    + 'For routing, the generator addresses the appliances itself and the namespace has `net.ipv4.ip_forward=1`.');
  L(`- Flows in the pumps' flow tables at the end: ${f(p1.flowTableUsed)} (1 worker), ${f(p2.flowTableUsed)} (2 workers, both tables); `
    + `packets per appliance (1 worker): ${(p1.perBackend ?? []).map((x) => f(x)).join(' / ')}.`);
  L();
  L('Windows at the generator\'s maximum, delivered packets/s in order (other processes\' CPU in brackets):');
  L();
  for (const r of results) L(`- ${r.id}: ${r.sat.map((w) => `${f(w.pps)} (${pct(w.foreignCpu)})`).join(', ')}`);
  writeFileSync(values.out, lines.join('\n') + '\n');
  if (!previous) writeFileSync(values.out.replace(/\.md$/, '.json'), JSON.stringify({ meta, results: measured.map(strip) }, null, 1) + '\n');
  console.log(`wrote ${values.out}`);
}

/** The JSON keeps what was measured, not what the report derives from it. */
function strip(r) {
  const { id, name, cpus: c, rps, sat, sweep, calibration, argv, flowTableUsed, perBackend } = r;
  return { id, name, cpus: c, rps, sat, sweep, calibration, argv, flowTableUsed, perBackend };
}
