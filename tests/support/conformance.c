/*
 * The socket contract suite (see conformance.h). Every test uses only the public API and the
 * blocking helpers, with generous timeouts: a slow machine makes it slow, never wrong.
 */
#include "conformance.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIMEOUT SPRIG_TIME_S(5)
#define URL_MAX 160

static const sprig_conf_target *current;

/* ---- fixture ------------------------------------------------------------------------------ */

static int setup(void **state)
{
    sprig_conf_env *env = calloc(1, sizeof(*env));
    assert_non_null(env);
    env->t = current;
    assert_int_equal(sprig_os_loop_init(&env->ol), SPRIG_STATUS_OK);
    env->loop = &env->ol.loop;
    env->t->setup(env);
    *state = env;
    return 0;
}

static int teardown(void **state)
{
    sprig_conf_env *env = *state;
    /* Let deferred work (releases, close notifications) run before counting. */
    for (int i = 0; i < 5; i++) {
        sprig_loop_run_once(env->loop, 0);
    }
    size_t leaked = env->t->leaked(env);
    env->t->teardown(env);
    sprig_os_loop_deinit(&env->ol);
    free(env);
    assert_int_equal(leaked, 0);
    return 0;
}

static bool reliable(const sprig_conf_env *env)
{
    return env->t->type != SPRIG_SOCK_DGRAM;
}

static bool messages(const sprig_conf_env *env)
{
    return env->t->type != SPRIG_SOCK_STREAM;
}

/* ---- helpers ------------------------------------------------------------------------------ */

typedef struct pair {
    sprig_sock *listener; /* connection types; DGRAM: NULL */
    sprig_sock *a;        /* dialer */
    sprig_sock *b;        /* accepted (DGRAM: the bound socket) */
    sprig_addr a_addr;    /* DGRAM: where b replies to a (learnt by recv_from) */
} pair;

static void open_pair(sprig_conf_env *env, pair *p)
{
    char url[URL_MAX];
    sprig_sock *l = NULL;
    memset(p, 0, sizeof(*p));
    env->t->listen_url(env, url, sizeof(url));
    assert_int_equal(sprig_sock_listen(env->loop, url, env->t->type, &l), SPRIG_STATUS_OK);
    env->t->dial_url(env, l, url, sizeof(url));
    assert_int_equal(sprig_sock_dial_wait(env->loop, url, env->t->type, TIMEOUT, &p->a),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_type_of(p->a), env->t->type);
    if (env->t->type == SPRIG_SOCK_DGRAM) {
        p->b = l;
        return;
    }
    p->listener = l;
    assert_int_equal(sprig_sock_accept_wait(l, TIMEOUT, &p->b), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_type_of(p->b), env->t->type);
}

static void close_pair(pair *p)
{
    sprig_sock_close(p->a);
    sprig_sock_close(p->b);
    sprig_sock_close(p->listener);
    memset(p, 0, sizeof(*p));
}

static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)(seed * 131u + i * 7u + (i >> 8));
    }
}

/* Send a whole message (or all bytes, STREAM) from a, waiting as needed. */
static void send_all(sprig_sock *s, const void *data, size_t len)
{
    assert_int_equal(sprig_sock_send_wait(s, data, len, TIMEOUT), SPRIG_STATUS_OK);
}

/* Receive exactly `len` bytes (STREAM) or one message of exactly `len` bytes. */
static void recv_exact(sprig_sock *s, uint8_t *buf, size_t len)
{
    size_t got = 0;
    if (sprig_sock_type_of(s) != SPRIG_SOCK_STREAM) {
        assert_int_equal(sprig_sock_recv_wait(s, buf, len + 1, &got, TIMEOUT), SPRIG_STATUS_OK);
        assert_int_equal(got, len);
        return;
    }
    while (got < len) {
        size_t n = 0;
        assert_int_equal(sprig_sock_recv_wait(s, buf + got, len - got, &n, TIMEOUT),
                         SPRIG_STATUS_OK);
        assert_true(n > 0);
        got += n;
    }
}

typedef sprig_test_events events;

static bool is_closed(void *arg)
{
    return ((events *)arg)->closed > 0;
}

static bool is_writable(void *arg)
{
    return ((events *)arg)->writable > 0;
}

static bool is_readable(void *arg)
{
    return ((events *)arg)->readable > 0;
}

static bool is_connected(void *arg)
{
    return ((events *)arg)->connected > 0;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_conf_boundaries_and_order(void **state)
{
    sprig_conf_env *env = *state;
    pair p;
    enum { N = 64 };
    uint8_t out[2048], in[2049];
    size_t total = 0;
    open_pair(env, &p);
    for (uint32_t i = 0; i < N; i++) {
        size_t len = 4 + (i * 37u) % 1500u;
        fill(out, len, i);
        memcpy(out, &i, sizeof(i));
        send_all(p.a, out, len);
        total += len;
    }
    if (env->t->type == SPRIG_SOCK_STREAM) {
        /* Bytes, in order, whatever the reads' sizes. */
        size_t off = 0;
        for (uint32_t i = 0; i < N; i++) {
            size_t len = 4 + (i * 37u) % 1500u;
            recv_exact(p.b, in, len);
            fill(out, len, i);
            memcpy(out, &i, sizeof(i));
            assert_memory_equal(in, out, len);
            off += len;
        }
        assert_int_equal(off, total);
    } else {
        for (uint32_t i = 0; i < N; i++) {
            size_t len = 0;
            assert_int_equal(sprig_sock_recv_wait(p.b, in, sizeof(in), &len, TIMEOUT),
                             SPRIG_STATUS_OK);
            uint32_t seq;
            memcpy(&seq, in, sizeof(seq));
            if (reliable(env)) {
                assert_int_equal(seq, i); /* order kept */
            }
            assert_true(seq < N);
            size_t want = 4 + (seq * 37u) % 1500u;
            assert_int_equal(len, want); /* boundary kept */
            fill(out, want, seq);
            memcpy(out, &seq, sizeof(seq));
            assert_memory_equal(in, out, want);
        }
    }
    close_pair(&p);
}

static void test_conf_max_message_size(void **state)
{
    sprig_conf_env *env = *state;
    pair p;
    open_pair(env, &p);
    size_t max = sprig_sock_max_message_size(p.a);
    if (!messages(env)) {
        assert_int_equal(max, 0);
        close_pair(&p);
        return;
    }
    assert_true(max >= 64);
    assert_int_equal(sprig_sock_max_message_size(p.b), max);
    uint8_t *out = malloc(max + 1), *in = malloc(max + 1);
    assert_non_null(out);
    assert_non_null(in);
    fill(out, max + 1, 99);
    /* One byte over: refused at the sender, nothing sent. */
    assert_int_equal(sprig_sock_send(p.a, out, max + 1, NULL), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    sprig_buf *b = NULL;
    assert_int_equal(sprig_sock_alloc_tx(p.a, max + 1, &b), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_null(b);
    /* Exactly at the limit: delivered whole. */
    send_all(p.a, out, max);
    size_t len = 0;
    assert_int_equal(sprig_sock_recv_wait(p.b, in, max + 1, &len, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(len, max);
    assert_memory_equal(in, out, max);
    /* The oversized attempt left nothing behind. */
    assert_int_equal(sprig_sock_recv(p.b, in, max + 1, &len), SPRIG_STATUS_UNAVAILABLE);
    free(out);
    free(in);
    close_pair(&p);
}

static void test_conf_zero_copy_send(void **state)
{
    sprig_conf_env *env = *state;
    pair p;
    uint8_t in[512];
    open_pair(env, &p);
    for (int round = 0; round < 3; round++) {
        sprig_buf *b = NULL;
        assert_int_equal(sprig_sock_alloc_tx(p.a, 300, &b), SPRIG_STATUS_OK);
        assert_true(sprig_buf_tailroom(b) >= 300);
        uint8_t *d = sprig_buf_put(b, 300);
        fill(d, 300, (uint32_t)round);
        assert_int_equal(sprig_sock_send_buf(p.a, b), SPRIG_STATUS_OK); /* b is the socket's */
        recv_exact(p.b, in, 300);
        uint8_t want[300];
        fill(want, 300, (uint32_t)round);
        assert_memory_equal(in, want, 300);
    }
    /* A buffer the caller decides not to send goes back by hand. */
    sprig_buf *b = NULL;
    assert_int_equal(sprig_sock_alloc_tx(p.a, 10, &b), SPRIG_STATUS_OK);
    sprig_buf_free(b);
    close_pair(&p);
}

static void test_conf_small_recv_buffer_keeps_message(void **state)
{
    sprig_conf_env *env = *state;
    if (!messages(env)) {
        skip();
    }
    pair p;
    uint8_t out[100], in[100];
    size_t len = 0;
    open_pair(env, &p);
    fill(out, sizeof(out), 5);
    send_all(p.a, out, sizeof(out));
    assert_int_equal(sprig_sock_recv_wait(p.b, in, 10, &len, TIMEOUT),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(len, sizeof(out));
    assert_int_equal(sprig_sock_recv_wait(p.b, in, sizeof(in), &len, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(len, sizeof(out));
    assert_memory_equal(in, out, sizeof(out));
    close_pair(&p);
}

/* Fill the path until the sender is told to wait, check that WRITABLE comes only once the reader
 * makes room, and that nothing was lost or reordered on the way. */
static void test_conf_slow_reader_flow_control(void **state)
{
    sprig_conf_env *env = *state;
    if (!reliable(env)) {
        skip();
    }
    enum { MSG = 1024, MAX_SENDS = 200000 };
    pair p;
    events ev = {0};
    uint8_t out[MSG], in[MSG + 1];
    open_pair(env, &p);
    sprig_sock_set_callback(p.a, sprig_test_record, &ev);
    uint32_t sent = 0, received = 0;
    size_t partial = 0; /* STREAM: bytes of message `sent` already accepted */
    sprig_status st = SPRIG_STATUS_OK;
    while (sent < MAX_SENDS) {
        fill(out, MSG, sent);
        memcpy(out, &sent, sizeof(sent));
        size_t n = 0;
        st = sprig_sock_send(p.a, out + partial, MSG - partial, &n);
        if (st != SPRIG_STATUS_OK) {
            break;
        }
        partial += messages(env) ? MSG : n;
        if (partial == MSG) {
            partial = 0;
            sent++;
        }
    }
    assert_int_equal(st, SPRIG_STATUS_UNAVAILABLE);
    /* Nobody reads: no WRITABLE. */
    for (int i = 0; i < 5; i++) {
        sprig_loop_run_once(env->loop, SPRIG_TIME_MS(2));
    }
    assert_int_equal(ev.writable, 0);
    /* Drain everything queued so far; WRITABLE must follow. */
    uint32_t target = sent;
    while (received < target) {
        recv_exact(p.b, in, MSG);
        uint32_t seq;
        memcpy(&seq, in, sizeof(seq));
        assert_int_equal(seq, received);
        fill(out, MSG, seq);
        memcpy(out, &seq, sizeof(seq));
        assert_memory_equal(in, out, MSG);
        received++;
    }
    assert_int_equal(sprig_loop_run_until(env->loop, is_writable, &ev, TIMEOUT), SPRIG_STATUS_OK);
    /* Finish the message in flight and a few more, then read them all. */
    for (uint32_t k = 0; k < 8 || partial != 0; k++) {
        fill(out, MSG, sent);
        memcpy(out, &sent, sizeof(sent));
        send_all(p.a, out + partial, MSG - partial);
        partial = 0;
        sent++;
    }
    while (received < sent) {
        recv_exact(p.b, in, MSG);
        uint32_t seq;
        memcpy(&seq, in, sizeof(seq));
        assert_int_equal(seq, received);
        received++;
    }
    close_pair(&p);
}

static void test_conf_peer_close(void **state)
{
    sprig_conf_env *env = *state;
    if (!reliable(env)) {
        skip();
    }
    pair p;
    events ev = {0};
    uint8_t in[64];
    size_t len = 0;
    open_pair(env, &p);
    sprig_sock_set_callback(p.b, sprig_test_record, &ev);
    send_all(p.a, "one", 3);
    send_all(p.a, "two", 3);
    sprig_sock_close(p.a);
    p.a = NULL;
    /* Everything sent before the close arrives, then the end. */
    recv_exact(p.b, in, 3);
    assert_memory_equal(in, "one", 3);
    recv_exact(p.b, in, 3);
    assert_memory_equal(in, "two", 3);
    assert_int_equal(sprig_sock_recv_wait(p.b, in, sizeof(in), &len, TIMEOUT),
                     SPRIG_STATUS_OUT_OF_RANGE);
    assert_int_equal(sprig_sock_recv(p.b, in, sizeof(in), &len), SPRIG_STATUS_OUT_OF_RANGE);
    /* Sending to a peer that is gone fails with ABORTED (a kernel may accept one first). */
    sprig_status st = SPRIG_STATUS_OK;
    for (int i = 0; i < 100 && st != SPRIG_STATUS_ABORTED; i++) {
        size_t n = 0;
        st = sprig_sock_send(p.b, "x", 1, &n);
        sprig_loop_run_once(env->loop, SPRIG_TIME_MS(10));
    }
    assert_int_equal(st, SPRIG_STATUS_ABORTED);
    assert_int_equal(sprig_loop_run_until(env->loop, is_closed, &ev, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(ev.closed, 1);
    assert_int_equal(ev.closed_status, SPRIG_STATUS_ABORTED);
    close_pair(&p);
}

static void test_conf_half_close(void **state)
{
    sprig_conf_env *env = *state;
    if (!reliable(env)) {
        skip();
    }
    pair p;
    events ea = {0}, eb = {0};
    uint8_t in[16];
    size_t len = 0, n = 0;
    open_pair(env, &p);
    sprig_sock_set_callback(p.a, sprig_test_record, &ea);
    sprig_sock_set_callback(p.b, sprig_test_record, &eb);
    send_all(p.a, "x", 1);
    assert_int_equal(sprig_sock_shutdown(p.a), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_send(p.a, "late", 4, &n), SPRIG_STATUS_FAILED_PRECONDITION);
    recv_exact(p.b, in, 1);
    assert_int_equal(in[0], 'x');
    assert_int_equal(sprig_sock_recv_wait(p.b, in, sizeof(in), &len, TIMEOUT),
                     SPRIG_STATUS_OUT_OF_RANGE);
    /* The other direction still works. */
    send_all(p.b, "y", 1);
    recv_exact(p.a, in, 1);
    assert_int_equal(in[0], 'y');
    assert_int_equal(sprig_sock_shutdown(p.b), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_recv_wait(p.a, in, sizeof(in), &len, TIMEOUT),
                     SPRIG_STATUS_OUT_OF_RANGE);
    /* Both directions finished in order: CLOSED(OK) on both ends. */
    assert_int_equal(sprig_loop_run_until(env->loop, is_closed, &ea, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(sprig_loop_run_until(env->loop, is_closed, &eb, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(ea.closed_status, SPRIG_STATUS_OK);
    assert_int_equal(eb.closed_status, SPRIG_STATUS_OK);
    close_pair(&p);
}

static void test_conf_refused(void **state)
{
    sprig_conf_env *env = *state;
    char url[URL_MAX];
    sprig_sock *s = (sprig_sock *)&url; /* must be reset to NULL on failure */
    env->t->refused_url(env, url, sizeof(url));
    sprig_status st = sprig_sock_dial_wait(env->loop, url, env->t->type, TIMEOUT, &s);
    if (st != env->t->refused_status[0] && st != env->t->refused_status[1]) {
        fail_msg("dial to %s: %s", url, sprig_status_str(st));
    }
    if (st == SPRIG_STATUS_OK) {
        /* Connectionless types have nothing to refuse: the dial succeeds locally. */
        assert_non_null(s);
        sprig_sock_close(s);
    } else {
        assert_null(s);
    }
}

static void test_conf_events(void **state)
{
    sprig_conf_env *env = *state;
    char url[URL_MAX];
    sprig_sock *l = NULL, *a = NULL, *b = NULL;
    events ea = {0}, eb = {0};
    uint8_t in[16];
    size_t len = 0;
    env->t->listen_url(env, url, sizeof(url));
    assert_int_equal(sprig_sock_listen(env->loop, url, env->t->type, &l), SPRIG_STATUS_OK);
    env->t->dial_url(env, l, url, sizeof(url));
    assert_int_equal(sprig_sock_dial(env->loop, url, env->t->type, &a), SPRIG_STATUS_OK);
    sprig_sock_set_callback(a, sprig_test_record, &ea);
    /* Nothing is delivered from inside the call that caused it. */
    assert_int_equal(ea.connected, 0);
    assert_int_equal(sprig_loop_run_until(env->loop, is_connected, &ea, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(ea.connected, 1);
    assert_int_equal(ea.closed, 0);
    if (env->t->type == SPRIG_SOCK_DGRAM) {
        b = l;
        l = NULL;
    } else {
        assert_int_equal(sprig_sock_accept_wait(l, TIMEOUT, &b), SPRIG_STATUS_OK);
        sprig_sock *none = NULL;
        assert_int_equal(sprig_sock_accept(l, &none), SPRIG_STATUS_UNAVAILABLE);
        assert_null(none);
        assert_int_equal(sprig_sock_send(l, "x", 1, &len), SPRIG_STATUS_FAILED_PRECONDITION);
        assert_int_equal(sprig_sock_max_message_size(l), 0);
    }
    sprig_sock_set_callback(b, sprig_test_record, &eb);
    assert_int_equal(sprig_sock_recv(b, in, sizeof(in), &len), SPRIG_STATUS_UNAVAILABLE);
    send_all(a, "ping", 4);
    assert_int_equal(sprig_loop_run_until(env->loop, is_readable, &eb, TIMEOUT), SPRIG_STATUS_OK);
    recv_exact(b, in, 4);
    assert_memory_equal(in, "ping", 4);
    assert_int_equal(eb.closed, 0);
    sprig_sock_close(a);
    sprig_sock_close(b);
    sprig_sock_close(l);
}

static void test_conf_many_connections(void **state)
{
    sprig_conf_env *env = *state;
    unsigned n = env->t->max_connections < 100 ? env->t->max_connections : 100;
    char url[URL_MAX];
    sprig_sock *l = NULL;
    sprig_sock **cli = calloc(n, sizeof(*cli)), **srv = calloc(n, sizeof(*srv));
    assert_non_null(cli);
    assert_non_null(srv);
    env->t->listen_url(env, url, sizeof(url));
    assert_int_equal(sprig_sock_listen(env->loop, url, env->t->type, &l), SPRIG_STATUS_OK);
    env->t->dial_url(env, l, url, sizeof(url));
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(sprig_sock_dial_wait(env->loop, url, env->t->type, TIMEOUT, &cli[i]),
                         SPRIG_STATUS_OK);
        if (env->t->type != SPRIG_SOCK_DGRAM) {
            assert_int_equal(sprig_sock_accept_wait(l, TIMEOUT, &srv[i]), SPRIG_STATUS_OK);
        }
    }
    for (unsigned i = 0; i < n; i++) {
        uint32_t v = i;
        send_all(cli[i], &v, sizeof(v));
    }
    /* The server side answers each with its value + 1000000 on the connection it came from
     * (DGRAM: to the address it came from, in whatever order they arrived). */
    for (unsigned i = 0; i < n; i++) {
        uint32_t v = 0;
        size_t len = 0;
        if (env->t->type == SPRIG_SOCK_DGRAM) {
            sprig_addr src;
            assert_int_equal(sprig_sock_recv_wait(l, &v, 0, &len, TIMEOUT),
                             SPRIG_STATUS_RESOURCE_EXHAUSTED); /* wait for one, size only */
            assert_int_equal(sprig_sock_recv_from(l, &v, sizeof(v), &len, &src), SPRIG_STATUS_OK);
            assert_int_equal(len, sizeof(v));
            assert_true(v < n);
            v += 1000000;
            assert_int_equal(sprig_sock_send_to(l, &v, sizeof(v), &src), SPRIG_STATUS_OK);
        } else {
            recv_exact(srv[i], (uint8_t *)&v, sizeof(v));
            assert_int_equal(v, i);
            v += 1000000;
            send_all(srv[i], &v, sizeof(v));
        }
    }
    for (unsigned i = 0; i < n; i++) {
        uint32_t v = 0;
        recv_exact(cli[i], (uint8_t *)&v, sizeof(v));
        assert_int_equal(v, i + 1000000);
    }
    for (unsigned i = 0; i < n; i++) {
        sprig_sock_close(cli[i]);
        sprig_sock_close(srv[i]);
    }
    sprig_sock_close(l);
    free(cli);
    free(srv);
}

/* ---- runner -------------------------------------------------------------------------------- */

#define CASE(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int sprig_conf_run(const sprig_conf_target *targets, size_t count)
{
    static const struct CMUnitTest tests[] = {
        CASE(test_conf_boundaries_and_order),
        CASE(test_conf_max_message_size),
        CASE(test_conf_zero_copy_send),
        CASE(test_conf_small_recv_buffer_keeps_message),
        CASE(test_conf_slow_reader_flow_control),
        CASE(test_conf_peer_close),
        CASE(test_conf_half_close),
        CASE(test_conf_refused),
        CASE(test_conf_events),
        CASE(test_conf_many_connections),
    };
    int failures = 0;
    sprig_test_raise_fd_limit();
    for (size_t i = 0; i < count; i++) {
        current = &targets[i];
        char name[96];
        snprintf(name, sizeof(name), "conformance %s", targets[i].name);
        failures +=
            _cmocka_run_group_tests(name, tests, sizeof(tests) / sizeof(tests[0]), NULL, NULL);
    }
    return failures;
}
