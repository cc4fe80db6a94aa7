"""Elephant shunting: stop copying bulk TCP data into the mirror, count it on the switch.

Copying every segment of a bulk transfer (iperf3, backups) into the mirror costs
more than the mirror learns from it: once a connection is ESTABLISHED and busy,
its data segments only move counters.  Like Zeek and Suricata, we "shunt" such
elephants: the controller installs per-connection OpenFlow rules that stop
copying the connection's segments carrying none of SYN/FIN/RST.  Control
segments are still copied, so the state machine still sees the close; and the
switch's flow counters for those rules stand in for the packets we no longer see,
so they are folded back into the :class:`~mirror.tcp_state.Flow`.

This module is pure bookkeeping (no I/O, threads or HTTP) so it can be tested
with real flows and driven by whichever loop owns the controller connection:

1. ``plan(flows, now)`` -> keys to ask the controller to shunt / unshunt;
2. ``accepted(key)`` / ``refused(key)`` with the controller's answer;
3. ``fold(flows, counters, now)`` with the controller's per-rule counters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mirror.packets import ip_str
from mirror.tcp_state import BUSY_PACKETS, Flow, FlowTuple

TCP = 6
# A connection's rate is trusted after this long, or sooner once it has carried
# BUSY_PACKETS segments (a sample no handshake burst can fake).
MIN_SAMPLE = 0.05
_DIRS = ("out", "in")


def _text(ip: str | bytes) -> str:
    return ip if isinstance(ip, str) else ip_str(ip)


@dataclass(frozen=True)
class ShuntKey:
    """One shunted connection, from the container's side, in the controller's terms.

    Text addresses (not the table's packed bytes) because the key travels to the
    controller as JSON and comes back as the ``id`` of its counter rows.
    """

    local_ip: str
    local_port: int
    remote_ip: str
    remote_port: int

    @property
    def id(self) -> str:
        """The controller's ``Shunt.id`` (the agent does not import the controller)."""
        return f"{self.local_ip}:{self.local_port}-{self.remote_ip}:{self.remote_port}"

    def body(self) -> dict[str, Any]:
        return {"local_ip": self.local_ip, "local_port": self.local_port,
                "remote_ip": self.remote_ip, "remote_port": self.remote_port}

    @classmethod
    def of_connection(cls, conn: dict[str, Any]) -> ShuntKey:
        """From a snapshot's connection dict (originator first; ``direction`` says who)."""
        orig, resp = (conn["orig_ip"], conn["orig_port"]), (conn["resp_ip"], conn["resp_port"])
        local, remote = (orig, resp) if conn["direction"] == "outbound" else (resp, orig)
        return cls(local[0], int(local[1]), remote[0], int(remote[1]))

    @classmethod
    def of(cls, flow: Flow) -> ShuntKey:
        proto, lip, lport, rip, rport = flow.key
        if proto != TCP:
            raise ValueError(f"only TCP flows can be shunted, not proto {proto}")
        return cls(_text(lip), int(lport), _text(rip), int(rport))


@dataclass
class ShuntPolicy:
    """When to shunt: a connection busier than ``min_pps`` (both directions together,
    over the last planning interval).  ``enabled=False`` stops new shunts but still
    unshunts and folds the ones already in place, so turning it off is safe."""

    enabled: bool = True
    min_pps: float = 2000.0

    def __post_init__(self) -> None:
        if not self.min_pps > 0:
            raise ValueError(f"min_pps must be > 0 packets/s, got {self.min_pps!r}")


def _count(v: Any) -> int | None:
    """A valid counter: a non-negative int (bools are not counters)."""
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    return None


def _parse(row: Any) -> tuple[str, dict[str, tuple[int, int]]] | None:
    """``(id, {"out": (packets, bytes), "in": (packets, bytes)})`` or None if malformed."""
    if not isinstance(row, dict) or not isinstance(row.get("id"), str):
        return None
    parsed: dict[str, tuple[int, int]] = {}
    for d in _DIRS:
        side = row.get(d)
        if not isinstance(side, dict):
            return None
        p, b = _count(side.get("packets")), _count(side.get("bytes"))
        if p is None or b is None:
            return None
        parsed[d] = (p, b)
    return row["id"], parsed


def _zero() -> dict[str, dict[str, int]]:
    return {d: {"packets": 0, "bytes": 0} for d in _DIRS}


class Shunter:
    """Decides which connections to shunt or unshunt, and folds switch counters back
    into flows.

    A key is *pending* from the ``plan`` that proposed it until the controller
    answers, then *shunted*.  Each key remembers the very Flow object it was planned
    for, so a flow that expired and reappeared under the same table key is treated as
    gone rather than silently inheriting the old shunt.
    """

    def __init__(self, policy: ShuntPolicy) -> None:
        self.policy = policy
        self._seen: dict[FlowTuple, tuple[Flow, int, float]] = {}  # table key -> (flow, pkts, ts)
        self._pending: dict[ShuntKey, Flow] = {}
        self._shunted: dict[ShuntKey, Flow] = {}
        self._by_table: dict[FlowTuple, ShuntKey] = {}  # shunted only
        self._last: dict[ShuntKey, dict[str, tuple[int, int]]] = {}  # last row folded
        # Unshunted keys whose final counters (from the rules' removal) are still to come.
        self._closing: dict[ShuntKey, tuple[Flow, dict[str, tuple[int, int]]]] = {}
        self._totals: dict[ShuntKey, tuple[Flow, dict[str, dict[str, int]]]] = {}
        self._shunts_total = 0
        self._folded_packets = 0
        self._folded_bytes = 0

    # -- planning -----------------------------------------------------------------------------

    def plan(self, flows: dict[FlowTuple, Flow], now: float
             ) -> tuple[list[ShuntKey], list[ShuntKey]]:
        """``(to_add, to_remove)``; to_add become pending, to_remove are dropped at once."""
        to_remove: list[ShuntKey] = []
        for table in (self._shunted, self._pending):
            for key, flow in list(table.items()):
                if flows.get(flow.key) is not flow or flow.state != "ESTABLISHED":
                    to_remove.append(key)
                    self._drop(key)
        busy = set(self._pending.values()) | set(self._shunted.values())
        to_add: list[ShuntKey] = []
        seen: dict[FlowTuple, tuple[Flow, int, float]] = {}
        for fk, flow in flows.items():
            if flow.proto != TCP:
                continue
            pkts = flow.orig.packets + flow.resp.packets
            prev = self._seen.get(fk)
            seen[fk] = (flow, pkts, now)
            if prev is None or prev[0] is not flow:
                # First sighting: its whole life so far is the sample, once it is long
                # or large enough that a handshake burst cannot pass for a transfer.
                # With the agent woken by on_busy, this cuts the copied head of a bulk
                # transfer to about BUSY_PACKETS segments and one controller round trip.
                prev = (flow, 0, flow.first_seen)
                if now - flow.first_seen < MIN_SAMPLE and pkts < BUSY_PACKETS:
                    continue
            elapsed = now - prev[2]
            if elapsed <= 0:
                seen[fk] = prev  # keep the older sample; no rate over zero time
                continue
            delta = pkts - prev[1]
            if (not self.policy.enabled or flow.state != "ESTABLISHED" or flow in busy
                    or delta / elapsed < self.policy.min_pps):
                continue
            key = ShuntKey.of(flow)
            self._pending[key] = flow
            to_add.append(key)
        self._seen = seen
        for key in [k for k, (f, _) in self._totals.items() if flows.get(f.key) is not f]:
            del self._totals[key]
        return to_add, to_remove

    def _drop(self, key: ShuntKey) -> None:
        self._pending.pop(key, None)
        flow = self._shunted.pop(key, None)
        last = self._last.pop(key, None)
        if flow is not None:
            self._by_table.pop(flow.key, None)
            if last is not None:
                self._closing[key] = (flow, last)

    def accepted(self, key: ShuntKey) -> None:
        """The controller installed the rules: pending -> shunted (ignored if not pending)."""
        flow = self._pending.pop(key, None)
        if flow is None:
            return
        self._shunted[key] = flow
        self._by_table[flow.key] = key
        self._last[key] = {d: (0, 0) for d in _DIRS}  # new rules count from zero
        entry = self._totals.get(key)
        if entry is None or entry[0] is not flow:
            self._totals[key] = (flow, _zero())
        self._shunts_total += 1

    def lost(self, key: ShuntKey) -> None:
        """The switch dropped the rules by itself (idle timeout): copied in full again,
        and owed its final counters like an unshunted key."""
        if key in self._shunted:
            self._drop(key)

    def refused(self, key: ShuntKey) -> None:
        """The controller refused or was unreachable; a later plan() may retry."""
        self._pending.pop(key, None)

    def shunted(self) -> list[ShuntKey]:
        return list(self._shunted)

    def is_shunted(self, flow_key: FlowTuple) -> bool:
        return flow_key in self._by_table

    # -- counters -----------------------------------------------------------------------------

    def fold(self, flows: dict[FlowTuple, Flow], counters: list[dict[str, Any]], now: float) -> int:
        """Add what the switch counted since the last fold to the flows; returns packets.

        Rows are cumulative since install.  A direction whose counters went backwards
        (rule reinstalled) becomes the new baseline and adds nothing.
        """
        by_id = {k.id: k for k in self._shunted}
        folded = 0
        for row in counters if isinstance(counters, list) else ():
            parsed = _parse(row)
            if parsed is None or parsed[0] not in by_id:
                continue
            key = by_id[parsed[0]]
            flow = self._shunted[key]
            if flows.get(flow.key) is not flow:
                continue  # gone; the next plan() unshunts it
            folded += self._fold_row(key, flow, self._last[key], parsed[1], now)
        return folded

    def closing(self) -> list[ShuntKey]:
        """Unshunted keys still owed their final counters (see ``fold_final``)."""
        return list(self._closing)

    def fold_final(self, key: ShuntKey, row: dict[str, Any], now: float) -> int:
        """The rules' last counters, reported when they were removed: what the switch
        counted between the last fold and the unshunt.  Forgets ``key`` afterwards."""
        entry = self._closing.pop(key, None)
        parsed = _parse(row)
        if entry is None or parsed is None:
            return 0
        return self._fold_row(key, entry[0], entry[1], parsed[1], now)

    def _fold_row(self, key: ShuntKey, flow: Flow, last: dict[str, tuple[int, int]],
                  row: dict[str, tuple[int, int]], now: float) -> int:
        totals = self._totals[key][1] if key in self._totals else _zero()
        local = flow.orig if flow.local_is_orig else flow.resp
        remote = flow.resp if flow.local_is_orig else flow.orig
        added = 0
        for d, ep in (("out", local), ("in", remote)):
            p, b = row[d]
            lp, lb = last[d]
            last[d] = (p, b)
            if p < lp or b < lb:
                continue
            dp, db = p - lp, b - lb
            ep.packets += dp
            ep.bytes += db
            totals[d]["packets"] += dp
            totals[d]["bytes"] += db
            self._folded_bytes += db
            added += dp
        if added:
            flow.last_seen = max(flow.last_seen, now)
        self._folded_packets += added
        return added

    def stats(self) -> dict[str, int]:
        return {"shunted": len(self._shunted), "pending": len(self._pending),
                "shunts_total": self._shunts_total, "folded_packets": self._folded_packets,
                "folded_bytes": self._folded_bytes}

    def totals(self, key: ShuntKey) -> dict[str, dict[str, int]] | None:
        """What the switch supplied for ``key`` so far (kept while its flow lives)."""
        entry = self._totals.get(key)
        return None if entry is None else {d: dict(v) for d, v in entry[1].items()}
