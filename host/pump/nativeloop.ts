// The pump's batch loop over the native UDP addon (udpio.ts): datagrams arrive with one
// recvmmsg straight into the core's receive arena, one per slot, tunnel header included;
// the core processes the inner packets where they lie (rewriting them in place for NAT);
// forwarded datagrams leave with one sendmmsg gathered from the same slots, tunnel header
// unchanged. No datagram is copied by JavaScript, and no object is made per datagram.
//
//   readable ─▶ recv(≤ batchSize) ─▶ per datagram: peer, tunnel header, VNI ─▶
//   descriptors (offset = slot + header) ─▶ processBatch (one per link type present) ─▶
//   per verdict: forward → one message [slot, whole datagram] to the appliance;
//   reset → [header] ‖ [RST] to the sender and to the appliance ─▶ messages grouped by
//   destination (stable: each appliance's datagrams keep their order) ─▶ send (sendmmsg;
//   with `udpSegmentation`, each run of equal-length datagrams to one appliance is one
//   UDP GSO message)
//
// Degrading, not collapsing: each readable callback does at most `BATCHES_PER_TURN`
// batches, then returns to the event loop (timers, probes, metrics keep running; the
// socket stays readable, so the loop calls again next turn). Excess load is dropped by
// the kernel at the socket's receive buffer, before any work is spent on it, and counted
// (haports_pump_socket_drops_total). A send the kernel cannot take (its send buffer
// full) is dropped and counted as `send-buffer-full` rather than queued: a queued send
// would hold the slot, and the next batch needs it.

import {
  ACTION_FORWARD, ACTION_RESET, DESCRIPTOR, DESCRIPTOR_BYTES, LINK_ETHERNET, LINK_RAW_IP, NONE, RESET, RESET_BYTES,
  VERDICT, VERDICT_BYTES,
} from '../lib/abi.js';
import type { Core } from '../lib/core.js';
import { decapAt, decoded, tunnelErrorName, type TunnelProtocol } from './tunnel.js';
import { DESC, DESC_INTS, META, META_INTS, type NativeUdp } from './udpio.js';
import type { Listener } from './pump.js';

/** Batches one readable callback may run before yielding to the event loop. */
export const BATCHES_PER_TURN = 8;

export interface NativeLoopHost {
  readonly core: Core;
  clock(): number;
  drop(L: Listener, reason: string, n?: number): void;
  /** Time spent in the core (ms), for haports_pump_core_seconds_total. */
  coreMs: number;
}

export class NativeLoop {
  /** Datagram slot size: the arena split evenly over a batch (a jumbo datagram fits). */
  readonly slot: number;
  private readonly meta: Int32Array;
  /** The messages of a batch, and a second array that grouping permutes them into. */
  private desc: Int32Array;
  private descSpare: Int32Array;
  /** Per message: destination key × 4096 + index (grouping's sort). */
  private readonly order: Int32Array;
  /** Per descriptor of the current core batch: its datagram's slot and tunnel-header length. */
  private readonly slotOf: Int32Array;
  private readonly hdrOf: Int32Array;
  /** Per datagram of the current receive: its link type (LINK_*), or -1 when dropped. */
  private readonly linkOf: Int8Array;
  private readonly hdrLen: Int32Array;

  /**
   * @param segment send runs of datagrams as UDP GSO messages (pump.udpSegmentation);
   *   the addon falls back to one message per datagram where the kernel refuses it.
   */
  constructor(readonly native: NativeUdp, readonly host: NativeLoopHost, readonly batchSize: number, readonly segment = true) {
    const core = host.core;
    this.slot = Math.min(65536, Math.floor(core.arenaSize / batchSize / 64) * 64);
    this.meta = new Int32Array(batchSize * META_INTS);
    // Two messages per datagram at most (a reset's two RSTs).
    this.desc = new Int32Array(2 * batchSize * DESC_INTS);
    this.descSpare = new Int32Array(2 * batchSize * DESC_INTS);
    this.order = new Int32Array(2 * batchSize);
    this.slotOf = new Int32Array(batchSize);
    this.hdrOf = new Int32Array(batchSize);
    this.linkOf = new Int8Array(batchSize);
    this.hdrLen = new Int32Array(batchSize);
  }

  /** The readable callback of listener L: up to BATCHES_PER_TURN batches. */
  poll(L: Listener): void {
    for (let turn = 0; turn < BATCHES_PER_TURN; turn++) {
      if (L.fd < 0) return;
      const n = this.receive(L);
      if (n === 0) return;
      // GENEVE may carry Ethernet and raw IP in one receive: one core batch per link type.
      this.run(L, n, LINK_ETHERNET);
      this.run(L, n, LINK_RAW_IP);
      if (n < this.batchSize) return; // the socket is (nearly) empty
    }
  }

  /** One recvmmsg; checks each datagram's peer, tunnel header and VNI. Returns the count. */
  private receive(L: Listener): number {
    const core = this.host.core;
    const memory = core.exports.memory.buffer;
    const arena = core.exports.rxArenaPtr();
    const n = this.native.recv(L.fd, memory, arena, this.slot, this.batchSize, this.meta);
    if (n === 0) return 0;
    const bytes = new Uint8Array(memory);
    const meta = this.meta;
    const c = L.counters;
    for (let i = 0; i < n; i++) {
      const m = i * META_INTS;
      const len = meta[m + META.length];
      c.receivedPackets++;
      c.receivedBytes += len;
      this.linkOf[i] = -1;
      if (!L.settings.peerSet.hasWords(meta, m + META.address)) { this.host.drop(L, 'peer-not-allowed'); continue; }
      if (meta[m + META.truncated] !== 0) { this.host.drop(L, 'too-long'); continue; }
      const at = arena + i * this.slot;
      const hdr = decapAt(L.settings.protocol, bytes, at, len);
      if (hdr < 0) { this.host.drop(L, tunnelErrorName(hdr)); continue; }
      if (!L.settings.vnis.has(decoded.vni)) { this.host.drop(L, 'unknown-vni'); continue; }
      this.linkOf[i] = decoded.link;
      this.hdrLen[i] = hdr;
    }
    return n;
  }

  /** The datagrams of one link type through the core, then their sends. */
  private run(L: Listener, received: number, link: number): void {
    const core = this.host.core;
    const ex = core.exports;
    const memory = ex.memory.buffer;
    const dv = new DataView(memory);
    const descriptors = ex.descriptorsPtr();
    const meta = this.meta;
    let n = 0;
    for (let i = 0; i < received; i++) {
      if (this.linkOf[i] !== link) continue;
      const hdr = this.hdrLen[i];
      const d = descriptors + n * DESCRIPTOR_BYTES;
      dv.setUint32(d + DESCRIPTOR.offset, i * this.slot + hdr, true);
      dv.setUint32(d + DESCRIPTOR.length, meta[i * META_INTS + META.length] - hdr, true);
      this.slotOf[n] = i;
      this.hdrOf[n] = hdr;
      n++;
    }
    if (n === 0) return;
    const t0 = performance.now();
    core.process(n, this.host.clock(), L.frontend, link);
    this.host.coreMs += performance.now() - t0;
    L.counters.batches++;
    L.counters.batchPackets += n;

    // Verdicts → messages.
    const bytes = new Uint8Array(memory);
    const verdicts = ex.verdictsPtr();
    const arena = ex.rxArenaPtr();
    const resets = ex.resetsPtr();
    const port = L.settings.appliancePort;
    const desc = this.desc;
    const order = this.order;
    let m = 0;
    for (let j = 0; j < n; j++) {
      const v = verdicts + j * VERDICT_BYTES;
      const action = bytes[v + VERDICT.action];
      if (action !== ACTION_FORWARD && action !== ACTION_RESET) continue; // drop / nomatch: counted by the core
      const b = bytes[v + VERDICT.backend] | (bytes[v + VERDICT.backend + 1] << 8);
      const target = b === NONE ? null : L.targetWords[b];
      const i = this.slotOf[j];
      const slot = arena + i * this.slot;
      const len = meta[i * META_INTS + META.length];
      if (action === ACTION_RESET) {
        // enableTcpReset: the RSTs leave in the same tunnel, one back to the sender, one to the appliance.
        const r = resets + j * RESET_BYTES;
        const lenA = bytes[r + RESET.lengthA] | (bytes[r + RESET.lengthA + 1] << 8);
        const lenB = bytes[r + RESET.lengthB] | (bytes[r + RESET.lengthB + 1] << 8);
        const mm = i * META_INTS;
        order[m] = m; // key 0: resets keep their order, ahead of the forwarded datagrams
        message(desc, m++, meta[mm + META.family], meta[mm + META.port], meta, mm + META.address, slot, this.hdrOf[j], r + RESET.a, lenA);
        if (target) { order[m] = m; message(desc, m++, meta[mm + META.family], port, target, 0, slot, this.hdrOf[j], r + RESET.b, lenB); }
        continue;
      }
      if (!target) { this.host.drop(L, 'no-appliance-address'); continue; }
      order[m] = (b + 1) * 4096 + m; // key: the appliance (b < 0xffff, m < 2048: below 2^31)
      message(desc, m++, meta[i * META_INTS + META.family], port, target, 0, slot, len, 0, 0);
    }
    if (m > 1 && this.segment) this.group(m);
    if (m > 0) this.send(L, m);
  }

  /**
   * Orders the batch's `m` messages by destination, keeping each destination's order, so
   * that the addon finds each appliance's datagrams in one run (UDP GSO). Reordering
   * across appliances changes nothing any receiver sees.
   */
  private group(m: number): void {
    const order = this.order.subarray(0, m);
    order.sort();
    const from = this.desc;
    const to = this.descSpare;
    for (let k = 0; k < m; k++) {
      const src = (order[k] & 4095) * DESC_INTS;
      for (let x = 0; x < DESC_INTS; x++) to[k * DESC_INTS + x] = from[src + x];
    }
    this.desc = to;
    this.descSpare = from;
  }

  /** sendmmsg of `count` messages; what the kernel cannot take now is dropped and counted. */
  private send(L: Listener, count: number): void {
    const memory = this.host.core.exports.memory.buffer;
    const c = L.counters;
    let sent = 0;
    while (sent < count) {
      let k: number;
      try {
        k = this.native.send(L.fd, memory, this.desc.subarray(sent * DESC_INTS), count - sent, this.segment);
      } catch (e: any) {
        // This message failed (e.g. EHOSTUNREACH): count it and go on with the next.
        const code = e?.code ?? 'error';
        c.sendErrors[code] = (c.sendErrors[code] ?? 0) + 1;
        this.host.drop(L, 'send-error');
        sent++;
        continue;
      }
      if (k === 0) {
        this.host.drop(L, 'send-buffer-full', count - sent);
        break;
      }
      for (let i = sent; i < sent + k; i++) {
        const d = i * DESC_INTS;
        const len = this.desc[d + DESC.iov0Length] + this.desc[d + DESC.iov1Length];
        if (this.desc[d + DESC.iov1Length] !== 0) c.resetPackets++;
        else { c.sentPackets++; c.sentBytes += len; }
      }
      sent += k;
    }
  }
}

/** Writes message `m` of `desc`: to (family, port, address words at words[w]), [iov0] ‖ [iov1]. */
function message(
  desc: Int32Array, m: number, family: number, port: number, words: Int32Array, w: number,
  off0: number, len0: number, off1: number, len1: number,
): void {
  const d = m * DESC_INTS;
  desc[d + DESC.family] = family;
  desc[d + DESC.port] = port;
  desc[d + DESC.address] = words[w];
  desc[d + DESC.address + 1] = words[w + 1];
  desc[d + DESC.address + 2] = words[w + 2];
  desc[d + DESC.address + 3] = words[w + 3];
  desc[d + DESC.iov0Offset] = off0;
  desc[d + DESC.iov0Length] = len0;
  desc[d + DESC.iov1Offset] = off1;
  desc[d + DESC.iov1Length] = len1;
}
