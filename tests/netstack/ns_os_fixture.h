/*
 * ns_os_fixture.h — helpers shared by the host-link tests (test_os_serial.c, test_os_udp.c):
 * run a real sprig_os_loop for a while, open a DGRAM socket on one node's backend by URL, and
 * wait for one datagram. Include after support.h.
 */
#ifndef SPRIG_TESTS_NS_OS_FIXTURE_H
#define SPRIG_TESTS_NS_OS_FIXTURE_H

#include <stdbool.h>

#include "sprig/loop.h"
#include "sprig/ns_dgram.h"
#include "sprig/sock.h"

static inline bool nsos_never(void *arg)
{
    (void)arg;
    return false;
}

/* Run the loop for dt (to let things happen, or to see that nothing more does). */
static inline void nsos_spin(sprig_loop *loop, sprig_time dt)
{
    assert_int_equal(sprig_loop_run_until(loop, nsos_never, NULL, dt),
                     SPRIG_STATUS_DEADLINE_EXCEEDED);
}

/* Listen on or dial a sprig:// URL through this node's own backend (several nodes share the
 * loop, so the loop's URL dispatch cannot pick the node). */
static inline sprig_sock *nsos_open(sprig_ns_dgram_backend *be, const char *url, bool listen)
{
    sprig_url u;
    sprig_sock *k = NULL;
    assert_int_equal(sprig_url_parse(url, &u), SPRIG_STATUS_OK);
    sprig_status st = listen ? be->backend.listen(&be->backend, &u, SPRIG_SOCK_DGRAM, &k)
                             : be->backend.dial(&be->backend, &u, SPRIG_SOCK_DGRAM, &k);
    assert_int_equal(st, SPRIG_STATUS_OK);
    return k;
}

typedef struct nsos_wait_recv {
    sprig_sock *sock;
    uint8_t *buf;
    size_t cap, len;
    sprig_addr from;
    sprig_status st;
} nsos_wait_recv;

static inline bool nsos_got_one(void *arg)
{
    nsos_wait_recv *w = arg;
    w->st = sprig_sock_recv_from(w->sock, w->buf, w->cap, &w->len, &w->from);
    return w->st != SPRIG_STATUS_UNAVAILABLE;
}

/* Receive one datagram within 2 s; from may be NULL. */
static inline size_t nsos_recv_one(sprig_loop *loop, sprig_sock *k, uint8_t *buf, size_t cap,
                                   sprig_addr *from)
{
    nsos_wait_recv w = {.sock = k, .buf = buf, .cap = cap};
    assert_int_equal(sprig_loop_run_until(loop, nsos_got_one, &w, SPRIG_TIME_S(2)),
                     SPRIG_STATUS_OK);
    assert_int_equal(w.st, SPRIG_STATUS_OK);
    if (from != NULL) {
        *from = w.from;
    }
    return w.len;
}

#endif /* SPRIG_TESTS_NS_OS_FIXTURE_H */
