"""Service probes against real local sockets, and probe timing that a busy hub cannot inflate."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from controller.services.probes import probe, probe_round
from controller.services.service import Service

ROOT = Path(__file__).resolve().parents[2]


def _server(status: int, ip: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return ThreadingHTTPServer((ip, 0), Handler)


@pytest.fixture
def http_port() -> Iterator[Callable[..., int]]:
    servers: list[ThreadingHTTPServer] = []

    def start(status: int = 200, ip: str = "127.0.0.1") -> int:
        srv = _server(status, ip)
        servers.append(srv)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        return srv.server_address[1]

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def service(port: int, standby_port: int | None = None) -> Service:
    nodes = [{"name": "a", "ip": "127.0.0.1", "mac": "00:00:00:00:00:01", "port": port}]
    if standby_port is not None:
        nodes.append({"name": "b", "ip": "127.0.0.2", "mac": "00:00:00:00:00:02",
                      "port": standby_port})
    return Service.from_dict({"name": "web", "vip": "10.0.0.100", "port": 8080,
                              "primary": nodes[0], "standbys": nodes[1:]}, "services[0]")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_http_node_answers_with_latency(http_port):
    port = http_port(200)
    svc = service(port)
    result = probe(svc, svc.nodes[0], http_ports={port})
    assert result.ok and not result.error and result.latency_ms is not None


def test_a_server_error_is_an_answer_with_an_error(http_port):
    port = http_port(503)
    svc = service(port)
    assert probe(svc, svc.nodes[0], http_ports={port}).error
    # On a port not known as HTTP, a connect is the whole probe: it answered.
    assert not probe(svc, svc.nodes[0], http_ports=set()).error


def test_a_closed_port_is_a_lost_probe_and_a_round_covers_every_node(http_port):
    svc = service(closed_port(), http_port(200, "127.0.0.2"))
    rounds = probe_round([svc], count=2)
    assert [r.ok for r in rounds["a"]] == [False, False]
    assert [r.ok for r in rounds["b"]] == [True, True]


HOGGED = textwrap.dedent("""
    import eventlet
    eventlet.monkey_patch()
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from controller.services.probes import probe_round, run_off_hub
    from controller.services.service import Service

    svc = Service.from_dict({"name": "web", "vip": "10.0.0.100", "port": 8080,
        "primary": {"name": "a", "ip": "127.0.0.1", "mac": "00:00:00:00:00:01",
                    "port": int(sys.argv[2])}}, "s")

    def hog():
        eventlet.sleep(0.05)  # the probe is on the wire by now
        end = time.monotonic() + float(sys.argv[3])
        while time.monotonic() < end:  # a green thread that never yields
            pass

    eventlet.spawn(hog)
    result = run_off_hub(probe_round, [svc], 1, 1.0, {int(sys.argv[2])})["a"][0]
    print(result.ok, result.latency_ms)
""")


def test_a_busy_green_thread_does_not_count_as_node_latency(tmp_path):
    """Under eventlet a round runs on an OS thread: a 3 s hub stall is not 3 s of latency.

    The node answers after 0.3 s; meanwhile a green thread spins for 3 s. A probe
    timed on a green thread could only read its answer after the spin (>= 3 s).
    """
    port, hog_s = closed_port(), 3.0
    control = tmp_path / "delay"
    control.write_text("0.3\n")
    node = subprocess.Popen([sys.executable, "-m", "lab.http_node", "a", str(control),
                             "--port", str(port)], cwd=ROOT)
    try:
        _wait_listening(port)
        out = subprocess.run([sys.executable, "-c", HOGGED, str(ROOT), str(port), str(hog_s)],
                             capture_output=True, text=True, timeout=60)
    finally:
        node.kill()
        node.wait()
    assert out.returncode == 0, out.stderr
    ok, latency = out.stdout.split()
    assert ok == "True", out.stdout
    assert 300 <= float(latency) < hog_s * 1000 / 2, out.stdout


def _wait_listening(port: int, tries: int = 200) -> None:
    for _ in range(tries):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            threading.Event().wait(0.05)
    raise AssertionError(f"the test node never listened on port {port}")
