/*
 * sprig/sock.h — the socket API: SEQPACKET, STREAM and DGRAM over interchangeable backends.
 *
 * Contract
 *   Types: SEQPACKET (reliable, ordered, message boundaries kept), STREAM (reliable, ordered
 *     bytes), DGRAM (unreliable messages, boundaries kept). Every SEQPACKET/DGRAM socket reports
 *     sprig_sock_max_message_size(); a longer message is refused at the sender with
 *     RESOURCE_EXHAUSTED, never dropped downstream.
 *   Ownership: backends own socket storage (a pool sized at backend init, or the heap in the OS
 *     backend). A handle is valid from dial/listen/accept until sprig_sock_close(); after close
 *     no callback fires and the handle must not be used. Buffers from sprig_sock_alloc_tx() are
 *     the caller's until sprig_sock_send_buf() returns OK; on any other status the caller still
 *     owns the buffer (retry it or sprig_buf_free() it).
 *   Threading: a socket belongs to the loop it was made on; call it from that loop's thread.
 *   Blocking: every call is non-blocking except the *_wait() helpers, which run the loop until
 *     done or until their timeout, and return FAILED_PRECONDITION when called from a callback.
 *   Events (one callback per socket, sprig_sock_set_callback):
 *     CONNECTED  a dial completed (status OK). Failure is reported as CLOSED instead.
 *     READABLE   new data, end of stream or an error is waiting: call sprig_sock_recv() until
 *                it returns UNAVAILABLE or a terminal status. Edge-triggered: if you stop early,
 *                you are told again only when more arrives. On a listener: call accept.
 *     WRITABLE   a send that returned UNAVAILABLE may be retried. Fires once per UNAVAILABLE.
 *     CLOSED     the socket is dead (both directions finished, or an error); status says why:
 *                OK (orderly, both ways), ABORTED (reset, peer gone), UNAVAILABLE (connection
 *                refused), NOT_FOUND (no such path), DEADLINE_EXCEEDED, DATA_LOSS,
 *                RESOURCE_EXHAUSTED (framing: peer sent an oversized message). Fires once,
 *                last. The socket still needs sprig_sock_close().
 *     Events are delivered from the loop, never from inside a sprig_sock_* call.
 *   Statuses of send/recv: OK; UNAVAILABLE (would block / still connecting); RESOURCE_EXHAUSTED
 *     (message larger than max, or recv buffer smaller than the next message — which then stays
 *     queued and *out_len tells its size); OUT_OF_RANGE (recv: end of stream); ABORTED (peer
 *     reset/gone); FAILED_PRECONDITION (listener, shut down for sending, closed);
 *     UNIMPLEMENTED (operation not offered by this socket type/backend); INVALID_ARGUMENT.
 */
#ifndef SPRIG_SOCK_H
#define SPRIG_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sprig/buf.h"
#include "sprig/clock.h"
#include "sprig/loop.h"
#include "sprig/status.h"
#include "sprig/url.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sprig_sock_type {
    SPRIG_SOCK_DEFAULT = 0, /* dial/listen only: the URL's natural type (unix/tcp: SEQPACKET,
                               udp: DGRAM, ...) */
    SPRIG_SOCK_SEQPACKET = 1,
    SPRIG_SOCK_STREAM = 2,
    SPRIG_SOCK_DGRAM = 3,
} sprig_sock_type;

typedef enum sprig_sock_event {
    SPRIG_SOCK_EV_CONNECTED = 1,
    SPRIG_SOCK_EV_READABLE = 2,
    SPRIG_SOCK_EV_WRITABLE = 3,
    SPRIG_SOCK_EV_CLOSED = 4,
} sprig_sock_event;

typedef enum sprig_sock_state {
    SPRIG_SOCK_STATE_CONNECTING = 0,
    SPRIG_SOCK_STATE_OPEN = 1,
    SPRIG_SOCK_STATE_LISTENING = 2,
    SPRIG_SOCK_STATE_CLOSED = 3, /* dead: CLOSED event delivered or due */
} sprig_sock_state;

/* flags */
#define SPRIG_SOCK_F_WANT_WRITABLE 0x01u /* a send returned UNAVAILABLE */
#define SPRIG_SOCK_F_SHUT_WR       0x02u /* we shut down sending */
#define SPRIG_SOCK_F_RD_DONE       0x04u /* recv reached end of stream */
#define SPRIG_SOCK_F_CLOSED_SENT   0x08u /* CLOSED event delivered */

typedef struct sprig_sock sprig_sock;
typedef void (*sprig_sock_cb)(sprig_sock *sock, sprig_sock_event event, sprig_status status,
                              void *user);

typedef struct sprig_iov {
    const void *base;
    size_t len;
} sprig_iov;

/* The backend vtable. Optional entries may be NULL. The public functions below validate
 * arguments and state first (NULL, closed, listener, oversize, shut down), so ops see only
 * plausible calls. */
typedef struct sprig_sock_ops {
    const char *name;
    /* Message types: all of `len` or nothing (*out_sent = len). STREAM: may accept less;
     * *out_sent > 0 on OK. `to` is NULL except for DGRAM send_to. */
    sprig_status (*send)(sprig_sock *s, const void *data, size_t len, const sprig_addr *to,
                         size_t *out_sent);
    /* Optional: gather send, same rules as send. On a SEQPACKET/DGRAM socket it must gather
     * the pieces (up to 64) into one message to the peer, all or nothing: its presence is what
     * sprig_sock_gathers reports. */
    sprig_status (*send_iov)(sprig_sock *s, const sprig_iov *iov, size_t iovcnt, size_t *out_sent);
    /* Optional: take ownership of `buf` on OK. NULL: the generic code sends its bytes with
     * `send` and frees it. */
    sprig_status (*send_buf)(sprig_sock *s, sprig_buf *buf, const sprig_addr *to);
    /* Optional: NULL means take a buffer from s->tx_pool with s->headroom reserved. */
    sprig_status (*alloc_tx)(sprig_sock *s, size_t len, sprig_buf **out);
    sprig_status (*recv)(sprig_sock *s, void *buf, size_t cap, size_t *out_len, sprig_addr *from);
    sprig_status (*accept)(sprig_sock *listener, sprig_sock **out);
    sprig_status (*shutdown)(sprig_sock *s);
    /* Release the socket. No event may fire afterwards. */
    void (*close)(sprig_sock *s);
    /* Optional: local (peer = false) or peer address; UNIMPLEMENTED if NULL. */
    sprig_status (*addr)(const sprig_sock *s, bool peer, sprig_addr *out);
} sprig_sock_ops;

/* Every backend's socket embeds this as a member; backends fill it with sprig__sock_init(). */
struct sprig_sock {
    const sprig_sock_ops *ops;
    sprig_loop *loop;
    sprig_sock_cb cb;
    void *user;
    sprig_buf_pool *tx_pool; /* buffers for the generic alloc_tx; may be NULL */
    size_t max_message;      /* SEQPACKET/DGRAM: largest payload; STREAM: 0 */
    uint16_t headroom;       /* bytes lower layers prepend; reserved by alloc_tx */
    uint8_t type;            /* sprig_sock_type */
    uint8_t state;           /* sprig_sock_state */
    uint8_t flags;           /* SPRIG_SOCK_F_* */
    sprig_status status;     /* terminal status once CLOSED */
};

/* ---- backends ---------------------------------------------------------------------------- */
typedef struct sprig_backend {
    struct sprig_backend *next;
    const char *name;
    /* True if this backend serves the URL's scheme. */
    bool (*handles)(const struct sprig_backend *b, const sprig_url *url);
    /* type is never SPRIG_SOCK_DEFAULT here (resolved by sprig_sock_default_type first). The
     * new socket is CONNECTING; CONNECTED or CLOSED follows from the loop. UNIMPLEMENTED for a
     * type the scheme does not carry. */
    sprig_status (*dial)(struct sprig_backend *b, const sprig_url *url, sprig_sock_type type,
                         sprig_sock **out);
    /* Connection types: a LISTENING socket (READABLE when accept has something).
     * DGRAM: a bound OPEN socket for recv/send_to. */
    sprig_status (*listen)(struct sprig_backend *b, const sprig_url *url, sprig_sock_type type,
                           sprig_sock **out);
} sprig_backend;

/* Register a backend with a loop (the loop does not own it; remove it before it goes away). */
void sprig_loop_add_backend(sprig_loop *loop, sprig_backend *backend);
void sprig_loop_remove_backend(sprig_loop *loop, sprig_backend *backend);

/* The natural type for a URL's scheme: SEQPACKET for unix, tcp, tls+tcp, serial, sprig, mem;
 * DGRAM for udp. */
sprig_sock_type sprig_sock_default_type(const sprig_url *url);

/* ---- making sockets ---------------------------------------------------------------------- */
/* Parse the URL, find the backend registered on the loop that handles it, start connecting.
 * INVALID_ARGUMENT (bad URL), NOT_FOUND (no backend for the scheme), UNIMPLEMENTED (type not
 * carried), RESOURCE_EXHAUSTED (no socket storage), or a backend status. */
sprig_status sprig_sock_dial(sprig_loop *loop, const char *url, sprig_sock_type type,
                             sprig_sock **out);
sprig_status sprig_sock_listen(sprig_loop *loop, const char *url, sprig_sock_type type,
                               sprig_sock **out);
/* OK with a new OPEN socket (callback unset), or UNAVAILABLE when none is pending. */
sprig_status sprig_sock_accept(sprig_sock *listener, sprig_sock **out);

void sprig_sock_set_callback(sprig_sock *s, sprig_sock_cb cb, void *user);

/* ---- data -------------------------------------------------------------------------------- */
/* out_sent may be NULL for SEQPACKET/DGRAM (all or nothing); it is required for STREAM. */
sprig_status sprig_sock_send(sprig_sock *s, const void *data, size_t len, size_t *out_sent);
/* Gather send: the pieces in order. STREAM: as send (may take less). SEQPACKET/DGRAM (to the
 * peer of a dialed socket): one message of all the pieces, all or nothing, as send, where the
 * backend gathers messages (sprig_sock_gathers: the OS backend hands up to 64 pieces to sendmsg,
 * no copy; mem copies them into one buffer), else UNIMPLEMENTED (the framing decorator, whose
 * partly written rest would have to be copied where send_buf keeps the buffer; fault; netstack):
 * send one buffer there. */
sprig_status sprig_sock_send_iov(sprig_sock *s, const sprig_iov *iov, size_t iovcnt,
                                 size_t *out_sent);
/* Whether sprig_sock_send_iov works on this socket (for SEQPACKET/DGRAM: gathers messages). */
static inline bool sprig_sock_gathers(const sprig_sock *s)
{
    return s != NULL && s->ops->send_iov != NULL;
}
/* DGRAM on a listening (bound) socket: send to / receive from a given address. */
sprig_status sprig_sock_send_to(sprig_sock *s, const void *data, size_t len, const sprig_addr *to);
sprig_status sprig_sock_recv(sprig_sock *s, void *buf, size_t cap, size_t *out_len);
sprig_status sprig_sock_recv_from(sprig_sock *s, void *buf, size_t cap, size_t *out_len,
                                  sprig_addr *from);

/* Zero-copy send: a buffer whose headroom the lower layers will use, with tailroom for len
 * payload bytes. RESOURCE_EXHAUSTED if len exceeds the max message size or the pool is empty;
 * UNIMPLEMENTED if the socket has no transmit pool. */
sprig_status sprig_sock_alloc_tx(sprig_sock *s, size_t len, sprig_buf **out);
/* The same for protocol layers that treat a buffer shortage as back-pressure: an empty
 * transmit pool is UNAVAILABLE instead of RESOURCE_EXHAUSTED, and the socket then owes a
 * WRITABLE (a backend fires it when buffers it holds return; buffers the application holds and
 * frees itself are not watched). */
sprig_status sprig_sock_alloc_tx_flow(sprig_sock *s, size_t len, sprig_buf **out);
/* Send the buffer's data as one message (STREAM: all its bytes, or UNAVAILABLE). On OK the
 * socket owns the buffer. */
sprig_status sprig_sock_send_buf(sprig_sock *s, sprig_buf *buf);
sprig_status sprig_sock_send_buf_to(sprig_sock *s, sprig_buf *buf, const sprig_addr *to);

/* SEQPACKET/DGRAM: largest message; STREAM and listeners: 0. */
size_t sprig_sock_max_message_size(const sprig_sock *s);
sprig_sock_type sprig_sock_type_of(const sprig_sock *s);
sprig_status sprig_sock_local_addr(const sprig_sock *s, sprig_addr *out);
sprig_status sprig_sock_peer_addr(const sprig_sock *s, sprig_addr *out);

/* Half-close: no more sends; the peer's recv returns OUT_OF_RANGE after what was sent. */
sprig_status sprig_sock_shutdown(sprig_sock *s);
/* Orderly close: data already accepted by send is still delivered where the backend can
 * (kernel sockets, netstack streams). Releases the socket; NULL is ignored. */
void sprig_sock_close(sprig_sock *s);

/* ---- blocking helpers (run the socket's loop; never from a callback) --------------------- */
/* Dial and wait until connected. On failure nothing is left open and *out is NULL. */
sprig_status sprig_sock_dial_wait(sprig_loop *loop, const char *url, sprig_sock_type type,
                                  sprig_time timeout, sprig_sock **out);
sprig_status sprig_sock_accept_wait(sprig_sock *listener, sprig_time timeout, sprig_sock **out);
/* Message types: one message. STREAM: all len bytes (on DEADLINE_EXCEEDED some may be sent). */
sprig_status sprig_sock_send_wait(sprig_sock *s, const void *data, size_t len, sprig_time timeout);
sprig_status sprig_sock_recv_wait(sprig_sock *s, void *buf, size_t cap, size_t *out_len,
                                  sprig_time timeout);

/* ---- for backend and decorator authors ----------------------------------------------------- */
void sprig__sock_init(sprig_sock *s, const sprig_sock_ops *ops, sprig_loop *loop,
                      sprig_sock_type type, sprig_sock_state state);
/* Deliver an event to the user's callback, applying the rules above: WRITABLE only if a send
 * returned UNAVAILABLE since the last one; CONNECTED moves CONNECTING to OPEN and is followed by
 * WRITABLE if wanted; CLOSED marks the socket dead with `status` and is delivered at most once.
 * Call it from loop context only (an fd handler, a timer, a deferred task), never from inside
 * an op. Brackets the callback with sprig__loop_enter/leave. */
void sprig__sock_event(sprig_sock *s, sprig_sock_event event, sprig_status status);
/* Mark the socket dead now (state CLOSED, terminal status) without delivering anything; the
 * backend then defers a CLOSED event. Later sends/recvs return `status` (or
 * FAILED_PRECONDITION when it is OK). Keeps the first status if already dead. */
void sprig__sock_set_dead(sprig_sock *s, sprig_status status);

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_SOCK_H */
