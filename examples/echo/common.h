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

typedef struct echo_env {
    sprig_os_loop ol;
    sprig_os_backend backend;
    bool loop_ready;
    bool backend_ready;
} echo_env;

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

/* Parse a non-negative decimal integer no larger than max. */
bool echo_parse_u32(const char *s, unsigned long max, unsigned long *out);

#endif /* SPRIG_EXAMPLES_ECHO_COMMON_H */
