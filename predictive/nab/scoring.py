"""NAB scoring, as published in NAB v1.1 (``nab/sweeper.py`` and ``nab/runner.py``).

Rules implemented here, per data file:

* The first ``min(floor(0.15 * rows), 750)`` rows are probationary: detections
  there are ignored, and a window only counts if it has a row after probation.
* Inside a window ``[left, right]`` of width ``w`` rows, a detection at row ``i``
  is at relative position ``y = -(right - i + 1) / w`` (-1 at the window start)
  and is worth ``tpWeight * S(y) / S(-1)`` where ``S(y) = 2 / (1 + exp(5 y)) - 1``.
  Only the earliest detection in a window counts (it has the largest weight).
* A detection outside every window is a false positive worth ``fpWeight * S(y)``
  (negative), with ``y = (i - right_prev) / (w_prev - 1)`` measured from the end
  of the previous window; with no previous window, or ``y > 3``, ``S = -1``.
* Each window with no detection costs ``-fnWeight``.
* One threshold per profile is chosen to maximise the score summed over the
  whole corpus; a row is a detection when its anomaly score is >= the threshold.
* Normalised score = ``100 * (raw - null) / (perfect - null)``, where null is the
  score of a detector that flags nothing and perfect is ``tpWeight`` per window.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROBATION_PERCENT = 0.15
PROBATION_MAX_ROWS = 750  # NAB: probationPercent * 5000

# Row categories in a file's sweep layout.
PROBATION = -2
OUTSIDE = -1


@dataclass(frozen=True)
class Profile:
    """One NAB cost profile (the weights from ``config/profiles.json``)."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


def load_profiles(path: str | Path) -> dict[str, Profile]:
    """Read NAB's ``profiles.json``; the weights are data, never hard-coded."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: NAB profiles file not found")
    try:
        raw = json.loads(p.read_text())
        return {
            name: Profile(
                name,
                float(v["CostMatrix"]["tpWeight"]),
                float(v["CostMatrix"]["fpWeight"]),
                float(v["CostMatrix"]["fnWeight"]),
            )
            for name, v in raw.items()
        }
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{p}: not a NAB profiles file ({exc})") from None


def scaled_sigmoid(y: float) -> float:
    """NAB's scaled sigmoid: about +1 at a window's start, 0 at its end, -1 far past it."""
    if y > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def probation_length(rows: int) -> int:
    """Rows at the start of a file that NAB does not score (and detectors learn on)."""
    return int(min(math.floor(PROBATION_PERCENT * rows), PROBATION_PERCENT * 5000))


@dataclass(frozen=True)
class FileLayout:
    """Per-row scoring layout of one file, independent of any detector.

    ``window[i]`` is the window index of row ``i`` (``OUTSIDE`` or ``PROBATION``
    otherwise); ``weight[i]`` is what a detection at row ``i`` is worth before
    the profile's weight is applied: ``S(y)/S(-1)`` inside a window, ``S(y)``
    (negative) outside.
    """

    name: str
    rows: int
    windows: tuple[tuple[int, int], ...]
    probation: int
    window: np.ndarray
    weight: np.ndarray

    @property
    def scored_windows(self) -> int:
        """Windows that have at least one row after probation (the ones NAB counts)."""
        return len({int(w) for w in self.window if w >= 0})


def file_layout(name: str, rows: int, windows: Sequence[tuple[int, int]]) -> FileLayout:
    """Compute NAB's per-row window membership and weights for one file.

    ``windows`` are inclusive row-index ranges, sorted and non-overlapping (as
    NAB's combined windows are).
    """
    wins = tuple((int(a), int(b)) for a, b in windows)
    for k, (a, b) in enumerate(wins):
        if not 0 <= a <= b < rows:
            raise ValueError(f"{name}: window {k} [{a}, {b}] is outside rows 0..{rows - 1}")
        if k and a <= wins[k - 1][1]:
            raise ValueError(f"{name}: windows overlap or are not sorted")
    prob = probation_length(rows)
    window = np.full(rows, OUTSIDE, dtype=np.int64)
    weight = np.empty(rows, dtype=np.float64)
    max_tp = scaled_sigmoid(-1.0)
    prev_right: int | None = None
    prev_width = 0.0
    k = 0
    for i in range(rows):
        if k < len(wins) and wins[k][0] <= i <= wins[k][1]:
            a, b = wins[k]
            width = float(b - a + 1)
            weight[i] = scaled_sigmoid(-(b - i + 1) / width) / max_tp
            window[i] = k
            if i == b:
                prev_right, prev_width = b, width
                k += 1
        else:
            if prev_right is None:
                weight[i] = -1.0
            else:
                denom = prev_width - 1.0
                y = abs(prev_right - i) / denom if denom > 0 else math.inf
                weight[i] = scaled_sigmoid(y)
    window[:prob] = PROBATION
    return FileLayout(name, rows, wins, prob, window, weight)


@dataclass(frozen=True)
class FileScore:
    """Raw NAB score of one file at one threshold, with NAB's counts.

    ``tp``/``fp``/``fn``/``tn`` are row counts as in NAB's results files;
    ``windows_detected`` and ``windows`` count windows.
    """

    name: str
    score: float
    tp: int
    fp: int
    fn: int
    tn: int
    windows_detected: int
    windows: int


def score_detections(layout: FileLayout, detected: np.ndarray, profile: Profile) -> FileScore:
    """Score a boolean detection vector on one file (the direct, readable rule)."""
    det = np.asarray(detected, dtype=bool)
    if det.shape != (layout.rows,):
        raise ValueError(f"{layout.name}: {det.shape[0]} detections for {layout.rows} rows")
    w = layout.window
    scorable = w != PROBATION
    in_win = w >= 0
    fp_mask = det & (w == OUTSIDE)
    score = profile.fp_weight * float(layout.weight[fp_mask].sum())
    found = 0
    counted = sorted({int(k) for k in w[in_win]})
    for k in counted:
        hits = np.flatnonzero(det & (w == k))
        if hits.size:
            found += 1
            score += profile.tp_weight * float(layout.weight[hits[0]])
        else:
            score -= profile.fn_weight
    return FileScore(
        name=layout.name,
        score=score,
        tp=int((det & in_win).sum()),
        fp=int(fp_mask.sum()),
        fn=int((~det & in_win).sum()),
        tn=int((~det & scorable & ~in_win).sum()),
        windows_detected=found,
        windows=len(counted),
    )


def null_score(layouts: Sequence[FileLayout], profile: Profile) -> float:
    """Score of NAB's null detector (flags nothing): ``-fnWeight`` per counted window."""
    return -profile.fn_weight * sum(lay.scored_windows for lay in layouts)


def perfect_score(layouts: Sequence[FileLayout], profile: Profile) -> float:
    """NAB's perfect score: ``tpWeight`` for every labelled window in the corpus."""
    return profile.tp_weight * sum(len(lay.windows) for lay in layouts)


def normalise(raw: float, null: float, perfect: float) -> float:
    """Map a raw score to NAB's scale: null detector 0, perfect detector 100."""
    if perfect == null:
        raise ValueError("cannot normalise: perfect and null scores are equal (no windows)")
    return 100.0 * (raw - null) / (perfect - null)


def optimise_threshold(
    layouts: Sequence[FileLayout], scores: Sequence[np.ndarray], profile: Profile
) -> tuple[float, float]:
    """Find the threshold that maximises the raw score summed over all files.

    Equivalent to NAB's sweep (every distinct anomaly score is a candidate and a
    row with score >= threshold is a detection), computed with sorted cumulative
    sums instead of a Python loop.  Returns ``(threshold, raw_score)``; the
    threshold is ``inf`` when flagging nothing is best.
    """
    keys: list[np.ndarray] = []
    deltas: list[np.ndarray] = []
    base = null_score(layouts, profile)
    for lay, s in zip(layouts, scores, strict=True):
        s = np.asarray(s, dtype=np.float64)
        if s.shape != (lay.rows,):
            raise ValueError(f"{lay.name}: {s.shape} scores for {lay.rows} rows")
        w = lay.window
        out = w == OUTSIDE
        keys.append(s[out])
        deltas.append(profile.fp_weight * lay.weight[out])
        for k in np.unique(w[w >= 0]):
            idx = np.flatnonzero(w == k)
            order = idx[np.argsort(-s[idx], kind="stable")]
            val = profile.tp_weight * lay.weight[order]
            running = np.maximum.accumulate(np.concatenate(([-profile.fn_weight], val)))
            keys.append(s[order])
            deltas.append(np.diff(running))
    if not keys:
        return math.inf, base
    key = np.concatenate(keys)
    delta = np.concatenate(deltas)
    finite = np.isfinite(key)
    key, delta = key[finite], delta[finite]
    if key.size == 0:
        return math.inf, base
    order = np.argsort(-key, kind="stable")
    key = key[order]
    total = base + np.cumsum(delta[order])
    # Only the last row of each run of equal scores is a valid threshold point.
    last = np.flatnonzero(np.append(key[1:] != key[:-1], True))
    best = int(last[np.argmax(total[last])])
    if total[best] <= base:
        return math.inf, base
    return float(key[best]), float(total[best])


@dataclass(frozen=True)
class ProfileResult:
    """Corpus result for one profile: threshold, raw and normalised scores, per file."""

    profile: Profile
    threshold: float
    raw: float
    null: float
    perfect: float
    normalised: float
    files: tuple[FileScore, ...]

    def group_breakdown(self) -> dict[str, dict[str, float | None]]:
        """Per NAB group (``realTweets``, ...): raw score, windows, and a group-normalised score.

        Group scores use the corpus threshold; normalising within the group (its
        own null and perfect) shows where the detector is strong or weak.
        """
        groups: dict[str, list[FileScore]] = {}
        for f in self.files:
            groups.setdefault(f.name.split("/")[0], []).append(f)
        p = self.profile
        out: dict[str, dict[str, float | None]] = {}
        for g, fs in sorted(groups.items()):
            raw = sum(f.score for f in fs)
            null = -p.fn_weight * sum(f.windows for f in fs)
            perfect = p.tp_weight * sum(f.windows for f in fs)
            windows = sum(f.windows for f in fs)
            out[g] = {
                "files": len(fs),
                "windows": windows,
                "detected": sum(f.windows_detected for f in fs),
                "false_positives": sum(f.fp for f in fs),
                "raw": round(raw, 4),
                # A group without windows (artificialNoAnomaly) can only lose points.
                "normalised": round(normalise(raw, null, perfect), 2) if windows else None,
            }
        return out


def score_corpus(
    layouts: Sequence[FileLayout], scores: Sequence[np.ndarray], profile: Profile
) -> ProfileResult:
    """Optimise the threshold over the corpus, then score every file at it."""
    threshold, raw = optimise_threshold(layouts, scores, profile)
    files = tuple(
        score_detections(lay, np.asarray(s) >= threshold, profile)
        for lay, s in zip(layouts, scores, strict=True)
    )
    total = sum(f.score for f in files)
    if not math.isclose(total, raw, rel_tol=1e-9, abs_tol=1e-6):
        raise AssertionError(f"sweep and direct scoring disagree: {raw} != {total}")
    null = null_score(layouts, profile)
    perfect = perfect_score(layouts, profile)
    return ProfileResult(
        profile, threshold, total, null, perfect, normalise(total, null, perfect), files
    )
