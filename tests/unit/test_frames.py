"""Packet-ins from hostile hosts: the bounded decoder, os-ken's fixed parsers, and a fuzz run."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from os_ken.lib.packet import ethernet, icmpv6, ipv4, ipv6, packet, tcp, udp
from os_ken.ofproto import ether, inet

from controller import osken_fixes
from controller.forwarding import Forwarder
from controller.frames import decode
from controller.host_table import HostTable
from controller.services.runtime import ServiceRuntime
from controller.services.service import Service, ServiceTable
from controller.signature_table import SignatureTable
from controller.switch_probes import SwitchProber
from lab.hostile_frames import mutate, tcp_option_len0
from tests.unit.fakes import ring_graph
from tests.unit.packets import arp_reply, arp_request, ip, mac, ping

VIP = "10.0.0.100"
KILLER = tcp_option_len0(mac(1), mac(2), ip(1), ip(2))
# Valid frames os-ken 4.2's parser raises on (so the forwarder used to drop them):
# IPv6 with a 16-byte hop-by-hop header (PadN), then an ICMPv6 echo (AssertionError) ...
IPV6_HOP_BY_HOP = bytes.fromhex(
    "333300000001" "000000000001" "86dd"  # Ethernet
    "6000000000180001" "fe800000000000000000000000000001" "ff020000000000000000000000000001"
    "3a01010c000000000000000000000000"  # hop-by-hop: next ICMPv6, 16 bytes, PadN
    "8000000000010001")  # ICMPv6 echo request


def _dhcp_with_non_ascii_server_name() -> bytes:
    """... and a DHCP reply whose server name holds UTF-8 (UnicodeDecodeError)."""
    body = bytearray(b"\x02\x01\x06\x00" + b"\x00" * 232 + b"\x63\x82\x53\x63\x35\x01\x05\xff")
    body[44:50] = "héllo".encode()
    return _serialize(ethernet.ethernet("ff:ff:ff:ff:ff:ff", mac(1), ether.ETH_TYPE_IP),
                      ipv4.ipv4(src=ip(1), dst="255.255.255.255", proto=inet.IPPROTO_UDP),
                      udp.udp(src_port=67, dst_port=68), bytes(body))


def test_decoder_reads_the_killer_frame_as_an_ordinary_tcp_segment():
    frame = decode(KILLER)
    assert frame is not None and frame.l3_ok
    assert (frame.src, frame.dst, frame.src_ip, frame.dst_ip) == (mac(1), mac(2), ip(1), ip(2))
    assert (frame.transport, frame.sport, frame.dport) == ("tcp", 40000, 80)


_OSKEN_PARSE = (
    "import sys; from os_ken.lib.packet import packet; {fix}"
    "p = packet.Packet(bytes.fromhex(sys.argv[1])); print(len(p.protocols))"
)


def _osken_parses(fix: str) -> bool:
    """Does os-ken's own parser finish on the killer frame (in a child: it may never)?"""
    try:
        subprocess.run([sys.executable, "-c", _OSKEN_PARSE.format(fix=fix), KILLER.hex()],
                       check=True, timeout=20, capture_output=True)
    except subprocess.TimeoutExpired:
        return False
    return True


def test_osken_tcp_option_loop_is_bounded_by_the_fix():
    assert _osken_parses("from controller import osken_fixes; osken_fixes.apply(); ")


def test_osken_still_hangs_without_the_fix():
    """The upstream bug this works around (docs/security.md). When this fails, os-ken
    fixed it: drop ``bound_tcp_options``."""
    assert not _osken_parses("")


def test_topology_app_parses_lldp_only_and_never_raises_past_its_handler():
    from os_ken.topology.switches import LLDPPacket

    osken_fixes.apply()
    good = LLDPPacket.lldp_packet(7, 3, "00:00:00:00:00:07", 120)
    assert LLDPPacket.lldp_parse(good) == (7, 3)
    for bad in (KILLER, ping(1, 2), good[:20], good[:14] + b"\xff" * 30, b""):
        with pytest.raises(LLDPPacket.LLDPUnknownFormat):
            LLDPPacket.lldp_parse(bad)


def _forwarder() -> Forwarder:
    graph, _links = ring_graph(4)
    return Forwarder(graph, HostTable(), SignatureTable())


def test_forwarder_carries_the_killer_frame_like_any_other():
    fwd = _forwarder()
    fwd.packet_in(2, 1, arp_reply(2, 1))  # h2 is known
    assert fwd.packet_in(1, 1, KILLER)
    assert fwd.hosts.get(mac(1)).ips == {ip(1)}


def test_a_frame_whose_upper_layers_do_not_decode_is_counted_and_sent_as_plain_l2():
    fwd = _forwarder()
    fwd.packet_in(2, 1, arp_reply(2, 1))
    bad_ipv4 = ping(1, 2)[:14] + b"\x45" + b"\x00" * 3 + b"\x00" * 6  # truncated header
    msgs = fwd.packet_in(1, 1, bad_ipv4)
    assert fwd.stats.malformed == 1 and msgs  # delivered towards h2
    assert fwd.hosts.get(mac(1)).ips == set()  # but nothing learned past Ethernet
    assert fwd.packet_in(1, 1, b"\x00" * 13) == [] and fwd.stats.malformed == 2


def _runtime() -> ServiceRuntime:
    graph, _ = ring_graph(4)
    svc = Service.from_dict({
        "name": "web", "vip": VIP, "port": 80,
        "primary": {"name": "h3", "ip": ip(3), "mac": mac(3)},
        "standbys": [{"name": "h2", "ip": ip(2), "mac": mac(2)}]})
    hosts = HostTable()
    for i in range(1, 5):
        hosts.learn(mac(i), i, 1, ip(i), 0.0)
    return ServiceRuntime(ServiceTable([svc]), SignatureTable(), graph,
                          locate=lambda node: hosts.get(node.mac).dpid)


def test_service_steering_takes_the_killer_frame_to_the_vip_as_a_client_flow():
    rt = _runtime()
    msgs = rt.packet_in(1, 1, tcp_option_len0(mac(1), "02:53:48:00:00:01", ip(1), VIP))
    assert msgs and rt.shadow.entries("web")


# --- fuzzing ------------------------------------------------------------------------------
def _serialize(*protocols: object) -> bytes:
    pkt = packet.Packet()
    for p in protocols:
        pkt.add_protocol(p)
    pkt.serialize()
    return bytes(pkt.data)


def seed_frames() -> list[bytes]:
    """One frame of every kind a switch punts: ARP, IPv4 ICMP/TCP/UDP/DNS/DHCP, VLAN,
    IPv6 with a hop-by-hop header, ICMPv6, LLDP, switch probes, VIP traffic."""
    from os_ken.topology.switches import LLDPPacket

    eth4 = ethernet.ethernet(mac(2), mac(1), ether.ETH_TYPE_IP)
    eth6 = ethernet.ethernet(mac(2), mac(1), ether.ETH_TYPE_IPV6)
    dns_query = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                 b"\x03www\x07example\x03com\x00\x00\x01\x00\x01")
    dhcp = (b"\x02\x01\x06\x00" + b"\x00" * 232 + b"\x63\x82\x53\x63"
            + b"\x35\x01\x05\x0c\x05h\xc3\xa9st\xff")
    frames = [
        arp_request(1, 2), arp_reply(2, 1), ping(1, 2), KILLER,
        tcp_option_len0(mac(1), "02:53:48:00:00:01", ip(1), VIP),
        _serialize(eth4, ipv4.ipv4(src=ip(1), dst=ip(2), proto=inet.IPPROTO_TCP),
                   tcp.tcp(src_port=5555, dst_port=80, bits=tcp.TCP_SYN,
                           option=[tcp.TCPOptionMaximumSegmentSize(1460),
                                   tcp.TCPOptionSACKPermitted(),
                                   tcp.TCPOptionTimestamps(1, 2)])),
        _serialize(eth4, ipv4.ipv4(src=ip(1), dst=VIP, proto=inet.IPPROTO_UDP),
                   udp.udp(src_port=5353, dst_port=53), dns_query),
        _serialize(eth4, ipv4.ipv4(src="0.0.0.0", dst="255.255.255.255",
                                   proto=inet.IPPROTO_UDP),
                   udp.udp(src_port=67, dst_port=68), dhcp),
        _serialize(eth6, ipv6.ipv6(src="fe80::1", dst="ff02::1", nxt=inet.IPPROTO_HOPOPTS,
                                   ext_hdrs=[ipv6.hop_opts(nxt=inet.IPPROTO_ICMPV6)]),
                   icmpv6.icmpv6(type_=icmpv6.ND_NEIGHBOR_SOLICIT,
                                 data=icmpv6.nd_neighbor(dst="fe80::2"))),
        bytes.fromhex(mac(2).replace(":", "") + mac(1).replace(":", "")) + b"\x81\x00\x00\x05"
        + ping(1, 2)[12:],  # VLAN-tagged ping
        LLDPPacket.lldp_packet(1, 2, "00:00:00:00:00:01", 120),
        IPV6_HOP_BY_HOP, _dhcp_with_non_ascii_server_name(),
    ]
    prober = SwitchProber()
    frames += [data for _, _, data in _probe_frames(prober)]
    return frames


def _probe_frames(prober: SwitchProber) -> list[tuple[int, int, bytes]]:
    out = []
    for dpid, msg in prober.probes(2, [2, 3], 0.0):
        out.append((dpid, msg.actions[0].port, bytes(msg.data)))
    return out


@contextmanager
def watchdog(seconds: float, what: Callable[[], str]) -> Iterator[None]:
    """Fail (instead of hanging forever) if the block runs past ``seconds``."""
    def expired(signum: int, frame: object) -> None:
        raise AssertionError(f"no answer within {seconds}s: hung on {what()}")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_fuzzed_packet_ins_never_raise_or_hang():
    """20,000+ mutated frames of every kind through every packet-in handler, fixed seed.

    The watchdog is no timing assertion: the run takes seconds, and only a parser
    that never returns reaches it.
    """
    from os_ken.topology.switches import LLDPPacket

    osken_fixes.apply()
    rng = random.Random(11)
    seeds = seed_frames()
    fwd, rt, prober = _forwarder(), _runtime(), SwitchProber()
    _probe_frames(prober)
    current = [b""]
    count = 0
    with watchdog(300, lambda: current[0].hex()):
        for i in range(20_000):
            frame = mutate(rng, seeds[i % len(seeds)])
            if rng.random() < 0.2:
                frame = mutate(rng, frame)  # some frames twice mutated
            current[0] = frame
            dpid, port = 1 + i % 4, 1 + i % 3
            prober.packet_in(dpid, port, frame, 1.0)
            if rt.packet_in(dpid, port, frame) is None:
                fwd.packet_in(dpid, port, frame)
            try:
                LLDPPacket.lldp_parse(frame)
            except LLDPPacket.LLDPUnknownFormat:
                pass
            count += 1
    assert count == 20_000
    assert fwd.stats.packet_in > 0 and fwd.stats.malformed > 0  # the corpus reached both


@pytest.mark.parametrize("name", ["ipv6-hop-by-hop", "dhcp-non-ascii"])
def test_frames_os_ken_could_not_parse_are_forwarded_not_dropped(name):
    frame = IPV6_HOP_BY_HOP if name == "ipv6-hop-by-hop" else _dhcp_with_non_ascii_server_name()
    with pytest.raises((AssertionError, UnicodeDecodeError)):
        packet.Packet(frame)  # what the forwarder used to parse with, and then dropped
    fwd = _forwarder()
    msgs = fwd.packet_in(1, 1, frame)
    assert msgs and fwd.stats.malformed == 0  # flooded to the edge ports like any broadcast
    rt = _runtime()
    assert rt.packet_in(1, 1, frame) is None  # not a service's: the forwarder's to carry
