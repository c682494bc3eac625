/*
 * sprig/ns_os.h — host-only (POSIX) parts of the netstack: the serial link over a file
 * descriptor (tty, pty, pipe, socketpair), UDP encapsulation (docs/netstack.md §7), and
 * building a node plus link from an endpoint URL (docs/netstack.md §11).
 *
 * Contract
 *   Loop: everything runs on one sprig_os_loop and is used from its thread only. File
 *     descriptors are watched edge-triggered; reads drain the descriptor, writes are
 *     non-blocking and wait for EPOLLOUT when the descriptor is full (back-pressure: packets
 *     stay in the node's class queues meanwhile).
 *   Ownership: the link structs live in caller storage and must stay put while in use. A
 *     descriptor handed to sprig_ns_serial_fd_init() is closed by deinit only when own_fd is
 *     set; descriptors the functions here open themselves are always closed by deinit.
 *   Memory: the links do not allocate (receive buffers come from cfg.pool, a listening UDP
 *     link's peer table from cfg.peers). sprig_ns_os_open() and sprig_ns_os_set are host
 *     conveniences and allocate.
 *   TTYs: opened O_RDWR|O_NOCTTY|O_NONBLOCK|O_CLOEXEC in raw mode (cfmakeraw, CLOCAL|CREAD,
 *     VMIN=0, VTIME=0). The line is never set to 1200 baud: opening a Raspberry Pi Pico's USB
 *     CDC port at 1200 baud and closing it reboots the Pico into its bootloader, so 1200 is
 *     refused with INVALID_ARGUMENT.
 *   Signals: writes to a socket use MSG_NOSIGNAL. A write to a pipe whose reader has gone raises
 *     SIGPIPE unless the process ignores it (sprig's tools do); with SIGPIPE ignored the link
 *     counts a tx error and drops the frame.
 *   Errors: OS errors are mapped with sprig_os_status_from_errno(); a broken descriptor (EOF on
 *     a pipe or socket, EIO on a pty whose other side closed) stops the link and is reported
 *     by sprig_ns_serial_fd_status() — packets queued on it are dropped by the node's queue
 *     limits like on any dead link.
 *   Input is hostile: bad frames and datagrams are counted and dropped (see the stats).
 */
#ifndef SPRIG_NS_OS_H
#define SPRIG_NS_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sprig/ns_dgram.h"
#include "sprig/ns_node.h"
#include "sprig/ns_serial.h"
#include "sprig/ns_stream.h"
#include "sprig/os.h"
#include "sprig/url.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- serial link over a file descriptor -------------------------------------------------- */

#define SPRIG_NS_SERIAL_DEFAULT_BAUD 115200u

typedef struct sprig_ns_serial_fd_cfg {
    sprig_buf_pool *pool; /* receive buffers, each >= mtu + 4 bytes */
    uint16_t mtu;         /* 8..SPRIG_CONFIG_NS_MAX_MTU */
} sprig_ns_serial_fd_cfg;

typedef struct sprig_ns_serial_fd_stats {
    uint64_t rx_bytes;
    uint64_t tx_bytes;
    uint32_t write_stalls; /* writes that hit EAGAIN and waited for EPOLLOUT */
} sprig_ns_serial_fd_stats;

typedef struct sprig_ns_serial_fd {
    sprig_ns_serial serial; /* the link: attach &serial.link to a node; stats in serial.stats */
    sprig_os_loop *ol;
    sprig_os_fd watch;
    int fd;
    bool own_fd;
    bool is_socket;  /* send(MSG_NOSIGNAL) instead of write */
    bool is_tty;     /* read() == 0 means "no data" (VMIN=0), not end of file */
    bool want_out;   /* EPOLLOUT armed */
    bool watching;   /* registered with the loop */
    sprig_status st; /* OK, or why the descriptor stopped */
    sprig_ns_serial_fd_stats stats;
} sprig_ns_serial_fd;

/* Attach a serial link to an open descriptor (made non-blocking here). INVALID_ARGUMENT for a
 * bad config or fd < 0; the epoll status if the descriptor cannot be watched (a regular file).
 * On failure the descriptor is not closed, whatever own_fd says. */
sprig_status sprig_ns_serial_fd_init(sprig_ns_serial_fd *s, sprig_os_loop *ol, int fd, bool own_fd,
                                     const sprig_ns_serial_fd_cfg *cfg);
/* Open a serial device (or any path: a fifo works too) and attach to it. A tty is put in raw
 * mode at `baud` (0: keep the line's current speed if it is not 1200, else 115200); standard
 * rates 9600..4000000 only. INVALID_ARGUMENT for baud 1200 or an unsupported rate; NOT_FOUND,
 * PERMISSION_DENIED, ... from open(). */
sprig_status sprig_ns_serial_fd_open(sprig_ns_serial_fd *s, sprig_os_loop *ol, const char *path,
                                     uint32_t baud, const sprig_ns_serial_fd_cfg *cfg);
/* Stop watching, detach from the node, free frames in progress, close an owned descriptor.
 * Idempotent; safe on a zeroed struct or after a failed init. */
void sprig_ns_serial_fd_deinit(sprig_ns_serial_fd *s);
static inline sprig_ns_link *sprig_ns_serial_fd_link(sprig_ns_serial_fd *s)
{
    return &s->serial.link;
}
/* OK while the descriptor works; ABORTED after end of file or hang-up, another status after a
 * read or write error. */
static inline sprig_status sprig_ns_serial_fd_status(const sprig_ns_serial_fd *s)
{
    return s->st;
}

/* Put an open tty in raw mode at baud (as sprig_ns_serial_fd_open). INVALID_ARGUMENT for 1200
 * or an unsupported rate, FAILED_PRECONDITION if fd is not a tty. */
sprig_status sprig_ns_tty_set_raw(int fd, uint32_t baud);

/* ---- UDP encapsulation --------------------------------------------------------------------- */

#ifndef SPRIG_CONFIG_NS_UDP_PORT
#define SPRIG_CONFIG_NS_UDP_PORT 47823
#endif
#define SPRIG_NS_UDP_MAX_MTU 1472 /* 1500-byte Ethernet − IPv4 − UDP headers */

/* One row of a listening link's peer table: packets to `node` go to `addr`. */
typedef struct sprig_ns_udp_peer {
    uint64_t heard;  /* the link's receive count then: the smallest is evicted first */
    sprig_addr addr; /* the UDP address `node` last sent a good packet from */
    uint16_t node;   /* 0: a free row */
} sprig_ns_udp_peer;

typedef struct sprig_ns_udp_cfg {
    sprig_buf_pool *pool; /* receive buffers, each >= mtu + 1 bytes (to see oversized ones) */
    uint16_t mtu;         /* 64..SPRIG_NS_UDP_MAX_MTU; 0: 1024 */
    sprig_addr local;     /* bind address; port 0 picks one (see sprig_ns_udp_local) */
    sprig_addr peer;      /* the neighbour */
    bool has_peer;        /* false: listening, learn the peers (below) */
    /* Listening (has_peer false): the peer table, caller storage that must stay put; node id ->
     * UDP address, learnt from the source node id of every good datagram (a row is updated
     * when that node shows up from another address). Each packet goes to the address of its
     * destination node (a broadcast to every row); an unknown destination is dropped and
     * counted (no_peer). When the table is full a new node evicts the row heard from least
     * recently (evicted). NULL/0: one row inside the link (one peer at a time). */
    sprig_ns_udp_peer *peers;
    size_t peer_cap;
} sprig_ns_udp_cfg;

typedef struct sprig_ns_udp_stats {
    uint32_t rx_datagrams; /* good, handed up */
    uint32_t tx_datagrams;
    uint32_t bad;        /* not a netstack packet (header check failed): garbage */
    uint32_t too_long;   /* longer than the MTU */
    uint32_t wrong_peer; /* dialing: from an address other than the peer */
    uint32_t no_buffer;  /* pool empty */
    uint32_t no_peer;    /* listening: dropped, no address known for the destination node */
    uint32_t evicted;    /* listening: peer-table rows given to a new node */
    uint32_t tx_errors;  /* sendto failed with other than EAGAIN: packet dropped */
    uint32_t write_stalls;
} sprig_ns_udp_stats;

typedef struct sprig_ns_udp {
    sprig_ns_link link; /* attach this to a node; first member */
    sprig_ns_udp_cfg cfg;
    sprig_os_loop *ol;
    sprig_os_fd watch;
    int fd;
    int family;
    sprig_addr peer; /* dialing: the configured peer */
    bool has_peer;   /* dialing */
    bool want_out;
    bool watching;
    sprig_buf *tx_buf;        /* a packet waiting for EPOLLOUT */
    sprig_addr tx_to;         /* ... and where it goes */
    sprig_ns_udp_peer *peers; /* listening: cfg.peers, or &one */
    size_t peer_cap;
    sprig_ns_udp_peer one;
    uint64_t heard; /* good datagrams received (the peer table's clock) */
    sprig_ns_udp_stats stats;
} sprig_ns_udp;

/* Bind a UDP socket on cfg->local and attach the link to it. IPv4 (::ffff:a.b.c.d) local and
 * peer use an AF_INET socket, anything else AF_INET6. INVALID_ARGUMENT for a bad config or a
 * peer of the other family; ALREADY_EXISTS if the port is taken (mapped errno otherwise). */
sprig_status sprig_ns_udp_init(sprig_ns_udp *u, sprig_os_loop *ol, const sprig_ns_udp_cfg *cfg);
/* Idempotent; safe on a zeroed struct or after a failed init. Closes the socket. */
void sprig_ns_udp_deinit(sprig_ns_udp *u);
/* The bound address (the port chosen for port 0). */
sprig_status sprig_ns_udp_local(const sprig_ns_udp *u, sprig_addr *out);
static inline sprig_ns_link *sprig_ns_udp_link(sprig_ns_udp *u)
{
    return &u->link;
}
/* Where a packet to `node` would be sent: the peer when dialing; when listening, the table row
 * for node (NOT_FOUND if none). INVALID_ARGUMENT for NULL arguments. */
sprig_status sprig_ns_udp_peer_addr(const sprig_ns_udp *u, uint16_t node, sprig_addr *out);
/* Listening: rows in use in the peer table (0 when dialing). */
size_t sprig_ns_udp_peer_count(const sprig_ns_udp *u);

/* ---- endpoints from URLs (docs/netstack.md §11) --------------------------------------------- */

/* serial:PATH?node=N&peer=P&baud=B&mtu=M
 * sprig+udp://PEERHOST:PORT?node=N&peer=P&bind=LPORT&mtu=M   (dial a peer)
 * sprig+udp://LOCALHOST:PORT?node=N&listen=1&peers=K        (bind; serve every node that
 *                                                             sends: a peer table of K rows,
 *                                                             default 16, see sprig_ns_udp_cfg)
 * A host node N (default 1) with one link and a default route through it; P (default 2) is
 * the node at the other end, for the caller's convenience (sprig://P:PORT). DGRAM, STREAM and
 * SEQPACKET (framed on STREAM) all work on sprig:// URLs through the endpoint. */
typedef struct sprig_ns_os_opts {
    size_t bufs;              /* buffer pool size; 0: 64 */
    size_t socks;             /* DGRAM sockets; 0: 16 */
    size_t conns;             /* STREAM/SEQPACKET connections, listeners included; 0: 8 */
    uint32_t stream_buf;      /* send and receive ring per connection, bytes; 0: 4096 */
    size_t max_message;       /* largest SEQPACKET message; 0: 4096 (pool buffers hold one) */
    sprig_ns_icmp_fn on_icmp; /* the node's ICMP callback (echo replies: sprig-ping) */
    void *icmp_arg;
    char *error; /* optional: a one-line reason for a failure, for people ("" on success) */
    size_t error_cap;
} sprig_ns_os_opts;

typedef struct sprig_ns_os_endpoint {
    sprig_ns_node node;
    uint16_t peer; /* node id at the other end */
    bool is_udp;
    sprig_ns_serial_fd serial;
    sprig_ns_udp udp;
    sprig_ns_route routes[2];
    sprig_ns_dgram_backend dgram;   /* DGRAM on sprig://, served through stream's backend */
    sprig_ns_stream_backend stream; /* registered last: sprig:// STREAM and SEQPACKET */
    sprig_ns_dsock *socks;
    sprig_ns_conn *conns;
    uint8_t *rings;
    sprig_framed_sock *framed;
    uint8_t *framed_mem;
    sprig_buf_pool pool;
    sprig_buf *pool_bufs;
    uint8_t *pool_mem;
    sprig_ns_udp_peer *peers; /* listening sprig+udp: the peer table */
} sprig_ns_os_endpoint;

/* True for the URL schemes sprig_ns_os_open() takes (serial, sprig+udp). */
bool sprig_ns_os_handles(const sprig_url *url);
/* Build node, link, default route and the DGRAM and STREAM (with SEQPACKET) backends from url
 * (opts may be NULL). Allocates.
 * INVALID_ARGUMENT for a malformed URL or query, UNIMPLEMENTED for another scheme, NOT_FOUND
 * for an unknown host or device, and whatever opening the device or socket returns. */
sprig_status sprig_ns_os_open(sprig_os_loop *ol, const char *url, const sprig_ns_os_opts *opts,
                              sprig_ns_os_endpoint **out);
/* Tear down and free. NULL is ignored. Close the endpoint's sockets first. */
void sprig_ns_os_close(sprig_ns_os_endpoint *ep);

/* ---- any URL for a host tool: OS sockets or the netstack (docs/netstack.md §11) ------------- */

/* What a host tool keeps to take both kinds of URL on the command line: OS socket URLs
 * (unix:PATH, tcp://HOST:PORT, udp://HOST:PORT, ...) pass through unchanged; a netstack URL
 * (serial:PATH, sprig+udp://HOST:PORT) opens an endpoint on the tool's loop and becomes the
 * sprig://NODE:PORT URL to dial or listen on through it. One endpoint per set and per loop (a
 * sprig:// URL reaches one netstack backend); the same link URL again reuses it. Host only:
 * allocates. Usage:
 *     sprig_ns_os_set ns;
 *     sprig_ns_os_set_init(&ns, &ol, NULL);
 *     char url[SPRIG_NS_OS_URL_MAX];
 *     if (sprig_ns_os_set_url(&ns, argv_url, false, MY_PORT, url, sizeof(url)) != OK)
 *         fprintf(stderr, "%s: %s\n", argv_url, sprig_ns_os_set_error(&ns));
 *     sprig_sock_dial(&ol.loop, url, ...); ... close the sockets ...
 *     sprig_ns_os_set_close(&ns, SPRIG_TIME_S(2));   (before the loop goes away) */
#define SPRIG_NS_OS_URL_MAX 512

typedef struct sprig_ns_os_set {
    sprig_os_loop *ol;
    sprig_ns_os_opts opts;          /* for the endpoint (error/error_cap are the set's own) */
    sprig_ns_os_endpoint *ep;       /* the netstack endpoint, or NULL */
    char link[SPRIG_NS_OS_URL_MAX]; /* the URL it was opened with (defaults added) */
    char error[256];
} sprig_ns_os_set;

/* opts may be NULL (defaults); it is copied. */
void sprig_ns_os_set_init(sprig_ns_os_set *set, sprig_os_loop *ol, const sprig_ns_os_opts *opts);
/* The URL to dial (listening false) or listen on for a URL a user gave, into out[0..cap).
 * A netstack URL opens the endpoint (or reuses it for the same link) and yields
 * sprig://NODE:PORT: the endpoint's own node when listening, its peer when dialing. Its query
 * may hold port=N (the sprig port, taken out before the endpoint sees the query; default
 * `port`, the tool's well-known one); without node=/peer= a listening side is node 2 with
 * peer 1, a dialing side node 1 with peer 2; a listening sprig+udp URL without listen= or bind=
 * gets listen=1. Any other URL is checked by the URL parser and copied unchanged.
 * INVALID_ARGUMENT (malformed URL, bad port=, a second different netstack link, out too small),
 * else what sprig_ns_os_open returns; sprig_ns_os_set_error() says why in words. */
sprig_status sprig_ns_os_set_url(sprig_ns_os_set *set, const char *url, bool listening,
                                 uint16_t port, char *out, size_t cap);
/* A one-line reason for the last failure of sprig_ns_os_set_url ("" if none). */
const char *sprig_ns_os_set_error(const sprig_ns_os_set *set);
/* The endpoint (NULL if no netstack URL was given). */
static inline sprig_ns_os_endpoint *sprig_ns_os_set_endpoint(const sprig_ns_os_set *set)
{
    return set->ep;
}
/* Sockets still open on the endpoint (0 with none). */
size_t sprig_ns_os_set_open_count(const sprig_ns_os_set *set);
/* Runs the loop up to `linger` while closed STREAM connections finish their FIN exchange (so
 * the peer sees an orderly close, not a silence), then closes the endpoint. Close the sockets
 * first. Idempotent; safe after init alone. */
void sprig_ns_os_set_close(sprig_ns_os_set *set, sprig_time linger);

#ifdef __cplusplus
}
#endif

#endif /* SPRIG_NS_OS_H */
