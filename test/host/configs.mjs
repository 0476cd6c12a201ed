// Configurations shared by host tests (no tests here: importing this runs nothing).

export const FE4 = '10.0.0.100';
export const FE6 = 'fd00::100';

/** Two HA-ports frontends (IPv4 over four NVAs, IPv6 over two) and one exact TCP rule. */
export function baseConfig(overrides = {}) {
  return {
    hashSeed: '0x1f2e3d4c5b6a7988',
    flowTable: { capacity: 65536 },
    frontends: [{ name: 'fe-v4', address: FE4 }, { name: 'fe-v6', address: FE6 }],
    backendPools: [
      { name: 'nvas', backends: [0, 1, 2, 3].map((i) => ({ name: `nva-${i}`, address: `10.0.1.${4 + i}` })) },
      { name: 'nvas6', backends: [0, 1].map((i) => ({ name: `nva6-${i}`, address: `fd00:1::${4 + i}` })) },
      { name: 'web', backends: [{ name: 'web-0', address: '10.0.2.4' }] },
    ],
    rules: [
      { name: 'ha', frontend: 'fe-v4', backendPool: 'nvas', protocol: 'all', frontendPort: 0, backendPort: 0 },
      { name: 'ha6', frontend: 'fe-v6', backendPool: 'nvas6', protocol: 'all', frontendPort: 0, backendPort: 0 },
      { name: 'https', frontend: 'fe-v4', backendPool: 'web', protocol: 'tcp', frontendPort: 443, backendPort: 8443 },
    ],
    ...overrides,
  };
}
