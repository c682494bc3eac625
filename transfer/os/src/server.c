/*
 * server.c — sprig_transfer_server: a handler served on listening and DGRAM sockets (see
 * sprig/transfer_os.h). Host code: one malloc'd node per connection.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sprig/transfer_os.h"

#define REAP_PERIOD     SPRIG_TIME_MS(500)
#define SERVER_FIRST_ID 0x40000000u /* the dialing side uses session ids from 1 */

struct sprig_transfer_server_conn {
    sprig_transfer_server_conn *next;
    sprig_transfer_node node;
    unsigned long number;
    uint8_t *rx;
    sprig_transfer_session sessions[]; /* cfg.max_sessions */
};

static void emit(sprig_transfer_server *s, sprig_transfer_server_event ev, unsigned long conn,
                 uint32_t session_id, sprig_status status, const char *what)
{
    if (s->cfg.on_event != NULL) {
        sprig_transfer_server_info info = {ev, conn, session_id, status, what};
        s->cfg.on_event(&info, s->cfg.user);
    }
}

static void on_done(sprig_transfer_node *node, uint32_t session_id, sprig_status status, void *user)
{
    sprig_transfer_server *s = user;
    const sprig_transfer_server_conn *c =
        SPRIG_CONTAINER_OF(node, sprig_transfer_server_conn, node);
    s->transfers++;
    emit(s, SPRIG_TRANSFER_SERVER_DONE, c->number, session_id, status, NULL);
}

static void conn_free(sprig_transfer_server_conn *c)
{
    sprig_transfer_deinit(&c->node);
    free(c->rx);
    free(c);
}

/* Free the connections whose socket closed and whose transfers all ended. */
static void on_reap(sprig_timer *t, void *arg)
{
    sprig_transfer_server *s = arg;
    for (sprig_transfer_server_conn **pp = &s->conns; *pp != NULL;) {
        sprig_transfer_server_conn *c = *pp;
        if (c->node.dead && sprig_transfer_active(&c->node) == 0) {
            *pp = c->next;
            unsigned long number = c->number;
            conn_free(c);
            emit(s, SPRIG_TRANSFER_SERVER_CLOSED, number, 0, SPRIG_STATUS_OK, NULL);
        } else {
            pp = &c->next;
        }
    }
    sprig_timer_start(s->cfg.loop, t, REAP_PERIOD);
}

/* A node on `sock` (owned from here on: closed on failure). */
static sprig_status serve_conn(sprig_transfer_server *s, sprig_sock *sock, const char **what)
{
    *what = "accept a connection";
    size_t n = s->cfg.max_sessions;
    sprig_transfer_server_conn *c = calloc(1, sizeof(*c) + n * sizeof(c->sessions[0]));
    size_t mtu = sprig_sock_max_message_size(sock);
    if (c == NULL || (c->rx = malloc(mtu)) == NULL) {
        free(c);
        sprig_sock_close(sock);
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    bool dgram = sprig_sock_type_of(sock) == SPRIG_SOCK_DGRAM;
    sprig_transfer_cfg cfg = {
        .loop = s->cfg.loop,
        .sock = sock,
        .sessions = c->sessions,
        .max_sessions = n,
        .rx_buf = c->rx,
        .rx_cap = mtu,
        .handler = s->cfg.handler,
        .on_done = on_done,
        .user = s,
        .window_chunks = s->cfg.window_chunks,
        .first_session_id = SERVER_FIRST_ID,
        .max_chunk = dgram ? s->cfg.dgram_max_chunk : 0,
        .chunk_timeout = s->cfg.chunk_timeout,
        .max_retries = s->cfg.max_retries,
    };
    sprig_status st = sprig_transfer_init(&c->node, &cfg);
    if (st != SPRIG_STATUS_OK) {
        *what = "serve a connection";
        sprig_sock_close(sock);
        free(c->rx);
        free(c);
        return st;
    }
    c->number = ++s->accepted;
    c->next = s->conns;
    s->conns = c;
    emit(s, SPRIG_TRANSFER_SERVER_OPENED, c->number, 0, SPRIG_STATUS_OK, NULL);
    return SPRIG_STATUS_OK;
}

static void on_listener(sprig_sock *l, sprig_sock_event ev, sprig_status status, void *user)
{
    sprig_transfer_server *s = user;
    if (ev == SPRIG_SOCK_EV_CLOSED) {
        emit(s, SPRIG_TRANSFER_SERVER_LISTENER_CLOSED, 0, 0, status, NULL);
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
            emit(s, SPRIG_TRANSFER_SERVER_ERROR, 0, 0, st, "accept"); /* keep serving */
            return;
        }
        const char *what;
        st = serve_conn(s, sock, &what);
        if (st != SPRIG_STATUS_OK) {
            emit(s, SPRIG_TRANSFER_SERVER_ERROR, 0, 0, st, what);
        }
    }
}

sprig_status sprig_transfer_server_init(sprig_transfer_server *s,
                                        const sprig_transfer_server_cfg *cfg)
{
    memset(s, 0, sizeof(*s));
    if (cfg == NULL || cfg->loop == NULL || cfg->handler == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    s->cfg = *cfg;
    if (s->cfg.max_sessions == 0) {
        s->cfg.max_sessions = 8;
    }
    sprig_timer_init(&s->reaper, on_reap, s);
    sprig_timer_start(s->cfg.loop, &s->reaper, REAP_PERIOD);
    s->up = true;
    return SPRIG_STATUS_OK;
}

sprig_status sprig_transfer_server_add(sprig_transfer_server *s, sprig_sock *sock)
{
    if (!s->up) {
        sprig_sock_close(sock);
        return SPRIG_STATUS_FAILED_PRECONDITION;
    }
    if (sprig_sock_type_of(sock) == SPRIG_SOCK_DGRAM) {
        const char *what;
        return serve_conn(s, sock, &what); /* one node on the bound socket serves every peer */
    }
    if (s->nsocks == SPRIG_TRANSFER_SERVER_MAX_SOCKS) {
        sprig_sock_close(sock);
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    s->socks[s->nsocks++] = sock;
    sprig_sock_set_callback(sock, on_listener, s);
    return SPRIG_STATUS_OK;
}

void sprig_transfer_server_deinit(sprig_transfer_server *s)
{
    if (!s->up) {
        return;
    }
    sprig_timer_stop(s->cfg.loop, &s->reaper);
    while (s->conns != NULL) {
        sprig_transfer_server_conn *c = s->conns;
        s->conns = c->next;
        conn_free(c);
    }
    for (size_t i = 0; i < s->nsocks; i++) {
        sprig_sock_close(s->socks[i]);
    }
    s->nsocks = 0;
    s->up = false;
}

void sprig_transfer_server_describe(const sprig_transfer_server_info *info, char *out, size_t cap)
{
    const char *st = sprig_status_str(info->status);
    switch (info->event) {
    case SPRIG_TRANSFER_SERVER_OPENED:
        snprintf(out, cap, "connection %lu opened", info->conn);
        break;
    case SPRIG_TRANSFER_SERVER_DONE:
        snprintf(out, cap, "connection %lu session %" PRIu32 ": %s", info->conn, info->session_id,
                 st);
        break;
    case SPRIG_TRANSFER_SERVER_CLOSED:
        snprintf(out, cap, "connection %lu closed", info->conn);
        break;
    case SPRIG_TRANSFER_SERVER_ERROR:
        snprintf(out, cap, "%s: %s", info->what != NULL ? info->what : "error", st);
        break;
    default:
        snprintf(out, cap, "listener closed: %s", st);
        break;
    }
}
