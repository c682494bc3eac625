/*
 * sprig_transfer_server (sprig/transfer_os.h) on the OS backend with one loop running both ends:
 * a client node reads and writes through a unix listener and through a bound UDP socket,
 * byte-exact; the server reports each connection opened, each transfer's end and the
 * connection's close (after the reaper frees it); bad arguments, a server not initialised and
 * one listener too many are refused and the socket closed. Every teardown checks that every
 * socket and timer came back. Waits are bounded by a generous real-time limit.
 */
#include "support.h"
#include "xfer_fixture.h"

#include <stdio.h>
#include <string.h>

#include "sprig/os.h"
#include "sprig/transfer_os.h"
#include "sprig/url.h"

enum { MAX_MSG = 2048, NRES = 2, RES_CAP = 20000, MAX_EV = 16 };
#define LOCAL 100u /* the client's resources are LOCAL + 1, LOCAL + 2 */

static struct {
    sprig_os_loop ol;
    sprig_os_backend ob;
    sprig_transfer_server xs;
    sprig_transfer_mem_handler sh, ch;
    sprig_transfer_mem_resource sres[NRES], cres[NRES];
    uint8_t sstore[NRES][RES_CAP], cstore[NRES][RES_CAP];
    sprig_transfer_server_info ev[MAX_EV];
    size_t nev;
    /* the client */
    sprig_transfer_node cn;
    bool cn_up;
    sprig_transfer_session csess[4];
    uint8_t crx[MAX_MSG];
    unsigned cdone;
    sprig_status cstatus;
} E;

static void on_event(const sprig_transfer_server_info *info, void *user)
{
    assert_ptr_equal(user, &E);
    assert_true(E.nev < MAX_EV);
    E.ev[E.nev++] = *info;
}

static void client_done(sprig_transfer_node *node, uint32_t id, sprig_status status, void *user)
{
    (void)node;
    (void)id;
    (void)user;
    E.cdone++;
    E.cstatus = status;
}

static size_t count(sprig_transfer_server_event ev)
{
    size_t n = 0;
    for (size_t i = 0; i < E.nev; i++) {
        n += E.ev[i].event == ev;
    }
    return n;
}

/* Run the loop until cond() holds; fails after 30 s. */
static void run_until(bool (*cond)(void))
{
    for (int i = 0; i < 3000 && !cond(); i++) {
        assert_int_equal(sprig_loop_run_once(&E.ol.loop, SPRIG_TIME_MS(10)), SPRIG_STATUS_OK);
    }
    assert_true(cond());
}

static bool client_finished(void)
{
    return E.cdone == 1;
}

static bool conn_closed(void)
{
    return count(SPRIG_TRANSFER_SERVER_CLOSED) == 1;
}

static sprig_transfer_server_cfg server_cfg(void)
{
    sprig_transfer_server_cfg c = {
        .loop = &E.ol.loop,
        .handler = &E.sh.handler,
        .max_sessions = 2,
        .window_chunks = 4,
        .dgram_max_chunk = 500,
        .on_event = on_event,
        .user = &E,
    };
    return c;
}

static int setup(void **state)
{
    (void)state;
    memset(&E, 0, sizeof(E));
    assert_int_equal(sprig_os_loop_init(&E.ol), SPRIG_STATUS_OK);
    sprig_os_backend_cfg bc = {.max_message_size = MAX_MSG};
    assert_int_equal(sprig_os_backend_init(&E.ob, &E.ol, &bc), SPRIG_STATUS_OK);
    xfer_mem_resources(E.sres, NRES, &E.sstore[0][0], RES_CAP, 1);
    xfer_mem_resources(E.cres, NRES, &E.cstore[0][0], RES_CAP, LOCAL + 1);
    sprig_transfer_mem_handler_init(&E.sh, E.sres, NRES);
    sprig_transfer_mem_handler_init(&E.ch, E.cres, NRES);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (E.cn_up) {
        sprig_transfer_deinit(&E.cn);
    }
    sprig_transfer_server_deinit(&E.xs);
    sprig_transfer_server_deinit(&E.xs); /* idempotent */
    for (int i = 0; i < 5; i++) {
        (void)sprig_loop_run_once(&E.ol.loop, 0);
    }
    assert_int_equal(sprig_os_backend_open_count(&E.ob), 0);
    assert_null(E.ol.loop.timers);
    xfer_mem_resources_idle(E.sres, NRES);
    xfer_mem_resources_idle(E.cres, NRES);
    sprig_os_backend_deinit(&E.ob);
    sprig_os_loop_deinit(&E.ol);
    return 0;
}

/* The client node on a socket dialed to url. */
static void client_dial(const char *url, sprig_sock_type type)
{
    sprig_sock *sock = NULL;
    assert_int_equal(sprig_sock_dial_wait(&E.ol.loop, url, type, SPRIG_TIME_S(10), &sock),
                     SPRIG_STATUS_OK);
    sprig_transfer_cfg c = xfer_node_cfg(&E.ol.loop, sock, E.csess, 4, E.crx, sizeof(E.crx));
    assert_int_equal(sprig_transfer_init(&E.cn, &c), SPRIG_STATUS_OK);
    E.cn_up = true;
}

/* Read server resource 1 (n bytes) into the client's LOCAL + 1, then write the client's
 * LOCAL + 2 (n bytes) to server resource 2; both byte-exact. */
static void read_then_write(size_t n)
{
    xfer_fill(E.sstore[0], n, 1);
    E.sres[0].len = n;
    sprig_transfer_opts o = {
        .resource_id = 1, .local = &E.ch.handler, .local_id = LOCAL + 1, .done = client_done};
    uint32_t id = 0;
    assert_int_equal(sprig_transfer_read(&E.cn, &o, &id), SPRIG_STATUS_OK);
    run_until(client_finished);
    assert_int_equal(E.cstatus, SPRIG_STATUS_OK);
    assert_int_equal(E.cres[0].len, n);
    assert_memory_equal(E.cstore[0], E.sstore[0], n);

    E.cdone = 0;
    xfer_fill(E.cstore[1], n, 2);
    E.cres[1].len = n;
    o.resource_id = 2;
    o.local_id = LOCAL + 2;
    assert_int_equal(sprig_transfer_write(&E.cn, &o, &id), SPRIG_STATUS_OK);
    run_until(client_finished);
    assert_int_equal(E.cstatus, SPRIG_STATUS_OK);
    assert_int_equal(E.sres[1].len, n);
    assert_memory_equal(E.sstore[1], E.cstore[1], n);
}

static bool two_done(void)
{
    return count(SPRIG_TRANSFER_SERVER_DONE) == 2;
}

static void test_server_unix(void **state)
{
    (void)state;
    sprig_transfer_server_cfg c = server_cfg();
    assert_int_equal(sprig_transfer_server_init(&E.xs, &c), SPRIG_STATUS_OK);
    char url[300];
    snprintf(url, sizeof(url), "unix:%s/xs.sock", sprig_test_tmpdir());
    sprig_sock *l = NULL;
    assert_int_equal(sprig_sock_listen(&E.ol.loop, url, SPRIG_SOCK_SEQPACKET, &l), SPRIG_STATUS_OK);
    assert_int_equal(sprig_transfer_server_add(&E.xs, l), SPRIG_STATUS_OK);
    client_dial(url, SPRIG_SOCK_SEQPACKET);
    read_then_write(15000);
    run_until(two_done); /* the server's done may come after the client's */
    assert_int_equal(E.ev[0].event, SPRIG_TRANSFER_SERVER_OPENED);
    assert_int_equal(E.ev[0].conn, 1);
    for (size_t i = 1; i < E.nev; i++) {
        assert_int_equal(E.ev[i].event, SPRIG_TRANSFER_SERVER_DONE);
        assert_int_equal(E.ev[i].conn, 1);
        assert_int_equal(E.ev[i].status, SPRIG_STATUS_OK);
    }
    assert_int_equal(E.xs.accepted, 1);
    assert_int_equal(E.xs.transfers, 2);

    /* the client hangs up: the reaper frees the connection and says so */
    sprig_transfer_deinit(&E.cn);
    E.cn_up = false;
    run_until(conn_closed);
    assert_int_equal(E.ev[E.nev - 1].event, SPRIG_TRANSFER_SERVER_CLOSED);
    assert_int_equal(E.ev[E.nev - 1].conn, 1);
    assert_null(E.xs.conns);
    assert_int_equal(count(SPRIG_TRANSFER_SERVER_ERROR), 0);
    assert_int_equal(count(SPRIG_TRANSFER_SERVER_LISTENER_CLOSED), 0);
}

static void test_server_udp(void **state)
{
    (void)state;
    sprig_transfer_server_cfg c = server_cfg();
    assert_int_equal(sprig_transfer_server_init(&E.xs, &c), SPRIG_STATUS_OK);
    sprig_sock *b = NULL;
    assert_int_equal(sprig_sock_listen(&E.ol.loop, "udp://127.0.0.1:0", SPRIG_SOCK_DGRAM, &b),
                     SPRIG_STATUS_OK);
    sprig_addr a;
    char addr[SPRIG_ADDR_STR_MAX];
    assert_int_equal(sprig_sock_local_addr(b, &a), SPRIG_STATUS_OK);
    assert_int_equal(sprig_addr_format(&a, addr, sizeof(addr)), SPRIG_STATUS_OK);
    assert_int_equal(sprig_transfer_server_add(&E.xs, b), SPRIG_STATUS_OK);
    /* the bound socket has its node at once */
    assert_int_equal(E.nev, 1);
    assert_int_equal(E.ev[0].event, SPRIG_TRANSFER_SERVER_OPENED);
    assert_int_equal(E.ev[0].conn, 1);
    char url[300];
    snprintf(url, sizeof(url), "udp://%s", addr);
    client_dial(url, SPRIG_SOCK_DGRAM);
    read_then_write(12000);
    run_until(two_done);
    assert_int_equal(E.xs.accepted, 1);
    assert_int_equal(count(SPRIG_TRANSFER_SERVER_ERROR), 0);
}

static void test_server_refusals(void **state)
{
    (void)state;
    sprig_transfer_server_cfg c = server_cfg();
    c.handler = NULL;
    assert_int_equal(sprig_transfer_server_init(&E.xs, &c), SPRIG_STATUS_INVALID_ARGUMENT);
    c = server_cfg();
    c.loop = NULL;
    assert_int_equal(sprig_transfer_server_init(&E.xs, &c), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_transfer_server_deinit(&E.xs); /* safe after a failed init */

    /* not initialised: refused, and the socket is closed all the same */
    sprig_sock *l = NULL;
    char url[300];
    snprintf(url, sizeof(url), "unix:%s/xs-r0.sock", sprig_test_tmpdir());
    assert_int_equal(sprig_sock_listen(&E.ol.loop, url, SPRIG_SOCK_SEQPACKET, &l), SPRIG_STATUS_OK);
    assert_int_equal(sprig_transfer_server_add(&E.xs, l), SPRIG_STATUS_FAILED_PRECONDITION);
    assert_int_equal(sprig_os_backend_open_count(&E.ob), 0);

    /* one listener too many */
    c = server_cfg();
    assert_int_equal(sprig_transfer_server_init(&E.xs, &c), SPRIG_STATUS_OK);
    assert_int_equal(E.xs.cfg.max_sessions, 2);
    for (int i = 0; i <= SPRIG_TRANSFER_SERVER_MAX_SOCKS; i++) {
        snprintf(url, sizeof(url), "unix:%s/xs-r%d.sock", sprig_test_tmpdir(), i + 1);
        assert_int_equal(sprig_sock_listen(&E.ol.loop, url, SPRIG_SOCK_SEQPACKET, &l),
                         SPRIG_STATUS_OK);
        assert_int_equal(sprig_transfer_server_add(&E.xs, l),
                         i < SPRIG_TRANSFER_SERVER_MAX_SOCKS ? SPRIG_STATUS_OK
                                                             : SPRIG_STATUS_RESOURCE_EXHAUSTED);
    }
    assert_int_equal(sprig_os_backend_open_count(&E.ob), SPRIG_TRANSFER_SERVER_MAX_SOCKS);
    sprig_transfer_server_deinit(&E.xs);
    assert_int_equal(sprig_os_backend_open_count(&E.ob), 0);
    assert_int_equal(E.nev, 0);

    /* defaults */
    c.max_sessions = 0;
    assert_int_equal(sprig_transfer_server_init(&E.xs, &c), SPRIG_STATUS_OK);
    assert_int_equal(E.xs.cfg.max_sessions, 8);
}

static void test_server_describe(void **state)
{
    (void)state;
    char line[64];
    sprig_transfer_server_info i = {SPRIG_TRANSFER_SERVER_OPENED, 3, 0, SPRIG_STATUS_OK, NULL};
    sprig_transfer_server_describe(&i, line, sizeof(line));
    assert_string_equal(line, "connection 3 opened");
    i.event = SPRIG_TRANSFER_SERVER_DONE;
    i.session_id = 0x40000001u;
    i.status = SPRIG_STATUS_DATA_LOSS;
    sprig_transfer_server_describe(&i, line, sizeof(line));
    assert_string_equal(line, "connection 3 session 1073741825: DATA_LOSS");
    i.event = SPRIG_TRANSFER_SERVER_CLOSED;
    sprig_transfer_server_describe(&i, line, sizeof(line));
    assert_string_equal(line, "connection 3 closed");
    i.event = SPRIG_TRANSFER_SERVER_ERROR;
    i.what = "accept";
    i.status = SPRIG_STATUS_RESOURCE_EXHAUSTED;
    sprig_transfer_server_describe(&i, line, sizeof(line));
    assert_string_equal(line, "accept: RESOURCE_EXHAUSTED");
    i.event = SPRIG_TRANSFER_SERVER_LISTENER_CLOSED;
    i.status = SPRIG_STATUS_ABORTED;
    sprig_transfer_server_describe(&i, line, sizeof(line));
    assert_string_equal(line, "listener closed: ABORTED");
    sprig_transfer_server_describe(&i, line, 9); /* cut, terminated */
    assert_string_equal(line, "listener");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_server_unix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_udp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_refusals, setup, teardown),
        cmocka_unit_test(test_server_describe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
