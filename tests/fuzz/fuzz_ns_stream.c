/*
 * fuzz_ns_stream.c — the netstack STREAM transport under hostile segments.
 *
 * A node (0x0102) with the STREAM backend: a listener on port 7 and a client connecting to
 * 0x0105:80. The input is a list of records [op][len][len bytes]:
 *   op & 7 == 0..3  a segment from node 0x0105 (the bytes, header first). Unless op bit 7 is set
 *                   the checksum is made valid; with op bit 6 set, seq and ack are taken as
 *                   offsets from the first connection's rcv_nxt and snd_una (so the fuzzer
 *                   reaches the established states without guessing numbers).
 *   op & 7 == 4     time passes: len * 10 ms (timers: retransmission, persist, keepalive).
 *   op & 7 == 5     the application sends len bytes on every open socket.
 *   op & 7 == 6     the application reads (len bytes at most) from every socket and accepts.
 *   op & 7 == 7     the application shuts down (len even) or closes (len odd) its sockets.
 * Segments the node sends go out on a link into nowhere, after a header check. Invariants are
 * checked after every record; at the end every socket is closed, the backend deinitialised and
 * every buffer must be back in the pool. A violated invariant aborts.
 */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "sprig/clock.h"
#include "sprig/ns_stream.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

enum { NBUFS = 32, BUF_SIZE = 512, NCONNS = 4, RING = 1024, NSOCKS = 4, PEER = 0x0105 };

static sprig_buf bufs[NBUFS];
static uint8_t mem[NBUFS * BUF_SIZE] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
static uint8_t rings[NCONNS * 2 * RING];

static void kick(sprig_ns_link *link)
{
    sprig_buf *b;
    while ((b = sprig_ns_link_next(link)) != NULL) {
        sprig_ns_header ip;
        CHECK(sprig_buf_len(b) <= link->mtu);
        CHECK(sprig_ns_header_parse(sprig_buf_data(b), sprig_buf_len(b), &ip) == SPRIG_STATUS_OK);
        if (ip.proto == SPRIG_NS_PROTO_STREAM) {
            sprig_ns_stream_hdr h;
            CHECK(sprig_ns_stream_parse(&ip, sprig_buf_data(b) + SPRIG_NS_HEADER_LEN,
                                        ip.length - SPRIG_NS_HEADER_LEN, &h) == SPRIG_STATUS_OK);
        }
        sprig_buf_free(b);
    }
}

static const sprig_ns_link_ops ops = {.kick = kick};

static uint32_t fixed_isn(void *arg)
{
    (void)arg;
    return 1000;
}

static void check_conns(const sprig_ns_stream_backend *be)
{
    for (size_t i = 0; i < be->nconns; i++) {
        const sprig_ns_conn *c = &be->conns[i];
        CHECK(c->tx_len <= be->cfg.tx_buf && c->rx_len <= be->cfg.rx_buf);
        CHECK(c->tx_head < be->cfg.tx_buf && c->rx_head < be->cfg.rx_buf);
        CHECK((int32_t)(c->snd_nxt - c->snd_una) >= 0);
        CHECK((int32_t)(c->snd_max - c->snd_nxt) >= 0);
        CHECK(c->mss <= BUF_SIZE);
    }
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void deliver(sprig_ns_stream_backend *be, sprig_buf_pool *pool, sprig_ns_link *link,
                    uint8_t op, const uint8_t *seg, size_t n)
{
    sprig_buf *b = sprig_buf_alloc(pool, 0);
    if (b == NULL) {
        return;
    }
    size_t total = SPRIG_NS_HEADER_LEN + n;
    uint8_t *p = sprig_buf_put(b, total);
    CHECK(p != NULL);
    sprig_ns_header ip = {.tc = 2,
                          .hop_limit = 4,
                          .proto = SPRIG_NS_PROTO_STREAM,
                          .length = (uint16_t)total,
                          .dst = 0x0102,
                          .src = PEER};
    CHECK(sprig_ns_header_emit(&ip, p, total) == SPRIG_STATUS_OK);
    uint8_t *s = p + SPRIG_NS_HEADER_LEN;
    memcpy(s, seg, n);
    if ((op & 0x40) && n >= SPRIG_NS_STREAM_HEADER_LEN) {
        const sprig_ns_conn *c = &be->conns[1]; /* the client, or the first accepted */
        wr32(s + 4, rd32(s + 4) + c->rcv_nxt);
        wr32(s + 8, rd32(s + 8) + c->snd_una);
    }
    if (!(op & 0x80) && n >= SPRIG_NS_STREAM_HEADER_LEN) {
        s[14] = s[15] = 0;
        uint16_t c = sprig_ns_csum(ip.src, ip.dst, SPRIG_NS_PROTO_STREAM, s, n);
        c = c == 0 ? 0xFFFFu : c;
        s[14] = (uint8_t)(c >> 8);
        s[15] = (uint8_t)c;
    }
    sprig_ns_link_input(link, b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sprig_fake_clock fc;
    sprig_fake_clock_init(&fc, SPRIG_TIME_S(1));
    sprig_loop loop;
    sprig_loop_cfg lc = {.clock = fc.clock};
    CHECK(sprig_loop_init(&loop, &lc) == SPRIG_STATUS_OK);
    sprig_buf_pool pool;
    CHECK(sprig_buf_pool_init(&pool, bufs, mem, NBUFS, BUF_SIZE) == SPRIG_STATUS_OK);
    sprig_ns_route routes[1];
    sprig_ns_node node;
    sprig_ns_node_cfg nc = {
        .id = 0x0102, .loop = &loop, .pool = &pool, .routes = routes, .route_cap = 1};
    CHECK(sprig_ns_node_init(&node, &nc) == SPRIG_STATUS_OK);
    sprig_ns_link link;
    CHECK(sprig_ns_link_init(&link, &ops, 300) == SPRIG_STATUS_OK);
    CHECK(sprig_ns_node_attach(&node, &link) == SPRIG_STATUS_OK);
    CHECK(sprig_ns_node_add_route(&node, 0x0100, 8, &link) == SPRIG_STATUS_OK);
    sprig_ns_stream_backend be;
    sprig_ns_conn conns[NCONNS];
    sprig_ns_stream_cfg sc = {.tc = 2,
                              .tx_buf = RING,
                              .rx_buf = RING,
                              .max_retries = 3,
                              .keepalive_idle = SPRIG_TIME_S(2),
                              .entropy = fixed_isn};
    CHECK(sprig_ns_stream_init(&be, &node, &sc, conns, NCONNS, rings, sizeof(rings), &pool) ==
          SPRIG_STATUS_OK);
    sprig_sock *socks[NSOCKS] = {0};
    CHECK(sprig_sock_listen(&loop, "sprig://0x0102:7", SPRIG_SOCK_STREAM, &socks[0]) ==
          SPRIG_STATUS_OK);
    CHECK(sprig_sock_dial(&loop, "sprig://0x0105:80", SPRIG_SOCK_STREAM, &socks[1]) ==
          SPRIG_STATUS_OK);
    sprig_loop_poll(&loop, fc.now);

    uint8_t io[RING];
    memset(io, 'z', sizeof(io));
    size_t i = 0;
    while (i + 2 <= size) {
        uint8_t op = data[i];
        size_t n = data[i + 1];
        i += 2;
        switch (op & 7) {
        case 4:
            sprig_fake_clock_advance(&fc, SPRIG_TIME_MS(10) * n);
            break;
        case 5:
            for (int k = 1; k < NSOCKS; k++) {
                size_t sent = 0;
                (void)sprig_sock_send(socks[k], io, n, &sent);
                CHECK(sent <= n);
            }
            break;
        case 6:
            for (int k = 1; k < NSOCKS; k++) {
                size_t got = 0;
                sprig_status st = sprig_sock_recv(socks[k], io, n, &got);
                CHECK(got <= n && (st == SPRIG_STATUS_OK || got == 0));
                if (socks[k] == NULL) {
                    (void)sprig_sock_accept(socks[0], &socks[k]);
                }
            }
            break;
        case 7:
            for (int k = 1; k < NSOCKS; k++) {
                if (n & 1) {
                    sprig_sock_close(socks[k]);
                    socks[k] = NULL;
                } else if (socks[k] != NULL) {
                    (void)sprig_sock_shutdown(socks[k]);
                }
            }
            break;
        default:
            if (n > size - i) {
                n = size - i;
            }
            deliver(&be, &pool, &link, op, data + i, n);
            i += n;
            break;
        }
        for (int pass = 0; pass < 4; pass++) {
            sprig_loop_poll(&loop, fc.now);
        }
        check_conns(&be);
    }
    for (int k = 0; k < NSOCKS; k++) {
        sprig_sock_close(socks[k]);
    }
    CHECK(sprig_ns_stream_in_use(&be) == 0);
    sprig_ns_stream_deinit(&be);
    sprig_ns_node_deinit(&node);
    sprig_ns_link_deinit(&link);
    CHECK(sprig_buf_pool_available(&pool) == NBUFS);
    sprig_buf_pool_deinit(&pool);
    sprig_loop_deinit(&loop);
    return 0;
}
