"""Baseline drift: robustness to spikes, level shifts, rate of change, seasonality, state."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from predictive.baseline import BaselineConfig, MetricBaseline, detect_daily_period


def _feed(b, values, t0=0.0, dt=300.0):
    return [b.update(t0 + i * dt, v) for i, v in enumerate(values)]


def _noise(n, seed=0, level=10.0):
    return level + np.random.default_rng(seed).normal(0, 1, n)


def test_not_ready_before_min_history():
    b = MetricBaseline(BaselineConfig(min_history=20))
    out = _feed(b, _noise(25))
    assert not any(s.ready for s in out[:20]) and all(s.ready for s in out[20:])


def test_single_spike_does_not_move_the_baseline():
    b = MetricBaseline()
    vals = list(_noise(400))
    out = _feed(b, vals + [60.0] + list(_noise(50, seed=1)))
    spike = out[400]
    assert spike.deviation > 20 and spike.novelty > 1.0
    after = out[402:]
    assert max(abs(s.deviation) for s in after) < 5  # median/IQR ignored the spike
    assert all(s.novelty == 0.0 for s in after)  # and the range now includes it


def test_level_shift_is_adapted_to():
    cfg = BaselineConfig(shift_hold=30)
    b = MetricBaseline(cfg)
    out = _feed(b, list(_noise(300)) + list(_noise(200, seed=2, level=40.0)))
    assert out[305].shift > cfg.shift_limit
    assert abs(out[-1].deviation) < 5  # re-seeded on the new level


def test_rate_of_change_leads_on_a_ramp():
    b = MetricBaseline()
    ramp = list(_noise(300)) + [10 + 0.5 * i for i in range(40)]
    out = _feed(b, ramp)
    assert all(s.rate > 0 for s in out[305:])
    # 0.5 per step on a unit-scale baseline: about 0.37 robust z per interval.
    assert out[320].rate == pytest.approx(0.37, abs=0.1)
    flat = _feed(MetricBaseline(), _noise(340))
    assert max(abs(s.rate) for s in flat[300:]) < out[320].rate
    # The same ramp sampled every other interval changes as fast per typical interval.
    b2 = MetricBaseline()
    times = [i * 300.0 for i in range(300)] + [300 * 300.0 + 600.0 * i for i in range(20)]
    vals = ramp[:300] + [10 + 1.0 * i for i in range(20)]
    out2 = [b2.update(t, v) for t, v in zip(times, vals, strict=True)]
    # (Per observation it would be about twice as fast.)
    assert 0.67 * out[330].rate < out2[315].rate < 1.5 * out[330].rate


def test_daily_seasonality_detected_and_pattern_break_scored():
    per_day = 48  # 30-minute samples
    t = np.arange(per_day * 20)
    x = 100 + 50 * np.sin(2 * math.pi * t / per_day) + np.random.default_rng(3).normal(0, 2, t.size)
    samples = [(float(i * 1800), float(v)) for i, v in zip(t, x, strict=True)]
    assert detect_daily_period(samples[: per_day * 4], 0.5) == per_day
    assert detect_daily_period([(float(i * 1800), float(v)) for i, v in enumerate(_noise(200))],
                               0.5) == 0
    b = MetricBaseline(BaselineConfig(warmup=per_day * 4))
    y = x.copy()
    y[per_day * 15 : per_day * 15 + 24] = 100.0  # the daily swing goes flat (within range)
    out = [b.update(ts, float(v)) for (ts, _), v in zip(samples, y, strict=True)]
    assert b.period == per_day
    normal = max(s.seasonal for s in out[per_day * 10 : per_day * 15])
    broken = max(s.seasonal for s in out[per_day * 15 : per_day * 15 + 30])
    assert broken > 0.1 and broken > 5 * normal
    assert max(s.novelty for s in out[per_day * 15 : per_day * 15 + 30]) == 0.0


def test_irregular_and_backward_timestamps():
    b = MetricBaseline()
    rng = np.random.default_rng(4)
    times = np.cumsum(rng.choice([60.0, 300.0, 3600.0, 0.0], size=300))
    times[150] = times[149] - 100  # a clock step backwards
    out = [b.update(float(t), float(v)) for t, v in zip(times, _noise(300), strict=True)]
    assert all(math.isfinite(x) for s in out for x in s[:6])
    with pytest.raises(ValueError):
        b.update(1e9, float("nan"))


def test_state_round_trip_continues_identically():
    vals = list(_noise(900, seed=5)) + [30.0] + list(_noise(200, seed=6, level=20))
    a = MetricBaseline(BaselineConfig(warmup=300))
    _feed(a, vals[:700])
    restored = MetricBaseline.from_state(json.loads(json.dumps(a.state_dict())))
    rest = vals[700:]
    assert _feed(a, rest, t0=700 * 300.0) == _feed(restored, rest, t0=700 * 300.0)


def test_config_validation():
    with pytest.raises(ValueError):
        BaselineConfig(window=5)
    with pytest.raises(ValueError):
        BaselineConfig(min_history=50, window=20)
