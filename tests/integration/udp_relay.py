#!/usr/bin/env python3
"""A UDP relay that damages what it forwards, for integration_transfer_cli.

    udp_relay.py SERVER_HOST SERVER_PORT STATS_FILE [--corrupt PM] [--drop PM] [--seed N]

Binds 127.0.0.1:0, prints "relay port N" on stdout, then forwards every datagram from a client
to the server (from a socket of its own per client address, so the server still sees one peer
per client) and every answer back to that client. Each datagram, in either direction, is dropped
with probability PM per mille (--drop) or has one random bit flipped (--corrupt), deterministically
from --seed. The relay recomputes nothing, as a rewriting middlebox would not either: the
receiving UDP stack on loopback does not verify checksums, so the damage reaches the
application. After every fault the counts are rewritten to STATS_FILE as "corrupted N dropped M".
Runs until killed.
"""
import argparse
import random
import select
import socket
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("stats")
    ap.add_argument("--corrupt", type=int, default=50)
    ap.add_argument("--drop", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    server = (a.host, a.port)
    front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    front.bind(("127.0.0.1", 0))
    print("relay port %d" % front.getsockname()[1], flush=True)
    ups = {}  # client address -> its socket towards the server
    clients = {}  # that socket -> client address
    counts = {"corrupted": 0, "dropped": 0}

    def damage(data):
        roll = rng.randrange(1000)
        if roll < a.drop:
            counts["dropped"] += 1
        elif roll < a.drop + a.corrupt and data:
            b = bytearray(data)
            bit = rng.randrange(len(b) * 8)
            b[bit // 8] ^= 1 << (bit % 8)
            counts["corrupted"] += 1
            data = bytes(b)
        else:
            return data
        with open(a.stats, "w") as f:
            f.write("corrupted %d dropped %d\n" % (counts["corrupted"], counts["dropped"]))
        return None if roll < a.drop else data

    while True:
        ready, _, _ = select.select([front] + list(clients), [], [])
        for s in ready:
            try:
                data, addr = s.recvfrom(65536)
            except OSError:  # e.g. ECONNREFUSED from an earlier send: the datagram is lost
                continue
            out = damage(data)
            if out is None:
                continue
            if s is front:
                up = ups.get(addr)
                if up is None:
                    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    up.connect(server)
                    ups[addr] = up
                    clients[up] = addr
                try:
                    up.send(out)
                except OSError:
                    pass
            else:
                front.sendto(out, clients[s])


if __name__ == "__main__":
    sys.exit(main())
