/*
 * fuzz_ns_os_url — the query of a host netstack URL (sprig_ns_os_open's parser) and the tools'
 * URL set (sprig_ns_os_set_url: port= taken out, defaults added) on arbitrary bytes. The input
 * is the query of "serial:/nonexistent-sprig-fuzz/tty?...", a device that never exists, so no
 * input can open anything: each one must end in a refusal with a NUL-terminated reason, no
 * endpoint left behind, and out-of-room reason buffers must be cut, never overrun. The first
 * byte's low bit picks listening or dialing.
 */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "sprig/ns_os.h"

#define PREFIX "serial:/nonexistent-sprig-fuzz/tty?"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) {
        return 0;
    }
    size_t plen = strlen(PREFIX);
    char *text = malloc(plen + size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, PREFIX, plen);
    memcpy(text + plen, data, size);
    text[plen + size] = '\0'; /* an embedded NUL just ends the URL early */
    sprig_os_loop ol;
    if (sprig_os_loop_init(&ol) != SPRIG_STATUS_OK) {
        free(text);
        return 0;
    }
    bool listening = size > 0 && (data[0] & 1u) != 0;

    static sprig_ns_os_set set; /* big; reinitialised for every input */
    sprig_ns_os_set_init(&set, &ol, NULL);
    char out[SPRIG_NS_OS_URL_MAX];
    sprig_status st = sprig_ns_os_set_url(&set, text, listening, 7, out, sizeof(out));
    const char *why = sprig_ns_os_set_error(&set);
    if (st == SPRIG_STATUS_OK || sprig_ns_os_set_endpoint(&set) != NULL || why[0] == '\0' ||
        strlen(why) >= sizeof(set.error)) {
        abort();
    }
    sprig_ns_os_set_close(&set, 0);

    /* the endpoint parser directly, with a reason buffer too small for most reasons */
    char small[9];
    memset(small, 'x', sizeof(small));
    sprig_ns_os_opts o = {.error = small, .error_cap = 8};
    sprig_ns_os_endpoint *ep = NULL;
    st = sprig_ns_os_open(&ol, text, &o, &ep);
    if (st == SPRIG_STATUS_OK || ep != NULL || small[8] != 'x' || strlen(small) > 7) {
        abort();
    }
    sprig_os_loop_deinit(&ol);
    free(text);
    return 0;
}
