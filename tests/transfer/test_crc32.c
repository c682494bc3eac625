/* CRC-32 variants (transfer/src/crc32.c): every variant this build carries against a bit-wise
 * reference and zlib's values, over every table entry, random lengths, alignments, start values
 * and incremental chaining; and the configured default for a host build. */
#include "support.h"

#include <stdlib.h>
#include <string.h>

#include "sprig/config.h"
#include "sprig/transfer.h"

#define BIG (1u << 20)

static const int impls[] = {SPRIG_TRANSFER_CRC32_SMALL, SPRIG_TRANSFER_CRC32_TABLE,
                            SPRIG_TRANSFER_CRC32_SLICE8, SPRIG__TRANSFER_CRC32_CLMUL,
                            SPRIG__TRANSFER_CRC32_VCLMUL};
static const char *const impl_names[] = {"?", "small", "table", "slice8", "clmul", "vclmul"};

/* One bit at a time, straight from the definition (zlib's convention: crc 0 to start). */
static uint32_t ref_crc(uint32_t crc, const uint8_t *p, size_t len)
{
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++) {
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

static uint64_t rng = 0x2545f4914f6cdd1du;

static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

static uint8_t *random_buf(size_t n)
{
    uint8_t *b = malloc(n);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++) {
        b[i] = (uint8_t)next_rand();
    }
    return b;
}

/* Variant `impl` over [p, p+len) from crc, or UINT64_MAX when the build lacks it. */
static uint64_t run(int impl, uint32_t crc, const void *p, size_t len)
{
    uint32_t c = crc;
    return sprig__transfer_crc32_impl(impl, &c, p, len) ? c : UINT64_MAX;
}

static int available(int impl)
{
    uint32_t c = 0;
    return sprig__transfer_crc32_impl(impl, &c, "", 0);
}

static void expect_all(uint32_t crc, const uint8_t *p, size_t len)
{
    uint32_t want = ref_crc(crc, p, len);
    for (size_t i = 0; i < sizeof(impls) / sizeof(impls[0]); i++) {
        uint64_t got = run(impls[i], crc, p, len);
        if (got != UINT64_MAX && got != want) {
            fail_msg("%s: len %zu crc %08x: got %08x want %08x", impl_names[impls[i]], len,
                     (unsigned)crc, (unsigned)got, (unsigned)want);
        }
    }
    assert_int_equal(sprig_transfer_crc32(crc, p, len), want);
}

static void test_crc32_host_default(void **state)
{
    (void)state;
    /* The tests run on a hosted OS: the fast variant is the default, and every smaller one is
     * carried too (so all of them are checked below). */
    assert_int_equal(SPRIG_CONFIG_TRANSFER_CRC32, SPRIG_TRANSFER_CRC32_SLICE8);
    assert_true(available(SPRIG_TRANSFER_CRC32_SMALL));
    assert_true(available(SPRIG_TRANSFER_CRC32_TABLE));
    assert_true(available(SPRIG_TRANSFER_CRC32_SLICE8));
#if defined(__x86_64__) && defined(__GNUC__)
    assert_int_equal(SPRIG_CONFIG_TRANSFER_CRC32_CLMUL, 1);
    assert_int_equal(available(SPRIG__TRANSFER_CRC32_CLMUL), __builtin_cpu_supports("pclmul") != 0);
    assert_int_equal(available(SPRIG__TRANSFER_CRC32_VCLMUL),
                     __builtin_cpu_supports("vpclmulqdq") != 0 &&
                         __builtin_cpu_supports("avx512f") != 0);
#endif
    print_message("crc32 variants here: small %d table %d slice8 %d clmul %d vclmul %d\n",
                  available(SPRIG_TRANSFER_CRC32_SMALL), available(SPRIG_TRANSFER_CRC32_TABLE),
                  available(SPRIG_TRANSFER_CRC32_SLICE8), available(SPRIG__TRANSFER_CRC32_CLMUL),
                  available(SPRIG__TRANSFER_CRC32_VCLMUL));
}

static void test_crc32_unknown_variant(void **state)
{
    (void)state;
    uint32_t c = 0x12345678u;
    assert_false(sprig__transfer_crc32_impl(0, &c, "x", 1));
    assert_false(sprig__transfer_crc32_impl(6, &c, "x", 1));
    assert_int_equal(c, 0x12345678u);
}

/* Known values (Python's zlib.crc32), through every variant and the public function. */
static void test_crc32_known_vectors(void **state)
{
    (void)state;
    static const char fox[] = "The quick brown fox jumps over the lazy dog";
    uint8_t b[4096];
    struct {
        const void *p;
        size_t len;
        uint32_t want;
    } v[] = {
        {"", 0, 0},
        {"a", 1, 0xe8b7be43u},
        {"123456789", 9, 0xcbf43926u},
        {fox, sizeof(fox) - 1, 0x414fa339u},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        for (size_t k = 0; k < sizeof(impls) / sizeof(impls[0]); k++) {
            uint64_t got = run(impls[k], 0, v[i].p, v[i].len);
            assert_true(got == UINT64_MAX || got == v[i].want);
        }
        assert_int_equal(sprig_transfer_crc32(0, v[i].p, v[i].len), v[i].want);
        assert_int_equal(ref_crc(0, v[i].p, v[i].len), v[i].want);
    }
    for (size_t i = 0; i < 256; i++) {
        b[i] = (uint8_t)i;
    }
    assert_int_equal(sprig_transfer_crc32(0, b, 256), 0x29058c73u);
    memset(b, 0, 100);
    assert_int_equal(sprig_transfer_crc32(0, b, 100), 0x9988c6cau);
    memset(b, 0xff, sizeof(b));
    assert_int_equal(sprig_transfer_crc32(0, b, sizeof(b)), 0xf154670au);
    for (size_t i = 0; i < 1000; i++) {
        b[i] = (uint8_t)(i * 7 + 3);
    }
    assert_int_equal(sprig_transfer_crc32(0, b, 1000), 0x17bc2a46u);
    for (size_t k = 0; k < sizeof(impls) / sizeof(impls[0]); k++) {
        uint64_t got = run(impls[k], 0, b, 1000);
        assert_true(got == UINT64_MAX || got == 0x17bc2a46u);
    }
    /* "123456789" in two pieces, every split. */
    static const char digits[] = "123456789";
    for (size_t s = 0; s <= 9; s++) {
        uint32_t part = sprig_transfer_crc32(0, digits, s);
        assert_int_equal(sprig_transfer_crc32(part, &digits[s], 9 - s), 0xcbf43926u);
    }
}

/* Every byte value at every position of an 8-byte block, from several start values: reaches
 * every entry of every table (slicing-by-8 looks byte k of a block up in table 7 - k). */
static void test_crc32_every_table_entry(void **state)
{
    (void)state;
    static const uint32_t starts[] = {0, 0xffffffffu, 0x5a5a5a5au, 0x00000001u};
    for (size_t s = 0; s < sizeof(starts) / sizeof(starts[0]); s++) {
        for (size_t pos = 0; pos < 16; pos++) {
            for (unsigned v = 0; v < 256; v++) {
                uint8_t b[16] = {0};
                b[pos] = (uint8_t)v;
                expect_all(starts[s], b, 8);
                expect_all(starts[s], b, 16);
            }
        }
    }
}

/* Every length 0..600 at every offset 0..15 (the folding paths need 64 or 256 bytes, fold 64 or
 * 256 at a time and take multiples of 16; the rest goes byte-wise or by 8), random start
 * values. */
static void test_crc32_lengths_and_alignments(void **state)
{
    (void)state;
    uint8_t *b = random_buf(620);
    for (size_t off = 0; off < 16; off++) {
        for (size_t len = 0; len <= 600; len++) {
            expect_all(next_rand(), b + off, len);
        }
    }
    free(b);
}

/* Random lengths up to 64 KiB at random offsets, and 1 MiB in one piece. */
static void test_crc32_random_spans(void **state)
{
    (void)state;
    uint8_t *b = random_buf(BIG + 64);
    for (int i = 0; i < 200; i++) {
        size_t off = next_rand() % 64u;
        size_t len = next_rand() % 65537u;
        expect_all(next_rand(), b + off, len);
    }
    expect_all(0, b, BIG);
    expect_all(0, b + 3, BIG - 3);
    free(b);
}

/* A 1 MiB buffer fed in random pieces (as the engine does, chunk by chunk) gives the one-piece
 * value, for every variant. */
static void test_crc32_incremental_chaining(void **state)
{
    (void)state;
    uint8_t *b = random_buf(BIG);
    uint32_t want = ref_crc(0, b, BIG);
    for (size_t k = 0; k < sizeof(impls) / sizeof(impls[0]); k++) {
        if (!available(impls[k])) {
            continue;
        }
        for (int round = 0; round < 3; round++) {
            uint32_t c = 0;
            size_t off = 0;
            while (off < BIG) {
                size_t n = next_rand() % (round == 0 ? 17u : round == 1 ? 300u : 70000u);
                n = n > BIG - off ? BIG - off : n;
                assert_true(sprig__transfer_crc32_impl(impls[k], &c, b + off, n));
                off += n;
            }
            if (c != want) {
                fail_msg("%s: chained %08x, one piece %08x", impl_names[impls[k]], (unsigned)c,
                         (unsigned)want);
            }
        }
    }
    uint32_t c = 0;
    for (size_t off = 0; off < BIG; off += 65488) {
        size_t n = BIG - off < 65488 ? BIG - off : 65488;
        c = sprig_transfer_crc32(c, b + off, n);
    }
    assert_int_equal(c, want);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32_host_default),
        cmocka_unit_test(test_crc32_unknown_variant),
        cmocka_unit_test(test_crc32_known_vectors),
        cmocka_unit_test(test_crc32_every_table_entry),
        cmocka_unit_test(test_crc32_lengths_and_alignments),
        cmocka_unit_test(test_crc32_random_spans),
        cmocka_unit_test(test_crc32_incremental_chaining),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
