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

Reading is done in bulk by pandas (``read_csv`` and ``to_datetime``), which is
several times faster on corpora like NAB. The bulk path only takes files whose
every cell it can vouch for (plain comma-separated text, ISO 8601 or epoch
timestamps, numbers Python's ``float`` reads), and gives exactly the numbers
the row-by-row reader gives. Any file it cannot vouch for, a bad one above all,
goes to the row-by-row reader, which stays the one judge of what is wrong and
where, so every error message names the same file and line as before.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import numpy as np

# pandas is imported where a file is read, not here: every ``shadownet`` command
# imports this module to build its parser, and pandas takes about 0.3 s to import.

TIMESTAMP_COLUMN = "timestamp"
# Columns that hold the answers, not a metric (compared without case): scored as an
# input they would hand the detector the labels it is judged on.
LABEL_NAMES = frozenset({"label", "labels", "is_anomaly", "anomaly", "is_anomalous",
                         "anomaly_label", "changepoint"})


def label_columns(columns: Sequence[str]) -> list[str]:
    """The columns among ``columns`` whose name says they are labels."""
    return [c for c in columns if c.strip().lower() in LABEL_NAMES]


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
    """Read a narrow or wide time-series CSV, validating every row.

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
    table = _read_bulk(p, strict_order)
    return table if table is not None else _read_rows(p, strict_order)


def _header_columns(p: Path, header: list[str] | None) -> tuple[str, ...]:
    """The metric column names of a header row; ValueError naming what is wrong."""
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
    return columns


# -- bulk path (pandas) -------------------------------------------------------------------------

# Timestamps the bulk path converts: the ISO 8601 forms on which pandas and
# datetime.fromisoformat agree (tests/unit/test_series_io_bulk.py checks it), and
# epoch seconds in ASCII digits. Anything else goes to the row-by-row reader.
_ISO_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?(?:Z|[+-][0-9]{2}:[0-9]{2})?)?"
)
_EPOCH_TIME = re.compile(r"[0-9]+(?:\.[0-9]*)?")
_EXACT_US = 2**53  # microseconds beyond this (about 1685..2255) do not fit a float exactly


def _read_bulk(p: Path, strict_order: bool) -> SeriesTable | None:
    """The file read by pandas, or None for anything the bulk path cannot vouch for.

    It takes UTF-8 text without quotes or NUL bytes (where the csv module and
    pandas split cells alike), with LF or CRLF line ends, whose every row has
    the header's width; None sends the file to :func:`_read_rows`, which either
    reads it or says what is wrong with it.
    """
    import pandas as pd

    try:
        text = p.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if '"' in text or "\r" in text or "\0" in text:
        return None
    head, _, body = text.partition("\n")
    try:
        columns = _header_columns(p, head.split(","))
    except ValueError:
        return None
    width = len(columns) + 1
    if len(text) > csv.field_size_limit() and max(map(len, body.split("\n"))) > (
            csv.field_size_limit()):
        return None  # a cell the csv module refuses as too large
    try:
        frame = pd.read_csv(io.StringIO(body), header=None, dtype=object, na_filter=False,
                            skip_blank_lines=True, engine="c")
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    rows = len(frame)
    # pandas pads a short row with empty cells: every row has width - 1 commas or one is short.
    if rows == 0 or frame.shape[1] != width or body.count(",") != (width - 1) * rows:
        return None
    cells = frame.to_numpy()
    raw_times = cells[:, 0].tolist()
    times = _bulk_times(raw_times)
    if times is None and any(t != t.strip() for t in raw_times):
        raw_times = [t.strip() for t in raw_times]  # as the row-by-row reader keeps them
        times = _bulk_times(raw_times)
    if times is None or (strict_order and bool((np.diff(times) < 0).any())):
        return None
    values = np.empty((rows, width - 1), dtype=np.float64)
    for j in range(width - 1):
        column = _bulk_values(cells[:, j + 1])
        if column is None:
            return None
        values[:, j] = column
    if np.isnan(values).all():
        return None
    return SeriesTable(path=str(p), columns=columns, times=times,
                       raw_times=tuple(raw_times), values=values)


def _bulk_times(raw: list[str]) -> np.ndarray | None:
    """Epoch seconds of every timestamp, exactly as :func:`parse_timestamp` gives them.

    ISO times go through ``pandas.to_datetime`` to whole microseconds since the
    epoch, then one float division, which rounds exactly like the
    ``datetime.timestamp()`` of the row-by-row reader. None if any is not in a
    form both readers agree on.
    """
    if _EPOCH_TIME.fullmatch(raw[0]):
        if not all(map(_EPOCH_TIME.fullmatch, raw)):
            return None
        return np.fromiter(map(float, raw), dtype=np.float64, count=len(raw))
    if not _plain_iso(raw) and not all(map(_ISO_TIME.fullmatch, raw)):
        return None
    import pandas as pd

    try:
        stamps = pd.to_datetime(pd.Series(raw, dtype=object), format="ISO8601", utc=True)
    except (ValueError, OverflowError):  # OutOfBoundsDatetime is a ValueError
        return None
    if bool(stamps.isna().any()):
        return None
    naive = stamps.dt.tz_convert(None).to_numpy()
    ticks = naive.astype(np.int64)
    unit = np.datetime_data(naive.dtype)[0]
    scale = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": None}.get(unit)
    if scale is None:  # nanoseconds: only whole microseconds are what fromisoformat reads
        if unit != "ns" or bool((ticks % 1000).any()):
            return None
        micros = ticks // 1000
    else:
        micros = ticks * scale
    if bool((np.abs(micros) >= _EXACT_US).any()):
        return None
    seconds: np.ndarray = micros.astype(np.float64) / 1e6
    return seconds


# "YYYY-MM-DD HH:MM:SS" (or with a T): the layout of NAB and most exports, checked
# with array operations rather than a regular expression per row.
_PLAIN_SEPARATORS = {4: "-", 7: "-", 10: " T", 13: ":", 16: ":"}
_PLAIN_DIGITS = [i for i in range(19) if i not in _PLAIN_SEPARATORS]


def _plain_iso(raw: list[str]) -> bool:
    """True if every timestamp is exactly in the plain 19-character layout."""
    chars = np.array(raw)
    if chars.dtype != np.dtype("<U19") or not bool((np.char.str_len(chars) == 19).all()):
        return False
    codes = chars.view(np.uint32).reshape(len(raw), 19)
    digits = codes[:, _PLAIN_DIGITS]
    if not bool(((digits >= ord("0")) & (digits <= ord("9"))).all()):
        return False
    for i, sep in _PLAIN_SEPARATORS.items():
        column = codes[:, i]
        ok = column == ord(sep[0])
        for other in sep[1:]:
            ok |= column == ord(other)
        if not bool(ok.all()):
            return False
    return True


def _bulk_values(cells: np.ndarray) -> np.ndarray | None:
    """One metric column as floats, exactly as :func:`_parse_value` reads each cell.

    ``float`` on the whole column first (no missing cells, the usual case), then
    cell by cell for the missing-value words; None for a cell that is not a
    number or is infinite, which only the row-by-row reader reports.
    """
    try:
        out = np.fromiter(map(float, cells), dtype=np.float64, count=len(cells))
    except (ValueError, TypeError):
        try:
            out = np.array([_parse_value(str(c)) for c in cells], dtype=np.float64)
        except ValueError:
            return None
    if bool(np.isinf(out).any()):
        return None
    return out


# -- row-by-row path: every file the bulk path passes on, and every error message ------------


def _read_rows(p: Path, strict_order: bool) -> SeriesTable:
    """Read ``p`` with the csv module, checking each row; ValueError at the first bad one."""
    with p.open(newline="", encoding="utf-8-sig") as fh:
        try:
            reader = csv.reader(fh)
            header = next(reader, None)
            columns = _header_columns(p, header)
            width = len(columns) + 1
            raw_times: list[str] = []
            times: list[float] = []
            values: list[list[float]] = []
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
