/*
 * The transfer engine: pw_transfer version-2 sessions on one SEQPACKET or DGRAM socket (WIRE.md,
 * "Transfer chunk"; docs/transfer.md).
 *
 * A session is in one of four states:
 *   START_SENT  client: START sent, waiting for START_ACK
 *   ACK_SENT    server: START_ACK sent, waiting for START_ACK_CONFIRMATION
 *   DATA        data phase: the sender sends DATA inside the receiver's window; the receiver
 *               writes in-order data and grows the window (PARAMETERS_CONTINUE), or asks for a
 *               retransmit from the expected offset (PARAMETERS_RETRANSMIT) and ignores other
 *               data until it arrives
 *   ENDING      we sent COMPLETION and wait for COMPLETION_ACK
 * One loop timer per session serves both the chunk timeout (re-send what the state calls for,
 * up to max_retries times, then DEADLINE_EXCEEDED) and the sender's pacing (the receiver's
 * min_delay_microseconds). A control chunk the socket refuses (UNAVAILABLE) is remembered as
 * `pending` and re-built from the state when the socket is writable again.
 *
 * DGRAM (docs/transfer.md, "DGRAM carrier"): the same machine, plus a receiver-owned congestion
 * window (slow start from 1 chunk, halve on a gap or a timeout), old data ignored, and on a bound
 * socket sessions keyed by (peer address, session id).
 */
#include <string.h>

#include "internal.h"
#include "sprig/config.h"

enum { ST_START_SENT = 1, ST_ACK_SENT, ST_DATA, ST_ENDING };
enum { DGRAM_DIALED = 1, DGRAM_BOUND };
/* Constant false when SPRIG_CONFIG_TRANSFER_DGRAM is 0: the DGRAM code then compiles away. */
#define IS_DGRAM(n) (SPRIG_CONFIG_TRANSFER_DGRAM && (n)->dgram != 0)
#define IS_BOUND(n) (SPRIG_CONFIG_TRANSFER_DGRAM && (n)->dgram == DGRAM_BOUND)

#define FL_OPEN     0x01u /* the handler is open */
#define FL_RECOVERY 0x02u /* receiver: waiting for data at the expected offset */
#define FL_FINAL    0x04u /* sender: the chunk with remaining_bytes 0 went out */
#define FL_PACING   0x08u /* the timer waits for min_delay, not for the peer */
#define FL_SENT     0x10u /* sender: some data went out */

#define DEFAULT_TIMEOUT SPRIG_TIME_S(2)
#define DEFAULT_RETRIES 3u
#define DGRAM_TIMEOUT   SPRIG_TIME_MS(500)
#define DGRAM_RETRIES   8u
#define DEFAULT_WINDOW  4u
#define MAX_WINDOW      255u
#define MAX_CHUNK       0xFFFFFFu
/* Offsets and sizes are 32-bit (the wire's window_end_offset is): a transfer ends at or below
 * LIMIT; UINT32_MAX marks an unknown size. */
#define SIZE_NONE UINT32_MAX
#define LIMIT     (UINT32_MAX - 1u)

typedef sprig_transfer_session session;
typedef sprig_transfer_chunk chunk;

static sprig_time now_of(const session *s)
{
    return sprig_loop_now(s->node->cfg.loop);
}

static void arm(session *s)
{
    s->flags &= (uint8_t)~FL_PACING;
    sprig_timer_start(s->node->cfg.loop, &s->timer, s->node->cfg.chunk_timeout);
}

/* ---- sending --------------------------------------------------------------------------------- */

/* A transmit buffer for a chunk of up to `want` bytes with the data's header room reserved in
 * front. `want` never exceeds the message size: control chunks need at most
 * SPRIG_TRANSFER_CHUNK_TAILROOM < SPRIG_TRANSFER_MIN_MESSAGE, data chunks at most
 * node->max_chunk + SPRIG_TRANSFER_DATA_OVERHEAD (init).
 * An empty pool counts as "would block": the socket is marked so WRITABLE follows. */
static sprig_status tx_begin(sprig_transfer_node *n, size_t want, sprig_buf **out)
{
    sprig_status st = sprig_sock_alloc_tx_flow(n->cfg.sock, want, out);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    sprig_buf_reset(*out, sprig_buf_headroom(*out) + SPRIG_TRANSFER_DATA_HEADROOM);
    return SPRIG_STATUS_OK;
}

/* Wrap, seal on DGRAM, and send (to `to` on a bound socket); the buffer is consumed either way.
 * The trailer always fits: the allowance for it is in the tailroom tx_begin reserved. */
static sprig_status tx_finish(sprig_transfer_node *n, sprig_buf *buf, const chunk *c,
                              const sprig_addr *to)
{
    sprig_status st = sprig_transfer_chunk_wrap(buf, c);
    if (st == SPRIG_STATUS_OK && IS_DGRAM(n)) {
        size_t len = sprig_buf_len(buf);
        if (sprig_buf_put(buf, SPRIG_TRANSFER_TRAILER) == NULL) {
            st = SPRIG_STATUS_INTERNAL;
        } else {
            sprig_transfer_chunk_seal(sprig_buf_data(buf), len);
        }
    }
    if (st == SPRIG_STATUS_OK) {
        st = IS_BOUND(n) ? sprig_sock_send_buf_to(n->cfg.sock, buf, to)
                         : sprig_sock_send_buf(n->cfg.sock, buf);
    }
    if (st != SPRIG_STATUS_OK) {
        sprig_buf_free(buf);
    } else {
        n->stats.chunks_out++;
    }
    if (st == SPRIG_STATUS_UNAVAILABLE) {
        n->want_write = 1;
    }
    return st;
}

static sprig_status send_chunk(sprig_transfer_node *n, const chunk *c, const sprig_addr *to)
{
    sprig_buf *buf = NULL;
    if (n->dead) {
        return SPRIG_STATUS_FAILED_PRECONDITION;
    }
    sprig_status st = tx_begin(n, SPRIG_TRANSFER_CHUNK_TAILROOM, &buf);
    if (st == SPRIG_STATUS_UNAVAILABLE) {
        n->want_write = 1;
    }
    return st == SPRIG_STATUS_OK ? tx_finish(n, buf, c, to) : st;
}

/* The fields of each control chunk type (the encoder skips initial_offset when zero). */
#define FLD(x) SPRIG_TRANSFER_F_##x
#define F_ID   (FLD(TYPE) | FLD(SESSION_ID))
#define F_PARM (FLD(OFFSET) | FLD(WINDOW_END_OFFSET) | FLD(MAX_CHUNK_SIZE) | FLD(MIN_DELAY))
static const uint16_t ctl_fields[8] = {
    [SPRIG_TRANSFER_CHUNK_START] = FLD(TYPE) | FLD(DESIRED_SESSION_ID) | FLD(RESOURCE_ID) |
                                   FLD(PROTOCOL_VERSION) | FLD(DIRECTION) | FLD(INITIAL_OFFSET),
    [SPRIG_TRANSFER_CHUNK_PARAMETERS_RETRANSMIT] = F_ID | F_PARM,
    [SPRIG_TRANSFER_CHUNK_PARAMETERS_CONTINUE] = F_ID | F_PARM,
    [SPRIG_TRANSFER_CHUNK_COMPLETION] = F_ID | FLD(STATUS),
    [SPRIG_TRANSFER_CHUNK_COMPLETION_ACK] = F_ID,
    [SPRIG_TRANSFER_CHUNK_START_ACK] =
        F_ID | FLD(RESOURCE_ID) | FLD(PROTOCOL_VERSION) | FLD(INITIAL_OFFSET),
    [SPRIG_TRANSFER_CHUNK_START_ACK_CONFIRMATION] = F_ID | FLD(PROTOCOL_VERSION),
};

/* Send control chunk `type` with the fields its type calls for (added to c->fields). */
static sprig_status send_typed(sprig_transfer_node *n, chunk *c, uint32_t type,
                               const sprig_addr *to)
{
    c->type = type;
    c->fields |= ctl_fields[type];
    return send_chunk(n, c, to);
}

/* A one-off answer outside any session (lost if the socket is busy: the peer retries). */
static void reply(sprig_transfer_node *n, uint32_t id, uint32_t type, sprig_status status)
{
    chunk c = {0};
    c.session_id = id;
    c.status = (uint32_t)status;
    (void)send_typed(n, &c, type, &n->from);
}

/* Build the control chunk of `type` from the session's state and send it; if the socket is
 * busy it stays pending and goes out on WRITABLE. */
static void send_ctl(session *s, uint32_t type)
{
    chunk c = {0};
    c.session_id = c.desired_session_id = s->id;
    c.resource_id = s->resource_id;
    c.protocol_version = SPRIG_TRANSFER_PROTOCOL_VERSION;
    c.direction = s->sender ? SPRIG_TRANSFER_DIR_WRITE : SPRIG_TRANSFER_DIR_READ;
    c.status = (uint32_t)s->status;
    c.initial_offset = s->start;
    c.offset = s->offset;
    c.window_end_offset = s->window_end;
    c.max_chunk_size_bytes = s->max_chunk;
    c.min_delay_microseconds = s->min_delay;
    if (!s->sender && (type == SPRIG_TRANSFER_CHUNK_START ||
                       type == SPRIG_TRANSFER_CHUNK_START_ACK_CONFIRMATION)) {
        c.fields = F_PARM; /* a receiver opens with its window */
    }
    s->pending = 0;
    if (send_typed(s->node, &c, type, &s->peer) == SPRIG_STATUS_UNAVAILABLE) {
        s->pending = (uint8_t)(type + 1u);
    }
}

/* ---- ending ---------------------------------------------------------------------------------- */

/* Close the handler (once) with `status`; returns the transfer's result. */
static sprig_status close_handler(session *s, sprig_status status)
{
    if ((s->flags & FL_OPEN) == 0) {
        return status;
    }
    s->flags &= (uint8_t)~FL_OPEN;
    sprig_status st = s->handler->ops->close(s->handler->ctx, s->handle, status);
    if (status == SPRIG_STATUS_OK && st != SPRIG_STATUS_OK && !s->sender) {
        status = SPRIG_STATUS_DATA_LOSS; /* the commit failed: nothing is claimed written */
    }
    return status;
}

/* The transfer is over: release the session, then tell the owner. */
static void finish(session *s, sprig_status status)
{
    sprig_transfer_node *n = s->node;
    status = close_handler(s, status);
    sprig_timer_stop(n->cfg.loop, &s->timer);
    sprig_transfer_done_fn done = s->done;
    void *user = s->user;
    uint32_t id = s->id;
    s->next_send = sprig_loop_now(n->cfg.loop); /* DGRAM: when it ended (ended_lately) */
    s->in_use = 0;
    s->pending = 0;
    s->state = 0;
    if (done != NULL) {
        done(n, id, status, user);
    }
}

/* We end the transfer: tell the peer and wait for its COMPLETION_ACK. */
static void end(session *s, sprig_status status)
{
    status = close_handler(s, status);
    s->status = status;
    s->state = ST_ENDING;
    s->retries = 0;
    send_ctl(s, SPRIG_TRANSFER_CHUNK_COMPLETION);
    arm(s);
}

/* ---- the sender ------------------------------------------------------------------------------ */

static void progress(session *s, uint32_t at)
{
    if (s->progress != NULL) {
        s->progress(s->node, s->id, at - s->start,
                    s->size == SIZE_NONE ? SPRIG_TRANSFER_SIZE_UNKNOWN : s->size - s->start,
                    s->user);
    }
}

/* A DATA chunk around lent bytes, gathered by the socket: header, data, fields. */
static sprig_status tx_lent(sprig_transfer_node *n, const chunk *c, const uint8_t *data, size_t len)
{
    uint8_t f[SPRIG_TRANSFER_DATA_OVERHEAD];
    size_t hl = 0;
    size_t fl = sprig_transfer_chunk_frame(c, len, f, &hl);
    sprig_iov v[3] = {{f, hl}, {data, len}, {f + hl, fl - hl}};
    sprig_status st = fl != 0 ? sprig_sock_send_iov(n->cfg.sock, v, 3, &fl) : SPRIG_STATUS_INTERNAL;
    if (st == SPRIG_STATUS_OK) {
        n->stats.chunks_out++;
    } else if (st == SPRIG_STATUS_UNAVAILABLE) {
        n->want_write = 1;
    }
    return st;
}

/* One DATA chunk at s->offset: the handler lends the bytes (SEQPACKET) or reads them into a
 * transmit buffer. Returns false when the sender must stop for now. */
static bool send_data(session *s)
{
    sprig_transfer_node *n = s->node;
    const sprig_transfer_handler *h = s->handler;
    uint32_t room = s->window_end - s->offset;
    size_t len = room < s->max_chunk ? room : s->max_chunk;
    sprig_buf *buf = NULL;
    const uint8_t *dst = NULL;
    size_t got = 0;
    sprig_status st;
    if (h->ops->lend != NULL && !IS_DGRAM(n) && !n->no_iov) {
        st = h->ops->lend(h->ctx, s->handle, s->offset, len, &dst, &got);
    } else {
        st = tx_begin(n, len + SPRIG_TRANSFER_DATA_OVERHEAD, &buf);
        if (st != SPRIG_STATUS_OK) {
            if (st == SPRIG_STATUS_UNAVAILABLE) {
                n->want_write = 1;
            }
            return false;
        }
        uint8_t *p = sprig_buf_data(buf); /* empty; tx_begin left room for len + the fields */
        st = h->ops->read(h->ctx, s->handle, s->offset, p, len, &got);
        (void)sprig_buf_put(buf, got); /* got > len is refused below, whatever this did */
        dst = p;
    }
    if (st != SPRIG_STATUS_OK || got > len) {
        sprig_buf_free(buf);
        end(s, SPRIG_STATUS_DATA_LOSS);
        return false;
    }
    if (got < len) {
        s->size = s->offset + got; /* the end of the resource */
    }
    chunk c = {0};
    c.fields = SPRIG_TRANSFER_F_TYPE | SPRIG_TRANSFER_F_SESSION_ID | SPRIG_TRANSFER_F_OFFSET;
    c.type = SPRIG_TRANSFER_CHUNK_DATA;
    c.session_id = s->id;
    c.offset = s->offset;
    uint32_t crc = s->crc;
    uint32_t end_at = s->offset + (uint32_t)got;
    if (s->crc_end >= s->offset && s->crc_end < end_at) {
        crc = sprig_transfer_crc32(crc, dst + (s->crc_end - s->offset), end_at - s->crc_end);
    }
    if (s->size != SIZE_NONE) {
        c.fields |= SPRIG_TRANSFER_F_REMAINING_BYTES;
        c.remaining_bytes = s->size - end_at;
        if (c.remaining_bytes == 0) {
            c.fields |= SPRIG_TRANSFER_F_CRC32;
            c.crc32 = crc;
        }
    }
    if ((buf != NULL ? tx_finish(n, buf, &c, &s->peer) : tx_lent(n, &c, dst, got)) !=
        SPRIG_STATUS_OK) {
        return false;
    }
    if (end_at > s->crc_end) {
        s->crc = crc;
        s->crc_end = end_at;
    }
    s->last_chunk = s->offset;
    s->offset = end_at;
    s->flags |= FL_SENT;
    if ((c.fields & SPRIG_TRANSFER_F_CRC32) != 0) {
        s->flags |= FL_FINAL;
    }
    if (end_at > s->high || (got == 0 && s->high == s->start)) {
        s->high = end_at;
        progress(s, end_at);
    }
    return true;
}

/* Send as much as the window, the socket and the pacing allow. */
static void pump(session *s)
{
    sprig_transfer_node *n = s->node;
    bool sent = false;
    while (s->in_use && s->state == ST_DATA && s->sender && s->pending == 0 &&
           (s->flags & FL_FINAL) == 0 && !n->want_write && !n->dead && s->offset < s->window_end) {
        if (s->min_delay != 0 && now_of(s) < s->next_send) {
            s->flags |= FL_PACING; /* the receiver asked for a gap between chunks */
            sprig_timer_start_at(n->cfg.loop, &s->timer, s->next_send);
            return;
        }
        if (!send_data(s)) {
            break;
        }
        if (s->min_delay != 0) {
            s->next_send = sprig_time_add(now_of(s), s->min_delay);
        }
        sent = true;
    }
    if (s->in_use && s->state == ST_DATA && sent) {
        arm(s);
    }
}

static void apply_params(session *s, const chunk *c)
{
    if ((c->fields & SPRIG_TRANSFER_F_WINDOW_END_OFFSET) != 0 &&
        c->window_end_offset > s->window_end) {
        s->window_end = c->window_end_offset < LIMIT ? c->window_end_offset : LIMIT;
    }
    if ((c->fields & SPRIG_TRANSFER_F_MAX_CHUNK_SIZE) != 0 && c->max_chunk_size_bytes != 0) {
        s->max_chunk = c->max_chunk_size_bytes < s->node->max_chunk ? c->max_chunk_size_bytes
                                                                    : s->node->max_chunk;
    }
    if ((c->fields & SPRIG_TRANSFER_F_MIN_DELAY) != 0) {
        s->min_delay = c->min_delay_microseconds;
    }
}

static void sender_params(session *s, const chunk *c)
{
    if (c->type == SPRIG_TRANSFER_CHUNK_PARAMETERS_RETRANSMIT ||
        c->type == SPRIG_TRANSFER_CHUNK_START_ACK_CONFIRMATION) {
        uint64_t off = c->offset;
        if ((c->fields & SPRIG_TRANSFER_F_OFFSET) == 0 &&
            c->type == SPRIG_TRANSFER_CHUNK_START_ACK_CONFIRMATION) {
            off = s->start; /* a confirmation without parameters: start where agreed */
        }
        if (off < s->start || off > s->high) {
            end(s, SPRIG_STATUS_INTERNAL); /* asks for bytes never sent or before the start */
            return;
        }
        s->offset = (uint32_t)off;
        s->window_end = (uint32_t)off;  /* the new window replaces the old one */
        s->flags &= (uint8_t)~FL_FINAL; /* from `off` on, everything (again) */
    }
    apply_params(s, c);
    if ((s->flags & FL_PACING) == 0) {
        pump(s);
    }
}

/* ---- the receiver ---------------------------------------------------------------------------- */

static void grow_window(session *s)
{
    s->window_end = s->window < UINT32_MAX - s->offset ? s->offset + s->window : UINT32_MAX;
}

/* The window becomes `k` chunks (1..MAX_WINDOW); a new loss-free round starts. */
static void set_cwnd(session *s, unsigned k)
{
    s->cwnd = (uint8_t)k;
    s->window = s->cwnd * s->max_chunk;
    s->round_end = s->offset + s->window;
}

/* DGRAM: a gap or a timeout means loss: halve the window, grow additively from here on. */
static void on_loss(session *s)
{
    if (IS_DGRAM(s->node)) {
        set_cwnd(s, (s->cwnd + 1u) / 2u); /* half, rounded up: at least 1 */
        s->ssthresh = s->cwnd;
        grow_window(s);
    }
}

static void receiver_data(session *s, const chunk *c)
{
    if (c->offset != s->offset) {
        if (IS_DGRAM(s->node) && c->offset < s->offset) {
            return; /* a duplicate or a re-sent chunk we already have */
        }
        if ((s->flags & FL_RECOVERY) == 0) {
            s->flags |= FL_RECOVERY;
            on_loss(s);
            send_ctl(s, SPRIG_TRANSFER_CHUNK_PARAMETERS_RETRANSMIT);
        }
        return;
    }
    s->flags &= (uint8_t)~FL_RECOVERY;
    uint32_t room = LIMIT - s->offset; /* bytes that may still arrive */
    if (c->data_len > room || ((c->fields & SPRIG_TRANSFER_F_REMAINING_BYTES) != 0 &&
                               c->remaining_bytes > room - c->data_len)) {
        end(s, SPRIG_STATUS_OUT_OF_RANGE); /* the transfer would end beyond 4 GiB */
        return;
    }
    if (c->data_len > 0) {
        sprig_status st =
            s->handler->ops->write(s->handler->ctx, s->handle, s->offset, c->data, c->data_len);
        if (st != SPRIG_STATUS_OK) {
            end(s, SPRIG_STATUS_DATA_LOSS);
            return;
        }
        s->crc = sprig_transfer_crc32(s->crc, c->data, c->data_len);
        s->offset += (uint32_t)c->data_len;
    }
    if ((c->fields & SPRIG_TRANSFER_F_REMAINING_BYTES) != 0) {
        s->size = s->offset + (uint32_t)c->remaining_bytes;
    }
    progress(s, s->offset);
    if (!s->in_use || s->state != ST_DATA) {
        return; /* the progress callback cancelled it */
    }
    if ((c->fields & SPRIG_TRANSFER_F_REMAINING_BYTES) != 0 && c->remaining_bytes == 0) {
        sprig_status st = SPRIG_STATUS_OK;
        if ((c->fields & SPRIG_TRANSFER_F_CRC32) != 0 && c->crc32 != s->crc) {
            st = SPRIG_STATUS_DATA_LOSS;
        }
        end(s, st); /* closes the handler: commit (OK) or discard */
        return;
    }
    if (IS_DGRAM(s->node) && s->offset >= s->round_end) { /* a window without loss */
        unsigned k = s->cwnd * 2u;                        /* slow start, up to the threshold */
        if (s->cwnd >= s->ssthresh) {
            k = s->cwnd + (s->cwnd < MAX_WINDOW); /* then one chunk per window */
        } else if (k > s->ssthresh) {
            k = s->ssthresh;
        }
        set_cwnd(s, k);
    }
    if (s->offset >= s->window_end ||
        s->window_end - s->offset <= s->window / 2u) { /* half the window consumed */
        grow_window(s);
        send_ctl(s, SPRIG_TRANSFER_CHUNK_PARAMETERS_CONTINUE);
    }
    arm(s);
}

/* ---- timers ---------------------------------------------------------------------------------- */

static void on_timer(sprig_timer *timer, void *arg)
{
    session *s = arg;
    (void)timer;
    if (!s->in_use) {
        return;
    }
    if ((s->flags & FL_PACING) != 0) {
        s->flags &= (uint8_t)~FL_PACING;
        pump(s);
        if (s->in_use && (s->flags & FL_PACING) == 0 && !sprig_timer_armed(&s->timer)) {
            arm(s);
        }
        return;
    }
    if (s->retries >= s->node->cfg.max_retries) {
        if (s->state == ST_ENDING) {
            finish(s, s->status); /* never acknowledged: the result stands */
        } else {
            s->status = SPRIG_STATUS_DEADLINE_EXCEEDED;
            send_ctl(s, SPRIG_TRANSFER_CHUNK_COMPLETION);
            finish(s, SPRIG_STATUS_DEADLINE_EXCEEDED);
        }
        return;
    }
    s->retries++;
    s->node->stats.retransmits++;
    switch (s->state) {
    case ST_START_SENT:
        send_ctl(s, SPRIG_TRANSFER_CHUNK_START);
        break;
    case ST_ACK_SENT:
        send_ctl(s, SPRIG_TRANSFER_CHUNK_START_ACK);
        break;
    case ST_ENDING:
        send_ctl(s, SPRIG_TRANSFER_CHUNK_COMPLETION);
        break;
    default:
        if (!s->sender) {
            on_loss(s);
            send_ctl(s, SPRIG_TRANSFER_CHUNK_PARAMETERS_RETRANSMIT);
        } else if ((s->flags & FL_SENT) != 0) {
            s->offset = s->last_chunk; /* re-send the last chunk to provoke an answer */
            s->flags &= (uint8_t)~FL_FINAL;
            if (s->window_end < s->high) {
                s->window_end = s->high;
            }
            pump(s);
        } else if (s->client) {
            send_ctl(s, SPRIG_TRANSFER_CHUNK_START_ACK_CONFIRMATION);
        }
        break;
    }
    if (s->in_use && !sprig_timer_armed(&s->timer)) {
        arm(s);
    }
}

/* ---- sessions -------------------------------------------------------------------------------- */

static bool from_peer(const sprig_transfer_node *n, const session *s)
{
    return !IS_BOUND(n) || memcmp(&s->peer, &n->from, sizeof(s->peer)) == 0;
}

/* find() keys: in_use | client << 8. */
enum { K_ENDED = 0x000 /* a session we served, ended */, K_SERVED = 0x001, K_OURS = 0x101 };

/* The session with this id and key; with `peer`, on a bound socket only one with the address
 * the current chunk came from. */
static session *find(sprig_transfer_node *n, uint32_t id, unsigned key, bool peer)
{
    for (size_t i = 0; i < n->cfg.max_sessions; i++) {
        session *s = &n->cfg.sessions[i];
        if ((s->in_use | (unsigned)s->client << 8) == key && s->id == id &&
            (!peer || from_peer(n, s))) {
            return s;
        }
    }
    return NULL;
}

/* A chunk's session: our client sessions first, then the ones we serve (docs/transfer.md). */
static session *lookup(sprig_transfer_node *n, uint32_t id, bool peer)
{
    session *s = find(n, id, K_OURS, peer);
    return s != NULL ? s : find(n, id, K_SERVED, peer);
}

/* DGRAM: the peer's session `id` ended here lately, so its START is a late copy. */
static bool ended_lately(sprig_transfer_node *n, uint32_t id)
{
    session *s = IS_DGRAM(n) ? find(n, id, K_ENDED, true) : NULL;
    return s != NULL && sprig_loop_now(n->cfg.loop) - s->next_send < (n->cfg.chunk_timeout << 4);
}

static session *take(sprig_transfer_node *n)
{
    for (size_t i = 0; i < n->cfg.max_sessions; i++) {
        session *s = &n->cfg.sessions[i];
        if (!s->in_use) {
            memset(s, 0, sizeof(*s));
            s->node = n;
            sprig_timer_init(&s->timer, on_timer, s);
            s->max_chunk = n->max_chunk;
            s->min_delay = n->cfg.min_delay_us;
            s->window = n->cfg.window_chunks * n->max_chunk;
            s->ssthresh = (uint8_t)n->cfg.window_chunks;
            s->size = SIZE_NONE;
            return s;
        }
    }
    return NULL;
}

/* Open the handler and fill in the data-phase starting point. OUT_OF_RANGE for a start or a
 * resource beyond LIMIT. */
static sprig_status open_session(session *s, uint32_t id, uint64_t offset)
{
    uint64_t size = SPRIG_TRANSFER_SIZE_UNKNOWN;
    sprig_transfer_access acc =
        s->sender ? SPRIG_TRANSFER_ACCESS_READ : SPRIG_TRANSFER_ACCESS_WRITE;
    if (offset > LIMIT) {
        return SPRIG_STATUS_OUT_OF_RANGE;
    }
    sprig_status st = s->handler->ops->open(s->handler->ctx, id, acc, offset, &s->handle, &size);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    s->flags |= FL_OPEN;
    s->start = s->offset = s->crc_end = s->high = s->last_chunk = (uint32_t)offset;
    s->window_end = (uint32_t)offset;
    if (s->sender) {
        if (size + 1u > SIZE_NONE) { /* known (UINT64_MAX + 1 is 0) and beyond LIMIT */
            return close_handler(s, SPRIG_STATUS_OUT_OF_RANGE);
        }
        s->size = (uint32_t)size; /* SPRIG_TRANSFER_SIZE_UNKNOWN becomes SIZE_NONE */
        s->min_delay = 0;         /* until the receiver says otherwise */
    } else {
        if (IS_DGRAM(s->node)) {
            set_cwnd(s, 1); /* slow start */
        }
        grow_window(s);
    }
    s->in_use = 1;
    return SPRIG_STATUS_OK;
}

static void on_start(sprig_transfer_node *n, const chunk *c)
{
    const uint32_t need = SPRIG_TRANSFER_F_DESIRED_SESSION_ID | SPRIG_TRANSFER_F_RESOURCE_ID;
    uint32_t id = c->desired_session_id;
    if ((c->fields & need) != need || id == 0) {
        n->stats.dropped++;
        return;
    }
    session *s = find(n, id, K_SERVED, true);
    if (s != NULL) { /* a repeated START: our START_ACK was slow */
        if (s->state == ST_ACK_SENT) {
            send_ctl(s, SPRIG_TRANSFER_CHUNK_START_ACK);
        }
        return;
    }
    if (ended_lately(n, id)) {
        return;
    }
    sprig_status st = SPRIG_STATUS_OK;
    /* Without field 1001 the carrier may imply the direction (the RPC method); a START that
     * contradicts an implied direction is malformed. */
    uint32_t implied = n->cfg.implied_direction;
    uint32_t dir = (c->fields & SPRIG_TRANSFER_F_DIRECTION) != 0 ? c->direction : implied;
    if (find(n, id, K_OURS, true) != NULL) {
        st = SPRIG_STATUS_ALREADY_EXISTS; /* both ends picked the same id */
    } else if (c->protocol_version < SPRIG_TRANSFER_PROTOCOL_VERSION) {
        st = SPRIG_STATUS_UNIMPLEMENTED;
    } else if ((dir != SPRIG_TRANSFER_DIR_READ && dir != SPRIG_TRANSFER_DIR_WRITE) ||
               (implied != 0 && dir != implied)) {
        st = SPRIG_STATUS_INVALID_ARGUMENT;
    } else if (n->cfg.handler == NULL) {
        st = SPRIG_STATUS_NOT_FOUND;
    } else if ((s = take(n)) == NULL) {
        st = SPRIG_STATUS_RESOURCE_EXHAUSTED;
    } else {
        s->peer = n->from;
        s->resource_id = c->resource_id;
        s->sender = dir == SPRIG_TRANSFER_DIR_READ;
        s->handler = n->cfg.handler;
        s->progress = n->cfg.on_progress;
        s->done = n->cfg.on_done;
        s->user = n->cfg.user;
        st = open_session(s, c->resource_id, c->initial_offset);
    }
    if (st != SPRIG_STATUS_OK) {
        n->stats.refused++;
        reply(n, id, SPRIG_TRANSFER_CHUNK_COMPLETION, st);
        return;
    }
    s->id = id; /* only now: a refused START leaves no trace for ended_lately */
    s->state = ST_ACK_SENT;
    if (s->sender) {
        apply_params(s, c);
    }
    send_ctl(s, SPRIG_TRANSFER_CHUNK_START_ACK);
    arm(s);
}

static void on_chunk(sprig_transfer_node *n, const chunk *c)
{
    if ((c->fields & SPRIG_TRANSFER_F_TYPE) == 0) {
        n->stats.dropped++; /* legacy (version 1) chunks are not spoken here */
        return;
    }
    if (c->type == SPRIG_TRANSFER_CHUNK_START) {
        on_start(n, c);
        return;
    }
    if ((c->fields & SPRIG_TRANSFER_F_SESSION_ID) == 0) {
        n->stats.dropped++;
        return;
    }
    session *s = lookup(n, c->session_id, true);
    if (s == NULL) {
        if (c->type == SPRIG_TRANSFER_CHUNK_COMPLETION) {
            reply(n, c->session_id, SPRIG_TRANSFER_CHUNK_COMPLETION_ACK, SPRIG_STATUS_OK);
        } else if (c->type != SPRIG_TRANSFER_CHUNK_COMPLETION_ACK) {
            reply(n, c->session_id, SPRIG_TRANSFER_CHUNK_COMPLETION,
                  SPRIG_STATUS_FAILED_PRECONDITION);
        }
        return;
    }
    s->retries = 0;
    switch (c->type) {
    case SPRIG_TRANSFER_CHUNK_COMPLETION: {
        sprig_status st = SPRIG_STATUS_OK;
        if ((c->fields & SPRIG_TRANSFER_F_STATUS) != 0) {
            st = c->status < SPRIG_STATUS_COUNT ? (sprig_status)c->status : SPRIG_STATUS_UNKNOWN;
        }
        if (s->state == ST_ENDING) {
            st = s->status;
        } else if (st == SPRIG_STATUS_OK && !s->sender) {
            st = SPRIG_STATUS_INTERNAL; /* only the receiver may say the data is complete */
        }
        reply(n, s->id, SPRIG_TRANSFER_CHUNK_COMPLETION_ACK, SPRIG_STATUS_OK);
        finish(s, st);
        return;
    }
    case SPRIG_TRANSFER_CHUNK_COMPLETION_ACK:
        if (s->state == ST_ENDING) {
            finish(s, s->status);
        }
        return;
    case SPRIG_TRANSFER_CHUNK_START_ACK:
        if (IS_DGRAM(n) && s->state == ST_DATA && s->client) {
            send_ctl(s, SPRIG_TRANSFER_CHUNK_START_ACK_CONFIRMATION); /* ours was lost */
        }
        if (s->state != ST_START_SENT) {
            return;
        }
        /* the peer cannot start where we asked, or speaks an older version (0: absent) */
        if (c->initial_offset != s->start ||
            c->protocol_version < SPRIG_TRANSFER_PROTOCOL_VERSION) {
            end(s, SPRIG_STATUS_UNIMPLEMENTED);
            return;
        }
        s->state = ST_DATA;
        send_ctl(s, SPRIG_TRANSFER_CHUNK_START_ACK_CONFIRMATION);
        arm(s);
        return;
    case SPRIG_TRANSFER_CHUNK_START_ACK_CONFIRMATION:
    case SPRIG_TRANSFER_CHUNK_PARAMETERS_RETRANSMIT:
    case SPRIG_TRANSFER_CHUNK_PARAMETERS_CONTINUE:
        if (s->state == ST_ACK_SENT) {
            s->state = ST_DATA; /* confirmed (parameters imply it) */
            if (!s->sender) {
                send_ctl(s, SPRIG_TRANSFER_CHUNK_PARAMETERS_RETRANSMIT);
                arm(s);
                return;
            }
        } else if (IS_DGRAM(n) && c->type == SPRIG_TRANSFER_CHUNK_START_ACK_CONFIRMATION) {
            return; /* a repeat: the data phase runs already */
        }
        if (s->state == ST_DATA && s->sender) {
            arm(s);
            sender_params(s, c);
        }
        return;
    case SPRIG_TRANSFER_CHUNK_DATA:
        if (s->state == ST_DATA && !s->sender) {
            receiver_data(s, c);
        }
        return;
    default:
        n->stats.dropped++;
        return;
    }
}

/* ---- the socket ------------------------------------------------------------------------------ */

static void flush(sprig_transfer_node *n)
{
    n->want_write = 0;
    for (size_t i = 0; i < n->cfg.max_sessions && !n->want_write; i++) {
        session *s = &n->cfg.sessions[i];
        if (s->in_use && s->pending != 0) {
            send_ctl(s, (uint32_t)(s->pending - 1u));
        }
    }
    for (size_t i = 0; i < n->cfg.max_sessions && !n->want_write; i++) {
        session *s = &n->cfg.sessions[i];
        if (s->in_use && (s->flags & FL_PACING) == 0) {
            pump(s);
        }
    }
}

static void abort_all(sprig_transfer_node *n, sprig_status status)
{
    for (size_t i = 0; i < n->cfg.max_sessions; i++) {
        session *s = &n->cfg.sessions[i];
        if (s->in_use) {
            finish(s, status);
        }
    }
}

static void on_sock(sprig_sock *sock, sprig_sock_event ev, sprig_status status, void *user)
{
    sprig_transfer_node *n = user;
    if (ev == SPRIG_SOCK_EV_READABLE) {
        while (!n->dead) {
            size_t len = 0;
            sprig_status st =
                IS_BOUND(n)
                    ? sprig_sock_recv_from(sock, n->cfg.rx_buf, n->cfg.rx_cap, &len, &n->from)
                    : sprig_sock_recv(sock, n->cfg.rx_buf, n->cfg.rx_cap, &len);
            if (st != SPRIG_STATUS_OK) {
                if (st != SPRIG_STATUS_UNAVAILABLE) { /* the peer is gone (end of stream) */
                    n->dead = 1;
                    abort_all(n, st == SPRIG_STATUS_OUT_OF_RANGE ? SPRIG_STATUS_ABORTED : st);
                }
                break;
            }
            chunk c;
            n->stats.chunks_in++;
            if (IS_DGRAM(n) &&
                sprig_transfer_chunk_unseal(n->cfg.rx_buf, &len) != SPRIG_STATUS_OK) {
                n->stats.corrupt++; /* damaged in flight, or not sprig's: a loss */
                continue;
            }
            if (sprig_transfer_chunk_decode(n->cfg.rx_buf, len, &c) != SPRIG_STATUS_OK) {
                n->stats.dropped++;
                continue;
            }
            on_chunk(n, &c);
        }
    } else if (ev == SPRIG_SOCK_EV_WRITABLE) {
        flush(n);
    } else if (ev == SPRIG_SOCK_EV_CLOSED) {
        n->dead = 1;
        abort_all(n, status == SPRIG_STATUS_OK ? SPRIG_STATUS_ABORTED : status);
    }
}

/* ---- public ---------------------------------------------------------------------------------- */

sprig_status sprig_transfer_init(sprig_transfer_node *node, const sprig_transfer_cfg *cfg)
{
    if (node == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(node, 0, sizeof(*node));
    if (cfg == NULL || cfg->loop == NULL || cfg->sock == NULL || cfg->sessions == NULL ||
        cfg->max_sessions == 0 || cfg->rx_buf == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    sprig_sock_type type = sprig_sock_type_of(cfg->sock);
    size_t max = sprig_sock_max_message_size(cfg->sock);
    if ((type != SPRIG_SOCK_SEQPACKET &&
         (type != SPRIG_SOCK_DGRAM || !SPRIG_CONFIG_TRANSFER_DGRAM)) ||
        cfg->rx_cap < max || max < SPRIG_TRANSFER_MIN_MESSAGE) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    node->cfg = *cfg;
    sprig_transfer_cfg *c = &node->cfg;
    bool dgram = SPRIG_CONFIG_TRANSFER_DGRAM && type == SPRIG_SOCK_DGRAM;
    if (dgram) { /* a bound socket has no peer: it serves whoever sends */
        node->dgram = sprig_sock_peer_addr(cfg->sock, &node->from) == SPRIG_STATUS_OK ? DGRAM_DIALED
                                                                                      : DGRAM_BOUND;
    }
    c->chunk_timeout = c->chunk_timeout != 0 ? c->chunk_timeout
                       : dgram               ? DGRAM_TIMEOUT
                                             : DEFAULT_TIMEOUT;
    c->max_retries = c->max_retries != 0 ? c->max_retries : dgram ? DGRAM_RETRIES : DEFAULT_RETRIES;
    /* window = window_chunks * max_chunk must fit 32 bits: at most 255 chunks of < 16 MiB */
    c->window_chunks = c->window_chunks == 0           ? DEFAULT_WINDOW
                       : c->window_chunks > MAX_WINDOW ? MAX_WINDOW
                                                       : c->window_chunks;
    max -= SPRIG_TRANSFER_DATA_OVERHEAD;
    max = max < MAX_CHUNK ? max : MAX_CHUNK;
    node->max_chunk = (c->max_chunk != 0 && c->max_chunk < max) ? c->max_chunk : (uint32_t)max;
    node->next_id = c->first_session_id != 0 ? c->first_session_id : 1u;
    node->no_iov = !sprig_sock_gathers(cfg->sock); /* lent bytes need a message gather */
    memset(c->sessions, 0, c->max_sessions * sizeof(*c->sessions));
    node->ready = 1;
    sprig_sock_set_callback(cfg->sock, on_sock, node);
    return SPRIG_STATUS_OK;
}

void sprig_transfer_deinit(sprig_transfer_node *node)
{
    if (node == NULL || !node->ready) {
        return;
    }
    node->dead = 1; /* no more sends */
    abort_all(node, SPRIG_STATUS_CANCELLED);
    sprig_sock_close(node->cfg.sock);
    node->ready = 0;
}

static sprig_status start(sprig_transfer_node *n, const sprig_transfer_opts *o, bool write,
                          uint32_t *out_id)
{
    if (n == NULL || !n->ready || o == NULL || o->local == NULL || o->local->ops == NULL ||
        o->done == NULL || out_id == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (n->dead) {
        return SPRIG_STATUS_FAILED_PRECONDITION;
    }
    if (IS_BOUND(n)) {
        return SPRIG_STATUS_UNIMPLEMENTED;
    }
    session *s = take(n);
    if (s == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    do {
        s->id = n->next_id++;
    } while (s->id == 0 || find(n, s->id, K_OURS, false) != NULL);
    s->client = 1;
    s->sender = write;
    s->resource_id = o->resource_id;
    s->handler = o->local;
    s->progress = o->progress;
    s->done = o->done;
    s->user = o->user;
    sprig_status st = open_session(s, o->local_id, o->initial_offset);
    if (st != SPRIG_STATUS_OK) {
        return st; /* the session stays free */
    }
    s->state = ST_START_SENT;
    *out_id = s->id;
    send_ctl(s, SPRIG_TRANSFER_CHUNK_START);
    arm(s);
    return SPRIG_STATUS_OK;
}

sprig_status sprig_transfer_read(sprig_transfer_node *node, const sprig_transfer_opts *opts,
                                 uint32_t *session_id)
{
    return start(node, opts, false, session_id);
}

sprig_status sprig_transfer_write(sprig_transfer_node *node, const sprig_transfer_opts *opts,
                                  uint32_t *session_id)
{
    return start(node, opts, true, session_id);
}

sprig_status sprig_transfer_cancel(sprig_transfer_node *node, uint32_t session_id)
{
    if (node == NULL || !node->ready) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    session *s = lookup(node, session_id, false);
    if (s == NULL) {
        return SPRIG_STATUS_NOT_FOUND;
    }
    if (s->state == ST_ENDING) {
        return SPRIG_STATUS_FAILED_PRECONDITION;
    }
    end(s, SPRIG_STATUS_CANCELLED);
    return SPRIG_STATUS_OK;
}

size_t sprig_transfer_active(const sprig_transfer_node *node)
{
    size_t k = 0;
    for (size_t i = 0; node != NULL && i < node->cfg.max_sessions; i++) {
        k += node->cfg.sessions[i].in_use;
    }
    return k;
}
