"""Loading the NAB corpus: data files, combined windows and cost profiles.

The corpus lives outside the repository (``../shared/data/nab``); it is read
in place, never copied.  Window timestamps are mapped to row indices once, here,
so the scorer works purely on row positions like NAB's sweeper does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from predictive.nab.scoring import FileLayout, Profile, file_layout, load_profiles
from predictive.series_io import parse_timestamp, read_series_csv

DEFAULT_NAB_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nab"


@dataclass(frozen=True)
class NabFile:
    """One NAB series with its scoring layout."""

    name: str  # "<group>/<file>.csv", the key used in the label files
    times: np.ndarray
    values: np.ndarray
    layout: FileLayout

    @property
    def group(self) -> str:
        return self.name.split("/")[0]


@dataclass(frozen=True)
class NabCorpus:
    """The files (in label-file order, sorted by name) and the profiles to score them with."""

    root: Path
    files: tuple[NabFile, ...]
    profiles: dict[str, Profile]

    @property
    def rows(self) -> int:
        return sum(len(f.values) for f in self.files)


def load_corpus(root: str | Path, only: list[str] | None = None) -> NabCorpus:
    """Load NAB from ``root`` (the directory holding ``data/``, ``labels/``, ``config/``).

    ``only`` restricts loading to file names containing any of the given
    substrings (handy for tests); the profiles and windows still come from the
    corpus's own files.
    """
    root = Path(root)
    windows_path = root / "labels" / "combined_windows.json"
    profiles_path = root / "config" / "profiles.json"
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: NAB directory not found (expected data/, labels/)")
    if not windows_path.exists():
        raise FileNotFoundError(f"{windows_path}: NAB windows file not found")
    try:
        windows = json.loads(windows_path.read_text())
    except ValueError as exc:
        raise ValueError(f"{windows_path}: invalid JSON ({exc})") from None
    profiles = load_profiles(profiles_path)
    files = []
    for name in sorted(windows):
        if only and not any(o in name for o in only):
            continue
        table = read_series_csv(root / "data" / name)
        times = table.times
        values = table.values[:, 0]
        rows = []
        for start, end in windows[name]:
            a = _row_of(times, parse_timestamp(start), first_after=True)
            b = _row_of(times, parse_timestamp(end), first_after=False)
            if a is None or b is None or a > b:
                raise ValueError(f"{name}: window [{start}, {end}] covers no rows")
            rows.append((a, b))
        files.append(NabFile(name, times, values, file_layout(name, len(values), rows)))
    if not files:
        raise ValueError(f"{root}: no NAB data files matched")
    return NabCorpus(root, tuple(files), profiles)


def _row_of(times: np.ndarray, t: float, *, first_after: bool) -> int | None:
    """Row index of a window edge, as NAB finds it (first row with that exact time).

    NAB's windows always fall on existing timestamps; if one does not, take the
    first row at or after a start, or the last row at or before an end.
    """
    exact = np.flatnonzero(times == t)
    if exact.size:
        return int(exact[0])
    cand = np.flatnonzero(times >= t) if first_after else np.flatnonzero(times <= t)
    if not cand.size:
        return None
    return int(cand[0] if first_after else cand[-1])
