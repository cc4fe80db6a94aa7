"""Scoring a table of series: a failure probability, alerts and alarms per row.

Each metric column is scored alone (its signals through the failure model);
the entity's probability at a row is the largest of its metrics', and the
metric that gave it is named. Alerts come from the model's gate, alarms are
the alerts at or above the model's threshold.

Which columns are metrics is explicit: ``metrics`` names them, and otherwise
every column but the labels (:data:`predictive.series_io.LABEL_NAMES`) is one.
A label column is never scored as an input: it would hand the detector the
answers it is judged on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from predictive.model import FailureModel
from predictive.series_io import SeriesTable, label_columns
from predictive.signals import signals

DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "nab.skops"
COLUMNS = ("failure_probability", "alert", "alarm", "top_metric")


@dataclass(frozen=True)
class Scores:
    metrics: tuple[str, ...]
    ignored: tuple[str, ...]  # label columns left out
    probability: np.ndarray
    alert: np.ndarray
    alarm: np.ndarray
    top_metric: tuple[str, ...]

    def rows(self) -> list[list[object]]:
        return [[float(p), float(a), int(m), t] for p, a, m, t in zip(
            self.probability, self.alert, self.alarm, self.top_metric, strict=True)]


def default_model() -> FailureModel:
    """The model shipped with shadownet (trained on all of NAB: see docs/predictive.md)."""
    if not DEFAULT_MODEL.exists():
        raise FileNotFoundError(f"{DEFAULT_MODEL}: the shipped model is missing; train one "
                                "with 'shadownet predict train --nab DIR -o FILE' and pass "
                                "it with --model")
    return FailureModel.load(DEFAULT_MODEL)


def pick_metrics(table: SeriesTable, metrics: Sequence[str] | None,
                 warn: Callable[[str], None]) -> tuple[list[str], list[str]]:
    """The metric columns to score, and the label columns left out (with a warning)."""
    labels = label_columns(table.columns)
    if metrics:
        missing = [m for m in metrics if m not in table.columns]
        if missing:
            raise ValueError(f"{table.path}: no column {', '.join(map(repr, missing))} "
                             f"(columns: {', '.join(table.columns)})")
        named = [m for m in metrics if m in labels]
        if named:
            raise ValueError(f"{table.path}: {', '.join(map(repr, named))} is a label column, "
                             "not a metric: scoring it would feed the answers in")
        return list(dict.fromkeys(metrics)), []
    chosen = [c for c in table.columns if c not in labels]
    if labels:
        warn(f"{table.path}: ignoring label column(s) {', '.join(labels)} "
             "(not metrics; choose columns with --metrics)")
    if not chosen:
        raise ValueError(f"{table.path}: no metric columns besides the labels")
    return chosen, labels


def score_table(table: SeriesTable, model: FailureModel, metrics: Sequence[str] | None = None,
                warn: Callable[[str], None] = lambda msg: None) -> Scores:
    chosen, ignored = pick_metrics(table, metrics, warn)
    per_metric = np.column_stack([
        model.predict_proba(signals(table.values[:, table.columns.index(c)], table.times))
        for c in chosen])
    top = per_metric.argmax(axis=1)
    probability = per_metric[np.arange(len(top)), top]
    alert = model.gate(probability)
    threshold = model.threshold if model.threshold is not None else np.inf
    return Scores(tuple(chosen), tuple(ignored), probability, alert, alert >= threshold,
                  tuple(chosen[k] for k in top))
