/*
 * main.c — smallest program against an installed sprig: names a status and brings an OS loop
 * up and down. Exit status 0 when both work.
 */
#include <stdio.h>
#include <string.h>

#include "sprig/os.h"
#include "sprig/status.h"

int main(void)
{
    const char *name = sprig_status_str(SPRIG_STATUS_UNAVAILABLE);
    printf("sprig_status_str(SPRIG_STATUS_UNAVAILABLE) = %s\n", name);
    if (strcmp(name, "UNAVAILABLE") != 0) {
        fprintf(stderr, "consumer: expected UNAVAILABLE\n");
        return 1;
    }

    sprig_os_loop ol;
    sprig_status st = sprig_os_loop_init(&ol);
    if (st != SPRIG_STATUS_OK) {
        fprintf(stderr, "consumer: sprig_os_loop_init: %s\n", sprig_status_str(st));
        return 1;
    }
    sprig_os_loop_deinit(&ol);
    printf("sprig_os_loop_init/deinit: OK\n");
    return 0;
}
