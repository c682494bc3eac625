/*
 * sprig/mem.h — the in-memory backend: socket pairs inside one process (URLs `mem:NAME`).
 *
 * For tests and simulations of every layer above the sockets, and for connecting two
 * components of one firmware image. Portable: no malloc, no OS. Carries SEQPACKET, STREAM and
 * DGRAM with the same contract as every other backend (tests/sockets conformance suite).
 *
 * Contract
 *   Ownership: the backend, its socket array and its buffer pool are the caller's; sockets are
 *     taken from the array by dial/listen/accept/sprig_mem_pair and returned by close.
 *   Memory: every queued message or stream chunk is one buffer from the pool; the pool's
 *     buf_size must be at least max_message_size + SPRIG_CONFIG_SOCK_HEADROOM.
 *   Flow control: each direction holds at most window_bytes of unread data; a send that would
 *     exceed it returns UNAVAILABLE (DGRAM: the message is dropped and counted instead, as a
 *     real datagram network would) and WRITABLE fires when the reader has made room.
 *     An empty pool is RESOURCE_EXHAUSTED at alloc_tx and UNAVAILABLE at send (retry later).
 *   Addresses: socket i of the array has address [::]:(i+1) (for DGRAM send_to/recv_from).
 *   Closing one end: the peer reads what was queued, then OUT_OF_RANGE (then CLOSED(OK) once it
 *     has shut down too); its sends return ABORTED. Dialing a name nobody listens on fails
 *     with CLOSED(UNAVAILABLE); listening on a taken name is ALREADY_EXISTS.
 *   Threading: the loop's thread only.
 */
#ifndef SPRIG_MEM_H
#define SPRIG_MEM_H

#include <stddef.h>
#include <stdint.h>

#include "sprig/config.h"
#include "sprig/sock.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sprig_mem_cfg {
    size_t max_message_size; /* 0: SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE */
    size_t window_bytes;     /* 0: 4 * max_message_size */
    unsigned backlog;        /* pending connections per listener; 0: 16 */
} sprig_mem_cfg;

struct sprig_mem_backend;

typedef struct sprig_mem_sock {
    sprig_sock sock;
    struct sprig_mem_backend *backend;
    struct sprig_mem_sock *peer;     /* connected peer, NULL when gone */
    struct sprig_mem_sock *next;     /* listener's accept queue link */
    struct sprig_mem_sock *accept_q; /* listener: pending accepted sockets */
    sprig_buf_queue rxq;             /* data from the peer */
    size_t stream_off;               /* STREAM: bytes of rxq head already read */
    sprig_task task;                 /* deferred event delivery */
    uint8_t pending;                 /* events waiting in `task` (bit per event) */
    uint8_t in_use;
    uint8_t peer_closed; /* peer closed or shut down: EOF after rxq */
    uint16_t backlog_used;
    uint32_t dropped;                     /* DGRAM messages dropped for a full window */
    char name[SPRIG_CONFIG_MEM_NAME_MAX]; /* listener / bound name */
} sprig_mem_sock;

typedef struct sprig_mem_backend {
    sprig_backend backend;
    sprig_loop *loop;
    sprig_mem_cfg cfg;
    sprig_mem_sock *socks;
    size_t nsocks;
    sprig_buf_pool *pool;
} sprig_mem_backend;

/* Registers the backend on the loop (scheme "mem"). INVALID_ARGUMENT if storage is missing or
 * the pool's buffers are too small for max_message_size. */
sprig_status sprig_mem_backend_init(sprig_mem_backend *m, sprig_loop *loop,
                                    const sprig_mem_cfg *cfg, sprig_mem_sock *socks, size_t nsocks,
                                    sprig_buf_pool *pool);
/* Unregisters; the caller must have closed every socket. Idempotent. */
void sprig_mem_backend_deinit(sprig_mem_backend *m);
/* Sockets taken from the array right now (0 after a clean teardown). */
size_t sprig_mem_backend_in_use(const sprig_mem_backend *m);
/* Two connected OPEN sockets of the given type, no listener needed. */
sprig_status sprig_mem_pair(sprig_mem_backend *m, sprig_sock_type type, sprig_sock **a,
                            sprig_sock **b);

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_MEM_H */
