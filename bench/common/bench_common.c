/*
 * bench_common — shared parts of sprig-bench-sockets and sprig-bench-rpc (see bench_common.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "bench_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READY_MS 10000 /* how long the parent waits for the child's listener */
#define WATCHDOG 600u  /* seconds: a hung phase kills the process instead of hanging forever */

const char *const bench_transport_name[BENCH_TRANSPORTS] = {"unix seqpacket", "tcp loopback"};

static const bench_program *g_prog;

/* ---- errors and time -------------------------------------------------------------------- */

void bench_err(const char *what, const char *detail)
{
    fprintf(stderr, "%s: %s: %s\n", g_prog->prog, what, detail);
}

void bench_err_st(const char *what, sprig_status st)
{
    bench_err(what, sprig_status_str(st));
}

void bench_err_errno(const char *what)
{
    bench_err(what, strerror(errno));
}

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- options, set-up ------------------------------------------------------------------- */

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

static int parse_args(int argc, char **argv, bench_opts *o)
{
    *o =
        (bench_opts){.rounds = 20000, .warmup = 1000, .messages = 200000, .repeat = 3, .pin = true};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        unsigned *dst = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            g_prog->usage(stdout);
            return 0;
        } else if (strcmp(a, "--quick") == 0) {
            o->rounds = 2000;
            o->warmup = 200;
            o->messages = 20000;
            o->repeat = 1;
        } else if (strcmp(a, "--no-pin") == 0) {
            o->pin = false;
        } else if (strcmp(a, "--rounds") == 0) {
            dst = &o->rounds;
        } else if (strcmp(a, "--warmup") == 0) {
            dst = &o->warmup;
        } else if (strcmp(a, "--messages") == 0) {
            dst = &o->messages;
        } else if (strcmp(a, "--repeat") == 0) {
            dst = &o->repeat;
        } else {
            fprintf(stderr, "%s: unknown argument '%s' (try --help)\n", g_prog->prog, a);
            return 2;
        }
        if (dst != NULL && (i + 1 >= argc || !parse_uint(argv[++i], dst))) {
            fprintf(stderr, "%s: %s needs a positive number\n", g_prog->prog, a);
            return 2;
        }
    }
    if (o->repeat > BENCH_MAX_REPEAT) {
        fprintf(stderr, "%s: --repeat is at most %u\n", g_prog->prog, BENCH_MAX_REPEAT);
        return 2;
    }
    return -1;
}

static bool dir_create(void)
{
    if (mkdtemp(g_prog->dir) == NULL) {
        bench_err_errno("temporary directory");
        return false;
    }
    return true;
}

void bench_unix_path(bench_impl im, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s.sock", g_prog->dir, im == BENCH_RAW ? "raw" : g_prog->sprig_sock);
}

static void dir_remove(void)
{
    char path[200];
    bench_unix_path(BENCH_RAW, path, sizeof(path));
    (void)unlink(path);
    bench_unix_path(BENCH_SPRIG, path, sizeof(path));
    (void)unlink(path);
    (void)rmdir(g_prog->dir);
}

void bench_url(bench_transport t, uint16_t port, char *out, size_t cap)
{
    if (t == BENCH_UNIX) {
        char path[150];
        bench_unix_path(BENCH_SPRIG, path, sizeof(path));
        snprintf(out, cap, "unix:%s", path);
    } else {
        snprintf(out, cap, "tcp://127.0.0.1:%u", port);
    }
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

void bench_pin(const bench_opts *o)
{
    if (o->pin) {
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
}

/* ---- one measurement: fork the server, run the client ----------------------------------- */

static bool measure(bench_transport t, bench_impl im, const bench_opts *o, bench_run_out *r)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        bench_err_errno("pipe");
        return false;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        bench_err_errno("fork");
        close(p[0]);
        close(p[1]);
        return false;
    }
    if (pid == 0) {
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(p[0]);
        if (g_prog->child_watchdog) {
            alarm(WATCHDOG);
        }
        int rc = g_prog->server[im](t, p[1]);
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
        bench_err("server", "did not come up");
    } else {
        alarm(WATCHDOG);
        ok = g_prog->client[im](t, port, o, r);
        alarm(0);
    }
    if (!ok) {
        kill(pid, SIGKILL);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (ok && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        fprintf(stderr, "%s: %s %s server exited abnormally (status 0x%x)\n", g_prog->prog,
                bench_transport_name[t], im == BENCH_RAW ? "raw" : "sprig", (unsigned)status);
        ok = false;
    }
    return ok;
}

/* ---- repeats and statistics ------------------------------------------------------------- */

static bool series_alloc(bench_series res[BENCH_TRANSPORTS][BENCH_IMPLS], const bench_opts *o)
{
    size_t nsamples = (size_t)o->repeat * o->rounds;
    for (int t = 0; t < BENCH_TRANSPORTS; t++) {
        res[t][BENCH_RAW].rtt = calloc(nsamples, sizeof(uint64_t));
        res[t][BENCH_SPRIG].rtt = calloc(nsamples, sizeof(uint64_t));
        res[t][BENCH_SPRIG].helpers = calloc(nsamples, sizeof(uint64_t));
        if (res[t][BENCH_RAW].rtt == NULL || res[t][BENCH_SPRIG].rtt == NULL ||
            res[t][BENCH_SPRIG].helpers == NULL) {
            bench_err("memory", "samples");
            return false;
        }
    }
    return true;
}

static void series_free(bench_series res[BENCH_TRANSPORTS][BENCH_IMPLS])
{
    for (int t = 0; t < BENCH_TRANSPORTS; t++) {
        free(res[t][BENCH_RAW].rtt);
        free(res[t][BENCH_SPRIG].rtt);
        free(res[t][BENCH_SPRIG].helpers);
    }
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

static void finish_series(bench_series *s, const bench_opts *o)
{
    size_t n = (size_t)s->runs * o->rounds;
    if (s->runs == 0) {
        return;
    }
    summarize(s->rtt, (unsigned)n, &s->rtt_median, &s->rtt_p99);
    if (s->helpers != NULL) {
        summarize(s->helpers, (unsigned)n, &s->helpers_median, &s->helpers_p99);
    }
    double rates[BENCH_MAX_REPEAT];
    memcpy(rates, s->rate, sizeof(rates));
    for (unsigned i = 1; i < s->runs; i++) { /* insertion sort: at most BENCH_MAX_REPEAT */
        for (unsigned j = i; j > 0 && rates[j - 1] > rates[j]; j--) {
            double x = rates[j];
            rates[j] = rates[j - 1];
            rates[j - 1] = x;
        }
    }
    s->rate_median =
        s->runs % 2 ? rates[s->runs / 2] : (rates[s->runs / 2 - 1] + rates[s->runs / 2]) / 2;
}

void bench_run(const bench_opts *o, bench_series res[BENCH_TRANSPORTS][BENCH_IMPLS])
{
    for (unsigned rep = 0; rep < o->repeat; rep++) {
        for (int t = 0; t < BENCH_TRANSPORTS; t++) {
            for (int im = BENCH_RAW; im <= BENCH_SPRIG; im++) {
                bench_series *s = &res[t][im];
                if (s->failed) {
                    continue;
                }
                bench_run_out out = {.rtt = s->rtt + (size_t)s->runs * o->rounds,
                                     .helpers = s->helpers != NULL
                                                    ? s->helpers + (size_t)s->runs * o->rounds
                                                    : NULL};
                if (measure((bench_transport)t, (bench_impl)im, o, &out)) {
                    s->rate[s->runs++] = out.rate;
                } else {
                    s->failed = true;
                }
            }
        }
    }
    for (int t = 0; t < BENCH_TRANSPORTS; t++) {
        finish_series(&res[t][BENCH_RAW], o);
        finish_series(&res[t][BENCH_SPRIG], o);
    }
}

static void print_row(const char *tname, const char *iname, double med, double p99, double rate)
{
    char rate_s[32] = "-";
    if (rate > 0) {
        snprintf(rate_s, sizeof(rate_s), "%.0f msg/s", rate);
    }
    printf("%-16s %-*s %9.2f us %9.2f us %16s\n", tname, g_prog->impl_width, iname, med, p99,
           rate_s);
}

void bench_usage_tail(FILE *f)
{
    fprintf(f, "  --repeat N    runs of each measurement, raw and sprig alternating; round trips\n"
               "                are pooled, rates give their median (default 3, at most 10)\n"
               "  --quick       smoke run: 2000 rounds, 200 warm-up, 20000 messages, 1 run\n"
               "  --no-pin      do not pin both processes to one CPU\n"
               "Exit status 0 unless something broke; slowness is reported, never a failure.\n");
}

bool bench_print_table(bench_series res[BENCH_TRANSPORTS][BENCH_IMPLS])
{
    const bench_program *p = g_prog;
    printf("%-16s %-*s %12s %12s %16s\n", "transport", p->impl_width, "implementation",
           "rtt median", "rtt p99", p->rate_heading);
    bool all_ok = true;
    for (int t = 0; t < BENCH_TRANSPORTS; t++) {
        const char *tname = bench_transport_name[t];
        const bench_series *raw = &res[t][BENCH_RAW], *spr = &res[t][BENCH_SPRIG];
        if (!raw->failed) {
            print_row(tname, p->raw_row, raw->rtt_median, raw->rtt_p99, raw->rate_median);
        } else {
            printf("%-16s %-*s FAILED (see above)\n", tname, p->impl_width, p->raw_failed);
            all_ok = false;
        }
        if (!spr->failed) {
            print_row(tname, p->sprig_row, spr->rtt_median, spr->rtt_p99, spr->rate_median);
            print_row(tname, p->helpers_row, spr->helpers_median, spr->helpers_p99, 0);
        } else {
            printf("%-16s %-*s FAILED (see above)\n", tname, p->impl_width, p->sprig_failed);
            all_ok = false;
        }
    }
    printf("\n");
    return all_ok;
}

/* ---- start and finish ------------------------------------------------------------------- */

int bench_start(const bench_program *p, int argc, char **argv, bench_opts *o,
                bench_series res[BENCH_TRANSPORTS][BENCH_IMPLS])
{
    g_prog = p;
    int rc = parse_args(argc, argv, o);
    if (rc >= 0) {
        return rc;
    }
    signal(SIGPIPE, SIG_IGN);
    if (!dir_create() || !series_alloc(res, o)) {
        return 1;
    }
    return -1;
}

int bench_finish(bench_series res[BENCH_TRANSPORTS][BENCH_IMPLS], bool all_ok)
{
    series_free(res);
    dir_remove();
    if (!all_ok) {
        fprintf(stderr, "%s: some runs failed (details above)\n", g_prog->prog);
        return 1;
    }
    return 0;
}

/* ---- raw sockets: blocking I/O, TCP framed by hand --------------------------------------- */

void bench_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

uint32_t bench_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

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
bool bench_raw_send(bench_raw_conn *c, const uint8_t *msg, size_t len)
{
    if (c->t == BENCH_UNIX) {
        for (;;) {
            ssize_t n = send(c->fd, msg, len, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            return n == (ssize_t)len;
        }
    }
    uint8_t frame[4 + BENCH_RAW_MAX];
    if (len > BENCH_RAW_MAX) {
        return false;
    }
    bench_put_be32(frame, (uint32_t)len);
    memcpy(frame + 4, msg, len);
    return write_all(c->fd, frame, 4 + len);
}

/* TCP reads as much as is there and parses frames from it. */
int bench_raw_recv(bench_raw_conn *c, const uint8_t **msg, size_t *len)
{
    if (c->t == BENCH_UNIX) {
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
            uint32_t l = bench_get_be32(c->rx + c->start);
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

bool bench_raw_accept(bench_transport t, int ready_fd, bench_raw_conn *c)
{
    int l = -1;
    uint16_t port = 0;
    if (t == BENCH_UNIX) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        char path[sizeof(sa.sun_path)];
        bench_unix_path(BENCH_RAW, path, sizeof(path));
        memcpy(sa.sun_path, path, strlen(path) + 1);
        (void)unlink(path);
        l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(l, 16) != 0) {
            bench_err_errno("raw server: unix listen");
            return false;
        }
    } else {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t sl = sizeof(sa);
        l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(l, 16) != 0 ||
            getsockname(l, (struct sockaddr *)&sa, &sl) != 0) {
            bench_err_errno("raw server: tcp listen");
            return false;
        }
        port = ntohs(sa.sin_port);
    }
    if (write(ready_fd, &port, sizeof(port)) != (ssize_t)sizeof(port)) {
        return false;
    }
    close(ready_fd);
    memset(c, 0, sizeof(*c));
    c->t = t;
    c->fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (c->fd < 0) {
        bench_err_errno("raw server: accept");
        return false;
    }
    close(l);
    if (t == BENCH_TCP) {
        set_nodelay(c->fd);
    }
    return true;
}

bool bench_raw_connect(bench_transport t, uint16_t port, bench_raw_conn *c)
{
    memset(c, 0, sizeof(*c));
    c->t = t;
    if (t == BENCH_UNIX) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        bench_unix_path(BENCH_RAW, sa.sun_path, sizeof(sa.sun_path));
        c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            bench_err_errno("raw client: unix connect");
            return false;
        }
    } else {
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons(port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            bench_err_errno("raw client: tcp connect");
            return false;
        }
        set_nodelay(c->fd);
    }
    return true;
}

bool bench_raw_round_trips(bench_raw_conn *c, const bench_opts *o, uint64_t *rtt,
                           void (*fill)(unsigned i, uint8_t *msg))
{
    uint8_t msg[BENCH_MSG_LEN];
    bool ok = true;
    for (unsigned i = 0; ok && i < o->warmup + o->rounds; i++) {
        const uint8_t *in = NULL;
        size_t len = 0;
        fill(i, msg);
        uint64_t t0 = bench_now_ns();
        ok = bench_raw_send(c, msg, sizeof(msg)) && bench_raw_recv(c, &in, &len) == 1;
        uint64_t t1 = bench_now_ns();
        ok = ok && len == sizeof(msg) && memcmp(in, msg, len) == 0;
        if (i >= o->warmup) {
            rtt[i - o->warmup] = t1 - t0;
        }
    }
    if (!ok) {
        bench_err("raw client", "round trip failed or echo differs");
        close(c->fd);
        return false;
    }
    return true;
}

/* ---- sprig: the OS loop and backend ----------------------------------------------------- */

sprig_status bench_env_init(bench_env *e)
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

void bench_env_deinit(bench_env *e)
{
    if (e->backend_ready) {
        sprig_os_backend_deinit(&e->b);
    }
    if (e->loop_ready) {
        sprig_os_loop_deinit(&e->ol);
    }
}
