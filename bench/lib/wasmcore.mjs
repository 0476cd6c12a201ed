// The core's raw exports in V8, without the Node binding (the benchmark drives the ABI
// directly, as any host would: configure, write descriptors, processBatch).

import { readFileSync } from 'node:fs';

let compiled = null;

export function loadModule(path) {
  if (!compiled || compiled.path !== path) compiled = { path, module: new WebAssembly.Module(readFileSync(path)) };
  return compiled.module;
}

export function instantiate(path) {
  const instance = new WebAssembly.Instance(loadModule(path), {
    env: { abort() { throw new Error('haports core aborted'); } },
  });
  return instance.exports;
}

/** Applies a configuration; throws with the core's error lines when rejected. */
export function configure(ex, config) {
  const bytes = new TextEncoder().encode(typeof config === 'string' ? config : JSON.stringify(config));
  new Uint8Array(ex.memory.buffer).set(bytes, ex.configBufferPtr());
  const n = ex.configure(bytes.length);
  if (n !== 0) {
    const at = ex.errorBufferPtr();
    const text = new TextDecoder().decode(new Uint8Array(ex.memory.buffer, at, ex.errorLength()));
    throw new Error(`configuration rejected (${n}):\n${text}`);
  }
}

// Counter slots 0..15 of assembly/layout.ts (C_*).
export const C = { packets: 0, bytes: 1, forwarded: 2, dropped: 3, nomatch: 4, flowHits: 5, flowNew: 6, untracked: 7, evictions: 8 };

export function counters(ex) {
  const v = new BigUint64Array(ex.memory.buffer, ex.countersPtr(), 16);
  const out = {};
  for (const [k, i] of Object.entries(C)) out[k] = Number(v[i]);
  return out;
}

/** The engine interface of stream.mjs over the core's exports. */
export function coreEngine(ex, ingress, link, now) {
  const pb = ex.processBatch;
  return {
    memory: () => ex.memory.buffer,
    arenaPtr: ex.rxArenaPtr(),
    descriptorsPtr: ex.descriptorsPtr(),
    verdictsPtr: ex.verdictsPtr(),
    tuplesPtr: ex.tuplesPtr(),
    process: (n, at = now) => pb(n, at, ingress, link),
  };
}
