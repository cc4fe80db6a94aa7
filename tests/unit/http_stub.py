"""Tiny real HTTP servers on 127.0.0.1 for retry tests: scripted answers, hangs, resets."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    """One request the stub received."""

    method: str
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass
class Script:
    """Answers in order (the last one repeats), each after ``delay`` seconds."""

    statuses: list[int]
    body: bytes = b'{"ok": true}'
    delay: float = 0.0
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_status(self, request: Seen) -> int:
        with self.lock:
            self.seen.append(request)
            index = min(len(self.seen), len(self.statuses)) - 1
            return self.statuses[index]


@contextmanager
def http_stub(statuses: list[int], *, body: bytes = b'{"ok": true}',
              delay: float = 0.0) -> Iterator[tuple[str, Script]]:
    """A threaded HTTP server answering ``statuses`` in turn; yields (base URL, script)."""
    script = Script(statuses, body, delay)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen = Seen(self.command, self.path, self.rfile.read(length) if length else b"",
                        dict(self.headers.items()))
            status = script.next_status(seen)
            if script.delay:
                time.sleep(script.delay)
            payload = script.body if status < 400 else b'{"error": "scripted"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", script
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Accepts:
    """Counts connections a raw TCP stub accepted."""

    count: int = 0


@contextmanager
def tcp_stub(mode: str) -> Iterator[tuple[str, Accepts]]:
    """A TCP listener that either closes each connection at once ("reset") or never
    answers ("hang"); yields (base URL, accept counter)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepts = Accepts()
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepts.count += 1
            if mode == "reset":
                conn.recv(65536)
                conn.close()
            else:
                held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepts
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        listener.close()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
