// Hash collisions without the key (issue 10): the flow hash is SipHash-1-3 under a secret
// 128-bit key, so packets built to collide with a chosen flow do no better than random
// ones. The attack here is the one that worked on the unkeyed MurmurHash3-style mix the
// core used before: its per-word step m(h, w) = rotl(h ^ K(w), 27) · 5 + c, with K an
// invertible, public function of the word, lets a difference in one address word be
// cancelled by a difference in the next, for every seed (exactly, or with a probability
// the attacker can compute offline). The test first proves that the packets it builds
// really collide under that old mix, then that under the core they collide no more
// often than random packets.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Core, FLAGS } from '../../build/host/core.mjs';
import { addressBytes, packet, rng, randomV6 } from '../lib/packets.mjs';

const M64 = (1n << 64n) - 1n;
const C1 = 0x87c37b91114253d5n;
const C2 = 0x4cf5ad432745937fn;
const rotl = (x, r) => ((x << BigInt(r)) | (x >> BigInt(64 - r))) & M64;
const rotr = (x, r) => rotl(x, 64 - r);
/** The multiplicative inverse of an odd a modulo 2^64 (Newton's iteration). */
function inverse(a) {
  let x = a;
  for (let i = 0; i < 6; i++) x = (x * (2n - a * x)) & M64;
  return x;
}
const C1_INV = inverse(C1);
const C2_INV = inverse(C2);

// ---- The old mix, as the attacker knows it (assembly/hash.ts before issue 10) ----
const K = (w) => (rotl((w * C1) & M64, 31) * C2) & M64;
const Kinv = (k) => (rotr((k * C2_INV) & M64, 31) * C1_INV) & M64;
const mix = (h, w) => ((rotl(h ^ K(w), 27) * 5n) + 0x52dce729n) & M64;
function fmix64(h) {
  h ^= h >> 33n; h = (h * 0xff51afd7ed558ccdn) & M64;
  h ^= h >> 33n; h = (h * 0xc4ceb9fe1a85ec53n) & M64;
  h ^= h >> 33n;
  return h;
}
function oldHash(seed, words) {
  let h = seed ^ 40n;
  for (const w of words) h = mix(h, w);
  return fmix64(h);
}

// ---- IPv6 addresses as key words (little-endian u64 of bytes 0–7 and 8–15) ----
const wordOf = (bytes, at) => bytes.slice(at, at + 8).reduceRight((w, b) => (w << 8n) | BigInt(b), 0n);
const wordsOf = (text) => { const b = addressBytes(text); return [wordOf(b, 0), wordOf(b, 8)]; };
function addressOf(w0, w1) {
  const bytes = [];
  for (const w of [w0, w1]) for (let i = 0n; i < 8n; i++) bytes.push(Number((w >> (8n * i)) & 0xffn));
  const groups = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  return groups.join(':');
}

/**
 * 64 sources built to collide with `victim` under the old mix without knowing the seed:
 * a difference δ in the first word's K that the rotation puts at bit j comes out of
 * `· 5` as a few likely differences Δ (bit 63: always exactly itself); the second word
 * is chosen so that K(w1') = K(w1) ^ Δ cancels it. Pairs (j, Δ) are ranked by the
 * probability of Δ, estimated offline over random states (the attacker's own work).
 */
function collidingSources(victim) {
  const [w0, w1] = wordsOf(victim);
  const next = rng(0xa77ac);
  const rand64 = () => (BigInt(next()) << 32n) | BigInt(next());
  const candidates = [];
  for (let j = 0; j < 64; j++) {
    const d = rotr(1n << BigInt(j), 27);
    const w0x = Kinv(K(w0) ^ d);
    const counts = new Map();
    for (let s = 0; s < 256; s++) {
      const h = rand64();
      const delta = mix(h, w0x) ^ mix(h, w0);
      counts.set(delta, (counts.get(delta) ?? 0) + 1);
    }
    for (const [delta, n] of counts) candidates.push({ p: n / 256, src: addressOf(w0x, Kinv(K(w1) ^ delta)) });
  }
  candidates.sort((a, b) => b.p - a.p);
  return candidates.slice(0, 64).map((c) => c.src);
}

// The destination sorts after every source (its first word is all ones), so the
// symmetric key keeps the source first for the victim and the attack alike.
const DST = 'ffff:ffff:ffff:ffff::1';
const SPORT = 40000, DPORT = 443;
const keyWords = (src) => [...wordsOf(src), ...wordsOf(DST), BigInt(SPORT) | (BigInt(DPORT) << 16n) | (6n << 32n) | (6n << 40n)];

const config = (hashKey) => ({
  hashKey,
  flowTable: { capacity: 4096 },
  frontends: [{ name: 'hub', address: 'fd00::100' }],
  backendPools: [{ name: 'nvas', backends: [0, 1, 2, 3].map((i) => ({ name: `nva-${i}`, address: `fd00:1::${4 + i}` })) }],
  rules: [{ name: 'ha', frontend: 'hub', backendPool: 'nvas', protocol: 'all', frontendPort: 0, backendPort: 0, floatingIp: true }],
});

function randomKey(next) {
  return `0x${Array.from({ length: 4 }, () => next().toString(16).padStart(8, '0')).join('')}`;
}

/** Runs packets (next hop of frontend 0) at `now`; returns the verdicts. */
function run(core, packets, now) {
  core.load(packets);
  core.process(packets.length, now, 0);
  return packets.map((_, i) => core.verdict(i));
}
const tcp = (src, tcpFlags) => packet({ src, dst: DST, proto: 6, sport: SPORT, dport: DPORT, tcpFlags });

test('the IPv6 pair that collided under every seed of the old mix gets different hashes under 100 random keys', () => {
  const a = '2001:db8:3238:d850:f5d0:b0ab:8401:49c9';
  const b = '80a1:ada:d6ab:2d19:f5d0:b0ab:14f:174c';
  // The old mix: equal 64-bit hashes, whatever the seed (the pair is the exact
  // differential above: bit 36 of K(w0) against bit 63 of K(w1)).
  const seeds = rng(0x5eed);
  for (let i = 0; i < 20; i++) {
    const seed = (BigInt(seeds()) << 32n) | BigInt(seeds());
    const wa = [...wordsOf(a), 0n, 0n, 0n];
    const wb = [...wordsOf(b), 0n, 0n, 0n];
    assert.equal(oldHash(seed, wa), oldHash(seed, wb), 'the pair is not the old collision: the test proves nothing');
  }
  const next = rng(0xc011);
  let same = 0;
  for (let i = 0; i < 100; i++) {
    const core = Core.load();
    core.configure(config(randomKey(next)));
    const [va, vb] = run(core, [tcp(a, 0x02), tcp(b, 0x02)], 1000);
    assert.equal(va.action, 'forward');
    if (va.hash === vb.hash) same++;
  }
  assert.equal(same, 0, `${same} of 100 keys gave the pair the same hash`);
});

test('64 packets built from old-mix collisions hit a chosen flow no more often than 64 random packets (20 keys)', (t) => {
  const next = rng(0x7a46e7);
  const victims = Array.from({ length: 20 }, () => `2001:db8:${randomV6(next).split(':').slice(2).join(':')}`);
  // The attack is real: under the old mix, for random seeds, many of the 64 sources
  // collide with their victim exactly.
  let oldCollisions = 0;
  const families = victims.map((v) => collidingSources(v));
  victims.forEach((victim, t) => {
    const seed = (BigInt(next()) << 32n) | BigInt(next());
    const target = oldHash(seed, keyWords(victim));
    oldCollisions += families[t].filter((src) => oldHash(seed, keyWords(src)) === target).length;
  });
  assert.ok(oldCollisions >= 20 * 16, `the attack is weak against the old mix (${oldCollisions} collisions in 20 × 64): the test proves nothing`);

  let attackMatches = 0, randomMatches = 0, attackEvicted = 0, randomEvicted = 0;
  victims.forEach((victim, t) => {
    const key = randomKey(next);
    for (const [sources, isAttack] of [[families[t], true], [Array.from({ length: 64 }, () => randomV6(next)), false]]) {
      const core = Core.load();
      core.configure(config(key));
      const [syn] = run(core, [tcp(victim, 0x02)], 1000);
      run(core, [tcp(victim, 0x10)], 1001);
      // The strongest spoofer: every attack flow completes SYN then ACK.
      const flood = run(core, sources.map((s) => tcp(s, 0x02)), 2000);
      run(core, sources.map((s) => tcp(s, 0x10)), 2001);
      const matches = flood.filter((v) => v.hash === syn.hash).length;
      const [after] = run(core, [tcp(victim, 0x18)], 3000);
      const evicted = !(after.flags & FLAGS.flowHit) ? 1 : 0;
      if (isAttack) { attackMatches += matches; attackEvicted += evicted; } else { randomMatches += matches; randomEvicted += evicted; }
    }
  });
  t.diagnostic(`old mix: ${oldCollisions} of 1280 attack sources collided with their victim; core: attack ${attackMatches}, random ${randomMatches} hash matches; victim evicted by attack ${attackEvicted}, by random ${randomEvicted} of 20`);
  assert.ok(attackMatches <= randomMatches, `attack packets matched the victim's hash ${attackMatches} times, random ones ${randomMatches}`);
  assert.ok(attackEvicted <= randomEvicted, `the attack evicted the victim in ${attackEvicted} of 20 trials, random packets in ${randomEvicted}`);
});
