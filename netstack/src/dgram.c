/* dgram.c — the netstack DGRAM transport as a socket backend (see sprig/ns_dgram.h). */
#include <stddef.h>
#include <string.h>

#include "sprig/ns_dgram.h"

enum { PEND_CONNECTED = 1, PEND_READABLE = 2, PEND_WRITABLE = 4 };

static sprig_ns_dsock *dsock_of(const sprig_sock *s)
{
    return SPRIG_CONTAINER_OF(s, sprig_ns_dsock, sock);
}

static sprig_ns_dsock *find_port(sprig_ns_dgram_backend *be, uint16_t port)
{
    for (size_t i = 0; i < be->nsocks; i++) {
        if (be->socks[i].in_use && be->socks[i].lport == port) {
            return &be->socks[i];
        }
    }
    return NULL;
}

static uint16_t ephemeral(sprig_ns_dgram_backend *be)
{
    for (uint32_t tries = 0; tries < 65536u - SPRIG_NS_EPHEMERAL_FIRST; tries++) {
        uint16_t p = be->next_port;
        be->next_port = p == 0xFFFFu ? (uint16_t)SPRIG_NS_EPHEMERAL_FIRST : (uint16_t)(p + 1);
        if (find_port(be, p) == NULL) {
            return p;
        }
    }
    return 0;
}

/* ---- events -------------------------------------------------------------------------------- */

static void run_task(void *arg)
{
    sprig_ns_dsock *d = arg;
    uint8_t pend = d->pending;
    d->pending = 0;
    /* PEND bit i is event i + 1: CONNECTED, READABLE, WRITABLE */
    for (unsigned i = 0; i < 3; i++) {
        if ((pend & (1u << i)) && d->in_use) {
            sprig__sock_event(&d->sock, (sprig_sock_event)(SPRIG_SOCK_EV_CONNECTED + i),
                              SPRIG_STATUS_OK);
        }
    }
}

static void post(sprig_ns_dsock *d, uint8_t what)
{
    d->pending |= what;
    sprig_loop_defer(d->be->loop, &d->task);
}

static void on_retry(sprig_timer *t, void *arg)
{
    (void)t;
    sprig_ns_dsock *d = arg;
    /* User callbacks run from the task, never from a timer: a callback may arm timers. */
    if (d->in_use) {
        post(d, PEND_WRITABLE);
    }
}

/* ---- node side ----------------------------------------------------------------------------- */

static void proto_input(sprig_ns_proto *p, const sprig_ns_header *ip, sprig_buf *buf)
{
    sprig_ns_dgram_backend *be = p->arg;
    sprig_ns_dgram h;
    if (sprig_ns_dgram_parse(ip, sprig_buf_data(buf), sprig_buf_len(buf), &h) != SPRIG_STATUS_OK) {
        be->stats.bad++;
        sprig_buf_free(buf);
        return;
    }
    sprig_ns_dsock *d = find_port(be, h.dst_port);
    if (d != NULL && d->peer_node != 0 && (d->peer_node != ip->src || d->peer_port != h.src_port)) {
        d = NULL; /* a connected socket hears only its peer */
    }
    if (d == NULL) {
        be->stats.no_port++;
        sprig_ns_node_reject(be->node, buf, SPRIG_NS_ICMP_UNREACHABLE, SPRIG_NS_UNREACH_PORT, 0);
        return;
    }
    if (d->rxq.count >= be->cfg.rx_queue_len) {
        be->stats.rx_drops++;
        sprig_buf_free(buf);
        return;
    }
    (void)sprig_buf_pull(buf, SPRIG_NS_DGRAM_HEADER_LEN); /* headers stay in the headroom */
    be->stats.rx++;
    sprig_buf_queue_push(&d->rxq, buf);
    post(d, PEND_READABLE);
}

static void proto_error(sprig_ns_proto *p, const sprig_ns_header *orig, const uint8_t *quote,
                        size_t quote_len, const sprig_ns_icmp *msg, sprig_status status)
{
    (void)msg;
    sprig_ns_dgram_backend *be = p->arg;
    if (quote_len < 4) {
        return;
    }
    uint16_t sport = (uint16_t)((quote[0] << 8) | quote[1]);
    uint16_t dport = (uint16_t)((quote[2] << 8) | quote[3]);
    sprig_ns_dsock *d = find_port(be, sport);
    if (d == NULL || d->peer_node == 0 || d->peer_node != orig->dst || d->peer_port != dport) {
        return; /* bound sockets do not learn about errors (many peers) */
    }
    d->error = status == SPRIG_STATUS_UNAVAILABLE ? SPRIG_STATUS_NOT_FOUND : status;
    post(d, PEND_READABLE);
}

/* ---- socket ops ---------------------------------------------------------------------------- */

/* Where a send goes: the peer, or `to` on a bound socket. */
static sprig_status resolve(const sprig_ns_dsock *d, const sprig_addr *to, uint16_t *dst,
                            uint16_t *dport)
{
    *dst = d->peer_node;
    *dport = d->peer_port;
    if (to != NULL) {
        if (!sprig_addr_is_node(to, dst) || to->port == 0 || *dst == 0) {
            return SPRIG_STATUS_INVALID_ARGUMENT;
        }
        *dport = to->port;
    } else if (*dst == 0) {
        return SPRIG_STATUS_FAILED_PRECONDITION; /* bound socket: use send_to */
    }
    return SPRIG_STATUS_OK;
}

/* buf's data is the payload with the DGRAM headroom free in front; the send cannot fail
 * (the caller checked with sprig_ns_node_check_send). */
static void send_checked(sprig_ns_dsock *d, sprig_buf *buf, uint16_t dst, uint16_t dport)
{
    sprig_ns_dgram_backend *be = d->be;
    size_t seg = SPRIG_NS_DGRAM_HEADER_LEN + sprig_buf_len(buf);
    uint8_t *p = sprig_buf_push(buf, SPRIG_NS_DGRAM_HEADER_LEN);
    sprig_ns_header ip = {.src = sprig_ns_node_id(be->node),
                          .dst = dst,
                          .proto = SPRIG_NS_PROTO_DGRAM,
                          .length = (uint16_t)(seg + SPRIG_NS_HEADER_LEN)};
    sprig_ns_dgram h = {.src_port = d->lport, .dst_port = dport};
    (void)sprig_ns_dgram_emit(&ip, &h, p, seg);
    (void)sprig_ns_node_send(be->node, buf, dst, SPRIG_NS_PROTO_DGRAM, be->cfg.tc);
    be->stats.tx++;
}

static sprig_status check(sprig_ns_dsock *d, uint16_t dst, size_t len)
{
    sprig_ns_dgram_backend *be = d->be;
    sprig_status st = sprig_ns_node_check_send(
        be->node, dst, len + SPRIG_NS_HEADER_LEN + SPRIG_NS_DGRAM_HEADER_LEN, be->cfg.tc);
    if (st == SPRIG_STATUS_UNAVAILABLE) {
        sprig_timer_start(be->loop, &d->retry, SPRIG_CONFIG_NS_DGRAM_RETRY);
    }
    return st;
}

static sprig_status op_send(sprig_sock *s, const void *data, size_t len, const sprig_addr *to,
                            size_t *out_sent)
{
    sprig_ns_dsock *d = dsock_of(s);
    uint16_t dst, dport;
    sprig_status st = resolve(d, to, &dst, &dport);
    if (st == SPRIG_STATUS_OK) {
        st = check(d, dst, len);
    }
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    sprig_buf *b = sprig_buf_alloc(d->be->pool, SPRIG_NS_DGRAM_HEADROOM);
    if (b == NULL) {
        sprig_timer_start(d->be->loop, &d->retry, SPRIG_CONFIG_NS_DGRAM_RETRY);
        return SPRIG_STATUS_UNAVAILABLE;
    }
    if (sprig_buf_append(b, data, len) != SPRIG_STATUS_OK) {
        sprig_buf_free(b);
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    send_checked(d, b, dst, dport);
    *out_sent = len;
    return SPRIG_STATUS_OK;
}

/* Zero copy: the headers go into the buffer's headroom. On any status but OK the caller keeps
 * the buffer. */
static sprig_status op_send_buf(sprig_sock *s, sprig_buf *buf, const sprig_addr *to)
{
    sprig_ns_dsock *d = dsock_of(s);
    if (sprig_buf_headroom(buf) < SPRIG_NS_DGRAM_HEADROOM) {
        size_t sent = 0;
        sprig_status st = op_send(s, sprig_buf_data(buf), sprig_buf_len(buf), to, &sent);
        if (st == SPRIG_STATUS_OK) {
            sprig_buf_free(buf);
        }
        return st;
    }
    uint16_t dst, dport;
    sprig_status st = resolve(d, to, &dst, &dport);
    if (st == SPRIG_STATUS_OK) {
        st = check(d, dst, sprig_buf_len(buf));
    }
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    send_checked(d, buf, dst, dport);
    return SPRIG_STATUS_OK;
}

static sprig_status op_recv(sprig_sock *s, void *buf, size_t cap, size_t *out_len, sprig_addr *from)
{
    sprig_ns_dsock *d = dsock_of(s);
    if (d->error != SPRIG_STATUS_OK) {
        sprig_status e = d->error;
        d->error = SPRIG_STATUS_OK;
        return e;
    }
    sprig_buf *b = sprig_buf_queue_peek(&d->rxq);
    if (b == NULL) {
        return SPRIG_STATUS_UNAVAILABLE;
    }
    size_t len = sprig_buf_len(b);
    *out_len = len;
    if (len > cap) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED; /* stays queued */
    }
    if (len > 0) {
        memcpy(buf, sprig_buf_data(b), len);
    }
    if (from != NULL) {
        /* The headers are still in the headroom: [net 8][dgram 6][payload]. */
        const uint8_t *dg = sprig_buf_data(b) - SPRIG_NS_DGRAM_HEADER_LEN;
        const uint8_t *net = dg - SPRIG_NS_HEADER_LEN;
        sprig_addr_from_node(from, sprig_ns_header_src(net), (uint16_t)((dg[0] << 8) | dg[1]));
    }
    sprig_buf_free(sprig_buf_queue_pop(&d->rxq));
    return SPRIG_STATUS_OK;
}

static sprig_status op_shutdown(sprig_sock *s)
{
    (void)s;
    return SPRIG_STATUS_UNIMPLEMENTED;
}

static void release(sprig_ns_dsock *d)
{
    sprig_loop_cancel(d->be->loop, &d->task);
    sprig_timer_stop(d->be->loop, &d->retry);
    sprig_buf_queue_clear(&d->rxq);
    d->pending = 0;
    d->in_use = false;
}

static void op_close(sprig_sock *s)
{
    release(dsock_of(s));
}

static sprig_status op_addr(const sprig_sock *s, bool peer, sprig_addr *out)
{
    const sprig_ns_dsock *d = dsock_of(s);
    if (peer) {
        if (d->peer_node == 0) {
            return SPRIG_STATUS_FAILED_PRECONDITION;
        }
        sprig_addr_from_node(out, d->peer_node, d->peer_port);
    } else {
        sprig_addr_from_node(out, sprig_ns_node_id(d->be->node), d->lport);
    }
    return SPRIG_STATUS_OK;
}

static const sprig_sock_ops dgram_ops = {
    .name = "netstack/dgram",
    .send = op_send,
    .send_buf = op_send_buf,
    .recv = op_recv,
    .shutdown = op_shutdown,
    .close = op_close,
    .addr = op_addr,
};

/* ---- backend ------------------------------------------------------------------------------- */

static sprig_ns_dgram_backend *be_of(const sprig_backend *b)
{
    return SPRIG_CONTAINER_OF(b, sprig_ns_dgram_backend, backend);
}

static bool be_handles(const sprig_backend *b, const sprig_url *url)
{
    (void)b;
    return url->scheme == SPRIG_URL_SPRIG;
}

static size_t max_message(const sprig_ns_dgram_backend *be, uint16_t peer)
{
    size_t lim = be->pool->buf_size - SPRIG_CONFIG_NS_LINK_HEADROOM;
    if (peer != 0) {
        size_t mtu = sprig_ns_node_mtu(be->node, peer);
        if (mtu < lim) {
            lim = mtu;
        }
    }
    if (lim > 0xFFFFu) {
        lim = 0xFFFFu;
    }
    return lim > SPRIG_NS_HEADER_LEN + SPRIG_NS_DGRAM_HEADER_LEN
               ? lim - SPRIG_NS_HEADER_LEN - SPRIG_NS_DGRAM_HEADER_LEN
               : 0;
}

static sprig_ns_dsock *take(sprig_ns_dgram_backend *be)
{
    for (size_t i = 0; i < be->nsocks; i++) {
        sprig_ns_dsock *d = &be->socks[i];
        if (!d->in_use) {
            memset(d, 0, sizeof(*d));
            d->be = be;
            sprig_buf_queue_init(&d->rxq);
            sprig_task_init(&d->task, run_task, d);
            sprig_timer_init(&d->retry, on_retry, d);
            return d;
        }
    }
    return NULL;
}

static sprig_status open_sock(sprig_ns_dgram_backend *be, uint16_t lport, uint16_t peer,
                              uint16_t peer_port, sprig_sock **out)
{
    sprig_ns_dsock *d = take(be);
    if (d == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    d->in_use = true;
    d->lport = lport;
    d->peer_node = peer;
    d->peer_port = peer_port;
    sprig__sock_init(&d->sock, &dgram_ops, be->loop, SPRIG_SOCK_DGRAM,
                     peer != 0 ? SPRIG_SOCK_STATE_CONNECTING : SPRIG_SOCK_STATE_OPEN);
    d->sock.tx_pool = be->pool;
    d->sock.headroom = SPRIG_NS_DGRAM_HEADROOM;
    d->sock.max_message = max_message(be, peer);
    if (peer != 0) {
        post(d, PEND_CONNECTED);
    }
    *out = &d->sock;
    return SPRIG_STATUS_OK;
}

static sprig_status be_dial(sprig_backend *b, const sprig_url *url, sprig_sock_type type,
                            sprig_sock **out)
{
    sprig_ns_dgram_backend *be = be_of(b);
    uint16_t node = 0;
    if (type != SPRIG_SOCK_DGRAM) {
        return SPRIG_STATUS_UNIMPLEMENTED;
    }
    if (!sprig_url_node(url, &node) || node == SPRIG_NS_NODE_NONE || !url->has_port ||
        url->port == 0) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    uint16_t lport = ephemeral(be);
    if (lport == 0) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    return open_sock(be, lport, node, url->port, out);
}

static sprig_status be_listen(sprig_backend *b, const sprig_url *url, sprig_sock_type type,
                              sprig_sock **out)
{
    sprig_ns_dgram_backend *be = be_of(b);
    uint16_t node = 0;
    if (type != SPRIG_SOCK_DGRAM) {
        return SPRIG_STATUS_UNIMPLEMENTED;
    }
    if (!sprig_url_node(url, &node)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (node != 0 && node != sprig_ns_node_id(be->node)) {
        return SPRIG_STATUS_NOT_FOUND; /* not an address of this node */
    }
    uint16_t port = url->has_port ? url->port : 0;
    if (port == 0) {
        port = ephemeral(be);
        if (port == 0) {
            return SPRIG_STATUS_RESOURCE_EXHAUSTED;
        }
    } else if (find_port(be, port) != NULL) {
        return SPRIG_STATUS_ALREADY_EXISTS;
    }
    return open_sock(be, port, 0, 0, out);
}

sprig_status sprig_ns_dgram_init(sprig_ns_dgram_backend *be, sprig_ns_node *node,
                                 const sprig_ns_dgram_cfg *cfg, sprig_ns_dsock *socks, size_t n,
                                 sprig_buf_pool *pool)
{
    if (be == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(be, 0, sizeof(*be));
    if (node == NULL || !node->initialised || cfg == NULL || cfg->rx_queue_len == 0 ||
        cfg->tc >= SPRIG_NS_TC_COUNT || socks == NULL || n == 0 || pool == NULL ||
        pool->buf_size < SPRIG_NS_DGRAM_HEADROOM + 64) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    be->node = node;
    be->loop = node->cfg.loop;
    be->pool = pool;
    be->socks = socks;
    be->nsocks = n;
    be->cfg = *cfg;
    be->next_port = (uint16_t)SPRIG_NS_EPHEMERAL_FIRST;
    memset(socks, 0, n * sizeof(*socks));
    be->proto.proto = SPRIG_NS_PROTO_DGRAM;
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

void sprig_ns_dgram_deinit(sprig_ns_dgram_backend *be)
{
    if (be == NULL || be->node == NULL) {
        return;
    }
    for (size_t i = 0; i < be->nsocks; i++) {
        if (be->socks[i].in_use) {
            release(&be->socks[i]);
        }
    }
    sprig_loop_remove_backend(be->loop, &be->backend);
    sprig_ns_node_remove_proto(be->node, &be->proto);
    be->node = NULL;
}

size_t sprig_ns_dgram_in_use(const sprig_ns_dgram_backend *be)
{
    size_t n = 0;
    for (size_t i = 0; be->node != NULL && i < be->nsocks; i++) {
        n += be->socks[i].in_use;
    }
    return n;
}
