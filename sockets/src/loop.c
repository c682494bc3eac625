/*
 * The portable loop: a sorted timer list, a FIFO of deferred tasks, pollers, and an optional
 * I/O provider that does the blocking wait.
 */
#include "sprig/loop.h"

#include <string.h>

#include "sprig/sock.h"

#define POLLER_MAX_WAIT SPRIG_TIME_MS(1)

sprig_status sprig_loop_init(sprig_loop *loop, const sprig_loop_cfg *cfg)
{
    if (loop == NULL || cfg == NULL || cfg->clock.now == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(loop, 0, sizeof(*loop));
    loop->cfg = *cfg;
    loop->now = sprig_clock_now(&cfg->clock);
    return SPRIG_STATUS_OK;
}

void sprig_loop_deinit(sprig_loop *loop)
{
    if (loop == NULL) {
        return;
    }
    sprig_loop_cfg cfg = loop->cfg;
    memset(loop, 0, sizeof(*loop));
    loop->cfg = cfg; /* keeps the clock usable if someone asks for the time afterwards */
}

sprig_time sprig_loop_now(sprig_loop *loop)
{
    loop->now = sprig_clock_now(&loop->cfg.clock);
    return loop->now;
}

/* ---- tasks ----------------------------------------------------------------------------- */

void sprig_task_init(sprig_task *task, sprig_task_fn fn, void *arg)
{
    task->next = NULL;
    task->fn = fn;
    task->arg = arg;
    task->queued = false;
}

void sprig_loop_defer(sprig_loop *loop, sprig_task *task)
{
    if (task->queued) {
        return;
    }
    task->queued = true;
    task->next = NULL;
    if (loop->tasks_tail != NULL) {
        loop->tasks_tail->next = task;
    } else {
        loop->tasks_head = task;
    }
    loop->tasks_tail = task;
}

void sprig_loop_cancel(sprig_loop *loop, sprig_task *task)
{
    if (!task->queued) {
        return;
    }
    sprig_task *prev = NULL;
    for (sprig_task *t = loop->tasks_head; t != NULL; prev = t, t = t->next) {
        if (t != task) {
            continue;
        }
        if (prev != NULL) {
            prev->next = t->next;
        } else {
            loop->tasks_head = t->next;
        }
        if (loop->tasks_tail == t) {
            loop->tasks_tail = prev;
        }
        break;
    }
    task->queued = false;
    task->next = NULL;
}

/* Run the tasks queued before this call; tasks they defer wait for the next pass, so a task
 * that re-defers itself cannot starve timers and I/O. */
static void run_tasks(sprig_loop *loop)
{
    sprig_task *last = loop->tasks_tail;
    while (last != NULL && loop->tasks_head != NULL) {
        sprig_task *t = loop->tasks_head;
        loop->tasks_head = t->next;
        if (loop->tasks_head == NULL) {
            loop->tasks_tail = NULL;
        }
        t->next = NULL;
        t->queued = false;
        sprig__loop_enter(loop);
        t->fn(t->arg);
        sprig__loop_leave(loop);
        if (t == last) {
            break;
        }
    }
}

/* ---- timers ---------------------------------------------------------------------------- */

void sprig_timer_init(sprig_timer *timer, sprig_timer_fn fn, void *arg)
{
    timer->next = NULL;
    timer->deadline = 0;
    timer->fn = fn;
    timer->arg = arg;
    timer->pass = 0;
    timer->armed = false;
}

void sprig_timer_stop(sprig_loop *loop, sprig_timer *timer)
{
    if (!timer->armed) {
        return;
    }
    for (sprig_timer **pp = &loop->timers; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == timer) {
            *pp = timer->next;
            break;
        }
    }
    timer->next = NULL;
    timer->armed = false;
}

void sprig_timer_start_at(sprig_loop *loop, sprig_timer *timer, sprig_time deadline)
{
    sprig_timer_stop(loop, timer);
    timer->deadline = deadline;
    timer->pass = loop->timer_pass;
    timer->armed = true;
    /* Equal deadlines keep arming order. */
    sprig_timer **pp = &loop->timers;
    while (*pp != NULL && (*pp)->deadline <= deadline) {
        pp = &(*pp)->next;
    }
    timer->next = *pp;
    *pp = timer;
}

void sprig_timer_start(sprig_loop *loop, sprig_timer *timer, sprig_time delay)
{
    sprig_timer_start_at(loop, timer, sprig_time_add(loop->now, delay));
}

/* Fire timers due at `now`, earliest first. Each is taken off the armed list just before it
 * fires, so callbacks may stop or re-arm any timer, due or not. A timer armed during this pass
 * (stamped with it) waits for the next pass even if due, so a zero-delay timer cannot spin here
 * forever. */
static void run_timers(sprig_loop *loop, sprig_time now)
{
    uint32_t pass = ++loop->timer_pass;
    for (;;) {
        sprig_timer *t = loop->timers;
        while (t != NULL && t->deadline <= now && t->pass == pass) {
            t = t->next;
        }
        if (t == NULL || t->deadline > now) {
            return;
        }
        sprig_timer_stop(loop, t);
        sprig__loop_enter(loop);
        t->fn(t, t->arg);
        sprig__loop_leave(loop);
    }
}

/* ---- pollers --------------------------------------------------------------------------- */

void sprig_loop_add_poller(sprig_loop *loop, sprig_poller *poller)
{
    for (sprig_poller *p = loop->pollers; p != NULL; p = p->next) {
        if (p == poller) {
            return;
        }
    }
    poller->next = loop->pollers;
    loop->pollers = poller;
}

void sprig_loop_remove_poller(sprig_loop *loop, sprig_poller *poller)
{
    for (sprig_poller **pp = &loop->pollers; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == poller) {
            *pp = poller->next;
            poller->next = NULL;
            return;
        }
    }
}

static void run_pollers(sprig_loop *loop, sprig_time now)
{
    sprig_poller *p = loop->pollers;
    while (p != NULL) {
        sprig_poller *next = p->next; /* the poller may remove itself */
        sprig__loop_enter(loop);
        p->fn(p, now);
        sprig__loop_leave(loop);
        p = next;
    }
}

/* ---- passes ---------------------------------------------------------------------------- */

sprig_time sprig_loop_next_deadline(const sprig_loop *loop)
{
    if (loop->tasks_head != NULL) {
        return loop->now;
    }
    return loop->timers != NULL ? loop->timers->deadline : SPRIG_TIME_NEVER;
}

void sprig_loop_poll(sprig_loop *loop, sprig_time now)
{
    loop->now = now;
    run_timers(loop, now);
    run_pollers(loop, now);
    run_tasks(loop);
}

static sprig_time wait_budget(const sprig_loop *loop, sprig_time now, sprig_time until)
{
    sprig_time next = sprig_loop_next_deadline(loop);
    if (until < next) {
        next = until;
    }
    /* Nothing scheduled: NEVER lets the provider wait without arming a timer. */
    sprig_time wait = next == SPRIG_TIME_NEVER ? SPRIG_TIME_NEVER : next > now ? next - now : 0;
    /* Pollers stand for I/O the provider cannot see (a UART, a simulated link): keep calling
     * them often rather than sleeping in the provider until an fd or timer wakes us. */
    if (loop->pollers != NULL && loop->cfg.io != NULL && wait > POLLER_MAX_WAIT) {
        wait = POLLER_MAX_WAIT;
    }
    return wait;
}

sprig_status sprig_loop_run_once(sprig_loop *loop, sprig_time max_wait)
{
    if (sprig_loop_in_callback(loop)) {
        return SPRIG_STATUS_FAILED_PRECONDITION;
    }
    sprig_time now = sprig_loop_now(loop);
    sprig_time wait = wait_budget(loop, now, sprig_time_add(now, max_wait));
    sprig_status st = SPRIG_STATUS_OK;
    if (loop->cfg.io != NULL) {
        sprig__loop_enter(loop); /* I/O handlers call user callbacks */
        st = loop->cfg.io->wait(loop->cfg.io_ctx, wait);
        sprig__loop_leave(loop);
    } else if (wait > 0 && loop->cfg.idle != NULL) {
        loop->cfg.idle(loop->cfg.idle_ctx, sprig_time_add(now, wait));
    }
    sprig_loop_poll(loop, sprig_loop_now(loop));
    return st;
}

sprig_status sprig_loop_run(sprig_loop *loop)
{
    if (sprig_loop_in_callback(loop)) {
        return SPRIG_STATUS_FAILED_PRECONDITION;
    }
    loop->stopping = false;
    while (!loop->stopping) {
        sprig_status st = sprig_loop_run_once(loop, SPRIG_TIME_NEVER);
        if (st != SPRIG_STATUS_OK) {
            return st;
        }
    }
    loop->stopping = false;
    return SPRIG_STATUS_OK;
}

void sprig_loop_stop(sprig_loop *loop)
{
    loop->stopping = true;
}

sprig_status sprig_loop_run_until(sprig_loop *loop, bool (*done)(void *arg), void *arg,
                                  sprig_time timeout)
{
    if (sprig_loop_in_callback(loop)) {
        return SPRIG_STATUS_FAILED_PRECONDITION;
    }
    sprig_time deadline = sprig_time_add(sprig_loop_now(loop), timeout);
    while (!done(arg)) {
        sprig_time now = loop->now;
        if (now >= deadline) {
            return SPRIG_STATUS_DEADLINE_EXCEEDED;
        }
        sprig_status st = sprig_loop_run_once(loop, deadline - now);
        if (st != SPRIG_STATUS_OK) {
            return st;
        }
    }
    return SPRIG_STATUS_OK;
}

/* ---- backends -------------------------------------------------------------------------- */

void sprig_loop_add_backend(sprig_loop *loop, sprig_backend *backend)
{
    for (sprig_backend *b = loop->backends; b != NULL; b = b->next) {
        if (b == backend) {
            return;
        }
    }
    backend->next = loop->backends;
    loop->backends = backend;
}

void sprig_loop_remove_backend(sprig_loop *loop, sprig_backend *backend)
{
    for (sprig_backend **pp = &loop->backends; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == backend) {
            *pp = backend->next;
            backend->next = NULL;
            return;
        }
    }
}
