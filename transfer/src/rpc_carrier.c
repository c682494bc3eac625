/*
 * The transfer engine over pw_rpc (sprig/transfer_rpc.h; docs/transfer.md, "RPC carrier").
 *
 * Every Read/Write call gets a stream: an adapter socket (SEQPACKET, one stream payload = one
 * message) and a transfer node that owns it. The node is the ordinary engine; only the
 * adapter knows about RPC:
 *   send     a copy of the message goes out as SERVER_STREAM (server) / CLIENT_STREAM
 *            (client); the node builds it in a scratch buffer from cfg.tx_pool (alloc_tx).
 *            UNAVAILABLE from RPC is UNAVAILABLE here; the call's on_ready becomes the
 *            socket's WRITABLE.
 *   receive  a stream payload is offered during its RPC callback: READABLE is delivered at
 *            once and the node's recv copies it into its rx buffer. A payload larger than the
 *            socket's max message (we told the peer our max chunk size) is dropped and counted.
 *   end      the call ended (abort, completion, error): the socket is marked dead now (sends
 *            fail) and a deferred task delivers CLOSED (the node ends its transfers) and
 *            deinitialises the node, outside any callback of the node or of RPC.
 * Stream states: FREE, OPEN, CLOSING (teardown task queued), FINISHING (server: the RESPONSE
 * that answers the client's completion waits for room).
 */
#include "sprig/transfer_rpc.h"

#include <string.h>

enum { ST_FREE = 0, ST_OPEN, ST_CLOSING, ST_FINISHING };

#define WRITE_ID_OFFSET 0x40000000u

typedef sprig_transfer_rpc_stream stream;

static stream *stream_of(sprig_sock *s)
{
    return (stream *)(void *)s; /* sock.sock is the first member of stream */
}

/* ---- the adapter socket ------------------------------------------------------------------- */

static sprig_status ad_send(sprig_sock *s, const void *data, size_t len, const sprig_addr *to,
                            size_t *out_sent)
{
    stream *st = stream_of(s);
    sprig_status r = SPRIG_STATUS_FAILED_PRECONDITION;
    (void)to;
    if (st->sock.call != NULL) {
        r = sprig_rpc_call_send(st->sock.call, data, len);
    } else if (st->sock.client != NULL) {
        r = sprig_rpc_client_send(st->sock.client, data, len);
    }
    if (r == SPRIG_STATUS_OK) {
        *out_sent = len;
    } else if (r == SPRIG_STATUS_UNAVAILABLE) {
        st->sock.stalls++;
    }
    return r;
}

static sprig_status ad_recv(sprig_sock *s, void *buf, size_t cap, size_t *out_len, sprig_addr *from)
{
    sprig_transfer_rpc_sock *a = &stream_of(s)->sock;
    (void)from;
    if (!a->rx_full) {
        return SPRIG_STATUS_UNAVAILABLE;
    }
    if (cap < a->rx_len) {
        *out_len = a->rx_len;
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    if (a->rx_len > 0) {
        memcpy(buf, a->rx, a->rx_len);
    }
    *out_len = a->rx_len;
    a->rx_full = 0;
    a->rx = NULL;
    return SPRIG_STATUS_OK;
}

/* A scratch buffer for the node's next chunk. Taking one is synchronous (the node fills and
 * sends it at once), so an empty pool means a sender further up the stack holds it: ask again
 * from the loop (WRITABLE) instead of waiting for an on_ready that would never come. */
static sprig_status ad_alloc_tx(sprig_sock *s, size_t len, sprig_buf **out)
{
    stream *st = stream_of(s);
    if (len > st->scratch->buf_size) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    *out = sprig_buf_alloc(st->scratch, 0);
    if (*out == NULL) {
        s->flags |= SPRIG_SOCK_F_WANT_WRITABLE;
        sprig_loop_defer(s->loop, &st->retry);
        return SPRIG_STATUS_UNAVAILABLE;
    }
    return SPRIG_STATUS_OK;
}

static void ad_retry(void *arg)
{
    stream *st = arg;
    if (st->state == ST_OPEN) {
        sprig__sock_event(&st->sock.sock, SPRIG_SOCK_EV_WRITABLE, SPRIG_STATUS_OK);
    }
}

static sprig_status ad_shutdown(sprig_sock *s)
{
    (void)s;
    return SPRIG_STATUS_OK; /* the owner of the call decides when it ends */
}

static void ad_close(sprig_sock *s)
{
    sprig_loop_cancel(s->loop, &stream_of(s)->retry);
    s->state = SPRIG_SOCK_STATE_CLOSED;
}

static const sprig_sock_ops adapter_ops = {
    .name = "transfer-rpc",
    .send = ad_send,
    .alloc_tx = ad_alloc_tx,
    .recv = ad_recv,
    .shutdown = ad_shutdown,
    .close = ad_close,
};

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* Make the stream's socket and node. max_payload: what one RPC stream payload may hold. */
static sprig_status stream_up(stream *st, sprig_loop *loop, const sprig_transfer_cfg *tmpl,
                              sprig_buf_pool *pool, size_t max_payload, size_t rx_cap,
                              size_t max_sessions, uint32_t implied, uint32_t first_id)
{
    sprig_transfer_rpc_sock *a = &st->sock;
    sprig_rpc_call *call = a->call;
    sprig_rpc_client_call *ccall = a->client;
    sprig__sock_init(&a->sock, &adapter_ops, loop, SPRIG_SOCK_SEQPACKET, SPRIG_SOCK_STATE_OPEN);
    a->call = call;
    a->client = ccall;
    a->rx = NULL;
    a->rx_len = 0;
    a->rx_full = 0;
    a->dropped = 0;
    a->stalls = 0;
    st->scratch = pool;
    sprig_task_init(&st->retry, ad_retry, st);
    a->sock.max_message = min_size(min_size(max_payload, rx_cap), pool->buf_size);
    sprig_transfer_cfg cfg = *tmpl;
    cfg.loop = loop;
    cfg.sock = &a->sock;
    cfg.sessions = st->sessions;
    cfg.max_sessions = max_sessions;
    cfg.rx_buf = st->rx_buf;
    cfg.rx_cap = rx_cap;
    cfg.implied_direction = implied;
    cfg.first_session_id = first_id;
    return sprig_transfer_init(&st->node, &cfg);
}

/* A stream payload arrived: offer it to the node. */
static void stream_deliver(stream *st, const uint8_t *payload, size_t len)
{
    sprig_transfer_rpc_sock *a = &st->sock;
    if (st->state != ST_OPEN || len > a->sock.max_message) {
        a->dropped++;
        return;
    }
    a->rx = payload;
    a->rx_len = len;
    a->rx_full = 1;
    sprig__sock_event(&a->sock, SPRIG_SOCK_EV_READABLE, SPRIG_STATUS_OK);
    if (a->rx_full) { /* the node did not read it (it is going away) */
        a->rx_full = 0;
        a->rx = NULL;
        a->dropped++;
    }
}

static void stream_writable(stream *st)
{
    if (st->state == ST_OPEN) {
        sprig__sock_event(&st->sock.sock, SPRIG_SOCK_EV_WRITABLE, SPRIG_STATUS_OK);
    }
}

/* The call ended (or is ending): sends fail from now on; the node learns it from the loop. */
static void stream_close(stream *st, sprig_status status, sprig_loop *loop)
{
    if (st->state != ST_OPEN) {
        return;
    }
    st->state = ST_CLOSING;
    st->end_status = status;
    sprig__sock_set_dead(&st->sock.sock, status);
    sprig_loop_defer(loop, &st->task);
}

/* The node's transfers end with end_status; the node goes. Not from the node's callbacks. */
static void stream_down(stream *st)
{
    sprig__sock_event(&st->sock.sock, SPRIG_SOCK_EV_CLOSED, st->end_status);
    sprig_transfer_deinit(&st->node);
}

/* ---- server ------------------------------------------------------------------------------- */

static void finish_call(stream *st)
{
    sprig_rpc_call *call = st->sock.call;
    sprig_status r = sprig_rpc_call_finish(call, NULL, 0, SPRIG_STATUS_OK);
    if (r != SPRIG_STATUS_OK && r != SPRIG_STATUS_FAILED_PRECONDITION) {
        /* UNAVAILABLE: on_ready retries. ABORTED: the connection is going, on_abort follows.
         * Either way the call still points here; on_abort frees the slot. */
        st->state = ST_FINISHING;
        return;
    }
    st->sock.call = NULL;
    st->state = ST_FREE;
}

static void server_teardown(void *arg)
{
    stream *st = arg;
    if (st->state != ST_CLOSING) {
        return;
    }
    stream_down(st);
    if (st->finish_call && st->sock.call != NULL) {
        finish_call(st);
        return;
    }
    st->sock.call = NULL;
    st->state = ST_FREE;
}

/* A refused call is answered with RESPONSE and `status`; if the socket is full the call stays
 * open until on_ready can send it. call->user marks it: NULL for RESOURCE_EXHAUSTED (no free
 * slot), the service itself for FAILED_PRECONDITION (messages too small for chunks). */
static void refuse(sprig_rpc_call *call, sprig_status status)
{
    call->user =
        status == SPRIG_STATUS_RESOURCE_EXHAUSTED ? NULL : sprig_rpc_call_service_ctx(call);
    (void)sprig_rpc_call_finish(call, NULL, 0, status);
}

/* The call's stream, or NULL for a refused call. */
static stream *call_stream(const sprig_rpc_call *call)
{
    void *user = call->user;
    return user == sprig_rpc_call_service_ctx(call) ? NULL : user;
}

static void srv_request(sprig_rpc_call *call, const uint8_t *payload, size_t len)
{
    sprig_transfer_rpc_service *svc = sprig_rpc_call_service_ctx(call);
    const sprig_transfer_rpc_service_cfg *cfg = &svc->cfg;
    stream *st = NULL;
    size_t i = 0;
    for (; i < cfg->max_calls; i++) {
        if (cfg->slots[i].state == ST_FREE) {
            st = &cfg->slots[i];
            break;
        }
    }
    if (st == NULL) {
        svc->calls_refused++;
        refuse(call, SPRIG_STATUS_RESOURCE_EXHAUSTED);
        return;
    }
    memset(st, 0, sizeof(*st));
    st->owner = svc;
    st->sessions = &cfg->sessions[i * cfg->sessions_per_call];
    st->rx_buf = &cfg->rx_bufs[i * cfg->rx_cap];
    sprig_task_init(&st->task, server_teardown, st);
    st->sock.call = call;
    uint32_t implied = call->method->method_id == SPRIG_TRANSFER_RPC_READ_ID
                           ? SPRIG_TRANSFER_DIR_READ
                           : SPRIG_TRANSFER_DIR_WRITE;
    sprig_status r =
        stream_up(st, cfg->loop, &cfg->engine, cfg->tx_pool, sprig_rpc_call_max_payload(call),
                  cfg->rx_cap, cfg->sessions_per_call, implied, cfg->engine.first_session_id);
    if (r != SPRIG_STATUS_OK) {
        /* The connection's messages are too small for chunks. */
        st->sock.call = NULL;
        refuse(call, SPRIG_STATUS_FAILED_PRECONDITION);
        return;
    }
    call->user = st;
    st->state = ST_OPEN;
    if (len > 0) {
        stream_deliver(st, payload, len); /* a chunk in the REQUEST itself */
    }
}

static void srv_stream(sprig_rpc_call *call, const uint8_t *payload, size_t len)
{
    stream *st = call_stream(call);
    if (st != NULL) {
        stream_deliver(st, payload, len);
    }
}

/* The client will send nothing more: its transfers cannot go on. End them, then answer. */
static void srv_complete(sprig_rpc_call *call)
{
    stream *st = call_stream(call);
    if (st == NULL) {
        return;
    }
    sprig_transfer_rpc_service *svc = st->owner;
    st->finish_call = 1;
    stream_close(st, SPRIG_STATUS_ABORTED, svc->cfg.loop);
}

static void srv_abort(sprig_rpc_call *call, sprig_status status)
{
    stream *st = call_stream(call);
    if (st == NULL) {
        return; /* a refusal that never went out */
    }
    sprig_transfer_rpc_service *svc = st->owner;
    st->sock.call = NULL;
    if (st->state == ST_FINISHING) {
        st->state = ST_FREE;
        return;
    }
    stream_close(st, status == SPRIG_STATUS_CANCELLED ? status : SPRIG_STATUS_ABORTED,
                 svc->cfg.loop);
}

static void srv_ready(sprig_rpc_call *call)
{
    stream *st = call_stream(call);
    if (st == NULL) {
        refuse(call, call->user == NULL ? SPRIG_STATUS_RESOURCE_EXHAUSTED
                                        : SPRIG_STATUS_FAILED_PRECONDITION);
        return;
    }
    if (st->state == ST_FINISHING) {
        finish_call(st);
        return;
    }
    stream_writable(st);
}

static const sprig_rpc_method transfer_methods[2] = {
    {
        .method_id = SPRIG_TRANSFER_RPC_READ_ID,
        .kind = SPRIG_RPC_BIDI_STREAMING,
        .on_request = srv_request,
        .on_client_stream = srv_stream,
        .on_client_complete = srv_complete,
        .on_abort = srv_abort,
        .on_ready = srv_ready,
    },
    {
        .method_id = SPRIG_TRANSFER_RPC_WRITE_ID,
        .kind = SPRIG_RPC_BIDI_STREAMING,
        .on_request = srv_request,
        .on_client_stream = srv_stream,
        .on_client_complete = srv_complete,
        .on_abort = srv_abort,
        .on_ready = srv_ready,
    },
};

sprig_status sprig_transfer_rpc_service_init(sprig_transfer_rpc_service *svc,
                                             sprig_rpc_server *server,
                                             const sprig_transfer_rpc_service_cfg *cfg)
{
    if (svc == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(svc, 0, sizeof(*svc));
    if (server == NULL || cfg == NULL || cfg->loop == NULL || cfg->slots == NULL ||
        cfg->max_calls == 0 || cfg->sessions == NULL || cfg->sessions_per_call == 0 ||
        cfg->rx_bufs == NULL || cfg->rx_cap < SPRIG_TRANSFER_MIN_MESSAGE || cfg->tx_pool == NULL ||
        cfg->tx_pool->buf_size < SPRIG_TRANSFER_MIN_MESSAGE) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    svc->cfg = *cfg;
    svc->service.service_id = SPRIG_TRANSFER_RPC_SERVICE_ID;
    svc->service.name = "pw.transfer.Transfer";
    svc->service.methods = transfer_methods;
    svc->service.method_count = 2;
    svc->service.ctx = svc;
    sprig_status r = sprig_rpc_server_register(server, &svc->service);
    if (r != SPRIG_STATUS_OK) {
        return r; /* the slots are untouched (they may be another service's) */
    }
    for (size_t i = 0; i < cfg->max_calls; i++) {
        memset(&cfg->slots[i], 0, sizeof(cfg->slots[i]));
    }
    svc->server = server;
    return SPRIG_STATUS_OK;
}

void sprig_transfer_rpc_service_deinit(sprig_transfer_rpc_service *svc)
{
    if (svc == NULL || svc->server == NULL) {
        return;
    }
    /* Every open call is aborted (CANCELLED) and its stream starts closing ... */
    (void)sprig_rpc_server_unregister(svc->server, &svc->service);
    svc->server = NULL;
    /* ... and is torn down now instead of from the loop. */
    for (size_t i = 0; i < svc->cfg.max_calls; i++) {
        stream *st = &svc->cfg.slots[i];
        if (st->state == ST_OPEN) {
            st->sock.call = NULL;
            stream_close(st, SPRIG_STATUS_CANCELLED, svc->cfg.loop);
        }
        sprig_loop_cancel(svc->cfg.loop, &st->task);
        if (st->state == ST_CLOSING) {
            st->finish_call = 0;
            server_teardown(st);
        }
        st->state = ST_FREE;
    }
}

size_t sprig_transfer_rpc_service_calls(const sprig_transfer_rpc_service *svc)
{
    size_t k = 0;
    for (size_t i = 0; svc != NULL && i < svc->cfg.max_calls; i++) {
        k += svc->cfg.slots[i].state != ST_FREE;
    }
    return k;
}

/* ---- client ------------------------------------------------------------------------------- */

static sprig_loop *client_loop(const sprig_transfer_rpc_client *c)
{
    return c->cfg.rpc->cfg.loop;
}

/* The status a call's end gives the transfers still on it. */
static sprig_status ended_status(sprig_status st)
{
    if (st == SPRIG_STATUS_OK) {
        return SPRIG_STATUS_ABORTED; /* the server ended the stream under them */
    }
    if (st == SPRIG_STATUS_NOT_FOUND) {
        return SPRIG_STATUS_UNIMPLEMENTED; /* the server has no pw.transfer.Transfer */
    }
    return st;
}

static void cl_next(sprig_rpc_client_call *call, const uint8_t *payload, size_t len, void *user)
{
    (void)call;
    stream_deliver(user, payload, len);
}

static void cl_ended(stream *st, sprig_status status)
{
    sprig_transfer_rpc_client *c = st->owner;
    st->sock.client = NULL;
    stream_close(st, ended_status(status), client_loop(c));
}

static void cl_completed(sprig_rpc_client_call *call, sprig_status status, const uint8_t *payload,
                         size_t len, void *user)
{
    (void)call;
    (void)payload;
    (void)len;
    cl_ended(user, status);
}

static void cl_error(sprig_rpc_client_call *call, sprig_status status, void *user)
{
    (void)call;
    cl_ended(user, status);
}

static void cl_ready(sprig_rpc_client_call *call, void *user)
{
    (void)call;
    stream_writable(user);
}

static const sprig_rpc_client_cbs client_cbs = {
    .on_next = cl_next,
    .on_completed = cl_completed,
    .on_error = cl_error,
    .on_ready = cl_ready,
};

static void client_teardown(void *arg)
{
    stream *st = arg;
    if (st->state != ST_CLOSING) {
        return;
    }
    stream_down(st);
    st->state = ST_FREE;
}

sprig_status sprig_transfer_rpc_client_init(sprig_transfer_rpc_client *c,
                                            const sprig_transfer_rpc_client_cfg *cfg)
{
    if (c == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(c, 0, sizeof(*c));
    if (cfg == NULL || cfg->rpc == NULL || cfg->rpc->cfg.loop == NULL || cfg->sessions == NULL ||
        cfg->sessions_per_stream == 0 || cfg->rx_bufs == NULL ||
        cfg->rx_cap < SPRIG_TRANSFER_MIN_MESSAGE || cfg->tx_pool == NULL ||
        cfg->tx_pool->buf_size < SPRIG_TRANSFER_MIN_MESSAGE) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    c->cfg = *cfg;
    c->cfg.engine.handler = NULL; /* a client serves nothing */
    for (size_t i = 0; i < 2; i++) {
        stream *st = &c->streams[i];
        st->owner = c;
        st->sessions = &cfg->sessions[i * cfg->sessions_per_stream];
        st->rx_buf = &cfg->rx_bufs[i * cfg->rx_cap];
        sprig_task_init(&st->task, client_teardown, st);
    }
    c->ready = 1;
    return SPRIG_STATUS_OK;
}

void sprig_transfer_rpc_client_deinit(sprig_transfer_rpc_client *c)
{
    if (c == NULL || !c->ready) {
        return;
    }
    for (size_t i = 0; i < 2; i++) {
        stream *st = &c->streams[i];
        sprig_loop_cancel(client_loop(c), &st->task);
        if (st->state == ST_OPEN) {
            sprig_rpc_client_call *call = st->sock.client;
            st->sock.client = NULL;
            st->end_status = SPRIG_STATUS_CANCELLED;
            st->state = ST_CLOSING;
            sprig_transfer_deinit(&st->node); /* transfers end CANCELLED */
            sprig_rpc_client_cancel(call);    /* the server's end with CANCELLED */
        } else if (st->state == ST_CLOSING) {
            stream_down(st);
        }
        st->state = ST_FREE;
    }
    c->ready = 0;
}

static sprig_status open_stream(sprig_transfer_rpc_client *c, size_t idx)
{
    stream *st = &c->streams[idx];
    if (st->state == ST_OPEN) {
        return SPRIG_STATUS_OK;
    }
    if (st->state != ST_FREE) {
        return SPRIG_STATUS_UNAVAILABLE; /* the last call is still being torn down */
    }
    uint32_t method = idx == 0 ? SPRIG_TRANSFER_RPC_READ_ID : SPRIG_TRANSFER_RPC_WRITE_ID;
    memset(&st->ccall, 0, sizeof(st->ccall));
    sprig_status r = sprig_rpc_client_start(c->cfg.rpc, &st->ccall, SPRIG_TRANSFER_RPC_SERVICE_ID,
                                            method, SPRIG_RPC_BIDI_STREAMING, NULL, 0, &client_cbs,
                                            st, SPRIG_TIME_NEVER);
    if (r != SPRIG_STATUS_OK) {
        return r;
    }
    st->sock.call = NULL;
    st->sock.client = &st->ccall;
    uint32_t first = c->cfg.engine.first_session_id != 0 ? c->cfg.engine.first_session_id : 1u;
    r = stream_up(st, client_loop(c), &c->cfg.engine, c->cfg.tx_pool,
                  sprig_rpc_client_max_payload(c->cfg.rpc), c->cfg.rx_cap,
                  c->cfg.sessions_per_stream, 0, idx == 0 ? first : first + WRITE_ID_OFFSET);
    if (r != SPRIG_STATUS_OK) {
        st->sock.client = NULL;
        sprig_rpc_client_cancel(&st->ccall);
        return r;
    }
    st->state = ST_OPEN;
    return SPRIG_STATUS_OK;
}

static sprig_status client_start(sprig_transfer_rpc_client *c, const sprig_transfer_opts *opts,
                                 uint32_t *session_id, size_t idx)
{
    if (c == NULL || !c->ready) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    sprig_status r = open_stream(c, idx);
    if (r != SPRIG_STATUS_OK) {
        return r;
    }
    sprig_transfer_node *node = &c->streams[idx].node;
    return idx == 0 ? sprig_transfer_read(node, opts, session_id)
                    : sprig_transfer_write(node, opts, session_id);
}

sprig_status sprig_transfer_rpc_read(sprig_transfer_rpc_client *c, const sprig_transfer_opts *opts,
                                     uint32_t *session_id)
{
    return client_start(c, opts, session_id, 0);
}

sprig_status sprig_transfer_rpc_write(sprig_transfer_rpc_client *c, const sprig_transfer_opts *opts,
                                      uint32_t *session_id)
{
    return client_start(c, opts, session_id, 1);
}

sprig_status sprig_transfer_rpc_cancel(sprig_transfer_rpc_client *c, uint32_t session_id)
{
    if (c == NULL || !c->ready) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    sprig_status r = SPRIG_STATUS_NOT_FOUND;
    for (size_t i = 0; i < 2 && r == SPRIG_STATUS_NOT_FOUND; i++) {
        if (c->streams[i].state == ST_OPEN || c->streams[i].state == ST_CLOSING) {
            r = sprig_transfer_cancel(&c->streams[i].node, session_id);
        }
    }
    return r;
}

size_t sprig_transfer_rpc_active(const sprig_transfer_rpc_client *c)
{
    size_t k = 0;
    for (size_t i = 0; c != NULL && i < 2; i++) {
        if (c->streams[i].state == ST_OPEN || c->streams[i].state == ST_CLOSING) {
            k += sprig_transfer_active(&c->streams[i].node);
        }
    }
    return k;
}
