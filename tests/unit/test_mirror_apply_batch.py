"""The agent's applier under a backlog: each entry written once, in its latest state."""

from __future__ import annotations

from mirror.agent import MirroredContainer
from mirror.history_store import HistoryStore
from mirror.lifecycle import MirrorRecord
from mirror.state import StateChange


class RecordingApplier:
    def __init__(self) -> None:
        self.applied: list[StateChange] = []

    def apply(self, change: StateChange) -> bool:
        self.applied.append(change)
        return True


def test_backlog_applies_latest_state_per_entry_and_records_every_change(tmp_path):
    store = HistoryStore(f"sqlite:///{tmp_path / 'agent.db'}")
    record = MirrorRecord("h1", "blue", "mirror-h1", "s1", "mh1", 9, 1, 1,
                          "00:00:00:00:00:01", ["10.0.0.1"])
    mirrored = MirroredContainer(record, store, None, apply_state=False)
    applier = RecordingApplier()
    mirrored._applier = applier
    conn = "tcp 10.0.0.1:40000 > 10.0.0.3:80"
    states = ["SYN_SENT", "ESTABLISHED", "FIN_WAIT", "TIME_WAIT"]
    batch = [(StateChange(1.0 + i / 1000, "connection", "add" if i == 0 else "update", conn,
                          {"state": s}), 1.0005 + i / 1000) for i, s in enumerate(states)]
    batch.insert(2, (StateChange(1.0015, "arp", "add", "10.0.0.3", {"mac": "02:00:00:00:00:03"}),
                     1.002))
    mirrored._apply_batch(batch)
    assert [(c.kind, c.value) for c in applier.applied] == [
        ("arp", {"mac": "02:00:00:00:00:03"}), ("connection", {"state": "TIME_WAIT"})]
    store.flush()
    assert len(store.changes("h1", None, None, tenant="blue")) == 5  # every change kept
    assert len(mirrored.lags) == 5
    assert all(lag >= apply for lag, apply in zip(mirrored.lags, mirrored.lags_apply, strict=True))
    summary = mirrored.lag_summary()
    assert summary["samples"] == 5 and summary["engine"]["samples"] == 5
