// `haports demo`: an HA-ports rule in front of four appliances, driven by generated
// traffic, showing spread, stickiness, symmetry, and what happens to new and existing
// flows when an appliance fails and returns. No network set-up: packets are built in
// memory and run through the same core as every host.

import { parseArgs } from 'node:util';
import { Dataplane } from '../lib/index.js';
import type { Config } from '../lib/config.js';

const USAGE = `usage: haports demo [--flows N] [--seed N] [--json]

Runs generated traffic (TCP, UDP, ICMP; IPv4 and IPv6) from spokes through an HA-ports
frontend over four appliances and reports the spread, that flows stick, that both
directions meet one appliance, and failover and recovery of one appliance.

  --flows N   flows to generate (default 20000)
  --seed N    traffic seed (default 1)
  --json      print the results as JSON
`;

export const DEMO_CONFIG: Config = {
  hashKey: '0x4f7a1c9e2b6d8035a1e4c7f90b3d6a28', // a demo key: set your own secret one (docs/flowtable.md)
  flowTable: { capacity: 1 << 20 },
  frontends: [{ name: 'hub', address: '10.0.0.100' }],
  backendPools: [{
    name: 'nvas',
    backends: [0, 1, 2, 3].map((i) => ({ name: `nva-${i}`, address: `10.0.1.${4 + i}` })),
  }],
  probes: [{ name: 'ssh', protocol: 'tcp', port: 22, intervalSeconds: 5, threshold: 2 }],
  rules: [{
    name: 'ha-ports', frontend: 'hub', backendPool: 'nvas', protocol: 'all', frontendPort: 0, backendPort: 0,
    floatingIp: true, symmetric: true, probe: 'ssh', persistOnUnhealthy: 'defaultForProtocol', noHealthyBackends: 'drop',
  }],
};

interface Flow { proto: number; v6: boolean; a: Uint8Array; b: Uint8Array; sport: number; dport: number }

function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
}

/**
 * A packet of `f` in one direction (forward: a → b), written into `out` at `at`; returns
 * its length. A TCP flow's opening packet is a SYN, any later one an ACK.
 */
function writePacket(f: Flow, forward: boolean, out: Uint8Array, at: number, opening: boolean): number {
  const [src, dst] = forward ? [f.a, f.b] : [f.b, f.a];
  const [sport, dport] = forward ? [f.sport, f.dport] : [f.dport, f.sport];
  const l4len = f.proto === 6 ? 20 : 8;
  const ipLen = f.v6 ? 40 : 20;
  const p = out.subarray(at, at + ipLen + l4len);
  p.fill(0);
  const proto = f.proto === 1 && f.v6 ? 58 : f.proto;
  if (f.v6) {
    p[0] = 0x60; p[5] = l4len; p[6] = proto; p[7] = 64;
    p.set(src, 8); p.set(dst, 24);
  } else {
    p[0] = 0x45; p[3] = ipLen + l4len; p[8] = 64; p[9] = proto;
    p.set(src, 12); p.set(dst, 16);
  }
  const l4 = p.subarray(ipLen);
  if (f.proto === 1) { // echo request / reply, identifier = sport
    l4[0] = f.v6 ? (forward ? 128 : 129) : (forward ? 8 : 0);
    l4[4] = f.sport >> 8; l4[5] = f.sport & 0xff;
  } else {
    l4[0] = sport >> 8; l4[1] = sport & 0xff; l4[2] = dport >> 8; l4[3] = dport & 0xff;
    if (f.proto === 6) { l4[12] = 0x50; l4[13] = opening ? 0x02 : 0x10; } else { l4[5] = 8; } // TCP: SYN, then ACK
  }
  return p.length;
}

function makeFlows(n: number, seed: number): Flow[] {
  const next = xorshift(seed);
  const flows: Flow[] = [];
  for (let i = 0; i < n; i++) {
    const v6 = i % 5 === 4;
    const bytes = (prefix: number[]) => {
      const a = new Uint8Array(v6 ? 16 : 4);
      a.set(prefix);
      for (let k = prefix.length; k < a.length; k++) a[k] = next() & 0xff;
      return a;
    };
    // Spokes talking to each other through the hub: 10.1.x.x ↔ 10.2.x.x, fd01:: ↔ fd02::
    const a = bytes(v6 ? [0xfd, 0x01] : [10, 1]);
    const b = bytes(v6 ? [0xfd, 0x02] : [10, 2]);
    const r = next() % 10;
    flows.push({ proto: r < 6 ? 6 : r < 9 ? 17 : 1, v6, a, b, sport: 1024 + (next() % 60000), dport: [443, 80, 53, 22, 3389][next() % 5] });
  }
  return flows;
}

/** Runs every flow once (forward or reverse) through the hub; returns each flow's backend. */
function runFlows(
  dp: Dataplane, flows: Flow[], forward: boolean, now: number, progress: (done: number) => void, opening = false,
): (string | null)[] {
  const out: (string | null)[] = [];
  const arena = dp.arena;
  for (let start = 0; start < flows.length; start += dp.maxBatch) {
    const batch = flows.slice(start, start + dp.maxBatch);
    let off = 0;
    batch.forEach((f, i) => {
      const len = writePacket(f, forward, arena, off, opening);
      dp.setPacket(i, off, len);
      off += len;
    });
    dp.run(batch.length, { now, ingress: 'hub' });
    for (let i = 0; i < batch.length; i++) out.push(dp.decision(i).backend);
    progress(start + batch.length);
  }
  return out;
}

const pct = (n: number, d: number) => (d === 0 ? '0.0' : ((100 * n) / d).toFixed(1));
const num = (n: number) => n.toLocaleString('en');

export async function demoCommand(argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { flows: { type: 'string' }, seed: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) { out.write(USAGE); return 0; }
  const n = Number(values.flows ?? 20000);
  const seed = Number(values.seed ?? 1);
  if (!Number.isInteger(n) || n < 100 || n > 5_000_000) throw Object.assign(new Error('demo: --flows must be an integer from 100 to 5000000'), { usage: true });
  if (!Number.isInteger(seed)) throw Object.assign(new Error('demo: --seed must be an integer'), { usage: true });

  const tty = (err as NodeJS.WriteStream).isTTY === true;
  let lastShown = 0;
  const progressFor = (label: string, total: number) => (done: number) => {
    const now = Date.now();
    if ((tty || total >= 200_000) && (now - lastShown > 250 || done === total)) {
      lastShown = now;
      err.write(`${tty ? '\r' : ''}${label}: ${pct(done, total)}%${tty ? '' : '\n'}`);
      if (done === total && tty) err.write('\n');
    }
  };

  const dp = Dataplane.create(DEMO_CONFIG);
  const names = DEMO_CONFIG.backendPools![0].backends!.map((b) => b.name);
  const flows = makeFlows(n, seed);
  const proto = (f: Flow) => (f.proto === 6 ? 'TCP' : f.proto === 17 ? 'UDP' : 'ICMP');

  // 1. Spread.
  const first = runFlows(dp, flows, true, 1000, progressFor('spread', n), true);
  const spread = names.map((name) => ({ name, flows: first.filter((b) => b === name).length }));
  // 2. Stickiness: the same flows again.
  const again = runFlows(dp, flows, true, 2000, progressFor('stickiness', n));
  const stuck = again.filter((b, i) => b === first[i]).length;
  // 3. Symmetry: the reply direction of every flow.
  const replies = runFlows(dp, flows, false, 3000, progressFor('symmetry', n));
  const symmetric = replies.filter((b, i) => b === first[i]).length;

  // 4. nva-2 fails its probe.
  const failed = 'nva-2';
  dp.setHealth(failed, 'down');
  const during = runFlows(dp, flows, true, 4000, progressFor('failover', n));
  const onFailed = flows.map((_, i) => first[i] === failed);
  const tcpStayed = flows.filter((f, i) => onFailed[i] && f.proto === 6 && during[i] === failed).length;
  const tcpOnFailed = flows.filter((f, i) => onFailed[i] && f.proto === 6).length;
  const otherMoved = flows.filter((f, i) => onFailed[i] && f.proto !== 6 && during[i] !== failed && during[i] !== null).length;
  const otherOnFailed = flows.filter((f, i) => onFailed[i] && f.proto !== 6).length;
  const bystandersMoved = flows.filter((_, i) => !onFailed[i] && during[i] !== first[i]).length;
  const fresh = makeFlows(Math.max(100, Math.floor(n / 4)), seed + 1);
  const freshDuring = runFlows(dp, fresh, true, 5000, () => {}, true);
  const freshToFailed = freshDuring.filter((b) => b === failed).length;

  // 5. nva-2 returns.
  dp.setHealth(failed, 'up');
  const fresh2 = makeFlows(Math.max(100, Math.floor(n / 4)), seed + 2);
  const freshAfter = runFlows(dp, fresh2, true, 6000, () => {}, true);
  const freshToReturned = freshAfter.filter((b) => b === failed).length;
  const after = runFlows(dp, flows, true, 7000, () => {});
  const movedBack = after.filter((b, i) => b !== during[i]).length;

  const result = {
    flows: n,
    spread,
    stickiness: { same: stuck, of: n },
    symmetry: { same: symmetric, of: n },
    failover: {
      backend: failed, tcpStayed, tcpOnFailed, otherMoved, otherOnFailed, bystandersMoved,
      newFlows: fresh.length, newFlowsToFailed: freshToFailed,
    },
    recovery: { newFlows: fresh2.length, newFlowsToReturned: freshToReturned, existingMoved: movedBack },
    counters: dp.counters().totals,
  };
  if (values.json) {
    out.write(JSON.stringify(result, null, 2) + '\n');
    return 0;
  }

  const kinds = ['TCP', 'UDP', 'ICMP'].map((k) => `${num(flows.filter((f) => proto(f) === k).length)} ${k}`).join(', ');
  const lines: string[] = [];
  lines.push(`haports demo: HA-ports rule "ha-ports" (protocol all, ports 0/0, floating IP, symmetric)`);
  lines.push(`on frontend "hub" over four appliances; ${num(n)} flows from spokes routed through the hub`);
  lines.push(`(${kinds}; one in five IPv6)`);
  lines.push('');
  lines.push('1. Spread: each new flow goes where the Maglev table sends its 5-tuple hash');
  const max = Math.max(...spread.map((s) => s.flows));
  for (const s of spread) {
    lines.push(`   ${s.name}  ${'█'.repeat(Math.round((30 * s.flows) / max)).padEnd(30)} ${num(s.flows).padStart(9)}  ${pct(s.flows, n)}%`);
  }
  lines.push(`2. Stickiness: the same flows again: ${num(stuck)} of ${num(n)} on the same appliance (tracked in the flow table)`);
  lines.push(`3. Symmetry: the reply direction (B → A) of every flow: ${num(symmetric)} of ${num(n)} meet the same appliance,`);
  lines.push('   so a stateful firewall sees both halves of each connection');
  lines.push(`4. ${failed} fails its probe (persistOnUnhealthy: defaultForProtocol):`);
  lines.push(`   its TCP flows stay until they end:        ${num(tcpStayed)} of ${num(tcpOnFailed)}`);
  lines.push(`   its UDP and ICMP flows move to the others: ${num(otherMoved)} of ${num(otherOnFailed)}`);
  lines.push(`   flows on the other appliances that moved:  ${num(bystandersMoved)}`);
  lines.push(`   new flows sent to ${failed}:                  ${num(freshToFailed)} of ${num(fresh.length)}`);
  lines.push(`5. ${failed} returns:`);
  lines.push(`   new flows sent to ${failed}:                  ${num(freshToReturned)} of ${num(fresh2.length)} (${pct(freshToReturned, fresh2.length)}%)`);
  lines.push(`   existing flows that moved:                ${num(movedBack)} (tracked flows keep their appliance)`);
  const c = result.counters;
  lines.push('');
  lines.push(`packets ${num(c.packets)}, flow-table hits ${num(c.flowHits)}, new flows ${num(c.flowNew)}, moved off ${failed} ${num(c.flowMoved)}`);
  out.write(lines.join('\n') + '\n');
  return 0;
}
