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

Switch drain. When a path crosses a *critical* switch C in transit, the
hop before C (the divergence switch D) gets a *bypass* as its detour:
the shortest way to the destination that avoids C itself, not just the link
D->C, so it survives C dying whole. Bypasses are planned before the ordinary
detours (they may carry live traffic, so they get first claim on shared
exits). The forwarder can then put a small share of flows on the bypass all
the time (a weighted select group at D), which keeps it proven live.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from controller.network_graph import NetworkGraph
from controller.pipeline import BYPASS_GROUP_BASE, FF_GROUP_BASE

# (mirror sample groups live in 0x10000..0x7fffffff; OFPG_MAX is 0xffffff00)

BYPASS_WEIGHT_SCALE = 100  # select-group weight units per percent of flows


@dataclass(frozen=True)
class PlannedFlow:
    """One flow a protected path needs on one switch."""

    dpid: int
    out_port: int
    in_port: int | None = None  # detour flows match the port they arrive on
    backup_port: int | None = None  # path flows with a detour use a fast-failover group
    path: tuple[int, ...] = ()
    arrival_port: int | None = None  # where a path flow's packets come in
    # A path flow whose backup_port starts a bypass, or a detour flow on one.
    bypass: bool = False


def ff_group_id(path_key: str) -> int:
    """One group per path per switch; ids stay clear of mirror groups and OFPG_MAX."""
    return FF_GROUP_BASE | (zlib.crc32(path_key.encode()) & 0x0FFFFFFF)


def bypass_group_id(path_key: str) -> int:
    """The select group at a path's divergence switch: its own range, so a path
    that gains or loses its bypass never reuses a fast-failover group's id with
    another group type."""
    return BYPASS_GROUP_BASE | (zlib.crc32(path_key.encode()) & 0x0FFFFFFF)


def bypass_weights(percent: float) -> tuple[int, int]:
    """Select-group weights (primary, bypass) that put ``percent`` % of flows on the bypass."""
    bypass = round(percent * BYPASS_WEIGHT_SCALE)
    return 100 * BYPASS_WEIGHT_SCALE - bypass, bypass


def plan_path(
    graph: NetworkGraph, switch_path: list[int], first_in_port: int, last_out_port: int,
    protect: bool = True, critical: frozenset[int] | set[int] = frozenset(),
    avoid: frozenset[int] | set[int] = frozenset(),
) -> list[PlannedFlow]:
    """Path flows (ingress first) plus detour flows and backup ports.

    ``protect`` gives every hop a detour; a transit ``critical`` switch gives
    the hop before it a bypass whatever ``protect`` says (the operator
    asked for that switch). Detours and bypasses keep clear of the ``avoid``
    (drained) switches when they can.
    """
    hops = graph.hops(switch_path, first_in_port, last_out_port)
    path = tuple(switch_path)
    # Divergence switch -> the critical switch right after it, for transit critical switches.
    bypassed = {switch_path[i - 1]: c for i, c in enumerate(switch_path)
                if 0 < i < len(switch_path) - 1 and c in critical}
    if (not protect and not bypassed) or len(switch_path) < 2:
        return [PlannedFlow(h.dpid, h.out_port, path=path) for h in hops]
    dst = switch_path[-1]
    # Where each (switch, in-port) already sends this path's packets. The path's own
    # hops come first: a detour must never change where a path packet goes.
    detour_exits: dict[tuple[int, int], int] = {(h.dpid, h.in_port): h.out_port for h in hops}
    detour_flows: list[PlannedFlow] = []
    backups: dict[int, int] = {}

    def claim(i: int, route: list[int] | None, bypass: bool) -> None:
        """Give hop ``i`` the detour ``route`` unless it clashes with what is planned."""
        if route is None:
            return
        route_hops = graph.hops(route, hops[i].in_port, last_out_port)
        wanted = {(h.dpid, h.in_port): h.out_port for h in route_hops[1:]}
        if any(detour_exits.get(k, v) != v for k, v in wanted.items()):
            return  # would clash with an earlier detour at a shared (switch, in-port)
        backups[hops[i].dpid] = route_hops[0].out_port
        for h in route_hops[1:]:
            if (h.dpid, h.in_port) not in detour_exits:  # else the same exit is in place
                detour_exits[(h.dpid, h.in_port)] = h.out_port
                detour_flows.append(PlannedFlow(h.dpid, h.out_port, in_port=h.in_port,
                                                path=tuple(route), bypass=bypass))

    for i, hop in enumerate(hops[:-1]):
        if hop.dpid in bypassed:
            claim(i, _around_switch(graph, hop.dpid, bypassed[hop.dpid], dst, avoid), True)
    bypasses = set(backups)
    if protect:
        for i, hop in enumerate(hops[:-1]):
            if hop.dpid not in backups:
                claim(i, _detour(graph, hop.dpid, switch_path[i + 1], dst, avoid), False)
    primary = [PlannedFlow(h.dpid, h.out_port, backup_port=backups.get(h.dpid), path=path,
                           arrival_port=h.in_port, bypass=h.dpid in bypasses)
               for h in hops]
    return primary + detour_flows


def install_order(graph: NetworkGraph, plan: list[PlannedFlow]) -> list[PlannedFlow]:
    """The plan's flows ordered so that each comes after every flow it forwards into.

    Installed in this order, the part of a new plan already on the switches
    only ever hands packets to flows of the new plan that are there too: a
    packet that meets a new flow stays on new flows to the destination, and
    one that has not met any still follows the old path. The ingress, which
    every other flow serves, comes last: it is the flip from old to new. (A
    plain downstream-first order of the path is not enough once a bypass
    carries live traffic, or when a new detour flow catches old-path packets.)
    """
    return [plan[i] for i in _downstream_first(graph, plan)]


def removal_order(graph: NetworkGraph, old: list[PlannedFlow]) -> list[int]:
    """Indices of the ``old`` flows being deleted, each before the flows it forwards into.

    An old detour flow matches its in-port one priority above the path flows,
    so after the switch-over it can still catch packets of the new path and
    hand them along the old detour. Deleting upstream first means no flow
    that is still there ever forwards into one that is gone; a caught packet
    falls back to the new flows underneath instead.
    """
    return list(reversed(_downstream_first(graph, old)))


def _downstream_first(graph: NetworkGraph, flows: list[PlannedFlow]) -> list[int]:
    """Indices of ``flows``, each after every flow of ``flows`` it forwards into."""
    peer = graph.port_peers()
    by_switch = {f.dpid: i for i, f in enumerate(flows) if f.in_port is None}
    by_key = {(f.dpid, f.in_port): i for i, f in enumerate(flows) if f.in_port is not None}

    def next_flows(i: int) -> Iterator[int]:
        flow = flows[i]
        for port in (flow.out_port, flow.backup_port):
            far = peer.get((flow.dpid, port)) if port is not None else None
            if far is not None:
                nxt = by_key.get(far, by_switch.get(far[0]))
                if nxt is not None:
                    yield nxt

    order: list[int] = []
    seen: set[int] = set()
    for root in range(len(flows)):
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, next_flows(root))]
        while stack:  # iterative depth-first search, emitting each flow after its successors
            i, successors = stack[-1]
            nxt = next(successors, None)
            if nxt is None:
                stack.pop()
                order.append(i)
            elif nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, next_flows(nxt)))
    return order


def _detour(graph: NetworkGraph, at: int, avoid_next: int, dst: int,
            avoid: frozenset[int] | set[int]) -> list[int] | None:
    """The shortest way around the link ``at``-``avoid_next``, off drained switches if possible."""
    link = [(at, avoid_next)]
    drained = [n for n in avoid if n not in (at, dst)]
    if drained:
        route = graph.shortest_path_avoiding(at, dst, drained, link)
        if route is not None:
            return route
    return graph.shortest_path_avoiding(at, dst, (), link)


def _around_switch(graph: NetworkGraph, at: int, critical: int, dst: int,
                   avoid: frozenset[int] | set[int]) -> list[int] | None:
    """The bypass: from ``at`` to ``dst`` without crossing ``critical`` at all."""
    drained = {n for n in avoid if n not in (at, dst)} - {critical}
    if drained:
        route = graph.shortest_path_avoiding(at, dst, drained | {critical})
        if route is not None:
            return route
    return graph.shortest_path_avoiding(at, dst, [critical])
