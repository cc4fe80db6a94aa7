"""Active probes of service nodes: TCP connect, or an HTTP GET for HTTP ports.

The Flow Monitor runs these every interval from the controller host, which
must reach the nodes (a management network; in the lab, the probe port the
lab plugs into the first switch). Each probe is bounded by a timeout, so a
dead node costs at most that long.

A probe's latency must be the node's, not the controller's. Under the eventlet
hub a probe on a green thread is timed until the hub resumes it, so a busy
controller (a burst of stats replies, a reroute) read as a slow node: on a
loaded machine a noisy but healthy node was tripped on latency the controller
had added. :func:`run_off_hub` therefore runs a probe round on a real OS thread
with the unpatched socket module; the controller's green threads then delay a
probe by at most the interpreter's switch interval (5 ms), not by a whole stall.
Under eventlet, call :func:`probe_round` only through :func:`run_off_hub`: its
sockets block, so on a green thread they would hold the whole hub.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import TypeVar

from controller.services.health import ProbeResult
from controller.services.service import Node, Service

HTTP_PORTS = frozenset({80, 8000, 8080})
T = TypeVar("T")


def _patcher() -> ModuleType | None:
    """eventlet's patcher if this process imported eventlet (never imports it itself)."""
    return sys.modules.get("eventlet.patcher")


def _unpatched(name: str) -> ModuleType:
    """The standard-library module as it was before any eventlet monkey patching."""
    patcher = _patcher()
    return patcher.original(name) if patcher else importlib.import_module(name)


socket = _unpatched("socket")


def run_off_hub(fn: Callable[..., T], *args: object) -> T:
    """Run ``fn(*args)`` on a real OS thread if eventlet patched this process.

    The calling green thread waits without blocking the hub. Without eventlet
    (the native hub) the caller already is an OS thread, so ``fn`` runs in place.
    """
    patcher = _patcher()
    if patcher is not None and patcher.is_monkey_patched("socket"):
        from eventlet import tpool

        result: T = tpool.execute(fn, *args)
        return result
    return fn(*args)


def probe(svc: Service, node: Node, timeout: float = 0.5,
          http_ports: frozenset[int] | set[int] = HTTP_PORTS) -> ProbeResult:
    """One probe of one node (an HTTP HEAD on ``http_ports``, else a connect); never raises."""
    start = time.monotonic()
    try:
        with socket.create_connection((node.ip, node.port), timeout=timeout) as sock:
            if svc.proto != "tcp" or node.port not in http_ports:
                return ProbeResult(True, (time.monotonic() - start) * 1000)
            sock.settimeout(timeout)
            sock.sendall(f"HEAD / HTTP/1.0\r\nHost: {svc.vip}\r\n\r\n".encode())
            status = sock.recv(64).split(b" ", 2)
            latency = (time.monotonic() - start) * 1000
            code = int(status[1]) if len(status) > 1 and status[1].isdigit() else 0
            return ProbeResult(True, latency, error=not 200 <= code < 400)
    except OSError:
        return ProbeResult(False)


def probe_round(services: list[Service], count: int = 3, timeout: float = 0.5,
                http_ports: frozenset[int] | set[int] = HTTP_PORTS
                ) -> dict[str, list[ProbeResult]]:
    """``count`` probes of every node of every service, by node name."""
    results: dict[str, list[ProbeResult]] = {}
    for svc in services:
        for node in svc.nodes:
            results.setdefault(node.name, [])
            results[node.name] += [probe(svc, node, timeout, http_ports)
                                   for _ in range(count)]
    return results
