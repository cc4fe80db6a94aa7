"""Node health: one score per node and interval, from probes and the predictive engine.

The flow monitor probes each service node every interval (TCP connect or HTTP
GET latency, loss, error rate; CPU and memory where an agent reports them)
and calls :meth:`HealthMonitor.observe`. Two views come out of the same data:

- the **health score** (0 bad .. 1 good) says how well the node serves *now*.
  Each metric is a factor in [0, 1] and the score is their product, each factor
  raised to its weight, so a node that drops every probe scores 0 whatever its
  CPU says, and metrics an agent does not report simply do not count;
- the **failure probability** comes from the predictive engine, which learns
  each node's own baseline and flags drift *before* the node fails (the reason
  for this controller). It enters the score as one more factor, ``1 - p``, once
  the engine has seen enough intervals to be ready.

The score is smoothed (one noisy probe does not move it much) and a slow
average of it is kept as the node's *history*, which the shadow table uses to
prefer nodes that have served well for long.

**Loss is judged with a confidence bound, not as a share of a few probes.**
A round sends a handful of probes (3 per node), so on a path that drops 1 %
of packets, one probe in three is lost now and then, and two rounds in a row
with a lost probe are bound to come in a long run. Read as a share, that was
"33 % loss": the loss factor fell to 0.44 and the engine, which had only ever
seen 0, read it as novel drift (p = 0.67), and together they tripped a
healthy node (issue 10). Now, when the probe count is known (``probes`` in
the metrics), the loss that counts is the lower end of the Wilson score
interval over the probes of the last ``loss_window`` intervals: the loss rate
the node has *at least*, at ``loss_z`` standard errors. One lost probe in 30
is then 0.6 %, not 33 %; a real 30 % loss still shows once enough probes
agree. A round in which *every* probe went unanswered is not a statistic but
a fact about now (the node does not answer), so it still counts as loss 1.0
at once: dead nodes are not judged any slower.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from predictive.trend import TrendEngine

METRICS = ("latency_ms", "loss", "error_rate", "cpu", "mem")


@dataclass(frozen=True)
class ProbeResult:
    """One active probe of a node: did it answer, how fast, and was the answer an error."""

    ok: bool
    latency_ms: float | None = None
    error: bool = False  # answered, but with a failure (HTTP 5xx, a refused request)


PROBES = "probes"  # metrics key: how many probes the interval's ``loss`` is a share of
LATENCY_FLOOR = "latency_floor_ms"  # metrics key: the fastest answer of the interval


def probe_metrics(results: Iterable[ProbeResult]) -> dict[str, float]:
    """Summarise one interval's probes as the metrics :meth:`HealthMonitor.observe` takes.

    Latency is the median of answered probes (one slow probe is not a slow
    node); loss counts unanswered probes, and ``probes`` says out of how many,
    so the monitor can weigh the evidence; error rate is over answered probes.
    The fastest answer is kept too (``latency_floor_ms``): jitter only adds
    delay, so the predictive engine reads latency trends from it.
    """
    results = list(results)
    if not results:
        return {}
    answered = [r for r in results if r.ok]
    out = {"loss": 1.0 - len(answered) / len(results), PROBES: float(len(results))}
    if answered:
        out["error_rate"] = sum(r.error for r in answered) / len(answered)
        latencies = [r.latency_ms for r in answered if r.latency_ms is not None]
        if latencies:
            out["latency_ms"] = float(statistics.median(latencies))
            out[LATENCY_FLOOR] = float(min(latencies))
    return out


@dataclass(frozen=True)
class HealthSettings:
    """How metrics become factors, and how sharply each factor penalises (its weight)."""

    latency_good_ms: float = 5.0  # at or below: no penalty
    latency_scale_ms: float = 100.0  # extra latency that halves the latency factor
    cpu_knee: float = 0.85  # CPU fraction above which the factor falls to 0 at 100%
    mem_knee: float = 0.9
    # Loss is the Wilson lower bound over the probes of the last ``loss_window``
    # intervals, ``loss_z`` standard errors below the observed share (1.96: the
    # usual 95 % two-sided interval, so 97.5 % sure of at least this much loss).
    loss_window: int = 10
    loss_z: float = 1.96
    smoothing: float = 0.5  # EWMA weight of the newest score
    history_alpha: float = 0.05  # EWMA weight of the newest score in the long-run history
    weights: Mapping[str, float] = field(default_factory=lambda: {
        "latency_ms": 1.0, "loss": 2.0, "error_rate": 2.0, "cpu": 1.0, "mem": 1.0,
        "prediction": 1.0,
    })

    def __post_init__(self) -> None:
        for name, w in self.weights.items():
            if name not in (*METRICS, "prediction"):
                raise ValueError(f"health weights: unknown metric {name!r}")
            if w < 0:
                raise ValueError(f"health weights: {name!r} must be >= 0, got {w}")
        if self.loss_window < 1:
            raise ValueError("health loss_window must be >= 1")
        if not 0.0 <= self.loss_z < math.inf:
            raise ValueError("health loss_z must be a finite number >= 0")
        if not 0 < self.smoothing <= 1 or not 0 < self.history_alpha <= 1:
            raise ValueError("health smoothing and history_alpha must be in (0, 1]")


@dataclass(frozen=True)
class NodeHealth:
    """What one interval told us about a node."""

    node: str
    timestamp: float
    score: float  # smoothed health, 0..1
    raw: float  # this interval's health before smoothing
    history: float  # long-run average health (historical performance)
    failure_probability: float
    alert: float
    ready: bool  # the predictive engine has a baseline for this node
    observations: int
    factors: dict[str, float]  # per metric, 0..1 (1 = no penalty)
    top_metrics: tuple[tuple[str, float], ...] = ()
    components: dict[str, float] = field(default_factory=dict)

    @property
    def available(self) -> bool:
        """The node answered at least some probes this interval."""
        return self.factors.get("loss", 1.0) > 0.0

    def reason(self) -> dict[str, Any]:
        """The evidence behind a decision about this node, JSON-able, for event logs."""
        worst = sorted((v, k) for k, v in self.factors.items() if v < 1.0)
        return {
            "node": self.node,
            "timestamp": self.timestamp,
            "health": round(self.score, 4),
            "failure_probability": round(self.failure_probability, 4),
            "top_metrics": [[m, c] for m, c in self.top_metrics],
            "weak_factors": [[k, round(v, 4)] for v, k in worst],
        }


def node_engine() -> TrendEngine:
    """The predictive engine for node and switch health: sustained worsening.

    Not the general novelty detector: a node that shows a value it never
    showed before (a level shift, a short slow spell) is not thereby about to
    fail, and moving a service off it is a disruption of its own. The trend
    engine (:mod:`predictive.trend`) flags metrics that keep getting worse.
    """
    return TrendEngine()


class HealthMonitor:
    """Per-node health scores, with a predictive engine entity ``node:<name>`` per node."""

    def __init__(
        self, engine: TrendEngine | None = None, settings: HealthSettings | None = None
    ) -> None:
        self.engine = engine
        self.settings = settings or HealthSettings()
        self._last: dict[str, NodeHealth] = {}
        self._probes: dict[str, deque[tuple[int, int]]] = {}  # (lost, sent) per interval

    @staticmethod
    def entity(node: str) -> str:
        return f"node:{node}"

    def factors(self, metrics: Mapping[str, float | None]) -> dict[str, float]:
        """Each reported metric as a factor in [0, 1]; missing or NaN metrics are skipped."""
        s = self.settings
        out: dict[str, float] = {}
        for name in METRICS:
            value = metrics.get(name)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            v = float(value)
            if name == "latency_ms":
                out[name] = 1.0 / (1.0 + max(0.0, v - s.latency_good_ms) / s.latency_scale_ms)
            elif name in ("loss", "error_rate"):
                out[name] = 1.0 - _clamp(v)
            else:
                knee = s.cpu_knee if name == "cpu" else s.mem_knee
                out[name] = 1.0 if v <= knee else _clamp((1.0 - v) / (1.0 - knee))
        return out

    def observe(
        self, node: str, ts: float, metrics: Mapping[str, float | None]
    ) -> NodeHealth:
        """Take one interval's metrics for ``node``; return its new health."""
        s = self.settings
        metrics = self.judge_loss(node, metrics)
        factors = self.factors(metrics)
        prob, alert, ready, components = 0.0, 0.0, False, {}
        top: tuple[tuple[str, float], ...] = ()
        if self.engine is not None:
            up = self.engine.update(self.entity(node), ts, self.engine_view(node, metrics))
            prob, alert, ready = up.failure_probability, up.alert, up.ready
            top, components = up.top_metrics, dict(up.components)
            if ready:
                factors["prediction"] = 1.0 - _clamp(prob)
        raw = 1.0
        for name, f in factors.items():
            w = s.weights.get(name, 0.0)
            if w:
                raw *= f ** w
        last = self._last.get(node)
        if last is None:
            score, history, n = raw, raw, 1
        else:
            score = s.smoothing * raw + (1 - s.smoothing) * last.score
            history = s.history_alpha * raw + (1 - s.history_alpha) * last.history
            n = last.observations + 1
        health = NodeHealth(
            node=node, timestamp=ts, score=score, raw=raw, history=history,
            failure_probability=prob, alert=alert, ready=ready, observations=n,
            factors=factors, top_metrics=tuple(top), components=components,
        )
        self._last[node] = health
        return health

    def judge_loss(self, node: str, metrics: Mapping[str, float | None]
                   ) -> dict[str, float | None]:
        """``metrics`` with ``loss`` as the evidence supports it (module docstring).

        Without a probe count, ``loss`` is taken as given (an agent's own
        measurement); ``probes`` itself is consumed here and is no metric.
        """
        out = {k: v for k, v in metrics.items() if k != PROBES}
        loss, probes = metrics.get("loss"), metrics.get(PROBES)
        if loss is None or probes is None or not probes >= 1 or not 0.0 <= loss <= 1.0:
            return out
        sent = int(probes)
        lost = round(loss * sent)
        window = self._probes.setdefault(node, deque(maxlen=self.settings.loss_window))
        window.append((lost, sent))
        if lost == sent:
            out["loss"] = 1.0  # nothing answered this interval: unreachable now
        else:
            out["loss"] = wilson_lower(sum(lt for lt, _ in window),
                                       sum(st for _, st in window), self.settings.loss_z)
        return out

    def engine_view(self, node: str, metrics: Mapping[str, float | None]) -> dict[str, float]:
        """The metrics as the predictive engine gets them: latency as the interval's
        fastest answer where the probes gave one (jitter only adds delay)."""
        out = {name: float(v) for name, v in metrics.items()
               if v is not None and name != LATENCY_FLOOR and math.isfinite(float(v))}
        floor = metrics.get(LATENCY_FLOOR)
        if floor is not None and math.isfinite(float(floor)):
            out["latency_ms"] = float(floor)
        return out

    def get(self, node: str) -> NodeHealth | None:
        return self._last.get(node)

    def snapshot(self) -> dict[str, NodeHealth]:
        return dict(self._last)

    def forget(self, node: str) -> None:
        self._last.pop(node, None)
        self._probes.pop(node, None)
        if self.engine is not None:
            self.engine.forget(self.entity(node))


class CounterRates:
    """Turns cumulative OpenFlow counters (port or flow stats) into per-second rates.

    A counter that goes down was reset (switch restart, flow re-added): that
    sample gives no rate instead of a huge negative one.
    """

    def __init__(self) -> None:
        self._last: dict[Any, tuple[float, float]] = {}

    def update(self, key: Any, ts: float, value: float) -> float | None:
        prev = self._last.get(key)
        self._last[key] = (ts, value)
        if prev is None or ts <= prev[0] or value < prev[1]:
            return None
        return (value - prev[1]) / (ts - prev[0])


def wilson_lower(failures: int, trials: int, z: float) -> float:
    """Lower end of the Wilson score interval for a share of ``failures`` in ``trials``.

    Unlike the plain share (or the normal approximation), it stays sensible
    for a few trials and shares near 0: 1 in 3 gives 0.06 at z = 1.96, 1 in 30
    gives 0.006, 0 in any number gives 0. No trials: 0 (no evidence of loss).
    """
    if trials <= 0 or failures <= 0:
        return 0.0
    n = float(trials)
    p = min(failures, trials) / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z2 / n))


def _clamp(v: float) -> float:
    return 0.0 if v < 0.0 else 1.0 if v > 1.0 else v
