"""``shadownet predict ...``: NAB evaluation, scoring any series, training the model.

Registered into the ``shadownet`` parser by ``shadownet/cli.py``.  Each
sub-command's ``func(args)`` returns an exit code; user errors are raised as
ValueError / FileNotFoundError with a one-line message, which the top-level CLI
prints as ``shadownet: error: <msg>`` (exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from predictive.nab.corpus import DEFAULT_NAB_DIR, load_corpus
from predictive.series_io import read_series_csv, write_scores_csv

# The model pulls in scikit-learn (over a second to import); the commands import
# it when they run, so `shadownet --help` and the other command groups start fast.

PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``predict`` command group to the ``shadownet`` parser."""
    p = subparsers.add_parser("predict", help="predictive engine: NAB evaluation, scoring")
    sub = p.add_subparsers(dest="predict_command", metavar="SUBCOMMAND", required=True)

    nab = sub.add_parser("nab", help="leave-one-group-out NAB evaluation against baselines")
    nab.add_argument("--data", type=Path, default=DEFAULT_NAB_DIR, help="NAB directory")
    nab.add_argument("--json", action="store_true", help="print the result as JSON")
    nab.add_argument("--only", action="append", metavar="SUBSTR",
                     help="restrict to matching files (two groups with windows at least)")
    nab.add_argument("--seed", type=int, default=0, help="the classifier's random seed")
    nab.set_defaults(func=cmd_nab)

    score = sub.add_parser("score", help="failure probability per row of a CSV series")
    score.add_argument("input", type=Path, help="CSV: timestamp,value or timestamp,<metrics...>")
    out = score.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON instead of CSV")
    out.add_argument("-o", "--output", type=Path, help="write the per-row CSV here")
    score.add_argument("--model", type=Path,
                       help="trained model (default: the shipped one, trained on NAB)")
    score.add_argument("--metrics", type=_names, metavar="A,B",
                       help="the columns to score (default: all but label columns)")
    score.set_defaults(func=cmd_score)

    train = sub.add_parser("train", help="train the failure model from labelled history")
    src = train.add_mutually_exclusive_group(required=True)
    src.add_argument("--nab", type=Path, metavar="DIR", help="train on the NAB corpus windows")
    src.add_argument("--csv", type=Path, nargs="+", metavar="FILE",
                     help="labelled CSVs (two or more: each file is a group)")
    train.add_argument("--label-column", default="label", help="0/1 column in the CSVs")
    train.add_argument("-o", "--output", type=Path, required=True, help="model file (skops)")
    train.add_argument("--seed", type=int, default=0, help="the classifier's random seed")
    train.set_defaults(func=cmd_train)


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give one column name or more, comma-separated")
    return names


# -- nab --------------------------------------------------------------------------------------


def cmd_nab(args: argparse.Namespace) -> int:
    from predictive.nab.crossval import evaluate

    corpus = load_corpus(args.data, only=args.only)
    result = evaluate(corpus, seed=args.seed,
                      log=lambda msg: print(msg, file=sys.stderr) if not args.json else None)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        print(format_nab(result))
    return 0


def format_nab(r: dict[str, Any]) -> str:
    """Human-readable report: scores per profile and detector, groups, calibration."""
    c = r["corpus"]
    det = r["detectors"]
    names = list(det["standard"])
    lines = [f"NAB (v1.1 scoring rules) on {c['path']}: {c['files']} files, {c['rows']:,} "
             f"rows, {c['windows']} windows", f"protocol: {r['protocol']}", "",
             f"{'profile':<20}" + "".join(f"{n:>19}" for n in names)
             + f"{'(tuned on all)':>16}"]
    for prof, d in det.items():
        lines.append(f"{prof:<20}" + "".join(f"{d[n]['score']:>19.1f}" for n in names)
                     + f"{d[names[0]]['tuned_on_everything']['score']:>16.1f}")
    lines += ["", "per held-out group (standard):",
              f"  {'group':<24}" + "".join(f"{n:>19}" for n in names)]
    for g in det["standard"][names[0]]["groups"]:
        cells = []
        for n in names:
            s = det["standard"][n]["groups"][g]["score"]
            cells.append(f"{'-' if s is None else f'{s:.1f}':>19}")
        lines.append(f"  {g:<24}" + "".join(cells))
    wanted = det["standard"][names[0]]["wanted_thresholds"]
    lines += ["", f"thresholds (standard): chosen per fold {_spread(wanted['chosen_spread'])}; "
              f"wanted by each group {_spread(wanted['spread'])}", "",
              "reliability of the held-out probability (rows after probation):",
              f"  {'bin':<14}{'rows':>9}{'mean p':>9}{'in window':>11}"]
    for b in r["reliability"]:
        lo, hi = b["bin"]
        mp = "-" if b["mean_probability"] is None else f"{b['mean_probability']:.3f}"
        iw = "-" if b["in_window"] is None else f"{b['in_window']:.3f}"
        lines.append(f"  {f'{lo:g}-{hi:g}':<14}{b['rows']:>9}{mp:>9}{iw:>11}")
    imp = sorted(r["importance"].items(), key=lambda kv: -kv[1])
    lines += ["", "what the model learned (drop in held-out average precision, signal "
              "shuffled): " + ", ".join(f"{k} {v:.3f}" for k, v in imp)]
    t = r["timing"]
    lines.append(f"run time {t['total_seconds']:.0f} s: signals {t['signals_seconds']:.1f} s "
                 f"({t['signals_points_per_second']:,} points/s), model fits "
                 f"{t['fit_seconds']:.0f} s")
    return "\n".join(lines)


def _spread(s: dict[str, float] | None) -> str:
    return "-" if not s else f"{s['median']:.3f} (min {s['min']:.3f}, max {s['max']:.3f})"


# -- score ------------------------------------------------------------------------------------


def cmd_score(args: argparse.Namespace) -> int:
    from predictive.model import FailureModel
    from predictive.predict import COLUMNS, default_model, score_table

    table = read_series_csv(args.input)
    model = FailureModel.load(args.model) if args.model else default_model()
    t0 = time.perf_counter()
    scores = score_table(table, model, args.metrics,
                         warn=lambda msg: print(f"shadownet: warning: {msg}", file=sys.stderr))
    elapsed = time.perf_counter() - t0
    rows = scores.rows()
    if args.json:
        json.dump({"input": str(args.input), "metrics": list(scores.metrics),
                   "ignored": list(scores.ignored), "rows": len(rows), "model": model.meta,
                   "threshold": model.threshold, "seconds": round(elapsed, 3),
                   "columns": ["timestamp", *COLUMNS],
                   "scores": [[ts, *r] for ts, r in zip(table.raw_times, rows, strict=True)]},
                  sys.stdout)
        print()
    elif args.output:
        write_scores_csv(args.output, table.raw_times, COLUMNS, rows)
        peak = float(scores.probability.max()) if rows else 0.0
        print(f"wrote {len(rows)} rows to {args.output} (max failure_probability "
              f"{peak:.3f}, {int(scores.alarm.sum())} alarms, "
              f"{len(rows) / max(elapsed, 1e-9):,.0f} rows/s)")
    else:
        write_scores_csv(sys.stdout, table.raw_times, COLUMNS, rows)
    return 0


# -- train ------------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    from predictive.training import csv_dataset, nab_dataset, train

    data = nab_dataset(load_corpus(args.nab)) if args.nab is not None \
        else csv_dataset(args.csv, args.label_column)
    model = train(data, seed=args.seed)
    path = model.save(args.output)
    print(f"trained on {model.meta['rows']:,} rows ({model.meta['positives']:,} in failure "
          f"windows) in {model.meta['fit_seconds']} s; gate {model.gate.horizon} rows "
          f"x{model.gate.factor:g}, threshold {model.threshold}; saved {path}")
    return 0
