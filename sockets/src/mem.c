/*
 * The in-memory backend (sprig/mem.h): connected sockets inside one process, for tests and for
 * joining two components of one image. Portable: no malloc, no OS calls.
 *
 * Where sock.h and mem.h leave room, this backend behaves as follows (the conformance suite
 * checks the shared contract; tests/sockets/test_mem.c checks these choices):
 *  - Events never fire from inside an op. An op sets a bit in `pending` and defers the socket's
 *    task, which delivers CONNECTED, READABLE, WRITABLE, CLOSED in that order.
 *  - Peer shut down: we read what it queued, then OUT_OF_RANGE. Our own sends still work.
 *  - Peer closed: we read what it queued, then OUT_OF_RANGE; our sends return ABORTED. The first
 *    send that finds the peer gone also kills the socket like a TCP reset: CLOSED(ABORTED)
 *    follows and anything still unread is gone. A writer waiting for WRITABLE gets it so that
 *    it finds this out.
 *  - CLOSED(OK) fires once a socket has shut down and read end of stream, in either order.
 *  - Dialing a name nobody listens on, or a listener whose backlog is full: dial returns OK,
 *    then CLOSED(UNAVAILABLE). Closing a listener resets connections it has not accepted yet:
 *    their dialers get CLOSED(ABORTED).
 *  - DGRAM has no connection: a dialed socket's default destination is the bound one; a
 *    datagram to an address nobody holds (or to a destination that has closed) vanishes with
 *    OK; recv never reports end of stream. A full window drops the datagram and counts it in
 *    the *receiver's* `dropped`.
 *  - Flow control: a direction holds at most window_bytes unread, but an empty queue always
 *    takes one message (or one send_buf buffer), so a message bigger than the window still
 *    gets through. With the pool empty a send returns UNAVAILABLE; WRITABLE follows when this
 *    backend gives buffers back to the pool (recv, close). Buffers freed elsewhere are not seen.
 */
#include "sprig/mem.h"

#include <stdbool.h>
#include <string.h>

/* Bits of sprig_mem_sock.pending. */
#define EV_CONNECTED 0x01u
#define EV_READABLE  0x02u
#define EV_WRITABLE  0x04u
#define EV_CLOSED    0x08u
/* Set while the task delivers events; close clears it, which tells the task to stop touching
 * the socket (whose slot the callback may even have reused). */
#define EV_DELIVERING 0x80u

/* A queued datagram carries its sender's port in the two headroom bytes just before its data,
 * so no side table is needed and send_buf stays zero-copy. */
#define SRC_STASH 2u

#define DEFAULT_BACKLOG 16u

#if SPRIG_CONFIG_SOCK_HEADROOM < 2
#error "the mem backend keeps a datagram's source port in 2 bytes of headroom"
#endif

static const sprig_sock_ops mem_ops;

/* ---- helpers ------------------------------------------------------------------------------ */

static sprig_mem_sock *mem_of(sprig_sock *s)
{
    return (sprig_mem_sock *)s; /* sock is the first member */
}

static bool is_conn(const sprig_mem_sock *ms)
{
    return ms->sock.type != SPRIG_SOCK_DGRAM;
}

static bool is_dead(const sprig_mem_sock *ms)
{
    return ms->sock.state == SPRIG_SOCK_STATE_CLOSED;
}

static uint16_t port_of(const sprig_mem_sock *ms)
{
    return (uint16_t)(ms - ms->backend->socks + 1);
}

static void addr_of(const sprig_mem_sock *ms, sprig_addr *out)
{
    memset(out, 0, sizeof(*out));
    out->port = port_of(ms);
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* Unread bytes queued for reader r (its window use). */
static size_t window_used(const sprig_mem_sock *r)
{
    return r->rxq.bytes - r->stream_off;
}

static size_t window_room(const sprig_mem_sock *r)
{
    size_t used = window_used(r);
    size_t window = r->backend->cfg.window_bytes;
    return used >= window ? 0 : window - used;
}

/* An empty queue always takes one message, so progress never depends on the window size. */
static bool window_fits(const sprig_mem_sock *r, size_t len)
{
    return r->rxq.count == 0 || len <= window_room(r);
}

/* ---- events ------------------------------------------------------------------------------- */

static void pend(sprig_mem_sock *ms, uint8_t ev)
{
    bool closing = is_dead(ms) || (ms->pending & EV_CLOSED);
    if (!ms->in_use || (closing && ev != EV_CLOSED)) {
        return; /* CLOSED is the last word */
    }
    ms->pending |= ev;
    sprig_loop_defer(ms->sock.loop, &ms->task);
}

/* Mark the socket dead now (ops then answer with `st`) and let CLOSED follow alone. A dial
 * that fails stays CONNECTING until then: its failure is reported from the loop. */
static void make_dead(sprig_mem_sock *ms, sprig_status st)
{
    if (is_dead(ms) || (ms->pending & EV_CLOSED)) {
        return;
    }
    if (ms->sock.state == SPRIG_SOCK_STATE_CONNECTING) {
        ms->sock.status = st; /* handed to the CLOSED event by run_events() */
    } else {
        sprig__sock_set_dead(&ms->sock, st);
    }
    ms->pending &= (uint8_t) ~(EV_CONNECTED | EV_READABLE | EV_WRITABLE);
    pend(ms, EV_CLOSED);
}

static void run_events(void *arg)
{
    static const uint8_t bits[] = {EV_CONNECTED, EV_READABLE, EV_WRITABLE, EV_CLOSED};
    static const sprig_sock_event events[] = {SPRIG_SOCK_EV_CONNECTED, SPRIG_SOCK_EV_READABLE,
                                              SPRIG_SOCK_EV_WRITABLE, SPRIG_SOCK_EV_CLOSED};
    sprig_mem_sock *ms = arg;
    /* Only what was due when this pass began; events raised by the callbacks re-deferred the
     * task and wait for the next pass. */
    uint8_t due = ms->pending;
    ms->pending |= EV_DELIVERING;
    for (size_t i = 0; i < sizeof(bits); i++) {
        if (!(due & bits[i]) || !(ms->pending & bits[i])) {
            continue; /* not due, or withdrawn by make_dead() meanwhile */
        }
        ms->pending &= (uint8_t)~bits[i];
        sprig_status st = bits[i] == EV_CLOSED ? ms->sock.status : SPRIG_STATUS_OK;
        sprig__sock_event(&ms->sock, events[i], st);
        if (!(ms->pending & EV_DELIVERING)) {
            return; /* closed by the callback */
        }
    }
    ms->pending &= (uint8_t)~EV_DELIVERING;
}

/* A writer that got UNAVAILABLE gets WRITABLE once a send could make progress. */
static bool can_send(const sprig_mem_sock *w)
{
    if (is_conn(w) && w->peer == NULL) {
        return true; /* the retry learns ABORTED */
    }
    if (w->backend->pool->available == 0) {
        return false;
    }
    return !is_conn(w) || window_room(w->peer) > 0 || w->peer->rxq.count == 0;
}

static void wake_writer(sprig_mem_sock *w)
{
    if (w != NULL && w->in_use && (w->sock.flags & SPRIG_SOCK_F_WANT_WRITABLE) && can_send(w)) {
        pend(w, EV_WRITABLE);
    }
}

static void wake_all_writers(sprig_mem_backend *m)
{
    for (size_t i = 0; i < m->nsocks; i++) {
        wake_writer(&m->socks[i]);
    }
}

/* After reader r's buffers went back to the pool: its writer may go on, and if the pool had
 * run dry, so may anyone else who was waiting for a buffer. */
static void room_made(sprig_mem_sock *r, bool pool_was_empty)
{
    sprig_mem_backend *m = r->backend;
    if (pool_was_empty && m->pool->available > 0) {
        wake_all_writers(m);
    } else if (is_conn(r)) {
        wake_writer(r->peer);
    }
}

/* ---- socket slots ------------------------------------------------------------------------- */

static sprig_mem_sock *take_sock(sprig_mem_backend *m, sprig_sock_type type, sprig_sock_state state)
{
    for (size_t i = 0; i < m->nsocks; i++) {
        sprig_mem_sock *ms = &m->socks[i];
        if (ms->in_use) {
            continue;
        }
        memset(ms, 0, sizeof(*ms));
        sprig__sock_init(&ms->sock, &mem_ops, m->loop, type, state);
        ms->sock.tx_pool = m->pool;
        ms->sock.headroom = (uint16_t)SPRIG_CONFIG_SOCK_HEADROOM;
        ms->sock.max_message = type == SPRIG_SOCK_STREAM ? 0 : m->cfg.max_message_size;
        ms->backend = m;
        sprig_buf_queue_init(&ms->rxq);
        sprig_task_init(&ms->task, run_events, ms);
        ms->in_use = 1;
        return ms;
    }
    return NULL;
}

/* Give the slot back: no event may fire for it afterwards. */
static void release_sock(sprig_mem_sock *ms)
{
    sprig_loop_cancel(ms->sock.loop, &ms->task);
    sprig_buf_queue_clear(&ms->rxq);
    ms->stream_off = 0;
    ms->pending = 0;
    ms->peer = NULL;
    ms->next = NULL;
    ms->accept_q = NULL;
    ms->backlog_used = 0;
    ms->name[0] = '\0';
    ms->sock.state = SPRIG_SOCK_STATE_CLOSED;
    ms->in_use = 0;
}

static void link_pair(sprig_mem_sock *a, sprig_mem_sock *b)
{
    a->peer = b;
    b->peer = a;
}

/* Everyone whose peer (or DGRAM destination) was ms loses it; a connected peer sees end of
 * stream after its queue and is woken to read it. */
static void forget_peer(sprig_mem_sock *ms)
{
    sprig_mem_backend *m = ms->backend;
    for (size_t i = 0; i < m->nsocks; i++) {
        sprig_mem_sock *o = &m->socks[i];
        if (!o->in_use || o->peer != ms) {
            continue;
        }
        o->peer = NULL;
        if (is_conn(o)) {
            o->peer_closed = 1;
            pend(o, EV_READABLE);
            wake_writer(o);
        }
    }
}

/* A closing listener resets the connections nobody accepted. */
static void reset_backlog(sprig_mem_sock *listener)
{
    sprig_mem_sock *srv;
    while ((srv = listener->accept_q) != NULL) {
        listener->accept_q = srv->next;
        sprig_mem_sock *dialer = srv->peer;
        if (dialer != NULL) {
            dialer->peer = NULL;
            make_dead(dialer, SPRIG_STATUS_ABORTED);
        }
        release_sock(srv);
    }
    listener->backlog_used = 0;
}

/* ---- sending ------------------------------------------------------------------------------ */

static sprig_mem_sock *lookup_addr(sprig_mem_backend *m, const sprig_addr *to)
{
    static const uint8_t any[16];
    if (memcmp(to->ip, any, sizeof(any)) != 0 || to->port == 0 || to->port > m->nsocks) {
        return NULL;
    }
    sprig_mem_sock *dst = &m->socks[to->port - 1];
    if (!dst->in_use || dst->sock.type != SPRIG_SOCK_DGRAM || is_dead(dst)) {
        return NULL;
    }
    return dst;
}

/* Where a message from ms goes. OK with *out NULL: a datagram to nobody, dropped. */
static sprig_status destination(sprig_mem_sock *ms, const sprig_addr *to, sprig_mem_sock **out)
{
    *out = NULL;
    if (!is_conn(ms)) {
        if (to != NULL) {
            *out = lookup_addr(ms->backend, to);
        } else if (ms->peer == NULL && ms->name[0] != '\0') {
            return SPRIG_STATUS_FAILED_PRECONDITION; /* bound: it has no default destination */
        } else {
            *out = ms->peer;
        }
        return SPRIG_STATUS_OK;
    }
    if (ms->peer == NULL) {
        make_dead(ms, SPRIG_STATUS_ABORTED);
        return SPRIG_STATUS_ABORTED;
    }
    *out = ms->peer;
    return SPRIG_STATUS_OK;
}

static void enqueue(sprig_mem_sock *src, sprig_mem_sock *dst, sprig_buf *b)
{
    if (!is_conn(dst)) {
        uint16_t port = port_of(src);
        b->mem[b->off - 2] = (uint8_t)(port >> 8);
        b->mem[b->off - 1] = (uint8_t)port;
    }
    sprig_buf_queue_push(&dst->rxq, b);
    pend(dst, EV_READABLE);
}

/* The window verdict for a message: OK to queue, UNAVAILABLE, or (DGRAM) drop. */
static bool dropped_for_window(sprig_mem_sock *dst, size_t len, sprig_status *st)
{
    if (window_fits(dst, len)) {
        *st = SPRIG_STATUS_OK;
        return false;
    }
    if (is_conn(dst)) {
        *st = SPRIG_STATUS_UNAVAILABLE;
        return false;
    }
    dst->dropped++;
    *st = SPRIG_STATUS_OK;
    return true;
}

static sprig_status message_copy(sprig_mem_sock *src, sprig_mem_sock *dst, const void *data,
                                 size_t len)
{
    sprig_status st;
    if (dropped_for_window(dst, len, &st) || st != SPRIG_STATUS_OK) {
        return st;
    }
    sprig_buf *b = sprig_buf_alloc(src->backend->pool, SRC_STASH);
    if (b == NULL) {
        return SPRIG_STATUS_UNAVAILABLE; /* retry when buffers come back */
    }
    if (sprig_buf_append(b, data, len) != SPRIG_STATUS_OK) {
        sprig_buf_free(b);
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    enqueue(src, dst, b);
    return SPRIG_STATUS_OK;
}

/* Append up to n bytes to r's stream: into the tail buffer's tailroom first (small writes
 * coalesce), then into fresh pool buffers. Returns the bytes taken. */
static size_t stream_append(sprig_mem_sock *r, const uint8_t *data, size_t n)
{
    size_t done = 0;
    sprig_buf *tail = r->rxq.tail;
    if (tail != NULL && sprig_buf_tailroom(tail) > 0) {
        done = min_size(n, sprig_buf_tailroom(tail));
        (void)sprig_buf_append(tail, data, done);
        r->rxq.bytes += done;
    }
    while (done < n) {
        sprig_buf *b = sprig_buf_alloc(r->backend->pool, 0);
        if (b == NULL) {
            break;
        }
        size_t k = min_size(n - done, sprig_buf_tailroom(b));
        (void)sprig_buf_append(b, data + done, k);
        sprig_buf_queue_push(&r->rxq, b);
        done += k;
    }
    return done;
}

static sprig_status stream_send(sprig_mem_sock *ms, const void *data, size_t len, size_t *out_sent)
{
    sprig_mem_sock *r;
    sprig_status st = destination(ms, NULL, &r);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    size_t done = stream_append(r, data, min_size(len, window_room(r)));
    if (done == 0) {
        return SPRIG_STATUS_UNAVAILABLE;
    }
    *out_sent = done;
    pend(r, EV_READABLE);
    return SPRIG_STATUS_OK;
}

static sprig_status mem_send(sprig_sock *s, const void *data, size_t len, const sprig_addr *to,
                             size_t *out_sent)
{
    sprig_mem_sock *ms = mem_of(s);
    *out_sent = 0;
    if (s->type == SPRIG_SOCK_STREAM) {
        return stream_send(ms, data, len, out_sent);
    }
    if (len > s->max_message) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    sprig_mem_sock *dst;
    sprig_status st = destination(ms, to, &dst);
    if (st == SPRIG_STATUS_OK && dst != NULL) {
        st = message_copy(ms, dst, data, len);
    }
    if (st == SPRIG_STATUS_OK) {
        *out_sent = len;
    }
    return st;
}

static sprig_status mem_send_iov(sprig_sock *s, const sprig_iov *iov, size_t iovcnt,
                                 size_t *out_sent)
{
    *out_sent = 0;
    if (s->type != SPRIG_SOCK_STREAM) { /* one message: the pieces copied into one buffer */
        sprig_mem_sock *ms = mem_of(s);
        sprig_mem_sock *dst;
        size_t len = 0;
        for (size_t i = 0; i < iovcnt; i++) {
            len += iov[i].len;
        }
        sprig_status st = destination(ms, NULL, &dst);
        if (st != SPRIG_STATUS_OK || dst == NULL || dropped_for_window(dst, len, &st) ||
            st != SPRIG_STATUS_OK) {
            *out_sent = st == SPRIG_STATUS_OK ? len : 0; /* a datagram lost in flight */
            return st;
        }
        sprig_buf *b = sprig_buf_alloc(ms->backend->pool, SRC_STASH);
        if (b == NULL) {
            return SPRIG_STATUS_UNAVAILABLE; /* retry when buffers come back */
        }
        for (size_t i = 0; i < iovcnt; i++) {
            if (sprig_buf_append(b, iov[i].base, iov[i].len) != SPRIG_STATUS_OK) {
                sprig_buf_free(b);
                return SPRIG_STATUS_RESOURCE_EXHAUSTED;
            }
        }
        enqueue(ms, dst, b);
        *out_sent = len;
        return SPRIG_STATUS_OK;
    }
    for (size_t i = 0; i < iovcnt; i++) {
        size_t sent = 0;
        if (iov[i].len == 0) {
            continue;
        }
        sprig_status st = stream_send(mem_of(s), iov[i].base, iov[i].len, &sent);
        if (st != SPRIG_STATUS_OK) {
            return *out_sent > 0 ? SPRIG_STATUS_OK : st;
        }
        *out_sent += sent;
        if (sent < iov[i].len) {
            break;
        }
    }
    return SPRIG_STATUS_OK;
}

/* Zero-copy: the caller's buffer itself is queued for the reader. */
static sprig_status mem_send_buf(sprig_sock *s, sprig_buf *buf, const sprig_addr *to)
{
    sprig_mem_sock *ms = mem_of(s);
    sprig_mem_sock *dst;
    if (s->type != SPRIG_SOCK_STREAM && buf->len > s->max_message) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    sprig_status st = destination(ms, to, &dst);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    if (dst == NULL || (s->type == SPRIG_SOCK_STREAM && buf->len == 0)) {
        sprig_buf_free(buf); /* a datagram to nobody, or no bytes */
        return SPRIG_STATUS_OK;
    }
    if (dropped_for_window(dst, buf->len, &st) || st != SPRIG_STATUS_OK) {
        if (st == SPRIG_STATUS_OK) {
            sprig_buf_free(buf);
        }
        return st;
    }
    if (!is_conn(dst) && buf->off < SRC_STASH) {
        /* No headroom for the source port: copy after all. */
        st = message_copy(ms, dst, sprig_buf_data(buf), buf->len);
        if (st == SPRIG_STATUS_OK) {
            sprig_buf_free(buf);
        }
        return st;
    }
    enqueue(ms, dst, buf);
    return SPRIG_STATUS_OK;
}

/* ---- receiving ---------------------------------------------------------------------------- */

/* Nothing queued: would block, or end of stream once the peer has shut down or gone. */
static sprig_status at_end(sprig_mem_sock *ms)
{
    if (!is_conn(ms) || !ms->peer_closed) {
        return SPRIG_STATUS_UNAVAILABLE;
    }
    if (ms->sock.flags & SPRIG_SOCK_F_SHUT_WR) {
        make_dead(ms, SPRIG_STATUS_OK); /* both directions finished */
    }
    return SPRIG_STATUS_OUT_OF_RANGE;
}

static void message_recv(sprig_mem_sock *ms, void *buf, size_t *out_len, sprig_addr *from)
{
    sprig_buf *b = sprig_buf_queue_pop(&ms->rxq);
    if (b->len > 0) {
        memcpy(buf, sprig_buf_data(b), b->len);
    }
    *out_len = b->len;
    if (from != NULL) {
        memset(from, 0, sizeof(*from));
        if (!is_conn(ms)) {
            from->port = (uint16_t)((b->mem[b->off - 2] << 8) | b->mem[b->off - 1]);
        } else if (ms->peer != NULL) {
            addr_of(ms->peer, from);
        }
    }
    sprig_buf_free(b);
}

static void stream_recv(sprig_mem_sock *ms, uint8_t *buf, size_t cap, size_t *out_len)
{
    size_t done = 0;
    sprig_buf *b;
    while (done < cap && (b = sprig_buf_queue_peek(&ms->rxq)) != NULL) {
        size_t k = min_size(cap - done, b->len - ms->stream_off);
        memcpy(buf + done, sprig_buf_data(b) + ms->stream_off, k);
        done += k;
        ms->stream_off += k;
        if (ms->stream_off == b->len) {
            sprig_buf_free(sprig_buf_queue_pop(&ms->rxq));
            ms->stream_off = 0;
        }
    }
    *out_len = done;
}

static sprig_status mem_recv(sprig_sock *s, void *buf, size_t cap, size_t *out_len,
                             sprig_addr *from)
{
    sprig_mem_sock *ms = mem_of(s);
    *out_len = 0;
    if (ms->rxq.count == 0) {
        return at_end(ms);
    }
    bool pool_was_empty = ms->backend->pool->available == 0;
    if (s->type == SPRIG_SOCK_STREAM) {
        stream_recv(ms, buf, cap, out_len);
    } else if (ms->rxq.head->len > cap) {
        *out_len = ms->rxq.head->len; /* the message stays queued */
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    } else {
        message_recv(ms, buf, out_len, from);
    }
    room_made(ms, pool_was_empty);
    return SPRIG_STATUS_OK;
}

/* ---- connections, shutdown, close, addresses ---------------------------------------------- */

static sprig_status mem_accept(sprig_sock *listener, sprig_sock **out)
{
    sprig_mem_sock *l = mem_of(listener);
    sprig_mem_sock *srv = l->accept_q;
    if (srv == NULL) {
        return SPRIG_STATUS_UNAVAILABLE;
    }
    l->accept_q = srv->next;
    l->backlog_used--;
    srv->next = NULL;
    /* Whatever arrived while it waited in the backlog went to nobody: announce it again. */
    if (srv->rxq.count > 0 || srv->peer_closed) {
        pend(srv, EV_READABLE);
    }
    *out = &srv->sock;
    return SPRIG_STATUS_OK;
}

static sprig_status mem_shutdown(sprig_sock *s)
{
    sprig_mem_sock *ms = mem_of(s);
    if (ms->peer != NULL) {
        ms->peer->peer_closed = 1;
        pend(ms->peer, EV_READABLE);
    }
    if (s->flags & SPRIG_SOCK_F_RD_DONE) {
        make_dead(ms, SPRIG_STATUS_OK); /* both directions finished */
    }
    return SPRIG_STATUS_OK;
}

static void mem_close(sprig_sock *s)
{
    sprig_mem_sock *ms = mem_of(s);
    sprig_mem_backend *m = ms->backend;
    bool pool_was_empty = m->pool->available == 0;
    if (s->state == SPRIG_SOCK_STATE_LISTENING) {
        reset_backlog(ms);
    }
    forget_peer(ms);
    release_sock(ms);
    if (pool_was_empty && m->pool->available > 0) {
        wake_all_writers(m);
    }
}

static sprig_status mem_addr(const sprig_sock *s, bool peer, sprig_addr *out)
{
    const sprig_mem_sock *ms = (const sprig_mem_sock *)s;
    if (!peer) {
        addr_of(ms, out);
        return SPRIG_STATUS_OK;
    }
    if (ms->peer == NULL) {
        return SPRIG_STATUS_FAILED_PRECONDITION; /* not connected (any more) */
    }
    addr_of(ms->peer, out);
    return SPRIG_STATUS_OK;
}

static const sprig_sock_ops mem_ops = {
    .name = "mem",
    .send = mem_send,
    .send_iov = mem_send_iov,
    .send_buf = mem_send_buf,
    .alloc_tx = NULL, /* generic: tx_pool with SPRIG_CONFIG_SOCK_HEADROOM */
    .recv = mem_recv,
    .accept = mem_accept,
    .shutdown = mem_shutdown,
    .close = mem_close,
    .addr = mem_addr,
};

/* ---- the backend -------------------------------------------------------------------------- */

static bool valid_type(sprig_sock_type type)
{
    return type == SPRIG_SOCK_SEQPACKET || type == SPRIG_SOCK_STREAM || type == SPRIG_SOCK_DGRAM;
}

static sprig_status copy_name(const sprig_url *url, char out[SPRIG_CONFIG_MEM_NAME_MAX])
{
    size_t len = url->path.len;
    if (url->path.ptr == NULL || len == 0 || len >= SPRIG_CONFIG_MEM_NAME_MAX) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memcpy(out, url->path.ptr, len);
    out[len] = '\0';
    return SPRIG_STATUS_OK;
}

/* The listener (or bound DGRAM socket) of that name and type. */
static sprig_mem_sock *find_bound(sprig_mem_backend *m, const char *name, sprig_sock_type type)
{
    for (size_t i = 0; i < m->nsocks; i++) {
        sprig_mem_sock *ms = &m->socks[i];
        if (ms->in_use && ms->sock.type == type && ms->name[0] != '\0' && !is_dead(ms) &&
            strcmp(ms->name, name) == 0) {
            return ms;
        }
    }
    return NULL;
}

static bool mem_handles(const sprig_backend *b, const sprig_url *url)
{
    (void)b;
    return url->scheme == SPRIG_URL_MEM;
}

static sprig_status mem_listen(sprig_backend *b, const sprig_url *url, sprig_sock_type type,
                               sprig_sock **out)
{
    sprig_mem_backend *m = (sprig_mem_backend *)b;
    char name[SPRIG_CONFIG_MEM_NAME_MAX];
    if (!valid_type(type)) {
        return SPRIG_STATUS_UNIMPLEMENTED;
    }
    sprig_status st = copy_name(url, name);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    if (find_bound(m, name, type) != NULL) {
        return SPRIG_STATUS_ALREADY_EXISTS;
    }
    bool dgram = type == SPRIG_SOCK_DGRAM;
    sprig_mem_sock *l =
        take_sock(m, type, dgram ? SPRIG_SOCK_STATE_OPEN : SPRIG_SOCK_STATE_LISTENING);
    if (l == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    memcpy(l->name, name, sizeof(name));
    if (!dgram) {
        l->sock.max_message = 0;
    }
    *out = &l->sock;
    return SPRIG_STATUS_OK;
}

static sprig_status mem_dial(sprig_backend *b, const sprig_url *url, sprig_sock_type type,
                             sprig_sock **out)
{
    sprig_mem_backend *m = (sprig_mem_backend *)b;
    char name[SPRIG_CONFIG_MEM_NAME_MAX];
    if (!valid_type(type)) {
        return SPRIG_STATUS_UNIMPLEMENTED;
    }
    sprig_status st = copy_name(url, name);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    sprig_mem_sock *d = take_sock(m, type, SPRIG_SOCK_STATE_CONNECTING);
    if (d == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    sprig_mem_sock *l = find_bound(m, name, type);
    if (l == NULL || (l->sock.type != SPRIG_SOCK_DGRAM && l->backlog_used >= m->cfg.backlog)) {
        make_dead(d, SPRIG_STATUS_UNAVAILABLE); /* refused; CLOSED comes from the loop */
        *out = &d->sock;
        return SPRIG_STATUS_OK;
    }
    if (type == SPRIG_SOCK_DGRAM) {
        d->peer = l; /* default destination; the bound socket does not point back */
    } else {
        sprig_mem_sock *srv = take_sock(m, type, SPRIG_SOCK_STATE_OPEN);
        if (srv == NULL) {
            release_sock(d);
            return SPRIG_STATUS_RESOURCE_EXHAUSTED;
        }
        link_pair(d, srv);
        sprig_mem_sock **tail = &l->accept_q;
        while (*tail != NULL) {
            tail = &(*tail)->next;
        }
        *tail = srv;
        l->backlog_used++;
        pend(l, EV_READABLE);
    }
    pend(d, EV_CONNECTED);
    *out = &d->sock;
    return SPRIG_STATUS_OK;
}

sprig_status sprig_mem_backend_init(sprig_mem_backend *m, sprig_loop *loop,
                                    const sprig_mem_cfg *cfg, sprig_mem_sock *socks, size_t nsocks,
                                    sprig_buf_pool *pool)
{
    if (m == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(m, 0, sizeof(*m)); /* deinit is safe after a failed init */
    /* Ports are 16 bits and port 0 means "none": at most 65535 sockets. */
    if (loop == NULL || socks == NULL || nsocks == 0 || nsocks > UINT16_MAX || pool == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    sprig_mem_cfg c = cfg != NULL ? *cfg : (sprig_mem_cfg){0};
    if (c.max_message_size == 0) {
        c.max_message_size = SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE;
    }
    if (c.window_bytes == 0) {
        c.window_bytes = 4 * c.max_message_size;
    }
    if (c.backlog == 0) {
        c.backlog = DEFAULT_BACKLOG;
    } else if (c.backlog > UINT16_MAX) {
        c.backlog = UINT16_MAX; /* backlog_used is 16 bits */
    }
    if (pool->buf_size < c.max_message_size + SPRIG_CONFIG_SOCK_HEADROOM) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(socks, 0, nsocks * sizeof(*socks));
    m->backend.name = "mem";
    m->backend.handles = mem_handles;
    m->backend.dial = mem_dial;
    m->backend.listen = mem_listen;
    m->cfg = c;
    m->socks = socks;
    m->nsocks = nsocks;
    m->pool = pool;
    m->loop = loop;
    sprig_loop_add_backend(loop, &m->backend);
    return SPRIG_STATUS_OK;
}

void sprig_mem_backend_deinit(sprig_mem_backend *m)
{
    if (m == NULL || m->loop == NULL) {
        return;
    }
    /* The caller should have closed everything; do not leave tasks or buffers behind if not. */
    for (size_t i = 0; i < m->nsocks; i++) {
        if (m->socks[i].in_use) {
            release_sock(&m->socks[i]);
        }
    }
    sprig_loop_remove_backend(m->loop, &m->backend);
    m->loop = NULL;
}

size_t sprig_mem_backend_in_use(const sprig_mem_backend *m)
{
    size_t n = 0;
    if (m == NULL || m->socks == NULL) {
        return 0;
    }
    for (size_t i = 0; i < m->nsocks; i++) {
        n += m->socks[i].in_use ? 1u : 0u;
    }
    return n;
}

sprig_status sprig_mem_pair(sprig_mem_backend *m, sprig_sock_type type, sprig_sock **a,
                            sprig_sock **b)
{
    if (m == NULL || m->loop == NULL || a == NULL || b == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    *a = NULL;
    *b = NULL;
    if (type == SPRIG_SOCK_DEFAULT) {
        type = SPRIG_SOCK_SEQPACKET; /* mem's natural type */
    }
    if (!valid_type(type)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    sprig_mem_sock *x = take_sock(m, type, SPRIG_SOCK_STATE_OPEN);
    if (x == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    sprig_mem_sock *y = take_sock(m, type, SPRIG_SOCK_STATE_OPEN);
    if (y == NULL) {
        release_sock(x);
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    link_pair(x, y);
    *a = &x->sock;
    *b = &y->sock;
    return SPRIG_STATUS_OK;
}
