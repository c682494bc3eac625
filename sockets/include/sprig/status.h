/*
 * sprig/status.h — the one status type of sprig.
 *
 * Contract
 *   Values and numbering are pw_status / gRPC (0..16); they travel on the wire unchanged in
 *   RPC packets and transfer chunks. Every fallible sprig function returns a sprig_status; counts
 *   and lengths come back through out-parameters, never through the return value.
 *   Thread-safe, allocation-free.
 *
 * Meanings at the socket layer (one per status; see docs/sockets.md):
 *   UNAVAILABLE          would block: try again after the WRITABLE/READABLE event
 *                        (and, as a connect result only: nobody is listening)
 *   ABORTED              the peer closed abruptly or reset the connection
 *   OUT_OF_RANGE         end of stream: the peer finished sending and all data was read
 *   FAILED_PRECONDITION  wrong state (not connected, shut down, blocking call inside a callback)
 *   UNIMPLEMENTED        the backend or socket type does not support the operation
 *   DEADLINE_EXCEEDED    a timeout expired
 *   UNAUTHENTICATED      authentication failed
 *   DATA_LOSS            corrupt or truncated input
 *   RESOURCE_EXHAUSTED   too large for the socket, or a pool/table is empty
 *   INVALID_ARGUMENT     a caller error (bad URL, NULL where an object is required)
 *   NOT_FOUND            no such thing (unix socket path, URL scheme with no backend)
 */
#ifndef SPRIG_STATUS_H
#define SPRIG_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sprig_status {
    SPRIG_STATUS_OK = 0,
    SPRIG_STATUS_CANCELLED = 1,
    SPRIG_STATUS_UNKNOWN = 2,
    SPRIG_STATUS_INVALID_ARGUMENT = 3,
    SPRIG_STATUS_DEADLINE_EXCEEDED = 4,
    SPRIG_STATUS_NOT_FOUND = 5,
    SPRIG_STATUS_ALREADY_EXISTS = 6,
    SPRIG_STATUS_PERMISSION_DENIED = 7,
    SPRIG_STATUS_RESOURCE_EXHAUSTED = 8,
    SPRIG_STATUS_FAILED_PRECONDITION = 9,
    SPRIG_STATUS_ABORTED = 10,
    SPRIG_STATUS_OUT_OF_RANGE = 11,
    SPRIG_STATUS_UNIMPLEMENTED = 12,
    SPRIG_STATUS_INTERNAL = 13,
    SPRIG_STATUS_UNAVAILABLE = 14,
    SPRIG_STATUS_DATA_LOSS = 15,
    SPRIG_STATUS_UNAUTHENTICATED = 16,
} sprig_status;

/* Number of defined codes; any value >= this is not a valid status. */
#define SPRIG_STATUS_COUNT 17

/* Upper-case name of a status ("OK", "UNAVAILABLE", ...); "INVALID_STATUS" for an unknown value. */
const char *sprig_status_str(sprig_status status);

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_STATUS_H */
