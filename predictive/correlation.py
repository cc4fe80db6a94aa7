"""Rolling correlation between the metrics of one entity: usual pairings and their breaks.

Failures often show first as a *relationship* going wrong rather than one metric
going out of range: latency that stops following load, a bypass whose
counters stop tracking the primary's, CPU and error rate rising together.  This
module keeps, for every pair of metrics, exponentially weighted correlations at
a long and a short time scale:

* a **break** is a pair whose long-run correlation is strong (``|rho_long| >=
  usual``) while the short-run correlation has fallen away from it; its score
  is the drop ``|rho_long - rho_short|`` scaled to [0, 1];
* a **joint rise** is two or more metrics deviating upwards from their
  baselines at once (robust z-scores from :mod:`predictive.baseline`).

Updates are O(pairs) with a handful of floats per pair, so a wide entity (a
switch with a dozen port counters) stays cheap.  Missing metrics simply do not
update the pairs they belong to.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple


@dataclass(frozen=True)
class CorrelationConfig:
    """Time scales (in observations) and thresholds of the correlation engine."""

    long_span: int = 500
    short_span: int = 20
    usual: float = 0.6  # |long-run correlation| that counts as a usual relationship
    min_pairs: int = 50  # joint observations before a pair is judged
    joint_z: float = 3.0  # robust z above which a metric counts as rising

    def __post_init__(self) -> None:
        if not 2 <= self.short_span < self.long_span:
            raise ValueError("correlation spans must satisfy 2 <= short_span < long_span")
        if not 0.0 < self.usual < 1.0:
            raise ValueError("usual correlation must be in (0, 1)")


class _EwPair:
    """Exponentially weighted means, variances and covariance of two series."""

    __slots__ = ("alpha", "mx", "my", "vx", "vy", "cxy", "n")

    def __init__(self, span: int) -> None:
        self.alpha = 2.0 / (span + 1.0)
        self.mx = self.my = self.vx = self.vy = self.cxy = 0.0
        self.n = 0

    def push(self, x: float, y: float) -> None:
        if self.n == 0:
            self.mx, self.my = x, y
        else:
            a = self.alpha
            dx, dy = x - self.mx, y - self.my
            self.mx += a * dx
            self.my += a * dy
            self.vx = (1.0 - a) * (self.vx + a * dx * dx)
            self.vy = (1.0 - a) * (self.vy + a * dy * dy)
            self.cxy = (1.0 - a) * (self.cxy + a * dx * dy)
        self.n += 1

    def corr(self) -> float:
        d = self.vx * self.vy
        return self.cxy / math.sqrt(d) if d > 1e-24 else 0.0


class PairBreak(NamedTuple):
    """One pair's state: long and short correlation and the break score in [0, 1]."""

    a: str
    b: str
    rho_long: float
    rho_short: float
    score: float


class CorrelationScores(NamedTuple):
    """Result of one update: worst break, joint-rise score and the pairs behind them."""

    break_score: float
    joint_rise: float
    worst_pair: PairBreak | None
    rising: tuple[str, ...]


class CorrelationEngine:
    """Rolling correlations over all metric pairs of one entity (see the module docstring)."""

    def __init__(
        self,
        config: CorrelationConfig | None = None,
        pairs: Iterable[tuple[str, str]] | None = None,
    ) -> None:
        self.cfg = config or CorrelationConfig()
        self._fixed: list[tuple[str, str]] | None = (
            None if pairs is None else [(min(p), max(p)) for p in pairs])
        self._long: dict[tuple[str, str], _EwPair] = {}
        self._short: dict[tuple[str, str], _EwPair] = {}
        self._known: list[str] = []

    def _pairs_for(self, names: list[str]) -> list[tuple[str, str]]:
        if self._fixed is not None:
            return [p for p in self._fixed if p[0] in names and p[1] in names]
        for n in names:
            if n not in self._known:
                self._known.append(n)
        present = sorted(n for n in self._known if n in names)
        return [(a, b) for i, a in enumerate(present) for b in present[i + 1 :]]

    def update(
        self, values: Mapping[str, float], deviations: Mapping[str, float] | None = None
    ) -> CorrelationScores:
        """Add one observation of the metrics present, score breaks and joint rises.

        ``deviations`` are the metrics' robust z-scores from their baselines; they
        drive the joint-rise score.  Correlations are judged before this
        observation is learned, so a break is seen on the observation causing it.
        """
        cfg = self.cfg
        names = list(values)
        worst: PairBreak | None = None
        for key in self._pairs_for(names):
            lp = self._long.get(key)
            if lp is None:
                lp = self._long[key] = _EwPair(cfg.long_span)
                self._short[key] = _EwPair(cfg.short_span)
            sp = self._short[key]
            x, y = values[key[0]], values[key[1]]
            lp.push(x, y)
            sp.push(x, y)
            if lp.n < cfg.min_pairs:
                continue
            rl, rs = lp.corr(), sp.corr()
            if abs(rl) < cfg.usual:
                continue
            # Only a weakening (or reversal) of the usual sign is a break.
            drop = (rl - rs) if rl > 0 else (rs - rl)
            score = min(max(drop, 0.0) / (1.0 + abs(rl)), 1.0)
            if worst is None or score > worst.score:
                worst = PairBreak(key[0], key[1], rl, rs, score)
        rising: tuple[str, ...] = ()
        joint = 0.0
        if deviations:
            up = sorted(
                (n for n, z in deviations.items() if z >= cfg.joint_z),
                key=lambda n: -deviations[n],
            )
            if len(up) >= 2:
                rising = tuple(up)
                # Second-largest z decides: two metrics must agree for a joint rise.
                z2 = deviations[up[1]]
                joint = 1.0 - math.exp(-(z2 - cfg.joint_z) / cfg.joint_z)
        return CorrelationScores(worst.score if worst else 0.0, joint, worst, rising)

    def correlations(self) -> dict[str, tuple[float, float]]:
        """Current ``{"a~b": (rho_long, rho_short)}`` for every tracked pair."""
        return {
            f"{a}~{b}": (self._long[(a, b)].corr(), self._short[(a, b)].corr())
            for (a, b) in self._long
        }

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (pair accumulators and metric order)."""

        def dump(d: dict[tuple[str, str], _EwPair]) -> list[list[Any]]:
            return [[a, b, p.mx, p.my, p.vx, p.vy, p.cxy, p.n] for (a, b), p in d.items()]

        return {
            "config": asdict(self.cfg),
            "pairs": self._fixed,
            "known": list(self._known),
            "long": dump(self._long),
            "short": dump(self._short),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CorrelationEngine:
        """Rebuild an engine from :meth:`state_dict`."""
        eng = cls(CorrelationConfig(**state["config"]), state["pairs"])
        eng._known = list(state["known"])

        def load(rows: list[list[Any]], span: int) -> dict[tuple[str, str], _EwPair]:
            out = {}
            for a, b, mx, my, vx, vy, cxy, n in rows:
                p = _EwPair(span)
                p.mx, p.my, p.vx, p.vy, p.cxy, p.n = mx, my, vx, vy, cxy, int(n)
                out[(a, b)] = p
            return out

        eng._long = load(state["long"], eng.cfg.long_span)
        eng._short = load(state["short"], eng.cfg.short_span)
        return eng
