/*
 * The fault-injecting socket wrapper (sprig/fault.h). It sits in front of any socket, takes
 * over its callback, and misbehaves on the send path only; everything else passes through.
 *
 * How it works
 *  - Randomness is xorshift32 from cfg.seed; a probability that is 0 draws nothing, so a given
 *    seed and config always produce the same faults.
 *  - Per send, in this order: a stall (all types), then for DGRAM drop, duplicate, corrupt,
 *    reorder, and for DGRAM/SEQPACKET a delay. A message that needs holding or changing is
 *    copied into a buffer from `pool`, with its release time and destination kept in that
 *    buffer's headroom. If the pool cannot take it the message goes out at once, unharmed
 *    (SEQPACKET: unless older messages are still held; then the send is UNAVAILABLE, since
 *    overtaking them would break SEQPACKET's order).
 *  - `held` is sorted by release time (SEQPACKET: release times never decrease, so order is
 *    kept). A reordered datagram waits in `reorder` until the next datagram has been sent, or
 *    at most max(delay_max, 1 ms). A duplicate is an extra copy that is delayed on its own.
 *  - If the inner socket refuses a due message (UNAVAILABLE) it stays at the head of `held`,
 *    the wrapper is `blocked` and answers UNAVAILABLE until the inner WRITABLE lets it go on.
 *  - A stall answers UNAVAILABLE for stall_time; the timer then ends it and WRITABLE follows.
 *  - shutdown waits for held messages to go out; close sends what is still held at once (best
 *    effort, as an orderly close would), frees the rest and closes the inner socket.
 */
#include "sprig/fault.h"

#include <stdbool.h>
#include <string.h>

#define DEFAULT_SEED     0x2545f491u
#define REORDER_MIN_HOLD SPRIG_TIME_MS(1)
#define FAULT_EV_CLOSED  0x08u

/* What a held buffer remembers, kept in its headroom (memcpy'd: no alignment assumptions). */
typedef struct hold_meta {
    sprig_time deadline;
    sprig_addr to;
    bool has_to;
} hold_meta;

#define META_ROOM ((sizeof(hold_meta) + 7u) & ~(size_t)7u)

/* The faults drawn for one message. */
typedef struct faults {
    bool dup;
    bool corrupt;
    bool reorder;
} faults;

static const sprig_sock_ops fault_ops;

static sprig_fault_sock *fault_of(sprig_sock *s)
{
    return (sprig_fault_sock *)s; /* sock is the first member */
}

/* ---- randomness --------------------------------------------------------------------------- */

static uint32_t next_rand(sprig_fault_sock *f)
{
    uint32_t x = f->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    f->rng = x;
    return x;
}

static bool roll(sprig_fault_sock *f, uint16_t per_mille)
{
    return per_mille > 0 && next_rand(f) % 1000u < per_mille;
}

static bool delay_on(const sprig_fault_sock *f)
{
    return f->cfg.delay_min > 0 || f->cfg.delay_max > 0;
}

static sprig_time random_delay(sprig_fault_sock *f)
{
    sprig_time lo = f->cfg.delay_min;
    sprig_time hi = f->cfg.delay_max > lo ? f->cfg.delay_max : lo;
    sprig_time span = hi - lo;
    if (span == 0) {
        return lo;
    }
    uint64_t r = ((uint64_t)next_rand(f) << 32) | next_rand(f);
    return lo + (span == UINT64_MAX ? r : r % (span + 1));
}

/* ---- held buffers ------------------------------------------------------------------------- */

static hold_meta meta_get(const sprig_buf *b)
{
    hold_meta m;
    memcpy(&m, b->mem, sizeof(m));
    return m;
}

static void meta_put(sprig_buf *b, const hold_meta *m)
{
    memcpy(b->mem, m, sizeof(*m));
}

static sprig_time deadline_of(const sprig_buf *b)
{
    return meta_get(b).deadline;
}

static void set_deadline(sprig_buf *b, sprig_time deadline)
{
    hold_meta m = meta_get(b);
    m.deadline = deadline;
    meta_put(b, &m);
}

/* A copy of the message in a pool buffer; NULL if the pool is missing, empty or too small. */
static sprig_buf *hold_copy(sprig_fault_sock *f, const void *data, size_t len, const sprig_addr *to)
{
    if (f->pool == NULL || f->pool->buf_size < META_ROOM + len) {
        return NULL;
    }
    sprig_buf *b = sprig_buf_alloc(f->pool, META_ROOM);
    if (b == NULL) {
        return NULL;
    }
    (void)sprig_buf_append(b, data, len);
    hold_meta m = {.deadline = 0, .has_to = to != NULL};
    if (to != NULL) {
        m.to = *to;
    }
    meta_put(b, &m);
    return b;
}

static sprig_buf *copy_held(sprig_fault_sock *f, const sprig_buf *b)
{
    hold_meta m = meta_get(b);
    return hold_copy(f, sprig_buf_data(b), b->len, m.has_to ? &m.to : NULL);
}

/* Insert by release time, after any with the same time (FIFO among equals). */
static void held_insert(sprig_buf_queue *q, sprig_buf *b)
{
    sprig_time deadline = deadline_of(b);
    sprig_buf **pp = &q->head;
    while (*pp != NULL && deadline_of(*pp) <= deadline) {
        pp = &(*pp)->next;
    }
    b->next = *pp;
    *pp = b;
    if (b->next == NULL) {
        q->tail = b;
    }
    q->count++;
    q->bytes += b->len;
}

static sprig_status send_held(sprig_fault_sock *f, const sprig_buf *b)
{
    hold_meta m = meta_get(b);
    if (m.has_to) {
        return sprig_sock_send_to(f->inner, sprig_buf_data(b), b->len, &m.to);
    }
    return sprig_sock_send(f->inner, sprig_buf_data(b), b->len, NULL);
}

/* Send the held messages due at `now`, in order. Returns true if any left the queue. */
static bool release_due(sprig_fault_sock *f, sprig_time now)
{
    bool released = false;
    sprig_buf *b;
    while (!f->blocked && (b = sprig_buf_queue_peek(&f->held)) != NULL && deadline_of(b) <= now) {
        if (send_held(f, b) == SPRIG_STATUS_UNAVAILABLE) {
            f->blocked = 1; /* keep it; the inner WRITABLE resumes */
            break;
        }
        /* Sent, or refused for good (peer gone, socket dead): either way it is done. */
        sprig_buf_free(sprig_buf_queue_pop(&f->held));
        released = true;
    }
    if (f->shut_pending && f->held.count == 0) {
        f->shut_pending = 0;
        (void)sprig_sock_shutdown(f->inner);
    }
    return released;
}

static void arm_timer(sprig_fault_sock *f)
{
    sprig_time next = f->stalled ? f->stall_until : SPRIG_TIME_NEVER;
    if (f->held.head != NULL && !f->blocked && deadline_of(f->held.head) < next) {
        next = deadline_of(f->held.head);
    }
    if (f->reorder != NULL && deadline_of(f->reorder) < next) {
        next = deadline_of(f->reorder);
    }
    if (next == SPRIG_TIME_NEVER) {
        sprig_timer_stop(f->sock.loop, &f->timer);
    } else {
        sprig_timer_start_at(f->sock.loop, &f->timer, next);
    }
}

/* Queue a copy for release: after a random delay if delays are on, else right away. */
static void place(sprig_fault_sock *f, sprig_buf *b, sprig_time now)
{
    sprig_time deadline = now;
    if (delay_on(f)) {
        deadline = sprig_time_add(now, random_delay(f));
        f->stats.delayed++;
    }
    if (f->sock.type == SPRIG_SOCK_SEQPACKET && f->held.tail != NULL &&
        deadline_of(f->held.tail) > deadline) {
        deadline = deadline_of(f->held.tail); /* never overtake: SEQPACKET keeps order */
    }
    set_deadline(b, deadline);
    held_insert(&f->held, b);
}

static void drop_all_held(sprig_fault_sock *f)
{
    sprig_buf_queue_clear(&f->held);
    sprig_buf_free(f->reorder);
    f->reorder = NULL;
    f->blocked = 0;
    f->shut_pending = 0;
}

/* ---- the send path ------------------------------------------------------------------------ */

/* UNAVAILABLE while stalled or blocked, or when a new stall starts with this send. */
static sprig_status gate(sprig_fault_sock *f)
{
    if (f->stalled || f->blocked) {
        return SPRIG_STATUS_UNAVAILABLE;
    }
    if (roll(f, f->cfg.stall_pm)) {
        f->stalled = 1;
        f->stats.stalls++;
        f->stall_until = sprig_time_add(sprig_loop_now(f->sock.loop), f->cfg.stall_time);
        arm_timer(f);
        return SPRIG_STATUS_UNAVAILABLE;
    }
    return SPRIG_STATUS_OK;
}

static faults draw_faults(sprig_fault_sock *f)
{
    faults fl = {false, false, false};
    if (f->sock.type != SPRIG_SOCK_DGRAM) {
        return fl; /* SEQPACKET promises delivery and order: delays only */
    }
    fl.dup = roll(f, f->cfg.dup_pm);
    fl.corrupt = roll(f, f->cfg.corrupt_pm);
    fl.reorder = roll(f, f->cfg.reorder_pm) && f->reorder == NULL;
    return fl;
}

static void flip_random_bit(sprig_fault_sock *f, sprig_buf *b)
{
    size_t bit = next_rand(f) % (b->len * 8u);
    sprig_buf_data(b)[bit / 8u] ^= (uint8_t)(1u << (bit % 8u));
}

static void apply_faults(sprig_fault_sock *f, sprig_buf *b, faults fl, sprig_time now)
{
    if (fl.corrupt && b->len > 0) {
        flip_random_bit(f, b);
        f->stats.corrupted++;
    }
    sprig_buf *dup = fl.dup ? copy_held(f, b) : NULL;
    if (dup != NULL) {
        f->stats.duplicated++;
    }
    if (fl.reorder) {
        sprig_time hold = f->cfg.delay_max > REORDER_MIN_HOLD ? f->cfg.delay_max : REORDER_MIN_HOLD;
        set_deadline(b, sprig_time_add(now, hold));
        f->reorder = b;
        f->stats.reordered++;
    } else {
        place(f, b, now);
    }
    if (dup != NULL) {
        place(f, dup, now);
    }
}

/* The message as it is, straight to the inner socket (zero-copy for send_buf). */
static sprig_status pass_direct(sprig_fault_sock *f, const void *data, size_t len,
                                const sprig_addr *to, sprig_buf *zc)
{
    if (zc != NULL) {
        return to != NULL ? sprig_sock_send_buf_to(f->inner, zc, to)
                          : sprig_sock_send_buf(f->inner, zc);
    }
    return to != NULL ? sprig_sock_send_to(f->inner, data, len, to)
                      : sprig_sock_send(f->inner, data, len, NULL);
}

/* One DGRAM/SEQPACKET message. zc is the caller's buffer for send_buf (NULL for send); on OK
 * it has been consumed. */
static sprig_status message_send(sprig_fault_sock *f, const void *data, size_t len,
                                 const sprig_addr *to, sprig_buf *zc)
{
    sprig_time now = sprig_loop_now(f->sock.loop);
    if (f->sock.type == SPRIG_SOCK_DGRAM && roll(f, f->cfg.drop_pm)) {
        f->stats.sent++;
        f->stats.dropped++;
        sprig_buf_free(zc);
        return SPRIG_STATUS_OK;
    }
    sprig_buf *waiting = f->reorder; /* goes out after this message */
    faults fl = draw_faults(f);
    bool behind = f->held.count > 0 && f->sock.type == SPRIG_SOCK_SEQPACKET;
    sprig_buf *b = NULL;
    if (fl.dup || fl.corrupt || fl.reorder || delay_on(f) || behind) {
        b = hold_copy(f, data, len, to);
    }
    if (b != NULL) {
        sprig_buf_free(zc);
        apply_faults(f, b, fl, now);
    } else if (behind) {
        return SPRIG_STATUS_UNAVAILABLE; /* cannot hold it and must not overtake */
    } else {
        sprig_status st = pass_direct(f, data, len, to, zc);
        if (st != SPRIG_STATUS_OK) {
            return st;
        }
    }
    f->stats.sent++;
    if (waiting != NULL) {
        f->reorder = NULL;
        place(f, waiting, now);
    }
    (void)release_due(f, now);
    arm_timer(f);
    return SPRIG_STATUS_OK;
}

static sprig_status stream_send(sprig_fault_sock *f, const void *data, size_t len, size_t *out_sent)
{
    size_t n = len;
    if (f->cfg.max_write > 0 && n > f->cfg.max_write) {
        n = f->cfg.max_write;
    }
    sprig_status st = sprig_sock_send(f->inner, data, n, out_sent);
    if (st == SPRIG_STATUS_OK) {
        f->stats.sent++;
        if (n < len) {
            f->stats.short_writes++;
        }
    }
    return st;
}

static sprig_status fault_send(sprig_sock *s, const void *data, size_t len, const sprig_addr *to,
                               size_t *out_sent)
{
    sprig_fault_sock *f = fault_of(s);
    *out_sent = 0;
    sprig_status st = gate(f);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    if (s->type == SPRIG_SOCK_STREAM) {
        return stream_send(f, data, len, out_sent);
    }
    st = message_send(f, data, len, to, NULL);
    if (st == SPRIG_STATUS_OK) {
        *out_sent = len;
    }
    return st;
}

static sprig_status fault_send_buf(sprig_sock *s, sprig_buf *buf, const sprig_addr *to)
{
    sprig_fault_sock *f = fault_of(s);
    sprig_status st = gate(f);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    if (s->type != SPRIG_SOCK_STREAM) {
        return message_send(f, sprig_buf_data(buf), buf->len, to, buf);
    }
    /* A STREAM buffer goes whole or not at all, so it is never a short write. */
    st = sprig_sock_send_buf(f->inner, buf);
    if (st == SPRIG_STATUS_OK) {
        f->stats.sent++;
    }
    return st;
}

static sprig_status fault_alloc_tx(sprig_sock *s, size_t len, sprig_buf **out)
{
    return sprig_sock_alloc_tx(fault_of(s)->inner, len, out);
}

/* ---- pass-through ------------------------------------------------------------------------- */

static sprig_status fault_recv(sprig_sock *s, void *buf, size_t cap, size_t *out_len,
                               sprig_addr *from)
{
    sprig_sock *inner = fault_of(s)->inner;
    if (from != NULL) {
        return sprig_sock_recv_from(inner, buf, cap, out_len, from);
    }
    return sprig_sock_recv(inner, buf, cap, out_len);
}

static sprig_status fault_accept(sprig_sock *listener, sprig_sock **out)
{
    return sprig_sock_accept(fault_of(listener)->inner, out);
}

static sprig_status fault_shutdown(sprig_sock *s)
{
    sprig_fault_sock *f = fault_of(s); /* never DGRAM, so nothing waits in `reorder` */
    if (f->held.count > 0) {
        f->shut_pending = 1; /* after the held messages, from release_due() */
        return SPRIG_STATUS_OK;
    }
    return sprig_sock_shutdown(f->inner);
}

static void fault_close(sprig_sock *s)
{
    sprig_fault_sock *f = fault_of(s);
    sprig_timer_stop(s->loop, &f->timer);
    sprig_loop_cancel(s->loop, &f->task);
    f->pending = 0;
    if (f->reorder != NULL) {
        held_insert(&f->held, f->reorder);
        f->reorder = NULL;
    }
    /* Orderly close: what the user was told is sent goes out now, as far as the inner takes it. */
    f->blocked = 0;
    (void)release_due(f, SPRIG_TIME_NEVER);
    drop_all_held(f);
    sprig_sock_close(f->inner);
    f->inner = NULL;
    s->state = SPRIG_SOCK_STATE_CLOSED;
}

static sprig_status fault_addr(const sprig_sock *s, bool peer, sprig_addr *out)
{
    const sprig_fault_sock *f = (const sprig_fault_sock *)s;
    return peer ? sprig_sock_peer_addr(f->inner, out) : sprig_sock_local_addr(f->inner, out);
}

static const sprig_sock_ops fault_ops = {
    .name = "fault",
    .send = fault_send,
    .send_iov = NULL, /* the generic layer sends the pieces through fault_send */
    .send_buf = fault_send_buf,
    .alloc_tx = fault_alloc_tx,
    .recv = fault_recv,
    .accept = fault_accept,
    .shutdown = fault_shutdown,
    .close = fault_close,
    .addr = fault_addr,
};

/* ---- events ------------------------------------------------------------------------------- */

/* Inner events reach the user at once (we are in loop context); each case ends with the
 * delivery, because the user's callback may close the wrapper. */
static void inner_event(sprig_sock *inner, sprig_sock_event ev, sprig_status st, void *user)
{
    sprig_fault_sock *f = user;
    (void)inner;
    switch (ev) {
    case SPRIG_SOCK_EV_WRITABLE:
        f->blocked = 0;
        (void)release_due(f, f->sock.loop->now);
        arm_timer(f);
        if (!f->blocked && !f->stalled) {
            sprig__sock_event(&f->sock, ev, SPRIG_STATUS_OK);
        }
        return;
    case SPRIG_SOCK_EV_CLOSED:
        sprig_timer_stop(f->sock.loop, &f->timer);
        drop_all_held(f); /* nowhere to send them any more */
        f->stalled = 0;
        sprig__sock_event(&f->sock, ev, st);
        return;
    case SPRIG_SOCK_EV_CONNECTED:
    case SPRIG_SOCK_EV_READABLE:
    default:
        sprig__sock_event(&f->sock, ev, st);
        return;
    }
}

static void on_timer(sprig_timer *t, void *arg)
{
    sprig_fault_sock *f = arg;
    sprig_time now = f->sock.loop->now;
    bool stall_ended = false;
    (void)t;
    if (f->stalled && now >= f->stall_until) {
        f->stalled = 0;
        stall_ended = true;
    }
    if (f->reorder != NULL && deadline_of(f->reorder) <= now) {
        sprig_buf *b = f->reorder; /* no next message came in time */
        f->reorder = NULL;
        set_deadline(b, now);
        held_insert(&f->held, b);
    }
    bool released = release_due(f, now);
    arm_timer(f);
    if ((stall_ended || released) && !f->stalled && !f->blocked &&
        f->sock.state == SPRIG_SOCK_STATE_OPEN) {
        sprig__sock_event(&f->sock, SPRIG_SOCK_EV_WRITABLE, SPRIG_STATUS_OK); /* last */
    }
}

/* Wrapping a socket whose CLOSED was already delivered: tell the wrapper's user too. */
static void run_pending(void *arg)
{
    sprig_fault_sock *f = arg;
    if (f->pending & FAULT_EV_CLOSED) {
        f->pending = 0;
        sprig__sock_event(&f->sock, SPRIG_SOCK_EV_CLOSED, f->sock.status);
    }
}

sprig_status sprig_fault_init(sprig_fault_sock *f, sprig_sock *inner, const sprig_fault_cfg *cfg,
                              sprig_buf_pool *pool)
{
    if (f == NULL || inner == NULL || cfg == NULL || inner->loop == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(f, 0, sizeof(*f));
    sprig__sock_init(&f->sock, &fault_ops, inner->loop, (sprig_sock_type)inner->type,
                     (sprig_sock_state)inner->state);
    f->sock.tx_pool = inner->tx_pool;
    f->sock.headroom = inner->headroom;
    f->sock.max_message = inner->max_message;
    f->sock.flags = inner->flags & (SPRIG_SOCK_F_SHUT_WR | SPRIG_SOCK_F_RD_DONE);
    f->sock.status = inner->status;
    f->inner = inner;
    f->cfg = *cfg;
    f->pool = pool;
    f->rng = cfg->seed != 0 ? cfg->seed : DEFAULT_SEED;
    sprig_buf_queue_init(&f->held);
    sprig_timer_init(&f->timer, on_timer, f);
    sprig_task_init(&f->task, run_pending, f);
    sprig_sock_set_callback(inner, inner_event, f);
    if (inner->flags & SPRIG_SOCK_F_CLOSED_SENT) {
        f->pending = FAULT_EV_CLOSED;
        sprig_loop_defer(f->sock.loop, &f->task);
    }
    return SPRIG_STATUS_OK;
}
