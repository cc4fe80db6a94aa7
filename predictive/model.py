"""Learned failure model: a calibrated scikit-learn classifier over drift and correlation features.

The hand-built scores of :mod:`predictive.baseline` and :mod:`predictive.correlation`
each see one symptom; a model trained on labelled history learns how much each
symptom is worth and turns them into a *calibrated* probability (isotonic
calibration on held-out folds), which is what the controller needs to compare
against a cost of moving traffic.

Model files are written with skops, not pickle: loading a pickle (joblib) runs
whatever code the file names, so ``predict score --model`` on a file from
elsewhere was a way to run code. A skops file is a zip of JSON and arrays; it
is loaded only if every type in it is one this module trusts
(:data:`TRUSTED_TYPES`: scikit-learn's own, named one by one). The file
carries a format name, a format version, the feature list and a description
of the training data; loading refuses any file whose version or features do
not match this code, with a message saying what to do.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import skops.io as sio
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier

MODEL_FORMAT = "shadownet-predictive-model"
MODEL_VERSION = 4  # 4: skops instead of joblib (pickle)
# The types beyond skops' defaults that a model file may hold: scikit-learn's own
# classes, named one by one. Anything else in a file (a callable, a foreign class)
# makes loading fail before any of it is built.
TRUSTED_TYPES = (
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)

#: Per-row features, in the order the model sees them.  Produced by
#: :meth:`predictive.detector.EntityDetector.features`.
FEATURES: tuple[str, ...] = (
    "novelty",  # beyond the rolling range, in range units (worst metric)
    "seasonal",  # novelty of the day-over-day difference
    "deviation",  # |robust z| of the value
    "shift",  # |robust z| of the short mean
    "rate",  # rate of change of the shift, signed towards the deviation
    "volatility",  # log short spread / baseline spread
    "correlation_break",  # worst usual-correlation break in [0, 1]
    "joint_rise",  # two or more metrics rising together, in [0, 1]
    "novelty_recent",  # largest drift evidence over the last few rows (persistence)
    "novelty_all",  # beyond everything seen so far, in units of that range
    "context",  # anomaly likelihood of never-seen value contexts
    "context_coarse",  # the same on the coarse context channel (4 bins, 20-row average)
)


class ModelVersionError(ValueError):
    """A model file was written by an incompatible version of this code."""


class FailureModel:
    """Calibrated gradient-boosting classifier mapping feature rows to P(failure)."""

    def __init__(self, estimator: Any = None, meta: dict[str, Any] | None = None) -> None:
        self.estimator = estimator
        self.meta: dict[str, Any] = dict(meta or {})

    @property
    def fitted(self) -> bool:
        return self.estimator is not None

    @staticmethod
    def _make(seed: int) -> CalibratedClassifierCV:
        base = HistGradientBoostingClassifier(
            max_iter=120,
            learning_rate=0.08,
            max_leaf_nodes=15,
            min_samples_leaf=100,
            l2_regularization=1.0,
            random_state=seed,
        )
        return CalibratedClassifierCV(base, method="isotonic", cv=3)

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        description: str = "",
        seed: int = 0,
        negative_stride: int = 1,
    ) -> FailureModel:
        """Train on feature rows ``X`` (columns = :data:`FEATURES`) and 0/1 labels ``y``.

        ``negative_stride`` > 1 keeps every n-th normal row (weighted by n) to cut
        training time on long histories: failures are rare, so normal rows carry
        little new information each and the calibration stays unbiased.
        """
        X = _check_X(X)
        y = np.asarray(y, dtype=np.int64).ravel()
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"{X.shape[0]} feature rows but {y.shape[0]} labels")
        classes = set(np.unique(y).tolist())
        if not classes <= {0, 1}:
            raise ValueError("labels must be 0 or 1")
        if classes != {0, 1}:
            raise ValueError("training needs both failure (1) and normal (0) rows")
        weight = None
        if negative_stride > 1:
            keep = (y == 1) | (np.arange(len(y)) % negative_stride == 0)
            X, y = X[keep], y[keep]
            weight = np.where(y == 1, 1.0, float(negative_stride))
        t0 = time.perf_counter()
        self.estimator = self._make(seed).fit(X, y, sample_weight=weight)
        self.meta = {
            "rows": int(X.shape[0]),
            "positives": int(y.sum()),
            "description": description,
            "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "fit_seconds": round(time.perf_counter() - t0, 2),
        }
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Calibrated P(failure) per feature row."""
        if not self.fitted:
            raise ValueError("model is not trained")
        proba: np.ndarray = self.estimator.predict_proba(_check_X(X))[:, 1]
        return proba

    def probability(self, features: Sequence[float]) -> float:
        """P(failure) for one feature row (the streaming path)."""
        return float(self.predict_proba(np.asarray(features, dtype=np.float64)[None, :])[0])

    def save(self, path: str | Path) -> Path:
        """Write the model with its format version and feature list (skops)."""
        if not self.fitted:
            raise ValueError("refusing to save an untrained model")
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        sio.dump(
            {
                "format": MODEL_FORMAT,
                "version": MODEL_VERSION,
                "features": list(FEATURES),
                "sklearn": sklearn.__version__,
                "meta": self.meta,
                "estimator": self.estimator,
            },
            p,
        )
        return p

    @classmethod
    def load(cls, path: str | Path) -> FailureModel:
        """Load a model, refusing files of another format version or feature list."""
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"{p}: model file not found")
        if p.is_dir():
            raise ValueError(f"{p}: is a directory, not a model file")
        try:
            untrusted = set(sio.get_untrusted_types(file=p)) - set(TRUSTED_TYPES)
        except Exception as exc:  # noqa: BLE001 - a foreign file fails in many ways
            raise ValueError(f"{p}: not a shadownet model file ({type(exc).__name__}; "
                             "models from before format 4 were pickles: retrain them)") from None
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
                f"shadownet (version {MODEL_VERSION}); retrain it with 'shadownet predict train'"
            )
        if list(blob.get("features", [])) != list(FEATURES):
            raise ModelVersionError(
                f"{p}: model was trained on features {blob.get('features')}, this shadownet "
                "computes a different set; retrain it with 'shadownet predict train'"
            )
        meta = dict(blob.get("meta", {}))
        meta["sklearn"] = blob.get("sklearn")
        return cls(blob["estimator"], meta)


def _check_X(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != len(FEATURES):
        raise ValueError(f"feature rows must have {len(FEATURES)} columns: {', '.join(FEATURES)}")
    if not np.isfinite(X).all():
        X = np.nan_to_num(X, nan=0.0, posinf=1e6, neginf=-1e6)
    return X


def squash(x: float, scale: float) -> float:
    """Map a non-negative evidence value to [0, 1): ``1 - exp(-x / scale)``."""
    return 1.0 - math.exp(-x / scale) if x > 0.0 else 0.0
