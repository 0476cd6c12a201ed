// Kernel steering of tunnel datagrams across a pump's worker threads.
//
// Each worker has its own socket on the listener's address, all in one SO_REUSEPORT
// group; a classic BPF program attached to the group (SO_ATTACH_REUSEPORT_CBPF, udpio's
// attachReuseportCbpf) returns, per datagram, the index of the socket that receives it:
// the order in which the sockets were bound. steeringProgram() writes that program so
// that both directions of a flow reach the same worker, whose core then holds the flow.
//
// What the program sees. For a reuseport program the kernel runs it with the packet data
// starting at the UDP payload: reuseport_select_sock() is called by the UDP lookup with
// hdr_len = sizeof(struct udphdr), and run_bpf_filter() (net/core/sock_reuseport.c)
// does pskb_pull(skb, hdr_len) before the program and __skb_push() after. So offset 0 is
// the tunnel header. A load past the end of the datagram ends the program with 0, and an
// index ≥ the group's size makes the kernel fall back to its own hash.
//
// What it computes.
//   1. The tunnel header. VXLAN: 8 bytes, then an Ethernet frame. GENEVE: version 0
//      (else 0), 8 + 4 × (byte 0 & 0x3f) bytes, Protocol Type at bytes 2–3: 0x6558
//      Ethernet, 0x0800 IPv4, 0x86DD IPv6 (anything else: 0). The VNI, flags and options
//      play no part: the pump checks them after steering, in every worker alike.
//   2. Ethernet: 14 bytes, or 18 with one 802.1Q tag (0x8100); EtherType IPv4 or IPv6.
//   3. The inner addresses (never ports: a datagram's later fragments carry none, and
//      every fragment must reach the worker that holds its flow). IPv6: the XOR of the
//      four 32-bit words of each address.
//   4. The key. With NAT (rules without floating IP) a flow's two directions do not carry
//      the same pair of addresses: the client sends to the frontend, the backend answers
//      the client. So: if the destination is one of natFrontends, key = source (the
//      client); else if the source is one of natBackends, key = destination (the client);
//      else key = source XOR destination (symmetric). The NAT tests compare whole
//      addresses (all four words for IPv6), never the folded ones: a false match would
//      key one direction of an unrelated flow differently from the other.
//   5. Worker = fmix32(key) mod workers (MurmurHash3's finalizer: xorshift and multiply,
//      both in the classic BPF ALU; the ALU is 32 bits wide).
// Whatever cannot be parsed goes to worker 0.
//
// Operational notes for the caller: bind all `workers` sockets before traffic arrives
// (until then an index past the group falls back to the kernel's hash); attach the program
// once, to any socket of the group; and if a socket of the group is closed, the kernel
// moves the last socket into its place, which changes the mapping: restart the group.
// The kernel also bounds the program's translated size by net.core.optmem_max: with the
// old default of 20 KiB (raised to 128 KiB in recent kernels) a program longer than about
// 2,200 instructions (some 2,000 IPv4 or 250 IPv6 NAT addresses) is refused with ENOMEM
// when attached; treat that like null (one worker), or raise the sysctl.

import { endianness } from 'node:os';
import { addressBytes } from './udpio.js';

/** BPF_MAXINSNS: the kernel's limit on a classic BPF program. */
export const BPF_MAXINSNS = 4096;
/** The kernel's SO_REUSEPORT group holds at most U16_MAX sockets. */
export const MAX_WORKERS = 65535;

export interface SteeringOptions {
  /** Sockets in the group (one per worker thread), 1 to MAX_WORKERS. */
  workers: number;
  protocol: 'vxlan' | 'geneve';
  /** Frontend addresses of NAT rules (rules without floating IP). */
  natFrontends: string[];
  /** Backend addresses of those rules' pools. */
  natBackends: string[];
}

// Classic BPF encoding (include/uapi/linux/bpf_common.h, filter.h).
const LD = 0x00, LDX = 0x01, ST = 0x02, ALU = 0x04, JMP = 0x05, RET = 0x06, MISC = 0x07;
const W = 0x00, H = 0x08, B = 0x10;
const IMM = 0x00, ABS = 0x20, IND = 0x40, MEM = 0x60;
const ADD = 0x00, MUL = 0x20, AND = 0x50, LSH = 0x60, RSH = 0x70, MOD = 0x90, XOR = 0xa0;
const JA = 0x00, JEQ = 0x10, JSET = 0x40;
const K = 0x00, X = 0x08, RET_A = 0x10;
const TAX = 0x00, TXA = 0x80;

// Scratch memory M[0..15].
const M_SRC = 0;   // M[0..3]: the IPv6 source's words
const M_DST = 4;   // M[4..7]: the IPv6 destination's words
const M_KS = 8;    // the source as a key: the IPv4 address, or the IPv6 one folded
const M_KD = 9;    // the destination likewise
const M_TYPE = 10; // the EtherType, while X moves past the Ethernet header

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const ETHERTYPE_VLAN = 0x8100;
const ETHERTYPE_TEB = 0x6558;

/** Conditional jumps reach 255 instructions ahead: address lists are cut into chunks this long. */
const V4_CHUNK = 255;
const V6_CHUNK = 31; // 8 instructions per address

/** A jump target: a label, or null for the next instruction. */
type Target = string | null;

interface Insn { code: number; k: number; jt: Target; jf: Target }

/** A classic BPF program under construction, with forward jumps to labels. */
class Assembler {
  private readonly insns: Insn[] = [];
  private readonly labels = new Map<string, number>();
  private serial = 0;

  /** A label name not used before. */
  fresh(prefix: string): string { return `${prefix}.${this.serial++}`; }

  label(name: string): void {
    if (this.labels.has(name)) throw new Error(`steering: label ${name} defined twice`);
    this.labels.set(name, this.insns.length);
  }

  op(code: number, k = 0): void { this.insns.push({ code, k, jt: null, jf: null }); }

  /** A conditional jump: `jt` when true, `jf` when false. */
  jump(code: number, k: number, jt: Target, jf: Target): void { this.insns.push({ code: JMP | code | K, k, jt, jf }); }

  /** An unconditional jump (32-bit offset: reaches anywhere). */
  ja(target: string): void { this.insns.push({ code: JMP | JA, k: 0, jt: target, jf: null }); }

  /** The packed struct sock_filter array (host byte order), or null past BPF_MAXINSNS. */
  assemble(): Uint8Array | null {
    const n = this.insns.length;
    if (n > BPF_MAXINSNS) return null;
    const out = new Uint8Array(n * 8);
    const dv = new DataView(out.buffer);
    const le = endianness() === 'LE';
    const offset = (at: number, target: Target): number => {
      if (target === null) return 0;
      const to = this.labels.get(target);
      if (to === undefined) throw new Error(`steering: undefined label ${target}`);
      const d = to - at - 1;
      if (d < 0) throw new Error(`steering: backward jump to ${target}`); // classic BPF jumps only forward
      return d;
    };
    this.insns.forEach((insn, i) => {
      let k = insn.k;
      let jt = 0;
      let jf = 0;
      if ((insn.code & 0x07) === JMP && (insn.code & 0xf0) === JA) {
        k = offset(i, insn.jt);
      } else if ((insn.code & 0x07) === JMP) {
        jt = offset(i, insn.jt);
        jf = offset(i, insn.jf);
        if (jt > 255 || jf > 255) throw new Error(`steering: conditional jump ${i} out of reach`);
      }
      dv.setUint16(i * 8, insn.code, le);
      dv.setUint8(i * 8 + 2, jt);
      dv.setUint8(i * 8 + 3, jf);
      dv.setUint32(i * 8 + 4, k >>> 0, le);
    });
    return out;
  }
}

/**
 * The steering program of a listener's worker group: packed struct sock_filter for
 * udpio.attachReuseportCbpf (the kernel's SO_ATTACH_REUSEPORT_CBPF), which returns the
 * worker (socket index) of each datagram. With workers = 1 it is a program that returns
 * 0 (never null). Null when the program would be longer than BPF_MAXINSNS (about 4,000
 * IPv4 or 500 IPv6 NAT addresses): the caller then runs one worker. Throws a RangeError
 * for a bad worker count, protocol or address.
 */
export function steeringProgram(opts: SteeringOptions): Uint8Array | null {
  const { workers, protocol } = opts;
  if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) {
    throw new RangeError(`steering: workers must be an integer from 1 to ${MAX_WORKERS} (got ${workers})`);
  }
  if (protocol !== 'vxlan' && protocol !== 'geneve') throw new RangeError(`steering: protocol must be "vxlan" or "geneve"`);
  const frontends = addressLists(opts.natFrontends, 'natFrontends');
  const backends = addressLists(opts.natBackends, 'natBackends');
  const p = new Assembler();
  if (workers === 1) {
    p.op(RET | K, 0);
    return p.assemble();
  }

  // Conditional jumps reach only 255 instructions ahead, and the NAT address lists may be
  // longer: the header parsing ends in long jumps (JA) to the IPv4 and IPv6 parts, and
  // every "cannot parse" jumps to a nearby return of 0.
  // 1. The tunnel header; X = where the Ethernet frame (or, GENEVE, the IP packet) starts.
  if (protocol === 'vxlan') {
    p.op(LDX | W | IMM, 8);
  } else {
    p.op(LD | B | ABS, 0);
    p.jump(JSET, 0xc0, 'unparsed', null);   // version ≠ 0: its layout is unknown
    p.op(ALU | AND | K, 0x3f);              // Opt Len, in 4-byte words
    p.op(ALU | LSH | K, 2);
    p.op(ALU | ADD | K, 8);
    p.op(MISC | TAX);
    p.op(LD | H | ABS, 2);                  // Protocol Type: Ethernet, or an EtherType
    p.jump(JEQ, ETHERTYPE_TEB, null, 'ip');
  }
  // 2. Ethernet: the EtherType, after one 802.1Q tag if there is one; X += 14 (or 18).
  p.op(LD | H | IND, 12);
  p.jump(JEQ, ETHERTYPE_VLAN, null, 'untagged');
  p.op(MISC | TXA);
  p.op(ALU | ADD | K, 4);
  p.op(MISC | TAX);
  p.op(LD | H | IND, 12);
  p.label('untagged');
  p.op(ST, M_TYPE);                         // X moves through A
  p.op(MISC | TXA);
  p.op(ALU | ADD | K, 14);
  p.op(MISC | TAX);
  p.op(LD | MEM, M_TYPE);
  // A = EtherType, X = the IP header.
  p.label('ip');
  p.jump(JEQ, ETHERTYPE_IPV4, null, 'not-ipv4');
  p.ja('ipv4');
  p.label('not-ipv4');
  p.jump(JEQ, ETHERTYPE_IPV6, null, 'unparsed');
  p.ja('ipv6');
  p.label('unparsed');
  p.op(RET | K, 0);

  // 3–4. IPv4: the addresses are the keys; A = destination for the frontend test, source for the backend test.
  p.label('ipv4');
  versionIs(p, 4);
  p.op(LD | W | IND, 12);
  p.op(ST, M_KS);
  p.op(LD | W | IND, 16);
  p.op(ST, M_KD);
  if (frontends.v4.length > 0) {
    p.op(LD | MEM, M_KD);
    matchV4(p, frontends.v4, 'key-source');
  }
  if (backends.v4.length > 0) {
    p.op(LD | MEM, M_KS);
    matchV4(p, backends.v4, 'key-destination');
  }
  p.ja('symmetric');

  // 3–4. IPv6: keep the eight words for the NAT tests, fold each address into a key.
  p.label('ipv6');
  versionIs(p, 6);
  for (let w = 0; w < 4; w++) {
    p.op(LD | W | IND, 8 + 4 * w);
    p.op(ST, M_SRC + w);
  }
  for (let w = 0; w < 4; w++) {
    p.op(LD | W | IND, 24 + 4 * w);
    p.op(ST, M_DST + w);
  }
  fold(p, M_SRC, M_KS);
  fold(p, M_DST, M_KD);
  matchV6(p, frontends.v6, M_DST, 'key-source');
  matchV6(p, backends.v6, M_SRC, 'key-destination');

  p.label('symmetric');
  p.op(LD | MEM, M_KS);
  p.op(LDX | W | MEM, M_KD);
  p.op(ALU | XOR | X);
  p.ja('mix');
  p.label('key-source');
  p.op(LD | MEM, M_KS);
  p.ja('mix');
  p.label('key-destination');
  p.op(LD | MEM, M_KD);

  // 5. fmix32(A) mod workers. "A ^= A >> s" is X = A; A >>= s; A ^= X.
  p.label('mix');
  for (const [shift, multiplier] of [[16, 0x85ebca6b], [13, 0xc2b2ae35], [16, 0]]) {
    p.op(MISC | TAX);
    p.op(ALU | RSH | K, shift);
    p.op(ALU | XOR | X);
    if (multiplier) p.op(ALU | MUL | K, multiplier);
  }
  p.op(ALU | MOD | K, workers);
  p.op(RET | RET_A);
  return p.assemble();
}

/** Returns 0 unless the IP header at X has this version. */
function versionIs(p: Assembler, version: 4 | 6): void {
  const ok = p.fresh('version');
  p.op(LD | B | IND, 0);
  p.op(ALU | AND | K, 0xf0);
  p.jump(JEQ, version << 4, ok, null);
  p.op(RET | K, 0);
  p.label(ok);
}

/** M[to] = M[from] ^ M[from+1] ^ M[from+2] ^ M[from+3]. */
function fold(p: Assembler, from: number, to: number): void {
  p.op(LD | MEM, from);
  for (let w = 1; w < 4; w++) {
    p.op(LDX | W | MEM, from + w);
    p.op(ALU | XOR | X);
  }
  p.op(ST, to);
}

/**
 * Jumps to `target` when A is one of `values`. Each chunk of conditional jumps shares one
 * long jump (JA) to the target, placed right after the chunk, within their reach.
 */
function matchV4(p: Assembler, values: number[], target: string): void {
  for (let at = 0; at < values.length; at += V4_CHUNK) {
    const hit = p.fresh('hit');
    const next = p.fresh('next');
    for (const v of values.slice(at, at + V4_CHUNK)) p.jump(JEQ, v, hit, null);
    p.ja(next);
    p.label(hit);
    p.ja(target);
    p.label(next);
  }
}

/** Jumps to `target` when the four words at M[base..base+3] are one of `addresses`. */
function matchV6(p: Assembler, addresses: number[][], base: number, target: string): void {
  for (let at = 0; at < addresses.length; at += V6_CHUNK) {
    const hit = p.fresh('hit');
    const next = p.fresh('next');
    for (const words of addresses.slice(at, at + V6_CHUNK)) {
      const other = p.fresh('other');
      words.forEach((word, w) => {
        p.op(LD | MEM, base + w);
        p.jump(JEQ, word, w === 3 ? hit : null, other);
      });
      p.label(other);
    }
    p.ja(next);
    p.label(hit);
    p.ja(target);
    p.label(next);
  }
}

/** Addresses as the 32-bit big-endian words BPF loads (IPv4: one; IPv6: four), deduplicated. */
function addressLists(list: string[], what: string): { v4: number[]; v6: number[][] } {
  if (!Array.isArray(list)) throw new RangeError(`steering: ${what} must be an array of IP addresses`);
  const v4 = new Map<number, number>();
  const v6 = new Map<string, number[]>();
  for (const text of list) {
    let bytes: Uint8Array;
    try {
      bytes = addressBytes(String(text));
    } catch {
      throw new RangeError(`steering: ${what}: ${JSON.stringify(text)} is not an IP address`);
    }
    const words: number[] = [];
    for (let i = 0; i < bytes.length; i += 4) {
      words.push(((bytes[i] << 24) | (bytes[i + 1] << 16) | (bytes[i + 2] << 8) | bytes[i + 3]) >>> 0);
    }
    if (words.length === 1) v4.set(words[0], words[0]);
    else v6.set(words.join(','), words);
  }
  return { v4: [...v4.values()], v6: [...v6.values()] };
}
