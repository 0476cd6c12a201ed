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
import { BACKEND_DOWN, BACKEND_DRAINING, C_DROP_REASON_BASE, COUNTER_METRICS, COUNTERS, REASONS } from '../lib/abi.js';
import type { Core, Described, ObjectCounters } from '../lib/core.js';

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

/**
 * What the core's metrics are made of, as plain numbers: a worker sends one to the
 * process that serves the metrics, which adds them up (addCoreSnapshots).
 */
export interface CoreSnapshot {
  /** Every global u64 counter slot (COUNTER_SLOTS of them). */
  counters: number[];
  backends: ObjectCounters[];
  rules: ObjectCounters[];
  /** Per backend: BACKEND_* (the same in every worker: health and admin state are configuration-wide). */
  backendStates: number[];
  flowTable: { used: number; capacity: number };
}

export function coreSnapshot(core: Core): CoreSnapshot {
  const dv = new DataView(core.memory.buffer);
  const base = core.exports.countersPtr();
  return {
    counters: Array.from({ length: core.exports.counterSlots() }, (_, i) => Number(dv.getBigUint64(base + i * 8, true))),
    backends: core.backendCounters(),
    rules: core.ruleCounters(),
    backendStates: Array.from({ length: core.exports.backendCount() }, (_, b) => core.exports.backendState(b)),
    flowTable: { used: core.exports.flowTableUsed(), capacity: core.exports.flowTableCapacity() },
  };
}

/** The sum of several workers' snapshots (states are taken from the first). */
export function addCoreSnapshots(list: CoreSnapshot[]): CoreSnapshot {
  const [first, ...rest] = list;
  const sumObjects = (a: ObjectCounters[], b: ObjectCounters[]) => a.map((x, i) => ({
    packets: x.packets + (b[i]?.packets ?? 0), bytes: x.bytes + (b[i]?.bytes ?? 0), newFlows: x.newFlows + (b[i]?.newFlows ?? 0),
  }));
  return rest.reduce((acc, s) => ({
    counters: acc.counters.map((v, i) => v + (s.counters[i] ?? 0)),
    backends: sumObjects(acc.backends, s.backends),
    rules: sumObjects(acc.rules, s.rules),
    backendStates: acc.backendStates,
    flowTable: { used: acc.flowTable.used + s.flowTable.used, capacity: acc.flowTable.capacity + s.flowTable.capacity },
  }), first);
}

/**
 * The core's families: global counters, drops by reason, rules, backends, flow table,
 * from one core or the sum of several workers' (names and addresses from `described`).
 */
export function writeCoreMetrics(w: MetricsWriter, from: Core | CoreSnapshot, described?: Described): void {
  const snap = 'exports' in from ? coreSnapshot(from) : from;
  const d = described ?? (from as Core).describe();
  COUNTERS.forEach((name, i) => {
    const [metric, help] = COUNTER_METRICS[name];
    w.family(metric, 'counter', help).sample(snap.counters[i]);
  });

  w.family('haports_drops_total', 'counter', DROPS_HELP);
  REASONS.forEach((reason, i) => {
    if (reason) w.sample(snap.counters[C_DROP_REASON_BASE + i], { stage: 'core', listener: '', reason });
  });

  const ruleFamilies: [string, string, keyof ObjectCounters][] = [
    ['haports_rule_packets_total', 'Packets forwarded by the rule.', 'packets'],
    ['haports_rule_bytes_total', 'Bytes forwarded by the rule.', 'bytes'],
    ['haports_rule_flows_total', 'New flows the rule created.', 'newFlows'],
  ];
  ruleFamilies.forEach(([metric, help, field]) => {
    w.family(metric, 'counter', help);
    d.rules.forEach((rule, r) => w.sample(snap.rules[r][field], { rule: rule.name }));
  });

  const backendFamilies: [string, string, keyof ObjectCounters][] = [
    ['haports_backend_packets_total', 'Packets forwarded to the backend.', 'packets'],
    ['haports_backend_bytes_total', 'Bytes forwarded to the backend.', 'bytes'],
    ['haports_backend_flows_total', 'New flows assigned to the backend.', 'newFlows'],
  ];
  const labelsOf = (b: number) => ({ pool: d.backendPools[d.backends[b].pool].name, backend: d.backends[b].name });
  backendFamilies.forEach(([metric, help, field]) => {
    w.family(metric, 'counter', help);
    d.backends.forEach((_, b) => w.sample(snap.backends[b][field], labelsOf(b)));
  });
  w.family('haports_backend_up', 'gauge', 'Backend health: 1 unless its health probe marked it down.');
  d.backends.forEach((_, b) => w.sample(snap.backendStates[b] === BACKEND_DOWN ? 0 : 1, labelsOf(b)));
  w.family('haports_backend_draining', 'gauge', 'Backend admin state: 1 when draining (no new flows).');
  d.backends.forEach((_, b) => w.sample(snap.backendStates[b] === BACKEND_DRAINING ? 1 : 0, labelsOf(b)));
  w.family('haports_backend_info', 'gauge', 'Backend address, by pool and name (always 1).');
  d.backends.forEach((be, b) => w.sample(1, { ...labelsOf(b), address: be.address }));

  w.family('haports_flow_table_entries', 'gauge', 'Flow-table entries in use.').sample(snap.flowTable.used);
  w.family('haports_flow_table_capacity', 'gauge', 'Flow-table capacity (entries).').sample(snap.flowTable.capacity);
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

/** An admin endpoint beside /metrics: its answer to a GET of its path (query in `url`). */
export type AdminRoute = (url: URL) => Promise<{ status: number; body: unknown }>;

/**
 * Serves GET /metrics (and HEAD) with `render()`'s text, and each of `routes` (path →
 * answer, as JSON); 404 elsewhere. Resolves once listening; the address actually bound
 * is `server.address()` (port 0 picks one).
 */
export function startMetricsServer(
  at: ListenAddress, render: () => string | Promise<string>, routes: Record<string, AdminRoute> = {},
): Promise<Server> {
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    const route = Object.hasOwn(routes, path) ? routes[path] : undefined;
    if (path !== '/metrics' && !route) {
      const paths = ['/metrics', ...Object.keys(routes)].join(', ');
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found; this endpoint serves ${paths}\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (route) {
      let answer: { status: number; body: unknown };
      try {
        answer = await route(url);
      } catch (e: any) {
        // A RangeError is the request's fault (a bad filter); anything else is ours.
        answer = { status: e instanceof RangeError ? 400 : 500, body: { error: String(e?.message ?? e) } };
      }
      const text = JSON.stringify(answer.body) + '\n';
      res.writeHead(answer.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(req.method === 'HEAD' ? undefined : text);
      return;
    }
    let body: string;
    try {
      body = await render();
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
