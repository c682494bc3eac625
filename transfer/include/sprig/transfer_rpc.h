/*
 * sprig/transfer_rpc.h — the transfer engine carried by pw_rpc: pw_transfer's
 * `pw.transfer.Transfer` service (Read/Write bidirectional streams of Chunk messages) served on
 * a sprig_rpc_server, and a client that reads and writes a peer's resources through a
 * sprig_rpc_client. Wire-compatible with pw_transfer's own clients and servers (WIRE.md).
 *
 * How: every Read or Write call is presented to an unchanged sprig_transfer_node as a
 * SEQPACKET socket (one CLIENT_STREAM / SERVER_STREAM payload = one message = one chunk). The
 * method implies the direction of a START (a pw_transfer client sends no sprig_direction):
 * Read = the client downloads, Write = the client uploads (cfg.implied_direction).
 *
 * Contract
 *   Memory: no malloc. Call slots, sessions, receive buffers and the scratch transmit pool are
 *     caller storage given in the configs. Each chunk is copied once on its way out (from the
 *     scratch buffer into the RPC packet) and once on its way in (from the RPC receive buffer
 *     into the node's).
 *   Threading: everything on the RPC server's / client's loop thread.
 *   Lifetime: deinit only from outside every callback of these objects, their transfer nodes
 *     and the RPC server/client they use. Do not deinit or unregister the RPC server (or
 *     client) under a live service (client) object: deinit this one first.
 *   Calls ending: when a Read/Write call ends (the client cancels or completes it, the server
 *     ends it, the connection is lost), its transfers end: ABORTED for a lost connection, a
 *     completed or server-ended call, CANCELLED for a cancelled one, or the RPC error that
 *     ended it (docs/transfer.md, "RPC carrier").
 */
#ifndef SPRIG_TRANSFER_RPC_H
#define SPRIG_TRANSFER_RPC_H

#include <stddef.h>
#include <stdint.h>

#include "sprig/rpc.h"
#include "sprig/transfer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* pw_rpc 65599 hashes (WIRE.md): "pw.transfer.Transfer", "Read", "Write". */
#define SPRIG_TRANSFER_RPC_SERVICE_ID 0x5BD6C87Bu
#define SPRIG_TRANSFER_RPC_READ_ID    0x5B7866DAu
#define SPRIG_TRANSFER_RPC_WRITE_ID   0xD4630586u

/* One RPC call seen as a SEQPACKET socket. Private. */
typedef struct sprig_transfer_rpc_sock {
    sprig_sock sock;               /* first: the transfer node's socket */
    sprig_rpc_call *call;          /* server side: the call, NULL once it ended */
    sprig_rpc_client_call *client; /* client side: the call, NULL once it ended */
    const uint8_t *rx;             /* the message being delivered (READABLE) */
    size_t rx_len;
    uint8_t rx_full;
    uint32_t dropped; /* messages the node could not take (oversized, after the end) */
    uint32_t stalls;  /* sends refused for a full RPC socket (resumed from on_ready) */
} sprig_transfer_rpc_sock;

/* A Read or Write call with its transfer node. Private; storage given in the configs. */
typedef struct sprig_transfer_rpc_stream {
    sprig_transfer_rpc_sock sock;
    sprig_transfer_node node;
    sprig_rpc_client_call ccall; /* client side */
    sprig_task task;             /* deferred teardown after the call ended */
    sprig_task retry;            /* WRITABLE after the scratch pool was found empty */
    sprig_buf_pool *scratch;
    void *owner; /* the service or client */
    sprig_transfer_session *sessions;
    uint8_t *rx_buf;
    sprig_status end_status; /* what the node's transfers end with */
    uint8_t state;           /* private */
    uint8_t finish_call;     /* server: answer RESPONSE OK at teardown */
} sprig_transfer_rpc_stream;

/* ---- server ------------------------------------------------------------------------------ */

typedef struct sprig_transfer_rpc_service_cfg {
    sprig_loop *loop;
    /* One slot per concurrent Read/Write call (a pw_transfer client opens one of each and
     * multiplexes its transfers on them). A call beyond max_calls is refused with RESPONSE
     * RESOURCE_EXHAUSTED. */
    sprig_transfer_rpc_stream *slots;
    size_t max_calls;
    sprig_transfer_session *sessions; /* max_calls * sessions_per_call */
    size_t sessions_per_call;
    uint8_t *rx_bufs; /* max_calls * rx_cap bytes */
    size_t rx_cap;    /* >= SPRIG_TRANSFER_MIN_MESSAGE; chunks are limited to this size */
    /* Scratch transmit buffers (>= 1 of >= SPRIG_TRANSFER_MIN_MESSAGE bytes), shared by all
     * calls: a chunk is built in one and copied into its RPC packet at once. */
    sprig_buf_pool *tx_pool;
    /* Engine settings for every call's node: handler, on_progress, on_done, user, tuning.
     * loop, sock, sessions, max_sessions, rx_buf, rx_cap and implied_direction are set per
     * call. on_done/on_progress receive that call's node. */
    sprig_transfer_cfg engine;
} sprig_transfer_rpc_service_cfg;

typedef struct sprig_transfer_rpc_service {
    sprig_rpc_service service; /* registered on the RPC server */
    sprig_transfer_rpc_service_cfg cfg;
    sprig_rpc_server *server;
    uint32_t calls_refused; /* Read/Write calls refused for want of a slot */
} sprig_transfer_rpc_service;

/* Register pw.transfer.Transfer on `server`. INVALID_ARGUMENT for missing storage or an
 * rx_cap / tx_pool below SPRIG_TRANSFER_MIN_MESSAGE; ALREADY_EXISTS if the server has it. */
sprig_status sprig_transfer_rpc_service_init(sprig_transfer_rpc_service *svc,
                                             sprig_rpc_server *server,
                                             const sprig_transfer_rpc_service_cfg *cfg);
/* Unregister (open calls: their clients get SERVER_ERROR CANCELLED), end every transfer with
 * CANCELLED. Idempotent; safe after a failed init. */
void sprig_transfer_rpc_service_deinit(sprig_transfer_rpc_service *svc);
/* Read/Write calls open now (0 after every call ended and was torn down). */
size_t sprig_transfer_rpc_service_calls(const sprig_transfer_rpc_service *svc);

/* ---- client ------------------------------------------------------------------------------ */

typedef struct sprig_transfer_rpc_client_cfg {
    sprig_rpc_client *rpc;            /* a connected RPC client (channel as configured there) */
    sprig_transfer_session *sessions; /* 2 * sessions_per_stream: Read's, then Write's */
    size_t sessions_per_stream;
    uint8_t *rx_bufs;        /* 2 * rx_cap bytes */
    size_t rx_cap;           /* >= SPRIG_TRANSFER_MIN_MESSAGE */
    sprig_buf_pool *tx_pool; /* scratch, as in the service config */
    /* Engine settings for both nodes (tuning; first_session_id: Read's transfers use ids from
     * it, Write's from it + 0x40000000, so ids are unique across the two streams). handler is
     * ignored (the client serves nothing). */
    sprig_transfer_cfg engine;
} sprig_transfer_rpc_client_cfg;

typedef struct sprig_transfer_rpc_client {
    sprig_transfer_rpc_client_cfg cfg;
    sprig_transfer_rpc_stream streams[2]; /* [0] Read, [1] Write */
    uint8_t ready;
} sprig_transfer_rpc_client;

sprig_status sprig_transfer_rpc_client_init(sprig_transfer_rpc_client *c,
                                            const sprig_transfer_rpc_client_cfg *cfg);
/* Ends every transfer with CANCELLED and cancels the open calls. Idempotent. */
void sprig_transfer_rpc_client_deinit(sprig_transfer_rpc_client *c);

/* As sprig_transfer_read / _write (same options, same done/progress contract; `node` in the
 * callbacks is the stream's). The first transfer opens the Read (Write) call. Additional
 * statuses: UNAVAILABLE (the RPC socket is full or the stream's previous call is still being
 * torn down: try again), ABORTED (RPC connection gone). */
sprig_status sprig_transfer_rpc_read(sprig_transfer_rpc_client *c, const sprig_transfer_opts *opts,
                                     uint32_t *session_id);
sprig_status sprig_transfer_rpc_write(sprig_transfer_rpc_client *c, const sprig_transfer_opts *opts,
                                      uint32_t *session_id);
/* As sprig_transfer_cancel. */
sprig_status sprig_transfer_rpc_cancel(sprig_transfer_rpc_client *c, uint32_t session_id);
/* Transfers in progress on both streams. */
size_t sprig_transfer_rpc_active(const sprig_transfer_rpc_client *c);

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_TRANSFER_RPC_H */
