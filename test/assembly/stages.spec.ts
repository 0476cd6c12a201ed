// Unit tests of the stages after parsing: addresses, hash, Maglev, flow table, rules.
import { hexBytes } from "./helpers";
import { parseAddress } from "../../assembly/addr";
import { Packet, PACKET_BYTES, parsePacket } from "../../assembly/packet";
import { distributionHash, flowKey, keyHash, sipHash13 } from "../../assembly/hash";
import { buildTable, Pool } from "../../assembly/maglev";
import {
  entryAge, entryBackend, entryExpired, entryIdleExpired, flowFind, flowInsert, flowLookup, flowsAllocate,
  flowsClock, flowsFree, flowUsed, INSERT_EVICTED, setRuleIdleMinutes, STATE_CLOSING, STATE_ESTABLISHED,
  STATE_FRAGMENT, STATE_SYN, otherBucket, touchEntry,
} from "../../assembly/flows";
import { C_FLOW_MOVES, counters } from "../../assembly/layout";

function counterValue(slot: i32): u64 {
  return load<u64>(counters + (<usize>slot << 3));
}
import { DIST_DEFAULT, DIST_SOURCE_IP, DIST_SOURCE_IP_PROTOCOL, LINK_RAW_IP, NONE } from "../../assembly/consts";
import { isPrime } from "../../assembly/config";

function udp4(src: string, dst: string, sport: string, dport: string): usize {
  return hexBytes("4500001c00000000401100000" + src + "0" + dst + sport + dport + "00080000");
}

describe("addresses", () => {
  it("parses IPv4 and IPv6 text, rejecting the malformed", () => {
    expect(parseAddress("10.0.0.100").family).toBe(<u8>4);
    expect(parseAddress("255.255.255.255").family).toBe(<u8>4);
    expect(parseAddress("fd00::100").family).toBe(<u8>6);
    expect(parseAddress("::").family).toBe(<u8>6);
    expect(parseAddress("::ffff:10.0.0.1").family).toBe(<u8>6);
    expect(parseAddress("2001:db8:0:0:0:0:0:1").family).toBe(<u8>6);
    const a = parseAddress("fd00::1:2");
    expect(a.bytes[0]).toBe(<u8>0xfd);
    expect(a.bytes[13]).toBe(<u8>1);
    expect(a.bytes[15]).toBe(<u8>2);
    const bad = ["", "10.0.0", "10.0.0.256", "010.0.0.1", "1.2.3.4.5", "fd00:::1", "1::2::3", ":1::", "1:2:3:4:5:6:7:8:9",
      "12345::", "g::1", "fd00::1%eth0", "10.0.0.1/24", "1:2:3:4:5:6:7:1.2.3.4", " 10.0.0.1"];
    for (let i = 0; i < bad.length; i++) expect(parseAddress(bad[i]).family).toBe(<u8>0, bad[i]);
  });
});

/** A Packet record to parse into, and a second one (its key is a separate key). */
const pk = changetype<Packet>(heap.alloc(<usize>PACKET_BYTES));
const pk2 = changetype<Packet>(heap.alloc(<usize>PACKET_BYTES));
const K0: u64 = 0x0706050403020100; // key bytes 00 01 … 0f (the SipHash paper's)
const K1: u64 = 0x0f0e0d0c0b0a0908;

/** SipHash-1-3 of the bytes 00 01 02 … (len bytes) under key 00 01 … 0f: made with the
 *  Rust crate siphasher 1.0.1 (SipHasher13::new_with_key, write, finish), whose
 *  SipHasher24 gives the SipHash paper's own vectors on the same inputs. */
const VECTORS: StaticArray<u64> = [
  0xabac0158050fc4dc, 0xc9f49bf37d57ca93, 0xd3927d989bb11140, 0x369095118d299a8e, 0xd320d86d2a519956,
  0xcc4fdd1a7d908b66, 0x9cf2689063dbd80c, 0x626b57547b108392, 0xc1d2363299e41531, 0x9d199062b7bbb3a8,
];
const VECTOR_LENGTHS: StaticArray<i32> = [0, 1, 7, 8, 15, 16, 17, 39, 40, 63];

describe("hash", () => {
  it("is SipHash-1-3: the reference vectors", () => {
    const msg = heap.alloc(64);
    for (let i = 0; i < 64; i++) store<u8>(msg + <usize>i, <u8>i);
    for (let i = 0; i < VECTORS.length; i++) {
      expect(sipHash13(msg, VECTOR_LENGTHS[i], K0, K1)).toBe(VECTORS[i], "length " + VECTOR_LENGTHS[i].toString());
    }
    heap.free(msg);
  });

  it("a flow key hashes as SipHash-1-3 of its bytes: 16 for IPv4 (src, dst, w4), 40 for IPv6", () => {
    parsePacket(pk, udp4("a000001", "a000064", "1388", "0035"), 28, LINK_RAW_IP);
    flowKey(pk, false);
    const key = changetype<usize>(pk);
    const bytes = heap.alloc(40);
    store<u32>(bytes, <u32>load<u64>(key));
    store<u32>(bytes, <u32>load<u64>(key, 16), 4);
    store<u64>(bytes, load<u64>(key, 32), 8);
    expect(keyHash(key, K0, K1)).toBe(sipHash13(bytes, 16, K0, K1));
    const v6 = hexBytes("60000000000811400000000000000000000000000000000120010db8000000000000000000000064" + "1388003500080000");
    parsePacket(pk, v6, 48, LINK_RAW_IP);
    flowKey(pk, false);
    memory.copy(bytes, key, 40);
    expect(keyHash(key, K0, K1)).toBe(sipHash13(bytes, 40, K0, K1));
    heap.free(bytes);
  });

  it("symmetric keys are equal for both directions (and say which was swapped); directional keys are not", () => {
    const fwd = udp4("a000001", "a000064", "1388", "0035");
    const rev = udp4("a000064", "a000001", "0035", "1388");
    parsePacket(pk, fwd, 28, LINK_RAW_IP);
    const swappedFwd = flowKey(pk, true);
    parsePacket(pk2, rev, 28, LINK_RAW_IP);
    const swappedRev = flowKey(pk2, true);
    expect(swappedFwd).not.toBe(swappedRev);
    expect(keyHash(changetype<usize>(pk2), K0, K1)).toBe(keyHash(changetype<usize>(pk), K0, K1));
    flowKey(pk, false);
    flowKey(pk2, false);
    expect(keyHash(changetype<usize>(pk2), K0, K1)).not.toBe(keyHash(changetype<usize>(pk), K0, K1));
    expect(keyHash(changetype<usize>(pk), K0 + 1, K1)).not.toBe(keyHash(changetype<usize>(pk), K0, K1));
  });

  it("distribution modes drop ports (3-tuple) and protocol (2-tuple), and restore the key", () => {
    parsePacket(pk, udp4("a000001", "a000064", "1388", "0035"), 28, LINK_RAW_IP);
    flowKey(pk, false);
    parsePacket(pk2, udp4("a000001", "a000064", "9999", "0050"), 28, LINK_RAW_IP);
    flowKey(pk2, false);
    const a = changetype<usize>(pk);
    const b = changetype<usize>(pk2);
    const full = pk.w4;
    const a5 = distributionHash(a, K0, K1, DIST_DEFAULT);
    const a3 = distributionHash(a, K0, K1, DIST_SOURCE_IP_PROTOCOL);
    const a2 = distributionHash(a, K0, K1, DIST_SOURCE_IP);
    expect(pk.w4).toBe(full);
    expect(distributionHash(b, K0, K1, DIST_DEFAULT)).not.toBe(a5);
    expect(distributionHash(b, K0, K1, DIST_SOURCE_IP_PROTOCOL)).toBe(a3);
    expect(distributionHash(b, K0, K1, DIST_SOURCE_IP)).toBe(a2);
    expect(a3).not.toBe(a2);
  });

  it("IPv4 key words hold the address bytes", () => {
    parsePacket(pk, udp4("a000001", "a000064", "1388", "0035"), 28, LINK_RAW_IP);
    flowKey(pk, false);
    expect(pk.w0).toBe(<u64>bswap<u32>(0x0a000001));
    expect(pk.w2).toBe(<u64>bswap<u32>(0x0a000064));
  });
});

function poolOf(n: i32, m: i32): Pool {
  const names = new StaticArray<string>(n);
  const pool = new Pool();
  pool.m = m;
  const members = new StaticArray<i32>(n);
  for (let i = 0; i < n; i++) {
    names[i] = "nva-" + i.toString();
    members[i] = i;
  }
  pool.members = members;
  pool.prepare(names);
  return pool;
}

describe("maglev", () => {
  it("fills all M slots, balanced within 1% for equal weights (paper §3.4)", () => {
    const m = 65537;
    const pool = poolOf(10, m);
    const weights = new StaticArray<i32>(10);
    const states = new StaticArray<u8>(10);
    for (let i = 0; i < 10; i++) weights[i] = 1;
    const t = heap.alloc(<usize>m * 2);
    expect(buildTable(pool, t, weights, states, true)).toBe(10);
    const counts = new StaticArray<i32>(10);
    for (let s = 0; s < m; s++) {
      const b = <i32>load<u16>(t + <usize>s * 2);
      expect(b < 10).toBe(true);
      counts[b]++;
    }
    for (let i = 0; i < 10; i++) {
      expect(counts[i] >= 6488 && counts[i] <= 6620).toBe(true, "backend " + i.toString() + ": " + counts[i].toString());
    }
    heap.free(t);
  });

  it("a down backend is left out and few other slots move", () => {
    const m = 65537;
    const pool = poolOf(5, m);
    const weights = new StaticArray<i32>(5);
    const states = new StaticArray<u8>(5);
    for (let i = 0; i < 5; i++) weights[i] = 1;
    const a = heap.alloc(<usize>m * 2);
    const b = heap.alloc(<usize>m * 2);
    buildTable(pool, a, weights, states, true);
    states[2] = 1; // down
    expect(buildTable(pool, b, weights, states, true)).toBe(4);
    let moved = 0;
    for (let s = 0; s < m; s++) {
      const x = load<u16>(a + <usize>s * 2);
      const y = load<u16>(b + <usize>s * 2);
      expect(y).not.toBe(<u16>2);
      if (x != 2 && x != y) moved++;
    }
    expect(moved < m / 50).toBe(true, "slots of healthy backends moved: " + moved.toString());
    // With only-up off, the down backend is still in the table (failOpen).
    buildTable(pool, b, weights, states, false);
    let seen = false;
    for (let s = 0; s < m; s++) if (load<u16>(b + <usize>s * 2) == 2) seen = true;
    expect(seen).toBe(true);
    heap.free(a);
    heap.free(b);
  });

  it("no eligible backend: every slot is NONE", () => {
    const pool = poolOf(2, 7);
    const weights = new StaticArray<i32>(2);
    const states = new StaticArray<u8>(2);
    const t = heap.alloc(14);
    expect(buildTable(pool, t, weights, states, true)).toBe(0); // weights 0
    for (let s = 0; s < 7; s++) expect(<i32>load<u16>(t + <usize>s * 2)).toBe(NONE);
    heap.free(t);
  });

  it("isPrime", () => {
    expect(isPrime(65537)).toBe(true);
    expect(isPrime(655373)).toBe(true);
    expect(isPrime(65536)).toBe(false);
    expect(isPrime(1)).toBe(false);
    expect(isPrime(9)).toBe(false);
  });
});

/** A key record whose words are (n, 0, 0, 0, family 4 marker): distinct keys by n. */
const keyRec = heap.alloc(40);
function key(n: u64): usize {
  store<u64>(keyRec, n);
  store<u64>(keyRec, 0, 8);
  store<u64>(keyRec, 0, 16);
  store<u64>(keyRec, 0, 24);
  store<u64>(keyRec, <u64>4 << 40, 32);
  return keyRec;
}
/** A hash with first bucket `bucket` and tag `tag` (flows.ts: bits 0.. and 48..63). */
function hashOf(bucket: u64, tag: u64): u64 {
  return bucket | (tag << 48);
}

describe("flow table", () => {
  it("inserts into the first bucket, then the second; admission: only established newcomers evict established flows", () => {
    const idle = new StaticArray<u8>(1);
    idle[0] = 4; // minutes
    setRuleIdleMinutes(idle);
    flowsAllocate(16); // two buckets of 8: every key's other bucket is the other one
    flowsClock(1000);
    for (let i: u64 = 0; i < 16; i++) {
      const e = flowInsert(key(i), hashOf(0, 100 + i), 0, <i32>i, STATE_ESTABLISHED);
      expect(e).not.toBe(0);
      expect((e - 1) >> 3).toBe(i < 8 ? 0 : 1, "flow " + i.toString() + " in bucket 0, then bucket 1");
    }
    expect(flowUsed).toBe(16);
    // A newcomer not established finds two full buckets of established flows: untracked.
    flowsClock(2000);
    expect(flowInsert(key(99), hashOf(0, 999), 0, 1, 0)).toBe(0);
    expect(flowInsert(key(98), hashOf(1, 998), 0, 1, STATE_SYN)).toBe(0);
    expect(flowInsert(key(97), hashOf(0, 997), 0, 1, STATE_FRAGMENT)).toBe(0);
    // Flows stay findable in both buckets.
    for (let i: u64 = 0; i < 16; i++) {
      const e = flowLookup(key(i), hashOf(0, 100 + i));
      expect(e).not.toBe(0);
      expect(entryBackend(e)).toBe(<i32>i);
    }
    // An established newcomer may evict the least recently seen established flow.
    flowsClock(3000);
    for (let i: u64 = 1; i < 16; i++) touchEntry(flowLookup(key(i), hashOf(0, 100 + i)), 0, true);
    const r = flowInsert(key(99), hashOf(0, 999), 0, 1, STATE_ESTABLISHED);
    expect(r).not.toBe(0);
    expect(r & INSERT_EVICTED).toBe(INSERT_EVICTED);
    expect(flowLookup(key(0), hashOf(0, 100))).toBe(0); // the oldest went
    expect(flowLookup(key(1), hashOf(0, 101))).not.toBe(0);
    flowsFree();
  });

  it("a newcomer evicts the least recently seen entry that is not established, never an established one", () => {
    const idle = new StaticArray<u8>(1);
    idle[0] = 4;
    setRuleIdleMinutes(idle);
    flowsAllocate(16);
    flowsClock(1000);
    for (let i: u64 = 0; i < 15; i++) expect(flowInsert(key(i), hashOf(0, 100 + i), 0, 0, STATE_ESTABLISHED)).not.toBe(0);
    flowsClock(1500);
    expect(flowInsert(key(50), hashOf(1, 150), 0, 0, 0)).not.toBe(0); // the last free way
    flowsClock(1600);
    const e = flowInsert(key(51), hashOf(0, 151), 0, 0, 0);
    expect(e).not.toBe(0);
    expect(e & INSERT_EVICTED).toBe(INSERT_EVICTED);
    expect(flowLookup(key(50), hashOf(1, 150))).toBe(0);
    for (let i: u64 = 0; i < 15; i++) expect(flowLookup(key(i), hashOf(0, 100 + i))).not.toBe(0);
    flowsFree();
  });

  it("expires by the rule's idle timeout, closing and fragment entries by their own; an expired way is reused", () => {
    const idle = new StaticArray<u8>(1);
    idle[0] = 4;
    setRuleIdleMinutes(idle);
    flowsAllocate(16);
    flowsClock(0);
    const e = flowInsert(key(1), hashOf(0, 7), 0, 5, STATE_ESTABLISHED);
    const c = flowInsert(key(2), hashOf(0, 8), 0, 5, STATE_ESTABLISHED | STATE_CLOSING);
    const f = flowInsert(key(3), hashOf(0, 9), 0, 5, STATE_FRAGMENT);
    flowsClock(9999);
    expect(entryExpired(c)).toBe(false);
    flowsClock(10001);
    expect(entryExpired(c)).toBe(true);
    expect(entryExpired(f)).toBe(false);
    flowsClock(30001);
    expect(entryExpired(f)).toBe(true);
    expect(entryExpired(e)).toBe(false);
    flowsClock(240000);
    expect(flowLookup(key(1), hashOf(0, 7))).toBe(e);
    flowsClock(240001);
    expect(flowLookup(key(1), hashOf(0, 7))).toBe(0);
    expect(flowFind(key(1), hashOf(0, 7))).toBe(e); // still there, expired
    expect(entryIdleExpired(e)).toBe(true);
    for (let i: u64 = 10; i < 23; i++) flowInsert(key(i), hashOf(0, 100 + i), 0, 0, STATE_ESTABLISHED);
    expect(flowUsed).toBe(16);
    const r = flowInsert(key(40), hashOf(1, 140), 0, 0, 0);
    expect(r).not.toBe(0);
    expect(r & INSERT_EVICTED).toBe(0);
    flowsFree();
  });

  it("makes room by moving an entry to its other bucket (cuckoo), and the moved entry is still found", () => {
    const idle = new StaticArray<u8>(1);
    idle[0] = 4;
    setRuleIdleMinutes(idle);
    flowsAllocate(256); // 32 buckets
    flowsClock(0);
    const newcomerTag: u64 = 5000;
    const b2 = <u64>otherBucket(0, <u32>newcomerTag);
    // Bucket 0 and the newcomer's other bucket full of established flows whose other
    // buckets are neither of the two (and empty).
    const hashes = new Array<u64>();
    for (let t: u64 = 1; hashes.length < 16; t++) {
      const first: u64 = hashes.length < 8 ? 0 : b2;
      const other = <u64>otherBucket(<u32>first, <u32>t);
      if (other == 0 || other == b2) continue;
      const e = flowInsert(key(<u64>hashes.length), hashOf(first, t), 0, 0, STATE_ESTABLISHED);
      expect(<u64>((e - 1) >> 3)).toBe(first);
      hashes.push(hashOf(first, t));
    }
    const movesBefore = counterValue(C_FLOW_MOVES);
    const e = flowInsert(key(3000), hashOf(0, newcomerTag), 0, 9, 0);
    expect(e).not.toBe(0);
    expect(e & INSERT_EVICTED).toBe(0);
    expect(counterValue(C_FLOW_MOVES)).toBe(movesBefore + 1);
    for (let i = 0; i < hashes.length; i++) expect(flowLookup(key(<u64>i), hashes[i])).not.toBe(0, "flow " + i.toString());
    expect(entryBackend(flowLookup(key(3000), hashOf(0, newcomerTag)))).toBe(9);
    expect(flowUsed).toBe(17);
    flowsFree();
  });

  it("the clock survives 2^31 ms: entries keep their age across a rebase", () => {
    const idle = new StaticArray<u8>(1);
    idle[0] = 100;
    setRuleIdleMinutes(idle);
    flowsAllocate(16);
    flowsClock(5000);
    const old = flowInsert(key(1), hashOf(0, 1), 0, 0, STATE_ESTABLISHED);
    const day: f64 = 86400000;
    flowsClock(30 * day);
    const fresh = flowInsert(key(2), hashOf(0, 2), 0, 0, STATE_ESTABLISHED);
    flowsClock(30 * day + 60000);
    expect(entryExpired(old)).toBe(true);
    expect(entryExpired(fresh)).toBe(false);
    expect(entryAge(fresh)).toBe(60000);
    flowsClock(30 * day + 6000001);
    expect(entryExpired(fresh)).toBe(true);
    flowsFree();
  });
});
