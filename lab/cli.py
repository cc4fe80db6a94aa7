"""``shadownet lab ...``: run a scenario on a Mininet topology and print the result."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    from lab.scenarios import SCENARIOS

    lab = subparsers.add_parser("lab", help="Mininet labs (needs root)")
    sub = lab.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="run a scenario end to end")
    run.add_argument("scenario", choices=sorted(SCENARIOS))
    run.add_argument("--topo", default="ring,6",
                     help="single,N | linear,N | tree,D,F | ring,N | fattree,K | zoo:NAME | "
                          "zoo:FILE.gml (default ring,6)")
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.add_argument("--hub", choices=("eventlet", "native"), help="controller hub")
    run.set_defaults(func=run_scenario)


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def run_scenario(args: argparse.Namespace) -> int:
    from lab.network import Lab
    from lab.ovs import LabError
    from lab.scenarios import SCENARIOS

    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    try:
        lab = Lab(args.topo, hub=args.hub)
    except (ValueError, FileNotFoundError) as exc:
        raise ValueError(f"--topo {args.topo!r}: {exc}") from None
    print(f"lab: {lab.info.name}: {lab.info.switches} switches, {lab.info.hosts} hosts, "
          f"{lab.info.switch_links} links", file=sys.stderr)
    try:
        with lab:
            print(f"lab: topology discovered in {time.monotonic() - started:.1f}s; "
                  f"running {args.scenario}", file=sys.stderr)
            result = SCENARIOS[args.scenario](lab)
    except LabError as exc:
        print(f"shadownet: error: {exc}", file=sys.stderr)
        return 1
    result = {"topo": args.topo, **result, "duration_s": round(time.monotonic() - started, 1)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.scenario} on {result['topo']}: " + ", ".join(
            f"{k}={v}" for k, v in result.items() if k != "topo"))
    return 0 if not result.get("dropped_pct") else 1
