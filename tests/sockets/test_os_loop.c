/*
 * test_os_loop.c — the epoll loop of sprig/os.h with the real clock: timers, posting from other
 * threads, blocking calls and their refusal inside callbacks, edge-triggered fd watches, and
 * init/deinit.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* usleep, clock_gettime */
#endif

#include "support.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "sprig/os.h"

static sprig_time wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (sprig_time)ts.tv_sec * 1000000u + (sprig_time)ts.tv_nsec / 1000u;
}

static int setup(void **state)
{
    sprig_os_loop *ol = calloc(1, sizeof *ol);
    assert_non_null(ol);
    assert_int_equal(sprig_os_loop_init(ol), SPRIG_STATUS_OK);
    *state = ol;
    return 0;
}

static int teardown(void **state)
{
    sprig_os_loop *ol = *state;
    sprig_os_loop_deinit(ol);
    free(ol);
    return 0;
}

/* ---- clock ----------------------------------------------------------------------------- */

static void test_os_loop_clock_is_monotonic_microseconds(void **state)
{
    (void)state;
    sprig_clock clock = sprig_os_clock();
    sprig_time a = sprig_clock_now(&clock);
    sprig_time w0 = wall_us();
    usleep(20000);
    sprig_time b = sprig_clock_now(&clock);
    sprig_time w1 = wall_us();
    assert_true(b > a);
    /* Same time base as CLOCK_MONOTONIC in microseconds (allow scheduling slack). */
    assert_true(b - a >= 20000);
    assert_true((b - a) <= (w1 - w0) + 2000);
}

/* ---- timers ---------------------------------------------------------------------------- */

typedef struct fired {
    sprig_loop *loop;
    int order[8];
    sprig_time when[8];
    sprig_time deadline[8];
    int count;
} fired;

typedef struct tagged_timer {
    sprig_timer timer;
    fired *log;
    int tag;
} tagged_timer;

static void on_timer(sprig_timer *t, void *arg)
{
    tagged_timer *tt = arg;
    fired *log = tt->log;
    log->order[log->count] = tt->tag;
    log->when[log->count] = wall_us();
    log->deadline[log->count] = t->deadline;
    log->count++;
}

static bool all_fired(void *arg)
{
    return ((fired *)arg)->count == 3;
}

static void test_os_loop_timers_fire_in_order(void **state)
{
    sprig_os_loop *ol = *state;
    fired log = {.loop = &ol->loop};
    tagged_timer t[3];
    const int delays_ms[3] = {30, 10, 20};
    sprig_loop_now(&ol->loop);
    for (int i = 0; i < 3; i++) {
        t[i].log = &log;
        t[i].tag = delays_ms[i];
        sprig_timer_init(&t[i].timer, on_timer, &t[i]);
        sprig_timer_start(&ol->loop, &t[i].timer, SPRIG_TIME_MS(delays_ms[i]));
    }
    assert_int_equal(sprig_loop_run_until(&ol->loop, all_fired, &log, SPRIG_TIME_S(5)),
                     SPRIG_STATUS_OK);
    assert_int_equal(log.order[0], 10);
    assert_int_equal(log.order[1], 20);
    assert_int_equal(log.order[2], 30);
    /* The loop's clock is CLOCK_MONOTONIC: no timer ran before its deadline. */
    for (int i = 0; i < 3; i++) {
        assert_true(log.when[i] >= log.deadline[i]);
    }
}

typedef struct passes {
    sprig_timer timer;
    bool fired;
} passes;

static void on_pass_timer(sprig_timer *t, void *arg)
{
    (void)t;
    ((passes *)arg)->fired = true;
}

/* A deadline that is not a whole millisecond away: the wait is rounded up, so the loop sleeps
 * once and wakes when the timer is due, instead of spinning through zero-length waits. */
static void test_os_loop_timer_wait_rounds_up(void **state)
{
    sprig_os_loop *ol = *state;
    passes p = {0};
    sprig_timer_init(&p.timer, on_pass_timer, &p);
    sprig_time start = sprig_loop_now(&ol->loop);
    sprig_timer_start(&ol->loop, &p.timer, SPRIG_TIME_US(5500));
    int n = 0;
    while (!p.fired && n < 1000) {
        assert_int_equal(sprig_loop_run_once(&ol->loop, SPRIG_TIME_NEVER), SPRIG_STATUS_OK);
        n++;
    }
    assert_true(p.fired);
    assert_true(wall_us() >= start + 5500);
    assert_true(n <= 3);
}

/* ---- run_until and blocking inside callbacks -------------------------------------------- */

static bool never(void *arg)
{
    (void)arg;
    return false;
}

static void test_os_loop_run_until_times_out(void **state)
{
    sprig_os_loop *ol = *state;
    sprig_time t0 = wall_us();
    assert_int_equal(sprig_loop_run_until(&ol->loop, never, NULL, SPRIG_TIME_MS(50)),
                     SPRIG_STATUS_DEADLINE_EXCEEDED);
    sprig_time took = wall_us() - t0;
    assert_true(took >= 50000);
    assert_true(took < 2000000);
}

typedef struct nested {
    sprig_loop *loop;
    sprig_status once;
    sprig_status until;
    sprig_status run;
    bool done;
} nested;

static void try_blocking(nested *n)
{
    n->once = sprig_loop_run_once(n->loop, 0);
    n->until = sprig_loop_run_until(n->loop, never, NULL, SPRIG_TIME_MS(1));
    n->run = sprig_loop_run(n->loop);
    n->done = true;
}

static void on_nested_timer(sprig_timer *t, void *arg)
{
    (void)t;
    try_blocking(arg);
}

static bool nested_done(void *arg)
{
    return ((nested *)arg)->done;
}

static void assert_refused(const nested *n)
{
    assert_true(n->done);
    assert_int_equal(n->once, SPRIG_STATUS_FAILED_PRECONDITION);
    assert_int_equal(n->until, SPRIG_STATUS_FAILED_PRECONDITION);
    assert_int_equal(n->run, SPRIG_STATUS_FAILED_PRECONDITION);
}

static void test_os_loop_blocking_call_in_timer_refused(void **state)
{
    sprig_os_loop *ol = *state;
    nested n = {.loop = &ol->loop};
    sprig_timer t;
    sprig_timer_init(&t, on_nested_timer, &n);
    sprig_timer_start(&ol->loop, &t, 0);
    assert_int_equal(sprig_loop_run_until(&ol->loop, nested_done, &n, SPRIG_TIME_S(5)),
                     SPRIG_STATUS_OK);
    assert_refused(&n);
}

static void on_nested_fd(sprig_os_fd *w, uint32_t events)
{
    (void)events;
    try_blocking(w->arg);
}

static void test_os_loop_blocking_call_in_fd_callback_refused(void **state)
{
    sprig_os_loop *ol = *state;
    nested n = {.loop = &ol->loop};
    int p[2];
    sprig_os_fd w;
    assert_int_equal(pipe(p), 0);
    assert_int_equal(sprig_os_loop_add_fd(ol, &w, p[0], SPRIG_OS_EV_IN, on_nested_fd, &n),
                     SPRIG_STATUS_OK);
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(sprig_loop_run_until(&ol->loop, nested_done, &n, SPRIG_TIME_S(5)),
                     SPRIG_STATUS_OK);
    assert_refused(&n);
    sprig_os_loop_del_fd(ol, &w);
    close(p[0]);
    close(p[1]);
}

/* ---- posting from other threads --------------------------------------------------------- */

typedef struct post_job {
    sprig_os_loop *ol;
    sprig_task task;
    pthread_t ran_on;
    int runs;
    unsigned delay_us;
    sprig_status post_status;
} post_job;

static void post_run(void *arg)
{
    post_job *j = arg;
    j->ran_on = pthread_self();
    j->runs++;
}

static void *post_thread(void *arg)
{
    post_job *j = arg;
    if (j->delay_us > 0) {
        usleep(j->delay_us);
    }
    j->post_status = sprig_os_loop_post(j->ol, &j->task);
    return NULL;
}

static bool post_ran(void *arg)
{
    return ((post_job *)arg)->runs > 0;
}

static void test_os_loop_post_from_thread_runs_on_loop(void **state)
{
    sprig_os_loop *ol = *state;
    post_job j = {.ol = ol};
    pthread_t th;
    sprig_task_init(&j.task, post_run, &j);
    assert_int_equal(pthread_create(&th, NULL, post_thread, &j), 0);
    assert_int_equal(sprig_loop_run_until(&ol->loop, post_ran, &j, SPRIG_TIME_S(5)),
                     SPRIG_STATUS_OK);
    pthread_join(th, NULL);
    assert_int_equal(j.post_status, SPRIG_STATUS_OK);
    assert_int_equal(j.runs, 1);
    assert_true(pthread_equal(j.ran_on, pthread_self()));
}

/* The loop sleeps with no timer at all; only the eventfd can wake it. */
static void test_os_loop_post_wakes_sleeping_loop(void **state)
{
    sprig_os_loop *ol = *state;
    post_job j = {.ol = ol, .delay_us = 50000};
    pthread_t th;
    sprig_task_init(&j.task, post_run, &j);
    assert_int_equal(pthread_create(&th, NULL, post_thread, &j), 0);
    sprig_time t0 = wall_us();
    int rounds = 0;
    while (j.runs == 0 && rounds < 10) {
        assert_int_equal(sprig_loop_run_once(&ol->loop, SPRIG_TIME_S(10)), SPRIG_STATUS_OK);
        rounds++;
    }
    sprig_time took = wall_us() - t0;
    pthread_join(th, NULL);
    assert_int_equal(j.runs, 1);
    assert_true(took < SPRIG_TIME_S(5));
}

#define POSTERS 4
#define POSTS   500

typedef struct poster {
    sprig_os_loop *ol;
    sprig_task tasks[POSTS];
    int runs[POSTS];
    int *total;
} poster;

typedef struct post_slot {
    poster *p;
    int i;
} post_slot;

static post_slot slots[POSTERS][POSTS];

static void count_run(void *arg)
{
    post_slot *slot = arg;
    slot->p->runs[slot->i]++;
    (*slot->p->total)++;
}

static void *post_many(void *arg)
{
    poster *p = arg;
    for (int i = 0; i < POSTS; i++) {
        if (sprig_os_loop_post(p->ol, &p->tasks[i]) != SPRIG_STATUS_OK) {
            return p;
        }
    }
    return NULL;
}

static bool total_reached(void *arg)
{
    return *(int *)arg == POSTERS * POSTS;
}

static void test_os_loop_post_many_threads_each_task_once(void **state)
{
    sprig_os_loop *ol = *state;
    static poster posters[POSTERS];
    pthread_t th[POSTERS];
    int total = 0;
    memset(posters, 0, sizeof posters);
    for (int t = 0; t < POSTERS; t++) {
        posters[t].ol = ol;
        posters[t].total = &total;
        for (int i = 0; i < POSTS; i++) {
            slots[t][i].p = &posters[t];
            slots[t][i].i = i;
            sprig_task_init(&posters[t].tasks[i], count_run, &slots[t][i]);
        }
    }
    for (int t = 0; t < POSTERS; t++) {
        assert_int_equal(pthread_create(&th[t], NULL, post_many, &posters[t]), 0);
    }
    assert_int_equal(sprig_loop_run_until(&ol->loop, total_reached, &total, SPRIG_TIME_S(10)),
                     SPRIG_STATUS_OK);
    for (int t = 0; t < POSTERS; t++) {
        void *ret = NULL;
        pthread_join(th[t], &ret);
        assert_null(ret);
        for (int i = 0; i < POSTS; i++) {
            assert_int_equal(posters[t].runs[i], 1);
        }
    }
}

static void test_os_loop_post_queued_task_runs_once(void **state)
{
    sprig_os_loop *ol = *state;
    post_job j = {.ol = ol};
    sprig_task_init(&j.task, post_run, &j);
    assert_int_equal(sprig_os_loop_post(ol, &j.task), SPRIG_STATUS_OK);
    assert_int_equal(sprig_os_loop_post(ol, &j.task), SPRIG_STATUS_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sprig_loop_run_once(&ol->loop, SPRIG_TIME_MS(10)), SPRIG_STATUS_OK);
    }
    assert_int_equal(j.runs, 1);
    /* Once it has run, it can be posted again. */
    assert_int_equal(sprig_os_loop_post(ol, &j.task), SPRIG_STATUS_OK);
    assert_int_equal(sprig_loop_run_until(&ol->loop, post_ran, &j, SPRIG_TIME_S(5)),
                     SPRIG_STATUS_OK);
    for (int i = 0; i < 2 && j.runs < 2; i++) {
        assert_int_equal(sprig_loop_run_once(&ol->loop, SPRIG_TIME_MS(10)), SPRIG_STATUS_OK);
    }
    assert_int_equal(j.runs, 2);
}

/* ---- fd watches ------------------------------------------------------------------------ */

typedef struct watch_log {
    int calls;
    uint32_t events;
} watch_log;

static void on_watch(sprig_os_fd *w, uint32_t events)
{
    watch_log *log = w->arg;
    log->calls++;
    log->events |= events;
}

static void test_os_loop_fd_watch_is_edge_triggered(void **state)
{
    sprig_os_loop *ol = *state;
    watch_log log = {0};
    sprig_os_fd w;
    int p[2];
    char c;
    assert_int_equal(pipe(p), 0);
    assert_int_equal(sprig_os_loop_add_fd(ol, &w, p[0], SPRIG_OS_EV_IN, on_watch, &log),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_loop_run_once(&ol->loop, 0), SPRIG_STATUS_OK);
    assert_int_equal(log.calls, 0);
    assert_int_equal(write(p[1], "a", 1), 1);
    assert_int_equal(sprig_loop_run_once(&ol->loop, SPRIG_TIME_S(5)), SPRIG_STATUS_OK);
    assert_int_equal(log.calls, 1);
    assert_int_equal(log.events, SPRIG_OS_EV_IN);
    /* The byte is still unread, but no new edge: not reported again. */
    assert_int_equal(sprig_loop_run_once(&ol->loop, SPRIG_TIME_MS(30)), SPRIG_STATUS_OK);
    assert_int_equal(log.calls, 1);
    /* More data is a new edge. */
    assert_int_equal(write(p[1], "b", 1), 1);
    assert_int_equal(sprig_loop_run_once(&ol->loop, SPRIG_TIME_S(5)), SPRIG_STATUS_OK);
    assert_int_equal(log.calls, 2);
    assert_int_equal(read(p[0], &c, 1), 1);
    /* Hang-up is reported as ERR. */
    close(p[1]);
    log.events = 0;
    assert_int_equal(sprig_loop_run_once(&ol->loop, SPRIG_TIME_S(5)), SPRIG_STATUS_OK);
    assert_int_equal(log.calls, 3);
    assert_true(log.events & SPRIG_OS_EV_ERR);
    sprig_os_loop_del_fd(ol, &w);
    close(p[0]);
}

static void test_os_loop_fd_watch_mod_changes_events(void **state)
{
    sprig_os_loop *ol = *state;
    watch_log log = {0};
    sprig_os_fd w;
    int p[2];
    assert_int_equal(pipe(p), 0);
    /* The write end is writable at once. */
    assert_int_equal(sprig_os_loop_add_fd(ol, &w, p[1], SPRIG_OS_EV_OUT, on_watch, &log),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_loop_run_once(&ol->loop, SPRIG_TIME_S(5)), SPRIG_STATUS_OK);
    assert_int_equal(log.calls, 1);
    assert_int_equal(log.events, SPRIG_OS_EV_OUT);
    /* Watching IN only on a write end: nothing more arrives. */
    assert_int_equal(sprig_os_loop_mod_fd(ol, &w, SPRIG_OS_EV_IN), SPRIG_STATUS_OK);
    assert_int_equal(w.events, SPRIG_OS_EV_IN);
    assert_int_equal(sprig_loop_run_once(&ol->loop, SPRIG_TIME_MS(20)), SPRIG_STATUS_OK);
    assert_int_equal(log.calls, 1);
    /* Back to OUT: MOD re-arms, and the fd is writable. */
    assert_int_equal(sprig_os_loop_mod_fd(ol, &w, SPRIG_OS_EV_OUT), SPRIG_STATUS_OK);
    assert_int_equal(sprig_loop_run_once(&ol->loop, SPRIG_TIME_S(5)), SPRIG_STATUS_OK);
    assert_int_equal(log.calls, 2);
    sprig_os_loop_del_fd(ol, &w);
    close(p[0]);
    close(p[1]);
}

/* Two fds ready in the same epoll batch; whichever callback runs first removes the other
 * watch and scribbles over it. The second must not be called. */
typedef struct pair_watch {
    sprig_os_loop *ol;
    sprig_os_fd w[2];
    int calls;
} pair_watch;

static void on_pair(sprig_os_fd *w, uint32_t events)
{
    (void)events;
    pair_watch *pw = w->arg;
    pw->calls++;
    sprig_os_fd *other = w == &pw->w[0] ? &pw->w[1] : &pw->w[0];
    sprig_os_loop_del_fd(pw->ol, other);
    memset(other, 0xa5, sizeof *other);
    other->fd = -1;
}

static void test_os_loop_del_fd_forgets_pending_event(void **state)
{
    sprig_os_loop *ol = *state;
    pair_watch pw = {.ol = ol};
    int a[2], b[2];
    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    assert_int_equal(write(a[1], "a", 1), 1);
    assert_int_equal(write(b[1], "b", 1), 1);
    assert_int_equal(sprig_os_loop_add_fd(ol, &pw.w[0], a[0], SPRIG_OS_EV_IN, on_pair, &pw),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_os_loop_add_fd(ol, &pw.w[1], b[0], SPRIG_OS_EV_IN, on_pair, &pw),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_loop_run_once(&ol->loop, SPRIG_TIME_S(5)), SPRIG_STATUS_OK);
    assert_int_equal(pw.calls, 1);
    assert_int_equal(sprig_loop_run_once(&ol->loop, SPRIG_TIME_MS(20)), SPRIG_STATUS_OK);
    assert_int_equal(pw.calls, 1);
    sprig_os_loop_del_fd(ol, &pw.w[0]);
    sprig_os_loop_del_fd(ol, &pw.w[1]);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}

static void test_os_loop_add_fd_rejects_bad_arguments(void **state)
{
    sprig_os_loop *ol = *state;
    sprig_os_fd w;
    watch_log log = {0};
    assert_int_equal(sprig_os_loop_add_fd(ol, &w, -1, SPRIG_OS_EV_IN, on_watch, &log),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_os_loop_add_fd(ol, &w, 0, SPRIG_OS_EV_IN, NULL, &log),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    /* A closed fd number is an OS error, mapped. */
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    close(p[1]);
    assert_int_not_equal(sprig_os_loop_add_fd(ol, &w, p[0], SPRIG_OS_EV_IN, on_watch, &log),
                         SPRIG_STATUS_OK);
}

/* ---- lifetime -------------------------------------------------------------------------- */

static void test_os_loop_deinit_twice_and_reinit(void **state)
{
    (void)state;
    sprig_os_loop ol;
    memset(&ol, 0, sizeof ol);
    sprig_os_loop_deinit(&ol); /* zeroed: never initialised */
    assert_int_equal(sprig_os_loop_init(&ol), SPRIG_STATUS_OK);
    sprig_os_loop_deinit(&ol);
    sprig_os_loop_deinit(&ol);
    sprig_task t;
    sprig_task_init(&t, post_run, NULL);
    assert_int_equal(sprig_os_loop_post(&ol, &t), SPRIG_STATUS_FAILED_PRECONDITION);
    assert_int_equal(sprig_os_loop_init(&ol), SPRIG_STATUS_OK);
    assert_int_equal(sprig_loop_run_once(&ol.loop, 0), SPRIG_STATUS_OK);
    sprig_os_loop_deinit(&ol);
    sprig_os_loop_deinit(NULL);
}

/* Out of fds: init fails with a mapped status, leaves nothing open, and deinit is safe. */
static void test_os_loop_failed_init_then_deinit(void **state)
{
    (void)state;
    sprig_os_loop ol;
    struct rlimit saved, low;
    int lowest = dup(0);
    assert_true(lowest >= 0);
    close(lowest);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    low = saved;
    low.rlim_cur = (rlim_t)lowest + 1; /* room for epoll, none for the eventfd */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    sprig_status st = sprig_os_loop_init(&ol);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    assert_int_equal(st, SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_false(ol.ready);
    sprig_os_loop_deinit(&ol);
    sprig_os_loop_deinit(&ol);
    /* The epoll fd made before the failure was closed again. */
    int again = dup(0);
    assert_int_equal(again, lowest);
    close(again);
    assert_int_equal(sprig_os_loop_init(&ol), SPRIG_STATUS_OK);
    sprig_os_loop_deinit(&ol);
}

static sprig_time fake_now(void *ctx)
{
    return *(sprig_time *)ctx;
}

static void test_os_loop_from_recognises_only_os_loops(void **state)
{
    sprig_os_loop *ol = *state;
    assert_ptr_equal(sprig_os_loop_from(&ol->loop), ol);
    assert_null(sprig_os_loop_from(NULL));
    sprig_time t = 0;
    sprig_loop plain;
    sprig_loop_cfg cfg = {.clock = {.now = fake_now, .ctx = &t}};
    assert_int_equal(sprig_loop_init(&plain, &cfg), SPRIG_STATUS_OK);
    assert_null(sprig_os_loop_from(&plain));
    sprig_loop_deinit(&plain);
}

#define CASE(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_os_loop_clock_is_monotonic_microseconds),
        CASE(test_os_loop_timers_fire_in_order),
        CASE(test_os_loop_timer_wait_rounds_up),
        CASE(test_os_loop_run_until_times_out),
        CASE(test_os_loop_blocking_call_in_timer_refused),
        CASE(test_os_loop_blocking_call_in_fd_callback_refused),
        CASE(test_os_loop_post_from_thread_runs_on_loop),
        CASE(test_os_loop_post_wakes_sleeping_loop),
        CASE(test_os_loop_post_many_threads_each_task_once),
        CASE(test_os_loop_post_queued_task_runs_once),
        CASE(test_os_loop_fd_watch_is_edge_triggered),
        CASE(test_os_loop_fd_watch_mod_changes_events),
        CASE(test_os_loop_del_fd_forgets_pending_event),
        CASE(test_os_loop_add_fd_rejects_bad_arguments),
        cmocka_unit_test(test_os_loop_deinit_twice_and_reinit),
        cmocka_unit_test(test_os_loop_failed_init_then_deinit),
        CASE(test_os_loop_from_recognises_only_os_loops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
