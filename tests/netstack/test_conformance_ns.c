/* The socket contract suite against the netstack DGRAM and STREAM backends: one node, its
 * sockets talking through the node's loopback (sprig://1:PORT). DGRAM skips the reliable-only
 * cases. The STREAM backend is registered last, so it takes sprig:// URLs and hands DGRAM to the
 * DGRAM backend. */
#include "conformance.h"

#include <stdio.h>
#include <stdlib.h>

#include "sprig/ns_dgram.h"
#include "sprig/ns_stream.h"

enum {
    NS_SOCKS = 128,
    NS_CONNS = 208,
    NS_TX_RING = 65536,
    NS_RX_RING = 65536,
    NS_MAX_MESSAGE = 4096,
    NS_BUFS = 256,
    NS_BUF_SIZE = 2048
};

typedef struct ns_state {
    sprig_ns_node node;
    sprig_ns_dgram_backend be;
    sprig_ns_dsock socks[NS_SOCKS];
    sprig_ns_stream_backend sbe;
    sprig_ns_conn conns[NS_CONNS];
    sprig_framed_sock framed[NS_CONNS];
    uint8_t framed_mem[NS_CONNS * 2 * (NS_MAX_MESSAGE + 4)];
    uint8_t rings[NS_CONNS * (NS_TX_RING + NS_RX_RING)];
    sprig_buf_pool pool;
    sprig_buf bufs[NS_BUFS];
    uint8_t *mem;
} ns_state;

static void ns_setup(sprig_conf_env *env)
{
    ns_state *st = calloc(1, sizeof(*st));
    assert_non_null(st);
    st->mem = aligned_alloc(SPRIG_CONFIG_BUF_ALIGN, (size_t)NS_BUFS * NS_BUF_SIZE);
    assert_non_null(st->mem);
    assert_int_equal(sprig_buf_pool_init(&st->pool, st->bufs, st->mem, NS_BUFS, NS_BUF_SIZE),
                     SPRIG_STATUS_OK);
    sprig_ns_node_cfg nc = {.id = 1, .loop = env->loop, .pool = &st->pool};
    assert_int_equal(sprig_ns_node_init(&st->node, &nc), SPRIG_STATUS_OK);
    /* the suite queues 64 datagrams before reading */
    sprig_ns_dgram_cfg dc = {.rx_queue_len = 128, .tc = SPRIG_NS_TC_DEFAULT};
    assert_int_equal(sprig_ns_dgram_init(&st->be, &st->node, &dc, st->socks, NS_SOCKS, &st->pool),
                     SPRIG_STATUS_OK);
    /* the suite queues 64 messages (48 KB) before reading: the receive window holds them; a send
     * ring as large as the window makes the window, not the ring, what blocks a sender */
    sprig_ns_stream_cfg sc = {
        .tc = SPRIG_NS_TC_DEFAULT, .tx_buf = NS_TX_RING, .rx_buf = NS_RX_RING, .dgram = &st->be};
    assert_int_equal(sprig_ns_stream_init(&st->sbe, &st->node, &sc, st->conns, NS_CONNS, st->rings,
                                          sizeof(st->rings), &st->pool),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_stream_enable_seqpacket(&st->sbe, st->framed, NS_CONNS,
                                                      st->framed_mem, sizeof(st->framed_mem),
                                                      NS_MAX_MESSAGE),
                     SPRIG_STATUS_OK);
    env->backend = st;
}

static void ns_teardown(sprig_conf_env *env)
{
    ns_state *st = env->backend;
    sprig_ns_stream_deinit(&st->sbe);
    sprig_ns_stream_deinit(&st->sbe);
    sprig_ns_dgram_deinit(&st->be);
    sprig_ns_dgram_deinit(&st->be);
    sprig_ns_node_deinit(&st->node);
    free(st->mem);
    free(st);
}

static size_t ns_leaked(sprig_conf_env *env)
{
    ns_state *st = env->backend;
    /* let the loopback drain first: datagrams to closed ports are answered and freed */
    (void)sprig_loop_run_once(env->loop, 0);
    (void)sprig_loop_run_once(env->loop, 0);
    return sprig_ns_dgram_in_use(&st->be) + sprig_ns_stream_in_use(&st->sbe) +
           (NS_BUFS - sprig_buf_pool_available(&st->pool));
}

static void ns_listen_url(sprig_conf_env *env, char *out, size_t cap)
{
    snprintf(out, cap, "sprig://1:%u", 7000u + env->url_counter++);
}

static void ns_dial_url(sprig_conf_env *env, sprig_sock *l, char *out, size_t cap)
{
    (void)env;
    sprig_addr a;
    assert_int_equal(sprig_sock_local_addr(l, &a), SPRIG_STATUS_OK);
    snprintf(out, cap, "sprig://1:%u", a.port);
}

static void ns_refused_url(sprig_conf_env *env, char *out, size_t cap)
{
    (void)env;
    snprintf(out, cap, "sprig://1:9");
}

int main(void)
{
    static const sprig_conf_target targets[] = {
        {
            .name = "netstack/seqpacket",
            .type = SPRIG_SOCK_SEQPACKET,
            .setup = ns_setup,
            .teardown = ns_teardown,
            .leaked = ns_leaked,
            .listen_url = ns_listen_url,
            .dial_url = ns_dial_url,
            .refused_url = ns_refused_url,
            .refused_status = {SPRIG_STATUS_UNAVAILABLE, SPRIG_STATUS_UNAVAILABLE},
            .max_connections = 100,
        },
        {
            .name = "netstack/stream",
            .type = SPRIG_SOCK_STREAM,
            .setup = ns_setup,
            .teardown = ns_teardown,
            .leaked = ns_leaked,
            .listen_url = ns_listen_url,
            .dial_url = ns_dial_url,
            .refused_url = ns_refused_url,
            .refused_status = {SPRIG_STATUS_UNAVAILABLE, SPRIG_STATUS_UNAVAILABLE},
            .max_connections = 100,
        },
        {
            .name = "netstack/dgram",
            .type = SPRIG_SOCK_DGRAM,
            .setup = ns_setup,
            .teardown = ns_teardown,
            .leaked = ns_leaked,
            .listen_url = ns_listen_url,
            .dial_url = ns_dial_url,
            .refused_url = ns_refused_url,
            .refused_status = {SPRIG_STATUS_OK, SPRIG_STATUS_OK},
            .max_connections = 100,
        }};
    return sprig_conf_run(targets, sizeof(targets) / sizeof(targets[0]));
}
