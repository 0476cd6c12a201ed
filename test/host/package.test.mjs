// The npm package as a user installs it: what `npm pack` puts in, and that the installed
// command works (and says so where it cannot, e.g. `haports bench`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;

test('npm pack: the license, the built modules and the command; no source maps, no benchmark suite; under 1.2 MB', () => {
  const dry = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' });
  assert.equal(dry.status, 0, `npm pack --dry-run failed:\n${dry.stderr}`);
  const [pack] = JSON.parse(dry.stdout);
  const files = pack.files.map((f) => f.path);
  for (const f of ['LICENSE', 'README.md', 'package.json', 'bin/haports.mjs', 'build/haports.wasm', 'build/haports-proxywasm.wasm',
    'build/lib/haports.mjs', 'build/lib/haports.cjs', 'build/host/cli.mjs', 'config.schema.json']) {
    assert.ok(files.includes(f), `${f} is in the package`);
  }
  assert.deepEqual(files.filter((f) => f.endsWith('.map')), [], 'no source maps');
  assert.deepEqual(files.filter((f) => f.startsWith('bench/')), [], 'no benchmark suite');
  assert.ok(pack.size < 1.2e6, `package size ${pack.size} bytes`);
});

test('the installed package: --version and validate work; bench says it needs a clone (exit 2), no stack trace', () => {
  const dir = mkdtempSync(join(tmpdir(), 'haports-pack-'));
  // `npm pack FOLDER` from the destination (inside an npm script, `--pack-destination` is
  // taken for a package to pack).
  const packed = spawnSync('npm', ['pack', root, '--ignore-scripts'], { cwd: dir, encoding: 'utf8' });
  assert.equal(packed.status, 0, `npm pack failed:\n${packed.stderr}`);
  const tgz = packed.stdout.trim().split('\n').pop();
  execFileSync('tar', ['-xzf', join(dir, tgz), '-C', dir]);
  const bin = join(dir, 'package', 'bin', 'haports.mjs');
  const run = (...args) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: dir });
  assert.match(run('--version').stdout, /^haports \d+\.\d+\.\d+\n$/);
  const v = run('validate', join(root, 'examples', 'config.json'));
  assert.equal(v.status, 0, v.stderr);
  const b = run('bench', '--quick');
  assert.equal(b.status, 2);
  assert.match(b.stderr, /runs from a clone of the repository/);
  assert.doesNotMatch(b.stderr, /\n\s+at /);
});
