/*
 * support.c — see support.h.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw, setrlimit */

#include "support.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

void sprig_test_raise_fd_limit(void)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) {
        return;
    }
    if (lim.rlim_cur != lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &lim);
    }
}

static char tmpdir[] = "/tmp/sprig-test-XXXXXX";
static int tmpdir_made;
static pid_t tmpdir_owner;

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    if (remove(path) != 0) {
        perror(path);
    }
    return 0; /* keep going */
}

static void remove_tmpdir(void)
{
    /* Only the process that made the directory removes it (not forked children), and only
     * that directory: FTW_PHYS does not follow symbolic links out of it, FTW_DEPTH visits
     * contents before their directory. */
    if (!tmpdir_made || getpid() != tmpdir_owner) {
        return;
    }
    if (strncmp(tmpdir, "/tmp/sprig-test-", 16) != 0) {
        return;
    }
    (void)nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    tmpdir_made = 0;
}

const char *sprig_test_tmpdir(void)
{
    if (!tmpdir_made) {
        if (mkdtemp(tmpdir) == NULL) {
            perror("sprig_test_tmpdir: mkdtemp");
            abort();
        }
        tmpdir_made = 1;
        tmpdir_owner = getpid();
        if (atexit(remove_tmpdir) != 0) {
            fprintf(stderr, "sprig_test_tmpdir: atexit failed; %s will be left behind\n", tmpdir);
        }
    }
    return tmpdir;
}

void sprig_test_record(sprig_sock *s, sprig_sock_event ev, sprig_status st, void *user)
{
    (void)s;
    sprig_test_events *e = user;
    switch (ev) {
    case SPRIG_SOCK_EV_CONNECTED:
        e->connected++;
        break;
    case SPRIG_SOCK_EV_READABLE:
        e->readable++;
        break;
    case SPRIG_SOCK_EV_WRITABLE:
        e->writable++;
        break;
    case SPRIG_SOCK_EV_CLOSED:
        e->closed++;
        e->closed_status = st;
        break;
    }
}
