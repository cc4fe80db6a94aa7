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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from os_ken.lib.packet import arp, ethernet, ipv4, packet, tcp, udp
from os_ken.ofproto import ether

from controller import ofmsgs
from controller.fast_failover import ff_group_id, plan_path
from controller.host_table import Host, HostTable
from controller.mirroring import (
    FORWARD_TABLE,
    FROM_CONTAINER_TABLE,
    TO_CONTAINER_TABLE,
    MirrorTable,
    frame_selected,
)
from controller.network_graph import Link, NetworkGraph
from controller.signature_table import FlowSignature, SignatureTable

LOG = logging.getLogger(__name__)

OutMsg = tuple[int, Any]
BROADCAST = "ff:ff:ff:ff:ff:ff"


@dataclass
class ForwardingSettings:
    idle_timeout: int = 60
    hard_timeout: int = 0
    priority: int = 100
    flood_dedupe_seconds: float = 1.0
    fast_failover: bool = True


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
        self._recent_floods: dict[tuple, float] = {}

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
        removed = []
        if self.graph.graph.has_edge(link.src_dpid, link.dst_dpid):
            self.graph.graph.remove_edge(link.src_dpid, link.dst_dpid)
            removed.append(link)
        return self._reroute(removed)

    # --- packets ------------------------------------------------------------
    def packet_in(self, dpid: int, in_port: int, data: bytes) -> list[OutMsg]:
        self.stats.packet_in += 1
        try:
            pkt = packet.Packet(data)
            eth = pkt.get_protocol(ethernet.ethernet)
        except Exception:  # noqa: BLE001 - any parse failure means a bad frame
            eth = None
        if eth is None:
            self.stats.malformed += 1
            return []
        if eth.ethertype == ether.ETH_TYPE_LLDP or _is_multicast(eth.src):
            return []
        src, dst = eth.src.lower(), eth.dst.lower()
        now = self.clock()
        if self.mirrors.is_mirror_port(dpid, in_port):
            return []  # the bridge drops these; never learn from a mirror
        on_edge = self.graph.has_switch(dpid) and not self.graph.is_link_port(dpid, in_port)

        arp_pkt = pkt.get_protocol(arp.arp)
        ip_pkt = pkt.get_protocol(ipv4.ipv4)
        src_ip = arp_pkt.src_ip if arp_pkt else (ip_pkt.src if ip_pkt else None)
        if on_edge:
            self.hosts.learn(src, dpid, in_port, src_ip, now)

        if arp_pkt is not None and arp_pkt.opcode == arp.ARP_REQUEST and (
            dst == BROADCAST or self.hosts.get(dst) is None
        ):
            return self._arp_request(dpid, in_port, src, arp_pkt, data, now)
        if _is_multicast(dst):
            return self._flood_edges(dpid, in_port, ("bcast", src, data), data, now)

        dst_host = self.hosts.get(dst)
        if dst_host is None:
            return self._flood_edges(dpid, in_port, ("unknown", src, dst, data), data, now)
        src_host = self.hosts.get(src)
        msgs: list[OutMsg] = []
        if src_host is not None and src_host.mac != dst_host.mac:
            msgs += self.install_pair(src_host, dst_host)
        msgs.append(self._deliver(dst_host.dpid, [dst_host.port], data, pkt))
        return msgs

    def _deliver(
        self, dpid: int, ports: list[int], data: bytes, pkt: packet.Packet | None = None
    ) -> OutMsg:
        """A packet-out, plus a copy to the mirror of any mirrored container it reaches.

        Packet-outs skip the flow tables, so the mirror copy is added here.
        """
        copies = []
        for port in ports:
            mirror_ports = self.mirrors.copy_ports(dpid, [port])
            if mirror_ports:
                mirror = next(m for m in self.mirrors.for_dpid(dpid) if m.container_port == port)
                fields = _frame_fields(pkt if pkt else packet.Packet(data))
                if frame_selected(mirror.policy, fields):
                    copies += mirror_ports
        return dpid, ofmsgs.packet_out(ports + copies, data)

    def _arp_request(
        self, dpid: int, in_port: int, src: str, req: arp.arp, data: bytes, now: float
    ) -> list[OutMsg]:
        target = self.hosts.by_ip(req.dst_ip)
        if target is not None and target.mac != src:
            self.stats.arp_proxied += 1
            reply = ofmsgs.arp_reply_bytes(src, req.src_ip, target.mac, req.dst_ip)
            return [self._deliver(dpid, [in_port], reply)]
        self.stats.arp_flooded += 1
        return self._flood_edges(dpid, in_port, ("arp", src, req.dst_ip), data, now)

    def _flood_edges(
        self, dpid: int, in_port: int, key: tuple, data: bytes, now: float
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
        """Flow-mods that make src->dst follow the current shortest path: (adds, deletes)."""
        key = path_key(src.mac, dst.mac)
        switch_path = self.graph.switch_path(src.dpid, dst.dpid)
        if switch_path is None:
            self.stats.unroutable += 1
            return [], self._remove_path(key, keep=set(), reason="no_path")
        plan = plan_path(self.graph, switch_path, src.port, dst.port,
                         protect=self.settings.fast_failover)
        gid = ff_group_id(key)
        groups: list[OutMsg] = []
        msgs: list[OutMsg] = []
        wanted: set[int] = set()
        # Downstream first (detours, then the path from its end): by the time the
        # ingress flow exists, everything after it does too.
        for flow in reversed(plan):
            match = {"eth_src": src.mac, "eth_dst": dst.mac}
            if flow.in_port is not None:
                match = {"in_port": flow.in_port, **match}
            entry, changed = self.table.upsert(
                flow.dpid,
                match,
                flow.out_port,
                priority=self.settings.priority + (1 if flow.in_port is not None else 0),
                table_id=FORWARD_TABLE,
                # A detour carries no traffic until something fails, so it must not idle
                # out; it goes when its path does (see flow_removed).
                idle_timeout=self.settings.idle_timeout if flow.in_port is None else 0,
                hard_timeout=self.settings.hard_timeout if flow.in_port is None else 0,
                group_id=gid if flow.backup_port is not None else None,
                backup_port=flow.backup_port,
                arrival_port=flow.arrival_port,
                kind="detour" if flow.in_port is not None else "forward",
                path=list(flow.path),
                path_key=key,
                now=self.clock(),
            )
            wanted.add(entry.entry_id)
            if changed:
                if flow.backup_port is not None:
                    groups += self.group_msgs(entry)
                msgs.append((flow.dpid, ofmsgs.flow_add(entry)))
        deletes = self._remove_path(key, keep=wanted, reason="rerouted")
        if msgs or deletes:
            self.stats.paths_installed += 1
            self.stats.flow_mods += len(msgs) + len(deletes)
        return groups + msgs, deletes

    @staticmethod
    def group_msgs(entry: FlowSignature) -> list[OutMsg]:
        """(Re)create an entry's fast-failover group: ADD for a new one, MODIFY for an old."""
        args = (entry.group_id, entry.out_port, entry.backup_port)
        return [
            (entry.dpid, ofmsgs.ff_group(*args, arrival_port=entry.arrival_port)),
            (entry.dpid, ofmsgs.ff_group(*args, add=False, arrival_port=entry.arrival_port)),
        ]

    def _remove_path(self, key: str, keep: set[int], reason: str) -> list[OutMsg]:
        """Delete the path's flows that are not in ``keep`` (entry ids), then unused groups."""
        msgs: list[OutMsg] = []
        groups: list[OutMsg] = []
        for entry in self.table.active_paths().get(key, []):
            if entry.entry_id not in keep:
                self.table.mark_removed(entry, reason, self.clock())
                msgs.append((entry.dpid, ofmsgs.flow_delete_cookie(entry.cookie)))
                if entry.backup_port is not None:
                    groups.append((entry.dpid, ofmsgs.ff_group_delete(entry.group_id)))
        return msgs + groups

    def _reroute(self, links: list[Link]) -> list[OutMsg]:
        """Recompute every active path that crossed one of ``links``."""
        if not links:
            return []
        msgs: list[OutMsg] = []
        deletes: list[OutMsg] = []
        for key, entries in self.table.active_paths().items():
            # A path is affected when its own hops or one of its detours used the link.
            if not any(self.graph.path_uses_link(e.path, link)
                       for e in entries for link in links):
                continue
            src_mac, dst_mac = key.split(">")
            src, dst = self.hosts.get(src_mac), self.hosts.get(dst_mac)
            if src is None or dst is None:
                deletes += self._remove_path(key, keep=set(), reason="host_gone")
                continue
            self.stats.paths_rerouted += 1
            adds, gone = self._plan_path(src, dst)
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
                keep = {e.entry_id for e in self.table.active_paths().get(entry.path_key, [])
                        if e.kind == "forward"}
                msgs = self._remove_path(entry.path_key, keep=keep, reason="path_expired")
        return entry, msgs


def _frame_fields(pkt: packet.Packet) -> dict[str, Any]:
    """The few fields mirror policy looks at, from an already parsed frame."""
    fields: dict[str, Any] = {}
    eth = pkt.get_protocol(ethernet.ethernet)
    if eth is not None:
        fields["eth_type"] = eth.ethertype
    ip = pkt.get_protocol(ipv4.ipv4)
    if ip is not None:
        fields.update(ip_proto=ip.proto, src_ip=ip.src, dst_ip=ip.dst)
    l4 = pkt.get_protocol(tcp.tcp) or pkt.get_protocol(udp.udp)
    if l4 is not None:
        fields.update(sport=l4.src_port, dport=l4.dst_port)
    return fields
