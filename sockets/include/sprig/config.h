/*
 * sprig/config.h — compile-time knobs, with their defaults.
 *
 * Every knob is SPRIG_CONFIG_<MODULE>_<KNOB>. Define SPRIG_CONFIG_FILE (e.g.
 * -DSPRIG_CONFIG_FILE='"my_sprig_config.h"') to include a file of your own first; anything it
 * defines overrides the defaults below. The project builds with -Wundef, so test a knob with
 * #if, never #ifdef, and a misspelt knob in your own code is an error.
 */
#ifndef SPRIG_CONFIG_H
#define SPRIG_CONFIG_H

#ifdef SPRIG_CONFIG_FILE
#include SPRIG_CONFIG_FILE
#endif

/* Alignment of the payload area of every sprig_buf, in bytes (power of two). */
#ifndef SPRIG_CONFIG_BUF_ALIGN
#define SPRIG_CONFIG_BUF_ALIGN 8
#endif

/* Headroom, in bytes, that socket backends reserve in sprig_sock_alloc_tx() buffers when they
 * know no better; big enough for framing (4) + netstack headers + a TLS record header. */
#ifndef SPRIG_CONFIG_SOCK_HEADROOM
#define SPRIG_CONFIG_SOCK_HEADROOM 32
#endif

/* Largest message a SEQPACKET/DGRAM socket carries when its backend config says 0. */
#ifndef SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE
#define SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE 65536
#endif

/* Generated RPC code (protoc-gen-sprig): size of the buffers its blocking client helpers use
 * for a message that nanopb cannot bound (a string, bytes or repeated field without
 * max_size/max_count in the .options file). */
#ifndef SPRIG_CONFIG_RPC_GEN_UNBOUNDED_MAX
#define SPRIG_CONFIG_RPC_GEN_UNBOUNDED_MAX 512
#endif

/* CRC-32 behind sprig_transfer_crc32 (the transfer engine's end-to-end check, sender and
 * receiver each run it over every byte). Values (constants, not knobs):
 *   SPRIG_TRANSFER_CRC32_SMALL   16-entry nibble table: 64 bytes of table, the least flash; about
 *                                a quarter of a GB/s on a current x86-64 core
 *   SPRIG_TRANSFER_CRC32_TABLE   256-entry table, one lookup per byte: 1 KiB of table
 *   SPRIG_TRANSFER_CRC32_SLICE8  slicing-by-8, eight lookups per 8 bytes: 8 KiB of tables
 * Default: SLICE8 when compiling for a hosted OS (Linux, macOS, Windows, the BSDs: where the
 * POSIX backend and sprig-transfer run), SMALL otherwise (bare metal, e.g. arm-none-eabi for a
 * Cortex-M0+, where flash is scarce and the link is far slower than the CRC). Override with
 * -DSPRIG_CONFIG_TRANSFER_CRC32=... or in SPRIG_CONFIG_FILE. */
#define SPRIG_TRANSFER_CRC32_SMALL  1
#define SPRIG_TRANSFER_CRC32_TABLE  2
#define SPRIG_TRANSFER_CRC32_SLICE8 3
#ifndef SPRIG_CONFIG_TRANSFER_CRC32
#if defined(__linux__) || defined(__APPLE__) || defined(_WIN32) || defined(__FreeBSD__) ||         \
    defined(__NetBSD__) || defined(__OpenBSD__)
#define SPRIG_CONFIG_TRANSFER_CRC32 SPRIG_TRANSFER_CRC32_SLICE8
#else
#define SPRIG_CONFIG_TRANSFER_CRC32 SPRIG_TRANSFER_CRC32_SMALL
#endif
#endif

/* 1: on x86-64 (GCC or clang), sprig_transfer_crc32 folds with carry-less multiplication when
 * the CPU can, checked at run time (__builtin_cpu_supports): VPCLMULQDQ on 512-bit registers
 * (with AVX-512F) from 256 bytes, else PCLMULQDQ from 64 bytes; shorter spans, the tail of a
 * span and CPUs without either use the SPRIG_CONFIG_TRANSFER_CRC32 variant. Default: 1 with the
 * SLICE8 variant on x86-64, else 0 (ignored where it cannot apply). */
#ifndef SPRIG_CONFIG_TRANSFER_CRC32_CLMUL
#if SPRIG_CONFIG_TRANSFER_CRC32 == SPRIG_TRANSFER_CRC32_SLICE8 && defined(__x86_64__)
#define SPRIG_CONFIG_TRANSFER_CRC32_CLMUL 1
#else
#define SPRIG_CONFIG_TRANSFER_CRC32_CLMUL 0
#endif
#endif

/* Bytes the framing decorator puts before each message (fixed by WIRE.md; not a knob). */
#define SPRIG_FRAMING_HEADER_LEN 4

/* Longest name of a mem: endpoint (the in-memory backend), including the terminating NUL. */
#ifndef SPRIG_CONFIG_MEM_NAME_MAX
#define SPRIG_CONFIG_MEM_NAME_MAX 32
#endif

/* 1: the transfer engine also runs on DGRAM sockets (loss recovery, congestion window, bound
 * server sockets); 0 leaves it SEQPACKET-only and smaller (docs/transfer.md, "Size"). */
#ifndef SPRIG_CONFIG_TRANSFER_DGRAM
#define SPRIG_CONFIG_TRANSFER_DGRAM 1
#endif

#if (SPRIG_CONFIG_BUF_ALIGN & (SPRIG_CONFIG_BUF_ALIGN - 1)) != 0 || SPRIG_CONFIG_BUF_ALIGN < 1
#error "SPRIG_CONFIG_BUF_ALIGN must be a power of two"
#endif
#if SPRIG_CONFIG_SOCK_HEADROOM < SPRIG_FRAMING_HEADER_LEN
#error "SPRIG_CONFIG_SOCK_HEADROOM must leave room for the framing header"
#endif
#if SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE < 64
#error "SPRIG_CONFIG_SOCK_DEFAULT_MAX_MESSAGE is too small to carry an RPC packet"
#endif

#if SPRIG_CONFIG_TRANSFER_CRC32 < SPRIG_TRANSFER_CRC32_SMALL ||                                    \
    SPRIG_CONFIG_TRANSFER_CRC32 > SPRIG_TRANSFER_CRC32_SLICE8
#error "SPRIG_CONFIG_TRANSFER_CRC32 must be SPRIG_TRANSFER_CRC32_SMALL, _TABLE or _SLICE8"
#endif

#endif /* SPRIG_CONFIG_H */
