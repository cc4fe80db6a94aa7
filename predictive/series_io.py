"""Reading and writing time-series CSV files for ``shadownet predict``.

The engine consumes two shapes of CSV, both with a header row:

* narrow: ``timestamp,value`` (the NAB layout), one metric per file;
* wide: ``timestamp,cpu,latency,errors,...``, one column per metric of one entity.

Empty cells are kept as missing values (NaN) because telemetry really does drop
samples, and the detector is built to cope with them.  Everything else that is
wrong with a file (no header, no ``timestamp`` column, a timestamp that does not
parse, a value that is not a number, an empty file, time going backwards) is
refused with a one-line :class:`ValueError` naming the file and line, so the CLI
can print it without a traceback.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import numpy as np

TIMESTAMP_COLUMN = "timestamp"


@dataclass(frozen=True)
class SeriesTable:
    """A parsed CSV: row timestamps and one float column per metric.

    ``times`` are seconds since the Unix epoch (naive timestamps are read as
    UTC); ``raw_times`` keep the original text so output files can echo it.
    ``values`` has shape ``(rows, len(columns))`` with NaN for missing cells.
    """

    path: str
    columns: tuple[str, ...]
    times: np.ndarray
    raw_times: tuple[str, ...]
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.raw_times)

    def rows(self) -> Iterator[tuple[float, dict[str, float]]]:
        """Yield ``(time, {metric: value})`` per row, leaving missing metrics out.

        This is the shape the streaming detector takes, so a file can be
        replayed through exactly the code path the controller uses.
        """
        cols = self.columns
        for t, row in zip(self.times.tolist(), self.values.tolist(), strict=True):
            yield t, {c: v for c, v in zip(cols, row, strict=True) if v == v}


def parse_timestamp(text: str) -> float:
    """Parse an ISO 8601 timestamp or a number of epoch seconds to epoch seconds.

    Raises ValueError for anything else, with the offending text in the message.
    """
    s = text.strip()
    if not s:
        raise ValueError("empty timestamp")
    try:
        return float(s) if s[0].isdigit() and s.replace(".", "", 1).isdigit() else _iso(s)
    except ValueError:
        raise ValueError(f"unparsable timestamp {s!r}") from None


def _iso(s: str) -> float:
    dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _parse_value(cell: str) -> float:
    s = cell.strip()
    if not s or s.lower() in ("nan", "null", "none", "na"):
        return math.nan
    v = float(s)  # ValueError propagates to the caller, which adds the location
    if math.isinf(v):
        raise ValueError("infinite value")
    return v


def read_series_csv(path: str | Path, *, strict_order: bool = False) -> SeriesTable:
    """Read a narrow or wide time-series CSV, validating it row by row.

    The first column must be called ``timestamp``; every other column is a
    metric, and rows must have as many cells as the header.  Rows are kept in
    file order: real telemetry repeats timestamps and occasionally steps back
    (NAB itself has DST repeats and one clock reset), and the detector treats
    such steps as a minimal interval.  ``strict_order=True`` refuses them.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    if p.is_dir():
        raise ValueError(f"{p}: is a directory, expected a CSV file")
    with p.open(newline="", encoding="utf-8-sig") as fh:
        try:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or not any(h.strip() for h in header):
                raise ValueError(f"{p}: empty file (expected a header 'timestamp,value')")
            header = [h.strip() for h in header]
            if header[0].lower() != TIMESTAMP_COLUMN:
                raise ValueError(
                    f"{p}: first column is {header[0]!r}, expected 'timestamp' "
                    "(header must be 'timestamp,value' or 'timestamp,<metric>,...')"
                )
            columns = tuple(header[1:])
            if not columns:
                raise ValueError(f"{p}: no metric columns after 'timestamp'")
            if any(not c for c in columns):
                raise ValueError(f"{p}: empty column name in header")
            if len(set(columns)) != len(columns):
                raise ValueError(f"{p}: duplicate column names in header")
            raw_times: list[str] = []
            times: list[float] = []
            values: list[list[float]] = []
            width = len(header)
            for lineno, row in enumerate(reader, start=2):
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if len(row) != width:
                    raise ValueError(
                        f"{p}:{lineno}: expected {width} columns, found {len(row)}"
                    )
                try:
                    t = parse_timestamp(row[0])
                except ValueError as exc:
                    raise ValueError(f"{p}:{lineno}: {exc}") from None
                if strict_order and times and t < times[-1]:
                    raise ValueError(f"{p}:{lineno}: timestamp {row[0]!r} goes back in time")
                try:
                    vals = [_parse_value(c) for c in row[1:]]
                except ValueError:
                    raise ValueError(
                        f"{p}:{lineno}: non-numeric value in {row[1:]!r}"
                    ) from None
                raw_times.append(row[0].strip())
                times.append(t)
                values.append(vals)
        except UnicodeDecodeError:
            raise ValueError(f"{p}: not a UTF-8 text CSV file") from None
        except csv.Error as exc:
            raise ValueError(f"{p}: malformed CSV ({exc})") from None
    if not times:
        raise ValueError(f"{p}: no data rows after the header")
    arr = np.asarray(values, dtype=np.float64).reshape(len(times), len(columns))
    if np.isnan(arr).all():
        raise ValueError(f"{p}: every value is empty")
    return SeriesTable(
        path=str(p),
        columns=columns,
        times=np.asarray(times, dtype=np.float64),
        raw_times=tuple(raw_times),
        values=arr,
    )


def write_scores_csv(
    dest: str | Path | TextIO,
    raw_times: Sequence[str],
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
) -> None:
    """Write one output row per input row: the original timestamp then ``columns``."""
    if isinstance(dest, str | Path):
        with Path(dest).open("w", newline="", encoding="utf-8") as fh:
            write_scores_csv(fh, raw_times, columns, rows)
        return
    w = csv.writer(dest, lineterminator="\n")
    w.writerow([TIMESTAMP_COLUMN, *columns])
    for t, r in zip(raw_times, rows, strict=True):
        w.writerow([t, *(_fmt(x) for x in r)])


def _fmt(x: object) -> object:
    if isinstance(x, float):
        return f"{x:.6g}"
    return x
