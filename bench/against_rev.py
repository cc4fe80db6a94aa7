"""Run one benchmark on an older revision and on this tree, interleaved, and compare.

A refactor should not slow a hot path; this shows whether it did. The baseline
revision is checked out in a temporary git worktree, and the benchmark command
runs there and here in turn (baseline, current, baseline, ...), so drift on a
shared machine hits both alike. Each run must print JSON; ``--metric`` names
the number to compare by its dotted path. Medians, their spread (min–max) and
the ratio current/baseline are printed side by side.

    .venv/bin/python bench/against_rev.py --rev aa5c187 --runs 5 \\
        --metric packet_in_per_s.eventlet -- bench/packet_in_rate.py --seconds 5 --json -q

The command is a Python script path relative to the repository root followed by
its arguments; it runs with this venv's interpreter, with the revision's tree
first on the module path.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def metric(doc: Any, path: str) -> float:
    """The number at ``a.b.c`` in a JSON document."""
    for part in path.split("."):
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return float(doc)


def run(tree: Path, command: list[str], paths: list[str]) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONUNBUFFERED": "1"}
    out = subprocess.run([sys.executable, str(tree / command[0]), *command[1:]], cwd=tree,
                         env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"against-rev: {command[0]} failed in {tree}:\n{out.stderr[-2000:]}")
    try:
        doc = json.loads(out.stdout)
        return [metric(doc, path) for path in paths]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise SystemExit(f"against-rev: no number at {paths} in the output "
                         f"({type(exc).__name__}: {exc}):\n{out.stdout[-500:]}") from None


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):12.1f}  ({min(values):.1f}–{max(values):.1f})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rev", required=True, help="the baseline git revision")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--metric", required=True, action="append",
                   help="dotted path of a number in the JSON (repeat for several)")
    p.add_argument("--json", action="store_true")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("give the benchmark after --")
    with tempfile.TemporaryDirectory(prefix="against-rev-") as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base),
                        args.rev], check=True, capture_output=True)
        try:
            values: dict[str, dict[str, list[float]]] = {
                m: {"baseline": [], "current": []} for m in args.metric}
            for i in range(args.runs):
                for name, tree in (("baseline", base), ("current", ROOT)):
                    got = run(tree, command, args.metric)
                    for m, v in zip(args.metric, got, strict=True):
                        values[m][name].append(v)
                    print(f"[against-rev] run {i + 1}/{args.runs} {name}: "
                          + ", ".join(f"{v:.1f}" for v in got), file=sys.stderr, flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                           check=False, capture_output=True)
    report: dict[str, dict[str, Any]] = {}
    for m, pair in values.items():
        ratio = statistics.median(pair["current"]) / statistics.median(pair["baseline"])
        paired = statistics.median(c / b for b, c in zip(pair["baseline"], pair["current"],
                                                         strict=True) if b)
        report[m] = {"runs": pair, "ratio_of_medians": ratio, "median_paired_ratio": paired}
    if args.json:
        print(json.dumps({"rev": args.rev, "metrics": report}))
        return 0
    print(f"{' '.join(command)}: {args.runs} interleaved runs each")
    for m, r in report.items():
        print(f"[{m}]")
        print(f"  baseline {args.rev[:12]:12s} {summary(r['runs']['baseline'])}")
        print(f"  current  {'HEAD+tree':12s} {summary(r['runs']['current'])}")
        print(f"  current / baseline = {r['ratio_of_medians']:.3f}x "
              f"(median of paired runs {r['median_paired_ratio']:.3f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
