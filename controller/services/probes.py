"""Active probes of service nodes: TCP connect, or an HTTP GET for HTTP ports.

The Flow Monitor runs these every interval from the controller host, which
must reach the nodes (a management network; in the lab, the probe port the
lab plugs into the first switch). Each probe is bounded by a timeout, so a
dead node costs at most that long.
"""

from __future__ import annotations

import socket
import time

from controller.services.health import ProbeResult
from controller.services.service import Node, Service

HTTP_PORTS = {80, 8000, 8080}


def probe(svc: Service, node: Node, timeout: float = 0.5) -> ProbeResult:
    """One probe of one node; never raises."""
    start = time.monotonic()
    try:
        with socket.create_connection((node.ip, node.port), timeout=timeout) as sock:
            if svc.proto != "tcp" or node.port not in HTTP_PORTS:
                return ProbeResult(True, (time.monotonic() - start) * 1000)
            sock.settimeout(timeout)
            sock.sendall(f"HEAD / HTTP/1.0\r\nHost: {svc.vip}\r\n\r\n".encode())
            status = sock.recv(64).split(b" ", 2)
            latency = (time.monotonic() - start) * 1000
            code = int(status[1]) if len(status) > 1 and status[1].isdigit() else 0
            return ProbeResult(True, latency, error=not 200 <= code < 400)
    except OSError:
        return ProbeResult(False)


def probe_round(services: list[Service], count: int = 3,
                timeout: float = 0.5) -> dict[str, list[ProbeResult]]:
    """``count`` probes of every node of every service, by node name."""
    results: dict[str, list[ProbeResult]] = {}
    for svc in services:
        for node in svc.nodes:
            results.setdefault(node.name, [])
            results[node.name] += [probe(svc, node, timeout) for _ in range(count)]
    return results
