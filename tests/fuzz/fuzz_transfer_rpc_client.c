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
#include "fuzz_world_rpc.h"

#include <stdbool.h>
#include <stdlib.h>

enum { MAX_MSG = 304, NSESS = 2, RX_CAP = FUZZ_WORLD_SCRATCH };

typedef struct world {
    fuzz_world fw; /* clock, loop, sockets, peer, resources */
    sprig_rpc_client rpc;
    uint8_t rpc_rx[MAX_MSG];
    sprig_transfer_rpc_client tc;
    sprig_transfer_session sess[2 * NSESS];
    uint8_t rx[2 * RX_CAP];
    fuzz_scratch scratch;
} world;

static void done(sprig_transfer_node *node, uint32_t id, sprig_status status, void *user)
{
    (void)node;
    (void)id;
    (void)status;
    (void)user;
}

static void send_packet(world *w, sprig_rpc_packet_type type, uint8_t op, const uint8_t *payload,
                        size_t len)
{
    fuzz_world_send_rpc(&w->fw, type, (op / 8u) % 2u != 0, (op / 16u) % 4u + 1u,
                        (sprig_status)((op / 16u) % 17u), payload, len);
}

static void start(world *w, bool write, uint32_t remote)
{
    sprig_transfer_opts o = {0};
    o.resource_id = remote;
    o.local = &w->fw.h.handler;
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
    fuzz_world *fw = &w->fw;
    sprig_mem_cfg mc = {.max_message_size = MAX_MSG, .window_bytes = 2 * MAX_MSG};
    fuzz_world_init(fw, &mc);
    sprig_sock *a = NULL;
    fuzz_world_pair(fw, SPRIG_SOCK_SEQPACKET, &a);
    fuzz_scratch_init(&w->scratch);
    sprig_rpc_client_cfg rc = {
        .loop = &fw->loop, .sock = a, .rx_buf = w->rpc_rx, .rx_cap = sizeof(w->rpc_rx)};
    fuzz_world_check(sprig_rpc_client_init(&w->rpc, &rc) == SPRIG_STATUS_OK);
    static const uint8_t access[3] = {SPRIG_TRANSFER_ACCESS_READ, SPRIG_TRANSFER_ACCESS_WRITE,
                                      SPRIG_TRANSFER_ACCESS_WRITE};
    fuzz_world_resources(fw, access, 3);
    sprig_transfer_rpc_client_cfg cfg = {
        .rpc = &w->rpc,
        .sessions = w->sess,
        .sessions_per_stream = NSESS,
        .rx_bufs = w->rx,
        .rx_cap = RX_CAP,
        .tx_pool = &w->scratch.pool,
    };
    cfg.engine.max_chunk = 60;
    fuzz_world_check(sprig_transfer_rpc_client_init(&w->tc, &cfg) == SPRIG_STATUS_OK);
    sprig_transfer_opts o = {0};
    o.resource_id = 7;
    o.local = &fw->h.handler;
    o.local_id = 2;
    o.done = done;
    uint32_t id = 0;
    (void)sprig_transfer_rpc_read(&w->tc, &o, &id); /* Read call, id 1, session 1 */
    start(w, true, 8);                              /* Write call, id 2, session 0x40000001 */
    fuzz_world_settle(fw);

    fuzz_script script = {.data = data, .size = size};
    uint8_t op;
    const uint8_t *bytes;
    size_t len;
    while (fuzz_script_next(&script, &op, &bytes, &len)) {
        bool m = (op / 8u) % 2u != 0;
        switch (op % 8u) {
        case 0:
            fuzz_world_send_raw(fw, bytes, len);
            break;
        case 1:
            send_packet(w, SPRIG_RPC_PACKET_SERVER_STREAM, op, bytes, len);
            break;
        case 2:
            send_packet(w, SPRIG_RPC_PACKET_RESPONSE, op, NULL, 0);
            break;
        case 3:
            send_packet(w, SPRIG_RPC_PACKET_SERVER_ERROR, op, NULL, 0);
            break;
        case 4:
            sprig_fake_clock_advance(&fw->fc, SPRIG_TIME_MS(50) * (op / 8u));
            break;
        case 5:
            start(w, m, op / 16u);
            break;
        case 6:
            (void)sprig_transfer_rpc_cancel(&w->tc, (m ? 0x40000000u : 0u) + op / 16u);
            break;
        default:
            fuzz_world_peer_reads(fw, !fw->peer_reads);
            break;
        }
        fuzz_world_settle(fw);
    }
    /* the peer reads again; every timer runs out; then tear down */
    fuzz_world_peer_reads(fw, true);
    fuzz_world_run_out(fw);
    sprig_transfer_rpc_client_deinit(&w->tc);
    fuzz_world_check(sprig_transfer_rpc_active(&w->tc) == 0);
    sprig_rpc_client_deinit(&w->rpc);
    sprig_sock_close(fw->peer);
    fuzz_world_settle(fw);
    fuzz_world_check(sprig_buf_pool_available(&w->scratch.pool) == 1);
    fuzz_world_deinit(fw);
    free(w);
    return 0;
}
