"""The state store: OpenFlow's unsigned 64-bit values, and one bad row never losing a batch."""

from __future__ import annotations

from controller.core import ControllerCore
from controller.host_table import Host
from controller.signature_table import FlowSignature
from controller.state_store import StateStore

BIG_DPID = 2**63 + 5  # OVS takes any 64-bit datapath id


def test_unsigned_64_bit_dpids_and_counters_round_trip(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 's.db'}")
    flow = FlowSignature(1, BIG_DPID, {"eth_dst": "00:00:00:00:00:01"}, 1,
                         packets=2**64 - 1, bytes=2**63)
    small = FlowSignature(2, 7, {"eth_dst": "00:00:00:00:00:02"}, 2)
    store.save(flows=[flow, small], hosts=[Host("00:00:00:00:00:01", BIG_DPID, 1)])
    loaded = {f.entry_id: f for f in store.load_flows()}
    assert loaded[1].dpid == BIG_DPID and loaded[1].packets == 2**64 - 1
    assert loaded[1].bytes == 2**63 and loaded[2].dpid == 7
    assert store.load_hosts()[0].dpid == BIG_DPID


def test_a_row_the_database_refuses_costs_only_that_row(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 's.db'}")
    core = ControllerCore(store)
    core.table.upsert(1, {"eth_dst": "00:00:00:00:00:01"}, 1)
    core.table.upsert(2**64, {"eth_dst": "00:00:00:00:00:02"}, 1)  # not a uint64
    core.table.upsert(3, {"eth_dst": "00:00:00:00:00:03"}, 1)
    core.flush()
    assert sorted(f.dpid for f in store.load_flows()) == [1, 3]


def test_a_database_from_before_the_bypass_rename_keeps_its_sample_percent(tmp_path):
    """``shadow_percent`` became ``bypass_percent``: an old database's values come along."""
    from sqlalchemy import text

    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = StateStore(url)
    store.save(flows=[FlowSignature(1, 7, {"eth_dst": "00:00:00:00:00:01"}, 1,
                                    bypass_percent=2.5)])
    with store.engine.begin() as conn:  # what an older release wrote
        conn.execute(text("ALTER TABLE flow_signatures "
                          "RENAME COLUMN bypass_percent TO shadow_percent"))
    store.engine.dispose()
    assert StateStore(url).load_flows()[0].bypass_percent == 2.5


def test_a_database_out_of_reach_loses_nothing_it_catches_up_on_the_next_flush(tmp_path):
    from controller.state_store import StoreError

    store = StateStore(f"sqlite:///{tmp_path / 's.db'}")
    core = ControllerCore(store)
    real_save, calls = store.save, []

    def unreachable(**batch):
        calls.append(batch)
        raise StoreError("cannot reach database: connection refused")

    store.save = unreachable  # type: ignore[method-assign]
    core.table.upsert(1, {"eth_dst": "00:00:00:00:00:01"}, 1)
    assert core.flush() == 0 and len(calls) == 1
    core.table.upsert(2, {"eth_dst": "00:00:00:00:00:02"}, 1)
    assert core.flush() == 0 and len(calls[1]["flows"]) == 2  # the first batch came along
    store.save = real_save  # type: ignore[method-assign]
    assert core.flush() == 2
    assert sorted(f.dpid for f in store.load_flows()) == [1, 2]
    assert core.flush() == 0  # nothing left over


def test_the_engines_baselines_survive_a_restart(tmp_path):
    """What docs/predictive.md promises: a restarted controller keeps what it learned."""
    from controller.services.health import ProbeResult, probe_metrics

    url = f"sqlite:///{tmp_path / 's.db'}"
    service = {"name": "web", "vip": "10.0.0.100", "port": 80,
               "primary": {"name": "h2", "ip": "10.0.0.2", "mac": "00:00:00:00:00:02"}}
    core = ControllerCore(StateStore(url), services=[service])
    for t in range(30):
        core.observe_node("h2", float(t), probe_metrics([ProbeResult(True, 2.0 + t % 3)] * 3))
    learned = core.services.health.engine.state_dict()
    assert learned["entities"]  # it did learn something
    core.save_baselines()
    core.store.close()

    again = ControllerCore(StateStore(url), services=[service])
    assert again.services.health.engine.state_dict() == learned
    fresh = ControllerCore(StateStore(f"sqlite:///{tmp_path / 'other.db'}"), services=[service])
    assert not fresh.services.health.engine.state_dict()["entities"]


def test_stored_baselines_that_do_not_fit_are_dropped_not_fatal(tmp_path, caplog):
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = StateStore(url)
    store.save_engine_state("nodes", {"format": "something else"}, 0.0)
    core = ControllerCore(store)
    assert "stored nodes baselines ignored" in caplog.text
    assert not core.services.health.engine.state_dict()["entities"]
