// Helpers of the pump's host tests: packet builders, appliances on loopback addresses,
// and a pump over loopback (no namespaces, no root).
import dgram from 'node:dgram';
import { Core } from '../../build/host/core.mjs';
import { Pump, readPumpSettings } from '../../build/host/pump.mjs';

export function checksum(bytes, initial = 0) {
  let sum = initial;
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += (bytes[i] << 8) | bytes[i + 1];
  if (bytes.length & 1) sum += bytes[bytes.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

const v4 = (a) => a.split('.').map(Number);

/** IPv4 + UDP or TCP with correct checksums. */
export function ipv4({ src, dst, proto = 17, sport = 1000, dport = 2000, payload = new Uint8Array(0), tcpFlags = 0x02 }) {
  const l4len = proto === 6 ? 20 : 8;
  const total = 20 + l4len + payload.length;
  const p = new Uint8Array(total);
  const dv = new DataView(p.buffer);
  p[0] = 0x45; dv.setUint16(2, total); dv.setUint16(4, 1); p[8] = 64; p[9] = proto;
  p.set(v4(src), 12); p.set(v4(dst), 16);
  dv.setUint16(10, ~checksum(p.subarray(0, 20)) & 0xffff);
  const l4 = p.subarray(20);
  dv.setUint16(20, sport); dv.setUint16(22, dport);
  if (proto === 6) {
    dv.setUint32(24, 1); l4[12] = 0x50; l4[13] = tcpFlags; dv.setUint16(34, 65535);
  } else {
    dv.setUint16(24, l4len + payload.length);
  }
  l4.set(payload, l4len);
  const pseudo = new Uint8Array(12);
  pseudo.set(p.subarray(12, 20)); pseudo[9] = proto; new DataView(pseudo.buffer).setUint16(10, l4.length);
  const c = ~checksum(l4, checksum(pseudo)) & 0xffff;
  dv.setUint16(proto === 6 ? 36 : 26, proto === 17 && c === 0 ? 0xffff : c);
  return p;
}

/** Whether an IPv4 packet's header and UDP/TCP checksums are right. */
export function checksumsValid(p) {
  if (checksum(p.subarray(0, 20)) !== 0xffff) return false;
  const total = (p[2] << 8) | p[3];
  const l4 = p.subarray(20, total);
  const pseudo = new Uint8Array(12);
  pseudo.set(p.subarray(12, 20)); pseudo[9] = p[9]; new DataView(pseudo.buffer).setUint16(10, l4.length);
  return checksum(l4, checksum(pseudo)) === 0xffff;
}

export function ether(inner, type = 0x0800) {
  const e = new Uint8Array(14 + inner.length);
  e.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
  e[12] = type >> 8; e[13] = type & 0xff;
  e.set(inner, 14);
  return e;
}

export const concat = (...parts) => Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.length)));

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

/** A Pump on 127.0.0.1 (ephemeral ports), with its core; `logs` collects its log records. */
export async function startPump(config, opts = {}) {
  const core = Core.load();
  core.configure(config);
  const { settings, errors } = readPumpSettings(core.describe(), core.maxBatch);
  if (!settings) throw new Error(errors.join('\n'));
  const logs = [];
  const pump = new Pump(core, settings, { log: (level, msg, fields) => logs.push({ level, msg, ...fields }), ...opts });
  await pump.start();
  const sender = dgram.createSocket('udp4');
  await new Promise((r) => sender.bind(0, '127.0.0.1', r));
  const send = (listener, datagram) => sender.send(datagram, pump.addresses()[listener].port, '127.0.0.1');
  return { core, pump, logs, send, sender, close: async () => { await pump.stop(); sender.close(); } };
}
