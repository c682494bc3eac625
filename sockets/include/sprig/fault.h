/*
 * sprig/fault.h — a fault-injecting socket wrapper for tests.
 *
 * Wraps any socket and misbehaves on its send path, deterministically from a seed:
 *   DGRAM:      drop, duplicate, reorder, corrupt (flip one bit), delay.
 *   SEQPACKET:  delay only (order kept: SEQPACKET promises it) and stalls.
 *   STREAM:     short writes (accept at most max_write bytes per send) and stalls (a send returns
 *               UNAVAILABLE and WRITABLE comes only after stall_time).
 * The receive path passes through unchanged. Delays and stalls use the loop's timers, so a fake
 * clock drives them in tests.
 *
 * Contract
 *   Ownership: sprig_fault_sock is caller storage; it takes over the inner socket (its callback
 *     is replaced) and closes it when the wrapper is closed. Held (delayed/reordered) messages
 *     live in buffers from `pool`; with the pool empty a message is passed on at once.
 *   Threading: the loop's thread only.
 */
#ifndef SPRIG_FAULT_H
#define SPRIG_FAULT_H

#include <stdint.h>

#include "sprig/sock.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sprig_fault_cfg {
    uint32_t seed; /* 0 is allowed (mapped to a fixed non-zero seed) */
    /* DGRAM, per mille of sent messages */
    uint16_t drop_pm;
    uint16_t dup_pm;
    uint16_t reorder_pm; /* held back and sent after the next message */
    uint16_t corrupt_pm;
    /* DGRAM and SEQPACKET: each message is delayed uniformly in [delay_min, delay_max] */
    sprig_time delay_min;
    sprig_time delay_max;
    /* STREAM */
    size_t max_write; /* 0: no limit */
    /* all types: chance per send of a stall */
    uint16_t stall_pm;
    sprig_time stall_time;
} sprig_fault_cfg;

typedef struct sprig_fault_stats {
    uint32_t sent; /* sends accepted from the user */
    uint32_t dropped;
    uint32_t duplicated;
    uint32_t reordered;
    uint32_t corrupted;
    uint32_t delayed;
    uint32_t short_writes;
    uint32_t stalls;
} sprig_fault_stats;

typedef struct sprig_fault_sock {
    sprig_sock sock; /* the wrapped face: pass &f->sock to the socket API */
    sprig_sock *inner;
    sprig_fault_cfg cfg;
    sprig_fault_stats stats;
    sprig_buf_pool *pool;
    uint32_t rng;
    sprig_buf_queue held; /* delayed messages, in release order */
    sprig_buf *reorder;   /* a message held back for reordering */
    sprig_timer timer;    /* releases held messages / ends a stall */
    sprig_task task;      /* deferred event delivery */
    uint8_t pending;
    uint8_t stalled;
    uint8_t blocked;        /* the inner socket refused a held message: retry on its WRITABLE */
    uint8_t shut_pending;   /* shutdown waits until the held messages have gone out */
    sprig_time stall_until; /* end of the current stall */
} sprig_fault_sock;

sprig_status sprig_fault_init(sprig_fault_sock *f, sprig_sock *inner, const sprig_fault_cfg *cfg,
                              sprig_buf_pool *pool);

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_FAULT_H */
