// Asking a running pump through its admin endpoint (`haports pump --metrics HOST:PORT`,
// host/pump/admin.ts): `haports lookup --pump URL …` and `haports flows --pump URL …`.

/** An admin endpoint's answer, or an error that says what went wrong (exit 2: input). */
export async function adminGet(base: string, path: string, query: Record<string, string | number | undefined>): Promise<any> {
  let url: URL;
  try {
    url = new URL(path, base.endsWith('/') ? base : `${base}/`);
  } catch {
    throw Object.assign(new Error(`--pump: ${JSON.stringify(base)} is not a URL (e.g. http://127.0.0.1:9464)`), { usage: true });
  }
  for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  } catch (e: any) {
    throw Object.assign(new Error(`--pump: cannot reach ${url.origin}: ${e?.cause?.code ?? e?.cause?.errors?.[0]?.code ?? e?.cause?.message ?? e?.message ?? e}`), { usage: true });
  }
  const text = await res.text();
  let body: any;
  try { body = JSON.parse(text); } catch { body = null; }
  if (!res.ok) {
    const why = body?.error ?? text.trim();
    throw Object.assign(new Error(`${url.pathname}: ${res.status} ${why}`), { usage: true });
  }
  if (body === null) throw Object.assign(new Error(`${url.pathname}: the answer is not JSON (is ${url.origin} a haports pump's admin endpoint?)`), { usage: true });
  return body;
}

/** One tracked flow as a line of `haports flows`. */
export function flowLine(f: { proto: number; src: string; sport: number; dst: string; dport: number; rule: string; backend: string; established: boolean; closing: boolean; idleMs: number; worker?: number }): string {
  const ep = (a: string, p: number) => (a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`);
  const proto = f.proto === 6 ? 'tcp' : f.proto === 17 ? 'udp' : f.proto === 1 ? 'icmp' : f.proto === 58 ? 'icmpv6' : String(f.proto);
  const state = f.closing ? 'closing' : f.established ? 'established' : 'unverified';
  return `${proto.padEnd(6)} ${ep(f.src, f.sport)} → ${ep(f.dst, f.dport)}  ${f.rule}/${f.backend}  ${state}, idle ${(f.idleMs / 1000).toFixed(1)} s${f.worker !== undefined ? `, worker ${f.worker}` : ''}`;
}
