"""Services wired into the controller core, its config and its REST API."""

from __future__ import annotations

import pytest
from os_ken.lib.packet import arp, packet
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller import config
from controller.core import ControllerCore
from tests.unit.fakes import connect_ring
from tests.unit.packets import ip, mac
from tests.unit.rest import client as rest_client
from tests.unit.test_services_steering import VIP, syn

SERVICE = {"name": "web", "vip": VIP, "port": 80, "mode": "stateful",
           "primary": {"name": "h2", "ip": ip(2), "mac": mac(2)},
           "standbys": [{"name": "h3", "ip": ip(3), "mac": mac(3)}]}


@pytest.fixture()
def core():
    core = ControllerCore(None, services=[SERVICE])
    connect_ring(core)
    return core


def test_vip_arp_is_answered_not_flooded(core):
    msgs = core.packet_in(1, 1, _arp_for_vip())
    assert len(msgs) == 1 and isinstance(msgs[0][1], parser.OFPPacketOut)
    reply = packet.Packet(msgs[0][1].data).get_protocol(arp.arp)
    assert reply.opcode == arp.ARP_REPLY and reply.src_ip == VIP


def _arp_for_vip() -> bytes:
    from os_ken.lib.packet import ethernet
    from os_ken.ofproto import ether

    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet("ff:ff:ff:ff:ff:ff", mac(1), ether.ETH_TYPE_ARP))
    pkt.add_protocol(arp.arp(opcode=arp.ARP_REQUEST, src_mac=mac(1), src_ip=ip(1),
                             dst_mac="00:00:00:00:00:00", dst_ip=VIP))
    pkt.serialize()
    return bytes(pkt.data)


def test_new_flow_to_the_vip_is_pinned_to_the_primary(core):
    vip_mac = core.services.services.get("web").vip_mac
    msgs = core.packet_in(1, 1, syn(1, 40000, vip_mac))
    mods = [m for _, m in msgs if isinstance(m, parser.OFPFlowMod)]
    assert any("set_field" in str(m.instructions) or "SetField" in str(m.instructions)
               for m in mods)
    shadow = core.service_shadow("web")
    assert shadow and shadow[0]["primary"] == "h2"


def test_rest_services(core):
    client = rest_client(core)
    listed = client.get("/api/services").json
    assert listed[0]["name"] == "web" and listed[0]["active_node"] == "h2"
    resp = client.post("/api/services/web/switch", json={"node": "h3"})
    assert resp.status_code == 200 and resp.json["active_node"] == "h3"
    assert client.get("/api/services/events").json
    assert client.post("/api/services/web/switch", json={"node": "h9"}).status_code == 400
    assert client.post("/api/services/nope/switch", json={"node": "h3"}).status_code == 404
    assert client.get("/api/services/nope/shadow").status_code == 404
    bad = client.post("/api/services", json={"name": "x"})
    assert bad.status_code == 400 and bad.is_json
    ok = client.post("/api/services", json=SERVICE | {"name": "web2", "vip": "10.0.0.101"})
    assert ok.status_code == 201


def test_config_services_section(tmp_path):
    good = tmp_path / "ok.yaml"
    good.write_text("services:\n  - name: web\n    vip: 10.0.0.100\n    port: 80\n"
                    "    primary: {name: h2, ip: 10.0.0.2, mac: '00:00:00:00:00:02'}\n")
    assert config.load(good)["services"][0]["name"] == "web"
    bad = tmp_path / "bad.yaml"
    bad.write_text("services:\n  - name: web\n    vip: nope\n    port: 80\n")
    with pytest.raises(config.ConfigError, match="vip"):
        config.load(bad)


def _arp_from(n: int) -> bytes:
    from os_ken.lib.packet import ethernet
    from os_ken.ofproto import ether

    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet("ff:ff:ff:ff:ff:ff", mac(n), ether.ETH_TYPE_ARP))
    pkt.add_protocol(arp.arp(opcode=arp.ARP_REQUEST, src_mac=mac(n), src_ip=ip(n),
                             dst_mac="00:00:00:00:00:00", dst_ip=ip(1)))
    pkt.serialize()
    return bytes(pkt.data)


def test_the_port_of_the_active_node_going_down_moves_the_service_at_once(core):
    """Data-plane evidence: a node's edge port down is a death, not a health reading."""
    for n, dpid in ((2, 2), (3, 3)):
        core.packet_in(dpid, 1, _arp_from(n))
    assert core.hosts.get(mac(2)) is not None
    assert core.liveness_targets() == {"h2": (ip(2), 80), "h3": (ip(3), 80)}
    core.port_changed(2, 1, up=False)
    assert core.services.redirection.active_node("web") == "h3"
    events = [e.kind for e in core.services.redirection.events]
    assert "node_tripped" in events and "switchover" in events


def test_liveness_misses_move_the_service(core):
    core.node_unreachable("h2", 5)
    assert core.services.redirection.active_node("web") == "h3"
    tripped = [e for e in core.services.redirection.events if e.kind == "node_tripped"]
    assert tripped[0].reason["evidence"] == "liveness" and tripped[0].reason["misses"] == 5
