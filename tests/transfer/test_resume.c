/*
 * Resume after a reconnect: a 200 KiB read or write whose connection is cut once the receiver
 * has half of it, then resumed on a new socket pair between new nodes with initial_offset = what
 * the receiver durably wrote. Over SEQPACKET the cut is a real peer-gone (a relay between the two
 * nodes closes both its sockets); over DGRAM (5% loss each way through the fault wrapper) the
 * relay stops passing anything. Checks: the statuses of the lost connection, nothing committed,
 * then the resumed transfer ends OK, byte-exact, with the whole resource's CRC-32 equal to the
 * source's, no byte below the resume offset read by the sender or on the wire, and only the
 * second half on the wire. Edge cases: resume at the end (nothing left) and beyond it.
 */
#include "xfer_fixture.h"

#include <string.h>

#include "sprig/fault.h"

enum { MAX_MSG = 256, NBUFS = 256, NFBUFS = 64, NSOCKS = 8, NSESS = 2 };
#define BUF_SIZE  (MAX_MSG + SPRIG_CONFIG_SOCK_HEADROOM + 64)
#define MAX_CHUNK (MAX_MSG - SPRIG_TRANSFER_DATA_OVERHEAD)
#define RES_SIZE  (200u * 1024u)
#define RID       7u /* the resource's id on both nodes */

/* One node's resource and a handler over it that counts. A write's bytes are kept when the
 * transfer fails (like a partial file: `durable`), but only an OK close commits them (`len`). */
typedef struct store {
    sprig_transfer_handler h;
    uint8_t *data;
    size_t len;     /* committed content */
    size_t durable; /* bytes [0, durable) written and kept, committed or not */
    uint8_t busy;   /* 1: reading, 2: writing */
    bool lenient;   /* a read may open at any offset (its read op then fails) */
    unsigned commits, closes;
    sprig_status close_status;
    uint64_t read_bytes, read_min; /* bytes the read op gave out; lowest offset asked for */
    uint64_t write_bytes;
} store;

typedef struct side {
    sprig_transfer_node n;
    bool up;
    sprig_fault_sock f;
    sprig_transfer_session sess[NSESS];
    uint8_t rx[MAX_MSG];
    store st;
    unsigned ndone;
    sprig_status status;
    uint64_t progress;
} side;

typedef struct fixture {
    xfer_env e; /* clock, loop, buffers (and the fault wrappers'), in-memory sockets */
    side cli, srv;
    sprig_sock_type type;
    /* the relay: r[0] is paired with the client's socket, r[1] with the server's */
    sprig_sock *r[2];
    bool cut;                     /* the connection is gone */
    uint64_t cut_at;              /* the receiver's progress that cuts it (0: never) */
    side *receiver;               /* whose progress counts */
    uint64_t wire_data, wire_min; /* DATA bytes the relay passed; lowest DATA offset */
} fixture;

static fixture F;
static uint8_t src[RES_SIZE], cdata[RES_SIZE], sdata[RES_SIZE];

/* ---- the counting handler -------------------------------------------------------------------- */

static sprig_status st_open(void *ctx, uint32_t id, sprig_transfer_access access, uint64_t offset,
                            void **handle, uint64_t *size)
{
    store *s = ctx;
    if (id != RID) {
        return SPRIG_STATUS_NOT_FOUND;
    }
    if (s->busy) {
        return SPRIG_STATUS_UNAVAILABLE;
    }
    /* as sprig_transfer_mem_handler: no start beyond the content (a write: beyond the kept
     * bytes; those after the offset are written again) */
    if (offset > (access == SPRIG_TRANSFER_ACCESS_READ ? s->len : s->durable) &&
        !(s->lenient && access == SPRIG_TRANSFER_ACCESS_READ)) {
        return SPRIG_STATUS_UNIMPLEMENTED;
    }
    if (access == SPRIG_TRANSFER_ACCESS_WRITE) {
        s->durable = (size_t)offset;
    }
    s->busy = access == SPRIG_TRANSFER_ACCESS_READ ? 1 : 2;
    *handle = s;
    *size = s->len;
    return SPRIG_STATUS_OK;
}

static sprig_status st_read(void *ctx, void *handle, uint64_t offset, uint8_t *buf, size_t cap,
                            size_t *out_len)
{
    store *s = ctx;
    assert_ptr_equal(handle, s);
    if (offset < s->read_min) {
        s->read_min = offset;
    }
    if (offset > s->len) {
        return SPRIG_STATUS_OUT_OF_RANGE;
    }
    size_t n = s->len - (size_t)offset;
    n = n < cap ? n : cap;
    memcpy(buf, s->data + offset, n);
    s->read_bytes += n;
    *out_len = n;
    return SPRIG_STATUS_OK;
}

static sprig_status st_write(void *ctx, void *handle, uint64_t offset, const uint8_t *data,
                             size_t len)
{
    store *s = ctx;
    assert_ptr_equal(handle, s);
    assert_int_equal(offset, s->durable); /* offsets only grow, without gaps */
    if (len > RES_SIZE - (size_t)offset) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    memcpy(s->data + offset, data, len);
    s->durable = (size_t)offset + len;
    s->write_bytes += len;
    return SPRIG_STATUS_OK;
}

static sprig_status st_close(void *ctx, void *handle, sprig_status status)
{
    store *s = ctx;
    assert_ptr_equal(handle, s);
    s->closes++;
    s->close_status = status;
    if (status == SPRIG_STATUS_OK && s->busy == 2) {
        s->len = s->durable;
        s->commits++;
    }
    s->busy = 0;
    return SPRIG_STATUS_OK;
}

static const sprig_transfer_handler_ops st_ops = {st_open, st_read, st_write, st_close, NULL};

static void store_init(store *s, uint8_t *data)
{
    memset(s, 0, sizeof(*s));
    s->h.ops = &st_ops;
    s->h.ctx = s;
    s->data = data;
    s->read_min = UINT64_MAX;
}

/* Counters of one connection only. */
static void store_new_leg(store *s)
{
    s->commits = s->closes = 0;
    s->close_status = SPRIG_STATUS_OK;
    s->read_bytes = s->write_bytes = 0;
    s->read_min = UINT64_MAX;
}

/* ---- the relay between the two nodes ----------------------------------------------------------
 */

/* The connection is lost: SEQPACKET, both ends of the relay close (each node's peer is gone);
 * DGRAM, nothing gets through any more. */
static void cut(void)
{
    F.cut = true;
    if (F.type == SPRIG_SOCK_SEQPACKET) {
        for (size_t i = 0; i < 2; i++) {
            sprig_sock_close(F.r[i]);
            F.r[i] = NULL;
        }
    }
}

static void relay_event(sprig_sock *s, sprig_sock_event ev, sprig_status status, void *user)
{
    (void)status;
    (void)user;
    if (ev != SPRIG_SOCK_EV_READABLE) {
        return;
    }
    uint8_t buf[MAX_MSG];
    size_t n = 0;
    while (F.r[0] == s || F.r[1] == s) {
        if (sprig_sock_recv(s, buf, sizeof(buf), &n) != SPRIG_STATUS_OK) {
            return; /* nothing more now, or a node closed its end (teardown) */
        }
        if (F.cut) {
            continue; /* DGRAM: lost */
        }
        sprig_transfer_chunk c;
        assert_int_equal(sprig_transfer_chunk_decode(buf, n, &c), SPRIG_STATUS_OK);
        if (c.type == SPRIG_TRANSFER_CHUNK_DATA && c.data_len > 0) {
            F.wire_data += c.data_len;
            if (c.offset < F.wire_min) {
                F.wire_min = c.offset;
            }
        }
        /* the mem windows are large enough that a hop never refuses */
        assert_int_equal(sprig_sock_send(s == F.r[0] ? F.r[1] : F.r[0], buf, n, NULL),
                         SPRIG_STATUS_OK);
    }
}

/* ---- the nodes ------------------------------------------------------------------------------- */

static side *side_of(sprig_transfer_node *n)
{
    return n == &F.cli.n ? &F.cli : &F.srv;
}

static void on_done(sprig_transfer_node *n, uint32_t id, sprig_status status, void *user)
{
    (void)id;
    (void)user;
    side *sd = side_of(n);
    sd->ndone++;
    sd->status = status;
}

static void on_progress(sprig_transfer_node *n, uint32_t id, uint64_t done, uint64_t total,
                        void *user)
{
    (void)id;
    (void)total;
    (void)user;
    side *sd = side_of(n);
    sd->progress = done;
    if (sd == F.receiver && F.cut_at != 0 && !F.cut && done >= F.cut_at) {
        cut();
    }
}

static void fixture_init(sprig_sock_type type)
{
    memset(&F, 0, sizeof(F));
    F.type = type;
    xfer_env_cfg ec = {.mem = {.max_message_size = MAX_MSG, .window_bytes = 64 * MAX_MSG},
                       .nbufs = NBUFS,
                       .buf_size = BUF_SIZE,
                       .nsocks = NSOCKS,
                       .drive_steps = 1000000,
                       .nfault_bufs = NFBUFS};
    xfer_env_init(&F.e, &ec);
    store_init(&F.cli.st, cdata);
    store_init(&F.srv.st, sdata);
}

static void side_up(side *sd, sprig_sock *sock, bool server, uint32_t seed)
{
    sd->n = (sprig_transfer_node){0};
    if (F.type == SPRIG_SOCK_DGRAM) {
        sprig_fault_cfg fc = {.seed = seed, .drop_pm = 50}; /* 5% loss */
        assert_int_equal(sprig_fault_init(&sd->f, sock, &fc, &F.e.fpool), SPRIG_STATUS_OK);
        sock = &sd->f.sock;
    }
    sprig_transfer_cfg c = xfer_node_cfg(&F.e.loop, sock, sd->sess, NSESS, sd->rx, MAX_MSG);
    c.on_progress = on_progress;
    c.on_done = on_done;
    c.handler = server ? &sd->st.h : NULL;
    assert_int_equal(sprig_transfer_init(&sd->n, &c), SPRIG_STATUS_OK);
    sd->up = true;
    sd->ndone = 0;
    sd->status = SPRIG_STATUS_OK;
    sd->progress = 0;
    store_new_leg(&sd->st);
}

/* A new connection: new socket pairs, new relay, new nodes. */
static void connect_up(uint32_t seed)
{
    sprig_sock *a;
    sprig_sock *b;
    xfer_env_pair(&F.e, F.type, &a, &F.r[0]);
    xfer_env_pair(&F.e, F.type, &F.r[1], &b);
    sprig_sock_set_callback(F.r[0], relay_event, NULL);
    sprig_sock_set_callback(F.r[1], relay_event, NULL);
    F.cut = false;
    F.wire_data = 0;
    F.wire_min = UINT64_MAX;
    side_up(&F.cli, a, false, seed);
    side_up(&F.srv, b, true, seed * 7919u + 1u);
    xfer_settle(&F.e);
}

/* After a connection: both ends have finished; everything is given back. */
static void connect_down(void)
{
    xfer_drive(&F.e);
    for (side *sd = &F.cli; sd != NULL; sd = sd == &F.cli ? &F.srv : NULL) {
        assert_int_equal(sprig_transfer_active(&sd->n), 0);
        assert_int_equal(sd->st.busy, 0);
        sprig_transfer_deinit(&sd->n);
        sd->up = false;
    }
    for (size_t i = 0; i < 2; i++) {
        if (F.r[i] != NULL) {
            sprig_sock_close(F.r[i]);
            F.r[i] = NULL;
        }
    }
    xfer_settle(&F.e);
    xfer_env_idle(&F.e);
}

/* Start a read (the client downloads RID) or a write (it uploads it) at `offset`. */
static sprig_status start(bool write, uint64_t offset)
{
    sprig_transfer_opts o = {0};
    o.resource_id = RID;
    o.local = &F.cli.st.h;
    o.local_id = RID;
    o.initial_offset = offset;
    o.progress = on_progress;
    o.done = on_done;
    uint32_t id = 0;
    return write ? sprig_transfer_write(&F.cli.n, &o, &id) : sprig_transfer_read(&F.cli.n, &o, &id);
}

/* The sender's store holds the source; the receiver's is empty. */
static void prepare(bool write, uint32_t seed)
{
    xfer_fill(src, RES_SIZE, seed);
    side *tx = write ? &F.cli : &F.srv;
    side *rx = write ? &F.srv : &F.cli;
    memcpy(tx->st.data, src, RES_SIZE);
    tx->st.len = tx->st.durable = RES_SIZE;
    memset(rx->st.data, 0xEE, RES_SIZE);
    F.receiver = rx;
}

/* ---- cut at 50%, resume ---------------------------------------------------------------------- */

static void cut_and_resume(sprig_sock_type type, bool write, uint32_t seed)
{
    fixture_init(type);
    prepare(write, seed);
    side *tx = write ? &F.cli : &F.srv;
    side *rx = write ? &F.srv : &F.cli;
    const sprig_status lost =
        type == SPRIG_SOCK_SEQPACKET ? SPRIG_STATUS_ABORTED : SPRIG_STATUS_DEADLINE_EXCEEDED;

    /* 1: the connection is cut once the receiver has half */
    connect_up(seed);
    F.cut_at = RES_SIZE / 2;
    assert_int_equal(start(write, 0), SPRIG_STATUS_OK);
    xfer_drive(&F.e);
    assert_true(F.cut);
    assert_int_equal(F.cli.ndone, 1);
    assert_int_equal(F.srv.ndone, 1);
    assert_int_equal(F.cli.status, lost);
    assert_int_equal(F.srv.status, lost);
    /* the receiver committed nothing, but kept what it wrote */
    size_t kept = rx->st.durable;
    assert_int_equal(rx->st.commits, 0);
    assert_int_equal(rx->st.closes, 1);
    assert_int_equal(rx->st.close_status, lost);
    assert_int_equal(rx->st.len, 0);
    assert_true(kept >= RES_SIZE / 2 && kept < RES_SIZE);
    assert_int_equal(rx->progress, kept);
    assert_memory_equal(rx->st.data, src, kept);
    assert_int_equal(tx->st.closes, 1);
    assert_int_equal(tx->st.read_min, 0);
    uint64_t first_wire = F.wire_data;
    connect_down();

    /* 2: a new connection between new nodes resumes at what the receiver kept */
    connect_up(seed + 1);
    F.cut_at = 0;
    assert_int_equal(start(write, kept), SPRIG_STATUS_OK);
    xfer_drive(&F.e);
    assert_false(F.cut);
    assert_int_equal(F.cli.ndone, 1);
    assert_int_equal(F.srv.ndone, 1);
    assert_int_equal(F.cli.status, SPRIG_STATUS_OK);
    assert_int_equal(F.srv.status, SPRIG_STATUS_OK);
    assert_int_equal(rx->st.commits, 1);
    assert_int_equal(rx->st.len, RES_SIZE);
    assert_memory_equal(rx->st.data, src, RES_SIZE);
    assert_int_equal(sprig_transfer_crc32(0, rx->st.data, RES_SIZE),
                     sprig_transfer_crc32(0, src, RES_SIZE));
    /* no byte below the offset read again or sent again */
    assert_true(tx->st.read_min >= kept);
    assert_int_equal(F.wire_min, kept);
    assert_int_equal(rx->st.write_bytes, RES_SIZE - kept);
    assert_int_equal(rx->progress, RES_SIZE - kept);
    assert_int_equal(tx->progress, RES_SIZE - kept);
    if (type == SPRIG_SOCK_SEQPACKET) {
        /* a reliable carrier: every byte from the offset once, none twice */
        assert_int_equal(tx->st.read_bytes, RES_SIZE - kept);
        assert_int_equal(F.wire_data, RES_SIZE - kept);
    } else {
        /* losses are sent again, but the second connection carries about half */
        assert_true(F.wire_data >= RES_SIZE - kept);
        assert_true(tx->st.read_bytes >= F.wire_data);
        assert_true(tx->st.read_bytes < (RES_SIZE - kept) * 3 / 2);
    }
    assert_true(F.wire_data <= RES_SIZE / 2 + (type == SPRIG_SOCK_DGRAM ? RES_SIZE / 4 : 0));
    assert_true(first_wire >= kept);
    print_message("resume %s %s: cut at %zu, wire 1st %llu 2nd %llu, sender read %llu\n",
                  type == SPRIG_SOCK_SEQPACKET ? "seqpacket" : "dgram", write ? "write" : "read",
                  kept, (unsigned long long)first_wire, (unsigned long long)F.wire_data,
                  (unsigned long long)tx->st.read_bytes);
    connect_down();
    xfer_env_deinit(&F.e);
}

static void test_resume_seqpacket_read(void **state)
{
    (void)state;
    cut_and_resume(SPRIG_SOCK_SEQPACKET, false, 11);
}

static void test_resume_seqpacket_write(void **state)
{
    (void)state;
    cut_and_resume(SPRIG_SOCK_SEQPACKET, true, 12);
}

static void test_resume_dgram_read(void **state)
{
    (void)state;
    cut_and_resume(SPRIG_SOCK_DGRAM, false, 13);
}

static void test_resume_dgram_write(void **state)
{
    (void)state;
    cut_and_resume(SPRIG_SOCK_DGRAM, true, 14);
}

/* ---- edge cases ------------------------------------------------------------------------------ */

/* The receiver kept everything but the connection died before the end: resuming at the size
 * sends no data, only the final chunk, whose CRC-32 (of nothing) matches; the write commits. */
static void resume_at_end(bool write)
{
    fixture_init(SPRIG_SOCK_SEQPACKET);
    prepare(write, 21);
    side *tx = write ? &F.cli : &F.srv;
    side *rx = write ? &F.srv : &F.cli;
    memcpy(rx->st.data, src, RES_SIZE);
    rx->st.durable = RES_SIZE;
    connect_up(21);
    assert_int_equal(start(write, RES_SIZE), SPRIG_STATUS_OK);
    xfer_drive(&F.e);
    assert_int_equal(F.cli.ndone, 1);
    assert_int_equal(F.srv.ndone, 1);
    assert_int_equal(F.cli.status, SPRIG_STATUS_OK);
    assert_int_equal(F.srv.status, SPRIG_STATUS_OK);
    assert_int_equal(rx->st.commits, 1);
    assert_int_equal(rx->st.len, RES_SIZE);
    assert_int_equal(rx->st.write_bytes, 0);
    assert_int_equal(tx->st.read_bytes, 0);
    assert_true(tx->st.read_min == UINT64_MAX || tx->st.read_min == RES_SIZE);
    assert_int_equal(F.wire_data, 0);
    assert_int_equal(sprig_transfer_crc32(0, rx->st.data, RES_SIZE),
                     sprig_transfer_crc32(0, src, RES_SIZE));
    connect_down();
    xfer_env_deinit(&F.e);
}

static void test_resume_at_end_read(void **state)
{
    (void)state;
    resume_at_end(false);
}

static void test_resume_at_end_write(void **state)
{
    (void)state;
    resume_at_end(true);
}

/* An offset beyond the resource: the side holding the bytes cannot start there. The peer's
 * handler says UNIMPLEMENTED, which the peer sends back (a refused START); our own handler's
 * refusal comes straight from sprig_transfer_read/write. Nothing is opened for long, nothing
 * committed, no data moves. */
static void test_resume_beyond_end(void **state)
{
    (void)state;
    fixture_init(SPRIG_SOCK_SEQPACKET);
    /* a read: the client kept more than the server has (say the file shrank) */
    prepare(false, 31);
    memcpy(F.cli.st.data, src, RES_SIZE);
    F.cli.st.durable = RES_SIZE;
    F.srv.st.len = RES_SIZE - 1000;
    connect_up(31);
    assert_int_equal(start(false, RES_SIZE - 999), SPRIG_STATUS_OK);
    xfer_drive(&F.e);
    assert_int_equal(F.cli.ndone, 1);
    assert_int_equal(F.cli.status, SPRIG_STATUS_UNIMPLEMENTED);
    assert_int_equal(F.srv.ndone, 0); /* refused: no session on the server */
    assert_int_equal(F.srv.n.stats.refused, 1);
    assert_int_equal(F.srv.st.closes, 0);
    assert_int_equal(F.cli.st.closes, 1);
    assert_int_equal(F.cli.st.commits, 0);
    assert_int_equal(F.cli.st.len, 0);
    /* a read beyond what the client kept: its own handler refuses */
    assert_int_equal(start(false, RES_SIZE + 1), SPRIG_STATUS_UNIMPLEMENTED);
    /* a write beyond the client's content: its own handler refuses */
    F.cli.st.len = RES_SIZE;
    assert_int_equal(start(true, RES_SIZE + 1), SPRIG_STATUS_UNIMPLEMENTED);
    /* a write beyond what the server kept: refused by the server */
    F.srv.st.durable = 1000;
    assert_int_equal(start(true, 1001), SPRIG_STATUS_OK);
    xfer_drive(&F.e);
    assert_int_equal(F.cli.ndone, 2);
    assert_int_equal(F.cli.status, SPRIG_STATUS_UNIMPLEMENTED);
    assert_int_equal(F.srv.ndone, 0);
    assert_int_equal(F.srv.n.stats.refused, 2);
    assert_int_equal(F.srv.st.commits, 0);
    assert_int_equal(F.srv.st.durable, 1000);
    /* a server handler that lets a read open beyond its content: its read op fails there, and
     * the engine ends the transfer with DATA_LOSS on both sides */
    F.srv.st.lenient = true;
    F.cli.st.durable = RES_SIZE;
    assert_int_equal(start(false, RES_SIZE - 999), SPRIG_STATUS_OK);
    xfer_drive(&F.e);
    assert_int_equal(F.cli.ndone, 3);
    assert_int_equal(F.cli.status, SPRIG_STATUS_DATA_LOSS);
    assert_int_equal(F.srv.ndone, 1);
    assert_int_equal(F.srv.status, SPRIG_STATUS_DATA_LOSS);
    assert_int_equal(F.srv.st.read_min, RES_SIZE - 999);
    assert_int_equal(F.cli.st.commits, 0);
    assert_int_equal(F.cli.st.close_status, SPRIG_STATUS_DATA_LOSS);
    assert_int_equal(F.cli.st.read_bytes, 0);
    assert_int_equal(F.srv.st.read_bytes, 0);
    assert_int_equal(F.wire_data, 0);
    connect_down();
    xfer_env_deinit(&F.e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_seqpacket_read), cmocka_unit_test(test_resume_seqpacket_write),
        cmocka_unit_test(test_resume_dgram_read),     cmocka_unit_test(test_resume_dgram_write),
        cmocka_unit_test(test_resume_at_end_read),    cmocka_unit_test(test_resume_at_end_write),
        cmocka_unit_test(test_resume_beyond_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
