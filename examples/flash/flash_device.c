/*
 * sprig-flash-device — a simulated device with a NOR flash partition table, served with the sprig
 * transfer engine through sprig_transfer_flash_handler (sprig/transfer_flash.h; README.md here).
 *
 *   sprig-flash-device --listen URL [--listen URL ...] [--flash FILE] [--verbose]
 *
 * Then, from another terminal:
 *   sprig-transfer put URL firmware.bin firmware
 *   sprig-transfer get URL firmware out.bin
 * URL is unix:PATH, tcp://HOST:PORT, udp://HOST:PORT, or — as a real device would be reached —
 * serial:PATH or sprig+udp://HOST:PORT through sprig's netstack (node 2, transfer port 69, the
 * same as sprig-transfer's; docs/netstack.md §11).
 *
 * The partitions (a resource's id is the 65599 hash of its name, as sprig-transfer computes it):
 *   bootloader  0x00000   64 KiB  erase 4 KiB  page 256  read only (a fixed pattern)
 *   firmware    0x10000  448 KiB  erase 4 KiB  page 256  read/write
 *   config      0x80000   16 KiB  erase 4 KiB  page  16  read/write
 * The simulated chip enforces NOR rules: an erase is one aligned block, a program is whole aligned
 * pages into blank (erased) bytes; a violation fails the operation (the transfer gets DATA_LOSS)
 * and is printed. The device keeps a committed length per partition (the handler's commit /
 * invalidate / length hooks), so a read returns exactly what was written, and a failed write
 * leaves nothing that claims to be an image. With --flash FILE the chip's bytes live in FILE and
 * the committed lengths in FILE.meta, so they survive a restart; otherwise in RAM.
 *
 * After every write one line reports the erases and programs it caused.
 *
 * `sprig-transfer put` first writes the name to resource 1 (the file server's name registration,
 * docs/transfer.md); this device accepts and ignores it: its partitions are fixed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "sprig/os.h"
#include "sprig/sock.h"
#include "sprig/transfer.h"
#include "sprig/transfer_flash.h"
#include "sprig/transfer_os.h"
#include "sprig/url.h"
#ifdef FLASH_WITH_NETSTACK
#include "sprig/ns_os.h"
#endif

#define PROG          "sprig-flash-device"
#define MAX_LISTENERS 4 /* <= SPRIG_TRANSFER_SERVER_MAX_SOCKS */
#define MAX_SESSIONS  4
#define WINDOW_CHUNKS 16
#define KIB           1024u
#define FLASH_SIZE    (0x80000u + 16u * KIB)
#define BLOCK         (4u * KIB)
#define NPARTS        3
#define NS_PORT       69 /* sprig-transfer's port on a netstack node */

/* ---- the simulated chip ---------------------------------------------------------------------- */

typedef struct chip {
    uint8_t *mem; /* FLASH_SIZE bytes (a copy of FILE when file-backed) */
    int fd;       /* -1: RAM only */
    char *meta_path;
    uint8_t committed[NPARTS];
    uint32_t length[NPARTS];
    unsigned long erases, programs, program_bytes, violations, io_errors;
} chip;

static sprig_transfer_flash_region parts[NPARTS] = {
    {0, "bootloader", 0x00000u, 64u * KIB, BLOCK, 256u, SPRIG_TRANSFER_ACCESS_READ},
    {0, "firmware", 0x10000u, 448u * KIB, BLOCK, 256u,
     SPRIG_TRANSFER_ACCESS_READ | SPRIG_TRANSFER_ACCESS_WRITE},
    {0, "config", 0x80000u, 16u * KIB, BLOCK, 16u,
     SPRIG_TRANSFER_ACCESS_READ | SPRIG_TRANSFER_ACCESS_WRITE},
};

static int part_index(const sprig_transfer_flash_region *r)
{
    return (int)(r - parts);
}

static sprig_status violation(chip *c, const char *what, uint32_t addr, size_t len)
{
    c->violations++;
    fprintf(stderr, "%s: flash rule violated: %s at 0x%05" PRIx32 " + %zu\n", PROG, what, addr,
            len);
    return SPRIG_STATUS_FAILED_PRECONDITION;
}

/* Write the changed range back to FILE. */
static sprig_status chip_sync(chip *c, uint32_t addr, size_t len)
{
    if (c->fd >= 0 && pwrite(c->fd, c->mem + addr, len, (off_t)addr) != (ssize_t)len) {
        c->io_errors++;
        return SPRIG_STATUS_DATA_LOSS;
    }
    return SPRIG_STATUS_OK;
}

static sprig_status chip_read(void *dev, uint32_t addr, uint8_t *buf, size_t len)
{
    chip *c = dev;
    if (addr > FLASH_SIZE || len > FLASH_SIZE - addr) {
        return violation(c, "read beyond the chip", addr, len);
    }
    memcpy(buf, c->mem + addr, len);
    return SPRIG_STATUS_OK;
}

static sprig_status chip_erase(void *dev, uint32_t addr, uint32_t len)
{
    chip *c = dev;
    if (addr % BLOCK != 0 || len != BLOCK || addr >= FLASH_SIZE) {
        return violation(c, "erase not one aligned block", addr, len);
    }
    memset(c->mem + addr, 0xFF, len);
    c->erases++;
    return chip_sync(c, addr, len);
}

static sprig_status chip_program(void *dev, uint32_t addr, const uint8_t *data, size_t len)
{
    chip *c = dev;
    const sprig_transfer_flash_region *r = NULL;
    for (int i = 0; i < NPARTS; i++) {
        if (addr >= parts[i].base && addr - parts[i].base < parts[i].size) {
            r = &parts[i];
        }
    }
    if (r == NULL || len == 0 || addr % r->page_size != 0 || len % r->page_size != 0 ||
        len > r->base + r->size - addr) {
        return violation(c, "program not whole aligned pages", addr, len);
    }
    for (size_t i = 0; i < len; i++) {
        if (c->mem[addr + i] != 0xFF) {
            return violation(c, "program into bytes not erased", addr, len);
        }
    }
    memcpy(c->mem + addr, data, len);
    c->programs++;
    c->program_bytes += len;
    return chip_sync(c, addr, len);
}

static sprig_status meta_save(chip *c)
{
    if (c->meta_path == NULL) {
        return SPRIG_STATUS_OK;
    }
    FILE *f = fopen(c->meta_path, "w");
    if (f == NULL) {
        return SPRIG_STATUS_DATA_LOSS;
    }
    for (int i = 0; i < NPARTS; i++) {
        if (c->committed[i]) {
            fprintf(f, "%s %" PRIu32 "\n", parts[i].name, c->length[i]);
        }
    }
    return fclose(f) == 0 ? SPRIG_STATUS_OK : SPRIG_STATUS_DATA_LOSS;
}

static sprig_status chip_commit(void *dev, const sprig_transfer_flash_region *r, uint32_t len)
{
    chip *c = dev;
    int i = part_index(r);
    c->committed[i] = 1;
    c->length[i] = len;
    return meta_save(c);
}

static sprig_status chip_invalidate(void *dev, const sprig_transfer_flash_region *r)
{
    chip *c = dev;
    c->committed[part_index(r)] = 0;
    return meta_save(c);
}

static sprig_status chip_length(void *dev, const sprig_transfer_flash_region *r, uint32_t *len)
{
    chip *c = dev;
    int i = part_index(r);
    if (!c->committed[i]) {
        return SPRIG_STATUS_NOT_FOUND;
    }
    *len = c->length[i];
    return SPRIG_STATUS_OK;
}

static const sprig_transfer_flash_ops chip_ops = {chip_read,   chip_erase,      chip_program,
                                                  chip_commit, chip_invalidate, chip_length};

/* A factory-programmed bootloader: a pattern, committed at its full size. */
static void chip_factory(chip *c)
{
    memset(c->mem, 0xFF, FLASH_SIZE);
    const sprig_transfer_flash_region *boot = &parts[0];
    uint32_t x = 0x5eed;
    for (uint32_t i = 0; i < boot->size; i++) {
        x = x * 1103515245u + 12345u;
        c->mem[boot->base + i] = (uint8_t)(x >> 16);
    }
    c->committed[0] = 1;
    c->length[0] = boot->size;
}

static sprig_status chip_open(chip *c, const char *path)
{
    c->fd = -1;
    c->mem = malloc(FLASH_SIZE);
    if (c->mem == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    chip_factory(c);
    if (path == NULL) {
        return SPRIG_STATUS_OK;
    }
    c->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (c->fd < 0) {
        return SPRIG_STATUS_NOT_FOUND;
    }
    size_t n = strlen(path) + sizeof(".meta");
    c->meta_path = malloc(n);
    if (c->meta_path == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    snprintf(c->meta_path, n, "%s.meta", path);
    ssize_t got = pread(c->fd, c->mem, FLASH_SIZE, 0);
    if (got == 0) { /* a new file: the factory image */
        if (chip_sync(c, 0, FLASH_SIZE) != SPRIG_STATUS_OK) {
            return SPRIG_STATUS_DATA_LOSS;
        }
        return meta_save(c);
    }
    if (got != (ssize_t)FLASH_SIZE) {
        fprintf(stderr, "%s: %s is not a %u-byte flash image\n", PROG, path, FLASH_SIZE);
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(c->committed, 0, sizeof(c->committed));
    FILE *f = fopen(c->meta_path, "r");
    char name[64];
    uint32_t len = 0;
    while (f != NULL && fscanf(f, "%63s %" SCNu32, name, &len) == 2) {
        for (int i = 0; i < NPARTS; i++) {
            if (strcmp(name, parts[i].name) == 0 && len <= parts[i].size) {
                c->committed[i] = 1;
                c->length[i] = len;
            }
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return SPRIG_STATUS_OK;
}

static void chip_close(chip *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    free(c->meta_path);
    free(c->mem);
}

/* ---- the served handler: the flash partitions, plus the name resource (accepted, ignored) ---- */

typedef struct device {
    sprig_transfer_handler handler;
    sprig_transfer_flash_handler flash;
    uint8_t page_buf[256];
    sprig_transfer_flash_read reads[8];
    chip chip;
    int name_open;
    void *writing; /* the open write's handle */
    const char *writing_name;
    unsigned long erases_seen, programs_seen, bytes_seen;
} device;

static sprig_status dev_open(void *ctx, uint32_t id, sprig_transfer_access access, uint64_t offset,
                             void **handle, uint64_t *size)
{
    device *d = ctx;
    if (id == SPRIG_TRANSFER_NAME_RESOURCE && access == SPRIG_TRANSFER_ACCESS_WRITE) {
        d->name_open++;
        *handle = &d->name_open;
        return SPRIG_STATUS_OK;
    }
    const sprig_transfer_handler *f = &d->flash.handler;
    sprig_status st = f->ops->open(f->ctx, id, access, offset, handle, size);
    if (st == SPRIG_STATUS_OK && access == SPRIG_TRANSFER_ACCESS_WRITE) {
        d->writing = *handle;
        d->erases_seen = d->chip.erases;
        d->programs_seen = d->chip.programs;
        d->bytes_seen = d->chip.program_bytes;
        for (int i = 0; i < NPARTS; i++) {
            if (parts[i].id == id) {
                d->writing_name = parts[i].name;
            }
        }
    }
    return st;
}

static sprig_status dev_read(void *ctx, void *handle, uint64_t offset, uint8_t *buf, size_t cap,
                             size_t *out_len)
{
    device *d = ctx;
    const sprig_transfer_handler *f = &d->flash.handler;
    return f->ops->read(f->ctx, handle, offset, buf, cap, out_len);
}

static sprig_status dev_write(void *ctx, void *handle, uint64_t offset, const uint8_t *data,
                              size_t len)
{
    device *d = ctx;
    if (handle == &d->name_open) {
        return offset + len <= SPRIG_TRANSFER_NAME_MAX ? SPRIG_STATUS_OK
                                                       : SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    const sprig_transfer_handler *f = &d->flash.handler;
    return f->ops->write(f->ctx, handle, offset, data, len);
}

static sprig_status dev_close(void *ctx, void *handle, sprig_status status)
{
    device *d = ctx;
    if (handle == &d->name_open) {
        d->name_open--;
        return SPRIG_STATUS_OK;
    }
    const sprig_transfer_handler *f = &d->flash.handler;
    sprig_status st = f->ops->close(f->ctx, handle, status);
    if (handle == d->writing) {
        /* one line per write, printed before the peer learns the result */
        chip *c = &d->chip;
        d->writing = NULL;
        printf("%s: %s: write %s, %s: %lu block(s) erased, %lu program(s), %lu byte(s) "
               "programmed (total: %lu erases, %lu programs)\n",
               PROG, d->writing_name,
               status == SPRIG_STATUS_OK && st == SPRIG_STATUS_OK ? "committed" : "discarded",
               sprig_status_str(status == SPRIG_STATUS_OK ? st : status),
               c->erases - d->erases_seen, c->programs - d->programs_seen,
               c->program_bytes - d->bytes_seen, c->erases, c->programs);
        fflush(stdout);
    }
    return st;
}

static const sprig_transfer_handler_ops dev_ops = {dev_open, dev_read, dev_write, dev_close, NULL};

/* ---- serving --------------------------------------------------------------------------------- */

typedef struct server {
    sprig_os_loop ol;
    sprig_os_backend backend;
    sprig_os_fd sig_watch;
    int sfd;
    device dev;
    sprig_transfer_server xs;
#ifdef FLASH_WITH_NETSTACK
    sprig_ns_os_set ns; /* serial: and sprig+udp: URLs */
#endif
    int verbose;
} server;

static server srv;

static void on_signal(sprig_os_fd *watch, uint32_t events)
{
    struct signalfd_siginfo si;
    (void)events;
    while (read(watch->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        sprig_loop_stop(&srv.ol.loop);
    }
}

static void on_server_event(const sprig_transfer_server_info *info, void *user)
{
    server *s = user;
    char line[160];
    sprig_transfer_server_describe(info, line, sizeof(line));
    if (info->event == SPRIG_TRANSFER_SERVER_LISTENER_CLOSED) {
        fprintf(stderr, "%s: %s\n", PROG, line);
        sprig_loop_stop(&s->ol.loop);
    } else if (info->event != SPRIG_TRANSFER_SERVER_ERROR && s->verbose) {
        printf("%s: %s\n", PROG, line); /* a failed accept: the device goes on serving */
        fflush(stdout);
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: %s --listen URL [--listen URL ...] [--flash FILE] [--verbose]\n", PROG);
    return 2;
}

int main(int argc, char **argv)
{
    server *s = &srv;
    const char *urls[MAX_LISTENERS];
    size_t nurls = 0;
    const char *flash_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc && nurls < MAX_LISTENERS) {
            urls[nurls++] = argv[++i];
        } else if (strcmp(argv[i], "--flash") == 0 && i + 1 < argc) {
            flash_path = argv[++i];
        } else if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0) {
            s->verbose = 1;
        } else {
            return usage();
        }
    }
    if (nurls == 0) {
        return usage();
    }
    for (int i = 0; i < NPARTS; i++) {
        parts[i].id = sprig_transfer_name_id(parts[i].name);
    }
    int rc = 1;
    sprig_status st = chip_open(&s->dev.chip, flash_path);
    if (st != SPRIG_STATUS_OK) {
        fprintf(stderr, "%s: flash %s: %s\n", PROG, flash_path ? flash_path : "(RAM)",
                sprig_status_str(st));
        chip_close(&s->dev.chip);
        return 1;
    }
    sprig_transfer_flash_cfg fc = {
        .ops = &chip_ops,
        .dev = &s->dev.chip,
        .regions = parts,
        .count = NPARTS,
        .page_buf = s->dev.page_buf,
        .page_cap = sizeof(s->dev.page_buf),
        .reads = s->dev.reads,
        .max_reads = sizeof(s->dev.reads) / sizeof(s->dev.reads[0]),
    };
    if ((st = sprig_transfer_flash_handler_init(&s->dev.flash, &fc)) != SPRIG_STATUS_OK) {
        fprintf(stderr, "%s: partition table: %s\n", PROG, sprig_status_str(st));
        chip_close(&s->dev.chip);
        return 1;
    }
    s->dev.handler.ops = &dev_ops;
    s->dev.handler.ctx = &s->dev;

    signal(SIGPIPE, SIG_IGN);
    s->sfd = -1;
    if (sprig_os_loop_init(&s->ol) != SPRIG_STATUS_OK) {
        chip_close(&s->dev.chip);
        return 1;
    }
    int backend = sprig_os_backend_init(&s->backend, &s->ol, NULL) == SPRIG_STATUS_OK;
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    s->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    int sig = s->sfd >= 0 && sprig_os_loop_add_fd(&s->ol, &s->sig_watch, s->sfd, SPRIG_OS_EV_IN,
                                                  on_signal, s) == SPRIG_STATUS_OK;
    if (!sig) {
        sigprocmask(SIG_UNBLOCK, &mask, NULL);
    }
    sprig_transfer_server_cfg xc = {
        .loop = &s->ol.loop,
        .handler = &s->dev.handler,
        .max_sessions = MAX_SESSIONS,
        .window_chunks = WINDOW_CHUNKS,
        .on_event = on_server_event,
        .user = s,
    };
#ifdef FLASH_WITH_NETSTACK
    sprig_ns_os_set_init(&s->ns, &s->ol, NULL);
#endif
    if (backend && sprig_transfer_server_init(&s->xs, &xc) != SPRIG_STATUS_OK) {
        goto out;
    }
    for (size_t i = 0; backend && i < nurls; i++) {
        sprig_sock *l = NULL;
        char lurl[512];
        snprintf(lurl, sizeof(lurl), "%s", urls[i]);
        st = SPRIG_STATUS_OK;
#ifdef FLASH_WITH_NETSTACK
        /* serial: / sprig+udp: open a netstack endpoint and become sprig://NODE:69 */
        st = sprig_ns_os_set_url(&s->ns, urls[i], true, NS_PORT, lurl, sizeof(lurl));
        if (st != SPRIG_STATUS_OK) {
            fprintf(stderr, "%s: %s: %s\n", PROG, urls[i], sprig_ns_os_set_error(&s->ns));
        }
#endif
        if (st == SPRIG_STATUS_OK) {
            /* the scheme's own type: SEQPACKET for unix, tcp and sprig, DGRAM for udp */
            st = sprig_sock_listen(&s->ol.loop, lurl, SPRIG_SOCK_DEFAULT, &l);
        }
        if (st == SPRIG_STATUS_OK) {
            st = sprig_transfer_server_add(&s->xs, l);
        }
        if (st != SPRIG_STATUS_OK) {
            fprintf(stderr, "%s: listen on %s: %s\n", PROG, urls[i], sprig_status_str(st));
            goto out;
        }
        char where[600];
        sprig_os_bound_url(lurl, l, where, sizeof(where));
        printf("%s: listening on %s%s%s\n", PROG, where, strcmp(lurl, urls[i]) != 0 ? " via " : "",
               strcmp(lurl, urls[i]) != 0 ? urls[i] : "");
    }
    if (!backend) {
        goto out;
    }
    printf("%s: flash %u KiB (%s), partitions:\n", PROG, FLASH_SIZE / KIB,
           flash_path ? flash_path : "RAM");
    for (int i = 0; i < NPARTS; i++) {
        const sprig_transfer_flash_region *r = &parts[i];
        uint32_t len = 0;
        int have = chip_length(&s->dev.chip, r, &len) == SPRIG_STATUS_OK;
        printf("  %-10s id 0x%08" PRIx32 "  0x%05" PRIx32 " %4" PRIu32 " KiB  erase %" PRIu32
               "  page %3" PRIu32 "  %s  ",
               r->name, r->id, r->base, r->size / KIB, r->erase_size, r->page_size,
               (r->access & SPRIG_TRANSFER_ACCESS_WRITE) != 0 ? "rw" : "ro");
        if (have) {
            printf("%" PRIu32 " bytes committed\n", len);
        } else {
            printf("empty\n");
        }
    }
    fflush(stdout);
    st = sprig_loop_run(&s->ol.loop);
    rc = st == SPRIG_STATUS_OK ? 0 : 1;
    printf("%s: stopped after %lu transfer(s): %lu erases, %lu programs, %lu rule violations\n",
           PROG, s->xs.transfers, s->dev.chip.erases, s->dev.chip.programs, s->dev.chip.violations);
out:
    sprig_transfer_server_deinit(&s->xs);
    (void)sprig_loop_run_once(&s->ol.loop, 0);
#ifdef FLASH_WITH_NETSTACK
    sprig_ns_os_set_close(&s->ns, SPRIG_TIME_MS(2000)); /* closed connections finish */
#endif
    if (sig) {
        sprig_os_loop_del_fd(&s->ol, &s->sig_watch);
    }
    if (s->sfd >= 0) {
        close(s->sfd);
    }
    if (backend) {
        sprig_os_backend_deinit(&s->backend);
    }
    sprig_os_loop_deinit(&s->ol);
    chip_close(&s->dev.chip);
    return rc;
}
