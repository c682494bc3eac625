/* os_set.c — any URL for a host tool: OS socket URLs unchanged, netstack URLs (serial:,
 * sprig+udp:) through one endpoint (sprig/ns_os.h, docs/netstack.md §11). Host only. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sprig/ns_os.h"

static sprig_status set_fail(sprig_ns_os_set *set, sprig_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static sprig_status set_fail(sprig_ns_os_set *set, sprig_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(set->error, sizeof(set->error), fmt, ap);
    va_end(ap);
    return st;
}

void sprig_ns_os_set_init(sprig_ns_os_set *set, sprig_os_loop *ol, const sprig_ns_os_opts *opts)
{
    memset(set, 0, sizeof(*set));
    set->ol = ol;
    if (opts != NULL) {
        set->opts = *opts;
    }
    set->opts.error = set->error;
    set->opts.error_cap = sizeof(set->error);
}

const char *sprig_ns_os_set_error(const sprig_ns_os_set *set)
{
    return set->error;
}

/* Does the query q (without '?') have key k (as "k", "k=..." )? */
static bool has_key(const char *q, size_t qlen, const char *k)
{
    size_t kl = strlen(k);
    for (size_t i = 0; i < qlen;) {
        size_t end = i;
        while (end < qlen && q[end] != '&') {
            end++;
        }
        if (end - i >= kl && memcmp(q + i, k, kl) == 0 && (end - i == kl || q[i + kl] == '=')) {
            return true;
        }
        i = end + 1;
    }
    return false;
}

/* Decimal 1..65535. */
static bool parse_port(const char *p, size_t len, uint16_t *out)
{
    uint32_t v = 0;
    if (len == 0 || len > 5) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        v = v * 10u + (uint32_t)(p[i] - '0');
    }
    if (v == 0 || v > 65535u) {
        return false;
    }
    *out = (uint16_t)v;
    return true;
}

/* link = url without port=, plus the defaults; *port from port= if there. */
static sprig_status rewrite(sprig_ns_os_set *set, const char *url, const sprig_url *u,
                            bool listening, uint16_t *port, char *link, size_t cap)
{
    const char *qm = strchr(url, '?');
    size_t base = qm != NULL ? (size_t)(qm - url) : strlen(url);
    const char *q = qm != NULL ? qm + 1 : "";
    size_t qlen = strlen(q);
    if (base >= cap) {
        return set_fail(set, SPRIG_STATUS_INVALID_ARGUMENT, "URL too long");
    }
    memcpy(link, url, base);
    size_t n = base;
    char sep = '?';
    for (size_t i = 0; i < qlen;) {
        size_t end = i;
        while (end < qlen && q[end] != '&') {
            end++;
        }
        size_t kl = end - i;
        if (kl >= 4 && memcmp(q + i, "port", 4) == 0 && (kl == 4 || q[i + 4] == '=')) {
            if (kl <= 5 || !parse_port(q + i + 5, kl - 5, port)) {
                return set_fail(set, SPRIG_STATUS_INVALID_ARGUMENT,
                                "bad %.*s: want port=N, the sprig port 1..65535", (int)kl, q + i);
            }
        } else if (kl > 0) {
            if (n + 1 + kl >= cap) {
                return set_fail(set, SPRIG_STATUS_INVALID_ARGUMENT, "URL too long");
            }
            link[n++] = sep;
            sep = '&';
            memcpy(link + n, q + i, kl);
            n += kl;
        }
        i = end + 1;
    }
    link[n] = '\0';
    const char *add[3] = {NULL, NULL, NULL};
    if (!has_key(q, qlen, "node")) {
        add[0] = listening ? "node=2" : "node=1";
    }
    if (!has_key(q, qlen, "peer")) {
        add[1] = listening ? "peer=1" : "peer=2";
    }
    if (listening && u->scheme != SPRIG_URL_SERIAL && !has_key(q, qlen, "listen") &&
        !has_key(q, qlen, "bind")) {
        add[2] = "listen=1";
    }
    for (size_t i = 0; i < 3; i++) {
        if (add[i] == NULL) {
            continue;
        }
        int m = snprintf(link + n, cap - n, "%c%s", sep, add[i]);
        if (m < 0 || (size_t)m >= cap - n) {
            return set_fail(set, SPRIG_STATUS_INVALID_ARGUMENT, "URL too long");
        }
        n += (size_t)m;
        sep = '&';
    }
    return SPRIG_STATUS_OK;
}

sprig_status sprig_ns_os_set_url(sprig_ns_os_set *set, const char *url, bool listening,
                                 uint16_t port, char *out, size_t cap)
{
    set->error[0] = '\0';
    if (url == NULL || out == NULL || cap == 0) {
        return set_fail(set, SPRIG_STATUS_INVALID_ARGUMENT, "no URL");
    }
    sprig_url u;
    if (sprig_url_parse(url, &u) != SPRIG_STATUS_OK) {
        return set_fail(set, SPRIG_STATUS_INVALID_ARGUMENT,
                        "not a valid URL (want unix:PATH, tcp://HOST:PORT, udp://HOST:PORT, "
                        "serial:PATH or sprig+udp://HOST:PORT)");
    }
    if (!sprig_ns_os_handles(&u)) {
        if ((size_t)snprintf(out, cap, "%s", url) >= cap) {
            return set_fail(set, SPRIG_STATUS_INVALID_ARGUMENT, "URL too long");
        }
        return SPRIG_STATUS_OK;
    }
    char link[SPRIG_NS_OS_URL_MAX];
    sprig_status st = rewrite(set, url, &u, listening, &port, link, sizeof(link));
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    if (port == 0) {
        return set_fail(set, SPRIG_STATUS_INVALID_ARGUMENT, "no sprig port: add port=N");
    }
    if (set->ep != NULL && strcmp(link, set->link) != 0) {
        return set_fail(set, SPRIG_STATUS_INVALID_ARGUMENT,
                        "only one netstack link per program (already using %s)", set->link);
    }
    if (set->ep == NULL) {
        st = sprig_ns_os_open(set->ol, link, &set->opts, &set->ep);
        if (st != SPRIG_STATUS_OK) {
            if (set->error[0] == '\0') {
                (void)set_fail(set, st, "cannot open the netstack endpoint");
            }
            return st;
        }
        memcpy(set->link, link, sizeof(link));
    }
    unsigned node = listening ? sprig_ns_node_id(&set->ep->node) : set->ep->peer;
    if ((size_t)snprintf(out, cap, "sprig://%u:%u", node, (unsigned)port) >= cap) {
        return set_fail(set, SPRIG_STATUS_INVALID_ARGUMENT, "URL buffer too small");
    }
    return SPRIG_STATUS_OK;
}

size_t sprig_ns_os_set_open_count(const sprig_ns_os_set *set)
{
    if (set->ep == NULL) {
        return 0;
    }
    return sprig_ns_stream_in_use(&set->ep->stream) + sprig_ns_dgram_in_use(&set->ep->dgram);
}

void sprig_ns_os_set_close(sprig_ns_os_set *set, sprig_time linger)
{
    if (set->ep == NULL) {
        return;
    }
    /* bounded: a dead peer must not hold the program up */
    sprig_time end = sprig_loop_now(&set->ol->loop) + linger;
    while (sprig_ns_stream_active(&set->ep->stream) != 0 && sprig_loop_now(&set->ol->loop) < end) {
        (void)sprig_loop_run_once(&set->ol->loop, SPRIG_TIME_MS(50));
    }
    sprig_ns_os_close(set->ep);
    set->ep = NULL;
    set->link[0] = '\0';
}
