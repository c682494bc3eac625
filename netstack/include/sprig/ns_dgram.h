/*
 * sprig/ns_dgram.h — the netstack DGRAM transport (docs/netstack.md §4) as a socket backend for
 * `sprig://NODE:PORT` URLs (sprig_sock_type DGRAM).
 *
 * Contract
 *   One backend serves one local node and registers itself with the loop for the `sprig`
 *   scheme (the first registered netstack backend on a loop takes every sprig:// URL).
 *   NODE is a decimal or 0x-prefixed hexadecimal node id, or an address under the netstack ULA
 *   prefix ([fd00:5350:5247::c]).
 *     listen("sprig://SELF:PORT", DGRAM): a bound socket (recv_from / send_to); NODE must be
 *       this node (or 0); PORT 0 picks an ephemeral port. ALREADY_EXISTS if the port is bound.
 *     dial("sprig://NODE:PORT", DGRAM): a connected socket with an ephemeral local port;
 *       CONNECTED follows from the loop (nothing to refuse: connectionless).
 *     Other socket types: UNIMPLEMENTED here; STREAM and SEQPACKET come from the stream backend
 *     (sprig/ns_stream.h), which passes DGRAM requests on to this one.
 *   Errors from the path reach the socket as statuses: a send returns NOT_FOUND (no route),
 *     RESOURCE_EXHAUSTED (larger than the first link's MTU) or UNAVAILABLE (link queue or
 *     buffer pool full; WRITABLE follows after SPRIG_CONFIG_NS_DGRAM_RETRY). ICMP errors
 *     arriving later for a connected socket (port unreachable, packet too big, time exceeded,
 *     unreachable) are returned once by its next recv (UNAVAILABLE would be ambiguous there,
 *     so port unreachable is reported as NOT_FOUND by recv), with a READABLE event.
 *   max_message_size: min(MTU towards the peer, buffer size − headroom) − 14. A bound socket
 *     reports the buffer limit; send_to beyond the path MTU returns RESOURCE_EXHAUSTED.
 *   Zero copy: sprig_sock_alloc_tx() reserves SPRIG_NS_DGRAM_HEADROOM; sprig_sock_send_buf()
 *     puts the headers there and queues that very buffer (a refused buffer stays the caller's).
 *   Memory: sockets come from caller storage (socks[n]); buffers from `pool`, each received
 *     datagram kept in its receive buffer (zero copy up to recv) — its headers stay in the
 *     headroom, which is where recv_from reads the source address. No allocation.
 *   Threading: the loop's thread. Events are delivered from deferred tasks/timers.
 */
#ifndef SPRIG_NS_DGRAM_H
#define SPRIG_NS_DGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sprig/ns_node.h"
#include "sprig/sock.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Delay before WRITABLE follows a send that returned UNAVAILABLE. */
#ifndef SPRIG_CONFIG_NS_DGRAM_RETRY
#define SPRIG_CONFIG_NS_DGRAM_RETRY SPRIG_TIME_MS(1)
#endif

#define SPRIG_NS_DGRAM_HEADROOM  (SPRIG_NS_NET_HEADROOM + SPRIG_NS_DGRAM_HEADER_LEN)
#define SPRIG_NS_EPHEMERAL_FIRST 49152u

struct sprig_ns_dgram_backend;

typedef struct sprig_ns_dsock {
    /* Small fields first: Cortex-M0+ loads bytes with an immediate offset only below 32. */
    bool in_use;
    uint8_t pending; /* events to deliver from the task */
    uint16_t lport;
    uint16_t peer_node; /* 0: bound (listen) socket */
    uint16_t peer_port;
    struct sprig_ns_dgram_backend *be;
    sprig_status error; /* ICMP error for the next recv */
    sprig_buf_queue rxq;
    sprig_sock sock;
    sprig_task task;
    sprig_timer retry; /* WRITABLE after UNAVAILABLE (delivered via the task) */
} sprig_ns_dsock;

typedef struct sprig_ns_dgram_cfg {
    size_t rx_queue_len; /* datagrams queued per socket before new ones are dropped (>= 1) */
    uint8_t tc;          /* traffic class of the datagrams sent (0..3) */
} sprig_ns_dgram_cfg;

typedef struct sprig_ns_dgram_stats {
    uint32_t rx, tx, bad, no_port, rx_drops;
} sprig_ns_dgram_stats;

typedef struct sprig_ns_dgram_backend {
    sprig_ns_dgram_cfg cfg;
    sprig_ns_node *node;
    sprig_loop *loop;
    sprig_buf_pool *pool;
    sprig_ns_dsock *socks;
    size_t nsocks;
    uint16_t next_port;
    sprig_ns_dgram_stats stats;
    sprig_backend backend; /* registered with the loop */
    sprig_ns_proto proto;  /* registered with the node */
} sprig_ns_dgram_backend;

/* INVALID_ARGUMENT for missing storage, rx_queue_len 0, tc > 3, or a pool whose buffers cannot
 * hold the headers plus 64 bytes; ALREADY_EXISTS if the node already has a DGRAM protocol. */
sprig_status sprig_ns_dgram_init(sprig_ns_dgram_backend *be, sprig_ns_node *node,
                                 const sprig_ns_dgram_cfg *cfg, sprig_ns_dsock *socks, size_t n,
                                 sprig_buf_pool *pool);
/* Unregisters from loop and node and releases every socket (no events). Idempotent. */
void sprig_ns_dgram_deinit(sprig_ns_dgram_backend *be);
/* Sockets not closed yet. */
size_t sprig_ns_dgram_in_use(const sprig_ns_dgram_backend *be);

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_NS_DGRAM_H */
