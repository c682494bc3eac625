/*
 * sprig/buf.h — packet buffers with headroom and tailroom, taken from fixed pools.
 *
 * Contract
 *   Ownership: a sprig_buf belongs to exactly one owner at a time: the pool (free), or whoever
 *     sprig_buf_alloc() returned it to, or whoever it was handed to (a queue, a socket through
 *     sprig_sock_send_buf()). The owner returns it with sprig_buf_free().
 *   Memory: pools live in caller-provided storage (SPRIG_BUF_POOL_STORAGE helps); nothing here
 *     allocates. Data is [off, off+len) of mem[0..size).
 *   Threading: none; a pool and its buffers belong to one loop.
 *   Layers reserve headroom for the headers they will add (sprig_buf_push), so a payload is
 *   written once and never copied on its way down.
 */
#ifndef SPRIG_BUF_H
#define SPRIG_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "sprig/config.h"
#include "sprig/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sprig_buf_pool;

typedef struct sprig_buf {
    struct sprig_buf *next;      /* link for whoever owns it (queue, free list) */
    struct sprig_buf_pool *pool; /* pool it returns to */
    uint8_t *mem;                /* storage, pool->buf_size bytes */
    size_t off;                  /* start of data within mem */
    size_t len;                  /* bytes of data */
} sprig_buf;

typedef struct sprig_buf_pool {
    sprig_buf *free_list;
    sprig_buf *bufs;  /* count descriptors */
    uint8_t *mem;     /* count * buf_size bytes */
    size_t buf_size;  /* storage bytes per buffer (rounded down to SPRIG_CONFIG_BUF_ALIGN) */
    size_t count;     /* buffers in the pool */
    size_t available; /* buffers free now */
    size_t low_water; /* smallest `available` seen since init */
} sprig_buf_pool;

/* Static storage for a pool of `count` buffers of `size` bytes:
 *   SPRIG_BUF_POOL_STORAGE(rx, 8, 512);
 *   sprig_buf_pool_init(&pool, rx_bufs, rx_mem, 8, 512);                                    */
#define SPRIG_BUF_POOL_STORAGE(name, count, size)                                                  \
    static sprig_buf name##_bufs[(count)];                                                         \
    static uint8_t name##_mem[(size_t)(count) * (size_t)(size)]                                    \
        __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)))

/* mem must be aligned to SPRIG_CONFIG_BUF_ALIGN and hold count*buf_size bytes; buf_size is
 * rounded down to that alignment. INVALID_ARGUMENT for NULL storage, count 0 or a buf_size
 * smaller than the alignment. */
sprig_status sprig_buf_pool_init(sprig_buf_pool *pool, sprig_buf *bufs, uint8_t *mem, size_t count,
                                 size_t buf_size);
/* Forgets the storage. Safe on a zeroed or already deinitialised pool. Buffers still out are
 * not tracked any more: check sprig_buf_pool_available() first if that matters. */
void sprig_buf_pool_deinit(sprig_buf_pool *pool);

static inline size_t sprig_buf_pool_available(const sprig_buf_pool *pool)
{
    return pool->available;
}

/* A buffer with `headroom` bytes reserved in front and len 0; NULL when the pool is empty or
 * headroom exceeds the buffer size. */
sprig_buf *sprig_buf_alloc(sprig_buf_pool *pool, size_t headroom);
/* Back to its pool. NULL is ignored. */
void sprig_buf_free(sprig_buf *buf);
/* Empty the buffer and reserve `headroom` again (headroom is clamped to the size). */
void sprig_buf_reset(sprig_buf *buf, size_t headroom);

static inline uint8_t *sprig_buf_data(const sprig_buf *buf)
{
    return buf->mem + buf->off;
}
static inline size_t sprig_buf_len(const sprig_buf *buf)
{
    return buf->len;
}
static inline size_t sprig_buf_size(const sprig_buf *buf)
{
    return buf->pool->buf_size;
}
static inline size_t sprig_buf_headroom(const sprig_buf *buf)
{
    return buf->off;
}
static inline size_t sprig_buf_tailroom(const sprig_buf *buf)
{
    return buf->pool->buf_size - buf->off - buf->len;
}

/* Prepend n bytes (a header) from the headroom; returns where to write them, NULL if the
 * headroom is too small (the buffer is unchanged). */
uint8_t *sprig_buf_push(sprig_buf *buf, size_t n);
/* Remove n bytes from the front (a parsed header); returns the new data start, NULL if
 * len < n (unchanged). */
uint8_t *sprig_buf_pull(sprig_buf *buf, size_t n);
/* Append n bytes from the tailroom; returns where to write them, NULL if no room (unchanged). */
uint8_t *sprig_buf_put(sprig_buf *buf, size_t n);
/* Append a copy of n bytes; RESOURCE_EXHAUSTED if no room (unchanged). */
sprig_status sprig_buf_append(sprig_buf *buf, const void *data, size_t n);
/* Shorten the data to len bytes; OUT_OF_RANGE if len > current length. */
sprig_status sprig_buf_trim(sprig_buf *buf, size_t len);

/* A FIFO of buffers linked through buf->next. Zero-initialise or sprig_buf_queue_init(). */
typedef struct sprig_buf_queue {
    sprig_buf *head;
    sprig_buf *tail;
    size_t count; /* buffers queued */
    size_t bytes; /* sum of their lengths; whoever changes a queued buffer's length adjusts it */
} sprig_buf_queue;

void sprig_buf_queue_init(sprig_buf_queue *q);
void sprig_buf_queue_push(sprig_buf_queue *q, sprig_buf *buf);
/* Put a buffer back at the front (e.g. a partly consumed one). */
void sprig_buf_queue_push_front(sprig_buf_queue *q, sprig_buf *buf);
/* NULL when empty. */
sprig_buf *sprig_buf_queue_pop(sprig_buf_queue *q);
static inline sprig_buf *sprig_buf_queue_peek(const sprig_buf_queue *q)
{
    return q->head;
}
/* Free every buffer in the queue. */
void sprig_buf_queue_clear(sprig_buf_queue *q);

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_BUF_H */
