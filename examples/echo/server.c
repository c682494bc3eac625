/*
 * sprig-echo-server — serves sprig.examples.echo.Echo (examples/echo/echo.proto: one method of
 * each call kind) and pw_rpc's stock pw.rpc.EchoService, through the code protoc-gen-sprig
 * generated for them.
 *
 *   sprig-echo-server --listen URL [--listen URL ...] [--verbose]
 *
 * URLs: unix:PATH, tcp://HOST:PORT (port 0 picks a free one), any SEQPACKET URL sprig knows,
 * and netstack endpoints serial:PATH / sprig+udp://HOST:PORT?listen=1 (served on sprig://2:1).
 * Prints one line per listener, "sprig-echo-server: listening on URL" (with the real port), then
 * serves every connection on one loop until SIGINT/SIGTERM. Errors are printed as
 * "sprig-echo-server: <what>: <STATUS>" and the exit status is non-zero.
 *
 * The handlers show the generated server API: Echo answers synchronously; Count streams with
 * flow control (a send that returns UNAVAILABLE resumes from Count_ready); Sum keeps a running
 * total in call->user; Chat queues its replies while the socket is full.
 * Host-side example code: it may allocate (per-call state).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <ctype.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common.h"
#include "echo.sprig.h"
#include "pw_rpc/echo.sprig.h"
#include "sprig/rpc.h"
#include "sprig/url.h"

enum {
    MAX_CALLS = 64,
    MAX_CONNS = 32,
    MAX_LISTENERS = 8,
    COUNT_MAX = 1000, /* Count refuses more with INVALID_ARGUMENT */
    CHAT_QUEUE = 16,  /* Chat replies waiting for room; more ends the call */
};

typedef struct server {
    echo_env env;
    sprig_rpc_server rpc;
    sprig_rpc_call calls[MAX_CALLS];
    sprig_rpc_conn conns[MAX_CONNS];
    uint8_t rx[ECHO_MAX_MESSAGE];
    sprig_sock *listeners[MAX_LISTENERS];
    size_t nlisteners;
    sprig_examples_echo_Echo_service echo_svc;
    pw_rpc_EchoService_service pw_svc;
    bool verbose;
    unsigned long connections;
    sprig_status error;
} server;

static server srv; /* big (receive buffer): static storage */

static void logf_(const server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const server *s, const char *fmt, ...)
{
    if (!s->verbose) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    printf("%s: ", echo_prog);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* ---- per-call state ------------------------------------------------------------------------ */

/* After the last send or finish of a streaming handler: free the call's state once the call is
 * over. `state` is call->user read before the send: a call that has ended is invalid, and its
 * slot (call->user too) may already be cleared. UNAVAILABLE: the call is still open and the
 * handler resumes from its _ready callback. ABORTED: the connection is going away and _abort
 * will run (and free the state). */
static void settle(sprig_rpc_call *call, void *state, sprig_status st)
{
    switch (st) {
    case SPRIG_STATUS_UNAVAILABLE:
    case SPRIG_STATUS_ABORTED:
        return;
    case SPRIG_STATUS_OK:                  /* finished */
    case SPRIG_STATUS_RESOURCE_EXHAUSTED:  /* too large: the server ended the call */
    case SPRIG_STATUS_FAILED_PRECONDITION: /* already over */
        free(state);
        return;
    default: /* a failure that left the call open (INTERNAL: nanopb could not encode) */
        settle(call, state, sprig_rpc_call_finish(call, NULL, 0, SPRIG_STATUS_INTERNAL));
        return;
    }
}

static void free_state(sprig_rpc_call *call, sprig_status status)
{
    (void)status;
    free(call->user);
    call->user = NULL;
}

/* ---- sprig.examples.echo.Echo -------------------------------------------------------------- */

/* Echo (unary, synchronous): the text back with its length. */
static sprig_status echo_echo(void *ctx, const sprig_examples_echo_EchoRequest *req,
                              sprig_examples_echo_EchoReply *resp)
{
    size_t n = strnlen(req->text, sizeof(req->text) - 1);
    memcpy(resp->text, req->text, n);
    resp->text[n] = '\0';
    resp->length = (uint32_t)n;
    logf_(ctx, "Echo \"%s\"", resp->text);
    return SPRIG_STATUS_OK;
}

/* Count (server streaming): 1..count, resuming from Count_ready when the socket is full. */
typedef struct count_state {
    uint32_t next;
    uint32_t count;
} count_state;

static void count_pump(sprig_rpc_call *call)
{
    count_state *cs = call->user;
    sprig_status st = SPRIG_STATUS_OK;
    while (cs->next <= cs->count) {
        sprig_examples_echo_CountReply reply = {.value = cs->next};
        st = sprig_examples_echo_Echo_Count_send(call, &reply);
        if (st != SPRIG_STATUS_OK) {
            settle(call, cs, st);
            return;
        }
        cs->next++;
    }
    settle(call, cs, sprig_examples_echo_Echo_Count_finish(call, SPRIG_STATUS_OK));
}

static void echo_count(sprig_rpc_call *call, const sprig_examples_echo_CountRequest *req)
{
    logf_(sprig_examples_echo_Echo_ctx(call), "Count %u", (unsigned)req->count);
    if (req->count > COUNT_MAX) {
        (void)sprig_examples_echo_Echo_Count_finish(call, SPRIG_STATUS_INVALID_ARGUMENT);
        return;
    }
    count_state *cs = calloc(1, sizeof(*cs));
    if (cs == NULL) {
        (void)sprig_examples_echo_Echo_Count_finish(call, SPRIG_STATUS_RESOURCE_EXHAUSTED);
        return;
    }
    cs->next = 1;
    cs->count = req->count;
    call->user = cs;
    count_pump(call);
}

/* Sum (client streaming): a running total; the answer once the client is done. */
typedef struct sum_state {
    int64_t sum;
    uint32_t count;
} sum_state;

static void echo_sum_begin(sprig_rpc_call *call)
{
    call->user = calloc(1, sizeof(sum_state));
    if (call->user == NULL) {
        (void)sprig_examples_echo_Echo_Sum_respond(call, NULL, SPRIG_STATUS_RESOURCE_EXHAUSTED);
    }
}

static void echo_sum_message(sprig_rpc_call *call, const sprig_examples_echo_Number *req)
{
    sum_state *ss = call->user;
    ss->sum += req->value;
    ss->count++;
}

static void echo_sum_respond(sprig_rpc_call *call)
{
    sum_state *ss = call->user;
    sprig_examples_echo_SumReply reply = {.sum = ss->sum, .count = ss->count};
    logf_(sprig_examples_echo_Echo_ctx(call), "Sum of %u numbers: %lld", (unsigned)ss->count,
          (long long)ss->sum);
    settle(call, ss, sprig_examples_echo_Echo_Sum_respond(call, &reply, SPRIG_STATUS_OK));
}

/* Chat (bidirectional): every message answered in upper case with the same seq; replies wait
 * in a small queue while the socket is full; OK once the client is done and the queue empty. */
typedef struct chat_state {
    sprig_examples_echo_ChatMessage queue[CHAT_QUEUE];
    size_t head;
    size_t len;
    bool client_done;
} chat_state;

static void chat_flush(sprig_rpc_call *call)
{
    chat_state *cs = call->user;
    while (cs->len > 0) {
        sprig_status st = sprig_examples_echo_Echo_Chat_send(call, &cs->queue[cs->head]);
        if (st != SPRIG_STATUS_OK) {
            settle(call, cs, st);
            return;
        }
        cs->head = (cs->head + 1) % CHAT_QUEUE;
        cs->len--;
    }
    if (cs->client_done) {
        settle(call, cs, sprig_examples_echo_Echo_Chat_finish(call, SPRIG_STATUS_OK));
    }
}

static void echo_chat_begin(sprig_rpc_call *call)
{
    call->user = calloc(1, sizeof(chat_state));
    if (call->user == NULL) {
        (void)sprig_examples_echo_Echo_Chat_finish(call, SPRIG_STATUS_RESOURCE_EXHAUSTED);
    }
}

static void echo_chat_message(sprig_rpc_call *call, const sprig_examples_echo_ChatMessage *req)
{
    chat_state *cs = call->user;
    logf_(sprig_examples_echo_Echo_ctx(call), "Chat #%u \"%s\"", (unsigned)req->seq, req->text);
    if (cs->len == CHAT_QUEUE) {
        settle(call, cs,
               sprig_examples_echo_Echo_Chat_finish(call, SPRIG_STATUS_RESOURCE_EXHAUSTED));
        return;
    }
    sprig_examples_echo_ChatMessage *reply = &cs->queue[(cs->head + cs->len) % CHAT_QUEUE];
    size_t i = 0;
    for (; i < sizeof(reply->text) - 1 && req->text[i] != '\0'; i++) {
        reply->text[i] = (char)toupper((unsigned char)req->text[i]);
    }
    reply->text[i] = '\0';
    reply->seq = req->seq;
    cs->len++;
    bool flushing = cs->len == 1; /* else a send is already waiting for Chat_ready */
    if (flushing) {
        chat_flush(call);
    }
}

static void echo_chat_client_done(sprig_rpc_call *call)
{
    chat_state *cs = call->user;
    cs->client_done = true;
    if (cs->len == 0) {
        chat_flush(call);
    }
}

static const sprig_examples_echo_Echo_handlers echo_handlers = {
    .Echo = echo_echo,
    .Count = echo_count,
    .Count_abort = free_state,
    .Count_ready = count_pump,
    .Sum_begin = echo_sum_begin,
    .Sum_message = echo_sum_message,
    .Sum_client_done = echo_sum_respond,
    .Sum_abort = free_state,
    .Sum_ready = echo_sum_respond,
    .Chat_begin = echo_chat_begin,
    .Chat_message = echo_chat_message,
    .Chat_client_done = echo_chat_client_done,
    .Chat_abort = free_state,
    .Chat_ready = chat_flush,
};

/* ---- pw.rpc.EchoService -------------------------------------------------------------------- */

static sprig_status pw_echo(void *ctx, const pw_rpc_EchoMessage *req, pw_rpc_EchoMessage *resp)
{
    memcpy(resp->msg, req->msg, sizeof(resp->msg));
    resp->msg[sizeof(resp->msg) - 1] = '\0';
    logf_(ctx, "pw.rpc.EchoService/Echo \"%s\"", resp->msg);
    return SPRIG_STATUS_OK;
}

static const pw_rpc_EchoService_handlers pw_handlers = {.Echo = pw_echo};

/* ---- listeners ------------------------------------------------------------------------------ */

static void server_stop(server *s, const char *what, sprig_status st)
{
    if (s->error == SPRIG_STATUS_OK) {
        s->error = st != SPRIG_STATUS_OK ? st : SPRIG_STATUS_ABORTED;
        echo_fail(what, s->error);
    }
    sprig_loop_stop(&s->env.ol.loop);
}

static void on_listener(sprig_sock *l, sprig_sock_event ev, sprig_status status, void *user)
{
    server *s = user;
    if (ev == SPRIG_SOCK_EV_CLOSED) {
        server_stop(s, "listener", status);
        return;
    }
    if (ev != SPRIG_SOCK_EV_READABLE) {
        return;
    }
    for (;;) {
        sprig_sock *sock = NULL;
        sprig_status st = sprig_sock_accept(l, &sock);
        if (st == SPRIG_STATUS_UNAVAILABLE) {
            return;
        }
        if (st != SPRIG_STATUS_OK) {
            echo_fail("accept", st); /* keep serving the others */
            return;
        }
        st = sprig_rpc_server_serve(&s->rpc, sock, NULL);
        if (st != SPRIG_STATUS_OK) {
            echo_fail("serve a new connection", st); /* no free connection slot */
            sprig_sock_close(sock);
            continue;
        }
        s->connections++;
    }
}

static void on_conn(sprig_rpc_server *rpc, sprig_rpc_conn *conn, bool up, void *ctx)
{
    (void)rpc;
    (void)conn;
    logf_(ctx, "connection %s", up ? "opened" : "closed");
}

/* ---- signals -------------------------------------------------------------------------------- */

static void on_signal(sprig_os_fd *watch, uint32_t events)
{
    server *s = watch->arg;
    struct signalfd_siginfo si;
    (void)events;
    while (read(watch->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        logf_(s, "signal %u: stopping", (unsigned)si.ssi_signo);
        sprig_loop_stop(&s->env.ol.loop);
    }
}

/* ---- main ------------------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s --listen URL [--listen URL ...] [--verbose]\n"
            "  serves sprig.examples.echo.Echo and pw.rpc.EchoService on every URL\n"
            "  (unix:PATH, tcp://HOST:PORT; port 0 picks a free one) until SIGINT/SIGTERM\n",
            echo_prog);
}

int main(int argc, char **argv)
{
    server *s = &srv;
    const char *urls[MAX_LISTENERS];
    size_t nurls = 0;
    echo_prog = "sprig-echo-server";
    signal(SIGPIPE, SIG_IGN);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            if (nurls == MAX_LISTENERS) {
                fprintf(stderr, "%s: at most %d --listen\n", echo_prog, MAX_LISTENERS);
                return 2;
            }
            urls[nurls++] = argv[++i];
        } else if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0) {
            s->verbose = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "%s: unexpected argument '%s'\n", echo_prog, argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (nurls == 0) {
        usage(stderr);
        return 2;
    }

    int rc = 1;
    int sfd = -1;
    sprig_os_fd sig_watch;
    sigset_t mask;
    sprig_status st = echo_env_init(&s->env);
    if (st != SPRIG_STATUS_OK) {
        echo_fail("event loop and OS backend", st);
        goto out;
    }
    sprig_rpc_server_cfg cfg = {
        .loop = &s->env.ol.loop,
        .calls = s->calls,
        .max_calls = MAX_CALLS,
        .conns = s->conns,
        .max_conns = MAX_CONNS,
        .rx_buf = s->rx,
        .rx_cap = sizeof(s->rx),
        .on_conn = on_conn,
        .ctx = s,
    };
    if ((st = sprig_rpc_server_init(&s->rpc, &cfg)) != SPRIG_STATUS_OK) {
        echo_fail("rpc server", st);
        goto out;
    }
    if ((st = sprig_examples_echo_Echo_service_init(&s->echo_svc, &echo_handlers, s)) !=
            SPRIG_STATUS_OK ||
        (st = sprig_rpc_server_register(&s->rpc, &s->echo_svc.base)) != SPRIG_STATUS_OK) {
        echo_fail("register " sprig_examples_echo_Echo_SERVICE_NAME, st);
        goto out;
    }
    if ((st = pw_rpc_EchoService_service_init(&s->pw_svc, &pw_handlers, s)) != SPRIG_STATUS_OK ||
        (st = sprig_rpc_server_register(&s->rpc, &s->pw_svc.base)) != SPRIG_STATUS_OK) {
        echo_fail("register " pw_rpc_EchoService_SERVICE_NAME, st);
        goto out;
    }
    for (size_t i = 0; i < nurls; i++) {
        sprig_sock *l = NULL;
        char lurl[300];
        /* serial:/sprig+udp:// open a netstack endpoint and listen on sprig://NODE:1 */
        st = echo_env_url(&s->env, urls[i], true, lurl, sizeof(lurl));
        if (st == SPRIG_STATUS_OK) {
            st = sprig_sock_listen(&s->env.ol.loop, lurl, SPRIG_SOCK_SEQPACKET, &l);
        }
        if (st != SPRIG_STATUS_OK) {
            echo_failf(st, "listen on %s%s%s", urls[i], s->env.why[0] != '\0' ? ": " : "",
                       s->env.why);
            goto out;
        }
        s->listeners[s->nlisteners++] = l;
        sprig_sock_set_callback(l, on_listener, s);
        char where[300];
        if (strcmp(lurl, urls[i]) != 0) {
            printf("%s: listening on %s via %s\n", echo_prog, lurl, urls[i]);
        } else {
            sprig_os_bound_url(urls[i], l, where, sizeof(where));
            printf("%s: listening on %s\n", echo_prog, where);
        }
    }
    fflush(stdout);

    /* SIGINT/SIGTERM end the loop through a signalfd, so that everything is closed properly. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0 || sprig_os_loop_add_fd(&s->env.ol, &sig_watch, sfd, SPRIG_OS_EV_IN, on_signal,
                                        s) != SPRIG_STATUS_OK) {
        sigprocmask(SIG_UNBLOCK, &mask, NULL); /* then let the signals kill us plainly */
        if (sfd >= 0) {
            close(sfd);
            sfd = -1;
        }
    }

    st = sprig_loop_run(&s->env.ol.loop);
    if (st != SPRIG_STATUS_OK) {
        server_stop(s, "event loop", st);
    }
    const sprig_rpc_stats *stats = sprig_rpc_server_stats(&s->rpc);
    printf("%s: stopped after %lu connection(s), %lu packets in, %lu out\n", echo_prog,
           s->connections, (unsigned long)stats->packets_in, (unsigned long)stats->packets_out);
    rc = s->error == SPRIG_STATUS_OK ? 0 : 1;

out:
    if (sfd >= 0) {
        sprig_os_loop_del_fd(&s->env.ol, &sig_watch);
        close(sfd);
    }
    for (size_t i = 0; i < s->nlisteners; i++) {
        sprig_sock_close(s->listeners[i]);
    }
    sprig_rpc_server_deinit(&s->rpc);
    if (echo_env_deinit(&s->env) != 0) {
        echo_fail("teardown: sockets left open", SPRIG_STATUS_INTERNAL);
        rc = 1;
    }
    return rc;
}
