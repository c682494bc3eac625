/*
 * sprig/ns_stream.h — the netstack STREAM transport (docs/netstack.md §5) as a socket backend for
 * `sprig://NODE:PORT` URLs (sprig_sock_type STREAM, and SEQPACKET framed on it).
 *
 * Contract
 *   One backend serves one local node. It registers with the loop for the `sprig` scheme; since
 *   the loop asks the most recently registered backend first, init it after the DGRAM backend
 *   and pass that backend in cfg.dgram: DGRAM requests are handed to it.
 *     listen("sprig://SELF:PORT", STREAM): a listener; READABLE when accept has a connection.
 *     dial("sprig://NODE:PORT", STREAM): three-way handshake; CONNECTED, or CLOSED with
 *       UNAVAILABLE (refused: RST, or ICMP port unreachable), NOT_FOUND (no route / node
 *       unreachable), DEADLINE_EXCEEDED (no answer after cfg.max_retries SYNs).
 *     SEQPACKET (the natural type of sprig://): a STREAM connection under the framing decorator
 *       (WIRE.md's 4-byte length prefix), after sprig_ns_stream_enable_seqpacket(); otherwise
 *       UNIMPLEMENTED. Dial and accept return RESOURCE_EXHAUSTED when no decorator is free.
 *   Reliability: cumulative ACK, go-back-N retransmission on RTO (RFC 6298: SRTT/RTTVAR, Karn,
 *     minimum cfg.rto_min, exponential backoff), fast retransmit of the first unacknowledged
 *     segment on three duplicate ACKs. Out-of-order segments are dropped (no reassembly queue:
 *     saves RAM) and answered with a duplicate ACK. No congestion control.
 *   Flow control: the advertised window is the free space of the receive ring. send accepts
 *     only what fits both the send ring and the peer's window (UNAVAILABLE otherwise; WRITABLE
 *     when the window opens again). A zero window is probed with PROBE segments on the RTO
 *     timer (backed off; never given up while the peer answers).
 *   Dead peer: keepalive (cfg.keepalive_idle, 0 = off) sends PROBE every keepalive_interval
 *     after that long without a segment from the peer; keepalive_count unanswered probes →
 *     CLOSED(ABORTED). Data unacknowledged after cfg.max_retries timeouts in a row →
 *     CLOSED(ABORTED). Reset by the peer → CLOSED(ABORTED).
 *   Close: sprig_sock_shutdown() sends FIN after the queued data; the reader sees OUT_OF_RANGE.
 *     CLOSED(OK) fires once our FIN is acknowledged and the peer's FIN was received (unread
 *     data stays readable). close() before that leaves an orphan without a user that finishes
 *     sending and the FIN exchange (waiting at most cfg.rto_max for the peer's FIN once ours
 *     is acknowledged), then lingers 2·RTO to re-acknowledge a lost final FIN;
 *     sprig_ns_stream_active() counts orphans too. Payload arriving for an orphan is answered
 *     with RST (nobody will read it). Closing a listener resets the connections it has not
 *     handed out.
 *   Memory: connections come from caller storage conns[n] (a listener is one too), their send
 *     and receive rings (cfg.tx_buf + cfg.rx_buf bytes each) from caller memory. Sent but
 *     unacknowledged bytes stay in the send ring until acknowledged. Segments are built in pool
 *     buffers with headroom for the network header and link (payload copied once, from the
 *     ring). No allocation, no globals.
 *   Threading: the loop's thread. Events are delivered from a deferred task, never from inside
 *     a sprig_sock_* call or a timer.
 */
#ifndef SPRIG_NS_STREAM_H
#define SPRIG_NS_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sprig/framing.h"
#include "sprig/ns_dgram.h"
#include "sprig/ns_node.h"
#include "sprig/sock.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SPRIG_NS_STREAM_HEADER_LEN 18
#define SPRIG_NS_STREAM_HEADROOM   (SPRIG_NS_NET_HEADROOM + SPRIG_NS_STREAM_HEADER_LEN)

/* flags (byte 12) */
#define SPRIG_NS_STREAM_SYN   0x01u
#define SPRIG_NS_STREAM_ACK   0x02u
#define SPRIG_NS_STREAM_FIN   0x04u
#define SPRIG_NS_STREAM_RST   0x08u
#define SPRIG_NS_STREAM_PROBE 0x10u

/* The header's repr (docs/netstack.md §5). */
typedef struct sprig_ns_stream_hdr {
    uint16_t src_port, dst_port;
    uint32_t seq, ack;
    uint8_t flags, shift;
    uint16_t window;
} sprig_ns_stream_hdr;

/* Check length (>= 18), checksum (over the pseudo-header of *ip), ports (non-zero), reserved
 * flag bits and shift (<= 14), then fill *out. DATA_LOSS for a bad checksum, INVALID_ARGUMENT
 * otherwise. */
sprig_status sprig_ns_stream_parse(const sprig_ns_header *ip, const uint8_t *seg, size_t len,
                                   sprig_ns_stream_hdr *out);
/* Write the header into seg[0..18) and the checksum over seg[0..len) (payload in place). */
void sprig_ns_stream_emit(const sprig_ns_header *ip, const sprig_ns_stream_hdr *h, uint8_t *seg,
                          size_t len);

struct sprig_ns_stream_backend;

typedef struct sprig_ns_conn {
    /* Small fields first: Cortex-M0+ loads bytes with an immediate offset only below 32. */
    uint8_t state;   /* private (stream.c) */
    uint8_t bits;    /* private flags */
    uint8_t pending; /* events for the task */
    uint8_t peer_shift;
    uint8_t retries; /* consecutive timeouts / unanswered probes */
    uint8_t dupacks;
    uint8_t ka_miss; /* unanswered keepalive probes */
    uint16_t lport, peer_node, peer_port;
    uint16_t mss;
    struct sprig_ns_stream_backend *be;
    uint32_t iss, snd_una, snd_nxt, snd_max, snd_wnd, rcv_nxt;
    uint32_t rtt_seq;                               /* timed segment (Karn) */
    uint32_t rtt_start, srtt, rttvar, rto, last_rx; /* µs; stamps are loop time mod 2^32 */
    uint32_t tx_head, tx_len, rx_head, rx_len;
    uint32_t rx_adv;              /* window last advertised, bytes */
    uint32_t ooo_seq, ooo_end;    /* out-of-order range kept in the receive ring (equal: none) */
    uint32_t frtx_at;             /* time of the last fast retransmit */
    struct sprig_ns_conn *parent; /* the listener, until accepted */
    sprig_status fail;            /* terminal status for the task */
    /* Set up once at init; a new connection clears only the fields above. */
    uint8_t *tx, *rx; /* rings (cfg.tx_buf, cfg.rx_buf bytes) */
    sprig_sock sock;
    sprig_task task;
    sprig_timer rtx;  /* retransmission / handshake / persist / linger */
    sprig_timer kick; /* retry after local back-pressure */
    sprig_timer ka;   /* keepalive */
} sprig_ns_conn;

typedef struct sprig_ns_stream_cfg {
    uint8_t tc; /* class of data and FIN segments; SYN, pure ACK, RST and PROBE use 0 */
    /* Ring sizes per connection, bytes. tx_buf: accepted by send, kept until acknowledged
     * (0: 2048). rx_buf: received, not yet read; its free space is the advertised window
     * (0: 2048; up to 2^30, scaled by the window shift). */
    uint32_t tx_buf, rx_buf;
    /* Times in µs (SPRIG_TIME_MS(x) fits), 32 bits to spare a Cortex-M0+ 64-bit arithmetic. */
    uint32_t rto_initial;           /* 0: 1 s (RFC 6298) */
    uint32_t rto_min;               /* 0: 200 ms */
    uint32_t rto_max;               /* 0: 60 s */
    uint8_t max_retries;            /* 0: 8 — timeouts in a row before the peer is dead */
    uint32_t keepalive_idle;        /* 0: no keepalive */
    uint32_t keepalive_interval;    /* 0: keepalive_idle */
    uint8_t keepalive_count;        /* 0: 3 */
    uint32_t (*entropy)(void *arg); /* ISN source; NULL: derived from time and node id */
    void *entropy_arg;
    sprig_ns_dgram_backend *dgram; /* optional: serves DGRAM requests for sprig:// */
} sprig_ns_stream_cfg;

typedef struct sprig_ns_stream_stats {
    uint32_t rx, tx, bad, no_port, rtx, fast_rtx, ooo, rst_sent;
} sprig_ns_stream_stats;

typedef struct sprig_ns_stream_backend {
    sprig_ns_stream_cfg cfg; /* first: the fields used most sit at small offsets (Cortex-M0+) */
    sprig_loop *loop;
    sprig_buf_pool *pool;
    sprig_ns_node *node;
    uint8_t shift; /* our window shift (from cfg.rx_buf) */
    uint16_t next_port;
    uint32_t isn_state;
    sprig_ns_conn *conns;
    size_t nconns;
    sprig_ns_stream_stats stats;
    sprig_framed_sock *framed; /* SEQPACKET: decorator slots (free while inner is NULL) */
    size_t nframed;
    uint8_t *framed_mem;
    size_t max_message;
    sprig_backend backend; /* registered with the loop */
    sprig_ns_proto proto;  /* registered with the node */
} sprig_ns_stream_backend;

/* Bytes of ring memory sprig_ns_stream_init() needs for n connections with this config. */
size_t sprig_ns_stream_ring_size(const sprig_ns_stream_cfg *cfg, size_t n);
/* conns[n]: connection storage (a listener takes one too); rings: ring_len >=
 * sprig_ns_stream_ring_size(cfg, n) bytes. INVALID_ARGUMENT for missing or short storage, tc > 3,
 * rx_buf > 2^30, or a pool whose buffers cannot hold the headers plus 64 bytes; ALREADY_EXISTS if
 * the node already has a STREAM protocol. */
sprig_status sprig_ns_stream_init(sprig_ns_stream_backend *be, sprig_ns_node *node,
                                  const sprig_ns_stream_cfg *cfg, sprig_ns_conn *conns, size_t n,
                                  uint8_t *rings, size_t ring_len, sprig_buf_pool *pool);
/* Offer SEQPACKET: n framing decorators (sprig/framing.h) over STREAM connections, each with
 * 2 · (max_message + 4) bytes of mem. Dial/listen/accept with SEQPACKET then hand out
 * &framed[i].sock. INVALID_ARGUMENT for missing or short storage or max_message 0. */
sprig_status sprig_ns_stream_enable_seqpacket(sprig_ns_stream_backend *be, sprig_framed_sock *f,
                                              size_t n, uint8_t *mem, size_t mem_len,
                                              size_t max_message);
/* Unregisters from loop and node, drops every connection (no events, nothing sent). Idempotent. */
void sprig_ns_stream_deinit(sprig_ns_stream_backend *be);
/* Sockets the user holds (not closed yet). */
size_t sprig_ns_stream_in_use(const sprig_ns_stream_backend *be);
/* Connections still alive, closed-but-finishing (orphan) ones included. */
size_t sprig_ns_stream_active(const sprig_ns_stream_backend *be);

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_NS_STREAM_H */
