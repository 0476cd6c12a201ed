// Compiled (not run) by library.test.mjs: what a TypeScript user writes must type-check.
import { Dataplane, ConfigError, type Config, type Decision } from 'haports';

const config: Config = {
  frontends: [{ name: 'fe', address: '10.0.0.100' }],
  backendPools: [{ name: 'nvas', backends: [{ name: 'nva-0', address: '10.0.1.4', weight: 2 }] }],
  rules: [{ name: 'ha', frontend: 'fe', backendPool: 'nvas', protocol: 'all', loadDistribution: 'sourceIP' }],
};
const dp: Dataplane = Dataplane.create(config);
const decisions: Decision[] = dp.process([new Uint8Array(20)], { now: 1, ingress: 'fe', link: 'ip' });
const backend: string | null = decisions[0].backend;
dp.setHealth('nva-0', 'down');
dp.setAdminState('nva-0', 'draining');
const used: number = dp.counters().flowTable.used;
try {
  dp.reconfigure('{}');
} catch (e) {
  if (e instanceof ConfigError) console.log(e.errors.join('\n'), backend, used);
}
