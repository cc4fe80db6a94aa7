"""Elephant shunts: stop copying the bulk of one mirrored TCP connection.

Copying every segment of a bulk transfer into a mirror doubles the work the
switch does per packet, and on a userspace datapath that is paid in CPU the
primary needs. Most of those segments change nothing in the replica: only
SYN, FIN and RST move a connection's state. So, as Zeek and Suricata do with
their flow "shunting", the mirror agent asks for a connection it sees running
hot to be shunted:

- two flows, one per direction, above the mirror's copy flows, match the
  connection's 5-tuple *and* ``tcp_flags`` with none of SYN/FIN/RST set, and
  continue the pipeline without the copy. Control segments still miss them
  and are copied, so the agent still sees the connection close;
- their packet and byte counters are the shunted part of the connection's
  counters. The agent folds them back into its replica;
- an idle timeout removes them when the connection goes quiet, so a shunt
  cannot outlive its agent for long.

This module is the domain part (validation, flows, the view with counters);
the core and the REST API drive it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controller.mirroring import Mirror, check
from controller.ofmsgs import OutMsg
from controller.pipeline import (
    FORWARD_TABLE,
    FROM_CONTAINER_TABLE,
    SHUNT_PRIORITY,
    TO_CONTAINER_TABLE,
)

SHUNT_IDLE_TIMEOUT = 10  # seconds without a bulk segment before the switch drops a shunt
CONTROL_FLAGS = 0x007  # FIN | SYN | RST: segments with any of these are always copied
KIND = "mirror-shunt"
_ETH_IP, _TCP = 0x0800, 6
_PATH_PREFIX = "shunt:"


@dataclass(frozen=True)
class Shunt:
    """One TCP connection of one container, seen from the container's side."""

    container: str
    local_ip: str
    local_port: int
    remote_ip: str
    remote_port: int

    @property
    def id(self) -> str:
        """The wire id; the agent's ``mirror.shunt_policy.ShuntKey.id`` builds the same one."""
        return f"{self.local_ip}:{self.local_port}-{self.remote_ip}:{self.remote_port}"

    @property
    def path_key(self) -> str:
        return shunt_prefix(self.container) + self.id

    @classmethod
    def from_dict(cls, container: str, data: Any) -> Shunt:
        """Validate a REST body; ``MirrorError`` names the bad field."""
        data = check.mapping(data, "shunt")
        fields = ("local_ip", "local_port", "remote_ip", "remote_port")
        check.keys(data, "shunt", fields, fields)
        for name in fields:
            if name.endswith("_ip"):
                check.ipv4(data[name], f"shunt.{name}")
            else:
                check.port(data[name], f"shunt.{name}")
        return cls(container, data["local_ip"], data["local_port"], data["remote_ip"],
                   data["remote_port"])


def shunt_prefix(container: str) -> str:
    """The start of the ST ``path_key`` of every shunt of ``container``."""
    return f"{_PATH_PREFIX}{container}:"


def shunt_matches(mirror: Mirror, shunt: Shunt) -> list[tuple[int, dict[str, Any], int]]:
    """(table, match, next table) for each direction of the connection's bulk segments."""
    bulk = {"eth_type": _ETH_IP, "ip_proto": _TCP, "tcp_flags_nxm": (0, CONTROL_FLAGS)}
    out = {"in_port": mirror.container_port, **bulk,
           "ipv4_src": shunt.local_ip, "ipv4_dst": shunt.remote_ip,
           "tcp_src": shunt.local_port, "tcp_dst": shunt.remote_port}
    inbound = {"eth_dst": mirror.mac, **bulk,
               "ipv4_src": shunt.remote_ip, "ipv4_dst": shunt.local_ip,
               "tcp_src": shunt.remote_port, "tcp_dst": shunt.local_port}
    # Same next tables as the copy flows they override: only the copy is skipped.
    return [(FROM_CONTAINER_TABLE, out, TO_CONTAINER_TABLE),
            (TO_CONTAINER_TABLE, inbound, FORWARD_TABLE)]


def install_shunt(table: Any, mirror: Mirror, shunt: Shunt, now: float,
                  idle_timeout: int = SHUNT_IDLE_TIMEOUT) -> tuple[bool, list[OutMsg]]:
    """ST entries and flow-mods for a shunt; (created, messages). Idempotent."""
    from controller import ofmsgs

    msgs: list[OutMsg] = []
    created = False
    for table_id, match, next_table in shunt_matches(mirror, shunt):
        entry, changed = table.upsert(
            mirror.dpid, match, None, priority=SHUNT_PRIORITY, table_id=table_id,
            idle_timeout=idle_timeout, goto_table=next_table, kind=KIND,
            path_key=shunt.path_key, now=now)
        if changed:
            created = True
            msgs.append((mirror.dpid, ofmsgs.flow_add(entry)))
    return created, msgs


def remove_shunts(table: Any, container: str, shunt_id: str | None, now: float,
                  reason: str = "shunt_removed") -> list[OutMsg]:
    """Delete one shunt of ``container`` (or all of them when ``shunt_id`` is None)."""
    from controller import ofmsgs

    prefix = shunt_prefix(container)
    keys = [prefix + shunt_id] if shunt_id is not None else table.active_path_keys(prefix)
    msgs: list[OutMsg] = []
    for key in keys:
        for entry in table.active_path(key):
            table.mark_removed(entry, reason, now)
            msgs.append((entry.dpid, ofmsgs.flow_delete_cookie(entry.cookie)))
    return msgs


def shunt_views(table: Any, container: str, counters_at: float | None = None,
                shunt_id: str | None = None) -> list[dict[str, Any]]:
    """Active shunts of ``container`` (or just ``shunt_id``) with the switch's counters.

    ``out`` counts what the container sent, ``in`` what it received, since
    the shunt was installed, as of the last flow-stats reply (``counters_at``).
    """
    prefix = shunt_prefix(container)
    keys = [prefix + shunt_id] if shunt_id is not None else table.active_path_keys(prefix)
    views = []
    for key in keys:
        entries = table.active_path(key)
        if not entries:
            continue
        view: dict[str, Any] = {"id": key[len(prefix):], "cookies": [], "installed_at": None,
                                "counters_at": counters_at,
                                "out": {"packets": 0, "bytes": 0}, "in": {"packets": 0, "bytes": 0}}
        for entry in entries:
            view["out" if entry.table_id == FROM_CONTAINER_TABLE else "in"] = {
                "packets": entry.packets, "bytes": entry.bytes}
            view["cookies"].append(hex(entry.cookie))
            view["installed_at"] = entry.installed_at
            # Either flow's match names the connection (one may have idled out).
            m, outbound = entry.match, entry.table_id == FROM_CONTAINER_TABLE
            view.update(local_ip=m["ipv4_src" if outbound else "ipv4_dst"],
                        remote_ip=m["ipv4_dst" if outbound else "ipv4_src"],
                        local_port=m["tcp_src" if outbound else "tcp_dst"],
                        remote_port=m["tcp_dst" if outbound else "tcp_src"])
        views.append(view)
    return views


def shunt_cookies(table: Any) -> dict[int, list[int]]:
    """Cookies of every active shunt flow, by switch (for the fast counter poll)."""
    out: dict[int, list[int]] = {}
    for key in table.active_path_keys(_PATH_PREFIX):
        for entry in table.active_path(key):
            out.setdefault(entry.dpid, []).append(entry.cookie)
    return out
