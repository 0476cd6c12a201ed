// The template expression evaluator, and the edges of the mapping, through importArm().
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { evaluateTemplateString, importArm } from '../../build/host/arm.mjs';

const TEMPLATE = {
  parameters: {
    name: { type: 'string', defaultValue: 'lb1' },
    count: { type: 'int', defaultValue: 3 },
    flag: { type: 'bool', defaultValue: false },
    noDefault: { type: 'string' },
  },
  variables: {
    prefix: "[concat('nva-', parameters('name'))]",
    obj: { list: ['a', "[variables('prefix')]"], inner: { key: 'v' } },
    loopA: "[variables('loopB')]",
    loopB: "[variables('loopA')]",
  },
};

// [template string, expected value | Error message]
const CASES = [
  ['plain text', 'plain text'],
  ['[[not an expression]', '[not an expression]'],
  ['[not closed', '[not closed'],
  ["['it''s']", "it's"],
  ['[42]', 42],
  ['[-1]', -1],
  ["[ concat( 'a' , 'b' ) ]", 'ab'],
  ["[concat('x', 1, true())]", 'x1True'],
  ["[concat(createArray(1), createArray(2, 3))]", [1, 2, 3]],
  ["[parameters('name')]", 'lb1'],
  ["[parameters('NAME')]", 'lb1'],
  ["[variables('prefix')]", 'nva-lb1'],
  ["[variables('obj').list[1]]", 'nva-lb1'],
  ["[variables('obj')['inner'].key]", 'v'],
  ["[variables('obj').INNER.Key]", 'v'],
  ["[format('{0}-{1}-{{x}}', parameters('name'), parameters('count'))]", 'lb1-3-{x}'],
  ["[toLower('AbC')]", 'abc'],
  ["[toUpper(variables('prefix'))]", 'NVA-LB1'],
  ["[resourceId('Microsoft.Network/loadBalancers', 'lb1')]", '/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/loadBalancers/lb1'],
  ["[resourceId('Microsoft.Network/loadBalancers/frontendIPConfigurations', 'lb1', 'fe')]",
    '/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/loadBalancers/lb1/frontendIPConfigurations/fe'],
  ["[resourceId('sub1', 'rg1', 'Microsoft.Network/loadBalancers', 'lb1')]", '/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Network/loadBalancers/lb1'],
  ["[if(parameters('flag'), uniqueString('never'), 'lazy')]", 'lazy'],
  ["[and(equals(parameters('count'), 3), not(empty(variables('prefix'))))]", true],
  ["[length(variables('obj').list)]", 2],
  ["[int('7')]", 7],
  ["[string(parameters('count'))]", '3'],
  // errors
  ['[uniqueString(resourceGroup().id)]', Error('$: unsupported template function uniqueString()')],
  ["[reference('x').y]", Error('$: unsupported template function reference()')],
  ['[copyIndex()]', Error('$: unsupported template function copyIndex()')],
  ["[myns.fn('a')]", Error('$: unsupported template function myns.fn()')],
  ["[variables('loopA')]", Error("variables.loopB: circular reference: variables('loopA') → variables('loopB') → variables('loopA')")],
  ["[variables('missing')]", Error('$: no variable "missing" in the template')],
  ["[parameters('noDefault')]", Error('$: parameter "noDefault" has no value; pass it in a --parameters file or with --set noDefault=VALUE')],
  ["[variables('obj').nope]", Error('$: no property "nope"')],
  ["[variables('obj').list[5]]", Error('$: index 5 is outside the array (length 2)')],
  ["[format('{0:D2}', 1)]", Error('$: format(): format specifiers like "{0:D2}" are not supported')],
  ["[format('{1}', 'a')]", Error('$: format(): "{1}" but only 1 argument')],
  ["[resourceId('Microsoft.Network/loadBalancers/probes', 'lb1')]", Error('$: resourceId(): type Microsoft.Network/loadBalancers/probes needs 2 names, got 1')],
  ["[concat('a', ]", Error('$: invalid template expression: unexpected end at character 13 of "concat(\'a\', "')],
  ["[concat('a')", '[concat(\'a\')'],
  ['[name]', Error('$: invalid template expression: "name" is not a function call at character 5 of "name"')],
  ["['unterminated]", Error('$: invalid template expression: unterminated string at character 1 of "\'unterminated"')],
];

for (const [input, expected] of CASES) {
  test(`expression ${input}`, () => {
    if (expected instanceof Error) {
      assert.throws(() => evaluateTemplateString(input, TEMPLATE), { message: expected.message });
    } else {
      assert.deepEqual(evaluateTemplateString(input, TEMPLATE), expected);
    }
  });
}

test('expression: --set and a parameters file give parameter values, typed by the declaration', () => {
  assert.equal(evaluateTemplateString("[parameters('count')]", TEMPLATE, { set: { count: '9' } }), 9);
  assert.equal(evaluateTemplateString("[parameters('flag')]", TEMPLATE, { set: { flag: 'TRUE' } }), true);
  assert.equal(evaluateTemplateString("[parameters('noDefault')]", TEMPLATE, { parameters: { parameters: { noDefault: { value: 'f' } } } }), 'f');
  assert.equal(evaluateTemplateString("[parameters('noDefault')]", TEMPLATE, { parameters: { noDefault: 'plain' } }), 'plain');
  // Values from files are values, never expressions.
  assert.equal(evaluateTemplateString("[parameters('noDefault')]", TEMPLATE, { parameters: { noDefault: "[uniqueString('x')]" } }), "[uniqueString('x')]");
});

// ---- the mapping --------------------------------------------------------------------------------

const ID = (lb, type, name) => `[resourceId('Microsoft.Network/loadBalancers/${type}', '${lb}', '${name}')]`;

function lb(name, { fe = '10.0.0.100', pool = [['nva-0', '10.0.1.4']], rules = undefined } = {}) {
  return {
    type: 'Microsoft.Network/loadBalancers',
    name,
    sku: { name: 'Standard' },
    properties: {
      frontendIPConfigurations: [{ name: 'fe', properties: { privateIPAddress: fe } }],
      backendAddressPools: [{ name: 'pool', properties: { loadBalancerBackendAddresses: pool.map(([n, a]) => ({ name: n, properties: { ipAddress: a } })) } }],
      loadBalancingRules: rules ?? [{
        name: 'ha',
        properties: {
          frontendIPConfiguration: { id: ID(name, 'frontendIPConfigurations', 'fe') },
          backendAddressPool: { id: ID(name, 'backendAddressPools', 'pool') },
          protocol: 'All', frontendPort: 0, backendPort: 0, enableFloatingIP: true,
        },
      }],
    },
  };
}

test('mapping: several load balancers prefix frontend, pool, probe and rule names with LB/', () => {
  const r = importArm({ resources: [lb('east', { fe: '10.0.0.100' }), lb('west', { fe: '10.1.0.100', pool: [['nva-0', '10.1.1.4']] })] });
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.config.frontends, [{ name: 'east/fe', address: '10.0.0.100' }, { name: 'west/fe', address: '10.1.0.100' }]);
  assert.deepEqual(r.config.backendPools.map((p) => p.name), ['east/pool', 'west/pool']);
  assert.deepEqual(r.config.rules.map((x) => [x.name, x.frontend, x.backendPool]), [['east/ha', 'east/fe', 'east/pool'], ['west/ha', 'west/fe', 'west/pool']]);
  // Frontend addresses are set by their prefixed name.
  const dyn = lb('west');
  dyn.properties.frontendIPConfigurations[0].properties = { privateIPAllocationMethod: 'Dynamic' };
  const s = importArm({ resources: [lb('east'), dyn] });
  assert.deepEqual(s.errors, ['resources[1].properties.frontendIPConfigurations[0].properties.privateIPAllocationMethod: frontend "west/fe" has a dynamic private address, known only after deployment; pass --set frontend.west/fe=<ip>']);
  assert.equal(importArm({ resources: [lb('east'), dyn] }, { set: { 'frontend.west/fe': '10.1.0.9' } }).config.frontends[1].address, '10.1.0.9');
});

test('mapping: load balancer children declared as resources of their own, as exports write them', () => {
  const pool = (name, members, extra = {}) => ({
    type: 'Microsoft.Network/loadBalancers/backendAddressPools', apiVersion: '2023-09-01', name,
    dependsOn: ["[resourceId('Microsoft.Network/loadBalancers', 'lb1')]"],
    properties: { ...extra, loadBalancerBackendAddresses: members.map(([n, a]) => ({ name: n, properties: { ipAddress: a } })) },
  });
  // A pool the load balancer does not list: a pool like any other, that rules can use.
  const only = lb('lb1', { pool: [] });
  only.properties.backendAddressPools = [];
  const r = importArm({
    resources: [
      only,
      pool('lb1/pool', [['nva-9', '10.0.1.9']]),
      { type: 'Microsoft.Network/loadBalancers/inboundNatRules', name: 'lb1/ssh', properties: {} },
    ],
  });
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.config.backendPools, [{ name: 'pool', backends: [{ name: 'nva-9', address: '10.0.1.9' }] }]);
  assert.equal(r.config.rules[0].backendPool, 'pool');
  assert.deepEqual(r.warnings, ['resources[2]: not imported: haports has no inbound NAT rules']);

  // Declared both ways (an export): one pool, each member once, what only one declares kept.
  const both = importArm({ resources: [lb('lb1', { pool: [['nva-0', '10.0.1.4']] }),
    pool("[concat('lb1', '/pool')]", [['nva-0', '10.0.1.4'], ['nva-1', '10.0.1.5']], { drainPeriodInSeconds: 30 })] });
  assert.deepEqual(both.errors, []);
  assert.deepEqual(both.config.backendPools, [{ name: 'pool', drainPeriodSeconds: 30, backends: [
    { name: 'nva-0', address: '10.0.1.4' }, { name: 'nva-1', address: '10.0.1.5' },
  ] }]);
  assert.deepEqual(both.info, ['resources[1]: backend pool "pool" is declared both in load balancer "lb1" (resources[0].properties.backendAddressPools[0]) and as a resource of its own; imported once, with the members of both']);

  // Nested in the load balancer's resources, named "NAME" or "LB/NAME".
  const nested = lb('lb1');
  nested.resources = [{ type: 'probes', name: 'p', properties: { protocol: 'Tcp', port: 22 } }, { type: 'backendAddressPools', name: 'lb1/pool2', properties: {} }];
  const n = importArm({ resources: [nested] });
  assert.deepEqual(n.errors, []);
  assert.deepEqual(n.config.probes, [{ name: 'p', protocol: 'tcp', port: 22, intervalSeconds: 15 }]);
  assert.deepEqual(n.config.backendPools.map((x) => x.name), ['pool', 'pool2']);

  // A child of a load balancer the template does not hold; a name that is not LB/NAME.
  const stray = importArm({ resources: [lb('lb1'), pool('lb9/pool', [['nva-0', '10.0.1.4']]), pool('lb1', [])] });
  assert.deepEqual(stray.errors, ['resources[2].name: expected "LOADBALANCER/NAME" as the name of a Microsoft.Network/loadBalancers/backendAddressPools resource, got "lb1"']);
  assert.deepEqual(stray.warnings, ['resources[1]: not imported: backend pool "pool" belongs to load balancer "lb9", which is not in the template']);
});

test('mapping: an export\'s pool entries without an address stand for member network interfaces; Dynamic addresses it carries are used', () => {
  const t = lb('lb1', { pool: [] });
  t.properties.frontendIPConfigurations[0].properties = { privateIPAllocationMethod: 'Dynamic', privateIPAddress: '10.0.0.100' };
  t.properties.backendAddressPools[0].properties.loadBalancerBackendAddresses = [{ name: 'rg_nva-a-nicipconfig1', properties: {} }];
  const nic = {
    type: 'Microsoft.Network/networkInterfaces', name: 'nva-a-nic',
    properties: { ipConfigurations: [{ name: 'ipconfig1', properties: {
      privateIPAllocationMethod: 'Dynamic', privateIPAddress: '10.0.1.4',
      loadBalancerBackendAddressPools: [{ id: ID('lb1', 'backendAddressPools', 'pool') }],
    } }] },
  };
  const r = importArm({ resources: [t, nic] });
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.config.frontends, [{ name: 'fe', address: '10.0.0.100' }]);
  assert.deepEqual(r.config.backendPools, [{ name: 'pool', backends: [{ name: 'nva-a-nic/ipconfig1', address: '10.0.1.4' }] }]);
  assert.deepEqual(r.warnings, [
    'resources[0].properties.frontendIPConfigurations[0].properties.privateIPAddress: frontend "fe" has a dynamic private address: imported as 10.0.0.100, its address when the template was exported, which Azure may change; make it Static, or pass --set frontend.fe=<ip>',
    'resources[1].properties.ipConfigurations[0].properties.privateIPAddress: network interface IP configuration "nva-a-nic/ipconfig1" (in pool "pool") has a dynamic private address: imported as 10.0.1.4, its address when the template was exported, which Azure may change; make it Static, or pass --set backend.nva-a-nic/ipconfig1=<ip>',
  ]);
  assert.deepEqual(r.info, ['resources[0].properties.backendAddressPools[0].properties.loadBalancerBackendAddresses[0]: backend address "rg_nva-a-nicipconfig1" of pool "pool" stands for network interface IP configuration "nva-a-nic/ipconfig1" (an export lists a member network interface this way); imported from the network interface']);
  // --set wins over the exported address, without a warning.
  const set = importArm({ resources: [t, nic] }, { set: { 'backend.nva-a-nic/ipconfig1': '10.0.1.40' } });
  assert.equal(set.config.backendPools[0].backends[0].address, '10.0.1.40');
  assert.equal(set.warnings.length, 1);
  // Without the network interface, the entry has no address: an error that says why.
  const alone = importArm({ resources: [t] });
  assert.deepEqual(alone.errors, ['resources[0].properties.backendAddressPools[0].properties.loadBalancerBackendAddresses[0].properties.ipAddress: backend address "rg_nva-a-nicipconfig1" of pool "pool" has no ipAddress (an export lists a member network interface this way: export the network interface with the load balancer); pass --set backend.rg_nva-a-nicipconfig1=<ip>']);
  assert.deepEqual(alone.issues.errors, [{
    path: 'resources[0].properties.backendAddressPools[0].properties.loadBalancerBackendAddresses[0].properties.ipAddress',
    message: 'backend address "rg_nva-a-nicipconfig1" of pool "pool" has no ipAddress (an export lists a member network interface this way: export the network interface with the load balancer); pass --set backend.rg_nva-a-nicipconfig1=<ip>',
  }]);
});

test('mapping: property copy loops, conditions, no load balancer, unresolved references', () => {
  const looped = lb('lb1');
  looped.properties.copy = [{ name: 'loadBalancingRules', count: 2, input: {} }];
  assert.deepEqual(importArm({ resources: [looped] }).errors, ['resources[0].properties.copy: property copy loops are not supported; list the frontends, pools, probes and rules one by one']);

  const skipped = { ...lb('off'), condition: "[equals(parameters('deploy'), 'yes')]" };
  const r = importArm({ parameters: { deploy: { type: 'string', defaultValue: 'no' } }, resources: [lb('lb1'), skipped] });
  assert.deepEqual(r.errors, []);
  assert.equal(r.config.rules[0].name, 'ha', 'one load balancer left: no prefix');

  assert.deepEqual(importArm({ resources: [{ type: 'Microsoft.Network/virtualNetworks', name: 'v' }] }).errors,
    ['resources: no Microsoft.Network/loadBalancers resource to import']);
  assert.deepEqual(importArm({ parameters: {} }).errors, ['$: not an ARM template, deployment or resource list: no "resources"']);
  assert.deepEqual(importArm({ type: 'Microsoft.Resources/deployments', properties: { templateLink: { uri: 'https://example.invalid/t.json' } } }).errors,
    ['properties.templateLink: the deployment links its template instead of holding it; import the linked template file, with the deployment\'s parameters as --parameters']);

  const bad = lb('lb1', { rules: [{ name: 'r', properties: {
    frontendIPConfiguration: { id: ID('lb1', 'frontendIPConfigurations', 'nope') },
    backendAddressPool: { id: "[resourceId('Microsoft.Network/virtualNetworks', 'v')]" },
    protocol: 'Any', frontendPort: 0,
  } }] });
  assert.deepEqual(importArm({ resources: [bad] }).errors, [
    'resources[0].properties.loadBalancingRules[0].properties.frontendIPConfiguration.id: no frontend IP configuration "nope" in load balancer "lb1" of the template (rule "r")',
    'resources[0].properties.loadBalancingRules[0].properties.backendAddressPool.id: expected a reference to a backend pool, got one to a Microsoft.Network/virtualNetworks (rule "r")',
    'resources[0].properties.loadBalancingRules[0].properties.protocol: expected "Tcp", "Udp" or "All", got "Any" (rule "r")',
    'resources[0].properties.loadBalancingRules[0].properties.backendPort: required (rule "r")',
  ]);
});

test('mapping: symbolic-name resources (languageVersion 2.0) and reference() to a load balancer of the template', () => {
  const t = {
    languageVersion: '2.0',
    resources: {
      ilb: lb('lb1', { pool: [] }),
      nic: {
        type: 'Microsoft.Network/networkInterfaces',
        name: 'nic1',
        properties: { ipConfigurations: [{ name: 'ipc', properties: {
          privateIPAllocationMethod: 'Static', privateIPAddress: '10.0.1.9',
          loadBalancerBackendAddressPools: [{ id: "[reference('ilb').backendAddressPools[0].id]" }],
        } }] },
      },
    },
  };
  const r = importArm(t);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.config.backendPools, [{ name: 'pool', backends: [{ name: 'nic1/ipc', address: '10.0.1.9' }] }]);
  t.resources.nic.properties.ipConfigurations[0].properties.loadBalancerBackendAddressPools[0].id = "[reference('ilb').outboundRules[0].id]";
  assert.match(importArm(t).errors[0], /^resources\.nic\.properties\.ipConfigurations\[0\]\.properties\.loadBalancerBackendAddressPools\[0\]\.id: reference\(\): "outboundRules" of a load balancer is known only after deployment/);
});

test('mapping: probes, rule defaults, unmapped properties warn and never fail', () => {
  const t = lb('lb1');
  t.properties.probes = [
    { name: 'p1', properties: { protocol: 'Https', port: 443, requestPath: '/health', probeThreshold: 2, numberOfProbes: 5, noHealthyBackendsBehavior: 'AllProbedDown' } },
    { name: 'p2', properties: { protocol: 'Tcp', port: 22, requestPath: '/ignored' } },
  ];
  t.properties.loadBalancingRules[0].properties.probe = { id: ID('lb1', 'probes', 'p1') };
  t.properties.loadBalancingRules[0].properties.futureFeature = 'on';
  const r = importArm({ resources: [t] });
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.config.probes, [
    { name: 'p1', protocol: 'https', port: 443, intervalSeconds: 15, threshold: 2, path: '/health' },
    { name: 'p2', protocol: 'tcp', port: 22, intervalSeconds: 15 },
  ]);
  assert.deepEqual(r.config.rules[0], {
    name: 'ha', frontend: 'fe', backendPool: 'pool', protocol: 'all', frontendPort: 0, backendPort: 0, floatingIp: true,
    loadDistribution: 'default', idleTimeoutMinutes: 4, enableTcpReset: false, probe: 'p1', noHealthyBackends: 'drop',
  });
  assert.deepEqual(r.warnings, [
    'resources[0].properties.probes[0].properties.numberOfProbes: numberOfProbes 5 ignored: probeThreshold 2 is used',
    'resources[0].properties.probes[1].properties.requestPath: ignored: a Tcp probe has no request path',
    'resources[0].properties.loadBalancingRules[0].properties.futureFeature: not imported: haports has no equivalent of this load-balancing rule property',
  ]);
});

test('mapping: a public frontend needs --set and HA ports on it is an Azure-compatibility warning', () => {
  const t = lb('lb1');
  t.properties.frontendIPConfigurations[0].properties = { publicIPAddress: { id: "[resourceId('Microsoft.Network/publicIPAddresses', 'pip')]" } };
  assert.deepEqual(importArm({ resources: [t] }).errors, [
    'resources[0].properties.frontendIPConfigurations[0].properties.publicIPAddress: frontend "fe" is public: its address belongs to a public IP resource, known only after deployment; pass --set frontend.fe=<ip>',
  ]);
  const r = importArm({ resources: [t] }, { set: { 'frontend.fe': '203.0.113.10' } });
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.warnings, ['resources[0].properties.loadBalancingRules[0]: Azure allows HA-ports rules only on internal frontends; frontend "fe" is public']);
});
