"""Reconciliation: compare what a switch reports with the signature table.

The table is the intent. A flow in the table but not on the switch is missing
and gets reinstalled, unless its idle timeout has plainly run out (then the
flow-removed message was lost and the entry is closed instead). A flow with our
cookie that the table does not hold as active is a stray and gets deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.signature_table import FlowSignature, SignatureTable, is_our_cookie


@dataclass(frozen=True)
class ObservedFlow:
    """One row of a flow-stats reply, reduced to what reconciliation needs."""

    cookie: int
    table_id: int
    priority: int
    packets: int
    bytes: int


@dataclass
class ReconcileResult:
    missing: list[FlowSignature] = field(default_factory=list)
    stray: list[ObservedFlow] = field(default_factory=list)
    expired: list[FlowSignature] = field(default_factory=list)
    seen: int = 0

    @property
    def repairs(self) -> int:
        return len(self.missing) + len(self.stray)


def reconcile(
    table: SignatureTable,
    dpid: int,
    observed: list[ObservedFlow],
    requested_at: float,
    now: float,
) -> ReconcileResult:
    """Diff one switch's flows (ours only) against the table and update counters.

    ``requested_at`` is when the stats request left: entries installed after it
    may legitimately be absent from the reply and are left alone.
    """
    result = ReconcileResult()
    present: set[int] = set()
    for flow in observed:
        if not is_our_cookie(flow.cookie):
            continue
        entry = table.by_cookie(flow.cookie)
        if entry is None or not entry.active or entry.dpid != dpid:
            # Deleting a flow that is already on its way out is harmless.
            result.stray.append(flow)
            continue
        present.add(entry.entry_id)
        result.seen += 1
        table.update_counters(entry, flow.packets, flow.bytes, now)

    for entry in table.active(dpid):
        if entry.entry_id in present or entry.installed_at >= requested_at:
            continue
        if entry.idle_timeout and now - entry.last_seen >= entry.idle_timeout:
            table.mark_removed(entry, "idle_timeout (found expired by reconciliation)", now)
            result.expired.append(entry)
        elif entry.hard_timeout and now - entry.installed_at >= entry.hard_timeout:
            table.mark_removed(entry, "hard_timeout (found expired by reconciliation)", now)
            result.expired.append(entry)
        else:
            result.missing.append(entry)
    return result
