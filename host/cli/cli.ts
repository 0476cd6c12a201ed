// The `haports` command line.
//
// Exit codes (every command): 0 success, 1 the input was understood but rejected (an
// invalid configuration), 2 usage error or unreadable input, 3 internal failure (a bug:
// reported with its stack).

import { createReadStream, createWriteStream, existsSync, openSync, readFileSync, statSync } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { finished } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { ConfigError, Core, LINK_ETHERNET, LINK_RAW_IP, NONE } from '../lib/core.js';
import { TUPLE, TUPLE_BYTES } from '../lib/abi.js';
import { Dataplane, type Lookup } from '../lib/index.js';
import { adminGet as remoteGet, flowLine } from './remote.js';
import { demoCommand } from './demo.js';
import { armCommand } from '../arm/arm.js';
import { pumpCommand, readPumpSettings } from '../pump/pump.js';
import {
  CaptureStream, LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_RAW, pcapHeader, pcapRecord, type CapturedPacket,
} from './pcap.js';

const USAGE = `usage: haports <command> [options]

commands:
  demo      generated traffic through an HA-ports rule over four appliances: spread,
            stickiness, symmetry, failover and recovery
  replay    run a capture through the dataplane and report a verdict per packet
  validate  check a configuration file
  import-arm
            turn an Azure Resource Manager template's load balancers into a configuration
  pump      the packet pump: VXLAN/GENEVE listeners in front of appliances, with probes
            and Prometheus metrics
  lookup    which rule, backend and Maglev slot a flow gets (both directions), and why;
            of a configuration, or of a running pump (--pump)
  flows     the flows a running pump tracks (--pump), filtered
  maglev    a pool's Maglev table: each backend's share of the slots
  bench     the benchmark suite (same as npm run bench; --quick for a smoke run)

run 'haports <command> --help' for the options of a command; 'haports --version'.

exit codes (every command):
  0  success
  1  invalid configuration
  2  usage or input error: a bad option, a file that cannot be read or written, a
     broken or truncated capture
  3  internal failure (a bug, reported with its stack)
`;

/** The package's version (package.json beside build/ and host/). */
function version(): string {
  try {
    return JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;
  } catch {
    return 'unknown';
  }
}

const REPLAY_USAGE = `usage: haports replay --config CONFIG.json [--verdicts OUT.jsonl] [--out OUT.pcap]
                      [--events EVENTS.jsonl] [--frontend NAME] [--quiet] [--json] INPUT|-

Runs every packet of INPUT (pcap or pcapng, gzip-compressed or not; - for standard
input; link types Ethernet, raw IP, Linux cooked SLL and SLL2 as \`tcpdump -i any\`
writes, BSD loopback/null, PPP) through the dataplane, streaming (memory stays bounded
whatever the capture's size), and writes one JSON line per packet:
  {"index","verdict":"forward"|"drop"|"nomatch"|"reset","rule","backend","reason",
   "tuple":{"src","dst","proto","sport","dport"}}
to --verdicts (or standard output), then a summary (to standard error when the verdicts
go to standard output). "reset": a TCP flow of an enableTcpReset rule sent after its
idle timeout; instead of the packet, two RSTs leave (in --out): one back to its sender,
one on to the backend.

  --config FILE     haports configuration (JSON)
  --verdicts FILE   write the verdict lines here instead of standard output
  --out FILE        write the forwarded packets as they leave (rewritten) to a pcap file,
                    and for each reset verdict its two RSTs
  --events FILE     backend state changes, one JSON line each, applied before packet "at":
                    {"at": 120, "backend": "nva-1", "state": "down"|"up"|"draining"}
                    (every backend of that name, in every pool)
  --frontend NAME   treat the capture as next-hop traffic routed to frontend NAME
  --quiet           no summary (but --json's) and no progress (progress shows on a
                    terminal only)
  --json            the summary as one JSON object on standard output, and no progress;
                    verdict lines then go to --verdicts only:
                    {"input","format","gzip","linkTypes":[{"linktype","name","packets"}],
                     "packets","bytes","packetBytes","seconds","packetsPerSecond",
                     "verdicts":{"forward","drop","nomatch","reset"},"rules":{NAME: packets},
                     "backends":{NAME: packets forwarded},"drops":{REASON: packets},
                     "flows":{"summarized","bothDirections","onMoreThanOneBackend",
                              "truncated","limit","packetsNotSummarized"},
                     "flowTable":{...},"nat":{...},"fragments":{...}}
                    errors as {"errors": [{"path", "message"}]} (path: the option, "input",
                    or the configuration's path), with the same exit codes
`;

const VALIDATE_USAGE = `usage: haports validate [--json] CONFIG.json

Checks a configuration: shape, references, ranges, the HA-ports caveats and, when it
has one, the "pump" section as \`haports pump\` reads it. Prints one 'path: reason'
line per error, then 'warning: path: reason' lines (advice: warnings never fail
validation), then 'info: path: reason' lines (notes, such as Azure history, that call
for no change). A reason about a rule, frontend, pool, backend or probe starts with its
name: 'rules[1]: rule "b": ...'. Exit 0 when valid, 1 when invalid, 2 when the file
cannot be read.

  --json   print {"valid": bool, "errors": [...], "warnings": [...], "info": [...]}
           instead, each line as {"path": "rules[1]", "message": "rule \\"b\\": ..."}
`;

class UsageError extends Error {}

const LINKTYPE_NULL = 0;          // BSD loopback: 4-byte address family, host byte order
const LINKTYPE_PPP = 9;           // PPP: [FF 03] protocol (2 bytes)
const LINKTYPE_LOOP = 108;        // OpenBSD loopback: 4-byte address family, network byte order
const LINKTYPE_LINUX_SLL = 113;   // Linux cooked capture v1 (tcpdump -i any): 16-byte header
const LINKTYPE_LINUX_SLL2 = 276;  // Linux cooked capture v2: 20-byte header

/** The core's link type for a capture's: Ethernet as it is; raw IP, and the ones below with their header cut off. */
function linkOf(linktype: number): number {
  if (linktype === LINKTYPE_ETHERNET) return LINK_ETHERNET;
  if (linktype === LINKTYPE_RAW || linktype === LINKTYPE_IPV4 || linktype === LINKTYPE_IPV6) return LINK_RAW_IP;
  if (linktype === LINKTYPE_NULL || linktype === LINKTYPE_LOOP || linktype === LINKTYPE_PPP
    || linktype === LINKTYPE_LINUX_SLL || linktype === LINKTYPE_LINUX_SLL2) return LINK_RAW_IP;
  return -1;
}

const EMPTY = new Uint8Array(0);

/**
 * The packet the core sees: for the link types that are not Ethernet or raw IP, the IP
 * packet after their header; a frame that carries no IP (ARP in a cooked capture, LCP on
 * PPP) or is cut inside the header becomes an empty packet, which the core drops and
 * counts (truncated).
 */
function payloadOf(linktype: number, d: Uint8Array): Uint8Array {
  const u16 = (at: number) => (d.length >= at + 2 ? (d[at] << 8) | d[at + 1] : -1);
  const ip = (ethertype: number, at: number) => (ethertype === 0x0800 || ethertype === 0x86dd) && d.length >= at ? d.subarray(at) : EMPTY;
  switch (linktype) {
    case LINKTYPE_LINUX_SLL: return ip(u16(14), 16);
    case LINKTYPE_LINUX_SLL2: return ip(u16(0), 20);
    case LINKTYPE_NULL: case LINKTYPE_LOOP: {
      if (d.length < 4) return EMPTY;
      // The family's byte order is the capturing host's: read it either way.
      const le = d[0] | (d[1] << 8) | (d[2] << 16) | (d[3] << 24);
      const be = (d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3];
      const family = linktype === LINKTYPE_LOOP ? be : (le > 0 && le < 256 ? le : be);
      // AF_INET 2; AF_INET6 24 (NetBSD, OpenBSD), 28 (FreeBSD), 30 (macOS): libpcap's list.
      return family === 2 || family === 24 || family === 28 || family === 30 ? d.subarray(4) : EMPTY;
    }
    case LINKTYPE_PPP: {
      const at = d[0] === 0xff && d[1] === 0x03 ? 2 : 0;
      const proto = u16(at);
      return proto === 0x0021 || proto === 0x0057 ? d.subarray(at + 2) : EMPTY;
    }
    default: return d;
  }
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e: any) {
    throw new UsageError(`cannot read ${what} ${path}: ${e.code ?? e.message}`);
  }
}

interface BackendEvent { at: number; backends: number[]; state: 'up' | 'down' | 'draining'; line: number }

/** Reads an events file: one {"at", "backend", "state"} object per line, sorted by "at". */
function readEvents(path: string, backendNames: string[]): BackendEvent[] {
  const out: BackendEvent[] = [];
  readText(path, 'events').split('\n').forEach((text, i) => {
    if (text.trim() === '') return;
    const where = `${path}:${i + 1}`;
    let e: any;
    try {
      e = JSON.parse(text);
    } catch {
      throw new UsageError(`${where}: not JSON`);
    }
    if (!Number.isInteger(e?.at) || e.at < 0) throw new UsageError(`${where}: "at" must be a packet index`);
    if (!['up', 'down', 'draining'].includes(e.state)) throw new UsageError(`${where}: "state" must be "up", "down" or "draining"`);
    const backends = backendNames.flatMap((n, b) => (n === e.backend ? [b] : []));
    if (backends.length === 0) throw new UsageError(`${where}: no backend named ${JSON.stringify(e.backend)}`);
    out.push({ at: e.at, backends, state: e.state, line: i + 1 });
  });
  return out.sort((a, b) => a.at - b.at || a.line - b.line);
}

/** down/up is the probe's verdict; draining/up the operator's. "up" clears both. */
function applyEvent(core: Core, e: BackendEvent): void {
  for (const b of e.backends) {
    if (e.state === 'down') core.setBackendHealth(b, false);
    else if (e.state === 'draining') core.setBackendAdmin(b, 'draining');
    else {
      core.setBackendHealth(b, true);
      core.setBackendAdmin(b, 'up');
    }
  }
}

/** A batch ends at the core's batch size, a link-type change, or a second of capture time. */
const BATCH_SPAN_MS = 1000;
/** Flows the replay summary follows (directions, backends); more are counted, not followed. */
const FLOW_SUMMARY_LIMIT = 100_000;

/** A capture to stream: a file or standard input (`-`), gunzipped when it starts with gzip's magic. */
async function openCapture(path: string): Promise<{ input: AsyncIterable<Uint8Array>; gzip: boolean }> {
  const input = path === '-' ? process.stdin : createReadStream(path, { highWaterMark: 1 << 20 });
  try {
    await new Promise<void>((resolve, reject) => {
      input.once('readable', resolve);
      input.once('error', reject);
    });
  } catch (e: any) {
    throw Object.assign(new UsageError(`cannot read capture ${path}: ${e.code ?? e.message}`), { path: 'input' });
  }
  const head = (input.read(2) ?? input.read()) as Buffer | null;
  if (head) input.unshift(head);
  if (head && head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return { input: input.pipe(createGunzip()), gzip: true };
  return { input, gzip: false };
}

/**
 * Progress on a terminal (packets, rate, and for a plain file the share read and an ETA),
 * at most once a second; nothing when the summary goes to a file or a pipe.
 */
function progressReporter(to: NodeJS.WritableStream | null, path: string): ((packets: number, bytes: number) => void) & { done(): void } {
  const tty = to !== null && (to as any).isTTY === true;
  let size = 0;
  if (tty && path !== '-') {
    try { size = statSync(path).size; } catch { /* unknown */ }
  }
  const t0 = Date.now();
  let last = t0;
  let shown = false;
  const report = Object.assign((packets: number, bytes: number) => {
    if (!tty) return;
    const now = Date.now();
    if (now - last < 1000) return;
    last = now;
    const s = (now - t0) / 1000;
    const rate = packets / s;
    let line = `\r${packets.toLocaleString('en-US')} packets, ${Math.round(rate).toLocaleString('en-US')}/s`;
    if (size > 0 && bytes > 0 && bytes <= size) {
      line += `, ${((bytes / size) * 100).toFixed(0)} %, about ${Math.ceil(s * (size / bytes - 1))} s left`;
    }
    to!.write(line + '   ');
    shown = true;
  }, { done() { if (shown) to!.write('\r\x1b[K'); } });
  return report;
}

/** The link types' names in the JSON summary. */
const LINKTYPE_NAMES: Record<number, string> = {
  [LINKTYPE_ETHERNET]: 'ethernet', [LINKTYPE_RAW]: 'raw', [LINKTYPE_IPV4]: 'ipv4', [LINKTYPE_IPV6]: 'ipv6',
  [LINKTYPE_NULL]: 'null', [LINKTYPE_LOOP]: 'loop', [LINKTYPE_PPP]: 'ppp', [LINKTYPE_LINUX_SLL]: 'linux-sll',
  [LINKTYPE_LINUX_SLL2]: 'linux-sll2',
};

async function replay(argv: string[], out: NodeJS.WriteStream, err: NodeJS.WriteStream): Promise<number> {
  // --json answers in JSON whatever happens, a bad option included, so it is looked for
  // before the options are parsed. Errors are {path, message}: path is the option or
  // "input" (the capture), or the configuration's own path for an invalid configuration.
  const end = argv.indexOf('--');
  const json = (end < 0 ? argv : argv.slice(0, end)).includes('--json');
  const usage = (path: string, message: string) => Object.assign(new UsageError(message), { path });
  const jsonErrors = (errors: { path: string; message: string }[]) => out.write(JSON.stringify({ errors }) + '\n');
  try {
    return await replayRun();
  } catch (e: any) {
    if (!json) throw e;
    if (e instanceof UsageError || e?.code?.startsWith?.('ERR_PARSE_ARGS_')) {
      jsonErrors([{ path: e.path ?? /'(--?[^' ]+)/.exec(e.message)?.[1] ?? 'argv', message: e.message }]);
      return 2;
    }
    // A bug: said in JSON too, then main() reports it with its stack (exit 3).
    jsonErrors([{ path: 'internal', message: `internal failure (please report it): ${e?.message ?? e}` }]);
    throw e;
  }

  async function replayRun(): Promise<number> {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string' }, verdicts: { type: 'string' }, out: { type: 'string' },
        frontend: { type: 'string' }, quiet: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
        events: { type: 'string' },
      },
    });
    if (values.help) { out.write(REPLAY_USAGE); return 0; }
    if (!values.config) throw usage('--config', 'replay: --config is required');
    if (positionals.length !== 1) throw usage('input', 'replay: give exactly one capture file');

    let configText: string;
    try {
      configText = readText(values.config, 'configuration');
    } catch (e: any) {
      throw e instanceof UsageError ? usage('--config', e.message) : e;
    }
    const core = Core.load();
    try {
      core.configure(configText);
    } catch (e) {
      if (e instanceof ConfigError) {
        if (json) {
          // Every line is `path: message` (the core's style), as `validate --json` splits them.
          jsonErrors(e.errors.map((line) => {
            const at = line.indexOf(': ');
            return at < 0 ? { path: '$', message: line } : { path: line.slice(0, at), message: line.slice(at + 2) };
          }));
          return 1;
        }
        err.write(`haports: ${values.config} is not a valid configuration:\n`);
        for (const line of e.errors) err.write(`  ${line}\n`);
        return 1;
      }
      throw e;
    }
    let ingress = NONE;
    if (values.frontend !== undefined) {
      ingress = core.names.frontends.indexOf(values.frontend);
      if (ingress < 0) throw usage('--frontend', `replay: no frontend named ${JSON.stringify(values.frontend)} in ${values.config}`);
    }

    let events: BackendEvent[] = [];
    try {
      if (values.events) events = readEvents(values.events, core.names.backends);
    } catch (e: any) {
      throw e instanceof UsageError ? usage('--events', e.message) : e;
    }
    let nextEvent = 0;

    // Output files are opened before the capture is read: one that cannot be is a usage error.
    const openOut = (option: string, path: string) => {
      try {
        return createWriteStream('', { fd: openSync(path, 'w') });
      } catch (e: any) {
        throw usage(option, `replay: cannot write ${option} ${path}: ${e.code ?? e.message}`);
      }
    };
    const verdictFile = values.verdicts ? openOut('--verdicts', values.verdicts) : null;
    const pcapOut = values.out ? openOut('--out', values.out) : null;

    // The capture streams in (a file, `-` for standard input, either gzip-compressed):
    // memory holds one chunk, one batch and the flow summary, whatever the capture's size.
    const source = positionals[0];
    const t0 = performance.now();
    const { input, gzip } = await openCapture(source);
    const capture = new CaptureStream();
    const captureError = (e: any) => usage('input', `${source === '-' ? 'standard input' : source}: ${e.message}`);

    // Verdict lines go to a file or standard output (not with --json: standard output is
    // the summary's), with back-pressure (a pipe that is read slowly must not cut the output
    // short). A reader that goes away (`replay … | head -1`) ends the replay quietly: EPIPE
    // is not an error of ours. Another write error (a full disk) ends it with exit 2.
    const verdictOut: NodeJS.WritableStream | null = verdictFile ?? (json ? null : out);
    let readerGone = false;
    let writeError: UsageError | null = null;
    const onWriteError = (option: string) => (e: any) => {
      if (e?.code === 'EPIPE' || e?.code === 'ERR_STREAM_DESTROYED') readerGone = true;
      else writeError ??= usage(option, `replay: cannot write ${option === 'stdout' ? 'standard output' : `${option} ${(values as any)[option.slice(2)]}`}: ${e?.code ?? e?.message}`);
    };
    if (verdictOut) verdictOut.on('error', onWriteError(verdictFile ? '--verdicts' : 'stdout'));
    pcapOut?.on('error', onWriteError('--out'));
    const drained = (stream: NodeJS.WritableStream) => new Promise<void>((resolve) => {
      const done = () => { stream.off('drain', done); stream.off('error', done); stream.off('close', done); resolve(); };
      stream.on('drain', done);
      stream.on('error', done);
      stream.on('close', done);
    });
    /** Writes; true when the stream has let go of `text` (it drained after it, or died). */
    const emit = async (text: Uint8Array): Promise<boolean> => {
      if (writeError) throw writeError;
      if (readerGone || !verdictOut) return true;
      if (verdictOut.write(text)) return false;
      await drained(verdictOut);
      return true;
    };
    const summaryTo = values.verdicts ? out : err;
    // --out: written as it goes, in the link type of the first forwarded packet.
    const writeOut = async (data: Uint8Array) => {
      if (writeError) throw writeError;
      if (pcapOut && !pcapOut.write(data)) await drained(pcapOut);
    };
    let outLinktype = -1;
    const perVerdict: Record<string, number> = { forward: 0, drop: 0, nomatch: 0, reset: 0 };
    const perRule = new Map<string, number>();
    const perBackend = new Map<string, number>();
    const perReason = new Map<string, number>();
    const perDropReason = new Map<string, number>();
    const perLinktype = new Map<number, number>();
    let packetBytes = 0;
    // Per flow (endpoints in canonical order), packed in a number: its first backend (bits
    // 0-15), the direction seen first (bit 16), both directions seen (bit 17), another
    // backend seen (bit 18). Bounded: beyond FLOW_SUMMARY_LIMIT flows the summary counts
    // the packets of the others apart.
    const flows = new Map<string, number>();
    let flowsUnsummarized = 0;
    // A flow's key: the core's tuple of the packet as 16-bit units in a flat string (7 for
    // IPv4, 19 for IPv6): protocol and whether there are ports, then the two endpoints
    // (address, port) in canonical order. No address is formatted, and 100,000 flows take a
    // few MB. flowDir: 0 when the packet went from the first endpoint to the second.
    let flowDir = 0;
    const flowKey = (mem: Uint8Array, at: number): string => {
      const s = at + TUPLE.src;
      const d = at + TUPLE.dst;
      const ports = mem[at + TUPLE.hasPorts] !== 0;
      const sp = ports ? mem[at + TUPLE.sport] | (mem[at + TUPLE.sport + 1] << 8) : 0;
      const dp = ports ? mem[at + TUPLE.dport] | (mem[at + TUPLE.dport + 1] << 8) : 0;
      const head = mem[at + TUPLE.proto] | (ports ? 0x100 : 0);
      const u16 = (o: number) => (mem[o] << 8) | mem[o + 1];
      if (mem[at + TUPLE.family] === 4) {
        const sa = ((mem[s] << 24) | (mem[s + 1] << 16) | (mem[s + 2] << 8) | mem[s + 3]) >>> 0;
        const da = ((mem[d] << 24) | (mem[d + 1] << 16) | (mem[d + 2] << 8) | mem[d + 3]) >>> 0;
        flowDir = sa < da || (sa === da && sp < dp) ? 0 : 1;
        return flowDir === 0
          ? String.fromCharCode(head, sa >>> 16, sa & 0xffff, sp, da >>> 16, da & 0xffff, dp)
          : String.fromCharCode(head, da >>> 16, da & 0xffff, dp, sa >>> 16, sa & 0xffff, sp);
      }
      let cmp = 0;
      for (let k = 0; k < 16 && cmp === 0; k++) cmp = mem[s + k] - mem[d + k];
      flowDir = cmp < 0 || (cmp === 0 && sp < dp) ? 0 : 1;
      const [x, xp, y, yp] = flowDir === 0 ? [s, sp, d, dp] : [d, dp, s, sp];
      return String.fromCharCode(head, u16(x), u16(x + 2), u16(x + 4), u16(x + 6), u16(x + 8), u16(x + 10), u16(x + 12), u16(x + 14), xp,
        u16(y), u16(y + 2), u16(y + 4), u16(y + 6), u16(y + 8), u16(y + 10), u16(y + 12), u16(y + 14), yp);
    };
    const names = core.names;
    // The verdict lines are JSON.stringify({index, verdict, rule, backend, reason, tuple})
    // written out by hand (names quoted once; addresses, numbers and the core's action and
    // reason names need no escaping), straight into a buffer of 1 MiB handed to the stream
    // when full, and used again once the stream has written it: the same bytes at half the
    // cost, and no garbage.
    const ruleJson = names.rules.map((n) => JSON.stringify(n));
    const backendJson = names.backends.map((n) => JSON.stringify(n));
    const quoted = [...ruleJson, ...backendJson];
    const encoding = quoted.every((q) => /^[\x20-\x7e]*$/.test(q)) ? 'latin1' : 'utf8';
    const longestLine = 512 + 3 * quoted.reduce((n, q) => Math.max(n, q.length), 0) * 2;
    const LINES_BYTES = Math.max(1 << 20, 4 * longestLine);
    let lines = Buffer.allocUnsafe(verdictOut ? LINES_BYTES : 0);
    let linesAt = 0;
    const flushLines = async () => {
      if (linesAt === 0) return;
      const full = lines.subarray(0, linesAt);
      linesAt = 0;
      if (!await emit(full)) lines = Buffer.allocUnsafe(LINES_BYTES);
    };
    const progress = progressReporter(values.quiet || json ? null : summaryTo, source);

    // A batch ends at the core's batch size, a link-type change, a second of capture time,
    // the arena's bytes, or an event.
    let batch: CapturedPacket[] = [];
    let batchData: Uint8Array[] = [];
    let batchBytes = 0;
    let batchT0 = 0;
    const run = async () => {
      if (batch.length === 0) return;
      const linktype = batch[0].linktype;
      const link = linkOf(linktype);
      perLinktype.set(linktype, (perLinktype.get(linktype) ?? 0) + batch.length);
      packetBytes += batchBytes;
      core.load(batchData);
      core.process(batch.length, batchT0, ingress, link);
      const mem = core.memory;
      const tuples = core.exports.tuplesPtr();
      for (let i = 0; i < batch.length; i++) {
        const v = core.verdict(i);
        const rule = v.rule === NONE ? null : names.rules[v.rule] ?? null;
        const backend = v.backend === NONE ? null : names.backends[v.backend] ?? null;
        const reason = v.action === 'forward' ? null : v.reason;
        const forwarded = backend !== null && v.action === 'forward';
        if (verdictOut !== null) {
          const t = core.tuple(i);
          linesAt += lines.write(`{"index":${batch[i].index},"verdict":"${v.action}","rule":${rule === null ? 'null' : ruleJson[v.rule]},`
            + `"backend":${backend === null ? 'null' : backendJson[v.backend]},"reason":${reason === null ? 'null' : `"${reason}"`},"tuple":`
            + (t === null ? 'null}\n'
              : `{"src":"${t.src}","dst":"${t.dst}","proto":${t.proto},"sport":${t.sport},"dport":${t.dport}}}\n`), linesAt, encoding);
          if (LINES_BYTES - linesAt < longestLine) await flushLines();
        }
        perVerdict[v.action]++;
        if (rule !== null) perRule.set(rule, (perRule.get(rule) ?? 0) + 1);
        if (forwarded) perBackend.set(backend, (perBackend.get(backend) ?? 0) + 1);
        if (reason !== null) {
          perReason.set(reason, (perReason.get(reason) ?? 0) + 1);
          if (v.action === 'drop') perDropReason.set(reason, (perDropReason.get(reason) ?? 0) + 1);
        }
        if (forwarded && mem[tuples + i * TUPLE_BYTES + TUPLE.family] !== 0) {
          const key = flowKey(mem, tuples + i * TUPLE_BYTES);
          const dir = flowDir;
          const f = flows.get(key);
          if (f === undefined) {
            if (flows.size >= FLOW_SUMMARY_LIMIT) flowsUnsummarized++;
            else flows.set(key, v.backend | (dir << 16));
          } else {
            let g = f;
            if (((f >> 16) & 1) !== dir) g |= 1 << 17;
            if ((f & 0xffff) !== v.backend) g |= 1 << 18;
            if (g !== f) flows.set(key, g);
          }
        }
        if (pcapOut && (v.action === 'forward' || v.action === 'reset')) {
          // What the core saw, as it leaves: Ethernet stays Ethernet, the rest is raw IP.
          const written = link === LINK_ETHERNET ? LINKTYPE_ETHERNET : LINKTYPE_RAW;
          if (outLinktype < 0) {
            outLinktype = written;
            await writeOut(pcapHeader(outLinktype));
          }
          if (written === outLinktype) {
            const p = batch[i];
            if (v.action === 'forward') {
              await writeOut(pcapRecord({ data: core.packet(i), tsSec: p.tsSec, tsNsec: p.tsNsec }));
            } else {
              // enableTcpReset: the packet is not forwarded; its two RSTs leave instead,
              // the one back to its sender first.
              const rst = core.resets(i)!;
              await writeOut(pcapRecord({ data: rst.toSender, tsSec: p.tsSec, tsNsec: p.tsNsec }));
              await writeOut(pcapRecord({ data: rst.toBackend, tsSec: p.tsSec, tsNsec: p.tsNsec }));
            }
          }
        }
      }
      progress(capture.packetsRead, capture.bytesRead);
      batch = [];
      batchData = [];
      batchBytes = 0;
    };
    const add = async (p: CapturedPacket) => {
      // Events due at this packet, after the packets before it.
      if (nextEvent < events.length && events[nextEvent].at <= p.index) {
        await run();
        while (nextEvent < events.length && events[nextEvent].at <= p.index) applyEvent(core, events[nextEvent++]);
      }
      if (linkOf(p.linktype) < 0) throw usage('input', `${source}: packet ${p.index}: unsupported link type ${p.linktype}`);
      const t = p.tsSec * 1000 + p.tsNsec / 1e6;
      // A packet larger than the whole arena goes in cut to it: the core sees a truncated packet and says so.
      let data = payloadOf(p.linktype, p.data);
      if (data.length > core.arenaSize) data = data.subarray(0, core.arenaSize);
      if (batch.length > 0 && (batch.length >= core.maxBatch || p.linktype !== batch[0].linktype
        || t - batchT0 >= BATCH_SPAN_MS || batchBytes + data.length > core.arenaSize)) await run();
      if (batch.length === 0) batchT0 = t;
      batch.push(p);
      batchData.push(data);
      batchBytes += data.length;
    };
    try {
      for await (const chunk of input) {
        let packets: CapturedPacket[];
        try {
          packets = capture.feed(chunk as Uint8Array);
        } catch (e: any) {
          throw captureError(e);
        }
        // The views of one chunk are used before the next is read.
        for (const p of packets) await add(p);
        await run();
        if (readerGone) break;
      }
      if (!readerGone) {
        try {
          capture.end();
        } catch (e: any) {
          throw captureError(e);
        }
      }
    } catch (e: any) {
      if (e instanceof UsageError) throw e;
      if (e?.code === 'Z_DATA_ERROR' || e?.code === 'Z_BUF_ERROR') throw usage('input', `${source}: not a valid gzip stream: ${e.message}`);
      if (typeof e?.code === 'string' && e?.syscall === 'read') throw usage('input', `cannot read capture ${source}: ${e.code}`);
      throw e;
    } finally {
      (input as any).destroy?.();
      progress.done();
    }
    await flushLines();
    for (const stream of [verdictFile, pcapOut]) {
      if (!stream) continue;
      if (stream === pcapOut && outLinktype < 0) await writeOut(pcapHeader(LINKTYPE_ETHERNET)); // nothing forwarded: an empty capture
      stream.end();
      await finished(stream).catch(() => { /* its error is writeError */ });
    }
    if (writeError) throw writeError;
    if (readerGone) return 0;
    const total = capture.packetsRead;
    const seconds = (performance.now() - t0) / 1000;

    let bothCount = 0;
    let split = 0;
    for (const f of flows.values()) {
      if (f & (1 << 17)) bothCount++;
      if (f & (1 << 18)) split++;
    }
    const c = core.counters();
    if (json) {
      const sorted = (m: Map<string, number>) => Object.fromEntries([...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      out.write(JSON.stringify({
        input: source,
        format: capture.format,
        gzip,
        linkTypes: [...perLinktype].map(([linktype, packets]) => ({ linktype, name: LINKTYPE_NAMES[linktype] ?? null, packets })),
        packets: total,
        bytes: capture.bytesRead,
        packetBytes,
        seconds: Math.round(seconds * 1000) / 1000,
        packetsPerSecond: seconds > 0 ? Math.round(total / seconds) : null,
        verdicts: perVerdict,
        rules: Object.fromEntries(names.rules.filter((n) => perRule.has(n)).map((n) => [n, perRule.get(n)!])),
        backends: Object.fromEntries(names.backends.filter((n) => perBackend.has(n)).map((n) => [n, perBackend.get(n)!])),
        drops: sorted(perDropReason),
        flows: {
          summarized: flows.size,
          bothDirections: bothCount,
          onMoreThanOneBackend: split,
          truncated: flowsUnsummarized > 0,
          limit: FLOW_SUMMARY_LIMIT,
          packetsNotSummarized: flowsUnsummarized,
        },
        flowTable: {
          used: core.exports.flowTableUsed(), capacity: core.exports.flowTableCapacity(), new: c.flowNew, hits: c.flowHits,
          evicted: c.evictions, untracked: c.untracked, movedOffDown: c.flowMoved, movedOffDrained: c.flowDrained,
        },
        nat: { forward: c.natForward, reply: c.natReply },
        fragments: { first: c.fragEntries, followed: c.fragHits, hashed3Tuple: c.frag3Tuple },
      }) + '\n');
      return 0;
    }
    if (!values.quiet) {
      const s: string[] = [];
      s.push(`packets ${total}: forward ${perVerdict.forward}, drop ${perVerdict.drop}, nomatch ${perVerdict.nomatch}`
        + (perVerdict.reset ? `, reset ${perVerdict.reset} (idle past the timeout: RSTs sent to both ends)` : ''));
      for (const name of names.backends) {
        if (perBackend.has(name)) s.push(`  backend ${name}: ${perBackend.get(name)}`);
      }
      for (const [reason, n] of [...perReason].sort()) s.push(`  ${reason}: ${n}`);
      s.push(`flows ${flows.size} (${bothCount} seen in both directions): ${split === 0 ? 'each stayed on one backend' : `${split} reached more than one backend`}`
        + (flowsUnsummarized ? `; ${flowsUnsummarized} packets of further flows not summarized (more than ${FLOW_SUMMARY_LIMIT} flows)` : ''));
      s.push(`flows tracked ${core.exports.flowTableUsed()} of ${core.exports.flowTableCapacity()}, new ${c.flowNew}, hits ${c.flowHits}`
        + (c.evictions || c.untracked ? `, evicted ${c.evictions}, untracked ${c.untracked}` : '')
        + (c.flowMoved || c.flowDrained ? `, moved off down backends ${c.flowMoved}, off drained ${c.flowDrained}` : ''));
      if (c.natForward || c.natReply) s.push(`nat: ${c.natForward} rewritten to backends, ${c.natReply} replies translated back`);
      if (c.fragEntries || c.fragHits || c.frag3Tuple) {
        s.push(`fragments: ${c.fragEntries} first, ${c.fragHits} followed their first, ${c.frag3Tuple} hashed on the 3-tuple`);
      }
      summaryTo.write(s.join('\n') + '\n');
    }
    return 0;
  }
}

const LOOKUP_USAGE = `usage: haports lookup (--config CONFIG.json | --pump URL) [--frontend NAME] [--json]
                      PROTO SRC[:PORT] DST[:PORT]

Which rule, backend and Maglev slot a flow gets, in both directions, and why (tracked
flow, consistent hash, fail-open, or why none): the first packet of the flow (a TCP SYN,
a UDP datagram, an ICMP echo with SRC's port as its identifier) through the dataplane,
as replay and the pump would run it. PROTO: tcp, udp, icmp or a protocol number; IPv6
addresses in brackets with a port ([2001:db8::1]:443). --frontend: the frontend the
flow arrives on (next-hop use); by default frontends are matched by destination (with
--pump: the first listener's frontend).

--pump URL asks a running pump's admin endpoint (its --metrics address): its running
configuration and backend health, and its flow tables, so a flow it tracks is answered
with the appliance it keeps.

  haports lookup --config examples/config.json tcp 192.0.2.7:40000 10.0.0.100:443
  haports lookup --pump http://127.0.0.1:9464 tcp 192.168.10.2:5201 192.168.20.2:5201
`;

const FLOWS_USAGE = `usage: haports flows --pump URL [--backend NAME] [--rule NAME] [--proto P]
                     [--address IP] [--port N] [--established | --unverified]
                     [--limit N] [--json]

The flows a running pump tracks (its admin endpoint's /flows: every worker's flow
table), those matching every filter given, at most --limit (default 100, at most
10,000). Each: protocol, endpoints as the flow began, rule/backend, state (established,
unverified: not yet seen to be real, closing), idle time, worker.
`;

const MAGLEV_USAGE = `usage: haports maglev --config CONFIG.json [--pool NAME] [--table] [--json]

Each pool's Maglev table (every pool, or --pool NAME): its size and each backend's share
of the slots, as the dataplane builds it (weights and states as configured). --table also
prints the table, one backend name per slot.
`;

/** "ADDR", "ADDR:PORT" or "[V6]:PORT" → address and port. */
function endpoint(text: string, what: string): { address: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? /^([^:]+)(?::(\d+))?$/.exec(text) ?? /^([0-9a-fA-F:.]+)()$/.exec(text);
  if (!m) throw new UsageError(`lookup: ${what} ${JSON.stringify(text)}: write ADDRESS[:PORT], IPv6 as [ADDRESS]:PORT`);
  const port = m[2] ? Number(m[2]) : 0;
  if (port > 65535) throw new UsageError(`lookup: ${what} port ${port} is not 0-65535`);
  return { address: m[1], port };
}

function loadConfig(path: string, err: NodeJS.WritableStream): Dataplane | null {
  const text = readText(path, 'configuration');
  try {
    return Dataplane.create(text);
  } catch (e) {
    if (e instanceof ConfigError) {
      err.write(`haports: ${path} is not a valid configuration:\n`);
      for (const line of e.errors) err.write(`  ${line}\n`);
      return null;
    }
    throw e;
  }
}

async function lookup(argv: string[], out: NodeJS.WriteStream, err: NodeJS.WriteStream): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' }, pump: { type: 'string' }, frontend: { type: 'string' }, json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) { out.write(LOOKUP_USAGE); return 0; }
  if ((values.config === undefined) === (values.pump === undefined)) throw new UsageError('lookup: give --config or --pump (one of them)');
  if (positionals.length !== 3) throw new UsageError('lookup: give PROTO SRC[:PORT] DST[:PORT]');
  const [protoText, srcText, dstText] = positionals;
  const proto = /^\d+$/.test(protoText) ? Number(protoText) : protoText.toLowerCase();
  const src = endpoint(srcText, 'source');
  const dst = endpoint(dstText, 'destination');
  let result: { forward: Lookup; reverse: Lookup };
  if (values.pump !== undefined) {
    const answer = await adminGet(values.pump, 'lookup', {
      proto: protoText, src: src.address, sport: src.port, dst: dst.address, dport: dst.port, frontend: values.frontend,
    });
    result = { forward: answer.forward, reverse: answer.reverse };
  } else {
    const dp = loadConfig(values.config!, err);
    if (!dp) return 1;
    try {
      result = dp.lookup({ proto: proto as any, src: src.address, dst: dst.address, sport: src.port, dport: dst.port }, { ingress: values.frontend });
    } catch (e: any) {
      if (e instanceof RangeError) throw new UsageError(e.message);
      throw e;
    }
  }
  if (values.json) {
    out.write(JSON.stringify(result) + '\n');
    return 0;
  }
  const ep = (a: string, p: number) => (a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`);
  for (const [dir, r] of Object.entries(result)) {
    const f = r.flow;
    const slot = r.slot === null ? '' : `, slot ${r.slot} of ${r.tableSize}`;
    const what = r.verdict === 'forward' ? `rule ${r.rule}, backend ${r.pool}/${r.backend} (${r.why}${slot})`
      : `${r.verdict}${r.rule ? ` by rule ${r.rule}` : ''}: ${r.why}`;
    out.write(`${dir.padEnd(7)} ${protoText} ${ep(f.src, f.sport)} → ${ep(f.dst, f.dport)}: ${what}\n`);
  }
  return 0;
}

/** A running pump's admin endpoint; what goes wrong there is the input's fault (exit 2). */
async function adminGet(base: string, path: string, query: Record<string, string | number | undefined>): Promise<any> {
  try {
    return await remoteGet(base, path, query);
  } catch (e: any) {
    if (e?.usage) throw new UsageError(`${path === 'flows' ? 'flows' : 'lookup'}: ${e.message}`);
    throw e;
  }
}

async function flows(argv: string[], out: NodeJS.WriteStream): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      pump: { type: 'string' }, backend: { type: 'string' }, rule: { type: 'string' }, proto: { type: 'string' },
      address: { type: 'string' }, port: { type: 'string' }, established: { type: 'boolean' }, unverified: { type: 'boolean' },
      limit: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) { out.write(FLOWS_USAGE); return 0; }
  if (values.pump === undefined) throw new UsageError('flows: --pump URL is required (a running pump\'s --metrics address)');
  if (positionals.length > 0) throw new UsageError('flows: no positional arguments');
  if (values.established && values.unverified) throw new UsageError('flows: --established or --unverified, not both');
  const answer = await adminGet(values.pump, 'flows', {
    backend: values.backend, rule: values.rule, proto: values.proto, address: values.address, port: values.port, limit: values.limit,
    established: values.established ? 1 : values.unverified ? 0 : undefined,
  });
  if (values.json) {
    out.write(JSON.stringify(answer) + '\n');
    return 0;
  }
  for (const f of answer.flows) out.write(flowLine(f) + '\n');
  out.write(`${answer.returned} flows${answer.truncated ? ` (more match: --limit ${answer.limit} reached)` : ''}; ${answer.tableEntries} flow-table entries in use\n`);
  return 0;
}

async function maglev(argv: string[], out: NodeJS.WriteStream, err: NodeJS.WriteStream): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' }, pool: { type: 'string' }, table: { type: 'boolean' }, json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) { out.write(MAGLEV_USAGE); return 0; }
  if (!values.config) throw new UsageError('maglev: --config is required');
  if (positionals.length > 0) throw new UsageError('maglev: no positional arguments');
  const dp = loadConfig(values.config, err);
  if (!dp) return 1;
  const pools = dp.configuration().backendPools.map((p) => p.name);
  if (values.pool !== undefined && !pools.includes(values.pool)) throw new UsageError(`maglev: no pool named ${JSON.stringify(values.pool)}`);
  const chosen = values.pool !== undefined ? [values.pool] : pools;
  const result = chosen.map((pool) => ({ pool, ...dp.maglev(pool) }));
  if (values.json) {
    out.write(JSON.stringify(values.table ? result : result.map(({ table, ...r }) => r)) + '\n');
    return 0;
  }
  for (const r of result) {
    out.write(`pool ${r.pool}: ${r.size} slots\n`);
    for (const [b, share] of Object.entries(r.shares)) out.write(`  ${b.padEnd(16)} ${(share * 100).toFixed(2).padStart(6)} %  (${Math.round(share * r.size)} slots)\n`);
    if (values.table) out.write(r.table.join('\n') + '\n');
  }
  return 0;
}

async function validate(argv: string[], out: NodeJS.WriteStream): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) { out.write(VALIDATE_USAGE); return 0; }
  if (positionals.length !== 1) throw new UsageError('validate: give exactly one configuration file');
  let text: string;
  try {
    text = readText(positionals[0], 'configuration');
  } catch (e: any) {
    // --json answers in JSON even when the file cannot be read (exit 2 all the same).
    if (values.json && e instanceof UsageError) {
      out.write(JSON.stringify({ valid: false, errors: [{ path: '$', message: e.message }], warnings: [], info: [] }) + '\n');
      return 2;
    }
    throw e;
  }
  const { errors, warnings, info } = Core.check(text);
  if (errors.length === 0) {
    // A pump section is checked as the pump will read it (the core keeps it for the pump).
    const core = Core.load();
    core.configure(text);
    const described = core.describe();
    if ('pump' in described.hostSections) errors.push(...readPumpSettings(described, core.maxBatch).errors);
  }
  if (values.json) {
    // Every line is `path: message` (the core's style): as objects for programs.
    const split = (line: string) => {
      const at = line.indexOf(': ');
      return at < 0 ? { path: '$', message: line } : { path: line.slice(0, at), message: line.slice(at + 2) };
    };
    out.write(JSON.stringify({ valid: errors.length === 0, errors: errors.map(split), warnings: warnings.map(split), info: info.map(split) }) + '\n');
  } else {
    if (errors.length === 0) out.write(`${positionals[0]}: valid\n`);
    else out.write(errors.join('\n') + '\n');
    for (const w of warnings) out.write(`warning: ${w}\n`);
    for (const i of info) out.write(`info: ${i}\n`);
  }
  return errors.length === 0 ? 0 : 1;
}

export async function main(argv: string[], out = process.stdout, err = process.stderr): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'demo': return await demoCommand(rest, out, err);
      case 'replay': return await replay(rest, out, err);
      case 'validate': return await validate(rest, out);
      case 'import-arm': return await armCommand(rest, out, err);
      case 'lookup': return await lookup(rest, out, err);
      case 'maglev': return await maglev(rest, out, err);
      case 'flows': return await flows(rest, out);
      case 'pump': return await pumpCommand(rest, out, err);
      case 'bench': {
        // The suite lives in bench/ of the repository (not in the npm package: it needs the
        // AssemblyScript sources and the native toolchain): build/host/cli.mjs → ../../bench/run.mjs.
        const suite = new URL('../../bench/run.mjs', import.meta.url);
        if (!existsSync(suite)) {
          err.write('haports bench: the benchmark suite runs from a clone of the repository '
            + '(npm install && npm run bench there); the installed package does not carry it\n');
          return 2;
        }
        const bench = await import(suite.href);
        return await bench.main(rest);
      }
      case '--version': case '-V': case 'version':
        out.write(`haports ${version()}\n`);
        return 0;
      case undefined: case '-h': case '--help': case 'help':
        out.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (e: any) {
    if (e instanceof UsageError || e?.usage === true || e?.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION'
      || e?.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || e?.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      err.write(`haports: ${e.message}\n`);
      if (!(e instanceof UsageError)) err.write(USAGE);
      return 2;
    }
    err.write(`haports: internal failure (please report it): ${e?.stack ?? e}\n`);
    return 3;
  }
}
