/*
 * sprig-bench-netstack — goodput of the netstack STREAM transport between two nodes (A — B) on a
 * simulated link in this one process, against OS TCP over loopback measured in the same run.
 *
 *   1. lossless: the simulated link without bandwidth cap, delay or impairments, at its largest
 *      MTU (65535; loopback TCP has 64 KiB) with 256 KiB rings (--mtu, --ring change them);
 *   2. OS TCP over 127.0.0.1 (blocking sockets, a sender thread and a receiver), same byte count;
 *      1 and 2 alternate --repeat times after an unmeasured warm-up; medians and spread printed;
 *   3. 0 % (reference), 1 %, 5 % and 20 % loss on a link with a 1 MB/s cap and 5 ms delay each way,
 *      serial-sized MTU (1024) and 32 KiB rings.
 *
 * Time: the loop runs on a fake clock that jumps from deadline to deadline, so timers (RTO,
 * simulated delay and serialisation) fire in simulated time and the run is deterministic. Every
 * MB/s compared with TCP is WALL-CLOCK time (CLOCK_MONOTONIC) of the whole transfer, handshake
 * excluded; the lossy runs also report goodput in simulated time (what a real link of that speed
 * and delay would give). Every byte received is compared with what was sent.
 * Exit status: 0, or 1 if a transfer broke (wrong data, stall, error); never for slowness.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sprig/clock.h"
#include "sprig/loop.h"
#include "sprig/ns_node.h"
#include "sprig/ns_simlink.h"
#include "sprig/ns_stream.h"
#include "sprig/sock.h"
#include "sprig/url.h"

#define PROG "sprig-bench-netstack"

enum {
    NODE_A = 1,
    NODE_B = 2,
    CONNS = 2, /* per node: a listener and a connection */
    /* lossless run (compared with loopback TCP, whose MTU is 64 KiB): the simulated link's
     * largest MTU and rings of the order of what loopback TCP's buffers get */
    BULK_MTU = 65535,
    BULK_RING = 256 * 1024, /* per connection: send ring and receive ring (max window) */
    /* lossy runs: a serial-sized MTU and small rings, as on a small device */
    LOSSY_MTU = SPRIG_CONFIG_NS_MAX_MTU,
    LOSSY_RING = 32768,
    MAX_RING = 1 << 20,
    MAX_NBUFS = 256,
    POOL_MEM = 64 * 66048, /* bytes of pool memory: 64 buffers of a 64 KiB MTU */
    PERIOD = 65521, /* the data pattern repeats every PERIOD bytes (prime: no ring alignment) */
    MAX_REPEAT = 20,
    CHUNK = 16384, /* largest single send / recv */
    TCP_CHUNK = 65536,
};

/* ---- data pattern and time ---------------------------------------------------------------- */

static uint8_t pattern[PERIOD + TCP_CHUNK]; /* byte k of every stream is pattern[k % PERIOD] */

static void pattern_init(void)
{
    uint32_t x = 0x9E3779B9u;
    for (size_t i = 0; i < sizeof(pattern); i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        pattern[i] = (uint8_t)(i < PERIOD ? x >> 24 : pattern[i - PERIOD]);
    }
}

static const uint8_t *pattern_at(uint64_t k)
{
    return &pattern[k % PERIOD];
}

static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double mbps(uint64_t bytes, double seconds)
{
    return seconds > 0 ? (double)bytes / 1e6 / seconds : 0.0;
}

/* ---- the simulated network ---------------------------------------------------------------- */

typedef struct ev {
    unsigned connected, readable, closed;
    sprig_status closed_status;
} ev;

typedef struct sim {
    sprig_fake_clock fc;
    sprig_loop loop;
    sprig_buf_pool pool;
    sprig_ns_node n[2];
    sprig_ns_route routes[2][1];
    sprig_ns_simlink link;
    sprig_ns_stream_backend be[2];
    sprig_ns_conn conns[2][CONNS];
    uint8_t rings[2][CONNS * 2 * MAX_RING];
    size_t nbufs;
    bool loop_ready, pool_ready, node_ready[2], link_ready, be_ready[2];
} sim;

static sim the_sim;
static sprig_buf sim_bufs[MAX_NBUFS];
static uint8_t sim_mem[POOL_MEM] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));

typedef struct run_cfg {
    uint16_t mtu;  /* of the simulated link */
    uint32_t ring; /* stream send ring and receive ring per connection, bytes */
    uint32_t loss_ppm;
    uint32_t bandwidth; /* bytes/s, 0 = unlimited */
    sprig_time delay;
    uint64_t total;
    sprig_time sim_limit; /* simulated time after which the transfer counts as stalled */
} run_cfg;

typedef struct run_out {
    bool ok;
    uint64_t verified;
    double wall_s;
    double sim_s;
    sprig_ns_stream_stats tx_stats; /* the sender's */
    sprig_ns_simlink_stats ab, ba;
} run_out;

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, PROG ": %s: %s\n", what, detail);
}

static void fail_st(const char *what, sprig_status st)
{
    fprintf(stderr, PROG ": %s: status %d\n", what, (int)st);
}

static void on_ev(sprig_sock *s, sprig_sock_event e, sprig_status st, void *user)
{
    (void)s;
    ev *v = user;
    switch (e) {
    case SPRIG_SOCK_EV_CONNECTED:
        v->connected++;
        break;
    case SPRIG_SOCK_EV_READABLE:
        v->readable++;
        break;
    case SPRIG_SOCK_EV_WRITABLE:
        break;
    case SPRIG_SOCK_EV_CLOSED:
        v->closed++;
        v->closed_status = st;
        break;
    }
}

/* One loop pass; when no task is queued, jump the fake clock to the next deadline (never past
 * `limit`). False if nothing is scheduled any more or the limit is reached. */
static bool sim_step(sim *s, sprig_time limit)
{
    sprig_loop_poll(&s->loop, s->fc.now);
    sprig_time next = sprig_loop_next_deadline(&s->loop);
    if (next <= s->fc.now) {
        return true;
    }
    if (next == SPRIG_TIME_NEVER || next > limit) {
        return false;
    }
    sprig_fake_clock_set(&s->fc, next);
    return true;
}

/* Run the loop for dt of simulated time. */
static void sim_run(sim *s, sprig_time dt)
{
    sprig_time end = s->fc.now + dt;
    while (sim_step(s, end)) {
    }
    if (s->fc.now < end) {
        sprig_fake_clock_set(&s->fc, end);
    }
    sprig_loop_poll(&s->loop, s->fc.now);
}

/* Tears down what sim_init set up. False if a pool buffer was not back once everything that
 * could hold one was gone. */
static bool sim_deinit(sim *s)
{
    bool all_back = true;
    for (int i = 0; i < 2; i++) {
        if (s->be_ready[i]) {
            sprig_ns_stream_deinit(&s->be[i]);
        }
    }
    if (s->link_ready) {
        sprig_ns_simlink_deinit(&s->link);
    }
    for (int i = 0; i < 2; i++) {
        if (s->node_ready[i]) {
            sprig_ns_node_deinit(&s->n[i]);
        }
    }
    if (s->pool_ready) {
        all_back = sprig_buf_pool_available(&s->pool) == s->nbufs;
        sprig_buf_pool_deinit(&s->pool);
    }
    if (s->loop_ready) {
        sprig_loop_deinit(&s->loop);
    }
    memset(s, 0, sizeof(*s));
    return all_back;
}

/* Pool buffers: headroom + MTU, rounded up to the buffer alignment. */
static size_t buf_size_for(uint16_t mtu)
{
    size_t a = SPRIG_CONFIG_BUF_ALIGN, n = (size_t)SPRIG_NS_NET_HEADROOM + mtu + 64;
    return (n + a - 1) / a * a;
}

static size_t nbufs_for(uint16_t mtu)
{
    size_t n = sizeof(sim_mem) / buf_size_for(mtu);
    return n < MAX_NBUFS ? n : MAX_NBUFS;
}

static bool sim_init(sim *s, const run_cfg *rc)
{
    memset(s, 0, sizeof(*s));
    sprig_fake_clock_init(&s->fc, SPRIG_TIME_S(1));
    sprig_loop_cfg lc = {.clock = s->fc.clock};
    sprig_status st = sprig_loop_init(&s->loop, &lc);
    if (st != SPRIG_STATUS_OK) {
        fail_st("loop init", st);
        return false;
    }
    s->loop_ready = true;
    s->nbufs = nbufs_for(rc->mtu);
    st = sprig_buf_pool_init(&s->pool, sim_bufs, sim_mem, s->nbufs, buf_size_for(rc->mtu));
    if (st != SPRIG_STATUS_OK) {
        fail_st("pool init", st);
        return false;
    }
    s->pool_ready = true;
    for (int i = 0; i < 2; i++) {
        sprig_ns_node_cfg c = {.id = (uint16_t)(NODE_A + i),
                               .loop = &s->loop,
                               .pool = &s->pool,
                               .routes = s->routes[i],
                               .route_cap = 1};
        if ((st = sprig_ns_node_init(&s->n[i], &c)) != SPRIG_STATUS_OK) {
            fail_st("node init", st);
            return false;
        }
        s->node_ready[i] = true;
    }
    sprig_ns_simlink_cfg lk = {.loop = &s->loop,
                               .pool = &s->pool,
                               .seed = 4242u,
                               .mtu = rc->mtu,
                               .bandwidth = rc->bandwidth,
                               .delay = rc->delay,
                               .loss_ppm = rc->loss_ppm};
    if ((st = sprig_ns_simlink_init(&s->link, &lk)) != SPRIG_STATUS_OK) {
        fail_st("simlink init", st);
        return false;
    }
    s->link_ready = true;
    for (int i = 0; i < 2; i++) {
        sprig_ns_link *end = &s->link.end[i].link;
        if ((st = sprig_ns_node_attach(&s->n[i], end)) != SPRIG_STATUS_OK ||
            (st = sprig_ns_node_add_route(&s->n[i], 0, 0, end)) != SPRIG_STATUS_OK) {
            fail_st("attach / route", st);
            return false;
        }
    }
    sprig_ns_stream_cfg stream_cfg = {
        .tc = SPRIG_NS_TC_BULK,
        .tx_buf = rc->ring,
        .rx_buf = rc->ring,
        .rto_min = SPRIG_TIME_MS(50),
        .rto_max = SPRIG_TIME_S(2),
        .max_retries = 30,
    };
    if (sprig_ns_stream_ring_size(&stream_cfg, CONNS) > sizeof(s->rings[0])) {
        fail("stream init", "ring storage too small");
        return false;
    }
    for (int i = 0; i < 2; i++) {
        st = sprig_ns_stream_init(&s->be[i], &s->n[i], &stream_cfg, s->conns[i], CONNS, s->rings[i],
                                  sizeof(s->rings[i]), &s->pool);
        if (st != SPRIG_STATUS_OK) {
            fail_st("stream init", st);
            return false;
        }
        s->be_ready[i] = true;
    }
    return true;
}

static sprig_status open_via(sprig_ns_stream_backend *be, const char *url, bool listen,
                             sprig_sock **out, ev *v)
{
    sprig_url u;
    sprig_status st = sprig_url_parse(url, &u);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    if (!be->backend.handles(&be->backend, &u)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    st = listen ? be->backend.listen(&be->backend, &u, SPRIG_SOCK_STREAM, out)
                : be->backend.dial(&be->backend, &u, SPRIG_SOCK_STREAM, out);
    if (st == SPRIG_STATUS_OK) {
        sprig_sock_set_callback(*out, on_ev, v);
    }
    return st;
}

/* The transfer A → B: the sender keeps the send ring full, the receiver reads everything that
 * arrived, both between loop passes. */
static bool transfer(sim *s, sprig_sock *cli, sprig_sock *srv, const run_cfg *rc, run_out *o)
{
    static uint8_t rbuf[CHUNK];
    uint64_t sent = 0, got = 0;
    sprig_time t0 = s->fc.now, limit = t0 + rc->sim_limit;
    uint64_t w0 = wall_ns();
    uint64_t sent0 = 0, got0 = 0;
    unsigned idle = 0;
    while (got < rc->total) {
        while (sent < rc->total) {
            size_t want = rc->total - sent < CHUNK ? (size_t)(rc->total - sent) : CHUNK, n = 0;
            sprig_status st = sprig_sock_send(cli, pattern_at(sent), want, &n);
            if (st == SPRIG_STATUS_UNAVAILABLE) {
                break;
            }
            if (st != SPRIG_STATUS_OK) {
                fail_st("sprig send", st);
                return false;
            }
            sent += n;
        }
        for (;;) {
            size_t n = 0;
            sprig_status st = sprig_sock_recv(srv, rbuf, sizeof(rbuf), &n);
            if (st == SPRIG_STATUS_UNAVAILABLE) {
                break;
            }
            if (st != SPRIG_STATUS_OK) {
                fail_st("sprig recv", st);
                return false;
            }
            if (n > rc->total - got) {
                fail("sprig recv", "more bytes than were sent");
                return false;
            }
            for (size_t off = 0; off < n;) {
                size_t k = n - off < PERIOD ? n - off : PERIOD; /* pattern_at spans one period */
                if (memcmp(rbuf + off, pattern_at(got + off), k) != 0) {
                    char at[64];
                    snprintf(at, sizeof(at), "data differs near byte %llu",
                             (unsigned long long)(got + off));
                    fail("sprig recv", at);
                    return false;
                }
                off += k;
            }
            got += n;
        }
        /* Stalled: nothing scheduled twice in a row with nothing sent or read in between (a
         * pass that only delivered a window update leaves no timer, but the next send moves). */
        if (sent != sent0 || got != got0) {
            idle = 0;
        }
        sent0 = sent;
        got0 = got;
        if (got < rc->total && !sim_step(s, limit) && ++idle >= 2) {
            char at[96];
            snprintf(at, sizeof(at), "stalled after %llu of %llu bytes (%.1f s simulated)",
                     (unsigned long long)got, (unsigned long long)rc->total,
                     (double)(s->fc.now - t0) / 1e6);
            fail("sprig transfer", at);
            return false;
        }
    }
    o->wall_s = (double)(wall_ns() - w0) / 1e9;
    o->sim_s = (double)(s->fc.now - t0) / 1e6;
    o->verified = got;
    return true;
}

static bool run_sim(const run_cfg *rc, run_out *o)
{
    sim *s = &the_sim;
    memset(o, 0, sizeof(*o));
    bool ok = false;
    sprig_sock *lis = NULL, *cli = NULL, *srv = NULL;
    ev lv = {0}, cv = {0}, sv = {0};
    if (!sim_init(s, rc)) {
        goto out;
    }
    sprig_status st = open_via(&s->be[1], "sprig://2:80", true, &lis, &lv);
    if (st != SPRIG_STATUS_OK) {
        fail_st("listen sprig://2:80", st);
        goto out;
    }
    if ((st = open_via(&s->be[0], "sprig://2:80", false, &cli, &cv)) != SPRIG_STATUS_OK) {
        fail_st("dial sprig://2:80", st);
        goto out;
    }
    for (int i = 0; i < 600 && (cv.connected == 0 || lv.readable == 0) && cv.closed == 0; i++) {
        sim_run(s, SPRIG_TIME_MS(100));
    }
    if (cv.connected == 0 || (st = sprig_sock_accept(lis, &srv)) != SPRIG_STATUS_OK) {
        fail("connect", "no connection within 60 s simulated");
        goto out;
    }
    sprig_sock_set_callback(srv, on_ev, &sv);
    if (!transfer(s, cli, srv, rc, o)) {
        goto out;
    }
    /* Orderly close both ways. */
    if ((st = sprig_sock_shutdown(cli)) != SPRIG_STATUS_OK ||
        (st = sprig_sock_shutdown(srv)) != SPRIG_STATUS_OK) {
        fail_st("shutdown", st);
        goto out;
    }
    for (int i = 0; i < 6000 && (cv.closed == 0 || sv.closed == 0); i++) {
        sim_run(s, SPRIG_TIME_MS(100));
    }
    if (cv.closed == 0 || sv.closed == 0 || cv.closed_status != SPRIG_STATUS_OK ||
        sv.closed_status != SPRIG_STATUS_OK) {
        fail("close", "no orderly close both ways");
        goto out;
    }
    o->tx_stats = s->be[0].stats;
    o->ab = s->link.end[0].stats;
    o->ba = s->link.end[1].stats;
    ok = true;
out:
    if (srv != NULL) {
        sprig_sock_close(srv);
    }
    if (cli != NULL) {
        sprig_sock_close(cli);
    }
    if (lis != NULL) {
        sprig_sock_close(lis);
    }
    if (s->be_ready[0] && s->be_ready[1]) {
        sim_run(s, SPRIG_TIME_S(10));
        if (ok &&
            (sprig_ns_stream_active(&s->be[0]) != 0 || sprig_ns_stream_active(&s->be[1]) != 0)) {
            fail("teardown", "connections still active");
            ok = false;
        }
    }
    if (!sim_deinit(s) && ok) {
        fail("teardown", "pool buffers not returned");
        ok = false;
    }
    o->ok = ok;
    return ok;
}

/* ---- OS TCP over loopback ----------------------------------------------------------------- */

typedef struct tcp_sender {
    int fd;
    uint64_t total;
    bool ok;
} tcp_sender;

static void *tcp_send_thread(void *arg)
{
    tcp_sender *t = arg;
    uint64_t sent = 0;
    while (sent < t->total) {
        size_t want = t->total - sent < TCP_CHUNK ? (size_t)(t->total - sent) : TCP_CHUNK;
        ssize_t n = send(t->fd, pattern_at(sent), want, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            perror(PROG ": tcp send");
            return NULL;
        }
        sent += (uint64_t)n;
    }
    t->ok = shutdown(t->fd, SHUT_WR) == 0;
    return NULL;
}

static bool run_tcp(uint64_t total, run_out *o)
{
    static uint8_t rbuf[TCP_CHUNK];
    memset(o, 0, sizeof(*o));
    bool ok = false;
    int lfd = -1, cfd = -1, sfd = -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
        bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 1) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0 ||
        (cfd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
        connect(cfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        (sfd = accept(lfd, NULL, NULL)) < 0) {
        perror(PROG ": tcp setup");
        goto out;
    }
    tcp_sender snd = {.fd = cfd, .total = total};
    pthread_t th;
    uint64_t w0 = wall_ns();
    if (pthread_create(&th, NULL, tcp_send_thread, &snd) != 0) {
        fail("tcp", "pthread_create failed");
        goto out;
    }
    uint64_t got = 0;
    bool rx_ok = true;
    for (;;) {
        ssize_t n = recv(sfd, rbuf, sizeof(rbuf), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            perror(PROG ": tcp recv");
            rx_ok = false;
            break;
        }
        if (n == 0) {
            break;
        }
        if ((uint64_t)n > total - got) {
            fail("tcp recv", "more bytes than were sent");
            rx_ok = false;
            break;
        }
        if (memcmp(rbuf, pattern_at(got), (size_t)n) != 0) {
            fail("tcp recv", "data differs");
            rx_ok = false;
            break;
        }
        got += (uint64_t)n;
    }
    o->wall_s = (double)(wall_ns() - w0) / 1e9;
    if (!rx_ok) {
        shutdown(sfd, SHUT_RDWR); /* unblock the sender */
    }
    pthread_join(th, NULL);
    o->verified = got;
    ok = rx_ok && snd.ok && got == total;
    if (rx_ok && got != total) {
        fail("tcp", "stream ended early");
    }
out:
    if (sfd >= 0) {
        close(sfd);
    }
    if (cfd >= 0) {
        close(cfd);
    }
    if (lfd >= 0) {
        close(lfd);
    }
    o->ok = ok;
    return ok;
}

/* ---- statistics ---------------------------------------------------------------------------------
 */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* Sorts v[n] (n > 0) and returns its median. */
static double median(double *v, unsigned n)
{
    qsort(v, n, sizeof(v[0]), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void print_rates(const char *label, double *v, unsigned n, uint64_t bytes)
{
    if (n == 0) {
        printf("%-26s FAILED\n", label);
        return;
    }
    double m = median(v, n);
    printf("%-26s %6u %14llu %12.1f %12.1f %12.1f %9.0f %%\n", label, n, (unsigned long long)bytes,
           m, v[0], v[n - 1], m > 0 ? 100.0 * (v[n - 1] - v[0]) / m : 0.0);
}

/* ---- main --------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " [--quick] [--mb N] [--repeat N] [--mtu N] [--ring N]\n"
            "  --quick     a smoke run (4 MB lossless, 256 KB per lossy run; under a second)\n"
            "  --mb N      megabytes (10^6) for the lossless and TCP runs (default 256, 1..4096)\n"
            "  --repeat N  lossless and TCP runs each, alternating (default 7, quick 1; 1..20)\n"
            "  --mtu N     lossless run: simulated link MTU (default 65535; 1024..65535)\n"
            "  --ring N    lossless run: send and receive ring per connection, KiB (default\n"
            "              256; 4..1024)\n"
            "  --no-pin    accepted and ignored (nothing is pinned)\n");
}

int main(int argc, char **argv)
{
    bool quick = false;
    uint64_t mb = 256;
    unsigned repeat = 0;
    unsigned long bulk_mtu = BULK_MTU, bulk_ring = BULK_RING;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--mb") == 0 && i + 1 < argc) {
            char *endp;
            unsigned long v = strtoul(argv[++i], &endp, 10);
            if (*endp != '\0' || v < 1 || v > 4096) {
                usage(stderr);
                return 2;
            }
            mb = v;
        } else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
            char *endp;
            unsigned long v = strtoul(argv[++i], &endp, 10);
            if (*endp != '\0' || v < 1 || v > MAX_REPEAT) {
                usage(stderr);
                return 2;
            }
            repeat = (unsigned)v;
        } else if ((strcmp(argv[i], "--mtu") == 0 || strcmp(argv[i], "--ring") == 0) &&
                   i + 1 < argc) {
            bool is_mtu = argv[i][2] == 'm';
            char *endp;
            unsigned long v = strtoul(argv[++i], &endp, 10);
            if (*endp != '\0' || (is_mtu && (v < 1024 || v > 65535)) ||
                (!is_mtu && (v < 4 || v > MAX_RING / 1024))) {
                usage(stderr);
                return 2;
            }
            *(is_mtu ? &bulk_mtu : &bulk_ring) = is_mtu ? v : v * 1024;
        } else if (strcmp(argv[i], "--no-pin") == 0) {
            /* accepted for tools/bench.sh; this program does not pin */
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (quick) {
        mb = 4;
    }
    if (repeat == 0) {
        repeat = quick ? 1 : 7;
    }
    signal(SIGPIPE, SIG_IGN);
    pattern_init();
    uint64_t bulk = mb * 1000000u, lossy = quick ? 256u * 1024u : 4u * 1000000u;
    bool all_ok = true;

    printf(PROG ": netstack STREAM A -> B on one simulated link, one process%s\n",
           quick ? " (--quick)" : "");
    unsigned lossy_mtu = LOSSY_MTU;
    printf("  lossless: link MTU %lu (MSS %lu B), send ring %lu B and receive ring %lu B (max "
           "window) per connection, pool %zu x %zu B\n",
           bulk_mtu, bulk_mtu - SPRIG_NS_NET_HEADROOM - SPRIG_NS_STREAM_HEADER_LEN, bulk_ring,
           bulk_ring, nbufs_for((uint16_t)bulk_mtu), buf_size_for((uint16_t)bulk_mtu));
    printf("  lossy:    link MTU %u (MSS %u B), send ring %u B and receive ring %u B per "
           "connection, pool %zu x %zu B\n",
           lossy_mtu, lossy_mtu - SPRIG_NS_NET_HEADROOM - SPRIG_NS_STREAM_HEADER_LEN,
           (unsigned)LOSSY_RING, (unsigned)LOSSY_RING, nbufs_for((uint16_t)lossy_mtu),
           buf_size_for((uint16_t)lossy_mtu));
    printf("  link: at most %u packets in flight per direction (SPRIG_CONFIG_NS_SIM_SLOTS), "
           "%u-packet class queues; rto_min 50 ms\n",
           (unsigned)SPRIG_CONFIG_NS_SIM_SLOTS, (unsigned)SPRIG_CONFIG_NS_QUEUE_LEN);
    printf("  time: timers on a fake clock (jumps to the next deadline); MB/s = 10^6 B per "
           "WALL-CLOCK second unless marked simulated\n\n");

    /* sprig and TCP alternate, `repeat` times each; the medians are compared. */
    double ns_rate[MAX_REPEAT], tcp_rate[MAX_REPEAT];
    unsigned ns_runs = 0, tcp_runs = 0;
    uint64_t ns_bytes = 0, tcp_bytes = 0, ns_rtx = 0;
    run_cfg lossless = {.mtu = (uint16_t)bulk_mtu,
                        .ring = (uint32_t)bulk_ring,
                        .total = bulk,
                        .sim_limit = SPRIG_TIME_S(100000)};
    /* Warm-up, not measured: faults in the pool and ring pages, TCP's first connection. */
    run_cfg warm = lossless;
    warm.total = bulk < 8000000u ? bulk : 8000000u;
    run_out wo;
    if (!run_sim(&warm, &wo) || !run_tcp(warm.total, &wo)) {
        all_ok = false;
    }
    for (unsigned r = 0; r < repeat; r++) {
        run_out o;
        if (run_sim(&lossless, &o)) {
            ns_rate[ns_runs++] = mbps(o.verified, o.wall_s);
            ns_bytes += o.verified;
            ns_rtx += o.tx_stats.rtx;
        } else {
            all_ok = false;
        }
        if (run_tcp(bulk, &o)) {
            tcp_rate[tcp_runs++] = mbps(o.verified, o.wall_s);
            tcp_bytes += o.verified;
        } else {
            all_ok = false;
        }
    }
    printf("lossless link (no cap, no delay), %llu bytes per run, %u runs each, alternating\n",
           (unsigned long long)bulk, repeat);
    printf("%-26s %6s %14s %12s %12s %12s %11s\n", "", "runs", "verified", "median MB/s",
           "min MB/s", "max MB/s", "spread*");
    print_rates("sprig netstack STREAM", ns_rate, ns_runs, ns_bytes);
    print_rates("OS TCP over loopback", tcp_rate, tcp_runs, tcp_bytes);
    if (ns_runs > 0 && tcp_runs > 0) {
        double ratio = median(ns_rate, ns_runs) / median(tcp_rate, tcp_runs);
        printf("sprig / TCP (medians): %.3f (netstack retransmissions: %llu) - target, at least "
               "loopback TCP: %s\n* spread: (max - min) / median\n\n",
               ratio, (unsigned long long)ns_rtx, ratio >= 1.0 ? "met" : "NOT met");
    } else {
        printf("sprig / TCP: not available (a run failed)\n\n");
    }

    static const uint32_t ppm[] = {0, 10000, 50000, 200000};
    printf("lossy link: 1 MB/s cap, 5 ms delay each way, loss only (seeded), %llu bytes each\n",
           (unsigned long long)lossy);
    printf("%-12s %12s %10s %12s %10s %14s %7s %9s %7s\n", "loss", "verified", "wall s",
           "wall MB/s", "sim s", "sim goodput", "lost*", "rtx", "fastrtx");
    for (size_t i = 0; i < sizeof(ppm) / sizeof(ppm[0]); i++) {
        run_cfg rc = {.mtu = (uint16_t)lossy_mtu,
                      .ring = LOSSY_RING,
                      .loss_ppm = ppm[i],
                      .bandwidth = 1000000u,
                      .delay = SPRIG_TIME_MS(5),
                      .total = lossy,
                      .sim_limit = SPRIG_TIME_S(100000)};
        run_out o;
        char label[16];
        snprintf(label, sizeof(label), "%.0f %%", (double)ppm[i] / 1e4);
        if (!run_sim(&rc, &o)) {
            printf("%-12s FAILED\n", label);
            all_ok = false;
            continue;
        }
        printf("%-12s %12llu %10.3f %12.2f %10.2f %9.3f MB/s %7u %9u %7u\n", label,
               (unsigned long long)o.verified, o.wall_s, mbps(o.verified, o.wall_s), o.sim_s,
               mbps(o.verified, o.sim_s), (unsigned)(o.ab.lost + o.ba.lost),
               (unsigned)o.tx_stats.rtx, (unsigned)o.tx_stats.fast_rtx);
    }
    printf("* lost: packets dropped by the link, both directions (data and ACKs)\n\n"
           "Cortex-M0+ text / static RAM of the netstack: see tools/size_report.sh\n");
    if (!all_ok) {
        fprintf(stderr, PROG ": a run FAILED (see above)\n");
        return 1;
    }
    return 0;
}
