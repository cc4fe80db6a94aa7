"""Alert notifications, sent off the agent's loop: webhooks and the controller's health mark.

Why a background queue: the rules pass runs in the agent's one loop, which also
reconciles mirrors and flushes the history; a webhook receiver that is slow or
down, retried with backoff, would hold all of that up. Each notification is a
job on a bounded queue, run by a few daemon threads; a full queue drops the new
job with a warning instead of growing without bound in an alert storm.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from shadownet.retry import RetryPolicy, transient_http

LOG = logging.getLogger("shadownet.agent.notify")

# A receiver that is restarting gets about ten seconds to come back; no attempt
# starts later than that, and each attempt waits at most WEBHOOK_TIMEOUT.
WEBHOOK_RETRY = RetryPolicy(attempts=5, initial=0.5, maximum=4.0, jitter=0.5, deadline=10.0)
WEBHOOK_TIMEOUT = 3.0


def post_json(url: str, body: bytes, *, policy: RetryPolicy = WEBHOOK_RETRY,
              timeout: float = WEBHOOK_TIMEOUT) -> int:
    """POST the JSON document ``body`` to ``url`` under ``policy``; the final status.

    Connection errors, timeouts, 5xx and 429 are retried; any other status is
    final at once. Raises the last error when the policy gives up (an
    ``HTTPError`` for a status, an ``OSError`` when nothing answered), and
    ``ValueError`` for a URL urllib cannot use.
    """
    def once() -> int:
        req = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            exc.close()  # the retried ones too: no socket left for the GC
            raise

    return policy.call(once, retry_if=transient_http, what=f"webhook {url}", logger=LOG)


class Notifier:
    """Runs notification jobs on ``workers`` daemon threads from a queue of ``size``."""

    def __init__(self, workers: int = 2, size: int = 256) -> None:
        self._jobs: queue.Queue[tuple[str, Callable[[], object]] | None] = queue.Queue(size)
        self._workers = workers
        self._threads: list[threading.Thread] = []  # started with the first job
        self._lock = threading.Lock()
        self._closed = False
        self.dropped = 0
        self.failed = 0

    def submit(self, what: str, job: Callable[[], object]) -> bool:
        """Queue ``job``; False (and a warning) when the queue is full."""
        with self._lock:
            if self._closed:
                LOG.warning("%s: not sent, the agent is stopping", what)
                return False
            if not self._threads:
                self._threads = [threading.Thread(target=self._run, name=f"notify-{i}",
                                                  daemon=True) for i in range(self._workers)]
                for thread in self._threads:
                    thread.start()
        try:
            self._jobs.put_nowait((what, job))
            return True
        except queue.Full:
            with self._lock:
                self.dropped += 1
            LOG.warning("%s: dropped, %d notifications already waiting", what,
                        self._jobs.maxsize)
            return False

    def drain(self, timeout: float) -> bool:
        """Wait until every queued job has run (or ``timeout``); True if they all did."""
        deadline = time.monotonic() + timeout
        with self._jobs.all_tasks_done:
            while self._jobs.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._jobs.all_tasks_done.wait(left)
        return True

    def close(self, timeout: float = 2.0) -> None:
        """Give queued jobs ``timeout`` seconds, then stop; the threads are daemons."""
        with self._lock:
            self._closed = True
        self.drain(timeout)
        for _ in self._threads:
            try:
                self._jobs.put_nowait(None)
            except queue.Full:
                break  # still busy after the grace time: left to die with the process

    def _run(self) -> None:
        while True:
            item = self._jobs.get()
            try:
                if item is None:
                    return
                what, job = item
                try:
                    job()
                except Exception as exc:  # noqa: BLE001 - one failed job must not stop the rest
                    with self._lock:
                        self.failed += 1
                    LOG.warning("%s failed: %s: %s", what, type(exc).__name__, exc)
            finally:
                self._jobs.task_done()
