/*
 * sprig-bench-sockets — SEQPACKET between two processes: raw OS sockets against sprig.
 *
 * For unix SOCK_SEQPACKET and for TCP loopback (SEQPACKET through sprig's framing decorator; the
 * raw baseline frames by hand with the same 4-byte big-endian length prefix) it measures
 *   - the round trip of a 16-byte message (median and p99 over --rounds, after a warm-up), and
 *   - the one-way message rate: the client sends --messages 16-byte messages as fast as flow
 *     control allows, the server counts them and reports the count at the end.
 * The server is a forked child: for "raw" a blocking recv/send loop, for "sprig" an event-driven
 * echo server on a sprig_os_loop. The sprig client sends with sprig_sock_send and takes the
 * reply with sprig_sock_recv, running the loop (sprig_loop_run_once) until READABLE whenever
 * recv says UNAVAILABLE; a second sprig row uses the blocking helpers (sprig_sock_send_wait +
 * sprig_sock_recv_wait).
 *
 * By default both processes are pinned to one CPU (sched_setaffinity), which makes round-trip
 * figures stable and comparable; --no-pin disables it. The benchmark reports what it measures
 * and exits 0 unless something broke (a lost or wrong message, a failing call).
 *
 * Message protocol (both implementations): the first byte of a message says what to do with it.
 *   'E' echo it back; 'S' count it (no reply); 'F' reply with the count so far (8 bytes).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sprig/os.h"
#include "sprig/sock.h"

#define PROG     "sprig-bench-sockets"
#define MSG_LEN  16u
#define RX_CAP   2048u
#define READY_MS 10000 /* how long the parent waits for the child's listener */
#define WATCHDOG 600u  /* seconds: a hung phase kills the process instead of hanging forever */

typedef enum transport { T_UNIX, T_TCP, T_COUNT } transport;
typedef enum impl { I_RAW, I_SPRIG } impl;

static const char *const transport_name[T_COUNT] = {"unix seqpacket", "tcp loopback"};

#define MAX_REPEAT 10u

typedef struct opts {
    unsigned rounds;
    unsigned warmup;
    unsigned messages;
    unsigned repeat;
    bool pin;
} opts;

/* What one client run measured. */
typedef struct run_out {
    uint64_t *rtt;     /* o->rounds round trips (ns) */
    uint64_t *helpers; /* sprig: o->rounds round trips with the blocking helpers (ns) */
    double rate;       /* one-way messages/s */
} run_out;

/* One transport and implementation over every repeat. */
typedef struct series {
    uint64_t *rtt; /* repeat * rounds samples */
    uint64_t *helpers;
    double rate[MAX_REPEAT];
    unsigned runs; /* runs that completed */
    bool failed;
    double rtt_median; /* us, over the samples of every run */
    double rtt_p99;
    double helpers_median;
    double helpers_p99;
    double rate_median; /* median of the runs' rates */
} series;

static char g_dir[] = "/tmp/sprig-bench-XXXXXX";

/* ---- helpers ------------------------------------------------------------------------------ */

static void err(const char *what, const char *detail)
{
    fprintf(stderr, PROG ": %s: %s\n", what, detail);
}

static void err_st(const char *what, sprig_status st)
{
    err(what, sprig_status_str(st));
}

static void err_errno(const char *what)
{
    err(what, strerror(errno));
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Median and 99th percentile of n samples (ns), in microseconds. Sorts the samples. */
static void summarize(uint64_t *ns, unsigned n, double *median, double *p99)
{
    qsort(ns, n, sizeof(*ns), cmp_u64);
    *median = (double)ns[n / 2] / 1e3;
    size_t i = (size_t)((double)n * 0.99);
    *p99 = (double)ns[i < n ? i : n - 1] / 1e3;
}

static void unix_path(impl im, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s.sock", g_dir, im == I_RAW ? "raw" : "sprig");
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* ---- raw sockets: blocking I/O, TCP framed by hand --------------------------------------- */

typedef struct raw_conn {
    int fd;
    transport t;
    uint8_t rx[65536]; /* TCP: received bytes, rx[start..end) not yet parsed */
    size_t start;
    size_t end;
} raw_conn;

static bool write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* One message: send() on unix SEQPACKET; header + payload in one write() on TCP. */
static bool raw_send(raw_conn *c, const uint8_t *msg, size_t len)
{
    if (c->t == T_UNIX) {
        for (;;) {
            ssize_t n = send(c->fd, msg, len, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            return n == (ssize_t)len;
        }
    }
    uint8_t frame[4 + RX_CAP];
    if (len > RX_CAP) {
        return false;
    }
    put_be32(frame, (uint32_t)len);
    memcpy(frame + 4, msg, len);
    return write_all(c->fd, frame, 4 + len);
}

/* One message into *msg (pointing into a buffer valid until the next call). 1: got one,
 * 0: orderly end, -1: error. TCP reads as much as is there and parses frames from it. */
static int raw_recv(raw_conn *c, const uint8_t **msg, size_t *len)
{
    if (c->t == T_UNIX) {
        for (;;) {
            ssize_t n = recv(c->fd, c->rx, sizeof(c->rx), 0);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                return n == 0 ? 0 : -1;
            }
            *msg = c->rx;
            *len = (size_t)n;
            return 1;
        }
    }
    for (;;) {
        size_t have = c->end - c->start;
        if (have >= 4) {
            uint32_t l = get_be32(c->rx + c->start);
            if (l > sizeof(c->rx) - 4) {
                return -1;
            }
            if (have >= 4 + (size_t)l) {
                *msg = c->rx + c->start + 4;
                *len = l;
                c->start += 4 + (size_t)l;
                return 1;
            }
        }
        if (c->start > 0 && (c->end == sizeof(c->rx) || c->start == c->end)) {
            memmove(c->rx, c->rx + c->start, have);
            c->start = 0;
            c->end = have;
        }
        ssize_t n = read(c->fd, c->rx + c->end, sizeof(c->rx) - c->end);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n == 0 && have == 0 ? 0 : -1;
        }
        c->end += (size_t)n;
    }
}

static void set_nodelay(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Child: listen, tell the parent the port (TCP) or that the path is bound (unix), serve one
 * connection until it ends. Returns the exit status. */
static int raw_server(transport t, int ready_fd)
{
    int l = -1;
    uint16_t port = 0;
    if (t == T_UNIX) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        char path[sizeof(sa.sun_path)];
        unix_path(I_RAW, path, sizeof(path));
        memcpy(sa.sun_path, path, strlen(path) + 1);
        (void)unlink(path);
        l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(l, 16) != 0) {
            err_errno("raw server: unix listen");
            return 1;
        }
    } else {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t sl = sizeof(sa);
        l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(l, 16) != 0 ||
            getsockname(l, (struct sockaddr *)&sa, &sl) != 0) {
            err_errno("raw server: tcp listen");
            return 1;
        }
        port = ntohs(sa.sin_port);
    }
    if (write(ready_fd, &port, sizeof(port)) != (ssize_t)sizeof(port)) {
        return 1;
    }
    close(ready_fd);
    static raw_conn c;
    c.t = t;
    c.fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (c.fd < 0) {
        err_errno("raw server: accept");
        return 1;
    }
    close(l);
    if (t == T_TCP) {
        set_nodelay(c.fd);
    }
    uint64_t count = 0;
    for (;;) {
        const uint8_t *msg = NULL;
        size_t len = 0;
        int r = raw_recv(&c, &msg, &len);
        if (r <= 0) {
            close(c.fd);
            return r == 0 ? 0 : 1;
        }
        bool ok = true;
        if (len > 0 && msg[0] == 'S') {
            count++;
        } else if (len > 0 && msg[0] == 'F') {
            ok = raw_send(&c, (const uint8_t *)&count, sizeof(count));
        } else {
            ok = raw_send(&c, msg, len);
        }
        if (!ok) {
            err_errno("raw server: send");
            return 1;
        }
    }
}

static bool raw_run(transport t, uint16_t port, const opts *o, run_out *r)
{
    static raw_conn c;
    memset(&c, 0, sizeof(c));
    c.t = t;
    if (t == T_UNIX) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        unix_path(I_RAW, sa.sun_path, sizeof(sa.sun_path));
        c.fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (c.fd < 0 || connect(c.fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            err_errno("raw client: unix connect");
            return false;
        }
    } else {
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons(port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c.fd < 0 || connect(c.fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            err_errno("raw client: tcp connect");
            return false;
        }
        set_nodelay(c.fd);
    }
    uint8_t msg[MSG_LEN];
    memset(msg, 'x', sizeof(msg));
    msg[0] = 'E';
    bool ok = true;
    for (unsigned i = 0; ok && i < o->warmup + o->rounds; i++) {
        const uint8_t *in = NULL;
        size_t len = 0;
        msg[1] = (uint8_t)i;
        uint64_t t0 = now_ns();
        ok = raw_send(&c, msg, sizeof(msg)) && raw_recv(&c, &in, &len) == 1;
        uint64_t t1 = now_ns();
        ok = ok && len == sizeof(msg) && memcmp(in, msg, len) == 0;
        if (i >= o->warmup) {
            r->rtt[i - o->warmup] = t1 - t0;
        }
    }
    if (!ok) {
        err("raw client", "round trip failed or echo differs");
        close(c.fd);
        return false;
    }
    msg[0] = 'S';
    uint64_t t0 = now_ns();
    for (unsigned i = 0; ok && i < o->messages; i++) {
        ok = raw_send(&c, msg, sizeof(msg));
    }
    uint8_t fin = 'F';
    const uint8_t *in = NULL;
    size_t len = 0;
    uint64_t count = 0;
    ok = ok && raw_send(&c, &fin, 1) && raw_recv(&c, &in, &len) == 1 && len == sizeof(count);
    uint64_t t1 = now_ns();
    if (ok) {
        memcpy(&count, in, sizeof(count));
    }
    close(c.fd);
    if (!ok || count != o->messages) {
        fprintf(stderr, PROG ": raw client: one-way run: server counted %llu of %u messages\n",
                (unsigned long long)count, o->messages);
        return false;
    }
    r->rate = (double)o->messages / ((double)(t1 - t0) / 1e9);
    return true;
}

/* ---- sprig --------------------------------------------------------------------------------- */

typedef struct sprig_env {
    sprig_os_loop ol;
    sprig_os_backend b;
    bool loop_ready;
    bool backend_ready;
} sprig_env;

static sprig_status env_init(sprig_env *e)
{
    memset(e, 0, sizeof(*e));
    sprig_status st = sprig_os_loop_init(&e->ol);
    if (st == SPRIG_STATUS_OK) {
        e->loop_ready = true;
        st = sprig_os_backend_init(&e->b, &e->ol, NULL);
        e->backend_ready = st == SPRIG_STATUS_OK;
    }
    return st;
}

static void env_deinit(sprig_env *e)
{
    if (e->backend_ready) {
        sprig_os_backend_deinit(&e->b);
    }
    if (e->loop_ready) {
        sprig_os_loop_deinit(&e->ol);
    }
}

/* The server: one connection, event-driven. */
typedef struct sserver {
    sprig_loop *loop;
    sprig_sock *listener;
    sprig_sock *conn;
    uint8_t rx[SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE]; /* takes any message the socket may carry */
    const uint8_t *reply; /* pending reply (rx or count), when `pending` */
    size_t reply_len;
    bool pending;
    uint64_t count;
    uint64_t count_out;
    int rc; /* exit status once the loop stops */
} sserver;

static void sserver_done(sserver *v, sprig_status st)
{
    if (st != SPRIG_STATUS_OK && st != SPRIG_STATUS_OUT_OF_RANGE) {
        err_st("sprig server", st);
        v->rc = 1;
    }
    sprig_loop_stop(v->loop);
}

/* Drain the connection: echo 'E', count 'S', answer 'F'. A reply that meets UNAVAILABLE waits
 * for WRITABLE (and reading waits with it). */
static void sserver_serve(sserver *v)
{
    for (;;) {
        sprig_status st;
        if (v->pending) {
            st = sprig_sock_send(v->conn, v->reply, v->reply_len, NULL);
            if (st == SPRIG_STATUS_UNAVAILABLE) {
                return;
            }
            if (st != SPRIG_STATUS_OK) {
                sserver_done(v, st);
                return;
            }
            v->pending = false;
        }
        size_t len = 0;
        st = sprig_sock_recv(v->conn, v->rx, sizeof(v->rx), &len);
        if (st == SPRIG_STATUS_UNAVAILABLE) {
            return;
        }
        if (st != SPRIG_STATUS_OK) {
            sserver_done(v, st);
            return;
        }
        if (len > 0 && v->rx[0] == 'S') {
            v->count++;
        } else if (len > 0 && v->rx[0] == 'F') {
            v->count_out = v->count;
            v->reply = (const uint8_t *)&v->count_out;
            v->reply_len = sizeof(v->count_out);
            v->pending = true;
        } else {
            v->reply = v->rx;
            v->reply_len = len;
            v->pending = true;
        }
    }
}

static void sserver_conn_cb(sprig_sock *s, sprig_sock_event ev, sprig_status st, void *user)
{
    (void)s;
    sserver *v = user;
    if (ev == SPRIG_SOCK_EV_READABLE || ev == SPRIG_SOCK_EV_WRITABLE) {
        sserver_serve(v);
    } else if (ev == SPRIG_SOCK_EV_CLOSED) {
        sserver_done(v, st);
    }
}

static void sserver_listener_cb(sprig_sock *l, sprig_sock_event ev, sprig_status st, void *user)
{
    sserver *v = user;
    if (ev == SPRIG_SOCK_EV_CLOSED) {
        sserver_done(v, st == SPRIG_STATUS_OK ? SPRIG_STATUS_ABORTED : st);
        return;
    }
    if (ev != SPRIG_SOCK_EV_READABLE || v->conn != NULL) {
        return;
    }
    st = sprig_sock_accept(l, &v->conn);
    if (st == SPRIG_STATUS_UNAVAILABLE) {
        return;
    }
    if (st != SPRIG_STATUS_OK) {
        sserver_done(v, st);
        return;
    }
    sprig_sock_set_callback(v->conn, sserver_conn_cb, v);
    sserver_serve(v);
}

static int sprig_server(transport t, int ready_fd)
{
    static sserver v;
    sprig_env e;
    char url[200];
    sprig_status st = env_init(&e);
    if (st != SPRIG_STATUS_OK) {
        err_st("sprig server: OS loop/backend", st);
        env_deinit(&e);
        return 1;
    }
    memset(&v, 0, sizeof(v));
    v.loop = &e.ol.loop;
    if (t == T_UNIX) {
        char path[150];
        unix_path(I_SPRIG, path, sizeof(path));
        snprintf(url, sizeof(url), "unix:%s", path);
    } else {
        snprintf(url, sizeof(url), "tcp://127.0.0.1:0");
    }
    st = sprig_sock_listen(v.loop, url, SPRIG_SOCK_SEQPACKET, &v.listener);
    if (st != SPRIG_STATUS_OK) {
        err_st("sprig server: listen", st);
        env_deinit(&e);
        return 1;
    }
    uint16_t port = 0;
    if (t == T_TCP) {
        sprig_addr a;
        st = sprig_sock_local_addr(v.listener, &a);
        if (st != SPRIG_STATUS_OK) {
            err_st("sprig server: local address", st);
            sprig_sock_close(v.listener);
            env_deinit(&e);
            return 1;
        }
        port = a.port;
    }
    sprig_sock_set_callback(v.listener, sserver_listener_cb, &v);
    if (write(ready_fd, &port, sizeof(port)) != (ssize_t)sizeof(port)) {
        return 1;
    }
    close(ready_fd);
    st = sprig_loop_run(v.loop);
    if (st != SPRIG_STATUS_OK) {
        err_st("sprig server: loop", st);
        v.rc = 1;
    }
    sprig_sock_close(v.conn);
    sprig_sock_close(v.listener);
    env_deinit(&e);
    return v.rc;
}

/* The client: sends with sprig_sock_send and runs the loop until the socket has something. */
typedef struct sclient {
    sprig_env e;
    sprig_sock *s;
    bool readable; /* a READABLE came and we have not seen UNAVAILABLE since */
    bool writable;
    bool closed;
    sprig_status closed_st;
} sclient;

static void sclient_cb(sprig_sock *s, sprig_sock_event ev, sprig_status st, void *user)
{
    (void)s;
    sclient *c = user;
    switch (ev) {
    case SPRIG_SOCK_EV_READABLE:
        c->readable = true;
        break;
    case SPRIG_SOCK_EV_WRITABLE:
        c->writable = true;
        break;
    case SPRIG_SOCK_EV_CLOSED:
        c->closed = true;
        c->closed_st = st != SPRIG_STATUS_OK ? st : SPRIG_STATUS_ABORTED;
        c->readable = true; /* recv tells what is left */
        break;
    case SPRIG_SOCK_EV_CONNECTED:
    default:
        break;
    }
}

/* Send one message, waiting for WRITABLE while flow control says UNAVAILABLE. */
static sprig_status sclient_send(sclient *c, const void *msg, size_t len)
{
    for (;;) {
        sprig_status st = sprig_sock_send(c->s, msg, len, NULL);
        if (st != SPRIG_STATUS_UNAVAILABLE) {
            return st;
        }
        /* No event can come between the call and the loop: only the loop delivers them. */
        c->writable = false;
        while (!c->writable) {
            if (c->closed) {
                return c->closed_st;
            }
            st = sprig_loop_run_once(&c->e.ol.loop, SPRIG_TIME_NEVER);
            if (st != SPRIG_STATUS_OK) {
                return st;
            }
        }
    }
}

/* Receive the reply the client is waiting for: recv while the socket may have data (a READABLE
 * came and no recv has said UNAVAILABLE since), otherwise run the loop until READABLE. Trying
 * recv first right after the send costs a syscall when the reply is not there yet, and saves
 * the epoll_wait when it is (on one CPU the server often runs as soon as it is woken). */
static sprig_status sclient_recv_reply(sclient *c, void *buf, size_t cap, size_t *len)
{
    for (;;) {
        if (c->readable) {
            sprig_status st = sprig_sock_recv(c->s, buf, cap, len);
            if (st != SPRIG_STATUS_UNAVAILABLE) {
                return st;
            }
            c->readable = false;
        }
        sprig_status st = sprig_loop_run_once(&c->e.ol.loop, SPRIG_TIME_NEVER);
        if (st != SPRIG_STATUS_OK) {
            return st;
        }
    }
}

static bool sprig_run(transport t, uint16_t port, const opts *o, run_out *r)
{
    static sclient c;
    char url[200];
    bool ok = false;
    memset(&c, 0, sizeof(c));
    sprig_status st = env_init(&c.e);
    if (st != SPRIG_STATUS_OK) {
        err_st("sprig client: OS loop/backend", st);
        goto out;
    }
    if (t == T_UNIX) {
        char path[150];
        unix_path(I_SPRIG, path, sizeof(path));
        snprintf(url, sizeof(url), "unix:%s", path);
    } else {
        snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", port);
    }
    st = sprig_sock_dial_wait(&c.e.ol.loop, url, SPRIG_SOCK_SEQPACKET, SPRIG_TIME_S(10), &c.s);
    if (st != SPRIG_STATUS_OK) {
        err_st("sprig client: connect", st);
        goto out;
    }
    sprig_sock_set_callback(c.s, sclient_cb, &c);
    c.readable = true; /* whatever came before the callback was set */

    static uint8_t in[SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE];
    uint8_t msg[MSG_LEN];
    size_t len = 0;
    memset(msg, 'x', sizeof(msg));
    msg[0] = 'E';
    /* Round trips, event-driven. */
    for (unsigned i = 0; i < o->warmup + o->rounds; i++) {
        msg[1] = (uint8_t)i;
        uint64_t t0 = now_ns();
        st = sclient_send(&c, msg, sizeof(msg));
        if (st == SPRIG_STATUS_OK) {
            st = sclient_recv_reply(&c, in, sizeof(in), &len);
        }
        uint64_t t1 = now_ns();
        if (st != SPRIG_STATUS_OK || len != sizeof(msg) || memcmp(in, msg, len) != 0) {
            err(st != SPRIG_STATUS_OK ? "sprig client: round trip" : "sprig client: echo",
                st != SPRIG_STATUS_OK ? sprig_status_str(st) : "differs");
            goto out;
        }
        if (i >= o->warmup) {
            r->rtt[i - o->warmup] = t1 - t0;
        }
    }

    /* Round trips with the blocking helpers (they retry after every loop pass). */
    for (unsigned i = 0; i < o->warmup + o->rounds; i++) {
        msg[1] = (uint8_t)i;
        uint64_t t0 = now_ns();
        st = sprig_sock_send_wait(c.s, msg, sizeof(msg), SPRIG_TIME_S(10));
        if (st == SPRIG_STATUS_OK) {
            st = sprig_sock_recv_wait(c.s, in, sizeof(in), &len, SPRIG_TIME_S(10));
        }
        uint64_t t1 = now_ns();
        if (st != SPRIG_STATUS_OK || len != sizeof(msg) || memcmp(in, msg, len) != 0) {
            err(st != SPRIG_STATUS_OK ? "sprig client: blocking round trip"
                                      : "sprig client: echo (blocking helpers)",
                st != SPRIG_STATUS_OK ? sprig_status_str(st) : "differs");
            goto out;
        }
        if (i >= o->warmup) {
            r->helpers[i - o->warmup] = t1 - t0;
        }
    }
    c.readable = true; /* the helpers consumed events without telling our flag */

    /* One-way rate. */
    msg[0] = 'S';
    uint64_t t0 = now_ns();
    for (unsigned i = 0; i < o->messages; i++) {
        st = sclient_send(&c, msg, sizeof(msg));
        if (st != SPRIG_STATUS_OK) {
            err_st("sprig client: one-way send", st);
            goto out;
        }
    }
    uint8_t fin = 'F';
    uint64_t count = 0;
    st = sclient_send(&c, &fin, 1);
    if (st == SPRIG_STATUS_OK) {
        st = sclient_recv_reply(&c, in, sizeof(in), &len);
    }
    uint64_t t1 = now_ns();
    if (st != SPRIG_STATUS_OK || len != sizeof(count)) {
        err_st("sprig client: one-way count", st != SPRIG_STATUS_OK ? st : SPRIG_STATUS_DATA_LOSS);
        goto out;
    }
    memcpy(&count, in, sizeof(count));
    if (count != o->messages) {
        fprintf(stderr, PROG ": sprig client: one-way run: server counted %llu of %u messages\n",
                (unsigned long long)count, o->messages);
        goto out;
    }
    r->rate = (double)o->messages / ((double)(t1 - t0) / 1e9);
    ok = true;
out:
    sprig_sock_close(c.s);
    if (c.e.backend_ready && sprig_os_backend_open_count(&c.e.b) != 0) {
        fprintf(stderr, PROG ": sprig client: %zu socket(s) still open after close\n",
                sprig_os_backend_open_count(&c.e.b));
    }
    env_deinit(&c.e);
    return ok;
}

/* ---- one measurement: fork the server, run the client ----------------------------------- */

static bool measure(transport t, impl im, const opts *o, run_out *r)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        err_errno("pipe");
        return false;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        err_errno("fork");
        return false;
    }
    if (pid == 0) {
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(p[0]);
        int rc = im == I_RAW ? raw_server(t, p[1]) : sprig_server(t, p[1]);
        fflush(stderr);
        _exit(rc);
    }
    close(p[1]);
    uint16_t port = 0;
    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    bool ready = poll(&pfd, 1, READY_MS) == 1 && read(p[0], &port, sizeof(port)) == sizeof(port);
    close(p[0]);
    bool ok = false;
    if (!ready) {
        err("server", "did not come up");
    } else {
        alarm(WATCHDOG);
        ok = im == I_RAW ? raw_run(t, port, o, r) : sprig_run(t, port, o, r);
        alarm(0);
    }
    if (!ok) {
        kill(pid, SIGKILL);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (ok && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        fprintf(stderr, PROG ": %s %s server exited abnormally (status 0x%x)\n", transport_name[t],
                im == I_RAW ? "raw" : "sprig", (unsigned)status);
        ok = false;
    }
    return ok;
}

/* ---- main ---------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: " PROG " [--rounds N] [--warmup N] [--messages N] [--repeat N] [--quick]\n"
               "                           [--no-pin]\n"
               "\n"
               "SEQPACKET between two processes (the server is a forked child), 16-byte messages,\n"
               "over unix SOCK_SEQPACKET and TCP loopback: raw OS sockets against sprig.\n"
               "  --rounds N    round trips measured (default 20000)\n"
               "  --warmup N    round trips before measuring (default 1000)\n"
               "  --messages N  messages in the one-way rate run (default 200000)\n"
               "  --repeat N    runs of each measurement, raw and sprig alternating; round trips\n"
               "                are pooled, rates give their median (default 3, at most 10)\n"
               "  --quick       smoke run: 2000 rounds, 200 warm-up, 20000 messages, 1 run\n"
               "  --no-pin      do not pin both processes to one CPU\n"
               "Exit status 0 unless something broke; slowness is reported, never a failure.\n");
}

static bool parse_uint(const char *s, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v == 0 || v > 100000000ul) {
        return false;
    }
    *out = (unsigned)v;
    return true;
}

/* Pin this process (and the children it forks) to the first CPU it may run on. */
static int pin_cpu(void)
{
    cpu_set_t allowed, one;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
        return -1;
    }
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &allowed)) {
            continue;
        }
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        return sched_setaffinity(0, sizeof(one), &one) == 0 ? cpu : -1;
    }
    return -1;
}

static void print_row(const char *tname, const char *iname, double med, double p99, double rate)
{
    char rate_s[32] = "-";
    if (rate > 0) {
        snprintf(rate_s, sizeof(rate_s), "%.0f msg/s", rate);
    }
    printf("%-16s %-24s %9.2f us %9.2f us %16s\n", tname, iname, med, p99, rate_s);
}

static void finish_series(series *s, const opts *o)
{
    size_t n = (size_t)s->runs * o->rounds;
    if (s->runs == 0) {
        return;
    }
    summarize(s->rtt, (unsigned)n, &s->rtt_median, &s->rtt_p99);
    if (s->helpers != NULL) {
        summarize(s->helpers, (unsigned)n, &s->helpers_median, &s->helpers_p99);
    }
    double rates[MAX_REPEAT];
    memcpy(rates, s->rate, sizeof(rates));
    for (unsigned i = 1; i < s->runs; i++) { /* insertion sort: at most MAX_REPEAT */
        for (unsigned j = i; j > 0 && rates[j - 1] > rates[j]; j--) {
            double x = rates[j];
            rates[j] = rates[j - 1];
            rates[j - 1] = x;
        }
    }
    s->rate_median =
        s->runs % 2 ? rates[s->runs / 2] : (rates[s->runs / 2 - 1] + rates[s->runs / 2]) / 2;
}

int main(int argc, char **argv)
{
    opts o = {.rounds = 20000, .warmup = 1000, .messages = 200000, .repeat = 3, .pin = true};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        unsigned *dst = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--quick") == 0) {
            o.rounds = 2000;
            o.warmup = 200;
            o.messages = 20000;
            o.repeat = 1;
        } else if (strcmp(a, "--no-pin") == 0) {
            o.pin = false;
        } else if (strcmp(a, "--rounds") == 0) {
            dst = &o.rounds;
        } else if (strcmp(a, "--warmup") == 0) {
            dst = &o.warmup;
        } else if (strcmp(a, "--messages") == 0) {
            dst = &o.messages;
        } else if (strcmp(a, "--repeat") == 0) {
            dst = &o.repeat;
        } else {
            fprintf(stderr, PROG ": unknown argument '%s' (try --help)\n", a);
            return 2;
        }
        if (dst != NULL && (i + 1 >= argc || !parse_uint(argv[++i], dst))) {
            fprintf(stderr, PROG ": %s needs a positive number\n", a);
            return 2;
        }
    }
    if (o.repeat > MAX_REPEAT) {
        fprintf(stderr, PROG ": --repeat is at most %u\n", MAX_REPEAT);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (mkdtemp(g_dir) == NULL) {
        err_errno("temporary directory");
        return 1;
    }

    static series res[T_COUNT][2];
    size_t nsamples = (size_t)o.repeat * o.rounds;
    for (int t = 0; t < T_COUNT; t++) {
        res[t][I_RAW].rtt = calloc(nsamples, sizeof(uint64_t));
        res[t][I_SPRIG].rtt = calloc(nsamples, sizeof(uint64_t));
        res[t][I_SPRIG].helpers = calloc(nsamples, sizeof(uint64_t));
        if (res[t][I_RAW].rtt == NULL || res[t][I_SPRIG].rtt == NULL ||
            res[t][I_SPRIG].helpers == NULL) {
            err("memory", "samples");
            return 1;
        }
    }

    printf(PROG
           ": SEQPACKET between two processes (fork; the child is the echo server)\n"
           "%u-byte messages; round trip: %u rounds after %u warm-up; one-way rate: %u messages;\n"
           "%u run(s) of each, raw and sprig alternating\n",
           MSG_LEN, o.rounds, o.warmup, o.messages, o.repeat);
    if (o.pin) {
        int cpu = pin_cpu();
        if (cpu == 0) {
            printf("both ends pinned to CPU 0 (all figures; --no-pin to disable)\n");
        } else if (cpu > 0) {
            printf("both ends pinned to CPU %d (CPU 0 is not available to us; --no-pin to "
                   "disable)\n",
                   cpu);
        } else {
            printf("could not pin to one CPU (%s): figures are unpinned\n", strerror(errno));
        }
    } else {
        printf("not pinned (--no-pin): the scheduler places both ends\n");
    }
    printf("sprig: server event-driven on a sprig_os_loop; client sprig_sock_send, then\n"
           "sprig_sock_recv, running sprig_loop_run_once until READABLE while recv says\n"
           "UNAVAILABLE; \"blocking helpers\": sprig_sock_send_wait + sprig_sock_recv_wait\n\n");
    fflush(stdout);

    for (unsigned rep = 0; rep < o.repeat; rep++) {
        for (int t = 0; t < T_COUNT; t++) {
            for (int im = I_RAW; im <= I_SPRIG; im++) {
                series *s = &res[t][im];
                if (s->failed) {
                    continue;
                }
                run_out out = {
                    .rtt = s->rtt + (size_t)s->runs * o.rounds,
                    .helpers = s->helpers != NULL ? s->helpers + (size_t)s->runs * o.rounds : NULL};
                if (measure((transport)t, (impl)im, &o, &out)) {
                    s->rate[s->runs++] = out.rate;
                } else {
                    s->failed = true;
                }
            }
        }
    }

    printf("%-16s %-24s %12s %12s %16s\n", "transport", "implementation", "rtt median", "rtt p99",
           "one-way rate");
    bool all_ok = true;
    for (int t = 0; t < T_COUNT; t++) {
        series *raw = &res[t][I_RAW], *spr = &res[t][I_SPRIG];
        finish_series(raw, &o);
        finish_series(spr, &o);
        if (!raw->failed) {
            print_row(transport_name[t], "raw", raw->rtt_median, raw->rtt_p99, raw->rate_median);
        } else {
            printf("%-16s %-24s FAILED (see above)\n", transport_name[t], "raw");
            all_ok = false;
        }
        if (!spr->failed) {
            print_row(transport_name[t], "sprig", spr->rtt_median, spr->rtt_p99, spr->rate_median);
            print_row(transport_name[t], "sprig, blocking helpers", spr->helpers_median,
                      spr->helpers_p99, 0);
        } else {
            printf("%-16s %-24s FAILED (see above)\n", transport_name[t], "sprig");
            all_ok = false;
        }
    }
    printf("\n");
    for (int t = 0; t < T_COUNT; t++) {
        const series *raw = &res[t][I_RAW], *spr = &res[t][I_SPRIG];
        if (raw->failed || spr->failed) {
            printf("%-15s no ratio: a run failed\n", transport_name[t]);
            continue;
        }
        double ratio = spr->rtt_median / raw->rtt_median;
        printf("%-15s rtt median raw %.2f us  sprig %.2f us  ratio %.3f (target <= 1.20%s)\n",
               transport_name[t], raw->rtt_median, spr->rtt_median, ratio,
               ratio <= 1.20 ? ", met" : ", NOT met");
        printf("%-15s rtt median, sprig blocking helpers %.2f us  ratio %.3f\n", "",
               spr->helpers_median, spr->helpers_median / raw->rtt_median);
        printf("%-15s one-way rate raw %.0f msg/s  sprig %.0f msg/s  ratio %.2f (sprig/raw, "
               "higher is better)\n",
               "", raw->rate_median, spr->rate_median, spr->rate_median / raw->rate_median);
    }
    for (int t = 0; t < T_COUNT; t++) {
        free(res[t][I_RAW].rtt);
        free(res[t][I_SPRIG].rtt);
        free(res[t][I_SPRIG].helpers);
    }
    char path[200];
    unix_path(I_RAW, path, sizeof(path));
    (void)unlink(path);
    unix_path(I_SPRIG, path, sizeof(path));
    (void)unlink(path);
    (void)rmdir(g_dir);
    if (!all_ok) {
        fprintf(stderr, PROG ": some runs failed (details above)\n");
        return 1;
    }
    return 0;
}
