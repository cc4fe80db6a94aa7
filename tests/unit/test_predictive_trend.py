"""The trend engine: worsening that goes on is predicted; steps, flaps and noise are not."""

from __future__ import annotations

import random

import pytest

from predictive.trend import TrendConfig, TrendDetector, TrendEngine


def _probs(values: list[float], metric: str = "latency_ms", seed: int = 1,
           noise: float = 0.0) -> list[float]:
    rng = random.Random(seed)
    det = TrendDetector()
    return [det.update(float(i), {metric: v + rng.uniform(0.0, noise)}).failure_probability
            for i, v in enumerate(values)]


def test_a_ramp_is_predicted_once_it_has_gone_on_for_the_window():
    window = TrendConfig().window
    probs = _probs([5.0] * 40 + [5.0 + 2.0 * i for i in range(40)], noise=3.0)
    assert max(probs[:40]) < 0.5
    assert max(probs[40:40 + window // 2]) < 0.7  # not before the rise has gone on
    assert max(probs[40:]) >= 0.9


@pytest.mark.parametrize("seed", range(10))
def test_a_level_shift_is_not_a_trend(seed):
    probs = _probs([5.0] * 40 + [60.0] * 80, noise=10.0, seed=seed)
    assert max(probs) < 0.7


@pytest.mark.parametrize("seed", range(10))
def test_flaps_are_not_a_trend(seed):
    flapping = [150.0 if i % 30 < 3 else 5.0 for i in range(200)]
    assert max(_probs(flapping, noise=10.0, seed=seed)) < 0.7


@pytest.mark.parametrize("seed", range(10))
def test_pure_noise_is_not_a_trend(seed):
    assert max(_probs([5.0] * 300, noise=30.0, seed=seed)) < 0.7


def test_spreading_loss_is_predicted():
    probs = _probs([0.0] * 30 + [min(0.6, 0.01 * i) for i in range(60)], metric="loss")
    assert max(probs[:30]) == 0.0 and max(probs) >= 0.85


def test_a_rise_below_the_metric_resolution_does_not_count():
    probs = _probs([0.0] * 30 + [0.0005 * i for i in range(40)], metric="loss")
    assert max(probs) == 0.0


def test_explain_names_the_rising_metric():
    engine = TrendEngine()
    for i in range(40):
        engine.update("node:a", float(i), {"latency_ms": 1.0 + (3.0 * (i - 10) if i > 10 else 0),
                                          "loss": 0.0})
    why = engine.explain("node:a")
    assert why["known"] and why["ready"] and why["method"] == "trend"
    assert why["top_metrics"][0]["metric"] == "latency_ms"
    assert engine.probability("node:a") == why["failure_probability"] >= 0.85
    assert engine.explain("node:b") == {"entity": "node:b", "known": False}


def test_state_round_trip_keeps_what_was_seen():
    engine = TrendEngine()
    for i in range(30):
        engine.update("node:a", float(i), {"latency_ms": 2.0 + i})
    again = TrendEngine()
    again.restore_state(engine.state_dict())
    assert again.entities() == ["node:a"]
    assert again.update("node:a", 30.0, {"latency_ms": 32.0}) == engine.update(
        "node:a", 30.0, {"latency_ms": 32.0})


@pytest.mark.parametrize("state", [None, {}, {"format": "shadownet-predictive-state"},
                                   {"format": "shadownet-trend-state", "version": 9},
                                   {"format": "shadownet-trend-state", "version": 1,
                                    "entities": {"x": {"config": {"segment": "x"}}}}])
def test_a_state_that_does_not_fit_is_refused(state):
    with pytest.raises(ValueError):
        TrendEngine().restore_state(state)


def test_config_checks():
    with pytest.raises(ValueError, match="segments >= 3"):
        TrendConfig(segments=2)
    with pytest.raises(ValueError, match="z_required"):
        TrendConfig(z_required=float("nan"))


def test_a_rise_to_a_level_the_node_has_shown_and_left_is_not_new():
    """A cycle (a daily load swing, a GC sawtooth) climbs again where it climbed before."""
    cycle = [5.0 + 4.0 * i for i in range(30)] + [5.0] * 30
    probs = _probs(cycle * 4)
    assert max(probs[:60]) >= 0.8  # the first climb: nothing to tell it from a failure yet
    assert max(probs[60:]) < 0.5  # later climbs reach no higher than the first
