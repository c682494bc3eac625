/*
 * The RPC client (sprig/rpc.h, "client"): calls over one connected SEQPACKET socket, matched to
 * incoming packets by WIRE.md's rules, with deadlines, cancellation and blocking helpers.
 *
 * How it behaves where rpc.h leaves room:
 *  - Call ids come from 1 .. 2^14 - 1 (then 1 again), skipping any id an open call to the same
 *    service/method still holds. An id is used up only when its REQUEST went out.
 *  - Incoming packets: undecodable, id 0, even (client-bound) type, another channel, or a type
 *    the client does not know: dropped and counted. A packet for no open call is dropped and
 *    counted; if it is a SERVER_STREAM the server is told (CLIENT_ERROR FAILED_PRECONDITION) so
 *    that it can end the stream. Errors are never answered with errors.
 *  - Matching: an exact call_id wins; otherwise an incoming 0 / 0xFFFFFFFF matches the newest
 *    call to that service/method, and a local call with id 0xFFFFFFFF (sprig_rpc_client_open)
 *    matches any id and adopts it.
 *  - SERVER_STREAM on a call without a server stream (unary, client streaming) is a protocol
 *    violation: CLIENT_ERROR INVALID_ARGUMENT goes to the server and the call ends with
 *    on_error(INVALID_ARGUMENT), as pw_rpc's client does.
 *  - A call ends (unlinked, timer stopped, storage free for reuse) before its final callback
 *    runs; callbacks may start, cancel or restart any call, and deinit the client.
 *  - Connection lost (recv or CLOSED reports an error or end of stream): the socket is closed,
 *    every open call gets on_error(ABORTED) once, later starts return ABORTED.
 *  - Sends that fail for a full socket return UNAVAILABLE with nothing sent. CLIENT_ERRORs sent
 *    on our own initiative (cancel, deadline) are best effort: if the socket is full the server
 *    learns nothing, and a later SERVER_STREAM for the forgotten call is refused as above.
 *  - Blocking helpers keep one message in the call's inbox. While it is full the client stops
 *    reading its socket (every call waits: head-of-line), so the socket's flow control pushes
 *    back on the server; taking the message resumes reading from a deferred task, and so does
 *    the end of that call (its message stays in the inbox for next_wait). An orderly CLOSED
 *    seen meanwhile is acted on only after what was queued before it has been read; CLOSED
 *    with an error at once (the socket has dropped its queue).
 *  - Reading yields to the loop after RX_BUDGET packets so one busy peer cannot starve others.
 */
#include "sprig/rpc.h"

#include <string.h>

#include "internal.h"

enum { ST_IDLE = 0, ST_OPEN = 1, ST_DONE = 2 }; /* call->state; DONE: inbox call ended */

#define CF_INBOX       0x01u /* call->flags: a blocking helper's call (inbox, no user cbs) */
#define CF_SEND_CLOSED 0x02u /* CLIENT_REQUEST_COMPLETION sent */
#define CF_WANT_READY  0x04u /* a send returned UNAVAILABLE: on_ready on the next WRITABLE */
#define CF_READY_DUE   0x08u /* on_ready is due in the current WRITABLE pass */

#define CL_CLOSED 0x01u /* c->flags: the socket reported CLOSED; act once the queue is read */

#define RX_BUDGET 32

static const uint8_t empty_payload[1];

/* ---- sending ------------------------------------------------------------------------------ */

static bool connected(const sprig_rpc_client *c)
{
    return c->ready && c->conn_status == SPRIG_STATUS_OK && c->cfg.sock != NULL;
}

/* The status an API call returns when it cannot send at all. */
static sprig_status not_connected(const sprig_rpc_client *c)
{
    return c->ready ? SPRIG_STATUS_ABORTED : SPRIG_STATUS_FAILED_PRECONDITION;
}

/* Send p on the client's channel: its payload, or msg encoded by nanopb when fields is set. */
static sprig_status send_packet(sprig_rpc_client *c, sprig_rpc_packet *p,
                                const pb_msgdesc_t *fields, const void *msg)
{
    if (!connected(c)) {
        return not_connected(c);
    }
    p->channel_id = c->cfg.channel_id;
    sprig_status st = fields != NULL ? sprig__rpc_send_pb(c->cfg.sock, p, fields, msg)
                                     : sprig__rpc_send(c->cfg.sock, p);
    switch (st) {
    case SPRIG_STATUS_OK:
        c->stats.packets_out++;
        return st;
    case SPRIG_STATUS_UNAVAILABLE:
    case SPRIG_STATUS_RESOURCE_EXHAUSTED:
    case SPRIG_STATUS_INTERNAL:
    case SPRIG_STATUS_INVALID_ARGUMENT:
        return st;
    default:
        return SPRIG_STATUS_ABORTED; /* the socket is dead; its CLOSED event is on the way */
    }
}

static sprig_status send_on_call(sprig_rpc_client_call *call, sprig_rpc_packet_type type,
                                 const uint8_t *payload, size_t len, const pb_msgdesc_t *fields,
                                 const void *msg)
{
    sprig_rpc_packet p = {
        .type = type,
        .service_id = call->service_id,
        .method_id = call->method_id,
        .call_id = call->call_id,
        .payload = payload,
        .payload_len = len,
    };
    sprig_status st = send_packet(call->client, &p, fields, msg);
    if (st == SPRIG_STATUS_UNAVAILABLE) {
        call->flags |= CF_WANT_READY;
    }
    return st;
}

/* CLIENT_ERROR for a call or a stray packet; best effort. */
static void send_error(sprig_rpc_client *c, uint32_t service_id, uint32_t method_id,
                       uint32_t call_id, sprig_status status)
{
    sprig_rpc_packet p = {
        .type = SPRIG_RPC_PACKET_CLIENT_ERROR,
        .service_id = service_id,
        .method_id = method_id,
        .call_id = call_id,
        .status = status,
    };
    (void)send_packet(c, &p, NULL, NULL);
}

/* ---- call bookkeeping --------------------------------------------------------------------- */

static void resume_reading(sprig_rpc_client *c)
{
    if (c->cfg.sock != NULL) {
        sprig_loop_defer(c->cfg.loop, &c->rx_task);
    }
}

static void unlink_call(sprig_rpc_client *c, sprig_rpc_client_call *call)
{
    for (sprig_rpc_client_call **pp = &c->calls; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == call) {
            *pp = call->next;
            break;
        }
    }
    call->next = NULL;
}

/* The call is over: after this its storage is the caller's again. */
static void end_call(sprig_rpc_client_call *call)
{
    sprig_rpc_client *c = call->client;
    unlink_call(c, call);
    sprig_timer_stop(c->cfg.loop, &call->deadline);
    call->state = (call->flags & CF_INBOX) ? ST_DONE : ST_IDLE;
    if (c->rx_hold == call) {
        c->rx_hold = NULL; /* its message stays in the inbox for next_wait */
        resume_reading(c);
    }
}

static void notify_error(sprig_rpc_client_call *call, const sprig_rpc_client_cbs *cbs, void *user,
                         sprig_status status)
{
    if (cbs != NULL && cbs->on_error != NULL) {
        cbs->on_error(call, status, user);
    }
}

/* End the call and tell its owner. */
static void fail_call(sprig_rpc_client_call *call, sprig_status status)
{
    const sprig_rpc_client_cbs *cbs = call->cbs;
    void *user = call->user;
    end_call(call);
    notify_error(call, cbs, user, status);
}

/* End every open call with `status`. Callbacks may cancel other calls (they then get nothing)
 * but cannot start new ones, so the list only shrinks. */
static void fail_all(sprig_rpc_client *c, sprig_status status)
{
    while (c->calls != NULL) {
        fail_call(c->calls, status);
    }
}

static bool id_in_use(const sprig_rpc_client *c, uint32_t service_id, uint32_t method_id,
                      uint32_t id)
{
    for (const sprig_rpc_client_call *k = c->calls; k != NULL; k = k->next) {
        if (k->call_id == id && k->service_id == service_id && k->method_id == method_id) {
            return true;
        }
    }
    return false;
}

static void on_deadline(sprig_timer *timer, void *arg)
{
    sprig_rpc_client_call *call = arg;
    (void)timer;
    send_error(call->client, call->service_id, call->method_id, call->call_id,
               SPRIG_STATUS_CANCELLED);
    fail_call(call, SPRIG_STATUS_DEADLINE_EXCEEDED);
}

static sprig_status check_start(const sprig_rpc_client *c, const sprig_rpc_client_call *call,
                                uint32_t service_id, uint32_t method_id, sprig_rpc_kind kind)
{
    if (c == NULL || call == NULL || service_id == 0 || method_id == 0 ||
        (unsigned)kind > SPRIG_RPC_BIDI_STREAMING) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (!c->ready || call->state == ST_OPEN) {
        return SPRIG_STATUS_FAILED_PRECONDITION;
    }
    return connected(c) ? SPRIG_STATUS_OK : SPRIG_STATUS_ABORTED;
}

static void link_call(sprig_rpc_client *c, sprig_rpc_client_call *call, uint32_t service_id,
                      uint32_t method_id, uint32_t call_id, sprig_rpc_kind kind,
                      const sprig_rpc_client_cbs *cbs, void *user, sprig_time timeout,
                      uint8_t flags)
{
    memset(call, 0, sizeof(*call));
    call->client = c;
    call->cbs = cbs;
    call->user = user;
    call->service_id = service_id;
    call->method_id = method_id;
    call->call_id = call_id;
    call->kind = (uint8_t)kind;
    call->state = ST_OPEN;
    call->flags = flags;
    call->final_status = SPRIG_STATUS_OK;
    sprig_timer_init(&call->deadline, on_deadline, call);
    if (timeout != SPRIG_TIME_NEVER) {
        sprig_loop *loop = c->cfg.loop;
        sprig_timer_start_at(loop, &call->deadline, sprig_time_add(sprig_loop_now(loop), timeout));
    }
    call->next = c->calls;
    c->calls = call;
}

typedef struct payload_src {
    const uint8_t *data;
    size_t len;
    const pb_msgdesc_t *fields; /* non-NULL: encode msg with nanopb instead */
    const void *msg;
} payload_src;

static sprig_status start_call(sprig_rpc_client *c, sprig_rpc_client_call *call,
                               uint32_t service_id, uint32_t method_id, sprig_rpc_kind kind,
                               const payload_src *src, const sprig_rpc_client_cbs *cbs, void *user,
                               sprig_time timeout, uint8_t flags)
{
    sprig_status st = check_start(c, call, service_id, method_id, kind);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    if (src->fields == NULL && src->data == NULL && src->len > 0) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    /* Next free id; the counter moves only if the REQUEST goes out. */
    uint32_t counter = c->next_call_id;
    uint32_t id = 0;
    for (uint32_t n = 0;; n++) {
        if (n >= SPRIG__RPC_CALL_ID_WRAP) {
            return SPRIG_STATUS_RESOURCE_EXHAUSTED; /* every id of this method is open */
        }
        id = sprig__rpc_next_call_id(&counter);
        if (!id_in_use(c, service_id, method_id, id)) {
            break;
        }
    }
    sprig_rpc_packet p = {
        .type = SPRIG_RPC_PACKET_REQUEST,
        .service_id = service_id,
        .method_id = method_id,
        .call_id = id,
        .payload = src->data,
        .payload_len = src->len,
    };
    st = send_packet(c, &p, src->fields, src->msg);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    c->next_call_id = counter;
    link_call(c, call, service_id, method_id, id, kind, cbs, user, timeout, flags);
    return SPRIG_STATUS_OK;
}

/* ---- receiving ---------------------------------------------------------------------------- */

static bool has_server_stream(uint8_t kind)
{
    return kind == SPRIG_RPC_SERVER_STREAMING || kind == SPRIG_RPC_BIDI_STREAMING;
}

static sprig_rpc_client_call *find_call(const sprig_rpc_client *c, const sprig_rpc_packet *p)
{
    sprig_rpc_client_call *wild = NULL;
    for (sprig_rpc_client_call *k = c->calls; k != NULL; k = k->next) {
        if (k->service_id != p->service_id || k->method_id != p->method_id) {
            continue;
        }
        if (k->call_id == p->call_id) {
            return k;
        }
        if (wild == NULL && sprig__rpc_call_id_matches(k->call_id, p->call_id)) {
            wild = k;
        }
    }
    return wild;
}

/* A status from the wire, as handed to the user: never outside pw_status's range. */
static sprig_status wire_status(sprig_status st)
{
    return (unsigned)st < SPRIG_STATUS_COUNT ? st : SPRIG_STATUS_UNKNOWN;
}

static void dispatch(sprig_rpc_client *c, const uint8_t *data, size_t len)
{
    sprig_rpc_packet p;
    c->stats.packets_in++;
    if (sprig_rpc_packet_decode(data, len, &p) != SPRIG_STATUS_OK ||
        !sprig__rpc_packet_acceptable(&p, false) || p.channel_id != c->cfg.channel_id) {
        c->stats.dropped++;
        return;
    }
    sprig_rpc_client_call *call = find_call(c, &p);
    if (call == NULL) {
        c->stats.dropped++;
        if (p.type == SPRIG_RPC_PACKET_SERVER_STREAM) {
            send_error(c, p.service_id, p.method_id, p.call_id, SPRIG_STATUS_FAILED_PRECONDITION);
        }
        return;
    }
    if (sprig__rpc_call_id_is_wild(call->call_id) && !sprig__rpc_call_id_is_wild(p.call_id)) {
        call->call_id = p.call_id; /* adopt */
    }
    const uint8_t *payload = p.payload != NULL ? p.payload : empty_payload;
    const sprig_rpc_client_cbs *cbs = call->cbs;
    void *user = call->user;
    sprig_status st = wire_status(p.status);
    switch (p.type) {
    case SPRIG_RPC_PACKET_RESPONSE:
        end_call(call);
        if (cbs != NULL && cbs->on_completed != NULL) {
            cbs->on_completed(call, st, payload, p.payload_len, user);
        }
        return;
    case SPRIG_RPC_PACKET_SERVER_ERROR:
        fail_call(call, st == SPRIG_STATUS_OK ? SPRIG_STATUS_UNKNOWN : st);
        return;
    case SPRIG_RPC_PACKET_SERVER_STREAM:
        if (!has_server_stream(call->kind)) {
            send_error(c, call->service_id, call->method_id, call->call_id,
                       SPRIG_STATUS_INVALID_ARGUMENT);
            fail_call(call, SPRIG_STATUS_INVALID_ARGUMENT);
        } else if (cbs != NULL && cbs->on_next != NULL) {
            cbs->on_next(call, payload, p.payload_len, user);
        }
        return;
    default:
        c->stats.dropped++; /* retired or unknown server->client type */
        return;
    }
}

static void conn_lost(sprig_rpc_client *c, sprig_status st)
{
    if (c->conn_status != SPRIG_STATUS_OK) {
        return;
    }
    c->conn_status = st == SPRIG_STATUS_OK ? SPRIG_STATUS_OUT_OF_RANGE : st;
    sprig_loop_cancel(c->cfg.loop, &c->rx_task);
    sprig_sock *s = c->cfg.sock;
    c->cfg.sock = NULL;
    sprig_sock_close(s);
    fail_all(c, SPRIG_STATUS_ABORTED);
}

/* Read and dispatch until the socket has nothing more, an inbox fills, or the budget is spent.
 * Every callback may have ended the connection or deinitialised the client: re-check. */
static void pump(sprig_rpc_client *c)
{
    for (int n = 0; c->cfg.sock != NULL && c->rx_hold == NULL; n++) {
        if (n == RX_BUDGET) {
            sprig_loop_defer(c->cfg.loop, &c->rx_task); /* more next pass */
            return;
        }
        size_t len = 0;
        sprig_status st = sprig_sock_recv(c->cfg.sock, c->cfg.rx_buf, c->cfg.rx_cap, &len);
        if (st == SPRIG_STATUS_OK) {
            dispatch(c, c->cfg.rx_buf, len);
        } else if (st == SPRIG_STATUS_UNAVAILABLE) {
            if (c->flags & CL_CLOSED) {
                conn_lost(c, SPRIG_STATUS_OUT_OF_RANGE);
            }
            return;
        } else if (st == SPRIG_STATUS_DATA_LOSS && c->cfg.sock->state != SPRIG_SOCK_STATE_CLOSED) {
            c->stats.dropped++; /* one message cut short; the connection lives on */
        } else {
            conn_lost(c, st);
            return;
        }
    }
}

static void rx_task_fn(void *arg)
{
    pump(arg);
}

/* The socket has room again: on_ready for every call whose send met UNAVAILABLE. The set is
 * chosen first; each callback may end calls or deinit the client, so the list is searched
 * again after every one. */
static void writable(sprig_rpc_client *c)
{
    for (sprig_rpc_client_call *call = c->calls; call != NULL; call = call->next) {
        if (call->flags & CF_WANT_READY) {
            call->flags = (uint8_t)((call->flags & ~CF_WANT_READY) | CF_READY_DUE);
        }
    }
    for (;;) {
        sprig_rpc_client_call *call = c->calls;
        while (call != NULL && !(call->flags & CF_READY_DUE)) {
            call = call->next;
        }
        if (call == NULL || !connected(c)) {
            return;
        }
        call->flags &= (uint8_t)~CF_READY_DUE;
        if (call->cbs != NULL && call->cbs->on_ready != NULL) {
            call->cbs->on_ready(call, call->user);
        }
    }
}

static void on_sock_event(sprig_sock *sock, sprig_sock_event ev, sprig_status st, void *user)
{
    sprig_rpc_client *c = user;
    (void)sock;
    if (ev == SPRIG_SOCK_EV_CLOSED && st != SPRIG_STATUS_OK) {
        conn_lost(c, st); /* an error: whatever was queued is gone anyway */
    } else if (ev == SPRIG_SOCK_EV_CLOSED) {
        /* Orderly: read what is still queued first (later, if an inbox holds reading up). */
        c->flags |= CL_CLOSED;
        pump(c);
    } else if (ev == SPRIG_SOCK_EV_READABLE) {
        pump(c);
    } else if (ev == SPRIG_SOCK_EV_WRITABLE) {
        writable(c);
    }
}

/* ---- lifetime ------------------------------------------------------------------------------ */

sprig_status sprig_rpc_client_init(sprig_rpc_client *c, const sprig_rpc_client_cfg *cfg)
{
    if (c == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(c, 0, sizeof(*c)); /* deinit is safe after a failed init */
    if (cfg == NULL || cfg->loop == NULL || cfg->sock == NULL || cfg->rx_buf == NULL ||
        sprig_sock_type_of(cfg->sock) != SPRIG_SOCK_SEQPACKET ||
        sprig__rpc_max_payload(cfg->sock) == 0 ||
        cfg->rx_cap < sprig_sock_max_message_size(cfg->sock)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    c->cfg = *cfg;
    if (c->cfg.channel_id == 0) {
        c->cfg.channel_id = 1;
    }
    c->conn_status = SPRIG_STATUS_OK;
    c->ready = true;
    sprig_task_init(&c->rx_task, rx_task_fn, c);
    sprig_sock_set_callback(c->cfg.sock, on_sock_event, c);
    /* Whatever arrived before we took the socket raised no event for us: look now. */
    sprig_loop_defer(c->cfg.loop, &c->rx_task);
    return SPRIG_STATUS_OK;
}

void sprig_rpc_client_deinit(sprig_rpc_client *c)
{
    if (c == NULL || !c->ready) {
        return;
    }
    c->ready = false;
    if (c->conn_status == SPRIG_STATUS_OK) {
        c->conn_status = SPRIG_STATUS_CANCELLED;
    }
    sprig_loop *loop = c->cfg.loop;
    sprig_loop_cancel(loop, &c->rx_task);
    sprig_sock *s = c->cfg.sock;
    c->cfg.sock = NULL;
    sprig_sock_close(s);
    c->rx_hold = NULL;
    sprig__loop_enter(loop); /* callbacks may not block */
    fail_all(c, SPRIG_STATUS_CANCELLED);
    sprig__loop_leave(loop);
}

sprig_status sprig_rpc_client_status(const sprig_rpc_client *c)
{
    return c->conn_status;
}

size_t sprig_rpc_client_max_payload(const sprig_rpc_client *c)
{
    return connected(c) ? sprig__rpc_max_payload(c->cfg.sock) : 0;
}

const sprig_rpc_stats *sprig_rpc_client_stats(const sprig_rpc_client *c)
{
    return &c->stats;
}

/* ---- calls --------------------------------------------------------------------------------- */

sprig_status sprig_rpc_client_start(sprig_rpc_client *c, sprig_rpc_client_call *call,
                                    uint32_t service_id, uint32_t method_id, sprig_rpc_kind kind,
                                    const uint8_t *payload, size_t len,
                                    const sprig_rpc_client_cbs *cbs, void *user, sprig_time timeout)
{
    payload_src src = {.data = payload, .len = len};
    return start_call(c, call, service_id, method_id, kind, &src, cbs, user, timeout, 0);
}

sprig_status sprig_rpc_client_start_pb(sprig_rpc_client *c, sprig_rpc_client_call *call,
                                       uint32_t service_id, uint32_t method_id, sprig_rpc_kind kind,
                                       const pb_msgdesc_t *fields, const void *msg,
                                       const sprig_rpc_client_cbs *cbs, void *user,
                                       sprig_time timeout)
{
    if (fields == NULL || msg == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    payload_src src = {.fields = fields, .msg = msg};
    return start_call(c, call, service_id, method_id, kind, &src, cbs, user, timeout, 0);
}

sprig_status sprig_rpc_client_open(sprig_rpc_client *c, sprig_rpc_client_call *call,
                                   uint32_t service_id, uint32_t method_id, sprig_rpc_kind kind,
                                   const sprig_rpc_client_cbs *cbs, void *user, sprig_time timeout)
{
    sprig_status st = check_start(c, call, service_id, method_id, kind);
    if (st == SPRIG_STATUS_OK) {
        link_call(c, call, service_id, method_id, SPRIG_RPC_CALL_ID_OPEN, kind, cbs, user, timeout,
                  0);
    }
    return st;
}

/* A client-streaming call that may still send. */
static sprig_status check_stream(const sprig_rpc_client_call *call)
{
    if (call == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (call->state != ST_OPEN || (call->flags & CF_SEND_CLOSED) ||
        (call->kind != SPRIG_RPC_CLIENT_STREAMING && call->kind != SPRIG_RPC_BIDI_STREAMING)) {
        return SPRIG_STATUS_FAILED_PRECONDITION;
    }
    return SPRIG_STATUS_OK;
}

sprig_status sprig_rpc_client_send(sprig_rpc_client_call *call, const uint8_t *payload, size_t len)
{
    if (payload == NULL && len > 0) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    sprig_status st = check_stream(call);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    return send_on_call(call, SPRIG_RPC_PACKET_CLIENT_STREAM, payload, len, NULL, NULL);
}

sprig_status sprig_rpc_client_send_pb(sprig_rpc_client_call *call, const pb_msgdesc_t *fields,
                                      const void *msg)
{
    if (fields == NULL || msg == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    sprig_status st = check_stream(call);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    return send_on_call(call, SPRIG_RPC_PACKET_CLIENT_STREAM, NULL, 0, fields, msg);
}

sprig_status sprig_rpc_client_close_send(sprig_rpc_client_call *call)
{
    sprig_status st = check_stream(call);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    st = send_on_call(call, SPRIG_RPC_PACKET_CLIENT_REQUEST_COMPLETION, NULL, 0, NULL, NULL);
    if (st == SPRIG_STATUS_OK) {
        call->flags |= CF_SEND_CLOSED;
    }
    return st;
}

void sprig_rpc_client_cancel(sprig_rpc_client_call *call)
{
    if (call == NULL || call->state != ST_OPEN) {
        return;
    }
    send_error(call->client, call->service_id, call->method_id, call->call_id,
               SPRIG_STATUS_CANCELLED);
    end_call(call);
    call->state = ST_IDLE;
    call->inbox_full = 0;
}

bool sprig_rpc_client_call_active(const sprig_rpc_client_call *call)
{
    return call != NULL && call->state == ST_OPEN;
}

/* ---- blocking helpers ---------------------------------------------------------------------- */

/* The callbacks of a blocking helper's call: one message at a time in the inbox. */
static void inbox_next(sprig_rpc_client_call *call, const uint8_t *payload, size_t len, void *user)
{
    (void)user;
    if (len > call->inbox_cap) {
        /* It cannot be delivered: end the call rather than lose a message silently. */
        send_error(call->client, call->service_id, call->method_id, call->call_id,
                   SPRIG_STATUS_CANCELLED);
        end_call(call);
        call->final_status = SPRIG_STATUS_RESOURCE_EXHAUSTED;
        return;
    }
    if (len > 0) {
        memcpy(call->inbox, payload, len);
    }
    call->inbox_len = len;
    call->inbox_full = 1;
    call->client->rx_hold = call; /* stop reading until next_wait takes it */
}

static void inbox_completed(sprig_rpc_client_call *call, sprig_status status,
                            const uint8_t *payload, size_t len, void *user)
{
    (void)user;
    call->inbox_len = 0;
    call->final_status = status;
    if (len > call->inbox_cap) {
        call->final_status = SPRIG_STATUS_RESOURCE_EXHAUSTED;
    } else if (len > 0) {
        memcpy(call->inbox, payload, len);
        call->inbox_len = len;
    }
}

static void inbox_error(sprig_rpc_client_call *call, sprig_status status, void *user)
{
    (void)user;
    call->final_status = status;
}

static const sprig_rpc_client_cbs inbox_cbs = {
    .on_next = inbox_next,
    .on_completed = inbox_completed,
    .on_error = inbox_error,
};

sprig_status sprig_rpc_client_start_wait(sprig_rpc_client *c, sprig_rpc_client_call *call,
                                         uint32_t service_id, uint32_t method_id,
                                         sprig_rpc_kind kind, const uint8_t *payload, size_t len,
                                         uint8_t *inbox, size_t inbox_cap, sprig_time timeout)
{
    if (inbox == NULL && inbox_cap > 0) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    payload_src src = {.data = payload, .len = len};
    sprig_status st =
        start_call(c, call, service_id, method_id, kind, &src, &inbox_cbs, NULL, timeout, CF_INBOX);
    if (st == SPRIG_STATUS_OK) {
        call->inbox = inbox;
        call->inbox_cap = inbox_cap;
    }
    return st;
}

static bool inbox_ready(void *arg)
{
    const sprig_rpc_client_call *call = arg;
    return call->inbox_full || call->state != ST_OPEN;
}

sprig_status sprig_rpc_client_next_wait(sprig_rpc_client_call *call, uint8_t *buf, size_t cap,
                                        size_t *len, sprig_status *status, sprig_time timeout)
{
    if (call == NULL || len == NULL || (buf == NULL && cap > 0)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    *len = 0;
    if (!(call->flags & CF_INBOX) || call->state == ST_IDLE || call->client == NULL) {
        return SPRIG_STATUS_FAILED_PRECONDITION;
    }
    sprig_rpc_client *c = call->client;
    if (sprig_loop_in_callback(c->cfg.loop)) {
        return SPRIG_STATUS_FAILED_PRECONDITION;
    }
    sprig_status st = sprig_loop_run_until(c->cfg.loop, inbox_ready, call, timeout);
    if (st != SPRIG_STATUS_OK) {
        return st; /* DEADLINE_EXCEEDED: nothing yet, the call stays open */
    }
    if (call->inbox_len > cap) {
        *len = call->inbox_len; /* stays in the inbox */
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    if (call->inbox_len > 0) {
        memcpy(buf, call->inbox, call->inbox_len);
    }
    *len = call->inbox_len;
    call->inbox_len = 0;
    if (call->inbox_full) {
        call->inbox_full = 0;
        if (c->rx_hold == call) {
            c->rx_hold = NULL;
            resume_reading(c);
        }
        return SPRIG_STATUS_OK;
    }
    if (status != NULL) {
        *status = call->final_status;
    }
    return SPRIG_STATUS_OUT_OF_RANGE;
}

typedef struct unary_op {
    sprig_rpc_client *c;
    sprig_rpc_client_call call;
    uint32_t service_id;
    uint32_t method_id;
    const uint8_t *req;
    size_t req_len;
    uint8_t *resp;
    size_t resp_cap;
    sprig_time deadline;
    sprig_status start_status; /* UNAVAILABLE until the REQUEST went out */
} unary_op;

/* run_until's predicate: (re)try the start while the socket is full, then wait for the end. */
static bool unary_step(void *arg)
{
    unary_op *u = arg;
    if (u->start_status == SPRIG_STATUS_UNAVAILABLE) {
        sprig_time now = sprig_loop_now(u->c->cfg.loop);
        sprig_time left = u->deadline == SPRIG_TIME_NEVER ? SPRIG_TIME_NEVER
                          : u->deadline > now             ? u->deadline - now
                                                          : 0;
        u->start_status = sprig_rpc_client_start_wait(u->c, &u->call, u->service_id, u->method_id,
                                                      SPRIG_RPC_UNARY, u->req, u->req_len, u->resp,
                                                      u->resp_cap, left);
        if (u->start_status != SPRIG_STATUS_OK) {
            return u->start_status != SPRIG_STATUS_UNAVAILABLE;
        }
    }
    return u->call.state != ST_OPEN;
}

sprig_status sprig_rpc_client_unary(sprig_rpc_client *c, uint32_t service_id, uint32_t method_id,
                                    const uint8_t *req, size_t req_len, uint8_t *resp,
                                    size_t resp_cap, size_t *resp_len, sprig_time timeout)
{
    if (resp_len != NULL) {
        *resp_len = 0;
    }
    if (c == NULL || (resp == NULL && resp_cap > 0)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (!c->ready || sprig_loop_in_callback(c->cfg.loop)) {
        return SPRIG_STATUS_FAILED_PRECONDITION;
    }
    unary_op u;
    memset(&u, 0, sizeof(u));
    u.c = c;
    u.service_id = service_id;
    u.method_id = method_id;
    u.req = req;
    u.req_len = req_len;
    u.resp = resp;
    u.resp_cap = resp_cap;
    u.deadline = sprig_time_add(sprig_loop_now(c->cfg.loop), timeout);
    u.start_status = SPRIG_STATUS_UNAVAILABLE;
    sprig_status st = sprig_loop_run_until(c->cfg.loop, unary_step, &u, timeout);
    if (u.call.state == ST_OPEN) {
        sprig_rpc_client_cancel(&u.call); /* the loop gave up first; never leave it linked */
    }
    if (u.start_status != SPRIG_STATUS_OK) {
        return st != SPRIG_STATUS_OK ? st : u.start_status;
    }
    if (st != SPRIG_STATUS_OK && u.call.state != ST_DONE) {
        return st;
    }
    if (resp_len != NULL) {
        *resp_len = u.call.inbox_len;
    }
    return u.call.final_status;
}
