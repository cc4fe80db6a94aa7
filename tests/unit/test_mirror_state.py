"""NamespaceState through SyncEngine: ARP, routes, DNS, changes, snapshot, engine robustness."""

from __future__ import annotations

import json

from mirror import packets as P
from mirror.engine import SyncEngine

C, GW, PEER, EVIL = ("02:00:00:00:00:01", "02:00:00:00:00:fe", "02:00:00:00:00:02",
                     "02:00:00:00:00:66")
BCAST, ZERO = "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00"


def engine(**kw):
    changes = []
    e = SyncEngine(C, ["10.0.0.1"], on_change=changes.append, **kw)
    return e, changes


def arp(op, sha, spa, tha, tpa, dst=BCAST):
    return P.build_eth(dst, sha, P.ETH_ARP, P.build_arp(op, sha, spa, tha, tpa))


def udp(src_mac, dst_mac, src, dst, sport, dport, payload):
    return P.build_eth(dst_mac, src_mac, P.ETH_IPV4,
                       P.build_ipv4(src, dst, 17, P.build_udp(sport, dport, payload)))


def tcp_syn(dst_ip, dst_mac, sport=40000, dport=443):
    return P.build_eth(dst_mac, C, P.ETH_IPV4, P.build_ipv4(
        "10.0.0.1", dst_ip, 6, P.build_tcp(sport, dport, 1, 0, P.TCP_SYN)))


def test_arp_learning_matches_what_the_kernel_learns():
    e, changes = engine()
    e.feed(arp(2, PEER, "10.0.0.2", C, "10.0.0.1", dst=C), 1.0)  # reply to us
    e.feed(arp(1, GW, "10.0.0.254", ZERO, "10.0.0.1"), 2.0)  # someone asks for our IP
    e.feed(arp(1, "02:00:00:00:00:07", "10.0.0.7", ZERO, "10.0.0.7"), 3.0)  # gratuitous
    e.feed(arp(1, "02:00:00:00:00:08", "10.0.0.8", ZERO, "10.0.0.9"), 4.0)  # not about us
    e.feed(arp(1, C, "10.0.0.1", ZERO, "10.0.0.2"), 5.0)  # our own request
    e.feed(arp(1, "02:00:00:00:00:09", "0.0.0.0", ZERO, "10.0.0.1"), 6.0)  # ARP probe
    arp_table = {a["ip"]: (a["mac"], a["source"]) for a in e.snapshot()["arp"]}
    assert arp_table == {"10.0.0.2": (PEER, "reply"), "10.0.0.254": (GW, "request"),
                         "10.0.0.7": ("02:00:00:00:00:07", "gratuitous")}
    assert [(c.kind, c.action, c.key) for c in changes] == [
        ("arp", "add", "10.0.0.2"), ("arp", "add", "10.0.0.254"), ("arp", "add", "10.0.0.7")]


def test_known_ip_changing_mac_is_an_update_with_previous_mac():
    e, changes = engine()
    e.feed(arp(2, PEER, "10.0.0.2", C, "10.0.0.1", dst=C), 1.0)
    e.feed(arp(2, PEER, "10.0.0.2", C, "10.0.0.1", dst=C), 2.0)  # refresh: no change
    e.feed(arp(2, EVIL, "10.0.0.2", C, "10.0.0.1", dst=C), 3.0)
    assert [c.action for c in changes] == ["add", "update"]
    assert changes[-1].value["mac"] == EVIL and changes[-1].value["previous_mac"] == PEER
    assert list(e.state.mac_changes) == [
        {"ts": 3.0, "ip": "10.0.0.2", "old_mac": PEER, "new_mac": EVIL}]


def test_dhcp_ack_sets_address_subnet_and_default_route():
    e, changes = engine()
    ack = P.build_dhcp(2, 5, C, "10.0.0.1", "255.255.255.0", "10.0.0.254", 3600)
    e.feed(udp(GW, BCAST, "10.0.0.254", "255.255.255.255", 67, 68, ack), 10.0)
    routes = {r["dst"]: r for r in e.snapshot()["routes"]}
    assert routes["10.0.0.0/24"]["source"] == "dhcp"
    assert routes["default"]["gateway"] == "10.0.0.254"
    assert routes["default"]["lease_expires"] == 3610.0
    assert {c.kind for c in changes} == {"route"} and e.stats.protocols["dhcp"] == 1
    # Off-subnet traffic through another MAC must not override the DHCP route.
    e.feed(tcp_syn("1.1.1.1", PEER), 11.0)
    assert e.state.routes["default"]["gateway"] == "10.0.0.254"


def test_gateway_inferred_from_off_subnet_traffic():
    e, changes = engine(subnet="10.0.0.0/24")
    e.feed(tcp_syn("10.0.0.2", PEER), 1.0)  # on-link: not a gateway
    assert set(e.state.routes) == {"10.0.0.0/24"}
    e.feed(tcp_syn("8.8.8.8", GW), 2.0)
    assert e.state.routes["default"] == {"dst": "default", "gateway": None, "gateway_mac": GW,
                                         "scope": "global", "source": "traffic"}
    e.feed(arp(2, GW, "10.0.0.254", C, "10.0.0.1", dst=C), 3.0)
    assert e.state.routes["default"]["gateway"] == "10.0.0.254"
    route_changes = [(c.action, c.key, c.ts) for c in changes if c.kind == "route"]
    assert route_changes == [("add", "10.0.0.0/24", 1.0), ("add", "default", 2.0),
                             ("update", "default", 3.0)]


def test_gateway_inferred_without_subnet_from_a_mac_fronting_many_ips():
    e, _ = engine()
    e.feed(tcp_syn("10.0.0.2", PEER), 1.0)
    e.feed(tcp_syn("1.1.1.1", GW), 1.1)
    assert "default" not in e.state.routes
    e.feed(tcp_syn("8.8.8.8", GW), 1.2)
    assert e.state.routes["default"]["gateway_mac"] == GW


def dns_response(qname, rcode=0, answers=(), soa=None, qtype=P.DNS_A):
    msg = P.build_dns(1, qname, qtype, response=True, rcode=rcode, answers=list(answers),
                      soa_minimum=soa)
    return udp(GW, C, "10.0.0.254", "10.0.0.1", 53, 33333, msg)


def test_dns_cache_nxdomain_and_ttl_expiry():
    e, changes = engine()
    q = P.build_dns(1, "a.example", P.DNS_A)
    e.feed(udp(C, GW, "10.0.0.1", "10.0.0.254", 33333, 53, q), 0.5)
    e.feed(dns_response("a.example", answers=[("a.example", P.DNS_CNAME, "b.example", 300),
                                              ("b.example", P.DNS_A, "192.0.2.7", 30)]), 1.0)
    e.feed(dns_response("missing.example", rcode=3, soa=5), 1.5)
    snap = e.snapshot()
    dns = {d["name"]: d for d in snap["dns"]}
    assert dns["a.example"]["ttl"] == 30 and dns["a.example"]["answers"][1]["data"] == "192.0.2.7"
    assert dns["missing.example"]["rcode"] == "NXDOMAIN" and dns["missing.example"]["ttl"] == 5
    assert (e.state.dns_queries, e.state.dns_responses, e.state.dns_nxdomain) == (1, 2, 1)
    e.expire(10.0)
    assert set(e.state.dns) == {"a.example A"}
    e.expire(31.0)
    assert not e.state.dns
    assert [(c.action, c.key) for c in changes if c.kind == "dns"] == [
        ("add", "a.example A"), ("add", "missing.example A"),
        ("remove", "missing.example A"), ("remove", "a.example A")]


def test_snapshot_is_json_and_has_the_four_sections():
    e, _ = engine()
    e.feed(tcp_syn("10.0.0.2", PEER), 1.0)
    snap = json.loads(json.dumps(e.snapshot()))
    assert {"arp", "routes", "connections", "dns"} <= set(snap)
    assert snap["connections"][0]["state"] == "SYN_SENT"
    assert snap["container"] == {"mac": C, "ips": ["10.0.0.1"]}


def test_engine_counts_malformed_fragments_vlan_and_foreign_without_raising():
    e, _ = engine()
    e.feed(b"\x00" * 5, 1.0)
    e.feed(tcp_syn("10.0.0.2", PEER)[:30], 1.0)
    e.feed(P.build_eth(PEER, C, P.ETH_IPV4, P.build_ipv4("10.0.0.1", "10.0.0.2", 17, b"z" * 20,
                                                         frag=3)), 1.1)
    e.feed(P.build_eth(PEER, C, P.ETH_IPV4, P.build_ipv4(
        "10.0.0.1", "10.0.0.2", 6, P.build_tcp(1, 2, 0, 0, P.TCP_SYN)), vlan=5), 1.2)
    e.feed(P.build_eth(PEER, GW, P.ETH_IPV4, P.build_ipv4(
        "10.0.0.9", "10.0.0.2", 6, P.build_tcp(1, 2, 0, 0, P.TCP_SYN))), 1.3)
    s = e.stats.as_dict()
    assert s["packets"] == 5 and s["malformed"] == 2 and s["foreign"] == 1
    assert s["malformed_reasons"] == {"ethernet: truncated header": 1, "ipv4: truncated header": 1}
    assert s["protocols"]["ipv4-fragment"] == 1 and s["protocols"]["tcp"] == 1
    assert s["last_ts"] == 1.3


def test_engine_survives_a_bug_in_state_and_counts_it(monkeypatch):
    e, _ = engine()

    def boom(*a, **k):
        raise RuntimeError("bug")

    monkeypatch.setattr(e.state, "observe_arp", boom)
    e.feed(arp(2, PEER, "10.0.0.2", C, "10.0.0.1", dst=C), 1.0)
    e.feed(tcp_syn("10.0.0.2", PEER), 1.1)
    assert e.stats.errors == 1 and e.stats.protocols["tcp"] == 1


def test_windowed_deltas_come_from_per_second_samples():
    e, _ = engine()
    for i in range(10):
        e.feed(tcp_syn("10.0.0.2", PEER, sport=1000 + i), float(i))
    # Samples are taken before the first packet of each second: a 3 s window at t=9
    # covers the packets of t=6..9.
    assert e.stats.delta("tcp_syns", 3.0) == 4
    assert e.stats.delta("tcp_syns", 100.0) == 10


def _exchange(options: bytes = b""):
    """A whole TCP connection from the container, with ``options`` in every IPv4 header."""
    def seg(out, seq, ack, flags, payload=b""):
        src, dst, sm, dm = ("10.0.0.1", "10.0.0.2", C, PEER) if out else (
            "10.0.0.2", "10.0.0.1", PEER, C)
        sp, dp = (40000, 80) if out else (80, 40000)
        return P.build_eth(dm, sm, P.ETH_IPV4, P.build_ipv4(
            src, dst, 6, P.build_tcp(sp, dp, seq, ack, flags, payload), options=options))
    return [seg(True, 100, 0, P.TCP_SYN), seg(False, 500, 101, P.TCP_SYN | P.TCP_ACK),
            seg(True, 101, 501, P.TCP_ACK), seg(True, 101, 501, P.TCP_ACK, b"GET"),
            seg(True, 101, 501, P.TCP_ACK, b"GET"),  # a retransmission
            seg(False, 501, 104, P.TCP_ACK, b"200 OK"), seg(True, 104, 507, P.TCP_FIN | P.TCP_ACK),
            seg(False, 507, 105, P.TCP_FIN | P.TCP_ACK), seg(True, 105, 508, P.TCP_ACK)]


def test_the_tcp_fast_path_and_the_full_decoder_build_the_same_connection():
    """Plain IPv4 takes the engine's one-unpack path; IPv4 with options the full decoder."""
    views = []
    for options in (b"", b"\x01\x01\x01\x00"):  # NOPs and an end-of-options
        e, _ = engine()
        for i, frame in enumerate(_exchange(options)):
            e.feed(frame, 1.0 + i / 100)
        (conn,) = e.snapshot()["connections"]
        for side in ("orig", "resp"):
            conn[side].pop("bytes")  # the options add 4 bytes to every frame
        views.append(conn)
    assert views[0] == views[1]
    assert views[0]["state"] == "TIME_WAIT" and views[0]["orig"]["retransmissions"] == 1


def test_an_odd_tcp_header_on_the_fast_path_is_refused_by_the_full_decoder():
    e, _ = engine()
    frame = bytearray(tcp_syn("10.0.0.2", PEER))
    frame[14 + 20 + 12] = 3 << 4  # data offset 12 bytes: below the 20-byte minimum
    e.feed(bytes(frame), 1.0)
    assert e.stats.malformed_reasons == {"tcp: bad data offset": 1}
    assert not e.snapshot()["connections"]
