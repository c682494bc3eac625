/*
 * The transfer engine over in-memory DGRAM sockets wrapped by the fault-injecting wrapper, with a
 * fake clock: reads and writes byte-exact at 0%, 5% and 20% loss with duplication and
 * reordering (several seeds and sizes), the slow-start window and its halving, a bound server
 * socket serving two peers whose session ids collide, a peer that is gone, a lost final
 * COMPLETION_ACK, a late copy of a START; corrupted datagrams caught by the integrity trailer
 * (at 5% and 20% with loss), and chunks with a missing or wrong trailer dropped and counted. Every
 * case checks contents, statuses and counts, and every teardown that sockets, buffers, timers and
 * sessions all came back.
 */
#include "xfer_fixture.h"

#include <string.h>

#include "sprig/fault.h"

enum { MAX_MSG = 256, NBUFS = 256, NFBUFS = 64, NSOCKS = 6, NSESS = 4, NRES = 4 };
enum { RES_CAP = 12000, MAX_IDS = 16, NNODES = 3 };
#define BUF_SIZE  (MAX_MSG + SPRIG_CONFIG_SOCK_HEADROOM + 64)
#define MAX_CHUNK (MAX_MSG - SPRIG_TRANSFER_DATA_OVERHEAD)

typedef struct result {
    unsigned ndone;
    sprig_status status;
} result;

/* A node with its own fault-wrapped socket, resources and results. */
typedef struct node {
    sprig_transfer_node n;
    bool up;
    sprig_fault_sock f;
    sprig_transfer_session sess[NSESS];
    uint8_t rx[MAX_MSG];
    sprig_transfer_mem_handler h;
    sprig_transfer_mem_resource res[NRES];
    uint8_t store[NRES][RES_CAP];
    result r[MAX_IDS];
    unsigned ndone; /* every done callback, any id */
} node;

typedef struct fixture {
    xfer_env e;      /* clock, loop, buffers (and the fault wrappers'), in-memory sockets */
    node nd[NNODES]; /* 0: the server; 1, 2: clients */
    sprig_sock *raw; /* a peer without a node (it never answers) */
    /* window trace of node 1's receiving session, sampled at each progress callback */
    uint8_t cwnd_max, cwnd_min_after_max, cwnd_first, cwnd_prev;
    unsigned ncwnd;
    unsigned shrinks;     /* samples smaller than the one before */
    unsigned bad_shrinks; /* ... to more than half (rounded up) */
    /* lose everything node 0 sends between its last data chunk and its done callback */
    bool drop_final_ack;
    /* once node 1 has received this much, both links lose everything (the peer is gone) */
    uint64_t cut_at;
} fixture;

static fixture F;

static node *node_of(sprig_transfer_node *tn)
{
    for (size_t i = 0; i < NNODES; i++) {
        if (&F.nd[i].n == tn) {
            return &F.nd[i];
        }
    }
    fail_msg("unknown node");
    return NULL;
}

static void on_done(sprig_transfer_node *tn, uint32_t id, sprig_status status, void *user)
{
    (void)user;
    node *nd = node_of(tn);
    assert_true(id < MAX_IDS);
    nd->r[id].ndone++;
    nd->r[id].status = status;
    nd->ndone++;
    if (nd == &F.nd[0] && F.drop_final_ack) {
        F.drop_final_ack = false;
        F.nd[0].f.cfg.drop_pm = 0; /* from here on the link is clean again */
    }
}

static const sprig_transfer_session *session_of(node *nd, uint32_t id)
{
    for (size_t i = 0; i < NSESS; i++) {
        if (nd->sess[i].in_use && nd->sess[i].id == id) {
            return &nd->sess[i];
        }
    }
    return NULL;
}

static void on_progress(sprig_transfer_node *tn, uint32_t id, uint64_t done, uint64_t total,
                        void *user)
{
    (void)user;
    node *nd = node_of(tn);
    const sprig_transfer_session *s = session_of(nd, id);
    assert_non_null(s);
    if (nd == &F.nd[1] && F.cut_at != 0 && done >= F.cut_at) {
        F.nd[0].f.cfg.drop_pm = 1000;
        F.nd[1].f.cfg.drop_pm = 1000;
    }
    if (nd == &F.nd[1] && !s->sender) {
        if (F.ncwnd++ == 0) {
            F.cwnd_first = s->cwnd;
        } else if (s->cwnd < F.cwnd_prev) {
            F.shrinks++;
            F.bad_shrinks += s->cwnd > (F.cwnd_prev + 1) / 2; /* half, rounded up */
        }
        F.cwnd_prev = s->cwnd;
        if (s->cwnd > F.cwnd_max) {
            F.cwnd_max = s->cwnd;
            F.cwnd_min_after_max = s->cwnd;
        } else if (s->cwnd < F.cwnd_min_after_max) {
            F.cwnd_min_after_max = s->cwnd;
        }
    }
    if (nd == &F.nd[0] && s->sender && total != SPRIG_TRANSFER_SIZE_UNKNOWN && done == total &&
        F.drop_final_ack) {
        F.nd[0].f.cfg.drop_pm = 1000; /* the last data went out: lose what follows */
    }
}

static void node_up(node *nd, sprig_sock *inner, const sprig_fault_cfg *fc, bool server,
                    sprig_time timeout)
{
    assert_int_equal(sprig_fault_init(&nd->f, inner, fc, &F.e.fpool), SPRIG_STATUS_OK);
    xfer_mem_resources(nd->res, NRES, nd->store[0], RES_CAP, 1);
    sprig_transfer_mem_handler_init(&nd->h, nd->res, NRES);
    sprig_transfer_cfg c = xfer_node_cfg(&F.e.loop, &nd->f.sock, nd->sess, NSESS, nd->rx, MAX_MSG);
    c.on_progress = on_progress;
    c.on_done = on_done;
    c.chunk_timeout = timeout;
    if (server) {
        c.handler = &nd->h.handler;
    }
    assert_int_equal(sprig_transfer_init(&nd->n, &c), SPRIG_STATUS_OK);
    nd->up = true;
}

static void fixture_init(size_t window_bytes)
{
    memset(&F, 0, sizeof(F));
    xfer_env_cfg ec = {.mem = {.max_message_size = MAX_MSG, .window_bytes = window_bytes},
                       .nbufs = NBUFS,
                       .buf_size = BUF_SIZE,
                       .nsocks = NSOCKS,
                       .drive_steps = 1000000,
                       .nfault_bufs = NFBUFS};
    xfer_env_init(&F.e, &ec);
}

/* A connected pair: node 0 serves, node 1 is the client; both directions misbehave alike. */
static void pair_up(const sprig_fault_cfg *fc, sprig_time timeout)
{
    sprig_sock *a;
    sprig_sock *b;
    xfer_env_pair(&F.e, SPRIG_SOCK_DGRAM, &a, &b);
    sprig_fault_cfg sc = *fc;
    sc.seed = fc->seed * 7919u + 1u; /* a different fault pattern on the way back */
    node_up(&F.nd[0], b, &sc, true, timeout);
    node_up(&F.nd[1], a, fc, false, timeout);
    xfer_settle(&F.e);
}

static void fixture_fini(void)
{
    xfer_drive(&F.e);
    for (size_t i = 0; i < NNODES; i++) {
        if (F.nd[i].up) {
            assert_int_equal(sprig_transfer_active(&F.nd[i].n), 0);
            sprig_transfer_deinit(&F.nd[i].n);
            xfer_mem_resources_idle(F.nd[i].res, NRES);
        }
    }
    if (F.raw != NULL) {
        sprig_sock_close(F.raw);
    }
    xfer_settle(&F.e);
    xfer_env_deinit(&F.e);
}

static uint32_t start(node *nd, bool write, uint32_t remote, uint32_t local)
{
    sprig_transfer_opts o = {0};
    o.resource_id = remote;
    o.local = &nd->h.handler;
    o.local_id = local;
    o.progress = on_progress;
    o.done = on_done;
    uint32_t id = 0;
    sprig_status st =
        write ? sprig_transfer_write(&nd->n, &o, &id) : sprig_transfer_read(&nd->n, &o, &id);
    assert_int_equal(st, SPRIG_STATUS_OK);
    assert_true(id != 0 && id < MAX_IDS);
    return id;
}

/* Put `n` bytes in resource `rid` of `from`, empty that of `to`. */
static void prepare(node *from, node *to, uint32_t rid, size_t n, uint32_t seed)
{
    xfer_fill(from->store[rid - 1], n, seed);
    from->res[rid - 1].len = n;
    memset(to->store[rid - 1], 0xEE, RES_CAP);
    to->res[rid - 1].len = 0;
}

static void expect_copied(node *from, node *to, uint32_t rid, size_t n)
{
    assert_int_equal(to->res[rid - 1].len, n);
    assert_memory_equal(to->store[rid - 1], from->store[rid - 1], n);
}

static void expect_done(node *nd, uint32_t id, sprig_status st)
{
    assert_int_equal(nd->r[id].ndone, 1);
    assert_int_equal(nd->r[id].status, st);
}

/* ---- loss, duplication, reordering ------------------------------------------------------------
 */

static const size_t sizes[] = {0, 1, 3 * MAX_CHUNK + 7, RES_CAP - 13};

typedef struct run_stats {
    uint32_t dropped, duplicated, reordered, retransmits;
    uint32_t corrupted; /* bits flipped by the fault wrappers */
    uint32_t caught;    /* chunks the nodes dropped for a bad trailer (stats.corrupt) */
} run_stats;

/* One transfer of `n` bytes (a read or a write by node 1) through links that drop drop_pm,
 * duplicate and reorder 50 per mille; byte-exact with one OK done callback on each side. */
static void transfer_with(bool write, const sprig_fault_cfg *fcfg, size_t n, run_stats *rs)
{
    fixture_init(64 * MAX_MSG);
    sprig_fault_cfg fc = *fcfg;
    uint32_t seed = fc.seed;
    pair_up(&fc, 0);
    node *srv = &F.nd[0];
    node *cli = &F.nd[1];
    uint32_t id;
    if (write) {
        prepare(cli, srv, 1, n, seed + (uint32_t)n);
        id = start(cli, true, 1, 1);
    } else {
        prepare(srv, cli, 1, n, seed + (uint32_t)n);
        id = start(cli, false, 1, 1);
    }
    xfer_drive(&F.e);
    expect_done(cli, id, SPRIG_STATUS_OK);
    expect_done(srv, id, SPRIG_STATUS_OK);
    assert_int_equal(cli->ndone, 1);
    assert_int_equal(srv->ndone, 1);
    if (write) {
        expect_copied(cli, srv, 1, n);
    } else {
        expect_copied(srv, cli, 1, n);
    }
    for (size_t i = 0; i < 2; i++) {
        rs->dropped += F.nd[i].f.stats.dropped;
        rs->duplicated += F.nd[i].f.stats.duplicated;
        rs->reordered += F.nd[i].f.stats.reordered;
        rs->retransmits += F.nd[i].n.stats.retransmits;
        rs->corrupted += F.nd[i].f.stats.corrupted;
        rs->caught += F.nd[i].n.stats.corrupt;
    }
    fixture_fini();
}

static void one_transfer(bool write, uint16_t drop_pm, uint32_t seed, size_t n, run_stats *rs)
{
    sprig_fault_cfg fc = {.seed = seed, .drop_pm = drop_pm, .dup_pm = 50, .reorder_pm = 50};
    transfer_with(write, &fc, n, rs);
}

static void loss_run(uint16_t drop_pm)
{
    run_stats rs = {0};
    for (uint32_t seed = 1; seed <= 4; seed++) {
        for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
            one_transfer(false, drop_pm, seed, sizes[k], &rs);
            one_transfer(true, drop_pm, seed * 31u, sizes[k], &rs);
        }
    }
    /* the faults really happened (the counts depend on the seeds, not on the engine) */
    assert_true(rs.duplicated > 0);
    assert_true(rs.reordered > 0);
    if (drop_pm == 0) {
        assert_int_equal(rs.dropped, 0);
    } else {
        assert_true(rs.dropped > 0);
        assert_true(rs.retransmits > 0);
    }
}

static void test_dgram_no_loss(void **state)
{
    (void)state;
    loss_run(0);
}

static void test_dgram_loss_5(void **state)
{
    (void)state;
    loss_run(50);
}

static void test_dgram_loss_20(void **state)
{
    (void)state;
    loss_run(200);
}

/* A third of the datagrams duplicated, a third reordered, 5% lost: old chunks arrive all the
 * time; they never corrupt data or end a session. */
static void test_dgram_heavy_duplication(void **state)
{
    (void)state;
    run_stats rs = {0};
    for (uint32_t seed = 1; seed <= 4; seed++) {
        sprig_fault_cfg fc = {.seed = seed, .drop_pm = 50, .dup_pm = 330, .reorder_pm = 330};
        transfer_with(false, &fc, RES_CAP - 5, &rs);
        transfer_with(true, &fc, RES_CAP - 5, &rs);
        transfer_with(seed & 1u, &fc, 2 * MAX_CHUNK + 1, &rs);
    }
    print_message("heavy duplication: %u duplicated, %u reordered, %u dropped\n", rs.duplicated,
                  rs.reordered, rs.dropped);
    assert_true(rs.duplicated > 200);
    assert_true(rs.reordered > 200);
}

/* ---- corruption -------------------------------------------------------------------------------
 */

/* 5% of the datagrams lose a bit, 5% are lost, 5% reordered: every damaged chunk is caught by
 * its trailer and repaired as a loss, so every transfer ends OK and byte-exact (without the
 * check a flipped data bit is written and the transfer ends in DATA_LOSS). Without duplication
 * every corrupted datagram is counted exactly once by its receiver. */
static void test_dgram_corruption(void **state)
{
    (void)state;
    run_stats rs = {0};
    for (uint32_t seed = 1; seed <= 4; seed++) {
        for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
            sprig_fault_cfg fc = {.seed = seed, .drop_pm = 50, .reorder_pm = 50, .corrupt_pm = 50};
            transfer_with(false, &fc, sizes[k], &rs);
            fc.seed = seed * 31u;
            transfer_with(true, &fc, sizes[k], &rs);
        }
    }
    print_message("corruption: %u corrupted, %u caught, %u dropped, %u retransmits\n", rs.corrupted,
                  rs.caught, rs.dropped, rs.retransmits);
    assert_true(rs.corrupted > 20);
    assert_int_equal(rs.caught, rs.corrupted);
    assert_true(rs.retransmits > 0);
}

/* Heavier: 20% corrupted, 5% lost, 5% duplicated (a corrupted datagram may arrive twice). */
static void test_dgram_heavy_corruption(void **state)
{
    (void)state;
    run_stats rs = {0};
    for (uint32_t seed = 1; seed <= 4; seed++) {
        sprig_fault_cfg fc = {
            .seed = seed, .drop_pm = 50, .dup_pm = 50, .reorder_pm = 50, .corrupt_pm = 200};
        transfer_with(seed & 1u, &fc, RES_CAP - 3, &rs);
    }
    assert_true(rs.corrupted > 50);
    assert_true(rs.caught >= rs.corrupted);
}

/* A fixture whose node `nd` (the server or a client) talks to the raw peer over a clean link. */
static void raw_peer_up(node *nd, bool server)
{
    fixture_init(0);
    sprig_sock *a;
    xfer_env_pair(&F.e, SPRIG_SOCK_DGRAM, &a, &F.raw);
    sprig_fault_cfg fc = {.seed = 1};
    node_up(nd, a, &fc, server, 0);
    xfer_settle(&F.e);
}

/* A START (unsealed) for session 5 on resource 1 in `direction`; returns its length. */
static size_t encode_start(uint32_t direction, uint8_t *out, size_t cap)
{
    sprig_transfer_chunk c = xfer_start_chunk(5, 1, 2, direction);
    size_t n = 0;
    assert_int_equal(sprig_transfer_chunk_encode(&c, out, cap, &n), SPRIG_STATUS_OK);
    return n;
}

/* Send `len` bytes from the raw peer, sealed with the trailer unless `seal` is false. */
static void raw_send(const uint8_t *msg, size_t len, bool seal)
{
    uint8_t m[MAX_MSG];
    assert_true(len + SPRIG_TRANSFER_TRAILER <= sizeof(m));
    memcpy(m, msg, len);
    if (seal) {
        sprig_transfer_chunk_seal(m, len);
        len += SPRIG_TRANSFER_TRAILER;
    }
    assert_int_equal(sprig_sock_send(F.raw, m, len, NULL), SPRIG_STATUS_OK);
    xfer_settle(&F.e);
}

/* Chunks whose trailer is missing, short or wrong are dropped before decoding and counted; the
 * same START sealed opens the session, and what the node answers is sealed too. */
static void test_dgram_bad_trailer_dropped(void **state)
{
    (void)state;
    raw_peer_up(&F.nd[0], true);
    node *srv = &F.nd[0];
    prepare(srv, &F.nd[1], 1, 10, 1);
    uint8_t start_msg[MAX_MSG];
    size_t n = encode_start(SPRIG_TRANSFER_DIR_READ, start_msg, sizeof(start_msg));
    uint8_t m[MAX_MSG];
    memcpy(m, start_msg, n);
    sprig_transfer_chunk_seal(m, n);
    size_t sealed = n + SPRIG_TRANSFER_TRAILER;

    raw_send(start_msg, n, false); /* no trailer: a valid chunk, but not on DGRAM */
    raw_send(m, 3, false);         /* shorter than a trailer */
    raw_send(m, 0, false);         /* empty */
    for (size_t bit = 0; bit < sealed * 8; bit += 5) {
        uint8_t bad[MAX_MSG];
        memcpy(bad, m, sealed);
        bad[bit / 8] ^= (uint8_t)(1u << (bit % 8)); /* one bit anywhere: body, tag or CRC */
        raw_send(bad, sealed, false);
    }
    uint32_t expect = 3 + (uint32_t)((sealed * 8 + 4) / 5);
    assert_int_equal(srv->n.stats.corrupt, expect);
    assert_int_equal(srv->n.stats.chunks_in, expect);
    assert_int_equal(srv->n.stats.dropped, 0); /* none was even decoded */
    assert_int_equal(sprig_transfer_active(&srv->n), 0);
    uint8_t out[MAX_MSG];
    assert_int_equal(sprig_sock_recv(F.raw, out, sizeof(out), &n), SPRIG_STATUS_UNAVAILABLE);

    raw_send(m, sealed - SPRIG_TRANSFER_TRAILER, true); /* the same START, sealed */
    assert_int_equal(sprig_transfer_active(&srv->n), 1);
    assert_int_equal(srv->n.stats.corrupt, expect);
    assert_int_equal(sprig_sock_recv(F.raw, out, sizeof(out), &n), SPRIG_STATUS_OK);
    size_t len = n;
    assert_int_equal(sprig_transfer_chunk_unseal(out, &len), SPRIG_STATUS_OK);
    assert_int_equal(len, n - SPRIG_TRANSFER_TRAILER);
    sprig_transfer_chunk g;
    assert_int_equal(sprig_transfer_chunk_decode(out, len, &g), SPRIG_STATUS_OK);
    assert_int_equal(g.type, SPRIG_TRANSFER_CHUNK_START_ACK);
    assert_int_equal(g.session_id, 5);
    xfer_drive(&F.e); /* nobody confirms: it times out */
    expect_done(srv, 5, SPRIG_STATUS_DEADLINE_EXCEEDED);
    fixture_fini();
}

/* ---- the window -------------------------------------------------------------------------------
 */

/* A clean link: the window starts at 1 chunk, doubles up to window_chunks (4), then grows by
 * one chunk per window; nothing is re-sent and it never shrinks. */
static void test_dgram_slow_start(void **state)
{
    (void)state;
    fixture_init(64 * MAX_MSG);
    sprig_fault_cfg fc = {.seed = 1};
    pair_up(&fc, 0);
    prepare(&F.nd[0], &F.nd[1], 1, RES_CAP, 5);
    uint32_t id = start(&F.nd[1], false, 1, 1);
    xfer_drive(&F.e);
    expect_done(&F.nd[1], id, SPRIG_STATUS_OK);
    expect_copied(&F.nd[0], &F.nd[1], 1, RES_CAP);
    assert_int_equal(F.cwnd_first, 1);
    /* RES_CAP is 58 chunks; windows of 1, 2, 4, 5, 6, 7, 8, 9, 10 chunks end after chunk 52,
     * so chunks 53.. are received with a window of 11 */
    assert_int_equal(F.cwnd_max, 11);
    assert_int_equal(F.cwnd_min_after_max, 11);
    assert_int_equal(F.shrinks, 0);
    assert_int_equal(F.nd[0].n.stats.retransmits + F.nd[1].n.stats.retransmits, 0);
    fixture_fini();
}

/* With loss the window is halved after it has grown. */
static void test_dgram_loss_halves_window(void **state)
{
    (void)state;
    fixture_init(64 * MAX_MSG);
    sprig_fault_cfg fc = {.seed = 3, .drop_pm = 100};
    pair_up(&fc, 0);
    prepare(&F.nd[0], &F.nd[1], 1, RES_CAP, 6);
    uint32_t id = start(&F.nd[1], false, 1, 1);
    xfer_drive(&F.e);
    expect_done(&F.nd[1], id, SPRIG_STATUS_OK);
    expect_copied(&F.nd[0], &F.nd[1], 1, RES_CAP);
    assert_true(F.cwnd_max >= 4);
    assert_true(F.shrinks > 0);
    assert_int_equal(F.bad_shrinks, 0);
    assert_true(F.nd[0].f.stats.dropped > 0);
    fixture_fini();
}

/* A full mem window drops datagrams as a network would: congestion, not configured loss. The
 * window adapts and the transfer still completes byte-exact. */
static void test_dgram_congestion_drops(void **state)
{
    (void)state;
    fixture_init(3 * MAX_MSG); /* at most 3 datagrams queued per direction */
    sprig_fault_cfg fc = {.seed = 9};
    pair_up(&fc, 0);
    prepare(&F.nd[1], &F.nd[0], 2, RES_CAP, 8);
    uint32_t id = start(&F.nd[1], true, 2, 2);
    xfer_drive(&F.e);
    expect_done(&F.nd[1], id, SPRIG_STATUS_OK);
    expect_done(&F.nd[0], id, SPRIG_STATUS_OK);
    expect_copied(&F.nd[1], &F.nd[0], 2, RES_CAP);
    assert_true(F.e.socks[1].dropped + F.e.socks[0].dropped > 0); /* the window did overflow */
    fixture_fini();
}

/* ---- a bound server -----------------------------------------------------------------------------
 */

/* One bound socket serves two dialed peers at once; both peers use session ids 1 and 2, so only
 * the address tells the sessions apart. */
static void test_dgram_bound_server_two_peers(void **state)
{
    (void)state;
    fixture_init(64 * MAX_MSG);
    sprig_fault_cfg fc = {.seed = 11, .drop_pm = 50, .dup_pm = 50, .reorder_pm = 50};
    sprig_sock *l = NULL;
    sprig_sock *a = NULL;
    sprig_sock *b = NULL;
    assert_int_equal(sprig_sock_listen(&F.e.loop, "mem:srv", SPRIG_SOCK_DGRAM, &l),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_dial(&F.e.loop, "mem:srv", SPRIG_SOCK_DGRAM, &a), SPRIG_STATUS_OK);
    assert_int_equal(sprig_sock_dial(&F.e.loop, "mem:srv", SPRIG_SOCK_DGRAM, &b), SPRIG_STATUS_OK);
    node_up(&F.nd[0], l, &fc, true, 0);
    fc.seed = 12;
    node_up(&F.nd[1], a, &fc, false, 0);
    fc.seed = 13;
    node_up(&F.nd[2], b, &fc, false, 0);
    xfer_settle(&F.e);
    node *srv = &F.nd[0];
    /* a bound socket has no peer to start a transfer with */
    sprig_transfer_opts o = {.local = &srv->h.handler, .local_id = 1, .done = on_done};
    uint32_t none = 0;
    assert_int_equal(sprig_transfer_read(&srv->n, &o, &none), SPRIG_STATUS_UNIMPLEMENTED);

    prepare(srv, &F.nd[1], 1, RES_CAP, 21);       /* node 1 reads 1 */
    prepare(&F.nd[2], srv, 2, RES_CAP - 99, 22);  /* node 2 writes 2 */
    prepare(&F.nd[1], srv, 3, 5 * MAX_CHUNK, 23); /* node 1 writes 3 */
    prepare(srv, &F.nd[2], 4, 777, 24);           /* node 2 reads 4 */
    uint32_t a1 = start(&F.nd[1], false, 1, 1);
    uint32_t b1 = start(&F.nd[2], true, 2, 2);
    uint32_t a2 = start(&F.nd[1], true, 3, 3);
    uint32_t b2 = start(&F.nd[2], false, 4, 4);
    assert_int_equal(a1, b1); /* the ids collide on purpose */
    assert_int_equal(a2, b2);
    xfer_drive(&F.e);
    expect_done(&F.nd[1], a1, SPRIG_STATUS_OK);
    expect_done(&F.nd[1], a2, SPRIG_STATUS_OK);
    expect_done(&F.nd[2], b1, SPRIG_STATUS_OK);
    expect_done(&F.nd[2], b2, SPRIG_STATUS_OK);
    assert_int_equal(srv->r[a1].ndone, 2);
    assert_int_equal(srv->r[a1].status, SPRIG_STATUS_OK);
    assert_int_equal(srv->r[a2].ndone, 2);
    assert_int_equal(srv->r[a2].status, SPRIG_STATUS_OK);
    assert_int_equal(srv->ndone, 4);
    expect_copied(srv, &F.nd[1], 1, RES_CAP);
    expect_copied(&F.nd[2], srv, 2, RES_CAP - 99);
    expect_copied(&F.nd[1], srv, 3, 5 * MAX_CHUNK);
    expect_copied(srv, &F.nd[2], 4, 777);
    assert_true(srv->f.stats.dropped + F.nd[1].f.stats.dropped + F.nd[2].f.stats.dropped > 0);
    fixture_fini();
}

/* ---- the peer is gone ---------------------------------------------------------------------------
 */

static void peer_gone(bool write)
{
    raw_peer_up(&F.nd[1], false); /* the DGRAM defaults: 500 ms, 8 retries */
    prepare(&F.nd[1], &F.nd[0], 1, 100, 1);
    sprig_time t0 = F.e.fc.now;
    uint32_t id = start(&F.nd[1], write, 1, 1);
    xfer_drive(&F.e);
    expect_done(&F.nd[1], id, SPRIG_STATUS_DEADLINE_EXCEEDED);
    assert_int_equal(F.nd[1].n.stats.retransmits, 8);
    assert_true(F.e.fc.now - t0 == SPRIG_TIME_MS(500) * 9);
    /* START, 8 re-sent STARTs, and the COMPLETION that tells the peer */
    assert_int_equal(F.nd[1].f.stats.sent, 10);
    size_t n = 0;
    uint8_t buf[MAX_MSG];
    unsigned starts = 0;
    while (sprig_sock_recv(F.raw, buf, sizeof(buf), &n) == SPRIG_STATUS_OK) {
        sprig_transfer_chunk c;
        assert_int_equal(sprig_transfer_chunk_unseal(buf, &n), SPRIG_STATUS_OK);
        assert_int_equal(sprig_transfer_chunk_decode(buf, n, &c), SPRIG_STATUS_OK);
        starts += c.type == SPRIG_TRANSFER_CHUNK_START;
    }
    assert_int_equal(starts, 9);
    fixture_fini();
}

static void test_dgram_peer_gone_read(void **state)
{
    (void)state;
    peer_gone(false);
}

static void test_dgram_peer_gone_write(void **state)
{
    (void)state;
    peer_gone(true);
}

/* The link dies in the middle of the data: both ends give up after their retries (100 ms, 8
 * retries) and the receiver claims nothing written. */
static void test_dgram_peer_gone_mid_transfer(void **state)
{
    (void)state;
    fixture_init(64 * MAX_MSG);
    sprig_fault_cfg fc = {.seed = 2};
    pair_up(&fc, SPRIG_TIME_MS(100));
    prepare(&F.nd[0], &F.nd[1], 1, RES_CAP, 3);
    F.cut_at = RES_CAP / 2;
    sprig_time t0 = F.e.fc.now;
    uint32_t id = start(&F.nd[1], false, 1, 1);
    xfer_drive(&F.e);
    expect_done(&F.nd[1], id, SPRIG_STATUS_DEADLINE_EXCEEDED);
    expect_done(&F.nd[0], id, SPRIG_STATUS_DEADLINE_EXCEEDED);
    assert_int_equal(F.nd[1].n.stats.retransmits, 8);
    assert_int_equal(F.nd[0].n.stats.retransmits, 8);
    assert_true(F.e.fc.now - t0 >= SPRIG_TIME_MS(100) * 9);
    assert_true(F.e.fc.now - t0 < SPRIG_TIME_MS(100) * 11);
    assert_int_equal(F.nd[1].res[0].len, 0); /* nothing claimed written */
    fixture_fini();
}

/* ---- the end of a transfer ----------------------------------------------------------------------
 */

/* The sender's COMPLETION_ACK is lost: the receiver re-sends COMPLETION, the sender (whose session
 * is gone) answers it statelessly, and both end OK. */
static void test_dgram_lost_completion_ack(void **state)
{
    (void)state;
    fixture_init(64 * MAX_MSG);
    sprig_fault_cfg fc = {.seed = 4};
    pair_up(&fc, 0);
    prepare(&F.nd[0], &F.nd[1], 1, 3 * MAX_CHUNK + 1, 9);
    F.drop_final_ack = true;
    uint32_t id = start(&F.nd[1], false, 1, 1);
    xfer_drive(&F.e);
    assert_false(F.drop_final_ack);
    expect_done(&F.nd[0], id, SPRIG_STATUS_OK);
    expect_done(&F.nd[1], id, SPRIG_STATUS_OK);
    expect_copied(&F.nd[0], &F.nd[1], 1, 3 * MAX_CHUNK + 1);
    assert_int_equal(F.nd[0].f.stats.dropped, 1);     /* the COMPLETION_ACK */
    assert_int_equal(F.nd[1].n.stats.retransmits, 1); /* one COMPLETION re-sent */
    assert_int_equal(F.nd[0].n.stats.retransmits, 0);
    assert_int_equal(F.nd[0].n.stats.dropped + F.nd[1].n.stats.dropped, 0);
    fixture_fini();
}

/* A late copy of a START that already completed opens nothing; a chunk for a session that is
 * gone is answered, never acted on. */
static void test_dgram_late_start_copy(void **state)
{
    (void)state;
    raw_peer_up(&F.nd[0], true);
    node *srv = &F.nd[0];
    prepare(srv, &F.nd[1], 1, 10, 1);
    uint8_t out[MAX_MSG];
    size_t n = 0;
    uint8_t start_msg[MAX_MSG];
    size_t start_len = encode_start(SPRIG_TRANSFER_DIR_WRITE, start_msg, sizeof(start_msg));
    raw_send(start_msg, start_len, true);
    assert_int_equal(sprig_transfer_active(&srv->n), 1);
    /* the client cancels: COMPLETION(CANCELLED), the server acknowledges and ends */
    sprig_transfer_chunk e = {0};
    e.fields = SPRIG_TRANSFER_F_TYPE | SPRIG_TRANSFER_F_SESSION_ID | SPRIG_TRANSFER_F_STATUS;
    e.type = SPRIG_TRANSFER_CHUNK_COMPLETION;
    e.session_id = 5;
    e.status = SPRIG_STATUS_CANCELLED;
    assert_int_equal(sprig_transfer_chunk_encode(&e, out, sizeof(out), &n), SPRIG_STATUS_OK);
    raw_send(out, n, true);
    expect_done(srv, 5, SPRIG_STATUS_CANCELLED);
    assert_int_equal(sprig_transfer_active(&srv->n), 0);
    /* the late copy of the START: ignored */
    raw_send(start_msg, start_len, true);
    assert_int_equal(sprig_transfer_active(&srv->n), 0);
    assert_int_equal(srv->ndone, 1);
    /* a late DATA chunk for it: answered with COMPLETION, acted on never */
    sprig_transfer_chunk d = {0};
    d.fields = SPRIG_TRANSFER_F_TYPE | SPRIG_TRANSFER_F_SESSION_ID | SPRIG_TRANSFER_F_OFFSET;
    d.type = SPRIG_TRANSFER_CHUNK_DATA;
    d.session_id = 5;
    d.data = (const uint8_t *)"xyz";
    d.data_len = 3;
    assert_int_equal(sprig_transfer_chunk_encode(&d, out, sizeof(out), &n), SPRIG_STATUS_OK);
    raw_send(out, n, true);
    assert_int_equal(srv->res[0].len, 10); /* untouched */
    assert_int_equal(srv->ndone, 1);
    /* what the server said: START_ACK, COMPLETION_ACK, then COMPLETION for the late DATA */
    uint32_t types[8];
    size_t k = 0;
    while (k < 8 && sprig_sock_recv(F.raw, out, sizeof(out), &n) == SPRIG_STATUS_OK) {
        sprig_transfer_chunk g;
        assert_int_equal(sprig_transfer_chunk_unseal(out, &n), SPRIG_STATUS_OK);
        assert_int_equal(sprig_transfer_chunk_decode(out, n, &g), SPRIG_STATUS_OK);
        types[k++] = g.type;
    }
    assert_int_equal(k, 3);
    assert_int_equal(types[0], SPRIG_TRANSFER_CHUNK_START_ACK);
    assert_int_equal(types[1], SPRIG_TRANSFER_CHUNK_COMPLETION_ACK);
    assert_int_equal(types[2], SPRIG_TRANSFER_CHUNK_COMPLETION);
    /* still ignored just before the quiet time (16 chunk timeouts) has passed ... */
    sprig_time ended = F.e.fc.now;
    sprig_fake_clock_set(&F.e.fc, ended + SPRIG_TIME_MS(500) * 16 - 1);
    raw_send(start_msg, start_len, true);
    assert_int_equal(sprig_transfer_active(&srv->n), 0);
    /* ... and after it the same id may start again */
    sprig_fake_clock_set(&F.e.fc, ended + SPRIG_TIME_MS(500) * 16);
    raw_send(start_msg, start_len, true);
    assert_int_equal(sprig_transfer_active(&srv->n), 1);
    xfer_drive(&F.e); /* nobody answers: it times out */
    assert_int_equal(srv->r[5].ndone, 2);
    assert_int_equal(srv->r[5].status, SPRIG_STATUS_DEADLINE_EXCEEDED);
    fixture_fini();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dgram_no_loss),
        cmocka_unit_test(test_dgram_loss_5),
        cmocka_unit_test(test_dgram_loss_20),
        cmocka_unit_test(test_dgram_heavy_duplication),
        cmocka_unit_test(test_dgram_corruption),
        cmocka_unit_test(test_dgram_heavy_corruption),
        cmocka_unit_test(test_dgram_bad_trailer_dropped),
        cmocka_unit_test(test_dgram_slow_start),
        cmocka_unit_test(test_dgram_loss_halves_window),
        cmocka_unit_test(test_dgram_congestion_drops),
        cmocka_unit_test(test_dgram_bound_server_two_peers),
        cmocka_unit_test(test_dgram_peer_gone_read),
        cmocka_unit_test(test_dgram_peer_gone_write),
        cmocka_unit_test(test_dgram_peer_gone_mid_transfer),
        cmocka_unit_test(test_dgram_lost_completion_ack),
        cmocka_unit_test(test_dgram_late_start_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
