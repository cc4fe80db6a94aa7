"""Persistence of the signature table, host table and service state (SQLAlchemy).

The store is written in batches (only rows that changed) and read once at
start-up, so a restarted controller knows every flow it owns and can re-sync
the switches to it, and every service flow keeps its node and shadow list and
every service its active node. Any SQLAlchemy URL works; the default is a
local SQLite file.

Every load and save is retried (shadownet.retry) when the database drops the
connection or is briefly unavailable (a PostgreSQL restart, a locked SQLite
file), so such a blip does not lose the batch a flush took; each retry runs the
whole transaction again, which is safe because every write is an upsert or a
delete by key. Errors that will not pass (a refused row, bad input) are raised
at once, as before. When the retries give up, :class:`StoreError` is raised.
Under eventlet the waits are green sleeps (time.sleep is patched), so the hub
keeps running while a flush waits for the database.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    Integer,
    String,
    create_engine,
    delete,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.types import TypeDecorator

from controller.host_table import Host
from controller.signature_table import FlowSignature
from shadownet.retry import RetryPolicy

LOG = logging.getLogger("shadownet.store")
T = TypeVar("T")

# Loads and flushes run outside the controller's lock: give a restarting
# database about ten seconds (five attempts, waits of 0.25, 0.5, 1, 2 s + jitter).
DB_RETRY = RetryPolicy(attempts=5, initial=0.25, maximum=4.0, jitter=0.25, deadline=10.0)
# Mirror rows are saved while the controller holds its lock (in a REST request),
# where a long wait would stall packet handling: one quick retry only.
DB_RETRY_LOCKED = RetryPolicy(attempts=2, initial=0.1, maximum=0.1, jitter=0.1, deadline=1.0)


class StoreError(Exception):
    """The database URL is wrong, or the database could not be reached (after retries)."""


def transient_db(exc: BaseException) -> bool:
    """A database error that can pass: a dropped connection, the server (re)starting, a lock.

    SQLAlchemy reports those as ``OperationalError`` (a DBAPI error the driver
    blames on the database's operation) or ``DisconnectionError``; an integrity
    or data error, or a ValueError from a bad row, is never retried.
    """
    return isinstance(exc, OperationalError | DisconnectionError)


def default_db_url() -> str:
    state_dir = Path(os.environ.get("SHADOWNET_STATE_DIR", "~/.local/state/shadownet"))
    return f"sqlite:///{state_dir.expanduser() / 'shadownet.db'}"


class Base(DeclarativeBase):
    pass


class Uint64(TypeDecorator[int]):
    """An OpenFlow uint64 (datapath id, packet and byte counters) in a signed BIGINT.

    SQL's BIGINT stops at 2**63 - 1, but OVS takes any 64-bit datapath id and
    counters run to 2**64 - 1. A dpid of 2**63 or more used to fail the whole
    flush it was in, and that flush's other rows were lost. Stored here as the
    same 64 bits read as signed (two's complement): every value below 2**63 is
    stored as itself, so existing databases read unchanged.
    """

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Any) -> int | None:
        if value is None:
            return None
        if not 0 <= value < 1 << 64:
            raise ValueError(f"{value} is not an unsigned 64-bit value")
        return value - (1 << 64) if value >= 1 << 63 else value

    def process_result_value(self, value: int | None, dialect: Any) -> int | None:
        return None if value is None else value + (1 << 64) if value < 0 else value


class FlowRow(Base):
    __tablename__ = "flow_signatures"

    entry_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dpid: Mapped[int] = mapped_column(Uint64, index=True)
    table_id: Mapped[int] = mapped_column(Integer)
    priority: Mapped[int] = mapped_column(Integer)
    match: Mapped[dict[str, Any]] = mapped_column(JSON)
    idle_timeout: Mapped[int] = mapped_column(Integer)
    hard_timeout: Mapped[int] = mapped_column(Integer)
    out_port: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    group_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    goto_table: Mapped[int | None] = mapped_column(Integer, nullable=True)
    backup_port: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    arrival_port: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    bypass_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    kind: Mapped[str] = mapped_column(String(16), default="forward")
    path: Mapped[list[int]] = mapped_column(JSON)
    path_key: Mapped[str] = mapped_column(String(64), index=True)
    packets: Mapped[int] = mapped_column(Uint64)
    bytes: Mapped[int] = mapped_column(Uint64)
    created: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)
    installed_at: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), index=True)
    removed_reason: Mapped[str | None] = mapped_column(String(128), nullable=True)
    removed_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class HostRow(Base):
    __tablename__ = "hosts"

    mac: Mapped[str] = mapped_column(String(17), primary_key=True)
    dpid: Mapped[int] = mapped_column(Uint64)
    port: Mapped[int] = mapped_column(BigInteger)
    ips: Mapped[str] = mapped_column(String(1024))
    first_seen: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)


class MirrorRow(Base):
    __tablename__ = "mirrors"

    container: Mapped[str] = mapped_column(String(128), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class ShadowRow(Base):
    """One Shadow Table entry (a service flow): where it goes now and where it could go.

    Passed in and out as plain records (``ShadowEntry.as_record``) so the store
    does not depend on the services package.
    """

    __tablename__ = "shadow_entries"

    service: Mapped[str] = mapped_column(String(128), primary_key=True)
    client_ip: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_port: Mapped[int] = mapped_column(Integer, primary_key=True)
    primary: Mapped[str] = mapped_column(String(128))
    client_dpid: Mapped[int | None] = mapped_column(Uint64, nullable=True)
    client_mac: Mapped[str | None] = mapped_column(String(17), nullable=True)
    shadows: Mapped[list[Any]] = mapped_column(JSON)
    created: Mapped[float] = mapped_column(Float)
    updated: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(128), nullable=True)
    cookies: Mapped[list[int]] = mapped_column(JSON)
    moves: Mapped[list[Any]] = mapped_column(JSON)


class ServiceStateRow(Base):
    """Per service: the node new flows go to and when the service last switched
    (so a restart neither fails back to a failing primary nor skips the cool-down)."""

    __tablename__ = "service_state"

    service: Mapped[str] = mapped_column(String(128), primary_key=True)
    active: Mapped[str] = mapped_column(String(128))
    last_switch: Mapped[float | None] = mapped_column(Float, nullable=True)


class EngineStateRow(Base):
    """A predictive engine's baselines (``TrendEngine.state_dict``), by engine name,
    so a restarted controller does not learn every node's normal again."""

    __tablename__ = "engine_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    saved_at: Mapped[float] = mapped_column(Float)


# Columns renamed since an older release: (table, new name) -> old name.
RENAMED_COLUMNS = {("flow_signatures", "bypass_percent"): "shadow_percent"}

_FLOW_FIELDS = [c.name for c in FlowRow.__table__.columns]
_SHADOW_FIELDS = [c.name for c in ShadowRow.__table__.columns]
_SERVICE_FIELDS = [c.name for c in ServiceStateRow.__table__.columns]


class StateStore:
    """Loads and saves controller state through one SQLAlchemy engine."""

    def __init__(self, url: str, retry: RetryPolicy = DB_RETRY,
                 retry_locked: RetryPolicy = DB_RETRY_LOCKED) -> None:
        self.url = url
        self.retry = retry
        self.retry_locked = retry_locked
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise StoreError(f"invalid database URL {url!r}: {exc}") from None
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            folder = Path(parsed.database).expanduser().resolve().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create database folder {folder}: {exc}") from None
        try:
            self.engine = create_engine(url, future=True, pool_pre_ping=True)
            with self.engine.connect():
                pass
            Base.metadata.create_all(self.engine)
            self._add_missing_columns()
        except (SQLAlchemyError, ImportError, OSError) as exc:
            reason = str(exc).splitlines()[0]
            raise StoreError(f"cannot reach database {url!r}: {reason}") from None

    def _add_missing_columns(self) -> None:
        """Bring a database written by an older release up to the current columns.

        ``create_all`` only creates missing tables; a column added since (such as
        ``bypass_percent``) would make every load fail. New columns are nullable,
        so adding them empty keeps old rows valid: NULL means what old rows meant.
        A column that was renamed (``RENAMED_COLUMNS``) gets its old values.
        """
        for table in Base.metadata.sorted_tables:
            have = {c["name"] for c in inspect(self.engine).get_columns(table.name)}
            for column in table.columns:
                if column.name in have or not column.nullable:
                    continue
                dialect = self.engine.dialect
                quote = dialect.identifier_preparer.quote
                kind = column.type.compile(dialect=dialect)
                old = RENAMED_COLUMNS.get((table.name, column.name))
                with self.engine.begin() as conn:
                    conn.execute(text(f"ALTER TABLE {quote(table.name)} "
                                      f"ADD COLUMN {quote(column.name)} {kind}"))
                    if old in have:
                        conn.execute(text(f"UPDATE {quote(table.name)} SET "
                                          f"{quote(column.name)} = {quote(old)}"))

    def _retried(self, what: str, fn: Callable[[], T], policy: RetryPolicy | None = None) -> T:
        """``fn()`` (one whole transaction) under the retry policy; StoreError on giving up."""
        try:
            return (policy or self.retry).call(fn, retry_if=transient_db,
                                               what=f"database {what}", logger=LOG)
        except (OperationalError, DisconnectionError) as exc:
            reason = str(exc).splitlines()[0]
            raise StoreError(f"database {what} failed on {self._safe_url()}: {reason}") from exc

    def _safe_url(self) -> str:
        """The URL without its password, for messages that reach the log."""
        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except ArgumentError:
            return "the database"

    def load_flows(self) -> list[FlowSignature]:
        return self._retried("load of flows", self._load_flows)

    def _load_flows(self) -> list[FlowSignature]:
        with Session(self.engine) as session:
            rows = session.scalars(select(FlowRow).order_by(FlowRow.entry_id)).all()
            return [FlowSignature(**{f: getattr(r, f) for f in _FLOW_FIELDS}) for r in rows]

    def load_hosts(self) -> list[Host]:
        return self._retried("load of hosts", self._load_hosts)

    def _load_hosts(self) -> list[Host]:
        with Session(self.engine) as session:
            rows = session.scalars(select(HostRow)).all()
            return [
                Host(
                    mac=r.mac,
                    dpid=r.dpid,
                    port=r.port,
                    ips=set(json.loads(r.ips)),
                    first_seen=r.first_seen,
                    last_seen=r.last_seen,
                )
                for r in rows
            ]

    def load_shadow(self) -> list[dict[str, Any]]:
        """Shadow Table entries as records (``ShadowEntry.from_record`` reads them)."""
        return self._retried("load of shadow entries", self._load_shadow)

    def _load_shadow(self) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            rows = session.scalars(select(ShadowRow).order_by(ShadowRow.created)).all()
            return [{f: getattr(r, f) for f in _SHADOW_FIELDS} for r in rows]

    def load_service_state(self) -> dict[str, dict[str, Any]]:
        """``{service: {"active": node, "last_switch": ts}}`` as last saved."""
        return self._retried("load of service state", self._load_service_state)

    def _load_service_state(self) -> dict[str, dict[str, Any]]:
        with Session(self.engine) as session:
            rows = session.scalars(select(ServiceStateRow)).all()
            return {r.service: {"active": r.active, "last_switch": r.last_switch}
                    for r in rows}

    def save(
        self,
        flows: Iterable[FlowSignature] = (),
        hosts: Iterable[Host] = (),
        deleted_flow_ids: Iterable[int] = (),
        shadow: Iterable[Mapping[str, Any]] = (),
        deleted_shadow: Iterable[tuple[str, str, int]] = (),
        service_state: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """Upsert changed rows in one transaction.

        ``shadow``: changed ShT entry records; ``deleted_shadow``: ``(service,
        client_ip, client_port)`` of expired entries; ``service_state``: changed
        ``{service: {"active", "last_switch"}}``. A transaction the database
        dropped is run again whole (see the module's docstring); StoreError when
        it still fails after the retries.
        """
        flow_rows = [{f: getattr(entry, f) for f in _FLOW_FIELDS} for entry in flows]
        host_rows = [{"mac": h.mac, "dpid": h.dpid, "port": h.port,
                      "ips": json.dumps(sorted(h.ips)), "first_seen": h.first_seen,
                      "last_seen": h.last_seen} for h in hosts]
        shadow = list(shadow)  # iterated again by a retried transaction
        deleted_shadow = list(deleted_shadow)
        deleted_ids = list(deleted_flow_ids)
        services = dict(service_state or {})

        def transaction() -> None:
            with Session(self.engine) as session, session.begin():
                _replace(session, FlowRow.entry_id, flow_rows)
                _replace(session, HostRow.mac, host_rows)
                for record in shadow:
                    session.merge(ShadowRow(**{f: record.get(f) for f in _SHADOW_FIELDS}))
                for service, state in services.items():
                    session.merge(ServiceStateRow(service=service, active=state["active"],
                                                  last_switch=state.get("last_switch")))
                for service, client_ip, client_port in deleted_shadow:
                    session.execute(delete(ShadowRow).where(
                        ShadowRow.service == service, ShadowRow.client_ip == client_ip,
                        ShadowRow.client_port == client_port))
                _delete_keys(session, FlowRow.entry_id, deleted_ids)

        self._retried("save", transaction)

    def save_each(
        self,
        flows: Iterable[FlowSignature] = (),
        hosts: Iterable[Host] = (),
        deleted_flow_ids: Iterable[int] = (),
        shadow: Iterable[Mapping[str, Any]] = (),
        deleted_shadow: Iterable[tuple[str, str, int]] = (),
        service_state: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> list[str]:
        """:meth:`save`, one row per transaction: what a failed batch falls back to.

        One row the database refuses then costs that row only, not the batch
        it came in. Returns a description of each refused row. A StoreError
        (the database gone, after the retries) ends it at once rather than
        spend the retry budget again on every remaining row.
        """
        refused: list[str] = []
        parts: list[tuple[str, dict[str, Any]]] = []
        parts += [(f"flow {e.entry_id}", {"flows": [e]}) for e in flows]
        parts += [(f"host {h.mac}", {"hosts": [h]}) for h in hosts]
        parts += [(f"shadow entry {r.get('service')}/{r.get('client_ip')}", {"shadow": [r]})
                  for r in shadow]
        parts += [(f"service {name}", {"service_state": {name: st}})
                  for name, st in (service_state or {}).items()]
        parts.append(("deletions", {"deleted_flow_ids": list(deleted_flow_ids),
                                    "deleted_shadow": list(deleted_shadow)}))
        for what, kwargs in parts:
            try:
                self.save(**kwargs)
            except (SQLAlchemyError, ValueError, TypeError, OverflowError) as exc:
                refused.append(f"{what}: {type(exc).__name__}: {str(exc)[:200]}")
        return refused

    def load_mirrors(self) -> list[dict[str, Any]]:
        def load() -> list[dict[str, Any]]:
            with Session(self.engine) as session:
                return [r.data for r in session.scalars(select(MirrorRow)).all()]

        return self._retried("load of mirrors", load)

    def save_mirror(self, data: dict[str, Any]) -> None:
        def transaction() -> None:
            with Session(self.engine) as session, session.begin():
                session.merge(MirrorRow(container=data["container"], data=data))

        self._retried(f"save of mirror {data.get('container')}", transaction,
                      self.retry_locked)

    def delete_mirror(self, container: str) -> None:
        def transaction() -> None:
            with Session(self.engine) as session, session.begin():
                session.execute(delete(MirrorRow).where(MirrorRow.container == container))

        self._retried(f"deletion of mirror {container}", transaction, self.retry_locked)

    def load_engine_state(self, name: str) -> dict[str, Any] | None:
        def load() -> dict[str, Any] | None:
            with Session(self.engine) as session:
                row = session.get(EngineStateRow, name)
                return dict(row.state) if row is not None else None

        return self._retried(f"load of {name} baselines", load)

    def save_engine_state(self, name: str, state: dict[str, Any], now: float) -> None:
        def transaction() -> None:
            with Session(self.engine) as session, session.begin():
                session.merge(EngineStateRow(name=name, state=state, saved_at=now))

        self._retried(f"save of {name} baselines", transaction)

    def ping(self) -> bool:
        try:
            with self.engine.connect():
                return True
        except SQLAlchemyError:
            return False

    def close(self) -> None:
        self.engine.dispose()


_CHUNK = 500  # keys per IN (...): well under every database's bound-parameter limit


def _delete_keys(session: Session, key: Any, values: list[Any]) -> None:
    for i in range(0, len(values), _CHUNK):
        session.execute(delete(key.class_).where(key.in_(values[i:i + _CHUNK])))


def _replace(session: Session, key: Any, rows: list[dict[str, Any]]) -> None:
    """Upsert ``rows`` by their one-column primary ``key``: delete, then one bulk insert.

    ``Session.merge`` costs a SELECT per row; a pingall on a 33-switch network
    dirties thousands of flow rows a second, and merging them held the
    controller's hub for most of a second.
    """
    if rows:
        _delete_keys(session, key, [row[key.name] for row in rows])
        session.execute(insert(key.class_), rows)
