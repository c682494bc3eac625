/*
 * sprig/ns_wire.h — the netstack's wire formats (docs/netstack.md): network header, ICMP-like
 * control messages, DGRAM header, the Internet checksum and CRC-32.
 *
 * Contract
 *   Pure functions over caller bytes: no state, no allocation, thread-safe.
 *   Every header has a view (check, then accessors at fixed offsets) and a repr struct with
 *   parse / emit / emit_len. Nothing here casts a struct onto bytes. Input is untrusted:
 *   check/parse validate lengths and ranges first and return DATA_LOSS for anything malformed;
 *   after sprig_ns_header_check() returned OK, no accessor can fail or read out of bounds.
 *   emit returns INVALID_ARGUMENT for a repr with out-of-range fields and RESOURCE_EXHAUSTED
 *   when the destination is too small; it writes nothing then.
 */
#ifndef SPRIG_NS_WIRE_H
#define SPRIG_NS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sprig/ns_config.h"
#include "sprig/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SPRIG_NS_VERSION          1
#define SPRIG_NS_HEADER_LEN       8
#define SPRIG_NS_ICMP_HEADER_LEN  8
#define SPRIG_NS_DGRAM_HEADER_LEN 6
#define SPRIG_NS_HOP_LIMIT_MAX    15

/* Headroom a transport reserves below its own header: network header + link header. */
#define SPRIG_NS_NET_HEADROOM (SPRIG_NS_HEADER_LEN + SPRIG_CONFIG_NS_LINK_HEADROOM)

/* Next-protocol numbers (byte 1). */
#define SPRIG_NS_PROTO_ICMP   1
#define SPRIG_NS_PROTO_STREAM 6
#define SPRIG_NS_PROTO_DGRAM  17

/* Node ids. */
#define SPRIG_NS_NODE_NONE      0x0000u
#define SPRIG_NS_NODE_BROADCAST 0xFFFFu

/* Traffic classes: 0 is sent first. */
typedef enum sprig_ns_tc {
    SPRIG_NS_TC_CONTROL = 0,
    SPRIG_NS_TC_INTERACTIVE = 1,
    SPRIG_NS_TC_DEFAULT = 2,
    SPRIG_NS_TC_BULK = 3,
} sprig_ns_tc;
#define SPRIG_NS_TC_COUNT 4

/* ---- network header ------------------------------------------------------------------------ */

typedef struct sprig_ns_header {
    uint8_t tc;        /* 0..3 */
    uint8_t hop_limit; /* 1..15 */
    uint8_t proto;     /* next protocol */
    uint16_t length;   /* whole packet, header included, >= 8 */
    uint16_t dst;
    uint16_t src;
} sprig_ns_header;

/* OK if p[0..len) starts with a valid header (version 1, hop limit >= 1, length >= 8 and
 * <= len, src neither 0 nor broadcast, dst not 0); DATA_LOSS otherwise. */
sprig_status sprig_ns_header_check(const uint8_t *p, size_t len);

/* Accessors; only after sprig_ns_header_check(p, ...) returned OK. */
static inline uint8_t sprig_ns_header_tc(const uint8_t *p)
{
    return (uint8_t)((p[0] >> 4) & 3u);
}
static inline uint8_t sprig_ns_header_hop_limit(const uint8_t *p)
{
    return (uint8_t)(p[0] & 15u);
}
static inline uint8_t sprig_ns_header_proto(const uint8_t *p)
{
    return p[1];
}
static inline uint16_t sprig_ns_header_length(const uint8_t *p)
{
    return (uint16_t)((p[2] << 8) | p[3]);
}
static inline uint16_t sprig_ns_header_dst(const uint8_t *p)
{
    return (uint16_t)((p[4] << 8) | p[5]);
}
static inline uint16_t sprig_ns_header_src(const uint8_t *p)
{
    return (uint16_t)((p[6] << 8) | p[7]);
}
/* Rewrite the hop limit in place (forwarding); hop_limit must be 1..15. */
static inline void sprig_ns_header_set_hop_limit(uint8_t *p, uint8_t hop_limit)
{
    p[0] = (uint8_t)((p[0] & 0xF0u) | (hop_limit & 15u));
}

/* check + fill *out. */
sprig_status sprig_ns_header_parse(const uint8_t *p, size_t len, sprig_ns_header *out);
static inline size_t sprig_ns_header_emit_len(const sprig_ns_header *h)
{
    (void)h;
    return SPRIG_NS_HEADER_LEN;
}
sprig_status sprig_ns_header_emit(const sprig_ns_header *h, uint8_t *p, size_t cap);

/* ---- checksum (RFC 1071) over a pseudo-header and a transport segment ---------------------- */

/* The Internet checksum of pseudo-header(src, dst, proto, len) + seg[0..len). Put the result in
 * the checksum field (after zeroing it) when sending; over a received segment with its checksum
 * field in place the result is 0 when the segment is intact. */
uint16_t sprig_ns_csum(uint16_t src, uint16_t dst, uint8_t proto, const uint8_t *seg, size_t len);

/* ---- ICMP-like messages ------------------------------------------------------------------- */

#define SPRIG_NS_ICMP_ECHO_REPLY    0
#define SPRIG_NS_ICMP_TOO_BIG       2
#define SPRIG_NS_ICMP_UNREACHABLE   3
#define SPRIG_NS_ICMP_ECHO_REQUEST  8
#define SPRIG_NS_ICMP_TIME_EXCEEDED 11
/* codes of SPRIG_NS_ICMP_UNREACHABLE */
#define SPRIG_NS_UNREACH_NO_ROUTE 0
#define SPRIG_NS_UNREACH_NODE     1
#define SPRIG_NS_UNREACH_PORT     2
#define SPRIG_NS_UNREACH_PROTO    3

typedef struct sprig_ns_icmp {
    uint8_t type;
    uint8_t code;
    uint16_t a; /* echo: identifier; too big: MTU */
    uint16_t b; /* echo: sequence */
} sprig_ns_icmp;

/* Parse the ICMP message msg[0..len) (header + body) of a packet with network header *ip:
 * DATA_LOSS if shorter than 8 bytes or the checksum fails. The body is msg + 8. */
sprig_status sprig_ns_icmp_parse(const sprig_ns_header *ip, const uint8_t *msg, size_t len,
                                 sprig_ns_icmp *out);
/* Write the 8-byte header at msg and the checksum over msg[0..len) (body already in place
 * after the header). RESOURCE_EXHAUSTED if len < 8. */
sprig_status sprig_ns_icmp_emit(const sprig_ns_header *ip, const sprig_ns_icmp *m, uint8_t *msg,
                                size_t len);
/* The status an ICMP error stands for at the originating socket (docs/netstack.md §3); OK for a
 * message that is not an error. */
sprig_status sprig_ns_icmp_status(const sprig_ns_icmp *m);
/* True for the error types (unreachable, too big, time exceeded). */
bool sprig_ns_icmp_is_error(uint8_t type);

/* ---- DGRAM header ------------------------------------------------------------------------- */

typedef struct sprig_ns_dgram {
    uint16_t src_port; /* 1..65535 */
    uint16_t dst_port; /* 1..65535 */
} sprig_ns_dgram;

/* Parse seg[0..len) (header + payload) of a packet with network header *ip: DATA_LOSS if short,
 * a port is 0, or the checksum fails. The payload is seg + 6, len - 6 bytes. */
sprig_status sprig_ns_dgram_parse(const sprig_ns_header *ip, const uint8_t *seg, size_t len,
                                  sprig_ns_dgram *out);
/* Write the header at seg and the checksum over seg[0..len) (payload already in place).
 * INVALID_ARGUMENT for port 0, RESOURCE_EXHAUSTED if len < 6. */
sprig_status sprig_ns_dgram_emit(const sprig_ns_header *ip, const sprig_ns_dgram *d, uint8_t *seg,
                                 size_t len);

/* ---- CRC-32 (IEEE 802.3 / zlib) ------------------------------------------------------------ */

/* Chainable like zlib's crc32(): start with crc = 0; crc32("123456789") = 0xCBF43926. */
uint32_t sprig_ns_crc32(uint32_t crc, const uint8_t *p, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_NS_WIRE_H */
