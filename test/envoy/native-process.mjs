// Running a real Envoy with the native recipe (envoy/native/: the haports core as a
// dynamic module), for test/envoy/native.test.mjs and bench/envoy/bench.mjs; plus the
// client side both use (connections that report which backend answered).
//
// The recipe's files are copied into a work directory with only what must change
// changed: the LDS path, the module's path (absolute), the admin port (0: Envoy picks
// one and writes it to a file), the listener port (a free one) and, when asked, the
// backends' addresses and port, so that a test never collides with a demo or another
// test on this machine.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { openConnection } from './client.mjs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminGet, findEnvoy, ROOT, stats, waitFor } from './envoy-process.mjs';

/** The module: build/envoy-native/libhaports.so, or $HAPORTS_ENVOY_NATIVE. */
export const NATIVE_MODULE = process.env.HAPORTS_ENVOY_NATIVE ?? join(ROOT, 'build/envoy-native/libhaports.so');
const RECIPE = join(ROOT, 'envoy/native');
/** The recipe's addresses: listener, and the backends' (clusters and haports configuration). */
export const RECIPE_LISTENER = { host: '127.0.0.30', port: 10003 };
export const RECIPE_BACKENDS = ['127.0.0.11', '127.0.0.12', '127.0.0.13'];
export const RECIPE_BACKEND_PORT = 10000;

/**
 * Builds the module (scripts/build-envoy-native.mjs; it does nothing when up to date).
 * Returns { status, output } with `check: false`; throws on failure otherwise.
 */
export function buildNative({ wasm, out, check = true } = {}) {
  const args = [join(ROOT, 'scripts/build-envoy-native.mjs')];
  if (wasm) args.push('--wasm', wasm);
  if (out) args.push('--out', out);
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8' });
  const output = `${r.stdout}${r.stderr}`;
  if (check && r.status !== 0) throw new Error(`npm run build:envoy-native failed:\n${output}`);
  return { status: r.status, output };
}

/** A TCP port nobody listens on at any of `hosts` (checked by binding it on each). */
export async function freePort(hosts) {
  const bind = (host, port) => new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(null));
    s.listen({ host, port, exclusive: true }, () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await bind(hosts[0], 0);
    if (port == null) continue;
    let free = true;
    for (const h of hosts.slice(1)) if ((await bind(h, port)) == null) { free = false; break; }
    if (free) return port;
  }
  throw new Error(`no free port on ${hosts.join(', ')}`);
}

/** The recipe's listener file with its addresses and module path changed as `startNativeEnvoy` does. */
export function nativeListeners(text, { port, backends, module = NATIVE_MODULE } = {}) {
  let out = text.replace('filename: build/envoy-native/libhaports.so', `filename: ${module}`);
  if (port) out = out.replaceAll(`port_value: ${RECIPE_LISTENER.port} }`, `port_value: ${port} }`);
  if (backends) RECIPE_BACKENDS.forEach((a, i) => { out = out.replaceAll(`"${a}"`, `"${backends[i]}"`); });
  return out;
}

/**
 * Starts Envoy with envoy/native/envoy.yaml and listeners.yaml (copied to a work directory).
 * Options: backends (three addresses instead of 127.0.0.11–13), backendPort (instead of
 * 10000), listenersText (a replacement listener file, in the recipe's terms: it goes
 * through nativeListeners), module (the .so), extraClusters (YAML appended to
 * static_resources.clusters), concurrency (2), logLevel ('info'), cpus (taskset list),
 * extraArgs, expectListener (default true: wait for the listener; false: only for Envoy).
 * Returns { proc, admin, dir, listener: { host, port }, log(), stats(filter), push(text), stop() }.
 */
export async function startNativeEnvoy(opts = {}) {
  const envoy = findEnvoy();
  const dir = mkdtempSync(join(tmpdir(), 'haports-envoy-native-'));
  const port = await freePort([RECIPE_LISTENER.host, '::1']);
  const module = opts.module ?? NATIVE_MODULE;
  let bootstrap = readFileSync(join(RECIPE, 'envoy.yaml'), 'utf8')
    .replace('path: envoy/native/listeners.yaml', `path: ${join(dir, 'listeners.yaml')}`)
    .replace(/path: envoy\/native$/m, `path: ${dir}`)
    .replace(/(admin:\s*\n\s*address:\s*\n\s*socket_address: \{ address: [\d.]+, port_value: )\d+/, '$10');
  if (opts.backends) RECIPE_BACKENDS.forEach((a, i) => { bootstrap = bootstrap.replaceAll(`address: ${a},`, `address: ${opts.backends[i]},`); });
  if (opts.backendPort) bootstrap = bootstrap.replaceAll(`port_value: ${RECIPE_BACKEND_PORT} }`, `port_value: ${opts.backendPort} }`);
  if (opts.extraClusters) bootstrap += opts.extraClusters;
  writeFileSync(join(dir, 'envoy.yaml'), bootstrap);
  const rewrite = (text) => nativeListeners(text, { port, backends: opts.backends, module });
  writeFileSync(join(dir, 'listeners.yaml'), rewrite(opts.listenersText ?? readFileSync(join(RECIPE, 'listeners.yaml'), 'utf8')));

  const adminPath = join(dir, 'admin-address');
  const args = ['-c', join(dir, 'envoy.yaml'), '--concurrency', String(opts.concurrency ?? 2), '-l', opts.logLevel ?? 'info',
    '--disable-hot-restart', '--admin-address-path', adminPath, ...(opts.extraArgs ?? [])];
  const proc = opts.cpus
    ? spawn('taskset', ['-c', opts.cpus, envoy, ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn(envoy, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const logFile = createWriteStream(join(dir, 'envoy.log'));
  proc.stderr.on('data', (d) => { stderr += d; logFile.write(d); });
  let exited = null;
  const exit = new Promise((resolve) => proc.on('exit', (code, signal) => { exited = { code, signal }; resolve(exited); }));
  const handle = {
    proc,
    dir,
    admin: null,
    listener: { host: RECIPE_LISTENER.host, port },
    log: () => stderr,
    exited: () => exited,
    exit,
    stats: (filter) => stats(handle.admin, filter),
    /** Replaces the listener file as an operator would: write aside, then rename over it. */
    push(text) {
      const aside = join(dir, `listeners.${Date.now()}.tmp`);
      writeFileSync(aside, rewrite(text));
      renameSync(aside, join(dir, 'listeners.yaml'));
    },
    async stop() {
      if (exited) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exit;
      clearTimeout(t);
    },
  };
  try {
    await waitFor(async () => {
      if (exited) throw new Error(`envoy exited (${JSON.stringify(exited)}):\n${stderr.slice(-4000)}`);
      if (!handle.admin) {
        if (!existsSync(adminPath)) return false;
        const m = readFileSync(adminPath, 'utf8').trim().match(/^([\d.]+):(\d+)$/);
        if (!m) return false;
        handle.admin = { host: m[1], port: Number(m[2]) };
      }
      try {
        const r = await adminGet(handle.admin, '/ready');
        return r.status === 200 && r.body.trim() === 'LIVE';
      } catch { return false; }
    }, 30000, 'Envoy to be ready');
    if (opts.expectListener !== false) {
      await waitFor(async () => (await adminGet(handle.admin, '/listeners')).body.includes('haports::'), 10000, 'the listener');
    }
  } catch (e) {
    await handle.stop();
    throw e;
  }
  return handle;
}

/** LDS counters of an Envoy: { rejected, success }. */
export async function ldsCounters(e) {
  const s = await e.stats('listener_manager.lds');
  return { rejected: s.get('listener_manager.lds.update_rejected') ?? 0, success: s.get('listener_manager.lds.update_success') ?? 0 };
}

/** The dynamic symbols the pinned Envoy binary exports (nm -D --defined-only). */
export function envoyExports() {
  return new Set(execFileSync('nm', ['-D', '--defined-only', findEnvoy()], { encoding: 'utf8', maxBuffer: 256 << 20 })
    .split('\n').map((l) => l.trim().split(/\s+/).pop()).filter(Boolean));
}

// ---- The client side --------------------------------------------------------------------------

export { openConnection, pool } from './client.mjs';

/** n4 connections from 127.0.<subnet>.1–250 and n6 from ::1 to the listener's port, interleaved. */
export function connectionJobs(listener, n4, n6, subnet) {
  const jobs = [];
  for (let i = 0; i < n4; i++) jobs.push(() => openConnection(listener.host, listener.port, `127.0.${subnet}.${1 + (i % 250)}`));
  for (let i = 0; i < n6; i++) jobs.push(() => openConnection('::1', listener.port, '::1'));
  return jobs.map((j, i) => [((i * 7919) % jobs.length), j]).sort((a, b) => a[0] - b[0]).map(([, j]) => j);
}
