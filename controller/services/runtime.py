"""One object the os-ken app calls for services: packet-ins, probes, intervals, removals.

``ServiceRuntime`` owns the health monitor, the shadow table, the redirection
engine and the steering rules, and shares the controller's signature table
and topology graph. Like ``Forwarder`` it returns ``(dpid, message)`` pairs and
sends nothing, so the whole loop (a client connects, a node degrades, the
service switches, the counters verify it) runs in unit tests against a fake
pipeline.

``restore`` takes back what the store kept (ShT entries, each service's active
node) after a restart, and re-attaches restored flows to the steering rules
the restored ST still holds, so they can still be moved, reconciled and ended.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp

from controller import ofmsgs
from controller.frames import Frame, decode
from controller.network_graph import NetworkGraph
from controller.ofmsgs import OutMsg
from controller.pipeline import STEER_TABLE
from controller.services.health import HealthMonitor, NodeHealth
from controller.services.redirection import Plan, RedirectionEngine
from controller.services.service import Node, Service, ServiceTable
from controller.services.shadow_table import FlowKey, ShadowEntry, ShadowTable, ShadowWeights
from controller.services.steering import (
    REPLY,
    REQUEST,
    ClientFlow,
    Steering,
    parse_vip_arp,
    parse_vip_flow,
    vip_arp_reply,
    vip_punts,
)
from controller.signature_table import SignatureTable
from predictive.trend import TrendEngine

LOG = logging.getLogger(__name__)



class ServiceRuntime:
    def __init__(
        self,
        services: ServiceTable,
        table: SignatureTable,
        graph: NetworkGraph | None = None,
        *,
        engine: TrendEngine | None = None,
        weights: ShadowWeights | None = None,
        keep_seconds: float = 300.0,
        locate: Callable[[Node], int | None] | None = None,
        ensure_path: Callable[[str, Node], list[OutMsg]] | None = None,
        forward_priority: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``ensure_path(client_mac, node)`` returns the flow-mods for the ordinary
        client<->node path (the app passes the forwarder's ``install_pair``)."""
        self.services = services
        self.clock = clock
        self.health = HealthMonitor(engine)
        self.shadow = ShadowTable(services, graph, weights, keep_seconds=keep_seconds,
                                  locate=locate)
        self.redirection = RedirectionEngine(services, self.shadow)
        self.steering = Steering(table, self.shadow, forward_priority)
        self.ensure_path = ensure_path or (lambda client_mac, node: [])
        self._client_macs: dict[FlowKey, str] = {}

    def switch_connected(self, dpid: int) -> list[OutMsg]:
        """Every edge switch sends VIP traffic and ARP for VIPs to the controller."""
        return [m for svc in self.services for m in vip_punts(svc, dpid)]

    def declare(self, svc: Service, connected: Iterable[int]) -> list[OutMsg]:
        """Declare or replace a service (same clients, same nodes: its flows stay)."""
        self.services.add(svc)
        return [m for dpid in connected for m in vip_punts(svc, dpid)]

    def withdraw(self, name: str, connected: Iterable[int]) -> list[OutMsg]:
        """Take a service away: its client flows end and its VIP is no longer answered."""
        svc = self.services.get(name)
        if svc is None:
            return []
        now = self.clock()
        msgs: list[OutMsg] = []
        for entry in self.shadow.entries(name, True):
            msgs += self.steering.unpin(entry.key, now, "service_withdrawn")
        msgs += [m for dpid in connected for m in vip_punts(svc, dpid, delete=True)]
        self.services.remove(name)
        return msgs

    def packet_in(self, dpid: int, in_port: int, data: bytes, frame: Frame | None = None
                  ) -> list[OutMsg] | None:
        """Handle a VIP packet (ARP or a new flow); None when it is not about a service,
        so the app hands it to the forwarder instead. ``frame``: ``data`` already
        decoded (the core decodes each packet-in once)."""
        frame = decode(data) if frame is None else frame
        if frame is None:
            return None
        arp_req = parse_vip_arp(frame, self.services)
        if arp_req is not None:
            svc, src_mac, src_ip = arp_req
            return [(dpid, ofmsgs.packet_out([in_port], vip_arp_reply(svc, src_mac, src_ip)))]
        hit = parse_vip_flow(frame, self.services, dpid, in_port)
        if hit is None:
            return None
        svc, flow = hit
        now = self.clock()
        key = FlowKey(svc.name, flow.client_ip, flow.client_port)
        entry = self.redirection.place(key, dpid, self.health.snapshot(), now)
        node = svc.node(entry.primary)
        assert node is not None
        self._client_macs[key] = flow.client_mac
        entry.client_mac = flow.client_mac  # persisted with the entry (dirty since place)
        msgs = list(self.ensure_path(flow.client_mac, node))
        msgs += self.steering.pin(key, flow, now)
        # The first packet goes back through the pipeline, now that its rules exist.
        msgs.append((dpid, ofmsgs.packet_out([ofp.OFPP_TABLE], data, in_port=in_port)))
        return msgs

    def observe(self, node: str, ts: float, metrics: Mapping[str, float | None]) -> NodeHealth:
        """One interval's probe/agent metrics for a node."""
        return self.health.observe(node, ts, metrics)

    def tick(self, now: float | None = None, counters_fresh: bool = True
             ) -> tuple[list[OutMsg], Plan]:
        """One monitoring interval: decide, move flows, expire old shadow entries.

        ``counters_fresh``: flow stats were refreshed into the ST since the last tick
        (otherwise verification neither passes nor fails this interval).
        """
        now = self.clock() if now is None else now
        traffic = self.steering.traffic() if counters_fresh else None
        health = self.health.snapshot()
        plan = self.redirection.step(health, now, traffic)
        msgs = self._apply(plan, now)
        for svc in self.services:
            self.shadow.refresh(health, now, self.redirection.excluded(svc.name), svc.name)
        for key in self.shadow.expire(now):
            self._client_macs.pop(key, None)
        return msgs, plan

    def unreachable(self, node: str, evidence: dict[str, Any], now: float | None = None
                    ) -> tuple[list[OutMsg], Plan]:
        """``node`` does not answer at all (liveness misses, its port went down): trip it
        and act now, without waiting for the next interval."""
        now = self.clock() if now is None else now
        if not self.redirection.unreachable(node, now, evidence):
            return [], Plan()
        return self.tick(now, counters_fresh=False)

    def liveness_targets(self) -> dict[str, tuple[str, int]]:
        """Every node of every monitored TCP service, with the address to check."""
        out: dict[str, tuple[str, int]] = {}
        for svc in self.services:
            if svc.monitor and svc.proto == "tcp":
                for node in svc.nodes:
                    out[node.name] = (node.ip, node.port)
        return out

    def switch_to(self, service: str, node: str, now: float | None = None
                  ) -> tuple[list[OutMsg], Plan]:
        """An operator's switchover (REST): no thresholds, no cool-down."""
        now = self.clock() if now is None else now
        plan = self.redirection.switch_to(service, node, self.health.snapshot(), now)
        return self._apply(plan, now), plan

    def _apply(self, plan: Plan, now: float) -> list[OutMsg]:
        """Paths to the new nodes first, then the rewrites that use them."""
        msgs: list[OutMsg] = []
        for move in plan.moves:
            svc = self.services.get(move.key.service)
            node = svc.node(move.to_node) if svc else None
            mac = self._client_macs.get(move.key)
            if node is not None and mac is not None:
                msgs += self.ensure_path(mac, node)
        return msgs + self.steering.apply(plan.moves, now)

    def restore(self, shadow: Iterable[Mapping[str, Any]],
                service_state: Mapping[str, Mapping[str, Any]],
                now: float | None = None) -> None:
        """Take back the store's ShT records and per-service state after a restart.

        Call after the ST has been restored: an active flow is re-attached to its
        request and reply rules there (so ``Steering`` can move, rebuild and end
        it); one whose rules are gone is ended, since nothing steers it any more.
        Entries that expired while the controller was down are dropped.
        """
        now = self.clock() if now is None else now
        self.redirection.restore_state(service_state)
        entries = []
        for record in shadow:
            try:
                entries.append(ShadowEntry.from_record(record))
            except (KeyError, TypeError, ValueError) as exc:
                LOG.warning("shadow table: skipping unreadable stored entry %s: %s",
                            {k: record.get(k) for k in ("service", "client_ip",
                                                        "client_port")}, exc)
        for key in self.shadow.restore(entries):
            LOG.info("shadow table: dropping stored flow %s (service or node gone)", key)
        for entry in self.shadow.entries(active_only=True):
            if entry.client_mac:
                self._client_macs[entry.key] = entry.client_mac
            if not self._adopt(entry, now):
                self.shadow.end(entry.key, now, "restart")
        self.shadow.expire(now)

    def _adopt(self, entry: ShadowEntry, now: float) -> bool:
        """Rebuild the steering's view of a restored flow from its ST rules.

        The request rule sits in the steering table, the reply rule (whose output
        is the client's port) in the forwarding table; both point at the entry's
        primary, since a move re-points both. Counters already on the rules are
        taken as seen, so they do not count as fresh traffic for verification.
        """
        rules = {}
        for cookie in entry.cookies:
            st = self.steering.table.by_cookie(cookie)
            if st is not None and st.active and st.kind == "service":
                rules[REQUEST if st.table_id == STEER_TABLE else REPLY] = st
        if set(rules) != {REQUEST, REPLY} or rules[REPLY].out_port is None:
            for cookie in list(entry.cookies):
                st = self.steering.table.by_cookie(cookie)
                if st is not None and st.active:
                    self.steering.table.mark_removed(st, "restart", now)
                self.shadow.detach_cookie(cookie)
            return False
        reply = rules[REPLY]
        if reply.out_port is None:
            return False  # a reply rule that outputs nowhere cannot carry the flow
        flow = ClientFlow(entry.client_mac or "", entry.key.client_ip, entry.key.client_port,
                          reply.dpid, reply.out_port)
        self.steering.adopt(entry.key, flow, entry.primary, rules)
        return True

    def flow_removed(self, cookie: int, now: float | None = None) -> list[OutMsg]:
        """A steering rule idled out: the flow ended; its other rule goes too."""
        return self.steering.flow_removed(cookie, self.clock() if now is None else now)
