// Part 2 of the proxy-wasm layer (envoy/README.md "How it works"): the module's exports for proxy-wasm ABI
// 0.2.1 (build/haports-proxywasm.wasm, `npm run build:proxywasm`). Each `proxy_on_*`
// callback looks the context id up and dispatches to the filter logic (filter.ts); the
// raw host functions are in imports.ts. Only callbacks the filter needs are exported:
// Envoy skips the others (no call per data chunk).
//
// Contexts: a root (plugin) context per filter configuration on each worker's VM, and a
// stream context per connection whose parent is a root. Each root keeps its own
// configuration (filter.ts); the core is one per VM and holds one configuration at a
// time, so a connection of another root switches the core to that root's configuration
// first. The current root's tick runs the probes; if it goes away, the next root to tick
// takes over. Envoy calls proxy_on_context_create and then proxy_on_new_connection for a
// connection, one after the other (Context::onNewConnection): the parent recorded by the
// first is the root of the second.

import {
  closeDownstream,
} from "./hostcalls";
import {
  configure, connectionClosed, connectionDeleted, httpCallResponse, newConnection, rootDeleted, tick,
} from "./filter";
import { ACTION_PAUSE } from "./imports";
import "./abort"; // the abort handler (asc --use abort=...)

/** The root contexts (a few); every other context id is a connection's. Connections
 *  are not recorded here, so that a connection costs no allocation. */
const roots = new Array<u32>();
/** The last stream context created, and its root. */
let createdContext: u32 = 0;
let createdParent: u32 = 0;

// ---- Integration and memory ---------------------------------------------------------------

/** ABI marker: never called. */
export function proxy_abi_version_0_2_1(): void {}

/** proxy_on_memory_allocate and malloc: blocks the host fills (properties, buffers). */
export function proxy_on_memory_allocate(size: usize): usize { return heap.alloc(size); }
export function malloc(size: usize): usize { return heap.alloc(size); }

// `_initialize` is the module's start function (asc --exportStart _initialize): the
// core's and the filter's globals are set up there.

// ---- Context lifecycle ------------------------------------------------------------------------

export function proxy_on_context_create(context: u32, parent: u32): void {
  if (parent == 0) {
    if (!roots.includes(context)) roots.push(context);
    return;
  }
  createdContext = context;
  createdParent = parent;
}

export function proxy_on_vm_start(root: u32, vmConfigurationSize: u32): bool {
  return true;
}

export function proxy_on_configure(root: u32, pluginConfigurationSize: u32): bool {
  return configure(root, <i32>pluginConfigurationSize);
}

export function proxy_on_done(context: u32): bool {
  return true;
}

export function proxy_on_delete(context: u32): void {
  const i = roots.indexOf(context);
  if (i < 0) {
    connectionDeleted(context);
    return;
  }
  roots.splice(i, 1);
  rootDeleted(context);
}

// ---- Root context: timer and HTTP calls --------------------------------------------------------

export function proxy_on_tick(root: u32): void {
  tick(root);
}

export function proxy_on_http_call_response(
  root: u32, callId: u32, numHeaders: u32, bodySize: u32, numTrailers: u32,
): void {
  httpCallResponse(callId, <i32>numHeaders, <i32>bodySize);
}

// ---- Stream contexts: TCP connections --------------------------------------------------------------

export function proxy_on_new_connection(context: u32): i32 {
  if (roots.includes(context)) {
    closeDownstream();
    return ACTION_PAUSE;
  }
  return newConnection(context, context == createdContext ? createdParent : 0);
}

export function proxy_on_downstream_connection_close(context: u32, peerType: u32): void {
  connectionClosed(context);
}
