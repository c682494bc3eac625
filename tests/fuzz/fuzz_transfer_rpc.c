/*
 * fuzz_transfer_rpc — the pw.transfer.Transfer RPC carrier (server side) driven by a hostile
 * pw_rpc client.
 *
 * A sprig_rpc_server with the transfer service (2 call slots, 2 sessions each; resource 1: 1000
 * readable bytes, 2: writable) serves one end of an in-memory SEQPACKET pair with a small window.
 * The input is a script of records [op][len lo][len hi][len bytes]; m = (op / 8) % 2 picks Read
 * or Write, id = (op / 16) % 3 + 1 the call id:
 *   op % 8 == 0: the bytes go to the server as one raw message (an RPC packet, or garbage)
 *   op % 8 == 1: CLIENT_STREAM on (m, id) with the bytes as payload (a chunk, or garbage)
 *   op % 8 == 2: REQUEST on (m, id) (the bytes as payload)
 *   op % 8 == 3: CLIENT_REQUEST_COMPLETION on (m, id)
 *   op % 8 == 4: CLIENT_ERROR CANCELLED on (m, id)
 *   op % 8 == 5: the clock jumps by (op / 8) * 50 ms
 *   op % 8 == 6: the peer stops / resumes reading (the server's sends stall: on_ready paths)
 *   op % 8 == 7: the service is deinitialised and registered again
 * Invariants: no crash or sanitizer report; after the teardown every socket, buffer, timer,
 * call, slot and resource handle is back.
 */
#include "fuzz.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sprig/mem.h"
#include "sprig/transfer_rpc.h"

enum { MAX_MSG = 304, NBUFS = 24, NSLOTS = 2, NSESS = 2, RES_LEN = 1000, RX_CAP = 200 };
#define BUF_SIZE (MAX_MSG + SPRIG_CONFIG_SOCK_HEADROOM)

typedef struct world {
    sprig_fake_clock fc;
    sprig_loop loop;
    sprig_buf_pool pool;
    sprig_buf bufs[NBUFS];
    uint8_t mem[NBUFS * BUF_SIZE] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
    sprig_mem_sock socks[2];
    sprig_mem_backend m;
    sprig_sock *peer;
    bool peer_reads;
    sprig_rpc_server srv;
    sprig_rpc_call calls[6];
    sprig_rpc_conn conns[1];
    uint8_t srv_rx[MAX_MSG];
    sprig_transfer_rpc_service svc;
    sprig_transfer_rpc_service_cfg svc_cfg;
    sprig_transfer_rpc_stream slots[NSLOTS];
    sprig_transfer_session sess[NSLOTS * NSESS];
    uint8_t rx[NSLOTS * RX_CAP];
    sprig_buf_pool scratch;
    sprig_buf scratch_bufs[1];
    uint8_t scratch_mem[RX_CAP] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
    sprig_transfer_mem_handler h;
    sprig_transfer_mem_resource res[2];
    uint8_t store[2][RES_LEN];
} world;

static void drain(sprig_sock *s, sprig_sock_event ev, sprig_status st, void *user)
{
    world *w = user;
    (void)st;
    if (ev == SPRIG_SOCK_EV_READABLE && w->peer_reads) {
        uint8_t buf[MAX_MSG];
        size_t n = 0;
        while (sprig_sock_recv(s, buf, sizeof(buf), &n) == SPRIG_STATUS_OK) {
        }
    }
}

static void settle(world *w)
{
    for (int i = 0; i < 1000; i++) {
        sprig_loop_poll(&w->loop, w->fc.now);
        if (w->loop.tasks_head == NULL) {
            return;
        }
    }
}

static void send_packet(world *w, sprig_rpc_packet_type type, uint8_t op, const uint8_t *payload,
                        size_t len)
{
    sprig_rpc_packet p = {
        .type = type,
        .channel_id = 1,
        .service_id = SPRIG_TRANSFER_RPC_SERVICE_ID,
        .method_id = (op / 8u) % 2u ? SPRIG_TRANSFER_RPC_WRITE_ID : SPRIG_TRANSFER_RPC_READ_ID,
        .call_id = (op / 16u) % 3u + 1u,
        .status = type == SPRIG_RPC_PACKET_CLIENT_ERROR ? SPRIG_STATUS_CANCELLED : SPRIG_STATUS_OK,
        .payload = payload,
        .payload_len = len,
    };
    uint8_t out[MAX_MSG];
    size_t n = 0;
    if (sprig_rpc_packet_encode(&p, out, sizeof(out), &n) == SPRIG_STATUS_OK) {
        (void)sprig_sock_send(w->peer, out, n, NULL);
    }
}

static void svc_up(world *w)
{
    if (sprig_transfer_rpc_service_init(&w->svc, &w->srv, &w->svc_cfg) != SPRIG_STATUS_OK) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    world *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return 0;
    }
    sprig_fake_clock_init(&w->fc, SPRIG_TIME_S(1));
    sprig_loop_cfg lc = {.clock = w->fc.clock};
    sprig_mem_cfg mc = {.max_message_size = MAX_MSG, .window_bytes = 2 * MAX_MSG};
    sprig_sock *a = NULL;
    sprig_rpc_server_cfg sc = {
        .loop = &w->loop,
        .calls = w->calls,
        .max_calls = 6,
        .conns = w->conns,
        .max_conns = 1,
        .rx_buf = w->srv_rx,
        .rx_cap = sizeof(w->srv_rx),
    };
    if (sprig_loop_init(&w->loop, &lc) != SPRIG_STATUS_OK ||
        sprig_buf_pool_init(&w->pool, w->bufs, w->mem, NBUFS, BUF_SIZE) != SPRIG_STATUS_OK ||
        sprig_mem_backend_init(&w->m, &w->loop, &mc, w->socks, 2, &w->pool) != SPRIG_STATUS_OK ||
        sprig_mem_pair(&w->m, SPRIG_SOCK_SEQPACKET, &a, &w->peer) != SPRIG_STATUS_OK ||
        sprig_rpc_server_init(&w->srv, &sc) != SPRIG_STATUS_OK ||
        sprig_buf_pool_init(&w->scratch, w->scratch_bufs, w->scratch_mem, 1, RX_CAP) !=
            SPRIG_STATUS_OK) {
        abort();
    }
    w->peer_reads = true;
    sprig_sock_set_callback(w->peer, drain, w);
    for (size_t i = 0; i < 2; i++) {
        w->res[i].id = (uint32_t)i + 1;
        w->res[i].data = w->store[i];
        w->res[i].cap = RES_LEN;
        w->res[i].len = i == 0 ? RES_LEN : 0;
        w->res[i].access = i == 0 ? SPRIG_TRANSFER_ACCESS_READ : SPRIG_TRANSFER_ACCESS_WRITE;
    }
    sprig_transfer_mem_handler_init(&w->h, w->res, 2);
    sprig_transfer_rpc_service_cfg *cfg = &w->svc_cfg;
    cfg->loop = &w->loop;
    cfg->slots = w->slots;
    cfg->max_calls = NSLOTS;
    cfg->sessions = w->sess;
    cfg->sessions_per_call = NSESS;
    cfg->rx_bufs = w->rx;
    cfg->rx_cap = RX_CAP;
    cfg->tx_pool = &w->scratch;
    cfg->engine.handler = &w->h.handler;
    cfg->engine.max_chunk = 60;
    svc_up(w);
    if (sprig_rpc_server_serve(&w->srv, a, NULL) != SPRIG_STATUS_OK) {
        abort();
    }
    settle(w);

    size_t at = 0;
    while (size - at >= 3) {
        uint8_t op = data[at];
        size_t len = (size_t)data[at + 1] | ((size_t)data[at + 2] << 8);
        at += 3;
        if (len > size - at) {
            len = size - at;
        }
        switch (op % 8u) {
        case 0:
            if (len <= MAX_MSG) {
                (void)sprig_sock_send(w->peer, data + at, len, NULL);
            }
            break;
        case 1:
            send_packet(w, SPRIG_RPC_PACKET_CLIENT_STREAM, op, data + at, len);
            break;
        case 2:
            send_packet(w, SPRIG_RPC_PACKET_REQUEST, op, data + at, len);
            break;
        case 3:
            send_packet(w, SPRIG_RPC_PACKET_CLIENT_REQUEST_COMPLETION, op, NULL, 0);
            break;
        case 4:
            send_packet(w, SPRIG_RPC_PACKET_CLIENT_ERROR, op, NULL, 0);
            break;
        case 5:
            sprig_fake_clock_advance(&w->fc, SPRIG_TIME_MS(50) * (op / 8u));
            break;
        case 6:
            w->peer_reads = !w->peer_reads;
            if (w->peer_reads) {
                drain(w->peer, SPRIG_SOCK_EV_READABLE, SPRIG_STATUS_OK, w);
            }
            break;
        default:
            sprig_transfer_rpc_service_deinit(&w->svc);
            svc_up(w);
            break;
        }
        at += len;
        settle(w);
    }
    /* the peer reads again; every timer runs out; then tear down */
    w->peer_reads = true;
    drain(w->peer, SPRIG_SOCK_EV_READABLE, SPRIG_STATUS_OK, w);
    for (int i = 0; i < 200 && sprig_loop_next_deadline(&w->loop) != SPRIG_TIME_NEVER; i++) {
        sprig_fake_clock_set(&w->fc, sprig_loop_next_deadline(&w->loop));
        settle(w);
    }
    sprig_transfer_rpc_service_deinit(&w->svc);
    if (sprig_transfer_rpc_service_calls(&w->svc) != 0) {
        abort();
    }
    sprig_rpc_server_deinit(&w->srv);
    sprig_sock_close(w->peer);
    settle(w);
    if (sprig_mem_backend_in_use(&w->m) != 0 || sprig_buf_pool_available(&w->pool) != NBUFS ||
        sprig_buf_pool_available(&w->scratch) != 1 || w->loop.timers != NULL ||
        sprig_rpc_server_open_calls(&w->srv) != 0) {
        abort();
    }
    for (size_t i = 0; i < 2; i++) {
        if (w->res[i].busy) {
            abort();
        }
    }
    sprig_mem_backend_deinit(&w->m);
    sprig_loop_deinit(&w->loop);
    free(w);
    return 0;
}
