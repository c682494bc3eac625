/*
 * sprig-bench-transfer — bulk throughput of the transfer engine (sprig/transfer.h) between two
 * processes, beside a raw socket copy of the same bytes measured in the same run.
 *
 * For each transport (unix SOCK_SEQPACKET; TCP loopback, sprig framing) and each implementation:
 * the parent forks a receiving server, connects to it and sends the payload (100 MB; --quick: 8 MB)
 * from memory; the child receives it into memory. The clock runs from the first byte offered to the
 * proof that the receiver has everything: raw:   blocking send of 64 KiB messages (TCP: a 4-byte
 * big-endian length prefix by hand); the receiver answers one byte once it has the last byte.
 *   sprig: sprig_transfer_write of an in-memory resource (sprig_transfer_mem_handler) to the
 *          child's node, whose handler writes into memory; the done callback (the receiver's
 *          COMPLETION, sent after the engine's own end-to-end CRC-32 check) stops the clock.
 * The receiver then compares what it got with the payload (outside the clock) and exits 0 only
 * if every byte is equal; a run whose receiver exits otherwise counts as failed.
 * No disk I/O is measured. Runs alternate raw and sprig; each figure is the median of the runs.
 *
 * DGRAM rows: the same write over UDP loopback, the child serving on a bound socket
 * (udp://127.0.0.1:0), the parent dialing it; both ends' sockets are wrapped by the fault
 * wrapper (sprig/fault.h), which drops the given share of the datagrams each end sends (0% and
 * 5%). There is no raw row: a raw UDP copy would not be reliable. The loss rows use
 * DGRAM_TIMEOUT as the chunk timeout (loopback round trips are microseconds; the engine's
 * DGRAM default of 500 ms is for real networks) and DGRAM_CHUNK bytes per datagram.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_common.h"
#include "sprig/fault.h"
#include "sprig/os.h"
#include "sprig/sock.h"
#include "sprig/transfer.h"
#include "sprig/url.h"

#define PROG        "sprig-bench-transfer"
#define MB          1000000u
#define FULL_BYTES  (100u * MB)
#define QUICK_BYTES (8u * MB)
#define RAW_MSG     65536u
#define RESOURCE_ID 1u
#define LOCAL_ID    1u
#define SESSIONS    2u
/* The receive window given to both nodes. The engine's default is 4 chunks (256 KiB at 64 KiB
 * messages). With both ends on one CPU a bigger window only adds bytes in flight: over TCP,
 * whose send buffer grows to take them, 32 chunks (2 MiB, more than a core's L2) measured
 * 0.77 of raw against 0.93-1.0 with 8 or 16; unix SEQPACKET's send buffer holds about three
 * messages whatever the window, and its figures moved little (0.61-0.72). */
#define WINDOW_CHUNKS 16u
#define MAX_REPEAT    9u
#define DIAL_TIMEOUT  SPRIG_TIME_S(10)
#define DGRAM_TIMEOUT SPRIG_TIME_MS(20)
#define DGRAM_CHUNK                                                                                \
    8192u /* data bytes per datagram: keeps a window's burst within the                            \
             kernel's default UDP receive buffer */

typedef struct opts {
    size_t bytes;
    unsigned repeat;
    unsigned window; /* window_chunks given to both nodes */
    bool pin;
    size_t dgram_bytes; /* payload of the DGRAM rows */
    uint16_t drop_pm;   /* DGRAM rows: the loss of the run in progress */
    int only;           /* -1: both implementations, else the bench_impl to run alone (profiling) */
    int transport;      /* -1: both transports, else the bench_transport to run alone */
} opts;

static char g_dir[] = "/tmp/sprig-bench-transfer-XXXXXX";
static uint8_t *g_src;               /* the payload (sender) */
static uint8_t *g_dst;               /* the receiver's memory (child) */
static uint32_t g_chunk;             /* the engine's data bytes per chunk, as the sender saw it */
static volatile uint32_t g_crc_sink; /* keeps the timed CRC computations */

static void err(const char *what, const char *detail)
{
    fprintf(stderr, "%s: %s: %s\n", PROG, what, detail);
}

static void err_errno(const char *what)
{
    err(what, strerror(errno));
}

static void err_st(const char *what, sprig_status st)
{
    err(what, sprig_status_str(st));
}

/* "WHO: STEP: STATUS" */
static void err_step(const char *who, const char *step, sprig_status st)
{
    char what[64];
    snprintf(what, sizeof(what), "%s: %s", who, step);
    err_st(what, st);
}

static void unix_path(bench_impl im, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s.sock", g_dir, im == BENCH_RAW ? "raw" : "sprig");
}

/* Bytes of a xorshift generator: not compressible, not a repeating block. */
static void fill_payload(uint8_t *p, size_t n)
{
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < n; i++) {
        if ((i & 7u) == 0) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        p[i] = (uint8_t)(x >> ((i & 7u) * 8u));
    }
}

/* ---- raw sockets ------------------------------------------------------------------------- */

static bool write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* 1: all len bytes, 0: orderly end before any, -1: error or a cut message. */
static int read_full(int fd, uint8_t *p, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, p + got, len - got);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        if (n == 0) {
            return got == 0 ? 0 : -1;
        }
        got += (size_t)n;
    }
    return 1;
}

static void set_nodelay(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Child: listen, report the port (0 for unix), accept one connection. -1 on failure. */
static int raw_listen_accept(bench_transport t, int ready_fd)
{
    uint16_t port = 0;
    int l;
    if (t == BENCH_UNIX) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        unix_path(BENCH_RAW, a.sun_path, sizeof(a.sun_path));
        (void)unlink(a.sun_path);
        l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 1) != 0) {
            err_errno("raw server: listen");
            return -1;
        }
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t alen = sizeof(a);
        l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 1) != 0 ||
            getsockname(l, (struct sockaddr *)&a, &alen) != 0) {
            err_errno("raw server: listen");
            return -1;
        }
        port = ntohs(a.sin_port);
    }
    if (write(ready_fd, &port, sizeof(port)) != (ssize_t)sizeof(port)) {
        err_errno("raw server: ready pipe");
        return -1;
    }
    close(ready_fd);
    int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        err_errno("raw server: accept");
    } else if (t == BENCH_TCP) {
        set_nodelay(fd);
    }
    close(l);
    return fd;
}

/* Child: receive the payload, answer one byte. Exit status: 0 if the bytes are the payload. */
static int raw_server(bench_transport t, size_t total, int ready_fd)
{
    int fd = raw_listen_accept(t, ready_fd);
    if (fd < 0) {
        return 1;
    }
    size_t off = 0;
    while (off < total) {
        size_t len;
        if (t == BENCH_UNIX) {
            ssize_t n = recv(fd, g_dst + off, total - off, 0);
            if (n <= 0) {
                err("raw server", n == 0 ? "connection ended early" : strerror(errno));
                return 1;
            }
            len = (size_t)n;
        } else {
            uint8_t h[4];
            if (read_full(fd, h, sizeof(h)) != 1) {
                err("raw server", "connection ended early");
                return 1;
            }
            len = bench_get_be32(h);
            if (len == 0 || len > RAW_MSG || len > total - off ||
                read_full(fd, g_dst + off, len) != 1) {
                err("raw server", "bad frame or connection ended early");
                return 1;
            }
        }
        off += len;
    }
    uint8_t ack = 1;
    bool sent = t == BENCH_UNIX ? send(fd, &ack, 1, 0) == 1 : write_all(fd, &ack, 1);
    close(fd);
    if (memcmp(g_dst, g_src, total) != 0) {
        err("raw server", "received bytes differ from the payload");
        return 1;
    }
    return sent ? 0 : 1;
}

/* Parent: send the payload, wait for the receiver's answer. Elapsed ns into *ns. */
static bool raw_client(bench_transport t, uint16_t port, size_t total, uint64_t *ns)
{
    int fd;
    if (t == BENCH_UNIX) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        unix_path(BENCH_RAW, a.sun_path, sizeof(a.sun_path));
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
            err_errno("raw client: connect");
            return false;
        }
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
            err_errno("raw client: connect");
            return false;
        }
        set_nodelay(fd);
    }
    uint64_t t0 = bench_now_ns();
    bool ok = true;
    for (size_t off = 0; ok && off < total;) {
        size_t len = total - off < RAW_MSG ? total - off : RAW_MSG;
        if (t == BENCH_UNIX) {
            ssize_t n = send(fd, g_src + off, len, 0);
            ok = n == (ssize_t)len;
        } else {
            uint8_t h[4];
            bench_put_be32(h, (uint32_t)len);
            struct iovec iov[2] = {{h, sizeof(h)}, {g_src + off, len}};
            ssize_t n = writev(fd, iov, 2);
            ok = n >= 0;
            if (ok && (size_t)n < sizeof(h) + len) { /* a short write: finish by hand */
                size_t done = (size_t)n;
                ok = (done >= sizeof(h) || write_all(fd, h + done, sizeof(h) - done)) &&
                     write_all(fd, g_src + off + (done > sizeof(h) ? done - sizeof(h) : 0),
                               len - (done > sizeof(h) ? done - sizeof(h) : 0));
            }
        }
        off += len;
    }
    uint8_t ack = 0;
    ok = ok && (t == BENCH_UNIX ? recv(fd, &ack, 1, 0) == 1 : read_full(fd, &ack, 1) == 1);
    *ns = bench_now_ns() - t0;
    if (!ok || ack != 1) {
        err_errno("raw client: send or wait for the receiver");
        ok = false;
    }
    close(fd);
    return ok;
}

/* ---- sprig: the transfer engine ---------------------------------------------------------- */

typedef struct xfer_end {
    bench_env e;
    sprig_transfer_node node;
    sprig_transfer_session sessions[SESSIONS];
    sprig_transfer_mem_resource res;
    sprig_transfer_mem_handler mh;
    uint8_t *rx;
    bool node_ready;
    bool done;
    sprig_status status;
    sprig_fault_sock fault; /* DGRAM rows: the lossy face of the socket */
} xfer_end;

static void on_done(sprig_transfer_node *node, uint32_t session_id, sprig_status status, void *user)
{
    (void)node;
    (void)session_id;
    xfer_end *x = user;
    x->done = true;
    x->status = status;
}

/* Give the connected socket to a node serving (or sending from) x->res. */
static bool xfer_node_init(xfer_end *x, sprig_sock *sock, const opts *o, bool server)
{
    size_t mtu = sprig_sock_max_message_size(sock);
    x->rx = malloc(mtu > 0 ? mtu : 1);
    if (x->rx == NULL) {
        sprig_sock_close(sock);
        err("sprig", "out of memory");
        return false;
    }
    sprig_transfer_mem_handler_init(&x->mh, &x->res, 1);
    sprig_transfer_cfg cfg = {
        .loop = &x->e.ol.loop,
        .sock = sock,
        .sessions = x->sessions,
        .max_sessions = SESSIONS,
        .rx_buf = x->rx,
        .rx_cap = mtu,
        .handler = server ? &x->mh.handler : NULL,
        .on_done = on_done,
        .user = x,
        .window_chunks = o->window,
        .first_session_id = server ? 0x40000000u : 1u,
    };
    if (sprig_sock_type_of(sock) == SPRIG_SOCK_DGRAM) {
        sprig_fault_cfg fc = {.seed = server ? 7u : 11u, .drop_pm = o->drop_pm};
        sprig_status fst = sprig_fault_init(&x->fault, sock, &fc, NULL);
        if (fst != SPRIG_STATUS_OK) {
            sprig_sock_close(sock);
            err_st("sprig: fault wrapper", fst);
            return false;
        }
        cfg.sock = &x->fault.sock;
        cfg.chunk_timeout = DGRAM_TIMEOUT;
        cfg.max_chunk = DGRAM_CHUNK;
    }
    sprig_status st = sprig_transfer_init(&x->node, &cfg);
    if (st != SPRIG_STATUS_OK) {
        sprig_sock_close(cfg.sock);
        err_st("sprig: transfer init", st);
        return false;
    }
    x->node_ready = true;
    return true;
}

static void xfer_end_deinit(xfer_end *x)
{
    if (x->node_ready) {
        sprig_transfer_deinit(&x->node);
    }
    free(x->rx);
    bench_env_deinit(&x->e);
}

/* Child: receive resource RESOURCE_ID into memory. Exit status 0 if it is the payload. */
static int sprig_server(bench_transport t, const opts *o, int ready_fd)
{
    static xfer_end x;
    uint16_t port = 0;
    char url[200];
    sprig_sock *l = NULL;
    sprig_sock *sock = NULL;
    int rc = 1;
    sprig_status st = bench_env_init(&x.e);
    if (st != SPRIG_STATUS_OK) {
        err_st("sprig server: loop", st);
        goto out;
    }
    if (t == BENCH_UNIX) {
        char path[150];
        unix_path(BENCH_SPRIG, path, sizeof(path));
        (void)unlink(path);
        snprintf(url, sizeof(url), "unix:%s", path);
    } else {
        snprintf(url, sizeof(url), "tcp://127.0.0.1:0");
    }
    st = sprig_sock_listen(&x.e.ol.loop, url, SPRIG_SOCK_SEQPACKET, &l);
    if (st != SPRIG_STATUS_OK) {
        err_st("sprig server: listen", st);
        goto out;
    }
    if (t == BENCH_TCP) {
        sprig_addr a;
        st = sprig_sock_local_addr(l, &a);
        if (st != SPRIG_STATUS_OK) {
            err_st("sprig server: local address", st);
            goto out;
        }
        port = a.port;
    }
    if (write(ready_fd, &port, sizeof(port)) != (ssize_t)sizeof(port)) {
        err_errno("sprig server: ready pipe");
        goto out;
    }
    close(ready_fd);
    st = sprig_sock_accept_wait(l, DIAL_TIMEOUT, &sock);
    if (st != SPRIG_STATUS_OK) {
        err_st("sprig server: accept", st);
        goto out;
    }
    x.res = (sprig_transfer_mem_resource){
        .id = RESOURCE_ID, .data = g_dst, .cap = o->bytes, .access = SPRIG_TRANSFER_ACCESS_WRITE};
    if (!xfer_node_init(&x, sock, o, true)) {
        goto out;
    }
    while (!x.done) {
        st = sprig_loop_run_once(&x.e.ol.loop, SPRIG_TIME_NEVER);
        if (st != SPRIG_STATUS_OK) {
            err_st("sprig server: loop", st);
            goto out;
        }
    }
    if (x.status != SPRIG_STATUS_OK) {
        err_st("sprig server: transfer", x.status);
    } else if (x.res.len != o->bytes || memcmp(g_dst, g_src, o->bytes) != 0) {
        err("sprig server", "received bytes differ from the payload (length or content)");
    } else {
        rc = 0;
    }
out:
    if (l != NULL) {
        sprig_sock_close(l);
    }
    xfer_end_deinit(&x);
    return rc;
}

/* Parent, either transport: dial `url` as `type`, write `bytes` of the payload to the child's
 * resource (elapsed ns into *ns), then keep the loop turning (the last acknowledgement may still
 * be queued) until the child has checked the bytes and exited. `who` prefixes the messages. x is
 * left for the caller to read its stats, then deinitialised by it. */
static bool client_write(xfer_end *x, const char *url, sprig_sock_type type, size_t bytes,
                         const opts *o, const char *who, pid_t child, int *child_status,
                         uint64_t *ns)
{
    sprig_sock *sock;
    bool ok = false;
    bool reaped = false;
    sprig_status st = bench_env_init(&x->e);
    if (st != SPRIG_STATUS_OK) {
        err_step(who, "loop", st);
        goto out;
    }
    st = sprig_sock_dial_wait(&x->e.ol.loop, url, type, DIAL_TIMEOUT, &sock);
    if (st != SPRIG_STATUS_OK) {
        err_step(who, "connect", st);
        goto out;
    }
    x->res = (sprig_transfer_mem_resource){.id = LOCAL_ID,
                                           .data = g_src,
                                           .cap = bytes,
                                           .len = bytes,
                                           .access = SPRIG_TRANSFER_ACCESS_READ};
    if (!xfer_node_init(x, sock, o, false)) {
        goto out;
    }
    g_chunk = x->node.max_chunk;
    sprig_transfer_opts to = {
        .resource_id = RESOURCE_ID,
        .local = &x->mh.handler,
        .local_id = LOCAL_ID,
        .done = on_done,
        .user = x,
    };
    uint32_t sid;
    uint64_t t0 = bench_now_ns();
    st = sprig_transfer_write(&x->node, &to, &sid);
    if (st != SPRIG_STATUS_OK) {
        err_step(who, "start", st);
        goto out;
    }
    while (!x->done) {
        st = sprig_loop_run_once(&x->e.ol.loop, SPRIG_TIME_NEVER);
        if (st != SPRIG_STATUS_OK) {
            err_step(who, "loop", st);
            goto out;
        }
    }
    *ns = bench_now_ns() - t0;
    if (x->status != SPRIG_STATUS_OK) {
        err_step(who, "transfer", x->status);
        goto out;
    }
    ok = true;
    for (unsigned i = 0; i < 3000 && !reaped; i++) {
        (void)sprig_loop_run_once(&x->e.ol.loop, SPRIG_TIME_MS(5));
        reaped = waitpid(child, child_status, WNOHANG) == child;
    }
out:
    if (!reaped && waitpid(child, child_status, 0) != child) {
        *child_status = -1;
    }
    return ok;
}

/* Parent: write the payload to the child's resource. Elapsed ns into *ns. */
static bool sprig_client(bench_transport t, uint16_t port, const opts *o, pid_t child,
                         int *child_status, uint64_t *ns)
{
    static xfer_end x;
    memset(&x, 0, sizeof(x));
    char url[200];
    if (t == BENCH_UNIX) {
        char path[150];
        unix_path(BENCH_SPRIG, path, sizeof(path));
        snprintf(url, sizeof(url), "unix:%s", path);
    } else {
        snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", port);
    }
    bool ok = client_write(&x, url, SPRIG_SOCK_SEQPACKET, o->bytes, o, "sprig client", child,
                           child_status, ns);
    xfer_end_deinit(&x);
    return ok;
}

/* ---- sprig over UDP (DGRAM) ---------------------------------------------------------------- */

/* Child: serve on a bound UDP socket, receive the resource. Exit status 0 if it is the payload. */
static int dgram_server(const opts *o, int ready_fd)
{
    static xfer_end x;
    sprig_sock *l = NULL;
    int rc = 1;
    sprig_status st = bench_env_init(&x.e);
    if (st != SPRIG_STATUS_OK) {
        err_st("dgram server: loop", st);
        goto out;
    }
    st = sprig_sock_listen(&x.e.ol.loop, "udp://127.0.0.1:0", SPRIG_SOCK_DGRAM, &l);
    sprig_addr a;
    if (st != SPRIG_STATUS_OK || (st = sprig_sock_local_addr(l, &a)) != SPRIG_STATUS_OK) {
        err_st("dgram server: bind", st);
        goto out;
    }
    x.res = (sprig_transfer_mem_resource){.id = RESOURCE_ID,
                                          .data = g_dst,
                                          .cap = o->dgram_bytes,
                                          .access = SPRIG_TRANSFER_ACCESS_WRITE};
    sprig_sock *bound = l;
    l = NULL; /* the node owns it now */
    if (!xfer_node_init(&x, bound, o, true)) {
        goto out;
    }
    if (write(ready_fd, &a.port, sizeof(a.port)) != (ssize_t)sizeof(a.port)) {
        err_errno("dgram server: ready pipe");
        goto out;
    }
    close(ready_fd);
    while (!x.done) {
        st = sprig_loop_run_once(&x.e.ol.loop, SPRIG_TIME_NEVER);
        if (st != SPRIG_STATUS_OK) {
            err_st("dgram server: loop", st);
            goto out;
        }
    }
    if (x.status != SPRIG_STATUS_OK) {
        err_st("dgram server: transfer", x.status);
    } else if (x.res.len != o->dgram_bytes || memcmp(g_dst, g_src, o->dgram_bytes) != 0) {
        err("dgram server", "received bytes differ from the payload (length or content)");
    } else {
        rc = 0;
    }
    /* answer re-sent COMPLETIONs for a while: the client may have lost our acknowledgement */
    for (unsigned i = 0; i < 20; i++) {
        (void)sprig_loop_run_once(&x.e.ol.loop, SPRIG_TIME_MS(10));
    }
out:
    if (l != NULL) {
        sprig_sock_close(l);
    }
    xfer_end_deinit(&x);
    return rc;
}

typedef struct dgram_result {
    double mbs;
    uint32_t retransmits; /* both ends' chunk timeouts that re-sent something: client's only */
    uint32_t dropped;     /* datagrams the client's fault wrapper dropped */
} dgram_result;

/* Parent: write the payload to the child over UDP. */
static bool dgram_client(uint16_t port, const opts *o, pid_t child, int *child_status,
                         dgram_result *res)
{
    static xfer_end x;
    memset(&x, 0, sizeof(x));
    char url[64];
    snprintf(url, sizeof(url), "udp://127.0.0.1:%u", port);
    uint64_t ns = 0;
    bool ok = client_write(&x, url, SPRIG_SOCK_DGRAM, o->dgram_bytes, o, "dgram client", child,
                           child_status, &ns);
    if (ok) {
        res->mbs = (double)o->dgram_bytes / ((double)ns / 1e9) / 1e6;
        res->retransmits = x.node.stats.retransmits;
        res->dropped = x.fault.stats.dropped;
    }
    xfer_end_deinit(&x);
    return ok;
}

/* One DGRAM run at o->drop_pm; false if it failed. */
static bool dgram_once(const opts *o, dgram_result *res)
{
    int p[2];
    if (pipe(p) != 0) {
        err_errno("pipe");
        return false;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        err_errno("fork");
        close(p[0]);
        close(p[1]);
        return false;
    }
    if (pid == 0) {
        close(p[0]);
        alarm(300);
        _exit(dgram_server(o, p[1]));
    }
    close(p[1]);
    uint16_t port = 0;
    bool ok = read(p[0], &port, sizeof(port)) == (ssize_t)sizeof(port);
    close(p[0]);
    int status = 0;
    if (!ok) {
        err("dgram server", "did not start");
        (void)waitpid(pid, &status, 0);
        return false;
    }
    ok = dgram_client(port, o, pid, &status, res);
    if (status != 0) {
        fprintf(stderr, "%s: udp sprig receiver failed its check (status 0x%x)\n", PROG,
                (unsigned)status);
        ok = false;
    }
    return ok;
}

/* ---- one run ------------------------------------------------------------------------------ */

/* Fork the receiver, send to it; the MB/s, or a negative value if the run failed. */
static double run_once(bench_transport t, bench_impl im, const opts *o)
{
    int p[2];
    if (pipe(p) != 0) {
        err_errno("pipe");
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        err_errno("fork");
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        close(p[0]);
        alarm(120); /* a wedged run must not hang the bench */
        /* Write every page of the receiver's memory before the clock starts: after fork they
         * are copy-on-write (or not there at all: malloc + memset may become calloc), and page
         * faults in the timed part would charge both implementations for the kernel's memory
         * management, not the transfer. */
        memset(g_dst, 0xa5, o->bytes);
        int rc = im == BENCH_RAW ? raw_server(t, o->bytes, p[1]) : sprig_server(t, o, p[1]);
        _exit(rc);
    }
    close(p[1]);
    uint16_t port = 0;
    bool ok = read(p[0], &port, sizeof(port)) == (ssize_t)sizeof(port);
    close(p[0]);
    uint64_t ns = 0;
    int status = 0;
    if (!ok) {
        err("server", "did not start");
        (void)waitpid(pid, &status, 0);
        return -1;
    }
    if (im == BENCH_RAW) {
        ok = raw_client(t, port, o->bytes, &ns);
        if (waitpid(pid, &status, 0) != pid) {
            status = -1;
        }
    } else {
        ok = sprig_client(t, port, o, pid, &status, &ns);
    }
    if (status != 0) {
        fprintf(stderr, "%s: %s %s receiver failed its check (status 0x%x)\n", PROG,
                bench_transport_name[t], im == BENCH_RAW ? "raw" : "sprig", (unsigned)status);
        ok = false;
    }
    return ok && ns > 0 ? (double)o->bytes / ((double)ns / 1e9) / 1e6 : -1;
}

/* MB/s of CRC-32 variant `impl` over the payload (from memory, as the file or memory a sender
 * reads) and over one engine-sized chunk again and again (cache-hot, as the engine runs it on the
 * chunk it just read or received), the same byte count. false if this build or CPU lacks it. */
static bool crc_speed(int impl, const opts *o, double *cold, double *hot)
{
    uint32_t crc = 0;
    uint64_t t0 = bench_now_ns();
    if (!sprig__transfer_crc32_impl(impl, &crc, g_src, o->bytes)) {
        return false;
    }
    uint64_t t1 = bench_now_ns();
    size_t step = RAW_MSG - SPRIG_TRANSFER_DATA_OVERHEAD;
    for (size_t done = 0; done < o->bytes; done += step) {
        (void)sprig__transfer_crc32_impl(impl, &crc, g_src, step);
    }
    uint64_t t2 = bench_now_ns();
    g_crc_sink = crc;
    *cold = (double)o->bytes / ((double)(t1 - t0) / 1e9) / 1e6;
    *hot = (double)o->bytes / ((double)(t2 - t1) / 1e9) / 1e6;
    return true;
}

/* Print the CRC-32 variants' speeds; the MB/s of sprig_transfer_crc32 over the payload. */
static double crc_report(const opts *o)
{
    static const struct {
        int impl;
        const char *name;
    } v[] = {
        {SPRIG_TRANSFER_CRC32_SMALL, "small (16-entry table)"},
        {SPRIG_TRANSFER_CRC32_TABLE, "table (256 entries)"},
        {SPRIG_TRANSFER_CRC32_SLICE8, "slice8 (slicing-by-8)"},
        {SPRIG__TRANSFER_CRC32_CLMUL, "clmul (PCLMULQDQ, 128-bit)"},
        {SPRIG__TRANSFER_CRC32_VCLMUL, "vclmul (VPCLMULQDQ, AVX-512)"},
    };
    static const char *const cfg_name[] = {"?", "small", "table", "slice8"};
    printf(
        "CRC-32 variants (MB/s, one CPU; build: SPRIG_CONFIG_TRANSFER_CRC32 = %s, folding %s):\n",
        cfg_name[SPRIG_CONFIG_TRANSFER_CRC32], SPRIG_CONFIG_TRANSFER_CRC32_CLMUL ? "on" : "off");
    printf("  %-30s %10s %12s\n", "variant", "payload", "64 KiB hot");
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        double cold;
        double hot;
        if (crc_speed(v[i].impl, o, &cold, &hot)) {
            printf("  %-30s %10.0f %12.0f\n", v[i].name, cold, hot);
        } else {
            printf("  %-30s %10s %12s\n", v[i].name, "n/a", "n/a");
        }
    }
    uint64_t t0 = bench_now_ns();
    g_crc_sink = sprig_transfer_crc32(0, g_src, o->bytes);
    double rate = (double)o->bytes / ((double)(bench_now_ns() - t0) / 1e9) / 1e6;
    printf("  %-30s %10.0f\n", "sprig_transfer_crc32 (in use)", rate);
    return rate;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s [--quick] [--repeat N] [--window N] [--no-pin] [--no-dgram]\n"
            "       [--only raw|sprig] [--transport unix|tcp]\n"
            "  A %u MB transfer (--quick: %u MB) through the transfer engine over unix\n"
            "  SEQPACKET and TCP loopback (sprig framing), beside a raw socket copy of the same\n"
            "  bytes (64 KiB messages; TCP with a 4-byte length prefix) in the same run, between\n"
            "  two processes. The receiver compares every byte.\n"
            "  --repeat N   runs per transport and implementation (1..%u; default 3, --quick 1);\n"
            "               the median is reported\n"
            "  --window N   the receive window in chunks given to both nodes (1..255; default\n"
            "               %u; the engine's own default is 4)\n"
            "  --no-pin     do not pin both processes to one CPU\n"
            "  --no-dgram   skip the DGRAM rows (the same transfer over UDP loopback at 0%% and\n"
            "               5%% loss through the fault wrapper)\n"
            "  --only IMPL  run only raw or only sprig, and skip the CRC-32 variant timings (for\n"
            "               profiling; no ratio)\n"
            "  --transport T  run only over unix or only over tcp\n",
            PROG, FULL_BYTES / MB, QUICK_BYTES / MB, MAX_REPEAT, WINDOW_CHUNKS);
}

static bool parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = s != NULL ? strtoul(s, &end, 10) : 0;
    if (s == NULL || errno != 0 || *end != '\0' || v < lo || v > hi) {
        return false;
    }
    *out = (unsigned)v;
    return true;
}

int main(int argc, char **argv)
{
    opts o = {.bytes = FULL_BYTES,
              .repeat = 0,
              .window = WINDOW_CHUNKS,
              .pin = true,
              .only = -1,
              .transport = -1};
    bool no_dgram = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--quick") == 0) {
            o.bytes = QUICK_BYTES;
        } else if (strcmp(a, "--no-pin") == 0) {
            o.pin = false;
        } else if (strcmp(a, "--no-dgram") == 0) {
            no_dgram = true;
        } else if (strcmp(a, "--transport") == 0) {
            const char *v = ++i < argc ? argv[i] : "";
            if (strcmp(v, "unix") != 0 && strcmp(v, "tcp") != 0) {
                fprintf(stderr, "%s: --transport needs unix or tcp\n", PROG);
                return 2;
            }
            o.transport = strcmp(v, "unix") == 0 ? BENCH_UNIX : BENCH_TCP;
        } else if (strcmp(a, "--only") == 0) {
            const char *v = ++i < argc ? argv[i] : "";
            if (strcmp(v, "raw") != 0 && strcmp(v, "sprig") != 0) {
                fprintf(stderr, "%s: --only needs raw or sprig\n", PROG);
                return 2;
            }
            o.only = strcmp(v, "raw") == 0 ? BENCH_RAW : BENCH_SPRIG;
        } else if (strcmp(a, "--repeat") == 0) {
            if (!parse_uint(++i < argc ? argv[i] : NULL, 1, MAX_REPEAT, &o.repeat)) {
                fprintf(stderr, "%s: --repeat needs a number from 1 to %u\n", PROG, MAX_REPEAT);
                return 2;
            }
        } else if (strcmp(a, "--window") == 0) {
            if (!parse_uint(++i < argc ? argv[i] : NULL, 1, 255, &o.window)) {
                fprintf(stderr, "%s: --window needs a number from 1 to 255\n", PROG);
                return 2;
            }
        } else {
            fprintf(stderr, "%s: unknown argument '%s' (try --help)\n", PROG, a);
            usage(stderr);
            return 2;
        }
    }
    if (o.repeat == 0) {
        o.repeat = o.bytes == QUICK_BYTES ? 1u : 3u;
    }
    o.dgram_bytes = o.bytes;
    signal(SIGPIPE, SIG_IGN);
    g_src = malloc(o.bytes);
    g_dst = malloc(o.bytes);
    if (g_src == NULL || g_dst == NULL) {
        err("payload", "out of memory");
        return 1;
    }
    fill_payload(g_src, o.bytes);
    if (mkdtemp(g_dir) == NULL) {
        err_errno("mkdtemp");
        return 1;
    }

    printf("%s: %zu bytes (%.0f MB) per run, %u run(s) per row, median reported\n", PROG, o.bytes,
           (double)o.bytes / MB, o.repeat);
    bench_pin(&(bench_opts){.pin = o.pin});
    double crc_rate = o.only < 0 ? crc_report(&o) : 0; /* --only: just the transfers */

    double rate[BENCH_TRANSPORTS][BENCH_IMPLS][MAX_REPEAT];
    unsigned runs[BENCH_TRANSPORTS][BENCH_IMPLS] = {{0}};
    uint32_t chunk[BENCH_TRANSPORTS] = {0};
    bool all_ok = true;
    for (unsigned r = 0; r < o.repeat; r++) {
        for (int t = 0; t < BENCH_TRANSPORTS; t++) {
            for (int im = 0; im < BENCH_IMPLS; im++) {
                if ((o.only >= 0 && im != o.only) || (o.transport >= 0 && t != o.transport)) {
                    continue;
                }
                double v = run_once((bench_transport)t, (bench_impl)im, &o);
                if (v < 0) {
                    all_ok = false;
                } else {
                    rate[t][im][runs[t][im]++] = v;
                }
                if (im == BENCH_SPRIG) {
                    chunk[t] = g_chunk;
                }
            }
        }
    }

    printf("sprig engine: window %u chunks given to both nodes (engine default 4; --window to\n"
           "  change), data per chunk = the socket's max_message_size - %u\n",
           o.window, (unsigned)SPRIG_TRANSFER_DATA_OVERHEAD);
    for (int t = 0; t < BENCH_TRANSPORTS; t++) {
        printf("  %-14s data per chunk %u bytes, window %u bytes\n", bench_transport_name[t],
               chunk[t], chunk[t] * o.window);
    }
    if (crc_rate > 0) {
        printf(
            "sprig engine: end-to-end CRC-32 (sprig_transfer_crc32) runs at %.0f MB/s here; the\n"
            "  sender and the receiver each run it over every byte, which alone caps sprig near\n"
            "  %.0f MB/s (%s)\n",
            crc_rate, o.pin ? crc_rate / 2 : crc_rate,
            o.pin ? "both ends share one CPU" : "unpinned: the two ends may run it in parallel");
    }
    printf("\n%-16s %-6s %12s %14s\n", "transport", "impl", "MB/s", "sprig/raw");
    bool met_all = true;
    for (int t = 0; t < BENCH_TRANSPORTS; t++) {
        double med[BENCH_IMPLS] = {0, 0};
        for (int im = 0; im < BENCH_IMPLS; im++) {
            if (runs[t][im] == 0) {
                printf("%-16s %-6s %12s\n", bench_transport_name[t],
                       im == BENCH_RAW ? "raw" : "sprig",
                       (o.only >= 0 && im != o.only) || (o.transport >= 0 && t != o.transport)
                           ? "not run"
                           : "failed");
                continue;
            }
            qsort(rate[t][im], runs[t][im], sizeof(double), cmp_double);
            med[im] = rate[t][im][runs[t][im] / 2];
            if (im == BENCH_RAW) {
                printf("%-16s %-6s %12.1f\n", bench_transport_name[t], "raw", med[im]);
            }
        }
        if (runs[t][BENCH_SPRIG] > 0) {
            if (med[BENCH_RAW] > 0) {
                double ratio = med[BENCH_SPRIG] / med[BENCH_RAW];
                met_all = met_all && ratio >= 0.8;
                printf("%-16s %-6s %12.1f %13.2f  target >= 0.80: %s\n", bench_transport_name[t],
                       "sprig", med[BENCH_SPRIG], ratio, ratio >= 0.8 ? "met" : "NOT met");
            } else {
                printf("%-16s %-6s %12.1f %14s\n", bench_transport_name[t], "sprig",
                       med[BENCH_SPRIG], "-");
                met_all = false;
            }
        } else {
            met_all = false;
        }
    }
    static const uint16_t losses[] = {0, 50};
    bool skip_dgram = no_dgram || o.only >= 0 || o.transport >= 0;
    size_t nlosses = skip_dgram ? 0 : sizeof(losses) / sizeof(losses[0]);
    printf(
        "\nDGRAM (UDP loopback, bound server socket, %zu bytes per run, %u data bytes per\n"
        "  datagram, chunk timeout %u ms, window from 1 chunk, slow start to %u, halved on loss)\n",
        o.dgram_bytes, DGRAM_CHUNK, (unsigned)(DGRAM_TIMEOUT / 1000u), o.window);
    printf("%-16s %-6s %12s %14s %12s\n", "transport", "loss", "MB/s", "timeouts", "dropped");
    for (size_t k = 0; k < nlosses; k++) {
        o.drop_pm = losses[k];
        double v[MAX_REPEAT];
        dgram_result last = {0};
        unsigned n = 0;
        for (unsigned r = 0; r < o.repeat; r++) {
            dgram_result dr = {0};
            if (dgram_once(&o, &dr)) {
                v[n++] = dr.mbs;
                last = dr;
            } else {
                all_ok = false;
            }
        }
        if (n == 0) {
            printf("%-16s %5.1f%% %12s\n", "udp (dgram)", losses[k] / 10.0, "failed");
            continue;
        }
        qsort(v, n, sizeof(double), cmp_double);
        printf("%-16s %5.1f%% %12.1f %14u %12u  (sender side, last run)\n", "udp (dgram)",
               losses[k] / 10.0, v[n / 2], last.retransmits, last.dropped);
    }
    printf("target (sprig >= 0.80 x raw on every transport): %s\n", met_all ? "met" : "NOT met");

    char path[200];
    unix_path(BENCH_RAW, path, sizeof(path));
    (void)unlink(path);
    unix_path(BENCH_SPRIG, path, sizeof(path));
    (void)unlink(path);
    (void)rmdir(g_dir);
    free(g_src);
    free(g_dst);
    if (!all_ok) {
        fprintf(stderr, "%s: some runs failed (details above)\n", PROG);
        return 1;
    }
    return 0;
}
