// The packet pump over loopback: settings, forwarding, symmetry, NAT, drops by reason,
// bounded queue, metrics and the command's exit codes and graceful stop.
// (The end-to-end test in network namespaces is test_pump_netns.py.)
import { test } from 'node:test';
import dgram from 'node:dgram';
import net from 'node:net';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Core } from '../../build/host/core.mjs';
import { readPumpSettings, PUMP_DEFAULTS } from '../../build/host/pump.mjs';
import { vxlanHeader, geneveHeader } from '../../build/host/tunnel.mjs';
import { MetricsWriter, writeCoreMetrics } from '../../build/host/metrics.mjs';
import { loadNative } from '../../build/host/udpio.mjs';
import {
  appliances, spawnPump, baseConfig, checksumsValid, concat, ether, ipv4, startPump, waitFor,
} from './helpers.mjs';
import { pseudoSum } from '../lib/packets.mjs';

const PUMP = fileURLToPath(new URL('../../build/host/pump.mjs', import.meta.url));
const maxBatch = Core.load().maxBatch;
const listeners = (port) => [
  { name: 'vx', protocol: 'vxlan', frontend: 'fe', bind: '127.0.0.1:0', appliancePort: port, vnis: [1, 3, 5, 4242], peers: ['127.0.0.0/8'] },
  { name: 'gnv', protocol: 'geneve', frontend: 'fe2', bind: '127.0.0.1:0', appliancePort: port, vnis: [7, 8], peers: ['127.0.0.0/8'] },
];

/** readPumpSettings of a configuration, as the pump reads it: from the core's describe(). */
function settingsOf(cfg) {
  const core = Core.load();
  core.configure(cfg);
  return readPumpSettings(core.describe(), maxBatch);
}

test('settings: defaults, and every error as path: reason', () => {
  const a = { name: 'a', protocol: 'vxlan', frontend: 'fe', bind: '10.9.0.1', vnis: [100], peers: ['10.9.0.0/24', '10.8.0.7'] };
  const cfg = { frontends: [{ name: 'fe', address: '10.0.0.1' }], pump: { listeners: [a] } };
  const { settings, errors } = settingsOf(cfg);
  assert.deepEqual(errors, []);
  assert.equal(settings.batchSize, Math.min(PUMP_DEFAULTS.batchSize, maxBatch));
  assert.equal(settings.batchTimeoutMicros, 0);
  assert.equal(settings.queuePackets, 8192);
  assert.equal(settings.innerChecksums, 'complete');
  assert.equal(settings.udpSegmentation, true);
  assert.equal(settingsOf({ ...cfg, pump: { ...cfg.pump, udpSegmentation: false } }).settings.udpSegmentation, false);
  const { peerSet, ...listener } = settings.listeners[0];
  assert.deepEqual(listener, {
    name: 'a', protocol: 'vxlan', frontend: 'fe', host: '10.9.0.1', port: 4789, appliancePort: 4789, vnis: new Set([100]),
    peers: ['10.9.0.0/24', '10.8.0.7'],
  });
  for (const [peer, ok] of [['10.9.0.200', true], ['10.8.0.7', true], ['10.8.0.8', false], ['10.10.0.1', false], ['127.0.0.1', false]]) {
    assert.equal(peerSet.has(peer), ok, peer);
  }
  const g = settingsOf({ ...cfg, pump: { listeners: [{ name: 'g', protocol: 'geneve', frontend: 'fe', bind: '[fd00::1]', vnis: [1], peers: ['fd00::/64'] }] } });
  assert.equal(g.settings.listeners[0].port, 6081);
  assert.equal(g.settings.listeners[0].host, 'fd00::1');
  assert.ok(g.settings.listeners[0].peerSet.has('fd00::99') && !g.settings.listeners[0].peerSet.has('fd01::1'));

  assert.deepEqual(settingsOf({}).errors, ['pump: required (the listeners of the pump)']);
  const bad = settingsOf({
    frontends: [{ name: 'fe', address: '10.0.0.1' }],
    pump: {
      listeners: [
        { name: 'a', protocol: 'gre', frontend: 'nope', bind: 'host.example:99999', extra: 1 },
        { name: 'b', protocol: 'vxlan', frontend: 'fe', bind: 'fd00::1:4789' },
        { name: 'b', protocol: 'vxlan', frontend: 'fe', bind: '10.0.0.1:1', vnis: [1 << 24], peers: ['10.0.0.0/33', 'fd00::/8', 'x', 7] },
      ],
      innerChecksums: 'fix', udpSegmentation: 'on',
      batchSize: maxBatch + 1, queuePackets: 0, health: { damping: false },
      surprise: true,
    },
  }).errors;
  for (const e of [
    'pump.surprise: unknown field',
    `pump.batchSize: must be an integer from 1 to ${maxBatch}`,
    'pump.queuePackets: must be an integer from 1 to 1048576',
    'pump.health: moved to the top-level "health" section, which the core reads (docs/health.md)',
    'pump.listeners[0].extra: listener "a": unknown field',
    'pump.listeners[0].protocol: listener "a": must be "vxlan" or "geneve"',
    'pump.listeners[0].frontend: listener "a": unknown frontend "nope"',
    'pump.listeners[0].bind: listener "a": "host.example:99999": port must be 0-65535',
    'pump.listeners[1].bind: listener "b": "fd00::1:4789": write an IPv6 address in brackets, [ADDRESS]:PORT',
    'pump.listeners[2].name: listener "b": duplicate listener name "b"',
    'pump.listeners[2].vnis: listener "b": required, a non-empty array of 24-bit integers (the VNIs this listener relays)',
    'pump.listeners[1].vnis: listener "b": required, a non-empty array of 24-bit integers (the VNIs this listener relays)',
    'pump.listeners[1].peers: listener "b": required, a non-empty array of source prefixes ("10.9.0.0/24", "fd00::/64", or one address) of the tunnel peers this listener accepts',
    'pump.listeners[2].peers[0]: listener "b": "10.0.0.0/33": the length must be 0-32',
    'pump.innerChecksums: must be "complete", "count" or "off"',
    'pump.udpSegmentation: must be true or false',
  ]) assert.ok(bad.includes(e), `missing error ${e}\n got ${bad.join('\n')}`);
  assert.ok(settingsOf({ frontends: [], pump: { listeners: [{ name: 'a', protocol: 'vxlan', frontend: 'x', bind: 'myhost:1' }] } })
    .errors.includes('pump.listeners[0].bind: listener "a": "myhost" is not an IP address'));
});

/** n UDP flows from distinct sources, as Ethernet frames. */
const frames = (n, dst = '172.16.2.1', from = 0) =>
  Array.from({ length: n }, (_, i) => ether(ipv4({ src: `172.16.1.${(from + i) % 250 + 1}`, dst, sport: 10000 + from + i, dport: 443, payload: Buffer.from(`flow ${from + i}`) })));

test('VXLAN and GENEVE: each flow to one appliance, header (VNI, options) and inner bytes unchanged, replies symmetric', async () => {
  const apps = await appliances(3);
  const p = await startPump(baseConfig(apps.list, { listeners: listeners(apps.port), batchSize: 16 }));
  try {
    const vx = vxlanHeader(4242);
    const gnv = geneveHeader({ vni: 7, options: [{ optionClass: 0x0105, type: 0x01, data: Uint8Array.of(0, 0, 0, 42) }, { optionClass: 0xffff, type: 0x80 }] });
    const gnvIp = geneveHeader({ vni: 8, protocol: 0x0800 });
    const f = frames(60);
    const sent = new Map();
    f.forEach((fr, i) => {
      const d = i % 3 === 0 ? concat(vx, fr) : i % 3 === 1 ? concat(gnv, fr) : concat(gnvIp, fr.subarray(14));
      sent.set(i, d);
      p.send(i % 3 === 0 ? 'vx' : 'gnv', d);
    });
    await waitFor(() => apps.list.reduce((n, a) => n + a.got.length, 0) >= 60, 3000, 'deliveries');
    const home = new Map();
    for (const a of apps.list) {
      for (const { msg, rinfo } of a.got) {
        const i = Number(/flow (\d+)/.exec(msg.toString('latin1'))[1]);
        assert.deepEqual(msg, sent.get(i), `flow ${i} changed`);
        assert.equal(rinfo.port, p.pump.addresses()[i % 3 === 0 ? 'vx' : 'gnv'].port, 'sent from the listener socket');
        assert.ok(!home.has(i));
        home.set(i, a);
      }
    }
    assert.equal(home.size, 60);
    assert.ok(apps.list.every((a) => a.got.length > 5), 'spread over all appliances');

    // The reply direction, sent by each appliance into the pump, comes back to it.
    for (const a of apps.list) a.got.length = 0;
    for (const [i, a] of home) {
      const fr = ether(ipv4({ src: '172.16.2.1', dst: `172.16.1.${i % 250 + 1}`, sport: 443, dport: 10000 + i, payload: Buffer.from(`reply ${i}`) }));
      const hdr = i % 3 === 0 ? vx : i % 3 === 1 ? gnv : gnvIp;
      const d = concat(hdr, i % 3 === 2 ? fr.subarray(14) : fr);
      a.socket.send(d, p.pump.addresses()[i % 3 === 0 ? 'vx' : 'gnv'].port, '127.0.0.1');
    }
    await waitFor(() => apps.list.reduce((n, a) => n + a.got.length, 0) >= 60, 3000, 'replies');
    for (const a of apps.list) {
      for (const { msg } of a.got) assert.equal(home.get(Number(/reply (\d+)/.exec(msg.toString('latin1'))[1])), a, 'reply met its flow\'s appliance');
    }
  } finally {
    await p.close();
    apps.close();
  }
});

test('enableTcpReset: a TCP flow idle past its timeout gets RSTs, one back to the sender and one to its appliance, in the tunnel', async () => {
  const apps = await appliances(2);
  let clock = 1000;
  const p = await startPump(baseConfig(apps.list, { listeners: listeners(apps.port), batchSize: 16 }, { enableTcpReset: true }), { clock: () => clock });
  const back = [];
  p.sender.on('message', (msg) => back.push(msg));
  try {
    const vx = vxlanHeader(4242);
    const tcp = (tcpFlags) => concat(vx, ether(ipv4({ src: '172.16.1.9', dst: '172.16.2.1', proto: 6, sport: 40000, dport: 22, tcpFlags })));
    p.send('vx', tcp(0x02));
    await waitFor(() => apps.list.some((a) => a.got.length === 1), 3000, 'the SYN');
    const home = apps.list.find((a) => a.got.length === 1);
    p.send('vx', tcp(0x10));
    await waitFor(() => home.got.length === 2, 3000, 'the ACK');
    clock += 4 * 60_000 + 1; // past the idle timeout (4 minutes)
    p.send('vx', tcp(0x18));
    await waitFor(() => back.length === 1 && home.got.length === 3, 3000, 'the two RSTs');
    for (const [msg, to] of [[back[0], 'sender'], [home.got[2].msg, 'appliance']]) {
      assert.deepEqual(msg.subarray(0, 8), Buffer.from(vx), `RST to the ${to}: tunnel header`);
      const ip = msg.subarray(8 + 14);
      assert.equal(ip[9], 6);
      assert.equal(ip[20 + 13] & 0x04, 0x04, `RST to the ${to}: RST flag`);
      assert.ok(checksumsValid(ip), `RST to the ${to}: checksums`);
      const [src, dst] = [ip.subarray(12, 16).join('.'), ip.subarray(16, 20).join('.')];
      assert.deepEqual([src, dst], to === 'sender' ? ['172.16.2.1', '172.16.1.9'] : ['172.16.1.9', '172.16.2.1']);
    }
    assert.equal(apps.list.reduce((n, a) => n + a.got.length, 0), 3, 'the idle packet itself was not forwarded');
    const vxl = p.pump.listeners.find((l) => l.name === 'vx');
    await waitFor(() => vxl.counters.resetPackets === 2, 1000, 'the RSTs counted');
    assert.equal(p.core.counters().resets, 1);
  } finally {
    await p.close();
    apps.close();
  }
});

test('drops by reason: malformed tunnel headers, unknown VNI; the pump keeps forwarding', async () => {
  const apps = await appliances(2);
  const p = await startPump(baseConfig(apps.list, { listeners: listeners(apps.port) }));
  try {
    const fr = frames(1)[0];
    const cases = [
      ['vx', Buffer.from([8, 0, 0]), 'tunnel-truncated'],
      ['vx', Buffer.alloc(0), 'tunnel-truncated'],
      ['vx', concat(Uint8Array.of(0, 0, 0, 0, 0, 0, 1, 0), fr), 'vxlan-no-vni-flag'],
      ['vx', vxlanHeader(1), 'tunnel-empty'],
      ['gnv', concat(Uint8Array.of(0x40, 0, 0x65, 0x58, 0, 0, 7, 0), fr), 'geneve-bad-version'],
      ['gnv', concat(geneveHeader({ vni: 7, control: true }), fr), 'geneve-control'],
      ['gnv', concat(Uint8Array.of(1, 0, 0x65, 0x58, 0, 0, 7, 0, 0, 1, 2, 3), fr), 'geneve-bad-options'],
      ['gnv', concat(geneveHeader({ vni: 7, protocol: 0x88cc }), fr), 'geneve-unsupported-protocol'],
      ['gnv', concat(geneveHeader({ vni: 9 }), fr), 'unknown-vni'],
    ];
    for (const [l, d] of cases) p.send(l, d);
    p.send('vx', concat(vxlanHeader(1), ether(Uint8Array.of(1, 2, 3), 0x0806))); // core: not-ip
    await waitFor(() => p.pump.listeners.reduce((n, L) => n + L.counters.receivedPackets, 0) >= cases.length + 1);
    await new Promise((r) => setTimeout(r, 20));
    const drops = Object.fromEntries(p.pump.listeners.map((L) => [L.name, L.counters.drops]));
    const want = { vx: {}, gnv: {} };
    for (const [l, , reason] of cases) want[l][reason] = (want[l][reason] ?? 0) + 1;
    assert.deepEqual(drops, want);
    assert.equal(p.core.counters()['reason.not-ip'], 1);
    assert.ok(p.logs.some((l) => l.level === 'warn' && l.msg === 'dropped' && l.reason === 'geneve-control'), 'first drop of a kind is logged');
    p.send('vx', concat(vxlanHeader(1), fr));
    await waitFor(() => apps.list.some((a) => a.got.length === 1), 2000, 'a valid packet after the bad ones');
  } finally {
    await p.close();
    apps.close();
  }
});

test('safe by default: a sender outside the listener\'s peers, or a VNI it was not given, is dropped and counted, never relayed', async () => {
  const apps = await appliances(2);
  const ls = listeners(apps.port);
  ls[0].peers = ['127.0.0.1']; // the test's sender is 127.0.0.1; 127.0.0.9 is not a peer
  const p = await startPump(baseConfig(apps.list, { listeners: ls }));
  const stranger = dgram.createSocket('udp4');
  await new Promise((r) => stranger.bind(0, '127.0.0.9', r));
  try {
    const fr = concat(vxlanHeader(1), frames(1)[0]);
    const port = p.pump.addresses().vx.port;
    for (let i = 0; i < 3; i++) stranger.send(fr, port, '127.0.0.1');
    p.send('vx', concat(vxlanHeader(77), frames(1)[0])); // a peer, but VNI 77 is not the listener's
    const vx = p.pump.listeners.find((l) => l.name === 'vx');
    await waitFor(() => vx.counters.receivedPackets === 4, 2000, 'the four datagrams');
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(vx.counters.drops, { 'peer-not-allowed': 3, 'unknown-vni': 1 });
    assert.equal(apps.list.reduce((n, a) => n + a.got.length, 0), 0, 'nothing relayed');
    assert.equal(p.core.counters().packets, 0, 'nothing reached the core');
    p.send('vx', fr); // the listed peer, a listed VNI: relayed
    await waitFor(() => apps.list.some((a) => a.got.length === 1), 2000, 'the peer\'s datagram');
  } finally {
    stranger.close();
    await p.close();
    apps.close();
  }
});

test('inner checksums: a partial one (sender offload) is completed by default and counted; a wrong one is counted and relayed as it came', async () => {
  const apps = await appliances(1);
  for (const policy of [undefined, 'count']) {
    const cfg = baseConfig(apps.list, { listeners: listeners(apps.port).slice(0, 1), ...(policy ? { innerChecksums: policy } : {}) });
    const p = await startPump(cfg);
    try {
      const good = ipv4({ src: '192.168.9.1', dst: '172.16.0.1', proto: 6, sport: 41000, dport: 80, payload: Buffer.from('offload') });
      const half = good.slice();
      const s = pseudoSum(half);
      half[36] = s >> 8; half[37] = s & 0xff; // the TCP checksum field: what an offloading sender leaves
      const bad = good.slice();
      bad[bad.length - 1] ^= 1;
      const before = apps.list[0].got.length;
      for (const inner of [half, bad]) p.send('vx', concat(vxlanHeader(1), ether(inner)));
      await waitFor(() => apps.list[0].got.length === before + 2, 2000, 'both relayed');
      const [gotHalf, gotBad] = apps.list[0].got.slice(before).map((g) => g.msg.subarray(8 + 14));
      if (policy === undefined) assert.deepEqual(Buffer.from(gotHalf), Buffer.from(good), 'completed (the default)');
      else assert.deepEqual(Buffer.from(gotHalf), Buffer.from(half), '"count" relays it as it came');
      assert.deepEqual(Buffer.from(gotBad), Buffer.from(bad), 'a wrong checksum is never "fixed"');
      assert.deepEqual([p.core.counters().checksumPartial, p.core.counters().checksumWrong], [1, 1]);
      const w = new MetricsWriter();
      writeCoreMetrics(w, p.core);
      assert.match(w.text(), /^haports_inner_checksums_partial_total 1$/m);
      assert.match(w.text(), /^haports_inner_checksums_wrong_total 1$/m);
    } finally {
      await p.close();
    }
  }
  apps.close();
});

test('non-floating rule: the inner packet is rewritten (DNAT) in wasm memory and sent with valid checksums; replies reverse it', async () => {
  const apps = await appliances(3);
  // Caveat 2: a backend of a non-DSR HA-ports rule may be in no other rule.
  const cfg = baseConfig(apps.list, { listeners: listeners(apps.port).slice(0, 1) }, { floatingIp: false });
  cfg.rules = cfg.rules.slice(0, 1);
  const p = await startPump(cfg).catch((e) => { apps.close(); throw e; });
  try {
    const pkt = ipv4({ src: '192.168.7.7', dst: '10.0.0.100', proto: 6, sport: 40000, dport: 8443, payload: Buffer.from('hello') });
    p.send('vx', concat(vxlanHeader(5), ether(pkt)));
    const a = await waitFor(() => apps.list.find((x) => x.got.length === 1), 2000, 'delivery');
    const inner = a.got[0].msg.subarray(8 + 14);
    assert.deepEqual([...inner.subarray(16, 20)], a.address.split('.').map(Number), 'destination is the appliance now');
    assert.ok(checksumsValid(inner), 'IPv4 and TCP checksums updated');
    // The backend answers from its own address: translated back to the frontend.
    const reply = ipv4({ src: a.address, dst: '192.168.7.7', proto: 6, sport: 8443, dport: 40000, tcpFlags: 0x12, payload: Buffer.from('hi') });
    a.socket.send(concat(vxlanHeader(5), ether(reply)), p.pump.addresses().vx.port, '127.0.0.1');
    await waitFor(() => a.got.length === 2, 2000, 'reply');
    const back = a.got[1].msg.subarray(8 + 14);
    assert.deepEqual([...back.subarray(12, 16)], [10, 0, 0, 100], 'source is the frontend again');
    assert.ok(checksumsValid(back));
    assert.equal(p.core.counters().natReply, 1);
  } finally {
    await p.close();
    apps.close();
  }
});

// The native path reads from the kernel socket buffer in batches and has no queue of its
// own: its bound is the socket's receive buffer, whose overflow the kernel counts.
test('native path: beyond the socket buffer the kernel drops, and every datagram is delivered or counted', async () => {
  const apps = await appliances(1);
  const { native } = loadNative();
  assert.ok(native, 'the native UDP addon loads (node scripts/build-native.mjs)');
  const p = await startPump(baseConfig(apps.list, { listeners: listeners(apps.port), socketBufferBytes: 4096, batchSize: 64 }), { native });
  try {
    // One synchronous burst: the pump cannot read before all of it is in the kernel.
    const burst = 400;
    const fr = frames(burst);
    for (let i = 0; i < burst; i++) p.send('vx', concat(vxlanHeader(1), fr[i]));
    const L = p.pump.listeners[0];
    const dropped = () => p.pump.snapshot().listeners[0].socketDrops ?? 0;
    await waitFor(() => apps.list[0].got.length + dropped() === burst, 3000, 'every datagram delivered or dropped by the kernel');
    assert.ok(dropped() > 0, 'the small buffer overflowed');
    assert.equal(L.counters.receivedPackets, apps.list[0].got.length);
    assert.ok(L.counters.batches >= 1);
  } finally {
    await p.close();
    apps.close();
  }
});

// The node:dgram path queues datagrams for a batch, bounded by queuePackets.
test('bounded queue: beyond queuePackets datagrams are dropped as queue-full', async () => {
  const apps = await appliances(1);
  const p = await startPump(baseConfig(apps.list, { listeners: listeners(apps.port), batchTimeoutMicros: 300000, queuePackets: 4, batchSize: 64 }), { native: null });
  try {
    for (const fr of frames(10)) p.send('vx', concat(vxlanHeader(1), fr));
    await waitFor(() => p.pump.listeners[0].counters.receivedPackets === 10);
    const L = p.pump.listeners[0];
    assert.equal(L.counters.drops['queue-full'], 6);
    assert.equal(L.qLen, 4, 'a partial batch waits for batchTimeoutMicros');
    await waitFor(() => apps.list[0].got.length === 4, 2000, 'the queued four');
    assert.equal(L.counters.queueHighWater, 4);
  } finally {
    await p.close();
    apps.close();
  }
});

test('an appliance whose address family differs from the listener is counted, not sent', async () => {
  const apps = await appliances(1);
  const cfg = baseConfig([...apps.list, { address: 'fd00::5' }], { listeners: listeners(apps.port) });
  const p = await startPump(cfg);
  try {
    for (const fr of frames(40)) p.send('vx', concat(vxlanHeader(1), fr));
    await waitFor(() => p.core.counters().forwarded === 40);
    const L = p.pump.listeners[0];
    await waitFor(() => apps.list[0].got.length + (L.counters.drops['no-appliance-address'] ?? 0) === 40);
    assert.ok(L.counters.drops['no-appliance-address'] > 0);
  } finally {
    await p.close();
    apps.close();
  }
});

test('metrics: core and pump families, drops with stage and listener labels', async () => {
  const apps = await appliances(2);
  const p = await startPump(baseConfig(apps.list, { listeners: listeners(apps.port) }));
  try {
    for (const fr of frames(10)) p.send('vx', concat(vxlanHeader(1), fr));
    p.send('vx', Buffer.from([1]));
    await waitFor(() => apps.list.reduce((n, a) => n + a.got.length, 0) === 10);
    const w = new MetricsWriter();
    writeCoreMetrics(w, p.core);
    p.pump.writeMetrics(w);
    const text = w.text();
    assert.match(text, /^haports_pump_received_packets_total\{listener="vx"\} 11$/m);
    assert.match(text, /^haports_pump_sent_packets_total\{listener="vx"\} 10$/m);
    assert.match(text, /^haports_drops_total\{stage="pump",listener="vx",reason="tunnel-truncated"\} 1$/m);
    assert.match(text, /^haports_drops_total\{stage="core",listener="",reason="truncated"\} 0$/m);
    assert.match(text, /^haports_rule_packets_total\{rule="ha"\} 10$/m);
    assert.match(text, /^haports_rule_flows_total\{rule="ha"\} 10$/m);
    assert.match(text, /^haports_flow_table_entries 10$/m);
    assert.match(text, /^haports_backend_info\{pool="p",backend="a0",address="127.0.0.2"\} 1$/m);
    assert.match(text, /^haports_pump_socket_drops_total\{listener="vx"\} 0$/m);
    assert.equal((text.match(/^# TYPE haports_drops_total /gm) ?? []).length, 1, 'one TYPE line per family');
  } finally {
    await p.close();
    apps.close();
  }
});

// ---- The command ---------------------------------------------------------------------

function runPump(args, { signal, until } = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [PUMP, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => {
      err += d;
      if (signal && until && until(err)) { until = null; setTimeout(() => child.kill(signal), 50); }
    });
    child.on('exit', (code) => resolve({ code, out, err, lines: err.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)) }));
  });
}

test('command: --help 0, usage 2, invalid configuration 1, unbindable address 2', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'haports-pump-'));
  const write = (name, obj) => { const f = join(dir, name); writeFileSync(f, typeof obj === 'string' ? obj : JSON.stringify(obj)); return f; };
  const apps = [{ address: '127.0.0.2' }];
  let r = await runPump(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.out, /usage: haports pump --config CONFIG.json/);
  assert.equal((await runPump([])).code, 2);
  assert.equal((await runPump(['--config', join(dir, 'missing.json')])).code, 2);
  assert.equal((await runPump(['--config', 'x', '--bogus'])).code, 2);
  assert.equal((await runPump(['--config', 'x', '--metrics', 'nocolon'])).code, 2);
  r = await runPump(['--config', write('bad-core.json', { frontends: [{ name: 'fe' }] })]);
  assert.equal(r.code, 1);
  assert.match(r.err, /frontends\[0\]\.address/);
  r = await runPump(['--config', write('bad-pump.json', { ...baseConfig(apps, { listeners: [{ name: 'x', protocol: 'vxlan', frontend: 'zz', bind: '127.0.0.1:0' }] }) })]);
  assert.equal(r.code, 1);
  assert.match(r.err, /pump\.listeners\[0\]\.frontend: listener "x": unknown frontend "zz"/);
  r = await runPump(['--config', write('nobind.json', baseConfig(apps, { listeners: [{ name: 'x', protocol: 'vxlan', frontend: 'fe', bind: '192.0.2.77:4789', vnis: [1], peers: ['192.0.2.0/24'] }] }))]);
  assert.equal(r.code, 2);
  assert.ok(r.lines.some((l) => l.level === 'error' && l.msg === 'cannot bind a listener' && l.error === 'EADDRNOTAVAIL'));
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  test(`command: ${signal} stops gracefully with exit code 0 and a final counters line`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'haports-pump-'));
    const cfg = join(dir, 'c.json');
    writeFileSync(cfg, JSON.stringify(baseConfig([{ address: '127.0.0.2' }], { listeners: listeners(4789) })));
    const r = await runPump(['--config', cfg, '--metrics', '127.0.0.1:0', '--log-level', 'debug'], { signal, until: (e) => e.includes('"msg":"running"') });
    assert.equal(r.code, 0, r.err);
    const last = r.lines.at(-1);
    assert.equal(last.msg, 'stopped');
    assert.equal(last.signal, signal);
    assert.ok(last.listeners.vx && last.listeners.gnv && last.core && last.flowTable && last.backends['p/a0']);
    assert.ok(r.lines.some((l) => l.msg === 'metrics' && /^http:\/\/127\.0\.0\.1:\d+\/metrics$/.test(l.url)));
    for (const l of r.lines) assert.ok(l.time && l.level && l.msg, 'structured: time, level, msg');
  });
}

test('an IPv6 listener sends to IPv6 appliances; kernel drops are read from /proc/net/udp6', async () => {
  const apps = await appliances(1, 6);
  const cfg = baseConfig(apps.list, { listeners: [{ name: 'v6', protocol: 'vxlan', frontend: 'fe', bind: '[::1]:0', appliancePort: apps.port, vnis: [3], peers: ['::1'] }] });
  const core = Core.load();
  core.configure(cfg);
  const { Pump } = await import('../../build/host/pump.mjs');
  const pump = new Pump(core, readPumpSettings(core.describe(), core.maxBatch).settings);
  await pump.start();
  const dgram = await import('node:dgram');
  const s = dgram.createSocket('udp6');
  try {
    const d = concat(vxlanHeader(3), frames(1)[0]);
    s.send(d, pump.addresses().v6.port, '::1');
    await waitFor(() => apps.list[0].got.length === 1, 2000, 'delivery over IPv6');
    assert.deepEqual(apps.list[0].got[0].msg, d);
    assert.equal(apps.list[0].got[0].rinfo.address, '::1');
    assert.equal(pump.stats().listeners.v6.socketDrops, 0);
  } finally {
    s.close();
    await pump.stop();
    apps.close();
  }
});

/** TCP listeners on each appliance address, one port for all: the probe targets. */
async function probeTargets(list) {
  for (let attempt = 0; ; attempt++) {
    const servers = [];
    let port = 0;
    try {
      for (const a of list) {
        const s = net.createServer((c) => c.destroy());
        servers.push(s);
        await new Promise((resolve, reject) => { s.once('error', reject); s.listen(port, a.address, resolve); });
        port = s.address().port;
      }
      return { port, servers };
    } catch (e) {
      for (const s of servers) s.close();
      if (e.code !== 'EADDRINUSE' || attempt === 9) throw e;
    }
  }
}

test('command: SIGHUP reloads a good file keeping tracked flows (one moved by failover stays), keeps the running one on a bad file, never ends the pump', async () => {
  const apps = await appliances(3);
  const probes = await probeTargets(apps.list);
  const dir = mkdtempSync(join(tmpdir(), 'haports-pump-'));
  const file = join(dir, 'c.json');
  const config = baseConfig(apps.list, { listeners: listeners(apps.port).slice(0, 1) });
  config.probes = [{ name: 't', protocol: 'tcp', port: probes.port, intervalSeconds: 1, threshold: 1 }];
  config.rules[0].probe = 't';
  config.health = { damping: false };
  writeFileSync(file, JSON.stringify(config));
  const { child, lines, exited } = spawnPump(['--config', file]);
  const sender = dgram.createSocket('udp4');
  await new Promise((r) => sender.bind(0, '127.0.0.1', r));
  const logged = (pred, what, ms = 4000) => waitFor(() => lines.find(pred), ms, what);
  try {
    const running = await logged((l) => l.msg === 'running', 'the pump to run');
    const port = running.listeners[0].bind.port;
    const flow = concat(vxlanHeader(1), ether(ipv4({ src: '192.168.5.5', dst: '172.16.9.9', proto: 17, sport: 5353, dport: 53 })));
    /** Sends the flow's next packet; resolves with the appliance that got it. */
    const where = async () => {
      const before = apps.list.map((a) => a.got.length);
      sender.send(flow, port, '127.0.0.1');
      await waitFor(() => apps.list.some((a, i) => a.got.length > before[i]), 2000, 'the packet');
      return apps.list.findIndex((a, i) => a.got.length > before[i]);
    };
    const first = await where();
    // Its appliance fails its probe: the UDP flow moves (persistOnUnhealthy defaultForProtocol).
    await new Promise((r) => probes.servers[first].close(r));
    await logged((l) => l.msg === 'backend down' && l.address === apps.list[first].address, 'the appliance down');
    const moved = await where();
    assert.notEqual(moved, first);
    // It comes back; the moved flow stays where it went (tracked).
    probes.servers[first] = net.createServer((c) => c.destroy());
    await new Promise((r) => probes.servers[first].listen(probes.port, apps.list[first].address, r));
    await logged((l) => l.msg === 'backend up' && l.address === apps.list[first].address, 'the appliance up');
    assert.equal(await where(), moved);

    // A good file: a fourth backend and another batch size. Applied; the flow stays.
    const next = structuredClone(config);
    next.backendPools[0].backends.push({ name: 'a3', address: '127.0.0.9' });
    next.pump.batchSize = 64;
    writeFileSync(file, JSON.stringify(next));
    child.kill('SIGHUP');
    const reloaded = await logged((l) => l.msg === 'reloaded', 'the reload');
    assert.deepEqual(reloaded.kept, ['vx']);
    assert.equal(reloaded.trigger, 'SIGHUP');
    assert.equal(await where(), moved, 'a flow that failover moved stays where it is across the reload');

    // A bad file: logged, the running configuration stays.
    writeFileSync(file, '{"frontends": [{"name": "fe"}]');
    child.kill('SIGHUP');
    const rejected = await logged((l) => l.msg === 'configuration rejected; the running one stays', 'the rejection');
    assert.match(rejected.errors[0], /invalid JSON/);
    assert.equal(await where(), moved);
    assert.equal(child.exitCode, null, 'still running');
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.equal(lines.at(-1).msg, 'stopped');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    sender.close();
    for (const s of probes.servers) s.close();
    apps.close();
  }
});

test('command with 3 workers: every flow, both directions and NAT replies included, meets one worker; metrics and counters add up', async () => {
  const { native } = loadNative();
  assert.ok(native, 'several workers need the native UDP addon (node scripts/build-native.mjs)');
  const apps = await appliances(3);
  const dir = mkdtempSync(join(tmpdir(), 'haports-pump-'));
  const file = join(dir, 'c.json');
  // fe: floating (both directions carry the same addresses); fe2: NAT (replies come from the backend's address).
  const config = baseConfig(apps.list, { listeners: listeners(apps.port), workers: 3 });
  config.backendPools.push({ name: 'q', backends: [{ name: 'n0', address: '127.0.0.5' }] });
  config.rules[1] = { name: 'nat', frontend: 'fe2', backendPool: 'q', protocol: 'all', frontendPort: 0, backendPort: 0, floatingIp: false };
  const natApp = dgram.createSocket('udp4');
  const natGot = [];
  natApp.on('message', (msg) => natGot.push(msg));
  await new Promise((r) => natApp.bind(apps.port, '127.0.0.5', r));
  writeFileSync(file, JSON.stringify(config));
  const { child, lines, exited } = spawnPump(['--config', file, '--metrics', '127.0.0.1:0']);
  // Tunnel peers on several addresses and ports: without steering, the kernel would spread
  // their datagrams over the workers by the outer addresses, splitting flows.
  const senders = [];
  for (let i = 0; i < 8; i++) {
    const s = dgram.createSocket('udp4');
    await new Promise((r) => s.bind(0, `127.0.1.${i + 1}`, r));
    senders.push(s);
  }
  const sender = { send: (d, port, host) => senders[Math.floor(Math.random() * senders.length)].send(d, port, host) };
  try {
    const running = await waitFor(() => lines.find((l) => l.msg === 'running'), 5000, 'the pump to run');
    assert.equal(running.workers, 3);
    assert.equal(running.io, 'native');
    const vx = running.listeners.find((l) => l.name === 'vx').bind.port;
    const gnv = running.listeners.find((l) => l.name === 'gnv').bind.port;
    // 200 floating flows, each sent A→B then B→A.
    const flows = 200;
    for (let i = 0; i < flows; i++) {
      const a = `192.168.${i >> 8}.${i & 255}`;
      const b = `172.16.${i >> 8}.${(i * 7) & 255}`;
      sender.send(concat(vxlanHeader(1), ether(ipv4({ src: a, dst: b, sport: 1000 + i, dport: 53 }))), vx, '127.0.0.1');
      sender.send(concat(vxlanHeader(1), ether(ipv4({ src: b, dst: a, sport: 53, dport: 1000 + i }))), vx, '127.0.0.1');
    }
    await waitFor(() => apps.list.reduce((n, x) => n + x.got.length, 0) === 2 * flows, 5000, 'every floating packet');
    const where = new Map();
    for (const [k, x] of apps.list.entries()) {
      for (const { msg } of x.got) {
        const inner = msg.subarray(8 + 14);
        const ends = [inner.subarray(12, 16).join('.'), inner.subarray(16, 20).join('.')].sort().join('|');
        assert.ok(!where.has(ends) || where.get(ends) === k, `both directions of ${ends} on one appliance`);
        where.set(ends, k);
      }
    }
    assert.equal(where.size, flows);
    // NAT: 100 clients to fe2; the backend answers each from its own address. A reply is
    // translated back only by the worker that holds its flow, so steering must be right.
    for (let i = 0; i < 100; i++) {
      sender.send(concat(geneveHeader({ vni: 7 }), ether(ipv4({ src: `10.9.${i >> 8}.${i & 255}`, dst: '10.0.0.101', sport: 2000 + i, dport: 80 }))), gnv, '127.0.0.1');
    }
    await waitFor(() => natGot.length === 100, 5000, 'the NAT requests');
    for (let i = 0; i < 100; i++) {
      natApp.send(concat(geneveHeader({ vni: 7 }), ether(ipv4({ src: '127.0.0.5', dst: `10.9.${i >> 8}.${i & 255}`, sport: 80, dport: 2000 + i }))), gnv, '127.0.0.1');
    }
    await waitFor(() => natGot.length === 200, 5000, 'the NAT replies');
    const translated = natGot.slice(100).filter((msg) => msg.subarray(8 + 14 + 12, 8 + 14 + 16).join('.') === '10.0.0.101').length;
    assert.equal(translated, 100, 'every reply translated back to the frontend (its worker holds the flow)');
    const metrics = await (await fetch(lines.find((l) => l.msg === 'metrics').url)).text();
    const total = (name) => metrics.split('\n').filter((l) => l.startsWith(name)).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
    assert.equal(total('haports_pump_received_packets_total'), 2 * flows + 200, 'received, added up over the workers');
    assert.equal(total('haports_packets_total'), 2 * flows + 200);
    assert.equal(total('haports_nat_reply_total'), 100);
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    const stopped = lines.at(-1);
    assert.equal(stopped.msg, 'stopped');
    assert.equal(stopped.workers, 3);
    assert.equal(stopped.listeners.vx.receivedPackets, 2 * flows);
    assert.equal(stopped.core.natReply, 100);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    for (const s of senders) s.close();
    natApp.close();
    apps.close();
  }
});

test('command: --watch reloads when the file changes; a broken save is rejected and the running configuration stays', async () => {
  const apps = await appliances(2);
  const dir = mkdtempSync(join(tmpdir(), 'haports-pump-'));
  const file = join(dir, 'c.json');
  const config = baseConfig(apps.list, { listeners: listeners(apps.port).slice(0, 1) });
  writeFileSync(file, JSON.stringify(config));
  const { child, lines, exited } = spawnPump(['--config', file, '--watch']);
  try {
    await waitFor(() => lines.find((l) => l.msg === 'running'), 5000, 'the pump to run');
    config.pump.batchSize = 32;
    writeFileSync(file, JSON.stringify(config));
    const reloaded = await waitFor(() => lines.find((l) => l.msg === 'reloaded'), 5000, 'a reload on the change');
    assert.equal(reloaded.trigger, 'watch');
    writeFileSync(file, '{ not json');
    const rejected = await waitFor(() => lines.find((l) => l.msg === 'configuration rejected; the running one stays'), 5000, 'the rejection');
    assert.equal(rejected.trigger, 'watch');
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    apps.close();
  }
});
