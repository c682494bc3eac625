/*
 * test_packet.c — pw_rpc ids and packets: the 65599 hash vectors of WIRE.md, WIRE.md's worked
 * example byte for byte (encode, wrap and decode), decoding in any field order and of hostile
 * input, and the "N + 32" bound at its extremes.
 */
#include "support.h"

#include <string.h>

#include "sprig/rpc.h"

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

/* WIRE.md's worked example: REQUEST, channel 1, pw.rpc.EchoService/Echo, call_id 1, payload
 * EchoMessage{msg = "hi"}. */
static const uint8_t golden[] = {0x2a, 0x04, 0x0a, 0x02, 0x68, 0x69, 0x08, 0x00, 0x10, 0x01, 0x1d,
                                 0x52, 0xd0, 0xfb, 0x14, 0x25, 0xe9, 0x0e, 0x47, 0x8b, 0x38, 0x01};
static const uint8_t golden_payload[] = {0x0a, 0x02, 'h', 'i'};

#define ECHO_SERVICE 0x14FBD052u
#define ECHO_METHOD  0x8B470EE9u

static sprig_rpc_packet golden_packet(void)
{
    sprig_rpc_packet p = {
        .type = SPRIG_RPC_PACKET_REQUEST,
        .channel_id = 1,
        .service_id = ECHO_SERVICE,
        .method_id = ECHO_METHOD,
        .call_id = 1,
        .status = SPRIG_STATUS_OK,
        .payload = golden_payload,
        .payload_len = sizeof(golden_payload),
    };
    return p;
}

/* ---- hash --------------------------------------------------------------------------------- */

static void test_packet_hash_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len;
        uint32_t h;
    } v[] = {
        {"", 0, 0x00000000u},         {"\0", 1, 0x00000001u},
        {"\1", 1, 0x00010040u},       {"?", 1, 0x003F0F82u},
        {"Pigweed?", 8, 0x63D43D8Cu}, {"pw.rpc.EchoService", 18, 0x14FBD052u},
        {"Echo", 4, 0x8B470EE9u},     {"pw.transfer.Transfer", 20, 0x5BD6C87Bu},
        {"Read", 4, 0x5B7866DAu},     {"Write", 5, 0xD4630586u},
    };
    for (size_t i = 0; i < LEN(v); i++) {
        assert_int_equal(sprig_rpc_hash(v[i].s, v[i].len), v[i].h);
    }
}

static void test_packet_hash_long_input(void **state)
{
    (void)state;
    /* No length cap: a long name keeps mixing every byte in (mod 2^32). */
    char a[300];
    char b[300];
    memset(a, 'x', sizeof(a));
    memcpy(b, a, sizeof(b));
    b[299] = 'y';
    assert_int_not_equal(sprig_rpc_hash(a, sizeof(a)), sprig_rpc_hash(b, sizeof(b)));
    /* Reference computed the slow way. */
    uint32_t h = (uint32_t)sizeof(a);
    uint32_t coef = 65599u;
    for (size_t i = 0; i < sizeof(a); i++) {
        h += coef * (uint32_t)(unsigned char)a[i];
        coef *= 65599u;
    }
    assert_int_equal(sprig_rpc_hash(a, sizeof(a)), h);
    /* High bytes are unsigned. */
    assert_int_equal(sprig_rpc_hash("\xff", 1), 1u + 65599u * 255u);
}

/* ---- encode ------------------------------------------------------------------------------- */

static void test_packet_encode_golden(void **state)
{
    (void)state;
    sprig_rpc_packet p = golden_packet();
    uint8_t out[64];
    size_t n = 0;
    assert_int_equal(sprig_rpc_packet_encode(&p, out, sizeof(out), &n), SPRIG_STATUS_OK);
    assert_int_equal(n, sizeof(golden));
    assert_memory_equal(out, golden, sizeof(golden));
    /* Exactly enough room works; one byte less does not. */
    assert_int_equal(sprig_rpc_packet_encode(&p, out, sizeof(golden), &n), SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_packet_encode(&p, out, sizeof(golden) - 1, &n),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(n, 0);
}

static void test_packet_encode_fields(void **state)
{
    (void)state;
    uint8_t out[64];
    size_t n = 0;
    /* status written when not OK; empty payload and call_id 0 omitted (as pw_rpc does). */
    sprig_rpc_packet p = {
        .type = SPRIG_RPC_PACKET_SERVER_ERROR,
        .channel_id = 300,
        .service_id = 0x01020304u,
        .method_id = 0xA0B0C0D0u,
        .status = SPRIG_STATUS_NOT_FOUND,
        .call_id = 0,
    };
    static const uint8_t want[] = {0x08, 0x05, 0x10, 0xac, 0x02, 0x1d, 0x04, 0x03, 0x02,
                                   0x01, 0x25, 0xd0, 0xc0, 0xb0, 0xa0, 0x30, 0x05};
    assert_int_equal(sprig_rpc_packet_encode(&p, out, sizeof(out), &n), SPRIG_STATUS_OK);
    assert_int_equal(n, sizeof(want));
    assert_memory_equal(out, want, sizeof(want));
    /* call_id 0xFFFFFFFF: 5-byte varint. */
    p.type = SPRIG_RPC_PACKET_SERVER_STREAM;
    p.status = SPRIG_STATUS_OK;
    p.call_id = SPRIG_RPC_CALL_ID_OPEN;
    static const uint8_t want2[] = {0x08, 0x07, 0x10, 0xac, 0x02, 0x1d, 0x04,
                                    0x03, 0x02, 0x01, 0x25, 0xd0, 0xc0, 0xb0,
                                    0xa0, 0x38, 0xff, 0xff, 0xff, 0xff, 0x0f};
    assert_int_equal(sprig_rpc_packet_encode(&p, out, sizeof(out), &n), SPRIG_STATUS_OK);
    assert_int_equal(n, sizeof(want2));
    assert_memory_equal(out, want2, sizeof(want2));
}

static void test_packet_encode_invalid(void **state)
{
    (void)state;
    uint8_t out[64];
    size_t n = 7;
    sprig_rpc_packet p = golden_packet();
    assert_int_equal(sprig_rpc_packet_encode(NULL, out, sizeof(out), &n),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(n, 0);
    assert_int_equal(sprig_rpc_packet_encode(&p, out, sizeof(out), NULL),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    p.payload = NULL;
    assert_int_equal(sprig_rpc_packet_encode(&p, out, sizeof(out), &n),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    p = golden_packet();
    p.type = (sprig_rpc_packet_type)128;
    assert_int_equal(sprig_rpc_packet_encode(&p, out, sizeof(out), &n),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    p = golden_packet();
    p.status = (sprig_status)200;
    assert_int_equal(sprig_rpc_packet_encode(&p, out, sizeof(out), &n),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    p = golden_packet();
    assert_int_equal(sprig_rpc_packet_encode(&p, NULL, 0, &n), SPRIG_STATUS_RESOURCE_EXHAUSTED);
}

/* ---- decode ------------------------------------------------------------------------------- */

static void assert_golden_fields(const sprig_rpc_packet *p)
{
    assert_int_equal(p->type, SPRIG_RPC_PACKET_REQUEST);
    assert_int_equal(p->channel_id, 1);
    assert_int_equal(p->service_id, ECHO_SERVICE);
    assert_int_equal(p->method_id, ECHO_METHOD);
    assert_int_equal(p->call_id, 1);
    assert_int_equal(p->status, SPRIG_STATUS_OK);
    assert_int_equal(p->payload_len, sizeof(golden_payload));
    assert_memory_equal(p->payload, golden_payload, sizeof(golden_payload));
}

static void test_packet_decode_golden(void **state)
{
    (void)state;
    sprig_rpc_packet p;
    assert_int_equal(sprig_rpc_packet_decode(golden, sizeof(golden), &p), SPRIG_STATUS_OK);
    assert_golden_fields(&p);
    assert_ptr_equal(p.payload, golden + 2); /* no copy: points into the input */
}

static void test_packet_decode_any_order(void **state)
{
    (void)state;
    /* Field-number order (what protobuf libraries write), type omitted (proto3 zero). */
    static const uint8_t in[] = {0x10, 0x01, 0x1d, 0x52, 0xd0, 0xfb, 0x14, 0x25, 0xe9, 0x0e,
                                 0x47, 0x8b, 0x2a, 0x04, 0x0a, 0x02, 0x68, 0x69, 0x38, 0x01};
    sprig_rpc_packet p;
    assert_int_equal(sprig_rpc_packet_decode(in, sizeof(in), &p), SPRIG_STATUS_OK);
    assert_golden_fields(&p);
    assert_ptr_equal(p.payload, in + 14);
    /* Reversed, with an unknown varint field (15) and an unknown bytes field (1000). */
    static const uint8_t rev[] = {0x38, 0x01, 0x78, 0x2a, 0xc2, 0x3e, 0x02, 0xaa, 0xbb, 0x2a,
                                  0x04, 0x0a, 0x02, 0x68, 0x69, 0x25, 0xe9, 0x0e, 0x47, 0x8b,
                                  0x1d, 0x52, 0xd0, 0xfb, 0x14, 0x10, 0x01, 0x08, 0x00};
    assert_int_equal(sprig_rpc_packet_decode(rev, sizeof(rev), &p), SPRIG_STATUS_OK);
    assert_golden_fields(&p);
}

static void test_packet_decode_absent_and_empty(void **state)
{
    (void)state;
    sprig_rpc_packet p;
    /* Nothing at all: a REQUEST with every id 0 (the server drops it for the ids). */
    assert_int_equal(sprig_rpc_packet_decode(NULL, 0, &p), SPRIG_STATUS_OK);
    assert_int_equal(p.type, SPRIG_RPC_PACKET_REQUEST);
    assert_int_equal(p.channel_id, 0);
    assert_null(p.payload);
    assert_int_equal(p.payload_len, 0);
    /* An empty payload present: not NULL, length 0. */
    static const uint8_t empty[] = {0x2a, 0x00, 0x08, 0x02};
    assert_int_equal(sprig_rpc_packet_decode(empty, sizeof(empty), &p), SPRIG_STATUS_OK);
    assert_int_equal(p.type, SPRIG_RPC_PACKET_CLIENT_STREAM);
    assert_ptr_equal(p.payload, empty + 2);
    assert_int_equal(p.payload_len, 0);
    /* A repeated payload: the last one wins. */
    static const uint8_t twice[] = {0x2a, 0x01, 0x11, 0x2a, 0x02, 0x22, 0x33};
    assert_int_equal(sprig_rpc_packet_decode(twice, sizeof(twice), &p), SPRIG_STATUS_OK);
    assert_ptr_equal(p.payload, twice + 5);
    assert_int_equal(p.payload_len, 2);
    assert_int_equal(sprig_rpc_packet_decode(golden, sizeof(golden), NULL),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_rpc_packet_decode(NULL, 3, &p), SPRIG_STATUS_INVALID_ARGUMENT);
}

static void test_packet_decode_unknown_type_and_status(void **state)
{
    (void)state;
    sprig_rpc_packet p;
    /* Retired type 6 and a type from the future: decoded; the receiver drops them. */
    static const uint8_t t6[] = {0x08, 0x06, 0x10, 0x01};
    assert_int_equal(sprig_rpc_packet_decode(t6, sizeof(t6), &p), SPRIG_STATUS_OK);
    assert_int_equal((int)p.type, 6);
    static const uint8_t t300[] = {0x08, 0xac, 0x02};
    assert_int_equal(sprig_rpc_packet_decode(t300, sizeof(t300), &p), SPRIG_STATUS_OK);
    assert_int_equal((int)p.type, 300);
    /* A status beyond pw_status's codes reads as UNKNOWN. */
    static const uint8_t s99[] = {0x08, 0x05, 0x30, 0x63};
    assert_int_equal(sprig_rpc_packet_decode(s99, sizeof(s99), &p), SPRIG_STATUS_OK);
    assert_int_equal(p.status, SPRIG_STATUS_UNKNOWN);
    static const uint8_t s16[] = {0x08, 0x05, 0x30, 0x10};
    assert_int_equal(sprig_rpc_packet_decode(s16, sizeof(s16), &p), SPRIG_STATUS_OK);
    assert_int_equal(p.status, SPRIG_STATUS_UNAUTHENTICATED);
}

static void test_packet_decode_data_loss(void **state)
{
    (void)state;
    sprig_rpc_packet p;
    static const struct {
        const char *why;
        uint8_t bytes[12];
        size_t len;
    } bad[] = {
        {"truncated payload", {0x2a, 0x05, 0x01, 0x02}, 4},
        {"truncated varint", {0x10, 0x80}, 2},
        {"truncated fixed32", {0x1d, 0x01, 0x02}, 3},
        {"tag only", {0x10}, 1},
        {"service_id as a varint (wrong wire type)", {0x18, 0x01}, 2},
        {"payload as a varint", {0x28, 0x01}, 2},
        {"field number 0", {0x00, 0x01}, 2},
        {"wire type 7", {0x0f}, 1},
        {"varint longer than 10 bytes",
         {0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
         12},
        {"channel_id above 2^32", {0x10, 0x80, 0x80, 0x80, 0x80, 0x10}, 6},
        {"length running past the end", {0x2a, 0xff, 0xff, 0xff, 0xff, 0x0f}, 6},
        {"end group without a start", {0x0c}, 1},
    };
    for (size_t i = 0; i < LEN(bad); i++) {
        sprig_status st = sprig_rpc_packet_decode(bad[i].bytes, bad[i].len, &p);
        if (st != SPRIG_STATUS_DATA_LOSS) {
            fail_msg("%s: got %s", bad[i].why, sprig_status_str(st));
        }
    }
    /* Every strict prefix of the golden packet that cuts a field is DATA_LOSS; the others are
     * valid packets with fewer fields. Never a crash, never a read past the end. */
    for (size_t n = 0; n < sizeof(golden); n++) {
        sprig_status st = sprig_rpc_packet_decode(golden, n, &p);
        assert_true(st == SPRIG_STATUS_OK || st == SPRIG_STATUS_DATA_LOSS);
        if (st == SPRIG_STATUS_OK && p.payload != NULL) {
            assert_true(p.payload + p.payload_len <= golden + n);
        }
    }
}

/* ---- wrap (zero copy) --------------------------------------------------------------------- */

enum { POOL_N = 2, POOL_SIZE = 1 << 15 };
static sprig_buf pool_bufs[POOL_N];
static uint8_t pool_mem[POOL_N * POOL_SIZE] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
static sprig_buf_pool pool;

static int setup_pool(void **state)
{
    (void)state;
    return sprig_buf_pool_init(&pool, pool_bufs, pool_mem, POOL_N, POOL_SIZE) == SPRIG_STATUS_OK
               ? 0
               : -1;
}

static int teardown_pool(void **state)
{
    (void)state;
    int ok = sprig_buf_pool_available(&pool) == POOL_N ? 0 : -1;
    sprig_buf_pool_deinit(&pool);
    return ok;
}

static void test_packet_wrap_golden(void **state)
{
    (void)state;
    sprig_buf *b = sprig_buf_alloc(&pool, 40);
    assert_non_null(b);
    assert_int_equal(sprig_buf_append(b, golden_payload, sizeof(golden_payload)), SPRIG_STATUS_OK);
    uint8_t *payload_at = sprig_buf_data(b);
    sprig_rpc_packet p = golden_packet();
    p.payload = NULL; /* ignored by wrap */
    p.payload_len = 0;
    assert_int_equal(sprig_rpc_packet_wrap(b, &p), SPRIG_STATUS_OK);
    assert_int_equal(sprig_buf_len(b), sizeof(golden));
    assert_memory_equal(sprig_buf_data(b), golden, sizeof(golden));
    assert_ptr_equal(sprig_buf_data(b) + 2, payload_at); /* the payload never moved */
    sprig_buf_free(b);
}

static void test_packet_wrap_room(void **state)
{
    (void)state;
    sprig_rpc_packet p = golden_packet();
    /* Headroom one short of SPRIG_RPC_PAYLOAD_HEADROOM: refused, buffer unchanged. */
    sprig_buf *b = sprig_buf_alloc(&pool, SPRIG_RPC_PAYLOAD_HEADROOM - 1);
    assert_int_equal(sprig_buf_append(b, "abc", 3), SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_packet_wrap(b, &p), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(sprig_buf_len(b), 3);
    assert_int_equal(sprig_buf_headroom(b), SPRIG_RPC_PAYLOAD_HEADROOM - 1);
    /* Tailroom one short of SPRIG_RPC_PACKET_TAILROOM: refused, unchanged. */
    sprig_buf_reset(b, SPRIG_RPC_PAYLOAD_HEADROOM);
    size_t fill = sprig_buf_tailroom(b) - (SPRIG_RPC_PACKET_TAILROOM - 1);
    assert_non_null(sprig_buf_put(b, fill));
    assert_int_equal(sprig_rpc_packet_wrap(b, &p), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(sprig_buf_len(b), fill);
    assert_int_equal(sprig_buf_headroom(b), SPRIG_RPC_PAYLOAD_HEADROOM);
    /* Exactly enough: fits. */
    assert_int_equal(sprig_buf_trim(b, fill - 1), SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_packet_wrap(b, &p), SPRIG_STATUS_OK);
    sprig_buf_free(b);
    assert_int_equal(sprig_rpc_packet_wrap(NULL, &p), SPRIG_STATUS_INVALID_ARGUMENT);
}

static void test_packet_wrap_empty_payload(void **state)
{
    (void)state;
    sprig_buf *b = sprig_buf_alloc(&pool, 8);
    sprig_rpc_packet p = golden_packet();
    p.type = SPRIG_RPC_PACKET_RESPONSE;
    p.status = SPRIG_STATUS_CANCELLED;
    uint8_t enc[64];
    size_t n = 0;
    p.payload_len = 0;
    assert_int_equal(sprig_rpc_packet_encode(&p, enc, sizeof(enc), &n), SPRIG_STATUS_OK);
    assert_int_equal(sprig_rpc_packet_wrap(b, &p), SPRIG_STATUS_OK);
    assert_int_equal(sprig_buf_len(b), n);
    assert_memory_equal(sprig_buf_data(b), enc, n);
    static const uint8_t want[] = {0x08, 0x01, 0x10, 0x01, 0x1d, 0x52, 0xd0, 0xfb, 0x14,
                                   0x25, 0xe9, 0x0e, 0x47, 0x8b, 0x30, 0x01, 0x38, 0x01};
    assert_int_equal(n, sizeof(want));
    assert_memory_equal(enc, want, n);
    sprig_buf_free(b);
}

/* ---- N + 32 at the extremes --------------------------------------------------------------- */

static uint8_t big_payload[POOL_SIZE];
static uint8_t big_out[POOL_SIZE + 64];

static void check_overhead(size_t len, sprig_rpc_packet_type type, sprig_status status,
                           uint32_t ids)
{
    sprig_rpc_packet p = {
        .type = type,
        .channel_id = ids,
        .service_id = ids,
        .method_id = ids,
        .call_id = ids,
        .status = status,
        .payload = big_payload,
        .payload_len = len,
    };
    size_t n = 0;
    /* encode into exactly N + 32 */
    assert_int_equal(sprig_rpc_packet_encode(&p, big_out, len + SPRIG_RPC_PACKET_OVERHEAD, &n),
                     SPRIG_STATUS_OK);
    assert_true(n <= len + SPRIG_RPC_PACKET_OVERHEAD);
    sprig_rpc_packet d;
    assert_int_equal(sprig_rpc_packet_decode(big_out, n, &d), SPRIG_STATUS_OK);
    assert_int_equal(d.type, type);
    assert_int_equal(d.channel_id, ids);
    assert_int_equal(d.service_id, ids);
    assert_int_equal(d.method_id, ids);
    assert_int_equal(d.call_id, ids);
    assert_int_equal(d.status, status);
    assert_int_equal(d.payload_len, len);
    if (len > 0) {
        assert_memory_equal(d.payload, big_payload, len);
    }
    /* wrap in a buffer with exactly the promised head- and tailroom gives the same bytes */
    if (len + SPRIG_RPC_PACKET_OVERHEAD <= POOL_SIZE) {
        sprig_buf *b = sprig_buf_alloc(&pool, SPRIG_RPC_PAYLOAD_HEADROOM);
        assert_non_null(b);
        size_t extra = POOL_SIZE - SPRIG_RPC_PAYLOAD_HEADROOM - len - SPRIG_RPC_PACKET_TAILROOM;
        /* leave exactly TAILROOM after the payload by moving the start forward */
        sprig_buf_reset(b, SPRIG_RPC_PAYLOAD_HEADROOM + extra);
        assert_int_equal(sprig_buf_append(b, big_payload, len), SPRIG_STATUS_OK);
        assert_int_equal(sprig_buf_tailroom(b), SPRIG_RPC_PACKET_TAILROOM);
        assert_int_equal(sprig_rpc_packet_wrap(b, &p), SPRIG_STATUS_OK);
        assert_int_equal(sprig_buf_len(b), n);
        assert_memory_equal(sprig_buf_data(b), big_out, n);
        sprig_buf_free(b);
    }
}

static void test_packet_overhead_extremes(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(big_payload); i++) {
        big_payload[i] = (uint8_t)(i * 7u + 1u);
    }
    static const size_t lens[] = {0, 1, 126, 127, 128, 129, 16382, 16383, 16384, 16385};
    static const uint32_t ids[] = {1u,          127u,        128u,       0x0FFFFFFFu,
                                   0x10000000u, 0xFFFFFFFEu, 0xFFFFFFFFu};
    static const sprig_status statuses[] = {SPRIG_STATUS_OK, SPRIG_STATUS_CANCELLED,
                                            SPRIG_STATUS_UNAUTHENTICATED};
    static const sprig_rpc_packet_type types[] = {
        SPRIG_RPC_PACKET_REQUEST,
        SPRIG_RPC_PACKET_RESPONSE,
        SPRIG_RPC_PACKET_CLIENT_REQUEST_COMPLETION,
        SPRIG_RPC_PACKET_SERVER_STREAM,
    };
    for (size_t a = 0; a < LEN(lens); a++) {
        for (size_t b = 0; b < LEN(ids); b++) {
            for (size_t c = 0; c < LEN(statuses); c++) {
                for (size_t t = 0; t < LEN(types); t++) {
                    check_overhead(lens[a], types[t], statuses[c], ids[b]);
                }
            }
        }
    }
    /* The worst case really is 32: a 5-byte length needs a payload of 2^28 bytes, which we
     * do not allocate; with every other field at its maximum a 16384-byte payload (3-byte
     * length) is 16384 + 4 + 26. */
    sprig_rpc_packet p = {
        .type = SPRIG_RPC_PACKET_CLIENT_REQUEST_COMPLETION,
        .channel_id = 0xFFFFFFFFu,
        .service_id = 0xFFFFFFFFu,
        .method_id = 0xFFFFFFFFu,
        .call_id = 0xFFFFFFFFu,
        .status = SPRIG_STATUS_UNAUTHENTICATED,
        .payload = big_payload,
        .payload_len = 16384,
    };
    size_t n = 0;
    assert_int_equal(sprig_rpc_packet_encode(&p, big_out, sizeof(big_out), &n), SPRIG_STATUS_OK);
    assert_int_equal(n, 16384 + 4 + SPRIG_RPC_PACKET_TAILROOM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_packet_hash_vectors),
        cmocka_unit_test(test_packet_hash_long_input),
        cmocka_unit_test(test_packet_encode_golden),
        cmocka_unit_test(test_packet_encode_fields),
        cmocka_unit_test(test_packet_encode_invalid),
        cmocka_unit_test(test_packet_decode_golden),
        cmocka_unit_test(test_packet_decode_any_order),
        cmocka_unit_test(test_packet_decode_absent_and_empty),
        cmocka_unit_test(test_packet_decode_unknown_type_and_status),
        cmocka_unit_test(test_packet_decode_data_loss),
        cmocka_unit_test_setup_teardown(test_packet_wrap_golden, setup_pool, teardown_pool),
        cmocka_unit_test_setup_teardown(test_packet_wrap_room, setup_pool, teardown_pool),
        cmocka_unit_test_setup_teardown(test_packet_wrap_empty_payload, setup_pool, teardown_pool),
        cmocka_unit_test_setup_teardown(test_packet_overhead_extremes, setup_pool, teardown_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
