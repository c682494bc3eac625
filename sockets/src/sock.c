/*
 * The socket API's generic layer: argument and state checks shared by every backend, the
 * event rules of sprig/sock.h, URL dispatch to backends, and the blocking helpers.
 */
#include "sprig/sock.h"

#include <string.h>

/* ---- backend helpers ------------------------------------------------------------------- */

void sprig__sock_init(sprig_sock *s, const sprig_sock_ops *ops, sprig_loop *loop,
                      sprig_sock_type type, sprig_sock_state state)
{
    memset(s, 0, sizeof(*s));
    s->ops = ops;
    s->loop = loop;
    s->type = (uint8_t)type;
    s->state = (uint8_t)state;
    s->max_message = 0;
    s->status = SPRIG_STATUS_OK;
}

void sprig__sock_set_dead(sprig_sock *s, sprig_status status)
{
    if (s->state == SPRIG_SOCK_STATE_CLOSED) {
        return;
    }
    s->state = SPRIG_SOCK_STATE_CLOSED;
    s->status = status;
}

static void deliver(sprig_sock *s, sprig_sock_event event, sprig_status status)
{
    if (s->cb == NULL) {
        return;
    }
    sprig__loop_enter(s->loop);
    s->cb(s, event, status, s->user);
    sprig__loop_leave(s->loop);
}

void sprig__sock_event(sprig_sock *s, sprig_sock_event event, sprig_status status)
{
    if (s->flags & SPRIG_SOCK_F_CLOSED_SENT) {
        return; /* CLOSED is the last event */
    }
    switch (event) {
    case SPRIG_SOCK_EV_CONNECTED:
        if (s->state != SPRIG_SOCK_STATE_CONNECTING) {
            return;
        }
        s->state = SPRIG_SOCK_STATE_OPEN;
        deliver(s, event, SPRIG_STATUS_OK);
        /* A send tried while connecting got UNAVAILABLE: it may go now. The callback may
         * have closed the socket; backends defer close's storage release past this call. */
        if ((s->flags & SPRIG_SOCK_F_WANT_WRITABLE) && s->state == SPRIG_SOCK_STATE_OPEN) {
            s->flags &= (uint8_t)~SPRIG_SOCK_F_WANT_WRITABLE;
            deliver(s, SPRIG_SOCK_EV_WRITABLE, SPRIG_STATUS_OK);
        }
        return;
    case SPRIG_SOCK_EV_WRITABLE:
        if (!(s->flags & SPRIG_SOCK_F_WANT_WRITABLE)) {
            return;
        }
        s->flags &= (uint8_t)~SPRIG_SOCK_F_WANT_WRITABLE;
        deliver(s, event, SPRIG_STATUS_OK);
        return;
    case SPRIG_SOCK_EV_CLOSED:
        sprig__sock_set_dead(s, status);
        s->flags |= SPRIG_SOCK_F_CLOSED_SENT;
        deliver(s, event, s->status);
        return;
    case SPRIG_SOCK_EV_READABLE:
    default:
        deliver(s, event, status);
        return;
    }
}

/* ---- checks ---------------------------------------------------------------------------- */

static bool is_message_type(const sprig_sock *s)
{
    return s->type == SPRIG_SOCK_SEQPACKET || s->type == SPRIG_SOCK_DGRAM;
}

/* The status a dead socket answers with: its terminal error, or FAILED_PRECONDITION after an
 * orderly end. */
static sprig_status dead_status(const sprig_sock *s)
{
    return s->status != SPRIG_STATUS_OK ? s->status : SPRIG_STATUS_FAILED_PRECONDITION;
}

static sprig_status check_send(sprig_sock *s, size_t len, const sprig_addr *to)
{
    switch (s->state) {
    case SPRIG_SOCK_STATE_CLOSED:
        return dead_status(s);
    case SPRIG_SOCK_STATE_LISTENING:
        return SPRIG_STATUS_FAILED_PRECONDITION;
    case SPRIG_SOCK_STATE_CONNECTING:
        s->flags |= SPRIG_SOCK_F_WANT_WRITABLE;
        return SPRIG_STATUS_UNAVAILABLE;
    default:
        break;
    }
    if (s->flags & SPRIG_SOCK_F_SHUT_WR) {
        return SPRIG_STATUS_FAILED_PRECONDITION;
    }
    if (to != NULL && s->type != SPRIG_SOCK_DGRAM) {
        return SPRIG_STATUS_UNIMPLEMENTED;
    }
    if (is_message_type(s) && len > s->max_message) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    return SPRIG_STATUS_OK;
}

/* Remember that the user is waiting to send, so WRITABLE reaches them. */
static sprig_status note_send(sprig_sock *s, sprig_status st)
{
    if (st == SPRIG_STATUS_UNAVAILABLE) {
        s->flags |= SPRIG_SOCK_F_WANT_WRITABLE;
    }
    return st;
}

static sprig_status check_recv(const sprig_sock *s)
{
    switch (s->state) {
    case SPRIG_SOCK_STATE_LISTENING:
        return SPRIG_STATUS_FAILED_PRECONDITION;
    case SPRIG_SOCK_STATE_CONNECTING:
        return SPRIG_STATUS_UNAVAILABLE;
    case SPRIG_SOCK_STATE_CLOSED:
        /* Data that arrived before an orderly end stays readable; after an error it is gone. */
        if (s->status != SPRIG_STATUS_OK) {
            return s->status;
        }
        break;
    default:
        break;
    }
    if (s->flags & SPRIG_SOCK_F_RD_DONE) {
        return SPRIG_STATUS_OUT_OF_RANGE;
    }
    return SPRIG_STATUS_OK;
}

/* ---- data ------------------------------------------------------------------------------ */

static sprig_status send_common(sprig_sock *s, const void *data, size_t len, const sprig_addr *to,
                                size_t *out_sent)
{
    size_t sent = 0;
    if (s == NULL || (data == NULL && len > 0)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (s->type == SPRIG_SOCK_STREAM && out_sent == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (out_sent != NULL) {
        *out_sent = 0;
    }
    sprig_status st = check_send(s, len, to);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    if (s->type == SPRIG_SOCK_STREAM && len == 0) {
        return SPRIG_STATUS_OK;
    }
    st = note_send(s, s->ops->send(s, data, len, to, &sent));
    if (out_sent != NULL && st == SPRIG_STATUS_OK) {
        *out_sent = sent;
    }
    return st;
}

sprig_status sprig_sock_send(sprig_sock *s, const void *data, size_t len, size_t *out_sent)
{
    return send_common(s, data, len, NULL, out_sent);
}

sprig_status sprig_sock_send_to(sprig_sock *s, const void *data, size_t len, const sprig_addr *to)
{
    if (to == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    return send_common(s, data, len, to, NULL);
}

sprig_status sprig_sock_send_iov(sprig_sock *s, const sprig_iov *iov, size_t iovcnt,
                                 size_t *out_sent)
{
    if (s == NULL || out_sent == NULL || (iov == NULL && iovcnt > 0)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    *out_sent = 0;
    size_t total = 0;
    for (size_t i = 0; i < iovcnt; i++) {
        total += iov[i].len;
    }
    sprig_status st = check_send(s, total, NULL);
    if (st != SPRIG_STATUS_OK || (total == 0 && s->type == SPRIG_SOCK_STREAM)) {
        return st;
    }
    if (s->ops->send_iov != NULL) {
        return note_send(s, s->ops->send_iov(s, iov, iovcnt, out_sent));
    }
    if (s->type != SPRIG_SOCK_STREAM) {
        return SPRIG_STATUS_UNIMPLEMENTED; /* no gather op: the caller copies into one buffer */
    }
    /* No gather op: send the pieces one after the other, stopping at the first short send. */
    for (size_t i = 0; i < iovcnt; i++) {
        size_t sent = 0;
        if (iov[i].len == 0) {
            continue;
        }
        st = s->ops->send(s, iov[i].base, iov[i].len, NULL, &sent);
        if (st != SPRIG_STATUS_OK) {
            return *out_sent > 0 ? SPRIG_STATUS_OK : note_send(s, st);
        }
        *out_sent += sent;
        if (sent < iov[i].len) {
            break;
        }
    }
    return SPRIG_STATUS_OK;
}

static sprig_status recv_common(sprig_sock *s, void *buf, size_t cap, size_t *out_len,
                                sprig_addr *from)
{
    if (s == NULL || out_len == NULL || (buf == NULL && cap > 0)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    *out_len = 0;
    sprig_status st = check_recv(s);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    st = s->ops->recv(s, buf, cap, out_len, from);
    if (st == SPRIG_STATUS_OUT_OF_RANGE) {
        s->flags |= SPRIG_SOCK_F_RD_DONE;
    }
    return st;
}

sprig_status sprig_sock_recv(sprig_sock *s, void *buf, size_t cap, size_t *out_len)
{
    return recv_common(s, buf, cap, out_len, NULL);
}

sprig_status sprig_sock_recv_from(sprig_sock *s, void *buf, size_t cap, size_t *out_len,
                                  sprig_addr *from)
{
    if (from == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (s != NULL && s->type != SPRIG_SOCK_DGRAM) {
        return SPRIG_STATUS_UNIMPLEMENTED;
    }
    return recv_common(s, buf, cap, out_len, from);
}

sprig_status sprig_sock_alloc_tx(sprig_sock *s, size_t len, sprig_buf **out)
{
    if (s == NULL || out == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    *out = NULL;
    if (s->state == SPRIG_SOCK_STATE_LISTENING) {
        return SPRIG_STATUS_FAILED_PRECONDITION;
    }
    if (is_message_type(s) && len > s->max_message) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    if (s->ops->alloc_tx != NULL) {
        return s->ops->alloc_tx(s, len, out);
    }
    if (s->tx_pool == NULL) {
        return SPRIG_STATUS_UNIMPLEMENTED;
    }
    if ((size_t)s->headroom + len > s->tx_pool->buf_size) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    *out = sprig_buf_alloc(s->tx_pool, s->headroom);
    return *out != NULL ? SPRIG_STATUS_OK : SPRIG_STATUS_RESOURCE_EXHAUSTED;
}

sprig_status sprig_sock_alloc_tx_flow(sprig_sock *s, size_t len, sprig_buf **out)
{
    sprig_status st = sprig_sock_alloc_tx(s, len, out);
    if (st == SPRIG_STATUS_RESOURCE_EXHAUSTED && s != NULL && s->tx_pool != NULL &&
        sprig_buf_pool_available(s->tx_pool) == 0) {
        s->flags |= SPRIG_SOCK_F_WANT_WRITABLE;
        return SPRIG_STATUS_UNAVAILABLE;
    }
    return st;
}

static sprig_status send_buf_common(sprig_sock *s, sprig_buf *buf, const sprig_addr *to)
{
    if (s == NULL || buf == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    sprig_status st = check_send(s, buf->len, to);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    if (s->ops->send_buf != NULL) {
        return note_send(s, s->ops->send_buf(s, buf, to));
    }
    /* Generic path: a message goes whole; a STREAM buffer must go whole too, since the caller
     * cannot learn how much of it was taken. */
    size_t sent = 0;
    st = s->ops->send(s, sprig_buf_data(buf), buf->len, to, &sent);
    if (st == SPRIG_STATUS_OK && sent != buf->len) {
        return SPRIG_STATUS_INTERNAL; /* backend broke the all-or-nothing rule */
    }
    if (st == SPRIG_STATUS_OK) {
        sprig_buf_free(buf);
    }
    return note_send(s, st);
}

sprig_status sprig_sock_send_buf(sprig_sock *s, sprig_buf *buf)
{
    return send_buf_common(s, buf, NULL);
}

sprig_status sprig_sock_send_buf_to(sprig_sock *s, sprig_buf *buf, const sprig_addr *to)
{
    if (to == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    return send_buf_common(s, buf, to);
}

/* ---- information, shutdown, close -------------------------------------------------------- */

size_t sprig_sock_max_message_size(const sprig_sock *s)
{
    if (s == NULL || !is_message_type(s) || s->state == SPRIG_SOCK_STATE_LISTENING) {
        return 0;
    }
    return s->max_message;
}

sprig_sock_type sprig_sock_type_of(const sprig_sock *s)
{
    return (sprig_sock_type)s->type;
}

static sprig_status get_addr(const sprig_sock *s, bool peer, sprig_addr *out)
{
    if (s == NULL || out == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (s->ops->addr == NULL) {
        return SPRIG_STATUS_UNIMPLEMENTED;
    }
    return s->ops->addr(s, peer, out);
}

sprig_status sprig_sock_local_addr(const sprig_sock *s, sprig_addr *out)
{
    return get_addr(s, false, out);
}

sprig_status sprig_sock_peer_addr(const sprig_sock *s, sprig_addr *out)
{
    return get_addr(s, true, out);
}

sprig_status sprig_sock_shutdown(sprig_sock *s)
{
    if (s == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (s->state == SPRIG_SOCK_STATE_CLOSED) {
        return dead_status(s);
    }
    if (s->state != SPRIG_SOCK_STATE_OPEN || s->type == SPRIG_SOCK_DGRAM) {
        return s->type == SPRIG_SOCK_DGRAM ? SPRIG_STATUS_UNIMPLEMENTED
                                           : SPRIG_STATUS_FAILED_PRECONDITION;
    }
    if (s->flags & SPRIG_SOCK_F_SHUT_WR) {
        return SPRIG_STATUS_OK;
    }
    sprig_status st = s->ops->shutdown != NULL ? s->ops->shutdown(s) : SPRIG_STATUS_UNIMPLEMENTED;
    if (st == SPRIG_STATUS_OK) {
        s->flags |= SPRIG_SOCK_F_SHUT_WR;
    }
    return st;
}

void sprig_sock_close(sprig_sock *s)
{
    if (s == NULL) {
        return;
    }
    s->cb = NULL; /* nothing reaches the user after close, whatever the backend does */
    s->ops->close(s);
}

void sprig_sock_set_callback(sprig_sock *s, sprig_sock_cb cb, void *user)
{
    s->cb = cb;
    s->user = user;
}

/* ---- dial / listen / accept ------------------------------------------------------------ */

sprig_sock_type sprig_sock_default_type(const sprig_url *url)
{
    return url->scheme == SPRIG_URL_UDP ? SPRIG_SOCK_DGRAM : SPRIG_SOCK_SEQPACKET;
}

static sprig_status find_backend(sprig_loop *loop, const char *text, sprig_url *url,
                                 sprig_sock_type *type, sprig_backend **out)
{
    if (loop == NULL || text == NULL || (unsigned)*type > SPRIG_SOCK_DGRAM) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    sprig_status st = sprig_url_parse(text, url);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    if (*type == SPRIG_SOCK_DEFAULT) {
        *type = sprig_sock_default_type(url);
    }
    for (sprig_backend *b = loop->backends; b != NULL; b = b->next) {
        if (b->handles(b, url)) {
            *out = b;
            return SPRIG_STATUS_OK;
        }
    }
    return SPRIG_STATUS_NOT_FOUND;
}

/* dial and listen differ only in the backend entry they call. */
static sprig_status open_by_url(sprig_loop *loop, const char *url, sprig_sock_type type,
                                sprig_sock **out, bool listen)
{
    sprig_url u;
    sprig_backend *b = NULL;
    if (out == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    *out = NULL;
    sprig_status st = find_backend(loop, url, &u, &type, &b);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    return listen ? b->listen(b, &u, type, out) : b->dial(b, &u, type, out);
}

sprig_status sprig_sock_dial(sprig_loop *loop, const char *url, sprig_sock_type type,
                             sprig_sock **out)
{
    return open_by_url(loop, url, type, out, false);
}

sprig_status sprig_sock_listen(sprig_loop *loop, const char *url, sprig_sock_type type,
                               sprig_sock **out)
{
    return open_by_url(loop, url, type, out, true);
}

sprig_status sprig_sock_accept(sprig_sock *listener, sprig_sock **out)
{
    if (listener == NULL || out == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    *out = NULL;
    if (listener->state != SPRIG_SOCK_STATE_LISTENING) {
        return listener->state == SPRIG_SOCK_STATE_CLOSED ? dead_status(listener)
                                                          : SPRIG_STATUS_FAILED_PRECONDITION;
    }
    if (listener->ops->accept == NULL) {
        return SPRIG_STATUS_UNIMPLEMENTED;
    }
    return listener->ops->accept(listener, out);
}

/* ---- blocking helpers ------------------------------------------------------------------ */
/* Each retries the non-blocking call after every loop pass; they never touch the socket's
 * callback, so they mix freely with event-driven code on the same loop. */

static bool not_connecting(void *arg)
{
    return ((const sprig_sock *)arg)->state != SPRIG_SOCK_STATE_CONNECTING;
}

sprig_status sprig_sock_dial_wait(sprig_loop *loop, const char *url, sprig_sock_type type,
                                  sprig_time timeout, sprig_sock **out)
{
    if (out == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    *out = NULL;
    if (loop != NULL && sprig_loop_in_callback(loop)) {
        return SPRIG_STATUS_FAILED_PRECONDITION;
    }
    sprig_sock *s = NULL;
    sprig_status st = sprig_sock_dial(loop, url, type, &s);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    st = sprig_loop_run_until(loop, not_connecting, s, timeout);
    if (st == SPRIG_STATUS_OK && s->state != SPRIG_SOCK_STATE_OPEN) {
        st = dead_status(s);
    }
    if (st != SPRIG_STATUS_OK) {
        sprig_sock_close(s);
        return st;
    }
    *out = s;
    return SPRIG_STATUS_OK;
}

/* A pending non-blocking operation, retried by run_until's predicate. */
typedef struct retry {
    sprig_sock *s;
    sprig_status st;
    sprig_status (*attempt)(struct retry *r);
    const void *data;
    void *buf;
    size_t len;
    size_t done;
    sprig_sock **accepted;
} retry;

static bool retry_done(void *arg)
{
    retry *r = arg;
    r->st = r->attempt(r);
    return r->st != SPRIG_STATUS_UNAVAILABLE;
}

static sprig_status run_retry(retry *r, sprig_time timeout)
{
    if (r->s == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    sprig_status st = sprig_loop_run_until(r->s->loop, retry_done, r, timeout);
    return st == SPRIG_STATUS_OK ? r->st : st;
}

static sprig_status attempt_accept(retry *r)
{
    return sprig_sock_accept(r->s, r->accepted);
}

sprig_status sprig_sock_accept_wait(sprig_sock *listener, sprig_time timeout, sprig_sock **out)
{
    retry r = {.s = listener, .attempt = attempt_accept, .accepted = out};
    return run_retry(&r, timeout);
}

static sprig_status attempt_send(retry *r)
{
    if (r->s->type != SPRIG_SOCK_STREAM) {
        return sprig_sock_send(r->s, r->data, r->len, NULL);
    }
    while (r->done < r->len) {
        size_t sent = 0;
        sprig_status st =
            sprig_sock_send(r->s, (const uint8_t *)r->data + r->done, r->len - r->done, &sent);
        if (st != SPRIG_STATUS_OK) {
            return st;
        }
        r->done += sent;
    }
    return SPRIG_STATUS_OK;
}

sprig_status sprig_sock_send_wait(sprig_sock *s, const void *data, size_t len, sprig_time timeout)
{
    retry r = {.s = s, .attempt = attempt_send, .data = data, .len = len};
    return run_retry(&r, timeout);
}

static sprig_status attempt_recv(retry *r)
{
    return sprig_sock_recv(r->s, r->buf, r->len, &r->done);
}

sprig_status sprig_sock_recv_wait(sprig_sock *s, void *buf, size_t cap, size_t *out_len,
                                  sprig_time timeout)
{
    if (out_len == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    retry r = {.s = s, .attempt = attempt_recv, .buf = buf, .len = cap};
    sprig_status st = run_retry(&r, timeout);
    *out_len = r.done;
    return st;
}
