"""Correlation engine: usual correlations, their breaks, joint rises, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from predictive.correlation import CorrelationConfig, CorrelationEngine


def _coupled(n, seed=0):
    rng = np.random.default_rng(seed)
    load = rng.normal(0, 1, n).cumsum() * 0.1 + rng.normal(0, 1, n)
    return load, 2 * load + rng.normal(0, 0.2, n)


def test_kept_correlation_is_not_a_break():
    eng = CorrelationEngine()
    a, b = _coupled(600)
    out = [eng.update({"cpu": x, "latency": y}) for x, y in zip(a, b, strict=True)]
    assert max(o.break_score for o in out[100:]) < 0.2


def test_decoupling_is_reported_as_a_break_of_that_pair():
    eng = CorrelationEngine()
    a, b = _coupled(600)
    b2 = b.copy()
    b2[550:] = np.random.default_rng(9).normal(b[:550].mean(), b[:550].std(), 50)
    noise = np.random.default_rng(10).normal(0, 1, 600)
    out = [
        eng.update({"cpu": x, "latency": y, "other": z})
        for x, y, z in zip(a, b2, noise, strict=True)
    ]
    before = max(o.break_score for o in out[100:550])
    after = max(o.break_score for o in out[560:])
    assert after > 0.3 and after > 3 * before
    worst = max(out[560:], key=lambda o: o.break_score).worst_pair
    assert {worst.a, worst.b} == {"cpu", "latency"} and worst.rho_long > 0.6


def test_joint_rise_needs_two_metrics():
    eng = CorrelationEngine(CorrelationConfig(joint_z=3.0))
    one = eng.update({"a": 1.0, "b": 1.0}, {"a": 10.0, "b": 0.5})
    two = eng.update({"a": 1.0, "b": 1.0}, {"a": 10.0, "b": 8.0})
    assert one.joint_rise == 0.0
    assert two.joint_rise > 0.5 and two.rising == ("a", "b")


def test_missing_metric_skips_its_pairs_and_state_round_trips():
    eng = CorrelationEngine()
    a, b = _coupled(300, seed=2)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        eng.update({"cpu": x} if i % 7 == 0 else {"cpu": x, "latency": y})
    copy = CorrelationEngine.from_state(json.loads(json.dumps(eng.state_dict())))
    assert copy.correlations() == eng.correlations()
    nxt = {"cpu": 1.0, "latency": -5.0}
    assert copy.update(nxt) == eng.update(nxt)


def test_config_validation():
    with pytest.raises(ValueError):
        CorrelationConfig(short_span=50, long_span=20)
