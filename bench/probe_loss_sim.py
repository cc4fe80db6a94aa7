"""How often random probe loss trips a healthy node: the health pipeline in-process, many seeds.

A node answers every probe in 1 + U(0, jitter) ms, except that each probe is
lost with probability ``q``; 3 probes per interval, as the Flow Monitor sends.
Its health monitor (with the node predictive engine) and the redirection
engine run exactly as in the controller, over ``--intervals`` intervals per
run; a run counts if the node was tripped at least once. No OVS: this isolates
the judgement from the lab's noise, so old and new code can be compared on the
same random draws (run it on an older commit for the "before" column).

    .venv/bin/python bench/probe_loss_sim.py [--runs 200] [--intervals 90] [--loss 0.01 0.03]
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.services.health import (  # noqa: E402
    HealthMonitor,
    ProbeResult,
    node_engine,
    probe_metrics,
)
from controller.services.redirection import RedirectionEngine  # noqa: E402
from controller.services.service import Service, ServiceTable  # noqa: E402
from controller.services.shadow_table import ShadowTable  # noqa: E402
from shadownet.progress import Progress  # noqa: E402


def run(seed: int, loss: float, intervals: int, jitter: float) -> tuple[float, float, int]:
    """(highest failure probability, lowest health, trips) of one run, after warm-up."""
    rng = random.Random(seed)
    svc = Service.from_dict({
        "name": "web", "vip": "10.0.0.100", "port": 80,
        "primary": {"name": "h2", "ip": "10.0.0.2", "mac": "00:00:00:00:00:02"},
        "standbys": [{"name": "h3", "ip": "10.0.0.3", "mac": "00:00:00:00:00:03"}]})
    services = ServiceTable([svc])
    monitor = HealthMonitor(node_engine())
    redirection = RedirectionEngine(services, ShadowTable(services, None))
    peak, low, trips = 0.0, 1.0, 0
    for t in range(intervals):
        for node, spread in (("h2", jitter), ("h3", 0.0)):
            results = [ProbeResult(False) if rng.random() < loss
                       else ProbeResult(True, 1.0 + rng.uniform(0, spread)) for _ in range(3)]
            health = monitor.observe(node, float(t), probe_metrics(results))
            if node == "h2" and t >= 25:
                peak, low = max(peak, health.failure_probability), min(low, health.score)
        plan = redirection.step(monitor.snapshot(), float(t))
        trips += sum(e.kind == "node_tripped" for e in plan.events)
    return peak, low, trips


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--intervals", type=int, default=90)
    parser.add_argument("--jitter", type=float, default=30.0, help="ms of answer-time jitter")
    parser.add_argument("--loss", type=float, nargs="+", default=[0.01, 0.03, 0.05, 0.10])
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.intervals < 30 or any(not 0 <= q < 1 for q in args.loss):
        parser.error("--runs >= 1, --intervals >= 30, every --loss in [0, 1)")
    logging.disable(logging.CRITICAL)
    print(f"{args.runs} runs of {args.intervals} intervals, 3 probes each, "
          f"{args.jitter:g} ms jitter")
    print("probe loss | runs with a trip | highest p (worst run) | lowest health (worst run)")
    # The defaults are 800 runs, over a minute: one step per run, lines rate-limited.
    with Progress("probe-loss-sim", total=args.runs * len(args.loss),
                  quiet=args.quiet) as progress:
        for q in args.loss:
            results = []
            for seed in range(args.runs):
                progress.step(f"loss {q:.0%}")
                results.append(run(seed, q, args.intervals, args.jitter))
            tripped = sum(r[2] > 0 for r in results)
            progress.clear()  # the table row goes to stdout, on the same terminal
            print(f"{q:10.0%} | {tripped:4d} of {args.runs:<4d}     | "
                  f"{max(r[0] for r in results):.3f}                 | "
                  f"{min(r[1] for r in results):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
