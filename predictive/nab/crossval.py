"""Leave-one-group-out evaluation on NAB: scores that no choice was tuned to.

NAB has seven groups of series (AWS CloudWatch, ad exchange, known causes,
traffic, tweets, artificial with and without anomalies). For each group in turn:

1. the failure model is trained on the other six groups (its calibration on
   *their* leave-one-group-out predictions, :meth:`FailureModel.fit`);
2. for every profile, the alert gate (:data:`predictive.alerts.GATES`) and the
   threshold are chosen to maximise NAB's score on those six groups, read on
   their out-of-group probabilities;
3. the held-out group is scored with that model, gate and threshold.

The held-out detections of all seven folds are scored together, with NAB's
rules, as one corpus: that is the headline. Every baseline goes through the
same protocol (its gate and threshold are chosen on the other groups too), in
the same run. Beside the headline, labelled as tuned on everything, is NAB's
own protocol: one threshold swept over the whole corpus, applied to the same
cross-validated probabilities.

Also reported: per-group scores, the per-fold thresholds and the threshold each
group would have wanted (their spread), a reliability table of the held-out
probabilities, and what the model learned (the drop in average precision when
one signal is shuffled in the held-out group).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score

from predictive.alerts import GATES, Gate
from predictive.baselines import robust_max, rolling_zscore, windowed_gaussian
from predictive.model import FailureModel
from predictive.nab.corpus import NabCorpus, NabFile
from predictive.nab.scoring import (
    FileLayout,
    Profile,
    normalise,
    null_score,
    optimise_threshold,
    perfect_score,
    score_detections,
)
from predictive.signals import SIGNALS, signals

LEARNED = "shadownet"
BASELINES: dict[str, str] = {
    "robust-max": "largest robust z of shadownet's signals, no learning",
    "rolling-z": "z-score against the previous 100 values",
    "windowed-gaussian": "NAB's windowed Gaussian (6400 values, refit every 100)",
}
RELIABILITY_BINS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


def window_labels(f: NabFile) -> np.ndarray:
    """1 for every row inside one of the file's anomaly windows, else 0."""
    y = np.zeros(len(f.values), dtype=np.int64)
    for a, b in f.layout.windows:
        y[a : b + 1] = 1
    return y


@dataclass
class Fold:
    """One held-out group: the indices of its files (test) and of the others (train)."""

    group: str
    test: list[int]
    train: list[int]


@dataclass
class Choice:
    gate: Gate
    threshold: float


def choose(layouts: Sequence[FileLayout], probs: Sequence[np.ndarray], profile: Profile,
           gates: Sequence[Gate] = GATES) -> Choice:
    """The gate and threshold that score best on these (training) files."""
    best: tuple[float, Choice] | None = None
    for gate in gates:
        threshold, raw = optimise_threshold(layouts, [gate(p) for p in probs], profile)
        if best is None or raw > best[0]:
            best = (raw, Choice(gate, threshold))
    assert best is not None
    return best[1]


def evaluate(corpus: NabCorpus, *, seed: int = 0,
             log: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    """The whole leave-one-group-out evaluation, as a JSON-ready dict."""
    t0 = time.perf_counter()
    files = list(corpus.files)
    groups = sorted({f.group for f in files})
    if sum(1 for g in groups if any(f.layout.windows for f in files if f.group == g)) < 2:
        raise ValueError("leave-one-group-out needs two groups with anomaly windows or more")
    sig = [signals(f.values, f.times) for f in files]
    labels = [window_labels(f) for f in files]
    t_signals = time.perf_counter() - t0
    unsupervised = {
        "robust-max": [robust_max(s) for s in sig],
        "rolling-z": [rolling_zscore(f.values) for f in files],
        "windowed-gaussian": [windowed_gaussian(f.values) for f in files],
    }
    folds = [Fold(g, [i for i, f in enumerate(files) if f.group == g],
                  [i for i, f in enumerate(files) if f.group != g]) for g in groups]
    held_out = [np.zeros(0)] * len(files)  # the learned model's held-out probabilities
    train_probs: dict[str, list[np.ndarray]] = {}
    importance: dict[str, list[float]] = {name: [] for name in SIGNALS}
    t_fit = time.perf_counter()
    for fold in folds:
        log(f"fold {fold.group}: training on {len(fold.train)} files")
        model = FailureModel()
        oof = model.fit([sig[i] for i in fold.train], [labels[i] for i in fold.train],
                        [files[i].group for i in fold.train], seed=seed)
        train_probs[fold.group] = oof
        for i in fold.test:
            held_out[i] = model.predict_proba(sig[i])
        if any(labels[i].any() for i in fold.test):
            for name, drop in _importance(model, [sig[i] for i in fold.test],
                                          [labels[i] for i in fold.test], seed).items():
                importance[name].append(drop)
    t_fit = time.perf_counter() - t_fit
    layouts = [f.layout for f in files]
    out: dict[str, Any] = {
        "corpus": {"path": str(corpus.root), "files": len(files), "rows": corpus.rows,
                   "windows": sum(len(f.layout.windows) for f in files), "groups": groups},
        "protocol": "leave one NAB group out: model, calibration, gate and threshold "
                    "chosen on the other groups; held-out detections scored together",
        "detectors": {},
    }
    for name, profile in corpus.profiles.items():
        per_detector: dict[str, Any] = {}
        learned_choices = {f.group: choose([layouts[i] for i in f.train],
                                           train_probs[f.group], profile) for f in folds}
        per_detector[LEARNED] = _score(files, folds, held_out, learned_choices, profile)
        for base, scores in unsupervised.items():
            choices = {f.group: choose([layouts[i] for i in f.train],
                                       [scores[i] for i in f.train], profile) for f in folds}
            per_detector[base] = _score(files, folds, scores, choices, profile)
        per_detector[LEARNED]["tuned_on_everything"] = _tuned_on_everything(
            layouts, held_out, profile)
        per_detector[LEARNED]["wanted_thresholds"] = _wanted_thresholds(
            files, folds, held_out, learned_choices, profile)
        out["detectors"][name] = per_detector
    out["reliability"] = reliability(held_out, labels, [f.layout.probation for f in files])
    out["importance"] = {k: round(float(np.mean(v)), 4) for k, v in importance.items() if v}
    out["notes"] = {LEARNED: "gradient boosting over the scale-free signals, isotonic "
                             "calibration on out-of-group predictions", **BASELINES}
    out["timing"] = {"signals_seconds": round(t_signals, 2),
                     "signals_points_per_second": round(corpus.rows / max(t_signals, 1e-9)),
                     "fit_seconds": round(t_fit, 1),
                     "total_seconds": round(time.perf_counter() - t0, 1)}
    return out


def _score(files: Sequence[NabFile], folds: Sequence[Fold], probs: Sequence[np.ndarray],
           choices: dict[str, Choice], profile: Profile) -> dict[str, Any]:
    """Held-out detections of every fold, scored as one corpus, with the per-group view."""
    layouts = [f.layout for f in files]
    scores = [score_detections(f.layout, np.zeros(len(f.values), dtype=bool), profile)
              for f in files]
    for fold in folds:
        c = choices[fold.group]
        for i in fold.test:
            scores[i] = score_detections(layouts[i], c.gate(probs[i]) >= c.threshold, profile)
    raw = sum(s.score for s in scores)
    per_group: dict[str, Any] = {}
    for fold in folds:
        lays = [layouts[i] for i in fold.test]
        g_raw = sum(scores[i].score for i in fold.test)
        windows = sum(scores[i].windows for i in fold.test)
        c = choices[fold.group]
        per_group[fold.group] = {
            "score": round(normalise(g_raw, null_score(lays, profile),
                                     perfect_score(lays, profile)), 1) if windows else None,
            "raw": round(g_raw, 3),
            "detected": sum(scores[i].windows_detected for i in fold.test),
            "windows": windows,
            "false_positives": sum(scores[i].fp for i in fold.test),
            "threshold": _finite(c.threshold),
            "gate": [c.gate.horizon, c.gate.factor],
        }
    return {
        "score": round(normalise(raw, null_score(layouts, profile),
                                 perfect_score(layouts, profile)), 1),
        "detected": sum(s.windows_detected for s in scores),
        "windows": sum(s.windows for s in scores),
        "false_positives": sum(s.fp for s in scores),
        "groups": per_group,
    }


def _tuned_on_everything(layouts: Sequence[FileLayout], probs: Sequence[np.ndarray],
                         profile: Profile) -> dict[str, Any]:
    """NAB's own protocol on the held-out probabilities: the best single gate and threshold
    for the whole corpus (chosen with the answers: not a held-out score)."""
    c = choose(layouts, probs, profile)
    raw = sum(score_detections(lay, c.gate(p) >= c.threshold, profile).score
              for lay, p in zip(layouts, probs, strict=True))
    return {"score": round(normalise(raw, null_score(layouts, profile),
                                     perfect_score(layouts, profile)), 1),
            "threshold": _finite(c.threshold), "gate": [c.gate.horizon, c.gate.factor]}


def _wanted_thresholds(files: Sequence[NabFile], folds: Sequence[Fold],
                       probs: Sequence[np.ndarray], choices: dict[str, Choice],
                       profile: Profile) -> dict[str, Any]:
    """The threshold each group would have chosen for itself (with its fold's gate)."""
    wanted: dict[str, float | None] = {}
    for fold in folds:
        if not any(files[i].layout.windows for i in fold.test):
            continue
        gate = choices[fold.group].gate
        t, _ = optimise_threshold([files[i].layout for i in fold.test],
                                  [gate(probs[i]) for i in fold.test], profile)
        wanted[fold.group] = _finite(t)
    chosen = [c.threshold for c in choices.values() if math.isfinite(c.threshold)]
    finite = [t for t in wanted.values() if t is not None]
    return {"per_group": wanted,
            "spread": _spread(finite), "chosen_spread": _spread(chosen)}


def reliability(probs: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                probation: Sequence[int]) -> list[dict[str, Any]]:
    """Held-out rows (after probation) binned by probability: predicted vs observed."""
    p = np.concatenate([pr[k:] for pr, k in zip(probs, probation, strict=True)])
    y = np.concatenate([lb[k:] for lb, k in zip(labels, probation, strict=True)])
    table = []
    edges = RELIABILITY_BINS
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (p >= lo) & ((p < hi) if hi < 1.0 else (p <= hi))
        n = int(inside.sum())
        table.append({"bin": [lo, hi], "rows": n,
                      "mean_probability": round(float(p[inside].mean()), 4) if n else None,
                      "in_window": round(float(y[inside].mean()), 4) if n else None})
    return table


def _importance(model: FailureModel, X: Sequence[np.ndarray], y: Sequence[np.ndarray],
                seed: int) -> dict[str, float]:
    """Drop in held-out average precision when one signal's column is shuffled."""
    Xa, ya = np.vstack(X), np.concatenate(y)
    base = average_precision_score(ya, model.predict_proba(Xa))
    rng = np.random.default_rng(seed)
    out = {}
    for j, name in enumerate(SIGNALS):
        shuffled = Xa.copy()
        shuffled[:, j] = rng.permutation(shuffled[:, j])
        out[name] = float(base - average_precision_score(ya, model.predict_proba(shuffled)))
    return out


def _finite(x: float) -> float | None:
    return round(float(x), 4) if math.isfinite(x) else None


def _spread(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": round(min(values), 4), "median": round(float(np.median(values)), 4),
            "max": round(max(values), 4)}
