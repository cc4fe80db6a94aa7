"""From a failure probability per row to alerts: the first of an incident, not its repeats.

A row alerts when its evidence, ``-log(1 - p)``, exceeds ``factor`` times the
largest evidence of the ``horizon`` rows before it; its alert is then its
probability, otherwise 0. An incident that keeps the probability high alerts
once, and again only if the evidence grows by that factor. ``horizon`` 0 turns
the gate off (every row's probability is its alert).

The controller acts once per incident and NAB rewards only the first detection
in a window, so both read alerts. The gate's two settings are chosen, like the
threshold, on the training groups only (:mod:`predictive.nab.crossval`);
:data:`GATES` is the grid they are chosen from (round numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

_P_MAX = 1.0 - 1e-12


@dataclass(frozen=True)
class Gate:
    """How many rows an alert silences weaker ones for, and how much stronger beats it."""

    horizon: int = 100
    factor: float = 2.0

    def __post_init__(self) -> None:
        if self.horizon < 0 or self.factor < 1.0:
            raise ValueError("gate horizon must be >= 0 and factor >= 1")

    def __call__(self, p: np.ndarray) -> np.ndarray:
        return alerts(p, self.horizon, self.factor)


GATES = tuple(Gate(h, f) for h in (0, 50, 100, 400) for f in (1.0, 2.0))


def alerts(p: np.ndarray, horizon: int, factor: float) -> np.ndarray:
    """Per row: the probability where the row starts (or outgrows) an incident, else 0."""
    p = np.clip(np.nan_to_num(np.asarray(p, dtype=np.float64), nan=0.0), 0.0, 1.0)
    if horizon == 0 or p.size == 0:
        return p
    evidence = -np.log1p(-np.minimum(p, _P_MAX))
    before = (pd.Series(evidence).shift(1).rolling(horizon, min_periods=1).max()
              .fillna(0.0).to_numpy())
    return np.where(evidence > factor * before, p, 0.0)
