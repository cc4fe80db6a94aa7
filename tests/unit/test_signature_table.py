"""Signature table, reconciliation and persistence."""

from __future__ import annotations

import pytest

from controller.host_table import Host
from controller.pipeline import COOKIE_PREFIX
from controller.reconciler import ObservedFlow, reconcile
from controller.signature_table import (
    ACTIVE,
    REMOVED,
    SignatureTable,
    cookie_for,
    is_our_cookie,
)
from controller.state_store import StateStore, StoreError

MATCH = {"eth_src": "00:00:00:00:00:01", "eth_dst": "00:00:00:00:00:02"}


def test_cookie_space():
    assert is_our_cookie(cookie_for(5))
    assert cookie_for(5) & 0xFFFF == 5
    assert not is_our_cookie(0)
    assert not is_our_cookie(0x1234 << 48)


def test_upsert_same_signature_updates_action_in_place():
    table = SignatureTable()
    entry, changed = table.upsert(1, MATCH, 2, path=[1, 2], path_key="a>b")
    assert changed and entry.status == ACTIVE
    same, changed = table.upsert(1, MATCH, 2, path=[1, 2], path_key="a>b")
    assert same is entry and not changed
    moved, changed = table.upsert(1, MATCH, 3, path=[1, 3], path_key="a>b")
    assert moved is entry and changed and entry.out_port == 3
    assert len(table) == 1


def test_removed_entry_is_history_and_new_flow_gets_new_entry():
    table = SignatureTable()
    entry, _ = table.upsert(1, MATCH, 2)
    table.mark_removed(entry, "idle_timeout", now=10.0)
    again, changed = table.upsert(1, MATCH, 2)
    assert changed and again.entry_id != entry.entry_id
    assert [e.status for e in table.query()] == [ACTIVE, REMOVED]
    assert table.prune_removed(older_than=11.0) == [entry.entry_id]


def test_query_filters():
    table = SignatureTable()
    table.upsert(1, MATCH, 2)
    table.upsert(2, {"eth_src": "00:00:00:00:00:03", "eth_dst": "00:00:00:00:00:04"}, 1)
    assert len(table.query(dpid=1)) == 1
    assert len(table.query(mac="00:00:00:00:00:04")) == 1
    assert len(table.query(status=REMOVED)) == 0
    assert len(table.query(limit=1)) == 1


def test_counters_move_last_seen_only_when_packets_grow():
    table = SignatureTable()
    entry, _ = table.upsert(1, MATCH, 2, now=0.0)
    table.update_counters(entry, 10, 1000, now=5.0)
    assert entry.last_seen == 5.0
    table.update_counters(entry, 10, 1000, now=9.0)
    assert entry.last_seen == 5.0


def _observed(entry, packets=0):
    return ObservedFlow(entry.cookie, 0, entry.priority, packets, packets * 100)


def test_reconcile_finds_missing_and_stray():
    table = SignatureTable()
    present, _ = table.upsert(1, MATCH, 2, now=0.0)
    missing, _ = table.upsert(1, {"eth_dst": "00:00:00:00:00:09"}, 3, now=0.0)
    stray = ObservedFlow(COOKIE_PREFIX | 999, 0, 100, 0, 0)
    foreign = ObservedFlow(0xABC, 0, 100, 0, 0)
    result = reconcile(table, 1, [_observed(present, 7), stray, foreign], requested_at=1.0, now=2.0)
    assert result.missing == [missing]
    assert result.stray == [stray]
    assert present.packets == 7


def test_reconcile_ignores_flows_installed_after_the_request():
    table = SignatureTable()
    table.upsert(1, MATCH, 2, now=5.0)
    result = reconcile(table, 1, [], requested_at=4.0, now=6.0)
    assert result.missing == []


def test_reconcile_closes_entries_whose_idle_timeout_ran_out():
    table = SignatureTable()
    entry, _ = table.upsert(1, MATCH, 2, idle_timeout=10, now=0.0)
    result = reconcile(table, 1, [], requested_at=20.0, now=21.0)
    assert result.expired == [entry] and result.missing == []
    assert entry.status == REMOVED and entry.removed_reason.startswith("idle_timeout")


def test_reconcile_removed_entry_still_on_switch_is_stray():
    table = SignatureTable()
    entry, _ = table.upsert(1, MATCH, 2, now=0.0)
    table.mark_removed(entry, "rerouted", now=1.0)
    result = reconcile(table, 1, [_observed(entry)], requested_at=2.0, now=3.0)
    assert [f.cookie for f in result.stray] == [entry.cookie]


def test_store_round_trip(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 'st.db'}")
    table = SignatureTable()
    a, _ = table.upsert(1, MATCH, 2, idle_timeout=30, path=[1, 2], path_key="x>y")
    b, _ = table.upsert(2, MATCH, 1)
    table.mark_removed(b, "delete")
    host = Host("00:00:00:00:00:01", 1, 1, {"10.0.0.1"})
    store.save(flows=table.take_dirty(), hosts=[host])
    store.close()

    again = StateStore(f"sqlite:///{tmp_path / 'st.db'}")
    restored = SignatureTable()
    restored.restore(again.load_flows())
    assert restored.get(a.entry_id).as_dict() == a.as_dict()
    assert restored.get(b.entry_id).status == REMOVED
    assert restored.active_count() == 1
    new, _ = restored.upsert(3, MATCH, 1)
    assert new.entry_id == b.entry_id + 1  # ids (and so cookies) never repeat
    assert again.load_hosts()[0].ips == {"10.0.0.1"}


def test_store_deletes_pruned_rows(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 'st.db'}")
    table = SignatureTable()
    a, _ = table.upsert(1, MATCH, 2)
    store.save(flows=table.take_dirty())
    store.save(deleted_flow_ids=[a.entry_id])
    assert store.load_flows() == []


@pytest.mark.parametrize("url,needle", [
    ("postgresql://127.0.0.1:1/none", "cannot reach database"),
    ("nonsense", "invalid database URL"),
    ("sqlite:////proc/nope/x.db", "cannot"),
])
def test_store_errors_are_one_line(url, needle):
    with pytest.raises(StoreError) as exc:
        StateStore(url)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_store_keeps_bypass_percent(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 'st.db'}")
    table = SignatureTable()
    a, _ = table.upsert(1, MATCH, 2, group_id=0x90000001, backup_port=3, bypass_percent=2.5,
                        path=[1, 2, 3], path_key="x>y")
    store.save(flows=table.take_dirty())
    [loaded] = StateStore(f"sqlite:///{tmp_path / 'st.db'}").load_flows()
    assert loaded.bypass_percent == 2.5 and loaded.as_dict() == a.as_dict()


def test_store_written_before_bypass_percent_still_loads(tmp_path):
    import sqlite3

    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE flow_signatures (entry_id INTEGER PRIMARY KEY, dpid BIGINT, "
        "table_id INTEGER, priority INTEGER, match JSON, idle_timeout INTEGER, "
        "hard_timeout INTEGER, out_port BIGINT, group_id BIGINT, goto_table INTEGER, "
        "backup_port BIGINT, arrival_port BIGINT, kind VARCHAR(16), path JSON, "
        "path_key VARCHAR(64), packets BIGINT, bytes BIGINT, created FLOAT, last_seen FLOAT, "
        "installed_at FLOAT, status VARCHAR(16), removed_reason VARCHAR(128), "
        "removed_at FLOAT)")
    conn.execute(
        "INSERT INTO flow_signatures VALUES (7, 1, 2, 100, '{\"eth_dst\": \"x\"}', 60, 0, 2, "
        "2147483649, NULL, 3, 1, 'forward', '[1, 2]', 'a>b', 5, 500, 1.0, 2.0, 1.0, "
        "'active', NULL, NULL)")
    conn.commit()
    conn.close()
    store = StateStore(f"sqlite:///{db}")
    [entry] = store.load_flows()
    assert entry.entry_id == 7 and entry.backup_port == 3 and entry.bypass_percent is None
    entry.bypass_percent = 1.0
    store.save(flows=[entry])
    assert StateStore(f"sqlite:///{db}").load_flows()[0].bypass_percent == 1.0


def test_path_index_agrees_with_a_full_scan():
    import random

    rng = random.Random(3)
    table = SignatureTable()
    for step in range(3000):
        op = rng.random()
        key = f"p{rng.randrange(6)}"
        match = {"eth_dst": f"m{rng.randrange(4)}", "in_port": rng.randrange(3)}
        if op < 0.6:
            table.upsert(rng.randrange(1, 4), match, rng.randrange(1, 5), path_key=key,
                         path=[rng.randrange(5)], now=float(step))
        elif op < 0.9:
            active = table.active()
            if active:
                table.mark_removed(rng.choice(active), "x", float(step))
        else:
            table.prune_removed(float(step))
        scan = table.active_paths()
        for k in {f"p{i}" for i in range(6)}:
            assert sorted(e.entry_id for e in table.active_path(k)) == sorted(
                e.entry_id for e in scan.get(k, [])), step
    restored = SignatureTable()
    restored.restore(list(table._entries.values()))
    for k, entries in table.active_paths().items():
        assert {e.entry_id for e in restored.active_path(k)} == {e.entry_id for e in entries}
