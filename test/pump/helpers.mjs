// Helpers of the pump's host tests: packet builders, appliances on loopback addresses,
// and a pump over loopback (no namespaces, no root).
import dgram from 'node:dgram';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Core } from '../../build/host/core.mjs';
import { Pump, readPumpSettings } from '../../build/host/pump.mjs';
import { loadNative } from '../../build/host/udpio.mjs';
import { checksumsValid, concat, ether, packet } from '../lib/packets.mjs';

/** IPv4 + UDP (or TCP) with correct checksums: what arrives in a tunnel. */
export const ipv4 = (fields) => packet({ proto: 17, dport: 2000, checksums: true, ...fields });
export { checksumsValid, concat, ether };

export function waitFor(pred, timeoutMs = 3000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = () => {
      const v = pred();
      if (v) return resolve(v);
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

/** UDP sockets on 127.0.0.2… (one port for all), recording what each receives. */
export async function appliances(count, family = 4) {
  for (let attempt = 0; ; attempt++) {
    const list = [];
    let port = 0;
    try {
      for (let i = 0; i < count; i++) {
        const address = family === 4 ? `127.0.0.${i + 2}` : '::1';
        const s = dgram.createSocket(family === 4 ? 'udp4' : 'udp6');
        const a = { address, socket: s, got: [] };
        list.push(a);
        s.on('message', (msg, rinfo) => a.got.push({ msg, rinfo }));
        await new Promise((resolve, reject) => { s.once('error', reject); s.bind(port, address, resolve); });
        port = s.address().port;
      }
      return { list, port, close: () => list.forEach((a) => a.socket.close()) };
    } catch (e) {
      // The port picked on the first address is taken on another (tests run in parallel).
      for (const a of list) try { a.socket.close(); } catch { /* never bound */ }
      if (e.code !== 'EADDRINUSE' || attempt === 9) throw e;
    }
  }
}

export function baseConfig(appliancesList, pumpSection, ruleExtra = {}) {
  return {
    hashSeed: '0x1f2e3d4c5b6a7988',
    flowTable: { capacity: 4096 },
    frontends: [{ name: 'fe', address: '10.0.0.100' }, { name: 'fe2', address: '10.0.0.101' }],
    backendPools: [{ name: 'p', backends: appliancesList.map((a, i) => ({ name: `a${i}`, address: a.address })) }],
    rules: [
      { name: 'ha', frontend: 'fe', backendPool: 'p', protocol: 'all', frontendPort: 0, backendPort: 0, floatingIp: true, ...ruleExtra },
      { name: 'ha2', frontend: 'fe2', backendPool: 'p', protocol: 'all', frontendPort: 0, backendPort: 0, floatingIp: true },
    ],
    pump: pumpSection,
  };
}

/**
 * The I/O path the pump tests run on: HAPORTS_PUMP_IO=native runs them over the native
 * addon (recvmmsg/sendmmsg through wasm memory), which must then load; otherwise node:dgram.
 */
export const IO = process.env.HAPORTS_PUMP_IO === 'native' ? 'native' : 'js';
let nativeUdp = null;
if (IO === 'native') {
  const { native, reason } = loadNative();
  if (!native) throw new Error(`HAPORTS_PUMP_IO=native, but the native UDP addon does not load: ${reason}`);
  nativeUdp = native;
}

/** A Pump on 127.0.0.1 (ephemeral ports), with its core; `logs` collects its log records. */
export async function startPump(config, opts = {}) {
  const core = Core.load();
  core.configure(config);
  const { settings, errors } = readPumpSettings(core.describe(), core.maxBatch);
  if (!settings) throw new Error(errors.join('\n'));
  const logs = [];
  const pump = new Pump(core, settings, { log: (level, msg, fields) => logs.push({ level, msg, ...fields }), native: nativeUdp, ...opts });
  await pump.start();
  const sender = dgram.createSocket('udp4');
  await new Promise((r) => sender.bind(0, '127.0.0.1', r));
  const send = (listener, datagram) => sender.send(datagram, pump.addresses()[listener].port, '127.0.0.1');
  return { core, pump, logs, send, sender, close: async () => { await pump.stop(); sender.close(); } };
}

const PUMP = fileURLToPath(new URL('../../build/host/pump.mjs', import.meta.url));

/**
 * The pump command in a child process (inside network namespace `netns` when given): its
 * JSON log lines as they come, and its exit code.
 */
export function spawnPump(args, { netns } = {}) {
  const argv = [process.execPath, PUMP, ...args];
  const child = netns
    ? spawn('ip', ['netns', 'exec', netns, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  const lines = [];
  let partial = '';
  child.stderr.on('data', (d) => {
    const parts = (partial + d).split('\n');
    partial = parts.pop();
    for (const l of parts) if (l.startsWith('{')) lines.push(JSON.parse(l));
  });
  const exited = new Promise((r) => child.on('exit', (code) => r(code)));
  return { child, lines, exited };
}
