/*
 * os_loop.c — the POSIX clock and the epoll I/O provider of sprig_os_loop (sprig/os.h).
 *
 * The portable loop (loop.c) owns timers and tasks; this file only blocks in epoll_wait and
 * dispatches ready fds. Watches are edge-triggered, so a handler must drain its fd (read or
 * write until EAGAIN) or it is not told again.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "sprig/os.h"

/* Ready events fetched per epoll_wait; more simply wait for the next pass. */
#define BATCH_MAX 128

/* The batch being dispatched; del_fd clears entries of watches that go away meanwhile. */
struct sprig__os_batch {
    struct epoll_event ev[BATCH_MAX];
    int n;
    struct sprig__os_batch *outer; /* a batch of another wait further up the stack */
};

/* ---- clock ----------------------------------------------------------------------------- */

static sprig_time monotonic_now(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (sprig_time)ts.tv_sec * 1000000u + (sprig_time)ts.tv_nsec / 1000u;
}

sprig_clock sprig_os_clock(void)
{
    sprig_clock clock = {.now = monotonic_now, .ctx = NULL};
    return clock;
}

/* ---- event mapping --------------------------------------------------------------------- */

static uint32_t epoll_mask(uint32_t events)
{
    uint32_t mask = EPOLLET;
    if (events & SPRIG_OS_EV_IN) {
        mask |= EPOLLIN | EPOLLRDHUP;
    }
    if (events & SPRIG_OS_EV_OUT) {
        mask |= EPOLLOUT;
    }
    return mask;
}

static uint32_t sprig_events(uint32_t mask)
{
    uint32_t events = 0;
    if (mask & EPOLLIN) {
        events |= SPRIG_OS_EV_IN;
    }
    if (mask & EPOLLOUT) {
        events |= SPRIG_OS_EV_OUT;
    }
    if (mask & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
        events |= SPRIG_OS_EV_ERR;
    }
    return events;
}

/* ---- the I/O provider ------------------------------------------------------------------ */

/* Round up so a timer is never reached early, which would make the loop spin until it is due. */
static int timeout_ms(sprig_time timeout)
{
    if (timeout == SPRIG_TIME_NEVER) {
        return -1; /* no limit: also spares epoll_wait arming a kernel timer on every call */
    }
    sprig_time ms = timeout / 1000u + (timeout % 1000u != 0);
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

static void dispatch(sprig_os_loop *ol, struct sprig__os_batch *batch)
{
    batch->outer = ol->batch;
    ol->batch = batch;
    /* Handlers run as loop callbacks: a blocking helper called from one is refused instead of
     * re-entering epoll_wait underneath this batch. */
    sprig__loop_enter(&ol->loop);
    for (int i = 0; i < batch->n; i++) {
        sprig_os_fd *watch = batch->ev[i].data.ptr;
        if (watch != NULL) {
            watch->fn(watch, sprig_events(batch->ev[i].events));
        }
    }
    sprig__loop_leave(&ol->loop);
    ol->batch = batch->outer;
}

static sprig_status os_wait(void *ctx, sprig_time timeout)
{
    sprig_os_loop *ol = ctx;
    struct sprig__os_batch batch;
    batch.n = epoll_wait(ol->epfd, batch.ev, BATCH_MAX, timeout_ms(timeout));
    if (batch.n < 0) {
        /* A signal is not a failure: the loop comes round again and recomputes its timeout. */
        return errno == EINTR ? SPRIG_STATUS_OK : sprig_os_status_from_errno(errno);
    }
    dispatch(ol, &batch);
    return SPRIG_STATUS_OK;
}

static const sprig_loop_io os_io = {.wait = os_wait};

/* ---- posting from other threads -------------------------------------------------------- */

static void wake(sprig_os_loop *ol)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is saturated, i.e. a wake-up is pending anyway. */
    while (write(ol->wakefd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

static void on_wake(sprig_os_fd *watch, uint32_t events)
{
    (void)events;
    sprig_os_loop *ol = watch->arg;
    uint64_t count;
    /* Drain first: a post after this read writes again and produces a new edge. */
    while (read(ol->wakefd, &count, sizeof count) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&ol->post_mu);
    sprig_task *task = ol->post_head;
    ol->post_head = NULL;
    ol->post_tail = NULL;
    /* Still under the lock: a concurrent post of the same task must see it queued either here
     * or on the loop, never in between. */
    while (task != NULL) {
        sprig_task *next = task->next;
        task->next = NULL;
        task->queued = false;
        sprig_loop_defer(&ol->loop, task);
        task = next;
    }
    pthread_mutex_unlock(&ol->post_mu);
}

sprig_status sprig_os_loop_post(sprig_os_loop *ol, sprig_task *task)
{
    if (ol == NULL || task == NULL || task->fn == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (!ol->ready) {
        return SPRIG_STATUS_FAILED_PRECONDITION;
    }
    pthread_mutex_lock(&ol->post_mu);
    bool was_empty = ol->post_head == NULL;
    if (!task->queued) {
        task->queued = true;
        task->next = NULL;
        if (ol->post_tail != NULL) {
            ol->post_tail->next = task;
        } else {
            ol->post_head = task;
        }
        ol->post_tail = task;
    }
    bool need_wake = was_empty && ol->post_head != NULL;
    pthread_mutex_unlock(&ol->post_mu);
    /* A non-empty queue already has a wake-up on its way. */
    if (need_wake) {
        wake(ol);
    }
    return SPRIG_STATUS_OK;
}

/* ---- fd watches ------------------------------------------------------------------------ */

sprig_status sprig_os_loop_add_fd(sprig_os_loop *ol, sprig_os_fd *watch, int fd, uint32_t events,
                                  sprig_os_fd_fn fn, void *arg)
{
    if (ol == NULL || !ol->ready || watch == NULL || fd < 0 || fn == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    watch->fd = fd;
    watch->events = events;
    watch->fn = fn;
    watch->arg = arg;
    struct epoll_event ev = {.events = epoll_mask(events), .data.ptr = watch};
    if (epoll_ctl(ol->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        watch->fd = -1;
        return sprig_os_status_from_errno(errno);
    }
    return SPRIG_STATUS_OK;
}

sprig_status sprig_os_loop_mod_fd(sprig_os_loop *ol, sprig_os_fd *watch, uint32_t events)
{
    if (ol == NULL || !ol->ready || watch == NULL || watch->fd < 0) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    struct epoll_event ev = {.events = epoll_mask(events), .data.ptr = watch};
    if (epoll_ctl(ol->epfd, EPOLL_CTL_MOD, watch->fd, &ev) != 0) {
        return sprig_os_status_from_errno(errno);
    }
    watch->events = events;
    return SPRIG_STATUS_OK;
}

static void forget_pending(struct sprig__os_batch *batch, const sprig_os_fd *watch)
{
    for (; batch != NULL; batch = batch->outer) {
        for (int i = 0; i < batch->n; i++) {
            if (batch->ev[i].data.ptr == watch) {
                batch->ev[i].data.ptr = NULL;
            }
        }
    }
}

void sprig_os_loop_del_fd(sprig_os_loop *ol, sprig_os_fd *watch)
{
    if (ol == NULL || !ol->ready || watch == NULL || watch->fd < 0) {
        return;
    }
    /* Explicit removal: the registration belongs to the open file description, which a forked
     * child or a dup() may keep alive after close(fd). */
    (void)epoll_ctl(ol->epfd, EPOLL_CTL_DEL, watch->fd, NULL);
    forget_pending(ol->batch, watch);
    watch->fd = -1;
}

/* ---- lifetime -------------------------------------------------------------------------- */

static void close_fds(sprig_os_loop *ol)
{
    if (ol->wakefd >= 0) {
        (void)close(ol->wakefd);
    }
    if (ol->epfd >= 0) {
        (void)close(ol->epfd);
    }
    ol->wakefd = -1;
    ol->epfd = -1;
}

static sprig_status open_fds(sprig_os_loop *ol)
{
    ol->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (ol->epfd >= 0) {
        ol->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    }
    if (ol->epfd < 0 || ol->wakefd < 0) {
        sprig_status st = sprig_os_status_from_errno(errno);
        close_fds(ol);
        return st;
    }
    return SPRIG_STATUS_OK;
}

sprig_status sprig_os_loop_init(sprig_os_loop *ol)
{
    if (ol == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(ol, 0, sizeof *ol);
    ol->epfd = -1;
    ol->wakefd = -1;
    ol->wake_watch.fd = -1;
    sprig_status st = open_fds(ol);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    if (pthread_mutex_init(&ol->post_mu, NULL) != 0) {
        close_fds(ol);
        return SPRIG_STATUS_INTERNAL;
    }
    sprig_loop_cfg cfg = {.clock = sprig_os_clock(), .io = &os_io, .io_ctx = ol};
    st = sprig_loop_init(&ol->loop, &cfg);
    if (st != SPRIG_STATUS_OK) {
        (void)pthread_mutex_destroy(&ol->post_mu);
        close_fds(ol);
        return st;
    }
    ol->ready = true; /* from here on deinit undoes everything */
    st = sprig_os_loop_add_fd(ol, &ol->wake_watch, ol->wakefd, SPRIG_OS_EV_IN, on_wake, ol);
    if (st != SPRIG_STATUS_OK) {
        sprig_os_loop_deinit(ol);
    }
    return st;
}

void sprig_os_loop_deinit(sprig_os_loop *ol)
{
    if (ol == NULL || !ol->ready) {
        return;
    }
    ol->ready = false;
    sprig_loop_deinit(&ol->loop);
    close_fds(ol);
    (void)pthread_mutex_destroy(&ol->post_mu);
    ol->post_head = NULL;
    ol->post_tail = NULL;
    ol->batch = NULL;
}

sprig_os_loop *sprig_os_loop_from(sprig_loop *loop)
{
    /* Only loops whose provider is ours are embedded in a sprig_os_loop. */
    if (loop == NULL || loop->cfg.io != &os_io) {
        return NULL;
    }
    return SPRIG_CONTAINER_OF(loop, sprig_os_loop, loop);
}
