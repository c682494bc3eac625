/*
 * main.c — generated RPC code against an installed sprig: a consumer.Greeter server and client
 * on one loop, joined by an in-memory socket pair. Calls SayHello (unary) and Countdown (server
 * streaming) with the generated blocking helpers and checks the answers. Exit status 0 when
 * both work; prints "greeter: OK" last.
 */
#include <stdio.h>
#include <string.h>

#include "greeter.sprig.h"
#include "sprig/mem.h"
#include "sprig/rpc.h"

enum { MAX_MSG = 256, NBUFS = 32, NSOCKS = 2 };
#define BUF_SIZE (MAX_MSG + SPRIG_CONFIG_SOCK_HEADROOM)
#define WAIT     SPRIG_TIME_S(5)

static sprig_fake_clock fc;
static sprig_loop loop;
static sprig_buf bufs[NBUFS];
static uint8_t mem[NBUFS * BUF_SIZE] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
static sprig_buf_pool pool;
static sprig_mem_sock socks[NSOCKS];
static sprig_mem_backend mb;
static sprig_rpc_server server;
static sprig_rpc_call calls[4];
static sprig_rpc_conn conns[1];
static uint8_t server_rx[MAX_MSG];
static sprig_rpc_client client;
static uint8_t client_rx[MAX_MSG];
static consumer_Greeter_service greeter;

/* Nothing to wait for but the fake clock: jump to the next deadline. */
static void idle(void *ctx, sprig_time deadline)
{
    (void)ctx;
    if (deadline != SPRIG_TIME_NEVER && deadline > fc.now) {
        sprig_fake_clock_set(&fc, deadline);
    }
}

static sprig_status say_hello(void *ctx, const consumer_HelloRequest *req,
                              consumer_HelloReply *resp)
{
    snprintf(resp->message, sizeof(resp->message), "%s, %s!", (const char *)ctx, req->name);
    return SPRIG_STATUS_OK;
}

static void countdown(sprig_rpc_call *call, const consumer_HelloRequest *req)
{
    for (int i = 3; i > 0; i--) {
        consumer_HelloReply r;
        snprintf(r.message, sizeof(r.message), "%d %s", i, req->name);
        if (consumer_Greeter_Countdown_send(call, &r) != SPRIG_STATUS_OK) {
            (void)consumer_Greeter_Countdown_finish(call, SPRIG_STATUS_INTERNAL);
            return;
        }
    }
    (void)consumer_Greeter_Countdown_finish(call, SPRIG_STATUS_OK);
}

static const consumer_Greeter_handlers handlers = {.SayHello = say_hello, .Countdown = countdown};

static int fail(const char *what, sprig_status st)
{
    fprintf(stderr, "consumer-rpc: %s: %s\n", what, sprig_status_str(st));
    return 1;
}

static int run(void)
{
    consumer_HelloRequest req = consumer_HelloRequest_init_zero;
    consumer_HelloReply reply = consumer_HelloReply_init_zero;
    strcpy(req.name, "consumer");
    sprig_status st = consumer_Greeter_SayHello_call(&client, &req, &reply, WAIT);
    if (st != SPRIG_STATUS_OK) {
        return fail("SayHello", st);
    }
    printf("greeter: SayHello -> \"%s\"\n", reply.message);
    if (strcmp(reply.message, "Hello, consumer!") != 0) {
        return fail("SayHello: unexpected reply", SPRIG_STATUS_DATA_LOSS);
    }
    static consumer_Greeter_Countdown_stream stream;
    st = consumer_Greeter_Countdown_open(&client, &stream, &req, WAIT);
    if (st != SPRIG_STATUS_OK) {
        return fail("Countdown", st);
    }
    sprig_status final = SPRIG_STATUS_UNKNOWN;
    int n = 0;
    while ((st = consumer_Greeter_Countdown_next(&stream, &reply, &final, WAIT)) ==
           SPRIG_STATUS_OK) {
        printf("greeter: Countdown -> \"%s\"\n", reply.message);
        n++;
    }
    if (st != SPRIG_STATUS_OUT_OF_RANGE || final != SPRIG_STATUS_OK || n != 3) {
        return fail("Countdown", st != SPRIG_STATUS_OUT_OF_RANGE ? st : final);
    }
    return 0;
}

int main(void)
{
    sprig_fake_clock_init(&fc, 0);
    sprig_loop_cfg lcfg = {.clock = fc.clock, .idle = idle};
    sprig_mem_cfg mcfg = {.max_message_size = MAX_MSG};
    sprig_rpc_server_cfg scfg = {.loop = &loop,
                                 .calls = calls,
                                 .max_calls = 4,
                                 .conns = conns,
                                 .max_conns = 1,
                                 .rx_buf = server_rx,
                                 .rx_cap = MAX_MSG};
    sprig_sock *a = NULL;
    sprig_sock *b = NULL;
    sprig_status st;
    if ((st = sprig_loop_init(&loop, &lcfg)) != SPRIG_STATUS_OK ||
        (st = sprig_buf_pool_init(&pool, bufs, mem, NBUFS, BUF_SIZE)) != SPRIG_STATUS_OK ||
        (st = sprig_mem_backend_init(&mb, &loop, &mcfg, socks, NSOCKS, &pool)) != SPRIG_STATUS_OK ||
        (st = sprig_rpc_server_init(&server, &scfg)) != SPRIG_STATUS_OK ||
        (st = consumer_Greeter_service_init(&greeter, &handlers, "Hello")) != SPRIG_STATUS_OK ||
        (st = sprig_rpc_server_register(&server, &greeter.base)) != SPRIG_STATUS_OK ||
        (st = sprig_mem_pair(&mb, SPRIG_SOCK_SEQPACKET, &a, &b)) != SPRIG_STATUS_OK ||
        (st = sprig_rpc_server_serve(&server, a, NULL)) != SPRIG_STATUS_OK) {
        return fail("setup", st);
    }
    sprig_rpc_client_cfg ccfg = {
        .loop = &loop, .sock = b, .channel_id = 1, .rx_buf = client_rx, .rx_cap = MAX_MSG};
    if ((st = sprig_rpc_client_init(&client, &ccfg)) != SPRIG_STATUS_OK) {
        return fail("client", st);
    }
    int rc = run();
    sprig_rpc_client_deinit(&client);
    sprig_rpc_server_deinit(&server);
    for (int i = 0; i < 4; i++) {
        sprig_loop_poll(&loop, fc.now);
    }
    if (sprig_mem_backend_in_use(&mb) != 0) {
        rc = fail("teardown: sockets left open", SPRIG_STATUS_INTERNAL);
    }
    sprig_mem_backend_deinit(&mb);
    sprig_loop_deinit(&loop);
    if (rc == 0) {
        printf("greeter: OK\n");
    }
    return rc;
}
