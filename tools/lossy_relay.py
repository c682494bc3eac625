#!/usr/bin/python3
"""lossy_relay.py — a seeded fault injector to put between two sprig endpoints.

Two modes (stdlib only; run with /usr/bin/python3):

serial   Relays bytes between two serial lines, dropping, corrupting (one bit flipped per
         byte) and inserting garbage bytes at given rates, optionally in bursts. By default it
         creates two pty pairs and offers their device ends as A and B (like
         `socat pty,link=A pty,link=B`, but lossy): one endpoint opens `serial:A`, the other
         `serial:B`. With --path-a/--path-b it relays between two existing devices instead
         (two USB serial adapters, or ptys made by someone else).

           tools/lossy_relay.py serial --link-a /tmp/a --link-b /tmp/b --drop 0.01 \\
               --corrupt 0.005 --garbage 0.002 --burst 4 --seed 1
           sprig-transfer serve --listen serial:/tmp/a --root srv &
           sprig-transfer put serial:/tmp/b big.bin big.bin

udp      Relays datagrams between a client-facing address (--listen) and a server (--server),
         dropping, duplicating, delaying (which reorders) and corrupting datagrams at given
         rates. Each client address gets its own upstream socket, so the server sees one peer
         per client, as it would without the relay.

           tools/lossy_relay.py udp --listen 127.0.0.1:0 --server 127.0.0.1:7000 \\
               --drop 0.05 --dup 0.02 --reorder 0.05 --delay-ms 30 --seed 1
           sprig-transfer get udp://127.0.0.1:<printed port> big.bin big.copy

Rates are probabilities in [0, 1], decided independently for each byte (serial) or datagram
(udp), in each direction, from one random generator seeded with --seed (printed at start when
not given, so a run can be repeated; the exact sequence also depends on how the bytes arrive in
reads). With --burst N (serial) a fault, once started, covers a run of 1..N bytes (uniform); a
garbage event inserts 1..N random bytes.

Once ready it prints one line on stdout, e.g.
  lossy_relay: serial A=/tmp/a B=/tmp/b seed=1
  lossy_relay: udp 127.0.0.1:40123 -> 127.0.0.1:7000 seed=1
and on SIGTERM or SIGINT (or --duration elapsed) it prints its counters on stderr and exits 0.
Everything is non-blocking (select); when a line's output backs up beyond --queue bytes (serial)
the excess is dropped and counted as `overflow`, as a real UART would overrun; a pty with
nobody reading it therefore never stalls the other direction.
"""

import argparse
import errno
import heapq
import os
import random
import select
import signal
import socket
import sys
import termios
import time
import tty

PROG = "lossy_relay"


def rate(text):
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError("a rate is a probability in [0, 1]: %r" % text)
    return v


def hostport(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError("expected HOST:PORT: %r" % text)
    try:
        return (host.strip("[]"), int(port))
    except ValueError:
        raise argparse.ArgumentTypeError("bad port in %r" % text) from None


class Stop(Exception):
    pass


def on_signal(signum, frame):
    raise Stop()


def print_counters(title, counters):
    for name, c in counters:
        sys.stderr.write("%s: %s %s: %s\n" % (PROG, title, name,
                                              " ".join("%s=%d" % kv for kv in c.items())))
    sys.stderr.flush()


# ---- serial -------------------------------------------------------------------------------------


class ByteFaults:
    """The fault state of one direction of a serial line."""

    def __init__(self, rng, args):
        self.rng = rng
        self.drop, self.corrupt, self.garbage = args.drop, args.corrupt, args.garbage
        self.burst = max(1, args.burst)
        self.mode = None  # "drop" or "corrupt" while a burst lasts
        self.left = 0
        self.c = dict(bytes_in=0, bytes_out=0, dropped=0, corrupted=0, inserted=0, overflow=0)

    def run_len(self):
        return self.rng.randint(1, self.burst)

    def apply(self, data):
        self.c["bytes_in"] += len(data)
        if not (self.drop or self.corrupt or self.garbage):
            return data
        rng = self.rng
        out = bytearray()
        for b in data:
            if self.garbage and rng.random() < self.garbage:
                n = self.run_len()
                out += bytes(rng.getrandbits(8) for _ in range(n))
                self.c["inserted"] += n
            if self.left == 0:
                r = rng.random()
                if r < self.drop:
                    self.mode, self.left = "drop", self.run_len()
                elif r < self.drop + self.corrupt:
                    self.mode, self.left = "corrupt", self.run_len()
            if self.left:
                self.left -= 1
                if self.mode == "drop":
                    self.c["dropped"] += 1
                    continue
                b ^= 1 << rng.randrange(8)
                self.c["corrupted"] += 1
            out.append(b)
        return bytes(out)


def open_line(args, which):
    """Returns (fd to relay through, fds to keep open, printable name) for side A or B."""
    path = getattr(args, "path_" + which)
    if path:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        if os.isatty(fd):
            tty.setraw(fd)
        return fd, [], path
    master, slave = os.openpty()
    # raw and no echo, so that the endpoint sees exactly the bytes relayed; we keep the slave
    # open ourselves: an endpoint closing and reopening the line (one tool run after another)
    # then never turns the master into EIO
    tty.setraw(slave)
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~termios.ECHO
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    os.set_blocking(master, False)
    name = os.ttyname(slave)
    link = getattr(args, "link_" + which)
    if link:
        try:
            os.unlink(link)
        except FileNotFoundError:
            pass
        os.symlink(name, link)
        name = link
    return master, [slave], name


def run_serial(args, rng):
    fa, keep_a, name_a = open_line(args, "a")
    fb, keep_b, name_b = open_line(args, "b")
    links = [p for p in (args.link_a, args.link_b) if p and not (args.path_a or args.path_b)]
    # direction a->b reads fa and writes fb, and the other way round
    dirs = [dict(src=fa, dst=fb, q=bytearray(), f=ByteFaults(rng, args), name="a->b"),
            dict(src=fb, dst=fa, q=bytearray(), f=ByteFaults(rng, args), name="b->a")]
    print("%s: serial A=%s B=%s seed=%d" % (PROG, name_a, name_b, args.seed), flush=True)
    end = time.monotonic() + args.duration if args.duration else None
    try:
        while True:
            rl = [d["src"] for d in dirs]
            wl = [d["dst"] for d in dirs if d["q"]]
            timeout = None if end is None else max(0.0, end - time.monotonic())
            if end is not None and timeout == 0.0:
                break
            r, w, _ = select.select(rl, wl, [], timeout)
            for d in dirs:
                if d["src"] in r:
                    try:
                        data = os.read(d["src"], 4096)
                    except BlockingIOError:
                        data = None
                    except OSError as e:
                        if e.errno != errno.EIO:
                            raise
                        # a device of --path-x whose other end is gone
                        sys.stderr.write("%s: %s: read: %s\n" % (PROG, d["name"], e.strerror))
                        time.sleep(0.1)
                        data = None
                    if data:
                        data = d["f"].apply(data)
                        room = args.queue - len(d["q"])
                        if len(data) > room:
                            d["f"].c["overflow"] += len(data) - max(room, 0)
                            data = data[:max(room, 0)]
                        d["q"] += data
                if d["q"] and d["dst"] in w:
                    try:
                        n = os.write(d["dst"], d["q"])
                    except BlockingIOError:
                        n = 0
                    except OSError as e:
                        if e.errno != errno.EIO:
                            raise
                        n = len(d["q"])  # nobody there: the bytes are lost
                        d["f"].c["overflow"] += n
                        d["f"].c["bytes_out"] -= n
                    d["f"].c["bytes_out"] += n
                    del d["q"][:n]
    except Stop:
        pass
    finally:
        print_counters("serial", [(d["name"], d["f"].c) for d in dirs])
        for fd in [fa, fb] + keep_a + keep_b:
            os.close(fd)
        for p in links:
            try:
                os.unlink(p)
            except OSError:
                pass


# ---- udp ----------------------------------------------------------------------------------------


class DgramFaults:
    """The fault decisions for datagrams in one direction."""

    def __init__(self, rng, args):
        self.rng = rng
        self.args = args
        self.c = dict(datagrams_in=0, datagrams_out=0, dropped=0, duplicated=0, delayed=0,
                      corrupted=0)

    def apply(self, data, now):
        """Returns a list of (time to send, bytes)."""
        a, rng = self.args, self.rng
        self.c["datagrams_in"] += 1
        if a.drop and rng.random() < a.drop:
            self.c["dropped"] += 1
            return []
        copies = 1
        if a.dup and rng.random() < a.dup:
            copies = 2
            self.c["duplicated"] += 1
        out = []
        for _ in range(copies):
            d = data
            if a.corrupt and d and rng.random() < a.corrupt:
                b = bytearray(d)
                for _ in range(rng.randint(1, max(1, a.burst))):
                    b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
                d = bytes(b)
                self.c["corrupted"] += 1
            t = now
            if a.reorder and rng.random() < a.reorder:
                t += rng.uniform(0.0, a.delay_ms / 1000.0)
                self.c["delayed"] += 1
            out.append((t, d))
        return out


def run_udp(args, rng):
    family = socket.AF_INET6 if ":" in args.listen[0] else socket.AF_INET
    front = socket.socket(family, socket.SOCK_DGRAM)
    front.bind(args.listen)
    front.setblocking(False)
    server = socket.getaddrinfo(args.server[0], args.server[1], 0, socket.SOCK_DGRAM)[0]
    up = DgramFaults(rng, args)  # client -> server
    down = DgramFaults(rng, args)  # server -> client
    clients = {}  # client address -> upstream socket
    backs = {}  # upstream socket fd -> client address
    upstream_socks = {}
    heap = []  # (time, seq, socket, data, address)
    seq = 0
    host, port = front.getsockname()[:2]
    print("%s: udp %s:%d -> %s:%d seed=%d" % (PROG, host, port, args.server[0], args.server[1],
                                               args.seed), flush=True)
    end = time.monotonic() + args.duration if args.duration else None

    def queue(sock, items, addr, faults):
        nonlocal seq
        for t, d in items:
            heapq.heappush(heap, (t, seq, sock, d, addr, faults))
            seq += 1

    try:
        while True:
            now = time.monotonic()
            while heap and heap[0][0] <= now:
                _, _, sock, d, addr, faults = heapq.heappop(heap)
                try:
                    sock.sendto(d, addr)
                    faults.c["datagrams_out"] += 1
                except (BlockingIOError, ConnectionRefusedError):
                    pass  # a full buffer or nobody there (ICMP): the datagram is lost
            if end is not None and now >= end:
                break
            timeout = None
            if heap:
                timeout = max(0.0, heap[0][0] - now)
            if end is not None:
                timeout = min(timeout if timeout is not None else 1e9, max(0.0, end - now))
            rl = [front] + list(upstream_socks.values())
            r, _, _ = select.select(rl, [], [], timeout)
            now = time.monotonic()
            for s in r:
                while True:
                    try:
                        data, addr = s.recvfrom(65536)
                    except (BlockingIOError, InterruptedError):
                        break
                    except ConnectionRefusedError:
                        continue  # an earlier send met no listener; keep going
                    if s is front:
                        u = clients.get(addr)
                        if u is None:
                            u = socket.socket(server[0], socket.SOCK_DGRAM)
                            u.setblocking(False)
                            clients[addr] = u
                            backs[u.fileno()] = addr
                            upstream_socks[u.fileno()] = u
                        queue(u, up.apply(data, now), server[4], up)
                    else:
                        queue(front, down.apply(data, now), backs[s.fileno()], down)
    except Stop:
        pass
    finally:
        print_counters("udp", [("client->server", up.c), ("server->client", down.c)])
        sys.stderr.write("%s: udp clients=%d\n" % (PROG, len(clients)))
        front.close()
        for u in upstream_socks.values():
            u.close()


# ---- command line -------------------------------------------------------------------------------


def main(argv):
    p = argparse.ArgumentParser(prog="lossy_relay.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)

    def common(sp, burst_help):
        sp.add_argument("--seed", type=int, default=None,
                        help="random seed (default: a random one, printed)")
        sp.add_argument("--drop", type=rate, default=0.0, metavar="P",
                        help="probability of dropping (default 0)")
        sp.add_argument("--corrupt", type=rate, default=0.0, metavar="P",
                        help="probability of corrupting (default 0)")
        sp.add_argument("--burst", type=int, default=1, metavar="N", help=burst_help)
        sp.add_argument("--duration", type=float, default=0.0, metavar="S",
                        help="exit after S seconds (default: until SIGTERM/SIGINT)")

    s = sub.add_parser("serial", help="relay bytes between two serial lines (ptys by default)",
                       description="Relay bytes between two ptys it creates (or --path-a/-b).")
    common(s, "a drop or corrupt fault covers 1..N bytes, a garbage insert 1..N bytes "
              "(default 1)")
    s.add_argument("--garbage", type=rate, default=0.0, metavar="P",
                   help="probability of inserting random bytes before a byte (default 0)")
    s.add_argument("--link-a", metavar="PATH", help="symlink to the A pty (like socat link=)")
    s.add_argument("--link-b", metavar="PATH", help="symlink to the B pty")
    s.add_argument("--path-a", metavar="DEV", help="relay from this existing device, not a pty")
    s.add_argument("--path-b", metavar="DEV", help="relay to this existing device, not a pty")
    s.add_argument("--queue", type=int, default=65536, metavar="BYTES",
                   help="bytes held per direction before overflow drops (default 65536)")

    u = sub.add_parser("udp", help="relay datagrams between clients and a server",
                       description="Relay datagrams between clients on --listen and --server.")
    common(u, "bits flipped in a corrupted datagram: 1..N (default 1)")
    u.add_argument("--listen", type=hostport, required=True, metavar="HOST:PORT",
                   help="client-facing address (port 0: a free one, printed)")
    u.add_argument("--server", type=hostport, required=True, metavar="HOST:PORT",
                   help="where datagrams from clients go")
    u.add_argument("--dup", type=rate, default=0.0, metavar="P",
                   help="probability of sending a datagram twice (default 0)")
    u.add_argument("--reorder", type=rate, default=0.0, metavar="P",
                   help="probability of delaying a datagram by 0..--delay-ms (default 0)")
    u.add_argument("--delay-ms", type=float, default=20.0, metavar="MS",
                   help="largest delay of a reordered datagram (default 20)")

    args = p.parse_args(argv)
    if (args.mode == "serial" and (args.path_a is None) != (args.path_b is None)):
        p.error("--path-a and --path-b go together")
    if args.drop + args.corrupt > 1.0:
        p.error("--drop + --corrupt must not exceed 1")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 31)
    rng = random.Random(args.seed)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if args.mode == "serial":
            run_serial(args, rng)
        else:
            run_udp(args, rng)
    except OSError as e:
        sys.stderr.write("%s: %s\n" % (PROG, e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
