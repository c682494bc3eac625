/*
 * The host file handler (sprig/transfer_os.h), through its handler ops as the engine calls them:
 * names and ids (65599 hash vectors, validation, collisions, registration through the name
 * resource), reads from any offset, writes through a temporary file renamed only on close(OK)
 * (a failed or cancelled write leaves the old file and no stray file), KEEP_PARTIAL resume,
 * refusals (NOT_FOUND, PERMISSION_DENIED, UNAVAILABLE, UNIMPLEMENTED, OUT_OF_RANGE) and the
 * errno table. Every test checks that no handle is left open.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "support.h"

#if !__has_include("sprig/transfer_os.h")
/* Built without sprig_transfer_os (SPRIG_WITH_OS=OFF, or the target is missing from
 * SPRIG_TEST_LINK_TARGETS in tests/CMakeLists.txt): nothing to test. */
#include <stdio.h>
int main(void)
{
    fputs("test_transfer_file_handler: built without sprig_transfer_os: nothing tested\n", stderr);
    return 0;
}
#else

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sprig/transfer_os.h"

#define RD        SPRIG_TRANSFER_ACCESS_READ
#define WR        SPRIG_TRANSFER_ACCESS_WRITE

/* Two names with one 65599 hash (found by a birthday search). */
#define COLLIDE_A "v6bh6r5r"
#define COLLIDE_B "5628jdsq"

typedef struct fixture {
    char dir[512];
    sprig_transfer_file_handler fh;
} fixture;

static int counter;

static void path_of(const fixture *f, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", f->dir, name);
}

static void put_file(const fixture *f, const char *name, const char *content)
{
    char p[600];
    path_of(f, name, p, sizeof(p));
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(content, 1, strlen(content), fp), strlen(content));
    assert_int_equal(fclose(fp), 0);
}

/* The file's content ("" if missing: then *exists is false). */
static size_t get_file(const fixture *f, const char *name, char *out, size_t cap, bool *exists)
{
    char p[600];
    path_of(f, name, p, sizeof(p));
    FILE *fp = fopen(p, "rb");
    *exists = fp != NULL;
    if (fp == NULL) {
        out[0] = '\0';
        return 0;
    }
    size_t n = fread(out, 1, cap - 1, fp);
    out[n] = '\0';
    fclose(fp);
    return n;
}

static size_t count_entries(const fixture *f)
{
    DIR *d = opendir(f->dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}

static void make_dir(fixture *f)
{
    snprintf(f->dir, sizeof(f->dir), "%s/fh%d", sprig_test_tmpdir(), counter++);
    assert_int_equal(mkdir(f->dir, 0755), 0);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    make_dir(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    assert_int_equal(f->fh.open, 0); /* every handle closed */
    sprig_transfer_file_handler_deinit(&f->fh);
    sprig_transfer_file_handler_deinit(&f->fh); /* idempotent */
    free(f);
    return 0;
}

static sprig_status op_open(fixture *f, uint32_t id, sprig_transfer_access acc, uint64_t off,
                            void **h, uint64_t *size)
{
    uint64_t dummy = 0;
    return f->fh.handler.ops->open(f->fh.handler.ctx, id, acc, off, h, size ? size : &dummy);
}

static sprig_status op_write(fixture *f, void *h, uint64_t off, const char *s)
{
    return f->fh.handler.ops->write(f->fh.handler.ctx, h, off, (const uint8_t *)s, strlen(s));
}

static sprig_status op_close(fixture *f, void *h, sprig_status st)
{
    return f->fh.handler.ops->close(f->fh.handler.ctx, h, st);
}

static uint32_t id_of(const char *name)
{
    return sprig_transfer_name_id(name);
}

/* Register `name` the way a client does: a write of its bytes to the name resource. */
static sprig_status register_name(fixture *f, const char *name, size_t len)
{
    void *h = NULL;
    sprig_status st = op_open(f, SPRIG_TRANSFER_NAME_RESOURCE, WR, 0, &h, NULL);
    assert_int_equal(st, SPRIG_STATUS_OK);
    st = f->fh.handler.ops->write(f->fh.handler.ctx, h, 0, (const uint8_t *)name, len);
    assert_int_equal(st, SPRIG_STATUS_OK);
    return op_close(f, h, SPRIG_STATUS_OK);
}

/* ---- names ----------------------------------------------------------------------------------- */

static void test_file_handler_name_hash_vectors(void **state)
{
    (void)state;
    assert_int_equal(sprig_transfer_name_id(""), 0x00000000u);
    assert_int_equal(sprig_transfer_name_id("\1"), 0x00010040u);
    assert_int_equal(sprig_transfer_name_id("?"), 0x003F0F82u);
    assert_int_equal(sprig_transfer_name_id("Pigweed?"), 0x63D43D8Cu);
    assert_int_equal(sprig_transfer_name_id("pw.transfer.Transfer"), 0x5BD6C87Bu);
    assert_int_equal(sprig_transfer_name_id(COLLIDE_A), sprig_transfer_name_id(COLLIDE_B));
}

static void test_file_handler_name_check(void **state)
{
    (void)state;
    const char *good[] = {"a", "boot.txt", "x..y", "name with spaces", "ünïcödé", "a~b-c_d"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(sprig_transfer_name_check(good[i]), SPRIG_STATUS_OK);
    }
    const char *bad[] = {"",     ".",    "..",     "../x",  "a/b",  "/abs",  ".hidden",
                         "a\nb", "a\tb", "\x1b[m", "a\x7f", "dir/", "a/../b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(sprig_transfer_name_check(bad[i]), SPRIG_STATUS_INVALID_ARGUMENT);
    }
    char longname[SPRIG_TRANSFER_NAME_MAX + 2];
    memset(longname, 'x', sizeof(longname));
    longname[SPRIG_TRANSFER_NAME_MAX] = '\0';
    assert_int_equal(sprig_transfer_name_check(longname), SPRIG_STATUS_OK);
    longname[SPRIG_TRANSFER_NAME_MAX] = 'x';
    longname[SPRIG_TRANSFER_NAME_MAX + 1] = '\0';
    assert_int_equal(sprig_transfer_name_check(longname), SPRIG_STATUS_INVALID_ARGUMENT);
}

static void test_file_handler_init_errors(void **state)
{
    fixture *f = *state;
    char p[600];
    path_of(f, "missing", p, sizeof(p));
    assert_int_equal(sprig_transfer_file_handler_init(&f->fh, p, 0), SPRIG_STATUS_NOT_FOUND);
    sprig_transfer_file_handler_deinit(&f->fh); /* safe after a failed init */
    put_file(f, "plain", "x");
    path_of(f, "plain", p, sizeof(p));
    assert_int_equal(sprig_transfer_file_handler_init(&f->fh, p, 0), SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_transfer_file_handler_deinit(&f->fh);
    assert_int_equal(sprig_transfer_file_handler_init(&f->fh, f->dir, 0), SPRIG_STATUS_OK);
}

static void test_file_handler_collision_refused(void **state)
{
    fixture *f = *state;
    put_file(f, COLLIDE_A, "a");
    put_file(f, COLLIDE_B, "b");
    assert_int_equal(sprig_transfer_file_handler_init(&f->fh, f->dir, 0), SPRIG_STATUS_OK);
    void *h = NULL;
    assert_int_equal(op_open(f, id_of(COLLIDE_A), RD, 0, &h, NULL),
                     SPRIG_STATUS_FAILED_PRECONDITION);
    assert_int_equal(op_open(f, id_of(COLLIDE_B), WR, 0, &h, NULL), SPRIG_STATUS_ALREADY_EXISTS);
    assert_int_equal(sprig_transfer_file_handler_add_name(&f->fh, COLLIDE_A, NULL),
                     SPRIG_STATUS_ALREADY_EXISTS);
    /* neither file was touched */
    char buf[16];
    bool exists = false;
    get_file(f, COLLIDE_A, buf, sizeof(buf), &exists);
    assert_string_equal(buf, "a");
    get_file(f, COLLIDE_B, buf, sizeof(buf), &exists);
    assert_string_equal(buf, "b");
}

static void test_file_handler_collision_by_registration(void **state)
{
    fixture *f = *state;
    put_file(f, COLLIDE_A, "a");
    assert_int_equal(sprig_transfer_file_handler_init(&f->fh, f->dir, 0), SPRIG_STATUS_OK);
    uint32_t id = 0;
    assert_int_equal(sprig_transfer_file_handler_add_name(&f->fh, COLLIDE_A, &id), SPRIG_STATUS_OK);
    assert_int_equal(id, id_of(COLLIDE_A));
    /* a client registering the other name is refused, and both become unreachable */
    assert_int_equal(register_name(f, COLLIDE_B, strlen(COLLIDE_B)), SPRIG_STATUS_ALREADY_EXISTS);
    void *h = NULL;
    assert_int_equal(op_open(f, id, RD, 0, &h, NULL), SPRIG_STATUS_FAILED_PRECONDITION);
}

static void test_file_handler_register_name(void **state)
{
    fixture *f = *state;
    assert_int_equal(sprig_transfer_file_handler_init(&f->fh, f->dir, 0), SPRIG_STATUS_OK);
    void *h = NULL;
    /* unknown and unregistered: nothing to create */
    assert_int_equal(op_open(f, id_of("new.txt"), WR, 0, &h, NULL), SPRIG_STATUS_NOT_FOUND);
    assert_int_equal(register_name(f, "new.txt", 7), SPRIG_STATUS_OK);
    assert_int_equal(register_name(f, "new.txt", 7), SPRIG_STATUS_OK); /* again: fine */
    assert_int_equal(op_open(f, id_of("new.txt"), WR, 0, &h, NULL), SPRIG_STATUS_OK);
    assert_int_equal(op_write(f, h, 0, "hello"), SPRIG_STATUS_OK);
    assert_int_equal(op_close(f, h, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    char buf[16];
    bool exists = false;
    get_file(f, "new.txt", buf, sizeof(buf), &exists);
    assert_string_equal(buf, "hello");
    /* bad names are refused at registration */
    assert_int_equal(register_name(f, "../evil", 7), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(register_name(f, "..", 2), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(register_name(f, "a/b", 3), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(register_name(f, "a\0b", 3), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(register_name(f, "a\nb", 3), SPRIG_STATUS_INVALID_ARGUMENT);
    /* a cancelled registration registers nothing */
    assert_int_equal(op_open(f, SPRIG_TRANSFER_NAME_RESOURCE, WR, 0, &h, NULL), SPRIG_STATUS_OK);
    assert_int_equal(op_write(f, h, 0, "other"), SPRIG_STATUS_OK);
    assert_int_equal(op_close(f, h, SPRIG_STATUS_CANCELLED), SPRIG_STATUS_OK);
    assert_int_equal(op_open(f, id_of("other"), WR, 0, &h, NULL), SPRIG_STATUS_NOT_FOUND);
    /* too long a name cannot be written; the name resource cannot be read */
    char longname[SPRIG_TRANSFER_NAME_MAX + 1];
    memset(longname, 'x', sizeof(longname));
    assert_int_equal(op_open(f, SPRIG_TRANSFER_NAME_RESOURCE, WR, 0, &h, NULL), SPRIG_STATUS_OK);
    assert_int_equal(f->fh.handler.ops->write(f->fh.handler.ctx, h, 0, (const uint8_t *)longname,
                                              sizeof(longname)),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(op_close(f, h, SPRIG_STATUS_DATA_LOSS), SPRIG_STATUS_OK);
    assert_int_equal(op_open(f, SPRIG_TRANSFER_NAME_RESOURCE, RD, 0, &h, NULL),
                     SPRIG_STATUS_PERMISSION_DENIED);
    assert_int_equal(count_entries(f), 1);
}

/* ---- reads ----------------------------------------------------------------------------------- */

static void test_file_handler_read(void **state)
{
    fixture *f = *state;
    put_file(f, "r.txt", "0123456789");
    assert_int_equal(sprig_transfer_file_handler_init(&f->fh, f->dir, 0), SPRIG_STATUS_OK);
    void *h = NULL;
    uint64_t size = 0;
    assert_int_equal(op_open(f, id_of("r.txt"), RD, 3, &h, &size), SPRIG_STATUS_OK);
    assert_int_equal(size, 10);
    uint8_t buf[32];
    size_t got = 0;
    assert_int_equal(f->fh.handler.ops->read(f->fh.handler.ctx, h, 3, buf, 4, &got),
                     SPRIG_STATUS_OK);
    assert_int_equal(got, 4);
    assert_memory_equal(buf, "3456", 4);
    assert_int_equal(f->fh.handler.ops->read(f->fh.handler.ctx, h, 7, buf, sizeof(buf), &got),
                     SPRIG_STATUS_OK);
    assert_int_equal(got, 3); /* short only at the end */
    /* a second reader is fine; a writer is not */
    void *h2 = NULL;
    assert_int_equal(op_open(f, id_of("r.txt"), RD, 0, &h2, NULL), SPRIG_STATUS_OK);
    void *w = NULL;
    assert_int_equal(op_open(f, id_of("r.txt"), WR, 0, &w, NULL), SPRIG_STATUS_UNAVAILABLE);
    assert_int_equal(op_close(f, h2, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    assert_int_equal(op_close(f, h, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    /* beyond the end; unknown; found on demand after the scan */
    assert_int_equal(op_open(f, id_of("r.txt"), RD, 11, &h, NULL), SPRIG_STATUS_OUT_OF_RANGE);
    assert_int_equal(op_open(f, id_of("late.txt"), RD, 0, &h, NULL), SPRIG_STATUS_NOT_FOUND);
    put_file(f, "late.txt", "late");
    assert_int_equal(op_open(f, id_of("late.txt"), RD, 0, &h, &size), SPRIG_STATUS_OK);
    assert_int_equal(size, 4);
    assert_int_equal(op_close(f, h, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    /* deleted after the scan */
    char p[600];
    path_of(f, "late.txt", p, sizeof(p));
    assert_int_equal(unlink(p), 0);
    assert_int_equal(op_open(f, id_of("late.txt"), RD, 0, &h, NULL), SPRIG_STATUS_NOT_FOUND);
    /* reserved ids are never files */
    assert_int_equal(op_open(f, SPRIG_TRANSFER_MANIFEST_RESOURCE, RD, 0, &h, NULL),
                     SPRIG_STATUS_NOT_FOUND);
}

static void test_file_handler_permission_denied(void **state)
{
    fixture *f = *state;
    put_file(f, "ro.txt", "old");
    char p[600], q[600];
    path_of(f, "sub", p, sizeof(p));
    assert_int_equal(mkdir(p, 0755), 0);
    path_of(f, "link", q, sizeof(q));
    path_of(f, "ro.txt", p, sizeof(p));
    assert_int_equal(symlink(p, q), 0);
    assert_int_equal(
        sprig_transfer_file_handler_init(&f->fh, f->dir, SPRIG_TRANSFER_FILE_READ_ONLY),
        SPRIG_STATUS_OK);
    void *h = NULL;
    assert_int_equal(op_open(f, id_of("ro.txt"), WR, 0, &h, NULL), SPRIG_STATUS_PERMISSION_DENIED);
    assert_int_equal(op_open(f, id_of("sub"), RD, 0, &h, NULL), SPRIG_STATUS_PERMISSION_DENIED);
    assert_int_equal(op_open(f, id_of("link"), RD, 0, &h, NULL), SPRIG_STATUS_PERMISSION_DENIED);
    if (geteuid() != 0) { /* root reads anything */
        assert_int_equal(chmod(p, 0), 0);
        assert_int_equal(op_open(f, id_of("ro.txt"), RD, 0, &h, NULL),
                         SPRIG_STATUS_PERMISSION_DENIED);
    }
    sprig_transfer_file_handler_deinit(&f->fh);
    /* writable handler: a directory or a symlink is never replaced */
    assert_int_equal(sprig_transfer_file_handler_init(&f->fh, f->dir, 0), SPRIG_STATUS_OK);
    assert_int_equal(op_open(f, id_of("sub"), WR, 0, &h, NULL), SPRIG_STATUS_PERMISSION_DENIED);
    assert_int_equal(op_open(f, id_of("link"), WR, 0, &h, NULL), SPRIG_STATUS_PERMISSION_DENIED);
    assert_int_equal(count_entries(f), 3);
}

/* ---- writes ---------------------------------------------------------------------------------- */

static void test_file_handler_write_commits_on_ok(void **state)
{
    fixture *f = *state;
    put_file(f, "w.txt", "old content");
    assert_int_equal(sprig_transfer_file_handler_init(&f->fh, f->dir, 0), SPRIG_STATUS_OK);
    void *h = NULL;
    assert_int_equal(op_open(f, id_of("w.txt"), WR, 0, &h, NULL), SPRIG_STATUS_OK);
    assert_int_equal(op_write(f, h, 0, "new "), SPRIG_STATUS_OK);
    assert_int_equal(op_write(f, h, 4, "bytes"), SPRIG_STATUS_OK);
    /* in flight: the old file is still there, the new bytes are in a temporary file */
    char buf[64];
    bool exists = false;
    get_file(f, "w.txt", buf, sizeof(buf), &exists);
    assert_string_equal(buf, "old content");
    assert_int_equal(count_entries(f), 2);
    /* one writer at a time; no reader while writing */
    void *h2 = NULL;
    assert_int_equal(op_open(f, id_of("w.txt"), WR, 0, &h2, NULL), SPRIG_STATUS_UNAVAILABLE);
    assert_int_equal(op_open(f, id_of("w.txt"), RD, 0, &h2, NULL), SPRIG_STATUS_UNAVAILABLE);
    assert_int_equal(op_close(f, h, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    get_file(f, "w.txt", buf, sizeof(buf), &exists);
    assert_string_equal(buf, "new bytes");
    assert_int_equal(count_entries(f), 1); /* no temporary file left */
}

static void test_file_handler_failed_write_leaves_old_file(void **state)
{
    fixture *f = *state;
    put_file(f, "w.txt", "old content");
    assert_int_equal(sprig_transfer_file_handler_init(&f->fh, f->dir, 0), SPRIG_STATUS_OK);
    const sprig_status endings[] = {SPRIG_STATUS_CANCELLED, SPRIG_STATUS_DATA_LOSS,
                                    SPRIG_STATUS_ABORTED, SPRIG_STATUS_DEADLINE_EXCEEDED};
    for (size_t i = 0; i < sizeof(endings) / sizeof(endings[0]); i++) {
        void *h = NULL;
        assert_int_equal(op_open(f, id_of("w.txt"), WR, 0, &h, NULL), SPRIG_STATUS_OK);
        assert_int_equal(op_write(f, h, 0, "partial"), SPRIG_STATUS_OK);
        assert_int_equal(op_close(f, h, endings[i]), SPRIG_STATUS_OK);
        char buf[64];
        bool exists = false;
        get_file(f, "w.txt", buf, sizeof(buf), &exists);
        assert_string_equal(buf, "old content");
        assert_int_equal(count_entries(f), 1);
    }
    /* a new file that fails is never created */
    assert_int_equal(sprig_transfer_file_handler_add_name(&f->fh, "fresh", NULL), SPRIG_STATUS_OK);
    void *h = NULL;
    assert_int_equal(op_open(f, id_of("fresh"), WR, 0, &h, NULL), SPRIG_STATUS_OK);
    assert_int_equal(op_write(f, h, 0, "x"), SPRIG_STATUS_OK);
    assert_int_equal(op_close(f, h, SPRIG_STATUS_CANCELLED), SPRIG_STATUS_OK);
    bool exists = true;
    char buf[8];
    get_file(f, "fresh", buf, sizeof(buf), &exists);
    assert_false(exists);
    assert_int_equal(count_entries(f), 1);
    /* without KEEP_PARTIAL nothing survives to continue from */
    assert_int_equal(op_open(f, id_of("w.txt"), WR, 5, &h, NULL), SPRIG_STATUS_UNIMPLEMENTED);
    assert_int_equal(count_entries(f), 1);
}

static void test_file_handler_empty_write(void **state)
{
    fixture *f = *state;
    put_file(f, "e.txt", "something");
    assert_int_equal(sprig_transfer_file_handler_init(&f->fh, f->dir, 0), SPRIG_STATUS_OK);
    void *h = NULL;
    assert_int_equal(op_open(f, id_of("e.txt"), WR, 0, &h, NULL), SPRIG_STATUS_OK);
    assert_int_equal(op_close(f, h, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    char buf[16];
    bool exists = false;
    assert_int_equal(get_file(f, "e.txt", buf, sizeof(buf), &exists), 0);
    assert_true(exists);
}

static void test_file_handler_keep_partial_resume(void **state)
{
    fixture *f = *state;
    char target[600];
    path_of(f, "local.bin", target, sizeof(target));
    put_file(f, "local.bin", "previous");
    assert_int_equal(
        sprig_transfer_file_handler_init_file(&f->fh, target, 7, SPRIG_TRANSFER_FILE_KEEP_PARTIAL),
        SPRIG_STATUS_OK);
    char part[600];
    assert_int_equal(sprig_transfer_file_handler_partial_path(&f->fh, 7, part, sizeof(part)),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_transfer_file_handler_partial_path(&f->fh, 8, part, sizeof(part)),
                     SPRIG_STATUS_NOT_FOUND);
    assert_int_equal(sprig_transfer_file_handler_partial_path(&f->fh, 7, part, 4),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(sprig_transfer_file_handler_partial_path(&f->fh, 7, part, sizeof(part)),
                     SPRIG_STATUS_OK);
    void *h = NULL;
    /* nothing to continue from yet */
    assert_int_equal(op_open(f, 7, WR, 4, &h, NULL), SPRIG_STATUS_UNIMPLEMENTED);
    assert_int_equal(op_open(f, 7, WR, 0, &h, NULL), SPRIG_STATUS_OK);
    assert_int_equal(op_write(f, h, 0, "hello "), SPRIG_STATUS_OK);
    assert_int_equal(op_close(f, h, SPRIG_STATUS_ABORTED), SPRIG_STATUS_OK);
    struct stat sb;
    assert_int_equal(stat(part, &sb), 0);
    assert_int_equal(sb.st_size, 6);
    char buf[64];
    bool exists = false;
    get_file(f, "local.bin", buf, sizeof(buf), &exists);
    assert_string_equal(buf, "previous"); /* untouched */
    /* beyond what was kept: cannot continue */
    assert_int_equal(op_open(f, 7, WR, 7, &h, NULL), SPRIG_STATUS_UNIMPLEMENTED);
    /* continue at 6 */
    assert_int_equal(op_open(f, 7, WR, 6, &h, NULL), SPRIG_STATUS_OK);
    assert_int_equal(op_write(f, h, 6, "world"), SPRIG_STATUS_OK);
    assert_int_equal(op_close(f, h, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    get_file(f, "local.bin", buf, sizeof(buf), &exists);
    assert_string_equal(buf, "hello world");
    assert_int_not_equal(stat(part, &sb), 0); /* renamed into place */
    assert_int_equal(count_entries(f), 1);
    /* a shorter continuation point truncates what was kept beyond it */
    assert_int_equal(op_open(f, 7, WR, 0, &h, NULL), SPRIG_STATUS_OK);
    assert_int_equal(op_write(f, h, 0, "abcdef"), SPRIG_STATUS_OK);
    assert_int_equal(op_close(f, h, SPRIG_STATUS_CANCELLED), SPRIG_STATUS_OK);
    assert_int_equal(op_open(f, 7, WR, 2, &h, NULL), SPRIG_STATUS_OK);
    assert_int_equal(op_write(f, h, 2, "Z"), SPRIG_STATUS_OK);
    assert_int_equal(op_close(f, h, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    get_file(f, "local.bin", buf, sizeof(buf), &exists);
    assert_string_equal(buf, "abZ");
}

static void test_file_handler_partial_list(void **state)
{
    fixture *f = *state;
    put_file(f, ".junk.sprig-part", "removed below"); /* listed only while it exists */
    put_file(f, "..sprig-part", "x");                 /* an empty name: never listed */
    assert_int_equal(
        sprig_transfer_file_handler_init(&f->fh, f->dir, SPRIG_TRANSFER_FILE_KEEP_PARTIAL),
        SPRIG_STATUS_OK);
    char p[600];
    path_of(f, ".junk.sprig-part", p, sizeof(p));
    assert_int_equal(unlink(p), 0);
    assert_int_equal(sprig_transfer_file_handler_add_name(&f->fh, "p.txt", NULL), SPRIG_STATUS_OK);
    assert_int_equal(sprig_transfer_file_handler_add_name(&f->fh, "e.txt", NULL), SPRIG_STATUS_OK);
    void *h = NULL;
    /* an upload that fails after 6 bytes is kept; one that fails before any byte is not */
    assert_int_equal(op_open(f, id_of("p.txt"), WR, 0, &h, NULL), SPRIG_STATUS_OK);
    assert_int_equal(op_write(f, h, 0, "hello "), SPRIG_STATUS_OK);
    assert_int_equal(op_close(f, h, SPRIG_STATUS_ABORTED), SPRIG_STATUS_OK);
    assert_int_equal(op_open(f, id_of("e.txt"), WR, 0, &h, NULL), SPRIG_STATUS_OK);
    assert_int_equal(op_close(f, h, SPRIG_STATUS_ABORTED), SPRIG_STATUS_OK);
    bool exists = true;
    char buf[256];
    get_file(f, "p.txt", buf, sizeof(buf), &exists);
    assert_false(exists); /* nothing claimed written */
    get_file(f, ".e.txt.sprig-part", buf, sizeof(buf), &exists);
    assert_false(exists);
    /* the list says where p.txt can continue, with the CRC of the kept bytes */
    uint64_t size = 0;
    assert_int_equal(op_open(f, SPRIG_TRANSFER_PARTIAL_RESOURCE, RD, 0, &h, &size),
                     SPRIG_STATUS_OK);
    char expect[64];
    snprintf(expect, sizeof(expect), "6 %08x p.txt\n",
             (unsigned)sprig_transfer_crc32(0, "hello ", 6));
    assert_int_equal(size, strlen(expect));
    size_t got = 0;
    assert_int_equal(
        f->fh.handler.ops->read(f->fh.handler.ctx, h, 0, (uint8_t *)buf, sizeof(buf), &got),
        SPRIG_STATUS_OK);
    buf[got] = '\0';
    assert_string_equal(buf, expect);
    assert_int_equal(f->fh.handler.ops->read(f->fh.handler.ctx, h, 2, (uint8_t *)buf, 3, &got),
                     SPRIG_STATUS_OK);
    assert_int_equal(got, 3);
    assert_memory_equal(buf, expect + 2, 3);
    assert_int_equal(op_close(f, h, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    assert_int_equal(op_open(f, SPRIG_TRANSFER_PARTIAL_RESOURCE, WR, 0, &h, NULL),
                     SPRIG_STATUS_PERMISSION_DENIED);
    assert_int_equal(op_open(f, SPRIG_TRANSFER_PARTIAL_RESOURCE, RD, 1000, &h, NULL),
                     SPRIG_STATUS_OUT_OF_RANGE);
    /* continue it */
    assert_int_equal(op_open(f, id_of("p.txt"), WR, 6, &h, NULL), SPRIG_STATUS_OK);
    assert_int_equal(op_write(f, h, 6, "world"), SPRIG_STATUS_OK);
    assert_int_equal(op_close(f, h, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    get_file(f, "p.txt", buf, sizeof(buf), &exists);
    assert_string_equal(buf, "hello world");
    /* nothing kept any more */
    assert_int_equal(op_open(f, SPRIG_TRANSFER_PARTIAL_RESOURCE, RD, 0, &h, &size),
                     SPRIG_STATUS_OK);
    assert_int_equal(size, 0);
    assert_int_equal(op_close(f, h, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    assert_int_equal(count_entries(f), 2); /* p.txt and "..sprig-part" */
}

static void test_file_handler_single_file_read(void **state)
{
    fixture *f = *state;
    char p[600];
    path_of(f, ".odd name\n", p, sizeof(p)); /* local files follow no name rules */
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    fputs("data", fp);
    fclose(fp);
    assert_int_equal(
        sprig_transfer_file_handler_init_file(&f->fh, p, 3, SPRIG_TRANSFER_FILE_READ_ONLY),
        SPRIG_STATUS_OK);
    void *h = NULL;
    uint64_t size = 0;
    assert_int_equal(op_open(f, 3, RD, 0, &h, &size), SPRIG_STATUS_OK);
    assert_int_equal(size, 4);
    assert_int_equal(op_close(f, h, SPRIG_STATUS_OK), SPRIG_STATUS_OK);
    assert_int_equal(op_open(f, 3, WR, 0, &h, NULL), SPRIG_STATUS_PERMISSION_DENIED);
    assert_int_equal(op_open(f, 4, RD, 0, &h, NULL), SPRIG_STATUS_NOT_FOUND);
    sprig_transfer_file_handler_deinit(&f->fh);
    /* a missing local file */
    path_of(f, "nothing", p, sizeof(p));
    assert_int_equal(sprig_transfer_file_handler_init_file(&f->fh, p, 3, 0), SPRIG_STATUS_OK);
    assert_int_equal(op_open(f, 3, RD, 0, &h, NULL), SPRIG_STATUS_NOT_FOUND);
    sprig_transfer_file_handler_deinit(&f->fh);
    assert_int_equal(sprig_transfer_file_handler_init_file(&f->fh, "dir/", 3, 0),
                     SPRIG_STATUS_INVALID_ARGUMENT);
}

static void test_file_handler_errno_table(void **state)
{
    (void)state;
    assert_int_equal(sprig_transfer_file_status_from_errno(EACCES), SPRIG_STATUS_PERMISSION_DENIED);
    assert_int_equal(sprig_transfer_file_status_from_errno(EPERM), SPRIG_STATUS_PERMISSION_DENIED);
    assert_int_equal(sprig_transfer_file_status_from_errno(EROFS), SPRIG_STATUS_PERMISSION_DENIED);
    assert_int_equal(sprig_transfer_file_status_from_errno(ENOENT), SPRIG_STATUS_NOT_FOUND);
    assert_int_equal(sprig_transfer_file_status_from_errno(ENOSPC),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(sprig_transfer_file_status_from_errno(EDQUOT),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(sprig_transfer_file_status_from_errno(EMFILE),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(sprig_transfer_file_status_from_errno(EIO), SPRIG_STATUS_DATA_LOSS);
    assert_int_equal(sprig_transfer_file_status_from_errno(EINVAL), SPRIG_STATUS_INTERNAL);
}

static void test_file_handler_disk_full(void **state)
{
    (void)state;
    /* /dev/full fails every write with ENOSPC */
    int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        skip();
    }
    errno = 0;
    ssize_t n = write(fd, "x", 1);
    int err = errno;
    close(fd);
    assert_true(n < 0);
    assert_int_equal(sprig_transfer_file_status_from_errno(err), SPRIG_STATUS_RESOURCE_EXHAUSTED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_handler_name_hash_vectors),
        cmocka_unit_test(test_file_handler_name_check),
        cmocka_unit_test_setup_teardown(test_file_handler_init_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_handler_collision_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_handler_collision_by_registration, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_file_handler_register_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_handler_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_handler_permission_denied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_handler_write_commits_on_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_handler_failed_write_leaves_old_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_file_handler_empty_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_handler_keep_partial_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_handler_partial_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_handler_single_file_read, setup, teardown),
        cmocka_unit_test(test_file_handler_errno_table),
        cmocka_unit_test(test_file_handler_disk_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif /* __has_include("sprig/transfer_os.h") */
