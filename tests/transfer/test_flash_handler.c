/*
 * The flash handler (sprig/transfer_flash.h) on a simulated NOR flash in RAM that enforces the
 * device rules — erase only whole aligned blocks; program only whole aligned pages, within one
 * block, into pages erased since their last program, turning 1 bits to 0 only; touch only the
 * regions the test allows — and fails the test on any violation. Transfers go through the real
 * engine (an in-memory SEQPACKET pair and a fake clock, as test_engine.c): odd sizes, exactly the
 * region, one byte too many, device errors, cancellation, read-back, busy regions, access rights,
 * resume at an offset; with the device's commit/invalidate/length hooks and without them.
 */
#include "support.h"
#include "xfer_fixture.h"

#include <string.h>

#include "sprig/mem.h"
#include "sprig/transfer.h"
#include "sprig/transfer_flash.h"

enum { MAX_MSG = 256, NSESS = 4, NLOCAL = 2, LOCAL_CAP = 12000 };
enum { MAX_IDS = 32, NREADS = 2 };
enum {
    BLOCK = 1024,
    PAGE = 64,
    FLASH = 12 * BLOCK,
    NBLOCKS = FLASH / BLOCK,
    NPAGES = FLASH / PAGE
};
#define MAX_CHUNK (MAX_MSG - SPRIG_TRANSFER_DATA_OVERHEAD) /* 208: not a multiple of PAGE */
#define LOCAL     100u  /* the client's mem resources are LOCAL + 1, LOCAL + 2 */
#define OLD       0x5Au /* what the flash holds at the start */

/* The partition table: boot (read only), fw (read/write), log (write only), tiny-page (r/w). */
enum { ID_BOOT = 10, ID_FW = 11, ID_LOG = 12, ID_SMALL = 13 };
enum { R_BOOT, R_FW, R_LOG, R_SMALL, NREGIONS };
#define FW_BASE    (2 * BLOCK)
#define FW_SIZE    (8 * BLOCK)
#define LOG_BASE   (10 * BLOCK)
#define SMALL_PAGE 16
static const sprig_transfer_flash_region regions[NREGIONS] = {
    {ID_BOOT, "boot", 0, 2 * BLOCK, BLOCK, PAGE, SPRIG_TRANSFER_ACCESS_READ},
    {ID_FW, "fw", FW_BASE, FW_SIZE, BLOCK, PAGE,
     SPRIG_TRANSFER_ACCESS_READ | SPRIG_TRANSFER_ACCESS_WRITE},
    {ID_LOG, "log", LOG_BASE, BLOCK, BLOCK, PAGE, SPRIG_TRANSFER_ACCESS_WRITE},
    {ID_SMALL, "small", 11 * BLOCK, BLOCK, BLOCK, SMALL_PAGE,
     SPRIG_TRANSFER_ACCESS_READ | SPRIG_TRANSFER_ACCESS_WRITE},
};

typedef struct result {
    unsigned ndone;
    sprig_status status;
    uint64_t progress;
} result;

/* The simulated device. */
typedef struct nor {
    uint8_t mem[FLASH];
    uint8_t programmed[NPAGES]; /* programmed since the last erase (16-byte granules for SMALL) */
    uint8_t small_prog[BLOCK / SMALL_PAGE];
    unsigned erased[NBLOCKS]; /* erases per block since the counters were reset */
    unsigned erases, programs;
    uint32_t fail_program_at; /* a program covering this address fails (0: never) */
    uint32_t fail_erase_at;   /* an erase of the block at this address fails (0: never) */
    /* hooks */
    uint8_t committed[NREGIONS];
    uint32_t length[NREGIONS];
    unsigned commits, invalidates, lengths;
    uint32_t last_commit_len;
    /* an invalidate must come before the first erase of a region in a write */
    uint8_t invalid[NREGIONS];
} nor;

typedef struct fixture {
    xfer_env env; /* clock, loop, buffers, in-memory sockets */
    sprig_transfer_node cn, sn;
    sprig_transfer_session csess[NSESS], ssess[NSESS];
    uint8_t crx[MAX_MSG], srx[MAX_MSG];
    sprig_transfer_mem_handler ch;
    sprig_transfer_mem_resource cres[NLOCAL];
    uint8_t cstore[NLOCAL][LOCAL_CAP];
    sprig_transfer_flash_handler fh;
    uint8_t page_buf[PAGE];
    sprig_transfer_flash_read reads[NREADS];
    nor dev;
    bool hooks; /* the device has commit/invalidate/length */
    result cr[MAX_IDS], sr[MAX_IDS];
    uint64_t cancel_at; /* the client cancels once its progress reaches this */
    uint64_t read_at;   /* the client starts a read of fw once its progress reaches this */
    uint32_t read_id;
} fixture;

static fixture F;

/* ---- the simulated NOR flash ----------------------------------------------------------------- */

static int region_of(uint32_t addr)
{
    for (int i = 0; i < NREGIONS; i++) {
        if (addr >= regions[i].base && addr - regions[i].base < regions[i].size) {
            return i;
        }
    }
    return -1;
}

static sprig_status nor_read(void *dev, uint32_t addr, uint8_t *buf, size_t len)
{
    nor *d = dev;
    if (addr > FLASH || len > FLASH - addr || len == 0) {
        fail_msg("read out of the chip: 0x%x + %zu", (unsigned)addr, len);
    }
    memcpy(buf, d->mem + addr, len);
    return SPRIG_STATUS_OK;
}

static sprig_status nor_erase(void *dev, uint32_t addr, uint32_t len)
{
    nor *d = dev;
    int r = region_of(addr);
    if (addr % BLOCK != 0 || len != BLOCK || addr >= FLASH || r < 0 ||
        (regions[r].access & SPRIG_TRANSFER_ACCESS_WRITE) == 0) {
        fail_msg("bad erase: 0x%x + %u", (unsigned)addr, (unsigned)len);
    }
    if (F.hooks && !d->invalid[r]) {
        fail_msg("erase of region %d before invalidate", r);
    }
    if (d->fail_erase_at != 0 && d->fail_erase_at == addr) {
        return SPRIG_STATUS_INTERNAL;
    }
    memset(d->mem + addr, 0xFF, BLOCK);
    memset(d->programmed + addr / PAGE, 0, BLOCK / PAGE);
    if (r == R_SMALL) {
        memset(d->small_prog, 0, sizeof(d->small_prog));
    }
    d->erased[addr / BLOCK]++;
    d->erases++;
    return SPRIG_STATUS_OK;
}

static sprig_status nor_program(void *dev, uint32_t addr, const uint8_t *data, size_t len)
{
    nor *d = dev;
    int r = region_of(addr);
    if (r < 0 || (regions[r].access & SPRIG_TRANSFER_ACCESS_WRITE) == 0) {
        fail_msg("program outside a writable region: 0x%x", (unsigned)addr);
    }
    uint32_t page = regions[r].page_size;
    if (len == 0 || addr % page != 0 || len % page != 0 ||
        addr / BLOCK != (addr + (uint32_t)len - 1u) / BLOCK) {
        fail_msg("bad program: 0x%x + %zu (page %u)", (unsigned)addr, len, (unsigned)page);
    }
    for (uint32_t a = addr; a < addr + len; a += page) {
        uint8_t *flag = r == R_SMALL ? &d->small_prog[(a - regions[r].base) / SMALL_PAGE]
                                     : &d->programmed[a / PAGE];
        if (*flag) {
            fail_msg("page 0x%x programmed twice without an erase", (unsigned)a);
        }
        *flag = 1;
    }
    for (size_t i = 0; i < len; i++) {
        if ((d->mem[addr + i] & data[i]) != data[i]) {
            fail_msg("program would turn a 0 bit into 1 at 0x%x", (unsigned)(addr + i));
        }
    }
    d->programs++;
    if (d->fail_program_at != 0 && d->fail_program_at >= addr && d->fail_program_at < addr + len) {
        return SPRIG_STATUS_INTERNAL;
    }
    for (size_t i = 0; i < len; i++) {
        d->mem[addr + i] &= data[i];
    }
    return SPRIG_STATUS_OK;
}

static int index_of(const sprig_transfer_flash_region *r)
{
    assert_true(r >= regions && r < regions + NREGIONS);
    return (int)(r - regions);
}

static sprig_status nor_commit(void *dev, const sprig_transfer_flash_region *r, uint32_t len)
{
    nor *d = dev;
    int i = index_of(r);
    assert_true(len <= r->size);
    d->committed[i] = 1;
    d->invalid[i] = 0;
    d->length[i] = len;
    d->last_commit_len = len;
    d->commits++;
    return SPRIG_STATUS_OK;
}

static sprig_status nor_invalidate(void *dev, const sprig_transfer_flash_region *r)
{
    nor *d = dev;
    int i = index_of(r);
    d->committed[i] = 0;
    d->invalid[i] = 1;
    d->invalidates++;
    return SPRIG_STATUS_OK;
}

static sprig_status nor_length(void *dev, const sprig_transfer_flash_region *r, uint32_t *len)
{
    nor *d = dev;
    int i = index_of(r);
    d->lengths++;
    if (!d->committed[i]) {
        return SPRIG_STATUS_NOT_FOUND;
    }
    *len = d->length[i];
    return SPRIG_STATUS_OK;
}

static const sprig_transfer_flash_ops ops_hooks = {nor_read,   nor_erase,      nor_program,
                                                   nor_commit, nor_invalidate, nor_length};
static const sprig_transfer_flash_ops ops_plain = {nor_read, nor_erase, nor_program,
                                                   NULL,     NULL,      NULL};

/* Reset the per-transfer counters. */
static void nor_counts_reset(void)
{
    memset(F.dev.erased, 0, sizeof(F.dev.erased));
    F.dev.erases = F.dev.programs = 0;
    F.dev.commits = F.dev.invalidates = 0;
}

/* ---- the engine fixture ---------------------------------------------------------------------- */

static result *res_of(sprig_transfer_node *node, uint32_t id)
{
    assert_true(id < MAX_IDS);
    return node == &F.cn ? &F.cr[id] : &F.sr[id];
}

static void on_done(sprig_transfer_node *node, uint32_t id, sprig_status status, void *user)
{
    (void)user;
    result *r = res_of(node, id);
    r->ndone++;
    r->status = status;
}

static void on_progress(sprig_transfer_node *node, uint32_t id, uint64_t done, uint64_t total,
                        void *user)
{
    (void)user;
    (void)total;
    res_of(node, id)->progress = done;
    if (node == &F.cn && F.cancel_at != 0 && done >= F.cancel_at) {
        F.cancel_at = 0;
        assert_int_equal(sprig_transfer_cancel(node, id), SPRIG_STATUS_OK);
    }
    if (node == &F.cn && F.read_at != 0 && done >= F.read_at) {
        F.read_at = 0;
        sprig_transfer_opts o = {0};
        o.resource_id = ID_FW;
        o.local = &F.ch.handler;
        o.local_id = LOCAL + 2;
        o.done = on_done;
        assert_int_equal(sprig_transfer_read(&F.cn, &o, &F.read_id), SPRIG_STATUS_OK);
    }
}

static void node_cfg(sprig_transfer_cfg *c, sprig_sock *sock, sprig_transfer_session *sess,
                     uint8_t *rx)
{
    *c = xfer_node_cfg(&F.env.loop, sock, sess, NSESS, rx, MAX_MSG);
    c->on_progress = on_progress;
    c->on_done = on_done;
}

static sprig_transfer_flash_cfg flash_cfg(void)
{
    sprig_transfer_flash_cfg fc = {
        .ops = F.hooks ? &ops_hooks : &ops_plain,
        .dev = &F.dev,
        .regions = regions,
        .count = NREGIONS,
        .page_buf = F.page_buf,
        .page_cap = sizeof(F.page_buf),
        .reads = F.reads,
        .max_reads = NREADS,
    };
    return fc;
}

static int setup_with(bool hooks)
{
    memset(&F, 0, sizeof(F));
    F.hooks = hooks;
    memset(F.dev.mem, OLD, sizeof(F.dev.mem));
    memset(F.dev.programmed, 1, sizeof(F.dev.programmed)); /* an old image: erase first */
    memset(F.dev.small_prog, 1, sizeof(F.dev.small_prog));
    F.dev.committed[R_BOOT] = 1;
    F.dev.length[R_BOOT] = 2 * BLOCK - 100;
    xfer_env_cfg ec = {.mem = {.max_message_size = MAX_MSG}};
    xfer_env_init(&F.env, &ec);
    sprig_sock *a;
    sprig_sock *b;
    xfer_env_pair(&F.env, SPRIG_SOCK_SEQPACKET, &a, &b);
    xfer_mem_resources(F.cres, NLOCAL, &F.cstore[0][0], LOCAL_CAP, LOCAL + 1);
    sprig_transfer_mem_handler_init(&F.ch, F.cres, NLOCAL);
    sprig_transfer_flash_cfg fc = flash_cfg();
    assert_int_equal(sprig_transfer_flash_handler_init(&F.fh, &fc), SPRIG_STATUS_OK);
    sprig_transfer_cfg c;
    node_cfg(&c, a, F.csess, F.crx);
    assert_int_equal(sprig_transfer_init(&F.cn, &c), SPRIG_STATUS_OK);
    node_cfg(&c, b, F.ssess, F.srx);
    c.handler = &F.fh.handler;
    assert_int_equal(sprig_transfer_init(&F.sn, &c), SPRIG_STATUS_OK);
    xfer_settle(&F.env);
    return 0;
}

static int setup_hooks(void **state)
{
    (void)state;
    return setup_with(true);
}

static int setup_plain(void **state)
{
    (void)state;
    return setup_with(false);
}

static int teardown(void **state)
{
    (void)state;
    xfer_settle(&F.env);
    assert_int_equal(sprig_transfer_active(&F.cn), 0);
    assert_int_equal(sprig_transfer_active(&F.sn), 0);
    sprig_transfer_deinit(&F.cn);
    sprig_transfer_deinit(&F.sn);
    xfer_settle(&F.env);
    assert_null(F.fh.w_region); /* every write was closed */
    for (size_t i = 0; i < NREADS; i++) {
        assert_int_equal(F.reads[i].in_use, 0);
    }
    xfer_mem_resources_idle(F.cres, NLOCAL);
    xfer_env_deinit(&F.env);
    return 0;
}

static uint32_t start(bool write, uint32_t remote, uint32_t local, uint64_t offset)
{
    sprig_transfer_opts o = {0};
    o.resource_id = remote;
    o.local = &F.ch.handler;
    o.local_id = LOCAL + local;
    o.initial_offset = offset;
    o.progress = on_progress;
    o.done = on_done;
    uint32_t id = 0;
    sprig_status st =
        write ? sprig_transfer_write(&F.cn, &o, &id) : sprig_transfer_read(&F.cn, &o, &id);
    assert_int_equal(st, SPRIG_STATUS_OK);
    assert_true(id != 0 && id < MAX_IDS);
    return id;
}

/* Upload n bytes of local resource 1 to `remote`; returns the client's final status (both ends
 * must agree). */
static sprig_status put(uint32_t remote, size_t n, uint64_t offset)
{
    F.cres[0].len = n;
    uint32_t id = start(true, remote, 1, offset);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].ndone, 1);
    if (F.sr[id].ndone != 0) { /* a session the server accepted */
        assert_int_equal(F.sr[id].ndone, 1);
        assert_int_equal(F.sr[id].status, F.cr[id].status);
    }
    return F.cr[id].status;
}

/* Download `remote` into local resource 2 from `offset`; its length is then F.cres[1].len. */
static sprig_status get(uint32_t remote, uint64_t offset)
{
    F.cres[1].len = (size_t)offset;
    memset(F.cstore[1] + offset, 0xEE, LOCAL_CAP - (size_t)offset);
    uint32_t id = start(false, remote, 2, offset);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[id].ndone, 1);
    return F.cr[id].status;
}

/* The fw region holds an old image again (it must be erased before a program). */
static void fw_old(void)
{
    nor_counts_reset();
    memset(F.dev.mem + FW_BASE, OLD, FW_SIZE);
    memset(F.dev.programmed + FW_BASE / PAGE, 1, FW_SIZE / PAGE);
}

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

/* The fw region holds `n` bytes of `want`, padded with 0xFF to the page, erased to the end of the
 * last block reached, and the old content after that; every block was erased at most once. */
static void check_fw(const uint8_t *want, size_t n, size_t from)
{
    const uint8_t *fw = F.dev.mem + FW_BASE;
    assert_memory_equal(fw + from, want + from, n - from);
    size_t padded = round_up(n, PAGE);
    size_t blocks = round_up(padded, BLOCK);
    for (size_t i = n; i < blocks; i++) {
        assert_int_equal(fw[i], 0xFF);
    }
    for (size_t i = blocks; i < FW_SIZE; i++) {
        assert_int_equal(fw[i], OLD);
    }
    for (size_t b = 0; b < NBLOCKS; b++) {
        size_t off = b * BLOCK;
        bool reached = off >= FW_BASE + from && off < FW_BASE + blocks;
        assert_int_equal(F.dev.erased[b], reached ? 1u : 0u);
    }
    assert_int_equal(F.dev.erases, (blocks - from) / BLOCK);
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_flash_init_checks(void **state)
{
    (void)state;
    sprig_transfer_flash_handler fh;
    sprig_transfer_flash_cfg ok = flash_cfg();
    assert_int_equal(sprig_transfer_flash_handler_init(&fh, &ok), SPRIG_STATUS_OK);
    assert_int_equal(sprig_transfer_flash_handler_init(NULL, &ok), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_transfer_flash_handler_init(&fh, NULL), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_transfer_flash_cfg c = ok;
    c.ops = NULL;
    assert_int_equal(sprig_transfer_flash_handler_init(&fh, &c), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_transfer_flash_ops no_erase = ops_plain;
    no_erase.erase = NULL;
    c = ok;
    c.ops = &no_erase; /* writable regions need erase and program */
    assert_int_equal(sprig_transfer_flash_handler_init(&fh, &c), SPRIG_STATUS_INVALID_ARGUMENT);
    c.count = 1; /* only the read-only boot region: fine without them */
    assert_int_equal(sprig_transfer_flash_handler_init(&fh, &c), SPRIG_STATUS_OK);
    c = ok;
    c.page_cap = SMALL_PAGE; /* fw's pages do not fit */
    assert_int_equal(sprig_transfer_flash_handler_init(&fh, &c), SPRIG_STATUS_INVALID_ARGUMENT);
    c = ok;
    c.reads = NULL;
    assert_int_equal(sprig_transfer_flash_handler_init(&fh, &c), SPRIG_STATUS_INVALID_ARGUMENT);

    static const sprig_transfer_flash_region bad[] = {
        {1, NULL, 0, BLOCK, 1000, PAGE, SPRIG_TRANSFER_ACCESS_READ},       /* erase not 2^n */
        {1, NULL, 0, BLOCK, BLOCK, 48, SPRIG_TRANSFER_ACCESS_READ},        /* page not 2^n */
        {1, NULL, 0, BLOCK, BLOCK, 2 * BLOCK, SPRIG_TRANSFER_ACCESS_READ}, /* page > block */
        {1, NULL, 100, BLOCK, BLOCK, PAGE, SPRIG_TRANSFER_ACCESS_READ},    /* base misaligned */
        {1, NULL, 0, BLOCK + 1, BLOCK, PAGE, SPRIG_TRANSFER_ACCESS_READ},  /* size misaligned */
        {1, NULL, 0, 0, BLOCK, PAGE, SPRIG_TRANSFER_ACCESS_READ},          /* empty */
        {1, NULL, 0xFFFFFC00u, 2 * BLOCK, BLOCK, PAGE, SPRIG_TRANSFER_ACCESS_READ}, /* wraps */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c = ok;
        c.regions = &bad[i];
        c.count = 1;
        assert_int_equal(sprig_transfer_flash_handler_init(&fh, &c), SPRIG_STATUS_INVALID_ARGUMENT);
    }
    static const sprig_transfer_flash_region dup[] = {
        {7, NULL, 0, BLOCK, BLOCK, PAGE, SPRIG_TRANSFER_ACCESS_READ},
        {7, NULL, BLOCK, BLOCK, BLOCK, PAGE, SPRIG_TRANSFER_ACCESS_READ},
    };
    c = ok;
    c.regions = dup;
    c.count = 2;
    assert_int_equal(sprig_transfer_flash_handler_init(&fh, &c), SPRIG_STATUS_INVALID_ARGUMENT);
    /* the last block of the address space is fine */
    static const sprig_transfer_flash_region top = {
        7, NULL, 0xFFFFFC00u, BLOCK, BLOCK, PAGE, SPRIG_TRANSFER_ACCESS_READ};
    c = ok;
    c.regions = &top;
    c.count = 1;
    assert_int_equal(sprig_transfer_flash_handler_init(&fh, &c), SPRIG_STATUS_OK);
}

static const size_t sizes[] = {1,     PAGE - 1,  PAGE,          PAGE + 1, MAX_CHUNK,   BLOCK - 1,
                               BLOCK, BLOCK + 1, 3 * BLOCK + 7, 5555,     FW_SIZE - 1, FW_SIZE};

static void test_flash_write_sizes_and_read_back(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t n = sizes[k];
        xfer_fill(F.cstore[0], n, (uint32_t)k + 3);
        fw_old();
        assert_int_equal(put(ID_FW, n, 0), SPRIG_STATUS_OK);
        check_fw(F.cstore[0], n, 0);
        assert_int_equal(F.dev.commits, 1);
        assert_int_equal(F.dev.last_commit_len, n);
        assert_int_equal(F.dev.invalidates, 1);
        /* read back: exactly the committed bytes */
        assert_int_equal(get(ID_FW, 0), SPRIG_STATUS_OK);
        assert_int_equal(F.cres[1].len, n);
        assert_memory_equal(F.cstore[1], F.cstore[0], n);
    }
    assert_int_equal(F.fh.stats.commits, sizeof(sizes) / sizeof(sizes[0]));
    assert_int_equal(F.fh.stats.discards, 0);
    assert_int_equal(F.cn.stats.retransmits + F.sn.stats.retransmits, 0);
}

/* Direct calls with 1..7-byte writes: only whole pages reach the device. */
static void test_flash_tiny_writes_gather_pages(void **state)
{
    (void)state;
    const sprig_transfer_handler *h = &F.fh.handler;
    void *handle = NULL;
    uint64_t size = 0;
    assert_int_equal(h->ops->open(h->ctx, ID_SMALL, SPRIG_TRANSFER_ACCESS_WRITE, 0, &handle, &size),
                     SPRIG_STATUS_OK);
    uint8_t data[300];
    xfer_fill(data, sizeof(data), 42);
    size_t at = 0;
    for (size_t step = 1; at < sizeof(data); step = step % 7 + 1) {
        size_t n = sizeof(data) - at < step ? sizeof(data) - at : step;
        assert_int_equal(h->ops->write(h->ctx, handle, at, data + at, n), SPRIG_STATUS_OK);
        at += n;
    }
    assert_int_equal(F.dev.programs, sizeof(data) / SMALL_PAGE); /* 18 whole pages so far */
    assert_int_equal(h->ops->close(h->ctx, handle, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    assert_int_equal(F.dev.programs, sizeof(data) / SMALL_PAGE + 1); /* and the padded last */
    assert_int_equal(F.dev.erases, 1);
    const uint8_t *small = F.dev.mem + regions[R_SMALL].base;
    assert_memory_equal(small, data, sizeof(data));
    for (size_t i = sizeof(data); i < BLOCK; i++) {
        assert_int_equal(small[i], 0xFF);
    }
    assert_int_equal(F.fh.stats.bytes, round_up(sizeof(data), SMALL_PAGE));
    assert_int_equal(F.dev.length[R_SMALL], sizeof(data));
    /* a write handle cannot be read, nor a read handle written */
    uint8_t buf[4];
    size_t got = 0;
    assert_int_equal(h->ops->open(h->ctx, ID_SMALL, SPRIG_TRANSFER_ACCESS_WRITE, 0, &handle, &size),
                     SPRIG_STATUS_OK);
    assert_int_equal(h->ops->read(h->ctx, handle, 0, buf, sizeof(buf), &got),
                     SPRIG_STATUS_FAILED_PRECONDITION);
    assert_int_equal(h->ops->close(h->ctx, handle, SPRIG_STATUS_CANCELLED), SPRIG_STATUS_OK);
    /* that write touched nothing: the committed 300 bytes are still there */
    assert_int_equal(h->ops->open(h->ctx, ID_SMALL, SPRIG_TRANSFER_ACCESS_READ, 0, &handle, &size),
                     SPRIG_STATUS_OK);
    assert_int_equal(size, sizeof(data));
    assert_int_equal(h->ops->close(h->ctx, handle, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
}

static void test_flash_exact_and_one_byte_too_many(void **state)
{
    (void)state;
    xfer_fill(F.cstore[0], FW_SIZE + 1, 9);
    assert_int_equal(put(ID_FW, FW_SIZE, 0), SPRIG_STATUS_OK);
    check_fw(F.cstore[0], FW_SIZE, 0);
    nor_counts_reset();
    /* one byte more than the region: the chunk crossing the end is refused before it is
     * programmed; the engine reports a handler write failure as DATA_LOSS (transfer.h) */
    assert_int_equal(put(ID_FW, FW_SIZE + 1, 0), SPRIG_STATUS_DATA_LOSS);
    assert_int_equal(F.dev.commits, 0);
    assert_int_equal(F.dev.invalidates, 1);
    assert_int_equal(F.fh.stats.discards, 1);
    for (size_t b = 0; b < NBLOCKS; b++) {
        assert_true(F.dev.erased[b] <= 1);
    }
    /* the last chunk that fitted ended at a multiple of MAX_CHUNK: everything before it is on
     * flash, nothing at or after the refused chunk */
    size_t fitted = FW_SIZE / MAX_CHUNK * MAX_CHUNK;
    size_t programmed = fitted / PAGE * PAGE;
    assert_memory_equal(F.dev.mem + FW_BASE, F.cstore[0], programmed);
    assert_int_equal(F.dev.erases, round_up(programmed, BLOCK) / BLOCK);
    /* nothing claimed written: the old image was invalidated, reads are refused */
    assert_int_equal(get(ID_FW, 0), SPRIG_STATUS_NOT_FOUND);
}

/* Without hooks the handler erases the first block again after programming into it. */
static void test_flash_too_many_without_hooks_erases_first_block(void **state)
{
    (void)state;
    xfer_fill(F.cstore[0], FW_SIZE + 1, 10);
    assert_int_equal(put(ID_FW, FW_SIZE + 1, 0), SPRIG_STATUS_DATA_LOSS);
    unsigned first = FW_BASE / BLOCK;
    assert_int_equal(F.dev.erased[first], 2);
    for (size_t i = 0; i < BLOCK; i++) {
        assert_int_equal(F.dev.mem[FW_BASE + i], 0xFF);
    }
    assert_int_equal(F.fh.stats.erases, F.dev.erases);
    /* without a length hook a read sees the whole region (erased start included) */
    assert_int_equal(get(ID_FW, 0), SPRIG_STATUS_OK);
    assert_int_equal(F.cres[1].len, FW_SIZE);
    assert_memory_equal(F.cstore[1], F.dev.mem + FW_BASE, FW_SIZE);
    /* a write that ends before its first page filled erased nothing: the old content stays */
    fw_old();
    const sprig_transfer_handler *h = &F.fh.handler;
    void *handle = NULL;
    uint64_t size = 0;
    assert_int_equal(h->ops->open(h->ctx, ID_FW, SPRIG_TRANSFER_ACCESS_WRITE, 0, &handle, &size),
                     SPRIG_STATUS_OK);
    assert_int_equal(h->ops->write(h->ctx, handle, 0, F.cstore[0], 3), SPRIG_STATUS_OK);
    assert_int_equal(h->ops->close(h->ctx, handle, SPRIG_STATUS_CANCELLED), SPRIG_STATUS_OK);
    assert_int_equal(F.dev.erases, 0);
    assert_int_equal(F.dev.programs, 0);
    assert_int_equal(F.dev.mem[FW_BASE], OLD);
}

static void test_flash_device_error_mid_write(void **state)
{
    (void)state;
    xfer_fill(F.cstore[0], 5000, 11);
    F.dev.fail_program_at = FW_BASE + 3000;
    assert_int_equal(put(ID_FW, 5000, 0), SPRIG_STATUS_DATA_LOSS);
    assert_int_equal(F.dev.commits, 0);
    assert_int_equal(F.fh.stats.discards, 1);
    /* erased only the blocks reached before the failure (0..2), once each */
    assert_int_equal(F.dev.erases, 3);
    for (unsigned b = FW_BASE / BLOCK; b < FW_BASE / BLOCK + 3; b++) {
        assert_int_equal(F.dev.erased[b], 1);
    }
    assert_int_equal(F.dev.mem[FW_BASE + 3 * BLOCK], OLD);
    assert_int_equal(get(ID_FW, 0), SPRIG_STATUS_NOT_FOUND); /* nothing claimed written */
    /* an erase that fails */
    F.dev.fail_program_at = 0;
    F.dev.fail_erase_at = FW_BASE + BLOCK;
    nor_counts_reset();
    assert_int_equal(put(ID_FW, 2000, 0), SPRIG_STATUS_DATA_LOSS);
    assert_int_equal(F.dev.commits, 0);
    F.dev.fail_erase_at = 0;
    /* the region works again afterwards */
    fw_old();
    assert_int_equal(put(ID_FW, 2000, 0), SPRIG_STATUS_OK);
    check_fw(F.cstore[0], 2000, 0);
}

static void test_flash_cancel_mid_write(void **state)
{
    (void)state;
    xfer_fill(F.cstore[0], 6000, 12);
    F.cancel_at = 2500;
    assert_int_equal(put(ID_FW, 6000, 0), SPRIG_STATUS_CANCELLED);
    assert_int_equal(F.dev.commits, 0);
    assert_int_equal(F.dev.invalidates, 1);
    assert_true(F.dev.erases >= 2 && F.dev.erases < FW_SIZE / BLOCK);
    assert_int_equal(get(ID_FW, 0), SPRIG_STATUS_NOT_FOUND);
}

static void test_flash_read_bounds_and_offsets(void **state)
{
    (void)state;
    /* boot: read only, committed length 2048 - 100 reported by the device */
    xfer_fill(F.dev.mem, 2 * BLOCK, 13);
    assert_int_equal(get(ID_BOOT, 0), SPRIG_STATUS_OK);
    assert_int_equal(F.cres[1].len, 2 * BLOCK - 100);
    assert_memory_equal(F.cstore[1], F.dev.mem, 2 * BLOCK - 100);
    assert_int_equal(get(ID_BOOT, 777), SPRIG_STATUS_OK);
    assert_int_equal(F.cres[1].len, 2 * BLOCK - 100);
    assert_memory_equal(F.cstore[1] + 777, F.dev.mem + 777, 2 * BLOCK - 100 - 777);
    assert_int_equal(get(ID_BOOT, 2 * BLOCK - 100), SPRIG_STATUS_OK); /* at the end: empty */
    assert_int_equal(get(ID_BOOT, 2 * BLOCK - 99), SPRIG_STATUS_OUT_OF_RANGE);
    /* a length beyond the region is clamped to it */
    F.dev.length[R_BOOT] = 5 * BLOCK;
    assert_int_equal(get(ID_BOOT, 0), SPRIG_STATUS_OK);
    assert_int_equal(F.cres[1].len, 2 * BLOCK);
    /* read slots: NREADS at once, then RESOURCE_EXHAUSTED */
    const sprig_transfer_handler *h = &F.fh.handler;
    void *handles[NREADS + 1];
    uint64_t size = 0;
    for (size_t i = 0; i < NREADS; i++) {
        assert_int_equal(
            h->ops->open(h->ctx, ID_BOOT, SPRIG_TRANSFER_ACCESS_READ, 0, &handles[i], &size),
            SPRIG_STATUS_OK);
    }
    assert_int_equal(
        h->ops->open(h->ctx, ID_BOOT, SPRIG_TRANSFER_ACCESS_READ, 0, &handles[NREADS], &size),
        SPRIG_STATUS_RESOURCE_EXHAUSTED);
    for (size_t i = 0; i < NREADS; i++) {
        assert_int_equal(h->ops->close(h->ctx, handles[i], SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    }
}

static void test_flash_access_and_unknown(void **state)
{
    (void)state;
    F.cres[0].len = 10;
    assert_int_equal(put(ID_BOOT, 10, 0), SPRIG_STATUS_PERMISSION_DENIED);
    assert_int_equal(get(ID_LOG, 0), SPRIG_STATUS_PERMISSION_DENIED);
    assert_int_equal(put(99, 10, 0), SPRIG_STATUS_NOT_FOUND);
    assert_int_equal(get(99, 0), SPRIG_STATUS_NOT_FOUND);
    assert_int_equal(F.dev.erases + F.dev.programs, 0);
    /* the write-only region takes a write */
    xfer_fill(F.cstore[0], 100, 14);
    assert_int_equal(put(ID_LOG, 100, 0), SPRIG_STATUS_OK);
    assert_memory_equal(F.dev.mem + LOG_BASE, F.cstore[0], 100);
}

static void test_flash_busy(void **state)
{
    (void)state;
    xfer_fill(F.cstore[0], 6000, 15);
    F.cres[0].len = 6000;
    F.read_at = 3000; /* in the middle of the write, a read of the region being written */
    uint32_t w = start(true, ID_FW, 1, 0);
    xfer_drive(&F.env);
    assert_int_equal(F.cr[w].status, SPRIG_STATUS_OK);
    assert_true(F.read_id != 0 && F.read_id < MAX_IDS);
    assert_int_equal(F.cr[F.read_id].ndone, 1);
    assert_int_equal(F.cr[F.read_id].status, SPRIG_STATUS_UNAVAILABLE);
    assert_int_equal(get(ID_FW, 0), SPRIG_STATUS_OK); /* and after it, fine */
    assert_int_equal(F.cres[1].len, 6000);
    /* direct: a write elsewhere while one is open, a write to a region being read */
    const sprig_transfer_handler *h = &F.fh.handler;
    void *wh = NULL, *rh = NULL, *x = NULL;
    uint64_t size = 0;
    assert_int_equal(h->ops->open(h->ctx, ID_FW, SPRIG_TRANSFER_ACCESS_WRITE, 0, &wh, &size),
                     SPRIG_STATUS_OK);
    assert_int_equal(h->ops->open(h->ctx, ID_LOG, SPRIG_TRANSFER_ACCESS_WRITE, 0, &x, &size),
                     SPRIG_STATUS_UNAVAILABLE);
    assert_int_equal(h->ops->open(h->ctx, ID_FW, SPRIG_TRANSFER_ACCESS_READ, 0, &x, &size),
                     SPRIG_STATUS_UNAVAILABLE);
    assert_int_equal(h->ops->open(h->ctx, ID_BOOT, SPRIG_TRANSFER_ACCESS_READ, 0, &rh, &size),
                     SPRIG_STATUS_OK); /* other regions can be read meanwhile */
    assert_int_equal(h->ops->close(h->ctx, wh, SPRIG_STATUS_CANCELLED), SPRIG_STATUS_OK);
    assert_int_equal(h->ops->open(h->ctx, ID_BOOT, SPRIG_TRANSFER_ACCESS_WRITE, 0, &x, &size),
                     SPRIG_STATUS_PERMISSION_DENIED);
    assert_int_equal(h->ops->open(h->ctx, ID_FW, SPRIG_TRANSFER_ACCESS_READ, 0, &x, &size),
                     SPRIG_STATUS_OK);
    assert_int_equal(h->ops->open(h->ctx, ID_FW, SPRIG_TRANSFER_ACCESS_WRITE, 0, &wh, &size),
                     SPRIG_STATUS_UNAVAILABLE); /* being read */
    assert_int_equal(h->ops->close(h->ctx, x, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    assert_int_equal(h->ops->close(h->ctx, rh, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
}

static void test_flash_resume(void **state)
{
    (void)state;
    xfer_fill(F.cstore[0], 5000, 16);
    /* the first attempt fails in block 2 */
    F.dev.fail_program_at = FW_BASE + 2 * BLOCK + 100;
    assert_int_equal(put(ID_FW, 5000, 0), SPRIG_STATUS_DATA_LOSS);
    F.dev.fail_program_at = 0;
    /* offsets that cannot be continued */
    assert_int_equal(put(ID_FW, 5000, PAGE), SPRIG_STATUS_UNIMPLEMENTED);
    assert_int_equal(put(ID_FW, 5000, 2 * BLOCK + 1), SPRIG_STATUS_UNIMPLEMENTED);
    F.cres[0].len = LOCAL_CAP;
    assert_int_equal(put(ID_FW, LOCAL_CAP, FW_SIZE + BLOCK), SPRIG_STATUS_UNIMPLEMENTED);
    /* resume at the failed block: blocks 0 and 1 are kept, not erased again */
    nor_counts_reset();
    assert_int_equal(put(ID_FW, 5000, 2 * BLOCK), SPRIG_STATUS_OK);
    check_fw(F.cstore[0], 5000, 2 * BLOCK);
    assert_int_equal(F.dev.last_commit_len, 5000);
    assert_int_equal(get(ID_FW, 0), SPRIG_STATUS_OK);
    assert_int_equal(F.cres[1].len, 5000);
    assert_memory_equal(F.cstore[1], F.cstore[0], 5000); /* the whole image */
    /* resume at exactly the end: nothing to erase, commits the length */
    nor_counts_reset();
    F.cres[0].len = FW_SIZE;
    xfer_fill(F.cstore[0], FW_SIZE, 17);
    assert_int_equal(put(ID_FW, FW_SIZE, FW_SIZE), SPRIG_STATUS_OK);
    assert_int_equal(F.dev.erases + F.dev.programs, 0);
    assert_int_equal(F.dev.last_commit_len, FW_SIZE);
}

static void test_flash_resume_needs_invalidate_hook(void **state)
{
    (void)state;
    xfer_fill(F.cstore[0], 5000, 18);
    assert_int_equal(put(ID_FW, 5000, BLOCK), SPRIG_STATUS_UNIMPLEMENTED);
    assert_int_equal(put(ID_FW, 5000, 0), SPRIG_STATUS_OK);
    check_fw(F.cstore[0], 5000, 0);
}

static void test_flash_empty_write(void **state)
{
    (void)state;
    assert_int_equal(put(ID_FW, 0, 0), SPRIG_STATUS_OK);
    assert_int_equal(F.dev.erases + F.dev.programs, 0);
    assert_int_equal(F.dev.commits, 1);
    assert_int_equal(F.dev.last_commit_len, 0);
    assert_int_equal(get(ID_FW, 0), SPRIG_STATUS_OK);
    assert_int_equal(F.cres[1].len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_flash_init_checks, setup_hooks, teardown),
        cmocka_unit_test_setup_teardown(test_flash_write_sizes_and_read_back, setup_hooks,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_flash_tiny_writes_gather_pages, setup_hooks, teardown),
        cmocka_unit_test_setup_teardown(test_flash_exact_and_one_byte_too_many, setup_hooks,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_flash_too_many_without_hooks_erases_first_block,
                                        setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_flash_device_error_mid_write, setup_hooks, teardown),
        cmocka_unit_test_setup_teardown(test_flash_cancel_mid_write, setup_hooks, teardown),
        cmocka_unit_test_setup_teardown(test_flash_read_bounds_and_offsets, setup_hooks, teardown),
        cmocka_unit_test_setup_teardown(test_flash_access_and_unknown, setup_hooks, teardown),
        cmocka_unit_test_setup_teardown(test_flash_busy, setup_hooks, teardown),
        cmocka_unit_test_setup_teardown(test_flash_resume, setup_hooks, teardown),
        cmocka_unit_test_setup_teardown(test_flash_resume_needs_invalidate_hook, setup_plain,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_flash_empty_write, setup_hooks, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
