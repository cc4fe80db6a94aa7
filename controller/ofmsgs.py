"""OpenFlow 1.3 message builders.

Messages are built without a datapath (as Faucet does); the app layer binds
them to a connected switch just before sending. That keeps every decision in
plain code that unit tests can inspect.
"""

from __future__ import annotations

import functools
from typing import Any

from os_ken.lib.packet import arp, ethernet, packet
from os_ken.ofproto import ether
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller.pipeline import (
    COOKIE_MASK,
    COOKIE_PREFIX,
    IPV6_MULTICAST_DROP_PRIORITY,
    TABLE_MISS_PRIORITY,
)
from controller.signature_table import FlowSignature

# A message and the switch it is for; the domain classes return lists of these.
OutMsg = tuple[int, Any]



def _apply(actions: list[Any]) -> list[Any]:
    return [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]


def flow_add(entry: FlowSignature) -> parser.OFPFlowMod:
    """Install (or overwrite) the flow an ST entry describes; the switch reports its removal.

    No output and no group means drop; ``goto_table`` continues the pipeline.
    """
    actions = []
    if entry.group_id is not None:
        actions.append(parser.OFPActionGroup(entry.group_id))
    elif entry.out_port is not None:
        actions.append(parser.OFPActionOutput(entry.out_port))
    instructions = _apply(actions) if actions else []
    if entry.goto_table is not None:
        instructions.append(parser.OFPInstructionGotoTable(entry.goto_table))
    # JSON (the store) turns masked values into lists; OFPMatch wants tuples.
    match = {k: tuple(v) if isinstance(v, list) else v for k, v in entry.match.items()}
    return parser.OFPFlowMod(
        None,
        cookie=entry.cookie,
        table_id=entry.table_id,
        command=ofp.OFPFC_ADD,
        idle_timeout=entry.idle_timeout,
        hard_timeout=entry.hard_timeout,
        priority=entry.priority,
        buffer_id=ofp.OFP_NO_BUFFER,
        flags=ofp.OFPFF_SEND_FLOW_REM,
        match=ordered_match(match),
        instructions=instructions,
    )


# Nicira fields whose prerequisites (eth_type, ip_proto) Open vSwitch checks in wire
# order. os-ken sorts by OXM class, which puts these *first*, and OVS then refuses the
# flow with OFPBMC_BAD_PREREQ; so they go last.
_LAST_FIELDS = ("tcp_flags_nxm",)


def ordered_match(fields: dict[str, Any]) -> parser.OFPMatch:
    """``OFPMatch(**fields)``, with prerequisites before the fields that need them.

    Fields are sorted as os-ken sorts them, except :data:`_LAST_FIELDS`.
    """
    head = sorted((_oxm_field(k, _hashable(v)) for k, v in fields.items()
                   if k not in _LAST_FIELDS), key=lambda field: field[0])
    tail = [_oxm_field(k, _hashable(fields[k])) for k in _LAST_FIELDS if k in fields]
    return parser.OFPMatch(_ordered_fields=[field for _, field in head + tail])


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@functools.lru_cache(maxsize=1 << 16)
def _oxm_field(key: str, value: Any) -> tuple[int, tuple[str, Any]]:
    """One field as ``OFPMatch`` keeps it, and the OXM type it is sorted by.

    Normalising a MAC address through netaddr costs tens of microseconds, and a
    link cut on a 33-switch network re-plans tens of thousands of flows over the
    same few hundred addresses and ports: OFPMatch's own normalising was a third
    of the time the controller's event loop was held (bench/reroute.py).
    """
    n, v, m = ofp.oxm_from_user(*ofp.oxm_normalize_user(key, value))
    return (n[0] if isinstance(n, tuple) else n), ofp.oxm_to_user(n, v, m)


def flow_delete_cookie(cookie: int) -> parser.OFPFlowMod:
    """Delete exactly the flow carrying ``cookie`` (each ST entry has its own), in any table."""
    return parser.OFPFlowMod(
        None,
        cookie=cookie,
        cookie_mask=0xFFFFFFFFFFFFFFFF,
        table_id=ofp.OFPTT_ALL,
        command=ofp.OFPFC_DELETE,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        match=parser.OFPMatch(),
    )


def table_miss(table_id: int) -> parser.OFPFlowMod:
    """Send whatever matches nothing to the controller, whole (no buffering)."""
    actions = [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]
    return parser.OFPFlowMod(
        None,
        table_id=table_id,
        priority=TABLE_MISS_PRIORITY,
        match=parser.OFPMatch(),
        instructions=_apply(actions),
    )


def punt(table_id: int, priority: int, match: dict[str, Any], cookie: int) -> parser.OFPFlowMod:
    """Send matching packets to the controller, whole (no buffering), with no flow-removed."""
    actions = [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]
    return parser.OFPFlowMod(
        None,
        cookie=cookie,
        table_id=table_id,
        command=ofp.OFPFC_ADD,
        priority=priority,
        buffer_id=ofp.OFP_NO_BUFFER,
        match=parser.OFPMatch(**match),
        instructions=_apply(actions),
    )


def table_miss_goto(table_id: int, next_table: int) -> parser.OFPFlowMod:
    """A pipeline stage that lets unmatched packets through to the next table."""
    return parser.OFPFlowMod(
        None,
        table_id=table_id,
        priority=TABLE_MISS_PRIORITY,
        match=parser.OFPMatch(),
        instructions=[parser.OFPInstructionGotoTable(next_table)],
    )


def select_group(group_id: int, buckets: list[tuple[int, int | None]], add: bool = True
                 ) -> parser.OFPGroupMod:
    """A select group: ``(weight, output port or None for no copy)`` per bucket.

    OVS hashes each flow onto one bucket, so a weight is a share of flows.
    """
    ofp_buckets = [
        parser.OFPBucket(weight=weight, watch_port=ofp.OFPP_ANY, watch_group=ofp.OFPG_ANY,
                         actions=[parser.OFPActionOutput(port)] if port is not None else [])
        for weight, port in buckets
    ]
    return parser.OFPGroupMod(None, ofp.OFPGC_ADD if add else ofp.OFPGC_MODIFY,
                              ofp.OFPGT_SELECT, group_id, ofp_buckets)


def ff_group(group_id: int, primary: int, backup: int, add: bool = True,
             arrival_port: int | None = None) -> parser.OFPGroupMod:
    """Fast failover: forward out of ``primary`` while it is live, else ``backup``.

    A detour that turns back the way the packet came (crankback) must say
    IN_PORT: OpenFlow drops a plain output to the port a packet arrived on.
    """
    buckets = []
    for port in (primary, backup):
        out = ofp.OFPP_IN_PORT if port == arrival_port else port
        buckets.append(parser.OFPBucket(watch_port=port, watch_group=ofp.OFPG_ANY,
                                        actions=[parser.OFPActionOutput(out)]))
    return parser.OFPGroupMod(None, ofp.OFPGC_ADD if add else ofp.OFPGC_MODIFY,
                              ofp.OFPGT_FF, group_id, buckets)


def watched_select_group(group_id: int, buckets: list[tuple[int, int]], add: bool = True,
                         arrival_port: int | None = None) -> parser.OFPGroupMod:
    """A select group of ``(weight, port)`` buckets, each watching the port it outputs to.

    OVS hashes each flow (its 5-tuple) onto one bucket, in proportion to the
    weights, and skips a bucket whose watched port is down: a weighted split of
    flows that also fails over in the data plane, as a fast-failover group
    does. As there, output to the arrival port must say IN_PORT.
    """
    ofp_buckets = [
        parser.OFPBucket(weight=weight, watch_port=port, watch_group=ofp.OFPG_ANY,
                         actions=[parser.OFPActionOutput(
                             ofp.OFPP_IN_PORT if port == arrival_port else port)])
        for weight, port in buckets
    ]
    return parser.OFPGroupMod(None, ofp.OFPGC_ADD if add else ofp.OFPGC_MODIFY,
                              ofp.OFPGT_SELECT, group_id, ofp_buckets)


def ff_group_delete(group_id: int) -> parser.OFPGroupMod:
    return parser.OFPGroupMod(None, ofp.OFPGC_DELETE, ofp.OFPGT_FF, group_id, [])


def group_delete(group_id: int) -> parser.OFPGroupMod:
    return parser.OFPGroupMod(None, ofp.OFPGC_DELETE, ofp.OFPGT_SELECT, group_id, [])


def drop_ipv6_multicast(table_id: int) -> parser.OFPFlowMod:
    """IPv6 neighbour chatter from lab hosts is not ours to forward; keep it off the controller."""
    return parser.OFPFlowMod(
        None,
        table_id=table_id,
        priority=IPV6_MULTICAST_DROP_PRIORITY,
        match=parser.OFPMatch(eth_dst=("33:33:00:00:00:00", "ff:ff:00:00:00:00")),
        instructions=[],
    )


def cookie_flow_stats_request(cookie: int) -> parser.OFPFlowStatsRequest:
    """Ask for the counters of exactly the flow carrying ``cookie``."""
    return parser.OFPFlowStatsRequest(
        None, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY,
        cookie, 0xFFFFFFFFFFFFFFFF, parser.OFPMatch(),
    )


def our_flow_stats_request(table_id: int = ofp.OFPTT_ALL) -> parser.OFPFlowStatsRequest:
    """Ask a switch for the flows in our cookie space only."""
    return parser.OFPFlowStatsRequest(
        None,
        0,
        table_id,
        ofp.OFPP_ANY,
        ofp.OFPG_ANY,
        COOKIE_PREFIX,
        COOKIE_MASK,
        parser.OFPMatch(),
    )


def packet_out(out_ports: list[int], data: bytes, in_port: int = ofp.OFPP_CONTROLLER
               ) -> parser.OFPPacketOut:
    actions = [parser.OFPActionOutput(p) for p in out_ports]
    return parser.OFPPacketOut(
        None, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port, actions=actions, data=data
    )


def arp_reply_bytes(
    request_src_mac: str, request_src_ip: str, target_mac: str, target_ip: str
) -> bytes:
    """An ARP reply as the target would send it, for proxy ARP."""
    pkt = packet.Packet()
    pkt.add_protocol(
        ethernet.ethernet(dst=request_src_mac, src=target_mac, ethertype=ether.ETH_TYPE_ARP)
    )
    pkt.add_protocol(
        arp.arp(
            opcode=arp.ARP_REPLY,
            src_mac=target_mac,
            src_ip=target_ip,
            dst_mac=request_src_mac,
            dst_ip=request_src_ip,
        )
    )
    pkt.serialize()
    return bytes(pkt.data)


def is_delete(msg: object) -> bool:
    """A flow or group delete (the "break" of make-before-break)."""
    if isinstance(msg, parser.OFPFlowMod):
        return msg.command in (ofp.OFPFC_DELETE, ofp.OFPFC_DELETE_STRICT)
    if isinstance(msg, parser.OFPGroupMod):
        return bool(msg.command == ofp.OFPGC_DELETE)
    return False


def is_table_change(msg: object) -> bool:
    """A message that changes a switch's tables (worth a barrier before deleting)."""
    return isinstance(msg, parser.OFPFlowMod | parser.OFPGroupMod)
