"""Progress of long runs (labs, benchmarks) on stderr, so a user can tell they are alive.

A failover scenario sits in a 30 s warm-up and then degrades a node for a
minute; a benchmark repeats such runs ten times. Without a word on the
terminal that looks like a hang. A :class:`Progress` prints where a run is::

    [noise-margin] run 3/10 · warmup 12s/30s · 2m14s elapsed · ~9m left

Rules, and why:

- **stderr only.** stdout carries the results (``--json`` documents, the
  benchmarks' tables) that tests and users parse; progress never touches it.
- **A TTY gets one redrawn line, anything else plain lines, rate-limited.**
  A CI log is read after the fact: a line per second of countdown would bury
  the result, so non-TTY output is thinned to one line per ``interval``
  (phases, the first step and the final line always print).
- **Quiet means silent** (``--quiet``), and so does running with no reporter
  at all: library code (the lab scenarios) reports through the module-level
  :func:`phase`, :func:`wait`, :func:`step` and :func:`log`, which go to the
  innermost active ``with Progress(...)`` and do nothing (but still wait)
  when there is none. The integration tests, which call the scenarios
  directly, therefore print nothing new.

No dependencies beyond the standard library, so every package may use it.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import TextIO

TTY_INTERVAL = 0.5  # seconds between redraws of the live line on a terminal
PLAIN_INTERVAL = 10.0  # seconds between lines in a log (not a terminal)
TICK = 1.0  # how often a countdown wakes up to redraw

_ACTIVE: ContextVar[Progress | None] = ContextVar("shadownet_progress", default=None)


def duration(seconds: float) -> str:
    """``45s``, ``2m14s``, ``1h05m``: short enough for a status line."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def estimate(seconds: float) -> str:
    """An ETA, deliberately coarse (``~45s``, ``~5m``, ``~1h20m``): it is a guess.

    Seconds round up to a multiple of 5 so the last seconds never read ``~0s``.
    """
    s = max(0.0, seconds)
    if s < 60:
        return f"~{max(5, 5 * math.ceil(s / 5))}s"
    if s < 3600:
        return f"~{round(s / 60)}m"
    return f"~{int(s // 3600)}h{round(s % 3600 / 60):02d}m"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):  # a closed or bare stream
        return False


def _separator(stream: TextIO) -> str:
    """`` · `` where the stream can encode it; a C-locale log gets `` - ``, not ``\\xb7``.

    A stream with no encoding (``io.StringIO``) holds text, so anything goes.
    """
    try:
        "·".encode(getattr(stream, "encoding", None) or "utf-8")
        return " · "
    except (LookupError, UnicodeEncodeError):
        return " - "


class Progress:
    """Reports a run of ``total`` steps (or of unknown length) and its phases.

    ``with Progress("noise-margin", total=10) as p:`` makes ``p`` the target of
    the module-level functions until the block ends, then prints a last line
    (``done: 10 runs in 22m05s``). On an exception it only takes its live line
    off the terminal: the caller's error is then the one line a mistake prints
    (``shadownet: error: --topo ...``), and in a log the last status line
    above it already says where the run was.

    ``clock`` (default ``time.monotonic``), ``sleep`` (``time.sleep``), ``tty``
    and ``stream`` exist for tests; ``stream`` defaults to whatever
    ``sys.stderr`` is when a line is written.
    """

    def __init__(self, label: str, total: int | None = None, *, unit: str = "run",
                 quiet: bool = False, stream: TextIO | None = None,
                 clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], None] | None = None, tty: bool | None = None,
                 interval: float | None = None, width: int | None = None) -> None:
        self.label, self.total, self.unit, self.quiet = label, total, unit, quiet
        self._stream, self._sleep = stream, sleep
        self._clock = clock or time.monotonic
        self.tty = _isatty(self.stream) if tty is None else tty
        if interval is None:
            interval = TTY_INTERVAL if self.tty else PLAIN_INTERVAL
        self.interval = interval
        self._width = width
        self._sep = _separator(self.stream)
        self._lock = threading.RLock()
        self.started = self._clock()
        self.index = 0  # the step under way (1-based); 0 before the first
        self.detail = ""
        self._step_started = self.started
        self._phase: str | None = None
        self._phase_seconds: float | None = None
        self._phase_started = self.started
        self._last_line: float | None = None  # clock of the last line written
        self._live = False  # a TTY line is on screen without its newline
        self._token: Token[Progress | None] | None = None

    # --- where lines go ---------------------------------------------------------
    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def __enter__(self) -> Progress:
        self._token = _ACTIVE.set(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if self._token is not None:
            _ACTIVE.reset(self._token)
            self._token = None
        self.finish(ok=exc_type is None)

    # --- what callers report ----------------------------------------------------
    def step(self, detail: str = "", show: bool = True) -> None:
        """The next step begins (``run 3/10``); ``detail`` names it (a mode, a seed).

        ``show=False`` leaves the line to the step's first phase: the lab's
        first phase comes once its topology and config have been accepted, so
        a bad ``--topo`` is reported in the one line of its error alone.
        """
        with self._lock:
            self.index += 1
            self.detail = detail
            self._step_started = self._clock()
            self._phase = None
            if show:
                self._show(force=self.index == 1)

    def phase(self, name: str, seconds: float | None = None) -> None:
        """A named stage of the current step begins; ``seconds`` if its length is known.

        Phases are few and each says something (warm-up, the node dies), so
        their lines are never thinned out.
        """
        with self._lock:
            self._phase, self._phase_seconds = name, seconds
            self._phase_started = self._clock()
            self._show(force=True)

    def wait(self, seconds: float, name: str) -> None:
        """Sleep ``seconds`` as phase ``name``, counting down (``warmup 12s/30s``)."""
        self.phase(name, seconds)
        sleep = self._sleep or time.sleep
        if self.quiet:  # nothing to redraw: one sleep, not one per tick
            sleep(max(seconds, 0.0))
            return
        deadline = self._clock() + seconds
        while (left := deadline - self._clock()) > 0:
            sleep(min(TICK, left))
            if self.tty or deadline - self._clock() > 0:  # a log needs no "30s/30s" line
                with self._lock:
                    self._show()

    def log(self, message: str) -> None:
        """A whole message line (``lab: ...``) above the live line, which is then redrawn."""
        if self.quiet:
            return
        with self._lock:
            redraw = self._live
            self.clear()
            self._write(message + "\n")
            if redraw:  # a log gets the message alone, not the status line again
                self._show(force=True)

    def clear(self) -> None:
        """Take the live line off the terminal: call it before printing results to stdout.

        On a terminal stdout and stderr share the screen; a result printed
        after an unfinished status line would land at its end.
        """
        with self._lock:
            if self._live:
                self._write("\r\x1b[K")
                self._live = False

    def finish(self, ok: bool = True) -> None:
        """The last line, how long it all took; on failure, nothing but a cleared line."""
        with self._lock:
            self.clear()
            if self.quiet or not ok:
                return
            took = duration(self._clock() - self.started)
            if self.index:
                plural = "s" if self.index != 1 else ""
                self._write(f"[{self.label}] done: {self.index} {self.unit}{plural} in {took}\n")
            else:
                self._write(f"[{self.label}] done in {took}\n")
            self._last_line = self._clock()

    # --- the status line --------------------------------------------------------
    def eta(self, now: float | None = None) -> float | None:
        """Seconds left, from the average finished step; None until one has finished.

        The current step is assumed to take the average, but never less than
        what it has already taken, so an overrunning step does not make the
        estimate go negative.
        """
        if not self.total or self.index < 2:
            return None
        now = self._clock() if now is None else now
        average = (self._step_started - self.started) / (self.index - 1)
        in_step = now - self._step_started
        return max(average - in_step, 0.0) + average * max(self.total - self.index, 0)

    def _position(self) -> str:
        where = f"{self.unit} {self.index}" + (f"/{self.total}" if self.total else "")
        return f"{where} {self.detail}" if self.detail else where

    def line(self) -> str:
        """The status line as it would be printed now."""
        now = self._clock()
        parts = [self._position()] if self.index else []
        if self._phase:
            phase = self._phase
            if self._phase_seconds:
                done = min(now - self._phase_started, self._phase_seconds)
                phase += f" {duration(done)}/{duration(self._phase_seconds)}"
            parts.append(phase)
        parts.append(f"{duration(now - self.started)} elapsed")
        left = self.eta(now)
        if left is not None:
            parts.append(f"{estimate(left)} left")
        return f"[{self.label}] " + self._sep.join(parts)

    def _show(self, force: bool = False) -> None:
        """Write the status line, unless one was written less than ``interval`` ago."""
        if self.quiet:
            return
        now = self._clock()
        if not force and self._last_line is not None and now - self._last_line < self.interval:
            return
        self._last_line = now
        text = self.line()
        if self.tty:
            width = self._width or _columns(self.stream)
            self._write("\r" + text[:max(width - 1, 10)] + "\x1b[K")
            self._live = True
        else:
            self._write(text + "\n")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed pipe must not fail the run it reports on
            pass


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 80


def current() -> Progress:
    """The innermost active reporter, or a silent one (that still waits)."""
    return _ACTIVE.get() or Progress("", quiet=True, tty=False)


def step(detail: str = "", show: bool = True) -> None:
    """:meth:`Progress.step` on the active reporter, if any."""
    current().step(detail, show)


def phase(name: str, seconds: float | None = None) -> None:
    """:meth:`Progress.phase` on the active reporter, if any."""
    current().phase(name, seconds)


def wait(seconds: float, name: str) -> None:
    """:meth:`Progress.wait` on the active reporter; a plain sleep with none."""
    current().wait(seconds, name)


def log(message: str) -> None:
    """:meth:`Progress.log` on the active reporter, if any."""
    current().log(message)


def clear() -> None:
    """:meth:`Progress.clear` on the active reporter, if any."""
    current().clear()
