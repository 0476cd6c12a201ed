// What a Node developer would write without haports: parse with Buffer reads, a string
// flow key `${src}:${sport}->${dst}:${dport}/${proto}` (endpoints in sorted order, so
// both directions of a flow share it, as HA ports needs), a Map of flows, and a
// consistent-hashing ring from npm (hashring: ketama-compatible, md5, 160 points per
// backend, the most used such package, the `memcached` client's) for new flows. The Map
// is bounded like the core's table (oldest-inserted flow out first) and flows expire
// after the same idle timeout.
//
// It keeps the core's host interface (one memory with the rx arena and descriptors at the
// core's offsets) so that the benchmark drives it with the same host code; it writes the
// backend index of each packet where the core writes its verdict's backend field.

import HashRing from 'hashring';

const RX_ARENA_BYTES = 9437184;
const MAX_BATCH = 1024;
export const ARENA_PTR = 0;
export const DESCRIPTORS_PTR = RX_ARENA_BYTES;
export const VERDICTS_PTR = DESCRIPTORS_PTR + MAX_BATCH * 8;
export const TUPLES_PTR = VERDICTS_PTR + MAX_BATCH * 16;
const NONE = 0xffff;

function ipv6(buf, o) {
  const groups = [];
  for (let k = 0; k < 16; k += 2) groups.push(buf.readUInt16BE(o + k).toString(16));
  return groups.join(':');
}

export class IdiomaticBalancer {
  constructor(config) {
    this.memory = new ArrayBuffer(TUPLES_PTR + MAX_BATCH * 40);
    this.buf = Buffer.from(this.memory);
    this.desc = new Uint32Array(this.memory, DESCRIPTORS_PTR, MAX_BATCH * 2);
    this.out = new Uint16Array(this.memory, VERDICTS_PTR, MAX_BATCH * 8);
    const backends = config.backendPools[0].backends.map((b) => b.name);
    this.backendIndex = new Map(backends.map((name, i) => [name, i]));
    this.ring = new HashRing(backends);
    this.flows = new Map();
    this.capacity = config.flowTable?.capacity ?? 65536;
    this.idleMs = (config.rules[0].idleTimeoutMinutes ?? 4) * 60000;
    this.stats = { packets: 0, newFlows: 0 };
  }

  /** Decides packets [0, n): backend index per packet at out[8 i + 3]. */
  processBatch(n, now) {
    const { buf, desc, out, flows } = this;
    for (let i = 0; i < n; i++) {
      const off = desc[2 * i];
      const version = buf[off] >> 4;
      let src;
      let dst;
      let proto;
      let l4;
      if (version === 4) {
        proto = buf[off + 9];
        src = `${buf[off + 12]}.${buf[off + 13]}.${buf[off + 14]}.${buf[off + 15]}`;
        dst = `${buf[off + 16]}.${buf[off + 17]}.${buf[off + 18]}.${buf[off + 19]}`;
        l4 = off + (buf[off] & 15) * 4;
      } else if (version === 6) {
        proto = buf[off + 6];
        src = ipv6(buf, off + 8);
        dst = ipv6(buf, off + 24);
        l4 = off + 40;
      } else {
        out[8 * i + 3] = NONE;
        continue;
      }
      let sport = 0;
      let dport = 0;
      if (proto === 6 || proto === 17) {
        sport = buf.readUInt16BE(l4);
        dport = buf.readUInt16BE(l4 + 2);
      }
      const a = `${src}:${sport}`;
      const b = `${dst}:${dport}`;
      const key = a < b ? `${a}->${b}/${proto}` : `${b}->${a}/${proto}`;
      let flow = flows.get(key);
      if (flow === undefined || now - flow.lastSeen > this.idleMs) {
        flow = { backend: this.backendIndex.get(this.ring.get(key)), lastSeen: now };
        if (flows.size >= this.capacity) flows.delete(flows.keys().next().value);
        flows.set(key, flow);
        this.stats.newFlows++;
      } else {
        flow.lastSeen = now;
      }
      out[8 * i + 3] = flow.backend;
    }
    this.stats.packets += n;
    return n;
  }
}
