/*
 * os_sock.c — the OS socket backend (sprig/os.h): unix SEQPACKET, TCP STREAM, TCP SEQPACKET
 * (a TCP stream under the framing decorator) and UDP DGRAM, over IPv4 and IPv6.
 *
 * Events
 *   Every fd is registered once, edge-triggered. TCP watches IN|OUT for good: the kernel raises
 *   a TCP socket's OUT only after a send found it full. Unix and UDP sockets raise OUT each time
 *   one of their messages is consumed or sent, which would wake the loop once more per message
 *   (measured: +35% on a unix ping-pong); they add OUT with epoll_ctl only after a send would
 *   block, and drop it when an OUT finds nobody waiting. The data path makes no epoll_ctl.
 *   Events that arise inside an op (a dial that fails at once, the orderly end noticed by
 *   shutdown) go through the socket's task: users hear of them from the loop, never from an op.
 *   A socket closed while one of its events is being delivered is freed when delivery returns.
 *
 * Receiving
 *   Once a recv has seen the kernel queue empty (EAGAIN, or a short TCP read) the next recv
 *   answers UNAVAILABLE without a syscall until IN is reported again: with edge-triggering,
 *   anything that arrives later raises IN. A recv buffer smaller than max_message reads the
 *   message into a pool buffer, which keeps it ("stash") when it does not fit: nothing is lost
 *   and no peek is needed. A message longer than max_message is never handed out: a datagram
 *   is dropped (counted), a unix SEQPACKET connection dies with RESOURCE_EXHAUSTED as a framed
 *   TCP one does.
 *
 * Memory
 *   Sockets are heap objects; a TCP SEQPACKET socket is one block holding the framed socket and
 *   its rx/tx memory, freed by the decorator's on_release. The data path allocates nothing.
 */
/* framing.h names `struct sprig_framed_sock` in a parameter list before defining it; declaring
 * the tag at file scope first makes both the same type. */
struct sprig_framed_sock;

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "sprig/framing.h"
#include "sprig/os.h"

enum { KIND_UNIX, KIND_TCP, KIND_UDP };

/* Events waiting in a socket's task. */
#define PEND_CONNECTED 0x1u
#define PEND_READABLE  0x2u
#define PEND_CLOSED    0x4u

#define UDP4_MAX_MESSAGE 65507u /* 65535 - IPv4 header - UDP header */
#define UDP6_MAX_MESSAGE 65527u /* 65535 - UDP header (the IPv6 header is not in the length) */
/* unix_dgram_sendmsg() refuses a message longer than the send buffer minus this. */
#define UNIX_SNDBUF_SLACK 32u
#define MAX_MESSAGE_LIMIT ((size_t)1 << 30)
#define DEFAULT_POOL_BUFS 64u
#define DEFAULT_BACKLOG   1024
#define PLAN_MAX          8
/* Framed sockets read into rx memory this much at least, so one recv carries many messages. */
#define FRAMED_RX_ROUND ((size_t)64 * 1024)
#define IOV_BATCH       64
/* recv buffers up to this size get a message through a pool buffer and a copy (see recv_small) */
#define SPILL_COPY_MAX 4096u
/* A unix listener with a full backlog answers EAGAIN; the dial tries again after a backoff. */
#define UNIX_RETRY_FIRST SPRIG_TIME_MS(1)
#define UNIX_RETRY_MAX   SPRIG_TIME_MS(64)
#define UNIX_RETRY_LIMIT SPRIG_TIME_S(10)
/* A listener that ran out of fds tries again after this. */
#define ACCEPT_RETRY SPRIG_TIME_MS(100)

typedef struct sockaddr_any {
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
        struct sockaddr_un un;
        struct sockaddr_storage ss;
    } u;
    socklen_t len;
} sockaddr_any;

/* Where a dial may connect: every address its name resolved to, tried in order. */
typedef struct connect_plan {
    size_t count;
    size_t next;
    sockaddr_any addrs[PLAN_MAX];
} connect_plan;

typedef struct os_sock {
    sprig_sock sock; /* first: the ops are given &s->sock */
    sprig_os_backend *b;
    int fd;
    int family;
    sprig_os_fd watch;
    sprig_task task;   /* delivers `pending` */
    sprig_timer retry; /* unix dial: try connect again */
    sprig_time retry_delay;
    sprig_time retry_deadline;
    connect_plan *plan; /* while dialing */
    sprig_buf *stash;   /* a message too big for the recv buffer it was read with */
    sprig_addr stash_from;
    sprig_buf *tx_rest; /* STREAM send_buf: bytes the kernel has not taken yet */
    char *unix_path;    /* unix listener: the file to remove at close ... */
    dev_t path_dev;     /* ... if it is still the one we made */
    ino_t path_ino;
    sprig_status closing; /* status of the CLOSED event waiting in `task` */
    uint32_t refused;     /* UDP: ICMP port-unreachable reports ignored */
    uint32_t oversized;   /* UDP: datagrams longer than max_message dropped */
    uint8_t kind;
    uint8_t pending;
    uint8_t depth;        /* deliveries in progress */
    bool released;        /* closed during a delivery: free when it returns */
    bool framed_listener; /* TCP SEQPACKET listener: accepted sockets get framed */
    bool out_armed;       /* unix/UDP: OUT is in the epoll mask */
    bool shut_pending;    /* shutdown waits for tx_rest */
    bool rx_drained;      /* the kernel's receive queue was empty at the last recv */
    bool hup_seen;        /* ERR/HUP/RDHUP was reported: the end may come without an edge */
} os_sock;

typedef struct framed_block {
    sprig_framed_sock f;
    uint8_t mem[]; /* rx memory, then tx memory */
} framed_block;

static const sprig_sock_ops msg_ops;
static const sprig_sock_ops stream_ops;

static os_sock *os(sprig_sock *s)
{
    return (os_sock *)(void *)s;
}

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

/* ---- addresses ------------------------------------------------------------------------- */

static void sockaddr_from_sprig(const sprig_addr *a, uint16_t port, int family, sockaddr_any *out)
{
    memset(out, 0, sizeof *out);
    if (family == AF_INET) {
        out->u.in4.sin_family = AF_INET;
        out->u.in4.sin_port = htons(port);
        out->u.in4.sin_addr.s_addr = htonl(sprig_addr_ipv4(a));
        out->len = sizeof out->u.in4;
        return;
    }
    out->u.in6.sin6_family = AF_INET6;
    out->u.in6.sin6_port = htons(port);
    memcpy(out->u.in6.sin6_addr.s6_addr, a->ip, sizeof a->ip);
    out->len = sizeof out->u.in6;
}

static void sprig_from_sockaddr(const sockaddr_any *a, sprig_addr *out)
{
    memset(out, 0, sizeof *out);
    if (a->u.sa.sa_family == AF_INET) {
        sprig_addr_from_ipv4(out, ntohl(a->u.in4.sin_addr.s_addr), ntohs(a->u.in4.sin_port));
    } else if (a->u.sa.sa_family == AF_INET6) {
        memcpy(out->ip, a->u.in6.sin6_addr.s6_addr, sizeof out->ip);
        out->port = ntohs(a->u.in6.sin6_port);
    }
}

static sprig_status unix_sockaddr(const sprig_url *url, sockaddr_any *out)
{
    memset(out, 0, sizeof *out);
    if (url->path.len == 0 || url->path.len >= sizeof out->u.un.sun_path) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    out->u.un.sun_family = AF_UNIX;
    memcpy(out->u.un.sun_path, url->path.ptr, url->path.len);
    out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + url->path.len + 1);
    return SPRIG_STATUS_OK;
}

/* getaddrinfo has its own error space; only EAI_SYSTEM carries an errno. */
static sprig_status gai_status(int rc)
{
    switch (rc) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return SPRIG_STATUS_NOT_FOUND;
    case EAI_AGAIN:
        return SPRIG_STATUS_UNAVAILABLE;
    case EAI_MEMORY:
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    case EAI_SYSTEM:
        return sprig_os_status_from_errno(errno);
    default:
        return SPRIG_STATUS_INTERNAL;
    }
}

static void plan_add(connect_plan *plan, const struct addrinfo *ai, uint16_t port)
{
    sockaddr_any *a = &plan->addrs[plan->count];
    if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) || ai->ai_addrlen > sizeof a->u) {
        return;
    }
    memset(a, 0, sizeof *a);
    memcpy(&a->u, ai->ai_addr, ai->ai_addrlen);
    a->len = ai->ai_addrlen;
    if (ai->ai_family == AF_INET) {
        a->u.in4.sin_port = htons(port);
    } else {
        a->u.in6.sin6_port = htons(port);
    }
    plan->count++;
}

/* The URL's host as socket addresses: an IP literal directly, a name through getaddrinfo. */
static sprig_status resolve(const sprig_url *url, int socktype, bool passive, connect_plan *plan)
{
    plan->count = 0;
    plan->next = 0;
    if (!url->has_port || url->host.len == 0) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (url->host_is_ip) {
        int family = sprig_addr_is_ipv4(&url->addr) ? AF_INET : AF_INET6;
        sockaddr_from_sprig(&url->addr, url->port, family, &plan->addrs[0]);
        plan->count = 1;
        return SPRIG_STATUS_OK;
    }
    char host[NI_MAXHOST];
    if (sprig_str_copy(url->host, host, sizeof host) != SPRIG_STATUS_OK) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        return gai_status(rc);
    }
    for (const struct addrinfo *ai = res; ai != NULL && plan->count < PLAN_MAX; ai = ai->ai_next) {
        plan_add(plan, ai, url->port);
    }
    freeaddrinfo(res);
    return plan->count > 0 ? SPRIG_STATUS_OK : SPRIG_STATUS_NOT_FOUND;
}

/* ---- event delivery ------------------------------------------------------------------ */

static void defer_event(os_sock *s, uint8_t ev)
{
    s->pending |= ev;
    sprig_loop_defer(s->sock.loop, &s->task);
}

/* The connection is over: later calls answer `st`, and CLOSED follows from the loop. */
static void mark_dead(os_sock *s, sprig_status st)
{
    sprig__sock_set_dead(&s->sock, st);
    s->closing = s->sock.status;
    defer_event(s, PEND_CLOSED);
}

static void emit(os_sock *s, sprig_sock_event ev, sprig_status st)
{
    if (!s->released) {
        sprig__sock_event(&s->sock, ev, st);
    }
}

static void begin_delivery(os_sock *s)
{
    s->depth++;
}

static void end_delivery(os_sock *s)
{
    if (--s->depth == 0 && s->released) {
        free(s);
    }
}

static void run_pending(void *arg)
{
    os_sock *s = arg;
    uint8_t p = s->pending;
    s->pending = 0;
    begin_delivery(s);
    if (p & PEND_CONNECTED) {
        emit(s, SPRIG_SOCK_EV_CONNECTED, SPRIG_STATUS_OK);
    }
    if (p & PEND_READABLE) {
        emit(s, SPRIG_SOCK_EV_READABLE, SPRIG_STATUS_OK);
    }
    if (p & PEND_CLOSED) {
        emit(s, SPRIG_SOCK_EV_CLOSED, s->closing);
    }
    end_delivery(s);
}

/* ---- fds ------------------------------------------------------------------------------- */

static int socktype_of(uint8_t kind)
{
    switch (kind) {
    case KIND_UNIX:
        return SOCK_SEQPACKET;
    case KIND_TCP:
        return SOCK_STREAM;
    default:
        return SOCK_DGRAM;
    }
}

static int open_socket(int family, uint8_t kind)
{
    return socket(family, socktype_of(kind) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

/* The largest message a unix socket can send: its send buffer must hold one, so raise it
 * (past net.core.wmem_max when privileged) and report what we got. */
static size_t unix_max_message(int fd, size_t want)
{
    size_t need = want + UNIX_SNDBUF_SLACK;
    int cur = 0;
    socklen_t len = sizeof cur;
    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cur, &len) == 0 && cur >= 0 && (size_t)cur >= need) {
        return want;
    }
    /* The kernel doubles the value it is given: ask for `need`, get room for two messages. */
    int req = need > (size_t)INT_MAX / 2 ? INT_MAX / 2 : (int)need;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &req, sizeof req) != 0) {
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &req, sizeof req);
    }
    len = sizeof cur;
    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cur, &len) != 0 || cur < 0 || (size_t)cur >= need) {
        return want;
    }
    return (size_t)cur > UNIX_SNDBUF_SLACK ? (size_t)cur - UNIX_SNDBUF_SLACK : 0;
}

static void configure_fd(os_sock *s)
{
    size_t max = s->b->cfg.max_message_size;
    if (s->sock.state == SPRIG_SOCK_STATE_LISTENING) {
        return;
    }
    if (s->kind == KIND_TCP) {
        int one = 1;
        (void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    } else if (s->kind == KIND_UNIX) {
        s->sock.max_message = unix_max_message(s->fd, max);
    } else {
        size_t limit = s->family == AF_INET ? UDP4_MAX_MESSAGE : UDP6_MAX_MESSAGE;
        s->sock.max_message = max < limit ? max : limit;
    }
}

static uint32_t watch_events(const os_sock *s)
{
    if (s->sock.state == SPRIG_SOCK_STATE_LISTENING) {
        return SPRIG_OS_EV_IN;
    }
    return s->kind == KIND_TCP ? SPRIG_OS_EV_IN | SPRIG_OS_EV_OUT : SPRIG_OS_EV_IN;
}

static void on_fd(sprig_os_fd *watch, uint32_t events);

/* Adopt fd: options, then the one epoll registration. Returns 0 or an errno; the fd is closed
 * on failure. */
static int attach_fd(os_sock *s, int fd, int family)
{
    s->fd = fd;
    s->family = family;
    s->out_armed = false;
    s->rx_drained = false;
    s->hup_seen = false; /* a failed address of the same dial may have set it */
    configure_fd(s);
    if (sprig_os_loop_add_fd(s->b->ol, &s->watch, fd, watch_events(s), on_fd, s) !=
        SPRIG_STATUS_OK) {
        int err = errno != 0 ? errno : ENOMEM;
        (void)close(fd);
        s->fd = -1;
        return err;
    }
    return 0;
}

static void drop_fd(os_sock *s)
{
    if (s->fd < 0) {
        return;
    }
    sprig_os_loop_del_fd(s->b->ol, &s->watch);
    (void)close(s->fd);
    s->fd = -1;
}

/* unix/UDP: watch OUT only while someone waits for WRITABLE (see the file comment). */
static void arm_out(os_sock *s, bool on)
{
    if (s->kind == KIND_TCP || s->out_armed == on || s->fd < 0) {
        return;
    }
    uint32_t events = SPRIG_OS_EV_IN | (on ? SPRIG_OS_EV_OUT : 0u);
    if (sprig_os_loop_mod_fd(s->b->ol, &s->watch, events) == SPRIG_STATUS_OK) {
        s->out_armed = on;
    }
}

/* ---- sockets --------------------------------------------------------------------------- */

static void on_retry(sprig_timer *timer, void *arg);

static os_sock *new_sock(sprig_os_backend *b, uint8_t kind, sprig_sock_type type,
                         sprig_sock_state state)
{
    os_sock *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    sprig__sock_init(&s->sock, kind == KIND_TCP ? &stream_ops : &msg_ops, &b->ol->loop, type,
                     state);
    s->sock.tx_pool = &b->pool;
    s->sock.headroom = SPRIG_CONFIG_SOCK_HEADROOM;
    if (type != SPRIG_SOCK_STREAM && state != SPRIG_SOCK_STATE_LISTENING) {
        s->sock.max_message = b->cfg.max_message_size;
    }
    s->b = b;
    s->kind = kind;
    s->fd = -1;
    s->watch.fd = -1;
    sprig_task_init(&s->task, run_pending, s);
    sprig_timer_init(&s->retry, on_retry, s);
    b->open++;
    return s;
}

/* A listener's file is removed only if it is still the one we bound: a newer listener may have
 * replaced it after a stale-file cleanup of its own. */
static void forget_unix_file(os_sock *s)
{
    struct stat st;
    if (s->unix_path == NULL) {
        return;
    }
    if (lstat(s->unix_path, &st) == 0 && st.st_dev == s->path_dev && st.st_ino == s->path_ino) {
        (void)unlink(s->unix_path);
    }
    free(s->unix_path);
    s->unix_path = NULL;
}

static void os_close(sprig_sock *ss)
{
    os_sock *s = os(ss);
    if (s->tx_rest != NULL && s->sock.state != SPRIG_SOCK_STATE_CLOSED) {
        /* Best effort for bytes send_buf accepted; what the kernel does not take is lost. */
        (void)send(s->fd, sprig_buf_data(s->tx_rest), s->tx_rest->len, MSG_NOSIGNAL);
    }
    sprig_buf_free(s->tx_rest);
    s->tx_rest = NULL;
    sprig_loop_cancel(s->sock.loop, &s->task);
    s->pending = 0;
    sprig_timer_stop(s->sock.loop, &s->retry);
    drop_fd(s);
    forget_unix_file(s);
    sprig_buf_free(s->stash);
    s->stash = NULL;
    free(s->plan);
    s->plan = NULL;
    s->b->open--;
    if (s->depth > 0) {
        s->released = true;
    } else {
        free(s);
    }
}

static void release_block(sprig_framed_sock *f, void *ctx)
{
    (void)f;
    free(ctx);
}

/* TCP SEQPACKET: put the framing decorator over the stream socket `inner` (closed on failure). */
static sprig_status wrap(os_sock *inner, sprig_sock **out)
{
    size_t max = inner->b->cfg.max_message_size;
    size_t rx_cap = round_up(max + SPRIG_FRAMING_HEADER_LEN, FRAMED_RX_ROUND);
    size_t tx_cap = max + SPRIG_FRAMING_HEADER_LEN;
    framed_block *blk = malloc(sizeof *blk + rx_cap + tx_cap);
    if (blk == NULL) {
        sprig_sock_close(&inner->sock);
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    memset(&blk->f, 0, sizeof blk->f);
    /* The framed face adds its header to the inner headroom: together they use exactly the
     * headroom the pool's buffers were sized for. */
    inner->sock.headroom = SPRIG_CONFIG_SOCK_HEADROOM - SPRIG_FRAMING_HEADER_LEN;
    sprig_framing_cfg cfg = {
        .max_message_size = max,
        .rx_mem = blk->mem,
        .rx_cap = rx_cap,
        .tx_mem = blk->mem + rx_cap,
        .tx_cap = tx_cap,
        .on_release = release_block,
        .release_ctx = blk,
    };
    sprig_status st = sprig_framing_init(&blk->f, &inner->sock, &cfg);
    if (st != SPRIG_STATUS_OK) {
        sprig_sock_close(&inner->sock);
        free(blk);
        return st;
    }
    *out = &blk->f.sock;
    return SPRIG_STATUS_OK;
}

/* ---- connecting ------------------------------------------------------------------------ */

static void connected_soon(os_sock *s)
{
    free(s->plan);
    s->plan = NULL;
    defer_event(s, PEND_CONNECTED);
}

/* The socket stays CONNECTING until the loop delivers CLOSED, as if the answer had come from
 * the network: a dial never fails inside the call. */
static void fail_connect(os_sock *s, int err)
{
    free(s->plan);
    s->plan = NULL;
    drop_fd(s);
    s->closing = sprig_os_status_from_errno(err);
    defer_event(s, PEND_CLOSED);
}

/* 0 (connected), EINPROGRESS (OUT will tell), or why it failed. */
static int start_connect(os_sock *s, const sockaddr_any *a)
{
    drop_fd(s);
    int fd = open_socket(a->u.sa.sa_family, s->kind);
    if (fd < 0) {
        return errno;
    }
    int err = attach_fd(s, fd, a->u.sa.sa_family);
    if (err != 0) {
        return err;
    }
    if (connect(fd, &a->u.sa, a->len) == 0) {
        return 0;
    }
    /* An interrupted connect goes on in the background, as if it had said EINPROGRESS. */
    return errno == EINTR ? EINPROGRESS : errno;
}

static bool retry_later(os_sock *s)
{
    sprig_loop *loop = s->sock.loop;
    sprig_time now = sprig_loop_now(loop);
    if (s->retry_delay == 0) {
        s->retry_delay = UNIX_RETRY_FIRST;
        s->retry_deadline = sprig_time_add(now, UNIX_RETRY_LIMIT);
    } else if (s->retry_delay < UNIX_RETRY_MAX) {
        s->retry_delay *= 2;
    }
    if (now >= s->retry_deadline) {
        return false;
    }
    sprig_timer_start(loop, &s->retry, s->retry_delay);
    return true;
}

/* Try the plan's addresses from the next one on; err says why the previous one failed. */
static void connect_next(os_sock *s, int err)
{
    connect_plan *plan = s->plan;
    while (plan->next < plan->count) {
        err = start_connect(s, &plan->addrs[plan->next]);
        if (err == EAGAIN && s->kind == KIND_UNIX && retry_later(s)) {
            return;
        }
        plan->next++;
        if (err == 0) {
            connected_soon(s);
            return;
        }
        if (err == EINPROGRESS) {
            return;
        }
    }
    fail_connect(s, err);
}

static void on_retry(sprig_timer *timer, void *arg)
{
    os_sock *s = arg;
    (void)timer;
    if (s->sock.state == SPRIG_SOCK_STATE_LISTENING) {
        defer_event(s, PEND_READABLE); /* see os_accept */
        return;
    }
    connect_next(s, EAGAIN);
}

/* A TCP connect finished one way or the other (called from the loop). */
static void finish_connect(os_sock *s, uint32_t events)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        err = errno;
    }
    if (err == 0 && !(events & SPRIG_OS_EV_OUT)) {
        return; /* not there yet */
    }
    if (err != 0) {
        connect_next(s, err);
        return;
    }
    free(s->plan);
    s->plan = NULL;
    emit(s, SPRIG_SOCK_EV_CONNECTED, SPRIG_STATUS_OK);
    if (events & (SPRIG_OS_EV_IN | SPRIG_OS_EV_ERR)) {
        emit(s, SPRIG_SOCK_EV_READABLE, SPRIG_STATUS_OK);
    }
}

/* ---- sending --------------------------------------------------------------------------- */

/* A connection that reports an error is over; "try later" and "too big" are not errors of the
 * connection, and a datagram socket has no connection to lose. */
static bool fatal(const os_sock *s, sprig_status st)
{
    return s->kind != KIND_UDP && st != SPRIG_STATUS_UNAVAILABLE &&
           st != SPRIG_STATUS_RESOURCE_EXHAUSTED && st != SPRIG_STATUS_INVALID_ARGUMENT;
}

static sprig_status io_error(os_sock *s, int err)
{
    sprig_status st = sprig_os_status_from_errno(err);
    if (fatal(s, st)) {
        mark_dead(s, st);
    }
    return st;
}

static sprig_status send_error(os_sock *s, int err)
{
    if (err == EAGAIN || err == EWOULDBLOCK) {
        arm_out(s, true);
        return SPRIG_STATUS_UNAVAILABLE;
    }
    return io_error(s, err);
}

/* A UDP socket hears of an ICMP port-unreachable for an earlier datagram as ECONNREFUSED on
 * its next call: not a failure of this one. */
static bool retry_errno(os_sock *s, int err)
{
    if (err == ECONNREFUSED && s->kind == KIND_UDP) {
        s->refused++;
        return true;
    }
    return err == EINTR;
}

static ssize_t send_retry(os_sock *s, const void *data, size_t len, const sockaddr_any *to)
{
    ssize_t n;
    do {
        n = to != NULL ? sendto(s->fd, data, len, MSG_NOSIGNAL, &to->u.sa, to->len)
                       : send(s->fd, data, len, MSG_NOSIGNAL);
    } while (n < 0 && retry_errno(s, errno));
    return n;
}

static sprig_status dest_sockaddr(const os_sock *s, const sprig_addr *to, sockaddr_any *out)
{
    if (s->family == AF_INET && !sprig_addr_is_ipv4(to)) {
        return SPRIG_STATUS_INVALID_ARGUMENT; /* an IPv6 peer for an IPv4 socket */
    }
    sockaddr_from_sprig(to, to->port, s->family, out);
    return SPRIG_STATUS_OK;
}

static sprig_status msg_send(sprig_sock *ss, const void *data, size_t len, const sprig_addr *to,
                             size_t *out_sent)
{
    os_sock *s = os(ss);
    sockaddr_any dest;
    if (to != NULL) {
        sprig_status st = dest_sockaddr(s, to, &dest);
        if (st != SPRIG_STATUS_OK) {
            return st;
        }
    }
    if (send_retry(s, data, len, to != NULL ? &dest : NULL) < 0) {
        return send_error(s, errno);
    }
    if (out_sent != NULL) {
        *out_sent = len;
    }
    return SPRIG_STATUS_OK;
}

/* One message of all the pieces, to the connected peer: the kernel gathers them (no copy on
 * our side). More pieces than IOV_BATCH: UNIMPLEMENTED. */
static sprig_status msg_send_iov(sprig_sock *ss, const sprig_iov *iov, size_t iovcnt,
                                 size_t *out_sent)
{
    os_sock *s = os(ss);
    struct iovec v[IOV_BATCH];
    size_t len = 0;
    if (iovcnt > IOV_BATCH) {
        return SPRIG_STATUS_UNIMPLEMENTED;
    }
    for (size_t i = 0; i < iovcnt; i++) {
        v[i].iov_base = (void *)(uintptr_t)iov[i].base; /* sendmsg only reads it */
        v[i].iov_len = iov[i].len;
        len += iov[i].len;
    }
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = v;
    mh.msg_iovlen = iovcnt;
    ssize_t n;
    do {
        n = sendmsg(s->fd, &mh, MSG_NOSIGNAL);
    } while (n < 0 && retry_errno(s, errno));
    if (n < 0) {
        return send_error(s, errno);
    }
    *out_sent = len;
    return SPRIG_STATUS_OK;
}

/* The kernel copies from the buffer itself: no copy on our side. */
static sprig_status msg_send_buf(sprig_sock *ss, sprig_buf *buf, const sprig_addr *to)
{
    sprig_status st = msg_send(ss, sprig_buf_data(buf), buf->len, to, NULL);
    if (st == SPRIG_STATUS_OK) {
        sprig_buf_free(buf);
    }
    return st;
}

static sprig_status stream_send(sprig_sock *ss, const void *data, size_t len, const sprig_addr *to,
                                size_t *out_sent)
{
    (void)to;
    os_sock *s = os(ss);
    if (s->tx_rest != NULL) {
        return SPRIG_STATUS_UNAVAILABLE;
    }
    ssize_t n = send_retry(s, data, len, NULL);
    if (n < 0) {
        return send_error(s, errno);
    }
    *out_sent = (size_t)n;
    return SPRIG_STATUS_OK;
}

static sprig_status stream_send_iov(sprig_sock *ss, const sprig_iov *iov, size_t iovcnt,
                                    size_t *out_sent)
{
    os_sock *s = os(ss);
    if (s->tx_rest != NULL) {
        return SPRIG_STATUS_UNAVAILABLE;
    }
    struct iovec v[IOV_BATCH];
    size_t cnt = iovcnt < IOV_BATCH ? iovcnt : IOV_BATCH; /* STREAM may take less */
    for (size_t i = 0; i < cnt; i++) {
        v[i].iov_base = (void *)(uintptr_t)iov[i].base; /* sendmsg only reads it */
        v[i].iov_len = iov[i].len;
    }
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = v;
    mh.msg_iovlen = cnt;
    ssize_t n;
    do {
        n = sendmsg(s->fd, &mh, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return send_error(s, errno);
    }
    *out_sent = (size_t)n;
    return SPRIG_STATUS_OK;
}

static sprig_status shut_wr(os_sock *s)
{
    s->shut_pending = false;
    if (shutdown(s->fd, SHUT_WR) != 0) {
        return sprig_os_status_from_errno(errno);
    }
    s->sock.flags |= SPRIG_SOCK_F_SHUT_WR;
    if (s->sock.flags & SPRIG_SOCK_F_RD_DONE) {
        mark_dead(s, SPRIG_STATUS_OK);
    }
    return SPRIG_STATUS_OK;
}

/* Push the rest of a send_buf buffer (called when OUT says there is room). */
static void flush_rest(os_sock *s)
{
    sprig_buf *rest = s->tx_rest;
    ssize_t n = send_retry(s, sprig_buf_data(rest), rest->len, NULL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            (void)io_error(s, errno);
        }
        return;
    }
    (void)sprig_buf_pull(rest, (size_t)n);
    if (rest->len > 0) {
        return;
    }
    sprig_buf_free(rest);
    s->tx_rest = NULL;
    if (s->shut_pending) {
        (void)shut_wr(s);
    }
}

/* STREAM: the buffer goes whole, so the part the kernel does not take now is kept and sent
 * when OUT comes; meanwhile sends answer UNAVAILABLE. */
static sprig_status stream_send_buf(sprig_sock *ss, sprig_buf *buf, const sprig_addr *to)
{
    (void)to;
    os_sock *s = os(ss);
    if (s->tx_rest != NULL) {
        return SPRIG_STATUS_UNAVAILABLE;
    }
    ssize_t n = buf->len > 0 ? send_retry(s, sprig_buf_data(buf), buf->len, NULL) : 0;
    if (n < 0) {
        return send_error(s, errno);
    }
    if ((size_t)n < buf->len) {
        (void)sprig_buf_pull(buf, (size_t)n);
        s->tx_rest = buf;
        return SPRIG_STATUS_OK;
    }
    sprig_buf_free(buf);
    return SPRIG_STATUS_OK;
}

static sprig_status os_shutdown(sprig_sock *ss)
{
    os_sock *s = os(ss);
    if (s->tx_rest != NULL) {
        s->shut_pending = true; /* the accepted bytes go first */
        return SPRIG_STATUS_OK;
    }
    return shut_wr(s);
}

/* ---- receiving ------------------------------------------------------------------------- */

static sprig_status recv_error(os_sock *s, int err)
{
    if (err == EAGAIN || err == EWOULDBLOCK) {
        s->rx_drained = true;
        return SPRIG_STATUS_UNAVAILABLE;
    }
    return io_error(s, err);
}

static sprig_status end_of_stream(os_sock *s)
{
    s->sock.flags |= SPRIG_SOCK_F_RD_DONE;
    if ((s->sock.flags & SPRIG_SOCK_F_SHUT_WR) && !s->shut_pending) {
        mark_dead(s, SPRIG_STATUS_OK);
    }
    return SPRIG_STATUS_OUT_OF_RANGE;
}

/* recv() answers 0 both for an empty message and at the end of a SEQPACKET stream. Only a peer
 * that has shut down can have ended it, and then a message still queued shows it did not.
 * (An empty message directly before the peer's shutdown reads as the end.) */
static bool seqpacket_ended(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLRDHUP | POLLHUP))) {
        return false;
    }
    char c;
    return recv(fd, &c, sizeof c, MSG_PEEK | MSG_DONTWAIT) <= 0;
}

static ssize_t recv_retry(os_sock *s, void *buf, size_t cap, int flags, sockaddr_any *from)
{
    ssize_t n;
    do {
        if (from != NULL) {
            from->len = sizeof from->u;
            n = recvfrom(s->fd, buf, cap, flags, &from->u.sa, &from->len);
        } else {
            n = recv(s->fd, buf, cap, flags);
        }
    } while (n < 0 && retry_errno(s, errno));
    return n;
}

static sprig_status got_message(os_sock *s, size_t n, size_t *out_len, sprig_addr *from,
                                const sockaddr_any *src)
{
    if (n == 0 && s->kind == KIND_UNIX && seqpacket_ended(s->fd)) {
        return end_of_stream(s);
    }
    *out_len = n;
    if (from != NULL) {
        sprig_from_sockaddr(src, from);
    }
    return SPRIG_STATUS_OK;
}

static sprig_status take_stash(os_sock *s, void *buf, size_t cap, size_t *out_len, sprig_addr *from)
{
    size_t n = s->stash->len;
    *out_len = n;
    if (n > cap) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    if (n > 0) {
        memcpy(buf, sprig_buf_data(s->stash), n);
    }
    if (from != NULL) {
        *from = s->stash_from;
    }
    sprig_buf_free(s->stash);
    s->stash = NULL;
    return SPRIG_STATUS_OK;
}

/* No spare buffer to stash into: peek at the size first, read only what fits. */
static sprig_status recv_peek(os_sock *s, void *buf, size_t cap, size_t *out_len, sprig_addr *from)
{
    ssize_t n = recv_retry(s, buf, cap, MSG_PEEK | MSG_TRUNC, NULL);
    if (n < 0) {
        return recv_error(s, errno);
    }
    if ((size_t)n > s->sock.max_message) {
        (void)recv_retry(s, buf, cap, MSG_TRUNC, NULL); /* take it off the queue */
        return SPRIG_STATUS_DATA_LOSS;
    }
    if ((size_t)n > cap) {
        *out_len = (size_t)n;
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    sockaddr_any src;
    n = recv_retry(s, buf, cap, 0, from != NULL ? &src : NULL);
    if (n < 0) {
        return recv_error(s, errno);
    }
    return got_message(s, (size_t)n, out_len, from, &src);
}

/* One message whose head goes to buf[0..cap) and tail to spill (one recvmsg). */
static ssize_t recv_split(os_sock *s, void *buf, size_t cap, sprig_buf *spill, sockaddr_any *src)
{
    struct iovec iov[2] = {{buf, cap}, {spill->mem + cap, sprig_buf_size(spill) - cap}};
    struct msghdr mh;
    ssize_t n;
    do {
        memset(&mh, 0, sizeof mh);
        mh.msg_name = src != NULL ? &src->u : NULL;
        mh.msg_namelen = src != NULL ? sizeof src->u : 0;
        mh.msg_iov = iov;
        mh.msg_iovlen = 2;
        n = recvmsg(s->fd, &mh, MSG_TRUNC);
    } while (n < 0 && retry_errno(s, errno));
    if (src != NULL) {
        src->len = mh.msg_namelen;
    }
    return n;
}

/* Keep a message that did not fit the caller's buffer for the next recv. */
static sprig_status stash_message(os_sock *s, sprig_buf *spill, size_t n, const sockaddr_any *src,
                                  size_t *out_len)
{
    spill->off = 0;
    spill->len = n;
    s->stash = spill;
    if (src != NULL) {
        sprig_from_sockaddr(src, &s->stash_from);
    }
    *out_len = n;
    return SPRIG_STATUS_RESOURCE_EXHAUSTED;
}

/* A buffer smaller than the largest message. The message is read in one call, into a pool
 * buffer that can hold any message; if it does not fit the caller's buffer it is kept there
 * (the "stash") and handed out by the next recv, so nothing is lost and no syscall is spent on
 * a peek. Small buffers take the whole message in the pool buffer and a copy of what fits (a
 * recv is cheaper than a recvmsg); larger ones split it between the two without a copy. */
static sprig_status recv_small(os_sock *s, void *buf, size_t cap, size_t *out_len, sprig_addr *from)
{
    sprig_buf *spill = sprig_buf_alloc(&s->b->pool, 0);
    if (spill == NULL) {
        return recv_peek(s, buf, cap, out_len, from);
    }
    sockaddr_any src;
    /* A stashed datagram keeps its source for a later recv_from, whoever reads it now. */
    sockaddr_any *want_src = from != NULL || s->kind == KIND_UDP ? &src : NULL;
    bool split = cap > SPILL_COPY_MAX;
    size_t room = sprig_buf_size(spill);
    ssize_t n = split ? recv_split(s, buf, cap, spill, want_src)
                      : recv_retry(s, spill->mem, room, MSG_TRUNC, want_src);
    if (n < 0) {
        int err = errno;
        sprig_buf_free(spill);
        return recv_error(s, err);
    }
    if ((size_t)n > cap && (size_t)n <= s->sock.max_message) {
        if (split && cap > 0) {
            memcpy(spill->mem, buf, cap); /* its head went to the caller's buffer */
        }
        return stash_message(s, spill, (size_t)n, want_src, out_len);
    }
    if (n > 0 && (size_t)n <= cap && !split) {
        memcpy(buf, spill->mem, (size_t)n);
    }
    sprig_buf_free(spill);
    return (size_t)n <= cap ? got_message(s, (size_t)n, out_len, from, &src)
                            : SPRIG_STATUS_DATA_LOSS; /* over the limit */
}

/* One message; DATA_LOSS for one longer than max_message (the peer broke the limit: even if the
 * caller's buffer held it, a larger socket elsewhere would have refused it). */
static sprig_status recv_one(os_sock *s, void *buf, size_t cap, size_t *out_len, sprig_addr *from)
{
    if (cap < s->sock.max_message) {
        return recv_small(s, buf, cap, out_len, from);
    }
    sockaddr_any src;
    /* MSG_TRUNC: the true length, so a message longer than even max_message is noticed. */
    ssize_t n = recv_retry(s, buf, cap, MSG_TRUNC, from != NULL ? &src : NULL);
    if (n < 0) {
        return recv_error(s, errno);
    }
    if ((size_t)n > cap || (size_t)n > s->sock.max_message) {
        return SPRIG_STATUS_DATA_LOSS;
    }
    return got_message(s, (size_t)n, out_len, from, &src);
}

static sprig_status msg_recv(sprig_sock *ss, void *buf, size_t cap, size_t *out_len,
                             sprig_addr *from)
{
    os_sock *s = os(ss);
    if (s->stash != NULL) {
        return take_stash(s, buf, cap, out_len, from);
    }
    if (s->rx_drained) {
        return SPRIG_STATUS_UNAVAILABLE; /* nothing new since the queue was seen empty */
    }
    for (;;) {
        sprig_status st = recv_one(s, buf, cap, out_len, from);
        if (st != SPRIG_STATUS_DATA_LOSS) {
            return st;
        }
        if (s->kind != KIND_UDP) {
            /* A peer that breaks our limit loses the connection, as over TCP framing. */
            mark_dead(s, SPRIG_STATUS_RESOURCE_EXHAUSTED);
            return SPRIG_STATUS_RESOURCE_EXHAUSTED;
        }
        s->oversized++; /* a datagram is dropped and counted; try the next one */
    }
}

static sprig_status stream_recv(sprig_sock *ss, void *buf, size_t cap, size_t *out_len,
                                sprig_addr *from)
{
    (void)from;
    os_sock *s = os(ss);
    if (cap == 0) {
        return SPRIG_STATUS_OK;
    }
    /* Whatever arrived since the queue was seen empty raises IN (edge-triggered), which clears
     * the flag: the recv that would only say EAGAIN is saved. */
    if (s->rx_drained) {
        return SPRIG_STATUS_UNAVAILABLE;
    }
    ssize_t n = recv_retry(s, buf, cap, 0, NULL);
    if (n < 0) {
        return recv_error(s, errno);
    }
    if (n == 0) {
        return end_of_stream(s);
    }
    /* TCP hands out all it has up to cap: less means its queue is empty now. Not so once the
     * peer has finished: this recv may have eaten its FIN, and the end must still be read. */
    s->rx_drained = (size_t)n < cap && !s->hup_seen;
    *out_len = (size_t)n;
    return SPRIG_STATUS_OK;
}

/* ---- readiness ------------------------------------------------------------------------- */

static void deliver_io(os_sock *s, uint32_t events)
{
    if ((events & SPRIG_OS_EV_OUT) && s->tx_rest != NULL) {
        flush_rest(s);
    }
    /* Errors and hang-ups too: the user's recv drains what is left, then meets the status. */
    if (events & (SPRIG_OS_EV_IN | SPRIG_OS_EV_ERR)) {
        emit(s, SPRIG_SOCK_EV_READABLE, SPRIG_STATUS_OK);
    }
    if (!(events & SPRIG_OS_EV_OUT) || s->released || s->tx_rest != NULL) {
        return;
    }
    if (s->sock.flags & SPRIG_SOCK_F_WANT_WRITABLE) {
        emit(s, SPRIG_SOCK_EV_WRITABLE, SPRIG_STATUS_OK);
    } else {
        arm_out(s, false); /* nobody waits: stop the wake-ups */
    }
}

static void on_fd(sprig_os_fd *watch, uint32_t events)
{
    os_sock *s = watch->arg;
    if (events & (SPRIG_OS_EV_IN | SPRIG_OS_EV_ERR)) {
        s->rx_drained = false;
    }
    if (events & SPRIG_OS_EV_ERR) {
        s->hup_seen = true;
    }
    if (s->sock.state == SPRIG_SOCK_STATE_CLOSED) {
        return; /* dead: the CLOSED event is on its way or delivered */
    }
    if (s->sock.state == SPRIG_SOCK_STATE_CONNECTING) {
        if (s->pending & PEND_CONNECTED) {
            /* Data before CONNECTED is delivered: keep the news for after it. */
            if (events & (SPRIG_OS_EV_IN | SPRIG_OS_EV_ERR)) {
                s->pending |= PEND_READABLE;
            }
            return;
        }
        if (s->kind != KIND_TCP) {
            return; /* a unix dial waiting for its retry timer */
        }
    }
    begin_delivery(s);
    if (s->sock.state == SPRIG_SOCK_STATE_CONNECTING) {
        finish_connect(s, events);
    } else {
        deliver_io(s, events);
    }
    end_delivery(s);
}

/* ---- accept ---------------------------------------------------------------------------- */

static int accept_fd(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        /* ECONNABORTED: that one was reset while queued; the next may be fine. */
        if (fd >= 0 || (errno != EINTR && errno != ECONNABORTED)) {
            return fd;
        }
    }
}

static sprig_status os_accept(sprig_sock *ls, sprig_sock **out)
{
    os_sock *l = os(ls);
    int fd = accept_fd(l->fd);
    if (fd < 0) {
        int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK) {
            return SPRIG_STATUS_UNAVAILABLE;
        }
        /* Out of fds or memory: the connection stays queued, and no new edge may ever come for
         * it. Say READABLE again a little later, when something may have been freed. */
        if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
            sprig_timer_start(l->sock.loop, &l->retry, ACCEPT_RETRY);
        }
        return sprig_os_status_from_errno(err);
    }
    sprig_sock_type type = l->kind == KIND_UNIX ? SPRIG_SOCK_SEQPACKET : SPRIG_SOCK_STREAM;
    os_sock *s = new_sock(l->b, l->kind, type, SPRIG_SOCK_STATE_OPEN);
    if (s == NULL) {
        (void)close(fd);
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    int err = attach_fd(s, fd, l->family);
    if (err != 0) {
        sprig_sock_close(&s->sock);
        return sprig_os_status_from_errno(err);
    }
    if (l->framed_listener) {
        return wrap(s, out);
    }
    *out = &s->sock;
    return SPRIG_STATUS_OK;
}

/* ---- addresses of a socket ------------------------------------------------------------- */

static sprig_status sock_addr(const sprig_sock *ss, bool peer, sprig_addr *out)
{
    const os_sock *s = (const os_sock *)(const void *)ss;
    if (s->kind == KIND_UNIX) {
        return SPRIG_STATUS_UNIMPLEMENTED; /* a path, not an IP address */
    }
    if (s->fd < 0) {
        return SPRIG_STATUS_FAILED_PRECONDITION;
    }
    sockaddr_any a;
    a.len = sizeof a.u;
    int rc = peer ? getpeername(s->fd, &a.u.sa, &a.len) : getsockname(s->fd, &a.u.sa, &a.len);
    if (rc != 0) {
        return errno == ENOTCONN ? SPRIG_STATUS_FAILED_PRECONDITION
                                 : sprig_os_status_from_errno(errno);
    }
    sprig_from_sockaddr(&a, out);
    return SPRIG_STATUS_OK;
}

static const sprig_sock_ops msg_ops = {
    .name = "os",
    .send = msg_send,
    .send_iov = msg_send_iov,
    .send_buf = msg_send_buf,
    .recv = msg_recv,
    .accept = os_accept,
    .shutdown = os_shutdown,
    .close = os_close,
    .addr = sock_addr,
};

static const sprig_sock_ops stream_ops = {
    .name = "os",
    .send = stream_send,
    .send_iov = stream_send_iov,
    .send_buf = stream_send_buf,
    .recv = stream_recv,
    .accept = os_accept,
    .shutdown = os_shutdown,
    .close = os_close,
    .addr = sock_addr,
};

/* ---- dial ------------------------------------------------------------------------------ */

static bool carries(uint8_t kind, sprig_sock_type type)
{
    switch (kind) {
    case KIND_UNIX:
        return type == SPRIG_SOCK_SEQPACKET;
    case KIND_TCP:
        return type == SPRIG_SOCK_SEQPACKET || type == SPRIG_SOCK_STREAM;
    default:
        return type == SPRIG_SOCK_DGRAM;
    }
}

static uint8_t kind_of(const sprig_url *url)
{
    switch (url->scheme) {
    case SPRIG_URL_UNIX:
        return KIND_UNIX;
    case SPRIG_URL_TCP:
        return KIND_TCP;
    default:
        return KIND_UDP;
    }
}

static sprig_status plan_for(const sprig_url *url, uint8_t kind, bool passive, connect_plan *plan)
{
    if (kind == KIND_UNIX) {
        plan->count = 1;
        plan->next = 0;
        return unix_sockaddr(url, &plan->addrs[0]);
    }
    return resolve(url, socktype_of(kind), passive, plan);
}

/* The socket is CONNECTING at once; CONNECTED or CLOSED follows from the loop, including for
 * a refused TCP connect, a unix path that does not exist, or a name with no usable address. */
static sprig_status os_dial(sprig_backend *bk, const sprig_url *url, sprig_sock_type type,
                            sprig_sock **out)
{
    sprig_os_backend *b = (sprig_os_backend *)(void *)bk;
    uint8_t kind = kind_of(url);
    if (!carries(kind, type)) {
        return SPRIG_STATUS_UNIMPLEMENTED;
    }
    connect_plan *plan = malloc(sizeof *plan);
    if (plan == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    sprig_status st = plan_for(url, kind, false, plan);
    sprig_sock_type inner_type = kind == KIND_TCP ? SPRIG_SOCK_STREAM : type;
    os_sock *s =
        st == SPRIG_STATUS_OK ? new_sock(b, kind, inner_type, SPRIG_SOCK_STATE_CONNECTING) : NULL;
    if (s == NULL) {
        free(plan);
        return st != SPRIG_STATUS_OK ? st : SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    s->plan = plan;
    sprig_sock *face = &s->sock;
    /* Framed before connecting, so even a failure at once reaches the user as CLOSED. */
    if (type != inner_type && (st = wrap(s, &face)) != SPRIG_STATUS_OK) {
        return st;
    }
    connect_next(s, EHOSTUNREACH);
    *out = face;
    return SPRIG_STATUS_OK;
}

/* ---- listen ---------------------------------------------------------------------------- */

/* Is the file at `a` a unix socket nobody has bound any more (left by a dead process)? A
 * datagram probe asks without side effects: connecting it to a live SEQPACKET socket fails with
 * EPROTOTYPE, where a SEQPACKET probe would leave a connection in a live listener's queue. */
static bool stale_unix_file(const sockaddr_any *a)
{
    struct stat st;
    if (lstat(a->u.un.sun_path, &st) != 0) {
        return errno == ENOENT; /* gone meanwhile: just bind again */
    }
    if (!S_ISSOCK(st.st_mode)) {
        return false; /* never remove what is not a socket */
    }
    int probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (probe < 0) {
        return false;
    }
    bool stale = connect(probe, &a->u.sa, a->len) != 0 && errno == ECONNREFUSED;
    (void)close(probe);
    return stale;
}

static sprig_status bind_unix(os_sock *s, int fd, const sockaddr_any *a)
{
    if (bind(fd, &a->u.sa, a->len) != 0) {
        if (errno != EADDRINUSE) {
            return sprig_os_status_from_errno(errno);
        }
        if (!stale_unix_file(a)) {
            return SPRIG_STATUS_ALREADY_EXISTS;
        }
        if (unlink(a->u.un.sun_path) != 0 && errno != ENOENT) {
            return sprig_os_status_from_errno(errno);
        }
        if (bind(fd, &a->u.sa, a->len) != 0) {
            return sprig_os_status_from_errno(errno); /* EADDRINUSE: someone was quicker */
        }
    }
    struct stat st;
    s->unix_path = strdup(a->u.un.sun_path);
    if (s->unix_path == NULL || lstat(s->unix_path, &st) != 0) {
        (void)unlink(a->u.un.sun_path);
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    s->path_dev = st.st_dev;
    s->path_ino = st.st_ino;
    return SPRIG_STATUS_OK;
}

/* Bind (and for connection types listen) on one address. */
static sprig_status bind_one(os_sock *s, int fd, const sockaddr_any *a)
{
    int backlog = s->b->cfg.backlog;
    if (s->kind == KIND_UNIX) {
        sprig_status st = bind_unix(s, fd, a);
        if (st != SPRIG_STATUS_OK) {
            return st;
        }
    } else {
        int one = 1;
        /* TCP: a restarted server must not wait out TIME_WAIT of its old connections. */
        if (s->kind == KIND_TCP) {
            (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        }
        if (bind(fd, &a->u.sa, a->len) != 0) {
            return sprig_os_status_from_errno(errno);
        }
    }
    if (s->kind != KIND_UDP && listen(fd, backlog) != 0) {
        return sprig_os_status_from_errno(errno);
    }
    return SPRIG_STATUS_OK;
}

/* The first address that binds wins; the first error is the most telling one. */
static sprig_status bind_plan(os_sock *s, const connect_plan *plan)
{
    sprig_status first = SPRIG_STATUS_NOT_FOUND;
    for (size_t i = 0; i < plan->count; i++) {
        int family = plan->addrs[i].u.sa.sa_family;
        int fd = open_socket(family, s->kind);
        sprig_status st =
            fd >= 0 ? bind_one(s, fd, &plan->addrs[i]) : sprig_os_status_from_errno(errno);
        if (st == SPRIG_STATUS_OK) {
            int err = attach_fd(s, fd, family);
            return err == 0 ? SPRIG_STATUS_OK : sprig_os_status_from_errno(err);
        }
        if (fd >= 0) {
            (void)close(fd);
        }
        if (i == 0) {
            first = st;
        }
    }
    return first;
}

static sprig_status os_listen(sprig_backend *bk, const sprig_url *url, sprig_sock_type type,
                              sprig_sock **out)
{
    sprig_os_backend *b = (sprig_os_backend *)(void *)bk;
    uint8_t kind = kind_of(url);
    if (!carries(kind, type)) {
        return SPRIG_STATUS_UNIMPLEMENTED;
    }
    connect_plan plan;
    sprig_status st = plan_for(url, kind, true, &plan);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    sprig_sock_state state = kind == KIND_UDP ? SPRIG_SOCK_STATE_OPEN : SPRIG_SOCK_STATE_LISTENING;
    os_sock *s = new_sock(b, kind, type, state);
    if (s == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    s->framed_listener = kind == KIND_TCP && type == SPRIG_SOCK_SEQPACKET;
    st = bind_plan(s, &plan);
    if (st != SPRIG_STATUS_OK) {
        sprig_sock_close(&s->sock);
        return st;
    }
    *out = &s->sock;
    return SPRIG_STATUS_OK;
}

/* ---- the backend ----------------------------------------------------------------------- */

static bool os_handles(const sprig_backend *bk, const sprig_url *url)
{
    (void)bk;
    return url->scheme == SPRIG_URL_UNIX || url->scheme == SPRIG_URL_TCP ||
           url->scheme == SPRIG_URL_UDP;
}

static sprig_status alloc_pool(sprig_os_backend *b)
{
    size_t align =
        SPRIG_CONFIG_BUF_ALIGN < sizeof(void *) ? sizeof(void *) : (size_t)SPRIG_CONFIG_BUF_ALIGN;
    size_t size =
        round_up(b->cfg.max_message_size + SPRIG_CONFIG_SOCK_HEADROOM, SPRIG_CONFIG_BUF_ALIGN);
    size_t count = b->cfg.tx_pool_bufs;
    void *mem = NULL;
    if (count > SIZE_MAX / size) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    b->pool_bufs = calloc(count, sizeof *b->pool_bufs);
    if (b->pool_bufs == NULL || posix_memalign(&mem, align, count * size) != 0) {
        free(b->pool_bufs);
        b->pool_bufs = NULL;
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    b->pool_mem = mem;
    sprig_status st = sprig_buf_pool_init(&b->pool, b->pool_bufs, b->pool_mem, count, size);
    if (st != SPRIG_STATUS_OK) {
        free(b->pool_mem);
        free(b->pool_bufs);
        b->pool_mem = NULL;
        b->pool_bufs = NULL;
    }
    return st;
}

sprig_status sprig_os_backend_init(sprig_os_backend *b, sprig_os_loop *ol,
                                   const sprig_os_backend_cfg *cfg)
{
    if (b == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(b, 0, sizeof *b);
    if (ol == NULL || !ol->ready) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (cfg != NULL) {
        b->cfg = *cfg;
    }
    if (b->cfg.max_message_size == 0) {
        b->cfg.max_message_size = SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE;
    }
    if (b->cfg.tx_pool_bufs == 0) {
        b->cfg.tx_pool_bufs = DEFAULT_POOL_BUFS;
    }
    if (b->cfg.backlog <= 0) {
        b->cfg.backlog = DEFAULT_BACKLOG;
    }
    if (b->cfg.max_message_size > MAX_MESSAGE_LIMIT) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    sprig_status st = alloc_pool(b);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    b->backend.name = "os";
    b->backend.handles = os_handles;
    b->backend.dial = os_dial;
    b->backend.listen = os_listen;
    b->ol = ol;
    sprig_loop_add_backend(&ol->loop, &b->backend);
    return SPRIG_STATUS_OK;
}

void sprig_os_backend_deinit(sprig_os_backend *b)
{
    if (b == NULL || b->ol == NULL) {
        return;
    }
    sprig_loop_remove_backend(&b->ol->loop, &b->backend);
    sprig_buf_pool_deinit(&b->pool);
    free(b->pool_mem);
    free(b->pool_bufs);
    memset(b, 0, sizeof *b);
}

size_t sprig_os_backend_open_count(const sprig_os_backend *b)
{
    return b != NULL ? b->open : 0;
}

void sprig_os_bound_url(const char *url, const sprig_sock *listener, char *out, size_t cap)
{
    sprig_url u;
    sprig_addr a;
    char addr[SPRIG_ADDR_STR_MAX];
    if (cap == 0) {
        return;
    }
    if (sprig_url_parse(url, &u) == SPRIG_STATUS_OK && u.host.ptr != NULL &&
        u.scheme != SPRIG_URL_SPRIG && sprig_sock_local_addr(listener, &a) == SPRIG_STATUS_OK &&
        sprig_addr_format(&a, addr, sizeof(addr)) == SPRIG_STATUS_OK) {
        snprintf(out, cap, "%.*s://%s", (int)u.scheme_name.len, u.scheme_name.ptr, addr);
    } else {
        snprintf(out, cap, "%s", url);
    }
}
