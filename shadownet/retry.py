"""The one retry policy every package uses (tenacity), and what counts as an error that can pass.

Why one place: the agent (controller calls, webhooks), the controller's state
store (database) and the lab (waiting for a child's API) all retry, and they
should behave alike: a bounded number of attempts and/or a time budget,
exponential backoff with jitter (so agents restarted together do not retry in
lock step), one log line per failed attempt, and a retry only for an error that
can pass. An error that will not pass (an HTTP 4xx, bad input, a refused row) is
raised at once, never retried.

Each caller states its own budget with :class:`RetryPolicy` and its own
``retry_if`` predicate; :func:`transient_http` is the shared one for urllib.
This module needs only the standard library and tenacity, so every package
(``predictive`` included) may import it.
"""

from __future__ import annotations

import http.client
import logging
import ssl
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    stop_never,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry: attempts, backoff and an optional time budget.

    The wait before retry ``n`` (1-based) is ``min(initial * 2**(n-1), maximum)``
    plus a random ``0..jitter`` seconds. ``deadline`` bounds the whole call: no
    attempt starts if the wait before it would end past ``deadline`` seconds
    after the first one began. ``attempts=None`` retries until the deadline.
    """

    attempts: int | None = 3
    initial: float = 0.2
    maximum: float = 2.0
    jitter: float = 0.2
    deadline: float | None = None
    log_level: int = logging.WARNING

    def __post_init__(self) -> None:
        if self.attempts is None and self.deadline is None:
            raise ValueError("a retry policy needs attempts, a deadline, or both")
        if self.attempts is not None and self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if min(self.initial, self.maximum, self.jitter) < 0:
            raise ValueError("waits must not be negative")

    def worst_case_wait(self) -> float:
        """The most time spent sleeping between attempts (attempts bound only)."""
        if self.attempts is None:
            return float(self.deadline or 0.0)
        return sum(min(self.initial * 2.0 ** i, self.maximum) + self.jitter
                   for i in range(self.attempts - 1))

    def retrying(self, retry_if: Callable[[BaseException], bool], *, what: str,
                 logger: logging.Logger) -> Retrying:
        """A tenacity ``Retrying`` for this policy; the last error is re-raised as itself."""
        stop: stop_base = stop_never
        if self.attempts is not None:
            stop = stop_after_attempt(self.attempts)
        if self.deadline is not None:
            stop = stop | stop_before_delay(self.deadline)
        return Retrying(
            stop=stop,
            wait=wait_exponential(multiplier=self.initial, max=self.maximum)
            + wait_random(0, self.jitter),
            retry=retry_if_exception(retry_if),
            before_sleep=_log_attempt(logger, self.log_level, what, self.attempts),
            reraise=True,
        )

    def call(self, fn: Callable[..., T], *args: Any,
             retry_if: Callable[[BaseException], bool], what: str,
             logger: logging.Logger, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` under this policy; raises the last error on giving up."""
        return self.retrying(retry_if, what=what, logger=logger)(fn, *args, **kwargs)


def _log_attempt(logger: logging.Logger, level: int, what: str,
                 attempts: int | None) -> Callable[[RetryCallState], None]:
    """tenacity ``before_sleep``: one line per failed attempt, with the error and the wait."""
    of = f"/{attempts}" if attempts is not None else ""

    def log(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        logger.log(level, "%s: attempt %d%s failed (%s: %s); retrying in %.2fs", what,
                   state.attempt_number, of, type(exc).__name__, exc, wait)

    return log


RETRY_HTTP_STATUSES = frozenset({429, *range(500, 600)})


def transient_http(exc: BaseException) -> bool:
    """True for an HTTP call's error that can pass: no connection, a timeout, 5xx or 429.

    A 4xx other than 429 means the request itself is wrong and is never retried;
    nor is a failed certificate check or an unknown URL scheme.
    """
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in RETRY_HTTP_STATUSES
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return isinstance(reason, OSError) and not isinstance(reason,
                                                              ssl.SSLCertVerificationError)
    return isinstance(exc, ConnectionError | TimeoutError | http.client.IncompleteRead)
