// Thin typed wrappers over the raw host functions of imports.ts (the proxy-wasm Rust
// SDK's hostcalls.rs plays this role). Results the host hands back are left in
// `resultData` / `resultSize`; the caller frees `resultData` with `freeResult()`.
// Nothing here allocates managed memory except log(), which encodes its message.

import {
  METRIC_COUNTER, proxy_call_foreign_function, proxy_close_stream, proxy_define_metric,
  proxy_get_buffer_bytes, proxy_get_current_time_nanoseconds, proxy_get_header_map_value,
  proxy_get_property, proxy_http_call, proxy_increment_metric, proxy_log, proxy_record_metric,
  proxy_get_shared_data, proxy_set_property, proxy_set_shared_data, proxy_set_tick_period_milliseconds, STATUS_OK,
  STREAM_DOWNSTREAM,
} from "./imports";

/** Return slots the host writes through: [0] data pointer, [4] size, [8] u64 (time, ids). */
const slots: usize = heap.alloc(16);

/** The data and size of the last successful read (property, buffer, header, call result). */
export let resultData: usize = 0;
export let resultSize: i32 = 0;

/** Frees the host-allocated result of the last read, if any. */
export function freeResult(): void {
  if (resultData != 0) heap.free(resultData);
  resultData = 0;
  resultSize = 0;
}

function takeResult(status: i32): bool {
  if (status != STATUS_OK) {
    resultData = 0;
    resultSize = 0;
    return false;
  }
  resultData = load<usize>(slots);
  resultSize = load<i32>(slots, 4);
  return true;
}

// ---- Logging -----------------------------------------------------------------------------

export function log(level: i32, message: string): void {
  const bytes = String.UTF8.encode(message);
  proxy_log(level, changetype<usize>(bytes), <usize>bytes.byteLength);
}

// ---- Time and timers ---------------------------------------------------------------------

/** The host's clock in milliseconds (Envoy: wall clock), or -1 when unavailable. */
export function currentTimeMs(): f64 {
  if (proxy_get_current_time_nanoseconds(slots + 8) != STATUS_OK) return -1;
  return <f64>(load<u64>(slots, 8) / 1000) / 1000.0;
}

export function setTickPeriod(ms: u32): bool {
  return proxy_set_tick_period_milliseconds(ms) == STATUS_OK;
}

// ---- Buffers, properties, headers -------------------------------------------------------------

/** Reads `size` bytes of buffer `type` (e.g. the plugin configuration) into resultData. */
export function getBuffer(type: i32, size: i32): bool {
  return takeResult(proxy_get_buffer_bytes(type, 0, <usize>size, slots, slots + 4));
}

/** Reads the property at the path bytes [path, path + pathSize) (segments joined by \0). */
export function getProperty(path: usize, pathSize: i32): bool {
  return takeResult(proxy_get_property(path, <usize>pathSize, slots, slots + 4));
}

/** Reads header `key` of map `mapType` into resultData. */
export function getHeader(mapType: i32, key: usize, keySize: i32): bool {
  return takeResult(proxy_get_header_map_value(mapType, key, <usize>keySize, slots, slots + 4));
}

// ---- Foreign functions, streams, HTTP calls ---------------------------------------------------

/** Calls foreign function `name` with the argument bytes; any result is freed. Returns the status. */
export function callForeign(name: usize, nameSize: i32, args: usize, argsSize: i32): i32 {
  store<usize>(slots, 0);
  store<i32>(slots, 0, 4);
  const status = proxy_call_foreign_function(name, <usize>nameSize, args, <usize>argsSize, slots, slots + 4);
  const data = load<usize>(slots);
  if (data != 0) heap.free(data);
  return status;
}

/** Closes the downstream connection of the current stream context. */
export function closeDownstream(): i32 {
  return proxy_close_stream(STREAM_DOWNSTREAM);
}

/** Dispatches an HTTP call; returns the call id (token), or -1 with `lastStatus` set. */
export let lastStatus: i32 = 0;
export function httpCall(
  upstream: usize, upstreamSize: i32, headers: usize, headersSize: i32, timeoutMs: u32,
): i64 {
  lastStatus = proxy_http_call(upstream, <usize>upstreamSize, headers, <usize>headersSize, 0, 0, 0, 0, timeoutMs, slots + 8);
  if (lastStatus != STATUS_OK) return -1;
  return <i64>load<u32>(slots, 8);
}

// ---- Metrics --------------------------------------------------------------------------------

/** Defines (or finds) metric `name`; returns its id, or -1. */
export function defineMetric(type: i32, name: string): i64 {
  const bytes = String.UTF8.encode(name);
  if (proxy_define_metric(type, changetype<usize>(bytes), <usize>bytes.byteLength, slots + 8) != STATUS_OK) return -1;
  return <i64>load<u32>(slots, 8);
}

export function defineCounter(name: string): i64 { return defineMetric(METRIC_COUNTER, name); }

export function incrementMetric(id: i64, by: i64 = 1): void {
  if (id >= 0) proxy_increment_metric(<u32>id, by);
}

export function recordMetric(id: i64, value: u64): void {
  if (id >= 0) proxy_record_metric(<u32>id, value);
}

// ---- Properties set ------------------------------------------------------------------------------

/** Sets a property of the current context (Envoy: filter state "wasm.<path>"); the status. */
export function setProperty(path: usize, pathSize: i32, value: usize, valueSize: i32): i32 {
  return proxy_set_property(path, <usize>pathSize, value, <usize>valueSize);
}

// ---- Shared data (one store for every VM of the vm_id in the process) ----------------------------

/** The compare-and-swap token of the last getSharedData. */
export let sharedCas: u32 = 0;

/** Reads shared value `key` into resultData / resultSize (and sharedCas); the status. */
export function getSharedData(key: usize, keySize: i32): i32 {
  const status = proxy_get_shared_data(key, <usize>keySize, slots, slots + 4, slots + 8);
  sharedCas = status == STATUS_OK ? load<u32>(slots, 8) : 0;
  takeResult(status);
  return status;
}

/** Sets shared value `key` if its token is still `cas` (0: whatever it is); the status (CAS_MISMATCH when not). */
export function setSharedData(key: usize, keySize: i32, value: usize, valueSize: i32, cas: u32): i32 {
  return proxy_set_shared_data(key, <usize>keySize, value, <usize>valueSize, cas);
}
