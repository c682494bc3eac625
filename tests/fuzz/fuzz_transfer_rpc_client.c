/*
 * fuzz_transfer_rpc_client — the pw.transfer.Transfer RPC carrier (client side) against a
 * hostile pw_rpc server.
 *
 * A sprig_rpc_client with the transfer RPC client (2 sessions per stream; local resource 1: 1000
 * readable bytes, 2 and 3: writable) on one end of an in-memory SEQPACKET pair with a small
 * window; the input scripts the other end. It starts with one read (into 2) and one write (from
 * 1), so both calls are open (ids 1 and 2). Records [op][len lo][len hi][len bytes]; m =
 * (op / 8) % 2 picks Read or Write, id = (op / 16) % 4 + 1 the call id:
 *   op % 8 == 0: the bytes go to the client as one raw message (an RPC packet, or garbage)
 *   op % 8 == 1: SERVER_STREAM on (m, id) with the bytes as payload (a chunk, or garbage)
 *   op % 8 == 2: RESPONSE on (m, id), status (op / 16) % 17
 *   op % 8 == 3: SERVER_ERROR on (m, id), status (op / 16) % 17
 *   op % 8 == 4: the clock jumps by (op / 8) * 50 ms
 *   op % 8 == 5: the client starts a read (m = 0, into 3) or a write (m = 1, from 1) of
 *                resource op / 16
 *   op % 8 == 6: the client cancels session (op / 16) of the read (m = 0) or write stream
 *   op % 8 == 7: the peer stops / resumes reading (the client's sends stall: on_ready paths)
 * Invariants: no crash or sanitizer report; after the teardown every socket, buffer, timer and
 * resource handle is back and no transfer is left.
 */
#include "fuzz.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sprig/mem.h"
#include "sprig/transfer_rpc.h"

enum { MAX_MSG = 304, NBUFS = 24, NSESS = 2, RES_LEN = 1000, RX_CAP = 200 };
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
    sprig_rpc_client rpc;
    uint8_t rpc_rx[MAX_MSG];
    sprig_transfer_rpc_client tc;
    sprig_transfer_session sess[2 * NSESS];
    uint8_t rx[2 * RX_CAP];
    sprig_buf_pool scratch;
    sprig_buf scratch_bufs[1];
    uint8_t scratch_mem[RX_CAP] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
    sprig_transfer_mem_handler h;
    sprig_transfer_mem_resource res[3];
    uint8_t store[3][RES_LEN];
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

static void done(sprig_transfer_node *node, uint32_t id, sprig_status status, void *user)
{
    (void)node;
    (void)id;
    (void)status;
    (void)user;
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
        .call_id = (op / 16u) % 4u + 1u,
        .status = (sprig_status)((op / 16u) % 17u),
        .payload = payload,
        .payload_len = len,
    };
    uint8_t out[MAX_MSG];
    size_t n = 0;
    if (sprig_rpc_packet_encode(&p, out, sizeof(out), &n) == SPRIG_STATUS_OK) {
        (void)sprig_sock_send(w->peer, out, n, NULL);
    }
}

static void start(world *w, bool write, uint32_t remote)
{
    sprig_transfer_opts o = {0};
    o.resource_id = remote;
    o.local = &w->h.handler;
    o.local_id = write ? 1u : 3u;
    o.done = done;
    uint32_t id = 0;
    (void)(write ? sprig_transfer_rpc_write(&w->tc, &o, &id)
                 : sprig_transfer_rpc_read(&w->tc, &o, &id));
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
    if (sprig_loop_init(&w->loop, &lc) != SPRIG_STATUS_OK ||
        sprig_buf_pool_init(&w->pool, w->bufs, w->mem, NBUFS, BUF_SIZE) != SPRIG_STATUS_OK ||
        sprig_mem_backend_init(&w->m, &w->loop, &mc, w->socks, 2, &w->pool) != SPRIG_STATUS_OK ||
        sprig_mem_pair(&w->m, SPRIG_SOCK_SEQPACKET, &a, &w->peer) != SPRIG_STATUS_OK ||
        sprig_buf_pool_init(&w->scratch, w->scratch_bufs, w->scratch_mem, 1, RX_CAP) !=
            SPRIG_STATUS_OK) {
        abort();
    }
    w->peer_reads = true;
    sprig_sock_set_callback(w->peer, drain, w);
    sprig_rpc_client_cfg rc = {
        .loop = &w->loop, .sock = a, .rx_buf = w->rpc_rx, .rx_cap = sizeof(w->rpc_rx)};
    if (sprig_rpc_client_init(&w->rpc, &rc) != SPRIG_STATUS_OK) {
        abort();
    }
    for (size_t i = 0; i < 3; i++) {
        w->res[i].id = (uint32_t)i + 1;
        w->res[i].data = w->store[i];
        w->res[i].cap = RES_LEN;
        w->res[i].len = i == 0 ? RES_LEN : 0;
        w->res[i].access = i == 0 ? SPRIG_TRANSFER_ACCESS_READ : SPRIG_TRANSFER_ACCESS_WRITE;
    }
    sprig_transfer_mem_handler_init(&w->h, w->res, 3);
    sprig_transfer_rpc_client_cfg cfg = {
        .rpc = &w->rpc,
        .sessions = w->sess,
        .sessions_per_stream = NSESS,
        .rx_bufs = w->rx,
        .rx_cap = RX_CAP,
        .tx_pool = &w->scratch,
    };
    cfg.engine.max_chunk = 60;
    if (sprig_transfer_rpc_client_init(&w->tc, &cfg) != SPRIG_STATUS_OK) {
        abort();
    }
    sprig_transfer_opts o = {0};
    o.resource_id = 7;
    o.local = &w->h.handler;
    o.local_id = 2;
    o.done = done;
    uint32_t id = 0;
    (void)sprig_transfer_rpc_read(&w->tc, &o, &id); /* Read call, id 1, session 1 */
    start(w, true, 8);                              /* Write call, id 2, session 0x40000001 */
    settle(w);

    size_t at = 0;
    while (size - at >= 3) {
        uint8_t op = data[at];
        size_t len = (size_t)data[at + 1] | ((size_t)data[at + 2] << 8);
        at += 3;
        if (len > size - at) {
            len = size - at;
        }
        bool m = (op / 8u) % 2u != 0;
        switch (op % 8u) {
        case 0:
            if (len <= MAX_MSG) {
                (void)sprig_sock_send(w->peer, data + at, len, NULL);
            }
            break;
        case 1:
            send_packet(w, SPRIG_RPC_PACKET_SERVER_STREAM, op, data + at, len);
            break;
        case 2:
            send_packet(w, SPRIG_RPC_PACKET_RESPONSE, op, NULL, 0);
            break;
        case 3:
            send_packet(w, SPRIG_RPC_PACKET_SERVER_ERROR, op, NULL, 0);
            break;
        case 4:
            sprig_fake_clock_advance(&w->fc, SPRIG_TIME_MS(50) * (op / 8u));
            break;
        case 5:
            start(w, m, op / 16u);
            break;
        case 6:
            (void)sprig_transfer_rpc_cancel(&w->tc, (m ? 0x40000000u : 0u) + op / 16u);
            break;
        default:
            w->peer_reads = !w->peer_reads;
            if (w->peer_reads) {
                drain(w->peer, SPRIG_SOCK_EV_READABLE, SPRIG_STATUS_OK, w);
            }
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
    sprig_transfer_rpc_client_deinit(&w->tc);
    if (sprig_transfer_rpc_active(&w->tc) != 0) {
        abort();
    }
    sprig_rpc_client_deinit(&w->rpc);
    sprig_sock_close(w->peer);
    settle(w);
    if (sprig_mem_backend_in_use(&w->m) != 0 || sprig_buf_pool_available(&w->pool) != NBUFS ||
        sprig_buf_pool_available(&w->scratch) != 1 || w->loop.timers != NULL) {
        abort();
    }
    for (size_t i = 0; i < 3; i++) {
        if (w->res[i].busy) {
            abort();
        }
    }
    sprig_mem_backend_deinit(&w->m);
    sprig_loop_deinit(&w->loop);
    free(w);
    return 0;
}
