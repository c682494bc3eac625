/* nanopb glue shared by the protocol codecs: see sprig/pbglue.h. */
#include "sprig/pbglue.h"

void sprig_pb_bytes_init(sprig_pb_bytes *ref, const uint8_t *input, size_t len)
{
    ref->begin = (uintptr_t)input;
    ref->end = (uintptr_t)input + len;
    ref->ptr = NULL;
    ref->len = 0;
}

bool sprig_pb_capture_bytes(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    sprig_pb_bytes *ref = *arg;
    uintptr_t at = (uintptr_t)stream->state;
    (void)field;
    if (at < ref->begin || at > ref->end || stream->bytes_left > ref->end - at) {
        return false;
    }
    ref->ptr = (const uint8_t *)stream->state;
    ref->len = stream->bytes_left;
    return pb_read(stream, NULL, stream->bytes_left);
}
