"""What the tenacity wrapper costs on the paths it wraps when nothing fails.

The controller's flush (``StateStore.save``) is the one wrapped call on a
path that runs all the time; the agent's controller calls run on its loop. This
times, with no error to retry:

  * ``RetryPolicy.call`` of a function that does nothing, against calling it;
  * ``StateStore.save`` of a flush-sized batch into SQLite, with the retry
    wrapper and with it bypassed (what save did before);
  * ``StateStore.load_flows`` of those rows, the same two ways.

Each is the median of ``--runs`` runs (min-max), with the ratio wrapped/bare.
A benchmark, not a test.

Run:  .venv/bin/python bench/retry_overhead.py [--runs 5] [--rows 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

from controller.signature_table import FlowSignature
from controller.state_store import StateStore
from shadownet.retry import RetryPolicy

T = TypeVar("T")
LOG = logging.getLogger("bench.retry")


def bare(self: StateStore, what: str, fn: Callable[[], T], policy: Any = None) -> T:
    """``StateStore._retried`` without the retry: the call as it was before."""
    return fn()


def runs(fn: Callable[[], object], count: int) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def stats(values: list[float], scale: float = 1.0) -> dict[str, float]:
    return {"median": statistics.median(values) * scale, "min": min(values) * scale,
            "max": max(values) * scale}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rows", type=int, default=2000, help="flow rows per flush")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    report: dict[str, Any] = {}

    calls = 10_000
    policy = RetryPolicy()
    noop: Callable[[], None] = lambda: None  # noqa: E731

    def wrapped_calls() -> None:
        for _ in range(calls):
            policy.call(noop, retry_if=lambda exc: False, what="noop", logger=LOG)

    def bare_calls() -> None:
        for _ in range(calls):
            noop()

    report["call_us"] = {
        "wrapped": stats(runs(wrapped_calls, args.runs), 1e6 / calls),
        "bare": stats(runs(bare_calls, args.runs), 1e6 / calls),
    }

    flows = [FlowSignature(i, 1 + i % 30, {"eth_dst": f"00:00:00:00:{i // 256:02x}:{i % 256:02x}"},
                           1 + i % 48, path=[1, 2, 3], path_key=f"k{i % 100}")
             for i in range(args.rows)]
    with tempfile.TemporaryDirectory() as tmp:
        store = StateStore(f"sqlite:///{Path(tmp) / 'bench.db'}")
        for stage, fn in (("save_ms", lambda: store.save(flows=flows)),
                          ("load_ms", store.load_flows)):
            fn()  # warm up: tables, statement cache
            timings: dict[str, list[float]] = {"wrapped": [], "bare": []}
            for _ in range(args.runs):  # taking turns, so drift hits both alike
                timings["wrapped"] += runs(fn, 1)
                with mock.patch.object(StateStore, "_retried", bare):
                    timings["bare"] += runs(fn, 1)
            report[stage] = {k: stats(v, 1e3) for k, v in timings.items()}
        store.close()
    for r in report.values():
        r["ratio_wrapped_bare"] = r["wrapped"]["median"] / r["bare"]["median"]
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{args.runs} runs; save/load of {args.rows} flow rows into SQLite")
    for stage, r in report.items():
        for kind in ("bare", "wrapped"):
            s = r[kind]
            print(f"  {stage:<8} {kind:<8} median {s['median']:10.3f} "
                  f"(min {s['min']:.3f} - max {s['max']:.3f})")
        print(f"  {stage:<8} ratio wrapped/bare {r['ratio_wrapped_bare']:.3f}")


if __name__ == "__main__":
    main()
