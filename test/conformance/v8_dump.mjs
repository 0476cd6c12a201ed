// The V8 side of the conformance test: runs a plan (written by test_conformance.py)
// through the Node binding (build/host/core.mjs) and dumps what the core produced.
//
// usage: node test/conformance/v8_dump.mjs PLAN.json PACKETS.bin OUT.bin
//
// PLAN.json: { "wasm": path, "runs": [ { "name", "steps": [step, ...] } ] }, steps:
//   {"op":"configure","config":TEXT}            → i32 0 or the error count, then the errors ('\n'-joined)
//   {"op":"health","backend":B,"up":0|1}        → i32 0, or -1 when the binding refused
//   {"op":"admin","backend":B,"state":"up"|"draining"}   → the same
//   {"op":"batch","ingress":I,"link":L,"now":T,"at":OFF,"lens":[...],"api":bool}
//        packets are PACKETS.bin[OFF...] back to back →
//        i32 forwarded, verdict records, tuple records, descriptors after processing,
//        each packet's bytes after processing, u32 r + r × (u32 i, the 256-byte reset
//        record of packet i) for the reset verdicts; with "api", then u32 n + the JSON
//        of [[verdict(i), tuple(i), resets(i) as hex], ...] as the binding reports them
//   {"op":"maglev"}   → per pool: u32 M, M × u16
//   {"op":"state"}    → u32 slots + the u64 counters; u32 backends + u64 × 3 each;
//                       u32 rules + u64 × 3 each; u32 flowTableUsed; u32 flowTableCapacity;
//                       u32 n + the JSON of core.counters()
// OUT.bin: per step, u32 run, u32 step, u32 length, then that many bytes. Little-endian.
// haports_wasmtime.py's conformance runner produces the same bytes under wasmtime.
import { readFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { Core, ConfigError } from '../../build/host/core.mjs';

const [planPath, blobPath, outPath] = process.argv.slice(2);
if (!outPath) {
  process.stderr.write('usage: node test/conformance/v8_dump.mjs PLAN.json PACKETS.bin OUT.bin\n');
  process.exit(2);
}
const t0 = performance.now();
const plan = JSON.parse(readFileSync(planPath, 'utf8'));
const blob = readFileSync(blobPath);
const module = new WebAssembly.Module(readFileSync(plan.wasm));
const fd = openSync(outPath, 'w');
let pending = [];
let pendingBytes = 0;
const flush = () => {
  if (pending.length) writeSync(fd, Buffer.concat(pending));
  pending = [];
  pendingBytes = 0;
};
const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32LE(n >>> 0); return b; };
const i32 = (n) => { const b = Buffer.alloc(4); b.writeInt32LE(n); return b; };
const emit = (run, step, parts) => {
  const body = Buffer.concat(parts);
  pending.push(u32(run), u32(step), u32(body.length), body);
  pendingBytes += body.length + 12;
  if (pendingBytes > 1 << 22) flush();
};
const mem = (core, ptr, len) => Buffer.from(core.memory.subarray(ptr >>> 0, (ptr >>> 0) + len));
const text = (s) => { const b = Buffer.from(s, 'utf8'); return [u32(b.length), b]; };

plan.runs.forEach((run, r) => {
  const core = new Core(module);
  const x = core.exports;
  run.steps.forEach((s, k) => {
    switch (s.op) {
      case 'configure': {
        try {
          core.configure(s.config);
          emit(r, k, [i32(0)]);
        } catch (e) {
          if (!(e instanceof ConfigError)) throw e;
          emit(r, k, [i32(e.errors.length), Buffer.from(e.errors.join('\n'), 'utf8')]);
        }
        break;
      }
      case 'health':
      case 'admin': {
        try {
          if (s.op === 'health') core.setBackendHealth(s.backend, !!s.up);
          else core.setBackendAdmin(s.backend, s.state);
          emit(r, k, [i32(0)]);
        } catch (e) {
          if (!(e instanceof RangeError)) throw e;
          emit(r, k, [i32(-1)]);
        }
        break;
      }
      case 'batch': {
        const n = s.lens.length;
        const packets = [];
        let off = s.at;
        for (const len of s.lens) { packets.push(blob.subarray(off, off + len)); off += len; }
        core.load(packets);
        const fwd = core.process(n, s.now, s.ingress, s.link);
        const parts = [i32(fwd), mem(core, x.verdictsPtr(), n * 16), mem(core, x.tuplesPtr(), n * 40),
          mem(core, x.descriptorsPtr(), n * 8)];
        for (let i = 0; i < n; i++) parts.push(Buffer.from(core.packet(i)));
        const resets = [];
        for (let i = 0; i < n; i++) {
          if (core.verdict(i).action === 'reset') resets.push(u32(i), mem(core, x.resetsPtr() + i * 256, 256));
        }
        parts.push(u32(resets.length / 2), ...resets);
        if (s.api) {
          const api = [];
          const hex = (r) => r && [Buffer.from(r.toSender).toString('hex'), Buffer.from(r.toBackend).toString('hex')];
          for (let i = 0; i < n; i++) api.push([core.verdict(i), core.tuple(i), hex(core.resets(i))]);
          parts.push(...text(JSON.stringify(api)));
        }
        emit(r, k, parts);
        break;
      }
      case 'maglev': {
        const parts = [];
        for (let p = 0; p < x.poolCount(); p++) {
          const t = core.maglevTable(p);
          parts.push(u32(t.length), Buffer.from(t.buffer, t.byteOffset, t.byteLength));
        }
        emit(r, k, parts);
        break;
      }
      case 'state': {
        const slots = x.counterSlots();
        const nb = x.backendCount();
        const nr = x.ruleCount();
        emit(r, k, [
          u32(slots), mem(core, x.countersPtr(), slots * 8),
          u32(nb), mem(core, x.backendCountersPtr(), nb * 24),
          u32(nr), mem(core, x.ruleCountersPtr(), nr * 24),
          u32(x.flowTableUsed()), u32(x.flowTableCapacity()),
          ...text(JSON.stringify(core.counters())),
        ]);
        break;
      }
      default:
        throw new Error(`run ${run.name} step ${k}: unknown op ${s.op}`);
    }
  });
});
flush();
closeSync(fd);
process.stdout.write(`${((performance.now() - t0) / 1000).toFixed(1)}\n`);
