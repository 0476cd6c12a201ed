// Compiles the pump's native UDP addon, host/pump/native/udpio.c → build/native/udpio.node
// (recvmmsg/sendmmsg into and out of wasm memory, SO_REUSEPORT steering; see udpio.c).
//
// No node-gyp: it would download Node's headers, and the addon needs only node_api.h and
// uv.h, which Node installs next to its binary. The Node-API and libuv symbols resolve
// against the running node when the addon is loaded, so nothing is linked.
//
// The addon is optional: without a C compiler or the headers, or when the compile fails,
// this prints one line saying why and exits 0, and the pump uses its pure-JavaScript
// path (node:dgram). A stale build/native/udpio.node is removed in that case, so that
// the pump never loads an addon built from other source.
//
//   node scripts/build-native.mjs        (CC overrides the compiler, default cc)
//
// `npm run build` runs it. The npm package ships this script and udpio.c but runs nothing
// at install (no compiler is needed to install it): there the pump uses node:dgram until
// `node node_modules/haports/scripts/build-native.mjs` is run once, which writes
// node_modules/haports/build/native/udpio.node beside the bundles that load it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'host/pump/native/udpio.c');
const output = join(root, 'build/native/udpio.node');
const cc = process.env.CC || 'cc';

function skip(reason) {
  rmSync(output, { force: true });
  console.log(`build-native: ${reason}; the pump will use its pure-JavaScript path`);
  process.exit(0);
}

if (process.platform !== 'linux') skip(`recvmmsg/sendmmsg and SO_REUSEPORT steering are Linux-only (this is ${process.platform})`);

// Node's own include directory first (a Node installed under a prefix), then the system's.
const candidates = [
  join(dirname(process.execPath), '..', 'include', 'node'),
  '/usr/include/node',
  '/usr/local/include/node',
];
const include = candidates.find((d) => existsSync(join(d, 'node_api.h')) && existsSync(join(d, 'uv.h')));
if (!include) skip(`no Node headers (node_api.h and uv.h) in ${candidates.join(', ')}`);

if (spawnSync(cc, ['--version'], { stdio: 'ignore' }).status !== 0) skip(`no C compiler (${cc})`);

mkdirSync(dirname(output), { recursive: true });
// Built under a temporary name and renamed: a process loading the addon meanwhile sees
// the old file or the new one, never a partial one.
const temporary = `${output}.${process.pid}.tmp`;
const run = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-shared', '-fPIC', `-I${include}`, source, '-o', temporary], {
  stdio: ['ignore', 'inherit', 'pipe'], encoding: 'utf8',
});
process.stderr.write(run.stderr ?? ''); // warnings too
if (run.status !== 0) {
  rmSync(temporary, { force: true });
  const first = (run.stderr ?? '').split('\n').find((l) => /error/i.test(l))
    ?? run.error?.message ?? `exit status ${run.status ?? run.signal}`;
  skip(`${cc} failed to compile ${source.slice(root.length + 1)}: ${first.trim()}`);
}
renameSync(temporary, output);
console.log(`build-native: built ${output.slice(root.length + 1)}; the pump will use recvmmsg/sendmmsg`);
