/*
 * sprig/transfer.h — pw_transfer version-2 chunks and a transfer engine carried directly on a
 * SEQPACKET or DGRAM socket (shared/WIRE.md, "Transfer chunk"; docs/transfer.md).
 *
 * Contract
 *   Memory: no malloc. A node, its session pool and its receive buffer are caller storage given
 *     at init; transmit buffers come from the socket (sprig_sock_alloc_tx) and are written once:
 *     a handler reads resource bytes straight into the outgoing message (or, on SEQPACKET, lends
 *     them and the socket sends them in place: handler op lend), and received data is handed to
 *     the handler as a pointer into the receive buffer.
 *   Threading: everything runs on the socket's loop thread; handlers and callbacks are called
 *     from that loop. Nothing here blocks; handlers must not block either.
 *   Lifetime: the node owns its socket from init (it sets the socket's callback and closes it in
 *     deinit). A transfer is named by its session id; its done callback runs exactly once, after
 *     which the id is stale (later calls with it return NOT_FOUND).
 *   Errors: sprig_status everywhere; pw_status values travel in chunks unchanged. Input from the
 *     peer is untrusted: an undecodable chunk is counted and dropped.
 *   Time: timeouts and the peer's min_delay_microseconds run on the loop's timers, so a fake clock
 *     drives them in tests.
 *   Carriers: on SEQPACKET nothing is lost. On DGRAM (SPRIG_CONFIG_TRANSFER_DGRAM, default 1) the
 *     engine recovers lost, duplicated and reordered chunks itself (timeouts + retries, the
 *     receiver's retransmit requests) and the receiver's window adapts to loss; a bound DGRAM
 *     socket serves many peers, sessions keyed by (peer address, session id). Over pw_rpc
 *     (pw.transfer.Transfer Read/Write streams) see sprig/transfer_rpc.h. docs/transfer.md.
 */
#ifndef SPRIG_TRANSFER_H
#define SPRIG_TRANSFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sprig/buf.h"
#include "sprig/loop.h"
#include "sprig/sock.h"
#include "sprig/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- chunks ---------------------------------------------------------------------------------- */

typedef enum sprig_transfer_chunk_type {
    SPRIG_TRANSFER_CHUNK_DATA = 0,
    SPRIG_TRANSFER_CHUNK_START = 1,
    SPRIG_TRANSFER_CHUNK_PARAMETERS_RETRANSMIT = 2,
    SPRIG_TRANSFER_CHUNK_PARAMETERS_CONTINUE = 3,
    SPRIG_TRANSFER_CHUNK_COMPLETION = 4,
    SPRIG_TRANSFER_CHUNK_COMPLETION_ACK = 5,
    SPRIG_TRANSFER_CHUNK_START_ACK = 6,
    SPRIG_TRANSFER_CHUNK_START_ACK_CONFIRMATION = 7,
} sprig_transfer_chunk_type;

/* Which fields a chunk carries (bit per field). Decode sets a bit for every field present on
 * the wire (for proto3 singular fields — transfer_id, offset, window_end_offset,
 * initial_offset — when not zero); encode writes the fields whose bit is set, except those
 * singular fields when zero (proto3 never sends them), and data when data_len > 0. */
#define SPRIG_TRANSFER_F_TRANSFER_ID        (1u << 0)
#define SPRIG_TRANSFER_F_PENDING_BYTES      (1u << 1)
#define SPRIG_TRANSFER_F_MAX_CHUNK_SIZE     (1u << 2)
#define SPRIG_TRANSFER_F_MIN_DELAY          (1u << 3)
#define SPRIG_TRANSFER_F_OFFSET             (1u << 4)
#define SPRIG_TRANSFER_F_REMAINING_BYTES    (1u << 5)
#define SPRIG_TRANSFER_F_STATUS             (1u << 6)
#define SPRIG_TRANSFER_F_WINDOW_END_OFFSET  (1u << 7)
#define SPRIG_TRANSFER_F_TYPE               (1u << 8)
#define SPRIG_TRANSFER_F_RESOURCE_ID        (1u << 9)
#define SPRIG_TRANSFER_F_SESSION_ID         (1u << 10)
#define SPRIG_TRANSFER_F_PROTOCOL_VERSION   (1u << 11)
#define SPRIG_TRANSFER_F_DESIRED_SESSION_ID (1u << 12)
#define SPRIG_TRANSFER_F_INITIAL_OFFSET     (1u << 13)
#define SPRIG_TRANSFER_F_CRC32              (1u << 14) /* sprig extension, field 1000 */
#define SPRIG_TRANSFER_F_DIRECTION          (1u << 15) /* sprig extension, field 1001 */

/* sprig_direction (field 1001) values. */
#define SPRIG_TRANSFER_DIR_READ  1u /* the client downloads */
#define SPRIG_TRANSFER_DIR_WRITE 2u /* the client uploads */

/* The protocol version this engine speaks. */
#define SPRIG_TRANSFER_PROTOCOL_VERSION 2u

typedef struct sprig_transfer_chunk {
    uint32_t fields; /* SPRIG_TRANSFER_F_* */
    uint32_t type;   /* sprig_transfer_chunk_type; decode keeps unknown values */
    uint32_t transfer_id;
    uint32_t pending_bytes;
    uint32_t max_chunk_size_bytes;
    uint32_t min_delay_microseconds;
    uint64_t offset;
    uint64_t remaining_bytes;
    uint32_t status; /* raw wire value (may exceed SPRIG_STATUS_COUNT) */
    uint32_t window_end_offset;
    uint32_t resource_id;
    uint32_t session_id;
    uint32_t protocol_version;
    uint32_t desired_session_id;
    uint64_t initial_offset;
    uint32_t crc32;
    uint32_t direction;
    const uint8_t *data; /* decode: points into the decoded bytes; NULL when absent */
    size_t data_len;
} sprig_transfer_chunk;

/* Worst-case bytes around the data of a DATA chunk (session_id, offset, remaining_bytes, type,
 * crc32 and the data's tag and length, and on DGRAM the integrity trailer): a chunk with N data
 * bytes always fits in N + this. */
#define SPRIG_TRANSFER_DATA_OVERHEAD 48
/* Bytes reserved in front of the data for its tag and length (zero-copy encoding). */
#define SPRIG_TRANSFER_DATA_HEADROOM 6
/* Bytes needed after the data for every field but the data (any chunk type). */
#define SPRIG_TRANSFER_CHUNK_TAILROOM 112

/* Decode untrusted bytes. DATA_LOSS if they are not a valid Chunk (fields in any order, unknown
 * fields skipped, a repeated field replaces the earlier one). No semantic checks here. */
sprig_status sprig_transfer_chunk_decode(const uint8_t *data, size_t len,
                                         sprig_transfer_chunk *out);
/* Encode: data first (when data_len > 0), then the fields set in c->fields in field-number
 * order. RESOURCE_EXHAUSTED if cap is too small (data_len + SPRIG_TRANSFER_DATA_HEADROOM +
 * SPRIG_TRANSFER_CHUNK_TAILROOM always suffices); INVALID_ARGUMENT for a NULL data pointer
 * with data_len > 0. */
sprig_status sprig_transfer_chunk_encode(const sprig_transfer_chunk *c, uint8_t *out, size_t cap,
                                         size_t *out_len);
/* Zero copy: buf's data is the chunk's data, already in place; prepend its tag and length into
 * the headroom and append the other fields of c (c->data is ignored). The same bytes as encode.
 * RESOURCE_EXHAUSTED without SPRIG_TRANSFER_DATA_HEADROOM headroom or room behind the data
 * for the fields (buf unchanged). */
sprig_status sprig_transfer_chunk_wrap(sprig_buf *buf, const sprig_transfer_chunk *c);

/* A DATA chunk around data that stays where it is (sprig_sock_send_iov): the data's tag and
 * length (*hdr_len bytes, none for data_len 0), then c's other fields, written to out; the
 * chunk is out[0 .. *hdr_len), the data, out[*hdr_len .. returned length). 0 if they do not fit
 * in SPRIG_TRANSFER_DATA_OVERHEAD bytes (never for the engine's DATA chunks). */
size_t sprig_transfer_chunk_frame(const sprig_transfer_chunk *c, size_t data_len,
                                  uint8_t out[SPRIG_TRANSFER_DATA_OVERHEAD], size_t *hdr_len);

/* DGRAM integrity trailer: every chunk on a DGRAM socket ends with sprig extension field 1003
 * (`sprig_chunk_crc32`, fixed32): its 2-byte tag, then the CRC-32 of every byte of the
 * datagram before those 4 bytes (the tag included). pw_transfer decoders would skip it; the
 * DGRAM carrier is sprig's own, so a receiver there requires it (docs/transfer.md). */
#define SPRIG_TRANSFER_TRAILER 6
/* Append the trailer to the `len`-byte chunk at msg; msg must have SPRIG_TRANSFER_TRAILER bytes
 * of room after it. */
void sprig_transfer_chunk_seal(uint8_t *msg, size_t len);
/* Check the trailer of the `*len`-byte datagram at msg (untrusted); on OK *len becomes the length
 * of the chunk before it. DATA_LOSS (*len unchanged) if it is missing or its CRC is wrong. */
sprig_status sprig_transfer_chunk_unseal(const uint8_t *msg, size_t *len);

/* Smallest max_message_size a node accepts: every control chunk fits, and data chunks carry
 * at least 80 bytes. */
#define SPRIG_TRANSFER_MIN_MESSAGE 128

/* CRC-32 (IEEE, reflected, as zlib's crc32(crc, data, len)); start with crc = 0. The variant
 * (code size against speed) is SPRIG_CONFIG_TRANSFER_CRC32 in sprig/config.h. */
uint32_t sprig_transfer_crc32(uint32_t crc, const void *data, size_t len);

/* Internal, for tests and benchmarks: update *crc (as sprig_transfer_crc32 would) with variant
 * `impl`: SPRIG_TRANSFER_CRC32_SMALL, _TABLE or _SLICE8 (sprig/config.h), or on x86-64
 * SPRIG__TRANSFER_CRC32_CLMUL (PCLMULQDQ folding of 128-bit lanes) or _VCLMUL (VPCLMULQDQ on
 * 512-bit registers, AVX-512), each followed by the configured variant for the tail.
 * false, *crc unchanged, when this build or CPU lacks it: a build carries its configured variant
 * and the smaller ones, and the folding ones only with SPRIG_CONFIG_TRANSFER_CRC32_CLMUL. */
#define SPRIG__TRANSFER_CRC32_CLMUL  4
#define SPRIG__TRANSFER_CRC32_VCLMUL 5
bool sprig__transfer_crc32_impl(int impl, uint32_t *crc, const void *data, size_t len);

/* ---- resource handlers ----------------------------------------------------------------------- */

#define SPRIG_TRANSFER_SIZE_UNKNOWN UINT64_MAX

typedef enum sprig_transfer_access {
    SPRIG_TRANSFER_ACCESS_READ = 1,  /* bytes leave this node */
    SPRIG_TRANSFER_ACCESS_WRITE = 2, /* bytes arrive at this node */
} sprig_transfer_access;

/* Where a node's resource bytes come from and go to. Every function is called from the loop and
 * must not block. `handle` is whatever open returned; the engine keeps it until close. */
typedef struct sprig_transfer_handler_ops {
    /* Open resource `id` for `access`, positioned at `offset`. Return NOT_FOUND (no such
     * resource), PERMISSION_DENIED (not for this access), UNIMPLEMENTED (cannot start at a
     * non-zero offset), UNAVAILABLE (busy), RESOURCE_EXHAUSTED. For READ, *size is the total
     * size of the resource or SPRIG_TRANSFER_SIZE_UNKNOWN; ignored for WRITE. */
    sprig_status (*open)(void *ctx, uint32_t id, sprig_transfer_access access, uint64_t offset,
                         void **handle, uint64_t *size);
    /* READ: up to cap bytes at `offset` into buf. *out_len < cap only at the end of the
     * resource. Any error ends the transfer with DATA_LOSS. */
    sprig_status (*read)(void *ctx, void *handle, uint64_t offset, uint8_t *buf, size_t cap,
                         size_t *out_len);
    /* WRITE: `len` bytes at `offset` (offsets only grow, without gaps). Any error ends the
     * transfer with DATA_LOSS. */
    sprig_status (*write)(void *ctx, void *handle, uint64_t offset, const uint8_t *data,
                          size_t len);
    /* The transfer ended with `status`. For WRITE, OK means "all data arrived and checked:
     * commit it"; any other status means discard it. A non-OK return for a WRITE closed with OK
     * turns the transfer's result into DATA_LOSS. Called exactly once per successful open. */
    sprig_status (*close)(void *ctx, void *handle, sprig_status status);
    /* READ, optional (NULL: the engine copies with read): lend the bytes in place, for
     * resources that sit in memory anyway (RAM buffers, memory-mapped or XIP flash). Point *ptr
     * at up to `len` bytes of the resource at `offset`; *avail < len only at the end of the
     * resource. The bytes must stay valid and unchanged until the next call on this handle (the
     * engine has handed them to the socket before that). On a SEQPACKET socket the engine
     * sends the DATA chunk as the data's header, these bytes and the other fields with
     * sprig_sock_send_iov, so the bytes are copied once, by the socket; on DGRAM, and on a
     * socket that does not gather messages (UNIMPLEMENTED: e.g. TCP's framing), it uses read.
     * Any error ends the transfer with DATA_LOSS. */
    sprig_status (*lend)(void *ctx, void *handle, uint64_t offset, size_t len, const uint8_t **ptr,
                         size_t *avail);
} sprig_transfer_handler_ops;

typedef struct sprig_transfer_handler {
    const sprig_transfer_handler_ops *ops;
    void *ctx;
} sprig_transfer_handler;

/* A handler over caller-provided byte arrays, for tests and small devices. A write goes to the
 * resource's buffer directly; `len` becomes the written length only when the transfer commits
 * (a failed or cancelled write leaves the old length: nothing is claimed written). */
typedef struct sprig_transfer_mem_resource {
    uint32_t id;
    uint8_t *data;
    size_t cap;         /* bytes of storage */
    size_t len;         /* bytes of content */
    uint8_t access;     /* SPRIG_TRANSFER_ACCESS_* bits allowed */
    uint8_t busy;       /* open now (1: reading, 2: writing) */
    size_t fail_at;     /* tests: a write reaching this offset fails (0: never) */
    size_t pending_len; /* bytes written by the open write */
} sprig_transfer_mem_resource;

typedef struct sprig_transfer_mem_handler {
    sprig_transfer_handler handler; /* pass &mh.handler */
    sprig_transfer_mem_resource *resources;
    size_t count;
} sprig_transfer_mem_handler;

void sprig_transfer_mem_handler_init(sprig_transfer_mem_handler *mh,
                                     sprig_transfer_mem_resource *resources, size_t count);

/* ---- the engine ------------------------------------------------------------------------------ */

typedef struct sprig_transfer_node sprig_transfer_node;

/* Progress: `done` bytes past the start offset have been sent (sender) or received and written
 * (receiver); `total` is the size when known, else SPRIG_TRANSFER_SIZE_UNKNOWN. */
typedef void (*sprig_transfer_progress_fn)(sprig_transfer_node *node, uint32_t session_id,
                                           uint64_t done, uint64_t total, void *user);
/* The transfer ended with `status` (exactly once). */
typedef void (*sprig_transfer_done_fn)(sprig_transfer_node *node, uint32_t session_id,
                                       sprig_status status, void *user);

/* One transfer's state. Caller storage in the node's pool; private. Small fields first: a
 * Cortex-M0+ reaches bytes only at offsets 0..31 and words at 0..124 in one instruction. */
typedef struct sprig_transfer_session {
    uint8_t in_use;
    uint8_t client;  /* 1: we opened it */
    uint8_t sender;  /* 1: data flows from us */
    uint8_t state;   /* private state machine */
    uint8_t pending; /* a control chunk waiting for the socket (type + 1), 0: none */
    uint8_t retries;
    uint8_t flags;
    uint8_t cwnd;        /* DGRAM receiver: window in chunks (slow start, halve on loss) */
    uint8_t ssthresh;    /* DGRAM receiver: doubling stops here, then +1 chunk per window */
    sprig_status status; /* final status once completing */
    uint32_t id;
    /* Offsets are 32-bit: window_end_offset is on the wire, so transfers end below 4 GiB. */
    uint32_t offset;     /* sender: next byte to send; receiver: next byte expected */
    uint32_t window_end; /* sender may send up to (not including) this offset */
    uint32_t size;       /* total size, UINT32_MAX: unknown */
    uint32_t start;      /* initial_offset */
    uint32_t crc_end;    /* sender: bytes [start, crc_end) are in crc */
    uint32_t high;       /* sender: highest offset sent (progress) */
    uint32_t last_chunk; /* sender: offset of the last chunk sent (re-sent on timeout) */
    uint32_t resource_id;
    uint32_t max_chunk;
    uint32_t min_delay; /* µs between data chunks (the receiver's wish) */
    uint32_t window;    /* receiver: window size in bytes */
    uint32_t crc;
    uint32_t round_end; /* DGRAM receiver: a loss-free window ends here (then it grows) */
    sprig_transfer_node *node;
    void *handle; /* the handler's */
    sprig_transfer_progress_fn progress;
    sprig_transfer_done_fn done;
    void *user;
    const sprig_transfer_handler *handler;
    sprig_time next_send; /* sender: no data before this (min_delay) */
    sprig_timer timer;
    sprig_addr peer; /* bound DGRAM socket: the peer's address */
} sprig_transfer_session;

typedef struct sprig_transfer_cfg {
    sprig_loop *loop;
    sprig_sock *sock; /* a connected SEQPACKET socket, a dialed DGRAM socket (one peer) or a
                         bound DGRAM socket (server for many peers); the node owns it */
    sprig_transfer_session *sessions; /* the session pool: bounds concurrent transfers */
    size_t max_sessions;
    uint8_t *rx_buf; /* receive buffer, >= the socket's max_message_size */
    size_t rx_cap;
    /* Resources this node serves to its peer (server role); NULL: every START is NOT_FOUND. */
    const sprig_transfer_handler *handler;
    /* Server-side sessions' callbacks (optional). */
    sprig_transfer_progress_fn on_progress;
    sprig_transfer_done_fn on_done;
    void *user;
    /* Tuning; 0 picks the default. */
    sprig_time chunk_timeout;  /* 2 s (WIRE.md); DGRAM: 500 ms */
    uint8_t max_retries;       /* 3 (WIRE.md); DGRAM: 8 */
    uint32_t max_chunk;        /* largest data per chunk we accept/send: the socket's
                                  max_message_size - SPRIG_TRANSFER_DATA_OVERHEAD */
    uint32_t window_chunks;    /* receive window, in chunks: 4 (at most 255). DGRAM: the
                                  slow-start threshold (the window starts at 1 chunk) */
    uint32_t min_delay_us;     /* what we ask of a sender when receiving: 0 (a reliable
                                  carrier needs no pacing; pw_transfer asks 2000) */
    uint32_t first_session_id; /* first id our client sessions use: 1. Give the two ends
                                  disjoint ranges if both open transfers on one socket. */
    /* The direction of a START without sprig_direction (field 1001), for carriers that imply
     * it (pw.transfer.Transfer: Read = SPRIG_TRANSFER_DIR_READ, Write = _WRITE). 0: none, such
     * a START is INVALID_ARGUMENT. When set, a START whose field 1001 says otherwise is
     * INVALID_ARGUMENT too. */
    uint32_t implied_direction;
} sprig_transfer_cfg;

typedef struct sprig_transfer_stats {
    uint32_t chunks_in;
    uint32_t chunks_out;
    uint32_t dropped;     /* undecodable or meaningless chunks */
    uint32_t refused;     /* STARTs refused (pool full, handler said no) */
    uint32_t retransmits; /* timeouts that re-sent something */
    uint32_t corrupt;     /* DGRAM: dropped, the integrity trailer missing or wrong */
} sprig_transfer_stats;

struct sprig_transfer_node {
    uint8_t want_write; /* a send met UNAVAILABLE: flush on WRITABLE */
    uint8_t dead;       /* the socket is closed */
    uint8_t ready;
    uint8_t dgram;  /* 0: SEQPACKET, DGRAM_DIALED or DGRAM_BOUND (private) */
    uint8_t no_iov; /* the socket has no message gather: lent bytes are not used */
    uint32_t next_id;
    uint32_t max_chunk; /* derived */
    sprig_transfer_stats stats;
    sprig_transfer_cfg cfg;
    sprig_addr from; /* bound DGRAM socket: the sender of the chunk being handled */
};

/* INVALID_ARGUMENT for missing storage, a socket that is neither SEQPACKET nor DGRAM (nor DGRAM
 * when SPRIG_CONFIG_TRANSFER_DGRAM is 0), one whose max_message_size is below
 * SPRIG_TRANSFER_MIN_MESSAGE, or an rx buffer smaller than it (the caller then still owns the
 * socket). A DGRAM socket with a peer address (dialed) talks to that peer; one without (bound)
 * serves whoever sends to it. */
sprig_status sprig_transfer_init(sprig_transfer_node *node, const sprig_transfer_cfg *cfg);
/* Ends every transfer with CANCELLED (done callbacks run; handlers are closed), closes the
 * socket. Idempotent; safe after a failed init. Not from inside one of this node's callbacks
 * (done, progress, handler): cancel the transfers there and deinit from outside. */
void sprig_transfer_deinit(sprig_transfer_node *node);

typedef struct sprig_transfer_opts {
    uint32_t resource_id; /* the peer's resource */
    /* This node's end of the bytes: a read writes into local resource `local_id`, a write reads
     * from it. */
    const sprig_transfer_handler *local;
    uint32_t local_id;
    uint64_t initial_offset;             /* start here instead of 0 (the peer must echo it: else
                                            UNIMPLEMENTED) */
    sprig_transfer_progress_fn progress; /* optional */
    sprig_transfer_done_fn done;         /* required */
    void *user;
} sprig_transfer_opts;

/* Start downloading the peer's resource (read) or uploading to it (write). On OK *session_id
 * names the transfer and its done callback will run exactly once. RESOURCE_EXHAUSTED with no
 * free session; OUT_OF_RANGE for an initial_offset beyond 0xFFFFFFFE (offsets are 32-bit, as the
 * wire's window_end_offset: a transfer that would end beyond it, in either role, ends with
 * OUT_OF_RANGE); the local handler's open status if it refuses; FAILED_PRECONDITION if the
 * socket is closed; UNIMPLEMENTED on a bound DGRAM socket (it only serves: it has no peer to
 * start with); UNAVAILABLE is never returned (a blocked socket just delays the START). */
sprig_status sprig_transfer_read(sprig_transfer_node *node, const sprig_transfer_opts *opts,
                                 uint32_t *session_id);
sprig_status sprig_transfer_write(sprig_transfer_node *node, const sprig_transfer_opts *opts,
                                  uint32_t *session_id);
/* Cancel a transfer (either role): the peer is told CANCELLED; the done callback follows with
 * CANCELLED once the peer acknowledged or retries ran out. NOT_FOUND for an unknown or finished
 * id, FAILED_PRECONDITION if it is already ending. */
sprig_status sprig_transfer_cancel(sprig_transfer_node *node, uint32_t session_id);
/* Sessions in use now (0 after everything finished). */
size_t sprig_transfer_active(const sprig_transfer_node *node);

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_TRANSFER_H */
