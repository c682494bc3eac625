/*
 * common.h — what sprig-echo-server and sprig-echo-client share: the OS loop and backend, and
 * error printing ("<program>: <what>: <STATUS>").
 *
 * Host-side example code: it may allocate. Not thread-safe (one loop, one thread).
 */
#ifndef SPRIG_EXAMPLES_ECHO_COMMON_H
#define SPRIG_EXAMPLES_ECHO_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#include "sprig/os.h"
#include "sprig/status.h"

/* The RPC receive buffers: the OS backend's default largest message. */
#define ECHO_MAX_MESSAGE SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE

#ifdef ECHO_WITH_NETSTACK
#include "sprig/ns_os.h"
#endif

typedef struct echo_env {
    sprig_os_loop ol;
    sprig_os_backend backend;
#ifdef ECHO_WITH_NETSTACK
    sprig_ns_os_set ns; /* the netstack endpoint of echo_env_url, if any */
#endif
    char why[256]; /* echo_env_url: why it failed, in words ("" if no more to say) */
    bool loop_ready;
    bool backend_ready;
} echo_env;

/* The well-known port of the echo service on a netstack node (sprig://NODE:1). */
#define ECHO_NS_PORT 1u

/* The program name used in messages (set once by main). */
extern const char *echo_prog;

/* Prints "<prog>: <what>: <STATUS>" to stderr; returns 1 (an exit status). */
int echo_fail(const char *what, sprig_status st);
/* Like echo_fail with a printf-style `what`. */
int echo_failf(sprig_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The OS loop and socket backend (default configuration). */
sprig_status echo_env_init(echo_env *e);
/* Returns the number of sockets the backend still had open (0 after a clean teardown). */
size_t echo_env_deinit(echo_env *e);

/* The URL to listen on (listening) or dial for a URL given on the command line, through the
 * netstack library's URL set (sprig_ns_os_set_url, sprig/ns_os.h; docs/netstack.md §11): a
 * netstack host URL (serial:PATH, sprig+udp://HOST:PORT) opens an endpoint on the env's loop
 * (closed by echo_env_deinit) and yields sprig://NODE:PORT, the port ECHO_NS_PORT unless the
 * query says port=N; any other URL is copied unchanged. On failure e->why says why in words.
 * UNIMPLEMENTED for a netstack URL when the netstack was not built. */
sprig_status echo_env_url(echo_env *e, const char *url, bool listening, char *out, size_t cap);

/* Parse a non-negative decimal integer no larger than max. */
bool echo_parse_u32(const char *s, unsigned long max, unsigned long *out);

#endif /* SPRIG_EXAMPLES_ECHO_COMMON_H */
