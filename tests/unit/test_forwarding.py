"""Forwarding decisions against a fake flow table (no OVS)."""

from __future__ import annotations

from os_ken.lib.packet import arp, packet
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller.forwarding import Forwarder, ForwardingSettings
from controller.host_table import HostTable
from controller.network_graph import Link
from controller.signature_table import REMOVED, SignatureTable, is_our_cookie
from tests.unit.fakes import FakeNetwork, ring_graph
from tests.unit.packets import arp_reply, arp_request, ip, mac, ping


def make(n: int = 4, fast_failover: bool = False):
    graph, links = ring_graph(n)
    settings = ForwardingSettings(idle_timeout=30, fast_failover=fast_failover)
    fwd = Forwarder(graph, HostTable(), SignatureTable(), settings)
    return fwd, FakeNetwork(links), links


def learn_all(fwd, net, n):
    for i in range(1, n + 1):
        net.send(fwd.packet_in(i, 1, arp_request(i, (i % n) + 1)))


def test_switch_connect_installs_table_miss():
    fwd, net, _ = make()
    net.send(fwd.switch_connected(1, [1, 2, 3]))
    # Unknown traffic falls through the mirror tables to the controller.
    assert net.switch(1).process({"in_port": 1, "eth_dst": mac(2)}) == ([], True)


def test_unknown_arp_is_copied_to_edge_ports_only():
    fwd, net, _ = make()
    msgs = fwd.packet_in(1, 1, arp_request(1, 3))
    net.send(msgs)
    outs = {dpid: net.switch(dpid).packet_outs for dpid in range(1, 5)}
    # Never out of an inter-switch port (2 or 3), never back to the sender.
    assert outs[1] == []
    for dpid in (2, 3, 4):
        assert [ports for ports, _ in outs[dpid]] == [[1]]
    assert fwd.hosts.get(mac(1)).dpid == 1


def test_repeated_flood_is_suppressed_but_a_retry_is_not():
    now = [100.0]
    graph, _ = ring_graph(4)
    fwd = Forwarder(graph, HostTable(), SignatureTable(), clock=lambda: now[0])
    assert fwd.packet_in(1, 1, arp_request(1, 3))
    now[0] += 0.01  # the same frame back through a link discovery has not found
    assert fwd.packet_in(1, 1, arp_request(1, 3)) == []
    # The kernel's ARP retry, a second later; a busy controller may read the two
    # packet-ins closer together than that.
    now[0] += 0.6
    assert fwd.packet_in(1, 1, arp_request(1, 3))


def test_proxy_arp_answers_from_host_table():
    fwd, net, _ = make()
    learn_all(fwd, net, 4)
    msgs = fwd.packet_in(1, 1, arp_request(1, 3))
    assert len(msgs) == 1
    dpid, msg = msgs[0]
    assert dpid == 1 and isinstance(msg, parser.OFPPacketOut)
    assert [a.port for a in msg.actions] == [1]
    reply = packet.Packet(msg.data).get_protocol(arp.arp)
    assert reply.opcode == arp.ARP_REPLY
    assert (reply.src_mac, reply.src_ip, reply.dst_ip) == (mac(3), ip(3), ip(1))


def test_first_packet_installs_whole_path_both_ways():
    fwd, net, _ = make(6)
    learn_all(fwd, net, 6)
    msgs = fwd.packet_in(1, 1, ping(1, 4))
    net.send(msgs)
    # The triggering packet goes straight out of the destination's edge port.
    assert net.switch(4).packet_outs[-1][0] == [1]
    assert net.walk(1, {"eth_src": mac(1), "eth_dst": mac(4)}) == (4, 1)
    assert net.walk(4, {"eth_src": mac(4), "eth_dst": mac(1)}) == (1, 1)
    flows = fwd.table.active()
    assert len(flows) == 2 * 4  # 4 switches on a shortest path in a 6-ring, both ways
    assert all(is_our_cookie(f.cookie) and f.idle_timeout == 30 for f in flows)
    # A second packet on the same pair needs no new flow-mods.
    again = fwd.packet_in(1, 1, ping(1, 4))
    assert all(isinstance(m, parser.OFPPacketOut) for _, m in again)


def test_downstream_flows_are_sent_before_ingress():
    fwd, net, _ = make(6)
    learn_all(fwd, net, 6)
    mods = [d for d, m in fwd.packet_in(1, 1, ping(1, 3)) if isinstance(m, parser.OFPFlowMod)]
    forward = mods[:3]
    assert forward[-1] == 1 and forward[0] == 3


def test_link_down_reroutes_affected_paths_make_before_break():
    fwd, net, links = make(6)
    learn_all(fwd, net, 6)
    net.send(fwd.packet_in(1, 1, ping(1, 3)))
    old = fwd.table.active_paths()[f"{mac(1)}>{mac(3)}"][0].path
    assert old == [1, 2, 3]
    msgs = fwd.port_down(2, 2)  # link 2-3 goes
    kinds = [type(m).__name__ for _, m in msgs]
    deletes = [i for i, m in enumerate(msgs) if m[1].command == 3]
    adds = [i for i, m in enumerate(msgs) if m[1].command == 0]
    assert max(adds) < min(deletes), kinds
    net.send(msgs)
    assert net.walk(1, {"eth_src": mac(1), "eth_dst": mac(3)}) == (3, 1)
    assert net.walk(3, {"eth_src": mac(3), "eth_dst": mac(1)}) == (1, 1)
    new = fwd.table.active_paths()[f"{mac(1)}>{mac(3)}"][0].path
    assert new == [1, 6, 5, 4, 3]
    gone = [e for e in fwd.table.query(status=REMOVED)]
    assert gone and all(e.removed_reason == "rerouted" for e in gone)


def test_unaffected_paths_are_left_alone_on_link_down():
    fwd, net, _ = make(6)
    learn_all(fwd, net, 6)
    net.send(fwd.packet_in(4, 1, ping(4, 5)))
    assert fwd.port_down(1, 2) == []


def test_no_path_removes_flows():
    fwd, net, _ = make(4)
    learn_all(fwd, net, 4)
    net.send(fwd.packet_in(1, 1, ping(1, 3)))
    net.send(fwd.port_down(1, 2))
    net.send(fwd.port_down(1, 3))  # switch 1 is cut off
    assert fwd.table.active_paths().get(f"{mac(1)}>{mac(3)}") is None
    assert net.walk(3, {"eth_src": mac(3), "eth_dst": mac(1)}) is None


def test_no_learning_on_link_ports():
    fwd, _, _ = make()
    fwd.packet_in(2, 3, ping(1, 3))  # arrives over link 1->2
    assert fwd.hosts.get(mac(1)) is None


def test_host_learned_on_port_later_found_to_be_link_is_forgotten():
    fwd, _, _ = make()
    fwd.graph.add_switch(9, [1, 5])
    fwd.packet_in(9, 5, arp_request(7, 1))
    assert fwd.hosts.get(mac(7)) is not None
    fwd.link_added(Link(9, 5, 1, 4))
    assert fwd.hosts.get(mac(7)) is None


def test_malformed_packets_are_counted_not_raised():
    fwd, _, _ = make()
    assert fwd.packet_in(1, 1, b"\x00\x01") == []
    assert fwd.packet_in(1, 1, b"") == []
    assert fwd.stats.malformed == 2


def test_truncated_arp_does_not_crash():
    fwd, _, _ = make()
    frame = arp_request(1, 2)[:20]
    fwd.packet_in(1, 1, frame)  # must not raise
    assert fwd.stats.packet_in == 1


def test_arp_reply_is_delivered_and_installs_path():
    fwd, net, _ = make(4)
    net.send(fwd.packet_in(1, 1, arp_request(1, 3)))
    msgs = fwd.packet_in(3, 1, arp_reply(3, 1))
    net.send(msgs)
    assert net.switch(1).packet_outs[-1][0] == [1]
    assert net.walk(3, {"eth_src": mac(3), "eth_dst": mac(1)}) == (1, 1)


def test_flow_removed_updates_entry():
    fwd, net, _ = make(4)
    learn_all(fwd, net, 4)
    net.send(fwd.packet_in(1, 1, ping(1, 2)))
    entry = fwd.table.active()[0]
    fwd.flow_removed(entry.cookie, "idle_timeout", 5, 500)
    assert entry.status == REMOVED and entry.removed_reason == "idle_timeout"
    assert (entry.packets, entry.bytes) == (5, 500)
    # The next packet reinstalls what expired, as a new entry.
    msgs = fwd.packet_in(1, 1, ping(1, 2))
    assert any(isinstance(m, parser.OFPFlowMod) for _, m in msgs)


def test_fast_failover_recovers_every_hop_in_the_data_plane():
    """Cut each link of the path in turn: the frame still arrives, with no controller."""
    for hop in range(3):
        fwd, net, _ = make(6, fast_failover=True)
        learn_all(fwd, net, 6)
        net.send(fwd.packet_in(1, 1, ping(1, 4)))
        fields = {"eth_src": mac(1), "eth_dst": mac(4)}
        path = next(e.path for e in fwd.table.active_paths()[f"{mac(1)}>{mac(4)}"]
                    if e.kind == "forward")
        assert len(path) == 4 and net.walk(1, fields, in_port=1) == (4, 1)
        a, b = path[hop], path[hop + 1]
        net.cut(a, fwd.graph.graph.edges[a, b]["ports"][a])
        assert net.walk(1, fields, in_port=1) == (4, 1), f"cut {a}-{b} of {path}"


def test_fast_failover_groups_watch_primary_then_detour():
    fwd, net, _ = make(6, fast_failover=True)
    learn_all(fwd, net, 6)
    msgs = fwd.packet_in(1, 1, ping(1, 3))
    groups = [m for _, m in msgs if isinstance(m, parser.OFPGroupMod)]
    assert groups and all(g.type == 3 for g in groups)  # OFPGT_FF
    for group in groups:
        for bucket in group.buckets:
            # Output where it watches; IN_PORT when the detour turns back (crankback).
            assert bucket.actions[0].port in (bucket.watch_port, 0xFFFFFFF8)
    # Every group is sent before the flow that points at it (on that switch).
    sent_groups: set[tuple[int, int]] = set()
    pointing = 0
    for dpid, m in msgs:
        if isinstance(m, parser.OFPGroupMod):
            sent_groups.add((dpid, m.group_id))
        elif isinstance(m, parser.OFPFlowMod):
            for inst in m.instructions:
                for action in getattr(inst, "actions", []):
                    if isinstance(action, parser.OFPActionGroup):
                        pointing += 1
                        assert (dpid, action.group_id) in sent_groups
    assert pointing > 0
    detours = [e for e in fwd.table.active() if e.kind == "detour"]
    assert detours and all("in_port" in e.match for e in detours)


def test_no_detour_without_a_disjoint_way():
    graph_fwd, net, _ = make(4, fast_failover=True)
    # A line, not a ring: cut the 4-1 link so there is no second way anywhere.
    net.send(graph_fwd.port_down(4, 2))
    learn_all(graph_fwd, net, 4)
    msgs = graph_fwd.packet_in(1, 1, ping(1, 3))
    assert not [m for _, m in msgs if isinstance(m, parser.OFPGroupMod)]


def test_detours_never_idle_out_and_go_with_their_path():
    fwd, net, _ = make(6, fast_failover=True)
    learn_all(fwd, net, 6)
    net.send(fwd.packet_in(1, 1, ping(1, 3)))
    key = f"{mac(1)}>{mac(3)}"
    entries = fwd.table.active_paths()[key]
    detours = [e for e in entries if e.kind == "detour"]
    assert detours and all(e.idle_timeout == 0 for e in detours)
    hop = next(e for e in entries if e.kind == "forward")
    _, msgs = fwd.flow_removed(hop.cookie, "idle_timeout", 1, 100)
    assert fwd.table.active_paths().get(key) is not None  # other hops still report
    assert all(e.kind == "forward" for e in fwd.table.active_paths()[key])
    assert len([m for _, m in msgs if isinstance(m, parser.OFPFlowMod)]) == len(detours)
