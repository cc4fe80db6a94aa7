"""Building training sets from labelled history and fitting the failure model.

Two sources of labelled history are supported:

* the NAB corpus, labelled by its windows (the first half of each window, up to
  the labelled anomaly, is the "failure coming" target);
* the controller's own history: wide CSV files ``timestamp,<metrics...>,label``
  where ``label`` is 1 on rows that preceded or were part of a failure.

Either way, every file is replayed through a fresh :class:`EntityDetector` so
the model learns from exactly the features it will see in production.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from predictive.detector import DetectorConfig, EntityDetector
from predictive.model import FEATURES, FailureModel
from predictive.nab.corpus import NabCorpus
from predictive.nab.evaluate import failure_labels, run_detector
from predictive.series_io import read_series_csv


def features_for_table(
    times: np.ndarray, values: np.ndarray, columns: Sequence[str], config: DetectorConfig
) -> np.ndarray:
    """Replay rows through a fresh detector and return its feature row per input row."""
    det = EntityDetector(config)
    out = np.zeros((len(times), len(FEATURES)))
    cols = list(columns)
    for i, (t, row) in enumerate(zip(times.tolist(), values.tolist(), strict=True)):
        det.update(t, {c: v for c, v in zip(cols, row, strict=True) if v == v})
        out[i] = det._features
    return out


def dataset_from_csvs(
    paths: Sequence[str | Path], label_column: str = "label", config: DetectorConfig | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features and labels from wide CSVs with a 0/1 ``label_column``."""
    cfg = config or DetectorConfig()
    xs, ys, names = [], [], []
    for path in paths:
        table = read_series_csv(path)
        if label_column not in table.columns:
            raise ValueError(
                f"{path}: no {label_column!r} column (columns: {', '.join(table.columns)})"
            )
        li = table.columns.index(label_column)
        labels = table.values[:, li]
        if np.isnan(labels).any() or not np.isin(labels, (0.0, 1.0)).all():
            raise ValueError(f"{path}: column {label_column!r} must be 0 or 1 on every row")
        metric_idx = [i for i in range(len(table.columns)) if i != li]
        if not metric_idx:
            raise ValueError(f"{path}: no metric columns besides {label_column!r}")
        cols = [table.columns[i] for i in metric_idx]
        xs.append(features_for_table(table.times, table.values[:, metric_idx], cols, cfg))
        ys.append(labels.astype(np.int64))
        names.append(str(path))
    return np.vstack(xs), np.concatenate(ys), names


def dataset_from_nab(
    corpus: NabCorpus, config: DetectorConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Features and window-derived labels for every post-probation NAB row."""
    run = run_detector(corpus, config)
    keep = [np.arange(len(f.values)) >= f.layout.probation for f in corpus.files]
    X = np.vstack([x[k] for x, k in zip(run.features, keep, strict=True)])
    y = np.concatenate([failure_labels(f)[k] for f, k in zip(corpus.files, keep, strict=True)])
    return X, y


def train_model(X: np.ndarray, y: np.ndarray, description: str) -> FailureModel:
    """Fit the calibrated model (normal rows thinned 4x on long histories to bound time)."""
    stride = 4 if len(y) > 100_000 else 1
    return FailureModel().fit(X, y, description=description, negative_stride=stride)
