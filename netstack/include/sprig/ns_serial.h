/*
 * sprig/ns_serial.h — the serial link: netstack packets as COBS frames with CRC-32 over any
 * byte stream (docs/netstack.md §6), and the incremental COBS/CRC codec it is built on.
 *
 * Contract
 *   Byte stream: abstract. The link writes through io.write (non-blocking, partial writes
 *     allowed); the owner feeds received bytes to sprig_ns_serial_input() in chunks of any size
 *     (one byte at a time from a UART ISR ring, or whole reads from a tty, pipe or STREAM
 *     socket) and calls sprig_ns_serial_writable() when a write that took less than offered may
 *     be retried.
 *   Memory: no allocation. Transmit encodes on the fly from the packet buffer through a
 *     SPRIG_CONFIG_NS_SERIAL_CHUNK-byte staging area; receive decodes in place into one buffer
 *     from cfg.pool (size >= mtu + 4), handed up to the node without a copy.
 *   Input is hostile: garbage, dropped, inserted and corrupted bytes cost the frames they hit,
 *     are counted in stats, and the decoder resynchronises at the next 0x00.
 *   Threading: none; the loop's thread. sprig_ns_serial_input() may deliver packets to the node
 *     synchronously, so do not call it from inside the node's own callbacks.
 *   Errors: init returns INVALID_ARGUMENT for a bad config; an io.write status other than OK or
 *     UNAVAILABLE abandons the frame in progress (counted in tx_errors).
 */
#ifndef SPRIG_NS_SERIAL_H
#define SPRIG_NS_SERIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sprig/ns_node.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SPRIG_NS_SERIAL_CRC_LEN 4

/* ---- incremental decoder: COBS frames ending in 0x00, CRC-32 checked ---------------------- */

typedef enum sprig_ns_cobs_result {
    SPRIG_NS_COBS_MORE = 0, /* byte consumed, frame not complete */
    SPRIG_NS_COBS_FRAME,    /* a frame with a good CRC is complete: out[0..*len) (CRC removed) */
    SPRIG_NS_COBS_ERROR,    /* a frame was dropped (see stats); resynchronising */
} sprig_ns_cobs_result;

typedef struct sprig_ns_cobs_stats {
    uint32_t frames;         /* good frames */
    uint32_t crc_errors;     /* decoded, but the CRC did not match */
    uint32_t framing_errors; /* truncated block or shorter than min_len + 4 */
    uint32_t overruns;       /* longer than the buffer */
} sprig_ns_cobs_stats;

typedef struct sprig_ns_cobs_dec {
    size_t len;        /* decoded bytes so far */
    uint8_t code;      /* current block code */
    uint8_t left;      /* data bytes left in the current block */
    bool pending_zero; /* the last block implies a zero if more data follows */
    bool started;      /* a non-delimiter byte has been seen in this frame */
    bool discard;      /* skipping to the next 0x00 */
    size_t min_len;    /* shortest accepted payload (CRC excluded) */
    sprig_ns_cobs_stats stats;
} sprig_ns_cobs_dec;

void sprig_ns_cobs_dec_init(sprig_ns_cobs_dec *d, size_t min_len);
/* Start over (discarding a partial frame, without counting it). */
void sprig_ns_cobs_dec_reset(sprig_ns_cobs_dec *d);
/* Feed one byte; decoded bytes go to out[0..cap). On FRAME, *len is the payload length (CRC
 * excluded) and the decoder is ready for the next frame; out must then be consumed or
 * replaced before the next call. */
sprig_ns_cobs_result sprig_ns_cobs_dec_byte(sprig_ns_cobs_dec *d, uint8_t byte, uint8_t *out,
                                            size_t cap, size_t *len);

/* ---- incremental encoder: COBS(payload || CRC-32 LE) then 0x00 ---------------------------- */

typedef struct sprig_ns_cobs_enc {
    const uint8_t *data;
    size_t n;       /* payload bytes */
    size_t pos;     /* next source index in payload || crc (0..n+4) */
    size_t blk_end; /* end of the current block's data in source indices */
    uint8_t crc[SPRIG_NS_SERIAL_CRC_LEN];
    uint8_t state; /* internal */
    bool full;     /* the current block is 254 data bytes (no zero follows) */
} sprig_ns_cobs_enc;

/* Begin a frame for data[0..n); lead: emit a 0x00 first (line was idle). data must stay
 * unchanged until the frame is done. */
void sprig_ns_cobs_enc_start(sprig_ns_cobs_enc *e, const uint8_t *data, size_t n, bool lead);
/* Produce up to cap encoded bytes into out; returns how many. Returns 0 when the frame (with
 * its closing 0x00) is complete. */
size_t sprig_ns_cobs_enc_fill(sprig_ns_cobs_enc *e, uint8_t *out, size_t cap);
/* Largest encoded size of an n-byte payload: n + 4 + ceil((n + 4 + 1) / 254) + 2 delimiters. */
size_t sprig_ns_cobs_enc_max(size_t n);

/* ---- the serial link ---------------------------------------------------------------------- */

typedef struct sprig_ns_serial_io {
    /* Write up to len bytes without blocking; *out_written = bytes taken (0 is allowed).
     * Return OK or UNAVAILABLE (full: the owner will call sprig_ns_serial_writable()), or any
     * other status to report the stream broken. */
    sprig_status (*write)(void *ctx, const uint8_t *data, size_t len, size_t *out_written);
    void *ctx;
} sprig_ns_serial_io;

typedef struct sprig_ns_serial_cfg {
    sprig_ns_serial_io io; /* required */
    sprig_buf_pool *pool;  /* receive buffers, each >= mtu + 4 bytes */
    uint16_t mtu;          /* 8..SPRIG_CONFIG_NS_MAX_MTU */
} sprig_ns_serial_cfg;

typedef struct sprig_ns_serial_stats {
    sprig_ns_cobs_stats rx; /* decoder counts */
    uint32_t no_buffer;     /* a frame arrived while the pool was empty */
    uint32_t tx_frames;
    uint32_t tx_errors;
} sprig_ns_serial_stats;

typedef struct sprig_ns_serial {
    /* Small fields first: Cortex-M0+ loads bytes with an immediate offset only below 32. */
    bool idle; /* the line has been idle: lead the next frame with 0x00 */
    bool pumping;
    bool rx_skip; /* no buffer: skip to the next delimiter */
    sprig_buf *tx_buf;
    sprig_buf *rx_buf;
    size_t stage_off, stage_len;
    /* transmit */
    sprig_ns_cobs_enc enc;
    /* receive */
    sprig_ns_cobs_dec dec;
    sprig_ns_serial_cfg cfg;
    sprig_ns_serial_stats stats;
    uint8_t stage[SPRIG_CONFIG_NS_SERIAL_CHUNK];
    sprig_ns_link link; /* attach this to a node */
} sprig_ns_serial;

sprig_status sprig_ns_serial_init(sprig_ns_serial *s, const sprig_ns_serial_cfg *cfg);
/* Detaches from the node, frees the frames in progress. Idempotent. */
void sprig_ns_serial_deinit(sprig_ns_serial *s);
/* Received bytes. */
void sprig_ns_serial_input(sprig_ns_serial *s, const uint8_t *data, size_t len);
/* The byte stream can take more: resume transmitting. */
void sprig_ns_serial_writable(sprig_ns_serial *s);
/* True while a frame is being transmitted or packets wait. */
bool sprig_ns_serial_tx_busy(const sprig_ns_serial *s);

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_NS_SERIAL_H */
