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

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"
#include "sprig/os.h"
#include "sprig/sock.h"

#define PROG    "sprig-bench-sockets"
#define MSG_LEN BENCH_MSG_LEN

static char g_dir[] = "/tmp/sprig-bench-XXXXXX";

/* ---- raw sockets: blocking I/O, TCP framed by hand (bench_common) ------------------------ */

/* Child: serve one connection until it ends. Returns the exit status. */
static int raw_server(bench_transport t, int ready_fd)
{
    static bench_raw_conn c;
    if (!bench_raw_accept(t, ready_fd, &c)) {
        return 1;
    }
    uint64_t count = 0;
    for (;;) {
        const uint8_t *msg = NULL;
        size_t len = 0;
        int r = bench_raw_recv(&c, &msg, &len);
        if (r <= 0) {
            close(c.fd);
            return r == 0 ? 0 : 1;
        }
        bool ok = true;
        if (len > 0 && msg[0] == 'S') {
            count++;
        } else if (len > 0 && msg[0] == 'F') {
            ok = bench_raw_send(&c, (const uint8_t *)&count, sizeof(count));
        } else {
            ok = bench_raw_send(&c, msg, len);
        }
        if (!ok) {
            bench_err_errno("raw server: send");
            return 1;
        }
    }
}

/* Round trip i: 'E', then (uint8_t)i, then 'x'. */
static void raw_echo_msg(unsigned i, uint8_t *msg)
{
    memset(msg, 'x', MSG_LEN);
    msg[0] = 'E';
    msg[1] = (uint8_t)i;
}

static bool raw_run(bench_transport t, uint16_t port, const bench_opts *o, bench_run_out *r)
{
    static bench_raw_conn c;
    if (!bench_raw_connect(t, port, &c) || !bench_raw_round_trips(&c, o, r->rtt, raw_echo_msg)) {
        return false;
    }
    uint8_t msg[MSG_LEN];
    memset(msg, 'x', sizeof(msg));
    msg[0] = 'S';
    bool ok = true;
    uint64_t t0 = bench_now_ns();
    for (unsigned i = 0; ok && i < o->messages; i++) {
        ok = bench_raw_send(&c, msg, sizeof(msg));
    }
    uint8_t fin = 'F';
    const uint8_t *in = NULL;
    size_t len = 0;
    uint64_t count = 0;
    ok = ok && bench_raw_send(&c, &fin, 1) && bench_raw_recv(&c, &in, &len) == 1 &&
         len == sizeof(count);
    uint64_t t1 = bench_now_ns();
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
        bench_err_st("sprig server", st);
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

static int sprig_server(bench_transport t, int ready_fd)
{
    static sserver v;
    bench_env e;
    char url[200];
    sprig_status st = bench_env_init(&e);
    if (st != SPRIG_STATUS_OK) {
        bench_err_st("sprig server: OS loop/backend", st);
        bench_env_deinit(&e);
        return 1;
    }
    memset(&v, 0, sizeof(v));
    v.loop = &e.ol.loop;
    bench_url(t, 0, url, sizeof(url));
    st = sprig_sock_listen(v.loop, url, SPRIG_SOCK_SEQPACKET, &v.listener);
    if (st != SPRIG_STATUS_OK) {
        bench_err_st("sprig server: listen", st);
        bench_env_deinit(&e);
        return 1;
    }
    uint16_t port = 0;
    if (t == BENCH_TCP) {
        sprig_addr a;
        st = sprig_sock_local_addr(v.listener, &a);
        if (st != SPRIG_STATUS_OK) {
            bench_err_st("sprig server: local address", st);
            sprig_sock_close(v.listener);
            bench_env_deinit(&e);
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
        bench_err_st("sprig server: loop", st);
        v.rc = 1;
    }
    sprig_sock_close(v.conn);
    sprig_sock_close(v.listener);
    bench_env_deinit(&e);
    return v.rc;
}

/* The client: sends with sprig_sock_send and runs the loop until the socket has something. */
typedef struct sclient {
    bench_env e;
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

static bool sprig_run(bench_transport t, uint16_t port, const bench_opts *o, bench_run_out *r)
{
    static sclient c;
    char url[200];
    bool ok = false;
    memset(&c, 0, sizeof(c));
    sprig_status st = bench_env_init(&c.e);
    if (st != SPRIG_STATUS_OK) {
        bench_err_st("sprig client: OS loop/backend", st);
        goto out;
    }
    bench_url(t, port, url, sizeof(url));
    st = sprig_sock_dial_wait(&c.e.ol.loop, url, SPRIG_SOCK_SEQPACKET, SPRIG_TIME_S(10), &c.s);
    if (st != SPRIG_STATUS_OK) {
        bench_err_st("sprig client: connect", st);
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
        uint64_t t0 = bench_now_ns();
        st = sclient_send(&c, msg, sizeof(msg));
        if (st == SPRIG_STATUS_OK) {
            st = sclient_recv_reply(&c, in, sizeof(in), &len);
        }
        uint64_t t1 = bench_now_ns();
        if (st != SPRIG_STATUS_OK || len != sizeof(msg) || memcmp(in, msg, len) != 0) {
            bench_err(st != SPRIG_STATUS_OK ? "sprig client: round trip" : "sprig client: echo",
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
        uint64_t t0 = bench_now_ns();
        st = sprig_sock_send_wait(c.s, msg, sizeof(msg), SPRIG_TIME_S(10));
        if (st == SPRIG_STATUS_OK) {
            st = sprig_sock_recv_wait(c.s, in, sizeof(in), &len, SPRIG_TIME_S(10));
        }
        uint64_t t1 = bench_now_ns();
        if (st != SPRIG_STATUS_OK || len != sizeof(msg) || memcmp(in, msg, len) != 0) {
            bench_err(st != SPRIG_STATUS_OK ? "sprig client: blocking round trip"
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
    uint64_t t0 = bench_now_ns();
    for (unsigned i = 0; i < o->messages; i++) {
        st = sclient_send(&c, msg, sizeof(msg));
        if (st != SPRIG_STATUS_OK) {
            bench_err_st("sprig client: one-way send", st);
            goto out;
        }
    }
    uint8_t fin = 'F';
    uint64_t count = 0;
    st = sclient_send(&c, &fin, 1);
    if (st == SPRIG_STATUS_OK) {
        st = sclient_recv_reply(&c, in, sizeof(in), &len);
    }
    uint64_t t1 = bench_now_ns();
    if (st != SPRIG_STATUS_OK || len != sizeof(count)) {
        bench_err_st("sprig client: one-way count",
                     st != SPRIG_STATUS_OK ? st : SPRIG_STATUS_DATA_LOSS);
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
    bench_env_deinit(&c.e);
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
               "  --messages N  messages in the one-way rate run (default 200000)\n");
    bench_usage_tail(f);
}

int main(int argc, char **argv)
{
    static const bench_program prog = {.prog = PROG,
                                       .dir = g_dir,
                                       .sprig_sock = "sprig",
                                       .usage = usage,
                                       .server = {raw_server, sprig_server},
                                       .client = {raw_run, sprig_run},
                                       .impl_width = 24,
                                       .rate_heading = "one-way rate",
                                       .raw_row = "raw",
                                       .raw_failed = "raw",
                                       .sprig_row = "sprig",
                                       .helpers_row = "sprig, blocking helpers",
                                       .sprig_failed = "sprig"};
    static bench_series res[BENCH_TRANSPORTS][BENCH_IMPLS];
    bench_opts o;
    int rc = bench_start(&prog, argc, argv, &o, res);
    if (rc >= 0) {
        return rc;
    }

    printf(PROG
           ": SEQPACKET between two processes (fork; the child is the echo server)\n"
           "%u-byte messages; round trip: %u rounds after %u warm-up; one-way rate: %u messages;\n"
           "%u run(s) of each, raw and sprig alternating\n",
           MSG_LEN, o.rounds, o.warmup, o.messages, o.repeat);
    bench_pin(&o);
    printf("sprig: server event-driven on a sprig_os_loop; client sprig_sock_send, then\n"
           "sprig_sock_recv, running sprig_loop_run_once until READABLE while recv says\n"
           "UNAVAILABLE; \"blocking helpers\": sprig_sock_send_wait + sprig_sock_recv_wait\n\n");
    fflush(stdout);

    bench_run(&o, res);

    bool all_ok = bench_print_table(res);
    for (int t = 0; t < BENCH_TRANSPORTS; t++) {
        const bench_series *raw = &res[t][BENCH_RAW], *spr = &res[t][BENCH_SPRIG];
        if (raw->failed || spr->failed) {
            printf("%-15s no ratio: a run failed\n", bench_transport_name[t]);
            continue;
        }
        double ratio = spr->rtt_median / raw->rtt_median;
        printf("%-15s rtt median raw %.2f us  sprig %.2f us  ratio %.3f (target <= 1.20%s)\n",
               bench_transport_name[t], raw->rtt_median, spr->rtt_median, ratio,
               ratio <= 1.20 ? ", met" : ", NOT met");
        printf("%-15s rtt median, sprig blocking helpers %.2f us  ratio %.3f\n", "",
               spr->helpers_median, spr->helpers_median / raw->rtt_median);
        printf("%-15s one-way rate raw %.0f msg/s  sprig %.0f msg/s  ratio %.2f (sprig/raw, "
               "higher is better)\n",
               "", raw->rate_median, spr->rate_median, spr->rate_median / raw->rate_median);
    }
    return bench_finish(res, all_ok);
}
