// Bundles the hosts (host/ has a folder per host: lib, cli, pump, arm; wasmtime is Python):
// - every host/<host>/*.ts entry point → build/host/<name>.mjs (the CLI and its parts;
//   they load build/haports.wasm by path; the names are flat, so build/host/core.mjs is
//   host/lib/core.ts);
// - the library host/lib/index.ts → build/lib/haports.mjs (ESM) and build/lib/haports.cjs
//   (CommonJS), with the release wasm embedded, and its .d.ts types under build/lib/types
//   (build/lib/types/lib/index.d.ts is the package's).
import { build } from 'esbuild';
import { readdirSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entries = {};
for (const dir of readdirSync(join(root, 'host'), { withFileTypes: true })) {
  if (!dir.isDirectory()) continue;
  for (const f of readdirSync(join(root, 'host', dir.name))) {
    if (!f.endsWith('.ts') || f.endsWith('.d.ts')) continue;
    const name = f.slice(0, -3);
    if (entries[name]) throw new Error(`host/${dir.name}/${f}: a second host file named ${name}.ts (build/host/ is flat)`);
    entries[name] = join(root, 'host', dir.name, f);
  }
}

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning',
  loader: { '.wasm': 'binary' },
};

await build({
  ...common,
  entryPoints: entries,
  outdir: join(root, 'build/host'),
  outExtension: { '.js': '.mjs' },
  format: 'esm',
});

await build({ ...common, entryPoints: [join(root, 'host/lib/index.ts')], outfile: join(root, 'build/lib/haports.mjs'), format: 'esm' });
await build({
  ...common,
  entryPoints: [join(root, 'host/lib/index.ts')],
  outfile: join(root, 'build/lib/haports.cjs'),
  format: 'cjs',
  // import.meta.url (used only by the path-based loader) from __filename.
  define: { 'import.meta.url': '__haportsUrl' },
  banner: { js: "const __haportsUrl = require('node:url').pathToFileURL(__filename).href;" },
});

rmSync(join(root, 'build/lib/types'), { recursive: true, force: true });
execFileSync(join(root, 'node_modules/.bin/tsc'), [
  '-p', join(root, 'tsconfig.json'), '--noEmit', 'false', '--declaration', '--emitDeclarationOnly',
  '--outDir', join(root, 'build/lib/types'),
], { stdio: 'inherit' });
