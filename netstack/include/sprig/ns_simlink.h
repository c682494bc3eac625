/*
 * sprig/ns_simlink.h — a deterministic simulated point-to-point link between two nodes.
 *
 * Contract
 *   A sprig_ns_simlink is a wire with two ends (end[0], end[1]), each a sprig_ns_link to attach
 *   to a node. Each direction models, in order: a transmitter with a bandwidth cap (a packet
 *   occupies the wire for len/bandwidth), then impairments drawn from a seeded xorshift PRNG —
 *   loss, corruption (one random bit flipped), duplication, reordering (the packet is held back
 *   by an extra reorder_delay so later ones overtake it) — then a fixed propagation delay.
 *   The same seed and the same traffic give the same run, bit for bit.
 *   Time: everything runs on the loop's timers (sprig_loop_poll with a fake clock in tests).
 *     Packets are delivered from timer callbacks, never re-entrantly from a send. A timer
 *     callback arms no timer but its own; taking the next packet and re-arming happen in a
 *     deferred task of the same loop pass (the loop does not support re-arming another timer
 *     that is due in the same pass).
 *   Memory: no allocation; duplicates are copied into buffers from cfg.pool (counted as
 *     no_buffer and skipped when it is empty). At most SPRIG_CONFIG_NS_SIM_SLOTS packets are in
 *     flight per direction; further packets wait in the node's class queues (backpressure).
 *   Threading: none; the loop's thread.
 *   Errors: init returns INVALID_ARGUMENT for a bad config.
 */
#ifndef SPRIG_NS_SIMLINK_H
#define SPRIG_NS_SIMLINK_H

#include <stdint.h>

#include "sprig/loop.h"
#include "sprig/ns_node.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sprig_ns_simlink_cfg {
    sprig_loop *loop;         /* required */
    sprig_buf_pool *pool;     /* for duplicates; may be NULL when dup_ppm is 0 */
    uint32_t seed;            /* 0 is replaced by a fixed non-zero seed */
    uint16_t mtu;             /* 8..65535 */
    uint32_t bandwidth;       /* bytes per second; 0 = unlimited */
    sprig_time delay;         /* propagation delay */
    sprig_time reorder_delay; /* extra hold of a reordered packet */
    /* Probabilities in parts per million. */
    uint32_t loss_ppm;
    uint32_t dup_ppm;
    uint32_t reorder_ppm;
    uint32_t corrupt_ppm;
} sprig_ns_simlink_cfg;

typedef struct sprig_ns_simlink_stats {
    uint32_t sent, delivered, lost, duplicated, reordered, corrupted, no_buffer;
} sprig_ns_simlink_stats;

typedef struct sprig_ns_simlink sprig_ns_simlink;

typedef struct sprig_ns_simlink_end {
    sprig_ns_link link; /* attach this to a node */
    sprig_ns_simlink *sim;
    unsigned index;       /* 0 or 1 */
    sprig_buf *wire;      /* packet being serialised onto the wire */
    sprig_timer tx_timer; /* end of serialisation */
    sprig_timer rx_timer; /* next delivery towards the other end */
    sprig_task work;      /* pump + re-arm, deferred out of timer callbacks */
    struct {
        sprig_buf *buf;
        sprig_time due;
        uint32_t order;
    } slots[SPRIG_CONFIG_NS_SIM_SLOTS]; /* in flight towards the other end */
    uint32_t order;
    sprig_ns_simlink_stats stats; /* of this end's transmit direction */
} sprig_ns_simlink_end;

struct sprig_ns_simlink {
    sprig_ns_simlink_cfg cfg;
    uint32_t rng;
    sprig_ns_simlink_end end[2];
};

sprig_status sprig_ns_simlink_init(sprig_ns_simlink *sim, const sprig_ns_simlink_cfg *cfg);
/* Detaches both ends from their nodes, frees packets in flight, stops timers. Idempotent. */
void sprig_ns_simlink_deinit(sprig_ns_simlink *sim);
/* Change impairments on the fly (e.g. a link that goes bad mid-test). Same checks as init;
 * the loop and the PRNG state are kept. */
sprig_status sprig_ns_simlink_set_cfg(sprig_ns_simlink *sim, const sprig_ns_simlink_cfg *cfg);

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_NS_SIMLINK_H */
