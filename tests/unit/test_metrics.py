"""Sliding-window gauges: what they report, and what they forget."""

from __future__ import annotations

from controller.metrics import ControllerMetrics, MaxWindow, RateWindow


def test_rate_window_counts_only_the_last_seconds():
    window = RateWindow(seconds=10)
    for t in (0.0, 1.0, 9.0, 12.0):
        window.add(now=t)
    assert window.rate(now=12.0) == 2 / 10  # those at t=0 and t=1 fell out


def test_max_window_reports_the_worst_stall_then_forgets_it():
    window = MaxWindow(seconds=10)
    assert window.max(now=0.0) == 0.0
    window.add(0.02, now=1.0)
    window.add(1.5, now=2.0)
    window.add(0.01, now=3.0)
    assert window.max(now=5.0) == 1.5
    assert window.max(now=12.5) == 0.01


def test_loop_lag_is_exported():
    metrics = ControllerMetrics()
    metrics.loop_lag_window.add(0.25)
    assert metrics.registry.get_sample_value("shadownet_loop_lag_seconds") == 0.25
