/*
 * test_os_sock.c — what is particular to the OS backend (the generic contract is the
 * conformance suite's): URL forms, ports and addresses, UDP send_to/recv_from, dial failures,
 * unix socket files, the small-buffer recv, message size limits, scale (1000 connections on
 * one loop), and that every socket is accounted for after teardown.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* usleep, struct sockaddr_un */
#endif

#include "support.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "sprig/os.h"

#define TIMEOUT SPRIG_TIME_S(10)

typedef struct fixture {
    sprig_os_loop ol;
    sprig_os_backend b;
    sprig_loop *loop;
} fixture;

static int counter;

static int setup_with(void **state, const sprig_os_backend_cfg *cfg)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(sprig_os_loop_init(&f->ol), SPRIG_STATUS_OK);
    assert_int_equal(sprig_os_backend_init(&f->b, &f->ol, cfg), SPRIG_STATUS_OK);
    f->loop = &f->ol.loop;
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, NULL);
}

/* Small messages, for the many-connection test (each TCP SEQPACKET socket holds rx/tx memory
 * sized from the max message). */
static int setup_small(void **state)
{
    sprig_os_backend_cfg cfg = {.max_message_size = 1024, .tx_pool_bufs = 8};
    sprig_test_raise_fd_limit();
    return setup_with(state, &cfg);
}

/* A listen backlog of one, to fill it. */
static int setup_backlog1(void **state)
{
    sprig_os_backend_cfg cfg = {.backlog = 1};
    return setup_with(state, &cfg);
}

/* Every test must leave nothing open and every pool buffer returned. */
static int teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 5; i++) {
        (void)sprig_loop_run_once(f->loop, 0);
    }
    size_t open = sprig_os_backend_open_count(&f->b);
    size_t out = f->b.pool.count - sprig_buf_pool_available(&f->b.pool);
    sprig_os_backend_deinit(&f->b);
    sprig_os_backend_deinit(&f->b);
    sprig_os_loop_deinit(&f->ol);
    free(f);
    assert_int_equal(open, 0);
    assert_int_equal(out, 0);
    return 0;
}

static void unix_url(char *out, size_t cap, const char *stem)
{
    snprintf(out, cap, "unix:%s/%s-%d.sock", sprig_test_tmpdir(), stem, counter++);
}

static uint16_t local_port(sprig_sock *s)
{
    sprig_addr a;
    assert_int_equal(sprig_sock_local_addr(s, &a), SPRIG_STATUS_OK);
    assert_int_not_equal(a.port, 0);
    return a.port;
}

/* ---- events ---------------------------------------------------------------------------- */

typedef struct ev_log {
    int connected;
    int readable;
    int writable;
    int closed;
    sprig_status closed_status;
} ev_log;

static void record(sprig_sock *s, sprig_sock_event ev, sprig_status st, void *user)
{
    (void)s;
    ev_log *log = user;
    switch (ev) {
    case SPRIG_SOCK_EV_CONNECTED:
        log->connected++;
        break;
    case SPRIG_SOCK_EV_READABLE:
        log->readable++;
        break;
    case SPRIG_SOCK_EV_WRITABLE:
        log->writable++;
        break;
    case SPRIG_SOCK_EV_CLOSED:
        log->closed++;
        log->closed_status = st;
        break;
    }
}

static bool is_connected(void *arg)
{
    return ((ev_log *)arg)->connected > 0;
}

static bool is_writable(void *arg)
{
    return ((ev_log *)arg)->writable > 0;
}

static bool is_closed(void *arg)
{
    return ((ev_log *)arg)->closed > 0;
}

/* ---- helpers --------------------------------------------------------------------------- */

typedef struct conn3 {
    sprig_sock *l;
    sprig_sock *a; /* dialer */
    sprig_sock *b; /* accepted */
} conn3;

/* dial_host: "tcp://127.0.0.1" and the like; the listener's port is appended. */
static void connect3(fixture *f, const char *listen_url, const char *dial_host,
                     sprig_sock_type type, conn3 *c)
{
    char url[200];
    assert_int_equal(sprig_sock_listen(f->loop, listen_url, type, &c->l), SPRIG_STATUS_OK);
    if (strncmp(listen_url, "unix:", 5) == 0) {
        snprintf(url, sizeof url, "%s", listen_url);
    } else {
        snprintf(url, sizeof url, "%s:%u", dial_host, local_port(c->l));
    }
    assert_int_equal(sprig_sock_dial_wait(f->loop, url, type, TIMEOUT, &c->a), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_accept_wait(c->l, TIMEOUT, &c->b), SPRIG_STATUS_OK);
}

static void close3(conn3 *c)
{
    sprig_sock_close(c->a);
    sprig_sock_close(c->b);
    sprig_sock_close(c->l);
}

static void exchange(sprig_sock *from, sprig_sock *to, const char *msg)
{
    char in[256];
    size_t len = 0, n = strlen(msg);
    assert_int_equal(sprig_sock_send_wait(from, msg, n, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_recv_wait(to, in, sizeof in, &len, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(len, n);
    assert_memory_equal(in, msg, n);
}

static bool path_exists(const char *url)
{
    struct stat st;
    return lstat(url + strlen("unix:"), &st) == 0;
}

/* ---- URL forms ------------------------------------------------------------------------- */

static void test_os_sock_unix_path(void **state)
{
    fixture *f = *state;
    char url[200];
    conn3 c;
    struct stat st;
    sprig_addr a;
    unix_url(url, sizeof url, "path");
    connect3(f, url, NULL, SPRIG_SOCK_DEFAULT, &c);
    assert_int_equal(lstat(url + 5, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(sprig_sock_type_of(c.a), SPRIG_SOCK_SEQPACKET);
    assert_int_equal(sprig_sock_max_message_size(c.a), SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE);
    exchange(c.a, c.b, "over unix");
    exchange(c.b, c.a, "and back");
    /* A path is not an IP address. */
    assert_int_equal(sprig_sock_local_addr(c.a, &a), SPRIG_STATUS_UNIMPLEMENTED);
    /* Other types are not carried by unix: URLs. */
    sprig_sock *s = NULL;
    assert_int_equal(sprig_sock_dial(f->loop, url, SPRIG_SOCK_STREAM, &s),
                     SPRIG_STATUS_UNIMPLEMENTED);
    assert_null(s);
    close3(&c);
    assert_false(path_exists(url));
}

static void test_os_sock_tcp_ipv4_port_zero(void **state)
{
    fixture *f = *state;
    conn3 c;
    sprig_addr la, pa, ca;
    connect3(f, "tcp://127.0.0.1:0", "tcp://127.0.0.1", SPRIG_SOCK_DEFAULT, &c);
    assert_int_equal(sprig_sock_local_addr(c.l, &la), SPRIG_STATUS_OK);
    assert_true(sprig_addr_is_ipv4(&la));
    assert_int_equal(sprig_addr_ipv4(&la), 0x7f000001u);
    assert_int_not_equal(la.port, 0);
    /* The dialer's peer is the listener's address; the accepted side's peer is the dialer. */
    assert_int_equal(sprig_sock_peer_addr(c.a, &pa), SPRIG_STATUS_OK);
    assert_true(sprig_addr_equal(&pa, &la));
    assert_int_equal(sprig_sock_local_addr(c.a, &ca), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_peer_addr(c.b, &pa), SPRIG_STATUS_OK);
    assert_true(sprig_addr_equal(&pa, &ca));
    assert_int_equal(sprig_sock_type_of(c.a), SPRIG_SOCK_SEQPACKET);
    assert_int_equal(sprig_sock_max_message_size(c.b), SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE);
    exchange(c.a, c.b, "tcp v4");
    exchange(c.b, c.a, "reply");
    /* What a tool prints for the listener: the port it really got. */
    char want[64], got[64];
    snprintf(want, sizeof want, "tcp://127.0.0.1:%u", (unsigned)la.port);
    sprig_os_bound_url("tcp://127.0.0.1:0", c.l, got, sizeof got);
    assert_string_equal(got, want);
    sprig_os_bound_url("tcp://127.0.0.1:0", c.l, got, 8); /* cut, terminated */
    assert_string_equal(got, "tcp://1");
    close3(&c);
}

/* Without a host (unix:), for sprig:// and for what does not parse, the URL is printed as given. */
static void test_os_sock_bound_url_as_given(void **state)
{
    fixture *f = *state;
    char url[200], got[220];
    conn3 c;
    unix_url(url, sizeof url, "bound");
    connect3(f, url, NULL, SPRIG_SOCK_DEFAULT, &c);
    sprig_os_bound_url(url, c.l, got, sizeof got);
    assert_string_equal(got, url);
    sprig_os_bound_url("sprig://2:69", c.l, got, sizeof got);
    assert_string_equal(got, "sprig://2:69");
    sprig_os_bound_url("tcp://[::1", c.l, got, sizeof got);
    assert_string_equal(got, "tcp://[::1");
    close3(&c);
}

static void test_os_sock_tcp_ipv6(void **state)
{
    fixture *f = *state;
    conn3 c;
    sprig_sock *probe = NULL;
    sprig_addr la;
    if (sprig_sock_listen(f->loop, "tcp://[::1]:0", SPRIG_SOCK_DEFAULT, &probe) !=
        SPRIG_STATUS_OK) {
        skip(); /* no IPv6 loopback here */
    }
    sprig_sock_close(probe);
    connect3(f, "tcp://[::1]:0", "tcp://[::1]", SPRIG_SOCK_DEFAULT, &c);
    assert_int_equal(sprig_sock_local_addr(c.l, &la), SPRIG_STATUS_OK);
    assert_false(sprig_addr_is_ipv4(&la));
    static const uint8_t loopback6[16] = {[15] = 1};
    assert_memory_equal(la.ip, loopback6, 16);
    exchange(c.a, c.b, "tcp v6");
    close3(&c);
}

/* A name goes through getaddrinfo; dialing tries each address it resolves to. */
static void test_os_sock_tcp_localhost_name(void **state)
{
    fixture *f = *state;
    conn3 c;
    connect3(f, "tcp://localhost:0", "tcp://localhost", SPRIG_SOCK_DEFAULT, &c);
    exchange(c.a, c.b, "by name");
    close3(&c);
}

static void test_os_sock_tcp_stream_and_gather(void **state)
{
    fixture *f = *state;
    conn3 c;
    char in[64];
    size_t sent = 0, got = 0, len = 0;
    connect3(f, "tcp://127.0.0.1:0", "tcp://127.0.0.1", SPRIG_SOCK_STREAM, &c);
    assert_int_equal(sprig_sock_type_of(c.a), SPRIG_SOCK_STREAM);
    assert_int_equal(sprig_sock_max_message_size(c.a), 0);
    sprig_iov iov[3] = {{"gat", 3}, {"her", 3}, {"ed", 2}};
    assert_int_equal(sprig_sock_send_iov(c.a, iov, 3, &sent), SPRIG_STATUS_OK);
    assert_int_equal(sent, 8);
    while (got < 8) {
        assert_int_equal(sprig_sock_recv_wait(c.b, in + got, sizeof in - got, &len, TIMEOUT),
                         SPRIG_STATUS_OK);
        got += len;
    }
    assert_memory_equal(in, "gathered", 8);
    /* Half-close: the peer reads the end of the stream. */
    assert_int_equal(sprig_sock_shutdown(c.a), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_recv_wait(c.b, in, sizeof in, &len, TIMEOUT),
                     SPRIG_STATUS_OUT_OF_RANGE);
    close3(&c);
}

/* ---- UDP --------------------------------------------------------------------------------- */

static void test_os_sock_udp_send_to_recv_from(void **state)
{
    fixture *f = *state;
    sprig_sock *bound = NULL, *d = NULL;
    char url[64], in[64];
    size_t len = 0;
    sprig_addr from, dl;
    assert_int_equal(sprig_sock_listen(f->loop, "udp://127.0.0.1:0", SPRIG_SOCK_DEFAULT, &bound),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_type_of(bound), SPRIG_SOCK_DGRAM);
    assert_int_equal(sprig_sock_max_message_size(bound), 65507); /* IPv4 UDP payload limit */
    snprintf(url, sizeof url, "udp://127.0.0.1:%u", local_port(bound));
    assert_int_equal(sprig_sock_dial_wait(f->loop, url, SPRIG_SOCK_DEFAULT, TIMEOUT, &d),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_send(d, "ping", 4, NULL), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_recv_wait(bound, in, 0, &len, TIMEOUT),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED); /* wait for it; size only */
    assert_int_equal(len, 4);
    assert_int_equal(sprig_sock_recv_from(bound, in, sizeof in, &len, &from), SPRIG_STATUS_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(in, "ping", 4);
    assert_int_equal(sprig_sock_local_addr(d, &dl), SPRIG_STATUS_OK);
    assert_true(sprig_addr_equal(&from, &dl));
    assert_int_equal(sprig_sock_send_to(bound, "pong", 4, &from), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_recv_wait(d, in, sizeof in, &len, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(in, "pong", 4);
    /* An IPv6 destination for an IPv4 socket is a caller error. */
    sprig_addr v6 = {.ip = {[15] = 1}, .port = 9};
    assert_int_equal(sprig_sock_send_to(bound, "x", 1, &v6), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_sock_close(d);
    sprig_sock_close(bound);
}

static void test_os_sock_udp_ipv6_limit(void **state)
{
    fixture *f = *state;
    sprig_sock *bound = NULL;
    if (sprig_sock_listen(f->loop, "udp://[::1]:0", SPRIG_SOCK_DEFAULT, &bound) !=
        SPRIG_STATUS_OK) {
        skip();
    }
    assert_int_equal(sprig_sock_max_message_size(bound), 65527); /* IPv6 UDP payload limit */
    sprig_sock_close(bound);
}

/* An ICMP port-unreachable for an earlier datagram is no failure of the socket. */
static void test_os_sock_udp_refused_is_ignored(void **state)
{
    fixture *f = *state;
    sprig_sock *l = NULL, *d = NULL;
    char url[64], in[16];
    size_t len = 0;
    ev_log log = {0};
    assert_int_equal(sprig_sock_listen(f->loop, "udp://127.0.0.1:0", SPRIG_SOCK_DEFAULT, &l),
                     SPRIG_STATUS_OK);
    snprintf(url, sizeof url, "udp://127.0.0.1:%u", local_port(l));
    sprig_sock_close(l); /* nobody there now */
    assert_int_equal(sprig_sock_dial_wait(f->loop, url, SPRIG_SOCK_DEFAULT, TIMEOUT, &d),
                     SPRIG_STATUS_OK);
    sprig_sock_set_callback(d, record, &log);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sprig_sock_send(d, "lost", 4, NULL), SPRIG_STATUS_OK);
        (void)sprig_loop_run_until(f->loop, is_closed, &log, SPRIG_TIME_MS(30));
        assert_int_equal(sprig_sock_recv(d, in, sizeof in, &len), SPRIG_STATUS_UNAVAILABLE);
    }
    assert_int_equal(log.closed, 0);
    sprig_sock_close(d);
}

/* ---- dial failures --------------------------------------------------------------------- */

static void test_os_sock_tcp_refused_is_closed_unavailable(void **state)
{
    fixture *f = *state;
    sprig_sock *l = NULL, *s = NULL;
    char url[64];
    ev_log log = {0};
    assert_int_equal(sprig_sock_listen(f->loop, "tcp://127.0.0.1:0", SPRIG_SOCK_STREAM, &l),
                     SPRIG_STATUS_OK);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%u", local_port(l));
    sprig_sock_close(l);
    for (int type = SPRIG_SOCK_SEQPACKET; type <= SPRIG_SOCK_STREAM; type++) {
        memset(&log, 0, sizeof log);
        assert_int_equal(sprig_sock_dial(f->loop, url, (sprig_sock_type)type, &s), SPRIG_STATUS_OK);
        sprig_sock_set_callback(s, record, &log);
        assert_int_equal(sprig_loop_run_until(f->loop, is_closed, &log, TIMEOUT), SPRIG_STATUS_OK);
        assert_int_equal(log.closed, 1);
        assert_int_equal(log.connected, 0);
        assert_int_equal(log.closed_status, SPRIG_STATUS_UNAVAILABLE);
        sprig_sock_close(s);
    }
    assert_int_equal(sprig_sock_dial_wait(f->loop, url, SPRIG_SOCK_DEFAULT, TIMEOUT, &s),
                     SPRIG_STATUS_UNAVAILABLE);
    assert_null(s);
}

static void test_os_sock_unix_missing_path_is_closed_not_found(void **state)
{
    fixture *f = *state;
    sprig_sock *s = NULL;
    char url[200];
    ev_log log = {0};
    unix_url(url, sizeof url, "missing");
    assert_int_equal(sprig_sock_dial(f->loop, url, SPRIG_SOCK_DEFAULT, &s), SPRIG_STATUS_OK);
    /* Nothing is decided inside the call: the socket is CONNECTING until the loop runs. */
    assert_int_equal(s->state, SPRIG_SOCK_STATE_CONNECTING);
    sprig_sock_set_callback(s, record, &log);
    assert_int_equal(sprig_loop_run_until(f->loop, is_closed, &log, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(log.connected, 0);
    assert_int_equal(log.closed, 1);
    assert_int_equal(log.closed_status, SPRIG_STATUS_NOT_FOUND);
    sprig_sock_close(s);
    /* A path longer than sun_path is a caller error. */
    char longurl[300];
    memset(longurl, 'x', sizeof longurl);
    memcpy(longurl, "unix:/", 6);
    longurl[sizeof longurl - 1] = '\0';
    assert_int_equal(sprig_sock_dial(f->loop, longurl, SPRIG_SOCK_DEFAULT, &s),
                     SPRIG_STATUS_INVALID_ARGUMENT);
}

/* ---- unix socket files ------------------------------------------------------------------ */

/* A socket file left by a process that died without cleaning up. */
static void make_stale_socket(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    assert_true(fd >= 0);
    assert_true(strlen(path) < sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
}

static void test_os_sock_unix_stale_file_removed(void **state)
{
    fixture *f = *state;
    char url[200];
    conn3 c;
    unix_url(url, sizeof url, "stale");
    make_stale_socket(url + 5);
    assert_true(path_exists(url));
    connect3(f, url, NULL, SPRIG_SOCK_DEFAULT, &c);
    exchange(c.a, c.b, "fresh");
    close3(&c);
    assert_false(path_exists(url));
}

static void test_os_sock_unix_second_listener_already_exists(void **state)
{
    fixture *f = *state;
    char url[200];
    sprig_sock *l = NULL, *l2 = NULL;
    conn3 c;
    unix_url(url, sizeof url, "taken");
    assert_int_equal(sprig_sock_listen(f->loop, url, SPRIG_SOCK_DEFAULT, &l), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_listen(f->loop, url, SPRIG_SOCK_DEFAULT, &l2),
                     SPRIG_STATUS_ALREADY_EXISTS);
    assert_null(l2);
    /* The first listener is untouched. */
    assert_int_equal(sprig_sock_dial_wait(f->loop, url, SPRIG_SOCK_DEFAULT, TIMEOUT, &c.a),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_accept_wait(l, TIMEOUT, &c.b), SPRIG_STATUS_OK);
    c.l = l;
    exchange(c.a, c.b, "still mine");
    close3(&c);
}

/* A file that is not a socket is never removed to make room. */
static void test_os_sock_unix_regular_file_kept(void **state)
{
    fixture *f = *state;
    char url[200];
    sprig_sock *l = NULL;
    unix_url(url, sizeof url, "file");
    FILE *fp = fopen(url + 5, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(sprig_sock_listen(f->loop, url, SPRIG_SOCK_DEFAULT, &l),
                     SPRIG_STATUS_ALREADY_EXISTS);
    assert_true(path_exists(url));
    unlink(url + 5);
}

/* Closing removes the listener's own file, not one that has replaced it. */
static void test_os_sock_unix_close_removes_only_own_file(void **state)
{
    fixture *f = *state;
    char url[200];
    sprig_sock *a = NULL, *b = NULL;
    unix_url(url, sizeof url, "own");
    assert_int_equal(sprig_sock_listen(f->loop, url, SPRIG_SOCK_DEFAULT, &a), SPRIG_STATUS_OK);
    assert_int_equal(unlink(url + 5), 0);
    assert_int_equal(sprig_sock_listen(f->loop, url, SPRIG_SOCK_DEFAULT, &b), SPRIG_STATUS_OK);
    sprig_sock_close(a);
    assert_true(path_exists(url));
    sprig_sock_close(b);
    assert_false(path_exists(url));
}

/* A unix listener with a full backlog answers a dial with EAGAIN; the dial keeps trying and
 * connects once the server accepts. */
#define QUEUED 5

static void test_os_sock_unix_full_backlog_retries(void **state)
{
    fixture *f = *state;
    char url[200];
    sprig_sock *l = NULL, *cli[QUEUED], *srv[QUEUED];
    ev_log log[QUEUED];
    int connected = 0;
    unix_url(url, sizeof url, "backlog");
    assert_int_equal(sprig_sock_listen(f->loop, url, SPRIG_SOCK_DEFAULT, &l), SPRIG_STATUS_OK);
    memset(log, 0, sizeof log);
    for (int i = 0; i < QUEUED; i++) {
        assert_int_equal(sprig_sock_dial(f->loop, url, SPRIG_SOCK_DEFAULT, &cli[i]),
                         SPRIG_STATUS_OK);
        sprig_sock_set_callback(cli[i], record, &log[i]);
    }
    for (int i = 0; i < 10; i++) {
        (void)sprig_loop_run_once(f->loop, SPRIG_TIME_MS(5));
    }
    for (int i = 0; i < QUEUED; i++) {
        connected += log[i].connected;
        assert_int_equal(log[i].closed, 0);
    }
    assert_true(connected >= 1);
    assert_true(connected < QUEUED); /* the backlog held only some */
    for (int i = 0; i < QUEUED; i++) {
        assert_int_equal(sprig_sock_accept_wait(l, TIMEOUT, &srv[i]), SPRIG_STATUS_OK);
    }
    for (int i = 0; i < QUEUED; i++) {
        assert_int_equal(sprig_loop_run_until(f->loop, is_connected, &log[i], TIMEOUT),
                         SPRIG_STATUS_OK);
        assert_int_equal(log[i].closed, 0);
    }
    for (int i = 0; i < QUEUED; i++) {
        char msg[8];
        snprintf(msg, sizeof msg, "c%d", i);
        assert_int_equal(sprig_sock_send(cli[i], msg, strlen(msg), NULL), SPRIG_STATUS_OK);
    }
    /* Every client reached one accepted socket, each a different one. */
    int seen = 0;
    for (int i = 0; i < QUEUED; i++) {
        char in[8];
        size_t len = 0;
        assert_int_equal(sprig_sock_recv_wait(srv[i], in, sizeof in, &len, TIMEOUT),
                         SPRIG_STATUS_OK);
        assert_int_equal(len, 2);
        seen |= 1 << (in[1] - '0');
    }
    assert_int_equal(seen, (1 << QUEUED) - 1);
    for (int i = 0; i < QUEUED; i++) {
        sprig_sock_close(cli[i]);
        sprig_sock_close(srv[i]);
    }
    sprig_sock_close(l);
}

/* Out of fds at accept: the connection stays queued and the listener says READABLE again by
 * itself (no new connection would ever raise a new edge). */
static void test_os_sock_accept_out_of_fds_retries(void **state)
{
    fixture *f = *state;
    sprig_sock *l = NULL, *a = NULL, *b = NULL;
    char url[64];
    ev_log log = {0};
    struct rlimit saved, low;
    assert_int_equal(sprig_sock_listen(f->loop, "tcp://127.0.0.1:0", SPRIG_SOCK_STREAM, &l),
                     SPRIG_STATUS_OK);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%u", local_port(l));
    assert_int_equal(sprig_sock_dial_wait(f->loop, url, SPRIG_SOCK_STREAM, TIMEOUT, &a),
                     SPRIG_STATUS_OK);
    (void)sprig_loop_run_once(f->loop, SPRIG_TIME_MS(5)); /* the listener's edge goes by */
    sprig_sock_set_callback(l, record, &log);
    int lowest = dup(0);
    assert_true(lowest >= 0);
    close(lowest);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    low = saved;
    low.rlim_cur = (rlim_t)lowest;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    sprig_status st = sprig_sock_accept(l, &b);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    assert_int_equal(st, SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_null(b);
    assert_int_equal(log.readable, 0);
    while (log.readable == 0) {
        assert_int_equal(sprig_loop_run_once(f->loop, SPRIG_TIME_S(2)), SPRIG_STATUS_OK);
    }
    assert_int_equal(sprig_sock_accept(l, &b), SPRIG_STATUS_OK);
    sprig_sock_close(a);
    sprig_sock_close(b);
    sprig_sock_close(l);
}

/* ---- message sizes ------------------------------------------------------------------------ */

static void small_recv_keeps_message(fixture *f, sprig_sock *tx, sprig_sock *rx)
{
    uint8_t big[300], in[300];
    size_t len = 0;
    for (size_t i = 0; i < sizeof big; i++) {
        big[i] = (uint8_t)(i * 7 + 1);
    }
    assert_int_equal(sprig_sock_send(tx, big, sizeof big, NULL), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_send(tx, "next", 4, NULL), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_recv_wait(rx, in, 10, &len, TIMEOUT),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(len, sizeof big);
    /* Asking again with the same small buffer: still there, same size. */
    assert_int_equal(sprig_sock_recv(rx, in, 10, &len), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(len, sizeof big);
    assert_int_equal(sprig_sock_recv(rx, in, sizeof in, &len), SPRIG_STATUS_OK);
    assert_int_equal(len, sizeof big);
    assert_memory_equal(in, big, sizeof big);
    assert_int_equal(sprig_sock_recv_wait(rx, in, 10, &len, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(in, "next", 4);
    (void)f;
}

static void test_os_sock_small_recv_buffer_keeps_message(void **state)
{
    fixture *f = *state;
    char url[200];
    conn3 c;
    unix_url(url, sizeof url, "small");
    connect3(f, url, NULL, SPRIG_SOCK_DEFAULT, &c);
    small_recv_keeps_message(f, c.a, c.b);
    /* With every pool buffer taken, the backend peeks instead of stashing: same result. */
    sprig_buf *held[64];
    size_t n = 0;
    while (n < 64 && sprig_sock_alloc_tx(c.a, 16, &held[n]) == SPRIG_STATUS_OK) {
        n++;
    }
    assert_int_equal(sprig_buf_pool_available(&f->b.pool), 0);
    small_recv_keeps_message(f, c.a, c.b);
    for (size_t i = 0; i < n; i++) {
        sprig_buf_free(held[i]);
    }
    close3(&c);
}

static void test_os_sock_udp_small_recv_keeps_source(void **state)
{
    fixture *f = *state;
    sprig_sock *bound = NULL, *d = NULL;
    char url[64], in[64];
    size_t len = 0;
    sprig_addr from, dl;
    assert_int_equal(sprig_sock_listen(f->loop, "udp://127.0.0.1:0", SPRIG_SOCK_DEFAULT, &bound),
                     SPRIG_STATUS_OK);
    snprintf(url, sizeof url, "udp://127.0.0.1:%u", local_port(bound));
    assert_int_equal(sprig_sock_dial_wait(f->loop, url, SPRIG_SOCK_DEFAULT, TIMEOUT, &d),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_send(d, "0123456789", 10, NULL), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_recv_wait(bound, in, 3, &len, TIMEOUT),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(len, 10);
    assert_int_equal(sprig_sock_recv_from(bound, in, sizeof in, &len, &from), SPRIG_STATUS_OK);
    assert_int_equal(len, 10);
    assert_memory_equal(in, "0123456789", 10);
    assert_int_equal(sprig_sock_local_addr(d, &dl), SPRIG_STATUS_OK);
    assert_true(sprig_addr_equal(&from, &dl));
    sprig_sock_close(d);
    sprig_sock_close(bound);
}

/* A max message larger than the default unix send buffer: the backend raises SO_SNDBUF so a
 * message of exactly the maximum goes through; one byte more is refused at the sender. */
static void test_os_sock_unix_max_message_exact(void **state)
{
    fixture *f = *state;
    const size_t max = 300000;
    sprig_os_loop ol;
    sprig_os_backend b;
    sprig_os_backend_cfg cfg = {.max_message_size = max, .tx_pool_bufs = 2};
    char url[200];
    sprig_sock *l = NULL, *a = NULL, *s = NULL;
    size_t len = 0;
    (void)f;
    assert_int_equal(sprig_os_loop_init(&ol), SPRIG_STATUS_OK);
    assert_int_equal(sprig_os_backend_init(&b, &ol, &cfg), SPRIG_STATUS_OK);
    unix_url(url, sizeof url, "max");
    assert_int_equal(sprig_sock_listen(&ol.loop, url, SPRIG_SOCK_DEFAULT, &l), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_dial_wait(&ol.loop, url, SPRIG_SOCK_DEFAULT, TIMEOUT, &a),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_accept_wait(l, TIMEOUT, &s), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_max_message_size(a), max);
    uint8_t *out = malloc(max + 1), *in = malloc(max + 1);
    assert_non_null(out);
    assert_non_null(in);
    for (size_t i = 0; i <= max; i++) {
        out[i] = (uint8_t)(i % 251);
    }
    assert_int_equal(sprig_sock_send_wait(a, out, max, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_send(a, out, max + 1, NULL), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(sprig_sock_recv_wait(s, in, max + 1, &len, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(len, max);
    assert_memory_equal(in, out, max);
    /* gather (sendmsg): the pieces are one message, up to the same limit */
    sprig_iov iov[3] = {{out, 1000}, {out + 1000, 0}, {out + 1000, max - 1000}};
    size_t sent = 0;
    assert_int_equal(sprig_sock_send_iov(a, iov, 3, &sent), SPRIG_STATUS_OK);
    assert_int_equal(sent, max);
    iov[1].len = 1;
    assert_int_equal(sprig_sock_send_iov(a, iov, 3, &sent), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(sent, 0);
    memset(in, 0, max);
    assert_int_equal(sprig_sock_recv_wait(s, in, max + 1, &len, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(len, max);
    assert_memory_equal(in, out, max);
    /* The other direction too (the accepted socket has its own send buffer). */
    assert_int_equal(sprig_sock_send_wait(s, out, max, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_recv_wait(a, in, max, &len, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(len, max);
    free(out);
    free(in);
    sprig_sock_close(a);
    sprig_sock_close(s);
    sprig_sock_close(l);
    assert_int_equal(sprig_os_backend_open_count(&b), 0);
    sprig_os_backend_deinit(&b);
    sprig_os_loop_deinit(&ol);
}

/* Peers that ignore our limit (max 1024 here), talking through plain sockets. A datagram longer
 * than the limit is dropped and the next one read; a unix peer sending one loses the connection
 * (RESOURCE_EXHAUSTED, as over TCP framing). Nothing is ever handed out cut short. */
static void test_os_sock_oversized_from_peer(void **state)
{
    fixture *f = *state;
    sprig_sock *bound = NULL, *l = NULL, *srv = NULL;
    static uint8_t big[2000], in[2000];
    size_t len = 0;
    ev_log log = {0};
    assert_int_equal(sprig_sock_listen(f->loop, "udp://127.0.0.1:0", SPRIG_SOCK_DEFAULT, &bound),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_max_message_size(bound), 1024);
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons(local_port(bound)),
                             .sin_addr.s_addr = htonl(0x7f000001u)};
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(u >= 0);
    for (int cap = 1024; cap >= 100; cap -= 924) { /* the direct path, then the small one */
        assert_int_equal(sendto(u, big, sizeof big, 0, (struct sockaddr *)&to, sizeof to),
                         (ssize_t)sizeof big);
        assert_int_equal(sendto(u, "ok", 2, 0, (struct sockaddr *)&to, sizeof to), 2);
        assert_int_equal(sprig_sock_recv_wait(bound, in, (size_t)cap, &len, TIMEOUT),
                         SPRIG_STATUS_OK);
        assert_int_equal(len, 2);
        assert_memory_equal(in, "ok", 2);
    }
    close(u);
    sprig_sock_close(bound);

    char url[200];
    unix_url(url, sizeof url, "oversized");
    assert_int_equal(sprig_sock_listen(f->loop, url, SPRIG_SOCK_DEFAULT, &l), SPRIG_STATUS_OK);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    assert_true(strlen(url + 5) < sizeof sa.sun_path);
    memcpy(sa.sun_path, url + 5, strlen(url + 5) + 1);
    int p = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    assert_true(p >= 0);
    assert_int_equal(connect(p, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(sprig_sock_accept_wait(l, TIMEOUT, &srv), SPRIG_STATUS_OK);
    sprig_sock_set_callback(srv, record, &log);
    assert_int_equal(send(p, big, sizeof big, 0), (ssize_t)sizeof big);
    assert_int_equal(sprig_sock_recv_wait(srv, in, sizeof in, &len, TIMEOUT),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(sprig_loop_run_until(f->loop, is_closed, &log, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(log.closed_status, SPRIG_STATUS_RESOURCE_EXHAUSTED);
    close(p);
    sprig_sock_close(srv);
    sprig_sock_close(l);
}

/* recv() says 0 both for an empty message and at the end: an empty message is not the end. */
static void test_os_sock_unix_empty_message_is_not_eof(void **state)
{
    fixture *f = *state;
    char url[200], in[16];
    size_t len = 99;
    conn3 c;
    unix_url(url, sizeof url, "empty");
    connect3(f, url, NULL, SPRIG_SOCK_DEFAULT, &c);
    assert_int_equal(sprig_sock_send(c.a, "", 0, NULL), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_recv_wait(c.b, in, sizeof in, &len, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(len, 0);
    exchange(c.a, c.b, "after");
    /* An empty message followed by data, then the end: all three are told apart. */
    assert_int_equal(sprig_sock_send(c.a, "", 0, NULL), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_send(c.a, "x", 1, NULL), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_shutdown(c.a), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_recv_wait(c.b, in, sizeof in, &len, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(len, 0);
    assert_int_equal(sprig_sock_recv_wait(c.b, in, sizeof in, &len, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(len, 1);
    assert_int_equal(sprig_sock_recv_wait(c.b, in, sizeof in, &len, TIMEOUT),
                     SPRIG_STATUS_OUT_OF_RANGE);
    close3(&c);
}

/* ---- zero copy --------------------------------------------------------------------------- */

static void test_os_sock_send_buf_returns_buffer(void **state)
{
    fixture *f = *state;
    char url[200], in[64];
    size_t len = 0;
    conn3 c;
    sprig_buf *buf = NULL;
    unix_url(url, sizeof url, "zc");
    connect3(f, url, NULL, SPRIG_SOCK_DEFAULT, &c);
    size_t before = sprig_buf_pool_available(&f->b.pool);
    assert_int_equal(sprig_sock_alloc_tx(c.a, 5, &buf), SPRIG_STATUS_OK);
    assert_int_equal(sprig_buf_headroom(buf), SPRIG_CONFIG_SOCK_HEADROOM);
    assert_int_equal(sprig_buf_append(buf, "zcopy", 5), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_send_buf(c.a, buf), SPRIG_STATUS_OK);
    assert_int_equal(sprig_buf_pool_available(&f->b.pool), before);
    assert_int_equal(sprig_sock_recv_wait(c.b, in, sizeof in, &len, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(in, "zcopy", 5);
    /* A maximum-size payload fits a pool buffer behind the headroom (unix and framed TCP). */
    assert_int_equal(sprig_sock_alloc_tx(c.a, SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE, &buf),
                     SPRIG_STATUS_OK);
    assert_true(sprig_buf_tailroom(buf) >= SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE);
    sprig_buf_free(buf);
    close3(&c);
    connect3(f, "tcp://127.0.0.1:0", "tcp://127.0.0.1", SPRIG_SOCK_DEFAULT, &c);
    assert_int_equal(sprig_sock_alloc_tx(c.a, SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE, &buf),
                     SPRIG_STATUS_OK);
    assert_true(sprig_buf_tailroom(buf) >= SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE);
    assert_non_null(sprig_buf_put(buf, 3));
    memcpy(sprig_buf_data(buf), "tcp", 3);
    assert_int_equal(sprig_sock_send_buf(c.a, buf), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_recv_wait(c.b, in, sizeof in, &len, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(in, "tcp", 3);
    close3(&c);
}

/* The fd of our own TCP socket bound to local `port`, listening or not (the API does not
 * expose fds). */
static int find_tcp_fd(uint16_t port, int want_listening)
{
    for (int fd = 0; fd < 1024; fd++) {
        struct sockaddr_in sa;
        socklen_t len = sizeof sa;
        int listening = 0;
        socklen_t ilen = sizeof listening;
        if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0 && sa.sin_family == AF_INET &&
            ntohs(sa.sin_port) == port &&
            getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ilen) == 0 &&
            listening == want_listening) {
            return fd;
        }
    }
    return -1;
}

static void expect_pattern(const uint8_t *in, size_t len, uint64_t at)
{
    for (size_t i = 0; i < len; i++) {
        if (in[i] != (uint8_t)((at + i) % 251)) {
            fail_msg("byte %llu: %u", (unsigned long long)(at + i), in[i]);
        }
    }
}

/* STREAM send_buf: the buffer goes whole even when the kernel takes only part of it now; the
 * rest follows in order, sends wait (UNAVAILABLE) until it has gone, then WRITABLE. Small
 * kernel buffers on both sides make the kernel take only part. */
static void test_os_sock_tcp_stream_send_buf_keeps_order(void **state)
{
    fixture *f = *state;
    sprig_sock *l = NULL, *a = NULL, *b = NULL;
    ev_log log = {0};
    static uint8_t in[1 << 16];
    const size_t big = 60000;
    uint64_t got = 0;
    size_t len = 0;
    char url[64];
    sprig_buf *buf = NULL;
    assert_int_equal(sprig_sock_listen(f->loop, "tcp://127.0.0.1:0", SPRIG_SOCK_STREAM, &l),
                     SPRIG_STATUS_OK);
    int lfd = find_tcp_fd(local_port(l), 1);
    assert_true(lfd >= 0);
    int small = 2048;
    assert_int_equal(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%u", local_port(l));
    assert_int_equal(sprig_sock_dial_wait(f->loop, url, SPRIG_SOCK_STREAM, TIMEOUT, &a),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_accept_wait(l, TIMEOUT, &b), SPRIG_STATUS_OK);
    sprig_sock_set_callback(a, record, &log);
    sprig_addr local;
    assert_int_equal(sprig_sock_local_addr(a, &local), SPRIG_STATUS_OK);
    int afd = find_tcp_fd(local.port, 0);
    assert_true(afd >= 0);
    assert_int_equal(setsockopt(afd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    assert_int_equal(sprig_sock_alloc_tx(a, big, &buf), SPRIG_STATUS_OK);
    uint8_t *p = sprig_buf_put(buf, big);
    assert_non_null(p);
    for (size_t i = 0; i < big; i++) {
        p[i] = (uint8_t)(i % 251);
    }
    assert_int_equal(sprig_sock_send_buf(a, buf), SPRIG_STATUS_OK);
    /* The rest is still queued in the socket: nothing may overtake it. */
    uint8_t next = (uint8_t)(big % 251);
    size_t n = 0;
    assert_int_equal(sprig_sock_send(a, &next, 1, &n), SPRIG_STATUS_UNAVAILABLE);
    while (got < big) {
        assert_int_equal(sprig_sock_recv_wait(b, in, sizeof in, &len, TIMEOUT), SPRIG_STATUS_OK);
        expect_pattern(in, len, got);
        got += len;
    }
    assert_int_equal(got, big);
    assert_int_equal(sprig_loop_run_until(f->loop, is_writable, &log, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_send(a, &next, 1, &n), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_recv_wait(b, in, sizeof in, &len, TIMEOUT), SPRIG_STATUS_OK);
    assert_int_equal(len, 1);
    expect_pattern(in, 1, big);
    assert_int_equal(sprig_buf_pool_available(&f->b.pool), f->b.pool.count);
    assert_int_equal(log.closed, 0);
    sprig_sock_close(a);
    sprig_sock_close(b);
    sprig_sock_close(l);
}

/* ---- closing inside callbacks ------------------------------------------------------------ */

typedef struct closer {
    sprig_sock *socks[2];
    int events;
    bool done;
} closer;

/* Whichever of the two is readable first closes both. */
static void close_on_readable(sprig_sock *s, sprig_sock_event ev, sprig_status st, void *user)
{
    (void)s;
    (void)st;
    closer *c = user;
    c->events++;
    if (ev == SPRIG_SOCK_EV_READABLE && !c->done) {
        sprig_sock_close(c->socks[0]);
        sprig_sock_close(c->socks[1]);
        c->done = true;
    }
}

static bool closer_done(void *arg)
{
    return ((closer *)arg)->done;
}

static void test_os_sock_close_inside_callback(void **state)
{
    fixture *f = *state;
    char url[200];
    conn3 c1, c2;
    unix_url(url, sizeof url, "cb1");
    connect3(f, url, NULL, SPRIG_SOCK_DEFAULT, &c1);
    /* Both receivers become readable in the same pass; the first callback closes both. */
    connect3(f, "tcp://127.0.0.1:0", "tcp://127.0.0.1", SPRIG_SOCK_DEFAULT, &c2);
    closer cl = {.socks = {c1.b, c2.b}};
    sprig_sock_set_callback(c1.b, close_on_readable, &cl);
    sprig_sock_set_callback(c2.b, close_on_readable, &cl);
    assert_int_equal(sprig_sock_send(c2.a, "b", 1, NULL), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_send(c1.a, "a", 1, NULL), SPRIG_STATUS_OK);
    usleep(20000);
    assert_int_equal(sprig_loop_run_until(f->loop, closer_done, &cl, TIMEOUT), SPRIG_STATUS_OK);
    for (int i = 0; i < 3; i++) {
        (void)sprig_loop_run_once(f->loop, SPRIG_TIME_MS(5));
    }
    assert_int_equal(cl.events, 1); /* nothing after close */
    sprig_sock_close(c1.a);
    sprig_sock_close(c1.l);
    sprig_sock_close(c2.a);
    sprig_sock_close(c2.l);
}

/* ---- accounting -------------------------------------------------------------------------- */

static void test_os_sock_open_count_follows_sockets(void **state)
{
    fixture *f = *state;
    conn3 c;
    assert_int_equal(sprig_os_backend_open_count(&f->b), 0);
    connect3(f, "tcp://127.0.0.1:0", "tcp://127.0.0.1", SPRIG_SOCK_DEFAULT, &c);
    assert_int_equal(sprig_os_backend_open_count(&f->b), 3);
    sprig_sock_close(c.a);
    assert_int_equal(sprig_os_backend_open_count(&f->b), 2);
    sprig_sock_close(c.b);
    sprig_sock_close(c.l);
    assert_int_equal(sprig_os_backend_open_count(&f->b), 0);
    assert_int_equal(sprig_os_backend_open_count(NULL), 0);
}

static void test_os_sock_backend_init_and_deinit(void **state)
{
    (void)state;
    sprig_os_loop ol;
    sprig_os_backend b;
    memset(&b, 0, sizeof b);
    sprig_os_backend_deinit(&b); /* never initialised */
    assert_int_equal(sprig_os_backend_init(&b, NULL, NULL), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_os_backend_deinit(&b); /* after a failed init */
    assert_int_equal(sprig_os_loop_init(&ol), SPRIG_STATUS_OK);
    sprig_os_backend_cfg huge = {.max_message_size = (size_t)1 << 40};
    assert_int_equal(sprig_os_backend_init(&b, &ol, &huge), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_os_backend_deinit(&b);
    assert_int_equal(sprig_os_backend_init(&b, &ol, NULL), SPRIG_STATUS_OK);
    assert_int_equal(b.cfg.max_message_size, SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE);
    assert_int_equal(b.pool.count, 64);
    assert_true(b.pool.buf_size >=
                SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE + SPRIG_CONFIG_SOCK_HEADROOM);
    assert_ptr_equal(ol.loop.backends, &b.backend);
    sprig_os_backend_deinit(&b);
    assert_null(ol.loop.backends);
    sprig_os_backend_deinit(&b);
    sprig_os_loop_deinit(&ol);
}

/* ---- scale: 1000 TCP SEQPACKET connections echoing on one loop ---------------------------- */

#define MANY 1000

typedef struct many {
    sprig_sock *l;
    sprig_sock *srv[MANY];
    size_t accepted;
    sprig_sock *cli[MANY];
    uint32_t id[MANY];
    size_t echoed;
    int failures;
} many;

static many *g_many;

static void srv_cb(sprig_sock *s, sprig_sock_event ev, sprig_status st, void *user)
{
    (void)st;
    (void)user;
    uint8_t buf[64];
    size_t len = 0;
    if (ev == SPRIG_SOCK_EV_CLOSED) {
        g_many->failures++;
        return;
    }
    if (ev != SPRIG_SOCK_EV_READABLE) {
        return;
    }
    while (sprig_sock_recv(s, buf, sizeof buf, &len) == SPRIG_STATUS_OK) {
        if (sprig_sock_send(s, buf, len, NULL) != SPRIG_STATUS_OK) {
            g_many->failures++;
        }
    }
}

static void listener_cb(sprig_sock *l, sprig_sock_event ev, sprig_status st, void *user)
{
    (void)st;
    many *m = user;
    sprig_sock *s = NULL;
    if (ev != SPRIG_SOCK_EV_READABLE) {
        return;
    }
    while (m->accepted < MANY && sprig_sock_accept(l, &s) == SPRIG_STATUS_OK) {
        sprig_sock_set_callback(s, srv_cb, m);
        m->srv[m->accepted++] = s;
        /* Bytes may have come before the callback was set: read them now. */
        srv_cb(s, SPRIG_SOCK_EV_READABLE, SPRIG_STATUS_OK, m);
    }
}

static void cli_cb(sprig_sock *s, sprig_sock_event ev, sprig_status st, void *user)
{
    (void)st;
    uint32_t *id = user;
    uint32_t v = 0;
    size_t len = 0;
    switch (ev) {
    case SPRIG_SOCK_EV_CONNECTED:
        if (sprig_sock_send(s, id, sizeof *id, NULL) != SPRIG_STATUS_OK) {
            g_many->failures++;
        }
        break;
    case SPRIG_SOCK_EV_READABLE:
        while (sprig_sock_recv(s, &v, sizeof v, &len) == SPRIG_STATUS_OK) {
            if (len != sizeof v || v != *id) {
                g_many->failures++;
            }
            g_many->echoed++;
        }
        break;
    case SPRIG_SOCK_EV_CLOSED:
        g_many->failures++;
        break;
    default:
        break;
    }
}

static bool all_echoed(void *arg)
{
    many *m = arg;
    return m->echoed == MANY || m->failures > 0;
}

static void test_os_sock_thousand_tcp_connections_echo(void **state)
{
    fixture *f = *state;
    char url[64];
    many *m = calloc(1, sizeof *m);
    assert_non_null(m);
    g_many = m;
    assert_int_equal(sprig_sock_listen(f->loop, "tcp://127.0.0.1:0", SPRIG_SOCK_SEQPACKET, &m->l),
                     SPRIG_STATUS_OK);
    sprig_sock_set_callback(m->l, listener_cb, m);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%u", local_port(m->l));
    for (uint32_t i = 0; i < MANY; i++) {
        m->id[i] = 0x5000u + i;
        assert_int_equal(sprig_sock_dial(f->loop, url, SPRIG_SOCK_SEQPACKET, &m->cli[i]),
                         SPRIG_STATUS_OK);
        sprig_sock_set_callback(m->cli[i], cli_cb, &m->id[i]);
    }
    assert_int_equal(sprig_os_backend_open_count(&f->b), 1 + MANY);
    assert_int_equal(sprig_loop_run_until(f->loop, all_echoed, m, SPRIG_TIME_S(60)),
                     SPRIG_STATUS_OK);
    assert_int_equal(m->failures, 0);
    assert_int_equal(m->echoed, MANY);
    assert_int_equal(m->accepted, MANY);
    assert_int_equal(sprig_os_backend_open_count(&f->b), 1 + 2 * MANY);
    for (size_t i = 0; i < MANY; i++) {
        sprig_sock_close(m->cli[i]);
        sprig_sock_close(m->srv[i]);
    }
    sprig_sock_close(m->l);
    assert_int_equal(sprig_os_backend_open_count(&f->b), 0);
    g_many = NULL;
    free(m);
}

#define CASE(fn)       cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define CASE_SMALL(fn) cmocka_unit_test_setup_teardown(fn, setup_small, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        CASE(test_os_sock_unix_path),
        CASE(test_os_sock_tcp_ipv4_port_zero),
        CASE(test_os_sock_bound_url_as_given),
        CASE(test_os_sock_tcp_ipv6),
        CASE(test_os_sock_tcp_localhost_name),
        CASE(test_os_sock_tcp_stream_and_gather),
        CASE(test_os_sock_udp_send_to_recv_from),
        CASE(test_os_sock_udp_ipv6_limit),
        CASE(test_os_sock_udp_refused_is_ignored),
        CASE(test_os_sock_tcp_refused_is_closed_unavailable),
        CASE(test_os_sock_unix_missing_path_is_closed_not_found),
        CASE(test_os_sock_unix_stale_file_removed),
        CASE(test_os_sock_unix_second_listener_already_exists),
        CASE(test_os_sock_unix_regular_file_kept),
        CASE(test_os_sock_unix_close_removes_only_own_file),
        cmocka_unit_test_setup_teardown(test_os_sock_unix_full_backlog_retries, setup_backlog1,
                                        teardown),
        CASE(test_os_sock_accept_out_of_fds_retries),
        CASE(test_os_sock_small_recv_buffer_keeps_message),
        CASE(test_os_sock_udp_small_recv_keeps_source),
        CASE(test_os_sock_unix_max_message_exact),
        CASE(test_os_sock_unix_empty_message_is_not_eof),
        CASE(test_os_sock_send_buf_returns_buffer),
        CASE(test_os_sock_tcp_stream_send_buf_keeps_order),
        CASE(test_os_sock_close_inside_callback),
        CASE(test_os_sock_open_count_follows_sockets),
        cmocka_unit_test(test_os_sock_backend_init_and_deinit),
        CASE_SMALL(test_os_sock_oversized_from_peer),
        CASE_SMALL(test_os_sock_thousand_tcp_connections_echo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
