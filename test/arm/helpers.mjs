// Shared by the import-arm tests: run the command in-process or through the CLI.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';

import { armCommand } from '../../build/host/arm.mjs';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const TEMPLATES = 'test/arm/templates';
export const template = (name) => `${TEMPLATES}/${name}`;

function sink() {
  const chunks = [];
  const stream = new Writable({ write(chunk, _enc, done) { chunks.push(String(chunk)); done(); } });
  return { stream, text: () => chunks.join('') };
}

/** The hashKey the tests give import-arm, so that its output is fixed. */
export const KEY = '0x000102030405060708090a0b0c0d0e0f';

/** `haports import-arm ARGS` through armCommand (the code the CLI runs), from the repository
 *  root, with --hash-key KEY unless the arguments give --hash-key (or 'random' is first). */
export async function importArm(...args) {
  if (args[0] === 'random') args = args.slice(1);
  else if (!args.includes('--hash-key')) args = [...args, '--hash-key', KEY];
  const out = sink();
  const err = sink();
  const cwd = process.cwd();
  process.chdir(ROOT);
  try {
    const code = await armCommand(args, out.stream, err.stream);
    return { code, stdout: out.text(), stderr: err.text(), lines: err.text().split('\n').filter((l) => l) };
  } finally {
    process.chdir(cwd);
  }
}

/** `node bin/haports.mjs ARGS` from the repository root. */
export function cli(...args) {
  const r = spawnSync(process.execPath, ['bin/haports.mjs', ...args], { cwd: ROOT, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, lines: r.stderr.split('\n').filter((l) => l) };
}

/** Writes `config` to a temporary file and runs `haports validate` on it. */
export function validate(config) {
  const dir = mkdtempSync(join(tmpdir(), 'haports-arm-'));
  const file = join(dir, 'config.json');
  writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config, null, 2));
  return cli('validate', file);
}

/** Writes `object` as JSON to a fresh temporary file and returns its path. */
export function writeTemp(name, object) {
  const file = join(mkdtempSync(join(tmpdir(), 'haports-arm-')), name);
  writeFileSync(file, JSON.stringify(object, null, 2));
  return file;
}
