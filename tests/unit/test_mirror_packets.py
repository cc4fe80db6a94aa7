"""Decoder: crafted frames decode to the right fields; broken frames raise MalformedPacket only."""

from __future__ import annotations

import random
import struct

import pytest

from mirror import packets as P
from mirror.packets import MalformedPacket, parse, parse_dhcp, parse_dns

C, S = "02:00:00:00:00:01", "02:00:00:00:00:02"


def tcp_frame(payload=b"hello", flags=P.TCP_ACK | P.TCP_PSH, vlan=None, options=b""):
    seg = P.build_tcp(40000, 80, 1000, 2000, flags, payload)
    return P.build_eth(S, C, P.ETH_IPV4, P.build_ipv4("10.0.0.1", "10.0.0.2", 6, seg,
                                                       options=options), vlan=vlan)


def dns_frame():
    msg = P.build_dns(7, "www.example.com", P.DNS_A, response=True, answers=[
        ("www.example.com", P.DNS_CNAME, "edge.example.net", 300),
        ("edge.example.net", P.DNS_A, "93.184.216.34", 60)])
    return P.build_eth(C, S, P.ETH_IPV4, P.build_ipv4("10.0.0.53", "10.0.0.1", 17,
                                                       P.build_udp(53, 5353, msg)))


def test_tcp_fields():
    p = parse(tcp_frame())
    assert (P.mac_str(p.src_mac), P.mac_str(p.dst_mac)) == (C, S)
    assert (P.ip_str(p.src_ip), P.ip_str(p.dst_ip), p.proto) == ("10.0.0.1", "10.0.0.2", 6)
    assert (p.sport, p.dport, p.seq, p.ack) == (40000, 80, 1000, 2000)
    assert p.tcp_flags == P.TCP_ACK | P.TCP_PSH and p.payload_len == 5 and p.payload == b"hello"


def test_vlan_and_ip_options():
    p = parse(tcp_frame(vlan=42, options=b"\x01\x01\x01\x00"))
    assert p.vlan == 42 and p.ethertype == P.ETH_IPV4 and p.sport == 40000 and p.payload_len == 5


def test_ethernet_padding_does_not_count_as_payload():
    p = parse(tcp_frame(payload=b"") + b"\x00" * 6)
    assert p.payload_len == 0


def test_udp_icmp_arp_ipv6():
    u = parse(P.build_eth(S, C, P.ETH_IPV4, P.build_ipv4("10.0.0.1", "10.0.0.2", 17,
                                                         P.build_udp(1000, 2000, b"abc"))))
    assert (u.sport, u.dport, u.payload) == (1000, 2000, b"abc")
    i = parse(P.build_eth(S, C, P.ETH_IPV4, P.build_ipv4("10.0.0.1", "10.0.0.2", 1,
                                                         P.build_icmp(8, 0, 77, 3, b"ping"))))
    assert (i.icmp_type, i.icmp_code, i.icmp_id, i.icmp_seq) == (8, 0, 77, 3)
    a = parse(P.build_eth("ff:ff:ff:ff:ff:ff", C, P.ETH_ARP,
                          P.build_arp(1, C, "10.0.0.1", "00:00:00:00:00:00", "10.0.0.2")))
    assert a.arp_op == 1 and P.ip_str(a.arp_tpa) == "10.0.0.2" and P.mac_str(a.arp_sha) == C
    v6 = parse(P.build_eth(S, C, P.ETH_IPV6, P.build_ipv6("fe80::1", "fe80::2", 6,
                                                          P.build_tcp(1, 2, 0, 0, P.TCP_SYN))))
    assert v6.ip_version == 6 and P.ip_str(v6.dst_ip) == "fe80::2" and v6.tcp_flags == P.TCP_SYN


def test_fragments_are_flagged_not_reassembled():
    first = parse(P.build_eth(S, C, P.ETH_IPV4, P.build_ipv4(
        "10.0.0.1", "10.0.0.2", 17, P.build_udp(1, 2, b"x" * 32), frag=0x2000)))
    assert first.fragment and first.more_fragments and first.frag_offset == 0 and first.sport == 1
    later = parse(P.build_eth(S, C, P.ETH_IPV4, P.build_ipv4(
        "10.0.0.1", "10.0.0.2", 17, b"y" * 16, frag=5)))
    assert later.fragment and later.frag_offset == 40 and later.sport == 0


def test_dns_answers_cname_and_compression():
    p = parse(dns_frame())
    m = parse_dns(p.payload)
    assert m.is_response and m.rcode_name == "NOERROR"
    assert m.questions == [("www.example.com", P.DNS_A)]
    assert [(r.type_name, r.data, r.ttl) for r in m.answers] == [
        ("CNAME", "edge.example.net", 300), ("A", "93.184.216.34", 60)]


def test_dns_nxdomain_with_soa_minimum_and_aaaa():
    m = parse_dns(P.build_dns(1, "nope.example", P.DNS_AAAA, response=True, rcode=3,
                              soa_minimum=30))
    assert m.rcode_name == "NXDOMAIN" and m.authority[0].soa_minimum == 30
    m6 = parse_dns(P.build_dns(2, "v6.example", P.DNS_AAAA, response=True,
                               answers=[("v6.example", P.DNS_AAAA, "2001:db8::1", 10)]))
    assert m6.answers[0].data == "2001:db8::1"


def test_dns_pointer_loop_and_forward_pointer_refused():
    hdr = struct.pack("!HHHHHH", 1, 0x8180, 1, 0, 0, 0)
    with pytest.raises(MalformedPacket, match="backwards"):
        parse_dns(hdr + b"\xc0\x0c" + b"\x00\x01\x00\x01")  # points at itself
    with pytest.raises(MalformedPacket):
        parse_dns(hdr + b"\x03abc\xc0\x0c\x00\x01\x00\x01")  # loops back to its own start


def test_dhcp_ack_options():
    m = parse_dhcp(P.build_dhcp(2, 5, C, "10.0.0.9", "255.255.255.0", "10.0.0.254", 3600))
    assert (m.msg_type, m.yiaddr, m.subnet_mask, m.routers, m.lease_time) == (
        5, "10.0.0.9", "255.255.255.0", ["10.0.0.254"], 3600)
    assert P.mac_str(m.chaddr) == C


@pytest.mark.parametrize("frame", [tcp_frame(), dns_frame(), tcp_frame(vlan=7)])
def test_every_prefix_is_parsed_or_refused_cleanly(frame):
    for n in range(len(frame)):
        try:
            p = parse(frame[:n])
            if p.proto == 17 and p.sport == 53:
                parse_dns(p.payload)
        except MalformedPacket as exc:
            assert exc.reason


def test_truncated_frames_refused_with_reason():
    with pytest.raises(MalformedPacket, match="ethernet"):
        parse(b"\x00" * 10)
    with pytest.raises(MalformedPacket, match="ipv4"):
        parse(tcp_frame()[:20])
    bad_version = bytearray(tcp_frame())
    bad_version[14] = 0x65
    with pytest.raises(MalformedPacket, match="version"):
        parse(bytes(bad_version))


def test_random_bytes_and_bit_flips_never_escape_as_other_errors():
    rng = random.Random(1234)
    seeds = [tcp_frame(), dns_frame(), P.build_eth(C, S, P.ETH_IPV4, P.build_ipv4(
        "10.0.0.254", "10.0.0.9", 17, P.build_udp(67, 68, P.build_dhcp(
            2, 5, C, "10.0.0.9", "255.255.255.0", "10.0.0.254", 60))))]
    decoded = refused = 0
    for i in range(20000):
        if i % 2:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 120)))
        else:
            data = bytearray(rng.choice(seeds))
            for _ in range(rng.randrange(1, 6)):
                data[rng.randrange(len(data))] = rng.getrandbits(8)
            data = bytes(data)
        try:
            p = parse(data)
            if p.proto == 17 and 53 in (p.sport, p.dport):
                parse_dns(p.payload)
            elif p.proto == 17 and p.dport in (67, 68):
                parse_dhcp(p.payload)
            decoded += 1
        except MalformedPacket:
            refused += 1
    assert decoded and refused


def test_address_helpers_reject_garbage():
    with pytest.raises(ValueError):
        P.mac_bytes("zz:00")
    with pytest.raises(ValueError):
        P.ip_bytes("10.0.0")
