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
#include "fuzz_world_rpc.h"

#include <stdbool.h>
#include <stdlib.h>

enum { MAX_MSG = 304, NSLOTS = 2, NSESS = 2, RX_CAP = FUZZ_WORLD_SCRATCH };

typedef struct world {
    fuzz_world fw; /* clock, loop, sockets, peer, resources */
    sprig_rpc_server srv;
    sprig_rpc_call calls[6];
    sprig_rpc_conn conns[1];
    uint8_t srv_rx[MAX_MSG];
    sprig_transfer_rpc_service svc;
    sprig_transfer_rpc_service_cfg svc_cfg;
    sprig_transfer_rpc_stream slots[NSLOTS];
    sprig_transfer_session sess[NSLOTS * NSESS];
    uint8_t rx[NSLOTS * RX_CAP];
    fuzz_scratch scratch;
} world;

static void send_packet(world *w, sprig_rpc_packet_type type, uint8_t op, const uint8_t *payload,
                        size_t len)
{
    fuzz_world_send_rpc(&w->fw, type, (op / 8u) % 2u != 0, (op / 16u) % 3u + 1u,
                        type == SPRIG_RPC_PACKET_CLIENT_ERROR ? SPRIG_STATUS_CANCELLED
                                                              : SPRIG_STATUS_OK,
                        payload, len);
}

static void svc_up(world *w)
{
    fuzz_world_check(sprig_transfer_rpc_service_init(&w->svc, &w->srv, &w->svc_cfg) ==
                     SPRIG_STATUS_OK);
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
    sprig_rpc_server_cfg sc = {
        .loop = &fw->loop,
        .calls = w->calls,
        .max_calls = 6,
        .conns = w->conns,
        .max_conns = 1,
        .rx_buf = w->srv_rx,
        .rx_cap = sizeof(w->srv_rx),
    };
    fuzz_world_check(sprig_rpc_server_init(&w->srv, &sc) == SPRIG_STATUS_OK);
    fuzz_scratch_init(&w->scratch);
    static const uint8_t access[2] = {SPRIG_TRANSFER_ACCESS_READ, SPRIG_TRANSFER_ACCESS_WRITE};
    fuzz_world_resources(fw, access, 2);
    sprig_transfer_rpc_service_cfg *cfg = &w->svc_cfg;
    cfg->loop = &fw->loop;
    cfg->slots = w->slots;
    cfg->max_calls = NSLOTS;
    cfg->sessions = w->sess;
    cfg->sessions_per_call = NSESS;
    cfg->rx_bufs = w->rx;
    cfg->rx_cap = RX_CAP;
    cfg->tx_pool = &w->scratch.pool;
    cfg->engine.handler = &fw->h.handler;
    cfg->engine.max_chunk = 60;
    svc_up(w);
    fuzz_world_check(sprig_rpc_server_serve(&w->srv, a, NULL) == SPRIG_STATUS_OK);
    fuzz_world_settle(fw);

    fuzz_script script = {.data = data, .size = size};
    uint8_t op;
    const uint8_t *bytes;
    size_t len;
    while (fuzz_script_next(&script, &op, &bytes, &len)) {
        switch (op % 8u) {
        case 0:
            fuzz_world_send_raw(fw, bytes, len);
            break;
        case 1:
            send_packet(w, SPRIG_RPC_PACKET_CLIENT_STREAM, op, bytes, len);
            break;
        case 2:
            send_packet(w, SPRIG_RPC_PACKET_REQUEST, op, bytes, len);
            break;
        case 3:
            send_packet(w, SPRIG_RPC_PACKET_CLIENT_REQUEST_COMPLETION, op, NULL, 0);
            break;
        case 4:
            send_packet(w, SPRIG_RPC_PACKET_CLIENT_ERROR, op, NULL, 0);
            break;
        case 5:
            sprig_fake_clock_advance(&fw->fc, SPRIG_TIME_MS(50) * (op / 8u));
            break;
        case 6:
            fuzz_world_peer_reads(fw, !fw->peer_reads);
            break;
        default:
            sprig_transfer_rpc_service_deinit(&w->svc);
            svc_up(w);
            break;
        }
        fuzz_world_settle(fw);
    }
    /* the peer reads again; every timer runs out; then tear down */
    fuzz_world_peer_reads(fw, true);
    fuzz_world_run_out(fw);
    sprig_transfer_rpc_service_deinit(&w->svc);
    fuzz_world_check(sprig_transfer_rpc_service_calls(&w->svc) == 0);
    sprig_rpc_server_deinit(&w->srv);
    sprig_sock_close(fw->peer);
    fuzz_world_settle(fw);
    fuzz_world_check(sprig_buf_pool_available(&w->scratch.pool) == 1 &&
                     sprig_rpc_server_open_calls(&w->srv) == 0);
    fuzz_world_deinit(fw);
    free(w);
    return 0;
}
