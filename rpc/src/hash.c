/*
 * pw_rpc's 65599 hash (WIRE.md, "Service and method ids"): h starts as the length, then
 * h += coef * byte and coef *= 65599 for every byte, all mod 2^32, with no length cap.
 */
#include "sprig/rpc.h"

#define HASH_COEF 65599u

uint32_t sprig_rpc_hash(const char *s, size_t len)
{
    uint32_t h = (uint32_t)len;
    uint32_t coef = HASH_COEF;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len; i++) {
        h += coef * (uint32_t)p[i];
        coef *= HASH_COEF;
    }
    return h;
}
