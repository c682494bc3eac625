#!/usr/bin/python3
"""A foreign pw_rpc client, written only from shared/WIRE.md, against sprig-echo-server.

Nothing here uses sprig's code: packets are encoded and decoded by hand (protobuf wire format,
pw_wire.py beside this file),
ids are the 65599 hash computed here, and messages travel over TCP with the 4-byte big-endian
length prefix. It checks that pw.rpc.EchoService/Echo answers like a pw_rpc server, that the
encoding reproduces WIRE.md's worked example byte for byte, and the NOT_FOUND error reply.

usage: pw_echo_compat.py PATH/TO/sprig-echo-server
"""
import socket
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from pw_wire import checker, decode_fields, encode_packet, recv_frame, rpc_hash, send_frame, \
    start_server, varint  # noqa: E402

check = checker("pw_echo_compat")


def echo_message(text: str) -> bytes:
    data = text.encode()
    return b"\x0a" + varint(len(data)) + data


def main():
    svc, meth = rpc_hash(b"pw.rpc.EchoService"), rpc_hash(b"Echo")
    check(svc == 0x14FBD052 and meth == 0x8B470EE9, "65599 hash matches WIRE.md vectors")
    golden = bytes.fromhex("2a040a026869080010011d52d0fb1425e90e478b3801")
    check(encode_packet(0, 1, svc, meth, 1, echo_message("hi")) == golden,
          "REQUEST encodes to WIRE.md's worked example")

    server, host, port = start_server([sys.argv[1], "--listen", "tcp://127.0.0.1:0"], check)
    try:
        with socket.create_connection((host, port), timeout=5) as sock:
            send_frame(sock, golden)
            r = recv_frame(sock)
            check(r.get(1) == 1, "reply type is RESPONSE (1)")
            check(r.get(2) == 1 and r.get(3) == svc and r.get(4) == meth and r.get(7) == 1,
                  "reply echoes channel, service, method and call_id")
            check(r.get(6, 0) == 0, "status OK")
            check(decode_fields(r.get(5, b"")).get(1) == b"hi", "payload is EchoMessage{msg: \"hi\"}")

            text = "x" * 200
            send_frame(sock, encode_packet(0, 7, svc, meth, 0x3FFF, echo_message(text)))
            r = recv_frame(sock)
            check(r.get(2) == 7 and r.get(7) == 0x3FFF and decode_fields(r[5]).get(1) == text.encode(),
                  "another channel and a 2-byte call id, 200-byte message")

            send_frame(sock, encode_packet(0, 1, svc, rpc_hash(b"NoSuchMethod"), 9))
            r = recv_frame(sock)
            check(r.get(1) == 5 and r.get(6) == 5 and r.get(7) == 9,
                  "unknown method: SERVER_ERROR NOT_FOUND with the call id")
    finally:
        server.terminate()
        server.wait(timeout=5)


if __name__ == "__main__":
    main()
