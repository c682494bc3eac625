/* simlink.c — deterministic simulated link (see sprig/ns_simlink.h). */
#include <string.h>

#include "sprig/ns_simlink.h"

#define PPM 1000000u

static uint32_t rnd(sprig_ns_simlink *sim)
{
    uint32_t x = sim->rng; /* xorshift32 */
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    sim->rng = x;
    return x;
}

static int chance(sprig_ns_simlink *sim, uint32_t ppm)
{
    return ppm > 0 && (rnd(sim) % PPM) < ppm;
}

static sprig_ns_simlink_end *end_of(sprig_ns_link *link)
{
    /* link is the first member of sprig_ns_simlink_end */
    return (sprig_ns_simlink_end *)(void *)link;
}

static int free_slot(const sprig_ns_simlink_end *e)
{
    for (int i = 0; i < SPRIG_CONFIG_NS_SIM_SLOTS; i++) {
        if (e->slots[i].buf == NULL) {
            return i;
        }
    }
    return -1;
}

static void arm_rx(sprig_ns_simlink_end *e)
{
    sprig_time first = SPRIG_TIME_NEVER;
    for (int i = 0; i < SPRIG_CONFIG_NS_SIM_SLOTS; i++) {
        if (e->slots[i].buf != NULL && e->slots[i].due < first) {
            first = e->slots[i].due;
        }
    }
    if (first == SPRIG_TIME_NEVER) {
        sprig_timer_stop(e->sim->cfg.loop, &e->rx_timer);
    } else {
        sprig_timer_start_at(e->sim->cfg.loop, &e->rx_timer, first);
    }
}

static void put_in_flight(sprig_ns_simlink_end *e, sprig_buf *buf, sprig_time due)
{
    int i = free_slot(e);
    if (i < 0) { /* cannot happen: a slot is checked before a packet is taken */
        sprig_buf_free(buf);
        return;
    }
    e->slots[i].buf = buf;
    e->slots[i].due = due;
    e->slots[i].order = e->order++;
}

static int free_slots(const sprig_ns_simlink_end *e)
{
    int n = 0;
    for (int i = 0; i < SPRIG_CONFIG_NS_SIM_SLOTS; i++) {
        n += e->slots[i].buf == NULL;
    }
    return n;
}

/* The packet has left the transmitter: impair it and put it in flight. */
static void launch(sprig_ns_simlink_end *e, sprig_buf *buf, sprig_time now)
{
    sprig_ns_simlink *sim = e->sim;
    e->stats.sent++;
    if (chance(sim, sim->cfg.loss_ppm)) {
        e->stats.lost++;
        sprig_buf_free(buf);
        return;
    }
    if (sprig_buf_len(buf) > 0 && chance(sim, sim->cfg.corrupt_ppm)) {
        uint32_t r = rnd(sim);
        sprig_buf_data(buf)[(r >> 3) % sprig_buf_len(buf)] ^= (uint8_t)(1u << (r & 7u));
        e->stats.corrupted++;
    }
    sprig_time due = sprig_time_add(now, sim->cfg.delay);
    if (chance(sim, sim->cfg.dup_ppm) && free_slots(e) >= 2) {
        sprig_buf *dup = sim->cfg.pool != NULL ? sprig_buf_alloc(sim->cfg.pool, 0) : NULL;
        if (dup != NULL &&
            sprig_buf_append(dup, sprig_buf_data(buf), sprig_buf_len(buf)) == SPRIG_STATUS_OK) {
            put_in_flight(e, dup, sprig_time_add(due, 1));
            e->stats.duplicated++;
        } else {
            sprig_buf_free(dup);
            e->stats.no_buffer++;
        }
    }
    if (chance(sim, sim->cfg.reorder_ppm)) {
        due = sprig_time_add(due, sim->cfg.reorder_delay);
        e->stats.reordered++;
    }
    put_in_flight(e, buf, due);
}

/* Take packets from the node while the wire and the delay line have room. */
static void pump(sprig_ns_simlink_end *e)
{
    sprig_ns_simlink *sim = e->sim;
    sprig_loop *loop = sim->cfg.loop;
    while (e->wire == NULL && free_slots(e) >= 2) {
        sprig_buf *buf = sprig_ns_link_next(&e->link);
        if (buf == NULL) {
            return;
        }
        sprig_time now = sprig_loop_now(loop);
        if (sim->cfg.bandwidth == 0) {
            launch(e, buf, now);
            arm_rx(e);
            continue;
        }
        uint64_t us =
            ((uint64_t)sprig_buf_len(buf) * 1000000u + sim->cfg.bandwidth - 1) / sim->cfg.bandwidth;
        e->wire = buf;
        sprig_timer_start_at(loop, &e->tx_timer, sprig_time_add(now, us));
    }
}

static void tx_done(sprig_timer *t, void *arg)
{
    (void)t;
    sprig_ns_simlink_end *e = arg;
    sprig_buf *buf = e->wire;
    e->wire = NULL;
    if (buf != NULL) {
        launch(e, buf, e->tx_timer.deadline);
    }
    sprig_loop_defer(e->sim->cfg.loop, &e->work); /* arm_rx + pump */
}

static void rx_due(sprig_timer *t, void *arg)
{
    (void)t;
    sprig_ns_simlink_end *e = arg;
    sprig_ns_simlink_end *peer = &e->sim->end[e->index ^ 1u];
    sprig_time now = sprig_loop_now(e->sim->cfg.loop);
    for (;;) {
        int best = -1;
        for (int i = 0; i < SPRIG_CONFIG_NS_SIM_SLOTS; i++) {
            if (e->slots[i].buf != NULL && e->slots[i].due <= now &&
                (best < 0 || e->slots[i].due < e->slots[best].due ||
                 (e->slots[i].due == e->slots[best].due &&
                  e->slots[i].order < e->slots[best].order))) {
                best = i;
            }
        }
        if (best < 0) {
            break;
        }
        sprig_buf *buf = e->slots[best].buf;
        e->slots[best].buf = NULL;
        e->stats.delivered++;
        sprig_ns_link_input(&peer->link, buf);
    }
    sprig_loop_defer(e->sim->cfg.loop, &e->work); /* arm_rx + pump */
}

static void work(void *arg)
{
    sprig_ns_simlink_end *e = arg;
    arm_rx(e);
    pump(e);
}

/* Called from anywhere, timer callbacks of other links included: defer. */
static void kick(sprig_ns_link *link)
{
    sprig_ns_simlink_end *e = end_of(link);
    sprig_loop_defer(e->sim->cfg.loop, &e->work);
}

static const sprig_ns_link_ops simlink_ops = {.kick = kick};

static sprig_status check_cfg(const sprig_ns_simlink_cfg *cfg)
{
    if (cfg == NULL || cfg->loop == NULL || cfg->mtu < SPRIG_NS_HEADER_LEN || cfg->loss_ppm > PPM ||
        cfg->dup_ppm > PPM || cfg->reorder_ppm > PPM || cfg->corrupt_ppm > PPM ||
        (cfg->dup_ppm > 0 && cfg->pool == NULL)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    return SPRIG_STATUS_OK;
}

sprig_status sprig_ns_simlink_init(sprig_ns_simlink *sim, const sprig_ns_simlink_cfg *cfg)
{
    if (sim == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(sim, 0, sizeof(*sim));
    sprig_status st = check_cfg(cfg);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    sim->cfg = *cfg;
    sim->rng = cfg->seed != 0 ? cfg->seed : 0x2545F491u;
    for (unsigned i = 0; i < 2; i++) {
        sprig_ns_simlink_end *e = &sim->end[i];
        (void)sprig_ns_link_init(&e->link, &simlink_ops, cfg->mtu);
        e->sim = sim;
        e->index = i;
        sprig_timer_init(&e->tx_timer, tx_done, e);
        sprig_timer_init(&e->rx_timer, rx_due, e);
        sprig_task_init(&e->work, work, e);
    }
    return SPRIG_STATUS_OK;
}

sprig_status sprig_ns_simlink_set_cfg(sprig_ns_simlink *sim, const sprig_ns_simlink_cfg *cfg)
{
    sprig_status st = check_cfg(cfg);
    if (st != SPRIG_STATUS_OK || cfg->loop != sim->cfg.loop) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    sim->cfg = *cfg;
    sim->end[0].link.mtu = cfg->mtu;
    sim->end[1].link.mtu = cfg->mtu;
    return SPRIG_STATUS_OK;
}

void sprig_ns_simlink_deinit(sprig_ns_simlink *sim)
{
    if (sim == NULL || sim->cfg.loop == NULL) {
        return;
    }
    for (unsigned i = 0; i < 2; i++) {
        sprig_ns_simlink_end *e = &sim->end[i];
        sprig_ns_link_deinit(&e->link);
        sprig_timer_stop(sim->cfg.loop, &e->tx_timer);
        sprig_timer_stop(sim->cfg.loop, &e->rx_timer);
        sprig_loop_cancel(sim->cfg.loop, &e->work);
        sprig_buf_free(e->wire);
        e->wire = NULL;
        for (int j = 0; j < SPRIG_CONFIG_NS_SIM_SLOTS; j++) {
            sprig_buf_free(e->slots[j].buf);
            e->slots[j].buf = NULL;
        }
    }
    sim->cfg.loop = NULL;
}
