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
#ifdef ECHO_WITH_NETSTACK
#include "sprig/ns_os.h"
#endif

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
    return SPRIG_STATUS_OK;
}

size_t echo_env_deinit(echo_env *e)
{
    size_t open = 0;
#ifdef ECHO_WITH_NETSTACK
    if (e->ns != NULL) {
        open += sprig_ns_stream_in_use(&e->ns->stream) + sprig_ns_dgram_in_use(&e->ns->dgram);
        /* let closed connections finish their FIN exchange, so that the peer sees an orderly
         * close rather than a silence (bounded: a dead peer must not hold us up) */
        sprig_time end = sprig_loop_now(&e->ol.loop) + SPRIG_TIME_MS(2000);
        while (sprig_ns_stream_active(&e->ns->stream) != 0 && sprig_loop_now(&e->ol.loop) < end) {
            (void)sprig_loop_run_once(&e->ol.loop, SPRIG_TIME_MS(50));
        }
        sprig_ns_os_close(e->ns);
        e->ns = NULL;
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

#ifdef ECHO_WITH_NETSTACK
static bool has_key(const char *q, const char *key)
{
    size_t kl = strlen(key);
    const char *p = q;
    while (p != NULL && *p != '\0') {
        if (strncmp(p, key, kl) == 0 && (p[kl] == '=' || p[kl] == '&' || p[kl] == '\0')) {
            return true;
        }
        p = strchr(p, '&');
        p = p != NULL ? p + 1 : NULL;
    }
    return false;
}
#endif

sprig_status echo_env_url(echo_env *e, const char *url, bool listening, char *out, size_t cap)
{
    sprig_url u;
#ifdef ECHO_WITH_NETSTACK
    if (sprig_url_parse(url, &u) == SPRIG_STATUS_OK && sprig_ns_os_handles(&u)) {
        if (e->ns != NULL) {
            return SPRIG_STATUS_INVALID_ARGUMENT;
        }
        /* split off the query, drop port=, add the defaults */
        size_t len = strlen(url);
        char *buf = malloc(len + 48);
        if (buf == NULL) {
            return SPRIG_STATUS_RESOURCE_EXHAUSTED;
        }
        const char *qm = strchr(url, '?');
        size_t base = qm != NULL ? (size_t)(qm - url) : len;
        memcpy(buf, url, base);
        size_t n = base;
        char sep = '?';
        unsigned long port = ECHO_NS_PORT;
        sprig_status st = SPRIG_STATUS_OK;
        for (const char *p = qm != NULL ? qm + 1 : NULL; p != NULL && *p != '\0';) {
            const char *amp = strchr(p, '&');
            size_t kl = amp != NULL ? (size_t)(amp - p) : strlen(p);
            if (kl > 5 && strncmp(p, "port=", 5) == 0) {
                char num[12];
                if (kl - 5 >= sizeof(num)) {
                    st = SPRIG_STATUS_INVALID_ARGUMENT;
                    break;
                }
                memcpy(num, p + 5, kl - 5);
                num[kl - 5] = '\0';
                if (!echo_parse_u32(num, 65535, &port) || port == 0) {
                    st = SPRIG_STATUS_INVALID_ARGUMENT;
                    break;
                }
            } else if (kl > 0) {
                buf[n++] = sep;
                sep = '&';
                memcpy(buf + n, p, kl);
                n += kl;
            }
            p = amp != NULL ? amp + 1 : NULL;
        }
        buf[n] = '\0';
        const char *q = qm != NULL ? qm + 1 : "";
        if (st == SPRIG_STATUS_OK && !has_key(q, "node")) {
            n += (size_t)snprintf(buf + n, 12, "%cnode=%u", sep, listening ? 2u : 1u);
            sep = '&';
        }
        if (st == SPRIG_STATUS_OK && !has_key(q, "peer")) {
            n += (size_t)snprintf(buf + n, 12, "%cpeer=%u", sep, listening ? 1u : 2u);
            sep = '&';
        }
        /* A listening sprig+udp endpoint keeps the first address it hears from as its peer,
         * so successive clients must come from the same one: bind PORT+1 unless told. */
        if (st == SPRIG_STATUS_OK && !listening && u.scheme != SPRIG_URL_SERIAL && u.has_port &&
            u.port != 0 && u.port < 65535 && !has_key(q, "bind") && !has_key(q, "listen")) {
            (void)snprintf(buf + n, 13, "%cbind=%u", sep, (unsigned)u.port + 1u);
        }
        if (st == SPRIG_STATUS_OK) {
            st = sprig_ns_os_open(&e->ol, buf, NULL, &e->ns);
        }
        free(buf);
        if (st != SPRIG_STATUS_OK) {
            return st;
        }
        unsigned node = listening ? sprig_ns_node_id(&e->ns->node) : e->ns->peer;
        if ((size_t)snprintf(out, cap, "sprig://%u:%lu", node, port) >= cap) {
            return SPRIG_STATUS_INVALID_ARGUMENT;
        }
        return SPRIG_STATUS_OK;
    }
#else
    if (sprig_url_parse(url, &u) == SPRIG_STATUS_OK &&
        (u.scheme == SPRIG_URL_SERIAL || sprig_url_scheme_is(&u, "sprig+udp"))) {
        return SPRIG_STATUS_UNIMPLEMENTED;
    }
#endif
    (void)e;
    (void)listening;
    if ((size_t)snprintf(out, cap, "%s", url) >= cap) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    return SPRIG_STATUS_OK;
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
