"""Scale-free anomaly signals of one series, computed causally and in bulk.

Each signal at row ``t`` reads only rows ``0..t``, so a whole file computed at
once gives exactly what a stream would have seen row by row. Every signal is a
ratio of the series to its own spread (robust z-scores, residuals over their
typical size, range units), never a value in the metric's unit: the same
reading means the same on a CPU percentage, a request count or a temperature.
That is what lets a model learn on one corpus and be used on another.

Signals (``SIGNALS``, each ``log1p`` of a non-negative ratio):

- ``z_16``, ``z_128``, ``z_1024``: robust z of the value against the median
  and interquartile range of the previous 16, 128 and 1024 rows (three time
  scales: a spike, a shift over hours, a shift over days at 5-minute rows).
- ``level``: the mean of the last 8 rows against the previous 1024 rows
  (a sustained shift that one spike cannot fake).
- ``step``: the mean of the last 16 rows against the 48 before them, over the
  128-row spread (a changepoint).
- ``forecast``: the one-step residual of an exponentially weighted forecast
  (span 16) over its own typical size (span 128).
- ``seasonal``: the day-over-day difference as a robust z against its previous
  1024 rows, where the series has at least three days at a regular interval
  (0 otherwise).
- ``spectral``: spectral residual saliency (Ren et al., KDD 2019) of the last
  row of a 64-row window, over the window's mean saliency.
- ``novelty``: how far the value lies beyond everything the series has done
  before, in units of that whole range.
- ``volatility``: the spread of the last 16 first differences over that of
  the last 1024 (log ratio, positive part).
- ``density``: the share of the last 32 rows with ``z_128`` above 3.

The windows are round powers of two, chosen once and not tuned on any corpus.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SIGNALS = ("z_16", "z_128", "z_1024", "level", "step", "forecast", "seasonal", "spectral",
           "novelty", "volatility", "density")
Z_SIGNALS = ("z_16", "z_128", "z_1024", "level", "step", "forecast", "seasonal")
DAY_S = 86400.0
SR_WINDOW = 64
_CAP = 1e4  # ratios beyond this say nothing more (and keep log1p finite)


def signals(values: np.ndarray, times: np.ndarray | None = None) -> np.ndarray:
    """The ``(rows, len(SIGNALS))`` signal matrix of one series (NaN values are carried)."""
    x = _filled(np.asarray(values, dtype=np.float64))
    n = len(x)
    out = np.zeros((n, len(SIGNALS)))
    if n == 0:
        return out
    s = pd.Series(x)
    prev = s.shift(1)
    floor = _floor(x)
    cols: dict[str, np.ndarray] = {}
    spread: dict[int, np.ndarray] = {}
    for w in (16, 128, 1024):
        med, scale = _robust(prev, w, floor)
        spread[w] = scale
        cols[f"z_{w}"] = np.abs(x - med) / scale
    med_long, _ = _robust(prev, 1024, floor)
    cols["level"] = np.abs(s.rolling(8, min_periods=1).mean().to_numpy() - med_long) \
        / spread[1024]
    recent = s.rolling(16, min_periods=1).mean().to_numpy()
    before = s.shift(16).rolling(48, min_periods=1).mean().to_numpy()
    cols["step"] = np.abs(recent - np.nan_to_num(before, nan=x[0])) / spread[128]
    cols["forecast"] = _forecast_residual(s, floor)
    cols["seasonal"] = _seasonal(x, times, floor)
    cols["spectral"] = spectral_residual(x)
    cols["novelty"] = _novelty(x)
    cols["volatility"] = _volatility(s, floor)
    cols["density"] = (pd.Series(cols["z_128"] > 3.0).rolling(32, min_periods=1).mean()
                       .to_numpy())
    for j, name in enumerate(SIGNALS):
        v = np.nan_to_num(cols[name], nan=0.0, posinf=_CAP, neginf=0.0)
        out[:, j] = np.log1p(np.clip(v, 0.0, _CAP))
    return out


def _filled(x: np.ndarray) -> np.ndarray:
    """Missing values take the last value seen (the first ones the first value seen)."""
    if not np.isnan(x).any():
        return x
    s = pd.Series(x).ffill().bfill()
    return np.asarray(s.fillna(0.0).to_numpy(), dtype=np.float64)


def _floor(x: np.ndarray) -> np.ndarray:
    """The smallest spread worth dividing by at each row: 0.1 % of the range so far.

    A flat series has no spread; any change from it is then large but finite.
    """
    rng = np.maximum.accumulate(x) - np.minimum.accumulate(x)
    return np.asarray(np.maximum(1e-3 * rng, 1e-9 * (np.abs(x) + 1.0)))


def _robust(prev: pd.Series, w: int, floor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and IQR-based spread of the ``w`` rows before each row."""
    roll = prev.rolling(w, min_periods=min(w, 8))
    q1 = roll.quantile(0.25).to_numpy()
    med = roll.median().to_numpy()
    q3 = roll.quantile(0.75).to_numpy()
    first = prev.iloc[1] if len(prev) > 1 else 0.0
    med = np.where(np.isnan(med), first, med)
    scale = np.nan_to_num((q3 - q1) / 1.349, nan=0.0)
    return med, np.maximum(scale, floor)


def _forecast_residual(s: pd.Series, floor: np.ndarray) -> np.ndarray:
    forecast = s.ewm(span=16, adjust=False).mean().shift(1).to_numpy()
    resid = np.abs(s.to_numpy() - np.where(np.isnan(forecast), s.iloc[0], forecast))
    typical = pd.Series(resid).ewm(span=128, adjust=False).mean().shift(1).to_numpy()
    return np.asarray(resid / np.maximum(np.nan_to_num(typical, nan=0.0), floor))


def _seasonal(x: np.ndarray, times: np.ndarray | None, floor: np.ndarray) -> np.ndarray:
    """Robust z of the day-over-day difference, where a day is a whole number of rows.

    The day's length in rows is read from the first 64 intervals, and the signal
    starts after three days, so a row's value never depends on rows after it.
    """
    n = len(x)
    if times is None or n < 4:
        return np.zeros(n)
    step = float(np.median(np.diff(times[:65])))
    if not step > 0:
        return np.zeros(n)
    period = int(round(DAY_S / step))
    if period < 4 or 3 * period >= n:
        return np.zeros(n)
    diff = np.zeros(n)
    diff[period:] = x[period:] - x[:-period]
    med, scale = _robust(pd.Series(diff).shift(1), 1024, floor)
    z = np.abs(diff - med) / scale
    z[: 3 * period] = 0.0  # a difference needs a day, its spread two more
    return np.asarray(z)


def spectral_residual(x: np.ndarray, window: int = SR_WINDOW, extend: int = 5) -> np.ndarray:
    """Spectral residual saliency of each row's trailing window, at that row.

    The log amplitude spectrum minus its local average (3 bins) is the
    "residual"; transformed back with the original phase it peaks where the
    series does something its own spectrum does not predict. Each window is
    first extended by ``extend`` copies of the row *before* its last, so that
    the last row is not at the edge (where every row looks salient) and stands
    apart from both sides if it is anomalous. The paper extrapolates from the
    last gradients instead; that carries a spike into the extension and hides
    it (``test_spectral_residual_peaks_at_an_anomaly``). The score is the last
    row's saliency over the window's mean saliency, minus 1.
    """
    n = len(x)
    out = np.zeros(n)
    if n < window:
        return out
    frames = np.lib.stride_tricks.sliding_window_view(x, window)
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = frames / np.maximum(frames.std(axis=1, keepdims=True), 1e-12)
    extended = np.concatenate([frames, np.repeat(frames[:, -2:-1], extend, axis=1)], axis=1)
    spec = np.fft.fft(extended, axis=1)
    amp = np.abs(spec)
    log_amp = np.log(amp + 1e-12)
    padded = np.concatenate([log_amp[:, -1:], log_amp, log_amp[:, :1]], axis=1)
    avg = (padded[:, :-2] + padded[:, 1:-1] + padded[:, 2:]) / 3.0
    residual = np.exp(log_amp - avg)
    phase = spec / np.maximum(amp, 1e-12)
    saliency = np.abs(np.fft.ifft(residual * phase, axis=1))[:, :window]
    mean = saliency.mean(axis=1)
    score = saliency[:, -1] / np.maximum(mean, 1e-12) - 1.0
    out[window - 1:] = np.maximum(score, 0.0)
    return out


def _novelty(x: np.ndarray) -> np.ndarray:
    """Distance beyond the previous all-time range, in units of that range."""
    n = len(x)
    out = np.zeros(n)
    if n < 2:
        return out
    hi = np.maximum.accumulate(x)[:-1]
    lo = np.minimum.accumulate(x)[:-1]
    rng = np.maximum(hi - lo, 1e-9 * (np.abs(hi) + 1.0))
    beyond = np.maximum(x[1:] - hi, lo - x[1:])
    out[1:] = np.maximum(beyond, 0.0) / rng
    out[: min(n, 16)] = 0.0  # the first rows define the range
    return out


def _volatility(s: pd.Series, floor: np.ndarray) -> np.ndarray:
    d = s.diff().abs()
    short = d.rolling(16, min_periods=4).mean().to_numpy()
    long = d.shift(16).rolling(1024, min_periods=16).mean().to_numpy()
    ratio = np.nan_to_num(short, nan=0.0) / np.maximum(np.nan_to_num(long, nan=0.0), floor)
    return np.asarray(np.maximum(np.log(np.maximum(ratio, 1e-12)), 0.0))
