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

test('replay exit codes: 0 done, 1 invalid configuration, 2 usage or input error (a broken or truncated capture), 3 internal failure; --json says each in JSON', async () => {
  const { mkdtempSync, readFileSync, writeFileSync } = await import('node:fs');
  const { gzipSync } = await import('node:zlib');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'haports-exit-'));
  const sample = readFileSync('examples/sample.pcap');
  const file = (name, data) => { writeFileSync(join(dir, name), data); return join(dir, name); };
  const cut = file('cut.pcap', sample.subarray(0, sample.length - 7));
  const badGzip = file('bad.pcap.gz', gzipSync(sample).subarray(0, 200));
  const invalid = file('invalid.json', JSON.stringify({ rules: 5 }));
  // A bug, made on purpose: the capture cannot be opened for a reason no caller can cause.
  const inject = file('inject.mjs', `import fs from 'node:fs'; import { syncBuiltinESMExports } from 'node:module';
fs.createReadStream = () => { throw new Error('injected fault'); }; syncBuiltinESMExports();\n`);
  const C = ['--config', 'examples/config.json'];
  const cases = [
    // [what, arguments, exit code, the error's path with --json, node options]
    ['a capture replayed', [...C, 'examples/sample.pcap'], 0],
    ['an invalid configuration', ['--config', invalid, 'examples/sample.pcap'], 1, 'rules'],
    ['no --config', ['examples/sample.pcap'], 2, '--config'],
    ['an unknown option', [...C, '--bogus', 'examples/sample.pcap'], 2, '--bogus'],
    ['two captures', [...C, 'examples/sample.pcap', 'examples/sample.pcap'], 2, 'input'],
    ['a configuration that cannot be read', ['--config', join(dir, 'none.json'), 'examples/sample.pcap'], 2, '--config'],
    ['an unknown --frontend', [...C, '--frontend', 'nope', 'examples/sample.pcap'], 2, '--frontend'],
    ['--verdicts in a directory that does not exist', [...C, '--verdicts', join(dir, 'no/v.jsonl'), 'examples/sample.pcap'], 2, '--verdicts'],
    ['--verdicts on a full disk', [...C, '--verdicts', '/dev/full', 'examples/sample.pcap'], 2, '--verdicts'],
    ['a capture that does not exist', [...C, join(dir, 'none.pcap')], 2, 'input'],
    ['a truncated capture', [...C, cut], 2, 'input'],
    ['a truncated capture on standard input', [...C, '-'], 2, 'input', [], sample.subarray(0, sample.length - 7)],
    ['not a capture', [...C, 'examples/config.json'], 2, 'input'],
    ['a broken gzip stream', [...C, badGzip], 2, 'input'],
    ['an internal failure', [...C, 'examples/sample.pcap'], 3, 'internal', ['--import', inject]],
  ];
  for (const [what, args, code, path, node = [], input] of cases) {
    const human = spawnSync(process.execPath, [...node, bin, 'replay', ...args], { encoding: 'utf8', input });
    assert.equal(human.status, code, `${what}: ${human.stderr}`);
    if (code === 0) {
      assert.equal(human.stdout.trim().split('\n').length, 203, what);
      assert.match(human.stderr, /^packets 203: /, what);
    } else if (code === 3) {
      assert.match(human.stderr, /^haports: internal failure \(please report it\): Error: injected fault\n {4}at /, what);
    } else {
      assert.match(human.stderr, code === 1 ? /^haports: .* is not a valid configuration:\n {2}rules: / : /^haports: /, what);
      assert.doesNotMatch(human.stderr, /\n\s+at /, `${what}: no stack trace`);
    }

    const json = spawnSync(process.execPath, [...node, bin, 'replay', '--json', ...args], { encoding: 'utf8', input });
    assert.equal(json.status, code, `${what} (--json): ${json.stderr}`);
    assert.equal(json.stdout.split('\n').length, 2, `${what} (--json): one line on standard output`);
    const answer = JSON.parse(json.stdout);
    if (code === 0) {
      assert.equal(answer.packets, 203, what);
      assert.equal(json.stderr, '', what);
      continue;
    }
    assert.deepEqual(Object.keys(answer), ['errors'], what);
    assert.ok(answer.errors.length >= 1, what);
    for (const e of answer.errors) assert.deepEqual(Object.keys(e), ['path', 'message'], what);
    assert.equal(answer.errors[0].path, path, `${what}: ${JSON.stringify(answer.errors)}`);
    if (code === 3) assert.match(json.stderr, /^haports: internal failure \(please report it\): Error: injected fault\n {4}at /, what);
    else assert.equal(json.stderr, '', `${what} (--json): nothing on standard error`);
  }
  // The usage says them, once for every command.
  assert.match(run('--help').stdout, /exit codes \(every command\):\n {2}0 +success\n {2}1 +invalid configuration\n {2}2 +usage or input error[^]*\n {2}3 +internal failure/);
});

test('replay --json: the summary as one object, its counts those of the verdict lines', async () => {
  const { readFileSync } = await import('node:fs');
  const { gzipSync } = await import('node:zlib');
  for (const extra of [[], ['--frontend', 'fe-v4']]) {
    const lines = run('replay', '--config', 'examples/config.json', '--quiet', ...extra, 'examples/sample.pcap').stdout.trim().split('\n').map((l) => JSON.parse(l));
    const r = run('replay', '--config', 'examples/config.json', '--json', ...extra, 'examples/sample.pcap');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    const s = JSON.parse(r.stdout);
    const count = (pick) => {
      const m = {};
      for (const l of lines) { const k = pick(l); if (k != null) m[k] = (m[k] ?? 0) + 1; }
      return m;
    };
    assert.equal(s.input, 'examples/sample.pcap');
    assert.equal(s.format, 'pcap');
    assert.equal(s.gzip, false);
    assert.deepEqual(s.linkTypes, [{ linktype: 1, name: 'ethernet', packets: 203 }]);
    assert.equal(s.packets, 203);
    assert.equal(s.bytes, readFileSync('examples/sample.pcap').length);
    assert.ok(s.packetBytes > 0 && s.packetBytes < s.bytes);
    assert.ok(s.seconds >= 0 && (s.packetsPerSecond === null || s.packetsPerSecond > 0));
    assert.deepEqual(s.verdicts, { forward: 0, drop: 0, nomatch: 0, reset: 0, ...count((l) => l.verdict) });
    assert.deepEqual(s.rules, count((l) => l.rule));
    assert.deepEqual(s.backends, count((l) => (l.verdict === 'forward' ? l.backend : null)));
    assert.deepEqual(s.drops, count((l) => (l.verdict === 'drop' ? l.reason : null)));
    const flows = new Map();
    for (const l of lines) {
      if (l.verdict !== 'forward') continue;
      const t = l.tuple;
      const [a, b] = [`${t.src}|${t.sport}`, `${t.dst}|${t.dport}`].sort();
      const key = `${t.proto}|${a}|${b}`;
      const f = flows.get(key) ?? { dirs: new Set(), backends: new Set() };
      f.dirs.add(`${t.src}|${t.sport}`);
      f.backends.add(l.backend);
      flows.set(key, f);
    }
    assert.deepEqual(s.flows, {
      summarized: flows.size,
      bothDirections: [...flows.values()].filter((f) => f.dirs.size === 2).length,
      onMoreThanOneBackend: [...flows.values()].filter((f) => f.backends.size > 1).length,
      truncated: false,
      limit: 100000,
      packetsNotSummarized: 0,
    });
    assert.equal(s.flowTable.capacity, 65536);
    for (const k of ['used', 'new', 'hits', 'evicted', 'untracked', 'movedOffDown', 'movedOffDrained']) assert.equal(typeof s.flowTable[k], 'number', k);
    assert.deepEqual(Object.keys(s.nat), ['forward', 'reply']);
    assert.deepEqual(Object.keys(s.fragments), ['first', 'followed', 'hashed3Tuple']);
    if (extra.length) assert.ok(s.flows.bothDirections > 0, 'next-hop: replies seen too');
  }
  // From standard input, gzip-compressed; the verdict lines only where --verdicts says.
  const gz = spawnSync(process.execPath, [bin, 'replay', '--config', 'examples/config.json', '--json', '--verdicts', '/dev/null', '-'], { input: gzipSync(readFileSync('examples/sample.pcap')), encoding: 'utf8' });
  assert.equal(gz.status, 0, gz.stderr);
  const s = JSON.parse(gz.stdout);
  assert.equal(s.input, '-');
  assert.equal(s.gzip, true);
  assert.equal(s.bytes, readFileSync('examples/sample.pcap').length);
});

test('replay --json: no progress, even on a terminal (which shows it otherwise)', async (t) => {
  const { main } = await import('../../build/host/cli.mjs');
  // Every clock reading a second and a half after the last: progress is due at every batch.
  let now = 0;
  t.mock.method(Date, 'now', () => (now += 1500));
  const tty = () => {
    const s = { isTTY: true, text: '', write(x) { s.text += x; return true; }, on() { return s; }, once() { return s; }, off() { return s; } };
    return s;
  };
  const args = ['replay', '--config', 'examples/config.json', 'examples/sample.pcap'];
  const [out, err] = [tty(), tty()];
  assert.equal(await main(args, out, err), 0, err.text);
  assert.match(err.text, /\r203 packets, [\d,]+\/s/, 'the control: progress on a terminal');
  const [jout, jerr] = [tty(), tty()];
  assert.equal(await main([...args, '--json'], jout, jerr), 0, jerr.text);
  assert.equal(jerr.text, '');
  assert.equal(JSON.parse(jout.text).packets, 203);
});

test('replay streams a capture of 1 GiB and more from a pipe in bounded memory (HAPORTS_REPLAY_STREAM_MB, default 1074 MB = 1 GiB)', { timeout: 600_000 }, async () => {
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { spawn } = await import('node:child_process');
  const mb = Number(process.env.HAPORTS_REPLAY_STREAM_MB ?? 1074);
  // The replay's own peak resident memory (getrusage), written as it exits.
  const dir = mkdtempSync(join(tmpdir(), 'haports-stream-'));
  const report = join(dir, 'report.mjs');
  writeFileSync(report, `import { writeSync } from 'node:fs';
process.on('exit', () => writeSync(3, JSON.stringify(process.resourceUsage())));\n`);
  // Generated as it is read, through a pipe: the capture is never on disk or in memory whole.
  const gen = spawn(process.execPath, [new URL('./gen-capture.mjs', import.meta.url).pathname, String(mb)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const replay = spawn(process.execPath, ['--import', report, bin, 'replay', '--config', 'examples/config.json', '--json', '--verdicts', '/dev/null', '-'],
    { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
  gen.stdout.pipe(replay.stdin);
  let stdout = '';
  let stderr = '';
  let usage = '';
  replay.stdout.on('data', (d) => { stdout += d; });
  replay.stderr.on('data', (d) => { stderr += d; });
  replay.stdio[3].on('data', (d) => { usage += d; });
  const [code] = await Promise.all([
    new Promise((resolve) => replay.on('close', resolve)),
    new Promise((resolve) => gen.on('close', resolve)),
  ]);
  assert.equal(code, 0, stderr);
  const s = JSON.parse(stdout);
  const records = Math.floor((mb * 1e6) / 116);
  assert.equal(s.packets, records);
  assert.equal(s.bytes, 24 + records * 116);
  if (mb >= 1074) assert.ok(s.bytes >= 2 ** 30, `${s.bytes} bytes: 1 GiB or more`);
  assert.equal(s.verdicts.forward, records);
  assert.equal(s.flows.truncated, true);
  const peakMiB = JSON.parse(usage).maxRSS / 1024;
  assert.ok(peakMiB < 256, `peak resident memory ${Math.round(peakMiB)} MiB for a capture of ${mb} MB (the bound: 256 MiB, whatever the size)`);
  console.log(`streamed replay: ${(s.bytes / 2 ** 30).toFixed(2)} GiB, ${s.packets.toLocaleString('en-US')} packets in ${s.seconds.toFixed(1)} s `
    + `(${s.packetsPerSecond.toLocaleString('en-US')} packets/s), peak resident memory ${Math.round(peakMiB)} MiB`);
});
