// The host side of a benchmark run, for engines whose state lives in one linear memory
// laid out like the core's (the core in V8, and the TypeScript port, which mirrors it):
// populate the flow table, run the check phase, then feed the timed streams.
//
// `eng` gives: memory() → ArrayBuffer (current), arenaPtr, descriptorsPtr, verdictsPtr,
// tuplesPtr (byte offsets) and process(count, now = NOW_MS) → forwarded.
// See corpus.mjs for the streams and the new-flow rewrite.

import { crc32 } from 'node:zlib';
import { CHUNK, MUT_EVERY, newSource, POP_NOW_MS } from './corpus.mjs';

const VERDICT_BYTES = 16;
const TUPLE_BYTES = 40;

export function makeHost(eng, c) {
  let u8 = new Uint8Array(eng.memory());
  let u32 = new Uint32Array(eng.memory());
  const refresh = () => {
    if (u8.buffer !== eng.memory()) { u8 = new Uint8Array(eng.memory()); u32 = new Uint32Array(eng.memory()); }
  };
  const dIdx = eng.descriptorsPtr >>> 2;
  const arena = eng.arenaPtr;
  const processBatch = eng.process;

  /** Populates the table: every population packet once, in batches of 1024. Returns the
   *  verdict CRC, and the verdict (and tuple) bytes when `keep`. */
  function populate(crc, keep) {
    refresh();
    const F = c.flows;
    const L = c.L;
    const verdicts = keep ? new Uint8Array(F * VERDICT_BYTES) : null;
    for (let s = 0; s < F; s += CHUNK) {
      const n = Math.min(CHUNK, F - s);
      u8.set(c.pop.subarray(s * L, (s + n) * L), arena);
      for (let b = 0; b < n; b += 1024) {
        const cnt = Math.min(1024, n - b);
        u32.set(c.popDesc.subarray(2 * b, 2 * (b + cnt)), dIdx);
        processBatch(cnt, POP_NOW_MS);
        const v = u8.subarray(eng.verdictsPtr, eng.verdictsPtr + cnt * VERDICT_BYTES);
        crc = crc32(v, crc);
        if (keep) verdicts.set(v, (s + b) * VERDICT_BYTES);
      }
    }
    u8.set(c.arena, arena);
    return { crc, verdicts };
  }

  const streams = {
    hit: { desc: c.hit, period: c.C, pos: 0, gen: 0, mix: false, views: new Map() },
    mix: { desc: c.mix, period: c.period, pos: 0, gen: 0, mix: true, views: new Map() },
  };

  /** Rewrites the source address of every new-flow slot (a fresh generation). */
  function mutate(st) {
    const first = (arena + c.C * c.L + c.mutOff) >>> 2;
    const step = c.L >>> 2;
    for (let r = 0; r < c.R; r++) u32[first + r * step] = newSource(st.gen, r);
    st.gen++;
  }

  function viewsFor(st, B) {
    let v = st.views.get(B);
    if (!v) {
      v = [];
      for (let p = 0; p < st.period; p += B) v.push(st.desc.subarray(2 * p, 2 * (p + B)));
      st.views.set(B, v);
    }
    return v;
  }

  /** Runs `packets` packets of stream `name` in batches of B (B divides the period). */
  function run(name, B, packets) {
    refresh();
    const st = streams[name];
    const desc = st.desc;
    const views = B > 1 ? viewsFor(st, B) : null;
    const period = st.period;
    const mix = st.mix;
    let pos = st.pos;
    for (let done = 0; done < packets; done += B) {
      if (mix && pos % MUT_EVERY === 0) mutate(st);
      if (B === 1) {
        u32[dIdx] = desc[2 * pos];
        u32[dIdx + 1] = desc[2 * pos + 1];
      } else {
        u32.set(views[pos / B], dIdx);
      }
      processBatch(B);
      pos += B;
      if (pos === period) pos = 0;
    }
    st.pos = pos;
  }

  /** The check phase: `packets` of the mix stream in batches of 1024, from its start. */
  function check(crc, packets, keep) {
    refresh();
    const st = streams.mix;
    const verdicts = keep ? new Uint8Array(packets * VERDICT_BYTES) : null;
    const tuples = keep ? new Uint8Array(packets * TUPLE_BYTES) : null;
    for (let done = 0; done < packets; done += 1024) {
      run('mix', 1024, 1024);
      const v = u8.subarray(eng.verdictsPtr, eng.verdictsPtr + 1024 * VERDICT_BYTES);
      crc = crc32(v, crc);
      if (keep) {
        verdicts.set(v, done * VERDICT_BYTES);
        tuples.set(u8.subarray(eng.tuplesPtr, eng.tuplesPtr + 1024 * TUPLE_BYTES), done * TUPLE_BYTES);
      }
    }
    return { crc, verdicts, tuples };
  }

  return { populate, run, check, streams };
}
