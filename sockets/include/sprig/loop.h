/*
 * sprig/loop.h — the event loop: timers, deferred tasks, poll hooks and a pluggable I/O wait.
 *
 * Contract
 *   One loop drives sockets, timers and protocol state machines through callbacks. The portable
 *   loop here knows nothing of file descriptors: an I/O provider (sprig_loop_io) plugs in the
 *   blocking wait. On POSIX, sprig_os_loop (sprig/os.h) supplies an epoll provider and a
 *   thread-safe post. On bare metal there is no provider: the application calls
 *   sprig_loop_poll(loop, now) from its main loop and may sleep until sprig_loop_next_deadline().
 *
 *   Ownership: sprig_loop, sprig_timer, sprig_task and sprig_poller live in caller storage and
 *     must stay put while registered. The loop never allocates.
 *   Threading: every function here must be called from the loop's thread, except
 *     sprig_os_loop_post() (os.h), which is the one thread-safe entry point.
 *   Blocking: only sprig_loop_run*() block. Calling one from inside a callback the loop is
 *     running returns FAILED_PRECONDITION instead of deadlocking.
 *   Order in one pass of the loop: expired timers (earliest first), then pollers, then deferred
 *     tasks (FIFO; tasks deferred while running wait for the next pass).
 */
#ifndef SPRIG_LOOP_H
#define SPRIG_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sprig/clock.h"
#include "sprig/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The struct of type `type` whose member `member` is at `ptr`: how a backend, decorator or link
 * finds its own state around the embedded sprig_loop / sprig_sock / sprig_backend / link it was
 * given. Through uintptr_t, so a pointer to const works too (the caller decides the constness). */
#define SPRIG_CONTAINER_OF(ptr, type, member)                                                      \
    ((type *)(void *)((uintptr_t)(ptr)-offsetof(type, member)))

typedef struct sprig_loop sprig_loop;

/* ---- deferred tasks: run once, soon, from the loop (never re-entrantly) ---------------- */
typedef void (*sprig_task_fn)(void *arg);

typedef struct sprig_task {
    struct sprig_task *next;
    sprig_task_fn fn;
    void *arg;
    bool queued;
} sprig_task;

void sprig_task_init(sprig_task *task, sprig_task_fn fn, void *arg);
/* Queue the task for the next pass. Deferring an already queued task does nothing. */
void sprig_loop_defer(sprig_loop *loop, sprig_task *task);
/* Unqueue a task that has not run yet. Safe if it is not queued. */
void sprig_loop_cancel(sprig_loop *loop, sprig_task *task);

/* ---- timers: one-shot, absolute deadlines ---------------------------------------------- */
typedef struct sprig_timer sprig_timer;
typedef void (*sprig_timer_fn)(sprig_timer *timer, void *arg);

struct sprig_timer {
    struct sprig_timer *next;
    sprig_time deadline;
    sprig_timer_fn fn;
    void *arg;
    uint32_t pass; /* the loop's timer pass in which it was last armed */
    bool armed;
};

void sprig_timer_init(sprig_timer *timer, sprig_timer_fn fn, void *arg);
/* Arm (or re-arm) the timer to fire once at `deadline`. */
void sprig_timer_start_at(sprig_loop *loop, sprig_timer *timer, sprig_time deadline);
/* Arm (or re-arm) the timer to fire once `delay` after the loop's current time. */
void sprig_timer_start(sprig_loop *loop, sprig_timer *timer, sprig_time delay);
/* Disarm. Safe if not armed. */
void sprig_timer_stop(sprig_loop *loop, sprig_timer *timer);
static inline bool sprig_timer_armed(const sprig_timer *timer)
{
    return timer->armed;
}

/* ---- pollers: called on every pass (bare-metal drivers, lwIP timeouts, serial rx) ------- */
typedef struct sprig_poller {
    struct sprig_poller *next;
    void (*fn)(struct sprig_poller *poller, sprig_time now);
    void *arg;
} sprig_poller;

void sprig_loop_add_poller(sprig_loop *loop, sprig_poller *poller);
void sprig_loop_remove_poller(sprig_loop *loop, sprig_poller *poller);

/* ---- I/O provider ------------------------------------------------------------------------ */
typedef struct sprig_loop_io {
    /* Wait at most `timeout` (0: do not block; SPRIG_TIME_NEVER: no limit) for I/O and dispatch
     * whatever became ready. Returns OK, or a status if waiting itself failed. */
    sprig_status (*wait)(void *ctx, sprig_time timeout);
} sprig_loop_io;

typedef struct sprig_loop_cfg {
    sprig_clock clock;       /* required */
    const sprig_loop_io *io; /* NULL on bare metal */
    void *io_ctx;
    /* Optional, used only without an I/O provider: called by sprig_loop_run*() when there is
     * nothing to do before `deadline` (e.g. __WFI()). NULL: busy-poll. */
    void (*idle)(void *ctx, sprig_time deadline);
    void *idle_ctx;
} sprig_loop_cfg;

struct sprig_backend; /* sprig/sock.h */

struct sprig_loop {
    sprig_loop_cfg cfg;
    sprig_time now;      /* time of the current pass */
    sprig_timer *timers; /* sorted by deadline */
    sprig_task *tasks_head;
    sprig_task *tasks_tail;
    sprig_poller *pollers;
    struct sprig_backend *backends; /* registered with sprig_loop_add_backend() */
    uint32_t timer_pass;            /* counts runs of due timers */
    unsigned depth;                 /* > 0 while a callback runs */
    bool stopping;
};

/* INVALID_ARGUMENT without a clock. */
sprig_status sprig_loop_init(sprig_loop *loop, const sprig_loop_cfg *cfg);
/* Forgets timers, tasks, pollers and backends (it does not call them). Idempotent. */
void sprig_loop_deinit(sprig_loop *loop);

/* Reads the clock and returns (and caches) the current time. */
sprig_time sprig_loop_now(sprig_loop *loop);
/* True while the loop is running one of its callbacks. */
static inline bool sprig_loop_in_callback(const sprig_loop *loop)
{
    return loop->depth > 0;
}

/* Bare metal: one non-blocking pass at time `now` (timers, pollers, deferred tasks). */
void sprig_loop_poll(sprig_loop *loop, sprig_time now);
/* Earliest time the loop has work: `now` if tasks are queued, the first timer's deadline,
 * or SPRIG_TIME_NEVER. Pollers do not count (they run whenever you poll). */
sprig_time sprig_loop_next_deadline(const sprig_loop *loop);

/* One pass that may block up to `max_wait` in the I/O provider (or idle hook).
 * FAILED_PRECONDITION from inside a callback. */
sprig_status sprig_loop_run_once(sprig_loop *loop, sprig_time max_wait);
/* Run until sprig_loop_stop(). FAILED_PRECONDITION from inside a callback. */
sprig_status sprig_loop_run(sprig_loop *loop);
/* Make sprig_loop_run() return after the current pass. */
void sprig_loop_stop(sprig_loop *loop);
/* Run until done(arg) is true (OK) or `timeout` has passed (DEADLINE_EXCEEDED).
 * done is checked before the first pass and after each one. The blocking helpers of every
 * module are built on this. FAILED_PRECONDITION from inside a callback. */
sprig_status sprig_loop_run_until(sprig_loop *loop, bool (*done)(void *arg), void *arg,
                                  sprig_time timeout);

/* For code that calls user callbacks: bracket them so blocking calls inside are refused. */
static inline void sprig__loop_enter(sprig_loop *loop)
{
    loop->depth++;
}
static inline void sprig__loop_leave(sprig_loop *loop)
{
    loop->depth--;
}

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_LOOP_H */
