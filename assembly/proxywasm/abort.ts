// The abort handler of the proxy-wasm build (asc --use abort=assembly/proxywasm/abort/
// haportsAbort), in place of the `env.abort` import that proxy-wasm hosts do not give.
// It logs "abort: MESSAGE at FILE:LINE:COL" through proxy_log at critical level
// and traps; Envoy then fails the VM (connections are closed: fail closed). It allocates
// nothing, so it also works when the allocator is what failed.

import { LOG_CRITICAL, proxy_log } from "./imports";

const BUFFER_BYTES: i32 = 512;
const buffer: usize = memory.data(BUFFER_BYTES);
let used: i32 = 0;
let aborting = false;

function put(c: u32): void {
  if (used >= BUFFER_BYTES) return;
  store<u8>(buffer + <usize>used, <u8>(c < 0x80 ? c : 63)); // '?' beyond ASCII
  used++;
}

function putString(s: string | null): void {
  if (s == null) return;
  const p = changetype<usize>(s);
  const n = load<u32>(p - 4) >>> 1; // rtSize: UTF-16 byte length
  for (let i: u32 = 0; i < n; i++) put(<u32>load<u16>(p + (<usize>i << 1)));
}

function putAscii(s: string): void { putString(s); }

function putNumber(n: u32): void {
  let digits = 1;
  for (let x = n; x >= 10; x /= 10) digits++;
  for (let i = digits - 1; i >= 0; i--) {
    let x = n;
    for (let k = 0; k < i; k++) x /= 10;
    put(48 + x % 10);
  }
}

export function haportsAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  if (!aborting) {
    aborting = true;
    used = 0;
    putAscii("abort: ");
    putString(message);
    putAscii(" at ");
    putString(fileName);
    put(58);
    putNumber(line);
    put(58);
    putNumber(column);
    proxy_log(LOG_CRITICAL, buffer, <usize>used);
  }
  unreachable();
}
