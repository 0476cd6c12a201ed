// Unit tests of the stages after parsing: addresses, hash, Maglev, flow table, rules.
import { hexBytes } from "./helpers";
import { parseAddress } from "../../assembly/addr";
import { parsePacket } from "../../assembly/packet";
import { distributionHash, hashKey, loadKey, w0, w2, w4 } from "../../assembly/hash";
import { buildTable, Pool } from "../../assembly/maglev";
import {
  flowsAllocate, flowsFree, flowInsert, flowLookup, entryBackend, flowUsed, setRuleIdleMs,
  STATE_ESTABLISHED, lastInsertEvicted,
} from "../../assembly/flows";
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

describe("hash", () => {
  it("symmetric keys are equal for both directions; directional keys are not", () => {
    const fwd = udp4("a000001", "a000064", "1388", "0035");
    const rev = udp4("a000064", "a000001", "0035", "1388");
    parsePacket(fwd, 28, LINK_RAW_IP);
    loadKey(true);
    const hf = hashKey(42);
    parsePacket(rev, 28, LINK_RAW_IP);
    loadKey(true);
    expect(hashKey(42)).toBe(hf);
    loadKey(false);
    const hr = hashKey(42);
    parsePacket(fwd, 28, LINK_RAW_IP);
    loadKey(false);
    expect(hashKey(42)).not.toBe(hr);
    expect(hashKey(43)).not.toBe(hashKey(42));
  });

  it("distribution modes drop ports (3-tuple) and protocol (2-tuple), and restore the key", () => {
    const a = udp4("a000001", "a000064", "1388", "0035");
    const b = udp4("a000001", "a000064", "9999", "0050");
    parsePacket(a, 28, LINK_RAW_IP);
    loadKey(false);
    const full = w4;
    const a5 = distributionHash(7, DIST_DEFAULT);
    const a3 = distributionHash(7, DIST_SOURCE_IP_PROTOCOL);
    const a2 = distributionHash(7, DIST_SOURCE_IP);
    expect(w4).toBe(full);
    parsePacket(b, 28, LINK_RAW_IP);
    loadKey(false);
    expect(distributionHash(7, DIST_DEFAULT)).not.toBe(a5);
    expect(distributionHash(7, DIST_SOURCE_IP_PROTOCOL)).toBe(a3);
    expect(distributionHash(7, DIST_SOURCE_IP)).toBe(a2);
    expect(a3).not.toBe(a2);
  });

  it("IPv4 key words hold the address bytes", () => {
    parsePacket(udp4("a000001", "a000064", "1388", "0035"), 28, LINK_RAW_IP);
    loadKey(false);
    expect(w0).toBe(<u64>bswap<u32>(0x0a000001));
    expect(w2).toBe(<u64>bswap<u32>(0x0a000064));
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

describe("flow table", () => {
  it("inserts, finds, expires, and prefers evicting flows not yet established", () => {
    const idle = new StaticArray<f64>(1);
    idle[0] = 1000;
    setRuleIdleMs(idle);
    flowsAllocate(16); // two buckets of 8
    // 8 established flows that share bucket 0 (hash low bits 0), then pressure.
    for (let i: u64 = 0; i < 8; i++) {
      parsePacket(udp4("a000001", "a000064", "1388", "00" + (10 + <i32>i).toString()), 28, LINK_RAW_IP);
      loadKey(false);
      expect(flowInsert(i << 33, 0, 0, <i32>i, STATE_ESTABLISHED)).not.toBe(0);
    }
    expect(flowUsed).toBe(8);
    // A new (not established) flow in the full bucket of established ones: untracked.
    parsePacket(udp4("a000002", "a000064", "1388", "0099"), 28, LINK_RAW_IP);
    loadKey(false);
    expect(flowInsert(<u64>99 << 33, 1, 0, 1, 0)).toBe(0);
    // An established one may evict the least recently seen established flow.
    expect(flowInsert(<u64>99 << 33, 1, 0, 1, STATE_ESTABLISHED)).not.toBe(0);
    expect(lastInsertEvicted).toBe(true);
    // Lookups: found while fresh, gone once idle past the timeout.
    parsePacket(udp4("a000001", "a000064", "1388", "0015"), 28, LINK_RAW_IP); // i = 5
    loadKey(false);
    const e = flowLookup(<u64>5 << 33, 500);
    expect(e).not.toBe(0);
    expect(entryBackend(e)).toBe(5);
    expect(flowLookup(<u64>5 << 33, 1001)).toBe(0);
    // An expired slot is reused without eviction.
    parsePacket(udp4("a000003", "a000064", "1388", "0077"), 28, LINK_RAW_IP);
    loadKey(false);
    expect(flowInsert(<u64>77 << 33, 5000, 0, 3, 0)).not.toBe(0);
    expect(lastInsertEvicted).toBe(false);
    flowsFree();
  });
});
