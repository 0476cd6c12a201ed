// The pump's admin endpoints, served beside /metrics (`--metrics HOST:PORT`), as JSON:
//
//   GET /ready    200 {"ready": true, ...} or 503 with the reasons it cannot forward (for
//                 load balancers' and orchestrators' readiness checks; announce.ts)
//   GET /flows    the tracked flows of every worker, filtered and bounded:
//                 ?backend=NAME&rule=NAME&proto=tcp&address=IP&port=N&established=1&limit=N
//                 (limit: default 100, at most 10,000)
//   GET /lookup   where a flow goes and why, as `haports lookup` answers it, with the
//                 running configuration and health, and the flow table of the running
//                 pump (a tracked flow keeps its backend):
//                 ?proto=tcp&src=IP&sport=N&dst=IP&dport=N[&frontend=NAME]
//
// Like the metrics, these name every appliance and flow: the endpoint binds loopback
// unless told otherwise.

import {
  findTracked, lookupFlow, withTracked, type FlowFilter, type FlowInfo, type FlowSpec, type Lookup,
} from '../lib/lookup.js';
import type { AdminRoute } from './metrics.js';

export interface AdminSources {
  ready: () => { reasons: string[]; announced: boolean | null };
  flows: (filter: FlowFilter, limit: number) => Promise<{ flows: (FlowInfo & { worker: number })[]; entries: number; truncated: boolean }>;
  /** What a lookup needs of the running pump. */
  lookup: (spec: FlowSpec, ingress: string | undefined) => {
    module: WebAssembly.Module; text: string; states: string[]; ingress: string;
  };
}

export const FLOWS_DEFAULT_LIMIT = 100;
export const FLOWS_MAX_LIMIT = 10_000;
/** Flows of one address scanned for a lookup's tracked entry. */
const LOOKUP_SCAN = 100_000;

function bad(message: string): RangeError {
  return new RangeError(message);
}

function intParam(q: URLSearchParams, name: string, min: number, max: number): number | undefined {
  const v = q.get(name);
  if (v === null) return undefined;
  if (!/^[0-9]+$/.test(v) || Number(v) < min || Number(v) > max) throw bad(`${name}: must be an integer ${min}-${max}, got ${JSON.stringify(v)}`);
  return Number(v);
}

const FLOW_PARAMS = ['backend', 'rule', 'proto', 'address', 'port', 'established', 'limit'];
const LOOKUP_PARAMS = ['proto', 'src', 'dst', 'sport', 'dport', 'frontend'];

function known(q: URLSearchParams, names: string[]): void {
  for (const k of q.keys()) if (!names.includes(k)) throw bad(`unknown parameter ${JSON.stringify(k)}; known: ${names.join(', ')}`);
}

export function adminRoutes(src: AdminSources): Record<string, AdminRoute> {
  return {
    '/ready': async () => {
      const { reasons, announced } = src.ready();
      return { status: reasons.length === 0 ? 200 : 503, body: { ready: reasons.length === 0, reasons, announced } };
    },
    '/flows': async (url) => {
      const q = url.searchParams;
      known(q, FLOW_PARAMS);
      const limit = intParam(q, 'limit', 0, FLOWS_MAX_LIMIT) ?? FLOWS_DEFAULT_LIMIT;
      const established = q.get('established');
      if (established !== null && !['0', '1', 'true', 'false'].includes(established)) throw bad('established: 1 or 0');
      const filter: FlowFilter = {
        backend: q.get('backend') ?? undefined,
        rule: q.get('rule') ?? undefined,
        proto: q.get('proto') ?? undefined,
        address: q.get('address') ?? undefined,
        port: intParam(q, 'port', 0, 65535),
        established: established === null ? undefined : established === '1' || established === 'true',
      };
      const r = await src.flows(filter, limit);
      return { status: 200, body: { flows: r.flows, returned: r.flows.length, truncated: r.truncated, limit, tableEntries: r.entries } };
    },
    '/lookup': async (url) => {
      const q = url.searchParams;
      known(q, LOOKUP_PARAMS);
      const proto = q.get('proto');
      const from = q.get('src');
      const to = q.get('dst');
      if (!proto || !from || !to) throw bad('give proto, src and dst (and sport, dport)');
      const spec: FlowSpec = {
        proto: (/^[0-9]+$/.test(proto) ? Number(proto) : proto.toLowerCase()) as FlowSpec['proto'],
        src: from, dst: to, sport: intParam(q, 'sport', 0, 65535) ?? 0, dport: intParam(q, 'dport', 0, 65535) ?? 0,
      };
      const run = src.lookup(spec, q.get('frontend') ?? undefined);
      const icmp = spec.proto === 'icmp' || spec.proto === 1;
      const back: FlowSpec = {
        proto: spec.proto, src: spec.dst, dst: spec.src,
        sport: icmp ? spec.sport : spec.dport, dport: icmp ? spec.dport : spec.sport,
      };
      const now = Date.now();
      const ask = (f: FlowSpec): Lookup => lookupFlow(run.module, run.text, run.states, f, run.ingress, now);
      const forward = ask(spec);
      const reverse = ask(back);
      // The running flow tables: the flow's entries are among those of its source address.
      const tracked = (await src.flows({ address: spec.src }, LOOKUP_SCAN)).flows;
      const asTracked = (f: FlowSpec, l: Lookup) => withTracked(l, findTracked(tracked, f));
      return { status: 200, body: { frontend: run.ingress, forward: asTracked(spec, forward), reverse: asTracked(back, reverse) } };
    },
  };
}
