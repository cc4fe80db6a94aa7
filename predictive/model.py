"""The failure model: learns how the scale-free signals combine into a calibrated probability.

Each signal of :mod:`predictive.signals` sees one symptom. A gradient-boosting
classifier learns, from labelled series, how much each is worth alone and in
combination (no hand-set weights). Its raw output is then *calibrated*: an
isotonic map fitted on predictions for groups of series the classifier was not
trained on (leave one group out), so that among rows scored ``p``, about ``p``
lie in a failure window of a kind of series the model had not seen. Calibrating
on in-sample predictions would be overconfident; calibrating within a group would
learn that group's base rate.

A model also carries the alert gate and the alert threshold chosen with it (by
:mod:`predictive.nab.crossval`, on training groups only), so ``predict score``
can say which rows are alarms.

Model files are written with skops, not pickle: loading a pickle runs whatever
code the file names. A skops file is loaded only if every type in it is one this
module trusts (:data:`TRUSTED_TYPES`). The file carries a format name and
version and the signal list; any mismatch is refused with a message saying what
to do.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import skops.io as sio
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression

from predictive.alerts import Gate
from predictive.signals import SIGNALS

MODEL_FORMAT = "shadownet-predictive-model"
MODEL_VERSION = 5  # 5: scale-free signals, out-of-group isotonic calibration, gate
TRUSTED_TYPES = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
)
NEGATIVE_STRIDE = 2  # every 2nd normal row (weighted 2): half the fit time, same estimate


class ModelVersionError(ValueError):
    """A model file was written by an incompatible version of this code."""


def classifier(seed: int = 0) -> HistGradientBoostingClassifier:
    """The classifier: 100 rounds of small trees, each signal constrained to only ever raise
    the probability (a larger deviation never means a healthier series), so the model
    cannot learn one corpus's quirks where a signal going up meant "normal"."""
    return HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, max_leaf_nodes=15,
                                          min_samples_leaf=200,
                                          monotonic_cst=[1] * len(SIGNALS),
                                          early_stopping=False, random_state=seed)


class FailureModel:
    """Classifier + isotonic calibration (+ the gate and threshold chosen with them)."""

    def __init__(self, estimator: Any = None, calibration: tuple[list[float], list[float]]
                 | None = None, gate: Gate | None = None, threshold: float | None = None,
                 meta: dict[str, Any] | None = None) -> None:
        self.estimator = estimator
        self.calibration = calibration  # isotonic knots (raw, calibrated)
        self.gate = gate or Gate()
        self.threshold = threshold
        self.meta: dict[str, Any] = dict(meta or {})

    @property
    def fitted(self) -> bool:
        return self.estimator is not None and self.calibration is not None

    def fit(self, X: Sequence[np.ndarray], y: Sequence[np.ndarray], groups: Sequence[str],
            *, description: str = "", seed: int = 0) -> list[np.ndarray]:
        """Train on series ``X[i]`` (rows x SIGNALS) with 0/1 labels ``y[i]`` in ``groups[i]``.

        Returns the calibrated out-of-group probability of every training series:
        what the model says of a group it was not trained on, which is what a
        threshold or gate must be chosen on. Needs two groups or more.
        """
        names = sorted(set(groups))
        if len(names) < 2:
            raise ValueError("calibration needs series from two groups or more")
        if not len(X) == len(y) == len(groups):
            raise ValueError("X, y and groups must have one entry per series")
        t0 = time.perf_counter()
        raw_oof: list[np.ndarray] = [np.zeros(0)] * len(X)
        for g in names:
            inside = [i for i, gi in enumerate(groups) if gi != g]
            est = _fit(classifier(seed), [X[i] for i in inside], [y[i] for i in inside])
            for i, gi in enumerate(groups):
                if gi == g:
                    raw_oof[i] = est.predict_proba(_check(X[i]))[:, 1]
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        iso.fit(np.concatenate(raw_oof), np.concatenate([np.asarray(v) for v in y]))
        self.calibration = ([float(v) for v in iso.X_thresholds_],
                            [float(v) for v in iso.y_thresholds_])
        self.estimator = _fit(classifier(seed), X, y)
        self.meta = {
            "rows": int(sum(len(v) for v in y)),
            "positives": int(sum(int(np.sum(v)) for v in y)),
            "groups": names,
            "description": description,
            "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "fit_seconds": round(time.perf_counter() - t0, 2),
        }
        return [self.calibrate(r) for r in raw_oof]

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        if self.calibration is None:
            raise ValueError("model is not trained")
        knots_x, knots_y = self.calibration
        return np.asarray(np.interp(raw, knots_x, knots_y))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Calibrated P(failure window) per signal row."""
        if not self.fitted:
            raise ValueError("model is not trained")
        return self.calibrate(self.estimator.predict_proba(_check(X))[:, 1])

    def save(self, path: str | Path) -> Path:
        if not self.fitted:
            raise ValueError("refusing to save an untrained model")
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        sio.dump({"format": MODEL_FORMAT, "version": MODEL_VERSION, "signals": list(SIGNALS),
                  "sklearn": sklearn.__version__, "meta": self.meta,
                  "calibration": [list(self.calibration[0]), list(self.calibration[1])]
                  if self.calibration else None,
                  "gate": [self.gate.horizon, self.gate.factor], "threshold": self.threshold,
                  "estimator": self.estimator}, p)
        return p

    @classmethod
    def load(cls, path: str | Path) -> FailureModel:
        """Load a model, refusing files of another format, version or signal list."""
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"{p}: model file not found")
        if p.is_dir():
            raise ValueError(f"{p}: is a directory, not a model file")
        try:
            untrusted = set(sio.get_untrusted_types(file=p)) - set(TRUSTED_TYPES)
        except Exception as exc:  # noqa: BLE001 - a foreign file fails in many ways
            raise ValueError(f"{p}: not a shadownet model file ({type(exc).__name__})") from None
        if untrusted:
            raise ValueError(f"{p}: refusing to load: it holds types a shadownet model never "
                             f"does ({', '.join(sorted(untrusted)[:3])})")
        try:
            blob = sio.load(p, trusted=list(TRUSTED_TYPES))
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"{p}: not a shadownet model file ({type(exc).__name__})") from None
        if not isinstance(blob, dict) or blob.get("format") != MODEL_FORMAT:
            raise ValueError(f"{p}: not a shadownet model file")
        if blob.get("version") != MODEL_VERSION:
            raise ModelVersionError(
                f"{p}: model format version {blob.get('version')} does not match this "
                f"shadownet (version {MODEL_VERSION}); retrain it with 'shadownet predict train'")
        if list(blob.get("signals", [])) != list(SIGNALS):
            raise ModelVersionError(
                f"{p}: model was trained on signals {blob.get('signals')}, this shadownet "
                "computes a different set; retrain it with 'shadownet predict train'")
        cal = blob.get("calibration")
        horizon, factor = blob.get("gate", [100, 2.0])
        meta = dict(blob.get("meta", {}))
        meta["sklearn"] = blob.get("sklearn")
        return cls(blob["estimator"], (list(cal[0]), list(cal[1])) if cal else None,
                   Gate(int(horizon), float(factor)), blob.get("threshold"), meta)


def _fit(est: HistGradientBoostingClassifier, X: Sequence[np.ndarray],
         y: Sequence[np.ndarray]) -> HistGradientBoostingClassifier:
    Xa = np.vstack([_check(x) for x in X])
    ya = np.concatenate([np.asarray(v, dtype=np.int64) for v in y])
    if set(np.unique(ya).tolist()) != {0, 1}:
        raise ValueError("training needs both failure (1) and normal (0) rows")
    keep = (ya == 1) | (np.arange(len(ya)) % NEGATIVE_STRIDE == 0)
    weight = np.where(ya[keep] == 1, 1.0, float(NEGATIVE_STRIDE))
    return est.fit(Xa[keep], ya[keep], sample_weight=weight)


def _check(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != len(SIGNALS):
        raise ValueError(f"signal rows must have {len(SIGNALS)} columns: {', '.join(SIGNALS)}")
    return np.asarray(np.nan_to_num(X, nan=0.0, posinf=1e6, neginf=0.0))
