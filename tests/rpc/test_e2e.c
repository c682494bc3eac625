/*
 * Client and server end to end over real sockets: unix SEQPACKET and TCP (framed), the OS
 * backend and one sprig_os_loop running both sides (loops are single-threaded; the server and
 * the client are just two sets of callbacks on it). Every test runs once per transport.
 *
 * The test service (sprig.test.E2e):
 *   Echo    unary             answers with the request
 *   Count   server streaming  request {u16 n, u16 len}: n messages of len bytes (first four:
 *                             the index, little endian), then OK; paced by on_ready
 *   Sum     client streaming  answers {u32 messages, u32 bytes} after the client's completion
 *   Chat    bidi              echoes every message; OK after the client's completion
 *   Hold    unary             keeps the call until the test finishes it (or it is aborted)
 *   Shuffle unary             answers in batches of 16, newest first (or after 2 ms)
 * Every on_abort is counted per method, with its status.
 */
#include "support.h"

#include <stdio.h>
#include <string.h>

#include <pb_encode.h>

#include "sprig/os.h"
#include "sprig/rpc.h"

enum {
    MAX_MSG = 4096,
    SRV_CALLS = 80,
    SRV_CONNS = 4,
    M_ECHO = 0,
    M_COUNT,
    M_SUM,
    M_CHAT,
    M_HOLD,
    M_SHUFFLE,
    NMETHODS,
    BATCH = 16,
};
#define NEVER SPRIG_TIME_NEVER
#define WAIT  SPRIG_TIME_S(20)

/* message M { bytes data = 1; } for the _pb calls */
typedef PB_BYTES_ARRAY_T(512) test_msg_data_t;
typedef struct test_msg {
    test_msg_data_t data;
} test_msg;
#define test_msg_FIELDLIST(X, a) X(a, STATIC, SINGULAR, BYTES, data, 1)
#define test_msg_CALLBACK        NULL
#define test_msg_DEFAULT         NULL
PB_BIND(test_msg, test_msg, 2)
#define test_msg_fields &test_msg_msg

typedef struct progress {
    uint32_t n;    /* Count: messages to send; Sum: messages seen */
    uint32_t sent; /* Count: messages sent; Sum: bytes seen */
    uint32_t len;
    bool finishing;
    uint8_t req[8]; /* Shuffle: the request to echo */
    size_t req_len;
} progress;

typedef struct env {
    sprig_os_loop ol;
    sprig_os_backend ob;
    sprig_rpc_server srv;
    sprig_rpc_call calls[SRV_CALLS];
    sprig_rpc_conn conns[SRV_CONNS];
    uint8_t srv_rx[MAX_MSG];
    sprig_rpc_method methods[NMETHODS];
    sprig_rpc_service svc;
    uint32_t mid[NMETHODS];
    uint32_t svc_id;
    progress prog[SRV_CALLS];
    uint8_t echo_pending[SRV_CALLS][MAX_MSG]; /* an Echo answer waiting for room to send */
    size_t echo_pending_len[SRV_CALLS];
    int aborts[NMETHODS];
    sprig_status abort_status[NMETHODS];
    int requests[NMETHODS];
    sprig_rpc_call *held[SRV_CALLS];
    size_t nheld;
    sprig_rpc_call *shuffle[SRV_CALLS];
    size_t nshuffle;
    sprig_timer shuffle_timer;
    int conns_up;
    int conns_down;
    sprig_rpc_client cli;
    uint8_t cli_rx[MAX_MSG];
    bool tcp;
    char url[200];
} env;

static env E;
static unsigned url_seq;

static progress *prog_of(const sprig_rpc_call *call)
{
    return &E.prog[call - E.calls];
}

static int method_of(const sprig_rpc_call *call)
{
    return (int)(call->method - E.methods);
}

/* ---- the server's handlers --------------------------------------------------------------- */

static void srv_abort(sprig_rpc_call *call, sprig_status status)
{
    int m = method_of(call);
    E.aborts[m]++;
    E.abort_status[m] = status;
    for (size_t i = 0; i < E.nheld; i++) {
        if (E.held[i] == call) {
            E.held[i] = E.held[--E.nheld];
            break;
        }
    }
    for (size_t i = 0; i < E.nshuffle; i++) {
        if (E.shuffle[i] == call) {
            memmove(&E.shuffle[i], &E.shuffle[i + 1], (E.nshuffle - i - 1) * sizeof(E.shuffle[0]));
            E.nshuffle--;
            break;
        }
    }
}

/* Echo answers at once; when the socket is full (the client is still draining an earlier
 * stream) it keeps the answer and sends it from on_ready, as a real handler must. */
static void echo_request(sprig_rpc_call *call, const uint8_t *payload, size_t len)
{
    E.requests[M_ECHO]++;
    sprig_status st = sprig_rpc_call_finish(call, payload, len, SPRIG_STATUS_OK);
    if (st == SPRIG_STATUS_UNAVAILABLE) {
        size_t i = (size_t)(call - E.calls);
        assert_true(len <= sizeof(E.echo_pending[i]));
        memcpy(E.echo_pending[i], payload, len);
        E.echo_pending_len[i] = len;
        return;
    }
    assert_int_equal(st, SPRIG_STATUS_OK);
}

static void echo_ready(sprig_rpc_call *call)
{
    size_t i = (size_t)(call - E.calls);
    sprig_status st =
        sprig_rpc_call_finish(call, E.echo_pending[i], E.echo_pending_len[i], SPRIG_STATUS_OK);
    if (st != SPRIG_STATUS_UNAVAILABLE) {
        assert_int_equal(st, SPRIG_STATUS_OK);
    }
}

static void count_pump(sprig_rpc_call *call)
{
    progress *pr = prog_of(call);
    uint8_t msg[MAX_MSG];
    memset(msg, 0x3c, pr->len);
    while (pr->sent < pr->n) {
        memcpy(msg, &pr->sent, pr->len < 4 ? pr->len : 4);
        sprig_status st = sprig_rpc_call_send(call, msg, pr->len);
        if (st == SPRIG_STATUS_UNAVAILABLE) {
            return; /* on_ready goes on */
        }
        assert_int_equal(st, SPRIG_STATUS_OK);
        pr->sent++;
    }
    sprig_status st = sprig_rpc_call_finish(call, NULL, 0, SPRIG_STATUS_OK);
    if (st != SPRIG_STATUS_UNAVAILABLE) {
        assert_int_equal(st, SPRIG_STATUS_OK);
    }
}

static void count_request(sprig_rpc_call *call, const uint8_t *payload, size_t len)
{
    E.requests[M_COUNT]++;
    assert_int_equal(len, 4);
    progress *pr = prog_of(call);
    memset(pr, 0, sizeof(*pr));
    pr->n = (uint32_t)(payload[0] | payload[1] << 8);
    pr->len = (uint32_t)(payload[2] | payload[3] << 8);
    count_pump(call);
}

static void sum_request(sprig_rpc_call *call, const uint8_t *payload, size_t len)
{
    (void)payload;
    (void)len;
    E.requests[M_SUM]++;
    memset(prog_of(call), 0, sizeof(progress));
}

static void sum_stream(sprig_rpc_call *call, const uint8_t *payload, size_t len)
{
    (void)payload;
    progress *pr = prog_of(call);
    pr->n++;
    pr->sent += (uint32_t)len;
}

static void sum_finish(sprig_rpc_call *call)
{
    progress *pr = prog_of(call);
    uint32_t out[2] = {pr->n, pr->sent};
    sprig_status st =
        sprig_rpc_call_finish(call, (const uint8_t *)out, sizeof(out), SPRIG_STATUS_OK);
    pr->finishing = st == SPRIG_STATUS_UNAVAILABLE;
    if (!pr->finishing) {
        assert_int_equal(st, SPRIG_STATUS_OK);
    }
}

static void sum_ready(sprig_rpc_call *call)
{
    if (prog_of(call)->finishing) {
        sum_finish(call);
    }
}

static void chat_request(sprig_rpc_call *call, const uint8_t *payload, size_t len)
{
    (void)call;
    (void)payload;
    (void)len;
    E.requests[M_CHAT]++;
}

static void chat_stream(sprig_rpc_call *call, const uint8_t *payload, size_t len)
{
    assert_int_equal(sprig_rpc_call_send(call, payload, len), SPRIG_STATUS_OK);
}

static void chat_complete(sprig_rpc_call *call)
{
    assert_int_equal(sprig_rpc_call_finish(call, NULL, 0, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
}

static void hold_request(sprig_rpc_call *call, const uint8_t *payload, size_t len)
{
    (void)payload;
    (void)len;
    E.requests[M_HOLD]++;
    E.held[E.nheld++] = call;
}

/* Answer the held calls, newest first; those that meet a full socket wait for on_ready. */
static void shuffle_flush(void)
{
    size_t keep = 0;
    for (size_t i = E.nshuffle; i-- > 0;) {
        sprig_rpc_call *call = E.shuffle[i];
        progress *pr = prog_of(call);
        sprig_status st = sprig_rpc_call_finish(call, pr->req, pr->req_len, SPRIG_STATUS_OK);
        if (st == SPRIG_STATUS_UNAVAILABLE) {
            E.shuffle[keep++] = call; /* reversed again: fine, any order will do */
        } else {
            assert_int_equal(st, SPRIG_STATUS_OK);
        }
    }
    E.nshuffle = keep;
}

static void shuffle_timeout(sprig_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    shuffle_flush();
}

static void shuffle_request(sprig_rpc_call *call, const uint8_t *payload, size_t len)
{
    E.requests[M_SHUFFLE]++;
    progress *pr = prog_of(call);
    assert_true(len <= sizeof(pr->req));
    memcpy(pr->req, payload, len);
    pr->req_len = len;
    E.shuffle[E.nshuffle++] = call;
    if (E.nshuffle >= BATCH) {
        shuffle_flush();
    }
    sprig_timer_start(&E.ol.loop, &E.shuffle_timer, SPRIG_TIME_MS(2));
}

static void shuffle_ready(sprig_rpc_call *call)
{
    (void)call;
    shuffle_flush();
}

static void on_conn(sprig_rpc_server *s, sprig_rpc_conn *conn, bool up, void *ctx)
{
    (void)s;
    (void)conn;
    (void)ctx;
    if (up) {
        E.conns_up++;
    } else {
        E.conns_down++;
    }
}

/* ---- fixture ------------------------------------------------------------------------------ */

static bool conn_seen(void *arg)
{
    (void)arg;
    return E.conns_up > 0;
}

static void wait_until(bool (*done)(void *), void *arg)
{
    assert_int_equal(sprig_loop_run_until(&E.ol.loop, done, arg, WAIT), SPRIG_STATUS_OK);
}

/* Run the loop for a while (to see that nothing more happens). */
static bool never(void *arg)
{
    (void)arg;
    return false;
}

static void settle(sprig_time t)
{
    assert_int_equal(sprig_loop_run_until(&E.ol.loop, never, NULL, t),
                     SPRIG_STATUS_DEADLINE_EXCEEDED);
}

static void client_connect(void)
{
    sprig_sock *sock = NULL;
    assert_int_equal(
        sprig_sock_dial_wait(&E.ol.loop, E.url, SPRIG_SOCK_SEQPACKET, SPRIG_TIME_S(5), &sock),
        SPRIG_STATUS_OK);
    sprig_rpc_client_cfg cc = {
        .loop = &E.ol.loop, .sock = sock, .rx_buf = E.cli_rx, .rx_cap = sizeof(E.cli_rx)};
    assert_int_equal(sprig_rpc_client_init(&E.cli, &cc), SPRIG_STATUS_OK);
    wait_until(conn_seen, NULL);
}

static int setup(bool tcp)
{
    memset(&E, 0, sizeof(E));
    E.tcp = tcp;
    assert_int_equal(sprig_os_loop_init(&E.ol), SPRIG_STATUS_OK);
    sprig_os_backend_cfg bc = {.max_message_size = MAX_MSG};
    assert_int_equal(sprig_os_backend_init(&E.ob, &E.ol, &bc), SPRIG_STATUS_OK);
    sprig_rpc_server_cfg sc = {
        .loop = &E.ol.loop,
        .calls = E.calls,
        .max_calls = SRV_CALLS,
        .conns = E.conns,
        .max_conns = SRV_CONNS,
        .rx_buf = E.srv_rx,
        .rx_cap = sizeof(E.srv_rx),
        .on_conn = on_conn,
    };
    assert_int_equal(sprig_rpc_server_init(&E.srv, &sc), SPRIG_STATUS_OK);
    static const char *names[NMETHODS] = {"Echo", "Count", "Sum", "Chat", "Hold", "Shuffle"};
    static const sprig_rpc_kind kinds[NMETHODS] = {SPRIG_RPC_UNARY,
                                                   SPRIG_RPC_SERVER_STREAMING,
                                                   SPRIG_RPC_CLIENT_STREAMING,
                                                   SPRIG_RPC_BIDI_STREAMING,
                                                   SPRIG_RPC_UNARY,
                                                   SPRIG_RPC_UNARY};
    for (int i = 0; i < NMETHODS; i++) {
        E.mid[i] = sprig_rpc_hash(names[i], strlen(names[i]));
        E.methods[i].method_id = E.mid[i];
        E.methods[i].kind = kinds[i];
        E.methods[i].on_abort = srv_abort;
    }
    E.methods[M_ECHO].on_request = echo_request;
    E.methods[M_ECHO].on_ready = echo_ready;
    E.methods[M_COUNT].on_request = count_request;
    E.methods[M_COUNT].on_ready = count_pump;
    E.methods[M_SUM].on_request = sum_request;
    E.methods[M_SUM].on_client_stream = sum_stream;
    E.methods[M_SUM].on_client_complete = sum_finish;
    E.methods[M_SUM].on_ready = sum_ready;
    E.methods[M_CHAT].on_request = chat_request;
    E.methods[M_CHAT].on_client_stream = chat_stream;
    E.methods[M_CHAT].on_client_complete = chat_complete;
    E.methods[M_HOLD].on_request = hold_request;
    E.methods[M_SHUFFLE].on_request = shuffle_request;
    E.methods[M_SHUFFLE].on_ready = shuffle_ready;
    sprig_timer_init(&E.shuffle_timer, shuffle_timeout, NULL);
    E.svc_id = sprig_rpc_hash("sprig.test.E2e", strlen("sprig.test.E2e"));
    E.svc.service_id = E.svc_id;
    E.svc.name = "sprig.test.E2e";
    E.svc.methods = E.methods;
    E.svc.method_count = NMETHODS;
    assert_int_equal(sprig_rpc_server_register(&E.srv, &E.svc), SPRIG_STATUS_OK);
    if (tcp) {
        assert_int_equal(sprig_rpc_server_listen(&E.srv, "tcp://127.0.0.1:0"), SPRIG_STATUS_OK);
        sprig_addr a;
        assert_int_equal(sprig_sock_local_addr(E.srv.listener, &a), SPRIG_STATUS_OK);
        snprintf(E.url, sizeof(E.url), "tcp://127.0.0.1:%u", (unsigned)a.port);
    } else {
        snprintf(E.url, sizeof(E.url), "unix:%s/rpc%u.sock", sprig_test_tmpdir(), url_seq++);
        assert_int_equal(sprig_rpc_server_listen(&E.srv, E.url), SPRIG_STATUS_OK);
    }
    client_connect();
    return 0;
}

static int setup_unix(void **state)
{
    (void)state;
    return setup(false);
}

static int setup_tcp(void **state)
{
    (void)state;
    return setup(true);
}

static int teardown(void **state)
{
    (void)state;
    sprig_rpc_client_deinit(&E.cli);
    assert_null(E.cli.calls);
    sprig_timer_stop(&E.ol.loop, &E.shuffle_timer);
    sprig_rpc_server_deinit(&E.srv);
    assert_int_equal(sprig_rpc_server_open_calls(&E.srv), 0);
    settle(SPRIG_TIME_MS(5));
    assert_int_equal(sprig_os_backend_open_count(&E.ob), 0);
    assert_int_equal(sprig_buf_pool_available(&E.ob.pool), E.ob.pool.count);
    assert_null(E.ol.loop.timers);
    sprig_os_backend_deinit(&E.ob);
    sprig_os_loop_deinit(&E.ol);
    return 0;
}

/* ---- client-side recorders ------------------------------------------------------------------ */

typedef struct rec {
    int nexts;
    int completes;
    int errors;
    sprig_status status;
    uint8_t data[MAX_MSG];
    size_t len;
    uint32_t expect_next; /* Count: index the next message must carry */
    int cancel_after;     /* cancel the call from on_next after this many (0: never) */
    int want_nexts;       /* for nexts_at_least() */
} rec;

static void rec_next(sprig_rpc_client_call *call, const uint8_t *payload, size_t len, void *user)
{
    rec *r = user;
    if (len >= 4) {
        uint32_t idx;
        memcpy(&idx, payload, 4);
        assert_int_equal(idx, r->expect_next);
        r->expect_next++;
    }
    memcpy(r->data, payload, len);
    r->len = len;
    r->nexts++;
    if (r->cancel_after > 0 && r->nexts == r->cancel_after) {
        sprig_rpc_client_cancel(call);
    }
}

static void rec_completed(sprig_rpc_client_call *call, sprig_status status, const uint8_t *payload,
                          size_t len, void *user)
{
    (void)call;
    rec *r = user;
    r->completes++;
    r->status = status;
    memcpy(r->data, payload, len);
    r->len = len;
}

static void rec_error(sprig_rpc_client_call *call, sprig_status status, void *user)
{
    (void)call;
    rec *r = user;
    r->errors++;
    r->status = status;
}

static const sprig_rpc_client_cbs cbs = {rec_next, rec_completed, rec_error, NULL};

static bool rec_ended(void *arg)
{
    const rec *r = arg;
    return r->completes + r->errors > 0;
}

static sprig_status start(sprig_rpc_client_call *call, int m, const void *payload, size_t len,
                          rec *r, sprig_time timeout)
{
    return sprig_rpc_client_start(&E.cli, call, E.svc_id, E.mid[m], E.methods[m].kind, payload, len,
                                  &cbs, r, timeout);
}

static bool no_server_calls(void *arg)
{
    (void)arg;
    return sprig_rpc_server_open_calls(&E.srv) == 0;
}

/* ---- every call kind -------------------------------------------------------------------- */

static void test_rpc_e2e_unary(void **state)
{
    (void)state;
    sprig_rpc_client_call call = {0};
    rec r = {0};
    assert_int_equal(start(&call, M_ECHO, "hello", 5, &r, SPRIG_TIME_S(5)), SPRIG_STATUS_OK);
    wait_until(rec_ended, &r);
    assert_int_equal(r.completes, 1);
    assert_int_equal(r.status, SPRIG_STATUS_OK);
    assert_int_equal(r.len, 5);
    assert_memory_equal(r.data, "hello", 5);
    /* blocking, and the largest payload the socket takes */
    static uint8_t big[MAX_MSG];
    static uint8_t resp[MAX_MSG];
    size_t max = sprig_rpc_client_max_payload(&E.cli);
    assert_int_equal(max, MAX_MSG - SPRIG_RPC_PACKET_OVERHEAD);
    for (size_t i = 0; i < max; i++) {
        big[i] = (uint8_t)(i * 7);
    }
    size_t len = 0;
    assert_int_equal(sprig_rpc_client_unary(&E.cli, E.svc_id, E.mid[M_ECHO], big, max, resp,
                                            sizeof(resp), &len, SPRIG_TIME_S(5)),
                     SPRIG_STATUS_OK);
    assert_int_equal(len, max);
    assert_memory_equal(resp, big, max);
    assert_int_equal(sprig_rpc_client_unary(&E.cli, E.svc_id, E.mid[M_ECHO], big, max + 1, resp,
                                            sizeof(resp), &len, SPRIG_TIME_S(5)),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    /* nanopb straight into the transmit buffer */
    test_msg m = {.data = {.size = 3, .bytes = {9, 8, 7}}};
    memset(&r, 0, sizeof(r));
    assert_int_equal(sprig_rpc_client_start_pb(&E.cli, &call, E.svc_id, E.mid[M_ECHO],
                                               SPRIG_RPC_UNARY, test_msg_fields, &m, &cbs, &r,
                                               SPRIG_TIME_S(5)),
                     SPRIG_STATUS_OK);
    wait_until(rec_ended, &r);
    static const uint8_t enc[] = {0x0a, 0x03, 9, 8, 7};
    assert_int_equal(r.len, sizeof(enc));
    assert_memory_equal(r.data, enc, sizeof(enc));
    /* unknown method and service: the server says NOT_FOUND */
    assert_int_equal(sprig_rpc_client_unary(&E.cli, E.svc_id, 0x1234u, NULL, 0, resp, sizeof(resp),
                                            &len, SPRIG_TIME_S(5)),
                     SPRIG_STATUS_NOT_FOUND);
    assert_int_equal(sprig_rpc_client_unary(&E.cli, 0x4321u, E.mid[M_ECHO], NULL, 0, resp,
                                            sizeof(resp), &len, SPRIG_TIME_S(5)),
                     SPRIG_STATUS_NOT_FOUND);
    assert_int_equal(E.requests[M_ECHO], 3);
}

static void test_rpc_e2e_server_streaming(void **state)
{
    (void)state;
    /* blocking helpers: 300 messages of 1000 bytes through a one-message inbox */
    sprig_rpc_client_call call = {0};
    static uint8_t inbox[MAX_MSG];
    static uint8_t buf[MAX_MSG];
    uint8_t req[4] = {300 & 0xff, 300 >> 8, 1000 & 0xff, 1000 >> 8};
    assert_int_equal(sprig_rpc_client_start_wait(&E.cli, &call, E.svc_id, E.mid[M_COUNT],
                                                 SPRIG_RPC_SERVER_STREAMING, req, sizeof(req),
                                                 inbox, sizeof(inbox), SPRIG_TIME_S(20)),
                     SPRIG_STATUS_OK);
    for (uint32_t i = 0; i < 300; i++) {
        size_t len = 0;
        sprig_status fin = SPRIG_STATUS_UNKNOWN;
        assert_int_equal(
            sprig_rpc_client_next_wait(&call, buf, sizeof(buf), &len, &fin, SPRIG_TIME_S(5)),
            SPRIG_STATUS_OK);
        assert_int_equal(len, 1000);
        uint32_t idx;
        memcpy(&idx, buf, 4);
        assert_int_equal(idx, i);
    }
    size_t len = 0;
    sprig_status fin = SPRIG_STATUS_UNKNOWN;
    assert_int_equal(
        sprig_rpc_client_next_wait(&call, buf, sizeof(buf), &len, &fin, SPRIG_TIME_S(5)),
        SPRIG_STATUS_OUT_OF_RANGE);
    assert_int_equal(fin, SPRIG_STATUS_OK);
    /* callbacks: 2000 messages of 3000 bytes */
    rec r = {0};
    uint8_t req2[4] = {2000 & 0xff, 2000 >> 8, 3000 & 0xff, 3000 >> 8};
    assert_int_equal(start(&call, M_COUNT, req2, sizeof(req2), &r, SPRIG_TIME_S(20)),
                     SPRIG_STATUS_OK);
    wait_until(rec_ended, &r);
    assert_int_equal(r.completes, 1);
    assert_int_equal(r.status, SPRIG_STATUS_OK);
    assert_int_equal(r.nexts, 2000);
    assert_int_equal(sprig_rpc_client_stats(&E.cli)->dropped, 0);
}

static void test_rpc_e2e_client_streaming(void **state)
{
    (void)state;
    sprig_rpc_client_call call = {0};
    rec r = {0};
    static uint8_t chunk[1500];
    memset(chunk, 0x11, sizeof(chunk));
    assert_int_equal(start(&call, M_SUM, NULL, 0, &r, SPRIG_TIME_S(20)), SPRIG_STATUS_OK);
    for (int i = 0; i < 500; i++) {
        sprig_status st;
        while ((st = sprig_rpc_client_send(&call, chunk, sizeof(chunk))) ==
               SPRIG_STATUS_UNAVAILABLE) {
            assert_int_equal(sprig_loop_run_once(&E.ol.loop, SPRIG_TIME_MS(10)), SPRIG_STATUS_OK);
        }
        assert_int_equal(st, SPRIG_STATUS_OK);
    }
    test_msg m = {.data = {.size = 10}};
    assert_int_equal(sprig_rpc_client_send_pb(&call, test_msg_fields, &m), SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_client_close_send(&call), SPRIG_STATUS_OK);
    wait_until(rec_ended, &r);
    assert_int_equal(r.completes, 1);
    assert_int_equal(r.len, 8);
    uint32_t out[2];
    memcpy(out, r.data, sizeof(out));
    assert_int_equal(out[0], 501);
    assert_int_equal(out[1], 500 * sizeof(chunk) + 12);
}

static bool nexts_at_least(void *arg)
{
    const rec *r = arg;
    return r->nexts >= r->want_nexts;
}

static void test_rpc_e2e_bidi_streaming(void **state)
{
    (void)state;
    sprig_rpc_client_call call = {0};
    rec r = {0};
    assert_int_equal(start(&call, M_CHAT, NULL, 0, &r, SPRIG_TIME_S(20)), SPRIG_STATUS_OK);
    for (uint32_t i = 0; i < 50; i++) {
        uint8_t msg[16] = {0};
        memcpy(msg, &i, 4);
        assert_int_equal(sprig_rpc_client_send(&call, msg, sizeof(msg)), SPRIG_STATUS_OK);
        if (i % 10 == 9) {
            r.want_nexts = (int)i + 1;
            wait_until(nexts_at_least, &r);
        }
    }
    assert_int_equal(sprig_rpc_client_close_send(&call), SPRIG_STATUS_OK);
    wait_until(rec_ended, &r);
    assert_int_equal(r.nexts, 50);
    assert_int_equal(r.completes, 1);
    assert_int_equal(r.status, SPRIG_STATUS_OK);
}

/* The server opens a stream on its own (call id 0xFFFFFFFF); a client open call gets it. */
static void test_rpc_e2e_server_opened_stream(void **state)
{
    (void)state;
    sprig_rpc_client_call call = {0};
    rec r = {0};
    assert_int_equal(sprig_rpc_client_open(&E.cli, &call, E.svc_id, E.mid[M_COUNT],
                                           SPRIG_RPC_SERVER_STREAMING, &cbs, &r, SPRIG_TIME_S(5)),
                     SPRIG_STATUS_OK);
    sprig_rpc_conn *conn = NULL;
    for (size_t i = 0; i < SRV_CONNS; i++) {
        if (E.conns[i].in_use) {
            conn = &E.conns[i];
        }
    }
    assert_non_null(conn);
    sprig_rpc_call *sc = NULL;
    assert_int_equal(sprig_rpc_server_open(&E.srv, conn, 0, E.svc_id, E.mid[M_COUNT], &sc),
                     SPRIG_STATUS_OK);
    uint32_t zero = 0;
    assert_int_equal(sprig_rpc_call_send(sc, (const uint8_t *)&zero, 4), SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_call_finish(sc, NULL, 0, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    wait_until(rec_ended, &r);
    assert_int_equal(r.nexts, 1);
    assert_int_equal(r.completes, 1);
}

/* ---- load ------------------------------------------------------------------------------- */

enum { TOTAL = 10000, INFLIGHT = 64 };

typedef struct slot {
    sprig_rpc_client_call call;
    uint32_t seq;
    bool busy;
} slot;

typedef struct load {
    slot slots[INFLIGHT];
    uint32_t next_seq;
    uint32_t done;
    uint32_t max_done_seq;
    uint32_t out_of_order;
    uint32_t unavailable;
} load;

static load L;

static void load_completed(sprig_rpc_client_call *call, sprig_status status, const uint8_t *payload,
                           size_t len, void *user);

static void load_error(sprig_rpc_client_call *call, sprig_status status, void *user)
{
    (void)call;
    (void)user;
    fail_msg("a load call failed: %s", sprig_status_str(status));
}

static const sprig_rpc_client_cbs load_cbs = {NULL, load_completed, load_error, NULL};

static void load_start(slot *s)
{
    if (L.next_seq >= TOTAL) {
        return;
    }
    uint32_t seq = L.next_seq;
    sprig_status st =
        sprig_rpc_client_start(&E.cli, &s->call, E.svc_id, E.mid[M_SHUFFLE], SPRIG_RPC_UNARY,
                               (const uint8_t *)&seq, sizeof(seq), &load_cbs, s, SPRIG_TIME_S(10));
    if (st == SPRIG_STATUS_UNAVAILABLE) {
        L.unavailable++;
        return; /* the driver retries */
    }
    assert_int_equal(st, SPRIG_STATUS_OK);
    s->seq = seq;
    s->busy = true;
    L.next_seq++;
}

static void load_completed(sprig_rpc_client_call *call, sprig_status status, const uint8_t *payload,
                           size_t len, void *user)
{
    slot *s = user;
    assert_ptr_equal(&s->call, call);
    assert_true(s->busy);
    assert_int_equal(status, SPRIG_STATUS_OK);
    assert_int_equal(len, 4);
    uint32_t got;
    memcpy(&got, payload, 4);
    assert_int_equal(got, s->seq);
    if (s->seq < L.max_done_seq) {
        L.out_of_order++;
    } else {
        L.max_done_seq = s->seq;
    }
    L.done++;
    s->busy = false;
    load_start(s); /* the storage is free again, from inside its own callback */
}

static void test_rpc_e2e_10k_unary_64_in_flight(void **state)
{
    (void)state;
    memset(&L, 0, sizeof(L));
    for (int i = 0; i < INFLIGHT; i++) {
        load_start(&L.slots[i]);
    }
    sprig_time deadline = sprig_time_add(sprig_loop_now(&E.ol.loop), SPRIG_TIME_S(60));
    while (L.done < TOTAL) {
        assert_true(sprig_loop_now(&E.ol.loop) < deadline);
        assert_int_equal(sprig_loop_run_once(&E.ol.loop, SPRIG_TIME_MS(10)), SPRIG_STATUS_OK);
        for (int i = 0; i < INFLIGHT; i++) {
            if (!L.slots[i].busy) {
                load_start(&L.slots[i]);
            }
        }
        size_t busy = 0;
        for (int i = 0; i < INFLIGHT; i++) {
            busy += L.slots[i].busy;
        }
        assert_true(busy <= INFLIGHT);
    }
    assert_int_equal(L.done, TOTAL);
    assert_int_equal(E.requests[M_SHUFFLE], TOTAL);
    assert_true(L.out_of_order > TOTAL / 4); /* batches answered newest first */
    assert_null(E.cli.calls);
    wait_until(no_server_calls, NULL);
    assert_int_equal(sprig_rpc_client_stats(&E.cli)->dropped, 0);
    print_message("10k unary (%s): %u out of order, %u starts met a full socket\n",
                  E.tcp ? "tcp" : "unix", L.out_of_order, L.unavailable);
}

/* ---- limits, cancellation, deadlines ------------------------------------------------------ */

static bool server_holds_all(void *arg)
{
    return E.nheld == *(const size_t *)arg;
}

static void test_rpc_e2e_server_call_limit(void **state)
{
    (void)state;
    static sprig_rpc_client_call calls[SRV_CALLS + 1];
    static rec r[SRV_CALLS + 1];
    memset(calls, 0, sizeof(calls));
    memset(r, 0, sizeof(r));
    for (int i = 0; i < SRV_CALLS; i++) {
        assert_int_equal(start(&calls[i], M_HOLD, NULL, 0, &r[i], SPRIG_TIME_S(20)),
                         SPRIG_STATUS_OK);
    }
    size_t want = SRV_CALLS;
    wait_until(server_holds_all, &want);
    assert_int_equal(sprig_rpc_server_open_calls(&E.srv), SRV_CALLS);
    /* one too many */
    assert_int_equal(start(&calls[SRV_CALLS], M_ECHO, "x", 1, &r[SRV_CALLS], SPRIG_TIME_S(20)),
                     SPRIG_STATUS_OK);
    wait_until(rec_ended, &r[SRV_CALLS]);
    assert_int_equal(r[SRV_CALLS].errors, 1);
    assert_int_equal(r[SRV_CALLS].status, SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(sprig_rpc_server_stats(&E.srv)->calls_refused, 1);
    /* room again: the held calls complete */
    while (E.nheld > 0) {
        sprig_rpc_call *c = E.held[--E.nheld];
        assert_int_equal(sprig_rpc_call_finish(c, NULL, 0, SPRIG_STATUS_ALREADY_EXISTS),
                         SPRIG_STATUS_OK);
    }
    for (int i = 0; i < SRV_CALLS; i++) {
        wait_until(rec_ended, &r[i]);
        assert_int_equal(r[i].completes, 1);
        assert_int_equal(r[i].status, SPRIG_STATUS_ALREADY_EXISTS);
    }
    memset(&r[0], 0, sizeof(r[0]));
    assert_int_equal(start(&calls[0], M_ECHO, "x", 1, &r[0], SPRIG_TIME_S(20)), SPRIG_STATUS_OK);
    wait_until(rec_ended, &r[0]);
    assert_int_equal(r[0].completes, 1);
}

static bool count_aborted(void *arg)
{
    (void)arg;
    return E.aborts[M_COUNT] > 0;
}

static void test_rpc_e2e_cancel_races_completion(void **state)
{
    (void)state;
    sprig_rpc_client_call call = {0};
    rec r = {0};
    uint32_t dropped0 = sprig_rpc_client_stats(&E.cli)->dropped;
    for (int i = 0; i < 200; i++) {
        assert_int_equal(start(&call, M_HOLD, NULL, 0, &r, SPRIG_TIME_S(20)), SPRIG_STATUS_OK);
        size_t one = 1;
        wait_until(server_holds_all, &one);
        /* both ends act before either hears the other */
        sprig_rpc_call *sc = E.held[--E.nheld];
        if (i % 2 == 0) {
            assert_int_equal(sprig_rpc_call_finish(sc, (const uint8_t *)"late", 4, SPRIG_STATUS_OK),
                             SPRIG_STATUS_OK);
            sprig_rpc_client_cancel(&call);
        } else {
            sprig_rpc_client_cancel(&call);
            assert_int_equal(sprig_rpc_call_finish(sc, NULL, 0, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
        }
        assert_false(sprig_rpc_client_call_active(&call));
    }
    wait_until(no_server_calls, NULL);
    settle(SPRIG_TIME_MS(20));
    /* no callback for a cancelled call; the late RESPONSEs were dropped; the CLIENT_ERRORs
     * found finished calls (no abort, no answer) */
    assert_int_equal(r.completes + r.errors + r.nexts, 0);
    assert_int_equal(sprig_rpc_client_stats(&E.cli)->dropped - dropped0, 200);
    assert_int_equal(E.aborts[M_HOLD], 0);
    /* cancelling from on_next in the middle of a long stream */
    memset(&r, 0, sizeof(r));
    r.cancel_after = 5;
    uint8_t req[4] = {0xff, 0xff, 200, 0}; /* 65535 messages of 200 bytes */
    assert_int_equal(start(&call, M_COUNT, req, sizeof(req), &r, SPRIG_TIME_S(20)),
                     SPRIG_STATUS_OK);
    wait_until(count_aborted, NULL);
    assert_int_equal(sprig_rpc_server_open_calls(&E.srv), 0);
    assert_int_equal(E.aborts[M_COUNT], 1);
    assert_int_equal(E.abort_status[M_COUNT], SPRIG_STATUS_CANCELLED);
    settle(SPRIG_TIME_MS(20));
    assert_int_equal(r.nexts, 5);
    assert_int_equal(r.completes + r.errors, 0);
    /* the client is fine afterwards */
    memset(&r, 0, sizeof(r));
    assert_int_equal(start(&call, M_ECHO, "ok", 2, &r, SPRIG_TIME_S(5)), SPRIG_STATUS_OK);
    wait_until(rec_ended, &r);
    assert_int_equal(r.completes, 1);
}

static bool hold_aborts(void *arg)
{
    return E.aborts[M_HOLD] >= *(const int *)arg;
}

static void test_rpc_e2e_deadline_server_never_answers(void **state)
{
    (void)state;
    sprig_rpc_client_call call = {0};
    rec r = {0};
    sprig_time t0 = sprig_loop_now(&E.ol.loop);
    assert_int_equal(start(&call, M_HOLD, NULL, 0, &r, SPRIG_TIME_MS(50)), SPRIG_STATUS_OK);
    wait_until(rec_ended, &r);
    assert_true(sprig_loop_now(&E.ol.loop) - t0 >= SPRIG_TIME_MS(50));
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.status, SPRIG_STATUS_DEADLINE_EXCEEDED);
    int one = 1;
    wait_until(hold_aborts, &one);
    assert_int_equal(E.abort_status[M_HOLD], SPRIG_STATUS_CANCELLED);
    uint8_t resp[8];
    size_t len = 0;
    assert_int_equal(sprig_rpc_client_unary(&E.cli, E.svc_id, E.mid[M_HOLD], NULL, 0, resp,
                                            sizeof(resp), &len, SPRIG_TIME_MS(50)),
                     SPRIG_STATUS_DEADLINE_EXCEEDED);
    int two = 2;
    wait_until(hold_aborts, &two);
    assert_int_equal(E.nheld, 0);
}

/* ---- a peer vanishing mid-stream ----------------------------------------------------------- */

static bool all_ended(void *arg)
{
    const rec *r = arg;
    for (int i = 0; i < 3; i++) {
        if (r[i].completes + r[i].errors == 0) {
            return false;
        }
    }
    return true;
}

static void test_rpc_e2e_server_vanishes(void **state)
{
    (void)state;
    sprig_rpc_client_call calls[3] = {0};
    rec r[3] = {0};
    uint8_t req[4] = {0xff, 0xff, 100, 0};
    assert_int_equal(start(&calls[0], M_COUNT, req, sizeof(req), &r[0], NEVER), SPRIG_STATUS_OK);
    assert_int_equal(start(&calls[1], M_HOLD, NULL, 0, &r[1], NEVER), SPRIG_STATUS_OK);
    assert_int_equal(start(&calls[2], M_CHAT, NULL, 0, &r[2], NEVER), SPRIG_STATUS_OK);
    r[0].want_nexts = 10;
    wait_until(nexts_at_least, &r[0]);
    size_t one = 1;
    wait_until(server_holds_all, &one);
    sprig_rpc_server_deinit(&E.srv);
    assert_int_equal(E.aborts[M_COUNT] + E.aborts[M_HOLD] + E.aborts[M_CHAT], 3);
    assert_int_equal(E.abort_status[M_HOLD], SPRIG_STATUS_ABORTED);
    wait_until(all_ended, r);
    settle(SPRIG_TIME_MS(20));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].errors, 1);
        assert_int_equal(r[i].completes, 0);
        assert_int_equal(r[i].status, SPRIG_STATUS_ABORTED);
    }
    assert_int_not_equal(sprig_rpc_client_status(&E.cli), SPRIG_STATUS_OK);
    assert_int_equal(start(&calls[0], M_ECHO, "x", 1, &r[0], NEVER), SPRIG_STATUS_ABORTED);
}

static bool server_aborts_3(void *arg)
{
    (void)arg;
    return E.aborts[M_COUNT] + E.aborts[M_HOLD] + E.aborts[M_CHAT] == 3;
}

static void test_rpc_e2e_client_vanishes(void **state)
{
    (void)state;
    sprig_rpc_client_call calls[3] = {0};
    rec r[3] = {0};
    uint8_t req[4] = {0xff, 0xff, 100, 0};
    assert_int_equal(start(&calls[0], M_COUNT, req, sizeof(req), &r[0], NEVER), SPRIG_STATUS_OK);
    assert_int_equal(start(&calls[1], M_HOLD, NULL, 0, &r[1], NEVER), SPRIG_STATUS_OK);
    assert_int_equal(start(&calls[2], M_CHAT, NULL, 0, &r[2], NEVER), SPRIG_STATUS_OK);
    r[0].want_nexts = 10;
    wait_until(nexts_at_least, &r[0]);
    size_t one = 1;
    wait_until(server_holds_all, &one);
    sprig_rpc_client_deinit(&E.cli);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].errors, 1);
        assert_int_equal(r[i].status, SPRIG_STATUS_CANCELLED);
    }
    wait_until(server_aborts_3, NULL);
    assert_int_equal(E.abort_status[M_COUNT], SPRIG_STATUS_ABORTED);
    assert_int_equal(E.abort_status[M_HOLD], SPRIG_STATUS_ABORTED);
    assert_int_equal(E.abort_status[M_CHAT], SPRIG_STATUS_ABORTED);
    assert_int_equal(sprig_rpc_server_open_calls(&E.srv), 0);
    /* a new client on the same server works */
    E.conns_up = 0;
    client_connect();
    rec e = {0};
    assert_int_equal(start(&calls[0], M_ECHO, "again", 5, &e, SPRIG_TIME_S(5)), SPRIG_STATUS_OK);
    wait_until(rec_ended, &e);
    assert_int_equal(e.completes, 1);
}

#define BOTH(fn)                                                                                   \
    cmocka_unit_test_prestate_setup_teardown(fn, setup_unix, teardown, NULL),                      \
        cmocka_unit_test_prestate_setup_teardown(fn, setup_tcp, teardown, NULL)

int main(void)
{
    sprig_test_raise_fd_limit();
    const struct CMUnitTest tests[] = {
        BOTH(test_rpc_e2e_unary),
        BOTH(test_rpc_e2e_server_streaming),
        BOTH(test_rpc_e2e_client_streaming),
        BOTH(test_rpc_e2e_bidi_streaming),
        BOTH(test_rpc_e2e_server_opened_stream),
        BOTH(test_rpc_e2e_10k_unary_64_in_flight),
        BOTH(test_rpc_e2e_server_call_limit),
        BOTH(test_rpc_e2e_cancel_races_completion),
        BOTH(test_rpc_e2e_deadline_server_never_answers),
        BOTH(test_rpc_e2e_server_vanishes),
        BOTH(test_rpc_e2e_client_vanishes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
