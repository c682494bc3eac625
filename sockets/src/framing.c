/*
 * framing.c — SEQPACKET over a STREAM socket (WIRE.md): each message is preceded by its length
 * as a 32-bit big-endian unsigned integer. docs/framing.md explains the choices made here.
 *
 * Receive: bytes from the inner socket are staged in rx_mem and handed out one message per
 *   recv, copied once into the caller's buffer; one inner recv may carry many small messages.
 * Send: a message is accepted whole or not at all. When the inner socket takes only part of it,
 *   the unsent rest is kept (in tx_mem, or the caller's zero-copy buffer) and flushed on the
 *   inner WRITABLE; until then further sends answer UNAVAILABLE, and WRITABLE follows the flush.
 * Events from the inner socket are translated in its callback (loop context); events that arise
 *   inside an op (a connection killed by bad input) are deferred through f->task.
 */

/* framing.h names `struct sprig_framed_sock` in a parameter list before the struct is defined;
 * declaring the tag at file scope first makes both the same type (and keeps -Werror quiet). */
struct sprig_framed_sock;

#include "sprig/framing.h"

#include <string.h>

#define HDR SPRIG_FRAMING_HEADER_LEN

/* f->flags */
#define F_INNER_CLOSED 0x01u /* the inner socket delivered CLOSED; its status is inner->status */
#define F_SHUT_PENDING 0x02u /* shutdown waits until the pending rest is flushed */
#define F_CLOSED       0x04u /* the user closed us inside our callback: release afterwards */

/* ---- the pure decoder -------------------------------------------------------------------- */

void sprig_frame_decoder_init(sprig_frame_decoder *d, size_t max_message)
{
    if (d != NULL) {
        d->max_message = max_message;
    }
}

static uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

void sprig_frame_encode_header(uint8_t out[SPRIG_FRAMING_HEADER_LEN], uint32_t msg_len)
{
    out[0] = (uint8_t)(msg_len >> 24);
    out[1] = (uint8_t)(msg_len >> 16);
    out[2] = (uint8_t)(msg_len >> 8);
    out[3] = (uint8_t)msg_len;
}

sprig_status sprig_frame_decode(const sprig_frame_decoder *d, const uint8_t *data, size_t len,
                                size_t *msg_off, size_t *msg_len, size_t *frame_len)
{
    if (d == NULL || (data == NULL && len > 0) || msg_off == NULL || msg_len == NULL ||
        frame_len == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    *msg_off = HDR;
    *msg_len = 0;
    *frame_len = HDR;
    if (len < HDR) {
        return SPRIG_STATUS_UNAVAILABLE;
    }
    size_t n = load_be32(data);
    *msg_len = n;
    /* The length is hostile until checked: reject it before any arithmetic can overflow. */
    if (n > d->max_message || n > SIZE_MAX - HDR) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    *frame_len = HDR + n;
    return len >= *frame_len ? SPRIG_STATUS_OK : SPRIG_STATUS_UNAVAILABLE;
}

/* ---- decorator helpers ------------------------------------------------------------------- */

static sprig_framed_sock *framed(sprig_sock *s)
{
    return (sprig_framed_sock *)s; /* sock is the first member */
}

static size_t rx_buffered(const sprig_framed_sock *f)
{
    return f->rx_end - f->rx_start;
}

static bool tx_pending(const sprig_framed_sock *f)
{
    return f->tx_off < f->tx_end;
}

/* Forget the pending rest (flushed, or no longer deliverable). */
static void drop_tx(sprig_framed_sock *f)
{
    sprig_buf_free(f->tx_buf);
    f->tx_buf = NULL;
    f->tx_off = 0;
    f->tx_end = 0;
}

static void defer_event(sprig_framed_sock *f, sprig_sock_event ev)
{
    f->pending_events |= (uint8_t)(1u << ev);
    sprig_loop_defer(f->sock.loop, &f->task);
}

/* The connection is unusable (bad input, or a byte stream broken mid-frame): mark it dead now
 * so later calls return `st`, and tell the user from the loop. */
static void die(sprig_framed_sock *f, sprig_status st)
{
    sprig__sock_set_dead(&f->sock, st);
    f->rx_start = 0;
    f->rx_end = 0;
    defer_event(f, SPRIG_SOCK_EV_CLOSED);
}

static void release(sprig_framed_sock *f)
{
    if (f->cfg.on_release != NULL) {
        f->cfg.on_release(f, f->cfg.release_ctx); /* may free f: nothing may follow */
    }
}

/* Run the user's callback. Returns false if the user closed the socket in it; f has then been
 * released and the caller must return without touching it. */
static bool emit(sprig_framed_sock *f, sprig_sock_event ev, sprig_status st)
{
    f->depth++;
    sprig__sock_event(&f->sock, ev, st);
    f->depth--;
    if (!(f->flags & F_CLOSED)) {
        return true;
    }
    if (f->depth == 0) {
        release(f);
    }
    return false;
}

static void task_fn(void *arg)
{
    static const sprig_sock_event order[] = {SPRIG_SOCK_EV_READABLE, SPRIG_SOCK_EV_WRITABLE,
                                             SPRIG_SOCK_EV_CLOSED};
    sprig_framed_sock *f = arg;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        uint8_t bit = (uint8_t)(1u << order[i]);
        if (!(f->pending_events & bit)) {
            continue;
        }
        f->pending_events &= (uint8_t)~bit;
        sprig_status st = order[i] == SPRIG_SOCK_EV_CLOSED ? f->sock.status : SPRIG_STATUS_OK;
        if (!emit(f, order[i], st)) {
            return;
        }
    }
}

/* ---- receive ----------------------------------------------------------------------------- */

/* Move the partial frame to the front so the next inner recv gets all the free space. Costs at
 * most one frame's bytes, once per frame boundary. */
static void compact(sprig_framed_sock *f)
{
    size_t n = rx_buffered(f);
    if (f->rx_start == 0) {
        return;
    }
    if (n > 0) {
        memmove(f->cfg.rx_mem, f->cfg.rx_mem + f->rx_start, n);
    }
    f->rx_start = 0;
    f->rx_end = n;
}

/* The status the stream ended with, once the inner socket is closed and no whole message is
 * left: a partial frame turns an orderly end into DATA_LOSS. */
static sprig_status end_status(const sprig_framed_sock *f)
{
    sprig_status st = f->inner->status;
    if (st == SPRIG_STATUS_OK && rx_buffered(f) > 0) {
        return SPRIG_STATUS_DATA_LOSS;
    }
    return st;
}

/* Inner socket closed and every whole message handed out: now the framed socket dies too. */
static sprig_status finish_rx(sprig_framed_sock *f)
{
    sprig_status st = end_status(f);
    sprig__sock_set_dead(&f->sock, st);
    f->rx_start = 0;
    f->rx_end = 0;
    defer_event(f, SPRIG_SOCK_EV_CLOSED);
    return st == SPRIG_STATUS_OK ? SPRIG_STATUS_OUT_OF_RANGE : st;
}

/* End of the inner stream seen by recv. */
static sprig_status rx_eof(sprig_framed_sock *f)
{
    f->inner_eof = 1;
    if (rx_buffered(f) > 0) {
        die(f, SPRIG_STATUS_DATA_LOSS); /* the stream ended inside a frame */
        return SPRIG_STATUS_DATA_LOSS;
    }
    return SPRIG_STATUS_OUT_OF_RANGE;
}

/* Read as much as fits from the inner socket. OK when bytes were added. */
static sprig_status fill(sprig_framed_sock *f)
{
    sprig_status st = SPRIG_STATUS_OUT_OF_RANGE; /* once seen, the generic layer repeats it */
    if (!f->inner_eof) {
        compact(f);
        size_t room = f->cfg.rx_cap - f->rx_end;
        if (room == 0) {
            return SPRIG_STATUS_INTERNAL; /* cannot happen: rx_cap >= max_message + 4 */
        }
        size_t n = 0;
        st = sprig_sock_recv(f->inner, f->cfg.rx_mem + f->rx_end, room, &n);
        if (st == SPRIG_STATUS_OK) {
            if (n == 0) {
                return SPRIG_STATUS_INTERNAL; /* a STREAM recv that says OK delivers bytes */
            }
            f->rx_end += n;
            return SPRIG_STATUS_OK;
        }
    }
    if (f->flags & F_INNER_CLOSED) {
        return finish_rx(f); /* the inner socket is gone and has nothing more for us */
    }
    if (st == SPRIG_STATUS_OUT_OF_RANGE) {
        return rx_eof(f);
    }
    return st; /* UNAVAILABLE, ABORTED, ...: the inner CLOSED event follows an error */
}

static sprig_status framing_recv(sprig_sock *s, void *buf, size_t cap, size_t *out_len,
                                 sprig_addr *from)
{
    sprig_framed_sock *f = framed(s);
    (void)from;
    *out_len = 0;
    for (;;) {
        size_t off = 0;
        size_t len = 0;
        size_t frame = 0;
        sprig_status st = sprig_frame_decode(&f->dec, f->cfg.rx_mem + f->rx_start, rx_buffered(f),
                                             &off, &len, &frame);
        if (st == SPRIG_STATUS_OK) {
            *out_len = len;
            if (len > cap) {
                return SPRIG_STATUS_RESOURCE_EXHAUSTED; /* stays for a bigger buffer */
            }
            if (len > 0) {
                memcpy(buf, f->cfg.rx_mem + f->rx_start + off, len);
            }
            f->rx_start += frame;
            if (f->rx_start == f->rx_end) {
                f->rx_start = 0; /* empty: the next read starts at the front, no move needed */
                f->rx_end = 0;
            }
            return SPRIG_STATUS_OK;
        }
        if (st != SPRIG_STATUS_UNAVAILABLE) {
            die(f, st); /* oversize length: we cannot resynchronise, the connection goes */
            return st;
        }
        st = fill(f);
        if (st != SPRIG_STATUS_OK) {
            return st;
        }
    }
}

/* ---- send -------------------------------------------------------------------------------- */

/* Push the pending rest into the inner socket until it is gone or the socket is full. OK when
 * flushed; UNAVAILABLE when the inner WRITABLE will call us again. Any other status broke the
 * byte stream in the middle of a frame: the connection dies with it. */
static sprig_status flush(sprig_framed_sock *f)
{
    const uint8_t *base = f->tx_buf != NULL ? sprig_buf_data(f->tx_buf) : f->cfg.tx_mem;
    while (tx_pending(f)) {
        size_t sent = 0;
        sprig_status st = sprig_sock_send(f->inner, base + f->tx_off, f->tx_end - f->tx_off, &sent);
        if (st == SPRIG_STATUS_OK && sent == 0) {
            st = SPRIG_STATUS_INTERNAL; /* a STREAM send that says OK takes bytes */
        }
        if (st == SPRIG_STATUS_UNAVAILABLE) {
            return st;
        }
        if (st != SPRIG_STATUS_OK) {
            drop_tx(f);
            die(f, st);
            return st;
        }
        f->tx_off += sent;
    }
    drop_tx(f);
    return SPRIG_STATUS_OK;
}

/* A message went out partly: try to finish it now (this also arms the inner WRITABLE, which a
 * partial OK does not). The message counts as accepted whatever happens; a broken stream is
 * reported by CLOSED. */
static sprig_status accept_rest(sprig_framed_sock *f)
{
    (void)flush(f);
    return SPRIG_STATUS_OK;
}

/* Keep the unsent part of header + payload after the inner socket took `sent` bytes. */
static void stash_rest(sprig_framed_sock *f, const uint8_t *hdr, const uint8_t *data, size_t len,
                       size_t sent)
{
    size_t n = 0;
    if (sent < HDR) {
        memcpy(f->cfg.tx_mem, hdr + sent, HDR - sent);
        n = HDR - sent;
        sent = HDR;
    }
    size_t data_sent = sent - HDR;
    if (len > data_sent) {
        memcpy(f->cfg.tx_mem + n, data + data_sent, len - data_sent);
        n += len - data_sent;
    }
    f->tx_buf = NULL;
    f->tx_off = 0;
    f->tx_end = n;
}

static sprig_status framing_send(sprig_sock *s, const void *data, size_t len, const sprig_addr *to,
                                 size_t *out_sent)
{
    sprig_framed_sock *f = framed(s);
    (void)to;
    if (tx_pending(f)) {
        f->sock.flags |= SPRIG_SOCK_F_WANT_WRITABLE;
        return SPRIG_STATUS_UNAVAILABLE; /* one message in flight at a time */
    }
    if (len > f->sock.max_message) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    uint8_t hdr[HDR];
    sprig_frame_encode_header(hdr, (uint32_t)len);
    size_t total = HDR + len;
    size_t sent = 0;
    sprig_status st;
    if (f->inner->ops->send_iov != NULL) {
        /* Gather: header and payload leave in one inner call, nothing copied. */
        sprig_iov iov[2] = {{hdr, HDR}, {data, len}};
        st = sprig_sock_send_iov(f->inner, iov, len > 0 ? 2 : 1, &sent);
        if (st == SPRIG_STATUS_OK && sent < total) {
            stash_rest(f, hdr, data, len, sent);
        }
    } else {
        /* No gather op: one copy into tx_mem still beats two inner sends (two segments). */
        memcpy(f->cfg.tx_mem, hdr, HDR);
        if (len > 0) {
            memcpy(f->cfg.tx_mem + HDR, data, len);
        }
        st = sprig_sock_send(f->inner, f->cfg.tx_mem, total, &sent);
        if (st == SPRIG_STATUS_OK && sent < total) {
            f->tx_buf = NULL;
            f->tx_off = sent;
            f->tx_end = total;
        }
    }
    if (st != SPRIG_STATUS_OK) {
        return st; /* nothing went out: UNAVAILABLE arms WRITABLE, or an error */
    }
    if (out_sent != NULL) {
        *out_sent = len;
    }
    return tx_pending(f) ? accept_rest(f) : SPRIG_STATUS_OK;
}

/* A buffer without room for our header (not from alloc_tx): send a copy, then free it. */
static sprig_status send_buf_copy(sprig_framed_sock *f, sprig_buf *buf)
{
    sprig_status st = framing_send(&f->sock, sprig_buf_data(buf), buf->len, NULL, NULL);
    if (st == SPRIG_STATUS_OK) {
        sprig_buf_free(buf);
    }
    return st;
}

static sprig_status framing_send_buf(sprig_sock *s, sprig_buf *buf, const sprig_addr *to)
{
    sprig_framed_sock *f = framed(s);
    (void)to;
    if (tx_pending(f)) {
        f->sock.flags |= SPRIG_SOCK_F_WANT_WRITABLE;
        return SPRIG_STATUS_UNAVAILABLE;
    }
    size_t len = buf->len;
    if (len > f->sock.max_message) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    uint8_t *hdr = sprig_buf_push(buf, HDR);
    if (hdr == NULL) {
        return send_buf_copy(f, buf);
    }
    sprig_frame_encode_header(hdr, (uint32_t)len);
    sprig_status st;
    if (f->inner->ops->send_buf != NULL) {
        /* Hand the buffer down whole: no copy at any layer. */
        st = sprig_sock_send_buf(f->inner, buf);
        if (st == SPRIG_STATUS_OK) {
            return st;
        }
        if (st != SPRIG_STATUS_UNAVAILABLE) {
            (void)sprig_buf_pull(buf, HDR);
            return st;
        }
        /* All-or-nothing did not fit: a byte send below may still take part of it. */
    }
    size_t sent = 0;
    st = sprig_sock_send(f->inner, hdr, HDR + len, &sent);
    if (st != SPRIG_STATUS_OK) {
        (void)sprig_buf_pull(buf, HDR); /* the caller keeps the buffer as it gave it */
        return st;
    }
    if (sent == HDR + len) {
        sprig_buf_free(buf);
        return SPRIG_STATUS_OK;
    }
    /* Partly sent: the buffer itself holds the rest, no copy. We own it from here on. */
    f->tx_buf = buf;
    f->tx_off = sent;
    f->tx_end = HDR + len;
    return accept_rest(f);
}

/* Buffers for send_buf: the inner socket's, with our header's room reserved in front. */
static sprig_status framing_alloc_tx(sprig_sock *s, size_t len, sprig_buf **out)
{
    sprig_framed_sock *f = framed(s);
    sprig_status st = sprig_sock_alloc_tx(f->inner, HDR + len, out);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    /* Moving the start forward by HDR: append HDR bytes, then drop them from the front. */
    if (sprig_buf_put(*out, HDR) == NULL || sprig_buf_pull(*out, HDR) == NULL) {
        sprig_buf_free(*out);
        *out = NULL;
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    return SPRIG_STATUS_OK;
}

/* ---- shutdown, close, addresses ---------------------------------------------------------- */

static sprig_status framing_shutdown(sprig_sock *s)
{
    sprig_framed_sock *f = framed(s);
    if (tx_pending(f)) {
        f->flags |= F_SHUT_PENDING; /* the accepted message goes first */
        return SPRIG_STATUS_OK;
    }
    return sprig_sock_shutdown(f->inner);
}

static void framing_close(sprig_sock *s)
{
    sprig_framed_sock *f = framed(s);
    if (tx_pending(f) && f->sock.state != SPRIG_SOCK_STATE_CLOSED) {
        (void)flush(f); /* best effort: what send accepted should reach the peer */
    }
    drop_tx(f);
    sprig_loop_cancel(f->sock.loop, &f->task);
    f->pending_events = 0;
    sprig_sock_close(f->inner);
    f->inner = NULL;
    f->flags |= F_CLOSED;
    if (f->depth == 0) {
        release(f); /* inside our callback, emit() releases once it returns */
    }
}

static sprig_status framing_addr(const sprig_sock *s, bool peer, sprig_addr *out)
{
    const sprig_framed_sock *f = (const sprig_framed_sock *)s;
    return peer ? sprig_sock_peer_addr(f->inner, out) : sprig_sock_local_addr(f->inner, out);
}

static const sprig_sock_ops framing_ops = {
    .name = "framing",
    .send = framing_send,
    .send_iov = NULL,
    .send_buf = framing_send_buf,
    .alloc_tx = framing_alloc_tx,
    .recv = framing_recv,
    .accept = NULL,
    .shutdown = framing_shutdown,
    .close = framing_close,
    .addr = framing_addr,
};

/* ---- events from the inner socket -------------------------------------------------------- */

static void on_inner_writable(sprig_framed_sock *f)
{
    if (tx_pending(f)) {
        sprig_status st = flush(f);
        if (st != SPRIG_STATUS_OK) {
            return; /* UNAVAILABLE: called again; else dead, CLOSED is deferred */
        }
    }
    if (f->flags & F_SHUT_PENDING) {
        f->flags &= (uint8_t)~F_SHUT_PENDING;
        (void)sprig_sock_shutdown(f->inner);
    }
    (void)emit(f, SPRIG_SOCK_EV_WRITABLE, SPRIG_STATUS_OK);
}

static void on_inner_closed(sprig_framed_sock *f)
{
    f->flags |= F_INNER_CLOSED;
    f->flags &= (uint8_t)~F_SHUT_PENDING;
    drop_tx(f); /* nowhere to send it any more */
    size_t off = 0;
    size_t len = 0;
    size_t frame = 0;
    sprig_status st = sprig_frame_decode(&f->dec, f->cfg.rx_mem + f->rx_start, rx_buffered(f), &off,
                                         &len, &frame);
    if (st != SPRIG_STATUS_UNAVAILABLE) {
        /* Whole messages (or a bad header) wait: recv hands them out, then ends the socket. */
        (void)emit(f, SPRIG_SOCK_EV_READABLE, SPRIG_STATUS_OK);
        return;
    }
    st = end_status(f);
    f->rx_start = 0;
    f->rx_end = 0;
    sprig__sock_set_dead(&f->sock, st);
    (void)emit(f, SPRIG_SOCK_EV_CLOSED, st);
}

static void inner_cb(sprig_sock *inner, sprig_sock_event ev, sprig_status status, void *user)
{
    sprig_framed_sock *f = user;
    (void)inner;
    (void)status; /* CLOSED: the same value is in inner->status */
    if (f->sock.state == SPRIG_SOCK_STATE_CLOSED) {
        return; /* we died first and the user has been (or is being) told why */
    }
    switch (ev) {
    case SPRIG_SOCK_EV_CONNECTED:
        (void)emit(f, SPRIG_SOCK_EV_CONNECTED, SPRIG_STATUS_OK);
        return;
    case SPRIG_SOCK_EV_READABLE:
        (void)emit(f, SPRIG_SOCK_EV_READABLE, SPRIG_STATUS_OK);
        return;
    case SPRIG_SOCK_EV_WRITABLE:
        on_inner_writable(f);
        return;
    case SPRIG_SOCK_EV_CLOSED:
        on_inner_closed(f);
        return;
    default:
        return;
    }
}

/* ---- init -------------------------------------------------------------------------------- */

static sprig_status check_cfg(const sprig_sock *inner, const sprig_framing_cfg *cfg, size_t max)
{
    if (cfg->rx_mem == NULL || cfg->tx_mem == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    /* The header carries 32 bits; (max >> 16) >> 16 tests that without a shift by the full
     * width of a 32-bit size_t. */
    if (((max >> 16) >> 16) != 0 || max > SIZE_MAX - HDR) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (cfg->rx_cap < max + HDR || cfg->tx_cap < max + HDR) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (inner->headroom > UINT16_MAX - HDR) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    return SPRIG_STATUS_OK;
}

sprig_status sprig_framing_init(sprig_framed_sock *f, sprig_sock *inner,
                                const sprig_framing_cfg *cfg)
{
    if (f == NULL || inner == NULL || cfg == NULL || inner->type != SPRIG_SOCK_STREAM) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (inner->state != SPRIG_SOCK_STATE_CONNECTING && inner->state != SPRIG_SOCK_STATE_OPEN) {
        return SPRIG_STATUS_FAILED_PRECONDITION;
    }
    size_t max = cfg->max_message_size != 0 ? cfg->max_message_size
                                            : (size_t)SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE;
    sprig_status st = check_cfg(inner, cfg, max);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    memset(f, 0, sizeof(*f));
    sprig__sock_init(&f->sock, &framing_ops, inner->loop, SPRIG_SOCK_SEQPACKET,
                     (sprig_sock_state)inner->state);
    f->sock.max_message = max;
    f->sock.tx_pool = inner->tx_pool;
    f->sock.headroom = (uint16_t)(inner->headroom + HDR);
    f->inner = inner;
    f->cfg = *cfg;
    f->cfg.max_message_size = max;
    sprig_frame_decoder_init(&f->dec, max);
    sprig_task_init(&f->task, task_fn, f);
    sprig_sock_set_callback(inner, inner_cb, f);
    if (inner->state == SPRIG_SOCK_STATE_OPEN) {
        /* Bytes may have arrived before we took over the callback; without this READABLE
         * they would wait for the next edge. At worst recv answers UNAVAILABLE once. */
        defer_event(f, SPRIG_SOCK_EV_READABLE);
    }
    return SPRIG_STATUS_OK;
}
