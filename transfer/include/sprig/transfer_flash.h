/*
 * sprig/transfer_flash.h — a transfer resource handler for flash partitions: resources are regions
 * of a device reached through callbacks (read, erase, program), with erase-before-write blocks and
 * a program granularity (docs/transfer.md, "Flash handler").
 *
 * Contract
 *   Memory: no malloc. The region table, the device callbacks, a page buffer and the read slots
 *     are caller storage; the table may live in ROM (it is only read).
 *   Regions: each is {id, base, size, erase_size, page_size, access}. erase_size and page_size are
 *     powers of two, page_size <= erase_size, size > 0, base and size are multiples of erase_size
 * (a partition with mixed sector sizes is split into regions, or given its largest sector size).
 *   Writes (one at a time per handler: it has one page buffer): incoming bytes are gathered in the
 *     page buffer and programmed as whole pages at page-aligned addresses; the last page is padded
 *     with 0xFF. Each erase block is erased once, lazily, just before the first program into it:
 *     a transfer erases exactly the blocks its bytes reach, never one twice. Data beyond the region
 *     is refused before anything of that chunk is programmed (RESOURCE_EXHAUSTED from write; the
 *     engine ends the transfer with DATA_LOSS). A device error fails the write (DATA_LOSS).
 *   Commit: close(OK) programs the padded last page, then calls the optional commit hook with the
 *     region and the length written (bytes from the region's start); a failure there makes the
 *     transfer DATA_LOSS. Nothing else ever claims data written.
 *   Nothing claimed written: before the first erase of a write the optional invalidate hook runs
 *     (so a power loss mid-transfer leaves no committed marker over half-written flash). A write
 *     that ends with any other status never calls commit; if it erased anything, the handler then
 *     either relies on that invalidation (when the device has the hook) or, without the hook,
 *     erases the region's first block again if it programmed into it, so no partial image
 *     remains at the region's start (e.g. a bootloader finds no valid header). A write that failed
 *     before erasing anything leaves the old content untouched.
 *   Resume: a write may start at offset N > 0 only when the device has the invalidate hook (the
 *     bytes before N survive a failure then), N is a multiple of erase_size and N <= size; the
 *     bytes before N are kept as they are, the length committed is the end offset. Otherwise
 *     UNIMPLEMENTED. The engine's CRC covers the resumed part only: verify the whole image in the
 *     commit hook if that matters.
 *   Reads: bounded by the region, or by the committed length when the device has the length hook
 *     (NOT_FOUND from it: nothing committed, the read is refused with NOT_FOUND). A read starting
 *     beyond the bound is OUT_OF_RANGE.
 *   Busy: a region being written can be neither read nor written by another transfer, and one
 *     being read cannot be written (UNAVAILABLE); a second write anywhere is UNAVAILABLE (one page
 *     buffer). Reads need a free read slot (RESOURCE_EXHAUSTED otherwise).
 *   Statuses from open: NOT_FOUND (no such id), PERMISSION_DENIED (access not allowed),
 *     UNAVAILABLE (busy), UNIMPLEMENTED (write offset not allowed), OUT_OF_RANGE (read offset
 *     beyond the bound), RESOURCE_EXHAUSTED (no read slot), DATA_LOSS (device error).
 *   Device callbacks run on the loop thread and must not block for long: an erase of one block or
 *     a program of a few pages per call. Any status other than OK from them is a device error.
 */
#ifndef SPRIG_TRANSFER_FLASH_H
#define SPRIG_TRANSFER_FLASH_H

#include <stddef.h>
#include <stdint.h>

#include "sprig/status.h"
#include "sprig/transfer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sprig_transfer_flash_region {
    uint32_t id;         /* resource id (e.g. the 65599 hash of `name`, docs/transfer.md) */
    const char *name;    /* optional, for tools and logs (not used by the handler) */
    uint32_t base;       /* device address of the region's first byte */
    uint32_t size;       /* bytes */
    uint32_t erase_size; /* erase block */
    uint32_t page_size;  /* program granularity */
    uint8_t access;      /* SPRIG_TRANSFER_ACCESS_* bits allowed */
} sprig_transfer_flash_region;

/* The device. `dev` is the cfg's. read, erase and program are required (erase and program only
 * if a region is writable); the hooks are optional (NULL). */
typedef struct sprig_transfer_flash_ops {
    /* `len` bytes at device address `addr` (inside one region). */
    sprig_status (*read)(void *dev, uint32_t addr, uint8_t *buf, size_t len);
    /* Erase the block at `addr` (aligned to the region's erase_size), `len` == erase_size. */
    sprig_status (*erase)(void *dev, uint32_t addr, uint32_t len);
    /* Program `len` bytes (a non-zero multiple of page_size, never crossing an erase block) at
     * page-aligned `addr`, into pages erased earlier in this transfer. */
    sprig_status (*program)(void *dev, uint32_t addr, const uint8_t *data, size_t len);
    /* A write completed: `len` bytes from the region's start are valid. */
    sprig_status (*commit)(void *dev, const sprig_transfer_flash_region *r, uint32_t len);
    /* The region's content is about to change: forget any committed marker. */
    sprig_status (*invalidate)(void *dev, const sprig_transfer_flash_region *r);
    /* The committed length (OK), NOT_FOUND if nothing is committed; bounds reads. */
    sprig_status (*length)(void *dev, const sprig_transfer_flash_region *r, uint32_t *len);
} sprig_transfer_flash_ops;

/* One open read (caller storage; private). */
typedef struct sprig_transfer_flash_read {
    const sprig_transfer_flash_region *region;
    uint32_t end; /* bytes readable from the region's start */
    uint8_t in_use;
} sprig_transfer_flash_read;

/* What the handler did to the device (for tests and logs); zeroed by init only. */
typedef struct sprig_transfer_flash_stats {
    uint32_t erases;   /* erase calls (one block each) */
    uint32_t programs; /* program calls */
    uint32_t bytes;    /* bytes programmed (padding included) */
    uint32_t commits;
    uint32_t discards; /* writes that ended without commit */
} sprig_transfer_flash_stats;

typedef struct sprig_transfer_flash_cfg {
    const sprig_transfer_flash_ops *ops;
    void *dev;
    const sprig_transfer_flash_region *regions;
    size_t count;
    uint8_t *page_buf; /* >= the largest page_size of a writable region */
    size_t page_cap;
    sprig_transfer_flash_read *reads; /* concurrent reads (may be 0: then every read is refused) */
    size_t max_reads;
} sprig_transfer_flash_cfg;

typedef struct sprig_transfer_flash_handler {
    sprig_transfer_handler handler; /* pass &fh.handler */
    sprig_transfer_flash_cfg cfg;
    sprig_transfer_flash_stats stats;
    /* the open write (private) */
    const sprig_transfer_flash_region *w_region;
    uint32_t w_next;   /* next region offset expected */
    uint32_t w_erased; /* blocks below this region offset are erased by this transfer */
    uint32_t w_start;  /* where the transfer started */
    uint32_t w_fill;   /* bytes gathered in the page buffer */
    uint8_t w_failed;  /* a device error happened */
    uint8_t w_touched; /* something was erased */
    uint8_t w_first;   /* the region's first block was programmed */
} sprig_transfer_flash_handler;

/* INVALID_ARGUMENT for missing ops or storage, a region breaking the rules above (sizes not powers
 * of two, misaligned base or size, page_size > page_cap for a writable region, a last byte
 * beyond the 32-bit address space) or two regions with one id. */
sprig_status sprig_transfer_flash_handler_init(sprig_transfer_flash_handler *fh,
                                               const sprig_transfer_flash_cfg *cfg);

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_TRANSFER_FLASH_H */
