"""Node health: probe summaries, factors, smoothing, history, and the predictive engine."""

from __future__ import annotations

import pytest

from controller.services.health import (
    CounterRates,
    HealthMonitor,
    HealthSettings,
    ProbeResult,
    probe_metrics,
)
from predictive.engine import PredictiveEngine


def test_probe_summary_median_latency_loss_and_errors():
    results = [ProbeResult(True, 2.0), ProbeResult(True, 300.0), ProbeResult(True, 4.0, True),
               ProbeResult(False)]
    m = probe_metrics(results)
    assert m == {"loss": 0.25, "error_rate": pytest.approx(1 / 3), "latency_ms": 4.0}
    assert probe_metrics([ProbeResult(False), ProbeResult(False)]) == {"loss": 1.0}
    assert probe_metrics([]) == {}


def test_factors_and_score():
    mon = HealthMonitor()
    f = mon.factors({"latency_ms": 105.0, "loss": 0.1, "cpu": 0.5, "mem": None,
                     "error_rate": float("nan")})
    assert f == {"latency_ms": pytest.approx(0.5), "loss": pytest.approx(0.9), "cpu": 1.0}
    h = mon.observe("h2", 0.0, {"latency_ms": 105.0, "loss": 0.1, "cpu": 0.5})
    # Product of factors raised to their weights (loss weighs 2).
    assert h.raw == pytest.approx(0.5 * 0.9**2)
    assert h.score == h.raw == h.history and h.observations == 1
    assert mon.observe("h9", 0.0, {"cpu": 0.95}).raw == pytest.approx((1 - 0.95) / 0.15)


def test_unanswered_node_scores_zero_whatever_else_it_reports():
    h = HealthMonitor().observe("h2", 0.0, {"loss": 1.0, "cpu": 0.1, "latency_ms": 1.0})
    assert h.raw == 0.0 and not h.available
    assert ["loss", 0.0] in h.reason()["weak_factors"]


def test_smoothing_and_history():
    mon = HealthMonitor(settings=HealthSettings(smoothing=0.5, history_alpha=0.1))
    mon.observe("h2", 0.0, {"loss": 0.0})
    h = mon.observe("h2", 1.0, {"loss": 1.0})
    assert h.raw == 0.0 and h.score == pytest.approx(0.5) and h.history == pytest.approx(0.9)
    assert mon.get("h2") is h and set(mon.snapshot()) == {"h2"}


def test_bad_settings_refused():
    with pytest.raises(ValueError, match="unknown metric 'disk'"):
        HealthSettings(weights={"disk": 1.0})
    with pytest.raises(ValueError, match="'loss' must be >= 0"):
        HealthSettings(weights={"loss": -1.0})


def test_predictive_engine_drift_lowers_health_and_is_explained():
    engine = PredictiveEngine()
    mon = HealthMonitor(engine)
    for t in range(60):
        h = mon.observe("h2", float(t), {"latency_ms": 2.0 + 0.1 * (t % 5), "loss": 0.0})
    assert h.ready and h.failure_probability < 0.5
    calm = h.score
    for t in range(60, 64):
        h = mon.observe("h2", float(t), {"latency_ms": 40.0, "loss": 0.0})
    assert h.failure_probability > 0.7
    assert h.factors["prediction"] == pytest.approx(1 - h.failure_probability)
    assert h.score < calm / 2
    assert h.reason()["top_metrics"][0][0] == "latency_ms"
    assert "node:h2" in engine.entities()
    mon.forget("h2")
    assert "node:h2" not in engine.entities() and mon.get("h2") is None


def test_counter_rates_ignore_resets():
    rates = CounterRates()
    assert rates.update("s1:1", 0.0, 100) is None
    assert rates.update("s1:1", 2.0, 300) == 100.0
    assert rates.update("s1:1", 3.0, 10) is None  # counter reset
    assert rates.update("s1:1", 4.0, 20) == 10.0


def _engine_run(latencies: list[float]) -> list[float]:
    from controller.services.health import node_engine

    monitor = HealthMonitor(node_engine())
    return [monitor.observe("n", float(i), {"latency_ms": lat, "loss": 0.0}).failure_probability
            for i, lat in enumerate(latencies)]


def test_engine_ignores_millisecond_wobble_on_a_quiet_node():
    quiet = [1.2] * 40 + [4.0, 1.1, 4.5, 4.2, 1.3] * 4
    assert max(_engine_run(quiet)) == 0.0


def test_engine_predicts_a_quiet_node_slowing_down():
    probs = _engine_run([1.2] * 40 + [25.0] * 4 + [55.0] * 4)
    assert max(probs[:40]) == 0.0
    assert max(probs[40:44]) > 0.5 and probs[-1] >= 0.8


def test_engine_learns_a_noisy_node_is_noisy():
    import random

    rng = random.Random(7)
    noisy = [1.0 + rng.uniform(0, 30) for _ in range(200)]
    assert max(_engine_run(noisy)[60:]) < 0.7


def test_engine_view_uses_median_of_recent_intervals():
    monitor = HealthMonitor()
    views = [monitor.engine_view("n", {"latency_ms": v}) for v in (2.0, 2.0, 400.0, 2.0)]
    assert [v["latency_ms"] for v in views] == [0.0, 0.0, 0.0, 0.0]
