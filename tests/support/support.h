/*
 * support.h — helpers shared by every sprig test (library sprig_testsupport).
 *
 * Include it first in a test: it also brings in cmocka with the headers cmocka needs.
 * Host-only (POSIX); not thread-safe; call from the test's main thread.
 */
#ifndef SPRIG_TESTS_SUPPORT_H
#define SPRIG_TESTS_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Raise RLIMIT_NOFILE's soft limit to its hard limit (tests that open many sockets).
 * Failures are ignored: the test then runs with the limit it has. */
void sprig_test_raise_fd_limit(void);

/* A private directory /tmp/sprig-test-XXXXXX, created on the first call and returned on every
 * later one; it and everything in it are removed when the process exits normally. Aborts the
 * test program if the directory cannot be created. Use it for unix socket paths and files. */
const char *sprig_test_tmpdir(void);

/* Counts a socket's events: set with sprig_sock_set_callback(s, sprig_test_record, &events). */
#include "sprig/sock.h"

typedef struct sprig_test_events {
    unsigned connected, readable, writable, closed;
    sprig_status closed_status; /* status of the last CLOSED */
} sprig_test_events;

void sprig_test_record(sprig_sock *s, sprig_sock_event ev, sprig_status st, void *user);

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_TESTS_SUPPORT_H */
