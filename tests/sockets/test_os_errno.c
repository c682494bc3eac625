/*
 * test_os_errno.c — every row of the OS backend's errno → sprig_status table, and its default.
 * The expected values are written out here on their own, so a change to the table in
 * sockets/src/os_errno.c must be made twice, on purpose.
 */
#include "support.h"

#include <errno.h>
#include <stdio.h>

#include "sprig/os.h"

typedef struct expect {
    int err;
    const char *name;
    sprig_status status;
} expect;

/* clang-format off */
#define ROW(e, st) {e, #e, SPRIG_STATUS_##st}
/* clang-format on */

static const expect rows[] = {
    ROW(EAGAIN, UNAVAILABLE),
    ROW(EWOULDBLOCK, UNAVAILABLE),
    ROW(EINPROGRESS, UNAVAILABLE),
    ROW(EALREADY, UNAVAILABLE),
    ROW(ECONNREFUSED, UNAVAILABLE),
    ROW(ENETUNREACH, UNAVAILABLE),
    ROW(EADDRNOTAVAIL, UNAVAILABLE),
    ROW(EHOSTUNREACH, UNAVAILABLE),
    ROW(ENETDOWN, UNAVAILABLE),
    ROW(EHOSTDOWN, UNAVAILABLE),
    ROW(ECONNRESET, ABORTED),
    ROW(EPIPE, ABORTED),
    ROW(ECONNABORTED, ABORTED),
    ROW(ENOTCONN, ABORTED),
    ROW(ESHUTDOWN, ABORTED),
    ROW(ETIMEDOUT, DEADLINE_EXCEEDED),
    ROW(ENOENT, NOT_FOUND),
    ROW(EADDRINUSE, ALREADY_EXISTS),
    ROW(EEXIST, ALREADY_EXISTS),
    ROW(EACCES, PERMISSION_DENIED),
    ROW(EPERM, PERMISSION_DENIED),
    ROW(EMSGSIZE, RESOURCE_EXHAUSTED),
    ROW(ENOBUFS, RESOURCE_EXHAUSTED),
    ROW(ENOMEM, RESOURCE_EXHAUSTED),
    ROW(EMFILE, RESOURCE_EXHAUSTED),
    ROW(ENFILE, RESOURCE_EXHAUSTED),
    ROW(EINVAL, INVALID_ARGUMENT),
    ROW(EAFNOSUPPORT, INVALID_ARGUMENT),
    ROW(ENAMETOOLONG, INVALID_ARGUMENT),
    ROW(EDESTADDRREQ, FAILED_PRECONDITION),
    ROW(EISCONN, FAILED_PRECONDITION),
    ROW(EOPNOTSUPP, UNIMPLEMENTED),
    ROW(EPROTONOSUPPORT, UNIMPLEMENTED),
};

static void test_os_errno_every_row(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        sprig_status got = sprig_os_status_from_errno(rows[i].err);
        if (got != rows[i].status) {
            fprintf(stderr, "%s: got %s, want %s\n", rows[i].name, sprig_status_str(got),
                    sprig_status_str(rows[i].status));
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* Anything not in the table is an internal error, never OK or "try again". */
static void test_os_errno_default_is_internal(void **state)
{
    (void)state;
    const int others[] = {0, EBADF, EFAULT, EIO, ENOTSOCK, ENOSYS, EPROTO, -1, 100000};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        assert_int_equal(sprig_os_status_from_errno(others[i]), SPRIG_STATUS_INTERNAL);
    }
}

/* Nothing maps to OK: an errno always means something went wrong or must wait. */
static void test_os_errno_never_ok(void **state)
{
    (void)state;
    for (int err = 0; err < 4096; err++) {
        sprig_status st = sprig_os_status_from_errno(err);
        assert_int_not_equal(st, SPRIG_STATUS_OK);
        assert_true((unsigned)st < SPRIG_STATUS_COUNT);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_os_errno_every_row),
        cmocka_unit_test(test_os_errno_default_is_internal),
        cmocka_unit_test(test_os_errno_never_ok),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
