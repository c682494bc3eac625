/* The socket contract suite against the OS backend: unix SEQPACKET, TCP (v4 and v6) SEQPACKET
 * through the framing decorator, TCP STREAM, UDP DGRAM. */
#include "conformance.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct os_state {
    sprig_os_backend b;
    char last_listen[160];
} os_state;

static void os_setup(sprig_conf_env *env)
{
    os_state *st = calloc(1, sizeof(*st));
    assert_non_null(st);
    sprig_os_backend_cfg cfg = {.max_message_size = 65536};
    assert_int_equal(sprig_os_backend_init(&st->b, &env->ol, &cfg), SPRIG_STATUS_OK);
    env->backend = st;
}

static void os_teardown(sprig_conf_env *env)
{
    os_state *st = env->backend;
    sprig_os_backend_deinit(&st->b);
    sprig_os_backend_deinit(&st->b); /* idempotent */
    free(st);
}

static size_t os_leaked(sprig_conf_env *env)
{
    os_state *st = env->backend;
    return sprig_os_backend_open_count(&st->b) +
           (st->b.pool.count - sprig_buf_pool_available(&st->b.pool));
}

static void unix_listen_url(sprig_conf_env *env, char *out, size_t cap)
{
    os_state *st = env->backend;
    snprintf(out, cap, "unix:%s/conf-%u.sock", sprig_test_tmpdir(), env->url_counter++);
    snprintf(st->last_listen, sizeof(st->last_listen), "%s", out);
}

static void unix_dial_url(sprig_conf_env *env, sprig_sock *l, char *out, size_t cap)
{
    (void)l;
    os_state *st = env->backend;
    snprintf(out, cap, "%s", st->last_listen);
}

static void unix_refused_url(sprig_conf_env *env, char *out, size_t cap)
{
    (void)env;
    snprintf(out, cap, "unix:%s/nobody-here.sock", sprig_test_tmpdir());
}

static void tcp4_listen_url(sprig_conf_env *env, char *out, size_t cap)
{
    (void)env;
    snprintf(out, cap, "tcp://127.0.0.1:0");
}

static void tcp6_listen_url(sprig_conf_env *env, char *out, size_t cap)
{
    (void)env;
    snprintf(out, cap, "tcp://[::1]:0");
}

static void udp4_listen_url(sprig_conf_env *env, char *out, size_t cap)
{
    (void)env;
    snprintf(out, cap, "udp://127.0.0.1:0");
}

static uint16_t bound_port(sprig_sock *l)
{
    sprig_addr a;
    assert_int_equal(sprig_sock_local_addr(l, &a), SPRIG_STATUS_OK);
    assert_int_not_equal(a.port, 0);
    return a.port;
}

static void tcp4_dial_url(sprig_conf_env *env, sprig_sock *l, char *out, size_t cap)
{
    (void)env;
    snprintf(out, cap, "tcp://127.0.0.1:%u", bound_port(l));
}

static void tcp6_dial_url(sprig_conf_env *env, sprig_sock *l, char *out, size_t cap)
{
    (void)env;
    snprintf(out, cap, "tcp://[::1]:%u", bound_port(l));
}

static void udp4_dial_url(sprig_conf_env *env, sprig_sock *l, char *out, size_t cap)
{
    (void)env;
    snprintf(out, cap, "udp://127.0.0.1:%u", bound_port(l));
}

/* A port that was free a moment ago: listen on port 0, note the port, close. */
static void tcp_refused_url(sprig_conf_env *env, char *out, size_t cap)
{
    sprig_sock *l = NULL;
    assert_int_equal(sprig_sock_listen(env->loop, "tcp://127.0.0.1:0", SPRIG_SOCK_STREAM, &l),
                     SPRIG_STATUS_OK);
    uint16_t port = bound_port(l);
    sprig_sock_close(l);
    snprintf(out, cap, "tcp://127.0.0.1:%u", port);
}

/* UDP has no connection to refuse: a dial "connects" locally and succeeds. The suite's refused
 * case then checks that the dial succeeds (status OK is listed) and the socket is closed. */
static void udp_refused_url(sprig_conf_env *env, char *out, size_t cap)
{
    tcp_refused_url(env, out, cap);
    out[0] = 'u';
    out[1] = 'd';
    out[2] = 'p';
}

#define OS_COMMON .setup = os_setup, .teardown = os_teardown, .leaked = os_leaked

int main(void)
{
    static const sprig_conf_target targets[] = {
        {.name = "unix/seqpacket",
         .type = SPRIG_SOCK_SEQPACKET,
         OS_COMMON,
         .listen_url = unix_listen_url,
         .dial_url = unix_dial_url,
         .refused_url = unix_refused_url,
         .refused_status = {SPRIG_STATUS_NOT_FOUND, SPRIG_STATUS_NOT_FOUND},
         .max_connections = 200},
        {.name = "tcp4/seqpacket",
         .type = SPRIG_SOCK_SEQPACKET,
         OS_COMMON,
         .listen_url = tcp4_listen_url,
         .dial_url = tcp4_dial_url,
         .refused_url = tcp_refused_url,
         .refused_status = {SPRIG_STATUS_UNAVAILABLE, SPRIG_STATUS_UNAVAILABLE},
         .max_connections = 200},
        {.name = "tcp6/seqpacket",
         .type = SPRIG_SOCK_SEQPACKET,
         OS_COMMON,
         .listen_url = tcp6_listen_url,
         .dial_url = tcp6_dial_url,
         .refused_url = tcp_refused_url,
         .refused_status = {SPRIG_STATUS_UNAVAILABLE, SPRIG_STATUS_UNAVAILABLE},
         .max_connections = 50},
        {.name = "tcp4/stream",
         .type = SPRIG_SOCK_STREAM,
         OS_COMMON,
         .listen_url = tcp4_listen_url,
         .dial_url = tcp4_dial_url,
         .refused_url = tcp_refused_url,
         .refused_status = {SPRIG_STATUS_UNAVAILABLE, SPRIG_STATUS_UNAVAILABLE},
         .max_connections = 200},
        {.name = "udp4/dgram",
         .type = SPRIG_SOCK_DGRAM,
         OS_COMMON,
         .listen_url = udp4_listen_url,
         .dial_url = udp4_dial_url,
         .refused_url = udp_refused_url,
         .refused_status = {SPRIG_STATUS_OK, SPRIG_STATUS_OK},
         .max_connections = 100},
    };
    return sprig_conf_run(targets, sizeof(targets) / sizeof(targets[0]));
}
