"""pw_rpc wire helpers for the foreign-client checks (pw_echo_compat.py, pw_transfer_compat.py),
written only from shared/WIRE.md: nothing here uses sprig's code.

The 65599 hash of service and method names, protobuf varints and fields, pw_rpc packets
(RpcPacket) encoded by hand, messages over TCP with the 4-byte big-endian length prefix, and the
"ok: / FAIL:" reporting and server start-up the checks share. The scripts import it from their
own directory (Python puts a script's directory first on sys.path).
"""
import struct
import subprocess
import sys


def rpc_hash(s: bytes) -> int:
    h, coef = len(s), 65599
    for b in s:
        h = (h + coef * b) % 2**32
        coef = (coef * 65599) % 2**32
    return h


def varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def tag(num: int, wt: int) -> bytes:
    return varint(num << 3 | wt)


def encode_packet(ptype, channel, service, method, call_id, payload=b"", status=0) -> bytes:
    """Payload first, then the fields in number order; type always written (as WIRE.md shows)."""
    out = b""
    if payload:
        out += tag(5, 2) + varint(len(payload)) + payload
    out += tag(1, 0) + varint(ptype) + tag(2, 0) + varint(channel)
    out += tag(3, 5) + struct.pack("<I", service) + tag(4, 5) + struct.pack("<I", method)
    if status:
        out += tag(6, 0) + varint(status)
    out += tag(7, 0) + varint(call_id)
    return out


def read_varint(buf, i):
    v = shift = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def decode_fields(buf: bytes) -> dict:
    """{field number: value}: ints for varint and fixed fields, bytes for length-delimited."""
    fields, i = {}, 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            fields[num], i = read_varint(buf, i)
        elif wt == 5:
            fields[num] = struct.unpack_from("<I", buf, i)[0]
            i += 4
        elif wt == 1:
            fields[num] = struct.unpack_from("<Q", buf, i)[0]
            i += 8
        elif wt == 2:
            n, i = read_varint(buf, i)
            fields[num] = buf[i:i + n]
            i += n
        else:
            raise ValueError(f"unexpected wire type {wt}")
    return fields


def send_frame(sock, packet: bytes):
    sock.sendall(struct.pack(">I", len(packet)) + packet)


def recv_frame(sock) -> dict:
    """The next length-prefixed message, decoded with decode_fields."""
    def exact(n):
        data = b""
        while len(data) < n:
            part = sock.recv(n - len(data))
            if not part:
                raise EOFError("server closed the connection")
            data += part
        return data
    (n,) = struct.unpack(">I", exact(4))
    return decode_fields(exact(n))


def checker(prog: str):
    """check(cond, what): prints "PROG: ok: what", or "PROG: FAIL: what" and exits 1."""
    def check(cond, what):
        if not cond:
            print(f"{prog}: FAIL: {what}")
            sys.exit(1)
        print(f"{prog}: ok: {what}")
    return check


def start_server(argv, check):
    """Start a server that prints "... listening on tcp://HOST:PORT" first; (process, host, port).
    The caller terminates the process."""
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    if "listening on tcp://" not in line:
        server.terminate()
        server.wait(timeout=10)
    check("listening on tcp://" in line, f"server started ({line.strip()})")
    host, port = line.split("tcp://", 1)[1].strip().rsplit(":", 1)
    return server, host, int(port)

