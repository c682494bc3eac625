/*
 * fuzz_rpc_client.c — the RPC client under hostile server packets.
 *
 * A fake server on the other end of an in-memory SEQPACKET pair sends the input, chunk by
 * chunk, to a client with one open call of each kind (ids 1..5 in this order on service SVC:
 * unary/M1 #1, server streaming/M1 #2, client streaming/M2 #3, bidi/M2 #4, a blocking-helper
 * server stream/M3 #5 with a 32-byte inbox) plus a server-opened call (M3, id 0xFFFFFFFF).
 *
 * Input: [flags][len_hi len_lo][len bytes]...   (each chunk: one message, cut to MAX_MSG)
 *   flags bit 0: the clock moves 4 ms per chunk (deadlines of 10/20/30 ms fire)
 *         bit 1: final callbacks restart their call (same storage), a few times
 *         bit 2: on_next of the server stream cancels the unary call; of the bidi call, itself
 *         bit 3: take inbox messages with next_wait after each chunk
 *         bit 4: on_next of the bidi call sends a CLIENT_STREAM back
 *         bit 5: end with the server closing (connection loss) instead of client deinit
 * Invariants (abort() on violation): every packet the client sends decodes, has an even type,
 * channel 1 and non-zero ids; a call ends exactly once per start (one final callback, or the
 * harness's cancel, or next_wait's OUT_OF_RANGE for the inbox call); at the end
 * every socket, buffer, timer and task is back.
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

enum { MAX_MSG = 256, NBUFS = 64, NCALLS = 6, MAX_RESTARTS = 8 };
#define BUF_SIZE (MAX_MSG + SPRIG_CONFIG_SOCK_HEADROOM)
#define SVC      0x14FBD052u
#define M1       0x8B470EE9u
#define M2       0x5B7866DAu
#define M3       0xD4630586u

typedef struct call_slot {
    sprig_rpc_client_call call;
    uint32_t method;
    sprig_rpc_kind kind;
    sprig_time timeout;
    int starts;
    int ends;
} call_slot;

typedef struct harness {
    sprig_fake_clock fc;
    sprig_loop loop;
    sprig_mem_backend m;
    sprig_mem_sock socks[2];
    sprig_buf_pool pool;
    sprig_buf bufs[NBUFS];
    uint8_t pool_mem[NBUFS * BUF_SIZE] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
    sprig_sock *cs;
    sprig_sock *ss;
    sprig_rpc_client c;
    uint8_t rx[MAX_MSG];
    uint8_t inbox[32];
    call_slot slots[NCALLS];
    uint8_t flags;
    int restarts;
} harness;

static harness H;

enum { U = 0, S, C, B, W, O };

static void poll_loop(harness *h)
{
    for (int i = 0; i < 8; i++) {
        sprig_loop_poll(&h->loop, h->fc.now);
    }
}

/* ---- the fake server's ears: check what the client says ----------------------------------- */

static void srv_event(sprig_sock *s, sprig_sock_event ev, sprig_status st, void *user)
{
    (void)st;
    (void)user;
    if (ev != SPRIG_SOCK_EV_READABLE) {
        return;
    }
    uint8_t buf[MAX_MSG];
    size_t n = 0;
    while (sprig_sock_recv(s, buf, sizeof(buf), &n) == SPRIG_STATUS_OK) {
        sprig_rpc_packet p;
        CHECK(sprig_rpc_packet_decode(buf, n, &p) == SPRIG_STATUS_OK);
        CHECK(((unsigned)p.type & 1u) == 0);
        CHECK(p.channel_id == 1 && p.service_id != 0 && p.method_id != 0);
    }
}

/* ---- the client's callbacks ----------------------------------------------------------------- */

static void start_slot(harness *h, call_slot *k);

static void final_cb(call_slot *k)
{
    harness *h = &H;
    CHECK(!sprig_rpc_client_call_active(&k->call));
    k->ends++;
    CHECK(k->ends == k->starts);
    if ((h->flags & 2u) && h->restarts < MAX_RESTARTS) {
        h->restarts++;
        start_slot(h, k);
    }
}

/* A cancelled call hears nothing more: its end is the cancel. */
static void cancel_slot(call_slot *k)
{
    if (sprig_rpc_client_call_active(&k->call)) {
        k->ends++;
    }
    sprig_rpc_client_cancel(&k->call);
    CHECK(!sprig_rpc_client_call_active(&k->call));
}

static void on_next(sprig_rpc_client_call *call, const uint8_t *payload, size_t len, void *user)
{
    harness *h = &H;
    call_slot *k = user;
    CHECK(payload != NULL && len <= MAX_MSG);
    CHECK(sprig_rpc_client_call_active(call));
    if (k == &h->slots[S] && (h->flags & 4u)) {
        cancel_slot(&h->slots[U]);
    }
    if (k == &h->slots[B]) {
        if (h->flags & 16u) {
            (void)sprig_rpc_client_send(call, payload, len);
        }
        if (h->flags & 4u) {
            cancel_slot(k);
        }
    }
}

static void on_completed(sprig_rpc_client_call *call, sprig_status status, const uint8_t *payload,
                         size_t len, void *user)
{
    (void)call;
    CHECK(payload != NULL && len <= MAX_MSG && (unsigned)status < SPRIG_STATUS_COUNT);
    final_cb(user);
}

static void on_error(sprig_rpc_client_call *call, sprig_status status, void *user)
{
    (void)call;
    CHECK(status != SPRIG_STATUS_OK && (unsigned)status < SPRIG_STATUS_COUNT);
    final_cb(user);
}

static const sprig_rpc_client_cbs cbs = {on_next, on_completed, on_error, NULL};

static void start_slot(harness *h, call_slot *k)
{
    sprig_status st;
    if (k == &h->slots[W]) {
        st = sprig_rpc_client_start_wait(&h->c, &k->call, SVC, k->method, k->kind, NULL, 0,
                                         h->inbox, sizeof(h->inbox), k->timeout);
    } else if (k == &h->slots[O]) {
        st = sprig_rpc_client_open(&h->c, &k->call, SVC, k->method, k->kind, &cbs, k, k->timeout);
    } else {
        st = sprig_rpc_client_start(&h->c, &k->call, SVC, k->method, k->kind,
                                    (const uint8_t *)"req", 3, &cbs, k, k->timeout);
    }
    if (st == SPRIG_STATUS_OK) {
        k->starts++;
    }
}

/* The blocking helper's call has no callbacks: count its end when next_wait says so. */
static void drain_inbox(harness *h)
{
    call_slot *k = &h->slots[W];
    if (k->starts == k->ends) {
        return;
    }
    uint8_t buf[sizeof(h->inbox)];
    size_t len = 0;
    sprig_status fin = SPRIG_STATUS_UNKNOWN;
    for (int i = 0; i < 4; i++) {
        sprig_status st = sprig_rpc_client_next_wait(&k->call, buf, sizeof(buf), &len, &fin, 0);
        if (st == SPRIG_STATUS_OUT_OF_RANGE) {
            CHECK(!sprig_rpc_client_call_active(&k->call));
            k->ends++;
            return;
        }
        CHECK(st == SPRIG_STATUS_OK || st == SPRIG_STATUS_DEADLINE_EXCEEDED);
        CHECK(len <= sizeof(h->inbox));
        if (st != SPRIG_STATUS_OK) {
            return;
        }
        poll_loop(h);
    }
}

static void harness_init(harness *h, uint8_t flags)
{
    memset(h, 0, sizeof(*h));
    h->flags = flags;
    sprig_fake_clock_init(&h->fc, 1000);
    sprig_loop_cfg lc = {.clock = h->fc.clock};
    CHECK(sprig_loop_init(&h->loop, &lc) == SPRIG_STATUS_OK);
    CHECK(sprig_buf_pool_init(&h->pool, h->bufs, h->pool_mem, NBUFS, BUF_SIZE) == SPRIG_STATUS_OK);
    sprig_mem_cfg mc = {.max_message_size = MAX_MSG, .window_bytes = 4 * MAX_MSG};
    CHECK(sprig_mem_backend_init(&h->m, &h->loop, &mc, h->socks, 2, &h->pool) == SPRIG_STATUS_OK);
    CHECK(sprig_mem_pair(&h->m, SPRIG_SOCK_SEQPACKET, &h->cs, &h->ss) == SPRIG_STATUS_OK);
    sprig_sock_set_callback(h->ss, srv_event, h);
    sprig_rpc_client_cfg cc = {
        .loop = &h->loop, .sock = h->cs, .channel_id = 1, .rx_buf = h->rx, .rx_cap = sizeof(h->rx)};
    CHECK(sprig_rpc_client_init(&h->c, &cc) == SPRIG_STATUS_OK);
    static const uint32_t methods[NCALLS] = {M1, M1, M2, M2, M3, M3};
    static const sprig_rpc_kind kinds[NCALLS] = {
        SPRIG_RPC_UNARY,          SPRIG_RPC_SERVER_STREAMING, SPRIG_RPC_CLIENT_STREAMING,
        SPRIG_RPC_BIDI_STREAMING, SPRIG_RPC_SERVER_STREAMING, SPRIG_RPC_SERVER_STREAMING};
    static const sprig_time timeouts[NCALLS] = {SPRIG_TIME_MS(10), SPRIG_TIME_MS(20),
                                                SPRIG_TIME_NEVER,  SPRIG_TIME_NEVER,
                                                SPRIG_TIME_MS(30), SPRIG_TIME_NEVER};
    for (int i = 0; i < NCALLS; i++) {
        h->slots[i].method = methods[i];
        h->slots[i].kind = kinds[i];
        h->slots[i].timeout = timeouts[i];
        start_slot(h, &h->slots[i]);
        CHECK(h->slots[i].starts == 1);
    }
    CHECK(h->slots[U].call.call_id == 1 && h->slots[W].call.call_id == 5);
    poll_loop(h);
}

static void deliver(harness *h, const uint8_t *data, size_t len)
{
    if (h->ss == NULL) {
        return;
    }
    for (int tries = 0; tries < 4; tries++) {
        sprig_status st = sprig_sock_send(h->ss, data, len, NULL);
        if (st != SPRIG_STATUS_UNAVAILABLE) {
            CHECK(st == SPRIG_STATUS_OK || st == SPRIG_STATUS_ABORTED);
            return;
        }
        /* the client has stopped reading (a full inbox) or is slow: help it along */
        drain_inbox(h);
        poll_loop(h);
    }
}

static void harness_finish(harness *h)
{
    poll_loop(h);
    if (h->flags & 32u) {
        sprig_sock_close(h->ss);
        h->ss = NULL;
        for (int i = 0; i < 16; i++) {
            drain_inbox(h);
            poll_loop(h);
        }
        CHECK(sprig_rpc_client_status(&h->c) != SPRIG_STATUS_OK);
    }
    sprig_rpc_client_deinit(&h->c);
    drain_inbox(h);
    /* exactly one end per start (the inbox call's end was seen by next_wait, or deinit ended
     * it and next_wait reported that) */
    for (int i = 0; i < NCALLS; i++) {
        CHECK(!sprig_rpc_client_call_active(&h->slots[i].call));
        CHECK(h->slots[i].ends == h->slots[i].starts);
    }
    CHECK(h->c.calls == NULL);
    if (h->ss != NULL) {
        sprig_sock_close(h->ss);
    }
    poll_loop(h);
    CHECK(sprig_mem_backend_in_use(&h->m) == 0);
    CHECK(sprig_buf_pool_available(&h->pool) == NBUFS);
    CHECK(h->loop.timers == NULL);
    sprig_mem_backend_deinit(&h->m);
    CHECK(h->loop.tasks_head == NULL);
    sprig_loop_deinit(&h->loop);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    harness *h = &H;
    harness_init(h, data[0]);
    size_t pos = 1;
    while (pos + 2 <= size) {
        size_t len = (size_t)data[pos] << 8 | data[pos + 1];
        pos += 2;
        if (len > size - pos) {
            len = size - pos;
        }
        deliver(h, data + pos, len > MAX_MSG ? MAX_MSG : len);
        pos += len;
        poll_loop(h);
        if (h->flags & 8u) {
            drain_inbox(h);
        }
        if (h->flags & 1u) {
            sprig_fake_clock_advance(&h->fc, SPRIG_TIME_MS(4));
            poll_loop(h);
        }
    }
    harness_finish(h);
    return 0;
}
