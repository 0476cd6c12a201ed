// The pump's native UDP I/O (host/pump/native/udpio.c through build/host/udpio.mjs) and
// its kernel steering (build/host/steering.mjs), over loopback:
//   - recv: batches into slots of an ArrayBuffer (a WebAssembly.Memory's), lengths,
//     truncation, sources (IPv4, IPv6); EAGAIN; never a byte outside the buffers;
//   - send: datagrams gathered from two parts of the buffer, as node:dgram receives them;
//     EAGAIN and short counts (in a network namespace whose loopback is throttled);
//   - argument checks (TypeError / RangeError before any system call), bad and closed fds;
//   - watch/unwatch: callbacks, the loop kept alive only while watching, exceptions,
//     worker threads (and their cleanup when they exit or are terminated);
//   - steering: 2 and 3 SO_REUSEPORT sockets with the program attached, VXLAN and GENEVE,
//     both directions of every flow (plain, NAT, fragments) on one socket, flows over
//     every socket, what cannot be parsed on socket 0; the kernel's choice equals a
//     classic BPF interpreter's (below), which then checks more flows than are sent.
//
// Run after `node scripts/build-native.mjs && node scripts/build-host.mjs`. The addon is
// required: a machine with a C compiler and Node's headers builds it, so its absence is a
// failure with the reason, not a skip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { spawnSync } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, writeFileSync } from 'node:fs';
import { endianness, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DESC_INTS, MAX_BATCH, META_INTS, addressWords, decodeAddress, encodeAddress, loadNative, metaSource, setDestination, setIovs,
} from '../../build/host/udpio.mjs';
import { BPF_MAXINSNS, steeringProgram } from '../../build/host/steering.mjs';
import { geneveHeader, vxlanHeader } from '../../build/host/tunnel.mjs';
import { concat, ether, packet, randomV4, randomV6, rng } from '../lib/packets.mjs';

const UDPIO = new URL('../../build/host/udpio.mjs', import.meta.url).href;
const { native: u, reason } = loadNative();
const scratch = mkdtempSync(join(tmpdir(), 'udpio-test-'));

/** The addon, or a failure that says why it is missing. */
function addon() {
  assert.ok(u, `the native UDP addon is not available: ${reason}`);
  return u;
}

test('the native addon is built and loads', () => {
  addon();
  assert.equal(u.maxBatch, MAX_BATCH);
});

// ---- Helpers -----------------------------------------------------------------------

async function dgramSocket(type) {
  const s = dgram.createSocket(type);
  await new Promise((resolve, reject) => { s.once('error', reject); s.bind(0, type === 'udp6' ? '::1' : '127.0.0.1', resolve); });
  return s;
}

const dgramSend = (s, msg, port, address) =>
  new Promise((resolve, reject) => s.send(msg, port, address, (e) => (e ? reject(e) : resolve())));

/** Datagrams `s` receives, as they arrive. */
function collect(s) {
  const got = [];
  s.on('message', (msg, rinfo) => got.push({ msg, rinfo }));
  return got;
}

async function until(pred, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/**
 * Reads `want` datagrams from fd with recv(fd, memory, base, slot, max, meta), checking
 * after every call that nothing outside [base, base + count × slot) and, within each
 * slot, nothing past the stored length was written, and that meta records past `count`
 * are untouched. Returns { datagrams: [{ bytes, length, truncated, source }], calls }.
 */
async function recvChecked(fd, { memory, base, slot, max, meta }, want) {
  const bytes = new Uint8Array(memory);
  const datagrams = [];
  const calls = [];
  const deadline = Date.now() + 5000;
  while (datagrams.length < want) {
    bytes.fill(0xa5);
    meta.fill(-7);
    const n = u.recv(fd, memory, base, slot, max, meta);
    assert.ok(n >= 0 && n <= max, `recv returned ${n}`);
    if (n === 0) {
      if (Date.now() > deadline) throw new Error(`only ${datagrams.length} of ${want} datagrams arrived`);
      await sleep(2);
      continue;
    }
    calls.push(n);
    for (let i = 0; i < bytes.length; i++) {
      const slotIndex = Math.floor((i - base) / slot);
      const inSlot = i >= base && slotIndex < n && i - base - slotIndex * slot < meta[slotIndex * META_INTS];
      if (!inSlot && bytes[i] !== 0xa5) assert.fail(`recv wrote byte ${i}, outside the stored datagrams`);
    }
    for (let i = n * META_INTS; i < meta.length; i++) assert.equal(meta[i], -7, `meta[${i}] written past the count`);
    for (let i = 0; i < n; i++) {
      const m = i * META_INTS;
      const at = base + i * slot;
      datagrams.push({
        bytes: Buffer.from(bytes.slice(at, at + meta[m])),
        length: meta[m],
        truncated: meta[m + 1],
        source: metaSource(meta, i),
      });
    }
  }
  return { datagrams, calls };
}

/** Sends datagrams (Uint8Arrays) to address:port from fd with send(), in batches, retrying short counts. */
async function sendAll(fd, datagrams, address, port, batch = 64) {
  const dest = addressWords(address);
  for (let at = 0; at < datagrams.length; at += batch) {
    const part = datagrams.slice(at, at + batch);
    const memory = new ArrayBuffer(part.reduce((n, d) => n + d.length, 0) + 1);
    const bytes = new Uint8Array(memory);
    const desc = new Int32Array(part.length * DESC_INTS);
    let off = 0;
    part.forEach((d, i) => {
      bytes.set(d, off);
      setDestination(desc, i, dest, port);
      // Two parts where there are two bytes: the first byte, then the rest.
      setIovs(desc, i, off, Math.min(1, d.length), off + 1, Math.max(0, d.length - 1));
      off += d.length;
    });
    let sent = 0;
    const deadline = Date.now() + 5000;
    while (sent < part.length) {
      const n = u.send(fd, memory, desc.subarray(sent * DESC_INTS), part.length - sent);
      sent += n;
      if (n === 0) {
        if (Date.now() > deadline) throw new Error('send would block for 5 s');
        await sleep(1);
      }
    }
  }
}

/** Runs an ES module script in a child node; returns { status, signal, stdout, stderr }. */
function runChild(source, { timeout = 10_000, argv = [], prefix = [] } = {}) {
  const file = join(scratch, `child-${process.hrtime.bigint()}.mjs`);
  writeFileSync(file, source);
  const [cmd, ...args] = prefix.length ? [...prefix, process.execPath, file, ...argv] : [process.execPath, file, ...argv];
  const r = spawnSync(cmd, args, { timeout, encoding: 'utf8' });
  return { status: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error };
}

function expectThrows(fn, type, code, message) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof type, `${e?.constructor?.name}: ${e?.message} is not a ${type.name}`);
    if (code) assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

// ---- recv --------------------------------------------------------------------------

for (const family of [4, 6]) {
  const host = family === 4 ? '127.0.0.1' : '::1';
  test(`recv (IPv${family}): a batch into the slots of wasm memory, with lengths and sources`, async () => {
    addon();
    const fd = u.open(family, host, 0, false, 0, 0);
    const sender = await dgramSocket(family === 4 ? 'udp4' : 'udp6');
    try {
      const port = u.localPort(fd);
      assert.ok(port > 0);
      const sent = [0, 1, 7, 100, 1000, 1472].map((n, i) => Buffer.alloc(n, i + 1));
      for (const d of sent) await dgramSend(sender, d, port, host);
      await sleep(20); // loopback delivers during the send; give softirqs a moment anyway
      const memory = new WebAssembly.Memory({ initial: 1 }).buffer;
      const meta = new Int32Array(16 * META_INTS);
      const { datagrams, calls } = await recvChecked(fd, { memory, base: 1000, slot: 1500, max: 16, meta }, sent.length);
      assert.equal(calls[0], sent.length, 'one recvmmsg takes every waiting datagram');
      datagrams.forEach((d, i) => {
        assert.equal(d.length, sent[i].length);
        assert.equal(d.truncated, 0);
        assert.deepEqual(d.bytes, sent[i]);
        assert.deepEqual(d.source, { family, address: host, port: sender.address().port });
      });
      assert.equal(u.recv(fd, memory, 0, 1500, 16, meta), 0, 'EAGAIN: 0');
    } finally {
      u.close(fd);
      sender.close();
    }
  });
}

test('recv: a datagram longer than its slot is cut and flagged; its neighbours are not', async () => {
  addon();
  const fd = u.open(4, '127.0.0.1', 0, false, 0, 0);
  const sender = await dgramSocket('udp4');
  try {
    const port = u.localPort(fd);
    const sent = [Buffer.alloc(16, 1), Buffer.alloc(100, 2).fill(3, 16), Buffer.alloc(15, 4), Buffer.alloc(17, 5)];
    for (const d of sent) await dgramSend(sender, d, port, '127.0.0.1');
    await sleep(20);
    const { datagrams } = await recvChecked(fd, { memory: new ArrayBuffer(256), base: 3, slot: 16, max: 8, meta: new Int32Array(64) }, 4);
    assert.deepEqual(datagrams.map((d) => [d.length, d.truncated]), [[16, 0], [16, 1], [15, 0], [16, 1]]);
    assert.deepEqual(datagrams[1].bytes, Buffer.alloc(16, 2));
    assert.deepEqual(datagrams[3].bytes, Buffer.alloc(16, 5));
  } finally {
    u.close(fd);
    sender.close();
  }
});

test('recv: EAGAIN gives 0 and writes nothing', () => {
  addon();
  const fd = u.open(6, '::1', 0, false, 0, 0);
  try {
    const memory = new ArrayBuffer(64);
    const meta = new Int32Array(8).fill(9);
    assert.equal(u.recv(fd, memory, 0, 64, 1, meta), 0);
    assert.deepEqual([...new Uint8Array(memory)], new Array(64).fill(0));
    assert.deepEqual([...meta], new Array(8).fill(9));
  } finally {
    u.close(fd);
  }
});

// ---- send --------------------------------------------------------------------------

for (const family of [4, 6]) {
  const host = family === 4 ? '127.0.0.1' : '::1';
  test(`send (IPv${family}): datagrams gathered from two parts of memory arrive intact at node:dgram`, async () => {
    addon();
    const fd = u.open(family, host, 0, false, 0, 1 << 20);
    const receiver = await dgramSocket(family === 4 ? 'udp4' : 'udp6');
    const got = collect(receiver);
    try {
      const memory = new WebAssembly.Memory({ initial: 1 }).buffer;
      const bytes = new Uint8Array(memory);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + 3) & 0xff;
      const port = receiver.address().port;
      // [off0, len0, off1, len1]: header and packet apart in memory; one part only; empty.
      const parts = [[0, 8, 4096, 100], [64, 16, 9000, 1400], [100, 0, 200, 50], [300, 20, 0, 0], [0, 0, 0, 0], [65000, 536, 10, 1]];
      const desc = new Int32Array(parts.length * DESC_INTS);
      parts.forEach(([o0, l0, o1, l1], i) => {
        setDestination(desc, i, host, port);
        setIovs(desc, i, o0, l0, o1, l1);
      });
      assert.equal(u.send(fd, memory, desc, parts.length), parts.length);
      await until(() => got.length === parts.length, 'the datagrams');
      got.forEach(({ msg, rinfo }, i) => {
        const [o0, l0, o1, l1] = parts[i];
        assert.deepEqual(msg, Buffer.concat([bytes.subarray(o0, o0 + l0), bytes.subarray(o1, o1 + l1)]), `datagram ${i}`);
        assert.equal(rinfo.port, u.localPort(fd));
      });
      assert.equal(u.send(fd, memory, desc, 0), 0, 'count 0 sends nothing');
    } finally {
      u.close(fd);
      receiver.close();
    }
  });
}

test('send with segment (UDP GSO): runs to one destination arrive as separate datagrams, intact and in order', async () => {
  addon();
  const fd = u.open(4, '127.0.0.1', 0, false, 0, 1 << 22);
  const a = await dgramSocket('udp4');
  const b = await dgramSocket('udp4');
  const gotA = collect(a);
  const gotB = collect(b);
  try {
    const memory = new WebAssembly.Memory({ initial: 4 }).buffer;
    const bytes = new Uint8Array(memory);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 13 + 5) & 0xff;
    // Runs that must be cut: a length change, a destination change, more than 64
    // datagrams, more than 60,000 bytes; two-part and one-part datagrams; an empty one.
    const plan = [];
    for (let i = 0; i < 10; i++) plan.push([a, 100]);
    for (let i = 0; i < 3; i++) plan.push([a, 60]);
    plan.push([b, 100], [a, 100], [b, 100]);
    for (let i = 0; i < 70; i++) plan.push([a, 200]);
    for (let i = 0; i < 50; i++) plan.push([b, 1400]);
    plan.push([a, 0], [a, 0], [b, 7]);
    const desc = new Int32Array(plan.length * DESC_INTS);
    const expected = plan.map(([sock, len], i) => {
      const off = (i * 1499) % (bytes.length - 2000);
      setDestination(desc, i, '127.0.0.1', sock.address().port);
      if (i % 2) setIovs(desc, i, off, Math.min(8, len), off + 600, Math.max(0, len - 8));
      else setIovs(desc, i, off, len);
      const d = i % 2 ? Buffer.concat([bytes.subarray(off, off + Math.min(8, len)), bytes.subarray(off + 600, off + 600 + Math.max(0, len - 8))])
        : Buffer.from(bytes.subarray(off, off + len));
      return { sock, d };
    });
    let sent = 0;
    while (sent < plan.length) {
      const k = u.send(fd, memory, desc.subarray(sent * DESC_INTS), plan.length - sent, true);
      assert.ok(k > 0, 'the kernel takes them (a 4 MiB send buffer)');
      sent += k;
    }
    const wantA = expected.filter((e) => e.sock === a).map((e) => e.d);
    const wantB = expected.filter((e) => e.sock === b).map((e) => e.d);
    await until(() => gotA.length === wantA.length && gotB.length === wantB.length, 'every datagram');
    assert.deepEqual(gotA.map((g) => g.msg), wantA, 'to a: each datagram, in order');
    assert.deepEqual(gotB.map((g) => g.msg), wantB, 'to b: each datagram, in order');
    assert.throws(() => u.send(fd, memory, desc, 1, 'yes'), TypeError);
  } finally {
    u.close(fd);
    a.close();
    b.close();
  }
});

test('send with segment: one pass through the stack per run (loopback counts skbs); too big for the MTU falls back', () => {
  addon();
  // In a namespace of its own, loopback's transmit counter counts what left the UDP/IP
  // output path: one packet per GSO message, one per datagram without. With an MTU of
  // 1500, a run of 3,000-byte datagrams cannot be segmented (EMSGSIZE): they go one by
  // one and are fragmented, as without segment.
  const prefix = process.getuid?.() === 0 ? ['unshare', '-n'] : ['unshare', '-rn'];
  const r = runChild(`
    import { execFileSync } from 'node:child_process';
    import dgram from 'node:dgram';
    import { loadNative, setDestination, setIovs, DESC_INTS } from ${JSON.stringify(UDPIO)};
    execFileSync('ip', ['link', 'set', 'lo', 'up', 'mtu', '1500']);
    const txPackets = () => JSON.parse(execFileSync('ip', ['-s', '-j', 'link', 'show', 'lo']))[0].stats64.tx.packets;
    const { native: u } = loadNative();
    const rx = dgram.createSocket('udp4');
    let got = 0, gotBytes = 0;
    rx.on('message', (m) => { got++; gotBytes += m.length; });
    await new Promise((r) => rx.bind(0, '127.0.0.1', r));
    rx.setRecvBufferSize(1 << 22); // 64 fragmented datagrams take room
    const fd = u.open(4, '127.0.0.1', 0, false, 0, 1 << 22);
    const memory = new ArrayBuffer(8192);
    const out = {};
    for (const [name, len, segment] of [['plain', 500, false], ['segment', 500, true], ['tooBig', 3000, true]]) {
      const n = 64, desc = new Int32Array(n * DESC_INTS);
      for (let i = 0; i < n; i++) { setDestination(desc, i, '127.0.0.1', rx.address().port); setIovs(desc, i, 0, len); }
      got = 0; gotBytes = 0;
      const before = txPackets();
      const sent = u.send(fd, memory, desc, n, segment);
      const deadline = Date.now() + 5000;
      while (got < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      out[name] = { sent, got, gotBytes, skbs: txPackets() - before };
    }
    console.log(JSON.stringify(out));
    process.exit(0);
  `, { prefix });
  if (r.error?.code === 'ENOENT') assert.fail('unshare is not installed (util-linux): this test needs it, and root');
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop());
  for (const [name, len] of [['plain', 500], ['segment', 500], ['tooBig', 3000]]) {
    assert.equal(out[name].sent, 64, `${name}: 64 datagrams sent`);
    assert.equal(out[name].got, 64, `${name}: 64 datagrams received`);
    assert.equal(out[name].gotBytes, 64 * len, `${name}: every byte`);
  }
  assert.equal(out.plain.skbs, 64, 'without segment: one skb per datagram');
  assert.equal(out.segment.skbs, 1, 'with segment: one GSO skb for the run of 64');
  assert.ok(out.tooBig.skbs >= 128, `too big: one by one, fragmented (${out.tooBig.skbs} skbs)`);
});

test('send: a real error of the first message throws with its errno name; a family mismatch too', () => {
  addon();
  const fd = u.open(4, '127.0.0.1', 0, false, 0, 0);
  try {
    const memory = new ArrayBuffer(16);
    const desc = new Int32Array(DESC_INTS);
    setDestination(desc, 0, '::1', 9);
    setIovs(desc, 0, 0, 16);
    expectThrows(() => u.send(fd, memory, desc, 1), Error, 'EAFNOSUPPORT', /sendmmsg to \[::1\]:9/);
    setDestination(desc, 0, '255.255.255.255', 9); // broadcast without SO_BROADCAST
    expectThrows(() => u.send(fd, memory, desc, 1), Error, 'EACCES');
  } finally {
    u.close(fd);
  }
});

test('send: EAGAIN gives 0 and a short count, in a namespace whose loopback is throttled (tc tbf)', () => {
  addon();
  // The kernel refuses a send only while earlier datagrams still hold the socket's send
  // buffer, which loopback frees at once, so the datagrams are held in a slow qdisc.
  const prefix = process.getuid?.() === 0 ? ['unshare', '-n'] : ['unshare', '-rn'];
  const r = runChild(`
    import { execFileSync } from 'node:child_process';
    import { loadNative, setDestination, setIovs, DESC_INTS } from ${JSON.stringify(UDPIO)};
    try {
      execFileSync('ip', ['link', 'set', 'lo', 'up']);
      execFileSync('tc', ['qdisc', 'add', 'dev', 'lo', 'root', 'tbf', 'rate', '8kbit', 'burst', '1600', 'limit', '10000000']);
    } catch (e) { console.log(JSON.stringify({ unavailable: String(e.stderr || e.message).trim() })); process.exit(0); }
    const { native: u } = loadNative();
    const rx = u.open(4, '127.0.0.1', 0, false, 0, 0);
    const tx = u.open(4, '127.0.0.1', 0, false, 0, 4096);
    const n = 200, memory = new ArrayBuffer(300), desc = new Int32Array(n * DESC_INTS);
    for (let i = 0; i < n; i++) { setDestination(desc, i, '127.0.0.1', u.localPort(rx)); setIovs(desc, i, 0, 100, 100, 200); }
    const first = u.send(tx, memory, desc, n);
    const again = u.send(tx, memory, desc.subarray(first * DESC_INTS), n - first);
    console.log(JSON.stringify({ first, again }));
  `, { prefix });
  if (r.error?.code === 'ENOENT') assert.fail('unshare is not installed (util-linux): this test needs it, and root');
  const out = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 && /unshare/.test(r.stderr)) assert.fail(`no network namespace (this test needs root): ${r.stderr.trim()}`);
  assert.equal(r.status, 0, r.stderr);
  const result = JSON.parse(out);
  if (result.unavailable) assert.fail(`cannot throttle loopback in a namespace (tc, root): ${result.unavailable}`);
  assert.ok(result.first > 0 && result.first < 200, `a short count (${result.first} of 200)`);
  assert.equal(result.again, 0, 'then 0: the first would block');
});

// ---- Argument checks, bad and closed fds -------------------------------------------

test('argument checks: RangeError / TypeError before any system call, nothing written outside the buffers', async () => {
  addon();
  const fd = u.open(4, '127.0.0.1', 0, false, 0, 0);
  const sender = await dgramSocket('udp4');
  const receiver = await dgramSocket('udp4');
  const got = collect(receiver);
  try {
    // A datagram waits: a call that got past its checks would store it.
    await dgramSend(sender, Buffer.alloc(64, 0xee), u.localPort(fd), '127.0.0.1');
    await sleep(20);
    const memory = new ArrayBuffer(1024);
    const bytes = new Uint8Array(memory);
    const meta = new Int32Array(4 * META_INTS);
    const untouched = () => {
      assert.ok(bytes.every((b) => b === 0), 'memory untouched');
      assert.ok(meta.every((m) => m === 0), 'meta untouched');
    };
    const recvRange = [
      [fd, memory, -1, 64, 1, meta], [fd, memory, 0.5, 64, 1, meta], [fd, memory, 0, 0, 1, meta], [fd, memory, 0, 64, 0, meta],
      [fd, memory, 0, 64, MAX_BATCH + 1, meta], [fd, memory, 961, 64, 1, meta], [fd, memory, 0, 257, 4, meta],
      [fd, memory, 0, 64, 5, meta], [fd, memory, 0, 64, 2, meta.subarray(0, 15)], [-1, memory, 0, 64, 1, meta],
      [2 ** 31, memory, 0, 64, 1, meta], [fd, memory, NaN, 64, 1, meta], [fd, memory, 0, Infinity, 1, meta],
    ];
    for (const args of recvRange) expectThrows(() => u.recv(...args), RangeError, 'ERR_OUT_OF_RANGE');
    const recvType = [
      [fd, bytes, 0, 64, 1, meta], [fd, memory, 0, 64, 1, new Uint32Array(8)], [String(fd), memory, 0, 64, 1, meta],
      [fd, new SharedArrayBuffer(1024), 0, 64, 1, meta], [fd, memory, '0', 64, 1, meta], [fd, memory, 0, 64, 1],
    ];
    for (const args of recvType) expectThrows(() => u.recv(...args), TypeError, 'ERR_INVALID_ARG_TYPE');
    untouched();
    // A detached buffer (a wasm memory's old buffer after it grew) has no bytes.
    const wasm = new WebAssembly.Memory({ initial: 1 });
    const old = wasm.buffer;
    wasm.grow(1);
    expectThrows(() => u.recv(fd, old, 0, 64, 1, meta), RangeError, 'ERR_OUT_OF_RANGE', /past the end of memory \(0 bytes\)/);
    untouched();
    // The exact fit is accepted, and takes the datagram.
    assert.equal(u.recv(fd, memory, 960, 64, 1, meta), 1);
    assert.equal(meta[0], 64);
    assert.ok(bytes.subarray(960).every((b) => b === 0xee) && bytes.subarray(0, 960).every((b) => b === 0));

    // send: every message is checked before the one system call, so a bad one sends nothing.
    const desc = new Int32Array(4 * DESC_INTS);
    for (let i = 0; i < 4; i++) {
      setDestination(desc, i, '127.0.0.1', receiver.address().port);
      setIovs(desc, i, 0, 8, 8, 8);
    }
    const bad = [
      (d) => { d[3 * DESC_INTS] = 5; },                                   // family
      (d) => { d[3 * DESC_INTS + 1] = 0; }, (d) => { d[3 * DESC_INTS + 1] = 65536; }, // port
      (d) => { d[3 * DESC_INTS + 6] = 1020; },                            // iov0 past the end
      (d) => { d[3 * DESC_INTS + 8] = -1; }, (d) => { d[3 * DESC_INTS + 9] = -1; },
      (d) => { d[3 * DESC_INTS + 8] = 2 ** 31 - 1; d[3 * DESC_INTS + 9] = 2 ** 31 - 1; }, // no overflow
    ];
    for (const mutate of bad) {
      const d = desc.slice();
      mutate(d);
      expectThrows(() => u.send(fd, memory, d, 4), RangeError, 'ERR_OUT_OF_RANGE', /desc\[3\]/);
    }
    expectThrows(() => u.send(fd, memory, desc, 5), RangeError, 'ERR_OUT_OF_RANGE');
    expectThrows(() => u.send(fd, memory, desc, MAX_BATCH + 1), RangeError, 'ERR_OUT_OF_RANGE');
    expectThrows(() => u.send(fd, memory, desc, -1), RangeError, 'ERR_OUT_OF_RANGE');
    expectThrows(() => u.send(fd, memory, new Uint8Array(40), 1), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectThrows(() => u.send(fd, bytes, desc, 1), TypeError, 'ERR_INVALID_ARG_TYPE');
    assert.equal(u.send(fd, memory, desc, 4), 4);
    await until(() => got.length === 4, 'the valid batch');
    await sleep(20);
    assert.equal(got.length, 4, 'nothing of the rejected batches was sent');

    // open / attach.
    expectThrows(() => u.open(5, '127.0.0.1', 0, false, 0, 0), RangeError);
    expectThrows(() => u.open(4, '::1', 0, false, 0, 0), RangeError, 'ERR_OUT_OF_RANGE', /not an IPv4 address/);
    expectThrows(() => u.open(6, '127.0.0.1', 0, false, 0, 0), RangeError, 'ERR_OUT_OF_RANGE', /not an IPv6 address/);
    expectThrows(() => u.open(4, '127.0.0.1\u0000junk', 0, false, 0, 0), RangeError);
    expectThrows(() => u.open(4, '1'.repeat(200), 0, false, 0, 0), RangeError);
    expectThrows(() => u.open(4, '127.0.0.1', 65536, false, 0, 0), RangeError);
    expectThrows(() => u.open(4, '127.0.0.1', 0, 'yes', 0, 0), TypeError);
    expectThrows(() => u.open(4, 127, 0, false, 0, 0), TypeError);
    expectThrows(() => u.open(4, '127.0.0.1', 0, false, -1, 0), RangeError);
    expectThrows(() => u.attachReuseportCbpf(fd, new Uint8Array(7)), RangeError);
    expectThrows(() => u.attachReuseportCbpf(fd, new Uint8Array(0)), RangeError);
    expectThrows(() => u.attachReuseportCbpf(fd, new Uint8Array((BPF_MAXINSNS + 1) * 8)), RangeError);
    expectThrows(() => u.attachReuseportCbpf(fd, new Uint16Array(4)), TypeError);
    expectThrows(() => u.watch(fd, 'not a function'), TypeError);
    expectThrows(() => u.unwatch(-1), RangeError);
  } finally {
    u.close(fd);
    sender.close();
    receiver.close();
  }
});

test('system call errors: code, errno, syscall and what failed', () => {
  addon();
  const fd = u.open(4, '127.0.0.1', 0, false, 0, 0);
  const port = u.localPort(fd);
  try {
    expectThrows(() => u.open(4, '127.0.0.1', port, false, 0, 0), Error, 'EADDRINUSE', new RegExp(`^bind 127\\.0\\.0\\.1:${port}: .*\\(EADDRINUSE\\)$`));
    try { u.open(4, '127.0.0.1', port, false, 0, 0); } catch (e) { assert.equal(e.syscall, 'bind'); assert.ok(e.errno < 0); }
    expectThrows(() => u.open(4, '192.0.2.1', 0, false, 0, 0), Error, 'EADDRNOTAVAIL');
    expectThrows(() => u.open(6, 'fe80::1%no-such-interface', 0, false, 0, 0), RangeError);
    // A program the kernel rejects (an unknown opcode), and one for a socket in no SO_REUSEPORT group.
    expectThrows(() => u.attachReuseportCbpf(fd, Uint8Array.of(0xff, 0xff, 0, 0, 0, 0, 0, 0)), Error, 'EINVAL');
    expectThrows(() => u.attachReuseportCbpf(fd, steeringProgram({ workers: 2, protocol: 'vxlan', natFrontends: [], natBackends: [] })), Error, 'EINVAL');
    const handle = u.watch(fd, () => {});
    expectThrows(() => u.watch(fd, () => {}), Error, 'EEXIST', /^uv_poll_init/); // one watch per fd and thread
    u.unwatch(handle);
  } finally {
    u.close(fd);
  }
});

test('bad and closed fds: EBADF, ENOTSOCK; close() closes only datagram sockets', async () => {
  addon();
  const fd = u.open(4, '127.0.0.1', 0, false, 0, 0);
  u.close(fd);
  const memory = new ArrayBuffer(64);
  const meta = new Int32Array(8);
  const desc = new Int32Array(DESC_INTS);
  setDestination(desc, 0, '127.0.0.1', 9);
  setIovs(desc, 0, 0, 8);
  expectThrows(() => u.recv(fd, memory, 0, 64, 1, meta), Error, 'EBADF', /^recvmmsg/);
  expectThrows(() => u.send(fd, memory, desc, 1), Error, 'EBADF', /^sendmmsg/);
  expectThrows(() => u.localPort(fd), Error, 'EBADF');
  expectThrows(() => u.attachReuseportCbpf(fd, new Uint8Array(8)), Error, 'EBADF');
  expectThrows(() => u.watch(fd, () => {}), Error, 'EBADF');
  expectThrows(() => u.close(fd), Error, 'EBADF');
  const file = openSync('/dev/null', 'r');
  try {
    expectThrows(() => u.recv(file, memory, 0, 64, 1, meta), Error, 'ENOTSOCK');
    expectThrows(() => u.send(file, memory, desc, 1), Error, 'ENOTSOCK');
    expectThrows(() => u.close(file), Error, 'ENOTSOCK');
    fstatSync(file); // still open
  } finally {
    closeSync(file);
  }
  const tcp = (await import('node:net')).createServer();
  await new Promise((r) => tcp.listen(0, '127.0.0.1', r));
  try {
    expectThrows(() => u.close(tcp._handle.fd), Error, 'EPROTOTYPE', /not a datagram socket/);
  } finally {
    tcp.close();
  }
});

// ---- Address records ---------------------------------------------------------------

test('address records: the address bytes in the words, as in memory; text both ways', () => {
  const ints = new Int32Array(8);
  assert.equal(encodeAddress('192.0.2.33', ints, 4), 4);
  assert.deepEqual([...new Uint8Array(ints.buffer, 16, 16)], [192, 0, 2, 33, ...new Array(12).fill(0)]);
  assert.equal(decodeAddress(ints, 4, 4), '192.0.2.33');
  for (const [text, canonical] of [
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'], ['::', '::'], ['::1', '::1'], ['fe80::', 'fe80::'],
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'], ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['2001:db8::0:1', '2001:db8::1'], ['::ffff:10.1.2.3', '::ffff:10.1.2.3'], ['64:ff9b::192.0.2.1', '64:ff9b::c000:201'],
    ['1:0:2:0:3:0:4:0', '1:0:2:0:3:0:4:0'],
  ]) {
    assert.equal(encodeAddress(text, ints, 0), 6);
    assert.equal(decodeAddress(ints, 0, 6), canonical, text);
  }
  encodeAddress('2001:db8::1', ints, 0);
  assert.deepEqual([...new Uint8Array(ints.buffer, 0, 16)], [0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 1]);
  encodeAddress('10.0.0.1', ints, 0);
  assert.deepEqual([...ints.subarray(1, 4)], [0, 0, 0], 'an IPv4 address clears the other words');
  for (const bad of ['10.0.0', 'x', '', 'fe80::1%eth0', '1::2::3']) assert.throws(() => encodeAddress(bad, ints, 0), RangeError);
  assert.throws(() => encodeAddress('10.0.0.1', ints, 5), RangeError);
  const desc = new Int32Array(2 * DESC_INTS);
  setDestination(desc, 1, '::1', 4789);
  setIovs(desc, 1, 10, 20, 30, 40);
  assert.deepEqual([...desc.subarray(DESC_INTS)], [6, 4789, 0, 0, 0, new Int32Array(new Uint8Array([0, 0, 0, 1]).buffer)[0], 10, 20, 30, 40]);
  assert.throws(() => setDestination(desc, 2, '::1', 1), RangeError);
});

// ---- watch / unwatch ---------------------------------------------------------------

test('watch: the callback runs while datagrams wait; unwatch stops it', async () => {
  addon();
  const fd = u.open(4, '127.0.0.1', 0, false, 0, 0);
  const sender = await dgramSocket('udp4');
  try {
    const memory = new ArrayBuffer(4 * 2048);
    const meta = new Int32Array(4 * META_INTS);
    let calls = 0;
    let received = 0;
    const handle = u.watch(fd, function () {
      assert.equal(arguments.length, 0);
      calls++;
      // Reads at most one per call: the level-triggered poll calls again while more wait.
      received += u.recv(fd, memory, 0, 2048, 1, meta);
    });
    assert.equal(typeof handle, 'number');
    for (let i = 0; i < 5; i++) await dgramSend(sender, Buffer.alloc(10, i), u.localPort(fd), '127.0.0.1');
    await until(() => received === 5, 'five datagrams through the callback');
    assert.ok(calls >= 5);
    assert.equal(u.unwatch(handle), true);
    assert.equal(u.unwatch(handle), false, 'a second unwatch');
    const before = calls;
    await dgramSend(sender, Buffer.alloc(10), u.localPort(fd), '127.0.0.1');
    await sleep(50);
    assert.equal(calls, before, 'no callback after unwatch');
    // The fd can be watched again at once (the old handle is still closing).
    const again = u.watch(fd, () => { calls++; u.recv(fd, memory, 0, 2048, 4, meta); });
    assert.notEqual(again, handle);
    await until(() => calls > before, 'the new watch');
    assert.equal(u.unwatch(again), true);
    // close() stops a watch of its fd.
    const third = u.watch(fd, () => {});
    u.close(fd);
    assert.equal(u.unwatch(third), false);
  } finally {
    try { u.close(fd); } catch { /* closed above */ }
    sender.close();
  }
});

test('watch: keeps the process alive only while watching; exits after unwatch by itself', () => {
  addon();
  const r = runChild(`
    import dgram from 'node:dgram';
    import { loadNative } from ${JSON.stringify(UDPIO)};
    const { native: u } = loadNative();
    const fd = u.open(4, '127.0.0.1', 0, false, 0, 0);
    const memory = new ArrayBuffer(2048), meta = new Int32Array(8);
    let got = 0;
    const handle = u.watch(fd, () => { got += u.recv(fd, memory, 0, 2048, 1, meta); });
    const s = dgram.createSocket('udp4');
    s.send(Buffer.from('hello'), u.localPort(fd), '127.0.0.1', () => s.close());
    // Unreferenced: only the watch keeps the process alive until this fires.
    setTimeout(() => {
      console.log('alive', got);
      u.unwatch(handle);
      u.close(fd);
    }, 300).unref();
  `);
  assert.equal(r.signal, null, `the child did not exit by itself: ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'alive 1');
});

test('watch: an exception thrown by the callback is uncaught, as in an event listener', () => {
  addon();
  const r = runChild(`
    import dgram from 'node:dgram';
    import { loadNative } from ${JSON.stringify(UDPIO)};
    const { native: u } = loadNative();
    const fd = u.open(4, '127.0.0.1', 0, false, 0, 0);
    process.on('uncaughtException', (e) => { console.log('caught', e.message); process.exit(3); });
    u.watch(fd, () => { throw new Error('from the callback'); });
    const s = dgram.createSocket('udp4');
    s.send(Buffer.from('x'), u.localPort(fd), '127.0.0.1', () => s.close());
  `);
  assert.equal(r.status, 3, r.stderr);
  assert.equal(r.stdout.trim(), 'caught from the callback');
});

// ---- Worker threads ----------------------------------------------------------------

function startWorker(source) {
  const file = join(scratch, `worker-${process.hrtime.bigint()}.mjs`);
  writeFileSync(file, source);
  const w = new Worker(file);
  const messages = [];
  w.on('message', (m) => messages.push(m));
  return { w, messages };
}

test('worker threads: a worker opens, watches and receives on its own loop, then exits', async () => {
  addon();
  const { w, messages } = startWorker(`
    import { parentPort } from 'node:worker_threads';
    import { loadNative, metaSource } from ${JSON.stringify(UDPIO)};
    const { native: u, reason } = loadNative();
    if (!u) throw new Error(reason);
    const fd = u.open(6, '::1', 0, false, 0, 0);
    const memory = new WebAssembly.Memory({ initial: 1 }).buffer, meta = new Int32Array(64 * 8);
    const got = [];
    const handle = u.watch(fd, () => {
      const n = u.recv(fd, memory, 0, 1024, 64, meta);
      for (let i = 0; i < n; i++) got.push({ text: Buffer.from(memory, i * 1024, meta[i * 8]).toString(), from: metaSource(meta, i).address });
      if (got.length === 10) {
        u.unwatch(handle);
        u.close(fd);
        parentPort.postMessage({ got });
        parentPort.close();
      }
    });
    parentPort.postMessage({ port: u.localPort(fd) });
  `);
  const sender = await dgramSocket('udp6');
  try {
    await until(() => messages.length === 1, 'the worker\'s port');
    for (let i = 0; i < 10; i++) await dgramSend(sender, Buffer.from(`datagram ${i}`), messages[0].port, '::1');
    const [code] = await once(w, 'exit');
    assert.equal(code, 0, 'the worker exited by itself, with 0');
    assert.deepEqual(messages[1].got.map((g) => g.text), Array.from({ length: 10 }, (_, i) => `datagram ${i}`));
    assert.ok(messages[1].got.every((g) => g.from === '::1'));
  } finally {
    sender.close();
  }
});

test('worker threads: a worker terminated while watching leaves no socket or handle behind', async () => {
  addon();
  const { w, messages } = startWorker(`
    import { parentPort } from 'node:worker_threads';
    import { loadNative } from ${JSON.stringify(UDPIO)};
    const { native: u } = loadNative();
    const fds = [u.open(4, '127.0.0.1', 0, false, 0, 0), u.open(4, '127.0.0.1', 0, false, 0, 0)];
    const memory = new ArrayBuffer(2048), meta = new Int32Array(8);
    let got = 0;
    u.watch(fds[0], () => { got += u.recv(fds[0], memory, 0, 2048, 1, meta); parentPort.postMessage({ got }); });
    parentPort.postMessage({ ports: fds.map((fd) => u.localPort(fd)) });
  `);
  const sender = await dgramSocket('udp4');
  try {
    await until(() => messages.length === 1, 'the worker\'s ports');
    const { ports } = messages[0];
    await dgramSend(sender, Buffer.from('x'), ports[0], '127.0.0.1');
    await until(() => messages.length === 2, 'the worker\'s callback');
    await w.terminate();
    // Both sockets were closed when the worker's environment went away: the ports can be
    // bound again (without SO_REUSEPORT, which a lingering socket would refuse).
    for (const port of ports) u.close(u.open(4, '127.0.0.1', port, false, 0, 0));
  } finally {
    sender.close();
  }
});

// ---- Steering ----------------------------------------------------------------------

/**
 * A classic BPF interpreter with the kernel's semantics for what steeringProgram() uses:
 * 32-bit A and X, M[0..15], loads relative to the UDP payload; a load past the end ends
 * the program with 0.
 */
function runCbpf(program, data) {
  const le = endianness() === 'LE';
  const dv = new DataView(program.buffer, program.byteOffset, program.byteLength);
  const M = new Uint32Array(16);
  let A = 0;
  let X = 0;
  const load = (at, size) => {
    if (at < 0 || at + size > data.length) return null;
    let v = 0;
    for (let i = 0; i < size; i++) v = v * 256 + data[at + i];
    return v >>> 0;
  };
  for (let pc = 0; pc < program.length / 8; pc++) {
    const code = dv.getUint16(pc * 8, le);
    const jt = program[pc * 8 + 2];
    const jf = program[pc * 8 + 3];
    const k = dv.getUint32(pc * 8 + 4, le);
    const cls = code & 7;
    if (cls === 0 || cls === 1) {
      const size = { 0x00: 4, 0x08: 2, 0x10: 1 }[code & 0x18];
      const mode = code & 0xe0;
      const v = mode === 0x00 ? k : mode === 0x60 ? M[k] : mode === 0x20 ? load(k, size) : mode === 0x40 ? load((X + k) >>> 0, size)
        : mode === 0x80 ? data.length : assert.fail(`opcode ${code.toString(16)}`);
      if (v === null) return 0;
      if (cls === 0) A = v; else X = v;
    } else if (cls === 2) M[k] = A;
    else if (cls === 3) M[k] = X;
    else if (cls === 4) {
      const s = code & 0x08 ? X : k;
      const ops = {
        0x00: () => A + s, 0x10: () => A - s, 0x20: () => Math.imul(A, s), 0x30: () => Math.floor(A / s), 0x40: () => A | s,
        0x50: () => A & s, 0x60: () => A << s, 0x70: () => A >>> s, 0x80: () => -A, 0x90: () => A % s, 0xa0: () => A ^ s,
      };
      A = ops[code & 0xf0]() >>> 0;
    } else if (cls === 5) {
      const s = code & 0x08 ? X : k;
      const op = code & 0xf0;
      if (op === 0x00) pc += k;
      else pc += (op === 0x10 ? A === s : op === 0x20 ? A > s : op === 0x30 ? A >= s : (A & s) !== 0) ? jt : jf;
    } else if (cls === 6) {
      return (code & 0x18) === 0x10 ? A : (code & 0x18) === 0x08 ? X : k;
    } else {
      if (code & 0x80) A = X; else X = A;
    }
  }
  assert.fail('the program ran past its end');
}

const NAT = {
  natFrontends: ['10.0.0.100', '2001:db8::100'],
  natBackends: ['10.1.0.1', '10.1.0.2', '2001:db8:1::1', '2001:db8:1::2'],
};

/** An Ethernet frame with one 802.1Q tag (VLAN 100) around an IP packet. */
const tagged = (ip) => ether(concat(Uint8Array.of(0x00, 0x64, ...(ip[0] >> 4 === 6 ? [0x86, 0xdd] : [0x08, 0x00])), ip), 0x8100);
const rawType = (ip) => (ip[0] >> 4 === 6 ? 0x86dd : 0x0800);
const OPTIONS = [{ optionClass: 0x0108, type: 1, data: new Uint8Array(8).fill(7) }, { optionClass: 0xffff, type: 0x80, data: new Uint8Array(4) }];

/** Ways to carry an inner IP packet: every datagram picks one, so steering cannot depend on the tunnel header's contents. */
const ENCAPSULATIONS = {
  vxlan: [
    (ip, vni) => concat(vxlanHeader(vni), ether(ip)),
    (ip, vni) => concat(vxlanHeader(vni), tagged(ip)),
  ],
  geneve: [
    (ip, vni) => concat(geneveHeader({ vni }), ether(ip)),
    (ip, vni) => concat(geneveHeader({ vni, protocol: rawType(ip) }), ip),
    (ip, vni) => concat(geneveHeader({ vni, options: OPTIONS }), tagged(ip)),
    (ip, vni) => concat(geneveHeader({ vni, protocol: rawType(ip), options: OPTIONS.slice(0, 1) }), ip),
  ],
};

/**
 * Datagrams of many flows, each { flow, bytes }: both directions of plain flows (IPv4 and
 * IPv6: UDP, TCP, first and later fragments), NAT flows (client → frontend, backend →
 * client, fragments), and, as flow 'unparsed', datagrams the program cannot parse.
 * Every datagram is distinct (a serial number in its payload).
 */
function steeringTraffic(protocol, seed, flows = 24) {
  const next = rng(seed);
  const encaps = ENCAPSULATIONS[protocol];
  const out = [];
  let serial = 0;
  const payload = () => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, ++serial); return b; };
  const add = (flow, ip) => out.push({ flow, bytes: new Uint8Array(encaps[next() % encaps.length](ip, next() & 0xffffff)) });
  const ip = (src, dst, o) => packet({ src, dst, proto: 17, ...o, payload: payload() });
  const conversation = (flow, a, b, reply = [b, a]) => {
    const sport = 1024 + (next() % 60000);
    const dport = 1 + (next() % 1000);
    const id = next() & 0xffff;
    add(flow, ip(a, b, { sport, dport }));
    add(flow, ip(reply[0], reply[1], { sport: dport, dport: sport }));
    add(flow, ip(a, b, { proto: 6, sport, dport, tcpFlags: 0x10 }));
    add(flow, ip(a, b, { sport, dport, fragment: { offset: 0, more: true, id } }));
    add(flow, ip(a, b, { fragment: { offset: 185, more: false, id } }));
    add(flow, ip(reply[0], reply[1], { fragment: { offset: 370, more: true, id: id + 1 } }));
  };
  for (let f = 0; f < flows; f++) {
    conversation(`v4 ${f}`, randomV4(next), randomV4(next));
    conversation(`v6 ${f}`, randomV6(next), randomV6(next));
    // NAT: the client sends to the frontend; the backend answers the client.
    const c4 = randomV4(next);
    conversation(`nat v4 ${f}`, c4, NAT.natFrontends[0], [NAT.natBackends[f % 2], c4]);
    const c6 = randomV6(next);
    conversation(`nat v6 ${f}`, c6, NAT.natFrontends[1], [NAT.natBackends[2 + (f % 2)], c6]);
  }
  const v4 = packet({ src: '10.2.0.1', dst: '10.3.0.1', proto: 17, payload: payload() });
  const v6 = packet({ src: '2001:db8:2::1', dst: '2001:db8:3::1', proto: 17, payload: payload() });
  const unparsed = [
    new Uint8Array(0),
    Uint8Array.of(1, 2, 3),
    concat(protocol === 'vxlan' ? vxlanHeader(5) : geneveHeader({ vni: 5 }), ether(concat(new Uint8Array(28), payload()), 0x0806)), // ARP
    concat(protocol === 'vxlan' ? vxlanHeader(5) : geneveHeader({ vni: 5 }), new Uint8Array(10)),                                    // a frame cut short
    concat(protocol === 'vxlan' ? vxlanHeader(5) : geneveHeader({ vni: 5 }), ether(v6, 0x0800)),                                   // EtherType ≠ version
    concat(protocol === 'vxlan' ? vxlanHeader(5) : geneveHeader({ vni: 5 }), ether(concat(v4.subarray(0, 12), payload()))),        // no destination
    concat(protocol === 'vxlan' ? vxlanHeader(5) : geneveHeader({ vni: 5 }), tagged(concat(v6.subarray(0, 30), payload()))),      // IPv6 cut short
  ];
  if (protocol === 'geneve') {
    for (let i = 0; i < 8; i++) {
      const h = geneveHeader({ vni: i, protocol: 0x0800 });
      h[0] |= 0x40; // version 1
      unparsed.push(concat(h, packet({ src: randomV4(next), dst: randomV4(next), payload: payload() })));
    }
    unparsed.push(concat(geneveHeader({ vni: 1, protocol: 0x8847 }), v4));                                        // MPLS
    unparsed.push(concat(Uint8Array.of(10, 0, 0x65, 0x58, 0, 0, 1, 0), new Uint8Array(16), payload()));          // options past the end
  }
  for (const bytes of unparsed) out.push({ flow: 'unparsed', bytes: new Uint8Array(bytes) });
  return out;
}

/** N sockets of one SO_REUSEPORT group on host:port (socket i bound i-th), the program attached. */
function openGroup(family, host, n, program) {
  const fds = [u.open(family, host, 0, true, 4 << 20, 0)];
  const port = u.localPort(fds[0]);
  for (let i = 1; i < n; i++) fds.push(u.open(family, host, port, true, 4 << 20, 0));
  u.attachReuseportCbpf(fds[fds.length - 1], program); // any socket of the group will do
  return { fds, port, close: () => fds.forEach((fd) => u.close(fd)) };
}

/** Sends the traffic to the group and returns, per datagram, the socket that received it. */
async function steer(group, family, traffic) {
  const host = family === 4 ? '127.0.0.1' : '::1';
  const tx = u.open(family, host, 0, false, 0, 4 << 20);
  const index = new Map(traffic.map((d, i) => [Buffer.from(d.bytes).toString('hex'), i]));
  assert.equal(index.size, traffic.length, 'every datagram is distinct');
  const socketOf = new Array(traffic.length).fill(-1);
  const memory = new ArrayBuffer(64 * 2048);
  const meta = new Int32Array(64 * META_INTS);
  let received = 0;
  const drain = () => {
    group.fds.forEach((fd, s) => {
      for (let n; (n = u.recv(fd, memory, 0, 2048, 64, meta)) > 0;) {
        for (let i = 0; i < n; i++) {
          const key = Buffer.from(memory, i * 2048, meta[i * META_INTS]).toString('hex');
          const d = index.get(key);
          assert.ok(d !== undefined && socketOf[d] === -1, 'an unknown or repeated datagram');
          socketOf[d] = s;
          received++;
        }
      }
    });
  };
  try {
    for (let at = 0; at < traffic.length; at += 64) {
      await sendAll(tx, traffic.slice(at, at + 64).map((d) => d.bytes), host, group.port);
      drain();
    }
    const deadline = Date.now() + 5000;
    while (received < traffic.length && Date.now() < deadline) {
      await sleep(5);
      drain();
    }
    assert.equal(received, traffic.length, 'every datagram arrived');
  } finally {
    u.close(tx);
  }
  return socketOf;
}

function checkSteering(program, traffic, socketOf, workers) {
  const byFlow = new Map();
  traffic.forEach((d, i) => {
    assert.equal(socketOf[i], runCbpf(program, d.bytes), `the kernel and the interpreter agree on datagram ${i} (${d.flow})`);
    if (!byFlow.has(d.flow)) byFlow.set(d.flow, new Set());
    byFlow.get(d.flow).add(socketOf[i]);
  });
  for (const [flow, sockets] of byFlow) {
    assert.equal(sockets.size, 1, `every datagram of flow ${flow} on one socket (got ${[...sockets]})`);
  }
  assert.deepEqual([...byFlow.get('unparsed')], [0], 'what cannot be parsed goes to socket 0');
  for (const kind of ['v4', 'v6', 'nat v4', 'nat v6']) {
    const used = new Set([...byFlow].filter(([flow]) => flow.startsWith(`${kind} `)).map(([, s]) => [...s][0]));
    assert.equal(used.size, workers, `${kind} flows spread over all ${workers} sockets`);
  }
}

for (const [protocol, workers, family] of [['vxlan', 2, 4], ['vxlan', 3, 4], ['geneve', 2, 4], ['geneve', 3, 4], ['geneve', 3, 6], ['vxlan', 2, 6]]) {
  test(`steering (${protocol}, ${workers} sockets, IPv${family} outer): both directions of every flow on one socket`, async () => {
    addon();
    const program = steeringProgram({ workers, protocol, ...NAT });
    assert.ok(program instanceof Uint8Array && program.length % 8 === 0);
    const group = openGroup(family, family === 4 ? '127.0.0.1' : '::1', workers, program);
    try {
      const traffic = steeringTraffic(protocol, 0x5eed + workers * 31 + family);
      checkSteering(program, traffic, await steer(group, family, traffic), workers);
    } finally {
      group.close();
    }
  });
}

test('steering: long NAT address lists (several chunks of jumps) in the kernel', async () => {
  addon();
  // Sized to pass the kernel's old 20 KiB net.core.optmem_max too (about 2,200 instructions).
  const frontends = [...Array.from({ length: 600 }, (_, i) => `10.100.${i >> 8}.${i & 0xff}`), ...Array.from({ length: 40 }, (_, i) => `2001:db8:f::${i.toString(16)}`)];
  const backends = [...Array.from({ length: 300 }, (_, i) => `10.200.${i >> 8}.${i & 0xff}`), ...Array.from({ length: 35 }, (_, i) => `2001:db8:b::${i.toString(16)}`)];
  const program = steeringProgram({ workers: 3, protocol: 'geneve', natFrontends: frontends, natBackends: backends });
  assert.ok(program && program.length / 8 > 1500 && program.length / 8 < 2000, `${program?.length / 8} instructions`);
  const group = openGroup(4, '127.0.0.1', 3, program);
  try {
    const next = rng(77);
    const traffic = [];
    let serial = 0;
    const ip = (src, dst) => packet({ src, dst, proto: 17, payload: [serial >> 8, serial++ & 0xff] });
    for (let f = 0; f < 60; f++) {
      const fe = frontends[[0, 599, 600, 639][f % 4]]; // the first and the last of each family
      const be = backends[[0, 299, 300, 334][f % 4]];
      const client = fe.includes(':') ? randomV6(next) : randomV4(next);
      traffic.push({ flow: `nat ${f}`, bytes: new Uint8Array(concat(geneveHeader({ vni: 1 }), ether(ip(client, fe)))) });
      const reply = ip(be, client);
      traffic.push({ flow: `nat ${f}`, bytes: new Uint8Array(concat(geneveHeader({ vni: 1, protocol: rawType(reply) }), reply)) });
    }
    const socketOf = await steer(group, 4, traffic);
    const byFlow = new Map();
    traffic.forEach((d, i) => {
      assert.equal(socketOf[i], runCbpf(program, d.bytes));
      byFlow.set(d.flow, (byFlow.get(d.flow) ?? new Set()).add(socketOf[i]));
    });
    for (const [flow, s] of byFlow) assert.equal(s.size, 1, flow);
    assert.equal(new Set([...byFlow.values()].map((s) => [...s][0])).size, 3);
  } finally {
    group.close();
  }
});

test('steering (interpreter): symmetric for many more flows, and NAT keyed on the client', () => {
  for (const protocol of ['vxlan', 'geneve']) {
    const program = steeringProgram({ workers: 7, protocol, ...NAT });
    const traffic = steeringTraffic(protocol, 1234, 400);
    const byFlow = new Map();
    const counts = new Array(7).fill(0);
    for (const d of traffic) {
      const w = runCbpf(program, d.bytes);
      assert.ok(w >= 0 && w < 7);
      if (!byFlow.has(d.flow)) { byFlow.set(d.flow, w); counts[w]++; }
      assert.equal(w, byFlow.get(d.flow), `flow ${d.flow}`);
    }
    // 1,600 flows over 7 workers: each within 30 % of the mean.
    for (const c of counts) assert.ok(Math.abs(c - 1601 / 7) < 0.3 * 1601 / 7, `spread ${counts}`);
  }
  // NAT: client → frontend and backend → client, whichever backend, are keyed on the client.
  const program = steeringProgram({ workers: 5, protocol: 'vxlan', ...NAT });
  const run = (src, dst) => runCbpf(program, new Uint8Array(concat(vxlanHeader(1), ether(packet({ src, dst, payload: 4 })))));
  const seen = new Set();
  for (let i = 0; i < 50; i++) {
    const client = `192.0.2.${i}`;
    assert.equal(run(client, '10.0.0.100'), run('10.1.0.2', client), 'client → frontend and backend → client');
    assert.equal(run(client, '10.0.0.100'), run('10.1.0.1', client));
    assert.equal(run(`10.9.0.${i}`, '10.0.0.100'), run('10.1.0.1', `10.9.0.${i}`));
    seen.add(run(client, '10.0.0.100'));
  }
  assert.equal(seen.size, 5, 'NAT flows spread by client');
});

test('steering: one worker, too long, bad options', () => {
  const one = steeringProgram({ workers: 1, protocol: 'vxlan', ...NAT });
  assert.equal(one.length, 8, 'one worker: a single "return 0"');
  assert.equal(runCbpf(one, new Uint8Array(100)), 0);
  const many = Array.from({ length: 4100 }, (_, i) => `10.${i >> 16}.${(i >> 8) & 0xff}.${i & 0xff}`);
  assert.equal(steeringProgram({ workers: 2, protocol: 'vxlan', natFrontends: many, natBackends: [] }), null, 'past BPF_MAXINSNS: null');
  // Just below the limit, addresses of every chunk still match (in the interpreter: a kernel
  // with the old 20 KiB net.core.optmem_max refuses programs past about 2,200 instructions).
  const near = steeringProgram({ workers: 4, protocol: 'vxlan', natFrontends: many.slice(0, 3000), natBackends: many.slice(3000, 3900) });
  assert.ok(near && near.length / 8 <= BPF_MAXINSNS && near.length / 8 > 3900, `${near?.length / 8} instructions`);
  const run = (src, dst) => runCbpf(near, new Uint8Array(concat(vxlanHeader(1), ether(packet({ src, dst, payload: 4 })))));
  for (const [fe, be] of [[0, 3000], [254, 3254], [2999, 3899], [1500, 3600]]) {
    for (let c = 0; c < 8; c++) assert.equal(run(`192.0.2.${c}`, many[fe]), run(many[be], `192.0.2.${c}`), `frontend ${fe}, backend ${be}`);
  }
  const v6 = Array.from({ length: 600 }, (_, i) => `2001:db8::${i.toString(16)}`);
  assert.equal(steeringProgram({ workers: 2, protocol: 'geneve', natFrontends: [], natBackends: v6 }), null);
  // Duplicates count once.
  const dup = steeringProgram({ workers: 2, protocol: 'vxlan', natFrontends: Array(5000).fill('10.0.0.1'), natBackends: [] });
  assert.ok(dup && dup.length / 8 < 200);
  for (const workers of [0, 1.5, 65536, NaN]) assert.throws(() => steeringProgram({ workers, protocol: 'vxlan', natFrontends: [], natBackends: [] }), RangeError);
  assert.throws(() => steeringProgram({ workers: 2, protocol: 'gre', natFrontends: [], natBackends: [] }), RangeError);
  assert.throws(() => steeringProgram({ workers: 2, protocol: 'vxlan', natFrontends: ['10.0.0.300'], natBackends: [] }), RangeError);
  assert.throws(() => steeringProgram({ workers: 2, protocol: 'vxlan', natFrontends: [], natBackends: ['fe80::1%eth0'] }), RangeError);
});
