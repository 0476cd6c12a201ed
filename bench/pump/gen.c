// Load generator of the pump benchmark: sends VXLAN or GENEVE datagrams carrying
// Ethernet/IPv4/TCP packets of `--flows` distinct flows, as fast as it can (sendmmsg,
// 64 datagrams a call) or at `--rate` datagrams per second, for `--seconds`.
// Prints {"sent": N, "seconds": S} on exit.
//
//   gen --dst 10.212.0.1 --port 4789 --proto vxlan|geneve --flows 16384 --inner 64
//       [--rate PPS] --seconds 3
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

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

int main(int argc, char **argv) {
  const char *dst = "127.0.0.1", *proto = "vxlan";
  int port = 4789, flows = 16384, inner = 64;
  double seconds = 3, rate = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--dst")) dst = argv[i + 1];
    else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--proto")) proto = argv[i + 1];
    else if (!strcmp(argv[i], "--flows")) flows = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--inner")) inner = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--rate")) rate = atof(argv[i + 1]);
    else { fprintf(stderr, "gen: unknown option %s\n", argv[i]); return 2; }
  }
  if (inner < 54) inner = 54; // Ethernet + IPv4 + TCP headers
  int geneve = !strcmp(proto, "geneve");
  int hdr = geneve ? 16 : 8; // GENEVE: 8 + one 8-byte option
  int len = hdr + inner;

  // One datagram per flow: tunnel header, Ethernet, IPv4 (src varies), TCP (ports vary).
  uint8_t *pkts = calloc((size_t)flows, (size_t)len);
  for (int f = 0; f < flows; f++) {
    uint8_t *d = pkts + (size_t)f * len;
    if (geneve) {
      uint8_t g[16] = {2, 0, 0x65, 0x58, 0, 0x07, 0xd2, 0, 0x01, 0x05, 0x01, 1, 0, 0, 0, 42};
      memcpy(d, g, 16);
    } else {
      uint8_t v[8] = {0x08, 0, 0, 0, 0, 0x03, 0xe9, 0};
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
    uint16_t sport = 1024 + (f % 60000), dport = 443;
    tcp[0] = sport >> 8; tcp[1] = sport & 0xff; tcp[2] = dport >> 8; tcp[3] = dport & 0xff;
    tcp[12] = 0x50; tcp[13] = 0x10; // ACK: an established flow
    tcp[14] = 0xff; tcp[15] = 0xff;
  }

  int s = socket(AF_INET, SOCK_DGRAM, 0);
  int sndbuf = 4 << 20;
  setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, dst, &to.sin_addr);
  if (connect(s, (struct sockaddr *)&to, sizeof to) < 0) { perror("connect"); return 1; }

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
      if (due <= 0) { usleep(50); continue; }
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
      if (errno == EAGAIN || errno == ENOBUFS || errno == ECONNREFUSED) continue;
      perror("sendmmsg");
      return 1;
    }
    sent += r;
  }
  printf("{\"sent\": %lld, \"seconds\": %.6f}\n", sent, now() - t0);
  return 0;
}
