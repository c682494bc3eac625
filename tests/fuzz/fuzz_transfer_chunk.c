/*
 * fuzz_transfer_chunk — the transfer chunk decoder and the DGRAM trailer check on arbitrary
 * bytes. Invariants checked: unseal either refuses (length unchanged) or strips exactly the
 * trailer; the data lies inside the input; whatever decodes re-encodes within the documented
 * bound and decodes again to the same chunk (fields, values and data bytes), also when sealed
 * (field 1003 is skipped), and its seal is accepted by unseal.
 */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "sprig/transfer.h"

static void same(const sprig_transfer_chunk *a, const sprig_transfer_chunk *b)
{
    if (a->fields != b->fields || a->type != b->type || a->transfer_id != b->transfer_id ||
        a->pending_bytes != b->pending_bytes ||
        a->max_chunk_size_bytes != b->max_chunk_size_bytes ||
        a->min_delay_microseconds != b->min_delay_microseconds || a->offset != b->offset ||
        a->remaining_bytes != b->remaining_bytes || a->status != b->status ||
        a->window_end_offset != b->window_end_offset || a->resource_id != b->resource_id ||
        a->session_id != b->session_id || a->protocol_version != b->protocol_version ||
        a->desired_session_id != b->desired_session_id || a->initial_offset != b->initial_offset ||
        a->crc32 != b->crc32 || a->direction != b->direction || a->data_len != b->data_len ||
        (a->data_len > 0 && memcmp(a->data, b->data, a->data_len) != 0)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len = size;
    sprig_status us = sprig_transfer_chunk_unseal(data, &len);
    if (us == SPRIG_STATUS_OK ? len != size - SPRIG_TRANSFER_TRAILER
                              : (us != SPRIG_STATUS_DATA_LOSS || len != size)) {
        abort();
    }
    sprig_transfer_chunk c;
    if (sprig_transfer_chunk_decode(data, size, &c) != SPRIG_STATUS_OK) {
        return 0;
    }
    if (c.data_len > 0 &&
        (c.data < data || c.data_len > size || c.data > data + size - c.data_len)) {
        abort();
    }
    size_t cap = c.data_len + SPRIG_TRANSFER_DATA_HEADROOM + SPRIG_TRANSFER_CHUNK_TAILROOM +
                 SPRIG_TRANSFER_TRAILER;
    uint8_t *out = malloc(cap);
    if (out == NULL) {
        return 0;
    }
    size_t n = 0;
    if (sprig_transfer_chunk_encode(&c, out, cap, &n) != SPRIG_STATUS_OK || n > cap) {
        abort();
    }
    sprig_transfer_chunk d;
    if (sprig_transfer_chunk_decode(out, n, &d) != SPRIG_STATUS_OK) {
        abort();
    }
    same(&c, &d);
    sprig_transfer_chunk_seal(out, n);
    len = n + SPRIG_TRANSFER_TRAILER;
    if (sprig_transfer_chunk_unseal(out, &len) != SPRIG_STATUS_OK || len != n ||
        sprig_transfer_chunk_decode(out, n + SPRIG_TRANSFER_TRAILER, &d) != SPRIG_STATUS_OK) {
        abort();
    }
    same(&c, &d);
    free(out);
    return 0;
}
