/*
 * sprig/clock.h — time as an input.
 *
 * Contract
 *   sprig_time is a monotonic count of microseconds from an arbitrary origin. Nothing in sprig
 *   reads a clock behind your back: a loop is given a sprig_clock at init, and bare-metal code
 *   passes `now` to sprig_loop_poll(). A fake clock makes tests deterministic.
 *   Threading: a sprig_clock's `now` must be callable from the loop's thread.
 */
#ifndef SPRIG_CLOCK_H
#define SPRIG_CLOCK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t sprig_time;

#define SPRIG_TIME_NEVER UINT64_MAX
#define SPRIG_TIME_US(x) ((sprig_time)(x))
#define SPRIG_TIME_MS(x) ((sprig_time)(x)*1000u)
#define SPRIG_TIME_S(x)  ((sprig_time)(x)*1000000u)

typedef struct sprig_clock {
    sprig_time (*now)(void *ctx);
    void *ctx;
} sprig_clock;

static inline sprig_time sprig_clock_now(const sprig_clock *clock)
{
    return clock->now(clock->ctx);
}

/* a + b, saturating at SPRIG_TIME_NEVER (so now + timeout never wraps). */
static inline sprig_time sprig_time_add(sprig_time a, sprig_time b)
{
    return (a > SPRIG_TIME_NEVER - b) ? SPRIG_TIME_NEVER : a + b;
}

/* A clock that moves only when told to. Tests drive timers with it. */
typedef struct sprig_fake_clock {
    sprig_clock clock; /* pass &fc.clock where a sprig_clock is wanted */
    sprig_time now;
} sprig_fake_clock;

void sprig_fake_clock_init(sprig_fake_clock *fc, sprig_time start);
void sprig_fake_clock_advance(sprig_fake_clock *fc, sprig_time delta);
void sprig_fake_clock_set(sprig_fake_clock *fc, sprig_time now);

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_CLOCK_H */
