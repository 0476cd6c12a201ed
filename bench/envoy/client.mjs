// The load generator of bench/envoy/bench.mjs, in its own process (so that it does not
// share an event loop with the backends). Reads one job as JSON from argv[2], prints
// the result as JSON on stdout.
//
//   { kind: "cps", host, port, concurrency, seconds, sources }
//        closed loop: connect, read the backend's line, close; as many as it can
//        → { connections, seconds, errors }
//   { kind: "setup", host, port, count, sources }
//        one at a time: time from connect() to the backend's first line (µs)
//        → { samples: [µs…], errors }
//   { kind: "rtt", host, port, count }
//        one connection, `count` echo round trips of 64 bytes (µs) → { samples, errors }

import net from 'node:net';

const job = JSON.parse(process.argv[2]);
const now = () => Number(process.hrtime.bigint()) / 1000; // µs

function once(host, port, localAddress) {
  return new Promise((resolve) => {
    const t = now();
    const s = net.connect({ host, port, localAddress });
    s.setNoDelay(true);
    let us = -1;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      s.destroy();
      resolve(us);
    };
    s.setTimeout(5000, finish);
    s.on('error', finish);
    s.on('data', (d) => {
      if (us < 0 && d.includes(10)) {
        us = now() - t;
        s.end();
      }
    });
    s.on('close', finish);
  });
}

async function cps({ host, port, concurrency, seconds, sources }) {
  const end = now() + seconds * 1e6;
  let connections = 0;
  let errors = 0;
  let k = 0;
  const start = now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (now() < end) {
      const us = await once(host, port, sources[k++ % sources.length]);
      if (us < 0) errors++;
      else connections++;
    }
  }));
  return { connections, errors, seconds: (now() - start) / 1e6 };
}

async function setup({ host, port, count, sources }) {
  const samples = [];
  let errors = 0;
  for (let i = 0; i < count; i++) {
    const us = await once(host, port, sources[i % sources.length]);
    if (us < 0) errors++;
    else samples.push(us);
  }
  return { samples, errors };
}

function rtt({ host, port, count }) {
  return new Promise((resolve) => {
    const samples = [];
    const s = net.connect({ host, port });
    s.setNoDelay(true);
    const payload = Buffer.alloc(64, 97);
    let greeted = false;
    let got = 0;
    let t = 0;
    const send = () => { got = 0; t = now(); s.write(payload); };
    s.on('data', (d) => {
      if (!greeted) {
        const nl = d.indexOf(10);
        if (nl < 0) return;
        greeted = true;
        d = d.subarray(nl + 1);
        send();
        if (d.length === 0) return;
      }
      got += d.length;
      if (got >= payload.length) {
        samples.push(now() - t);
        if (samples.length >= count) {
          s.destroy();
          resolve({ samples, errors: 0 });
        } else send();
      }
    });
    s.on('error', () => resolve({ samples, errors: 1 }));
  });
}

const run = { cps, setup, rtt }[job.kind];
process.stdout.write(JSON.stringify(await run(job)));
