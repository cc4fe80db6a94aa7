"""The pandas bulk reader of series CSVs gives exactly what the row-by-row reader gives.

``read_series_csv`` reads a file in bulk when it can vouch for every cell and
passes anything else to ``_read_rows`` (the reader it had before), which also
writes every error message. So for any file the two must agree: the same
arrays bit for bit, or the same error.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from predictive import series_io
from predictive.series_io import _ISO_TIME, _bulk_times, _read_bulk, _read_rows, parse_timestamp
from tests.unit.test_file_fuzz import file_mutate

NAB_DATA = Path(__file__).parents[2] / ".." / "shared" / "data" / "nab" / "data"


def outcome(read, path: Path) -> tuple:
    try:
        t = read(path)
    except ValueError as exc:
        return ("error", str(exc))
    return ("table", t.columns, t.raw_times, t.times.tobytes(), t.values.tobytes())


def same_as_rows(path: Path) -> tuple:
    """Both readers' outcome, asserted equal; returns it."""
    bulk = outcome(series_io.read_series_csv, path)
    rows = outcome(lambda p: _read_rows(p, False), path)
    assert bulk == rows
    return bulk


def test_every_nab_file_is_read_in_bulk_exactly_as_row_by_row():
    files = sorted(NAB_DATA.glob("*/*.csv"))
    assert len(files) == 58
    for path in files:
        table = _read_bulk(path, False)
        assert table is not None, path  # NAB is all bulk work, the CRLF files too
        rows = _read_rows(path, False)
        assert table.raw_times == rows.raw_times and table.columns == rows.columns
        assert table.times.tobytes() == rows.times.tobytes(), path
        assert table.values.tobytes() == rows.values.tobytes(), path


GOOD = [
    "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:05:00,2.5\n",
    "timestamp,value\r\n2024-01-01 00:00:00,1\r\n2024-01-01 00:05:00,2\r\n",  # CRLF
    "\ufefftimestamp,value\n2024-01-01T00:00:00,1\n",  # BOM, T separator
    "timestamp,cpu,lat\n2024-01-01 00:00:00, 1.5 ,\n\n2024-01-01 00:01:00,NaN,null\n"
    "  \n2024-01-01 00:02:00,2e3,NA\n",  # padding, missing words, blank lines
    "timestamp,value\n1700000000,1\n1700000060.5,2\n1700000120.,3\n",  # epoch seconds
    "timestamp,value\n2024-01-01 00:00:00.5Z,1\n2024-01-01 01:00:00+01:00,2\n"
    "2024-01-01 00:00,3\n2024-01-02,4\n",  # ISO variants, mixed offsets
    "timestamp,value\n 2024-01-01 00:00:00 ,1\n",  # a padded timestamp is kept stripped
    "timestamp,value\n2024-01-01 00:00:00,1_000\n",  # what float() reads
    " timestamp , v \n2024-01-01 00:00:00,1\n",
    "timestamp,value\n2024-01-01 00:05:00,1\n2024-01-01 00:00:00,2\n",  # back in time: kept
]


@pytest.mark.parametrize("text", GOOD)
def test_unusual_but_valid_files_are_read_in_bulk_and_agree(tmp_path, text):
    path = tmp_path / "s.csv"
    path.write_text(text, encoding="utf-8", newline="")
    assert _read_bulk(path, False) is not None
    assert same_as_rows(path)[0] == "table"


BAD = [
    ("timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:01:00\n", "expected 2 columns"),
    ("timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:01:00,1,2\n", "expected 2 columns"),
    ("timestamp,a,b\n2024-01-01 00:00:00,1,2\n2024-01-01 00:01:00,1,\n2024-01-01 00:02:00,1\n",
     ":4: expected 3 columns, found 2"),
    ("timestamp,value\n2024-01-01 00:00:00,inf\n", "non-numeric"),
    ("timestamp,value\n2024-02-30 00:00:00,1\n", "unparsable timestamp '2024-02-30 00:00:00'"),
    ("timestamp,value\n2024-1-1 00:00:00,1\n", "unparsable timestamp"),
    ("timestamp,value\n2024-01-01 00:00:00,\n", "every value is empty"),
    ("timestamp,value\n2024-01-01 00:00:00,1\x00\n", "non-numeric value in ['1\\x00']"),
    ('timestamp,value\n2024-01-01 00:00:00,"1",2\n', "expected 2 columns, found 3"),
    ("timestamp,value,value\n2024-01-01 00:00:00,1,2\n", "duplicate column names"),
    ("timestamp,value\n\n\n", "no data rows"),
]


# Valid, but only the row-by-row reader can vouch for them: quotes, mixed kinds of time.
ROW_BY_ROW = [
    'timestamp,value\n2024-01-01 00:00:00,"1"\n2024-01-01 00:01:00,"1,5"\n',
    'timestamp,value\n2024-01-01 00:00:00,"1\n',  # the csv module closes the quote at EOF
    "timestamp,value\n2024-01-01 00:00:00,1\n1700000000,2\n",  # ISO, then epoch seconds
    "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:01:00,nan\n"
    "2024-01-01 00:02:00,inf\n",
]


@pytest.mark.parametrize("text", ROW_BY_ROW)
def test_files_the_bulk_path_cannot_vouch_for_go_row_by_row(tmp_path, text):
    path = tmp_path / "s.csv"
    path.write_text(text, encoding="utf-8", newline="")
    assert _read_bulk(path, False) is None
    same_as_rows(path)


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_files_get_the_row_by_row_message(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8", newline="")
    result = same_as_rows(path)
    assert result[0] == "error" and message in result[1]


def test_strict_order_is_judged_row_by_row(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("timestamp,value\n2024-01-01 00:05:00,1\n2024-01-01 00:00:00,2\n")
    assert _read_bulk(path, True) is None
    with pytest.raises(ValueError, match=r"s.csv:3: timestamp '2024-01-01 00:00:00' goes back"):
        series_io.read_series_csv(path, strict_order=True)


def test_not_utf8_is_the_same_one_line_error(tmp_path):
    path = tmp_path / "s.csv"
    path.write_bytes(b"timestamp,value\n2024-01-01 00:00:00,\xff\n")
    assert same_as_rows(path) == ("error", f"{path}: not a UTF-8 text CSV file")


def test_fuzzed_files_get_the_same_table_or_the_same_error(tmp_path):
    lines = ["timestamp,value,cpu"] + [
        f"2024-01-01 00:{i // 60:02d}:{i % 60:02d},{i * 1.5},{(i * 7) % 100 / 100}"
        for i in range(120)]
    seed = ("\n".join(lines) + "\n").encode()
    path = tmp_path / "s.csv"
    rng = random.Random(17)
    kinds = {"table": 0, "error": 0}
    for _ in range(400):
        path.write_bytes(file_mutate(rng, seed))
        kinds[same_as_rows(path)[0]] += 1
    assert kinds["table"] and kinds["error"]  # both outcomes were reached


@settings(max_examples=400, deadline=None)
@given(st.from_regex(_ISO_TIME, fullmatch=True))
def test_iso_times_pandas_reads_are_exactly_what_fromisoformat_reads(text):
    try:
        expected: float | None = parse_timestamp(text)
    except ValueError:
        expected = None
    got = _bulk_times([text])
    if got is None:
        return  # left to the row-by-row reader: always safe
    assert expected is not None, f"{text!r}: bulk accepted what fromisoformat refuses"
    assert np.float64(expected).tobytes() == got[0].tobytes(), text


@settings(max_examples=200, deadline=None)
@given(st.datetimes(), st.sampled_from(["", "Z", "+05:30", "-08:00"]),
       st.sampled_from([" ", "T"]), st.integers(0, 6))
def test_valid_times_are_converted_in_bulk_and_exactly(dt, zone, sep, digits):
    text = dt.isoformat(sep=sep, timespec="microseconds")[: 20 + digits].rstrip(".") + zone
    got = _bulk_times([text])
    if dt.year < 1700 or dt.year > 2250:
        return  # beyond an exact float of microseconds, or pandas' range: row by row
    assert got is not None, text
    assert np.float64(parse_timestamp(text)).tobytes() == got[0].tobytes(), text
