/*
 * The transfer engine carried by pw_rpc (sprig/transfer_rpc.h): a sprig_rpc_server with the
 * pw.transfer.Transfer service and a sprig_rpc_client with the transfer RPC client, over an
 * in-memory SEQPACKET pair with a small window (so sends meet UNAVAILABLE and go on from
 * on_ready) and a fake clock. Also a "foreign" pw_transfer client speaking raw Chunk messages
 * on raw Read/Write calls, without sprig's direction field, checking the CRC the server sends
 * and the one it verifies. Every teardown checks sockets, buffers, timers, calls and
 * resources came back.
 */
#include "support.h"
#include "xfer_fixture.h"

#include <string.h>

#include "sprig/mem.h"
#include "sprig/rpc.h"
#include "sprig/transfer_rpc.h"

enum {
    MAX_MSG = 512,
    NSESS = 4,
    NSLOTS = 3,
    NRES = 8,
    RES_CAP = 12000,
    MAX_GOT = 256,
    MAX_IDS = 8,
    NCALLS = 8,
};
#define RX_CAP    (MAX_MSG - SPRIG_RPC_PACKET_OVERHEAD) /* the client's: all an RPC payload holds */
#define SRX_CAP   400                                   /* the server's: less than that */
#define MAX_CHUNK (SRX_CAP - SPRIG_TRANSFER_DATA_OVERHEAD)
#define LOCAL     100u /* client-side resource ids are LOCAL + 1.. */
#define WRITE_IDS 0x40000000u

typedef struct result {
    unsigned ndone;
    sprig_status status;
    uint64_t progress;
} result;

typedef struct got_chunk {
    sprig_transfer_chunk c;
    uint8_t data[MAX_MSG];
} got_chunk;

typedef struct fixture {
    xfer_env env; /* clock, loop, buffers, in-memory sockets */
    /* server */
    sprig_rpc_server srv;
    sprig_rpc_call calls[NCALLS];
    sprig_rpc_conn conns[2];
    uint8_t srv_rx[MAX_MSG];
    sprig_transfer_rpc_service svc;
    bool svc_up;
    sprig_transfer_rpc_stream slots[NSLOTS];
    sprig_transfer_session ssess[NSLOTS * NSESS];
    uint8_t srx[NSLOTS * SRX_CAP];
    sprig_buf_pool spool;
    sprig_buf sbufs[2];
    uint8_t smem[2 * SRX_CAP] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
    /* client */
    sprig_rpc_client cli;
    bool cli_up;
    uint8_t cli_rx[MAX_MSG];
    sprig_transfer_rpc_client tc;
    sprig_transfer_session csess[2 * NSESS];
    uint8_t crx[2 * RX_CAP];
    sprig_buf_pool cpool;
    sprig_buf cbufs[1];
    uint8_t cmem[RX_CAP] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
    /* resources */
    sprig_transfer_mem_handler ch, sh;
    sprig_transfer_mem_resource cres[NRES], sres[NRES];
    uint8_t cstore[NRES][RES_CAP], sstore[NRES][RES_CAP];
    result cr[2][MAX_IDS]; /* [0] read ids, [1] write ids */
    unsigned sdone;
    sprig_status sstatus[16];
    /* cancel from the client's progress callback when `done` reaches cancel_at */
    uint64_t cancel_at;
    int stop_how; /* at cancel_at: 1 cancel, 2 deinit the RPC client, 3 deinit the service */
    /* raw pw_transfer client */
    sprig_rpc_client_call raw;
    got_chunk got[MAX_GOT];
    size_t ngot;
    bool raw_ended;
    sprig_status raw_status;
} fixture;

static fixture F;

static result *res_of(uint32_t id)
{
    int w = id >= WRITE_IDS;
    uint32_t k = w ? id - WRITE_IDS : id;
    assert_true(k < MAX_IDS);
    return &F.cr[w][k];
}

static void on_done(sprig_transfer_node *node, uint32_t id, sprig_status status, void *user)
{
    (void)node;
    (void)user;
    result *r = res_of(id);
    r->ndone++;
    r->status = status;
}

static void stop_now(void)
{
    switch (F.stop_how) {
    case 2:
        sprig_rpc_client_deinit(&F.cli);
        break;
    case 3:
        sprig_transfer_rpc_service_deinit(&F.svc);
        break;
    default:
        break;
    }
}

static void on_progress(sprig_transfer_node *node, uint32_t id, uint64_t done, uint64_t total,
                        void *user)
{
    (void)node;
    (void)total;
    (void)user;
    result *r = res_of(id);
    assert_true(done >= r->progress);
    r->progress = done;
    if (F.cancel_at != 0 && done >= F.cancel_at) {
        F.cancel_at = 0;
        if (F.stop_how == 1) {
            assert_int_equal(sprig_transfer_rpc_cancel(&F.tc, id), SPRIG_STATUS_OK);
        } else {
            stop_now();
        }
    }
}

static void srv_done(sprig_transfer_node *node, uint32_t id, sprig_status status, void *user)
{
    (void)node;
    (void)id;
    (void)user;
    assert_true(F.sdone < 16);
    F.sstatus[F.sdone++] = status;
}

static int setup_slots(size_t slots)
{
    memset(&F, 0, sizeof(F));
    /* A window of two messages: the senders often meet UNAVAILABLE. */
    xfer_env_cfg ec = {.mem = {.max_message_size = MAX_MSG, .window_bytes = 2 * MAX_MSG}};
    xfer_env_init(&F.env, &ec);
    sprig_sock *a;
    sprig_sock *b;
    xfer_env_pair(&F.env, SPRIG_SOCK_SEQPACKET, &a, &b);
    xfer_mem_resources(F.cres, NRES, &F.cstore[0][0], RES_CAP, LOCAL + 1);
    xfer_mem_resources(F.sres, NRES, &F.sstore[0][0], RES_CAP, 1);
    sprig_transfer_mem_handler_init(&F.ch, F.cres, NRES);
    sprig_transfer_mem_handler_init(&F.sh, F.sres, NRES);

    sprig_rpc_server_cfg sc = {
        .loop = &F.env.loop,
        .calls = F.calls,
        .max_calls = NCALLS,
        .conns = F.conns,
        .max_conns = 2,
        .rx_buf = F.srv_rx,
        .rx_cap = sizeof(F.srv_rx),
    };
    assert_int_equal(sprig_rpc_server_init(&F.srv, &sc), SPRIG_STATUS_OK);
    assert_int_equal(sprig_buf_pool_init(&F.spool, F.sbufs, F.smem, 2, SRX_CAP), SPRIG_STATUS_OK);
    sprig_transfer_rpc_service_cfg tc = {
        .loop = &F.env.loop,
        .slots = F.slots,
        .max_calls = slots,
        .sessions = F.ssess,
        .sessions_per_call = NSESS,
        .rx_bufs = F.srx,
        .rx_cap = SRX_CAP,
        .tx_pool = &F.spool,
    };
    tc.engine.handler = &F.sh.handler;
    tc.engine.on_done = srv_done;
    assert_int_equal(sprig_transfer_rpc_service_init(&F.svc, &F.srv, &tc), SPRIG_STATUS_OK);
    F.svc_up = true;
    assert_int_equal(sprig_rpc_server_serve(&F.srv, b, NULL), SPRIG_STATUS_OK);

    sprig_rpc_client_cfg cc = {
        .loop = &F.env.loop, .sock = a, .rx_buf = F.cli_rx, .rx_cap = sizeof(F.cli_rx)};
    assert_int_equal(sprig_rpc_client_init(&F.cli, &cc), SPRIG_STATUS_OK);
    F.cli_up = true;
    assert_int_equal(sprig_buf_pool_init(&F.cpool, F.cbufs, F.cmem, 1, RX_CAP), SPRIG_STATUS_OK);
    sprig_transfer_rpc_client_cfg tcc = {
        .rpc = &F.cli,
        .sessions = F.csess,
        .sessions_per_stream = NSESS,
        .rx_bufs = F.crx,
        .rx_cap = RX_CAP,
        .tx_pool = &F.cpool,
    };
    assert_int_equal(sprig_transfer_rpc_client_init(&F.tc, &tcc), SPRIG_STATUS_OK);
    xfer_settle(&F.env);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    return setup_slots(NSLOTS);
}

static int setup_one_slot(void **state)
{
    (void)state;
    return setup_slots(1);
}

static int teardown(void **state)
{
    (void)state;
    xfer_drive(&F.env);
    assert_int_equal(sprig_transfer_rpc_active(&F.tc), 0);
    sprig_transfer_rpc_client_deinit(&F.tc);
    sprig_transfer_rpc_client_deinit(&F.tc); /* idempotent */
    if (F.cli_up) {
        sprig_rpc_client_cancel(&F.raw);
        sprig_rpc_client_deinit(&F.cli);
    }
    xfer_drive(&F.env);
    sprig_transfer_rpc_service_deinit(&F.svc);
    sprig_transfer_rpc_service_deinit(&F.svc); /* idempotent */
    assert_int_equal(sprig_transfer_rpc_service_calls(&F.svc), 0);
    sprig_rpc_server_deinit(&F.srv);
    xfer_settle(&F.env);
    assert_int_equal(sprig_buf_pool_available(&F.spool), 2);
    assert_int_equal(sprig_buf_pool_available(&F.cpool), 1);
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
    assert_int_equal(sprig_transfer_rpc_read(&F.tc, &o, &id), SPRIG_STATUS_OK);
    assert_true(id != 0 && id < WRITE_IDS);
    return id;
}

static uint32_t do_write(uint32_t remote, uint32_t local)
{
    sprig_transfer_opts o = opts(remote, local);
    uint32_t id = 0;
    assert_int_equal(sprig_transfer_rpc_write(&F.tc, &o, &id), SPRIG_STATUS_OK);
    assert_true(id > WRITE_IDS);
    return id;
}

/* ---- reads and writes ------------------------------------------------------------------------ */

static const size_t sizes[] = {0, 1, MAX_CHUNK, MAX_CHUNK + 1, 5 * MAX_CHUNK + 7, RES_CAP};

static void test_rpc_carrier_write_then_read_sizes(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t n = sizes[k];
        memset(F.cr, 0, sizeof(F.cr));
        F.sdone = 0;
        xfer_fill(F.cstore[0], n, (uint32_t)k + 7);
        F.cres[0].len = n;
        F.sres[2].len = 5; /* old content, replaced on commit */
        uint32_t w = do_write(3, 1);
        xfer_drive(&F.env);
        assert_int_equal(res_of(w)->ndone, 1);
        assert_int_equal(res_of(w)->status, SPRIG_STATUS_OK);
        assert_int_equal(F.sres[2].len, n);
        assert_memory_equal(F.sstore[2], F.cstore[0], n);

        F.cres[1].len = 0;
        memset(F.cstore[1], 0xEE, RES_CAP);
        uint32_t r = do_read(3, 2);
        xfer_drive(&F.env);
        assert_int_equal(res_of(r)->ndone, 1);
        assert_int_equal(res_of(r)->status, SPRIG_STATUS_OK);
        assert_true(res_of(r)->progress == n);
        assert_int_equal(F.cres[1].len, n);
        assert_memory_equal(F.cstore[1], F.cstore[0], n);
        assert_int_equal(F.sdone, 2);
        assert_int_equal(F.sstatus[0], SPRIG_STATUS_OK);
        assert_int_equal(F.sstatus[1], SPRIG_STATUS_OK);
    }
    /* Both sides met a full socket and went on from on_ready. */
    assert_true(F.tc.streams[1].sock.stalls > 0); /* the client writing */
    assert_true(F.slots[1].sock.stalls > 0);      /* the server answering the reads */
    /* One Read and one Write call carried everything; no chunk was lost or re-sent. */
    assert_int_equal(sprig_transfer_rpc_service_calls(&F.svc), 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(F.tc.streams[i].node.stats.retransmits, 0);
        assert_int_equal(F.tc.streams[i].node.stats.dropped, 0);
        assert_int_equal(F.tc.streams[i].sock.dropped, 0);
        assert_int_equal(F.slots[i].node.stats.retransmits, 0);
        assert_int_equal(F.slots[i].sock.dropped, 0);
    }
}

static void test_rpc_carrier_concurrent(void **state)
{
    (void)state;
    uint32_t rid[NSESS];
    uint32_t wid[NSESS];
    for (uint32_t i = 0; i < NSESS; i++) {
        size_t n = 3000 + 1111 * i;
        xfer_fill(F.sstore[i], n, 100 + i);
        F.sres[i].len = n;
        xfer_fill(F.cstore[4 + i], n, 200 + i);
        F.cres[4 + i].len = n;
    }
    for (uint32_t i = 0; i < NSESS; i++) {
        rid[i] = do_read(i + 1, i + 1);
        wid[i] = do_write(i + 5, i + 5);
    }
    assert_int_equal(sprig_transfer_rpc_active(&F.tc), 2 * NSESS);
    /* The pools are full now. */
    sprig_transfer_opts o = opts(1, 1);
    uint32_t id = 0;
    assert_int_equal(sprig_transfer_rpc_read(&F.tc, &o, &id), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    xfer_drive(&F.env);
    for (uint32_t i = 0; i < NSESS; i++) {
        size_t n = 3000 + 1111 * i;
        assert_int_equal(res_of(rid[i])->status, SPRIG_STATUS_OK);
        assert_int_equal(res_of(wid[i])->status, SPRIG_STATUS_OK);
        assert_int_equal(F.cres[i].len, n);
        assert_memory_equal(F.cstore[i], F.sstore[i], n);
        assert_int_equal(F.sres[4 + i].len, n);
        assert_memory_equal(F.sstore[4 + i], F.cstore[4 + i], n);
    }
    assert_int_equal(F.sdone, 2 * NSESS);
}

static void test_rpc_carrier_not_found_and_refusals(void **state)
{
    (void)state;
    uint32_t r = do_read(77, 1);
    uint32_t w = do_write(78, 2);
    xfer_drive(&F.env);
    assert_int_equal(res_of(r)->status, SPRIG_STATUS_NOT_FOUND);
    assert_int_equal(res_of(w)->status, SPRIG_STATUS_NOT_FOUND);
    F.sres[0].access = SPRIG_TRANSFER_ACCESS_READ;
    w = do_write(1, 2);
    xfer_drive(&F.env);
    assert_int_equal(res_of(w)->status, SPRIG_STATUS_PERMISSION_DENIED);
    /* The streams stay open for the next transfer. */
    F.sres[0].len = 10;
    r = do_read(1, 1);
    xfer_drive(&F.env);
    assert_int_equal(res_of(r)->status, SPRIG_STATUS_OK);
    assert_int_equal(F.sdone, 1); /* refused STARTs have no server session */
}

static void test_rpc_carrier_cancel(void **state)
{
    (void)state;
    xfer_fill(F.sstore[0], RES_CAP, 5);
    F.sres[0].len = RES_CAP;
    F.cres[0].len = 3;
    F.cancel_at = 2 * MAX_CHUNK;
    F.stop_how = 1;
    uint32_t r = do_read(1, 1);
    xfer_drive(&F.env);
    assert_int_equal(res_of(r)->ndone, 1);
    assert_int_equal(res_of(r)->status, SPRIG_STATUS_CANCELLED);
    assert_int_equal(F.cres[0].len, 3); /* nothing claimed written */
    assert_int_equal(F.sdone, 1);
    assert_int_equal(F.sstatus[0], SPRIG_STATUS_CANCELLED);
    /* and again from the uploading side */
    xfer_fill(F.cstore[1], RES_CAP, 6);
    F.cres[1].len = RES_CAP;
    F.sres[1].len = 4;
    F.cancel_at = 2 * MAX_CHUNK;
    uint32_t w = do_write(2, 2);
    xfer_drive(&F.env);
    assert_int_equal(res_of(w)->status, SPRIG_STATUS_CANCELLED);
    assert_int_equal(F.sres[1].len, 4);
    assert_int_equal(F.sstatus[1], SPRIG_STATUS_CANCELLED);
    assert_int_equal(sprig_transfer_rpc_cancel(&F.tc, w), SPRIG_STATUS_NOT_FOUND);
}

/* The RPC connection goes away mid-transfer: the client's transfers end CANCELLED (its RPC
 * client was deinitialised), the server's ABORTED (connection lost); nothing is committed. */
static void test_rpc_carrier_connection_lost(void **state)
{
    (void)state;
    xfer_fill(F.sstore[0], RES_CAP, 8);
    F.sres[0].len = RES_CAP;
    xfer_fill(F.cstore[1], RES_CAP, 9);
    F.cres[1].len = RES_CAP;
    F.sres[1].len = 4;
    F.cancel_at = 3 * MAX_CHUNK;
    F.stop_how = 2;
    uint32_t r = do_read(1, 1);
    uint32_t w = do_write(2, 2);
    xfer_drive(&F.env);
    F.cli_up = false;
    assert_int_equal(res_of(r)->ndone, 1);
    assert_int_equal(res_of(r)->status, SPRIG_STATUS_CANCELLED);
    assert_int_equal(res_of(w)->ndone, 1);
    assert_int_equal(res_of(w)->status, SPRIG_STATUS_CANCELLED);
    assert_int_equal(F.cres[0].len, 0);
    assert_int_equal(F.sres[1].len, 4);
    assert_int_equal(F.sdone, 2);
    assert_int_equal(F.sstatus[0], SPRIG_STATUS_ABORTED);
    assert_int_equal(F.sstatus[1], SPRIG_STATUS_ABORTED);
    assert_int_equal(sprig_transfer_rpc_service_calls(&F.svc), 0);
    /* The client cannot open new streams on a dead RPC client. */
    sprig_transfer_opts o = opts(1, 1);
    uint32_t id = 0;
    assert_int_equal(sprig_transfer_rpc_read(&F.tc, &o, &id), SPRIG_STATUS_FAILED_PRECONDITION);
}

/* The server stops serving mid-transfer: the calls end with SERVER_ERROR CANCELLED, so the
 * client's transfers end CANCELLED and so do the server's. */
static void test_rpc_carrier_service_goes_away(void **state)
{
    (void)state;
    xfer_fill(F.sstore[0], RES_CAP, 10);
    F.sres[0].len = RES_CAP;
    F.cancel_at = 2 * MAX_CHUNK;
    F.stop_how = 3;
    uint32_t r = do_read(1, 1);
    xfer_drive(&F.env);
    assert_int_equal(res_of(r)->ndone, 1);
    assert_int_equal(res_of(r)->status, SPRIG_STATUS_CANCELLED);
    assert_int_equal(F.sdone, 1);
    assert_int_equal(F.sstatus[0], SPRIG_STATUS_CANCELLED);
    assert_int_equal(sprig_transfer_rpc_service_calls(&F.svc), 0);
    /* A new transfer opens a new Read call, which the server no longer knows. */
    r = do_read(1, 1);
    xfer_drive(&F.env);
    assert_int_equal(res_of(r)->status, SPRIG_STATUS_UNIMPLEMENTED);
}

/* With one call slot the Read call takes it and the Write call is refused. */
static void test_rpc_carrier_no_free_slot(void **state)
{
    (void)state;
    F.sres[0].len = 100;
    uint32_t r = do_read(1, 1);
    xfer_drive(&F.env);
    assert_int_equal(res_of(r)->status, SPRIG_STATUS_OK);
    F.cres[1].len = 10;
    uint32_t w = do_write(2, 2);
    xfer_drive(&F.env);
    assert_int_equal(res_of(w)->status, SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(F.svc.calls_refused, 1);
    /* The Write stream was torn down and can be tried again. */
    w = do_write(2, 2);
    xfer_drive(&F.env);
    assert_int_equal(res_of(w)->status, SPRIG_STATUS_RESOURCE_EXHAUSTED);
}

/* The scratch buffer is held elsewhere when the node wants to send: the node asks again from
 * the loop and goes on once it is back, without a timeout or a retransmission. */
static void test_rpc_carrier_scratch_pool_empty(void **state)
{
    (void)state;
    xfer_fill(F.cstore[0], 2000, 11);
    F.cres[0].len = 2000;
    sprig_buf *held = sprig_buf_alloc(&F.cpool, 0);
    assert_non_null(held);
    uint32_t w = do_write(1, 1); /* the START cannot be built now */
    for (int i = 0; i < 5; i++) {
        sprig_loop_poll(&F.env.loop, F.env.fc.now);
    }
    assert_int_equal(res_of(w)->ndone, 0);
    assert_int_equal(F.sdone, 0);
    sprig_buf_free(held);
    xfer_drive(&F.env);
    assert_int_equal(res_of(w)->status, SPRIG_STATUS_OK);
    assert_int_equal(F.sres[0].len, 2000);
    assert_memory_equal(F.sstore[0], F.cstore[0], 2000);
    assert_int_equal(F.tc.streams[1].node.stats.retransmits, 0);
}

/* ---- a foreign pw_transfer client: raw calls and chunks, no sprig direction field ------------ */

static void raw_next(sprig_rpc_client_call *call, const uint8_t *p, size_t len, void *user)
{
    (void)call;
    (void)user;
    assert_true(F.ngot < MAX_GOT);
    got_chunk *g = &F.got[F.ngot++];
    assert_int_equal(sprig_transfer_chunk_decode(p, len, &g->c), SPRIG_STATUS_OK);
    if (g->c.data_len > 0) {
        memcpy(g->data, g->c.data, g->c.data_len);
    }
    g->c.data = g->data;
}

static void raw_completed(sprig_rpc_client_call *call, sprig_status status, const uint8_t *p,
                          size_t len, void *user)
{
    (void)call;
    (void)p;
    (void)len;
    (void)user;
    F.raw_ended = true;
    F.raw_status = status;
}

static void raw_error(sprig_rpc_client_call *call, sprig_status status, void *user)
{
    (void)call;
    (void)user;
    F.raw_ended = true;
    F.raw_status = status;
}

static const sprig_rpc_client_cbs raw_cbs = {
    .on_next = raw_next, .on_completed = raw_completed, .on_error = raw_error};

static void raw_open(uint32_t method)
{
    assert_int_equal(sprig_rpc_client_start(&F.cli, &F.raw, SPRIG_TRANSFER_RPC_SERVICE_ID, method,
                                            SPRIG_RPC_BIDI_STREAMING, NULL, 0, &raw_cbs, NULL,
                                            SPRIG_TIME_NEVER),
                     SPRIG_STATUS_OK);
}

static void raw_send(const sprig_transfer_chunk *c)
{
    uint8_t out[MAX_MSG];
    size_t n = 0;
    assert_int_equal(sprig_transfer_chunk_encode(c, out, sizeof(out), &n), SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_client_send(&F.raw, out, n), SPRIG_STATUS_OK);
    xfer_settle(&F.env);
}

static sprig_transfer_chunk raw_start(uint32_t session, uint32_t resource)
{
    return xfer_start_chunk(session, resource, 2, 0);
}

static sprig_transfer_chunk raw_ctl(uint32_t type, uint32_t session)
{
    sprig_transfer_chunk c = {0};
    c.fields = SPRIG_TRANSFER_F_TYPE | SPRIG_TRANSFER_F_SESSION_ID;
    c.type = type;
    c.session_id = session;
    return c;
}

static const got_chunk *last_got(void)
{
    assert_true(F.ngot > 0);
    return &F.got[F.ngot - 1];
}

/* Read resource 1 the way a pw_transfer client does: the method says "read". The server's last
 * DATA chunk carries the CRC-32 of the bytes (sprig extension, which pw_transfer skips). */
static void test_rpc_carrier_foreign_read(void **state)
{
    (void)state;
    size_t n = 1000;
    xfer_fill(F.sstore[0], n, 42);
    F.sres[0].len = n;
    raw_open(SPRIG_TRANSFER_RPC_READ_ID);
    sprig_transfer_chunk c = raw_start(7, 1);
    raw_send(&c);
    assert_int_equal(F.ngot, 1);
    assert_int_equal(last_got()->c.type, SPRIG_TRANSFER_CHUNK_START_ACK);
    assert_int_equal(last_got()->c.session_id, 7);
    assert_int_equal(last_got()->c.protocol_version, 2);
    c = raw_ctl(SPRIG_TRANSFER_CHUNK_START_ACK_CONFIRMATION, 7);
    c.fields |= SPRIG_TRANSFER_F_PROTOCOL_VERSION | SPRIG_TRANSFER_F_OFFSET |
                SPRIG_TRANSFER_F_WINDOW_END_OFFSET | SPRIG_TRANSFER_F_MAX_CHUNK_SIZE;
    c.protocol_version = 2;
    c.offset = 0;
    c.window_end_offset = (uint32_t)n;
    c.max_chunk_size_bytes = 200;
    F.ngot = 0;
    raw_send(&c);
    uint8_t got[2000];
    size_t at = 0;
    for (size_t i = 0; i < F.ngot; i++) {
        const sprig_transfer_chunk *d = &F.got[i].c;
        assert_int_equal(d->type, SPRIG_TRANSFER_CHUNK_DATA);
        assert_true(d->offset == at);
        assert_true(d->data_len <= 200);
        memcpy(got + at, d->data, d->data_len);
        at += d->data_len;
    }
    assert_int_equal(at, n);
    assert_memory_equal(got, F.sstore[0], n);
    assert_true((last_got()->c.fields & SPRIG_TRANSFER_F_REMAINING_BYTES) != 0);
    assert_true(last_got()->c.remaining_bytes == 0);
    assert_true((last_got()->c.fields & SPRIG_TRANSFER_F_CRC32) != 0);
    assert_int_equal(last_got()->c.crc32, sprig_transfer_crc32(0, F.sstore[0], n));
    c = raw_ctl(SPRIG_TRANSFER_CHUNK_COMPLETION, 7);
    c.fields |= SPRIG_TRANSFER_F_STATUS;
    c.status = 0;
    F.ngot = 0;
    raw_send(&c);
    assert_int_equal(F.ngot, 1);
    assert_int_equal(last_got()->c.type, SPRIG_TRANSFER_CHUNK_COMPLETION_ACK);
    assert_int_equal(F.sdone, 1);
    assert_int_equal(F.sstatus[0], SPRIG_STATUS_OK);
    /* The client ends its stream: the server answers OK and frees the slot. */
    assert_int_equal(sprig_rpc_client_close_send(&F.raw), SPRIG_STATUS_OK);
    xfer_drive(&F.env);
    assert_true(F.raw_ended);
    assert_int_equal(F.raw_status, SPRIG_STATUS_OK);
    assert_int_equal(sprig_transfer_rpc_service_calls(&F.svc), 0);
}

/* Write on the Write method without field 1001; the server checks the sender's CRC. */
static void write_with_crc(uint32_t crc_delta, sprig_status expect)
{
    size_t n = 300;
    uint8_t data[300];
    xfer_fill(data, n, 43);
    F.sres[3].len = 9;
    raw_open(SPRIG_TRANSFER_RPC_WRITE_ID);
    sprig_transfer_chunk c = raw_start(9, 4);
    raw_send(&c);
    assert_int_equal(last_got()->c.type, SPRIG_TRANSFER_CHUNK_START_ACK);
    c = raw_ctl(SPRIG_TRANSFER_CHUNK_START_ACK_CONFIRMATION, 9);
    c.fields |= SPRIG_TRANSFER_F_PROTOCOL_VERSION;
    c.protocol_version = 2;
    F.ngot = 0;
    raw_send(&c);
    assert_int_equal(F.ngot, 1);
    assert_int_equal(last_got()->c.type, SPRIG_TRANSFER_CHUNK_PARAMETERS_RETRANSMIT);
    assert_true(last_got()->c.window_end_offset >= n);
    assert_true(last_got()->c.max_chunk_size_bytes >= n);
    c = raw_ctl(SPRIG_TRANSFER_CHUNK_DATA, 9);
    c.fields |= SPRIG_TRANSFER_F_OFFSET | SPRIG_TRANSFER_F_REMAINING_BYTES | SPRIG_TRANSFER_F_CRC32;
    c.offset = 0;
    c.remaining_bytes = 0;
    c.data = data;
    c.data_len = n;
    c.crc32 = sprig_transfer_crc32(0, data, n) + crc_delta;
    F.ngot = 0;
    raw_send(&c);
    assert_int_equal(last_got()->c.type, SPRIG_TRANSFER_CHUNK_COMPLETION);
    assert_int_equal(last_got()->c.status, expect);
    c = raw_ctl(SPRIG_TRANSFER_CHUNK_COMPLETION_ACK, 9);
    raw_send(&c);
    xfer_drive(&F.env);
    assert_int_equal(F.sdone, 1);
    assert_int_equal(F.sstatus[0], expect);
    if (expect == SPRIG_STATUS_OK) {
        assert_int_equal(F.sres[3].len, n);
        assert_memory_equal(F.sstore[3], data, n);
    } else {
        assert_int_equal(F.sres[3].len, 9); /* discarded */
    }
}

static void test_rpc_carrier_foreign_write(void **state)
{
    (void)state;
    write_with_crc(0, SPRIG_STATUS_OK);
}

static void test_rpc_carrier_foreign_write_bad_crc(void **state)
{
    (void)state;
    write_with_crc(1, SPRIG_STATUS_DATA_LOSS);
}

/* A START whose field 1001 contradicts the method is refused; so is one for an unknown id, and
 * an undecodable payload is ignored. */
static void test_rpc_carrier_foreign_refusals(void **state)
{
    (void)state;
    F.sres[0].len = 10;
    raw_open(SPRIG_TRANSFER_RPC_READ_ID);
    sprig_transfer_chunk c = raw_start(3, 1);
    c.fields |= SPRIG_TRANSFER_F_DIRECTION;
    c.direction = SPRIG_TRANSFER_DIR_WRITE;
    raw_send(&c);
    assert_int_equal(last_got()->c.type, SPRIG_TRANSFER_CHUNK_COMPLETION);
    assert_int_equal(last_got()->c.status, SPRIG_STATUS_INVALID_ARGUMENT);
    c = raw_start(4, 55);
    raw_send(&c);
    assert_int_equal(last_got()->c.type, SPRIG_TRANSFER_CHUNK_COMPLETION);
    assert_int_equal(last_got()->c.session_id, 4);
    assert_int_equal(last_got()->c.status, SPRIG_STATUS_NOT_FOUND);
    size_t before = F.ngot;
    static const uint8_t junk[] = {0xff, 0xff, 0xff};
    assert_int_equal(sprig_rpc_client_send(&F.raw, junk, sizeof(junk)), SPRIG_STATUS_OK);
    xfer_settle(&F.env);
    assert_int_equal(F.ngot, before);
    assert_int_equal(F.slots[0].node.stats.dropped, 1);
    /* An oversized chunk (beyond what the server's buffers take) is dropped by the carrier. */
    static uint8_t big[SRX_CAP + 1];
    assert_int_equal(sprig_rpc_client_send(&F.raw, big, sizeof(big)), SPRIG_STATUS_OK);
    xfer_settle(&F.env);
    assert_int_equal(F.slots[0].sock.dropped, 1);
    assert_int_equal(F.sdone, 0);
    /* Cancelling the call leaves nothing behind on the server. */
    sprig_rpc_client_cancel(&F.raw);
    xfer_drive(&F.env);
    assert_int_equal(sprig_transfer_rpc_service_calls(&F.svc), 0);
}

/* The client's call is cancelled under a running server session: it ends CANCELLED. */
static void test_rpc_carrier_foreign_cancel_call(void **state)
{
    (void)state;
    F.sres[0].len = RES_CAP;
    raw_open(SPRIG_TRANSFER_RPC_READ_ID);
    sprig_transfer_chunk c = raw_start(5, 1);
    raw_send(&c);
    sprig_rpc_client_cancel(&F.raw);
    xfer_drive(&F.env);
    assert_int_equal(F.sdone, 1);
    assert_int_equal(F.sstatus[0], SPRIG_STATUS_CANCELLED);
    assert_int_equal(sprig_transfer_rpc_service_calls(&F.svc), 0);
}

static void test_rpc_carrier_init_checks(void **state)
{
    (void)state;
    sprig_transfer_rpc_service s2;
    sprig_transfer_rpc_service_cfg sc = F.svc.cfg;
    /* the server already has pw.transfer.Transfer */
    assert_int_equal(sprig_transfer_rpc_service_init(&s2, &F.srv, &sc),
                     SPRIG_STATUS_ALREADY_EXISTS);
    sprig_transfer_rpc_service_deinit(&s2);
    sc.rx_cap = SPRIG_TRANSFER_MIN_MESSAGE - 1;
    assert_int_equal(sprig_transfer_rpc_service_init(&s2, &F.srv, &sc),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    sc = F.svc.cfg;
    sc.tx_pool = NULL;
    assert_int_equal(sprig_transfer_rpc_service_init(&s2, &F.srv, &sc),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_transfer_rpc_service_init(NULL, &F.srv, &sc),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_transfer_rpc_client c2;
    sprig_transfer_rpc_client_cfg cc = F.tc.cfg;
    cc.sessions = NULL;
    assert_int_equal(sprig_transfer_rpc_client_init(&c2, &cc), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_transfer_rpc_client_deinit(&c2);
    sprig_transfer_opts o = opts(1, 1);
    uint32_t id = 0;
    assert_int_equal(sprig_transfer_rpc_read(&c2, &o, &id), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_transfer_rpc_cancel(&F.tc, 1), SPRIG_STATUS_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rpc_carrier_write_then_read_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_carrier_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_carrier_not_found_and_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_carrier_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_carrier_connection_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_carrier_service_goes_away, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_carrier_no_free_slot, setup_one_slot, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_carrier_scratch_pool_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_carrier_foreign_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_carrier_foreign_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_carrier_foreign_write_bad_crc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_carrier_foreign_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_carrier_foreign_cancel_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_carrier_init_checks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
