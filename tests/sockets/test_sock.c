/* The socket API's generic layer, on the in-memory backend: back-pressure from an empty
 * transmit pool (sprig_sock_alloc_tx_flow). */
#include "support.h"

#include "sprig/mem.h"

enum { NBUFS = 2, BUF = 256 };

SPRIG_BUF_POOL_STORAGE(pool, NBUFS, BUF);

static void test_sock_alloc_tx_flow_empty_pool_is_backpressure(void **state)
{
    (void)state;
    sprig_fake_clock clock;
    sprig_fake_clock_init(&clock, 0);
    sprig_loop loop;
    sprig_loop_cfg lc = {.clock = clock.clock};
    assert_int_equal(sprig_loop_init(&loop, &lc), SPRIG_STATUS_OK);
    sprig_buf_pool p;
    assert_int_equal(sprig_buf_pool_init(&p, pool_bufs, pool_mem, NBUFS, BUF), SPRIG_STATUS_OK);
    sprig_mem_sock socks[2];
    sprig_mem_backend m;
    sprig_mem_cfg mc = {.max_message_size = 128};
    assert_int_equal(sprig_mem_backend_init(&m, &loop, &mc, socks, 2, &p), SPRIG_STATUS_OK);
    sprig_sock *a = NULL, *b = NULL;
    assert_int_equal(sprig_mem_pair(&m, SPRIG_SOCK_SEQPACKET, &a, &b), SPRIG_STATUS_OK);

    sprig_buf *held[NBUFS];
    for (int i = 0; i < NBUFS; i++) {
        assert_int_equal(sprig_sock_alloc_tx_flow(a, 64, &held[i]), SPRIG_STATUS_OK);
    }
    sprig_buf *none = NULL;
    /* The plain call reports the empty pool as such; the flow variant as "wait". */
    assert_int_equal(sprig_sock_alloc_tx(a, 64, &none), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_false(a->flags & SPRIG_SOCK_F_WANT_WRITABLE);
    assert_int_equal(sprig_sock_alloc_tx_flow(a, 64, &none), SPRIG_STATUS_UNAVAILABLE);
    assert_null(none);
    assert_true(a->flags & SPRIG_SOCK_F_WANT_WRITABLE);
    /* Too large stays RESOURCE_EXHAUSTED: waiting would not help. */
    sprig_buf_free(held[0]);
    assert_int_equal(sprig_sock_alloc_tx_flow(a, 129, &none), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    sprig_buf_free(held[1]);

    sprig_sock_close(a);
    sprig_sock_close(b);
    sprig_loop_poll(&loop, clock.now);
    assert_int_equal(sprig_mem_backend_in_use(&m), 0);
    assert_int_equal(sprig_buf_pool_available(&p), NBUFS);
    sprig_mem_backend_deinit(&m);
    sprig_loop_deinit(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sock_alloc_tx_flow_empty_pool_is_backpressure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
