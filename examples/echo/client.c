/*
 * sprig-echo-client — calls sprig-echo-server through the code protoc-gen-sprig generated for
 * examples/echo/echo.proto and proto/pw_rpc/echo.proto.
 *
 *   sprig-echo-client --connect URL [--timeout MS] COMMAND [ARGS...]
 *       echo TEXT      unary, blocking (..._Echo_call)
 *       count N        server streaming, blocking (..._Count_open / _next)
 *       sum N...       client streaming, blocking (..._Sum_open / _write / _close_and_recv)
 *       chat A B C...  bidirectional, asynchronous (..._Chat_start with typed callbacks)
 *       pw-echo TEXT   pw_rpc's stock pw.rpc.EchoService/Echo
 *       demo           all of the above, each result checked
 *   sprig-echo-client --demo [--server PATH]
 *       Starts sprig-echo-server (default: the one beside this program) listening on a unix
 *       socket and on TCP, runs `demo` over both, stops the server. The README's demo.
 *
 * Every result is checked (an echo must come back unchanged, a sum must add up...). Errors are
 * printed as "sprig-echo-client: <what>: <STATUS>" and the exit status is non-zero.
 * Host-side example code: it may allocate.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "echo.sprig.h"
#include "pw_rpc/echo.sprig.h"
#include "sprig/rpc.h"

#define DEFAULT_TIMEOUT_MS 5000u
#define COUNT_SHOWN        20u /* count prints at most this many values */
#define CHAT_MAX           32u /* words per chat */

typedef struct client {
    echo_env env;
    sprig_rpc_client rpc;
    bool rpc_ready;
    sprig_time timeout;
    uint8_t rx[ECHO_MAX_MESSAGE];
} client;

static client cli; /* big (receive buffer): static storage */

/* Copy a C string into a nanopb char array; false if it does not fit. */
static bool set_text(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) {
        return false;
    }
    memcpy(dst, src, n + 1);
    return true;
}

static int mismatch(const char *what)
{
    return echo_fail(what, SPRIG_STATUS_DATA_LOSS);
}

/* ---- connection -------------------------------------------------------------------------- */

static sprig_status client_connect(client *c, const char *url, sprig_time timeout)
{
    memset(c, 0, sizeof(*c));
    c->timeout = timeout;
    sprig_status st = echo_env_init(&c->env);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    sprig_sock *sock = NULL;
    char durl[300];
    /* serial:/sprig+udp:// open a netstack endpoint and dial sprig://PEER:1 through it */
    st = echo_env_url(&c->env, url, false, durl, sizeof(durl));
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    st = sprig_sock_dial_wait(&c->env.ol.loop, durl, SPRIG_SOCK_SEQPACKET, timeout, &sock);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    sprig_rpc_client_cfg cfg = {
        .loop = &c->env.ol.loop,
        .sock = sock,
        .channel_id = 1,
        .rx_buf = c->rx,
        .rx_cap = sizeof(c->rx),
    };
    st = sprig_rpc_client_init(&c->rpc, &cfg);
    if (st != SPRIG_STATUS_OK) {
        sprig_sock_close(sock);
        return st;
    }
    c->rpc_ready = true;
    return SPRIG_STATUS_OK;
}

static int client_close(client *c)
{
    if (c->rpc_ready) {
        sprig_rpc_client_deinit(&c->rpc);
        c->rpc_ready = false;
    }
    /* let the loop deliver what closing queued, then check nothing leaked */
    (void)sprig_loop_run_once(&c->env.ol.loop, 0);
    if (echo_env_deinit(&c->env) != 0) {
        return echo_fail("teardown: sockets left open", SPRIG_STATUS_INTERNAL);
    }
    return 0;
}

/* ---- the commands --------------------------------------------------------------------------- */

/* echo TEXT: unary, blocking. */
static int cmd_echo(client *c, const char *text)
{
    sprig_examples_echo_EchoRequest req = sprig_examples_echo_EchoRequest_init_zero;
    sprig_examples_echo_EchoReply reply = sprig_examples_echo_EchoReply_init_zero;
    if (!set_text(req.text, sizeof(req.text), text)) {
        return echo_failf(SPRIG_STATUS_INVALID_ARGUMENT, "echo: text longer than %zu bytes",
                          sizeof(req.text) - 1);
    }
    sprig_status st = sprig_examples_echo_Echo_Echo_call(&c->rpc, &req, &reply, c->timeout);
    if (st != SPRIG_STATUS_OK) {
        return echo_fail("echo", st);
    }
    printf("echo:    \"%s\" -> \"%s\" (%u bytes)\n", text, reply.text, (unsigned)reply.length);
    if (strcmp(reply.text, text) != 0 || reply.length != strlen(text)) {
        return mismatch("echo: the reply differs from the request");
    }
    return 0;
}

/* count N: server streaming, blocking. */
static int cmd_count(client *c, const char *arg)
{
    unsigned long n = 0;
    if (!echo_parse_u32(arg, UINT32_MAX, &n)) {
        return echo_failf(SPRIG_STATUS_INVALID_ARGUMENT, "count: not a number: '%s'", arg);
    }
    sprig_examples_echo_CountRequest req = {.count = (uint32_t)n};
    static sprig_examples_echo_Echo_Count_stream stream; /* zeroed storage, reusable */
    sprig_status st = sprig_examples_echo_Echo_Count_open(&c->rpc, &stream, &req, c->timeout);
    if (st != SPRIG_STATUS_OK) {
        return echo_fail("count: start", st);
    }
    printf("count:  ");
    uint32_t expect = 1;
    sprig_status final = SPRIG_STATUS_UNKNOWN;
    for (;;) {
        sprig_examples_echo_CountReply reply;
        st = sprig_examples_echo_Echo_Count_next(&stream, &reply, &final, c->timeout);
        if (st != SPRIG_STATUS_OK) {
            break;
        }
        if (expect <= COUNT_SHOWN) {
            printf(" %u", (unsigned)reply.value);
        } else if (expect == COUNT_SHOWN + 1) {
            printf(" ...");
        }
        if (reply.value != expect) {
            putchar('\n');
            sprig_rpc_client_cancel(&stream.base);
            return mismatch("count: a value is out of sequence");
        }
        expect++;
    }
    printf(" (%s)\n", st == SPRIG_STATUS_OUT_OF_RANGE ? sprig_status_str(final) : "...");
    if (st != SPRIG_STATUS_OUT_OF_RANGE) {
        sprig_rpc_client_cancel(&stream.base);
        return echo_fail("count: next", st);
    }
    if (final != SPRIG_STATUS_OK) {
        return echo_fail("count", final);
    }
    if (expect - 1 != n) {
        return echo_failf(SPRIG_STATUS_DATA_LOSS, "count: %u values for %lu",
                          (unsigned)(expect - 1), n);
    }
    return 0;
}

/* sum N...: client streaming, blocking. */
static int cmd_sum(client *c, char **args, int nargs)
{
    int64_t expect = 0;
    sprig_examples_echo_Number numbers[64];
    if (nargs > (int)(sizeof(numbers) / sizeof(numbers[0]))) {
        return echo_failf(SPRIG_STATUS_INVALID_ARGUMENT, "sum: at most %zu numbers",
                          sizeof(numbers) / sizeof(numbers[0]));
    }
    for (int i = 0; i < nargs; i++) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(args[i], &end, 10);
        if (errno != 0 || end == args[i] || *end != '\0' || v > INT32_MAX || v < INT32_MIN) {
            return echo_failf(SPRIG_STATUS_INVALID_ARGUMENT, "sum: not a 32-bit number: '%s'",
                              args[i]);
        }
        numbers[i].value = v;
        expect += v;
    }
    static sprig_examples_echo_Echo_Sum_stream stream;
    sprig_status st = sprig_examples_echo_Echo_Sum_open(&c->rpc, &stream, c->timeout);
    if (st != SPRIG_STATUS_OK) {
        return echo_fail("sum: start", st);
    }
    for (int i = 0; i < nargs; i++) {
        st = sprig_examples_echo_Echo_Sum_write(&stream.base, &numbers[i]);
        if (st != SPRIG_STATUS_OK) {
            sprig_rpc_client_cancel(&stream.base);
            return echo_failf(st, "sum: send %s", args[i]);
        }
    }
    sprig_examples_echo_SumReply reply = sprig_examples_echo_SumReply_init_zero;
    st = sprig_examples_echo_Echo_Sum_close_and_recv(&stream, &reply, c->timeout);
    if (st != SPRIG_STATUS_OK) {
        return echo_fail("sum", st);
    }
    printf("sum:     ");
    for (int i = 0; i < nargs; i++) {
        printf("%s%s", i > 0 ? " + " : "", args[i]);
    }
    printf(" = %" PRId64 " (%u numbers)\n", reply.sum, (unsigned)reply.count);
    if (reply.sum != expect || reply.count != (uint32_t)nargs) {
        return echo_failf(SPRIG_STATUS_DATA_LOSS, "sum: expected %" PRId64 " of %d numbers", expect,
                          nargs);
    }
    return 0;
}

/* chat A B C...: bidirectional, asynchronous. */
typedef struct chat {
    char **words;
    uint32_t nwords;
    uint32_t replies;
    bool done;
    bool bad;
    sprig_status status;
} chat;

static void chat_next(sprig_examples_echo_Echo_Chat_client_call *call,
                      const sprig_examples_echo_ChatMessage *msg, void *user)
{
    chat *ch = user;
    (void)call;
    bool ok = msg->seq == ch->replies && msg->seq < ch->nwords;
    for (size_t i = 0; ok && i <= strlen(ch->words[msg->seq]); i++) {
        ok = msg->text[i] == (char)toupper((unsigned char)ch->words[msg->seq][i]);
    }
    printf("chat:    #%u \"%s\" -> \"%s\"%s\n", (unsigned)msg->seq,
           msg->seq < ch->nwords ? ch->words[msg->seq] : "?", msg->text, ok ? "" : "  (wrong)");
    ch->bad = ch->bad || !ok;
    ch->replies++;
}

static void chat_completed(sprig_examples_echo_Echo_Chat_client_call *call, sprig_status status,
                           void *user)
{
    chat *ch = user;
    (void)call;
    ch->status = status;
    ch->done = true;
}

static void chat_error(sprig_examples_echo_Echo_Chat_client_call *call, sprig_status status,
                       void *user)
{
    chat_completed(call, status, user);
}

static bool chat_done(void *arg)
{
    return ((const chat *)arg)->done;
}

static int cmd_chat(client *c, char **words, int nwords)
{
    static const sprig_examples_echo_Echo_Chat_cbs cbs = {
        .on_next = chat_next,
        .on_completed = chat_completed,
        .on_error = chat_error,
    };
    static sprig_examples_echo_Echo_Chat_client_call call;
    chat ch = {.words = words, .nwords = (uint32_t)nwords, .status = SPRIG_STATUS_UNKNOWN};
    if (nwords > (int)CHAT_MAX) {
        return echo_failf(SPRIG_STATUS_INVALID_ARGUMENT, "chat: at most %u words", CHAT_MAX);
    }
    sprig_status st = sprig_examples_echo_Echo_Chat_start(&c->rpc, &call, &cbs, &ch, c->timeout);
    if (st != SPRIG_STATUS_OK) {
        return echo_fail("chat: start", st);
    }
    for (int i = 0; i < nwords; i++) {
        sprig_examples_echo_ChatMessage msg = {.seq = (uint32_t)i};
        if (!set_text(msg.text, sizeof(msg.text), words[i])) {
            sprig_rpc_client_cancel(&call.base);
            return echo_failf(SPRIG_STATUS_INVALID_ARGUMENT, "chat: word longer than %zu bytes",
                              sizeof(msg.text) - 1);
        }
        st = sprig_examples_echo_Echo_Chat_write(&call.base, &msg);
        if (st != SPRIG_STATUS_OK) {
            sprig_rpc_client_cancel(&call.base);
            return echo_failf(st, "chat: send \"%s\"", words[i]);
        }
    }
    st = sprig_rpc_client_close_send(&call.base);
    if (st != SPRIG_STATUS_OK) {
        sprig_rpc_client_cancel(&call.base);
        return echo_fail("chat: close", st);
    }
    /* The call has a deadline (c->timeout), so on_completed or on_error will come. */
    st = sprig_loop_run_until(&c->env.ol.loop, chat_done, &ch, SPRIG_TIME_NEVER);
    if (st != SPRIG_STATUS_OK) {
        sprig_rpc_client_cancel(&call.base);
        return echo_fail("chat: event loop", st);
    }
    printf("chat:    %u replies (%s)\n", (unsigned)ch.replies, sprig_status_str(ch.status));
    if (ch.status != SPRIG_STATUS_OK) {
        return echo_fail("chat", ch.status);
    }
    if (ch.bad || ch.replies != ch.nwords) {
        return mismatch("chat: the replies do not match the messages");
    }
    return 0;
}

/* pw-echo TEXT: pw_rpc's stock echo service. */
static int cmd_pw_echo(client *c, const char *text)
{
    pw_rpc_EchoMessage req = pw_rpc_EchoMessage_init_zero;
    pw_rpc_EchoMessage reply = pw_rpc_EchoMessage_init_zero;
    if (!set_text(req.msg, sizeof(req.msg), text)) {
        return echo_failf(SPRIG_STATUS_INVALID_ARGUMENT, "pw-echo: text longer than %zu bytes",
                          sizeof(req.msg) - 1);
    }
    sprig_status st = pw_rpc_EchoService_Echo_call(&c->rpc, &req, &reply, c->timeout);
    if (st != SPRIG_STATUS_OK) {
        return echo_fail("pw-echo", st);
    }
    printf("pw-echo: \"%s\" -> \"%s\"\n", text, reply.msg);
    if (strcmp(reply.msg, text) != 0) {
        return mismatch("pw-echo: the reply differs from the request");
    }
    return 0;
}

/* demo: every command once. Returns the number of failed commands. */
static int cmd_demo(client *c)
{
    static char *numbers[] = {"1", "2", "3", "4", "5", "-20"};
    static char *words[] = {"hello", "from", "sprig"};
    int failed = 0;
    failed += cmd_echo(c, "hello, sprig") != 0;
    failed += cmd_count(c, "5") != 0;
    failed += cmd_sum(c, numbers, 6) != 0;
    failed += cmd_chat(c, words, 3) != 0;
    failed += cmd_pw_echo(c, "hello, pw_rpc") != 0;
    return failed;
}

static int run_command(const char *url, sprig_time timeout, char **args, int nargs)
{
    client *c = &cli;
    const char *cmd = args[0];
    int rc;
    sprig_status st = client_connect(c, url, timeout);
    if (st != SPRIG_STATUS_OK) {
        echo_failf(st, "connect to %s%s%s", url, c->env.why[0] != '\0' ? ": " : "", c->env.why);
        client_close(c);
        return 1;
    }
    if (strcmp(cmd, "echo") == 0 && nargs == 2) {
        rc = cmd_echo(c, args[1]);
    } else if (strcmp(cmd, "count") == 0 && nargs == 2) {
        rc = cmd_count(c, args[1]);
    } else if (strcmp(cmd, "sum") == 0) {
        rc = cmd_sum(c, args + 1, nargs - 1);
    } else if (strcmp(cmd, "chat") == 0) {
        rc = cmd_chat(c, args + 1, nargs - 1);
    } else if (strcmp(cmd, "pw-echo") == 0 && nargs == 2) {
        rc = cmd_pw_echo(c, args[1]);
    } else if (strcmp(cmd, "demo") == 0 && nargs == 1) {
        int failed = cmd_demo(c);
        printf("demo:    %d of 5 calls failed\n", failed);
        rc = failed != 0;
    } else {
        client_close(c);
        return echo_failf(SPRIG_STATUS_INVALID_ARGUMENT,
                          "unknown command or wrong arguments: '%s' (try --help)", cmd);
    }
    if (client_close(c) != 0) {
        rc = 1;
    }
    return rc;
}

/* ---- --demo: a real server process, unix and tcp ----------------------------------------------
 */

typedef struct server_proc {
    pid_t pid;
    FILE *out; /* its stdout */
} server_proc;

/* Start `path --listen A --listen B` and read the URLs it reports (with the real TCP port). */
static bool server_start(server_proc *sp, const char *path, const char *unix_url, char urls[2][300])
{
    int fds[2];
    if (pipe(fds) != 0) {
        return false;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execl(path, path, "--listen", unix_url, "--listen", "tcp://127.0.0.1:0", (char *)NULL);
        fprintf(stderr, "%s: cannot run %s: %s\n", echo_prog, path, strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    sp->pid = pid;
    sp->out = fdopen(fds[0], "r");
    if (sp->out == NULL) {
        close(fds[0]);
        return false;
    }
    /* Unbuffered, so that poll() sees whatever fgets() has not consumed. */
    setvbuf(sp->out, NULL, _IONBF, 0);
    /* two "listening on URL" lines, within 10 s */
    char line[400];
    int found = 0;
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    while (found < 2 && poll(&pfd, 1, 10000) > 0 && fgets(line, sizeof(line), sp->out) != NULL) {
        fputs(line, stdout);
        const char *at = strstr(line, "listening on ");
        if (at != NULL) {
            snprintf(urls[found], sizeof(urls[found]), "%s", at + strlen("listening on "));
            urls[found][strcspn(urls[found], "\r\n")] = '\0';
            found++;
        }
    }
    return found == 2;
}

/* SIGTERM, then its exit status (0: it stopped cleanly). Echoes the rest of its output. */
static int server_stop(server_proc *sp)
{
    int status = 0;
    if (sp->pid <= 0) {
        return 1;
    }
    kill(sp->pid, SIGTERM);
    if (sp->out != NULL) {
        char line[400];
        while (fgets(line, sizeof(line), sp->out) != NULL) {
            fputs(line, stdout);
        }
        fclose(sp->out);
        sp->out = NULL;
    }
    if (waitpid(sp->pid, &status, 0) != sp->pid) {
        return 1;
    }
    sp->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int run_demo(const char *server_path, sprig_time timeout)
{
    char self_dir[PATH_MAX];
    char path[PATH_MAX + 32];
    if (server_path == NULL) {
        ssize_t n = readlink("/proc/self/exe", self_dir, sizeof(self_dir) - 1);
        if (n <= 0) {
            return echo_fail("--demo: find my own directory (give --server PATH)",
                             SPRIG_STATUS_NOT_FOUND);
        }
        self_dir[n] = '\0';
        char *slash = strrchr(self_dir, '/');
        if (slash != NULL) {
            *slash = '\0';
        }
        snprintf(path, sizeof(path), "%s/sprig-echo-server", self_dir);
        server_path = path;
    }
    if (access(server_path, X_OK) != 0) {
        return echo_failf(SPRIG_STATUS_NOT_FOUND, "--demo: no server program at %s", server_path);
    }
    char dir[] = "/tmp/sprig-echo-demo-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        return echo_fail("--demo: make a temporary directory", SPRIG_STATUS_INTERNAL);
    }
    char unix_url[sizeof(dir) + 32];
    snprintf(unix_url, sizeof(unix_url), "unix:%s/echo.sock", dir);

    printf("== sprig RPC demo: %s serves sprig.examples.echo.Echo and pw.rpc.EchoService\n",
           server_path);
    server_proc sp = {0};
    char urls[2][300];
    int failures = 0;
    if (!server_start(&sp, server_path, unix_url, urls)) {
        failures++;
        echo_fail("--demo: the server did not report its two listeners", SPRIG_STATUS_UNAVAILABLE);
    } else {
        for (int i = 0; i < 2; i++) {
            printf("\n== over %s\n", urls[i]);
            fflush(stdout);
            if (run_command(urls[i], timeout, (char *[]){"demo"}, 1) != 0) {
                failures++;
            }
            fflush(stdout);
        }
        printf("\n");
    }
    int server_rc = server_stop(&sp);
    if (server_rc != 0) {
        echo_failf(SPRIG_STATUS_INTERNAL, "--demo: the server exited with status %d", server_rc);
        failures++;
    }
    char sock_path[sizeof(unix_url)];
    snprintf(sock_path, sizeof(sock_path), "%s/echo.sock", dir);
    unlink(sock_path); /* normally gone already: the server removes its socket file */
    rmdir(dir);
    if (failures != 0) {
        printf("demo: FAILED (%d problem(s))\n", failures);
        return 1;
    }
    printf("demo: OK: unary, server streaming, client streaming, bidirectional and pw_rpc echo "
           "calls over unix and tcp\n");
    return 0;
}

/* ---- main -------------------------------------------------------------------------------------
 */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s --connect URL [--timeout MS] COMMAND [ARGS...]\n"
            "       %s --demo [--server PATH] [--timeout MS]\n"
            "commands:\n"
            "  echo TEXT       unary call of sprig.examples.echo.Echo/Echo\n"
            "  count N         server stream: 1..N\n"
            "  sum N...        client stream: the sum of the numbers\n"
            "  chat WORD...    bidirectional: each word back in upper case\n"
            "  pw-echo TEXT    pw_rpc's pw.rpc.EchoService/Echo\n"
            "  demo            all of them, each result checked\n"
            "--demo starts sprig-echo-server on a unix socket and TCP and runs `demo` over both.\n",
            echo_prog, echo_prog);
}

int main(int argc, char **argv)
{
    const char *url = NULL;
    const char *server_path = NULL;
    bool demo = false;
    unsigned long timeout_ms = DEFAULT_TIMEOUT_MS;
    int i = 1;
    echo_prog = "sprig-echo-client";
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0); /* results and errors (stderr) in order */
    for (; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--connect") == 0 && has_value) {
            url = argv[++i];
        } else if (strcmp(a, "--server") == 0 && has_value) {
            server_path = argv[++i];
        } else if (strcmp(a, "--timeout") == 0 && has_value) {
            if (!echo_parse_u32(argv[++i], 3600000ul, &timeout_ms)) {
                fprintf(stderr, "%s: --timeout: not a number of milliseconds: '%s'\n", echo_prog,
                        argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--demo") == 0) {
            demo = true;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "%s: unknown option or missing value: %s (try --help)\n", echo_prog, a);
            return 2;
        } else {
            break;
        }
    }
    sprig_time timeout = SPRIG_TIME_MS(timeout_ms);
    if (demo) {
        if (i < argc || url != NULL) {
            fprintf(stderr, "%s: --demo takes no command and no --connect\n", echo_prog);
            return 2;
        }
        return run_demo(server_path, timeout);
    }
    if (url == NULL || i == argc) {
        usage(stderr);
        return 2;
    }
    return run_command(url, timeout, argv + i, argc - i);
}
