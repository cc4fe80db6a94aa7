"""Training sets from labelled history, and training the failure model on them.

Two sources:

* the NAB corpus: every series is one group's, labelled 1 inside its anomaly
  windows;
* labelled CSV files ``timestamp,<metrics...>,label``: each metric column is a
  series labelled by the file's ``label`` column, and each file is a group.

The model's calibration, gate and threshold are all chosen on out-of-group
predictions (:meth:`predictive.model.FailureModel.fit`), scored with NAB's
rules (standard profile) on windows made of the label's runs of 1s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from predictive.model import FailureModel
from predictive.nab.corpus import NabCorpus
from predictive.nab.crossval import choose, window_labels
from predictive.nab.scoring import FileLayout, Profile, file_layout
from predictive.series_io import label_columns, read_series_csv
from predictive.signals import signals

# NAB's standard profile (config/profiles.json): what a threshold is chosen for when
# training on CSV files, which bring no profile of their own (NAB training reads the
# corpus's own file).
STANDARD = Profile("standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)


@dataclass
class Dataset:
    """Signal rows, labels, group and NAB scoring layout per series."""

    signals: list[np.ndarray]
    labels: list[np.ndarray]
    groups: list[str]
    layouts: list[FileLayout]
    description: str
    profile: Profile = STANDARD  # what the threshold is chosen for


def nab_dataset(corpus: NabCorpus) -> Dataset:
    return Dataset([signals(f.values, f.times) for f in corpus.files],
                   [window_labels(f) for f in corpus.files],
                   [f.group for f in corpus.files], [f.layout for f in corpus.files],
                   f"NAB corpus {corpus.root} ({len(corpus.files)} files, "
                   "labelled by its anomaly windows)",
                   corpus.profiles.get("standard", STANDARD))


def csv_dataset(paths: Sequence[str | Path], label_column: str = "label") -> Dataset:
    """One series per metric column of each file; the file is its group."""
    data = Dataset([], [], [], [], f"{len(paths)} labelled CSV file(s): "
                   + ", ".join(str(p) for p in paths))
    for path in paths:
        table = read_series_csv(path)
        if label_column not in table.columns:
            raise ValueError(f"{path}: no {label_column!r} column "
                             f"(columns: {', '.join(table.columns)})")
        labels = table.values[:, table.columns.index(label_column)]
        if np.isnan(labels).any() or not np.isin(labels, (0.0, 1.0)).all():
            raise ValueError(f"{path}: column {label_column!r} must be 0 or 1 on every row")
        y = labels.astype(np.int64)
        skip = {label_column, *label_columns(table.columns)}
        metrics = [c for c in table.columns if c not in skip]
        if not metrics:
            raise ValueError(f"{path}: no metric columns besides the labels")
        layout = file_layout(str(path), len(y), label_runs(y))
        for col in metrics:
            data.signals.append(signals(table.values[:, table.columns.index(col)], table.times))
            data.labels.append(y)
            data.groups.append(str(path))
            data.layouts.append(layout)
    return data


def label_runs(y: np.ndarray) -> list[tuple[int, int]]:
    """The runs of 1s in a 0/1 column, as inclusive row ranges (the windows)."""
    edges = np.diff(np.concatenate(([0], y.astype(np.int64), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def train(data: Dataset, seed: int = 0) -> FailureModel:
    """Fit the model, then its gate and threshold on the out-of-group probabilities."""
    if len(set(data.groups)) < 2:
        raise ValueError("training needs two groups of series or more (two CSV files, "
                         "or a corpus with two groups): the calibration is fitted on "
                         "predictions for a group the model did not see")
    model = FailureModel()
    oof = model.fit(data.signals, data.labels, data.groups, description=data.description,
                    seed=seed)
    choice = choose(data.layouts, oof, data.profile)
    model.gate, model.threshold = choice.gate, choice.threshold
    model.meta["profile"] = data.profile.name
    return model
