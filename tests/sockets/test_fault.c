/*
 * The fault-injecting wrapper over mem sockets: each fault with a fixed seed (plausible counts,
 * the same for the same seed), delays and stalls driven by a fake clock, short writes that
 * reassemble byte-exact, held messages that survive a full inner window, and no buffer leaked.
 */
#include "support.h"

#include <string.h>

#include "sprig/fault.h"
#include "sprig/mem.h"

enum { MAX_MSG = 512, NSOCKS = 8, NBUFS = 160, FBUFS = 64, MAX_RX = 12000 };
#define BUF_SIZE  (MAX_MSG + SPRIG_CONFIG_SOCK_HEADROOM)
#define FBUF_SIZE (MAX_MSG + 64)

typedef struct fixture {
    sprig_fake_clock clock;
    sprig_loop loop;
    sprig_buf_pool pool; /* the mem backend's */
    sprig_buf bufs[NBUFS];
    uint8_t mem[NBUFS * BUF_SIZE] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
    sprig_buf_pool fpool; /* the fault wrapper's, for held messages */
    sprig_buf fbufs[FBUFS];
    uint8_t fmem[FBUFS * FBUF_SIZE] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
    sprig_mem_sock socks[NSOCKS];
    sprig_mem_backend m;
    sprig_fault_sock fs;
    sprig_sock *face; /* &fs.sock */
    sprig_sock *peer; /* the unwrapped other end */
    /* what the peer received, in order */
    uint32_t seq[MAX_RX];
    size_t nrx;
    uint32_t hash;
} fixture;

static fixture fx;

static void backend_init(fixture *f, size_t window)
{
    sprig_mem_cfg cfg = {.max_message_size = MAX_MSG, .window_bytes = window};
    assert_int_equal(sprig_mem_backend_init(&f->m, &f->loop, &cfg, f->socks, NSOCKS, &f->pool),
                     SPRIG_STATUS_OK);
}

static int setup(void **state)
{
    memset(&fx, 0, sizeof(fx));
    sprig_fake_clock_init(&fx.clock, SPRIG_TIME_S(50));
    sprig_loop_cfg lcfg = {.clock = fx.clock.clock};
    assert_int_equal(sprig_loop_init(&fx.loop, &lcfg), SPRIG_STATUS_OK);
    assert_int_equal(sprig_buf_pool_init(&fx.pool, fx.bufs, fx.mem, NBUFS, BUF_SIZE),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_buf_pool_init(&fx.fpool, fx.fbufs, fx.fmem, FBUFS, FBUF_SIZE),
                     SPRIG_STATUS_OK);
    backend_init(&fx, 64 * 1024);
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 4; i++) {
        sprig_loop_poll(&f->loop, f->clock.now);
    }
    size_t in_use = sprig_mem_backend_in_use(&f->m);
    size_t bufs = sprig_buf_pool_available(&f->pool);
    size_t fbufs = sprig_buf_pool_available(&f->fpool);
    sprig_mem_backend_deinit(&f->m);
    assert_null(f->loop.tasks_head);
    assert_null(f->loop.timers); /* the wrapper's timer is not left armed */
    sprig_loop_deinit(&f->loop);
    assert_int_equal(in_use, 0);
    assert_int_equal(bufs, NBUFS);
    assert_int_equal(fbufs, FBUFS);
    return 0;
}

static void pump(fixture *f)
{
    for (int i = 0; i < 4; i++) {
        sprig_loop_poll(&f->loop, f->clock.now);
    }
}

static void advance(fixture *f, sprig_time dt)
{
    sprig_fake_clock_advance(&f->clock, dt);
    pump(f);
}

/* A mem pair of `type` whose first end is wrapped by the fault socket. */
static void wrap_pair(fixture *f, sprig_sock_type type, const sprig_fault_cfg *cfg)
{
    sprig_sock *a = NULL;
    assert_int_equal(sprig_mem_pair(&f->m, type, &a, &f->peer), SPRIG_STATUS_OK);
    assert_int_equal(sprig_fault_init(&f->fs, a, cfg, &f->fpool), SPRIG_STATUS_OK);
    f->face = &f->fs.sock;
    f->nrx = 0;
    f->hash = 2166136261u;
}

static void close_pair(fixture *f)
{
    sprig_sock_close(f->face);
    sprig_sock_close(f->peer);
    f->face = NULL;
    f->peer = NULL;
}

/* A message: its sequence number, then a pattern derived from it. */
static size_t make_msg(uint8_t *out, uint32_t seq)
{
    size_t len = 8 + seq % 24u;
    memcpy(out, &seq, sizeof(seq));
    for (size_t i = 4; i < len; i++) {
        out[i] = (uint8_t)(seq * 31u + i);
    }
    return len;
}

/* Read everything the peer has; note sequence numbers and fold the bytes into a hash. */
static void drain(fixture *f)
{
    uint8_t in[MAX_MSG];
    size_t len = 0;
    while (sprig_sock_recv(f->peer, in, sizeof(in), &len) == SPRIG_STATUS_OK) {
        uint32_t seq;
        assert_true(len >= sizeof(seq));
        memcpy(&seq, in, sizeof(seq));
        assert_true(f->nrx < MAX_RX);
        f->seq[f->nrx++] = seq;
        for (size_t i = 0; i < len; i++) {
            f->hash = (f->hash ^ in[i]) * 16777619u;
        }
    }
}

static void send_msg(fixture *f, uint32_t seq)
{
    uint8_t out[MAX_MSG];
    size_t len = make_msg(out, seq);
    assert_int_equal(sprig_sock_send(f->face, out, len, NULL), SPRIG_STATUS_OK);
}

/* Send n datagrams through the wrapper (reading as we go), let every held one out, close. */
static sprig_fault_stats run_dgram(fixture *f, const sprig_fault_cfg *cfg, uint32_t n)
{
    wrap_pair(f, SPRIG_SOCK_DGRAM, cfg);
    for (uint32_t i = 0; i < n; i++) {
        send_msg(f, i);
        advance(f, SPRIG_TIME_US(10)); /* time moves, so delayed messages keep flowing */
        if (i % 64 == 63) {
            drain(f);
        }
    }
    advance(f, SPRIG_TIME_MS(100)); /* past any delay or reorder hold */
    drain(f);
    assert_int_equal(f->fs.held.count, 0);
    assert_null(f->fs.reorder);
    sprig_fault_stats st = f->fs.stats;
    close_pair(f);
    return st;
}

typedef sprig_test_events events;

/* ---- basics -------------------------------------------------------------------------------- */

static void test_fault_init_validates(void **state)
{
    fixture *f = *state;
    sprig_fault_cfg cfg = {0};
    sprig_sock *a = NULL, *b = NULL;
    assert_int_equal(sprig_mem_pair(&f->m, SPRIG_SOCK_DGRAM, &a, &b), SPRIG_STATUS_OK);
    assert_int_equal(sprig_fault_init(NULL, a, &cfg, NULL), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_fault_init(&f->fs, NULL, &cfg, NULL), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_fault_init(&f->fs, a, NULL, NULL), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_sock_close(a);
    sprig_sock_close(b);
}

static void test_fault_passthrough(void **state)
{
    fixture *f = *state;
    sprig_fault_cfg cfg = {0};
    events ev = {0};
    sprig_addr la, pa, inner_la;
    char in[16];
    size_t n = 0;
    wrap_pair(f, SPRIG_SOCK_SEQPACKET, &cfg);
    sprig_sock *inner = f->fs.inner;
    sprig_sock_set_callback(f->face, sprig_test_record, &ev);
    assert_string_equal(f->face->ops->name, "fault");
    assert_int_equal(sprig_sock_type_of(f->face), SPRIG_SOCK_SEQPACKET);
    assert_int_equal(sprig_sock_max_message_size(f->face), MAX_MSG);
    assert_int_equal(sprig_sock_local_addr(f->face, &la), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_local_addr(inner, &inner_la), SPRIG_STATUS_OK);
    assert_true(sprig_addr_equal(&la, &inner_la));
    assert_int_equal(sprig_sock_peer_addr(f->face, &pa), SPRIG_STATUS_OK);
    /* Receive path: events and data pass through. */
    assert_int_equal(sprig_sock_send(f->peer, "ping", 4, NULL), SPRIG_STATUS_OK);
    pump(f);
    assert_int_equal(ev.readable, 1);
    assert_int_equal(sprig_sock_recv(f->face, in, sizeof(in), &n), SPRIG_STATUS_OK);
    assert_int_equal(n, 4);
    assert_int_equal(sprig_sock_recv(f->face, in, sizeof(in), &n), SPRIG_STATUS_UNAVAILABLE);
    /* Send path without faults: straight through, nothing held. */
    assert_int_equal(sprig_sock_send(f->face, "pong", 4, NULL), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_recv(f->peer, in, sizeof(in), &n), SPRIG_STATUS_OK);
    assert_memory_equal(in, "pong", 4);
    /* Zero copy: the buffer comes from the inner socket's pool and is queued as it is. */
    sprig_buf *buf = NULL;
    assert_int_equal(sprig_sock_alloc_tx(f->face, 3, &buf), SPRIG_STATUS_OK);
    assert_ptr_equal(buf->pool, &f->pool);
    assert_int_equal(sprig_buf_headroom(buf), SPRIG_CONFIG_SOCK_HEADROOM);
    assert_int_equal(sprig_buf_append(buf, "zc!", 3), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_send_buf(f->face, buf), SPRIG_STATUS_OK);
    assert_ptr_equal(((sprig_mem_sock *)f->peer)->rxq.head, buf);
    assert_int_equal(sprig_sock_recv(f->peer, in, sizeof(in), &n), SPRIG_STATUS_OK);
    assert_int_equal(f->fs.stats.sent, 2);
    assert_int_equal(sprig_buf_pool_available(&f->fpool), FBUFS);
    /* Closing the wrapper closes the inner socket: the peer sees the end. */
    sprig_sock_close(f->face);
    assert_int_equal(sprig_mem_backend_in_use(&f->m), 1);
    assert_int_equal(sprig_sock_recv(f->peer, in, sizeof(in), &n), SPRIG_STATUS_OUT_OF_RANGE);
    sprig_sock_close(f->peer);
}

static void test_fault_connect_and_close_events(void **state)
{
    fixture *f = *state;
    sprig_fault_cfg cfg = {.delay_min = SPRIG_TIME_MS(5), .delay_max = SPRIG_TIME_MS(5)};
    sprig_sock *l = NULL, *a = NULL, *b = NULL;
    events ev = {0};
    char in[8];
    size_t n = 0;
    assert_int_equal(sprig_sock_listen(&f->loop, "mem:f", SPRIG_SOCK_SEQPACKET, &l),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_dial(&f->loop, "mem:f", SPRIG_SOCK_SEQPACKET, &a), SPRIG_STATUS_OK);
    assert_int_equal(sprig_fault_init(&f->fs, a, &cfg, &f->fpool), SPRIG_STATUS_OK);
    sprig_sock_set_callback(&f->fs.sock, sprig_test_record, &ev);
    assert_int_equal(f->fs.sock.state, SPRIG_SOCK_STATE_CONNECTING);
    pump(f);
    assert_int_equal(ev.connected, 1);
    assert_int_equal(f->fs.sock.state, SPRIG_SOCK_STATE_OPEN);
    assert_int_equal(sprig_sock_accept(l, &b), SPRIG_STATUS_OK);
    /* A held message is dropped when the connection dies under it. */
    assert_int_equal(sprig_sock_send(&f->fs.sock, "held", 4, NULL), SPRIG_STATUS_OK);
    assert_int_equal(sprig_buf_pool_available(&f->fpool), FBUFS - 1);
    sprig_sock_close(b);
    pump(f);
    assert_int_equal(sprig_sock_recv(&f->fs.sock, in, sizeof(in), &n), SPRIG_STATUS_OUT_OF_RANGE);
    advance(f, SPRIG_TIME_MS(5)); /* the release finds the peer gone: ABORTED kills the inner */
    assert_int_equal(ev.closed, 1);
    assert_int_equal(ev.closed_status, SPRIG_STATUS_ABORTED);
    assert_int_equal(sprig_buf_pool_available(&f->fpool), FBUFS);
    assert_int_equal(sprig_sock_send(&f->fs.sock, "x", 1, NULL), SPRIG_STATUS_ABORTED);
    sprig_sock_close(&f->fs.sock);
    sprig_sock_close(l);
}

/* ---- DGRAM faults -------------------------------------------------------------------------- */

static void test_fault_dgram_drop(void **state)
{
    fixture *f = *state;
    sprig_fault_cfg cfg = {.seed = 1, .drop_pm = 200};
    sprig_fault_stats st = run_dgram(f, &cfg, 10000);
    assert_int_equal(st.sent, 10000);
    assert_in_range(st.dropped, 1700, 2300);
    assert_int_equal(f->nrx + st.dropped, 10000);
    for (size_t i = 1; i < f->nrx; i++) {
        assert_true(f->seq[i] > f->seq[i - 1]); /* nothing else happened to them */
    }
    assert_int_equal(st.duplicated + st.reordered + st.corrupted + st.delayed, 0);
    /* Same seed, same losses; another seed, other losses. */
    uint32_t hash = f->hash;
    sprig_fault_stats again = run_dgram(f, &cfg, 10000);
    assert_int_equal(again.dropped, st.dropped);
    assert_int_equal(f->hash, hash);
    cfg.seed = 2;
    (void)run_dgram(f, &cfg, 10000);
    assert_int_not_equal(f->hash, hash);
    /* Seed 0 is allowed. */
    cfg.seed = 0;
    st = run_dgram(f, &cfg, 1000);
    assert_in_range(st.dropped, 130, 270);
}

static void test_fault_dgram_duplicate(void **state)
{
    fixture *f = *state;
    sprig_fault_cfg cfg = {.seed = 7, .dup_pm = 100};
    static uint8_t copies[2000];
    sprig_fault_stats st = run_dgram(f, &cfg, 2000);
    assert_in_range(st.duplicated, 150, 250);
    assert_int_equal(f->nrx, 2000 + st.duplicated);
    memset(copies, 0, sizeof(copies));
    for (size_t i = 0; i < f->nrx; i++) {
        copies[f->seq[i]]++;
    }
    size_t twice = 0;
    for (size_t i = 0; i < 2000; i++) {
        assert_in_range(copies[i], 1, 2);
        twice += copies[i] == 2;
    }
    assert_int_equal(twice, st.duplicated);
}

static void test_fault_dgram_reorder(void **state)
{
    fixture *f = *state;
    sprig_fault_cfg cfg = {.seed = 11, .reorder_pm = 100};
    static uint8_t seen[2000];
    sprig_fault_stats st = run_dgram(f, &cfg, 2000);
    assert_in_range(st.reordered, 150, 250);
    assert_int_equal(f->nrx, 2000);
    memset(seen, 0, sizeof(seen));
    size_t inversions = 0;
    for (size_t i = 0; i < f->nrx; i++) {
        assert_int_equal(seen[f->seq[i]]++, 0);
        if (i > 0 && f->seq[i] < f->seq[i - 1]) {
            assert_int_equal(f->seq[i] + 1, f->seq[i - 1]); /* swapped with its successor */
            inversions++;
        }
    }
    /* Each one came after its successor, except perhaps the very last, let out by the timer. */
    assert_in_range(inversions, st.reordered - 1, st.reordered);
}

static void test_fault_dgram_reorder_released_by_timer(void **state)
{
    fixture *f = *state;
    sprig_fault_cfg cfg = {.seed = 3, .reorder_pm = 1000};
    wrap_pair(f, SPRIG_SOCK_DGRAM, &cfg);
    send_msg(f, 0);
    pump(f);
    drain(f);
    assert_int_equal(f->nrx, 0); /* held back, waiting for a successor */
    advance(f, SPRIG_TIME_MS(1) - 1);
    drain(f);
    assert_int_equal(f->nrx, 0);
    advance(f, 1);
    drain(f);
    assert_int_equal(f->nrx, 1); /* nobody came: out it goes */
    close_pair(f);
}

static void test_fault_dgram_corrupt(void **state)
{
    fixture *f = *state;
    sprig_fault_cfg cfg = {.seed = 5, .corrupt_pm = 100};
    enum { N = 2000 };
    wrap_pair(f, SPRIG_SOCK_DGRAM, &cfg);
    size_t bad = 0;
    for (uint32_t i = 0; i < N; i++) {
        uint8_t out[MAX_MSG], in[MAX_MSG];
        size_t len = make_msg(out, i), got = 0;
        assert_int_equal(sprig_sock_send(f->face, out, len, NULL), SPRIG_STATUS_OK);
        pump(f);
        assert_int_equal(sprig_sock_recv(f->peer, in, sizeof(in), &got), SPRIG_STATUS_OK);
        assert_int_equal(got, len);
        unsigned bits = 0;
        for (size_t k = 0; k < len; k++) {
            bits += (unsigned)__builtin_popcount((unsigned)(in[k] ^ out[k]));
        }
        assert_in_range(bits, 0, 1); /* exactly one bit flipped, or none */
        bad += bits;
    }
    assert_int_equal(bad, f->fs.stats.corrupted);
    assert_in_range(f->fs.stats.corrupted, 150, 250);
    close_pair(f);
}

static void test_fault_dgram_delay(void **state)
{
    fixture *f = *state;
    sprig_fault_cfg cfg = {
        .seed = 9, .delay_min = SPRIG_TIME_MS(1), .delay_max = SPRIG_TIME_MS(10)};
    enum { N = FBUFS - 4 };
    wrap_pair(f, SPRIG_SOCK_DGRAM, &cfg);
    for (uint32_t i = 0; i < N; i++) {
        send_msg(f, i);
    }
    assert_int_equal(f->fs.stats.delayed, N);
    assert_int_equal(f->fs.held.count, N);
    /* With the hold pool empty a datagram goes out at once, undelayed. */
    for (uint32_t i = N; i < FBUFS + 2; i++) {
        send_msg(f, i);
    }
    assert_int_equal(f->fs.stats.delayed, FBUFS);
    drain(f);
    assert_int_equal(f->nrx, 2);
    assert_int_equal(f->seq[0], FBUFS);
    f->nrx = 0;
    advance(f, SPRIG_TIME_MS(1) - 1);
    drain(f);
    assert_int_equal(f->nrx, 0); /* nothing before delay_min */
    size_t before = 0;
    for (int ms = 1; ms <= 10; ms++) {
        advance(f, ms == 1 ? 1 : SPRIG_TIME_MS(1));
        drain(f);
        assert_true(f->nrx >= before);
        before = f->nrx;
        if (ms < 10) {
            assert_true(f->nrx < FBUFS); /* spread over the whole range */
        }
    }
    assert_int_equal(f->nrx, FBUFS); /* all out by delay_max */
    size_t inversions = 0;
    for (size_t i = 1; i < f->nrx; i++) {
        inversions += f->seq[i] < f->seq[i - 1];
    }
    assert_true(inversions > 0); /* independent delays reorder datagrams */
    assert_int_equal(sprig_buf_pool_available(&f->fpool), FBUFS);
    close_pair(f);
}

static void test_fault_deterministic_mix(void **state)
{
    fixture *f = *state;
    sprig_fault_cfg cfg = {.seed = 42,
                           .drop_pm = 100,
                           .dup_pm = 50,
                           .reorder_pm = 50,
                           .corrupt_pm = 50,
                           .delay_min = 0,
                           .delay_max = SPRIG_TIME_US(300)};
    sprig_fault_stats a = run_dgram(f, &cfg, 3000);
    uint32_t hash = f->hash;
    size_t nrx = f->nrx;
    sprig_fault_stats b = run_dgram(f, &cfg, 3000);
    assert_memory_equal(&a, &b, sizeof(a));
    assert_int_equal(f->hash, hash);
    assert_int_equal(f->nrx, nrx);
    assert_true(a.dropped > 0 && a.duplicated > 0 && a.reordered > 0 && a.corrupted > 0);
    assert_int_equal(nrx, 3000 - a.dropped + a.duplicated);
}

/* ---- SEQPACKET ----------------------------------------------------------------------------- */

static void test_fault_seqpacket_delay_keeps_order(void **state)
{
    fixture *f = *state;
    /* Loss-type faults are configured too: SEQPACKET must ignore them. */
    sprig_fault_cfg cfg = {.seed = 13,
                           .drop_pm = 500,
                           .dup_pm = 500,
                           .reorder_pm = 500,
                           .corrupt_pm = 500,
                           .delay_min = 0,
                           .delay_max = SPRIG_TIME_MS(20)};
    enum { N = 200 };
    wrap_pair(f, SPRIG_SOCK_SEQPACKET, &cfg);
    bool lagged = false;
    for (uint32_t i = 0; i < N; i++) {
        uint8_t out[MAX_MSG];
        size_t len = make_msg(out, i);
        sprig_status st;
        while ((st = sprig_sock_send(f->face, out, len, NULL)) == SPRIG_STATUS_UNAVAILABLE) {
            advance(f, SPRIG_TIME_US(100)); /* the hold pool ran dry: wait for releases */
            drain(f);
        }
        assert_int_equal(st, SPRIG_STATUS_OK);
        advance(f, SPRIG_TIME_US(100));
        drain(f);
        lagged |= f->nrx < i + 1;
    }
    advance(f, SPRIG_TIME_MS(25));
    drain(f);
    assert_true(lagged);
    assert_int_equal(f->nrx, N);
    for (uint32_t i = 0; i < N; i++) {
        assert_int_equal(f->seq[i], i);
    }
    assert_int_equal(f->fs.stats.delayed, N);
    assert_int_equal(f->fs.stats.dropped + f->fs.stats.duplicated + f->fs.stats.reordered +
                         f->fs.stats.corrupted,
                     0);
    close_pair(f);
}

static void test_fault_held_waits_for_inner_window(void **state)
{
    fixture *f = *state;
    sprig_fault_cfg cfg = {.seed = 1, .delay_min = SPRIG_TIME_MS(1), .delay_max = SPRIG_TIME_MS(1)};
    events ev = {0};
    uint8_t msg[200] = {0}, in[MAX_MSG];
    size_t n = 0;
    sprig_mem_backend_deinit(&f->m);
    backend_init(f, 1024);
    wrap_pair(f, SPRIG_SOCK_SEQPACKET, &cfg);
    sprig_sock_set_callback(f->face, sprig_test_record, &ev);
    for (uint8_t i = 0; i < 10; i++) {
        msg[0] = i;
        assert_int_equal(sprig_sock_send(f->face, msg, sizeof(msg), NULL), SPRIG_STATUS_OK);
    }
    advance(f, SPRIG_TIME_MS(1));
    /* Five fit the inner window; the sixth is refused, kept, and the wrapper pushes back. */
    assert_int_equal(f->fs.blocked, 1);
    assert_int_equal(f->fs.held.count, 5);
    assert_int_equal(sprig_sock_send(f->face, msg, sizeof(msg), NULL), SPRIG_STATUS_UNAVAILABLE);
    uint8_t next = 0;
    while (next < 10) {
        while (sprig_sock_recv(f->peer, in, sizeof(in), &n) == SPRIG_STATUS_OK) {
            assert_int_equal(in[0], next++);
        }
        pump(f); /* the inner WRITABLE lets the rest go */
    }
    assert_int_equal(f->fs.held.count, 0);
    assert_int_equal(ev.writable, 1);
    assert_int_equal(sprig_sock_send(f->face, msg, sizeof(msg), NULL), SPRIG_STATUS_OK);
    advance(f, SPRIG_TIME_MS(1));
    assert_int_equal(sprig_sock_recv(f->peer, in, sizeof(in), &n), SPRIG_STATUS_OK);
    close_pair(f);
}

static void test_fault_shutdown_waits_for_held(void **state)
{
    fixture *f = *state;
    sprig_fault_cfg cfg = {.seed = 1, .delay_min = SPRIG_TIME_MS(5), .delay_max = SPRIG_TIME_MS(5)};
    char in[MAX_MSG];
    size_t n = 0;
    wrap_pair(f, SPRIG_SOCK_SEQPACKET, &cfg);
    for (uint32_t i = 0; i < 3; i++) {
        send_msg(f, i);
    }
    assert_int_equal(sprig_sock_shutdown(f->face), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_send(f->face, "x", 1, NULL), SPRIG_STATUS_FAILED_PRECONDITION);
    pump(f);
    assert_int_equal(sprig_sock_recv(f->peer, in, sizeof(in), &n), SPRIG_STATUS_UNAVAILABLE);
    advance(f, SPRIG_TIME_MS(5));
    drain(f);
    assert_int_equal(f->nrx, 3); /* the messages first ... */
    assert_int_equal(sprig_sock_recv(f->peer, in, sizeof(in), &n), SPRIG_STATUS_OUT_OF_RANGE);
    close_pair(f);
}

static void test_fault_close_flushes_held(void **state)
{
    fixture *f = *state;
    sprig_fault_cfg cfg = {
        .seed = 1, .delay_min = SPRIG_TIME_MS(100), .delay_max = SPRIG_TIME_MS(200)};
    wrap_pair(f, SPRIG_SOCK_DGRAM, &cfg);
    for (uint32_t i = 0; i < 10; i++) {
        send_msg(f, i);
    }
    assert_int_equal(sprig_buf_pool_available(&f->fpool), FBUFS - 10);
    sprig_sock_close(f->face);
    f->face = NULL;
    assert_int_equal(sprig_buf_pool_available(&f->fpool), FBUFS);
    assert_null(f->loop.timers);
    drain(f);
    assert_int_equal(f->nrx, 10); /* what was accepted still went out */
    sprig_sock_close(f->peer);
}

static void test_fault_no_pool_passes_at_once(void **state)
{
    fixture *f = *state;
    sprig_fault_cfg cfg = {.seed = 1, .delay_min = SPRIG_TIME_MS(5), .delay_max = SPRIG_TIME_MS(5)};
    sprig_sock *a = NULL;
    assert_int_equal(sprig_mem_pair(&f->m, SPRIG_SOCK_SEQPACKET, &a, &f->peer), SPRIG_STATUS_OK);
    assert_int_equal(sprig_fault_init(&f->fs, a, &cfg, NULL), SPRIG_STATUS_OK);
    f->face = &f->fs.sock;
    send_msg(f, 0);
    drain(f);
    assert_int_equal(f->nrx, 1);
    assert_int_equal(f->fs.stats.delayed, 0);
    close_pair(f);
}

/* ---- STREAM and stalls --------------------------------------------------------------------- */

static void test_fault_stream_short_writes(void **state)
{
    fixture *f = *state;
    sprig_fault_cfg cfg = {.seed = 1, .max_write = 7};
    static uint8_t out[5000], in[5000];
    size_t sent = 0, got = 0, sends = 0, cut = 0;
    for (size_t i = 0; i < sizeof(out); i++) {
        out[i] = (uint8_t)(i * 13u + (i >> 9));
    }
    wrap_pair(f, SPRIG_SOCK_STREAM, &cfg);
    while (sent < sizeof(out)) {
        size_t n = 0, want = sizeof(out) - sent;
        size_t ask = want < 100 ? want : 100;
        assert_int_equal(sprig_sock_send(f->face, out + sent, ask, &n), SPRIG_STATUS_OK);
        assert_in_range(n, 1, 7);
        cut += n < ask;
        sends++;
        sent += n;
        if (sends % 50 == 0) {
            size_t k = 0;
            assert_int_equal(sprig_sock_recv(f->peer, in + got, sizeof(in) - got, &k),
                             SPRIG_STATUS_OK);
            got += k;
        }
    }
    size_t k = 0;
    while (sprig_sock_recv(f->peer, in + got, sizeof(in) - got, &k) == SPRIG_STATUS_OK) {
        got += k;
    }
    assert_int_equal(got, sizeof(out));
    assert_memory_equal(in, out, sizeof(out));
    assert_int_equal(f->fs.stats.short_writes, cut);
    assert_int_equal(f->fs.stats.sent, sends);
    /* A send_buf on a STREAM goes whole: never cut short. */
    sprig_buf *buf = NULL;
    assert_int_equal(sprig_sock_alloc_tx(f->face, 20, &buf), SPRIG_STATUS_OK);
    assert_int_equal(sprig_buf_append(buf, out, 20), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_send_buf(f->face, buf), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_recv(f->peer, in, sizeof(in), &k), SPRIG_STATUS_OK);
    assert_int_equal(k, 20);
    close_pair(f);
}

/* Send everything, riding out stalls: each UNAVAILABLE must last exactly stall_time. */
static void stall_run(fixture *f, sprig_sock_type type)
{
    sprig_fault_cfg cfg = {.seed = 21, .stall_pm = 200, .stall_time = SPRIG_TIME_MS(5)};
    events ev = {0};
    enum { N = 300 };
    wrap_pair(f, type, &cfg);
    sprig_sock_set_callback(f->face, sprig_test_record, &ev);
    uint32_t i = 0;
    size_t partial = 0;
    while (i < N) {
        uint8_t out[MAX_MSG];
        size_t len = make_msg(out, i), n = 0;
        sprig_status st = sprig_sock_send(f->face, out + partial, len - partial, &n);
        if (st == SPRIG_STATUS_OK) {
            partial += type == SPRIG_SOCK_STREAM ? n : len;
            if (partial == len) {
                partial = 0;
                i++;
            }
            if (type == SPRIG_SOCK_SEQPACKET) {
                drain(f); /* keep the inner window open: every UNAVAILABLE is a stall */
            }
            continue;
        }
        assert_int_equal(st, SPRIG_STATUS_UNAVAILABLE);
        unsigned w = ev.writable;
        sprig_time t0 = f->clock.now;
        assert_int_equal(sprig_sock_send(f->face, out, 1, &n), SPRIG_STATUS_UNAVAILABLE);
        advance(f, SPRIG_TIME_MS(5) - 1);
        assert_int_equal(ev.writable, w); /* not a moment early */
        advance(f, 1);
        assert_int_equal(ev.writable, w + 1);
        assert_int_equal(f->clock.now - t0, SPRIG_TIME_MS(5));
    }
    assert_in_range(f->fs.stats.stalls, 30, 110); /* about 20% of ~375 attempts */
    assert_int_equal(ev.writable, f->fs.stats.stalls);
    if (type == SPRIG_SOCK_SEQPACKET) {
        drain(f);
        assert_int_equal(f->nrx, N);
        for (uint32_t k = 0; k < N; k++) {
            assert_int_equal(f->seq[k], k);
        }
    } else {
        static uint8_t in[N * 32];
        size_t got = 0, k = 0;
        while (sprig_sock_recv(f->peer, in + got, sizeof(in) - got, &k) == SPRIG_STATUS_OK) {
            got += k;
        }
        size_t off = 0;
        for (uint32_t s = 0; s < N; s++) {
            uint8_t want[MAX_MSG];
            size_t len = make_msg(want, s);
            assert_true(off + len <= got);
            assert_memory_equal(in + off, want, len);
            off += len;
        }
        assert_int_equal(off, got);
    }
    close_pair(f);
}

static void test_fault_stream_stalls(void **state)
{
    stall_run(*state, SPRIG_SOCK_STREAM);
}

static void test_fault_seqpacket_stalls(void **state)
{
    stall_run(*state, SPRIG_SOCK_SEQPACKET);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fault_init_validates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_passthrough, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_connect_and_close_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_dgram_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_dgram_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_dgram_reorder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_dgram_reorder_released_by_timer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fault_dgram_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_dgram_delay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_deterministic_mix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_seqpacket_delay_keeps_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_held_waits_for_inner_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_shutdown_waits_for_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_close_flushes_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_no_pool_passes_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_stream_short_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_stream_stalls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_seqpacket_stalls, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
