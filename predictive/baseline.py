"""Per-metric rolling baseline: deviation, rate of change, novelty and seasonality.

One :class:`MetricBaseline` follows one metric of one entity, one observation at
a time, in O(window) memory and roughly constant time per update.  It answers
"how unusual is this value, and how fast is it getting worse?" with scores on
fixed scales, so that a single parameter set works for CPU percentages, byte
counters and latencies alike:

* **deviation** - robust z-score of the value against a rolling median and
  inter-quartile range.  Median and IQR ignore single spikes, so one bad
  sample does not drag the baseline.
* **shift** - the same z-score for the mean of the last few values: a
  short-against-long distribution shift that a single spike cannot fake.
* **rate** - the rate of change of the shift per typical sampling interval
  (smoothed).  A deviation that is growing is what precedes a failure, so this
  is the earliest warning the baseline gives.
* **novelty** - how far the value lies beyond the whole range seen in the
  rolling window, in units of that range.  Values the metric has never reached
  recently are the single strongest anomaly signal on NAB's real data.
* **seasonal** - where the metric has a daily cycle (checked once, on the
  warm-up data), the same novelty test on the smoothed difference from one day
  earlier, which catches a missing or distorted daily pattern.
* **volatility** - log ratio of the short-window spread to the baseline spread.

Level shifts: when the short mean sits beyond ``shift_limit`` for ``shift_hold``
consecutive observations, the window is re-seeded from the recent values so
the baseline follows the new level instead of alarming forever.

Irregular intervals are handled by expressing the rate per *typical* interval
(an exponentially weighted median-like estimate of the spacing); repeated or
backward timestamps count as a minimal interval.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from predictive.context import AnomalyLikelihood, ContextNovelty

DAY_SECONDS = 86400.0


@dataclass(frozen=True)
class BaselineConfig:
    """Parameters shared by every metric; one set serves the whole NAB corpus."""

    window: int = 3000  # rows in the rolling baseline (about 10 days at 5 minutes)
    short: int = 6  # rows in the short window (shift, volatility)
    min_history: int = 20  # rows before any score is produced
    warmup: int = 750  # rows used to detect seasonality (NAB: the probation period)
    season_acf: float = 0.5  # autocorrelation at one day needed to model seasonality
    season_smooth: int = 12  # rows averaged in the seasonal difference
    rate_smoothing: float = 0.3  # EW weight of the newest rate sample
    shift_limit: float = 8.0  # |shift| (robust z) counted as a level shift
    shift_hold: int = 60  # consecutive rows beyond the limit before re-seeding
    context_bins: int = 8  # bins over the warm-up range for contextual novelty
    context_depth: int = 3  # longest bin sequence remembered as a context
    likelihood_short: int = 10  # rows averaged before the likelihood test
    likelihood_long: int = 3000  # rows of history the likelihood compares against
    coarse_bins: int = 4  # bins of the second, coarse context channel (0 = off)
    coarse_short: int = 20  # rows the coarse channel's likelihood averages
    # Smallest difference that means anything for this metric (its measurement
    # resolution): scales and ranges never shrink below it, so a metric that sat
    # still (a range of zero) does not turn its first tiny wobble into infinite z.
    resolution: float = 0.0

    def __post_init__(self) -> None:
        if self.window < 10 or self.short < 1 or self.min_history < 2:
            raise ValueError("baseline window must be >= 10, short >= 1, min_history >= 2")
        if self.min_history > self.window:
            raise ValueError("min_history cannot exceed the baseline window")
        if not 0.0 < self.rate_smoothing <= 1.0:
            raise ValueError("rate_smoothing must be in (0, 1]")
        if self.resolution < 0.0:
            raise ValueError("resolution must be >= 0")


class DriftScores(NamedTuple):
    """Scores for one observation of one metric (all 0.0 until ``ready``)."""

    deviation: float
    shift: float
    rate: float
    novelty: float
    seasonal: float
    volatility: float
    ready: bool
    novelty_all: float = 0.0  # beyond everything ever seen, in units of that range
    context: float = 0.0  # anomaly likelihood of new contexts (predictive.context), [0, 1]
    context_coarse: float = 0.0  # same on coarse bins, averaged over more rows, [0, 1]


_NOT_READY = DriftScores(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, False)


class _RollingExtremes:
    """Max and min of the last ``size`` values of a stream (monotonic deques, O(1) amortised)."""

    __slots__ = ("size", "count", "maxq", "minq")

    def __init__(self, size: int) -> None:
        self.size = size
        self.count = 0
        self.maxq: deque[tuple[int, float]] = deque()
        self.minq: deque[tuple[int, float]] = deque()

    def push(self, v: float) -> None:
        i = self.count
        self.count += 1
        maxq, minq = self.maxq, self.minq
        while maxq and maxq[-1][1] <= v:
            maxq.pop()
        maxq.append((i, v))
        while minq and minq[-1][1] >= v:
            minq.pop()
        minq.append((i, v))
        edge = i - self.size
        if maxq[0][0] <= edge:
            maxq.popleft()
        if minq[0][0] <= edge:
            minq.popleft()

    def state(self) -> dict[str, Any]:
        return {"count": self.count, "max": list(self.maxq), "min": list(self.minq)}

    @classmethod
    def from_state(cls, size: int, st: dict[str, Any]) -> _RollingExtremes:
        r = cls(size)
        r.count = int(st["count"])
        r.maxq = deque((int(i), float(v)) for i, v in st["max"])
        r.minq = deque((int(i), float(v)) for i, v in st["min"])
        return r


class MetricBaseline:
    """Streaming baseline and drift scores for one metric (see the module docstring)."""

    __slots__ = (
        "cfg", "n", "_sorted", "_fifo", "_short", "_ssum", "_ssq", "_prev_shift", "_prev_t",
        "_dt", "_rate", "_beyond", "_warm", "_period", "_lag", "_sdiff", "_sdsum", "_sext",
        "_amin", "_amax", "_ctx", "_lik", "_cctx", "_clik",
    )

    def __init__(self, config: BaselineConfig | None = None) -> None:
        self.cfg = config or BaselineConfig()
        self.n = 0
        self._sorted: list[float] = []
        self._fifo: deque[float] = deque()
        self._short: deque[float] = deque()
        self._ssum = 0.0
        self._ssq = 0.0
        self._prev_shift = 0.0
        self._prev_t: float | None = None
        self._dt = 0.0  # typical interval, seconds
        self._rate = 0.0
        self._beyond = 0  # signed count of consecutive rows beyond shift_limit
        self._warm: list[tuple[float, float]] | None = []  # (t, x) until seasonality decided
        self._period = 0  # rows per day when seasonal, else 0
        self._lag: deque[float] = deque()
        self._sdiff: deque[float] = deque()
        self._sdsum = 0.0
        self._sext = _RollingExtremes(self.cfg.window)
        self._amin = math.inf  # all-time extremes
        self._amax = -math.inf
        self._ctx = ContextNovelty(self.cfg.context_bins, self.cfg.context_depth)
        self._lik = AnomalyLikelihood(self.cfg.likelihood_short, self.cfg.likelihood_long)
        # The coarse channel: fewer bins, a longer average - slower shape changes (spikes
        # arriving more often, a damped daily cycle) that the fine channel sees as noise.
        coarse = self.cfg.coarse_bins
        self._cctx = ContextNovelty(coarse, self.cfg.context_depth) if coarse else None
        self._clik = (
            AnomalyLikelihood(self.cfg.coarse_short, self.cfg.likelihood_long) if coarse else None
        )

    @property
    def period(self) -> int:
        """Rows per daily cycle if seasonality was detected, else 0."""
        return self._period

    def update(self, t: float, x: float) -> DriftScores:
        """Score observation ``x`` at time ``t`` (seconds) against the history, then learn it."""
        cfg = self.cfg
        x = float(x)
        if x != x or math.isinf(x):
            raise ValueError("metric value must be a finite number")
        # Sampling interval, robust to repeated, backward and missing samples.
        step_ratio = 1.0
        if self._prev_t is not None:
            step = t - self._prev_t
            if self._dt > 0.0:
                step_ratio = step / self._dt
            if step > 0:
                if self._dt == 0.0:
                    self._dt = step
                else:  # move 1% towards the step, capped at a factor 2: a median-like tracker
                    self._dt *= min(max(step / self._dt, 0.5), 2.0) ** 0.01
        self._prev_t = t if self._prev_t is None or t > self._prev_t else self._prev_t
        srt = self._sorted
        m = len(srt)
        sh = self._short
        # Short-window statistics including the current value.
        sh.append(x)
        self._ssum += x
        self._ssq += x * x
        if len(sh) > cfg.short:
            old = sh.popleft()
            self._ssum -= old
            self._ssq -= old * old
        k = len(sh)
        smean = self._ssum / k
        warming = self._warm is not None
        seasonal = self._seasonal(t, x)
        context = self._lik.update(0.0 if warming else self._ctx.update(x))
        cctx = self._cctx
        coarse = (
            self._clik.update(0.0 if warming else cctx.update(x))  # type: ignore[union-attr]
            if cctx is not None
            else 0.0
        )
        if m >= cfg.min_history:
            med = srt[m >> 1]
            lo = srt[0]
            hi = srt[-1]
            floor = max(1e-3 * abs(med) + 1e-9, cfg.resolution)
            iqr = srt[(3 * m) >> 2] - srt[m >> 2]
            scale = max(iqr / 1.349, floor)
            span = max(hi - lo, floor)
            dev = (x - med) / scale
            shift = (smean - med) / scale
            if x > hi:
                novelty = (x - hi) / span
            elif x < lo:
                novelty = (lo - x) / span
            else:
                novelty = 0.0
            var = self._ssq / k - smean * smean
            vol = math.log((math.sqrt(var) if var > 0.0 else 0.0) / scale + 1e-3) if k > 2 else 0.0
            # Rate of change of the shift, per typical interval.
            if self._dt > 0.0 and self.n > 0:
                # Per typical interval: a gap spreads the change, a burst concentrates it.
                ratio = min(max(step_ratio, 0.25), 100.0)
                raw_rate = (shift - self._prev_shift) / ratio
                a = cfg.rate_smoothing
                self._rate = (1.0 - a) * self._rate + a * raw_rate
            self._prev_shift = shift
            ahi, alo = self._amax, self._amin
            aspan = max(ahi - alo, 1e-3 * abs(ahi) + 1e-9, cfg.resolution)
            if x > ahi:
                novelty_all = (x - ahi) / aspan
            elif x < alo:
                novelty_all = (alo - x) / aspan
            else:
                novelty_all = 0.0
            scores = DriftScores(
                dev, shift, self._rate, novelty, seasonal, vol, True, novelty_all, context,
                coarse,
            )
            self._track_level_shift(shift)
        else:
            scores = _NOT_READY
        # Learn the value (re-read the window: a level shift may have re-seeded it).
        if x > self._amax:
            self._amax = x
        if x < self._amin:
            self._amin = x
        srt = self._sorted
        insort(srt, x)
        self._fifo.append(x)
        if len(self._fifo) > cfg.window:
            del srt[bisect_left(srt, self._fifo.popleft())]
        self.n += 1
        return scores

    def _track_level_shift(self, shift: float) -> None:
        cfg = self.cfg
        if shift > cfg.shift_limit:
            self._beyond = self._beyond + 1 if self._beyond > 0 else 1
        elif shift < -cfg.shift_limit:
            self._beyond = self._beyond - 1 if self._beyond < 0 else -1
        else:
            self._beyond = 0
        if abs(self._beyond) >= cfg.shift_hold:
            # The level moved for good: keep only the recent rows as the new baseline.
            recent = list(self._fifo)[-cfg.shift_hold :]
            self._fifo = deque(recent)
            self._sorted = sorted(recent)
            self._beyond = 0

    def _seasonal(self, t: float, x: float) -> float:
        """Novelty of the smoothed day-over-day difference (0 when not seasonal)."""
        cfg = self.cfg
        if self._warm is not None:
            self._warm.append((t, x))
            if len(self._warm) >= cfg.warmup:
                self._period = detect_daily_period(self._warm, cfg.season_acf)
                # The contextual quantisation is fixed on the warm-up range; its
                # contexts are learnt (not scored) from the warm-up rows.
                warm_values = [v for _, v in self._warm]
                self._ctx.fit_range(warm_values)
                for v in warm_values:
                    self._ctx.update(v)
                if self._cctx is not None:
                    self._cctx.fit_range(warm_values)
                    for v in warm_values:
                        self._cctx.update(v)
                for _, v in self._warm[-self._period :] if self._period else ():
                    self._lag.append(v)
                self._warm = None
            return 0.0
        p = self._period
        if not p:
            return 0.0
        lag = self._lag
        lag.append(x)
        if len(lag) <= p:
            return 0.0
        d = abs(x - lag.popleft())
        sd = self._sdiff
        sd.append(d)
        self._sdsum += d
        if len(sd) > cfg.season_smooth:
            self._sdsum -= sd.popleft()
        g = self._sdsum / len(sd)
        ext = self._sext
        score = 0.0
        if ext.count >= cfg.min_history:
            hi = ext.maxq[0][1]
            span = max(hi - ext.minq[0][1], 1e-3 * abs(hi) + 1e-9)
            if g > hi:
                score = (g - hi) / span
        ext.push(g)
        return score

    # -- persistence -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state, so a controller restart keeps its baselines."""
        return {
            "config": asdict(self.cfg),
            "n": self.n,
            "fifo": list(self._fifo),
            "short": list(self._short),
            "ssum": self._ssum,
            "ssq": self._ssq,
            "sdsum": self._sdsum,
            "prev_shift": self._prev_shift,
            "prev_t": self._prev_t,
            "dt": self._dt,
            "rate": self._rate,
            "beyond": self._beyond,
            "warm": self._warm,
            "period": self._period,
            "lag": list(self._lag),
            "sdiff": list(self._sdiff),
            "sext": self._sext.state(),
            "amin": self._amin if math.isfinite(self._amin) else None,
            "amax": self._amax if math.isfinite(self._amax) else None,
            "ctx": self._ctx.state(),
            "lik": self._lik.state(),
            "cctx": self._cctx.state() if self._cctx is not None else None,
            "clik": self._clik.state() if self._clik is not None else None,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> MetricBaseline:
        """Rebuild a baseline from :meth:`state_dict`; it continues with identical outputs."""
        b = cls(BaselineConfig(**state["config"]))
        b.n = int(state["n"])
        b._fifo = deque(float(v) for v in state["fifo"])
        b._sorted = sorted(b._fifo)
        b._short = deque(float(v) for v in state["short"])
        b._ssum = float(state["ssum"])  # running sums restored bit for bit
        b._ssq = float(state["ssq"])
        b._prev_shift = float(state["prev_shift"])
        b._prev_t = None if state["prev_t"] is None else float(state["prev_t"])
        b._dt = float(state["dt"])
        b._rate = float(state["rate"])
        b._beyond = int(state["beyond"])
        warm = state["warm"]
        b._warm = None if warm is None else [(float(a), float(v)) for a, v in warm]
        b._period = int(state["period"])
        b._lag = deque(float(v) for v in state["lag"])
        b._sdiff = deque(float(v) for v in state["sdiff"])
        b._sdsum = float(state["sdsum"])
        b._sext = _RollingExtremes.from_state(b.cfg.window, state["sext"])
        b._amin = math.inf if state["amin"] is None else float(state["amin"])
        b._amax = -math.inf if state["amax"] is None else float(state["amax"])
        b._ctx.load(state["ctx"])
        b._lik.load(state["lik"])
        if b._cctx is not None and b._clik is not None:
            if state.get("cctx") is not None:
                b._cctx.load(state["cctx"])
                b._clik.load(state["clik"])
            elif b._warm is None and b._fifo:  # state saved before the coarse channel existed
                b._cctx.fit_range(list(b._fifo))
        return b


def detect_daily_period(samples: list[tuple[float, float]], min_acf: float) -> int:
    """Rows per day if the samples repeat daily (autocorrelation >= ``min_acf``), else 0.

    Needs at least two days of samples; the spacing is the median interval, so
    a few gaps do not throw the lag off.
    """
    n = len(samples)
    if n < 4:
        return 0
    steps = sorted(b[0] - a[0] for a, b in zip(samples, samples[1:], strict=False))
    dt = steps[len(steps) // 2]
    if dt <= 0:
        return 0
    p = int(round(DAY_SECONDS / dt))
    if p < 4 or 2 * p > n:
        return 0
    xs = [v for _, v in samples]
    a, b = xs[p:], xs[:-p]
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((u - ma) * (v - mb) for u, v in zip(a, b, strict=True))
    va = sum((u - ma) ** 2 for u in a)
    vb = sum((v - mb) ** 2 for v in b)
    if va <= 0 or vb <= 0:
        return 0
    return p if cov / math.sqrt(va * vb) >= min_acf else 0
