// Tests for host/cli/pcap.ts (capture reader/writer used by `haports replay`).
// Build first: node scripts/build-host.mjs
//
// Captures written by real tools are generated at test time: scapy (python3) for pcap
// in both byte orders and link types and for a two-interface pcapng; editcap/mergecap
// (Wireshark) for a nanosecond pcapng with if_tsresol, when installed. Cases no tool
// writes (big-endian pcapng, binary if_tsresol, Simple/obsolete Packet Blocks, broken
// block lengths) are built byte by byte below.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CaptureStream,
  readCapture,
  writePcap,
  LINKTYPE_ETHERNET,
  LINKTYPE_RAW,
  LINKTYPE_IPV4,
  LINKTYPE_IPV6,
} from '../../build/host/pcap.mjs';

const hex = (u8) => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength).toString('hex');
const bytes = (h) => new Uint8Array(Buffer.from(h.replace(/\s+/g, ''), 'hex'));

/** Asserts that readCapture(buf) throws an Error "capture: ..." matching `re`. */
function assertCaptureError(buf, re) {
  assert.throws(
    () => readCapture(buf),
    (err) => {
      assert.ok(err instanceof Error, 'throws an Error');
      assert.match(err.message, /^capture: /);
      assert.match(err.message, /at byte offset \d+$/);
      if (re) assert.match(err.message, re);
      return true;
    },
  );
}

/** Summarises packets for deepEqual comparisons. */
const summary = (packets) =>
  packets.map((p) => ({
    index: p.index,
    linktype: p.linktype,
    tsSec: p.tsSec,
    tsNsec: p.tsNsec,
    hex: hex(p.data),
    origLen: p.origLen,
  }));

const hasScapy = () => spawnSync('python3', ['-c', 'import scapy.all'], { stdio: 'ignore' }).status === 0;

function hasCommand(cmd, args = ['--version']) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.status === 0;
}

let dir;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'haports-pcap-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// Hand-built pcapng blocks, in either byte order.

function ng(le) {
  const u16 = (v) => {
    const b = Buffer.alloc(2);
    le ? b.writeUInt16LE(v) : b.writeUInt16BE(v);
    return b;
  };
  const u32 = (v) => {
    const b = Buffer.alloc(4);
    le ? b.writeUInt32LE(v) : b.writeUInt32BE(v);
    return b;
  };
  const i64 = (v) => {
    const b = Buffer.alloc(8);
    le ? b.writeBigInt64LE(v) : b.writeBigInt64BE(v);
    return b;
  };
  const pad = (b) => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
  const block = (type, ...body) => {
    const b = pad(Buffer.concat(body));
    const len = b.length + 12;
    return Buffer.concat([u32(type), u32(len), b, u32(len)]);
  };
  const opts = (list) =>
    list.length === 0
      ? Buffer.alloc(0)
      : Buffer.concat([...list.map(([code, v]) => Buffer.concat([u16(code), u16(v.length), pad(v)])), u32(0)]);
  const ts = (t) => [u32(Number(t >> 32n)), u32(Number(t & 0xffffffffn))];
  return {
    u16,
    u32,
    block,
    shb: () => block(0x0a0d0d0a, u32(0x1a2b3c4d), u16(1), u16(0), i64(-1n)),
    idb: (linktype, { snaplen = 0, options = [] } = {}) =>
      block(1, u16(linktype), u16(0), u32(snaplen), opts(options)),
    tsresol: (v) => [9, Buffer.from([v])],
    tsoffset: (sec) => [14, i64(sec)],
    comment: (s) => [1, Buffer.from(s)],
    epb: (ifId, t, data, origLen = data.length) =>
      block(6, u32(ifId), ...ts(t), u32(data.length), u32(origLen), pad(Buffer.from(data)), opts([[1, Buffer.from('c')]])),
    pb: (ifId, t, data) => block(2, u16(ifId), u16(0), ...ts(t), u32(data.length), u32(data.length), pad(Buffer.from(data))),
    spb: (origLen, data) => block(3, u32(origLen), Buffer.from(data)),
  };
}

const le = ng(true);
const be = ng(false);
const concat = (...parts) => new Uint8Array(Buffer.concat(parts));

/** A small valid pcapng: one section, one Ethernet interface, two packets. */
function smallPcapng() {
  return concat(le.shb(), le.idb(LINKTYPE_ETHERNET), le.epb(0, 1_000_000n, bytes('aabbcc')), le.epb(0, 2_000_000n, bytes('dd')));
}

/** Byte-swaps a little-endian classic pcap into a big-endian one. */
function pcapToBigEndian(src) {
  const s = Buffer.from(src);
  const d = Buffer.from(s); // copy; data bytes stay as they are
  const swap32 = (off) => d.writeUInt32BE(s.readUInt32LE(off), off);
  const swap16 = (off) => d.writeUInt16BE(s.readUInt16LE(off), off);
  swap32(0);
  swap16(4);
  swap16(6);
  for (const off of [8, 12, 16, 20]) swap32(off);
  let off = 24;
  while (off < s.length) {
    const incl = s.readUInt32LE(off + 8);
    for (let k = 0; k < 16; k += 4) swap32(off + k);
    off += 16 + incl;
  }
  return new Uint8Array(d);
}

// ---------------------------------------------------------------------------

describe('writePcap', () => {
  const input = [
    { data: bytes('4500001400000000401100000a0000010a000002'), tsSec: 1700000000, tsNsec: 123456789 },
    { data: bytes('00'), tsSec: 1, tsNsec: 999999999 },
    { data: new Uint8Array(0) },
    { data: new Uint8Array(1500).map((_, i) => i & 0xff), tsSec: 0xffffffff, tsNsec: 0 },
  ];

  test('writes a little-endian nanosecond pcap header and records', () => {
    const out = writePcap(input, LINKTYPE_RAW);
    const b = Buffer.from(out);
    assert.equal(b.readUInt32LE(0), 0xa1b23c4d);
    assert.equal(b.readUInt16LE(4), 2);
    assert.equal(b.readUInt16LE(6), 4);
    assert.equal(b.readInt32LE(8), 0);
    assert.equal(b.readUInt32LE(12), 0);
    assert.equal(b.readUInt32LE(16), 262144);
    assert.equal(b.readUInt32LE(20), 101);
    // first record header
    assert.deepEqual([0, 4, 8, 12].map((o) => b.readUInt32LE(24 + o)), [1700000000, 123456789, 20, 20]);
    assert.equal(out.length, 24 + input.reduce((n, p) => n + 16 + p.data.length, 0));
  });

  test('round trip writePcap -> readCapture', () => {
    for (const linktype of [LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6]) {
      const cap = readCapture(writePcap(input, linktype));
      assert.equal(cap.format, 'pcap');
      assert.deepEqual(
        summary(cap.packets),
        input.map((p, i) => ({
          index: i,
          linktype,
          tsSec: p.tsSec ?? 0,
          tsNsec: p.tsNsec ?? 0,
          hex: hex(p.data),
          origLen: p.data.length,
        })),
      );
    }
    assert.deepEqual(readCapture(writePcap([], LINKTYPE_ETHERNET)), { format: 'pcap', packets: [] });
  });

  test('rejects values the format cannot hold', () => {
    const d = bytes('00');
    assert.throws(() => writePcap([{ data: d, tsNsec: 1e9 }], 1), /^RangeError: capture: .*tsNsec/);
    assert.throws(() => writePcap([{ data: d, tsSec: -1 }], 1), /^RangeError: capture: .*tsSec/);
    assert.throws(() => writePcap([{ data: d, tsSec: 2 ** 32 }], 1), /^RangeError: capture: .*tsSec/);
    assert.throws(() => writePcap([{ data: new Uint8Array(262145) }], 1), /^RangeError: capture: .*snaplen/);
    assert.throws(() => writePcap([], 0x10000), /^RangeError: capture: link type/);
  });

  test('output is readable by scapy (RawPcapReader) and tshark', (t) => {
    if (!hasScapy()) return t.skip('python3 with scapy not installed');
    const f = join(dir, 'ours.pcap');
    writeFileSync(f, writePcap(input, LINKTYPE_RAW));
    const py = execFileSync('python3', [
      '-c',
      `import json, sys
from scapy.utils import RawPcapReader
r = RawPcapReader(sys.argv[1])
out = [dict(hex=d.hex(), sec=m.sec, frac=m.usec, caplen=m.caplen, wirelen=m.wirelen) for d, m in r]
print(json.dumps(dict(linktype=r.linktype, nano=r.nano, packets=out)))`,
      f,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    const got = JSON.parse(py);
    assert.equal(got.linktype, 101);
    assert.equal(got.nano, true);
    assert.deepEqual(
      got.packets,
      input.map((p) => ({
        hex: hex(p.data),
        sec: p.tsSec ?? 0,
        frac: p.tsNsec ?? 0,
        caplen: p.data.length,
        wirelen: p.data.length,
      })),
    );
    if (hasCommand('tshark')) {
      const ts = execFileSync('tshark', ['-r', f, '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'frame.cap_len'], {
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      const rows = ts.toString().trim().split('\n');
      assert.equal(rows.length, input.length);
      assert.deepEqual(rows[0].split('\t'), ['1700000000.123456789', '20']);
      assert.deepEqual(rows[3].split('\t'), ['4294967295.000000000', '1500']);
    }
  });
});

// ---------------------------------------------------------------------------
// Captures written by scapy.

describe('captures written by scapy', () => {
  let files = null; // name -> { path, packets: [{ hex, sec, nsec, wirelen, linktype }] }
  let skipReason = null;

  before(() => {
    const script = String.raw`
import json, sys
from decimal import Decimal
from scapy.all import Ether, IP, IPv6, UDP, TCP, ICMP, wrpcap, wrpcapng
from scapy.utils import EDecimal

d = sys.argv[1]
def stamp(pkts, times):
    for p, t in zip(pkts, times):
        p.time = EDecimal(t)
    return pkts

def eth():
    return stamp([
        Ether(dst="00:11:22:33:44:55", src="66:77:88:99:aa:bb")/IP(src="10.0.0.1", dst="10.0.0.2")/UDP(sport=1234, dport=53)/b"hello",
        Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02")/IPv6(src="2001:db8::1", dst="2001:db8::2")/TCP(sport=40000, dport=80, flags="S"),
        Ether(dst="02:00:00:00:00:03", src="02:00:00:00:00:04")/IP(src="192.0.2.1", dst="192.0.2.2")/ICMP()/(b"x" * 301),
    ], ["1700000000.123456", "1700000001.000001", "1700000002.999999"])

def raw():
    return stamp([
        IP(src="10.1.0.1", dst="10.1.0.2")/UDP(sport=5000, dport=6000)/b"abc",
        IPv6(src="2001:db8::a", dst="2001:db8::b")/UDP(sport=1, dport=2),
        IP(src="10.1.0.3", dst="10.1.0.4")/TCP(sport=7, dport=8, flags="PA")/b"payload!",
    ], ["1700000003.123456789", "1700000004.000000001", "1700000005.5"])

def expect(pkts, linktype):
    out = []
    for p in pkts:
        t = Decimal(str(p.time))
        sec = int(t)
        out.append(dict(hex=bytes(p).hex(), sec=sec, nsec=int((t - sec) * 1000000000),
                        wirelen=getattr(p, "wirelen", None) or len(bytes(p)), linktype=linktype))
    return out

files = {}
def put(name, pkts, expected_linktype, **kw):
    path = d + "/" + name
    wrpcap(path, pkts, **kw)
    files[name] = dict(path=path, packets=expect(pkts, expected_linktype))

put("eth-le-us.pcap", eth(), 1)
put("eth-be-us.pcap", eth(), 1, endianness=">")
put("raw-le-ns.pcap", raw(), 101, linktype=101, nano=True)
put("raw-be-ns.pcap", raw(), 101, linktype=101, endianness=">", nano=True)
put("eth-le-ns.pcap", eth(), 1, nano=True)

# snaplen-truncated: scapy records wirelen as orig_len
t = eth()
for p in t:
    p.wirelen = len(bytes(p)) + 100
put("eth-wirelen.pcap", t, 1)

# pcapng with two interfaces: Ethernet on eth0, raw IPv4 on tun0 (scapy writes an
# unused interface 0 first). Times are exact in binary so float conversion is lossless.
e = stamp(eth()[:2], ["1700000000.25", "1700000002.0625"])
r = stamp(raw()[:1] + raw()[2:], ["1700000001.5", "1700000003.125"])
for p in e: p.sniffed_on = "eth0"
for p in r: p.sniffed_on = "tun0"
mixed = [e[0], r[0], e[1], r[1]]
path = d + "/two-if.pcapng"
wrpcapng(path, mixed)
files["two-if.pcapng"] = dict(path=path, packets=expect(e[:1], 1) + expect(r[:1], 228) + expect(e[1:], 1) + expect(r[1:], 228))
print(json.dumps(files))
`;
    if (!hasScapy()) {
      skipReason = 'python3 with scapy not installed';
      return;
    }
    // Any failure from here on is a test failure, not a skip.
    files = JSON.parse(execFileSync('python3', ['-c', script, dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
  });

  /** Reads a scapy file and checks every packet against what scapy said it wrote. */
  function check(t, name, format) {
    if (skipReason) return t.skip(skipReason);
    const f = files[name];
    const buf = new Uint8Array(readFileSync(f.path));
    const cap = readCapture(buf);
    assert.equal(cap.format, format);
    assert.deepEqual(
      summary(cap.packets),
      f.packets.map((p, i) => ({ index: i, linktype: p.linktype, tsSec: p.sec, tsNsec: p.nsec, hex: p.hex, origLen: p.wirelen })),
    );
    // data are views into the input, not copies
    for (const p of cap.packets) assert.equal(p.data.buffer, buf.buffer);
    return cap;
  }

  test('little-endian, microsecond, Ethernet', (t) => {
    const cap = check(t, 'eth-le-us.pcap', 'pcap');
    if (cap) assert.equal(cap.packets[0].tsNsec, 123456000);
  });
  test('big-endian, microsecond, Ethernet', (t) => check(t, 'eth-be-us.pcap', 'pcap'));
  test('little-endian, nanosecond, Ethernet', (t) => check(t, 'eth-le-ns.pcap', 'pcap'));
  test('little-endian, nanosecond, raw IP (linktype 101)', (t) => {
    const cap = check(t, 'raw-le-ns.pcap', 'pcap');
    if (cap) assert.deepEqual([cap.packets[0].tsSec, cap.packets[0].tsNsec], [1700000003, 123456789]);
  });
  test('big-endian, nanosecond, raw IP (linktype 101)', (t) => check(t, 'raw-be-ns.pcap', 'pcap'));
  test('orig_len larger than incl_len is reported as origLen', (t) => {
    const cap = check(t, 'eth-wirelen.pcap', 'pcap');
    if (cap) assert.equal(cap.packets[0].origLen, cap.packets[0].data.length + 100);
  });

  test('big-endian pcap built by byte-swapping a scapy file reads the same', (t) => {
    if (skipReason) return t.skip(skipReason);
    for (const name of ['eth-le-us.pcap', 'raw-le-ns.pcap']) {
      const src = new Uint8Array(readFileSync(files[name].path));
      const swapped = pcapToBigEndian(src);
      assert.notEqual(hex(swapped.subarray(0, 24)), hex(src.subarray(0, 24)));
      assert.deepEqual(summary(readCapture(swapped).packets), summary(readCapture(src).packets));
    }
  });

  test('pcapng with two interfaces of different link types', (t) => {
    const cap = check(t, 'two-if.pcapng', 'pcapng');
    if (cap) {
      assert.deepEqual(cap.packets.map((p) => p.linktype), [1, 228, 1, 228]);
      assert.deepEqual(cap.packets.map((p) => [p.tsSec, p.tsNsec]), [
        [1700000000, 250000000],
        [1700000001, 500000000],
        [1700000002, 62500000],
        [1700000003, 125000000],
      ]);
    }
  });

  test('every truncation of a real capture either parses to a prefix or throws capture:', (t) => {
    if (skipReason) return t.skip(skipReason);
    for (const name of ['eth-le-us.pcap', 'raw-be-ns.pcap', 'two-if.pcapng']) {
      const full = new Uint8Array(readFileSync(files[name].path));
      const all = summary(readCapture(full).packets);
      let parsed = 0;
      for (let n = 0; n < full.length; n++) {
        let cap;
        try {
          cap = readCapture(full.subarray(0, n));
        } catch (err) {
          assert.match(err.message, /^capture: .* at byte offset \d+$/, `${name} cut at ${n}`);
          continue;
        }
        parsed++;
        assert.deepEqual(summary(cap.packets), all.slice(0, cap.packets.length), `${name} cut at ${n}`);
      }
      // only cuts on record/block boundaries parse: for pcap, after the global header
      // and after each record but the last; pcapng also has SHB and IDB boundaries
      if (name.endsWith('.pcap')) assert.equal(parsed, all.length, name);
      else assert.ok(parsed >= all.length, `${name}: ${parsed} prefixes parsed`);
    }
  });
});

// ---------------------------------------------------------------------------
// Captures written by Wireshark's editcap / mergecap.

describe('captures written by editcap/mergecap', () => {
  test('nanosecond pcapng (if_tsresol = 9) and a merged two-link-type pcapng', (t) => {
    if (!hasCommand('editcap', ['-h']) || !hasCommand('mergecap', ['-h'])) {
      return t.skip('editcap/mergecap (Wireshark) not installed');
    }
    const ip = bytes('4500001c000100004001b4d8c0000202010203040800f7ff00000000');
    const ethFrame = bytes('0011223344556677889900aa0800' + '4500001c000100004001b4d8c0000202010203040800f7ff00000000');
    const rawPcap = join(dir, 'ed-raw.pcap');
    const ethPcap = join(dir, 'ed-eth.pcap');
    writeFileSync(rawPcap, writePcap([{ data: ip, tsSec: 1700000000, tsNsec: 123456789 }], LINKTYPE_RAW));
    writeFileSync(ethPcap, writePcap([{ data: ethFrame, tsSec: 1700000000, tsNsec: 500 }], LINKTYPE_ETHERNET));

    const ng1 = join(dir, 'ed-raw.pcapng');
    execFileSync('editcap', ['-F', 'pcapng', rawPcap, ng1], { stdio: 'ignore' });
    const b1 = new Uint8Array(readFileSync(ng1));
    // the IDB written by editcap carries if_tsresol = 9 (code 9, length 1, value 9)
    assert.ok(hex(b1).includes('0900010009000000'), 'editcap wrote if_tsresol=9');
    const c1 = readCapture(b1);
    assert.equal(c1.format, 'pcapng');
    assert.deepEqual(summary(c1.packets), [
      { index: 0, linktype: 101, tsSec: 1700000000, tsNsec: 123456789, hex: hex(ip), origLen: ip.length },
    ]);

    const merged = join(dir, 'merged.pcapng');
    execFileSync('mergecap', ['-F', 'pcapng', '-w', merged, rawPcap, ethPcap], { stdio: 'ignore' });
    const c2 = readCapture(new Uint8Array(readFileSync(merged)));
    // sorted chronologically: the Ethernet frame (.000000500) comes first
    assert.deepEqual(summary(c2.packets), [
      { index: 0, linktype: 1, tsSec: 1700000000, tsNsec: 500, hex: hex(ethFrame), origLen: ethFrame.length },
      { index: 1, linktype: 101, tsSec: 1700000000, tsNsec: 123456789, hex: hex(ip), origLen: ip.length },
    ]);

    // snaplen truncation by editcap -s: captured length shrinks, original length kept
    const cut = join(dir, 'cut.pcap');
    execFileSync('editcap', ['-s', '10', rawPcap, cut], { stdio: 'ignore' });
    const c3 = readCapture(new Uint8Array(readFileSync(cut)));
    assert.equal(hex(c3.packets[0].data), hex(ip.subarray(0, 10)));
    assert.equal(c3.packets[0].origLen, ip.length);
  });
});

// ---------------------------------------------------------------------------
// Hand-built pcapng.

describe('hand-built pcapng', () => {
  const p1 = bytes('0011223344556677889900aa0800');
  const p2 = bytes('4500');
  const p3 = bytes('45000014');
  const p4 = bytes('6000000000000000');
  const p5 = bytes('01');
  const p6 = bytes('45ff');
  const p7 = bytes('000102030405060708090a0b0c0d0e0f10111213'); // 20 bytes

  // Section 1, big-endian: five interfaces with different link types and timestamp units,
  // plus block types the reader must skip. Section 2, little-endian: interfaces reset.
  const file = concat(
    be.shb(),
    be.idb(LINKTYPE_ETHERNET), // 0: default resolution, microseconds
    be.block(4, be.u16(0), be.u16(0)), // Name Resolution Block: skipped
    be.idb(LINKTYPE_RAW, { options: [be.comment('ns'), be.tsresol(9)] }), // 1: nanoseconds
    be.idb(LINKTYPE_IPV4, { options: [be.tsresol(0x80 | 10)] }), // 2: 2^-10 s
    be.idb(LINKTYPE_IPV6, { options: [be.tsresol(3), be.tsoffset(1000n)] }), // 3: ms, +1000 s
    be.idb(LINKTYPE_RAW, { options: [be.tsresol(12)] }), // 4: picoseconds
    be.epb(0, 1_700_000_000_123_456n, p1),
    be.block(5, be.u32(0), be.u32(0), be.u32(0)), // Interface Statistics Block: skipped
    be.epb(1, 1_700_000_000_987_654_321n, p2),
    be.epb(2, (1_700_000_000n << 10n) | 512n, p3),
    be.epb(2, (1_700_000_001n << 10n) | 1n, p3),
    be.epb(3, 5_250n, p4),
    be.epb(4, 7n * 10n ** 12n + 123_456_789_012n, p5),
    be.pb(1, 42_000_000_001n, p6), // obsolete Packet Block
    be.block(0x40000bad, Buffer.from('custom!!')), // custom block: skipped
    le.shb(),
    le.idb(LINKTYPE_IPV6, { snaplen: 8 }),
    le.spb(20, p7), // Simple Packet Block, cut to the interface snaplen
    le.epb(0, 3_000_000n, p2, 60), // origLen beyond captured length
  );

  test('link types, if_tsresol (decimal and binary), if_tsoffset, SPB, PB, sections', () => {
    const cap = readCapture(file);
    assert.equal(cap.format, 'pcapng');
    const row = (index, linktype, tsSec, tsNsec, data, origLen = data.length) => ({
      index,
      linktype,
      tsSec,
      tsNsec,
      hex: hex(data),
      origLen,
    });
    assert.deepEqual(summary(cap.packets), [
      row(0, 1, 1700000000, 123456000, p1),
      row(1, 101, 1700000000, 987654321, p2),
      row(2, 228, 1700000000, 500000000, p3),
      row(3, 228, 1700000001, 976562, p3), // 2^-10 s = 976562.5 ns, truncated
      row(4, 229, 1005, 250000000, p4),
      row(5, 101, 7, 123456789, p5), // picoseconds truncated to ns
      row(6, 101, 42, 1, p6),
      row(7, 229, 0, 0, p7.subarray(0, 8), 20),
      row(8, 229, 3, 0, p2, 60),
    ]);
    for (const p of cap.packets) assert.equal(p.data.buffer, file.buffer);
  });

  test('works on a Uint8Array view with a non-zero byteOffset', () => {
    const backing = new Uint8Array(file.length + 7);
    backing.set(file, 3);
    const view = backing.subarray(3, 3 + file.length);
    assert.deepEqual(summary(readCapture(view).packets), summary(readCapture(file).packets));
  });

  test('a new section resets the interface list', () => {
    const buf = concat(le.shb(), le.idb(1), le.idb(101), le.epb(1, 0n, p2), be.shb(), be.idb(229), be.epb(1, 0n, p2));
    assertCaptureError(buf, /interface 1 but the section defines 1/);
    const ok = concat(le.shb(), le.idb(1), le.idb(101), le.epb(1, 0n, p2), be.shb(), be.idb(229), be.epb(0, 0n, p2));
    assert.deepEqual(readCapture(ok).packets.map((p) => p.linktype), [101, 229]);
  });

  test('packet blocks before any interface are errors', () => {
    assertCaptureError(concat(le.shb(), le.epb(0, 0n, p2)), /interface 0 but the section defines 0/);
    assertCaptureError(concat(le.shb(), le.spb(2, p2)), /simple packet block before any interface/);
  });
});

// ---------------------------------------------------------------------------
// Malformed input.

describe('malformed input throws capture: errors', () => {
  test('garbage', () => {
    assertCaptureError(new Uint8Array(0), /too short/);
    assertCaptureError(bytes('a1b2'), /too short/);
    assertCaptureError(new Uint8Array(64), /unrecognised file magic 0x00000000/);
    assertCaptureError(new TextEncoder().encode('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), /unrecognised file magic 0x47455420/);
    let seed = 12345;
    const rnd = new Uint8Array(4096).map(() => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 24));
    assertCaptureError(rnd, /unrecognised file magic/);
    // a pcap magic followed by garbage: version check
    assertCaptureError(concat(Buffer.from('d4c3b2a1', 'hex'), Buffer.alloc(20, 0xee)), /unsupported pcap version/);
  });

  test('truncated classic pcap', () => {
    const full = writePcap(
      [
        { data: bytes('0102030405'), tsSec: 1 },
        { data: bytes('0607'), tsSec: 2 },
      ],
      LINKTYPE_ETHERNET,
    );
    assertCaptureError(full.subarray(0, 10), /truncated pcap global header.*at byte offset 0$/);
    assertCaptureError(full.subarray(0, 24 + 7), /truncated header of pcap record 0: need 16 bytes, only 7 left at byte offset 24$/);
    assertCaptureError(full.subarray(0, 24 + 16 + 3), /record 0 claims 5 captured bytes but only 3 remain at byte offset 32$/);
    assertCaptureError(full.subarray(0, full.length - 1), /record 1 claims 2 captured bytes but only 1 remain at byte offset 53$/);
    // cut exactly between records: a valid, shorter file
    assert.equal(readCapture(full.subarray(0, 24 + 16 + 5)).packets.length, 1);
    // incl_len absurdly large
    const big = Buffer.from(full);
    big.writeUInt32LE(0xffffffff, 24 + 8);
    assertCaptureError(new Uint8Array(big), /claims 4294967295 captured bytes/);
  });

  test('truncated pcapng', () => {
    const full = smallPcapng();
    assertCaptureError(full.subarray(0, 6), /truncated block header.*at byte offset 0$/);
    assertCaptureError(full.subarray(0, 10), /truncated section header block/);
    assertCaptureError(full.subarray(0, full.length - 1), /truncated block of type 6: length 48 but only 47 bytes remain at byte offset 96$/);
    assertCaptureError(concat(full, Buffer.from('0600')), /truncated block header/);
  });

  test('zero, short, unaligned and mismatched block lengths (no hang)', { timeout: 5000 }, () => {
    const shb = le.shb();
    const lenAt = (buf, off, v) => {
      const b = Buffer.from(buf);
      b.writeUInt32LE(v, off);
      return new Uint8Array(b);
    };
    // zero-length block after the SHB
    assertCaptureError(concat(shb, le.u32(6), le.u32(0), Buffer.alloc(64)), /invalid block total length 0 .*at byte offset 32$/);
    // zero-length SHB itself
    assertCaptureError(lenAt(shb, 4, 0), /invalid block total length 0 .*at byte offset 4$/);
    assertCaptureError(concat(shb, le.u32(6), le.u32(8), le.u32(8)), /invalid block total length 8/);
    assertCaptureError(concat(shb, le.u32(6), le.u32(13), Buffer.alloc(9)), /invalid block total length 13 \(must be a multiple of 4/);
    // trailing copy disagrees
    assertCaptureError(concat(shb, le.u32(6), le.u32(12), le.u32(16)), /trailing length 16 does not match leading length 12 at byte offset 36$/);
    // block runs past the end of the file
    assertCaptureError(concat(shb, le.u32(6), le.u32(0x7ffffffc), Buffer.alloc(8)), /truncated block of type 6/);
    // big-endian length read as such: a little-endian length in a big-endian section is huge
    assertCaptureError(concat(be.shb(), le.idb(1)), /truncated block of type 16777216/);
  });

  test('malformed block contents', () => {
    const shb = le.shb();
    // captured length larger than the block
    const epb = Buffer.from(le.epb(0, 0n, bytes('aabbccdd')));
    epb.writeUInt32LE(100, 20);
    assertCaptureError(concat(shb, le.idb(1), epb), /captured length 100 exceeds the block/);
    // EPB too short for its fixed fields
    assertCaptureError(concat(shb, le.idb(1), le.block(6, le.u32(0))), /enhanced packet block too short/);
    // option value overruns the IDB
    const idb = Buffer.from(le.idb(1, { options: [le.tsresol(9)] }));
    idb.writeUInt16LE(200, 16 + 2); // length field of the first option
    assertCaptureError(concat(shb, idb), /option 9 length 200 overruns its block/);
    // bad byte-order magic
    const badBom = Buffer.from(shb);
    badBom.writeUInt32LE(0x12345678, 8);
    assertCaptureError(new Uint8Array(badBom), /bad pcapng byte-order magic 0x12345678 at byte offset 8$/);
    // unsupported major version
    const v2 = Buffer.from(shb);
    v2.writeUInt16LE(2, 12);
    assertCaptureError(new Uint8Array(v2), /unsupported pcapng version 2\.0/);
  });
});

// ---------------------------------------------------------------------------
// CaptureStream: the capture as its bytes arrive (haports replay of a file or a pipe).

describe('CaptureStream', () => {
  const packets = [
    { data: bytes('4500001400000000401100000a0000010a000002'), tsSec: 1700000000, tsNsec: 123456789 },
    { data: bytes('00'), tsSec: 1, tsNsec: 999999999 },
    { data: new Uint8Array(0), tsSec: 2, tsNsec: 0 },
    { data: new Uint8Array(1500).map((_, i) => i & 0xff), tsSec: 0xffffffff, tsNsec: 1000 },
    { data: bytes('6000000000000000'), tsSec: 3, tsNsec: 5000 },
  ];
  /** The same packets as a microsecond pcap (magic a1b2c3d4, fractions in µs). */
  function microsecondPcap(le) {
    const b = Buffer.from(writePcap(packets, LINKTYPE_RAW));
    b.writeUInt32LE(0xa1b2c3d4, 0);
    let off = 24;
    for (const p of packets) {
      b.writeUInt32LE(p.tsNsec / 1000, off + 4);
      off += 16 + p.data.length;
    }
    return le ? new Uint8Array(b) : pcapToBigEndian(new Uint8Array(b));
  }
  const ngPackets = (w) => packets.map((p, i) => w.epb(i % 2, BigInt(p.tsSec) * 1_000_000_000n + BigInt(p.tsNsec), p.data));
  const captures = {
    'pcap, little-endian, ns': writePcap(packets, LINKTYPE_RAW),
    'pcap, big-endian, ns': pcapToBigEndian(writePcap(packets, LINKTYPE_ETHERNET)),
    'pcap, little-endian, µs': microsecondPcap(true),
    'pcap, big-endian, µs': microsecondPcap(false),
    'pcap, no packets': writePcap([], LINKTYPE_RAW),
    'pcapng, two sections, both byte orders, skipped blocks': concat(
      le.shb(), le.idb(LINKTYPE_ETHERNET, { options: [le.tsresol(9)] }), le.idb(LINKTYPE_RAW, { options: [le.tsresol(9)] }),
      ...ngPackets(le), le.block(5, le.u32(0), le.u32(0), le.u32(0)),
      be.shb(), be.idb(LINKTYPE_IPV6, { options: [be.tsresol(9)] }), be.idb(LINKTYPE_IPV4, { options: [be.tsresol(9)] }),
      be.spb(2, bytes('4500')), ...ngPackets(be),
    ),
  };

  /** Feeds `buf` in pieces cut at `cuts`, summarising each batch at once (views live until the next feed). */
  function stream(buf, cuts) {
    const s = new CaptureStream();
    const out = [];
    let from = 0;
    for (const to of [...cuts, buf.length]) {
      out.push(...summary(s.feed(buf.subarray(from, to))));
      from = to;
    }
    s.end();
    return { packets: out, s };
  }

  test('any cutting of the bytes gives readCapture\'s packets (every record format, every chunk size)', () => {
    for (const [name, buf] of Object.entries(captures)) {
      const expected = readCapture(buf);
      const cutsOf = (size) => Array.from({ length: Math.ceil(buf.length / size) - 1 }, (_, k) => (k + 1) * size);
      let seed = 7;
      const random = [];
      for (let at = 0; ;) {
        at += 1 + ((seed = (seed * 1103515245 + 12345) >>> 0) % 97);
        if (at >= buf.length) break;
        random.push(at);
      }
      for (const [how, cuts] of [['whole', []], ['1 byte', cutsOf(1)], ['3 bytes', cutsOf(3)], ['24 bytes', cutsOf(24)],
        ['1000 bytes', cutsOf(1000)], ['random', random]]) {
        const { packets: got, s } = stream(buf, cuts);
        assert.deepEqual(got, summary(expected.packets), `${name}, ${how}`);
        assert.equal(s.packetsRead, expected.packets.length, `${name}, ${how}`);
        assert.equal(s.bytesRead, buf.length, `${name}, ${how}`);
        assert.equal(s.format, expected.format, `${name}, ${how}`);
      }
    }
  });

  test('a capture cut anywhere: the packets readCapture finds, or its error (at the feed or the end)', () => {
    for (const name of ['pcap, big-endian, µs', 'pcapng, two sections, both byte orders, skipped blocks']) {
      const full = captures[name];
      for (let n = 0; n < full.length; n++) {
        const cut = full.subarray(0, n);
        let expected;
        try {
          expected = summary(readCapture(cut).packets);
        } catch (e) {
          expected = e;
        }
        for (const cuts of [[], Array.from({ length: Math.floor(n / 5) }, (_, k) => (k + 1) * 5).filter((at) => at < n)]) {
          if (expected instanceof Error) {
            assert.throws(() => stream(cut, cuts), /^Error: capture: .* at byte offset \d+$/, `${name} cut at ${n}`);
          } else {
            assert.deepEqual(stream(cut, cuts).packets, expected, `${name} cut at ${n}`);
          }
        }
      }
    }
  });

  test('garbage is refused at the first bytes that show it', () => {
    assert.throws(() => new CaptureStream().feed(new TextEncoder().encode('GET / HTTP/1.1\r\n')), /^Error: capture: unrecognised file magic 0x47455420/);
    const s = new CaptureStream();
    assert.deepEqual(s.feed(bytes('d4c3')), []);
    assert.throws(() => s.end(), /^Error: capture: file too short \(2 bytes\)/);
    assert.throws(() => new CaptureStream().end(), /^Error: capture: file too short \(0 bytes\)/);
  });

  test('a length no capture has is an error at once, not a wait holding the rest of the input', () => {
    const pcap = Buffer.from(writePcap(packets, LINKTYPE_RAW));
    pcap.writeUInt32LE(0xffffffff, 24 + 8); // record 0's incl_len
    for (const cut of [24 + 16, 24 + 9, 30]) {
      const s = new CaptureStream();
      assert.throws(() => { s.feed(pcap.subarray(0, cut)); s.feed(pcap.subarray(cut, cut + 100)); },
        /^Error: capture: pcap record 0 claims 4294967295 captured bytes, more than 67108864 \(a damaged capture\) at byte offset 32$/, `cut at ${cut}`);
    }
    const ng = Buffer.from(concat(le.shb(), le.idb(LINKTYPE_RAW), le.epb(0, 0n, bytes('4500'))));
    ng.writeUInt32LE(0x7ffffffc, 28 + 20 + 4); // the EPB's length
    assert.throws(() => new CaptureStream().feed(ng), /^Error: capture: block of type 6 claims 2147483644 bytes, more than 67108864 \(a damaged capture\) at byte offset 52$/);
  });
});
