/*
 * common.c — see common.h.
 */
#include "common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sprig/url.h"

const char *echo_prog = "sprig-echo";

int echo_fail(const char *what, sprig_status st)
{
    fprintf(stderr, "%s: %s: %s\n", echo_prog, what, sprig_status_str(st));
    return 1;
}

int echo_failf(sprig_status st, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return echo_fail(what, st);
}

sprig_status echo_env_init(echo_env *e)
{
    memset(e, 0, sizeof(*e));
    sprig_status st = sprig_os_loop_init(&e->ol);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    e->loop_ready = true;
    sprig_os_backend_cfg cfg = {.max_message_size = ECHO_MAX_MESSAGE};
    st = sprig_os_backend_init(&e->backend, &e->ol, &cfg);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    e->backend_ready = true;
#ifdef ECHO_WITH_NETSTACK
    sprig_ns_os_set_init(&e->ns, &e->ol, NULL);
#endif
    return SPRIG_STATUS_OK;
}

size_t echo_env_deinit(echo_env *e)
{
    size_t open = 0;
#ifdef ECHO_WITH_NETSTACK
    if (e->loop_ready) {
        open += sprig_ns_os_set_open_count(&e->ns);
        sprig_ns_os_set_close(&e->ns, SPRIG_TIME_MS(2000));
    }
#endif
    if (e->backend_ready) {
        open += sprig_os_backend_open_count(&e->backend);
        sprig_os_backend_deinit(&e->backend);
    }
    if (e->loop_ready) {
        sprig_os_loop_deinit(&e->ol);
    }
    e->loop_ready = e->backend_ready = false;
    return open;
}

sprig_status echo_env_url(echo_env *e, const char *url, bool listening, char *out, size_t cap)
{
    e->why[0] = '\0';
#ifdef ECHO_WITH_NETSTACK
    sprig_status st = sprig_ns_os_set_url(&e->ns, url, listening, ECHO_NS_PORT, out, cap);
    if (st != SPRIG_STATUS_OK) {
        snprintf(e->why, sizeof(e->why), "%s", sprig_ns_os_set_error(&e->ns));
    }
    return st;
#else
    sprig_url u;
    (void)listening;
    if (sprig_url_parse(url, &u) == SPRIG_STATUS_OK &&
        (u.scheme == SPRIG_URL_SERIAL || sprig_url_scheme_is(&u, "sprig+udp"))) {
        snprintf(e->why, sizeof(e->why), "the netstack was not built (SPRIG_WITH_NETSTACK)");
        return SPRIG_STATUS_UNIMPLEMENTED;
    }
    if ((size_t)snprintf(out, cap, "%s", url) >= cap) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    return SPRIG_STATUS_OK;
#endif
}

bool echo_parse_u32(const char *s, unsigned long max, unsigned long *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || s[0] == '+' || v > max) {
        return false;
    }
    *out = v;
    return true;
}
