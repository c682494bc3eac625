/* stream.c — the netstack STREAM transport as a socket backend (see sprig/ns_stream.h). */
#include <stddef.h>
#include <string.h>

#include "sprig/ns_stream.h"

enum { ST_FREE, ST_LISTEN, ST_SYN_SENT, ST_SYN_RCVD, ST_EST, ST_DONE };
enum {
    B_USER = 1,      /* the user holds the socket */
    B_TXFIN = 2,     /* FIN wanted after the queued data */
    B_FINACKED = 4,  /* our FIN was acknowledged */
    B_RXFIN = 8,     /* the peer's FIN was received */
    B_ACKNOW = 16,   /* an ACK is owed */
    B_TIMING = 32,   /* rtt_seq/rtt_start time a segment */
    B_RTT_SEEN = 64, /* srtt/rttvar hold a sample */
    B_FRAMED = 128,  /* listener: accepted connections are wrapped for SEQPACKET */
};
enum { PEND_CONNECTED = 1, PEND_READABLE = 2, PEND_WRITABLE = 4, PEND_CLOSED = 8, PEND_ACK = 16 };

#define TXB     (c->be->cfg.tx_buf)
#define RXB     (c->be->cfg.rx_buf)
#define HLEN    SPRIG_NS_STREAM_HEADER_LEN
#define PROTO   SPRIG_NS_PROTO_STREAM
#define KICK_US SPRIG_TIME_MS(1)

static bool seq_lt(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) < 0;
}

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}
static uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)rd16(p) << 16) | rd16(p + 2);
}
static void wr16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static void wr32(uint8_t *p, uint32_t v)
{
    wr16(p, v >> 16);
    wr16(p + 2, v);
}

/* ---- wire ------------------------------------------------------------------------------------ */

sprig_status sprig_ns_stream_parse(const sprig_ns_header *ip, const uint8_t *seg, size_t len,
                                   sprig_ns_stream_hdr *out)
{
    if (seg == NULL || len < HLEN) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (sprig_ns_csum(ip->src, ip->dst, PROTO, seg, len) != 0) {
        return SPRIG_STATUS_DATA_LOSS;
    }
    out->src_port = rd16(seg);
    out->dst_port = rd16(seg + 2);
    out->seq = rd32(seg + 4);
    out->ack = rd32(seg + 8);
    out->flags = seg[12];
    out->shift = seg[13];
    out->window = rd16(seg + 16);
    if (out->src_port == 0 || out->dst_port == 0 || (out->flags & 0xE0u) != 0 || out->shift > 14) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    return SPRIG_STATUS_OK;
}

void sprig_ns_stream_emit(const sprig_ns_header *ip, const sprig_ns_stream_hdr *h, uint8_t *seg,
                          size_t len)
{
    wr16(seg, h->src_port);
    wr16(seg + 2, h->dst_port);
    wr32(seg + 4, h->seq);
    wr32(seg + 8, h->ack);
    seg[12] = h->flags;
    seg[13] = h->shift;
    wr16(seg + 14, 0);
    wr16(seg + 16, h->window);
    uint16_t c = sprig_ns_csum(ip->src, ip->dst, PROTO, seg, len);
    wr16(seg + 14, c == 0 ? 0xFFFFu : c);
}

/* ---- helpers ------------------------------------------------------------------------------- */

/* n bytes between a ring of `size` bytes at offset at (taken modulo size) and flat memory:
 * into the ring when in is true (flat is then only read), out of it otherwise. */
static void ring_copy(uint8_t *ring, uint32_t size, uint32_t at, uint8_t *flat, uint32_t n, bool in)
{
    at %= size;
    uint32_t first = size - at < n ? size - at : n;
    memcpy(in ? ring + at : flat, in ? flat : ring + at, first);
    memcpy(in ? ring : flat + first, in ? flat + first : ring, n - first);
}

static sprig_ns_conn *conn_of(const sprig_sock *s)
{
    return SPRIG_CONTAINER_OF(s, sprig_ns_conn, sock);
}

static uint32_t now_of(const sprig_ns_stream_backend *be)
{
    return (uint32_t)sprig_loop_now(be->loop);
}

static sprig_ns_conn *find(sprig_ns_stream_backend *be, uint16_t lport, uint16_t node,
                           uint16_t port)
{
    sprig_ns_conn *listener = NULL;
    for (size_t i = 0; i < be->nconns; i++) {
        sprig_ns_conn *c = &be->conns[i];
        if (c->state == ST_FREE || c->lport != lport) {
            continue;
        }
        if (c->state == ST_LISTEN) {
            listener = c;
        } else if (c->peer_node == node && c->peer_port == port) {
            return c;
        }
    }
    return listener;
}

static bool port_used(sprig_ns_stream_backend *be, uint16_t port)
{
    for (size_t i = 0; i < be->nconns; i++) {
        if (be->conns[i].state != ST_FREE && be->conns[i].lport == port) {
            return true;
        }
    }
    return false;
}

static uint16_t ephemeral(sprig_ns_stream_backend *be)
{
    for (uint32_t tries = 0; tries < 65536u - SPRIG_NS_EPHEMERAL_FIRST; tries++) {
        uint16_t p = be->next_port;
        be->next_port = p == 0xFFFFu ? (uint16_t)SPRIG_NS_EPHEMERAL_FIRST : (uint16_t)(p + 1);
        if (!port_used(be, p)) {
            return p;
        }
    }
    return 0;
}

static uint32_t new_isn(sprig_ns_stream_backend *be)
{
    if (be->cfg.entropy != NULL) {
        return be->cfg.entropy(be->cfg.entropy_arg);
    }
    /* xorshift32 seeded by node id and time: not secret, only distinct across incarnations */
    uint32_t x = be->isn_state ^ (uint32_t)now_of(be);
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    be->isn_state = x != 0 ? x : 0x2545F491u;
    return be->isn_state;
}

static uint32_t rx_free(const sprig_ns_conn *c)
{
    return RXB - c->rx_len;
}

/* Bytes send may accept now: room in the ring and in the peer's window. */
static uint32_t tx_room(const sprig_ns_conn *c)
{
    uint32_t w = c->snd_wnd > c->tx_len ? c->snd_wnd - c->tx_len : 0;
    return TXB - c->tx_len < w ? TXB - c->tx_len : w;
}

/* ---- events -------------------------------------------------------------------------------- */

static sprig_status send_seg(sprig_ns_conn *c, uint32_t seq, uint8_t flags, uint32_t off,
                             uint32_t n);

static void run_task(void *arg)
{
    sprig_ns_conn *c = arg;
    uint8_t pend = c->pending;
    c->pending = 0;
    /* the owed ACK, unless a data segment took it along or the connection failed */
    if ((pend & PEND_ACK) && (c->bits & B_ACKNOW) && c->state >= ST_EST &&
        c->fail == SPRIG_STATUS_OK && send_seg(c, c->snd_nxt, 0, 0, 0) != SPRIG_STATUS_OK) {
        sprig_timer_start(c->be->loop, &c->kick, KICK_US);
    }
    /* PEND bit i is event i + 1: CONNECTED, READABLE, WRITABLE, CLOSED */
    for (unsigned i = 0; i < 4; i++) {
        if ((pend & (1u << i)) && (c->bits & B_USER)) {
            sprig__sock_event(&c->sock, (sprig_sock_event)(SPRIG_SOCK_EV_CONNECTED + i),
                              i == 3 ? c->fail : SPRIG_STATUS_OK);
        }
    }
}

static void post(sprig_ns_conn *c, uint8_t what)
{
    if (c->bits & B_USER) {
        c->pending |= what;
        sprig_loop_defer(c->be->loop, &c->task);
    }
}

static void stop_timers(sprig_ns_conn *c)
{
    sprig_loop *loop = c->be->loop;
    sprig_timer_stop(loop, &c->rtx);
    sprig_timer_stop(loop, &c->kick);
    sprig_timer_stop(loop, &c->ka);
}

static void release(sprig_ns_conn *c)
{
    sprig_loop_cancel(c->be->loop, &c->task);
    stop_timers(c);
    c->state = ST_FREE;
    c->bits = 0;
    c->pending = 0;
    c->parent = NULL;
}

/* The connection is dead with `st`. A user socket is told (CLOSED); otherwise it is freed. */
static void die(sprig_ns_conn *c, sprig_status st)
{
    if (!(c->bits & B_USER) || c->parent != NULL) {
        release(c);
        return;
    }
    stop_timers(c);
    c->state = ST_DONE;
    if (st != SPRIG_STATUS_OK) {
        c->rx_len = 0; /* after an error, data is gone (sock.h) */
        sprig__sock_set_dead(&c->sock, st);
    }
    c->fail = st;
    post(c, PEND_CLOSED);
}

/* ---- output -------------------------------------------------------------------------------- */

/* Build and send one segment: header *h + n bytes of a ring from offset at. */
static sprig_status xmit(sprig_ns_stream_backend *be, uint16_t dst, const sprig_ns_stream_hdr *h,
                         const uint8_t *ring, uint32_t size, uint32_t at, uint32_t n)
{
    sprig_buf *b = sprig_buf_alloc(be->pool, SPRIG_NS_NET_HEADROOM);
    uint8_t *p = b != NULL ? sprig_buf_put(b, (size_t)HLEN + n) : NULL;
    if (p == NULL) {
        sprig_buf_free(b);
        return SPRIG_STATUS_UNAVAILABLE;
    }
    ring_copy((uint8_t *)(uintptr_t)ring, size, at, p + HLEN, n, false);
    sprig_ns_header ip = {.src = sprig_ns_node_id(be->node), .dst = dst};
    sprig_ns_stream_emit(&ip, h, p, (size_t)HLEN + n);
    be->stats.tx++;
    /* data and FIN share a class (a FIN must not overtake data); the rest goes first */
    bool ordered = n > 0 || (h->flags & SPRIG_NS_STREAM_FIN);
    return sprig_ns_node_send(be->node, b, dst, PROTO, ordered ? be->cfg.tc : SPRIG_NS_TC_CONTROL);
}

/* A segment of connection c: n bytes of the send ring from offset off (from snd_una). */
static sprig_status send_seg(sprig_ns_conn *c, uint32_t seq, uint8_t flags, uint32_t off,
                             uint32_t n)
{
    sprig_ns_stream_backend *be = c->be;
    if (c->state != ST_SYN_SENT) {
        flags |= SPRIG_NS_STREAM_ACK;
    }
    uint32_t wnd = rx_free(c) >> be->shift;
    wnd = wnd > 0xFFFFu ? 0xFFFFu : wnd;
    c->rx_adv = wnd << be->shift;
    sprig_ns_stream_hdr h = {.src_port = c->lport,
                             .dst_port = c->peer_port,
                             .seq = seq,
                             .ack = c->rcv_nxt,
                             .flags = flags,
                             .shift = (flags & SPRIG_NS_STREAM_SYN) ? be->shift : 0,
                             .window = (uint16_t)wnd};
    sprig_status st = xmit(be, c->peer_node, &h, c->tx, TXB, c->tx_head + off, n);
    if (st == SPRIG_STATUS_OK) {
        c->bits &= (uint8_t)~B_ACKNOW;
    }
    return st;
}

static void arm_rtx(sprig_ns_conn *c)
{
    if (!sprig_timer_armed(&c->rtx)) {
        sprig_timer_start(c->be->loop, &c->rtx, c->rto);
    }
}

static void output(sprig_ns_conn *c)
{
    if (c->state == ST_SYN_SENT || c->state == ST_SYN_RCVD) {
        arm_rtx(c);
        return;
    }
    if (c->state == ST_EST) {
        for (;;) {
            uint32_t off = c->snd_nxt - c->snd_una;
            uint32_t wnd_end = c->snd_una + c->snd_wnd;
            uint32_t usable = seq_lt(c->snd_nxt, wnd_end) ? wnd_end - c->snd_nxt : 0;
            uint32_t n = 0;
            uint8_t fl = 0;
            if (off < c->tx_len) {
                n = c->tx_len - off;
                n = n < c->mss ? n : c->mss;
                n = n < usable ? n : usable;
                if (n == 0) {
                    break; /* window closed: the persist timer probes */
                }
            }
            if ((c->bits & B_TXFIN) && off + n == c->tx_len && !(c->bits & B_FINACKED)) {
                fl = SPRIG_NS_STREAM_FIN;
            }
            if (n == 0 && (fl == 0 || off > c->tx_len)) {
                break; /* nothing (more) to send */
            }
            if (send_seg(c, c->snd_nxt, fl, off, n) != SPRIG_STATUS_OK) {
                sprig_timer_start(c->be->loop, &c->kick, KICK_US);
                break;
            }
            uint32_t end = c->snd_nxt + n + (fl ? 1u : 0u);
            if (!(c->bits & B_TIMING) && !seq_lt(c->snd_nxt, c->snd_max)) {
                c->bits |= B_TIMING;
                c->rtt_seq = end;
                c->rtt_start = now_of(c->be);
            }
            c->snd_nxt = end;
            if (seq_lt(c->snd_max, end)) {
                c->snd_max = end;
            }
        }
        if (c->snd_una != c->snd_max ||
            (c->snd_wnd == 0 && (c->tx_len > 0 || (c->bits & B_TXFIN)) &&
             !(c->bits & B_FINACKED))) {
            arm_rtx(c); /* retransmission, or persist (zero window) */
        }
    }
    if (c->bits & B_ACKNOW) {
        /* A pure ACK waits for the task: what arrives in the same loop pass shares it. */
        c->pending |= PEND_ACK;
        sprig_loop_defer(c->be->loop, &c->task);
    }
}

static void on_kick(sprig_timer *t, void *arg)
{
    (void)t;
    output(arg);
}

/* Orderly end: both FINs done. */
static void check_done(sprig_ns_conn *c)
{
    if (c->state != ST_EST || (c->bits & (B_FINACKED | B_RXFIN)) != (B_FINACKED | B_RXFIN)) {
        return;
    }
    sprig_timer_stop(c->be->loop, &c->ka);
    c->state = ST_DONE;
    c->fail = SPRIG_STATUS_OK;
    post(c, PEND_CLOSED);
    /* linger to re-acknowledge a retransmitted FIN, then free if the user let go */
    sprig_timer_start(c->be->loop, &c->rtx, 2 * c->rto);
}

static void send_syn(sprig_ns_conn *c)
{
    uint8_t fl = SPRIG_NS_STREAM_SYN;
    if (send_seg(c, c->iss, fl, 0, 0) != SPRIG_STATUS_OK) {
        sprig_timer_start(c->be->loop, &c->kick, KICK_US);
    }
}

static void backoff(sprig_ns_conn *c)
{
    c->rto = c->rto > c->be->cfg.rto_max / 2 ? c->be->cfg.rto_max : c->rto * 2;
    c->bits &= (uint8_t)~B_TIMING; /* Karn */
}

static void on_rtx(sprig_timer *t, void *arg)
{
    (void)t;
    sprig_ns_conn *c = arg;
    sprig_ns_stream_backend *be = c->be;
    if (c->state == ST_DONE || (c->bits & (B_USER | B_FINACKED)) == B_FINACKED) {
        if (!(c->bits & B_USER)) {
            release(c); /* linger over, or an orphan's peer never sent its FIN */
        }
        return;
    }
    if (++c->retries > be->cfg.max_retries) {
        if (c->state == ST_EST) {
            c->bits |= B_ACKNOW;
            (void)send_seg(c, c->snd_max, SPRIG_NS_STREAM_RST, 0, 0);
        }
        die(c, c->state == ST_SYN_SENT ? SPRIG_STATUS_DEADLINE_EXCEEDED : SPRIG_STATUS_ABORTED);
        return;
    }
    backoff(c);
    if (c->state != ST_EST) {
        send_syn(c);
        arm_rtx(c);
        return;
    }
    if (c->snd_una != c->snd_max) {
        be->stats.rtx++;
        c->snd_nxt = c->snd_una; /* go back N */
        c->dupacks = 0;
    }
    if (c->snd_wnd == 0) {
        (void)send_seg(c, c->snd_nxt, SPRIG_NS_STREAM_PROBE, 0, 0); /* zero-window probe */
    }
    output(c);
    arm_rtx(c);
}

static void on_ka(sprig_timer *t, void *arg)
{
    (void)t;
    sprig_ns_conn *c = arg;
    sprig_ns_stream_backend *be = c->be;
    uint32_t idle = now_of(be) - c->last_rx;
    if (c->ka_miss == 0 && idle < be->cfg.keepalive_idle) {
        sprig_timer_start(be->loop, &c->ka, be->cfg.keepalive_idle - idle);
        return;
    }
    if (c->ka_miss >= be->cfg.keepalive_count) {
        die(c, SPRIG_STATUS_ABORTED);
        return;
    }
    c->ka_miss++;
    (void)send_seg(c, c->snd_nxt, SPRIG_NS_STREAM_PROBE, 0, 0);
    sprig_timer_start(be->loop, &c->ka, be->cfg.keepalive_interval);
}

static void rtt_sample(sprig_ns_conn *c);

/* The handshake completed (the SYN, never retransmitted if B_TIMING is still set, timed). */
static void established(sprig_ns_conn *c, const sprig_ns_stream_hdr *h)
{
    if (c->bits & B_TIMING) {
        rtt_sample(c);
    }
    c->state = ST_EST;
    c->snd_una = c->snd_nxt = c->snd_max = c->iss + 1;
    c->snd_wnd = (uint32_t)h->window << c->peer_shift;
    c->retries = 0;
    sprig_timer_stop(c->be->loop, &c->rtx);
    if (c->be->cfg.keepalive_idle > 0) {
        sprig_timer_start(c->be->loop, &c->ka, c->be->cfg.keepalive_idle);
    }
}

/* ---- input --------------------------------------------------------------------------------- */

/* RFC 6298 (2.3): RTO = SRTT + max(G, 4 * RTTVAR), clamped to the configured bounds. */
static void rto_from_estimate(sprig_ns_conn *c)
{
    const sprig_ns_stream_cfg *cfg = &c->be->cfg;
    uint32_t rto = c->srtt + (4 * c->rttvar > 1 ? 4 * c->rttvar : 1);
    c->rto = rto < cfg->rto_min ? cfg->rto_min : rto > cfg->rto_max ? cfg->rto_max : rto;
}

static void rtt_sample(sprig_ns_conn *c)
{
    uint32_t r = now_of(c->be) - c->rtt_start;
    c->bits &= (uint8_t)~B_TIMING;
    if (!(c->bits & B_RTT_SEEN)) {
        c->bits |= B_RTT_SEEN;
        c->srtt = r;
        c->rttvar = r / 2;
    } else {
        uint32_t d = c->srtt > r ? c->srtt - r : r - c->srtt;
        c->rttvar = (3 * c->rttvar + d) / 4;
        c->srtt = (7 * c->srtt + r) / 8;
    }
    rto_from_estimate(c);
}

static void send_rst(sprig_ns_stream_backend *be, const sprig_ns_header *ip,
                     const sprig_ns_stream_hdr *h, size_t plen)
{
    if ((h->flags & SPRIG_NS_STREAM_RST) || ip->dst == SPRIG_NS_NODE_BROADCAST) {
        return;
    }
    sprig_ns_stream_hdr r = {.src_port = h->dst_port, .dst_port = h->src_port};
    if (h->flags & SPRIG_NS_STREAM_ACK) {
        r.seq = h->ack;
        r.flags = SPRIG_NS_STREAM_RST;
    } else {
        r.ack = h->seq + (uint32_t)plen + ((h->flags & SPRIG_NS_STREAM_SYN) ? 1u : 0u) +
                ((h->flags & SPRIG_NS_STREAM_FIN) ? 1u : 0u);
        r.flags = SPRIG_NS_STREAM_RST | SPRIG_NS_STREAM_ACK;
    }
    be->stats.rst_sent++;
    (void)xmit(be, ip->src, &r, (const uint8_t *)h, 1, 0, 0);
}

/* A SYN for a listener: a new connection in SYN_RCVD (dropped when the pool is empty). */
static void passive_open(sprig_ns_conn *l, const sprig_ns_header *ip, const sprig_ns_stream_hdr *h);

/* An orphan whose FIN is acknowledged waits at most rto_max for the peer's FIN. */
static void orphan_wait(sprig_ns_conn *c)
{
    if ((c->bits & (B_USER | B_FINACKED | B_RXFIN)) == B_FINACKED && !sprig_timer_armed(&c->rtx)) {
        sprig_timer_start(c->be->loop, &c->rtx, c->be->cfg.rto_max);
    }
}

static void ack_in(sprig_ns_conn *c, const sprig_ns_stream_hdr *h, size_t plen)
{
    uint32_t old_wnd = c->snd_wnd;
    if (seq_lt(c->snd_una, h->ack) && !seq_lt(c->snd_max, h->ack)) {
        uint32_t acked = h->ack - c->snd_una;
        if (acked > c->tx_len) { /* our FIN is acknowledged */
            c->bits |= B_FINACKED;
            acked = c->tx_len;
        }
        c->tx_head = (c->tx_head + acked) % TXB;
        c->tx_len -= acked;
        c->snd_una = h->ack;
        if (seq_lt(c->snd_nxt, c->snd_una)) {
            c->snd_nxt = c->snd_una;
        }
        if ((c->bits & B_TIMING) && !seq_lt(h->ack, c->rtt_seq)) {
            rtt_sample(c);
        } else if (c->bits & B_RTT_SEEN) {
            /* New data acknowledged: the path works again. Karn forbids a sample from a
             * retransmitted segment, not collapsing the backoff; keeping it would make every
             * later loss wait for an ever longer timeout. */
            rto_from_estimate(c);
        }
        c->retries = 0;
        c->dupacks = 0;
        sprig_timer_stop(c->be->loop, &c->rtx);
    } else if (h->ack == c->snd_una) {
        c->retries = 0; /* the peer is alive (probe answered) */
        if (plen == 0 && !(h->flags & (SPRIG_NS_STREAM_FIN | SPRIG_NS_STREAM_PROBE)) &&
            c->snd_una != c->snd_max && ((uint32_t)h->window << c->peer_shift) == old_wnd &&
            c->last_rx - c->frtx_at > 2 * c->srtt && ++c->dupacks == 3) {
            /* Fast retransmit, going back N. The receiver keeps one range after the hole, so
             * the ACK for the resent hole jumps over it and ends the go-back early. Duplicate
             * ACKs for 2 SRTT after this are not counted: the resent segments it already had
             * cause them. */
            c->be->stats.fast_rtx++;
            c->frtx_at = c->last_rx; /* now (conn_input set it) */
            c->bits &= (uint8_t)~B_TIMING;
            c->snd_nxt = c->snd_una;
            output(c);
        }
    } else {
        return; /* old or impossible ack: no window update */
    }
    c->snd_wnd = (uint32_t)h->window << c->peer_shift;
    if (old_wnd == 0 && c->snd_wnd > 0) {
        sprig_timer_stop(c->be->loop, &c->rtx); /* persist over */
    }
    if (tx_room(c) > 0 && (c->sock.flags & SPRIG_SOCK_F_WANT_WRITABLE)) {
        post(c, PEND_WRITABLE);
    }
    orphan_wait(c);
}

/* Copy n bytes into the receive ring, off bytes after rcv_nxt's place. */
static void rx_put(sprig_ns_conn *c, uint32_t off, const uint8_t *data, uint32_t n)
{
    ring_copy(c->rx, RXB, c->rx_head + c->rx_len + off, (uint8_t *)(uintptr_t)data, n, true);
}

static void data_in(sprig_ns_conn *c, const sprig_ns_stream_hdr *h, const uint8_t *data,
                    size_t plen)
{
    bool fin = (h->flags & SPRIG_NS_STREAM_FIN) != 0;
    if (plen > 0 || fin || (h->flags & SPRIG_NS_STREAM_PROBE)) {
        c->bits |= B_ACKNOW;
    }
    if ((plen == 0 && !fin) || h->seq != c->rcv_nxt || (c->bits & B_RXFIN)) {
        uint32_t off = h->seq - c->rcv_nxt;
        if (plen > 0 || fin) {
            c->be->stats.ooo++;
        }
        /* Keep one range of out-of-order data (no FIN) in the ring's free space beyond the
         * in-order bytes, grown only at its end: a single loss then costs one segment. */
        if (plen > 0 && !fin && seq_lt(c->rcv_nxt, h->seq) && off + plen <= rx_free(c) &&
            (c->ooo_seq == c->ooo_end || h->seq == c->ooo_end)) {
            if (c->ooo_seq == c->ooo_end) {
                c->ooo_seq = h->seq;
            }
            rx_put(c, off, data, (uint32_t)plen);
            c->ooo_end = h->seq + (uint32_t)plen;
        }
        return;
    }
    if (!(c->bits & B_USER) && c->parent == NULL && plen > 0) {
        (void)send_seg(c, c->snd_nxt, SPRIG_NS_STREAM_RST, 0, 0); /* nobody will read it */
        release(c);
        return;
    }
    uint32_t take = plen < rx_free(c) ? (uint32_t)plen : rx_free(c);
    rx_put(c, 0, data, take);
    c->rx_len += take;
    c->rcv_nxt += take;
    if (c->ooo_seq != c->ooo_end && !seq_lt(c->rcv_nxt, c->ooo_seq)) {
        /* the hole is filled: the kept range joins the in-order bytes */
        if (!fin && seq_lt(c->rcv_nxt, c->ooo_end)) {
            c->rx_len += c->ooo_end - c->rcv_nxt;
            c->rcv_nxt = c->ooo_end;
        }
        c->ooo_seq = c->ooo_end;
    }
    if (fin && take == plen) {
        c->bits |= B_RXFIN;
        c->rcv_nxt++;
    }
    if (take > 0 || (c->bits & B_RXFIN)) {
        post(c, PEND_READABLE);
    }
}

static void conn_input(sprig_ns_conn *c, const sprig_ns_header *ip, const sprig_ns_stream_hdr *h,
                       const uint8_t *data, size_t plen)
{
    bool has_ack = (h->flags & SPRIG_NS_STREAM_ACK) != 0;
    c->last_rx = now_of(c->be);
    c->ka_miss = 0;
    if (c->state == ST_SYN_SENT) {
        if (has_ack && h->ack != c->iss + 1) {
            send_rst(c->be, ip, h, plen);
        } else if (h->flags & SPRIG_NS_STREAM_RST) {
            if (has_ack) {
                die(c, SPRIG_STATUS_UNAVAILABLE); /* refused */
            }
        } else if ((h->flags & SPRIG_NS_STREAM_SYN) && has_ack) {
            c->rcv_nxt = h->seq + 1;
            c->peer_shift = h->shift;
            established(c, h);
            c->bits |= B_ACKNOW;
            post(c, PEND_CONNECTED);
            output(c);
        }
        return;
    }
    if (c->state == ST_DONE) {
        if (plen > 0 || (h->flags & SPRIG_NS_STREAM_FIN)) {
            c->bits |= B_ACKNOW; /* lingering: re-acknowledge a retransmitted FIN */
            output(c);
        }
        return;
    }
    if (h->flags & SPRIG_NS_STREAM_RST) {
        if (h->seq == c->rcv_nxt ||
            (seq_lt(c->rcv_nxt, h->seq) && seq_lt(h->seq, c->rcv_nxt + RXB))) {
            die(c, SPRIG_STATUS_ABORTED);
        }
        return;
    }
    if (h->flags & SPRIG_NS_STREAM_SYN) {
        if (c->state == ST_SYN_RCVD) {
            send_syn(c); /* our SYN|ACK was lost */
        } else {
            c->bits |= B_ACKNOW; /* our ACK of their SYN|ACK was lost */
            output(c);
        }
        return;
    }
    if (!has_ack) {
        return;
    }
    if (c->state == ST_SYN_RCVD) {
        if (h->ack != c->iss + 1) {
            send_rst(c->be, ip, h, plen);
            return;
        }
        established(c, h);
        if (c->parent != NULL) {
            post(c->parent, PEND_READABLE);
        }
    }
    if (c->state == ST_EST) {
        ack_in(c, h, plen);
    }
    data_in(c, h, data, plen);
    output(c);
    check_done(c);
}

static void proto_input(sprig_ns_proto *p, const sprig_ns_header *ip, sprig_buf *buf)
{
    sprig_ns_stream_backend *be = p->arg;
    sprig_ns_stream_hdr h;
    const uint8_t *seg = sprig_buf_data(buf);
    size_t len = sprig_buf_len(buf);
    if (ip->dst == SPRIG_NS_NODE_BROADCAST ||
        sprig_ns_stream_parse(ip, seg, len, &h) != SPRIG_STATUS_OK) {
        be->stats.bad++;
        sprig_buf_free(buf);
        return;
    }
    be->stats.rx++;
    sprig_ns_conn *c = find(be, h.dst_port, ip->src, h.src_port);
    if (c == NULL) {
        be->stats.no_port++;
        send_rst(be, ip, &h, len - HLEN);
    } else if (c->state == ST_LISTEN) {
        if ((h.flags & (SPRIG_NS_STREAM_SYN | SPRIG_NS_STREAM_ACK | SPRIG_NS_STREAM_RST)) ==
            SPRIG_NS_STREAM_SYN) {
            passive_open(c, ip, &h);
        } else {
            send_rst(be, ip, &h, len - HLEN);
        }
    } else {
        conn_input(c, ip, &h, seg + HLEN, len - HLEN);
    }
    sprig_buf_free(buf);
}

static void proto_error(sprig_ns_proto *p, const sprig_ns_header *orig, const uint8_t *quote,
                        size_t quote_len, const sprig_ns_icmp *msg, sprig_status status)
{
    sprig_ns_stream_backend *be = p->arg;
    if (quote_len < 4) {
        return;
    }
    sprig_ns_conn *c = find(be, rd16(quote), orig->dst, rd16(quote + 2));
    if (c == NULL || c->state == ST_LISTEN) {
        return;
    }
    if (msg->type == SPRIG_NS_ICMP_TOO_BIG) {
        uint32_t mss =
            msg->a > SPRIG_NS_HEADER_LEN + HLEN ? msg->a - SPRIG_NS_HEADER_LEN - HLEN : 1;
        c->mss = (uint16_t)(mss < c->mss ? mss : c->mss);
    } else if (c->state == ST_SYN_SENT) {
        die(c, status); /* UNAVAILABLE (port), NOT_FOUND (no route), ... */
    }
    /* established connections ride out other (soft) errors; retransmission decides */
}

/* ---- connections --------------------------------------------------------------------------- */

static sprig_ns_conn *take(sprig_ns_stream_backend *be)
{
    for (size_t i = 0; i < be->nconns; i++) {
        sprig_ns_conn *c = &be->conns[i];
        if (c->state == ST_FREE) {
            /* rings, socket, task and timers stay (a free connection has nothing pending) */
            memset(c, 0, offsetof(sprig_ns_conn, tx));
            c->be = be;
            c->rto = be->cfg.rto_initial;
            return c;
        }
    }
    return NULL;
}

static uint16_t mss_for(sprig_ns_stream_backend *be, uint16_t peer)
{
    size_t lim = be->pool->buf_size - SPRIG_NS_NET_HEADROOM;
    size_t mtu = sprig_ns_node_mtu(be->node, peer);
    lim = mtu != 0 && mtu - SPRIG_NS_HEADER_LEN < lim ? mtu - SPRIG_NS_HEADER_LEN : lim;
    lim -= HLEN;
    return (uint16_t)(lim > 0xFFFFu ? 0xFFFFu : lim);
}

static const sprig_sock_ops stream_ops;

static void start_conn(sprig_ns_conn *c, uint8_t state, uint16_t lport, uint16_t peer,
                       uint16_t pport)
{
    sprig_ns_stream_backend *be = c->be;
    c->state = state;
    c->lport = lport;
    c->peer_node = peer;
    c->peer_port = pport;
    c->mss = mss_for(be, peer);
    c->iss = new_isn(be);
    c->snd_una = c->iss;
    c->snd_nxt = c->snd_max = c->iss + 1;
    c->bits |= B_TIMING;
    c->rtt_seq = c->iss + 1;
    c->rtt_start = now_of(be);
    c->last_rx = c->rtt_start;
    send_syn(c);
    arm_rtx(c);
}

static void passive_open(sprig_ns_conn *l, const sprig_ns_header *ip, const sprig_ns_stream_hdr *h)
{
    sprig_ns_conn *c = take(l->be);
    if (c == NULL) {
        return; /* the peer retries its SYN */
    }
    c->parent = l;
    c->rcv_nxt = h->seq + 1;
    c->peer_shift = h->shift;
    start_conn(c, ST_SYN_RCVD, l->lport, ip->src, h->src_port);
}

/* ---- socket ops ---------------------------------------------------------------------------- */

static sprig_status op_send(sprig_sock *s, const void *data, size_t len, const sprig_addr *to,
                            size_t *out_sent)
{
    (void)to;
    sprig_ns_conn *c = conn_of(s);
    if (c->state != ST_EST || (c->bits & B_TXFIN)) {
        return c->state == ST_DONE ? SPRIG_STATUS_FAILED_PRECONDITION : SPRIG_STATUS_UNAVAILABLE;
    }
    uint32_t room = tx_room(c);
    uint32_t n = len < room ? (uint32_t)len : room;
    if (n == 0) {
        if (c->snd_wnd <= c->tx_len) {
            arm_rtx(c); /* persist: a lost window update must not stall us */
        }
        return SPRIG_STATUS_UNAVAILABLE;
    }
    ring_copy(c->tx, TXB, c->tx_head + c->tx_len, (uint8_t *)(uintptr_t)data, n, true);
    c->tx_len += n;
    *out_sent = n;
    output(c);
    return SPRIG_STATUS_OK;
}

static sprig_status op_recv(sprig_sock *s, void *buf, size_t cap, size_t *out_len, sprig_addr *from)
{
    (void)from;
    sprig_ns_conn *c = conn_of(s);
    uint32_t n = cap < c->rx_len ? (uint32_t)cap : c->rx_len;
    if (n == 0) {
        return (c->bits & B_RXFIN) ? SPRIG_STATUS_OUT_OF_RANGE : SPRIG_STATUS_UNAVAILABLE;
    }
    ring_copy(c->rx, RXB, c->rx_head, buf, n, false);
    c->rx_head = (c->rx_head + n) % RXB;
    c->rx_len -= n;
    *out_len = n;
    /* window update when it opened by a segment or half the ring */
    uint32_t grow = rx_free(c) - c->rx_adv;
    if (c->state == ST_EST && !(c->bits & B_RXFIN) &&
        (c->rx_adv == 0 || grow >= (c->mss < RXB / 2 ? c->mss : RXB / 2))) {
        c->bits |= B_ACKNOW;
        output(c);
    }
    return SPRIG_STATUS_OK;
}

static sprig_framed_sock *free_framed(sprig_ns_stream_backend *be, size_t *idx)
{
    for (size_t i = 0; i < be->nframed; i++) {
        if (be->framed[i].inner == NULL) {
            *idx = i;
            return &be->framed[i];
        }
    }
    return NULL;
}

static void framed_release(sprig_framed_sock *f, void *ctx)
{
    (void)ctx;
    f->inner = NULL; /* the slot is free */
}

/* Wrap a STREAM connection for SEQPACKET (a slot was checked free). */
static sprig_sock *wrap(sprig_ns_stream_backend *be, sprig_ns_conn *c)
{
    size_t i = 0;
    sprig_framed_sock *f = free_framed(be, &i);
    size_t one = be->max_message + SPRIG_FRAMING_HEADER_LEN;
    sprig_framing_cfg fc = {.max_message_size = be->max_message,
                            .rx_mem = be->framed_mem + 2 * one * i,
                            .rx_cap = one,
                            .tx_mem = be->framed_mem + 2 * one * i + one,
                            .tx_cap = one,
                            .on_release = framed_release};
    (void)sprig_framing_init(f, &c->sock, &fc); /* cannot fail: checked at enable */
    return &f->sock;
}

static sprig_status op_accept(sprig_sock *ls, sprig_sock **out)
{
    sprig_ns_conn *l = conn_of(ls);
    size_t idx;
    if ((l->bits & B_FRAMED) && free_framed(l->be, &idx) == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    for (size_t i = 0; i < l->be->nconns; i++) {
        sprig_ns_conn *c = &l->be->conns[i];
        if (c->parent == l && c->state >= ST_EST) {
            c->parent = NULL;
            c->bits |= B_USER;
            sprig__sock_init(&c->sock, &stream_ops, l->be->loop, SPRIG_SOCK_STREAM,
                             SPRIG_SOCK_STATE_OPEN);
            c->sock.tx_pool = l->be->pool;
            if (c->rx_len > 0 || (c->bits & B_RXFIN)) {
                post(c, PEND_READABLE);
            }
            if (c->state == ST_DONE) {
                post(c, PEND_CLOSED);
            }
            *out = (l->bits & B_FRAMED) ? wrap(l->be, c) : &c->sock;
            return SPRIG_STATUS_OK;
        }
    }
    return SPRIG_STATUS_UNAVAILABLE;
}

static sprig_status op_shutdown(sprig_sock *s)
{
    sprig_ns_conn *c = conn_of(s);
    c->bits |= B_TXFIN;
    output(c);
    return SPRIG_STATUS_OK;
}

static void op_close(sprig_sock *s)
{
    sprig_ns_conn *c = conn_of(s);
    sprig_ns_stream_backend *be = c->be;
    sprig_loop_cancel(be->loop, &c->task);
    c->pending = 0;
    c->bits &= (uint8_t)~B_USER;
    c->rx_len = 0;
    if (c->state == ST_LISTEN) {
        for (size_t i = 0; i < be->nconns; i++) {
            sprig_ns_conn *k = &be->conns[i];
            if (k->parent == c) {
                if (k->state == ST_EST) {
                    (void)send_seg(k, k->snd_nxt, SPRIG_NS_STREAM_RST, 0, 0);
                }
                release(k);
            }
        }
    }
    if (c->state == ST_EST) {
        c->bits |= B_TXFIN; /* orphan: finish sending, then FIN */
        output(c);
        orphan_wait(c);
        return;
    }
    if (c->state == ST_DONE && sprig_timer_armed(&c->rtx)) {
        return; /* lingering */
    }
    release(c);
}

static sprig_status op_addr(const sprig_sock *s, bool peer, sprig_addr *out)
{
    const sprig_ns_conn *c = conn_of(s);
    if (peer && c->state == ST_LISTEN) {
        return SPRIG_STATUS_FAILED_PRECONDITION;
    }
    sprig_addr_from_node(out, peer ? c->peer_node : sprig_ns_node_id(c->be->node),
                         peer ? c->peer_port : c->lport);
    return SPRIG_STATUS_OK;
}

static const sprig_sock_ops stream_ops = {
    .name = "netstack/stream",
    .send = op_send,
    .recv = op_recv,
    .accept = op_accept,
    .shutdown = op_shutdown,
    .close = op_close,
    .addr = op_addr,
};

/* ---- backend ------------------------------------------------------------------------------- */

static sprig_ns_stream_backend *be_of(const sprig_backend *b)
{
    return SPRIG_CONTAINER_OF(b, sprig_ns_stream_backend, backend);
}

static bool be_handles(const sprig_backend *b, const sprig_url *url)
{
    (void)b;
    return url->scheme == SPRIG_URL_SPRIG;
}

static sprig_status open_user(sprig_ns_conn **out, sprig_ns_stream_backend *be, sprig_sock_state st)
{
    sprig_ns_conn *c = take(be);
    if (c == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    c->bits = B_USER;
    sprig__sock_init(&c->sock, &stream_ops, be->loop, SPRIG_SOCK_STREAM, st);
    c->sock.tx_pool = be->pool;
    *out = c;
    return SPRIG_STATUS_OK;
}

/* dial (listen false) or listen on a sprig:// URL. */
static sprig_status open_url(sprig_backend *b, const sprig_url *url, sprig_sock_type type,
                             sprig_sock **out, bool listen)
{
    sprig_ns_stream_backend *be = be_of(b);
    sprig_backend *dg = be->cfg.dgram != NULL ? &be->cfg.dgram->backend : NULL;
    if (type == SPRIG_SOCK_DGRAM && dg != NULL) {
        return listen ? dg->listen(dg, url, type, out) : dg->dial(dg, url, type, out);
    }
    size_t idx;
    bool framed = type == SPRIG_SOCK_SEQPACKET && be->nframed > 0;
    if (!framed && type != SPRIG_SOCK_STREAM) {
        return SPRIG_STATUS_UNIMPLEMENTED;
    }
    if (framed && !listen && free_framed(be, &idx) == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    uint16_t node = 0, port = url->has_port ? url->port : 0;
    if (!sprig_url_node(url, &node)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (listen) {
        if (node != 0 && node != sprig_ns_node_id(be->node)) {
            return SPRIG_STATUS_NOT_FOUND; /* not an address of this node */
        }
        if (port != 0 && port_used(be, port)) {
            return SPRIG_STATUS_ALREADY_EXISTS;
        }
    } else if (node == SPRIG_NS_NODE_NONE || node == SPRIG_NS_NODE_BROADCAST || port == 0) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    uint16_t lport = listen ? port : 0;
    lport = lport != 0 ? lport : ephemeral(be);
    sprig_ns_conn *c = NULL;
    sprig_status st =
        lport == 0
            ? SPRIG_STATUS_RESOURCE_EXHAUSTED
            : open_user(&c, be, listen ? SPRIG_SOCK_STATE_LISTENING : SPRIG_SOCK_STATE_CONNECTING);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    if (listen) {
        c->state = ST_LISTEN;
        c->lport = lport;
        if (framed) {
            c->bits |= B_FRAMED;
            c->sock.type = SPRIG_SOCK_SEQPACKET;
        }
        *out = &c->sock;
    } else {
        start_conn(c, ST_SYN_SENT, lport, node, port);
        *out = framed ? wrap(be, c) : &c->sock;
    }
    return SPRIG_STATUS_OK;
}

static sprig_status be_dial(sprig_backend *b, const sprig_url *url, sprig_sock_type type,
                            sprig_sock **out)
{
    return open_url(b, url, type, out, false);
}

static sprig_status be_listen(sprig_backend *b, const sprig_url *url, sprig_sock_type type,
                              sprig_sock **out)
{
    return open_url(b, url, type, out, true);
}

static uint32_t or_default(uint32_t v)
{
    return v != 0 ? v : 2048u;
}

size_t sprig_ns_stream_ring_size(const sprig_ns_stream_cfg *cfg, size_t n)
{
    return n * ((size_t)or_default(cfg->tx_buf) + or_default(cfg->rx_buf));
}

sprig_status sprig_ns_stream_init(sprig_ns_stream_backend *be, sprig_ns_node *node,
                                  const sprig_ns_stream_cfg *cfg, sprig_ns_conn *conns, size_t n,
                                  uint8_t *rings, size_t ring_len, sprig_buf_pool *pool)
{
    if (be == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(be, 0, sizeof(*be));
    if (node == NULL || !node->initialised || cfg == NULL || cfg->tc >= SPRIG_NS_TC_COUNT ||
        conns == NULL || n == 0 || pool == NULL ||
        pool->buf_size < (size_t)SPRIG_NS_STREAM_HEADROOM + 64 || rings == NULL ||
        cfg->rx_buf > (1u << 30) || ring_len < sprig_ns_stream_ring_size(cfg, n)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    be->node = node;
    be->loop = node->cfg.loop;
    be->pool = pool;
    be->conns = conns;
    be->nconns = n;
    be->cfg = *cfg;
    sprig_ns_stream_cfg *c = &be->cfg;
    c->rto_initial = c->rto_initial ? c->rto_initial : 1000000u;
    c->rto_min = c->rto_min ? c->rto_min : 200000u;
    c->rto_max = c->rto_max ? c->rto_max : 60000000u;
    c->max_retries = c->max_retries ? c->max_retries : 8;
    c->keepalive_interval = c->keepalive_interval ? c->keepalive_interval : c->keepalive_idle;
    c->keepalive_count = c->keepalive_count ? c->keepalive_count : 3;
    c->tx_buf = or_default(c->tx_buf);
    c->rx_buf = or_default(c->rx_buf);
    while ((c->rx_buf >> be->shift) > 0xFFFFu) {
        be->shift++;
    }
    be->next_port = (uint16_t)SPRIG_NS_EPHEMERAL_FIRST;
    be->isn_state = 0x9E3779B9u ^ sprig_ns_node_id(node);
    for (size_t i = 0; i < n; i++) {
        sprig_ns_conn *k = &conns[i];
        memset(k, 0, sizeof(*k));
        k->be = be;
        k->tx = rings;
        k->rx = rings + c->tx_buf;
        sprig_task_init(&k->task, run_task, k);
        sprig_timer_init(&k->rtx, on_rtx, k);
        sprig_timer_init(&k->kick, on_kick, k);
        sprig_timer_init(&k->ka, on_ka, k);
        rings += c->tx_buf + c->rx_buf;
    }
    be->proto.proto = PROTO;
    be->proto.input = proto_input;
    be->proto.error = proto_error;
    be->proto.arg = be;
    sprig_status st = sprig_ns_node_add_proto(node, &be->proto);
    if (st != SPRIG_STATUS_OK) {
        be->node = NULL;
        return st;
    }
    be->backend.name = "netstack";
    be->backend.handles = be_handles;
    be->backend.dial = be_dial;
    be->backend.listen = be_listen;
    sprig_loop_add_backend(be->loop, &be->backend);
    return SPRIG_STATUS_OK;
}

sprig_status sprig_ns_stream_enable_seqpacket(sprig_ns_stream_backend *be, sprig_framed_sock *f,
                                              size_t n, uint8_t *mem, size_t mem_len,
                                              size_t max_message)
{
    if (be == NULL || be->node == NULL || f == NULL || n == 0 || mem == NULL || max_message == 0 ||
        max_message > 0xFFFFFFu || mem_len / n / 2 < max_message + SPRIG_FRAMING_HEADER_LEN) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(f, 0, n * sizeof(*f));
    be->framed = f;
    be->nframed = n;
    be->framed_mem = mem;
    be->max_message = max_message;
    return SPRIG_STATUS_OK;
}

void sprig_ns_stream_deinit(sprig_ns_stream_backend *be)
{
    if (be == NULL || be->node == NULL) {
        return;
    }
    for (size_t i = 0; i < be->nframed; i++) {
        sprig_loop_cancel(be->loop, &be->framed[i].task);
        be->framed[i].inner = NULL;
    }
    for (size_t i = 0; i < be->nconns; i++) {
        if (be->conns[i].state != ST_FREE) {
            release(&be->conns[i]);
        }
    }
    sprig_loop_remove_backend(be->loop, &be->backend);
    sprig_ns_node_remove_proto(be->node, &be->proto);
    be->node = NULL;
}

size_t sprig_ns_stream_in_use(const sprig_ns_stream_backend *be)
{
    size_t n = 0;
    for (size_t i = 0; be->node != NULL && i < be->nconns; i++) {
        n += be->conns[i].state != ST_FREE && (be->conns[i].bits & B_USER);
    }
    return n;
}

size_t sprig_ns_stream_active(const sprig_ns_stream_backend *be)
{
    size_t n = 0;
    for (size_t i = 0; be->node != NULL && i < be->nconns; i++) {
        n += be->conns[i].state != ST_FREE;
    }
    return n;
}
