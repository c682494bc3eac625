/* test_serial.c — COBS + CRC-32 framing and the serial link: round trips at block boundaries,
 * resynchronisation after garbage, dropped, inserted and corrupted bytes; two nodes over a
 * byte pipe with injected errors. */
#include "support.h"

#include <string.h>

#include "ns_fixture.h"
#include "sprig/ns_serial.h"

static uint32_t rng_state = 1;
static uint32_t rnd(void)
{
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    rng_state = x;
    return x;
}

/* Encode data[0..n) with chunk sizes from rnd(); returns the encoded length. */
static size_t encode(const uint8_t *data, size_t n, bool lead, uint8_t *out, size_t cap)
{
    sprig_ns_cobs_enc e;
    sprig_ns_cobs_enc_start(&e, data, n, lead);
    size_t len = 0;
    for (;;) {
        size_t chunk = 1 + rnd() % 40;
        if (chunk > cap - len) {
            chunk = cap - len;
        }
        size_t k = sprig_ns_cobs_enc_fill(&e, out + len, chunk);
        if (k == 0) {
            return len;
        }
        len += k;
        assert_true(len <= cap);
    }
}

/* Feed bytes; collect frames into frames[] (concatenated) with their lengths. */
typedef struct got {
    unsigned frames;
    size_t lens[16];
    uint8_t data[16][700];
} got;

static void decode(sprig_ns_cobs_dec *d, const uint8_t *in, size_t n, got *g)
{
    static uint8_t work[700];
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        if (sprig_ns_cobs_dec_byte(d, in[i], work, sizeof(work), &len) == SPRIG_NS_COBS_FRAME) {
            assert_true(g->frames < 16);
            g->lens[g->frames] = len;
            memcpy(g->data[g->frames], work, len);
            g->frames++;
        }
    }
}

static uint8_t src[700], enc[800];
static got g;

static void test_serial_cobs_roundtrip_at_boundaries(void **state)
{
    (void)state;
    const size_t lens[] = {8,   9,   100, 249, 250, 251, 252, 253, 254, 255,
                           256, 500, 504, 505, 506, 507, 508, 509, 600, 692};
    for (int pattern = 0; pattern < 4; pattern++) {
        for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
            size_t n = lens[li];
            for (size_t i = 0; i < n; i++) {
                src[i] = pattern == 0   ? 0
                         : pattern == 1 ? (uint8_t)(1 + i % 255)
                         : pattern == 2 ? (uint8_t)(i % 7 == 3 ? 0 : 0xA5)
                                        : (uint8_t)rnd();
            }
            size_t m = encode(src, n, li % 2 == 0, enc, sizeof(enc));
            assert_true(m <= sprig_ns_cobs_enc_max(n));
            assert_int_equal(enc[m - 1], 0);
            for (size_t i = (li % 2 == 0) ? 1 : 0; i + 1 < m; i++) {
                assert_int_not_equal(enc[i], 0);
            }
            sprig_ns_cobs_dec d;
            sprig_ns_cobs_dec_init(&d, 8);
            memset(&g, 0, sizeof(g));
            decode(&d, enc, m, &g);
            assert_int_equal(g.frames, 1);
            assert_int_equal(g.lens[0], n);
            assert_memory_equal(g.data[0], src, n);
        }
    }
}

static void test_serial_cobs_golden(void **state)
{
    (void)state;
    /* payload 11 00 22 ... is 8 bytes (the decoder's minimum): 11 00 22 33 44 55 66 77 */
    const uint8_t p[8] = {0x11, 0x00, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77};
    uint32_t crc = sprig_ns_crc32(0, p, 8);
    uint8_t want[32];
    size_t w = 0;
    want[w++] = 0x00; /* lead */
    want[w++] = 0x02;
    want[w++] = 0x11;
    /* the rest: 22..77 and the CRC's bytes, split at any zero in the CRC */
    uint8_t rest[10] = {0x22,
                        0x33,
                        0x44,
                        0x55,
                        0x66,
                        0x77,
                        (uint8_t)crc,
                        (uint8_t)(crc >> 8),
                        (uint8_t)(crc >> 16),
                        (uint8_t)(crc >> 24)};
    size_t start = 0;
    for (size_t i = 0; i <= 10; i++) {
        if (i == 10 || rest[i] == 0) {
            want[w++] = (uint8_t)(i - start + 1);
            memcpy(want + w, rest + start, i - start);
            w += i - start;
            start = i + 1;
        }
    }
    want[w++] = 0x00;
    size_t m = encode(p, 8, true, enc, sizeof(enc));
    assert_int_equal(m, w);
    assert_memory_equal(enc, want, w);
}

static void test_serial_cobs_resync_after_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < 40; i++) {
        src[i] = (uint8_t)(i * 37);
    }
    size_t m = encode(src, 40, true, enc, sizeof(enc));
    static uint8_t stream[2000];
    size_t s = 0;
    sprig_ns_cobs_dec d;
    sprig_ns_cobs_dec_init(&d, 8);
    memset(&g, 0, sizeof(g));

    /* garbage (no zero), then a frame: the lead delimiter resyncs */
    for (int i = 0; i < 50; i++) {
        stream[s++] = (uint8_t)(1 + rnd() % 255);
    }
    memcpy(stream + s, enc, m), s += m;
    /* a frame with one byte dropped */
    memcpy(stream + s, enc, m), s += m;
    memmove(stream + s - m + 10, stream + s - m + 11, m - 11), s--;
    /* a frame with a byte corrupted (not into a zero) */
    memcpy(stream + s, enc, m), s += m;
    stream[s - 20] = (uint8_t)(stream[s - 20] == 0x5A ? 0x5B : 0x5A);
    /* a frame with a zero inserted in the middle */
    memcpy(stream + s, enc, m), s += m;
    stream[s - 25] = 0;
    /* too long for the decoder's buffer (700): 900 bytes with no zero */
    stream[s++] = 0;
    for (int i = 0; i < 900; i++) {
        stream[s++] = 0x42;
    }
    /* a good frame */
    memcpy(stream + s, enc, m), s += m;
    decode(&d, stream, s, &g);
    assert_int_equal(g.frames, 2);
    for (unsigned i = 0; i < g.frames; i++) {
        assert_int_equal(g.lens[i], 40);
        assert_memory_equal(g.data[i], src, 40);
    }
    assert_int_equal(d.stats.frames, 2);
    assert_true(d.stats.crc_errors + d.stats.framing_errors >= 4);
    assert_int_equal(d.stats.overruns, 1);
}

/* ---- two nodes over a byte pipe ------------------------------------------------------------ */

typedef struct pipe {
    uint8_t data[4096];
    size_t len;
    size_t per_write; /* bytes taken per write call (partial writes) */
} pipe;

static sprig_status pipe_write(void *ctx, const uint8_t *data, size_t len, size_t *out)
{
    pipe *p = ctx;
    size_t n = len < p->per_write ? len : p->per_write;
    if (n > sizeof(p->data) - p->len) {
        n = sizeof(p->data) - p->len;
    }
    memcpy(p->data + p->len, data, n);
    p->len += n;
    *out = n;
    return n < len ? SPRIG_STATUS_UNAVAILABLE : SPRIG_STATUS_OK;
}

typedef struct duo {
    fx f;
    sprig_ns_node a, b;
    sprig_ns_route ra[1], rb[1];
    sprig_ns_serial sa, sb;
    pipe ab, ba;
    rec reca, recb;
    unsigned replies;
    /* error injection on a->b: every `every`-th byte (0 = off) is mangled by `mode` */
    unsigned every, counter, mode;
} duo;

static duo the_duo;

static void on_icmp(sprig_ns_node *node, const sprig_ns_header *ip, const sprig_ns_icmp *m,
                    const uint8_t *body, size_t len, void *arg)
{
    (void)node, (void)ip, (void)body, (void)len;
    duo *t = arg;
    t->replies += m->type == SPRIG_NS_ICMP_ECHO_REPLY;
}

static void duo_setup(duo *t, size_t per_write)
{
    memset(t, 0, sizeof(*t));
    fx_init(&t->f);
    t->ab.per_write = per_write;
    t->ba.per_write = per_write;
    sprig_ns_node_cfg c = {.id = 10,
                           .loop = &t->f.loop,
                           .pool = &t->f.pool,
                           .routes = t->ra,
                           .route_cap = 1,
                           .on_icmp = on_icmp,
                           .icmp_arg = t};
    assert_int_equal(sprig_ns_node_init(&t->a, &c), SPRIG_STATUS_OK);
    c.id = 20;
    c.routes = t->rb;
    assert_int_equal(sprig_ns_node_init(&t->b, &c), SPRIG_STATUS_OK);
    rec_init(&t->reca, &t->a, &t->f.fc);
    rec_init(&t->recb, &t->b, &t->f.fc);
    sprig_ns_serial_cfg sc = {
        .io = {.write = pipe_write, .ctx = &t->ab}, .pool = &t->f.pool, .mtu = 1024};
    assert_int_equal(sprig_ns_serial_init(&t->sa, &sc), SPRIG_STATUS_OK);
    sc.io.ctx = &t->ba;
    assert_int_equal(sprig_ns_serial_init(&t->sb, &sc), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_attach(&t->a, &t->sa.link), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_attach(&t->b, &t->sb.link), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_add_route(&t->a, 0, 0, &t->sa.link), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_add_route(&t->b, 0, 0, &t->sb.link), SPRIG_STATUS_OK);
}

static void duo_teardown(duo *t)
{
    sprig_ns_serial_deinit(&t->sa);
    sprig_ns_serial_deinit(&t->sb);
    sprig_ns_serial_deinit(&t->sb);
    sprig_ns_node_deinit(&t->a);
    sprig_ns_node_deinit(&t->b);
    fx_deinit(&t->f);
}

/* Move bytes across until both pipes stay empty. */
static void duo_shuttle(duo *t)
{
    static uint8_t tmp[8192];
    for (int round = 0; round < 10000; round++) {
        fx_run(&t->f, SPRIG_TIME_MS(1));
        if (t->ab.len == 0 && t->ba.len == 0 && !sprig_ns_serial_tx_busy(&t->sa) &&
            !sprig_ns_serial_tx_busy(&t->sb)) {
            return;
        }
        size_t n = 0;
        for (size_t i = 0; i < t->ab.len; i++) {
            uint8_t b = t->ab.data[i];
            if (t->every != 0 && ++t->counter % t->every == 0) {
                switch (t->mode++ % 4) {
                case 0: /* drop */
                    continue;
                case 1: /* flip a bit */
                    b ^= (uint8_t)(1u << (rnd() % 8));
                    break;
                case 2: /* insert garbage */
                    tmp[n++] = (uint8_t)rnd();
                    break;
                default: /* turn into a delimiter */
                    b = 0;
                    break;
                }
            }
            tmp[n++] = b;
        }
        t->ab.len = 0;
        sprig_ns_serial_input(&t->sb, tmp, n);
        memcpy(tmp, t->ba.data, t->ba.len);
        n = t->ba.len;
        t->ba.len = 0;
        sprig_ns_serial_input(&t->sa, tmp, n);
        sprig_ns_serial_writable(&t->sa);
        sprig_ns_serial_writable(&t->sb);
    }
    fail_msg("serial link did not go quiet");
}

static void test_serial_link_ping_and_datagrams(void **state)
{
    (void)state;
    duo *t = &the_duo;
    duo_setup(t, 7); /* tiny partial writes */
    const uint8_t zeros[300] = {0};
    assert_int_equal(sprig_ns_node_ping(&t->a, 20, 1, 1, zeros, sizeof(zeros), 0), SPRIG_STATUS_OK);
    for (unsigned i = 0; i < 6; i++) {
        assert_int_equal(send_dgram(&t->f, &t->a, 20, 5, 200 * i, (uint8_t)i, 2), SPRIG_STATUS_OK);
    }
    duo_shuttle(t);
    assert_int_equal(t->replies, 1);
    assert_int_equal(t->recb.count, 6);
    for (unsigned i = 0; i < 6; i++) {
        assert_int_equal(t->recb.len[i], 200 * i);
    }
    assert_int_equal(t->sa.stats.tx_frames, 7);
    assert_int_equal(t->sb.stats.rx.frames, 7);
    assert_int_equal(t->sb.stats.rx.crc_errors + t->sb.stats.rx.framing_errors, 0);
    duo_teardown(t);
}

static void test_serial_link_survives_byte_errors(void **state)
{
    (void)state;
    duo *t = &the_duo;
    duo_setup(t, 4096);
    t->every = 997; /* about one mangled byte per 1000 */
    enum { N = 40 };
    unsigned sent = 0;
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(send_dgram(&t->f, &t->a, 20, 5, 100 + i, (uint8_t)i, 2), SPRIG_STATUS_OK);
        sent++;
        if (i % 4 == 3) {
            duo_shuttle(t);
        }
    }
    duo_shuttle(t);
    /* never a corrupted datagram; most get through; errors were seen and counted */
    for (unsigned i = 0; i < t->recb.count; i++) {
        assert_int_equal(t->recb.len[i], 100u + t->recb.first[i]);
    }
    assert_int_equal(t->recb.bad, 0);
    assert_true(t->recb.count >= N / 2);
    assert_true(t->recb.count < N);
    const sprig_ns_cobs_stats *s = &t->sb.stats.rx;
    assert_true(s->crc_errors + s->framing_errors > 0);
    /* and after the errors stop, the link is clean again */
    t->every = 0;
    unsigned before = t->recb.count;
    assert_int_equal(send_dgram(&t->f, &t->a, 20, 5, 50, 0x77, 2), SPRIG_STATUS_OK);
    duo_shuttle(t);
    assert_int_equal(t->recb.count, before + 1);
    (void)sent;
    duo_teardown(t);
}

static void test_serial_no_buffer_and_bad_cfg(void **state)
{
    (void)state;
    duo *t = &the_duo;
    duo_setup(t, 4096);
    /* exhaust the pool, then send from a: b cannot take the frame */
    assert_int_equal(send_dgram(&t->f, &t->a, 20, 5, 10, 0, 2), SPRIG_STATUS_OK);
    sprig_buf *held[FX_BUFS + 1];
    size_t nheld = 0;
    while ((held[nheld] = sprig_buf_alloc(&t->f.pool, 0)) != NULL) {
        nheld++;
    }
    duo_shuttle(t);
    assert_int_equal(t->recb.count, 0);
    assert_int_equal(t->sb.stats.no_buffer, 1);
    for (size_t i = 0; i < nheld; i++) {
        sprig_buf_free(held[i]);
    }
    assert_int_equal(send_dgram(&t->f, &t->a, 20, 5, 10, 0, 2), SPRIG_STATUS_OK);
    duo_shuttle(t);
    assert_int_equal(t->recb.count, 1);
    duo_teardown(t);

    sprig_ns_serial s;
    sprig_ns_serial_cfg sc = {.io = {.write = pipe_write}, .pool = NULL, .mtu = 100};
    assert_int_equal(sprig_ns_serial_init(&s, &sc), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_ns_serial_deinit(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serial_cobs_roundtrip_at_boundaries),
        cmocka_unit_test(test_serial_cobs_golden),
        cmocka_unit_test(test_serial_cobs_resync_after_errors),
        cmocka_unit_test(test_serial_link_ping_and_datagrams),
        cmocka_unit_test(test_serial_link_survives_byte_errors),
        cmocka_unit_test(test_serial_no_buffer_and_bad_cfg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
