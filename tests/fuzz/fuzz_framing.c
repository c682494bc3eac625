/*
 * fuzz_framing.c — the SEQPACKET-over-STREAM framing under hostile bytes, two ways:
 *
 *   1. the pure decoder, consuming frames from the buffer like a receiver until it needs more
 *      or refuses a length (invariants checked on every answer);
 *   2. the decorator's stateful receive path: the bytes are written into the raw end of an
 *      in-memory STREAM pair in chunks whose sizes come from the input, and the framed end is
 *      drained after each chunk. Every message it delivers is compared with what the pure
 *      decoder finds at the same place in the stream, and every terminal status with what the
 *      stream says it must be (RESOURCE_EXHAUSTED, DATA_LOSS, OUT_OF_RANGE).
 *
 * Input: [flags][k][k chunk sizes][stream bytes...]
 *   flags bit 0-1: framing max (1, 8, 100, 1024)   bit 2: recv first with a too-small buffer
 *         bit 3: the writer shuts down at the end     bit 4: staging buffer exactly max + 4
 *         bit 5: drain only when the writer blocks (lets many frames pile up per inner read)
 *   chunk sizes are used in turn, cyclically; 0 means "drain now, then write 1 byte".
 * A violated invariant aborts (libFuzzer reports it as a crash).
 */
#include "fuzz.h"

/* framing.h names the struct in a parameter list before defining it; see framing.c. */
struct sprig_framed_sock;

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sprig/framing.h"
#include "sprig/mem.h"

#define HDR SPRIG_FRAMING_HEADER_LEN
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

enum { MEM_MAX = 1024, NBUFS = 32, STREAM_MAX = 1 << 16, MAX_SPINS = 10000 };
#define BUF_SIZE (MEM_MAX + SPRIG_CONFIG_SOCK_HEADROOM)

/* ---- 1. the pure decoder ----------------------------------------------------------------- */

static void fuzz_decoder(const uint8_t *data, size_t size, size_t max)
{
    sprig_frame_decoder d;
    sprig_frame_decoder_init(&d, max);
    size_t pos = 0;
    for (;;) {
        size_t off = 0;
        size_t len = 0;
        size_t frame = 0;
        size_t left = size - pos;
        sprig_status st = sprig_frame_decode(&d, data + pos, left, &off, &len, &frame);
        if (st == SPRIG_STATUS_OK) {
            CHECK(off == HDR && len <= max && frame == HDR + len && frame <= left);
            pos += frame;
            continue;
        }
        if (st == SPRIG_STATUS_UNAVAILABLE) {
            CHECK(frame > left && frame >= HDR);
            return;
        }
        CHECK(st == SPRIG_STATUS_RESOURCE_EXHAUSTED && left >= HDR && len > max);
        return;
    }
}

/* ---- 2. the decorator over an in-memory stream ------------------------------------------- */

typedef struct harness {
    sprig_fake_clock fc;
    sprig_loop loop;
    sprig_mem_backend m;
    sprig_mem_sock socks[2];
    sprig_buf_pool pool;
    sprig_buf bufs[NBUFS];
    uint8_t pool_mem[NBUFS * BUF_SIZE] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
    sprig_framed_sock f;
    uint8_t rx[2 * MEM_MAX + HDR];
    uint8_t tx[MEM_MAX + HDR];
    uint8_t msg[MEM_MAX];
    sprig_sock *b; /* the raw writer */
    /* the reference: every byte written, and how far the pure decoder has consumed it */
    uint8_t stream[STREAM_MAX];
    size_t stream_len;
    size_t ref_pos;
    sprig_frame_decoder ref;
    size_t max;
    bool small_cap;
    bool ended; /* the writer shut down */
    bool dead;  /* the framed end returned a terminal status */
    sprig_status final;
    unsigned closed_events;
    sprig_status closed_status;
} harness;

static harness H; /* too big for the stack; reinitialised for every input */

static void on_event(sprig_sock *s, sprig_sock_event ev, sprig_status st, void *user)
{
    harness *h = user;
    (void)s;
    if (ev == SPRIG_SOCK_EV_CLOSED) {
        h->closed_events++;
        h->closed_status = st;
    }
}

static void poll_loop(harness *h)
{
    for (int i = 0; i < 4; i++) {
        sprig_loop_poll(&h->loop, h->fc.now);
    }
}

/* What the reference decoder says about the unconsumed rest of the stream. */
static sprig_status ref_next(harness *h, size_t *off, size_t *len, size_t *frame)
{
    return sprig_frame_decode(&h->ref, h->stream + h->ref_pos, h->stream_len - h->ref_pos, off, len,
                              frame);
}

static void check_message(harness *h, size_t got_len)
{
    size_t off = 0;
    size_t len = 0;
    size_t frame = 0;
    CHECK(ref_next(h, &off, &len, &frame) == SPRIG_STATUS_OK);
    CHECK(len == got_len && memcmp(h->msg, h->stream + h->ref_pos + off, len) == 0);
    h->ref_pos += frame;
}

/* The framed end reported a terminal status: it must be the one the stream calls for. */
static void check_terminal(harness *h, sprig_status st)
{
    size_t off = 0;
    size_t len = 0;
    size_t frame = 0;
    sprig_status ref = ref_next(h, &off, &len, &frame);
    h->dead = true;
    h->final = st;
    switch (st) {
    case SPRIG_STATUS_RESOURCE_EXHAUSTED:
        CHECK(ref == SPRIG_STATUS_RESOURCE_EXHAUSTED);
        break;
    case SPRIG_STATUS_DATA_LOSS:
        CHECK(h->ended && ref == SPRIG_STATUS_UNAVAILABLE && h->ref_pos < h->stream_len);
        break;
    case SPRIG_STATUS_OUT_OF_RANGE:
        CHECK(h->ended && h->ref_pos == h->stream_len);
        break;
    default:
        CHECK(false);
    }
}

/* Read every message the framed end will give now. */
static void drain(harness *h)
{
    poll_loop(h);
    while (!h->dead) {
        size_t len = 0;
        size_t cap = h->small_cap ? h->max / 2 : h->max;
        sprig_status st = sprig_sock_recv(&h->f.sock, h->msg, cap, &len);
        if (st == SPRIG_STATUS_RESOURCE_EXHAUSTED && h->f.sock.state != SPRIG_SOCK_STATE_CLOSED) {
            CHECK(len > cap && len <= h->max); /* our buffer was small; the message stayed */
            st = sprig_sock_recv(&h->f.sock, h->msg, h->max, &len);
        }
        if (st == SPRIG_STATUS_OK) {
            check_message(h, len);
            continue;
        }
        if (st == SPRIG_STATUS_UNAVAILABLE) {
            size_t off = 0;
            size_t frame = 0;
            CHECK(ref_next(h, &off, &len, &frame) == SPRIG_STATUS_UNAVAILABLE);
            return;
        }
        check_terminal(h, st);
    }
}

static void write_bytes(harness *h, const uint8_t *p, size_t n, bool drain_each)
{
    size_t done = 0;
    for (int spins = 0; done < n && !h->dead; spins++) {
        CHECK(spins < MAX_SPINS); /* draining must always make room */
        size_t sent = 0;
        sprig_status st = sprig_sock_send(h->b, p + done, n - done, &sent);
        if (st == SPRIG_STATUS_OK) {
            memcpy(h->stream + h->stream_len, p + done, sent);
            h->stream_len += sent;
            done += sent;
            continue;
        }
        CHECK(st == SPRIG_STATUS_UNAVAILABLE);
        drain(h); /* the window is full: the reader makes room */
    }
    if (drain_each) {
        drain(h);
    }
}

static void harness_init(harness *h, uint8_t flags)
{
    static const size_t maxes[] = {1, 8, 100, MEM_MAX};
    memset(h, 0, sizeof(*h));
    h->max = maxes[flags & 3u];
    h->small_cap = (flags & 4u) != 0;
    sprig_fake_clock_init(&h->fc, 0);
    sprig_loop_cfg lc = {.clock = h->fc.clock};
    CHECK(sprig_loop_init(&h->loop, &lc) == SPRIG_STATUS_OK);
    CHECK(sprig_buf_pool_init(&h->pool, h->bufs, h->pool_mem, NBUFS, BUF_SIZE) == SPRIG_STATUS_OK);
    sprig_mem_cfg mc = {.max_message_size = MEM_MAX};
    CHECK(sprig_mem_backend_init(&h->m, &h->loop, &mc, h->socks, 2, &h->pool) == SPRIG_STATUS_OK);
    sprig_sock *a = NULL;
    CHECK(sprig_mem_pair(&h->m, SPRIG_SOCK_STREAM, &a, &h->b) == SPRIG_STATUS_OK);
    sprig_framing_cfg fc = {
        .max_message_size = h->max,
        .rx_mem = h->rx,
        .rx_cap = (flags & 16u) ? h->max + HDR : sizeof(h->rx),
        .tx_mem = h->tx,
        .tx_cap = sizeof(h->tx),
    };
    CHECK(sprig_framing_init(&h->f, a, &fc) == SPRIG_STATUS_OK);
    sprig_sock_set_callback(&h->f.sock, on_event, h);
    sprig_frame_decoder_init(&h->ref, h->max);
}

static void harness_finish(harness *h)
{
    if (h->ended) {
        CHECK(sprig_sock_shutdown(h->b) == SPRIG_STATUS_OK);
        drain(h);
        CHECK(h->dead); /* after the end, recv must reach a terminal status */
    }
    poll_loop(h);
    CHECK(h->closed_events <= 1);
    if (h->dead && h->final != SPRIG_STATUS_OUT_OF_RANGE) {
        CHECK(h->closed_events == 1 && h->closed_status == h->final);
    }
    sprig_sock_close(&h->f.sock);
    sprig_sock_close(h->b);
    poll_loop(h);
    CHECK(sprig_mem_backend_in_use(&h->m) == 0);
    CHECK(sprig_buf_pool_available(&h->pool) == NBUFS);
    sprig_mem_backend_deinit(&h->m);
    sprig_loop_deinit(&h->loop);
}

static void fuzz_decorator(uint8_t flags, const uint8_t *sizes, size_t k, const uint8_t *data,
                           size_t size)
{
    harness *h = &H;
    harness_init(h, flags);
    bool drain_each = (flags & 32u) == 0;
    size_t pos = 0;
    for (size_t i = 0; pos < size && !h->dead; i++) {
        size_t n = k > 0 ? sizes[i % k] : size - pos;
        if (n == 0) {
            drain(h);
            n = 1;
        }
        if (n > size - pos) {
            n = size - pos;
        }
        write_bytes(h, data + pos, n, drain_each);
        pos += n;
    }
    drain(h);
    h->ended = (flags & 8u) != 0;
    harness_finish(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    uint8_t flags = data[0];
    size_t k = data[1];
    if (k > size - 2) {
        k = size - 2;
    }
    const uint8_t *sizes = data + 2;
    const uint8_t *stream = data + 2 + k;
    size_t len = size - 2 - k;
    if (len > STREAM_MAX) {
        len = STREAM_MAX;
    }
    static const size_t maxes[] = {0, 8, 100, MEM_MAX, SIZE_MAX};
    fuzz_decoder(stream, len, maxes[flags % 5u]);
    fuzz_decorator(flags, sizes, k, stream, len);
    return 0;
}
