/*
 * sprig/ns_node.h — the netstack's network layer: nodes, links, static routes, forwarding,
 * strict-priority queues and ICMP-like echo and errors (docs/netstack.md §2-3).
 *
 * Contract
 *   Ownership: sprig_ns_node, sprig_ns_link, the route table and sprig_ns_proto live in caller
 *     storage and must stay put while in use. Packets are sprig_bufs; every function that takes
 *     a packet takes ownership of it, whatever it returns (it is queued, delivered or freed).
 *   Instances: any number of nodes per process; no globals.
 *   Threading: none. A node, its links and its protocols belong to one sprig_loop and are used
 *     from its thread only.
 *   Blocking: nothing here blocks. Packets to the node itself are delivered from a deferred
 *     loop task, never re-entrantly from sprig_ns_node_send().
 *   Errors: see each function; the wire-level statuses are tabled in docs/netstack.md §8.
 *   Links: a concrete link (sprig/ns_simlink.h, sprig/ns_serial.h, ...) embeds a sprig_ns_link.
 *     The node queues outgoing packets on the link per traffic class and calls ops->kick; the
 *     link pulls them with sprig_ns_link_next() (strict priority: class 0 first) whenever it can
 *     transmit, and hands received packets up with sprig_ns_link_input(). Every link is
 *     point-to-point: one neighbour, so routes need no next-hop address.
 */
#ifndef SPRIG_NS_NODE_H
#define SPRIG_NS_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sprig/buf.h"
#include "sprig/loop.h"
#include "sprig/ns_wire.h"
#include "sprig/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sprig_ns_node sprig_ns_node;
typedef struct sprig_ns_link sprig_ns_link;

/* ---- links -------------------------------------------------------------------------------- */

typedef struct sprig_ns_link_ops {
    /* Packets are queued: pull them with sprig_ns_link_next() while the link can transmit.
     * Called from sprig_ns_node_send() and from packet input (forwarding); must not call back
     * into the node synchronously with received packets (defer them). */
    void (*kick)(sprig_ns_link *link);
} sprig_ns_link_ops;

typedef struct sprig_ns_link_stats {
    uint32_t tx_packets;  /* pulled by the link driver */
    uint32_t rx_packets;  /* handed up */
    uint32_t queue_drops; /* a class queue was full */
} sprig_ns_link_stats;

struct sprig_ns_link {
    const sprig_ns_link_ops *ops;
    sprig_ns_node *node; /* NULL while not attached */
    sprig_ns_link *next; /* the node's list */
    uint16_t mtu;        /* largest packet, network header included */
    sprig_buf_queue q[SPRIG_NS_TC_COUNT];
    sprig_ns_link_stats stats;
};

/* For link drivers: initialise the common part. mtu 8..65535 (INVALID_ARGUMENT otherwise). */
sprig_status sprig_ns_link_init(sprig_ns_link *link, const sprig_ns_link_ops *ops, uint16_t mtu);
/* For link drivers: drop every queued packet and forget the node. Idempotent. */
void sprig_ns_link_deinit(sprig_ns_link *link);
/* For link drivers: the next packet to transmit (class 0 first), or NULL. The driver owns it:
 * its data is the whole packet, network header first. */
sprig_buf *sprig_ns_link_next(sprig_ns_link *link);
/* Packets waiting in all classes. */
size_t sprig_ns_link_queued(const sprig_ns_link *link);
/* For link drivers: a packet was received (data = network header onwards; ownership passes).
 * Freed if the link is not attached to a node. */
void sprig_ns_link_input(sprig_ns_link *link, sprig_buf *pkt);

/* ---- protocols above the network layer ------------------------------------------------------ */

typedef struct sprig_ns_proto sprig_ns_proto;
struct sprig_ns_proto {
    sprig_ns_proto *next;
    uint8_t proto; /* SPRIG_NS_PROTO_DGRAM, ... (not ICMP: the node handles it) */
    /* A packet for this node (or broadcast). buf's data starts at the transport header (the
     * network header has been pulled; *ip describes it). Ownership passes. */
    void (*input)(sprig_ns_proto *p, const sprig_ns_header *ip, sprig_buf *buf);
    /* An ICMP error about a packet this node sent with this protocol. *orig is the quoted
     * network header (its length is the original one), quote[0..quote_len) the quoted transport
     * bytes (at least 4 — the ports — when the sender quoted per spec, but may be fewer),
     * status per sprig_ns_icmp_status(), *msg the message (msg->a is the MTU for too big). */
    void (*error)(sprig_ns_proto *p, const sprig_ns_header *orig, const uint8_t *quote,
                  size_t quote_len, const sprig_ns_icmp *msg, sprig_status status);
    void *arg;
};

/* ---- node ----------------------------------------------------------------------------------- */

typedef struct sprig_ns_route {
    uint16_t dst;
    uint8_t prefix_len; /* 0..16; 0 = default route */
    sprig_ns_link *link;
} sprig_ns_route;

/* ICMP messages for the user: echo replies, and errors about echo requests this node sent.
 * body/len: the echo data, or the quoted packet of an error. */
typedef void (*sprig_ns_icmp_fn)(sprig_ns_node *node, const sprig_ns_header *ip,
                                 const sprig_ns_icmp *msg, const uint8_t *body, size_t len,
                                 void *arg);

typedef struct sprig_ns_node_cfg {
    uint16_t id;            /* 1..0xFFFE */
    bool forwarding;        /* router: forward packets not addressed to this node */
    sprig_loop *loop;       /* required (loopback delivery) */
    sprig_buf_pool *pool;   /* required: ICMP replies and errors; buffers >= 8 + 8 + quote bytes */
    sprig_ns_route *routes; /* route table storage (may be NULL with route_cap 0) */
    size_t route_cap;
    sprig_ns_icmp_fn on_icmp; /* optional */
    void *icmp_arg;
} sprig_ns_node_cfg;

typedef struct sprig_ns_node_stats {
    uint32_t rx;        /* packets handed up by links */
    uint32_t sent;      /* packets originated here and queued */
    uint32_t delivered; /* to a local protocol, ICMP included */
    uint32_t forwarded;
    uint32_t bad_header; /* failed sprig_ns_header_check */
    uint32_t bad_icmp;   /* short or bad checksum */
    uint32_t not_for_me; /* host received a packet for another node */
    uint32_t no_route;
    uint32_t hop_expired;
    uint32_t too_big;
    uint32_t no_proto;
    uint32_t queue_drops; /* forwarded packets dropped on a full class queue */
    uint32_t icmp_sent;   /* replies and errors */
    uint32_t no_buffer;   /* pool empty when an ICMP message was due */
} sprig_ns_node_stats;

struct sprig_ns_node {
    bool initialised; /* first: a byte at a small offset is cheaper to load on Cortex-M0+ */
    sprig_ns_node_cfg cfg;
    size_t route_count;
    sprig_ns_link *links;
    sprig_ns_proto *protos;
    sprig_buf_queue loopback;
    sprig_task loopback_task;
    sprig_ns_node_stats stats;
};

/* INVALID_ARGUMENT for a bad id, no loop or no pool. The config is copied. */
sprig_status sprig_ns_node_init(sprig_ns_node *node, const sprig_ns_node_cfg *cfg);
/* Detaches every link (their queues are freed), forgets protocols, frees loopback packets.
 * Idempotent; safe on a zeroed node or after a failed init. */
void sprig_ns_node_deinit(sprig_ns_node *node);

static inline uint16_t sprig_ns_node_id(const sprig_ns_node *node)
{
    return node->cfg.id;
}

/* Attach an initialised link. FAILED_PRECONDITION if it is attached elsewhere. */
sprig_status sprig_ns_node_attach(sprig_ns_node *node, sprig_ns_link *link);
/* Detach (queued packets are freed; routes through it are removed). Safe if not attached. */
void sprig_ns_node_detach(sprig_ns_node *node, sprig_ns_link *link);

/* Add or replace the route for dst/prefix_len. INVALID_ARGUMENT for prefix_len > 16 or a link
 * not attached to this node; RESOURCE_EXHAUSTED when the table is full. */
sprig_status sprig_ns_node_add_route(sprig_ns_node *node, uint16_t dst, uint8_t prefix_len,
                                     sprig_ns_link *link);
/* NOT_FOUND if there is no such route. */
sprig_status sprig_ns_node_remove_route(sprig_ns_node *node, uint16_t dst, uint8_t prefix_len);
/* The link a packet to dst would leave by (longest prefix), or NULL. */
sprig_ns_link *sprig_ns_node_lookup(const sprig_ns_node *node, uint16_t dst);
/* MTU towards dst (of the first link; the path may be smaller), 0 if no route; 65535 for the
 * node itself (loopback: only the buffer size limits it). */
uint16_t sprig_ns_node_mtu(const sprig_ns_node *node, uint16_t dst);

/* Register / unregister a transport. ALREADY_EXISTS if the protocol number is taken;
 * INVALID_ARGUMENT for ICMP. */
sprig_status sprig_ns_node_add_proto(sprig_ns_node *node, sprig_ns_proto *p);
void sprig_ns_node_remove_proto(sprig_ns_node *node, sprig_ns_proto *p);

/* Send a transport segment: buf's data is the segment (transport header + payload) with at
 * least SPRIG_NS_NET_HEADROOM bytes of headroom. Pushes the network header and routes it.
 * Takes ownership of buf in every case. Returns OK (queued, or for the node itself deferred),
 * INVALID_ARGUMENT (dst 0, class > 3, proto ICMP, node not initialised),
 * RESOURCE_EXHAUSTED (no headroom, or longer than the outgoing link's MTU), NOT_FOUND (no
 * route), UNAVAILABLE (the class queue of that link is full). */
sprig_status sprig_ns_node_send(sprig_ns_node *node, sprig_buf *buf, uint16_t dst, uint8_t proto,
                                uint8_t tc);

/* What sprig_ns_node_send() would return for a packet of `len` bytes (network header
 * included) to dst in class tc, without sending anything: OK, NOT_FOUND, RESOURCE_EXHAUSTED,
 * UNAVAILABLE or INVALID_ARGUMENT. Single-threaded, so an OK holds for an immediate send — which
 * lets a zero-copy sender keep a buffer it may not lose when the send would fail. */
sprig_status sprig_ns_node_check_send(const sprig_ns_node *node, uint16_t dst, size_t len,
                                      uint8_t tc);

/* For transports: refuse a packet handed to sprig_ns_proto.input (its network header is still
 * in the buffer's headroom) with an ICMP error to its sender — e.g. unreachable/port when no
 * socket has the port. Not sent about broadcasts or ICMP errors. Takes ownership of seg. */
void sprig_ns_node_reject(sprig_ns_node *node, sprig_buf *seg, uint8_t type, uint8_t code,
                          uint16_t param);

/* Send an echo request with `len` bytes of data; the reply reaches cfg.on_icmp. Allocates from
 * cfg.pool (RESOURCE_EXHAUSTED if empty or too small); otherwise as sprig_ns_node_send(). */
sprig_status sprig_ns_node_ping(sprig_ns_node *node, uint16_t dst, uint16_t ident, uint16_t seq,
                                const uint8_t *data, size_t len, uint8_t tc);

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_NS_NODE_H */
