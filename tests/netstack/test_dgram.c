/* test_dgram.c — the DGRAM socket backend across a line of four nodes (two routers): datagrams
 * both ways, ICMP errors reaching the socket as statuses, and 0/5/20% impaired links that lose
 * but never corrupt. */
#include "support.h"

#include <string.h>

#include "ns_fixture.h"
#include "sprig/ns_dgram.h"
#include "sprig/ns_simlink.h"

enum { A = 1, R1 = 2, R2 = 3, B = 4, SOCKS = 8 };

typedef struct net {
    fx f;
    sprig_ns_node n[4];
    sprig_ns_route routes[4][2];
    sprig_ns_simlink l[3];
    sprig_ns_dgram_backend be[2]; /* on A and B */
    sprig_ns_dsock socks[2][SOCKS];
} net;

static net the_net;

static sprig_ns_link *end(net *t, int link, int side)
{
    return &t->l[link].end[side].link;
}

static void net_setup(net *t, uint32_t loss, uint32_t dup, uint32_t reorder, uint32_t corrupt)
{
    memset(t, 0, sizeof(*t));
    fx_init(&t->f);
    for (int i = 0; i < 4; i++) {
        sprig_ns_node_cfg c = {.id = (uint16_t)(i + 1),
                               .forwarding = i == 1 || i == 2,
                               .loop = &t->f.loop,
                               .pool = &t->f.pool,
                               .routes = t->routes[i],
                               .route_cap = 2};
        assert_int_equal(sprig_ns_node_init(&t->n[i], &c), SPRIG_STATUS_OK);
    }
    for (int i = 0; i < 3; i++) {
        sprig_ns_simlink_cfg c = {.loop = &t->f.loop,
                                  .pool = &t->f.pool,
                                  .seed = (uint32_t)(99 + i),
                                  .mtu = 1024,
                                  .delay = SPRIG_TIME_MS(2),
                                  .reorder_delay = SPRIG_TIME_MS(3),
                                  .loss_ppm = loss,
                                  .dup_ppm = dup,
                                  .reorder_ppm = reorder,
                                  .corrupt_ppm = corrupt};
        assert_int_equal(sprig_ns_simlink_init(&t->l[i], &c), SPRIG_STATUS_OK);
        assert_int_equal(sprig_ns_node_attach(&t->n[i], end(t, i, 0)), SPRIG_STATUS_OK);
        assert_int_equal(sprig_ns_node_attach(&t->n[i + 1], end(t, i, 1)), SPRIG_STATUS_OK);
    }
    assert_int_equal(sprig_ns_node_add_route(&t->n[0], 0, 0, end(t, 0, 0)), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_add_route(&t->n[1], A, 16, end(t, 0, 1)), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_add_route(&t->n[1], 0, 0, end(t, 1, 0)), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_add_route(&t->n[2], B, 16, end(t, 2, 0)), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_add_route(&t->n[2], 0, 0, end(t, 1, 1)), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_add_route(&t->n[3], 0, 0, end(t, 2, 1)), SPRIG_STATUS_OK);
    sprig_ns_dgram_cfg dc = {.rx_queue_len = 16, .tc = SPRIG_NS_TC_DEFAULT};
    assert_int_equal(sprig_ns_dgram_init(&t->be[0], &t->n[0], &dc, t->socks[0], SOCKS, &t->f.pool),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_dgram_init(&t->be[1], &t->n[3], &dc, t->socks[1], SOCKS, &t->f.pool),
                     SPRIG_STATUS_OK);
}

static void net_teardown(net *t)
{
    fx_run(&t->f, SPRIG_TIME_S(1));
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sprig_ns_dgram_in_use(&t->be[i]), 0);
        sprig_ns_dgram_deinit(&t->be[i]);
    }
    for (int i = 0; i < 3; i++) {
        sprig_ns_simlink_deinit(&t->l[i]);
    }
    for (int i = 0; i < 4; i++) {
        sprig_ns_node_deinit(&t->n[i]);
    }
    fx_deinit(&t->f);
}

/* Several backends share the loop, so go to each directly rather than by scheme. */
static sprig_sock *open_via(sprig_ns_dgram_backend *be, const char *url, bool listen)
{
    sprig_url u;
    sprig_sock *s = NULL;
    assert_int_equal(sprig_url_parse(url, &u), SPRIG_STATUS_OK);
    assert_true(be->backend.handles(&be->backend, &u));
    sprig_status st = listen ? be->backend.listen(&be->backend, &u, SPRIG_SOCK_DGRAM, &s)
                             : be->backend.dial(&be->backend, &u, SPRIG_SOCK_DGRAM, &s);
    assert_int_equal(st, SPRIG_STATUS_OK);
    return s;
}

static void test_dgram_across_two_routers(void **state)
{
    (void)state;
    net *t = &the_net;
    net_setup(t, 0, 0, 0, 0);
    sprig_sock *srv = open_via(&t->be[1], "sprig://4:7", true);
    sprig_sock *cli = open_via(&t->be[0], "sprig://0x0004:7", false);
    sprig_test_events ec = {0};
    sprig_sock_set_callback(cli, sprig_test_record, &ec);
    assert_int_equal(sprig_sock_send(cli, "x", 1, NULL), SPRIG_STATUS_UNAVAILABLE); /* connecting */
    fx_run(&t->f, SPRIG_TIME_MS(1));
    assert_int_equal(ec.connected, 1);
    assert_int_equal(ec.writable, 1);
    assert_int_equal(sprig_sock_max_message_size(cli), 1024 - 14);
    assert_int_equal(sprig_sock_send(cli, "hello", 5, NULL), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(50));
    char buf[64];
    size_t len = 0;
    sprig_addr from;
    assert_int_equal(sprig_sock_recv_from(srv, buf, sizeof(buf), &len, &from), SPRIG_STATUS_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "hello", 5);
    uint16_t node = 0;
    assert_true(sprig_addr_is_node(&from, &node));
    assert_int_equal(node, A);
    assert_true(from.port >= SPRIG_NS_EPHEMERAL_FIRST);
    assert_int_equal(sprig_sock_send_to(srv, "world!", 6, &from), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(50));
    assert_true(ec.readable >= 1);
    assert_int_equal(sprig_sock_recv(cli, buf, sizeof(buf), &len), SPRIG_STATUS_OK);
    assert_int_equal(len, 6);
    assert_memory_equal(buf, "world!", 6);
    assert_int_equal(sprig_sock_recv(cli, buf, sizeof(buf), &len), SPRIG_STATUS_UNAVAILABLE);
    /* zero copy: the payload is written once, the headers go into the headroom */
    sprig_buf *zb = NULL;
    assert_int_equal(sprig_sock_alloc_tx(cli, 5, &zb), SPRIG_STATUS_OK);
    uint8_t *zp = sprig_buf_put(zb, 5);
    memcpy(zp, "zcopy", 5);
    assert_int_equal(sprig_sock_send_buf(cli, zb), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(50));
    assert_int_equal(sprig_sock_recv_from(srv, buf, sizeof(buf), &len, &from), SPRIG_STATUS_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "zcopy", 5);
    /* a second listener on the same port is refused */
    sprig_url u;
    sprig_sock *dup = NULL;
    assert_int_equal(sprig_url_parse("sprig://4:7", &u), SPRIG_STATUS_OK);
    assert_int_equal(t->be[1].backend.listen(&t->be[1].backend, &u, SPRIG_SOCK_DGRAM, &dup),
                     SPRIG_STATUS_ALREADY_EXISTS);
    assert_int_equal(sprig_url_parse("sprig://3:7", &u), SPRIG_STATUS_OK);
    assert_int_equal(t->be[1].backend.listen(&t->be[1].backend, &u, SPRIG_SOCK_DGRAM, &dup),
                     SPRIG_STATUS_NOT_FOUND);
    assert_int_equal(t->be[1].backend.dial(&t->be[1].backend, &u, SPRIG_SOCK_STREAM, &dup),
                     SPRIG_STATUS_UNIMPLEMENTED);
    sprig_sock_close(cli);
    sprig_sock_close(srv);
    net_teardown(t);
}

static void test_dgram_errors_reach_the_socket(void **state)
{
    (void)state;
    net *t = &the_net;
    net_setup(t, 0, 0, 0, 0);
    char buf[600];
    size_t len = 0;
    memset(buf, 0x55, sizeof(buf));
    /* nobody on port 8 at B: port unreachable, reported by the next recv */
    sprig_sock *cli = open_via(&t->be[0], "sprig://4:8", false);
    fx_run(&t->f, SPRIG_TIME_MS(1));
    assert_int_equal(sprig_sock_send(cli, "?", 1, NULL), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(50));
    assert_int_equal(sprig_sock_recv(cli, buf, sizeof(buf), &len), SPRIG_STATUS_NOT_FOUND);
    assert_int_equal(sprig_sock_recv(cli, buf, sizeof(buf), &len), SPRIG_STATUS_UNAVAILABLE);
    assert_int_equal(t->be[1].stats.no_port, 1);
    /* too big for the middle link */
    sprig_ns_simlink_cfg c = t->l[1].cfg;
    c.mtu = 300;
    assert_int_equal(sprig_ns_simlink_set_cfg(&t->l[1], &c), SPRIG_STATUS_OK);
    sprig_sock *srv = open_via(&t->be[1], "sprig://4:9", true);
    sprig_sock *c2 = open_via(&t->be[0], "sprig://4:9", false);
    fx_run(&t->f, SPRIG_TIME_MS(1));
    assert_int_equal(sprig_sock_send(c2, buf, 500, NULL), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(50));
    assert_int_equal(sprig_sock_recv(c2, buf, sizeof(buf), &len), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(sprig_sock_send(c2, buf, 300 - 14, NULL), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(50));
    assert_int_equal(sprig_sock_recv(srv, buf, sizeof(buf), &len), SPRIG_STATUS_OK);
    assert_int_equal(len, 300 - 14);
    /* no route at all: the send says so */
    sprig_sock *c3 = open_via(&t->be[1], "sprig://77:9", false);
    assert_int_equal(sprig_ns_node_remove_route(&t->n[3], 0, 0), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(1));
    assert_int_equal(sprig_sock_send(c3, "x", 1, NULL), SPRIG_STATUS_NOT_FOUND);
    /* zero copy: a refused buffer stays the caller's */
    sprig_buf *zb = NULL;
    assert_int_equal(sprig_sock_alloc_tx(c3, 10, &zb), SPRIG_STATUS_OK);
    assert_true(sprig_buf_headroom(zb) >= SPRIG_NS_DGRAM_HEADROOM);
    assert_int_equal(sprig_buf_append(zb, "0123456789", 10), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_send_buf(c3, zb), SPRIG_STATUS_NOT_FOUND);
    sprig_buf_free(zb);
    sprig_sock_close(c3);
    sprig_sock_close(cli);
    sprig_sock_close(c2);
    sprig_sock_close(srv);
    net_teardown(t);
}

/* N datagrams A -> B at a given impairment on every link: what arrives is intact. */
static void run_loss(uint32_t ppm, unsigned min_pct)
{
    net *t = &the_net;
    net_setup(t, ppm, ppm / 4, ppm / 4, ppm / 4);
    sprig_sock *srv = open_via(&t->be[1], "sprig://4:7", true);
    sprig_sock *cli = open_via(&t->be[0], "sprig://4:7", false);
    fx_run(&t->f, SPRIG_TIME_MS(1));
    enum { N = 200 };
    unsigned got = 0, seen[N] = {0};
    uint8_t msg[300], in[400];
    for (unsigned i = 0; i < N; i++) {
        size_t len = 2 + (i * 13u) % 290u;
        for (size_t k = 0; k < len; k++) {
            msg[k] = (uint8_t)(i * 7u + k);
        }
        msg[0] = (uint8_t)i;
        msg[1] = (uint8_t)(i >> 8);
        assert_int_equal(sprig_sock_send(cli, msg, len, NULL), SPRIG_STATUS_OK);
        fx_run(&t->f, SPRIG_TIME_MS(2));
        size_t n = 0;
        sprig_addr from;
        while (sprig_sock_recv_from(srv, in, sizeof(in), &n, &from) == SPRIG_STATUS_OK) {
            unsigned seq = (unsigned)(in[0] | (in[1] << 8));
            assert_true(seq < N);
            assert_int_equal(n, 2 + (seq * 13u) % 290u);
            for (size_t k = 2; k < n; k++) {
                assert_int_equal(in[k], (uint8_t)(seq * 7u + k));
            }
            got += seen[seq] == 0;
            seen[seq]++;
        }
    }
    fx_run(&t->f, SPRIG_TIME_MS(100));
    size_t n = 0;
    sprig_addr from;
    while (sprig_sock_recv_from(srv, in, sizeof(in), &n, &from) == SPRIG_STATUS_OK) {
        unsigned seq = (unsigned)(in[0] | (in[1] << 8));
        assert_true(seq < N);
        got += seen[seq] == 0;
        seen[seq]++;
    }
    assert_true(got * 100 >= N * min_pct);
    if (ppm == 0) {
        assert_int_equal(got, N);
    }
    sprig_sock_close(cli);
    sprig_sock_close(srv);
    net_teardown(t);
}

static void test_dgram_lossless(void **state)
{
    (void)state;
    run_loss(0, 100);
}

static void test_dgram_5pct_impaired(void **state)
{
    (void)state;
    run_loss(50000, 75);
}

static void test_dgram_20pct_impaired(void **state)
{
    (void)state;
    run_loss(200000, 35);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dgram_across_two_routers),
        cmocka_unit_test(test_dgram_errors_reach_the_socket),
        cmocka_unit_test(test_dgram_lossless),
        cmocka_unit_test(test_dgram_5pct_impaired),
        cmocka_unit_test(test_dgram_20pct_impaired),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
