/* sprig-ping — reachability and round-trip time between netstack nodes, with the netstack's
 * ICMP-like echo (docs/netstack.md §3), over a serial line or UDP encapsulation (§11 URLs).
 *
 *   sprig-ping [-c COUNT] [-i MS] [-s BYTES] [-W MS] [-t NODE] URL     ping (default: URL's peer)
 *   sprig-ping --serve URL                                              just be a node that answers
 *
 *   sprig-ping --serve 'sprig+udp://127.0.0.1:47823?node=2&listen'
 *   sprig-ping -c 5 'sprig+udp://127.0.0.1:47823?node=1&peer=2'
 *   sprig-ping 'serial:/dev/ttyACM0?node=1&peer=2&baud=115200'
 *
 * A listening sprig+udp node answers any number of pingers (up to its peer table, peers=K,
 * default 16) as long as each has its own node id.
 *
 * Exit status: 0 if at least one reply came back, 1 if none, 2 for usage or set-up errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sprig/ns_os.h"

#define MAX_DATA 1400

typedef struct pinger {
    sprig_os_loop ol;
    sprig_ns_os_endpoint *ep;
    uint16_t target;
    uint16_t ident;
    unsigned count; /* 0: until interrupted */
    sprig_time interval, wait;
    size_t size;
    unsigned sent, received, errors;
    sprig_time sent_at[65536 / 64]; /* by seq % 1024 */
    double min_ms, max_ms, sum_ms;
    sprig_time last_sent;
    sprig_timer tick;
    bool serve;
} pinger;

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static const char *icmp_name(const sprig_ns_icmp *msg)
{
    switch (msg->type) {
    case SPRIG_NS_ICMP_UNREACHABLE:
        return msg->code == 2 ? "port unreachable" : "destination unreachable";
    case SPRIG_NS_ICMP_TOO_BIG:
        return "packet too big";
    case SPRIG_NS_ICMP_TIME_EXCEEDED:
        return "time exceeded (hop limit)";
    default:
        return "ICMP error";
    }
}

static void on_icmp(sprig_ns_node *node, const sprig_ns_header *ip, const sprig_ns_icmp *msg,
                    const uint8_t *body, size_t len, void *arg)
{
    (void)node;
    (void)body;
    pinger *p = arg;
    if (msg->type == SPRIG_NS_ICMP_ECHO_REPLY) {
        if (msg->a != p->ident) {
            return;
        }
        sprig_time now = sprig_loop_now(&p->ol.loop);
        double ms =
            (double)(now - p->sent_at[msg->b % (sizeof(p->sent_at) / sizeof(p->sent_at[0]))]) /
            1000.0;
        p->received++;
        p->sum_ms += ms;
        if (p->received == 1 || ms < p->min_ms) {
            p->min_ms = ms;
        }
        if (ms > p->max_ms) {
            p->max_ms = ms;
        }
        printf("%zu bytes from node %u: seq=%u hops=%u time=%.3f ms\n", len, (unsigned)ip->src,
               (unsigned)msg->b, (unsigned)(SPRIG_CONFIG_NS_HOP_LIMIT - ip->hop_limit + 1), ms);
    } else {
        p->errors++;
        printf("from node %u: %s\n", (unsigned)ip->src, icmp_name(msg));
    }
    fflush(stdout);
}

static void send_one(pinger *p)
{
    static uint8_t data[MAX_DATA];
    for (size_t i = 0; i < p->size; i++) {
        data[i] = (uint8_t)i;
    }
    uint16_t seq = (uint16_t)p->sent;
    p->sent_at[seq % (sizeof(p->sent_at) / sizeof(p->sent_at[0]))] = sprig_loop_now(&p->ol.loop);
    sprig_status st = sprig_ns_node_ping(&p->ep->node, p->target, p->ident, seq, data, p->size,
                                         SPRIG_NS_TC_CONTROL);
    p->sent++;
    p->last_sent = sprig_loop_now(&p->ol.loop);
    if (st != SPRIG_STATUS_OK) {
        printf("seq=%u: not sent: %s\n", (unsigned)seq, sprig_status_str(st));
        fflush(stdout);
    }
}

static void on_tick(sprig_timer *t, void *arg)
{
    (void)t;
    pinger *p = arg;
    if (p->count == 0 || p->sent < p->count) {
        send_one(p);
        sprig_timer_start(&p->ol.loop, &p->tick, p->interval);
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: sprig-ping [-c COUNT] [-i MS] [-s BYTES] [-W MS] [-t NODE] URL\n"
               "       sprig-ping --serve URL\n"
               "URL: serial:PATH?node=N&peer=P[&baud=B]  |  "
               "sprig+udp://HOST:PORT?node=N&peer=P[&listen[&peers=K]]\n"
               "A listening sprig+udp node answers many pingers at once, each with its own "
               "node=N.\n");
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 0);
    if (errno != 0 || end == s || *end != '\0' || v > max) {
        return false;
    }
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    static pinger p;
    p.count = 4;
    p.interval = SPRIG_TIME_MS(1000);
    p.wait = SPRIG_TIME_MS(2000);
    p.size = 56;
    const char *url = NULL;
    unsigned long target = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        unsigned long v;
        bool has_val = i + 1 < argc;
        if (strcmp(a, "--serve") == 0) {
            p.serve = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (has_val && strcmp(a, "-c") == 0 && parse_uint(argv[i + 1], 1000000, &v)) {
            p.count = (unsigned)v;
            i++;
        } else if (has_val && strcmp(a, "-i") == 0 && parse_uint(argv[i + 1], 3600000, &v) &&
                   v > 0) {
            p.interval = SPRIG_TIME_MS(v);
            i++;
        } else if (has_val && strcmp(a, "-W") == 0 && parse_uint(argv[i + 1], 3600000, &v)) {
            p.wait = SPRIG_TIME_MS(v);
            i++;
        } else if (has_val && strcmp(a, "-s") == 0 && parse_uint(argv[i + 1], MAX_DATA, &v)) {
            p.size = v;
            i++;
        } else if (has_val && strcmp(a, "-t") == 0 && parse_uint(argv[i + 1], 0xFFFE, &v) &&
                   v > 0) {
            target = v;
            i++;
        } else if (a[0] != '-' && url == NULL) {
            url = a;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (url == NULL) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    sprig_status st = sprig_os_loop_init(&p.ol);
    if (st != SPRIG_STATUS_OK) {
        fprintf(stderr, "sprig-ping: loop: %s\n", sprig_status_str(st));
        return 2;
    }
    char why[256] = "";
    sprig_ns_os_opts opts = {
        .on_icmp = on_icmp, .icmp_arg = &p, .error = why, .error_cap = sizeof(why)};
    st = sprig_ns_os_open(&p.ol, url, &opts, &p.ep);
    if (st != SPRIG_STATUS_OK) {
        fprintf(stderr, "sprig-ping: %s: %s%s%s\n", url, why, why[0] != '\0' ? ": " : "",
                sprig_status_str(st));
        sprig_os_loop_deinit(&p.ol);
        return 2;
    }
    p.target = target != 0 ? (uint16_t)target : p.ep->peer;
    p.ident = (uint16_t)getpid();
    int rc = 0;
    if (p.serve) {
        printf("node %u answering pings on %s (Ctrl-C to stop)\n",
               (unsigned)sprig_ns_node_id(&p.ep->node), url);
        fflush(stdout);
        while (!interrupted) {
            (void)sprig_loop_run_once(&p.ol.loop, SPRIG_TIME_MS(200));
        }
    } else {
        printf("PING node %u from node %u over %s: %zu data bytes\n", (unsigned)p.target,
               (unsigned)sprig_ns_node_id(&p.ep->node), url, p.size);
        fflush(stdout);
        sprig_timer_init(&p.tick, on_tick, &p);
        sprig_timer_start(&p.ol.loop, &p.tick, 0);
        for (;;) {
            (void)sprig_loop_run_once(&p.ol.loop, SPRIG_TIME_MS(50));
            if (interrupted) {
                break;
            }
            bool all_sent = p.count != 0 && p.sent >= p.count;
            if (all_sent && (p.received + p.errors >= p.sent ||
                             sprig_loop_now(&p.ol.loop) - p.last_sent >= p.wait)) {
                break;
            }
        }
        sprig_timer_stop(&p.ol.loop, &p.tick);
        unsigned loss = p.sent > 0 ? (unsigned)(100u * (p.sent - p.received) / p.sent) : 0;
        printf("--- node %u ping statistics ---\n%u transmitted, %u received, %u%% loss\n",
               (unsigned)p.target, p.sent, p.received, loss);
        if (p.received > 0) {
            printf("rtt min/avg/max = %.3f/%.3f/%.3f ms\n", p.min_ms, p.sum_ms / p.received,
                   p.max_ms);
        }
        rc = p.received > 0 ? 0 : 1;
    }
    const sprig_ns_serial_stats *ss = &p.ep->serial.serial.stats;
    const sprig_ns_udp_stats *us = &p.ep->udp.stats;
    if (p.ep->is_udp) {
        printf("link: %u datagrams in, %u out, %u bad, %u too long, %u from strangers\n",
               (unsigned)us->rx_datagrams, (unsigned)us->tx_datagrams, (unsigned)us->bad,
               (unsigned)us->too_long, (unsigned)us->wrong_peer);
        if (!p.ep->udp.has_peer) {
            printf("peers: %zu known, %u packets to unknown nodes dropped, %u evicted\n",
                   sprig_ns_udp_peer_count(&p.ep->udp), (unsigned)us->no_peer,
                   (unsigned)us->evicted);
        }
    } else {
        printf("link: %u frames in, %u out, %u CRC errors, %u framing errors, %u overruns%s\n",
               (unsigned)ss->rx.frames, (unsigned)ss->tx_frames, (unsigned)ss->rx.crc_errors,
               (unsigned)ss->rx.framing_errors, (unsigned)ss->rx.overruns,
               sprig_ns_serial_fd_status(&p.ep->serial) != SPRIG_STATUS_OK ? " (line closed)" : "");
    }
    sprig_ns_os_close(p.ep);
    sprig_os_loop_deinit(&p.ol);
    return rc;
}
