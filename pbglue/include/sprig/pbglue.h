/*
 * sprig/pbglue.h — the nanopb glue shared by sprig's protocol codecs (RPC packets, transfer
 * chunks).
 *
 * Contract
 *   Decoding untrusted bytes without copying them: sprig_pb_capture_bytes, installed as the
 *   decode callback of a `bytes` field, records where the field's bytes lie inside the input
 *   buffer. It works only with streams from pb_istream_from_buffer (their state is the read
 *   position). Bytes that arrive with a scalar wire type reach the callback as a substream over a
 *   copy on nanopb's stack, outside the input: they are refused, and pb_decode fails (the codec
 *   reports DATA_LOSS). A field repeated on the wire keeps its last occurrence, as protobuf says.
 *   No allocation; no state beyond the caller's sprig_pb_bytes.
 */
#ifndef SPRIG_PBGLUE_H
#define SPRIG_PBGLUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pb.h>
#include <pb_decode.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sprig_pb_bytes {
    uintptr_t begin; /* the input buffer */
    uintptr_t end;
    const uint8_t *ptr; /* the field's bytes inside it; NULL when absent */
    size_t len;
} sprig_pb_bytes;

/* Prepare to capture a field of the `len` bytes at `input`. */
void sprig_pb_bytes_init(sprig_pb_bytes *ref, const uint8_t *input, size_t len);
/* The pb_callback_t decode function: set field.funcs.decode to it and field.arg to the ref. */
bool sprig_pb_capture_bytes(pb_istream_t *stream, const pb_field_t *field, void **arg);

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_PBGLUE_H */
