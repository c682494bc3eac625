/*
 * flash_handler.c — sprig_transfer_flash_handler: resources are flash regions reached through
 * device callbacks (sprig/transfer_flash.h, docs/transfer.md "Flash handler"). Portable: no
 * malloc, no division (sizes are powers of two).
 */
#include "sprig/transfer_flash.h"

#include <string.h>

typedef sprig_transfer_flash_handler flash;
typedef sprig_transfer_flash_region region;

static int pow2(uint32_t v)
{
    return v != 0 && (v & (v - 1u)) == 0;
}

static const region *find(const flash *fh, uint32_t id)
{
    for (size_t i = 0; i < fh->cfg.count; i++) {
        if (fh->cfg.regions[i].id == id) {
            return &fh->cfg.regions[i];
        }
    }
    return NULL;
}

static int being_read(const flash *fh, const region *r)
{
    for (size_t i = 0; i < fh->cfg.max_reads; i++) {
        if (fh->cfg.reads[i].in_use && fh->cfg.reads[i].region == r) {
            return 1;
        }
    }
    return 0;
}

/* ---- reads ----------------------------------------------------------------------------------- */

static sprig_status open_read(flash *fh, const region *r, uint64_t offset, void **handle,
                              uint64_t *size)
{
    if (fh->w_region == r) {
        return SPRIG_STATUS_UNAVAILABLE;
    }
    sprig_transfer_flash_read *slot = NULL;
    for (size_t i = 0; i < fh->cfg.max_reads && slot == NULL; i++) {
        if (!fh->cfg.reads[i].in_use) {
            slot = &fh->cfg.reads[i];
        }
    }
    if (slot == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    uint32_t end = r->size;
    if (fh->cfg.ops->length != NULL) {
        sprig_status st = fh->cfg.ops->length(fh->cfg.dev, r, &end);
        if (st == SPRIG_STATUS_NOT_FOUND) {
            return st; /* nothing committed */
        }
        if (st != SPRIG_STATUS_OK) {
            return SPRIG_STATUS_DATA_LOSS;
        }
        end = end < r->size ? end : r->size;
    }
    if (offset > end) {
        return SPRIG_STATUS_OUT_OF_RANGE;
    }
    slot->region = r;
    slot->end = end;
    slot->in_use = 1;
    *handle = slot;
    *size = end;
    return SPRIG_STATUS_OK;
}

static sprig_status flash_read(void *ctx, void *handle, uint64_t offset, uint8_t *buf, size_t cap,
                               size_t *out_len)
{
    const flash *fh = ctx;
    const sprig_transfer_flash_read *rd = handle;
    if (offset > rd->end) {
        return SPRIG_STATUS_OUT_OF_RANGE;
    }
    uint32_t left = rd->end - (uint32_t)offset;
    size_t n = cap < left ? cap : left;
    if (n > 0 && fh->cfg.ops->read(fh->cfg.dev, rd->region->base + (uint32_t)offset, buf, n) !=
                     SPRIG_STATUS_OK) {
        return SPRIG_STATUS_DATA_LOSS;
    }
    *out_len = n;
    return SPRIG_STATUS_OK;
}

/* ---- writes ---------------------------------------------------------------------------------- */

static sprig_status open_write(flash *fh, const region *r, uint64_t offset, void **handle)
{
    if (fh->w_region != NULL || being_read(fh, r)) {
        return SPRIG_STATUS_UNAVAILABLE;
    }
    if (offset != 0 && (fh->cfg.ops->invalidate == NULL || offset > r->size ||
                        ((uint32_t)offset & (r->erase_size - 1u)) != 0)) {
        return SPRIG_STATUS_UNIMPLEMENTED;
    }
    fh->w_region = r;
    fh->w_start = fh->w_next = fh->w_erased = (uint32_t)offset;
    fh->w_fill = 0;
    fh->w_failed = fh->w_touched = fh->w_first = 0;
    *handle = fh;
    return SPRIG_STATUS_OK;
}

/* Program whole pages at region offset `at` (len a multiple of the page size), erasing the blocks
 * they reach first and never crossing an erase block in one call. */
static sprig_status program(flash *fh, uint32_t at, const uint8_t *data, uint32_t len)
{
    const region *r = fh->w_region;
    const sprig_transfer_flash_ops *ops = fh->cfg.ops;
    while (len > 0) {
        if (at >= fh->w_erased) { /* the first program into this block */
            if (!fh->w_touched && ops->invalidate != NULL &&
                ops->invalidate(fh->cfg.dev, r) != SPRIG_STATUS_OK) {
                return SPRIG_STATUS_DATA_LOSS;
            }
            fh->w_touched = 1;
            fh->stats.erases++;
            if (ops->erase(fh->cfg.dev, r->base + fh->w_erased, r->erase_size) != SPRIG_STATUS_OK) {
                return SPRIG_STATUS_DATA_LOSS;
            }
            fh->w_erased += r->erase_size;
        }
        uint32_t n = fh->w_erased - at;
        n = n < len ? n : len;
        fh->stats.programs++;
        fh->stats.bytes += n;
        if (ops->program(fh->cfg.dev, r->base + at, data, n) != SPRIG_STATUS_OK) {
            return SPRIG_STATUS_DATA_LOSS;
        }
        if (at < r->erase_size) {
            fh->w_first = 1;
        }
        at += n;
        data += n;
        len -= n;
    }
    return SPRIG_STATUS_OK;
}

static sprig_status flash_write(void *ctx, void *handle, uint64_t offset, const uint8_t *data,
                                size_t len)
{
    flash *fh = ctx;
    const region *r = fh->w_region;
    (void)handle;
    if (fh->w_failed || offset != fh->w_next) {
        return SPRIG_STATUS_DATA_LOSS;
    }
    if (len > r->size - fh->w_next) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED; /* beyond the region: nothing of it is written */
    }
    uint32_t page = r->page_size;
    uint8_t *buf = fh->cfg.page_buf;
    uint32_t at = fh->w_next - fh->w_fill; /* region offset of the page being gathered */
    uint32_t left = (uint32_t)len;
    sprig_status st = SPRIG_STATUS_OK;
    fh->w_next += left;
    while (left > 0 && st == SPRIG_STATUS_OK) {
        if (fh->w_fill == 0 && left >= page) { /* whole pages straight from the chunk */
            uint32_t n = left & ~(page - 1u);
            st = program(fh, at, data, n);
            at += n;
            data += n;
            left -= n;
            continue;
        }
        uint32_t n = page - fh->w_fill;
        n = n < left ? n : left;
        memcpy(buf + fh->w_fill, data, n);
        fh->w_fill += n;
        data += n;
        left -= n;
        if (fh->w_fill == page) {
            st = program(fh, at, buf, page);
            at += page;
            fh->w_fill = 0;
        }
    }
    if (st != SPRIG_STATUS_OK) {
        fh->w_failed = 1;
    }
    return st;
}

static sprig_status close_write(flash *fh, sprig_status status)
{
    const region *r = fh->w_region;
    const sprig_transfer_flash_ops *ops = fh->cfg.ops;
    sprig_status st = fh->w_failed ? SPRIG_STATUS_DATA_LOSS : SPRIG_STATUS_OK;
    if (status == SPRIG_STATUS_OK && st == SPRIG_STATUS_OK) {
        if (fh->w_fill > 0) { /* the last page, padded with erased bytes */
            memset(fh->cfg.page_buf + fh->w_fill, 0xFF, r->page_size - fh->w_fill);
            st = program(fh, fh->w_next - fh->w_fill, fh->cfg.page_buf, r->page_size);
        }
        if (st == SPRIG_STATUS_OK && ops->commit != NULL &&
            ops->commit(fh->cfg.dev, r, fh->w_next) != SPRIG_STATUS_OK) {
            st = SPRIG_STATUS_DATA_LOSS;
        }
    } else {
        st = SPRIG_STATUS_CANCELLED; /* not committed, whatever the reason */
    }
    if (st == SPRIG_STATUS_OK) {
        fh->stats.commits++;
    } else {
        fh->stats.discards++;
        if (fh->w_first && ops->invalidate == NULL) { /* no partial image at the start */
            fh->stats.erases++;
            (void)ops->erase(fh->cfg.dev, r->base, r->erase_size);
        }
    }
    fh->w_region = NULL;
    return status == SPRIG_STATUS_OK ? st : SPRIG_STATUS_OK;
}

/* ---- the handler ----------------------------------------------------------------------------- */

static sprig_status flash_open(void *ctx, uint32_t id, sprig_transfer_access access,
                               uint64_t offset, void **handle, uint64_t *size)
{
    flash *fh = ctx;
    const region *r = find(fh, id);
    if (r == NULL) {
        return SPRIG_STATUS_NOT_FOUND;
    }
    if ((r->access & (uint8_t)access) == 0) {
        return SPRIG_STATUS_PERMISSION_DENIED;
    }
    if (access == SPRIG_TRANSFER_ACCESS_WRITE) {
        return open_write(fh, r, offset, handle);
    }
    return open_read(fh, r, offset, handle, size);
}

static sprig_status flash_write_or_fail(void *ctx, void *handle, uint64_t offset,
                                        const uint8_t *data, size_t len)
{
    if (handle != ctx) {
        return SPRIG_STATUS_FAILED_PRECONDITION; /* a read handle */
    }
    return flash_write(ctx, handle, offset, data, len);
}

static sprig_status flash_close(void *ctx, void *handle, sprig_status status)
{
    flash *fh = ctx;
    if (handle == fh) {
        return close_write(fh, status);
    }
    ((sprig_transfer_flash_read *)handle)->in_use = 0;
    return SPRIG_STATUS_OK;
}

static sprig_status flash_read_or_fail(void *ctx, void *handle, uint64_t offset, uint8_t *buf,
                                       size_t cap, size_t *out_len)
{
    if (handle == ctx) {
        return SPRIG_STATUS_FAILED_PRECONDITION; /* the write handle */
    }
    return flash_read(ctx, handle, offset, buf, cap, out_len);
}

static const sprig_transfer_handler_ops flash_ops = {flash_open, flash_read_or_fail,
                                                     flash_write_or_fail, flash_close, NULL};

static sprig_status check_region(const sprig_transfer_flash_cfg *cfg, size_t i)
{
    const region *r = &cfg->regions[i];
    if (r->size == 0 || !pow2(r->erase_size) || !pow2(r->page_size) ||
        r->page_size > r->erase_size || ((r->base | r->size) & (r->erase_size - 1u)) != 0 ||
        r->base + (r->size - 1u) < r->base) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if ((r->access & SPRIG_TRANSFER_ACCESS_WRITE) != 0 &&
        (r->page_size > cfg->page_cap || cfg->ops->erase == NULL || cfg->ops->program == NULL)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    for (size_t j = 0; j < i; j++) {
        if (cfg->regions[j].id == r->id) {
            return SPRIG_STATUS_INVALID_ARGUMENT;
        }
    }
    return SPRIG_STATUS_OK;
}

sprig_status sprig_transfer_flash_handler_init(sprig_transfer_flash_handler *fh,
                                               const sprig_transfer_flash_cfg *cfg)
{
    if (fh == NULL || cfg == NULL || cfg->ops == NULL || cfg->ops->read == NULL ||
        (cfg->regions == NULL && cfg->count != 0) || (cfg->reads == NULL && cfg->max_reads != 0) ||
        (cfg->page_buf == NULL && cfg->page_cap != 0)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < cfg->count; i++) {
        if (check_region(cfg, i) != SPRIG_STATUS_OK) {
            return SPRIG_STATUS_INVALID_ARGUMENT;
        }
    }
    memset(fh, 0, sizeof(*fh));
    fh->cfg = *cfg;
    for (size_t i = 0; i < cfg->max_reads; i++) {
        cfg->reads[i].in_use = 0;
    }
    fh->handler.ops = &flash_ops;
    fh->handler.ctx = fh;
    return SPRIG_STATUS_OK;
}
