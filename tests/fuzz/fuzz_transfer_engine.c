/*
 * fuzz_transfer_engine — the transfer session state machine, driven by a hostile peer.
 *
 * A node on one end of an in-memory SEQPACKET pair serves two resources (1: 1000 readable bytes,
 * 2: 1000 writable bytes) and has opened two transfers of its own (a read and a write), so both
 * roles are exercised. The input is a script of records [op][len lo][len hi][len bytes]:
 *   op % 4 == 0: the bytes are sent to the node as one message (a chunk, or garbage)
 *   op % 4 == 1: the clock jumps by (op / 4) * 50 ms and the loop runs (timeouts, pacing)
 *   op % 4 == 2: the node cancels session id op / 4
 *   op % 4 == 3: the node starts another read of resource op / 4
 * Whatever the node sends back is read and dropped. Invariants: no crash or sanitizer report;
 * after deinit every socket, buffer, timer and resource handle is back.
 * An input starting with "DG" runs the same script over a DGRAM pair (loss recovery, congestion
 * window, late copies); one starting with "DB" gives the node a bound DGRAM socket that two
 * dialed peers talk to (op % 4 == 0: peer (op / 4) & 1 sends), keyed by address. On DGRAM a
 * chunk needs a valid integrity trailer, which random bytes never have: the harness seals the
 * message itself unless op & 8 is set (then the bytes go as they are, trailer or not, so the
 * check is fuzzed as well).
 */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "sprig/mem.h"
#include "sprig/transfer.h"

enum { MAX_MSG = 256, NBUFS = 24, NSESS = 3, RES_LEN = 1000 };
#define BUF_SIZE (MAX_MSG + SPRIG_CONFIG_SOCK_HEADROOM)

typedef struct world {
    sprig_fake_clock fc;
    sprig_loop loop;
    sprig_buf_pool pool;
    sprig_buf bufs[NBUFS];
    uint8_t mem[NBUFS * BUF_SIZE] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));
    sprig_mem_sock socks[3];
    sprig_mem_backend m;
    sprig_sock *peer;
    sprig_sock *peer2; /* "DB": the second peer of the bound socket */
    sprig_transfer_node node;
    sprig_transfer_session sess[NSESS];
    uint8_t rx[MAX_MSG];
    sprig_transfer_mem_handler h;
    sprig_transfer_mem_resource res[4];
    uint8_t store[4][RES_LEN];
} world;

static void drain(sprig_sock *s, sprig_sock_event ev, sprig_status st, void *user)
{
    (void)st;
    (void)user;
    if (ev == SPRIG_SOCK_EV_READABLE) {
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

static void progress(sprig_transfer_node *node, uint32_t id, uint64_t at, uint64_t total,
                     void *user)
{
    (void)node;
    (void)id;
    (void)at;
    (void)total;
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

static void start_read(world *w, uint32_t remote, uint32_t local, bool write)
{
    sprig_transfer_opts o = {0};
    o.resource_id = remote;
    o.local = &w->h.handler;
    o.local_id = local;
    o.done = done;
    o.progress = progress;
    uint32_t id = 0;
    (void)(write ? sprig_transfer_write(&w->node, &o, &id)
                 : sprig_transfer_read(&w->node, &o, &id));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    world *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return 0;
    }
    sprig_fake_clock_init(&w->fc, SPRIG_TIME_S(1));
    sprig_loop_cfg lc = {.clock = w->fc.clock};
    sprig_mem_cfg mc = {.max_message_size = MAX_MSG};
    sprig_sock *a = NULL;
    bool dgram = size >= 2 && data[0] == 'D' && data[1] == 'G';
    bool bound = size >= 2 && data[0] == 'D' && data[1] == 'B';
    if (sprig_loop_init(&w->loop, &lc) != SPRIG_STATUS_OK ||
        sprig_buf_pool_init(&w->pool, w->bufs, w->mem, NBUFS, BUF_SIZE) != SPRIG_STATUS_OK ||
        sprig_mem_backend_init(&w->m, &w->loop, &mc, w->socks, 3, &w->pool) != SPRIG_STATUS_OK) {
        abort();
    }
    if (bound) {
        if (sprig_sock_listen(&w->loop, "mem:fz", SPRIG_SOCK_DGRAM, &a) != SPRIG_STATUS_OK ||
            sprig_sock_dial(&w->loop, "mem:fz", SPRIG_SOCK_DGRAM, &w->peer) != SPRIG_STATUS_OK ||
            sprig_sock_dial(&w->loop, "mem:fz", SPRIG_SOCK_DGRAM, &w->peer2) != SPRIG_STATUS_OK) {
            abort();
        }
        sprig_sock_set_callback(w->peer2, drain, NULL);
    } else if (sprig_mem_pair(&w->m, dgram ? SPRIG_SOCK_DGRAM : SPRIG_SOCK_SEQPACKET, &a,
                              &w->peer) != SPRIG_STATUS_OK) {
        abort();
    }
    sprig_sock_set_callback(w->peer, drain, NULL);
    static const uint8_t access[4] = {SPRIG_TRANSFER_ACCESS_READ, SPRIG_TRANSFER_ACCESS_WRITE,
                                      SPRIG_TRANSFER_ACCESS_WRITE, SPRIG_TRANSFER_ACCESS_READ};
    for (size_t i = 0; i < 4; i++) {
        w->res[i].id = (uint32_t)i + 1;
        w->res[i].data = w->store[i];
        w->res[i].cap = RES_LEN;
        w->res[i].len = (i == 0 || i == 3) ? RES_LEN : 0;
        w->res[i].access = access[i];
    }
    sprig_transfer_mem_handler_init(&w->h, w->res, 4);
    sprig_transfer_cfg cfg = {0};
    cfg.loop = &w->loop;
    cfg.sock = a;
    cfg.sessions = w->sess;
    cfg.max_sessions = NSESS;
    cfg.rx_buf = w->rx;
    cfg.rx_cap = sizeof(w->rx);
    cfg.handler = &w->h.handler;
    cfg.on_done = done;
    cfg.on_progress = progress;
    cfg.max_chunk = 100;
    cfg.min_delay_us = 1000;
    if (sprig_transfer_init(&w->node, &cfg) != SPRIG_STATUS_OK) {
        abort();
    }
    start_read(w, 1, 3, false); /* session 1: read the peer's 1 into our 3 */
    start_read(w, 2, 4, true);  /* session 2: write our 4 to the peer's 2 */
    settle(w);

    size_t at = dgram || bound ? 2 : 0;
    while (size - at >= 3) {
        uint8_t op = data[at];
        size_t len = (size_t)data[at + 1] | ((size_t)data[at + 2] << 8);
        at += 3;
        if (len > size - at) {
            len = size - at;
        }
        switch (op % 4u) {
        case 0: {
            sprig_sock *to = bound && (op / 4u) & 1u ? w->peer2 : w->peer;
            if ((dgram || bound) && (op & 8u) == 0 && len + SPRIG_TRANSFER_TRAILER <= MAX_MSG) {
                uint8_t m[MAX_MSG]; /* sealed, so it reaches the decoder */
                memcpy(m, data + at, len);
                sprig_transfer_chunk_seal(m, len);
                (void)sprig_sock_send(to, m, len + SPRIG_TRANSFER_TRAILER, NULL);
            } else if (len <= MAX_MSG) {
                (void)sprig_sock_send(to, data + at, len, NULL);
            }
            break;
        }
        case 1:
            sprig_fake_clock_advance(&w->fc, SPRIG_TIME_MS(50) * (op / 4u));
            break;
        case 2:
            (void)sprig_transfer_cancel(&w->node, op / 4u);
            break;
        default:
            start_read(w, op / 4u, 3, false);
            break;
        }
        at += len;
        settle(w);
    }
    /* let every timer run out, then tear down */
    for (int i = 0; i < 200 && sprig_loop_next_deadline(&w->loop) != SPRIG_TIME_NEVER; i++) {
        sprig_fake_clock_set(&w->fc, sprig_loop_next_deadline(&w->loop));
        settle(w);
    }
    sprig_transfer_deinit(&w->node);
    sprig_sock_close(w->peer);
    sprig_sock_close(w->peer2);
    settle(w);
    if (sprig_transfer_active(&w->node) != 0 || sprig_mem_backend_in_use(&w->m) != 0 ||
        sprig_buf_pool_available(&w->pool) != NBUFS || w->loop.timers != NULL) {
        abort();
    }
    for (size_t i = 0; i < 4; i++) {
        if (w->res[i].busy) {
            abort();
        }
    }
    sprig_mem_backend_deinit(&w->m);
    sprig_loop_deinit(&w->loop);
    free(w);
    return 0;
}
