/* test_os_serial.c — the netstack serial link over host file descriptors (sprig/ns_os.h): two
 * nodes exchanging DGRAM messages through the real COBS/CRC framing over a socketpair and a pty,
 * back-pressure on a small socket buffer, tty raw mode that refuses 1200 baud, and junk and
 * dropped bytes written into the line between and inside frames: the decoder resynchronises
 * and never delivers a corrupted datagram. */
#define _GNU_SOURCE
#include "support.h"

#include "ns_os_fixture.h"

#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "sprig/ns_dgram.h"
#include "sprig/ns_os.h"
#include "sprig/ns_wire.h"

#define NBUFS    64
#define BUF_SIZE 1152
#define SOCKS    4
#define MTU      1024

typedef struct side {
    sprig_ns_node node;
    sprig_ns_route routes[1];
    sprig_ns_serial_fd link;
    sprig_ns_dgram_backend be;
    sprig_ns_dsock socks[SOCKS];
} side;

typedef struct net {
    sprig_os_loop ol;
    sprig_buf_pool pool;
    side s[2]; /* node 1 and node 2 */
} net;

static net the_net;
static sprig_buf pool_bufs[NBUFS];
static uint8_t pool_mem[NBUFS * BUF_SIZE] __attribute__((aligned(SPRIG_CONFIG_BUF_ALIGN)));

static void net_init(net *t)
{
    memset(t, 0, sizeof(*t));
    assert_int_equal(sprig_os_loop_init(&t->ol), SPRIG_STATUS_OK);
    assert_int_equal(sprig_buf_pool_init(&t->pool, pool_bufs, pool_mem, NBUFS, BUF_SIZE),
                     SPRIG_STATUS_OK);
}

/* Node i+1 on fd (or, with fd < 0, on the device at path), with a default route through its serial
 * link and a DGRAM backend. */
static void side_up_path(net *t, int i, int fd, const char *path, uint32_t baud)
{
    side *s = &t->s[i];
    sprig_ns_node_cfg nc = {.id = (uint16_t)(i + 1),
                            .loop = &t->ol.loop,
                            .pool = &t->pool,
                            .routes = s->routes,
                            .route_cap = 1};
    assert_int_equal(sprig_ns_node_init(&s->node, &nc), SPRIG_STATUS_OK);
    sprig_ns_serial_fd_cfg lc = {.pool = &t->pool, .mtu = MTU};
    if (fd >= 0) {
        assert_int_equal(sprig_ns_serial_fd_init(&s->link, &t->ol, fd, true, &lc), SPRIG_STATUS_OK);
    } else {
        assert_int_equal(sprig_ns_serial_fd_open(&s->link, &t->ol, path, baud, &lc),
                         SPRIG_STATUS_OK);
    }
    assert_int_equal(sprig_ns_node_attach(&s->node, sprig_ns_serial_fd_link(&s->link)),
                     SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_node_add_route(&s->node, 0, 0, sprig_ns_serial_fd_link(&s->link)),
                     SPRIG_STATUS_OK);
    sprig_ns_dgram_cfg dc = {.rx_queue_len = 32, .tc = SPRIG_NS_TC_DEFAULT};
    assert_int_equal(sprig_ns_dgram_init(&s->be, &s->node, &dc, s->socks, SOCKS, &t->pool),
                     SPRIG_STATUS_OK);
}

static void side_up(net *t, int i, int fd)
{
    side_up_path(t, i, fd, NULL, 0);
}

static void side_down(side *s)
{
    assert_int_equal(sprig_ns_dgram_in_use(&s->be), 0);
    sprig_ns_dgram_deinit(&s->be);
    sprig_ns_serial_fd_deinit(&s->link);
    sprig_ns_serial_fd_deinit(&s->link); /* idempotent */
    sprig_ns_node_deinit(&s->node);
}

static void net_deinit(net *t)
{
    for (int i = 0; i < 2; i++) {
        side_down(&t->s[i]);
    }
    assert_int_equal(sprig_buf_pool_available(&t->pool), NBUFS);
    sprig_buf_pool_deinit(&t->pool);
    sprig_os_loop_deinit(&t->ol);
}

/* Send, running the loop while the link queue is full (UNAVAILABLE). */
static void send_retry(net *t, sprig_sock *k, const uint8_t *data, size_t len)
{
    for (int i = 0; i < 2000; i++) {
        sprig_status st = sprig_sock_send(k, data, len, NULL);
        if (st == SPRIG_STATUS_OK) {
            return;
        }
        assert_int_equal(st, SPRIG_STATUS_UNAVAILABLE);
        assert_int_equal(sprig_loop_run_once(&t->ol.loop, SPRIG_TIME_MS(5)), SPRIG_STATUS_OK);
    }
    fail_msg("send stayed UNAVAILABLE");
}

static void fill(uint8_t *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)((seed * 131u + i * 7u) ^ (i >> 3)); /* zeros included: COBS at work */
    }
}

/* Messages of many sizes each way; every one arrives intact and in order (a lossless line). */
static void exchange(net *t, unsigned count)
{
    sprig_sock *srv = nsos_open(&t->s[1].be, "sprig://2:7", true);
    sprig_sock *cli = nsos_open(&t->s[0].be, "sprig://2:7", false);
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(5)); /* CONNECTED */
    assert_int_equal(sprig_sock_max_message_size(cli), MTU - 14);
    static uint8_t out[MTU], in[MTU];
    sprig_addr from;
    for (unsigned i = 0; i < count; i++) {
        size_t len = 1 + (i * 97u) % (MTU - 14);
        fill(out, len, i);
        send_retry(t, cli, out, len);
        size_t n = nsos_recv_one(&t->ol.loop, srv, in, sizeof(in), &from);
        assert_int_equal(n, len);
        assert_memory_equal(in, out, len);
        /* and back */
        fill(out, len, i + 1000u);
        assert_int_equal(sprig_sock_send_to(srv, out, len, &from), SPRIG_STATUS_OK);
        n = nsos_recv_one(&t->ol.loop, cli, in, sizeof(in), NULL);
        assert_int_equal(n, len);
        assert_memory_equal(in, out, len);
    }
    sprig_sock_close(cli);
    sprig_sock_close(srv);
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(5));
}

static void test_os_serial_socketpair_exchange(void **state)
{
    (void)state;
    net *t = &the_net;
    net_init(t);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    side_up(t, 0, sv[0]);
    side_up(t, 1, sv[1]);
    assert_true(t->s[0].link.is_socket);
    exchange(t, 40);
    for (int i = 0; i < 2; i++) {
        const sprig_ns_serial_stats *st = &t->s[i].link.serial.stats;
        assert_int_equal(st->rx.crc_errors + st->rx.framing_errors + st->rx.overruns, 0);
        assert_int_equal(st->rx.frames, 40);
        assert_int_equal(st->tx_frames, 40);
    }
    /* the other end goes away: end of file stops the link with ABORTED */
    sprig_ns_serial_fd_deinit(&t->s[0].link);
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(20));
    assert_int_equal(sprig_ns_serial_fd_status(&t->s[1].link), SPRIG_STATUS_ABORTED);
    net_deinit(t);
}

/* A burst larger than the socket buffers: writes hit EAGAIN, wait for EPOLLOUT, and every
 * message still arrives in order (the link queue pushes back on the sender meanwhile). */
static void test_os_serial_back_pressure(void **state)
{
    (void)state;
    net *t = &the_net;
    net_init(t);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int small = 4096;
    assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    side_up(t, 0, sv[0]);
    side_up(t, 1, sv[1]);
    sprig_sock *srv = nsos_open(&t->s[1].be, "sprig://2:7", true);
    sprig_sock *cli = nsos_open(&t->s[0].be, "sprig://2:7", false);
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(5));
    static uint8_t out[MTU], in[MTU];
    enum { N = 30 };
    for (unsigned i = 0; i < N; i++) {
        fill(out, 1000, i);
        send_retry(t, cli, out, 1000);
    }
    assert_true(t->s[0].link.stats.write_stalls > 0);
    for (unsigned i = 0; i < N; i++) {
        size_t n = nsos_recv_one(&t->ol.loop, srv, in, sizeof(in), NULL);
        fill(out, 1000, i);
        assert_int_equal(n, 1000);
        assert_memory_equal(in, out, 1000);
    }
    assert_int_equal(t->s[1].link.serial.stats.rx.frames, N);
    sprig_sock_close(cli);
    sprig_sock_close(srv);
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(5));
    net_deinit(t);
}

/* A pty pair: the slave opened by path in raw mode (never at 1200 baud), the master as a plain
 * descriptor; DGRAM messages both ways through the line discipline left raw. */
static void test_os_serial_pty(void **state)
{
    (void)state;
    net *t = &the_net;
    net_init(t);
    int m = -1, sl = -1;
    char name[128];
    assert_int_equal(openpty(&m, &sl, name, NULL, NULL), 0);
    /* a line left at 1200 baud is moved off it when keeping the current speed (baud 0) */
    struct termios tio;
    assert_int_equal(tcgetattr(sl, &tio), 0);
    assert_int_equal(cfsetospeed(&tio, B1200), 0);
    assert_int_equal(cfsetispeed(&tio, B1200), 0);
    assert_int_equal(tcsetattr(sl, TCSANOW, &tio), 0);
    assert_int_equal(sprig_ns_tty_set_raw(sl, 1200), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(tcgetattr(sl, &tio), 0);
    assert_int_equal(cfgetospeed(&tio), B1200); /* refused before touching the line */
    assert_int_equal(sprig_ns_tty_set_raw(sl, 0), SPRIG_STATUS_OK);
    assert_int_equal(tcgetattr(sl, &tio), 0);
    assert_int_equal(cfgetospeed(&tio), B115200);
    assert_int_equal(tio.c_lflag & (ICANON | ECHO | ISIG), 0);
    assert_true((tio.c_cflag & (CLOCAL | CREAD)) == (CLOCAL | CREAD));
    assert_int_equal(tio.c_cc[VMIN], 0);
    assert_int_equal(tio.c_cc[VTIME], 0);
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    assert_int_equal(sprig_ns_tty_set_raw(sp[0], 115200), SPRIG_STATUS_FAILED_PRECONDITION);
    close(sp[0]);
    close(sp[1]);
    /* opening by path: 1200 and odd rates are refused, a missing device is NOT_FOUND */
    sprig_ns_serial_fd probe;
    sprig_ns_serial_fd_cfg lc = {.pool = &t->pool, .mtu = MTU};
    assert_int_equal(sprig_ns_serial_fd_open(&probe, &t->ol, name, 1200, &lc),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_ns_serial_fd_open(&probe, &t->ol, name, 12345, &lc),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_ns_serial_fd_open(&probe, &t->ol, "/nonexistent/tty", 0, &lc),
                     SPRIG_STATUS_NOT_FOUND);
    sprig_ns_serial_fd_deinit(&probe);
    side_up(t, 0, m);
    side_up_path(t, 1, -1, name, 230400);
    assert_true(t->s[1].link.is_tty);
    close(sl); /* the test's own descriptor; the link opened its own */
    assert_int_equal(tcgetattr(t->s[1].link.fd, &tio), 0);
    assert_int_equal(cfgetospeed(&tio), B230400);
    exchange(t, 20);
    const sprig_ns_serial_stats *st = &t->s[1].link.serial.stats;
    assert_int_equal(st->rx.crc_errors + st->rx.framing_errors + st->rx.overruns, 0);
    net_deinit(t);
}

/* ---- hostile line: frames built here, written raw with junk and dropped bytes ------------- */

static size_t make_packet(unsigned seq, uint8_t *pkt)
{
    size_t len = 20 + (seq * 37u) % 300;
    size_t seg = SPRIG_NS_DGRAM_HEADER_LEN + len;
    uint8_t *payload = pkt + SPRIG_NS_HEADER_LEN + SPRIG_NS_DGRAM_HEADER_LEN;
    fill(payload, len, seq);
    payload[0] = (uint8_t)seq;
    sprig_ns_header ip = {.tc = SPRIG_NS_TC_DEFAULT,
                          .hop_limit = 8,
                          .proto = SPRIG_NS_PROTO_DGRAM,
                          .length = (uint16_t)(SPRIG_NS_HEADER_LEN + seg),
                          .dst = 2,
                          .src = 1};
    sprig_ns_dgram d = {.src_port = 1000, .dst_port = 7};
    assert_int_equal(sprig_ns_dgram_emit(&ip, &d, pkt + SPRIG_NS_HEADER_LEN, seg), SPRIG_STATUS_OK);
    assert_int_equal(sprig_ns_header_emit(&ip, pkt, SPRIG_NS_HEADER_LEN), SPRIG_STATUS_OK);
    return SPRIG_NS_HEADER_LEN + seg;
}

/* COBS frame of packet seq (leading 0x00 if lead) into out; returns its length. */
static size_t make_frame(unsigned seq, bool lead, uint8_t *out, size_t cap)
{
    static uint8_t pkt[MTU];
    size_t n = make_packet(seq, pkt);
    sprig_ns_cobs_enc e;
    sprig_ns_cobs_enc_start(&e, pkt, n, lead);
    size_t len = 0, k;
    while ((k = sprig_ns_cobs_enc_fill(&e, out + len, cap - len)) > 0) {
        len += k;
    }
    return len;
}

typedef struct line {
    uint8_t bytes[8192];
    size_t len;
} line;

static void put(line *l, const uint8_t *p, size_t n)
{
    assert_true(l->len + n <= sizeof(l->bytes));
    memcpy(l->bytes + l->len, p, n);
    l->len += n;
}

static void put_frame(line *l, unsigned seq, bool lead, size_t drop_at, size_t flip_at,
                      bool drop_end)
{
    uint8_t f[1024];
    size_t n = make_frame(seq, lead, f, sizeof(f));
    if (flip_at != 0) {
        f[flip_at] ^= 0x10; /* stays non-zero for these frames (checked) */
        assert_true(f[flip_at] != 0);
    }
    if (drop_at != 0) {
        memmove(f + drop_at, f + drop_at + 1, n - drop_at - 1);
        n--;
    }
    if (drop_end) {
        n--; /* the closing delimiter is lost */
    }
    put(l, f, n);
}

static void put_junk(line *l, size_t n, bool zeros, uint32_t *rng)
{
    uint8_t j[512];
    assert_true(n <= sizeof(j));
    for (size_t i = 0; i < n; i++) {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 17;
        *rng ^= *rng << 5;
        j[i] = (uint8_t)*rng;
        if (!zeros && j[i] == 0) {
            j[i] = 0x55;
        }
    }
    put(l, j, n);
}

static void test_os_serial_garbage_resync(void **state)
{
    (void)state;
    net *t = &the_net;
    net_init(t);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    side_up(t, 1, sv[1]); /* node 2; the test plays node 1 on sv[0], writing raw bytes */
    sprig_ns_node_cfg nc = {.id = 1, .loop = &t->ol.loop, .pool = &t->pool};
    assert_int_equal(sprig_ns_node_init(&t->s[0].node, &nc), SPRIG_STATUS_OK);
    sprig_sock *srv = nsos_open(&t->s[1].be, "sprig://2:7", true);
    static line l;
    memset(&l, 0, sizeof(l));
    uint32_t rng = 12345;
    put_junk(&l, 300, true, &rng);         /* noise on the line before anything */
    put_frame(&l, 1, true, 0, 0, false);   /* good */
    put_frame(&l, 2, false, 40, 0, false); /* a byte dropped in the middle */
    put_frame(&l, 3, false, 0, 0, false);  /* good */
    put_frame(&l, 4, false, 0, 25, false); /* a byte corrupted */
    put_frame(&l, 5, false, 0, 0, false);  /* good */
    put_frame(&l, 6, false, 0, 0, true);   /* its delimiter lost: merges with 7 */
    put_frame(&l, 7, false, 0, 0, false);  /* lost with 6 */
    put_frame(&l, 8, true, 0, 0, false);   /* good */
    put_junk(&l, 100, false, &rng);        /* junk without a zero */
    put_frame(&l, 9, true, 0, 0, false);   /* good: its lead ends the junk */
    put_frame(&l, 10, false, 0, 0, true);  /* truncated: delimiter lost ... */
    put_junk(&l, 200, true, &rng);         /* ... then noise with zeros */
    put_frame(&l, 11, true, 0, 0, false);  /* good */
    static const unsigned good[] = {1, 3, 5, 8, 9, 11};
    /* in uneven chunks, so frames straddle reads */
    for (size_t off = 0, k = 1; off < l.len; off += k, k = k % 13 + 1) {
        size_t n = off + k <= l.len ? k : l.len - off;
        assert_int_equal(write(sv[0], l.bytes + off, n), (ssize_t)n);
        if (k == 13) {
            assert_int_equal(sprig_loop_run_once(&t->ol.loop, 0), SPRIG_STATUS_OK);
        }
    }
    static uint8_t in[MTU], pkt[MTU];
    sprig_addr from;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        size_t n = nsos_recv_one(&t->ol.loop, srv, in, sizeof(in), &from);
        size_t plen = make_packet(good[i], pkt) - SPRIG_NS_HEADER_LEN - SPRIG_NS_DGRAM_HEADER_LEN;
        assert_int_equal(n, plen);
        assert_memory_equal(in, pkt + SPRIG_NS_HEADER_LEN + SPRIG_NS_DGRAM_HEADER_LEN, plen);
        assert_int_equal(from.port, 1000);
    }
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(20));
    size_t len = 0;
    assert_int_equal(sprig_sock_recv(srv, in, sizeof(in), &len), SPRIG_STATUS_UNAVAILABLE);
    const sprig_ns_serial_stats *st = &t->s[1].link.serial.stats;
    assert_int_equal(st->rx.frames, 6);
    assert_true(st->rx.crc_errors + st->rx.framing_errors >= 5); /* 2, 4, 6+7, 10, junk */
    sprig_sock_close(srv);
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(5));
    close(sv[0]);
    sprig_ns_dgram_deinit(&t->s[1].be);
    sprig_ns_serial_fd_deinit(&t->s[1].link);
    sprig_ns_node_deinit(&t->s[1].node);
    sprig_ns_node_deinit(&t->s[0].node);
    assert_int_equal(sprig_buf_pool_available(&t->pool), NBUFS);
    sprig_buf_pool_deinit(&t->pool);
    sprig_os_loop_deinit(&t->ol);
}

/* A live exchange with junk written into the line after every message: the junk is cut off by
 * the next frame's leading delimiter, every message arrives, none corrupted. */
static void test_os_serial_junk_between_live_frames(void **state)
{
    (void)state;
    net *t = &the_net;
    net_init(t);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int inject = dup(sv[0]);
    assert_true(inject >= 0);
    side_up(t, 0, sv[0]);
    side_up(t, 1, sv[1]);
    sprig_sock *srv = nsos_open(&t->s[1].be, "sprig://2:7", true);
    sprig_sock *cli = nsos_open(&t->s[0].be, "sprig://2:7", false);
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(5));
    uint32_t rng = 777;
    static uint8_t out[MTU], in[MTU];
    for (unsigned i = 0; i < 30; i++) {
        size_t len = 1 + (i * 53u) % 200;
        fill(out, len, i);
        send_retry(t, cli, out, len);
        static line l;
        l.len = 0;
        put_junk(&l, 1 + i * 7u % 60, i % 2 == 0, &rng);
        assert_int_equal(write(inject, l.bytes, l.len), (ssize_t)l.len);
        size_t n = nsos_recv_one(&t->ol.loop, srv, in, sizeof(in), NULL);
        assert_int_equal(n, len);
        assert_memory_equal(in, out, len);
    }
    assert_true(
        t->s[1].link.serial.stats.rx.crc_errors + t->s[1].link.serial.stats.rx.framing_errors > 0);
    close(inject);
    sprig_sock_close(cli);
    sprig_sock_close(srv);
    nsos_spin(&t->ol.loop, SPRIG_TIME_MS(5));
    net_deinit(t);
}

static void test_os_serial_bad_config(void **state)
{
    (void)state;
    net *t = &the_net;
    net_init(t);
    sprig_ns_serial_fd s;
    sprig_ns_serial_fd_cfg lc = {.pool = &t->pool, .mtu = MTU};
    assert_int_equal(sprig_ns_serial_fd_init(&s, &t->ol, -1, false, &lc),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_ns_serial_fd_deinit(&s);
    lc.mtu = 4;
    assert_int_equal(sprig_ns_serial_fd_init(&s, &t->ol, 0, false, &lc),
                     SPRIG_STATUS_INVALID_ARGUMENT);
    sprig_ns_serial_fd_deinit(&s);
    sprig_ns_serial_fd zeroed;
    memset(&zeroed, 0, sizeof(zeroed));
    int p[2];
    assert_int_equal(pipe(p), 0);
    zeroed.fd = p[0];
    sprig_ns_serial_fd_deinit(&zeroed); /* safe, and own_fd is false: nothing closed */
    assert_true(fcntl(p[0], F_GETFD) >= 0);
    close(p[0]);
    close(p[1]);
    sprig_buf_pool_deinit(&t->pool);
    sprig_os_loop_deinit(&t->ol);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_os_serial_socketpair_exchange),
        cmocka_unit_test(test_os_serial_back_pressure),
        cmocka_unit_test(test_os_serial_pty),
        cmocka_unit_test(test_os_serial_garbage_resync),
        cmocka_unit_test(test_os_serial_junk_between_live_frames),
        cmocka_unit_test(test_os_serial_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
