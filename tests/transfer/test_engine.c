/*
 * The transfer engine over an in-memory SEQPACKET pair with a fake clock: a client node and a
 * server node (or a scripted raw peer), reads and writes of many sizes, byte-exact; refusals,
 * handler failures, timeouts, cancellation, checksum mismatch, pacing. Every teardown checks
 * that sockets, buffers, timers and sessions all came back.
 */
#include "support.h"
#include "xfer_fixture.h"

#include <string.h>

#include "sprig/fault.h"
#include "sprig/mem.h"
#include "sprig/transfer.h"

enum { MAX_MSG = 256, NSESS = 4, NRES = 6, RES_CAP = 12000 };
enum { MAX_GOT = 64, MAX_IDS = 32 };
#define MAX_CHUNK (MAX_MSG - SPRIG_TRANSFER_DATA_OVERHEAD)
#define LOCAL     100u /* local resource ids are LOCAL + 1.. */

typedef struct result {
    unsigned ndone;
    sprig_status status;
    uint64_t progress; /* last progress `done` */
    unsigned nprogress;
    uint64_t total;
} result;

typedef struct got_chunk {
    sprig_transfer_chunk c;
    uint8_t data[MAX_MSG];
} got_chunk;

typedef void (*raw_fn)(const sprig_transfer_chunk *c);

typedef struct fixture {
    xfer_env env;  /* clock, loop, buffers, in-memory sockets */
    sprig_sock *b; /* raw peer's socket (when there is no server node) */
    sprig_transfer_node cn, sn;
    bool sn_up;
    sprig_transfer_session csess[NSESS], ssess[NSESS];
    uint8_t crx[MAX_MSG], srx[MAX_MSG];
    sprig_transfer_mem_handler ch, sh;
    sprig_transfer_mem_resource cres[NRES], sres[NRES];
    uint8_t cstore[NRES][RES_CAP], sstore[NRES][RES_CAP];
    uint8_t expect[RES_CAP];
    result cr[MAX_IDS], sr[MAX_IDS];
    /* cancel a transfer from a progress callback once `done` reaches cancel_at */
    uint64_t cancel_at;
    int cancel_side; /* 0: nobody, 1: the client, 2: the server */
    /* raw peer */
    got_chunk got[MAX_GOT];
    size_t ngot;
    raw_fn raw;
    /* the server's socket behind a (fault-free) fault wrapper, which has no gather op */
    bool wrap_server;
    sprig_fault_sock fsock;
} fixture;

static fixture F;

static result *res_of(sprig_transfer_node *node, uint32_t id)
{
    assert_true(id < MAX_IDS);
    return node == &F.cn ? &F.cr[id] : &F.sr[id];
}

static void on_done(sprig_transfer_node *node, uint32_t id, sprig_status status, void *user)
{
    (void)user;
    result *r = res_of(node, id);
    r->ndone++;
    r->status = status;
}

static void on_progress(sprig_transfer_node *node, uint32_t id, uint64_t done, uint64_t total,
                        void *user)
{
    (void)user;
    result *r = res_of(node, id);
    assert_true(done >= r->progress);
    r->progress = done;
    r->total = total;
    r->nprogress++;
    if (F.cancel_at != 0 && done >= F.cancel_at) {
        if ((F.cancel_side == 1 && node == &F.cn) || (F.cancel_side == 2 && node == &F.sn)) {
            F.cancel_at = 0;
            assert_int_equal(sprig_transfer_cancel(node, id), SPRIG_STATUS_OK);
            assert_int_equal(sprig_transfer_cancel(node, id), SPRIG_STATUS_FAILED_PRECONDITION);
        }
    }
}

static void node_cfg(sprig_transfer_cfg *c, sprig_sock *sock, sprig_transfer_session *sess,
                     uint8_t *rx)
{
    *c = xfer_node_cfg(&F.env.loop, sock, sess, NSESS, rx, MAX_MSG);
    c->on_progress = on_progress;
    c->on_done = on_done;
}

static void raw_event(sprig_sock *s, sprig_sock_event ev, sprig_status st, void *user)
{
    (void)st;
    (void)user;
    if (ev != SPRIG_SOCK_EV_READABLE) {
        return;
    }
    uint8_t buf[MAX_MSG];
    size_t n = 0;
    while (sprig_sock_recv(s, buf, sizeof(buf), &n) == SPRIG_STATUS_OK) {
        assert_true(F.ngot < MAX_GOT);
        got_chunk *g = &F.got[F.ngot++];
        assert_int_equal(sprig_transfer_chunk_decode(buf, n, &g->c), SPRIG_STATUS_OK);
        if (g->c.data_len > 0) {
            memcpy(g->data, g->c.data, g->c.data_len);
        }
        g->c.data = g->data;
        if (F.raw != NULL) {
            F.raw(&g->c);
        }
    }
}

static void raw_send(const sprig_transfer_chunk *c)
{
    uint8_t out[MAX_MSG];
    size_t n = 0;
    assert_int_equal(sprig_transfer_chunk_encode(c, out, sizeof(out), &n), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_send(F.b, out, n, NULL), SPRIG_STATUS_OK);
}

/* cfg_tweak may adjust the client's (and the server's) config before init. */
static int setup_with(bool raw_peer, void (*tweak)(sprig_transfer_cfg *c, bool server))
{
    bool wrap = F.wrap_server;
    memset(&F, 0, sizeof(F));
    xfer_env_cfg ec = {.mem = {.max_message_size = MAX_MSG}};
    xfer_env_init(&F.env, &ec);
    sprig_sock *a;
    sprig_sock *b;
    xfer_env_pair(&F.env, SPRIG_SOCK_SEQPACKET, &a, &b);
    xfer_mem_resources(F.cres, NRES, &F.cstore[0][0], RES_CAP, LOCAL + 1);
    xfer_mem_resources(F.sres, NRES, &F.sstore[0][0], RES_CAP, 1);
    sprig_transfer_mem_handler_init(&F.ch, F.cres, NRES);
    sprig_transfer_mem_handler_init(&F.sh, F.sres, NRES);
    sprig_transfer_cfg c;
    node_cfg(&c, a, F.csess, F.crx);
    if (tweak != NULL) {
        tweak(&c, false);
    }
    assert_int_equal(sprig_transfer_init(&F.cn, &c), SPRIG_STATUS_OK);
    if (raw_peer) {
        F.b = b;
        sprig_sock_set_callback(b, raw_event, NULL);
    } else {
        if (wrap) {
            sprig_fault_cfg fc = {.seed = 1};
            assert_int_equal(sprig_fault_init(&F.fsock, b, &fc, &F.env.pool), SPRIG_STATUS_OK);
            b = &F.fsock.sock;
            assert_false(sprig_sock_gathers(b));
        }
        node_cfg(&c, b, F.ssess, F.srx);
        c.handler = &F.sh.handler;
        if (tweak != NULL) {
            tweak(&c, true);
        }
        assert_int_equal(sprig_transfer_init(&F.sn, &c), SPRIG_STATUS_OK);
        F.sn_up = true;
    }
    xfer_settle(&F.env);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    return setup_with(false, NULL);
}

static int setup_wrapped_server(void **state)
{
    (void)state;
    F.wrap_server = true;
    return setup_with(false, NULL);
}

static int setup_raw(void **state)
{
    (void)state;
    return setup_with(true, NULL);
}

static int teardown(void **state)
{
    (void)state;
    xfer_settle(&F.env);
    assert_int_equal(sprig_transfer_active(&F.cn), 0);
    sprig_transfer_deinit(&F.cn);
    sprig_transfer_deinit(&F.cn); /* idempotent */
    if (F.sn_up) {
        assert_int_equal(sprig_transfer_active(&F.sn), 0);
        sprig_transfer_deinit(&F.sn);
    }
    if (F.b != NULL) {
        sprig_sock_close(F.b);
    }
    xfer_settle(&F.env);
    xfer_mem_resources_idle(F.cres, NRES);
    xfer_mem_resources_idle(F.sres, NRES);
    xfer_env_deinit(&F.env);
    return 0;
}

static sprig_transfer_opts opts(uint32_t remote, uint32_t local)
{
    sprig_transfer_opts o = {0};
    o.resource_id = remote;
    o.local = &F.ch.handler;
    o.local_id = LOCAL + local;
    o.progress = on_progress;
    o.done = on_done;
    return o;
}

static uint32_t do_read(uint32_t remote, uint32_t local)
{
    sprig_transfer_opts o = opts(remote, local);
    uint32_t id = 0;
    assert_int_equal(sprig_transfer_read(&F.cn, &o, &id), SPRIG_STATUS_OK);
    assert_true(id != 0);
    return id;
}

static uint32_t do_write(uint32_t remote, uint32_t local)
{
    sprig_transfer_opts o = opts(remote, local);
    uint32_t id = 0;
    assert_int_equal(sprig_transfer_write(&F.cn, &o, &id), SPRIG_STATUS_OK);
    assert_true(id != 0);
    return id;
}

/* ---- reads and writes of many sizes ---------------------------------------------------------- */

static const size_t sizes[] = {
    0, 1, MAX_CHUNK - 1, MAX_CHUNK, MAX_CHUNK + 1, 4 * MAX_CHUNK, 4 * MAX_CHUNK + 3, RES_CAP};

static void test_engine_read_sizes(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t n = sizes[k];
        xfer_fill(F.sstore[0], n, (uint32_t)k + 1);
        F.sres[0].len = n;
        F.cres[0].len = 0;
        memset(F.cstore[0], 0xEE, RES_CAP);
        uint32_t id = do_read(1, 1);
        xfer_drive(&F.env);
        result *r = &F.cr[id];
        assert_int_equal(r->ndone, 1);
        assert_int_equal(r->status, SPRIG_STATUS_OK);
        assert_int_equal(F.cres[0].len, n);
        assert_memory_equal(F.cstore[0], F.sstore[0], n);
        assert_true(r->progress == n);
        assert_true(r->total == n);
        assert_int_equal(F.sr[id].ndone, 1);
        assert_int_equal(F.sr[id].status, SPRIG_STATUS_OK);
        assert_true(F.sr[id].progress == n);
        assert_int_equal(sprig_transfer_active(&F.cn), 0);
        assert_int_equal(sprig_transfer_active(&F.sn), 0);
    }
    assert_int_equal(F.cn.stats.retransmits, 0);
    assert_int_equal(F.sn.stats.retransmits, 0);
    assert_int_equal(F.cn.stats.dropped + F.sn.stats.dropped, 0);
}

static void test_engine_write_sizes(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t n = sizes[k];
        xfer_fill(F.cstore[1], n, (uint32_t)k + 7);
        F.cres[1].len = n;
        F.sres[2].len = 5; /* old content, replaced */
        uint32_t id = do_write(3, 2);
        xfer_drive(&F.env);
        assert_int_equal(F.cr[id].ndone, 1);
        assert_int_equal(F.cr[id].status, SPRIG_STATUS_OK);
        assert_int_equal(F.sr[id].ndone, 1);
        assert_int_equal(F.sr[id].status, SPRIG_STATUS_OK);
        assert_int_equal(F.sres[2].len, n);
        assert_memory_equal(F.sstore[2], F.cstore[1], n);
        assert_true(F.cr[id].progress == n);
    }
    assert_int_equal(F.cn.stats.retransmits + F.sn.stats.retransmits, 0);
}

/* Many windows: the receiver grows its window with PARAMETERS_CONTINUE as it is consumed. */
static void test_engine_window_sizes(sprig_transfer_cfg *c, bool server)
{
    (void)server;
    c->window_chunks = 2;
    c->max_chunk = 100;
}

static int setup_small_window(void **state)
{
    (void)state;
    return setup_with(false, test_engine_window_sizes);
}

static void test_engine_many_windows(void **state)
{
    (void)state;
    xfer_fill(F.sstore[0], 5000, 99);
    F.sres[0].len = 5000;
    uint32_t id = do_read(1, 1);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_OK);
    assert_int_equal(F.cres[0].len, 5000);
    assert_memory_equal(F.cstore[0], F.sstore[0], 5000);
    assert_int_equal(F.cr[id].nprogress, 50); /* 100-byte chunks */
    xfer_fill(F.cstore[1], 4321, 5);
    F.cres[1].len = 4321;
    id = do_write(2, 2);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_OK);
    assert_int_equal(F.sres[1].len, 4321);
    assert_memory_equal(F.sstore[1], F.cstore[1], 4321);
}

/* ---- refusals -------------------------------------------------------------------------------- */

static void test_engine_unknown_resource(void **state)
{
    (void)state;
    uint32_t id = do_read(77, 1);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].ndone, 1);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_NOT_FOUND);
    assert_int_equal(F.sr[id].ndone, 0); /* never became a session */
    assert_int_equal(F.sn.stats.refused, 1);
    id = do_write(78, 2);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_NOT_FOUND);
}

static void test_engine_permission_denied(void **state)
{
    (void)state;
    F.sres[0].access = SPRIG_TRANSFER_ACCESS_READ;
    F.sres[0].len = 10;
    F.sres[1].access = SPRIG_TRANSFER_ACCESS_WRITE;
    F.cres[1].len = 10;
    uint32_t id = do_write(1, 2);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_PERMISSION_DENIED);
    assert_int_equal(F.sres[0].len, 10);
    id = do_read(2, 1);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_PERMISSION_DENIED);
    /* the local side refuses too: at start, before anything is sent */
    F.cres[2].access = 0;
    sprig_transfer_opts o = opts(1, 3);
    uint32_t id2 = 0;
    assert_int_equal(sprig_transfer_read(&F.cn, &o, &id2), SPRIG_STATUS_PERMISSION_DENIED);
    o.local_id = 999;
    assert_int_equal(sprig_transfer_write(&F.cn, &o, &id2), SPRIG_STATUS_NOT_FOUND);
    assert_int_equal(sprig_transfer_active(&F.cn), 0);
}

static void test_engine_no_free_session(void **state)
{
    (void)state;
    uint32_t ids[NSESS];
    for (size_t i = 0; i < NSESS; i++) {
        F.sres[i].len = 100;
        ids[i] = do_read((uint32_t)i + 1, (uint32_t)i + 1);
    }
    sprig_transfer_opts o = opts(5, 5);
    uint32_t extra = 0;
    assert_int_equal(sprig_transfer_read(&F.cn, &o, &extra), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    xfer_drive(&F.env);
    for (size_t i = 0; i < NSESS; i++) {
        assert_int_equal(F.cr[ids[i]].status, SPRIG_STATUS_OK);
    }
}

static void one_server_session(sprig_transfer_cfg *c, bool server)
{
    if (server) {
        c->max_sessions = 1;
    }
}

static int setup_one_server_session(void **state)
{
    (void)state;
    return setup_with(false, one_server_session);
}

static void test_engine_server_pool_full(void **state)
{
    (void)state;
    F.sres[0].len = 3000;
    F.sres[1].len = 3000;
    uint32_t a = do_read(1, 1);
    uint32_t b = do_read(2, 2);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[a].status, SPRIG_STATUS_OK);
    assert_int_equal(F.cr[b].status, SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(F.sn.stats.refused, 1);
    /* and the slot is reusable afterwards */
    b = do_read(2, 2);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[b].status, SPRIG_STATUS_OK);
    assert_memory_equal(F.cstore[1], F.sstore[1], 3000);
}

static void test_engine_initial_offset(void **state)
{
    (void)state;
    xfer_fill(F.sstore[0], 1000, 3);
    F.sres[0].len = 1000;
    memcpy(F.cstore[0], F.sstore[0], 400); /* we have the first 400 bytes already */
    F.cres[0].len = 400;
    sprig_transfer_opts o = opts(1, 1);
    o.initial_offset = 400;
    uint32_t id = 0;
    assert_int_equal(sprig_transfer_read(&F.cn, &o, &id), SPRIG_STATUS_OK);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_OK);
    assert_int_equal(F.cres[0].len, 1000);
    assert_memory_equal(F.cstore[0], F.sstore[0], 1000);
    assert_true(F.cr[id].progress == 600);
    assert_true(F.sr[id].progress == 600); /* no byte before the offset sent again */
    /* the server cannot start beyond its content: UNIMPLEMENTED */
    o.initial_offset = 2000;
    F.cres[0].len = 2000;
    assert_int_equal(sprig_transfer_read(&F.cn, &o, &id), SPRIG_STATUS_OK);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_UNIMPLEMENTED);
}

/* ---- failures -------------------------------------------------------------------------------- */

static void test_engine_handler_fails_mid_write(void **state)
{
    (void)state;
    xfer_fill(F.cstore[0], 3000, 11);
    F.cres[0].len = 3000;
    F.sres[0].len = 7;
    F.sres[0].fail_at = 1500;
    uint32_t id = do_write(1, 1);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_DATA_LOSS);
    assert_int_equal(F.sr[id].status, SPRIG_STATUS_DATA_LOSS);
    assert_int_equal(F.sres[0].len, 7); /* nothing claimed written */
    /* a read whose local side fails the same way */
    F.sres[1].len = 3000;
    F.cres[1].fail_at = 1000;
    id = do_read(2, 2);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_DATA_LOSS);
    assert_int_equal(F.sr[id].status, SPRIG_STATUS_DATA_LOSS);
    assert_int_equal(F.cres[1].len, 0);
}

/* ---- the handler's lend op (zero-copy send) ---------------------------------------------------
 */

/* The mem handler's ops with read and lend counted, lend optionally absent or misbehaving. */
static const sprig_transfer_handler_ops *inner_ops;
static sprig_transfer_handler_ops wrapped_ops;
static unsigned nlend, nread;
static enum { LEND_PASS, LEND_FAIL, LEND_OVERRUN } lend_mode;

static sprig_status counting_read(void *ctx, void *handle, uint64_t offset, uint8_t *buf,
                                  size_t cap, size_t *out_len)
{
    nread++;
    return inner_ops->read(ctx, handle, offset, buf, cap, out_len);
}

static sprig_status counting_lend(void *ctx, void *handle, uint64_t offset, size_t len,
                                  const uint8_t **ptr, size_t *avail)
{
    nlend++;
    if (lend_mode == LEND_FAIL && offset > 0) {
        return SPRIG_STATUS_INTERNAL;
    }
    sprig_status st = inner_ops->lend(ctx, handle, offset, len, ptr, avail);
    if (lend_mode == LEND_OVERRUN && offset > 0) {
        *avail = len + 1;
    }
    return st;
}

static void wrap_handler(sprig_transfer_mem_handler *h, bool lend)
{
    inner_ops = h->handler.ops;
    assert_non_null(inner_ops->lend); /* the mem handler lends */
    wrapped_ops = *inner_ops;
    wrapped_ops.read = counting_read;
    wrapped_ops.lend = lend ? counting_lend : NULL;
    h->handler.ops = &wrapped_ops;
    nlend = nread = 0;
    lend_mode = LEND_PASS;
}

/* The client reads n bytes (from seed) of the server's resource 1 into its own resource 1 and
 * ends OK with them, byte-exact; returns the transfer's id. */
static uint32_t read_exact(size_t n, uint32_t seed)
{
    xfer_fill(F.sstore[0], n, seed);
    F.sres[0].len = n;
    uint32_t id = do_read(1, 1);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_OK);
    assert_int_equal(F.cres[0].len, n);
    assert_memory_equal(F.cstore[0], F.sstore[0], n);
    return id;
}

/* On SEQPACKET a handler that lends is never asked to read: every DATA chunk goes out around the
 * lent bytes, byte-exact, in both roles. */
static void test_engine_lend_used(void **state)
{
    (void)state;
    const size_t n = 4 * MAX_CHUNK + 3;
    wrap_handler(&F.sh, true);
    read_exact(n, 41);
    assert_int_equal(nlend, 5);
    assert_int_equal(nread, 0);
    wrap_handler(&F.ch, true); /* the client sends */
    xfer_fill(F.cstore[1], n, 42);
    F.cres[1].len = n;
    uint32_t id = do_write(3, 2);
    xfer_drive(&F.env);
    assert_int_equal(F.sr[id].status, SPRIG_STATUS_OK);
    assert_int_equal(F.sres[2].len, n);
    assert_memory_equal(F.sstore[2], F.cstore[1], n);
    assert_int_equal(nlend, 5);
    assert_int_equal(nread, 0);
}

/* A handler without lend is read from, as before: the sizes grid again, both directions. */
static void test_engine_without_lend(void **state)
{
    wrap_handler(&F.ch, false);
    test_engine_write_sizes(state);
    unsigned reads = nread;
    wrap_handler(&F.sh, false);
    test_engine_read_sizes(state);
    assert_true(reads > 0 && nread > 0);
    assert_int_equal(nlend, 0);
}

/* A socket without a message gather (here the fault wrapper; TCP's framing is another) makes
 * the engine read, even from a handler that lends. */
static void test_engine_lend_needs_gather(void **state)
{
    (void)state;
    const size_t n = 4 * MAX_CHUNK + 3;
    assert_true(sprig_sock_gathers(F.cn.cfg.sock)); /* mem gathers */
    wrap_handler(&F.sh, true);
    uint32_t id = read_exact(n, 44);
    assert_int_equal(F.sr[id].status, SPRIG_STATUS_OK);
    assert_int_equal(nlend, 0);
    assert_int_equal(nread, 5);
}

/* lend failing, or claiming more than asked, ends the transfer with DATA_LOSS on both sides. */
static void test_engine_lend_fails(void **state)
{
    (void)state;
    wrap_handler(&F.sh, true);
    for (int mode = LEND_FAIL; mode <= LEND_OVERRUN; mode++) {
        lend_mode = mode;
        xfer_fill(F.sstore[0], 3000, 43);
        F.sres[0].len = 3000;
        F.cres[0].len = 0;
        uint32_t id = do_read(1, 1);
        xfer_drive(&F.env);
        assert_int_equal(F.cr[id].status, SPRIG_STATUS_DATA_LOSS);
        assert_int_equal(F.sr[id].status, SPRIG_STATUS_DATA_LOSS);
        assert_int_equal(F.cres[0].len, 0); /* nothing claimed written */
    }
    assert_int_equal(nread, 0);
}

static void test_engine_concurrent(void **state)
{
    (void)state;
    uint32_t ids[NSESS];
    for (size_t i = 0; i < NSESS; i++) {
        size_t n = 2000 + 517 * i;
        if (i % 2 == 0) {
            xfer_fill(F.sstore[i], n, (uint32_t)i);
            F.sres[i].len = n;
            ids[i] = do_read((uint32_t)i + 1, (uint32_t)i + 1);
        } else {
            xfer_fill(F.cstore[i], n, (uint32_t)i);
            F.cres[i].len = n;
            ids[i] = do_write((uint32_t)i + 1, (uint32_t)i + 1);
        }
    }
    xfer_drive(&F.env);
    for (size_t i = 0; i < NSESS; i++) {
        size_t n = 2000 + 517 * i;
        assert_int_equal(F.cr[ids[i]].status, SPRIG_STATUS_OK);
        assert_int_equal(F.sr[ids[i]].status, SPRIG_STATUS_OK);
        assert_int_equal(F.cres[i].len, n);
        assert_int_equal(F.sres[i].len, n);
        assert_memory_equal(F.cstore[i], F.sstore[i], n);
    }
}

/* A server handler whose commit fails: the mem handler underneath, but close(OK) discards and
 * reports an error, as a flash write that fails its verification would. */
static sprig_status failing_close(void *ctx, void *handle, sprig_status status)
{
    const sprig_transfer_handler *inner = &((sprig_transfer_mem_handler *)ctx)->handler;
    (void)inner->ops->close(inner->ctx, handle, SPRIG_STATUS_DATA_LOSS);
    return status == SPRIG_STATUS_OK ? SPRIG_STATUS_INTERNAL : SPRIG_STATUS_OK;
}

static sprig_transfer_handler_ops failing_ops;
static sprig_transfer_handler failing_handler;

static void commit_fails(sprig_transfer_cfg *c, bool server)
{
    if (server) {
        failing_ops = *F.sh.handler.ops;
        failing_ops.close = failing_close;
        failing_handler.ops = &failing_ops;
        failing_handler.ctx = &F.sh;
        c->handler = &failing_handler;
    }
}

static int setup_commit_fails(void **state)
{
    (void)state;
    return setup_with(false, commit_fails);
}

static void test_engine_commit_failure_is_data_loss(void **state)
{
    (void)state;
    xfer_fill(F.cstore[0], 700, 2);
    F.cres[0].len = 700;
    F.sres[0].len = 9;
    uint32_t id = do_write(1, 1);
    xfer_drive(&F.env);
    assert_int_equal(F.sr[id].status, SPRIG_STATUS_DATA_LOSS);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_DATA_LOSS);
    assert_int_equal(F.sres[0].len, 9);
}

static void test_engine_cancel_by_client(void **state)
{
    (void)state;
    F.sres[0].len = RES_CAP;
    F.cancel_at = 1000;
    F.cancel_side = 1;
    uint32_t id = do_read(1, 1);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].ndone, 1);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_CANCELLED);
    assert_int_equal(F.sr[id].status, SPRIG_STATUS_CANCELLED);
    assert_int_equal(F.cres[0].len, 0);
    assert_int_equal(sprig_transfer_cancel(&F.cn, id), SPRIG_STATUS_NOT_FOUND);
}

static void test_engine_cancel_by_server(void **state)
{
    (void)state;
    F.cres[0].len = RES_CAP;
    F.sres[0].len = 3;
    F.cancel_at = 2000;
    F.cancel_side = 2;
    uint32_t id = do_write(1, 1);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_CANCELLED);
    assert_int_equal(F.sr[id].status, SPRIG_STATUS_CANCELLED);
    assert_int_equal(F.sres[0].len, 3); /* the upload was discarded */
}

static void test_engine_deinit_cancels(void **state)
{
    (void)state;
    F.sres[0].len = 500;
    uint32_t id = do_read(1, 1);
    sprig_loop_poll(&F.env.loop, F.env.fc.now); /* one pass: the handshake is under way */
    assert_int_equal(sprig_transfer_active(&F.sn), 1);
    sprig_transfer_deinit(&F.cn);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_CANCELLED);
    xfer_drive(&F.env); /* the server sees its socket close */
    assert_int_equal(F.sr[id].ndone, 1);
    assert_int_equal(F.sr[id].status, SPRIG_STATUS_ABORTED);
}

/* ---- against a scripted peer ----------------------------------------------------------------- */

static size_t count_type(uint32_t type)
{
    size_t k = 0;
    for (size_t i = 0; i < F.ngot; i++) {
        k += F.got[i].c.type == type;
    }
    return k;
}

static void test_engine_peer_silent_handshake(void **state)
{
    (void)state;
    sprig_time t0 = F.env.fc.now;
    uint32_t id = do_read(1, 1);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_DEADLINE_EXCEEDED);
    assert_int_equal(count_type(SPRIG_TRANSFER_CHUNK_START), 4); /* first + 3 retries */
    assert_true(F.env.fc.now - t0 == SPRIG_TIME_S(8));           /* 4 timeouts of 2 s */
    assert_int_equal(count_type(SPRIG_TRANSFER_CHUNK_COMPLETION), 1);
    const sprig_transfer_chunk *first = &F.got[0].c;
    assert_int_equal(first->desired_session_id, id);
    assert_int_equal(first->protocol_version, 2);
    assert_int_equal(first->direction, SPRIG_TRANSFER_DIR_READ);
    assert_int_equal(first->max_chunk_size_bytes, MAX_CHUNK);
    assert_int_equal(first->window_end_offset, 4 * MAX_CHUNK);
}

/* Answers START with START_ACK, then goes quiet. */
static void ack_then_silence(const sprig_transfer_chunk *c)
{
    if (c->type == SPRIG_TRANSFER_CHUNK_START) {
        sprig_transfer_chunk r = {0};
        r.fields = SPRIG_TRANSFER_F_TYPE | SPRIG_TRANSFER_F_SESSION_ID |
                   SPRIG_TRANSFER_F_RESOURCE_ID | SPRIG_TRANSFER_F_PROTOCOL_VERSION;
        r.type = SPRIG_TRANSFER_CHUNK_START_ACK;
        r.session_id = c->desired_session_id;
        r.resource_id = c->resource_id;
        r.protocol_version = 2;
        raw_send(&r);
    }
}

static void test_engine_peer_silent_data(void **state)
{
    (void)state;
    F.raw = ack_then_silence;
    uint32_t id = do_read(1, 1);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_DEADLINE_EXCEEDED);
    assert_int_equal(count_type(SPRIG_TRANSFER_CHUNK_START_ACK_CONFIRMATION), 1);
    assert_int_equal(count_type(SPRIG_TRANSFER_CHUNK_PARAMETERS_RETRANSMIT), 3);
    /* a write: the client waits for parameters, re-sending its confirmation */
    F.cres[1].len = 10;
    F.ngot = 0;
    id = do_write(1, 2);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_DEADLINE_EXCEEDED);
    assert_int_equal(count_type(SPRIG_TRANSFER_CHUNK_START_ACK_CONFIRMATION), 4);
}

/* Plays a server for a read: START_ACK, then on the confirmation one DATA chunk with the whole
 * content and a CRC that does not match it. */
static void bad_crc_server(const sprig_transfer_chunk *c)
{
    ack_then_silence(c);
    if (c->type == SPRIG_TRANSFER_CHUNK_START_ACK_CONFIRMATION) {
        sprig_transfer_chunk r = {0};
        r.fields = SPRIG_TRANSFER_F_TYPE | SPRIG_TRANSFER_F_SESSION_ID |
                   SPRIG_TRANSFER_F_REMAINING_BYTES | SPRIG_TRANSFER_F_CRC32;
        r.type = SPRIG_TRANSFER_CHUNK_DATA;
        r.session_id = c->session_id;
        r.data = (const uint8_t *)"hello";
        r.data_len = 5;
        r.crc32 = sprig_transfer_crc32(0, "hellO", 5); /* the sender's bytes were different */
        raw_send(&r);
    }
}

static void test_engine_checksum_mismatch_read(void **state)
{
    (void)state;
    F.raw = bad_crc_server;
    F.cres[0].len = 2;
    uint32_t id = do_read(1, 1);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_DATA_LOSS);
    assert_int_equal(F.cres[0].len, 2); /* not committed */
    const sprig_transfer_chunk *last = &F.got[F.ngot - 1].c;
    assert_int_equal(last->type, SPRIG_TRANSFER_CHUNK_COMPLETION);
    assert_int_equal(last->status, SPRIG_STATUS_DATA_LOSS);
}

/* Plays a client writing to the server node with a bad CRC. */
static void bad_crc_client(const sprig_transfer_chunk *c)
{
    sprig_transfer_chunk r = {0};
    r.fields = SPRIG_TRANSFER_F_TYPE | SPRIG_TRANSFER_F_SESSION_ID;
    r.session_id = c->session_id;
    if (c->type == SPRIG_TRANSFER_CHUNK_START_ACK) {
        r.type = SPRIG_TRANSFER_CHUNK_START_ACK_CONFIRMATION;
        r.fields |= SPRIG_TRANSFER_F_PROTOCOL_VERSION;
        r.protocol_version = 2;
        raw_send(&r);
    } else if (c->type == SPRIG_TRANSFER_CHUNK_PARAMETERS_RETRANSMIT) {
        r.type = SPRIG_TRANSFER_CHUNK_DATA;
        r.fields |= SPRIG_TRANSFER_F_REMAINING_BYTES | SPRIG_TRANSFER_F_CRC32;
        r.data = (const uint8_t *)"abcdef";
        r.data_len = 6;
        r.crc32 = sprig_transfer_crc32(0, "abcdef", 6) ^ 1u;
        raw_send(&r);
    } else if (c->type == SPRIG_TRANSFER_CHUNK_COMPLETION) {
        r.type = SPRIG_TRANSFER_CHUNK_COMPLETION_ACK;
        raw_send(&r);
    }
}

static void test_engine_checksum_mismatch_write(void **state)
{
    (void)state;
    /* the raw peer is the client here: the node under test serves F.sh on socket a */
    sprig_transfer_deinit(&F.cn);
    xfer_settle(&F.env);
    sprig_sock *a = NULL;
    sprig_sock_close(F.b);
    xfer_settle(&F.env);
    assert_int_equal(sprig_mem_pair(&F.env.m, SPRIG_SOCK_SEQPACKET, &a, &F.b), SPRIG_STATUS_OK);
    sprig_sock_set_callback(F.b, raw_event, NULL);
    sprig_transfer_cfg c;
    node_cfg(&c, a, F.ssess, F.srx);
    c.handler = &F.sh.handler;
    assert_int_equal(sprig_transfer_init(&F.sn, &c), SPRIG_STATUS_OK);
    F.sn_up = true;
    memset(F.sr, 0, sizeof(F.sr));
    F.raw = bad_crc_client;
    F.sres[0].len = 1;
    sprig_transfer_chunk s = xfer_start_chunk(9, 1, 2, SPRIG_TRANSFER_DIR_WRITE);
    raw_send(&s);
    xfer_drive(&F.env);
    assert_int_equal(F.sr[9].ndone, 1);
    assert_int_equal(F.sr[9].status, SPRIG_STATUS_DATA_LOSS);
    assert_int_equal(F.sres[0].len, 1); /* discarded */
    assert_int_equal(count_type(SPRIG_TRANSFER_CHUNK_START_ACK), 1);
    assert_int_equal(F.got[0].c.session_id, 9);
    /* a chunk for a session that is gone: FAILED_PRECONDITION */
    F.raw = NULL;
    F.ngot = 0;
    sprig_transfer_chunk d = {0};
    d.fields = SPRIG_TRANSFER_F_TYPE | SPRIG_TRANSFER_F_SESSION_ID;
    d.type = SPRIG_TRANSFER_CHUNK_DATA;
    d.session_id = 9;
    raw_send(&d);
    xfer_settle(&F.env);
    assert_int_equal(F.ngot, 1);
    assert_int_equal(F.got[0].c.type, SPRIG_TRANSFER_CHUNK_COMPLETION);
    assert_int_equal(F.got[0].c.status, SPRIG_STATUS_FAILED_PRECONDITION);
    /* a legacy / garbage chunk is dropped silently */
    uint8_t junk[] = {0x32, 0x7f};
    assert_int_equal(sprig_sock_send(F.b, junk, sizeof(junk), NULL), SPRIG_STATUS_OK);
    xfer_settle(&F.env);
    assert_int_equal(F.ngot, 1);
    assert_int_equal(F.sn.stats.dropped, 1);
}

static void test_engine_unsupported_offset_echo(void **state)
{
    (void)state;
    /* the peer acknowledges without echoing the offset we asked for */
    F.raw = ack_then_silence;
    F.cres[0].len = 50;
    sprig_transfer_opts o = opts(1, 1);
    o.initial_offset = 50;
    uint32_t id = 0;
    assert_int_equal(sprig_transfer_read(&F.cn, &o, &id), SPRIG_STATUS_OK);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_UNIMPLEMENTED);
    assert_int_equal(F.got[0].c.initial_offset, 50);
}

/* Plays a server for a client write: a small window, then silence (or a bad retransmit). */
static uint64_t script_retransmit_to;
static void small_window_server(const sprig_transfer_chunk *c)
{
    sprig_transfer_chunk r = {0};
    r.fields = SPRIG_TRANSFER_F_TYPE | SPRIG_TRANSFER_F_SESSION_ID;
    if (c->type == SPRIG_TRANSFER_CHUNK_START) {
        r.fields |= SPRIG_TRANSFER_F_RESOURCE_ID | SPRIG_TRANSFER_F_PROTOCOL_VERSION;
        r.type = SPRIG_TRANSFER_CHUNK_START_ACK;
        r.session_id = c->desired_session_id;
        r.resource_id = c->resource_id;
        r.protocol_version = 3; /* newer than ours: the client stays at 2 */
        raw_send(&r);
    } else if (c->type == SPRIG_TRANSFER_CHUNK_START_ACK_CONFIRMATION) {
        assert_int_equal(c->protocol_version, 2);
        r.fields |= SPRIG_TRANSFER_F_OFFSET | SPRIG_TRANSFER_F_WINDOW_END_OFFSET |
                    SPRIG_TRANSFER_F_MAX_CHUNK_SIZE;
        r.type = SPRIG_TRANSFER_CHUNK_PARAMETERS_RETRANSMIT;
        r.session_id = c->session_id;
        r.window_end_offset = 150;
        r.max_chunk_size_bytes = 100;
        raw_send(&r);
    } else if (c->type == SPRIG_TRANSFER_CHUNK_DATA && script_retransmit_to != 0 &&
               c->offset == 100) {
        r.fields |= SPRIG_TRANSFER_F_OFFSET | SPRIG_TRANSFER_F_WINDOW_END_OFFSET;
        r.type = SPRIG_TRANSFER_CHUNK_PARAMETERS_RETRANSMIT;
        r.session_id = c->session_id;
        r.offset = script_retransmit_to;
        r.window_end_offset = 2000;
        raw_send(&r);
    }
}

static void test_engine_sender_timeout_resends_last_chunk(void **state)
{
    (void)state;
    xfer_fill(F.cstore[0], 1000, 8);
    F.cres[0].len = 1000;
    F.raw = small_window_server;
    script_retransmit_to = 0;
    uint32_t id = do_write(1, 1);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_DEADLINE_EXCEEDED);
    /* 100 + 50 bytes in the window, then the last chunk again on each of 3 timeouts */
    size_t k = 0;
    const got_chunk *data[8];
    for (size_t i = 0; i < F.ngot && k < 8; i++) {
        if (F.got[i].c.type == SPRIG_TRANSFER_CHUNK_DATA) {
            data[k++] = &F.got[i];
        }
    }
    assert_int_equal(k, 5);
    assert_true(data[0]->c.offset == 0 && data[0]->c.data_len == 100);
    assert_memory_equal(data[0]->data, F.cstore[0], 100);
    for (size_t i = 1; i < 5; i++) {
        assert_true(data[i]->c.offset == 100 && data[i]->c.data_len == 50);
        assert_memory_equal(data[i]->data, F.cstore[0] + 100, 50);
    }
    assert_int_equal(F.cn.stats.retransmits, 3);
}

static void test_engine_retransmit_beyond_sent_is_internal(void **state)
{
    (void)state;
    F.cres[0].len = 1000;
    F.raw = small_window_server;
    script_retransmit_to = 900; /* never sent */
    uint32_t id = do_write(1, 1);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_INTERNAL);
    const sprig_transfer_chunk *last = &F.got[F.ngot - 1].c;
    assert_int_equal(last->type, SPRIG_TRANSFER_CHUNK_COMPLETION);
    assert_int_equal(last->status, SPRIG_STATUS_INTERNAL);
}

static void raw_start(uint32_t id, uint32_t version, uint32_t direction)
{
    sprig_transfer_chunk s = xfer_start_chunk(id, 1, version, direction);
    raw_send(&s);
    xfer_settle(&F.env);
}

static void expect_refusal(uint32_t id, sprig_status status)
{
    assert_true(F.ngot > 0);
    const sprig_transfer_chunk *last = &F.got[F.ngot - 1].c;
    assert_int_equal(last->type, SPRIG_TRANSFER_CHUNK_COMPLETION);
    assert_int_equal(last->session_id, id);
    assert_int_equal(last->status, status);
}

static void test_engine_start_refusals(void **state)
{
    (void)state;
    /* this node serves nothing (no handler) */
    raw_start(40, 2, SPRIG_TRANSFER_DIR_READ);
    expect_refusal(40, SPRIG_STATUS_NOT_FOUND);
    raw_start(41, 1, SPRIG_TRANSFER_DIR_READ);
    expect_refusal(41, SPRIG_STATUS_UNIMPLEMENTED);
    raw_start(42, 2, 0);
    expect_refusal(42, SPRIG_STATUS_INVALID_ARGUMENT);
    /* the id of one of our own client sessions */
    uint32_t id = do_read(1, 1);
    xfer_settle(&F.env);
    raw_start(id, 2, SPRIG_TRANSFER_DIR_READ);
    expect_refusal(id, SPRIG_STATUS_ALREADY_EXISTS);
    assert_int_equal(F.cn.stats.refused, 4);
    assert_int_equal(sprig_transfer_cancel(&F.cn, id), SPRIG_STATUS_OK);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_CANCELLED);
    /* a COMPLETION for a session nobody has is still acknowledged */
    F.ngot = 0;
    sprig_transfer_chunk c = {0};
    c.fields = SPRIG_TRANSFER_F_TYPE | SPRIG_TRANSFER_F_SESSION_ID | SPRIG_TRANSFER_F_STATUS;
    c.type = SPRIG_TRANSFER_CHUNK_COMPLETION;
    c.session_id = 55;
    raw_send(&c);
    xfer_settle(&F.env);
    assert_int_equal(F.ngot, 1);
    assert_int_equal(F.got[0].c.type, SPRIG_TRANSFER_CHUNK_COMPLETION_ACK);
    assert_int_equal(F.got[0].c.session_id, 55);
}

/* ---- beyond 4 GiB: offsets are 32-bit (docs/transfer.md) ---------------------------------- */

/* Plays a server for a read: START_ACK, then one DATA chunk announcing more than 4 GiB. */
static void huge_server(const sprig_transfer_chunk *c)
{
    ack_then_silence(c);
    if (c->type == SPRIG_TRANSFER_CHUNK_START_ACK_CONFIRMATION) {
        sprig_transfer_chunk r = {0};
        r.fields =
            SPRIG_TRANSFER_F_TYPE | SPRIG_TRANSFER_F_SESSION_ID | SPRIG_TRANSFER_F_REMAINING_BYTES;
        r.type = SPRIG_TRANSFER_CHUNK_DATA;
        r.session_id = c->session_id;
        r.data = (const uint8_t *)"hello";
        r.data_len = 5;
        r.remaining_bytes = UINT32_MAX - 5u; /* would end at UINT32_MAX: one byte too far */
        raw_send(&r);
    }
}

static sprig_transfer_handler_ops huge_ops;
static sprig_transfer_handler huge_handler;

/* The server's resources claim 4 GiB - 1 bytes (one more than a transfer can carry). */
static sprig_status huge_open(void *ctx, uint32_t id, sprig_transfer_access access, uint64_t offset,
                              void **handle, uint64_t *size)
{
    sprig_status st = F.sh.handler.ops->open(ctx, id, access, offset, handle, size);
    if (st == SPRIG_STATUS_OK && access == SPRIG_TRANSFER_ACCESS_READ) {
        *size = UINT32_MAX;
    }
    return st;
}

static void test_engine_beyond_4gib(void **state)
{
    (void)state;
    /* a start offset beyond the limit: refused before anything is opened or sent */
    sprig_transfer_opts o = opts(1, 1);
    uint32_t id = 0;
    o.initial_offset = UINT32_MAX;
    assert_int_equal(sprig_transfer_read(&F.cn, &o, &id), SPRIG_STATUS_OUT_OF_RANGE);
    o.initial_offset = 1ull << 40;
    assert_int_equal(sprig_transfer_write(&F.cn, &o, &id), SPRIG_STATUS_OUT_OF_RANGE);
    assert_int_equal(sprig_transfer_active(&F.cn), 0);
    assert_int_equal(F.cres[0].busy, 0);
    xfer_settle(&F.env);
    assert_int_equal(F.ngot, 0);
    /* the sender announces a transfer ending beyond the limit: the receiver ends it */
    F.raw = huge_server;
    F.cres[0].len = 2;
    id = do_read(1, 1);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_OUT_OF_RANGE);
    assert_int_equal(F.cres[0].len, 2); /* not committed */
    const sprig_transfer_chunk *last = &F.got[F.ngot - 1].c;
    assert_int_equal(last->type, SPRIG_TRANSFER_CHUNK_COMPLETION);
    assert_int_equal(last->status, SPRIG_STATUS_OUT_OF_RANGE);
    /* as a server: a resource too large, and a start offset beyond the limit */
    sprig_transfer_deinit(&F.cn);
    xfer_settle(&F.env);
    sprig_sock *a = NULL;
    sprig_sock_close(F.b);
    xfer_settle(&F.env);
    assert_int_equal(sprig_mem_pair(&F.env.m, SPRIG_SOCK_SEQPACKET, &a, &F.b), SPRIG_STATUS_OK);
    sprig_sock_set_callback(F.b, raw_event, NULL);
    huge_ops = *F.sh.handler.ops;
    huge_ops.open = huge_open;
    huge_handler.ops = &huge_ops;
    huge_handler.ctx = &F.sh;
    sprig_transfer_cfg c;
    node_cfg(&c, a, F.ssess, F.srx);
    c.handler = &huge_handler;
    assert_int_equal(sprig_transfer_init(&F.sn, &c), SPRIG_STATUS_OK);
    F.sn_up = true;
    F.raw = NULL;
    F.ngot = 0;
    F.sres[0].len = 10;
    raw_start(30, 2, SPRIG_TRANSFER_DIR_READ);
    expect_refusal(30, SPRIG_STATUS_OUT_OF_RANGE);
    assert_int_equal(F.sres[0].busy, 0); /* opened, then closed again */
    sprig_transfer_chunk s = {0};
    s.fields = SPRIG_TRANSFER_F_TYPE | SPRIG_TRANSFER_F_DESIRED_SESSION_ID |
               SPRIG_TRANSFER_F_RESOURCE_ID | SPRIG_TRANSFER_F_PROTOCOL_VERSION |
               SPRIG_TRANSFER_F_DIRECTION | SPRIG_TRANSFER_F_INITIAL_OFFSET;
    s.type = SPRIG_TRANSFER_CHUNK_START;
    s.desired_session_id = 31;
    s.resource_id = 1;
    s.protocol_version = 2;
    s.direction = SPRIG_TRANSFER_DIR_WRITE;
    s.initial_offset = 1ull << 32;
    raw_send(&s);
    xfer_settle(&F.env);
    expect_refusal(31, SPRIG_STATUS_OUT_OF_RANGE);
    assert_int_equal(F.sn.stats.refused, 2);
    assert_int_equal(sprig_transfer_active(&F.sn), 0);
}

/* The socket refuses a control chunk (its window is full): it goes out on WRITABLE. */
static void test_engine_control_chunk_waits_for_socket(void **state)
{
    (void)state;
    /* fill the socket towards the raw peer without reading it */
    sprig_sock_set_callback(F.b, NULL, NULL);
    uint8_t junk[MAX_MSG] = {0};
    size_t sent = 0;
    while (sprig_sock_send(F.cn.cfg.sock, junk, sizeof(junk), NULL) == SPRIG_STATUS_OK) {
        sent++;
    }
    assert_true(sent > 0);
    uint32_t id = do_read(1, 1);
    assert_int_equal(F.csess[0].pending, SPRIG_TRANSFER_CHUNK_START + 1);
    /* now read everything: the junk, then the START */
    uint8_t buf[MAX_MSG];
    size_t n = 0;
    for (size_t i = 0; i < sent; i++) {
        assert_int_equal(sprig_sock_recv(F.b, buf, sizeof(buf), &n), SPRIG_STATUS_OK);
    }
    sprig_sock_set_callback(F.b, raw_event, NULL);
    xfer_settle(&F.env);
    assert_int_equal(F.csess[0].pending, 0);
    assert_int_equal(F.ngot, 1);
    assert_int_equal(F.got[0].c.type, SPRIG_TRANSFER_CHUNK_START);
    assert_int_equal(F.got[0].c.desired_session_id, id);
    assert_int_equal(sprig_transfer_cancel(&F.cn, id), SPRIG_STATUS_OK);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_CANCELLED);
}

/* ---- pacing ---------------------------------------------------------------------------------- */

static void slow_receiver(sprig_transfer_cfg *c, bool server)
{
    if (!server) {
        c->min_delay_us = 5000;
    }
}

static int setup_slow_receiver(void **state)
{
    (void)state;
    return setup_with(false, slow_receiver);
}

static void test_engine_min_delay_honoured(void **state)
{
    (void)state;
    size_t n = 10 * MAX_CHUNK;
    xfer_fill(F.sstore[0], n, 1);
    F.sres[0].len = n;
    sprig_time t0 = F.env.fc.now;
    uint32_t id = do_read(1, 1);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].status, SPRIG_STATUS_OK);
    assert_memory_equal(F.cstore[0], F.sstore[0], n);
    /* 10 chunks, 9 gaps of at least 5 ms */
    assert_true(F.env.fc.now - t0 >= SPRIG_TIME_MS(45));
    assert_true(F.env.fc.now - t0 < SPRIG_TIME_MS(100));
    assert_int_equal(F.sn.stats.retransmits, 0);
}

/* ---- init ------------------------------------------------------------------------------------ */

static void test_engine_init_checks(void **state)
{
    (void)state;
    sprig_transfer_node n;
    sprig_transfer_cfg c;
    node_cfg(&c, NULL, F.ssess, F.srx);
    assert_int_equal(sprig_transfer_init(&n, &c), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_transfer_deinit(&n); /* safe after a failed init */
    sprig_sock *x = NULL;
    sprig_sock *y = NULL;
    assert_int_equal(sprig_mem_pair(&F.env.m, SPRIG_SOCK_STREAM, &x, &y), SPRIG_STATUS_OK);
    c.sock = x;
    assert_int_equal(sprig_transfer_init(&n, &c), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_sock_close(x);
    sprig_sock_close(y);
    assert_int_equal(sprig_mem_pair(&F.env.m, SPRIG_SOCK_SEQPACKET, &x, &y), SPRIG_STATUS_OK);
    c.sock = x;
    c.rx_cap = MAX_MSG - 1; /* smaller than a message */
    assert_int_equal(sprig_transfer_init(&n, &c), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_sock_close(x);
    sprig_sock_close(y);
    xfer_settle(&F.env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_engine_read_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_write_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_many_windows, setup_small_window, teardown),
        cmocka_unit_test_setup_teardown(test_engine_unknown_resource, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_permission_denied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_no_free_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_server_pool_full, setup_one_server_session,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_initial_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_handler_fails_mid_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_lend_used, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_without_lend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_lend_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_lend_needs_gather, setup_wrapped_server,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_commit_failure_is_data_loss, setup_commit_fails,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_cancel_by_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_cancel_by_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_deinit_cancels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_peer_silent_handshake, setup_raw, teardown),
        cmocka_unit_test_setup_teardown(test_engine_peer_silent_data, setup_raw, teardown),
        cmocka_unit_test_setup_teardown(test_engine_checksum_mismatch_read, setup_raw, teardown),
        cmocka_unit_test_setup_teardown(test_engine_checksum_mismatch_write, setup_raw, teardown),
        cmocka_unit_test_setup_teardown(test_engine_unsupported_offset_echo, setup_raw, teardown),
        cmocka_unit_test_setup_teardown(test_engine_sender_timeout_resends_last_chunk, setup_raw,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_retransmit_beyond_sent_is_internal, setup_raw,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_start_refusals, setup_raw, teardown),
        cmocka_unit_test_setup_teardown(test_engine_control_chunk_waits_for_socket, setup_raw,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_beyond_4gib, setup_raw, teardown),
        cmocka_unit_test_setup_teardown(test_engine_min_delay_honoured, setup_slow_receiver,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_init_checks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
