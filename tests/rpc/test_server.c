/*
 * test_server.c — the RPC server against a "foreign pw_rpc client": the test itself, speaking
 * raw packets over an in-memory SEQPACKET pair and checking every reply byte for byte.
 *
 * Covered: all four call kinds end to end; every error reply of WIRE.md and every case that
 * must get no reply at all; call-id matching (legacy 0, server-opened 0xFFFFFFFF, adoption);
 * cancellation, including an async handler finishing after it; a REQUEST replacing its call;
 * a full call table; server-opened streams; oversized payloads (RESOURCE_EXHAUSTED to both
 * sides, also when the socket is full at that moment); flow control with on_ready; connections
 * lost mid-stream; listen/accept with no free slot; handler re-entrancy (finishing other calls,
 * unregistering, deinit from inside callbacks). Every teardown checks that nothing leaked:
 * sockets, buffers, calls.
 */
#include "support.h"

#include <string.h>

#include <pb_encode.h>

#include "sprig/mem.h"
#include "sprig/rpc.h"

enum {
    MAX_MSG = 256,
    NSOCKS = 12,
    NBUFS = 64,
    MAX_CALLS = 4,
    MAX_CONNS = 2,
    CHANNEL = 1,
};
#define BUF_SIZE    (MAX_MSG + SPRIG_CONFIG_SOCK_HEADROOM)
#define MAX_PAYLOAD (MAX_MSG - SPRIG_RPC_PACKET_OVERHEAD)
#define LEN(a)      (sizeof(a) / sizeof((a)[0]))
#define U(s)        ((const uint8_t *)(s))

/* ---- a tiny nanopb message for the _pb variants: {uint32 n = 1; bytes data = 2;} ---------- */

typedef struct test_msg {
    uint32_t n;
    pb_callback_t data;
} test_msg;

#define test_msg_FIELDLIST(X, a)                                                                   \
    X(a, STATIC, SINGULAR, UINT32, n, 1)                                                           \
    X(a, CALLBACK, SINGULAR, BYTES, data, 2)
#define test_msg_CALLBACK pb_default_field_callback
#define test_msg_DEFAULT  NULL
PB_BIND(test_msg, test_msg, AUTO)
#define test_msg_fields (&test_msg_msg)

static size_t data_len; /* bytes of 0x5a written for test_msg.data */

static bool encode_data(pb_ostream_t *os, const pb_field_t *field, void *const *arg)
{
    static const uint8_t blob[1024] = {0};
    (void)arg;
    if (!pb_encode_tag_for_field(os, field)) {
        return false;
    }
    return pb_encode_string(os, blob, data_len);
}

/* ---- fixture ------------------------------------------------------------------------------ */

typedef struct fixture {
    sprig_fake_clock clock;
    sprig_loop loop;
    sprig_buf_pool pool;
    sprig_buf bufs[NBUFS];
    uint8_t mem[NBUFS * BUF_SIZE] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
    sprig_mem_sock socks[NSOCKS];
    sprig_mem_backend m;
    sprig_rpc_server srv;
    sprig_rpc_call calls[MAX_CALLS];
    sprig_rpc_conn conns[MAX_CONNS];
    uint8_t rx[MAX_MSG];
    sprig_sock *cli;      /* the foreign client's end */
    sprig_rpc_conn *conn; /* the server's connection to it */
    uint8_t in[MAX_MSG];  /* last packet the client read */
    size_t in_len;
} fixture;

static fixture fx;

/* What the handlers saw and are told to do. */
typedef struct record {
    unsigned requests;
    unsigned aborts;
    sprig_status abort_status;
    sprig_rpc_call *abort_call;
    unsigned conn_up, conn_down;
    unsigned client_msgs;
    uint8_t client_sum;
    unsigned completions;
    unsigned ready_calls;
    sprig_rpc_call *held[MAX_CALLS + 1]; /* async calls kept open */
    size_t nheld;
    void (*hook)(sprig_rpc_call *call); /* the Hook method's body */
    void (*abort_hook)(sprig_rpc_call *call, sprig_status st);
    /* Flood: a server stream that fills the socket and goes on from on_ready */
    unsigned flood_total, flood_sent, flood_unavailable;
    bool flood_done;
} record;

static record T;

/* ---- the services ------------------------------------------------------------------------- */

enum { M_UNARY, M_SSTREAM, M_CSTREAM, M_BIDI, M_ASYNC, M_ASYNC_BIDI, M_HOOK, M_FLOOD, M_COUNT };
static const char *const method_names[M_COUNT] = {
    "Unary", "ServerStream", "ClientStream", "Bidi", "Async", "AsyncBidi", "Hook", "Flood",
};
static uint32_t MID[M_COUNT];
static uint32_t SVC;   /* sprig.test.Test */
static uint32_t OTHER; /* sprig.test.Other */
static uint32_t PING;

static void hold(sprig_rpc_call *call)
{
    assert_true(T.nheld < LEN(T.held));
    T.held[T.nheld++] = call;
}

static void unhold(sprig_rpc_call *call)
{
    for (size_t i = 0; i < T.nheld; i++) {
        if (T.held[i] == call) {
            T.held[i] = T.held[--T.nheld];
            return;
        }
    }
}

static void on_abort(sprig_rpc_call *call, sprig_status st)
{
    T.aborts++;
    T.abort_status = st;
    T.abort_call = call;
    unhold(call);
    /* the call is over: nothing may be sent on it any more */
    assert_int_equal(sprig_rpc_call_finish(call, NULL, 0, SPRIG_STATUS_OK),
                     SPRIG_STATUS_FAILED_PRECONDITION);
    assert_int_equal(sprig_rpc_call_send(call, NULL, 0), SPRIG_STATUS_FAILED_PRECONDITION);
    if (T.abort_hook != NULL) {
        T.abort_hook(call, st);
    }
}

static void unary_req(sprig_rpc_call *call, const uint8_t *payload, size_t len)
{
    T.requests++;
    assert_int_equal(sprig_rpc_call_finish(call, payload, len, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    /* finished: the handle is dead */
    assert_int_equal(sprig_rpc_call_finish(call, NULL, 0, SPRIG_STATUS_OK),
                     SPRIG_STATUS_FAILED_PRECONDITION);
}

/* Request payload [n]: n SERVER_STREAM messages [i], then RESPONSE(OK, no payload). */
static void sstream_req(sprig_rpc_call *call, const uint8_t *payload, size_t len)
{
    T.requests++;
    assert_int_equal(len, 1);
    for (uint8_t i = 0; i < payload[0]; i++) {
        assert_int_equal(sprig_rpc_call_send(call, &i, 1), SPRIG_STATUS_OK);
    }
    assert_int_equal(sprig_rpc_call_finish(call, NULL, 0, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
}

static void keep_req(sprig_rpc_call *call, const uint8_t *payload, size_t len)
{
    (void)payload;
    (void)len;
    T.requests++;
    hold(call);
}

static void count_stream(sprig_rpc_call *call, const uint8_t *payload, size_t len)
{
    (void)call;
    T.client_msgs++;
    for (size_t i = 0; i < len; i++) {
        T.client_sum = (uint8_t)(T.client_sum + payload[i]);
    }
}

/* Client streaming: RESPONSE [count, sum] once the client is done. */
static void cstream_complete(sprig_rpc_call *call)
{
    T.completions++;
    uint8_t out[2] = {(uint8_t)T.client_msgs, T.client_sum};
    unhold(call);
    assert_int_equal(sprig_rpc_call_finish(call, out, sizeof(out), SPRIG_STATUS_OK),
                     SPRIG_STATUS_OK);
}

/* Bidi: every client message comes straight back; completion ends with OK. */
static void bidi_stream(sprig_rpc_call *call, const uint8_t *payload, size_t len)
{
    T.client_msgs++;
    assert_int_equal(sprig_rpc_call_send(call, payload, len), SPRIG_STATUS_OK);
}

static void bidi_complete(sprig_rpc_call *call)
{
    T.completions++;
    unhold(call);
    assert_int_equal(sprig_rpc_call_finish(call, NULL, 0, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
}

static void async_complete(sprig_rpc_call *call)
{
    (void)call;
    T.completions++;
}

static void hook_req(sprig_rpc_call *call, const uint8_t *payload, size_t len)
{
    (void)payload;
    (void)len;
    T.requests++;
    T.hook(call);
}

static void flood_go(sprig_rpc_call *call)
{
    uint8_t msg[40];
    memset(msg, 0xab, sizeof(msg));
    while (T.flood_sent < T.flood_total) {
        msg[0] = (uint8_t)T.flood_sent;
        sprig_status st = sprig_rpc_call_send(call, msg, sizeof(msg));
        if (st == SPRIG_STATUS_UNAVAILABLE) {
            T.flood_unavailable++;
            return;
        }
        assert_int_equal(st, SPRIG_STATUS_OK);
        T.flood_sent++;
    }
    sprig_status st = sprig_rpc_call_finish(call, NULL, 0, SPRIG_STATUS_OK);
    if (st == SPRIG_STATUS_UNAVAILABLE) {
        T.flood_unavailable++;
        return;
    }
    assert_int_equal(st, SPRIG_STATUS_OK);
    T.flood_done = true;
}

static void flood_req(sprig_rpc_call *call, const uint8_t *payload, size_t len)
{
    (void)payload;
    (void)len;
    T.requests++;
    flood_go(call);
}

static void flood_ready(sprig_rpc_call *call)
{
    T.ready_calls++;
    flood_go(call);
}

static void any_ready(sprig_rpc_call *call)
{
    (void)call;
    T.ready_calls++;
}

static sprig_rpc_method methods[M_COUNT];
static sprig_rpc_service service;
static sprig_rpc_method other_methods[1];
static sprig_rpc_service other;

static void define_services(void)
{
    static const sprig_rpc_kind kinds[M_COUNT] = {
        SPRIG_RPC_UNARY,
        SPRIG_RPC_SERVER_STREAMING,
        SPRIG_RPC_CLIENT_STREAMING,
        SPRIG_RPC_BIDI_STREAMING,
        SPRIG_RPC_UNARY,
        SPRIG_RPC_BIDI_STREAMING,
        SPRIG_RPC_UNARY,
        SPRIG_RPC_SERVER_STREAMING,
    };
    SVC = sprig_rpc_hash("sprig.test.Test", strlen("sprig.test.Test"));
    OTHER = sprig_rpc_hash("sprig.test.Other", strlen("sprig.test.Other"));
    PING = sprig_rpc_hash("Ping", 4);
    memset(methods, 0, sizeof(methods));
    for (size_t i = 0; i < M_COUNT; i++) {
        MID[i] = sprig_rpc_hash(method_names[i], strlen(method_names[i]));
        methods[i].method_id = MID[i];
        methods[i].kind = kinds[i];
        methods[i].on_abort = on_abort;
        methods[i].on_ready = any_ready;
    }
    methods[M_UNARY].on_request = unary_req;
    methods[M_SSTREAM].on_request = sstream_req;
    methods[M_CSTREAM].on_request = keep_req;
    methods[M_CSTREAM].on_client_stream = count_stream;
    methods[M_CSTREAM].on_client_complete = cstream_complete;
    methods[M_BIDI].on_request = keep_req;
    methods[M_BIDI].on_client_stream = bidi_stream;
    methods[M_BIDI].on_client_complete = bidi_complete;
    methods[M_ASYNC].on_request = keep_req;
    methods[M_ASYNC_BIDI].on_request = keep_req;
    methods[M_ASYNC_BIDI].on_client_stream = count_stream;
    methods[M_ASYNC_BIDI].on_client_complete = async_complete;
    methods[M_HOOK].on_request = hook_req;
    methods[M_FLOOD].on_request = flood_req;
    methods[M_FLOOD].on_ready = flood_ready;
    service = (sprig_rpc_service){
        .service_id = SVC, .name = "sprig.test.Test", .methods = methods, .method_count = M_COUNT};
    other_methods[0] = (sprig_rpc_method){
        .method_id = PING, .kind = SPRIG_RPC_UNARY, .on_request = unary_req, .on_abort = on_abort};
    other = (sprig_rpc_service){.service_id = OTHER,
                                .name = "sprig.test.Other",
                                .methods = other_methods,
                                .method_count = 1};
}

static void on_conn(sprig_rpc_server *s, sprig_rpc_conn *conn, bool up, void *ctx)
{
    (void)s;
    (void)conn;
    assert_ptr_equal(ctx, &fx);
    if (up) {
        T.conn_up++;
    } else {
        T.conn_down++;
    }
}

/* ---- set-up and the checks every test ends with ------------------------------------------- */

static void pump(void)
{
    for (int i = 0; i < 6; i++) {
        sprig_loop_poll(&fx.loop, fx.clock.now);
    }
}

static void start(size_t window, uint32_t channel)
{
    memset(&fx, 0, sizeof(fx));
    memset(&T, 0, sizeof(T));
    define_services();
    sprig_fake_clock_init(&fx.clock, SPRIG_TIME_S(1));
    sprig_loop_cfg lcfg = {.clock = fx.clock.clock};
    assert_int_equal(sprig_loop_init(&fx.loop, &lcfg), SPRIG_STATUS_OK);
    assert_int_equal(sprig_buf_pool_init(&fx.pool, fx.bufs, fx.mem, NBUFS, BUF_SIZE),
                     SPRIG_STATUS_OK);
    sprig_mem_cfg mcfg = {.max_message_size = MAX_MSG, .window_bytes = window};
    assert_int_equal(sprig_mem_backend_init(&fx.m, &fx.loop, &mcfg, fx.socks, NSOCKS, &fx.pool),
                     SPRIG_STATUS_OK);
    sprig_rpc_server_cfg cfg = {
        .loop = &fx.loop,
        .calls = fx.calls,
        .max_calls = MAX_CALLS,
        .conns = fx.conns,
        .max_conns = MAX_CONNS,
        .rx_buf = fx.rx,
        .rx_cap = sizeof(fx.rx),
        .channel_id = channel,
        .on_conn = on_conn,
        .ctx = &fx,
    };
    assert_int_equal(sprig_rpc_server_init(&fx.srv, &cfg), SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_server_register(&fx.srv, &service), SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_server_register(&fx.srv, &other), SPRIG_STATUS_OK);
    sprig_sock *srv_end = NULL;
    assert_int_equal(sprig_mem_pair(&fx.m, SPRIG_SOCK_SEQPACKET, &fx.cli, &srv_end),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_server_serve(&fx.srv, srv_end, &fx.conn), SPRIG_STATUS_OK);
    assert_non_null(fx.conn);
    assert_int_equal(T.conn_up, 1);
    pump();
}

static int setup(void **state)
{
    (void)state;
    start(0, 0);
    return 0;
}

/* Tear everything down and check nothing leaked. */
static void finish_fixture(void)
{
    pump();
    sprig_rpc_server_deinit(&fx.srv);
    sprig_rpc_server_deinit(&fx.srv); /* idempotent */
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 0);
    for (size_t i = 0; i < MAX_CONNS; i++) {
        assert_int_equal(fx.conns[i].in_use, 0);
    }
    sprig_sock_close(fx.cli);
    fx.cli = NULL;
    pump();
    assert_int_equal(sprig_mem_backend_in_use(&fx.m), 0);
    assert_int_equal(sprig_buf_pool_available(&fx.pool), NBUFS);
    assert_int_equal(T.nheld, 0); /* every held call was finished or aborted */
    sprig_mem_backend_deinit(&fx.m);
    assert_null(fx.loop.tasks_head);
    sprig_loop_deinit(&fx.loop);
}

static int teardown(void **state)
{
    (void)state;
    finish_fixture();
    return 0;
}

/* ---- the foreign client ------------------------------------------------------------------- */

static void send_raw_on(sprig_sock *s, const uint8_t *bytes, size_t n)
{
    assert_int_equal(sprig_sock_send(s, bytes, n, NULL), SPRIG_STATUS_OK);
}

static void send_on(sprig_sock *s, sprig_rpc_packet_type type, uint32_t channel, uint32_t svc,
                    uint32_t method, uint32_t call_id, sprig_status status, const void *payload,
                    size_t len)
{
    sprig_rpc_packet p = {
        .type = type,
        .channel_id = channel,
        .service_id = svc,
        .method_id = method,
        .call_id = call_id,
        .status = status,
        .payload = payload,
        .payload_len = len,
    };
    uint8_t out[MAX_MSG];
    size_t n = 0;
    assert_int_equal(sprig_rpc_packet_encode(&p, out, sizeof(out), &n), SPRIG_STATUS_OK);
    send_raw_on(s, out, n);
}

static void send_pkt(sprig_rpc_packet_type type, uint32_t method, uint32_t call_id,
                     const void *payload, size_t len)
{
    send_on(fx.cli, type, CHANNEL, SVC, method, call_id, SPRIG_STATUS_OK, payload, len);
}

/* Read the next reply on s (after running the loop); false if none is waiting. */
static bool next_on(sprig_sock *s, sprig_rpc_packet *p)
{
    pump();
    sprig_status st = sprig_sock_recv(s, fx.in, sizeof(fx.in), &fx.in_len);
    if (st == SPRIG_STATUS_UNAVAILABLE) {
        return false;
    }
    assert_int_equal(st, SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_packet_decode(fx.in, fx.in_len, p), SPRIG_STATUS_OK);
    return true;
}

/* The next reply must be exactly this packet, byte for byte (the server's encoding is
 * deterministic: payload first, then type, channel, service, method, status if not OK,
 * call_id if not 0). */
static void expect_on(sprig_sock *s, sprig_rpc_packet_type type, uint32_t channel, uint32_t svc,
                      uint32_t method, uint32_t call_id, sprig_status status, const void *payload,
                      size_t len)
{
    sprig_rpc_packet got;
    if (!next_on(s, &got)) {
        fail_msg("expected a packet of type %d, got nothing", (int)type);
    }
    assert_int_equal(got.type, type);
    assert_int_equal(got.status, status);
    assert_int_equal(got.channel_id, channel);
    assert_int_equal(got.service_id, svc);
    assert_int_equal(got.method_id, method);
    assert_int_equal(got.call_id, call_id);
    assert_int_equal(got.payload_len, len);
    sprig_rpc_packet want = {
        .type = type,
        .channel_id = channel,
        .service_id = svc,
        .method_id = method,
        .call_id = call_id,
        .status = status,
        .payload = payload,
        .payload_len = len,
    };
    uint8_t bytes[MAX_MSG];
    size_t n = 0;
    assert_int_equal(sprig_rpc_packet_encode(&want, bytes, sizeof(bytes), &n), SPRIG_STATUS_OK);
    assert_int_equal(fx.in_len, n);
    assert_memory_equal(fx.in, bytes, n);
}

static void expect(sprig_rpc_packet_type type, uint32_t method, uint32_t call_id,
                   sprig_status status, const void *payload, size_t len)
{
    expect_on(fx.cli, type, CHANNEL, SVC, method, call_id, status, payload, len);
}

static void expect_error(uint32_t method, uint32_t call_id, sprig_status status)
{
    expect(SPRIG_RPC_PACKET_SERVER_ERROR, method, call_id, status, NULL, 0);
}

static void expect_nothing_on(sprig_sock *s)
{
    sprig_rpc_packet p;
    if (next_on(s, &p)) {
        fail_msg("expected nothing, got type %d status %d", (int)p.type, (int)p.status);
    }
}

static void expect_nothing(void)
{
    expect_nothing_on(fx.cli);
}

/* ---- the four kinds ----------------------------------------------------------------------- */

static void test_server_unary(void **state)
{
    (void)state;
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_UNARY], 7, "hello", 5);
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_UNARY], 7, SPRIG_STATUS_OK, "hello", 5);
    expect_nothing();
    /* empty request, empty response: no payload field at all */
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_UNARY], 8, NULL, 0);
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_UNARY], 8, SPRIG_STATUS_OK, NULL, 0);
    /* a legacy client (call_id 0) is answered with 0 */
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_UNARY], 0, "x", 1);
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_UNARY], 0, SPRIG_STATUS_OK, "x", 1);
    assert_int_equal(T.requests, 3);
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 0);
    const sprig_rpc_stats *st = sprig_rpc_server_stats(&fx.srv);
    assert_int_equal(st->packets_in, 3);
    assert_int_equal(st->packets_out, 3);
    assert_int_equal(st->dropped, 0);
}

static void test_server_unary_any_channel_and_field_order(void **state)
{
    (void)state;
    /* channel_id 0 in the config: any channel is served and echoed. Fields in number order,
     * no type (proto3 zero = REQUEST), as a protobuf library would write them. */
    static const uint8_t req[] = {0x10, 0x05, 0x1d, 0,    0,    0,   0,   0x25, 0,
                                  0,    0,    0,    0x2a, 0x02, 'o', 'k', 0x38, 0x09};
    uint8_t b[sizeof(req)];
    memcpy(b, req, sizeof(req));
    memcpy(b + 3, &SVC, 4); /* little-endian host: fixed32 as stored */
    memcpy(b + 8, &MID[M_UNARY], 4);
    send_raw_on(fx.cli, b, sizeof(b));
    expect_on(fx.cli, SPRIG_RPC_PACKET_RESPONSE, 5, SVC, MID[M_UNARY], 9, SPRIG_STATUS_OK, "ok", 2);
}

static void test_server_server_stream(void **state)
{
    (void)state;
    uint8_t n = 5;
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_SSTREAM], 3, &n, 1);
    for (uint8_t i = 0; i < n; i++) {
        expect(SPRIG_RPC_PACKET_SERVER_STREAM, MID[M_SSTREAM], 3, SPRIG_STATUS_OK, &i, 1);
    }
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_SSTREAM], 3, SPRIG_STATUS_OK, NULL, 0);
    expect_nothing();
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 0);
}

static void test_server_client_stream(void **state)
{
    (void)state;
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_CSTREAM], 11, NULL, 0);
    expect_nothing();
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 1);
    for (uint8_t i = 1; i <= 4; i++) {
        send_pkt(SPRIG_RPC_PACKET_CLIENT_STREAM, MID[M_CSTREAM], 11, &i, 1);
    }
    expect_nothing();
    assert_int_equal(T.client_msgs, 4);
    send_pkt(SPRIG_RPC_PACKET_CLIENT_REQUEST_COMPLETION, MID[M_CSTREAM], 11, NULL, 0);
    uint8_t want[2] = {4, 10};
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_CSTREAM], 11, SPRIG_STATUS_OK, want, 2);
    expect_nothing();
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 0);
}

static void test_server_bidi_interleaved(void **state)
{
    (void)state;
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_BIDI], 21, NULL, 0);
    expect_nothing();
    send_pkt(SPRIG_RPC_PACKET_CLIENT_STREAM, MID[M_BIDI], 21, "a", 1);
    expect(SPRIG_RPC_PACKET_SERVER_STREAM, MID[M_BIDI], 21, SPRIG_STATUS_OK, "a", 1);
    send_pkt(SPRIG_RPC_PACKET_CLIENT_STREAM, MID[M_BIDI], 21, "bc", 2);
    expect(SPRIG_RPC_PACKET_SERVER_STREAM, MID[M_BIDI], 21, SPRIG_STATUS_OK, "bc", 2);
    /* two in one burst */
    send_pkt(SPRIG_RPC_PACKET_CLIENT_STREAM, MID[M_BIDI], 21, "d", 1);
    send_pkt(SPRIG_RPC_PACKET_CLIENT_STREAM, MID[M_BIDI], 21, "", 0);
    expect(SPRIG_RPC_PACKET_SERVER_STREAM, MID[M_BIDI], 21, SPRIG_STATUS_OK, "d", 1);
    expect(SPRIG_RPC_PACKET_SERVER_STREAM, MID[M_BIDI], 21, SPRIG_STATUS_OK, NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_CLIENT_REQUEST_COMPLETION, MID[M_BIDI], 21, NULL, 0);
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_BIDI], 21, SPRIG_STATUS_OK, NULL, 0);
    expect_nothing();
    assert_int_equal(T.client_msgs, 4);
    assert_int_equal(T.completions, 1);
}

static void test_server_concurrent_calls_same_method(void **state)
{
    (void)state;
    /* Two bidi calls on one method, told apart by call_id. */
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_BIDI], 1, NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_BIDI], 2, NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_CLIENT_STREAM, MID[M_BIDI], 2, "two", 3);
    send_pkt(SPRIG_RPC_PACKET_CLIENT_STREAM, MID[M_BIDI], 1, "one", 3);
    expect(SPRIG_RPC_PACKET_SERVER_STREAM, MID[M_BIDI], 2, SPRIG_STATUS_OK, "two", 3);
    expect(SPRIG_RPC_PACKET_SERVER_STREAM, MID[M_BIDI], 1, SPRIG_STATUS_OK, "one", 3);
    send_pkt(SPRIG_RPC_PACKET_CLIENT_REQUEST_COMPLETION, MID[M_BIDI], 2, NULL, 0);
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_BIDI], 2, SPRIG_STATUS_OK, NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_CLIENT_REQUEST_COMPLETION, MID[M_BIDI], 1, NULL, 0);
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_BIDI], 1, SPRIG_STATUS_OK, NULL, 0);
    assert_int_equal(T.requests, 2);
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 0);
}

/* ---- replies to bad packets --------------------------------------------------------------- */

static void test_server_not_found(void **state)
{
    (void)state;
    /* unknown service */
    send_on(fx.cli, SPRIG_RPC_PACKET_REQUEST, 3, 0x1234u, MID[M_UNARY], 5, SPRIG_STATUS_OK, "x", 1);
    expect_on(fx.cli, SPRIG_RPC_PACKET_SERVER_ERROR, 3, 0x1234u, MID[M_UNARY], 5,
              SPRIG_STATUS_NOT_FOUND, NULL, 0);
    /* unknown method, for every client packet type but CLIENT_ERROR */
    send_pkt(SPRIG_RPC_PACKET_REQUEST, 0x999u, 6, NULL, 0);
    expect_error(0x999u, 6, SPRIG_STATUS_NOT_FOUND);
    send_pkt(SPRIG_RPC_PACKET_CLIENT_STREAM, 0x999u, 7, "y", 1);
    expect_error(0x999u, 7, SPRIG_STATUS_NOT_FOUND);
    send_pkt(SPRIG_RPC_PACKET_CLIENT_REQUEST_COMPLETION, 0x999u, 8, NULL, 0);
    expect_error(0x999u, 8, SPRIG_STATUS_NOT_FOUND);
    /* never answer an error with an error */
    send_on(fx.cli, SPRIG_RPC_PACKET_CLIENT_ERROR, 1, 0x1234u, 0x999u, 9, SPRIG_STATUS_CANCELLED,
            NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_CLIENT_ERROR, 0x999u, 9, NULL, 0);
    expect_nothing();
    assert_int_equal(T.requests, 0);
    assert_int_equal(sprig_rpc_server_stats(&fx.srv)->dropped, 0);
}

static void test_server_no_open_call(void **state)
{
    (void)state;
    send_pkt(SPRIG_RPC_PACKET_CLIENT_STREAM, MID[M_BIDI], 4, "z", 1);
    expect_error(MID[M_BIDI], 4, SPRIG_STATUS_FAILED_PRECONDITION);
    send_pkt(SPRIG_RPC_PACKET_CLIENT_REQUEST_COMPLETION, MID[M_CSTREAM], 4, NULL, 0);
    expect_error(MID[M_CSTREAM], 4, SPRIG_STATUS_FAILED_PRECONDITION);
    /* a completion for a unary method with no open call: same */
    send_pkt(SPRIG_RPC_PACKET_CLIENT_REQUEST_COMPLETION, MID[M_UNARY], 4, NULL, 0);
    expect_error(MID[M_UNARY], 4, SPRIG_STATUS_FAILED_PRECONDITION);
    /* a CLIENT_ERROR for no call: nothing */
    send_pkt(SPRIG_RPC_PACKET_CLIENT_ERROR, MID[M_BIDI], 4, NULL, 0);
    expect_nothing();
    /* a call of another id does not match */
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_BIDI], 5, NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_CLIENT_STREAM, MID[M_BIDI], 6, "z", 1);
    expect_error(MID[M_BIDI], 6, SPRIG_STATUS_FAILED_PRECONDITION);
    /* after the client's completion, more stream is out of order */
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC_BIDI], 12, NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_CLIENT_REQUEST_COMPLETION, MID[M_ASYNC_BIDI], 12, NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_CLIENT_REQUEST_COMPLETION, MID[M_ASYNC_BIDI], 12, NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_CLIENT_STREAM, MID[M_ASYNC_BIDI], 12, "late", 4);
    expect_error(MID[M_ASYNC_BIDI], 12, SPRIG_STATUS_FAILED_PRECONDITION);
    expect_nothing();
    assert_int_equal(T.completions, 1); /* the second completion was ignored */
    assert_int_equal(T.client_msgs, 0);
    sprig_rpc_call *call = T.held[1];
    assert_int_equal(sprig_rpc_call_finish(call, NULL, 0, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_ASYNC_BIDI], 12, SPRIG_STATUS_OK, NULL, 0);
    unhold(call);
}

static void test_server_stream_to_non_streaming_method(void **state)
{
    (void)state;
    /* no call open */
    send_pkt(SPRIG_RPC_PACKET_CLIENT_STREAM, MID[M_UNARY], 3, "q", 1);
    expect_error(MID[M_UNARY], 3, SPRIG_STATUS_INVALID_ARGUMENT);
    send_pkt(SPRIG_RPC_PACKET_CLIENT_STREAM, MID[M_SSTREAM], 3, "q", 1);
    expect_error(MID[M_SSTREAM], 3, SPRIG_STATUS_INVALID_ARGUMENT);
    /* an open (async) unary call: same answer, and the call stays open */
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC], 4, NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_CLIENT_STREAM, MID[M_ASYNC], 4, "q", 1);
    expect_error(MID[M_ASYNC], 4, SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 1);
    sprig_rpc_call *call = T.held[0];
    assert_int_equal(sprig_rpc_call_finish(call, U("r"), 1, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    unhold(call);
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_ASYNC], 4, SPRIG_STATUS_OK, "r", 1);
}

static void test_server_dropped_silently(void **state)
{
    (void)state;
    static const uint8_t garbage[] = {0x2a, 0x10, 0x01};
    static const uint8_t retired[] = {0x08, 0x06, 0x10, 0x01, 0x1d, 1, 0, 0, 0, 0x25, 1, 0, 0, 0};
    send_raw_on(fx.cli, garbage, sizeof(garbage)); /* undecodable */
    send_raw_on(fx.cli, retired, sizeof(retired)); /* type 6 (retired) */
    send_raw_on(fx.cli, garbage, 0);               /* empty: a REQUEST with ids 0 */
    send_on(fx.cli, SPRIG_RPC_PACKET_REQUEST, 0, SVC, MID[M_UNARY], 1, SPRIG_STATUS_OK, "a", 1);
    send_on(fx.cli, SPRIG_RPC_PACKET_REQUEST, 1, 0, MID[M_UNARY], 1, SPRIG_STATUS_OK, "a", 1);
    send_on(fx.cli, SPRIG_RPC_PACKET_REQUEST, 1, SVC, 0, 1, SPRIG_STATUS_OK, "a", 1);
    /* server-bound parity: every odd type is dropped */
    send_pkt(SPRIG_RPC_PACKET_RESPONSE, MID[M_UNARY], 1, "a", 1);
    send_pkt(SPRIG_RPC_PACKET_SERVER_STREAM, MID[M_UNARY], 1, "a", 1);
    send_pkt(SPRIG_RPC_PACKET_SERVER_ERROR, MID[M_UNARY], 1, NULL, 0);
    send_pkt((sprig_rpc_packet_type)3, MID[M_UNARY], 1, NULL, 0);
    send_pkt((sprig_rpc_packet_type)10, MID[M_UNARY], 1, NULL, 0); /* even but unknown */
    expect_nothing();
    const sprig_rpc_stats *st = sprig_rpc_server_stats(&fx.srv);
    assert_int_equal(st->packets_in, 11);
    assert_int_equal(st->dropped, 11);
    assert_int_equal(st->packets_out, 0);
    assert_int_equal(T.requests, 0);
    /* the connection is still fine */
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_UNARY], 2, "ok", 2);
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_UNARY], 2, SPRIG_STATUS_OK, "ok", 2);
}

static void test_server_unknown_channel(void **state)
{
    (void)state;
    finish_fixture();
    start(0, CHANNEL); /* serve channel 1 only */
    send_on(fx.cli, SPRIG_RPC_PACKET_REQUEST, 2, SVC, MID[M_UNARY], 1, SPRIG_STATUS_OK, "a", 1);
    send_on(fx.cli, SPRIG_RPC_PACKET_REQUEST, 2, 0x1234u, 0x999u, 1, SPRIG_STATUS_OK, NULL, 0);
    expect_nothing();
    assert_int_equal(sprig_rpc_server_stats(&fx.srv)->dropped, 2);
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_UNARY], 1, "a", 1);
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_UNARY], 1, SPRIG_STATUS_OK, "a", 1);
}

/* ---- cancellation and replacement --------------------------------------------------------- */

static void test_server_cancel(void **state)
{
    (void)state;
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC], 30, NULL, 0);
    pump();
    assert_int_equal(T.nheld, 1);
    sprig_rpc_call *call = T.held[0];
    send_on(fx.cli, SPRIG_RPC_PACKET_CLIENT_ERROR, CHANNEL, SVC, MID[M_ASYNC], 30,
            SPRIG_STATUS_CANCELLED, NULL, 0);
    expect_nothing();
    assert_int_equal(T.aborts, 1);
    assert_int_equal(T.abort_status, SPRIG_STATUS_CANCELLED);
    assert_ptr_equal(T.abort_call, call);
    /* the async handler, late, finishes: refused, nothing sent */
    assert_int_equal(sprig_rpc_call_finish(call, U("late"), 4, SPRIG_STATUS_OK),
                     SPRIG_STATUS_FAILED_PRECONDITION);
    assert_int_equal(sprig_rpc_call_send(call, U("late"), 4), SPRIG_STATUS_FAILED_PRECONDITION);
    expect_nothing();
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 0);
    /* CLIENT_ERROR with any status (even OK, or one from the future) cancels */
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC_BIDI], 31, NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_CLIENT_ERROR, MID[M_ASYNC_BIDI], 31, NULL, 0);
    expect_nothing();
    assert_int_equal(T.aborts, 2);
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC_BIDI], 32, NULL, 0);
    static const uint8_t err99[] = {0x08, 0x04, 0x10, 0x01, 0x1d, 0,    0,    0,    0,
                                    0x25, 0,    0,    0,    0,    0x30, 0x63, 0x38, 32};
    uint8_t b[sizeof(err99)];
    memcpy(b, err99, sizeof(b));
    memcpy(b + 5, &SVC, 4);
    memcpy(b + 10, &MID[M_ASYNC_BIDI], 4);
    send_raw_on(fx.cli, b, sizeof(b));
    expect_nothing();
    assert_int_equal(T.aborts, 3);
    assert_int_equal(T.abort_status, SPRIG_STATUS_CANCELLED);
    /* a CLIENT_ERROR for a call already gone: nothing */
    send_pkt(SPRIG_RPC_PACKET_CLIENT_ERROR, MID[M_ASYNC_BIDI], 32, NULL, 0);
    expect_nothing();
    assert_int_equal(T.aborts, 3);
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 0);
}

static void test_server_cancel_legacy_id(void **state)
{
    (void)state;
    /* a CLIENT_ERROR with call_id 0 (legacy) matches the open call of that method */
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC], 44, NULL, 0);
    send_on(fx.cli, SPRIG_RPC_PACKET_CLIENT_ERROR, CHANNEL, SVC, MID[M_ASYNC], 0,
            SPRIG_STATUS_CANCELLED, NULL, 0);
    expect_nothing();
    assert_int_equal(T.aborts, 1);
    /* and a CLIENT_STREAM with 0xFFFFFFFF reaches a call with a real id */
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC_BIDI], 45, NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_CLIENT_STREAM, MID[M_ASYNC_BIDI], SPRIG_RPC_CALL_ID_OPEN, "s", 1);
    expect_nothing();
    assert_int_equal(T.client_msgs, 1);
    sprig_rpc_call *call = T.held[0];
    assert_int_equal(sprig_rpc_call_finish(call, NULL, 0, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    unhold(call);
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_ASYNC_BIDI], 45, SPRIG_STATUS_OK, NULL, 0);
}

static void test_server_request_replaces_call(void **state)
{
    (void)state;
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC], 50, "one", 3);
    pump();
    sprig_rpc_call *first = T.held[0];
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC], 50, "two", 3);
    expect_nothing();
    assert_int_equal(T.requests, 2);
    assert_int_equal(T.aborts, 1);
    assert_int_equal(T.abort_status, SPRIG_STATUS_CANCELLED);
    assert_ptr_equal(T.abort_call, first);
    assert_int_equal(T.nheld, 1);
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 1);
    sprig_rpc_call *second = T.held[0];
    assert_int_equal(sprig_rpc_call_finish(second, U("2"), 1, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    unhold(second);
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_ASYNC], 50, SPRIG_STATUS_OK, "2", 1);
    expect_nothing();
    /* the same call_id on another method is another call */
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC], 51, NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC_BIDI], 51, NULL, 0);
    pump();
    assert_int_equal(T.aborts, 1);
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 2);
}

static void test_server_call_table_full(void **state)
{
    (void)state;
    for (uint32_t id = 1; id <= MAX_CALLS; id++) {
        send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC], id, NULL, 0);
    }
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC_BIDI], 99, NULL, 0);
    expect_error(MID[M_ASYNC_BIDI], 99, SPRIG_STATUS_RESOURCE_EXHAUSTED);
    /* a synchronous unary call needs a slot too */
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_UNARY], 100, "u", 1);
    expect_error(MID[M_UNARY], 100, SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(sprig_rpc_server_stats(&fx.srv)->calls_refused, 2);
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), MAX_CALLS);
    /* a server-opened call is refused too */
    sprig_rpc_call *c = NULL;
    assert_int_equal(sprig_rpc_server_open(&fx.srv, fx.conn, 0, SVC, MID[M_BIDI], &c),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    /* replacing a call still works when full: the old slot is reused */
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC], 2, NULL, 0);
    expect_nothing();
    assert_int_equal(T.aborts, 1);
    /* one ends: room again */
    sprig_rpc_call *call = T.held[0];
    assert_int_equal(sprig_rpc_call_finish(call, NULL, 0, SPRIG_STATUS_UNAVAILABLE),
                     SPRIG_STATUS_OK);
    unhold(call);
    sprig_rpc_packet p;
    assert_true(next_on(fx.cli, &p));
    assert_int_equal(p.type, SPRIG_RPC_PACKET_RESPONSE);
    assert_int_equal(p.status, SPRIG_STATUS_UNAVAILABLE);
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_UNARY], 101, "u", 1);
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_UNARY], 101, SPRIG_STATUS_OK, "u", 1);
}

/* ---- server-opened calls ------------------------------------------------------------------ */

static void test_server_open_stream(void **state)
{
    (void)state;
    sprig_rpc_call *call = NULL;
    assert_int_equal(sprig_rpc_server_open(&fx.srv, fx.conn, 0, SVC, MID[M_ASYNC_BIDI], &call),
                     SPRIG_STATUS_OK);
    assert_non_null(call);
    assert_ptr_equal(sprig_rpc_call_service_ctx(call), NULL);
    assert_int_equal(sprig_rpc_call_send(call, U("p1"), 2), SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_call_send(call, U("p2"), 2), SPRIG_STATUS_OK);
    expect(SPRIG_RPC_PACKET_SERVER_STREAM, MID[M_ASYNC_BIDI], SPRIG_RPC_CALL_ID_OPEN,
           SPRIG_STATUS_OK, "p1", 2);
    expect(SPRIG_RPC_PACKET_SERVER_STREAM, MID[M_ASYNC_BIDI], SPRIG_RPC_CALL_ID_OPEN,
           SPRIG_STATUS_OK, "p2", 2);
    /* the client answers on it with its own id: the call adopts it */
    send_pkt(SPRIG_RPC_PACKET_CLIENT_STREAM, MID[M_ASYNC_BIDI], 77, "c", 1);
    expect_nothing();
    assert_int_equal(T.client_msgs, 1);
    assert_int_equal(sprig_rpc_call_send(call, U("p3"), 2), SPRIG_STATUS_OK);
    expect(SPRIG_RPC_PACKET_SERVER_STREAM, MID[M_ASYNC_BIDI], 77, SPRIG_STATUS_OK, "p3", 2);
    /* another id no longer matches */
    send_pkt(SPRIG_RPC_PACKET_CLIENT_STREAM, MID[M_ASYNC_BIDI], 78, "c", 1);
    expect_error(MID[M_ASYNC_BIDI], 78, SPRIG_STATUS_FAILED_PRECONDITION);
    assert_int_equal(sprig_rpc_call_finish(call, NULL, 0, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_ASYNC_BIDI], 77, SPRIG_STATUS_OK, NULL, 0);
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 0);

    /* a channel of its own, a unary response pushed at once */
    assert_int_equal(sprig_rpc_server_open(&fx.srv, fx.conn, 9, SVC, MID[M_ASYNC], &call),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_call_send(call, U("no"), 2), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_rpc_call_finish(call, U("u"), 1, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    expect_on(fx.cli, SPRIG_RPC_PACKET_RESPONSE, 9, SVC, MID[M_ASYNC], SPRIG_RPC_CALL_ID_OPEN,
              SPRIG_STATUS_OK, "u", 1);
    /* errors */
    assert_int_equal(sprig_rpc_server_open(&fx.srv, fx.conn, 0, 0x1234u, MID[M_ASYNC], &call),
                     SPRIG_STATUS_NOT_FOUND);
    assert_null(call);
    assert_int_equal(sprig_rpc_server_open(&fx.srv, fx.conn, 0, SVC, 0x999u, &call),
                     SPRIG_STATUS_NOT_FOUND);
    assert_int_equal(sprig_rpc_server_open(&fx.srv, NULL, 0, SVC, MID[M_ASYNC], &call),
                     SPRIG_STATUS_INVALID_ARGUMENT);
}

static void test_server_open_cancelled_by_client(void **state)
{
    (void)state;
    sprig_rpc_call *call = NULL;
    assert_int_equal(sprig_rpc_server_open(&fx.srv, fx.conn, 0, SVC, MID[M_ASYNC_BIDI], &call),
                     SPRIG_STATUS_OK);
    hold(call);
    /* the client cancels with the open id itself */
    send_pkt(SPRIG_RPC_PACKET_CLIENT_ERROR, MID[M_ASYNC_BIDI], SPRIG_RPC_CALL_ID_OPEN, NULL, 0);
    expect_nothing();
    assert_int_equal(T.aborts, 1);
    assert_int_equal(T.abort_status, SPRIG_STATUS_CANCELLED);
    assert_int_equal(sprig_rpc_call_send(call, U("x"), 1), SPRIG_STATUS_FAILED_PRECONDITION);
    /* a REQUEST for a method with a server-opened call replaces it */
    assert_int_equal(sprig_rpc_server_open(&fx.srv, fx.conn, 0, SVC, MID[M_ASYNC_BIDI], &call),
                     SPRIG_STATUS_OK);
    hold(call);
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC_BIDI], 5, NULL, 0);
    expect_nothing();
    assert_int_equal(T.aborts, 2);
    assert_int_equal(T.nheld, 1);
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 1);
}

/* ---- sizes and flow control --------------------------------------------------------------- */

static uint8_t big[MAX_MSG];

static void test_server_oversized_response(void **state)
{
    (void)state;
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC_BIDI], 60, NULL, 0);
    pump();
    sprig_rpc_call *call = T.held[0];
    assert_int_equal(sprig_rpc_call_max_payload(call), MAX_PAYLOAD);
    /* exactly the maximum goes */
    assert_int_equal(sprig_rpc_call_send(call, big, MAX_PAYLOAD), SPRIG_STATUS_OK);
    expect(SPRIG_RPC_PACKET_SERVER_STREAM, MID[M_ASYNC_BIDI], 60, SPRIG_STATUS_OK, big,
           MAX_PAYLOAD);
    /* one more byte ends the call: RESOURCE_EXHAUSTED to the handler and to the client */
    assert_int_equal(sprig_rpc_call_send(call, big, MAX_PAYLOAD + 1),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    unhold(call);
    expect_error(MID[M_ASYNC_BIDI], 60, SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(sprig_rpc_call_finish(call, NULL, 0, SPRIG_STATUS_OK),
                     SPRIG_STATUS_FAILED_PRECONDITION);
    assert_int_equal(sprig_rpc_call_max_payload(call), 0);
    assert_int_equal(T.aborts, 0); /* the handler heard it from the return value */
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 0);
    expect_nothing();
    /* the same through finish */
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC], 61, NULL, 0);
    pump();
    call = T.held[0];
    assert_int_equal(sprig_rpc_call_finish(call, big, sizeof(big), SPRIG_STATUS_OK),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    unhold(call);
    expect_error(MID[M_ASYNC], 61, SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 0);
}

static void test_server_pb_variants(void **state)
{
    (void)state;
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC_BIDI], 70, NULL, 0);
    pump();
    sprig_rpc_call *call = T.held[0];
    test_msg m = {.n = 300};
    m.data.funcs.encode = encode_data;
    data_len = 3;
    /* {n: 300, data: 00 00 00} */
    static const uint8_t want[] = {0x08, 0xac, 0x02, 0x12, 0x03, 0, 0, 0};
    assert_int_equal(sprig_rpc_call_send_pb(call, test_msg_fields, &m), SPRIG_STATUS_OK);
    expect(SPRIG_RPC_PACKET_SERVER_STREAM, MID[M_ASYNC_BIDI], 70, SPRIG_STATUS_OK, want,
           sizeof(want));
    /* the largest message that fits: 3 (n) + 1 + 2 (tag, length) + data = MAX_PAYLOAD */
    data_len = MAX_PAYLOAD - 6;
    assert_int_equal(sprig_rpc_call_send_pb(call, test_msg_fields, &m), SPRIG_STATUS_OK);
    sprig_rpc_packet p;
    assert_true(next_on(fx.cli, &p));
    assert_int_equal(p.payload_len, MAX_PAYLOAD);
    /* tag + 2-byte length, payload, type, channel, service, method, call_id */
    assert_int_equal(fx.in_len, 3 + MAX_PAYLOAD + 2 + 2 + 5 + 5 + 2);
    /* one byte more: the call ends, the client is told */
    data_len = MAX_PAYLOAD - 5;
    assert_int_equal(sprig_rpc_call_send_pb(call, test_msg_fields, &m),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    unhold(call);
    expect_error(MID[M_ASYNC_BIDI], 70, SPRIG_STATUS_RESOURCE_EXHAUSTED);
    /* finish_pb with a status, and an empty message (fields NULL) */
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC], 71, NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC], 72, NULL, 0);
    pump();
    data_len = 0;
    m.n = 1;
    assert_int_equal(
        sprig_rpc_call_finish_pb(T.held[0], test_msg_fields, &m, SPRIG_STATUS_NOT_FOUND),
        SPRIG_STATUS_OK);
    static const uint8_t want2[] = {0x08, 0x01, 0x12, 0x00};
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_ASYNC], 71, SPRIG_STATUS_NOT_FOUND, want2,
           sizeof(want2));
    assert_int_equal(sprig_rpc_call_finish_pb(T.held[1], NULL, NULL, SPRIG_STATUS_OK),
                     SPRIG_STATUS_OK);
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_ASYNC], 72, SPRIG_STATUS_OK, NULL, 0);
    T.nheld = 0;
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 0);
}

/* Flow control: the Flood stream fills the socket, is told UNAVAILABLE, and goes on from
 * on_ready as the client reads. */
static void test_server_flow_control_on_ready(void **state)
{
    (void)state;
    finish_fixture();
    start(100, 0); /* two 40-byte messages fill the window */
    T.flood_total = 20;
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_FLOOD], 80, NULL, 0);
    unsigned got = 0;
    bool done = false;
    for (int spins = 0; spins < 200 && !done; spins++) {
        sprig_rpc_packet p;
        while (!done && next_on(fx.cli, &p)) {
            assert_int_equal(p.call_id, 80);
            if (p.type == SPRIG_RPC_PACKET_RESPONSE) {
                assert_int_equal(p.status, SPRIG_STATUS_OK);
                done = true;
                break;
            }
            assert_int_equal(p.type, SPRIG_RPC_PACKET_SERVER_STREAM);
            assert_int_equal(p.payload_len, 40);
            assert_int_equal(p.payload[0], got); /* in order, none lost */
            got++;
        }
    }
    assert_true(done);
    assert_int_equal(got, 20);
    assert_true(T.flood_done);
    assert_true(T.flood_unavailable > 0);
    assert_true(T.ready_calls > 0);
    expect_nothing();
}

static void test_server_oversized_while_full(void **state)
{
    (void)state;
    finish_fixture();
    start(100, 0);
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC_BIDI], 90, NULL, 0);
    pump();
    sprig_rpc_call *call = T.held[0];
    unsigned sent = 0;
    sprig_status st;
    /* a 90-byte payload makes a packet larger than the window: one fills it */
    while ((st = sprig_rpc_call_send(call, big, 90)) == SPRIG_STATUS_OK) {
        sent++;
    }
    assert_int_equal(st, SPRIG_STATUS_UNAVAILABLE);
    assert_int_equal(sent, 1);
    /* too large while the socket is full: ended now, the client told once there is room */
    assert_int_equal(sprig_rpc_call_finish(call, big, sizeof(big), SPRIG_STATUS_OK),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    unhold(call);
    assert_int_equal(sprig_rpc_call_send(call, big, 1), SPRIG_STATUS_FAILED_PRECONDITION);
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 1); /* the error waits for room */
    for (unsigned i = 0; i < sent; i++) {
        expect(SPRIG_RPC_PACKET_SERVER_STREAM, MID[M_ASYNC_BIDI], 90, SPRIG_STATUS_OK, big, 90);
    }
    expect_error(MID[M_ASYNC_BIDI], 90, SPRIG_STATUS_RESOURCE_EXHAUSTED);
    expect_nothing();
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 0);
    assert_int_equal(T.ready_calls, 0); /* the call ended: no on_ready for it */
}

static void test_server_pending_error_dropped_with_conn(void **state)
{
    (void)state;
    finish_fixture();
    start(100, 0);
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC_BIDI], 91, NULL, 0);
    pump();
    sprig_rpc_call *call = T.held[0];
    assert_int_equal(sprig_rpc_call_send(call, big, 90), SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_call_send(call, big, 90), SPRIG_STATUS_UNAVAILABLE);
    assert_int_equal(sprig_rpc_call_send(call, big, sizeof(big)), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    unhold(call);
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 1);
    /* the client goes away before reading: the pending error goes with the connection */
    sprig_sock_close(fx.cli);
    fx.cli = NULL;
    pump();
    assert_int_equal(T.conn_down, 1);
    assert_int_equal(T.aborts, 0);
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 0);
}

/* ---- connections -------------------------------------------------------------------------- */

static void test_server_conn_lost_mid_stream(void **state)
{
    (void)state;
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_BIDI], 1, NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_CLIENT_STREAM, MID[M_BIDI], 1, "a", 1);
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC], 2, NULL, 0);
    expect(SPRIG_RPC_PACKET_SERVER_STREAM, MID[M_BIDI], 1, SPRIG_STATUS_OK, "a", 1);
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 2);
    sprig_rpc_call *held[2] = {T.held[0], T.held[1]};
    sprig_sock_close(fx.cli);
    fx.cli = NULL;
    pump();
    assert_int_equal(T.aborts, 2);
    assert_int_equal(T.abort_status, SPRIG_STATUS_ABORTED);
    assert_int_equal(T.conn_down, 1);
    assert_int_equal(fx.conn->in_use, 0);
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 0);
    assert_int_equal(sprig_rpc_call_send(held[0], U("x"), 1), SPRIG_STATUS_FAILED_PRECONDITION);
    assert_int_equal(sprig_rpc_call_finish(held[1], NULL, 0, SPRIG_STATUS_OK),
                     SPRIG_STATUS_FAILED_PRECONDITION);
    /* the slot serves a new connection */
    sprig_sock *a = NULL;
    sprig_sock *b = NULL;
    assert_int_equal(sprig_mem_pair(&fx.m, SPRIG_SOCK_SEQPACKET, &a, &b), SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_server_serve(&fx.srv, b, &fx.conn), SPRIG_STATUS_OK);
    fx.cli = a;
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_UNARY], 3, "again", 5);
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_UNARY], 3, SPRIG_STATUS_OK, "again", 5);
}

static void test_server_serve_slots_and_data_before_serve(void **state)
{
    (void)state;
    /* data sent before the server takes the socket is not lost */
    sprig_sock *a = NULL;
    sprig_sock *b = NULL;
    assert_int_equal(sprig_mem_pair(&fx.m, SPRIG_SOCK_SEQPACKET, &a, &b), SPRIG_STATUS_OK);
    send_on(a, SPRIG_RPC_PACKET_REQUEST, CHANNEL, SVC, MID[M_UNARY], 1, SPRIG_STATUS_OK, "early",
            5);
    pump(); /* its READABLE went to nobody */
    sprig_rpc_conn *c2 = NULL;
    assert_int_equal(sprig_rpc_server_serve(&fx.srv, b, &c2), SPRIG_STATUS_OK);
    assert_ptr_not_equal(c2, fx.conn);
    expect_on(a, SPRIG_RPC_PACKET_RESPONSE, CHANNEL, SVC, MID[M_UNARY], 1, SPRIG_STATUS_OK, "early",
              5);
    /* both slots taken */
    sprig_sock *x = NULL;
    sprig_sock *y = NULL;
    assert_int_equal(sprig_mem_pair(&fx.m, SPRIG_SOCK_SEQPACKET, &x, &y), SPRIG_STATUS_OK);
    sprig_rpc_conn *c3 = NULL;
    assert_int_equal(sprig_rpc_server_serve(&fx.srv, y, &c3), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_null(c3);
    sprig_sock_close(x);
    sprig_sock_close(y);
    assert_int_equal(T.conn_up, 2);
    /* a leaves: its connection ends */
    sprig_sock_close(a);
    pump();
    assert_int_equal(T.conn_down, 1);
    assert_int_equal(c2->in_use, 0);
}

static void test_server_listen_accept(void **state)
{
    (void)state;
    assert_int_equal(sprig_rpc_server_listen(&fx.srv, "mem:rpc"), SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_server_listen(&fx.srv, "mem:rpc2"),
                     SPRIG_STATUS_FAILED_PRECONDITION);
    /* one slot is free (fx.conn holds the other): the first dialer is served, the second is
     * accepted and closed at once */
    sprig_sock *d1 = NULL;
    sprig_sock *d2 = NULL;
    assert_int_equal(sprig_sock_dial(&fx.loop, "mem:rpc", SPRIG_SOCK_SEQPACKET, &d1),
                     SPRIG_STATUS_OK);
    pump();
    assert_int_equal(sprig_sock_dial(&fx.loop, "mem:rpc", SPRIG_SOCK_SEQPACKET, &d2),
                     SPRIG_STATUS_OK);
    pump();
    assert_int_equal(T.conn_up, 2);
    send_on(d1, SPRIG_RPC_PACKET_REQUEST, CHANNEL, SVC, MID[M_UNARY], 1, SPRIG_STATUS_OK, "d1", 2);
    expect_on(d1, SPRIG_RPC_PACKET_RESPONSE, CHANNEL, SVC, MID[M_UNARY], 1, SPRIG_STATUS_OK, "d1",
              2);
    uint8_t tmp[8];
    size_t n = 0;
    assert_int_equal(sprig_sock_recv(d2, tmp, sizeof(tmp), &n), SPRIG_STATUS_OUT_OF_RANGE);
    sprig_sock_close(d2);
    /* d1 leaves; a new dialer gets its slot */
    sprig_sock_close(d1);
    pump();
    assert_int_equal(T.conn_down, 1);
    sprig_sock *d3 = NULL;
    assert_int_equal(sprig_sock_dial(&fx.loop, "mem:rpc", SPRIG_SOCK_SEQPACKET, &d3),
                     SPRIG_STATUS_OK);
    pump();
    assert_int_equal(T.conn_up, 3);
    send_on(d3, SPRIG_RPC_PACKET_REQUEST, CHANNEL, SVC, MID[M_UNARY], 2, SPRIG_STATUS_OK, "d3", 2);
    expect_on(d3, SPRIG_RPC_PACKET_RESPONSE, CHANNEL, SVC, MID[M_UNARY], 2, SPRIG_STATUS_OK, "d3",
              2);
    sprig_sock_close(d3);
    /* teardown: deinit closes the listener */
}

/* ---- registry ----------------------------------------------------------------------------- */

static void test_server_register_unregister(void **state)
{
    (void)state;
    sprig_rpc_service dup = {.service_id = SVC, .methods = methods, .method_count = 1};
    assert_int_equal(sprig_rpc_server_register(&fx.srv, &dup), SPRIG_STATUS_ALREADY_EXISTS);
    assert_int_equal(sprig_rpc_server_register(&fx.srv, &service), SPRIG_STATUS_ALREADY_EXISTS);
    sprig_rpc_service bad = {.service_id = 0, .methods = methods, .method_count = 1};
    assert_int_equal(sprig_rpc_server_register(&fx.srv, &bad), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_rpc_method nohandler = {.method_id = 5, .kind = SPRIG_RPC_UNARY};
    sprig_rpc_service bad2 = {.service_id = 77, .methods = &nohandler, .method_count = 1};
    assert_int_equal(sprig_rpc_server_register(&fx.srv, &bad2), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_rpc_server_register(&fx.srv, NULL), SPRIG_STATUS_INVALID_ARGUMENT);
    /* unregister with calls open: on_abort(CANCELLED), the client is told CANCELLED */
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC], 5, NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC_BIDI], 6, NULL, 0);
    pump();
    assert_int_equal(sprig_rpc_server_unregister(&fx.srv, &service), SPRIG_STATUS_OK);
    assert_int_equal(T.aborts, 2);
    assert_int_equal(T.abort_status, SPRIG_STATUS_CANCELLED);
    expect_error(MID[M_ASYNC], 5, SPRIG_STATUS_CANCELLED);
    expect_error(MID[M_ASYNC_BIDI], 6, SPRIG_STATUS_CANCELLED);
    assert_int_equal(sprig_rpc_server_unregister(&fx.srv, &service), SPRIG_STATUS_NOT_FOUND);
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_UNARY], 7, NULL, 0);
    expect_error(MID[M_UNARY], 7, SPRIG_STATUS_NOT_FOUND);
    /* the other service still works; the first can come back */
    send_on(fx.cli, SPRIG_RPC_PACKET_REQUEST, CHANNEL, OTHER, PING, 8, SPRIG_STATUS_OK, "p", 1);
    expect_on(fx.cli, SPRIG_RPC_PACKET_RESPONSE, CHANNEL, OTHER, PING, 8, SPRIG_STATUS_OK, "p", 1);
    assert_int_equal(sprig_rpc_server_register(&fx.srv, &service), SPRIG_STATUS_OK);
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_UNARY], 9, NULL, 0);
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_UNARY], 9, SPRIG_STATUS_OK, NULL, 0);
}

static void test_server_init_args(void **state)
{
    (void)state;
    sprig_rpc_server s;
    sprig_rpc_server_cfg cfg = {0};
    assert_int_equal(sprig_rpc_server_init(&s, &cfg), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_rpc_server_deinit(&s); /* safe after a failed init */
    assert_int_equal(sprig_rpc_server_open_calls(&s), 0);
    assert_int_equal(sprig_rpc_server_init(NULL, &cfg), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_rpc_server_init(&s, NULL), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_rpc_server_register(&s, &service), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_rpc_server_deinit(NULL);
    /* serve refuses a socket that is not SEQPACKET */
    sprig_sock *a = NULL;
    sprig_sock *b = NULL;
    assert_int_equal(sprig_mem_pair(&fx.m, SPRIG_SOCK_STREAM, &a, &b), SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_server_serve(&fx.srv, b, NULL), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_sock_close(a);
    sprig_sock_close(b);
}

/* ---- re-entrancy -------------------------------------------------------------------------- */

static void hook_finish_others(sprig_rpc_call *call)
{
    /* finish every held call, then this one */
    while (T.nheld > 0) {
        sprig_rpc_call *c = T.held[0];
        unhold(c);
        assert_int_equal(sprig_rpc_call_finish(c, U("o"), 1, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    }
    assert_int_equal(sprig_rpc_call_finish(call, U("h"), 1, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
}

static void test_server_reentrant_finish_others(void **state)
{
    (void)state;
    T.hook = hook_finish_others;
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC], 1, NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_HOOK], 2, NULL, 0);
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_ASYNC], 1, SPRIG_STATUS_OK, "o", 1);
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_HOOK], 2, SPRIG_STATUS_OK, "h", 1);
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 0);
}

static void hook_unregister(sprig_rpc_call *call)
{
    /* unregistering our own service aborts this very call (and the held ones) */
    assert_int_equal(sprig_rpc_server_unregister(&fx.srv, &service), SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_call_finish(call, NULL, 0, SPRIG_STATUS_OK),
                     SPRIG_STATUS_FAILED_PRECONDITION);
}

static void test_server_reentrant_unregister(void **state)
{
    (void)state;
    T.hook = hook_unregister;
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC], 1, NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_HOOK], 2, NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_UNARY], 3, NULL, 0); /* same burst, after */
    expect_error(MID[M_ASYNC], 1, SPRIG_STATUS_CANCELLED);
    expect_error(MID[M_HOOK], 2, SPRIG_STATUS_CANCELLED);
    expect_error(MID[M_UNARY], 3, SPRIG_STATUS_NOT_FOUND);
    assert_int_equal(T.aborts, 2);
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 0);
}

static void hook_deinit(sprig_rpc_call *call)
{
    (void)call;
    sprig_rpc_server_deinit(&fx.srv);
}

static void test_server_reentrant_deinit(void **state)
{
    (void)state;
    T.hook = hook_deinit;
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC], 1, NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_HOOK], 2, NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_UNARY], 3, NULL, 0); /* never handled */
    pump();
    assert_int_equal(T.requests, 2);
    assert_int_equal(T.aborts, 2); /* the held call and the hook's own */
    assert_int_equal(T.abort_status, SPRIG_STATUS_ABORTED);
    assert_int_equal(T.conn_down, 1);
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 0);
    /* the client sees the end of the connection and nothing else */
    uint8_t tmp[8];
    size_t n = 0;
    assert_int_equal(sprig_sock_recv(fx.cli, tmp, sizeof(tmp), &n), SPRIG_STATUS_OUT_OF_RANGE);
}

static void abort_finishes_other(sprig_rpc_call *call, sprig_status st)
{
    (void)call;
    (void)st;
    /* from a dying connection's on_abort, finish a call on the other connection */
    if (T.nheld > 0) {
        sprig_rpc_call *c = T.held[0];
        sprig_status r = sprig_rpc_call_finish(c, U("x"), 1, SPRIG_STATUS_OK);
        if (r == SPRIG_STATUS_OK) {
            unhold(c);
        } else {
            /* the held call is on the dying connection: it will be aborted in turn */
            assert_int_equal(r, SPRIG_STATUS_ABORTED);
        }
    }
}

static void test_server_reentrant_abort_hooks(void **state)
{
    (void)state;
    sprig_sock *a = NULL;
    sprig_sock *b = NULL;
    assert_int_equal(sprig_mem_pair(&fx.m, SPRIG_SOCK_SEQPACKET, &a, &b), SPRIG_STATUS_OK);
    sprig_rpc_conn *c2 = NULL;
    assert_int_equal(sprig_rpc_server_serve(&fx.srv, b, &c2), SPRIG_STATUS_OK);
    /* two calls on fx.cli's connection, then one on a's */
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC], 1, NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC_BIDI], 2, NULL, 0);
    pump();
    send_on(a, SPRIG_RPC_PACKET_REQUEST, CHANNEL, SVC, MID[M_ASYNC], 3, SPRIG_STATUS_OK, NULL, 0);
    pump();
    assert_int_equal(T.nheld, 3);
    /* order held so that a's call is first: finished from the first on_abort */
    sprig_rpc_call *tmp = T.held[0];
    T.held[0] = T.held[2];
    T.held[2] = tmp;
    T.abort_hook = abort_finishes_other;
    sprig_sock_close(fx.cli);
    fx.cli = NULL;
    pump();
    expect_on(a, SPRIG_RPC_PACKET_RESPONSE, CHANNEL, SVC, MID[M_ASYNC], 3, SPRIG_STATUS_OK, "x", 1);
    assert_int_equal(T.aborts, 2);
    assert_int_equal(T.nheld, 0);
    assert_int_equal(T.conn_down, 1);
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 0);
    fx.cli = a;
}

static void abort_deinits(sprig_rpc_call *call, sprig_status st)
{
    (void)call;
    (void)st;
    sprig_rpc_server_deinit(&fx.srv);
}

static void test_server_reentrant_deinit_from_abort(void **state)
{
    (void)state;
    sprig_sock *a = NULL;
    sprig_sock *b = NULL;
    assert_int_equal(sprig_mem_pair(&fx.m, SPRIG_SOCK_SEQPACKET, &a, &b), SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_server_serve(&fx.srv, b, NULL), SPRIG_STATUS_OK);
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC], 1, NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC], 2, NULL, 0);
    send_on(a, SPRIG_RPC_PACKET_REQUEST, CHANNEL, SVC, MID[M_ASYNC], 3, SPRIG_STATUS_OK, NULL, 0);
    pump();
    assert_int_equal(T.nheld, 3);
    T.abort_hook = abort_deinits;
    /* the client cancels call 1: its on_abort tears the whole server down */
    send_pkt(SPRIG_RPC_PACKET_CLIENT_ERROR, MID[M_ASYNC], 1, NULL, 0);
    pump();
    assert_int_equal(T.aborts, 3);
    assert_int_equal(T.nheld, 0);
    assert_int_equal(T.conn_down, 2);
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 0);
    sprig_sock_close(a);
}

static void abort_unregisters(sprig_rpc_call *call, sprig_status st)
{
    (void)call;
    (void)st;
    T.abort_hook = NULL;
    assert_int_equal(sprig_rpc_server_unregister(&fx.srv, &service), SPRIG_STATUS_OK);
}

static void test_server_reentrant_unregister_on_replace(void **state)
{
    (void)state;
    /* a REQUEST replaces a call whose on_abort unregisters the service: the new REQUEST then
     * finds no service */
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC], 5, NULL, 0);
    pump();
    T.abort_hook = abort_unregisters;
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC], 5, NULL, 0);
    expect_error(MID[M_ASYNC], 5, SPRIG_STATUS_NOT_FOUND);
    expect_nothing();
    assert_int_equal(T.aborts, 1);
    assert_int_equal(T.requests, 1);
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 0);
}

static void hook_finish_then_send(sprig_rpc_call *call)
{
    /* finish, then try to use the handle again from the same callback */
    assert_int_equal(sprig_rpc_call_finish(call, NULL, 0, SPRIG_STATUS_INTERNAL), SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_call_send(call, U("x"), 1), SPRIG_STATUS_FAILED_PRECONDITION);
    /* and open a server call from inside the handler */
    sprig_rpc_call *open = NULL;
    assert_int_equal(sprig_rpc_server_open(&fx.srv, fx.conn, 0, SVC, MID[M_ASYNC_BIDI], &open),
                     SPRIG_STATUS_OK);
    hold(open);
}

static void test_server_reentrant_finish_then_open(void **state)
{
    (void)state;
    T.hook = hook_finish_then_send;
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_HOOK], 4, NULL, 0);
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_HOOK], 4, SPRIG_STATUS_INTERNAL, NULL, 0);
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 1);
    assert_int_equal(sprig_rpc_call_finish(T.held[0], NULL, 0, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    unhold(T.held[0]);
    expect(SPRIG_RPC_PACKET_RESPONSE, MID[M_ASYNC_BIDI], SPRIG_RPC_CALL_ID_OPEN, SPRIG_STATUS_OK,
           NULL, 0);
}

/* ---- deinit with everything open ---------------------------------------------------------- */

static void test_server_deinit_aborts_everything(void **state)
{
    (void)state;
    assert_int_equal(sprig_rpc_server_listen(&fx.srv, "mem:rpc"), SPRIG_STATUS_OK);
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_ASYNC], 1, NULL, 0);
    send_pkt(SPRIG_RPC_PACKET_REQUEST, MID[M_BIDI], 2, NULL, 0);
    pump();
    sprig_rpc_server_deinit(&fx.srv);
    assert_int_equal(T.aborts, 2);
    assert_int_equal(T.abort_status, SPRIG_STATUS_ABORTED);
    assert_int_equal(T.conn_down, 1);
    assert_int_equal(sprig_rpc_server_open_calls(&fx.srv), 0);
    /* nothing was sent for the aborted calls */
    uint8_t tmp[MAX_MSG];
    size_t n = 0;
    pump();
    assert_int_equal(sprig_sock_recv(fx.cli, tmp, sizeof(tmp), &n), SPRIG_STATUS_OUT_OF_RANGE);
}

int main(void)
{
#define T_(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T_(test_server_unary),
        T_(test_server_unary_any_channel_and_field_order),
        T_(test_server_server_stream),
        T_(test_server_client_stream),
        T_(test_server_bidi_interleaved),
        T_(test_server_concurrent_calls_same_method),
        T_(test_server_not_found),
        T_(test_server_no_open_call),
        T_(test_server_stream_to_non_streaming_method),
        T_(test_server_dropped_silently),
        T_(test_server_unknown_channel),
        T_(test_server_cancel),
        T_(test_server_cancel_legacy_id),
        T_(test_server_request_replaces_call),
        T_(test_server_call_table_full),
        T_(test_server_open_stream),
        T_(test_server_open_cancelled_by_client),
        T_(test_server_oversized_response),
        T_(test_server_pb_variants),
        T_(test_server_flow_control_on_ready),
        T_(test_server_oversized_while_full),
        T_(test_server_pending_error_dropped_with_conn),
        T_(test_server_conn_lost_mid_stream),
        T_(test_server_serve_slots_and_data_before_serve),
        T_(test_server_listen_accept),
        T_(test_server_register_unregister),
        T_(test_server_init_args),
        T_(test_server_reentrant_finish_others),
        T_(test_server_reentrant_unregister),
        T_(test_server_reentrant_deinit),
        T_(test_server_reentrant_abort_hooks),
        T_(test_server_reentrant_deinit_from_abort),
        T_(test_server_reentrant_finish_then_open),
        T_(test_server_reentrant_unregister_on_replace),
        T_(test_server_deinit_aborts_everything),
    };
#undef T_
    return cmocka_run_group_tests(tests, NULL, NULL);
}
