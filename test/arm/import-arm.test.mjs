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
    'resources[2].properties.frontendIPConfigurations[0].properties.privateIPAddress: unsupported template function reference() (frontend "fe1"); pass --set frontend.fe1=<ip> instead',
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

test('the core\'s notes (HA ports on IPv6) pass through, with where they came from; they never fail', async () => {
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
  assert.match(v6[0], /^(info|warning): rules\[0\]: .*"fe6".* \(from resources\[0\]\.properties\.loadBalancingRules\[0\]\)$/);
  assert.equal(JSON.parse(r.stdout).frontends[0].address, 'fd00:10::100');
  // With --json: the template path, the configuration path beside it.
  const j = JSON.parse((await importArm(file, '--json')).stdout);
  const note = [...j.warnings, ...j.info].find((i) => /IPv6/.test(i.message));
  assert.equal(note.path, 'resources[0].properties.loadBalancingRules[0]');
  assert.equal(note.configPath, 'rules[0]');
});

// portal-export.json is a template as the Azure portal's "Export template" (and `az group
// export`) writes it for a hub with an internal Standard load balancer in front of two
// NVAs: parameters named TYPE_NAME_name with the names as defaults, resourceId()/concat()
// ids, the pool both in the load balancer and as a Microsoft.Network/loadBalancers/
// backendAddressPools resource (its NIC members listed as address entries without an
// address), an inbound NAT rule both ways, NICs with Dynamic addresses carrying the
// address Azure gave them, the VMs, the virtual network and its subnets.
test('(i) an Azure portal export: child-resource pool merged, Dynamic NIC addresses used with a warning; valid', async () => {
  const r = await importArm(template('portal-export.json'));
  assert.equal(r.code, 0, r.stderr);
  const config = JSON.parse(r.stdout);
  assert.deepEqual(config, {
    hashKey: KEY,
    frontends: [{ name: 'hub-lb-fe', address: '10.10.1.100' }],
    backendPools: [{ name: 'nva-pool', backends: [
      { name: 'nva0-nic/ipconfig1', address: '10.10.1.4' },
      { name: 'nva1-nic/ipconfig1', address: '10.10.1.5' },
    ] }],
    probes: [{ name: 'nva-health', protocol: 'tcp', port: 22, intervalSeconds: 5, threshold: 1 }],
    rules: [{ name: 'ha-ports', frontend: 'hub-lb-fe', backendPool: 'nva-pool', protocol: 'all', frontendPort: 0, backendPort: 0,
      floatingIp: false, loadDistribution: 'default', idleTimeoutMinutes: 4, enableTcpReset: false, probe: 'nva-health' }],
  });
  const v = validate(r.stdout);
  assert.equal(v.code, 0, v.stdout + v.stderr);

  const dynamic = (i, nic, ip) => `warning: resources[${i}].properties.ipConfigurations[0].properties.privateIPAddress: network interface IP configuration "${nic}/ipconfig1" (in pool "nva-pool") has a dynamic private address: imported as ${ip}, its address when the template was exported, which Azure may change; make it Static, or pass --set backend.${nic}/ipconfig1=<ip>`;
  assert.deepEqual(r.lines, [
    'warning: resources[4]: not imported: haports has no inbound NAT rules',
    'warning: resources[7].properties.inboundNatRules: not imported: haports has no inbound NAT rules',
    dynamic(8, 'nva0-nic', '10.10.1.4'),
    dynamic(9, 'nva1-nic', '10.10.1.5'),
    'info: resources[3]: backend pool "nva-pool" is declared both in load balancer "hub-lb" (resources[7].properties.backendAddressPools[0]) and as a resource of its own; imported once, with the members of both',
    ...[0, 1].map((i) => `info: resources[7].properties.backendAddressPools[0].properties.loadBalancerBackendAddresses[${i}]: backend address "hub-rg_nva${i}-nicipconfig1" of pool "nva-pool" stands for network interface IP configuration "nva${i}-nic/ipconfig1" (an export lists a member network interface this way); imported from the network interface`),
  ]);

  // The names come from the parameters the portal generates: --set renames.
  const renamed = await importArm(template('portal-export.json'), '--set', 'loadBalancers_hub_lb_name=edge-lb',
    '--set', 'networkInterfaces_nva0_nic_name=fw0-nic', '--set', 'backend.fw0-nic/ipconfig1=10.10.1.14');
  assert.equal(renamed.code, 0, renamed.stderr);
  assert.deepEqual(JSON.parse(renamed.stdout).backendPools[0].backends, [
    { name: 'fw0-nic/ipconfig1', address: '10.10.1.14' }, { name: 'nva1-nic/ipconfig1', address: '10.10.1.5' },
  ]);
  assert.equal(renamed.lines.filter((l) => /dynamic private address/.test(l)).length, 1, 'a --set address needs no warning');
});

test('--json: {config, warnings, info} on success, the configuration exactly as printed without --json', async () => {
  const plain = await importArm(template('portal-export.json'));
  const r = await importArm(template('portal-export.json'), '--json');
  assert.equal(r.code, 0);
  assert.equal(r.stderr, '');
  const j = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(j), ['config', 'warnings', 'info']);
  assert.deepEqual(j.config, JSON.parse(plain.stdout));
  assert.deepEqual(j.warnings[2], {
    path: 'resources[8].properties.ipConfigurations[0].properties.privateIPAddress',
    message: 'network interface IP configuration "nva0-nic/ipconfig1" (in pool "nva-pool") has a dynamic private address: imported as 10.10.1.4, its address when the template was exported, which Azure may change; make it Static, or pass --set backend.nva0-nic/ipconfig1=<ip>',
  });
  assert.equal(j.warnings.length, 4);
  assert.equal(j.info.length, 3);
  assert.equal(j.info[0].path, 'resources[3]');
  assert.equal(validate(j.config).code, 0);
});

test('--json: {errors, warnings, info} on failure, each error {path, message} naming its object; exit codes unchanged', async () => {
  const d = await importArm(template('dynamic.json'), '--json');
  assert.equal(d.code, 1);
  assert.equal(d.stderr, '');
  const dj = JSON.parse(d.stdout);
  assert.deepEqual(Object.keys(dj), ['errors', 'warnings', 'info']);
  assert.deepEqual(dj.errors[0], {
    path: 'resources[0].properties.frontendIPConfigurations[0].properties.privateIPAllocationMethod',
    message: 'frontend "fe" has a dynamic private address, known only after deployment; pass --set frontend.fe=<ip>',
  });
  assert.deepEqual(dj.errors.map((e) => e.message.match(/"([^"]+)"/)[1]), ['fe', 'nva-a/ipconfig1', 'nva-b/ipconfig1']);

  // An error of the template's content: the rule named beside the path.
  const bad = writeTemp('bad-rule.json', { resources: [{
    type: 'Microsoft.Network/loadBalancers', name: 'lb', properties: {
      frontendIPConfigurations: [{ name: 'fe', properties: { privateIPAddress: '10.0.0.4' } }],
      backendAddressPools: [{ name: 'p', properties: { loadBalancerBackendAddresses: [{ name: 'b0', properties: { ipAddress: '10.0.1.4', adminState: 'Sideways' } }] } }],
      loadBalancingRules: [{ name: 'ha', properties: {
        frontendIPConfiguration: { id: "[resourceId('Microsoft.Network/loadBalancers/frontendIPConfigurations', 'lb', 'fe')]" },
        backendAddressPool: { id: "[resourceId('Microsoft.Network/loadBalancers/backendAddressPools', 'lb', 'p')]" },
        protocol: 'Sctp', frontendPort: 0, backendPort: 0,
      } }],
    },
  }] });
  const b = JSON.parse((await importArm(bad, '--json')).stdout);
  assert.deepEqual(b.errors, [
    { path: 'resources[0].properties.backendAddressPools[0].properties.loadBalancerBackendAddresses[0].properties.adminState',
      message: 'expected "None", "Up" or "Down", got "Sideways" (backend "b0" of pool "p")' },
    { path: 'resources[0].properties.loadBalancingRules[0].properties.protocol', message: 'expected "Tcp", "Udp" or "All", got "Sctp" (rule "ha")' },
  ]);

  // The configuration's own checks: the template path, the configuration path beside it.
  const mix = await importArm(template('mix-caveat4.json'), '--json');
  assert.equal(mix.code, 1);
  const caveat = JSON.parse(mix.stdout).errors.find((e) => /caveat 4/.test(e.message));
  assert.equal(caveat.path, 'resources[0].properties.backendAddressPools[0]');
  assert.equal(caveat.configPath, 'backendPools[0]');
  assert.match(caveat.message, /"ha"/);

  // Unreadable input and usage errors: JSON all the same, exit 2.
  const missing = await importArm('test/arm/templates/nope.json', '--json');
  assert.equal(missing.code, 2);
  assert.deepEqual(JSON.parse(missing.stdout), { errors: [{ path: '$', message: 'cannot read template test/arm/templates/nope.json: ENOENT' }], warnings: [], info: [] });
  const params = await importArm(template('internal-haports.json'), '--parameters', 'README.md', '--json');
  assert.equal(params.code, 2);
  assert.equal(JSON.parse(params.stdout).errors[0].path, '--parameters');
  const option = await importArm(template('internal-haports.json'), '--bogus', '--json');
  assert.equal(option.code, 2);
  assert.equal(option.stderr, '');
  assert.match(JSON.parse(option.stdout).errors[0].message, /--bogus/);
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
  const json = cli('import-arm', template('portal-export.json'), '--json');
  assert.equal(json.code, 0, json.stderr);
  assert.equal(validate(JSON.parse(json.stdout).config).code, 0);
  const missing = cli('import-arm', 'nope.json', '--json');
  assert.equal(missing.code, 2);
  assert.equal(JSON.parse(missing.stdout).errors[0].path, '$');
});
