"""Scale-free signals, the alert gate and the reference detectors."""

from __future__ import annotations

import numpy as np
import pytest

from predictive.alerts import Gate, alerts
from predictive.baselines import robust_max, rolling_zscore, windowed_gaussian
from predictive.signals import SIGNALS, signals, spectral_residual


def _series(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) * 300.0
    x = 10 + np.sin(2 * np.pi * t / 86400) + rng.normal(0, 0.2, n)
    return t, x


def test_signals_are_causal_a_prefix_scores_as_it_did_in_the_whole():
    t, x = _series()
    whole = signals(x, t)
    for k in (40, 700, 2100):
        assert np.allclose(signals(x[:k], t[:k]), whole[:k]), k


def test_signals_do_not_depend_on_the_metric_unit():
    t, x = _series()
    a, b = signals(x, t), signals(1000.0 * x - 7.0, t)
    assert np.allclose(a, b, atol=1e-6)


def test_a_spike_and_a_step_stand_out_and_noise_does_not():
    t, x = _series()
    x[2000] += 5.0
    x[2500:] += 4.0
    s = signals(x, t)
    for name, row in (("z_16", 2000), ("z_128", 2000), ("z_1024", 2500), ("step", 2515)):
        column = s[:, SIGNALS.index(name)]
        assert column[row] > column[1200:1990].max(), name


def test_flat_series_and_missing_values_give_finite_signals():
    x = np.full(500, 3.0)
    x[100:110] = np.nan
    x[300] = 4.0
    s = signals(x, np.arange(500) * 60.0)
    assert np.isfinite(s).all() and s.shape == (500, len(SIGNALS))
    assert s[300].max() > 1.0 and s[200].max() == 0.0
    assert signals(np.array([]), None).shape == (0, len(SIGNALS))


def test_seasonal_signal_needs_three_days_of_regular_rows():
    t, x = _series(n=700)  # under three days at 5-minute rows
    assert signals(x, t)[:, SIGNALS.index("seasonal")].max() == 0.0
    t, x = _series(n=4000)
    x[3500] += 2.0  # inside the daily range, but not at this time of day
    seasonal = signals(x, t)[:, SIGNALS.index("seasonal")]
    assert seasonal[3500] > seasonal[3000:3490].max()


def test_spectral_residual_peaks_at_an_anomaly():
    x = np.sin(np.arange(400) / 5.0)
    x[300] += 3.0
    sr = spectral_residual(x)
    assert sr.argmax() == 300 and sr[:63].max() == 0.0


def test_gate_alerts_once_per_incident_unless_it_grows():
    p = np.zeros(300)
    p[100:120] = 0.5
    p[130] = 0.95  # far stronger evidence: a new alert inside the horizon
    p[250] = 0.5  # after the horizon: a new incident
    a = alerts(p, horizon=100, factor=2.0)
    assert np.flatnonzero(a).tolist() == [100, 130, 250]
    assert np.array_equal(Gate(0, 1.0)(p), p)
    with pytest.raises(ValueError):
        Gate(-1, 2.0)


def test_reference_detectors_flag_a_jump_and_ignore_the_calm():
    _, x = _series(n=8000)
    x[7000] += 5.0
    for score in (rolling_zscore(x), windowed_gaussian(x), robust_max(signals(x))):
        assert score.shape == x.shape and ((score >= 0) & (score <= 1)).all()
        assert score[7000] > 0.999 and np.median(score[6000:6900]) < 0.9
    # The windowed Gaussian keeps its fit for a step of rows: a refit happens every 100.
    step = np.concatenate([np.zeros(250), np.full(250, 1.0)]) + np.tile([0.0, 0.01], 250)
    wg = windowed_gaussian(step, window=6400, step=100)
    assert wg[250] > 0.999 and wg[299] > 0.999


def test_label_runs_are_the_windows_and_reliability_bins_every_row():
    from predictive.nab.crossval import reliability
    from predictive.training import label_runs

    y = np.array([0, 1, 1, 0, 0, 1, 0, 1])
    assert label_runs(y) == [(1, 2), (5, 5), (7, 7)]
    assert label_runs(np.zeros(4, dtype=int)) == []
    p = np.array([0.01, 0.04, 0.15, 0.9, 1.0])
    table = reliability([p], [np.array([0, 0, 1, 1, 0])], [1])  # the first row is probation
    assert sum(b["rows"] for b in table) == 4
    top = table[-1]
    assert top["rows"] == 2 and top["in_window"] == 0.5 and top["mean_probability"] == 0.95
