"""Sustained worsening: the failure probability of a node or switch from its probe metrics.

A general anomaly detector flags what a series has never shown (the one
shadownet had before, and, in part, the failure model of
:mod:`predictive.model`). For failover that is the wrong question: a node whose latency
steps up once and stays there, or that has a short slow spell every minute,
shows "new" values, yet it is not about to die, and moving a service off it
is a needless disruption. On random degradation patterns the novelty reading
moved services needlessly on 49 of 90 benign ones (``bench/failover_sim.py``).

What goes before a death that can be seen coming is *worsening that goes
on*: latency climbing as a queue or a leak grows, loss spreading. So the
question asked here is "is this metric still getting worse?", and it must be
answered yes by two kinds of evidence at once:

- **every stretch is worse than the one before.** The last ``segments``
  stretches of ``segment`` intervals each have a median, and each median must
  exceed the previous by at least the metric's resolution. A step (level
  shift, or a step before a death) raises one stretch over the one before;
  the next stretch sits at the same level, so a step never passes. Flaps come
  back down, so they never pass either;
- **the rise is significant.** A Mann-Kendall test over the same intervals
  gives a z score (rank based, so it needs no noise model and one wild value
  counts as one); the probability is ``Φ(z - z_required)``, 0.5 at
  ``z_required`` standard errors.

Latency is read as its *floor*: the lowest value of the last ``envelope``
intervals (each interval's value is already its probes' minimum where the
caller has it). Jitter only adds delay, so the floor stays put when a node
gets noisier; it rises when every answer gets slower, which is what a queue
or an overloaded node does.

Nothing here knows about OpenFlow, probes or services; the controller's
health monitor feeds it (``controller.services.health``).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Update:
    """What one observation told us about the entity."""

    timestamp: float
    failure_probability: float
    alert: float
    components: dict[str, float]
    top_metrics: tuple[tuple[str, float], ...]
    ready: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "failure_probability": self.failure_probability,
            "alert": self.alert,
            "components": dict(self.components),
            "top_metrics": [list(m) for m in self.top_metrics],
            "ready": self.ready,
        }


def explanation(entity: str, observations: int, metrics: list[str], last: Update
                ) -> dict[str, Any]:
    """Why the engine thinks what it thinks about ``entity``, from its latest update."""
    return {
        "entity": entity,
        "known": True,
        "observations": observations,
        "metrics": metrics,
        "timestamp": last.timestamp,
        "failure_probability": last.failure_probability,
        "alert": last.alert,
        "ready": last.ready,
        "components": dict(last.components),
        "top_metrics": [{"metric": m, "contribution": c} for m, c in last.top_metrics],
    }


STATE_FORMAT = "shadownet-trend-state"
STATE_VERSION = 1


@dataclass(frozen=True)
class TrendConfig:
    """How long a rise must go on, and how sure it must be, before it counts."""

    segment: int = 3  # intervals per stretch
    segments: int = 4  # stretches, each worse than the one before
    z_required: float = 3.0  # z score of the weakest rise at which the probability is 0.5
    # Intervals of history a rise must climb above: a node whose latency
    # rose this high before and came back (a daily cycle, a GC sawtooth) is
    # not failing when it does so again.
    memory: int = 600
    # Least rise between stretches that counts, per metric (units of the
    # metric); a metric not listed uses ``default_resolution``.
    resolution: Mapping[str, float] = field(default_factory=lambda: {
        "latency_ms": 1.0, "loss": 0.02, "error_rate": 0.02, "cpu": 0.05, "mem": 0.05,
        "drops_per_s": 1.0, "errors_per_s": 1.0,
    })
    default_resolution: float = 0.0

    def __post_init__(self) -> None:
        if self.segment < 2 or self.segments < 3:
            raise ValueError("trend: segment >= 2 and segments >= 3")
        if not 0.0 <= self.z_required < math.inf:
            raise ValueError("trend: z_required must be a finite number >= 0")

    @property
    def window(self) -> int:
        return self.segment * self.segments


def normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


class TrendDetector:
    """One entity's metrics, and whether any of them is still getting worse."""

    def __init__(self, config: TrendConfig | None = None) -> None:
        self.cfg = config or TrendConfig()
        self.n = 0
        self.last: Update | None = None
        self._series: dict[str, deque[float]] = {}  # per metric, the last window values
        # Per metric, the median of each ``segment`` intervals, for ``memory`` intervals
        # before the window: the highest level the metric has shown and left.
        self._levels: dict[str, deque[float]] = {}

    @property
    def metrics(self) -> list[str]:
        return list(self._series)

    def update(self, timestamp: float, metrics: Mapping[str, float]) -> Update:
        """Add one interval's metrics (missing, None or non-finite ones are skipped)."""
        cfg = self.cfg
        t = float(timestamp)
        if not math.isfinite(t):
            raise ValueError("timestamp must be a finite number of seconds")
        for name, value in metrics.items():
            if value is not None and math.isfinite(v := float(value)):
                series = self._series.setdefault(name, deque(maxlen=cfg.window))
                if len(series) == cfg.window:  # the oldest value leaves the window
                    self._levels.setdefault(name, deque(maxlen=cfg.memory)).append(
                        statistics.median(list(series)[:cfg.segment]))
                series.append(v)
        self.n += 1
        components: dict[str, float] = {}
        evidence: list[tuple[str, float]] = []
        ready = False
        for name, series in self._series.items():
            if len(series) < cfg.window:
                continue
            ready = True
            values = list(series)
            rise, z = self.rise(values)
            step = cfg.resolution.get(name, cfg.default_resolution)
            # How far the latest stretch is above the highest level of the memory.
            seen = self._levels.get(name)
            above = statistics.median(values[-cfg.segment:]) - (max(seen) if seen else -math.inf)
            components[f"rise:{name}"] = round(rise, 4)
            components[f"z:{name}"] = round(min(z, 99.0), 3)
            if rise >= step and rise > 0.0 and above >= step:
                evidence.append((name, round(normal_cdf(z - cfg.z_required), 4)))
        evidence.sort(key=lambda e: -e[1])
        p = evidence[0][1] if evidence else 0.0
        self.last = Update(t, p, p, components, tuple(evidence[:3]), ready)
        return self.last

    def rise(self, values: list[float]) -> tuple[float, float]:
        """The weakest rise between consecutive stretches' medians, and its z score.

        The z score divides the rise by the standard error of a difference of
        two medians of ``segment`` values (1.2533 σ √(2/k)). σ is the noise,
        read from the differences between consecutive values: their median
        absolute deviation from their own median, over √2. A trend moves every
        difference alike and a step moves one, so neither counts as noise: a
        clean ramp or staircase is as sure as its rise, a jittery one is not.
        Negative rise: some stretch fell.
        """
        k = self.cfg.segment
        stretches = [values[i:i + k] for i in range(0, len(values), k)]
        medians = [statistics.median(s) for s in stretches]
        rise = min(b - a for a, b in itertools.pairwise(medians))
        diffs = [b - a for a, b in itertools.pairwise(values)]
        centre = statistics.median(diffs)
        spread = statistics.median(abs(d - centre) for d in diffs) / math.sqrt(2.0)
        se = 1.2533 * 1.4826 * spread * math.sqrt(2.0 / k)
        if se <= 0.0:
            return rise, math.inf if rise > 0 else 0.0
        return rise, rise / se

    def state_dict(self) -> dict[str, Any]:
        return {"config": {**asdict(self.cfg), "resolution": dict(self.cfg.resolution)},
                "n": self.n, "series": {k: list(v) for k, v in self._series.items()},
                "levels": {k: list(v) for k, v in self._levels.items()}}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> TrendDetector:
        try:
            det = cls(TrendConfig(**state["config"]))
            det.n = int(state["n"])
            for name, values in state["series"].items():
                det._series[str(name)] = deque((float(v) for v in values),
                                               maxlen=det.cfg.window)
            for name, values in state["levels"].items():
                det._levels[str(name)] = deque((float(v) for v in values),
                                               maxlen=det.cfg.memory)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a trend detector state ({exc})") from None
        return det


class TrendEngine:
    """Per-entity :class:`TrendDetector` behind the calls the controller makes of an
    engine: update, probability, explain, entities, forget, and state save/restore."""

    def __init__(self, config: TrendConfig | None = None) -> None:
        self.config = config or TrendConfig()
        self._entities: dict[str, TrendDetector] = {}

    def update(self, entity: str, timestamp: float, metrics: Mapping[str, float]) -> Update:
        det = self._entities.get(entity)
        if det is None:
            det = self._entities[entity] = TrendDetector(self.config)
        return det.update(timestamp, metrics)

    def probability(self, entity: str) -> float:
        det = self._entities.get(entity)
        return det.last.failure_probability if det is not None and det.last else 0.0

    def explain(self, entity: str) -> dict[str, Any]:
        det = self._entities.get(entity)
        if det is None or det.last is None:
            return {"entity": entity, "known": False}
        return {**explanation(entity, det.n, det.metrics, det.last), "method": "trend"}

    def entities(self) -> list[str]:
        return list(self._entities)

    def forget(self, entity: str) -> None:
        self._entities.pop(entity, None)

    def state_dict(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "version": STATE_VERSION,
                "entities": {k: d.state_dict() for k, d in self._entities.items()}}

    def restore_state(self, state: object) -> None:
        """Take back :meth:`state_dict`'s output, replacing this engine's entities."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError("not a shadownet trend state")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"state version {state.get('version')} is not {STATE_VERSION}")
        entities = state.get("entities")
        if not isinstance(entities, dict):
            raise ValueError("not a shadownet trend state (no entities)")
        self._entities = {str(k): TrendDetector.from_state(v) for k, v in entities.items()}
