// Bundles the hosts:
// - every host/*.ts entry point → build/host/<name>.mjs (the CLI and its parts; they
//   load build/haports.wasm by path);
// - the library host/index.ts → build/lib/haports.mjs (ESM) and build/lib/haports.cjs
//   (CommonJS), with the release wasm embedded, and its .d.ts types under build/lib/types.
import { build } from 'esbuild';
import { readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entries = readdirSync(join(root, 'host'))
  .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
  .map((f) => join(root, 'host', f));

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

await build({ ...common, entryPoints: [join(root, 'host/index.ts')], outfile: join(root, 'build/lib/haports.mjs'), format: 'esm' });
await build({
  ...common,
  entryPoints: [join(root, 'host/index.ts')],
  outfile: join(root, 'build/lib/haports.cjs'),
  format: 'cjs',
  // import.meta.url (used only by the path-based loader) from __filename.
  define: { 'import.meta.url': '__haportsUrl' },
  banner: { js: "const __haportsUrl = require('node:url').pathToFileURL(__filename).href;" },
});

execFileSync(join(root, 'node_modules/.bin/tsc'), [
  '-p', join(root, 'tsconfig.json'), '--noEmit', 'false', '--declaration', '--emitDeclarationOnly',
  '--outDir', join(root, 'build/lib/types'),
], { stdio: 'inherit' });
