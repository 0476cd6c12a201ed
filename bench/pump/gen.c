// Load generator of the pump benchmark (bench/pump/run.mjs). It writes whole Ethernet
// frames to a network interface through an AF_PACKET socket (PACKET_QDISC_BYPASS,
// sendmmsg of 64 frames a call), so it needs no UDP socket, route or neighbour of its
// own and spends its CPU only on handing frames to the device: far faster than a UDP
// sender, so it can overload the forwarder it tests.
//
// Each frame is Ethernet / IPv4 / UDP / VXLAN (or GENEVE with one 8-byte option) around
// an inner Ethernet / IPv4 / TCP frame of one of `--flows` established TCP flows (inner
// source address and port vary; inner frame `--inner` bytes). As a real VTEP does, the
// outer UDP source port is taken from the inner flow (49152 + flow mod 16384), so the
// receiver's RSS/RPS spreads the flows; the outer UDP checksum is 0 (allowed over
// IPv4). The outer destination is `--dst`, or with a list, flow f goes to address
// f mod n (used to send straight to the appliances, for the kernel's routing baseline).
//
//   gen --ifname g0 --dst-mac MAC --src 10.212.0.2 --dst 10.212.0.1[,ADDR...]
//       --port 4789 --proto vxlan|geneve --flows 16384 --inner 64
//       [--rate PPS] --seconds 3
//
// Sends as fast as it can, or `--rate` frames per second. Prints
// {"sent": N, "seconds": S} on exit (frames the device took).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAX_DST 16

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static uint16_t csum(const uint8_t *p, int n) {
  uint32_t s = 0;
  for (int i = 0; i + 1 < n; i += 2) s += (p[i] << 8) | p[i + 1];
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)~s;
}

static int parse_mac(const char *s, uint8_t *mac) {
  unsigned m[6];
  if (sscanf(s, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6) return -1;
  for (int i = 0; i < 6; i++) mac[i] = (uint8_t)m[i];
  return 0;
}

int main(int argc, char **argv) {
  const char *ifname = NULL, *dstMac = NULL, *src = "10.212.0.2", *dst = "10.212.0.1", *proto = "vxlan";
  int port = 4789, flows = 16384, inner = 64;
  double seconds = 3, rate = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--ifname")) ifname = argv[i + 1];
    else if (!strcmp(argv[i], "--dst-mac")) dstMac = argv[i + 1];
    else if (!strcmp(argv[i], "--src")) src = argv[i + 1];
    else if (!strcmp(argv[i], "--dst")) dst = argv[i + 1];
    else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--proto")) proto = argv[i + 1];
    else if (!strcmp(argv[i], "--flows")) flows = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--inner")) inner = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--rate")) rate = atof(argv[i + 1]);
    else { fprintf(stderr, "gen: unknown option %s\n", argv[i]); return 2; }
  }
  if (!ifname || !dstMac) { fprintf(stderr, "gen: --ifname and --dst-mac are required\n"); return 2; }
  if (flows < 1) flows = 1;
  if (inner < 54) inner = 54; // Ethernet + IPv4 + TCP headers
  int geneve = !strcmp(proto, "geneve");
  int hdr = geneve ? 16 : 8; // GENEVE: 8 + one 8-byte option
  int udpLen = 8 + hdr + inner;
  int len = 14 + 20 + udpLen;

  uint8_t dmac[6], smac[6];
  if (parse_mac(dstMac, dmac) < 0) { fprintf(stderr, "gen: bad --dst-mac %s\n", dstMac); return 2; }
  struct in_addr srcAddr, dstAddr[MAX_DST];
  int ndst = 0;
  if (inet_pton(AF_INET, src, &srcAddr) != 1) { fprintf(stderr, "gen: bad --src %s\n", src); return 2; }
  {
    char *list = strdup(dst), *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t && ndst < MAX_DST; t = strtok_r(NULL, ",", &save)) {
      if (inet_pton(AF_INET, t, &dstAddr[ndst]) != 1) { fprintf(stderr, "gen: bad --dst %s\n", t); return 2; }
      ndst++;
    }
    free(list);
    if (ndst == 0) { fprintf(stderr, "gen: --dst is empty\n"); return 2; }
  }

  int s = socket(AF_PACKET, SOCK_RAW, 0); // protocol 0: send only, never receives
  if (s < 0) { perror("socket(AF_PACKET)"); return 1; }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
  if (ioctl(s, SIOCGIFINDEX, &ifr) < 0) { perror("SIOCGIFINDEX"); return 1; }
  int ifindex = ifr.ifr_ifindex;
  if (ioctl(s, SIOCGIFHWADDR, &ifr) < 0) { perror("SIOCGIFHWADDR"); return 1; }
  memcpy(smac, ifr.ifr_hwaddr.sa_data, 6);
  int one = 1;
  setsockopt(s, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
  int sndbuf = 4 << 20;
  setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP), .sll_ifindex = ifindex, .sll_halen = 6};
  memcpy(to.sll_addr, dmac, 6);
  if (bind(s, (struct sockaddr *)&to, sizeof to) < 0) { perror("bind"); return 1; }

  // One frame per flow.
  uint8_t *pkts = calloc((size_t)flows, (size_t)len);
  for (int f = 0; f < flows; f++) {
    uint8_t *o = pkts + (size_t)f * len;
    memcpy(o, dmac, 6);
    memcpy(o + 6, smac, 6);
    o[12] = 0x08; o[13] = 0x00;
    uint8_t *oip = o + 14;
    int oipLen = 20 + udpLen;
    oip[0] = 0x45; oip[2] = oipLen >> 8; oip[3] = oipLen & 0xff; oip[6] = 0x40; /* DF */ oip[8] = 64; oip[9] = 17;
    memcpy(oip + 12, &srcAddr, 4);
    memcpy(oip + 16, &dstAddr[f % ndst], 4);
    uint16_t oc = csum(oip, 20);
    oip[10] = oc >> 8; oip[11] = oc & 0xff;
    uint8_t *udp = oip + 20;
    uint16_t sport = 49152 + (f & 0x3fff);
    udp[0] = sport >> 8; udp[1] = sport & 0xff; udp[2] = port >> 8; udp[3] = port & 0xff;
    udp[4] = udpLen >> 8; udp[5] = udpLen & 0xff; // checksum 0: none
    uint8_t *d = udp + 8;
    if (geneve) {
      uint8_t g[16] = {2, 0, 0x65, 0x58, 0, 0x07, 0xd2, 0, 0x01, 0x05, 0x01, 1, 0, 0, 0, 42};
      memcpy(d, g, 16);
    } else {
      uint8_t v[8] = {0x08, 0, 0, 0, 0, 0x03, 0xe9, 0}; // VNI 1001
      memcpy(d, v, 8);
    }
    uint8_t *e = d + hdr;
    uint8_t mac[12] = {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1};
    memcpy(e, mac, 12);
    e[12] = 0x08; e[13] = 0x00;
    uint8_t *ip = e + 14;
    int iplen = inner - 14;
    ip[0] = 0x45; ip[2] = iplen >> 8; ip[3] = iplen & 0xff; ip[8] = 64; ip[9] = 6;
    ip[12] = 172; ip[13] = 16; ip[14] = (f >> 8) & 0xff; ip[15] = f & 0xff;
    ip[16] = 172; ip[17] = 31; ip[18] = 0; ip[19] = 1;
    uint16_t c = csum(ip, 20);
    ip[10] = c >> 8; ip[11] = c & 0xff;
    uint8_t *tcp = ip + 20;
    uint16_t tsport = 1024 + (f % 60000), tdport = 443;
    tcp[0] = tsport >> 8; tcp[1] = tsport & 0xff; tcp[2] = tdport >> 8; tcp[3] = tdport & 0xff;
    tcp[12] = 0x50; tcp[13] = 0x10; // ACK: an established flow
    tcp[14] = 0xff; tcp[15] = 0xff;
  }

  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  memset(msgs, 0, sizeof msgs);
  long long sent = 0;
  int next = 0;
  double t0 = now(), end = t0 + seconds;
  while (1) {
    double t = now();
    if (t >= end) break;
    int n = BATCH;
    if (rate > 0) {
      long long due = (long long)((t - t0) * rate) - sent;
      if (due <= 0) { usleep(20); continue; }
      if (due < n) n = (int)due;
    }
    for (int i = 0; i < n; i++) {
      iov[i].iov_base = pkts + (size_t)next * len;
      iov[i].iov_len = len;
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      if (++next == flows) next = 0;
    }
    int r = sendmmsg(s, msgs, n, 0);
    if (r < 0) {
      if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR) continue;
      perror("sendmmsg");
      return 1;
    }
    sent += r;
  }
  printf("{\"sent\": %lld, \"seconds\": %.6f}\n", sent, now() - t0);
  return 0;
}
