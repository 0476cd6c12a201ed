// What the benchmark needs besides Node: the release module, the TypeScript port bundled,
// the wasm2c native build, the C reference, the wasmtime wheel. Missing tools are installed the way
// scripts/setup.sh installs the test tools (apt for wabt, pip for wasmtime at the version
// pinned in test/requirements.txt); what cannot be had is reported, and its column is
// left out of the results with the reason.

import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Where builds and the corpus go (HAPORTS_BENCH_OUT: elsewhere, e.g. for two runs at once). */
export const OUT = process.env.HAPORTS_BENCH_OUT ?? join(ROOT, 'build', 'bench');
export const WASM = join(ROOT, 'build', 'haports.wasm');
/** HAPORTS_BENCH_NO_BUILD: benchmark build/haports.wasm and build/host as they are, never rebuild them. */
const NO_BUILD = !!process.env.HAPORTS_BENCH_NO_BUILD;

const log = (s) => process.stderr.write(`${s}\n`);
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...opts });

function newest(dir, ext) {
  let t = 0;
  for (const f of readdirSync(dir)) if (f.endsWith(ext)) t = Math.max(t, statSync(join(dir, f)).mtimeMs);
  return t;
}

/** The release module: built when missing or older than assembly/*.ts. */
export function ensureWasm() {
  if (NO_BUILD && !existsSync(WASM)) throw new Error('build/haports.wasm is missing (HAPORTS_BENCH_NO_BUILD is set)');
  const stale = !NO_BUILD && (!existsSync(WASM) || statSync(WASM).mtimeMs < newest(join(ROOT, 'assembly'), '.ts'));
  if (stale) {
    log('setup: npm run build:release (build/haports.wasm is missing or older than assembly/)');
    const r = spawnSync('npm', ['run', '--silent', 'build:release'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    if (r.status !== 0) {
      if (!existsSync(WASM)) throw new Error(`cannot build the core:\n${r.stderr}`);
      log(`setup: the build failed; benchmarking the existing build/haports.wasm\n${String(r.stderr).trim()}`);
    }
  }
  const bytes = readFileSync(WASM);
  return { path: WASM, sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.length, rebuilt: stale };
}

/**
 * The module with the packet path's hash unkeyed (`--use HAPORTS_UNKEYED_HASH=1`: the old
 * MurmurHash3-style mix instead of SipHash-1-3), built beside the release module with
 * the same optimizer flags, so that the run can show what the keyed hash costs. Its
 * decisions differ (another hash), so it is timed but never compared.
 */
export function buildUnkeyedWasm(wasm) {
  const out = join(OUT, 'haports-unkeyed.wasm');
  const stamp = `${out}.stamp`;
  if (existsSync(out) && existsSync(stamp) && readFileSync(stamp, 'utf8') === wasm.sha256) return { path: out };
  mkdirSync(OUT, { recursive: true });
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  // build:release's wasm-opt step, applied to the variant.
  const opt = /wasm-opt build\/haports\.wasm (.*?) -o build\/haports\.wasm/.exec(pkg.scripts['build:release'])?.[1];
  if (!opt) return { error: 'cannot read the wasm-opt flags of build:release' };
  const raw = `${out}.raw`;
  const bin = (n) => join(ROOT, 'node_modules', '.bin', n);
  let r = spawnSync(bin('asc'), ['assembly/index.ts', '--target', 'release', '-o', raw, '--use', 'HAPORTS_UNKEYED_HASH=1'],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) return { error: `asc failed: ${String(r.stderr).trim().split('\n')[0]}` };
  r = spawnSync(bin('wasm-opt'), [raw, ...opt.split(/\s+/), '-o', out], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) return { error: `wasm-opt failed: ${String(r.stderr).trim().split('\n')[0]}` };
  writeFileSync(stamp, wasm.sha256);
  return { path: out };
}

/** The Node binding (build/host/core.mjs), for the memory run: built when missing or stale. */
export function ensureHost() {
  const core = join(ROOT, 'build', 'host', 'core.mjs');
  if (existsSync(core) && (NO_BUILD || statSync(core).mtimeMs >= newest(join(ROOT, 'host'), '.ts'))) return core;
  if (NO_BUILD) throw new Error('build/host/core.mjs is missing (HAPORTS_BENCH_NO_BUILD is set)');
  log('setup: npm run build:host');
  const r = spawnSync('npm', ['run', '--silent', 'build:host'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0 && !existsSync(core)) throw new Error(`cannot build the Node binding:\n${r.stderr}`);
  return core;
}

/** Bundles bench/ts-port/*.ts to build/bench/ts-port.mjs (esbuild, as the host build does). */
export async function buildPort() {
  const { build } = await import('esbuild');
  const outfile = join(OUT, 'ts-port.mjs');
  await build({
    entryPoints: [join(ROOT, 'bench', 'ts-port', 'index.ts')], outfile, bundle: true, platform: 'node',
    format: 'esm', target: 'node20', logLevel: 'warning',
  });
  return outfile;
}

function aptInstall(pkg) {
  if (process.env.HAPORTS_BENCH_NO_INSTALL) return false;
  log(`setup: apt-get install ${pkg}`);
  const sudo = process.getuid && process.getuid() !== 0 ? ['sudo'] : [];
  const sh = (c) => spawnSync('sh', ['-c', c], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }).status === 0;
  return sh(`${sudo.join(' ')} apt-get update -qq`) && sh(`${sudo.join(' ')} apt-get install -y -qq ${pkg}`);
}

/** wasm2c's runtime sources: Debian's wabt ships them in /usr/share/wabt/wasm2c. */
function wasm2cRuntime() {
  for (const d of ['/usr/share/wabt/wasm2c', '/usr/src/wasm2c', '/usr/local/share/wabt/wasm2c']) {
    if (existsSync(join(d, 'wasm-rt-impl.c'))) return d;
  }
  return null;
}

/**
 * The native ceiling: wasm2c build/haports.wasm → C, gcc -O3 with bench/native/driver.c.
 * Cached by the module's hash and the driver's.
 */
export function buildNative(wasm) {
  if (!has('wasm2c') || !wasm2cRuntime()) aptInstall('wabt');
  if (!has('gcc')) aptInstall('gcc');
  const rt = wasm2cRuntime();
  if (!has('wasm2c') || !rt || !has('gcc')) return { error: 'wasm2c (Debian wabt) or gcc unavailable' };
  const dir = join(OUT, 'native');
  mkdirSync(dir, { recursive: true });
  const driver = join(ROOT, 'bench', 'native', 'driver.c');
  const cflags = (process.env.HAPORTS_BENCH_CFLAGS ?? '-O3').split(/\s+/).filter(Boolean);
  const serveH = join(ROOT, 'bench', 'native', 'serve.h'); // the drivers' shared harness
  const key = createHash('sha256').update(wasm.sha256).update(readFileSync(driver)).update(readFileSync(serveH))
    .update(cflags.join(' ')).digest('hex');
  const exe = join(dir, 'driver');
  const stamp = join(dir, 'stamp');
  const info = {
    exe, cflags: cflags.join(' '), runtime: rt,
    wasm2c: String(run('wasm2c', ['--version'])).trim(),
    gcc: String(run('gcc', ['--version'])).split('\n')[0].trim(),
  };
  if (existsSync(exe) && existsSync(stamp) && readFileSync(stamp, 'utf8') === key) return info;
  log('setup: wasm2c build/haports.wasm and gcc ' + info.cflags + ' (the native ceiling)');
  run('wasm2c', [wasm.path, '-o', join(dir, 'haports.c'), '-n', 'haports']);
  run('gcc', [...cflags, '-I', dir, '-I', rt, '-o', exe, driver, join(dir, 'haports.c'), join(rt, 'wasm-rt-impl.c'), '-lm']);
  writeFileSync(stamp, key);
  return info;
}

/**
 * The C reference: bench/reference/reference.c, the bench's packet path written by hand in
 * C (not wasm2c of the core), gcc -O3 (HAPORTS_BENCH_REF_CFLAGS to change). Cached by the
 * source's hash and the flags.
 */
export function buildReference() {
  if (!has('gcc')) aptInstall('gcc');
  if (!has('gcc')) return { error: 'gcc unavailable' };
  const dir = join(OUT, 'reference');
  mkdirSync(dir, { recursive: true });
  const src = join(ROOT, 'bench', 'reference', 'reference.c');
  const cflags = (process.env.HAPORTS_BENCH_REF_CFLAGS ?? '-O3').split(/\s+/).filter(Boolean);
  const key = createHash('sha256').update(readFileSync(src)).update(readFileSync(join(ROOT, 'bench', 'native', 'serve.h')))
    .update(cflags.join(' ')).digest('hex');
  const exe = join(dir, 'reference');
  const stamp = join(dir, 'stamp');
  const info = { exe, cflags: cflags.join(' '), gcc: String(run('gcc', ['--version'])).split('\n')[0].trim() };
  if (existsSync(exe) && existsSync(stamp) && readFileSync(stamp, 'utf8') === key) return info;
  log(`setup: gcc ${info.cflags} bench/reference/reference.c (the C reference)`);
  run('gcc', [...cflags, '-o', exe, src]);
  writeFileSync(stamp, key);
  return info;
}

/** The wasmtime wheel, at the version test/requirements.txt pins (installed when missing). */
export function ensureWasmtime() {
  const req = readFileSync(join(ROOT, 'test', 'requirements.txt'), 'utf8');
  const pin = /^wasmtime==(\S+)/m.exec(req)?.[1];
  const version = () => {
    const r = spawnSync('python3', ['-c', 'import importlib.metadata as m; print(m.version("wasmtime"))'], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : null;
  };
  let v = version();
  if ((!v || (pin && v !== pin)) && !process.env.HAPORTS_BENCH_NO_INSTALL && pin) {
    log(`setup: pip install wasmtime==${pin}`);
    spawnSync('python3', ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', `wasmtime==${pin}`], { stdio: ['ignore', 'ignore', 'inherit'] });
    v = version();
  }
  if (!v) return { error: `python3 wasmtime unavailable (pip install wasmtime==${pin ?? '?'})` };
  const py = spawnSync('python3', ['--version'], { encoding: 'utf8' }).stdout.trim();
  return { version: v, pinned: pin ?? null, python: py, driver: join(ROOT, 'bench', 'wasmtime', 'driver.py') };
}
