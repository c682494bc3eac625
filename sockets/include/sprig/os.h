/*
 * sprig/os.h — POSIX: the epoll loop, a monotonic clock, and the OS socket backend.
 *
 * Not portable code: this module may allocate (socket storage, the transmit pool).
 *
 * Loop contract
 *   sprig_os_loop is a sprig_loop (member `loop`) whose I/O provider is epoll. File descriptors
 *   are watched edge-triggered. sprig_os_loop_post() is the only thread-safe call: it queues a
 *   task to run on the loop's thread and wakes the loop (eventfd).
 *
 * Backend contract (URLs)
 *   unix:PATH          AF_UNIX SOCK_SEQPACKET (native boundaries). A listener removes a stale
 *                      socket file left by a dead process, and its own file when closed.
 *   tcp://HOST:PORT    SEQPACKET (default) through the framing decorator, or STREAM.
 *                      TCP_NODELAY is set. HOST may be a name (resolved with getaddrinfo),
 *                      IPv4 or [IPv6]; port 0 on listen picks a free port (sprig_sock_local_addr).
 *   udp://HOST:PORT    DGRAM. dial: a connected UDP socket; listen: a bound one
 * (send_to/recv_from). Native errors are mapped by sprig_os_status_from_errno() (one table) and
 * never leak out.
 */
#ifndef SPRIG_OS_H
#define SPRIG_OS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sprig/buf.h"
#include "sprig/clock.h"
#include "sprig/loop.h"
#include "sprig/sock.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- clock --------------------------------------------------------------------------------- */
/* CLOCK_MONOTONIC in microseconds. */
sprig_clock sprig_os_clock(void);

/* ---- loop ---------------------------------------------------------------------------------- */
#define SPRIG_OS_EV_IN  0x1u
#define SPRIG_OS_EV_OUT 0x2u
#define SPRIG_OS_EV_ERR 0x4u /* error or hang-up */

typedef struct sprig_os_fd sprig_os_fd;
typedef void (*sprig_os_fd_fn)(sprig_os_fd *watch, uint32_t events);

struct sprig_os_fd {
    int fd;
    uint32_t events; /* SPRIG_OS_EV_IN | SPRIG_OS_EV_OUT watched */
    sprig_os_fd_fn fn;
    void *arg;
};

typedef struct sprig_os_loop {
    sprig_loop loop; /* pass &ol.loop wherever a sprig_loop is wanted */
    int epfd;
    int wakefd;
    sprig_os_fd wake_watch;
    pthread_mutex_t post_mu;
    sprig_task *post_head;
    sprig_task *post_tail;
    bool ready;
    /* internal: the epoll batch being dispatched, so that removing a watch from inside a
     * callback (closing another socket) also forgets its not yet dispatched event */
    struct sprig__os_batch *batch;
} sprig_os_loop;

/* INTERNAL (with errno mapped) if epoll/eventfd cannot be created. */
sprig_status sprig_os_loop_init(sprig_os_loop *ol);
/* Idempotent; safe after a failed init. Watched fds are not closed. */
void sprig_os_loop_deinit(sprig_os_loop *ol);
/* The os loop a sprig_loop belongs to; NULL if it is not one. */
sprig_os_loop *sprig_os_loop_from(sprig_loop *loop);
/* Thread-safe: run task->fn(task->arg) on the loop's thread soon. The task must stay valid
 * until it has run. Posting a task that is still queued does nothing. From another thread, post
 * a given task again only once it has started running (its `queued` flag is cleared on the
 * loop's thread without the post lock). */
sprig_status sprig_os_loop_post(sprig_os_loop *ol, sprig_task *task);

/* Watch fd (edge-triggered) for `events`; fn(watch, events) runs from the loop. */
sprig_status sprig_os_loop_add_fd(sprig_os_loop *ol, sprig_os_fd *watch, int fd, uint32_t events,
                                  sprig_os_fd_fn fn, void *arg);
sprig_status sprig_os_loop_mod_fd(sprig_os_loop *ol, sprig_os_fd *watch, uint32_t events);
void sprig_os_loop_del_fd(sprig_os_loop *ol, sprig_os_fd *watch);

/* ---- backend ------------------------------------------------------------------------------- */
typedef struct sprig_os_backend_cfg {
    size_t max_message_size; /* SEQPACKET/DGRAM limit; 0: SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE.
                                unix sockets get SO_SNDBUF raised to fit it. */
    size_t tx_pool_bufs;     /* buffers for sprig_sock_alloc_tx; 0: 64 */
    int backlog;             /* listen backlog; 0: 1024 */
} sprig_os_backend_cfg;

typedef struct sprig_os_backend {
    sprig_backend backend;
    sprig_os_loop *ol;
    sprig_os_backend_cfg cfg;
    sprig_buf_pool pool; /* alloc_tx buffers: max_message_size + SPRIG_CONFIG_SOCK_HEADROOM */
    sprig_buf *pool_bufs;
    uint8_t *pool_mem;
    size_t open; /* sockets not yet closed */
} sprig_os_backend;

/* Registers the backend on ol's loop. cfg may be NULL (defaults). RESOURCE_EXHAUSTED if the
 * pool cannot be allocated. */
sprig_status sprig_os_backend_init(sprig_os_backend *b, sprig_os_loop *ol,
                                   const sprig_os_backend_cfg *cfg);
/* Unregisters and frees the pool; close every socket first. Idempotent. */
void sprig_os_backend_deinit(sprig_os_backend *b);
/* Sockets made and not yet closed (0 after a clean teardown). */
size_t sprig_os_backend_open_count(const sprig_os_backend *b);

/* The one errno → status table (EAGAIN → UNAVAILABLE, ECONNRESET/EPIPE → ABORTED,
 * ECONNREFUSED → UNAVAILABLE, ENOENT → NOT_FOUND, EMSGSIZE → RESOURCE_EXHAUSTED, ...). */
sprig_status sprig_os_status_from_errno(int err);

/* What a tool prints for a listener made from `url`: for a URL with a host (tcp://, udp://) the
 * scheme and the address the socket really bound ("tcp://127.0.0.1:40123" for port 0); for
 * anything else (unix:, mem:, sprig://NODE:PORT, whose node ids read better than their ULA
 * addresses) or when the address cannot be had, the URL as given. Cut to cap, NUL-terminated. */
void sprig_os_bound_url(const char *url, const sprig_sock *listener, char *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_OS_H */
