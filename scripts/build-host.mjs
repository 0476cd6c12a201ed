// Bundles the hosts (host/ has a folder per host: lib, cli, pump, arm; wasmtime is Python):
// - every host/<host>/*.ts entry point → build/host/<name>.mjs (the CLI and its parts;
//   they load build/haports.wasm by path; the names are flat, so build/host/core.mjs is
//   host/lib/core.ts);
// - the library host/lib/index.ts → build/lib/haports.mjs (ESM) and build/lib/haports.cjs
//   (CommonJS), and its .d.ts types under build/lib/types (build/lib/types/lib/index.d.ts
//   is the package's).
//
// The wasm is never embedded: a `.wasm` import (index.ts imports build/haports.wasm as
// bytes) becomes a read of that file, at load time, relative to the bundle that imports
// it (import.meta.url; in the CommonJS bundle, __filename). Every bundle thus reads the
// one build/haports.wasm the package ships, as Core.load() does.
import { build } from 'esbuild';
import { readdirSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join, relative, resolve, sep } from 'node:path';

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

// `import bytes from '…/x.wasm'` → the bytes of x.wasm, read when the bundle loads, from
// x.wasm's path relative to the bundle's folder (`outdir`). Only build/ is shipped, so a
// wasm outside it is an error here rather than a missing file at run time.
const wasmAtRunTime = (outdir) => ({
  name: 'wasm-at-run-time',
  setup(b) {
    // The path relative to the root: it names the module in the bundle's comments.
    b.onResolve({ filter: /\.wasm$/ }, (args) => {
      const file = resolve(args.resolveDir, args.path);
      if (!file.startsWith(join(root, 'build') + sep)) return { errors: [{ text: `${args.path}: a wasm imported by a host must be under build/ (only build/ ships)` }] };
      return { path: relative(root, file).split(sep).join('/'), namespace: 'wasm-file', pluginData: file };
    });
    b.onLoad({ filter: /.*/, namespace: 'wasm-file' }, (args) => {
      const path = relative(outdir, args.pluginData).split(sep).join('/');
      return {
        loader: 'js',
        contents: `import { readFileSync } from 'node:fs';
const bytes = readFileSync(new URL(${JSON.stringify(path)}, import.meta.url));
export default new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
`,
      };
    });
  },
});

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning',
};

await build({
  ...common,
  entryPoints: entries,
  outdir: join(root, 'build/host'),
  outExtension: { '.js': '.mjs' },
  format: 'esm',
  plugins: [wasmAtRunTime(join(root, 'build/host'))],
});

await build({
  ...common,
  entryPoints: [join(root, 'host/lib/index.ts')],
  outfile: join(root, 'build/lib/haports.mjs'),
  format: 'esm',
  plugins: [wasmAtRunTime(join(root, 'build/lib'))],
});
await build({
  ...common,
  entryPoints: [join(root, 'host/lib/index.ts')],
  outfile: join(root, 'build/lib/haports.cjs'),
  plugins: [wasmAtRunTime(join(root, 'build/lib'))],
  format: 'cjs',
  // import.meta.url (the wasm's and the path-based loader's base) from __filename.
  define: { 'import.meta.url': '__haportsUrl' },
  banner: { js: "const __haportsUrl = require('node:url').pathToFileURL(__filename).href;" },
});

rmSync(join(root, 'build/lib/types'), { recursive: true, force: true });
execFileSync(join(root, 'node_modules/.bin/tsc'), [
  '-p', join(root, 'tsconfig.json'), '--noEmit', 'false', '--declaration', '--emitDeclarationOnly',
  '--outDir', join(root, 'build/lib/types'),
], { stdio: 'inherit' });
