#!/usr/bin/python3
"""A foreign pw_transfer client, written only from shared/WIRE.md, against
sprig-transfer-rpc-server.

Nothing here uses sprig's code: RPC packets and transfer chunks are encoded and decoded by hand
(protobuf wire format, pw_wire.py beside this file), ids are the 65599 hash computed here, and messages travel over TCP with
the 4-byte big-endian length prefix. Like a real pw_transfer client it never sends sprig's
`direction` field (1001): the method (pw.transfer.Transfer/Read or /Write) says it. It checks:
  - the hash vectors of WIRE.md for pw.transfer.Transfer, Read and Write;
  - a read of a 100 000-byte file, byte for byte, through windows the client grows with
    PARAMETERS_CONTINUE, ending with COMPLETION OK / COMPLETION_ACK, and the CRC-32 that sprig
    adds (extension field 1000) on the last chunk;
  - a read of an unknown resource: COMPLETION NOT_FOUND;
  - a write of 200 000 bytes to an existing file (no CRC, as pw_transfer sends none), following
    the server's windows; the file on disk afterwards;
  - ending the Read stream with CLIENT_REQUEST_COMPLETION: RESPONSE OK.

usage: pw_transfer_compat.py PATH/TO/sprig-transfer-rpc-server
"""
import os
import random
import socket
import sys
import tempfile
import zlib

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from pw_wire import checker, decode_fields, encode_packet, recv_frame, rpc_hash, send_frame, \
    start_server, tag, varint  # noqa: E402

REQUEST, RESPONSE, CLIENT_STREAM, SERVER_ERROR, SERVER_STREAM, COMPLETION_REQ = 0, 1, 2, 5, 7, 8
DATA, START, RETRANSMIT, CONTINUE, COMPLETION, COMPLETION_ACK, START_ACK, START_ACK_CONF = range(8)
CHANNEL = 1
SERVICE, READ, WRITE = rpc_hash(b"pw.transfer.Transfer"), rpc_hash(b"Read"), rpc_hash(b"Write")


# Chunk field numbers (WIRE.md, "Transfer chunk"); all varints except data (6, bytes).
CHUNK_FIELDS = {"max_chunk_size_bytes": 3, "offset": 5, "remaining_bytes": 7, "status": 8,
                "window_end_offset": 9, "type": 10, "resource_id": 11, "session_id": 12,
                "protocol_version": 13, "desired_session_id": 14}


def encode_chunk(data=b"", **fields) -> bytes:
    out = b""
    for name, value in fields.items():
        out += tag(CHUNK_FIELDS[name], 0) + varint(value)  # optional fields: sent even when 0
    if data:
        out += tag(6, 2) + varint(len(data)) + data
    return out


check = checker("pw_transfer_compat")


class Conn:
    def __init__(self, sock):
        self.sock = sock

    def send(self, packet):
        send_frame(self.sock, packet)

    def recv_packet(self):
        return recv_frame(self.sock)

    def send_chunk(self, method, call_id, data=b"", **fields):
        self.send(encode_packet(CLIENT_STREAM, CHANNEL, SERVICE, method, call_id,
                                encode_chunk(data, **fields)))

    def recv_chunk(self, method, call_id):
        """The next SERVER_STREAM chunk of the call, decoded (type defaults to DATA)."""
        p = self.recv_packet()
        if p.get(1, 0) != SERVER_STREAM or p.get(4) != method or p.get(7) != call_id:
            raise AssertionError(f"expected a SERVER_STREAM chunk, got packet {p}")
        c = decode_fields(p.get(5, b""))
        c.setdefault(10, DATA)
        return c


def read_resource(conn, call_id, session, resource, window=8192, max_chunk=1024):
    """pw_transfer's read, as the receiver: returns (status, bytes, last data chunk)."""
    conn.send_chunk(READ, call_id, type=START, desired_session_id=session, resource_id=resource,
                    protocol_version=2, offset=0, window_end_offset=window,
                    max_chunk_size_bytes=max_chunk)
    c = conn.recv_chunk(READ, call_id)
    if c[10] == COMPLETION:
        return c.get(8, 0), b"", None
    assert c[10] == START_ACK and c.get(12) == session and c.get(13) == 2, c
    conn.send_chunk(READ, call_id, type=START_ACK_CONF, session_id=session, protocol_version=2,
                    offset=0, window_end_offset=window, max_chunk_size_bytes=max_chunk)
    data, window_end = bytearray(), window
    while True:
        c = conn.recv_chunk(READ, call_id)
        assert c.get(12) == session, c
        if c[10] == COMPLETION:
            return c.get(8, 0), bytes(data), None
        assert c[10] == DATA and c.get(5, 0) == len(data), c
        payload = c.get(6, b"")
        assert len(payload) <= max_chunk, len(payload)
        data += payload
        if c.get(7) == 0:  # remaining_bytes 0: the end
            conn.send_chunk(READ, call_id, type=COMPLETION, session_id=session, status=0)
            ack = conn.recv_chunk(READ, call_id)
            assert ack[10] == COMPLETION_ACK and ack.get(12) == session, ack
            return 0, bytes(data), c
        if len(data) >= window_end:  # the window is used up: grow it
            window_end = len(data) + window
            conn.send_chunk(READ, call_id, type=CONTINUE, session_id=session, offset=len(data),
                            window_end_offset=window_end, max_chunk_size_bytes=max_chunk)


def write_resource(conn, call_id, session, resource, content):
    """pw_transfer's write, as the sender following the receiver's window: returns the status."""
    conn.send_chunk(WRITE, call_id, type=START, desired_session_id=session, resource_id=resource,
                    protocol_version=2)
    c = conn.recv_chunk(WRITE, call_id)
    if c[10] == COMPLETION:
        return c.get(8, 0)
    assert c[10] == START_ACK and c.get(12) == session, c
    conn.send_chunk(WRITE, call_id, type=START_ACK_CONF, session_id=session, protocol_version=2)
    offset = window_end = 0
    max_chunk = 1
    sent_last = False
    while True:
        while not sent_last and offset < window_end:
            n = min(max_chunk, window_end - offset, len(content) - offset)
            conn.send_chunk(WRITE, call_id, content[offset:offset + n], type=DATA,
                            session_id=session, offset=offset,
                            remaining_bytes=len(content) - offset - n)
            offset += n
            sent_last = offset == len(content)
        c = conn.recv_chunk(WRITE, call_id)
        assert c.get(12) == session, c
        if c[10] == COMPLETION:
            conn.send_chunk(WRITE, call_id, type=COMPLETION_ACK, session_id=session)
            return c.get(8, 0)
        assert c[10] in (RETRANSMIT, CONTINUE), c
        if c.get(3):
            max_chunk = min(c[3], 4096)
        if c[10] == RETRANSMIT:  # the window starts again at the receiver's offset
            offset, window_end = c.get(5, 0), c.get(9, 0)
            sent_last = False
        else:
            window_end = max(window_end, c.get(9, 0))


def main():
    check((SERVICE, READ, WRITE) == (0x5BD6C87B, 0x5B7866DA, 0xD4630586),
          "65599 hash matches WIRE.md for pw.transfer.Transfer, Read, Write")
    rng = random.Random(1234)
    with tempfile.TemporaryDirectory(prefix="pw-transfer-compat-") as root:
        content = bytes(rng.getrandbits(8) for _ in range(100000))
        with open(os.path.join(root, "hello.bin"), "wb") as f:
            f.write(content)
        with open(os.path.join(root, "target.bin"), "wb") as f:
            f.write(b"old content")
        server, host, port = start_server([sys.argv[1], "--listen", "tcp://127.0.0.1:0", root],
                                          check)
        try:
            with socket.create_connection((host, port), timeout=10) as sock:
                conn = Conn(sock)
                conn.send(encode_packet(REQUEST, CHANNEL, SERVICE, READ, 1))
                status, data, last = read_resource(conn, 1, 1, rpc_hash(b"hello.bin"))
                check(status == 0, "read through pw.transfer.Transfer/Read without field 1001: OK")
                check(data == content, f"{len(data)} bytes, byte for byte")
                check(last is not None and last.get(1000) == zlib.crc32(content),
                      "the last chunk carries sprig's CRC-32 (field 1000) of the bytes")

                status, _, _ = read_resource(conn, 1, 2, rpc_hash(b"no-such-file"))
                check(status == 5, "unknown resource: COMPLETION NOT_FOUND")

                upload = bytes(rng.getrandbits(8) for _ in range(200000))
                conn.send(encode_packet(REQUEST, CHANNEL, SERVICE, WRITE, 2))
                status = write_resource(conn, 2, 3, rpc_hash(b"target.bin"), upload)
                check(status == 0, "write through pw.transfer.Transfer/Write without field 1001: OK")
                with open(os.path.join(root, "target.bin"), "rb") as f:
                    check(f.read() == upload, f"{len(upload)} bytes written, byte for byte")

                conn.send(encode_packet(COMPLETION_REQ, CHANNEL, SERVICE, READ, 1))
                p = conn.recv_packet()
                check(p.get(1) == RESPONSE and p.get(7) == 1 and p.get(6, 0) == 0,
                      "ending the Read stream: RESPONSE OK")
        finally:
            server.terminate()
            server.wait(timeout=10)
        check(server.returncode == 0, "server stopped cleanly")


if __name__ == "__main__":
    main()
