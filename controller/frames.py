"""Packet-ins as the controller reads them: a bounded decoder, never os-ken's parser.

Any host can put any bytes on the wire, and the controller reads every frame
a switch punts to it. os-ken's packet library builds an object per header and
has had parser loops that a crafted frame never leaves (a TCP option of
length 0, see ``docs/security.md``); under the eventlet hub one such loop
stops every green thread: no OpenFlow, no LLDP, no REST. So packet-ins go
through the mirror engine's decoder (:func:`mirror.packets.parse`), which
reads fixed offsets with ``struct``, follows no length field without checking
it, and raises exactly one exception. :func:`decode` then keeps what
forwarding, steering and mirror policy look at.

A frame whose Ethernet header is whole but whose upper layers do not decode
is still a frame: it comes back with ``l3_ok`` false and no addresses, so the
forwarder can count it and pass it on as plain L2 without learning from it.
Only a frame shorter than an Ethernet header gives ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mirror.packets import (
    ETH_ARP,
    ETH_IPV4,
    PROTO_TCP,
    PROTO_UDP,
    MalformedPacket,
    ip_str,
    mac_str,
    parse,
)

ARP_REQUEST = 1
ARP_REPLY = 2


@dataclass(frozen=True, slots=True)
class Frame:
    """The fields of one packet-in the controller acts on (addresses as text)."""

    src: str  # Ethernet source, lower case
    dst: str
    ethertype: int  # after VLAN tags
    l3_ok: bool = True  # False: the headers past Ethernet did not decode
    arp_op: int = 0
    arp_src_ip: str | None = None
    arp_dst_ip: str | None = None
    ip_version: int = 0
    src_ip: str | None = None
    dst_ip: str | None = None
    ip_proto: int = -1
    sport: int | None = None  # TCP/UDP ports, where the frame has them
    dport: int | None = None
    malformed: str | None = None  # why the upper layers did not decode

    @property
    def is_arp(self) -> bool:
        return self.arp_op != 0

    @property
    def transport(self) -> str | None:
        """``"tcp"`` or ``"udp"`` for IPv4 TCP/UDP frames with their ports, else None."""
        if self.ip_version != 4 or self.sport is None:
            return None
        return {PROTO_TCP: "tcp", PROTO_UDP: "udp"}.get(self.ip_proto)

    def policy_fields(self) -> dict[str, Any]:
        """The fields mirror policy matches (:func:`controller.mirroring.frame_selected`)."""
        fields: dict[str, Any] = {"eth_type": self.ethertype}
        if self.ip_version == 4:
            fields.update(ip_proto=self.ip_proto, src_ip=self.src_ip, dst_ip=self.dst_ip)
            if self.sport is not None:
                fields.update(sport=self.sport, dport=self.dport)
        return fields


def decode(data: bytes) -> Frame | None:
    """The :class:`Frame` in ``data``; None if it is shorter than an Ethernet header.

    Never raises and never loops: the work is bounded by the frame's length.
    """
    data = bytes(data)
    if len(data) < 14:
        return None
    try:
        p = parse(data)
    except MalformedPacket as exc:
        etype = int.from_bytes(data[12:14], "big")
        return Frame(mac_str(data[6:12]), mac_str(data[0:6]), etype, l3_ok=False,
                     malformed=exc.reason)
    src, dst = mac_str(p.src_mac), mac_str(p.dst_mac)
    if p.ethertype == ETH_ARP:
        return Frame(src, dst, p.ethertype, arp_op=p.arp_op, arp_src_ip=ip_str(p.arp_spa),
                     arp_dst_ip=ip_str(p.arp_tpa))
    if p.ip_version:
        ports = p.proto in (PROTO_TCP, PROTO_UDP) and not p.frag_offset
        return Frame(src, dst, p.ethertype, ip_version=p.ip_version, src_ip=ip_str(p.src_ip),
                     dst_ip=ip_str(p.dst_ip), ip_proto=p.proto,
                     sport=p.sport if ports else None, dport=p.dport if ports else None)
    return Frame(src, dst, p.ethertype)


__all__ = ["ARP_REPLY", "ARP_REQUEST", "ETH_ARP", "ETH_IPV4", "Frame", "decode"]
