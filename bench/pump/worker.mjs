// One pump of the benchmark built directly on the Pump class, in its own process, so the
// benchmark can run the I/O path a pump configuration cannot choose: `--io dgram` (the
// node:dgram path, one event per datagram, what the pump falls back to without the
// native addon) or `--io native` (the addon's recvmmsg/sendmmsg, one worker; what
// `haports pump` runs). The configuration is the benchmark's (bench/pump/run.mjs
// writes the same one for `haports pump`). Reads commands on stdin: "stats" prints one
// JSON line of counters, "exit" stops the pump and exits.
//
//   node bench/pump/worker.mjs --io dgram --config CONFIG.json
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Core } from '../../build/host/core.mjs';
import { Pump, readPumpSettings } from '../../build/host/pump.mjs';
import { loadNative } from '../../build/host/udpio.mjs';

const { values } = parseArgs({ options: { io: { type: 'string', default: 'dgram' }, config: { type: 'string' } } });
if (!values.config || !['dgram', 'native'].includes(values.io)) {
  console.error('usage: node bench/pump/worker.mjs --io dgram|native --config CONFIG.json');
  process.exit(2);
}
const core = Core.load();
core.configure(readFileSync(values.config, 'utf8'));
const { settings, errors } = readPumpSettings(core.describe(), core.maxBatch);
if (!settings) throw new Error(errors.join('\n'));
let native = null;
if (values.io === 'native') {
  ({ native } = loadNative());
  if (!native) throw new Error('the native addon does not load (npm run build)');
}
const pump = new Pump(core, settings, { native });
await pump.start();

const stats = () => {
  const s = pump.snapshot();
  const sum = (f) => s.listeners.reduce((n, l) => n + f(l), 0);
  return {
    received: sum((l) => l.counters.receivedPackets), sent: sum((l) => l.counters.sentPackets),
    socketDrops: sum((l) => l.socketDrops ?? 0), batches: sum((l) => l.counters.batches),
    batchPackets: sum((l) => l.counters.batchPackets), coreSeconds: s.coreSeconds,
    flowTableUsed: core.exports.flowTableUsed(), perBackend: core.backendCounters().map((c) => c.packets),
  };
};
process.stdout.write(JSON.stringify({ ready: true, io: values.io, pid: process.pid }) + '\n');
createInterface({ input: process.stdin }).on('line', async (line) => {
  if (line === 'stats') process.stdout.write(JSON.stringify(stats()) + '\n');
  if (line === 'exit') { await pump.stop(); process.exit(0); }
});
