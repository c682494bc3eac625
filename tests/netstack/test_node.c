/* test_node.c — the network layer over simulated links: a line of four nodes through two
 * routers, ping, datagrams, hop-limit expiry, unreachable, packet too big, priority queues. */
#include "support.h"

#include <string.h>

#include "ns_fixture.h"
#include "sprig/ns_simlink.h"

/*   A(1) --l0-- R1(2) --l1-- R2(3) --l2-- B(4)   */
enum { A = 1, R1 = 2, R2 = 3, B = 4 };

typedef struct net {
    fx f;
    sprig_ns_node n[4];
    sprig_ns_route routes[4][4];
    sprig_ns_simlink l[3];
    rec r[4];
    unsigned echo_replies;
    unsigned icmp_errors;
    uint8_t last_icmp_type;
    uint16_t last_seq;
    sprig_time last_echo_at;
} net;

static net the_net;

static void on_icmp(sprig_ns_node *node, const sprig_ns_header *ip, const sprig_ns_icmp *m,
                    const uint8_t *body, size_t len, void *arg)
{
    (void)node;
    (void)ip;
    (void)body;
    (void)len;
    net *t = arg;
    t->last_icmp_type = m->type;
    if (m->type == SPRIG_NS_ICMP_ECHO_REPLY) {
        t->echo_replies++;
        t->last_seq = m->b;
        t->last_echo_at = t->f.fc.now;
    } else {
        t->icmp_errors++;
    }
}

static sprig_ns_link *end(net *t, int link, int side)
{
    return &t->l[link].end[side].link;
}

static void net_setup(net *t, sprig_time delay)
{
    memset(t, 0, sizeof(*t));
    fx_init(&t->f);
    for (int i = 0; i < 4; i++) {
        sprig_ns_node_cfg c = {.id = (uint16_t)(i + 1),
                               .forwarding = i == 1 || i == 2,
                               .loop = &t->f.loop,
                               .pool = &t->f.pool,
                               .routes = t->routes[i],
                               .route_cap = 4,
                               .on_icmp = on_icmp,
                               .icmp_arg = t};
        assert_int_equal(sprig_ns_node_init(&t->n[i], &c), SPRIG_STATUS_OK);
        rec_init(&t->r[i], &t->n[i], &t->f.fc);
    }
    for (int i = 0; i < 3; i++) {
        sprig_ns_simlink_cfg c = {.loop = &t->f.loop,
                                  .pool = &t->f.pool,
                                  .seed = (uint32_t)(i + 1),
                                  .mtu = 1024,
                                  .delay = delay};
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
}

static void net_teardown(net *t)
{
    fx_run(&t->f, SPRIG_TIME_S(1)); /* drain */
    for (int i = 0; i < 3; i++) {
        sprig_ns_simlink_deinit(&t->l[i]);
    }
    for (int i = 0; i < 4; i++) {
        sprig_ns_node_deinit(&t->n[i]);
        sprig_ns_node_deinit(&t->n[i]); /* idempotent */
    }
    fx_deinit(&t->f);
}

static void test_node_ping_through_two_routers(void **state)
{
    (void)state;
    net *t = &the_net;
    net_setup(t, SPRIG_TIME_MS(5));
    sprig_time start = t->f.fc.now;
    const uint8_t data[] = "ping!";
    assert_int_equal(sprig_ns_node_ping(&t->n[0], B, 42, 1, data, sizeof(data), 1),
                     SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(100));
    assert_int_equal(t->echo_replies, 1);
    assert_int_equal(t->last_seq, 1);
    /* three hops each way at 5 ms */
    assert_int_equal(t->last_echo_at - start, SPRIG_TIME_MS(30));
    assert_int_equal(t->n[1].stats.forwarded, 2);
    assert_int_equal(t->n[2].stats.forwarded, 2);
    assert_int_equal(t->n[3].stats.icmp_sent, 1);
    net_teardown(t);
}

static void test_node_dgram_both_ways(void **state)
{
    (void)state;
    net *t = &the_net;
    net_setup(t, SPRIG_TIME_MS(1));
    assert_int_equal(send_dgram(&t->f, &t->n[0], B, 7, 100, 0x10, 2), SPRIG_STATUS_OK);
    assert_int_equal(send_dgram(&t->f, &t->n[3], A, 7, 0, 0, 2), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(50));
    assert_int_equal(t->r[3].count, 1);
    assert_int_equal(t->r[3].from[0], A);
    assert_int_equal(t->r[3].len[0], 100);
    assert_int_equal(t->r[3].first[0], 0x10);
    assert_int_equal(t->r[3].tc[0], 2);
    assert_int_equal(t->r[0].count, 1);
    assert_int_equal(t->r[0].from[0], B);
    assert_int_equal(t->r[0].len[0], 0);
    assert_int_equal(t->r[1].count + t->r[2].count, 0); /* routers only forward */
    net_teardown(t);
}

static void test_node_loopback_is_deferred(void **state)
{
    (void)state;
    net *t = &the_net;
    net_setup(t, 0);
    assert_int_equal(send_dgram(&t->f, &t->n[0], A, 7, 3, 1, 0), SPRIG_STATUS_OK);
    assert_int_equal(t->r[0].count, 0); /* not re-entrant */
    assert_int_equal(sprig_ns_node_ping(&t->n[0], A, 1, 9, NULL, 0, 0), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(1));
    assert_int_equal(t->r[0].count, 1);
    assert_int_equal(t->echo_replies, 1);
    assert_int_equal(t->last_seq, 9);
    net_teardown(t);
}

static void test_node_hop_limit_expiry_reaches_sender(void **state)
{
    (void)state;
    net *t = &the_net;
    net_setup(t, SPRIG_TIME_MS(1));
    /* misconfigure R2 so B's packets bounce between the routers */
    assert_int_equal(sprig_ns_node_add_route(&t->n[2], B, 16, end(t, 1, 1)), SPRIG_STATUS_OK);
    assert_int_equal(send_dgram(&t->f, &t->n[0], B, 99, 10, 0, 2), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(100));
    assert_int_equal(t->r[3].count, 0);
    assert_int_equal(t->r[0].errors, 1);
    assert_int_equal(t->r[0].last_error, SPRIG_STATUS_DEADLINE_EXCEEDED);
    assert_int_equal(t->r[0].last_error_dst, B);
    assert_int_equal(t->r[0].last_error_port, 99);
    assert_int_equal(t->n[1].stats.hop_expired + t->n[2].stats.hop_expired, 1);
    /* hop limit 8: the routers forwarded 7 times between them before it expired */
    assert_int_equal(t->n[1].stats.forwarded + t->n[2].stats.forwarded,
                     SPRIG_CONFIG_NS_HOP_LIMIT - 1 + 1 /* R1 forwards the error */);
    net_teardown(t);
}

static void test_node_unreachable_reaches_sender(void **state)
{
    (void)state;
    net *t = &the_net;
    net_setup(t, SPRIG_TIME_MS(1));
    /* R2 has a default route back to R1; remove it: node 9 is then unknown at R2 */
    assert_int_equal(sprig_ns_node_remove_route(&t->n[2], 0, 0), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_remove_route(&t->n[2], 0, 0), SPRIG_STATUS_NOT_FOUND);
    assert_int_equal(sprig_ns_node_add_route(&t->n[2], A, 16, end(t, 1, 1)), SPRIG_STATUS_OK);
    assert_int_equal(send_dgram(&t->f, &t->n[0], 9, 5, 10, 0, 2), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(100));
    assert_int_equal(t->r[0].errors, 1);
    assert_int_equal(t->r[0].last_error, SPRIG_STATUS_NOT_FOUND);
    assert_int_equal(t->n[2].stats.no_route, 1);
    /* a ping to the same place reaches on_icmp as an error */
    assert_int_equal(sprig_ns_node_ping(&t->n[0], 9, 1, 1, NULL, 0, 0), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(100));
    assert_int_equal(t->icmp_errors, 1);
    assert_int_equal(t->last_icmp_type, SPRIG_NS_ICMP_UNREACHABLE);
    /* no protocol at B: protocol unreachable */
    sprig_ns_node_remove_proto(&t->n[3], &t->r[3].proto);
    assert_int_equal(send_dgram(&t->f, &t->n[0], B, 5, 10, 0, 2), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(100));
    assert_int_equal(t->r[0].errors, 2);
    assert_int_equal(t->r[0].last_error, SPRIG_STATUS_UNIMPLEMENTED);
    /* local: no route at all */
    assert_int_equal(sprig_ns_node_remove_route(&t->n[0], 0, 0), SPRIG_STATUS_OK);
    assert_int_equal(send_dgram(&t->f, &t->n[0], B, 5, 10, 0, 2), SPRIG_STATUS_NOT_FOUND);
    assert_int_equal(sprig_ns_node_mtu(&t->n[0], B), 0);
    net_teardown(t);
}

static void test_node_packet_too_big(void **state)
{
    (void)state;
    net *t = &the_net;
    net_setup(t, SPRIG_TIME_MS(1));
    sprig_ns_simlink_cfg c = t->l[1].cfg;
    c.mtu = 100;
    assert_int_equal(sprig_ns_simlink_set_cfg(&t->l[1], &c), SPRIG_STATUS_OK);
    assert_int_equal(send_dgram(&t->f, &t->n[0], B, 5, 200, 0, 2), SPRIG_STATUS_OK);
    assert_int_equal(send_dgram(&t->f, &t->n[0], B, 5, 100 - 14, 0, 2), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(100));
    assert_int_equal(t->r[3].count, 1); /* the one that fits */
    assert_int_equal(t->r[0].errors, 1);
    assert_int_equal(t->r[0].last_error, SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(t->r[0].last_error_mtu, 100);
    assert_int_equal(t->n[1].stats.too_big, 1);
    /* at the sender itself: refused synchronously */
    assert_int_equal(sprig_ns_node_mtu(&t->n[0], B), 1024);
    assert_int_equal(send_dgram(&t->f, &t->n[0], B, 5, 1024, 0, 2),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    net_teardown(t);
}

static void test_node_priority_overtakes_bulk(void **state)
{
    (void)state;
    net *t = &the_net;
    net_setup(t, SPRIG_TIME_MS(1));
    /* the middle link is slow: 500-byte packets take 50 ms each at 10 kB/s */
    sprig_ns_simlink_cfg c = t->l[1].cfg;
    c.bandwidth = 10000;
    assert_int_equal(sprig_ns_simlink_set_cfg(&t->l[1], &c), SPRIG_STATUS_OK);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(send_dgram(&t->f, &t->n[0], B, 5, 500 - 14, (uint8_t)i, 3),
                         SPRIG_STATUS_OK);
    }
    fx_run(&t->f, SPRIG_TIME_MS(20)); /* bulk is queued at R1 now */
    sprig_time sent = t->f.fc.now;
    assert_int_equal(send_dgram(&t->f, &t->n[0], B, 5, 10, 0xEE, 1), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_S(2));
    assert_int_equal(t->r[3].count, 9);
    unsigned pos = 0;
    for (unsigned i = 0; i < 9; i++) {
        if (t->r[3].first[i] == 0xEE) {
            pos = i;
        }
    }
    /* at most the bulk packet on the wire goes first; the 6-odd others wait behind it */
    assert_true(pos <= 1);
    sprig_time latency = t->r[3].at[pos] - sent;
    assert_true(latency <= SPRIG_TIME_MS(50 + 1 + 3 + 3));
    /* and bulk alone took > 350 ms for the eight */
    assert_true(t->r[3].at[8] - sent > SPRIG_TIME_MS(300));
    net_teardown(t);
}

static void test_node_queue_full_is_unavailable(void **state)
{
    (void)state;
    net *t = &the_net;
    net_setup(t, SPRIG_TIME_MS(1));
    sprig_ns_simlink_cfg c = t->l[0].cfg;
    c.bandwidth = 1000;
    assert_int_equal(sprig_ns_simlink_set_cfg(&t->l[0], &c), SPRIG_STATUS_OK);
    sprig_status st = SPRIG_STATUS_OK;
    int sent = 0;
    while (st == SPRIG_STATUS_OK && sent < 40) {
        st = send_dgram(&t->f, &t->n[0], B, 5, 10, 0, 3);
        sent++;
    }
    assert_int_equal(st, SPRIG_STATUS_UNAVAILABLE);
    /* a full queue (the link takes packets from the loop, not during the send) */
    assert_int_equal(sent - 1, SPRIG_CONFIG_NS_QUEUE_LEN);
    /* another class still has room */
    assert_int_equal(send_dgram(&t->f, &t->n[0], B, 5, 10, 0, 0), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_S(3));
    assert_int_equal(t->r[3].count, SPRIG_CONFIG_NS_QUEUE_LEN + 1);
    net_teardown(t);
}

static void test_node_routes_and_args(void **state)
{
    (void)state;
    net *t = &the_net;
    net_setup(t, 0);
    sprig_ns_node *r1 = &t->n[1];
    /* longest prefix wins */
    assert_int_equal(sprig_ns_node_add_route(r1, 0x0100, 8, end(t, 0, 1)), SPRIG_STATUS_OK);
    assert_ptr_equal(sprig_ns_node_lookup(r1, 0x0123), end(t, 0, 1));
    assert_ptr_equal(sprig_ns_node_lookup(r1, 0x0223), end(t, 1, 0));
    assert_ptr_equal(sprig_ns_node_lookup(r1, A), end(t, 0, 1));
    /* full */
    assert_int_equal(sprig_ns_node_add_route(r1, 0x0200, 8, end(t, 0, 1)), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_add_route(r1, 0x0300, 8, end(t, 0, 1)),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    /* replace in place */
    assert_int_equal(sprig_ns_node_add_route(r1, 0x0200, 8, end(t, 1, 0)), SPRIG_STATUS_OK);
    assert_ptr_equal(sprig_ns_node_lookup(r1, 0x0201), end(t, 1, 0));
    assert_int_equal(sprig_ns_node_add_route(r1, 1, 17, end(t, 1, 0)),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_ns_node_add_route(r1, 1, 16, end(t, 2, 0)),
                     SPRIG_STATUS_INVALID_ARGUMENT); /* not attached here */
    assert_int_equal(sprig_ns_node_attach(r1, end(t, 2, 0)), SPRIG_STATUS_FAILED_PRECONDITION);
    assert_int_equal(sprig_ns_node_add_proto(r1, &t->r[1].proto), SPRIG_STATUS_ALREADY_EXISTS);
    sprig_ns_node bad;
    sprig_ns_node_cfg c = {.id = 0, .loop = &t->f.loop, .pool = &t->f.pool};
    assert_int_equal(sprig_ns_node_init(&bad, &c), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_ns_node_deinit(&bad);
    c.id = 0xFFFF;
    assert_int_equal(sprig_ns_node_init(&bad, &c), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_buf *b = sprig_buf_alloc(&t->f.pool, SPRIG_NS_NET_HEADROOM);
    assert_int_equal(sprig_ns_node_send(&t->n[0], b, B, SPRIG_NS_PROTO_DGRAM, 4),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    b = sprig_buf_alloc(&t->f.pool, 0); /* no headroom */
    assert_int_equal(sprig_ns_node_send(&t->n[0], b, B, SPRIG_NS_PROTO_DGRAM, 0),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    /* detaching a link removes its routes */
    sprig_ns_node_detach(r1, end(t, 1, 0));
    assert_null(sprig_ns_node_lookup(r1, B));
    net_teardown(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_ping_through_two_routers),
        cmocka_unit_test(test_node_dgram_both_ways),
        cmocka_unit_test(test_node_loopback_is_deferred),
        cmocka_unit_test(test_node_hop_limit_expiry_reaches_sender),
        cmocka_unit_test(test_node_unreachable_reaches_sender),
        cmocka_unit_test(test_node_packet_too_big),
        cmocka_unit_test(test_node_priority_overtakes_bulk),
        cmocka_unit_test(test_node_queue_full_is_unavailable),
        cmocka_unit_test(test_node_routes_and_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
