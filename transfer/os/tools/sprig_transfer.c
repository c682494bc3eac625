/*
 * sprig-transfer — move files with sprig::transfer (pw_transfer v2 chunks on a SEQPACKET or DGRAM
 * socket).
 *
 *   sprig-transfer serve --listen URL [--listen URL ...] --root DIR [--read-only]
 *                        [--discard-partial] [--verbose]
 *   sprig-transfer put [--quiet] [--resume] URL LOCAL NAME   upload LOCAL as NAME
 *   sprig-transfer get [--quiet] [--resume] URL NAME LOCAL   download NAME into LOCAL
 * Each also takes --timeout MS and --retries N (the engine's chunk_timeout and max_retries).
 *
 * URLs are sprig socket URLs: unix:PATH, tcp://HOST:PORT (SEQPACKET), udp://HOST:PORT (DGRAM: the
 * engine retransmits and adapts its window to loss; `serve` runs one node on the bound socket
 * for every peer). Port 0 picks a free one for serve; the bound address is printed as
 * "sprig-transfer: listening on URL". When the netstack is built, serial:PATH and
 * sprig+udp://HOST:PORT (docs/netstack.md §11) work too: a netstack endpoint, the service on
 * sprig://NODE:69 through it (sprig_ns_os_set_url; serve is node 2, clients node 1).
 *
 * Names: a resource's id is the 65599 hash of its name (sprig/transfer_os.h). `put` first writes
 * the name to the server's name resource (id 1) so that the server can create the file, then
 * writes the bytes to the name's id. `get` only needs the id.
 *
 * Files: both ends write through a hidden ".NAME.sprig-part" beside the target, renamed into place
 * only when the transfer completed with its checksum verified. When a transfer fails the part is
 * kept (the target is untouched), so that a later transfer continues it (initial_offset):
 * `get --resume` continues from the local part's size; `put --resume` reads the server's list of
 * kept parts (resource 2) and continues from the server's size when the server's CRC-32 of those
 * bytes equals that of LOCAL's first bytes (else it starts over). `serve --discard-partial` uses
 * random temporary names removed on failure instead (then `put --resume` starts over).
 *
 * Progress on stdout: on a terminal one line redrawn with \r at most 10 times a second (bytes,
 * percent, rate, ETA); otherwise a plain line at most once a second and a final line.
 *
 * Exit status: 0 success; 2 usage; 10 + the sprig_status of a failure (e.g. NOT_FOUND 5 → 15,
 * INVALID_ARGUMENT 3 → 13, PERMISSION_DENIED 7 → 17, DATA_LOSS 15 → 25), with the message
 * "sprig-transfer: <what>: <STATUS>" on stderr.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sprig/os.h"
#include "sprig/sock.h"
#include "sprig/transfer.h"
#include "sprig/transfer_os.h"
#include "sprig/url.h"
#ifdef TRANSFER_WITH_NETSTACK
#include "sprig/ns_os.h"
#endif

#define PROG          "sprig-transfer"
#define EXIT_USAGE    2
#define EXIT_BASE     10
#define MAX_LISTENERS 8 /* <= SPRIG_TRANSFER_SERVER_MAX_SOCKS */
#define MAX_SESSIONS  8
#define WINDOW_CHUNKS 16
/* udp: data bytes per datagram, so a chunk (+ SPRIG_TRANSFER_DATA_OVERHEAD) fits the IPv6
 * minimum MTU (1280 - 40 - 8): a datagram is never IP-fragmented, so one lost fragment never
 * costs a whole 64 KB chunk on a real network. */
#define UDP_CHUNK    1184u
#define DIAL_TIMEOUT SPRIG_TIME_MS(10000)
#define LOCAL_ID     1u /* the client's own end of a transfer */

/* ---- messages and exit codes ------------------------------------------------------------------
 */

static int exit_code(sprig_status st)
{
    return st == SPRIG_STATUS_OK ? 0 : EXIT_BASE + (int)st;
}

static int fail(sprig_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(sprig_status st, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "%s: %s: %s\n", PROG, what, sprig_status_str(st));
    return exit_code(st == SPRIG_STATUS_OK ? SPRIG_STATUS_UNKNOWN : st);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s serve --listen URL [--listen URL ...] --root DIR [--read-only]\n"
            "                            [--discard-partial] [--verbose] [TUNING]\n"
            "       %s put [--quiet] [--resume] [TUNING] URL LOCAL NAME\n"
            "       %s get [--quiet] [--resume] [TUNING] URL NAME LOCAL\n"
            "TUNING: --timeout MS (a chunk's timeout: 1..600000; default 2000, 500 on udp://)\n"
            "        --retries N (timeouts in a row before giving up: 1..255; default 3, 8 on\n"
            "        udp://). On a lossy datagram path with a short round trip a smaller\n"
            "        --timeout recovers lost tails sooner.\n"
            "URL: unix:PATH or tcp://HOST:PORT (SEQPACKET), udp://HOST:PORT (datagrams: the\n"
            "engine retransmits what is lost), or sprig's netstack: serial:PATH[?baud=B] or\n"
            "sprig+udp://HOST:PORT (serve binds it and serves many clients; concurrent clients\n"
            "need distinct ?node=N; port=N changes the service's netstack port 69).\n"
            "NAME: a file name in the server's root (no '/', no leading '.', no control\n"
            "characters). Exit status: 0 ok, 2 usage, 10 + status (e.g. 15 NOT_FOUND,\n"
            "17 PERMISSION_DENIED, 14 DEADLINE_EXCEEDED, 24 UNAVAILABLE, 25 DATA_LOSS).\n",
            PROG, PROG, PROG);
}

/* --timeout MS / --retries N, shared by serve, put and get: 0 keeps the engine's default. */
static struct {
    uint32_t timeout_ms;
    uint8_t retries;
} g_tune;

/* If argv[*i] is a tuning option, take it (and its value): 1; a bad value: -1 (message
 * printed); not a tuning option: 0. */
static int parse_tuning(int argc, char **argv, int *i)
{
    const char *opt = argv[*i];
    bool timeout = strcmp(opt, "--timeout") == 0;
    if (!timeout && strcmp(opt, "--retries") != 0) {
        return 0;
    }
    unsigned long max = timeout ? 600000ul : 255ul;
    const char *v = *i + 1 < argc ? argv[*i + 1] : "";
    char *end = NULL;
    unsigned long n = strtoul(v, &end, 10);
    if (*v < '0' || *v > '9' || *end != '\0' || n < 1 || n > max) {
        fprintf(stderr, "%s: %s needs a number from 1 to %lu\n", PROG, opt, max);
        return -1;
    }
    if (timeout) {
        g_tune.timeout_ms = (uint32_t)n;
    } else {
        g_tune.retries = (uint8_t)n;
    }
    (*i)++;
    return 1;
}

/* ---- environment: loop, backend, SIGINT/SIGTERM through a signalfd ----------------------------
 */

typedef struct env {
    sprig_os_loop ol;
    sprig_os_backend backend;
#ifdef TRANSFER_WITH_NETSTACK
    sprig_ns_os_set ns; /* serial: and sprig+udp: URLs */
#endif
    sprig_os_fd sig_watch;
    int sfd;
    bool loop_ready, backend_ready, sig_ready;
    volatile bool signalled;
} env;

static void on_signal(sprig_os_fd *watch, uint32_t events)
{
    env *e = watch->arg;
    struct signalfd_siginfo si;
    (void)events;
    while (read(watch->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        e->signalled = true;
        sprig_loop_stop(&e->ol.loop);
    }
}

static sprig_status env_init(env *e)
{
    memset(e, 0, sizeof(*e));
    e->sfd = -1;
    signal(SIGPIPE, SIG_IGN);
    sprig_status st = sprig_os_loop_init(&e->ol);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    e->loop_ready = true;
    if ((st = sprig_os_backend_init(&e->backend, &e->ol, NULL)) != SPRIG_STATUS_OK) {
        return st;
    }
    e->backend_ready = true;
#ifdef TRANSFER_WITH_NETSTACK
    sprig_ns_os_set_init(&e->ns, &e->ol, NULL);
#endif
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    e->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (e->sfd < 0 || sprig_os_loop_add_fd(&e->ol, &e->sig_watch, e->sfd, SPRIG_OS_EV_IN, on_signal,
                                           e) != SPRIG_STATUS_OK) {
        sigprocmask(SIG_UNBLOCK, &mask, NULL); /* let the signals kill us plainly */
    } else {
        e->sig_ready = true;
    }
    return SPRIG_STATUS_OK;
}

static void env_deinit(env *e)
{
    if (e->sig_ready) {
        sprig_os_loop_del_fd(&e->ol, &e->sig_watch);
    }
    if (e->sfd >= 0) {
        close(e->sfd);
    }
#ifdef TRANSFER_WITH_NETSTACK
    if (e->loop_ready) {
        sprig_ns_os_set_close(&e->ns, SPRIG_TIME_MS(2000)); /* closed connections finish */
    }
#endif
    if (e->backend_ready) {
        sprig_os_backend_deinit(&e->backend);
    }
    if (e->loop_ready) {
        sprig_os_loop_deinit(&e->ol);
    }
    e->sig_ready = e->backend_ready = e->loop_ready = false;
    e->sfd = -1;
}

/* ---- serve ------------------------------------------------------------------------------------
 */

typedef struct server {
    env env;
    sprig_transfer_file_handler files;
    sprig_transfer_server xs;
    bool verbose;
    sprig_status error;
} server;

static void on_server_event(const sprig_transfer_server_info *info, void *user)
{
    server *s = user;
    if (info->event == SPRIG_TRANSFER_SERVER_ERROR) {
        fail(info->status, "%s", info->what); /* keep serving */
    } else if (info->event == SPRIG_TRANSFER_SERVER_LISTENER_CLOSED) {
        s->error = info->status != SPRIG_STATUS_OK ? info->status : SPRIG_STATUS_ABORTED;
        fail(s->error, "listener");
        sprig_loop_stop(&s->env.ol.loop);
    } else if (s->verbose) {
        char line[160];
        sprig_transfer_server_describe(info, line, sizeof(line));
        printf("%s: %s\n", PROG, line);
        fflush(stdout);
    }
}

#define NS_PORT 69u /* the service on a netstack node: sprig://NODE:69 */

/* The URL to listen on or dial for one from the command line: serial:/sprig+udp: open the
 * netstack endpoint and become sprig://NODE:NS_PORT (sprig_ns_os_set_url); others unchanged.
 * On failure prints why ("sprig-transfer: URL: reason"); the caller reports the status. */
static sprig_status env_url(env *e, const char *url, bool listening, char *out, size_t cap)
{
#ifdef TRANSFER_WITH_NETSTACK
    sprig_status st = sprig_ns_os_set_url(&e->ns, url, listening, NS_PORT, out, cap);
    if (st != SPRIG_STATUS_OK) {
        fprintf(stderr, "%s: %s: %s\n", PROG, url, sprig_ns_os_set_error(&e->ns));
    }
    return st;
#else
    (void)e;
    (void)listening;
    sprig_url u;
    if (sprig_url_parse(url, &u) == SPRIG_STATUS_OK &&
        (u.scheme == SPRIG_URL_SERIAL || sprig_url_scheme_is(&u, "sprig+udp"))) {
        fprintf(stderr, "%s: %s: the netstack was not built\n", PROG, url);
        return SPRIG_STATUS_UNIMPLEMENTED;
    }
    return (size_t)snprintf(out, cap, "%s", url) < cap ? SPRIG_STATUS_OK
                                                       : SPRIG_STATUS_INVALID_ARGUMENT;
#endif
}

static server srv;

static int cmd_serve(int argc, char **argv)
{
    server *s = &srv;
    const char *urls[MAX_LISTENERS];
    size_t nurls = 0;
    const char *root = NULL;
    uint32_t flags = SPRIG_TRANSFER_FILE_KEEP_PARTIAL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            if (nurls == MAX_LISTENERS) {
                fprintf(stderr, "%s: at most %d --listen\n", PROG, MAX_LISTENERS);
                return EXIT_USAGE;
            }
            urls[nurls++] = argv[++i];
        } else if (strcmp(argv[i], "--root") == 0 && i + 1 < argc) {
            root = argv[++i];
        } else if (strcmp(argv[i], "--read-only") == 0) {
            flags |= SPRIG_TRANSFER_FILE_READ_ONLY;
        } else if (strcmp(argv[i], "--discard-partial") == 0) {
            flags &= ~SPRIG_TRANSFER_FILE_KEEP_PARTIAL;
        } else if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0) {
            s->verbose = true;
        } else {
            int t = parse_tuning(argc, argv, &i);
            if (t < 0) {
                return EXIT_USAGE; /* a bad value (said why) */
            }
            if (t == 0) {
                fprintf(stderr, "%s: serve: unexpected argument '%s'\n", PROG, argv[i]);
                usage(stderr);
                return EXIT_USAGE;
            }
        }
    }
    if (nurls == 0 || root == NULL) {
        usage(stderr);
        return EXIT_USAGE;
    }
    int rc = 0;
    sprig_status st = sprig_transfer_file_handler_init(&s->files, root, flags);
    if (st != SPRIG_STATUS_OK) {
        sprig_transfer_file_handler_deinit(&s->files);
        return fail(st, "root directory %s", root);
    }
    if ((st = env_init(&s->env)) != SPRIG_STATUS_OK) {
        rc = fail(st, "event loop and OS backend");
        goto out;
    }
    sprig_transfer_server_cfg xc = {
        .loop = &s->env.ol.loop,
        .handler = &s->files.handler,
        .max_sessions = MAX_SESSIONS,
        .window_chunks = WINDOW_CHUNKS,
        .dgram_max_chunk = UDP_CHUNK,
        .chunk_timeout = SPRIG_TIME_MS(g_tune.timeout_ms),
        .max_retries = g_tune.retries,
        .on_event = on_server_event,
        .user = s,
    };
    if ((st = sprig_transfer_server_init(&s->xs, &xc)) != SPRIG_STATUS_OK) {
        rc = fail(st, "transfer server");
        goto out;
    }
    for (size_t i = 0; i < nurls; i++) {
        sprig_sock *l = NULL;
        char lurl[300];
        st = env_url(&s->env, urls[i], true, lurl, sizeof(lurl));
        if (st == SPRIG_STATUS_OK) {
            /* the scheme's type: SEQPACKET for unix, tcp and sprig, DGRAM for udp */
            st = sprig_sock_listen(&s->env.ol.loop, lurl, SPRIG_SOCK_DEFAULT, &l);
        }
        if (st != SPRIG_STATUS_OK) {
            rc = fail(st, "listen on %s", urls[i]);
            goto out;
        }
        char where[300];
        sprig_os_bound_url(lurl, l, where, sizeof(where));
        printf("%s: listening on %s%s%s\n", PROG, where, strcmp(lurl, urls[i]) != 0 ? " via " : "",
               strcmp(lurl, urls[i]) != 0 ? urls[i] : "");
        /* a DGRAM socket: one node on the bound socket serves every peer */
        if ((st = sprig_transfer_server_add(&s->xs, l)) != SPRIG_STATUS_OK) {
            fail(st, "serve %s", urls[i]);
        }
    }
    printf("%s: serving %zu file(s) from %s\n", PROG, s->files.count, root);
    fflush(stdout);
    st = sprig_loop_run(&s->env.ol.loop);
    if (st != SPRIG_STATUS_OK) {
        rc = fail(st, "event loop");
    } else if (s->error != SPRIG_STATUS_OK) {
        rc = exit_code(s->error);
    }
    printf("%s: stopped after %lu connection(s), %lu transfer(s)\n", PROG, s->xs.accepted,
           s->xs.transfers);
out:
    sprig_transfer_server_deinit(&s->xs);
    if (s->env.loop_ready) {
        (void)sprig_loop_run_once(&s->env.ol.loop, 0);
    }
    env_deinit(&s->env);
    sprig_transfer_file_handler_deinit(&s->files);
    return rc;
}

/* ---- progress ---------------------------------------------------------------------------------
 */

typedef struct progress {
    bool quiet, tty;
    const char *what;
    sprig_time start, last;
    uint64_t base;  /* bytes already there (resume) */
    uint64_t done;  /* bytes moved by this transfer */
    uint64_t total; /* bytes this transfer moves (size - base), or SIZE_UNKNOWN */
    bool shown;
} progress;

static void human(char *out, size_t cap, double v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024.0;
        u++;
    }
    snprintf(out, cap, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
}

static void progress_show(progress *p, sprig_time now, bool final)
{
    if (p->quiet) {
        return;
    }
    sprig_time min_gap = p->tty ? SPRIG_TIME_MS(100) : SPRIG_TIME_MS(1000);
    if (!final && p->shown && now - p->last < min_gap) {
        return;
    }
    p->last = now;
    p->shown = true;
    double secs = (double)(now - p->start) / 1e6;
    double rate = secs > 0 ? (double)p->done / secs : 0.0;
    uint64_t have = p->base + p->done;
    bool known = p->total != SPRIG_TRANSFER_SIZE_UNKNOWN;
    uint64_t all = known ? p->base + p->total : 0;
    char b_have[32], b_total[32], b_rate[32], pct[16] = "", eta[32] = "";
    human(b_have, sizeof(b_have), (double)have);
    human(b_total, sizeof(b_total), (double)all);
    human(b_rate, sizeof(b_rate), rate);
    if (known) {
        unsigned percent = all == 0 ? 100u : (unsigned)(have * 100u / all);
        snprintf(pct, sizeof(pct), " %3u%%", percent);
        if (!final && rate > 0 && all >= have) {
            unsigned long left = (unsigned long)((double)(all - have) / rate + 0.5);
            snprintf(eta, sizeof(eta), "  ETA %lu:%02lu", left / 60, left % 60);
        }
    }
    if (p->tty) {
        printf("\r%s: %s%s%s%s  %s/s%s\033[K", p->what, b_have, known ? " / " : "",
               known ? b_total : "", pct, b_rate, eta);
        if (final) {
            putchar('\n');
        }
    } else {
        char total[32] = "";
        if (known) {
            snprintf(total, sizeof(total), "/%" PRIu64, all);
        }
        printf("%s: %" PRIu64 "%s bytes%s, %s/s%s%s\n", p->what, have, total, pct, b_rate, eta,
               final ? ", done" : "");
    }
    fflush(stdout);
}

/* ---- put / get --------------------------------------------------------------------------------
 */

typedef struct client {
    env env;
    sprig_transfer_node node;
    bool node_ready;
    sprig_transfer_session sessions[2];
    uint8_t *rx;
    bool finished;
    sprig_status result;
    uint32_t session;
    progress prog;
} client;

static client cli;

static void client_done(sprig_transfer_node *node, uint32_t session_id, sprig_status status,
                        void *user)
{
    client *c = user;
    (void)node;
    (void)session_id;
    c->result = status;
    c->finished = true;
}

static void client_progress(sprig_transfer_node *node, uint32_t session_id, uint64_t done,
                            uint64_t total, void *user)
{
    client *c = user;
    (void)session_id;
    c->prog.done = done;
    c->prog.total = total;
    progress_show(&c->prog, sprig_loop_now(&c->env.ol.loop), false);
    (void)node;
}

static sprig_status client_connect(client *c, const char *url)
{
    sprig_status st = env_init(&c->env);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    sprig_sock *sock = NULL;
    char durl[300];
    if ((st = env_url(&c->env, url, false, durl, sizeof(durl))) != SPRIG_STATUS_OK) {
        return st;
    }
    st = sprig_sock_dial_wait(&c->env.ol.loop, durl, SPRIG_SOCK_DEFAULT, DIAL_TIMEOUT, &sock);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    size_t mtu = sprig_sock_max_message_size(sock);
    c->rx = malloc(mtu);
    if (c->rx == NULL) {
        sprig_sock_close(sock);
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    sprig_transfer_cfg cfg = {
        .loop = &c->env.ol.loop,
        .sock = sock,
        .sessions = c->sessions,
        .max_sessions = sizeof(c->sessions) / sizeof(c->sessions[0]),
        .rx_buf = c->rx,
        .rx_cap = mtu,
        .window_chunks = WINDOW_CHUNKS,
        .max_chunk = sprig_sock_type_of(sock) == SPRIG_SOCK_DGRAM ? UDP_CHUNK : 0,
        .chunk_timeout = SPRIG_TIME_MS(g_tune.timeout_ms),
        .max_retries = g_tune.retries,
    };
    st = sprig_transfer_init(&c->node, &cfg);
    if (st != SPRIG_STATUS_OK) {
        sprig_sock_close(sock);
        return st;
    }
    c->node_ready = true;
    return SPRIG_STATUS_OK;
}

static void client_close(client *c)
{
    if (c->node_ready) {
        sprig_transfer_deinit(&c->node);
        c->node_ready = false;
    }
    if (c->env.loop_ready) {
        (void)sprig_loop_run_once(&c->env.ol.loop, 0);
    }
    env_deinit(&c->env);
    free(c->rx);
    c->rx = NULL;
}

static bool is_finished(void *arg)
{
    client *c = arg;
    return c->finished || c->env.signalled;
}

/* Run one transfer to its end; a signal cancels it (CANCELLED). */
static sprig_status client_run(client *c)
{
    for (;;) {
        sprig_status st = sprig_loop_run_until(&c->env.ol.loop, is_finished, c, SPRIG_TIME_NEVER);
        if (c->finished) {
            return c->result;
        }
        if (st != SPRIG_STATUS_OK) {
            return st;
        }
        if (c->env.signalled) {
            c->env.signalled = false;
            if (sprig_transfer_cancel(&c->node, c->session) != SPRIG_STATUS_OK) {
                return SPRIG_STATUS_CANCELLED;
            }
        }
    }
}

/* Start one transfer (read or write) and wait for it. */
static sprig_status transfer_one(client *c, bool write, uint32_t resource_id,
                                 const sprig_transfer_handler *local, uint32_t local_id,
                                 uint64_t offset, bool show)
{
    sprig_transfer_opts opts = {
        .resource_id = resource_id,
        .local = local,
        .local_id = local_id,
        .initial_offset = offset,
        .progress = show ? client_progress : NULL,
        .done = client_done,
        .user = c,
    };
    c->finished = false;
    c->result = SPRIG_STATUS_UNKNOWN;
    sprig_status st = write ? sprig_transfer_write(&c->node, &opts, &c->session)
                            : sprig_transfer_read(&c->node, &opts, &c->session);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    return client_run(c);
}

static int parse_client_flags(int *argc, char ***argv, bool *quiet, bool *resume, bool allow_resume)
{
    int n = *argc;
    char **v = *argv;
    while (n > 0 && v[0][0] == '-' && v[0][1] == '-') {
        int i = 0;
        int t = parse_tuning(n, v, &i);
        if (t < 0) {
            return EXIT_USAGE;
        }
        if (t > 0) {
            n -= 2;
            v += 2;
            continue;
        }
        if (strcmp(v[0], "--quiet") == 0) {
            *quiet = true;
        } else if (allow_resume && strcmp(v[0], "--resume") == 0) {
            *resume = true;
        } else {
            fprintf(stderr, "%s: unexpected option '%s'\n", PROG, v[0]);
            usage(stderr);
            return EXIT_USAGE;
        }
        n--;
        v++;
    }
    if (n != 3) {
        usage(stderr);
        return EXIT_USAGE;
    }
    *argc = n;
    *argv = v;
    return 0;
}

/* CRC-32 of the first n bytes of the local file (handler lf, resource LOCAL_ID). */
static sprig_status local_crc(sprig_transfer_file_handler *lf, uint64_t n, uint32_t *crc)
{
    void *h = NULL;
    uint64_t size = 0;
    sprig_status st =
        lf->handler.ops->open(lf->handler.ctx, LOCAL_ID, SPRIG_TRANSFER_ACCESS_READ, 0, &h, &size);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    static uint8_t buf[65536];
    uint32_t c = 0;
    uint64_t at = 0;
    while (at < n && st == SPRIG_STATUS_OK) {
        size_t want = n - at < sizeof(buf) ? (size_t)(n - at) : sizeof(buf);
        size_t got = 0;
        st = lf->handler.ops->read(lf->handler.ctx, h, at, buf, want, &got);
        if (st == SPRIG_STATUS_OK && got != want) {
            st = SPRIG_STATUS_OUT_OF_RANGE; /* LOCAL shrank */
        }
        c = sprig_transfer_crc32(c, buf, got);
        at += got;
    }
    lf->handler.ops->close(lf->handler.ctx, h, SPRIG_STATUS_OK);
    *crc = c;
    return st;
}

/* put --resume: read the server's partial-upload list and find where NAME can continue. */
static sprig_status resume_offset(client *c, sprig_transfer_file_handler *lf, const char *name,
                                  uint64_t size, uint64_t *offset)
{
    *offset = 0;
    char *list = malloc(SPRIG_TRANSFER_PARTIAL_LIST_MAX + 1);
    if (list == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    sprig_transfer_mem_resource res = {
        .id = LOCAL_ID,
        .data = (uint8_t *)list,
        .cap = SPRIG_TRANSFER_PARTIAL_LIST_MAX,
        .access = SPRIG_TRANSFER_ACCESS_WRITE,
    };
    sprig_transfer_mem_handler mh;
    sprig_transfer_mem_handler_init(&mh, &res, 1);
    sprig_status st =
        transfer_one(c, false, SPRIG_TRANSFER_PARTIAL_RESOURCE, &mh.handler, LOCAL_ID, 0, false);
    if (st != SPRIG_STATUS_OK) {
        free(list);
        return st;
    }
    list[res.len] = '\0';
    size_t name_len = strlen(name);
    for (char *line = list; *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl == NULL) {
            break;
        }
        *nl = '\0';
        unsigned long long psize = 0;
        unsigned pcrc = 0;
        int used = 0;
        if (sscanf(line, "%llu %8x %n", &psize, &pcrc, &used) == 2 && used > 0 &&
            strlen(line + used) == name_len && memcmp(line + used, name, name_len) == 0) {
            uint32_t lcrc = 0;
            if (psize > 0 && psize <= size && local_crc(lf, psize, &lcrc) == SPRIG_STATUS_OK &&
                lcrc == (uint32_t)pcrc) {
                *offset = psize;
            }
            break;
        }
        line = nl + 1;
    }
    free(list);
    return SPRIG_STATUS_OK;
}

static int cmd_put(int argc, char **argv)
{
    client *c = &cli;
    bool quiet = false, resume = false;
    int rc = parse_client_flags(&argc, &argv, &quiet, &resume, true);
    if (rc != 0) {
        return rc;
    }
    const char *url = argv[0], *local = argv[1], *name = argv[2];
    if (sprig_transfer_name_check(name) != SPRIG_STATUS_OK) {
        return fail(SPRIG_STATUS_INVALID_ARGUMENT,
                    "put: bad name '%s' (no '/', no leading '.', no control characters)", name);
    }
    memset(c, 0, sizeof(*c));
    sprig_transfer_file_handler lf;
    sprig_status st =
        sprig_transfer_file_handler_init_file(&lf, local, LOCAL_ID, SPRIG_TRANSFER_FILE_READ_ONLY);
    if (st != SPRIG_STATUS_OK) {
        return fail(st, "put: %s", local);
    }
    /* check the local file before connecting: a clear local error */
    void *h = NULL;
    uint64_t size = 0;
    st = lf.handler.ops->open(lf.handler.ctx, LOCAL_ID, SPRIG_TRANSFER_ACCESS_READ, 0, &h, &size);
    if (st != SPRIG_STATUS_OK) {
        sprig_transfer_file_handler_deinit(&lf);
        return fail(st, "put: open %s", local);
    }
    lf.handler.ops->close(lf.handler.ctx, h, SPRIG_STATUS_OK);

    if ((st = client_connect(c, url)) != SPRIG_STATUS_OK) {
        rc = fail(st, "put: connect to %s", url);
        goto out;
    }
    /* 1. the name, so that the server can create the file */
    uint8_t name_buf[SPRIG_TRANSFER_NAME_MAX];
    size_t name_len = strlen(name);
    memcpy(name_buf, name, name_len);
    sprig_transfer_mem_resource res = {
        .id = LOCAL_ID,
        .data = name_buf,
        .cap = sizeof(name_buf),
        .len = name_len,
        .access = SPRIG_TRANSFER_ACCESS_READ,
    };
    sprig_transfer_mem_handler mh;
    sprig_transfer_mem_handler_init(&mh, &res, 1);
    st = transfer_one(c, true, SPRIG_TRANSFER_NAME_RESOURCE, &mh.handler, LOCAL_ID, 0, false);
    if (st != SPRIG_STATUS_OK) {
        rc = fail(st, "put: register name '%s'", name);
        goto out;
    }
    char what[300];
    snprintf(what, sizeof(what), "put %s", name);
    /* 2. with --resume: where the server's kept part ends, if it matches LOCAL */
    uint64_t offset = 0;
    if (resume) {
        st = resume_offset(c, &lf, name, size, &offset);
        if (st != SPRIG_STATUS_OK) {
            rc = fail(st, "put: list the server's partial uploads");
            goto out;
        }
        if (!quiet) {
            if (offset != 0) {
                printf("%s: resuming at byte %" PRIu64 "\n", what, offset);
            } else {
                printf("%s: no matching partial upload on the server: from the start\n", what);
            }
        }
    }
    /* 3. the bytes */
    c->prog = (progress){.quiet = quiet,
                         .tty = isatty(STDOUT_FILENO) != 0,
                         .what = what,
                         .start = sprig_loop_now(&c->env.ol.loop),
                         .base = offset,
                         .total = size - offset};
    st = transfer_one(c, true, sprig_transfer_name_id(name), &lf.handler, LOCAL_ID, offset, true);
    if (st == SPRIG_STATUS_OK) {
        c->prog.done = size - offset;
        progress_show(&c->prog, sprig_loop_now(&c->env.ol.loop), true);
    } else {
        if (c->prog.shown && c->prog.tty && !quiet) {
            putchar('\n');
        }
        rc = fail(st, "put %s as %s", local, name);
    }
out:
    client_close(c);
    sprig_transfer_file_handler_deinit(&lf);
    return rc;
}

/* Whether a failed download's partial bytes are worth keeping for --resume. */
static bool resumable(sprig_status st)
{
    return st == SPRIG_STATUS_ABORTED || st == SPRIG_STATUS_CANCELLED ||
           st == SPRIG_STATUS_DEADLINE_EXCEEDED || st == SPRIG_STATUS_UNAVAILABLE;
}

static int cmd_get(int argc, char **argv)
{
    client *c = &cli;
    bool quiet = false, resume = false;
    int rc = parse_client_flags(&argc, &argv, &quiet, &resume, true);
    if (rc != 0) {
        return rc;
    }
    const char *url = argv[0], *name = argv[1], *local = argv[2];
    if (sprig_transfer_name_check(name) != SPRIG_STATUS_OK) {
        return fail(SPRIG_STATUS_INVALID_ARGUMENT,
                    "get: bad name '%s' (no '/', no leading '.', no control characters)", name);
    }
    memset(c, 0, sizeof(*c));
    sprig_transfer_file_handler lf;
    sprig_status st = sprig_transfer_file_handler_init_file(&lf, local, LOCAL_ID,
                                                            SPRIG_TRANSFER_FILE_KEEP_PARTIAL);
    if (st != SPRIG_STATUS_OK) {
        return fail(st, "get: %s", local);
    }
    char part[4096];
    st = sprig_transfer_file_handler_partial_path(&lf, LOCAL_ID, part, sizeof(part));
    if (st != SPRIG_STATUS_OK) {
        sprig_transfer_file_handler_deinit(&lf);
        return fail(st, "get: %s", local);
    }
    uint64_t offset = 0;
    struct stat sb;
    if (resume && stat(part, &sb) == 0 && S_ISREG(sb.st_mode)) {
        offset = (uint64_t)sb.st_size;
    }
    if ((st = client_connect(c, url)) != SPRIG_STATUS_OK) {
        rc = fail(st, "get: connect to %s", url);
        goto out;
    }
    char what[300];
    snprintf(what, sizeof(what), "get %s", name);
    c->prog = (progress){.quiet = quiet,
                         .tty = isatty(STDOUT_FILENO) != 0,
                         .what = what,
                         .start = sprig_loop_now(&c->env.ol.loop),
                         .base = offset,
                         .total = SPRIG_TRANSFER_SIZE_UNKNOWN};
    if (offset != 0 && !quiet) {
        printf("%s: resuming at byte %" PRIu64 "\n", what, offset);
    }
    st = transfer_one(c, false, sprig_transfer_name_id(name), &lf.handler, LOCAL_ID, offset, true);
    if (st == SPRIG_STATUS_OK) {
        if (c->prog.total != SPRIG_TRANSFER_SIZE_UNKNOWN) {
            c->prog.done = c->prog.total;
        }
        progress_show(&c->prog, sprig_loop_now(&c->env.ol.loop), true);
    } else {
        if (c->prog.shown && c->prog.tty && !quiet) {
            putchar('\n');
        }
        bool keep = resumable(st) && stat(part, &sb) == 0 && sb.st_size > 0;
        if (!keep) {
            (void)unlink(part);
        }
        rc = fail(st, "get %s into %s%s", name, local,
                  keep ? " (partial data kept: retry with --resume)" : "");
    }
out:
    client_close(c);
    sprig_transfer_file_handler_deinit(&lf);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "serve") == 0) {
        return cmd_serve(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "put") == 0) {
        return cmd_put(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "get") == 0) {
        return cmd_get(argc - 2, argv + 2);
    }
    fprintf(stderr, "%s: unknown command '%s'\n", PROG, argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
