// The command line: --help for every command, consistent exit codes, and the demo's
// claims (spread, stickiness, symmetry, failover, recovery) checked on its JSON output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

const bin = new URL('../../bin/haports.mjs', import.meta.url).pathname;
const run = (...args) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });

test('every command has --help (exit 0); unknown commands and options exit 2', () => {
  for (const command of ['demo', 'replay', 'validate', 'import-arm', 'pump']) {
    const r = run(command, '--help');
    assert.equal(r.status, 0, command);
    assert.match(r.stdout, new RegExp(`^usage: haports ${command}`), command);
  }
  const top = run('--help');
  assert.equal(top.status, 0);
  for (const command of ['demo', 'replay', 'validate']) assert.match(top.stdout, new RegExp(`\\n  ${command} `));
  assert.equal(run().status, 2);
  assert.equal(run('frobnicate').status, 2);
  assert.equal(run('demo', '--bogus').status, 2);
  assert.equal(run('demo', '--flows', '3').status, 2);
  assert.equal(run('replay', '--config', 'examples/config.json').status, 2);
});

test('haports demo: what it claims is what happens', () => {
  const r = run('demo', '--json', '--flows', '4000', '--seed', '7');
  assert.equal(r.status, 0, r.stderr);
  const d = JSON.parse(r.stdout);
  for (const s of d.spread) assert.ok(Math.abs(s.flows - 1000) <= 100, JSON.stringify(d.spread));
  assert.deepEqual(d.stickiness, { same: 4000, of: 4000 });
  assert.deepEqual(d.symmetry, { same: 4000, of: 4000 });
  const f = d.failover;
  assert.equal(f.tcpStayed, f.tcpOnFailed);
  assert.equal(f.otherMoved, f.otherOnFailed);
  assert.ok(f.tcpOnFailed > 0 && f.otherOnFailed > 0);
  assert.equal(f.bystandersMoved, 0);
  assert.equal(f.newFlowsToFailed, 0);
  assert.ok(Math.abs(d.recovery.newFlowsToReturned / d.recovery.newFlows - 0.25) < 0.06, JSON.stringify(d.recovery));
  assert.equal(d.recovery.existingMoved, 0);
  // The human-readable form says the same.
  const text = run('demo', '--flows', '4000', '--seed', '7').stdout;
  assert.match(text, /Stickiness: the same flows again: 4,000 of 4,000/);
  assert.match(text, /flows on the other appliances that moved: +0/);
});

test('--version prints the package version; an internal failure exits 3 with its stack, not 1 or 2', async () => {
  const pkg = JSON.parse((await import('node:fs')).readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  for (const flag of ['--version', '-V', 'version']) {
    const r = run(flag);
    assert.equal(r.status, 0, flag);
    assert.equal(r.stdout, `haports ${pkg.version}\n`);
  }
  const { main } = await import('../../build/host/cli.mjs');
  let stderr = '';
  const broken = { write() { throw new Error('the output stream broke'); } };
  const code = await main(['validate', 'examples/config.json'], broken, { write(s) { stderr += s; return true; } });
  assert.equal(code, 3);
  assert.match(stderr, /^haports: internal failure \(please report it\): Error: the output stream broke\n {4}at /);
});

test('replay: batches are cut by the arena\'s bytes (200 packets of 64 KiB in one second); a reader that goes away (| head -1) ends it with exit 0', async () => {
  const { writePcap } = await import('../../build/host/pcap.mjs');
  const { packet } = await import('../lib/packets.mjs');
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'haports-replay-'));
  const big = Array.from({ length: 200 }, (_, i) => ({ data: packet({ src: `192.0.2.${i}`, dst: '10.0.0.4', sport: 1000 + i, payload: 65535 - 40 }), tsSec: 1, tsNsec: i }));
  assert.equal(big[0].data.length, 65535);
  writeFileSync(join(dir, 'big.pcap'), writePcap(big, 101));
  const r = run('replay', '--config', 'examples/config.json', '--quiet', join(dir, 'big.pcap'));
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n').length, 200);

  const many = Array.from({ length: 30000 }, (_, i) => ({ data: packet({ src: `198.51.${i >> 8 & 255}.${i & 255}`, dst: '10.0.0.4', sport: 1 + (i % 60000) }), tsSec: 1 + Math.floor(i / 1000), tsNsec: 0 }));
  writeFileSync(join(dir, 'many.pcap'), writePcap(many, 101));
  const piped = spawnSync('bash', ['-c', `set -o pipefail; "${process.execPath}" "${bin}" replay --config examples/config.json "${join(dir, 'many.pcap')}" | head -1`], { encoding: 'utf8' });
  assert.equal(piped.status, 0, piped.stderr);
  assert.equal(piped.stdout.trim().split('\n').length, 1);
  assert.doesNotMatch(piped.stderr, /Error|\n\s+at /, 'no stack trace');
});

test('replay streams: standard input (-) and gzip give the verdicts of the file; a truncated capture is a clear error (exit 2)', async () => {
  const { readFileSync, writeFileSync, mkdtempSync } = await import('node:fs');
  const { gzipSync } = await import('node:zlib');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'haports-stream-'));
  const sample = readFileSync('examples/sample.pcap');
  const file = run('replay', '--config', 'examples/config.json', '--quiet', 'examples/sample.pcap');
  assert.equal(file.status, 0, file.stderr);
  const viaStdin = spawnSync(process.execPath, [bin, 'replay', '--config', 'examples/config.json', '--quiet', '-'], { input: sample, encoding: 'utf8' });
  assert.equal(viaStdin.status, 0, viaStdin.stderr);
  assert.equal(viaStdin.stdout, file.stdout);
  writeFileSync(join(dir, 'sample.pcap.gz'), gzipSync(sample));
  const gz = run('replay', '--config', 'examples/config.json', '--quiet', join(dir, 'sample.pcap.gz'));
  assert.equal(gz.status, 0, gz.stderr);
  assert.equal(gz.stdout, file.stdout);
  const gzStdin = spawnSync(process.execPath, [bin, 'replay', '--config', 'examples/config.json', '--quiet', '-'], { input: gzipSync(sample), encoding: 'utf8' });
  assert.equal(gzStdin.stdout, file.stdout);
  writeFileSync(join(dir, 'cut.pcap'), sample.subarray(0, sample.length - 7));
  const cut = run('replay', '--config', 'examples/config.json', '--quiet', join(dir, 'cut.pcap'));
  assert.equal(cut.status, 2);
  assert.match(cut.stderr, /^haports: .*cut\.pcap: capture: /);
  assert.doesNotMatch(cut.stderr, /\n\s+at /);
});

test('replay streams a capture far larger than its memory: peak memory stays bounded (HAPORTS_REPLAY_STREAM_MB, default 150)', async () => {
  const { readFileSync } = await import('node:fs');
  const { spawn } = await import('node:child_process');
  const mb = Number(process.env.HAPORTS_REPLAY_STREAM_MB ?? 150);
  const gen = spawn(process.execPath, [new URL('./gen-capture.mjs', import.meta.url).pathname, String(mb)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const replay = spawn(process.execPath, [bin, 'replay', '--config', 'examples/config.json', '--verdicts', '/dev/null', '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
  gen.stdout.pipe(replay.stdin);
  let summary = '';
  replay.stdout.on('data', (d) => { summary += d; });
  replay.stderr.on('data', (d) => { summary += d; });
  let peakKiB = 0;
  const t0 = Date.now();
  const poll = setInterval(() => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${replay.pid}/status`, 'utf8'));
      if (m) peakKiB = Math.max(peakKiB, Number(m[1]));
    } catch { /* exited */ }
  }, 100);
  const code = await new Promise((resolve) => replay.on('exit', resolve));
  clearInterval(poll);
  const seconds = (Date.now() - t0) / 1000;
  assert.equal(code, 0, summary);
  const packets = Number(/packets (\d+):/.exec(summary)?.[1]);
  assert.equal(packets, Math.floor((mb * 1e6) / 116));
  assert.ok(peakKiB > 0, 'the peak was read from /proc');
  assert.ok(peakKiB < 320 * 1024, `peak memory ${Math.round(peakKiB / 1024)} MiB for a ${mb} MB capture`);
  console.log(`streamed replay: ${mb} MB, ${packets.toLocaleString('en-US')} packets in ${seconds.toFixed(1)} s `
    + `(${Math.round(packets / seconds).toLocaleString('en-US')} packets/s), peak memory ${Math.round(peakKiB / 1024)} MiB`);
});
