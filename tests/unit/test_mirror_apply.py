"""NamespaceApplier against a real ``snt-`` network namespace (needs root and ``ip netns``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

from mirror import packets as P
from mirror.apply import NamespaceApplier
from mirror.engine import SyncEngine
from mirror.state import StateChange

C, S, GW = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:fe"

needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("conntrack"),
    reason="needs root, iproute2 and conntrack")


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def netns():
    name = f"snt-t{uuid.uuid4().hex[:8]}"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "add", "snt-m0", "type", "veth", "peer", "name", "snt-m1")
        sh("ip", "-n", name, "link", "set", "snt-m0", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def engine_with_state() -> SyncEngine:
    e = SyncEngine(C, ["10.0.0.1"], subnet="10.0.0.0/24")

    def tcp(out, flags, seq, ack):
        src, dst, sm, dm = (("10.0.0.1", "10.0.0.2", C, S) if out else
                            ("10.0.0.2", "10.0.0.1", S, C))
        ports = (40000, 80) if out else (80, 40000)
        return P.build_eth(dm, sm, P.ETH_IPV4, P.build_ipv4(src, dst, 6, P.build_tcp(
            *ports, seq, ack, flags)))

    frames = [
        P.build_eth(C, S, P.ETH_ARP, P.build_arp(2, S, "10.0.0.2", C, "10.0.0.1")),
        P.build_eth(C, GW, P.ETH_ARP, P.build_arp(2, GW, "10.0.0.254", C, "10.0.0.1")),
        tcp(True, P.TCP_SYN, 0, 0), tcp(False, P.TCP_SYN | P.TCP_ACK, 0, 1),
        tcp(True, P.TCP_ACK, 1, 1),
        P.build_eth(GW, C, P.ETH_IPV4, P.build_ipv4("10.0.0.1", "8.8.8.8", 17,
                                                    P.build_udp(5000, 53, b"\0" * 12))),
        P.build_eth(GW, C, P.ETH_IPV4, P.build_ipv4("10.0.0.1", "1.1.1.1", 1,
                                                    P.build_icmp(8, 0, 77, 1))),
    ]
    for i, f in enumerate(frames):
        e.feed(f, 100.0 + i / 10)
    return e


@needs_netns
def test_sync_snapshot_into_namespace_then_updates_and_removals(netns):
    e = engine_with_state()
    snap = e.snapshot()
    with NamespaceApplier(netns, "snt-m0") as ap:
        ap.sync(snap)
        ap.sync(snap)  # idempotent: a second sync changes nothing and fails nothing
        assert ap.stats["failed"] == 0, ap.stats
        assert "inet 10.0.0.1/24" in sh("ip", "-n", netns, "addr", "show", "dev", "snt-m0")
        neigh = sh("ip", "-n", netns, "neigh", "show", "dev", "snt-m0")
        assert f"10.0.0.2 lladdr {S} PERMANENT" in neigh
        assert f"10.0.0.254 lladdr {GW} PERMANENT" in neigh
        routes = sh("ip", "-n", netns, "route")
        assert "default via 10.0.0.254 dev snt-m0" in routes
        assert "10.0.0.0/24 dev snt-m0" in routes
        ct = sh("ip", "netns", "exec", netns, "conntrack", "-L")
        assert ("ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 src=10.0.0.2 "
                "dst=10.0.0.1 sport=80 dport=40000 [ASSURED]") in ct
        assert "udp" in ct and "dport=53" in ct and "id=77" in ct

        # Live changes: the neighbour moves, the connection closes, an entry disappears.
        flow = snap["connections"][0]
        assert ap.apply(StateChange(101.0, "arp", "update", "10.0.0.2",
                                    {"ip": "10.0.0.2", "mac": "02:00:00:00:00:66"}))
        assert ap.apply(StateChange(101.0, "connection", "update",
                                    "tcp 10.0.0.1:40000 > 10.0.0.2:80",
                                    {**flow, "state": "TIME_WAIT"}))
        assert "02:00:00:00:00:66" in sh("ip", "-n", netns, "neigh")
        assert "TIME_WAIT" in sh("ip", "netns", "exec", netns, "conntrack", "-L", "-p", "tcp")
        smaller = {**snap, "arp": [a for a in snap["arp"] if a["ip"] != "10.0.0.254"],
                   "connections": [c for c in snap["connections"] if c["proto"] != "udp"]}
        ap.sync(smaller)
        assert "10.0.0.254" not in sh("ip", "-n", netns, "neigh")
        assert "udp" not in sh("ip", "netns", "exec", netns, "conntrack", "-L")
        assert ap.stats["failed"] == 0 and ap.stats["removed"] == 2


@needs_netns
def test_failures_are_counted_not_raised(netns, tmp_path):
    ap = NamespaceApplier(netns, "snt-nope")
    ok = ap.apply(StateChange(1.0, "arp", "add", "10.0.0.2", {"ip": "10.0.0.2", "mac": S}))
    assert not ok and ap.stats["failed"] == 1
    ap.close()
    ap = NamespaceApplier(netns, "snt-m0", etc_dir=tmp_path)
    bad = {"proto": "tcp", "orig_ip": "10.0.0.1", "resp_ip": "not-an-ip", "orig_port": 1,
           "resp_port": 2, "state": "ESTABLISHED"}
    assert not ap.apply(StateChange(1.0, "connection", "add", "x", bad))
    assert ap.apply(StateChange(1.0, "dns", "add", "a.example A", {"answers": []}))
    assert ap.apply(StateChange(1.0, "mystery", "add", "x", {}))  # not ours: skipped
    assert ap.stats == {"applied": 1, "removed": 0, "failed": 1, "skipped": 1}
    ap.close()


def test_applier_rejects_unknown_nud():
    with pytest.raises(ValueError, match="nud"):
        NamespaceApplier("snt-x", "eth0", nud="forever")


@needs_netns
def test_ctnetlink_client_create_update_delete(netns):
    """The raw ctnetlink client against the kernel: the errors the applier relies on."""
    import threading

    from mirror.capture import enter_netns
    from mirror.ctnetlink import CtNetlink, CtNetlinkError, Tuple

    errors: list[int] = []

    def run() -> None:
        enter_netns(netns)  # this thread only
        ct = CtNetlink()
        orig = Tuple("10.0.0.1", "10.0.0.2", 6, 40000, 80)
        reply = Tuple("10.0.0.2", "10.0.0.1", 6, 80, 40000)
        ct.create(orig, reply, 0xE, 300, tcp_state=3)
        try:
            ct.create(orig, reply, 0xE, 300, tcp_state=3)
        except CtNetlinkError as exc:
            errors.append(exc.errno)
        ct.update(orig, 100, tcp_state=7)
        ping = Tuple("10.0.0.1", "10.0.0.9", 1, 77, icmp_type=8)
        ct.create(ping, Tuple("10.0.0.9", "10.0.0.1", 1, 77, icmp_type=0), 0x8, 30)
        errors.append(-1)  # marks: all calls above returned
        ct.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert errors == [17, -1]  # EEXIST on the second create
    listing = sh("ip", "netns", "exec", netns, "conntrack", "-L")
    assert "TIME_WAIT" in listing and "sport=40000 dport=80" in listing
    assert "icmp" in listing and "id=77" in listing

    def delete_twice() -> None:
        enter_netns(netns)
        ct = CtNetlink()
        ct.delete(Tuple("10.0.0.1", "10.0.0.2", 6, 40000, 80))
        try:
            ct.delete(Tuple("10.0.0.1", "10.0.0.2", 6, 40000, 80))
        except CtNetlinkError as exc:
            errors.append(exc.errno)
        ct.close()

    thread = threading.Thread(target=delete_twice)
    thread.start()
    thread.join(10)
    assert errors[-1] == 2  # ENOENT
    assert "sport=40000" not in sh("ip", "netns", "exec", netns, "conntrack", "-L")


def test_dns_answers_become_the_mirror_namespaces_hosts_file(tmp_path):
    """`ip netns exec` bind-mounts /etc/netns/<ns>/hosts: libc lookups in the mirror see
    what the container was told (A/AAAA within TTL; NXDOMAIN leaves no line)."""
    from mirror.apply import NamespaceApplier
    from mirror.state import StateChange

    ap = NamespaceApplier("snm-web", "mirror0", etc_dir=tmp_path)
    www = {"name": "www.example.", "type": "A", "rcode": "NOERROR",
           "answers": [{"type": "CNAME", "name": "www.example.", "data": "edge.example.",
                        "ttl": 60},
                       {"type": "A", "name": "edge.example.", "data": "192.0.2.7", "ttl": 60}]}
    v6 = {"name": "www.example.", "type": "AAAA", "rcode": "NOERROR",
          "answers": [{"type": "AAAA", "name": "www.example.", "data": "2001:db8::7",
                       "ttl": 60}]}
    gone = {"name": "nope.example.", "type": "A", "rcode": "NXDOMAIN", "answers": []}
    for key, value in (("www.example. A", www), ("www.example. AAAA", v6),
                       ("nope.example. A", gone)):
        assert ap.apply(StateChange(1.0, "dns", "add", key, value))
    lines = (tmp_path / "hosts").read_text().splitlines()
    assert "192.0.2.7\twww.example" in lines and "2001:db8::7\twww.example" in lines
    assert "127.0.0.1\tlocalhost" in lines and not any("nope" in line for line in lines)
    ap.apply(StateChange(70.0, "dns", "remove", "www.example. A", www))  # its TTL ran out
    lines = (tmp_path / "hosts").read_text().splitlines()
    assert "192.0.2.7\twww.example" not in lines and "2001:db8::7\twww.example" in lines
    assert ap.stats["failed"] == 0 and ap.stats["applied"] == 3
