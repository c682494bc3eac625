/*
 * rpc/src/internal.h — private helpers shared by packet.c, server.c and client.c. Not installed.
 *
 * Stable interface for client.c (owner: the server/packet engineer). Everything here follows
 * WIRE.md; names are sprig__rpc_* (internal, non-static) or static inline.
 *
 * Sending: sprig__rpc_send() / sprig__rpc_send_pb() take a transmit buffer from the socket
 *   (sprig_sock_alloc_tx), put the payload after SPRIG_RPC_PAYLOAD_HEADROOM bytes of headroom
 *   (a copy for _send, nanopb encoding straight into the buffer for _send_pb), wrap it with
 *   sprig_rpc_packet_wrap() and hand it to sprig_sock_send_buf(). Statuses:
 *     OK                   sent (the socket owns the buffer)
 *     UNAVAILABLE          the socket is full or its tx pool is empty; nothing was sent and the
 *                          socket's WRITABLE event will fire when a retry may succeed
 *     RESOURCE_EXHAUSTED   the payload is larger than sprig__rpc_max_payload(sock) (for _pb: the
 *                          encoded message is), or the socket's buffers are too small for it;
 *                          nothing was sent
 *     INTERNAL             (_pb only) nanopb failed for another reason (a callback field, ...)
 *     INVALID_ARGUMENT     p->type or p->status >= 128 (never produced by sprig itself)
 *     anything else        the socket's status (ABORTED, FAILED_PRECONDITION, ...)
 *
 * Receiving: decode with sprig_rpc_packet_decode() (DATA_LOSS: drop, count), then
 *   sprig__rpc_packet_acceptable() for the ids-0 / parity rule of WIRE.md.
 */
#ifndef SPRIG_RPC_INTERNAL_H
#define SPRIG_RPC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sprig/rpc.h"

/* Legacy peers use call_id 0; pw_rpc's client wraps its ids at 2^14 to keep the varint at two
 * bytes. sprig's client hands out 1 .. SPRIG__RPC_CALL_ID_WRAP - 1, then 1 again. */
#define SPRIG__RPC_CALL_ID_LEGACY 0u
#define SPRIG__RPC_CALL_ID_WRAP   (1u << 14)

/* True for the two ids that match any call id (WIRE.md, "Call ids"): 0 (legacy) and
 * 0xFFFFFFFF (server-opened). */
static inline bool sprig__rpc_call_id_is_wild(uint32_t id)
{
    return id == SPRIG__RPC_CALL_ID_LEGACY || id == SPRIG_RPC_CALL_ID_OPEN;
}

/* Does an incoming packet's call_id match a local call's (same channel/service/method already
 * checked)? Equal ids match, and a wild id on either side matches anything. A local call whose
 * id is wild then adopts the incoming id if that one is not wild (the caller does that). */
static inline bool sprig__rpc_call_id_matches(uint32_t local, uint32_t incoming)
{
    return local == incoming || sprig__rpc_call_id_is_wild(local) ||
           sprig__rpc_call_id_is_wild(incoming);
}

/* The next client call id after *counter (1 .. SPRIG__RPC_CALL_ID_WRAP - 1, never 0), stored
 * back into *counter. A zero-initialised counter gives 1 first. */
static inline uint32_t sprig__rpc_next_call_id(uint32_t *counter)
{
    uint32_t id = *counter + 1u;
    if (id == 0u || id >= SPRIG__RPC_CALL_ID_WRAP) {
        id = 1u;
    }
    *counter = id;
    return id;
}

/* Packet types that travel client -> server have even values, server -> client odd. */
static inline bool sprig__rpc_type_is_server_bound(uint32_t type)
{
    return (type & 1u) == 0u;
}

/* WIRE.md's drop rule for a decoded packet arriving at a server (to_server = true) or a client:
 * false when the channel, service or method id is 0 or the type's parity is wrong for the
 * receiver. Unknown types of the right parity pass; the receiver ignores them. */
static inline bool sprig__rpc_packet_acceptable(const sprig_rpc_packet *p, bool to_server)
{
    if (p->channel_id == 0u || p->service_id == 0u || p->method_id == 0u) {
        return false;
    }
    return sprig__rpc_type_is_server_bound((uint32_t)p->type) == to_server;
}

/* Largest payload a packet on this socket may carry: max_message_size - OVERHEAD, or 0. */
size_t sprig__rpc_max_payload(const sprig_sock *sock);

/* Encode p (payload copied from p->payload / p->payload_len) and send it as one message.
 * Statuses: see the top of this file. */
sprig_status sprig__rpc_send(sprig_sock *sock, const sprig_rpc_packet *p);

/* Like sprig__rpc_send(), but the payload is `msg` encoded by nanopb with `fields` directly
 * into the transmit buffer (p->payload is ignored). fields NULL sends an empty payload. */
sprig_status sprig__rpc_send_pb(sprig_sock *sock, const sprig_rpc_packet *p,
                                const pb_msgdesc_t *fields, const void *msg);

#endif /* SPRIG_RPC_INTERNAL_H */
