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

#endif /* SPRIG_CONFIG_H */
