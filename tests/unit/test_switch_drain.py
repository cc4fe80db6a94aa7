"""Switch drain against the fake network: bypasses, sampling, drain without loss."""

from __future__ import annotations

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller import config
from controller.fast_failover import (
    BYPASS_GROUP_BASE,
    FF_GROUP_BASE,
    bypass_group_id,
    install_order,
    plan_path,
)
from controller.forwarding import Forwarder, ForwardingSettings
from controller.host_table import HostTable
from controller.mirroring import Mirror, MirrorPolicy
from controller.network_graph import Link, NetworkGraph
from controller.services.health import HealthMonitor, NodeHealth
from controller.signature_table import SignatureTable
from controller.switch_drain import (
    DrainSettings,
    SwitchDrain,
    SwitchFailover,
    switch_node,
)
from tests.unit.fakes import FakeNetwork, ring_graph
from tests.unit.packets import arp_request, mac

GRID = [(1, 2), (2, 3), (4, 5), (5, 6), (7, 8), (8, 9),
        (1, 4), (4, 7), (2, 5), (5, 8), (3, 6), (6, 9)]  # 3x3, 5 in the middle


def mesh(edges: list[tuple[int, int]]) -> tuple[NetworkGraph, list[Link]]:
    """Switches with a host on port 1 and links on ports 2, 3, ... in edge order."""
    graph, links, ports = NetworkGraph(), [], {}
    for node in sorted({n for e in edges for n in e}):
        graph.add_switch(node, [1])
        ports[node] = 1
    for a, b in edges:
        ports[a] += 1
        ports[b] += 1
        link = Link(a, ports[a], b, ports[b])
        graph.add_link(link)
        links.append(link)
    return graph, links


def make(graph_links=None, critical=(2,), sample=2.0, fast_failover=True, every=False):
    graph, links = graph_links or ring_graph(6)
    settings = ForwardingSettings(fast_failover=fast_failover,
                                  critical_switches=frozenset(critical),
                                  every_switch_critical=every,
                                  bypass_sample_percent=sample)
    fwd = Forwarder(graph, HostTable(), SignatureTable(), settings)
    net = FakeNetwork(links)
    switches = graph.switches()
    for i, dpid in enumerate(switches):
        net.send(fwd.packet_in(dpid, 1, arp_request(dpid, switches[(i + 1) % len(switches)])))
    return fwd, net


def install(fwd, net, pairs):
    for a, b in pairs:
        net.send(fwd.install_pair(fwd.hosts.get(mac(a)), fwd.hosts.get(mac(b))))


def tcp(a: int, b: int, sport: int) -> dict:
    return {"eth_src": mac(a), "eth_dst": mac(b), "eth_type": 0x800,
            "ipv4_src": f"10.0.0.{a}", "ipv4_dst": f"10.0.0.{b}", "ip_proto": 6,
            "tcp_src": sport, "tcp_dst": 80}


def forward_path(fwd, a: int, b: int) -> list[int]:
    return next(e.path for e in fwd.table.active_paths()[f"{mac(a)}>{mac(b)}"]
                if e.kind == "forward")


def visits(net, fields, a: int) -> list[int]:
    hops, out = net.trace(a, fields, in_port=1)
    assert out is not None, (fields, hops)
    return [d for d, _ in hops]


# --- planning -----------------------------------------------------------------
def test_bypass_avoids_the_critical_switch_not_just_the_link():
    # 1-2-3 is the path; around the link 1-2 the shortest way still crosses 2 (1-4-2-3),
    # around the *switch* 2 it is 1-4-5-6-3.
    graph, _ = mesh([(1, 2), (2, 3), (1, 4), (4, 2), (4, 5), (5, 6), (6, 3)])
    plain = plan_path(graph, [1, 2, 3], 1, 1)
    bypassed = plan_path(graph, [1, 2, 3], 1, 1, critical={2})
    assert {f.path for f in plain if f.in_port is not None} >= {(1, 4, 2, 3)}
    bypass = [f for f in bypassed if f.bypass and f.in_port is not None]
    assert bypass and {f.path for f in bypass} == {(1, 4, 5, 6, 3)}
    assert all(f.dpid != 2 for f in bypass)
    ingress = bypassed[0]
    assert ingress.dpid == 1 and ingress.bypass
    assert ingress.backup_port == graph.graph.edges[1, 4]["ports"][1]


def test_critical_switch_at_either_end_gets_no_bypass():
    graph, _ = ring_graph(6)
    for path in ([2, 3, 4], [6, 1, 2]):
        plan = plan_path(graph, path, 1, 1, critical={2})
        assert not any(f.bypass for f in plan), path


def test_bypass_planned_even_without_fast_failover():
    graph, _ = ring_graph(6)
    plan = plan_path(graph, [1, 2, 3], 1, 1, protect=False, critical={2})
    with_backup = [f for f in plan if f.backup_port is not None]
    assert [f.dpid for f in with_backup] == [1]  # only the divergence switch
    assert all(f.bypass for f in plan if f.in_port is not None)


def test_cut_vertex_has_no_bypass_and_falls_back_to_a_detour():
    graph, _ = mesh([(1, 2), (2, 3), (3, 4), (1, 5), (5, 2)])  # 2 separates 3 and 4
    plan = plan_path(graph, [1, 2, 3], 1, 1, critical={2})
    assert not any(f.bypass for f in plan)
    assert plan[0].backup_port is not None  # the ordinary detour 1-5-2-3


def test_install_order_puts_every_flow_after_the_flows_it_forwards_into():
    graph, _ = mesh(GRID)
    for path in ([4, 5, 6], [1, 2, 5, 8, 9], [7, 4, 5, 6, 3]):
        plan = plan_path(graph, path, 1, 1, critical={5})
        ordered = install_order(graph, plan)
        assert sorted(map(repr, ordered)) == sorted(map(repr, plan))
        assert ordered[-1] == plan[0]  # the ingress flips last
        position = {(f.dpid, f.in_port): i for i, f in enumerate(ordered)}
        peers = {}
        for link in graph.links():
            peers[(link.src_dpid, link.src_port)] = (link.dst_dpid, link.dst_port)
            peers[(link.dst_dpid, link.dst_port)] = (link.src_dpid, link.src_port)
        for i, flow in enumerate(ordered):
            for port in (flow.out_port, flow.backup_port):
                far = peers.get((flow.dpid, port))
                if far is None:
                    continue
                nxt = position.get(far, position.get((far[0], None)))
                assert nxt is not None and nxt < i, (flow, far)


# --- groups and sampling ------------------------------------------------------
def test_divergence_switch_gets_a_weighted_select_group_watching_both_ports():
    fwd, net = make(sample=2.0)
    msgs = fwd.install_path(fwd.hosts.get(mac(1)), fwd.hosts.get(mac(3)))
    key = f"{mac(1)}>{mac(3)}"
    ingress = next(e for e in fwd.table.active_paths()[key] if e.dpid == 1
                   and e.kind == "forward")
    assert ingress.group_id == bypass_group_id(key) and ingress.bypass_percent == 2.0
    groups = [m for d, m in msgs if d == 1 and isinstance(m, parser.OFPGroupMod)]
    assert groups and all(g.type == ofp.OFPGT_SELECT for g in groups)
    buckets = [(b.weight, b.watch_port, [a.port for a in b.actions]) for b in groups[-1].buckets]
    assert buckets == [(9800, 2, [2]), (200, 3, [3])]  # 98 % toward 2, 2 % around it
    # Its own id range: clear of fast-failover groups and mirror sample groups.
    mirror_group = Mirror("c", "t", 1, 1, 9, mac(1), policy=MirrorPolicy()).group_id
    assert ingress.group_id & 0xF0000000 == BYPASS_GROUP_BASE
    assert ingress.group_id & 0xF0000000 != FF_GROUP_BASE and mirror_group < FF_GROUP_BASE
    bypass = [e for e in fwd.table.active_paths()[key] if e.kind == "bypass"]
    assert bypass and all(2 not in e.path and e.idle_timeout == 0 and "in_port" in e.match
                          for e in bypass)


def test_bypass_that_turns_back_outputs_to_in_port():
    # In a 7-ring, 7->3 runs 7-1-2-3; the bypass around 2 leaves 1 the way packets came in.
    fwd, net = make(ring_graph(7), sample=5.0)
    install(fwd, net, [(7, 3)])
    assert forward_path(fwd, 7, 3) == [7, 1, 2, 3]
    at_1 = next(e for e in fwd.table.active(1) if e.kind == "forward"
                and e.match["eth_dst"] == mac(3))
    assert at_1.bypass_percent == 5.0 and at_1.arrival_port == 3
    group = net.switch(1).groups[at_1.group_id]
    assert [(b.watch_port, [a.port for a in b.actions]) for b in group] == [
        (2, [2]), (3, [ofp.OFPP_IN_PORT])]
    hops = [visits(net, tcp(7, 3, s), 7) for s in range(400)]
    assert [7, 1, 7, 6, 5, 4, 3] in hops and [7, 1, 2, 3] in hops


@pytest.mark.parametrize("percent", [2.0, 5.0])
def test_sampled_share_of_flows_rides_the_bypass_and_arrives(percent):
    fwd, net = make(sample=percent)
    install(fwd, net, [(1, 3)])
    on_bypass = 0
    for sport in range(1000):
        hops = visits(net, tcp(1, 3, 10000 + sport), 1)
        assert hops[-1] == 3
        if 2 not in hops:
            assert hops == [1, 6, 5, 4, 3]
            on_bypass += 1
    assert abs(on_bypass / 1000 - percent / 100) < 0.45 * percent / 100
    # Per flow, not per packet: one 5-tuple always takes the same way.
    assert {tuple(visits(net, tcp(1, 3, 10007), 1)) for _ in range(5)} == {
        tuple(visits(net, tcp(1, 3, 10007), 1))}


def test_fake_select_group_honours_weights_and_liveness():
    # The fake must be able to say no: with the bypass bucket's port down nothing uses it,
    # and with the primary's port down everything does (the data-plane failover).
    fwd, net = make(sample=5.0)
    install(fwd, net, [(1, 3)])
    flows = [tcp(1, 3, 20000 + i) for i in range(200)]
    net.switch(1).down.add(3)
    assert all(2 in visits(net, f, 1) for f in flows)
    net.switch(1).down.clear()
    net.cut(1, 2)
    assert all(visits(net, f, 1) == [1, 6, 5, 4, 3] for f in flows)


def test_critical_switch_dying_loses_nothing_with_no_controller():
    for sample in (2.0, 0.0):
        fwd, net = make(sample=sample)
        pairs = [(1, 3), (3, 1), (1, 4), (4, 1)]
        install(fwd, net, pairs)
        assert all(2 in forward_path(fwd, a, b)[1:-1] for a, b in pairs)
        net.fail_switch(2)
        for a, b in pairs:
            for sport in range(50):
                assert 2 not in visits(net, tcp(a, b, sport), a), (sample, a, b)


def test_sample_zero_keeps_fast_failover_and_all_traffic_on_the_primary():
    fwd, net = make(sample=0.0)
    install(fwd, net, [(1, 3)])
    ingress = next(e for e in fwd.table.active(1) if e.kind == "forward"
                   and e.match["eth_dst"] == mac(3))
    assert ingress.group_id & 0xF0000000 == FF_GROUP_BASE and ingress.bypass_percent is None
    assert net.switch(1).group_types[ingress.group_id] == ofp.OFPGT_FF
    assert all(2 in visits(net, tcp(1, 3, s), 1) for s in range(300))
    bypass = [e for e in fwd.table.active() if e.kind == "bypass"]
    assert bypass and all(2 not in e.path for e in bypass)


def test_group_msgs_rebuild_the_select_group_after_a_reconnect():
    fwd, net = make(sample=2.0)
    install(fwd, net, [(1, 3)])
    before = {gid: [(b.weight, b.watch_port, [a.port for a in b.actions]) for b in buckets]
              for gid, buckets in net.switch(1).groups.items()}
    types = dict(net.switch(1).group_types)
    net.switch(1).groups.clear()
    net.switch(1).group_types.clear()
    for entry in fwd.table.active(1):
        if entry.backup_port is not None and entry.group_id is not None:
            net.send(fwd.group_msgs(entry))
    after = {gid: [(b.weight, b.watch_port, [a.port for a in b.actions]) for b in buckets]
             for gid, buckets in net.switch(1).groups.items()}
    assert after == before and net.switch(1).group_types == types
    assert ofp.OFPGT_SELECT in types.values()


# --- drain and undrain --------------------------------------------------------
RING_PAIRS = [(1, 3), (3, 1), (6, 3), (3, 6), (1, 4), (4, 1), (5, 4)]  # 5>4 only detours via 2


def _is_delete(msg) -> bool:
    if isinstance(msg, parser.OFPFlowMod):
        return msg.command in (ofp.OFPFC_DELETE, ofp.OFPFC_DELETE_STRICT)
    return isinstance(msg, parser.OFPGroupMod) and msg.command == ofp.OFPGC_DELETE


def test_drain_moves_every_path_off_the_switch_adds_before_deletes():
    fwd, net = make()
    install(fwd, net, RING_PAIRS)
    crossing = {k for k, es in fwd.table.active_paths().items() if any(2 in e.path for e in es)}
    msgs = fwd.drain(2)
    assert fwd.drained == {2}
    deletes = [i for i, (_, m) in enumerate(msgs) if _is_delete(m)]
    adds = [i for i, (_, m) in enumerate(msgs) if not _is_delete(m)]
    assert adds and deletes and max(adds) < min(deletes)
    # Per path: its ingress flip comes after every other new flow of the path.
    flipped = 0
    for key in crossing:
        src, dst = key.split(">")
        mods = [(i, d, dict(m.match.items())) for i, (d, m) in enumerate(msgs)
                if isinstance(m, parser.OFPFlowMod) and not _is_delete(m)
                and m.match.get("eth_src") == src and m.match.get("eth_dst") == dst]
        ingress = fwd.hosts.get(src).dpid
        flips = [i for i, d, match in mods if d == ingress and "in_port" not in match]
        if flips:  # (a path that only had a detour across 2 may keep its ingress as is)
            flipped += 1
            assert flips == [max(i for i, _, _ in mods)], key
    assert flipped >= 4  # 1>3, 3>1, 1>4, 4>1 at least
    net.send(msgs)
    for key, entries in fwd.table.active_paths().items():
        for e in entries:
            assert 2 not in e.path or e.kind != "forward", (key, e.path)
    for a, b in RING_PAIRS:
        for sport in range(20):
            assert 2 not in visits(net, tcp(a, b, sport), a)
    assert fwd.drain(2) == []  # already drained


def _positions(net, flows):
    return {i: net.trace(a, f, in_port=1)[0] for i, (a, f, _) in enumerate(flows)}


def assert_lossless(net, msgs, flows):
    """Apply ``msgs`` one at a time. After each, a packet entering now arrives, and so
    does every packet that was in flight anywhere on its way in the state before."""
    for i, (a, fields, exit_) in enumerate(flows):
        assert net.walk(a, fields, in_port=1) == exit_, ("before", i)
    for step, (dpid, msg) in enumerate(msgs):
        in_flight = _positions(net, flows)
        net.switch(dpid).apply(msg)
        for i, (a, fields, exit_) in enumerate(flows):
            assert net.walk(a, fields, in_port=1) == exit_, (step, msg, fields)
            for at, in_port in in_flight[i]:
                assert net.walk(at, fields, in_port=in_port) == exit_, (step, msg, at, in_port)


def _sample_flows(net, pairs, ports=range(40000, 40400)):
    """Per pair: a few flows on the primary and, where there is one, one on the bypass."""
    flows = []
    for a, b in pairs:
        seen: dict[tuple, dict] = {}
        for sport in ports:
            f = tcp(a, b, sport)
            seen.setdefault(tuple(visits(net, f, a)), f)
        flows += [(a, f, (b, 1)) for f in seen.values()]
        flows += [(a, tcp(a, b, p), (b, 1)) for p in (1, 2)]
    return flows


@pytest.mark.parametrize("sample,topo,critical,pairs", [
    (2.0, "ring", 2, RING_PAIRS),
    (0.0, "ring", 2, RING_PAIRS),
    (5.0, "grid", 5, [(4, 6), (6, 4), (2, 8), (8, 2), (1, 9), (7, 3), (4, 5), (1, 8), (7, 2)]),
    # Found by search: here a plain downstream-first order of the path (the old
    # reroute order) hands packets to flows that are not there yet.
    (0.0, "grid", 4, [(3, 7), (9, 1)]),
    (5.0, "grid", 6, [(1, 9), (7, 3)]),
    # ... and here sending every group first: a group MODIFY is a flip too.
    (0.0, "grid", 1, [(3, 4), (4, 2)]),
])
def test_drain_and_undrain_lose_nothing_at_any_step(sample, topo, critical, pairs):
    graph_links = ring_graph(6) if topo == "ring" else mesh(GRID)
    fwd, net = make(graph_links, critical=(critical,), sample=sample)
    install(fwd, net, pairs)
    flows = _sample_flows(net, pairs)
    if sample and any(critical in forward_path(fwd, a, b)[1:-1] for a, b in pairs):
        assert any(critical not in visits(net, f, a) and critical in forward_path(
            fwd, a, int(f["eth_dst"][-2:], 16)) for a, f, _ in flows)  # a live bypass flow
    before = {(a, b): forward_path(fwd, a, b) for a, b in pairs}
    drain = fwd.drain(critical)
    assert_lossless(net, drain, flows)
    for a, b in pairs:
        if critical not in (a, b):
            assert critical not in forward_path(fwd, a, b)
    undrain = fwd.undrain(critical)
    assert undrain and fwd.drained == set()
    assert_lossless(net, undrain, flows)
    assert {(a, b): forward_path(fwd, a, b) for a, b in pairs} == before


def test_undrain_restores_shortest_paths_and_the_live_bypass():
    fwd, net = make(sample=2.0)
    install(fwd, net, [(1, 3)])
    groups_before = set(net.switch(1).groups)
    net.send(fwd.drain(2))
    assert forward_path(fwd, 1, 3) == [1, 6, 5, 4, 3]
    assert not [e for e in fwd.table.active() if e.kind == "bypass"]
    assert set(net.switch(1).groups).isdisjoint(
        {bypass_group_id(f"{mac(1)}>{mac(3)}")})  # the stale select group was deleted
    net.send(fwd.undrain(2))
    assert forward_path(fwd, 1, 3) == fwd.graph.switch_path(1, 3) == [1, 2, 3]
    assert bypass_group_id(f"{mac(1)}>{mac(3)}") in net.switch(1).groups
    assert groups_before <= set(net.switch(1).groups)
    hops = [visits(net, tcp(1, 3, s), 1) for s in range(500)]
    assert any(2 not in h for h in hops) and sum(2 in h for h in hops) > 450
    assert fwd.undrain(2) == []


def test_drain_never_disconnects_a_path_with_no_way_around():
    # 2 is an end of 2->4, and the only way between 3 and the rest of the line.
    fwd, net = make(mesh([(1, 2), (2, 3), (2, 4), (1, 4)]), critical=(2,))
    install(fwd, net, [(2, 4), (3, 1)])
    msgs = fwd.drain(2)
    net.send(msgs)
    assert forward_path(fwd, 2, 4)[0] == 2 and 2 in forward_path(fwd, 3, 1)
    assert net.walk(2, tcp(2, 4, 1), in_port=1) == (4, 1)
    assert net.walk(3, tcp(3, 1, 1), in_port=1) == (1, 1)


def test_unaffected_paths_send_nothing_on_drain():
    fwd, net = make()
    install(fwd, net, [(4, 5), (5, 4)])
    before = {e.entry_id for e in fwd.table.active()}
    assert fwd.drain(2) == []  # no path, detour or bypass of these crosses 2
    assert {e.entry_id for e in fwd.table.active()} == before


# --- the decision policy ------------------------------------------------------
def health(dpid: int, ts: float, score: float, prob: float = 0.0, ready: bool = True):
    return NodeHealth(node=switch_node(dpid), timestamp=ts, score=score, raw=score,
                      history=score, failure_probability=prob, alert=0.0, ready=ready,
                      observations=int(ts) + 1, factors={"loss": score},
                      top_metrics=(("loss", 1.0),))


def policy(**overrides) -> SwitchFailover:
    values = {"critical": frozenset({2}), "confirm": 2, "cooldown_seconds": 30.0} | overrides
    return SwitchFailover(DrainSettings(**values))


def run(failover: SwitchFailover, series, dpid: int = 2, start: float = 0.0, step: float = 1.0):
    """Feed (score, prob) per interval; returns the interval index of each drain/undrain."""
    out = []
    for i, (score, prob) in enumerate(series):
        t = start + i * step
        d = failover.step({dpid: health(dpid, t, score, prob)}, t)
        out += [("drain", i) for _ in d.drain] + [("undrain", i) for _ in d.undrain]
    return out


def test_drains_only_after_confirm_consecutive_bad_intervals():
    f = policy(confirm=3)
    assert run(f, [(0.3, 0), (0.3, 0), (0.9, 0), (0.3, 0), (0.3, 0)]) == []  # reset by a good one
    assert run(f, [(0.3, 0)], start=5) == [("drain", 0)]
    assert f.drained() == {2}


def test_probability_trips_only_once_the_engine_is_ready():
    f = policy()
    for t in range(4):
        d = f.step({2: health(2, t, 0.95, prob=0.97, ready=False)}, t)
        assert d.drain == []
    drains = [f.step({2: health(2, t, 0.95, prob=0.97)}, t).drain for t in range(4, 6)]
    assert drains == [[], [2]]
    event = f.events[-1]
    assert event.kind == "drained" and event.reason["trigger"] == "failure_probability"


def test_health_at_the_enter_level_trips():
    f = policy(enter_health=0.5)
    assert run(f, [(0.5, 0), (0.5, 0)]) == [("drain", 1)]
    assert policy(enter_health=0.5).step({2: health(2, 0, 0.51)}, 0).drain == []


def test_undrain_waits_for_cooldown_seconds_and_confirmed_recovery():
    f = policy(cooldown_seconds=10.0, confirm=2, exit_health=0.8)
    assert run(f, [(0.1, 0), (0.1, 0)]) == [("drain", 1)]  # drained at t=1
    # Healthy right away, but the cool-down holds it until t >= 11.
    assert run(f, [(0.95, 0)] * 9, start=2) == []
    assert run(f, [(0.95, 0)], start=11) == [("undrain", 0)]
    assert f.drained() == set()
    event = f.events[-1]
    assert event.kind == "undrained" and event.reason["drained_seconds"] == 10.0


def test_between_enter_and_exit_health_nothing_moves():
    f = policy(cooldown_seconds=0.0, exit_health=0.8, enter_health=0.5)
    run(f, [(0.2, 0), (0.2, 0)])
    assert run(f, [(0.7, 0)] * 20, start=2) == []  # better, not good enough: stays drained
    assert f.drained() == {2}
    assert run(f, [(0.85, 0), (0.6, 0), (0.85, 0), (0.85, 0)], start=30) == [("undrain", 3)]
    assert run(f, [(0.7, 0)] * 20, start=40) == []  # and not drained again either


def test_high_probability_blocks_undrain_even_with_good_health():
    f = policy(cooldown_seconds=0.0)
    run(f, [(0.1, 0), (0.1, 0)])
    assert run(f, [(0.9, 0.95)] * 5, start=2) == []


def test_prediction_off_drains_on_health_alone_at_the_same_levels():
    f = policy(predictive=False)  # the monitor has no engine: the probability stays 0
    assert run(f, [(0.9, 0.0)] * 5) == []
    assert run(f, [(0.4, 0.0), (0.4, 0.0)], start=5) == [("drain", 1)]
    assert f.drained() == {2} and f.events[-1].kind == "drained"


def test_switches_and_service_nodes_get_the_same_verdict_from_the_same_evidence():
    """One machine (controller.hysteresis) judges both: same levels, same verdicts."""
    from controller.services.redirection import RedirectionEngine
    from controller.services.service import Service, ServiceTable
    from controller.services.shadow_table import ShadowTable

    levels = {"enter_probability": 0.7, "exit_probability": 0.4, "enter_health": 0.35,
              "exit_health": 0.6, "confirm": 2}
    f = policy(cooldown_seconds=0.0, **levels)
    svc = Service.from_dict({
        "name": "web", "vip": "10.0.0.100", "port": 80,
        "primary": {"name": "p", "ip": "10.0.0.2", "mac": "00:00:00:00:00:02"},
        "standbys": [{"name": "s", "ip": "10.0.0.3", "mac": "00:00:00:00:00:03"}],
        "thresholds": {**levels, "min_observations": 1}}, "t")
    table = ServiceTable([svc])
    engine = RedirectionEngine(table, ShadowTable(table))
    series = [(0.9, 0.1), (0.3, 0.2), (0.2, 0.8), (0.5, 0.5), (0.65, 0.3), (0.5, 0.75),
              (0.34, 0.1), (0.62, 0.41), (0.62, 0.4), (0.7, 0.2), (0.9, 0.0)]
    for t, (score, prob) in enumerate(series):
        f.step({2: health(2, t, score, prob)}, t)
        engine.step({"p": health(2, t, score, prob)}, t)
        assert f.verdict(2).tripped == engine.verdict("web", "p").tripped, t
    assert [e.kind for e in f.events] == ["drained", "undrained"]


def test_only_critical_switches_are_judged_and_old_health_not_recounted():
    f = policy(confirm=2)
    assert f.step({3: health(3, 0, 0.0)}, 0).drain == []
    assert f.step({3: health(3, 1, 0.0)}, 1).drain == []
    stale = health(2, 5, 0.0)
    assert f.step({2: stale}, 5).drain == []
    assert f.step({2: stale}, 6).drain == []  # the same observation twice is one interval
    assert f.step({2: health(2, 7, 0.0)}, 7).drain == [2]


def test_drain_event_says_why():
    f = policy()
    run(f, [(0.2, 0), (0.2, 0)])
    [event] = list(f.events)
    assert (event.ts, event.switch, event.kind) == (1.0, 2, "drained")
    reason = event.reason
    assert reason["trigger"] == "health" and reason["health"] == 0.2
    assert reason["failure_probability"] == 0.0 and reason["node"] == "switch:2"
    assert reason["top_metrics"] == [["loss", 1.0]] and reason["weak_factors"]
    assert event.as_dict()["switch"] == 2


def test_settings_from_the_config_section():
    section = config.load(None)["switch_drain"] | {"critical": [3, 1]}
    settings = DrainSettings.from_config(section)
    assert settings.critical == frozenset({1, 3}) and settings.sample_percent == 2
    assert settings.confirm == 2 and settings.predictive is True


# --- all of it together, probes included -----------------------------------------
def deliver_probes(net, runtime, msgs, now, dead=frozenset()):
    """Packet-outs go out of their port to the neighbour, whose catch rule sends them up."""
    rest = []
    for dpid, msg in msgs:
        if not isinstance(msg, parser.OFPPacketOut):
            rest.append((dpid, msg))
            continue
        if dpid in dead:
            continue
        peer, peer_port = net.wiring[(dpid, msg.actions[0].port)]
        _, up = net.switch(peer).process({"in_port": peer_port, "eth_type": 0x88B5})
        assert up
        assert runtime.packet_in(peer, peer_port, msg.data, now + 0.002)
    return rest


def test_a_failing_critical_switch_is_drained_then_brought_back():
    fwd, net = make()
    shadowing = SwitchDrain(
        DrainSettings(critical=frozenset({2}), confirm=2, cooldown_seconds=5.0, probe_interval=1.0),
        fwd, monitor=HealthMonitor())
    for dpid in fwd.graph.switches():
        net.send(shadowing.switch_connected(dpid))
    install(fwd, net, [(1, 3), (3, 1)])
    connected = fwd.graph.switches()
    timeline = []
    for second in range(30):
        sick = 5 <= second < 9  # switch 2 stops answering for a while
        msgs, events = shadowing.tick(float(second), connected)
        timeline += [(second, e.kind) for e in events]
        net.send(deliver_probes(net, shadowing, msgs, float(second),
                                dead={2} if sick else set()))
        for a, b in [(1, 3), (3, 1)]:
            assert net.walk(a, tcp(a, b, second), in_port=1) == (b, 1), second
        if second == 10:
            assert 2 not in forward_path(fwd, 1, 3) and fwd.drained == {2}
    assert [k for _, k in timeline] == ["drained", "undrained"]
    (drained_at, _), (undrained_at, _) = timeline
    assert 6 <= drained_at <= 8 and undrained_at >= drained_at + 5
    assert forward_path(fwd, 1, 3) == [1, 2, 3] and fwd.drained == set()
    assert shadowing.health[2].score > 0.8
    # A probe is never mistaken for host traffic.
    assert not shadowing.packet_in(1, 1, arp_request(1, 2), 31.0)


def test_prediction_off_runtime_drains_a_switch_that_stops_answering():
    fwd, net = make()
    drain = SwitchDrain(DrainSettings(critical=frozenset({2}), predictive=False), fwd)
    assert drain.monitor.engine is None  # health from the probes alone
    for dpid in fwd.graph.switches():
        net.send(drain.switch_connected(dpid))
    install(fwd, net, [(1, 3)])
    kinds = _tick(drain, fwd, net, range(10), lambda second: {2} if second >= 3 else set())
    assert kinds == ["drained"] and fwd.drained == {2}
    assert 2 not in forward_path(fwd, 1, 3)
    assert SwitchDrain(DrainSettings(), fwd).monitor.engine is not None


def test_every_switch_silent_at_once_is_the_controllers_stall_not_their_death():
    fwd, net = make(critical=(2, 3, 4))
    drain = SwitchDrain(DrainSettings(critical=frozenset({2, 3, 4}), predictive=False), fwd)
    for dpid in fwd.graph.switches():
        net.send(drain.switch_connected(dpid))
    install(fwd, net, [(1, 5)])
    # From second 3 no probe comes back from any switch: the controller's own stall.
    kinds = _tick(drain, fwd, net, range(10), lambda s: {2, 3, 4} if s >= 3 else set())
    assert kinds == [] and fwd.drained == set()
    # One switch silent while the others answer is a dying switch.
    kinds = _tick(drain, fwd, net, range(10, 20), lambda s: {3})
    assert kinds == ["drained"] and fwd.drained == {3}


def _tick(drain, fwd, net, seconds, dead) -> list[str]:
    """Run the drain's intervals, delivering the probes of every switch not ``dead(second)``;
    the kinds of the events."""
    kinds = []
    for second in seconds:
        msgs, events = drain.tick(float(second), fwd.graph.switches())
        kinds += [e.kind for e in events]
        net.send(deliver_probes(net, drain, msgs, float(second), dead=dead(second)))
    return kinds


def test_critical_all_probes_and_judges_every_switch_without_naming_one(tmp_path):
    """No oracle: with ``critical: all`` the operator need not know which switch will fail."""
    from controller import config

    path = tmp_path / "c.yaml"
    path.write_text("switch_drain:\n  critical: all\n")
    section = config.load(path)["switch_drain"]
    settings = DrainSettings.from_config(section)
    assert settings.every_switch and settings.critical_of([1, 2, 3]) == {1, 2, 3}
    f = SwitchFailover(settings)
    for t, score in enumerate([0.2, 0.2]):
        f.step({3: health(3, float(t), score)}, float(t))
    assert f.drained() == {3}
    path.write_text("switch_drain:\n  critical: some\n")
    with pytest.raises(config.ConfigError, match="switch_drain.critical: must be one of all"):
        config.load(path)


def test_critical_all_plans_a_bypass_around_every_transit_switch():
    # 1 -> 4 on a 6-ring crosses 2 and 3 (or 6 and 5): each transit switch gets a bypass.
    fwd, net = make(critical=(), every=True)
    install(fwd, net, [(1, 4)])
    path = forward_path(fwd, 1, 4)
    bypasses = [e.path for e in fwd.table.active() if e.kind == "bypass"]
    transit = path[1:-1]
    assert len(transit) == 2
    for before, switch in zip(path, transit, strict=False):
        assert any(p[0] == before and switch not in p for p in bypasses), (before, switch)
    fwd_named, net_named = make(critical=())
    install(fwd_named, net_named, [(1, 4)])
    assert not [e for e in fwd_named.table.active() if e.kind == "bypass"]
