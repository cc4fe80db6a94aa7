"""Elephant shunts against a fake pipeline: bulk segments skip the copy, control ones do not."""

from __future__ import annotations

import pytest

from controller.core import ControllerCore
from controller.mirroring import MirrorError
from controller.reconciler import ObservedFlow
from tests.unit.fakes import connect_ring
from tests.unit.packets import arp_request, mac, ping
from tests.unit.rest import client as rest_client
from tests.unit.test_mirroring import MIRROR_PORT, registration

CONN = {"local_ip": "10.0.0.1", "local_port": 40000, "remote_ip": "10.0.0.3",
        "remote_port": 5201}
SYN, FIN, RST, ACK, PSH = 0x02, 0x01, 0x04, 0x10, 0x08


@pytest.fixture()
def setup():
    core = ControllerCore(None)
    net = connect_ring(core, learn_hosts=False)
    net.send(core.add_mirror(registration())[1])
    for i in range(1, 5):
        net.send(core.packet_in(i, 1, arp_request(i, i % 4 + 1)))
    net.send(core.packet_in(1, 1, ping(1, 3)))
    return core, net


def segment(out: bool, flags: int, sport: int = 40000) -> dict:
    """A TCP segment of the connection, from (out) or to the container, entering switch 1."""
    if out:
        return {"in_port": 1, "eth_src": mac(1), "eth_dst": mac(3), "eth_type": 0x800,
                "ip_proto": 6, "ipv4_src": "10.0.0.1", "ipv4_dst": "10.0.0.3",
                "tcp_src": sport, "tcp_dst": 5201, "tcp_flags_nxm": flags}
    return {"in_port": 2, "eth_src": mac(3), "eth_dst": mac(1), "eth_type": 0x800,
            "ip_proto": 6, "ipv4_src": "10.0.0.3", "ipv4_dst": "10.0.0.1",
            "tcp_src": 5201, "tcp_dst": sport, "tcp_flags_nxm": flags}


def test_bulk_segments_skip_the_copy_control_segments_do_not(setup):
    core, net = setup
    view, created, msgs = core.add_shunt("h1", CONN)
    net.send(msgs)
    assert created and view["id"] == "10.0.0.1:40000-10.0.0.3:5201"
    sw = net.switch(1)
    for out, port in ((True, 2), (False, 1)):
        for flags in (ACK, ACK | PSH):
            ports, _ = sw.process(segment(out, flags))
            assert ports == [port], (out, flags)  # forwarded, not copied
        for flags in (SYN, SYN | ACK, FIN | ACK, RST, RST | ACK):
            ports, _ = sw.process(segment(out, flags))
            assert sorted(ports) == sorted([port, MIRROR_PORT]), (out, flags)
    # Another connection of the same container is still copied in full.
    ports, _ = sw.process(segment(True, ACK, sport=40001))
    assert sorted(ports) == [2, MIRROR_PORT]


def test_shunt_is_idempotent_and_removable(setup):
    core, net = setup
    net.send(core.add_shunt("h1", CONN)[2])
    _, created, msgs = core.add_shunt("h1", CONN)
    assert not created and msgs == []
    assert [v["id"] for v in core.shunts("h1")] == ["10.0.0.1:40000-10.0.0.3:5201"]
    msgs = core.remove_shunt("h1", "10.0.0.1:40000-10.0.0.3:5201")
    net.send(msgs)
    assert core.shunts("h1") == []
    ports, _ = net.switch(1).process(segment(True, ACK))
    assert sorted(ports) == [2, MIRROR_PORT]
    assert core.remove_shunt("h1", "10.0.0.1:40000-10.0.0.3:5201") is None


def test_counters_per_direction_from_the_fast_poll(setup):
    core, net = setup
    net.send(core.add_shunt("h1", CONN)[2])
    entries = {e.table_id: e for e in core.table.active() if e.kind == "mirror-shunt"}
    assert set(core.shunt_cookies()) == {1} and len(core.shunt_cookies()[1]) == 2
    core.shunt_counters(1, [ObservedFlow(entries[0].cookie, 0, 600, 1000, 1_514_000),
                            ObservedFlow(entries[1].cookie, 1, 600, 500, 33_000)])
    (view,) = core.shunts("h1")
    assert view["out"] == {"packets": 1000, "bytes": 1_514_000}
    assert view["in"] == {"packets": 500, "bytes": 33_000}
    assert view["counters_at"] is not None


def test_removing_the_mirror_removes_its_shunts(setup):
    core, net = setup
    net.send(core.add_shunt("h1", CONN)[2])
    msgs = core.remove_mirror("h1")
    assert len([m for _, m in msgs]) >= 2
    assert not [e for e in core.table.active() if e.kind == "mirror-shunt"]
    assert core.shunts("h1") is None


@pytest.mark.parametrize("body, field", [
    ({**CONN, "local_ip": "10.0.0"}, "local_ip"),
    ({**CONN, "remote_port": 0}, "remote_port"),
    ({**CONN, "local_port": True}, "local_port"),
    ({k: v for k, v in CONN.items() if k != "remote_ip"}, "remote_ip"),
    ({**CONN, "proto": "udp"}, "proto"),
])
def test_bad_shunt_names_the_field(setup, body, field):
    core, _ = setup
    with pytest.raises(MirrorError, match=field):
        core.add_shunt("h1", body)


def test_rest_shunts(setup):
    core, _ = setup
    client = rest_client(core)
    assert client.post("/api/mirrors/h1/shunts", json=CONN).status_code == 201
    assert client.post("/api/mirrors/h1/shunts", json=CONN).status_code == 200
    listed = client.get("/api/mirrors/h1/shunts").json
    assert [s["local_port"] for s in listed] == [40000]
    bad = client.post("/api/mirrors/h1/shunts", json={**CONN, "local_port": "x"})
    assert bad.status_code == 400 and "local_port" in bad.json["message"]
    assert client.post("/api/mirrors/nobody/shunts", json=CONN).status_code == 404
    assert client.get("/api/mirrors/nobody/shunts").status_code == 404
    assert client.delete(f"/api/mirrors/h1/shunts/{listed[0]['id']}").status_code == 204
    assert client.delete(f"/api/mirrors/h1/shunts/{listed[0]['id']}").status_code == 404


def test_flow_mod_puts_tcp_flags_after_its_prerequisites(setup):
    """OVS checks prerequisites in wire order and refuses tcp_flags before ip_proto."""
    from controller import ofmsgs

    core, _ = setup
    _, _, msgs = core.add_shunt("h1", CONN)
    for _, mod in msgs:
        keys = [k for k, _ in mod.match.items()]
        assert keys[-1] == "tcp_flags_nxm" and keys.index("ip_proto") < len(keys) - 1
    plain = ofmsgs.ordered_match({"eth_type": 0x800, "ipv4_src": "10.0.0.1"})
    assert dict(plain.items()) == {"eth_type": 0x800, "ipv4_src": "10.0.0.1"}


def test_fast_counter_polls_are_not_written_to_the_store_each_second(setup):
    core, net = setup
    net.send(core.add_shunt("h1", CONN)[2])
    core.table.take_dirty()
    entry = next(e for e in core.table.active() if e.kind == "mirror-shunt")
    core.shunt_counters(1, [ObservedFlow(entry.cookie, 0, 600, 10, 15_000)])
    assert entry.packets == 10 and core.table.take_dirty() == []


def test_agent_and_controller_agree_on_the_shunt_id():
    """The id is a wire contract between two packages that do not import each other."""
    from controller.shunt_flows import Shunt
    from mirror.shunt_policy import ShuntKey

    key = ShuntKey(CONN["local_ip"], CONN["local_port"], CONN["remote_ip"], CONN["remote_port"])
    assert Shunt.from_dict("h1", key.body()).id == key.id
