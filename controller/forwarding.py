"""Forwarding decisions: learn hosts, answer ARP, install whole paths, reroute.

``Forwarder`` turns events (packet-in, link or port down, switch up) into
OpenFlow messages addressed to switches, as ``(dpid, message)`` pairs. It owns
no sockets: the os-ken app sends what it returns, and unit tests inspect it.

Design choices:
- A unicast frame to a known host installs the shortest path for both
  directions at once, downstream switches first, and the triggering packet is
  delivered straight out of the destination's edge port, so it never races
  its own flows.
- ARP never floods through the fabric. Requests for a known IP are answered
  by the controller (proxy ARP); the rest are copied by the controller to edge
  ports only, so loops in the topology cannot turn them into storms.
- When a link goes, each path that used it is recomputed: new flows first,
  then the old path's leftover flows are deleted (make before break).
- A switch predicted to fail is *drained*: paths are recomputed around it the
  same make-before-break way (new downstream flows, then the ingress flip,
  then the old flows go), so traffic leaves it before it fails. Critical
  switches also get a live bypass (see :mod:`controller.fast_failover`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from os_ken.ofproto import ether

from controller import ofmsgs
from controller.fast_failover import (
    PlannedFlow,
    bypass_group_id,
    bypass_weights,
    ff_group_id,
    install_order,
    plan_path,
    removal_order,
)
from controller.frames import ARP_REQUEST, Frame, decode
from controller.host_table import Host, HostTable
from controller.mirroring import MirrorTable, frame_selected
from controller.network_graph import Link, NetworkGraph
from controller.ofmsgs import OutMsg
from controller.pipeline import FORWARD_TABLE, FROM_CONTAINER_TABLE, TO_CONTAINER_TABLE
from controller.signature_table import FlowSignature, SignatureTable
from controller.switch_probes import PROBE_ETHERTYPE

LOG = logging.getLogger(__name__)

BROADCAST = "ff:ff:ff:ff:ff:ff"
PATH_KINDS = frozenset({"forward", "detour", "bypass"})  # the ST entries of host paths


@dataclass
class ForwardingSettings:
    idle_timeout: int = 60
    hard_timeout: int = 0
    priority: int = 100
    # Short enough that a host's ARP retry (the kernel resends every second, and a
    # busy controller can see two sends closer than that) is flooded again; long
    # enough to catch a copy re-entering through a link LLDP has not found yet.
    flood_dedupe_seconds: float = 0.25
    fast_failover: bool = True
    # Switch drain: paths crossing one of these get a bypass around it ...
    critical_switches: frozenset[int] = frozenset()
    every_switch_critical: bool = False  # switch_drain.critical: all
    # ... and this percent of their flows (hashed per flow) rides the bypass all the
    # time, through a select group; 0 keeps a fast-failover group (bypass used on failure).
    bypass_sample_percent: float = 2.0


@dataclass
class ForwardingStats:
    packet_in: int = 0
    arp_proxied: int = 0
    arp_flooded: int = 0
    paths_installed: int = 0
    paths_rerouted: int = 0
    flow_mods: int = 0
    malformed: int = 0
    unroutable: int = 0
    links_refused: int = 0  # LLDP links with an end on a mirror's or a container's port


def path_key(src_mac: str, dst_mac: str) -> str:
    return f"{src_mac}>{dst_mac}"


def _is_multicast(mac: str) -> bool:
    return int(mac.split(":")[0], 16) & 1 == 1


class Forwarder:
    """Per-network forwarding logic over a graph, a host table and the ST."""

    def __init__(
        self,
        graph: NetworkGraph,
        hosts: HostTable,
        table: SignatureTable,
        settings: ForwardingSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.graph = graph
        self.hosts = hosts
        self.table = table
        self.settings = settings or ForwardingSettings()
        self.clock = clock
        self.stats = ForwardingStats()
        self.mirrors = MirrorTable()
        # Switches paths should avoid (predicted to fail); see drain().
        self.drained: set[int] = set()
        self._recent_floods: dict[tuple[Any, ...], float] = {}

    # --- switch lifecycle ---------------------------------------------------
    def switch_connected(self, dpid: int, ports: list[int]) -> list[OutMsg]:
        """The base pipeline: mirror tables fall through to forwarding, whose miss asks us."""
        self.graph.add_switch(dpid, ports)
        return [
            (dpid, ofmsgs.table_miss_goto(FROM_CONTAINER_TABLE, TO_CONTAINER_TABLE)),
            (dpid, ofmsgs.table_miss_goto(TO_CONTAINER_TABLE, FORWARD_TABLE)),
            (dpid, ofmsgs.table_miss(FORWARD_TABLE)),
            (dpid, ofmsgs.drop_ipv6_multicast(FORWARD_TABLE)),
        ]

    def switch_disconnected(self, dpid: int) -> list[OutMsg]:
        links = self.graph.remove_switch(dpid)
        return self._reroute(links)

    def port_down(self, dpid: int, port: int) -> list[OutMsg]:
        return self._reroute(self.graph.port_down(dpid, port))

    def link_added(self, link: Link) -> list[OutMsg]:
        if self.graph.add_link(link):
            # A port we thought faced a host faces a switch: forget hosts learned there.
            for dpid, port in ((link.src_dpid, link.src_port), (link.dst_dpid, link.dst_port)):
                for host in self.hosts.forget_port(dpid, port):
                    LOG.info("host %s was learned on link port %s:%s; forgotten",
                             host.mac, dpid, port)
        return []

    def link_removed(self, link: Link) -> list[OutMsg]:
        return self._reroute([link] if self.graph.remove_link(link) else [])

    # --- packets ------------------------------------------------------------
    def packet_in(self, dpid: int, in_port: int, data: bytes, frame: Frame | None = None
                  ) -> list[OutMsg]:
        """One packet-in; ``frame``: ``data`` already decoded (the core decodes once)."""
        self.stats.packet_in += 1
        # Bounded: a hostile frame can neither raise nor hang here.
        frame = decode(data) if frame is None else frame
        if frame is None:
            self.stats.malformed += 1
            return []
        if frame.ethertype in (ether.ETH_TYPE_LLDP, PROBE_ETHERTYPE) or _is_multicast(frame.src):
            return []  # discovery and switch probes are not host traffic
        if not frame.l3_ok:
            self.stats.malformed += 1  # still a frame: forwarded as plain L2, learned from as such
        src, dst = frame.src, frame.dst
        now = self.clock()
        if self.mirrors.is_mirror_port(dpid, in_port):
            return []  # the bridge drops these; never learn from a mirror
        on_edge = self.graph.has_switch(dpid) and not self.graph.is_link_port(dpid, in_port)

        src_ip = frame.arp_src_ip if frame.is_arp else (
            frame.src_ip if frame.ip_version == 4 else None)
        if on_edge:
            self.hosts.learn(src, dpid, in_port, src_ip, now)

        if frame.arp_op == ARP_REQUEST and (dst == BROADCAST or self.hosts.get(dst) is None):
            return self._arp_request(dpid, in_port, src, frame, data, now)
        if _is_multicast(dst):
            return self._flood_edges(dpid, in_port, ("bcast", src, data), data, now)

        dst_host = self.hosts.get(dst)
        if dst_host is None:
            return self._flood_edges(dpid, in_port, ("unknown", src, dst, data), data, now)
        src_host = self.hosts.get(src)
        msgs: list[OutMsg] = []
        if src_host is not None and src_host.mac != dst_host.mac:
            msgs += self.install_pair(src_host, dst_host)
        msgs.append(self._deliver(dst_host.dpid, [dst_host.port], data, frame))
        return msgs

    def _deliver(
        self, dpid: int, ports: list[int], data: bytes, frame: Frame | None = None
    ) -> OutMsg:
        """A packet-out, plus a copy to the mirror of any mirrored container it reaches.

        Packet-outs skip the flow tables, so the mirror copy is added here.
        """
        copies = []
        for port in ports:
            mirror_ports = self.mirrors.copy_ports(dpid, [port])
            if mirror_ports:
                mirror = next(m for m in self.mirrors.for_dpid(dpid) if m.container_port == port)
                frame = frame or decode(data)
                fields = frame.policy_fields() if frame else {}
                if frame_selected(mirror.policy, fields):
                    copies += mirror_ports
        return dpid, ofmsgs.packet_out(ports + copies, data)

    def _arp_request(
        self, dpid: int, in_port: int, src: str, req: Frame, data: bytes, now: float
    ) -> list[OutMsg]:
        target = self.hosts.by_ip(req.arp_dst_ip) if req.arp_dst_ip else None
        if target is not None and target.mac != src and req.arp_src_ip and req.arp_dst_ip:
            self.stats.arp_proxied += 1
            reply = ofmsgs.arp_reply_bytes(src, req.arp_src_ip, target.mac, req.arp_dst_ip)
            return [self._deliver(dpid, [in_port], reply)]
        self.stats.arp_flooded += 1
        return self._flood_edges(dpid, in_port, ("arp", src, req.arp_dst_ip), data, now)

    def _flood_edges(
        self, dpid: int, in_port: int, key: tuple[Any, ...], data: bytes, now: float
    ) -> list[OutMsg]:
        """Copy a frame to every host-facing port, once per ``key`` per dedupe period.

        The controller does the copying, so a loop in the fabric cannot multiply it;
        the dedupe catches the copy that re-enters through a not-yet-discovered link.
        """
        last = self._recent_floods.get(key)
        if last is not None and now - last < self.settings.flood_dedupe_seconds:
            return []
        self._recent_floods[key] = now
        if len(self._recent_floods) > 4096:
            horizon = now - self.settings.flood_dedupe_seconds
            self._recent_floods = {k: t for k, t in self._recent_floods.items() if t >= horizon}
        msgs = []
        for sw in self.graph.switches():
            ports = [
                p for p in self.graph.edge_ports(sw)
                if (sw, p) != (dpid, in_port) and not self.mirrors.is_mirror_port(sw, p)
            ]
            if ports:
                msgs.append(self._deliver(sw, ports, data))
        return msgs

    # --- paths --------------------------------------------------------------
    def install_pair(self, a: Host, b: Host) -> list[OutMsg]:
        """Install both directions between two hosts."""
        return self.install_path(a, b) + self.install_path(b, a)

    def install_path(self, src: Host, dst: Host) -> list[OutMsg]:
        """Install src->dst along the shortest path; returns only the flow-mods needed."""
        adds, deletes = self._plan_path(src, dst)
        return adds + deletes

    def _plan_path(self, src: Host, dst: Host) -> tuple[list[OutMsg], list[OutMsg]]:
        """Flow-mods that make src->dst follow the current shortest path: (adds, deletes).

        Adds come in :func:`install_order` (each flow after those it forwards into,
        so the ingress is the last), each group just before the flow that uses
        it: a group MODIFY redirects traffic at once, so it is a flip too.
        """
        key = path_key(src.mac, dst.mac)
        s = self.settings
        switch_path = self.graph.switch_path(src.dpid, dst.dpid, avoid=self.drained)
        if switch_path is None:
            self.stats.unroutable += 1
            return [], self._remove_path(key, keep=set(), reason="no_path")
        critical = (set(self.graph.switches()) if s.every_switch_critical
                    else s.critical_switches)
        plan = plan_path(self.graph, switch_path, src.port, dst.port, protect=s.fast_failover,
                         critical=critical, avoid=self.drained)
        old_groups = {e.entry_id: (e.group_id, e.bypass_percent)
                      for e in self.table.active_path(key) if e.group_id is not None}
        msgs: list[OutMsg] = []
        stale_groups: list[OutMsg] = []
        wanted: set[int] = set()
        for flow in install_order(self.graph, plan):
            match: dict[str, Any] = {"eth_src": src.mac, "eth_dst": dst.mac}
            if flow.in_port is not None:
                match = {"in_port": flow.in_port, **match}
            # A bypass's divergence switch samples live flows onto it (select group).
            sampled = flow.bypass and flow.in_port is None and s.bypass_sample_percent > 0
            group_id = None
            if flow.backup_port is not None:
                group_id = bypass_group_id(key) if sampled else ff_group_id(key)
            entry, changed = self.table.upsert(
                flow.dpid,
                match,
                flow.out_port,
                priority=s.priority + (1 if flow.in_port is not None else 0),
                table_id=FORWARD_TABLE,
                # A detour carries no traffic until something fails, so it must not idle
                # out; it goes when its path does (see flow_removed).
                idle_timeout=s.idle_timeout if flow.in_port is None else 0,
                hard_timeout=s.hard_timeout if flow.in_port is None else 0,
                group_id=group_id,
                backup_port=flow.backup_port,
                arrival_port=flow.arrival_port,
                bypass_percent=s.bypass_sample_percent if sampled else None,
                kind=_flow_kind(flow),
                path=list(flow.path),
                path_key=key,
                now=self.clock(),
            )
            wanted.add(entry.entry_id)
            old_group, old_percent = old_groups.get(entry.entry_id, (None, None))
            if old_group is not None and old_group != entry.group_id:
                stale_groups.append((flow.dpid, _group_delete(old_group, old_percent)))
            if changed:
                if flow.backup_port is not None:
                    msgs += self.group_msgs(entry)
                msgs.append((flow.dpid, ofmsgs.flow_add(entry)))
        deletes = self._remove_path(key, keep=wanted, reason="rerouted") + stale_groups
        if msgs or deletes:
            self.stats.paths_installed += 1
            self.stats.flow_mods += len(msgs) + len(deletes)
        return msgs, deletes

    @staticmethod
    def group_msgs(entry: FlowSignature) -> list[OutMsg]:
        """(Re)create an entry's group: ADD for a new one, MODIFY for an old.

        Fast-failover, or for a divergence switch sampling onto a bypass
        (``bypass_percent``), a weighted select group whose buckets watch their
        ports, so it fails over in the data plane too. Everything needed is in
        the entry, so the core can rebuild groups after a reconnect.
        """
        if entry.group_id is None or entry.out_port is None or entry.backup_port is None:
            return []  # not a group entry: nothing to rebuild
        if entry.bypass_percent:
            primary, bypass = bypass_weights(entry.bypass_percent)
            buckets = [(primary, entry.out_port), (bypass, entry.backup_port)]
            return [
                (entry.dpid, ofmsgs.watched_select_group(
                    entry.group_id, buckets, arrival_port=entry.arrival_port)),
                (entry.dpid, ofmsgs.watched_select_group(
                    entry.group_id, buckets, add=False, arrival_port=entry.arrival_port)),
            ]
        group, out, backup = entry.group_id, entry.out_port, entry.backup_port
        return [
            (entry.dpid, ofmsgs.ff_group(group, out, backup, arrival_port=entry.arrival_port)),
            (entry.dpid, ofmsgs.ff_group(group, out, backup, add=False,
                                         arrival_port=entry.arrival_port)),
        ]

    def _remove_path(self, key: str, keep: set[int], reason: str) -> list[OutMsg]:
        """Delete the path's flows that are not in ``keep`` (entry ids), then unused groups.

        Upstream first (see :func:`removal_order`), so a packet still caught by
        an old detour flow is never handed to an old flow that is already gone.
        """
        gone = [e for e in self.table.active_path(key) if e.entry_id not in keep]
        as_flows = [PlannedFlow(e.dpid, e.out_port or 0, in_port=e.match.get("in_port"),
                                backup_port=e.backup_port) for e in gone]
        msgs: list[OutMsg] = []
        groups: list[OutMsg] = []
        for i in removal_order(self.graph, as_flows):
            entry = gone[i]
            self.table.mark_removed(entry, reason, self.clock())
            msgs.append((entry.dpid, ofmsgs.flow_delete_cookie(entry.cookie)))
            if entry.backup_port is not None and entry.group_id is not None:
                groups.append((entry.dpid, _group_delete(entry.group_id, entry.bypass_percent)))
        return msgs + groups

    def _reroute(self, links: list[Link]) -> list[OutMsg]:
        """Recompute every active path that crossed one of ``links``."""
        if not links:
            return []
        # A path is affected when its own hops or one of its detours used the link.
        return self._recompute(lambda entries: any(
            self.graph.path_uses_link(e.path, link) for e in entries for link in links))

    def drain(self, dpid: int) -> list[OutMsg]:
        """Move every path off ``dpid`` while it still works (it is predicted to fail).

        Paths whose hops, detours or bypasses cross it are recomputed avoiding it,
        make before break. A path that has no way around (the switch is one of
        its ends, or a cut vertex) keeps it: draining never disconnects anyone.
        """
        if dpid in self.drained:
            return []
        self.drained.add(dpid)
        return self._recompute(lambda entries: any(dpid in e.path for e in entries))

    def undrain(self, dpid: int) -> list[OutMsg]:
        """Let paths use ``dpid`` again: every path goes back to its shortest way.

        Any path may have been pushed off its shortest way, so all are
        recomputed; one whose plan is unchanged costs no message.
        """
        if dpid not in self.drained:
            return []
        self.drained.discard(dpid)
        return self._recompute(lambda entries: True)

    def _recompute(self, affected: Callable[[list[FlowSignature]], bool]) -> list[OutMsg]:
        """Re-plan every host path for which ``affected(its entries)`` holds."""
        msgs: list[OutMsg] = []
        deletes: list[OutMsg] = []
        for key, entries in self.table.active_paths().items():
            if any(e.kind not in PATH_KINDS for e in entries) or not affected(entries):
                continue  # mirror and service entries are not host paths
            src_mac, dst_mac = key.split(">")
            src, dst = self.hosts.get(src_mac), self.hosts.get(dst_mac)
            if src is None or dst is None:
                deletes += self._remove_path(key, keep=set(), reason="host_gone")
                continue
            adds, gone = self._plan_path(src, dst)
            if adds or gone:
                self.stats.paths_rerouted += 1
            msgs += adds
            deletes += gone
        # Make before break: every new flow is sent before any old one is deleted.
        return msgs + deletes

    # --- switch feedback ----------------------------------------------------
    def flow_removed(
        self, cookie: int, reason: str, packets: int, byte_count: int
    ) -> tuple[FlowSignature | None, list[OutMsg]]:
        """Close the entry; when a path hop times out, its detours go with it."""
        entry = self.table.by_cookie(cookie)
        if entry is None:
            return None, []
        self.table.update_counters(entry, packets, byte_count, self.clock())
        msgs: list[OutMsg] = []
        if entry.active:
            self.table.mark_removed(entry, reason, self.clock())
            if entry.kind == "forward" and reason.endswith("timeout"):
                keep = {e.entry_id for e in self.table.active_path(entry.path_key)
                        if e.kind == "forward"}
                msgs = self._remove_path(entry.path_key, keep=keep, reason="path_expired")
        return entry, msgs


def _flow_kind(flow: PlannedFlow) -> str:
    if flow.in_port is None:
        return "forward"
    return "bypass" if flow.bypass else "detour"


def _group_delete(group_id: int, bypass_percent: float | None) -> Any:
    return (ofmsgs.group_delete(group_id) if bypass_percent
            else ofmsgs.ff_group_delete(group_id))
