"""Build test frames with os-ken's packet library."""

from __future__ import annotations

from os_ken.lib.packet import arp, ethernet, icmp, ipv4, packet
from os_ken.ofproto import ether, inet


def mac(i: int) -> str:
    return f"00:00:00:00:00:{i:02x}"


def ip(i: int) -> str:
    return f"10.0.0.{i}"


def arp_request(src: int, dst: int) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet("ff:ff:ff:ff:ff:ff", mac(src), ether.ETH_TYPE_ARP))
    pkt.add_protocol(arp.arp(opcode=arp.ARP_REQUEST, src_mac=mac(src), src_ip=ip(src),
                             dst_mac="00:00:00:00:00:00", dst_ip=ip(dst)))
    pkt.serialize()
    return bytes(pkt.data)


def arp_reply(src: int, dst: int) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(mac(dst), mac(src), ether.ETH_TYPE_ARP))
    pkt.add_protocol(arp.arp(opcode=arp.ARP_REPLY, src_mac=mac(src), src_ip=ip(src),
                             dst_mac=mac(dst), dst_ip=ip(dst)))
    pkt.serialize()
    return bytes(pkt.data)


def ping(src: int, dst: int) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(mac(dst), mac(src), ether.ETH_TYPE_IP))
    pkt.add_protocol(ipv4.ipv4(src=ip(src), dst=ip(dst), proto=inet.IPPROTO_ICMP))
    pkt.add_protocol(icmp.icmp(data=icmp.echo(id_=1, seq=1, data=b"x" * 8)))
    pkt.serialize()
    return bytes(pkt.data)
