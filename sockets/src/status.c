/* sprig_status names. */
#include "sprig/status.h"

static const char *const names[SPRIG_STATUS_COUNT] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *sprig_status_str(sprig_status status)
{
    unsigned v = (unsigned)status;
    return v < SPRIG_STATUS_COUNT ? names[v] : "INVALID_STATUS";
}
