"""Loading and scoring the NAB corpus: the pandas bulk reader against the row-by-row one.

The row-by-row reader (``predictive.series_io._read_rows``) is the reader every
release before the bulk path used, unchanged; it stays in the library as the
judge of bad files, so it is the baseline here. Each stage runs ``--runs``
times per reader, old and new taking turns, and prints the median with the
min-max spread and the ratio new/old (below 1: faster). The stages:

  * load: ``load_corpus`` of the whole corpus (58 files, 365,558 rows);
  * score: load, score every file with the shipped failure model (signals,
    model, gate), and score the three NAB profiles (threshold swept over the
    corpus).

Both readers must give bit-identical arrays and the same NAB scores; the bench
checks it and says so. A benchmark, not a test.

Run:  .venv/bin/python bench/series_load.py [--runs 5] [--skip-score] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from predictive import series_io
from predictive.nab import corpus as corpus_mod
from predictive.nab.corpus import DEFAULT_NAB_DIR, NabCorpus, load_corpus

Reader = Callable[..., series_io.SeriesTable]


def row_by_row(path: str | Path, *, strict_order: bool = False) -> series_io.SeriesTable:
    """The reader before the bulk path: the same checks, then the csv module row by row."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    if p.is_dir():
        raise ValueError(f"{p}: is a directory, expected a CSV file")
    return series_io._read_rows(p, strict_order)


READERS: dict[str, Reader] = {"old": row_by_row, "new": series_io.read_series_csv}


@contextmanager
def reading_with(reader: Reader) -> Iterator[None]:
    """Make the corpus loader use ``reader`` for the duration."""
    with mock.patch.object(corpus_mod, "read_series_csv", reader):
        yield


def load(root: Path) -> NabCorpus:
    return load_corpus(root)


def score(root: Path) -> dict[str, Any]:
    from predictive.nab.scoring import score_corpus
    from predictive.predict import default_model
    from predictive.signals import signals

    corpus = load_corpus(root)
    model = default_model()
    alerts = [model.gate(model.predict_proba(signals(f.values, f.times))) for f in corpus.files]
    layouts = [f.layout for f in corpus.files]
    return {name: round(score_corpus(layouts, alerts, p).normalised, 4)
            for name, p in corpus.profiles.items()}


def timed(stage: Callable[[Path], Any], root: Path, runs: int) -> tuple[dict[str, list[float]],
                                                                        dict[str, Any]]:
    """Seconds per run for each reader (taking turns), and each reader's last result."""
    seconds: dict[str, list[float]] = {name: [] for name in READERS}
    results: dict[str, Any] = {}
    for _ in range(runs):
        for name, reader in READERS.items():
            with reading_with(reader):
                started = time.perf_counter()
                results[name] = stage(root)
                seconds[name].append(time.perf_counter() - started)
    return seconds, results


def same_corpus(a: NabCorpus, b: NabCorpus) -> bool:
    return len(a.files) == len(b.files) and all(
        x.name == y.name and x.layout.windows == y.layout.windows
        and x.layout.weight.tobytes() == y.layout.weight.tobytes()
        and x.times.tobytes() == y.times.tobytes()
        and x.values.tobytes() == y.values.tobytes() for x, y in zip(a.files, b.files,
                                                                     strict=True))


def summary(seconds: dict[str, list[float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, values in seconds.items():
        out[name] = {"median_s": round(statistics.median(values), 4),
                     "min_s": round(min(values), 4), "max_s": round(max(values), 4),
                     "runs": len(values)}
    out["ratio_new_old"] = round(out["new"]["median_s"] / out["old"]["median_s"], 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_NAB_DIR, help="NAB directory")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-score", action="store_true", help="time loading only")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    report: dict[str, Any] = {}
    load(args.data)  # warm the page cache and the imports before any clock starts
    seconds, corpora = timed(load, args.data, args.runs)
    report["load"] = summary(seconds) | {
        "rows": corpora["new"].rows, "identical": same_corpus(corpora["old"], corpora["new"])}
    if not args.skip_score:
        seconds, scores = timed(score, args.data, args.runs)
        report["score"] = summary(seconds) | {"identical": scores["old"] == scores["new"],
                                              "standard": scores["new"]["standard"]}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"NAB corpus {args.data}: {report['load']['rows']:,} rows, {args.runs} runs per reader")
    for stage, r in report.items():
        for name in READERS:
            s = r[name]
            print(f"  {stage:<6} {name:<4} median {s['median_s']:8.3f} s "
                  f"(min {s['min_s']:.3f} - max {s['max_s']:.3f})")
        print(f"  {stage:<6} ratio new/old {r['ratio_new_old']:.3f}; identical results: "
              f"{'yes' if r['identical'] else 'NO'}")


if __name__ == "__main__":
    main()
