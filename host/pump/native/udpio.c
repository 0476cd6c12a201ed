// udpio: batched, zero-copy UDP I/O for the packet pump (Node-API addon, plain C).
//
// Node's dgram reads one datagram per recvmsg into a new Buffer and writes one per
// sendmsg. This addon lets the pump
//   - receive up to MAX_BATCH datagrams with one recvmmsg, straight into slots of an
//     ArrayBuffer (the core's wasm memory), with per-datagram metadata in an Int32Array;
//   - send up to MAX_BATCH datagrams with one sendmmsg, each gathered from two ranges of
//     that ArrayBuffer (the tunnel header and the packet as the core left it); with
//     `segment`, consecutive datagrams of one length to one destination leave as one
//     UDP GSO message (UDP_SEGMENT, Linux 4.18): one pass through the UDP/IP output path
//     for up to GSO_SEGMENTS datagrams, cut apart by the NIC or late in the stack;
//   - open several SO_REUSEPORT sockets on one address (one per worker thread) and attach
//     a classic BPF program that picks the socket of each datagram (steering.ts);
//   - learn when a socket is readable, on the calling thread's libuv loop (uv_poll).
//
// Sockets are plain file descriptors; one a thread leaves open is closed when the thread's
// environment goes away (a worker exits). Every call is synchronous and non-blocking
// (MSG_DONTWAIT), and recv/send allocate nothing: their scratch arrays live in a per-thread
// state created when the addon is loaded into a thread (Node-API instance data). They
// are not on the stack, because a worker thread's stack is small, and recvmmsg's arrays
// for 1024 datagrams take 125 KiB.
//
// Errors: a wrong argument type throws a TypeError, an out-of-range value (including a
// buffer too small for what is asked) a RangeError, both checked before any system call,
// so nothing is ever written outside the given buffers. A failed system call throws an
// Error with `code` (the errno name, e.g. 'EADDRINUSE'), `errno` (negative, as in Node)
// and `syscall`.
//
// Build: scripts/build-native.mjs (cc -shared -fPIC against Node's headers; the Node-API
// and libuv symbols resolve against the node binary when the addon is loaded).

#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51 // Linux 4.5 (include/uapi/asm-generic/socket.h)
#endif

#define MAX_BATCH 1024   // datagrams per recv/send call
#define META_INTS 8      // per received datagram: length, truncated, family, port, address[4]
#define DESC_INTS 10     // per sent datagram: family, port, address[4], off0, len0, off1, len1
#define MAX_PROGRAM 4096 // BPF_MAXINSNS
#define GSO_SEGMENTS 64  // UDP_MAX_SEGMENTS of kernels before 6.9 (128 since)
#define GSO_BYTES 60000  // one GSO message's payload: under IPv4's 65,507 with room to spare
#define GSO_STRIKES 8    // structural refusals (EIO, EINVAL) after which a thread stops trying

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103 // include/uapi/linux/udp.h
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

// watch() handles are unique in the process, not only per thread: a handle passed to
// another thread's unwatch() matches nothing there instead of another watch.
static uint64_t last_watch_id;

typedef union {
  struct sockaddr sa;
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
} sockaddr_any;

// One watch(): a uv_poll handle on the loop of the thread that called watch().
struct watcher {
  uv_poll_t poll; // first member: the handle's address is the watcher's
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  napi_async_cleanup_hook_handle cleanup;
  int fd;
  bool closing;
  double id;
  struct watcher *next;
};

// A socket opened by this thread: closed when the thread's environment goes away if it
// is still the same socket then (same inode: the number may have been closed and reused).
struct owned {
  int fd;
  dev_t dev;
  ino_t ino;
};

// Per thread (per napi_env): scratch arrays of recv/send, live watchers, owned sockets.
struct state {
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[2 * MAX_BATCH];
  sockaddr_any addr[MAX_BATCH];
  // send(…, segment): the same datagrams as GSO messages.
  struct mmsghdr gmsgs[MAX_BATCH];
  struct iovec giov[2 * MAX_BATCH];
  int gsegs[MAX_BATCH]; // datagrams in each
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } gctl[MAX_BATCH];
  int gso_strikes; // structural refusals so far; at GSO_STRIKES this thread sends plainly
  struct watcher *watchers; // active (not closing) watchers
  struct owned *owned;
  size_t owned_len, owned_cap;
};

// ---- Errors ------------------------------------------------------------------------

// Throws an Error for errno `err` of `syscall`: "<syscall> <what>: <strerror> (<CODE>)".
static void throw_errno(napi_env env, int err, const char *syscall, const char *what) {
  char name[64], text[128], msg[384];
  uv_err_name_r(-err, name, sizeof name); // libuv's codes are the negated errno values on Unix
  uv_strerror_r(-err, text, sizeof text);
  snprintf(msg, sizeof msg, "%s%s%s: %s (%s)", syscall, what[0] ? " " : "", what, text, name);
  napi_value code, message, error, errno_value, syscall_value;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message) != napi_ok ||
      napi_create_error(env, code, message, &error) != napi_ok) {
    napi_throw_error(env, name, msg);
    return;
  }
  if (napi_create_int32(env, -err, &errno_value) == napi_ok) napi_set_named_property(env, error, "errno", errno_value);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value) == napi_ok) {
    napi_set_named_property(env, error, "syscall", syscall_value);
  }
  napi_throw(env, error);
}

static void throw_fd_errno(napi_env env, int err, const char *syscall, int fd, const char *more) {
  char what[96];
  snprintf(what, sizeof what, "fd %d%s", fd, more);
  throw_errno(env, err, syscall, what);
}

static void throw_type(napi_env env, const char *fn, const char *arg, const char *want) {
  char msg[160];
  snprintf(msg, sizeof msg, "udpio.%s: %s must be %s", fn, arg, want);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
}

static void throw_range(napi_env env, const char *fn, const char *detail) {
  char msg[256];
  snprintf(msg, sizeof msg, "udpio.%s: %s", fn, detail);
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
}

// ---- Arguments ---------------------------------------------------------------------
// Each returns false after throwing.

static bool arg_int(napi_env env, napi_value v, const char *fn, const char *arg, int64_t min, int64_t max,
                    int64_t *out) {
  napi_valuetype t;
  double d;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number || napi_get_value_double(env, v, &d) != napi_ok) {
    throw_type(env, fn, arg, "a number");
    return false;
  }
  // d == d rejects NaN; the range check before the cast keeps the cast defined.
  if (!(d == d) || d < (double)min || d > (double)max || d != (double)(int64_t)d) {
    char detail[160];
    snprintf(detail, sizeof detail, "%s must be an integer from %lld to %lld (got %g)", arg, (long long)min,
             (long long)max, d);
    throw_range(env, fn, detail);
    return false;
  }
  *out = (int64_t)d;
  return true;
}

static bool arg_fd(napi_env env, napi_value v, const char *fn, int *fd) {
  int64_t x;
  if (!arg_int(env, v, fn, "fd", 0, INT32_MAX, &x)) return false;
  *fd = (int)x;
  return true;
}

static bool arg_bool(napi_env env, napi_value v, const char *fn, const char *arg, bool *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_boolean || napi_get_value_bool(env, v, out) != napi_ok) {
    throw_type(env, fn, arg, "a boolean");
    return false;
  }
  return true;
}

// An ArrayBuffer's data and length, read on every call: a WebAssembly.Memory's buffer is
// replaced (the old one detached, length 0) when the memory grows.
static bool arg_arraybuffer(napi_env env, napi_value v, const char *fn, const char *arg, uint8_t **data,
                            size_t *len) {
  bool is = false;
  void *p = NULL;
  if (napi_is_arraybuffer(env, v, &is) != napi_ok || !is || napi_get_arraybuffer_info(env, v, &p, len) != napi_ok) {
    throw_type(env, fn, arg, "an ArrayBuffer");
    return false;
  }
  *data = p;
  if (*data == NULL) *len = 0; // detached, or empty
  return true;
}

// A typed array of `want` elements: its first element (byte offset applied) and length.
static bool arg_typedarray(napi_env env, napi_value v, const char *fn, const char *arg, napi_typedarray_type want,
                           const char *want_name, void **data, size_t *len) {
  bool is = false;
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &type, len, data, &ab, &offset) != napi_ok || type != want) {
    throw_type(env, fn, arg, want_name);
    return false;
  }
  if (*data == NULL) *len = 0;
  return true;
}

static struct state *get_state(napi_env env) {
  void *s = NULL;
  napi_get_instance_data(env, &s);
  return s;
}

static napi_value number(napi_env env, double x) {
  napi_value v;
  napi_create_double(env, x, &v);
  return v;
}

static napi_value undefined(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

// ---- open(family, host, port, reusePort, rcvbuf, sndbuf) → fd ----------------------

// Parses an IP literal of `family` (IPv6 may carry a %scope: an interface name or index).
static bool parse_address(int family, char *host, int port, sockaddr_any *sa, socklen_t *len) {
  memset(sa, 0, sizeof *sa);
  if (family == 4) {
    sa->v4.sin_family = AF_INET;
    sa->v4.sin_port = htons((uint16_t)port);
    *len = sizeof sa->v4;
    return inet_pton(AF_INET, host, &sa->v4.sin_addr) == 1;
  }
  sa->v6.sin6_family = AF_INET6;
  sa->v6.sin6_port = htons((uint16_t)port);
  *len = sizeof sa->v6;
  char *scope = strchr(host, '%');
  if (scope) {
    *scope++ = '\0';
    char *end;
    unsigned long index = strtoul(scope, &end, 10);
    if (*scope == '\0' || *end != '\0') index = if_nametoindex(scope);
    if (index == 0 || index > UINT32_MAX) return false;
    sa->v6.sin6_scope_id = (uint32_t)index;
  }
  return inet_pton(AF_INET6, host, &sa->v6.sin6_addr) == 1;
}

static int set_int_option(int fd, int level, int option, int value) {
  return setsockopt(fd, level, option, &value, sizeof value);
}

// SO_RCVBUFFORCE/SO_SNDBUFFORCE go past rmem_max/wmem_max but need CAP_NET_ADMIN;
// without it the plain option (capped by the kernel) is the fallback.
static int set_buffer(int fd, int force, int plain, int bytes) {
  if (bytes <= 0) return 0;
  if (set_int_option(fd, SOL_SOCKET, force, bytes) == 0) return 0;
  return set_int_option(fd, SOL_SOCKET, plain, bytes);
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  static const char fn[] = "open";
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  for (size_t i = argc; i < 6; i++) argv[i] = undefined(env);
  int64_t family, port, rcvbuf, sndbuf;
  bool reuse_port;
  if (!arg_int(env, argv[0], fn, "family", 4, 6, &family)) return NULL;
  if (family != 4 && family != 6) {
    throw_range(env, fn, "family must be 4 or 6");
    return NULL;
  }
  napi_valuetype t;
  char host[80];
  size_t host_len = 0;
  if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_string ||
      napi_get_value_string_utf8(env, argv[1], host, sizeof host, &host_len) != napi_ok) {
    throw_type(env, fn, "host", "a string");
    return NULL;
  }
  if (!arg_int(env, argv[2], fn, "port", 0, 65535, &port)) return NULL;
  if (!arg_bool(env, argv[3], fn, "reusePort", &reuse_port)) return NULL;
  if (!arg_int(env, argv[4], fn, "rcvbuf", 0, INT32_MAX, &rcvbuf)) return NULL;
  if (!arg_int(env, argv[5], fn, "sndbuf", 0, INT32_MAX, &sndbuf)) return NULL;

  char what[128];
  snprintf(what, sizeof what, family == 6 ? "[%s]:%d" : "%s:%d", host, (int)port);
  sockaddr_any sa;
  socklen_t sa_len;
  // A longer string would have been cut to fit `host`, and one with a NUL would be read up
  // to it: reject both rather than bind to a prefix.
  if (host_len + 1 >= sizeof host || strlen(host) != host_len || !parse_address((int)family, host, (int)port, &sa, &sa_len)) {
    char detail[160];
    snprintf(detail, sizeof detail, "host %s is not an IPv%d address", what, (int)family);
    throw_range(env, fn, detail);
    return NULL;
  }

  // Non-blocking from the start (recv/send never wait); close-on-exec so that child
  // processes do not keep the port bound.
  int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) { throw_errno(env, errno, "socket", what); return NULL; }
  // No SO_REUSEADDR: for UDP it lets any later socket with it bind the same address and
  // port and take the unicast datagrams, so a second pump would start without
  // EADDRINUSE and silently steal traffic. A group of sockets on one port is what
  // SO_REUSEPORT is for, and the kernel only groups sockets of the same user.
  const char *step = NULL;
  if (reuse_port && set_int_option(fd, SOL_SOCKET, SO_REUSEPORT, 1) < 0) step = "setsockopt SO_REUSEPORT";
  else if (set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, (int)rcvbuf) < 0) step = "setsockopt SO_RCVBUF";
  else if (set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, (int)sndbuf) < 0) step = "setsockopt SO_SNDBUF";
  // IPv6 only: an IPv6 listener never sees IPv4 peers as ::ffff:a.b.c.d (the pump keeps
  // one socket per family, like dgram's udp6 with ipv6Only).
  else if (family == 6 && set_int_option(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1) < 0) step = "setsockopt IPV6_V6ONLY";
  else if (bind(fd, &sa.sa, sa_len) < 0) step = "bind";
  if (step) {
    int err = errno;
    close(fd);
    throw_errno(env, err, step, what);
    return NULL;
  }

  struct state *s = get_state(env);
  struct stat st;
  if (s->owned_len == s->owned_cap) {
    size_t cap = s->owned_cap ? s->owned_cap * 2 : 16;
    struct owned *grown = realloc(s->owned, cap * sizeof *grown);
    if (!grown) {
      close(fd);
      throw_errno(env, ENOMEM, "open", what);
      return NULL;
    }
    s->owned = grown;
    s->owned_cap = cap;
  }
  if (fstat(fd, &st) == 0) s->owned[s->owned_len++] = (struct owned){fd, st.st_dev, st.st_ino};
  return number(env, fd);
}

// ---- localPort(fd) → port ----------------------------------------------------------

static napi_value js_local_port(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) argv[0] = undefined(env);
  if (!arg_fd(env, argv[0], "localPort", &fd)) return NULL;
  sockaddr_any sa;
  socklen_t len = sizeof sa;
  if (getsockname(fd, &sa.sa, &len) < 0) { throw_fd_errno(env, errno, "getsockname", fd, ""); return NULL; }
  if (sa.sa.sa_family == AF_INET) return number(env, ntohs(sa.v4.sin_port));
  if (sa.sa.sa_family == AF_INET6) return number(env, ntohs(sa.v6.sin6_port));
  throw_errno(env, EAFNOSUPPORT, "getsockname", "(not an IP socket)");
  return NULL;
}

// ---- attachReuseportCbpf(fd, program) ----------------------------------------------

// The program selects, per datagram, the index of the socket in the fd's SO_REUSEPORT
// group (the order the sockets were bound in); an index past the group's size falls back
// to the kernel's hash. One program serves the whole group, whichever socket it is set on.
static napi_value js_attach(napi_env env, napi_callback_info info) {
  static const char fn[] = "attachReuseportCbpf";
  size_t argc = 2;
  napi_value argv[2];
  int fd;
  void *data;
  size_t len;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  for (size_t i = argc; i < 2; i++) argv[i] = undefined(env);
  if (!arg_fd(env, argv[0], fn, &fd)) return NULL;
  if (!arg_typedarray(env, argv[1], fn, "program", napi_uint8_array, "a Uint8Array", &data, &len)) return NULL;
  if (len == 0 || len % sizeof(struct sock_filter) != 0 || len / sizeof(struct sock_filter) > MAX_PROGRAM) {
    throw_range(env, fn, "program must be 1 to 4096 struct sock_filter (8 bytes each)");
    return NULL;
  }
  // The kernel copies the instructions (copy_from_user): the bytes need no alignment here.
  struct sock_fprog prog = {.len = (unsigned short)(len / sizeof(struct sock_filter)), .filter = data};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) < 0) {
    int err = errno;
    throw_fd_errno(env, err, "setsockopt SO_ATTACH_REUSEPORT_CBPF", fd,
                   err == EINVAL ? " (program rejected, or no SO_REUSEPORT group)" : "");
    return NULL;
  }
  return undefined(env);
}

// ---- watch(fd, callback) → handle; unwatch(handle) ---------------------------------
//
// libuv's epoll is level-triggered: the callback runs on every loop turn in which the
// socket has datagrams, whether or not the previous callback read them all.

static void on_close(uv_handle_t *handle) {
  struct watcher *w = (struct watcher *)handle;
  if (w->callback) napi_delete_reference(w->env, w->callback);
  if (w->async) napi_async_destroy(w->env, w->async);
  // Last: during an environment teardown this lets Node finish it.
  if (w->cleanup) napi_remove_async_cleanup_hook(w->cleanup);
  free(w);
}

// Stops polling at once and closes the handle (uv_close completes on a later loop turn,
// in on_close). A stopped, closing handle keeps no loop alive.
static void stop_watcher(struct state *s, struct watcher *w) {
  if (w->closing) return;
  w->closing = true;
  for (struct watcher **p = &s->watchers; *p; p = &(*p)->next) {
    if (*p == w) { *p = w->next; break; }
  }
  uv_poll_stop(&w->poll);
  uv_close((uv_handle_t *)&w->poll, on_close);
}

// The thread's environment is going away (a worker exits, or Node shuts down): close the
// handle; Node waits for napi_remove_async_cleanup_hook (in on_close) before it tears
// down the loop, so the handle is closed while the loop still exists.
static void on_env_cleanup(napi_async_cleanup_hook_handle handle, void *arg) {
  (void)handle;
  struct watcher *w = arg;
  stop_watcher(get_state(w->env), w);
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  (void)events;
  struct watcher *w = (struct watcher *)handle;
  if (w->closing) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, global, result;
  if (napi_get_reference_value(env, w->callback, &callback) == napi_ok && callback != NULL &&
      napi_get_global(env, &global) == napi_ok &&
      napi_make_callback(env, w->async, global, callback, 0, NULL, &result) != napi_ok) {
    // The callback threw: report it as uncaught, as an exception in an event listener is.
    bool pending = false;
    napi_value exception;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending &&
        napi_get_and_clear_last_exception(env, &exception) == napi_ok) {
      napi_fatal_exception(env, exception);
    }
  }
  napi_close_handle_scope(env, scope);
  // On POLLERR (a pending socket error) libuv stops the handle and passes an error status.
  // The callback has run: its recv() has thrown the socket error, which clears it, so
  // polling goes on.
  if (status < 0 && !w->closing) uv_poll_start(&w->poll, UV_READABLE, on_poll);
}

static napi_value js_watch(napi_env env, napi_callback_info info) {
  static const char fn[] = "watch";
  size_t argc = 2;
  napi_value argv[2];
  int fd;
  napi_valuetype t;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  for (size_t i = argc; i < 2; i++) argv[i] = undefined(env);
  if (!arg_fd(env, argv[0], fn, &fd)) return NULL;
  if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function) {
    throw_type(env, fn, "callback", "a function");
    return NULL;
  }
  struct state *s = get_state(env);
  uv_loop_t *loop = NULL;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == NULL) {
    napi_throw_error(env, NULL, "udpio.watch: no libuv loop for this thread");
    return NULL;
  }
  struct watcher *w = calloc(1, sizeof *w);
  if (!w) { throw_errno(env, ENOMEM, "watch", ""); return NULL; }
  // Fails for a closed fd (EBADF), or one that this loop already polls (EEXIST).
  char what[32];
  snprintf(what, sizeof what, "fd %d", fd);
  int r = uv_poll_init(loop, &w->poll, fd);
  if (r < 0) {
    free(w);
    throw_errno(env, -r, "uv_poll_init", what);
    return NULL;
  }
  w->env = env;
  w->fd = fd;
  napi_value name;
  if (napi_create_reference(env, argv[1], 1, &w->callback) != napi_ok ||
      napi_create_string_utf8(env, "udpio.watch", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &w->async) != napi_ok ||
      napi_add_async_cleanup_hook(env, on_env_cleanup, w, &w->cleanup) != napi_ok) {
    w->closing = true;
    uv_close((uv_handle_t *)&w->poll, on_close);
    napi_throw_error(env, NULL, "udpio.watch: Node-API call failed");
    return NULL;
  }
  r = uv_poll_start(&w->poll, UV_READABLE, on_poll);
  if (r < 0) {
    w->closing = true;
    uv_close((uv_handle_t *)&w->poll, on_close);
    throw_errno(env, -r, "uv_poll_start", what);
    return NULL;
  }
  w->id = (double)__atomic_add_fetch(&last_watch_id, 1, __ATOMIC_RELAXED);
  w->next = s->watchers;
  s->watchers = w;
  return number(env, w->id);
}

// Returns whether the handle was watching (false after unwatch, close(fd), or for a
// handle of another thread: handles are per thread).
static napi_value js_unwatch(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int64_t id;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) argv[0] = undefined(env);
  if (!arg_int(env, argv[0], "unwatch", "handle", 0, INT64_C(1) << 53, &id)) return NULL;
  struct state *s = get_state(env);
  napi_value found;
  for (struct watcher *w = s->watchers; w; w = w->next) {
    if (w->id == (double)id) {
      stop_watcher(s, w);
      napi_get_boolean(env, true, &found);
      return found;
    }
  }
  napi_get_boolean(env, false, &found);
  return found;
}

// ---- recv(fd, memory, base, slot, max, meta) → count -------------------------------

static void address_words(int32_t *words, const sockaddr_any *sa, int32_t *family, int32_t *port) {
  // The address bytes as they are in memory (network order) copied into the words' bytes.
  memset(words, 0, 16);
  if (sa->sa.sa_family == AF_INET6) {
    *family = 6;
    *port = ntohs(sa->v6.sin6_port);
    memcpy(words, &sa->v6.sin6_addr, 16);
  } else {
    *family = 4;
    *port = ntohs(sa->v4.sin_port);
    memcpy(words, &sa->v4.sin_addr, 4);
  }
}

static napi_value js_recv(napi_env env, napi_callback_info info) {
  static const char fn[] = "recv";
  size_t argc = 6;
  napi_value argv[6];
  int fd;
  uint8_t *mem;
  size_t mem_len, meta_len;
  int64_t base, slot, max;
  void *meta_data;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  for (size_t i = argc; i < 6; i++) argv[i] = undefined(env);
  if (!arg_fd(env, argv[0], fn, &fd)) return NULL;
  if (!arg_arraybuffer(env, argv[1], fn, "memory", &mem, &mem_len)) return NULL;
  if (!arg_int(env, argv[2], fn, "base", 0, INT32_MAX, &base)) return NULL;
  if (!arg_int(env, argv[3], fn, "slot", 1, INT32_MAX, &slot)) return NULL;
  if (!arg_int(env, argv[4], fn, "max", 1, MAX_BATCH, &max)) return NULL;
  if (!arg_typedarray(env, argv[5], fn, "meta", napi_int32_array, "an Int32Array", &meta_data, &meta_len)) return NULL;
  if ((uint64_t)base + (uint64_t)max * (uint64_t)slot > mem_len) {
    char detail[160];
    snprintf(detail, sizeof detail, "base + max × slot = %lld is past the end of memory (%zu bytes)",
             (long long)(base + max * slot), mem_len);
    throw_range(env, fn, detail);
    return NULL;
  }
  if ((uint64_t)max * META_INTS > meta_len) {
    char detail[160];
    snprintf(detail, sizeof detail, "meta has %zu elements, max × 8 = %lld are needed", meta_len,
             (long long)(max * META_INTS));
    throw_range(env, fn, detail);
    return NULL;
  }

  struct state *s = get_state(env);
  for (int i = 0; i < (int)max; i++) {
    s->iov[i].iov_base = mem + base + (int64_t)i * slot;
    s->iov[i].iov_len = (size_t)slot;
    struct msghdr *h = &s->msgs[i].msg_hdr;
    h->msg_name = &s->addr[i];
    h->msg_namelen = sizeof s->addr[i];
    h->msg_iov = &s->iov[i];
    h->msg_iovlen = 1;
    h->msg_control = NULL;
    h->msg_controllen = 0;
    h->msg_flags = 0;
  }
  int n;
  do n = recvmmsg(fd, s->msgs, (unsigned)max, MSG_DONTWAIT, NULL);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return number(env, 0);
    throw_fd_errno(env, errno, "recvmmsg", fd, "");
    return NULL;
  }
  int32_t *meta = meta_data;
  for (int i = 0; i < n; i++) {
    int32_t *m = meta + i * META_INTS;
    m[0] = (int32_t)s->msgs[i].msg_len; // bytes stored: never more than the slot
    m[1] = (s->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? 1 : 0;
    address_words(m + 4, &s->addr[i], &m[2], &m[3]);
  }
  return number(env, n);
}

// ---- send(fd, memory, desc, count[, segment]) → sent --------------------------------

// Ends group g (segment size gso): a group of several datagrams gets its UDP_SEGMENT.
static void close_group(struct state *s, int g, size_t gso) {
  if (g < 0 || s->gsegs[g] < 2) return;
  struct msghdr *h = &s->gmsgs[g].msg_hdr;
  h->msg_control = s->gctl[g].buf;
  h->msg_controllen = sizeof s->gctl[g].buf;
  struct cmsghdr *c = CMSG_FIRSTHDR(h);
  c->cmsg_level = SOL_UDP;
  c->cmsg_type = UDP_SEGMENT;
  c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
  uint16_t size = (uint16_t)gso;
  memcpy(CMSG_DATA(c), &size, sizeof size);
}

// Groups the messages 0..count-1 of s->msgs into s->gmsgs: each run of consecutive
// datagrams to one destination, all of one non-zero length, becomes one message (at most
// GSO_SEGMENTS datagrams and GSO_BYTES bytes). Order is kept. Returns the number of groups.
static int group_messages(struct state *s, int count) {
  int g = -1, v = 0;
  size_t gso = 0, bytes = 0;
  for (int i = 0; i < count; i++) {
    const struct msghdr *h = &s->msgs[i].msg_hdr;
    size_t len = 0;
    for (size_t k = 0; k < h->msg_iovlen; k++) len += h->msg_iov[k].iov_len;
    const struct msghdr *gh = g >= 0 ? &s->gmsgs[g].msg_hdr : NULL;
    bool join = gh && len > 0 && len == gso && s->gsegs[g] < GSO_SEGMENTS && bytes + len <= GSO_BYTES &&
                h->msg_namelen == gh->msg_namelen && memcmp(h->msg_name, gh->msg_name, h->msg_namelen) == 0;
    if (!join) {
      close_group(s, g, gso);
      g++;
      struct msghdr *n = &s->gmsgs[g].msg_hdr;
      n->msg_name = h->msg_name;
      n->msg_namelen = h->msg_namelen;
      n->msg_iov = &s->giov[v];
      n->msg_iovlen = 0;
      n->msg_control = NULL;
      n->msg_controllen = 0;
      n->msg_flags = 0;
      s->gsegs[g] = 0;
      gso = len;
      bytes = 0;
    }
    struct msghdr *n = &s->gmsgs[g].msg_hdr;
    for (size_t k = 0; k < h->msg_iovlen; k++) s->giov[v++] = h->msg_iov[k];
    n->msg_iovlen += h->msg_iovlen;
    s->gsegs[g]++;
    bytes += len;
  }
  close_group(s, g, gso);
  return g + 1;
}

// Sends the groups of group_messages(). Returns the datagrams sent (those of the groups
// sent: a prefix of the messages), 0 when the socket's buffer is full, or -1 with errno
// when the first group fails.
static int send_groups(struct state *s, int fd, int groups) {
  int n;
  do n = sendmmsg(fd, s->gmsgs, (unsigned)groups, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
  int sent = 0;
  for (int g = 0; g < n; g++) sent += s->gsegs[g];
  return sent;
}

static napi_value js_send(napi_env env, napi_callback_info info) {
  static const char fn[] = "send";
  size_t argc = 5;
  napi_value argv[5];
  int fd;
  uint8_t *mem;
  size_t mem_len, desc_len;
  void *desc_data;
  int64_t count;
  bool segment = false;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  for (size_t i = argc; i < 5; i++) argv[i] = undefined(env);
  if (!arg_fd(env, argv[0], fn, &fd)) return NULL;
  if (!arg_arraybuffer(env, argv[1], fn, "memory", &mem, &mem_len)) return NULL;
  if (!arg_typedarray(env, argv[2], fn, "desc", napi_int32_array, "an Int32Array", &desc_data, &desc_len)) return NULL;
  if (!arg_int(env, argv[3], fn, "count", 0, MAX_BATCH, &count)) return NULL;
  napi_valuetype segment_type;
  napi_typeof(env, argv[4], &segment_type);
  if (segment_type == napi_boolean) napi_get_value_bool(env, argv[4], &segment);
  else if (segment_type != napi_undefined) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "send: segment must be a boolean");
    return NULL;
  }
  if ((uint64_t)count * DESC_INTS > desc_len) {
    char detail[160];
    snprintf(detail, sizeof detail, "desc has %zu elements, count × 10 = %lld are needed", desc_len,
             (long long)(count * DESC_INTS));
    throw_range(env, fn, detail);
    return NULL;
  }
  if (count == 0) return number(env, 0);

  // Every message is checked before the one system call: a bad one sends nothing.
  struct state *s = get_state(env);
  const int32_t *desc = desc_data;
  for (int i = 0; i < (int)count; i++) {
    const int32_t *d = desc + i * DESC_INTS;
    char detail[160];
    if (d[0] != 4 && d[0] != 6) {
      snprintf(detail, sizeof detail, "desc[%d]: family %d is not 4 or 6", i, d[0]);
      throw_range(env, fn, detail);
      return NULL;
    }
    if (d[1] < 1 || d[1] > 65535) {
      snprintf(detail, sizeof detail, "desc[%d]: port %d is not 1 to 65535", i, d[1]);
      throw_range(env, fn, detail);
      return NULL;
    }
    sockaddr_any *sa = &s->addr[i];
    memset(sa, 0, sizeof *sa);
    struct msghdr *h = &s->msgs[i].msg_hdr;
    if (d[0] == 4) {
      sa->v4.sin_family = AF_INET;
      sa->v4.sin_port = htons((uint16_t)d[1]);
      memcpy(&sa->v4.sin_addr, d + 2, 4);
      h->msg_namelen = sizeof sa->v4;
    } else {
      sa->v6.sin6_family = AF_INET6;
      sa->v6.sin6_port = htons((uint16_t)d[1]);
      memcpy(&sa->v6.sin6_addr, d + 2, 16);
      h->msg_namelen = sizeof sa->v6;
    }
    h->msg_name = sa;
    h->msg_iov = &s->iov[2 * i];
    h->msg_iovlen = 0;
    h->msg_control = NULL;
    h->msg_controllen = 0;
    h->msg_flags = 0;
    for (int v = 0; v < 2; v++) {
      int32_t off = d[6 + 2 * v], len = d[7 + 2 * v];
      if (off < 0 || len < 0 || (uint64_t)off + (uint64_t)len > mem_len) {
        snprintf(detail, sizeof detail, "desc[%d]: iov%d [%d, +%d) is not inside memory (%zu bytes)", i, v, off,
                 len, mem_len);
        throw_range(env, fn, detail);
        return NULL;
      }
      if (len == 0) continue; // an empty part is left out
      s->iov[2 * i + h->msg_iovlen].iov_base = mem + off;
      s->iov[2 * i + h->msg_iovlen].iov_len = (size_t)len;
      h->msg_iovlen++;
    }
  }
  if (segment && count > 1 && s->gso_strikes < GSO_STRIKES) {
    int groups = group_messages(s, (int)count);
    if (groups < (int)count) {
      int sent = send_groups(s, fd, groups);
      if (sent >= 0) return number(env, sent);
      // The first group failed. A kernel or device that cannot segment (EIO, EINVAL,
      // ENOPROTOOPT: no UDP_SEGMENT), or a segment larger than the path's MTU (EMSGSIZE),
      // gets the same datagrams one by one below, which may still go (fragmented). Other
      // errors are the destination's: they come again below and are reported there.
      int err = errno;
      if (s->gsegs[0] > 1 && (err == EIO || err == EINVAL || err == ENOPROTOOPT || err == EOPNOTSUPP)) s->gso_strikes++;
    }
  }
  int n;
  do n = sendmmsg(fd, s->msgs, (unsigned)count, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return number(env, 0);
    // sendmmsg reports an error only when the first message fails (later failures end
    // the batch early, with the count sent): name that message's destination.
    int err = errno;
    char to[INET6_ADDRSTRLEN + 16], text[INET6_ADDRSTRLEN];
    const sockaddr_any *sa = &s->addr[0];
    if (sa->sa.sa_family == AF_INET6) {
      inet_ntop(AF_INET6, &sa->v6.sin6_addr, text, sizeof text);
      snprintf(to, sizeof to, "to [%s]:%d", text, ntohs(sa->v6.sin6_port));
    } else {
      inet_ntop(AF_INET, &sa->v4.sin_addr, text, sizeof text);
      snprintf(to, sizeof to, "to %s:%d", text, ntohs(sa->v4.sin_port));
    }
    throw_errno(env, err, "sendmmsg", to);
    return NULL;
  }
  return number(env, n);
}

// ---- close(fd) ---------------------------------------------------------------------

// Closes a UDP socket, after stopping this thread's watchers of it (libuv must not poll
// a closed descriptor: its number may be reused at once). Only datagram sockets are
// closed, so that a wrong number cannot close one of Node's files or TCP connections.
static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int fd, type;
  socklen_t len = sizeof type;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) argv[0] = undefined(env);
  if (!arg_fd(env, argv[0], "close", &fd)) return NULL;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
    throw_fd_errno(env, errno, "close", fd, "");
    return NULL;
  }
  if (type != SOCK_DGRAM) {
    throw_fd_errno(env, EPROTOTYPE, "close", fd, " (not a datagram socket)");
    return NULL;
  }
  struct state *s = get_state(env);
  for (struct watcher *w = s->watchers, *next; w; w = next) {
    next = w->next;
    if (w->fd == fd) stop_watcher(s, w);
  }
  for (size_t i = 0; i < s->owned_len; i++) {
    if (s->owned[i].fd == fd) { s->owned[i] = s->owned[--s->owned_len]; break; }
  }
  // Linux releases the descriptor even when close reports an error (EINTR, EIO): there is
  // nothing to retry, and UDP has no unsent data to lose.
  close(fd);
  return undefined(env);
}

// ---- Module ------------------------------------------------------------------------

// The thread's environment is gone (its async cleanup hooks have all finished, so every
// watcher is closed): close the sockets it opened and never closed, so that a worker
// that exits leaves no port bound.
static void finalize_state(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct state *s = data;
  for (size_t i = 0; i < s->owned_len; i++) {
    struct stat st;
    if (fstat(s->owned[i].fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == s->owned[i].dev &&
        st.st_ino == s->owned[i].ino) {
      close(s->owned[i].fd);
    }
  }
  free(s->owned);
  free(s);
}

NAPI_MODULE_INIT() {
  struct state *s = calloc(1, sizeof *s);
  if (!s || napi_set_instance_data(env, s, finalize_state, NULL) != napi_ok) {
    free(s);
    napi_throw_error(env, NULL, "udpio: cannot allocate the per-thread state");
    return NULL;
  }
  struct { const char *name; napi_callback fn; } fns[] = {
      {"open", js_open},   {"localPort", js_local_port}, {"attachReuseportCbpf", js_attach},
      {"watch", js_watch}, {"unwatch", js_unwatch},      {"recv", js_recv},
      {"send", js_send},   {"close", js_close},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f) != napi_ok ||
        napi_set_named_property(env, exports, fns[i].name, f) != napi_ok) {
      return NULL;
    }
  }
  napi_set_named_property(env, exports, "maxBatch", number(env, MAX_BATCH));
  return exports;
}
