#!/usr/bin/env node
// Demo backends for the Envoy examples: stand-ins for network virtual appliances on
// loopback addresses (every 127.0.0.0/8 address is on lo).
//
//   node envoy/backends.mjs [--count 3] [--first 127.0.0.11] [--ports 10000,10001] [--health-port 8080]
//
// Backend i (nva-0, nva-1, …) listens on 127.0.0.(11 + i) at every service port; each
// connection gets one line saying who answered ("nva-1 127.0.0.12:10000\n"), then the
// backend echoes whatever the client sends until the client closes. Its health endpoint,
// http://127.0.0.(11 + i):8080/healthz, answers 200 while healthy, 503 after
// `curl -X POST http://ADDRESS:8080/down` (and 200 again after POST /up).
//
// The end-to-end test and the benchmark import startBackends().

import net from 'node:net';
import http from 'node:http';

/**
 * Starts `count` backends. Returns { backends: [{ name, address, connections, probes, healthy }],
 * setHealthy(name, up), close() }. `connections` counts accepted service connections,
 * `probes` the requests to the health endpoint.
 */
export async function startBackends({
  count = 3, first = '127.0.0.11', ports = [10000, 10001], healthPort = 8080, echo = true,
} = {}) {
  const base = first.split('.').map(Number);
  const backends = [];
  const servers = [];
  for (let i = 0; i < count; i++) {
    const address = `${base[0]}.${base[1]}.${base[2]}.${base[3] + i}`;
    const b = { name: `nva-${i}`, address, connections: 0, probes: 0, healthy: true };
    backends.push(b);
    for (const port of ports) {
      const server = net.createServer((socket) => {
        b.connections++;
        socket.setNoDelay(true);
        socket.on('error', () => {});
        socket.write(`${b.name} ${address}:${port}\n`);
        if (echo) socket.pipe(socket);
        else socket.end();
      });
      servers.push(server);
      await listen(server, port, address);
    }
    const health = http.createServer((req, res) => {
      if (req.method === 'POST' && (req.url === '/down' || req.url === '/up')) {
        b.healthy = req.url === '/up';
        res.end(`${b.name} ${b.healthy ? 'up' : 'down'}\n`);
        return;
      }
      b.probes++;
      res.statusCode = b.healthy ? 200 : 503;
      res.end(b.healthy ? 'ok\n' : 'down\n');
    });
    servers.push(health);
    await listen(health, healthPort, address);
  }
  return {
    backends,
    setHealthy(name, up) {
      const b = backends.find((x) => x.name === name);
      if (!b) throw new Error(`no backend ${name}`);
      b.healthy = up;
    },
    async close() {
      await Promise.all(servers.map((s) => new Promise((resolve) => {
        s.close(() => resolve());
        if (s.closeAllConnections) s.closeAllConnections();
      })));
    },
  };
}

function listen(server, port, address) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host: address, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function parseArgs(argv) {
  const opts = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--count') { opts.count = Number(v); i++; }
    else if (a === '--first') { opts.first = v; i++; }
    else if (a === '--ports') { opts.ports = v.split(',').map(Number); i++; }
    else if (a === '--health-port') { opts.healthPort = Number(v); i++; }
    else if (a === '--help' || a === '-h') {
      console.log('usage: node envoy/backends.mjs [--count 3] [--first 127.0.0.11] [--ports 10000,10001] [--health-port 8080]');
      process.exit(0);
    } else {
      console.error(`unknown argument ${a}`);
      process.exit(2);
    }
  }
  return opts;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const opts = parseArgs(process.argv.slice(2));
  const set = await startBackends(opts);
  const ports = (opts.ports ?? [10000, 10001]).join(',');
  for (const b of set.backends) {
    console.log(`${b.name} on ${b.address}:{${ports}}, health http://${b.address}:${opts.healthPort ?? 8080}/healthz`);
  }
  console.log('ctrl-c to stop');
}
