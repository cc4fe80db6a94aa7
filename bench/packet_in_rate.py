"""Packet-in throughput of the controller, eventlet hub against native threads.

A cbench-like fake switch speaks OpenFlow 1.3 over a real TCP socket to a real
``shadownet-manager`` process: it completes the handshake, teaches the
controller two hosts, then keeps a window of packet-ins (host A to host B, each
frame distinct) in flight and counts the packet-outs that come back. Each hub
runs in turn, side by side in one invocation, and the ratio is printed.

    .venv/bin/python bench/packet_in_rate.py [--seconds 10] [--window 64] [--json]
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.controller_process import ControllerProcess  # noqa: E402
from shadownet import progress  # noqa: E402
from shadownet.progress import Progress  # noqa: E402

OFP_VERSION = 4
HELLO, ECHO_REQUEST, ECHO_REPLY, FEATURES_REQUEST, FEATURES_REPLY = 0, 2, 3, 5, 6
PACKET_IN, PACKET_OUT, MULTIPART_REQUEST, MULTIPART_REPLY = 10, 13, 18, 19
BARRIER_REQUEST, BARRIER_REPLY = 20, 21
MP_FLOW, MP_PORT_DESC = 1, 13
MAC_A, MAC_B = bytes.fromhex("0000000000a1"), bytes.fromhex("0000000000b2")


def header(msg_type: int, length: int, xid: int) -> bytes:
    return struct.pack("!BBHI", OFP_VERSION, msg_type, length, xid)


def port_desc(port_no: int) -> bytes:
    name = f"s1-eth{port_no}".encode().ljust(16, b"\0")
    hw = bytes([0, 0, 0, 0, 0xEE, port_no])
    return struct.pack("!I4x6s2x16sIIIIIIII", port_no, hw, name, 0, 0, 0, 0, 0, 0, 10**7, 10**7)


def frame(src: bytes, dst: bytes, seq: int) -> bytes:
    """An IPv4/UDP-looking frame; the payload makes every frame distinct."""
    eth = dst + src + b"\x08\x00"
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + 8, seq & 0xFFFF, 0, 64, 17, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    udp = struct.pack("!HHHH", 1000, 2000, 16, 0) + struct.pack("!Q", seq)
    return eth + ip + udp


def packet_in(xid: int, in_port: int, data: bytes) -> bytes:
    oxm = struct.pack("!IBI", 0x80000004, 0, 0)[:4] + struct.pack("!I", in_port)
    match = struct.pack("!HH", 1, 4 + len(oxm)) + oxm
    match += b"\0" * ((8 - len(match) % 8) % 8)
    body = struct.pack("!IHBBQ", 0xFFFFFFFF, len(data), 0, 0, 0) + match + b"\0\0" + data
    return header(PACKET_IN, 8 + len(body), xid) + body


class FakeSwitch:
    def __init__(self, port: int, dpid: int = 1) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.dpid = dpid
        self.buf = b""
        self.packet_outs = 0
        self.ready = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def pump(self, timeout: float) -> None:
        """Read what is there and answer what needs an answer."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("controller closed the connection")
        self.buf += chunk
        while len(self.buf) >= 8:
            _, msg_type, length, xid = struct.unpack_from("!BBHI", self.buf)
            if len(self.buf) < length:
                break
            msg, self.buf = self.buf[:length], self.buf[length:]
            self.handle(msg_type, xid, msg)

    def handle(self, msg_type: int, xid: int, msg: bytes) -> None:
        if msg_type == HELLO:
            self.send(header(HELLO, 8, xid))
        elif msg_type == FEATURES_REQUEST:
            body = struct.pack("!QIBB2xII", self.dpid, 0, 254, 0, 0x4F, 0)
            self.send(header(FEATURES_REPLY, 8 + len(body), xid) + body)
        elif msg_type == ECHO_REQUEST:
            self.send(header(ECHO_REPLY, len(msg), xid) + msg[8:])
        elif msg_type == BARRIER_REQUEST:
            self.send(header(BARRIER_REPLY, 8, xid))
        elif msg_type == MULTIPART_REQUEST:
            (mp_type,) = struct.unpack_from("!H", msg, 8)
            body = b""
            if mp_type == MP_PORT_DESC:
                body = port_desc(1) + port_desc(2)
                self.ready = True
            reply = struct.pack("!HH4x", mp_type, 0) + body
            self.send(header(MULTIPART_REPLY, 8 + len(reply), xid) + reply)
        elif msg_type == PACKET_OUT:
            (actions_len,) = struct.unpack_from("!H", msg, 16)
            data = msg[24 + actions_len:]
            if data[12:14] != b"\x88\xcc":  # LLDP probes are not answers
                self.packet_outs += 1


def measure(hub: str, seconds: float, window: int) -> float:
    progress.step(hub)
    progress.phase("starting the controller")
    with tempfile.TemporaryDirectory() as tmp:
        ctl = ControllerProcess(Path(tmp), hub=hub)
        ctl.start()
        try:
            sw = FakeSwitch(ctl.ofp_port)
            deadline = time.monotonic() + 15
            while not sw.ready and time.monotonic() < deadline:
                sw.pump(0.1)
            time.sleep(0.5)
            sw.pump(0.1)
            # Teach the controller both hosts, then send A -> B continuously.
            sw.send(packet_in(1, 1, frame(MAC_A, b"\xff" * 6, 0)))
            sw.send(packet_in(2, 2, frame(MAC_B, MAC_A, 0)))
            time.sleep(0.5)
            sw.pump(0.1)
            base = sw.packet_outs
            progress.phase("packet-ins in flight", seconds)
            sent, seq = 0, 1
            start = time.monotonic()
            while time.monotonic() - start < seconds:
                while sent - (sw.packet_outs - base) < window:
                    seq += 1
                    sw.send(packet_in(seq, 1, frame(MAC_A, MAC_B, seq)))
                    sent += 1
                sw.pump(0.05)
            elapsed = time.monotonic() - start
            return (sw.packet_outs - base) / elapsed
        finally:
            ctl.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--json", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = p.parse_args(argv)
    hubs = ("native", "eventlet")
    with Progress("packet-in-rate", total=len(hubs), unit="hub", quiet=args.quiet):
        rates = {hub: measure(hub, args.seconds, args.window) for hub in hubs}
    ratio = rates["eventlet"] / rates["native"] if rates["native"] else float("inf")
    if args.json:
        print(json.dumps({"packet_in_per_s": rates, "eventlet_over_native": ratio}))
    else:
        for hub, rate in rates.items():
            print(f"{hub:9s} {rate:10.0f} packet-ins answered/s")
        print(f"eventlet / native = {ratio:.2f}x (baseline: native)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
