/*
 * ns_fixture.h — shared set-up for the netstack tests: a fake clock, a loop driven by it, a
 * buffer pool, and a DGRAM-format test transport that records what reaches it.
 * Include after support.h. Static storage; one fixture per test executable.
 */
#ifndef SPRIG_TESTS_NS_FIXTURE_H
#define SPRIG_TESTS_NS_FIXTURE_H

#include <string.h>

#include "sprig/clock.h"
#include "sprig/loop.h"
#include "sprig/ns_node.h"

#define FX_BUFS     96
#define FX_BUF_SIZE 1152

typedef struct fx {
    sprig_fake_clock fc;
    sprig_loop loop;
    sprig_buf_pool pool;
} fx;

static sprig_buf fx_bufs[FX_BUFS];
static uint8_t fx_mem[FX_BUFS * FX_BUF_SIZE] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));

static inline void fx_init(fx *f)
{
    memset(f, 0, sizeof(*f));
    sprig_fake_clock_init(&f->fc, SPRIG_TIME_S(1));
    sprig_loop_cfg lc = {.clock = f->fc.clock};
    assert_int_equal(sprig_loop_init(&f->loop, &lc), SPRIG_STATUS_OK);
    assert_int_equal(sprig_buf_pool_init(&f->pool, fx_bufs, fx_mem, FX_BUFS, FX_BUF_SIZE),
                     SPRIG_STATUS_OK);
}

/* Teardown: every buffer is back. */
static inline void fx_deinit(fx *f)
{
    assert_int_equal(sprig_buf_pool_available(&f->pool), FX_BUFS);
    sprig_loop_deinit(&f->loop);
    sprig_buf_pool_deinit(&f->pool);
}

/* Run the loop on the fake clock for dt, jumping from deadline to deadline. */
static inline void fx_run(fx *f, sprig_time dt)
{
    sprig_time end = f->fc.now + dt;
    for (;;) {
        sprig_loop_poll(&f->loop, f->fc.now);
        sprig_time next = sprig_loop_next_deadline(&f->loop);
        if (next <= f->fc.now) {
            continue; /* tasks queued: another pass at the same time */
        }
        if (next > end) {
            sprig_fake_clock_set(&f->fc, end);
            sprig_loop_poll(&f->loop, f->fc.now);
            return;
        }
        sprig_fake_clock_set(&f->fc, next);
    }
}

/* ---- a DGRAM-format test transport -------------------------------------------------------- */

#define REC_MAX 64

typedef struct rec {
    sprig_ns_proto proto;
    unsigned count; /* good datagrams received */
    unsigned bad;   /* failed sprig_ns_dgram_parse */
    uint16_t from[REC_MAX];
    uint8_t tc[REC_MAX];
    size_t len[REC_MAX];
    uint8_t first[REC_MAX]; /* first payload byte */
    sprig_time at[REC_MAX];
    unsigned errors;
    sprig_status last_error;
    uint16_t last_error_mtu;
    uint16_t last_error_dst;
    uint16_t last_error_port;
    sprig_fake_clock *fc;
} rec;

static inline void rec_input(sprig_ns_proto *p, const sprig_ns_header *ip, sprig_buf *buf)
{
    rec *r = p->arg;
    sprig_ns_dgram d;
    size_t seg = sprig_buf_len(buf);
    if (sprig_ns_dgram_parse(ip, sprig_buf_data(buf), seg, &d) != SPRIG_STATUS_OK) {
        r->bad++;
    } else if (r->count < REC_MAX) {
        unsigned i = r->count++;
        r->from[i] = ip->src;
        r->tc[i] = ip->tc;
        r->len[i] = seg - SPRIG_NS_DGRAM_HEADER_LEN;
        r->first[i] = r->len[i] > 0 ? sprig_buf_data(buf)[SPRIG_NS_DGRAM_HEADER_LEN] : 0;
        r->at[i] = r->fc != NULL ? r->fc->now : 0;
    } else {
        r->count++;
    }
    sprig_buf_free(buf);
}

static inline void rec_error(sprig_ns_proto *p, const sprig_ns_header *orig, const uint8_t *quote,
                             size_t quote_len, const sprig_ns_icmp *msg, sprig_status status)
{
    rec *r = p->arg;
    r->errors++;
    r->last_error = status;
    r->last_error_mtu = msg->type == SPRIG_NS_ICMP_TOO_BIG ? msg->a : 0;
    r->last_error_dst = orig->dst;
    r->last_error_port = quote_len >= 4 ? (uint16_t)((quote[2] << 8) | quote[3]) : 0;
}

static inline void rec_init(rec *r, sprig_ns_node *node, sprig_fake_clock *fc)
{
    memset(r, 0, sizeof(*r));
    r->proto.proto = SPRIG_NS_PROTO_DGRAM;
    r->proto.input = rec_input;
    r->proto.error = rec_error;
    r->proto.arg = r;
    r->fc = fc;
    assert_int_equal(sprig_ns_node_add_proto(node, &r->proto), SPRIG_STATUS_OK);
}

/* Send a datagram of len bytes (byte i = fill + i) from port 1000 to dst:port. */
static inline sprig_status send_dgram(fx *f, sprig_ns_node *node, uint16_t dst, uint16_t port,
                                      size_t len, uint8_t fill, uint8_t tc)
{
    sprig_buf *b = sprig_buf_alloc(&f->pool, SPRIG_NS_NET_HEADROOM);
    assert_non_null(b);
    uint8_t *p = sprig_buf_put(b, SPRIG_NS_DGRAM_HEADER_LEN + len);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++) {
        p[SPRIG_NS_DGRAM_HEADER_LEN + i] = (uint8_t)(fill + i);
    }
    size_t seg = SPRIG_NS_DGRAM_HEADER_LEN + len;
    sprig_ns_header ip = {.src = sprig_ns_node_id(node),
                          .dst = dst,
                          .proto = SPRIG_NS_PROTO_DGRAM,
                          .length = (uint16_t)(seg + SPRIG_NS_HEADER_LEN)};
    sprig_ns_dgram d = {.src_port = 1000, .dst_port = port};
    assert_int_equal(sprig_ns_dgram_emit(&ip, &d, p, seg), SPRIG_STATUS_OK);
    return sprig_ns_node_send(node, b, dst, SPRIG_NS_PROTO_DGRAM, tc);
}

#endif /* SPRIG_TESTS_NS_FIXTURE_H */
