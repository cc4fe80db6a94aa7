"""Streaming speed and memory of the predictive engine (a benchmark, not a test).

Prints points/s on one core for:
  * the windowed-Gaussian reference detector (NAB's baseline, same window length),
  * one MetricBaseline (the per-metric core),
  * an EntityDetector fed {"value": x} (the NAB / controller path, 1 metric),
  * an EntityDetector fed 4 metrics per observation (points = metric values),
and memory per entity after its baselines are full (tracemalloc).

Run:  .venv/bin/python bench/predict_speed.py [--points 200000] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import time
import tracemalloc
from collections import deque
from collections.abc import Callable

import numpy as np

from predictive.baseline import MetricBaseline
from predictive.detector import EntityDetector
from shadownet import progress
from shadownet.progress import Progress


class WindowedGaussian:
    """NAB's windowed-Gaussian detector: tail probability against a sliding mean/std."""

    def __init__(self, window: int = 1500) -> None:
        self.window = window
        self.buf: deque[float] = deque()
        self.s = 0.0
        self.s2 = 0.0

    def update(self, x: float) -> float:
        n = len(self.buf)
        score = 0.0
        if n > 1:
            mu = self.s / n
            var = max(self.s2 / n - mu * mu, 1e-12)
            score = 1.0 - 0.5 * math.erfc(abs(x - mu) / math.sqrt(2.0 * var))
        self.buf.append(x)
        self.s += x
        self.s2 += x * x
        if n + 1 > self.window:
            old = self.buf.popleft()
            self.s -= old
            self.s2 -= old * old
        return score


def _rate(fn: Callable[[], None], n: int, name: str = "") -> float:
    progress.step(name)  # before the clock starts
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    # Four speed runs and two memory runs: about 20 s with the default points.
    with Progress("predict-speed", total=6, unit="part", quiet=args.quiet):
        res = _measure(args.points)
    if args.json:
        print(json.dumps({k: round(v, 2) for k, v in res.items()}, indent=2))
        return
    _report(res)


def _measure(n: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    xs = (50 + rng.normal(0, 5, n) + 10 * np.sin(np.arange(n) / 288 * 2 * np.pi)).tolist()
    ts = (1.7e9 + 300.0 * np.arange(n)).tolist()

    def run_gauss() -> None:
        d = WindowedGaussian()
        for x in xs:
            d.update(x)

    def run_baseline() -> None:
        b = MetricBaseline()
        for t, x in zip(ts, xs, strict=True):
            b.update(t, x)

    def run_entity() -> None:
        d = EntityDetector()
        for t, x in zip(ts, xs, strict=True):
            d.update(t, {"value": x})

    m4 = n // 4

    def run_entity4() -> None:
        d = EntityDetector()
        for i in range(m4):
            x = xs[i]
            d.update(ts[i], {"cpu": x, "latency": 2 * x + 1, "errors": xs[-i - 1], "drops": 0.0})

    res: dict[str, float] = {
        "points": n,
        "windowed_gaussian_pps": _rate(run_gauss, n, "windowed gaussian"),
        "metric_baseline_pps": _rate(run_baseline, n, "MetricBaseline"),
        "entity_1_metric_pps": _rate(run_entity, n, "EntityDetector, 1 metric"),
        "entity_4_metrics_pps": _rate(run_entity4, m4 * 4, "EntityDetector, 4 metrics"),
    }
    res["ratio_entity_vs_gaussian"] = res["entity_1_metric_pps"] / res["windowed_gaussian_pps"]
    # Memory per entity once its rolling windows are full.
    for label, metrics in (("1_metric", ("value",)), ("4_metrics", ("a", "b", "c", "d"))):
        progress.step(f"memory, {label.replace('_', ' ')}")
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        d = EntityDetector()
        for i in range(3000):
            d.update(ts[i], {m: xs[i + k] for k, m in enumerate(metrics)})
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        used = sum(s.size_diff for s in after.compare_to(before, "filename"))
        res[f"memory_per_entity_{label}_kib"] = used / 1024
        res[f"state_json_{label}_kib"] = len(json.dumps(d.state_dict())) / 1024
    return res


def _report(res: dict[str, float]) -> None:
    print(f"points per run: {int(res['points']):,}")
    print(f"windowed gaussian (reference)   {res['windowed_gaussian_pps']:>12,.0f} points/s")
    print(f"MetricBaseline (1 metric core)  {res['metric_baseline_pps']:>12,.0f} points/s")
    print(f"EntityDetector, 1 metric        {res['entity_1_metric_pps']:>12,.0f} points/s")
    print(f"EntityDetector, 4 metrics       {res['entity_4_metrics_pps']:>12,.0f} points/s")
    print(f"entity / gaussian speed ratio   {res['ratio_entity_vs_gaussian']:>12.2f}")
    for label in ("1_metric", "4_metrics"):
        print(
            f"memory per entity ({label.replace('_', ' ')}): "
            f"{res[f'memory_per_entity_{label}_kib']:.0f} KiB in memory, "
            f"{res[f'state_json_{label}_kib']:.0f} KiB saved state"
        )


if __name__ == "__main__":
    main()
