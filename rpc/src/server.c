/*
 * The pw_rpc-compatible server (sprig/rpc.h; wire rules in WIRE.md; choices in docs/rpc.md).
 *
 * State
 *   Services: a singly linked list through sprig_rpc_service.next (caller storage).
 *   Calls: the caller's table; a slot is FREE, OPEN (the handler owns it), ABORTING (its
 *     on_abort is running: the handle is still valid, but the call is over) or ERROR_PENDING
 *     (ended because a payload was too large; the SERVER_ERROR telling the client waits for
 *     the socket to have room).
 *   Connections: the caller's slots, one SEQPACKET socket each.
 *
 * Re-entrancy
 *   Every user callback may finish or send on any call, open calls, unregister services, drop
 *   connections or deinit the server. So: nothing is read from a call, method or service after
 *   a callback returns unless it is looked up again; loops over the call table go by index and
 *   re-check each slot; a connection being torn down is marked CLOSING first (its calls refuse
 *   to send, with ABORTED); and a connection slot whose receive loop is on the stack (RX) is
 *   never handed to a new socket until that loop has unwound, so the loop can tell that its
 *   connection is gone just by looking at the slot.
 */
#include <string.h>

#include "internal.h"

/* sprig_rpc_call.state */
enum { CALL_FREE = 0, CALL_OPEN = 1, CALL_ABORTING = 2, CALL_ERROR_PENDING = 3 };

/* sprig_rpc_call.flags */
#define CF_WANT_READY  0x01u /* a send returned UNAVAILABLE: on_ready when the socket has room */
#define CF_READY_DUE   0x02u /* on_ready is due in the current WRITABLE pass */
#define CF_CLIENT_DONE 0x04u /* CLIENT_REQUEST_COMPLETION arrived */

/* sprig_rpc_conn.flags */
#define NF_RX      0x01u /* its receive loop is on the stack: the slot must not be reused */
#define NF_CLOSING 0x02u /* being torn down */

/* ---- small helpers ------------------------------------------------------------------------ */

static bool conn_live(const sprig_rpc_conn *conn)
{
    return conn->in_use && !(conn->flags & NF_CLOSING);
}

static bool has_client_stream(const sprig_rpc_method *m)
{
    return m->kind == SPRIG_RPC_CLIENT_STREAMING || m->kind == SPRIG_RPC_BIDI_STREAMING;
}

static bool has_server_stream(const sprig_rpc_method *m)
{
    return m->kind == SPRIG_RPC_SERVER_STREAMING || m->kind == SPRIG_RPC_BIDI_STREAMING;
}

static sprig_rpc_service *find_service(const sprig_rpc_server *s, uint32_t id)
{
    for (sprig_rpc_service *svc = s->services; svc != NULL; svc = svc->next) {
        if (svc->service_id == id) {
            return svc;
        }
    }
    return NULL;
}

static const sprig_rpc_method *find_method(const sprig_rpc_service *svc, uint32_t id)
{
    for (size_t i = 0; svc != NULL && i < svc->method_count; i++) {
        if (svc->methods[i].method_id == id) {
            return &svc->methods[i];
        }
    }
    return NULL;
}

static void call_free(sprig_rpc_call *call)
{
    memset(call, 0, sizeof(*call));
}

static sprig_rpc_call *call_alloc(sprig_rpc_server *s)
{
    for (size_t i = 0; i < s->cfg.max_calls; i++) {
        if (s->cfg.calls[i].state == CALL_FREE) {
            return &s->cfg.calls[i];
        }
    }
    return NULL;
}

/* Does slot `call` belong to conn and the packet's channel/service/method/call_id? */
static bool call_matches(const sprig_rpc_call *call, const sprig_rpc_conn *conn,
                         const sprig_rpc_packet *p)
{
    return call->conn == conn && call->channel_id == p->channel_id &&
           call->service->service_id == p->service_id && call->method->method_id == p->method_id &&
           sprig__rpc_call_id_matches(call->call_id, p->call_id);
}

/* The open call a packet is for (a local wild id adopts the packet's id), or NULL. */
static sprig_rpc_call *find_call(sprig_rpc_server *s, const sprig_rpc_conn *conn,
                                 const sprig_rpc_packet *p)
{
    for (size_t i = 0; i < s->cfg.max_calls; i++) {
        sprig_rpc_call *call = &s->cfg.calls[i];
        if (call->state == CALL_OPEN && call_matches(call, conn, p)) {
            if (sprig__rpc_call_id_is_wild(call->call_id) &&
                !sprig__rpc_call_id_is_wild(p->call_id)) {
                call->call_id = p->call_id;
            }
            return call;
        }
    }
    return NULL;
}

/* ---- sending ------------------------------------------------------------------------------ */

static sprig_status send_packet(sprig_rpc_server *s, sprig_rpc_conn *conn,
                                const sprig_rpc_packet *p, const pb_msgdesc_t *fields,
                                const void *msg, bool pb)
{
    sprig_status st =
        pb ? sprig__rpc_send_pb(conn->sock, p, fields, msg) : sprig__rpc_send(conn->sock, p);
    if (st == SPRIG_STATUS_OK) {
        s->stats.packets_out++;
    }
    return st;
}

/* SERVER_ERROR echoing the ids of packet p. Best effort: a full socket loses it. */
static void reply_error(sprig_rpc_conn *conn, const sprig_rpc_packet *p, sprig_status status)
{
    sprig_rpc_packet e = {
        .type = SPRIG_RPC_PACKET_SERVER_ERROR,
        .channel_id = p->channel_id,
        .service_id = p->service_id,
        .method_id = p->method_id,
        .call_id = p->call_id,
        .status = status,
    };
    (void)send_packet(conn->server, conn, &e, NULL, NULL, false);
}

static sprig_rpc_packet call_packet(const sprig_rpc_call *call, sprig_rpc_packet_type type,
                                    sprig_status status)
{
    sprig_rpc_packet p = {
        .type = type,
        .channel_id = call->channel_id,
        .service_id = call->service->service_id,
        .method_id = call->method->method_id,
        .call_id = call->call_id,
        .status = status,
    };
    return p;
}

/* A call whose payload was too large has ended; tell the client with SERVER_ERROR
 * RESOURCE_EXHAUSTED now, or when the socket has room (ERROR_PENDING). */
static sprig_status flush_error(sprig_rpc_call *call)
{
    sprig_rpc_packet p =
        call_packet(call, SPRIG_RPC_PACKET_SERVER_ERROR, SPRIG_STATUS_RESOURCE_EXHAUSTED);
    sprig_status st = send_packet(call->server, call->conn, &p, NULL, NULL, false);
    if (st != SPRIG_STATUS_UNAVAILABLE) {
        call_free(call); /* sent, or the connection is dying and will not need it */
    }
    return st;
}

static sprig_status call_too_large(sprig_rpc_call *call)
{
    call->state = CALL_ERROR_PENDING;
    call->flags = 0;
    (void)flush_error(call);
    return SPRIG_STATUS_RESOURCE_EXHAUSTED;
}

static sprig_status call_check(const sprig_rpc_call *call)
{
    if (call == NULL || call->state != CALL_OPEN) {
        return SPRIG_STATUS_FAILED_PRECONDITION;
    }
    return conn_live(call->conn) ? SPRIG_STATUS_OK : SPRIG_STATUS_ABORTED;
}

static sprig_status call_out(sprig_rpc_call *call, sprig_rpc_packet_type type,
                             const uint8_t *payload, size_t len, sprig_status status,
                             const pb_msgdesc_t *fields, const void *msg, bool pb)
{
    sprig_status st = call_check(call);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    if (type == SPRIG_RPC_PACKET_SERVER_STREAM && !has_server_stream(call->method)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if ((unsigned)status >= SPRIG_STATUS_COUNT || (payload == NULL && len > 0)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (!pb && len > sprig__rpc_max_payload(call->conn->sock)) {
        return call_too_large(call);
    }
    sprig_rpc_packet p = call_packet(call, type, status);
    p.payload = payload;
    p.payload_len = len;
    st = send_packet(call->server, call->conn, &p, fields, msg, pb);
    switch (st) {
    case SPRIG_STATUS_OK:
        if (type == SPRIG_RPC_PACKET_RESPONSE) {
            call_free(call);
        }
        return SPRIG_STATUS_OK;
    case SPRIG_STATUS_UNAVAILABLE:
        call->flags |= CF_WANT_READY;
        return st;
    case SPRIG_STATUS_RESOURCE_EXHAUSTED:
        return call_too_large(call);
    default:
        return st; /* ABORTED...: the connection's end will abort the call */
    }
}

sprig_status sprig_rpc_call_send(sprig_rpc_call *call, const uint8_t *payload, size_t len)
{
    return call_out(call, SPRIG_RPC_PACKET_SERVER_STREAM, payload, len, SPRIG_STATUS_OK, NULL, NULL,
                    false);
}

sprig_status sprig_rpc_call_finish(sprig_rpc_call *call, const uint8_t *payload, size_t len,
                                   sprig_status status)
{
    return call_out(call, SPRIG_RPC_PACKET_RESPONSE, payload, len, status, NULL, NULL, false);
}

sprig_status sprig_rpc_call_send_pb(sprig_rpc_call *call, const pb_msgdesc_t *fields,
                                    const void *msg)
{
    return call_out(call, SPRIG_RPC_PACKET_SERVER_STREAM, NULL, 0, SPRIG_STATUS_OK, fields, msg,
                    true);
}

sprig_status sprig_rpc_call_finish_pb(sprig_rpc_call *call, const pb_msgdesc_t *fields,
                                      const void *msg, sprig_status status)
{
    return call_out(call, SPRIG_RPC_PACKET_RESPONSE, NULL, 0, status, fields, msg, true);
}

size_t sprig_rpc_call_max_payload(const sprig_rpc_call *call)
{
    if (call_check(call) != SPRIG_STATUS_OK) {
        return 0;
    }
    return sprig__rpc_max_payload(call->conn->sock);
}

/* ---- ending calls ------------------------------------------------------------------------- */

/* End an open call without the handler: on_abort(status), then the slot is free. */
static void call_abort(sprig_rpc_call *call, sprig_status status)
{
    sprig_rpc_server *s = call->server;
    const sprig_rpc_method *m = call->method;
    call->state = CALL_ABORTING;
    if (m->on_abort != NULL) {
        sprig__loop_enter(s->cfg.loop);
        m->on_abort(call, status);
        sprig__loop_leave(s->cfg.loop);
    }
    call_free(call);
}

typedef bool (*call_pred)(const sprig_rpc_call *call, const void *arg);

/* Abort every open call the predicate picks (on_abort(status)); free pending-error slots it
 * picks. One pass by index: callbacks may change any slot, so each is re-checked. */
static void abort_calls(sprig_rpc_server *s, call_pred pick, const void *arg, sprig_status status)
{
    for (size_t i = 0; i < s->cfg.max_calls; i++) {
        sprig_rpc_call *call = &s->cfg.calls[i];
        if ((call->state == CALL_OPEN || call->state == CALL_ERROR_PENDING) && pick(call, arg)) {
            if (call->state == CALL_OPEN) {
                call_abort(call, status);
            } else {
                call_free(call);
            }
        }
    }
}

static bool on_conn_pred(const sprig_rpc_call *call, const void *arg)
{
    return call->conn == arg;
}

static bool of_service_pred(const sprig_rpc_call *call, const void *arg)
{
    return call->service == arg;
}

typedef struct call_key {
    const sprig_rpc_conn *conn;
    const sprig_rpc_packet *packet;
} call_key;

static bool same_call_pred(const sprig_rpc_call *call, const void *arg)
{
    const call_key *key = arg;
    return call_matches(call, key->conn, key->packet);
}

/* ---- connections -------------------------------------------------------------------------- */

static void notify_conn(sprig_rpc_server *s, sprig_rpc_conn *conn, bool up)
{
    if (s->cfg.on_conn != NULL) {
        sprig__loop_enter(s->cfg.loop);
        s->cfg.on_conn(s, conn, up, s->cfg.ctx);
        sprig__loop_leave(s->cfg.loop);
    }
}

/* The connection is over: abort its calls (ABORTED), close the socket, free the slot (but for
 * the RX mark, which its receive loop clears), tell the application. */
static void conn_drop(sprig_rpc_conn *conn)
{
    if (!conn_live(conn)) {
        return;
    }
    sprig_rpc_server *s = conn->server;
    conn->flags |= NF_CLOSING;
    abort_calls(s, on_conn_pred, conn, SPRIG_STATUS_ABORTED);
    sprig_loop_cancel(s->cfg.loop, &conn->task);
    sprig_sock *sock = conn->sock;
    conn->sock = NULL;
    sprig_sock_close(sock);
    conn->in_use = 0;
    conn->flags &= NF_RX;
    notify_conn(s, conn, false);
}

static void start_call(sprig_rpc_conn *conn, const sprig_rpc_packet *p)
{
    sprig_rpc_server *s = conn->server;
    /* A new REQUEST for an existing call replaces it (WIRE.md). */
    call_key key = {conn, p};
    abort_calls(s, same_call_pred, &key, SPRIG_STATUS_CANCELLED);
    if (!conn_live(conn)) {
        return;
    }
    /* on_abort may have unregistered the service: look it up again. */
    sprig_rpc_service *svc = find_service(s, p->service_id);
    const sprig_rpc_method *m = find_method(svc, p->method_id);
    if (m == NULL) {
        reply_error(conn, p, SPRIG_STATUS_NOT_FOUND);
        return;
    }
    sprig_rpc_call *call = call_alloc(s);
    if (call == NULL) {
        s->stats.calls_refused++;
        reply_error(conn, p, SPRIG_STATUS_RESOURCE_EXHAUSTED);
        return;
    }
    call->server = s;
    call->conn = conn;
    call->service = svc;
    call->method = m;
    call->channel_id = p->channel_id;
    call->call_id = p->call_id;
    call->state = CALL_OPEN;
    m->on_request(call, p->payload, p->payload_len);
}

static void client_stream(sprig_rpc_conn *conn, const sprig_rpc_method *m,
                          const sprig_rpc_packet *p)
{
    if (!has_client_stream(m)) {
        reply_error(conn, p, SPRIG_STATUS_INVALID_ARGUMENT);
        return;
    }
    sprig_rpc_call *call = find_call(conn->server, conn, p);
    if (call == NULL || (call->flags & CF_CLIENT_DONE)) {
        reply_error(conn, p, SPRIG_STATUS_FAILED_PRECONDITION);
        return;
    }
    if (m->on_client_stream != NULL) {
        m->on_client_stream(call, p->payload, p->payload_len);
    }
}

static void client_complete(sprig_rpc_conn *conn, const sprig_rpc_method *m,
                            const sprig_rpc_packet *p)
{
    sprig_rpc_call *call = find_call(conn->server, conn, p);
    if (call == NULL) {
        reply_error(conn, p, SPRIG_STATUS_FAILED_PRECONDITION);
        return;
    }
    if (call->flags & CF_CLIENT_DONE) {
        return; /* said twice */
    }
    call->flags |= CF_CLIENT_DONE;
    if (has_client_stream(m) && m->on_client_complete != NULL) {
        m->on_client_complete(call);
    }
}

static void handle_packet(sprig_rpc_conn *conn, const uint8_t *data, size_t len)
{
    sprig_rpc_server *s = conn->server;
    sprig_rpc_packet p;
    s->stats.packets_in++;
    if (sprig_rpc_packet_decode(data, len, &p) != SPRIG_STATUS_OK ||
        !sprig__rpc_packet_acceptable(&p, true) ||
        (s->cfg.channel_id != 0u && p.channel_id != s->cfg.channel_id)) {
        s->stats.dropped++;
        return;
    }
    switch (p.type) {
    case SPRIG_RPC_PACKET_REQUEST:
    case SPRIG_RPC_PACKET_CLIENT_STREAM:
    case SPRIG_RPC_PACKET_CLIENT_ERROR:
    case SPRIG_RPC_PACKET_CLIENT_REQUEST_COMPLETION:
        break;
    default:
        s->stats.dropped++; /* retired or unknown type */
        return;
    }
    const sprig_rpc_method *m = find_method(find_service(s, p.service_id), p.method_id);
    if (p.type == SPRIG_RPC_PACKET_CLIENT_ERROR) {
        /* Cancelled (whatever the status): close the call, answer nothing. */
        sprig_rpc_call *call = m != NULL ? find_call(s, conn, &p) : NULL;
        if (call != NULL) {
            call_abort(call, SPRIG_STATUS_CANCELLED);
        }
        return;
    }
    if (m == NULL) {
        reply_error(conn, &p, SPRIG_STATUS_NOT_FOUND);
        return;
    }
    if (p.type == SPRIG_RPC_PACKET_REQUEST) {
        start_call(conn, &p);
    } else if (p.type == SPRIG_RPC_PACKET_CLIENT_STREAM) {
        client_stream(conn, m, &p);
    } else {
        client_complete(conn, m, &p);
    }
}

/* Read and dispatch every waiting packet (READABLE is edge-triggered). */
static void conn_read(sprig_rpc_conn *conn)
{
    if (!conn_live(conn) || (conn->flags & NF_RX)) {
        return;
    }
    sprig_rpc_server *s = conn->server;
    sprig_sock *sock = conn->sock;
    conn->flags |= NF_RX;
    while (conn_live(conn)) {
        size_t n = 0;
        sprig_status st = sprig_sock_recv(sock, s->cfg.rx_buf, s->cfg.rx_cap, &n);
        if (st == SPRIG_STATUS_UNAVAILABLE) {
            break;
        }
        if (st != SPRIG_STATUS_OK) {
            /* End of stream, reset, or a message larger than rx_buf (it would block the
             * connection for good): the connection is over. */
            conn_drop(conn);
            break;
        }
        handle_packet(conn, s->cfg.rx_buf, n);
    }
    conn->flags &= (uint8_t)~NF_RX;
}

/* The socket has room again: first the pending SERVER_ERRORs, then on_ready for every call
 * that was told UNAVAILABLE (chosen before any is called). */
static void conn_writable(sprig_rpc_conn *conn)
{
    sprig_rpc_server *s = conn->server;
    sprig_rpc_call *calls = s->cfg.calls;
    for (size_t i = 0; i < s->cfg.max_calls; i++) {
        if (calls[i].state == CALL_ERROR_PENDING && calls[i].conn == conn &&
            flush_error(&calls[i]) == SPRIG_STATUS_UNAVAILABLE) {
            return; /* full again: the next WRITABLE goes on */
        }
    }
    for (size_t i = 0; i < s->cfg.max_calls; i++) {
        if (calls[i].state == CALL_OPEN && calls[i].conn == conn &&
            (calls[i].flags & CF_WANT_READY)) {
            calls[i].flags = (uint8_t)((calls[i].flags & ~CF_WANT_READY) | CF_READY_DUE);
        }
    }
    for (size_t i = 0; i < s->cfg.max_calls && conn_live(conn); i++) {
        sprig_rpc_call *call = &calls[i];
        if (call->state != CALL_OPEN || call->conn != conn || !(call->flags & CF_READY_DUE)) {
            continue;
        }
        call->flags &= (uint8_t)~CF_READY_DUE;
        if (call->method->on_ready != NULL) {
            call->method->on_ready(call);
        }
    }
}

static void on_conn_event(sprig_sock *sock, sprig_sock_event ev, sprig_status st, void *user)
{
    sprig_rpc_conn *conn = user;
    (void)sock;
    (void)st;
    if (!conn_live(conn)) {
        return;
    }
    switch (ev) {
    case SPRIG_SOCK_EV_READABLE:
        conn_read(conn);
        break;
    case SPRIG_SOCK_EV_WRITABLE:
        conn_writable(conn);
        break;
    case SPRIG_SOCK_EV_CLOSED:
        conn_drop(conn);
        break;
    default:
        break;
    }
}

static void conn_kick(void *arg)
{
    conn_read(arg);
}

static sprig_status attach(sprig_rpc_server *s, sprig_sock *sock, sprig_rpc_conn **out)
{
    for (size_t i = 0; i < s->cfg.max_conns; i++) {
        sprig_rpc_conn *conn = &s->cfg.conns[i];
        if (conn->in_use || (conn->flags & NF_RX)) {
            continue;
        }
        memset(conn, 0, sizeof(*conn));
        conn->server = s;
        conn->sock = sock;
        conn->in_use = 1;
        sprig_task_init(&conn->task, conn_kick, conn);
        sprig_sock_set_callback(sock, on_conn_event, conn);
        /* Data that came before we set the callback was announced to nobody. */
        sprig_loop_defer(s->cfg.loop, &conn->task);
        if (out != NULL) {
            *out = conn;
        }
        notify_conn(s, conn, true);
        return SPRIG_STATUS_OK;
    }
    return SPRIG_STATUS_RESOURCE_EXHAUSTED;
}

static void on_listener_event(sprig_sock *l, sprig_sock_event ev, sprig_status st, void *user)
{
    sprig_rpc_server *s = user;
    (void)st;
    if (ev != SPRIG_SOCK_EV_READABLE) {
        return;
    }
    sprig_sock *sock = NULL;
    while (s->listener == l && sprig_sock_accept(l, &sock) == SPRIG_STATUS_OK) {
        if (attach(s, sock, NULL) != SPRIG_STATUS_OK) {
            sprig_sock_close(sock); /* no slot: refuse the connection */
        }
    }
}

/* ---- the server --------------------------------------------------------------------------- */

sprig_status sprig_rpc_server_init(sprig_rpc_server *s, const sprig_rpc_server_cfg *cfg)
{
    if (s == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(s, 0, sizeof(*s));
    if (cfg == NULL || cfg->loop == NULL || cfg->calls == NULL || cfg->max_calls == 0 ||
        cfg->conns == NULL || cfg->max_conns == 0 || cfg->rx_buf == NULL || cfg->rx_cap == 0) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    s->cfg = *cfg;
    memset(cfg->calls, 0, cfg->max_calls * sizeof(*cfg->calls));
    memset(cfg->conns, 0, cfg->max_conns * sizeof(*cfg->conns));
    s->ready = true;
    return SPRIG_STATUS_OK;
}

void sprig_rpc_server_deinit(sprig_rpc_server *s)
{
    if (s == NULL || !s->ready) {
        return;
    }
    s->ready = false;
    sprig_sock *l = s->listener;
    s->listener = NULL;
    sprig_sock_close(l);
    for (size_t i = 0; i < s->cfg.max_conns; i++) {
        conn_drop(&s->cfg.conns[i]);
    }
    s->services = NULL;
}

static bool methods_valid(const sprig_rpc_service *svc)
{
    if (svc->service_id == 0u || (svc->methods == NULL && svc->method_count > 0)) {
        return false;
    }
    for (size_t i = 0; i < svc->method_count; i++) {
        const sprig_rpc_method *m = &svc->methods[i];
        if (m->method_id == 0u || m->on_request == NULL ||
            (unsigned)m->kind > (unsigned)SPRIG_RPC_BIDI_STREAMING) {
            return false;
        }
    }
    return true;
}

sprig_status sprig_rpc_server_register(sprig_rpc_server *s, sprig_rpc_service *svc)
{
    if (s == NULL || !s->ready || svc == NULL || !methods_valid(svc)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    for (const sprig_rpc_service *o = s->services; o != NULL; o = o->next) {
        if (o == svc || o->service_id == svc->service_id) {
            return SPRIG_STATUS_ALREADY_EXISTS;
        }
    }
    svc->next = s->services;
    s->services = svc;
    return SPRIG_STATUS_OK;
}

/* The service's calls: the client hears SERVER_ERROR CANCELLED (best effort), the handler
 * on_abort(CANCELLED). */
static void cancel_service_calls(sprig_rpc_server *s, const sprig_rpc_service *svc)
{
    for (size_t i = 0; i < s->cfg.max_calls; i++) {
        sprig_rpc_call *call = &s->cfg.calls[i];
        if (call->state == CALL_OPEN && call->service == svc && conn_live(call->conn)) {
            sprig_rpc_packet p =
                call_packet(call, SPRIG_RPC_PACKET_SERVER_ERROR, SPRIG_STATUS_CANCELLED);
            (void)send_packet(s, call->conn, &p, NULL, NULL, false);
        }
    }
    abort_calls(s, of_service_pred, svc, SPRIG_STATUS_CANCELLED);
}

sprig_status sprig_rpc_server_unregister(sprig_rpc_server *s, sprig_rpc_service *svc)
{
    if (s == NULL || svc == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    for (sprig_rpc_service **pp = &s->services; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == svc) {
            *pp = svc->next;
            svc->next = NULL;
            cancel_service_calls(s, svc);
            return SPRIG_STATUS_OK;
        }
    }
    return SPRIG_STATUS_NOT_FOUND;
}

sprig_status sprig_rpc_server_listen(sprig_rpc_server *s, const char *url)
{
    if (s == NULL || !s->ready || url == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (s->listener != NULL) {
        return SPRIG_STATUS_FAILED_PRECONDITION;
    }
    sprig_sock *l = NULL;
    sprig_status st = sprig_sock_listen(s->cfg.loop, url, SPRIG_SOCK_SEQPACKET, &l);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    s->listener = l;
    sprig_sock_set_callback(l, on_listener_event, s);
    return SPRIG_STATUS_OK;
}

sprig_status sprig_rpc_server_serve(sprig_rpc_server *s, sprig_sock *sock, sprig_rpc_conn **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (s == NULL || !s->ready || sock == NULL ||
        sprig_sock_type_of(sock) != SPRIG_SOCK_SEQPACKET) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    return attach(s, sock, out);
}

const sprig_rpc_stats *sprig_rpc_server_stats(const sprig_rpc_server *s)
{
    return &s->stats;
}

size_t sprig_rpc_server_open_calls(const sprig_rpc_server *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->cfg.max_calls; i++) {
        n += s->cfg.calls[i].state != CALL_FREE;
    }
    return n;
}

sprig_status sprig_rpc_server_open(sprig_rpc_server *s, sprig_rpc_conn *conn, uint32_t channel_id,
                                   uint32_t service_id, uint32_t method_id, sprig_rpc_call **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (s == NULL || !s->ready || conn == NULL || out == NULL || conn->server != s) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (!conn_live(conn)) {
        return SPRIG_STATUS_FAILED_PRECONDITION;
    }
    sprig_rpc_service *svc = find_service(s, service_id);
    const sprig_rpc_method *m = find_method(svc, method_id);
    if (m == NULL) {
        return SPRIG_STATUS_NOT_FOUND;
    }
    sprig_rpc_call *call = call_alloc(s);
    if (call == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    if (channel_id == 0u) {
        channel_id = s->cfg.channel_id != 0u ? s->cfg.channel_id : 1u;
    }
    call->server = s;
    call->conn = conn;
    call->service = svc;
    call->method = m;
    call->channel_id = channel_id;
    call->call_id = SPRIG_RPC_CALL_ID_OPEN;
    call->state = CALL_OPEN;
    *out = call;
    return SPRIG_STATUS_OK;
}
