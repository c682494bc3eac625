/* os_open.c — a host netstack endpoint (node + link + DGRAM and STREAM backends) from a URL
 * (sprig/ns_os.h, docs/netstack.md §11). A host convenience: it allocates. */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "sprig/ns_os.h"

#define DEFAULT_BUFS  64u
#define DEFAULT_SOCKS 16u
#define DEFAULT_MTU   1024u
#define DEFAULT_CONNS 8u
#define DEFAULT_RING  4096u
#define DEFAULT_MSG   4096u
#define DEFAULT_PEERS 16u
#define MAX_PEERS     4096u

typedef struct query {
    uint32_t node, peer, baud, mtu, bind, peers;
    bool listen;
} query;

/* The caller's one-line explanation of a failure (opts->error), if it asked for one. */
typedef struct why {
    char *buf;
    size_t cap;
} why;

static sprig_status fail(why *w, sprig_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static sprig_status fail(why *w, sprig_status st, const char *fmt, ...)
{
    if (w->buf != NULL && w->cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->buf, w->cap, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* Decimal or 0x-hex, 0..max. */
static bool parse_num(const char *p, size_t len, uint32_t max, uint32_t *out)
{
    uint32_t base = 10, v = 0;
    if (len > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
        len -= 2;
    }
    if (len == 0 || len > 10) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        uint32_t d;
        if (c >= '0' && c <= '9') {
            d = (uint32_t)(c - '0');
        } else if (base == 16 && c >= 'a' && c <= 'f') {
            d = (uint32_t)(c - 'a' + 10);
        } else if (base == 16 && c >= 'A' && c <= 'F') {
            d = (uint32_t)(c - 'A' + 10);
        } else {
            return false;
        }
        if (d > max || v > (max - d) / base) {
            return false;
        }
        v = v * base + d;
    }
    *out = v;
    return true;
}

static bool key_is(const char *k, size_t klen, const char *name)
{
    return klen == strlen(name) && memcmp(k, name, klen) == 0;
}

static sprig_status parse_query(sprig_str q, query *out, why *w)
{
    out->node = 1;
    out->peer = 2;
    out->baud = 0;
    out->mtu = DEFAULT_MTU;
    out->bind = 0;
    out->peers = DEFAULT_PEERS;
    out->listen = false;
    size_t i = 0;
    while (q.ptr != NULL && i < q.len) {
        size_t end = i;
        while (end < q.len && q.ptr[end] != '&') {
            end++;
        }
        const char *k = q.ptr + i;
        size_t kl = 0;
        while (i + kl < end && k[kl] != '=') {
            kl++;
        }
        const char *v = i + kl < end ? k + kl + 1 : NULL;
        size_t vl = v != NULL ? (size_t)(q.ptr + end - v) : 0;
        bool ok;
        const char *want = NULL;
        if (kl == 0) {
            ok = true; /* "a&&b" or a trailing '&' */
        } else if (key_is(k, kl, "node")) {
            ok = v != NULL && parse_num(v, vl, 0xFFFE, &out->node) && out->node != 0;
            want = "a node id 1..65534 (decimal or 0x hex)";
        } else if (key_is(k, kl, "peer")) {
            ok = v != NULL && parse_num(v, vl, 0xFFFE, &out->peer) && out->peer != 0;
            want = "a node id 1..65534 (decimal or 0x hex)";
        } else if (key_is(k, kl, "baud")) {
            ok = v != NULL && parse_num(v, vl, 4000000, &out->baud);
            want = "a standard rate 9600..4000000";
            if (ok && out->baud == 1200) {
                return fail(w, SPRIG_STATUS_INVALID_ARGUMENT,
                            "baud=1200 is refused: opening a USB serial port at 1200 baud "
                            "reboots a Raspberry Pi Pico into its bootloader");
            }
        } else if (key_is(k, kl, "mtu")) {
            ok = v != NULL && parse_num(v, vl, 65535, &out->mtu);
            want = "a number";
        } else if (key_is(k, kl, "bind")) {
            ok = v != NULL && parse_num(v, vl, 65535, &out->bind);
            want = "a UDP port 0..65535";
        } else if (key_is(k, kl, "peers")) {
            ok = v != NULL && parse_num(v, vl, MAX_PEERS, &out->peers) && out->peers != 0;
            want = "a table size 1..4096";
        } else if (key_is(k, kl, "listen")) {
            uint32_t l = 1;
            ok = v == NULL || (parse_num(v, vl, 1, &l));
            out->listen = l != 0;
            want = "nothing, 0 or 1";
        } else {
            /* unknown keys are refused: a typo must not pass silently */
            return fail(w, SPRIG_STATUS_INVALID_ARGUMENT,
                        "unknown query key '%.*s' (known: node, peer, baud, mtu, bind, listen, "
                        "peers)",
                        (int)kl, k);
        }
        if (!ok) {
            if (v == NULL || vl == 0) {
                return fail(w, SPRIG_STATUS_INVALID_ARGUMENT, "%.*s= needs a value: %s", (int)kl, k,
                            want);
            }
            return fail(w, SPRIG_STATUS_INVALID_ARGUMENT, "bad %.*s=%.*s: want %s", (int)kl, k,
                        (int)vl, v, want);
        }
        i = end + 1;
    }
    return SPRIG_STATUS_OK;
}

bool sprig_ns_os_handles(const sprig_url *url)
{
    return url->scheme == SPRIG_URL_SERIAL || sprig_url_scheme_is(url, "sprig+udp");
}

/* The URL's host as an address: an IP literal directly, a name through getaddrinfo (the first
 * IPv4 result, else the first IPv6 one). */
static sprig_status resolve(const sprig_url *u, sprig_addr *out)
{
    if (u->host_is_ip) {
        *out = u->addr;
        return SPRIG_STATUS_OK;
    }
    char host[256];
    if (sprig_str_copy(u->host, host, sizeof(host)) != SPRIG_STATUS_OK) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL) {
        return SPRIG_STATUS_NOT_FOUND;
    }
    sprig_status st = SPRIG_STATUS_NOT_FOUND;
    for (int pass = 0; pass < 2 && st != SPRIG_STATUS_OK; pass++) {
        for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
            if (pass == 0 && ai->ai_family == AF_INET) {
                const struct sockaddr_in *in4 = (const struct sockaddr_in *)(void *)ai->ai_addr;
                sprig_addr_from_ipv4(out, ntohl(in4->sin_addr.s_addr), 0);
                st = SPRIG_STATUS_OK;
                break;
            }
            if (pass == 1 && ai->ai_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(void *)ai->ai_addr;
                memcpy(out->ip, in6->sin6_addr.s6_addr, 16);
                st = SPRIG_STATUS_OK;
                break;
            }
        }
    }
    freeaddrinfo(res);
    out->port = u->port;
    return st;
}

static sprig_status open_link(sprig_os_loop *ol, const sprig_url *u, const query *q,
                              sprig_ns_os_endpoint *ep, why *w)
{
    if (u->scheme == SPRIG_URL_SERIAL) {
        char *path = malloc(u->path.len + 1);
        if (path == NULL) {
            return SPRIG_STATUS_RESOURCE_EXHAUSTED;
        }
        sprig_status st = sprig_str_copy(u->path, path, u->path.len + 1);
        int err = 0;
        if (st == SPRIG_STATUS_OK) {
            sprig_ns_serial_fd_cfg c = {.pool = &ep->pool, .mtu = (uint16_t)q->mtu};
            errno = 0;
            st = sprig_ns_serial_fd_open(&ep->serial, ol, path, q->baud, &c);
            err = errno;
        }
        if (st == SPRIG_STATUS_OK) {
            /* opened */
        } else if (st == SPRIG_STATUS_INVALID_ARGUMENT) {
            (void)fail(w, st, "cannot use %s at baud %u (standard rates 9600..4000000)", path,
                       (unsigned)q->baud);
        } else if (err == ENOENT || err == ENOTDIR) {
            (void)fail(w, st, "serial device %s not found", path);
        } else if (err == EACCES) {
            (void)fail(w, st, "no permission to open %s (is the user in its group, e.g. dialout?)",
                       path);
        } else if (err == EPERM) {
            (void)fail(w, st, "%s cannot be watched: not a tty, pty, fifo or socket", path);
        } else {
            (void)fail(w, st, "cannot open serial device %s: %s", path,
                       err != 0 ? strerror(err) : sprig_status_str(st));
        }
        free(path);
        return st;
    }
    if (!u->has_port) {
        return fail(w, SPRIG_STATUS_INVALID_ARGUMENT, "sprig+udp needs HOST:PORT");
    }
    sprig_addr host;
    sprig_status st = resolve(u, &host);
    if (st != SPRIG_STATUS_OK) {
        return fail(w, st, "host '%.*s' not found", (int)u->host.len, u->host.ptr);
    }
    sprig_ns_udp_cfg c = {.pool = &ep->pool, .mtu = (uint16_t)q->mtu};
    if (q->listen) {
        c.local = host; /* HOST:PORT is ours; the peers are learnt */
        ep->peers = calloc(q->peers, sizeof(*ep->peers));
        if (ep->peers == NULL) {
            return SPRIG_STATUS_RESOURCE_EXHAUSTED;
        }
        c.peers = ep->peers;
        c.peer_cap = q->peers;
    } else {
        if (host.port == 0) {
            return fail(w, SPRIG_STATUS_INVALID_ARGUMENT,
                        "sprig+udp: port 0 only when listening (add ?listen=1)");
        }
        c.peer = host;
        c.has_peer = true;
        memset(&c.local, 0, sizeof(c.local));
        if (sprig_addr_is_ipv4(&host)) {
            sprig_addr_from_ipv4(&c.local, 0, (uint16_t)q->bind); /* 0.0.0.0 */
        } else {
            c.local.port = (uint16_t)q->bind; /* :: */
        }
    }
    st = sprig_ns_udp_init(&ep->udp, ol, &c);
    if (st == SPRIG_STATUS_ALREADY_EXISTS) {
        (void)fail(w, st, "UDP port %u is already in use",
                   (unsigned)(q->listen ? host.port : q->bind));
    } else if (st != SPRIG_STATUS_OK) {
        (void)fail(w, st, "cannot open the UDP socket: %s", strerror(errno));
    }
    return st;
}

sprig_status sprig_ns_os_open(sprig_os_loop *ol, const char *url, const sprig_ns_os_opts *opts,
                              sprig_ns_os_endpoint **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (ol == NULL || url == NULL || out == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    why w = {.buf = opts != NULL ? opts->error : NULL, .cap = opts != NULL ? opts->error_cap : 0};
    if (w.buf != NULL && w.cap > 0) {
        w.buf[0] = '\0';
    }
    sprig_url u;
    query q;
    sprig_status st = sprig_url_parse(url, &u);
    if (st != SPRIG_STATUS_OK && strncasecmp(url, "serial:", 7) == 0 &&
        (url[7] == '\0' || url[7] == '?')) {
        return fail(&w, st, "serial: needs a device path, e.g. serial:/dev/ttyACM0");
    }
    if (st != SPRIG_STATUS_OK) {
        return fail(&w, st,
                    "not a valid URL (serial:PATH?node=N&peer=P or "
                    "sprig+udp://HOST:PORT?node=N...)");
    }
    if (!sprig_ns_os_handles(&u)) {
        return fail(&w, SPRIG_STATUS_UNIMPLEMENTED, "not a netstack URL (serial: or sprig+udp:)");
    }
    if (u.scheme == SPRIG_URL_SERIAL && u.path.len == 0) {
        return fail(&w, SPRIG_STATUS_INVALID_ARGUMENT,
                    "serial: needs a device path, e.g. serial:/dev/ttyACM0");
    }
    st = parse_query(u.query, &q, &w);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    bool udp = u.scheme != SPRIG_URL_SERIAL;
    uint32_t max_mtu = udp ? SPRIG_NS_UDP_MAX_MTU : SPRIG_CONFIG_NS_MAX_MTU;
    if (q.mtu < 64 || q.mtu > max_mtu) {
        return fail(&w, SPRIG_STATUS_INVALID_ARGUMENT, "bad mtu=%u: want 64..%u", (unsigned)q.mtu,
                    (unsigned)max_mtu);
    }
    if (udp && !q.listen && u.has_port && u.port == 0) {
        return fail(&w, SPRIG_STATUS_INVALID_ARGUMENT,
                    "sprig+udp: port 0 only when listening (add ?listen=1)");
    }
    size_t nbufs = opts != NULL && opts->bufs != 0 ? opts->bufs : DEFAULT_BUFS;
    size_t nsocks = opts != NULL && opts->socks != 0 ? opts->socks : DEFAULT_SOCKS;
    size_t nconns = opts != NULL && opts->conns != 0 ? opts->conns : DEFAULT_CONNS;
    uint32_t ring = opts != NULL && opts->stream_buf != 0 ? opts->stream_buf : DEFAULT_RING;
    size_t max_msg = opts != NULL && opts->max_message != 0 ? opts->max_message : DEFAULT_MSG;
    if (nconns > 4096 || max_msg > (1u << 24) || ring > (1u << 24)) {
        return fail(&w, SPRIG_STATUS_INVALID_ARGUMENT, "endpoint options out of range");
    }
    /* keepalive: a peer that vanished (killed, cable pulled) frees its connection within a
     * minute instead of holding it forever */
    sprig_ns_stream_cfg sc = {.tc = SPRIG_NS_TC_DEFAULT,
                              .tx_buf = ring,
                              .rx_buf = ring,
                              .keepalive_idle = 15000000u, /* µs */
                              .keepalive_interval = 5000000u};
    size_t ring_len = sprig_ns_stream_ring_size(&sc, nconns);
    size_t framed_len = nconns * 2 * (max_msg + 4);
    /* room for the packet, the serial CRC, and a byte over the MTU to spot oversized
     * datagrams; rounded up to the pool alignment */
    size_t bsize = q.mtu + SPRIG_NS_SERIAL_CRC_LEN + 1;
    /* a SEQPACKET message is built whole in one buffer (sprig_sock_alloc_tx) behind the stream
     * headers and the 4-byte length prefix, before being copied into the send ring */
    if (bsize < SPRIG_NS_STREAM_HEADROOM + 4 + max_msg + 64) {
        bsize = SPRIG_NS_STREAM_HEADROOM + 4 + max_msg + 64;
    }
    bsize = (bsize + SPRIG_CONFIG_BUF_ALIGN - 1) / SPRIG_CONFIG_BUF_ALIGN * SPRIG_CONFIG_BUF_ALIGN;

    sprig_ns_os_endpoint *ep = calloc(1, sizeof(*ep));
    if (ep == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    ep->serial.fd = -1;
    ep->udp.fd = -1;
    ep->is_udp = u.scheme != SPRIG_URL_SERIAL;
    ep->pool_bufs = calloc(nbufs, sizeof(sprig_buf));
    ep->pool_mem = aligned_alloc(SPRIG_CONFIG_BUF_ALIGN, nbufs * bsize);
    ep->socks = calloc(nsocks, sizeof(sprig_ns_dsock));
    ep->conns = calloc(nconns, sizeof(sprig_ns_conn));
    ep->rings = malloc(ring_len);
    ep->framed = calloc(nconns, sizeof(sprig_framed_sock));
    ep->framed_mem = malloc(framed_len);
    if (ep->pool_bufs == NULL || ep->pool_mem == NULL || ep->socks == NULL || ep->conns == NULL ||
        ep->rings == NULL || ep->framed == NULL || ep->framed_mem == NULL) {
        sprig_ns_os_close(ep);
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    st = sprig_buf_pool_init(&ep->pool, ep->pool_bufs, ep->pool_mem, nbufs, bsize);
    sprig_ns_node_cfg nc = {.id = (uint16_t)q.node,
                            .loop = &ol->loop,
                            .pool = &ep->pool,
                            .routes = ep->routes,
                            .route_cap = sizeof(ep->routes) / sizeof(ep->routes[0]),
                            .on_icmp = opts != NULL ? opts->on_icmp : NULL,
                            .icmp_arg = opts != NULL ? opts->icmp_arg : NULL};
    if (st == SPRIG_STATUS_OK) {
        st = sprig_ns_node_init(&ep->node, &nc);
    }
    if (st == SPRIG_STATUS_OK) {
        st = open_link(ol, &u, &q, ep, &w);
    }
    sprig_ns_link *link = udp ? &ep->udp.link : &ep->serial.serial.link;
    if (st == SPRIG_STATUS_OK) {
        st = sprig_ns_node_attach(&ep->node, link);
    }
    if (st == SPRIG_STATUS_OK) {
        st = sprig_ns_node_add_route(&ep->node, 0, 0, link);
    }
    if (st == SPRIG_STATUS_OK) {
        sprig_ns_dgram_cfg dc = {.rx_queue_len = 16, .tc = SPRIG_NS_TC_DEFAULT};
        st = sprig_ns_dgram_init(&ep->dgram, &ep->node, &dc, ep->socks, nsocks, &ep->pool);
    }
    if (st == SPRIG_STATUS_OK) {
        /* registered after DGRAM: the loop asks it first, it hands DGRAM requests over */
        sc.dgram = &ep->dgram;
        st = sprig_ns_stream_init(&ep->stream, &ep->node, &sc, ep->conns, nconns, ep->rings,
                                  ring_len, &ep->pool);
    }
    if (st == SPRIG_STATUS_OK) {
        st = sprig_ns_stream_enable_seqpacket(&ep->stream, ep->framed, nconns, ep->framed_mem,
                                              framed_len, max_msg);
    }
    if (st != SPRIG_STATUS_OK) {
        sprig_ns_os_close(ep);
        return st;
    }
    ep->peer = (uint16_t)q.peer;
    *out = ep;
    return SPRIG_STATUS_OK;
}

void sprig_ns_os_close(sprig_ns_os_endpoint *ep)
{
    if (ep == NULL) {
        return;
    }
    sprig_ns_stream_deinit(&ep->stream);
    sprig_ns_dgram_deinit(&ep->dgram);
    sprig_ns_serial_fd_deinit(&ep->serial);
    sprig_ns_udp_deinit(&ep->udp);
    sprig_ns_node_deinit(&ep->node);
    sprig_buf_pool_deinit(&ep->pool);
    free(ep->socks);
    free(ep->conns);
    free(ep->rings);
    free(ep->framed);
    free(ep->framed_mem);
    free(ep->pool_mem);
    free(ep->pool_bufs);
    free(ep->peers);
    free(ep);
}
