/* udp.c — UDP encapsulation: one netstack packet per UDP datagram (docs/netstack.md §7). */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sprig/ns_os.h"
#include "sprig/ns_wire.h"

typedef union sockaddr_any {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
    struct sockaddr_storage ss;
} sockaddr_any;

static socklen_t to_sockaddr(const sprig_addr *a, int family, sockaddr_any *out)
{
    memset(out, 0, sizeof(*out));
    if (family == AF_INET) {
        out->in4.sin_family = AF_INET;
        out->in4.sin_port = htons(a->port);
        out->in4.sin_addr.s_addr = htonl(sprig_addr_ipv4(a));
        return (socklen_t)sizeof(out->in4);
    }
    out->in6.sin6_family = AF_INET6;
    out->in6.sin6_port = htons(a->port);
    memcpy(out->in6.sin6_addr.s6_addr, a->ip, 16);
    return (socklen_t)sizeof(out->in6);
}

static bool from_sockaddr(const sockaddr_any *sa, sprig_addr *out)
{
    if (sa->sa.sa_family == AF_INET) {
        sprig_addr_from_ipv4(out, ntohl(sa->in4.sin_addr.s_addr), ntohs(sa->in4.sin_port));
        return true;
    }
    if (sa->sa.sa_family == AF_INET6) {
        memcpy(out->ip, sa->in6.sin6_addr.s6_addr, 16);
        out->port = ntohs(sa->in6.sin6_port);
        return true;
    }
    return false;
}

static void set_out(sprig_ns_udp *u, bool on)
{
    if (u->want_out == on || !u->watching) {
        return;
    }
    uint32_t ev = SPRIG_OS_EV_IN | (on ? SPRIG_OS_EV_OUT : 0u);
    if (sprig_os_loop_mod_fd(u->ol, &u->watch, ev) == SPRIG_STATUS_OK) {
        u->want_out = on;
    }
}

/* One sendto: 0 when sent or dropped (counted), EAGAIN when the socket is full. */
static int send_one(sprig_ns_udp *u, const sprig_buf *b, const sprig_addr *to_addr)
{
    sockaddr_any to;
    socklen_t tl = to_sockaddr(to_addr, u->family, &to);
    ssize_t n;
    do {
        n = sendto(u->fd, sprig_buf_data(b), sprig_buf_len(b), MSG_NOSIGNAL, &to.sa, tl);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
        return EAGAIN;
    }
    if (n < 0) {
        u->stats.tx_errors++; /* e.g. ECONNREFUSED from an earlier ICMP: drop, go on */
    } else {
        u->stats.tx_datagrams++;
    }
    return 0;
}

static sprig_ns_udp_peer *find_peer(const sprig_ns_udp *u, uint16_t node)
{
    for (size_t i = 0; i < u->peer_cap; i++) {
        if (u->peers[i].node == node && node != SPRIG_NS_NODE_NONE) {
            return &u->peers[i];
        }
    }
    return NULL;
}

/* Listening: remember that `node` is at `from` (a new node takes a free row, else the one
 * heard from least recently). */
static void learn(sprig_ns_udp *u, uint16_t node, const sprig_addr *from)
{
    u->heard++;
    sprig_ns_udp_peer *row = find_peer(u, node);
    if (row == NULL) {
        sprig_ns_udp_peer *oldest = NULL;
        for (size_t i = 0; i < u->peer_cap && row == NULL; i++) {
            sprig_ns_udp_peer *p = &u->peers[i];
            if (p->node == SPRIG_NS_NODE_NONE) {
                row = p;
            } else if (oldest == NULL || p->heard < oldest->heard) {
                oldest = p;
            }
        }
        if (row == NULL) {
            row = oldest;
            u->stats.evicted++;
        }
        row->node = node;
    }
    row->addr = *from;
    row->heard = u->heard;
}

/* Listening: a broadcast goes to every known peer, best effort (a copy the socket cannot take
 * now is dropped and counted in tx_errors, not retried). */
static void broadcast(sprig_ns_udp *u, const sprig_buf *b)
{
    for (size_t i = 0; i < u->peer_cap; i++) {
        if (u->peers[i].node != SPRIG_NS_NODE_NONE && send_one(u, b, &u->peers[i].addr) != 0) {
            u->stats.tx_errors++;
        }
    }
}

/* Send queued packets until the socket is full (then EPOLLOUT) or the queues are empty. */
static void pump(sprig_ns_udp *u)
{
    for (;;) {
        sprig_buf *b = u->tx_buf;
        sprig_addr to = u->tx_to;
        u->tx_buf = NULL;
        if (b == NULL) {
            b = sprig_ns_link_next(&u->link);
            if (b == NULL) {
                return;
            }
            if (u->has_peer) {
                to = u->peer;
            } else {
                /* the node only queues packets it built or checked: the header is there */
                uint16_t dst = sprig_buf_len(b) >= SPRIG_NS_HEADER_LEN
                                   ? sprig_ns_header_dst(sprig_buf_data(b))
                                   : SPRIG_NS_NODE_NONE;
                const sprig_ns_udp_peer *p = find_peer(u, dst);
                if (dst == SPRIG_NS_NODE_BROADCAST) {
                    broadcast(u, b);
                } else if (p == NULL) {
                    u->stats.no_peer++;
                }
                if (p == NULL) {
                    sprig_buf_free(b);
                    continue;
                }
                to = p->addr;
            }
        }
        if (send_one(u, b, &to) != 0) {
            u->tx_buf = b; /* back-pressure: the rest waits in the node's class queues */
            u->tx_to = to;
            u->stats.write_stalls++;
            set_out(u, true);
            return;
        }
        sprig_buf_free(b);
    }
}

static void udp_kick(sprig_ns_link *link)
{
    sprig_ns_udp *u = (sprig_ns_udp *)link;
    if (u->tx_buf == NULL) {
        pump(u);
    }
}

static const sprig_ns_link_ops udp_ops = {.kick = udp_kick};

static void receive(sprig_ns_udp *u)
{
    unsigned errors = 0;
    for (;;) {
        sprig_buf *b = sprig_buf_alloc(u->cfg.pool, 0);
        uint8_t scratch[16];
        uint8_t *dst = b != NULL ? sprig_buf_data(b) : scratch;
        size_t cap = b != NULL ? sprig_buf_tailroom(b) : sizeof(scratch);
        sockaddr_any from;
        socklen_t fl = (socklen_t)sizeof(from);
        memset(&from, 0, sizeof(from));
        ssize_t n = recvfrom(u->fd, dst, cap, MSG_TRUNC, &from.sa, &fl);
        if (n < 0) {
            sprig_buf_free(b);
            if (errno == EINTR) {
                continue;
            }
            /* EAGAIN: drained. Anything else (a pending socket error such as ECONNREFUSED
             * after an ICMP error) is consumed by reporting it: try again, a few times, since
             * edge-triggered readiness will not announce datagrams already queued. */
            if (errno == EAGAIN || errno == EWOULDBLOCK || ++errors > 8) {
                return;
            }
            continue;
        }
        sprig_addr src;
        if (b == NULL) {
            u->stats.no_buffer++;
            continue;
        }
        if (!from_sockaddr(&from, &src)) {
            u->stats.wrong_peer++;
            sprig_buf_free(b);
            continue;
        }
        if (u->has_peer && !sprig_addr_equal(&src, &u->peer)) {
            u->stats.wrong_peer++;
            sprig_buf_free(b);
            continue;
        }
        if ((size_t)n > u->link.mtu || (size_t)n > cap) {
            u->stats.too_long++;
            sprig_buf_free(b);
            continue;
        }
        if (sprig_ns_header_check(dst, (size_t)n) != SPRIG_STATUS_OK) {
            u->stats.bad++;
            sprig_buf_free(b);
            continue;
        }
        if (!u->has_peer) {
            learn(u, sprig_ns_header_src(dst), &src);
        }
        (void)sprig_buf_put(b, (size_t)n);
        u->stats.rx_datagrams++;
        sprig_ns_link_input(&u->link, b);
        if (!u->watching) {
            return;
        }
    }
}

static void on_fd(sprig_os_fd *watch, uint32_t events)
{
    sprig_ns_udp *u = watch->arg;
    if (events & (SPRIG_OS_EV_IN | SPRIG_OS_EV_ERR)) {
        receive(u);
    }
    if ((events & SPRIG_OS_EV_OUT) && u->watching) {
        set_out(u, false);
        pump(u);
    }
}

sprig_status sprig_ns_udp_init(sprig_ns_udp *u, sprig_os_loop *ol, const sprig_ns_udp_cfg *cfg)
{
    if (u == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(u, 0, sizeof(*u));
    u->fd = -1;
    if (ol == NULL || cfg == NULL || cfg->pool == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    uint16_t mtu = cfg->mtu != 0 ? cfg->mtu : 1024;
    if (mtu < 64 || mtu > SPRIG_NS_UDP_MAX_MTU || cfg->pool->buf_size < mtu) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (!cfg->has_peer && cfg->peers != NULL && cfg->peer_cap == 0) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    bool v4 = sprig_addr_is_ipv4(&cfg->local);
    if (cfg->has_peer && sprig_addr_is_ipv4(&cfg->peer) != v4) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    u->cfg = *cfg;
    u->cfg.mtu = mtu;
    u->family = v4 ? AF_INET : AF_INET6;
    u->fd = socket(u->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (u->fd < 0) {
        return sprig_os_status_from_errno(errno);
    }
    sockaddr_any sa;
    socklen_t sl = to_sockaddr(&cfg->local, u->family, &sa);
    sprig_status st = SPRIG_STATUS_OK;
    if (bind(u->fd, &sa.sa, sl) != 0) {
        st = sprig_os_status_from_errno(errno);
    }
    if (st == SPRIG_STATUS_OK) {
        st = sprig_os_loop_add_fd(ol, &u->watch, u->fd, SPRIG_OS_EV_IN, on_fd, u);
    }
    if (st != SPRIG_STATUS_OK) {
        (void)close(u->fd);
        u->fd = -1;
        return st;
    }
    u->ol = ol;
    u->watching = true;
    u->peer = cfg->peer;
    u->has_peer = cfg->has_peer;
    if (!u->has_peer) {
        u->peers = cfg->peers != NULL ? cfg->peers : &u->one;
        u->peer_cap = cfg->peers != NULL ? cfg->peer_cap : 1;
        memset(u->peers, 0, u->peer_cap * sizeof(*u->peers));
    }
    (void)sprig_ns_link_init(&u->link, &udp_ops, mtu);
    return SPRIG_STATUS_OK;
}

void sprig_ns_udp_deinit(sprig_ns_udp *u)
{
    if (u == NULL) {
        return;
    }
    if (u->watching) {
        sprig_os_loop_del_fd(u->ol, &u->watch);
        u->watching = false;
    }
    if (u->link.ops == NULL) {
        return; /* zeroed, failed init or already deinitialised: nothing is ours */
    }
    sprig_ns_link_deinit(&u->link);
    u->link.ops = NULL;
    sprig_buf_free(u->tx_buf);
    u->tx_buf = NULL;
    if (u->fd >= 0) {
        (void)close(u->fd);
    }
    u->fd = -1;
}

sprig_status sprig_ns_udp_local(const sprig_ns_udp *u, sprig_addr *out)
{
    if (u == NULL || out == NULL || u->fd < 0) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    sockaddr_any sa;
    socklen_t sl = (socklen_t)sizeof(sa);
    memset(&sa, 0, sizeof(sa));
    if (getsockname(u->fd, &sa.sa, &sl) != 0) {
        return sprig_os_status_from_errno(errno);
    }
    return from_sockaddr(&sa, out) ? SPRIG_STATUS_OK : SPRIG_STATUS_INTERNAL;
}

sprig_status sprig_ns_udp_peer_addr(const sprig_ns_udp *u, uint16_t node, sprig_addr *out)
{
    if (u == NULL || out == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (u->has_peer) {
        *out = u->peer;
        return SPRIG_STATUS_OK;
    }
    const sprig_ns_udp_peer *p = find_peer(u, node);
    if (p == NULL) {
        return SPRIG_STATUS_NOT_FOUND;
    }
    *out = p->addr;
    return SPRIG_STATUS_OK;
}

size_t sprig_ns_udp_peer_count(const sprig_ns_udp *u)
{
    size_t n = 0;
    for (size_t i = 0; u != NULL && i < u->peer_cap; i++) {
        n += u->peers[i].node != SPRIG_NS_NODE_NONE;
    }
    return n;
}
