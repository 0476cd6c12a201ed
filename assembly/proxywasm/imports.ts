// Part 1 of the proxy-wasm layer (envoy/README.md "How it works"): the host functions of proxy-wasm ABI
// 0.2.1, raw, exactly as the host exports them (module "env"), and the ABI's codes.
// Nothing else lives here: no logic, no allocation. hostcalls.ts wraps these in types.
//
// Every function returns a status (STATUS_*); results come back through pointers into
// our memory. Buffers the host returns (`return_*_data`) were allocated by calling our
// `proxy_on_memory_allocate`; the caller frees them.
//
// Spec: github.com/proxy-wasm/spec, abi-versions/v0.2.1.

// ---- Status (proxy_status_t) ----------------------------------------------------------
export const STATUS_OK: i32 = 0;
export const STATUS_NOT_FOUND: i32 = 1;
export const STATUS_BAD_ARGUMENT: i32 = 2;
export const STATUS_SERIALIZATION_FAILURE: i32 = 3;
export const STATUS_PARSE_FAILURE: i32 = 4;
export const STATUS_INVALID_MEMORY_ACCESS: i32 = 6;
export const STATUS_EMPTY: i32 = 7;
export const STATUS_CAS_MISMATCH: i32 = 8;
export const STATUS_INTERNAL_FAILURE: i32 = 10;
export const STATUS_UNIMPLEMENTED: i32 = 12;

// ---- Log levels (proxy_log_level_t) -----------------------------------------------------
export const LOG_TRACE: i32 = 0;
export const LOG_DEBUG: i32 = 1;
export const LOG_INFO: i32 = 2;
export const LOG_WARN: i32 = 3;
export const LOG_ERROR: i32 = 4;
export const LOG_CRITICAL: i32 = 5;

// ---- Actions (proxy_action_t), returned by stream callbacks -------------------------------
export const ACTION_CONTINUE: i32 = 0;
export const ACTION_PAUSE: i32 = 1;

// ---- Buffers (proxy_buffer_type_t) ---------------------------------------------------------
export const BUFFER_DOWNSTREAM_DATA: i32 = 2;
export const BUFFER_UPSTREAM_DATA: i32 = 3;
export const BUFFER_HTTP_CALL_RESPONSE_BODY: i32 = 4;
export const BUFFER_VM_CONFIGURATION: i32 = 6;
export const BUFFER_PLUGIN_CONFIGURATION: i32 = 7;

// ---- Header maps (proxy_map_type_t) ----------------------------------------------------------
export const MAP_HTTP_CALL_RESPONSE_HEADERS: i32 = 6;

// ---- Streams (proxy_stream_type_t) -------------------------------------------------------------
export const STREAM_DOWNSTREAM: i32 = 2;
export const STREAM_UPSTREAM: i32 = 3;

// ---- Metrics (proxy_metric_type_t) ----------------------------------------------------------------
export const METRIC_COUNTER: i32 = 0;
export const METRIC_GAUGE: i32 = 1;

// ---- Host functions ------------------------------------------------------------------------------

@external("env", "proxy_log")
export declare function proxy_log(level: i32, messageData: usize, messageSize: usize): i32;

@external("env", "proxy_get_current_time_nanoseconds")
export declare function proxy_get_current_time_nanoseconds(returnTime: usize): i32;

@external("env", "proxy_set_tick_period_milliseconds")
export declare function proxy_set_tick_period_milliseconds(periodMs: u32): i32;

@external("env", "proxy_get_buffer_bytes")
export declare function proxy_get_buffer_bytes(
  bufferType: i32, start: usize, maxSize: usize, returnData: usize, returnSize: usize,
): i32;

@external("env", "proxy_get_property")
export declare function proxy_get_property(
  pathData: usize, pathSize: usize, returnData: usize, returnSize: usize,
): i32;

@external("env", "proxy_call_foreign_function")
export declare function proxy_call_foreign_function(
  nameData: usize, nameSize: usize, argumentsData: usize, argumentsSize: usize,
  returnData: usize, returnSize: usize,
): i32;

@external("env", "proxy_close_stream")
export declare function proxy_close_stream(streamType: i32): i32;

@external("env", "proxy_http_call")
export declare function proxy_http_call(
  upstreamData: usize, upstreamSize: usize, headersData: usize, headersSize: usize,
  bodyData: usize, bodySize: usize, trailersData: usize, trailersSize: usize,
  timeoutMs: u32, returnCallId: usize,
): i32;

@external("env", "proxy_get_header_map_value")
export declare function proxy_get_header_map_value(
  mapType: i32, keyData: usize, keySize: usize, returnData: usize, returnSize: usize,
): i32;

@external("env", "proxy_define_metric")
export declare function proxy_define_metric(
  metricType: i32, nameData: usize, nameSize: usize, returnMetricId: usize,
): i32;

@external("env", "proxy_increment_metric")
export declare function proxy_increment_metric(metricId: u32, offset: i64): i32;

@external("env", "proxy_record_metric")
export declare function proxy_record_metric(metricId: u32, value: u64): i32;

@external("env", "proxy_get_shared_data")
export declare function proxy_get_shared_data(
  keyData: usize, keySize: usize, returnValueData: usize, returnValueSize: usize, returnCas: usize,
): i32;

@external("env", "proxy_set_shared_data")
export declare function proxy_set_shared_data(keyData: usize, keySize: usize, valueData: usize, valueSize: usize, cas: u32): i32;

@external("env", "proxy_set_property")
export declare function proxy_set_property(pathData: usize, pathSize: usize, valueData: usize, valueSize: usize): i32;
