"""Contextual novelty and anomaly likelihood: the in-range half of the detector.

Range novelty (:mod:`predictive.baseline`) only fires when a metric leaves the
range it has been in.  Many incidents stay inside that range and change the
*shape* of the series instead: a flat line where there was noise, a step
sequence never seen before, spikes arriving more often.  Two small streaming
pieces catch those:

* :class:`ContextNovelty` quantises each value into ``bins`` equal bins over
  the range of the warm-up data (values outside it fall into one of two
  overflow bins) and remembers every *context* it has seen: the sequences of
  the last 1 .. ``depth`` bins (a single bin never visited counts too).  The
  raw score of an observation is the fraction of its contexts that are new.
  Memory is bounded by the number of distinct contexts, at most
  ``(bins + 2) ** depth`` per length (5,832 for the defaults), in practice a
  few hundred.
* :class:`AnomalyLikelihood` turns any raw score in [0, 1] into how unusual
  its *recent average* is compared with its long-run distribution: the mean of
  the last ``short`` raw scores is compared, as a Gaussian tail probability,
  with the mean and variance of that average over the last ``long``
  observations (Numenta's "anomaly likelihood", with the same lower bounds on
  mean 0.03 and variance 0.0003).  A series that produces new contexts all the
  time learns that this is normal; one that suddenly produces several is
  flagged.  The output is the log-scaled tail, ``log(tail) / log(1e-10)`` in
  [0, 1] (0.5 = a 1e-5 tail).

Both are O(1) per update and round-trip through JSON-able state.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from typing import Any

_LOG_FLOOR = math.log(1e-10)


class ContextNovelty:
    """Fraction of never-seen bin sequences (lengths 1 .. depth) ending at each value."""

    __slots__ = ("bins", "depth", "lo", "width", "seen", "hist")

    def __init__(self, bins: int = 16, depth: int = 3) -> None:
        if bins < 2 or depth < 1:
            raise ValueError("context novelty needs bins >= 2 and depth >= 1")
        self.bins = bins
        self.depth = depth
        self.lo: float | None = None  # quantisation is fixed at the end of the warm-up
        self.width = 1.0
        self.seen: set[tuple[int, ...]] = set()
        self.hist: deque[int] = deque(maxlen=depth)

    @property
    def ready(self) -> bool:
        return self.lo is not None

    def fit_range(self, values: list[float]) -> None:
        """Fix the bins on the warm-up values (their min and max)."""
        lo, hi = min(values), max(values)
        span = hi - lo
        if span <= 0.0:
            span = 1e-3 * abs(hi) + 1e-9
        self.lo = lo
        self.width = span / self.bins

    def symbol(self, x: float) -> int:
        b = math.floor((x - self.lo) / self.width)  # type: ignore[operator]
        return -1 if b < -1 else (self.bins if b > self.bins else b)

    def update(self, x: float) -> float:
        """Score ``x`` (fraction of its contexts never seen before), then remember them."""
        b = math.floor((x - self.lo) / self.width)  # type: ignore[operator]
        if b < -1:
            b = -1
        elif b > self.bins:
            b = self.bins
        h = self.hist
        h.append(b)
        seen = self.seen
        new = 0
        ctx = tuple(h)
        n = len(ctx)
        for k in range(n):  # contexts of length n, n-1, ..., 1
            c = ctx[k:] if k else ctx
            if c not in seen:
                seen.add(c)
                new += 1
        return new / self.depth

    def state(self) -> dict[str, Any]:
        return {
            "lo": self.lo,
            "width": self.width,
            "seen": [list(c) for c in self.seen],
            "hist": list(self.hist),
        }

    def load(self, st: dict[str, Any]) -> None:
        self.lo = None if st["lo"] is None else float(st["lo"])
        self.width = float(st["width"])
        self.seen = {tuple(int(v) for v in c) for c in st["seen"]}
        self.hist = deque((int(v) for v in st["hist"]), maxlen=self.depth)


class AnomalyLikelihood:
    """Log-scaled tail probability of the short-run mean of a raw score (see module doc)."""

    __slots__ = ("short", "long", "min_history", "buf", "bsum", "ring", "pos", "count", "hsum",
                 "hsq")

    MIN_MEAN = 0.03
    MIN_VAR = 0.0003

    def __init__(self, short: int = 10, long: int = 3000, min_history: int = 100) -> None:
        if not 1 <= short < long or min_history < 2:
            raise ValueError("likelihood needs 1 <= short < long and min_history >= 2")
        self.short = short
        self.long = long
        self.min_history = min_history
        self.buf: deque[float] = deque()
        self.bsum = 0.0
        self.ring = array("d", bytes(8 * long))  # the last ``long`` short-run means, 8 B each
        self.pos = 0
        self.count = 0
        self.hsum = 0.0
        self.hsq = 0.0

    def update(self, raw: float) -> float:
        buf = self.buf
        buf.append(raw)
        self.bsum += raw
        if len(buf) > self.short:
            self.bsum -= buf.popleft()
        m = self.bsum / len(buf)
        k = self.count
        score = 0.0
        if k >= self.min_history:
            mu = self.hsum / k
            var = self.hsq / k - mu * mu
            if mu < self.MIN_MEAN:
                mu = self.MIN_MEAN
            if var < self.MIN_VAR:
                var = self.MIN_VAR
            z = (m - mu) / math.sqrt(var)
            tail = 0.5 * math.erfc(z * 0.7071067811865476)
            score = math.log(tail + 1e-10) / _LOG_FLOOR
        pos = self.pos
        if k == self.long:
            old = self.ring[pos]
            self.hsum -= old
            self.hsq -= old * old
        else:
            self.count = k + 1
        self.ring[pos] = m
        self.pos = pos + 1 if pos + 1 < self.long else 0
        self.hsum += m
        self.hsq += m * m
        return score

    def state(self) -> dict[str, Any]:
        return {
            "buf": list(self.buf),
            "bsum": self.bsum,
            "ring": self.ring.tolist(),
            "pos": self.pos,
            "count": self.count,
            "hsum": self.hsum,
            "hsq": self.hsq,
        }

    def load(self, st: dict[str, Any]) -> None:
        self.buf = deque(float(v) for v in st["buf"])
        self.bsum = float(st["bsum"])
        self.ring = array("d", (float(v) for v in st["ring"]))
        if len(self.ring) != self.long:
            raise ValueError("likelihood state does not match its configured history length")
        self.pos = int(st["pos"])
        self.count = int(st["count"])
        self.hsum = float(st["hsum"])
        self.hsq = float(st["hsq"])
