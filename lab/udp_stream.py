"""A numbered UDP stream, to count lost packets and measure outages to the millisecond.

Run inside Mininet hosts::

    python -m lab.udp_stream receive --port 5005 --seconds 12 > result.json
    python -m lab.udp_stream send 10.0.0.3 --port 5005 --rate 1000 --seconds 10

Each datagram carries its sequence number. The receiver reports what came in
(``summarize``): packets lost, the longest run of consecutive missing
sequence numbers and, from arrival times, the longest silence. At 1000
packets/s one missing packet is one millisecond of outage.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import time
from typing import Any

HEADER = struct.Struct("!QQ")  # sequence number, number of packets the sender will send
PAYLOAD = 100


def send(dst: str, port: int, rate: float, seconds: float, sport: int = 0) -> int:
    """Send ``rate * seconds`` packets on a fixed schedule; returns how many were sent.

    ``sport`` fixes the source port, so the stream is one known flow (select
    groups hash flows by their addresses and ports).
    """
    count = int(rate * seconds)
    pad = b"\0" * (PAYLOAD - HEADER.size)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        if sport:
            sock.bind(("0.0.0.0", sport))
        start = time.monotonic()
        for seq in range(count):
            delay = start + seq / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                sock.sendto(HEADER.pack(seq, count) + pad, (dst, port))
            except OSError:
                pass  # no route or no ARP answer yet: the packet is lost, as on a wire
    return count


def receive(port: int, seconds: float) -> tuple[list[tuple[int, float]], int]:
    """Collect (sequence, arrival ms) for ``seconds``; returns them and the announced count."""
    got: list[tuple[int, float]] = []
    expected = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", port))
        sock.settimeout(0.2)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data = sock.recv(2048)
            except TimeoutError:
                continue
            if len(data) < HEADER.size:
                continue
            seq, count = HEADER.unpack_from(data)
            got.append((seq, time.monotonic() * 1000))
            expected = max(expected, count)
    return got, expected


def summarize(got: list[tuple[int, float]], expected: int, rate: float) -> dict[str, Any]:
    """Lost packets, the longest hole in the sequence, the longest silence in ms."""
    seqs = sorted({s for s, _ in got})
    lost = expected - len(seqs) if expected else 0
    hole = 0
    prev = -1
    for s in seqs:
        hole = max(hole, s - prev - 1)
        prev = s
    if expected:
        hole = max(hole, expected - 1 - prev)
    times = [t for _, t in sorted(got, key=lambda x: x[1])]
    silence = max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)
    return {
        "sent": expected, "received": len(seqs), "lost": lost,
        "duplicates": len(got) - len(seqs),
        "longest_hole": hole, "gap_ms": round(hole * 1000.0 / rate, 1),
        "longest_silence_ms": round(silence, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("dst")
    s.add_argument("--sport", type=int, default=0, help="source port (default: any)")
    r = sub.add_parser("receive")
    for q in (s, r):
        q.add_argument("--port", type=int, default=5005)
        q.add_argument("--seconds", type=float, default=10.0)
        q.add_argument("--rate", type=float, default=1000.0, help="packets per second")
    args = p.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0:
        p.error("--rate and --seconds must be positive")
    if args.cmd == "send":
        send(args.dst, args.port, args.rate, args.seconds, args.sport)
        return 0
    got, expected = receive(args.port, args.seconds)
    print(json.dumps(summarize(got, expected, args.rate)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
