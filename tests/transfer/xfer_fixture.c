/*
 * xfer_fixture.c — see xfer_fixture.h.
 */
#include "xfer_fixture.h"

#include <string.h>

void xfer_env_init(xfer_env *e, const xfer_env_cfg *cfg)
{
    memset(e, 0, sizeof(*e));
    e->cfg = *cfg;
    assert_true(e->cfg.mem.max_message_size > 0);
    if (e->cfg.nbufs == 0) {
        e->cfg.nbufs = 64;
    }
    if (e->cfg.buf_size == 0) {
        e->cfg.buf_size = e->cfg.mem.max_message_size + SPRIG_CONFIG_SOCK_HEADROOM;
    }
    if (e->cfg.nsocks == 0) {
        e->cfg.nsocks = 4;
    }
    if (e->cfg.drive_steps == 0) {
        e->cfg.drive_steps = 100000;
    }
    assert_true(e->cfg.nbufs <= XFER_MAX_BUFS);
    assert_true(e->cfg.buf_size <= XFER_MAX_BUF_SIZE);
    assert_true(e->cfg.nsocks <= XFER_MAX_SOCKS);
    assert_true(e->cfg.nfault_bufs <= XFER_MAX_FAULT_BUFS);
    sprig_fake_clock_init(&e->fc, SPRIG_TIME_S(100));
    sprig_loop_cfg lc = {.clock = e->fc.clock};
    assert_int_equal(sprig_loop_init(&e->loop, &lc), SPRIG_STATUS_OK);
    assert_int_equal(sprig_buf_pool_init(&e->pool, e->bufs, e->mem, e->cfg.nbufs, e->cfg.buf_size),
                     SPRIG_STATUS_OK);
    if (e->cfg.nfault_bufs > 0) {
        assert_int_equal(
            sprig_buf_pool_init(&e->fpool, e->fbufs, e->fmem, e->cfg.nfault_bufs, e->cfg.buf_size),
            SPRIG_STATUS_OK);
    }
    assert_int_equal(
        sprig_mem_backend_init(&e->m, &e->loop, &e->cfg.mem, e->socks, e->cfg.nsocks, &e->pool),
        SPRIG_STATUS_OK);
}

void xfer_env_pair(xfer_env *e, sprig_sock_type type, sprig_sock **a, sprig_sock **b)
{
    *a = NULL;
    *b = NULL;
    assert_int_equal(sprig_mem_pair(&e->m, type, a, b), SPRIG_STATUS_OK);
}

void xfer_settle(xfer_env *e)
{
    for (int i = 0; i < 100000; i++) {
        sprig_loop_poll(&e->loop, e->fc.now);
        if (e->loop.tasks_head == NULL) {
            return;
        }
    }
    fail_msg("the loop never settles");
}

void xfer_drive(xfer_env *e)
{
    for (unsigned i = 0; i < e->cfg.drive_steps; i++) {
        xfer_settle(e);
        sprig_time next = sprig_loop_next_deadline(&e->loop);
        if (next == SPRIG_TIME_NEVER) {
            return;
        }
        if (next > e->fc.now) {
            sprig_fake_clock_set(&e->fc, next);
        }
    }
    fail_msg("the transfer never ends");
}

void xfer_env_idle(xfer_env *e)
{
    assert_int_equal(sprig_mem_backend_in_use(&e->m), 0);
    assert_int_equal(sprig_buf_pool_available(&e->pool), e->cfg.nbufs);
    if (e->cfg.nfault_bufs > 0) {
        assert_int_equal(sprig_buf_pool_available(&e->fpool), e->cfg.nfault_bufs);
    }
    assert_null(e->loop.timers);
}

void xfer_env_deinit(xfer_env *e)
{
    xfer_env_idle(e);
    sprig_mem_backend_deinit(&e->m);
    assert_null(e->loop.tasks_head);
    sprig_loop_deinit(&e->loop);
}

void xfer_fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

void xfer_mem_resources(sprig_transfer_mem_resource *r, size_t n, uint8_t *store, size_t cap,
                        uint32_t first_id)
{
    for (size_t i = 0; i < n; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        r[i].id = first_id + (uint32_t)i;
        r[i].data = store + i * cap;
        r[i].cap = cap;
        r[i].access = SPRIG_TRANSFER_ACCESS_READ | SPRIG_TRANSFER_ACCESS_WRITE;
    }
}

void xfer_mem_resources_idle(const sprig_transfer_mem_resource *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(r[i].busy, 0);
    }
}

sprig_transfer_cfg xfer_node_cfg(sprig_loop *loop, sprig_sock *sock,
                                 sprig_transfer_session *sessions, size_t max_sessions, uint8_t *rx,
                                 size_t rx_cap)
{
    sprig_transfer_cfg c;
    memset(&c, 0, sizeof(c));
    c.loop = loop;
    c.sock = sock;
    c.sessions = sessions;
    c.max_sessions = max_sessions;
    c.rx_buf = rx;
    c.rx_cap = rx_cap;
    return c;
}

sprig_transfer_chunk xfer_start_chunk(uint32_t session, uint32_t resource, uint32_t version,
                                      uint32_t direction)
{
    sprig_transfer_chunk c;
    memset(&c, 0, sizeof(c));
    c.fields = SPRIG_TRANSFER_F_TYPE | SPRIG_TRANSFER_F_DESIRED_SESSION_ID |
               SPRIG_TRANSFER_F_RESOURCE_ID | SPRIG_TRANSFER_F_PROTOCOL_VERSION;
    c.type = SPRIG_TRANSFER_CHUNK_START;
    c.desired_session_id = session;
    c.resource_id = resource;
    c.protocol_version = version;
    if (direction != 0) {
        c.fields |= SPRIG_TRANSFER_F_DIRECTION;
        c.direction = direction;
    }
    return c;
}
