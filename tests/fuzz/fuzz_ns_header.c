/*
 * fuzz_ns_header.c — the netstack network layer under hostile packets, two ways:
 *
 *   1. the pure codecs: sprig_ns_header_check/parse and the accessors (which must agree and
 *      stay within the checked bytes), re-emitting a parsed header (must give the same 8 bytes),
 *      and the ICMP and DGRAM parsers on what follows;
 *   2. a router node with two links and the DGRAM socket backend (a socket bound to port 7, one
 *      connected to 0x0105:7): the input is split into packets ([len][bytes]...) handed up on
 *      the first link as if received; the node parses, delivers, answers ICMP, forwards or
 *      drops them; the sockets are drained. Afterwards every buffer must be back in the pool.
 * A violated invariant aborts.
 */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "sprig/ns_dgram.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

enum { NBUFS = 32, BUF_SIZE = 512, NSOCKS = 2 };

static sprig_buf bufs[NBUFS];
static uint8_t mem[NBUFS * BUF_SIZE] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));

static void check_codecs(const uint8_t *p, size_t len)
{
    sprig_ns_header h;
    sprig_status st = sprig_ns_header_parse(p, len, &h);
    CHECK(st == sprig_ns_header_check(p, len));
    if (st != SPRIG_STATUS_OK) {
        CHECK(st == SPRIG_STATUS_DATA_LOSS);
        return;
    }
    CHECK(h.length >= SPRIG_NS_HEADER_LEN && h.length <= len);
    CHECK(h.hop_limit >= 1 && h.hop_limit <= 15 && h.tc < 4);
    CHECK(h.src != 0 && h.src != 0xFFFF && h.dst != 0);
    CHECK(h.length == sprig_ns_header_length(p) && h.dst == sprig_ns_header_dst(p));
    uint8_t out[SPRIG_NS_HEADER_LEN];
    CHECK(sprig_ns_header_emit(&h, out, sizeof(out)) == SPRIG_STATUS_OK);
    CHECK(memcmp(out, p, SPRIG_NS_HEADER_LEN) == 0);
    const uint8_t *seg = p + SPRIG_NS_HEADER_LEN;
    size_t seg_len = h.length - SPRIG_NS_HEADER_LEN;
    sprig_ns_icmp m;
    if (sprig_ns_icmp_parse(&h, seg, seg_len, &m) == SPRIG_STATUS_OK) {
        CHECK(seg_len >= SPRIG_NS_ICMP_HEADER_LEN);
        (void)sprig_ns_icmp_status(&m);
    }
    sprig_ns_dgram d;
    if (sprig_ns_dgram_parse(&h, seg, seg_len, &d) == SPRIG_STATUS_OK) {
        CHECK(seg_len >= SPRIG_NS_DGRAM_HEADER_LEN && d.src_port != 0 && d.dst_port != 0);
    }
}

static void kick(sprig_ns_link *link)
{
    /* a link that transmits instantly into nowhere */
    sprig_buf *b;
    while ((b = sprig_ns_link_next(link)) != NULL) {
        CHECK(sprig_buf_len(b) <= link->mtu);
        CHECK(sprig_ns_header_check(sprig_buf_data(b), sprig_buf_len(b)) == SPRIG_STATUS_OK);
        sprig_buf_free(b);
    }
}

static const sprig_ns_link_ops ops = {.kick = kick};

static void drain(sprig_sock *s)
{
    uint8_t buf[BUF_SIZE];
    size_t len = 0;
    sprig_addr from;
    for (int i = 0; i < 64; i++) {
        sprig_status st = sprig_sock_recv_from(s, buf, sizeof(buf), &len, &from);
        if (st == SPRIG_STATUS_UNAVAILABLE) {
            return;
        }
        if (st == SPRIG_STATUS_OK) {
            CHECK(len <= BUF_SIZE && sprig_addr_is_node(&from, NULL));
        }
    }
}

static sprig_time zero_now(void *ctx)
{
    (void)ctx;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_codecs(data, size);

    sprig_loop loop;
    sprig_loop_cfg lc = {.clock = {.now = zero_now}};
    CHECK(sprig_loop_init(&loop, &lc) == SPRIG_STATUS_OK);
    sprig_buf_pool pool;
    CHECK(sprig_buf_pool_init(&pool, bufs, mem, NBUFS, BUF_SIZE) == SPRIG_STATUS_OK);
    sprig_ns_route routes[3];
    sprig_ns_node node;
    sprig_ns_node_cfg nc = {.id = 0x0102,
                            .forwarding = true,
                            .loop = &loop,
                            .pool = &pool,
                            .routes = routes,
                            .route_cap = 3};
    CHECK(sprig_ns_node_init(&node, &nc) == SPRIG_STATUS_OK);
    sprig_ns_link l1, l2;
    CHECK(sprig_ns_link_init(&l1, &ops, 200) == SPRIG_STATUS_OK);
    CHECK(sprig_ns_link_init(&l2, &ops, 64) == SPRIG_STATUS_OK);
    CHECK(sprig_ns_node_attach(&node, &l1) == SPRIG_STATUS_OK);
    CHECK(sprig_ns_node_attach(&node, &l2) == SPRIG_STATUS_OK);
    CHECK(sprig_ns_node_add_route(&node, 0x0100, 8, &l1) == SPRIG_STATUS_OK);
    CHECK(sprig_ns_node_add_route(&node, 0x0300, 8, &l2) == SPRIG_STATUS_OK);
    sprig_ns_dgram_backend be;
    sprig_ns_dsock socks[NSOCKS];
    sprig_ns_dgram_cfg dc = {.rx_queue_len = 4, .tc = 2};
    CHECK(sprig_ns_dgram_init(&be, &node, &dc, socks, NSOCKS, &pool) == SPRIG_STATUS_OK);
    sprig_sock *bound = NULL, *conn = NULL;
    CHECK(sprig_sock_listen(&loop, "sprig://0x0102:7", SPRIG_SOCK_DGRAM, &bound) ==
          SPRIG_STATUS_OK);
    CHECK(sprig_sock_dial(&loop, "sprig://0x0105:7", SPRIG_SOCK_DGRAM, &conn) == SPRIG_STATUS_OK);
    sprig_loop_poll(&loop, 0);

    size_t i = 0;
    while (i < size) {
        size_t n = data[i++];
        if (n > size - i) {
            n = size - i;
        }
        sprig_buf *b = sprig_buf_alloc(&pool, 0);
        if (b == NULL) {
            break;
        }
        CHECK(sprig_buf_append(b, data + i, n) == SPRIG_STATUS_OK);
        i += n;
        sprig_ns_link_input(&l1, b);
        sprig_loop_poll(&loop, 0); /* loopback */
        drain(bound);
        drain(conn);
    }
    sprig_sock_close(bound);
    sprig_sock_close(conn);
    CHECK(sprig_ns_dgram_in_use(&be) == 0);
    sprig_ns_dgram_deinit(&be);
    sprig_ns_node_deinit(&node);
    sprig_ns_link_deinit(&l1);
    sprig_ns_link_deinit(&l2);
    CHECK(sprig_buf_pool_available(&pool) == NBUFS);
    sprig_buf_pool_deinit(&pool);
    sprig_loop_deinit(&loop);
    return 0;
}
