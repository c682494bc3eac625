/* test_os_udp.c — UDP encapsulation (sprig/ns_os.h, docs/netstack.md §7): two nodes over UDP
 * loopback exchanging DGRAM messages, a listening side that learns its peer, garbage,
 * oversized and stray datagrams dropped and counted, and one listener serving several nodes at
 * once through its peer table (learning, broadcast, unknown destinations, eviction, a node
 * that moves to another address). */
#define _GNU_SOURCE
#include "support.h"

#include "ns_os_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sprig/ns_dgram.h"
#include "sprig/ns_os.h"

#define NBUFS    64
#define BUF_SIZE 1152
#define SOCKS    4
#define MTU      1024

typedef struct side {
    sprig_ns_node node;
    sprig_ns_route routes[1];
    sprig_ns_udp link;
    sprig_ns_dgram_backend be;
    sprig_ns_dsock socks[SOCKS];
    unsigned echo_replies;
} side;

typedef struct net {
    sprig_os_loop ol;
    sprig_buf_pool pool;
    side s[2];
} net;

static net the_net;
static sprig_buf pool_bufs[NBUFS];
static uint8_t pool_mem[NBUFS * BUF_SIZE] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));

static void on_icmp(sprig_ns_node *node, const sprig_ns_header *ip, const sprig_ns_icmp *msg,
                    const uint8_t *body, size_t len, void *arg)
{
    (void)node;
    (void)ip;
    (void)body;
    (void)len;
    side *s = arg;
    if (msg->type == SPRIG_NS_ICMP_ECHO_REPLY) {
        s->echo_replies++;
    }
}

static void loopback(sprig_addr *a, uint16_t port)
{
    sprig_addr_from_ipv4(a, 0x7f000001u, port);
}

/* Node 2 listens on 127.0.0.1:0 and learns its peer; node 1 sends to it. */
static void net_init(net *t)
{
    memset(t, 0, sizeof(*t));
    assert_int_equal(sprig_os_loop_init(&t->ol), SPRIG_STATUS_OK);
    assert_int_equal(sprig_buf_pool_init(&t->pool, pool_bufs, pool_mem, NBUFS, BUF_SIZE),
                     SPRIG_STATUS_OK);
    sprig_addr b_addr;
    for (int i = 1; i >= 0; i--) {
        side *s = &t->s[i];
        sprig_ns_node_cfg nc = {.id = (uint16_t)(i + 1),
                                .loop = &t->ol.loop,
                                .pool = &t->pool,
                                .routes = s->routes,
                                .route_cap = 1,
                                .on_icmp = on_icmp,
                                .icmp_arg = s};
        assert_int_equal(sprig_ns_node_init(&s->node, &nc), SPRIG_STATUS_OK);
        sprig_ns_udp_cfg uc = {.pool = &t->pool, .mtu = MTU};
        loopback(&uc.local, 0);
        if (i == 0) {
            uc.peer = b_addr;
            uc.has_peer = true;
        }
        assert_int_equal(sprig_ns_udp_init(&s->link, &t->ol, &uc), SPRIG_STATUS_OK);
        if (i == 1) {
            assert_int_equal(sprig_ns_udp_local(&s->link, &b_addr), SPRIG_STATUS_OK);
            assert_true(b_addr.port != 0);
            assert_true(sprig_addr_is_ipv4(&b_addr));
        }
        sprig_ns_link *l = sprig_ns_udp_link(&s->link);
        assert_int_equal(sprig_ns_node_attach(&s->node, l), SPRIG_STATUS_OK);
        assert_int_equal(sprig_ns_node_add_route(&s->node, 0, 0, l), SPRIG_STATUS_OK);
        sprig_ns_dgram_cfg dc = {.rx_queue_len = 32, .tc = SPRIG_NS_TC_DEFAULT};
        assert_int_equal(sprig_ns_dgram_init(&s->be, &s->node, &dc, s->socks, SOCKS, &t->pool),
                         SPRIG_STATUS_OK);
    }
}

static void net_deinit(net *t)
{
    for (int i = 0; i < 2; i++) {
        side *s = &t->s[i];
        assert_int_equal(sprig_ns_dgram_in_use(&s->be), 0);
        sprig_ns_dgram_deinit(&s->be);
        sprig_ns_udp_deinit(&s->link);
        sprig_ns_udp_deinit(&s->link); /* idempotent */
        sprig_ns_node_deinit(&s->node);
    }
    assert_int_equal(sprig_buf_pool_available(&t->pool), NBUFS);
    sprig_buf_pool_deinit(&t->pool);
    sprig_os_loop_deinit(&t->ol);
}

static void fill(uint8_t *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)((seed * 131u + i * 7u) ^ (i >> 3));
    }
}

static void exchange(net *t, unsigned count)
{
    sprig_sock *srv = nsos_open(&t->s[1].be, "sprig://2:7", true);
    sprig_sock *cli = nsos_open(&t->s[0].be, "sprig://2:7", false);
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(5));
    assert_int_equal(sprig_sock_max_message_size(cli), MTU - 14);
    static uint8_t out[MTU], in[MTU];
    sprig_addr from;
    for (unsigned i = 0; i < count; i++) {
        size_t len = 1 + (i * 97u) % (MTU - 14);
        fill(out, len, i);
        assert_int_equal(sprig_sock_send(cli, out, len, NULL), SPRIG_STATUS_OK);
        size_t n = nsos_recv_one(&t->ol.loop, srv, in, sizeof(in), &from);
        assert_int_equal(n, len);
        assert_memory_equal(in, out, len);
        fill(out, len, i + 1000u);
        assert_int_equal(sprig_sock_send_to(srv, out, len, &from), SPRIG_STATUS_OK);
        n = nsos_recv_one(&t->ol.loop, cli, in, sizeof(in), NULL);
        assert_int_equal(n, len);
        assert_memory_equal(in, out, len);
    }
    sprig_sock_close(cli);
    sprig_sock_close(srv);
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(5));
}

static void test_os_udp_exchange(void **state)
{
    (void)state;
    net *t = &the_net;
    net_init(t);
    exchange(t, 40);
    for (int i = 0; i < 2; i++) {
        const sprig_ns_udp_stats *st = &t->s[i].link.stats;
        assert_int_equal(st->rx_datagrams, 40);
        assert_int_equal(st->tx_datagrams, 40);
        assert_int_equal(st->bad + st->too_long + st->wrong_peer + st->tx_errors, 0);
    }
    /* the listener learnt node 1's address (and nothing else) */
    assert_int_equal(sprig_ns_udp_peer_count(&t->s[1].link), 1);
    sprig_addr a_addr, learnt;
    assert_int_equal(sprig_ns_udp_local(&t->s[0].link, &a_addr), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_udp_peer_addr(&t->s[1].link, 1, &learnt), SPRIG_STATUS_OK);
    assert_true(sprig_addr_equal(&a_addr, &learnt));
    assert_int_equal(sprig_ns_udp_peer_addr(&t->s[1].link, 3, &learnt), SPRIG_STATUS_NOT_FOUND);
    /* the dialing side sends everything to its peer */
    sprig_addr b_addr;
    assert_int_equal(sprig_ns_udp_local(&t->s[1].link, &b_addr), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_udp_peer_addr(&t->s[0].link, 99, &learnt), SPRIG_STATUS_OK);
    assert_true(sprig_addr_equal(&b_addr, &learnt));
    /* ping both ways */
    assert_int_equal(sprig_ns_node_ping(&t->s[0].node, 2, 1, 1, (const uint8_t *)"hi", 2, 0),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_ping(&t->s[1].node, 1, 1, 1, (const uint8_t *)"hi", 2, 0),
                     SPRIG_STATUS_OK);
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(50));
    assert_int_equal(t->s[0].echo_replies, 1);
    assert_int_equal(t->s[1].echo_replies, 1);
    net_deinit(t);
}

static void send_raw(int fd, const sprig_addr *to, const void *data, size_t len)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(to->port);
    sin.sin_addr.s_addr = htonl(sprig_addr_ipv4(to));
    assert_int_equal(sendto(fd, data, len, 0, (struct sockaddr *)&sin, sizeof(sin)), (ssize_t)len);
}

static void test_os_udp_garbage_dropped(void **state)
{
    (void)state;
    net *t = &the_net;
    net_init(t);
    sprig_addr b_addr;
    assert_int_equal(sprig_ns_udp_local(&t->s[1].link, &b_addr), SPRIG_STATUS_OK);
    int stray = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(stray >= 0);
    static uint8_t junk[1200];
    fill(junk, sizeof(junk), 5);
    junk[0] = 0x00; /* version 0: never a netstack packet */
    /* before the peer is known: garbage does not teach the listener a peer */
    send_raw(stray, &b_addr, junk, 100);
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(20));
    assert_int_equal(t->s[1].link.stats.bad, 1);
    assert_int_equal(sprig_ns_udp_peer_count(&t->s[1].link), 0);
    /* node 2 cannot send yet: dropped and counted */
    assert_int_equal(sprig_ns_node_ping(&t->s[1].node, 1, 1, 1, NULL, 0, 0), SPRIG_STATUS_OK);
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(5));
    assert_int_equal(t->s[1].link.stats.no_peer, 1);
    assert_int_equal(t->s[1].echo_replies, 0);
    /* node 1 pings: node 2 learns it and answers */
    assert_int_equal(sprig_ns_node_ping(&t->s[0].node, 2, 1, 2, NULL, 0, 0), SPRIG_STATUS_OK);
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(50));
    assert_int_equal(t->s[0].echo_replies, 1);
    /* from the learnt peer's own socket: garbage, an empty datagram, one over the MTU */
    send_raw(t->s[0].link.fd, &b_addr, junk, 64);
    send_raw(t->s[0].link.fd, &b_addr, junk, 0);
    junk[0] = 0x42;
    send_raw(t->s[0].link.fd, &b_addr, junk, MTU + 1);
    /* a stray sender after the peer is known: garbage to the listener; to the dialing side,
     * which only takes its peer's datagrams, even a well-formed packet is refused */
    send_raw(stray, &b_addr, junk, 100);
    sprig_addr a_addr;
    assert_int_equal(sprig_ns_udp_local(&t->s[0].link, &a_addr), SPRIG_STATUS_OK);
    uint8_t good[8];
    sprig_ns_header gh = {.tc = 0, .hop_limit = 4, .proto = 200, .length = 8, .dst = 1, .src = 2};
    assert_int_equal(sprig_ns_header_emit(&gh, good, sizeof(good)), SPRIG_STATUS_OK);
    send_raw(stray, &a_addr, good, sizeof(good));
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(50));
    const sprig_ns_udp_stats *st = &t->s[1].link.stats;
    assert_int_equal(st->bad, 4);
    assert_int_equal(st->too_long, 1);
    assert_int_equal(st->wrong_peer, 0);
    assert_int_equal(t->s[0].link.stats.wrong_peer, 1);
    assert_int_equal(sprig_ns_udp_peer_count(&t->s[1].link), 1);
    assert_int_equal(t->s[1].node.stats.bad_header, 0); /* the link caught them all */
    /* still working */
    exchange(t, 5);
    close(stray);
    net_deinit(t);
}

static void test_os_udp_bad_config(void **state)
{
    (void)state;
    net *t = &the_net;
    memset(t, 0, sizeof(*t));
    assert_int_equal(sprig_os_loop_init(&t->ol), SPRIG_STATUS_OK);
    assert_int_equal(sprig_buf_pool_init(&t->pool, pool_bufs, pool_mem, NBUFS, BUF_SIZE),
                     SPRIG_STATUS_OK);
    sprig_ns_udp u, v;
    sprig_ns_udp_cfg c = {.pool = &t->pool, .mtu = 32};
    loopback(&c.local, 0);
    assert_int_equal(sprig_ns_udp_init(&u, &t->ol, &c), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_ns_udp_deinit(&u);
    c.mtu = 1400; /* bigger than the pool's buffers */
    assert_int_equal(sprig_ns_udp_init(&u, &t->ol, &c), SPRIG_STATUS_INVALID_ARGUMENT);
    c.mtu = 0; /* default 1024 */
    c.has_peer = true;
    memset(&c.peer, 0, sizeof(c.peer));
    c.peer.ip[15] = 1; /* ::1 with an IPv4 local address */
    assert_int_equal(sprig_ns_udp_init(&u, &t->ol, &c), SPRIG_STATUS_INVALID_ARGUMENT);
    c.has_peer = false;
    sprig_ns_udp_peer table[1];
    c.peers = table; /* a table without rows */
    assert_int_equal(sprig_ns_udp_init(&u, &t->ol, &c), SPRIG_STATUS_INVALID_ARGUMENT);
    c.peers = NULL; /* one built-in row */
    assert_int_equal(sprig_ns_udp_init(&u, &t->ol, &c), SPRIG_STATUS_OK);
    assert_int_equal(u.link.mtu, 1024);
    assert_int_equal(sprig_ns_udp_local(&u, &c.local), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_udp_init(&v, &t->ol, &c), SPRIG_STATUS_ALREADY_EXISTS);
    sprig_ns_udp_deinit(&v);
    sprig_ns_udp_deinit(&u);
    sprig_ns_udp zeroed;
    memset(&zeroed, 0, sizeof(zeroed));
    sprig_ns_udp_deinit(&zeroed); /* safe: closes nothing */
    sprig_buf_pool_deinit(&t->pool);
    sprig_os_loop_deinit(&t->ol);
}

/* ---- one listener, several dialing nodes at once (peer table) ------------------------------- */

#define CLIENTS 3

typedef struct multi {
    sprig_os_loop ol;
    sprig_buf_pool pool;
    side lis;          /* node 10, listening, a peer table of two rows */
    side cli[CLIENTS]; /* nodes 1, 3, 4, dialing the listener */
    sprig_ns_udp_peer table[2];
    sprig_addr lis_addr;
} multi;

static multi the_multi;

static void side_open(multi *t, side *s, uint16_t id, const sprig_ns_udp_cfg *uc)
{
    sprig_ns_node_cfg nc = {.id = id,
                            .loop = &t->ol.loop,
                            .pool = &t->pool,
                            .routes = s->routes,
                            .route_cap = 1,
                            .on_icmp = on_icmp,
                            .icmp_arg = s};
    assert_int_equal(sprig_ns_node_init(&s->node, &nc), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_udp_init(&s->link, &t->ol, uc), SPRIG_STATUS_OK);
    sprig_ns_link *l = sprig_ns_udp_link(&s->link);
    assert_int_equal(sprig_ns_node_attach(&s->node, l), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_add_route(&s->node, 0, 0, l), SPRIG_STATUS_OK);
}

static void side_close(side *s)
{
    sprig_ns_udp_deinit(&s->link);
    sprig_ns_node_deinit(&s->node);
}

static void client_open(multi *t, int i, uint16_t id)
{
    sprig_ns_udp_cfg uc = {.pool = &t->pool, .mtu = MTU, .peer = t->lis_addr, .has_peer = true};
    loopback(&uc.local, 0);
    memset(&t->cli[i], 0, sizeof(t->cli[i]));
    side_open(t, &t->cli[i], id, &uc);
}

static void ping(side *s, uint16_t dst, uint16_t seq)
{
    assert_int_equal(sprig_ns_node_ping(&s->node, dst, 7, seq, (const uint8_t *)"multi", 5, 0),
                     SPRIG_STATUS_OK);
}

static void test_os_udp_multi_peer(void **state)
{
    (void)state;
    multi *t = &the_multi;
    memset(t, 0, sizeof(*t));
    assert_int_equal(sprig_os_loop_init(&t->ol), SPRIG_STATUS_OK);
    assert_int_equal(sprig_buf_pool_init(&t->pool, pool_bufs, pool_mem, NBUFS, BUF_SIZE),
                     SPRIG_STATUS_OK);
    sprig_ns_udp_cfg lc = {.pool = &t->pool, .mtu = MTU, .peers = t->table, .peer_cap = 2};
    loopback(&lc.local, 0);
    side_open(t, &t->lis, 10, &lc);
    assert_int_equal(sprig_ns_udp_local(&t->lis.link, &t->lis_addr), SPRIG_STATUS_OK);
    client_open(t, 0, 1);
    client_open(t, 1, 3);
    client_open(t, 2, 4);
    sprig_ns_udp *lu = &t->lis.link;

    /* nodes 1 and 3 at once: five pings each before the loop runs; every reply goes back to
     * the node that asked */
    for (uint16_t i = 0; i < 5; i++) {
        ping(&t->cli[0], 10, i);
        ping(&t->cli[1], 10, i);
    }
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(50));
    assert_int_equal(t->cli[0].echo_replies, 5);
    assert_int_equal(t->cli[1].echo_replies, 5);
    assert_int_equal(sprig_ns_udp_peer_count(lu), 2);
    sprig_addr a, want;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sprig_ns_udp_local(&t->cli[i].link, &want), SPRIG_STATUS_OK);
        assert_int_equal(sprig_ns_udp_peer_addr(lu, sprig_ns_node_id(&t->cli[i].node), &a),
                         SPRIG_STATUS_OK);
        assert_true(sprig_addr_equal(&a, &want));
    }
    /* the listener reaches each of them, and a broadcast reaches both */
    ping(&t->lis, 1, 1);
    ping(&t->lis, 3, 1);
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(50));
    assert_int_equal(t->lis.echo_replies, 2);
    ping(&t->lis, SPRIG_NS_NODE_BROADCAST, 2);
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(50));
    assert_int_equal(t->lis.echo_replies, 4);
    /* an unknown destination: dropped and counted, nothing sent */
    uint32_t tx = lu->stats.tx_datagrams;
    ping(&t->lis, 4, 1);
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(20));
    assert_int_equal(lu->stats.no_peer, 1);
    assert_int_equal(lu->stats.tx_datagrams, tx);
    assert_int_equal(t->lis.echo_replies, 4);
    assert_int_equal(lu->stats.evicted, 0);

    /* node 3 speaks, then node 4 arrives at a full table: node 1, heard from least recently,
     * loses its row */
    ping(&t->cli[1], 10, 9);
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(20));
    ping(&t->cli[2], 10, 1);
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(50));
    assert_int_equal(t->cli[2].echo_replies, 1);
    assert_int_equal(lu->stats.evicted, 1);
    assert_int_equal(sprig_ns_udp_peer_count(lu), 2);
    assert_int_equal(sprig_ns_udp_peer_addr(lu, 1, &a), SPRIG_STATUS_NOT_FOUND);
    assert_int_equal(sprig_ns_udp_peer_addr(lu, 3, &a), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_udp_peer_addr(lu, 4, &a), SPRIG_STATUS_OK);
    ping(&t->lis, 1, 3);
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(20));
    assert_int_equal(lu->stats.no_peer, 2);
    /* node 1 speaks again: back in (evicting node 3 now), and answered */
    ping(&t->cli[0], 10, 20);
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(50));
    assert_int_equal(t->cli[0].echo_replies, 6);
    assert_int_equal(lu->stats.evicted, 2);
    assert_int_equal(sprig_ns_udp_peer_addr(lu, 3, &a), SPRIG_STATUS_NOT_FOUND);

    /* node 4 comes back from another UDP port (a restarted client): its row follows */
    side_close(&t->cli[2]);
    client_open(t, 2, 4);
    ping(&t->cli[2], 10, 2);
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(50));
    assert_int_equal(t->cli[2].echo_replies, 1);
    assert_int_equal(sprig_ns_udp_local(&t->cli[2].link, &want), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_udp_peer_addr(lu, 4, &a), SPRIG_STATUS_OK);
    assert_true(sprig_addr_equal(&a, &want));
    assert_int_equal(lu->stats.evicted, 2);
    assert_int_equal(lu->stats.bad + lu->stats.too_long + lu->stats.tx_errors, 0);

    for (int i = 0; i < CLIENTS; i++) {
        side_close(&t->cli[i]);
    }
    side_close(&t->lis);
    assert_int_equal(sprig_buf_pool_available(&t->pool), NBUFS);
    sprig_buf_pool_deinit(&t->pool);
    sprig_os_loop_deinit(&t->ol);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_os_udp_exchange),
        cmocka_unit_test(test_os_udp_garbage_dropped),
        cmocka_unit_test(test_os_udp_bad_config),
        cmocka_unit_test(test_os_udp_multi_peer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
