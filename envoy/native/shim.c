// haports as an Envoy dynamic module: a proxy-wasm host written over Envoy's
// dynamic-module ABI, so that the very module Envoy runs as a Wasm network filter,
// build/haports-proxywasm.wasm, runs natively instead.
//
// scripts/build-envoy-native.mjs translates that module to C with wasm2c (wabt) and links
// the result with this file into build/envoy-native/libhaports.so. Envoy loads it as the
// network filter envoy.filters.network.dynamic_modules (envoy/native/listeners.yaml). Envoy
// calls our hooks; we call the module's proxy_on_* exports, as Envoy's Wasm runtime would;
// the module calls its proxy_* imports, which we implement with Envoy's callbacks. The
// filter logic (assembly/proxywasm/) is not changed by a line.
//
//   Envoy hook (dynamic_modules_abi.h)       what we call in the module (proxy-wasm ABI 0.2.1)
//   on_program_init                          nothing yet; says the ABI version, "v0.2.0"
//   on_network_filter_config_new             proxy_on_context_create(root, 0), proxy_on_vm_start,
//                                            proxy_on_configure (false: NULL, Envoy rejects the
//                                            configuration), proxy_on_tick once
//   on_network_filter_config_scheduled       proxy_on_tick(root) (see "Ticks")
//   on_network_filter_config_destroy         proxy_on_done(root), proxy_on_delete(root)
//   on_network_filter_new                    nothing: a context id for the connection
//   on_network_filter_new_connection         proxy_on_context_create(ctx, root), proxy_on_new_connection
//   on_network_filter_event (a close)        proxy_on_downstream_connection_close, proxy_on_done,
//                                            proxy_on_delete
//   on_network_filter_read / _write          nothing (Continue): no per-data work
//   on_network_filter_destroy                nothing
//
//   module import                            Envoy callback
//   proxy_get_property                       source.address: get_remote_address; destination.address:
//                                            get_local_address; upstream.address: get_upstream_host_address
//                                            (each as "ip:port", IPv6 "[ip]:port")
//   proxy_call_foreign_function              set_envoy_filter_state: set_filter_state_typed(path, value)
//   proxy_set_property(path, value)          set_filter_state_bytes("wasm." path), the key Envoy's Wasm
//                                            host uses: %FILTER_STATE(wasm.haports:PLAIN)% is the same
//   proxy_close_stream(downstream)           network_filter_close(FlushWrite), once the hook has left
//                                            the core (see "Re-entry")
//   proxy_define_metric, _increment_, _record_  network_filter_config_define_*, _increment_counter,
//                                            _set_gauge, _increment/_decrement_gauge, _record_histogram_value
//   proxy_log                                log ("haports: " before the module's message)
//   proxy_get_buffer_bytes(plugin config)    the configuration bytes config_new received
//   proxy_get_shared_data, _set_shared_data  one map in this process, with Envoy's compare-and-swap rules
//   proxy_set_tick_period_milliseconds       the root's tick: network_filter_config_scheduler_* ("Ticks")
//   proxy_get_current_time_nanoseconds       clock_gettime(CLOCK_REALTIME), as Envoy's wall clock
//   proxy_http_call                          refused (Unimplemented): no HTTP callout here (below)
//   proxy_get_header_map_value               NotFound: there are no HTTP call responses
//
// scripts/build-envoy-native.mjs refuses to build when the module imports a function this
// file does not define, naming it.
//
// One core, one mutex. wasm2c's runtime (wabt 1.0.32) keeps its trap jump buffer and call
// depth counter in process globals, so one instance of the module serves every Envoy
// worker and every call into it holds `lock`. It follows that the process has one flow
// table (the Wasm filter has one per worker VM) and that workers take turns in the core:
// a connection holds the lock twice (open, close) for a few microseconds each, which
// bounds the process near 1 / (2 × that time) connections per second whatever the number
// of workers (envoy/native/README.md measures it).
//
// Traps. Every call into the module runs under wasm_rt_impl_try. Linear memory accesses are
// bounds-checked in the generated code and the call depth is counted
// (WASM_RT_MEMCHECK_SIGNAL_HANDLER=0: no signal handler of ours displaces Envoy's, no 8 GiB
// reservation), so a fault in the core is a trap, never a crash of Envoy. A trap is logged,
// counted (haports_native.core_traps), and the connection at hand is closed; the core is
// then down: every new connection is closed (haports_native.closed_core_down) until Envoy
// creates a filter configuration again (an LDS update, a new listener), which starts a
// fresh instance and applies every configuration in force to it again (each root keeps
// its configuration text for this). Fail closed, as Envoy's Wasm filter is by default.
//
// Re-entry. Envoy runs a connection's close event synchronously inside
// network_filter_close, so a close the module asks for (proxy_close_stream) is carried out
// by the hook after it has left the core and released the lock. A hook that arrives on a
// thread already inside the core (not expected) is refused and logged: never a deadlock.
//
// Memory per connection: nothing. The module pointer Envoy keeps for a connection is not
// a pointer: it carries the connection's root context id (high 32 bits) and its own
// context id (low 32 bits). The module keeps its connection table in its own memory
// (assembly/proxywasm/connections.ts). Allocation happens only for configurations,
// metrics names and shared data values, never per connection.
//
// Context ids: connections take 1 … 2^31 - 1 (an atomic counter that wraps), roots
// 2^31 and up, so the two never meet.
//
// Ticks. In Envoy 1.40 a network filter configuration has no timer, but it has a
// scheduler: commit(event) from any thread, and Envoy's main thread calls
// on_network_filter_config_scheduled(event) while the configuration lives. One thread of
// ours (`ticker`, running while any configuration is in force) sleeps until the earliest
// root is due and commits to that root's scheduler; the hook runs proxy_on_tick on the
// main thread, as Envoy's Wasm host runs a root's tick on its own thread. The module needs
// its ticks: it hands its batched connection counters to Envoy on them, its connection
// path reads the clock of the last tick, it collects garbage every 20 and keeps its probe
// bookkeeping. A root also ticks once as soon as its
// configuration is applied. What has no substitute is the HTTP callout: health probes
// cannot run. proxy_http_call is refused, so the filter counts probe_errors and logs them,
// its targets are "not sent" and do not hold their backends down (the module's rule), and
// we log once per configuration why (README: what would unblock it).
//
// Metrics. Envoy defines metrics per filter configuration (prefix dynamicmodulescustom.),
// only while on_network_filter_config_new runs (later: Frozen), and an id is valid only
// with the configuration it came from, which Envoy destroys when the listener goes. The
// module's metric ids are ours: one per (name, type) for the process, holding the Envoy id
// from every live configuration that defined it (each root defines its metrics in its
// proxy_on_configure). Two configurations' stats of one name are one stat in Envoy, so
// any live id counts to the same value, and the value outlives the configuration that
// defined it first, as long as another defined it too.
//
// Shared data: the module's view of health is shared by its VMs through proxy-wasm
// shared data; here there is one instance, and the map is this process's, with Envoy's
// rules: a set with cas 0, or of a missing key, always succeeds; otherwise the cas must
// be the entry's current one, or CasMismatch; every set gives the entry a new, non-zero cas.

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dynamic_modules_abi.h"
#include "haports.h"  // the module, by wasm2c -n haports
#include "wasm-rt-impl.h"

#define EXPORT __attribute__((visibility("default")))

_Static_assert(sizeof(void*) == 8, "a connection's module pointer carries two 32-bit context ids");

// ---- Limits (override with -D at build time) ---------------------------------------------

/** The filter_name this module answers to (filter_name in the listener's configuration). */
#ifndef HAPORTS_NATIVE_FILTER_NAME
#define HAPORTS_NATIVE_FILTER_NAME "haports"
#endif
/** Largest filter configuration accepted, in bytes (the module's own buffer is smaller). */
#ifndef HAPORTS_NATIVE_MAX_CONFIG_BYTES
#define HAPORTS_NATIVE_MAX_CONFIG_BYTES (64u << 20)
#endif
/** A log line is cut at this many bytes. */
#ifndef HAPORTS_NATIVE_LOG_LINE_BYTES
#define HAPORTS_NATIVE_LOG_LINE_BYTES 2048
#endif
/** Longest property path proxy_set_property takes, in bytes (the key is "wasm." + path). */
#ifndef HAPORTS_NATIVE_MAX_PROPERTY_PATH
#define HAPORTS_NATIVE_MAX_PROPERTY_PATH 250
#endif
/** Distinct metrics (name, type) in the process; more are refused (InternalFailure). */
#ifndef HAPORTS_NATIVE_MAX_METRICS
#define HAPORTS_NATIVE_MAX_METRICS 65536
#endif
/** Distinct shared-data keys in the process; more are refused (InternalFailure). */
#ifndef HAPORTS_NATIVE_MAX_SHARED_KEYS
#define HAPORTS_NATIVE_MAX_SHARED_KEYS 4096
#endif
/** Largest shared-data key and value, in bytes. */
#ifndef HAPORTS_NATIVE_MAX_SHARED_KEY_BYTES
#define HAPORTS_NATIVE_MAX_SHARED_KEY_BYTES 1024
#endif
#ifndef HAPORTS_NATIVE_MAX_SHARED_VALUE_BYTES
#define HAPORTS_NATIVE_MAX_SHARED_VALUE_BYTES (16u << 20)
#endif

// ---- proxy-wasm ABI 0.2.1 codes (the module's own list: assembly/proxywasm/imports.ts) ----

enum {
  STATUS_OK = 0,
  STATUS_NOT_FOUND = 1,
  STATUS_BAD_ARGUMENT = 2,
  STATUS_INVALID_MEMORY_ACCESS = 6,
  STATUS_CAS_MISMATCH = 8,
  STATUS_INTERNAL_FAILURE = 10,
  STATUS_UNIMPLEMENTED = 12,
};
enum { ACTION_CONTINUE = 0 };
enum { BUFFER_PLUGIN_CONFIGURATION = 7 };
enum { STREAM_DOWNSTREAM = 2 };
enum { METRIC_COUNTER = 0, METRIC_GAUGE = 1, METRIC_HISTOGRAM = 2 };
enum { PEER_LOCAL = 1, PEER_REMOTE = 2 };  // proxy_on_downstream_connection_close's peer type

#define CONTEXT_ROOT_FIRST 0x80000000u      // root context ids: 2^31 and up
#define CONTEXT_CONNECTION_MASK 0x7fffffffu // connection context ids: 1 … 2^31 - 1

typedef envoy_dynamic_module_type_module_buffer module_buffer;
typedef envoy_dynamic_module_type_envoy_buffer envoy_buffer;

// ---- State ------------------------------------------------------------------------------
// Everything below is read and written with `lock` held, except next_connection (atomic).

/** The imports' instance argument: the module's imports live in this file, not in an object. */
struct Z_env_instance_t {
  char unused;
};
static struct Z_env_instance_t env;

/** The one instance of the module. */
static Z_haports_instance_t core;
enum { CORE_NONE, CORE_UP, CORE_DOWN };
static int core_state = CORE_NONE;
static int module_initialized;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/** This thread holds `lock` (a hook arriving on it again is refused, see "Re-entry"). */
static __thread int holding;

/** The thread that commits ticks (see "Ticks"), woken when a period changes or it must stop. */
static pthread_t ticker;
static int ticker_running, ticker_stop;
static pthread_cond_t ticker_wake;

/** A filter configuration Envoy holds: one root context of the module. */
typedef struct root {
  struct root* next;           // the roots in force, oldest first
  uint32_t id;                 // its root context id
  void* envoy;                 // Envoy's filter configuration (metrics are defined on it)
  char* config;                // its configuration text, to apply again after a trap
  size_t config_len;
  void* scheduler;             // Envoy's scheduler of this configuration (ticks)
  uint32_t tick_ms;            // proxy_set_tick_period_milliseconds (0: no tick)
  uint64_t next_tick_ns;       // CLOCK_MONOTONIC
  int tick_posted;             // committed to the scheduler, not run yet
  size_t core_traps;           // our two counters, ids of this configuration
  size_t closed_core_down;
  int probes_refused_logged;
} root_t;
static root_t* roots;
static uint32_t next_root = CONTEXT_ROOT_FIRST;
static _Atomic uint32_t next_connection = 1;

/** What the call into the module at hand is about (set by the hook, cleared after). */
static struct {
  root_t* root;          // the root whose callback runs (metrics, tick period, probes)
  void* filter;          // Envoy's filter of the connection whose callback runs, or NULL
  int close_requested;   // proxy_close_stream: close the connection once out of the core
  const char* config;    // the plugin configuration, during proxy_on_configure
  size_t config_len;
} call;

/** A metric's Envoy id in one configuration that defined it. */
typedef struct binding {
  struct binding* next;
  root_t* root;
  size_t envoy_id;
} binding_t;

/** A metric of the module: one per (name, type), with its ids in the live configurations that defined it. */
typedef struct {
  char* name;
  uint32_t name_len;
  uint32_t type;
  binding_t* bindings;  // none: no live configuration has it (increments are dropped)
} metric_t;
static metric_t* metrics;
static uint32_t metric_count, metric_capacity;

/** A shared-data entry. */
typedef struct shared {
  struct shared* next;
  char* key;
  uint32_t key_len;
  uint8_t* value;
  uint32_t len, capacity;
  uint32_t cas;
} shared_t;
static shared_t* shared;
static uint32_t shared_count;
static uint32_t shared_next_cas = 1;

// ---- Small helpers --------------------------------------------------------------------------

static void log_text(envoy_dynamic_module_type_log_level level, const char* text, size_t n) {
  module_buffer m = {text, n};
  envoy_dynamic_module_callback_log(level, m);
}

__attribute__((format(printf, 2, 3))) static void logf_(envoy_dynamic_module_type_log_level level, const char* fmt, ...) {
  char line[HAPORTS_NATIVE_LOG_LINE_BYTES];
  va_list a;
  va_start(a, fmt);
  int n = vsnprintf(line, sizeof line, fmt, a);
  va_end(a);
  if (n < 0) return;
  log_text(level, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static uint64_t clock_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint8_t* memory(void) { return Z_haportsZ_memory(&core)->data; }

/** [at, at + n) lies in the module's memory. */
static inline int in_memory(uint32_t at, uint64_t n) {
  return (uint64_t)at + n <= (uint64_t)Z_haportsZ_memory(&core)->size;
}

static inline void put_u32(uint32_t at, uint32_t v) { memcpy(memory() + at, &v, 4); }

/**
 * Hands bytes to the module: a block from its malloc (which may grow, and move, its
 * memory), the bytes copied in, its address and size written at ret_ptr / ret_size.
 * `bytes` must not point into the module's memory.
 */
static uint32_t give(const void* bytes, size_t n, uint32_t ret_ptr, uint32_t ret_size) {
  if (!in_memory(ret_ptr, 4) || !in_memory(ret_size, 4)) return STATUS_INVALID_MEMORY_ACCESS;
  if (n > UINT32_MAX / 2) return STATUS_BAD_ARGUMENT;
  uint32_t at = Z_haportsZ_malloc(&core, n ? (uint32_t)n : 1);
  if (at == 0 || !in_memory(at, n)) return STATUS_INTERNAL_FAILURE;
  if (n) memcpy(memory() + at, bytes, n);
  put_u32(ret_ptr, at);
  put_u32(ret_size, (uint32_t)n);
  return STATUS_OK;
}

static int is_path(uint32_t p, uint32_t n, const char* path, size_t path_len) {
  return n == path_len && memcmp(memory() + p, path, path_len) == 0;
}

static root_t* find_root(uint32_t id) {
  for (root_t* r = roots; r; r = r->next) if (r->id == id) return r;
  return NULL;
}

/** The newest root in force. */
static root_t* newest_root(void) {
  root_t* found = roots;
  while (found && found->next) found = found->next;
  return found;
}

/** No such counter (Envoy refused to define it). */
#define NO_COUNTER SIZE_MAX

static void count(void* envoy_config, size_t id) {
  if (id != NO_COUNTER) envoy_dynamic_module_callback_network_filter_config_increment_counter(envoy_config, id, 1);
}

static size_t define_counter(void* envoy_config, const char* name) {
  module_buffer n = {name, strlen(name)};
  size_t id = 0;
  if (envoy_dynamic_module_callback_network_filter_config_define_counter(envoy_config, n, &id) !=
      envoy_dynamic_module_type_metrics_result_Success) {
    return NO_COUNTER;
  }
  return id;
}

// ---- Metrics ----------------------------------------------------------------------------------

/** Defines metric m on root r's configuration (once); false if Envoy refuses. */
static int bind_metric(metric_t* m, root_t* r) {
  for (binding_t* b = m->bindings; b; b = b->next) if (b->root == r) return 1;
  module_buffer name = {m->name, m->name_len};
  envoy_dynamic_module_type_metrics_result result;
  size_t id = 0;
  if (m->type == METRIC_COUNTER) result = envoy_dynamic_module_callback_network_filter_config_define_counter(r->envoy, name, &id);
  else if (m->type == METRIC_GAUGE) result = envoy_dynamic_module_callback_network_filter_config_define_gauge(r->envoy, name, &id);
  else result = envoy_dynamic_module_callback_network_filter_config_define_histogram(r->envoy, name, &id);
  if (result != envoy_dynamic_module_type_metrics_result_Success) return 0;  // Frozen: not in config_new
  binding_t* b = malloc(sizeof *b);
  if (!b) return 0;
  *b = (binding_t){m->bindings, r, id};
  m->bindings = b;
  return 1;
}

/** Root r is going: its ids go with it (the metrics live on in the others' ids). */
static void unbind_metrics(root_t* r) {
  for (uint32_t i = 0; i < metric_count; i++) {
    for (binding_t** p = &metrics[i].bindings; *p;) {
      binding_t* b = *p;
      if (b->root == r) {
        *p = b->next;
        free(b);
      } else {
        p = &b->next;
      }
    }
  }
}

/** Metric `id`'s binding to a live configuration; NULL when it has none. */
static binding_t* metric_in_use(uint32_t id, uint32_t* type) {
  if (id >= metric_count) return NULL;
  *type = metrics[id].type;
  return metrics[id].bindings;
}

// ---- The module's imports ------------------------------------------------------------------------
// Signatures as wasm2c declares them in haports.h (i32 → u32, i64 → u64). Every pointer the
// module passes is checked against its memory before use.

u32 Z_envZ_proxy_log(struct Z_env_instance_t* e, u32 level, u32 message, u32 size) {
  (void)e;
  if (!in_memory(message, size)) return STATUS_INVALID_MEMORY_ACCESS;
  static const char prefix[] = "haports: ";
  char line[HAPORTS_NATIVE_LOG_LINE_BYTES];
  size_t n = size < sizeof line - (sizeof prefix - 1) ? size : sizeof line - (sizeof prefix - 1);
  memcpy(line, prefix, sizeof prefix - 1);
  memcpy(line + sizeof prefix - 1, memory() + message, n);
  // proxy-wasm's levels (trace … critical) are Envoy's, in the same order.
  log_text(level > envoy_dynamic_module_type_log_level_Critical ? envoy_dynamic_module_type_log_level_Critical
                                                                 : (envoy_dynamic_module_type_log_level)level,
           line, sizeof prefix - 1 + n);
  return STATUS_OK;
}

u32 Z_envZ_proxy_get_current_time_nanoseconds(struct Z_env_instance_t* e, u32 ret_time) {
  (void)e;
  if (!in_memory(ret_time, 8)) return STATUS_INVALID_MEMORY_ACCESS;
  uint64_t ns = clock_ns(CLOCK_REALTIME);
  memcpy(memory() + ret_time, &ns, 8);
  return STATUS_OK;
}

u32 Z_envZ_proxy_set_tick_period_milliseconds(struct Z_env_instance_t* e, u32 period_ms) {
  (void)e;
  root_t* r = call.root;
  if (!r) return STATUS_NOT_FOUND;
  r->tick_ms = period_ms;
  r->next_tick_ns = clock_ns(CLOCK_MONOTONIC) + (uint64_t)period_ms * 1000000ull;
  pthread_cond_signal(&ticker_wake);  // it may sleep until a later time
  return STATUS_OK;
}

u32 Z_envZ_proxy_get_buffer_bytes(struct Z_env_instance_t* e, u32 type, u32 start, u32 max_size, u32 ret_ptr,
                                  u32 ret_size) {
  (void)e;
  if (type != BUFFER_PLUGIN_CONFIGURATION || !call.config) return STATUS_NOT_FOUND;
  if (start > call.config_len) return STATUS_BAD_ARGUMENT;
  size_t n = call.config_len - start;
  if (n > max_size) n = max_size;
  return give(call.config + start, n, ret_ptr, ret_size);
}

u32 Z_envZ_proxy_get_property(struct Z_env_instance_t* e, u32 path, u32 path_size, u32 ret_ptr, u32 ret_size) {
  (void)e;
  if (!in_memory(path, path_size)) return STATUS_INVALID_MEMORY_ACCESS;
  if (!call.filter) return STATUS_NOT_FOUND;
  envoy_buffer address = {NULL, 0};
  uint32_t port = 0;
  bool ok;
  if (is_path(path, path_size, "source\0address", 14)) {
    ok = envoy_dynamic_module_callback_network_filter_get_remote_address(call.filter, &address, &port);
  } else if (is_path(path, path_size, "destination\0address", 19)) {
    ok = envoy_dynamic_module_callback_network_filter_get_local_address(call.filter, &address, &port);
  } else if (is_path(path, path_size, "upstream\0address", 16)) {
    ok = envoy_dynamic_module_callback_network_filter_get_upstream_host_address(call.filter, &address, &port);
  } else {
    return STATUS_NOT_FOUND;
  }
  if (!ok || !address.ptr || address.length == 0 || address.length > 64) return STATUS_NOT_FOUND;
  char text[96];
  int v6 = memchr(address.ptr, ':', address.length) != NULL;
  int n = snprintf(text, sizeof text, v6 ? "[%.*s]:%u" : "%.*s:%u", (int)address.length, address.ptr, (unsigned)port);
  if (n <= 0 || (size_t)n >= sizeof text) return STATUS_INTERNAL_FAILURE;
  return give(text, (size_t)n, ret_ptr, ret_size);
}

u32 Z_envZ_proxy_set_property(struct Z_env_instance_t* e, u32 path, u32 path_size, u32 value, u32 value_size) {
  (void)e;
  if (!in_memory(path, path_size) || !in_memory(value, value_size)) return STATUS_INVALID_MEMORY_ACCESS;
  if (!call.filter) return STATUS_NOT_FOUND;
  if (path_size == 0 || path_size > HAPORTS_NATIVE_MAX_PROPERTY_PATH) return STATUS_BAD_ARGUMENT;
  char key[5 + HAPORTS_NATIVE_MAX_PROPERTY_PATH];
  memcpy(key, "wasm.", 5);
  memcpy(key + 5, memory() + path, path_size);
  module_buffer k = {key, 5 + (size_t)path_size};
  module_buffer v = {(const char*)memory() + value, value_size};
  return envoy_dynamic_module_callback_network_set_filter_state_bytes(call.filter, k, v) ? STATUS_OK
                                                                                          : STATUS_INTERNAL_FAILURE;
}

/** Reads a protobuf varint from b[*i …n); false when cut short or longer than 64 bits. */
static int read_varint(const uint8_t* b, uint32_t n, uint32_t* i, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && *i < n; shift += 7) {
    uint8_t c = b[(*i)++];
    *v |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) return 1;
  }
  return 0;
}

u32 Z_envZ_proxy_call_foreign_function(struct Z_env_instance_t* e, u32 name, u32 name_size, u32 args, u32 args_size,
                                       u32 ret_ptr, u32 ret_size) {
  (void)e;
  (void)ret_ptr;  // set_envoy_filter_state returns nothing
  (void)ret_size;
  if (!in_memory(name, name_size) || !in_memory(args, args_size)) return STATUS_INVALID_MEMORY_ACCESS;
  if (!is_path(name, name_size, "set_envoy_filter_state", 22)) return STATUS_NOT_FOUND;
  if (!call.filter) return STATUS_NOT_FOUND;
  // SetEnvoyFilterStateArguments { string path = 1; string value = 2; LifeSpan span = 3; }
  const uint8_t* b = memory() + args;
  module_buffer path = {NULL, 0}, value = {"", 0};
  uint32_t i = 0;
  while (i < args_size) {
    uint64_t key, v;
    if (!read_varint(b, args_size, &i, &key)) return STATUS_BAD_ARGUMENT;
    switch (key & 7) {
      case 0:  // varint (span: the lifetime is the callback's own, the connection's)
        if (!read_varint(b, args_size, &i, &v)) return STATUS_BAD_ARGUMENT;
        break;
      case 2:  // length-delimited
        if (!read_varint(b, args_size, &i, &v) || v > args_size - i) return STATUS_BAD_ARGUMENT;
        if (key >> 3 == 1) path = (module_buffer){(const char*)b + i, (size_t)v};
        else if (key >> 3 == 2) value = (module_buffer){(const char*)b + i, (size_t)v};
        i += (uint32_t)v;
        break;
      case 1:  // fixed64
        if (args_size - i < 8) return STATUS_BAD_ARGUMENT;
        i += 8;
        break;
      case 5:  // fixed32
        if (args_size - i < 4) return STATUS_BAD_ARGUMENT;
        i += 4;
        break;
      default:
        return STATUS_BAD_ARGUMENT;
    }
  }
  if (!path.ptr || path.length == 0) return STATUS_BAD_ARGUMENT;
  return envoy_dynamic_module_callback_network_set_filter_state_typed(call.filter, path, value) ? STATUS_OK
                                                                                                 : STATUS_BAD_ARGUMENT;
}

u32 Z_envZ_proxy_close_stream(struct Z_env_instance_t* e, u32 stream) {
  (void)e;
  if (stream != STREAM_DOWNSTREAM) return STATUS_BAD_ARGUMENT;
  if (!call.filter) return STATUS_NOT_FOUND;
  call.close_requested = 1;  // carried out by the hook once out of the core ("Re-entry")
  return STATUS_OK;
}

u32 Z_envZ_proxy_http_call(struct Z_env_instance_t* e, u32 upstream, u32 upstream_size, u32 headers, u32 headers_size,
                           u32 body, u32 body_size, u32 trailers, u32 trailers_size, u32 timeout_ms, u32 ret_call_id) {
  (void)e, (void)headers, (void)headers_size, (void)body, (void)body_size, (void)trailers, (void)trailers_size;
  (void)timeout_ms, (void)ret_call_id;
  root_t* r = call.root;
  if (r && !r->probes_refused_logged) {
    r->probes_refused_logged = 1;
    int n = in_memory(upstream, upstream_size) && upstream_size < 200 ? (int)upstream_size : 0;
    logf_(envoy_dynamic_module_type_log_level_Error,
          "haports: health probes cannot run in the native module: Envoy 1.40 gives a network filter configuration "
          "no HTTP callout, so the probe through cluster \"%.*s\" is refused (and so is every probe: counted in "
          "probe_errors); the backends' health stays as configured (envoy/native/README.md)",
          n, n ? (const char*)memory() + upstream : "");
  }
  return STATUS_UNIMPLEMENTED;
}

u32 Z_envZ_proxy_get_header_map_value(struct Z_env_instance_t* e, u32 map, u32 key, u32 key_size, u32 ret_ptr,
                                      u32 ret_size) {
  (void)e, (void)map, (void)key, (void)key_size, (void)ret_ptr, (void)ret_size;
  return STATUS_NOT_FOUND;  // the only maps the module reads are HTTP call responses: there are none
}

u32 Z_envZ_proxy_define_metric(struct Z_env_instance_t* e, u32 type, u32 name, u32 name_size, u32 ret_id) {
  (void)e;
  if (!in_memory(name, name_size) || !in_memory(ret_id, 4)) return STATUS_INVALID_MEMORY_ACCESS;
  if (type > METRIC_HISTOGRAM || name_size == 0) return STATUS_BAD_ARGUMENT;
  root_t* r = call.root;
  if (!r) return STATUS_NOT_FOUND;
  const char* text = (const char*)memory() + name;
  uint32_t id = 0;
  while (id < metric_count &&
         !(metrics[id].type == type && metrics[id].name_len == name_size && memcmp(metrics[id].name, text, name_size) == 0)) {
    id++;
  }
  if (id == metric_count) {
    if (metric_count == HAPORTS_NATIVE_MAX_METRICS) return STATUS_INTERNAL_FAILURE;
    if (metric_count == metric_capacity) {
      uint32_t capacity = metric_capacity ? metric_capacity * 2 : 64;
      metric_t* grown = realloc(metrics, capacity * sizeof *grown);
      if (!grown) return STATUS_INTERNAL_FAILURE;
      metrics = grown;
      metric_capacity = capacity;
    }
    char* copy = malloc(name_size);
    if (!copy) return STATUS_INTERNAL_FAILURE;
    memcpy(copy, text, name_size);
    metrics[id] = (metric_t){copy, name_size, type, NULL};
    if (!bind_metric(&metrics[id], r)) {
      free(copy);
      return STATUS_INTERNAL_FAILURE;
    }
    metric_count++;
  } else if (!bind_metric(&metrics[id], r) && !metrics[id].bindings) {
    return STATUS_INTERNAL_FAILURE;  // outside config_new (Envoy: Frozen) and nobody else has it
  }
  put_u32(ret_id, id);
  return STATUS_OK;
}

u32 Z_envZ_proxy_increment_metric(struct Z_env_instance_t* e, u32 id, u64 offset) {
  (void)e;
  uint32_t type;
  binding_t* b = metric_in_use(id, &type);
  if (!b) return STATUS_NOT_FOUND;
  int64_t by = (int64_t)offset;
  void* c = b->root->envoy;
  envoy_dynamic_module_type_metrics_result result;
  if (type == METRIC_COUNTER) {
    if (by < 0) return STATUS_BAD_ARGUMENT;
    result = envoy_dynamic_module_callback_network_filter_config_increment_counter(c, b->envoy_id, (uint64_t)by);
  } else if (type == METRIC_GAUGE) {
    result = by >= 0 ? envoy_dynamic_module_callback_network_filter_config_increment_gauge(c, b->envoy_id, (uint64_t)by)
                     : envoy_dynamic_module_callback_network_filter_config_decrement_gauge(c, b->envoy_id,
                                                                                           (uint64_t)0 - (uint64_t)by);
  } else {
    return STATUS_BAD_ARGUMENT;
  }
  return result == envoy_dynamic_module_type_metrics_result_Success ? STATUS_OK : STATUS_NOT_FOUND;
}

u32 Z_envZ_proxy_record_metric(struct Z_env_instance_t* e, u32 id, u64 value) {
  (void)e;
  uint32_t type;
  binding_t* b = metric_in_use(id, &type);
  if (!b) return STATUS_NOT_FOUND;
  void* c = b->root->envoy;
  envoy_dynamic_module_type_metrics_result result;
  if (type == METRIC_GAUGE) result = envoy_dynamic_module_callback_network_filter_config_set_gauge(c, b->envoy_id, value);
  else if (type == METRIC_HISTOGRAM)
    result = envoy_dynamic_module_callback_network_filter_config_record_histogram_value(c, b->envoy_id, value);
  else return STATUS_BAD_ARGUMENT;  // a counter only goes up (proxy_increment_metric)
  return result == envoy_dynamic_module_type_metrics_result_Success ? STATUS_OK : STATUS_NOT_FOUND;
}

static shared_t* find_shared(const char* key, uint32_t key_len) {
  for (shared_t* s = shared; s; s = s->next) {
    if (s->key_len == key_len && memcmp(s->key, key, key_len) == 0) return s;
  }
  return NULL;
}

u32 Z_envZ_proxy_get_shared_data(struct Z_env_instance_t* e, u32 key, u32 key_size, u32 ret_ptr, u32 ret_size,
                                 u32 ret_cas) {
  (void)e;
  if (!in_memory(key, key_size) || !in_memory(ret_cas, 4)) return STATUS_INVALID_MEMORY_ACCESS;
  shared_t* s = find_shared((const char*)memory() + key, key_size);
  if (!s) return STATUS_NOT_FOUND;
  uint32_t status = give(s->value, s->len, ret_ptr, ret_size);
  if (status == STATUS_OK) put_u32(ret_cas, s->cas);
  return status;
}

u32 Z_envZ_proxy_set_shared_data(struct Z_env_instance_t* e, u32 key, u32 key_size, u32 value, u32 value_size,
                                 u32 cas) {
  (void)e;
  if (!in_memory(key, key_size) || !in_memory(value, value_size)) return STATUS_INVALID_MEMORY_ACCESS;
  if (key_size > HAPORTS_NATIVE_MAX_SHARED_KEY_BYTES || value_size > HAPORTS_NATIVE_MAX_SHARED_VALUE_BYTES) {
    return STATUS_BAD_ARGUMENT;
  }
  const char* k = (const char*)memory() + key;
  shared_t* s = find_shared(k, key_size);
  if (s && cas != 0 && cas != s->cas) return STATUS_CAS_MISMATCH;
  if (!s) {
    if (shared_count == HAPORTS_NATIVE_MAX_SHARED_KEYS) return STATUS_INTERNAL_FAILURE;
    s = calloc(1, sizeof *s);
    char* copy = malloc(key_size ? key_size : 1);
    if (!s || !copy) {
      free(s);
      free(copy);
      return STATUS_INTERNAL_FAILURE;
    }
    memcpy(copy, k, key_size);
    s->key = copy;
    s->key_len = key_size;
    s->next = shared;
    shared = s;
    shared_count++;
  }
  if (value_size > s->capacity) {
    uint8_t* grown = realloc(s->value, value_size);
    if (!grown) return STATUS_INTERNAL_FAILURE;
    s->value = grown;
    s->capacity = value_size;
  }
  if (value_size) memcpy(s->value, memory() + value, value_size);
  s->len = value_size;
  s->cas = shared_next_cas++;
  if (shared_next_cas == 0) shared_next_cas = 1;  // 0 means "no cas"
  return STATUS_OK;
}

// ---- Entering the core -------------------------------------------------------------------------

/** Takes the lock, unless this thread holds it already (then refuses: see "Re-entry"). */
static int enter(const char* hook) {
  if (holding) {
    logf_(envoy_dynamic_module_type_log_level_Error,
          "haports: %s arrived while this thread was inside the core: refused (a re-entrant call from Envoy)", hook);
    return 0;
  }
  pthread_mutex_lock(&lock);
  holding = 1;
  return 1;
}

static void leave(void) {
  memset(&call, 0, sizeof call);
  holding = 0;
  pthread_mutex_unlock(&lock);
}

/** A trap in the core: logged and counted; the core is down until the next configuration. */
static void core_trapped(wasm_rt_trap_t trap, const char* where) {
  core_state = CORE_DOWN;
  root_t* r = call.root ? call.root : newest_root();
  if (r) count(r->envoy, r->core_traps);
  logf_(envoy_dynamic_module_type_log_level_Critical,
        "haports: the core trapped (%s) in %s: the core is down and closes every connection (the one at hand too) "
        "until Envoy applies a filter configuration again (an LDS update or a new listener starts it afresh)",
        wasm_rt_strerror(trap), where);
}

/**
 * Runs `body` (calls into the module) with traps caught: on a trap, core_trapped() and
 * then `on_trap`. Locals that `body` assigns and that are read after a trap must be
 * volatile (they live across setjmp).
 */
#define IN_CORE(where, on_trap, body)                                  \
  do {                                                                 \
    wasm_rt_trap_t trap_ = (wasm_rt_trap_t)wasm_rt_impl_try();         \
    if (trap_ == WASM_RT_TRAP_NONE) {                                  \
      body;                                                            \
    } else {                                                           \
      core_trapped(trap_, where);                                      \
      on_trap;                                                         \
    }                                                                  \
  } while (0)

/** Root r's tick (inside IN_CORE), and when the next one is due. */
static void tick(root_t* r) {
  r->next_tick_ns = clock_ns(CLOCK_MONOTONIC) + (uint64_t)r->tick_ms * 1000000ull;
  Z_haportsZ_proxy_on_tick(&core, r->id);
}

/**
 * The ticker: with `lock` held (released while it waits), commits each due root's tick to
 * the root's scheduler, once until the tick has run, then sleeps until the next is due.
 * It never enters the core; Envoy's main thread runs the ticks (config_scheduled).
 */
static void* ticker_main(void* unused) {
  (void)unused;
  pthread_mutex_lock(&lock);
  while (!ticker_stop) {
    uint64_t now = clock_ns(CLOCK_MONOTONIC), next = UINT64_MAX;
    for (root_t* r = roots; r; r = r->next) {
      if (!r->tick_ms || !r->scheduler || r->tick_posted) continue;
      if (now >= r->next_tick_ns) {
        r->tick_posted = 1;
        envoy_dynamic_module_callback_network_filter_config_scheduler_commit(r->scheduler, r->id);
      } else if (r->next_tick_ns < next) {
        next = r->next_tick_ns;
      }
    }
    if (next == UINT64_MAX) {
      pthread_cond_wait(&ticker_wake, &lock);
    } else {
      struct timespec until = {(time_t)(next / 1000000000ull), (long)(next % 1000000000ull)};
      pthread_cond_timedwait(&ticker_wake, &lock, &until);
    }
  }
  pthread_mutex_unlock(&lock);
  return NULL;
}

/** Gives root r's configuration to the core (a new root context); true when applied. */
static int apply_root(root_t* r) {
  volatile int applied = 0;
  call.root = r;
  call.config = r->config;
  call.config_len = r->config_len;
  IN_CORE("proxy_on_configure", applied = 0, {
    Z_haportsZ_proxy_on_context_create(&core, r->id, 0);
    if (Z_haportsZ_proxy_on_vm_start(&core, r->id, 0) &&
        Z_haportsZ_proxy_on_configure(&core, r->id, (u32)r->config_len)) {
      applied = 1;
      if (r->tick_ms) tick(r);  // the first at once: probe bookkeeping before any connection
    }
  });
  call.config = NULL;
  call.config_len = 0;
  return applied;
}

/**
 * The core up: instantiated the first time; after a trap, a fresh instance to which
 * every root in force is applied again (their connections keep their configurations).
 */
static int core_start(void) {
  if (core_state == CORE_UP) return 1;
  int after_trap = core_state == CORE_DOWN;
  if (after_trap) {
    Z_haports_free(&core);
    memset(&core, 0, sizeof core);
  }
  if (!module_initialized) {
    Z_haports_init_module();
    module_initialized = 1;
  }
  volatile int started = 0;
  IN_CORE("instantiation", started = 0, {
    Z_haports_instantiate(&core, &env);
    Z_haportsZ__initialize(&core);
    started = 1;
  });
  if (!started) return 0;
  core_state = CORE_UP;
  if (after_trap) {
    int n = 0, failed = 0;
    for (root_t* r = roots; r && core_state == CORE_UP; r = r->next, n++) {
      if (!apply_root(r)) failed++;
    }
    logf_(envoy_dynamic_module_type_log_level_Warn,
          "haports: the core started afresh after a trap; %d configuration%s in force applied again%s", n,
          n == 1 ? "" : "s", failed ? " (some failed: see above)" : "");
  }
  return core_state == CORE_UP;
}

// ---- Hooks -----------------------------------------------------------------------------------

EXPORT const char* envoy_dynamic_module_on_program_init(void) {
  pthread_condattr_t a;
  if (pthread_condattr_init(&a) != 0 || pthread_condattr_setclock(&a, CLOCK_MONOTONIC) != 0 ||
      pthread_cond_init(&ticker_wake, &a) != 0) {
    return NULL;  // Envoy refuses to load the module (and says so)
  }
  pthread_condattr_destroy(&a);
  wasm_rt_init();
  return HAPORTS_ENVOY_DYNAMIC_MODULES_ABI_VERSION;
}

EXPORT envoy_dynamic_module_type_network_filter_config_module_ptr envoy_dynamic_module_on_network_filter_config_new(
    envoy_dynamic_module_type_network_filter_config_envoy_ptr envoy_config, envoy_buffer name, envoy_buffer config) {
  static const char ours[] = HAPORTS_NATIVE_FILTER_NAME;
  if (name.length != sizeof ours - 1 || memcmp(name.ptr, ours, sizeof ours - 1) != 0) {
    logf_(envoy_dynamic_module_type_log_level_Error,
          "haports: filter_name \"%.*s\" is not a filter of this module: use \"%s\"", (int)(name.length < 200 ? name.length : 200),
          name.ptr ? name.ptr : "", ours);
    return NULL;
  }
  if (config.length > HAPORTS_NATIVE_MAX_CONFIG_BYTES) {
    logf_(envoy_dynamic_module_type_log_level_Error, "haports: invalid configuration: $: larger than %u bytes",
          (unsigned)HAPORTS_NATIVE_MAX_CONFIG_BYTES);
    return NULL;
  }
  root_t* r = calloc(1, sizeof *r);
  char* text = malloc(config.length ? config.length : 1);
  if (!r || !text) {
    free(r);
    free(text);
    logf_(envoy_dynamic_module_type_log_level_Error, "haports: out of memory for a filter configuration");
    return NULL;
  }
  if (config.length) memcpy(text, config.ptr, config.length);
  r->config = text;
  r->config_len = config.length;
  r->envoy = envoy_config;
  r->core_traps = define_counter(envoy_config, "haports_native.core_traps");
  r->closed_core_down = define_counter(envoy_config, "haports_native.closed_core_down");
  r->scheduler = envoy_dynamic_module_callback_network_filter_config_scheduler_new(envoy_config);
  if (!r->scheduler) {
    logf_(envoy_dynamic_module_type_log_level_Error,
          "haports: Envoy gave this filter configuration no scheduler: it will not tick (counters stay unflushed)");
  }

  if (!enter("on_network_filter_config_new")) {
    free(text);
    free(r);
    return NULL;
  }
  r->id = next_root++;
  if (next_root < CONTEXT_ROOT_FIRST) next_root = CONTEXT_ROOT_FIRST;
  int applied = 0;
  if (core_start()) {
    applied = apply_root(r);
    if (!applied && core_state == CORE_UP) {
      IN_CORE("proxy_on_delete", (void)0, Z_haportsZ_proxy_on_delete(&core, r->id));
    }
  }
  if (applied) {
    root_t** tail = &roots;
    while (*tail) tail = &(*tail)->next;
    *tail = r;
    if (!ticker_running) {
      ticker_stop = 0;
      if (pthread_create(&ticker, NULL, ticker_main, NULL) == 0) {
        ticker_running = 1;
      } else {
        logf_(envoy_dynamic_module_type_log_level_Error,
              "haports: could not start the ticker thread: configurations will not tick (counters stay unflushed)");
      }
    }
    pthread_cond_signal(&ticker_wake);
  } else {
    unbind_metrics(r);
  }
  leave();
  if (!applied) {
    if (r->scheduler) envoy_dynamic_module_callback_network_filter_config_scheduler_delete(r->scheduler);
    free(text);
    free(r);
    return NULL;  // Envoy: "Failed to initialize dynamic module network filter config"
  }
  return r;
}

EXPORT void envoy_dynamic_module_on_network_filter_config_scheduled(
    envoy_dynamic_module_type_network_filter_config_module_ptr config_module, uint64_t event_id) {
  (void)event_id;  // the root context id: one event per root
  root_t* r = (root_t*)config_module;
  if (!r || !enter("on_network_filter_config_scheduled")) return;
  r->tick_posted = 0;
  if (core_state == CORE_UP && r->tick_ms) {
    call.root = r;
    IN_CORE("proxy_on_tick", (void)0, tick(r));
  }
  pthread_cond_signal(&ticker_wake);
  leave();
}

EXPORT void envoy_dynamic_module_on_network_filter_config_destroy(
    envoy_dynamic_module_type_network_filter_config_module_ptr config_module) {
  root_t* r = (root_t*)config_module;
  if (!r || !enter("on_network_filter_config_destroy")) return;
  for (root_t** p = &roots; *p; p = &(*p)->next) {
    if (*p == r) {
      *p = r->next;
      break;
    }
  }
  if (core_state == CORE_UP) {
    call.root = r;
    IN_CORE("proxy_on_delete", (void)0, {
      Z_haportsZ_proxy_on_done(&core, r->id);
      Z_haportsZ_proxy_on_delete(&core, r->id);
    });
  }
  unbind_metrics(r);
  if (r->scheduler) envoy_dynamic_module_callback_network_filter_config_scheduler_delete(r->scheduler);
  int stop_ticker = !roots && ticker_running;  // the last configuration: the module may be unloaded next
  if (stop_ticker) {
    ticker_stop = 1;
    ticker_running = 0;
    pthread_cond_signal(&ticker_wake);
  }
  leave();
  if (stop_ticker) pthread_join(ticker, NULL);
  free(r->config);
  free(r);
}

EXPORT envoy_dynamic_module_type_network_filter_module_ptr envoy_dynamic_module_on_network_filter_new(
    envoy_dynamic_module_type_network_filter_config_module_ptr config_module,
    envoy_dynamic_module_type_network_filter_envoy_ptr filter) {
  (void)filter;
  const root_t* r = (const root_t*)config_module;
  uint32_t ctx;
  do ctx = atomic_fetch_add_explicit(&next_connection, 1, memory_order_relaxed) & CONTEXT_CONNECTION_MASK;
  while (ctx == 0);
  return (envoy_dynamic_module_type_network_filter_module_ptr)(((uintptr_t)r->id << 32) | ctx);
}

#define ROOT_OF(handle) ((uint32_t)((uintptr_t)(handle) >> 32))
#define CONTEXT_OF(handle) ((uint32_t)((uintptr_t)(handle) & 0xffffffffu))

EXPORT envoy_dynamic_module_type_on_network_filter_data_status envoy_dynamic_module_on_network_filter_new_connection(
    envoy_dynamic_module_type_network_filter_envoy_ptr filter, envoy_dynamic_module_type_network_filter_module_ptr handle) {
  volatile uint32_t action = ACTION_CONTINUE;
  volatile int must_close = 0;
  if (!enter("on_network_filter_new_connection")) {
    must_close = 1;
  } else {
    root_t* r = find_root(ROOT_OF(handle));
    if (core_state != CORE_UP || !r) {
      must_close = 1;
      if (r) count(r->envoy, r->closed_core_down);
    } else {
      call.root = r;
      call.filter = filter;
      IN_CORE("proxy_on_new_connection", must_close = 1, {
        Z_haportsZ_proxy_on_context_create(&core, CONTEXT_OF(handle), r->id);
        action = Z_haportsZ_proxy_on_new_connection(&core, CONTEXT_OF(handle));
      });
      if (call.close_requested) must_close = 1;
    }
    leave();
  }
  if (must_close) {
    // Out of the core and the lock: Envoy runs the close event (our event hook) right here.
    envoy_dynamic_module_callback_network_filter_close(filter, envoy_dynamic_module_type_network_connection_close_type_FlushWrite);
    return envoy_dynamic_module_type_on_network_filter_data_status_StopIteration;
  }
  return action == ACTION_CONTINUE ? envoy_dynamic_module_type_on_network_filter_data_status_Continue
                                   : envoy_dynamic_module_type_on_network_filter_data_status_StopIteration;
}

EXPORT envoy_dynamic_module_type_on_network_filter_data_status envoy_dynamic_module_on_network_filter_read(
    envoy_dynamic_module_type_network_filter_envoy_ptr filter, envoy_dynamic_module_type_network_filter_module_ptr handle,
    size_t data_length, bool end_stream) {
  (void)filter, (void)handle, (void)data_length, (void)end_stream;
  return envoy_dynamic_module_type_on_network_filter_data_status_Continue;
}

EXPORT envoy_dynamic_module_type_on_network_filter_data_status envoy_dynamic_module_on_network_filter_write(
    envoy_dynamic_module_type_network_filter_envoy_ptr filter, envoy_dynamic_module_type_network_filter_module_ptr handle,
    size_t data_length, bool end_stream) {
  (void)filter, (void)handle, (void)data_length, (void)end_stream;
  return envoy_dynamic_module_type_on_network_filter_data_status_Continue;
}

EXPORT void envoy_dynamic_module_on_network_filter_event(envoy_dynamic_module_type_network_filter_envoy_ptr filter,
                                                         envoy_dynamic_module_type_network_filter_module_ptr handle,
                                                         envoy_dynamic_module_type_network_connection_event event) {
  if (event != envoy_dynamic_module_type_network_connection_event_RemoteClose &&
      event != envoy_dynamic_module_type_network_connection_event_LocalClose) {
    return;
  }
  if (!enter("on_network_filter_event")) return;
  if (core_state == CORE_UP) {
    uint32_t ctx = CONTEXT_OF(handle);
    call.root = find_root(ROOT_OF(handle));
    call.filter = filter;
    // The context ends here rather than at on_network_filter_destroy, which has no filter
    // pointer to read the upstream with: one entry into the core instead of two.
    IN_CORE("proxy_on_downstream_connection_close", (void)0, {
      Z_haportsZ_proxy_on_downstream_connection_close(
          &core, ctx, event == envoy_dynamic_module_type_network_connection_event_RemoteClose ? PEER_REMOTE : PEER_LOCAL);
      Z_haportsZ_proxy_on_done(&core, ctx);
      Z_haportsZ_proxy_on_delete(&core, ctx);
    });
  }
  leave();
}

EXPORT void envoy_dynamic_module_on_network_filter_destroy(envoy_dynamic_module_type_network_filter_module_ptr handle) {
  (void)handle;  // nothing was allocated for the connection; its context ended at its close
}
