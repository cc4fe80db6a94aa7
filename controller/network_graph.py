"""The controller's picture of the network: switches, ports and inter-switch links.

It is a plain networkx graph, fed by the OpenFlow layer (switch and port
events) and by LLDP discovery, and read by forwarding to compute paths. Nothing
here talks OpenFlow, so path logic is tested without a switch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx

# OpenFlow 1.3 reserved ports above this are not physical (LOCAL, CONTROLLER, ...).
OFPP_MAX = 0xFFFFFF00
_UNKNOWN = object()  # not in the cache (None is a cached "no path")
_CACHE_LIMIT = 200_000  # cached answers kept between two changes of the links


@dataclass(frozen=True, order=True)
class Link:
    """A directed view of one inter-switch link: ``src_dpid:src_port -> dst_dpid:dst_port``."""

    src_dpid: int
    src_port: int
    dst_dpid: int
    dst_port: int

    def reversed(self) -> Link:
        return Link(self.dst_dpid, self.dst_port, self.src_dpid, self.src_port)

    def as_dict(self) -> dict[str, int]:
        return {
            "src_dpid": self.src_dpid,
            "src_port": self.src_port,
            "dst_dpid": self.dst_dpid,
            "dst_port": self.dst_port,
        }


@dataclass(frozen=True)
class Hop:
    """One switch on a path: where the packet enters and where it leaves."""

    dpid: int
    in_port: int
    out_port: int


class NetworkGraph:
    """Switches as nodes, links as edges; each edge remembers the port on both ends.

    Links are undirected for path computation, but LLDP reports each direction
    separately; a link is usable once either direction has been seen, and goes
    away when either end's port goes down.
    """

    def __init__(self) -> None:
        self.graph = nx.Graph()
        self._ports_up: dict[int, set[int]] = {}
        # Answers that depend only on switches and links (port peers, shortest
        # paths), dropped whenever those change. A link cut re-plans hundreds of
        # paths whose detours ask the same questions (see bench/reroute.py).
        self._cache: dict[tuple[Any, ...], Any] = {}

    def _changed(self) -> None:
        self._cache.clear()

    # --- switches and ports -------------------------------------------------
    def add_switch(self, dpid: int, ports: list[int] | tuple[int, ...] = ()) -> None:
        if dpid not in self.graph:
            self.graph.add_node(dpid)
            self._changed()
        self._ports_up.setdefault(dpid, set()).update(p for p in ports if p < OFPP_MAX)

    def remove_switch(self, dpid: int) -> list[Link]:
        """Forget a switch; return the links that went with it."""
        gone = self.links_of_switch(dpid)
        if dpid in self.graph:
            self.graph.remove_node(dpid)
            self._changed()
        self._ports_up.pop(dpid, None)
        return gone

    def has_switch(self, dpid: int) -> bool:
        return dpid in self.graph

    def switches(self) -> list[int]:
        return sorted(self.graph.nodes)

    def ports(self, dpid: int) -> list[int]:
        return sorted(self._ports_up.get(dpid, ()))

    def is_port_up(self, dpid: int, port: int) -> bool:
        return port in self._ports_up.get(dpid, ())

    def port_up(self, dpid: int, port: int) -> None:
        if port < OFPP_MAX and dpid in self.graph:
            self._ports_up.setdefault(dpid, set()).add(port)

    def port_down(self, dpid: int, port: int) -> list[Link]:
        """Mark a port down; return the links that ran over it (now removed)."""
        self._ports_up.get(dpid, set()).discard(port)
        return self.remove_links_on_port(dpid, port)

    # --- links --------------------------------------------------------------
    def add_link(self, link: Link) -> bool:
        """Add a discovered link. Returns True when the graph changed."""
        if link.src_dpid == link.dst_dpid:
            return False
        for dpid in (link.src_dpid, link.dst_dpid):
            if dpid not in self.graph:
                self.add_switch(dpid)
        ports = {link.src_dpid: link.src_port, link.dst_dpid: link.dst_port}
        if self.graph.has_edge(link.src_dpid, link.dst_dpid):
            if self.graph.edges[link.src_dpid, link.dst_dpid]["ports"] == ports:
                return False
        self.graph.add_edge(link.src_dpid, link.dst_dpid, ports=ports)
        self._changed()
        return True

    def remove_link(self, link: Link) -> bool:
        """Forget the link between the two switches. Returns True when there was one."""
        if not self.graph.has_edge(link.src_dpid, link.dst_dpid):
            return False
        self.graph.remove_edge(link.src_dpid, link.dst_dpid)
        self._changed()
        return True

    def remove_links_on_port(self, dpid: int, port: int) -> list[Link]:
        gone = [
            link for link in self.links_of_switch(dpid) if link.src_port == port
        ]
        for link in gone:
            self.remove_link(link)
        return gone

    def links_of_switch(self, dpid: int) -> list[Link]:
        if dpid not in self.graph:
            return []
        return [self._link(dpid, nbr) for nbr in self.graph.neighbors(dpid)]

    def links(self) -> list[Link]:
        """Each link once, from the lower dpid."""
        return sorted(self._link(min(a, b), max(a, b)) for a, b in self.graph.edges)

    def port_peers(self) -> dict[tuple[int, int], tuple[int, int]]:
        """``(dpid, port)`` of every link end -> ``(dpid, port)`` at its other end."""
        peers = self._cache.get(("peers",))
        if peers is None:
            peers = {}
            for a, b, ports in self.graph.edges(data="ports"):
                peers[(a, ports[a])] = (b, ports[b])
                peers[(b, ports[b])] = (a, ports[a])
            self._cache[("peers",)] = peers
        return peers

    def link_ports(self, dpid: int) -> set[int]:
        return {link.src_port for link in self.links_of_switch(dpid)}

    def is_link_port(self, dpid: int, port: int) -> bool:
        return (dpid, port) in self.port_peers()

    def edge_ports(self, dpid: int) -> list[int]:
        """Ports that face hosts: up, physical, and not part of a known link."""
        return sorted(self._ports_up.get(dpid, set()) - self.link_ports(dpid))

    def _link(self, src: int, dst: int) -> Link:
        ports = self.graph.edges[src, dst]["ports"]
        return Link(src, ports[src], dst, ports[dst])

    # --- paths --------------------------------------------------------------
    def switch_path(
        self, src_dpid: int, dst_dpid: int, avoid: frozenset[int] | set[int] = frozenset()
    ) -> list[int] | None:
        """Shortest switch path (fewest hops, ties broken by dpid order), or None.

        ``avoid`` (drained switches) is a preference, not a partition: a path
        that crosses none of them wins, but the two ends are never avoided (a
        host attached to a drained switch has no other way in), and when every
        way crosses one the ordinary shortest path is used rather than none.
        """
        if src_dpid not in self.graph or dst_dpid not in self.graph:
            return None
        if src_dpid == dst_dpid:
            return [src_dpid]
        blocked = [n for n in avoid if n in self.graph and n not in (src_dpid, dst_dpid)]
        if blocked:
            around = self.shortest_path_avoiding(src_dpid, dst_dpid, blocked)
            if around is not None:
                return around
        return self.shortest_path_avoiding(src_dpid, dst_dpid)

    def shortest_path_avoiding(
        self, src_dpid: int, dst_dpid: int,
        nodes: list[int] | set[int] | frozenset[int] | tuple[int, ...] = (),
        edges: list[tuple[int, int]] | tuple[tuple[int, int], ...] = (),
    ) -> list[int] | None:
        """Shortest path that crosses none of ``nodes`` and none of ``edges`` (either way)."""
        key = ("path", src_dpid, dst_dpid, frozenset(nodes),
               frozenset((min(a, b), max(a, b)) for a, b in edges))
        path = self._cache.get(key, _UNKNOWN)
        if path is _UNKNOWN:
            if len(self._cache) >= _CACHE_LIMIT:  # a big, stable network: start over
                self._cache.clear()
            path = self._cache[key] = self._shortest_path(src_dpid, dst_dpid, nodes, edges)
        return list(path) if path is not None else None

    def _shortest_path(self, src_dpid: int, dst_dpid: int, nodes: Any, edges: Any
                       ) -> tuple[int, ...] | None:
        if not nodes and not edges:
            view = self.graph
        else:
            both_ways = [*edges, *((b, a) for a, b in edges)]
            view = nx.restricted_view(self.graph, [n for n in nodes if n in self.graph],
                                      both_ways)
        try:
            return tuple(nx.shortest_path(view, src_dpid, dst_dpid))
        except (nx.NetworkXNoPath, nx.NodeNotFound):
            return None

    def hops(self, path: list[int], first_in_port: int, last_out_port: int) -> list[Hop]:
        """Turn a switch path plus the two host ports into per-switch in/out ports."""
        hops: list[Hop] = []
        in_port = first_in_port
        for i, dpid in enumerate(path):
            if i + 1 < len(path):
                out_port = self.graph.edges[dpid, path[i + 1]]["ports"][dpid]
                next_in = self.graph.edges[dpid, path[i + 1]]["ports"][path[i + 1]]
            else:
                out_port, next_in = last_out_port, 0
            hops.append(Hop(dpid, in_port, out_port))
            in_port = next_in
        return hops

    @staticmethod
    def path_uses_link(path: list[int], link: Link) -> bool:
        pairs = set(zip(path, path[1:], strict=False))
        return (link.src_dpid, link.dst_dpid) in pairs or (link.dst_dpid, link.src_dpid) in pairs
