"""Entity detector and engine: streaming API, explanations, missing data, save/restore."""

from __future__ import annotations

import json

import numpy as np
import pytest

from predictive.detector import COMPONENTS, AlertGate, EntityDetector
from predictive.engine import PredictiveEngine
from predictive.model import FEATURES, FailureModel


def _stream(n=800, seed=0):
    rng = np.random.default_rng(seed)
    load = 50 + rng.normal(0, 3, n)
    for i in range(n):
        cpu = load[i] + rng.normal(0, 1)
        lat = 2 * load[i] + rng.normal(0, 2)
        if i >= 700:  # the node starts failing: latency climbs, CPU does not
            lat += 10 * (i - 699)
        m = {"cpu": cpu, "latency": lat, "errors": float(rng.poisson(1))}
        if i % 13 == 0:
            del m["cpu"]  # a lost sample
        if i % 29 == 0:
            m["errors"] = float("nan")
        yield 1_700_000_000 + 60.0 * i + rng.uniform(-5, 5), m


def test_update_returns_probability_components_and_culprit():
    det = EntityDetector()
    ups = [det.update(t, m) for t, m in _stream()]
    for u in ups:
        assert 0.0 <= u.failure_probability <= 1.0
        assert set(u.components) == set(COMPONENTS)
        assert all(0.0 <= v <= 1.0 for v in u.components.values())
    # Normal operation: mostly quiet (a new extreme still raises a brief alarm).
    normal = [u.failure_probability for u in ups[100:690]]
    assert np.median(normal) < 0.05
    assert sum(u.alert > 0.5 for u in ups[300:690]) <= 5
    assert min(u.failure_probability for u in ups[702:720]) > 0.9
    first = next(u for u in ups[700:] if u.alert > 0.5)
    assert first.top_metrics[0][0] == "latency"
    assert len(det.features()) == len(FEATURES)
    # Alerts are the onset, not every row of the incident.
    assert sum(u.alert > 0.5 for u in ups[700:]) < 10


def test_state_round_trip_through_json_continues_identically():
    rows = list(_stream())
    a = EntityDetector()
    for t, m in rows[:650]:
        a.update(t, m)
    b = EntityDetector.from_state(json.loads(json.dumps(a.state_dict())))
    assert b.last == a.last
    for t, m in rows[650:]:
        assert a.update(t, m) == b.update(t, m)


def test_bad_timestamp_and_empty_metrics():
    det = EntityDetector()
    with pytest.raises(ValueError):
        det.update(float("nan"), {"x": 1.0})
    u = det.update(1.0, {})
    assert u.failure_probability == 0.0 and not u.ready


def test_alert_gate_suppresses_repeats_but_not_escalations():
    g = AlertGate(horizon=10, factor=5.0)
    assert g(0.5) == 0.5
    assert g(0.6) == 0.0  # same incident
    assert g(0.99999) > 0.99  # evidence escalated > 5x
    for _ in range(10):
        g(0.0)
    assert g(0.5) == 0.5  # horizon over


def test_engine_api_and_save_load(tmp_path):
    eng = PredictiveEngine()
    rows = list(_stream(720))
    for t, m in rows[:710]:
        eng.update("node:h1", t, m)
        eng.update("link:s1-s2", t, {"tx": m.get("cpu", 1.0)})
    assert eng.entities() == ["node:h1", "link:s1-s2"]
    ex = eng.explain("node:h1")
    assert ex["known"] and ex["failure_probability"] == eng.probability("node:h1")
    assert ex["top_metrics"][0]["metric"] == "latency"
    assert eng.explain("nobody") == {"entity": "nobody", "known": False}
    assert eng.probability("nobody") == 0.0
    path = eng.save(tmp_path / "state.json")
    back = PredictiveEngine.load(path)
    for t, m in rows[710:]:
        assert back.update("node:h1", t, m) == eng.update("node:h1", t, m)
    eng.forget("link:s1-s2")
    assert eng.entities() == ["node:h1"]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a shadownet"):
        PredictiveEngine.load(tmp_path / "bad.json")


def test_model_drives_probability_when_attached():
    rng = np.random.default_rng(0)
    X = rng.normal(0, 1, (2000, len(FEATURES)))
    y = (X[:, 2] > 1).astype(int)  # |deviation| > 1: common in the stream below
    model = FailureModel().fit(X, y)
    det = EntityDetector(model=model)
    ups = [det.update(t, m) for t, m in _stream(720)]
    assert all(u.failure_probability == u.components["model"] for u in ups)
    assert any(u.components["model"] > 0 for u in ups)
