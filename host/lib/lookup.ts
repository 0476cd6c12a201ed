// "Which appliance gets this flow?" — the library's lookup and `haports lookup`.
//
// A flow (protocol, source, destination, ports) becomes its first packet (a TCP SYN, a
// UDP datagram, an ICMP echo, or a bare IP header for other protocols), run through a
// scratch core that holds the same configuration and the same backend states as the
// dataplane asked: the answer is the one a new flow gets now, and asking changes nothing
// (no flow entry, no counter) in the dataplane itself. Each direction is asked as a flow
// of its own; with symmetric hashing both name the same backend.

import { addressBytes, Core, FLAGS, LINK_RAW_IP, NONE } from './core.js';

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
  /** How the backend was chosen: 'consistent hash', 'fail-open (every backend down)'; or why none was. */
  why: string;
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
  const why = v.action === 'forward'
    ? ((v.flags & FLAGS.failOpen) !== 0 ? 'fail-open (every backend of the pool is down)' : 'consistent hash')
    : v.action === 'nomatch' ? `no rule matched (${v.reason})` : `dropped (${v.reason})`;
  return {
    verdict: v.action,
    rule: v.rule === NONE ? null : n.rules[v.rule] ?? null,
    pool: backend === null ? null : n.pools[n.backendPool[v.backend]] ?? null,
    backend,
    reason: v.action === 'forward' ? null : v.reason,
    why,
    flow: { proto, src: f.src, dst: f.dst, sport: f.sport ?? 0, dport: f.dport ?? 0 },
  };
}
