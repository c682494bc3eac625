/* test_simlink.c — the simulated link: determinism, impairments, bandwidth, cleanup. */
#include "support.h"

#include <string.h>

#include "ns_fixture.h"
#include "sprig/ns_simlink.h"

typedef struct pair {
    fx f;
    sprig_ns_node a, b;
    sprig_ns_route ra[1], rb[1];
    sprig_ns_simlink l;
    rec reca, recb;
} pair;

static pair the_pair;

static void pair_setup(pair *t, const sprig_ns_simlink_cfg *lc_in)
{
    memset(t, 0, sizeof(*t));
    fx_init(&t->f);
    sprig_ns_node_cfg c = {
        .id = 1, .loop = &t->f.loop, .pool = &t->f.pool, .routes = t->ra, .route_cap = 1};
    assert_int_equal(sprig_ns_node_init(&t->a, &c), SPRIG_STATUS_OK);
    c.id = 2;
    c.routes = t->rb;
    assert_int_equal(sprig_ns_node_init(&t->b, &c), SPRIG_STATUS_OK);
    rec_init(&t->reca, &t->a, &t->f.fc);
    rec_init(&t->recb, &t->b, &t->f.fc);
    sprig_ns_simlink_cfg lc = *lc_in;
    lc.loop = &t->f.loop;
    lc.pool = &t->f.pool;
    assert_int_equal(sprig_ns_simlink_init(&t->l, &lc), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_attach(&t->a, &t->l.end[0].link), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_attach(&t->b, &t->l.end[1].link), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_add_route(&t->a, 0, 0, &t->l.end[0].link), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_add_route(&t->b, 0, 0, &t->l.end[1].link), SPRIG_STATUS_OK);
}

static void pair_teardown(pair *t)
{
    sprig_ns_simlink_deinit(&t->l);
    sprig_ns_simlink_deinit(&t->l);
    sprig_ns_node_deinit(&t->a);
    sprig_ns_node_deinit(&t->b);
    fx_deinit(&t->f);
}

/* Send n datagrams (payload 20 + i bytes, first byte i) paced 1 ms apart; run until quiet. */
static void pump_n(pair *t, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(send_dgram(&t->f, &t->a, 2, 9, 20 + i, (uint8_t)i, 2), SPRIG_STATUS_OK);
        fx_run(&t->f, SPRIG_TIME_MS(1));
    }
    fx_run(&t->f, SPRIG_TIME_S(1));
}

static void test_simlink_impaired_is_deterministic_and_never_corrupts(void **state)
{
    (void)state;
    pair *t = &the_pair;
    sprig_ns_simlink_cfg lc = {.seed = 1234,
                               .mtu = 512,
                               .delay = SPRIG_TIME_MS(3),
                               .reorder_delay = SPRIG_TIME_MS(5),
                               .loss_ppm = 200000,
                               .dup_ppm = 50000,
                               .reorder_ppm = 50000,
                               .corrupt_ppm = 50000};
    enum { N = 60 };
    uint8_t order1[REC_MAX];
    unsigned count1;
    sprig_ns_simlink_stats s1;

    pair_setup(t, &lc);
    pump_n(t, N);
    count1 = t->recb.count;
    memcpy(order1, t->recb.first, sizeof(order1));
    s1 = t->l.end[0].stats;
    /* every datagram delivered has the length its first byte says: nothing corrupted got up */
    for (unsigned i = 0; i < t->recb.count && i < REC_MAX; i++) {
        assert_int_equal(t->recb.len[i], 20u + t->recb.first[i]);
    }
    assert_int_equal(s1.sent, N);
    assert_true(s1.lost >= 4 && s1.lost <= 24);
    assert_true(s1.corrupted + s1.duplicated + s1.reordered > 0);
    /* what did not arrive intact was lost, corrupted (and refused) or is a duplicate */
    assert_int_equal(s1.delivered, N - s1.lost + s1.duplicated);
    unsigned refused = t->recb.bad + t->b.stats.bad_header + t->b.stats.no_proto +
                       t->b.stats.not_for_me + t->b.stats.bad_icmp;
    assert_int_equal(count1 + refused, s1.delivered);
    pair_teardown(t);

    /* same seed, same run */
    pair_setup(t, &lc);
    pump_n(t, N);
    assert_int_equal(t->recb.count, count1);
    assert_memory_equal(t->recb.first, order1, count1 < REC_MAX ? count1 : REC_MAX);
    assert_memory_equal(&t->l.end[0].stats, &s1, sizeof(s1));
    pair_teardown(t);
}

static void test_simlink_reorders(void **state)
{
    (void)state;
    pair *t = &the_pair;
    sprig_ns_simlink_cfg lc = {.seed = 7,
                               .mtu = 512,
                               .delay = SPRIG_TIME_MS(1),
                               .reorder_delay = SPRIG_TIME_MS(4),
                               .reorder_ppm = 300000};
    pair_setup(t, &lc);
    pump_n(t, 20);
    assert_int_equal(t->recb.count, 20);
    unsigned inversions = 0;
    for (unsigned i = 1; i < 20; i++) {
        inversions += t->recb.first[i] < t->recb.first[i - 1];
    }
    assert_true(inversions > 0);
    assert_true(t->l.end[0].stats.reordered > 0);
    pair_teardown(t);
}

static void test_simlink_bandwidth_and_delay(void **state)
{
    (void)state;
    pair *t = &the_pair;
    sprig_ns_simlink_cfg lc = {.mtu = 1024, .delay = SPRIG_TIME_MS(2), .bandwidth = 100000};
    pair_setup(t, &lc);
    sprig_time t0 = t->f.fc.now;
    /* two 1000-byte packets: 10 ms each on the wire, then 2 ms of flight */
    assert_int_equal(send_dgram(&t->f, &t->a, 2, 9, 1000 - 14, 0, 2), SPRIG_STATUS_OK);
    assert_int_equal(send_dgram(&t->f, &t->a, 2, 9, 1000 - 14, 1, 2), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(100));
    assert_int_equal(t->recb.count, 2);
    assert_int_equal(t->recb.at[0] - t0, SPRIG_TIME_MS(12));
    assert_int_equal(t->recb.at[1] - t0, SPRIG_TIME_MS(22));
    pair_teardown(t);
}

static void test_simlink_deinit_frees_in_flight(void **state)
{
    (void)state;
    pair *t = &the_pair;
    sprig_ns_simlink_cfg lc = {.mtu = 1024, .delay = SPRIG_TIME_S(1), .bandwidth = 1000};
    pair_setup(t, &lc);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(send_dgram(&t->f, &t->a, 2, 9, 100, 0, 2), SPRIG_STATUS_OK);
    }
    fx_run(&t->f, SPRIG_TIME_MS(300)); /* some in flight, one on the wire, some queued */
    pair_teardown(t);                  /* checks the pool is whole */
    sprig_ns_simlink bad;
    sprig_ns_simlink_cfg bc = {.mtu = 4};
    assert_int_equal(sprig_ns_simlink_init(&bad, &bc), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_ns_simlink_deinit(&bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simlink_impaired_is_deterministic_and_never_corrupts),
        cmocka_unit_test(test_simlink_reorders),
        cmocka_unit_test(test_simlink_bandwidth_and_delay),
        cmocka_unit_test(test_simlink_deinit_frees_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
