/* The socket contract suite against the in-memory backend (SEQPACKET, STREAM, DGRAM). */
#include "conformance.h"

#include <stdio.h>
#include <stdlib.h>

#include "sprig/mem.h"

enum { MEM_MAX_MSG = 8192, MEM_SOCKS = 256, MEM_BUFS = 1024 };
#define MEM_BUF_SIZE (MEM_MAX_MSG + SPRIG_CONFIG_SOCK_HEADROOM)

typedef struct mem_state {
    sprig_mem_backend m;
    sprig_mem_sock socks[MEM_SOCKS];
    sprig_buf_pool pool;
    sprig_buf bufs[MEM_BUFS];
    uint8_t *mem;
    char last_listen[64];
} mem_state;

static void mem_setup(sprig_conf_env *env)
{
    mem_state *st = calloc(1, sizeof(*st));
    assert_non_null(st);
    st->mem = aligned_alloc(SPRIG_CONFIG_BUF_ALIGN, (size_t)MEM_BUFS * MEM_BUF_SIZE);
    assert_non_null(st->mem);
    assert_int_equal(sprig_buf_pool_init(&st->pool, st->bufs, st->mem, MEM_BUFS, MEM_BUF_SIZE),
                     SPRIG_STATUS_OK);
    /* The window must hold what the suite queues before reading (about 48 KiB). */
    sprig_mem_cfg cfg = {.max_message_size = MEM_MAX_MSG, .window_bytes = 256 * 1024};
    assert_int_equal(
        sprig_mem_backend_init(&st->m, env->loop, &cfg, st->socks, MEM_SOCKS, &st->pool),
        SPRIG_STATUS_OK);
    env->backend = st;
}

static void mem_teardown(sprig_conf_env *env)
{
    mem_state *st = env->backend;
    sprig_mem_backend_deinit(&st->m);
    sprig_mem_backend_deinit(&st->m);
    free(st->mem);
    free(st);
}

static size_t mem_leaked(sprig_conf_env *env)
{
    mem_state *st = env->backend;
    return sprig_mem_backend_in_use(&st->m) + (MEM_BUFS - sprig_buf_pool_available(&st->pool));
}

static void mem_listen_url(sprig_conf_env *env, char *out, size_t cap)
{
    mem_state *st = env->backend;
    snprintf(out, cap, "mem:conf-%u", env->url_counter++);
    snprintf(st->last_listen, sizeof(st->last_listen), "%s", out);
}

static void mem_dial_url(sprig_conf_env *env, sprig_sock *l, char *out, size_t cap)
{
    (void)l;
    mem_state *st = env->backend;
    snprintf(out, cap, "%s", st->last_listen);
}

static void mem_refused_url(sprig_conf_env *env, char *out, size_t cap)
{
    (void)env;
    snprintf(out, cap, "mem:nobody-here");
}

#define MEM_TARGET(label, ty)                                                                      \
    {                                                                                              \
        .name = label, .type = ty, .setup = mem_setup, .teardown = mem_teardown,                   \
        .leaked = mem_leaked, .listen_url = mem_listen_url, .dial_url = mem_dial_url,              \
        .refused_url = mem_refused_url,                                                            \
        .refused_status = {SPRIG_STATUS_UNAVAILABLE, SPRIG_STATUS_UNAVAILABLE},                    \
        .max_connections = 100                                                                     \
    }

int main(void)
{
    static const sprig_conf_target targets[] = {
        MEM_TARGET("mem/seqpacket", SPRIG_SOCK_SEQPACKET),
        MEM_TARGET("mem/stream", SPRIG_SOCK_STREAM),
        MEM_TARGET("mem/dgram", SPRIG_SOCK_DGRAM),
    };
    return sprig_conf_run(targets, sizeof(targets) / sizeof(targets[0]));
}
