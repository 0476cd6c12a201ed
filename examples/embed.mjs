// Embedding haports in a Node program: run packets through an HA-ports rule, fail an
// appliance, read counters.  Run: npm run build && node examples/embed.mjs
import { Dataplane } from 'haports';

const dp = Dataplane.create({
  frontends: [{ name: 'fe', address: '10.0.0.100' }],
  backendPools: [{ name: 'nvas', backends: [
    { name: 'nva-0', address: '10.0.1.4' }, { name: 'nva-1', address: '10.0.1.5' }, { name: 'nva-2', address: '10.0.1.6' },
  ] }],
  rules: [{ name: 'ha', frontend: 'fe', backendPool: 'nvas', protocol: 'all', frontendPort: 0, backendPort: 0, floatingIp: true }],
});

// A UDP packet 192.168.0.<n>:5000 → 10.0.0.100:53 (IPv4 header + UDP header, no payload).
function udp(n) {
  const p = new Uint8Array(28);
  p.set([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 192, 168, 0, n, 10, 0, 0, 100]);
  p.set([0x13, 0x88, 0, 53, 0, 8, 0, 0], 20);
  return p;
}

const flows = Array.from({ length: 12 }, (_, n) => udp(n + 1));
for (const d of dp.process(flows, { now: 1000 })) console.log(d.verdict, d.rule, d.backend, d.newFlow ? 'new' : 'tracked');

dp.setHealth('nva-1', 'down'); // a probe failed: UDP flows on nva-1 move, new flows avoid it
for (const d of dp.process(flows, { now: 2000 })) console.log(d.verdict, d.backend, d.tracked ? 'tracked' : 'moved');

console.log(dp.counters().backends);
