// Parse stage: a table of hand-built packets (hex shown with the layers it carries),
// each with the drop reason or the fields the parser must find.
import { hexBytes, hexLength } from "./helpers";
import { Packet, PACKET_BYTES, parsePacket } from "../../assembly/packet";
import {
  LINK_ETHERNET, LINK_RAW_IP, REASON_NONE, REASON_NOT_IP, REASON_TRUNCATED, REASON_BAD_IP_VERSION,
  REASON_BAD_IP_HEADER, REASON_TRUNCATED_L4, REASON_BAD_L4_HEADER, REASON_EXT_HEADER_CHAIN,
  REASON_BAD_ICMP_ERROR, FLAG_FRAGMENT, FLAG_FRAG_3TUPLE, FLAG_ICMP_ERROR, FLAG_IPV6,
} from "../../assembly/consts";

// IPv4 header 20 B: 10.0.0.1 → 10.0.0.100, given protocol and total length.
function v4(proto: string, totalLenHex: string, frag: string = "0000"): string {
  return "4500" + totalLenHex + "1234" + frag + "40" + proto + "0000" + "0a000001" + "0a000064";
}
// IPv6 header 40 B: fd00::1 → fd00::100.
function v6(next: string, payloadLenHex: string): string {
  return "60000000" + payloadLenHex + next + "40" + "fd000000000000000000000000000001" + "fd000000000000000000000000000100";
}
const TCP_SYN = "04d20050" + "00000001" + "00000000" + "5002" + "ffff" + "00000000"; // 1234 → 80, SYN
const UDP = "13880035" + "0008" + "0000"; // 5000 → 53

class Case {
  constructor(
    public desc: string, public hex: string, public link: i32, public reason: u8,
    public proto: u8 = 0, public sport: i32 = -1, public dport: i32 = -1,
    public keySport: i32 = -1, public keyDport: i32 = -1, public flags: u16 = 0,
  ) {}
}

const cases: Case[] = [
  new Case("IPv4 TCP SYN (hand-built)", v4("06", "0028") + TCP_SYN, LINK_RAW_IP, REASON_NONE, 6, 1234, 80, 1234, 80),
  new Case("IPv4 UDP", v4("11", "001c") + UDP, LINK_RAW_IP, REASON_NONE, 17, 5000, 53, 5000, 53),
  new Case("IPv4 with 4 bytes of options (IHL 6)",
    "4600" + "0020" + "12340000" + "4011" + "0000" + "0a000001" + "0a000064" + "01010100" + UDP,
    LINK_RAW_IP, REASON_NONE, 17, 5000, 53, 5000, 53),
  new Case("IPv4 SCTP ports", v4("84", "0020") + "0b5916b2" + "00000000" + "00000000", LINK_RAW_IP, REASON_NONE, 132, 2905, 5810, 2905, 5810),
  new Case("IPv4 GRE: portless", v4("2f", "0018") + "00000800", LINK_RAW_IP, REASON_NONE, 47, -1, -1, 0, 0),
  new Case("ICMP echo request id 0x4242: key ports = id", v4("01", "001c") + "08000000" + "42420001", LINK_RAW_IP, REASON_NONE, 1, -1, -1, 0x4242, 0x4242),
  new Case("ICMP unreachable quoting UDP 10.0.0.100:53 → 10.0.0.1:5000: key reversed",
    v4("01", "0038") + "03030000" + "00000000" + "4500001c12340000" + "40110000" + "0a000064" + "0a000001" + "00351388" + "00080000",
    LINK_RAW_IP, REASON_NONE, 1, -1, -1, 5000, 53, FLAG_ICMP_ERROR),
  new Case("ICMP error with a cut quoted header", v4("01", "0020") + "0b000000" + "00000000" + "45000014", LINK_RAW_IP, REASON_BAD_ICMP_ERROR),
  new Case("first fragment (MF) keeps its ports", v4("11", "001c", "2000") + UDP, LINK_RAW_IP, REASON_NONE, 17, 5000, 53, 5000, 53, FLAG_FRAGMENT),
  new Case("later fragment: no ports, 3-tuple", v4("11", "001c", "0003") + "0102030405060708", LINK_RAW_IP, REASON_NONE, 17, -1, -1, 0, 0, FLAG_FRAGMENT | FLAG_FRAG_3TUPLE),
  new Case("Ethernet + 802.1Q + IPv4 UDP", "020000000001020000000002" + "8100" + "0064" + "0800" + v4("11", "001c") + UDP, LINK_ETHERNET, REASON_NONE, 17, 5000, 53, 5000, 53),
  new Case("Ethernet ARP: not IP", "ffffffffffff020000000002" + "0806" + "0001080006040001", LINK_ETHERNET, REASON_NOT_IP),
  new Case("Ethernet header cut", "ffffffffffff0200", LINK_ETHERNET, REASON_TRUNCATED),
  new Case("IPv4 header cut at 12 bytes", "450000281234000040060000", LINK_RAW_IP, REASON_TRUNCATED),
  new Case("total length beyond the capture", v4("06", "0100") + TCP_SYN, LINK_RAW_IP, REASON_TRUNCATED),
  new Case("version 5", "55" + v4("06", "0028").substr(2) + TCP_SYN, LINK_RAW_IP, REASON_BAD_IP_VERSION),
  new Case("IHL 4", "44" + v4("06", "0028").substr(2) + TCP_SYN, LINK_RAW_IP, REASON_BAD_IP_HEADER),
  new Case("total length < header length", v4("06", "0010") + TCP_SYN, LINK_RAW_IP, REASON_BAD_IP_HEADER),
  new Case("TCP header cut at 10 bytes", v4("06", "001e") + TCP_SYN.substr(0, 20), LINK_RAW_IP, REASON_TRUNCATED_L4),
  new Case("TCP data offset 4", v4("06", "0028") + "04d20050000000010000000040020000" + "00000000", LINK_RAW_IP, REASON_BAD_L4_HEADER),
  new Case("TCP data offset past the packet", v4("06", "0028") + "04d200500000000100000000f0020000" + "00000000", LINK_RAW_IP, REASON_TRUNCATED_L4),
  new Case("UDP cut at 6 bytes", v4("11", "001a") + "138800350008", LINK_RAW_IP, REASON_TRUNCATED_L4),
  new Case("IPv6 UDP", v6("11", "0008") + UDP, LINK_RAW_IP, REASON_NONE, 17, 5000, 53, 5000, 53, FLAG_IPV6),
  new Case("IPv6 hop-by-hop + destination options + TCP",
    v6("00", "0024") + "3c00010400000000" + "0600010400000000" + TCP_SYN, LINK_RAW_IP, REASON_NONE, 6, 1234, 80, 1234, 80, FLAG_IPV6),
  new Case("IPv6 routing header (type 4, one segment) + UDP",
    v6("2b", "0020") + "1102040100000000" + "fd000000000000000000000000000200" + UDP, LINK_RAW_IP, REASON_NONE, 17, 5000, 53, 5000, 53, FLAG_IPV6),
  new Case("IPv6 first fragment + UDP", v6("2c", "0010") + "1100000100001234" + UDP, LINK_RAW_IP, REASON_NONE, 17, 5000, 53, 5000, 53, FLAG_IPV6 | FLAG_FRAGMENT),
  new Case("IPv6 later fragment: 3-tuple", v6("2c", "0010") + "1100005000001234" + "0102030405060708", LINK_RAW_IP, REASON_NONE, 17, -1, -1, 0, 0, FLAG_IPV6 | FLAG_FRAGMENT | FLAG_FRAG_3TUPLE),
  new Case("IPv6 extension header past the payload", v6("00", "0008") + "1101000000000000", LINK_RAW_IP, REASON_EXT_HEADER_CHAIN),
  new Case("IPv6 nine destination-options headers", v6("3c", "0048")
    + "3c00000000000000".repeat(8) + "1100000000000000", LINK_RAW_IP, REASON_EXT_HEADER_CHAIN),
  new Case("ICMPv6 echo id 0x0707", v6("3a", "0008") + "80000000" + "07070001", LINK_RAW_IP, REASON_NONE, 58, -1, -1, 0x0707, 0x0707, FLAG_IPV6),
  new Case("ICMPv6 packet too big quoting TCP fd00::100:80 → fd00::1:1234",
    v6("3a", "0038") + "02000000" + "00000500" + "6000000000140640" + "fd000000000000000000000000000100" + "fd000000000000000000000000000001" + "005004d2" + "00000001",
    LINK_RAW_IP, REASON_NONE, 58, -1, -1, 1234, 80, FLAG_IPV6 | FLAG_ICMP_ERROR),
  new Case("IPv6 payload length beyond the capture", v6("11", "0100") + UDP, LINK_RAW_IP, REASON_TRUNCATED),
  new Case("empty packet", "", LINK_RAW_IP, REASON_TRUNCATED),
];

/** A Packet record to parse into. */
const pk = changetype<Packet>(heap.alloc(<usize>PACKET_BYTES));

describe("parsePacket", () => {
  it("parses every case of the table (" + cases.length.toString() + " packets)", () => {
    for (let i = 0; i < cases.length; i++) {
      const c = cases[i];
      const p = hexBytes(c.hex);
      const reason = parsePacket(pk, p, hexLength(c.hex), c.link);
      expect(reason).toBe(c.reason, c.desc + ": reason");
      if (c.reason == REASON_NONE) {
        expect(pk.proto).toBe(c.proto, c.desc + ": proto");
        expect(pk.hasPorts).toBe(c.sport >= 0, c.desc + ": hasPorts");
        if (c.sport >= 0) {
          expect(<i32>pk.sport).toBe(c.sport, c.desc + ": sport");
          expect(<i32>pk.dport).toBe(c.dport, c.desc + ": dport");
        }
        expect(<i32>pk.keySport).toBe(c.keySport, c.desc + ": key sport");
        expect(<i32>pk.keyDport).toBe(c.keyDport, c.desc + ": key dport");
        expect(pk.flags).toBe(c.flags, c.desc + ": flags");
      }
      heap.free(p);
    }
  });

  it("reads the TCP flags and the L3 offset behind Ethernet", () => {
    const hex = "020000000001020000000002" + "0800" + v4("06", "0028") + TCP_SYN;
    const p = hexBytes(hex);
    expect(parsePacket(pk, p, hexLength(hex), LINK_ETHERNET)).toBe(REASON_NONE);
    expect(pk.l3).toBe(14);
    expect(pk.tcpFlags).toBe(0x02);
    expect(pk.family).toBe(<u8>4);
    expect(pk.keyProto).toBe(<u8>6);
    heap.free(p);
  });

  it("an ICMP error's key addresses are the quoted ones, reversed", () => {
    const hex = v4("01", "0038") + "03030000" + "00000000" + "4500001c12340000" + "40110000" + "0a000064" + "0a000001" + "00351388" + "00080000";
    const p = hexBytes(hex);
    expect(parsePacket(pk, p, hexLength(hex), LINK_RAW_IP)).toBe(REASON_NONE);
    expect(bswap<u32>(load<u32>(pk.keySrc))).toBe(0x0a000001); // quoted dst
    expect(bswap<u32>(load<u32>(pk.keyDst))).toBe(0x0a000064); // quoted src
    heap.free(p);
  });

  it("never reads past the end: every prefix of every valid case parses or drops", () => {
    for (let i = 0; i < cases.length; i++) {
      const hex = cases[i].hex;
      const n = hexLength(hex);
      const p = hexBytes(hex);
      for (let len = 0; len < n; len++) {
        // Copy the prefix to the end of a fresh block so a read past it would hit
        // whatever follows; the parser must decide on the prefix alone.
        const q = heap.alloc(<usize>max<i32>(len, 1));
        memory.copy(q, p, <usize>len);
        const r = parsePacket(pk, q, len, cases[i].link);
        expect(r <= REASON_BAD_ICMP_ERROR).toBe(true);
        heap.free(q);
      }
      heap.free(p);
    }
  });
});
