/* Packet buffers and their pools. */
#include "sprig/buf.h"

#include <string.h>

#define ALIGN_DOWN(x) ((x) & ~((size_t)SPRIG_CONFIG_BUF_ALIGN - 1u))

sprig_status sprig_buf_pool_init(sprig_buf_pool *pool, sprig_buf *bufs, uint8_t *mem, size_t count,
                                 size_t buf_size)
{
    if (pool == NULL || bufs == NULL || mem == NULL || count == 0 || ALIGN_DOWN(buf_size) == 0 ||
        ((uintptr_t)mem % SPRIG_CONFIG_BUF_ALIGN) != 0) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    /* Each buffer starts at i * buf_size, so keep buf_size aligned to keep every payload so. */
    size_t stride = ALIGN_DOWN(buf_size);
    pool->bufs = bufs;
    pool->mem = mem;
    pool->buf_size = stride;
    pool->count = count;
    pool->free_list = NULL;
    for (size_t i = count; i-- > 0;) {
        bufs[i].pool = pool;
        bufs[i].mem = mem + i * stride;
        bufs[i].off = 0;
        bufs[i].len = 0;
        bufs[i].next = pool->free_list;
        pool->free_list = &bufs[i];
    }
    pool->available = count;
    pool->low_water = count;
    return SPRIG_STATUS_OK;
}

void sprig_buf_pool_deinit(sprig_buf_pool *pool)
{
    if (pool != NULL) {
        memset(pool, 0, sizeof(*pool));
    }
}

sprig_buf *sprig_buf_alloc(sprig_buf_pool *pool, size_t headroom)
{
    sprig_buf *b = pool->free_list;
    if (b == NULL || headroom > pool->buf_size) {
        return NULL;
    }
    pool->free_list = b->next;
    pool->available--;
    if (pool->available < pool->low_water) {
        pool->low_water = pool->available;
    }
    b->next = NULL;
    b->off = headroom;
    b->len = 0;
    return b;
}

void sprig_buf_free(sprig_buf *buf)
{
    if (buf == NULL) {
        return;
    }
    sprig_buf_pool *pool = buf->pool;
    buf->next = pool->free_list;
    pool->free_list = buf;
    pool->available++;
}

void sprig_buf_reset(sprig_buf *buf, size_t headroom)
{
    size_t size = buf->pool->buf_size;
    buf->off = headroom < size ? headroom : size;
    buf->len = 0;
}

uint8_t *sprig_buf_push(sprig_buf *buf, size_t n)
{
    if (n > buf->off) {
        return NULL;
    }
    buf->off -= n;
    buf->len += n;
    return buf->mem + buf->off;
}

uint8_t *sprig_buf_pull(sprig_buf *buf, size_t n)
{
    if (n > buf->len) {
        return NULL;
    }
    buf->off += n;
    buf->len -= n;
    return buf->mem + buf->off;
}

uint8_t *sprig_buf_put(sprig_buf *buf, size_t n)
{
    if (n > sprig_buf_tailroom(buf)) {
        return NULL;
    }
    uint8_t *p = buf->mem + buf->off + buf->len;
    buf->len += n;
    return p;
}

sprig_status sprig_buf_append(sprig_buf *buf, const void *data, size_t n)
{
    uint8_t *p = sprig_buf_put(buf, n);
    if (p == NULL) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    if (n > 0) {
        memcpy(p, data, n);
    }
    return SPRIG_STATUS_OK;
}

sprig_status sprig_buf_trim(sprig_buf *buf, size_t len)
{
    if (len > buf->len) {
        return SPRIG_STATUS_OUT_OF_RANGE;
    }
    buf->len = len;
    return SPRIG_STATUS_OK;
}

void sprig_buf_queue_init(sprig_buf_queue *q)
{
    q->head = NULL;
    q->tail = NULL;
    q->count = 0;
    q->bytes = 0;
}

void sprig_buf_queue_push(sprig_buf_queue *q, sprig_buf *buf)
{
    buf->next = NULL;
    if (q->tail != NULL) {
        q->tail->next = buf;
    } else {
        q->head = buf;
    }
    q->tail = buf;
    q->count++;
    q->bytes += buf->len;
}

void sprig_buf_queue_push_front(sprig_buf_queue *q, sprig_buf *buf)
{
    buf->next = q->head;
    q->head = buf;
    if (q->tail == NULL) {
        q->tail = buf;
    }
    q->count++;
    q->bytes += buf->len;
}

sprig_buf *sprig_buf_queue_pop(sprig_buf_queue *q)
{
    sprig_buf *b = q->head;
    if (b == NULL) {
        return NULL;
    }
    q->head = b->next;
    if (q->head == NULL) {
        q->tail = NULL;
    }
    b->next = NULL;
    q->count--;
    /* Saturate: an owner that shrank a queued buffer without adjusting `bytes` must not make
     * the count wrap. */
    q->bytes = q->bytes > b->len ? q->bytes - b->len : 0;
    return b;
}

void sprig_buf_queue_clear(sprig_buf_queue *q)
{
    sprig_buf *b;
    while ((b = sprig_buf_queue_pop(q)) != NULL) {
        sprig_buf_free(b);
    }
    q->bytes = 0;
}
