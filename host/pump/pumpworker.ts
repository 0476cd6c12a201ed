// One worker of the packet pump (cluster.ts starts them): a core of its own, the pump's
// listeners bound with SO_REUSEPORT on the shared addresses, and its batch loop. It
// parses nothing of the configuration itself: the core reads the text it is sent, and the
// pump section comes from the core's describe(), as in the single pump. Messages:
//
//   ← start                 bind the listeners (in worker order: the steering program
//                           numbers sockets by the order they joined their group)
//   ← probe                 a probe result, to apply to this core as the control did
//   ← configure {text}      reload: pump.reconfigure (flows kept), new sockets bound on
//                           `bind`, in worker order
//   ← snapshot              counters for the metrics
//   ← flows {filter, limit} this worker's tracked flows (the admin endpoint's /flows)
//   ← stop                  stop gracefully, send the final counters
//   → log / started / configured / snapshot / flows / stopped / failed

import { parentPort, workerData } from 'node:worker_threads';
import { Core } from '../lib/core.js';
import { flowWalk } from '../lib/lookup.js';
import { coreSnapshot } from './metrics.js';
import { Pump, stageText } from './pump.js';
import { loadNative } from './udpio.js';

export interface WorkerData {
  index: number;
  workers: number;
  text: string;
  /** Use the native addon (the cluster decided: it loads). */
  native: boolean;
}

if (!parentPort) throw new Error('pumpworker.ts runs as a worker thread of the pump (cluster.ts)');
const port = parentPort;
const data = workerData as WorkerData;

const post = (m: Record<string, unknown>) => port.postMessage(m);
const log = (level: string, msg: string, fields: Record<string, unknown> = {}) =>
  post({ type: 'log', level, msg, fields: { worker: data.index, ...fields } });

const core = Core.load();
core.configure(data.text);
const staged = stageText(data.text, core.maxBatch);
if ('errors' in staged) throw new Error(`worker ${data.index}: ${staged.errors.join('; ')}`);
const native = data.native ? loadNative().native : null;
if (data.native && !native) throw new Error(`worker ${data.index}: the native UDP addon does not load here`);
const pump = new Pump(core, staged.settings, { log, native, reusePort: data.workers > 1 });

port.on('message', async (m: any) => {
  try {
    switch (m.type) {
      case 'start':
        for (const [name, p] of Object.entries(m.ports ?? {})) pump.ports.set(name, p as number);
        await pump.start();
        post({ type: 'started', id: m.id, fds: pump.fds(), addresses: pump.addresses() });
        break;
      case 'probe':
        core.probeResult(m.target, m.ok, m.now);
        break;
      case 'configure': {
        const next = stageText(m.text, core.maxBatch);
        if ('errors' in next) throw new Error(next.errors.join('; '));
        const report = await pump.reconfigure(m.text, next.settings, { deferBind: !!m.deferBind });
        post({ type: 'configured', id: m.id, report, fds: pump.fds() });
        break;
      }
      case 'bind':
        for (const [name, p] of Object.entries(m.ports ?? {})) pump.ports.set(name, p as number);
        post({ type: 'bound', id: m.id, failed: await pump.bindPending(), fds: pump.fds(), addresses: pump.addresses() });
        break;
      case 'snapshot':
        post({ type: 'snapshot', id: m.id, core: coreSnapshot(core), pump: pump.snapshot() });
        break;
      case 'flows': {
        // 16 pages (up to 4,096 entries in use) at a time, then the packets waiting get their turn.
        const walk = flowWalk(core, m.filter ?? {}, m.limit);
        while (!walk.step(16)) await new Promise((r) => setImmediate(r));
        post({ type: 'flows', id: m.id, flows: walk.flows, used: core.exports.flowTableUsed() });
        break;
      }
      case 'stop': {
        await pump.stop();
        post({ type: 'stopped', id: m.id, core: coreSnapshot(core), pump: pump.snapshot(), uptimeSeconds: pump.uptimeSeconds() });
        port.close();
        break;
      }
      default:
        throw new Error(`unknown message ${JSON.stringify(m.type)}`);
    }
  } catch (e: any) {
    post({ type: 'failed', id: m.id, step: m.type, error: e?.code ?? String(e?.message ?? e), message: String(e?.message ?? e) });
  }
});
post({ type: 'ready' });
