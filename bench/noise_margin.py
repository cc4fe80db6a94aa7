"""How close noise comes to tripping a healthy node: noise-only, repeated, on a loaded machine.

Runs the ``noise-only`` scenario (predictive mode) ``--runs`` times, each on a
fresh lab, while ``--busy`` processes spin on the CPU (by default one per core:
the loaded machine on which CI once tripped the node). Per run it prints the
primary's lowest health and highest failure probability beside the levels
that trip it, then the medians with their spread. Needs root, Open vSwitch and
Mininet; drives OVS, so run nothing else that does meanwhile.

    .venv/bin/python bench/noise_margin.py [--runs 10] [--busy 2] [--topo linear,3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.scenarios import run_scenario  # noqa: E402
from shadownet.progress import Progress  # noqa: E402


def spin() -> None:  # pragma: no cover - a CPU hog, killed by the parent
    while True:
        pass


def spread(values: list[float]) -> str:
    return (f"median {statistics.median(values):.3f} "
            f"(min {min(values):.3f}, max {max(values):.3f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--busy", type=int, default=os.cpu_count() or 2,
                        help="busy-loop processes during the runs (0: an idle machine)")
    parser.add_argument("--topo", default=None, help="lab topology (the scenario's default)")
    parser.add_argument("--json", type=Path, help="also write every run's result here")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.busy < 0:
        parser.error("--runs must be >= 1 and --busy >= 0")
    hogs = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.busy)]
    for hog in hogs:
        hog.start()
    results = []
    try:
        with Progress("noise-margin", total=args.runs, quiet=args.quiet) as progress:
            for i in range(1, args.runs + 1):
                progress.step()
                r = run_scenario("noise-only", topo=args.topo, mode="predictive",
                                 log=progress.log)
                m = r["margin"]
                results.append(r)
                progress.clear()  # the result goes to stdout, on the same terminal
                print(f"run {i:2}: trips {r['trips']} migrations {r['migrations']} "
                      f"failed {r['failed']}/{r['requests']}  "
                      f"lowest health {m['lowest_health']:.3f} "
                      f"(trips at <= {m['enter_health']})  highest p "
                      f"{m['highest_probability']:.3f} (trips at >= {m['enter_probability']})",
                      flush=True)
    finally:
        for hog in hogs:
            hog.terminate()
            hog.join()
    print(f"{len(results)} runs, {args.busy} busy loops: "
          f"trips {sum(r['trips'] for r in results)}, "
          f"lowest health {spread([r['margin']['lowest_health'] for r in results])}, "
          f"highest p {spread([r['margin']['highest_probability'] for r in results])}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if all(r["trips"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
