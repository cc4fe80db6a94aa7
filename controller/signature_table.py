"""The Flow Signature Table (ST): one entry for every flow the controller installs.

An entry holds the signature (match fields), the expiration criteria (idle and
hard timeouts), the action pointer (output port plus the path it belongs to),
a cookie that ties it to what ``ovs-ofctl dump-flows`` shows, counters and
times. The table is the controller's intent; the reconciler keeps the switches
equal to it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from controller.pipeline import COOKIE_MASK, COOKIE_PREFIX

# Cookies are ours when their top 16 bits are "SH" (pipeline.COOKIE_PREFIX); the low
# 48 bits are the entry id.
ENTRY_ID_MASK = (1 << 48) - 1

ACTIVE = "active"
REMOVED = "removed"


def cookie_for(entry_id: int) -> int:
    return COOKIE_PREFIX | (entry_id & ENTRY_ID_MASK)


def is_our_cookie(cookie: int) -> bool:
    return cookie & COOKIE_MASK == COOKIE_PREFIX


def match_key(match: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, str(v)) for k, v in match.items()))


@dataclass
class FlowSignature:
    """One installed (or once installed) flow."""

    entry_id: int
    dpid: int
    match: dict[str, Any]
    out_port: int | None
    priority: int = 100
    table_id: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    group_id: int | None = None
    goto_table: int | None = None
    backup_port: int | None = None  # fast-failover: the detour's port while out_port is down
    arrival_port: int | None = None  # where the path enters this switch (crankback detours)
    # Percent of flows a select group hashes onto backup_port all the time (the live
    # bypass around a critical switch); None: the group is fast-failover.
    bypass_percent: float | None = None
    # forward (a path hop), detour, bypass (a detour kept live), mirror, service
    kind: str = "forward"
    path: list[int] = field(default_factory=list)
    path_key: str = ""
    packets: int = 0
    bytes: int = 0
    created: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.time)
    installed_at: float = field(default_factory=time.time)
    status: str = ACTIVE
    removed_reason: str | None = None
    removed_at: float | None = None

    @property
    def cookie(self) -> int:
        return cookie_for(self.entry_id)

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.dpid, self.table_id, self.priority, match_key(self.match))

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    def action_pointer(self) -> dict[str, Any]:
        return {"out_port": self.out_port, "group_id": self.group_id,
                "backup_port": self.backup_port, "bypass_percent": self.bypass_percent,
                "goto_table": self.goto_table, "path": list(self.path)}

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.entry_id,
            "cookie": hex(self.cookie),
            "dpid": self.dpid,
            "table_id": self.table_id,
            "priority": self.priority,
            "match": dict(self.match),
            "idle_timeout": self.idle_timeout,
            "hard_timeout": self.hard_timeout,
            "action": self.action_pointer(),
            "kind": self.kind,
            "path_key": self.path_key,
            "packets": self.packets,
            "bytes": self.bytes,
            "created": self.created,
            "last_seen": self.last_seen,
            "status": self.status,
            "removed_reason": self.removed_reason,
            "removed_at": self.removed_at,
        }


class SignatureTable:
    """Entries indexed by id, by (switch, table, priority, match) and by path.

    Every change marks the entry dirty so the state store can persist just the
    changed rows.
    """

    def __init__(self, next_id: int = 1) -> None:
        self._entries: dict[int, FlowSignature] = {}
        self._active_by_key: dict[tuple[Any, ...], int] = {}
        # path_key -> ids of its active entries (a dict keeps insertion order)
        self._active_by_path: dict[str, dict[int, None]] = {}
        self._next_id = next_id
        self.dirty: set[int] = set()

    def __len__(self) -> int:
        return len(self._entries)

    def active_count(self) -> int:
        return len(self._active_by_key)

    def restore(self, entries: Iterable[FlowSignature]) -> None:
        """Load entries from the store after a restart."""
        for entry in entries:
            self._entries[entry.entry_id] = entry
            if entry.active:
                self._active_by_key[entry.key] = entry.entry_id
                self._index_path(entry)
            self._next_id = max(self._next_id, entry.entry_id + 1)

    def upsert(
        self,
        dpid: int,
        match: dict[str, Any],
        out_port: int | None,
        *,
        priority: int = 100,
        table_id: int = 0,
        idle_timeout: int = 0,
        hard_timeout: int = 0,
        group_id: int | None = None,
        goto_table: int | None = None,
        backup_port: int | None = None,
        arrival_port: int | None = None,
        bypass_percent: float | None = None,
        kind: str = "forward",
        path: list[int] | None = None,
        path_key: str = "",
        now: float | None = None,
    ) -> tuple[FlowSignature, bool]:
        """Add a flow, or update the action of the active one with the same signature.

        Returns the entry and whether the switch needs a flow-mod (new entry or
        changed action).
        """
        now = time.time() if now is None else now
        key = (dpid, table_id, priority, match_key(match))
        existing_id = self._active_by_key.get(key)
        if existing_id is not None:
            entry = self._entries[existing_id]
            new_path = list(path or [])
            action = (out_port, group_id, goto_table, backup_port, bypass_percent, new_path)
            current = (entry.out_port, entry.group_id, entry.goto_table, entry.backup_port,
                       entry.bypass_percent, entry.path)
            changed = current != action
            if changed:
                (entry.out_port, entry.group_id, entry.goto_table, entry.backup_port,
                 entry.bypass_percent, entry.path) = action
                entry.arrival_port = arrival_port
                if path_key and path_key != entry.path_key:
                    self._unindex_path(entry)
                    entry.path_key = path_key
                    self._index_path(entry)
                entry.installed_at = now
                self.dirty.add(entry.entry_id)
            if entry.kind != kind:  # a detour that became a bypass: a label, not a flow-mod
                entry.kind = kind
                self.dirty.add(entry.entry_id)
            return entry, changed
        entry = FlowSignature(
            entry_id=self._next_id,
            dpid=dpid,
            match=dict(match),
            out_port=out_port,
            priority=priority,
            table_id=table_id,
            idle_timeout=idle_timeout,
            hard_timeout=hard_timeout,
            group_id=group_id,
            goto_table=goto_table,
            backup_port=backup_port,
            arrival_port=arrival_port,
            bypass_percent=bypass_percent,
            kind=kind,
            path=list(path or []),
            path_key=path_key,
            created=now,
            last_seen=now,
            installed_at=now,
        )
        self._next_id += 1
        self._entries[entry.entry_id] = entry
        self._active_by_key[key] = entry.entry_id
        self._index_path(entry)
        self.dirty.add(entry.entry_id)
        return entry, True

    def _index_path(self, entry: FlowSignature) -> None:
        if entry.path_key:
            self._active_by_path.setdefault(entry.path_key, {})[entry.entry_id] = None

    def _unindex_path(self, entry: FlowSignature) -> None:
        ids = self._active_by_path.get(entry.path_key)
        if ids is not None:
            ids.pop(entry.entry_id, None)
            if not ids:
                del self._active_by_path[entry.path_key]

    def get(self, entry_id: int) -> FlowSignature | None:
        return self._entries.get(entry_id)

    def by_cookie(self, cookie: int) -> FlowSignature | None:
        if not is_our_cookie(cookie):
            return None
        return self._entries.get(cookie & ENTRY_ID_MASK)

    def mark_removed(
        self, entry: FlowSignature, reason: str, now: float | None = None
    ) -> None:
        if not entry.active:
            return
        entry.status = REMOVED
        entry.removed_reason = reason
        entry.removed_at = time.time() if now is None else now
        if self._active_by_key.get(entry.key) == entry.entry_id:
            del self._active_by_key[entry.key]
        self._unindex_path(entry)
        self.dirty.add(entry.entry_id)

    def update_counters(
        self, entry: FlowSignature, packets: int, byte_count: int, now: float | None = None,
        persist: bool = True,
    ) -> None:
        """Take the switch's counters; a rising packet count means the flow was used.

        ``persist=False`` for polls frequent enough that writing each one to the
        store would cost more than it keeps (the next persisted change takes them).
        """
        now = time.time() if now is None else now
        if packets > entry.packets:
            entry.last_seen = now
        if (packets, byte_count) != (entry.packets, entry.bytes):
            entry.packets, entry.bytes = packets, byte_count
            if persist:
                self.dirty.add(entry.entry_id)

    def active(self, dpid: int | None = None) -> list[FlowSignature]:
        entries = (self._entries[i] for i in self._active_by_key.values())
        return [e for e in entries if dpid is None or e.dpid == dpid]

    def active_path(self, path_key: str) -> list[FlowSignature]:
        """The active entries of one path, without scanning the table."""
        entries = (self._entries[i] for i in self._active_by_path.get(path_key, ()))
        return [e for e in entries if self._active_by_key.get(e.key) == e.entry_id]

    def active_path_keys(self, prefix: str = "") -> list[str]:
        """Path keys with active entries that start with ``prefix`` (from the index)."""
        return sorted(k for k in self._active_by_path if k.startswith(prefix))

    def active_paths(self) -> dict[str, list[FlowSignature]]:
        paths: dict[str, list[FlowSignature]] = {}
        for entry in self.active():
            if entry.path_key:
                paths.setdefault(entry.path_key, []).append(entry)
        return paths

    def query(
        self,
        *,
        dpid: int | None = None,
        status: str | None = None,
        mac: str | None = None,
        cookie: int | None = None,
        limit: int | None = None,
    ) -> list[FlowSignature]:
        """Filter entries for the REST API; newest first."""
        out = []
        for entry in sorted(self._entries.values(), key=lambda e: -e.entry_id):
            if dpid is not None and entry.dpid != dpid:
                continue
            if status is not None and entry.status != status:
                continue
            if cookie is not None and entry.cookie != cookie:
                continue
            if mac is not None and mac not in (
                str(entry.match.get("eth_src", "")).lower(),
                str(entry.match.get("eth_dst", "")).lower(),
            ):
                continue
            out.append(entry)
            if limit is not None and len(out) >= limit:
                break
        return out

    def prune_removed(self, older_than: float) -> list[int]:
        """Drop history of flows removed before ``older_than`` (returns their ids)."""
        gone = [
            e.entry_id
            for e in self._entries.values()
            if not e.active and e.removed_at is not None and e.removed_at < older_than
        ]
        for entry_id in gone:
            del self._entries[entry_id]
            self.dirty.discard(entry_id)
        return gone

    def take_dirty(self) -> list[FlowSignature]:
        rows = [self._entries[i] for i in self.dirty if i in self._entries]
        self.dirty.clear()
        return rows
