// What the Node library predicts for a connection: the core (build/host/core.mjs, the
// release module build/haports.wasm) given a synthetic TCP SYN of the connection's
// 5-tuple as Envoy sees it (client → listener), with the same configuration and the
// same ingress frontend as the filter. Also: reading the haports configuration out of
// an example listeners.yaml.

import { readFileSync } from 'node:fs';
import { Core, NONE } from '../../build/host/core.mjs';
import { addressBytes, packet } from '../lib/packets.mjs';

export { addressBytes };

/** A TCP SYN (IPv4 or IPv6, raw IP) from src:sport to dst:dport. */
export function synPacket(src, sport, dst, dport) {
  return packet({ src, dst, proto: 6, sport, dport, tcpFlags: 0x02 });
}

/** Splits "1.2.3.4:80" / "[::1]:80" into [address, port]. */
export function splitEndpoint(text) {
  const m = text.match(/^\[(.*)\]:(\d+)$/) ?? text.match(/^([^:]*):(\d+)$/);
  if (!m) throw new Error(`not an endpoint: ${text}`);
  return [m[1], Number(m[2])];
}

export class Predictor {
  constructor(config) {
    this.config = typeof config === 'string' ? JSON.parse(config) : config;
    this.core = Core.load();
    this.core.configure(this.config);
    const ingressName = this.config.filter?.ingressFrontend;
    this.ingress = ingressName == null ? NONE : this.core.names.frontends.indexOf(ingressName);
    this.now = 1000;
  }

  /** The verdict for a connection src:sport → dst:dport: { action, backend (name or null), backendIndex, rule }. */
  predict(src, sport, dst, dport) {
    this.core.load([synPacket(src, sport, dst, dport)]);
    this.core.process(1, this.now++, this.ingress);
    const v = this.core.verdict(0);
    const b = v.action === 'forward' ? v.backend : null;
    return { action: v.action, reason: v.reason, backend: b == null ? null : this.core.names.backends[b], backendIndex: b, rule: v.rule };
  }

  setHealth(name, up) {
    const b = this.core.names.backends.indexOf(name);
    if (b < 0) throw new Error(`no backend ${name}`);
    this.core.setBackendHealth(b, up);
  }

  backendAddress(index) {
    let i = 0;
    for (const pool of this.config.backendPools) {
      for (const b of pool.backends) if (i++ === index) return b.address;
    }
    return null;
  }
}

/**
 * The haports configuration inside an example listeners.yaml: the block scalar after
 * `value: |` of the Wasm filter's configuration. Returns { json, text, start, end }
 * (start/end: the lines of the block, for replacing it).
 */
export function listenerConfig(yamlText) {
  const lines = yamlText.split('\n');
  const at = lines.findIndex((l) => /^\s*value: \|\s*$/.test(l));
  if (at < 0) throw new Error('no `value: |` block in the listener file');
  const indent = lines[at].search(/\S/);
  let end = at + 1;
  while (end < lines.length && (lines[end].trim() === '' || lines[end].search(/\S/) > indent)) end++;
  const block = lines.slice(at + 1, end);
  const pad = Math.min(...block.filter((l) => l.trim()).map((l) => l.search(/\S/)));
  const text = block.map((l) => l.slice(pad)).join('\n');
  return { json: JSON.parse(text), text, start: at + 1, end, pad };
}

/** The listener file with its haports configuration replaced by `config` (object or text). */
export function withListenerConfig(yamlText, config) {
  const { start, end, pad } = listenerConfig(yamlText);
  const text = typeof config === 'string' ? config : JSON.stringify(config, null, 2);
  const lines = yamlText.split('\n');
  const block = text.split('\n').map((l) => ' '.repeat(pad) + l);
  return [...lines.slice(0, start), ...block, ...lines.slice(end)].join('\n');
}

export function readListenerConfig(path) {
  return listenerConfig(readFileSync(path, 'utf8')).json;
}
