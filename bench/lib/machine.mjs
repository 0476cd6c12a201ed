// The machine and toolchain a run was made on.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';

function cpuInfo() {
  const text = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const field = (k) => new RegExp(`^${k}\\s*:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim();
  const cache = [];
  for (let i = 0; i < 5; i++) {
    const d = `/sys/devices/system/cpu/cpu0/cache/index${i}`;
    if (!existsSync(d)) continue;
    const r = (f) => readFileSync(join(d, f), 'utf8').trim();
    cache.push(`L${r('level')}${r('type') === 'Data' ? 'd' : r('type') === 'Instruction' ? 'i' : ''} ${r('size')}`);
  }
  return {
    model: field('model name') ?? os.cpus()[0]?.model ?? 'unknown',
    family: field('cpu family'), modelNumber: field('model'), stepping: field('stepping'),
    mhz: field('cpu MHz'), cache: cache.join(', '),
    hypervisor: /\bhypervisor\b/.test(field('flags') ?? ''),
  };
}

function version(path) {
  try { return JSON.parse(readFileSync(path, 'utf8')).version; } catch { return null; }
}

function git(root, args) {
  const r = spawnSync('git', args, { cwd: root, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

export function describeMachine(root, tools) {
  const cpu = cpuInfo();
  const status = git(root, ['status', '--porcelain', '--', 'assembly']);
  return {
    cpu: cpu.model, cpuFamily: cpu.family, cpuModel: cpu.modelNumber, cpuStepping: cpu.stepping,
    cpuMHz: cpu.mhz, cache: cpu.cache, virtualised: cpu.hypervisor,
    cores: os.cpus().length, memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version, v8: process.versions.v8,
    wasmtime: tools.wasmtime?.version ?? null, python: tools.wasmtime?.python ?? null,
    gcc: tools.native?.gcc ?? null, wasm2c: tools.native?.wasm2c ?? null, cflags: tools.native?.cflags ?? null,
    referenceGcc: tools.reference?.gcc ?? null, referenceCflags: tools.reference?.cflags ?? null,
    assemblyscript: version(join(root, 'node_modules', 'assemblyscript', 'package.json')),
    hashring: version(join(root, 'node_modules', 'hashring', 'package.json')),
    gitHead: git(root, ['rev-parse', '--short', 'HEAD']),
    assemblyDirty: status === null ? null : status.length > 0,
  };
}

/** CPU pressure (Linux PSI): share of the last 10 s some task waited for a CPU. */
export function cpuPressure() {
  try {
    const m = /some avg10=([\d.]+) avg60=([\d.]+)/.exec(readFileSync('/proc/pressure/cpu', 'utf8'));
    return m ? { avg10: Number(m[1]), avg60: Number(m[2]) } : null;
  } catch { return null; }
}

export function loadAverage() { return os.loadavg()[0]; }
