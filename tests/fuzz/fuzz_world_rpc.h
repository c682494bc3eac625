/*
 * fuzz_world_rpc.h — fuzz_world.h plus what the pw.transfer RPC carrier targets share: the peer
 * sends pw_rpc packets for the Transfer service, and a one-buffer scratch pool for the carrier's
 * sends. Header-only, like fuzz_world.h.
 */
#ifndef SPRIG_TESTS_FUZZ_WORLD_RPC_H
#define SPRIG_TESTS_FUZZ_WORLD_RPC_H

#include "fuzz_world.h"
#include "sprig/rpc.h"
#include "sprig/transfer_rpc.h"

enum { FUZZ_WORLD_SCRATCH = 200 }; /* bytes of the scratch buffer (the carriers' rx_cap) */

typedef struct fuzz_scratch {
    sprig_buf_pool pool;
    sprig_buf bufs[1];
    uint8_t mem[FUZZ_WORLD_SCRATCH] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
} fuzz_scratch;

static inline void fuzz_scratch_init(fuzz_scratch *s)
{
    fuzz_world_check(sprig_buf_pool_init(&s->pool, s->bufs, s->mem, 1, FUZZ_WORLD_SCRATCH) ==
                     SPRIG_STATUS_OK);
}

/* The peer sends a packet of the Transfer service's Read (write false) or Write method on
 * channel 1; a packet that does not encode is not sent. */
static inline void fuzz_world_send_rpc(fuzz_world *w, sprig_rpc_packet_type type, bool write,
                                       uint32_t call_id, sprig_status status,
                                       const uint8_t *payload, size_t len)
{
    sprig_rpc_packet p = {
        .type = type,
        .channel_id = 1,
        .service_id = SPRIG_TRANSFER_RPC_SERVICE_ID,
        .method_id = write ? SPRIG_TRANSFER_RPC_WRITE_ID : SPRIG_TRANSFER_RPC_READ_ID,
        .call_id = call_id,
        .status = status,
        .payload = payload,
        .payload_len = len,
    };
    uint8_t out[FUZZ_WORLD_MAX_MSG];
    size_t n = 0;
    if (sprig_rpc_packet_encode(&p, out, sizeof(out), &n) == SPRIG_STATUS_OK) {
        (void)sprig_sock_send(w->peer, out, n, NULL);
    }
}

#endif /* SPRIG_TESTS_FUZZ_WORLD_RPC_H */
