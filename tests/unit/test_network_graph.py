"""Network graph: links, edge ports, paths."""

from __future__ import annotations

from controller.network_graph import Hop, Link, NetworkGraph
from tests.unit.fakes import ring_graph


def test_links_listed_once_and_edge_ports_exclude_them():
    graph, _ = ring_graph(4)
    assert len(graph.links()) == 4
    assert graph.edge_ports(1) == [1]
    assert graph.is_link_port(1, 2) and not graph.is_link_port(1, 1)


def test_adding_both_directions_of_a_link_is_one_link():
    graph = NetworkGraph()
    assert graph.add_link(Link(1, 2, 2, 3))
    assert not graph.add_link(Link(2, 3, 1, 2))
    assert len(graph.links()) == 1


def test_self_link_ignored():
    assert not NetworkGraph().add_link(Link(1, 1, 1, 2))


def test_shortest_path_and_hops():
    graph, _ = ring_graph(6)
    assert graph.switch_path(1, 3) == [1, 2, 3]
    assert graph.switch_path(1, 5) == [1, 6, 5]
    assert graph.hops([1, 2, 3], 1, 1) == [Hop(1, 1, 2), Hop(2, 3, 2), Hop(3, 3, 1)]
    assert graph.switch_path(2, 2) == [2]
    assert graph.switch_path(1, 99) is None


def test_port_down_removes_link_and_path_goes_around():
    graph, _ = ring_graph(6)
    gone = graph.port_down(2, 2)
    assert gone == [Link(2, 2, 3, 3)]
    assert graph.switch_path(1, 3) == [1, 6, 5, 4, 3]
    assert 2 not in graph.ports(2)


def test_partition_gives_no_path():
    graph, _ = ring_graph(4)
    graph.port_down(1, 2)
    graph.port_down(1, 3)
    assert graph.switch_path(1, 3) is None


def test_path_uses_link_either_direction():
    assert NetworkGraph.path_uses_link([1, 2, 3], Link(3, 9, 2, 8))
    assert not NetworkGraph.path_uses_link([1, 2, 3], Link(1, 9, 3, 8))


def test_remove_switch_returns_its_links():
    graph, _ = ring_graph(4)
    assert len(graph.remove_switch(2)) == 2
    assert graph.switch_path(1, 3) == [1, 4, 3]


def test_avoid_takes_the_shortest_way_around_a_switch():
    graph, _ = ring_graph(6)
    assert graph.switch_path(1, 3, avoid=frozenset({2})) == [1, 6, 5, 4, 3]
    assert graph.switch_path(1, 4, avoid={2}) == [1, 6, 5, 4]
    assert graph.switch_path(1, 3, avoid={5}) == [1, 2, 3]  # not on the way anyway
    assert graph.switch_path(1, 3) == [1, 2, 3]  # the graph itself is untouched


def test_avoid_never_applies_to_the_ends_or_cuts_a_path():
    graph, _ = ring_graph(6)
    assert graph.switch_path(2, 4, avoid={2}) == [2, 3, 4]
    assert graph.switch_path(1, 2, avoid={2}) == [1, 2]
    assert graph.switch_path(1, 4, avoid={2, 6}) == [1, 2, 3, 4]  # no way around both
    line = NetworkGraph()
    line.add_link(Link(1, 2, 2, 3))
    line.add_link(Link(2, 2, 3, 3))
    assert line.switch_path(1, 3, avoid={2}) == [1, 2, 3]
    assert line.switch_path(1, 3, avoid={99}) == [1, 2, 3]


def test_cached_paths_and_peers_follow_every_change():
    graph, links = ring_graph(4)
    assert graph.switch_path(1, 3) == [1, 2, 3]
    assert graph.port_peers()[(1, 2)] == (2, 3)
    graph.remove_link(links[0])  # 1-2
    assert graph.switch_path(1, 3) == [1, 4, 3]
    assert (1, 2) not in graph.port_peers() and not graph.is_link_port(1, 2)
    graph.add_link(links[0])
    assert graph.port_peers()[(1, 2)] == (2, 3)
    graph.remove_switch(2)
    assert graph.switch_path(1, 3) == [1, 4, 3]
    graph.port_down(4, 2)  # the 4-1 link
    assert graph.switch_path(1, 3) is None
    path = graph.switch_path(4, 3)
    path.append(99)  # a caller's copy: the cache is not touched
    assert graph.switch_path(4, 3) == [4, 3]
