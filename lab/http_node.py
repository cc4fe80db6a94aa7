"""A lab service node: an HTTP server that answers with its name, as slowly as told.

Run inside a Mininet host (``python -m lab.http_node NAME CONTROL_FILE``). Each
request first reads ``CONTROL_FILE``: ``"<delay> [<jitter>]"`` in seconds. The
server sleeps ``delay`` plus a uniform random share of ``jitter`` before it
answers, so a scenario can make a node degrade step by step (a rising delay)
or just be noisy (jitter only) by rewriting one small file. A missing or
unreadable file means no delay.
"""

from __future__ import annotations

import argparse
import random
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def read_delay(control: Path) -> float:
    try:
        parts = control.read_text().split()
        delay = float(parts[0]) if parts else 0.0
        jitter = float(parts[1]) if len(parts) > 1 else 0.0
    except (OSError, ValueError):
        return 0.0
    return max(0.0, delay + random.uniform(0.0, max(0.0, jitter)))


def make_handler(name: str, control: Path) -> type[BaseHTTPRequestHandler]:
    body = f"{name}\n".encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def _answer(self, with_body: bool) -> None:
            time.sleep(read_delay(control))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._answer(True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer(False)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name")
    p.add_argument("control", type=Path)
    p.add_argument("--port", type=int, default=80)
    args = p.parse_args(argv)
    server = ThreadingHTTPServer(("0.0.0.0", args.port), make_handler(args.name, args.control))
    server.daemon_threads = True
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
