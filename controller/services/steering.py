"""VIP steering as OpenFlow rules: rewrite client->VIP traffic to a node, and replies back.

Rules sit on the client's edge switch and use the base pipeline unchanged
(table 0 container copies, table 1 to-container copies, table 2 forwarding
by MAC pair):

- **request** (table 1, priority 600, per flow): the client's 5-tuple to the
  VIP has ``eth_dst``/``ipv4_dst``/L4 destination rewritten to the node, then
  goes to table 2, where the ordinary client->node path flows carry it;
- **reply** (table 2, above forwarding, per flow): the node's answer to that
  client has ``eth_src``/``ipv4_src``/L4 source rewritten to the VIP and leaves
  by the client's port, so the client only ever sees the VIP;
- **punt** (table 1, priority 550, per service): any other packet to the VIP
  (a new flow, ARP for the VIP) goes to the controller, never to forwarding,
  which would flood an unknown MAC.

Rules are per flow (5-tuple) rather than per VIP, so one flow can move while
its neighbours stay: that is what lets a stateful service drain existing
connections on the old node while new ones go to the new node. Both rules of
a flow are ST entries (``kind="service"``) whose cookies the shadow table
knows; moving a flow re-adds the request rule in place (same match, new
cookie, no gap) and replaces the reply rule make-before-break.

Also here: the ARP reply for a VIP, fast-failover groups (``watch_port``
buckets, the reactive safety net when a port dies before any prediction) and
the 1-5% select group that samples flows along a bypass.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from os_ken.ofproto import ether
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller import ofmsgs
from controller.frames import ARP_REQUEST, Frame
from controller.ofmsgs import OutMsg
from controller.pipeline import FORWARD_TABLE, PUNT_PRIORITY, STEER_PRIORITY, STEER_TABLE
from controller.services.redirection import FlowMove
from controller.services.service import Node, Service, ServiceError, ServiceTable
from controller.services.shadow_table import FlowKey, ShadowTable
from controller.signature_table import FlowSignature, SignatureTable

LOG = logging.getLogger(__name__)

REQUEST, REPLY = "request", "reply"
_ETH_IP = ether.ETH_TYPE_IP


@dataclass(frozen=True)
class ClientFlow:
    """Where a client flow enters: its addresses and the edge switch port it came in on."""

    client_mac: str
    client_ip: str
    client_port: int
    dpid: int
    in_port: int


@dataclass(frozen=True)
class _Rule:
    key: FlowKey
    role: str  # request or reply
    node: str


def _l4(svc: Service) -> str:
    return svc.proto  # "tcp" or "udp": the OXM field prefix


def request_match(svc: Service, flow: ClientFlow) -> dict[str, Any]:
    p = _l4(svc)
    return {"eth_type": _ETH_IP, "ip_proto": svc.ip_proto, "ipv4_src": flow.client_ip,
            f"{p}_src": flow.client_port, "ipv4_dst": svc.vip, f"{p}_dst": svc.port}


def reply_match(svc: Service, node: Node, flow: ClientFlow) -> dict[str, Any]:
    p = _l4(svc)
    return {"eth_type": _ETH_IP, "ip_proto": svc.ip_proto, "ipv4_src": node.ip,
            f"{p}_src": node.port, "ipv4_dst": flow.client_ip, f"{p}_dst": flow.client_port}


def request_actions(svc: Service, node: Node) -> list[Any]:
    p = _l4(svc)
    return [parser.OFPActionSetField(eth_dst=node.mac),
            parser.OFPActionSetField(ipv4_dst=node.ip),
            parser.OFPActionSetField(**{f"{p}_dst": node.port})]


def reply_actions(svc: Service, flow: ClientFlow) -> list[Any]:
    p = _l4(svc)
    return [parser.OFPActionSetField(eth_src=svc.vip_mac),
            parser.OFPActionSetField(ipv4_src=svc.vip),
            parser.OFPActionSetField(**{f"{p}_src": svc.port}),
            parser.OFPActionOutput(flow.in_port)]


def steering_flow_mod(entry: FlowSignature, actions: list[Any]) -> parser.OFPFlowMod:
    """A flow-mod for an ST entry with rewrite actions (``ofmsgs.flow_add`` has none)."""
    instructions = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]
    if entry.goto_table is not None:
        instructions.append(parser.OFPInstructionGotoTable(entry.goto_table))
    return parser.OFPFlowMod(
        None, cookie=entry.cookie, table_id=entry.table_id, command=ofp.OFPFC_ADD,
        idle_timeout=entry.idle_timeout, hard_timeout=entry.hard_timeout,
        priority=entry.priority, buffer_id=ofp.OFP_NO_BUFFER, flags=ofp.OFPFF_SEND_FLOW_REM,
        match=parser.OFPMatch(**entry.match), instructions=instructions)


def vip_punts(svc: Service, dpid: int, delete: bool = False) -> list[OutMsg]:
    """Send new flows to the VIP, and ARP for it, to the controller (whole packets);
    ``delete``: take those rules away again (the service was withdrawn)."""
    to_controller = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [
        parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)])]
    matches = [
        {"eth_type": _ETH_IP, "ip_proto": svc.ip_proto, "ipv4_dst": svc.vip,
         f"{_l4(svc)}_dst": svc.port},
        {"eth_type": ether.ETH_TYPE_ARP, "arp_tpa": svc.vip},
    ]
    if delete:
        return [(dpid, parser.OFPFlowMod(None, table_id=STEER_TABLE, priority=PUNT_PRIORITY,
                                         command=ofp.OFPFC_DELETE_STRICT, out_port=ofp.OFPP_ANY,
                                         out_group=ofp.OFPG_ANY, match=parser.OFPMatch(**m)))
                for m in matches]
    return [(dpid, parser.OFPFlowMod(None, table_id=STEER_TABLE, priority=PUNT_PRIORITY,
                                     match=parser.OFPMatch(**m), instructions=to_controller))
            for m in matches]


# --- packets from the controller's side -----------------------------------------
def vip_arp_reply(svc: Service, request_src_mac: str, request_src_ip: str) -> bytes:
    """The ARP reply a client gets for the VIP: the VIP's own MAC, never a node's."""
    return ofmsgs.arp_reply_bytes(request_src_mac, request_src_ip, svc.vip_mac, svc.vip)


def parse_vip_arp(frame: Frame, services: ServiceTable) -> tuple[Service, str, str] | None:
    """(service, requester MAC, requester IP) when ``frame`` is an ARP request for a VIP."""
    if frame.arp_op != ARP_REQUEST or not frame.arp_dst_ip:
        return None
    hits = services.by_vip(frame.arp_dst_ip)
    return (hits[0], frame.src, frame.arp_src_ip or "") if hits else None


def parse_vip_flow(frame: Frame, services: ServiceTable, dpid: int, in_port: int
                   ) -> tuple[Service, ClientFlow] | None:
    """(service, client flow) when ``frame`` is a client packet to a VIP:port."""
    proto = frame.transport
    if proto is None or frame.dst_ip is None or frame.dport is None:
        return None
    hits = services.by_vip(frame.dst_ip, frame.dport, proto)
    if not hits or frame.src_ip is None or frame.sport is None:
        return None
    return hits[0], ClientFlow(frame.src, frame.src_ip, frame.sport, dpid, in_port)


# --- per-flow steering state -----------------------------------------------------
class Steering:
    """Installs, moves and removes the request/reply rules of service flows, via the ST."""

    def __init__(self, table: SignatureTable, shadow: ShadowTable,
                 forward_priority: int = 100) -> None:
        self.table = table
        self.shadow = shadow
        self.reply_priority = forward_priority + 100
        self._rules: dict[int, _Rule] = {}  # cookie -> what it implements
        self._clients: dict[FlowKey, ClientFlow] = {}
        self._counted: dict[int, int] = {}  # cookie -> packets already reported by traffic()
        self._retired: list[tuple[int, _Rule]] = []  # removed rules whose last counts are due

    def pin(self, key: FlowKey, flow: ClientFlow, now: float) -> list[OutMsg]:
        """Install a flow's rules toward its ShT primary (reply rule first: it must be
        there before the first request reaches the node)."""
        self._clients[key] = flow
        entry = self.shadow.get(key)
        if entry is None:
            raise ServiceError(f"flow {key} is not in the shadow table")
        return self._install(key, entry.primary, now)

    def apply(self, moves: Iterable[FlowMove], now: float) -> list[OutMsg]:
        """Re-point moved flows: new rules first, then the old reply rule goes."""
        adds: list[OutMsg] = []
        deletes: list[OutMsg] = []
        for move in moves:
            if move.key not in self._clients:
                continue
            old = self._cookies(move.key)
            for cookie in old:
                st = self.table.by_cookie(cookie)
                if st is not None:
                    self.table.mark_removed(st, f"moved:{move.from_node}->{move.to_node}", now)
            adds += self._install(move.key, move.to_node, now)
            for cookie in old:
                rule = self._rules[cookie]
                if rule.role == REPLY:  # the request rule was overwritten in place
                    deletes.append((self._clients[move.key].dpid,
                                    ofmsgs.flow_delete_cookie(cookie)))
                self._forget(cookie)
        return adds + deletes

    def unpin(self, key: FlowKey, now: float, reason: str = "ended") -> list[OutMsg]:
        """Remove a flow's rules (it ended, or its service went away)."""
        self._clients.pop(key, None)
        msgs = []
        for cookie in self._cookies(key):
            st = self.table.by_cookie(cookie)
            if st is not None and st.active:
                self.table.mark_removed(st, reason, now)
                msgs.append((st.dpid, ofmsgs.flow_delete_cookie(cookie)))
            self._forget(cookie)
        self.shadow.end(key, now, reason)
        return msgs

    def adopt(self, key: FlowKey, flow: ClientFlow, node: str,
              rules: Mapping[str, FlowSignature]) -> None:
        """Take over a flow pinned before a restart: its request and reply rules exist.

        Counters already on the rules count as seen, so they do not pass for
        fresh traffic when a switchover is verified.
        """
        self._clients[key] = flow
        for role, st in rules.items():
            self._rules[st.cookie] = _Rule(key, role, node)
            self._counted[st.cookie] = st.packets

    def flow_removed(self, cookie: int, now: float) -> list[OutMsg]:
        """The switch removed one of our rules (idle timeout): the flow ended.

        Call after the ST has recorded the removal and final counters.
        """
        rule = self._rules.get(cookie)
        if rule is None:
            return []
        return self.unpin(rule.key, now, "idle_timeout")

    def rebuild(self, entry: FlowSignature) -> parser.OFPFlowMod | None:
        """The flow-mod for a ``kind="service"`` ST entry (for reconciliation), else None."""
        rule = self._rules.get(entry.cookie)
        flow = self._clients.get(rule.key) if rule else None
        svc = self.shadow.services.get(rule.key.service) if rule else None
        node = svc.node(rule.node) if (svc and rule) else None
        if rule is None or flow is None or svc is None or node is None:
            return None
        actions = (request_actions(svc, node) if rule.role == REQUEST
                   else reply_actions(svc, flow))
        return steering_flow_mod(entry, actions)

    def traffic(self, role: str = REPLY) -> dict[str, int]:
        """Packets per node since the last call, from the ST counters of our rules.

        By default the *reply* rules count: a node that answers is carrying the
        traffic, which is what switchover verification wants to see.
        """
        out: dict[str, int] = {}
        for cookie, rule in list(self._rules.items()) + self._retired:
            if rule.role != role:
                continue
            st = self.table.by_cookie(cookie)
            if st is None:
                continue
            delta = st.packets - self._counted.get(cookie, 0)
            if delta > 0:
                out[rule.node] = out.get(rule.node, 0) + delta
                self._counted[cookie] = st.packets
        for cookie, _ in self._retired:
            self._counted.pop(cookie, None)
        self._retired = []
        return out

    def node_of(self, key: FlowKey) -> str | None:
        """The node the installed request rule of a flow points at."""
        return next((r.node for r in self._rules.values()
                     if r.key == key and r.role == REQUEST), None)

    # --- internals ------------------------------------------------------------
    def _install(self, key: FlowKey, node_name: str, now: float) -> list[OutMsg]:
        flow = self._clients[key]
        svc = self.shadow.services.get(key.service)
        node = svc.node(node_name) if svc else None
        if svc is None or node is None:
            raise ServiceError(f"flow {key}: unknown node {node_name!r}")
        msgs: list[OutMsg] = []
        rules = (
            (REPLY, reply_match(svc, node, flow), FORWARD_TABLE, self.reply_priority,
             flow.in_port, None, reply_actions(svc, flow)),
            (REQUEST, request_match(svc, flow), STEER_TABLE, STEER_PRIORITY, None,
             FORWARD_TABLE, request_actions(svc, node)),
        )
        for role, match, table_id, priority, out_port, goto, actions in rules:
            st, _ = self.table.upsert(
                flow.dpid, match, out_port, priority=priority, table_id=table_id,
                idle_timeout=svc.idle_timeout, goto_table=goto, kind="service",
                path=[flow.dpid], path_key=f"svc:{key}", now=now)
            self._rules[st.cookie] = _Rule(key, role, node_name)
            self.shadow.attach_cookie(key, st.cookie)
            msgs.append((flow.dpid, steering_flow_mod(st, actions)))
        return msgs

    def _cookies(self, key: FlowKey) -> list[int]:
        return [c for c, r in self._rules.items() if r.key == key]

    def _forget(self, cookie: int) -> None:
        rule = self._rules.pop(cookie, None)
        if rule is not None:
            self._retired.append((cookie, rule))  # its final counters still count once
        self.shadow.detach_cookie(cookie)
