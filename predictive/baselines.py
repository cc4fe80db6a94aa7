"""Reference detectors that every result is compared with, run through the same protocol.

- :func:`rolling_zscore`: the z-score of each value against the mean and
  standard deviation of the previous ``window`` (100) values.
- :func:`windowed_gaussian`: NAB's "windowed Gaussian" detector: a Gaussian
  fitted to the last 6400 values, refitted every 100 values.
- :func:`robust_max`: the unsupervised form of shadownet's own signals, the
  largest robust z of :data:`predictive.signals.Z_SIGNALS`, with no learning.
  The learned model must beat it to earn its place.

Each returns a two-sided Gaussian tail score in [0, 1] (``erf(|z| / sqrt 2)``),
so that the alert gate's evidence ratios mean the same for every detector.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import erf

from predictive.signals import SIGNALS, Z_SIGNALS


def tail_score(z: np.ndarray) -> np.ndarray:
    """``P(|N(0,1)| < |z|)``: 0 at the mean, towards 1 far out."""
    return np.asarray(erf(np.abs(np.nan_to_num(z, nan=0.0)) / np.sqrt(2.0)))


def rolling_zscore(values: np.ndarray, window: int = 100) -> np.ndarray:
    s = pd.Series(np.asarray(values, dtype=np.float64)).ffill().fillna(0.0)
    prev = s.shift(1).rolling(window, min_periods=2)
    sd = prev.std().to_numpy()
    z = (s.to_numpy() - prev.mean().to_numpy()) / np.where(sd > 0, sd, np.nan)
    return tail_score(z)


def windowed_gaussian(values: np.ndarray, window: int = 6400, step: int = 100) -> np.ndarray:
    """Mean and deviation of the last ``window`` values, refreshed every ``step`` values."""
    x = pd.Series(np.asarray(values, dtype=np.float64)).ffill().fillna(0.0).to_numpy()
    n = len(x)
    stats = pd.Series(x).rolling(window, min_periods=1)
    mean, sd = stats.mean().to_numpy(), stats.std(ddof=0).to_numpy()
    # The fit in force at row i is the one made after the last full step before i.
    fitted_at = (np.arange(n) // step) * step - 1
    ok = fitted_at >= 0
    z = np.zeros(n)
    idx = fitted_at[ok]
    sdev = sd[idx]
    z[ok] = np.where(sdev > 0, (x[ok] - mean[idx]) / np.where(sdev > 0, sdev, 1.0), 0.0)
    return tail_score(z)


def robust_max(signals: np.ndarray) -> np.ndarray:
    """The largest robust z among the z-type signals (they are stored as log1p)."""
    cols = [SIGNALS.index(name) for name in Z_SIGNALS]
    return tail_score(np.expm1(signals[:, cols].max(axis=1)))
