/*
 * sprig/ns_config.h — compile-time knobs of the netstack, with their defaults.
 *
 * Like sprig/config.h (which it includes, so SPRIG_CONFIG_FILE overrides these too): every knob
 * is SPRIG_CONFIG_NS_<KNOB>, tested with #if. Contradictory settings stop the build.
 */
#ifndef SPRIG_NS_CONFIG_H
#define SPRIG_NS_CONFIG_H

#include "sprig/config.h"

/* Hop limit of locally originated packets (1..15; the header field is four bits). */
#ifndef SPRIG_CONFIG_NS_HOP_LIMIT
#define SPRIG_CONFIG_NS_HOP_LIMIT 8
#endif

/* Packets each traffic-class queue of a link holds before it drops (per class, per link). */
#ifndef SPRIG_CONFIG_NS_QUEUE_LEN
#define SPRIG_CONFIG_NS_QUEUE_LEN 8
#endif

/* Bytes of the offending packet an ICMP error quotes (network header + transport ports). */
#ifndef SPRIG_CONFIG_NS_ICMP_QUOTE
#define SPRIG_CONFIG_NS_ICMP_QUOTE 16
#endif

/* Headroom, in bytes, the largest link header needs (the links in this module need none: the
 * serial link encodes while transmitting). */
#ifndef SPRIG_CONFIG_NS_LINK_HEADROOM
#define SPRIG_CONFIG_NS_LINK_HEADROOM 0
#endif

/* Largest packet (network header included) any link carries; serial receive buffers need
 * this + 4 bytes (CRC). */
#ifndef SPRIG_CONFIG_NS_MAX_MTU
#define SPRIG_CONFIG_NS_MAX_MTU 1024
#endif

/* Packets a simulated link may hold in flight per direction (delay line slots; >= 2). */
#ifndef SPRIG_CONFIG_NS_SIM_SLOTS
#define SPRIG_CONFIG_NS_SIM_SLOTS 16
#endif

/* Bytes the serial link hands to its byte stream per write call (stack staging buffer). */
#ifndef SPRIG_CONFIG_NS_SERIAL_CHUNK
#define SPRIG_CONFIG_NS_SERIAL_CHUNK 64
#endif

#if SPRIG_CONFIG_NS_HOP_LIMIT < 1 || SPRIG_CONFIG_NS_HOP_LIMIT > 15
#error "SPRIG_CONFIG_NS_HOP_LIMIT must be 1..15 (four-bit field)"
#endif
#if SPRIG_CONFIG_NS_QUEUE_LEN < 1
#error "SPRIG_CONFIG_NS_QUEUE_LEN must be at least 1"
#endif
#if SPRIG_CONFIG_NS_ICMP_QUOTE < 12
#error "SPRIG_CONFIG_NS_ICMP_QUOTE must cover the network header and the ports (12 bytes)"
#endif
#if SPRIG_CONFIG_NS_MAX_MTU < 64 || SPRIG_CONFIG_NS_MAX_MTU > 65535
#error "SPRIG_CONFIG_NS_MAX_MTU must be 64..65535"
#endif
#if SPRIG_CONFIG_NS_SIM_SLOTS < 2
#error "SPRIG_CONFIG_NS_SIM_SLOTS must be at least 2 (a packet and its duplicate)"
#endif
#if SPRIG_CONFIG_NS_SERIAL_CHUNK < 1
#error "SPRIG_CONFIG_NS_SERIAL_CHUNK must be at least 1"
#endif

#endif /* SPRIG_NS_CONFIG_H */
