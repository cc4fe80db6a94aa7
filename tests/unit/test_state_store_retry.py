"""The state store retries a database that is briefly away, and only that (real SQLite files).

A transient error is made two ways: another connection holding SQLite's
exclusive lock (the driver's real "database is locked" OperationalError), and a
connection dropped under one statement (an OperationalError raised once from
SQLAlchemy's cursor hook, as a server restart would).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError

from controller.core import ControllerCore
from controller.host_table import Host
from controller.signature_table import FlowSignature
from controller.state_store import StateStore, StoreError

FAST = dict(attempts=30, initial=0.01, maximum=0.05, jitter=0.01, deadline=5.0)


def make_store(tmp_path: Path, **policy: float) -> tuple[StateStore, Path]:
    from shadownet.retry import RetryPolicy

    db = tmp_path / "state.db"
    # timeout: how long SQLite itself waits for a lock before it reports one.
    kwargs = {**FAST, **policy}
    retry = RetryPolicy(**kwargs)  # type: ignore[arg-type]
    return StateStore(f"sqlite:///{db}?timeout=0.02", retry=retry, retry_locked=retry), db


@contextmanager
def locked(db: Path, seconds: float | None) -> Iterator[None]:
    """Hold SQLite's exclusive lock for ``seconds`` (None: for the whole block)."""
    conn = sqlite3.connect(db, timeout=1, check_same_thread=False, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    timer = None
    if seconds is not None:
        timer = threading.Timer(seconds, conn.rollback)
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.join()
        else:
            conn.rollback()
        conn.close()


def flow(entry_id: int) -> FlowSignature:
    return FlowSignature(entry_id, 1, {"eth_dst": f"00:00:00:00:00:{entry_id:02x}"}, 1)


def retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "shadownet.store" and "retrying in" in r.getMessage()]


def test_a_save_waits_out_a_locked_database(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "shadownet.store")
    store, db = make_store(tmp_path)
    with locked(db, 0.3):
        store.save(flows=[flow(1), flow(2)], hosts=[Host("00:00:00:00:00:01", 1, 1)])
    assert [f.entry_id for f in store.load_flows()] == [1, 2]
    lines = retries(caplog)
    assert lines and "database save: attempt 1/30 failed (OperationalError" in lines[0]
    assert "database is locked" in lines[0]


def test_a_load_waits_out_a_locked_database(tmp_path):
    store, db = make_store(tmp_path)
    store.save(flows=[flow(1)])
    with locked(db, 0.3):
        assert [f.entry_id for f in store.load_flows()] == [1]


def test_a_flush_survives_the_database_going_away_for_a_moment(tmp_path):
    """The batch a flush took from the tables is written once the database is back."""
    store, db = make_store(tmp_path)
    core = ControllerCore(store)
    core.table.upsert(1, {"eth_dst": "00:00:00:00:00:01"}, 1)
    core.table.upsert(2, {"eth_dst": "00:00:00:00:00:02"}, 1)
    with locked(db, 0.3):
        assert core.flush() == 2
    assert sorted(f.dpid for f in store.load_flows()) == [1, 2]


def test_a_dropped_connection_is_retried_with_the_whole_transaction(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "shadownet.store")
    store, _ = make_store(tmp_path)
    inserts: list[str] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def drop_once(conn, cursor, statement, params, context, executemany):  # noqa: ANN001
        if statement.startswith("INSERT INTO flow_signatures"):
            inserts.append(statement)
            if len(inserts) == 1:
                raise OperationalError(statement, params,
                                       Exception("server closed the connection unexpectedly"))

    store.save(flows=[flow(1), flow(2)])
    assert len(inserts) == 2  # the transaction ran again, whole
    assert [f.entry_id for f in store.load_flows()] == [1, 2]
    assert len(retries(caplog)) == 1


def test_giving_up_raises_store_error_after_the_attempts(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "shadownet.store")
    store, db = make_store(tmp_path, attempts=3)
    started = time.monotonic()
    with locked(db, None), pytest.raises(StoreError, match="database save failed on "
                                                            r"sqlite:///.*database is locked"):
        store.save(flows=[flow(1)])
    assert time.monotonic() - started < 2
    assert len(retries(caplog)) == 2  # three attempts, two waits
    assert store.load_flows() == []


def test_mirror_rows_use_the_short_policy_under_the_controller_lock(tmp_path):
    from shadownet.retry import RetryPolicy

    db = tmp_path / "state.db"
    store = StateStore(f"sqlite:///{db}?timeout=0.02",
                       retry_locked=RetryPolicy(attempts=2, initial=0.01, maximum=0.01,
                                                jitter=0.0))
    with locked(db, None), pytest.raises(StoreError, match="save of mirror c1"):
        store.save_mirror({"container": "c1"})


def test_errors_that_will_not_pass_are_raised_at_once_and_as_before(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "shadownet.store")
    store, _ = make_store(tmp_path)
    twice = [Host("00:00:00:00:00:01", 1, 1), Host("00:00:00:00:00:01", 2, 2)]
    with pytest.raises(IntegrityError):
        store.save(hosts=twice)  # the same key twice in one insert: refused, not retried
    with pytest.raises(StatementError, match="not an unsigned 64-bit value"):
        store.save(flows=[FlowSignature(1, 2**64, {}, 1)])
    assert retries(caplog) == []
