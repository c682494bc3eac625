/* sprig_status: WIRE.md numbering and names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sprig/status.h"

static void test_status_numbering_matches_pw_status(void **state)
{
    (void)state;
    assert_int_equal(SPRIG_STATUS_OK, 0);
    assert_int_equal(SPRIG_STATUS_CANCELLED, 1);
    assert_int_equal(SPRIG_STATUS_UNKNOWN, 2);
    assert_int_equal(SPRIG_STATUS_INVALID_ARGUMENT, 3);
    assert_int_equal(SPRIG_STATUS_DEADLINE_EXCEEDED, 4);
    assert_int_equal(SPRIG_STATUS_NOT_FOUND, 5);
    assert_int_equal(SPRIG_STATUS_ALREADY_EXISTS, 6);
    assert_int_equal(SPRIG_STATUS_PERMISSION_DENIED, 7);
    assert_int_equal(SPRIG_STATUS_RESOURCE_EXHAUSTED, 8);
    assert_int_equal(SPRIG_STATUS_FAILED_PRECONDITION, 9);
    assert_int_equal(SPRIG_STATUS_ABORTED, 10);
    assert_int_equal(SPRIG_STATUS_OUT_OF_RANGE, 11);
    assert_int_equal(SPRIG_STATUS_UNIMPLEMENTED, 12);
    assert_int_equal(SPRIG_STATUS_INTERNAL, 13);
    assert_int_equal(SPRIG_STATUS_UNAVAILABLE, 14);
    assert_int_equal(SPRIG_STATUS_DATA_LOSS, 15);
    assert_int_equal(SPRIG_STATUS_UNAUTHENTICATED, 16);
}

static void test_status_names(void **state)
{
    (void)state;
    assert_string_equal(sprig_status_str(SPRIG_STATUS_OK), "OK");
    assert_string_equal(sprig_status_str(SPRIG_STATUS_UNAVAILABLE), "UNAVAILABLE");
    assert_string_equal(sprig_status_str(SPRIG_STATUS_UNAUTHENTICATED), "UNAUTHENTICATED");
    assert_string_equal(sprig_status_str(SPRIG_STATUS_RESOURCE_EXHAUSTED), "RESOURCE_EXHAUSTED");
    assert_string_equal(sprig_status_str((sprig_status)17), "INVALID_STATUS");
    assert_string_equal(sprig_status_str((sprig_status)-1), "INVALID_STATUS");
    for (int i = 0; i < SPRIG_STATUS_COUNT; i++) {
        assert_string_not_equal(sprig_status_str((sprig_status)i), "INVALID_STATUS");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_numbering_matches_pw_status),
        cmocka_unit_test(test_status_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
