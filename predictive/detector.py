"""Streaming failure detector for one entity (node, switch, link or flow).

An :class:`EntityDetector` takes one observation at a time - a timestamp and a
dict of metrics, any of which may be missing - and returns an :class:`Update`:

* ``failure_probability`` in [0, 1]: how likely the entity is failing *now*;
* ``alert``: the same probability when this observation is a *new* alarm, 0
  otherwise.  After an alarm, only evidence ``alert_factor`` times stronger
  raises another within ``alert_horizon`` observations.  The controller moves
  traffic on alerts (once per incident) and watches the probability; NAB, which
  rewards only the first detection of a window, is scored on the alert.
* ``components``: drift, rate (of change of the deviation), correlation (break
  or joint rise) and model, each in [0, 1];
* ``top_metrics``: the metrics that contributed most, for the explanation.

Without a model the probability is a noisy-OR of the components, each squashed
from its evidence with a fixed scale (so it is monotone in the evidence but
not calibrated).  With a :class:`~predictive.model.FailureModel` attached, the
probability is the model's calibrated output over :meth:`EntityDetector.features`.

State (every baseline, correlation and alert state) round-trips through
:meth:`EntityDetector.state_dict` / :meth:`EntityDetector.from_state` as plain
JSON-able data, so a controller restart keeps its baselines.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from predictive.baseline import BaselineConfig, DriftScores, MetricBaseline
from predictive.correlation import CorrelationConfig, CorrelationEngine
from predictive.model import FEATURES, FailureModel, squash

COMPONENTS = ("drift", "context", "rate", "correlation", "model")


@dataclass(frozen=True)
class DetectorConfig:
    """All tunables of the detector.  The defaults are the one set used for all of NAB."""

    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    correlation: CorrelationConfig = field(default_factory=CorrelationConfig)
    novelty_scale: float = 0.02  # novelty (range units) at which drift = 1 - 1/e
    window_novelty_weight: float = 0.1  # rolling-window novelty added to all-time novelty
    seasonal_weight: float = 0.0  # weight of the seasonal novelty in the drift evidence
    context_weight: float = 0.7  # the context likelihood's weight against the noisy-OR
    coarse_context_weight: float = 0.8  # the same for the coarse context channel
    rate_scale: float = 2.0  # rate (z per interval) at which rate = 1 - 1/e
    rate_gate: float = 3.0  # |shift| below which the rate does not count
    rate_weight: float = 0.25  # weight of the rate component in the noisy-OR
    correlation_weight: float = 0.5  # weight of the correlation component
    alert_horizon: int = 100  # observations an alarm suppresses weaker ones for
    alert_factor: float = 2.0  # evidence ratio needed to re-alarm inside the horizon
    recent: int = 12  # observations the drift evidence is held for (and novelty_recent)
    # Per metric name, its BaselineConfig.resolution (others use baseline.resolution).
    resolution: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.recent < 1 or self.recent >= max(self.alert_horizon, 2):
            raise ValueError("recent must be >= 1 and shorter than alert_horizon")
        if self.novelty_scale <= 0 or self.rate_scale <= 0:
            raise ValueError("novelty_scale and rate_scale must be positive")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DetectorConfig:
        d = dict(d)
        d["baseline"] = BaselineConfig(**d.get("baseline", {}))
        d["correlation"] = CorrelationConfig(**d.get("correlation", {}))
        return cls(**d)


class AlertGate:
    """Turns a probability stream into alarms: the first of an incident, not its repeats.

    A probability passes as an alarm unless an alarm was raised within the last
    ``horizon`` observations and the new evidence (``-log(1 - p)``) is not
    ``factor`` times stronger than that alarm's.  Whatever threshold the caller
    applies later, each incident then yields one alarm, plus one more only if it
    clearly escalates.
    """

    __slots__ = ("horizon", "factor", "peak", "age")

    def __init__(self, horizon: int, factor: float) -> None:
        if horizon < 0 or factor < 1.0:
            raise ValueError("alert horizon must be >= 0 and factor >= 1")
        self.horizon = horizon
        self.factor = factor
        self.peak = 0.0  # evidence of the last alarm
        self.age = 1 << 30  # observations since the last alarm

    def __call__(self, prob: float) -> float:
        self.age += 1
        if prob <= 0.0:
            return 0.0
        ev = -math.log1p(-prob) if prob < 1.0 else 50.0
        if self.age < self.horizon and ev <= self.peak * self.factor:
            return 0.0
        self.peak = ev
        self.age = 0
        return prob

    def state_dict(self) -> dict[str, float]:
        return {"peak": self.peak, "age": self.age}


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
    """Why an engine thinks what it thinks about ``entity``, from its latest update."""
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


class EntityDetector:
    """Baselines per metric + a correlation engine + optional model, for one entity."""

    def __init__(
        self, config: DetectorConfig | None = None, model: FailureModel | None = None
    ) -> None:
        self.cfg = config or DetectorConfig()
        self.model = model
        self._baselines: dict[str, MetricBaseline] = {}
        self._corr = CorrelationEngine(self.cfg.correlation)
        self._recent: deque[float] = deque(maxlen=self.cfg.recent)
        self._gate = AlertGate(self.cfg.alert_horizon, self.cfg.alert_factor)
        self._features: list[float] = [0.0] * len(FEATURES)
        self._top: tuple[list[tuple[str, float]], int] = ([], self.cfg.recent)
        self._last: Update | None = None
        self.n = 0

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(self._baselines)

    @property
    def last(self) -> Update | None:
        """The most recent update (None before the first observation)."""
        return self._last

    def features(self) -> list[float]:
        """Model features of the latest observation, in :data:`~predictive.model.FEATURES` order."""
        return list(self._features)

    def update(self, timestamp: float, metrics: Mapping[str, float]) -> Update:
        """Add one observation; metrics that are missing, None or NaN are skipped."""
        cfg = self.cfg
        t = float(timestamp)
        if t != t or math.isinf(t):
            raise ValueError("timestamp must be a finite number of seconds")
        present: dict[str, float] = {}
        scores: dict[str, DriftScores] = {}
        for name, value in metrics.items():
            if value is None:
                continue
            v = float(value)
            if v != v or math.isinf(v):
                continue
            b = self._baselines.get(name)
            if b is None:
                base = cfg.baseline
                if name in cfg.resolution:
                    base = replace(base, resolution=float(cfg.resolution[name]))
                b = self._baselines[name] = MetricBaseline(base)
            present[name] = v
            scores[name] = b.update(t, v)
        self.n += 1
        # Per-metric drift and rate evidence; keep the worst metric's scores for features.
        contrib: list[tuple[str, float]] = []
        drift_ev = 0.0
        rate_ev = 0.0
        worst: DriftScores | None = None
        worst_ev = -1.0
        p_ctx = 0.0  # weighted context likelihood, fine or coarse channel
        p_fine = 0.0
        p_coarse = 0.0
        deviations: dict[str, float] = {}
        for name, s in scores.items():
            if not s.ready:
                continue
            deviations[name] = s.deviation
            ev = s.novelty_all + cfg.window_novelty_weight * s.novelty
            sev = cfg.seasonal_weight * s.seasonal
            if sev > ev:
                ev = sev
            sc = cfg.context_weight * s.context
            cc = cfg.coarse_context_weight * s.context_coarse
            if cc > sc:
                sc = cc
            if sc > p_ctx:
                p_ctx = sc
            if s.context > p_fine:
                p_fine = s.context
            if s.context_coarse > p_coarse:
                p_coarse = s.context_coarse
            aligned = s.rate if s.shift >= 0.0 else -s.rate
            r = aligned if (aligned > 0.0 and abs(s.shift) >= cfg.rate_gate) else 0.0
            if ev > drift_ev:
                drift_ev = ev
            if r > rate_ev:
                rate_ev = r
            c = (
                squash(ev, cfg.novelty_scale)
                + cfg.rate_weight * squash(r, cfg.rate_scale)
                + sc
            )
            if c > 0.0:
                contrib.append((name, c))
            if ev + abs(s.shift) * 1e-3 > worst_ev:
                worst, worst_ev = s, ev + abs(s.shift) * 1e-3
        corr = self._corr.update(present, deviations) if len(present) > 1 else None
        # The drift probability holds the strongest evidence of the last few rows, so a
        # failing metric that wobbles just under its new peak does not read as healthy.
        self._recent.append(drift_ev)
        held = max(self._recent)
        p_drift = squash(held, cfg.novelty_scale)
        p_rate = squash(rate_ev, cfg.rate_scale)
        p_corr = max(corr.break_score, corr.joint_rise) if corr else 0.0
        if corr and corr.worst_pair and corr.break_score > 0.0:
            pair = corr.worst_pair
            contrib.append((f"{pair.a}~{pair.b}", cfg.correlation_weight * corr.break_score))
        f = self._features
        if worst is not None:
            f[0], f[1] = worst.novelty, worst.seasonal
            f[2], f[3] = abs(worst.deviation), abs(worst.shift)
            f[4] = worst.rate if worst.shift >= 0.0 else -worst.rate
            f[5] = worst.volatility
        else:
            f[0] = f[1] = f[2] = f[3] = f[4] = f[5] = 0.0
        f[6] = corr.break_score if corr else 0.0
        f[7] = corr.joint_rise if corr else 0.0
        f[8] = held
        f[9] = worst.novelty_all if worst is not None else 0.0
        f[10] = p_fine
        f[11] = p_coarse
        ready = worst is not None
        p_model = self.model.probability(f) if (self.model is not None and ready) else 0.0
        if self.model is not None:
            prob = p_model
        else:
            prob = 1.0 - (1.0 - p_drift) * (1.0 - cfg.rate_weight * p_rate) * (
                1.0 - cfg.correlation_weight * p_corr
            )
            if p_ctx > prob:
                prob = p_ctx
        alert = self._gate(prob)
        contrib.sort(key=lambda kv: -kv[1])
        if contrib:
            self._top = (contrib[:3], 0)
        elif held > 0.0 and self._top[1] < cfg.recent:
            contrib = self._top[0]  # still explained by the metric behind the held evidence
        if not contrib or self._top[1] >= cfg.recent:
            self._top = ([], cfg.recent)
        self._top = (self._top[0], self._top[1] + 1)
        up = Update(
            timestamp=t,
            failure_probability=prob,
            alert=alert,
            components={
                "drift": p_drift,
                "context": p_fine if p_fine > p_coarse else p_coarse,
                "rate": p_rate,
                "correlation": p_corr,
                "model": p_model,
            },
            top_metrics=tuple((n, round(c, 6)) for n, c in contrib[:3]),
            ready=ready,
        )
        self._last = up
        return up

    # -- persistence -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state; the model is not included (it is shared and versioned)."""
        return {
            "config": asdict(self.cfg),
            "n": self.n,
            "baselines": {k: b.state_dict() for k, b in self._baselines.items()},
            "correlation": self._corr.state_dict(),
            "recent": list(self._recent),
            "alert": self._gate.state_dict(),
            "features": list(self._features),
            "top": [[list(kv) for kv in self._top[0]], self._top[1]],
            "last": self._last.as_dict() if self._last else None,
        }

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any], model: FailureModel | None = None
    ) -> EntityDetector:
        """Rebuild a detector from :meth:`state_dict`; it continues with identical outputs."""
        d = cls(DetectorConfig.from_dict(state["config"]), model)
        d.n = int(state["n"])
        d._baselines = {k: MetricBaseline.from_state(v) for k, v in state["baselines"].items()}
        d._corr = CorrelationEngine.from_state(state["correlation"])
        d._recent = deque((float(v) for v in state["recent"]), maxlen=d.cfg.recent)
        d._gate.peak = float(state["alert"]["peak"])
        d._gate.age = int(state["alert"]["age"])
        d._features = [float(v) for v in state["features"]]
        d._top = ([(str(n), float(c)) for n, c in state["top"][0]], int(state["top"][1]))
        last = state.get("last")
        if last:
            d._last = Update(
                timestamp=float(last["timestamp"]),
                failure_probability=float(last["failure_probability"]),
                alert=float(last["alert"]),
                components={k: float(v) for k, v in last["components"].items()},
                top_metrics=tuple((str(n), float(c)) for n, c in last["top_metrics"]),
                ready=bool(last["ready"]),
            )
        return d
