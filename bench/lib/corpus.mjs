// The benchmark corpus: configurations, packets and descriptor streams, written once per
// run to files so that every engine (V8, wasmtime, the wasm2c native build, the TypeScript
// port, the idiomatic Node version) processes byte-identical packets in the same order.
//
// A case is (address family, live flows). Its files, in build/bench/work/<case>/:
//
//   config.json   one next-hop HA-ports rule (floatingIp: true, symmetric) over 8 backends
//   pop.bin       F packets of L bytes: one TCP ACK per live flow (populates the table)
//   arena.bin     (C + R) packets of L bytes, written at the arena start before timing:
//                 C "timed" flows (every (F/C)-th population flow) then R new-flow slots
//   hit.desc      C descriptors (u32 offset, u32 length): the hit stream, cycled
//   mix.desc      PERIOD descriptors: the same, except that every 10th packet is a TCP SYN
//                 of a flow never seen (slot ((s / 10) mod R) of the new-flow block)
//   case.txt      the numbers below as `key value` lines (read by the C and Python drivers);
//                 `pop_now` is the clock of the population batches, `now` of all others
//
// New flows stay new: every MUT_EVERY (= 10 R) stream positions, before the batch that
// starts there, the host writes a fresh generation into the source address of all R
// slots: the u32 at arena offset (C + r) L + MUT_OFF becomes newSource(gen, r) =
// (0x8000 | gen mod 2^15) << 16 | r, gen counting up from 0 per stream. Each slot is
// used exactly once between two such writes; a source repeats only after 2^15
// generations (16.7 M new flows), long after its entry has been evicted. The write
// costs the host R stores per 10 R packets (0.1 store per packet) in every driver.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const NEW_SLOTS = 512;                 // R
export const NEW_EVERY = 10;                  // one packet in 10 of the mix is a new flow
export const MUT_EVERY = NEW_SLOTS * NEW_EVERY; // 5120 stream positions between rewrites
/** The source address (low 4 bytes, little-endian u32) of new-flow slot r in generation gen. */
export function newSource(gen, r) { return (((0x8000 | (gen & 0x7fff)) << 16) | r) >>> 0; }
export const TIMED_MAX = 131072;              // C = min(F, TIMED_MAX) timed flows
export const CHUNK = 131072;                  // population packets per arena fill
export const NOW_MS = 1000;                   // the clock (ms) passed with every batch after the population
// The population runs 1 s earlier: each flow's first packet (an ACK, as after a restart)
// tracks it unverified, and its first timed packet, a second later, establishes it
// (assembly/flows.ts, admission), so that the timed hits are hits on established flows.
export const POP_NOW_MS = 0;
export const INGRESS = 0;                     // frontend index: next-hop use of `fe`
export const LINK = 0;                        // raw IP
export const BACKENDS = 8;
export const HASH_SEED = '0x1f2e3d4c5b6a7988';

/** Deterministic pseudo-random numbers (xorshift32). */
export function rng(seed = 0x9e3779b9) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
}

/** A case's configuration: one next-hop HA-ports rule over `backends` NVAs. */
export function benchConfig({ family, capacity, backends = BACKENDS, m = 65537, floatingIp = true }) {
  const addr = (i) => (family === 4
    ? `10.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`
    : `fd00:1::${(i + 1).toString(16)}`);
  return {
    hashSeed: HASH_SEED,
    flowTable: { capacity },
    frontends: [{ name: 'fe', address: family === 4 ? '10.0.0.100' : 'fd00::100' }],
    backendPools: [{
      name: 'nvas',
      maglevTableSize: m,
      backends: Array.from({ length: backends }, (_, i) => ({ name: `nva-${i}`, address: addr(i) })),
    }],
    rules: [{
      name: 'ha', frontend: 'fe', backendPool: 'nvas', protocol: 'all', frontendPort: 0,
      backendPort: 0, floatingIp,
    }],
  };
}

/** Writes one TCP packet (IPv4: 40 B, IPv6: 60 B) at `out[o]`. */
function writeTcp(out, o, family, src, dst, sport, dport, flags) {
  const l4 = family === 4 ? o + 20 : o + 40;
  if (family === 4) {
    out[o] = 0x45; out[o + 2] = 0; out[o + 3] = 40; out[o + 8] = 64; out[o + 9] = 6;
    out.set(src, o + 12); out.set(dst, o + 16);
  } else {
    out[o] = 0x60; out[o + 4] = 0; out[o + 5] = 20; out[o + 6] = 6; out[o + 7] = 64;
    out.set(src, o + 8); out.set(dst, o + 24);
  }
  out[l4] = sport >> 8; out[l4 + 1] = sport & 255; out[l4 + 2] = dport >> 8; out[l4 + 3] = dport & 255;
  out[l4 + 12] = 5 << 4; out[l4 + 13] = flags; out[l4 + 14] = 0xff; out[l4 + 15] = 0xff;
}

const PORTS = [443, 80, 22, 53, 3389, 8080, 8443, 5432];

/**
 * Builds a case in memory: population packets, arena image, descriptor streams.
 * Every flow is distinct: the source address is a bijection of the flow index.
 */
export function buildCase(family, flows) {
  const L = family === 4 ? 40 : 60;
  const F = flows;
  const C = Math.min(F, TIMED_MAX);
  const R = NEW_SLOTS;
  const next = rng(0x5eed0000 + family * 7919 + Math.log2(F));
  const pop = new Uint8Array(F * L);
  const src = new Uint8Array(family === 4 ? 4 : 16);
  const dst = new Uint8Array(family === 4 ? 4 : 16);
  for (let i = 0; i < F; i++) {
    const u = (Math.imul(i, 0x9e3779b1) + 0x01234567) >>> 0; // bijection: distinct sources
    if (family === 4) {
      src[0] = u >>> 24; src[1] = u >>> 16; src[2] = u >>> 8; src[3] = u;
      const d = next();
      dst[0] = 10; dst[1] = 64 | (d >>> 26); dst[2] = d >>> 8; dst[3] = d;
    } else {
      src[0] = 0x20; src[1] = 0x01; src[2] = 0x0d; src[3] = 0xb8;
      for (let k = 4; k < 12; k++) src[k] = next() & 255;
      src[12] = u >>> 24; src[13] = u >>> 16; src[14] = u >>> 8; src[15] = u;
      dst[0] = 0xfd; dst[1] = 0x10;
      for (let k = 2; k < 16; k++) dst[k] = next() & 255;
    }
    const r = next();
    const sport = 1024 + (r % 64000);
    const dport = (r >>> 24) < 200 ? PORTS[(r >>> 16) & 7] : 1024 + ((r >>> 8) % 60000);
    writeTcp(pop, i * L, family, src, dst, sport, dport, 0x10 /* ACK */);
  }
  const stride = F / C;
  const arena = new Uint8Array((C + R) * L);
  for (let j = 0; j < C; j++) arena.set(pop.subarray(j * stride * L, (j * stride + 1) * L), j * L);
  for (let r = 0; r < R; r++) {
    src.fill(0);
    dst.fill(0);
    if (family === 4) { dst.set([10, 99, 0, 1]); } else { src.set([0x20, 0x01, 0x0d, 0xb8, 0, 0x99]); dst.set([0xfd, 0x10, 0, 0x99]); dst[15] = 1; }
    writeTcp(arena, (C + r) * L, family, src, dst, 40000 + r, 443, 0x02 /* SYN */);
  }
  const mutOff = family === 4 ? 12 : 20; // the source address's low 4 bytes
  const hit = new Uint32Array(C * 2);
  for (let s = 0; s < C; s++) { hit[2 * s] = s * L; hit[2 * s + 1] = L; }
  const period = lcm(C, MUT_EVERY);
  const mix = new Uint32Array(period * 2);
  for (let s = 0; s < period; s++) {
    const slot = s % NEW_EVERY === NEW_EVERY - 1 ? C + (Math.floor(s / NEW_EVERY) % R) : s % C;
    mix[2 * s] = slot * L; mix[2 * s + 1] = L;
  }
  // Population descriptors: one chunk's worth (packets i of a chunk at i L).
  const popDesc = new Uint32Array(Math.min(F, CHUNK) * 2);
  for (let i = 0; i < popDesc.length / 2; i++) { popDesc[2 * i] = i * L; popDesc[2 * i + 1] = L; }
  return {
    name: `v${family}-${label(F)}`, family, flows: F, L, C, R, stride, period, mutOff,
    capacity: flowCapacity(F),
    pop, arena, hit, mix, popDesc,
  };
}

/** Flow-table capacity for F live flows: 4 F (25% load, so that ~all of them fit their 8-way bucket). */
export function flowCapacity(F) { return 4 * F; }

export function label(n) {
  return n >= 1 << 20 && n % (1 << 20) === 0 ? `${n >> 20}M` : n >= 1024 && n % 1024 === 0 ? `${n >> 10}K` : `${n}`;
}

function gcd(a, b) { while (b) [a, b] = [b, a % b]; return a; }
function lcm(a, b) { return (a / gcd(a, b)) * b; }

/** Writes a case's files under `dir` and returns their paths. */
export function writeCase(dir, c, checkPackets) {
  mkdirSync(dir, { recursive: true });
  const config = benchConfig({ family: c.family, capacity: c.capacity });
  const files = {
    config: join(dir, 'config.json'), pop: join(dir, 'pop.bin'), arena: join(dir, 'arena.bin'),
    hit: join(dir, 'hit.desc'), mix: join(dir, 'mix.desc'), popDesc: join(dir, 'pop.desc'), spec: join(dir, 'case.txt'),
  };
  writeFileSync(files.config, JSON.stringify(config));
  writeFileSync(files.pop, c.pop);
  writeFileSync(files.arena, c.arena);
  writeFileSync(files.hit, new Uint8Array(c.hit.buffer));
  writeFileSync(files.mix, new Uint8Array(c.mix.buffer));
  writeFileSync(files.popDesc, new Uint8Array(c.popDesc.buffer));
  const spec = {
    L: c.L, F: c.flows, C: c.C, R: c.R, period: c.period, mut_off: c.mutOff, mut_every: MUT_EVERY,
    chunk: CHUNK, now: NOW_MS, pop_now: POP_NOW_MS, ingress: INGRESS, link: LINK, check: checkPackets,
  };
  writeFileSync(files.spec, Object.entries(spec).map(([k, v]) => `${k} ${v}`).join('\n') + '\n');
  return { ...files, config: files.config, configObject: config, spec };
}

/** Reads a case written by writeCase (the JS engines read the same bytes as the drivers). */
export function readCase(dir) {
  const spec = Object.fromEntries(readFileSync(join(dir, 'case.txt'), 'utf8').trim().split('\n')
    .map((l) => l.split(' ')).map(([k, v]) => [k, Number(v)]));
  const u32 = (f) => { const b = readFileSync(join(dir, f)); const a = new Uint8Array(b.byteLength); a.set(b); return new Uint32Array(a.buffer); };
  const u8 = (f) => { const b = readFileSync(join(dir, f)); return new Uint8Array(b.buffer, b.byteOffset, b.byteLength); };
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  return {
    dir, config, L: spec.L, flows: spec.F, C: spec.C, R: spec.R, period: spec.period, mutOff: spec.mut_off,
    check: spec.check, family: spec.L === 40 ? 4 : 6,
    pop: u8('pop.bin'), arena: u8('arena.bin'), hit: u32('hit.desc'), mix: u32('mix.desc'), popDesc: u32('pop.desc'),
  };
}
