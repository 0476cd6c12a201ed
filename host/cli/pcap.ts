// Capture-file reader and writer for `haports replay`.
//
// readCapture() understands classic pcap (either byte order, micro- or nanosecond
// timestamps) and pcapng (Section Header, Interface Description, Enhanced Packet,
// Simple Packet and the obsolete Packet block; everything else is skipped).
// writePcap() writes classic little-endian nanosecond pcap.
//
// Pure TypeScript over Uint8Array: no dependencies, no Node APIs. Packet data
// returned by readCapture() are subarray views of the input buffer, not copies.
//
// Every malformed or truncated input raises an Error whose message starts with
// "capture: " and names the byte offset where the problem was found.

export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_IPV4 = 228;
export const LINKTYPE_IPV6 = 229;

export interface CapturedPacket {
  /** Position of the packet in the file, counting from 0 across all sections. */
  index: number;
  /** LINKTYPE_* value of the interface (pcapng) or file (pcap) it was captured on. */
  linktype: number;
  /** Capture time: whole seconds since the epoch... */
  tsSec: number;
  /** ...plus nanoseconds, 0 <= tsNsec < 1e9. Both 0 when the format has no timestamp. */
  tsNsec: number;
  /** The captured bytes: a view into the buffer given to readCapture(). */
  data: Uint8Array;
  /** Length of the packet on the wire (may exceed data.length if it was truncated by a snaplen). */
  origLen: number;
}

export interface Capture {
  format: 'pcap' | 'pcapng';
  packets: CapturedPacket[];
}

export interface PacketToWrite {
  data: Uint8Array;
  tsSec?: number;
  tsNsec?: number;
}

// ---------------------------------------------------------------------------
// Shared helpers

function fail(what: string, offset: number): never {
  throw new Error(`capture: ${what} at byte offset ${offset}`);
}

/** Bounds-checked integer reads; `le` selects the byte order. */
class Reader {
  private readonly view: DataView;
  /** `le` is mutable because pcapng sections may each have their own byte order. */
  constructor(readonly buf: Uint8Array, public le: boolean) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  get length(): number {
    return this.buf.length;
  }
  u16(off: number): number {
    return this.view.getUint16(off, this.le);
  }
  u32(off: number): number {
    return this.view.getUint32(off, this.le);
  }
  i64(off: number): bigint {
    return this.view.getBigInt64(off, this.le);
  }
  /** Throws unless `len` bytes starting at `off` are present. */
  need(off: number, len: number, what: string): void {
    if (off + len > this.buf.length) {
      fail(`truncated ${what}: need ${len} bytes, only ${this.buf.length - off} left`, off);
    }
  }
}

const NSEC_PER_SEC = 1_000_000_000n;

const pad4 = (n: number): number => (n + 3) & ~3;

// ---------------------------------------------------------------------------
// Detection

const PCAP_MAGIC_US = 0xa1b2c3d4;
const PCAP_MAGIC_NS = 0xa1b23c4d;
const PCAPNG_SHB_TYPE = 0x0a0d0d0a; // reads the same in both byte orders
const PCAPNG_BYTE_ORDER_MAGIC = 0x1a2b3c4d;

export function readCapture(buf: Uint8Array): Capture {
  if (buf.length < 4) fail(`file too short (${buf.length} bytes) to hold a capture header`, 0);
  const le = new Reader(buf, true);
  const be = new Reader(buf, false);
  for (const r of [le, be]) {
    const magic = r.u32(0);
    if (magic === PCAP_MAGIC_US || magic === PCAP_MAGIC_NS) {
      return { format: 'pcap', packets: readPcap(r, magic === PCAP_MAGIC_NS) };
    }
  }
  if (be.u32(0) === PCAPNG_SHB_TYPE) return { format: 'pcapng', packets: readPcapng(be) };
  fail(`unrecognised file magic 0x${be.u32(0).toString(16).padStart(8, '0')} (not pcap or pcapng)`, 0);
}

// ---------------------------------------------------------------------------
// Classic pcap
//
// Global header, 24 bytes:
//   0  u32 magic        a1b2c3d4 = microsecond, a1b23c4d = nanosecond timestamps;
//                        its byte order is the file's byte order
//   4  u16 version_major (2)   6 u16 version_minor (4)
//   8  i32 thiszone      12 u32 sigfigs      (both unused)
//  16  u32 snaplen       (ignored)
//  20  u32 linktype      low 16 bits = LINKTYPE_*; the upper bits carry FCS info
// Each record: 16-byte header then incl_len bytes of data:
//   0  u32 ts_sec   4 u32 ts_usec or ts_nsec   8 u32 incl_len   12 u32 orig_len

const PCAP_GLOBAL_HEADER = 24;
const PCAP_RECORD_HEADER = 16;

function readPcap(r: Reader, nano: boolean): CapturedPacket[] {
  r.need(0, PCAP_GLOBAL_HEADER, 'pcap global header');
  const major = r.u16(4);
  if (major !== 2) fail(`unsupported pcap version ${major}.${r.u16(6)}`, 4);
  const linktype = r.u32(20) & 0xffff;
  const fracPerSec = nano ? 1_000_000_000 : 1_000_000;
  const packets: CapturedPacket[] = [];
  let off = PCAP_GLOBAL_HEADER;
  while (off < r.length) {
    r.need(off, PCAP_RECORD_HEADER, `header of pcap record ${packets.length}`);
    const sec = r.u32(off);
    const frac = r.u32(off + 4);
    const inclLen = r.u32(off + 8);
    const origLen = r.u32(off + 12);
    const dataOff = off + PCAP_RECORD_HEADER;
    if (inclLen > r.length - dataOff) {
      fail(
        `pcap record ${packets.length} claims ${inclLen} captured bytes but only ${r.length - dataOff} remain`,
        off + 8,
      );
    }
    // A fraction >= 1 s is out of spec; carry it rather than emit tsNsec >= 1e9.
    const tsSec = sec + Math.floor(frac / fracPerSec);
    const tsNsec = (frac % fracPerSec) * (nano ? 1 : 1000);
    packets.push({
      index: packets.length,
      linktype,
      tsSec,
      tsNsec,
      data: r.buf.subarray(dataOff, dataOff + inclLen),
      origLen,
    });
    off = dataOff + inclLen;
  }
  return packets;
}

// ---------------------------------------------------------------------------
// pcapng
//
// A file is a sequence of blocks, each:
//   0  u32 block type   4 u32 block total length (whole block, multiple of 4, >= 12)
//   8  body ...         total-4  u32 block total length again
// Numbers use the byte order of the enclosing section, set by its Section Header Block.
//
// Section Header Block (0x0a0d0d0a): body = u32 byte-order magic 1a2b3c4d,
//   u16 major (1), u16 minor, i64 section length (may be -1), options.
//   Starts a new section: the interface list is reset.
// Interface Description Block (1): body = u16 linktype, u16 reserved, u32 snaplen, options.
//   Interfaces are numbered 0, 1, ... in order of appearance within the section.
//   Options used: if_tsresol (9, 1 byte): timestamp unit is 10^-v seconds, or 2^-(v & 0x7f)
//   if the high bit is set; default 10^-6. if_tsoffset (14, i64): seconds added to timestamps.
// Enhanced Packet Block (6): body = u32 interface id, u32 ts high, u32 ts low,
//   u32 captured len, u32 original len, data padded to 4, options.
// Simple Packet Block (3): body = u32 original len, data padded to 4. Interface 0, no
//   timestamp; captured length = min(original len, body space, interface 0 snaplen).
// Packet Block (2, obsolete): as the EPB but the interface id is u16 followed by u16 drops count.
// Options are: u16 code, u16 length, value padded to 4; code 0 ends the list.

const BT_PACKET = 2;
const BT_SIMPLE_PACKET = 3;
const BT_ENHANCED_PACKET = 6;
const BT_INTERFACE = 1;

const OPT_ENDOFOPT = 0;
const OPT_IF_TSRESOL = 9;
const OPT_IF_TSOFFSET = 14;

interface Iface {
  linktype: number;
  snaplen: number;
  /** The timestamp unit is 10^-exp seconds (decimal) or 2^-exp seconds (binary). */
  decimal: boolean;
  exp: number;
  /** Seconds to add to every timestamp (if_tsoffset). */
  offsetSec: bigint;
}

function readPcapng(r: Reader): CapturedPacket[] {
  const packets: CapturedPacket[] = [];
  let ifaces: Iface[] = [];
  let off = 0;
  while (off < r.length) {
    r.need(off, 8, 'block header');
    const type = r.u32(off);
    if (type === PCAPNG_SHB_TYPE) {
      // A new section may switch byte order; the byte-order magic that follows the
      // length field says which, and applies to the SHB's own length too.
      r.need(off, 12, 'section header block');
      r.le = true;
      const bom = r.u32(off + 8);
      if (bom === PCAPNG_BYTE_ORDER_MAGIC) r.le = true;
      else if (bom === 0x4d3c2b1a) r.le = false; // the magic read in the wrong byte order
      else fail(`bad pcapng byte-order magic 0x${bom.toString(16).padStart(8, '0')}`, off + 8);
    }

    const total = r.u32(off + 4);
    if (total < 12 || total % 4 !== 0) {
      fail(`invalid block total length ${total} (must be a multiple of 4 and >= 12)`, off + 4);
    }
    if (total > r.length - off) {
      fail(`truncated block of type ${type}: length ${total} but only ${r.length - off} bytes remain`, off);
    }
    const trailer = r.u32(off + total - 4);
    if (trailer !== total) {
      fail(`block trailing length ${trailer} does not match leading length ${total}`, off + total - 4);
    }
    const body = off + 8; // first byte of the body
    const end = off + total - 4; // first byte after the body (the trailing length)
    const minBody = (n: number, name: string): void => {
      if (end - body < n) fail(`${name} too short (${total} bytes)`, off);
    };

    switch (type) {
      case PCAPNG_SHB_TYPE: {
        minBody(16, 'section header block');
        const major = r.u16(body + 4);
        if (major !== 1) fail(`unsupported pcapng version ${major}.${r.u16(body + 6)}`, body + 4);
        ifaces = [];
        break;
      }
      case BT_INTERFACE: {
        minBody(8, 'interface description block');
        const iface: Iface = {
          linktype: r.u16(body),
          snaplen: r.u32(body + 4),
          decimal: true,
          exp: 6,
          offsetSec: 0n,
        };
        readOptions(r, body + 8, end, (code, valOff, len) => {
          if (code === OPT_IF_TSRESOL) {
            if (len < 1) fail('if_tsresol option has no value', valOff - 4);
            const v = r.buf[valOff];
            iface.decimal = (v & 0x80) === 0;
            iface.exp = v & 0x7f;
          } else if (code === OPT_IF_TSOFFSET) {
            if (len < 8) fail(`if_tsoffset option is ${len} bytes, expected 8`, valOff - 4);
            iface.offsetSec = r.i64(valOff);
          }
        });
        ifaces.push(iface);
        break;
      }
      case BT_ENHANCED_PACKET:
      case BT_PACKET: {
        const name = type === BT_ENHANCED_PACKET ? 'enhanced packet block' : 'packet block';
        minBody(20, name);
        const ifId = type === BT_ENHANCED_PACKET ? r.u32(body) : r.u16(body);
        const iface = ifaces[ifId];
        if (iface === undefined) {
          fail(`${name} refers to interface ${ifId} but the section defines ${ifaces.length}`, body);
        }
        const ts = (BigInt(r.u32(body + 4)) << 32n) | BigInt(r.u32(body + 8));
        const capLen = r.u32(body + 12);
        const origLen = r.u32(body + 16);
        const dataOff = body + 20;
        if (capLen > end - dataOff) {
          fail(`${name} captured length ${capLen} exceeds the block (room for ${end - dataOff})`, body + 12);
        }
        const { sec, nsec } = convertTimestamp(ts, iface);
        packets.push({
          index: packets.length,
          linktype: iface.linktype,
          tsSec: sec,
          tsNsec: nsec,
          data: r.buf.subarray(dataOff, dataOff + capLen),
          origLen,
        });
        break;
      }
      case BT_SIMPLE_PACKET: {
        minBody(4, 'simple packet block');
        const iface = ifaces[0];
        if (iface === undefined) fail('simple packet block before any interface description block', off);
        const origLen = r.u32(body);
        const dataOff = body + 4;
        let capLen = Math.min(origLen, end - dataOff);
        if (iface.snaplen > 0) capLen = Math.min(capLen, iface.snaplen);
        packets.push({
          index: packets.length,
          linktype: iface.linktype,
          tsSec: 0,
          tsNsec: 0,
          data: r.buf.subarray(dataOff, dataOff + capLen),
          origLen,
        });
        break;
      }
      default:
        // Name resolution, statistics, custom, decryption secrets, ...: not needed.
        break;
    }
    off += total; // total >= 12, so this always advances
  }
  return packets;
}

/** Calls `fn(code, valueOffset, valueLength)` for each option in [off, end). */
function readOptions(
  r: Reader,
  off: number,
  end: number,
  fn: (code: number, valOff: number, len: number) => void,
): void {
  while (off + 4 <= end) {
    const code = r.u16(off);
    const len = r.u16(off + 2);
    if (code === OPT_ENDOFOPT) return;
    if (off + 4 + len > end) fail(`option ${code} length ${len} overruns its block`, off + 2);
    fn(code, off + 4, len);
    off += 4 + pad4(len);
  }
}

/** Converts a count of interface time units to seconds + nanoseconds. */
function convertTimestamp(ts: bigint, iface: Iface): { sec: number; nsec: number } {
  let sec: bigint;
  let nsec: bigint;
  if (iface.decimal) {
    const unitsPerSec = 10n ** BigInt(iface.exp);
    sec = ts / unitsPerSec;
    const rem = ts % unitsPerSec;
    nsec = iface.exp <= 9 ? rem * 10n ** BigInt(9 - iface.exp) : rem / 10n ** BigInt(iface.exp - 9);
  } else {
    const shift = BigInt(iface.exp);
    sec = ts >> shift;
    const rem = ts & ((1n << shift) - 1n);
    nsec = (rem * NSEC_PER_SEC) >> shift;
  }
  return { sec: Number(sec + iface.offsetSec), nsec: Number(nsec) };
}

// ---------------------------------------------------------------------------
// Writer: classic pcap, little-endian, nanosecond timestamps (layout as above).

const WRITE_SNAPLEN = 262144;

export function writePcap(packets: PacketToWrite[], linktype: number): Uint8Array {
  if (!Number.isInteger(linktype) || linktype < 0 || linktype > 0xffff) {
    throw new RangeError(`capture: link type ${linktype} is not a 16-bit unsigned integer`);
  }
  let size = PCAP_GLOBAL_HEADER;
  for (const p of packets) size += PCAP_RECORD_HEADER + p.data.length;
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  v.setUint32(0, PCAP_MAGIC_NS, true);
  v.setUint16(4, 2, true);
  v.setUint16(6, 4, true);
  v.setInt32(8, 0, true); // thiszone
  v.setUint32(12, 0, true); // sigfigs
  v.setUint32(16, WRITE_SNAPLEN, true);
  v.setUint32(20, linktype, true);
  let off = PCAP_GLOBAL_HEADER;
  packets.forEach((p, i) => {
    const tsSec = p.tsSec ?? 0;
    const tsNsec = p.tsNsec ?? 0;
    if (!Number.isInteger(tsSec) || tsSec < 0 || tsSec > 0xffffffff) {
      throw new RangeError(`capture: packet ${i} tsSec ${tsSec} does not fit an unsigned 32-bit field`);
    }
    if (!Number.isInteger(tsNsec) || tsNsec < 0 || tsNsec >= 1e9) {
      throw new RangeError(`capture: packet ${i} tsNsec ${tsNsec} is not in [0, 1e9)`);
    }
    if (p.data.length > WRITE_SNAPLEN) {
      throw new RangeError(`capture: packet ${i} is ${p.data.length} bytes, more than the snaplen ${WRITE_SNAPLEN}`);
    }
    v.setUint32(off, tsSec, true);
    v.setUint32(off + 4, tsNsec, true);
    v.setUint32(off + 8, p.data.length, true);
    v.setUint32(off + 12, p.data.length, true);
    out.set(p.data, off + PCAP_RECORD_HEADER);
    off += PCAP_RECORD_HEADER + p.data.length;
  });
  return out;
}

// ---------------------------------------------------------------------------
// Incremental reading (replay of captures of any size, from a file or a pipe)

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  if (b.length === 0) return a;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * The largest record or block CaptureStream waits for (64 MiB, far above any snaplen): a
 * larger length is a damaged capture, said at once rather than after holding the rest of
 * the input in memory.
 */
const STREAM_RECORD_LIMIT = 64 * 1024 * 1024;

const u32at = (b: Uint8Array, at: number, le: boolean) => new DataView(b.buffer, b.byteOffset + at, 4).getUint32(0, le);

/**
 * A capture read as its bytes arrive: feed() takes the next chunk and returns the packets
 * of every record (pcap) or block (pcapng) now complete; end() checks nothing is left
 * over. pcapng: the parse is readCapture's own, run on the section header and its
 * interface descriptions followed by the complete blocks; pcap: the global header is
 * readCapture's, the complete records are read in place (the same fields, no copy). Memory
 * holds one chunk and one partial record, whatever the size of the capture. Packet data
 * are views valid until the next feed().
 */
export class CaptureStream {
  private pending: Uint8Array = new Uint8Array(0);
  /** pcap: the global header; pcapng: the current section's header block and interface blocks. */
  private prefix: Uint8Array = new Uint8Array(0);
  private kind: 'pcap' | 'pcapng' | null = null;
  private le = true;
  private nextIndex = 0;
  /** Bytes of the file before `pending` (for messages). */
  private consumed = 0;
  /** pcap: the file's link type and its fraction of a second (10^6 or 10^9 per second). */
  private pcapLinktype = 0;
  private pcapFracPerSec = 1_000_000;

  get packetsRead(): number { return this.nextIndex; }
  get bytesRead(): number { return this.consumed; }
  /** 'pcap' or 'pcapng' once the first bytes have said which; null before. */
  get format(): 'pcap' | 'pcapng' | null { return this.kind; }

  feed(chunk: Uint8Array): CapturedPacket[] {
    const out: CapturedPacket[] = [];
    if (this.kind === 'pcap' && this.pending.length > 0) {
      // A record cut by the previous chunk: completed from this chunk's head, a copy of
      // that record only; the rest of the chunk is read in place.
      let take = 0;
      for (;;) {
        const have = this.pending.length;
        const want = have < PCAP_RECORD_HEADER ? PCAP_RECORD_HEADER : PCAP_RECORD_HEADER + this.inclLen(0);
        if (have >= want || take === chunk.length) break;
        const n = Math.min(want - have, chunk.length - take);
        this.pending = concat(this.pending, chunk.subarray(take, take + n));
        take += n;
      }
      this.pcapRecords(out);
      if (this.pending.length > 0) return out; // still cut: the chunk is used up
      chunk = chunk.subarray(take);
    }
    this.pending = concat(this.pending, chunk);
    if (this.kind === null && !this.start()) return out;
    if (this.kind === 'pcap') {
      this.pcapRecords(out);
      return out;
    }
    let end = 0; // complete packet blocks in pending[0, end)
    const flush = () => {
      if (end === 0) return;
      const parsed = readCapture(concat(this.prefix, this.pending.subarray(0, end))).packets;
      for (const p of parsed) out.push({ ...p, index: this.nextIndex++ });
      this.drop(end);
      end = 0;
    };
    for (;;) {
      const rest = this.pending.length - end;
      if (rest < 12) break;
      const type = u32at(this.pending, end, this.le);
      if (type === PCAPNG_SHB_TYPE) {
        // A new section: its byte order, then it is the prefix of what follows.
        flush();
        const bom = u32at(this.pending, 8, true);
        this.le = bom === PCAPNG_BYTE_ORDER_MAGIC;
      }
      const total = u32at(this.pending, end + 4, this.le);
      if (total < 12 || total % 4 !== 0) { flush(); readCapture(concat(this.prefix, this.pending)); fail('bad block length', this.consumed); }
      if (total > STREAM_RECORD_LIMIT) {
        fail(`block of type ${type} claims ${total} bytes, more than ${STREAM_RECORD_LIMIT} (a damaged capture)`, this.consumed + end + 4);
      }
      if (rest < total) break;
      if (type === PCAPNG_SHB_TYPE || type === 1) {
        flush();
        const block = this.pending.slice(0, total);
        this.prefix = type === 1 ? concat(this.prefix, block) : block;
        this.drop(total);
        continue;
      }
      end += total;
    }
    flush();
    return out;
  }

  /** The input ended: a partial record or block is an error, as readCapture reports it. */
  end(): void {
    if (this.kind === null) {
      if (this.pending.length < 4) fail(`file too short (${this.pending.length} bytes) to hold a capture header`, 0);
      readCapture(this.pending);
      return;
    }
    if (this.pending.length > 0) {
      readCapture(concat(this.prefix, this.pending)); // throws with what is wrong
      fail(`${this.pending.length} bytes left over at the end`, this.consumed);
    }
  }

  /** The complete pcap records at the start of `pending`, read as readPcap reads them, then dropped. */
  private pcapRecords(out: CapturedPacket[]): void {
    // The header was checked by start(): a complete record cannot be malformed, so nothing
    // here throws but a length no capture has, and a partial record waits for the next
    // chunk (or is end()'s error).
    const buf = this.pending;
    const le = this.le;
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const fracPerSec = this.pcapFracPerSec;
    const nsecPerFrac = fracPerSec === 1_000_000 ? 1000 : 1;
    let end = 0;
    while (buf.length - end >= PCAP_RECORD_HEADER) {
      const inclLen = this.inclLen(end);
      const dataOff = end + PCAP_RECORD_HEADER;
      if (buf.length - dataOff < inclLen) break;
      const frac = dv.getUint32(end + 4, le);
      out.push({
        index: this.nextIndex++,
        linktype: this.pcapLinktype,
        tsSec: dv.getUint32(end, le) + Math.floor(frac / fracPerSec),
        tsNsec: (frac % fracPerSec) * nsecPerFrac,
        data: buf.subarray(dataOff, dataOff + inclLen),
        origLen: dv.getUint32(end + 12, le),
      });
      end = dataOff + inclLen;
    }
    this.drop(end);
  }

  /**
   * incl_len of the pcap record at `at` in `pending`. Beyond STREAM_RECORD_LIMIT it is an
   * error at once: waiting for that many bytes would hold the rest of the input in memory.
   */
  private inclLen(at: number): number {
    const n = u32at(this.pending, at + 8, this.le);
    if (n > STREAM_RECORD_LIMIT) {
      fail(`pcap record ${this.nextIndex} claims ${n} captured bytes, more than ${STREAM_RECORD_LIMIT} (a damaged capture)`, this.consumed + at + 8);
    }
    return n;
  }

  private start(): boolean {
    if (this.pending.length < 4) return false;
    const magicLe = u32at(this.pending, 0, true);
    const magicBe = u32at(this.pending, 0, false);
    if (magicLe === PCAP_MAGIC_US || magicLe === PCAP_MAGIC_NS || magicBe === PCAP_MAGIC_US || magicBe === PCAP_MAGIC_NS) {
      if (this.pending.length < PCAP_GLOBAL_HEADER) return false;
      this.kind = 'pcap';
      this.le = magicLe === PCAP_MAGIC_US || magicLe === PCAP_MAGIC_NS;
      readCapture(this.pending.subarray(0, PCAP_GLOBAL_HEADER)); // checks the header
      this.pcapLinktype = u32at(this.pending, 20, this.le) & 0xffff;
      this.pcapFracPerSec = (this.le ? magicLe : magicBe) === PCAP_MAGIC_NS ? 1_000_000_000 : 1_000_000;
      this.prefix = this.pending.slice(0, PCAP_GLOBAL_HEADER);
      this.drop(PCAP_GLOBAL_HEADER);
      return true;
    }
    if (magicBe === PCAPNG_SHB_TYPE) {
      if (this.pending.length < 12) return false;
      this.kind = 'pcapng';
      return true;
    }
    fail(`unrecognised file magic 0x${magicBe.toString(16).padStart(8, '0')} (not pcap or pcapng)`, 0);
  }

  private drop(n: number): void {
    this.pending = this.pending.subarray(n);
    this.consumed += n;
  }
}

/** Classic pcap, written as it goes (writePcap's format): the global header, then one record at a time. */
export function pcapHeader(linktype: number): Uint8Array {
  return writePcap([], linktype);
}

export function pcapRecord(p: PacketToWrite): Uint8Array {
  return writePcap([p], 0).subarray(PCAP_GLOBAL_HEADER);
}
