// "Which appliance gets this flow?" — the library's lookup and `haports lookup`.
//
// A flow (protocol, source, destination, ports) becomes its first packet (a TCP SYN, a
// UDP datagram, an ICMP echo, or a bare IP header for other protocols), run through a
// scratch core that holds the same configuration and the same backend states as the
// dataplane asked: the answer is the one a new flow gets now, and asking changes nothing
// (no flow entry, no counter) in the dataplane itself. Each direction is asked as a flow
// of its own; with symmetric hashing both name the same backend.

import { addressBytes, Core, FLAGS, formatAddress, LINK_RAW_IP, NONE, type TrackedFlow } from './core.js';

export interface FlowSpec {
  /** 'tcp', 'udp', 'icmp' (echo; ICMPv6 for IPv6 addresses) or an IP protocol number. */
  proto: 'tcp' | 'udp' | 'icmp' | number;
  src: string;
  dst: string;
  /** Ports (TCP, UDP) or the echo identifier (ICMP, sport); default 0. */
  sport?: number;
  dport?: number;
}

export interface Lookup {
  verdict: 'forward' | 'drop' | 'nomatch' | 'reset';
  rule: string | null;
  pool: string | null;
  backend: string | null;
  /** Why a drop or no-match; null when forwarded. */
  reason: string | null;
  /** How the backend was chosen: 'consistent hash', 'fail-open (every backend down)', 'tracked flow'; or why none was. */
  why: string;
  /** The Maglev slot the flow's hash indexes in its pool's table (null when no hash picked a backend). */
  slot: number | null;
  /** The pool's table size M. */
  tableSize: number | null;
  /** The flow is in the dataplane's flow table (then `backend` is the one it keeps). */
  tracked: { established: boolean; closing: boolean; idleMs: number } | null;
  flow: { proto: number; src: string; dst: string; sport: number; dport: number };
}

const PROTOS: Record<string, number> = { tcp: 6, udp: 17, icmp: 1 };

function rangeError(message: string): RangeError {
  return Object.assign(new RangeError(message), { code: 'ERR_OUT_OF_RANGE' });
}

function address(a: string, what: string): Uint8Array {
  try {
    return addressBytes(a);
  } catch {
    throw rangeError(`lookup: ${what} ${JSON.stringify(a)} is not an IP address`);
  }
}

/** The first packet of a flow, as raw IP. */
export function flowPacket(f: FlowSpec): { packet: Uint8Array; proto: number } {
  const proto = typeof f.proto === 'number' ? f.proto : PROTOS[f.proto];
  if (proto === undefined || !Number.isInteger(proto) || proto < 0 || proto > 255) {
    throw rangeError(`lookup: protocol ${JSON.stringify(f.proto)}: give tcp, udp, icmp or a number 0-255`);
  }
  const src = address(f.src, 'source');
  const dst = address(f.dst, 'destination');
  if (src.length !== dst.length) throw rangeError(`lookup: ${f.src} and ${f.dst} are of different families`);
  const sport = f.sport ?? 0;
  const dport = f.dport ?? 0;
  for (const [p, what] of [[sport, 'source port'], [dport, 'destination port']] as const) {
    if (!Number.isInteger(p) || p < 0 || p > 65535) throw rangeError(`lookup: ${what} ${p} is not 0-65535`);
  }
  const v6 = src.length === 16;
  const wire = proto === 1 && v6 ? 58 : proto;
  const l4len = wire === 6 ? 20 : wire === 17 || wire === 1 || wire === 58 ? 8 : 0;
  const ipLen = v6 ? 40 : 20;
  const p = new Uint8Array(ipLen + l4len);
  if (v6) {
    p[0] = 0x60; p[4] = l4len >> 8; p[5] = l4len & 0xff; p[6] = wire; p[7] = 64;
    p.set(src, 8); p.set(dst, 24);
  } else {
    p[0] = 0x45; p[2] = (ipLen + l4len) >> 8; p[3] = (ipLen + l4len) & 0xff; p[8] = 64; p[9] = wire;
    p.set(src, 12); p.set(dst, 16);
  }
  const l4 = p.subarray(ipLen);
  if (wire === 1 || wire === 58) {
    l4[0] = wire === 1 ? 8 : 128; // echo request, identifier = sport
    l4[4] = sport >> 8; l4[5] = sport & 0xff;
  } else if (wire === 6 || wire === 17) {
    l4[0] = sport >> 8; l4[1] = sport & 0xff; l4[2] = dport >> 8; l4[3] = dport & 0xff;
    if (wire === 6) { l4[12] = 0x50; l4[13] = 0x02; l4[14] = 0xff; l4[15] = 0xff; } // SYN: a new connection
    else { l4[5] = 8; }
  }
  return { packet: p, proto: wire };
}

/**
 * Where a new flow `f` goes with `configText` and the backend states `states` (backend
 * index → 'up' | 'down' | 'draining'), in a scratch core of `module`.
 */
export function lookupFlow(
  module: WebAssembly.Module, configText: string, states: string[], f: FlowSpec, ingress: string | undefined, now: number,
): Lookup {
  const core = new Core(module);
  core.configure(configText);
  states.forEach((s, b) => {
    if (s === 'down') core.setBackendHealth(b, false);
    else if (s === 'draining') core.setBackendAdmin(b, 'draining');
  });
  let ing = NONE;
  if (ingress !== undefined) {
    ing = core.names.frontends.indexOf(ingress);
    if (ing < 0) throw rangeError(`lookup: no frontend named ${JSON.stringify(ingress)}`);
  }
  const { packet, proto } = flowPacket(f);
  core.load([packet]);
  core.process(1, now, ing, LINK_RAW_IP);
  const v = core.verdict(0);
  const n = core.names;
  const backend = v.action === 'forward' && v.backend !== NONE ? n.backends[v.backend] : null;
  const pool = backend === null ? -1 : n.backendPool[v.backend];
  // The verdict's hash is the selection hash's high 32 bits: slot = (hash × M) >> 32.
  const m = pool < 0 ? 0 : core.exports.maglevTableSize(pool);
  const slot = pool < 0 ? null : Math.floor((v.hash * m) / 4294967296);
  const why = v.action === 'forward'
    ? ((v.flags & FLAGS.failOpen) !== 0 ? 'fail-open (every backend of the pool is down)' : 'consistent hash')
    : v.action === 'nomatch' ? `no rule matched (${v.reason})` : `dropped (${v.reason})`;
  return {
    verdict: v.action,
    rule: v.rule === NONE ? null : n.rules[v.rule] ?? null,
    pool: pool < 0 ? null : n.pools[pool] ?? null,
    backend,
    reason: v.action === 'forward' ? null : v.reason,
    why,
    slot,
    tableSize: pool < 0 ? null : m,
    tracked: null,
    flow: { proto, src: f.src, dst: f.dst, sport: f.sport ?? 0, dport: f.dport ?? 0 },
  };
}

/**
 * The tracked flow `f` among `flows` (listFlows'; either direction: a symmetric rule keys
 * both as one), or null. Addresses compare in canonical text, so any spelling matches.
 */
export function findTracked<T extends FlowInfo>(flows: Iterable<T>, f: FlowSpec): T | null {
  const { proto } = flowPacket(f);
  const src = formatAddress(addressBytes(f.src));
  const dst = formatAddress(addressBytes(f.dst));
  const icmp = proto === 1 || proto === 58;
  const sport = f.sport ?? 0;
  const dport = icmp ? 0 : f.dport ?? 0;
  for (const t of flows) {
    if (t.proto !== proto) continue;
    const ports = icmp ? t.sport === sport || t.dport === sport : t.sport === sport && t.dport === dport;
    const back = icmp ? ports : t.sport === dport && t.dport === sport;
    if ((t.src === src && t.dst === dst && ports) || (t.src === dst && t.dst === src && back)) return t;
  }
  return null;
}

/** `l` told as the flow table keeps it: its backend is the tracked one. */
export function withTracked(l: Lookup, t: FlowInfo | null): Lookup {
  if (t === null) return l;
  return {
    ...l,
    verdict: 'forward',
    rule: t.rule,
    backend: t.backend,
    pool: t.pool,
    reason: null,
    why: `tracked flow (${t.established ? 'established' : 'not yet established'}${t.closing ? ', closing' : ''}): keeps its backend`,
    tracked: { established: t.established, closing: t.closing, idleMs: t.idleMs },
  };
}

export interface FlowFilter {
  /** Most flows returned (default 1,000). */
  limit?: number;
  backend?: string;
  rule?: string;
  /** 'tcp', 'udp', 'icmp' or a protocol number. */
  proto?: string | number;
  /** Either end's address. */
  address?: string;
  /** Either end's port. */
  port?: number;
  /** Only established flows (true) or only not-yet-established ones (false). */
  established?: boolean;
}

export interface FlowInfo {
  proto: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  rule: string;
  pool: string;
  backend: string;
  established: boolean;
  closing: boolean;
  idleMs: number;
  timeoutMs: number;
}

const PROTO_NUMBERS: Record<string, number> = { tcp: 6, udp: 17, icmp: 1, icmpv6: 58, sctp: 132 };

/** The tracked flows of `core` that pass `filter`, at most `limit`, walking the table page by page. */
export function listFlows(core: Core, filter: FlowFilter, limit: number): FlowInfo[] {
  const walk = flowWalk(core, filter, limit);
  while (!walk.step(Infinity));
  return walk.flows;
}

/**
 * listFlows in steps: `step(pages)` walks at most `pages` pages of up to 256 entries in
 * use (empty slots between them are skipped inside the core) and says
 * whether the walk is over; `flows` holds what matched so far. A host whose packets share
 * the thread (the pump's workers) yields between steps, so a listing of a large table
 * never stalls forwarding for long. Entries that move buckets between steps (to make
 * room for a new flow) may be missed or listed twice. A bad filter throws a RangeError
 * at once.
 */
export function flowWalk(core: Core, filter: FlowFilter, limit: number): { flows: FlowInfo[]; step(pages: number): boolean } {
  const n = core.names;
  const backend = filter.backend === undefined ? -1 : n.backends.indexOf(filter.backend);
  if (filter.backend !== undefined && backend < 0) throw rangeError(`flows: no backend named ${JSON.stringify(filter.backend)}`);
  const rule = filter.rule === undefined ? -1 : n.rules.indexOf(filter.rule);
  if (filter.rule !== undefined && rule < 0) throw rangeError(`flows: no rule named ${JSON.stringify(filter.rule)}`);
  let proto = -1;
  if (filter.proto !== undefined) {
    proto = typeof filter.proto === 'number' ? filter.proto : PROTO_NUMBERS[filter.proto] ?? (/^[0-9]+$/.test(filter.proto) ? Number(filter.proto) : NaN);
    if (!(proto >= 0 && proto <= 255)) throw rangeError(`flows: protocol ${JSON.stringify(filter.proto)}: give tcp, udp, icmp, sctp or 0-255`);
  }
  let address: string | null = null;
  if (filter.address !== undefined) {
    try { address = formatAddress(addressBytes(filter.address)); } catch { throw rangeError(`flows: ${JSON.stringify(filter.address)} is not an IP address`); }
  }
  const out: FlowInfo[] = [];
  let cursor = 0;
  const step = (pages: number): boolean => {
    for (let p = 0; p < pages && cursor >= 0 && out.length < limit; p++) {
      const page = core.flowsPage(cursor, 256);
      cursor = page.next;
      collect(page.flows);
    }
    return cursor < 0 || out.length >= limit;
  };
  const collect = (flows: TrackedFlow[]): void => {
    for (const t of flows) {
      if (t.kind !== 'flow') continue;
      if (backend >= 0 && t.backend !== backend) continue;
      if (rule >= 0 && t.rule !== rule) continue;
      if (proto >= 0 && t.proto !== proto && !(proto === 1 && t.proto === 58)) continue;
      if (address !== null && t.src !== address && t.dst !== address) continue;
      if (filter.port !== undefined && t.sport !== filter.port && t.dport !== filter.port) continue;
      if (filter.established !== undefined && t.established !== filter.established) continue;
      out.push({
        proto: t.proto, src: t.src, dst: t.dst, sport: t.sport, dport: t.dport,
        rule: n.rules[t.rule] ?? String(t.rule), pool: n.pools[n.backendPool[t.backend]] ?? '', backend: n.backends[t.backend] ?? String(t.backend),
        established: t.established, closing: t.closing, idleMs: t.idleMs, timeoutMs: t.timeoutMs,
      });
      if (out.length >= limit) break;
    }
  };
  return { flows: out, step };
}
