/*
 * The RPC client against a fake server: the test speaks raw pw_rpc packets over an in-memory
 * SEQPACKET pair, so nothing here depends on server.c. Time is a fake clock; the loop's idle
 * hook jumps it to the next deadline, so the blocking helpers' waits and call deadlines run
 * instantly and deterministically. Every teardown checks that sockets, buffers and timers all
 * came back.
 */
#include "support.h"

#include <stdint.h>
#include <string.h>

#include <pb_encode.h>

#include "sprig/mem.h"
#include "sprig/rpc.h"

enum { MAX_MSG = 512, NBUFS = 256, NSOCKS = 4, MAX_GOT = 512, ID_WRAP = 1 << 14 };
#define BUF_SIZE    (MAX_MSG + SPRIG_CONFIG_SOCK_HEADROOM)
#define MAX_PAYLOAD (MAX_MSG - SPRIG_RPC_PACKET_OVERHEAD)

#define SVC   0x14FBD052u /* pw.rpc.EchoService */
#define MTH   0x8B470EE9u /* Echo */
#define MTH2  0x5B7866DAu /* Read */
#define NEVER SPRIG_TIME_NEVER

/* ---- a nanopb message for the _pb calls: message M { bytes data = 1; } ----------------- */

typedef PB_BYTES_ARRAY_T(1024) test_msg_data_t;
typedef struct test_msg {
    test_msg_data_t data;
} test_msg;
#define test_msg_FIELDLIST(X, a) X(a, STATIC, SINGULAR, BYTES, data, 1)
#define test_msg_CALLBACK        NULL
#define test_msg_DEFAULT         NULL
PB_BIND(test_msg, test_msg, 2)
#define test_msg_fields &test_msg_msg

/* ---- fixture ------------------------------------------------------------------------------ */

typedef struct pkt {
    sprig_rpc_packet p; /* p.payload points into data */
    uint8_t data[MAX_MSG];
    uint8_t raw[MAX_MSG];
    size_t raw_len;
} pkt;

typedef struct fixture fixture;
typedef void (*reply_fn)(const sprig_rpc_packet *p);

struct fixture {
    sprig_fake_clock fc;
    sprig_loop loop;
    sprig_buf_pool pool;
    sprig_buf bufs[NBUFS];
    uint8_t mem[NBUFS * BUF_SIZE] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
    sprig_mem_sock socks[NSOCKS];
    sprig_mem_backend m;
    sprig_sock *cs; /* the client's end (owned by the client) */
    sprig_sock *ss; /* the fake server's end */
    sprig_rpc_client c;
    uint8_t rx[MAX_MSG];
    /* fake server */
    bool reading;   /* false: leave packets in the socket (flow control builds up) */
    size_t ngot;    /* packets received */
    size_t nstored; /* of which stored in got[] */
    pkt got[MAX_GOT];
    pkt last;
    reply_fn reply; /* called for every packet the server receives */
    sprig_status srv_closed;
    bool srv_closed_seen;
    /* a server stream pushed as fast as flow control allows */
    uint32_t push_id;
    int push_total;
    int push_sent;
    size_t push_len;
    bool push_done;
    sprig_status push_final;
};

static fixture F;

static void idle(void *ctx, sprig_time deadline)
{
    (void)ctx;
    /* The test would block forever: every wait here must have a deadline. */
    assert_true(deadline != NEVER);
    if (deadline > F.fc.now) {
        sprig_fake_clock_set(&F.fc, deadline);
    }
}

static void push(void);

static void srv_record(const uint8_t *data, size_t len)
{
    pkt *k = F.nstored < MAX_GOT ? &F.got[F.nstored++] : &F.last;
    assert_int_equal(sprig_rpc_packet_decode(data, len, &k->p), SPRIG_STATUS_OK);
    memcpy(k->raw, data, len);
    k->raw_len = len;
    if (k->p.payload_len > 0) {
        memcpy(k->data, k->p.payload, k->p.payload_len);
    }
    k->p.payload = k->data;
    if (k != &F.last) {
        F.last = *k;
        F.last.p.payload = F.last.data;
    }
    F.ngot++;
    if (F.reply != NULL) {
        F.reply(&F.last.p);
    }
}

static void srv_drain(void)
{
    while (F.reading && F.ss != NULL) {
        uint8_t buf[MAX_MSG];
        size_t n = 0;
        if (sprig_sock_recv(F.ss, buf, sizeof(buf), &n) != SPRIG_STATUS_OK) {
            return;
        }
        srv_record(buf, n);
    }
}

static void srv_event(sprig_sock *s, sprig_sock_event ev, sprig_status st, void *user)
{
    (void)s;
    (void)user;
    if (ev == SPRIG_SOCK_EV_READABLE) {
        srv_drain();
    } else if (ev == SPRIG_SOCK_EV_WRITABLE) {
        push();
    } else if (ev == SPRIG_SOCK_EV_CLOSED) {
        F.srv_closed_seen = true;
        F.srv_closed = st;
    }
}

static sprig_status srv_send_ch(uint32_t channel, sprig_rpc_packet_type type, uint32_t svc,
                                uint32_t mth, uint32_t id, sprig_status status, const void *payload,
                                size_t len)
{
    sprig_rpc_packet p = {
        .type = type,
        .channel_id = channel,
        .service_id = svc,
        .method_id = mth,
        .call_id = id,
        .status = status,
        .payload = payload,
        .payload_len = len,
    };
    uint8_t buf[MAX_MSG];
    size_t n = 0;
    assert_int_equal(sprig_rpc_packet_encode(&p, buf, sizeof(buf), &n), SPRIG_STATUS_OK);
    return sprig_sock_send(F.ss, buf, n, NULL);
}

static sprig_status srv_send(sprig_rpc_packet_type type, uint32_t svc, uint32_t mth, uint32_t id,
                             sprig_status status, const void *payload, size_t len)
{
    return srv_send_ch(1, type, svc, mth, id, status, payload, len);
}

static void srv_send_ok(sprig_rpc_packet_type type, uint32_t id, sprig_status status,
                        const char *payload)
{
    assert_int_equal(srv_send(type, SVC, MTH, id, status, payload, payload ? strlen(payload) : 0),
                     SPRIG_STATUS_OK);
}

/* Push F.push_total SERVER_STREAM messages (first byte = index) and a RESPONSE, as flow
 * control allows; resumed from WRITABLE. */
static void push(void)
{
    while (F.push_total > 0 && F.ss != NULL && !F.push_done) {
        sprig_status st;
        if (F.push_sent < F.push_total) {
            uint8_t msg[MAX_PAYLOAD];
            memset(msg, 0xA5, sizeof(msg));
            msg[0] = (uint8_t)F.push_sent;
            st = srv_send(SPRIG_RPC_PACKET_SERVER_STREAM, SVC, MTH, F.push_id, SPRIG_STATUS_OK, msg,
                          F.push_len);
            if (st == SPRIG_STATUS_OK) {
                F.push_sent++;
            }
        } else {
            st = srv_send(SPRIG_RPC_PACKET_RESPONSE, SVC, MTH, F.push_id, F.push_final, NULL, 0);
            F.push_done = st == SPRIG_STATUS_OK;
        }
        if (st != SPRIG_STATUS_OK) {
            assert_int_equal(st, SPRIG_STATUS_UNAVAILABLE);
            return;
        }
    }
}

/* Run the loop at the current time until nothing is queued. */
static void run(void)
{
    sprig_loop_poll(&F.loop, F.fc.now);
    for (int i = 0; i < 1000 && F.loop.tasks_head != NULL; i++) {
        sprig_loop_poll(&F.loop, F.fc.now);
    }
}

static void advance(sprig_time us)
{
    sprig_fake_clock_advance(&F.fc, us);
    run();
}

static int setup_window(size_t window)
{
    memset(&F, 0, sizeof(F));
    sprig_fake_clock_init(&F.fc, SPRIG_TIME_S(100));
    sprig_loop_cfg lc = {.clock = F.fc.clock, .idle = idle};
    assert_int_equal(sprig_loop_init(&F.loop, &lc), SPRIG_STATUS_OK);
    assert_int_equal(sprig_buf_pool_init(&F.pool, F.bufs, F.mem, NBUFS, BUF_SIZE), SPRIG_STATUS_OK);
    sprig_mem_cfg mc = {.max_message_size = MAX_MSG, .window_bytes = window};
    assert_int_equal(sprig_mem_backend_init(&F.m, &F.loop, &mc, F.socks, NSOCKS, &F.pool),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_mem_pair(&F.m, SPRIG_SOCK_SEQPACKET, &F.cs, &F.ss), SPRIG_STATUS_OK);
    sprig_sock_set_callback(F.ss, srv_event, NULL);
    F.reading = true;
    sprig_rpc_client_cfg cc = {
        .loop = &F.loop, .sock = F.cs, .channel_id = 1, .rx_buf = F.rx, .rx_cap = sizeof(F.rx)};
    assert_int_equal(sprig_rpc_client_init(&F.c, &cc), SPRIG_STATUS_OK);
    run();
    return 0;
}

static int setup(void **state)
{
    (void)state;
    return setup_window(0);
}

static int teardown(void **state)
{
    (void)state;
    sprig_rpc_client_deinit(&F.c);
    sprig_rpc_client_deinit(&F.c); /* idempotent */
    assert_null(F.c.calls);
    if (F.ss != NULL) {
        sprig_sock_close(F.ss);
        F.ss = NULL;
    }
    run();
    assert_int_equal(sprig_mem_backend_in_use(&F.m), 0);
    assert_int_equal(sprig_buf_pool_available(&F.pool), NBUFS);
    assert_null(F.loop.timers);
    sprig_mem_backend_deinit(&F.m);
    assert_null(F.loop.tasks_head);
    sprig_loop_deinit(&F.loop);
    return 0;
}

static void srv_close(void)
{
    sprig_sock_close(F.ss);
    F.ss = NULL;
}

/* ---- a callback recorder -------------------------------------------------------------------- */

typedef struct rec rec;
struct rec {
    int nexts;
    int completes;
    int errors;
    sprig_status status;
    uint8_t data[MAX_MSG];
    size_t len;
    int order;                                         /* when it ended (global counter) */
    void (*hook)(rec *r, sprig_rpc_client_call *call); /* runs inside every callback */
    void *arg;
    sprig_status hook_status;
};

static int end_counter;

static void rec_next(sprig_rpc_client_call *call, const uint8_t *payload, size_t len, void *user)
{
    rec *r = user;
    if (r == NULL) {
        return; /* a call nobody watches */
    }
    assert_non_null(payload);
    r->nexts++;
    memcpy(r->data, payload, len);
    r->len = len;
    if (r->hook != NULL) {
        r->hook(r, call);
    }
}

static void rec_completed(sprig_rpc_client_call *call, sprig_status status, const uint8_t *payload,
                          size_t len, void *user)
{
    rec *r = user;
    if (r == NULL) {
        return; /* a call nobody watches */
    }
    assert_non_null(payload);
    assert_false(sprig_rpc_client_call_active(call));
    r->completes++;
    r->status = status;
    memcpy(r->data, payload, len);
    r->len = len;
    r->order = ++end_counter;
    if (r->hook != NULL) {
        r->hook(r, call);
    }
}

static void rec_error(sprig_rpc_client_call *call, sprig_status status, void *user)
{
    rec *r = user;
    if (r == NULL) {
        return; /* a call nobody watches */
    }
    assert_false(sprig_rpc_client_call_active(call));
    r->errors++;
    r->status = status;
    r->order = ++end_counter;
    if (r->hook != NULL) {
        r->hook(r, call);
    }
}

static const sprig_rpc_client_cbs cbs = {rec_next, rec_completed, rec_error, NULL};

static sprig_status start(sprig_rpc_client_call *call, uint32_t mth, sprig_rpc_kind kind,
                          const char *payload, rec *r, sprig_time timeout)
{
    return sprig_rpc_client_start(&F.c, call, SVC, mth, kind, (const uint8_t *)payload,
                                  payload ? strlen(payload) : 0, &cbs, r, timeout);
}

/* ---- init / ids / golden packet --------------------------------------------------------- */

static void test_client_init_rejects_bad_config(void **state)
{
    (void)state;
    sprig_rpc_client c;
    uint8_t small[MAX_MSG - 1];
    sprig_sock *a = NULL;
    sprig_sock *b = NULL;
    assert_int_equal(sprig_rpc_client_init(NULL, NULL), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_rpc_client_init(&c, NULL), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_rpc_client_deinit(&c); /* safe after a failed init */
    assert_int_equal(sprig_mem_pair(&F.m, SPRIG_SOCK_SEQPACKET, &a, &b), SPRIG_STATUS_OK);
    sprig_rpc_client_cfg cfg = {
        .loop = &F.loop, .sock = a, .rx_buf = small, .rx_cap = sizeof(small)};
    assert_int_equal(sprig_rpc_client_init(&c, &cfg), SPRIG_STATUS_INVALID_ARGUMENT);
    cfg.rx_buf = NULL;
    assert_int_equal(sprig_rpc_client_init(&c, &cfg), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_rpc_client_deinit(&c);
    sprig_sock_close(a);
    sprig_sock_close(b);
    /* STREAM sockets carry no messages */
    assert_int_equal(sprig_mem_pair(&F.m, SPRIG_SOCK_STREAM, &a, &b), SPRIG_STATUS_OK);
    uint8_t rx[MAX_MSG];
    cfg = (sprig_rpc_client_cfg){.loop = &F.loop, .sock = a, .rx_buf = rx, .rx_cap = sizeof(rx)};
    assert_int_equal(sprig_rpc_client_init(&c, &cfg), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_sock_close(a);
    sprig_sock_close(b);
    /* channel 0 means 1 */
    assert_int_equal(F.c.cfg.channel_id, 1);
    assert_int_equal(sprig_rpc_client_status(&F.c), SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_client_max_payload(&F.c), MAX_PAYLOAD);
}

/* WIRE.md's worked example, byte for byte, as the client's first REQUEST. */
static void test_client_request_matches_wire_example(void **state)
{
    (void)state;
    static const uint8_t want[] = {0x2a, 0x04, 0x0a, 0x02, 0x68, 0x69, 0x08, 0x00,
                                   0x10, 0x01, 0x1d, 0x52, 0xd0, 0xfb, 0x14, 0x25,
                                   0xe9, 0x0e, 0x47, 0x8b, 0x38, 0x01};
    static const uint8_t hi[] = {0x0a, 0x02, 'h', 'i'};
    sprig_rpc_client_call call = {0};
    assert_int_equal(sprig_rpc_client_start(&F.c, &call, sprig_rpc_hash("pw.rpc.EchoService", 18),
                                            sprig_rpc_hash("Echo", 4), SPRIG_RPC_UNARY, hi,
                                            sizeof(hi), NULL, NULL, NEVER),
                     SPRIG_STATUS_OK);
    assert_true(sprig_rpc_client_call_active(&call));
    run();
    assert_int_equal(F.ngot, 1);
    assert_int_equal(F.got[0].raw_len, sizeof(want));
    assert_memory_equal(F.got[0].raw, want, sizeof(want));
    assert_int_equal(sprig_rpc_client_stats(&F.c)->packets_out, 1);
    sprig_rpc_client_cancel(&call);
}

static void test_client_call_ids_count_from_one(void **state)
{
    (void)state;
    sprig_rpc_client_call calls[3] = {0};
    rec r[3] = {0};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(start(&calls[i], MTH, SPRIG_RPC_UNARY, "x", &r[i], NEVER),
                         SPRIG_STATUS_OK);
    }
    run();
    assert_int_equal(F.ngot, 3);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(F.got[i].p.type, SPRIG_RPC_PACKET_REQUEST);
        assert_int_equal(F.got[i].p.call_id, i + 1);
        assert_int_equal(F.got[i].p.channel_id, 1);
        assert_int_equal(F.got[i].p.service_id, SVC);
        assert_int_equal(F.got[i].p.method_id, MTH);
        assert_int_equal(F.got[i].p.payload_len, 1);
    }
    /* A start refused before sending uses no id. */
    sprig_rpc_client_call big = {0};
    uint8_t huge[MAX_PAYLOAD + 1] = {0};
    assert_int_equal(sprig_rpc_client_start(&F.c, &big, SVC, MTH, SPRIG_RPC_UNARY, huge,
                                            sizeof(huge), &cbs, NULL, NEVER),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(start(&big, MTH, SPRIG_RPC_UNARY, NULL, NULL, NEVER), SPRIG_STATUS_OK);
    run();
    assert_int_equal(F.last.p.call_id, 4);
    sprig_rpc_client_cancel(&big);
    for (int i = 0; i < 3; i++) {
        sprig_rpc_client_cancel(&calls[i]);
    }
}

/* 1 .. 2^14-1, then 1 again; an id still held by an open call to the same method is skipped,
 * one held on another method is not. */
static void test_client_call_ids_wrap_and_skip(void **state)
{
    (void)state;
    sprig_rpc_client_call holder = {0};
    sprig_rpc_client_call other = {0};
    sprig_rpc_client_call call = {0};
    assert_int_equal(start(&holder, MTH, SPRIG_RPC_SERVER_STREAMING, NULL, NULL, NEVER),
                     SPRIG_STATUS_OK);
    for (uint32_t id = 2; id < ID_WRAP; id++) {
        assert_int_equal(start(&call, MTH, SPRIG_RPC_UNARY, NULL, NULL, NEVER), SPRIG_STATUS_OK);
        sprig_rpc_client_cancel(&call);
        run();
        assert_int_equal(F.last.p.type, SPRIG_RPC_PACKET_CLIENT_ERROR);
        assert_int_equal(F.last.p.call_id, id);
    }
    /* wrapped: 1 is free on MTH2 ... */
    assert_int_equal(start(&other, MTH2, SPRIG_RPC_UNARY, NULL, NULL, NEVER), SPRIG_STATUS_OK);
    run();
    assert_int_equal(F.last.p.call_id, 1);
    /* ... but held on MTH: 2 (the counter has moved past 1 anyway), then, after another lap
     * ending just before 1, 1 is skipped again */
    assert_int_equal(start(&call, MTH, SPRIG_RPC_UNARY, NULL, NULL, NEVER), SPRIG_STATUS_OK);
    run();
    assert_int_equal(F.last.p.call_id, 2);
    sprig_rpc_client_cancel(&call);
    for (uint32_t id = 3; id < ID_WRAP; id++) {
        assert_int_equal(start(&call, MTH, SPRIG_RPC_UNARY, NULL, NULL, NEVER), SPRIG_STATUS_OK);
        sprig_rpc_client_cancel(&call);
        run();
    }
    assert_int_equal(F.last.p.call_id, ID_WRAP - 1);
    assert_int_equal(start(&call, MTH, SPRIG_RPC_UNARY, NULL, NULL, NEVER), SPRIG_STATUS_OK);
    run();
    assert_int_equal(F.last.p.call_id, 2); /* 1 is the holder's */
    sprig_rpc_client_cancel(&call);
    sprig_rpc_client_cancel(&other);
    sprig_rpc_client_cancel(&holder);
}

/* ---- each callback path --------------------------------------------------------------------- */

static void test_client_unary_completes(void **state)
{
    (void)state;
    sprig_rpc_client_call call = {0};
    rec r = {0};
    assert_int_equal(start(&call, MTH, SPRIG_RPC_UNARY, "ping", &r, NEVER), SPRIG_STATUS_OK);
    run();
    srv_send_ok(SPRIG_RPC_PACKET_RESPONSE, 1, SPRIG_STATUS_OK, "pong");
    run();
    assert_int_equal(r.completes, 1);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.status, SPRIG_STATUS_OK);
    assert_int_equal(r.len, 4);
    assert_memory_equal(r.data, "pong", 4);
    assert_false(sprig_rpc_client_call_active(&call));
    assert_null(F.c.calls);
    /* a status other than OK and an empty payload */
    assert_int_equal(start(&call, MTH, SPRIG_RPC_UNARY, "ping", &r, NEVER), SPRIG_STATUS_OK);
    srv_send_ok(SPRIG_RPC_PACKET_RESPONSE, 2, SPRIG_STATUS_PERMISSION_DENIED, NULL);
    run();
    assert_int_equal(r.completes, 2);
    assert_int_equal(r.status, SPRIG_STATUS_PERMISSION_DENIED);
    assert_int_equal(r.len, 0);
    assert_int_equal(sprig_rpc_client_stats(&F.c)->packets_in, 2);
    assert_int_equal(sprig_rpc_client_stats(&F.c)->dropped, 0);
}

static void test_client_server_stream_then_response(void **state)
{
    (void)state;
    sprig_rpc_client_call call = {0};
    rec r = {0};
    assert_int_equal(start(&call, MTH, SPRIG_RPC_SERVER_STREAMING, "go", &r, NEVER),
                     SPRIG_STATUS_OK);
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, 1, SPRIG_STATUS_OK, "a");
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, 1, SPRIG_STATUS_OK, "bb");
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, 1, SPRIG_STATUS_OK, NULL); /* empty message */
    run();
    assert_int_equal(r.nexts, 3);
    assert_int_equal(r.len, 0);
    assert_true(sprig_rpc_client_call_active(&call));
    srv_send_ok(SPRIG_RPC_PACKET_RESPONSE, 1, SPRIG_STATUS_OK, NULL);
    run();
    assert_int_equal(r.completes, 1);
    assert_int_equal(r.status, SPRIG_STATUS_OK);
    assert_false(sprig_rpc_client_call_active(&call));
}

static void test_client_server_error_ends_call(void **state)
{
    (void)state;
    sprig_rpc_client_call a = {0};
    sprig_rpc_client_call b = {0};
    rec ra = {0};
    rec rb = {0};
    assert_int_equal(start(&a, MTH, SPRIG_RPC_UNARY, "x", &ra, NEVER), SPRIG_STATUS_OK);
    assert_int_equal(start(&b, MTH, SPRIG_RPC_BIDI_STREAMING, NULL, &rb, NEVER), SPRIG_STATUS_OK);
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_ERROR, 1, SPRIG_STATUS_NOT_FOUND, NULL);
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_ERROR, 2, SPRIG_STATUS_OK, NULL); /* nonsense: UNKNOWN */
    run();
    assert_int_equal(ra.errors, 1);
    assert_int_equal(ra.status, SPRIG_STATUS_NOT_FOUND);
    assert_int_equal(rb.errors, 1);
    assert_int_equal(rb.status, SPRIG_STATUS_UNKNOWN);
    assert_int_equal(ra.completes + rb.completes, 0);
    /* never answer an error with an error */
    assert_int_equal(F.ngot, 2);
}

static void test_client_client_stream_packets(void **state)
{
    (void)state;
    sprig_rpc_client_call call = {0};
    sprig_rpc_client_call unary = {0};
    rec r = {0};
    assert_int_equal(start(&call, MTH, SPRIG_RPC_CLIENT_STREAMING, NULL, &r, NEVER),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_client_send(&call, (const uint8_t *)"one", 3), SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_client_send(&call, NULL, 0), SPRIG_STATUS_OK);
    test_msg m = {.data = {.size = 2, .bytes = {7, 8}}};
    assert_int_equal(sprig_rpc_client_send_pb(&call, test_msg_fields, &m), SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_client_close_send(&call), SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_client_send(&call, (const uint8_t *)"late", 4),
                     SPRIG_STATUS_FAILED_PRECONDITION);
    assert_int_equal(sprig_rpc_client_close_send(&call), SPRIG_STATUS_FAILED_PRECONDITION);
    run();
    assert_int_equal(F.ngot, 5);
    assert_int_equal(F.got[0].p.type, SPRIG_RPC_PACKET_REQUEST);
    assert_int_equal(F.got[0].p.payload_len, 0);
    assert_int_equal(F.got[1].p.type, SPRIG_RPC_PACKET_CLIENT_STREAM);
    assert_int_equal(F.got[1].p.payload_len, 3);
    assert_memory_equal(F.got[1].data, "one", 3);
    assert_int_equal(F.got[2].p.type, SPRIG_RPC_PACKET_CLIENT_STREAM);
    assert_int_equal(F.got[2].p.payload_len, 0);
    assert_int_equal(F.got[3].p.type, SPRIG_RPC_PACKET_CLIENT_STREAM);
    static const uint8_t enc[] = {0x0a, 0x02, 7, 8};
    assert_int_equal(F.got[3].p.payload_len, sizeof(enc));
    assert_memory_equal(F.got[3].data, enc, sizeof(enc));
    assert_int_equal(F.got[4].p.type, SPRIG_RPC_PACKET_CLIENT_REQUEST_COMPLETION);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(F.got[i].p.call_id, 1);
    }
    srv_send_ok(SPRIG_RPC_PACKET_RESPONSE, 1, SPRIG_STATUS_OK, "sum");
    run();
    assert_int_equal(r.completes, 1);
    assert_memory_equal(r.data, "sum", 3);
    /* unary calls take no client stream; ended calls take nothing */
    assert_int_equal(start(&unary, MTH, SPRIG_RPC_UNARY, NULL, NULL, NEVER), SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_client_send(&unary, (const uint8_t *)"x", 1),
                     SPRIG_STATUS_FAILED_PRECONDITION);
    assert_int_equal(sprig_rpc_client_close_send(&unary), SPRIG_STATUS_FAILED_PRECONDITION);
    assert_int_equal(sprig_rpc_client_send(&call, (const uint8_t *)"x", 1),
                     SPRIG_STATUS_FAILED_PRECONDITION);
    assert_int_equal(sprig_rpc_client_send(NULL, NULL, 0), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_rpc_client_cancel(&unary);
}

/* ---- matching ---------------------------------------------------------------------------- */

static void test_client_matching_rules(void **state)
{
    (void)state;
    sprig_rpc_client_call c1 = {0};
    sprig_rpc_client_call c2 = {0};
    rec r1 = {0};
    rec r2 = {0};
    assert_int_equal(start(&c1, MTH, SPRIG_RPC_SERVER_STREAMING, NULL, &r1, NEVER),
                     SPRIG_STATUS_OK);
    assert_int_equal(start(&c2, MTH, SPRIG_RPC_SERVER_STREAMING, NULL, &r2, NEVER),
                     SPRIG_STATUS_OK);
    run();
    size_t sent = F.ngot;
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, 2, SPRIG_STATUS_OK, "to2");
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, 1, SPRIG_STATUS_OK, "to1");
    run();
    assert_int_equal(r1.nexts, 1);
    assert_memory_equal(r1.data, "to1", 3);
    assert_int_equal(r2.nexts, 1);
    /* wildcards from the server match a call of that method (the newest) */
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, SPRIG_RPC_CALL_ID_OPEN, SPRIG_STATUS_OK, "w");
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, 0, SPRIG_STATUS_OK, "legacy");
    run();
    assert_int_equal(r1.nexts + r2.nexts, 4);
    assert_int_equal(r2.nexts, 3);
    assert_int_equal(c2.call_id, 2); /* a real id is never replaced */
    /* other channel: dropped without a word */
    assert_int_equal(
        srv_send_ch(2, SPRIG_RPC_PACKET_SERVER_STREAM, SVC, MTH, 1, SPRIG_STATUS_OK, "c", 1),
        SPRIG_STATUS_OK);
    run();
    assert_int_equal(r1.nexts, 1);
    assert_int_equal(F.ngot, sent);
    /* same ids, other service / method / call id: no call; a stream is refused */
    assert_int_equal(
        srv_send(SPRIG_RPC_PACKET_SERVER_STREAM, SVC + 1, MTH, 1, SPRIG_STATUS_OK, "s", 1),
        SPRIG_STATUS_OK);
    assert_int_equal(
        srv_send(SPRIG_RPC_PACKET_SERVER_STREAM, SVC, MTH2, 1, SPRIG_STATUS_OK, "m", 1),
        SPRIG_STATUS_OK);
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, 77, SPRIG_STATUS_OK, "i");
    run();
    assert_int_equal(r1.nexts + r2.nexts, 4);
    assert_int_equal(F.ngot, sent + 3);
    const uint32_t svcs[] = {SVC + 1, SVC, SVC};
    const uint32_t mths[] = {MTH, MTH2, MTH};
    const uint32_t ids[] = {1, 1, 77};
    for (size_t i = 0; i < 3; i++) {
        const sprig_rpc_packet *p = &F.got[sent + i].p;
        assert_int_equal(p->type, SPRIG_RPC_PACKET_CLIENT_ERROR);
        assert_int_equal(p->status, SPRIG_STATUS_FAILED_PRECONDITION);
        assert_int_equal(p->channel_id, 1);
        assert_int_equal(p->service_id, svcs[i]);
        assert_int_equal(p->method_id, mths[i]);
        assert_int_equal(p->call_id, ids[i]);
    }
    /* RESPONSE ends exactly its call; a second one finds nothing and is dropped silently */
    srv_send_ok(SPRIG_RPC_PACKET_RESPONSE, 1, SPRIG_STATUS_OK, NULL);
    srv_send_ok(SPRIG_RPC_PACKET_RESPONSE, 1, SPRIG_STATUS_OK, NULL);
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_ERROR, 1, SPRIG_STATUS_INTERNAL, NULL);
    run();
    assert_int_equal(r1.completes, 1);
    assert_int_equal(r1.errors, 0);
    assert_true(sprig_rpc_client_call_active(&c2));
    assert_int_equal(F.ngot, sent + 3);
    assert_int_equal(sprig_rpc_client_stats(&F.c)->dropped, 1 + 3 + 2);
    sprig_rpc_client_cancel(&c2);
}

/* A call opened for a server-initiated stream has id 0xFFFFFFFF and adopts the first id. */
static void test_client_open_call_adopts_id(void **state)
{
    (void)state;
    sprig_rpc_client_call call = {0};
    rec r = {0};
    assert_int_equal(
        sprig_rpc_client_open(&F.c, &call, SVC, MTH, SPRIG_RPC_SERVER_STREAMING, &cbs, &r, NEVER),
        SPRIG_STATUS_OK);
    run();
    assert_int_equal(F.ngot, 0); /* nothing sent */
    assert_int_equal(call.call_id, SPRIG_RPC_CALL_ID_OPEN);
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, 42, SPRIG_STATUS_OK, "first");
    run();
    assert_int_equal(r.nexts, 1);
    assert_int_equal(call.call_id, 42);
    /* now bound to 42: 43 is someone else's (refused), a wildcard still matches */
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, 43, SPRIG_STATUS_OK, "other");
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, SPRIG_RPC_CALL_ID_OPEN, SPRIG_STATUS_OK, "w");
    run();
    assert_int_equal(r.nexts, 2);
    assert_int_equal(F.ngot, 1);
    assert_int_equal(F.got[0].p.call_id, 43);
    assert_int_equal(F.got[0].p.status, SPRIG_STATUS_FAILED_PRECONDITION);
    srv_send_ok(SPRIG_RPC_PACKET_RESPONSE, 42, SPRIG_STATUS_OK, NULL);
    run();
    assert_int_equal(r.completes, 1);
    /* an open call that is cancelled says so with the id it has */
    assert_int_equal(
        sprig_rpc_client_open(&F.c, &call, SVC, MTH, SPRIG_RPC_SERVER_STREAMING, &cbs, &r, NEVER),
        SPRIG_STATUS_OK);
    sprig_rpc_client_cancel(&call);
    run();
    assert_int_equal(F.last.p.type, SPRIG_RPC_PACKET_CLIENT_ERROR);
    assert_int_equal(F.last.p.call_id, SPRIG_RPC_CALL_ID_OPEN);
    /* legacy local id 0 works the same way (white box: nothing public makes one) */
    assert_int_equal(
        sprig_rpc_client_open(&F.c, &call, SVC, MTH, SPRIG_RPC_SERVER_STREAMING, &cbs, &r, NEVER),
        SPRIG_STATUS_OK);
    call.call_id = 0;
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, 9, SPRIG_STATUS_OK, "x");
    run();
    assert_int_equal(r.nexts, 3);
    assert_int_equal(call.call_id, 9);
    sprig_rpc_client_cancel(&call);
}

static void test_client_drops_bad_packets(void **state)
{
    (void)state;
    sprig_rpc_client_call call = {0};
    rec r = {0};
    assert_int_equal(start(&call, MTH, SPRIG_RPC_BIDI_STREAMING, NULL, &r, NEVER), SPRIG_STATUS_OK);
    run();
    size_t sent = F.ngot;
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff};
    assert_int_equal(sprig_sock_send(F.ss, garbage, sizeof(garbage), NULL), SPRIG_STATUS_OK);
    /* client-bound types from the server */
    srv_send_ok(SPRIG_RPC_PACKET_REQUEST, 1, SPRIG_STATUS_OK, "r");
    srv_send_ok(SPRIG_RPC_PACKET_CLIENT_STREAM, 1, SPRIG_STATUS_OK, "s");
    srv_send_ok(SPRIG_RPC_PACKET_CLIENT_ERROR, 1, SPRIG_STATUS_CANCELLED, NULL);
    /* zero ids */
    assert_int_equal(srv_send_ch(0, SPRIG_RPC_PACKET_RESPONSE, SVC, MTH, 1, 0, NULL, 0),
                     SPRIG_STATUS_OK);
    assert_int_equal(srv_send(SPRIG_RPC_PACKET_SERVER_STREAM, 0, MTH, 1, 0, NULL, 0),
                     SPRIG_STATUS_OK);
    assert_int_equal(srv_send(SPRIG_RPC_PACKET_SERVER_STREAM, SVC, 0, 1, 0, NULL, 0),
                     SPRIG_STATUS_OK);
    /* retired type 3, unknown odd type 9 */
    srv_send_ok((sprig_rpc_packet_type)3, 1, SPRIG_STATUS_OK, NULL);
    srv_send_ok((sprig_rpc_packet_type)9, 1, SPRIG_STATUS_OK, NULL);
    /* an empty message decodes as a REQUEST with zero ids */
    assert_int_equal(sprig_sock_send(F.ss, garbage, 0, NULL), SPRIG_STATUS_OK);
    run();
    assert_int_equal(r.nexts + r.completes + r.errors, 0);
    assert_true(sprig_rpc_client_call_active(&call));
    assert_int_equal(F.ngot, sent); /* no answers */
    assert_int_equal(sprig_rpc_client_stats(&F.c)->dropped, 10);
    assert_int_equal(sprig_rpc_client_stats(&F.c)->packets_in, 10);
    /* still works */
    srv_send_ok(SPRIG_RPC_PACKET_RESPONSE, 1, SPRIG_STATUS_OK, NULL);
    run();
    assert_int_equal(r.completes, 1);
}

/* A SERVER_STREAM on a call that has no server stream is a protocol violation. */
static void test_client_stream_on_unary_is_invalid(void **state)
{
    (void)state;
    sprig_rpc_client_call call = {0};
    rec r = {0};
    assert_int_equal(start(&call, MTH, SPRIG_RPC_UNARY, "q", &r, NEVER), SPRIG_STATUS_OK);
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, 1, SPRIG_STATUS_OK, "x");
    run();
    assert_int_equal(r.nexts, 0);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.status, SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(F.last.p.type, SPRIG_RPC_PACKET_CLIENT_ERROR);
    assert_int_equal(F.last.p.status, SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(F.last.p.call_id, 1);
}

/* ---- deadline, cancel, connection loss ------------------------------------------------------ */

static void test_client_deadline_cancels_on_wire(void **state)
{
    (void)state;
    sprig_rpc_client_call call = {0};
    sprig_rpc_client_call slow = {0};
    rec r = {0};
    rec rs = {0};
    assert_int_equal(start(&call, MTH, SPRIG_RPC_UNARY, "q", &r, SPRIG_TIME_MS(100)),
                     SPRIG_STATUS_OK);
    assert_int_equal(start(&slow, MTH, SPRIG_RPC_UNARY, "q", &rs, SPRIG_TIME_MS(500)),
                     SPRIG_STATUS_OK);
    advance(SPRIG_TIME_MS(99));
    assert_int_equal(r.errors, 0);
    assert_int_equal(F.ngot, 2);
    advance(SPRIG_TIME_MS(1));
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.status, SPRIG_STATUS_DEADLINE_EXCEEDED);
    assert_false(sprig_rpc_client_call_active(&call));
    assert_int_equal(F.ngot, 3);
    assert_int_equal(F.last.p.type, SPRIG_RPC_PACKET_CLIENT_ERROR);
    assert_int_equal(F.last.p.status, SPRIG_STATUS_CANCELLED);
    assert_int_equal(F.last.p.call_id, 1);
    /* the late answer finds nothing */
    srv_send_ok(SPRIG_RPC_PACKET_RESPONSE, 1, SPRIG_STATUS_OK, NULL);
    run();
    assert_int_equal(r.completes + r.errors, 1);
    /* an answer in time stops the timer */
    srv_send_ok(SPRIG_RPC_PACKET_RESPONSE, 2, SPRIG_STATUS_OK, NULL);
    run();
    assert_int_equal(rs.completes, 1);
    advance(SPRIG_TIME_S(1));
    assert_int_equal(rs.errors, 0);
    assert_null(F.loop.timers);
    /* timeout 0: expires on the next pass */
    assert_int_equal(start(&call, MTH, SPRIG_RPC_UNARY, "q", &r, 0), SPRIG_STATUS_OK);
    run();
    assert_int_equal(r.errors, 2);
}

static void test_client_cancel_sends_client_error(void **state)
{
    (void)state;
    sprig_rpc_client_call call = {0};
    rec r = {0};
    assert_int_equal(start(&call, MTH, SPRIG_RPC_SERVER_STREAMING, "q", &r, SPRIG_TIME_MS(10)),
                     SPRIG_STATUS_OK);
    sprig_rpc_client_cancel(&call);
    assert_false(sprig_rpc_client_call_active(&call));
    sprig_rpc_client_cancel(&call); /* no-op */
    sprig_rpc_client_cancel(NULL);
    run();
    assert_int_equal(F.ngot, 2);
    assert_int_equal(F.last.p.type, SPRIG_RPC_PACKET_CLIENT_ERROR);
    assert_int_equal(F.last.p.status, SPRIG_STATUS_CANCELLED);
    assert_int_equal(F.last.p.call_id, 1);
    advance(SPRIG_TIME_MS(20)); /* its deadline is gone with it */
    srv_send_ok(SPRIG_RPC_PACKET_RESPONSE, 1, SPRIG_STATUS_OK, NULL);
    run();
    assert_int_equal(r.nexts + r.completes + r.errors, 0);
    assert_int_equal(F.ngot, 2);
}

static void cancel_other_and_start(rec *r, sprig_rpc_client_call *call)
{
    (void)call;
    sprig_rpc_client_call *victim = r->arg;
    static sprig_rpc_client_call fresh;
    sprig_rpc_client_cancel(victim);
    r->hook_status = start(&fresh, MTH, SPRIG_RPC_UNARY, NULL, NULL, NEVER);
}

static void test_client_connection_loss_aborts_each_call_once(void **state)
{
    (void)state;
    sprig_rpc_client_call calls[5] = {0};
    rec r[5] = {0};
    static const sprig_rpc_kind kinds[] = {SPRIG_RPC_UNARY, SPRIG_RPC_SERVER_STREAMING,
                                           SPRIG_RPC_CLIENT_STREAMING, SPRIG_RPC_BIDI_STREAMING,
                                           SPRIG_RPC_UNARY};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(start(&calls[i], MTH, kinds[i], NULL, &r[i], SPRIG_TIME_S(1)),
                         SPRIG_STATUS_OK);
    }
    /* the newest call's callback (first to be told) cancels the oldest and tries a start */
    r[4].hook = cancel_other_and_start;
    r[4].arg = &calls[0];
    run();
    srv_close();
    run();
    for (int i = 1; i < 5; i++) {
        assert_int_equal(r[i].errors, 1);
        assert_int_equal(r[i].status, SPRIG_STATUS_ABORTED);
    }
    assert_int_equal(r[0].errors, 0); /* cancelled from a callback: nothing more */
    assert_int_equal(r[4].hook_status, SPRIG_STATUS_ABORTED);
    assert_int_equal(sprig_rpc_client_status(&F.c), SPRIG_STATUS_OUT_OF_RANGE);
    assert_int_equal(start(&calls[0], MTH, SPRIG_RPC_UNARY, NULL, NULL, NEVER),
                     SPRIG_STATUS_ABORTED);
    assert_int_equal(sprig_rpc_client_max_payload(&F.c), 0);
    advance(SPRIG_TIME_S(2));
    for (int i = 0; i < 5; i++) {
        assert_int_equal(r[i].errors + r[i].completes, i == 0 ? 0 : 1);
    }
    assert_null(F.loop.timers);
}

/* The first send into a vanished peer fails at once; the calls learn from the loop. */
static void test_client_connection_reset_seen_by_send(void **state)
{
    (void)state;
    sprig_rpc_client_call a = {0};
    sprig_rpc_client_call b = {0};
    rec ra = {0};
    rec rb = {0};
    assert_int_equal(start(&a, MTH, SPRIG_RPC_BIDI_STREAMING, NULL, &ra, NEVER), SPRIG_STATUS_OK);
    run();
    srv_close();
    assert_int_equal(sprig_rpc_client_send(&a, (const uint8_t *)"x", 1), SPRIG_STATUS_ABORTED);
    assert_int_equal(start(&b, MTH, SPRIG_RPC_UNARY, NULL, &rb, NEVER), SPRIG_STATUS_ABORTED);
    assert_int_equal(ra.errors, 0); /* no callback from inside an API call */
    run();
    assert_int_equal(ra.errors, 1);
    assert_int_equal(ra.status, SPRIG_STATUS_ABORTED);
    assert_int_equal(rb.errors, 0);
    assert_int_equal(sprig_rpc_client_status(&F.c), SPRIG_STATUS_ABORTED);
}

static void test_client_deinit_cancels_calls(void **state)
{
    (void)state;
    sprig_rpc_client_call calls[3] = {0};
    rec r[3] = {0};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            start(&calls[i], MTH, SPRIG_RPC_SERVER_STREAMING, NULL, &r[i], SPRIG_TIME_S(1)),
            SPRIG_STATUS_OK);
    }
    run();
    sprig_rpc_client_deinit(&F.c);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].errors, 1);
        assert_int_equal(r[i].status, SPRIG_STATUS_CANCELLED);
    }
    sprig_rpc_client_deinit(&F.c);
    assert_int_equal(start(&calls[0], MTH, SPRIG_RPC_UNARY, NULL, NULL, NEVER),
                     SPRIG_STATUS_FAILED_PRECONDITION);
    run();
    uint8_t buf[8]; /* the server sees end of stream */
    size_t n = 0;
    assert_int_equal(sprig_sock_recv(F.ss, buf, sizeof(buf), &n), SPRIG_STATUS_OUT_OF_RANGE);
}

/* ---- callbacks that start, cancel and restart calls ----------------------------------------- */

static void restart_self(rec *r, sprig_rpc_client_call *call)
{
    if (r->completes == 1) {
        r->hook_status = start(call, MTH, SPRIG_RPC_UNARY, "again", r, NEVER);
    }
}

static void cancel_self(rec *r, sprig_rpc_client_call *call)
{
    (void)r;
    sprig_rpc_client_cancel(call);
}

static void start_other(rec *r, sprig_rpc_client_call *call)
{
    (void)call;
    r->hook_status = start(r->arg, MTH2, SPRIG_RPC_UNARY, "next", NULL, NEVER);
}

static void deinit_client(rec *r, sprig_rpc_client_call *call)
{
    (void)r;
    (void)call;
    sprig_rpc_client_deinit(&F.c);
}

static void test_client_callbacks_may_reenter(void **state)
{
    (void)state;
    sprig_rpc_client_call a = {0};
    sprig_rpc_client_call b = {0};
    sprig_rpc_client_call c = {0};
    sprig_rpc_client_call d = {0};
    rec ra = {.hook = restart_self};
    rec rb = {.hook = cancel_self};
    rec rc = {.hook = start_other, .arg = &d};
    assert_int_equal(start(&a, MTH, SPRIG_RPC_UNARY, "a", &ra, NEVER), SPRIG_STATUS_OK);
    assert_int_equal(start(&b, MTH, SPRIG_RPC_SERVER_STREAMING, "b", &rb, NEVER), SPRIG_STATUS_OK);
    assert_int_equal(start(&c, MTH, SPRIG_RPC_UNARY, "c", &rc, NEVER), SPRIG_STATUS_OK);
    run();
    size_t sent = F.ngot;
    srv_send_ok(SPRIG_RPC_PACKET_RESPONSE, 1, SPRIG_STATUS_OK, "A");
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, 2, SPRIG_STATUS_OK, "B1");
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, 2, SPRIG_STATUS_OK, "B2");
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_ERROR, 3, SPRIG_STATUS_UNAVAILABLE, NULL);
    run();
    /* a restarted itself from on_completed with the same storage: a new id */
    assert_int_equal(ra.completes, 1);
    assert_int_equal(ra.hook_status, SPRIG_STATUS_OK);
    assert_true(sprig_rpc_client_call_active(&a));
    assert_int_equal(a.call_id, 4);
    /* b cancelled itself in on_next: B2 found no call and was refused */
    assert_int_equal(rb.nexts, 1);
    assert_false(sprig_rpc_client_call_active(&b));
    /* c's on_error started d */
    assert_int_equal(rc.errors, 1);
    assert_int_equal(rc.hook_status, SPRIG_STATUS_OK);
    assert_true(sprig_rpc_client_call_active(&d));
    /* on the wire: REQUEST a#4, CLIENT_ERROR b#2 (cancel), CLIENT_ERROR b#2 (refused B2),
     * REQUEST d */
    assert_int_equal(F.ngot, sent + 4);
    assert_int_equal(F.got[sent].p.type, SPRIG_RPC_PACKET_REQUEST);
    assert_int_equal(F.got[sent].p.call_id, 4);
    assert_int_equal(F.got[sent + 1].p.type, SPRIG_RPC_PACKET_CLIENT_ERROR);
    assert_int_equal(F.got[sent + 1].p.status, SPRIG_STATUS_CANCELLED);
    assert_int_equal(F.got[sent + 2].p.status, SPRIG_STATUS_FAILED_PRECONDITION);
    assert_int_equal(F.got[sent + 3].p.method_id, MTH2);
    /* a callback may even deinit the client: everyone else hears CANCELLED once */
    ra.hook = deinit_client;
    srv_send_ok(SPRIG_RPC_PACKET_RESPONSE, 4, SPRIG_STATUS_OK, NULL);
    srv_send_ok(SPRIG_RPC_PACKET_RESPONSE, 1, SPRIG_STATUS_OK, NULL); /* d: never read */
    run();
    assert_int_equal(ra.completes, 2);
    assert_false(sprig_rpc_client_call_active(&d));
    assert_null(F.c.calls);
}

/* ---- sizes and flow control ----------------------------------------------------------------- */

static void test_client_oversize_payload_refused(void **state)
{
    (void)state;
    static uint8_t big[MAX_MSG];
    sprig_rpc_client_call call = {0};
    memset(big, 0x5a, sizeof(big));
    assert_int_equal(sprig_rpc_client_start(&F.c, &call, SVC, MTH, SPRIG_RPC_UNARY, big,
                                            MAX_PAYLOAD + 1, NULL, NULL, NEVER),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_false(sprig_rpc_client_call_active(&call));
    test_msg m = {.data = {.size = MAX_PAYLOAD}};
    assert_int_equal(sprig_rpc_client_start_pb(&F.c, &call, SVC, MTH, SPRIG_RPC_UNARY,
                                               test_msg_fields, &m, NULL, NULL, NEVER),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED); /* 3 bytes of tag and length too many */
    run();
    assert_int_equal(F.ngot, 0);
    /* exactly the maximum goes, whatever the ids cost */
    assert_int_equal(sprig_rpc_client_start(&F.c, &call, SVC, MTH, SPRIG_RPC_BIDI_STREAMING, big,
                                            MAX_PAYLOAD, NULL, NULL, NEVER),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_client_send(&call, big, MAX_PAYLOAD + 1),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    m.data.size = MAX_PAYLOAD + 1;
    assert_int_equal(sprig_rpc_client_send_pb(&call, test_msg_fields, &m),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    m.data.size = MAX_PAYLOAD - 3;
    assert_int_equal(sprig_rpc_client_send_pb(&call, test_msg_fields, &m), SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_client_send(&call, big, MAX_PAYLOAD), SPRIG_STATUS_OK);
    run();
    assert_int_equal(F.ngot, 3);
    assert_int_equal(F.got[0].p.payload_len, MAX_PAYLOAD);
    assert_memory_equal(F.got[0].data, big, MAX_PAYLOAD);
    assert_int_equal(F.got[1].p.payload_len, MAX_PAYLOAD);
    assert_int_equal(F.got[1].data[0], 0x0a);
    assert_int_equal(F.got[2].p.payload_len, MAX_PAYLOAD);
    for (size_t i = 0; i < 3; i++) {
        assert_true(F.got[i].raw_len <= MAX_MSG);
    }
    sprig_rpc_client_cancel(&call);
    /* pb start: the message goes into the packet as encoded */
    m.data.size = 3;
    m.data.bytes[0] = 1;
    m.data.bytes[1] = 2;
    m.data.bytes[2] = 3;
    rec r = {0};
    assert_int_equal(sprig_rpc_client_start_pb(&F.c, &call, SVC, MTH, SPRIG_RPC_UNARY,
                                               test_msg_fields, &m, &cbs, &r, NEVER),
                     SPRIG_STATUS_OK);
    run();
    static const uint8_t enc[] = {0x0a, 0x03, 1, 2, 3};
    assert_int_equal(F.last.p.type, SPRIG_RPC_PACKET_REQUEST);
    assert_int_equal(F.last.p.payload_len, sizeof(enc));
    assert_memory_equal(F.last.data, enc, sizeof(enc));
    assert_int_equal(sprig_rpc_client_start_pb(&F.c, &call, SVC, MTH, SPRIG_RPC_UNARY, NULL, &m,
                                               NULL, NULL, NEVER),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_rpc_client_cancel(&call);
}

static void test_client_bad_arguments(void **state)
{
    (void)state;
    sprig_rpc_client_call call = {0};
    assert_int_equal(
        sprig_rpc_client_start(NULL, &call, SVC, MTH, SPRIG_RPC_UNARY, NULL, 0, NULL, NULL, NEVER),
        SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(
        sprig_rpc_client_start(&F.c, NULL, SVC, MTH, SPRIG_RPC_UNARY, NULL, 0, NULL, NULL, NEVER),
        SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(
        sprig_rpc_client_start(&F.c, &call, 0, MTH, SPRIG_RPC_UNARY, NULL, 0, NULL, NULL, NEVER),
        SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(
        sprig_rpc_client_start(&F.c, &call, SVC, 0, SPRIG_RPC_UNARY, NULL, 0, NULL, NULL, NEVER),
        SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_rpc_client_start(&F.c, &call, SVC, MTH, (sprig_rpc_kind)4, NULL, 0, NULL,
                                            NULL, NEVER),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(
        sprig_rpc_client_start(&F.c, &call, SVC, MTH, SPRIG_RPC_UNARY, NULL, 3, NULL, NULL, NEVER),
        SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(start(&call, MTH, SPRIG_RPC_UNARY, NULL, NULL, NEVER), SPRIG_STATUS_OK);
    /* an active call's storage cannot start another call */
    assert_int_equal(start(&call, MTH, SPRIG_RPC_UNARY, NULL, NULL, NEVER),
                     SPRIG_STATUS_FAILED_PRECONDITION);
    sprig_rpc_client_cancel(&call);
    run();
    assert_int_equal(F.ngot, 2);
}

/* A full socket: nothing is sent, nothing is linked, UNAVAILABLE; room brings success. */
static void test_client_socket_full_is_unavailable(void **state)
{
    (void)state;
    static sprig_rpc_client_call calls[64];
    F.reading = false;
    int n = 0;
    sprig_status st = SPRIG_STATUS_OK;
    for (; n < 64; n++) {
        st = start(&calls[n], MTH, SPRIG_RPC_UNARY, "0123456789012345678901234567890123456789",
                   NULL, NEVER);
        if (st != SPRIG_STATUS_OK) {
            break;
        }
    }
    assert_int_equal(st, SPRIG_STATUS_UNAVAILABLE);
    assert_true(n > 0 && n < 64);
    assert_false(sprig_rpc_client_call_active(&calls[n]));
    F.reading = true;
    srv_drain();
    run();
    assert_int_equal(F.ngot, (size_t)n);
    assert_int_equal(start(&calls[n], MTH, SPRIG_RPC_UNARY, "x", NULL, NEVER), SPRIG_STATUS_OK);
    run();
    assert_int_equal(F.last.p.call_id, (uint32_t)n + 1); /* the refused start used no id */
    for (int i = 0; i <= n; i++) {
        sprig_rpc_client_cancel(&calls[i]);
    }
}

/* A stream send refused for a full socket: on_ready follows once the socket has room, only
 * for the call that was refused, and the send then succeeds. A call that ends meanwhile is
 * not told. */
static int ready_count[3];

static void count_ready(sprig_rpc_client_call *call, void *user)
{
    (void)call;
    ready_count[(intptr_t)user]++;
}

static const sprig_rpc_client_cbs ready_cbs = {NULL, NULL, NULL, count_ready};

static void test_client_on_ready_after_full_send(void **state)
{
    (void)state;
    static sprig_rpc_client_call calls[3];
    memset(ready_count, 0, sizeof(ready_count));
    for (intptr_t i = 0; i < 3; i++) {
        memset(&calls[i], 0, sizeof(calls[i]));
        assert_int_equal(sprig_rpc_client_start(&F.c, &calls[i], SVC, MTH, SPRIG_RPC_BIDI_STREAMING,
                                                NULL, 0, &ready_cbs, (void *)i, NEVER),
                         SPRIG_STATUS_OK);
    }
    F.reading = false;
    static const uint8_t msg[40] = {1};
    sprig_status st = SPRIG_STATUS_OK;
    int n = 0;
    for (; n < 1000 && st == SPRIG_STATUS_OK; n++) {
        st = sprig_rpc_client_send(&calls[0], msg, sizeof(msg));
    }
    assert_int_equal(st, SPRIG_STATUS_UNAVAILABLE);
    assert_int_equal(sprig_rpc_client_send(&calls[2], msg, sizeof(msg)), SPRIG_STATUS_UNAVAILABLE);
    sprig_rpc_client_cancel(&calls[2]); /* ends before the room comes */
    run();
    assert_int_equal(ready_count[0], 0); /* no room yet */
    F.reading = true;
    srv_drain();
    run();
    assert_int_equal(ready_count[0], 1);
    assert_int_equal(ready_count[1], 0);
    assert_int_equal(ready_count[2], 0);
    assert_int_equal(sprig_rpc_client_send(&calls[0], msg, sizeof(msg)), SPRIG_STATUS_OK);
    run();
    assert_int_equal(ready_count[0], 1); /* once per UNAVAILABLE */
    sprig_rpc_client_cancel(&calls[0]);
    sprig_rpc_client_cancel(&calls[1]);
    run();
}

static int setup_small_window(void **state)
{
    (void)state;
    return setup_window(1024);
}

/* 64 calls in flight, answered in a scrambled order: each gets its own answer once. */
static void test_client_many_calls_out_of_order(void **state)
{
    (void)state;
    enum { N = 64 };
    static sprig_rpc_client_call calls[N];
    static rec r[N];
    memset(calls, 0, sizeof(calls));
    memset(r, 0, sizeof(r));
    end_counter = 0;
    for (uint32_t i = 0; i < N; i++) {
        uint8_t body[4] = {(uint8_t)i, (uint8_t)(i * 3), 0xee, (uint8_t)~i};
        assert_int_equal(sprig_rpc_client_start(&F.c, &calls[i], SVC, (i & 1) ? MTH : MTH2,
                                                SPRIG_RPC_UNARY, body, sizeof(body), &cbs, &r[i],
                                                SPRIG_TIME_S(5)),
                         SPRIG_STATUS_OK);
        run(); /* keep the small window moving */
    }
    assert_int_equal(F.ngot, N);
    for (uint32_t k = 0; k < N; k++) {
        const pkt *q = &F.got[(k * 37) % N]; /* 37 is odd: a permutation of 0..63 */
        while (srv_send(SPRIG_RPC_PACKET_RESPONSE, q->p.service_id, q->p.method_id, q->p.call_id,
                        SPRIG_STATUS_OK, q->data, q->p.payload_len) == SPRIG_STATUS_UNAVAILABLE) {
            run();
        }
    }
    run();
    for (uint32_t i = 0; i < N; i++) {
        uint8_t body[4] = {(uint8_t)i, (uint8_t)(i * 3), 0xee, (uint8_t)~i};
        assert_int_equal(r[i].completes, 1);
        assert_int_equal(r[i].errors, 0);
        assert_int_equal(r[i].len, 4);
        assert_memory_equal(r[i].data, body, 4);
    }
    /* completion order followed the server's, not the start order */
    assert_int_equal(r[(37u % N)].order, 2);
    assert_null(F.c.calls);
    advance(SPRIG_TIME_S(10));
    assert_null(F.loop.timers);
}

/* ---- blocking helpers --------------------------------------------------------------------- */

static void echo_reply(const sprig_rpc_packet *p)
{
    if (p->type == SPRIG_RPC_PACKET_REQUEST) {
        assert_int_equal(srv_send(SPRIG_RPC_PACKET_RESPONSE, p->service_id, p->method_id,
                                  p->call_id, SPRIG_STATUS_OK, p->payload, p->payload_len),
                         SPRIG_STATUS_OK);
    }
}

static void error_reply(const sprig_rpc_packet *p)
{
    if (p->type == SPRIG_RPC_PACKET_REQUEST) {
        assert_int_equal(srv_send(SPRIG_RPC_PACKET_SERVER_ERROR, p->service_id, p->method_id,
                                  p->call_id, SPRIG_STATUS_NOT_FOUND, NULL, 0),
                         SPRIG_STATUS_OK);
    }
}

static void unary_from_callback(rec *r, sprig_rpc_client_call *call)
{
    (void)call;
    uint8_t resp[8];
    size_t len = 0;
    r->hook_status = sprig_rpc_client_unary(&F.c, SVC, MTH, NULL, 0, resp, sizeof(resp), &len,
                                            SPRIG_TIME_MS(10));
}

static void test_client_unary_blocking(void **state)
{
    (void)state;
    uint8_t resp[16];
    size_t len = 99;
    F.reply = echo_reply;
    assert_int_equal(sprig_rpc_client_unary(&F.c, SVC, MTH, (const uint8_t *)"hello", 5, resp,
                                            sizeof(resp), &len, SPRIG_TIME_S(1)),
                     SPRIG_STATUS_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(resp, "hello", 5);
    /* response larger than the caller's buffer */
    assert_int_equal(sprig_rpc_client_unary(&F.c, SVC, MTH, (const uint8_t *)"hello", 5, resp, 4,
                                            &len, SPRIG_TIME_S(1)),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(len, 0);
    /* the server's error */
    F.reply = error_reply;
    assert_int_equal(
        sprig_rpc_client_unary(&F.c, SVC, MTH, NULL, 0, resp, sizeof(resp), &len, SPRIG_TIME_S(1)),
        SPRIG_STATUS_NOT_FOUND);
    /* silence: DEADLINE_EXCEEDED after the timeout, and the server is told */
    F.reply = NULL;
    sprig_time t0 = F.fc.now;
    assert_int_equal(sprig_rpc_client_unary(&F.c, SVC, MTH, NULL, 0, resp, sizeof(resp), &len,
                                            SPRIG_TIME_MS(250)),
                     SPRIG_STATUS_DEADLINE_EXCEEDED);
    assert_int_equal(F.fc.now - t0, SPRIG_TIME_MS(250));
    run();
    assert_int_equal(F.last.p.type, SPRIG_RPC_PACKET_CLIENT_ERROR);
    assert_int_equal(F.last.p.status, SPRIG_STATUS_CANCELLED);
    assert_null(F.c.calls);
    /* from a callback: refused, not a deadlock */
    sprig_rpc_client_call call = {0};
    rec r = {.hook = unary_from_callback};
    assert_int_equal(start(&call, MTH, SPRIG_RPC_UNARY, NULL, &r, NEVER), SPRIG_STATUS_OK);
    srv_send_ok(SPRIG_RPC_PACKET_RESPONSE, F.last.p.call_id + 1, SPRIG_STATUS_OK, NULL);
    run();
    assert_int_equal(r.completes, 1);
    assert_int_equal(r.hook_status, SPRIG_STATUS_FAILED_PRECONDITION);
    assert_int_equal(sprig_rpc_client_unary(NULL, SVC, MTH, NULL, 0, NULL, 0, NULL, 0),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    /* connection gone */
    srv_close();
    run();
    assert_int_equal(
        sprig_rpc_client_unary(&F.c, SVC, MTH, NULL, 0, resp, sizeof(resp), &len, SPRIG_TIME_S(1)),
        SPRIG_STATUS_ABORTED);
}

static void wake_server(sprig_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    F.reading = true;
    srv_drain();
}

/* Start 100-byte unary calls until the socket is full; returns how many went out. The
 * server's echoes of them all fit its own window. */
static int fill_socket(sprig_rpc_client_call *calls, int max)
{
    static const uint8_t body[100] = {1};
    int n = 0;
    while (n < max && sprig_rpc_client_start(&F.c, &calls[n], SVC, MTH2, SPRIG_RPC_UNARY, body,
                                             sizeof(body), NULL, NULL, NEVER) == SPRIG_STATUS_OK) {
        n++;
    }
    return n;
}

/* unary waits for room in a full socket instead of failing with UNAVAILABLE */
static void test_client_unary_waits_for_room(void **state)
{
    (void)state;
    static sprig_rpc_client_call fill[64];
    F.reading = false;
    int n = fill_socket(fill, 64);
    assert_true(n > 0 && n < 64);
    sprig_timer t;
    sprig_timer_init(&t, wake_server, NULL);
    sprig_timer_start(&F.loop, &t, SPRIG_TIME_MS(30));
    F.reply = echo_reply;
    uint8_t resp[8];
    size_t len = 0;
    assert_int_equal(sprig_rpc_client_unary(&F.c, SVC, MTH, (const uint8_t *)"hi", 2, resp,
                                            sizeof(resp), &len, SPRIG_TIME_S(1)),
                     SPRIG_STATUS_OK);
    assert_int_equal(len, 2);
    assert_int_equal(F.ngot, (size_t)n + 1);
    run();
    for (int i = 0; i < n; i++) {
        assert_false(sprig_rpc_client_call_active(&fill[i])); /* echoed too */
    }
    /* and gives up at its deadline if room never comes */
    F.reading = false;
    F.reply = NULL;
    n = fill_socket(fill, 64);
    assert_int_equal(sprig_rpc_client_unary(&F.c, SVC, MTH, (const uint8_t *)"hi", 2, resp,
                                            sizeof(resp), &len, SPRIG_TIME_MS(100)),
                     SPRIG_STATUS_DEADLINE_EXCEEDED);
    for (int i = 0; i < n; i++) {
        sprig_rpc_client_cancel(&fill[i]);
    }
}

/* start_wait/next_wait: one message in the inbox; while it is full the client stops reading,
 * the server's sends hit flow control, and nothing is lost. */
static void test_client_stream_wait_back_pressure(void **state)
{
    (void)state;
    enum { TOTAL = 40, LEN = 200 };
    sprig_rpc_client_call call = {0};
    uint8_t inbox[256];
    assert_int_equal(sprig_rpc_client_start_wait(&F.c, &call, SVC, MTH, SPRIG_RPC_SERVER_STREAMING,
                                                 (const uint8_t *)"go", 2, inbox, sizeof(inbox),
                                                 SPRIG_TIME_S(10)),
                     SPRIG_STATUS_OK);
    run();
    assert_int_equal(F.ngot, 1);
    F.push_id = F.got[0].p.call_id;
    F.push_total = TOTAL;
    F.push_len = LEN;
    F.push_final = SPRIG_STATUS_OK;
    push();
    for (int i = 0; i < 10; i++) {
        advance(SPRIG_TIME_MS(1));
    }
    /* the client holds one message and reads no more: the server is stuck at its window */
    int stuck = F.push_sent;
    assert_true(stuck < TOTAL);
    assert_true(((sprig_mem_sock *)F.cs)->rxq.count > 0);
    assert_int_equal(call.inbox_full, 1);
    advance(SPRIG_TIME_MS(100));
    assert_int_equal(F.push_sent, stuck);
    for (int i = 0; i < TOTAL; i++) {
        uint8_t buf[256];
        size_t len = 0;
        sprig_status fin = SPRIG_STATUS_UNKNOWN;
        assert_int_equal(
            sprig_rpc_client_next_wait(&call, buf, sizeof(buf), &len, &fin, SPRIG_TIME_S(1)),
            SPRIG_STATUS_OK);
        assert_int_equal(len, LEN);
        assert_int_equal(buf[0], i);
        assert_int_equal(fin, SPRIG_STATUS_UNKNOWN); /* untouched */
    }
    uint8_t buf[256];
    size_t len = 9;
    sprig_status fin = SPRIG_STATUS_UNKNOWN;
    assert_int_equal(
        sprig_rpc_client_next_wait(&call, buf, sizeof(buf), &len, &fin, SPRIG_TIME_S(1)),
        SPRIG_STATUS_OUT_OF_RANGE);
    assert_int_equal(fin, SPRIG_STATUS_OK);
    assert_int_equal(len, 0);
    assert_false(sprig_rpc_client_call_active(&call));
    /* asking again says the same */
    assert_int_equal(sprig_rpc_client_next_wait(&call, buf, sizeof(buf), &len, &fin, 0),
                     SPRIG_STATUS_OUT_OF_RANGE);
    assert_int_equal(F.push_sent, TOTAL);
    assert_true(F.push_done);
    assert_int_equal(sprig_rpc_client_stats(&F.c)->dropped, 0);
}

static void test_client_next_wait_timeout_and_limits(void **state)
{
    (void)state;
    sprig_rpc_client_call call = {0};
    uint8_t inbox[16];
    uint8_t buf[16];
    size_t len = 0;
    sprig_status fin = SPRIG_STATUS_UNKNOWN;
    assert_int_equal(sprig_rpc_client_start_wait(&F.c, &call, SVC, MTH, SPRIG_RPC_BIDI_STREAMING,
                                                 NULL, 0, inbox, sizeof(inbox), NEVER),
                     SPRIG_STATUS_OK);
    /* nothing yet: DEADLINE_EXCEEDED, call still open */
    assert_int_equal(
        sprig_rpc_client_next_wait(&call, buf, sizeof(buf), &len, &fin, SPRIG_TIME_MS(20)),
        SPRIG_STATUS_DEADLINE_EXCEEDED);
    assert_true(sprig_rpc_client_call_active(&call));
    assert_int_equal(sprig_rpc_client_send(&call, (const uint8_t *)"up", 2), SPRIG_STATUS_OK);
    /* a message smaller than the inbox but larger than the caller's buffer waits */
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, 1, SPRIG_STATUS_OK, "0123456789");
    assert_int_equal(sprig_rpc_client_next_wait(&call, buf, 4, &len, &fin, SPRIG_TIME_S(1)),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(len, 10);
    assert_int_equal(sprig_rpc_client_next_wait(&call, buf, sizeof(buf), &len, &fin, 0),
                     SPRIG_STATUS_OK);
    assert_int_equal(len, 10);
    assert_memory_equal(buf, "0123456789", 10);
    /* larger than the inbox: the call ends with RESOURCE_EXHAUSTED and the server is told */
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, 1, SPRIG_STATUS_OK, "0123456789abcdefXYZ");
    assert_int_equal(
        sprig_rpc_client_next_wait(&call, buf, sizeof(buf), &len, &fin, SPRIG_TIME_S(1)),
        SPRIG_STATUS_OUT_OF_RANGE);
    assert_int_equal(fin, SPRIG_STATUS_RESOURCE_EXHAUSTED);
    run();
    assert_int_equal(F.last.p.type, SPRIG_RPC_PACKET_CLIENT_ERROR);
    assert_int_equal(F.last.p.status, SPRIG_STATUS_CANCELLED);
    /* not a blocking-helper call / never started */
    sprig_rpc_client_call plain = {0};
    assert_int_equal(sprig_rpc_client_next_wait(&plain, buf, sizeof(buf), &len, &fin, 0),
                     SPRIG_STATUS_FAILED_PRECONDITION);
    assert_int_equal(start(&plain, MTH, SPRIG_RPC_SERVER_STREAMING, NULL, NULL, NEVER),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_client_next_wait(&plain, buf, sizeof(buf), &len, &fin, 0),
                     SPRIG_STATUS_FAILED_PRECONDITION);
    sprig_rpc_client_cancel(&plain);
    assert_int_equal(sprig_rpc_client_next_wait(NULL, buf, sizeof(buf), &len, &fin, 0),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    /* a unary call through start_wait: the RESPONSE payload comes with OUT_OF_RANGE */
    assert_int_equal(sprig_rpc_client_start_wait(&F.c, &call, SVC, MTH, SPRIG_RPC_UNARY,
                                                 (const uint8_t *)"q", 1, inbox, sizeof(inbox),
                                                 NEVER),
                     SPRIG_STATUS_OK);
    srv_send_ok(SPRIG_RPC_PACKET_RESPONSE, F.c.next_call_id, SPRIG_STATUS_DATA_LOSS, "ans");
    assert_int_equal(
        sprig_rpc_client_next_wait(&call, buf, sizeof(buf), &len, &fin, SPRIG_TIME_S(1)),
        SPRIG_STATUS_OUT_OF_RANGE);
    assert_int_equal(fin, SPRIG_STATUS_DATA_LOSS);
    assert_int_equal(len, 3);
    assert_memory_equal(buf, "ans", 3);
    /* a cancelled wait call is idle */
    assert_int_equal(sprig_rpc_client_start_wait(&F.c, &call, SVC, MTH, SPRIG_RPC_UNARY, NULL, 0,
                                                 inbox, sizeof(inbox), NEVER),
                     SPRIG_STATUS_OK);
    sprig_rpc_client_cancel(&call);
    assert_int_equal(sprig_rpc_client_next_wait(&call, buf, sizeof(buf), &len, &fin, 0),
                     SPRIG_STATUS_FAILED_PRECONDITION);
}

/* The server sends a few messages, its final status and goes away while the inbox holds up
 * reading: everything queued before the close still arrives, then the status. */
static void test_client_stream_wait_survives_orderly_close(void **state)
{
    (void)state;
    sprig_rpc_client_call call = {0};
    uint8_t inbox[32];
    uint8_t buf[32];
    size_t len = 0;
    sprig_status fin = SPRIG_STATUS_UNKNOWN;
    assert_int_equal(sprig_rpc_client_start_wait(&F.c, &call, SVC, MTH, SPRIG_RPC_SERVER_STREAMING,
                                                 NULL, 0, inbox, sizeof(inbox), NEVER),
                     SPRIG_STATUS_OK);
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, 1, SPRIG_STATUS_OK, "m0");
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, 1, SPRIG_STATUS_OK, "m1");
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, 1, SPRIG_STATUS_OK, "m2");
    srv_send_ok(SPRIG_RPC_PACKET_RESPONSE, 1, SPRIG_STATUS_NOT_FOUND, NULL);
    run();
    srv_close();
    run();
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            sprig_rpc_client_next_wait(&call, buf, sizeof(buf), &len, &fin, SPRIG_TIME_S(1)),
            SPRIG_STATUS_OK);
        assert_int_equal(len, 2);
        assert_int_equal(buf[1], '0' + i);
    }
    assert_int_equal(
        sprig_rpc_client_next_wait(&call, buf, sizeof(buf), &len, &fin, SPRIG_TIME_S(1)),
        SPRIG_STATUS_OUT_OF_RANGE);
    assert_int_equal(fin, SPRIG_STATUS_NOT_FOUND);
    run();
    assert_int_equal(sprig_rpc_client_status(&F.c), SPRIG_STATUS_OUT_OF_RANGE);
}

/* The call's deadline passes while its message waits in the inbox: the message is still
 * delivered, then DEADLINE_EXCEEDED; reading resumes for everyone else. */
static void test_client_stream_wait_deadline_while_held(void **state)
{
    (void)state;
    sprig_rpc_client_call call = {0};
    sprig_rpc_client_call other = {0};
    rec ro = {0};
    uint8_t inbox[32];
    uint8_t buf[32];
    size_t len = 0;
    sprig_status fin = SPRIG_STATUS_UNKNOWN;
    assert_int_equal(sprig_rpc_client_start_wait(&F.c, &call, SVC, MTH, SPRIG_RPC_SERVER_STREAMING,
                                                 NULL, 0, inbox, sizeof(inbox), SPRIG_TIME_MS(50)),
                     SPRIG_STATUS_OK);
    assert_int_equal(start(&other, MTH2, SPRIG_RPC_UNARY, NULL, &ro, NEVER), SPRIG_STATUS_OK);
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, 1, SPRIG_STATUS_OK, "m0");
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, 1, SPRIG_STATUS_OK, "m1");
    assert_int_equal(srv_send(SPRIG_RPC_PACKET_RESPONSE, SVC, MTH2, 2, SPRIG_STATUS_OK, NULL, 0),
                     SPRIG_STATUS_OK);
    run();
    assert_int_equal(ro.completes, 0); /* head-of-line: behind the held message */
    size_t sent = F.ngot;
    advance(SPRIG_TIME_MS(50));
    assert_false(sprig_rpc_client_call_active(&call));
    assert_int_equal(ro.completes, 1);
    /* CLIENT_ERROR CANCELLED for the deadline, FAILED_PRECONDITION for the orphaned m1 */
    assert_int_equal(F.ngot, sent + 2);
    assert_int_equal(F.got[sent].p.status, SPRIG_STATUS_CANCELLED);
    assert_int_equal(F.got[sent + 1].p.status, SPRIG_STATUS_FAILED_PRECONDITION);
    assert_int_equal(sprig_rpc_client_next_wait(&call, buf, sizeof(buf), &len, &fin, 0),
                     SPRIG_STATUS_OK);
    assert_memory_equal(buf, "m0", 2);
    assert_int_equal(sprig_rpc_client_next_wait(&call, buf, sizeof(buf), &len, &fin, 0),
                     SPRIG_STATUS_OUT_OF_RANGE);
    assert_int_equal(fin, SPRIG_STATUS_DEADLINE_EXCEEDED);
    /* the storage can start again */
    assert_int_equal(sprig_rpc_client_start_wait(&F.c, &call, SVC, MTH, SPRIG_RPC_UNARY, NULL, 0,
                                                 inbox, sizeof(inbox), NEVER),
                     SPRIG_STATUS_OK);
    sprig_rpc_client_cancel(&call);
}

/* A reset (CLOSED with an error) ends every call at once, even while an inbox holds up
 * reading; the held message is still delivered. */
static void test_client_reset_while_held(void **state)
{
    (void)state;
    sprig_rpc_client_call call = {0};
    sprig_rpc_client_call bidi = {0};
    rec rb = {0};
    uint8_t inbox[32];
    uint8_t buf[32];
    size_t len = 0;
    sprig_status fin = SPRIG_STATUS_UNKNOWN;
    assert_int_equal(sprig_rpc_client_start_wait(&F.c, &call, SVC, MTH, SPRIG_RPC_SERVER_STREAMING,
                                                 NULL, 0, inbox, sizeof(inbox), NEVER),
                     SPRIG_STATUS_OK);
    assert_int_equal(start(&bidi, MTH2, SPRIG_RPC_BIDI_STREAMING, NULL, &rb, NEVER),
                     SPRIG_STATUS_OK);
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, 1, SPRIG_STATUS_OK, "m0");
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, 1, SPRIG_STATUS_OK, "m1");
    run();
    srv_close();
    run();
    assert_int_equal(rb.errors, 0); /* held: the end of stream is not seen yet */
    assert_int_equal(sprig_rpc_client_send(&bidi, (const uint8_t *)"x", 1), SPRIG_STATUS_ABORTED);
    run();
    assert_int_equal(rb.errors, 1);
    assert_int_equal(rb.status, SPRIG_STATUS_ABORTED);
    assert_int_equal(sprig_rpc_client_status(&F.c), SPRIG_STATUS_ABORTED);
    assert_int_equal(sprig_rpc_client_next_wait(&call, buf, sizeof(buf), &len, &fin, 0),
                     SPRIG_STATUS_OK);
    assert_memory_equal(buf, "m0", 2);
    assert_int_equal(sprig_rpc_client_next_wait(&call, buf, sizeof(buf), &len, &fin, 0),
                     SPRIG_STATUS_OUT_OF_RANGE);
    assert_int_equal(fin, SPRIG_STATUS_ABORTED);
}

/* Cancelling the call whose message holds up reading lets reading go on. */
static void test_client_cancel_held_call_resumes_reading(void **state)
{
    (void)state;
    sprig_rpc_client_call call = {0};
    sprig_rpc_client_call other = {0};
    rec ro = {0};
    uint8_t inbox[32];
    assert_int_equal(sprig_rpc_client_start_wait(&F.c, &call, SVC, MTH, SPRIG_RPC_SERVER_STREAMING,
                                                 NULL, 0, inbox, sizeof(inbox), NEVER),
                     SPRIG_STATUS_OK);
    assert_int_equal(start(&other, MTH2, SPRIG_RPC_UNARY, NULL, &ro, NEVER), SPRIG_STATUS_OK);
    srv_send_ok(SPRIG_RPC_PACKET_SERVER_STREAM, 1, SPRIG_STATUS_OK, "m0");
    assert_int_equal(srv_send(SPRIG_RPC_PACKET_RESPONSE, SVC, MTH2, 2, SPRIG_STATUS_OK, NULL, 0),
                     SPRIG_STATUS_OK);
    run();
    assert_int_equal(ro.completes, 0);
    sprig_rpc_client_cancel(&call);
    run();
    assert_int_equal(ro.completes, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_client_init_rejects_bad_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_request_matches_wire_example, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_call_ids_count_from_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_call_ids_wrap_and_skip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_unary_completes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_server_stream_then_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_server_error_ends_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_client_stream_packets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_matching_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_open_call_adopts_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_drops_bad_packets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_stream_on_unary_is_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_deadline_cancels_on_wire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_cancel_sends_client_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_connection_loss_aborts_each_call_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_client_connection_reset_seen_by_send, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_deinit_cancels_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_callbacks_may_reenter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_oversize_payload_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_socket_full_is_unavailable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_on_ready_after_full_send, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_many_calls_out_of_order, setup_small_window,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_client_unary_blocking, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_unary_waits_for_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_stream_wait_back_pressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_next_wait_timeout_and_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_stream_wait_survives_orderly_close, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_client_stream_wait_deadline_while_held, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_client_reset_while_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_cancel_held_call_resumes_reading, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
