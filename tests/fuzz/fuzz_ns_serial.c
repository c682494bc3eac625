/*
 * fuzz_ns_serial.c — the COBS + CRC-32 decoder and the serial link under hostile bytes:
 *
 *   1. the pure decoder, byte by byte, with a capacity taken from the input: every frame it
 *      accepts fits, has a matching CRC, and re-encodes to bytes that decode to the same frame;
 *      the decoder's counters only grow;
 *   2. a serial link attached to a node, fed the same bytes in chunks; whatever it hands up is
 *      freed, and afterwards every buffer is back in the pool.
 * Input: [cap byte][chunk byte][stream...]. A violated invariant aborts.
 */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "sprig/ns_serial.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

enum { NBUFS = 8, BUF_SIZE = 256, MTU = 200 };

static sprig_buf bufs[NBUFS];
static uint8_t mem[NBUFS * BUF_SIZE] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
static uint8_t out[1100], enc[1200], again[1100];

static void check_reencode(const uint8_t *frame, size_t n)
{
    sprig_ns_cobs_enc e;
    sprig_ns_cobs_enc_start(&e, frame, n, true);
    size_t m = 0, k;
    while ((k = sprig_ns_cobs_enc_fill(&e, enc + m, 13)) > 0) {
        m += k;
        CHECK(m <= sprig_ns_cobs_enc_max(n));
    }
    sprig_ns_cobs_dec d;
    sprig_ns_cobs_dec_init(&d, 0);
    size_t got = 0;
    int frames = 0;
    for (size_t i = 0; i < m; i++) {
        if (sprig_ns_cobs_dec_byte(&d, enc[i], again, sizeof(again), &got) == SPRIG_NS_COBS_FRAME) {
            frames++;
            CHECK(i == m - 1);
        }
    }
    CHECK(frames == 1 && got == n && memcmp(again, frame, n) == 0);
}

static sprig_status sink_write(void *ctx, const uint8_t *data, size_t len, size_t *written)
{
    (void)ctx, (void)data;
    *written = len;
    return SPRIG_STATUS_OK;
}

static sprig_time zero_now(void *ctx)
{
    (void)ctx;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    size_t cap = 8 + (size_t)data[0] * 4; /* 8..1028 */
    size_t chunk = 1 + data[1];
    data += 2;
    size -= 2;

    sprig_ns_cobs_dec d;
    sprig_ns_cobs_dec_init(&d, 0);
    sprig_ns_cobs_stats prev = d.stats;
    for (size_t i = 0; i < size; i++) {
        size_t n = 0;
        sprig_ns_cobs_result r = sprig_ns_cobs_dec_byte(&d, data[i], out, cap, &n);
        CHECK(d.len <= cap);
        CHECK(d.stats.frames >= prev.frames && d.stats.crc_errors >= prev.crc_errors &&
              d.stats.framing_errors >= prev.framing_errors && d.stats.overruns >= prev.overruns);
        prev = d.stats;
        if (r == SPRIG_NS_COBS_FRAME) {
            CHECK(data[i] == 0 && n + SPRIG_NS_SERIAL_CRC_LEN <= cap);
            check_reencode(out, n);
        }
    }

    sprig_loop loop;
    sprig_loop_cfg lc = {.clock = {.now = zero_now}};
    CHECK(sprig_loop_init(&loop, &lc) == SPRIG_STATUS_OK);
    sprig_buf_pool pool;
    CHECK(sprig_buf_pool_init(&pool, bufs, mem, NBUFS, BUF_SIZE) == SPRIG_STATUS_OK);
    sprig_ns_route routes[1];
    sprig_ns_node node;
    sprig_ns_node_cfg nc = {
        .id = 5, .loop = &loop, .pool = &pool, .routes = routes, .route_cap = 1};
    CHECK(sprig_ns_node_init(&node, &nc) == SPRIG_STATUS_OK);
    sprig_ns_serial s;
    sprig_ns_serial_cfg sc = {.io = {.write = sink_write}, .pool = &pool, .mtu = MTU};
    CHECK(sprig_ns_serial_init(&s, &sc) == SPRIG_STATUS_OK);
    CHECK(sprig_ns_node_attach(&node, &s.link) == SPRIG_STATUS_OK);
    CHECK(sprig_ns_node_add_route(&node, 0, 0, &s.link) == SPRIG_STATUS_OK);
    for (size_t i = 0; i < size; i += chunk) {
        sprig_ns_serial_input(&s, data + i, size - i < chunk ? size - i : chunk);
        sprig_loop_poll(&loop, 0);
    }
    CHECK(!sprig_ns_serial_tx_busy(&s));
    sprig_ns_serial_deinit(&s);
    sprig_ns_node_deinit(&node);
    CHECK(sprig_buf_pool_available(&pool) == NBUFS);
    sprig_buf_pool_deinit(&pool);
    sprig_loop_deinit(&loop);
    return 0;
}
