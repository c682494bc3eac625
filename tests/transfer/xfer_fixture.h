/*
 * xfer_fixture.h — the in-memory world the transfer tests run in (library
 * sprig_testsupport_transfer, linked into every tests/transfer/test_*.c).
 *
 * One xfer_env holds a fake clock (starting at 100 s), a loop, a buffer pool and an in-memory
 * socket backend; xfer_settle and xfer_drive run it; xfer_env_deinit checks that every socket,
 * buffer, timer and task came back before taking it down. Plus the small helpers the transfer
 * tests share: pseudo-random fill, a table of sprig_transfer_mem_resource, a node config.
 * Failures are cmocka failures of the calling test. Host-only; not thread-safe.
 */
#ifndef SPRIG_TESTS_XFER_FIXTURE_H
#define SPRIG_TESTS_XFER_FIXTURE_H

#include "support.h"

#include "sprig/mem.h"
#include "sprig/transfer.h"

/* What one xfer_env can hold at the most. */
enum { XFER_MAX_BUFS = 256, XFER_MAX_FAULT_BUFS = 64, XFER_MAX_SOCKS = 8, XFER_MAX_BUF_SIZE = 640 };

typedef struct xfer_env_cfg {
    sprig_mem_cfg mem;    /* the backend's; max_message_size must be set */
    size_t nbufs;         /* buffers in the pool; 0: 64 */
    size_t buf_size;      /* bytes per buffer; 0: mem.max_message_size + SOCK_HEADROOM */
    size_t nsocks;        /* in-memory sockets; 0: 4 */
    unsigned drive_steps; /* loop turns xfer_drive allows before failing; 0: 100000 */
    size_t nfault_bufs;   /* buffers (of buf_size) in fpool, for fault wrappers; 0: no fpool */
} xfer_env_cfg;

typedef struct xfer_env {
    sprig_fake_clock fc;
    sprig_loop loop;
    sprig_buf_pool pool;
    sprig_buf_pool fpool; /* the fault wrappers' (cfg.nfault_bufs > 0) */
    sprig_mem_backend m;
    xfer_env_cfg cfg; /* with the defaults filled in */
    sprig_buf bufs[XFER_MAX_BUFS];
    sprig_buf fbufs[XFER_MAX_FAULT_BUFS];
    sprig_mem_sock socks[XFER_MAX_SOCKS];
    uint8_t mem[XFER_MAX_BUFS * XFER_MAX_BUF_SIZE] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
    uint8_t fmem[XFER_MAX_FAULT_BUFS * XFER_MAX_BUF_SIZE]
        __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
} xfer_env;

/* Zero *e and bring up the clock, loop, pool (and fpool) and backend as cfg says. */
void xfer_env_init(xfer_env *e, const xfer_env_cfg *cfg);

/* A connected pair of `type` (SEQPACKET or DGRAM) sockets on e's backend. */
void xfer_env_pair(xfer_env *e, sprig_sock_type type, sprig_sock **a, sprig_sock **b);

/* Run deferred work without moving time; fails the test if the loop never settles. */
void xfer_settle(xfer_env *e);

/* Run until nothing is scheduled, jumping the clock to each timer; fails the test if that takes
 * more than cfg.drive_steps turns. */
void xfer_drive(xfer_env *e);

/* Check that every socket and buffer (fpool's too) is back and no timer is pending. */
void xfer_env_idle(xfer_env *e);

/* xfer_env_idle, deinit the backend, check that no task is left, deinit the loop. Call after the
 * last xfer_settle. */
void xfer_env_deinit(xfer_env *e);

/* n pseudo-random bytes from seed (the same seed gives the same bytes). */
void xfer_fill(uint8_t *p, size_t n, uint32_t seed);

/* n readable and writable empty resources with ids first_id, first_id + 1, ..., each over cap
 * bytes of store (resource i at store + i * cap). */
void xfer_mem_resources(sprig_transfer_mem_resource *r, size_t n, uint8_t *store, size_t cap,
                        uint32_t first_id);

/* Check that none of the n resources is busy. */
void xfer_mem_resources_idle(const sprig_transfer_mem_resource *r, size_t n);

/* A node config: loop, sock, sessions, rx buffer; the rest zero (callbacks, handler). */
sprig_transfer_cfg xfer_node_cfg(sprig_loop *loop, sprig_sock *sock,
                                 sprig_transfer_session *sessions, size_t max_sessions, uint8_t *rx,
                                 size_t rx_cap);

/* A START for desired session `session` on resource `resource` in protocol `version`, with a
 * direction field unless `direction` is 0. */
sprig_transfer_chunk xfer_start_chunk(uint32_t session, uint32_t resource, uint32_t version,
                                      uint32_t direction);

#endif /* SPRIG_TESTS_XFER_FIXTURE_H */
