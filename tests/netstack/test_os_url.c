/* test_os_url.c — host netstack endpoints from URLs (sprig_ns_os_open, docs/netstack.md §11):
 * sprig+udp://HOST:PORT (listening and dialling) and serial:PATH over a pty, pings and DGRAM
 * messages through them, and the URLs that must be refused. */
#define _GNU_SOURCE
#include "support.h"

#include <pty.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sprig/ns_os.h"

typedef struct pings {
    unsigned replies;
    uint16_t last_seq;
    uint16_t from;
} pings;

static void on_icmp(sprig_ns_node *node, const sprig_ns_header *ip, const sprig_ns_icmp *msg,
                    const uint8_t *body, size_t len, void *arg)
{
    (void)node;
    (void)body;
    (void)len;
    pings *p = arg;
    if (msg->type == SPRIG_NS_ICMP_ECHO_REPLY) {
        p->replies++;
        p->last_seq = msg->b;
        p->from = ip->src;
    }
}

static bool replied(void *arg)
{
    return ((pings *)arg)->replies > 0;
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

static void test_os_url_udp(void **state)
{
    (void)state;
    sprig_os_loop ol;
    assert_int_equal(sprig_os_loop_init(&ol), SPRIG_STATUS_OK);
    pings pa = {0}, pb = {0};
    sprig_ns_os_opts oa = {.bufs = 32, .socks = 4, .on_icmp = on_icmp, .icmp_arg = &pa};
    sprig_ns_os_opts ob = {.on_icmp = on_icmp, .icmp_arg = &pb};
    sprig_ns_os_endpoint *b = NULL, *a = NULL;
    assert_int_equal(sprig_ns_os_open(&ol, "sprig+udp://127.0.0.1:0?node=7&peer=1&listen", &ob, &b),
                     SPRIG_STATUS_OK);
    assert_true(b->is_udp);
    assert_int_equal(sprig_ns_node_id(&b->node), 7);
    assert_int_equal(b->peer, 1);
    sprig_addr local;
    assert_int_equal(sprig_ns_udp_local(&b->udp, &local), SPRIG_STATUS_OK);
    char url[128];
    snprintf(url, sizeof(url), "SPRIG+UDP://localhost:%u?node=0x1&peer=7&mtu=512",
             (unsigned)local.port);
    assert_int_equal(sprig_ns_os_open(&ol, url, &oa, &a), SPRIG_STATUS_OK);
    assert_int_equal(a->udp.link.mtu, 512);
    assert_int_equal(sprig_ns_node_ping(&a->node, a->peer, 9, 3, (const uint8_t *)"abc", 3, 0),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_loop_run_until(&ol.loop, replied, &pa, SPRIG_TIME_S(2)),
                     SPRIG_STATUS_OK);
    assert_int_equal(pa.last_seq, 3);
    assert_int_equal(pa.from, 7);
    /* DGRAM through the endpoints' backends (several on one loop: go to each directly) */
    sprig_url u;
    sprig_sock *srv = NULL, *cli = NULL;
    assert_int_equal(sprig_url_parse("sprig://7:9", &u), SPRIG_STATUS_OK);
    assert_int_equal(b->dgram.backend.listen(&b->dgram.backend, &u, SPRIG_SOCK_DGRAM, &srv),
                     SPRIG_STATUS_OK);
    assert_int_equal(a->dgram.backend.dial(&a->dgram.backend, &u, SPRIG_SOCK_DGRAM, &cli),
                     SPRIG_STATUS_OK);
    (void)sprig_loop_run_until(&ol.loop, never, NULL, SPRIG_TIME_MS(5));
    assert_int_equal(sprig_sock_max_message_size(cli), 512 - 14);
    assert_int_equal(sprig_sock_send(cli, "over udp", 8, NULL), SPRIG_STATUS_OK);
    char buf[64];
    size_t len = 0;
    assert_int_equal(sprig_sock_recv_wait(srv, buf, sizeof(buf), &len, SPRIG_TIME_S(2)),
                     SPRIG_STATUS_OK);
    assert_int_equal(len, 8);
    assert_memory_equal(buf, "over udp", 8);
    sprig_sock_close(cli);
    sprig_sock_close(srv);
    (void)sprig_loop_run_until(&ol.loop, never, NULL, SPRIG_TIME_MS(5));
    assert_int_equal(a->pool.available, a->pool.count);
    sprig_ns_os_close(a);
    sprig_ns_os_close(b);
    sprig_ns_os_close(NULL);
    sprig_os_loop_deinit(&ol);
}

/* serial:PATH on a pty slave; the master end is a hand-built node 2 that answers pings. */
static void test_os_url_serial(void **state)
{
    (void)state;
    sprig_os_loop ol;
    assert_int_equal(sprig_os_loop_init(&ol), SPRIG_STATUS_OK);
    int m = -1, sl = -1;
    char name[128], url[192];
    assert_int_equal(openpty(&m, &sl, name, NULL, NULL), 0);
    pings pa = {0};
    sprig_ns_os_opts oa = {.on_icmp = on_icmp, .icmp_arg = &pa};
    sprig_ns_os_endpoint *a = NULL;
    snprintf(url, sizeof(url), "serial:%s?node=1&peer=2&baud=921600", name);
    assert_int_equal(sprig_ns_os_open(&ol, url, &oa, &a), SPRIG_STATUS_OK);
    assert_false(a->is_udp);
    assert_true(a->serial.is_tty);
    close(sl);

    static sprig_buf bufs[16];
    static uint8_t mem[16 * 1088] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
    sprig_buf_pool pool;
    assert_int_equal(sprig_buf_pool_init(&pool, bufs, mem, 16, 1088), SPRIG_STATUS_OK);
    sprig_ns_node nb;
    sprig_ns_route rb[1];
    sprig_ns_node_cfg nc = {.id = 2, .loop = &ol.loop, .pool = &pool, .routes = rb, .route_cap = 1};
    assert_int_equal(sprig_ns_node_init(&nb, &nc), SPRIG_STATUS_OK);
    sprig_ns_serial_fd lb;
    sprig_ns_serial_fd_cfg lc = {.pool = &pool, .mtu = 1024};
    assert_int_equal(sprig_ns_serial_fd_init(&lb, &ol, m, true, &lc), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_attach(&nb, sprig_ns_serial_fd_link(&lb)), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_add_route(&nb, 0, 0, sprig_ns_serial_fd_link(&lb)),
                     SPRIG_STATUS_OK);

    uint8_t data[600];
    memset(data, 0, sizeof(data)); /* all zeros: worst case for COBS */
    assert_int_equal(sprig_ns_node_ping(&a->node, a->peer, 1, 42, data, sizeof(data), 0),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_loop_run_until(&ol.loop, replied, &pa, SPRIG_TIME_S(2)),
                     SPRIG_STATUS_OK);
    assert_int_equal(pa.last_seq, 42);
    assert_int_equal(pa.from, 2);

    sprig_ns_os_close(a);
    sprig_ns_serial_fd_deinit(&lb);
    sprig_ns_node_deinit(&nb);
    assert_int_equal(sprig_buf_pool_available(&pool), 16);
    sprig_buf_pool_deinit(&pool);
    sprig_os_loop_deinit(&ol);
}

static void test_os_url_refused(void **state)
{
    (void)state;
    sprig_os_loop ol;
    assert_int_equal(sprig_os_loop_init(&ol), SPRIG_STATUS_OK);
    /* each with a reason in words (opts.error): a fragment of it */
    static const struct {
        const char *url;
        sprig_status st;
        const char *why;
    } cases[] = {
        {"serial:/dev/null-nonexistent-sprig", SPRIG_STATUS_NOT_FOUND,
         "serial device /dev/null-nonexistent-sprig not found"},
        {"serial:/dev/ttyACM0?baud=1200", SPRIG_STATUS_INVALID_ARGUMENT,
         "baud=1200 is refused"}, /* never 1200 */
        {"serial:/dev/ttyACM0?baud=12345", SPRIG_STATUS_INVALID_ARGUMENT, "at baud 12345"},
        {"serial:/dev/ttyACM0?nod=1", SPRIG_STATUS_INVALID_ARGUMENT,
         "unknown query key 'nod'"}, /* typo: unknown key */
        {"serial:/dev/ttyACM0?node=", SPRIG_STATUS_INVALID_ARGUMENT, "node= needs a value"},
        {"serial:/dev/ttyACM0?node", SPRIG_STATUS_INVALID_ARGUMENT, "node= needs a value"},
        {"serial:/dev/ttyACM0?node=0", SPRIG_STATUS_INVALID_ARGUMENT, "bad node=0: want a node"},
        {"serial:/dev/ttyACM0?node=65535", SPRIG_STATUS_INVALID_ARGUMENT, "bad node=65535"},
        {"serial:/dev/ttyACM0?node=1x", SPRIG_STATUS_INVALID_ARGUMENT, "bad node=1x"},
        {"serial:/dev/ttyACM0?peer=0", SPRIG_STATUS_INVALID_ARGUMENT, "bad peer=0"},
        {"serial:/dev/ttyACM0?mtu=5000", SPRIG_STATUS_INVALID_ARGUMENT, "bad mtu=5000: want 64.."},
        {"serial:?node=1", SPRIG_STATUS_INVALID_ARGUMENT, "needs a device path"},
        {"serial:/dev/null", SPRIG_STATUS_PERMISSION_DENIED, "cannot be watched"},
        {"sprig+udp://127.0.0.1?node=1", SPRIG_STATUS_INVALID_ARGUMENT, "needs HOST:PORT"},
        {"sprig+udp://127.0.0.1:0?node=1", SPRIG_STATUS_INVALID_ARGUMENT,
         "port 0 only when listening"}, /* dial port 0 */
        {"sprig+udp://127.0.0.1:5?mtu=1500", SPRIG_STATUS_INVALID_ARGUMENT, "want 64..1472"},
        {"sprig+udp://127.0.0.1:0?listen&peers=0", SPRIG_STATUS_INVALID_ARGUMENT, "bad peers=0"},
        {"sprig+udp://127.0.0.1:0?listen=2", SPRIG_STATUS_INVALID_ARGUMENT, "bad listen=2"},
        {"sprig+udp://no-such-host.invalid:5", SPRIG_STATUS_NOT_FOUND,
         "host 'no-such-host.invalid' not found"},
        {"tcp://127.0.0.1:5", SPRIG_STATUS_UNIMPLEMENTED, "not a netstack URL"},
        {"not a url", SPRIG_STATUS_INVALID_ARGUMENT, "not a valid URL"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sprig_ns_os_endpoint *ep = (sprig_ns_os_endpoint *)&ol; /* overwritten with NULL */
        char why[200];
        sprig_ns_os_opts o = {.error = why, .error_cap = sizeof(why)};
        sprig_status st = sprig_ns_os_open(&ol, cases[i].url, &o, &ep);
        if (st != cases[i].st) {
            fail_msg("%s: %s, expected %s", cases[i].url, sprig_status_str(st),
                     sprig_status_str(cases[i].st));
        }
        if (strstr(why, cases[i].why) == NULL) {
            fail_msg("%s: reason '%s', expected '%s' in it", cases[i].url, why, cases[i].why);
        }
        assert_null(ep);
        /* no buffer: the same status, nothing written */
        assert_int_equal(sprig_ns_os_open(&ol, cases[i].url, NULL, &ep), cases[i].st);
    }
    sprig_url u;
    assert_int_equal(sprig_url_parse("serial:/dev/ttyACM0", &u), SPRIG_STATUS_OK);
    assert_true(sprig_ns_os_handles(&u));
    assert_int_equal(sprig_url_parse("sprig+udp://h:1", &u), SPRIG_STATUS_OK);
    assert_true(sprig_ns_os_handles(&u));
    assert_int_equal(sprig_url_parse("udp://h:1", &u), SPRIG_STATUS_OK);
    assert_false(sprig_ns_os_handles(&u));
    sprig_os_loop_deinit(&ol);
}

/* The URL set of host tools: OS URLs pass through, netstack URLs become sprig://NODE:PORT on
 * one endpoint, with the listen/dial defaults, port=, and reasons in words for refusals. */
static void test_os_url_set(void **state)
{
    (void)state;
    sprig_os_loop ol;
    assert_int_equal(sprig_os_loop_init(&ol), SPRIG_STATUS_OK);
    pings pa = {0};
    sprig_ns_os_opts oa = {.on_icmp = on_icmp, .icmp_arg = &pa};
    sprig_ns_os_set srv, cli;
    sprig_ns_os_set_init(&srv, &ol, NULL);
    sprig_ns_os_set_init(&cli, &ol, &oa);
    char out[SPRIG_NS_OS_URL_MAX];
    /* OS URLs: unchanged, no endpoint */
    assert_int_equal(sprig_ns_os_set_url(&srv, "tcp://127.0.0.1:5", true, 7, out, sizeof(out)),
                     SPRIG_STATUS_OK);
    assert_string_equal(out, "tcp://127.0.0.1:5");
    assert_int_equal(sprig_ns_os_set_url(&srv, "unix:/tmp/x?y", false, 7, out, sizeof(out)),
                     SPRIG_STATUS_OK);
    assert_string_equal(out, "unix:/tmp/x?y");
    assert_null(sprig_ns_os_set_endpoint(&srv));
    assert_int_equal(sprig_ns_os_set_url(&srv, "tcp://[::1", true, 7, out, sizeof(out)),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(sprig_ns_os_set_error(&srv), "not a valid URL"));
    assert_int_equal(sprig_ns_os_set_url(&srv, "tcp://h:1", true, 7, out, 5),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    /* refusals from the endpoint keep their reason */
    assert_int_equal(sprig_ns_os_set_url(&srv, "serial:/dev/x?baud=1200", true, 7, out, 64),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(sprig_ns_os_set_error(&srv), "baud=1200 is refused"));
    assert_int_equal(sprig_ns_os_set_url(&srv, "serial:/dev/x?port=0", true, 7, out, 64),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(sprig_ns_os_set_error(&srv), "bad port=0"));
    assert_int_equal(sprig_ns_os_set_url(&srv, "serial:/dev/x?port", true, 7, out, 64),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    assert_null(sprig_ns_os_set_endpoint(&srv));
    /* listening: node 2, listen=1 added, the tool's port */
    assert_int_equal(sprig_ns_os_set_url(&srv, "sprig+udp://127.0.0.1:0", true, 7, out, 64),
                     SPRIG_STATUS_OK);
    assert_string_equal(out, "sprig://2:7");
    assert_string_equal(sprig_ns_os_set_error(&srv), "");
    sprig_ns_os_endpoint *ep = sprig_ns_os_set_endpoint(&srv);
    assert_non_null(ep);
    assert_int_equal(ep->peer, 1);
    assert_non_null(ep->peers); /* listening: a peer table */
    /* the same link again (another port): the same endpoint; another link: refused */
    assert_int_equal(sprig_ns_os_set_url(&srv, "sprig+udp://127.0.0.1:0?port=9", true, 7, out, 64),
                     SPRIG_STATUS_OK);
    assert_string_equal(out, "sprig://2:9");
    assert_ptr_equal(sprig_ns_os_set_endpoint(&srv), ep);
    assert_int_equal(sprig_ns_os_set_url(&srv, "sprig+udp://127.0.0.1:1", true, 7, out, 64),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(sprig_ns_os_set_error(&srv), "only one netstack link"));
    /* dialing it: node 1 dials sprig://2:PORT; a ping goes through */
    sprig_addr local;
    assert_int_equal(sprig_ns_udp_local(&ep->udp, &local), SPRIG_STATUS_OK);
    char url[96];
    snprintf(url, sizeof(url), "sprig+udp://127.0.0.1:%u?port=12", (unsigned)local.port);
    assert_int_equal(sprig_ns_os_set_url(&cli, url, false, 7, out, 64), SPRIG_STATUS_OK);
    assert_string_equal(out, "sprig://2:12");
    sprig_ns_os_endpoint *ce = sprig_ns_os_set_endpoint(&cli);
    assert_int_equal(sprig_ns_node_id(&ce->node), 1);
    assert_true(ce->udp.has_peer);
    assert_int_equal(sprig_ns_node_ping(&ce->node, ce->peer, 1, 5, NULL, 0, 0), SPRIG_STATUS_OK);
    assert_int_equal(sprig_loop_run_until(&ol.loop, replied, &pa, SPRIG_TIME_S(2)),
                     SPRIG_STATUS_OK);
    assert_int_equal(pa.from, 2);
    assert_int_equal(sprig_ns_os_set_open_count(&cli), 0);
    sprig_ns_os_set_close(&cli, SPRIG_TIME_MS(100));
    sprig_ns_os_set_close(&cli, SPRIG_TIME_MS(100)); /* idempotent */
    sprig_ns_os_set_close(&srv, SPRIG_TIME_MS(100));
    assert_null(sprig_ns_os_set_endpoint(&srv));
    sprig_os_loop_deinit(&ol);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_os_url_udp),
        cmocka_unit_test(test_os_url_serial),
        cmocka_unit_test(test_os_url_refused),
        cmocka_unit_test(test_os_url_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
