// `haports import-arm` on templates written in the shapes of Azure's public quickstarts for
// an internal load balancer with HA ports (test/arm/templates, each says what it shows).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { importArm, cli, validate, template, writeTemp, KEY } from './helpers.mjs';


test('(a) internal LB, HA-ports rule, TCP probe, NICs with static addresses: exact configuration, valid', async () => {
  const r = await importArm(template('internal-haports.json'));
  assert.equal(r.stderr, '');
  assert.equal(r.code, 0);
  const config = JSON.parse(r.stdout);
  assert.deepEqual(config, {
    hashKey: KEY,
    frontends: [{ name: 'nva-frontend', address: '10.0.2.100' }],
    backendPools: [{ name: 'nvas', backends: [
      { name: 'nva-0-nic/ipconfig1', address: '10.0.2.4' },
      { name: 'nva-1-nic/ipconfig1', address: '10.0.2.5' },
    ] }],
    probes: [{ name: 'ssh-probe', protocol: 'tcp', port: 22, intervalSeconds: 5, threshold: 2 }],
    rules: [{
      name: 'nva-ilb-HARule', frontend: 'nva-frontend', backendPool: 'nvas', protocol: 'all',
      frontendPort: 0, backendPort: 0, floatingIp: false, loadDistribution: 'default',
      idleTimeoutMinutes: 15, enableTcpReset: true, probe: 'ssh-probe',
    }],
  });
  assert.equal(r.stdout, JSON.stringify(config, null, 2) + '\n', 'printed with 2-space indentation');
  const v = validate(r.stdout);
  assert.equal(v.code, 0, v.stdout + v.stderr);
});

test('the imported configuration carries a fresh random 128-bit hashKey, or the one given with --hash-key', async () => {
  const a = JSON.parse((await importArm('random', template('internal-haports.json'))).stdout).hashKey;
  const b = JSON.parse((await importArm('random', template('internal-haports.json'))).stdout).hashKey;
  assert.match(a, /^0x[0-9a-f]{32}$/);
  assert.notEqual(a, b);
  const bad = await importArm(template('internal-haports.json'), '--hash-key', '0x1234');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--hash-key: expected "0x" and 32 hex digits/);
});

test('(b) DSR HA ports on two frontends sharing the NVA NICs: exact configuration, valid (caveat 3 holds)', async () => {
  const r = await importArm(template('dsr-two-frontends.json'));
  assert.equal(r.stderr, '');
  assert.equal(r.code, 0);
  const nvas = [{ name: 'fw-0-nic/ipconfig1', address: '10.1.3.4' }, { name: 'fw-1-nic/ipconfig1', address: '10.1.3.5' }];
  const ha = { protocol: 'all', frontendPort: 0, backendPort: 0, floatingIp: true };
  assert.deepEqual(JSON.parse(r.stdout), {
    hashKey: KEY,
    frontends: [{ name: 'untrust-fe', address: '10.1.1.100' }, { name: 'trust-fe', address: '10.1.2.100' }],
    backendPools: [{ name: 'untrust-pool', backends: nvas }, { name: 'trust-pool', backends: nvas }],
    probes: [{ name: 'health', protocol: 'http', port: 8080, intervalSeconds: 5, threshold: 3, path: '/healthz' }],
    rules: [
      { name: 'ha-untrust', frontend: 'untrust-fe', backendPool: 'untrust-pool', ...ha, loadDistribution: 'sourceIPProtocol',
        idleTimeoutMinutes: 4, enableTcpReset: false, probe: 'health', noHealthyBackends: 'failOpen' },
      { name: 'ha-trust', frontend: 'trust-fe', backendPool: 'trust-pool', ...ha, loadDistribution: 'default',
        idleTimeoutMinutes: 30, enableTcpReset: false, probe: 'health', noHealthyBackends: 'failOpen' },
    ],
  });
  const v = validate(r.stdout);
  assert.equal(v.code, 0, v.stdout + v.stderr);
});

test('(c) an HA-ports rule and a TCP rule on one pool: exit 1 with the core\'s caveat-4 message naming both rules', async () => {
  const r = await importArm(template('mix-caveat4.json'));
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.equal(r.lines[0], 'haports: the configuration imported from test/arm/templates/mix-caveat4.json is not valid:');
  // The caveat's wording belongs to the core's validation; what the import adds is the
  // configuration path, the rules named, and where in the template the object came from.
  const caveat = r.lines.filter((l) => /caveat 4/i.test(l));
  assert.equal(caveat.length, 1, r.stderr);
  assert.match(caveat[0], /^ {2}backendPools\[0\]: /);
  assert.match(caveat[0], /"ha"/);
  assert.match(caveat[0], /"https"/);
  assert.ok(caveat[0].endsWith(' (from resources[0].properties.backendAddressPools[0])'), caveat[0]);
});

test('(d) dynamic private addresses: each names the --set to pass; with them, the import succeeds', async () => {
  const r = await importArm(template('dynamic.json'));
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.deepEqual(r.lines, [
    'resources[0].properties.frontendIPConfigurations[0].properties.privateIPAllocationMethod: frontend "fe" has a dynamic private address, known only after deployment; pass --set frontend.fe=<ip>',
    'resources[1].properties.ipConfigurations[0].properties.privateIPAllocationMethod: network interface IP configuration "nva-a/ipconfig1" (in pool "nvas") has a dynamic private address, known only after deployment; pass --set backend.nva-a/ipconfig1=<ip>',
    'resources[2].properties.ipConfigurations[0].properties.privateIPAddress: network interface IP configuration "nva-b/ipconfig1" (in pool "nvas") has no private address; pass --set backend.nva-b/ipconfig1=<ip>',
  ]);

  const ok = await importArm(template('dynamic.json'), '--set', 'frontend.fe=10.3.0.10',
    '--set', 'backend.nva-a/ipconfig1=10.3.0.4', '--set', 'backend.nva-b/ipconfig1=10.3.0.5');
  assert.equal(ok.stderr, '');
  assert.equal(ok.code, 0);
  const config = JSON.parse(ok.stdout);
  assert.deepEqual(config.frontends, [{ name: 'fe', address: '10.3.0.10' }]);
  assert.deepEqual(config.backendPools[0].backends, [
    { name: 'nva-a/ipconfig1', address: '10.3.0.4' }, { name: 'nva-b/ipconfig1', address: '10.3.0.5' },
  ]);
  assert.equal(validate(ok.stdout).code, 0);
});

test('(d) a --set that names nothing, or is not an address, is an error', async () => {
  const r = await importArm(template('dynamic.json'), '--set', 'frontend.fe=10.3.0.10', '--set', 'backend.nva-a/ipconfig1=10.3.0.4',
    '--set', 'backend.nva-b/ipconfig1=ten', '--set', 'frontend.nope=10.3.0.11', '--set', 'lbNmae=x');
  assert.equal(r.code, 1);
  assert.deepEqual(r.lines, [
    '--set backend.nva-b/ipconfig1: "ten" is not an IPv4 or IPv6 address',
    '--set lbNmae: no parameter "lbNmae" in the template (parameters: lbName); addresses are set with frontend.NAME=IP or backend.NAME=IP',
    '--set frontend.nope: no frontend named "nope" (frontends: fe)',
  ]);
});

test('(e) unsupported template functions are reported where they are, with what needed them', async () => {
  const r = await importArm(template('unsupported.json'));
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.deepEqual(r.lines, [
    'resources[2].properties.frontendIPConfigurations[0].properties.privateIPAddress: unsupported template function reference(); pass --set frontend.fe1=<ip> instead',
    'resources[1].copy: resource copy loops are not supported: this network interface joins pool "nvas"; declare each network interface on its own, or list the pool\'s loadBalancerBackendAddresses',
    'variables.ruleName: unsupported template function uniqueString() (needed for resources[2].properties.loadBalancingRules[0].name)',
  ]);
  // resources[0] (a public IP calling uniqueString()) is never evaluated: the import reads only what it maps.
});

test('(f) a parameters file overrides the defaults, --set overrides the file; a plain {name: value} map works too', async () => {
  const r = await importArm(template('internal-haports.json'), '--parameters', template('params-override.parameters.json'),
    '--set', 'idleTimeout=20');
  assert.equal(r.stderr, '');
  assert.equal(r.code, 0);
  const config = JSON.parse(r.stdout);
  assert.deepEqual(config.frontends, [{ name: 'nva-frontend', address: '10.0.2.200' }]);
  assert.equal(config.rules[0].name, 'edge-ilb-HARule');
  assert.equal(config.rules[0].idleTimeoutMinutes, 20);
  assert.equal(config.backendPools[0].backends.length, 2, 'the NICs still join the pool of the renamed load balancer');

  const plain = await importArm(template('internal-haports.json'), '--parameters', template('params-plain.json'));
  assert.equal(plain.code, 0, plain.stderr);
  const p = JSON.parse(plain.stdout);
  assert.equal(p.rules[0].name, 'plain-ilb-HARule');
  assert.equal(p.rules[0].idleTimeoutMinutes, 10);
  assert.equal(p.frontends[0].address, '10.0.2.100', 'defaults fill what the map leaves out');

  const basic = await importArm(template('internal-haports.json'), '--set', 'lbsku=Basic');
  assert.equal(basic.code, 0);
  assert.deepEqual(basic.lines, [
    'warning: resources[2].properties.loadBalancingRules[0]: Azure offers HA-ports rules only on Standard load balancers; "nva-ilb" is Basic',
  ]);
  const bad = await importArm(template('internal-haports.json'), '--set', 'idleTimeout=soon');
  assert.equal(bad.code, 1);
  assert.deepEqual(bad.lines, ['--set idleTimeout: parameter "idleTimeout" is an int, got "soon"']);
});

test('(g) an exported deployment: its own parameter values, address-based pool, warnings for what is not imported', async () => {
  const r = await importArm(template('exported-deployment.json'));
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.lines, [
    'warning: properties.template.resources[0].properties.inboundNatRules: not imported: haports has no inbound NAT rules',
    'warning: properties.template.resources[0].properties.backendAddressPools[0].properties.loadBalancerBackendAddresses[1].properties.adminState: adminState Down imported as "draining": no new flows, existing flows stay',
    'warning: properties.template.resources[0].properties.loadBalancingRules[0].properties.enableConnectionTracking: not imported: haports has no equivalent of this load-balancing rule property',
  ]);
  assert.deepEqual(JSON.parse(r.stdout), {
    hashKey: KEY,
    frontends: [{ name: 'hub-fe', address: '10.5.0.100' }],
    backendPools: [{ name: 'nvas', drainPeriodSeconds: 30, backends: [
      { name: 'nva-0', address: '10.5.1.4' }, { name: 'nva-1', address: '10.5.1.5', adminState: 'draining' },
    ] }],
    probes: [{ name: 'tcp-22', protocol: 'tcp', port: 22, intervalSeconds: 10, threshold: 2 }],
    rules: [{ name: 'ha', frontend: 'hub-fe', backendPool: 'nvas', protocol: 'all', frontendPort: 0, backendPort: 0,
      floatingIp: true, loadDistribution: 'sourceIP', idleTimeoutMinutes: 4, enableTcpReset: false, probe: 'tcp-22' }],
  });
  assert.equal(validate(r.stdout).code, 0);
  // A --parameters file still wins over the deployment's own values.
  const o = await importArm(template('exported-deployment.json'), '--set', 'frontendIP=10.5.0.200');
  assert.equal(JSON.parse(o.stdout).frontends[0].address, '10.5.0.200');
});

test('(g) a resource list as the REST API returns it: literal ids (any case) resolve; NIC members need --set', async () => {
  const r = await importArm(template('resource-list.json'));
  assert.equal(r.code, 1);
  assert.deepEqual(r.lines, [
    '[0].properties.backendAddressPools[0].properties.backendIPConfigurations[0].id: network interface IP configuration "nva-a-nic/ipconfig1" of pool "NVAs" is not in the template; pass its address with --set backend.nva-a-nic/ipconfig1=<ip>',
    '[0].properties.backendAddressPools[0].properties.backendIPConfigurations[1].id: network interface IP configuration "nva-b-nic/ipconfig1" of pool "NVAs" is not in the template; pass its address with --set backend.nva-b-nic/ipconfig1=<ip>',
  ]);
  const ok = await importArm(template('resource-list.json'), '--set', 'backend.nva-a-nic/ipconfig1=10.6.1.4',
    '--set', 'backend.nva-b-nic/ipconfig1=10.6.1.5');
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stderr, '', 'unmapped features that are switched off (false, empty) raise no warning');
  const config = JSON.parse(ok.stdout);
  assert.deepEqual(config.rules, [{ name: 'TestHAPorts', frontend: 'LoadBalancerFrontEnd', backendPool: 'NVAs', protocol: 'all',
    frontendPort: 0, backendPort: 0, floatingIp: false, loadDistribution: 'default', idleTimeoutMinutes: 4, enableTcpReset: false }]);
  assert.equal(validate(ok.stdout).code, 0);
});

test('(h) the HA-ports quickstart itself: generated name, Azure-assigned addresses, pool joined through reference()', async () => {
  const first = await importArm(template('quickstart-haports.json'));
  assert.equal(first.code, 1);
  assert.deepEqual(first.lines, [
    'parameters.loadBalancerName.defaultValue: unsupported template function uniqueString() (needed for resources[0].name); pass a value for parameter "loadBalancerName" in a --parameters file or with --set loadBalancerName=VALUE',
  ]);
  const second = await importArm(template('quickstart-haports.json'), '--set', 'loadBalancerName=nva-ilb');
  assert.equal(second.code, 1);
  assert.deepEqual(second.lines, [
    'resources[0].properties.frontendIPConfigurations[0].properties.privateIPAddress: frontend "loadBalancerFrontEnd" has no private address (Azure assigns one at deployment); pass --set frontend.loadBalancerFrontEnd=<ip>',
    'resources[1].properties.ipConfigurations[0].properties.privateIPAllocationMethod: network interface IP configuration "networkInterface1/ipConfig" (in pool "loadBalancerBackEnd") has a dynamic private address, known only after deployment; pass --set backend.networkInterface1/ipConfig=<ip>',
  ]);
  const ok = await importArm(template('quickstart-haports.json'), '--set', 'loadBalancerName=nva-ilb',
    '--set', 'frontend.loadBalancerFrontEnd=10.0.0.100', '--set', 'backend.networkInterface1/ipConfig=10.0.0.4');
  assert.equal(ok.code, 0, ok.stderr);
  const config = JSON.parse(ok.stdout);
  assert.deepEqual(config.backendPools, [{ name: 'loadBalancerBackEnd', backends: [{ name: 'networkInterface1/ipConfig', address: '10.0.0.4' }] }]);
  assert.equal(config.rules[0].name, 'nva-ilb-HARule');
  assert.equal(config.rules[0].probe, 'nva-ilbHealthProbe');
  assert.equal(validate(ok.stdout).code, 0);
});

test('the core\'s warnings (HA ports on IPv6) pass through, with where they came from; they never fail', async () => {
  const id = (type, name) => `[resourceId('Microsoft.Network/loadBalancers/${type}', 'v6-ilb', '${name}')]`;
  const file = writeTemp('v6.json', {
    resources: [{
      type: 'Microsoft.Network/loadBalancers',
      name: 'v6-ilb',
      sku: { name: 'Standard' },
      properties: {
        frontendIPConfigurations: [{ name: 'fe6', properties: { privateIPAddressVersion: 'IPv6', privateIPAllocationMethod: 'Static', privateIPAddress: 'fd00:10::100' } }],
        backendAddressPools: [{ name: 'nvas6', properties: { loadBalancerBackendAddresses: [{ name: 'nva6-0', properties: { ipAddress: 'fd00:10::4' } }] } }],
        loadBalancingRules: [{ name: 'ha6', properties: {
          frontendIPConfiguration: { id: id('frontendIPConfigurations', 'fe6') }, backendAddressPool: { id: id('backendAddressPools', 'nvas6') },
          protocol: 'All', frontendPort: 0, backendPort: 0, enableFloatingIP: true,
        } }],
      },
    }],
  });
  const r = await importArm(file);
  assert.equal(r.code, 0, r.stderr);
  const v6 = r.lines.filter((l) => /IPv6/.test(l));
  assert.equal(v6.length, 1, r.stderr);
  assert.match(v6[0], /^warning: rules\[0\]: .*"fe6".* \(from resources\[0\]\.properties\.loadBalancingRules\[0\]\)$/);
  assert.equal(JSON.parse(r.stdout).frontends[0].address, 'fd00:10::100');
});

test('usage: exit 2 for no template, an unreadable file, bad JSON, a malformed --set, an unknown option', async () => {
  assert.equal((await importArm()).code, 2);
  const missing = await importArm('test/arm/templates/nope.json');
  assert.equal(missing.code, 2);
  assert.deepEqual(missing.lines, ['haports: cannot read template test/arm/templates/nope.json: ENOENT']);
  assert.equal((await importArm(template('internal-haports.json'), '--parameters', 'README.md')).code, 2);
  const set = await importArm(template('internal-haports.json'), '--set', 'novalue');
  assert.equal(set.code, 2);
  assert.deepEqual(set.lines, ['haports: import-arm: --set novalue: expected NAME=VALUE']);
  assert.equal((await importArm(template('internal-haports.json'), '--bogus')).code, 2);
  const help = await importArm('--help');
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^usage: haports import-arm TEMPLATE\.json/);
});

test('CLI: node bin/haports.mjs import-arm, its output accepted by haports validate', () => {
  const help = cli('import-arm', '--help');
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^usage: haports import-arm TEMPLATE\.json/);
  const r = cli('import-arm', template('dsr-two-frontends.json'));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(validate(r.stdout).code, 0);
  const mix = cli('import-arm', template('mix-caveat4.json'));
  assert.equal(mix.code, 1);
  assert.match(mix.stderr, /caveat 4/);
  assert.equal(cli('import-arm').code, 2);
});
