"""The lab's wait for a child's API (lab.controller_process), with real child processes."""

from __future__ import annotations

import sys
import time

import pytest

from lab.controller_process import ChildProcess

# A child that serves HTTP on argv[1] after argv[2] seconds, answering argv[3].
SERVER = """
import sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
port, delay, status = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
time.sleep(delay)
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(status); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


@pytest.fixture()
def child(tmp_path):
    made: list[ChildProcess] = []

    def make() -> ChildProcess:
        made.append(ChildProcess(tmp_path))
        return made[-1]

    yield make
    for c in made:
        c.stop(timeout=5)


def spawn(c: ChildProcess, code: str, *args: object, timeout: float) -> float:
    started = time.monotonic()
    c._spawn([sys.executable, "-c", code, *map(str, args)], timeout)
    return time.monotonic() - started


def test_waits_until_the_child_answers(child):
    c = child()
    elapsed = spawn(c, SERVER, c.api_port, 0.4, 200, timeout=10)
    assert 0.3 < elapsed < 5


def test_a_child_that_exits_fails_at_once_not_at_the_timeout(child):
    c = child()
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="child exited with 3"):
        spawn(c, "import sys; print('bad config'); sys.exit(3)", timeout=30)
    assert time.monotonic() - started < 5
    assert "bad config" in c.log_tail()


def test_a_child_that_never_answers_fails_after_the_timeout(child):
    c = child()
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"child did not answer within 1s"):
        spawn(c, "import time; time.sleep(60)", timeout=1.0)
    # No wait ends past the timeout, so it gives up at most one wait (0.55 s) before it.
    assert 0.4 < time.monotonic() - started < 3


def test_a_4xx_is_final_but_a_503_is_waited_out(child):
    c = child()
    with pytest.raises(RuntimeError, match="child answered 401 on /"):
        spawn(c, SERVER, c.api_port, 0, 401, timeout=30)
    c.stop(timeout=5)
    d = child()
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"did not answer within 1s \(last: 503\)"):
        spawn(d, SERVER, d.api_port, 0, 503, timeout=1.0)
    assert time.monotonic() - started > 0.4
