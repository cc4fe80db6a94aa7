"""``shadownet lab ...``: run a scenario on a Mininet topology and print the result."""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
from typing import Any


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from lab.degradation_patterns import KINDS
    from lab.scenarios import SCENARIOS

    lab = subparsers.add_parser("lab", help="Mininet labs (needs root)")
    sub = lab.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="run a scenario end to end")
    run.add_argument("scenario", choices=sorted(SCENARIOS))
    run.add_argument("--topo",
                     help="single,N | linear,N | tree,D,F | ring,N | fattree,K | zoo:NAME | "
                          "zoo:FILE.gml (default: the scenario's own)")
    modes = sorted({m for sc in SCENARIOS.values() for m in sc.modes})
    run.add_argument("--mode", choices=(*modes, "all"), default="all",
                     help="scenarios with modes: which one to run (default: all, side by "
                          "side); failover scenarios: predictive, health, none; link-cut: "
                          "groups, controller, groups-alone, none")
    run.add_argument("--seed", type=int,
                     help="pattern: the seed of the drawn pattern (default: a random one, "
                          "reported; every mode plays the same pattern)")
    run.add_argument("--kind", choices=KINDS,
                     help="pattern: the family to draw from (default: drawn from the seed)")
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.add_argument("--hub", choices=("eventlet", "native"), help="controller hub")
    run.add_argument("-q", "--quiet", action="store_true",
                     help="no progress or lab messages on stderr (errors and missed targets "
                          "still)")
    run.set_defaults(func=run_scenario)


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def run_scenario(args: argparse.Namespace) -> int:
    from lab.ovs import LabError
    from lab.scenarios import SCENARIOS
    from lab.scenarios import run_scenario as run_one
    from shadownet.progress import Progress

    signal.signal(signal.SIGTERM, _interrupt)
    scenario = SCENARIOS[args.scenario]
    topo = args.topo or scenario.default_topo
    if not scenario.modes:
        modes: list[str | None] = [None]
    elif args.mode == "all":
        modes = list(scenario.modes)
    elif args.mode in scenario.modes:
        modes = [args.mode]
    else:
        print(f"shadownet: error: {args.scenario} has no mode {args.mode!r}: one of "
              f"{', '.join(scenario.modes)}", file=sys.stderr)
        return 2
    options: dict[str, Any] = {}
    if "seed" in scenario.options:  # one seed for every mode, so they play the same pattern
        options["seed"] = (args.seed if args.seed is not None
                           else random.SystemRandom().randrange(2**31))
    if "kind" in scenario.options and args.kind is not None:
        options["kind"] = args.kind
    given = [f"--{name}" for name in ("seed", "kind")
             if getattr(args, name) is not None and name not in scenario.options]
    if given:
        print(f"shadownet: error: {args.scenario} takes no {', '.join(given)}", file=sys.stderr)
        return 2
    results = []
    # One step per mode: a failover scenario runs three fresh labs of a few minutes each.
    progress = Progress(args.scenario, total=len(modes) if scenario.modes else None,
                        unit="mode", quiet=args.quiet)
    try:
        with progress:
            for mode in modes:
                if mode is not None:  # shown with the lab's first phase, once the topo is good
                    progress.step(mode, show=False)
                results.append(run_one(args.scenario, topo, mode, args.hub, log=progress.log,
                                       **options))
    except LabError as exc:
        print(f"shadownet: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        doc = {"scenario": args.scenario, "topo": topo}
        doc |= {"modes": results} if scenario.modes else results[0]
        print(json.dumps(doc))
    else:
        for result in results:
            # One line per run, scalars only (--json has the evidence behind them).
            print(f"{args.scenario} on {topo}: " + ", ".join(
                f"{k}={v}" for k, v in result.items() if not isinstance(v, dict | list)))
    missed = [f"{args.scenario}{' (' + r['mode'] + ')' if r.get('mode') else ''}: {miss}"
              for r in results for miss in scenario.misses(r.get("mode"), r)]
    for line in missed:
        print(f"shadownet: target missed: {line}", file=sys.stderr)
    return 1 if missed else 0
