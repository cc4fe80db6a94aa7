"""What prediction buys, on random degradation patterns: predictive against health-only, in process.

Each run draws a pattern (``lab/degradation_patterns.py``: steps, ramps of any
speed, plateaus, loss-first failures, sudden deaths, and benign level shifts,
flaps and jitter that never fail) for a service's primary, and plays it through
the controller's own judgement, with a fake clock: the Flow Monitor's probes (3
per round, lost past the 0.5 s timeout), :class:`HealthMonitor` and the
:class:`RedirectionEngine` with the default thresholds. The two modes differ in
one thing only: ``predictive`` has the node engine, ``health`` does not
(``prediction.enabled: false``). Both see the same probe draws.

Per mode it reports, against ground truth:

- **precision**: of the runs where the service moved, the share whose node was
  going to die (a move on a benign pattern is needless);
- **early**: failing runs moved *before* the death, and the median lead time;
- **downtime**: seconds between the death and the move, per failing run (0 when
  early; the rest of the run when never moved); at 10 requests/s, failed
  requests are about ten times that;
- **needless moves** on the benign patterns, where the right number is 0.

    .venv/bin/python bench/failover_sim.py [--runs 240] [--interval 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.services.health import (  # noqa: E402
    HealthMonitor,
    ProbeResult,
    node_engine,
    probe_metrics,
)
from controller.services.liveness import LivenessSettings, MissCounter  # noqa: E402
from controller.services.redirection import RedirectionEngine  # noqa: E402
from controller.services.service import Service, ServiceTable  # noqa: E402
from controller.services.shadow_table import ShadowTable  # noqa: E402
from lab.degradation_patterns import BENIGN, FAILING, KINDS, Pattern, draw  # noqa: E402
from shadownet.progress import Progress  # noqa: E402

MODES = ("predictive", "health")
PROBES = 3
TIMEOUT_MS = 500.0  # node_probes.timeout
AFTER_DEATH_S = 60.0  # a run goes on this long after a death, to see a late move


@dataclass(frozen=True)
class Outcome:
    kind: str
    fails: bool
    death_at: float | None
    moved_at: float | None
    end: float

    @property
    def early(self) -> bool:
        return self.fails and self.moved_at is not None and self.death_at is not None and (
            self.moved_at < self.death_at)

    @property
    def downtime(self) -> float:
        """Seconds the service pointed at a dead node (failing runs only)."""
        assert self.death_at is not None
        if self.moved_at is None:
            return self.end - self.death_at
        return max(0.0, self.moved_at - self.death_at)


def probe(rng: random.Random, pattern: Pattern, t: float) -> list[ProbeResult]:
    c = pattern.at(t)
    out = []
    for _ in range(PROBES):
        if c.dead or rng.random() < c.loss:
            out.append(ProbeResult(False))
            continue
        latency = c.latency_ms + rng.uniform(0.0, c.jitter_ms)
        out.append(ProbeResult(True, latency) if latency <= TIMEOUT_MS else ProbeResult(False))
    return out


def liveness_verdict(rng: random.Random, pattern: Pattern, start: float, end: float,
                     live: LivenessSettings, counter: MissCounter) -> float | None:
    """The liveness checks of the active node sent in [start, end): when the node was
    declared unreachable (the deadline of the check that made the run long enough)."""
    ts = start
    while ts < end:
        c = pattern.at(ts)
        # A connect is answered by the node's kernel: the application's delay does not
        # show, only the node's death or the path's loss.
        answered = not c.dead and rng.random() >= c.loss
        if counter.record("p", answered):
            return ts + live.timeout
        ts += live.interval
    return None


def play(pattern: Pattern, mode: str, seed: int, interval: float, horizon: float,
         live: LivenessSettings | None = None) -> Outcome:
    """One pattern through the controller's judgement; when the service left the primary."""
    live = live or LivenessSettings()
    svc = Service.from_dict({
        "name": "web", "vip": "10.0.0.100", "port": 80,
        "primary": {"name": "p", "ip": "10.0.0.2", "mac": "00:00:00:00:00:02"},
        "standbys": [{"name": "s", "ip": "10.0.0.3", "mac": "00:00:00:00:00:03"}]})
    services = ServiceTable([svc])
    monitor = HealthMonitor(node_engine() if mode == "predictive" else None)
    redirection = RedirectionEngine(services, ShadowTable(services, None))
    standby = Pattern("level_shift", onset=float("inf"), death_at=None, base_ms=pattern.base_ms,
                      base_jitter_ms=pattern.base_jitter_ms, base_loss=pattern.base_loss,
                      peak_ms=pattern.base_ms)
    rng = random.Random(seed * 7919 + 1)  # the same probe draws in every mode
    live_rng = random.Random(seed * 7919 + 2)  # and the same liveness draws
    counter = MissCounter(live.misses, live.arm)
    end = horizon if pattern.death_at is None else min(horizon, pattern.death_at + AFTER_DEATH_S)
    t = 0.0
    while t < end:
        for name, story in (("p", pattern), ("s", standby)):
            monitor.observe(name, t, probe_metrics(probe(rng, story, t)))
        plan = redirection.step(monitor.snapshot(), t)
        if any(e.kind == "switchover" and e.node == "p" for e in plan.events):
            return Outcome(pattern.kind, pattern.fails, pattern.death_at, t, end)
        if live.enabled:
            found = liveness_verdict(live_rng, pattern, t, t + interval, live, counter)
            if found is not None and redirection.unreachable("p", found, {"evidence": "sim"}):
                plan = redirection.step(monitor.snapshot(), found)
                if any(e.kind == "switchover" and e.node == "p" for e in plan.events):
                    return Outcome(pattern.kind, pattern.fails, pattern.death_at, found, end)
        t += interval
    return Outcome(pattern.kind, pattern.fails, pattern.death_at, None, end)


def summarise(outcomes: list[Outcome]) -> dict[str, Any]:
    failing = [o for o in outcomes if o.fails]
    benign = [o for o in outcomes if not o.fails]
    moved = [o for o in outcomes if o.moved_at is not None]
    early = [o for o in failing if o.early]
    leads = [o.death_at - o.moved_at for o in early
             if o.death_at is not None and o.moved_at is not None]
    downtimes = [o.downtime for o in failing]
    kinds: dict[str, dict[str, int]] = {}
    for o in outcomes:
        row = kinds.setdefault(o.kind, {"runs": 0, "early": 0, "late": 0, "never": 0,
                                        "needless": 0})
        row["runs"] += 1
        if o.fails:
            row["early" if o.early else "late" if o.moved_at is not None else "never"] += 1
        elif o.moved_at is not None:
            row["needless"] += 1
    downtime_by_kind = {k: round(statistics.median(o.downtime for o in failing if o.kind == k), 1)
                        for k in FAILING if any(o.kind == k for o in failing)}
    return {
        "runs": len(outcomes), "failing": len(failing), "benign": len(benign),
        "precision": round(sum(o.fails for o in moved) / len(moved), 3) if moved else None,
        "early": len(early), "early_share": round(len(early) / len(failing), 3) if failing
        else None,
        "lead_s_median": round(statistics.median(leads), 1) if leads else None,
        "downtime_s_median": round(statistics.median(downtimes), 1) if downtimes else None,
        "downtime_s_p90": round(_quantile(downtimes, 0.9), 1) if downtimes else None,
        "needless_moves": sum(o.moved_at is not None for o in benign),
        "kinds": kinds,
        "downtime_s_median_by_kind": downtime_by_kind,
    }


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=240, help="patterns, spread evenly over kinds")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between probe rounds")
    p.add_argument("--horizon", type=float, default=300.0, help="seconds per run")
    p.add_argument("--seed", type=int, default=0, help="first seed (patterns and probes)")
    p.add_argument("--liveness-interval", type=float, default=LivenessSettings.interval,
                   help="seconds between liveness checks of the active node (0: none)")
    p.add_argument("--json", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = p.parse_args(argv)
    if (args.runs < len(KINDS) or args.interval <= 0 or args.horizon < 120
            or args.liveness_interval < 0):
        p.error(f"--runs >= {len(KINDS)}, --interval > 0, --horizon >= 120, "
                "--liveness-interval >= 0")
    live = LivenessSettings(interval=args.liveness_interval)
    logging.disable(logging.CRITICAL)
    patterns = [draw(random.Random(args.seed + i), KINDS[i % len(KINDS)],
                     horizon_s=args.horizon) for i in range(args.runs)]
    results: dict[str, list[Outcome]] = {m: [] for m in MODES}
    with Progress("failover-sim", total=args.runs, unit="pattern", quiet=args.quiet) as bar:
        for i, pattern in enumerate(patterns):
            bar.step(pattern.kind)
            for mode in MODES:
                results[mode].append(play(pattern, mode, args.seed + i, args.interval,
                                          args.horizon, live))
    report = {m: summarise(o) for m, o in results.items()}
    if args.json:
        print(json.dumps({"interval_s": args.interval, "seed": args.seed,
                          "liveness_interval_s": args.liveness_interval, "modes": report}))
        return 0
    failing, benign = report[MODES[0]]["failing"], report[MODES[0]]["benign"]
    print(f"{args.runs} patterns ({failing} failing: {', '.join(FAILING)}; {benign} benign: "
          f"{', '.join(BENIGN)}), probes every {args.interval:g} s, default thresholds, "
          + (f"liveness checks every {args.liveness_interval:g} s" if live.enabled
             else "no liveness checks"))
    print(f"{'mode':11s} {'precision':>9s} {'early':>9s} {'lead s':>7s} "
          f"{'downtime s':>11s} {'p90':>6s} {'needless':>9s}")
    for mode, r in report.items():
        print(f"{mode:11s} {_fmt(r['precision']):>9s} {r['early']:>4d}/{r['failing']:<4d} "
              f"{_fmt(r['lead_s_median']):>7s} {_fmt(r['downtime_s_median']):>11s} "
              f"{_fmt(r['downtime_s_p90']):>6s} {r['needless_moves']:>4d}/{r['benign']:<4d}")
    print("\nper kind (early / late / never moved, median downtime; or needless moves):")
    for kind in KINDS:
        cells = []
        for mode in MODES:
            k = report[mode]["kinds"].get(kind, {})
            down = report[mode]["downtime_s_median_by_kind"].get(kind)
            cells.append(f"{mode} {k.get('early', 0)}/{k.get('late', 0)}/{k.get('never', 0)}, "
                         f"{_fmt(down)} s" if kind in FAILING else
                         f"{mode} {k.get('needless', 0)}")
        print(f"  {kind:12s} " + "   ".join(cells))
    return 0


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


if __name__ == "__main__":
    sys.exit(main())
