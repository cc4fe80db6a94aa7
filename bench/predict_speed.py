"""Scoring speed of the predictive engine on one core (a benchmark, not a test).

Prints points/s, median of ``--runs`` runs with the min-max spread, for:
  * the windowed-Gaussian reference detector (NAB's baseline: the ratio's base),
  * the rolling z-score reference detector,
  * the signals alone (``predictive.signals``),
  * signals + the shipped failure model + the alert gate: what ``predict score``
    does per metric column, after reading the file.

Runs on one core: the thread pools of OpenMP and BLAS are set to one thread
before numpy and scikit-learn load. The target (issue 14) is 50,000 points/s.

Run:  .venv/bin/python bench/predict_speed.py [--points 200000] [--runs 5] [--json]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

from predictive.baselines import rolling_zscore, windowed_gaussian  # noqa: E402
from predictive.predict import default_model  # noqa: E402
from predictive.signals import signals  # noqa: E402
from shadownet import progress  # noqa: E402
from shadownet.progress import Progress  # noqa: E402

TARGET_PPS = 50_000


def _rates(fn: Callable[[], object], n: int, runs: int, name: str) -> list[float]:
    out = []
    for _ in range(runs):
        progress.step(name)
        t0 = time.perf_counter()
        fn()
        out.append(n / (time.perf_counter() - t0))
    return out


def measure(n: int, runs: int) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(0)
    x = 50 + rng.normal(0, 5, n) + 10 * np.sin(np.arange(n) / 288 * 2 * np.pi)
    t = 1.7e9 + 300.0 * np.arange(n)
    model = default_model()

    def score() -> None:
        model.gate(model.predict_proba(signals(x, t)))

    parts: dict[str, Callable[[], object]] = {
        "windowed_gaussian": lambda: windowed_gaussian(x),
        "rolling_zscore": lambda: rolling_zscore(x),
        "signals": lambda: signals(x, t),
        "signals_model_gate": score,
    }
    res = {}
    for name, fn in parts.items():
        r = _rates(fn, n, runs, name)
        res[name] = {"median_pps": statistics.median(r), "min_pps": min(r), "max_pps": max(r)}
    base = res["windowed_gaussian"]["median_pps"]
    for v in res.values():
        v["ratio_vs_windowed_gaussian"] = v["median_pps"] / base
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    if args.points < 2000 or args.runs < 1:
        ap.error("--points must be >= 2000 and --runs >= 1")
    with Progress("predict-speed", total=4 * args.runs, unit="run", quiet=args.quiet):
        res = measure(args.points, args.runs)
    if args.json:
        print(json.dumps({k: {m: round(v, 3) for m, v in d.items()} for k, d in res.items()},
                         indent=2))
        return
    print(f"{args.points:,} points, {args.runs} runs, one core (median, min-max)")
    for name, d in res.items():
        print(f"  {name:<20} {d['median_pps']:>12,.0f} points/s  "
              f"({d['min_pps']:,.0f}-{d['max_pps']:,.0f})  "
              f"x{d['ratio_vs_windowed_gaussian']:.2f} of windowed gaussian")
    ok = res["signals_model_gate"]["median_pps"] >= TARGET_PPS
    print(f"target {TARGET_PPS:,} points/s: {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
