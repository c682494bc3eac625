/*
 * fuzz.h — the libFuzzer entry points, declared for -Wmissing-prototypes.
 *
 * Every tests/fuzz/fuzz_<x>.c includes this and defines LLVMFuzzerTestOneInput. The same file is
 * built as a libFuzzer target (SPRIG_BUILD_FUZZ=ON, clang) or linked with replay_main.c, which
 * runs it over the committed corpus tests/fuzz/corpus/fuzz_<x>/ as a ctest (label `fuzz`).
 * A target must not keep state between inputs, must not leak, and must return 0.
 * Targets of the transfer module share their in-memory world and input script through the
 * header-only fuzz_world.h (and fuzz_world_rpc.h for the pw_rpc carrier).
 */
#ifndef SPRIG_TESTS_FUZZ_H
#define SPRIG_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Optional: define it in a target that needs one-time set-up. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif /* SPRIG_TESTS_FUZZ_H */
