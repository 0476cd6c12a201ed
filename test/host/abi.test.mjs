// The module keeps the interface abi/haports.abi.json describes: the functions it exports
// (names and argument counts), the globals, and the sizes the hosts take from the generated
// files (host/lib/abi.ts) rather than from the module.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const abi = JSON.parse(readFileSync(join(root, 'abi', 'haports.abi.json'), 'utf8'));
const bytes = readFileSync(join(root, 'build', 'haports.wasm'));
const module = new WebAssembly.Module(bytes);
const { exports } = new WebAssembly.Instance(module, { env: { abort() { throw new Error('abort'); } } });

/** The argument names of a signature such as `processBatch(count, nowMs, …) → forwarded`. */
function argsOf(signature) {
  const m = /^(\w+)\(([^)]*)\)/.exec(signature);
  assert.ok(m, `signature ${signature} is not name(args) → result`);
  return m[2].trim() === '' ? [] : m[2].split(',');
}

test('every export of build/haports.wasm is described, and every described export exists', () => {
  const kinds = Object.fromEntries(WebAssembly.Module.exports(module).map((e) => [e.name, e.kind]));
  const described = new Map(abi.exports.map((e) => [e.name, e]));
  const functions = Object.keys(kinds).filter((n) => kinds[n] === 'function');
  assert.deepEqual(functions.filter((n) => !described.has(n)), [], 'exported but not in abi/haports.abi.json');
  assert.deepEqual([...described.keys()].filter((n) => kinds[n] !== 'function'), [], 'described but not exported');
  for (const [name, e] of described) {
    assert.equal(exports[name].length, argsOf(e.signature).length, `${name}: argument count of ${e.signature}`);
  }
  const globals = Object.keys(kinds).filter((n) => kinds[n] === 'global');
  assert.deepEqual(globals.sort(), [...abi.globals.names].sort());
  assert.equal(kinds.memory, 'memory');
});

test('the exported globals hold the codes the description gives them', () => {
  const codes = new Map([...abi.actions, ...abi.linkTypes, abi.none].map((c) => [c.const, c.value]));
  for (const name of abi.globals.names) assert.equal(exports[name].value, codes.get(name), name);
});

test('sizes the hosts take from the description match the module', async () => {
  const lib = await import(join(root, 'build', 'host', 'abi.mjs'));
  assert.equal(exports.counterSlots(), lib.COUNTER_SLOTS);
  assert.equal(exports.maxBatch(), lib.LIMITS.MAX_BATCH);
  assert.equal(exports.rxArenaSize(), lib.LIMITS.RX_ARENA_BYTES);
  assert.equal(exports.configBufferSize(), lib.LIMITS.CONFIG_BUFFER_BYTES);
  assert.equal(lib.COUNTERS.length <= lib.C_DROP_REASON_BASE, true);
  assert.equal(lib.COUNTER_SLOTS - lib.C_DROP_REASON_BASE, lib.REASONS.length);
});
