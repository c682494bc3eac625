/* The fake clock: time moves only when a test says so. */
#include "sprig/clock.h"

static sprig_time fake_now(void *ctx)
{
    return ((const sprig_fake_clock *)ctx)->now;
}

void sprig_fake_clock_init(sprig_fake_clock *fc, sprig_time start)
{
    fc->clock.now = fake_now;
    fc->clock.ctx = fc;
    fc->now = start;
}

void sprig_fake_clock_advance(sprig_fake_clock *fc, sprig_time delta)
{
    fc->now = sprig_time_add(fc->now, delta);
}

void sprig_fake_clock_set(sprig_fake_clock *fc, sprig_time now)
{
    fc->now = now;
}
