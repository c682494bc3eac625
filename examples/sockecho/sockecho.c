/*
 * sprig-sockecho — an echo server and client on sprig's socket API, and the README's demo.
 *
 *   sprig-sockecho --listen URL [--type T] [--quiet]
 *       Echo server on one sprig_os_loop, event-driven: accepts on READABLE, echoes every
 *       message (STREAM: every byte) back on the connection it came from (DGRAM: to the address
 *       it came from), keeps one pending reply per connection when a send returns UNAVAILABLE
 *       and resumes on WRITABLE. Serves many clients at once. Ctrl-C (SIGINT/SIGTERM) stops it.
 *   sprig-sockecho --connect URL [--type T] [--count N] [--size B] [MESSAGE...]
 *       Client: sends each MESSAGE (or, without any, one message of --size bytes) --count times
 *       and checks and prints every echo. Message types use the blocking helpers; STREAM sends
 *       and receives at the same time (non-blocking calls and sprig_loop_run_once).
 *   sprig-sockecho --demo
 *       Server and client in one process on one loop, over unix, tcp (IPv4 and IPv6) and udp.
 *
 * URLs: the OS backend's (unix:, tcp://, udp://) and, when the netstack is built, serial:PATH
 * and sprig+udp://HOST:PORT (docs/netstack.md §11): a netstack endpoint on the loop, the echo
 * service on sprig://NODE:7 through it (sprig_ns_os_set_url).
 *
 * Errors are printed as "sprig-sockecho: <what>: <STATUS_NAME>" and the exit status is non-zero.
 * Host-side example code: it may allocate.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sprig/os.h"
#include "sprig/sock.h"
#include "sprig/url.h"
#ifdef SOCKECHO_WITH_NETSTACK
#include "sprig/ns_os.h"
#endif

#define PROG          "sprig-sockecho"
#define TIMEOUT       SPRIG_TIME_S(5)
#define STREAM_BUF    65536u /* bytes a STREAM connection reads (and echoes) at a time */
#define SERVE_BUDGET  64u    /* messages per connection per pass, so one client cannot starve */
#define URL_MAX       300
#define PRINT_MAX     60  /* characters of a message shown before "..." */
#define CLIENT_LINES  20u /* the client prints each echo up to this many messages */
#define DEMO_RTT_RUNS 1000u
#define DEMO_TIMEOUT  SPRIG_TIME_S(2) /* loopback echoes take microseconds */
#define NS_PORT       7u              /* the echo service on a netstack node: sprig://NODE:7 */

/* ---- small helpers ----------------------------------------------------------------------- */

static int fail(const char *what, sprig_status st)
{
    fprintf(stderr, PROG ": %s: %s\n", what, sprig_status_str(st));
    return 1;
}

static void failf(sprig_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(sprig_status st, const char *fmt, ...)
{
    char what[URL_MAX + 100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    (void)fail(what, st);
}

static const char *type_name(sprig_sock_type type)
{
    switch (type) {
    case SPRIG_SOCK_SEQPACKET:
        return "SEQPACKET";
    case SPRIG_SOCK_STREAM:
        return "STREAM";
    case SPRIG_SOCK_DGRAM:
        return "DGRAM";
    case SPRIG_SOCK_DEFAULT:
    default:
        return "DEFAULT";
    }
}

static bool parse_type(const char *s, sprig_sock_type *out)
{
    static const struct {
        const char *name;
        sprig_sock_type type;
    } types[] = {{"seqpacket", SPRIG_SOCK_SEQPACKET},
                 {"stream", SPRIG_SOCK_STREAM},
                 {"dgram", SPRIG_SOCK_DGRAM}};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcasecmp(s, types[i].name) == 0) {
            *out = types[i].type;
            return true;
        }
    }
    return false;
}

static bool parse_size(const char *s, size_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > SIZE_MAX / 2) {
        return false;
    }
    *out = (size_t)v;
    return true;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* A message for humans: "text" when it is short printable text, else "<N bytes>". */
static void describe(const uint8_t *data, size_t len, char *out, size_t cap)
{
    bool text = len > 0;
    for (size_t i = 0; i < len && text; i++) {
        text = data[i] >= 0x20 && data[i] < 0x7f;
    }
    if (!text) {
        snprintf(out, cap, "<%zu bytes>", len);
    } else if (len <= PRINT_MAX) {
        snprintf(out, cap, "\"%.*s\"", (int)len, (const char *)data);
    } else {
        snprintf(out, cap, "\"%.*s...\" (%zu bytes)", PRINT_MAX, (const char *)data, len);
    }
}

static void fill_pattern(uint8_t *buf, size_t len, uint32_t seed)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)(seed * 131u + i * 7u + (i >> 8));
    }
}

/* ---- the OS loop and backend ------------------------------------------------------------- */

typedef struct env {
    sprig_os_loop ol;
    sprig_os_backend backend;
#ifdef SOCKECHO_WITH_NETSTACK
    sprig_ns_os_set ns; /* serial: and sprig+udp: URLs (docs/netstack.md §11) */
#endif
    bool loop_ready;
    bool backend_ready;
} env;

static sprig_status env_init(env *e)
{
    memset(e, 0, sizeof(*e));
    sprig_status st = sprig_os_loop_init(&e->ol);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    e->loop_ready = true;
    st = sprig_os_backend_init(&e->backend, &e->ol, NULL);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    e->backend_ready = true;
#ifdef SOCKECHO_WITH_NETSTACK
    sprig_ns_os_set_init(&e->ns, &e->ol, NULL);
#endif
    return SPRIG_STATUS_OK;
}

/* Returns the number of sockets the backend still had open (0 after a clean teardown). */
static size_t env_deinit(env *e)
{
    size_t open = 0;
#ifdef SOCKECHO_WITH_NETSTACK
    if (e->loop_ready) {
        open += sprig_ns_os_set_open_count(&e->ns);
        sprig_ns_os_set_close(&e->ns, SPRIG_TIME_S(2)); /* lets closed connections finish */
    }
#endif
    if (e->backend_ready) {
        open += sprig_os_backend_open_count(&e->backend);
        sprig_os_backend_deinit(&e->backend);
    }
    if (e->loop_ready) {
        sprig_os_loop_deinit(&e->ol);
    }
    e->loop_ready = e->backend_ready = false;
    return open;
}

/* The URL to listen on or dial for one from the command line (sprig_ns_os_set_url): serial:PATH
 * and sprig+udp://HOST:PORT open a netstack endpoint and become sprig://NODE:7 (port=N in the
 * query for another port); others are unchanged. Prints why on failure. */
static sprig_status env_url(env *e, const char *url, bool listening, char *out, size_t cap)
{
    const char *what = listening ? "listen on" : "connect to";
#ifdef SOCKECHO_WITH_NETSTACK
    sprig_status st = sprig_ns_os_set_url(&e->ns, url, listening, NS_PORT, out, cap);
    if (st != SPRIG_STATUS_OK) {
        failf(st, "%s %s: %s", what, url, sprig_ns_os_set_error(&e->ns));
    }
    return st;
#else
    (void)e;
    sprig_url u;
    if (sprig_url_parse(url, &u) == SPRIG_STATUS_OK &&
        (u.scheme == SPRIG_URL_SERIAL || sprig_url_scheme_is(&u, "sprig+udp"))) {
        failf(SPRIG_STATUS_UNIMPLEMENTED, "%s %s: the netstack was not built", what, url);
        return SPRIG_STATUS_UNIMPLEMENTED;
    }
    if ((size_t)snprintf(out, cap, "%s", url) >= cap) {
        failf(SPRIG_STATUS_INVALID_ARGUMENT, "%s %s: URL too long", what, url);
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    return SPRIG_STATUS_OK;
#endif
}

/* ---- the echo server --------------------------------------------------------------------- */

typedef struct echo_server echo_server;

typedef struct echo_conn {
    echo_server *srv;
    sprig_sock *sock;
    struct echo_conn *prev;
    struct echo_conn *next;
    sprig_task resume; /* continues serving after a pass used up its budget */
    uint8_t *buf;
    size_t cap;
    size_t len;    /* the pending reply: buf[off..len) */
    size_t off;    /* STREAM: bytes of it already sent */
    bool pending;  /* a reply waits for WRITABLE (or for its turn) */
    sprig_addr to; /* DGRAM: where the pending reply goes */
    unsigned id;
} echo_conn;

struct echo_server {
    sprig_loop *loop;
    sprig_sock *listener; /* DGRAM: the bound socket, served through `dgram` */
    sprig_sock_type type;
    echo_conn *conns;
    echo_conn *dgram;
    sprig_timer accept_retry; /* accept failed (e.g. out of fds): try again a little later */
    bool accept_failing;      /* said so once; quiet until an accept works again */
    bool verbose;
    unsigned next_id;
    unsigned long connections;
    unsigned long messages;
    unsigned long long bytes;
    sprig_status error; /* set when the listener itself failed (then the loop is stopped) */
};

static void server_log(const echo_server *srv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void server_log(const echo_server *srv, const char *fmt, ...)
{
    if (!srv->verbose) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void server_fail(echo_server *srv, const char *what, sprig_status st)
{
    if (srv->error == SPRIG_STATUS_OK) {
        srv->error = st != SPRIG_STATUS_OK ? st : SPRIG_STATUS_ABORTED;
        failf(st, "server: %s", what);
    }
    sprig_loop_stop(srv->loop);
}

static void conn_serve(echo_conn *c);

static void conn_resume(void *arg)
{
    conn_serve(arg);
}

static echo_conn *conn_new(echo_server *srv, sprig_sock *s)
{
    echo_conn *c = calloc(1, sizeof(*c));
    size_t cap = srv->type == SPRIG_SOCK_STREAM ? STREAM_BUF : sprig_sock_max_message_size(s);
    if (c == NULL) {
        return NULL;
    }
    c->cap = cap > 0 ? cap : 1;
    c->buf = malloc(c->cap);
    if (c->buf == NULL) {
        free(c);
        return NULL;
    }
    c->srv = srv;
    c->sock = s;
    c->id = ++srv->next_id;
    sprig_task_init(&c->resume, conn_resume, c);
    return c;
}

static void conn_free(echo_conn *c)
{
    sprig_loop_cancel(c->srv->loop, &c->resume);
    free(c->buf);
    free(c);
}

/* Close a connection and forget it. `c` is gone afterwards. */
static void conn_drop(echo_conn *c, sprig_status why)
{
    echo_server *srv = c->srv;
    if (c == srv->dgram) {
        server_fail(srv, "udp socket", why);
        return;
    }
    if (why == SPRIG_STATUS_OUT_OF_RANGE || why == SPRIG_STATUS_OK) {
        server_log(srv, "[server] #%u closed by the peer", c->id);
    } else {
        server_log(srv, "[server] #%u closed: %s", c->id, sprig_status_str(why));
    }
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        srv->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    sprig_sock_close(c->sock);
    conn_free(c);
}

/* Send the pending reply. OK when it is gone (or dropped: DGRAM), UNAVAILABLE to wait for
 * WRITABLE, anything else kills the connection. */
static sprig_status conn_flush(echo_conn *c)
{
    sprig_status st = SPRIG_STATUS_OK;
    switch (c->srv->type) {
    case SPRIG_SOCK_STREAM:
        while (c->off < c->len) {
            size_t sent = 0;
            st = sprig_sock_send(c->sock, c->buf + c->off, c->len - c->off, &sent);
            if (st != SPRIG_STATUS_OK) {
                return st;
            }
            c->off += sent;
        }
        break;
    case SPRIG_SOCK_DGRAM:
        st = sprig_sock_send_to(c->sock, c->buf, c->len, &c->to);
        if (st == SPRIG_STATUS_UNAVAILABLE) {
            return st;
        }
        if (st != SPRIG_STATUS_OK) {
            /* One client's trouble (oversized, unreachable) must not stop the others. */
            char addr[SPRIG_ADDR_STR_MAX] = "?";
            (void)sprig_addr_format(&c->to, addr, sizeof(addr));
            server_log(c->srv, "[server] reply to %s dropped: %s", addr, sprig_status_str(st));
            st = SPRIG_STATUS_OK;
        }
        break;
    case SPRIG_SOCK_SEQPACKET:
    case SPRIG_SOCK_DEFAULT:
    default:
        st = sprig_sock_send(c->sock, c->buf, c->len, NULL);
        if (st != SPRIG_STATUS_OK) {
            return st;
        }
        break;
    }
    c->pending = false;
    return SPRIG_STATUS_OK;
}

/* Receive one message (or chunk of bytes) into c->buf. */
static sprig_status conn_recv(echo_conn *c, size_t *len)
{
    if (c->srv->type != SPRIG_SOCK_DGRAM) {
        return sprig_sock_recv(c->sock, c->buf, c->cap, len);
    }
    sprig_status st = sprig_sock_recv_from(c->sock, c->buf, c->cap, len, &c->to);
    if (st == SPRIG_STATUS_RESOURCE_EXHAUSTED && *len > c->cap) {
        /* Bigger than we can echo: take it off the shared socket; its reply will be refused. */
        uint8_t *bigger = realloc(c->buf, *len);
        if (bigger == NULL) {
            return st;
        }
        c->buf = bigger;
        c->cap = *len;
        st = sprig_sock_recv_from(c->sock, c->buf, c->cap, len, &c->to);
    }
    return st;
}

/* Echo what is there until the socket runs dry, a reply has to wait for WRITABLE, or the
 * budget of this pass is used up (then a deferred task continues: edge-triggered events would
 * not tell us again). */
static void conn_serve(echo_conn *c)
{
    for (unsigned n = 0; n < SERVE_BUDGET; n++) {
        sprig_status st;
        if (c->pending) {
            st = conn_flush(c);
            if (st == SPRIG_STATUS_UNAVAILABLE) {
                return; /* WRITABLE brings us back */
            }
            if (st != SPRIG_STATUS_OK) {
                conn_drop(c, st);
                return;
            }
        }
        size_t len = 0;
        st = conn_recv(c, &len);
        if (st == SPRIG_STATUS_UNAVAILABLE) {
            return; /* READABLE brings us back */
        }
        if (st != SPRIG_STATUS_OK) {
            conn_drop(c, st); /* OUT_OF_RANGE (peer done), ABORTED, DATA_LOSS, ... */
            return;
        }
        c->srv->messages++;
        c->srv->bytes += len;
        c->pending = true;
        c->len = len;
        c->off = 0;
    }
    sprig_loop_defer(c->srv->loop, &c->resume);
}

static void conn_cb(sprig_sock *s, sprig_sock_event ev, sprig_status st, void *user)
{
    (void)s;
    echo_conn *c = user;
    switch (ev) {
    case SPRIG_SOCK_EV_READABLE:
    case SPRIG_SOCK_EV_WRITABLE:
        conn_serve(c);
        break;
    case SPRIG_SOCK_EV_CLOSED:
        conn_drop(c, st);
        break;
    case SPRIG_SOCK_EV_CONNECTED:
    default:
        break;
    }
}

/* Accept every pending connection. */
static void accept_all(echo_server *srv)
{
    for (;;) {
        sprig_sock *s = NULL;
        sprig_status st = sprig_sock_accept(srv->listener, &s);
        if (st == SPRIG_STATUS_UNAVAILABLE) {
            return;
        }
        if (st == SPRIG_STATUS_ABORTED) {
            continue; /* that client gave up before we got to it */
        }
        if (st != SPRIG_STATUS_OK) {
            /* Out of descriptors or memory: READABLE will not come again for the clients
             * already waiting (edge-triggered), so look again after a pause. */
            if (!srv->accept_failing) {
                failf(st, "server: accept (retrying every 100 ms)");
                srv->accept_failing = true;
            }
            sprig_timer_start(srv->loop, &srv->accept_retry, SPRIG_TIME_MS(100));
            return;
        }
        if (srv->accept_failing) {
            srv->accept_failing = false;
            server_log(srv, "[server] accepting again");
        }
        echo_conn *c = conn_new(srv, s);
        if (c == NULL) {
            failf(SPRIG_STATUS_RESOURCE_EXHAUSTED, "server: connection state");
            sprig_sock_close(s);
            continue;
        }
        c->next = srv->conns;
        if (srv->conns != NULL) {
            srv->conns->prev = c;
        }
        srv->conns = c;
        srv->connections++;
        if (srv->verbose) {
            sprig_addr peer;
            char addr[SPRIG_ADDR_STR_MAX] = "a local peer";
            if (sprig_sock_peer_addr(s, &peer) == SPRIG_STATUS_OK) {
                (void)sprig_addr_format(&peer, addr, sizeof(addr));
            }
            server_log(srv, "[server] #%u connected from %s", c->id, addr);
        }
        sprig_sock_set_callback(s, conn_cb, c);
        conn_serve(c); /* anything that arrived with the connection */
    }
}

static void accept_retry(sprig_timer *timer, void *arg)
{
    (void)timer;
    accept_all(arg);
}

static void listener_cb(sprig_sock *l, sprig_sock_event ev, sprig_status st, void *user)
{
    (void)l;
    echo_server *srv = user;
    if (ev == SPRIG_SOCK_EV_CLOSED) {
        server_fail(srv, "listener closed", st);
    } else if (ev == SPRIG_SOCK_EV_READABLE && !sprig_timer_armed(&srv->accept_retry)) {
        accept_all(srv);
    }
}

static sprig_status server_start(echo_server *srv, sprig_loop *loop, const char *url,
                                 sprig_sock_type type, bool verbose)
{
    memset(srv, 0, sizeof(*srv));
    srv->loop = loop;
    srv->verbose = verbose;
    sprig_timer_init(&srv->accept_retry, accept_retry, srv);
    if (type == SPRIG_SOCK_DEFAULT) {
        sprig_url u;
        sprig_status st = sprig_url_parse(url, &u);
        if (st != SPRIG_STATUS_OK) {
            return st;
        }
        type = sprig_sock_default_type(&u);
    }
    srv->type = type;
    sprig_status st = sprig_sock_listen(loop, url, type, &srv->listener);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    if (type == SPRIG_SOCK_DGRAM) {
        srv->dgram = conn_new(srv, srv->listener);
        if (srv->dgram == NULL) {
            sprig_sock_close(srv->listener);
            srv->listener = NULL;
            return SPRIG_STATUS_RESOURCE_EXHAUSTED;
        }
        sprig_sock_set_callback(srv->listener, conn_cb, srv->dgram);
        conn_serve(srv->dgram);
    } else {
        sprig_sock_set_callback(srv->listener, listener_cb, srv);
    }
    return SPRIG_STATUS_OK;
}

static void server_stop(echo_server *srv)
{
    sprig_timer_stop(srv->loop, &srv->accept_retry);
    while (srv->conns != NULL) {
        echo_conn *c = srv->conns;
        srv->conns = c->next;
        sprig_sock_close(c->sock);
        conn_free(c);
    }
    if (srv->dgram != NULL) {
        conn_free(srv->dgram);
        srv->dgram = NULL;
    }
    sprig_sock_close(srv->listener);
    srv->listener = NULL;
}

/* ---- --listen ------------------------------------------------------------------------------ */

static void on_signal(sprig_os_fd *watch, uint32_t events)
{
    (void)events;
    struct signalfd_siginfo si;
    while (read(watch->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
    }
    sprig_loop_stop(watch->arg);
}

static int run_listen(const char *url, sprig_sock_type type, bool verbose)
{
    env e;
    echo_server srv;
    char where[2 * URL_MAX], lurl[URL_MAX];
    sprig_status st = env_init(&e);
    if (st != SPRIG_STATUS_OK) {
        env_deinit(&e);
        return fail("OS loop/backend", st);
    }
    if (env_url(&e, url, true, lurl, sizeof(lurl)) != SPRIG_STATUS_OK) {
        env_deinit(&e);
        return 1;
    }
    st = server_start(&srv, &e.ol.loop, lurl, type, verbose);
    if (st != SPRIG_STATUS_OK) {
        env_deinit(&e);
        failf(st, "listen on %s", url);
        return 1;
    }
    /* SIGINT/SIGTERM end the loop through a signalfd, so the listener is closed properly (a
     * unix listener removes its socket file). */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    sprig_os_fd sig_watch = {.fd = -1};
    if (sfd < 0 || sprig_os_loop_add_fd(&e.ol, &sig_watch, sfd, SPRIG_OS_EV_IN, on_signal,
                                        &e.ol.loop) != SPRIG_STATUS_OK) {
        /* No signalfd: let the signals kill us the ordinary way rather than not at all. */
        if (sfd >= 0) {
            close(sfd);
            sfd = -1;
        }
        sigprocmask(SIG_UNBLOCK, &mask, NULL);
    }

    if (strcmp(lurl, url) != 0) {
        snprintf(where, sizeof(where), "%s via %s", lurl, url); /* through the netstack */
    } else {
        sprig_os_bound_url(url, srv.listener, where, sizeof(where));
    }
    if (srv.type == SPRIG_SOCK_STREAM) {
        printf(PROG ": echo server on %s (STREAM); Ctrl-C stops it\n", where);
    } else {
        /* a listener of the netstack knows its limit; the OS backend's is its config */
        size_t max = sprig_sock_max_message_size(srv.listener);
        if (max == 0 && srv.type != SPRIG_SOCK_DGRAM) {
            max = e.backend.cfg.max_message_size;
        }
        if (max == 0) {
            max = SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE;
        }
        printf(PROG ": echo server on %s (%s, max message %zu bytes); Ctrl-C stops it\n", where,
               type_name(srv.type), max);
    }
    fflush(stdout);

    st = sprig_loop_run(&e.ol.loop);
    if (st != SPRIG_STATUS_OK) {
        server_fail(&srv, "event loop", st);
    }
    if (srv.type == SPRIG_SOCK_DGRAM) {
        printf(PROG ": stopping: %lu datagram(s), %llu bytes echoed\n", srv.messages, srv.bytes);
    } else {
        printf(PROG ": stopping: %lu connection(s), %lu %s, %llu bytes echoed\n", srv.connections,
               srv.messages, srv.type == SPRIG_SOCK_STREAM ? "read(s)" : "message(s)", srv.bytes);
    }
    server_stop(&srv);
    if (sfd >= 0) {
        sprig_os_loop_del_fd(&e.ol, &sig_watch);
        close(sfd);
    }
    env_deinit(&e);
    return srv.error == SPRIG_STATUS_OK ? 0 : 1;
}

/* ---- client side ---------------------------------------------------------------------------- */

/* One message (or, STREAM, `len` bytes) there and back; the echo lands in `in` (cap bytes).
 * STREAM sends and receives at the same time, so a message larger than the kernel's buffers
 * cannot dead-lock against a server that stops reading while its replies wait. */
static sprig_status echo_wait(sprig_sock *s, const uint8_t *msg, size_t len, uint8_t *in,
                              size_t cap, size_t *got, const char **phase)
{
    *got = 0;
    *phase = "send";
    if (sprig_sock_type_of(s) != SPRIG_SOCK_STREAM) {
        sprig_status st = sprig_sock_send_wait(s, msg, len, TIMEOUT);
        if (st != SPRIG_STATUS_OK) {
            return st;
        }
        *phase = "receive the echo of";
        return sprig_sock_recv_wait(s, in, cap, got, TIMEOUT);
    }
    *phase = "echo";
    size_t sent = 0;
    sprig_time deadline = sprig_time_add(sprig_loop_now(s->loop), TIMEOUT);
    while (*got < len) {
        bool progress = false;
        if (sent < len) {
            size_t n = 0;
            sprig_status st = sprig_sock_send(s, msg + sent, len - sent, &n);
            if (st != SPRIG_STATUS_OK && st != SPRIG_STATUS_UNAVAILABLE) {
                return st;
            }
            sent += n;
            progress = n > 0;
        }
        size_t n = 0;
        sprig_status st = sprig_sock_recv(s, in + *got, len - *got, &n);
        if (st != SPRIG_STATUS_OK && st != SPRIG_STATUS_UNAVAILABLE) {
            return st;
        }
        *got += n;
        progress = progress || n > 0;
        if (!progress) {
            sprig_time now = sprig_loop_now(s->loop);
            if (now >= deadline) {
                return SPRIG_STATUS_DEADLINE_EXCEEDED;
            }
            st = sprig_loop_run_once(s->loop, deadline - now);
            if (st != SPRIG_STATUS_OK) {
                return st;
            }
        }
    }
    return SPRIG_STATUS_OK;
}

typedef struct send_buf_try {
    sprig_sock *s;
    sprig_buf *buf;
    sprig_status st;
} send_buf_try;

static bool send_buf_attempt(void *arg)
{
    send_buf_try *t = arg;
    t->st = sprig_sock_send_buf(t->s, t->buf);
    return t->st != SPRIG_STATUS_UNAVAILABLE;
}

/* sprig_sock_send_buf, waiting while the socket says UNAVAILABLE. The buffer is the socket's
 * on OK and freed here otherwise. */
static sprig_status send_buf_wait(sprig_sock *s, sprig_buf *buf)
{
    send_buf_try t = {.s = s, .buf = buf, .st = SPRIG_STATUS_UNAVAILABLE};
    sprig_status st = sprig_loop_run_until(s->loop, send_buf_attempt, &t, TIMEOUT);
    if (st == SPRIG_STATUS_OK) {
        st = t.st;
    }
    if (st != SPRIG_STATUS_OK) {
        sprig_buf_free(buf);
    }
    return st;
}

/* ---- --connect ------------------------------------------------------------------------------ */

typedef struct client_opts {
    const char *url;
    sprig_sock_type type;
    size_t count;
    size_t size;
    char **messages;
    int nmessages;
} client_opts;

static int run_connect(const client_opts *o)
{
    env e;
    sprig_sock *s = NULL;
    int rc = 1;
    uint8_t *out = NULL, *in = NULL;
    char durl[URL_MAX];
    sprig_status st = env_init(&e);
    if (st != SPRIG_STATUS_OK) {
        env_deinit(&e);
        return fail("OS loop/backend", st);
    }
    if (env_url(&e, o->url, false, durl, sizeof(durl)) != SPRIG_STATUS_OK) {
        env_deinit(&e);
        return 1;
    }
    st = sprig_sock_dial_wait(&e.ol.loop, durl, o->type, TIMEOUT, &s);
    if (st != SPRIG_STATUS_OK) {
        failf(st, "connect to %s", o->url);
        goto out;
    }
    sprig_sock_type type = sprig_sock_type_of(s);
    size_t max = sprig_sock_max_message_size(s);
    if (type == SPRIG_SOCK_STREAM) {
        printf("connected to %s (STREAM)\n", o->url);
    } else {
        printf("connected to %s (%s, max message %zu bytes)\n", o->url, type_name(type), max);
    }

    size_t per_round = o->nmessages > 0 ? (size_t)o->nmessages : 1;
    size_t biggest = o->size;
    for (int i = 0; i < o->nmessages; i++) {
        size_t n = strlen(o->messages[i]);
        biggest = n > biggest ? n : biggest;
    }
    out = malloc(biggest + 1);
    in = malloc(biggest + 2);
    if (out == NULL || in == NULL) {
        (void)fail("memory", SPRIG_STATUS_RESOURCE_EXHAUSTED);
        goto out;
    }
    size_t total = o->count * per_round;
    bool each = total <= CLIENT_LINES;
    double sum_us = 0, min_us = 0, max_us = 0;
    for (size_t i = 0; i < total; i++) {
        const uint8_t *msg = out;
        size_t len = o->size;
        if (o->nmessages > 0) {
            msg = (const uint8_t *)o->messages[i % per_round];
            len = strlen(o->messages[i % per_round]);
        } else {
            fill_pattern(out, len, (uint32_t)i);
        }
        double t0 = now_us();
        size_t got = 0;
        const char *phase = "";
        st = echo_wait(s, msg, len, in, biggest + 2, &got, &phase);
        double us = now_us() - t0;
        if (st != SPRIG_STATUS_OK) {
            failf(st, "%s message %zu (%zu bytes)", phase, i + 1, len);
            goto out;
        }
        char a[PRINT_MAX + 40], b[PRINT_MAX + 40];
        describe(msg, len, a, sizeof(a));
        describe(in, got, b, sizeof(b));
        if (got != len || memcmp(in, msg, len) != 0) {
            fprintf(stderr, PROG ": echo of message %zu differs: sent %s, got back %s\n", i + 1, a,
                    b);
            goto out;
        }
        if (each) {
            printf("  %s -> echo %s  (%.1f us)\n", a, b, us);
        }
        sum_us += us;
        min_us = i == 0 || us < min_us ? us : min_us;
        max_us = us > max_us ? us : max_us;
    }
    printf("%zu echo(es) matched; round trip min %.1f / mean %.1f / max %.1f us\n", total, min_us,
           total > 0 ? sum_us / (double)total : 0.0, max_us);
    rc = 0;
out:
    free(out);
    free(in);
    sprig_sock_close(s);
    env_deinit(&e);
    return rc;
}

/* ---- --demo ---------------------------------------------------------------------------------- */

typedef struct demo {
    env e;
    unsigned checks;
    unsigned failed;
} demo;

static void check(demo *d, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void check(demo *d, bool ok, const char *fmt, ...)
{
    d->checks++;
    if (ok) {
        return;
    }
    d->failed++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "  FAILED: ");
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
}

/* One message there and back; true if the echo matched. Prints nothing. */
static bool demo_echo(sprig_sock *c, const void *msg, size_t len, uint8_t *in, size_t cap,
                      sprig_status *st)
{
    size_t got = 0;
    *st = sprig_sock_send_wait(c, msg, len, DEMO_TIMEOUT);
    if (*st != SPRIG_STATUS_OK) {
        return false;
    }
    *st = sprig_sock_recv_wait(c, in, cap, &got, DEMO_TIMEOUT);
    return *st == SPRIG_STATUS_OK && got == len && memcmp(in, msg, len) == 0;
}

static void demo_transport(demo *d, const char *label, const char *listen_url, bool optional)
{
    static const char *const words[] = {"hello, sprig", "ping"};
    echo_server srv;
    sprig_sock *c = NULL;
    uint8_t *out = NULL, *in = NULL;
    char url[URL_MAX];
    sprig_url u;
    sprig_loop *loop = &d->e.ol.loop;
    unsigned failed_before = d->failed;
    sprig_status st = server_start(&srv, loop, listen_url, SPRIG_SOCK_DEFAULT, false);
    if (st != SPRIG_STATUS_OK) {
        if (optional) {
            printf("%-6s %s  skipped: cannot listen (%s), IPv6 loopback not available\n", label,
                   listen_url, sprig_status_str(st));
            return;
        }
        check(d, false, "listen on %s: %s", listen_url, sprig_status_str(st));
        return;
    }
    (void)sprig_url_parse(listen_url, &u);
    sprig_os_bound_url(listen_url, srv.listener, url, sizeof(url)); /* the port it got */
    st = sprig_sock_dial_wait(loop, url, SPRIG_SOCK_DEFAULT, DEMO_TIMEOUT, &c);
    if (st != SPRIG_STATUS_OK) {
        check(d, false, "connect to %s: %s", url, sprig_status_str(st));
        goto done;
    }
    size_t max = sprig_sock_max_message_size(c);
    const char *how = u.scheme == SPRIG_URL_TCP ? " (framed TCP)" : "";
    printf("%-6s %s  %s%s, max message %zu B\n", label, url, type_name(sprig_sock_type_of(c)), how,
           max);

    out = malloc(max + 1);
    in = malloc(max + 1);
    if (out == NULL || in == NULL) {
        check(d, false, "memory for %zu-byte messages", max + 1);
        goto done;
    }

    /* A few small messages. */
    char line[256];
    size_t at = (size_t)snprintf(line, sizeof(line), "  echo:");
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        size_t len = strlen(words[i]);
        bool ok = demo_echo(c, words[i], len, in, max + 1, &st);
        char a[PRINT_MAX + 40] = "", b[PRINT_MAX + 40] = "(none)";
        describe((const uint8_t *)words[i], len, a, sizeof(a));
        if (st == SPRIG_STATUS_OK) {
            describe(in, len, b, sizeof(b));
        }
        check(d, ok, "%s echo of %s: %s", label, a, sprig_status_str(st));
        at += (size_t)snprintf(line + at, sizeof(line) - at, "%s %s -> %s", i ? "," : "", a, b);
        if (!ok) {
            break;
        }
    }
    printf("%s\n", line);
    if (d->failed != failed_before) {
        goto abandon;
    }

    /* Exactly the maximum goes through; one byte more is refused at the sender. */
    fill_pattern(out, max + 1, 42);
    bool ok = demo_echo(c, out, max, in, max + 1, &st);
    check(d, ok, "%s echo of a %zu-byte message: %s", label, max, sprig_status_str(st));
    sprig_status over = sprig_sock_send(c, out, max + 1, NULL);
    check(d, over == SPRIG_STATUS_RESOURCE_EXHAUSTED,
          "%s: %zu bytes should be refused with RESOURCE_EXHAUSTED, got %s", label, max + 1,
          sprig_status_str(over));
    printf("  %zu B (the max) echoed %s; %zu B refused at the sender: %s\n", max,
           ok ? "intact" : "WRONG", max + 1, sprig_status_str(over));
    if (d->failed != failed_before) {
        goto abandon;
    }

    /* Zero-copy: the payload is written once, into a buffer with headroom for lower layers. */
    sprig_buf *b = NULL;
    const size_t zc_len = 1000;
    st = sprig_sock_alloc_tx(c, zc_len, &b);
    if (st == SPRIG_STATUS_OK) {
        size_t headroom = sprig_buf_headroom(b);
        uint8_t *p = sprig_buf_put(b, zc_len);
        size_t got = 0;
        if (p == NULL) {
            sprig_buf_free(b);
            st = SPRIG_STATUS_RESOURCE_EXHAUSTED;
        } else {
            fill_pattern(p, zc_len, 7);
            fill_pattern(out, zc_len, 7);
            st = send_buf_wait(c, b);
        }
        if (st == SPRIG_STATUS_OK) {
            st = sprig_sock_recv_wait(c, in, max + 1, &got, DEMO_TIMEOUT);
        }
        ok = st == SPRIG_STATUS_OK && got == zc_len && memcmp(in, out, zc_len) == 0;
        check(d, ok, "%s zero-copy echo: %s", label, sprig_status_str(st));
        printf("  zero-copy: alloc_tx %zu B (headroom %zu B) + send_buf, echoed %s\n", zc_len,
               headroom, ok ? "intact" : "WRONG");
    } else {
        check(d, false, "%s alloc_tx: %s", label, sprig_status_str(st));
    }
    if (d->failed != failed_before) {
        goto abandon;
    }

    /* Round trip of a 16-byte message. */
    uint8_t small[16];
    memcpy(small, "sprig rtt probe.", sizeof(small));
    double t0 = now_us();
    for (unsigned i = 0; i < DEMO_RTT_RUNS; i++) {
        small[15] = (uint8_t)i;
        if (!demo_echo(c, small, sizeof(small), in, max + 1, &st)) {
            check(d, false, "%s: round trip %u of %u: %s", label, i + 1, DEMO_RTT_RUNS,
                  st == SPRIG_STATUS_OK ? "echo differs" : sprig_status_str(st));
            goto done;
        }
    }
    printf("  round trip of a 16 B message: %.1f us (mean of %u)\n",
           (now_us() - t0) / DEMO_RTT_RUNS, DEMO_RTT_RUNS);
    goto done;
abandon:
    printf("  (the rest of %s is skipped after that failure)\n", label);
done:
    free(out);
    free(in);
    sprig_sock_close(c);
    server_stop(&srv);
}

static int run_demo(void)
{
    demo d;
    char dir[URL_MAX / 2], path[URL_MAX / 2 + 32], url[URL_MAX];
    const char *tmp = getenv("TMPDIR");
    memset(&d, 0, sizeof(d));
    snprintf(dir, sizeof(dir), "%s/sprig-demo-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, PROG ": temporary directory %s: %s\n", dir, strerror(errno));
        return 1;
    }
    snprintf(path, sizeof(path), "%s/sprig-demo.sock", dir);
    snprintf(url, sizeof(url), "unix:%s", path);

    sprig_status st = env_init(&d.e);
    if (st != SPRIG_STATUS_OK) {
        env_deinit(&d.e);
        rmdir(dir);
        return fail("OS loop/backend", st);
    }
    printf("sprig-sockecho demo: an echo server (callbacks) and a client (blocking helpers)\n"
           "on one event loop, over each transport of the OS backend.\n\n");
    demo_transport(&d, "[unix]", url, false);
    demo_transport(&d, "[tcp]", "tcp://127.0.0.1:0", false);
    demo_transport(&d, "[tcp6]", "tcp://[::1]:0", true);
    demo_transport(&d, "[udp]", "udp://127.0.0.1:0", false);

    size_t open = env_deinit(&d.e);
    struct stat sb;
    bool left = stat(path, &sb) == 0;
    (void)unlink(path);
    (void)rmdir(dir);
    if (open != 0) {
        printf("note: the backend still counted %zu open socket(s) at teardown\n", open);
    }
    if (left) {
        printf("note: the unix listener left its socket file behind (removed now)\n");
    }
    printf("\n");
    if (d.failed != 0) {
        fprintf(stderr, PROG ": demo: %u of %u checks failed\n", d.failed, d.checks);
        return 1;
    }
    printf("cleanup: every socket closed, %s and its directory removed\n", path);
    printf("demo OK: all %u checks passed, every echo matched\n", d.checks);
    return 0;
}

/* ---- main ---------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " --listen URL [--type T] [--quiet]\n"
            "       " PROG " --connect URL [--type T] [--count N] [--size B] [MESSAGE...]\n"
            "       " PROG " --demo\n"
            "\n"
            "  --listen URL   echo server: every message (STREAM: every byte) goes back to its\n"
            "                 sender; many clients at once; Ctrl-C stops it\n"
            "  --connect URL  send each MESSAGE (or one message of --size bytes) --count times\n"
            "                 and print the echoes; exit 0 only if every echo matched\n"
            "  --demo         server and client in one process over unix, tcp, tcp6 and udp\n"
            "  --type T       seqpacket, stream or dgram (default: the URL's: unix and tcp\n"
            "                 SEQPACKET, udp DGRAM)\n"
            "  --count N      rounds (default 1)      --size B   generated message size "
            "(default 16)\n"
            "  --quiet        server: no per-connection lines\n"
            "\n"
            "URLs: unix:PATH  tcp://HOST:PORT  udp://HOST:PORT  (HOST: name, a.b.c.d or [v6];\n"
            "PORT 0 on --listen picks a free port, which is printed)\n"
            "  and sprig's netstack (docs/netstack.md): serial:PATH[?baud=B]  (a tty or pty)\n"
            "  sprig+udp://HOST:PORT  (--listen binds HOST:PORT and serves many nodes)\n"
            "  query: node=N peer=P (defaults: --listen node 2, --connect node 1 dialing 2;\n"
            "  concurrent sprig+udp clients need distinct node=), port=N (echo port, default 7)\n");
}

int main(int argc, char **argv)
{
    enum { NONE, LISTEN, CONNECT, DEMO } mode = NONE;
    client_opts o = {.type = SPRIG_SOCK_DEFAULT, .count = 1, .size = 16};
    bool verbose = true;
    int i = 1;
    signal(SIGPIPE, SIG_IGN);
    for (; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--demo") == 0) {
            mode = DEMO;
        } else if ((strcmp(a, "--listen") == 0 || strcmp(a, "--connect") == 0) && has_value) {
            mode = a[2] == 'l' ? LISTEN : CONNECT;
            o.url = argv[++i];
        } else if (strcmp(a, "--type") == 0 && has_value) {
            if (!parse_type(argv[++i], &o.type)) {
                fprintf(stderr, PROG ": --type: unknown type '%s' (seqpacket, stream, dgram)\n",
                        argv[i]);
                return 2;
            }
        } else if ((strcmp(a, "--count") == 0 || strcmp(a, "--size") == 0) && has_value) {
            size_t *dst = a[2] == 'c' ? &o.count : &o.size;
            if (!parse_size(argv[++i], dst)) {
                fprintf(stderr, PROG ": %s: not a number: '%s'\n", a, argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--quiet") == 0) {
            verbose = false;
        } else if (strcmp(a, "--") == 0) {
            i++;
            break;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, PROG ": unknown option or missing value: %s (try --help)\n", a);
            return 2;
        } else {
            break;
        }
    }
    o.messages = argv + i;
    o.nmessages = argc - i;
    if (mode != CONNECT && o.nmessages > 0) {
        fprintf(stderr, PROG ": unexpected argument '%s' (try --help)\n", argv[i]);
        return 2;
    }
    switch (mode) {
    case LISTEN:
        return run_listen(o.url, o.type, verbose);
    case CONNECT:
        return run_connect(&o);
    case DEMO:
        return run_demo();
    case NONE:
    default:
        usage(stderr);
        return 2;
    }
}
