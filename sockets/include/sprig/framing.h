/*
 * sprig/framing.h — SEQPACKET over any STREAM socket (the decorator of WIRE.md).
 *
 * Wire format: each message is preceded by its length as a 32-bit big-endian unsigned integer.
 * A length above the receiver's max_message_size kills the connection with RESOURCE_EXHAUSTED;
 * a stream that ends inside a message kills it with DATA_LOSS (the partial message is not
 * delivered). A zero-length message is legal.
 *
 * Contract
 *   Ownership: sprig_framed_sock and its rx/tx memory are the caller's and must outlive the
 *     socket. The decorator takes over the inner STREAM socket (its callback is replaced) and
 *     closes it when the framed socket is closed. The framed socket's storage may be reused once
 *     sprig_sock_close(&f->sock) has returned.
 *   Memory: none allocated. rx_mem holds received bytes until the user takes the message; it must
 *     hold at least max_message_size + 4 (more lets one inner recv carry many messages). tx_mem
 *     holds the unsent rest of a message after a short inner write (>= max_message_size + 4).
 *     While a rest is pending, further sends return UNAVAILABLE and WRITABLE follows the flush.
 *   Errors: as sprig/sock.h. The decoder never trusts a length: see sprig_frame_decoder.
 */
#ifndef SPRIG_FRAMING_H
#define SPRIG_FRAMING_H

#include <stddef.h>
#include <stdint.h>

#include "sprig/sock.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the pure decoder (no I/O; fuzzed) ---------------------------------------------------- */
/* Scans a byte buffer for complete frames. The caller owns the bytes. */
typedef struct sprig_frame_decoder {
    size_t max_message; /* largest acceptable length */
} sprig_frame_decoder;

void sprig_frame_decoder_init(sprig_frame_decoder *d, size_t max_message);
/* Look at `len` buffered bytes starting at a frame boundary.
 *   OK:                 a whole frame is there: *msg_off = 4, *msg_len its length,
 *                       *frame_len = 4 + msg_len bytes to consume.
 *   UNAVAILABLE:        need more bytes; *frame_len = total bytes the frame needs when the
 *                       header is complete, else 4.
 *   RESOURCE_EXHAUSTED: the header announces more than max_message (connection must die).
 * Never reads beyond data[len-1]. */
sprig_status sprig_frame_decode(const sprig_frame_decoder *d, const uint8_t *data, size_t len,
                                size_t *msg_off, size_t *msg_len, size_t *frame_len);
/* Write the 4-byte header for a message of msg_len bytes. */
void sprig_frame_encode_header(uint8_t out[SPRIG_FRAMING_HEADER_LEN], uint32_t msg_len);

/* ---- the decorator ----------------------------------------------------------------------------
 */
struct sprig_framed_sock;

typedef struct sprig_framing_cfg {
    size_t max_message_size; /* 0: SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE */
    uint8_t *rx_mem;
    size_t rx_cap; /* >= max_message_size + 4 */
    uint8_t *tx_mem;
    size_t tx_cap; /* >= max_message_size + 4 */
    /* Optional: called after the framed socket and its inner socket are closed, so the owner
     * can release the storage (the OS backend frees its allocation here). */
    void (*on_release)(struct sprig_framed_sock *f, void *ctx);
    void *release_ctx;
} sprig_framing_cfg;

typedef struct sprig_framed_sock {
    sprig_sock sock;   /* the SEQPACKET face: pass &f->sock to the socket API */
    sprig_sock *inner; /* the STREAM socket underneath */
    sprig_framing_cfg cfg;
    sprig_frame_decoder dec;
    size_t rx_start; /* first unconsumed byte in rx_mem */
    size_t rx_end;   /* end of received bytes in rx_mem */
    size_t tx_off;   /* pending rest: tx_mem[tx_off..tx_end) or tx_buf */
    size_t tx_end;
    sprig_buf *tx_buf; /* pending zero-copy buffer, if the rest belongs to one */
    sprig_task task;   /* deferred event delivery */
    uint8_t pending_events;
    uint8_t inner_eof;
    uint8_t flags; /* private state bits of framing.c */
    uint8_t depth; /* > 0 while framing.c runs the user's callback */
} sprig_framed_sock;

/* Wrap `inner` (a STREAM socket, CONNECTING or OPEN). INVALID_ARGUMENT if inner is not STREAM,
 * memory is missing or too small. On success the framed socket's state follows the inner one
 * (CONNECTED is passed through). The framed socket's tx_pool/headroom come from the inner
 * socket plus 4 bytes of headroom, so sprig_sock_alloc_tx() buffers are sent without a copy. */
sprig_status sprig_framing_init(sprig_framed_sock *f, sprig_sock *inner,
                                const sprig_framing_cfg *cfg);

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_FRAMING_H */
