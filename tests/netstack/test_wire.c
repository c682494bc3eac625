/* test_wire.c — netstack header codecs: golden bytes, rejection of bad input, checksums. */
#include "support.h"

#include <string.h>

#include "sprig/ns_wire.h"

static void test_wire_header_golden(void **state)
{
    (void)state;
    sprig_ns_header h = {.tc = 2,
                         .hop_limit = 8,
                         .proto = SPRIG_NS_PROTO_DGRAM,
                         .length = 20,
                         .dst = 0x0102,
                         .src = 0x0A0B};
    uint8_t p[8];
    assert_int_equal(sprig_ns_header_emit_len(&h), 8);
    assert_int_equal(sprig_ns_header_emit(&h, p, sizeof(p)), SPRIG_STATUS_OK);
    /* ver 01, tc 10, hop 1000 = 0110 1000 */
    const uint8_t golden[8] = {0x68, 17, 0x00, 20, 0x01, 0x02, 0x0A, 0x0B};
    assert_memory_equal(p, golden, 8);
    uint8_t pkt[20] = {0};
    memcpy(pkt, golden, 8);
    assert_int_equal(sprig_ns_header_check(pkt, sizeof(pkt)), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_header_tc(pkt), 2);
    assert_int_equal(sprig_ns_header_hop_limit(pkt), 8);
    assert_int_equal(sprig_ns_header_proto(pkt), 17);
    assert_int_equal(sprig_ns_header_length(pkt), 20);
    assert_int_equal(sprig_ns_header_dst(pkt), 0x0102);
    assert_int_equal(sprig_ns_header_src(pkt), 0x0A0B);
    sprig_ns_header back;
    assert_int_equal(sprig_ns_header_parse(pkt, sizeof(pkt), &back), SPRIG_STATUS_OK);
    assert_int_equal(back.tc, h.tc);
    assert_int_equal(back.hop_limit, h.hop_limit);
    assert_int_equal(back.proto, h.proto);
    assert_int_equal(back.length, h.length);
    assert_int_equal(back.dst, h.dst);
    assert_int_equal(back.src, h.src);
    sprig_ns_header_set_hop_limit(pkt, 3);
    assert_int_equal(pkt[0], 0x63);
}

static void test_wire_header_rejects(void **state)
{
    (void)state;
    const uint8_t good[8] = {0x48, 1, 0, 8, 0, 2, 0, 1};
    uint8_t p[8];
    assert_int_equal(sprig_ns_header_check(good, 8), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_header_check(good, 7), SPRIG_STATUS_DATA_LOSS);
    assert_int_equal(sprig_ns_header_check(NULL, 8), SPRIG_STATUS_DATA_LOSS);
    memcpy(p, good, 8);
    p[0] = 0x88; /* version 2 */
    assert_int_equal(sprig_ns_header_check(p, 8), SPRIG_STATUS_DATA_LOSS);
    memcpy(p, good, 8);
    p[0] = 0x40; /* hop limit 0 */
    assert_int_equal(sprig_ns_header_check(p, 8), SPRIG_STATUS_DATA_LOSS);
    memcpy(p, good, 8);
    p[3] = 9; /* longer than the bytes */
    assert_int_equal(sprig_ns_header_check(p, 8), SPRIG_STATUS_DATA_LOSS);
    p[3] = 7; /* shorter than a header */
    assert_int_equal(sprig_ns_header_check(p, 8), SPRIG_STATUS_DATA_LOSS);
    memcpy(p, good, 8);
    p[5] = 0; /* dst 0 */
    assert_int_equal(sprig_ns_header_check(p, 8), SPRIG_STATUS_DATA_LOSS);
    memcpy(p, good, 8);
    p[6] = p[7] = 0xFF; /* src broadcast */
    assert_int_equal(sprig_ns_header_check(p, 8), SPRIG_STATUS_DATA_LOSS);
    memset(p, 0, 8);
    assert_int_equal(sprig_ns_header_check(p, 8), SPRIG_STATUS_DATA_LOSS);

    sprig_ns_header h = {.tc = 4, .hop_limit = 1, .length = 8, .dst = 1, .src = 2};
    assert_int_equal(sprig_ns_header_emit(&h, p, 8), SPRIG_STATUS_INVALID_ARGUMENT);
    h.tc = 0;
    h.hop_limit = 16;
    assert_int_equal(sprig_ns_header_emit(&h, p, 8), SPRIG_STATUS_INVALID_ARGUMENT);
    h.hop_limit = 1;
    assert_int_equal(sprig_ns_header_emit(&h, p, 7), SPRIG_STATUS_RESOURCE_EXHAUSTED);
}

static void test_wire_crc32_known_value(void **state)
{
    (void)state;
    const uint8_t s[] = "123456789";
    assert_int_equal(sprig_ns_crc32(0, s, 9), 0xCBF43926u);
    /* chainable */
    assert_int_equal(sprig_ns_crc32(sprig_ns_crc32(0, s, 4), s + 4, 5), 0xCBF43926u);
    assert_int_equal(sprig_ns_crc32(0, s, 0), 0);
}

static void test_wire_dgram_roundtrip_and_corruption(void **state)
{
    (void)state;
    uint8_t seg[6 + 5] = {0, 0, 0, 0, 0, 0, 'h', 'e', 'l', 'l', 'o'};
    sprig_ns_header ip = {.src = 7, .dst = 9, .proto = SPRIG_NS_PROTO_DGRAM, .length = 8 + 11};
    sprig_ns_dgram d = {.src_port = 1234, .dst_port = 80};
    assert_int_equal(sprig_ns_dgram_emit(&ip, &d, seg, sizeof(seg)), SPRIG_STATUS_OK);
    assert_int_equal(seg[0], 0x04);
    assert_int_equal(seg[1], 0xD2);
    sprig_ns_dgram out;
    assert_int_equal(sprig_ns_dgram_parse(&ip, seg, sizeof(seg), &out), SPRIG_STATUS_OK);
    assert_int_equal(out.src_port, 1234);
    assert_int_equal(out.dst_port, 80);
    /* any single bit flip is caught */
    for (size_t i = 0; i < sizeof(seg) * 8; i++) {
        seg[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_not_equal(sprig_ns_dgram_parse(&ip, seg, sizeof(seg), &out), SPRIG_STATUS_OK);
        seg[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    /* wrong pseudo-header: delivered to the wrong node, refused */
    sprig_ns_header other = ip;
    other.dst = 10;
    assert_int_equal(sprig_ns_dgram_parse(&other, seg, sizeof(seg), &out), SPRIG_STATUS_DATA_LOSS);
    assert_int_equal(sprig_ns_dgram_parse(&ip, seg, 5, &out), SPRIG_STATUS_DATA_LOSS);
    d.src_port = 0;
    assert_int_equal(sprig_ns_dgram_emit(&ip, &d, seg, sizeof(seg)), SPRIG_STATUS_INVALID_ARGUMENT);
}

static void test_wire_icmp_roundtrip_and_status(void **state)
{
    (void)state;
    uint8_t msg[8 + 3] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3};
    sprig_ns_header ip = {.src = 1, .dst = 2, .proto = SPRIG_NS_PROTO_ICMP, .length = 19};
    sprig_ns_icmp m = {.type = SPRIG_NS_ICMP_ECHO_REQUEST, .a = 0x1234, .b = 7};
    assert_int_equal(sprig_ns_icmp_emit(&ip, &m, msg, sizeof(msg)), SPRIG_STATUS_OK);
    sprig_ns_icmp out;
    assert_int_equal(sprig_ns_icmp_parse(&ip, msg, sizeof(msg), &out), SPRIG_STATUS_OK);
    assert_int_equal(out.type, SPRIG_NS_ICMP_ECHO_REQUEST);
    assert_int_equal(out.a, 0x1234);
    assert_int_equal(out.b, 7);
    msg[10] ^= 0x40;
    assert_int_equal(sprig_ns_icmp_parse(&ip, msg, sizeof(msg), &out), SPRIG_STATUS_DATA_LOSS);
    assert_int_equal(sprig_ns_icmp_parse(&ip, msg, 7, &out), SPRIG_STATUS_DATA_LOSS);

    sprig_ns_icmp e = {.type = SPRIG_NS_ICMP_UNREACHABLE, .code = SPRIG_NS_UNREACH_PORT};
    assert_int_equal(sprig_ns_icmp_status(&e), SPRIG_STATUS_UNAVAILABLE);
    e.code = SPRIG_NS_UNREACH_NO_ROUTE;
    assert_int_equal(sprig_ns_icmp_status(&e), SPRIG_STATUS_NOT_FOUND);
    e.code = SPRIG_NS_UNREACH_PROTO;
    assert_int_equal(sprig_ns_icmp_status(&e), SPRIG_STATUS_UNIMPLEMENTED);
    e.type = SPRIG_NS_ICMP_TOO_BIG;
    assert_int_equal(sprig_ns_icmp_status(&e), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    e.type = SPRIG_NS_ICMP_TIME_EXCEEDED;
    assert_int_equal(sprig_ns_icmp_status(&e), SPRIG_STATUS_DEADLINE_EXCEEDED);
    e.type = SPRIG_NS_ICMP_ECHO_REPLY;
    assert_int_equal(sprig_ns_icmp_status(&e), SPRIG_STATUS_OK);
    assert_false(sprig_ns_icmp_is_error(SPRIG_NS_ICMP_ECHO_REQUEST));
    assert_true(sprig_ns_icmp_is_error(SPRIG_NS_ICMP_TOO_BIG));
}

/* The Internet checksum against a plain 16-bit big-endian reference (RFC 1071), for every length
 * 0..300 at every start offset 0..7 (odd lengths, unaligned starts, the wide host loop's tail),
 * over all-0xFF bytes (carry-heavy) and a pseudo-random pattern. */
static uint16_t csum_ref(uint16_t src, uint16_t dst, uint8_t proto, const uint8_t *p, size_t n)
{
    uint64_t sum = (uint64_t)src + dst + proto + (n & 0xFFFFu);
    for (size_t i = 0; i < n; i++) {
        sum += (i % 2 == 0) ? (uint64_t)p[i] << 8 : p[i];
    }
    while (sum >> 16) {
        sum = (sum & 0xFFFFu) + (sum >> 16);
    }
    return (uint16_t)~sum;
}

static void test_wire_csum_matches_reference(void **state)
{
    (void)state;
    static uint8_t buf[320];
    for (int pass = 0; pass < 2; pass++) {
        uint32_t x = 0x12345678u;
        for (size_t i = 0; i < sizeof(buf); i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            buf[i] = pass == 0 ? 0xFFu : (uint8_t)(x >> 24);
        }
        for (size_t off = 0; off < 8; off++) {
            for (size_t n = 0; n <= 300; n++) {
                assert_int_equal(sprig_ns_csum(0xFFFE, 0x0102, 6, buf + off, n),
                                 csum_ref(0xFFFE, 0x0102, 6, buf + off, n));
            }
        }
    }
    /* a segment carrying its own checksum verifies to 0 */
    uint8_t seg[64];
    memcpy(seg, buf, sizeof(seg));
    seg[14] = seg[15] = 0;
    uint16_t c = sprig_ns_csum(1, 2, 6, seg, sizeof(seg));
    seg[14] = (uint8_t)(c >> 8);
    seg[15] = (uint8_t)c;
    assert_int_equal(sprig_ns_csum(1, 2, 6, seg, sizeof(seg)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_header_golden),
        cmocka_unit_test(test_wire_header_rejects),
        cmocka_unit_test(test_wire_crc32_known_value),
        cmocka_unit_test(test_wire_dgram_roundtrip_and_corruption),
        cmocka_unit_test(test_wire_icmp_roundtrip_and_status),
        cmocka_unit_test(test_wire_csum_matches_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
