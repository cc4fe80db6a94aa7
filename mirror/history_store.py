"""The agent's SQL store: every state change and every alert, queryable by time.

Rows are keyed by the container's name, tenant and ``uid`` (its OVS interface's
UUID), not by name alone: a container removed and made again under the same
name, by another tenant or the same, is another container. Keyed by name,
tenant red's new ``h1`` read blue's old history and alerts, and an agent
restart restored blue's DNS into red's mirror.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from sqlalchemy import Float, Integer, String, Text, create_engine, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class HistoryStoreError(Exception):
    pass


class Base(DeclarativeBase):
    pass


class ChangeRow(Base):
    __tablename__ = "state_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    container: Mapped[str] = mapped_column(String(128), index=True)
    tenant: Mapped[str] = mapped_column(String(128), default="", server_default="")
    uid: Mapped[str] = mapped_column(String(64), default="", server_default="")
    ts: Mapped[float] = mapped_column(Float, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(256))
    value: Mapped[str] = mapped_column(Text)


class AlertRow(Base):
    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    container: Mapped[str] = mapped_column(String(128), index=True)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    uid: Mapped[str] = mapped_column(String(64), default="", server_default="")
    ts: Mapped[float] = mapped_column(Float, index=True)
    rule: Mapped[str] = mapped_column(String(128))
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    labels: Mapped[str] = mapped_column(Text)


class HistoryStore:
    """Batched writes (the capture path only appends to a list), reads by time range."""

    def __init__(self, url: str) -> None:
        try:
            make_url(url)
            self.engine = create_engine(url, future=True)
            Base.metadata.create_all(self.engine)
            self._add_missing_columns()
        except (ArgumentError, SQLAlchemyError, ImportError) as exc:
            raise HistoryStoreError(f"cannot open history database {url!r}: "
                                    f"{str(exc).splitlines()[0]}") from None
        self._pending: list[Base] = []
        self._lock = threading.Lock()
        # Held through the commit, so a reader that flushes first sees every earlier write.
        self._commit_lock = threading.Lock()

    def _add_missing_columns(self) -> None:
        """Databases from before ``tenant``/``uid`` get the columns (empty: such rows
        belong to no container seen since, so nothing restores or shows them)."""
        present = {t: {c["name"] for c in inspect(self.engine).get_columns(t)}
                   for t in ("state_changes", "alerts")}
        with self.engine.begin() as conn:
            for table, column in (("state_changes", "tenant"), ("state_changes", "uid"),
                                  ("alerts", "uid")):
                if column not in present[table]:
                    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} "
                                      "VARCHAR(128) NOT NULL DEFAULT ''"))

    def add_change(self, container: str, change: dict[str, Any], *, tenant: str = "",
                   uid: str = "") -> None:
        row = ChangeRow(container=container, tenant=tenant, uid=uid, ts=change["ts"],
                        kind=change["kind"],
                        action=change["action"], key=change["key"],
                        value=json.dumps(change["value"], default=str))
        with self._lock:
            self._pending.append(row)

    def add_alert(self, container: str, tenant: str, alert: dict[str, Any], *,
                  uid: str = "") -> None:
        row = AlertRow(container=container, tenant=tenant, uid=uid, ts=alert["ts"],
                       rule=alert["rule"],
                       severity=alert["severity"], message=alert["message"],
                       labels=json.dumps(alert.get("labels", {}), default=str))
        with self._lock:
            self._pending.append(row)

    def flush(self) -> int:
        with self._commit_lock:
            with self._lock:
                rows, self._pending = self._pending, []
            if rows:
                with Session(self.engine) as session, session.begin():
                    session.add_all(rows)
            return len(rows)

    def changes(self, container: str, start: float | None, end: float | None,
                kind: str | None = None, limit: int = 10000, *, tenant: str = "",
                uid: str = "") -> list[dict[str, Any]]:
        """One container's changes: the one with this name, tenant and uid."""
        query = select(ChangeRow).where(ChangeRow.container == container,
                                        ChangeRow.tenant == tenant, ChangeRow.uid == uid)
        if start is not None:
            query = query.where(ChangeRow.ts >= start)
        if end is not None:
            query = query.where(ChangeRow.ts <= end)
        if kind is not None:
            query = query.where(ChangeRow.kind == kind)
        with Session(self.engine) as session:
            rows = session.scalars(query.order_by(ChangeRow.ts, ChangeRow.id).limit(limit)).all()
            return [{"ts": r.ts, "kind": r.kind, "action": r.action, "key": r.key,
                     "value": json.loads(r.value)} for r in rows]

    def alerts(self, tenant: str | None, start: float | None = None,
               end: float | None = None, limit: int = 1000, *,
               container: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        """Alerts of ``tenant`` (None: every tenant's), or of one ``(name, uid)`` of it."""
        query = select(AlertRow)
        if tenant is not None:
            query = query.where(AlertRow.tenant == tenant)
        if container is not None:
            query = query.where(AlertRow.container == container[0], AlertRow.uid == container[1])
        if start is not None:
            query = query.where(AlertRow.ts >= start)
        if end is not None:
            query = query.where(AlertRow.ts <= end)
        with Session(self.engine) as session:
            rows = session.scalars(query.order_by(AlertRow.ts.desc()).limit(limit)).all()
            return [{"container": r.container, "tenant": r.tenant, "ts": r.ts, "rule": r.rule,
                     "severity": r.severity, "message": r.message,
                     "labels": json.loads(r.labels)} for r in rows]
