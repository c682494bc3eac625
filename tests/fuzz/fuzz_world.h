/*
 * fuzz_world.h — the in-memory world the transfer fuzz targets share: a fake clock, a loop, a
 * buffer pool and an in-memory socket backend, a scripted peer socket that reads and drops what
 * it gets, a table of mem resources, the record script the targets read their input as, and the
 * teardown that aborts unless every socket, buffer, timer and resource came back.
 *
 * Header-only (static inline) because each fuzz target is one file (tests/fuzz/CMakeLists.txt).
 * Every failure aborts: a fuzz target has no other way to report one.
 */
#ifndef SPRIG_TESTS_FUZZ_WORLD_H
#define SPRIG_TESTS_FUZZ_WORLD_H

#include <stdbool.h>
#include <stdlib.h>

#include "sprig/mem.h"
#include "sprig/transfer.h"

enum {
    FUZZ_WORLD_NBUFS = 24,
    FUZZ_WORLD_MAX_MSG = 304, /* the largest max_message_size a world takes */
    FUZZ_WORLD_NSOCKS = 3,
    FUZZ_WORLD_MAX_RES = 4,
    FUZZ_WORLD_RES_LEN = 1000, /* bytes of storage per resource */
};
#define FUZZ_WORLD_BUF_SIZE (FUZZ_WORLD_MAX_MSG + SPRIG_CONFIG_SOCK_HEADROOM)

typedef struct fuzz_world {
    sprig_fake_clock fc;
    sprig_loop loop;
    sprig_buf_pool pool;
    sprig_buf bufs[FUZZ_WORLD_NBUFS];
    uint8_t mem[FUZZ_WORLD_NBUFS * FUZZ_WORLD_BUF_SIZE]
        __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
    sprig_mem_sock socks[FUZZ_WORLD_NSOCKS];
    sprig_mem_backend m;
    sprig_sock *peer; /* the end the script speaks from */
    bool peer_reads;  /* the peer reads (and drops) what it gets; false: its sends stall */
    sprig_transfer_mem_handler h;
    sprig_transfer_mem_resource res[FUZZ_WORLD_MAX_RES];
    uint8_t store[FUZZ_WORLD_MAX_RES][FUZZ_WORLD_RES_LEN];
    size_t nres;
} fuzz_world;

static inline void fuzz_world_check(bool ok)
{
    if (!ok) {
        abort();
    }
}

/* Read and drop what arrived, unless the world's peer_reads is off (user: the fuzz_world). */
static inline void fuzz_world_drain(sprig_sock *s, sprig_sock_event ev, sprig_status st, void *user)
{
    const fuzz_world *w = user;
    (void)st;
    if (ev == SPRIG_SOCK_EV_READABLE && w->peer_reads) {
        uint8_t buf[FUZZ_WORLD_MAX_MSG];
        size_t n = 0;
        while (sprig_sock_recv(s, buf, sizeof(buf), &n) == SPRIG_STATUS_OK) {
        }
    }
}

/* Clock at 1 s, loop, pool and backend (mc->max_message_size <= FUZZ_WORLD_MAX_MSG). */
static inline void fuzz_world_init(fuzz_world *w, const sprig_mem_cfg *mc)
{
    fuzz_world_check(mc->max_message_size <= FUZZ_WORLD_MAX_MSG);
    sprig_fake_clock_init(&w->fc, SPRIG_TIME_S(1));
    sprig_loop_cfg lc = {.clock = w->fc.clock};
    fuzz_world_check(sprig_loop_init(&w->loop, &lc) == SPRIG_STATUS_OK);
    fuzz_world_check(sprig_buf_pool_init(&w->pool, w->bufs, w->mem, FUZZ_WORLD_NBUFS,
                                         mc->max_message_size + SPRIG_CONFIG_SOCK_HEADROOM) ==
                     SPRIG_STATUS_OK);
    fuzz_world_check(sprig_mem_backend_init(&w->m, &w->loop, mc, w->socks, FUZZ_WORLD_NSOCKS,
                                            &w->pool) == SPRIG_STATUS_OK);
    w->peer_reads = true;
}

/* A pair of `type` sockets: *a for the code under test, w->peer (drained) for the script. */
static inline void fuzz_world_pair(fuzz_world *w, sprig_sock_type type, sprig_sock **a)
{
    fuzz_world_check(sprig_mem_pair(&w->m, type, a, &w->peer) == SPRIG_STATUS_OK);
    sprig_sock_set_callback(w->peer, fuzz_world_drain, w);
}

/* n resources with ids 1..n and the given access; the readable ones start full. */
static inline void fuzz_world_resources(fuzz_world *w, const uint8_t *access, size_t n)
{
    fuzz_world_check(n <= FUZZ_WORLD_MAX_RES);
    for (size_t i = 0; i < n; i++) {
        w->res[i].id = (uint32_t)i + 1;
        w->res[i].data = w->store[i];
        w->res[i].cap = FUZZ_WORLD_RES_LEN;
        w->res[i].len = (access[i] & SPRIG_TRANSFER_ACCESS_READ) ? FUZZ_WORLD_RES_LEN : 0;
        w->res[i].access = access[i];
    }
    w->nres = n;
    sprig_transfer_mem_handler_init(&w->h, w->res, n);
}

/* The peer sends the bytes as they are (when they fit in a message). */
static inline void fuzz_world_send_raw(fuzz_world *w, const uint8_t *bytes, size_t len)
{
    if (len <= FUZZ_WORLD_MAX_MSG) {
        (void)sprig_sock_send(w->peer, bytes, len, NULL);
    }
}

/* Run deferred work without moving time (at most 1000 turns: a fuzz input may loop). */
static inline void fuzz_world_settle(fuzz_world *w)
{
    for (int i = 0; i < 1000; i++) {
        sprig_loop_poll(&w->loop, w->fc.now);
        if (w->loop.tasks_head == NULL) {
            return;
        }
    }
}

/* The peer starts or stops reading (starting, it reads what is waiting). */
static inline void fuzz_world_peer_reads(fuzz_world *w, bool on)
{
    w->peer_reads = on;
    if (on) {
        fuzz_world_drain(w->peer, SPRIG_SOCK_EV_READABLE, SPRIG_STATUS_OK, w);
    }
}

/* Let every timer run out (at most 200 of them). */
static inline void fuzz_world_run_out(fuzz_world *w)
{
    for (int i = 0; i < 200 && sprig_loop_next_deadline(&w->loop) != SPRIG_TIME_NEVER; i++) {
        sprig_fake_clock_set(&w->fc, sprig_loop_next_deadline(&w->loop));
        fuzz_world_settle(w);
    }
}

/* Abort unless every socket, buffer, timer and resource is back; then deinit backend and loop.
 * Call once the code under test is deinitialised and the peer closed and settled. */
static inline void fuzz_world_deinit(fuzz_world *w)
{
    fuzz_world_check(sprig_mem_backend_in_use(&w->m) == 0 &&
                     sprig_buf_pool_available(&w->pool) == FUZZ_WORLD_NBUFS &&
                     w->loop.timers == NULL);
    for (size_t i = 0; i < w->nres; i++) {
        fuzz_world_check(!w->res[i].busy);
    }
    sprig_mem_backend_deinit(&w->m);
    sprig_loop_deinit(&w->loop);
}

/* The input as a script of records [op][len lo][len hi][len bytes]. */
typedef struct fuzz_script {
    const uint8_t *data;
    size_t size, at;
} fuzz_script;

/* The next record (len cut to what is left); false when fewer than 3 bytes are left. */
static inline bool fuzz_script_next(fuzz_script *s, uint8_t *op, const uint8_t **bytes, size_t *len)
{
    if (s->size - s->at < 3) {
        return false;
    }
    *op = s->data[s->at];
    size_t n = (size_t)s->data[s->at + 1] | ((size_t)s->data[s->at + 2] << 8);
    s->at += 3;
    if (n > s->size - s->at) {
        n = s->size - s->at;
    }
    *bytes = s->data + s->at;
    *len = n;
    s->at += n;
    return true;
}

#endif /* SPRIG_TESTS_FUZZ_WORLD_H */
