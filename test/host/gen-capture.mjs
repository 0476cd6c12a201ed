// Writes a classic pcap of MB megabytes to standard output, made as it goes (for the
// streaming replay test): raw IPv4 TCP packets of many flows to 10.0.0.100, 1 ms apart.
//   node test/host/gen-capture.mjs MB
const mb = Number(process.argv[2] ?? 100);
const header = Buffer.alloc(24);
header.writeUInt32LE(0xa1b2c3d4, 0); header.writeUInt16LE(2, 4); header.writeUInt16LE(4, 6); header.writeUInt32LE(65535, 16); header.writeUInt32LE(101, 20);
process.stdout.write(header);
const rec = 16 + 100;
const perChunk = 8192;
const total = Math.floor((mb * 1e6) / rec);
let i = 0;
function more() {
  while (i < total) {
    const n = Math.min(perChunk, total - i);
    const b = Buffer.alloc(n * rec);
    for (let k = 0; k < n; k++, i++) {
      const o = k * rec;
      b.writeUInt32LE(1700000000 + Math.floor(i / 1000), o); b.writeUInt32LE((i % 1000) * 1000, o + 4);
      b.writeUInt32LE(100, o + 8); b.writeUInt32LE(100, o + 12);
      const p = o + 16;
      b[p] = 0x45; b[p + 3] = 100; b[p + 8] = 64; b[p + 9] = 6;
      b.writeUInt32BE(0xc0000000 + (i % 65536) * 7, p + 12); b.writeUInt32BE(0x0a000064, p + 16); // → 10.0.0.100
      b.writeUInt16BE(1024 + (i % 50000), p + 20); b.writeUInt16BE(443, p + 22); b[p + 32] = 0x50; b[p + 33] = 0x10;
    }
    if (!process.stdout.write(b)) { process.stdout.once('drain', more); return; }
  }
}
more();
