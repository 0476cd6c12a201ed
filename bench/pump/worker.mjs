// One pump of the benchmark, in its own process: `--mode balance` (the real pump: core,
// Maglev, flow table) or `--mode pass` (the same sockets, decapsulation, queue, batches
// and sends, every packet to the first appliance, no core). Reads commands on stdin:
// "stats" prints one JSON line of counters, CPU time and a timestamp.
import { parseArgs } from 'node:util';
import { createInterface } from 'node:readline';
import { Core } from '../../build/host/core.mjs';
import { Pump, readPumpSettings } from '../../build/host/pump.mjs';

const { values } = parseArgs({
  options: {
    mode: { type: 'string' }, bind: { type: 'string' }, protocol: { type: 'string', default: 'vxlan' },
    appliances: { type: 'string' }, batch: { type: 'string', default: '256' },
  },
});
const appliances = values.appliances.split(',');
const config = {
  hashSeed: '0x1f2e3d4c5b6a7988',
  flowTable: { capacity: 65536 },
  frontends: [{ name: 'fe', address: '10.250.0.1' }],
  backendPools: [{ name: 'nvas', backends: appliances.map((a, i) => ({ name: `nva-${i}`, address: a })) }],
  rules: [{ name: 'ha', frontend: 'fe', backendPool: 'nvas', protocol: 'all', frontendPort: 0, backendPort: 0, floatingIp: true }],
  pump: {
    // The generator (bench/pump/gen.c) sends VNI 1001 (VXLAN) or 2002 (GENEVE) from the pump's own addresses.
    listeners: [{ name: 'l', protocol: values.protocol, frontend: 'fe', bind: values.bind, vnis: [1001, 2002], peers: ['10.212.0.0/24', '127.0.0.0/8'] }],
    batchSize: Number(values.batch),
  },
};
const core = Core.load();
core.configure(config);
const { settings, errors } = readPumpSettings(core.describe(), core.maxBatch);
if (!settings) throw new Error(errors.join('\n'));
const pump = new Pump(core, settings, { passThrough: values.mode === 'pass' });
await pump.start();

const stats = () => {
  const c = pump.listeners[0].counters;
  const cpu = process.cpuUsage();
  return {
    t: performance.now(), cpuUs: cpu.user + cpu.system, received: c.receivedPackets, sent: c.sentPackets,
    batches: c.batches, batchPackets: c.batchPackets, coreMs: pump.coreMs, drops: c.drops,
    flowTableUsed: core.exports.flowTableUsed(), forwarded: core.counters().forwarded,
    perBackend: core.backendCounters().map((c) => c.packets),
  };
};
process.stdout.write(JSON.stringify({ ready: true, mode: values.mode }) + '\n');
createInterface({ input: process.stdin }).on('line', async (line) => {
  if (line === 'stats') process.stdout.write(JSON.stringify(stats()) + '\n');
  if (line === 'exit') { await pump.stop(); process.exit(0); }
});
