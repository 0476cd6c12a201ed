// The client side of the Envoy end-to-end tests: connections to a listener whose backends
// (envoy/backends.mjs) answer each connection with a line saying who they are.

import net from 'node:net';

/**
 * Opens one connection, reads the backend's line ("nva-1 127.0.0.12:10000") and closes
 * (the client first, so its side keeps the 5-tuple in TIME_WAIT: never reused in a run).
 * Resolves { local, localPort, backend, served, startMs } or { error, startMs }.
 */
export function openConnection(host, port, localAddress) {
  return new Promise((resolve) => {
    const startMs = Date.now();
    const s = net.connect({ host, port, localAddress });
    let data = '';
    let result = null;
    let done = false;
    const finish = (r) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve({ startMs, ...r });
    };
    s.setTimeout(5000, () => finish(result ?? { error: 'timeout' }));
    s.on('error', (e) => finish(result ?? { error: e.code ?? String(e) }));
    s.on('data', (d) => {
      if (result) return;
      data += d;
      const nl = data.indexOf('\n');
      if (nl < 0) return;
      const [backend, served] = data.slice(0, nl).split(' ');
      result = { local: s.localAddress, localPort: s.localPort, backend, served };
      s.end();
    });
    s.on('close', () => finish(result ?? { error: `closed before a line (${JSON.stringify(data)})` }));
  });
}

/** Runs `jobs` (functions returning promises) `limit` at a time; results in order. */
export async function pool(jobs, limit) {
  const out = new Array(jobs.length);
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]();
    }
  }));
  return out;
}

/**
 * A listener file with tcp_proxy's access log to `logPath`, one line per connection:
 * "peer cluster <the filter's haports property>" (filter.accessLog).
 */
export function withAccessLog(listenerText, logPath) {
  return listenerText.replace('        cluster: haports_unselected', `        cluster: haports_unselected
        access_log:
        - name: envoy.access_loggers.file
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
            path: ${logPath}
            log_format:
              text_format_source:
                inline_string: "%DOWNSTREAM_REMOTE_ADDRESS% %UPSTREAM_CLUSTER% %FILTER_STATE(wasm.haports:PLAIN)%\\n"`);
}
