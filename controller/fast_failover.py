"""Local fast reroute: a detour for every hop of a path, chosen before anything fails.

For each switch on a path (but the last), the detour is the shortest way to
the destination switch that avoids the link to the next hop. The switch sends
through an OpenFlow fast-failover group: the primary port while it is live,
else the detour's first port. Switches further along a detour carry detour
flows that also match the port the packet came in on, one priority above the
path flows, so a packet that crosses back over the primary path cannot loop.

When two detours of one path would need different exits from the same
(switch, in-port), the later hop stays unprotected rather than risk a loop;
the controller still reroutes it once the port-down event arrives.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import networkx as nx

from controller.network_graph import NetworkGraph

FF_GROUP_BASE = 0x80000000


@dataclass(frozen=True)
class PlannedFlow:
    """One flow a protected path needs on one switch."""

    dpid: int
    out_port: int
    in_port: int | None = None  # detour flows match the port they arrive on
    backup_port: int | None = None  # path flows with a detour use a fast-failover group
    path: tuple[int, ...] = ()
    arrival_port: int | None = None  # where a path flow's packets come in


def ff_group_id(path_key: str) -> int:
    """One group per path per switch; ids stay clear of mirror groups and OFPG_MAX."""
    return FF_GROUP_BASE | (zlib.crc32(path_key.encode()) & 0x0FFFFFFF)


def plan_path(
    graph: NetworkGraph, switch_path: list[int], first_in_port: int, last_out_port: int,
    protect: bool = True,
) -> list[PlannedFlow]:
    """Path flows (ingress first) plus, when ``protect``, detour flows and backup ports."""
    hops = graph.hops(switch_path, first_in_port, last_out_port)
    path = tuple(switch_path)
    if not protect or len(switch_path) < 2:
        return [PlannedFlow(h.dpid, h.out_port, path=path) for h in hops]
    dst = switch_path[-1]
    # Where each (switch, in-port) already sends this path's packets. The path's own
    # hops come first: a detour must never change where a path packet goes.
    detour_exits: dict[tuple[int, int], int] = {(h.dpid, h.in_port): h.out_port for h in hops}
    detour_flows: list[PlannedFlow] = []
    backups: dict[int, int] = {}
    for i, hop in enumerate(hops[:-1]):
        detour = _detour(graph, hop.dpid, switch_path[i + 1], dst)
        if detour is None:
            continue
        detour_hops = graph.hops(detour, hop.in_port, last_out_port)
        wanted = {(h.dpid, h.in_port): h.out_port for h in detour_hops[1:]}
        if any(detour_exits.get(k, v) != v for k, v in wanted.items()):
            continue  # would clash with an earlier detour at a shared (switch, in-port)
        backups[hop.dpid] = detour_hops[0].out_port
        for h in detour_hops[1:]:
            if (h.dpid, h.in_port) not in detour_exits:  # else the same exit is in place
                detour_exits[(h.dpid, h.in_port)] = h.out_port
                detour_flows.append(PlannedFlow(h.dpid, h.out_port, in_port=h.in_port,
                                                path=tuple(detour)))
    primary = [PlannedFlow(h.dpid, h.out_port, backup_port=backups.get(h.dpid), path=path,
                           arrival_port=h.in_port)
               for h in hops]
    return primary + detour_flows


def _detour(graph: NetworkGraph, at: int, avoid_next: int, dst: int) -> list[int] | None:
    view = nx.restricted_view(graph.graph, [], [(at, avoid_next), (avoid_next, at)])
    try:
        return nx.shortest_path(view, at, dst)
    except (nx.NetworkXNoPath, nx.NodeNotFound):
        return None
