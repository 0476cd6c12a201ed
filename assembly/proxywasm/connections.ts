// The forwarded connections of this VM, by stream context id, with their 5-tuple: at
// close the FIN is built from here rather than by reading the connection's properties
// again (each property read is a host call that costs Envoy more than the whole core).
//
// Open addressing, linear probing, backward-shift deletion; raw memory (no garbage).
// The table doubles when half full and never shrinks, so its size follows the peak
// number of open connections of the VM (48 bytes a slot; 1024 slots to start).
//
//   0        4        5   6       8       10        12         16               32               48
//   +--------+--------+---+-------+-------+---------+----------+----------------+----------------+
//   | ctx u32| family | - | sport | dport | backend | root u32 | src (16 bytes) | dst (16 bytes) |
//   +--------+--------+---+-------+-------+---------+----------+----------------+----------------+
//   ctx 0 = empty slot. Addresses in network order (IPv4 in the first 4 bytes).

const SLOT_BYTES: usize = 48;
const INITIAL_SLOTS: u32 = 1024;

let table: usize = 0;
let mask: u32 = 0;
let used: u32 = 0;

/** Endpoints of the last connection recalled. */
export let recalledFamily: i32 = 0;
export let recalledSport: u16 = 0;
export let recalledDport: u16 = 0;
/** The root context (configuration) the last connection recalled was routed by. */
export let recalledRoot: u32 = 0;
/** The backend it was sent to. */
export let recalledBackend: i32 = 0;

@inline function home(ctx: u32): u32 { return (ctx * 0x9e3779b1) & mask; }
@inline function slot(i: u32): usize { return table + <usize>i * SLOT_BYTES; }

function allocate(slots: u32): void {
  table = heap.alloc(<usize>slots * SLOT_BYTES);
  memory.fill(table, 0, <usize>slots * SLOT_BYTES);
  mask = slots - 1;
  used = 0;
}

function grow(): void {
  const old = table;
  const oldSlots = mask + 1;
  allocate(oldSlots << 1);
  for (let i: u32 = 0; i < oldSlots; i++) {
    const s = old + <usize>i * SLOT_BYTES;
    const ctx = load<u32>(s);
    if (ctx == 0) continue;
    let j = home(ctx);
    while (load<u32>(slot(j)) != 0) j = (j + 1) & mask;
    memory.copy(slot(j), s, SLOT_BYTES);
    used++;
  }
  heap.free(old);
}

/** Remembers connection `ctx` (non-zero) of root context `root`, sent to `backend`, with its endpoints. */
export function remember(ctx: u32, root: u32, backend: i32, family: i32, sport: u16, dport: u16, src: usize, dst: usize): void {
  if (table == 0) allocate(INITIAL_SLOTS);
  if ((used + 1) << 1 > mask + 1) grow();
  let i = home(ctx);
  for (;;) {
    const c = load<u32>(slot(i));
    if (c == 0 || c == ctx) break;
    i = (i + 1) & mask;
  }
  const s = slot(i);
  if (load<u32>(s) == 0) used++;
  store<u32>(s, ctx);
  store<u8>(s, <u8>family, 4);
  store<u16>(s, sport, 6);
  store<u16>(s, dport, 8);
  store<u16>(s, <u16>backend, 10);
  store<u32>(s, root, 12);
  memory.copy(s + 16, src, 16);
  memory.copy(s + 32, dst, 16);
}

/** Finds connection `ctx`: -1 when absent, else its slot index. */
function find(ctx: u32): i64 {
  if (table == 0 || ctx == 0) return -1;
  let i = home(ctx);
  for (let n: u32 = 0; n <= mask; n++) {
    const c = load<u32>(slot(i));
    if (c == ctx) return <i64>i;
    if (c == 0) break;
    i = (i + 1) & mask;
  }
  return -1;
}

/** Removes slot `i`, shifting back the entries of its probe run (no tombstones). */
function remove(i: u32): void {
  let hole = i;
  let j = i;
  for (;;) {
    j = (j + 1) & mask;
    const c = load<u32>(slot(j));
    if (c == 0) break;
    const h = home(c);
    // Entry j may fill the hole unless its home lies cyclically in (hole, j].
    const between = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
    if (!between) {
      memory.copy(slot(hole), slot(j), SLOT_BYTES);
      hole = j;
    }
  }
  store<u32>(slot(hole), 0);
  used--;
}

/**
 * Takes connection `ctx` out of the table, writing its endpoints into `src` and `dst`
 * (16 bytes each) and recalledFamily / recalledSport / recalledDport. False when absent.
 */
export function recall(ctx: u32, src: usize, dst: usize): bool {
  const i = find(ctx);
  if (i < 0) return false;
  const s = slot(<u32>i);
  recalledFamily = <i32>load<u8>(s, 4);
  recalledSport = load<u16>(s, 6);
  recalledDport = load<u16>(s, 8);
  recalledRoot = load<u32>(s, 12);
  recalledBackend = <i32>load<u16>(s, 10);
  memory.copy(src, s + 16, 16);
  memory.copy(dst, s + 32, 16);
  remove(<u32>i);
  return true;
}

/** Forgets connection `ctx` if it is there. */
export function forget(ctx: u32): void {
  const i = find(ctx);
  if (i >= 0) remove(<u32>i);
}

/** Connections remembered (for tests and logs). */
export function openConnections(): u32 { return used; }
