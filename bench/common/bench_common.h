/*
 * bench_common — what sprig-bench-sockets and sprig-bench-rpc share: the program frame (options,
 * CPU pinning, temporary directory, fork-the-server measurement, repeats and statistics), error
 * printing, timing, the raw-socket baseline's connection and framing (unix SOCK_SEQPACKET as is,
 * TCP with a 4-byte big-endian length prefix) and the sprig OS loop/backend pair.
 *
 * A program describes itself once with bench_init (its name, temporary directory, the functions
 * that serve and measure each implementation); the rest reads that description.
 */
#ifndef SPRIG_BENCH_COMMON_H
#define SPRIG_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sprig/os.h"
#include "sprig/status.h"

#define BENCH_MSG_LEN    16u   /* the benchmarks' message / payload size */
#define BENCH_MAX_REPEAT 10u   /* --repeat at most */
#define BENCH_RAW_MAX    2048u /* largest message bench_raw_send frames on TCP */

typedef enum bench_transport { BENCH_UNIX, BENCH_TCP, BENCH_TRANSPORTS } bench_transport;
typedef enum bench_impl { BENCH_RAW, BENCH_SPRIG, BENCH_IMPLS } bench_impl;

extern const char *const bench_transport_name[BENCH_TRANSPORTS];

typedef struct bench_opts {
    unsigned rounds;
    unsigned warmup;
    unsigned messages;
    unsigned repeat;
    bool pin;
} bench_opts;

/* What one client run measured. */
typedef struct bench_run_out {
    uint64_t *rtt;     /* o->rounds round trips (ns) */
    uint64_t *helpers; /* sprig: o->rounds round trips of the second sprig row (ns) */
    double rate;       /* messages/s */
} bench_run_out;

/* One transport and implementation over every repeat. */
typedef struct bench_series {
    uint64_t *rtt; /* repeat * rounds samples */
    uint64_t *helpers;
    double rate[BENCH_MAX_REPEAT];
    unsigned runs; /* runs that completed */
    bool failed;
    double rtt_median; /* us, over the samples of every run */
    double rtt_p99;
    double helpers_median;
    double helpers_p99;
    double rate_median; /* median of the runs' rates */
} bench_series;

/* Child: listen, write the port (TCP; 0 for unix) to ready_fd, serve one connection until it
 * ends. Returns the exit status. */
typedef int (*bench_server_fn)(bench_transport t, int ready_fd);
/* Parent: connect to the server and measure into *r. */
typedef bool (*bench_client_fn)(bench_transport t, uint16_t port, const bench_opts *o,
                                bench_run_out *r);

typedef struct bench_program {
    const char *prog;       /* prefix of every message */
    char *dir;              /* writable mkdtemp template, e.g. "/tmp/sprig-bench-XXXXXX" */
    const char *sprig_sock; /* the sprig server listens on <dir>/<sprig_sock>.sock (unix) */
    bool child_watchdog;    /* the server child also arms the watchdog alarm */
    void (*usage)(FILE *f); /* --help */
    bench_server_fn server[BENCH_IMPLS];
    bench_client_fn client[BENCH_IMPLS];
    /* the result table: width of the implementation column, rate column heading, row labels */
    int impl_width;
    const char *rate_heading;
    const char *raw_row;      /* raw */
    const char *raw_failed;   /* raw, when a run failed */
    const char *sprig_row;    /* sprig, rtt and rate */
    const char *helpers_row;  /* sprig, the second round-trip row (no rate) */
    const char *sprig_failed; /* sprig, when a run failed */
} bench_program;

/* Remembers p (not copied) for everything below, parses the command line into *o, ignores
 * SIGPIPE, creates the temporary directory and allocates the samples. Returns -1 to go on, else
 * the exit status. */
int bench_start(const bench_program *p, int argc, char **argv, bench_opts *o,
                bench_series res[BENCH_TRANSPORTS][BENCH_IMPLS]);
/* Frees the samples, removes the temporary directory; the exit status (1, reported, unless
 * all_ok). */
int bench_finish(bench_series res[BENCH_TRANSPORTS][BENCH_IMPLS], bool all_ok);
/* The option lines of --help from --repeat on (the program prints those above). */
void bench_usage_tail(FILE *f);

/* ---- errors and time -------------------------------------------------------------------- */

void bench_err(const char *what, const char *detail);
void bench_err_st(const char *what, sprig_status st);
void bench_err_errno(const char *what);
uint64_t bench_now_ns(void);

/* ---- paths, pinning, the measurement loop, statistics ------------------------------------ */

/* The unix socket path of implementation im. */
void bench_unix_path(bench_impl im, char *out, size_t cap);
/* The sprig URL: unix:<path> or tcp://127.0.0.1:<port>. */
void bench_url(bench_transport t, uint16_t port, char *out, size_t cap);
/* Pins to one CPU unless --no-pin and prints the line that says how it went. */
void bench_pin(const bench_opts *o);

/* Every repeat of every transport, raw and sprig alternating, then the statistics. */
void bench_run(const bench_opts *o, bench_series res[BENCH_TRANSPORTS][BENCH_IMPLS]);
/* The result table and the blank line after it. False if a series failed. */
bool bench_print_table(bench_series res[BENCH_TRANSPORTS][BENCH_IMPLS]);

/* ---- raw sockets: blocking I/O, TCP framed by hand ------------------------------------- */

typedef struct bench_raw_conn {
    int fd;
    bench_transport t;
    uint8_t rx[65536]; /* TCP: received bytes, rx[start..end) not yet parsed */
    size_t start;
    size_t end;
} bench_raw_conn;

void bench_put_be32(uint8_t *p, uint32_t v);
uint32_t bench_get_be32(const uint8_t *p);
/* One message (at most BENCH_RAW_MAX bytes on TCP). */
bool bench_raw_send(bench_raw_conn *c, const uint8_t *msg, size_t len);
/* One message into *msg (pointing into c->rx, valid until the next call). 1: got one,
 * 0: orderly end, -1: error. */
int bench_raw_recv(bench_raw_conn *c, const uint8_t **msg, size_t *len);
/* Server child: listen on transport t, write the port to ready_fd (then close it), accept one
 * connection into *c. False (reported) on failure. */
bool bench_raw_accept(bench_transport t, int ready_fd, bench_raw_conn *c);
/* Client: connect *c to the raw server. False (reported) on failure. */
bool bench_raw_connect(bench_transport t, uint16_t port, bench_raw_conn *c);
/* o->warmup + o->rounds echo round trips of BENCH_MSG_LEN-byte messages made by fill(i, msg),
 * the measured ones into rtt (ns). On failure reports, closes c->fd and returns false. */
bool bench_raw_round_trips(bench_raw_conn *c, const bench_opts *o, uint64_t *rtt,
                           void (*fill)(unsigned i, uint8_t *msg));

/* ---- sprig: the OS loop and backend ----------------------------------------------------- */

typedef struct bench_env {
    sprig_os_loop ol;
    sprig_os_backend b;
    bool loop_ready;
    bool backend_ready;
} bench_env;

sprig_status bench_env_init(bench_env *e);
void bench_env_deinit(bench_env *e);

#endif /* SPRIG_BENCH_COMMON_H */
