/*
 * sprig/url.h — endpoint URLs and the one internal address type.
 *
 * Contract
 *   One parser for every tool and backend. Forms:
 *     SCHEME://HOST:PORT[/PATH][?QUERY]   tcp://127.0.0.1:5000, udp://[::1]:7, tls+tcp://h:443,
 *                                         sprig://12:80 (netstack node 12, port 80)
 *     SCHEME:PATH[?QUERY]                 unix:/tmp/echo.sock, serial:/dev/ttyACM0, mem:echo
 *   HOST is a DNS name, a dotted IPv4 address, or an IPv6 address in brackets. The parser does
 *   no name resolution (backends do); it fills `addr` when HOST is an IP literal. PORT is
 *   decimal 0..65535. Scheme names are matched case-insensitively; the rest is case-sensitive.
 *   Slices point into the caller's string, which must outlive the sprig_url. No allocation.
 *   Errors: INVALID_ARGUMENT for anything malformed (empty scheme, missing host, bad port,
 *   unbalanced brackets, bad IPv6, control characters).
 */
#ifndef SPRIG_URL_H
#define SPRIG_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sprig/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* IPv6 address + port. IPv4 is ::ffff:a.b.c.d; netstack node N is fd00:5350:5247::N (ULA). */
typedef struct sprig_addr {
    uint8_t ip[16];
    uint16_t port;
} sprig_addr;

/* The netstack's fixed ULA prefix, 6 bytes: fd00:5350:5247::/48 ("SPRG"). */
#define SPRIG_ADDR_NETSTACK_PREFIX                                                                 \
    {                                                                                              \
        0xfd, 0x00, 0x53, 0x50, 0x52, 0x47                                                         \
    }

void sprig_addr_from_ipv4(sprig_addr *addr, uint32_t ipv4_host_order, uint16_t port);
bool sprig_addr_is_ipv4(const sprig_addr *addr);
/* The IPv4 address in host order; only meaningful when sprig_addr_is_ipv4(). */
uint32_t sprig_addr_ipv4(const sprig_addr *addr);
void sprig_addr_from_node(sprig_addr *addr, uint16_t node, uint16_t port);
/* True if the address is under the netstack prefix (then *node is set). node may be NULL. */
bool sprig_addr_is_node(const sprig_addr *addr, uint16_t *node);
bool sprig_addr_equal(const sprig_addr *a, const sprig_addr *b);
/* "1.2.3.4:80", "[::1]:80", "[fd00:5350:5247::c]:80" into out (NUL-terminated).
 * RESOURCE_EXHAUSTED if cap is too small (SPRIG_ADDR_STR_MAX always suffices). */
#define SPRIG_ADDR_STR_MAX 48
sprig_status sprig_addr_format(const sprig_addr *addr, char *out, size_t cap);
/* Parse an IP literal without port ("1.2.3.4", "::1", "fe80::1"); INVALID_ARGUMENT if not. */
sprig_status sprig_addr_parse_ip(const char *s, size_t len, sprig_addr *out);

typedef enum sprig_url_scheme {
    SPRIG_URL_OTHER = 0, /* well-formed, but not a scheme sprig names; see scheme slice */
    SPRIG_URL_UNIX,      /* unix:PATH */
    SPRIG_URL_TCP,       /* tcp://HOST:PORT */
    SPRIG_URL_UDP,       /* udp://HOST:PORT */
    SPRIG_URL_TLS_TCP,   /* tls+tcp://HOST:PORT */
    SPRIG_URL_SERIAL,    /* serial:PATH */
    SPRIG_URL_SPRIG,     /* sprig://NODE:PORT */
    SPRIG_URL_MEM,       /* mem:NAME (in-memory backend) */
} sprig_url_scheme;

typedef struct sprig_str {
    const char *ptr; /* not NUL-terminated; NULL when absent */
    size_t len;
} sprig_str;

typedef struct sprig_url {
    sprig_url_scheme scheme;
    sprig_str scheme_name; /* as written, e.g. "tls+tcp" */
    sprig_str host;        /* authority form only, without brackets */
    uint16_t port;
    bool has_port;
    bool host_is_ip; /* host is an IP literal; then addr.ip is set and addr.port = port */
    sprig_addr addr;
    sprig_str path;  /* path form: everything after "scheme:"; authority form: "/..." */
    sprig_str query; /* after '?', without it */
} sprig_url;

sprig_status sprig_url_parse(const char *text, sprig_url *out);
/* The netstack node a URL names: HOST as decimal ("12") or 0x-hexadecimal ("0x0c") 0..65535,
 * or an IPv6 literal under the netstack prefix ("[fd00:5350:5247::c]"). False otherwise. */
bool sprig_url_node(const sprig_url *url, uint16_t *node);
/* Case-insensitive comparison of the URL's scheme with a name. */
bool sprig_url_scheme_is(const sprig_url *url, const char *name);
/* Copy a slice into a NUL-terminated buffer; RESOURCE_EXHAUSTED if it does not fit. */
sprig_status sprig_str_copy(sprig_str s, char *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_URL_H */
