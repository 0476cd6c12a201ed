// The pump's native UDP I/O (host/pump/native/udpio.c, built by scripts/build-native.mjs
// into build/native/udpio.node): batched recvmmsg straight into the core's wasm memory,
// batched sendmmsg gathered from it, SO_REUSEPORT sockets with a classic BPF program that
// steers each datagram to a worker (steering.ts), and readiness callbacks on the calling
// thread's event loop.
//
// The addon is optional. loadNative() returns null, with the reason, when it was not
// built (no compiler or headers) or cannot be loaded, and the pump then uses node:dgram.
//
// Records. recv() describes datagram i in meta[i*8 .. i*8+8) (META), send() reads message
// i from desc[i*10 .. i*10+10) (DESC). An address takes 4 int32 words whose bytes are the
// address's bytes in network order, as they are in memory (an IPv4 address in word 0, the
// rest zero): encodeAddress() and decodeAddress() convert; addressWords() precomputes a
// destination's words once, so that filling a record in the hot path is 4 int copies.

import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { addressBytes, formatAddress } from '../lib/core.js';

/** Int32 per received datagram in recv()'s meta. */
export const META_INTS = 8;
/** Int32 per message in send()'s desc. */
export const DESC_INTS = 10;
/** Most datagrams per recv() or send() call. */
export const MAX_BATCH = 1024;

/** Fields of a meta record (int32 index within the record). */
export const META = {
  /** Bytes stored in the slot (at most the slot size). */
  length: 0,
  /** 1 when the datagram was longer than the slot (MSG_TRUNC): its tail is lost. */
  truncated: 1,
  /** 4 or 6. */
  family: 2,
  /** Source port. */
  port: 3,
  /** Source address, 4 words. */
  address: 4,
} as const;

/** Fields of a desc record (int32 index within the record). */
export const DESC = {
  /** 4 or 6: the destination's family (the socket's). */
  family: 0,
  /** Destination port, 1–65535. */
  port: 1,
  /** Destination address, 4 words. */
  address: 2,
  /** The datagram is memory[iov0Offset, +iov0Length) ‖ memory[iov1Offset, +iov1Length); an empty part is left out. */
  iov0Offset: 6,
  iov0Length: 7,
  iov1Offset: 8,
  iov1Length: 9,
} as const;

/**
 * The addon. Sockets are file descriptors; every call is synchronous and non-blocking.
 * Argument errors (checked before any system call, so nothing is written outside the
 * given buffers) throw a TypeError (wrong type) or a RangeError (a value out of range,
 * a buffer too small for what is asked); a failed system call throws an Error with
 * `code` (errno name, e.g. 'EADDRINUSE'), `errno` (negative) and `syscall`.
 */
export interface NativeUdp {
  /**
   * A non-blocking UDP socket bound to host:port (port 0: any free port), with
   * SO_REUSEPORT when `reusePort` (never SO_REUSEADDR, which for UDP would let another
   * socket bind the same port without EADDRINUSE and take its datagrams), SO_RCVBUF/SO_SNDBUF when > 0 (the FORCE
   * variants first, which pass rmem_max/wmem_max with CAP_NET_ADMIN), IPV6_V6ONLY for
   * family 6. `host` is an IP literal of `family` (IPv6 may have a %scope). A socket still
   * open when its thread exits (a worker ends) is closed then.
   */
  open(family: 4 | 6, host: string, port: number, reusePort: boolean, rcvbuf: number, sndbuf: number): number;
  /** The port the socket is bound to. */
  localPort(fd: number): number;
  /**
   * SO_ATTACH_REUSEPORT_CBPF: `program` (packed struct sock_filter, 8 bytes each, host
   * byte order; steeringProgram()) picks the socket of each datagram in fd's SO_REUSEPORT
   * group, by the order the sockets were bound in. One program serves the whole group.
   */
  attachReuseportCbpf(fd: number, program: Uint8Array): void;
  /**
   * Calls `callback()` on this thread whenever the socket is readable (level-triggered:
   * again on the next loop turn while datagrams remain). Returns a handle for unwatch().
   * An active watch keeps the thread's event loop alive, as a bound dgram socket does.
   * An exception thrown by the callback is reported as uncaught.
   */
  watch(fd: number, callback: () => void): number;
  /** Stops a watch (at once; the handle closes on the next loop turn). False if it was not active. */
  unwatch(handle: number): boolean;
  /**
   * One recvmmsg(MSG_DONTWAIT): up to `max` (≤ MAX_BATCH) datagrams, datagram i into
   * memory[base + i*slot, +slot) and described in meta[i*8, +8) (META). Returns how many
   * (0: none waiting). `memory` is an ArrayBuffer, e.g. a WebAssembly.Memory's buffer
   * (pass the current one: growing the memory detaches the old buffer).
   */
  recv(fd: number, memory: ArrayBuffer, base: number, slot: number, max: number, meta: Int32Array): number;
  /**
   * One sendmmsg(MSG_DONTWAIT) of `count` (≤ MAX_BATCH) messages described by desc (DESC),
   * gathered from `memory`. Returns how many the kernel took: 0 when the first would block,
   * fewer than `count` when a later one would block or failed. Throws when the first one
   * fails (code = errno name), so after a short count, call again with
   * desc.subarray(sent * DESC_INTS): 0 means wait, an exception is that message's error.
   * With `segment`, each run of consecutive datagrams of one length to one destination
   * goes as one UDP GSO message (UDP_SEGMENT; up to 64 datagrams, 60,000 bytes), falling
   * back to one message per datagram where the kernel refuses it; the count is still of
   * datagrams, and still a prefix.
   */
  send(fd: number, memory: ArrayBuffer, desc: Int32Array, count: number, segment?: boolean): number;
  /** Closes a UDP socket, after stopping this thread's watches of it. */
  close(fd: number): void;
  /** MAX_BATCH, as built. */
  readonly maxBatch: number;
}

const FUNCTIONS = ['open', 'localPort', 'attachReuseportCbpf', 'watch', 'unwatch', 'recv', 'send', 'close'] as const;

/**
 * Loads build/native/udpio.node (relative to this file once built: build/host/*.mjs).
 * `native` is null when it is missing or cannot be loaded, and `reason` says why;
 * otherwise `reason` is the path loaded.
 */
export function loadNative(): { native: NativeUdp | null; reason: string } {
  const url = new URL('../native/udpio.node', import.meta.url);
  if (url.protocol !== 'file:') return { native: null, reason: `cannot load an addon from ${url.href}` };
  const path = fileURLToPath(url);
  if (process.platform !== 'linux') return { native: null, reason: `the native UDP addon is Linux-only (this is ${process.platform})` };
  let native: NativeUdp;
  try {
    native = createRequire(import.meta.url)(path) as NativeUdp;
  } catch (e: any) {
    const reason = e?.code === 'MODULE_NOT_FOUND'
      ? `${path} is missing (run node scripts/build-native.mjs; it needs a C compiler and Node's headers)`
      : `cannot load ${path}: ${e?.message ?? e}`;
    return { native: null, reason };
  }
  const missing = FUNCTIONS.filter((f) => typeof (native as any)[f] !== 'function');
  if (missing.length > 0 || native.maxBatch !== MAX_BATCH) {
    return { native: null, reason: `${path} is stale (missing ${missing.join(', ') || 'nothing'}, maxBatch ${native.maxBatch}); rebuild it` };
  }
  return { native, reason: path };
}

// ---- Addresses in records ----------------------------------------------------------

export { addressBytes };

/** An address as a record's 4 words (computed once per destination), with its family. */
export function addressWords(text: string): { family: 4 | 6; words: Int32Array } {
  const bytes = addressBytes(text);
  const words = new Int32Array(4);
  new Uint8Array(words.buffer).set(bytes);
  return { family: bytes.length === 4 ? 4 : 6, words };
}

/** Writes `text` into ints[at, at+4) (a record's address field) and returns its family. */
export function encodeAddress(text: string, ints: Int32Array, at: number): 4 | 6 {
  const { family, words } = addressWords(text);
  if (!(at >= 0 && at + 4 <= ints.length)) throw new RangeError(`address words ${at}..${at + 3} outside ${ints.length}`);
  ints.set(words, at);
  return family;
}

/** The address in ints[at, at+4) as text (IPv6 per RFC 5952: lower case, longest zero run as ::). */
export function decodeAddress(ints: Int32Array, at: number, family: 4 | 6): string {
  if (!(at >= 0 && at + 4 <= ints.length)) throw new RangeError(`address words ${at}..${at + 3} outside ${ints.length}`);
  const b = new Uint8Array(ints.buffer, ints.byteOffset + at * 4, 16);
  if (family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b[0] === 0 && b[1] === 0 && b[2] === 0 && b[3] === 0 && b[4] === 0 && b[5] === 0 && b[6] === 0 && b[7] === 0
    && b[8] === 0 && b[9] === 0 && b[10] === 0xff && b[11] === 0xff) {
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`; // IPv4-mapped (RFC 5952 §5)
  }
  return formatAddress(b);
}

/** Datagram i's source in a recv() meta array. */
export function metaSource(meta: Int32Array, i: number): { family: 4 | 6; address: string; port: number } {
  const m = i * META_INTS;
  const family = meta[m + META.family] === 6 ? 6 : 4;
  return { family, address: decodeAddress(meta, m + META.address, family), port: meta[m + META.port] };
}

/** Sets message i's destination in a send() desc array (the iov fields are left as they are). */
export function setDestination(desc: Int32Array, i: number, address: string | { family: 4 | 6; words: Int32Array }, port: number): void {
  const a = typeof address === 'string' ? addressWords(address) : address;
  const d = i * DESC_INTS;
  if (!(i >= 0 && d + DESC_INTS <= desc.length)) throw new RangeError(`desc record ${i} outside ${desc.length / DESC_INTS} records`);
  desc[d + DESC.family] = a.family;
  desc[d + DESC.port] = port;
  desc.set(a.words, d + DESC.address);
}

/** Sets message i's two parts (offsets and lengths into memory; a length of 0 leaves a part out). */
export function setIovs(desc: Int32Array, i: number, off0: number, len0: number, off1 = 0, len1 = 0): void {
  const d = i * DESC_INTS;
  if (!(i >= 0 && d + DESC_INTS <= desc.length)) throw new RangeError(`desc record ${i} outside ${desc.length / DESC_INTS} records`);
  desc[d + DESC.iov0Offset] = off0;
  desc[d + DESC.iov0Length] = len0;
  desc[d + DESC.iov1Offset] = off1;
  desc[d + DESC.iov1Length] = len1;
}
