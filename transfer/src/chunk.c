/*
 * pw_transfer chunks (WIRE.md, "Transfer chunk") with nanopb.
 *
 * Decoding uses the generated pw_transfer_Chunk with `data` as a callback that only records
 * where the data lies in the input: no copy, no size limit of its own (the input's length bounds
 * it). Encoding writes field by field with nanopb's primitives: the data first (so a handler can
 * read resource bytes straight into a transmit buffer and the tag and length go in front of them
 * afterwards), then every field the chunk carries, in field-number order.
 */
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "internal.h"
#include "pw_transfer/transfer.pb.h"
#include "sprig/pbglue.h"

#define TAG_DATA ((uint8_t)((pw_transfer_Chunk_data_tag << 3) | PB_WT_STRING))

/* ---- decode ---------------------------------------------------------------------------------- */

sprig_status sprig_transfer_chunk_decode(const uint8_t *data, size_t len, sprig_transfer_chunk *out)
{
    if (out == NULL || (data == NULL && len > 0)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(out, 0, sizeof(*out));
    sprig_pb_bytes ref;
    sprig_pb_bytes_init(&ref, data, len);
    pw_transfer_Chunk m = pw_transfer_Chunk_init_zero;
    m.data.funcs.decode = sprig_pb_capture_bytes;
    m.data.arg = &ref;
    pb_istream_t is = pb_istream_from_buffer(data, len);
    if (!pb_decode(&is, pw_transfer_Chunk_fields, &m)) {
        return SPRIG_STATUS_DATA_LOSS;
    }
    uint32_t f = 0;
    /* proto3 singular fields are "present" when not zero (zero is never sent). */
    f |= m.transfer_id != 0 ? SPRIG_TRANSFER_F_TRANSFER_ID : 0u;
    f |= m.has_pending_bytes ? SPRIG_TRANSFER_F_PENDING_BYTES : 0u;
    f |= m.has_max_chunk_size_bytes ? SPRIG_TRANSFER_F_MAX_CHUNK_SIZE : 0u;
    f |= m.has_min_delay_microseconds ? SPRIG_TRANSFER_F_MIN_DELAY : 0u;
    f |= m.offset != 0 ? SPRIG_TRANSFER_F_OFFSET : 0u;
    f |= m.has_remaining_bytes ? SPRIG_TRANSFER_F_REMAINING_BYTES : 0u;
    f |= m.has_status ? SPRIG_TRANSFER_F_STATUS : 0u;
    f |= m.window_end_offset != 0 ? SPRIG_TRANSFER_F_WINDOW_END_OFFSET : 0u;
    f |= m.has_type ? SPRIG_TRANSFER_F_TYPE : 0u;
    f |= m.has_resource_id ? SPRIG_TRANSFER_F_RESOURCE_ID : 0u;
    f |= m.has_session_id ? SPRIG_TRANSFER_F_SESSION_ID : 0u;
    f |= m.has_protocol_version ? SPRIG_TRANSFER_F_PROTOCOL_VERSION : 0u;
    f |= m.has_desired_session_id ? SPRIG_TRANSFER_F_DESIRED_SESSION_ID : 0u;
    f |= m.initial_offset != 0 ? SPRIG_TRANSFER_F_INITIAL_OFFSET : 0u;
    f |= m.has_sprig_crc32 ? SPRIG_TRANSFER_F_CRC32 : 0u;
    f |= m.has_sprig_direction ? SPRIG_TRANSFER_F_DIRECTION : 0u;
    out->fields = f;
    out->type = (uint32_t)m.type;
    out->transfer_id = m.transfer_id;
    out->pending_bytes = m.pending_bytes;
    out->max_chunk_size_bytes = m.max_chunk_size_bytes;
    out->min_delay_microseconds = m.min_delay_microseconds;
    out->offset = m.offset;
    out->remaining_bytes = m.remaining_bytes;
    out->status = m.status;
    out->window_end_offset = m.window_end_offset;
    out->resource_id = m.resource_id;
    out->session_id = m.session_id;
    out->protocol_version = m.protocol_version;
    out->desired_session_id = m.desired_session_id;
    out->initial_offset = m.initial_offset;
    out->crc32 = m.sprig_crc32;
    out->direction = m.sprig_direction;
    out->data = ref.ptr;
    out->data_len = ref.len;
    return SPRIG_STATUS_OK;
}

/* ---- encode ---------------------------------------------------------------------------------- */

static bool put_varint(pb_ostream_t *os, uint32_t tag, uint64_t v)
{
    return pb_encode_tag(os, PB_WT_VARINT, tag) && pb_encode_varint(os, v);
}

/* Every field but the data, in field-number order. At most SPRIG_TRANSFER_CHUNK_TAILROOM. */
static bool put_fields(pb_ostream_t *os, const sprig_transfer_chunk *c)
{
    static const struct {
        uint16_t flag_bit;
        uint16_t tag;
        uint16_t off;
        uint8_t wide;
    } map[] = {
#define F(bit, tag, member, wide) {bit, tag, offsetof(sprig_transfer_chunk, member), wide}
        F(0, pw_transfer_Chunk_transfer_id_tag, transfer_id, 0),
        F(1, pw_transfer_Chunk_pending_bytes_tag, pending_bytes, 0),
        F(2, pw_transfer_Chunk_max_chunk_size_bytes_tag, max_chunk_size_bytes, 0),
        F(3, pw_transfer_Chunk_min_delay_microseconds_tag, min_delay_microseconds, 0),
        F(4, pw_transfer_Chunk_offset_tag, offset, 1),
        F(5, pw_transfer_Chunk_remaining_bytes_tag, remaining_bytes, 1),
        F(6, pw_transfer_Chunk_status_tag, status, 0),
        F(7, pw_transfer_Chunk_window_end_offset_tag, window_end_offset, 0),
        F(8, pw_transfer_Chunk_type_tag, type, 0),
        F(9, pw_transfer_Chunk_resource_id_tag, resource_id, 0),
        F(10, pw_transfer_Chunk_session_id_tag, session_id, 0),
        F(11, pw_transfer_Chunk_protocol_version_tag, protocol_version, 0),
        F(12, pw_transfer_Chunk_desired_session_id_tag, desired_session_id, 0),
        F(13, pw_transfer_Chunk_initial_offset_tag, initial_offset, 1),
#undef F
    };
    const uint8_t *base = (const uint8_t *)c;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if ((c->fields & (1u << map[i].flag_bit)) == 0) {
            continue;
        }
        uint64_t v;
        if (map[i].wide) {
            memcpy(&v, base + map[i].off, sizeof(v));
        } else {
            uint32_t v32;
            memcpy(&v32, base + map[i].off, sizeof(v32));
            v = v32;
        }
        if (v == 0 && (map[i].tag == pw_transfer_Chunk_transfer_id_tag ||
                       map[i].tag == pw_transfer_Chunk_offset_tag ||
                       map[i].tag == pw_transfer_Chunk_window_end_offset_tag ||
                       map[i].tag == pw_transfer_Chunk_initial_offset_tag)) {
            continue; /* proto3 singular: zero is never sent */
        }
        if (!put_varint(os, map[i].tag, v)) {
            return false;
        }
    }
    if ((c->fields & SPRIG_TRANSFER_F_CRC32) != 0) {
        if (!pb_encode_tag(os, PB_WT_32BIT, pw_transfer_Chunk_sprig_crc32_tag) ||
            !pb_encode_fixed32(os, &c->crc32)) {
            return false;
        }
    }
    if ((c->fields & SPRIG_TRANSFER_F_DIRECTION) != 0) {
        if (!put_varint(os, pw_transfer_Chunk_sprig_direction_tag, c->direction)) {
            return false;
        }
    }
    return true;
}

/* The data's tag and length into hdr[SPRIG_TRANSFER_DATA_HEADROOM]; returns the bytes. */
static size_t data_header(uint8_t *hdr, size_t len)
{
    size_t n = 0;
    uint32_t v = (uint32_t)len;
    hdr[n++] = TAG_DATA;
    while (v >= 0x80u) {
        hdr[n++] = (uint8_t)(v | 0x80u);
        v >>= 7;
    }
    hdr[n++] = (uint8_t)v;
    return n;
}

sprig_status sprig_transfer_chunk_encode(const sprig_transfer_chunk *c, uint8_t *out, size_t cap,
                                         size_t *out_len)
{
    if (out_len != NULL) {
        *out_len = 0;
    }
    if (c == NULL || out_len == NULL || (out == NULL && cap > 0) ||
        (c->data == NULL && c->data_len > 0) || c->data_len > UINT32_MAX) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    pb_ostream_t os = pb_ostream_from_buffer(out, cap);
    if (c->data_len > 0) {
        uint8_t hdr[SPRIG_TRANSFER_DATA_HEADROOM];
        size_t n = data_header(hdr, c->data_len);
        if (!pb_write(&os, hdr, n) || !pb_write(&os, c->data, c->data_len)) {
            return SPRIG_STATUS_RESOURCE_EXHAUSTED;
        }
    }
    if (!put_fields(&os, c)) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    *out_len = os.bytes_written;
    return SPRIG_STATUS_OK;
}

sprig_status sprig_transfer_chunk_wrap(sprig_buf *buf, const sprig_transfer_chunk *c)
{
    if (buf == NULL || c == NULL || sprig_buf_len(buf) > UINT32_MAX) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    size_t len = sprig_buf_len(buf);
    if (len > 0 && sprig_buf_headroom(buf) < SPRIG_TRANSFER_DATA_HEADROOM) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    pb_ostream_t os = pb_ostream_from_buffer(sprig_buf_data(buf) + len, sprig_buf_tailroom(buf));
    if (!put_fields(&os, c)) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    (void)sprig_buf_put(buf, os.bytes_written);
    if (len > 0) {
        uint8_t hdr[SPRIG_TRANSFER_DATA_HEADROOM];
        size_t n = data_header(hdr, len);
        memcpy(sprig_buf_push(buf, n), hdr, n);
    }
    return SPRIG_STATUS_OK;
}

size_t sprig_transfer_chunk_frame(const sprig_transfer_chunk *c, size_t data_len,
                                  uint8_t out[SPRIG_TRANSFER_DATA_OVERHEAD], size_t *hdr_len)
{
    size_t h = data_len > 0 ? data_header(out, data_len) : 0;
    pb_ostream_t os = pb_ostream_from_buffer(out + h, SPRIG_TRANSFER_DATA_OVERHEAD - h);
    *hdr_len = h;
    return put_fields(&os, c) ? h + os.bytes_written : 0;
}

/* ---- the DGRAM integrity trailer --------------------------------------------------------------
 */

/* Field 1003, wire type 5 (fixed32): (1003 << 3) | 5 = 8029, a 2-byte varint. */
#define TRAILER_TAG0 0xDDu
#define TRAILER_TAG1 0x3Eu

static void put_le32(uint8_t *p, uint32_t v)
{
    for (size_t i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

void sprig_transfer_chunk_seal(uint8_t *msg, size_t len)
{
    msg[len] = TRAILER_TAG0;
    msg[len + 1] = TRAILER_TAG1;
    put_le32(msg + len + 2, sprig_transfer_crc32(0, msg, len + 2));
}

sprig_status sprig_transfer_chunk_unseal(const uint8_t *msg, size_t *len)
{
    size_t n = *len;
    if (n < SPRIG_TRANSFER_TRAILER || msg[n - 6] != TRAILER_TAG0 || msg[n - 5] != TRAILER_TAG1) {
        return SPRIG_STATUS_DATA_LOSS;
    }
    uint8_t want[4];
    put_le32(want, sprig_transfer_crc32(0, msg, n - 4));
    if (memcmp(want, msg + n - 4, 4) != 0) {
        return SPRIG_STATUS_DATA_LOSS;
    }
    *len = n - SPRIG_TRANSFER_TRAILER;
    return SPRIG_STATUS_OK;
}
