/* test_stream.c — the STREAM socket backend over a line of three nodes (A — router — B) on
 * simulated links with a fake clock: handshake, refusal, orderly and half close, reset, byte-exact
 * bulk transfer at 0/5/20% loss with duplication, reordering and corruption, a slow receiver
 * throttling the sender, and dead-peer detection by keepalive and by retransmission. */
#include "support.h"

#include <string.h>

#include "ns_fixture.h"
#include "sprig/ns_simlink.h"
#include "sprig/ns_stream.h"

enum { A = 1, R = 2, B = 3, CONNS = 4, RING = 4096, MAXMSG = 1500 };

typedef struct net {
    fx f;
    sprig_ns_node n[3];
    sprig_ns_route routes[3][2];
    sprig_ns_simlink l[2];
    sprig_ns_stream_backend be[2]; /* on A and B */
    sprig_ns_conn conns[2][CONNS];
    uint8_t rings[2][CONNS * 2 * RING];
    sprig_framed_sock framed[2][CONNS];
    uint8_t framed_mem[2][CONNS * 2 * (MAXMSG + 4)];
} net;

static net the_net;

typedef struct ev {
    unsigned connected, readable, writable, closed;
    sprig_status closed_status;
    sprig_time closed_at;
} ev;

static void on_ev(sprig_sock *s, sprig_sock_event e, sprig_status st, void *user)
{
    (void)s;
    ev *v = user;
    switch (e) {
    case SPRIG_SOCK_EV_CONNECTED:
        v->connected++;
        break;
    case SPRIG_SOCK_EV_READABLE:
        v->readable++;
        break;
    case SPRIG_SOCK_EV_WRITABLE:
        v->writable++;
        break;
    case SPRIG_SOCK_EV_CLOSED:
        v->closed++;
        v->closed_status = st;
        v->closed_at = the_net.f.fc.now;
        break;
    }
}

static sprig_ns_link *end(net *t, int link, int side)
{
    return &t->l[link].end[side].link;
}

static void set_impair(net *t, uint32_t loss, uint32_t dup, uint32_t reorder, uint32_t corrupt)
{
    for (int i = 0; i < 2; i++) {
        sprig_ns_simlink_cfg c = t->l[i].cfg;
        c.loss_ppm = loss;
        c.dup_ppm = dup;
        c.reorder_ppm = reorder;
        c.corrupt_ppm = corrupt;
        assert_int_equal(sprig_ns_simlink_set_cfg(&t->l[i], &c), SPRIG_STATUS_OK);
    }
}

static void net_setup(net *t, const sprig_ns_stream_cfg *sc)
{
    memset(t, 0, sizeof(*t));
    fx_init(&t->f);
    for (int i = 0; i < 3; i++) {
        sprig_ns_node_cfg c = {.id = (uint16_t)(i + 1),
                               .forwarding = i == 1,
                               .loop = &t->f.loop,
                               .pool = &t->f.pool,
                               .routes = t->routes[i],
                               .route_cap = 2};
        assert_int_equal(sprig_ns_node_init(&t->n[i], &c), SPRIG_STATUS_OK);
    }
    for (int i = 0; i < 2; i++) {
        sprig_ns_simlink_cfg c = {.loop = &t->f.loop,
                                  .pool = &t->f.pool,
                                  .seed = (uint32_t)(7 + i),
                                  .mtu = 1024,
                                  .bandwidth = 1000000,
                                  .delay = SPRIG_TIME_MS(2),
                                  .reorder_delay = SPRIG_TIME_MS(3)};
        assert_int_equal(sprig_ns_simlink_init(&t->l[i], &c), SPRIG_STATUS_OK);
        assert_int_equal(sprig_ns_node_attach(&t->n[i], end(t, i, 0)), SPRIG_STATUS_OK);
        assert_int_equal(sprig_ns_node_attach(&t->n[i + 1], end(t, i, 1)), SPRIG_STATUS_OK);
    }
    assert_int_equal(sprig_ns_node_add_route(&t->n[0], 0, 0, end(t, 0, 0)), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_add_route(&t->n[1], A, 16, end(t, 0, 1)), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_add_route(&t->n[1], B, 16, end(t, 1, 0)), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_add_route(&t->n[2], 0, 0, end(t, 1, 1)), SPRIG_STATUS_OK);
    sprig_ns_stream_cfg cfg = {.tc = SPRIG_NS_TC_BULK};
    if (sc != NULL) {
        cfg = *sc;
    }
    cfg.tx_buf = cfg.rx_buf = RING;
    assert_int_equal(sprig_ns_stream_ring_size(&cfg, CONNS), sizeof(t->rings[0]));
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sprig_ns_stream_init(&t->be[i], &t->n[i * 2], &cfg, t->conns[i], CONNS,
                                              t->rings[i], sizeof(t->rings[i]), &t->f.pool),
                         SPRIG_STATUS_OK);
    }
}

static void net_teardown(net *t)
{
    fx_run(&t->f, SPRIG_TIME_S(5));
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sprig_ns_stream_in_use(&t->be[i]), 0);
        assert_int_equal(sprig_ns_stream_active(&t->be[i]), 0);
        sprig_ns_stream_deinit(&t->be[i]);
        sprig_ns_stream_deinit(&t->be[i]);
    }
    for (int i = 0; i < 2; i++) {
        sprig_ns_simlink_deinit(&t->l[i]);
    }
    for (int i = 0; i < 3; i++) {
        sprig_ns_node_deinit(&t->n[i]);
    }
    fx_deinit(&t->f);
}

/* Several backends share the loop, so go to each directly rather than by scheme. */
static sprig_status open_via(sprig_ns_stream_backend *be, const char *url, bool listen,
                             sprig_sock **out, ev *v)
{
    sprig_url u;
    assert_int_equal(sprig_url_parse(url, &u), SPRIG_STATUS_OK);
    assert_true(be->backend.handles(&be->backend, &u));
    sprig_status st = listen ? be->backend.listen(&be->backend, &u, SPRIG_SOCK_STREAM, out)
                             : be->backend.dial(&be->backend, &u, SPRIG_SOCK_STREAM, out);
    if (st == SPRIG_STATUS_OK) {
        sprig_sock_set_callback(*out, on_ev, v);
    }
    return st;
}

/* A connected pair: client on A, server (accepted) on B:80. */
static void connect_pair(net *t, sprig_sock **lis, sprig_sock **cli, sprig_sock **srv, ev *lv,
                         ev *cv, ev *sv)
{
    assert_int_equal(open_via(&t->be[1], "sprig://3:80", true, lis, lv), SPRIG_STATUS_OK);
    assert_int_equal(open_via(&t->be[0], "sprig://3:80", false, cli, cv), SPRIG_STATUS_OK);
    for (int i = 0; i < 200 && (cv->connected == 0 || lv->readable == 0); i++) {
        fx_run(&t->f, SPRIG_TIME_MS(50));
    }
    assert_int_equal(cv->connected, 1);
    assert_true(lv->readable >= 1);
    assert_int_equal(sprig_sock_accept(*lis, srv), SPRIG_STATUS_OK);
    sprig_sock_set_callback(*srv, on_ev, sv);
    sprig_sock *none = NULL;
    assert_int_equal(sprig_sock_accept(*lis, &none), SPRIG_STATUS_UNAVAILABLE);
}

static void test_stream_wire_roundtrip(void **state)
{
    (void)state;
    uint8_t seg[SPRIG_NS_STREAM_HEADER_LEN + 3] = {0, 0, 0, 0, 0, 0, 0, 0,   0,   0,  0,
                                                   0, 0, 0, 0, 0, 0, 0, 'a', 'b', 'c'};
    sprig_ns_header ip = {.src = 1, .dst = 2, .proto = SPRIG_NS_PROTO_STREAM};
    sprig_ns_stream_hdr h = {.src_port = 5,
                             .dst_port = 80,
                             .seq = 0x01020304u,
                             .ack = 0xA0B0C0D0u,
                             .flags = SPRIG_NS_STREAM_SYN | SPRIG_NS_STREAM_ACK,
                             .shift = 2,
                             .window = 4096},
                        o;
    sprig_ns_stream_emit(&ip, &h, seg, sizeof(seg));
    assert_int_equal(seg[4], 1);
    assert_int_equal(seg[11], 0xD0);
    assert_int_equal(seg[12], 3);
    assert_int_equal(sprig_ns_stream_parse(&ip, seg, sizeof(seg), &o), SPRIG_STATUS_OK);
    assert_int_equal(o.seq, h.seq);
    assert_int_equal(o.ack, h.ack);
    assert_int_equal(o.window, 4096);
    assert_int_equal(o.shift, 2);
    seg[19] ^= 1;
    assert_int_equal(sprig_ns_stream_parse(&ip, seg, sizeof(seg), &o), SPRIG_STATUS_DATA_LOSS);
    seg[19] ^= 1;
    ip.src = 9; /* pseudo-header covers the addresses */
    assert_int_equal(sprig_ns_stream_parse(&ip, seg, sizeof(seg), &o), SPRIG_STATUS_DATA_LOSS);
    assert_int_equal(sprig_ns_stream_parse(&ip, seg, 17, &o), SPRIG_STATUS_INVALID_ARGUMENT);
}

static void test_stream_echo_and_orderly_close(void **state)
{
    (void)state;
    net *t = &the_net;
    net_setup(t, NULL);
    sprig_sock *lis, *cli, *srv;
    ev lv = {0}, cv = {0}, sv = {0};
    connect_pair(t, &lis, &cli, &srv, &lv, &cv, &sv);
    size_t n = 0;
    assert_int_equal(sprig_sock_send(cli, "hello", 5, &n), SPRIG_STATUS_OK);
    assert_int_equal(n, 5);
    fx_run(&t->f, SPRIG_TIME_MS(100));
    char buf[16];
    assert_int_equal(sprig_sock_recv(srv, buf, sizeof(buf), &n), SPRIG_STATUS_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(sprig_sock_recv(srv, buf, sizeof(buf), &n), SPRIG_STATUS_UNAVAILABLE);
    assert_int_equal(sprig_sock_send(srv, "world!", 6, &n), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(100));
    assert_int_equal(sprig_sock_recv(cli, buf, sizeof(buf), &n), SPRIG_STATUS_OK);
    assert_memory_equal(buf, "world!", 6);
    sprig_addr a;
    uint16_t node = 0;
    assert_int_equal(sprig_sock_peer_addr(srv, &a), SPRIG_STATUS_OK);
    assert_true(sprig_addr_is_node(&a, &node));
    assert_int_equal(node, A);
    /* half close: the client stops sending, the server still can */
    assert_int_equal(sprig_sock_shutdown(cli), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(100));
    assert_int_equal(sprig_sock_recv(srv, buf, sizeof(buf), &n), SPRIG_STATUS_OUT_OF_RANGE);
    assert_int_equal(sv.closed, 0);
    assert_int_equal(sprig_sock_send(srv, "more", 4, &n), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(100));
    assert_int_equal(sprig_sock_recv(cli, buf, sizeof(buf), &n), SPRIG_STATUS_OK);
    assert_memory_equal(buf, "more", 4);
    assert_int_equal(sprig_sock_shutdown(srv), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(100));
    assert_int_equal(sprig_sock_recv(cli, buf, sizeof(buf), &n), SPRIG_STATUS_OUT_OF_RANGE);
    assert_int_equal(cv.closed, 1);
    assert_int_equal(cv.closed_status, SPRIG_STATUS_OK);
    assert_int_equal(sv.closed, 1);
    assert_int_equal(sv.closed_status, SPRIG_STATUS_OK);
    /* a second connection whose data and FIN arrive before accept */
    sprig_sock *c3, *s3;
    ev e3 = {0}, f3 = {0};
    assert_int_equal(open_via(&t->be[0], "sprig://3:80", false, &c3, &e3), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(100));
    assert_int_equal(sprig_sock_send(c3, "early", 5, &n), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_shutdown(c3), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(100));
    assert_int_equal(e3.closed, 0);
    assert_int_equal(sprig_sock_accept(lis, &s3), SPRIG_STATUS_OK);
    sprig_sock_set_callback(s3, on_ev, &f3);
    fx_run(&t->f, SPRIG_TIME_MS(10));
    assert_true(f3.readable >= 1);
    assert_int_equal(sprig_sock_recv(s3, buf, sizeof(buf), &n), SPRIG_STATUS_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "early", 5);
    assert_int_equal(sprig_sock_recv(s3, buf, sizeof(buf), &n), SPRIG_STATUS_OUT_OF_RANGE);
    sprig_sock_close(s3);
    fx_run(&t->f, SPRIG_TIME_MS(100));
    assert_int_equal(e3.closed, 1);
    assert_int_equal(e3.closed_status, SPRIG_STATUS_OK);
    sprig_sock_close(c3);
    sprig_sock_close(cli);
    sprig_sock_close(srv);
    sprig_sock_close(lis);
    net_teardown(t);
}

static void test_stream_refused_and_no_route(void **state)
{
    (void)state;
    net *t = &the_net;
    net_setup(t, NULL);
    sprig_sock *cli;
    ev cv = {0};
    assert_int_equal(open_via(&t->be[0], "sprig://3:81", false, &cli, &cv), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(200));
    assert_int_equal(cv.connected, 0);
    assert_int_equal(cv.closed, 1);
    assert_int_equal(cv.closed_status, SPRIG_STATUS_UNAVAILABLE);
    size_t n;
    char buf[4];
    assert_int_equal(sprig_sock_recv(cli, buf, sizeof(buf), &n), SPRIG_STATUS_UNAVAILABLE);
    sprig_sock_close(cli);
    /* node 9 does not exist: the router answers unreachable */
    ev nv = {0};
    assert_int_equal(open_via(&t->be[0], "sprig://9:80", false, &cli, &nv), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(200));
    assert_int_equal(nv.closed, 1);
    assert_int_equal(nv.closed_status, SPRIG_STATUS_NOT_FOUND);
    sprig_sock_close(cli);
    net_teardown(t);
}

static void test_stream_listener_close_resets(void **state)
{
    (void)state;
    net *t = &the_net;
    net_setup(t, NULL);
    sprig_sock *lis, *cli, *srv;
    ev lv = {0}, cv = {0}, sv = {0};
    connect_pair(t, &lis, &cli, &srv, &lv, &cv, &sv);
    sprig_sock *cli2;
    ev c2 = {0};
    assert_int_equal(open_via(&t->be[0], "sprig://3:80", false, &cli2, &c2), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(100));
    assert_int_equal(c2.connected, 1);
    size_t n;
    assert_int_equal(sprig_sock_send(cli2, "early", 5, &n), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_MS(100));
    assert_int_equal(c2.closed, 0); /* data before accept is kept, not refused */
    sprig_sock_close(lis);          /* the unaccepted connection is reset */
    fx_run(&t->f, SPRIG_TIME_MS(100));
    assert_int_equal(c2.closed, 1);
    assert_int_equal(c2.closed_status, SPRIG_STATUS_ABORTED);
    assert_int_equal(sprig_sock_send(cli2, "x", 1, &n), SPRIG_STATUS_ABORTED);
    sprig_sock_close(cli2);
    /* closing with the peer still open: FIN, the peer sees end of stream, then closes */
    sprig_sock_close(srv);
    fx_run(&t->f, SPRIG_TIME_MS(100));
    char buf[4];
    assert_int_equal(sprig_sock_recv(cli, buf, sizeof(buf), &n), SPRIG_STATUS_OUT_OF_RANGE);
    sprig_sock_close(cli);
    net_teardown(t);
}

/* SEQPACKET (framing over STREAM) across the router at 5% impairment: boundaries and order. */
static void test_stream_seqpacket_impaired(void **state)
{
    (void)state;
    net *t = &the_net;
    sprig_ns_stream_cfg sc = {.tc = SPRIG_NS_TC_INTERACTIVE, .rto_min = SPRIG_TIME_MS(50)};
    net_setup(t, &sc);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sprig_ns_stream_enable_seqpacket(&t->be[i], t->framed[i], CONNS,
                                                          t->framed_mem[i],
                                                          sizeof(t->framed_mem[i]), MAXMSG),
                         SPRIG_STATUS_OK);
    }
    sprig_url u;
    sprig_sock *lis, *cli, *srv;
    ev lv = {0}, cv = {0}, sv = {0};
    assert_int_equal(sprig_url_parse("sprig://3:90", &u), SPRIG_STATUS_OK);
    assert_int_equal(t->be[1].backend.listen(&t->be[1].backend, &u, SPRIG_SOCK_SEQPACKET, &lis),
                     SPRIG_STATUS_OK);
    sprig_sock_set_callback(lis, on_ev, &lv);
    assert_int_equal(t->be[0].backend.dial(&t->be[0].backend, &u, SPRIG_SOCK_SEQPACKET, &cli),
                     SPRIG_STATUS_OK);
    sprig_sock_set_callback(cli, on_ev, &cv);
    fx_run(&t->f, SPRIG_TIME_MS(100));
    assert_int_equal(cv.connected, 1);
    assert_int_equal(sprig_sock_type_of(cli), SPRIG_SOCK_SEQPACKET);
    assert_int_equal(sprig_sock_max_message_size(cli), MAXMSG);
    assert_int_equal(sprig_sock_accept(lis, &srv), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_type_of(srv), SPRIG_SOCK_SEQPACKET);
    sprig_sock_set_callback(srv, on_ev, &sv);
    set_impair(t, 50000, 25000, 25000, 12500);
    enum { N = 60 };
    uint8_t msg[MAXMSG + 1], in[MAXMSG + 1];
    unsigned sent = 0, got = 0;
    size_t n = 0;
    assert_int_equal(sprig_sock_send(cli, msg, MAXMSG + 1, &n), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    for (int round = 0; round < 100000 && got < N; round++) {
        while (sent < N) {
            size_t len = 1 + (sent * 97u) % MAXMSG;
            memset(msg, (int)sent, len);
            if (sprig_sock_send(cli, msg, len, &n) != SPRIG_STATUS_OK) {
                break;
            }
            sent++;
        }
        while (sprig_sock_recv(srv, in, sizeof(in), &n) == SPRIG_STATUS_OK) {
            assert_int_equal(n, 1 + (got * 97u) % MAXMSG);
            assert_int_equal(in[0], (uint8_t)got);
            assert_int_equal(in[n - 1], (uint8_t)got);
            got++;
        }
        fx_run(&t->f, SPRIG_TIME_MS(5));
    }
    assert_int_equal(got, N);
    set_impair(t, 0, 0, 0, 0);
    sprig_sock_close(cli);
    fx_run(&t->f, SPRIG_TIME_MS(200));
    assert_int_equal(sprig_sock_recv(srv, in, sizeof(in), &n), SPRIG_STATUS_OUT_OF_RANGE);
    sprig_sock_close(srv);
    sprig_sock_close(lis);
    net_teardown(t);
}

/* A closed connection whose peer never sends its FIN is freed after rto_max. */
static void test_stream_orphan_freed_without_peer_fin(void **state)
{
    (void)state;
    net *t = &the_net;
    sprig_ns_stream_cfg sc = {.tc = SPRIG_NS_TC_DEFAULT, .rto_max = SPRIG_TIME_S(2)};
    net_setup(t, &sc);
    sprig_sock *lis, *cli, *srv;
    ev lv = {0}, cv = {0}, sv = {0};
    connect_pair(t, &lis, &cli, &srv, &lv, &cv, &sv);
    size_t n;
    assert_int_equal(sprig_sock_send(srv, "bye", 3, &n), SPRIG_STATUS_OK);
    sprig_sock_close(srv);
    sprig_sock_close(lis);
    fx_run(&t->f, SPRIG_TIME_MS(100));
    assert_int_equal(sprig_ns_stream_active(&t->be[1]), 1); /* the orphan waits */
    fx_run(&t->f, SPRIG_TIME_S(2));
    assert_int_equal(sprig_ns_stream_active(&t->be[1]), 0);
    char buf[8];
    assert_int_equal(sprig_sock_recv(cli, buf, sizeof(buf), &n), SPRIG_STATUS_OK);
    assert_memory_equal(buf, "bye", 3);
    assert_int_equal(sprig_sock_recv(cli, buf, sizeof(buf), &n), SPRIG_STATUS_OUT_OF_RANGE);
    assert_int_equal(sprig_sock_shutdown(cli), SPRIG_STATUS_OK); /* answered by RST */
    fx_run(&t->f, SPRIG_TIME_MS(100));
    assert_int_equal(cv.closed, 1);
    assert_int_equal(cv.closed_status, SPRIG_STATUS_ABORTED);
    sprig_sock_close(cli);
    net_teardown(t);
}

/* Send `total` bytes A→B (byte i = i*7 + i/251) with both ends pumped every millisecond. */
static void bulk(uint32_t ppm, size_t total, sprig_time read_every, size_t read_chunk,
                 sprig_time limit)
{
    net *t = &the_net;
    sprig_ns_stream_cfg sc = {.tc = SPRIG_NS_TC_BULK,
                              .rto_min = SPRIG_TIME_MS(50),
                              .rto_max = SPRIG_TIME_S(2),
                              .max_retries = 30};
    net_setup(t, &sc);
    sprig_sock *lis, *cli, *srv;
    ev lv = {0}, cv = {0}, sv = {0};
    connect_pair(t, &lis, &cli, &srv, &lv, &cv, &sv);
    set_impair(t, ppm, ppm / 2, ppm / 2, ppm / 4);
    size_t sent = 0, got = 0;
    unsigned blocked = 0;
    uint8_t chunk[1500];
    sprig_time start = t->f.fc.now, next_read = start;
    while (got < total) {
        assert_true(t->f.fc.now - start < limit);
        while (sent < total) {
            size_t want = total - sent < sizeof(chunk) ? total - sent : sizeof(chunk), n = 0;
            for (size_t i = 0; i < want; i++) {
                size_t k = sent + i;
                chunk[i] = (uint8_t)(k * 7 + k / 251);
            }
            sprig_status st = sprig_sock_send(cli, chunk, want, &n);
            if (st == SPRIG_STATUS_UNAVAILABLE) {
                blocked++;
                break;
            }
            assert_int_equal(st, SPRIG_STATUS_OK);
            sent += n;
        }
        if (t->f.fc.now >= next_read) {
            size_t n = 0;
            sprig_status st;
            while (got < total &&
                   (st = sprig_sock_recv(srv, chunk, read_chunk, &n)) == SPRIG_STATUS_OK) {
                for (size_t i = 0; i < n; i++) {
                    size_t k = got + i;
                    if (chunk[i] != (uint8_t)(k * 7 + k / 251)) {
                        fail_msg("byte %zu differs", k);
                    }
                }
                got += n;
                if (read_every > 0) {
                    break;
                }
            }
            next_read = t->f.fc.now + read_every;
        }
        fx_run(&t->f, SPRIG_TIME_MS(1));
    }
    assert_int_equal(got, total);
    assert_true(blocked > 0); /* the window throttled the sender */
    print_message("  %u ppm: %zu bytes in %.2f s simulated, rtx %u, fast rtx %u, ooo %u\n",
                  (unsigned)ppm, total, (double)(t->f.fc.now - start) / 1e6,
                  (unsigned)t->be[0].stats.rtx, (unsigned)t->be[0].stats.fast_rtx,
                  (unsigned)t->be[1].stats.ooo);
    if (ppm == 0) {
        assert_int_equal(t->be[0].stats.rtx, 0); /* no loss, no retransmission */
        assert_int_equal(t->be[1].stats.ooo, 0);
    }
    assert_int_equal(sprig_sock_shutdown(cli), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_shutdown(srv), SPRIG_STATUS_OK);
    for (int i = 0; i < 600 && (cv.closed == 0 || sv.closed == 0); i++) {
        fx_run(&t->f, SPRIG_TIME_MS(100));
    }
    assert_int_equal(cv.closed_status, SPRIG_STATUS_OK);
    assert_int_equal(sv.closed_status, SPRIG_STATUS_OK);
    size_t n;
    assert_int_equal(sprig_sock_recv(srv, chunk, 1, &n), SPRIG_STATUS_OUT_OF_RANGE);
    sprig_sock_close(cli);
    sprig_sock_close(srv);
    sprig_sock_close(lis);
    set_impair(t, 0, 0, 0, 0);
    net_teardown(t);
}

static void test_stream_200k_lossless(void **state)
{
    (void)state;
    bulk(0, 200 * 1024, 0, 1500, SPRIG_TIME_S(60));
}

static void test_stream_200k_5pct_impaired(void **state)
{
    (void)state;
    bulk(50000, 200 * 1024, 0, 1500, SPRIG_TIME_S(600));
}

static void test_stream_200k_20pct_impaired(void **state)
{
    (void)state;
    bulk(200000, 200 * 1024, 0, 1500, SPRIG_TIME_S(3600));
}

/* 100 bytes every 20 ms: the sender is held by the window, nothing is lost or resent. */
static void test_stream_slow_receiver_throttles(void **state)
{
    (void)state;
    bulk(0, 20 * 1024, SPRIG_TIME_MS(20), 100, SPRIG_TIME_S(60));
}

static void test_stream_keepalive_detects_dead_peer(void **state)
{
    (void)state;
    net *t = &the_net;
    sprig_ns_stream_cfg sc = {.tc = SPRIG_NS_TC_DEFAULT,
                              .keepalive_idle = SPRIG_TIME_S(1),
                              .keepalive_interval = SPRIG_TIME_MS(250),
                              .keepalive_count = 3};
    net_setup(t, &sc);
    sprig_sock *lis, *cli, *srv;
    ev lv = {0}, cv = {0}, sv = {0};
    connect_pair(t, &lis, &cli, &srv, &lv, &cv, &sv);
    /* an idle but live connection survives keepalive */
    fx_run(&t->f, SPRIG_TIME_S(10));
    assert_int_equal(cv.closed + sv.closed, 0);
    set_impair(t, 1000000, 0, 0, 0); /* the path dies */
    sprig_time cut = t->f.fc.now;
    fx_run(&t->f, SPRIG_TIME_S(5));
    assert_int_equal(cv.closed, 1);
    assert_int_equal(cv.closed_status, SPRIG_STATUS_ABORTED);
    assert_int_equal(sv.closed_status, SPRIG_STATUS_ABORTED);
    /* idle 1 s + 3 probes 250 ms apart + the last wait */
    assert_true(cv.closed_at - cut <= SPRIG_TIME_MS(2000) + SPRIG_TIME_MS(10));
    size_t n;
    char b[4];
    assert_int_equal(sprig_sock_recv(cli, b, sizeof(b), &n), SPRIG_STATUS_ABORTED);
    sprig_sock_close(cli);
    sprig_sock_close(srv);
    sprig_sock_close(lis);
    set_impair(t, 0, 0, 0, 0);
    net_teardown(t);
}

static void test_stream_retransmission_detects_dead_peer(void **state)
{
    (void)state;
    net *t = &the_net;
    sprig_ns_stream_cfg sc = {
        .tc = SPRIG_NS_TC_DEFAULT, .rto_max = SPRIG_TIME_S(1), .max_retries = 5};
    net_setup(t, &sc);
    sprig_sock *lis, *cli, *srv;
    ev lv = {0}, cv = {0}, sv = {0};
    connect_pair(t, &lis, &cli, &srv, &lv, &cv, &sv);
    set_impair(t, 1000000, 0, 0, 0);
    size_t n;
    assert_int_equal(sprig_sock_send(cli, "data", 4, &n), SPRIG_STATUS_OK);
    sprig_time cut = t->f.fc.now;
    fx_run(&t->f, SPRIG_TIME_S(10));
    assert_int_equal(cv.closed, 1);
    assert_int_equal(cv.closed_status, SPRIG_STATUS_ABORTED);
    /* 200 ms, 400, 800, 1000, 1000, then the 6th timeout */
    assert_true(cv.closed_at - cut <= SPRIG_TIME_MS(4500));
    assert_int_equal(sv.closed, 0); /* the server heard nothing and has no keepalive */
    sprig_sock_close(cli);
    sprig_sock_close(srv); /* its FIN goes nowhere; the retries free it */
    sprig_sock_close(lis);
    fx_run(&t->f, SPRIG_TIME_S(10));
    set_impair(t, 0, 0, 0, 0);
    net_teardown(t);
}

static void test_stream_connect_timeout(void **state)
{
    (void)state;
    net *t = &the_net;
    sprig_ns_stream_cfg sc = {.tc = SPRIG_NS_TC_DEFAULT, .max_retries = 2};
    net_setup(t, &sc);
    set_impair(t, 1000000, 0, 0, 0);
    sprig_sock *cli;
    ev cv = {0};
    assert_int_equal(open_via(&t->be[0], "sprig://3:80", false, &cli, &cv), SPRIG_STATUS_OK);
    fx_run(&t->f, SPRIG_TIME_S(10));
    assert_int_equal(cv.closed, 1);
    assert_int_equal(cv.closed_status, SPRIG_STATUS_DEADLINE_EXCEEDED);
    sprig_sock_close(cli);
    set_impair(t, 0, 0, 0, 0);
    net_teardown(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_wire_roundtrip),
        cmocka_unit_test(test_stream_echo_and_orderly_close),
        cmocka_unit_test(test_stream_refused_and_no_route),
        cmocka_unit_test(test_stream_listener_close_resets),
        cmocka_unit_test(test_stream_orphan_freed_without_peer_fin),
        cmocka_unit_test(test_stream_seqpacket_impaired),
        cmocka_unit_test(test_stream_200k_lossless),
        cmocka_unit_test(test_stream_200k_5pct_impaired),
        cmocka_unit_test(test_stream_200k_20pct_impaired),
        cmocka_unit_test(test_stream_slow_receiver_throttles),
        cmocka_unit_test(test_stream_keepalive_detects_dead_peer),
        cmocka_unit_test(test_stream_retransmission_detects_dead_peer),
        cmocka_unit_test(test_stream_connect_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
