"""Liveness: a node that dies without warning is known within a second, not a probe round.

Health probes come once per ``node_probes.interval`` (2 s by default) and a
trip needs ``confirm`` rounds, so a node that simply dies was moved away from
only after two or three rounds: 5 s of failed requests at 2 s, 25 s at 10 s.
No amount of prediction helps there: a sudden death gives no warning.

So, between rounds, every node of each service gets a *liveness check*:
a TCP connect every ``liveness_interval`` (0.1 s), answered or not within
``liveness_timeout`` (0.25 s: the node's kernel answers a connect, so the
application's own delay does not count, only the network's). Checks overlap
(a new one goes out before the last one timed out), so the wait is one
timeout, not one per check. A node is declared
unreachable after ``liveness_misses`` consecutive misses (5). Why five: with
a path that loses 2 % of packets, five misses in a row come once in 3·10⁹
checks, about once in ten years at ten checks a second; a dead node reaches
five misses within ``0.4 s + timeout`` of its death (0.65 s, plus up to
one interval for the first check to go out). A refused connect (the
server process died, the kernel answers with a reset) is a miss at once.

:class:`MissCounter` is the rule (pure, used by the failover simulation too);
:class:`LivenessProber` sends the checks from a real OS thread with
non-blocking sockets, so the controller's own stalls under eventlet never
count as misses (the same reason probe rounds run off the hub).
"""

from __future__ import annotations

import errno
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from controller.services.probes import _unpatched, socket

# This runs on an OS thread: eventlet's green select (which the standard selectors
# module picks up even when imported unpatched) would wait on a hub of its own.
select = _unpatched("select")

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class LivenessSettings:
    interval: float = 0.1  # seconds between checks of one node; 0: no liveness checks
    timeout: float = 0.25  # seconds before a check counts as a miss
    misses: int = 5  # consecutive misses that make a node unreachable
    arm: int = 30  # answers in a row before a node's silence counts (3 s at 0.1 s)

    @property
    def enabled(self) -> bool:
        return self.interval > 0


class MissCounter:
    """Consecutive misses per node, in the order checks were sent.

    :meth:`record` says True once, when a node's run of misses reaches
    ``misses``; an answered check ends the run (and re-arms the node). A node
    is counted only once it has answered ``arm`` checks in a row (3 s at the
    default interval): liveness finds nodes that *stop* answering, and one
    that never did, or is still coming up (its server starting, its path
    being set up as the controller learns it), is the health probes' to
    judge, over their confirmation rounds.
    """

    def __init__(self, misses: int, arm: int = 30) -> None:
        if misses < 1 or arm < 1:
            raise ValueError("liveness misses and arm must be >= 1")
        self.misses, self.arm = misses, arm
        self._run: dict[str, int] = {}  # armed nodes: misses in a row
        self._answers: dict[str, int] = {}  # nodes not armed yet: answers in a row

    def record(self, node: str, answered: bool) -> bool:
        if node not in self._run:  # not armed: count answers in a row instead
            self._answers[node] = self._answers.get(node, 0) + 1 if answered else 0
            if self._answers[node] >= self.arm:
                self._run[node] = 0
                del self._answers[node]
            return False
        if answered:
            self._run[node] = 0
            return False
        run = self._run[node] + 1
        self._run[node] = run
        return run == self.misses

    def run(self, node: str) -> int:
        return self._run.get(node, 0)

    def forget(self, node: str) -> None:
        self._run.pop(node, None)
        self._answers.pop(node, None)


Target = tuple[str, int]  # (ip, port)


@dataclass
class _Check:
    node: str
    seq: int
    sock: Any  # a socket of the unpatched module
    deadline: float


class LivenessProber:
    """Liveness checks of the nodes :attr:`targets` names, on an OS thread of its own.

    Every node of the monitored services is checked, standbys too, and that is
    what tells a dead node from a dead path: the checks leave from the
    controller, so a moment in which its own path to the nodes is down (a
    reroute in the management network) silences every node at once. A node
    with enough misses is declared only once another node has answered a check
    sent after it fell silent.

    Set :attr:`targets` (a mapping of node name to ``(ip, port)``) from any
    thread; it is read, never changed, here. ``on_unreachable(node, misses)``
    is called from this thread: hand it to the controller's own loop (a
    queue) rather than acting here.
    """

    def __init__(self, settings: LivenessSettings,
                 on_unreachable: Callable[[str, int], None]) -> None:
        self.settings = settings
        self.on_unreachable = on_unreachable
        self.targets: Mapping[str, Target] = {}
        self.counter = MissCounter(settings.misses, settings.arm)
        self._last_answer: dict[str, int] = {}  # per node, the seq of its last answered check
        self._silent_since: dict[str, int] = {}  # per node, the seq of its first miss in a row
        self._suspects: set[str] = set()  # misses enough, not yet told: waiting for another
        #                                   node's answer to show the path works
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq = itertools.count()

    def start(self) -> None:
        import importlib
        import sys

        patcher = sys.modules.get("eventlet.patcher")
        threading_mod = patcher.original("threading") if patcher else importlib.import_module(
            "threading")
        self._stop = threading_mod.Event()
        self._thread = threading_mod.Thread(target=self._run_logged, name="liveness",
                                            daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _run_logged(self) -> None:
        try:
            self._run()
        except Exception:  # noqa: BLE001 - said loudly: without it no death is caught fast
            LOG.exception("liveness checks stopped; sudden deaths now wait for probe rounds")

    def _run(self) -> None:
        poll = select.poll()
        pending: dict[int, _Check] = {}
        # Per node: results wait here until every earlier check of the node is in,
        # so misses are counted in the order the checks were sent.
        results: dict[str, dict[int, bool]] = {}
        next_send = time.monotonic()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_send:
                    for node, target in dict(self.targets).items():
                        seq, check = self._send(node, target, now)
                        if check is None:  # refused or unreachable at once
                            results.setdefault(node, {})[seq] = False
                            continue
                        pending[check.sock.fileno()] = check
                        poll.register(check.sock.fileno(), select.POLLOUT)
                    next_send = now + self.settings.interval
                wait = max(0.0, min([next_send - now] + [c.deadline - now
                                                         for c in pending.values()]))
                for fd, _event in poll.poll(wait * 1000.0):
                    check = pending.pop(fd)
                    poll.unregister(fd)
                    err = check.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    check.sock.close()
                    results.setdefault(check.node, {})[check.seq] = err == 0
                now = time.monotonic()
                for fd, check in list(pending.items()):
                    if now >= check.deadline:
                        del pending[fd]
                        poll.unregister(fd)
                        check.sock.close()
                        results.setdefault(check.node, {})[check.seq] = False
                self._count(results, pending)
        finally:
            for check in pending.values():
                check.sock.close()

    def _send(self, node: str, target: Target, now: float) -> tuple[int, _Check | None]:
        sock = socket.socket(socket.AF_INET6 if ":" in target[0] else socket.AF_INET,
                             socket.SOCK_STREAM)
        sock.setblocking(False)
        seq = next(self._seq)
        code = sock.connect_ex(target)
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            sock.close()
            return seq, None
        return seq, _Check(node, seq, sock, now + self.settings.timeout)

    def _count(self, results: dict[str, dict[int, bool]], pending: dict[int, _Check]) -> None:
        """Feed the counter every result whose earlier checks are all in, then declare
        the suspects that another node's answers clear of a path failure."""
        for node, done in results.items():
            waiting = [c.seq for c in pending.values() if c.node == node]
            first_open = min(waiting) if waiting else None
            for seq in sorted(done):
                if first_open is not None and seq > first_open:
                    break
                answered = done.pop(seq)
                if answered:
                    self._last_answer[node] = seq
                    self._silent_since.pop(node, None)
                    self._suspects.discard(node)
                elif node in self._last_answer:
                    self._silent_since.setdefault(node, seq)
                if self.counter.record(node, answered):
                    self._suspects.add(node)
            if node not in self.targets:
                self.counter.forget(node)
                self._suspects.discard(node)
        for node in [n for n, d in results.items() if not d and n not in self.targets]:
            del results[node]
        for node in sorted(self._suspects):
            if self._corroborated(node):
                self._suspects.discard(node)
                LOG.warning("liveness: %s missed %d checks in a row", node, self.counter.misses)
                self.on_unreachable(node, self.counter.misses)

    def _corroborated(self, node: str) -> bool:
        """The path is not the problem: another node answered a check sent after ``node``
        fell silent (or ``node`` is the only one checked, and nothing can tell)."""
        since = self._silent_since.get(node, -1)
        others = [n for n in self.targets if n != node]
        return not others or any(self._last_answer.get(n, -1) > since for n in others)
