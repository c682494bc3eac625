/*
 * test_framing.c — the SEQPACKET-over-STREAM framing: the pure decoder, and the decorator over
 * (1) a scripted fake STREAM socket that makes every branch reachable on demand, and (2) the
 * in-memory backend, plain and behind the fault-injecting wrapper (short writes, stalls).
 * Time comes from a fake clock; the loop is driven with sprig_loop_poll.
 */
#include "support.h"

/* framing.h names the struct in a parameter list before defining it; see framing.c. */
struct sprig_framed_sock;

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sprig/fault.h"
#include "sprig/framing.h"
#include "sprig/mem.h"

#define HDR SPRIG_FRAMING_HEADER_LEN

/* ==== the pure decoder ======================================================================== */

static sprig_status decode(size_t max, const uint8_t *data, size_t len, size_t *msg_len,
                           size_t *frame_len)
{
    sprig_frame_decoder d;
    size_t off = 99;
    sprig_frame_decoder_init(&d, max);
    sprig_status st = sprig_frame_decode(&d, data, len, &off, msg_len, frame_len);
    if (st == SPRIG_STATUS_OK) {
        assert_int_equal(off, HDR);
    }
    return st;
}

/* A heap copy of exactly len bytes, so ASan sees any read past the end. */
static uint8_t *exact(const uint8_t *data, size_t len)
{
    uint8_t *p = malloc(len > 0 ? len : 1);
    assert_non_null(p);
    if (len > 0) {
        memcpy(p, data, len);
    }
    return p;
}

static void test_framing_encode_header_big_endian(void **state)
{
    (void)state;
    uint8_t h[HDR];
    sprig_frame_encode_header(h, 0x01020304u);
    assert_memory_equal(h, "\x01\x02\x03\x04", HDR);
    sprig_frame_encode_header(h, 0);
    assert_memory_equal(h, "\x00\x00\x00\x00", HDR);
    sprig_frame_encode_header(h, 0xFFFFFFFFu);
    assert_memory_equal(h, "\xff\xff\xff\xff", HDR);
}

static void test_framing_decode_short_header(void **state)
{
    (void)state;
    const uint8_t frame[] = {0, 0, 0, 2, 'h', 'i'};
    size_t msg_len = 7;
    size_t frame_len = 7;
    assert_int_equal(decode(100, NULL, 0, &msg_len, &frame_len), SPRIG_STATUS_UNAVAILABLE);
    assert_int_equal(frame_len, HDR);
    for (size_t len = 1; len < HDR; len++) {
        uint8_t *p = exact(frame, len);
        assert_int_equal(decode(100, p, len, &msg_len, &frame_len), SPRIG_STATUS_UNAVAILABLE);
        assert_int_equal(frame_len, HDR);
        free(p);
    }
}

static void test_framing_decode_zero_length(void **state)
{
    (void)state;
    uint8_t *p = exact((const uint8_t *)"\0\0\0\0", 4);
    size_t msg_len = 7;
    size_t frame_len = 0;
    assert_int_equal(decode(100, p, 4, &msg_len, &frame_len), SPRIG_STATUS_OK);
    assert_int_equal(msg_len, 0);
    assert_int_equal(frame_len, HDR);
    /* A decoder whose max is 0 still takes empty messages, nothing else. */
    assert_int_equal(decode(0, p, 4, &msg_len, &frame_len), SPRIG_STATUS_OK);
    free(p);
}

static void test_framing_decode_exact_max_and_one_more(void **state)
{
    (void)state;
    enum { MAX = 300 };
    uint8_t buf[HDR + MAX + 1] = {0};
    size_t msg_len = 0;
    size_t frame_len = 0;
    sprig_frame_encode_header(buf, MAX);
    uint8_t *p = exact(buf, HDR + MAX);
    assert_int_equal(decode(MAX, p, HDR + MAX, &msg_len, &frame_len), SPRIG_STATUS_OK);
    assert_int_equal(msg_len, MAX);
    assert_int_equal(frame_len, HDR + MAX);
    free(p);
    /* max + 1 is refused from the header alone, before any body arrives. */
    sprig_frame_encode_header(buf, MAX + 1);
    p = exact(buf, HDR);
    assert_int_equal(decode(MAX, p, HDR, &msg_len, &frame_len), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(msg_len, MAX + 1);
    free(p);
    sprig_frame_encode_header(buf, 0xFFFFFFFFu);
    p = exact(buf, HDR);
    assert_int_equal(decode(MAX, p, HDR, &msg_len, &frame_len), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    free(p);
}

static void test_framing_decode_truncated_body(void **state)
{
    (void)state;
    const uint8_t frame[] = {0, 0, 0, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    size_t msg_len = 0;
    size_t frame_len = 0;
    for (size_t len = HDR; len < sizeof(frame); len++) {
        uint8_t *p = exact(frame, len);
        assert_int_equal(decode(100, p, len, &msg_len, &frame_len), SPRIG_STATUS_UNAVAILABLE);
        assert_int_equal(frame_len, sizeof(frame)); /* known once the header is complete */
        assert_int_equal(msg_len, 10);
        free(p);
    }
    uint8_t *p = exact(frame, sizeof(frame));
    assert_int_equal(decode(100, p, sizeof(frame), &msg_len, &frame_len), SPRIG_STATUS_OK);
    free(p);
}

static void test_framing_decode_header_split_across_reads(void **state)
{
    (void)state;
    /* Bytes arrive one at a time into an accumulating buffer, as from a 1-byte stream. */
    const uint8_t wire[] = {0, 0, 1, 0}; /* 256 */
    uint8_t acc[HDR + 256];
    size_t have = 0;
    size_t msg_len = 0;
    size_t frame_len = 0;
    memset(acc, 0xAB, sizeof(acc));
    for (size_t i = 0; i < HDR; i++) {
        acc[have++] = wire[i];
        sprig_status st = decode(1000, acc, have, &msg_len, &frame_len);
        assert_int_equal(st, SPRIG_STATUS_UNAVAILABLE);
        assert_int_equal(frame_len, i + 1 < HDR ? HDR : HDR + 256);
    }
    have = sizeof(acc);
    assert_int_equal(decode(1000, acc, have, &msg_len, &frame_len), SPRIG_STATUS_OK);
    assert_int_equal(msg_len, 256);
}

static void test_framing_decode_many_frames_in_one_buffer(void **state)
{
    (void)state;
    static const size_t lens[] = {0, 1, 5, 0, 300, 2, 4};
    uint8_t buf[1024];
    size_t n = 0;
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        sprig_frame_encode_header(buf + n, (uint32_t)lens[i]);
        n += HDR;
        memset(buf + n, (int)i, lens[i]);
        n += lens[i];
    }
    /* A tail: half a header. */
    buf[n++] = 0;
    buf[n++] = 0;
    uint8_t *p = exact(buf, n);
    sprig_frame_decoder d;
    sprig_frame_decoder_init(&d, 1000);
    size_t pos = 0;
    size_t count = 0;
    for (;;) {
        size_t off = 0;
        size_t len = 0;
        size_t frame = 0;
        sprig_status st = sprig_frame_decode(&d, p + pos, n - pos, &off, &len, &frame);
        if (st != SPRIG_STATUS_OK) {
            assert_int_equal(st, SPRIG_STATUS_UNAVAILABLE);
            break;
        }
        assert_int_equal(len, lens[count]);
        for (size_t j = 0; j < len; j++) {
            assert_int_equal(p[pos + off + j], count);
        }
        pos += frame;
        count++;
    }
    assert_int_equal(count, sizeof(lens) / sizeof(lens[0]));
    assert_int_equal(n - pos, 2);
    free(p);
}

static void test_framing_decode_invalid_arguments(void **state)
{
    (void)state;
    sprig_frame_decoder d;
    size_t a = 0;
    size_t b = 0;
    size_t c = 0;
    const uint8_t x[4] = {0};
    sprig_frame_decoder_init(&d, 10);
    sprig_frame_decoder_init(NULL, 10); /* ignored */
    assert_int_equal(sprig_frame_decode(NULL, x, 4, &a, &b, &c), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_frame_decode(&d, NULL, 4, &a, &b, &c), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_frame_decode(&d, x, 4, NULL, &b, &c), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_frame_decode(&d, x, 4, &a, NULL, &c), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_frame_decode(&d, x, 4, &a, &b, NULL), SPRIG_STATUS_INVALID_ARGUMENT);
}

static void test_framing_decode_huge_max_does_not_overflow(void **state)
{
    (void)state;
    /* With the largest possible max, the biggest header still yields a sane frame length. */
    uint8_t *p = exact((const uint8_t *)"\xff\xff\xff\xff", 4);
    size_t msg_len = 0;
    size_t frame_len = 0;
    assert_int_equal(decode(SIZE_MAX, p, 4, &msg_len, &frame_len), SPRIG_STATUS_UNAVAILABLE);
    assert_int_equal(msg_len, 0xFFFFFFFFu);
    assert_true(frame_len > msg_len || SIZE_MAX == 0xFFFFFFFFu);
    free(p);
}

/* ==== a scripted fake STREAM socket =========================================================== */

enum { FAKE_IO_CAP = 16384 };

typedef struct fake {
    sprig_sock sock;
    uint8_t in[FAKE_IO_CAP]; /* what our recv will hand out */
    size_t in_len;
    size_t in_off;
    size_t chunk;             /* bytes per recv at most; 0: as many as fit */
    sprig_status in_end;      /* answer once `in` is drained: UNAVAILABLE, OUT_OF_RANGE, ... */
    uint8_t out[FAKE_IO_CAP]; /* what sends delivered */
    size_t out_len;
    size_t budget;          /* bytes sends still take before UNAVAILABLE */
    sprig_status send_err;  /* OK, or what every send answers */
    const void *last_send;  /* data pointer of the last send/send_buf */
    const void *first_send; /* data pointer of the first send/send_buf */
    unsigned sends;
    unsigned iov_sends;
    unsigned buf_sends;
    unsigned recvs;
    unsigned shutdowns;
    unsigned closes;
} fake;

static fake *fake_of(sprig_sock *s)
{
    return (fake *)s;
}

static size_t take(fake *fk, size_t want)
{
    size_t n = want < fk->budget ? want : fk->budget;
    if (n > FAKE_IO_CAP - fk->out_len) {
        n = FAKE_IO_CAP - fk->out_len;
    }
    return n;
}

static sprig_status fake_send(sprig_sock *s, const void *data, size_t len, const sprig_addr *to,
                              size_t *out_sent)
{
    fake *fk = fake_of(s);
    (void)to;
    fk->sends++;
    fk->last_send = data;
    if (fk->first_send == NULL) {
        fk->first_send = data;
    }
    if (fk->send_err != SPRIG_STATUS_OK) {
        return fk->send_err;
    }
    size_t n = take(fk, len);
    if (n == 0) {
        return SPRIG_STATUS_UNAVAILABLE;
    }
    memcpy(fk->out + fk->out_len, data, n);
    fk->out_len += n;
    fk->budget -= n;
    *out_sent = n;
    return SPRIG_STATUS_OK;
}

static sprig_status fake_send_iov(sprig_sock *s, const sprig_iov *iov, size_t iovcnt,
                                  size_t *out_sent)
{
    fake *fk = fake_of(s);
    fk->iov_sends++;
    if (fk->send_err != SPRIG_STATUS_OK) {
        return fk->send_err;
    }
    size_t total = 0;
    for (size_t i = 0; i < iovcnt; i++) {
        size_t n = take(fk, iov[i].len);
        memcpy(fk->out + fk->out_len, iov[i].base, n);
        fk->out_len += n;
        fk->budget -= n;
        total += n;
        if (n < iov[i].len) {
            break;
        }
    }
    if (total == 0) {
        return SPRIG_STATUS_UNAVAILABLE;
    }
    *out_sent = total;
    return SPRIG_STATUS_OK;
}

/* All or nothing, like a backend that queues the buffer itself. */
static sprig_status fake_send_buf(sprig_sock *s, sprig_buf *buf, const sprig_addr *to)
{
    fake *fk = fake_of(s);
    (void)to;
    fk->buf_sends++;
    fk->last_send = sprig_buf_data(buf);
    if (fk->send_err != SPRIG_STATUS_OK) {
        return fk->send_err;
    }
    if (take(fk, buf->len) < buf->len) {
        return SPRIG_STATUS_UNAVAILABLE;
    }
    memcpy(fk->out + fk->out_len, sprig_buf_data(buf), buf->len);
    fk->out_len += buf->len;
    fk->budget -= buf->len;
    sprig_buf_free(buf);
    return SPRIG_STATUS_OK;
}

static sprig_status fake_recv(sprig_sock *s, void *buf, size_t cap, size_t *out_len,
                              sprig_addr *from)
{
    fake *fk = fake_of(s);
    (void)from;
    fk->recvs++;
    size_t n = fk->in_len - fk->in_off;
    if (n == 0) {
        return fk->in_end;
    }
    if (n > cap) {
        n = cap;
    }
    if (fk->chunk != 0 && n > fk->chunk) {
        n = fk->chunk;
    }
    memcpy(buf, fk->in + fk->in_off, n);
    fk->in_off += n;
    *out_len = n;
    return SPRIG_STATUS_OK;
}

static sprig_status fake_shutdown(sprig_sock *s)
{
    fake_of(s)->shutdowns++;
    return SPRIG_STATUS_OK;
}

static void fake_close(sprig_sock *s)
{
    fake_of(s)->closes++;
}

static const sprig_sock_ops fake_ops_plain = {
    .name = "fake-plain",
    .send = fake_send,
    .recv = fake_recv,
    .shutdown = fake_shutdown,
    .close = fake_close,
};
static const sprig_sock_ops fake_ops_iov = {
    .name = "fake-iov",
    .send = fake_send,
    .send_iov = fake_send_iov,
    .recv = fake_recv,
    .shutdown = fake_shutdown,
    .close = fake_close,
};
static const sprig_sock_ops fake_ops_buf = {
    .name = "fake-buf",
    .send = fake_send,
    .send_buf = fake_send_buf,
    .recv = fake_recv,
    .shutdown = fake_shutdown,
    .close = fake_close,
};

/* Append one frame (header + payload of `len` bytes of `fill`) to the fake's input. */
static void feed_frame(fake *fk, size_t len, uint8_t fill)
{
    assert_true(fk->in_len + HDR + len <= FAKE_IO_CAP);
    sprig_frame_encode_header(fk->in + fk->in_len, (uint32_t)len);
    memset(fk->in + fk->in_len + HDR, fill, len);
    fk->in_len += HDR + len;
}

static void feed_bytes(fake *fk, const void *data, size_t len)
{
    assert_true(fk->in_len + len <= FAKE_IO_CAP);
    memcpy(fk->in + fk->in_len, data, len);
    fk->in_len += len;
}

/* ==== fixture ================================================================================= */

enum { MAXMSG = 512, POOL_BUFS = 8, POOL_BUF_SIZE = 1024, INNER_HEADROOM = 8 };

typedef struct evlog {
    unsigned n[5]; /* by sprig_sock_event */
    sprig_status closed_status;
    sprig_sock_event order[32]; /* first events, in order */
    unsigned count;
    int close_on; /* close the socket inside this event's callback */
    unsigned released;
} evlog;

typedef struct fx {
    sprig_fake_clock fc;
    sprig_loop loop;
    sprig_buf_pool pool;
    sprig_buf bufs[POOL_BUFS];
    uint8_t pool_mem[POOL_BUFS * POOL_BUF_SIZE] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
    fake fk;
    sprig_framed_sock f;
    uint8_t rx[4096];
    uint8_t tx[MAXMSG + HDR];
    evlog ev;
    bool closed; /* test closed the framed socket already */
} fx;

static void user_cb(sprig_sock *s, sprig_sock_event ev, sprig_status st, void *user)
{
    evlog *log = user;
    log->n[ev]++;
    if (log->count < 32) {
        log->order[log->count] = ev;
    }
    log->count++;
    if (ev == SPRIG_SOCK_EV_CLOSED) {
        log->closed_status = st;
    }
    if (log->close_on == (int)ev) {
        sprig_sock_close(s);
    }
}

static void on_release(sprig_framed_sock *f, void *ctx)
{
    (void)f;
    ((evlog *)ctx)->released++;
}

static void pump(sprig_loop *loop, sprig_fake_clock *fc)
{
    for (int i = 0; i < 8; i++) {
        sprig_loop_poll(loop, fc->now);
    }
}

static sprig_framing_cfg fx_cfg(fx *x, size_t rx_cap)
{
    sprig_framing_cfg cfg = {
        .max_message_size = MAXMSG,
        .rx_mem = x->rx,
        .rx_cap = rx_cap,
        .tx_mem = x->tx,
        .tx_cap = sizeof(x->tx),
        .on_release = on_release,
        .release_ctx = &x->ev,
    };
    return cfg;
}

static fx *fx_new(const sprig_sock_ops *ops, sprig_sock_state inner_state, size_t rx_cap)
{
    fx *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    sprig_fake_clock_init(&x->fc, 1000);
    sprig_loop_cfg lc = {.clock = x->fc.clock};
    assert_int_equal(sprig_loop_init(&x->loop, &lc), SPRIG_STATUS_OK);
    assert_int_equal(sprig_buf_pool_init(&x->pool, x->bufs, x->pool_mem, POOL_BUFS, POOL_BUF_SIZE),
                     SPRIG_STATUS_OK);
    sprig__sock_init(&x->fk.sock, ops, &x->loop, SPRIG_SOCK_STREAM, inner_state);
    x->fk.sock.tx_pool = &x->pool;
    x->fk.sock.headroom = INNER_HEADROOM;
    x->fk.in_end = SPRIG_STATUS_UNAVAILABLE;
    x->fk.budget = SIZE_MAX;
    x->ev.close_on = -1;
    sprig_framing_cfg cfg = fx_cfg(x, rx_cap);
    assert_int_equal(sprig_framing_init(&x->f, &x->fk.sock, &cfg), SPRIG_STATUS_OK);
    sprig_sock_set_callback(&x->f.sock, user_cb, &x->ev);
    pump(&x->loop, &x->fc);
    /* An OPEN inner socket earns one READABLE at wrap time (bytes may already be there). */
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_READABLE], inner_state == SPRIG_SOCK_STATE_OPEN);
    memset(&x->ev.n, 0, sizeof(x->ev.n));
    x->ev.count = 0;
    return x;
}

/* Close (unless the test did) and check nothing leaked and the release ran exactly once. */
static void fx_free(fx *x)
{
    if (!x->closed) {
        sprig_sock_close(&x->f.sock);
    }
    pump(&x->loop, &x->fc);
    assert_int_equal(x->ev.released, 1);
    assert_int_equal(x->fk.closes, 1);
    assert_int_equal(sprig_buf_pool_available(&x->pool), POOL_BUFS);
    assert_null(x->loop.tasks_head);
    sprig_loop_deinit(&x->loop);
    free(x);
}

static sprig_sock *fs(fx *x)
{
    return &x->f.sock;
}

/* Decode the fake's output as frames; check it is exactly the expected sequence. */
static void expect_out_frames(const fake *fk, const size_t *lens, const uint8_t *fills, size_t n)
{
    sprig_frame_decoder d;
    sprig_frame_decoder_init(&d, MAXMSG);
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        size_t off = 0;
        size_t len = 0;
        size_t frame = 0;
        assert_int_equal(
            sprig_frame_decode(&d, fk->out + pos, fk->out_len - pos, &off, &len, &frame),
            SPRIG_STATUS_OK);
        assert_int_equal(len, lens[i]);
        for (size_t j = 0; j < len; j++) {
            assert_int_equal(fk->out[pos + off + j], fills[i]);
        }
        pos += frame;
    }
    assert_int_equal(pos, fk->out_len);
}

/* ==== decorator: init ========================================================================= */

static void test_framing_init_rejects_bad_arguments(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    sprig_framed_sock g;
    fake other;
    sprig_framing_cfg cfg = fx_cfg(x, MAXMSG + HDR);
    assert_int_equal(sprig_framing_init(NULL, &x->fk.sock, &cfg), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_framing_init(&g, NULL, &cfg), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_framing_init(&g, &x->fk.sock, NULL), SPRIG_STATUS_INVALID_ARGUMENT);
    cfg.rx_cap = MAXMSG + HDR - 1;
    assert_int_equal(sprig_framing_init(&g, &x->fk.sock, &cfg), SPRIG_STATUS_INVALID_ARGUMENT);
    cfg = fx_cfg(x, MAXMSG + HDR);
    cfg.tx_cap = MAXMSG + HDR - 1;
    assert_int_equal(sprig_framing_init(&g, &x->fk.sock, &cfg), SPRIG_STATUS_INVALID_ARGUMENT);
    cfg = fx_cfg(x, MAXMSG + HDR);
    cfg.rx_mem = NULL;
    assert_int_equal(sprig_framing_init(&g, &x->fk.sock, &cfg), SPRIG_STATUS_INVALID_ARGUMENT);
    cfg = fx_cfg(x, MAXMSG + HDR);
    cfg.tx_mem = NULL;
    assert_int_equal(sprig_framing_init(&g, &x->fk.sock, &cfg), SPRIG_STATUS_INVALID_ARGUMENT);
    cfg = fx_cfg(x, MAXMSG + HDR);
    cfg.max_message_size = 0; /* default max, and the buffers are far too small for it */
    assert_int_equal(sprig_framing_init(&g, &x->fk.sock, &cfg), SPRIG_STATUS_INVALID_ARGUMENT);
    if (SIZE_MAX > 0xFFFFFFFFu) {
        cfg = fx_cfg(x, SIZE_MAX);
        cfg.tx_cap = SIZE_MAX;
        cfg.max_message_size = (size_t)1 << 16 << 16; /* does not fit the 32-bit header */
        assert_int_equal(sprig_framing_init(&g, &x->fk.sock, &cfg), SPRIG_STATUS_INVALID_ARGUMENT);
    }
    /* Our 4 bytes must fit on top of the inner headroom. */
    cfg = fx_cfg(x, MAXMSG + HDR);
    x->fk.sock.headroom = UINT16_MAX - HDR + 1;
    assert_int_equal(sprig_framing_init(&g, &x->fk.sock, &cfg), SPRIG_STATUS_INVALID_ARGUMENT);
    x->fk.sock.headroom = INNER_HEADROOM;
    /* Not a STREAM, or not CONNECTING/OPEN. */
    sprig__sock_init(&other.sock, &fake_ops_plain, &x->loop, SPRIG_SOCK_SEQPACKET,
                     SPRIG_SOCK_STATE_OPEN);
    cfg = fx_cfg(x, MAXMSG + HDR);
    assert_int_equal(sprig_framing_init(&g, &other.sock, &cfg), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig__sock_init(&other.sock, &fake_ops_plain, &x->loop, SPRIG_SOCK_STREAM,
                     SPRIG_SOCK_STATE_LISTENING);
    assert_int_equal(sprig_framing_init(&g, &other.sock, &cfg), SPRIG_STATUS_FAILED_PRECONDITION);
    sprig__sock_init(&other.sock, &fake_ops_plain, &x->loop, SPRIG_SOCK_STREAM,
                     SPRIG_SOCK_STATE_CLOSED);
    assert_int_equal(sprig_framing_init(&g, &other.sock, &cfg), SPRIG_STATUS_FAILED_PRECONDITION);
    fx_free(x);
}

static void test_framing_init_presents_seqpacket(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_CONNECTING, sizeof(((fx *)0)->rx));
    assert_int_equal(sprig_sock_type_of(fs(x)), SPRIG_SOCK_SEQPACKET);
    assert_int_equal(sprig_sock_max_message_size(fs(x)), MAXMSG);
    assert_string_equal(fs(x)->ops->name, "framing");
    assert_ptr_equal(fs(x)->tx_pool, &x->pool);
    assert_int_equal(fs(x)->headroom, INNER_HEADROOM + HDR);
    assert_int_equal(fs(x)->state, SPRIG_SOCK_STATE_CONNECTING);
    /* Sending while connecting waits for CONNECTED, then WRITABLE. */
    assert_int_equal(sprig_sock_send(fs(x), "x", 1, NULL), SPRIG_STATUS_UNAVAILABLE);
    sprig__sock_event(&x->fk.sock, SPRIG_SOCK_EV_CONNECTED, SPRIG_STATUS_OK);
    assert_int_equal(fs(x)->state, SPRIG_SOCK_STATE_OPEN);
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_CONNECTED], 1);
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_WRITABLE], 1);
    assert_int_equal(x->ev.order[0], SPRIG_SOCK_EV_CONNECTED);
    fx_free(x);
}

static void test_framing_dial_failure_is_closed(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_CONNECTING, sizeof(((fx *)0)->rx));
    sprig__sock_event(&x->fk.sock, SPRIG_SOCK_EV_CLOSED, SPRIG_STATUS_UNAVAILABLE);
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_CLOSED], 1);
    assert_int_equal(x->ev.closed_status, SPRIG_STATUS_UNAVAILABLE);
    assert_int_equal(fs(x)->state, SPRIG_SOCK_STATE_CLOSED);
    fx_free(x);
}

/* ==== decorator: receive ====================================================================== */

static void test_framing_recv_many_messages_one_inner_read(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    for (unsigned i = 0; i < 50; i++) {
        feed_frame(&x->fk, i % 7, (uint8_t)i);
    }
    x->fk.recvs = 0;
    sprig__sock_event(&x->fk.sock, SPRIG_SOCK_EV_READABLE, SPRIG_STATUS_OK);
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_READABLE], 1);
    uint8_t buf[MAXMSG];
    size_t len = 0;
    for (unsigned i = 0; i < 50; i++) {
        assert_int_equal(sprig_sock_recv(fs(x), buf, sizeof(buf), &len), SPRIG_STATUS_OK);
        assert_int_equal(len, i % 7);
        for (size_t j = 0; j < len; j++) {
            assert_int_equal(buf[j], (uint8_t)i);
        }
    }
    assert_int_equal(x->fk.recvs, 1); /* all 50 came in with a single inner read */
    assert_int_equal(sprig_sock_recv(fs(x), buf, sizeof(buf), &len), SPRIG_STATUS_UNAVAILABLE);
    assert_int_equal(len, 0);
    fx_free(x);
}

static void test_framing_recv_small_buffer_keeps_message(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    feed_frame(&x->fk, 100, 0x5A);
    feed_frame(&x->fk, 0, 0);
    uint8_t buf[MAXMSG];
    size_t len = 0;
    assert_int_equal(sprig_sock_recv(fs(x), buf, 99, &len), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(len, 100);
    assert_int_equal(fs(x)->state, SPRIG_SOCK_STATE_OPEN); /* not fatal */
    assert_int_equal(sprig_sock_recv(fs(x), buf, 100, &len), SPRIG_STATUS_OK);
    assert_int_equal(len, 100);
    assert_int_equal(buf[0], 0x5A);
    assert_int_equal(buf[99], 0x5A);
    /* A zero-length message fits a zero-length buffer. */
    assert_int_equal(sprig_sock_recv(fs(x), NULL, 0, &len), SPRIG_STATUS_OK);
    assert_int_equal(len, 0);
    assert_int_equal(sprig_sock_recv(fs(x), buf, sizeof(buf), &len), SPRIG_STATUS_UNAVAILABLE);
    fx_free(x);
}

/* Tiny inner reads (1..7 bytes): headers and bodies split everywhere; a staging buffer of
 * exactly max + 4 forces compaction at every frame boundary. */
static void test_framing_recv_split_reads_and_compaction(void **state)
{
    (void)state;
    for (size_t chunk = 1; chunk <= 7; chunk++) {
        fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_OPEN, MAXMSG + HDR);
        static const size_t lens[] = {3, MAXMSG, 0, 1, MAXMSG - 1, 17, MAXMSG, 2};
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
            feed_frame(&x->fk, lens[i], (uint8_t)(i + 1));
        }
        x->fk.chunk = chunk;
        uint8_t buf[MAXMSG];
        size_t got = 0;
        size_t len = 0;
        for (;;) {
            sprig_status st = sprig_sock_recv(fs(x), buf, sizeof(buf), &len);
            if (st == SPRIG_STATUS_UNAVAILABLE) {
                break;
            }
            assert_int_equal(st, SPRIG_STATUS_OK);
            assert_int_equal(len, lens[got]);
            for (size_t j = 0; j < len; j++) {
                assert_int_equal(buf[j], (uint8_t)(got + 1));
            }
            got++;
        }
        assert_int_equal(got, sizeof(lens) / sizeof(lens[0]));
        fx_free(x);
    }
}

/* With a larger staging buffer, a read that ends mid-frame leaves a tail that is moved to the
 * front before the next read; the message arrives intact. */
static void test_framing_recv_compacts_partial_tail(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_OPEN, 2 * MAXMSG);
    feed_frame(&x->fk, MAXMSG - 10, 1); /* 506 bytes */
    feed_frame(&x->fk, MAXMSG, 2);      /* 516 bytes: only 1024-506=518... */
    feed_frame(&x->fk, MAXMSG, 3);      /* ...so this one straddles the end of rx_mem */
    uint8_t buf[MAXMSG];
    size_t len = 0;
    for (uint8_t i = 1; i <= 3; i++) {
        assert_int_equal(sprig_sock_recv(fs(x), buf, sizeof(buf), &len), SPRIG_STATUS_OK);
        assert_int_equal(buf[0], i);
        assert_int_equal(buf[len - 1], i);
    }
    assert_int_equal(sprig_sock_recv(fs(x), buf, sizeof(buf), &len), SPRIG_STATUS_UNAVAILABLE);
    fx_free(x);
}

static void test_framing_recv_oversize_kills_connection(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    feed_frame(&x->fk, 5, 7); /* a good message before the bad header is still delivered */
    uint8_t bad[HDR];
    sprig_frame_encode_header(bad, MAXMSG + 1);
    feed_bytes(&x->fk, bad, HDR);
    uint8_t buf[MAXMSG];
    size_t len = 0;
    assert_int_equal(sprig_sock_recv(fs(x), buf, sizeof(buf), &len), SPRIG_STATUS_OK);
    assert_int_equal(len, 5);
    assert_int_equal(sprig_sock_recv(fs(x), buf, sizeof(buf), &len),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(fs(x)->state, SPRIG_SOCK_STATE_CLOSED);
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_CLOSED], 0); /* never from inside an op */
    pump(&x->loop, &x->fc);
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_CLOSED], 1);
    assert_int_equal(x->ev.closed_status, SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(sprig_sock_recv(fs(x), buf, sizeof(buf), &len),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(sprig_sock_send(fs(x), "x", 1, NULL), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    /* The inner socket's own end is not reported again. */
    sprig__sock_event(&x->fk.sock, SPRIG_SOCK_EV_CLOSED, SPRIG_STATUS_ABORTED);
    pump(&x->loop, &x->fc);
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_CLOSED], 1);
    fx_free(x);
}

static void test_framing_recv_eof_at_boundary_is_out_of_range(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    feed_frame(&x->fk, 3, 1);
    x->fk.in_end = SPRIG_STATUS_OUT_OF_RANGE;
    uint8_t buf[MAXMSG];
    size_t len = 0;
    assert_int_equal(sprig_sock_recv(fs(x), buf, sizeof(buf), &len), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_recv(fs(x), buf, sizeof(buf), &len), SPRIG_STATUS_OUT_OF_RANGE);
    assert_int_equal(sprig_sock_recv(fs(x), buf, sizeof(buf), &len), SPRIG_STATUS_OUT_OF_RANGE);
    pump(&x->loop, &x->fc);
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_CLOSED], 0); /* only half closed */
    /* Sending still works after the peer finished; then both ways are done. */
    assert_int_equal(sprig_sock_send(fs(x), "ok", 2, NULL), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_shutdown(fs(x)), SPRIG_STATUS_OK);
    assert_int_equal(x->fk.shutdowns, 1);
    sprig__sock_set_dead(&x->fk.sock, SPRIG_STATUS_OK);
    sprig__sock_event(&x->fk.sock, SPRIG_SOCK_EV_CLOSED, SPRIG_STATUS_OK);
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_CLOSED], 1);
    assert_int_equal(x->ev.closed_status, SPRIG_STATUS_OK);
    fx_free(x);
}

static void check_truncated_stream(const uint8_t *bytes, size_t n)
{
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    feed_bytes(&x->fk, bytes, n);
    x->fk.in_end = SPRIG_STATUS_OUT_OF_RANGE;
    uint8_t buf[MAXMSG];
    size_t len = 0;
    assert_int_equal(sprig_sock_recv(fs(x), buf, sizeof(buf), &len), SPRIG_STATUS_DATA_LOSS);
    assert_int_equal(fs(x)->state, SPRIG_SOCK_STATE_CLOSED);
    pump(&x->loop, &x->fc);
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_CLOSED], 1);
    assert_int_equal(x->ev.closed_status, SPRIG_STATUS_DATA_LOSS);
    assert_int_equal(sprig_sock_recv(fs(x), buf, sizeof(buf), &len), SPRIG_STATUS_DATA_LOSS);
    fx_free(x);
}

static void test_framing_recv_eof_inside_frame_is_data_loss(void **state)
{
    (void)state;
    check_truncated_stream((const uint8_t *)"\0\0\0\x0a"
                                            "abc",
                           7);                                /* body cut short */
    check_truncated_stream((const uint8_t *)"\0\0\0\x0a", 4); /* header only */
    check_truncated_stream((const uint8_t *)"\0\0", 2);       /* half a header */
}

static void test_framing_recv_inner_abort(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    feed_bytes(&x->fk,
               "\0\0\0\x05"
               "ab",
               6);
    x->fk.in_end = SPRIG_STATUS_ABORTED;
    uint8_t buf[MAXMSG];
    size_t len = 0;
    assert_int_equal(sprig_sock_recv(fs(x), buf, sizeof(buf), &len), SPRIG_STATUS_ABORTED);
    sprig__sock_set_dead(&x->fk.sock, SPRIG_STATUS_ABORTED);
    sprig__sock_event(&x->fk.sock, SPRIG_SOCK_EV_CLOSED, SPRIG_STATUS_ABORTED);
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_CLOSED], 1);
    assert_int_equal(x->ev.closed_status, SPRIG_STATUS_ABORTED);
    assert_int_equal(sprig_sock_recv(fs(x), buf, sizeof(buf), &len), SPRIG_STATUS_ABORTED);
    fx_free(x);
}

/* The inner socket dies while whole messages wait in the staging buffer: the user reads them
 * first, then learns the status, then gets CLOSED. */
static void test_framing_inner_closed_after_buffered_messages(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    feed_frame(&x->fk, 4, 1);
    feed_frame(&x->fk, 4, 2);
    uint8_t buf[MAXMSG];
    size_t len = 0;
    assert_int_equal(sprig_sock_recv(fs(x), buf, sizeof(buf), &len), SPRIG_STATUS_OK);
    /* message 2 is staged; now the connection is reset */
    x->fk.in_end = SPRIG_STATUS_ABORTED;
    sprig__sock_event(&x->fk.sock, SPRIG_SOCK_EV_CLOSED, SPRIG_STATUS_ABORTED);
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_CLOSED], 0);
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_READABLE], 1);
    assert_int_equal(sprig_sock_recv(fs(x), buf, sizeof(buf), &len), SPRIG_STATUS_OK);
    assert_int_equal(buf[0], 2);
    assert_int_equal(sprig_sock_recv(fs(x), buf, sizeof(buf), &len), SPRIG_STATUS_ABORTED);
    pump(&x->loop, &x->fc);
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_CLOSED], 1);
    assert_int_equal(x->ev.closed_status, SPRIG_STATUS_ABORTED);
    fx_free(x);
}

/* Orderly end with a partial frame staged: DATA_LOSS at once (no message is waiting). */
static void test_framing_inner_closed_ok_with_partial_frame(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    feed_bytes(&x->fk,
               "\0\0\0\x09"
               "abc",
               7);
    uint8_t buf[MAXMSG];
    size_t len = 0;
    assert_int_equal(sprig_sock_recv(fs(x), buf, sizeof(buf), &len), SPRIG_STATUS_UNAVAILABLE);
    sprig__sock_event(&x->fk.sock, SPRIG_SOCK_EV_CLOSED, SPRIG_STATUS_OK);
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_CLOSED], 1);
    assert_int_equal(x->ev.closed_status, SPRIG_STATUS_DATA_LOSS);
    fx_free(x);
}

/* Orderly end with a message staged: it is read, then OUT_OF_RANGE, then CLOSED(OK). */
static void test_framing_inner_closed_ok_with_message(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    feed_frame(&x->fk, 1, 1);
    feed_frame(&x->fk, 1, 2);
    uint8_t buf[MAXMSG];
    size_t len = 0;
    assert_int_equal(sprig_sock_recv(fs(x), buf, sizeof(buf), &len), SPRIG_STATUS_OK);
    sprig__sock_set_dead(&x->fk.sock, SPRIG_STATUS_OK);
    sprig__sock_event(&x->fk.sock, SPRIG_SOCK_EV_CLOSED, SPRIG_STATUS_OK);
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_CLOSED], 0);
    assert_int_equal(sprig_sock_recv(fs(x), buf, sizeof(buf), &len), SPRIG_STATUS_OK);
    assert_int_equal(buf[0], 2);
    assert_int_equal(sprig_sock_recv(fs(x), buf, sizeof(buf), &len), SPRIG_STATUS_OUT_OF_RANGE);
    pump(&x->loop, &x->fc);
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_CLOSED], 1);
    assert_int_equal(x->ev.closed_status, SPRIG_STATUS_OK);
    fx_free(x);
}

static void test_framing_events_pass_through(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    sprig__sock_event(&x->fk.sock, SPRIG_SOCK_EV_READABLE, SPRIG_STATUS_OK);
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_READABLE], 1);
    /* WRITABLE reaches the user only after a send of theirs returned UNAVAILABLE. */
    x->fk.budget = 0;
    sprig__sock_event(&x->fk.sock, SPRIG_SOCK_EV_WRITABLE, SPRIG_STATUS_OK);
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_WRITABLE], 0);
    assert_int_equal(sprig_sock_send(fs(x), "abc", 3, NULL), SPRIG_STATUS_UNAVAILABLE);
    x->fk.budget = SIZE_MAX;
    sprig__sock_event(&x->fk.sock, SPRIG_SOCK_EV_WRITABLE, SPRIG_STATUS_OK);
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_WRITABLE], 1);
    assert_int_equal(sprig_sock_send(fs(x), "abc", 3, NULL), SPRIG_STATUS_OK);
    assert_int_equal(x->fk.out_len, HDR + 3);
    assert_memory_equal(x->fk.out,
                        "\0\0\0\x03"
                        "abc",
                        HDR + 3);
    fx_free(x);
}

/* ==== decorator: send ========================================================================= */

static void test_framing_send_uses_one_inner_call(void **state)
{
    (void)state;
    const sprig_sock_ops *ops[] = {&fake_ops_plain, &fake_ops_iov};
    for (size_t k = 0; k < 2; k++) {
        fx *x = fx_new(ops[k], SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
        uint8_t msg[MAXMSG];
        memset(msg, 0x11, sizeof(msg));
        assert_int_equal(sprig_sock_send(fs(x), msg, 10, NULL), SPRIG_STATUS_OK);
        assert_int_equal(sprig_sock_send(fs(x), msg, 0, NULL), SPRIG_STATUS_OK);
        assert_int_equal(sprig_sock_send(fs(x), msg, MAXMSG, NULL), SPRIG_STATUS_OK);
        assert_int_equal(sprig_sock_send(fs(x), msg, MAXMSG + 1, NULL),
                         SPRIG_STATUS_RESOURCE_EXHAUSTED);
        assert_int_equal(x->fk.sends + x->fk.iov_sends, 3);
        assert_int_equal(k == 1 ? x->fk.iov_sends : x->fk.sends, 3);
        static const size_t lens[] = {10, 0, MAXMSG};
        static const uint8_t fills[] = {0x11, 0, 0x11};
        expect_out_frames(&x->fk, lens, fills, 3);
        fx_free(x);
    }
}

static void test_framing_send_unavailable_then_writable(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_iov, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    x->fk.budget = 0;
    assert_int_equal(sprig_sock_send(fs(x), "abcdef", 6, NULL), SPRIG_STATUS_UNAVAILABLE);
    assert_int_equal(x->fk.out_len, 0);
    x->fk.budget = SIZE_MAX;
    sprig__sock_event(&x->fk.sock, SPRIG_SOCK_EV_WRITABLE, SPRIG_STATUS_OK);
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_WRITABLE], 1);
    assert_int_equal(sprig_sock_send(fs(x), "abcdef", 6, NULL), SPRIG_STATUS_OK);
    assert_memory_equal(x->fk.out,
                        "\0\0\0\x06"
                        "abcdef",
                        10);
    fx_free(x);
}

/* The inner socket takes part of a message: send says OK, the rest waits; further sends are
 * UNAVAILABLE; WRITABLE follows the flush; the byte stream is exactly the two frames. Every
 * cut point, with and without a gather op. */
static void test_framing_send_partial_keeps_rest(void **state)
{
    (void)state;
    const sprig_sock_ops *ops[] = {&fake_ops_plain, &fake_ops_iov};
    for (size_t k = 0; k < 2; k++) {
        for (size_t cut = 1; cut < HDR + 10; cut++) {
            fx *x = fx_new(ops[k], SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
            uint8_t a[10];
            memset(a, 0xA1, sizeof(a));
            x->fk.budget = cut;
            assert_int_equal(sprig_sock_send(fs(x), a, sizeof(a), NULL), SPRIG_STATUS_OK);
            assert_int_equal(x->fk.out_len, cut);
            assert_int_equal(sprig_sock_send(fs(x), "b", 1, NULL), SPRIG_STATUS_UNAVAILABLE);
            sprig__sock_event(&x->fk.sock, SPRIG_SOCK_EV_WRITABLE, SPRIG_STATUS_OK);
            assert_int_equal(x->ev.n[SPRIG_SOCK_EV_WRITABLE], 0); /* still full */
            x->fk.budget = 3; /* a little room: part of the rest goes, then full again */
            sprig__sock_event(&x->fk.sock, SPRIG_SOCK_EV_WRITABLE, SPRIG_STATUS_OK);
            assert_int_equal(x->ev.n[SPRIG_SOCK_EV_WRITABLE], cut + 3 >= HDR + 10);
            x->fk.budget = SIZE_MAX;
            sprig__sock_event(&x->fk.sock, SPRIG_SOCK_EV_WRITABLE, SPRIG_STATUS_OK);
            assert_int_equal(x->ev.n[SPRIG_SOCK_EV_WRITABLE], 1);
            assert_int_equal(sprig_sock_send(fs(x), "b", 1, NULL), SPRIG_STATUS_OK);
            static const size_t lens[] = {10, 1};
            static const uint8_t fills[] = {0xA1, 'b'};
            expect_out_frames(&x->fk, lens, fills, 2);
            fx_free(x);
        }
    }
}

/* Fault-style short writes: every inner send takes at most n bytes; each message still goes
 * out whole within the one framed send (the decorator keeps pushing until UNAVAILABLE). */
static void test_framing_send_short_writes_complete(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    uint8_t msg[MAXMSG];
    memset(msg, 0x33, sizeof(msg));
    /* take() is bounded by budget only; simulate max_write by tiny budgets refreshed per send */
    x->fk.budget = 5;
    assert_int_equal(sprig_sock_send(fs(x), msg, 40, NULL), SPRIG_STATUS_OK);
    while (x->fk.out_len < HDR + 40) {
        x->fk.budget = 5;
        sprig__sock_event(&x->fk.sock, SPRIG_SOCK_EV_WRITABLE, SPRIG_STATUS_OK);
    }
    static const size_t lens[] = {40};
    static const uint8_t fills[] = {0x33};
    expect_out_frames(&x->fk, lens, fills, 1);
    fx_free(x);
}

static void test_framing_shutdown_waits_for_rest(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    x->fk.budget = 2;
    assert_int_equal(sprig_sock_send(fs(x), "hello", 5, NULL), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_shutdown(fs(x)), SPRIG_STATUS_OK);
    assert_int_equal(x->fk.shutdowns, 0); /* the rest goes first */
    assert_int_equal(sprig_sock_send(fs(x), "x", 1, NULL), SPRIG_STATUS_FAILED_PRECONDITION);
    x->fk.budget = SIZE_MAX;
    sprig__sock_event(&x->fk.sock, SPRIG_SOCK_EV_WRITABLE, SPRIG_STATUS_OK);
    assert_int_equal(x->fk.shutdowns, 1);
    assert_memory_equal(x->fk.out,
                        "\0\0\0\x05"
                        "hello",
                        9);
    fx_free(x);
}

static void test_framing_shutdown_without_rest(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    assert_int_equal(sprig_sock_shutdown(fs(x)), SPRIG_STATUS_OK);
    assert_int_equal(x->fk.shutdowns, 1);
    fx_free(x);
}

/* The stream breaks while a rest is pending: the frame cannot be finished, so the connection
 * dies with the inner status. */
static void test_framing_flush_error_kills_connection(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    x->fk.budget = 2;
    assert_int_equal(sprig_sock_send(fs(x), "hello", 5, NULL), SPRIG_STATUS_OK);
    x->fk.send_err = SPRIG_STATUS_ABORTED;
    sprig__sock_event(&x->fk.sock, SPRIG_SOCK_EV_WRITABLE, SPRIG_STATUS_OK);
    pump(&x->loop, &x->fc);
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_CLOSED], 1);
    assert_int_equal(x->ev.closed_status, SPRIG_STATUS_ABORTED);
    assert_int_equal(sprig_sock_send(fs(x), "x", 1, NULL), SPRIG_STATUS_ABORTED);
    fx_free(x);
}

static void test_framing_send_error_passes_through(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_iov, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    x->fk.send_err = SPRIG_STATUS_ABORTED;
    assert_int_equal(sprig_sock_send(fs(x), "x", 1, NULL), SPRIG_STATUS_ABORTED);
    assert_int_equal(fs(x)->state, SPRIG_SOCK_STATE_OPEN); /* inner CLOSED will tell */
    fx_free(x);
}

/* ==== decorator: zero copy ==================================================================== */

static sprig_buf *alloc_payload(fx *x, size_t len, uint8_t fill)
{
    sprig_buf *b = NULL;
    assert_int_equal(sprig_sock_alloc_tx(fs(x), len, &b), SPRIG_STATUS_OK);
    assert_non_null(b);
    assert_int_equal(sprig_buf_headroom(b), INNER_HEADROOM + HDR);
    assert_int_equal(sprig_buf_len(b), 0);
    uint8_t *p = sprig_buf_put(b, len);
    assert_non_null(p);
    memset(p, fill, len);
    return b;
}

static void test_framing_alloc_tx_reserves_header_room(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    sprig_buf *b = NULL;
    assert_int_equal(sprig_sock_alloc_tx(fs(x), MAXMSG + 1, &b), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_null(b);
    b = alloc_payload(x, MAXMSG, 1);
    assert_true(sprig_buf_tailroom(b) + sprig_buf_len(b) >= MAXMSG);
    sprig_buf_free(b);
    /* An empty pool is RESOURCE_EXHAUSTED, as the inner socket says. */
    sprig_buf *all[POOL_BUFS];
    for (size_t i = 0; i < POOL_BUFS; i++) {
        assert_int_equal(sprig_sock_alloc_tx(fs(x), 1, &all[i]), SPRIG_STATUS_OK);
    }
    assert_int_equal(sprig_sock_alloc_tx(fs(x), 1, &b), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_null(b);
    for (size_t i = 0; i < POOL_BUFS; i++) {
        sprig_buf_free(all[i]);
    }
    fx_free(x);
}

/* Inner socket with send_buf: the buffer goes down whole, header in its headroom. */
static void test_framing_send_buf_zero_copy_to_inner_buf(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_buf, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    sprig_buf *b = alloc_payload(x, 20, 0x77);
    const uint8_t *payload = sprig_buf_data(b);
    assert_int_equal(sprig_sock_send_buf(fs(x), b), SPRIG_STATUS_OK);
    assert_int_equal(x->fk.buf_sends, 1);
    assert_ptr_equal(x->fk.last_send, payload - HDR); /* same memory: nothing was copied */
    static const size_t lens[] = {20};
    static const uint8_t fills[] = {0x77};
    expect_out_frames(&x->fk, lens, fills, 1);
    fx_free(x);
}

/* Inner socket without send_buf: the bytes are sent straight from the buffer; a partial
 * send keeps the buffer itself as the pending rest until flushed. */
static void test_framing_send_buf_partial_keeps_buffer(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    sprig_buf *b = alloc_payload(x, 30, 0x42);
    const uint8_t *payload = sprig_buf_data(b);
    x->fk.budget = 7;
    assert_int_equal(sprig_sock_send_buf(fs(x), b), SPRIG_STATUS_OK);
    assert_ptr_equal(x->fk.first_send, payload - HDR);    /* sent from the buffer itself */
    assert_ptr_equal(x->fk.last_send, payload - HDR + 7); /* the rest too: no copy */
    assert_int_equal(sprig_buf_pool_available(&x->pool), POOL_BUFS - 1); /* held as the rest */
    sprig_buf *c = alloc_payload(x, 1, 'c');
    assert_int_equal(sprig_sock_send_buf(fs(x), c), SPRIG_STATUS_UNAVAILABLE);
    assert_int_equal(sprig_buf_len(c), 1); /* untouched, still ours */
    x->fk.budget = SIZE_MAX;
    sprig__sock_event(&x->fk.sock, SPRIG_SOCK_EV_WRITABLE, SPRIG_STATUS_OK);
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_WRITABLE], 1);
    assert_int_equal(sprig_buf_pool_available(&x->pool), POOL_BUFS - 1); /* only c is out */
    assert_int_equal(sprig_sock_send_buf(fs(x), c), SPRIG_STATUS_OK);
    static const size_t lens[] = {30, 1};
    static const uint8_t fills[] = {0x42, 'c'};
    expect_out_frames(&x->fk, lens, fills, 2);
    fx_free(x);
}

/* Nothing could be sent: the header comes back off and the caller keeps the buffer. Also when
 * the inner send_buf refuses (all or nothing) and the byte send finds no room either. */
static void test_framing_send_buf_unavailable_returns_buffer(void **state)
{
    (void)state;
    const sprig_sock_ops *ops[] = {&fake_ops_plain, &fake_ops_buf};
    for (size_t k = 0; k < 2; k++) {
        fx *x = fx_new(ops[k], SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
        sprig_buf *b = alloc_payload(x, 12, 0x10);
        size_t off = b->off;
        x->fk.budget = 0;
        assert_int_equal(sprig_sock_send_buf(fs(x), b), SPRIG_STATUS_UNAVAILABLE);
        assert_int_equal(b->off, off);
        assert_int_equal(b->len, 12);
        x->fk.budget = SIZE_MAX;
        sprig__sock_event(&x->fk.sock, SPRIG_SOCK_EV_WRITABLE, SPRIG_STATUS_OK);
        assert_int_equal(x->ev.n[SPRIG_SOCK_EV_WRITABLE], 1);
        assert_int_equal(sprig_sock_send_buf(fs(x), b), SPRIG_STATUS_OK);
        /* An error also leaves the buffer with the caller, unchanged. */
        sprig_buf *c = alloc_payload(x, 3, 0x20);
        x->fk.send_err = SPRIG_STATUS_ABORTED;
        assert_int_equal(sprig_sock_send_buf(fs(x), c), SPRIG_STATUS_ABORTED);
        assert_int_equal(c->len, 3);
        sprig_buf_free(c);
        fx_free(x);
    }
}

/* send_buf with all-or-nothing inner send_buf that does not fit, but a byte send that takes
 * part: the buffer becomes the pending rest. */
static void test_framing_send_buf_inner_buf_partial_fallback(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_buf, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    sprig_buf *b = alloc_payload(x, 50, 0x99);
    x->fk.budget = 20;
    assert_int_equal(sprig_sock_send_buf(fs(x), b), SPRIG_STATUS_OK);
    assert_int_equal(x->fk.out_len, 20);
    x->fk.budget = SIZE_MAX;
    sprig__sock_event(&x->fk.sock, SPRIG_SOCK_EV_WRITABLE, SPRIG_STATUS_OK);
    static const size_t lens[] = {50};
    static const uint8_t fills[] = {0x99};
    expect_out_frames(&x->fk, lens, fills, 1);
    fx_free(x);
}

/* A buffer that did not come from alloc_tx (no headroom): copied, then freed on OK. */
static void test_framing_send_buf_without_headroom(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_buf, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    sprig_buf *b = sprig_buf_alloc(&x->pool, 0);
    assert_non_null(b);
    assert_int_equal(sprig_buf_append(b, "xyz", 3), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_send_buf(fs(x), b), SPRIG_STATUS_OK);
    assert_memory_equal(x->fk.out,
                        "\0\0\0\x03"
                        "xyz",
                        7);
    fx_free(x);
}

/* ==== decorator: close ======================================================================== */

static void test_framing_close_releases_once(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    sprig_sock_close(fs(x));
    x->closed = true;
    assert_int_equal(x->ev.released, 1);
    assert_int_equal(x->fk.closes, 1);
    fx_free(x);
}

/* Closing inside our own callback: the release waits until the callback has returned. */
static void test_framing_close_inside_callback(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    x->ev.close_on = SPRIG_SOCK_EV_READABLE;
    sprig__sock_event(&x->fk.sock, SPRIG_SOCK_EV_READABLE, SPRIG_STATUS_OK);
    x->closed = true;
    assert_int_equal(x->ev.released, 1);
    assert_int_equal(x->fk.closes, 1);
    fx_free(x);
}

/* close() still tries to push out a pending rest, so an accepted message is not cut short
 * when the inner socket has room. */
static void test_framing_close_flushes_rest(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    x->fk.budget = 5;
    assert_int_equal(sprig_sock_send(fs(x), "0123456789", 10, NULL), SPRIG_STATUS_OK);
    x->fk.budget = SIZE_MAX;
    sprig_sock_close(fs(x));
    x->closed = true;
    assert_memory_equal(x->fk.out,
                        "\0\0\0\x0a"
                        "0123456789",
                        14);
    fx_free(x);
}

/* Close inside the deferred CLOSED delivery, with a pending rest (freed, not leaked). */
static void test_framing_close_with_pending_rest(void **state)
{
    (void)state;
    fx *x = fx_new(&fake_ops_plain, SPRIG_SOCK_STATE_OPEN, sizeof(((fx *)0)->rx));
    sprig_buf *b = alloc_payload(x, 30, 0x42);
    x->fk.budget = 3;
    assert_int_equal(sprig_sock_send_buf(fs(x), b), SPRIG_STATUS_OK);
    x->ev.close_on = SPRIG_SOCK_EV_CLOSED;
    uint8_t bad[HDR];
    sprig_frame_encode_header(bad, 0xFFFFFFFFu);
    feed_bytes(&x->fk, bad, HDR);
    uint8_t buf[8];
    size_t len = 0;
    assert_int_equal(sprig_sock_recv(fs(x), buf, sizeof(buf), &len),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    pump(&x->loop, &x->fc);
    x->closed = true;
    assert_int_equal(x->ev.n[SPRIG_SOCK_EV_CLOSED], 1);
    fx_free(x);
}

/* ==== over the in-memory backend ============================================================== */

enum { MEM_MAX = 2048, MEM_BUFS = 256, MEM_SOCKS = 4, FR_MAX = 1024 };
#define MEM_BUF_SIZE (MEM_MAX + SPRIG_CONFIG_SOCK_HEADROOM)

typedef struct mx {
    sprig_fake_clock fc;
    sprig_loop loop;
    sprig_mem_backend m;
    sprig_mem_sock socks[MEM_SOCKS];
    sprig_buf_pool pool;
    sprig_buf bufs[MEM_BUFS];
    uint8_t *pool_mem;
    sprig_sock *a; /* raw STREAM ends */
    sprig_sock *b;
    sprig_fault_sock fault; /* optional wrapper around a */
    sprig_buf_pool fpool;
    sprig_buf fbufs[4];
    uint8_t fmem[4 * 64] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
    sprig_framed_sock fa; /* framed over a (or over the fault wrapper) */
    sprig_framed_sock fb; /* framed over b, when the test frames both ends */
    uint8_t rxa[2 * FR_MAX + HDR];
    uint8_t txa[FR_MAX + HDR];
    uint8_t rxb[FR_MAX + HDR];
    uint8_t txb[FR_MAX + HDR];
    evlog eva;
    evlog evb;
} mx;

static mx *mx_new(size_t window)
{
    mx *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    x->pool_mem = aligned_alloc(SPRIG_CONFIG_BUF_ALIGN, (size_t)MEM_BUFS * MEM_BUF_SIZE);
    assert_non_null(x->pool_mem);
    sprig_fake_clock_init(&x->fc, 1000);
    sprig_loop_cfg lc = {.clock = x->fc.clock};
    assert_int_equal(sprig_loop_init(&x->loop, &lc), SPRIG_STATUS_OK);
    assert_int_equal(sprig_buf_pool_init(&x->pool, x->bufs, x->pool_mem, MEM_BUFS, MEM_BUF_SIZE),
                     SPRIG_STATUS_OK);
    sprig_mem_cfg cfg = {.max_message_size = MEM_MAX, .window_bytes = window};
    assert_int_equal(sprig_mem_backend_init(&x->m, &x->loop, &cfg, x->socks, MEM_SOCKS, &x->pool),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_mem_pair(&x->m, SPRIG_SOCK_STREAM, &x->a, &x->b), SPRIG_STATUS_OK);
    assert_int_equal(sprig_buf_pool_init(&x->fpool, x->fbufs, x->fmem, 4, 64), SPRIG_STATUS_OK);
    x->eva.close_on = -1;
    x->evb.close_on = -1;
    return x;
}

static void mx_frame(mx *x, sprig_framed_sock *f, sprig_sock *inner, uint8_t *rx, size_t rx_cap,
                     uint8_t *tx, evlog *ev)
{
    sprig_framing_cfg cfg = {.max_message_size = FR_MAX,
                             .rx_mem = rx,
                             .rx_cap = rx_cap,
                             .tx_mem = tx,
                             .tx_cap = FR_MAX + HDR,
                             .on_release = on_release,
                             .release_ctx = ev};
    assert_int_equal(sprig_framing_init(f, inner, &cfg), SPRIG_STATUS_OK);
    sprig_sock_set_callback(&f->sock, user_cb, ev);
    (void)x;
}

static void mx_pump(mx *x)
{
    for (int i = 0; i < 16; i++) {
        sprig_loop_poll(&x->loop, x->fc.now);
    }
}

/* Close what is still open (NULL entries skipped), then check for leaks. */
static void mx_free(mx *x, sprig_sock *s1, sprig_sock *s2)
{
    sprig_sock_close(s1);
    sprig_sock_close(s2);
    mx_pump(x);
    assert_int_equal(x->eva.released, s1 == &x->fa.sock ? 1 : 0);
    assert_int_equal(x->evb.released, s2 == &x->fb.sock ? 1 : 0);
    assert_int_equal(sprig_mem_backend_in_use(&x->m), 0);
    assert_int_equal(sprig_buf_pool_available(&x->pool), MEM_BUFS);
    assert_int_equal(sprig_buf_pool_available(&x->fpool), 4);
    sprig_mem_backend_deinit(&x->m);
    sprig_loop_deinit(&x->loop);
    free(x->pool_mem);
    free(x);
}

static uint32_t rng_next(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void fill_msg(uint8_t *p, size_t len, unsigned seq)
{
    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)(seq * 31u + i);
    }
}

/* Stream `count` messages of pseudo-random sizes from one framed socket to the other through
 * whatever is underneath, driving the loop (and the clock, for stalls) until all arrived. */
static void transfer(mx *x, sprig_sock *tx, sprig_sock *rx, unsigned count, uint32_t seed)
{
    static uint8_t out[FR_MAX];
    static uint8_t in[FR_MAX];
    uint32_t rs = seed | 1u;
    unsigned sent = 0;
    unsigned got = 0;
    size_t next_len = rng_next(&rs) % (FR_MAX + 1);
    uint32_t rr = seed | 1u;
    size_t expect_len = rng_next(&rr) % (FR_MAX + 1);
    for (int iter = 0; got < count && iter < 200000; iter++) {
        while (sent < count) {
            fill_msg(out, next_len, sent);
            sprig_status st = sprig_sock_send(tx, out, next_len, NULL);
            if (st == SPRIG_STATUS_UNAVAILABLE) {
                break;
            }
            assert_int_equal(st, SPRIG_STATUS_OK);
            sent++;
            next_len = rng_next(&rs) % (FR_MAX + 1);
        }
        for (;;) {
            size_t len = 0;
            sprig_status st = sprig_sock_recv(rx, in, sizeof(in), &len);
            if (st == SPRIG_STATUS_UNAVAILABLE) {
                break;
            }
            assert_int_equal(st, SPRIG_STATUS_OK);
            assert_int_equal(len, expect_len);
            fill_msg(out, len, got);
            assert_memory_equal(in, out, len);
            got++;
            expect_len = rng_next(&rr) % (FR_MAX + 1);
        }
        sprig_fake_clock_advance(&x->fc, SPRIG_TIME_MS(1));
        sprig_loop_poll(&x->loop, x->fc.now);
    }
    assert_int_equal(got, count);
}

static void test_framing_mem_roundtrip(void **state)
{
    (void)state;
    mx *x = mx_new(0);
    mx_frame(x, &x->fa, x->a, x->rxa, sizeof(x->rxa), x->txa, &x->eva);
    mx_frame(x, &x->fb, x->b, x->rxb, sizeof(x->rxb), x->txb, &x->evb);
    transfer(x, &x->fa.sock, &x->fb.sock, 300, 7);
    transfer(x, &x->fb.sock, &x->fa.sock, 300, 11);
    /* Orderly close both ways: each side reads OUT_OF_RANGE, then both get CLOSED(OK). */
    assert_int_equal(sprig_sock_shutdown(&x->fa.sock), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_shutdown(&x->fb.sock), SPRIG_STATUS_OK);
    mx_pump(x);
    uint8_t buf[8];
    size_t len = 0;
    assert_int_equal(sprig_sock_recv(&x->fa.sock, buf, sizeof(buf), &len),
                     SPRIG_STATUS_OUT_OF_RANGE);
    assert_int_equal(sprig_sock_recv(&x->fb.sock, buf, sizeof(buf), &len),
                     SPRIG_STATUS_OUT_OF_RANGE);
    mx_pump(x);
    assert_int_equal(x->eva.n[SPRIG_SOCK_EV_CLOSED], 1);
    assert_int_equal(x->eva.closed_status, SPRIG_STATUS_OK);
    assert_int_equal(x->evb.n[SPRIG_SOCK_EV_CLOSED], 1);
    mx_free(x, &x->fa.sock, &x->fb.sock);
}

/* Through the fault wrapper: short writes of 1..7 bytes and random stalls. */
static void test_framing_mem_fault_short_writes_and_stalls(void **state)
{
    (void)state;
    for (size_t max_write = 1; max_write <= 7; max_write++) {
        mx *x = mx_new(0);
        sprig_fault_cfg fcfg = {.seed = (uint32_t)max_write,
                                .max_write = max_write,
                                .stall_pm = 100,
                                .stall_time = SPRIG_TIME_MS(3)};
        assert_int_equal(sprig_fault_init(&x->fault, x->a, &fcfg, &x->fpool), SPRIG_STATUS_OK);
        mx_frame(x, &x->fa, &x->fault.sock, x->rxa, sizeof(x->rxa), x->txa, &x->eva);
        mx_frame(x, &x->fb, x->b, x->rxb, sizeof(x->rxb), x->txb, &x->evb);
        transfer(x, &x->fa.sock, &x->fb.sock, max_write == 1 ? 20 : 60, (uint32_t)max_write);
        assert_true(x->fault.stats.short_writes > 0);
        transfer(x, &x->fb.sock, &x->fa.sock, 60, 99);
        mx_free(x, &x->fa.sock, &x->fb.sock);
    }
}

/* A small window: sends are cut short by flow control; the rest waits for WRITABLE. */
static void test_framing_mem_small_window_writable_after_flush(void **state)
{
    (void)state;
    mx *x = mx_new(64);
    mx_frame(x, &x->fa, x->a, x->rxa, sizeof(x->rxa), x->txa, &x->eva);
    mx_frame(x, &x->fb, x->b, x->rxb, sizeof(x->rxb), x->txb, &x->evb);
    mx_pump(x);
    uint8_t msg[200];
    memset(msg, 0x5C, sizeof(msg));
    sprig_status st = sprig_sock_send(&x->fa.sock, msg, sizeof(msg), NULL);
    if (st == SPRIG_STATUS_OK) {
        /* accepted, partly in the window: a second send must wait */
        assert_int_equal(sprig_sock_send(&x->fa.sock, msg, 1, NULL), SPRIG_STATUS_UNAVAILABLE);
    } else {
        assert_int_equal(st, SPRIG_STATUS_UNAVAILABLE);
    }
    assert_int_equal(x->eva.n[SPRIG_SOCK_EV_WRITABLE], 0);
    /* The reader makes room; the rest is flushed; then (and only then) WRITABLE. */
    uint8_t in[FR_MAX];
    size_t len = 0;
    unsigned got = 0;
    for (int i = 0; i < 1000 && x->eva.n[SPRIG_SOCK_EV_WRITABLE] == 0; i++) {
        if (sprig_sock_recv(&x->fb.sock, in, sizeof(in), &len) == SPRIG_STATUS_OK) {
            got++;
        }
        mx_pump(x);
    }
    assert_int_equal(x->eva.n[SPRIG_SOCK_EV_WRITABLE], 1);
    /* The message that was in flight arrives whole. */
    for (int i = 0; i < 100 && got < (st == SPRIG_STATUS_OK ? 1u : 0u); i++) {
        if (sprig_sock_recv(&x->fb.sock, in, sizeof(in), &len) == SPRIG_STATUS_OK) {
            assert_int_equal(len, sizeof(msg));
            assert_memory_equal(in, msg, sizeof(msg));
            got++;
        }
        mx_pump(x);
    }
    assert_int_equal(got, st == SPRIG_STATUS_OK ? 1u : 0u);
    mx_free(x, &x->fa.sock, &x->fb.sock);
}

/* Addresses are the inner socket's. */
static void test_framing_mem_addresses(void **state)
{
    (void)state;
    mx *x = mx_new(0);
    mx_frame(x, &x->fa, x->a, x->rxa, sizeof(x->rxa), x->txa, &x->eva);
    sprig_addr want;
    sprig_addr got;
    assert_int_equal(sprig_sock_local_addr(x->a, &want), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_local_addr(&x->fa.sock, &got), SPRIG_STATUS_OK);
    assert_true(sprig_addr_equal(&want, &got));
    assert_int_equal(sprig_sock_peer_addr(x->a, &want), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_peer_addr(&x->fa.sock, &got), SPRIG_STATUS_OK);
    assert_true(sprig_addr_equal(&want, &got));
    mx_free(x, &x->fa.sock, x->b);
}

/* Zero copy over mem: alloc_tx on the framed socket, send_buf; no buffer leaked. */
static void test_framing_mem_zero_copy(void **state)
{
    (void)state;
    mx *x = mx_new(0);
    mx_frame(x, &x->fa, x->a, x->rxa, sizeof(x->rxa), x->txa, &x->eva);
    mx_frame(x, &x->fb, x->b, x->rxb, sizeof(x->rxb), x->txb, &x->evb);
    assert_int_equal(x->fa.sock.headroom, x->a->headroom + HDR);
    for (unsigned i = 0; i < 20; i++) {
        sprig_buf *b = NULL;
        size_t len = (i * 97u) % (FR_MAX + 1);
        assert_int_equal(sprig_sock_alloc_tx(&x->fa.sock, len, &b), SPRIG_STATUS_OK);
        fill_msg(sprig_buf_put(b, len), len, i);
        assert_int_equal(sprig_sock_send_buf(&x->fa.sock, b), SPRIG_STATUS_OK);
        mx_pump(x);
        uint8_t in[FR_MAX];
        uint8_t want[FR_MAX];
        size_t got = 0;
        assert_int_equal(sprig_sock_recv(&x->fb.sock, in, sizeof(in), &got), SPRIG_STATUS_OK);
        assert_int_equal(got, len);
        fill_msg(want, len, i);
        assert_memory_equal(in, want, len);
    }
    mx_free(x, &x->fa.sock, &x->fb.sock);
}

/* Hostile peer: the raw end b writes bytes of its choosing; the framed end a must report. */
static void hostile(const uint8_t *bytes, size_t n, bool end, sprig_status want_recv,
                    sprig_status want_closed)
{
    mx *x = mx_new(0);
    mx_frame(x, &x->fa, x->a, x->rxa, sizeof(x->rxa), x->txa, &x->eva);
    size_t off = 0;
    while (off < n) {
        size_t sent = 0;
        assert_int_equal(sprig_sock_send(x->b, bytes + off, n - off, &sent), SPRIG_STATUS_OK);
        off += sent;
    }
    if (end) {
        assert_int_equal(sprig_sock_shutdown(x->b), SPRIG_STATUS_OK);
    }
    mx_pump(x);
    uint8_t in[FR_MAX];
    size_t len = 0;
    sprig_status st;
    do {
        st = sprig_sock_recv(&x->fa.sock, in, sizeof(in), &len);
    } while (st == SPRIG_STATUS_OK);
    assert_int_equal(st, want_recv);
    mx_pump(x);
    if (want_closed != SPRIG_STATUS_UNKNOWN) {
        assert_int_equal(x->eva.n[SPRIG_SOCK_EV_CLOSED], 1);
        assert_int_equal(x->eva.closed_status, want_closed);
    } else {
        assert_int_equal(x->eva.n[SPRIG_SOCK_EV_CLOSED], 0);
    }
    mx_free(x, &x->fa.sock, x->b);
}

static void test_framing_mem_hostile_input(void **state)
{
    (void)state;
    uint8_t big[HDR];
    sprig_frame_encode_header(big, FR_MAX + 1);
    hostile(big, HDR, false, SPRIG_STATUS_RESOURCE_EXHAUSTED, SPRIG_STATUS_RESOURCE_EXHAUSTED);
    hostile((const uint8_t *)"\0\0\0\x08"
                             "1234",
            8, true, SPRIG_STATUS_DATA_LOSS, SPRIG_STATUS_DATA_LOSS);
    hostile((const uint8_t *)"\0\0\0\x08", 4, true, SPRIG_STATUS_DATA_LOSS, SPRIG_STATUS_DATA_LOSS);
    hostile((const uint8_t *)"\0\0\0\x02"
                             "ok",
            6, true, SPRIG_STATUS_OUT_OF_RANGE, SPRIG_STATUS_UNKNOWN);
    hostile((const uint8_t *)"\0\0\0\x02"
                             "ok\0",
            7, false, SPRIG_STATUS_UNAVAILABLE, SPRIG_STATUS_UNKNOWN);
}

/* Random bytes: whatever they say, the receiver never crashes, never delivers more than max,
 * and ends in a defined state. */
static void test_framing_mem_random_bytes(void **state)
{
    (void)state;
    uint32_t rs = 12345;
    for (int round = 0; round < 40; round++) {
        mx *x = mx_new(0);
        mx_frame(x, &x->fa, x->a, x->rxa, sizeof(x->rxa), x->txa, &x->eva);
        uint8_t junk[600];
        size_t n = rng_next(&rs) % sizeof(junk);
        for (size_t i = 0; i < n; i++) {
            uint32_t r = rng_next(&rs);
            /* small lengths are more interesting: zero the high header bytes often */
            junk[i] = (r & 3u) == 0 ? 0 : (uint8_t)(r >> 8);
        }
        size_t off = 0;
        while (off < n) {
            size_t sent = 0;
            assert_int_equal(sprig_sock_send(x->b, junk + off, n - off, &sent), SPRIG_STATUS_OK);
            off += sent;
        }
        assert_int_equal(sprig_sock_shutdown(x->b), SPRIG_STATUS_OK);
        mx_pump(x);
        uint8_t in[FR_MAX];
        size_t len = 0;
        sprig_status st;
        do {
            st = sprig_sock_recv(&x->fa.sock, in, sizeof(in), &len);
            assert_true(len <= FR_MAX);
        } while (st == SPRIG_STATUS_OK);
        assert_true(st == SPRIG_STATUS_OUT_OF_RANGE || st == SPRIG_STATUS_DATA_LOSS ||
                    st == SPRIG_STATUS_RESOURCE_EXHAUSTED);
        mx_free(x, &x->fa.sock, x->b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framing_encode_header_big_endian),
        cmocka_unit_test(test_framing_decode_short_header),
        cmocka_unit_test(test_framing_decode_zero_length),
        cmocka_unit_test(test_framing_decode_exact_max_and_one_more),
        cmocka_unit_test(test_framing_decode_truncated_body),
        cmocka_unit_test(test_framing_decode_header_split_across_reads),
        cmocka_unit_test(test_framing_decode_many_frames_in_one_buffer),
        cmocka_unit_test(test_framing_decode_invalid_arguments),
        cmocka_unit_test(test_framing_decode_huge_max_does_not_overflow),
        cmocka_unit_test(test_framing_init_rejects_bad_arguments),
        cmocka_unit_test(test_framing_init_presents_seqpacket),
        cmocka_unit_test(test_framing_dial_failure_is_closed),
        cmocka_unit_test(test_framing_recv_many_messages_one_inner_read),
        cmocka_unit_test(test_framing_recv_small_buffer_keeps_message),
        cmocka_unit_test(test_framing_recv_split_reads_and_compaction),
        cmocka_unit_test(test_framing_recv_compacts_partial_tail),
        cmocka_unit_test(test_framing_recv_oversize_kills_connection),
        cmocka_unit_test(test_framing_recv_eof_at_boundary_is_out_of_range),
        cmocka_unit_test(test_framing_recv_eof_inside_frame_is_data_loss),
        cmocka_unit_test(test_framing_recv_inner_abort),
        cmocka_unit_test(test_framing_inner_closed_after_buffered_messages),
        cmocka_unit_test(test_framing_inner_closed_ok_with_partial_frame),
        cmocka_unit_test(test_framing_inner_closed_ok_with_message),
        cmocka_unit_test(test_framing_events_pass_through),
        cmocka_unit_test(test_framing_send_uses_one_inner_call),
        cmocka_unit_test(test_framing_send_unavailable_then_writable),
        cmocka_unit_test(test_framing_send_partial_keeps_rest),
        cmocka_unit_test(test_framing_send_short_writes_complete),
        cmocka_unit_test(test_framing_shutdown_waits_for_rest),
        cmocka_unit_test(test_framing_shutdown_without_rest),
        cmocka_unit_test(test_framing_flush_error_kills_connection),
        cmocka_unit_test(test_framing_send_error_passes_through),
        cmocka_unit_test(test_framing_alloc_tx_reserves_header_room),
        cmocka_unit_test(test_framing_send_buf_zero_copy_to_inner_buf),
        cmocka_unit_test(test_framing_send_buf_partial_keeps_buffer),
        cmocka_unit_test(test_framing_send_buf_unavailable_returns_buffer),
        cmocka_unit_test(test_framing_send_buf_inner_buf_partial_fallback),
        cmocka_unit_test(test_framing_send_buf_without_headroom),
        cmocka_unit_test(test_framing_close_releases_once),
        cmocka_unit_test(test_framing_close_inside_callback),
        cmocka_unit_test(test_framing_close_flushes_rest),
        cmocka_unit_test(test_framing_close_with_pending_rest),
        cmocka_unit_test(test_framing_mem_roundtrip),
        cmocka_unit_test(test_framing_mem_fault_short_writes_and_stalls),
        cmocka_unit_test(test_framing_mem_small_window_writable_after_flush),
        cmocka_unit_test(test_framing_mem_addresses),
        cmocka_unit_test(test_framing_mem_zero_copy),
        cmocka_unit_test(test_framing_mem_hostile_input),
        cmocka_unit_test(test_framing_mem_random_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
