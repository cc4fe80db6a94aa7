"""The Shadow Table and each service's active node survive a controller restart."""

from __future__ import annotations

import sqlite3

from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller.core import ControllerCore
from controller.services.shadow_table import FlowKey
from controller.state_store import StateStore
from tests.unit.fakes import connect_ring
from tests.unit.packets import ip, mac
from tests.unit.test_services_steering import VIP, syn

SERVICE = {"name": "web", "vip": VIP, "port": 80, "mode": "stateless",
           "primary": {"name": "h2", "ip": ip(2), "mac": mac(2)},
           "standbys": [{"name": "h3", "ip": ip(3), "mac": mac(3)},
                        {"name": "h4", "ip": ip(4), "mac": mac(4)}]}
KEY = FlowKey("web", ip(1), 40000)


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _core(url: str, clock: Clock, services=(SERVICE,)) -> ControllerCore:
    return ControllerCore(StateStore(url), services=list(services), clock=clock)


def _place(core: ControllerCore, client: int = 1, port: int = 40000) -> None:
    vip_mac = core.services.services.get("web").vip_mac
    assert core.packet_in(client, 1, syn(client, port, vip_mac))


def test_active_node_and_shadow_entry_survive_a_restart(tmp_path):
    url, clock = f"sqlite:///{tmp_path / 'state.db'}", Clock()
    first = _core(url, clock)
    connect_ring(first)
    _place(first)
    assert first.services.shadow.get(KEY).primary == "h2"
    first.flush()  # the move below must be written as a change of its own
    clock.t += 5
    assert first.switch_service("web", "h3")["moves"] == 1
    first.flush()
    before = first.service_shadow("web")
    moved_to = before[0]["primary"]
    assert moved_to != "h2" and before[0]["shadow_node_list"] and before[0]["moves"]

    clock.t += 5
    second = _core(url, clock)
    assert second.services.redirection.active_node("web") == "h3"
    assert second.services.redirection.state("web").last_switch == 1005.0
    assert second.service_shadow("web") == before
    entry = second.services.shadow.get(KEY)
    assert entry.client_mac == mac(1)
    assert entry.primary == moved_to and moved_to not in {s.node for s in entry.shadows}
    # The steering knows the restored flow again: reconciliation rebuilds its
    # rewriting rules, and it is the node its request rule points at.
    assert second.services.steering.node_of(KEY) == moved_to
    msgs = second.flow_stats(1, [], requested_at=clock.t)
    rebuilt = {m.cookie for _, m in msgs if isinstance(m, parser.OFPFlowMod)}
    assert entry.cookies and entry.cookies <= rebuilt
    # New flows go to the restored active node, not back to the primary.
    connect_ring(second)
    _place(second, client=2, port=40001)
    assert second.services.shadow.get(FlowKey("web", ip(2), 40001)).primary == "h3"


def test_a_restored_flow_still_ends_and_its_rules_go(tmp_path):
    url, clock = f"sqlite:///{tmp_path / 'state.db'}", Clock()
    first = _core(url, clock)
    connect_ring(first)
    _place(first)
    first.flush()
    second = _core(url, clock)
    cookie = min(second.services.shadow.get(KEY).cookies)
    msgs = second.flow_removed(cookie, "idle_timeout", 3, 300)
    assert not second.services.shadow.get(KEY).active
    assert any(isinstance(m, parser.OFPFlowMod) for _, m in msgs)  # the other rule


def test_only_changed_service_state_is_written(tmp_path):
    url, clock = f"sqlite:///{tmp_path / 'state.db'}", Clock()
    core = _core(url, clock)
    core.switch_service("web", "h4")
    core.flush()
    saved = []
    core.store.save = lambda **kw: saved.append(kw)
    core.flush()
    assert saved == []
    core.switch_service("web", "h3")
    core.flush()
    assert saved[0]["service_state"] == {"web": {"active": "h3", "last_switch": clock.t}}


def test_expired_entries_are_deleted_from_the_store(tmp_path):
    url, clock = f"sqlite:///{tmp_path / 'state.db'}", Clock()
    core = _core(url, clock)
    connect_ring(core)
    _place(core)
    core.flush()
    assert len(core.store.load_shadow()) == 1
    cookie = min(core.services.shadow.get(KEY).cookies)
    core.flow_removed(cookie, "idle_timeout", 0, 0)
    core.flush()
    [row] = core.store.load_shadow()
    assert row["status"] == "ended"
    clock.t += core.services.shadow.keep_seconds + 1
    core.service_tick()
    core.flush()
    assert core.store.load_shadow() == []
    assert _core(url, clock).service_shadow("web") == []


def test_entries_that_expired_while_down_are_dropped_and_deleted(tmp_path):
    url, clock = f"sqlite:///{tmp_path / 'state.db'}", Clock()
    core = _core(url, clock)
    connect_ring(core)
    _place(core)
    core.flow_removed(min(core.services.shadow.get(KEY).cookies), "idle_timeout", 0, 0)
    core.flush()
    clock.t += core.services.shadow.keep_seconds + 1
    again = _core(url, clock)
    assert again.service_shadow("web") == []
    again.flush()
    assert again.store.load_shadow() == []


def test_stale_services_and_nodes_are_ignored(tmp_path):
    url, clock = f"sqlite:///{tmp_path / 'state.db'}", Clock()
    first = _core(url, clock)
    connect_ring(first)
    _place(first)
    first.switch_service("web", "h4")
    first.flush()
    # h4 is no longer declared, and the flow that moved to it has no node left.
    trimmed = SERVICE | {"standbys": SERVICE["standbys"][:1]}
    second = _core(url, clock, services=[trimmed])
    assert second.services.redirection.active_node("web") == "h2"
    assert second.service_shadow("web") == []
    second.flush()
    assert second.store.load_shadow() == []
    other = SERVICE | {"name": "api", "vip": "10.0.0.101"}
    third = _core(url, clock, services=[other])  # "web" is gone altogether
    assert third.services.redirection.export_state() == {}
    assert third.service_list()[0]["active_node"] == "h2"


def test_a_database_without_the_new_tables_loads(tmp_path):
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE hosts (mac VARCHAR(17) PRIMARY KEY, dpid BIGINT, port BIGINT, "
                 "ips VARCHAR(1024), first_seen FLOAT, last_seen FLOAT)")
    conn.execute(f"INSERT INTO hosts VALUES ('{mac(1)}', 1, 1, '[\"{ip(1)}\"]', 1.0, 2.0)")
    conn.execute("CREATE TABLE mirrors (container VARCHAR(128) PRIMARY KEY, data JSON)")
    conn.commit()
    conn.close()
    url, clock = f"sqlite:///{db}", Clock()
    core = _core(url, clock)
    assert core.hosts.get(mac(1)) is not None
    assert core.services.redirection.active_node("web") == "h2"
    core.switch_service("web", "h3")
    core.flush()
    assert _core(url, clock).services.redirection.active_node("web") == "h3"
    tables = {r[0] for r in sqlite3.connect(db).execute(
        "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"shadow_entries", "service_state", "flow_signatures"} <= tables
