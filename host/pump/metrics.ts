// Prometheus metrics of a running dataplane: the exposition writer, the core's counters
// and the HTTP endpoint (`haports pump --metrics HOST:PORT`, GET /metrics).
//
// The text exposition format 0.0.4 is written here directly (it is small): for each
// family a `# HELP` and a `# TYPE` line, then one `name{label="value"} number` line per
// sample; label values escape \\, " and newline; counters end in `_total`. u64 counters
// of the core are read as BigInt and printed exactly.
//
// Families written by this file (the pump and the probes add theirs; see README):
//   haports_<counter>_total                 global core counters (packets, bytes, ...)
//   haports_drops_total{stage,listener,reason}  drops by reason; stage "core" here
//   haports_rule_{packets,bytes,flows}_total{rule}
//   haports_backend_{packets,bytes,flows}_total{pool,backend}
//   haports_backend_up{pool,backend}        1 unless its probe marked it down
//   haports_backend_draining{pool,backend}  1 when the operator drains it
//   haports_backend_info{pool,backend,address}
//   haports_flow_table_entries, haports_flow_table_capacity

import { createServer, type Server } from 'node:http';
import {
  BACKEND_DOWN, BACKEND_DRAINING, C_DROP_REASON_BASE, COUNTER_METRICS, COUNTERS, OBJECT_COUNTER_BYTES, OBJECT_COUNTERS,
  REASONS,
} from '../lib/abi.js';
import type { Core } from '../lib/core.js';

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type Labels = Record<string, string | number>;
type Value = number | bigint;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(v: Value): string {
  if (typeof v === 'bigint') return v.toString();
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/**
 * Collects metric families and renders the text exposition format. A family may be
 * continued later (the core, the pump and the probes all add to haports_drops_total,
 * say): its samples are still printed together, after its HELP and TYPE, as the format
 * requires.
 */
export class MetricsWriter {
  private readonly families = new Map<string, string[]>();
  private current: string[] = [];
  private currentName = '';

  /** Starts a family (once per name; a second call with the same name continues it). */
  family(name: string, type: 'counter' | 'gauge' | 'summary' | 'untyped', help: string): this {
    this.currentName = name;
    let lines = this.families.get(name);
    if (!lines) {
      lines = [`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`];
      this.families.set(name, lines);
    }
    this.current = lines;
    return this;
  }

  /** A sample of the current family (`suffix` for _sum/_count of summaries). */
  sample(value: Value, labels: Labels = {}, suffix = ''): this {
    const keys = Object.keys(labels);
    const l = keys.length === 0 ? '' : `{${keys.map((k) => `${k}="${escapeLabel(String(labels[k]))}"`).join(',')}}`;
    this.current.push(`${this.currentName}${suffix}${l} ${formatValue(value)}`);
    return this;
  }

  text(): string {
    let out = '';
    for (const lines of this.families.values()) out += lines.join('\n') + '\n';
    return out;
  }
}

/** Help of haports_drops_total, which the core's and the pump's drops share. */
export const DROPS_HELP = 'Packets dropped, by stage (core: the dataplane verdict; pump: before or after the core), '
  + 'listener and reason. Core reason no-rule counts packets that matched no rule.';

/** The core's families: global counters, drops by reason, rules, backends, flow table. */
export function writeCoreMetrics(w: MetricsWriter, core: Core): void {
  const dv = new DataView(core.memory.buffer);
  const u64 = (at: number) => dv.getBigUint64(at, true);
  const base = core.exports.countersPtr();
  COUNTERS.forEach((name, i) => {
    const [metric, help] = COUNTER_METRICS[name];
    w.family(metric, 'counter', help).sample(u64(base + i * 8));
  });

  w.family('haports_drops_total', 'counter', DROPS_HELP);
  REASONS.forEach((reason, i) => {
    if (reason) w.sample(u64(base + (C_DROP_REASON_BASE + i) * 8), { stage: 'core', listener: '', reason });
  });

  const names = core.names;
  const rules = core.exports.ruleCountersPtr();
  const ruleFamilies: [string, string, number][] = [
    ['haports_rule_packets_total', 'Packets forwarded by the rule.', OBJECT_COUNTERS.packets],
    ['haports_rule_bytes_total', 'Bytes forwarded by the rule.', OBJECT_COUNTERS.bytes],
    ['haports_rule_flows_total', 'New flows the rule created.', OBJECT_COUNTERS.newFlows],
  ];
  ruleFamilies.forEach(([metric, help, field]) => {
    w.family(metric, 'counter', help);
    names.rules.forEach((rule, r) => w.sample(u64(rules + r * OBJECT_COUNTER_BYTES + field), { rule }));
  });

  const backends = core.exports.backendCountersPtr();
  const backendFamilies: [string, string, number][] = [
    ['haports_backend_packets_total', 'Packets forwarded to the backend.', OBJECT_COUNTERS.packets],
    ['haports_backend_bytes_total', 'Bytes forwarded to the backend.', OBJECT_COUNTERS.bytes],
    ['haports_backend_flows_total', 'New flows assigned to the backend.', OBJECT_COUNTERS.newFlows],
  ];
  const labelsOf = (b: number) => ({ pool: names.pools[names.backendPool[b]] ?? '', backend: names.backends[b] });
  backendFamilies.forEach(([metric, help, field]) => {
    w.family(metric, 'counter', help);
    names.backends.forEach((_, b) => w.sample(u64(backends + b * OBJECT_COUNTER_BYTES + field), labelsOf(b)));
  });
  w.family('haports_backend_up', 'gauge', 'Backend health: 1 unless its health probe marked it down.');
  names.backends.forEach((_, b) => w.sample(core.exports.backendState(b) === BACKEND_DOWN ? 0 : 1, labelsOf(b)));
  w.family('haports_backend_draining', 'gauge', 'Backend admin state: 1 when draining (no new flows).');
  names.backends.forEach((_, b) => w.sample(core.exports.backendState(b) === BACKEND_DRAINING ? 1 : 0, labelsOf(b)));
  const described = core.describe().backends;
  w.family('haports_backend_info', 'gauge', 'Backend address, by pool and name (always 1).');
  names.backends.forEach((_, b) => w.sample(1, { ...labelsOf(b), address: described[b].address }));

  w.family('haports_flow_table_entries', 'gauge', 'Flow-table entries in use.').sample(core.exports.flowTableUsed());
  w.family('haports_flow_table_capacity', 'gauge', 'Flow-table capacity (entries).').sample(core.exports.flowTableCapacity());
}

export interface ListenAddress {
  host: string;
  port: number;
}

/**
 * Parses "HOST:PORT", "[IPv6]:PORT" or, when `defaultPort` is given, a bare host.
 * Throws a RangeError naming the problem.
 */
export function parseHostPort(text: string, defaultPort?: number): ListenAddress {
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (v6) {
    host = v6[1];
    portText = v6[2];
  } else {
    const colon = text.lastIndexOf(':');
    if (colon >= 0 && text.indexOf(':') !== colon) {
      throw new RangeError(`${JSON.stringify(text)}: write an IPv6 address in brackets, [ADDRESS]:PORT`);
    }
    host = colon >= 0 ? text.slice(0, colon) : text;
    portText = colon >= 0 ? text.slice(colon + 1) : undefined;
  }
  if (host === '') throw new RangeError(`${JSON.stringify(text)}: no host`);
  let port: number;
  if (portText === undefined) {
    if (defaultPort === undefined) throw new RangeError(`${JSON.stringify(text)}: expected HOST:PORT`);
    port = defaultPort;
  } else {
    port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : NaN;
    if (!(port >= 0 && port <= 65535)) throw new RangeError(`${JSON.stringify(text)}: port must be 0-65535`);
  }
  return { host, port };
}

/**
 * Serves GET /metrics (and HEAD) with `render()`'s text; 404 elsewhere. Resolves once
 * listening; the address actually bound is `server.address()` (port 0 picks one).
 */
export function startMetricsServer(at: ListenAddress, render: () => string): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    let body: string;
    try {
      body = render();
    } catch (e: any) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${e?.message ?? e}\n`);
      return;
    }
    res.writeHead(200, { 'content-type': CONTENT_TYPE, 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  server.keepAliveTimeout = 65_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
