// The npm package as a user installs it: what `npm pack` puts in (the license, the built
// modules, the wasm exactly once, the docs the README links to; no source maps, no
// benchmark suite), and that the installed package works: `import` and `require`, the
// command through its bin link and npx, and the opt-in native addon build (and says so
// where it cannot work, e.g. `haports bench`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = new URL('../..', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

// npm run (npm test) exports npm_* variables, npm_config_local_prefix among them, which
// would point a child npm at this repository: the child npms get an environment without them.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
const npm = (args, cwd) => spawnSync('npm', args, { cwd, encoding: 'utf8', env });

/** The files `npm pack` would put in, by path. */
function packList() {
  const dry = npm(['pack', '--dry-run', '--json', '--ignore-scripts'], root);
  assert.equal(dry.status, 0, `npm pack --dry-run failed:\n${dry.stderr}`);
  const [pack] = JSON.parse(dry.stdout);
  return { pack, files: pack.files.map((f) => f.path) };
}

test('npm pack: the license, the built modules and the command, the docs; no source maps, no benchmark suite; under 1.2 MB', () => {
  const { pack, files } = packList();
  for (const f of ['LICENSE', 'README.md', 'package.json', 'bin/haports.mjs', 'build/haports.wasm', 'build/haports-proxywasm.wasm',
    'build/lib/haports.mjs', 'build/lib/haports.cjs', 'build/lib/types/lib/index.d.ts', 'build/host/cli.mjs', 'build/host/pumpworker.mjs',
    'config.schema.json', 'docs/configuration.md', 'examples/config.json', 'examples/embed.mjs',
    'host/pump/native/udpio.c', 'scripts/build-native.mjs']) {
    assert.ok(files.includes(f), `${f} is in the package`);
  }
  assert.deepEqual(files.filter((f) => f.endsWith('.map')), [], 'no source maps');
  assert.deepEqual(files.filter((f) => f.startsWith('bench/')), [], 'no benchmark suite');
  assert.deepEqual(files.filter((f) => f.endsWith('.wasm')).sort(), ['build/haports-proxywasm.wasm', 'build/haports.wasm'],
    'the release core and the proxy-wasm filter, once each');
  assert.deepEqual(files.filter((f) => f.endsWith('.node')), [], 'no prebuilt addon (built on the user\'s machine, opt-in)');
  assert.ok(pack.size < 1.2e6, `package size ${pack.size} bytes`);
});

test('package.json: repository, homepage and bugs', () => {
  assert.match(pkg.repository?.url ?? '', /^git\+https:\/\/github\.com\/[^/]+\/[^/]+\.git$/);
  assert.equal(pkg.homepage, `${repositoryBase()}#readme`);
  assert.equal(pkg.bugs?.url, `${repositoryBase()}/issues`);
});

/** https://github.com/OWNER/NAME, from package.json's repository. */
function repositoryBase() {
  return pkg.repository.url.replace(/^git\+/, '').replace(/\.git$/, '');
}

test('README.md: every relative link is to a file in the package; links into the repository are to files that exist', () => {
  const { files } = packList();
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const base = repositoryBase();
  const links = [...readme.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]);
  assert.ok(links.length > 10, `found ${links.length} links`);
  const dead = [];
  for (const link of links) {
    if (link.startsWith('#')) continue;
    if (/^[a-z][a-z0-9+.-]*:/i.test(link)) {
      // Into the repository: /blob/BRANCH/FILE or /tree/BRANCH/FOLDER of a path that exists here.
      if (!link.startsWith(`${base}/`)) continue;
      const m = /^\/(blob|tree)\/[^/]+\/([^#?]+)/.exec(link.slice(base.length));
      if (!m || !existsSync(join(root, decodeURIComponent(m[2])))) dead.push(`${link} (no such file in the repository)`);
      continue;
    }
    const path = decodeURIComponent(link.split('#')[0]).replace(/^\.\//, '');
    const shipped = path.endsWith('/') ? files.some((f) => f.startsWith(path)) : files.includes(path);
    if (!shipped) dead.push(`${link} (not in the package: ship it, or link ${base}/blob/main/${path})`);
  }
  assert.deepEqual(dead, [], 'dead links on npm');
});

test('the installed package: import and require, the command (bin link, npx), the wasm exactly once, the native addon opt-in', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'haports-pack-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // `npm pack FOLDER` from the destination (inside an npm script, `--pack-destination` is
  // taken for a package to pack).
  const packed = npm(['pack', root, '--ignore-scripts'], dir);
  assert.equal(packed.status, 0, `npm pack failed:\n${packed.stderr}`);
  const tgz = join(dir, packed.stdout.trim().split('\n').pop());

  // A project that installs the tarball: no registry (the package has no dependencies),
  // no install scripts (there are none: nothing is compiled at install).
  const app = join(dir, 'app');
  execFileSync('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
  const installed = npm(['install', tgz, '--offline', '--ignore-scripts', '--no-audit', '--no-fund', '--prefix', app,
    '--cache', join(dir, 'npm-cache')], app);
  assert.equal(installed.status, 0, `npm install failed:\n${installed.stderr}`);
  const home = join(app, 'node_modules', 'haports');
  assert.ok(existsSync(join(home, 'package.json')), 'installed under node_modules/haports');
  assert.ok(!existsSync(join(home, 'build', 'native')), 'nothing built at install');

  // The wasm exactly once: no other file holds its bytes, and no bundle embeds it (or
  // anything else) as base64: the longest base64 run in any module is under 4 KiB, and
  // the base64 of a slice of the wasm is in none.
  const wasm = readFileSync(join(home, 'build', 'haports.wasm'));
  const slice = wasm.subarray(3 * 1000, 3 * 1000 + 3 * 1024); // at a multiple of 3: its base64 is in the whole file's base64
  const slice64 = slice.toString('base64');
  const all = [];
  const walk = (d) => { for (const e of readdirSync(d, { withFileTypes: true })) e.isDirectory() ? walk(join(d, e.name)) : all.push(join(d, e.name)); };
  walk(home);
  const holders = [];
  for (const f of all) {
    const bytes = readFileSync(f);
    if (bytes.indexOf(slice) >= 0 || bytes.indexOf(slice64) >= 0) holders.push(relative(home, f));
    if (/\.(m|c)?js$/.test(f)) {
      const longest = Math.max(0, ...(bytes.toString('latin1').match(/[A-Za-z0-9+/]{4096,}/g) ?? []).map((r) => r.length));
      assert.ok(longest < 4096, `${relative(home, f)}: ${longest} characters of base64 (an embedded binary?)`);
    }
  }
  assert.deepEqual(holders, ['build/haports.wasm'], 'the release wasm is in the package once');

  // The library, as ESM and as CommonJS, from the app's folder.
  const config = join(home, 'examples', 'config.json');
  const use = `const dp = Dataplane.create(readFileSync(${JSON.stringify(config)}, 'utf8'));
    const syn = Buffer.from('450000280001000040060000c0a800070a000064d43101bb00000001000000005002ffff00000000', 'hex');
    const [d] = dp.process([syn], { now: 1000 });
    console.log(d.verdict, typeof d.backend);`;
  const esm = spawnSync(process.execPath, ['--input-type=module', '-e',
    `import { readFileSync } from 'node:fs'; const { Dataplane } = await import('haports'); ${use}`], { cwd: app, encoding: 'utf8' });
  assert.equal(esm.status, 0, esm.stderr);
  assert.equal(esm.stdout, 'forward string\n');
  const cjs = spawnSync(process.execPath, ['--input-type=commonjs', '-e',
    `const { readFileSync } = require('node:fs'); const { Dataplane } = require('haports'); ${use}`], { cwd: app, encoding: 'utf8' });
  assert.equal(cjs.status, 0, cjs.stderr);
  assert.equal(cjs.stdout, 'forward string\n');
  const example = spawnSync(process.execPath, [join(home, 'examples', 'embed.mjs')], { cwd: app, encoding: 'utf8' });
  assert.equal(example.status, 0, `examples/embed.mjs: ${example.stderr}`);

  // The command through its bin link, and through npx (from the app, no registry).
  const bin = join(app, 'node_modules', '.bin', 'haports');
  const run = (...args) => spawnSync(bin, args, { encoding: 'utf8', cwd: app });
  assert.match(run('--version').stdout, /^haports \d+\.\d+\.\d+\n$/);
  const demo = spawnSync('npx', ['--no', '--offline', 'haports', 'demo', '--json', '--flows', '2000'], { cwd: app, encoding: 'utf8', env });
  assert.equal(demo.status, 0, demo.stderr);
  assert.equal(JSON.parse(demo.stdout).flows, 2000);
  const v = run('validate', config);
  assert.equal(v.status, 0, v.stderr);
  const b = run('bench', '--quick');
  assert.equal(b.status, 2);
  assert.match(b.stderr, /runs from a clone of the repository/);
  assert.doesNotMatch(b.stderr, /\n\s+at /);

  // The native pump addon, opt-in: built where the pump looks for it, or a one-line reason
  // and the pump stays on node:dgram.
  const native = spawnSync(process.execPath, [join(home, 'scripts', 'build-native.mjs')], { cwd: app, encoding: 'utf8' });
  assert.equal(native.status, 0, native.stderr);
  const addon = join(home, 'build', 'native', 'udpio.node');
  const loaded = spawnSync(process.execPath, ['--input-type=module', '-e',
    `const { loadNative } = await import(${JSON.stringify(pathToFileURL(join(home, 'build', 'host', 'udpio.mjs')).href)});
     const { native, reason } = loadNative(); console.log(JSON.stringify({ loaded: !!native, reason }));`], { encoding: 'utf8' });
  assert.equal(loaded.status, 0, loaded.stderr);
  const { loaded: ok, reason } = JSON.parse(loaded.stdout);
  if (/will use its pure-JavaScript path/.test(native.stdout)) {
    assert.ok(!existsSync(addon) && !ok, reason);
    t.diagnostic(`native addon not built here: ${native.stdout.trim()}`);
  } else {
    assert.match(native.stdout, /built build\/native\/udpio\.node/);
    assert.ok(ok, `the pump loads the addon it built: ${reason}`);
  }
});
