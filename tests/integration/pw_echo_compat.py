#!/usr/bin/python3
"""A foreign pw_rpc client, written only from shared/WIRE.md, against sprig-echo-server.

Nothing here uses sprig's code: packets are encoded and decoded by hand (protobuf wire format),
ids are the 65599 hash computed here, and messages travel over TCP with the 4-byte big-endian
length prefix. It checks that pw.rpc.EchoService/Echo answers like a pw_rpc server, that the
encoding reproduces WIRE.md's worked example byte for byte, and the NOT_FOUND error reply.

usage: pw_echo_compat.py PATH/TO/sprig-echo-server
"""
import socket
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


def encode_packet(ptype, channel, service, method, call_id, payload=b"", status=0) -> bytes:
    """Payload first, then the fields in number order; type always written (as WIRE.md shows)."""
    out = b""
    if payload:
        out += b"\x2a" + varint(len(payload)) + payload
    out += b"\x08" + varint(ptype) + b"\x10" + varint(channel)
    out += b"\x1d" + struct.pack("<I", service) + b"\x25" + struct.pack("<I", method)
    if status:
        out += b"\x30" + varint(status)
    out += b"\x38" + varint(call_id)
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
    fields, i = {}, 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            fields[num], i = read_varint(buf, i)
        elif wt == 5:
            fields[num] = struct.unpack_from("<I", buf, i)[0]
            i += 4
        elif wt == 2:
            n, i = read_varint(buf, i)
            fields[num] = buf[i:i + n]
            i += n
        else:
            raise ValueError(f"unexpected wire type {wt}")
    return fields


def echo_message(text: str) -> bytes:
    data = text.encode()
    return b"\x0a" + varint(len(data)) + data


def send(sock, packet):
    sock.sendall(struct.pack(">I", len(packet)) + packet)


def recv(sock):
    def exact(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise EOFError("server closed the connection")
            data += chunk
        return data
    (n,) = struct.unpack(">I", exact(4))
    return decode_fields(exact(n))


def check(cond, what):
    if not cond:
        print(f"pw_echo_compat: FAIL: {what}")
        sys.exit(1)
    print(f"pw_echo_compat: ok: {what}")


def main():
    svc, meth = rpc_hash(b"pw.rpc.EchoService"), rpc_hash(b"Echo")
    check(svc == 0x14FBD052 and meth == 0x8B470EE9, "65599 hash matches WIRE.md vectors")
    golden = bytes.fromhex("2a040a026869080010011d52d0fb1425e90e478b3801")
    check(encode_packet(0, 1, svc, meth, 1, echo_message("hi")) == golden,
          "REQUEST encodes to WIRE.md's worked example")

    server = subprocess.Popen([sys.argv[1], "--listen", "tcp://127.0.0.1:0"],
                              stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        check("listening on tcp://" in line, f"server started ({line.strip()})")
        hostport = line.split("tcp://", 1)[1].strip()
        host, port = hostport.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            send(sock, golden)
            r = recv(sock)
            check(r.get(1) == 1, "reply type is RESPONSE (1)")
            check(r.get(2) == 1 and r.get(3) == svc and r.get(4) == meth and r.get(7) == 1,
                  "reply echoes channel, service, method and call_id")
            check(r.get(6, 0) == 0, "status OK")
            check(decode_fields(r.get(5, b"")).get(1) == b"hi", "payload is EchoMessage{msg: \"hi\"}")

            text = "x" * 200
            send(sock, encode_packet(0, 7, svc, meth, 0x3FFF, echo_message(text)))
            r = recv(sock)
            check(r.get(2) == 7 and r.get(7) == 0x3FFF and decode_fields(r[5]).get(1) == text.encode(),
                  "another channel and a 2-byte call id, 200-byte message")

            send(sock, encode_packet(0, 1, svc, rpc_hash(b"NoSuchMethod"), 9))
            r = recv(sock)
            check(r.get(1) == 5 and r.get(6) == 5 and r.get(7) == 9,
                  "unknown method: SERVER_ERROR NOT_FOUND with the call id")
    finally:
        server.terminate()
        server.wait(timeout=5)


if __name__ == "__main__":
    main()
