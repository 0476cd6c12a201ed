// Interleaved sampling across engine processes. Each engine (a V8 worker, the C driver,
// the Python driver) sets up, warms up and then waits on stdin; the coordinator asks
// them for one timed iteration at a time, round-robin, so that a slow spell of this
// shared machine lands on every engine alike instead of on whichever ran during it.
// Only one engine runs at a time; the others are blocked reading stdin.
//
// Protocol (one line each way): `READY {json}` after setup; `RUN <variant> <packets>
// <rewarm>` → `{"cpu":ns/pkt,"wall":ns/pkt}`; `END` → `END {json}`.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { finish } from './harness.mjs';

export class EngineProc {
  constructor(name, cmd, args, { verbose = false } = {}) {
    this.name = name;
    this.child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.stderr = '';
    this.child.stderr.on('data', (d) => {
      this.stderr += d;
      if (verbose) process.stderr.write(d);
    });
    this.queue = [];
    this.waiters = [];
    this.closed = false;
    this.exit = new Promise((resolve) => this.child.on('close', (code) => { this.closed = true; this.flush(); resolve(code); }));
    this.child.on('error', (e) => { this.stderr += String(e); });
    this.child.stdin.on('error', () => {});
    createInterface({ input: this.child.stdout }).on('line', (line) => { this.queue.push(line); this.flush(); });
  }

  flush() {
    while (this.waiters.length && (this.queue.length || this.closed)) {
      const w = this.waiters.shift();
      if (this.queue.length) w.resolve(this.queue.shift());
      else w.reject(new Error(`${this.name} exited: ${this.stderr.trim().split('\n').slice(-4).join(' | ')}`));
    }
  }

  line() {
    return new Promise((resolve, reject) => { this.waiters.push({ resolve, reject }); this.flush(); });
  }

  async ready() {
    for (;;) {
      const l = await this.line();
      if (l.startsWith('READY ')) return JSON.parse(l.slice(6));
    }
  }

  async run(variant, packets, rewarm) {
    this.child.stdin.write(`RUN ${variant} ${packets} ${rewarm}\n`);
    return JSON.parse(await this.line());
  }

  async end() {
    if (this.closed) return {};
    this.child.stdin.write('END\n');
    let info = {};
    try {
      for (;;) {
        const l = await this.line();
        if (l.startsWith('END ')) { info = JSON.parse(l.slice(4)); break; }
      }
    } catch { /* exited */ }
    this.child.stdin.end();
    await this.exit;
    return info;
  }

  kill() { if (!this.closed) this.child.kill(); }
}

/**
 * Samples `engines` ([{ proc, variants, packets, rewarm }]) interleaved: `reps` rounds,
 * each running every variant once on every engine that has it, the engine order rotated
 * every round. Returns per engine { variant: { samples, wall, ...summary } }.
 */
export async function sampleInterleaved(engines, reps, onRep = () => {}) {
  const out = engines.map(() => ({}));
  const variants = [...new Set(engines.flatMap((e) => e.variants))];
  for (let r = 0; r < reps; r++) {
    for (const v of variants) {
      for (let k = 0; k < engines.length; k++) {
        const i = (k + r) % engines.length;
        const e = engines[i];
        if (!e.variants.includes(v)) continue;
        const t = await e.proc.run(v, e.packets, e.rewarm);
        const rec = (out[i][v] ??= { samples: [], wall: [] });
        rec.samples.push(t.cpu);
        rec.wall.push(t.wall);
      }
    }
    onRep(r + 1);
  }
  for (const o of out) for (const rec of Object.values(o)) finish(rec);
  return out;
}
