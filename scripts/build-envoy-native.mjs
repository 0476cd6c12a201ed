// Builds haports as an Envoy dynamic module (envoy/native/README.md):
//
//   build/haports-proxywasm.wasm ─ wasm2c (wabt) ─▶ C ─┐
//   envoy/native/shim.c (the proxy-wasm host) ──────────┼─ gcc ─▶ build/envoy-native/libhaports.so
//   wasm2c's runtime (wasm-rt-impl.c) ──────────────────┘
//
//   node scripts/build-envoy-native.mjs [--wasm FILE] [--out FILE] [--force]
//   npm run build:envoy-native          (after npm run build, which makes the .wasm)
//
// CC picks the compiler (default gcc). The build is skipped when nothing it depends on
// changed (module, shim, header, flags, tool versions: a stamp beside the output);
// --force builds anyway. It fails, saying why, when:
//   - wasm2c, its runtime sources or the compiler are missing (apt-get install wabt gcc);
//   - the module imports a function envoy/native/shim.c does not define (each one named,
//     with the C prototype to write), or the shim calls an export the module lacks;
//   - wasm2c writes another C API than the one the shim is written for (wabt 1.0.32);
//   - the library would export anything but Envoy's hooks, or need a symbol that is
//     neither Envoy's (envoy_dynamic_module_callback_*) nor the C library's.
// The output is written under a temporary name and renamed: a running Envoy keeps the
// file it loaded.

import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const NATIVE = join(ROOT, 'envoy/native');
const SHIM = join(NATIVE, 'shim.c');
const HEADER = join(NATIVE, 'dynamic_modules_abi.h');
const INSTALL = 'apt-get install wabt gcc';
/** The hooks Envoy 1.40 resolves for a network filter: the library exports these and nothing else. */
const HOOKS = [
  'envoy_dynamic_module_on_program_init',
  'envoy_dynamic_module_on_network_filter_config_new',
  'envoy_dynamic_module_on_network_filter_config_destroy',
  'envoy_dynamic_module_on_network_filter_new',
  'envoy_dynamic_module_on_network_filter_new_connection',
  'envoy_dynamic_module_on_network_filter_read',
  'envoy_dynamic_module_on_network_filter_write',
  'envoy_dynamic_module_on_network_filter_event',
  'envoy_dynamic_module_on_network_filter_destroy',
  'envoy_dynamic_module_on_network_filter_config_scheduled', // optional; the shim's ticks
];
/** wasm2c's module name: the generated C is Z_haports_*, Z_haportsZ_<export>. */
const MODULE_NAME = 'haports';
const DEFINES = ['-DWASM_RT_MEMCHECK_SIGNAL_HANDLER=0', '-DNDEBUG'];
const CFLAGS = ['-O2', '-fPIC', '-fvisibility=hidden', ...DEFINES];

const rel = (p) => relative(process.cwd(), p) || '.';

class BuildError extends Error {}
function fail(message) { throw new BuildError(message); }

function parseArgs(argv) {
  const o = { wasm: join(ROOT, 'build/haports-proxywasm.wasm'), out: join(ROOT, 'build/envoy-native/libhaports.so'), force: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--wasm') o.wasm = resolve(argv[++i]);
    else if (a === '--out') o.out = resolve(argv[++i]);
    else if (a === '--force') o.force = true;
    else fail(`unknown argument ${a}\nusage: node scripts/build-envoy-native.mjs [--wasm FILE] [--out FILE] [--force]`);
  }
  return o;
}

function run(cmd, args, what) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) fail(`${what}: ${r.error.message}`);
  if (r.status !== 0) fail(`${what} failed (${cmd} exit ${r.status ?? r.signal}):\n${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** Runs a command without blocking (the three compiles go side by side). */
function runAsync(cmd, args, what) {
  return new Promise((resolvePromise, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => { err += d; });
    p.on('error', (e) => reject(new BuildError(`${what}: ${e.message}`)));
    p.on('exit', (code, signal) => {
      if (code === 0) resolvePromise(err);
      else reject(new BuildError(`${what} failed (${cmd} exit ${code ?? signal}):\n${err.trim()}`));
    });
  });
}

function has(cmd) {
  return spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
}

/** The tools: wasm2c, its runtime sources and header, the compiler, nm. */
function findTools() {
  const cc = process.env.CC || 'gcc';
  const missing = [];
  if (!has('wasm2c')) missing.push('wasm2c (wabt)');
  const runtime = ['/usr/share/wabt/wasm2c', '/usr/local/share/wabt/wasm2c', '/usr/src/wasm2c']
    .find((d) => existsSync(join(d, 'wasm-rt-impl.c')) && existsSync(join(d, 'wasm-rt-impl.h')));
  if (!runtime) missing.push("wasm2c's runtime sources (wasm-rt-impl.c, from wabt, in /usr/share/wabt/wasm2c)");
  const include = [runtime, '/usr/include', '/usr/local/include'].find((d) => d && existsSync(join(d, 'wasm-rt.h')));
  if (!include) missing.push("wasm2c's header wasm-rt.h (wabt)");
  if (!has(cc)) missing.push(`a C compiler (${cc})`);
  if (!has('nm')) missing.push('nm (binutils, installed with gcc)');
  if (missing.length) fail(`missing ${missing.join(', ')}: ${INSTALL}`);
  const version = (cmd) => String(spawnSync(cmd, ['--version'], { encoding: 'utf8' }).stdout).split('\n')[0].trim();
  return { cc, runtime, include, versions: { wasm2c: version('wasm2c'), cc: version(cc) } };
}

/** What the module imports and exports (the imports must all be functions of "env"). */
function readModule(path) {
  if (!existsSync(path)) {
    fail(`no ${rel(path)}: run \`npm run build\` (or \`npm run build:proxywasm\`) first`);
  }
  const bytes = readFileSync(path);
  let module;
  try { module = new WebAssembly.Module(bytes); } catch (e) { fail(`${rel(path)} is not a valid WebAssembly module: ${e.message}`); }
  const imports = WebAssembly.Module.imports(module);
  const odd = imports.filter((i) => i.module !== 'env' || i.kind !== 'function');
  if (odd.length) {
    fail(`${rel(path)} imports ${odd.map((i) => `${i.kind} ${i.module}.${i.name}`).join(', ')}: envoy/native/shim.c provides functions of "env" only`);
  }
  return { bytes, imports: imports.map((i) => i.name), exports: WebAssembly.Module.exports(module).map((e) => e.name) };
}

/** The module's exports shim.c calls (Z_haportsZ_<name>): each must exist. */
function checkExports(mod, shimText) {
  const called = new Set([...shimText.matchAll(new RegExp(`Z_${MODULE_NAME}Z_(\\w+)\\s*\\(`, 'g'))].map((m) => m[1]));
  const missing = [...called].filter((name) => !mod.exports.includes(name));
  if (missing.length) {
    fail(`the module does not export ${missing.join(', ')}, which envoy/native/shim.c calls: is it the proxy-wasm build (npm run build:proxywasm)?`);
  }
  return [...called];
}

/**
 * Each import's C symbol and prototype, from wasm2c's header:
 *   /* import: 'env' 'proxy_log' *\/
 *   u32 Z_envZ_proxy_log(struct Z_env_instance_t*, u32, u32, u32);
 */
function importPrototypes(headerText) {
  const out = new Map();
  for (const m of headerText.matchAll(/\/\* import: '([^']*)' '([^']*)' \*\/\s*\n([^\n]*?\b(\w+)\s*\([^\n]*\);)/g)) {
    out.set(m[2], { symbol: m[4], prototype: m[3].trim() });
  }
  return out;
}

/** Symbols an object or library defines (nm), or needs (undefined). */
function symbols(file, { dynamic = false, undefinedOnly = false } = {}) {
  const args = [...(dynamic ? ['-D'] : []), undefinedOnly ? '--undefined-only' : '--defined-only', '-g', file];
  return run('nm', args, `nm ${rel(file)}`).split('\n').map((l) => l.trim().split(/\s+/).pop()).filter(Boolean);
}

async function build(o) {
  const tools = findTools();
  const mod = readModule(o.wasm);
  const shimText = readFileSync(SHIM, 'utf8');
  const usedExports = checkExports(mod, shimText);

  const key = createHash('sha256')
    .update(mod.bytes).update(shimText).update(readFileSync(HEADER))
    .update(JSON.stringify({ CFLAGS, cc: tools.cc, versions: tools.versions, runtime: tools.runtime }))
    .digest('hex');
  const stamp = `${o.out}.stamp`;
  if (!o.force && existsSync(o.out) && existsSync(stamp) && readFileSync(stamp, 'utf8') === key) {
    console.log(`build-envoy-native: ${rel(o.out)} is up to date`);
    return;
  }

  const dir = dirname(o.out);
  const gen = join(dir, 'gen');
  mkdirSync(gen, { recursive: true });
  const started = Date.now();
  run('wasm2c', [o.wasm, '-o', join(gen, `${MODULE_NAME}.c`), '-n', MODULE_NAME], `wasm2c ${rel(o.wasm)}`);
  const headerText = readFileSync(join(gen, `${MODULE_NAME}.h`), 'utf8');
  if (!new RegExp(`void Z_${MODULE_NAME}_instantiate\\(Z_${MODULE_NAME}_instance_t\\*, struct Z_env_instance_t\\*\\);`).test(headerText)) {
    if (!mod.imports.length) fail(`${rel(o.wasm)} imports nothing: a proxy-wasm module imports at least proxy_log`);
    fail(`wasm2c ${tools.versions.wasm2c} writes another C API than envoy/native/shim.c is written for `
      + `(wabt 1.0.32: Z_${MODULE_NAME}_instantiate, imports Z_envZ_<name>(struct Z_env_instance_t*, …)): install Debian's wabt (${INSTALL})`);
  }
  const prototypes = importPrototypes(headerText);
  const unmapped = mod.imports.filter((name) => !prototypes.has(name));
  if (unmapped.length) fail(`could not find wasm2c's declaration of the imports ${unmapped.join(', ')} in ${rel(join(gen, `${MODULE_NAME}.h`))}`);

  const includes = ['-I', gen, '-I', tools.runtime, '-I', tools.include, '-I', NATIVE];
  const obj = (name) => join(gen, `${name}.${process.pid}.o`);
  const objects = [obj('shim'), obj(MODULE_NAME), obj('wasm-rt-impl')];
  try {
    const [shimWarnings] = await Promise.all([
      runAsync(tools.cc, [...CFLAGS, '-std=gnu11', '-Wall', '-Wextra', '-Werror', ...includes, '-c', SHIM, '-o', objects[0]], 'compiling envoy/native/shim.c'),
      runAsync(tools.cc, [...CFLAGS, '-w', ...includes, '-c', join(gen, `${MODULE_NAME}.c`), '-o', objects[1]], `compiling the module's C (${rel(gen)}/${MODULE_NAME}.c)`),
      runAsync(tools.cc, [...CFLAGS, '-w', ...includes, '-c', join(tools.runtime, 'wasm-rt-impl.c'), '-o', objects[2]], "compiling wasm2c's runtime"),
    ]);
    process.stderr.write(shimWarnings);

    // Every import of the module is defined by the shim (generated from the module's import list).
    const defined = new Set(symbols(objects[0]));
    const lacking = mod.imports.filter((name) => !defined.has(prototypes.get(name).symbol));
    if (lacking.length) {
      fail(`the module imports ${lacking.length === 1 ? 'a function' : 'functions'} that envoy/native/shim.c does not implement:\n`
        + lacking.map((name) => `  env.${name}: define  ${prototypes.get(name).prototype.replace(/;$/, ' { … }')}`).join('\n')
        + '\n(map each to an Envoy dynamic-module callback, or refuse it with a proxy-wasm status, and say so in the comment at the top of shim.c)');
    }

    const temporary = `${o.out}.${process.pid}.tmp`;
    run(tools.cc, ['-shared', '-o', temporary, ...objects, '-Wl,-z,relro,-z,now', '-lm', '-lpthread'], 'linking libhaports.so');
    try {
      const exported = symbols(temporary, { dynamic: true });
      const extra = exported.filter((s) => !HOOKS.includes(s));
      const absent = HOOKS.filter((s) => !exported.includes(s));
      if (extra.length || absent.length) {
        fail(`the library's exports are not Envoy's network filter hooks:${absent.length ? ` missing ${absent.join(', ')};` : ''}`
          + `${extra.length ? ` unexpected ${extra.join(', ')}` : ''}`);
      }
      const needed = symbols(temporary, { dynamic: true, undefinedOnly: true });
      const foreign = needed.filter((s) => !s.startsWith('envoy_dynamic_module_callback_') && !/@GLIBC_/.test(s) && !/^(_ITM_|__gmon_start__|__cxa_finalize)/.test(s));
      if (foreign.length) fail(`the library needs symbols nobody provides: ${foreign.join(', ')}`);
      renameSync(temporary, o.out);
      writeFileSync(stamp, key);
      const callbacks = needed.filter((s) => s.startsWith('envoy_dynamic_module_callback_'));
      console.log(`build-envoy-native: ${rel(o.out)} (${Math.round(statSync(o.out).size / 1024)} KiB, ${((Date.now() - started) / 1000).toFixed(1)} s): `
        + `${mod.imports.length} proxy-wasm imports implemented, ${usedExports.length} module exports called, `
        + `${callbacks.length} Envoy callbacks used; ${tools.versions.wasm2c.replace(/^/, 'wasm2c ')}, ${tools.versions.cc}`);
    } finally {
      rmSync(temporary, { force: true });
    }
  } finally {
    for (const f of objects) rmSync(f, { force: true });
  }
}

try {
  await build(parseArgs(process.argv.slice(2)));
} catch (e) {
  if (!(e instanceof BuildError)) throw e;
  console.error(`build-envoy-native: ${e.message}`);
  process.exit(1);
}
