/* node.c — the netstack network layer: routing, forwarding, class queues, ICMP. */
#include <string.h>

#include "sprig/ns_node.h"

/* ---- links ------------------------------------------------------------------------------- */

sprig_status sprig_ns_link_init(sprig_ns_link *link, const sprig_ns_link_ops *ops, uint16_t mtu)
{
    if (link == NULL || ops == NULL || ops->kick == NULL || mtu < SPRIG_NS_HEADER_LEN) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(link, 0, sizeof(*link));
    link->ops = ops;
    link->mtu = mtu;
    for (size_t i = 0; i < SPRIG_NS_TC_COUNT; i++) {
        sprig_buf_queue_init(&link->q[i]);
    }
    return SPRIG_STATUS_OK;
}

void sprig_ns_link_deinit(sprig_ns_link *link)
{
    if (link == NULL) {
        return;
    }
    if (link->node != NULL) {
        sprig_ns_node_detach(link->node, link);
    }
    for (size_t i = 0; i < SPRIG_NS_TC_COUNT; i++) {
        sprig_buf_queue_clear(&link->q[i]);
    }
}

sprig_buf *sprig_ns_link_next(sprig_ns_link *link)
{
    for (size_t i = 0; i < SPRIG_NS_TC_COUNT; i++) {
        sprig_buf *b = sprig_buf_queue_pop(&link->q[i]);
        if (b != NULL) {
            link->stats.tx_packets++;
            return b;
        }
    }
    return NULL;
}

size_t sprig_ns_link_queued(const sprig_ns_link *link)
{
    size_t n = 0;
    for (size_t i = 0; i < SPRIG_NS_TC_COUNT; i++) {
        n += link->q[i].count;
    }
    return n;
}

static void node_input(sprig_ns_node *node, sprig_ns_link *in, sprig_buf *buf);

void sprig_ns_link_input(sprig_ns_link *link, sprig_buf *pkt)
{
    if (pkt == NULL) {
        return;
    }
    if (link->node == NULL) {
        sprig_buf_free(pkt);
        return;
    }
    link->stats.rx_packets++;
    node_input(link->node, link, pkt);
}

/* ---- routing ------------------------------------------------------------------------------ */

static uint16_t prefix_mask(uint8_t prefix_len)
{
    return prefix_len == 0 ? 0 : (uint16_t)(0xFFFFu << (16u - prefix_len));
}

sprig_ns_link *sprig_ns_node_lookup(const sprig_ns_node *node, uint16_t dst)
{
    const sprig_ns_route *best = NULL;
    for (size_t i = 0; i < node->route_count; i++) {
        const sprig_ns_route *r = &node->cfg.routes[i];
        uint16_t m = prefix_mask(r->prefix_len);
        if ((dst & m) == (r->dst & m) && (best == NULL || r->prefix_len > best->prefix_len)) {
            best = r;
        }
    }
    return best != NULL ? best->link : NULL;
}

uint16_t sprig_ns_node_mtu(const sprig_ns_node *node, uint16_t dst)
{
    if (dst == node->cfg.id) {
        return 0xFFFFu;
    }
    const sprig_ns_link *l = sprig_ns_node_lookup(node, dst);
    return l != NULL ? l->mtu : 0;
}

sprig_status sprig_ns_node_add_route(sprig_ns_node *node, uint16_t dst, uint8_t prefix_len,
                                     sprig_ns_link *link)
{
    if (prefix_len > 16 || link == NULL || link->node != node) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    uint16_t m = prefix_mask(prefix_len);
    for (size_t i = 0; i < node->route_count; i++) {
        sprig_ns_route *r = &node->cfg.routes[i];
        if (r->prefix_len == prefix_len && (r->dst & m) == (dst & m)) {
            r->link = link;
            return SPRIG_STATUS_OK;
        }
    }
    if (node->route_count >= node->cfg.route_cap) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    sprig_ns_route *r = &node->cfg.routes[node->route_count++];
    r->dst = (uint16_t)(dst & m);
    r->prefix_len = prefix_len;
    r->link = link;
    return SPRIG_STATUS_OK;
}

static void remove_route_at(sprig_ns_node *node, size_t i)
{
    node->route_count--;
    node->cfg.routes[i] = node->cfg.routes[node->route_count];
}

sprig_status sprig_ns_node_remove_route(sprig_ns_node *node, uint16_t dst, uint8_t prefix_len)
{
    uint16_t m = prefix_mask(prefix_len);
    for (size_t i = 0; i < node->route_count; i++) {
        sprig_ns_route *r = &node->cfg.routes[i];
        if (r->prefix_len == prefix_len && (r->dst & m) == (dst & m)) {
            remove_route_at(node, i);
            return SPRIG_STATUS_OK;
        }
    }
    return SPRIG_STATUS_NOT_FOUND;
}

/* ---- node lifetime ------------------------------------------------------------------------ */

static void loopback_run(void *arg);

sprig_status sprig_ns_node_init(sprig_ns_node *node, const sprig_ns_node_cfg *cfg)
{
    if (node == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(node, 0, sizeof(*node));
    if (cfg == NULL || cfg->id == SPRIG_NS_NODE_NONE || cfg->id == SPRIG_NS_NODE_BROADCAST ||
        cfg->loop == NULL || cfg->pool == NULL || (cfg->routes == NULL && cfg->route_cap > 0)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    node->cfg = *cfg;
    sprig_buf_queue_init(&node->loopback);
    sprig_task_init(&node->loopback_task, loopback_run, node);
    node->initialised = true;
    return SPRIG_STATUS_OK;
}

void sprig_ns_node_deinit(sprig_ns_node *node)
{
    if (node == NULL || !node->initialised) {
        return;
    }
    while (node->links != NULL) {
        sprig_ns_node_detach(node, node->links);
    }
    sprig_loop_cancel(node->cfg.loop, &node->loopback_task);
    sprig_buf_queue_clear(&node->loopback);
    node->protos = NULL;
    node->route_count = 0;
    node->initialised = false;
}

sprig_status sprig_ns_node_attach(sprig_ns_node *node, sprig_ns_link *link)
{
    if (node == NULL || !node->initialised || link == NULL || link->ops == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (link->node != NULL) {
        return SPRIG_STATUS_FAILED_PRECONDITION;
    }
    link->node = node;
    link->next = node->links;
    node->links = link;
    return SPRIG_STATUS_OK;
}

void sprig_ns_node_detach(sprig_ns_node *node, sprig_ns_link *link)
{
    if (node == NULL || link == NULL || link->node != node) {
        return;
    }
    for (sprig_ns_link **pp = &node->links; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == link) {
            *pp = link->next;
            break;
        }
    }
    for (size_t i = node->route_count; i-- > 0;) {
        if (node->cfg.routes[i].link == link) {
            remove_route_at(node, i);
        }
    }
    for (size_t i = 0; i < SPRIG_NS_TC_COUNT; i++) {
        sprig_buf_queue_clear(&link->q[i]);
    }
    link->node = NULL;
    link->next = NULL;
}

sprig_status sprig_ns_node_add_proto(sprig_ns_node *node, sprig_ns_proto *p)
{
    if (node == NULL || !node->initialised || p == NULL || p->proto == SPRIG_NS_PROTO_ICMP ||
        p->input == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    for (sprig_ns_proto *q = node->protos; q != NULL; q = q->next) {
        if (q->proto == p->proto) {
            return SPRIG_STATUS_ALREADY_EXISTS;
        }
    }
    p->next = node->protos;
    node->protos = p;
    return SPRIG_STATUS_OK;
}

void sprig_ns_node_remove_proto(sprig_ns_node *node, sprig_ns_proto *p)
{
    for (sprig_ns_proto **pp = &node->protos; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            p->next = NULL;
            return;
        }
    }
}

static sprig_ns_proto *find_proto(const sprig_ns_node *node, uint8_t proto)
{
    for (sprig_ns_proto *p = node->protos; p != NULL; p = p->next) {
        if (p->proto == proto) {
            return p;
        }
    }
    return NULL;
}

/* ---- output ------------------------------------------------------------------------------- */

/* Queue a packet whose network header is in place (data = header). Frees it on failure. */
static sprig_status enqueue(sprig_ns_link *link, sprig_buf *buf, uint8_t tc)
{
    sprig_buf_queue *q = &link->q[tc & 3u];
    if (q->count >= SPRIG_CONFIG_NS_QUEUE_LEN) {
        link->stats.queue_drops++;
        sprig_buf_free(buf);
        return SPRIG_STATUS_UNAVAILABLE;
    }
    sprig_buf_queue_push(q, buf);
    link->ops->kick(link);
    return SPRIG_STATUS_OK;
}

static sprig_status output(sprig_ns_node *node, sprig_buf *buf, const sprig_ns_header *h)
{
    if (h->dst == node->cfg.id) {
        sprig_buf_queue_push(&node->loopback, buf);
        sprig_loop_defer(node->cfg.loop, &node->loopback_task);
        return SPRIG_STATUS_OK;
    }
    sprig_ns_link *link = sprig_ns_node_lookup(node, h->dst);
    if (link == NULL) {
        sprig_buf_free(buf);
        return SPRIG_STATUS_NOT_FOUND;
    }
    if (sprig_buf_len(buf) > link->mtu) {
        sprig_buf_free(buf);
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    return enqueue(link, buf, h->tc);
}

sprig_status sprig_ns_node_check_send(const sprig_ns_node *node, uint16_t dst, size_t len,
                                      uint8_t tc)
{
    if (node == NULL || !node->initialised || dst == SPRIG_NS_NODE_NONE ||
        tc >= SPRIG_NS_TC_COUNT) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (len > 0xFFFFu) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    if (dst == node->cfg.id) {
        return SPRIG_STATUS_OK;
    }
    const sprig_ns_link *link = sprig_ns_node_lookup(node, dst);
    if (link == NULL) {
        return SPRIG_STATUS_NOT_FOUND;
    }
    if (len > link->mtu) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    if (link->q[tc].count >= SPRIG_CONFIG_NS_QUEUE_LEN) {
        return SPRIG_STATUS_UNAVAILABLE;
    }
    return SPRIG_STATUS_OK;
}

sprig_status sprig_ns_node_send(sprig_ns_node *node, sprig_buf *buf, uint16_t dst, uint8_t proto,
                                uint8_t tc)
{
    if (buf == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (node == NULL || !node->initialised || dst == SPRIG_NS_NODE_NONE ||
        tc >= SPRIG_NS_TC_COUNT || proto == SPRIG_NS_PROTO_ICMP) {
        sprig_buf_free(buf);
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    size_t total = sprig_buf_len(buf) + SPRIG_NS_HEADER_LEN;
    uint8_t *p = total <= 0xFFFFu ? sprig_buf_push(buf, SPRIG_NS_HEADER_LEN) : NULL;
    if (p == NULL) {
        sprig_buf_free(buf);
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    sprig_ns_header h = {
        .tc = tc,
        .hop_limit = SPRIG_CONFIG_NS_HOP_LIMIT,
        .proto = proto,
        .length = (uint16_t)total,
        .dst = dst,
        .src = node->cfg.id,
    };
    (void)sprig_ns_header_emit(&h, p, SPRIG_NS_HEADER_LEN); /* fields valid by construction */
    sprig_status st = output(node, buf, &h);
    if (st == SPRIG_STATUS_OK) {
        node->stats.sent++;
    }
    return st;
}

/* Build and send an ICMP message: header + icmp header + body copied from body/len. */
static sprig_status icmp_send(sprig_ns_node *node, uint16_t dst, uint8_t tc, const sprig_ns_icmp *m,
                              const uint8_t *body, size_t len)
{
    size_t total = SPRIG_NS_HEADER_LEN + SPRIG_NS_ICMP_HEADER_LEN + len;
    sprig_buf *buf = sprig_buf_alloc(node->cfg.pool, SPRIG_CONFIG_NS_LINK_HEADROOM);
    if (buf == NULL || total > 0xFFFFu || sprig_buf_tailroom(buf) < total) {
        sprig_buf_free(buf);
        node->stats.no_buffer++;
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    uint8_t *p = sprig_buf_put(buf, total);
    if (len > 0) {
        memcpy(p + SPRIG_NS_HEADER_LEN + SPRIG_NS_ICMP_HEADER_LEN, body, len);
    }
    sprig_ns_header h = {
        .tc = tc,
        .hop_limit = SPRIG_CONFIG_NS_HOP_LIMIT,
        .proto = SPRIG_NS_PROTO_ICMP,
        .length = (uint16_t)total,
        .dst = dst,
        .src = node->cfg.id,
    };
    (void)sprig_ns_header_emit(&h, p, SPRIG_NS_HEADER_LEN);
    (void)sprig_ns_icmp_emit(&h, m, p + SPRIG_NS_HEADER_LEN, total - SPRIG_NS_HEADER_LEN);
    return output(node, buf, &h);
}

sprig_status sprig_ns_node_ping(sprig_ns_node *node, uint16_t dst, uint16_t ident, uint16_t seq,
                                const uint8_t *data, size_t len, uint8_t tc)
{
    if (node == NULL || !node->initialised || dst == SPRIG_NS_NODE_NONE ||
        tc >= SPRIG_NS_TC_COUNT || (data == NULL && len > 0)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    sprig_ns_icmp m = {.type = SPRIG_NS_ICMP_ECHO_REQUEST, .a = ident, .b = seq};
    sprig_status st = icmp_send(node, dst, tc, &m, data, len);
    if (st == SPRIG_STATUS_OK) {
        node->stats.sent++;
    }
    return st;
}

/* An error about the packet pkt[0..len) (a valid header). Never about ICMP errors, broadcasts
 * or packets from this node's own address space gone wrong. */
static void icmp_error(sprig_ns_node *node, const uint8_t *pkt, size_t len, uint8_t type,
                       uint8_t code, uint16_t a)
{
    if (sprig_ns_header_dst(pkt) == SPRIG_NS_NODE_BROADCAST) {
        return;
    }
    if (sprig_ns_header_proto(pkt) == SPRIG_NS_PROTO_ICMP &&
        (len <= SPRIG_NS_HEADER_LEN || sprig_ns_icmp_is_error(pkt[SPRIG_NS_HEADER_LEN]))) {
        return;
    }
    size_t quote = len < SPRIG_CONFIG_NS_ICMP_QUOTE ? len : SPRIG_CONFIG_NS_ICMP_QUOTE;
    sprig_ns_icmp m = {.type = type, .code = code, .a = a};
    if (icmp_send(node, sprig_ns_header_src(pkt), SPRIG_NS_TC_CONTROL, &m, pkt, quote) ==
        SPRIG_STATUS_OK) {
        node->stats.icmp_sent++;
    }
}

void sprig_ns_node_reject(sprig_ns_node *node, sprig_buf *seg, uint8_t type, uint8_t code,
                          uint16_t param)
{
    if (seg == NULL) {
        return;
    }
    uint8_t *p = sprig_buf_push(seg, SPRIG_NS_HEADER_LEN);
    if (p != NULL && sprig_ns_header_check(p, sprig_buf_len(seg)) == SPRIG_STATUS_OK) {
        icmp_error(node, p, sprig_buf_len(seg), type, code, param);
    }
    sprig_buf_free(seg);
}

/* ---- input -------------------------------------------------------------------------------- */

static void icmp_input(sprig_ns_node *node, const sprig_ns_header *h, sprig_buf *buf)
{
    uint8_t *pkt = sprig_buf_data(buf);
    uint8_t *msg = pkt + SPRIG_NS_HEADER_LEN;
    size_t mlen = h->length - SPRIG_NS_HEADER_LEN;
    sprig_ns_icmp m;
    if (sprig_ns_icmp_parse(h, msg, mlen, &m) != SPRIG_STATUS_OK) {
        node->stats.bad_icmp++;
        sprig_buf_free(buf);
        return;
    }
    node->stats.delivered++;
    const uint8_t *body = msg + SPRIG_NS_ICMP_HEADER_LEN;
    size_t blen = mlen - SPRIG_NS_ICMP_HEADER_LEN;
    if (m.type == SPRIG_NS_ICMP_ECHO_REQUEST) {
        /* Reply in place: same buffer, addresses swapped, type changed. */
        sprig_ns_header r = {
            .tc = h->tc,
            .hop_limit = SPRIG_CONFIG_NS_HOP_LIMIT,
            .proto = SPRIG_NS_PROTO_ICMP,
            .length = h->length,
            .dst = h->src,
            .src = node->cfg.id,
        };
        m.type = SPRIG_NS_ICMP_ECHO_REPLY;
        (void)sprig_ns_header_emit(&r, pkt, SPRIG_NS_HEADER_LEN);
        (void)sprig_ns_icmp_emit(&r, &m, msg, mlen);
        if (output(node, buf, &r) == SPRIG_STATUS_OK) {
            node->stats.icmp_sent++;
        }
        return;
    }
    if (m.type == SPRIG_NS_ICMP_ECHO_REPLY) {
        if (node->cfg.on_icmp != NULL) {
            node->cfg.on_icmp(node, h, &m, body, blen, node->cfg.icmp_arg);
        }
        sprig_buf_free(buf);
        return;
    }
    if (!sprig_ns_icmp_is_error(m.type) || blen < SPRIG_NS_HEADER_LEN ||
        (body[0] >> 6) != SPRIG_NS_VERSION || ((body[6] << 8) | body[7]) != node->cfg.id) {
        /* Unknown type, or an error quoting something this node did not send. */
        node->stats.bad_icmp++;
        sprig_buf_free(buf);
        return;
    }
    sprig_ns_header orig = {
        .tc = sprig_ns_header_tc(body),
        .hop_limit = sprig_ns_header_hop_limit(body),
        .proto = sprig_ns_header_proto(body),
        .length = sprig_ns_header_length(body),
        .dst = sprig_ns_header_dst(body),
        .src = sprig_ns_header_src(body),
    };
    sprig_status st = sprig_ns_icmp_status(&m);
    if (orig.proto == SPRIG_NS_PROTO_ICMP) {
        if (node->cfg.on_icmp != NULL) {
            node->cfg.on_icmp(node, h, &m, body, blen, node->cfg.icmp_arg);
        }
    } else {
        sprig_ns_proto *p = find_proto(node, orig.proto);
        if (p != NULL && p->error != NULL) {
            p->error(p, &orig, body + SPRIG_NS_HEADER_LEN, blen - SPRIG_NS_HEADER_LEN, &m, st);
        }
    }
    sprig_buf_free(buf);
}

static void deliver(sprig_ns_node *node, const sprig_ns_header *h, sprig_buf *buf)
{
    if (h->proto == SPRIG_NS_PROTO_ICMP) {
        icmp_input(node, h, buf);
        return;
    }
    sprig_ns_proto *p = find_proto(node, h->proto);
    if (p == NULL) {
        node->stats.no_proto++;
        icmp_error(node, sprig_buf_data(buf), sprig_buf_len(buf), SPRIG_NS_ICMP_UNREACHABLE,
                   SPRIG_NS_UNREACH_PROTO, 0);
        sprig_buf_free(buf);
        return;
    }
    node->stats.delivered++;
    (void)sprig_buf_pull(buf, SPRIG_NS_HEADER_LEN);
    p->input(p, h, buf);
}

static void loopback_run(void *arg)
{
    sprig_ns_node *node = arg;
    /* Only what is queued now: packets queued by the handlers wait for the next pass. */
    size_t n = node->loopback.count;
    while (n-- > 0) {
        sprig_buf *buf = sprig_buf_queue_pop(&node->loopback);
        node->stats.rx++;
        node_input(node, NULL, buf);
    }
}

static void forward(sprig_ns_node *node, const sprig_ns_header *h, sprig_buf *buf)
{
    uint8_t *pkt = sprig_buf_data(buf);
    size_t len = sprig_buf_len(buf);
    if (h->hop_limit <= 1) {
        node->stats.hop_expired++;
        icmp_error(node, pkt, len, SPRIG_NS_ICMP_TIME_EXCEEDED, 0, 0);
        sprig_buf_free(buf);
        return;
    }
    sprig_ns_link *out = sprig_ns_node_lookup(node, h->dst);
    if (out == NULL) {
        node->stats.no_route++;
        icmp_error(node, pkt, len, SPRIG_NS_ICMP_UNREACHABLE, SPRIG_NS_UNREACH_NO_ROUTE, 0);
        sprig_buf_free(buf);
        return;
    }
    if (len > out->mtu) {
        node->stats.too_big++;
        icmp_error(node, pkt, len, SPRIG_NS_ICMP_TOO_BIG, 0, out->mtu);
        sprig_buf_free(buf);
        return;
    }
    sprig_ns_header_set_hop_limit(pkt, (uint8_t)(h->hop_limit - 1));
    if (enqueue(out, buf, h->tc) == SPRIG_STATUS_OK) {
        node->stats.forwarded++;
    } else {
        node->stats.queue_drops++;
    }
}

static void node_input(sprig_ns_node *node, sprig_ns_link *in, sprig_buf *buf)
{
    (void)in;
    if (in != NULL) {
        node->stats.rx++;
    }
    sprig_ns_header h;
    if (sprig_ns_header_parse(sprig_buf_data(buf), sprig_buf_len(buf), &h) != SPRIG_STATUS_OK) {
        node->stats.bad_header++;
        sprig_buf_free(buf);
        return;
    }
    (void)sprig_buf_trim(buf, h.length); /* links may pad */
    if (h.dst == node->cfg.id || h.dst == SPRIG_NS_NODE_BROADCAST) {
        deliver(node, &h, buf);
    } else if (!node->cfg.forwarding) {
        node->stats.not_for_me++;
        sprig_buf_free(buf);
    } else {
        forward(node, &h, buf);
    }
}
