/*
 * conformance.h — the socket contract suite, written once and run against every backend.
 *
 * A backend joins by describing itself in a sprig_conf_target (how to make it on a loop, which
 * URLs to listen on and dial, how to check nothing leaked) and calling sprig_conf_run() from
 * a tests/<module>/test_conformance_<backend>.c. The suite runs on a sprig_os_loop with the real
 * clock and uses only the public socket API, so what passes here is what users get.
 */
#ifndef SPRIG_TESTS_CONFORMANCE_H
#define SPRIG_TESTS_CONFORMANCE_H

#include "support.h"

#include "sprig/os.h"
#include "sprig/sock.h"

typedef struct sprig_conf_env sprig_conf_env;

typedef struct sprig_conf_target {
    const char *name; /* "unix/seqpacket" */
    sprig_sock_type type;
    /* Create and register the backend on env->loop; keep private state in env->backend. */
    void (*setup)(sprig_conf_env *env);
    /* Deinit the backend. Called after every socket of the test was closed. */
    void (*teardown)(sprig_conf_env *env);
    /* Sockets (and pool buffers) the backend still holds: must be 0 at teardown. */
    size_t (*leaked)(sprig_conf_env *env);
    /* A fresh URL to listen on (unique per call). */
    void (*listen_url)(sprig_conf_env *env, char *out, size_t cap);
    /* The URL to dial to reach `listener` (e.g. with the port the OS picked). */
    void (*dial_url)(sprig_conf_env *env, sprig_sock *listener, char *out, size_t cap);
    /* A URL nobody listens on, and the statuses a dial to it may fail with. */
    void (*refused_url)(sprig_conf_env *env, char *out, size_t cap);
    sprig_status refused_status[2];
    /* Largest number of simultaneous connections the backend is configured for. */
    unsigned max_connections;
} sprig_conf_target;

struct sprig_conf_env {
    const sprig_conf_target *t;
    sprig_os_loop ol;
    sprig_loop *loop;
    void *backend;        /* the target's private state */
    unsigned url_counter; /* for unique listen URLs */
};

/* Runs the suite for every target, one cmocka group each; returns the number of failures. */
int sprig_conf_run(const sprig_conf_target *targets, size_t count);

#endif /* SPRIG_TESTS_CONFORMANCE_H */
