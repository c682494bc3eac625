/*
 * The one URL parser, and sprig_addr helpers. Input is untrusted (command lines, config
 * files): every index is bounds-checked, nothing is copied, nothing allocated.
 */
#include "sprig/url.h"

#include <string.h>

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
static const uint8_t node_prefix[6] = SPRIG_ADDR_NETSTACK_PREFIX;

/* ---- addresses ------------------------------------------------------------------------- */

void sprig_addr_from_ipv4(sprig_addr *addr, uint32_t ipv4, uint16_t port)
{
    memcpy(addr->ip, v4_mapped_prefix, sizeof(v4_mapped_prefix));
    addr->ip[12] = (uint8_t)(ipv4 >> 24);
    addr->ip[13] = (uint8_t)(ipv4 >> 16);
    addr->ip[14] = (uint8_t)(ipv4 >> 8);
    addr->ip[15] = (uint8_t)ipv4;
    addr->port = port;
}

bool sprig_addr_is_ipv4(const sprig_addr *addr)
{
    return memcmp(addr->ip, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0;
}

uint32_t sprig_addr_ipv4(const sprig_addr *addr)
{
    return ((uint32_t)addr->ip[12] << 24) | ((uint32_t)addr->ip[13] << 16) |
           ((uint32_t)addr->ip[14] << 8) | addr->ip[15];
}

void sprig_addr_from_node(sprig_addr *addr, uint16_t node, uint16_t port)
{
    memset(addr->ip, 0, sizeof(addr->ip));
    memcpy(addr->ip, node_prefix, sizeof(node_prefix));
    addr->ip[14] = (uint8_t)(node >> 8);
    addr->ip[15] = (uint8_t)node;
    addr->port = port;
}

bool sprig_addr_is_node(const sprig_addr *addr, uint16_t *node)
{
    if (memcmp(addr->ip, node_prefix, sizeof(node_prefix)) != 0) {
        return false;
    }
    for (size_t i = sizeof(node_prefix); i < 14; i++) {
        if (addr->ip[i] != 0) {
            return false;
        }
    }
    if (node != NULL) {
        *node = (uint16_t)((addr->ip[14] << 8) | addr->ip[15]);
    }
    return true;
}

bool sprig_addr_equal(const sprig_addr *a, const sprig_addr *b)
{
    return a->port == b->port && memcmp(a->ip, b->ip, sizeof(a->ip)) == 0;
}

/* Append text to out[*n..cap); false once it does not fit (always NUL-terminated if cap>0). */
static bool put_str(char *out, size_t cap, size_t *n, const char *s)
{
    size_t len = strlen(s);
    if (*n + len >= cap) {
        return false;
    }
    memcpy(out + *n, s, len + 1);
    *n += len;
    return true;
}

static bool put_uint(char *out, size_t cap, size_t *n, unsigned v, unsigned base)
{
    char tmp[8];
    size_t i = sizeof(tmp) - 1;
    tmp[i] = '\0';
    do {
        tmp[--i] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v != 0 && i > 0);
    return put_str(out, cap, n, &tmp[i]);
}

static bool format_v6(const uint8_t ip[16], char *out, size_t cap, size_t *n)
{
    uint16_t g[8];
    for (int i = 0; i < 8; i++) {
        g[i] = (uint16_t)((ip[2 * i] << 8) | ip[2 * i + 1]);
    }
    /* RFC 5952: compress the longest run (>= 2) of zero groups, the first one on a tie. */
    int best = -1, best_len = 0;
    for (int i = 0; i < 8;) {
        int j = i;
        while (j < 8 && g[j] == 0) {
            j++;
        }
        if (j - i > best_len && j - i >= 2) {
            best = i;
            best_len = j - i;
        }
        i = (j == i) ? i + 1 : j;
    }
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            if (!put_str(out, cap, n, "::")) {
                return false;
            }
            i += best_len - 1;
            continue;
        }
        if (i > 0 && i != best + best_len && !put_str(out, cap, n, ":")) {
            return false;
        }
        if (!put_uint(out, cap, n, g[i], 16)) {
            return false;
        }
    }
    return true;
}

sprig_status sprig_addr_format(const sprig_addr *addr, char *out, size_t cap)
{
    size_t n = 0;
    bool ok;
    if (out == NULL || cap == 0) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    out[0] = '\0';
    if (sprig_addr_is_ipv4(addr)) {
        ok = put_uint(out, cap, &n, addr->ip[12], 10) && put_str(out, cap, &n, ".") &&
             put_uint(out, cap, &n, addr->ip[13], 10) && put_str(out, cap, &n, ".") &&
             put_uint(out, cap, &n, addr->ip[14], 10) && put_str(out, cap, &n, ".") &&
             put_uint(out, cap, &n, addr->ip[15], 10);
    } else {
        ok = put_str(out, cap, &n, "[") && format_v6(addr->ip, out, cap, &n) &&
             put_str(out, cap, &n, "]");
    }
    ok = ok && put_str(out, cap, &n, ":") && put_uint(out, cap, &n, addr->port, 10);
    if (!ok) {
        out[0] = '\0';
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    return SPRIG_STATUS_OK;
}

/* ---- IP literals ----------------------------------------------------------------------- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Dotted quad, exactly four decimal parts 0..255 without leading zeros. */
static bool parse_v4(const char *s, size_t len, uint8_t out[4])
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= len || s[i] != '.') {
                return false;
            }
            i++;
        }
        size_t start = i;
        unsigned v = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9' && i - start < 3) {
            v = v * 10 + (unsigned)(s[i] - '0');
            i++;
        }
        if (i == start || v > 255 || (i - start > 1 && s[start] == '0')) {
            return false;
        }
        out[part] = (uint8_t)v;
    }
    return i == len;
}

static bool parse_v6(const char *s, size_t len, uint8_t out[16])
{
    uint16_t head[8], tail[8];
    int nhead = 0, ntail = 0;
    bool gap = false;
    size_t i = 0;
    if (len >= 2 && s[0] == ':' && s[1] == ':') {
        gap = true;
        i = 2;
    } else if (len >= 1 && s[0] == ':') {
        return false;
    }
    while (i < len) {
        int groups = nhead + ntail;
        /* An embedded IPv4 tail ("::ffff:1.2.3.4") counts as two groups. */
        size_t dot = i;
        while (dot < len && s[dot] != ':' && s[dot] != '.') {
            dot++;
        }
        if (dot < len && s[dot] == '.') {
            uint8_t v4[4];
            if (groups > 6 || !parse_v4(s + i, len - i, v4)) {
                return false;
            }
            uint16_t *dst = gap ? tail : head;
            int *nd = gap ? &ntail : &nhead;
            dst[(*nd)++] = (uint16_t)((v4[0] << 8) | v4[1]);
            dst[(*nd)++] = (uint16_t)((v4[2] << 8) | v4[3]);
            i = len;
            break;
        }
        unsigned v = 0;
        size_t start = i;
        while (i < len && i - start < 4 && hex_value(s[i]) >= 0) {
            v = v * 16 + (unsigned)hex_value(s[i]);
            i++;
        }
        if (i == start || groups >= 8) {
            return false;
        }
        if (gap) {
            tail[ntail++] = (uint16_t)v;
        } else {
            head[nhead++] = (uint16_t)v;
        }
        if (i == len) {
            break;
        }
        if (s[i] != ':') {
            return false;
        }
        i++;
        if (i < len && s[i] == ':') {
            if (gap) {
                return false;
            }
            gap = true;
            i++;
        } else if (i == len) {
            return false; /* trailing single ':' */
        }
    }
    int total = nhead + ntail;
    if ((gap && total > 7) || (!gap && total != 8)) {
        return false;
    }
    memset(out, 0, 16);
    for (int k = 0; k < nhead; k++) {
        out[2 * k] = (uint8_t)(head[k] >> 8);
        out[2 * k + 1] = (uint8_t)head[k];
    }
    for (int k = 0; k < ntail; k++) {
        int pos = 8 - ntail + k;
        out[2 * pos] = (uint8_t)(tail[k] >> 8);
        out[2 * pos + 1] = (uint8_t)tail[k];
    }
    return true;
}

sprig_status sprig_addr_parse_ip(const char *s, size_t len, sprig_addr *out)
{
    uint8_t v4[4];
    if (s == NULL || out == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (parse_v4(s, len, v4)) {
        uint32_t a =
            ((uint32_t)v4[0] << 24) | ((uint32_t)v4[1] << 16) | ((uint32_t)v4[2] << 8) | v4[3];
        sprig_addr_from_ipv4(out, a, out->port);
        return SPRIG_STATUS_OK;
    }
    return parse_v6(s, len, out->ip) ? SPRIG_STATUS_OK : SPRIG_STATUS_INVALID_ARGUMENT;
}

/* ---- URLs ------------------------------------------------------------------------------ */

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool str_ieq(sprig_str a, const char *b)
{
    size_t n = strlen(b);
    if (a.len != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (lower(a.ptr[i]) != lower(b[i])) {
            return false;
        }
    }
    return true;
}

static const struct {
    const char *name;
    sprig_url_scheme scheme;
    bool authority; /* scheme://host:port rather than scheme:path */
} schemes[] = {
    {"unix", SPRIG_URL_UNIX, false},     {"tcp", SPRIG_URL_TCP, true},
    {"udp", SPRIG_URL_UDP, true},        {"tls+tcp", SPRIG_URL_TLS_TCP, true},
    {"serial", SPRIG_URL_SERIAL, false}, {"sprig", SPRIG_URL_SPRIG, true},
    {"mem", SPRIG_URL_MEM, false},
};

static bool scheme_char(char c, bool first)
{
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (first) {
        return alpha;
    }
    return alpha || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
}

static bool parse_port(const char *s, size_t len, uint16_t *port)
{
    unsigned v = 0;
    if (len == 0 || len > 5) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535) {
        return false;
    }
    *port = (uint16_t)v;
    return true;
}

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

/* host[:port] or [v6][:port], ending at `end`. */
static sprig_status parse_authority(const char *s, size_t len, sprig_url *u)
{
    size_t i = 0;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL) {
            return SPRIG_STATUS_INVALID_ARGUMENT;
        }
        u->host.ptr = s + 1;
        u->host.len = (size_t)(close - s) - 1;
        if (!parse_v6(u->host.ptr, u->host.len, u->addr.ip)) {
            return SPRIG_STATUS_INVALID_ARGUMENT;
        }
        u->host_is_ip = true;
        i = (size_t)(close - s) + 1;
        if (i < len && s[i] != ':') {
            return SPRIG_STATUS_INVALID_ARGUMENT;
        }
    } else {
        while (i < len && s[i] != ':') {
            if (!host_char(s[i])) {
                return SPRIG_STATUS_INVALID_ARGUMENT;
            }
            i++;
        }
        u->host.ptr = s;
        u->host.len = i;
        uint8_t v4[4];
        if (parse_v4(s, i, v4)) {
            uint32_t a =
                ((uint32_t)v4[0] << 24) | ((uint32_t)v4[1] << 16) | ((uint32_t)v4[2] << 8) | v4[3];
            sprig_addr_from_ipv4(&u->addr, a, 0);
            u->host_is_ip = true;
        }
    }
    if (u->host.len == 0 || u->host.len > 253) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (i < len) { /* s[i] == ':' */
        if (!parse_port(s + i + 1, len - i - 1, &u->port)) {
            return SPRIG_STATUS_INVALID_ARGUMENT;
        }
        u->has_port = true;
    }
    u->addr.port = u->port;
    return SPRIG_STATUS_OK;
}

sprig_status sprig_url_parse(const char *text, sprig_url *u)
{
    if (text == NULL || u == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(u, 0, sizeof(*u));
    size_t len = strlen(text);
    for (size_t k = 0; k < len; k++) {
        if ((unsigned char)text[k] < 0x21 || text[k] == 0x7f) {
            return SPRIG_STATUS_INVALID_ARGUMENT; /* controls and spaces */
        }
    }
    size_t i = 0;
    while (i < len && scheme_char(text[i], i == 0)) {
        i++;
    }
    if (i == 0 || i >= len || text[i] != ':') {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    u->scheme_name.ptr = text;
    u->scheme_name.len = i;
    bool authority_form = false;
    for (size_t k = 0; k < sizeof(schemes) / sizeof(schemes[0]); k++) {
        if (str_ieq(u->scheme_name, schemes[k].name)) {
            u->scheme = schemes[k].scheme;
            authority_form = schemes[k].authority;
        }
    }
    const char *rest = text + i + 1;
    size_t rest_len = len - i - 1;
    bool has_slashes = rest_len >= 2 && rest[0] == '/' && rest[1] == '/';
    if (u->scheme == SPRIG_URL_OTHER) {
        authority_form = has_slashes; /* unknown schemes: generic syntax decides */
    }
    const char *q = memchr(rest, '?', rest_len);
    if (q != NULL) {
        u->query.ptr = q + 1;
        u->query.len = rest_len - (size_t)(q - rest) - 1;
        rest_len = (size_t)(q - rest);
    }
    if (!authority_form) {
        if (rest_len == 0) {
            return SPRIG_STATUS_INVALID_ARGUMENT;
        }
        u->path.ptr = rest;
        u->path.len = rest_len;
        return SPRIG_STATUS_OK;
    }
    if (!has_slashes) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    const char *auth = rest + 2;
    size_t auth_len = rest_len - 2;
    const char *slash = memchr(auth, '/', auth_len);
    if (slash != NULL) {
        u->path.ptr = slash;
        u->path.len = auth_len - (size_t)(slash - auth);
        auth_len = (size_t)(slash - auth);
    }
    return parse_authority(auth, auth_len, u);
}

bool sprig_url_node(const sprig_url *url, uint16_t *node)
{
    if (url->host_is_ip) {
        return sprig_addr_is_node(&url->addr, node);
    }
    const char *p = url->host.ptr;
    size_t n = url->host.len, i = 0;
    unsigned base = 10;
    uint32_t v = 0;
    if (p == NULL || n == 0) {
        return false;
    }
    if (n > 2 && p[0] == '0' && lower(p[1]) == 'x') {
        base = 16;
        i = 2;
    }
    for (; i < n; i++) {
        int d = hex_value(p[i]);
        if (d < 0 || (unsigned)d >= base) {
            return false;
        }
        v = v * base + (unsigned)d;
        if (v > 0xFFFFu) {
            return false;
        }
    }
    *node = (uint16_t)v;
    return true;
}

bool sprig_url_scheme_is(const sprig_url *url, const char *name)
{
    return str_ieq(url->scheme_name, name);
}

sprig_status sprig_str_copy(sprig_str s, char *out, size_t cap)
{
    if (out == NULL || cap == 0 || s.len >= cap) {
        return SPRIG_STATUS_RESOURCE_EXHAUSTED;
    }
    if (s.len > 0) {
        memcpy(out, s.ptr, s.len);
    }
    out[s.len] = '\0';
    return SPRIG_STATUS_OK;
}
