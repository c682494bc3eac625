/* The in-memory resource handler (sprig/transfer.h). */
#include <string.h>

#include "internal.h"

static sprig_status mem_open(void *ctx, uint32_t id, sprig_transfer_access access, uint64_t offset,
                             void **handle, uint64_t *size)
{
    sprig_transfer_mem_handler *mh = ctx;
    for (size_t i = 0; i < mh->count; i++) {
        sprig_transfer_mem_resource *r = &mh->resources[i];
        if (r->id != id) {
            continue;
        }
        if ((r->access & (uint8_t)access) == 0) {
            return SPRIG_STATUS_PERMISSION_DENIED;
        }
        if (r->busy) {
            return SPRIG_STATUS_UNAVAILABLE;
        }
        if (offset > r->len) {
            return SPRIG_STATUS_UNIMPLEMENTED; /* cannot start beyond the content */
        }
        r->busy = access == SPRIG_TRANSFER_ACCESS_WRITE ? 2 : 1;
        r->pending_len = (size_t)offset;
        *handle = r;
        *size = r->len;
        return SPRIG_STATUS_OK;
    }
    return SPRIG_STATUS_NOT_FOUND;
}

/* The bytes are in memory already: lend them (the engine sends them in place). */
static sprig_status mem_lend(void *ctx, void *handle, uint64_t offset, size_t len,
                             const uint8_t **ptr, size_t *avail)
{
    const sprig_transfer_mem_resource *r = handle;
    (void)ctx;
    if (offset > r->len) {
        return SPRIG_STATUS_OUT_OF_RANGE;
    }
    size_t n = r->len - (size_t)offset;
    *ptr = r->data + offset;
    *avail = n < len ? n : len;
    return SPRIG_STATUS_OK;
}

static sprig_status mem_read(void *ctx, void *handle, uint64_t offset, uint8_t *buf, size_t cap,
                             size_t *out_len)
{
    const uint8_t *p = NULL;
    sprig_status st = mem_lend(ctx, handle, offset, cap, &p, out_len);
    if (st == SPRIG_STATUS_OK && *out_len > 0) {
        memcpy(buf, p, *out_len);
    }
    return st;
}

static sprig_status mem_write(void *ctx, void *handle, uint64_t offset, const uint8_t *data,
                              size_t len)
{
    sprig_transfer_mem_resource *r = handle;
    (void)ctx;
    if (offset > r->cap || len > r->cap - (size_t)offset) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    if (r->fail_at != 0 && offset + len >= r->fail_at) {
        return SPRIG_STATUS_INTERNAL; /* injected failure */
    }
    memcpy(r->data + offset, data, len);
    r->pending_len = (size_t)offset + len;
    return SPRIG_STATUS_OK;
}

static sprig_status mem_close(void *ctx, void *handle, sprig_status status)
{
    sprig_transfer_mem_resource *r = handle;
    (void)ctx;
    if (status == SPRIG_STATUS_OK && r->busy == 2) {
        r->len = r->pending_len; /* a write commits */
    }
    r->busy = 0;
    return SPRIG_STATUS_OK;
}

static const sprig_transfer_handler_ops mem_ops = {mem_open, mem_read, mem_write, mem_close,
                                                   mem_lend};

void sprig_transfer_mem_handler_init(sprig_transfer_mem_handler *mh,
                                     sprig_transfer_mem_resource *resources, size_t count)
{
    mh->handler.ops = &mem_ops;
    mh->handler.ctx = mh;
    mh->resources = resources;
    mh->count = count;
}
