"""Run the detector over the NAB corpus and score it under NAB's three profiles.

Two entrants are evaluated, and the output says how each was obtained:

* ``shadownet`` - the streaming detector with its default parameters, the same
  for every file, using no labels.  Each file is replayed row by row through
  :class:`~predictive.detector.EntityDetector` (the controller's code path); the
  baseline warm-up is set to the file's probation length, as NAB's harness
  hands the probationary period to every detector.
* ``shadownet+model`` - the learned model over the detector's features,
  evaluated with k-fold cross-validation *by file*: every file is scored by a
  model that never saw any row of it.

The threshold is then optimised per profile over the whole corpus, exactly as
NAB does, and scores are normalised to null = 0, perfect = 100.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import GroupKFold

from predictive.detector import AlertGate, DetectorConfig, EntityDetector
from predictive.model import FEATURES, FailureModel
from predictive.nab.corpus import NabCorpus, NabFile
from predictive.nab.scoring import ProfileResult, score_corpus

#: Published NAB scoreboard, standard profile (NAB README, as summarised in ../shared/README.md).
#: Only the standard column is quoted: it is the one the project's reference gives.
SCOREBOARD_STANDARD: dict[str, float] = {
    "Perfect": 100.0,
    "ARTime": 74.9,
    "Numenta HTM": 70.5,
    "CAD OSE": 69.9,
    "earthgecko Skyline": 58.2,
    "KNN CAD": 58.0,
    "Relative Entropy": 54.6,
    "Random Cut Forest": 51.7,
    "Twitter ADVec": 47.1,
    "Windowed Gaussian": 39.6,
    "Etsy Skyline": 35.7,
    "Bayesian Changepoint": 17.7,
    "EXPoSE": 16.4,
    "Random": 11.0,
    "Null": 0.0,
}

UNSUPERVISED_NOTE = (
    "unsupervised streaming detector; one fixed parameter set (the library defaults) for "
    "all files; no labels used; warm-up = each file's NAB probation period"
)


@dataclass
class DetectorRun:
    """Per-file outputs of one replay of the corpus."""

    alerts: list[np.ndarray]
    features: list[np.ndarray]
    seconds: float
    rows: int

    @property
    def points_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def run_detector(corpus: NabCorpus, config: DetectorConfig | None = None) -> DetectorRun:
    """Replay every file through a fresh detector, one row at a time."""
    base = config or DetectorConfig()
    alerts, feats = [], []
    t0 = time.perf_counter()
    for f in corpus.files:
        a, x = replay_file(f, base)
        alerts.append(a)
        feats.append(x)
    return DetectorRun(alerts, feats, time.perf_counter() - t0, corpus.rows)


def replay_file(f: NabFile, config: DetectorConfig) -> tuple[np.ndarray, np.ndarray]:
    """Alert score and model features per row of one NAB file."""
    cfg = dataclasses.replace(
        config, baseline=dataclasses.replace(config.baseline, warmup=f.layout.probation)
    )
    det = EntityDetector(cfg)
    n = len(f.values)
    alert = np.zeros(n)
    feats = np.zeros((n, len(FEATURES)))
    update = det.update
    for i, (t, v) in enumerate(zip(f.times.tolist(), f.values.tolist(), strict=True)):
        alert[i] = update(t, {"value": v}).alert
        feats[i] = det._features  # read-only view of the row just computed
    return alert, feats


def failure_labels(f: NabFile) -> np.ndarray:
    """Training target per row: 1 from a window's start up to its centre (the labelled anomaly).

    NAB centres each window on the labelled anomaly, so the first half is the
    run-up a predictive detector should flag; the second half is left as 0
    because an alarm there is late.
    """
    y = np.zeros(len(f.values), dtype=np.int64)
    for a, b in f.layout.windows:
        y[a : (a + b) // 2 + 1] = 1
    return y


def cross_validated_model(
    corpus: NabCorpus, run: DetectorRun, folds: int = 5, config: DetectorConfig | None = None
) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Out-of-fold model alerts per file, with k-fold cross-validation grouped by file."""
    cfg = config or DetectorConfig()
    if not 2 <= folds <= len(corpus.files):
        raise ValueError(f"folds must be between 2 and {len(corpus.files)}")
    t0 = time.perf_counter()
    groups = np.concatenate([np.full(len(f.values), i) for i, f in enumerate(corpus.files)])
    X = np.vstack(run.features)
    y = np.concatenate([failure_labels(f) for f in corpus.files])
    scored = np.concatenate(
        [np.arange(len(f.values)) >= f.layout.probation for f in corpus.files]
    )
    prob = np.zeros(len(y))
    for train, test in GroupKFold(n_splits=folds).split(X, y, groups):
        train = train[scored[train]]
        model = FailureModel().fit(
            X[train], y[train], description="NAB CV fold", negative_stride=4
        )
        prob[test] = model.predict_proba(X[test])
    alerts, off = [], 0
    for f in corpus.files:
        gate = AlertGate(cfg.alert_horizon, cfg.alert_factor)
        p = prob[off : off + len(f.values)]
        alerts.append(np.array([gate(float(v)) for v in p]))
        off += len(f.values)
    info = {
        "trained": (
            f"{folds}-fold cross-validation grouped by file (GroupKFold): each file is scored "
            "only by a model trained on the other files' rows; target = first half of each "
            "labelled window; features from the unsupervised detector"
        ),
        "folds": folds,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    return alerts, info


def score_all_profiles(corpus: NabCorpus, alerts: list[np.ndarray]) -> dict[str, ProfileResult]:
    """NAB result per profile (threshold optimised over the corpus for each)."""
    layouts = [f.layout for f in corpus.files]
    return {name: score_corpus(layouts, alerts, p) for name, p in corpus.profiles.items()}


def summarise(results: dict[str, ProfileResult], trained: str) -> dict[str, Any]:
    """JSON-ready summary: normalised scores, thresholds and the standard-profile groups."""
    return {
        "trained": trained,
        "profiles": {
            name: {
                "score": round(r.normalised, 2),
                "raw": round(r.raw, 4),
                "null": r.null,
                "perfect": r.perfect,
                # inf (flag nothing is best) is not valid JSON: report it as null.
                "threshold": r.threshold if math.isfinite(r.threshold) else None,
                "windows_detected": sum(f.windows_detected for f in r.files),
                "windows": sum(f.windows for f in r.files),
                "false_positive_rows": sum(f.fp for f in r.files),
            }
            for name, r in results.items()
        },
        "groups": {name: r.group_breakdown() for name, r in results.items()},
    }


def evaluate(
    corpus: NabCorpus, *, model_folds: int | None = 5, config: DetectorConfig | None = None
) -> dict[str, Any]:
    """Full NAB evaluation: unsupervised detector, optionally the CV model, and timings."""
    t0 = time.perf_counter()
    run = run_detector(corpus, config)
    out: dict[str, Any] = {
        "corpus": {
            "path": str(corpus.root),
            "files": len(corpus.files),
            "rows": corpus.rows,
            "windows": sum(len(f.layout.windows) for f in corpus.files),
        },
        "detectors": {
            "shadownet": summarise(score_all_profiles(corpus, run.alerts), UNSUPERVISED_NOTE)
        },
    }
    timing: dict[str, Any] = {
        "detector_seconds": round(run.seconds, 2),
        "points_per_second": round(run.points_per_second),
    }
    if model_folds:
        alerts, info = cross_validated_model(corpus, run, model_folds, config)
        out["detectors"]["shadownet+model"] = summarise(
            score_all_profiles(corpus, alerts), info["trained"]
        )
        timing["model_cv_seconds"] = info["seconds"]
    timing["total_seconds"] = round(time.perf_counter() - t0, 2)
    out["timing"] = timing
    out["scoreboard_standard"] = dict(SCOREBOARD_STANDARD)
    return out
