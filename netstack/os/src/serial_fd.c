/* serial_fd.c — the netstack serial link over a POSIX file descriptor (sprig/ns_os.h). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "sprig/ns_os.h"

#define READ_CHUNK 512

static void set_out(sprig_ns_serial_fd *s, bool on)
{
    if (s->want_out == on || !s->watching) {
        return;
    }
    uint32_t ev = SPRIG_OS_EV_IN | (on ? SPRIG_OS_EV_OUT : 0u);
    if (sprig_os_loop_mod_fd(s->ol, &s->watch, ev) == SPRIG_STATUS_OK) {
        s->want_out = on;
    }
}

static void stop(sprig_ns_serial_fd *s, sprig_status st)
{
    if (s->st == SPRIG_STATUS_OK) {
        s->st = st;
    }
    if (s->watching) {
        sprig_os_loop_del_fd(s->ol, &s->watch);
        s->watching = false;
        s->want_out = false;
    }
}

/* sprig_ns_serial_io.write: as much as the descriptor takes now; EPOLLOUT for the rest. */
static sprig_status fd_write(void *ctx, const uint8_t *data, size_t len, size_t *out_written)
{
    sprig_ns_serial_fd *s = ctx;
    size_t done = 0;
    *out_written = 0;
    if (s->st != SPRIG_STATUS_OK) {
        return s->st;
    }
    while (done < len) {
        ssize_t n = s->is_socket ? send(s->fd, data + done, len - done, MSG_NOSIGNAL)
                                 : write(s->fd, data + done, len - done);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            s->stats.write_stalls++;
            set_out(s, true);
            break;
        }
        /* n == 0 (should not happen) or a real error: the stream is broken */
        sprig_status st = n < 0 ? sprig_os_status_from_errno(errno) : SPRIG_STATUS_ABORTED;
        s->stats.tx_bytes += done;
        *out_written = done;
        stop(s, st);
        return st;
    }
    s->stats.tx_bytes += done;
    *out_written = done;
    return done == 0 && len > 0 ? SPRIG_STATUS_UNAVAILABLE : SPRIG_STATUS_OK;
}

static void on_fd(sprig_os_fd *watch, uint32_t events)
{
    sprig_ns_serial_fd *s = watch->arg;
    if (events & (SPRIG_OS_EV_IN | SPRIG_OS_EV_ERR)) {
        /* Edge-triggered: drain. Also on ERR/HUP, so bytes before a hang-up are not lost. */
        uint8_t chunk[READ_CHUNK];
        for (;;) {
            ssize_t n = read(s->fd, chunk, sizeof(chunk));
            if (n > 0) {
                s->stats.rx_bytes += (uint64_t)n;
                sprig_ns_serial_input(&s->serial, chunk, (size_t)n);
                if (!s->watching) {
                    return; /* the input path tore us down (the owner's callback) */
                }
                continue;
            }
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                break;
            }
            if (n == 0 && s->is_tty && !(events & SPRIG_OS_EV_ERR)) {
                break; /* VMIN=0, VTIME=0: nothing to read now (0 with a hang-up: closed) */
            }
            /* end of file (pipe/socket peer gone) or an error (EIO: pty peer closed) */
            stop(s, n == 0 ? SPRIG_STATUS_ABORTED : sprig_os_status_from_errno(errno));
            return;
        }
    }
    if (events & SPRIG_OS_EV_OUT) {
        set_out(s, false);
        sprig_ns_serial_writable(&s->serial);
    }
}

sprig_status sprig_ns_serial_fd_init(sprig_ns_serial_fd *s, sprig_os_loop *ol, int fd, bool own_fd,
                                     const sprig_ns_serial_fd_cfg *cfg)
{
    if (s == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    if (ol == NULL || fd < 0 || cfg == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    sprig_ns_serial_cfg sc = {
        .io = {.write = fd_write, .ctx = s}, .pool = cfg->pool, .mtu = cfg->mtu};
    sprig_status st = sprig_ns_serial_init(&s->serial, &sc);
    if (st != SPRIG_STATUS_OK) {
        return st;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
        st = sprig_os_status_from_errno(errno);
        sprig_ns_serial_deinit(&s->serial);
        return st;
    }
    struct stat sb;
    s->is_socket = fstat(fd, &sb) == 0 && S_ISSOCK(sb.st_mode);
    s->is_tty = isatty(fd) == 1;
    s->ol = ol;
    s->fd = fd;
    st = sprig_os_loop_add_fd(ol, &s->watch, fd, SPRIG_OS_EV_IN, on_fd, s);
    if (st != SPRIG_STATUS_OK) {
        sprig_ns_serial_deinit(&s->serial);
        s->fd = -1;
        return st;
    }
    s->watching = true;
    s->own_fd = own_fd;
    s->st = SPRIG_STATUS_OK;
    return SPRIG_STATUS_OK;
}

void sprig_ns_serial_fd_deinit(sprig_ns_serial_fd *s)
{
    if (s == NULL) {
        return;
    }
    if (s->watching) {
        sprig_os_loop_del_fd(s->ol, &s->watch);
        s->watching = false;
    }
    sprig_ns_serial_deinit(&s->serial);
    if (s->own_fd && s->fd >= 0) {
        (void)close(s->fd);
    }
    s->fd = -1;
    s->own_fd = false;
}

/* ---- tty ---------------------------------------------------------------------------------- */

static bool baud_code(uint32_t baud, speed_t *out)
{
    static const struct {
        uint32_t baud;
        speed_t code;
    } rates[] = {
        {9600, B9600},       {19200, B19200},     {38400, B38400},     {57600, B57600},
        {115200, B115200},   {230400, B230400},   {460800, B460800},   {500000, B500000},
        {576000, B576000},   {921600, B921600},   {1000000, B1000000}, {1152000, B1152000},
        {1500000, B1500000}, {2000000, B2000000}, {2500000, B2500000}, {3000000, B3000000},
        {3500000, B3500000}, {4000000, B4000000},
    };
    for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
        if (rates[i].baud == baud) {
            *out = rates[i].code;
            return true;
        }
    }
    return false;
}

sprig_status sprig_ns_tty_set_raw(int fd, uint32_t baud)
{
    /* Never 1200: a Raspberry Pi Pico (and other boards using the Arduino convention) treats
     * "port opened at 1200 baud, then closed" as a request to reboot into its USB bootloader.
     * A host that merely wants to talk to the device must not trigger that. */
    if (baud == 1200u) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    speed_t code = B115200;
    if (baud != 0 && !baud_code(baud, &code)) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    struct termios t;
    if (tcgetattr(fd, &t) != 0) {
        return errno == ENOTTY ? SPRIG_STATUS_FAILED_PRECONDITION
                               : sprig_os_status_from_errno(errno);
    }
    if (baud == 0) {
        /* keep the current speed, unless it is the bootloader-reboot one (or hang-up, B0) */
        speed_t cur = cfgetospeed(&t);
        code = (cur == B1200 || cur == B0) ? B115200 : cur;
    }
    cfmakeraw(&t);
    t.c_cflag |= CLOCAL | CREAD;
    t.c_cflag &= ~(tcflag_t)CRTSCTS;
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 0;
    if (cfsetispeed(&t, code) != 0 || cfsetospeed(&t, code) != 0) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    if (tcsetattr(fd, TCSANOW, &t) != 0) {
        return sprig_os_status_from_errno(errno);
    }
    return SPRIG_STATUS_OK;
}

sprig_status sprig_ns_serial_fd_open(sprig_ns_serial_fd *s, sprig_os_loop *ol, const char *path,
                                     uint32_t baud, const sprig_ns_serial_fd_cfg *cfg)
{
    if (s == NULL) {
        return SPRIG_STATUS_INVALID_ARGUMENT;
    }
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    speed_t code;
    if (path == NULL || baud == 1200u || (baud != 0 && !baud_code(baud, &code))) {
        return SPRIG_STATUS_INVALID_ARGUMENT; /* 1200: see sprig_ns_tty_set_raw() */
    }
    int fd;
    do {
        fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        return sprig_os_status_from_errno(errno);
    }
    if (isatty(fd) == 1) {
        sprig_status st = sprig_ns_tty_set_raw(fd, baud);
        if (st != SPRIG_STATUS_OK) {
            (void)close(fd);
            return st;
        }
        (void)tcflush(fd, TCIOFLUSH); /* stale bytes from before: the decoder would drop them */
    }
    sprig_status st = sprig_ns_serial_fd_init(s, ol, fd, true, cfg);
    if (st != SPRIG_STATUS_OK) {
        (void)close(fd);
    }
    return st;
}
