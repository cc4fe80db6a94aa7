"""``shadownet predict ...``: NAB evaluation, scoring any series, training the model.

Registered into the ``shadownet`` parser by ``shadownet/cli.py``.  Each
sub-command's ``func(args)`` returns an exit code; user errors are raised as
ValueError / FileNotFoundError with a one-line message, which the top-level CLI
prints as ``shadownet: error: <msg>`` (exit 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from predictive.nab.corpus import DEFAULT_NAB_DIR, load_corpus
from predictive.series_io import read_series_csv, write_scores_csv

# The detector and model pull in scikit-learn (over a second to import); the
# commands import them when they run, so `shadownet --help` and the other
# command groups start fast.

PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``predict`` command group to the ``shadownet`` parser."""
    p = subparsers.add_parser("predict", help="predictive engine: NAB evaluation, scoring")
    sub = p.add_subparsers(dest="predict_command", metavar="SUBCOMMAND", required=True)

    nab = sub.add_parser("nab", help="score the detector on the NAB corpus (3 profiles)")
    nab.add_argument("--data", type=Path, default=DEFAULT_NAB_DIR, help="NAB directory")
    nab.add_argument("--json", action="store_true", help="print the result as JSON")
    nab.add_argument(
        "--folds", type=int, default=5, help="folds for the model's cross-validation by file"
    )
    nab.add_argument(
        "--no-model", action="store_true", help="skip the cross-validated learned model"
    )
    nab.add_argument(
        "--only", action="append", metavar="SUBSTR", help="restrict to matching files"
    )
    nab.set_defaults(func=cmd_nab)

    score = sub.add_parser("score", help="failure probability per row of a CSV series")
    score.add_argument("input", type=Path, help="CSV: timestamp,value or timestamp,<metrics...>")
    out = score.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON instead of CSV")
    out.add_argument("-o", "--output", type=Path, help="write the per-row CSV here")
    score.add_argument("--model", type=Path, help="trained model (shadownet predict train)")
    score.add_argument(
        "--warmup", type=int, default=None, help="rows used to learn seasonality (default 750)"
    )
    score.set_defaults(func=cmd_score)

    train = sub.add_parser("train", help="train the failure model from labelled history")
    src = train.add_mutually_exclusive_group(required=True)
    src.add_argument("--nab", type=Path, metavar="DIR", help="train on the NAB corpus windows")
    src.add_argument("--csv", type=Path, nargs="+", metavar="FILE", help="labelled wide CSVs")
    train.add_argument("--label-column", default="label", help="0/1 column in the CSVs")
    train.add_argument("-o", "--output", type=Path, required=True, help="model file (skops)")
    train.set_defaults(func=cmd_train)


# -- nab --------------------------------------------------------------------------------------


def cmd_nab(args: argparse.Namespace) -> int:
    from predictive.nab.evaluate import evaluate

    if args.folds < 2:
        raise ValueError("--folds must be at least 2")
    corpus = load_corpus(args.data, only=args.only)
    folds = None if args.no_model else min(args.folds, len(corpus.files))
    if folds is not None and folds < 2:
        raise ValueError("cross-validation by file needs at least 2 files (use --no-model)")
    result = evaluate(corpus, model_folds=folds)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        print(format_nab(result))
    return 0


def format_nab(r: dict[str, Any]) -> str:
    """Human-readable NAB report: scores, groups, scoreboard, speed."""
    c = r["corpus"]
    lines = [
        f"NAB (v1.1 scoring rules) on {c['path']}: {c['files']} files, "
        f"{c['rows']:,} rows, {c['windows']} windows",
    ]
    for name, d in r["detectors"].items():
        lines += ["", f"{name}", f"  trained: {d['trained']}"]
        head = f"  {'profile':<20} {'score':>7} {'threshold':>10} {'windows':>9} {'FP rows':>8}"
        lines.append(head)
        for prof in PROFILES:
            p = d["profiles"][prof]
            win = f"{p['windows_detected']}/{p['windows']}"
            lines.append(
                f"  {prof:<20} {p['score']:>7.2f} {_thr(p['threshold']):>10} {win:>9} "
                f"{p['false_positive_rows']:>8}"
            )
        lines.append("  per group (standard profile, corpus threshold):")
        lines.append(f"    {'group':<24} {'files':>5} {'windows':>9} {'FP rows':>8} {'score':>7}")
        for g, s in d["groups"]["standard"].items():
            norm = "-" if s["normalised"] is None else f"{s['normalised']:.1f}"
            win = f"{s['detected']}/{s['windows']}"
            lines.append(
                f"    {g:<24} {s['files']:>5} {win:>9} {s['false_positives']:>8} {norm:>7}"
            )
    board = ", ".join(f"{k} {v:g}" for k, v in r["scoreboard_standard"].items())
    t = r["timing"]
    lines += [
        "",
        f"published scoreboard (standard): {board}",
        f"run time {t['total_seconds']:.1f} s: detector {t['detector_seconds']:.2f} s "
        f"({t['points_per_second']:,} points/s)"
        + (f", model cross-validation {t['model_cv_seconds']:.1f} s" if "model_cv_seconds" in t
           else ""),
    ]
    return "\n".join(lines)


def _thr(t: float | None) -> str:
    return "none" if t is None else f"{t:.4g}"


# -- score ------------------------------------------------------------------------------------

def score_columns() -> tuple[str, ...]:
    from predictive.detector import COMPONENTS

    return ("failure_probability", "alert", *COMPONENTS, "top_metric")


def cmd_score(args: argparse.Namespace) -> int:
    from predictive.detector import COMPONENTS, DetectorConfig, EntityDetector
    from predictive.model import FailureModel

    table = read_series_csv(args.input)
    model = FailureModel.load(args.model) if args.model else None
    cfg = DetectorConfig()
    if args.warmup is not None:
        if args.warmup < 1:
            raise ValueError("--warmup must be a positive number of rows")
        base = dataclasses.replace(cfg.baseline, warmup=args.warmup)
        cfg = dataclasses.replace(cfg, baseline=base)
    det = EntityDetector(cfg, model)
    rows: list[list[Any]] = []
    t0 = time.perf_counter()
    for t, metrics in table.rows():
        up = det.update(t, metrics)
        c = up.components
        top = up.top_metrics[0][0] if up.top_metrics else ""
        rows.append([up.failure_probability, up.alert, *(c[k] for k in COMPONENTS), top])
    elapsed = time.perf_counter() - t0
    if args.json:
        json.dump(
            {
                "input": str(args.input),
                "metrics": list(table.columns),
                "rows": len(rows),
                "model": None if model is None else model.meta,
                "seconds": round(elapsed, 3),
                "columns": ["timestamp", *score_columns()],
                "scores": [[ts, *r] for ts, r in zip(table.raw_times, rows, strict=True)],
            },
            sys.stdout,
        )
        print()
    elif args.output:
        write_scores_csv(args.output, table.raw_times, score_columns(), rows)
        peak = max(r[0] for r in rows)
        print(
            f"wrote {len(rows)} rows to {args.output} "
            f"(max failure_probability {peak:.3f}, {len(rows) / max(elapsed, 1e-9):,.0f} rows/s)"
        )
    else:
        write_scores_csv(sys.stdout, table.raw_times, score_columns(), rows)
    return 0


# -- train ------------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    from predictive.training import dataset_from_csvs, dataset_from_nab, train_model

    if args.nab is not None:
        corpus = load_corpus(args.nab)
        X, y = dataset_from_nab(corpus)
        desc = f"NAB corpus {corpus.root} ({len(corpus.files)} files, window-derived labels)"
    else:
        X, y, names = dataset_from_csvs(args.csv, args.label_column)
        desc = f"{len(names)} labelled CSV file(s): {', '.join(names)}"
    model = train_model(X, y, desc)
    path = model.save(args.output)
    print(
        f"trained on {len(y):,} rows ({int(y.sum()):,} labelled failure) in "
        f"{model.meta['fit_seconds']} s; saved {path}"
    )
    return 0
