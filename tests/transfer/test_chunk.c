/* Transfer chunks: golden encodings (hand-computed from WIRE.md's field numbers), decoding of
 * hostile input, zero-copy wrap, CRC-32, the DGRAM integrity trailer. */
#include "support.h"

#include <string.h>

#include "sprig/transfer.h"

#define ARR(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

static void expect_encoding(const sprig_transfer_chunk *c, const uint8_t *want, size_t want_len)
{
    uint8_t out[256];
    size_t n = 0;
    assert_int_equal(sprig_transfer_chunk_encode(c, out, sizeof(out), &n), SPRIG_STATUS_OK);
    assert_int_equal(n, want_len);
    assert_memory_equal(out, want, want_len);
    /* and back */
    sprig_transfer_chunk d;
    assert_int_equal(sprig_transfer_chunk_decode(out, n, &d), SPRIG_STATUS_OK);
    assert_int_equal(d.type, c->type);
    assert_int_equal(d.data_len, c->data_len);
}

static void test_chunk_golden_start(void **state)
{
    (void)state;
    sprig_transfer_chunk c = {0};
    c.fields = SPRIG_TRANSFER_F_TYPE | SPRIG_TRANSFER_F_DESIRED_SESSION_ID |
               SPRIG_TRANSFER_F_RESOURCE_ID | SPRIG_TRANSFER_F_PROTOCOL_VERSION |
               SPRIG_TRANSFER_F_DIRECTION | SPRIG_TRANSFER_F_OFFSET |
               SPRIG_TRANSFER_F_WINDOW_END_OFFSET | SPRIG_TRANSFER_F_MAX_CHUNK_SIZE |
               SPRIG_TRANSFER_F_MIN_DELAY;
    c.type = SPRIG_TRANSFER_CHUNK_START;
    c.desired_session_id = 1;
    c.resource_id = 7;
    c.protocol_version = 2;
    c.direction = SPRIG_TRANSFER_DIR_READ;
    c.window_end_offset = 4096;
    c.max_chunk_size_bytes = 1024;
    /* 3: 18 80 08 | 4: 20 00 | 5 (offset 0): omitted | 9: 48 80 20 | 10: 50 01 | 11: 58 07 |
     * 13: 68 02 | 14: 70 01 | 1001 (tag 8008 = c8 3e): c8 3e 01 */
    expect_encoding(&c, ARR(0x18, 0x80, 0x08, 0x20, 0x00, 0x48, 0x80, 0x20, 0x50, 0x01, 0x58, 0x07,
                            0x68, 0x02, 0x70, 0x01, 0xc8, 0x3e, 0x01));
}

static void test_chunk_golden_data(void **state)
{
    (void)state;
    sprig_transfer_chunk c = {0};
    c.fields = SPRIG_TRANSFER_F_TYPE | SPRIG_TRANSFER_F_SESSION_ID | SPRIG_TRANSFER_F_OFFSET |
               SPRIG_TRANSFER_F_REMAINING_BYTES | SPRIG_TRANSFER_F_CRC32;
    c.type = SPRIG_TRANSFER_CHUNK_DATA;
    c.session_id = 1;
    c.data = (const uint8_t *)"hi";
    c.data_len = 2;
    c.crc32 = sprig_transfer_crc32(0, "hi", 2);
    assert_int_equal(c.crc32, 0xd8932aacu); /* zlib.crc32(b"hi") */
    /* data first: 32 02 68 69 | 7: 38 00 | 10: 50 00 | 12: 60 01 |
     * 1000 (tag 8005, fixed32 = c5 3e): c5 3e ac 2a 93 d8 */
    expect_encoding(&c, ARR(0x32, 0x02, 0x68, 0x69, 0x38, 0x00, 0x50, 0x00, 0x60, 0x01, 0xc5, 0x3e,
                            0xac, 0x2a, 0x93, 0xd8));
}

static void test_chunk_golden_completion(void **state)
{
    (void)state;
    sprig_transfer_chunk c = {0};
    c.fields = SPRIG_TRANSFER_F_TYPE | SPRIG_TRANSFER_F_SESSION_ID | SPRIG_TRANSFER_F_STATUS;
    c.type = SPRIG_TRANSFER_CHUNK_COMPLETION;
    c.session_id = 5;
    c.status = SPRIG_STATUS_DATA_LOSS;
    expect_encoding(&c, ARR(0x40, 0x0f, 0x50, 0x04, 0x60, 0x05));
}

static void test_chunk_golden_parameters(void **state)
{
    (void)state;
    sprig_transfer_chunk c = {0};
    c.fields = SPRIG_TRANSFER_F_TYPE | SPRIG_TRANSFER_F_SESSION_ID | SPRIG_TRANSFER_F_OFFSET |
               SPRIG_TRANSFER_F_WINDOW_END_OFFSET | SPRIG_TRANSFER_F_MAX_CHUNK_SIZE |
               SPRIG_TRANSFER_F_MIN_DELAY;
    c.type = SPRIG_TRANSFER_CHUNK_PARAMETERS_CONTINUE;
    c.session_id = 3;
    c.offset = 300;
    c.window_end_offset = 1324;
    c.max_chunk_size_bytes = 200;
    c.min_delay_microseconds = 2000;
    expect_encoding(&c, ARR(0x18, 0xc8, 0x01, 0x20, 0xd0, 0x0f, 0x28, 0xac, 0x02, 0x48, 0xac, 0x0a,
                            0x50, 0x03, 0x60, 0x03));
}

static void test_chunk_golden_start_ack_with_offset(void **state)
{
    (void)state;
    sprig_transfer_chunk c = {0};
    c.fields = SPRIG_TRANSFER_F_TYPE | SPRIG_TRANSFER_F_SESSION_ID | SPRIG_TRANSFER_F_RESOURCE_ID |
               SPRIG_TRANSFER_F_PROTOCOL_VERSION | SPRIG_TRANSFER_F_INITIAL_OFFSET;
    c.type = SPRIG_TRANSFER_CHUNK_START_ACK;
    c.session_id = 9;
    c.resource_id = 300;
    c.protocol_version = 2;
    c.initial_offset = 1u << 20;
    /* 10: 50 06 | 11: 58 ac 02 | 12: 60 09 | 13: 68 02 | 15: 78 80 80 40 */
    expect_encoding(
        &c, ARR(0x50, 0x06, 0x58, 0xac, 0x02, 0x60, 0x09, 0x68, 0x02, 0x78, 0x80, 0x80, 0x40));
}

static void test_chunk_decode_any_order_and_unknown_fields(void **state)
{
    (void)state;
    /* session 2, an unknown field 99 (varint), data "abc", type DATA, offset 2^33 */
    static const uint8_t in[] = {0x60, 0x02, 0x98, 0x06, 0x05, 0x32, 0x03, 'a',  'b',
                                 'c',  0x50, 0x00, 0x28, 0x80, 0x80, 0x80, 0x80, 0x20};
    sprig_transfer_chunk c;
    assert_int_equal(sprig_transfer_chunk_decode(in, sizeof(in), &c), SPRIG_STATUS_OK);
    assert_int_equal(c.session_id, 2);
    assert_true(c.fields & SPRIG_TRANSFER_F_SESSION_ID);
    assert_true(c.fields & SPRIG_TRANSFER_F_TYPE);
    assert_int_equal(c.type, SPRIG_TRANSFER_CHUNK_DATA);
    assert_true(c.offset == (UINT64_C(1) << 33));
    assert_ptr_equal(c.data, in + 7); /* no copy */
    assert_int_equal(c.data_len, 3);
    assert_false(c.fields & SPRIG_TRANSFER_F_REMAINING_BYTES);
}

static void test_chunk_decode_rejects_malformed(void **state)
{
    (void)state;
    sprig_transfer_chunk c;
    /* truncated varint */
    assert_int_equal(sprig_transfer_chunk_decode(ARR(0x60, 0x80), &c), SPRIG_STATUS_DATA_LOSS);
    /* data longer than the input */
    assert_int_equal(sprig_transfer_chunk_decode(ARR(0x32, 0x05, 'a'), &c), SPRIG_STATUS_DATA_LOSS);
    /* data with a varint wire type */
    assert_int_equal(sprig_transfer_chunk_decode(ARR(0x30, 0x01), &c), SPRIG_STATUS_DATA_LOSS);
    /* field number 0 */
    assert_int_equal(sprig_transfer_chunk_decode(ARR(0x00, 0x01), &c), SPRIG_STATUS_DATA_LOSS);
    /* wire type 7 */
    assert_int_equal(sprig_transfer_chunk_decode(ARR(0x67, 0x01), &c), SPRIG_STATUS_DATA_LOSS);
    /* empty input is an all-default chunk */
    assert_int_equal(sprig_transfer_chunk_decode(NULL, 0, &c), SPRIG_STATUS_OK);
    assert_int_equal(c.fields, 0);
    assert_int_equal(sprig_transfer_chunk_decode(NULL, 3, &c), SPRIG_STATUS_INVALID_ARGUMENT);
}

static void test_chunk_encode_too_small(void **state)
{
    (void)state;
    sprig_transfer_chunk c = {0};
    c.fields = SPRIG_TRANSFER_F_TYPE | SPRIG_TRANSFER_F_SESSION_ID;
    c.type = SPRIG_TRANSFER_CHUNK_COMPLETION_ACK;
    c.session_id = 1;
    uint8_t out[3];
    size_t n = 9;
    assert_int_equal(sprig_transfer_chunk_encode(&c, out, sizeof(out), &n),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(n, 0);
    c.data_len = 4; /* data NULL */
    assert_int_equal(sprig_transfer_chunk_encode(&c, out, sizeof(out), &n),
                     SPRIG_STATUS_INVALID_ARGUMENT);
}

static void test_chunk_worst_case_overhead(void **state)
{
    (void)state;
    static uint8_t data[300];
    sprig_transfer_chunk c = {0};
    c.fields = 0xffffu; /* every field */
    c.type = SPRIG_TRANSFER_CHUNK_DATA;
    c.transfer_id = c.pending_bytes = c.max_chunk_size_bytes = UINT32_MAX;
    c.min_delay_microseconds = c.status = c.window_end_offset = c.resource_id = UINT32_MAX;
    c.session_id = c.protocol_version = c.desired_session_id = c.crc32 = UINT32_MAX;
    c.direction = UINT32_MAX;
    c.type = UINT32_MAX;
    c.offset = c.remaining_bytes = c.initial_offset = UINT64_MAX;
    c.data = data;
    c.data_len = sizeof(data);
    uint8_t out[sizeof(data) + SPRIG_TRANSFER_DATA_HEADROOM + SPRIG_TRANSFER_CHUNK_TAILROOM];
    size_t n = 0;
    assert_int_equal(sprig_transfer_chunk_encode(&c, out, sizeof(out), &n), SPRIG_STATUS_OK);
    assert_int_equal(n, sizeof(out) - 3); /* exact but for the length: 300 takes 2 bytes, not 5 */
    /* a DATA chunk as the engine sends it fits in data + SPRIG_TRANSFER_DATA_OVERHEAD */
    c.fields = SPRIG_TRANSFER_F_TYPE | SPRIG_TRANSFER_F_SESSION_ID | SPRIG_TRANSFER_F_OFFSET |
               SPRIG_TRANSFER_F_REMAINING_BYTES | SPRIG_TRANSFER_F_CRC32;
    c.type = SPRIG_TRANSFER_CHUNK_DATA;
    assert_int_equal(sprig_transfer_chunk_encode(&c, out, sizeof(out), &n), SPRIG_STATUS_OK);
    /* ... with the DGRAM trailer too, even with 64-bit offsets (the engine's are 32-bit) */
    assert_true(n + SPRIG_TRANSFER_TRAILER <= sizeof(data) + SPRIG_TRANSFER_DATA_OVERHEAD);
}

static void test_chunk_wrap_matches_encode(void **state)
{
    (void)state;
    static sprig_buf bufs[1];
    static uint8_t mem[512] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
    sprig_buf_pool pool;
    assert_int_equal(sprig_buf_pool_init(&pool, bufs, mem, 1, sizeof(mem)), SPRIG_STATUS_OK);
    sprig_buf *b = sprig_buf_alloc(&pool, 16);
    assert_non_null(b);
    memcpy(sprig_buf_put(b, 200), mem + 300, 200); /* any bytes */
    uint8_t payload[200];
    memcpy(payload, sprig_buf_data(b), sizeof(payload));
    sprig_transfer_chunk c = {0};
    c.fields = SPRIG_TRANSFER_F_TYPE | SPRIG_TRANSFER_F_SESSION_ID | SPRIG_TRANSFER_F_OFFSET |
               SPRIG_TRANSFER_F_REMAINING_BYTES;
    c.type = SPRIG_TRANSFER_CHUNK_DATA;
    c.session_id = 77;
    c.offset = 1000;
    c.remaining_bytes = 5;
    assert_int_equal(sprig_transfer_chunk_wrap(b, &c), SPRIG_STATUS_OK);
    c.data = payload;
    c.data_len = sizeof(payload);
    uint8_t out[512];
    size_t n = 0;
    assert_int_equal(sprig_transfer_chunk_encode(&c, out, sizeof(out), &n), SPRIG_STATUS_OK);
    assert_int_equal(sprig_buf_len(b), n);
    assert_memory_equal(sprig_buf_data(b), out, n);
    /* no headroom for the data header: refused, unchanged */
    sprig_buf_reset(b, 0);
    memset(sprig_buf_put(b, 10), 1, 10);
    assert_int_equal(sprig_transfer_chunk_wrap(b, &c), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(sprig_buf_len(b), 10);
    sprig_buf_free(b);
    assert_int_equal(sprig_buf_pool_available(&pool), 1);
}

static void test_chunk_crc32_vectors(void **state)
{
    (void)state;
    assert_int_equal(sprig_transfer_crc32(0, "", 0), 0);
    assert_int_equal(sprig_transfer_crc32(0, "123456789", 9), 0xcbf43926u);
    uint32_t part = sprig_transfer_crc32(0, "1234", 4);
    assert_int_equal(sprig_transfer_crc32(part, "56789", 5), 0xcbf43926u);
}

/* frame + the data in between is byte for byte what encode writes (the engine's zero-copy
 * send path), for data of 0, 1, 127, 128 and 300 bytes; fields that do not fit are refused. */
static void test_chunk_frame_matches_encode(void **state)
{
    (void)state;
    static const size_t lens[] = {0, 1, 127, 128, 300};
    uint8_t data[300];
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)(i * 7u + 1u);
    }
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        sprig_transfer_chunk c = {0};
        c.fields = SPRIG_TRANSFER_F_TYPE | SPRIG_TRANSFER_F_SESSION_ID | SPRIG_TRANSFER_F_OFFSET |
                   SPRIG_TRANSFER_F_REMAINING_BYTES | SPRIG_TRANSFER_F_CRC32;
        c.type = SPRIG_TRANSFER_CHUNK_DATA;
        c.session_id = UINT32_MAX;
        c.offset = UINT32_MAX - 1u;
        c.remaining_bytes = UINT32_MAX;
        c.crc32 = 0x12345678u;
        c.data = data;
        c.data_len = lens[k];
        uint8_t want[512];
        size_t n = 0;
        assert_int_equal(sprig_transfer_chunk_encode(&c, want, sizeof(want), &n), SPRIG_STATUS_OK);
        uint8_t f[SPRIG_TRANSFER_DATA_OVERHEAD];
        size_t hl = 99;
        size_t fl = sprig_transfer_chunk_frame(&c, lens[k], f, &hl);
        assert_true(fl > hl);
        assert_int_equal(hl, lens[k] == 0 ? 0 : lens[k] < 128 ? 2 : 3);
        uint8_t got[512];
        memcpy(got, f, hl);
        memcpy(got + hl, data, lens[k]);
        memcpy(got + hl + lens[k], f + hl, fl - hl);
        assert_int_equal(fl + lens[k], n);
        assert_memory_equal(got, want, n);
    }
    sprig_transfer_chunk big = {0}; /* every field at its widest: more than the overhead */
    big.fields = 0xFFFFu;
    big.offset = big.remaining_bytes = big.initial_offset = UINT64_MAX;
    big.transfer_id = big.pending_bytes = big.resource_id = big.session_id = UINT32_MAX;
    size_t hl = 0;
    assert_int_equal(
        sprig_transfer_chunk_frame(&big, 1, (uint8_t[SPRIG_TRANSFER_DATA_OVERHEAD]){0}, &hl), 0);
}

/* The DGRAM trailer: field 1003's tag (DD 3E), then the CRC-32 of everything before it, little
 * endian (the golden value is zlib.crc32(b"123456789\xdd\x3e")). */
static void test_chunk_seal_golden(void **state)
{
    (void)state;
    uint8_t m[9 + SPRIG_TRANSFER_TRAILER];
    memcpy(m, "123456789", 9);
    sprig_transfer_chunk_seal(m, 9);
    static const uint8_t want[] = {'1', '2',  '3',  '4',  '5',  '6',  '7', '8',
                                   '9', 0xdd, 0x3e, 0xde, 0x74, 0xf5, 0x28};
    assert_memory_equal(m, want, sizeof(want));
    size_t len = sizeof(m);
    assert_int_equal(sprig_transfer_chunk_unseal(m, &len), SPRIG_STATUS_OK);
    assert_int_equal(len, 9);
    /* an empty chunk (a valid, all-default Chunk) sealed */
    uint8_t e[SPRIG_TRANSFER_TRAILER];
    sprig_transfer_chunk_seal(e, 0);
    len = sizeof(e);
    assert_int_equal(sprig_transfer_chunk_unseal(e, &len), SPRIG_STATUS_OK);
    assert_int_equal(len, 0);
}

/* A sealed chunk is still a valid Chunk (a decoder that does not check skips field 1003), and
 * unseal rejects every damage, leaving the length alone. */
static void test_chunk_seal_unseal(void **state)
{
    (void)state;
    sprig_transfer_chunk c = {0};
    c.fields = SPRIG_TRANSFER_F_TYPE | SPRIG_TRANSFER_F_SESSION_ID | SPRIG_TRANSFER_F_OFFSET;
    c.type = SPRIG_TRANSFER_CHUNK_DATA;
    c.session_id = 3;
    c.offset = 1000;
    c.data = (const uint8_t *)"hello";
    c.data_len = 5;
    uint8_t m[64];
    size_t n = 0;
    assert_int_equal(sprig_transfer_chunk_encode(&c, m, sizeof(m), &n), SPRIG_STATUS_OK);
    sprig_transfer_chunk_seal(m, n);
    size_t sealed = n + SPRIG_TRANSFER_TRAILER;
    sprig_transfer_chunk d;
    assert_int_equal(sprig_transfer_chunk_decode(m, sealed, &d), SPRIG_STATUS_OK);
    assert_int_equal(d.session_id, 3);
    assert_int_equal(d.offset, 1000);
    assert_int_equal(d.data_len, 5);
    assert_int_equal(d.fields, c.fields);
    size_t len = sealed;
    assert_int_equal(sprig_transfer_chunk_unseal(m, &len), SPRIG_STATUS_OK);
    assert_int_equal(len, n);
    for (size_t bit = 0; bit < sealed * 8; bit++) { /* any single bit flipped */
        m[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        len = sealed;
        assert_int_equal(sprig_transfer_chunk_unseal(m, &len), SPRIG_STATUS_DATA_LOSS);
        assert_int_equal(len, sealed);
        m[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    for (size_t k = 0; k < SPRIG_TRANSFER_TRAILER; k++) { /* too short for a trailer */
        len = k;
        assert_int_equal(sprig_transfer_chunk_unseal(m + sealed - k, &len), SPRIG_STATUS_DATA_LOSS);
        assert_int_equal(len, k);
    }
    len = n; /* no trailer at all */
    assert_int_equal(sprig_transfer_chunk_unseal(m, &len), SPRIG_STATUS_DATA_LOSS);
    len = sealed - 1; /* cut short */
    assert_int_equal(sprig_transfer_chunk_unseal(m, &len), SPRIG_STATUS_DATA_LOSS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunk_golden_start),
        cmocka_unit_test(test_chunk_golden_data),
        cmocka_unit_test(test_chunk_golden_completion),
        cmocka_unit_test(test_chunk_golden_parameters),
        cmocka_unit_test(test_chunk_golden_start_ack_with_offset),
        cmocka_unit_test(test_chunk_decode_any_order_and_unknown_fields),
        cmocka_unit_test(test_chunk_decode_rejects_malformed),
        cmocka_unit_test(test_chunk_encode_too_small),
        cmocka_unit_test(test_chunk_worst_case_overhead),
        cmocka_unit_test(test_chunk_wrap_matches_encode),
        cmocka_unit_test(test_chunk_crc32_vectors),
        cmocka_unit_test(test_chunk_frame_matches_encode),
        cmocka_unit_test(test_chunk_seal_golden),
        cmocka_unit_test(test_chunk_seal_unseal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
