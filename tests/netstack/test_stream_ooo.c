/* test_stream_ooo.c — the STREAM receiver, with the test playing the peer by hand (segments
 * crafted byte by byte into a link, the node's answers parsed):
 *   - it keeps one range of out-of-order data: a dropped segment gives duplicate ACKs, the range
 *     joins the in-order bytes when the hole is filled (one ACK covers it all), only one range
 *     is kept (grown at its end), an out-of-order FIN is not kept, every byte reads back in
 *     order;
 *   - segments that arrive in one loop pass share one ACK (sent from the connection's task). */
#include "support.h"

#include <string.h>

#include "ns_fixture.h"
#include "sprig/ns_stream.h"

enum { ME = 0x0102, PEER = 0x0105, PORT = 7, PEER_PORT = 4000, CONNS = 2, RING = 2048 };
enum { ISN = 5000 }; /* the peer's */

typedef struct t_net {
    fx f;
    sprig_ns_node node;
    sprig_ns_route routes[1];
    sprig_ns_link link;
    sprig_ns_stream_backend be;
    sprig_ns_conn conns[CONNS];
    uint8_t rings[CONNS * 2 * RING];
    unsigned segs;            /* segments the node sent */
    sprig_ns_stream_hdr last; /* the last one */
} t_net;

static t_net tn;

static void kick(sprig_ns_link *link)
{
    sprig_buf *b;
    while ((b = sprig_ns_link_next(link)) != NULL) {
        sprig_ns_header ip;
        assert_int_equal(sprig_ns_header_parse(sprig_buf_data(b), sprig_buf_len(b), &ip),
                         SPRIG_STATUS_OK);
        assert_int_equal(ip.proto, SPRIG_NS_PROTO_STREAM);
        assert_int_equal(sprig_ns_stream_parse(&ip, sprig_buf_data(b) + SPRIG_NS_HEADER_LEN,
                                               ip.length - SPRIG_NS_HEADER_LEN, &tn.last),
                         SPRIG_STATUS_OK);
        tn.segs++;
        sprig_buf_free(b);
    }
}

static const sprig_ns_link_ops ops = {.kick = kick};

/* Byte k of the peer's stream. */
static uint8_t pat(uint32_t k)
{
    return (uint8_t)(k * 13u + (k >> 8));
}

/* A segment from the peer: flags, seq, ack, and n bytes of the pattern from stream offset
 * seq - ISN - 1, handed to the node now (seg_in: and the loop run for a millisecond). */
static void seg_put(uint8_t flags, uint32_t seq, uint32_t ack, uint32_t n)
{
    sprig_buf *b = sprig_buf_alloc(&tn.f.pool, SPRIG_NS_NET_HEADROOM);
    assert_non_null(b);
    uint8_t *p = sprig_buf_put(b, SPRIG_NS_STREAM_HEADER_LEN + n);
    assert_non_null(p);
    for (uint32_t i = 0; i < n; i++) {
        p[SPRIG_NS_STREAM_HEADER_LEN + i] = pat(seq - ISN - 1 + i);
    }
    sprig_ns_header ip = {.tc = 2,
                          .hop_limit = 4,
                          .proto = SPRIG_NS_PROTO_STREAM,
                          .length =
                              (uint16_t)(SPRIG_NS_HEADER_LEN + SPRIG_NS_STREAM_HEADER_LEN + n),
                          .dst = ME,
                          .src = PEER};
    sprig_ns_stream_hdr h = {.src_port = PEER_PORT,
                             .dst_port = PORT,
                             .seq = seq,
                             .ack = ack,
                             .flags = flags,
                             .window = 4096};
    sprig_ns_stream_emit(&ip, &h, p, SPRIG_NS_STREAM_HEADER_LEN + n);
    uint8_t *hp = sprig_buf_push(b, SPRIG_NS_HEADER_LEN);
    assert_int_equal(sprig_ns_header_emit(&ip, hp, SPRIG_NS_HEADER_LEN), SPRIG_STATUS_OK);
    sprig_ns_link_input(&tn.link, b);
}

static void seg_in(uint8_t flags, uint32_t seq, uint32_t ack, uint32_t n)
{
    seg_put(flags, seq, ack, n);
    fx_run(&tn.f, SPRIG_TIME_MS(1));
}

/* Reads everything readable and checks it is the pattern from stream offset *at on. */
static size_t read_all(sprig_sock *s, uint32_t *at)
{
    uint8_t buf[RING];
    size_t n = 0;
    sprig_status st = sprig_sock_recv(s, buf, sizeof(buf), &n);
    if (st == SPRIG_STATUS_UNAVAILABLE) {
        return 0;
    }
    assert_int_equal(st, SPRIG_STATUS_OK);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(buf[i], pat(*at + (uint32_t)i));
    }
    *at += (uint32_t)n;
    return n;
}

/* A node with the STREAM backend and a connection accepted from the peer; *mine is the node's
 * next sequence number. */
static sprig_sock *setup(sprig_sock **lis, uint32_t *mine)
{
    t_net *t = &tn;
    memset(t, 0, sizeof(*t));
    fx_init(&t->f);
    sprig_ns_node_cfg nc = {
        .id = ME, .loop = &t->f.loop, .pool = &t->f.pool, .routes = t->routes, .route_cap = 1};
    assert_int_equal(sprig_ns_node_init(&t->node, &nc), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_link_init(&t->link, &ops, 1024), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_attach(&t->node, &t->link), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_add_route(&t->node, 0, 0, &t->link), SPRIG_STATUS_OK);
    sprig_ns_stream_cfg sc = {.tc = 2, .tx_buf = RING, .rx_buf = RING};
    assert_int_equal(sprig_ns_stream_init(&t->be, &t->node, &sc, t->conns, CONNS, t->rings,
                                          sizeof(t->rings), &t->f.pool),
                     SPRIG_STATUS_OK);
    sprig_sock *s = NULL;
    assert_int_equal(sprig_sock_listen(&t->f.loop, "sprig://0x0102:7", SPRIG_SOCK_STREAM, lis),
                     SPRIG_STATUS_OK);
    seg_in(SPRIG_NS_STREAM_SYN, ISN, 0, 0);
    assert_int_equal(t->last.flags, SPRIG_NS_STREAM_SYN | SPRIG_NS_STREAM_ACK);
    assert_int_equal(t->last.ack, ISN + 1);
    *mine = t->last.seq + 1;
    seg_in(SPRIG_NS_STREAM_ACK, ISN + 1, *mine, 0);
    assert_int_equal(sprig_sock_accept(*lis, &s), SPRIG_STATUS_OK);
    return s;
}

static void teardown(sprig_sock *s, sprig_sock *lis)
{
    t_net *t = &tn;
    sprig_sock_close(s);
    sprig_sock_close(lis);
    sprig_ns_stream_deinit(&t->be);
    sprig_ns_node_deinit(&t->node);
    sprig_ns_link_deinit(&t->link);
    fx_deinit(&t->f);
}

static void test_stream_ooo_one_range(void **state)
{
    (void)state;
    t_net *t = &tn;
    sprig_sock *lis = NULL;
    uint32_t mine = 0;
    sprig_sock *s = setup(&lis, &mine);

    const uint8_t A = SPRIG_NS_STREAM_ACK;
    const uint32_t d = ISN + 1; /* sequence number of stream byte 0 */
    uint32_t at = 0;
    /* bytes 0..99 in order; 100..199 lost; 200..299 and 300..399 kept out of order */
    seg_in(A, d, mine, 100);
    assert_int_equal(t->last.ack, d + 100);
    seg_in(A, d + 200, mine, 100);
    assert_int_equal(t->last.ack, d + 100); /* duplicate ACK */
    seg_in(A, d + 300, mine, 100);
    assert_int_equal(t->last.ack, d + 100);
    assert_int_equal(t->be.stats.ooo, 2);
    assert_int_equal(read_all(s, &at), 100); /* only the in-order bytes are readable */
    /* a second hole: 500..599 is not kept (one range, grown at its end only) */
    seg_in(A, d + 500, mine, 100);
    assert_int_equal(t->last.ack, d + 100);
    /* the hole is filled: one ACK covers the kept range */
    unsigned before = t->segs;
    seg_in(A, d + 100, mine, 100);
    assert_int_equal(t->last.ack, d + 400);
    assert_int_equal(t->segs, before + 1);
    assert_int_equal(read_all(s, &at), 300);
    /* 500..599 again (now the start of a new range), then an out-of-order FIN: not kept */
    seg_in(A, d + 500, mine, 100);
    seg_in(A | SPRIG_NS_STREAM_FIN, d + 600, mine, 50);
    assert_int_equal(t->last.ack, d + 400);
    seg_in(A, d + 400, mine, 100);
    assert_int_equal(t->last.ack, d + 600);
    seg_in(A | SPRIG_NS_STREAM_FIN, d + 600, mine, 50);
    assert_int_equal(t->last.ack, d + 651); /* the data and the FIN */
    assert_int_equal(read_all(s, &at), 250);
    size_t n = 0;
    uint8_t one;
    assert_int_equal(sprig_sock_recv(s, &one, 1, &n), SPRIG_STATUS_OUT_OF_RANGE);
    assert_int_equal(at, 650);
    teardown(s, lis);
}

static void test_stream_one_ack_per_pass(void **state)
{
    (void)state;
    t_net *t = &tn;
    sprig_sock *lis = NULL;
    uint32_t mine = 0, at = 0;
    sprig_sock *s = setup(&lis, &mine);
    const uint8_t A = SPRIG_NS_STREAM_ACK;
    const uint32_t d = ISN + 1;
    /* three segments in one pass: one ACK for all */
    unsigned before = t->segs;
    seg_put(A, d, mine, 100);
    seg_put(A, d + 100, mine, 100);
    seg_put(A, d + 200, mine, 100);
    assert_int_equal(t->segs, before); /* nothing sent yet: the ACK waits for the task */
    fx_run(&t->f, SPRIG_TIME_MS(1));
    assert_int_equal(t->segs, before + 1);
    assert_int_equal(t->last.ack, d + 300);
    assert_int_equal(t->last.flags, A);
    /* one segment per pass: one ACK each */
    seg_in(A, d + 300, mine, 100);
    seg_in(A, d + 400, mine, 100);
    assert_int_equal(t->segs, before + 3);
    assert_int_equal(t->last.ack, d + 500);
    assert_int_equal(read_all(s, &at), 500);
    teardown(s, lis);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_ooo_one_range),
        cmocka_unit_test(test_stream_one_ack_per_pass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
