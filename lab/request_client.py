"""A lab client: HTTP requests at a fixed rate, each on a new connection, all recorded.

Run inside a Mininet host (``python -m lab.request_client URL --rate 10
--seconds 60``). Requests start on a fixed schedule whatever the server does
(each in its own thread), so a slow or dead server cannot lower the offered
load and hide failures. At the end one JSON document goes to stdout: every
request's start time (epoch seconds), whether it succeeded, which node
answered and how long it took. A request fails when it errors or takes longer
than ``--timeout``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.request
from typing import Any


def fetch(url: str, timeout: float) -> tuple[bool, str, float]:
    start = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read().decode(errors="replace").strip()
            ok = resp.status == 200
    except Exception as exc:  # noqa: BLE001 - every failure is a data point
        return False, type(exc).__name__, (time.monotonic() - start) * 1000
    elapsed = (time.monotonic() - start) * 1000
    return ok and elapsed <= timeout * 1000, body, elapsed


def run(url: str, rate: float, seconds: float, timeout: float) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def one(ts: float) -> None:
        ok, node, ms = fetch(url, timeout)
        with lock:
            results.append({"t": ts, "ok": ok, "node": node, "ms": round(ms, 1)})

    threads = []
    start = time.monotonic()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t = threading.Thread(target=one, args=(time.time(),), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(timeout + 5)
    return sorted(results, key=lambda r: r["t"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("--rate", type=float, default=10.0, help="requests per second")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--timeout", type=float, default=2.0)
    args = p.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.timeout <= 0:
        p.error("--rate, --seconds and --timeout must be positive")
    print(json.dumps(run(args.url, args.rate, args.seconds, args.timeout)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
