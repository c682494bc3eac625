/*
 * sprig/rpc.h — pw_rpc-compatible RPC over any SEQPACKET socket: packets, server, client.
 *
 * Wire format and semantics are pw_rpc's (shared/WIRE.md): a pw_rpc client can call a sprig
 * server and the reverse. One socket message carries one packet.
 *
 * Contract
 *   Memory: no malloc. Servers, clients, calls and connections live in caller storage given at
 *     init; receive/transmit buffers come from the socket's pool (sprig_sock_alloc_tx) and from
 *     one receive buffer per server/client given in the config.
 *   Threading: everything runs on the sockets' loop thread; handlers and client callbacks are
 *     called from that loop. A handler may finish its call at once (synchronous) or keep the
 *     call handle and finish it later from any callback on the same loop (asynchronous).
 *   Lifetime: a server call handle is valid from on_request until the call ends: the handler
 *     finishes it, or on_abort(call, status) has returned. A client call is caller storage and
 *     may be reused once its final callback (on_completed or on_error) has run, or after
 *     sprig_rpc_client_cancel() returned.
 *   Errors: sprig_status everywhere; pw_status values travel on the wire unchanged.
 *   Sizes: a payload must fit the socket's max_message_size minus SPRIG_RPC_PACKET_OVERHEAD.
 *     A larger one is refused at the sender with RESOURCE_EXHAUSTED; a server call that tries
 *     to send one is ended with RESOURCE_EXHAUSTED and the client is told — never a silent drop.
 */
#ifndef SPRIG_RPC_H
#define SPRIG_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pb.h>

#include "sprig/buf.h"
#include "sprig/loop.h"
#include "sprig/sock.h"
#include "sprig/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- ids and packets ---------------------------------------------------------------------- */

/* pw_rpc's 65599 hash (WIRE.md): service id = hash("package.Service"), method id =
 * hash("Method"). */
uint32_t sprig_rpc_hash(const char *s, size_t len);

typedef enum sprig_rpc_packet_type {
    SPRIG_RPC_PACKET_REQUEST = 0,
    SPRIG_RPC_PACKET_RESPONSE = 1,
    SPRIG_RPC_PACKET_CLIENT_STREAM = 2,
    SPRIG_RPC_PACKET_CLIENT_ERROR = 4,
    SPRIG_RPC_PACKET_SERVER_ERROR = 5,
    SPRIG_RPC_PACKET_SERVER_STREAM = 7,
    SPRIG_RPC_PACKET_CLIENT_REQUEST_COMPLETION = 8,
} sprig_rpc_packet_type;

/* Worst-case bytes of packet around a payload: a payload of N bytes fits in N + 32. */
#define SPRIG_RPC_PACKET_OVERHEAD 32
/* Bytes reserved in front of a payload for its tag and length (zero-copy encoding). */
#define SPRIG_RPC_PAYLOAD_HEADROOM 6
/* Bytes needed after a payload for the other fields. */
#define SPRIG_RPC_PACKET_TAILROOM (SPRIG_RPC_PACKET_OVERHEAD - SPRIG_RPC_PAYLOAD_HEADROOM)
/* call_id of a call the server opened without a request. */
#define SPRIG_RPC_CALL_ID_OPEN 0xFFFFFFFFu

typedef struct sprig_rpc_packet {
    sprig_rpc_packet_type type;
    uint32_t channel_id;
    uint32_t service_id;
    uint32_t method_id;
    uint32_t call_id;
    sprig_status status;
    const uint8_t *payload; /* decode: points into the decoded bytes; NULL when absent */
    size_t payload_len;
} sprig_rpc_packet;

/* Decode untrusted bytes. DATA_LOSS if they are not a valid RpcPacket (fields in any order,
 * missing type = REQUEST, unknown fields skipped). Ids of 0 and type parity are NOT checked
 * here (the server and client do, because the answer differs). */
sprig_status sprig_rpc_packet_decode(const uint8_t *data, size_t len, sprig_rpc_packet *out);
/* Encode with the payload first (WIRE.md's worked example, byte for byte). RESOURCE_EXHAUSTED
 * if cap is too small (payload_len + SPRIG_RPC_PACKET_OVERHEAD always suffices). */
sprig_status sprig_rpc_packet_encode(const sprig_rpc_packet *p, uint8_t *out, size_t cap,
                                     size_t *out_len);
/* Zero copy: buf's data is the payload, encoded in place by the caller; prepend its tag and
 * length into the headroom and append the other fields of p (p->payload is ignored).
 * RESOURCE_EXHAUSTED without SPRIG_RPC_PAYLOAD_HEADROOM headroom or
 * SPRIG_RPC_PACKET_TAILROOM tailroom (buf unchanged). */
sprig_status sprig_rpc_packet_wrap(sprig_buf *buf, const sprig_rpc_packet *p);

typedef enum sprig_rpc_kind {
    SPRIG_RPC_UNARY = 0,
    SPRIG_RPC_SERVER_STREAMING = 1,
    SPRIG_RPC_CLIENT_STREAMING = 2,
    SPRIG_RPC_BIDI_STREAMING = 3,
} sprig_rpc_kind;

/* ---- server ------------------------------------------------------------------------------- */

typedef struct sprig_rpc_server sprig_rpc_server;
typedef struct sprig_rpc_call sprig_rpc_call;
typedef struct sprig_rpc_conn sprig_rpc_conn;

typedef struct sprig_rpc_method {
    uint32_t method_id;
    sprig_rpc_kind kind;
    /* The call's REQUEST arrived (unary/server streaming: the request payload; client/bidi
     * streaming: usually empty). Required. */
    void (*on_request)(sprig_rpc_call *call, const uint8_t *payload, size_t len);
    /* A CLIENT_STREAM message (client/bidi streaming only). */
    void (*on_client_stream)(sprig_rpc_call *call, const uint8_t *payload, size_t len);
    /* CLIENT_REQUEST_COMPLETION: the client will send no more (client/bidi streaming). */
    void (*on_client_complete)(sprig_rpc_call *call);
    /* The call ended without the handler finishing it: CANCELLED (client cancelled, or a new
     * REQUEST replaced it), ABORTED (connection lost). The handle is invalid after return. */
    void (*on_abort)(sprig_rpc_call *call, sprig_status status);
    /* Optional: a send on this call returned UNAVAILABLE earlier and may be retried now. */
    void (*on_ready)(sprig_rpc_call *call);
    /* nanopb descriptors of the request and response messages (for typed glue; may be NULL) */
    const pb_msgdesc_t *request_fields;
    const pb_msgdesc_t *response_fields;
} sprig_rpc_method;

typedef struct sprig_rpc_service {
    struct sprig_rpc_service *next; /* server's registry link */
    uint32_t service_id;
    const char *name; /* "package.Service", for logs */
    const sprig_rpc_method *methods;
    size_t method_count;
    void *ctx; /* the implementation's own state */
} sprig_rpc_service;

struct sprig_rpc_call {
    /* private */
    sprig_rpc_server *server;
    sprig_rpc_conn *conn;
    const sprig_rpc_service *service;
    const sprig_rpc_method *method;
    uint32_t channel_id;
    uint32_t call_id;
    uint8_t state;
    uint8_t flags;
    /* public: free for the handler */
    void *user;
};

struct sprig_rpc_conn {
    /* private */
    sprig_rpc_server *server;
    sprig_sock *sock;
    sprig_task task; /* first read pass after serve (data that came before we listened) */
    uint8_t in_use;
    uint8_t flags;
    /* public: free for the application */
    void *user;
};

typedef struct sprig_rpc_server_cfg {
    sprig_loop *loop;
    sprig_rpc_call *calls; /* the call table: bounds concurrent calls on all connections */
    size_t max_calls;
    sprig_rpc_conn *conns; /* connection storage */
    size_t max_conns;
    uint8_t *rx_buf; /* receive buffer, >= the sockets' max_message_size */
    size_t rx_cap;
    uint32_t channel_id; /* 0: serve any channel id; else packets for others are dropped */
    /* Optional: a connection came (up = true) or went. */
    void (*on_conn)(sprig_rpc_server *server, sprig_rpc_conn *conn, bool up, void *ctx);
    void *ctx;
} sprig_rpc_server_cfg;

typedef struct sprig_rpc_stats {
    uint32_t packets_in;
    uint32_t packets_out;
    uint32_t dropped;       /* undecodable, id 0, wrong parity, unknown channel */
    uint32_t calls_refused; /* call table full */
} sprig_rpc_stats;

struct sprig_rpc_server {
    sprig_rpc_server_cfg cfg;
    sprig_rpc_service *services;
    sprig_sock *listener;
    sprig_rpc_stats stats;
    bool ready;
};

/* INVALID_ARGUMENT for missing storage. */
sprig_status sprig_rpc_server_init(sprig_rpc_server *s, const sprig_rpc_server_cfg *cfg);
/* Aborts every call (on_abort(ABORTED)), closes every connection and the listener.
 * Idempotent; safe after a failed init. */
void sprig_rpc_server_deinit(sprig_rpc_server *s);
/* ALREADY_EXISTS if a service with that id is registered. The service must stay put. */
sprig_status sprig_rpc_server_register(sprig_rpc_server *s, sprig_rpc_service *svc);
/* Aborts the service's open calls with CANCELLED (their clients get SERVER_ERROR CANCELLED).
 * NOT_FOUND if not registered. */
sprig_status sprig_rpc_server_unregister(sprig_rpc_server *s, sprig_rpc_service *svc);
/* Listen on a URL (SEQPACKET) and serve every connection accepted. */
sprig_status sprig_rpc_server_listen(sprig_rpc_server *s, const char *url);
/* Serve an already connected SEQPACKET socket (a serial link, one end of a mem pair). The
 * server owns it from now on. RESOURCE_EXHAUSTED if no connection slot is free (the socket
 * stays the caller's). on_conn(up = true) is called before this returns. */
sprig_status sprig_rpc_server_serve(sprig_rpc_server *s, sprig_sock *sock, sprig_rpc_conn **out);
const sprig_rpc_stats *sprig_rpc_server_stats(const sprig_rpc_server *s);
/* Calls currently open (0 after a clean teardown). */
size_t sprig_rpc_server_open_calls(const sprig_rpc_server *s);

/* Open a call without a request (call_id 0xFFFFFFFF), to push SERVER_STREAM/RESPONSE packets
 * the client did not ask for. channel_id 0 means the server's configured one (or 1). */
sprig_status sprig_rpc_server_open(sprig_rpc_server *s, sprig_rpc_conn *conn, uint32_t channel_id,
                                   uint32_t service_id, uint32_t method_id, sprig_rpc_call **out);

/* Server-side call operations. All return UNAVAILABLE when the socket is full (retry after
 * on_ready), FAILED_PRECONDITION if the call already ended, RESOURCE_EXHAUSTED if the payload
 * exceeds sprig_rpc_call_max_payload() (the call is then ended with RESOURCE_EXHAUSTED and the
 * client told with SERVER_ERROR RESOURCE_EXHAUSTED; no on_abort follows), ABORTED if the
 * connection is going away (the call stays open; on_abort(ABORTED) follows), INVALID_ARGUMENT
 * for sprig_rpc_call_send() on a method without a server stream or a status >= 17. The _pb
 * variants return INTERNAL if nanopb fails for another reason than size (nothing sent, the
 * call stays open). */
sprig_status sprig_rpc_call_send(sprig_rpc_call *call, const uint8_t *payload, size_t len);
/* RESPONSE with payload (may be empty) and status; ends the call. */
sprig_status sprig_rpc_call_finish(sprig_rpc_call *call, const uint8_t *payload, size_t len,
                                   sprig_status status);
/* nanopb conveniences: encode straight into the outgoing buffer (no copy). */
sprig_status sprig_rpc_call_send_pb(sprig_rpc_call *call, const pb_msgdesc_t *fields,
                                    const void *msg);
sprig_status sprig_rpc_call_finish_pb(sprig_rpc_call *call, const pb_msgdesc_t *fields,
                                      const void *msg, sprig_status status);
size_t sprig_rpc_call_max_payload(const sprig_rpc_call *call);
static inline void *sprig_rpc_call_service_ctx(const sprig_rpc_call *call)
{
    return call->service->ctx;
}

/* ---- client ------------------------------------------------------------------------------- */

typedef struct sprig_rpc_client sprig_rpc_client;
typedef struct sprig_rpc_client_call sprig_rpc_client_call;

typedef struct sprig_rpc_client_cbs {
    /* A SERVER_STREAM message. */
    void (*on_next)(sprig_rpc_client_call *call, const uint8_t *payload, size_t len, void *user);
    /* The RESPONSE: the call is over; status is the server's. */
    void (*on_completed)(sprig_rpc_client_call *call, sprig_status status, const uint8_t *payload,
                         size_t len, void *user);
    /* The call failed without a RESPONSE: SERVER_ERROR's status, DEADLINE_EXCEEDED (the
     * deadline passed; CLIENT_ERROR CANCELLED was sent), ABORTED (connection lost). */
    void (*on_error)(sprig_rpc_client_call *call, sprig_status status, void *user);
    /* Optional: a send on this call (start excepted) returned UNAVAILABLE earlier and may be
     * retried now (the socket's WRITABLE). Once per UNAVAILABLE; the call is still open. */
    void (*on_ready)(sprig_rpc_client_call *call, void *user);
} sprig_rpc_client_cbs;

struct sprig_rpc_client_call {
    /* private */
    struct sprig_rpc_client_call *next;
    sprig_rpc_client *client;
    const sprig_rpc_client_cbs *cbs;
    void *user;
    uint32_t service_id;
    uint32_t method_id;
    uint32_t call_id;
    uint8_t kind;
    uint8_t state;
    uint8_t flags;
    sprig_timer deadline;
    /* blocking helpers' inbox */
    uint8_t *inbox;
    size_t inbox_cap;
    size_t inbox_len;
    uint8_t inbox_full;
    sprig_status final_status;
};

typedef struct sprig_rpc_client_cfg {
    sprig_loop *loop;
    sprig_sock *sock;    /* a connected SEQPACKET socket; the client owns it from init */
    uint32_t channel_id; /* 0: 1 */
    uint8_t *rx_buf;     /* >= the socket's max_message_size */
    size_t rx_cap;
} sprig_rpc_client_cfg;

struct sprig_rpc_client {
    sprig_rpc_client_cfg cfg;
    sprig_rpc_client_call *calls; /* open calls */
    uint32_t next_call_id;
    sprig_status conn_status; /* OK while the connection lives */
    sprig_rpc_stats stats;
    bool ready;
    /* private: reading pauses while a blocking helper's inbox is full (rx_hold) and resumes
     * from rx_task; flags remember an orderly CLOSED seen meanwhile */
    sprig_rpc_client_call *rx_hold;
    sprig_task rx_task;
    uint8_t flags;
};

sprig_status sprig_rpc_client_init(sprig_rpc_client *c, const sprig_rpc_client_cfg *cfg);
/* Ends open calls with on_error(CANCELLED), closes the socket. Idempotent. */
void sprig_rpc_client_deinit(sprig_rpc_client *c);
/* OK while connected; the status the connection ended with otherwise. */
sprig_status sprig_rpc_client_status(const sprig_rpc_client *c);
/* Largest payload a call may send (the socket's max_message_size - SPRIG_RPC_PACKET_OVERHEAD);
 * 0 once the connection is gone. */
size_t sprig_rpc_client_max_payload(const sprig_rpc_client *c);
/* packets_in/out; dropped: undecodable, id 0, wrong parity, other channel, or for no open call. */
const sprig_rpc_stats *sprig_rpc_client_stats(const sprig_rpc_client *c);

/* Start a call (sends REQUEST with the payload; streaming-request kinds usually send none).
 * timeout SPRIG_TIME_NEVER: no deadline. UNAVAILABLE: the socket is full, nothing was sent,
 * try again; ABORTED: connection gone; RESOURCE_EXHAUSTED: payload too large. */
sprig_status sprig_rpc_client_start(sprig_rpc_client *c, sprig_rpc_client_call *call,
                                    uint32_t service_id, uint32_t method_id, sprig_rpc_kind kind,
                                    const uint8_t *payload, size_t len,
                                    const sprig_rpc_client_cbs *cbs, void *user,
                                    sprig_time timeout);
sprig_status sprig_rpc_client_start_pb(sprig_rpc_client *c, sprig_rpc_client_call *call,
                                       uint32_t service_id, uint32_t method_id, sprig_rpc_kind kind,
                                       const pb_msgdesc_t *fields, const void *msg,
                                       const sprig_rpc_client_cbs *cbs, void *user,
                                       sprig_time timeout);
/* Listen for a call the server opens without a request (pw_rpc's "open" call): nothing is
 * sent; the call has id 0xFFFFFFFF and adopts the id of the first packet that matches it.
 * Same statuses as sprig_rpc_client_start, without UNAVAILABLE/RESOURCE_EXHAUSTED. */
sprig_status sprig_rpc_client_open(sprig_rpc_client *c, sprig_rpc_client_call *call,
                                   uint32_t service_id, uint32_t method_id, sprig_rpc_kind kind,
                                   const sprig_rpc_client_cbs *cbs, void *user, sprig_time timeout);
/* CLIENT_STREAM on a client/bidi streaming call. UNAVAILABLE: the socket is full, nothing was
 * sent; the call's on_ready follows when it has room. */
sprig_status sprig_rpc_client_send(sprig_rpc_client_call *call, const uint8_t *payload, size_t len);
sprig_status sprig_rpc_client_send_pb(sprig_rpc_client_call *call, const pb_msgdesc_t *fields,
                                      const void *msg);
/* CLIENT_REQUEST_COMPLETION. */
sprig_status sprig_rpc_client_close_send(sprig_rpc_client_call *call);
/* Sends CLIENT_ERROR CANCELLED and ends the call now; no callback follows. Safe on an ended
 * call (does nothing). */
void sprig_rpc_client_cancel(sprig_rpc_client_call *call);
bool sprig_rpc_client_call_active(const sprig_rpc_client_call *call);

/* Blocking helpers (run the loop; FAILED_PRECONDITION from a callback). The return value is the
 * call's final status: the server's, DEADLINE_EXCEEDED, ABORTED... */
sprig_status sprig_rpc_client_unary(sprig_rpc_client *c, uint32_t service_id, uint32_t method_id,
                                    const uint8_t *req, size_t req_len, uint8_t *resp,
                                    size_t resp_cap, size_t *resp_len, sprig_time timeout);
/* Streams: start with sprig_rpc_client_start_wait (callbacks NULL), then take messages one by
 * one: OK with a message, OUT_OF_RANGE when the call completed (*status = its status, and the
 * RESPONSE payload, if any, in buf), DEADLINE_EXCEEDED on timeout (the call stays open).
 * The inbox holds one message; while it is full the client stops reading its socket (flow
 * control pushes back on the server; other calls of this client wait too). OUT_OF_RANGE also
 * reports a failed call (*status DEADLINE_EXCEEDED, ABORTED, the server's error...);
 * RESOURCE_EXHAUSTED if buf is too small (*len = the size needed; the message stays). */
sprig_status sprig_rpc_client_start_wait(sprig_rpc_client *c, sprig_rpc_client_call *call,
                                         uint32_t service_id, uint32_t method_id,
                                         sprig_rpc_kind kind, const uint8_t *payload, size_t len,
                                         uint8_t *inbox, size_t inbox_cap, sprig_time timeout);
sprig_status sprig_rpc_client_next_wait(sprig_rpc_client_call *call, uint8_t *buf, size_t cap,
                                        size_t *len, sprig_status *status, sprig_time timeout);

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_RPC_H */
