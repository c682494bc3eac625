/*
 * sprig-transfer-rpc-server — serve the files of a directory through pw_transfer's RPC service
 * (pw.transfer.Transfer, Read/Write) on sprig::rpc, for pw_transfer clients.
 *
 *   sprig-transfer-rpc-server --listen URL [--read-only] [--verbose] DIR
 *
 * URL: any SEQPACKET URL (unix:PATH, tcp://HOST:PORT with port 0 for a free one). A file's
 * resource id is the 65599 hash of its name (docs/transfer.md, "Host file handler"). Prints
 * "sprig-transfer-rpc-server: listening on URL" (with the real port) and then, with --verbose,
 * one line per transfer; stops on SIGINT/SIGTERM. Exit status 0 after a clean stop.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* signalfd, sigprocmask */
#endif
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "sprig/os.h"
#include "sprig/rpc.h"
#include "sprig/transfer_os.h"
#include "sprig/transfer_rpc.h"

#define PROG "sprig-transfer-rpc-server"

enum {
    MAX_CONNS = 4,
    MAX_RPC_CALLS = 16,
    MAX_CALLS = 2 * MAX_CONNS, /* a Read and a Write call per client */
    SESSIONS = 4,
    RX_CAP = 16 * 1024,
    SCRATCH = 2,
};

typedef struct server {
    sprig_os_loop ol;
    sprig_os_backend backend;
    sprig_rpc_server rpc;
    sprig_rpc_call calls[MAX_RPC_CALLS];
    sprig_rpc_conn conns[MAX_CONNS];
    uint8_t rpc_rx[SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE];
    sprig_transfer_rpc_service svc;
    sprig_transfer_rpc_stream slots[MAX_CALLS];
    sprig_transfer_session sessions[MAX_CALLS * SESSIONS];
    uint8_t rx[MAX_CALLS * RX_CAP];
    sprig_buf_pool scratch;
    sprig_buf scratch_bufs[SCRATCH];
    uint8_t scratch_mem[SCRATCH * RX_CAP] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
    sprig_transfer_file_handler files;
    sprig_os_fd sig_watch;
    bool verbose;
    unsigned long transfers;
} server;

static server S;

static void on_done(sprig_transfer_node *node, uint32_t id, sprig_status status, void *user)
{
    server *s = user;
    (void)node;
    s->transfers++;
    if (s->verbose) {
        printf(PROG ": session %u: %s\n", (unsigned)id, sprig_status_str(status));
        fflush(stdout);
    }
}

static void on_signal(sprig_os_fd *watch, uint32_t events)
{
    server *s = watch->arg;
    struct signalfd_siginfo si;
    (void)events;
    while (read(watch->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        sprig_loop_stop(&s->ol.loop);
    }
}

static int usage(FILE *f, int rc)
{
    fprintf(f, "usage: " PROG " --listen URL [--read-only] [--verbose] DIR\n"
               "  serves the files of DIR as pw.transfer.Transfer (Read/Write) over sprig::rpc\n");
    return rc;
}

static int fail(const char *what, sprig_status st)
{
    fprintf(stderr, PROG ": %s: %s\n", what, sprig_status_str(st));
    return 1;
}

int main(int argc, char **argv)
{
    server *s = &S;
    const char *url = NULL;
    const char *root = NULL;
    uint32_t flags = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            url = argv[++i];
        } else if (strcmp(argv[i], "--read-only") == 0) {
            flags |= SPRIG_TRANSFER_FILE_READ_ONLY;
        } else if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0) {
            s->verbose = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return usage(stdout, 0);
        } else if (argv[i][0] != '-' && root == NULL) {
            root = argv[i];
        } else {
            return usage(stderr, 2);
        }
    }
    if (url == NULL || root == NULL) {
        return usage(stderr, 2);
    }
    signal(SIGPIPE, SIG_IGN);
    int rc = 1;
    int sfd = -1;
    sprig_status st = sprig_os_loop_init(&s->ol);
    if (st != SPRIG_STATUS_OK) {
        return fail("event loop", st);
    }
    if ((st = sprig_os_backend_init(&s->backend, &s->ol, NULL)) != SPRIG_STATUS_OK) {
        rc = fail("OS backend", st);
        goto out_loop;
    }
    if ((st = sprig_transfer_file_handler_init(&s->files, root, flags)) != SPRIG_STATUS_OK) {
        rc = fail(root, st);
        goto out_backend;
    }
    sprig_rpc_server_cfg rc_cfg = {
        .loop = &s->ol.loop,
        .calls = s->calls,
        .max_calls = MAX_RPC_CALLS,
        .conns = s->conns,
        .max_conns = MAX_CONNS,
        .rx_buf = s->rpc_rx,
        .rx_cap = sizeof(s->rpc_rx),
    };
    if ((st = sprig_rpc_server_init(&s->rpc, &rc_cfg)) != SPRIG_STATUS_OK) {
        rc = fail("rpc server", st);
        goto out_files;
    }
    (void)sprig_buf_pool_init(&s->scratch, s->scratch_bufs, s->scratch_mem, SCRATCH, RX_CAP);
    sprig_transfer_rpc_service_cfg sc = {
        .loop = &s->ol.loop,
        .slots = s->slots,
        .max_calls = MAX_CALLS,
        .sessions = s->sessions,
        .sessions_per_call = SESSIONS,
        .rx_bufs = s->rx,
        .rx_cap = RX_CAP,
        .tx_pool = &s->scratch,
    };
    sc.engine.handler = &s->files.handler;
    sc.engine.on_done = on_done;
    sc.engine.user = s;
    if ((st = sprig_transfer_rpc_service_init(&s->svc, &s->rpc, &sc)) != SPRIG_STATUS_OK) {
        rc = fail("pw.transfer.Transfer", st);
        goto out_rpc;
    }
    if ((st = sprig_rpc_server_listen(&s->rpc, url)) != SPRIG_STATUS_OK) {
        rc = fail(url, st);
        goto out_svc;
    }
    char where[300];
    sprig_os_bound_url(url, S.rpc.listener, where, sizeof(where));
    printf(PROG ": listening on %s\n", where);
    fflush(stdout);

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0 || sprig_os_loop_add_fd(&s->ol, &s->sig_watch, sfd, SPRIG_OS_EV_IN, on_signal, s) !=
                       SPRIG_STATUS_OK) {
        sigprocmask(SIG_UNBLOCK, &mask, NULL); /* let the signals kill us plainly */
        if (sfd >= 0) {
            close(sfd);
            sfd = -1;
        }
    }
    st = sprig_loop_run(&s->ol.loop);
    rc = st == SPRIG_STATUS_OK ? 0 : fail("event loop", st);
    printf(PROG ": stopped after %lu transfer(s)\n", s->transfers);
    if (sfd >= 0) {
        sprig_os_loop_del_fd(&s->ol, &s->sig_watch);
        close(sfd);
    }
out_svc:
    sprig_transfer_rpc_service_deinit(&s->svc);
out_rpc:
    sprig_rpc_server_deinit(&s->rpc);
out_files:
    sprig_transfer_file_handler_deinit(&s->files);
out_backend:
    if (sprig_os_backend_open_count(&s->backend) != 0) {
        rc = fail("teardown: sockets left open", SPRIG_STATUS_INTERNAL);
    }
    sprig_os_backend_deinit(&s->backend);
out_loop:
    sprig_os_loop_deinit(&s->ol);
    return rc;
}
