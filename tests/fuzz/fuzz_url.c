/*
 * fuzz_url — the one URL parser, on arbitrary bytes (NUL-terminated copy), plus the address
 * formatter on whatever it produced. Invariants checked: slices stay inside the input, the
 * port of an IP literal is copied into addr, formatting never overflows.
 */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "sprig/url.h"

static int inside(sprig_str s, const char *base, size_t len)
{
    if (s.ptr == NULL) {
        return s.len == 0;
    }
    return s.ptr >= base && s.ptr + s.len <= base + len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    size_t len = strlen(text);
    sprig_url u;
    if (sprig_url_parse(text, &u) == SPRIG_STATUS_OK) {
        if (!inside(u.scheme_name, text, len) || !inside(u.host, text, len) ||
            !inside(u.path, text, len) || !inside(u.query, text, len)) {
            abort();
        }
        if (u.host_is_ip && u.addr.port != u.port) {
            abort();
        }
        char out[SPRIG_ADDR_STR_MAX];
        if (sprig_addr_format(&u.addr, out, sizeof(out)) != SPRIG_STATUS_OK) {
            abort(); /* SPRIG_ADDR_STR_MAX must always suffice */
        }
        if (strlen(out) >= sizeof(out)) {
            abort();
        }
    }
    sprig_addr a = {0};
    (void)sprig_addr_parse_ip(text, len, &a);
    free(text);
    return 0;
}
