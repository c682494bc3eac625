/* sprig_buf: pools, headroom/tailroom, queues. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sprig/buf.h"

SPRIG_BUF_POOL_STORAGE(small, 4, 64);

static void test_buf_pool_init_rejects_bad_storage(void **state)
{
    (void)state;
    sprig_buf_pool p;
    assert_int_equal(sprig_buf_pool_init(&p, NULL, small_mem, 4, 64),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_buf_pool_init(&p, small_bufs, small_mem, 0, 64),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_buf_pool_init(&p, small_bufs, small_mem, 4, 1),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_buf_pool_init(&p, small_bufs, small_mem + 1, 4, 32),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_buf_pool_deinit(&p);
    sprig_buf_pool_deinit(&p); /* idempotent */
    sprig_buf_pool_deinit(NULL);
}

static void test_buf_pool_exhausts_and_refills(void **state)
{
    (void)state;
    sprig_buf_pool p;
    sprig_buf *b[5];
    assert_int_equal(sprig_buf_pool_init(&p, small_bufs, small_mem, 4, 64), SPRIG_STATUS_OK);
    assert_int_equal(sprig_buf_pool_available(&p), 4);
    for (int i = 0; i < 4; i++) {
        b[i] = sprig_buf_alloc(&p, 8);
        assert_non_null(b[i]);
        assert_int_equal(((uintptr_t)sprig_buf_data(b[i]) - 8) % SPRIG_CONFIG_BUF_ALIGN, 0);
        for (int j = 0; j < i; j++) {
            assert_ptr_not_equal(b[i]->mem, b[j]->mem); /* distinct storage */
        }
    }
    b[4] = sprig_buf_alloc(&p, 0);
    assert_null(b[4]);
    assert_int_equal(sprig_buf_pool_available(&p), 0);
    assert_int_equal(p.low_water, 0);
    for (int i = 0; i < 4; i++) {
        sprig_buf_free(b[i]);
    }
    sprig_buf_free(NULL);
    assert_int_equal(sprig_buf_pool_available(&p), 4);
    assert_null(sprig_buf_alloc(&p, 65)); /* headroom beyond the size */
    assert_int_equal(sprig_buf_pool_available(&p), 4);
}

static void test_buf_headroom_and_tailroom(void **state)
{
    (void)state;
    sprig_buf_pool p;
    assert_int_equal(sprig_buf_pool_init(&p, small_bufs, small_mem, 4, 64), SPRIG_STATUS_OK);
    sprig_buf *b = sprig_buf_alloc(&p, 8);
    assert_int_equal(sprig_buf_headroom(b), 8);
    assert_int_equal(sprig_buf_tailroom(b), 56);
    assert_int_equal(sprig_buf_append(b, "payload", 7), SPRIG_STATUS_OK);
    uint8_t *h = sprig_buf_push(b, 4);
    assert_non_null(h);
    memcpy(h, "HDR:", 4);
    assert_int_equal(sprig_buf_len(b), 11);
    assert_memory_equal(sprig_buf_data(b), "HDR:payload", 11);
    assert_null(sprig_buf_push(b, 5)); /* only 4 left */
    assert_int_equal(sprig_buf_len(b), 11);
    assert_non_null(sprig_buf_pull(b, 4));
    assert_memory_equal(sprig_buf_data(b), "payload", 7);
    assert_null(sprig_buf_pull(b, 8));
    assert_int_equal(sprig_buf_trim(b, 3), SPRIG_STATUS_OK);
    assert_memory_equal(sprig_buf_data(b), "pay", 3);
    assert_int_equal(sprig_buf_trim(b, 4), SPRIG_STATUS_OUT_OF_RANGE);
    size_t room = sprig_buf_tailroom(b);
    assert_non_null(sprig_buf_put(b, room));
    assert_null(sprig_buf_put(b, 1));
    assert_int_equal(sprig_buf_append(b, "x", 1), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    sprig_buf_reset(b, 1000);
    assert_int_equal(sprig_buf_len(b), 0);
    assert_int_equal(sprig_buf_tailroom(b), 0);
    sprig_buf_free(b);
    assert_int_equal(sprig_buf_pool_available(&p), 4);
}

static void test_buf_queue_fifo(void **state)
{
    (void)state;
    sprig_buf_pool p;
    sprig_buf_queue q;
    assert_int_equal(sprig_buf_pool_init(&p, small_bufs, small_mem, 4, 64), SPRIG_STATUS_OK);
    sprig_buf_queue_init(&q);
    assert_null(sprig_buf_queue_pop(&q));
    sprig_buf *a = sprig_buf_alloc(&p, 0), *b = sprig_buf_alloc(&p, 0), *c = sprig_buf_alloc(&p, 0);
    sprig_buf_append(a, "a", 1);
    sprig_buf_append(b, "bb", 2);
    sprig_buf_append(c, "ccc", 3);
    sprig_buf_queue_push(&q, b);
    sprig_buf_queue_push(&q, c);
    sprig_buf_queue_push_front(&q, a);
    assert_int_equal(q.count, 3);
    assert_int_equal(q.bytes, 6);
    assert_ptr_equal(sprig_buf_queue_peek(&q), a);
    assert_ptr_equal(sprig_buf_queue_pop(&q), a);
    assert_ptr_equal(sprig_buf_queue_pop(&q), b);
    assert_int_equal(q.bytes, 3);
    sprig_buf_free(a);
    sprig_buf_free(b);
    sprig_buf_queue_clear(&q);
    assert_int_equal(q.count, 0);
    assert_int_equal(q.bytes, 0);
    assert_null(q.head);
    assert_null(q.tail);
    assert_int_equal(sprig_buf_pool_available(&p), 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_pool_init_rejects_bad_storage),
        cmocka_unit_test(test_buf_pool_exhausts_and_refills),
        cmocka_unit_test(test_buf_headroom_and_tailroom),
        cmocka_unit_test(test_buf_queue_fifo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
