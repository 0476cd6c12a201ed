// Which tunnel peers a listener accepts: source prefixes, checked for every datagram
// before anything else is read from it, so a listener never relays for a sender nobody
// configured (an open relay). Parsing and matching are Node's own net.BlockList; a
// small cache keeps the per-datagram cost at one Map lookup for the few peers a
// listener has.

import { BlockList, isIP } from 'node:net';

/** Peers answered from the cache before it is cleared (a flood of spoofed sources cannot grow it). */
const CACHE_ENTRIES = 4096;

export class PeerSet {
  private readonly list = new BlockList();
  private readonly cache = new Map<string, boolean>();
  private readonly cache4 = new Map<number, boolean>();

  /**
   * `prefixes`: "ADDRESS/LENGTH" or one "ADDRESS", of `family` (the listener's). Throws an
   * Error whose message starts with the offending entry's index ("[1]: …").
   */
  constructor(prefixes: unknown[], readonly family: 4 | 6) {
    prefixes.forEach((p, i) => {
      if (typeof p !== 'string') throw new Error(`[${i}]: expected a prefix string, got ${JSON.stringify(p)}`);
      const [address, length, extra] = p.split('/');
      const f = isIP(address);
      if (f === 0 || extra !== undefined) throw new Error(`[${i}]: ${JSON.stringify(p)} is not ADDRESS or ADDRESS/LENGTH`);
      if (f !== family) {
        throw new Error(`[${i}]: ${JSON.stringify(p)} is IPv${f}, but the listener binds an IPv${family} address`);
      }
      const max = f === 4 ? 32 : 128;
      const bits = length === undefined ? max : /^[0-9]{1,3}$/.test(length) ? Number(length) : NaN;
      if (!(bits >= 0 && bits <= max)) throw new Error(`[${i}]: ${JSON.stringify(p)}: the length must be 0-${max}`);
      this.list.addSubnet(address, bits, f === 4 ? 'ipv4' : 'ipv6');
    });
  }

  /**
   * Whether a datagram from the address in words[at, at + 4) (udpio's records: the
   * address bytes in memory order, IPv4 in the first word) is accepted.
   */
  hasWords(words: Int32Array, at: number): boolean {
    if (this.family === 4) {
      const w = words[at];
      let ok = this.cache4.get(w);
      if (ok === undefined) {
        ok = this.list.check(`${w & 0xff}.${(w >>> 8) & 0xff}.${(w >>> 16) & 0xff}.${w >>> 24}`, 'ipv4');
        if (this.cache4.size >= CACHE_ENTRIES) this.cache4.clear();
        this.cache4.set(w, ok);
      }
      return ok;
    }
    const groups: string[] = [];
    for (let i = 0; i < 4; i++) {
      const w = words[at + i];
      groups.push(((w & 0xff) << 8 | ((w >>> 8) & 0xff)).toString(16), (((w >>> 16) & 0xff) << 8 | (w >>> 24)).toString(16));
    }
    return this.has(groups.join(':'));
  }

  /** Whether a datagram from `address` (as node:dgram reports it) is accepted. */
  has(address: string): boolean {
    let ok = this.cache.get(address);
    if (ok === undefined) {
      ok = this.list.check(address, this.family === 4 ? 'ipv4' : 'ipv6');
      if (this.cache.size >= CACHE_ENTRIES) this.cache.clear();
      this.cache.set(address, ok);
    }
    return ok;
  }
}
