// Configuration validation: the HA-ports caveat matrix (a valid and a violating
// configuration per caveat, with the exact message), the other checks, warnings and info,
// the names in every line (`rules[1]: rule "b": …`), and `haports validate` exit codes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Core } from '../../build/host/core.mjs';

const bin = new URL('../../bin/haports.mjs', import.meta.url).pathname;

const fe = (name, address) => ({ name, address });
const pool = (name, ...addresses) => ({
  name, backends: addresses.map((a, i) => ({ name: `${name}-${i}`, address: a })),
});
const ha = (name, frontend, backendPool, floatingIp) => ({
  name, frontend, backendPool, protocol: 'all', frontendPort: 0, backendPort: 0, floatingIp,
});
const tcp = (name, frontend, backendPool, port, floatingIp = false) => ({
  name, frontend, backendPool, protocol: 'tcp', frontendPort: port, backendPort: port, floatingIp,
});
const KEY = '0x000102030405060708090a0b0c0d0e0f';
const config = (frontends, backendPools, rules) => ({ hashKey: KEY, frontends, backendPools, rules });

const FE = [fe('fe1', '10.0.0.100'), fe('fe2', '10.0.0.101')];

/** [caveat, description, configuration, expected errors (exact)] */
const matrix = [
  ['1', 'one non-floating HA-ports rule on a frontend', config(FE, [pool('p', '10.0.1.4')], [ha('a', 'fe1', 'p', false)]), []],
  ['1', 'a floating and a non-floating HA-ports rule on one frontend',
    config(FE, [pool('p', '10.0.1.4'), pool('q', '10.0.1.5')], [ha('a', 'fe1', 'p', true), ha('b', 'fe1', 'q', false)]),
    ['rules[1]: rule "b": frontend "fe1" already has HA-ports rule "a" (rules[0]); a frontend may have one floating-IP or one non-floating HA-ports rule, never both (HA-ports caveat 1)']],
  ['2', 'a backend address in one non-floating HA-ports rule only',
    config(FE, [pool('p', '10.0.1.4'), pool('q', '10.0.1.5')], [ha('a', 'fe1', 'p', false), tcp('web', 'fe2', 'q', 80)]), []],
  ['2', 'a backend address of a non-floating HA-ports rule also in a TCP rule (through another pool)',
    config(FE, [pool('p', '10.0.1.4', '10.0.1.6'), pool('q', '10.0.1.5', '10.0.1.4', '10.0.1.6')], [ha('a', 'fe1', 'p', false), tcp('web', 'fe2', 'q', 80)]),
    ['rules[1]: rule "web": its backend "q-1" of pool "q" has address 10.0.1.4, which is in non-floating HA-ports rule "a" (rules[0]) as backend "p-0" of pool "p", so it may be in no other rule; 1 more address is shared the same way (HA-ports caveat 2)']],
  ['3', 'floating HA-ports rules on distinct frontends share backend addresses',
    config(FE, [pool('p', '10.0.1.4'), pool('q', '10.0.1.4')], [ha('a', 'fe1', 'p', true), ha('b', 'fe2', 'q', true)]), []],
  ['3', 'floating HA-ports rules share a backend address and a frontend',
    config(FE, [pool('p', '10.0.1.4'), pool('q', '10.0.1.4')], [ha('a', 'fe1', 'p', true), ha('b', 'fe1', 'q', true)]),
    ['rules[1]: rule "b": frontend "fe1" already has HA-ports rule "a" (rules[0]); a frontend may have one floating-IP or one non-floating HA-ports rule, never both (HA-ports caveat 1)',
      'rules[1]: rule "b": its backend "q-0" of pool "q" has address 10.0.1.4, which is in floating-IP HA-ports rule "a" (rules[0]) as backend "p-0" of pool "p", on the same frontend "fe1"; floating-IP HA-ports rules that share a backend address need distinct frontends (HA-ports caveat 3)']],
  ['4', 'two floating HA-ports rules on one pool',
    config(FE, [pool('p', '10.0.1.4')], [ha('a', 'fe1', 'p', true), ha('b', 'fe2', 'p', true)]), []],
  ['4', 'two non-HA-ports rules (one floating) on one pool',
    config(FE, [pool('p', '10.0.1.4')], [tcp('web', 'fe1', 'p', 80), tcp('tls', 'fe1', 'p', 443, true)]), []],
  ['4', 'an HA-ports rule and a non-HA-ports rule on one pool',
    config(FE, [pool('p', '10.0.1.4')], [ha('a', 'fe1', 'p', true), tcp('web', 'fe2', 'p', 80, true)]),
    ['backendPools[0]: pool "p": used by HA-ports rule "a" (rules[0]) and by non-HA-ports rule "web" (rules[1]); the rules of one pool must all be HA-ports rules (with floating IP) or all non-HA-ports rules (HA-ports caveat 4)']],
  ['4', 'two HA-ports rules on one pool, one not floating',
    config(FE, [pool('p', '10.0.1.4')], [ha('a', 'fe1', 'p', true), ha('b', 'fe2', 'p', false)]),
    ['rules[0]: rule "a": its backend "p-0" of pool "p" has address 10.0.1.4, which is in non-floating HA-ports rule "b" (rules[1]) too, so it may be in no other rule (HA-ports caveat 2)',
      'backendPools[0]: pool "p": used by HA-ports rules "a" (rules[0]) and "b" (rules[1]), so all must have floatingIp true, but rule "b" (rules[1]) does not (HA-ports caveat 4)']],
];

for (const [caveat, description, cfg, expected] of matrix) {
  test(`caveat ${caveat}: ${description} → ${expected.length ? 'rejected' : 'valid'}`, () => {
    const { errors } = Core.check(cfg);
    assert.deepEqual(errors, expected);
  });
}

test('other checks: ports, protocol all, idle timeout, names, families, prime M — all reported at once', () => {
  const cfg = config(
    [fe('fe1', '10.0.0.100'), fe('fe1', 'fd00::1')],
    [{ name: 'p', maglevTableSize: 1000, backends: [{ name: 'b', address: 'fd00:1::4' }, { name: 'b', address: '10.0.1.4' }] }],
    [
      { ...tcp('web', 'fe1', 'p', 80), frontendPort: 65535, idleTimeoutMinutes: 3 },
      { ...tcp('dns', 'fe1', 'p', 53), protocol: 'udp', backendPort: 0 },
      { ...ha('a', 'fe1', 'p', false), frontendPort: 80 },
      { ...tcp('web2', 'fe1', 'p', 22), probe: 'nope', extra: 1 },
      tcp('web2', 'fe1', 'p', 22),
    ],
  );
  const { errors } = Core.check(cfg);
  assert.deepEqual(errors.sort(), [
    'backendPools[0].backends[1].name: backend "b" of pool "p": name already used by backendPools[0].backends[0]',
    'backendPools[0].maglevTableSize: pool "p": must be prime, got 1000',
    'frontends[1].name: frontend "fe1": name already used by frontends[0]',
    'rules[0].frontendPort: rule "web": must be between 0 and 65534, got 65535',
    'rules[0].idleTimeoutMinutes: rule "web": must be between 4 and 100, got 3',
    'rules[0]: rule "web": frontend "fe1" is IPv4 but backend "b" of pool "p" is IPv6; a non-floating rule needs one address family',
    'rules[1]: rule "dns": frontend "fe1" is IPv4 but backend "b" of pool "p" is IPv6; a non-floating rule needs one address family',
    'rules[1]: rule "dns": ports 0 mean HA ports, which needs protocol "all"; a udp rule needs frontendPort 1-65534 and backendPort 1-65535',
    'rules[2]: rule "a": frontend "fe1" is IPv4 but backend "b" of pool "p" is IPv6; a non-floating rule needs one address family',
    'rules[2]: rule "a": protocol "all" (HA ports) needs frontendPort 0 and backendPort 0',
    'rules[3].extra: rule "web2": unknown field',
    'rules[3].probe: rule "web2": unknown probe "nope"',
    'rules[3]: rule "web2": frontend "fe1" is IPv4 but backend "b" of pool "p" is IPv6; a non-floating rule needs one address family',
    'rules[4].name: rule "web2": name already used by rules[3]',
    'rules[4]: rule "web2": frontend "fe1" is IPv4 but backend "b" of pool "p" is IPv6; a non-floating rule needs one address family',
    'rules[4]: rule "web2": same frontend, protocol and port as rule "web2" (rules[3])',
  ].sort());
});

test('warnings (M < 100 × backends) and info (HA ports on IPv6: Azure history) — never a rejection', () => {
  const cfg = config([fe('fe6', 'fd00::100')], [{ name: 'p', maglevTableSize: 101, backends: [{ name: 'b0', address: 'fd00:1::4' }, { name: 'b1', address: 'fd00:1::5' }] }],
    [ha('a', 'fe6', 'p', true)]);
  const { errors, warnings, info } = Core.check(cfg);
  assert.deepEqual(errors, []);
  assert.deepEqual(warnings, [
    'backendPools[0].maglevTableSize: pool "p": 101 is less than 100 × 2 backends; the spread over backends will be uneven',
  ]);
  assert.deepEqual(info, [
    'rules[0]: rule "a": HA ports on IPv6 frontend "fe6" were not available in Azure\'s original (2017) HA-ports release; Azure supports them now, and so does haports',
  ]);
});

test('every line names its object beside its path: frontends, backends (with their pool), probes; the path stays a clean JSON path', () => {
  const cfg = config(
    [fe('fe1', '10.0.0.100'), fe('fe2', '10.0.0.100'), fe('fe3', '10.0.0.300')],
    [{ name: 'nvas', backends: [{ name: 'nva-1', address: '10.0.1.4' }, { name: 'nva-2', address: '10.0.1.300', weight: -1, color: 'red' }] }],
    [{ ...tcp('web', 'fe1', 'nvas', 80), probe: 'hc' }],
  );
  const { errors } = Core.check({ ...cfg, probes: [{ name: 'hc', port: 22, intervalSeconds: 2, timeoutSeconds: 3 }] });
  assert.deepEqual(errors.sort(), [
    'backendPools[0].backends[1].address: backend "nva-2" of pool "nvas": not an IPv4 or IPv6 address: "10.0.1.300"',
    'backendPools[0].backends[1].color: backend "nva-2" of pool "nvas": unknown field',
    'backendPools[0].backends[1].weight: backend "nva-2" of pool "nvas": must be between 0 and 1000, got -1',
    'frontends[1].address: frontend "fe2": same address as frontend "fe1" (frontends[0])',
    'frontends[2].address: frontend "fe3": not an IPv4 or IPv6 address: "10.0.0.300"',
    'probes[0].timeoutSeconds: probe "hc": must not exceed intervalSeconds (2): a probe ends before the next one is due',
  ].sort());
  // An object without a usable name is named by its path alone.
  assert.deepEqual(Core.check(config(FE, [{ name: '', backends: [{ name: 'b', address: 'x' }] }], [])).errors, [
    'backendPools[0].name: must not be empty',
    'backendPools[0].backends[0].address: backend "b": not an IPv4 or IPv6 address: "x"',
  ]);
  // A name is quoted as JSON is, so that a line stays one line.
  assert.deepEqual(Core.check(config([fe('fe\n"1"', '10.0.0.300')], [], [])).errors, [
    'frontends[0].address: frontend "fe\\u000a\\"1\\"": not an IPv4 or IPv6 address: "10.0.0.300"',
  ]);
  for (const line of [...errors, ...matrix.flatMap(([, , , expected]) => expected)]) {
    assert.match(line, /^[A-Za-z]+(\[\d+\]|\.[A-Za-z]+)*: (rule|frontend|backend|pool|probe) "/, line);
  }
});

test('an error about several rules names every one of them, by name and path', () => {
  const fes = [fe('fe1', '10.0.0.1'), fe('fe2', '10.0.0.2'), fe('fe3', '10.0.0.3')];
  const p = [pool('p', '10.0.1.4')];
  assert.deepEqual(Core.check(config(fes, p, [ha('a', 'fe1', 'p', true), ha('b', 'fe2', 'p', true), tcp('web', 'fe3', 'p', 80), tcp('tls', 'fe3', 'p', 443)])).errors, [
    'backendPools[0]: pool "p": used by HA-ports rules "a" (rules[0]) and "b" (rules[1]) and by non-HA-ports rules "web" (rules[2]) and "tls" (rules[3]); the rules of one pool must all be HA-ports rules (with floating IP) or all non-HA-ports rules (HA-ports caveat 4)',
  ]);
  const { errors } = Core.check(config(fes, p, [ha('a', 'fe1', 'p', true), ha('b', 'fe2', 'p', false), ha('c', 'fe3', 'p', false)]));
  assert.deepEqual(errors.filter((e) => e.includes('caveat 4')), [
    'backendPools[0]: pool "p": used by HA-ports rules "a" (rules[0]), "b" (rules[1]) and "c" (rules[2]), so all must have floatingIp true, but rules "b" (rules[1]) and "c" (rules[2]) do not (HA-ports caveat 4)',
  ]);
  // Every caveat line of the matrix names each rule it concerns by name and path.
  for (const [caveat, , cfg, expected] of matrix) {
    for (const line of expected.filter((l) => l.includes(`caveat ${caveat})`))) {
      const named = [...line.matchAll(/rules? "([^"]+)"|, "([^"]+)" \(rules\[|and "([^"]+)" \(rules\[/g)].map((m) => m[1] ?? m[2] ?? m[3]);
      assert.ok(named.length >= 2, `${line}: names ${named}`);
      for (const name of named) {
        const i = cfg.rules.findIndex((r) => r.name === name);
        assert.ok(i >= 0 && (line.includes(`"${name}" (rules[${i}])`) || line.startsWith(`rules[${i}]: rule "${name}": `)), `${line}: ${name}`);
      }
    }
  }
});

test('haports validate examples/config.json: valid, no warning, the IPv6 note as info (text and --json)', () => {
  const example = new URL('../../examples/config.json', import.meta.url).pathname;
  const run = (...args) => spawnSync(process.execPath, [bin, 'validate', ...args], { encoding: 'utf8' });
  const note = 'HA ports on IPv6 frontend "fe-v6" were not available in Azure\'s original (2017) HA-ports release; Azure supports them now, and so does haports';
  let r = run(example);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `${example}: valid\ninfo: rules[1]: rule "ha6": ${note}\n`);
  assert.doesNotMatch(r.stdout, /^warning:/m);
  r = run('--json', example);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { valid: true, errors: [], warnings: [], info: [{ path: 'rules[1]', message: `rule "ha6": ${note}` }] });
});

test('haports validate --json: {valid, errors, warnings, info}, each line a {path, message}', () => {
  const dir = mkdtempSync(join(tmpdir(), 'haports-validate-'));
  const file = join(dir, 'all.json');
  const { hashKey, ...keyless } = config([fe('fe1', '10.0.0.100'), fe('fe6', 'fd00::100')],
    [pool('p', '10.0.1.4'), { name: 'p6', maglevTableSize: 101, backends: [{ name: 'b0', address: 'fd00:1::4' }, { name: 'b1', address: 'fd00:1::5' }] }],
    [ha('a', 'fe1', 'p', true), ha('a6', 'fe6', 'p6', true), { ...tcp('web', 'fe1', 'p', 80), frontendPort: 0 }]);
  writeFileSync(file, JSON.stringify(keyless));
  const r = spawnSync(process.execPath, [bin, 'validate', '--json', file], { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(j), ['valid', 'errors', 'warnings', 'info']);
  assert.equal(j.valid, false);
  for (const o of [...j.errors, ...j.warnings, ...j.info]) assert.deepEqual(Object.keys(o), ['path', 'message']);
  assert.deepEqual(j.errors.map((e) => e.path), ['rules[2]', 'backendPools[0]']);
  assert.match(j.errors[0].message, /^rule "web": ports 0 mean HA ports/);
  assert.match(j.errors[1].message, /^pool "p": used by HA-ports rule "a" \(rules\[0\]\) and by non-HA-ports rule "web" \(rules\[2\]\);/);
  assert.deepEqual(j.warnings.map((w) => w.path), ['hashKey', 'backendPools[1].maglevTableSize']);
  assert.match(j.warnings[1].message, /^pool "p6": 101 is less than 100 × 2 backends/);
  assert.deepEqual(j.info, [{ path: 'rules[1]', message: 'rule "a6": HA ports on IPv6 frontend "fe6" were not available in Azure\'s original (2017) HA-ports release; Azure supports them now, and so does haports' }]);
});

test('hash key: hashKey (128 bits) or the older hashSeed; none warns; a bad key is reported without its digits', () => {
  const base = config(FE, [pool('p', '10.0.1.4')], [ha('a', 'fe1', 'p', true)]);
  const { hashKey, ...keyless } = base;
  assert.deepEqual(Core.check(keyless).warnings, [
    'hashKey: not set: the built-in public key is used, so instances still agree but anyone can compute which flows share'
    + ' a flow-table bucket or a backend and aim a flood at chosen flows; set the same secret "0x" + 32 hex digits on every instance',
  ]);
  assert.deepEqual(Core.check(base), { errors: [], warnings: [], info: [] });
  assert.deepEqual(Core.check({ ...keyless, hashSeed: '0x1f2e3d4c5b6a7988' }), { errors: [], warnings: [], info: [] });
  assert.deepEqual(Core.check({ ...keyless, hashSeed: 12345 }), { errors: [], warnings: [], info: [] });
  const bad = (cfg) => Core.check({ ...keyless, ...cfg }).errors;
  const secret = 'deadbeefdeadbeefdeadbeefdeadbee'; // 31 digits
  assert.deepEqual(bad({ hashKey: `0x${secret}` }), ['hashKey: expected "0x" and 32 hex digits (128 bits), got 31 characters after 0x']);
  assert.deepEqual(bad({ hashKey: `0x${secret}g` }), ['hashKey: expected "0x" and 32 hex digits (128 bits), got a character that is not a hex digit at position 33']);
  assert.deepEqual(bad({ hashKey: `${secret}00` }), ['hashKey: expected "0x" and 32 hex digits (128 bits), got a string that does not start with 0x']);
  assert.deepEqual(bad({ hashKey: 42 }), ['hashKey: expected "0x" and 32 hex digits (128 bits), got number']);
  assert.deepEqual(bad({ hashKey: KEY, hashSeed: '0x1' }), ['hashSeed: give hashKey or hashSeed, not both (hashSeed is the older 64-bit form of hashKey)']);
  assert.deepEqual(bad({ hashSeed: `0x${secret}` }), ['hashSeed: expected a 64-bit seed as "0x" and 1-16 hex digits (or, better, a 128-bit hashKey), got a string of 33 characters that is not one']);
  for (const e of [...bad({ hashKey: `0x${secret}` }), ...bad({ hashSeed: `0x${secret}` })]) assert.ok(!e.includes(secret), e);
});

test('haports validate: exit 0 valid, 1 invalid (one line per error), 2 unreadable; --json', () => {
  const dir = mkdtempSync(join(tmpdir(), 'haports-validate-'));
  const good = join(dir, 'good.json');
  const bad = join(dir, 'bad.json');
  writeFileSync(good, JSON.stringify(matrix[0][2]));
  writeFileSync(bad, JSON.stringify(matrix[1][2]));
  const run = (...args) => spawnSync(process.execPath, [bin, 'validate', ...args], { encoding: 'utf8' });
  let r = run(good);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `${good}: valid\n`);
  r = run(bad);
  assert.equal(r.status, 1);
  assert.equal(r.stdout, `${matrix[1][3][0]}\n`);
  r = run('--json', bad);
  assert.equal(r.status, 1);
  const asObject = (line) => ({ path: line.slice(0, line.indexOf(': ')), message: line.slice(line.indexOf(': ') + 2) });
  assert.deepEqual(JSON.parse(r.stdout), { valid: false, errors: matrix[1][3].map(asObject), warnings: [], info: [] });
  r = run(join(dir, 'missing.json'));
  assert.equal(r.status, 2);
  assert.match(r.stderr, /cannot read configuration .*missing\.json: ENOENT/);
  r = run('--json', join(dir, 'missing.json'));
  assert.equal(r.status, 2);
  const j = JSON.parse(r.stdout);
  assert.equal(j.valid, false);
  assert.equal(j.errors[0].path, '$');
  assert.match(j.errors[0].message, /cannot read configuration .*missing\.json: ENOENT/);
  r = run();
  assert.equal(r.status, 2);
});

test('haports validate checks a pump section as the pump reads it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'haports-validate-'));
  const file = join(dir, 'pump.json');
  const listener = { name: 'vx', protocol: 'vxlan', frontend: 'fe1', bind: '10.9.0.1:4789', vnis: [100], peers: ['10.9.0.0/24'] };
  const run = (cfg) => {
    writeFileSync(file, JSON.stringify(cfg));
    return spawnSync(process.execPath, [bin, 'validate', file], { encoding: 'utf8' });
  };
  const base = matrix[0][2];
  let r = run({ ...base, pump: { listeners: [listener] } });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  // What `haports pump` would refuse: no peers (an open relay), an unknown frontend.
  const { peers, ...open } = listener;
  r = run({ ...base, pump: { listeners: [{ ...open, frontend: 'nope' }] } });
  assert.equal(r.status, 1);
  assert.deepEqual(r.stdout.trim().split('\n'), [
    'pump.listeners[0].frontend: listener "vx": unknown frontend "nope"',
    'pump.listeners[0].peers: listener "vx": required, a non-empty array of source prefixes ("10.9.0.0/24", "fd00::/64", or one address) of the tunnel peers this listener accepts',
  ]);
  assert.equal(peers.length, 1);
});
