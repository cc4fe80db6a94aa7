"""Detour planning on a real operator graph: invariants that keep packets out of loops."""

from __future__ import annotations

from controller.fast_failover import plan_path
from controller.network_graph import Link, NetworkGraph
from topologies.zoo import load_zoo_graph


def zoo_network(name: str) -> NetworkGraph:
    zoo = load_zoo_graph(name).graph
    graph, next_port = NetworkGraph(), {}
    for node in zoo.nodes:
        graph.add_switch(node, [1])
    for a, b in zoo.edges:
        next_port[a] = next_port.get(a, 1) + 1
        next_port[b] = next_port.get(b, 1) + 1
        graph.add_link(Link(a, next_port[a], b, next_port[b]))
    return graph


def test_detours_never_redirect_path_packets_and_never_clash():
    graph = zoo_network("Bics")
    nodes = sorted(graph.switches())
    protected = 0
    for src in nodes:
        for dst in nodes:
            if src == dst:
                continue
            path = graph.switch_path(src, dst)
            plan = plan_path(graph, path, 1, 1)
            primary = [f for f in plan if f.in_port is None]
            detours = [f for f in plan if f.in_port is not None]
            hops = graph.hops(path, 1, 1)
            on_path = {(h.dpid, h.in_port) for h in hops}
            # A detour flow (higher priority) must not catch the path's own packets.
            assert not on_path & {(f.dpid, f.in_port) for f in detours}, (src, dst)
            # One exit per (switch, in-port): a packet's fate never depends on flow order.
            exits = [(f.dpid, f.in_port) for f in detours]
            assert len(exits) == len(set(exits)), (src, dst)
            protected += sum(1 for f in primary if f.backup_port is not None)
    assert protected > 0


def test_bypasses_on_an_operator_graph_avoid_their_switch_and_never_clash():
    graph = zoo_network("Bics")
    nodes = sorted(graph.switches())
    # The three busiest switches are critical.
    critical = set(sorted(nodes, key=lambda n: -graph.graph.degree(n))[:3])
    bypassed = 0
    for src in nodes:
        for dst in nodes:
            if src == dst:
                continue
            path = graph.switch_path(src, dst)
            plan = plan_path(graph, path, 1, 1, critical=critical)
            hops = graph.hops(path, 1, 1)
            on_path = {(h.dpid, h.in_port) for h in hops}
            detours = [f for f in plan if f.in_port is not None]
            assert not on_path & {(f.dpid, f.in_port) for f in detours}, (src, dst)
            exits = [(f.dpid, f.in_port) for f in detours]
            assert len(exits) == len(set(exits)), (src, dst)
            for i, flow in enumerate(plan[:len(path)]):
                if not flow.bypass:
                    continue
                bypassed += 1
                avoided = path[i + 1]
                assert avoided in critical and 0 < i + 1 < len(path) - 1
                routes = {f.path for f in detours if f.bypass and f.path[0] == flow.dpid}
                assert routes and all(avoided not in r for r in routes), (src, dst)
    assert bypassed > 50
