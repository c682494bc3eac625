/*
 * The in-memory backend's own behaviour (the shared socket contract is checked by
 * test_conformance_mem.c): pairs, listen/dial/accept, flow control, pool exhaustion, DGRAM drops
 * and addresses, backlog, names, close semantics, event order. Driven by a fake clock and
 * sprig_loop_poll(); every teardown checks that all sockets and buffers came back.
 */
#include "support.h"

#include <string.h>

#include "sprig/mem.h"

enum { MAX_MSG = 256, WINDOW = 1024, NSOCKS = 8, NBUFS = 32, BACKLOG = 2 };
#define BUF_SIZE (MAX_MSG + SPRIG_CONFIG_SOCK_HEADROOM)

typedef struct fixture {
    sprig_fake_clock clock;
    sprig_loop loop;
    sprig_buf_pool pool;
    sprig_buf bufs[NBUFS];
    uint8_t mem[NBUFS * BUF_SIZE] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
    sprig_mem_sock socks[NSOCKS];
    sprig_mem_backend m;
} fixture;

static fixture fx;

static int setup(void **state)
{
    memset(&fx, 0, sizeof(fx));
    sprig_fake_clock_init(&fx.clock, SPRIG_TIME_S(10));
    sprig_loop_cfg lcfg = {.clock = fx.clock.clock};
    assert_int_equal(sprig_loop_init(&fx.loop, &lcfg), SPRIG_STATUS_OK);
    assert_int_equal(sprig_buf_pool_init(&fx.pool, fx.bufs, fx.mem, NBUFS, BUF_SIZE),
                     SPRIG_STATUS_OK);
    sprig_mem_cfg cfg = {.max_message_size = MAX_MSG, .window_bytes = WINDOW, .backlog = BACKLOG};
    assert_int_equal(sprig_mem_backend_init(&fx.m, &fx.loop, &cfg, fx.socks, NSOCKS, &fx.pool),
                     SPRIG_STATUS_OK);
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
    sprig_mem_backend_deinit(&f->m);
    sprig_mem_backend_deinit(&f->m); /* idempotent */
    assert_null(f->loop.backends);
    assert_null(f->loop.tasks_head); /* nothing left queued for storage that is going away */
    sprig_loop_deinit(&f->loop);
    assert_int_equal(in_use, 0);
    assert_int_equal(bufs, NBUFS);
    return 0;
}

/* A few passes of the loop at the current (fake) time. */
static void pump(fixture *f)
{
    for (int i = 0; i < 4; i++) {
        sprig_loop_poll(&f->loop, f->clock.now);
    }
}

typedef struct events {
    char log[64]; /* C R W X, in delivery order */
    size_t n;
    unsigned connected, readable, writable, closed;
    sprig_status closed_status;
    bool close_on_connected;
} events;

static void record(sprig_sock *s, sprig_sock_event ev, sprig_status st, void *user)
{
    static const char names[] = "?CRWX";
    events *e = user;
    if (e->n + 1 < sizeof(e->log)) {
        e->log[e->n++] = names[ev];
        e->log[e->n] = '\0';
    }
    switch (ev) {
    case SPRIG_SOCK_EV_CONNECTED:
        e->connected++;
        if (e->close_on_connected) {
            sprig_sock_close(s);
        }
        break;
    case SPRIG_SOCK_EV_READABLE:
        e->readable++;
        break;
    case SPRIG_SOCK_EV_WRITABLE:
        e->writable++;
        break;
    case SPRIG_SOCK_EV_CLOSED:
        e->closed++;
        e->closed_status = st;
        break;
    }
}

static void send_ok(sprig_sock *s, const char *text)
{
    size_t n = 0;
    assert_int_equal(sprig_sock_send(s, text, strlen(text), &n), SPRIG_STATUS_OK);
    assert_int_equal(n, strlen(text));
}

static void recv_text(sprig_sock *s, const char *want)
{
    char in[MAX_MSG + 1];
    size_t len = 0;
    assert_int_equal(sprig_sock_recv(s, in, sizeof(in) - 1, &len), SPRIG_STATUS_OK);
    in[len] = '\0';
    assert_string_equal(in, want);
}

/* ---- init ---------------------------------------------------------------------------------- */

static void test_mem_init_validates(void **state)
{
    fixture *f = *state;
    sprig_mem_backend other;
    sprig_mem_sock socks[2];
    sprig_mem_cfg big = {.max_message_size = BUF_SIZE}; /* no room left for headroom */
    assert_int_equal(sprig_mem_backend_init(NULL, &f->loop, NULL, socks, 2, &f->pool),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_mem_backend_init(&other, &f->loop, NULL, NULL, 2, &f->pool),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_mem_backend_deinit(&other); /* safe after a failed init */
    assert_int_equal(sprig_mem_backend_init(&other, &f->loop, NULL, socks, 0, &f->pool),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_mem_backend_init(&other, NULL, NULL, socks, 2, &f->pool),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_mem_backend_init(&other, &f->loop, &big, socks, 2, &f->pool),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    /* The default max message (64 KiB) does not fit these small buffers either. */
    assert_int_equal(sprig_mem_backend_init(&other, &f->loop, NULL, socks, 2, &f->pool),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_mem_backend_deinit(&other);
    sprig_mem_backend_deinit(NULL);
    assert_int_equal(sprig_mem_backend_in_use(NULL), 0);
    assert_ptr_equal(f->loop.backends, &f->m.backend); /* only the fixture's is registered */
    assert_int_equal(f->m.cfg.window_bytes, WINDOW);
}

static void test_mem_defaults(void **state)
{
    fixture *f = *state;
    static sprig_buf bufs[2];
    static uint8_t mem[2 * (SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE + SPRIG_CONFIG_SOCK_HEADROOM)]
        __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
    sprig_buf_pool pool;
    sprig_mem_backend other;
    sprig_mem_sock socks[2];
    assert_int_equal(sprig_buf_pool_init(&pool, bufs, mem, 2, sizeof(mem) / 2), SPRIG_STATUS_OK);
    assert_int_equal(sprig_mem_backend_init(&other, &f->loop, NULL, socks, 2, &pool),
                     SPRIG_STATUS_OK);
    assert_int_equal(other.cfg.max_message_size, SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE);
    assert_int_equal(other.cfg.window_bytes, 4 * SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE);
    assert_int_equal(other.cfg.backlog, 16);
    sprig_mem_backend_deinit(&other);
    sprig_mem_backend_deinit(&other);
    assert_ptr_equal(f->loop.backends, &f->m.backend);
}

/* ---- pairs --------------------------------------------------------------------------------- */

static void test_mem_pair_each_type(void **state)
{
    fixture *f = *state;
    static const sprig_sock_type types[] = {SPRIG_SOCK_SEQPACKET, SPRIG_SOCK_STREAM,
                                            SPRIG_SOCK_DGRAM};
    for (size_t i = 0; i < 3; i++) {
        sprig_sock *a = NULL, *b = NULL;
        sprig_addr la, pa, lb, pb;
        assert_int_equal(sprig_mem_pair(&f->m, types[i], &a, &b), SPRIG_STATUS_OK);
        assert_int_equal(sprig_mem_backend_in_use(&f->m), 2);
        assert_int_equal(a->state, SPRIG_SOCK_STATE_OPEN);
        assert_int_equal(sprig_sock_type_of(b), types[i]);
        assert_string_equal(a->ops->name, "mem");
        assert_int_equal(sprig_sock_max_message_size(a),
                         types[i] == SPRIG_SOCK_STREAM ? 0 : MAX_MSG);
        /* Socket i of the array is [::]:(i+1); each end sees the other's address. */
        assert_int_equal(sprig_sock_local_addr(a, &la), SPRIG_STATUS_OK);
        assert_int_equal(sprig_sock_peer_addr(a, &pa), SPRIG_STATUS_OK);
        assert_int_equal(sprig_sock_local_addr(b, &lb), SPRIG_STATUS_OK);
        assert_int_equal(sprig_sock_peer_addr(b, &pb), SPRIG_STATUS_OK);
        assert_int_equal(la.port, 1);
        assert_int_equal(lb.port, 2);
        assert_true(sprig_addr_equal(&la, &pb));
        assert_true(sprig_addr_equal(&lb, &pa));
        send_ok(a, "hello");
        send_ok(b, "world");
        recv_text(b, "hello");
        recv_text(a, "world");
        size_t len = 0;
        char in[8];
        /* gather: SEQPACKET/DGRAM make one message of the pieces (STREAM: below) */
        if (types[i] != SPRIG_SOCK_STREAM) {
            sprig_iov iov[3] = {{"ga", 2}, {"", 0}, {"ther", 4}};
            assert_int_equal(sprig_sock_send_iov(a, iov, 3, &len), SPRIG_STATUS_OK);
            assert_int_equal(len, 6);
            send_ok(a, "x");
            assert_int_equal(sprig_sock_recv(b, in, sizeof(in), &len), SPRIG_STATUS_OK);
            assert_int_equal(len, 6);
            assert_memory_equal(in, "gather", 6);
            recv_text(b, "x");
            static const uint8_t zeros[MAX_MSG] = {0};
            sprig_iov big[2] = {{zeros, MAX_MSG}, {"y", 1}};
            assert_int_equal(sprig_sock_send_iov(a, big, 2, &len), SPRIG_STATUS_RESOURCE_EXHAUSTED);
            assert_int_equal(len, 0);
        }
        assert_int_equal(sprig_sock_recv(a, in, sizeof(in), &len), SPRIG_STATUS_UNAVAILABLE);
        sprig_sock_close(a);
        sprig_sock_close(b);
        assert_int_equal(sprig_mem_backend_in_use(&f->m), 0);
    }
    sprig_sock *a = NULL, *b = NULL;
    assert_int_equal(sprig_mem_pair(&f->m, SPRIG_SOCK_DEFAULT, &a, &b), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_type_of(a), SPRIG_SOCK_SEQPACKET); /* mem's natural type */
    sprig_sock_close(a);
    sprig_sock_close(b);
    assert_int_equal(sprig_mem_pair(&f->m, (sprig_sock_type)9, &a, &b),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    assert_null(a);
    assert_int_equal(sprig_mem_pair(NULL, SPRIG_SOCK_STREAM, &a, &b),
                     SPRIG_STATUS_INVALID_ARGUMENT);
}

static void test_mem_array_exhausted(void **state)
{
    fixture *f = *state;
    sprig_sock *s[NSOCKS] = {0};
    sprig_sock *x = NULL, *y = NULL;
    for (size_t i = 0; i + 1 < NSOCKS; i += 2) {
        assert_int_equal(sprig_mem_pair(&f->m, SPRIG_SOCK_SEQPACKET, &s[i], &s[i + 1]),
                         SPRIG_STATUS_OK);
    }
    assert_int_equal(sprig_mem_backend_in_use(&f->m), NSOCKS);
    assert_int_equal(sprig_mem_pair(&f->m, SPRIG_SOCK_SEQPACKET, &x, &y),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(sprig_sock_listen(&f->loop, "mem:full", SPRIG_SOCK_SEQPACKET, &x),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    /* One slot free: a listener fits, but a dial needs two (client and server side). */
    sprig_sock_close(s[0]);
    sprig_sock_close(s[1]);
    assert_int_equal(sprig_sock_listen(&f->loop, "mem:full", SPRIG_SOCK_SEQPACKET, &x),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_dial(&f->loop, "mem:full", SPRIG_SOCK_SEQPACKET, &y),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_null(y);
    assert_int_equal(sprig_mem_pair(&f->m, SPRIG_SOCK_STREAM, &y, &y),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(sprig_mem_backend_in_use(&f->m), NSOCKS - 1); /* nothing half-taken */
    sprig_sock_close(s[2]);
    assert_int_equal(sprig_sock_dial(&f->loop, "mem:full", SPRIG_SOCK_SEQPACKET, &y),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_mem_backend_in_use(&f->m), NSOCKS);
    sprig_sock_close(y);
    sprig_sock_close(x); /* also frees y's server side, still in the backlog */
    for (size_t i = 3; i < NSOCKS; i++) {
        sprig_sock_close(s[i]);
    }
}

/* ---- listen / dial / accept ---------------------------------------------------------------- */

static void test_mem_listen_dial_accept(void **state)
{
    fixture *f = *state;
    static const sprig_sock_type types[] = {SPRIG_SOCK_SEQPACKET, SPRIG_SOCK_STREAM};
    for (size_t i = 0; i < 2; i++) {
        sprig_sock *l = NULL, *a = NULL, *b = NULL, *none = NULL;
        events el = {0}, ea = {0};
        assert_int_equal(sprig_sock_listen(&f->loop, "mem:svc", types[i], &l), SPRIG_STATUS_OK);
        assert_int_equal(l->state, SPRIG_SOCK_STATE_LISTENING);
        assert_int_equal(sprig_sock_max_message_size(l), 0);
        sprig_sock_set_callback(l, record, &el);
        assert_int_equal(sprig_sock_accept(l, &none), SPRIG_STATUS_UNAVAILABLE);
        assert_int_equal(sprig_sock_dial(&f->loop, "mem:svc", types[i], &a), SPRIG_STATUS_OK);
        sprig_sock_set_callback(a, record, &ea);
        assert_int_equal(a->state, SPRIG_SOCK_STATE_CONNECTING);
        assert_int_equal(el.readable + ea.connected, 0); /* nothing from inside the call */
        pump(f);
        assert_string_equal(ea.log, "C");
        assert_string_equal(el.log, "R");
        assert_int_equal(sprig_sock_accept(l, &b), SPRIG_STATUS_OK);
        assert_int_equal(b->state, SPRIG_SOCK_STATE_OPEN);
        assert_null(b->cb);
        assert_int_equal(sprig_sock_accept(l, &none), SPRIG_STATUS_UNAVAILABLE);
        send_ok(a, "req");
        recv_text(b, "req");
        send_ok(b, "rsp");
        recv_text(a, "rsp");
        assert_int_equal(sprig_mem_backend_in_use(&f->m), 3);
        sprig_sock_close(a);
        sprig_sock_close(b);
        sprig_sock_close(l);
    }
}

static void test_mem_dgram_listen_dial(void **state)
{
    fixture *f = *state;
    sprig_sock *srv = NULL, *c1 = NULL, *c2 = NULL;
    events e1 = {0};
    sprig_addr from, a1, a2;
    char in[16];
    size_t len = 0;
    assert_int_equal(sprig_sock_listen(&f->loop, "mem:dns", SPRIG_SOCK_DGRAM, &srv),
                     SPRIG_STATUS_OK);
    assert_int_equal(srv->state, SPRIG_SOCK_STATE_OPEN); /* bound, not listening */
    assert_int_equal(sprig_sock_max_message_size(srv), MAX_MSG);
    assert_int_equal(sprig_sock_dial(&f->loop, "mem:dns", SPRIG_SOCK_DGRAM, &c1), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_dial(&f->loop, "mem:dns", SPRIG_SOCK_DGRAM, &c2), SPRIG_STATUS_OK);
    sprig_sock_set_callback(c1, record, &e1);
    pump(f);
    assert_string_equal(e1.log, "C");
    assert_int_equal(sprig_sock_local_addr(c1, &a1), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_local_addr(c2, &a2), SPRIG_STATUS_OK);
    send_ok(c1, "q1");
    send_ok(c2, "q2");
    /* The bound socket learns who sent what, and answers there. */
    assert_int_equal(sprig_sock_recv_from(srv, in, sizeof(in), &len, &from), SPRIG_STATUS_OK);
    assert_true(sprig_addr_equal(&from, &a1));
    assert_int_equal(sprig_sock_recv_from(srv, in, sizeof(in), &len, &from), SPRIG_STATUS_OK);
    assert_true(sprig_addr_equal(&from, &a2));
    assert_int_equal(sprig_sock_send_to(srv, "r2", 2, &from), SPRIG_STATUS_OK);
    recv_text(c2, "r2");
    /* A bound socket has no default destination. */
    assert_int_equal(sprig_sock_send(srv, "x", 1, NULL), SPRIG_STATUS_FAILED_PRECONDITION);
    /* To an address nobody holds: gone without a word, like UDP. */
    sprig_addr nobody = {.port = 200};
    assert_int_equal(sprig_sock_send_to(srv, "x", 1, &nobody), SPRIG_STATUS_OK);
    sprig_addr v4;
    sprig_addr_from_ipv4(&v4, 0x7f000001u, a1.port);
    assert_int_equal(sprig_sock_send_to(srv, "x", 1, &v4), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_recv(c1, in, sizeof(in), &len), SPRIG_STATUS_UNAVAILABLE);
    /* Once the bound socket is gone, datagrams to it vanish too; recv never ends. */
    sprig_sock_close(srv);
    send_ok(c1, "lost");
    assert_int_equal(sprig_sock_recv(c1, in, sizeof(in), &len), SPRIG_STATUS_UNAVAILABLE);
    assert_int_equal(sprig_sock_peer_addr(c1, &from), SPRIG_STATUS_FAILED_PRECONDITION);
    assert_int_equal(sprig_sock_shutdown(c1), SPRIG_STATUS_UNIMPLEMENTED);
    sprig_sock_close(c1);
    sprig_sock_close(c2);
}

static void test_mem_data_before_accept(void **state)
{
    fixture *f = *state;
    sprig_sock *l = NULL, *a = NULL, *b = NULL;
    events eb = {0};
    char in[16];
    size_t len = 0;
    assert_int_equal(sprig_sock_listen(&f->loop, "mem:early", SPRIG_SOCK_SEQPACKET, &l),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_dial(&f->loop, "mem:early", SPRIG_SOCK_SEQPACKET, &a),
                     SPRIG_STATUS_OK);
    pump(f);
    send_ok(a, "first");
    sprig_sock_close(a);
    pump(f); /* its READABLE went to nobody: the socket was not accepted yet */
    assert_int_equal(sprig_sock_accept(l, &b), SPRIG_STATUS_OK);
    sprig_sock_set_callback(b, record, &eb);
    pump(f);
    assert_string_equal(eb.log, "R"); /* announced again after accept */
    recv_text(b, "first");
    assert_int_equal(sprig_sock_recv(b, in, sizeof(in), &len), SPRIG_STATUS_OUT_OF_RANGE);
    sprig_sock_close(b);
    sprig_sock_close(l);
}

static void test_mem_names(void **state)
{
    fixture *f = *state;
    sprig_sock *a = NULL, *b = NULL, *c = NULL, *x = NULL;
    char name[8 + SPRIG_CONFIG_MEM_NAME_MAX + 1] = "mem:";
    assert_int_equal(sprig_sock_listen(&f->loop, "mem:one", SPRIG_SOCK_SEQPACKET, &a),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_listen(&f->loop, "mem:one", SPRIG_SOCK_SEQPACKET, &x),
                     SPRIG_STATUS_ALREADY_EXISTS);
    assert_null(x);
    /* Names are per type. */
    assert_int_equal(sprig_sock_listen(&f->loop, "mem:one", SPRIG_SOCK_STREAM, &b),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_listen(&f->loop, "mem:one", SPRIG_SOCK_DGRAM, &c), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_listen(&f->loop, "mem:one", SPRIG_SOCK_DGRAM, &x),
                     SPRIG_STATUS_ALREADY_EXISTS);
    /* The longest name that fits, and one more. */
    memset(name + 4, 'n', SPRIG_CONFIG_MEM_NAME_MAX - 1);
    assert_int_equal(sprig_sock_listen(&f->loop, name, SPRIG_SOCK_STREAM, &x), SPRIG_STATUS_OK);
    sprig_sock_close(x);
    name[4 + SPRIG_CONFIG_MEM_NAME_MAX - 1] = 'n';
    assert_int_equal(sprig_sock_listen(&f->loop, name, SPRIG_SOCK_STREAM, &x),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_sock_dial(&f->loop, name, SPRIG_SOCK_STREAM, &x),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_mem_backend_in_use(&f->m), 3);
    /* A closed listener's name is free again. */
    sprig_sock_close(a);
    assert_int_equal(sprig_sock_listen(&f->loop, "mem:one", SPRIG_SOCK_SEQPACKET, &a),
                     SPRIG_STATUS_OK);
    sprig_sock_close(a);
    sprig_sock_close(b);
    sprig_sock_close(c);
}

static void test_mem_unknown_name_refused(void **state)
{
    fixture *f = *state;
    static const sprig_sock_type types[] = {SPRIG_SOCK_SEQPACKET, SPRIG_SOCK_STREAM,
                                            SPRIG_SOCK_DGRAM};
    for (size_t i = 0; i < 3; i++) {
        sprig_sock *a = NULL;
        events ea = {0};
        size_t n = 0;
        assert_int_equal(sprig_sock_dial(&f->loop, "mem:nobody", types[i], &a), SPRIG_STATUS_OK);
        sprig_sock_set_callback(a, record, &ea);
        assert_int_equal(a->state, SPRIG_SOCK_STATE_CONNECTING); /* failure comes from the loop */
        assert_int_equal(sprig_sock_send(a, "x", 1, &n), SPRIG_STATUS_UNAVAILABLE);
        pump(f);
        assert_string_equal(ea.log, "X"); /* no CONNECTED, no WRITABLE: CLOSED alone */
        assert_int_equal(ea.closed_status, SPRIG_STATUS_UNAVAILABLE);
        assert_int_equal(a->state, SPRIG_SOCK_STATE_CLOSED);
        assert_int_equal(sprig_sock_send(a, "x", 1, &n), SPRIG_STATUS_UNAVAILABLE);
        sprig_sock_close(a);
    }
    /* A listener of another type does not answer either. */
    sprig_sock *l = NULL, *a = NULL;
    assert_int_equal(sprig_sock_listen(&f->loop, "mem:typed", SPRIG_SOCK_STREAM, &l),
                     SPRIG_STATUS_OK);
    assert_int_equal(
        sprig_sock_dial_wait(&f->loop, "mem:typed", SPRIG_SOCK_SEQPACKET, SPRIG_TIME_S(1), &a),
        SPRIG_STATUS_UNAVAILABLE);
    assert_null(a);
    sprig_sock_close(l);
}

static void test_mem_backlog_full(void **state)
{
    fixture *f = *state;
    sprig_sock *l = NULL, *c[BACKLOG + 1] = {0}, *s = NULL;
    events ec[BACKLOG + 1];
    memset(ec, 0, sizeof(ec));
    assert_int_equal(sprig_sock_listen(&f->loop, "mem:busy", SPRIG_SOCK_STREAM, &l),
                     SPRIG_STATUS_OK);
    for (size_t i = 0; i <= BACKLOG; i++) {
        assert_int_equal(sprig_sock_dial(&f->loop, "mem:busy", SPRIG_SOCK_STREAM, &c[i]),
                         SPRIG_STATUS_OK);
        sprig_sock_set_callback(c[i], record, &ec[i]);
    }
    pump(f);
    for (size_t i = 0; i < BACKLOG; i++) {
        assert_string_equal(ec[i].log, "C");
    }
    assert_string_equal(ec[BACKLOG].log, "X");
    assert_int_equal(ec[BACKLOG].closed_status, SPRIG_STATUS_UNAVAILABLE);
    sprig_sock_close(c[BACKLOG]);
    /* Accepting makes room again. */
    assert_int_equal(sprig_sock_accept(l, &s), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_dial(&f->loop, "mem:busy", SPRIG_SOCK_STREAM, &c[BACKLOG]),
                     SPRIG_STATUS_OK);
    pump(f);
    assert_int_equal(c[BACKLOG]->state, SPRIG_SOCK_STATE_OPEN);
    sprig_sock_close(s);
    for (size_t i = 0; i <= BACKLOG; i++) {
        sprig_sock_close(c[i]);
    }
    sprig_sock_close(l); /* resets the two still in the backlog, frees their server sides */
}

static void test_mem_listener_close_resets_backlog(void **state)
{
    fixture *f = *state;
    sprig_sock *l = NULL, *a = NULL, *b = NULL;
    events ea = {0}, eb = {0};
    char in[8];
    size_t n = 0;
    assert_int_equal(sprig_sock_listen(&f->loop, "mem:gone", SPRIG_SOCK_SEQPACKET, &l),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_dial(&f->loop, "mem:gone", SPRIG_SOCK_SEQPACKET, &a),
                     SPRIG_STATUS_OK);
    sprig_sock_set_callback(a, record, &ea);
    pump(f);
    send_ok(a, "unseen");
    /* b is closed before its CONNECTED could be delivered. */
    assert_int_equal(sprig_sock_dial(&f->loop, "mem:gone", SPRIG_SOCK_SEQPACKET, &b),
                     SPRIG_STATUS_OK);
    sprig_sock_set_callback(b, record, &eb);
    assert_int_equal(sprig_mem_backend_in_use(&f->m), 5);
    sprig_sock_close(l);
    assert_int_equal(sprig_mem_backend_in_use(&f->m), 2); /* server sides released */
    pump(f);
    assert_string_equal(ea.log, "CX");
    assert_int_equal(ea.closed_status, SPRIG_STATUS_ABORTED);
    assert_string_equal(eb.log, "X");
    assert_int_equal(eb.closed_status, SPRIG_STATUS_ABORTED);
    assert_int_equal(sprig_sock_send(a, "x", 1, &n), SPRIG_STATUS_ABORTED);
    assert_int_equal(sprig_sock_recv(a, in, sizeof(in), &n), SPRIG_STATUS_ABORTED);
    sprig_sock_close(a);
    sprig_sock_close(b);
}

/* ---- flow control -------------------------------------------------------------------------- */

static void test_mem_seqpacket_window_full_then_writable(void **state)
{
    fixture *f = *state;
    sprig_sock *a = NULL, *b = NULL;
    events ea = {0};
    uint8_t msg[200] = {0}, in[MAX_MSG];
    size_t n = 0;
    assert_int_equal(sprig_mem_pair(&f->m, SPRIG_SOCK_SEQPACKET, &a, &b), SPRIG_STATUS_OK);
    sprig_sock_set_callback(a, record, &ea);
    for (int i = 0; i < WINDOW / 200; i++) {
        msg[0] = (uint8_t)i;
        assert_int_equal(sprig_sock_send(a, msg, sizeof(msg), NULL), SPRIG_STATUS_OK);
    }
    assert_int_equal(sprig_sock_send(a, msg, sizeof(msg), NULL), SPRIG_STATUS_UNAVAILABLE);
    /* A smaller message that still fits is taken: the window counts bytes. */
    assert_int_equal(sprig_sock_send(a, msg, WINDOW % 200, NULL), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_send(a, msg, 1, NULL), SPRIG_STATUS_UNAVAILABLE);
    pump(f);
    assert_int_equal(ea.writable, 0); /* nobody read */
    assert_int_equal(sprig_sock_recv(b, in, sizeof(in), &n), SPRIG_STATUS_OK);
    assert_int_equal(n, 200);
    assert_int_equal(in[0], 0);
    pump(f);
    assert_int_equal(ea.writable, 1);
    assert_int_equal(sprig_sock_send(a, msg, sizeof(msg), NULL), SPRIG_STATUS_OK);
    pump(f);
    assert_int_equal(ea.writable, 1); /* once per UNAVAILABLE */
    sprig_sock_close(a);
    sprig_sock_close(b);
}

static void test_mem_big_message_passes_small_window(void **state)
{
    fixture *f = *state;
    sprig_sock *a = NULL, *b = NULL;
    uint8_t msg[MAX_MSG] = {1}, in[MAX_MSG];
    size_t n = 0;
    sprig_mem_backend_deinit(&f->m);
    sprig_mem_cfg cfg = {.max_message_size = MAX_MSG, .window_bytes = 100};
    assert_int_equal(sprig_mem_backend_init(&f->m, &f->loop, &cfg, f->socks, NSOCKS, &f->pool),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_mem_pair(&f->m, SPRIG_SOCK_SEQPACKET, &a, &b), SPRIG_STATUS_OK);
    /* An empty queue takes one message whatever the window, so this never deadlocks. */
    assert_int_equal(sprig_sock_send(a, msg, sizeof(msg), NULL), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_send(a, msg, 1, NULL), SPRIG_STATUS_UNAVAILABLE);
    assert_int_equal(sprig_sock_recv(b, in, 10, &n), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(n, MAX_MSG); /* kept, and its size told */
    assert_int_equal(sprig_sock_recv(b, in, sizeof(in), &n), SPRIG_STATUS_OK);
    assert_int_equal(n, MAX_MSG);
    assert_int_equal(sprig_sock_send(a, msg, MAX_MSG + 1, NULL), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    sprig_sock_close(a);
    sprig_sock_close(b);
}

static void test_mem_stream_partial_and_coalesce(void **state)
{
    fixture *f = *state;
    sprig_sock *a = NULL, *b = NULL;
    events ea = {0};
    uint8_t out[3000], in[3000];
    size_t n = 0, got = 0;
    for (size_t i = 0; i < sizeof(out); i++) {
        out[i] = (uint8_t)(i * 7u + (i >> 8));
    }
    assert_int_equal(sprig_mem_pair(&f->m, SPRIG_SOCK_STREAM, &a, &b), SPRIG_STATUS_OK);
    sprig_sock_set_callback(a, record, &ea);
    /* Small writes share buffers. */
    for (size_t i = 0; i < 100; i++) {
        assert_int_equal(sprig_sock_send(a, out + i * 10, 10, &n), SPRIG_STATUS_OK);
        assert_int_equal(n, 10);
    }
    size_t per_buf = BUF_SIZE / SPRIG_CONFIG_BUF_ALIGN * SPRIG_CONFIG_BUF_ALIGN;
    assert_int_equal(NBUFS - sprig_buf_pool_available(&f->pool), (1000 + per_buf - 1) / per_buf);
    /* A big write is taken up to the window. */
    assert_int_equal(sprig_sock_send(a, out + 1000, 2000, &n), SPRIG_STATUS_OK);
    assert_int_equal(n, WINDOW - 1000);
    size_t sent = 1000 + n;
    assert_int_equal(sprig_sock_send(a, out + sent, 1, &n), SPRIG_STATUS_UNAVAILABLE);
    /* Reads of any size return bytes in order. */
    assert_int_equal(sprig_sock_recv(b, in, 7, &n), SPRIG_STATUS_OK);
    assert_int_equal(n, 7);
    got = 7;
    pump(f);
    assert_int_equal(ea.writable, 1);
    assert_int_equal(sprig_sock_send(a, out + sent, sizeof(out) - sent, &n), SPRIG_STATUS_OK);
    assert_int_equal(n, 7);
    sent += n;
    while (got < sent) {
        assert_int_equal(sprig_sock_recv(b, in + got, 333, &n), SPRIG_STATUS_OK);
        got += n;
    }
    assert_int_equal(sprig_sock_recv(b, in, sizeof(in), &n), SPRIG_STATUS_UNAVAILABLE);
    assert_memory_equal(in, out, sent);
    /* Gather send. */
    sprig_iov iov[3] = {{"ab", 2}, {"", 0}, {"cde", 3}};
    assert_int_equal(sprig_sock_send_iov(a, iov, 3, &n), SPRIG_STATUS_OK);
    assert_int_equal(n, 5);
    assert_int_equal(sprig_sock_recv(b, in, sizeof(in), &n), SPRIG_STATUS_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(in, "abcde", 5);
    sprig_sock_close(a);
    sprig_sock_close(b);
}

static void test_mem_dgram_full_window_drops(void **state)
{
    fixture *f = *state;
    sprig_sock *a = NULL, *b = NULL;
    uint8_t msg[200] = {0}, in[MAX_MSG];
    size_t n = 0;
    assert_int_equal(sprig_mem_pair(&f->m, SPRIG_SOCK_DGRAM, &a, &b), SPRIG_STATUS_OK);
    for (int i = 0; i < 10; i++) {
        msg[0] = (uint8_t)i;
        assert_int_equal(sprig_sock_send(a, msg, sizeof(msg), NULL), SPRIG_STATUS_OK);
    }
    sprig_mem_sock *mb = (sprig_mem_sock *)b;
    assert_int_equal(mb->dropped, 10 - WINDOW / 200); /* counted at the receiver */
    assert_int_equal(((sprig_mem_sock *)a)->dropped, 0);
    for (int i = 0; i < WINDOW / 200; i++) {
        assert_int_equal(sprig_sock_recv(b, in, sizeof(in), &n), SPRIG_STATUS_OK);
        assert_int_equal(in[0], i); /* the first ones got in */
    }
    assert_int_equal(sprig_sock_recv(b, in, sizeof(in), &n), SPRIG_STATUS_UNAVAILABLE);
    sprig_sock_close(a);
    sprig_sock_close(b);
}

static void test_mem_pool_empty(void **state)
{
    fixture *f = *state;
    sprig_sock *a = NULL, *b = NULL, *c = NULL, *d = NULL;
    sprig_buf *buf = NULL;
    events ec = {0};
    char in[8];
    size_t n = 0;
    assert_int_equal(sprig_mem_pair(&f->m, SPRIG_SOCK_SEQPACKET, &a, &b), SPRIG_STATUS_OK);
    assert_int_equal(sprig_mem_pair(&f->m, SPRIG_SOCK_SEQPACKET, &c, &d), SPRIG_STATUS_OK);
    sprig_sock_set_callback(c, record, &ec);
    /* Empty messages cost no window but one buffer each: they drain the pool. */
    for (int i = 0; i < NBUFS; i++) {
        assert_int_equal(sprig_sock_send(a, "", 0, NULL), SPRIG_STATUS_OK);
    }
    assert_int_equal(sprig_buf_pool_available(&f->pool), 0);
    assert_int_equal(sprig_sock_send(a, "", 0, NULL), SPRIG_STATUS_UNAVAILABLE);
    assert_int_equal(sprig_sock_send(c, "x", 1, NULL), SPRIG_STATUS_UNAVAILABLE);
    assert_int_equal(sprig_sock_alloc_tx(c, 1, &buf), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    pump(f);
    assert_int_equal(ec.writable, 0);
    /* Another connection's reader returns a buffer: the blocked writer hears of it. */
    assert_int_equal(sprig_sock_recv(b, in, sizeof(in), &n), SPRIG_STATUS_OK);
    assert_int_equal(n, 0);
    pump(f);
    assert_int_equal(ec.writable, 1);
    send_ok(c, "x");
    recv_text(d, "x");
    sprig_sock_close(a); /* its peer's queue is b's: b still holds the buffers */
    assert_int_equal(sprig_buf_pool_available(&f->pool), 1);
    sprig_sock_close(b);
    assert_int_equal(sprig_buf_pool_available(&f->pool), NBUFS);
    sprig_sock_close(c);
    sprig_sock_close(d);
}

static void test_mem_send_buf_zero_copy(void **state)
{
    fixture *f = *state;
    static const sprig_sock_type types[] = {SPRIG_SOCK_SEQPACKET, SPRIG_SOCK_STREAM,
                                            SPRIG_SOCK_DGRAM};
    for (size_t i = 0; i < 3; i++) {
        sprig_sock *a = NULL, *b = NULL;
        sprig_buf *buf = NULL;
        sprig_addr from, la;
        char in[16];
        size_t n = 0;
        assert_int_equal(sprig_mem_pair(&f->m, types[i], &a, &b), SPRIG_STATUS_OK);
        assert_int_equal(sprig_sock_alloc_tx(a, 5, &buf), SPRIG_STATUS_OK);
        assert_ptr_equal(buf->pool, &f->pool);
        assert_int_equal(sprig_buf_headroom(buf), SPRIG_CONFIG_SOCK_HEADROOM);
        assert_int_equal(sprig_buf_append(buf, "zcopy", 5), SPRIG_STATUS_OK);
        assert_int_equal(sprig_sock_send_buf(a, buf), SPRIG_STATUS_OK);
        /* The very buffer is queued: no second one was taken. */
        assert_int_equal(sprig_buf_pool_available(&f->pool), NBUFS - 1);
        assert_ptr_equal(((sprig_mem_sock *)b)->rxq.head, buf);
        recv_text(b, "zcopy");
        /* A DGRAM buffer without headroom for the source port is copied instead. */
        if (types[i] == SPRIG_SOCK_DGRAM) {
            buf = sprig_buf_alloc(&f->pool, 0);
            assert_int_equal(sprig_buf_append(buf, "bare", 4), SPRIG_STATUS_OK);
            assert_int_equal(sprig_sock_send_buf(a, buf), SPRIG_STATUS_OK);
            assert_int_equal(sprig_sock_recv_from(b, in, sizeof(in), &n, &from), SPRIG_STATUS_OK);
            assert_int_equal(n, 4);
            assert_int_equal(sprig_sock_local_addr(a, &la), SPRIG_STATUS_OK);
            assert_true(sprig_addr_equal(&from, &la));
        }
        assert_int_equal(sprig_buf_pool_available(&f->pool), NBUFS);
        sprig_sock_close(a);
        sprig_sock_close(b);
    }
}

/* ---- shutdown and close -------------------------------------------------------------------- */

static void test_mem_shutdown_then_eof_closes_ok(void **state)
{
    fixture *f = *state;
    sprig_sock *a = NULL, *b = NULL;
    events ea = {0}, eb = {0};
    char in[8];
    size_t n = 0;
    assert_int_equal(sprig_mem_pair(&f->m, SPRIG_SOCK_STREAM, &a, &b), SPRIG_STATUS_OK);
    sprig_sock_set_callback(a, record, &ea);
    sprig_sock_set_callback(b, record, &eb);
    send_ok(a, "bye");
    assert_int_equal(sprig_sock_shutdown(a), SPRIG_STATUS_OK);
    pump(f);
    assert_string_equal(eb.log, "R");
    recv_text(b, "bye");
    assert_int_equal(sprig_sock_recv(b, in, sizeof(in), &n), SPRIG_STATUS_OUT_OF_RANGE);
    /* b read EOF first and shuts down second; a shut down first and reads EOF second. */
    send_ok(b, "ok");
    assert_int_equal(sprig_sock_shutdown(b), SPRIG_STATUS_OK);
    pump(f);
    assert_int_equal(eb.closed, 1);
    assert_int_equal(eb.closed_status, SPRIG_STATUS_OK);
    assert_int_equal(ea.closed, 0);
    recv_text(a, "ok");
    assert_int_equal(sprig_sock_recv(a, in, sizeof(in), &n), SPRIG_STATUS_OUT_OF_RANGE);
    pump(f);
    assert_int_equal(ea.closed, 1);
    assert_int_equal(ea.closed_status, SPRIG_STATUS_OK);
    assert_string_equal(ea.log, "RX");
    sprig_sock_close(a);
    sprig_sock_close(b);
}

static void test_mem_peer_close(void **state)
{
    fixture *f = *state;
    sprig_sock *a = NULL, *b = NULL;
    events eb = {0};
    char in[8];
    size_t n = 0;
    assert_int_equal(sprig_mem_pair(&f->m, SPRIG_SOCK_SEQPACKET, &a, &b), SPRIG_STATUS_OK);
    sprig_sock_set_callback(b, record, &eb);
    send_ok(a, "one");
    send_ok(a, "two");
    sprig_sock_close(a);
    assert_int_equal(sprig_mem_backend_in_use(&f->m), 1);
    pump(f);
    assert_string_equal(eb.log, "R");
    recv_text(b, "one");
    recv_text(b, "two");
    assert_int_equal(sprig_sock_recv(b, in, sizeof(in), &n), SPRIG_STATUS_OUT_OF_RANGE);
    sprig_addr addr;
    assert_int_equal(sprig_sock_peer_addr(b, &addr), SPRIG_STATUS_FAILED_PRECONDITION);
    /* Sending to the departed peer is a reset. */
    assert_int_equal(sprig_sock_send(b, "x", 1, NULL), SPRIG_STATUS_ABORTED);
    pump(f);
    assert_string_equal(eb.log, "RX");
    assert_int_equal(eb.closed_status, SPRIG_STATUS_ABORTED);
    assert_int_equal(sprig_sock_send(b, "x", 1, NULL), SPRIG_STATUS_ABORTED);
    sprig_sock_close(b);
}

static void test_mem_peer_close_then_shutdown_closes_ok(void **state)
{
    fixture *f = *state;
    sprig_sock *a = NULL, *b = NULL;
    events eb = {0};
    char in[8];
    size_t n = 0;
    assert_int_equal(sprig_mem_pair(&f->m, SPRIG_SOCK_STREAM, &a, &b), SPRIG_STATUS_OK);
    sprig_sock_set_callback(b, record, &eb);
    sprig_sock_close(a);
    assert_int_equal(sprig_sock_recv(b, in, sizeof(in), &n), SPRIG_STATUS_OUT_OF_RANGE);
    assert_int_equal(sprig_sock_shutdown(b), SPRIG_STATUS_OK);
    pump(f);
    assert_int_equal(eb.closed, 1);
    assert_int_equal(eb.closed_status, SPRIG_STATUS_OK); /* mem.h: CLOSED(OK) once shut down */
    sprig_sock_close(b);
}

static void test_mem_peer_close_wakes_blocked_writer(void **state)
{
    fixture *f = *state;
    sprig_sock *a = NULL, *b = NULL;
    events ea = {0};
    uint8_t msg[MAX_MSG] = {0};
    assert_int_equal(sprig_mem_pair(&f->m, SPRIG_SOCK_SEQPACKET, &a, &b), SPRIG_STATUS_OK);
    sprig_sock_set_callback(a, record, &ea);
    while (sprig_sock_send(a, msg, sizeof(msg), NULL) == SPRIG_STATUS_OK) {
    }
    assert_true(sprig_buf_pool_available(&f->pool) < NBUFS);
    sprig_sock_close(b); /* frees what a had queued for it */
    assert_int_equal(sprig_buf_pool_available(&f->pool), NBUFS);
    pump(f);
    assert_int_equal(ea.writable, 1);
    assert_int_equal(sprig_sock_send(a, msg, 1, NULL), SPRIG_STATUS_ABORTED);
    pump(f);
    assert_string_equal(ea.log, "RWX");
    sprig_sock_close(a);
}

static void test_mem_no_event_after_close(void **state)
{
    fixture *f = *state;
    sprig_sock *l = NULL, *a = NULL, *b = NULL, *c = NULL;
    events ea = {0}, eb = {0};
    assert_int_equal(sprig_sock_listen(&f->loop, "mem:quiet", SPRIG_SOCK_SEQPACKET, &l),
                     SPRIG_STATUS_OK);
    /* Closed with CONNECTED pending. */
    assert_int_equal(sprig_sock_dial(&f->loop, "mem:quiet", SPRIG_SOCK_SEQPACKET, &a),
                     SPRIG_STATUS_OK);
    sprig_sock_set_callback(a, record, &ea);
    sprig_sock_close(a);
    pump(f);
    assert_int_equal(ea.n, 0);
    assert_int_equal(sprig_sock_accept(l, &b), SPRIG_STATUS_OK);
    /* Closed from its own CONNECTED callback while READABLE is due as well. */
    assert_int_equal(sprig_sock_dial(&f->loop, "mem:quiet", SPRIG_SOCK_SEQPACKET, &c),
                     SPRIG_STATUS_OK);
    eb.close_on_connected = true;
    sprig_sock_set_callback(c, record, &eb);
    sprig_sock *srv = NULL;
    assert_int_equal(sprig_sock_accept(l, &srv), SPRIG_STATUS_OK);
    send_ok(srv, "late");
    pump(f);
    assert_string_equal(eb.log, "C");
    sprig_sock_close(srv);
    sprig_sock_close(b);
    sprig_sock_close(l);
    sprig_sock_close(NULL);
}

static void test_mem_event_order(void **state)
{
    fixture *f = *state;
    sprig_sock *l = NULL, *a = NULL, *b = NULL;
    events ea = {0};
    size_t n = 0;
    assert_int_equal(sprig_sock_listen(&f->loop, "mem:order", SPRIG_SOCK_SEQPACKET, &l),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_dial(&f->loop, "mem:order", SPRIG_SOCK_SEQPACKET, &a),
                     SPRIG_STATUS_OK);
    sprig_sock_set_callback(a, record, &ea);
    /* Still connecting: a send waits for CONNECTED, which brings WRITABLE with it. */
    assert_int_equal(sprig_sock_send(a, "x", 1, &n), SPRIG_STATUS_UNAVAILABLE);
    assert_int_equal(sprig_sock_accept(l, &b), SPRIG_STATUS_OK);
    send_ok(b, "hi");
    sprig_sock_close(b);
    sprig_loop_poll(&f->loop, f->clock.now); /* one pass delivers them all, in order */
    assert_string_equal(ea.log, "CWR");
    recv_text(a, "hi");
    sprig_sock_close(a);
    sprig_sock_close(l);
}

static void test_mem_deinit_with_open_sockets(void **state)
{
    fixture *f = *state;
    sprig_sock *a = NULL, *b = NULL;
    assert_int_equal(sprig_mem_pair(&f->m, SPRIG_SOCK_SEQPACKET, &a, &b), SPRIG_STATUS_OK);
    send_ok(a, "left");
    /* A caller error, but deinit still leaves no task queued and no buffer out. */
    sprig_mem_backend_deinit(&f->m);
    assert_null(f->loop.tasks_head);
    assert_int_equal(sprig_buf_pool_available(&f->pool), NBUFS);
    assert_int_equal(sprig_mem_backend_in_use(&f->m), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mem_init_validates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_pair_each_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_array_exhausted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_listen_dial_accept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_dgram_listen_dial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_data_before_accept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_unknown_name_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_backlog_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_listener_close_resets_backlog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_seqpacket_window_full_then_writable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mem_big_message_passes_small_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_stream_partial_and_coalesce, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_dgram_full_window_drops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_pool_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_send_buf_zero_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_shutdown_then_eof_closes_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_peer_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_peer_close_then_shutdown_closes_ok, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mem_peer_close_wakes_blocked_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_no_event_after_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_event_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_deinit_with_open_sockets, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
