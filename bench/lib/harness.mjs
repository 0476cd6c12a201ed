// Timing: warm up until per-iteration time is stable, then take interleaved samples.
//
// An iteration processes a fixed number of packets and is timed as a whole
// (process.hrtime.bigint around it). Warm-up runs iterations until the last WINDOW of
// them have a median within TOL of the WINDOW before (isStable), after at least
// MIN_WARM, at most MAX_WARM.
// That is how V8 is taken past its baseline tier: V8 first runs wasm with Liftoff and
// tiers a function up to TurboFan after it has run enough, compiling in the background;
// the per-iteration time drops and then stays flat, and only then do samples start.
// The first warm-up iteration is recorded too, so the report shows the baseline-tier
// cost it skipped. Variants (batch sizes) are sampled interleaved, ABCABC…, so that
// drift (a filling flow table, a noisy neighbour) spreads over all of them.
// The C and Python drivers apply the same rule.

export const MODES = {
  quick: { iterPackets: 16384, reps: 5, minWarm: 4, maxWarm: 30, window: 2, tol: 0.05, slowIterPackets: 8192 },
  default: { iterPackets: 131072, reps: 21, minWarm: 10, maxWarm: 60, window: 5, tol: 0.03, slowIterPackets: 65536 },
  full: { iterPackets: 262144, reps: 41, minWarm: 15, maxWarm: 100, window: 6, tol: 0.02, slowIterPackets: 131072 },
};

const now = () => process.hrtime.bigint();

function quantile(sorted, q) {
  const i = (sorted.length - 1) * q;
  const lo = Math.floor(i);
  const hi = Math.ceil(i);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (i - lo);
}

export function summarize(samples) {
  const s = [...samples].sort((a, b) => a - b);
  return { median: quantile(s, 0.5), p25: quantile(s, 0.25), p75: quantile(s, 0.75), min: s[0], max: s[s.length - 1], n: s.length };
}

/**
 * Stable: the median of the last WINDOW iterations is within TOL of the median of the
 * WINDOW before them (the tier-up step, and any other trend, has ended; single noisy
 * iterations do not count).
 */
export function isStable(times, mode) {
  const n = times.length;
  const med = (a) => summarize(a).median;
  const last = med(times.slice(n - mode.window));
  const prev = med(times.slice(n - 2 * mode.window, n - mode.window));
  return Math.abs(last - prev) / prev <= mode.tol;
}

/**
 * Times `fn()` (one iteration of `packets` packets). Returns ns per packet of process CPU
 * time (user + system, all threads) and of wall-clock time. CPU time is the primary
 * measure: this machine has 2 cores that other sessions share, and a descheduled
 * process keeps its wall clock running but not its CPU clock.
 */
export function timeIter(fn, packets) {
  const c0 = process.cpuUsage();
  const t0 = now();
  fn();
  const t1 = now();
  const c = process.cpuUsage(c0);
  return { cpu: ((c.user + c.system) * 1000) / packets, wall: Number(t1 - t0) / packets };
}

/** Runs iterations of `run` until isStable (or maxWarm). */
export function warmUp(run, packets, mode) {
  const times = [];
  let stable = false;
  for (let i = 0; i < mode.maxWarm; i++) {
    times.push(timeIter(run, packets).cpu);
    if (times.length >= Math.max(mode.minWarm, 2 * mode.window) && isStable(times, mode)) { stable = true; break; }
  }
  return { warmIters: times.length, stable, firstIterNs: times[0], warmLastNs: times[times.length - 1] };
}

/**
 * Warms each variant, then samples them interleaved.
 * variants: [{ key, packets, run: () => void }]. Returns { key: { median, p25, p75, min,
 * max, n, wallMedian, warmIters, stable, firstIterNs, warmLastNs, samples } } in ns per
 * packet (CPU time; wallMedian is wall-clock).
 */
export function measure(variants, mode, onWarm = () => {}) {
  const out = {};
  for (const v of variants) {
    out[v.key] = { ...warmUp(v.run, v.packets, mode), samples: [], wall: [] };
    onWarm(v.key, out[v.key]);
  }
  for (let r = 0; r < mode.reps; r++) {
    for (const v of variants) {
      const t = timeIter(v.run, v.packets);
      out[v.key].samples.push(t.cpu);
      out[v.key].wall.push(t.wall);
    }
  }
  for (const v of variants) finish(out[v.key]);
  return out;
}

/** Adds the summary of `samples` (CPU) and `wall` to a result record (also for drivers). */
export function finish(r) {
  Object.assign(r, summarize(r.samples));
  if (r.wall && r.wall.length) r.wallMedian = summarize(r.wall).median;
  return r;
}
