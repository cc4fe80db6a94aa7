"""Mirror rules against a fake pipeline: copies, read-only guard, policy, sampling."""

from __future__ import annotations

import pytest

from controller.core import ControllerCore
from controller.mirroring import Mirror, MirrorError, MirrorPolicy, frame_selected
from tests.unit.fakes import connect_ring
from tests.unit.packets import arp_request, mac, ping

MIRROR_PORT = 9


def registration(**policy):
    body = {"container": "h1", "tenant": "blue", "dpid": 1, "container_port": 1,
            "mirror_port": MIRROR_PORT, "mac": mac(1), "ips": ["10.0.0.1"]}
    if policy:
        body["policy"] = policy
    return body


@pytest.fixture()
def setup():
    core = ControllerCore(None)
    return core, connect_ring(core, learn_hosts=False)


def test_both_directions_copied_forwarding_untouched(setup):
    core, net = setup
    _, msgs = core.add_mirror(registration())
    net.send(msgs)
    for i in range(1, 5):
        net.send(core.packet_in(i, 1, arp_request(i, i % 4 + 1)))
    net.send(core.packet_in(1, 1, ping(1, 3)))
    out, _ = net.switch(1).process({"in_port": 1, "eth_src": mac(1), "eth_dst": mac(3),
                                    "eth_type": 0x800})
    assert sorted(out) == [2, MIRROR_PORT]  # forwarded on, and copied
    back, _ = net.switch(1).process({"in_port": 2, "eth_src": mac(3), "eth_dst": mac(1),
                                     "eth_type": 0x800})
    assert sorted(back) == [1, MIRROR_PORT]
    # Other containers' traffic on the same switch is not copied.
    other, _ = net.switch(2).process({"in_port": 1, "eth_src": mac(2), "eth_dst": mac(3)})
    assert MIRROR_PORT not in other


def test_mirror_port_is_read_only(setup):
    core, net = setup
    net.send(core.add_mirror(registration())[1])
    out, to_controller = net.switch(1).process({"in_port": MIRROR_PORT, "eth_dst": mac(3)})
    assert out == [] and not to_controller
    # Never learned from, never flooded to.
    assert core.packet_in(1, MIRROR_PORT, arp_request(7, 1)) == []
    assert core.hosts.get(mac(7)) is None
    flood = core.packet_in(2, 1, arp_request(2, 99))
    # The mirror port only ever gets the copy of what reaches its container.
    to_s1 = [sorted(a.port for a in m.actions) for d, m in flood if d == 1]
    assert to_s1 == [[1, MIRROR_PORT]]


def test_controller_packet_outs_to_container_are_copied(setup):
    core, net = setup
    net.send(core.add_mirror(registration())[1])
    # ARP flood reaching h1 through a packet-out also reaches the mirror.
    msgs = core.packet_in(3, 1, arp_request(3, 1))
    to_h1 = [m for d, m in msgs if d == 1]
    assert to_h1 and sorted(a.port for a in to_h1[0].actions) == [1, MIRROR_PORT]


def test_protocol_and_port_policy(setup):
    core, net = setup
    net.send(core.add_mirror(registration(protocols=["dns"]))[1])
    dns, _ = net.switch(1).process({"in_port": 1, "eth_type": 0x800, "ip_proto": 17,
                                    "udp_dst": 53, "eth_dst": mac(3)})
    web, _ = net.switch(1).process({"in_port": 1, "eth_type": 0x800, "ip_proto": 6,
                                    "tcp_dst": 80, "eth_dst": mac(3)})
    assert MIRROR_PORT in dns and MIRROR_PORT not in web


def test_cidr_policy(setup):
    core, net = setup
    net.send(core.add_mirror(registration(cidrs=["10.0.0.0/30"]))[1])
    near, _ = net.switch(1).process({"in_port": 1, "eth_type": 0x800, "ipv4_dst": "10.0.0.2"})
    far, _ = net.switch(1).process({"in_port": 1, "eth_type": 0x800, "ipv4_dst": "10.0.0.9"})
    assert MIRROR_PORT in near and MIRROR_PORT not in far


def test_sampling_uses_a_select_group(setup):
    core, net = setup
    msgs = core.add_mirror(registration(sample=0.25))[1]
    net.send(msgs)
    mirror = core.forwarder.mirrors.get("h1")
    buckets = net.switch(1).groups[mirror.group_id]
    assert [b.weight for b in buckets] == [250, 750]
    assert [[a.port for a in b.actions] for b in buckets] == [[MIRROR_PORT], []]
    copies = [f for f in net.switch(1).flows if f.group_id == mirror.group_id]
    assert len(copies) == 2


def test_sample_selection_is_per_flow_and_representative():
    policy = MirrorPolicy(sample=0.2)
    flows = [{"src_ip": "10.0.0.1", "dst_ip": f"10.0.{i // 250}.{i % 250}", "ip_proto": 6,
              "sport": 40000 + i, "dport": 80, "eth_type": 0x800} for i in range(5000)]
    picked = [frame_selected(policy, f) for f in flows]
    assert 0.17 < sum(picked) / len(picked) < 0.23
    assert picked == [frame_selected(policy, f) for f in flows]  # stable per flow


def test_removing_a_mirror_removes_its_flows(setup):
    core, net = setup
    net.send(core.add_mirror(registration())[1])
    net.send(core.remove_mirror("h1"))
    out, _ = net.switch(1).process({"in_port": 1, "eth_dst": mac(3)})
    assert MIRROR_PORT not in out
    assert core.remove_mirror("h1") is None


def test_mirror_flows_are_signature_entries(setup):
    core, net = setup
    net.send(core.add_mirror(registration())[1])
    kinds = {e.kind for e in core.table.active(1)}
    assert kinds == {"mirror"}
    assert {e.table_id for e in core.table.active(1)} == {0, 1}


@pytest.mark.parametrize("body,needle", [
    ({"container": "h1"}, "mirror.tenant: is required"),
    (registration() | {"dpid": "one"}, "mirror.dpid: must be an integer, got str 'one'"),
    (registration() | {"colour": 1}, "mirror: unknown key 'colour'"),
    (registration(sample=2), "mirror.policy.sample: must be between 0.001 and 1.0, got 2"),
    (registration(protocols=["smtp"]), "mirror.policy.protocols[0]: must be one of arp"),
    (registration(cidrs=["10.0.0.0/99"]), "mirror.policy.cidrs[0]: must be a CIDR prefix"),
    (registration(ports=[70000]), "mirror.policy.ports[0]: must be between 1 and 65535, got 70000"),
    ([1, 2], "mirror: must be a mapping, got list"),
])
def test_bad_registrations_name_the_field(body, needle):
    with pytest.raises(MirrorError) as exc:
        Mirror.from_dict(body, MirrorPolicy())
    assert needle in str(exc.value)


def test_port_conflict_refused(setup):
    core, _ = setup
    core.add_mirror(registration())
    with pytest.raises(MirrorError, match="already belongs"):
        core.add_mirror(registration() | {"container": "h2", "mac": mac(2)})


@pytest.mark.parametrize("change,needle", [
    ({"dpid": 99}, "switch 99 is not connected"),
    ({"dpid": 2**64}, "mirror.dpid: must be between 0 and 18446744073709551615"),
    ({"container_port": 7}, "has no port 7"),
    # 2**32 + 1 wrapped to port 1 on the wire
    ({"mirror_port": 2**32 + 1}, "mirror.mirror_port: must be between 1 and 4294967040"),
    ({"container_port": 0}, "mirror.container_port: must be between 1"),
    ({"mirror_port": 2}, "links to another switch"),  # the ring's inter-switch port
    ({"mirror_port": 1}, "must differ"),
    ({"policy": ["arp"]}, "mirror.policy: must be a mapping"),
    ({"container": "x" * 200}, "mirror.container: must be at most 128 characters"),
])
def test_registration_must_name_the_live_network(setup, change, needle):
    core, _ = setup
    with pytest.raises(MirrorError, match=needle):
        core.add_mirror({**registration(), **change})
    assert core.forwarder.mirrors.get("h1") is None


def test_a_mirror_port_may_not_be_a_hosts_port_or_another_containers(setup):
    """Naming another host's port would copy traffic to it, and black-hole that host."""
    core, net = setup
    net.send(core.port_changed(1, 4, True))
    core.packet_in(1, 4, arp_request(5, 1))  # host 10.0.0.5 sits on switch 1, port 4
    with pytest.raises(MirrorError, match="faces host"):
        core.add_mirror({**registration(), "mirror_port": 4})
    net.send(core.add_mirror(registration())[1])
    with pytest.raises(MirrorError, match="is container 'h1'"):
        core.add_mirror({**registration(), "container": "h9", "container_port": 4,
                         "mirror_port": 1})


GUARDED = "sm0badcafe"  # named as mirror.lifecycle names a mirror's bridge port


def test_a_mirror_port_is_guarded_from_its_first_appearance_to_its_deletion(setup):
    core, net = setup
    net.send(core.port_changed(1, MIRROR_PORT, True, GUARDED))  # on the bridge, unregistered
    sent = {"in_port": MIRROR_PORT, "eth_src": "02:00:00:00:00:09", "eth_dst": mac(3)}
    assert net.switch(1).process(sent) == ([], False)  # dropped, not even punted
    assert core.packet_in(1, MIRROR_PORT, arp_request(9, 3)) == []  # and never learned from
    assert core.forwarder.hosts.get(mac(9)) is None
    net.send(core.add_mirror(registration())[1])  # registration takes the guard over
    net.send(core.remove_mirror("h1"))  # removed while its port is still on the bridge
    assert net.switch(1).process(sent) == ([], False)
    net.send(core.port_changed(1, MIRROR_PORT, False, GUARDED, deleted=True))
    assert net.switch(1).process(sent)[1] is True  # gone: an ordinary port again


def test_lldp_links_on_mirror_or_container_ports_are_refused(setup):
    from controller.network_graph import Link

    core, net = setup
    net.send(core.port_changed(3, MIRROR_PORT, True, GUARDED))
    net.send(core.add_mirror(registration())[1])
    before = len(core.graph.links())
    assert core.link_added(Link(3, MIRROR_PORT, 4, 2)) == []  # forged from a mirror namespace
    assert core.link_added(Link(2, 9, 1, 1)) == []  # arriving on h1's container port
    assert len(core.graph.links()) == before
    assert core.forwarder.stats.links_refused == 2
