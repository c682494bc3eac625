/*
 * pw_rpc packets (WIRE.md, "RPC packet") with nanopb.
 *
 * Decoding uses the generated pw_rpc_internal_RpcPacket with the payload as a callback that only
 * records where the payload lies in the input: no copy, no size limit of its own.
 *
 * Encoding follows pw_rpc's own encoder, field by field with nanopb's primitives, because
 * nanopb's message encoder can neither put the payload first nor write a zero `type`:
 *   payload (5)  when not empty, FIRST, so it can be encoded in place ahead of the rest
 *   type (1)     always, even REQUEST = 0 (WIRE.md's worked example has `08 00`)
 *   channel_id (2), service_id (3), method_id (4)   always
 *   status (6)   only when not OK
 *   call_id (7)  only when not 0
 * Worst case around a payload of N bytes: tag + 5-byte length (6) in front; type 2, channel 6,
 * service 5, method 5, status 2, call_id 6 (26) behind: N + 32, as WIRE.md promises. That
 * needs type and status below 128, which every real packet has (encode refuses others).
 */
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "internal.h"
#include "pw_rpc/internal/packet.pb.h"
#include "sprig/pbglue.h"

#define TAG_PAYLOAD ((uint8_t)((pw_rpc_internal_RpcPacket_payload_tag << 3) | PB_WT_STRING))
#define MAX_SMALL   127u /* largest type/status value that encodes in one byte */

/* ---- decode ------------------------------------------------------------------------------- */

sprig_status sprig_rpc_packet_decode(const uint8_t *data, size_t len, sprig_rpc_packet *out)
{
    if (out == NULL || (data == NULL && len > 0)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(out, 0, sizeof(*out));
    sprig_pb_bytes ref;
    sprig_pb_bytes_init(&ref, data, len);
    pw_rpc_internal_RpcPacket msg = pw_rpc_internal_RpcPacket_init_zero;
    msg.payload.funcs.decode = sprig_pb_capture_bytes;
    msg.payload.arg = &ref;
    pb_istream_t is = pb_istream_from_buffer(data, len);
    if (!pb_decode(&is, pw_rpc_internal_RpcPacket_fields, &msg)) {
        return SPRIG_STATUS_DATA_LOSS;
    }
    /* Unknown types are kept (the receiver drops them); statuses from the future are UNKNOWN. */
    out->type = (sprig_rpc_packet_type)msg.type;
    out->channel_id = msg.channel_id;
    out->service_id = msg.service_id;
    out->method_id = msg.method_id;
    out->call_id = msg.call_id;
    out->status = msg.status < SPRIG_STATUS_COUNT ? (sprig_status)msg.status : SPRIG_STATUS_UNKNOWN;
    out->payload = ref.ptr;
    out->payload_len = ref.len;
    return SPRIG_STATUS_OK;
}

/* ---- encode ------------------------------------------------------------------------------- */

static bool put_varint(pb_ostream_t *os, uint32_t tag, uint32_t v)
{
    return pb_encode_tag(os, PB_WT_VARINT, tag) && pb_encode_varint(os, v);
}

static bool put_fixed32(pb_ostream_t *os, uint32_t tag, uint32_t v)
{
    return pb_encode_tag(os, PB_WT_32BIT, tag) && pb_encode_fixed32(os, &v);
}

/* Every field but the payload, in pw_rpc's order. At most SPRIG_RPC_PACKET_TAILROOM bytes. */
static bool put_fields(pb_ostream_t *os, const sprig_rpc_packet *p)
{
    bool ok = put_varint(os, pw_rpc_internal_RpcPacket_type_tag, (uint32_t)p->type) &&
              put_varint(os, pw_rpc_internal_RpcPacket_channel_id_tag, p->channel_id) &&
              put_fixed32(os, pw_rpc_internal_RpcPacket_service_id_tag, p->service_id) &&
              put_fixed32(os, pw_rpc_internal_RpcPacket_method_id_tag, p->method_id);
    if (ok && p->status != SPRIG_STATUS_OK) {
        ok = put_varint(os, pw_rpc_internal_RpcPacket_status_tag, (uint32_t)p->status);
    }
    if (ok && p->call_id != 0u) {
        ok = put_varint(os, pw_rpc_internal_RpcPacket_call_id_tag, p->call_id);
    }
    return ok;
}

static bool small_enums(const sprig_rpc_packet *p)
{
    return (uint32_t)p->type <= MAX_SMALL && (uint32_t)p->status <= MAX_SMALL;
}

/* The payload's tag and length, into hdr[SPRIG_RPC_PAYLOAD_HEADROOM]; returns the bytes. */
static size_t payload_header(uint8_t *hdr, size_t len)
{
    size_t n = 0;
    uint32_t v = (uint32_t)len;
    hdr[n++] = TAG_PAYLOAD;
    while (v >= 0x80u) {
        hdr[n++] = (uint8_t)(v | 0x80u);
        v >>= 7;
    }
    hdr[n++] = (uint8_t)v;
    return n;
}

sprig_status sprig_rpc_packet_encode(const sprig_rpc_packet *p, uint8_t *out, size_t cap,
                                     size_t *out_len)
{
    if (out_len != NULL) {
        *out_len = 0;
    }
    if (p == NULL || out_len == NULL || (out == NULL && cap > 0) ||
        (p->payload == NULL && p->payload_len > 0) || p->payload_len > UINT32_MAX ||
        !small_enums(p)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    pb_ostream_t os = pb_ostream_from_buffer(out, cap);
    if (p->payload_len > 0) {
        uint8_t hdr[SPRIG_RPC_PAYLOAD_HEADROOM];
        size_t n = payload_header(hdr, p->payload_len);
        if (!pb_write(&os, hdr, n) || !pb_write(&os, p->payload, p->payload_len)) {
            return SPRIG_STATUS_RESOURCE_EXHAUSTED;
        }
    }
    if (!put_fields(&os, p)) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    *out_len = os.bytes_written;
    return SPRIG_STATUS_OK;
}

sprig_status sprig_rpc_packet_wrap(sprig_buf *buf, const sprig_rpc_packet *p)
{
    if (buf == NULL || p == NULL || !small_enums(p) || sprig_buf_len(buf) > UINT32_MAX) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (sprig_buf_headroom(buf) < SPRIG_RPC_PAYLOAD_HEADROOM ||
        sprig_buf_tailroom(buf) < SPRIG_RPC_PACKET_TAILROOM) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    size_t len = sprig_buf_len(buf);
    pb_ostream_t os = pb_ostream_from_buffer(sprig_buf_data(buf) + len, SPRIG_RPC_PACKET_TAILROOM);
    if (!put_fields(&os, p)) {
        return SPRIG_STATUS_INTERNAL; /* cannot happen: 26 bytes hold every field */
    }
    (void)sprig_buf_put(buf, os.bytes_written);
    if (len > 0) {
        uint8_t hdr[SPRIG_RPC_PAYLOAD_HEADROOM];
        size_t n = payload_header(hdr, len);
        memcpy(sprig_buf_push(buf, n), hdr, n);
    }
    return SPRIG_STATUS_OK;
}

/* ---- sending on a socket (internal.h) ----------------------------------------------------- */

size_t sprig__rpc_max_payload(const sprig_sock *sock)
{
    size_t max = sprig_sock_max_message_size(sock);
    return max > SPRIG_RPC_PACKET_OVERHEAD ? max - SPRIG_RPC_PACKET_OVERHEAD : 0;
}

/* A transmit buffer for a payload of up to `room` bytes, with the payload's header room
 * reserved in front. An empty pool is UNAVAILABLE: the socket is marked as waiting to write,
 * so WRITABLE follows when the backend gives buffers back. */
static sprig_status tx_begin(sprig_sock *sock, size_t room, sprig_buf **out)
{
    sprig_status st = sprig_sock_alloc_tx_flow(sock, room + SPRIG_RPC_PACKET_OVERHEAD, out);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    sprig_buf_reset(*out, sprig_buf_headroom(*out) + SPRIG_RPC_PAYLOAD_HEADROOM);
    if (sprig_buf_headroom(*out) < SPRIG_RPC_PAYLOAD_HEADROOM ||
        sprig_buf_tailroom(*out) < room + SPRIG_RPC_PACKET_TAILROOM) {
        sprig_buf_free(*out);
        *out = NULL;
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    return SPRIG_STATUS_OK;
}

/* Wrap the payload in buf and send; the buffer is consumed either way. */
static sprig_status tx_finish(sprig_sock *sock, sprig_buf *buf, const sprig_rpc_packet *p)
{
    sprig_status st = sprig_rpc_packet_wrap(buf, p);
    if (st == SPRIG_STATUS_OK) {
        st = sprig_sock_send_buf(sock, buf);
    }
    if (st != SPRIG_STATUS_OK) {
        sprig_buf_free(buf);
    }
    return st;
}

sprig_status sprig__rpc_send(sprig_sock *sock, const sprig_rpc_packet *p)
{
    sprig_buf *buf = NULL;
    if (p->payload == NULL && p->payload_len > 0) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (!small_enums(p)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (p->payload_len > sprig__rpc_max_payload(sock)) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    sprig_status st = tx_begin(sock, p->payload_len, &buf);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    if (p->payload_len > 0) {
        memcpy(sprig_buf_put(buf, p->payload_len), p->payload, p->payload_len);
    }
    return tx_finish(sock, buf, p);
}

/* nanopb output straight into the transmit buffer; remembers whether it ran out of room (the
 * message is too large) as opposed to failing for another reason. The position is the sink's
 * own: nanopb encodes each sub-message through a sub-stream whose bytes_written starts at 0. */
typedef struct pb_sink {
    uint8_t *mem;
    size_t cap;
    size_t pos;
    bool overflow;
} pb_sink;

static bool sink_write(pb_ostream_t *os, const pb_byte_t *data, size_t n)
{
    pb_sink *sink = os->state;
    if (n > sink->cap - sink->pos) {
        sink->overflow = true;
        return false;
    }
    memcpy(sink->mem + sink->pos, data, n);
    sink->pos += n;
    return true;
}

sprig_status sprig__rpc_send_pb(sprig_sock *sock, const sprig_rpc_packet *p,
                                const pb_msgdesc_t *fields, const void *msg)
{
    sprig_buf *buf = NULL;
    if (!small_enums(p) || (fields != NULL && msg == NULL)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    size_t max = sprig__rpc_max_payload(sock);
    sprig_status st = tx_begin(sock, max, &buf);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    if (fields != NULL) {
        pb_sink sink = {sprig_buf_data(buf), max, 0, false};
        pb_ostream_t os = {0};
        os.callback = sink_write;
        os.state = &sink;
        os.max_size = SIZE_MAX;
        if (!pb_encode(&os, fields, msg)) {
            sprig_buf_free(buf);
            return sink.overflow ? SPRIG_STATUS_RESOURCE_EXHAUSTED : SPRIG_STATUS_INTERNAL;
        }
        (void)sprig_buf_put(buf, sink.pos);
    }
    return tx_finish(sock, buf, p);
}
