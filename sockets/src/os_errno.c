/*
 * os_errno.c — the one errno → sprig_status table of the OS backend (sprig/os.h).
 *
 * Everything errno-shaped that leaves sockets/src/os_*.c goes through here, so the mapping is
 * reviewed and tested in one place (tests/sockets/test_os_errno.c walks every row).
 */
#include <errno.h>
#include <stddef.h>

#include "sprig/os.h"

typedef struct errno_row {
    int err;
    sprig_status status;
} errno_row;

/* EAGAIN and EWOULDBLOCK (EOPNOTSUPP and ENOTSUP) are the same value on Linux; listing both
 * keeps the table right where they differ, and the first match wins either way. */
static const errno_row errno_table[] = {
    /* would block / not yet: try again later */
    {EAGAIN, SPRIG_STATUS_UNAVAILABLE},
    {EWOULDBLOCK, SPRIG_STATUS_UNAVAILABLE},
    {EINPROGRESS, SPRIG_STATUS_UNAVAILABLE},
    {EALREADY, SPRIG_STATUS_UNAVAILABLE},
    /* nobody there */
    {ECONNREFUSED, SPRIG_STATUS_UNAVAILABLE},
    {ENETUNREACH, SPRIG_STATUS_UNAVAILABLE},
    {EADDRNOTAVAIL, SPRIG_STATUS_UNAVAILABLE}, /* no such local address, or no free port */
    {EHOSTUNREACH, SPRIG_STATUS_UNAVAILABLE},
    {ENETDOWN, SPRIG_STATUS_UNAVAILABLE},
    {EHOSTDOWN, SPRIG_STATUS_UNAVAILABLE},
    /* the peer went away */
    {ECONNRESET, SPRIG_STATUS_ABORTED},
    {EPIPE, SPRIG_STATUS_ABORTED},
    {ECONNABORTED, SPRIG_STATUS_ABORTED},
    {ENOTCONN, SPRIG_STATUS_ABORTED},
    {ESHUTDOWN, SPRIG_STATUS_ABORTED},
    {ETIMEDOUT, SPRIG_STATUS_DEADLINE_EXCEEDED},
    {ENOENT, SPRIG_STATUS_NOT_FOUND},
    {EADDRINUSE, SPRIG_STATUS_ALREADY_EXISTS},
    {EEXIST, SPRIG_STATUS_ALREADY_EXISTS},
    {EACCES, SPRIG_STATUS_PERMISSION_DENIED},
    {EPERM, SPRIG_STATUS_PERMISSION_DENIED},
    /* too big, or out of something */
    {EMSGSIZE, SPRIG_STATUS_RESOURCE_EXHAUSTED},
    {ENOBUFS, SPRIG_STATUS_RESOURCE_EXHAUSTED},
    {ENOMEM, SPRIG_STATUS_RESOURCE_EXHAUSTED},
    {EMFILE, SPRIG_STATUS_RESOURCE_EXHAUSTED},
    {ENFILE, SPRIG_STATUS_RESOURCE_EXHAUSTED},
    /* caller errors */
    {EINVAL, SPRIG_STATUS_INVALID_ARGUMENT},
    {EAFNOSUPPORT, SPRIG_STATUS_INVALID_ARGUMENT},
    {ENAMETOOLONG, SPRIG_STATUS_INVALID_ARGUMENT},
    /* wrong state: a plain send on an unconnected datagram socket, a second connect */
    {EDESTADDRREQ, SPRIG_STATUS_FAILED_PRECONDITION},
    {EISCONN, SPRIG_STATUS_FAILED_PRECONDITION},
    {EOPNOTSUPP, SPRIG_STATUS_UNIMPLEMENTED},
    {EPROTONOSUPPORT, SPRIG_STATUS_UNIMPLEMENTED},
};

sprig_status sprig_os_status_from_errno(int err)
{
    for (size_t i = 0; i < sizeof errno_table / sizeof errno_table[0]; i++) {
        if (errno_table[i].err == err) {
            return errno_table[i].status;
        }
    }
    return SPRIG_STATUS_INTERNAL;
}
