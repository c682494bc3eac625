/*
 * fuzz_rpc_server.c — the RPC server under hostile packets, and the packet decoder alone.
 *
 * Input: [flags][record]...  where each record is a 2-byte big-endian word W then:
 *   W < 0x8000   W bytes (cut at the end of the input) sent by the client as one message;
 *                they are also given to sprig_rpc_packet_decode() directly, whose answer must
 *                keep its invariants (payload inside the input);
 *   W >= 0x8000  an action, W & 0xff:  0 run the loop, 1 finish the oldest held call,
 *                2 send on it, 3 the client reads everything waiting, 4 open a server call,
 *                5 unregister the test service (6 registers it again), 7 arm "the next on_abort
 *                unregisters", 8 arm "the next on_abort finishes another held call",
 *                9 send an oversized payload on the oldest held call, 10 drop the connection,
 *                11 deinit from the next Hook request.
 *   flags bit 0: serve only channel 1   bit 1: small window (flow control, UNAVAILABLE)
 *         bit 2: the client reads after every message
 *
 * The server hosts sprig.test.Test: Unary (echo), ServerStream (payload[0] % 8 messages),
 * ClientStream (finishes on completion), Bidi (echo each message), Async (held), AsyncBidi
 * (held), Hook (runs the armed re-entrant action). Invariants checked (abort on violation):
 * every reply decodes and has server->client parity and non-zero ids; a held call is finished
 * or aborted exactly once; after deinit no socket, buffer or call is left.
 */
#include "fuzz.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sprig/mem.h"
#include "sprig/rpc.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

enum { MAX_MSG = 160, NSOCKS = 4, NBUFS = 48, MAX_CALLS = 4, MAX_CONNS = 2, MAX_HELD = 8 };
#define BUF_SIZE (MAX_MSG + SPRIG_CONFIG_SOCK_HEADROOM)

enum { M_UNARY, M_SSTREAM, M_CSTREAM, M_BIDI, M_ASYNC, M_ASYNC_BIDI, M_HOOK, M_COUNT };
static const char *const names[M_COUNT] = {"Unary", "ServerStream", "ClientStream", "Bidi",
                                           "Async", "AsyncBidi",    "Hook"};

typedef struct harness {
    sprig_fake_clock fc;
    sprig_loop loop;
    sprig_mem_backend m;
    sprig_mem_sock socks[NSOCKS];
    sprig_buf_pool pool;
    sprig_buf bufs[NBUFS];
    uint8_t pool_mem[NBUFS * BUF_SIZE] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
    sprig_rpc_server srv;
    sprig_rpc_call calls[MAX_CALLS];
    sprig_rpc_conn conns[MAX_CONNS];
    uint8_t rx[MAX_MSG];
    uint8_t in[MAX_MSG];
    sprig_sock *cli;
    sprig_rpc_conn *conn;
    sprig_rpc_method methods[M_COUNT];
    sprig_rpc_service svc;
    bool registered;
    sprig_rpc_call *held[MAX_HELD];
    size_t nheld;
    bool abort_unregisters;
    bool abort_finishes;
    bool hook_deinits;
} harness;

static harness H;

static void hold(sprig_rpc_call *call)
{
    for (size_t i = 0; i < H.nheld; i++) {
        CHECK(H.held[i] != call); /* a slot is handed out once at a time */
    }
    CHECK(H.nheld < MAX_HELD);
    H.held[H.nheld++] = call;
}

static bool unhold(sprig_rpc_call *call)
{
    for (size_t i = 0; i < H.nheld; i++) {
        if (H.held[i] == call) {
            H.held[i] = H.held[--H.nheld];
            return true;
        }
    }
    return false;
}

/* Finish or send on a held call; a call that ends is let go. */
static void finish_held(sprig_rpc_call *call, const uint8_t *p, size_t len)
{
    sprig_status st = sprig_rpc_call_finish(call, p, len, SPRIG_STATUS_OK);
    if (st == SPRIG_STATUS_OK || st == SPRIG_STATUS_RESOURCE_EXHAUSTED) {
        CHECK(unhold(call));
    } else {
        CHECK(st == SPRIG_STATUS_UNAVAILABLE || st == SPRIG_STATUS_ABORTED);
    }
}

static void on_abort(sprig_rpc_call *call, sprig_status st)
{
    CHECK(st == SPRIG_STATUS_CANCELLED || st == SPRIG_STATUS_ABORTED);
    bool was_held = unhold(call);
    (void)was_held; /* synchronous handlers' calls can be aborted mid-request (re-entrancy) */
    CHECK(sprig_rpc_call_finish(call, NULL, 0, SPRIG_STATUS_OK) ==
          SPRIG_STATUS_FAILED_PRECONDITION);
    if (H.abort_unregisters) {
        H.abort_unregisters = false;
        if (sprig_rpc_server_unregister(&H.srv, &H.svc) == SPRIG_STATUS_OK) {
            H.registered = false;
        }
    }
    if (H.abort_finishes && H.nheld > 0) {
        H.abort_finishes = false;
        finish_held(H.held[0], NULL, 0);
    }
}

static void unary(sprig_rpc_call *call, const uint8_t *p, size_t len)
{
    sprig_status st = sprig_rpc_call_finish(call, p, len, SPRIG_STATUS_OK);
    CHECK(st == SPRIG_STATUS_OK || st == SPRIG_STATUS_UNAVAILABLE ||
          st == SPRIG_STATUS_RESOURCE_EXHAUSTED || st == SPRIG_STATUS_ABORTED);
    if (st == SPRIG_STATUS_UNAVAILABLE) {
        hold(call); /* finished later by an action (or aborted) */
    }
}

static void sstream(sprig_rpc_call *call, const uint8_t *p, size_t len)
{
    unsigned n = len > 0 ? p[0] % 8u : 0;
    for (unsigned i = 0; i < n; i++) {
        uint8_t b = (uint8_t)i;
        if (sprig_rpc_call_send(call, &b, 1) != SPRIG_STATUS_OK) {
            break;
        }
    }
    hold(call);
    finish_held(call, NULL, 0);
}

static void keep(sprig_rpc_call *call, const uint8_t *p, size_t len)
{
    (void)p;
    (void)len;
    hold(call);
}

static void bidi_msg(sprig_rpc_call *call, const uint8_t *p, size_t len)
{
    sprig_status st = sprig_rpc_call_send(call, p, len);
    if (st == SPRIG_STATUS_RESOURCE_EXHAUSTED) {
        CHECK(unhold(call));
    }
}

static void ignore_msg(sprig_rpc_call *call, const uint8_t *p, size_t len)
{
    (void)call;
    (void)p;
    (void)len;
}

static void complete(sprig_rpc_call *call)
{
    finish_held(call, NULL, 0);
}

static void ignore_complete(sprig_rpc_call *call)
{
    (void)call;
}

static void ready(sprig_rpc_call *call)
{
    (void)call;
}

static void hook(sprig_rpc_call *call, const uint8_t *p, size_t len)
{
    hold(call);
    if (H.hook_deinits) {
        H.hook_deinits = false;
        sprig_rpc_server_deinit(&H.srv);
        return;
    }
    /* finish every held call, this one included */
    while (H.nheld > 0) {
        sprig_rpc_call *c = H.held[0];
        sprig_status st = sprig_rpc_call_finish(c, p, len, SPRIG_STATUS_OK);
        if (st != SPRIG_STATUS_OK && st != SPRIG_STATUS_RESOURCE_EXHAUSTED) {
            break;
        }
        CHECK(unhold(c));
    }
}

static void define_service(harness *h)
{
    static const sprig_rpc_kind kinds[M_COUNT] = {
        SPRIG_RPC_UNARY,
        SPRIG_RPC_SERVER_STREAMING,
        SPRIG_RPC_CLIENT_STREAMING,
        SPRIG_RPC_BIDI_STREAMING,
        SPRIG_RPC_UNARY,
        SPRIG_RPC_BIDI_STREAMING,
        SPRIG_RPC_UNARY,
    };
    for (size_t i = 0; i < M_COUNT; i++) {
        sprig_rpc_method *m = &h->methods[i];
        m->method_id = sprig_rpc_hash(names[i], strlen(names[i]));
        m->kind = kinds[i];
        m->on_abort = on_abort;
        m->on_ready = ready;
        m->on_client_stream = ignore_msg;
        m->on_client_complete = ignore_complete;
    }
    h->methods[M_UNARY].on_request = unary;
    h->methods[M_SSTREAM].on_request = sstream;
    h->methods[M_CSTREAM].on_request = keep;
    h->methods[M_CSTREAM].on_client_complete = complete;
    h->methods[M_BIDI].on_request = keep;
    h->methods[M_BIDI].on_client_stream = bidi_msg;
    h->methods[M_BIDI].on_client_complete = complete;
    h->methods[M_ASYNC].on_request = keep;
    h->methods[M_ASYNC_BIDI].on_request = keep;
    h->methods[M_HOOK].on_request = hook;
    h->svc.service_id = sprig_rpc_hash("sprig.test.Test", 15);
    h->svc.name = "sprig.test.Test";
    h->svc.methods = h->methods;
    h->svc.method_count = M_COUNT;
}

static void pump(harness *h)
{
    for (int i = 0; i < 3; i++) {
        sprig_loop_poll(&h->loop, h->fc.now);
    }
}

/* The client reads every reply waiting; each must be a well-formed server->client packet. */
static void drain(harness *h)
{
    pump(h);
    while (h->cli != NULL) {
        size_t n = 0;
        sprig_status st = sprig_sock_recv(h->cli, h->in, sizeof(h->in), &n);
        if (st != SPRIG_STATUS_OK) {
            CHECK(st == SPRIG_STATUS_UNAVAILABLE || st == SPRIG_STATUS_OUT_OF_RANGE ||
                  st == SPRIG_STATUS_ABORTED);
            return;
        }
        sprig_rpc_packet p;
        CHECK(sprig_rpc_packet_decode(h->in, n, &p) == SPRIG_STATUS_OK);
        CHECK(((unsigned)p.type & 1u) == 1u);
        CHECK(p.channel_id != 0 && p.service_id != 0 && p.method_id != 0);
        CHECK(p.payload_len + SPRIG_RPC_PACKET_OVERHEAD <= MAX_MSG);
    }
}

static void fuzz_decode(const uint8_t *data, size_t len)
{
    sprig_rpc_packet p;
    sprig_status st = sprig_rpc_packet_decode(data, len, &p);
    if (st != SPRIG_STATUS_OK) {
        CHECK(st == SPRIG_STATUS_DATA_LOSS);
        return;
    }
    CHECK((unsigned)p.status < SPRIG_STATUS_COUNT);
    if (p.payload != NULL) {
        CHECK(p.payload >= data && p.payload_len <= len &&
              (size_t)(p.payload - data) <= len - p.payload_len);
    } else {
        CHECK(p.payload_len == 0);
    }
    /* what decodes re-encodes within N + 32 and decodes to the same fields */
    if ((uint32_t)p.type < 128u) {
        static uint8_t out[(1 << 16) + 64];
        size_t n = 0;
        CHECK(p.payload_len + SPRIG_RPC_PACKET_OVERHEAD <= sizeof(out));
        CHECK(sprig_rpc_packet_encode(&p, out, p.payload_len + SPRIG_RPC_PACKET_OVERHEAD, &n) ==
              SPRIG_STATUS_OK);
        sprig_rpc_packet q;
        CHECK(sprig_rpc_packet_decode(out, n, &q) == SPRIG_STATUS_OK);
        CHECK(q.type == p.type && q.channel_id == p.channel_id && q.service_id == p.service_id &&
              q.method_id == p.method_id && q.call_id == p.call_id && q.status == p.status &&
              q.payload_len == p.payload_len);
    }
}

static void harness_init(harness *h, uint8_t flags)
{
    memset(h, 0, sizeof(*h));
    sprig_fake_clock_init(&h->fc, 0);
    sprig_loop_cfg lc = {.clock = h->fc.clock};
    CHECK(sprig_loop_init(&h->loop, &lc) == SPRIG_STATUS_OK);
    CHECK(sprig_buf_pool_init(&h->pool, h->bufs, h->pool_mem, NBUFS, BUF_SIZE) == SPRIG_STATUS_OK);
    sprig_mem_cfg mc = {.max_message_size = MAX_MSG, .window_bytes = (flags & 2u) ? 64 : 0};
    CHECK(sprig_mem_backend_init(&h->m, &h->loop, &mc, h->socks, NSOCKS, &h->pool) ==
          SPRIG_STATUS_OK);
    sprig_rpc_server_cfg cfg = {
        .loop = &h->loop,
        .calls = h->calls,
        .max_calls = MAX_CALLS,
        .conns = h->conns,
        .max_conns = MAX_CONNS,
        .rx_buf = h->rx,
        .rx_cap = sizeof(h->rx),
        .channel_id = (flags & 1u) ? 1u : 0u,
    };
    CHECK(sprig_rpc_server_init(&h->srv, &cfg) == SPRIG_STATUS_OK);
    define_service(h);
    CHECK(sprig_rpc_server_register(&h->srv, &h->svc) == SPRIG_STATUS_OK);
    h->registered = true;
    sprig_sock *srv_end = NULL;
    CHECK(sprig_mem_pair(&h->m, SPRIG_SOCK_SEQPACKET, &h->cli, &srv_end) == SPRIG_STATUS_OK);
    CHECK(sprig_rpc_server_serve(&h->srv, srv_end, &h->conn) == SPRIG_STATUS_OK);
}

static void harness_finish(harness *h)
{
    drain(h);
    sprig_rpc_server_deinit(&h->srv);
    CHECK(h->nheld == 0); /* every held call was finished or aborted */
    CHECK(sprig_rpc_server_open_calls(&h->srv) == 0);
    sprig_sock_close(h->cli);
    h->cli = NULL;
    pump(h);
    CHECK(sprig_mem_backend_in_use(&h->m) == 0);
    CHECK(sprig_buf_pool_available(&h->pool) == NBUFS);
    sprig_mem_backend_deinit(&h->m);
    sprig_loop_deinit(&h->loop);
}

static void action(harness *h, unsigned op)
{
    static const uint8_t big[MAX_MSG];
    sprig_rpc_call *first = h->nheld > 0 ? h->held[0] : NULL;
    switch (op) {
    case 0:
        pump(h);
        break;
    case 1:
        if (first != NULL) {
            finish_held(first, big, 3);
        }
        break;
    case 2:
        if (first != NULL &&
            sprig_rpc_call_send(first, big, 5) == SPRIG_STATUS_RESOURCE_EXHAUSTED) {
            CHECK(unhold(first));
        }
        break;
    case 3:
        drain(h);
        break;
    case 4: {
        sprig_rpc_call *call = NULL;
        if (h->conn != NULL && h->conn->in_use &&
            sprig_rpc_server_open(&h->srv, h->conn, 0, h->svc.service_id,
                                  h->methods[M_ASYNC_BIDI].method_id, &call) == SPRIG_STATUS_OK) {
            hold(call);
        }
        break;
    }
    case 5:
        if (h->registered && h->srv.ready) {
            CHECK(sprig_rpc_server_unregister(&h->srv, &h->svc) == SPRIG_STATUS_OK);
            h->registered = false;
        }
        break;
    case 6:
        if (!h->registered && h->srv.ready) {
            CHECK(sprig_rpc_server_register(&h->srv, &h->svc) == SPRIG_STATUS_OK);
            h->registered = true;
        }
        break;
    case 7:
        h->abort_unregisters = true;
        break;
    case 8:
        h->abort_finishes = true;
        break;
    case 9:
        if (first != NULL) {
            sprig_status st = sprig_rpc_call_send(first, big, sizeof(big));
            CHECK(st == SPRIG_STATUS_RESOURCE_EXHAUSTED || st == SPRIG_STATUS_INVALID_ARGUMENT ||
                  st == SPRIG_STATUS_ABORTED);
            if (st == SPRIG_STATUS_RESOURCE_EXHAUSTED) {
                CHECK(unhold(first));
            }
        }
        break;
    case 10:
        sprig_sock_close(h->cli);
        h->cli = NULL;
        pump(h);
        break;
    case 11:
        h->hook_deinits = true;
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    harness *h = &H;
    uint8_t flags = data[0];
    harness_init(h, flags);
    size_t pos = 1;
    while (pos + 2 <= size) {
        unsigned w = ((unsigned)data[pos] << 8) | data[pos + 1];
        pos += 2;
        if (w & 0x8000u) {
            action(h, w & 0xffu);
            continue;
        }
        size_t n = w;
        if (n > size - pos) {
            n = size - pos;
        }
        fuzz_decode(data + pos, n);
        if (h->cli != NULL && n <= MAX_MSG) {
            sprig_status st = sprig_sock_send(h->cli, data + pos, n, NULL);
            CHECK(st == SPRIG_STATUS_OK || st == SPRIG_STATUS_UNAVAILABLE ||
                  st == SPRIG_STATUS_ABORTED);
            if (st == SPRIG_STATUS_UNAVAILABLE) {
                drain(h); /* the server is slow: let it catch up */
            }
        }
        pos += n;
        if (flags & 4u) {
            drain(h);
        } else {
            pump(h);
        }
    }
    harness_finish(h);
    return 0;
}
