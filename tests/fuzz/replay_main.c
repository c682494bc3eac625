/*
 * replay_main.c — runs a fuzz target's LLVMFuzzerTestOneInput over committed inputs, without
 * libFuzzer, so every compiler and sanitizer build replays the corpora as ordinary ctests.
 *
 *   fuzz_<x> PATH...   each PATH is a corpus directory (every regular file in it, sorted by name,
 *                      dot-files skipped) or a single input file.
 *
 * Each input is passed in a heap block of exactly its size, so a sanitizer build catches reads
 * past the end. Exits 0 after replaying at least one input; 1 on an unreadable path or when no
 * input was found (a fuzz target without a seed corpus is a mistake); a bug in the target
 * crashes or trips a sanitizer.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int replay_file(const char *path, size_t *count)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0) {
        fprintf(stderr, "replay: cannot stat %s\n", path);
        fclose(f);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    uint8_t *data = malloc(size > 0 ? size : 1);
    if (data == NULL || (size > 0 && fread(data, 1, size, f) != size)) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        free(data);
        fclose(f);
        return -1;
    }
    fclose(f);
    (void)LLVMFuzzerTestOneInput(data, size);
    free(data);
    (*count)++;
    return 0;
}

static int skip_dot(const struct dirent *entry)
{
    return entry->d_name[0] != '.';
}

static int replay_path(const char *path, size_t *count)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: no such file or directory: %s\n", path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        return replay_file(path, count);
    }
    struct dirent **entries = NULL;
    int n = scandir(path, &entries, skip_dot, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: cannot list %s\n", path);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(path) + 1 + strlen(entries[i]->d_name) + 1;
        char *child = malloc(len);
        if (child == NULL) {
            rc = -1;
        } else {
            snprintf(child, len, "%s/%s", path, entries[i]->d_name);
            struct stat cst;
            if (stat(child, &cst) == 0 && S_ISREG(cst.st_mode) && replay_file(child, count) != 0) {
                rc = -1;
            }
            free(child);
        }
        free(entries[i]);
    }
    free(entries);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize != NULL) {
        (void)LLVMFuzzerInitialize(&argc, &argv);
    }
    size_t count = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        if (replay_path(argv[i], &count) != 0) {
            rc = 1;
        }
    }
    printf("replayed %zu input(s)\n", count);
    if (count == 0) {
        fprintf(stderr, "replay: no inputs found (commit a seed corpus)\n");
        rc = 1;
    }
    return rc;
}
