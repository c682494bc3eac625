/* The portable loop, driven by a fake clock: timers, tasks, pollers, run_until. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sprig/loop.h"

typedef struct fixture {
    sprig_fake_clock clock;
    sprig_loop loop;
    char log[64];
    size_t n;
} fixture;

static int setup(void **state)
{
    static fixture f;
    f = (fixture){0};
    sprig_fake_clock_init(&f.clock, SPRIG_TIME_S(100));
    sprig_loop_cfg cfg = {.clock = f.clock.clock};
    assert_int_equal(sprig_loop_init(&f.loop, &cfg), SPRIG_STATUS_OK);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sprig_loop_deinit(&f->loop);
    sprig_loop_deinit(&f->loop);
    return 0;
}

static void note(fixture *f, char c)
{
    if (f->n + 1 < sizeof(f->log)) {
        f->log[f->n++] = c;
        f->log[f->n] = '\0';
    }
}

typedef struct tagged {
    fixture *f;
    char c;
} tagged;

static void timer_note(sprig_timer *t, void *arg)
{
    (void)t;
    tagged *tg = arg;
    note(tg->f, tg->c);
}

static void task_note(void *arg)
{
    tagged *tg = arg;
    note(tg->f, tg->c);
}

static void test_loop_init_needs_clock(void **state)
{
    (void)state;
    sprig_loop l;
    sprig_loop_cfg cfg = {0};
    assert_int_equal(sprig_loop_init(&l, &cfg), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_loop_init(&l, NULL), SPRIG_STATUS_INVALID_ARGUMENT);
}

static void test_loop_timers_fire_in_deadline_order(void **state)
{
    fixture *f = *state;
    tagged a = {f, 'a'}, b = {f, 'b'}, c = {f, 'c'}, d = {f, 'd'};
    sprig_timer ta, tb, tc, td;
    sprig_timer_init(&ta, timer_note, &a);
    sprig_timer_init(&tb, timer_note, &b);
    sprig_timer_init(&tc, timer_note, &c);
    sprig_timer_init(&td, timer_note, &d);
    sprig_timer_start(&f->loop, &ta, SPRIG_TIME_MS(30));
    sprig_timer_start(&f->loop, &tb, SPRIG_TIME_MS(10));
    sprig_timer_start(&f->loop, &tc, SPRIG_TIME_MS(20));
    sprig_timer_start(&f->loop, &td, SPRIG_TIME_MS(10)); /* same deadline as b: after b */
    assert_int_equal(sprig_loop_next_deadline(&f->loop), SPRIG_TIME_S(100) + SPRIG_TIME_MS(10));
    sprig_loop_poll(&f->loop, SPRIG_TIME_S(100) + SPRIG_TIME_MS(9));
    assert_string_equal(f->log, "");
    sprig_loop_poll(&f->loop, SPRIG_TIME_S(100) + SPRIG_TIME_MS(20));
    assert_string_equal(f->log, "bdc");
    sprig_timer_stop(&f->loop, &ta);
    sprig_timer_stop(&f->loop, &ta); /* safe twice */
    assert_false(sprig_timer_armed(&ta));
    sprig_loop_poll(&f->loop, SPRIG_TIME_S(200));
    assert_string_equal(f->log, "bdc");
    assert_int_equal(sprig_loop_next_deadline(&f->loop), SPRIG_TIME_NEVER);
}

static void test_loop_timer_rearm_moves_it(void **state)
{
    fixture *f = *state;
    tagged a = {f, 'a'}, b = {f, 'b'};
    sprig_timer ta, tb;
    sprig_timer_init(&ta, timer_note, &a);
    sprig_timer_init(&tb, timer_note, &b);
    sprig_timer_start(&f->loop, &ta, SPRIG_TIME_MS(5));
    sprig_timer_start(&f->loop, &tb, SPRIG_TIME_MS(10));
    sprig_timer_start(&f->loop, &ta, SPRIG_TIME_MS(15));
    sprig_loop_poll(&f->loop, SPRIG_TIME_S(101));
    assert_string_equal(f->log, "ba");
}

static void rearm_zero(sprig_timer *t, void *arg)
{
    fixture *f = arg;
    note(f, 'z');
    sprig_timer_start(&f->loop, t, 0);
}

static void test_loop_zero_delay_timer_cannot_spin(void **state)
{
    fixture *f = *state;
    sprig_timer t;
    sprig_timer_init(&t, rearm_zero, f);
    sprig_timer_start(&f->loop, &t, 0);
    sprig_loop_poll(&f->loop, f->clock.now);
    assert_string_equal(f->log, "z");
    sprig_loop_poll(&f->loop, f->clock.now);
    assert_string_equal(f->log, "zz");
    sprig_timer_stop(&f->loop, &t);
}

typedef struct rearm_other {
    fixture *f;
    sprig_timer *other;
} rearm_other;

static void timer_rearms_other(sprig_timer *t, void *arg)
{
    (void)t;
    rearm_other *r = arg;
    note(r->f, 'a');
    sprig_timer_start_at(&r->f->loop, r->other, SPRIG_TIME_S(100) + SPRIG_TIME_MS(500));
}

/* A callback that re-arms another timer due in the same pass must neither fire it early nor
 * lose the timers behind it. */
static void test_loop_callback_rearms_another_due_timer(void **state)
{
    fixture *f = *state;
    tagged b = {f, 'b'}, c = {f, 'c'};
    sprig_timer ta, tb, tc;
    rearm_other r = {f, &tb};
    sprig_timer_init(&ta, timer_rearms_other, &r);
    sprig_timer_init(&tb, timer_note, &b);
    sprig_timer_init(&tc, timer_note, &c);
    sprig_time t100 = SPRIG_TIME_S(100) + SPRIG_TIME_MS(100);
    sprig_timer_start_at(&f->loop, &ta, t100);
    sprig_timer_start_at(&f->loop, &tb, t100);
    sprig_timer_start_at(&f->loop, &tc, t100);
    sprig_loop_poll(&f->loop, t100);
    assert_string_equal(f->log, "ac");
    assert_true(sprig_timer_armed(&tb));
    sprig_loop_poll(&f->loop, SPRIG_TIME_S(100) + SPRIG_TIME_MS(499));
    assert_string_equal(f->log, "ac");
    sprig_loop_poll(&f->loop, SPRIG_TIME_S(100) + SPRIG_TIME_MS(500));
    assert_string_equal(f->log, "acb");
    assert_int_equal(sprig_loop_next_deadline(&f->loop), SPRIG_TIME_NEVER);
}

static void stop_other(sprig_timer *t, void *arg)
{
    (void)t;
    rearm_other *r = arg;
    note(r->f, 's');
    sprig_timer_stop(&r->f->loop, r->other);
}

static void test_loop_callback_stops_another_due_timer(void **state)
{
    fixture *f = *state;
    tagged b = {f, 'b'}, c = {f, 'c'};
    sprig_timer ta, tb, tc;
    rearm_other r = {f, &tb};
    sprig_timer_init(&ta, stop_other, &r);
    sprig_timer_init(&tb, timer_note, &b);
    sprig_timer_init(&tc, timer_note, &c);
    sprig_timer_start(&f->loop, &ta, SPRIG_TIME_MS(1));
    sprig_timer_start(&f->loop, &tb, SPRIG_TIME_MS(1));
    sprig_timer_start(&f->loop, &tc, SPRIG_TIME_MS(2));
    sprig_loop_poll(&f->loop, SPRIG_TIME_S(101));
    assert_string_equal(f->log, "sc");
}

static void redefer(void *arg)
{
    tagged *tg = arg;
    note(tg->f, tg->c);
    static sprig_task again;
    static tagged t2;
    t2 = (tagged){tg->f, 'R'};
    sprig_task_init(&again, task_note, &t2);
    sprig_loop_defer(&tg->f->loop, &again);
}

static void test_loop_tasks_fifo_and_deferred_tasks_wait(void **state)
{
    fixture *f = *state;
    tagged a = {f, 'a'}, b = {f, 'b'}, c = {f, 'c'};
    sprig_task ta, tb, tc;
    sprig_task_init(&ta, task_note, &a);
    sprig_task_init(&tb, redefer, &b);
    sprig_task_init(&tc, task_note, &c);
    sprig_loop_defer(&f->loop, &ta);
    sprig_loop_defer(&f->loop, &tb);
    sprig_loop_defer(&f->loop, &ta); /* already queued: no double run */
    sprig_loop_defer(&f->loop, &tc);
    sprig_loop_cancel(&f->loop, &tc);
    sprig_loop_cancel(&f->loop, &tc);
    assert_int_equal(sprig_loop_next_deadline(&f->loop), f->loop.now);
    sprig_loop_poll(&f->loop, f->clock.now);
    assert_string_equal(f->log, "ab"); /* R was deferred during the pass: next pass */
    sprig_loop_poll(&f->loop, f->clock.now);
    assert_string_equal(f->log, "abR");
}

static void poll_note(sprig_poller *p, sprig_time now)
{
    (void)now;
    tagged *tg = p->arg;
    note(tg->f, tg->c);
}

static void test_loop_pollers_run_every_pass(void **state)
{
    fixture *f = *state;
    tagged a = {f, 'p'};
    sprig_poller p = {.fn = poll_note, .arg = &a};
    sprig_loop_add_poller(&f->loop, &p);
    sprig_loop_add_poller(&f->loop, &p); /* once only */
    sprig_loop_poll(&f->loop, f->clock.now);
    sprig_loop_poll(&f->loop, f->clock.now);
    sprig_loop_remove_poller(&f->loop, &p);
    sprig_loop_poll(&f->loop, f->clock.now);
    assert_string_equal(f->log, "pp");
}

static void advance_idle(void *ctx, sprig_time deadline)
{
    sprig_fake_clock *c = ctx;
    sprig_fake_clock_set(c, deadline);
}

static bool flag_set(void *arg)
{
    return *(bool *)arg;
}

static void set_flag(sprig_timer *t, void *arg)
{
    (void)t;
    *(bool *)arg = true;
}

static void test_loop_run_until_uses_idle_hook_and_times_out(void **state)
{
    fixture *f = *state;
    sprig_loop l;
    sprig_loop_cfg cfg = {.clock = f->clock.clock, .idle = advance_idle, .idle_ctx = &f->clock};
    assert_int_equal(sprig_loop_init(&l, &cfg), SPRIG_STATUS_OK);
    bool flag = false;
    sprig_timer t;
    sprig_timer_init(&t, set_flag, &flag);
    sprig_timer_start(&l, &t, SPRIG_TIME_MS(50));
    sprig_time start = f->clock.now;
    assert_int_equal(sprig_loop_run_until(&l, flag_set, &flag, SPRIG_TIME_S(1)), SPRIG_STATUS_OK);
    assert_true(flag);
    assert_int_equal(f->clock.now - start, SPRIG_TIME_MS(50));
    flag = false;
    start = f->clock.now;
    assert_int_equal(sprig_loop_run_until(&l, flag_set, &flag, SPRIG_TIME_MS(200)),
                     SPRIG_STATUS_DEADLINE_EXCEEDED);
    assert_int_equal(f->clock.now - start, SPRIG_TIME_MS(200));
    sprig_loop_deinit(&l);
}

typedef struct nested {
    sprig_loop *loop;
    sprig_status inner;
} nested;

static bool never(void *arg)
{
    (void)arg;
    return false;
}

static void try_block(void *arg)
{
    nested *n = arg;
    n->inner = sprig_loop_run_until(n->loop, never, NULL, SPRIG_TIME_S(1));
    if (n->inner == SPRIG_STATUS_FAILED_PRECONDITION) {
        n->inner = sprig_loop_run_once(n->loop, 0);
    }
    if (n->inner == SPRIG_STATUS_FAILED_PRECONDITION) {
        n->inner = sprig_loop_run(n->loop);
    }
}

static void test_loop_blocking_inside_callback_is_refused(void **state)
{
    fixture *f = *state;
    nested n = {.loop = &f->loop, .inner = SPRIG_STATUS_OK};
    sprig_task t;
    sprig_task_init(&t, try_block, &n);
    sprig_loop_defer(&f->loop, &t);
    sprig_loop_poll(&f->loop, f->clock.now);
    assert_int_equal(n.inner, SPRIG_STATUS_FAILED_PRECONDITION);
    assert_false(sprig_loop_in_callback(&f->loop));
}

static void stop_loop(void *arg)
{
    sprig_loop_stop(arg);
}

static void test_loop_run_returns_after_stop(void **state)
{
    fixture *f = *state;
    sprig_task t;
    sprig_task_init(&t, stop_loop, &f->loop);
    sprig_loop_defer(&f->loop, &t);
    assert_int_equal(sprig_loop_run(&f->loop), SPRIG_STATUS_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop_init_needs_clock),
        cmocka_unit_test_setup_teardown(test_loop_timers_fire_in_deadline_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_timer_rearm_moves_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_zero_delay_timer_cannot_spin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_callback_rearms_another_due_timer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_loop_callback_stops_another_due_timer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_loop_tasks_fifo_and_deferred_tasks_wait, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_loop_pollers_run_every_pass, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_run_until_uses_idle_hook_and_times_out, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_loop_blocking_inside_callback_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_loop_run_returns_after_stop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
