"""Elephant shunting: which connections to shunt/unshunt, and folding switch counters back."""

from __future__ import annotations

import socket

import pytest

from mirror.shunt_policy import Shunter, ShuntKey, ShuntPolicy
from mirror.tcp_state import ACK, BUSY_PACKETS, FIN, RST, SYN, ConnectionTable

L, R = socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2")
KEY = (6, L, 40000, R, 5201)
SK = ShuntKey("10.0.0.1", 40000, "10.0.0.2", 5201)


def established(table: ConnectionTable, key: tuple = KEY, local_is_orig: bool = True,
                ts: float = 0.0):
    """SYN, SYN-ACK, ACK; the container originates when ``local_is_orig``."""
    o = local_is_orig
    table.tcp(key, o, SYN, 100, 0, 0, 74, ts)
    table.tcp(key, not o, SYN | ACK, 500, 101, 0, 74, ts)
    f = table.tcp(key, o, ACK, 101, 501, 0, 66, ts)
    assert f.state == "ESTABLISHED" and f.local_is_orig is local_is_orig
    return f


def data(table: ConnectionTable, n: int, key: tuple = KEY, ts: float = 0.0) -> None:
    """``n`` data segments from the container (counts are all the rate needs)."""
    for i in range(n):
        table.tcp(key, True, ACK, 101 + i * 1000, 501, 1000, 1066, ts)


def shunter(min_pps: float = 100.0, enabled: bool = True) -> Shunter:
    return Shunter(ShuntPolicy(enabled=enabled, min_pps=min_pps))


def row(id_: str = SK.id, op: int = 0, ob: int = 0, ip: int = 0, ib: int = 0) -> dict:
    return {"id": id_, "out": {"packets": op, "bytes": ob}, "in": {"packets": ip, "bytes": ib}}


def pending_setup(local_is_orig: bool = True):
    """A busy connection the shunter has asked for, with no answer yet."""
    t = ConnectionTable()
    f = established(t, local_is_orig=local_is_orig)
    s = shunter()
    s.plan(t.flows, 0.0)
    data(t, 200)
    add, _ = s.plan(t.flows, 1.0)
    assert add == [SK]
    return t, f, s


def shunted_setup(local_is_orig: bool = True):
    t, f, s = pending_setup(local_is_orig)
    s.accepted(SK)
    return t, f, s


# -- ShuntKey / ShuntPolicy --------------------------------------------------------------------


def test_shunt_key_id_body_of():
    t = ConnectionTable()
    f = established(t)
    assert ShuntKey.of(f) == SK
    assert SK.id == "10.0.0.1:40000-10.0.0.2:5201"
    assert SK.body() == {"local_ip": "10.0.0.1", "local_port": 40000,
                         "remote_ip": "10.0.0.2", "remote_port": 5201}


def test_shunt_key_of_inbound_and_ipv6():
    t = ConnectionTable()
    la, ra = socket.inet_pton(socket.AF_INET6, "fd00::1"), socket.inet_pton(
        socket.AF_INET6, "fd00::2")
    f = established(t, key=(6, la, 5201, ra, 51000), local_is_orig=False)
    k = ShuntKey.of(f)
    assert k == ShuntKey("fd00::1", 5201, "fd00::2", 51000)
    assert k.id == "fd00::1:5201-fd00::2:51000"


def test_shunt_key_of_rejects_udp():
    t = ConnectionTable()
    f = t.datagram(17, (17, L, 5353, R, 5353), True, 100, 58, 0.0)
    with pytest.raises(ValueError):
        ShuntKey.of(f)


def test_policy_defaults_and_validation():
    p = ShuntPolicy()
    assert p.enabled and p.min_pps == 2000.0
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="min_pps"):
            ShuntPolicy(min_pps=bad)


# -- plan ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("extra,added", [(99, False), (100, True), (150, True)])
def test_rate_threshold(extra, added):
    t = ConnectionTable()
    established(t)
    s = shunter(min_pps=50.0)
    assert s.plan(t.flows, 10.0) == ([], [])
    data(t, extra)
    add, rem = s.plan(t.flows, 12.0)  # extra packets over 2 s against 50 pps
    assert (add == [SK]) is added and rem == []
    assert s.stats()["pending"] == int(added)


def test_first_sighting_rate_is_over_the_connections_life():
    t = ConnectionTable()
    established(t)  # first seen at 0.0
    data(t, 20)
    # Young and small: a handshake burst must not pass for a transfer.
    assert shunter().plan(t.flows, 0.01) == ([], [])
    assert shunter().plan(t.flows, 1.0) == ([], [])  # 23 packets in its first second
    data(t, 10_000)
    assert shunter().plan(t.flows, 1.0) == ([SK], [])  # 10,023 packets in its first second


def test_a_young_connection_with_a_busy_sample_is_shunted_at_once():
    t = ConnectionTable()
    established(t)
    data(t, BUSY_PACKETS)  # in its first 10 ms: 13,000 packets/s
    assert shunter().plan(t.flows, 0.01) == ([SK], [])


def test_on_busy_fires_once_per_direction_at_the_threshold():
    t = ConnectionTable()
    busy = []
    t.on_busy = busy.append
    f = established(t)
    data(t, BUSY_PACKETS - 3)  # with the SYN and ACK: one short of the threshold
    assert busy == []
    data(t, 1)
    assert busy == [f]
    data(t, 500)
    assert busy == [f]


def test_first_sighting_of_a_slow_connection_is_not_added():
    t = ConnectionTable()
    established(t)
    data(t, 50)
    s = shunter()  # 100 pps
    assert s.plan(t.flows, 1.0) == ([], [])
    assert s.plan(t.flows, 2.0) == ([], [])  # no new packets since


def test_non_established_and_non_tcp_never_added():
    t = ConnectionTable()
    syn_key = (6, L, 40001, R, 5201)
    udp_key = (17, L, 5000, R, 5000)
    t.tcp(syn_key, True, SYN, 1, 0, 0, 74, 0.0)
    t.datagram(17, udp_key, True, 1066, 1000, 0.0)
    s = shunter(min_pps=1.0)
    s.plan(t.flows, 0.0)
    for _ in range(100):
        t.tcp(syn_key, True, SYN, 1, 0, 0, 74, 0.5)
        t.datagram(17, udp_key, True, 1066, 1000, 0.5)
    assert t.flows[syn_key].state == "SYN_SENT"
    assert s.plan(t.flows, 1.0) == ([], [])


def test_disabled_policy_adds_nothing():
    t = ConnectionTable()
    established(t)
    s = shunter(enabled=False)
    s.plan(t.flows, 0.0)
    data(t, 1000)
    assert s.plan(t.flows, 1.0) == ([], [])


def test_pending_not_readded_and_accepted_transition():
    t, _, s = pending_setup()
    data(t, 200)
    assert s.plan(t.flows, 2.0) == ([], [])
    assert s.stats() == {"shunted": 0, "pending": 1, "shunts_total": 0,
                         "folded_packets": 0, "folded_bytes": 0}
    assert not s.is_shunted(KEY) and s.totals(SK) is None
    s.accepted(SK)
    assert s.shunted() == [SK] and s.is_shunted(KEY)
    assert s.stats()["pending"] == 0 and s.stats()["shunts_total"] == 1
    assert s.totals(SK) == {"out": {"packets": 0, "bytes": 0}, "in": {"packets": 0, "bytes": 0}}
    data(t, 200)
    assert s.plan(t.flows, 3.0) == ([], [])  # already shunted


def test_refused_drops_pending_and_may_retry():
    t, _, s = pending_setup()
    s.refused(SK)
    assert s.stats()["pending"] == 0 and s.shunted() == []
    s.accepted(SK)  # a late answer for a key no longer pending changes nothing
    assert s.shunted() == []
    data(t, 200)
    assert s.plan(t.flows, 2.0)[0] == [SK]


def test_unshunt_on_state_change():
    t, f, s = shunted_setup()
    t.tcp(KEY, True, FIN | ACK, 5000, 501, 0, 66, 2.0)
    assert f.state == "FIN_WAIT"
    assert s.plan(t.flows, 2.0) == ([], [SK])
    assert s.shunted() == [] and not s.is_shunted(KEY)
    data(t, 1000)
    assert s.plan(t.flows, 3.0) == ([], [])  # never shunted again once closing


def test_unshunt_on_rst():
    t, f, s = shunted_setup()
    t.tcp(KEY, False, RST, 501, 0, 0, 60, 2.0)
    assert f.state == "CLOSE"
    assert s.plan(t.flows, 2.0) == ([], [SK])


def test_unshunt_on_disappearance_and_pending_removed_too():
    t = ConnectionTable()
    established(t)
    other = (6, L, 40002, R, 5201)
    established(t, key=other)
    s = shunter()
    s.plan(t.flows, 0.0)
    data(t, 200)
    data(t, 200, key=other)
    both = {SK, ShuntKey("10.0.0.1", 40002, "10.0.0.2", 5201)}
    add, _ = s.plan(t.flows, 1.0)
    assert set(add) == both
    s.accepted(SK)  # the other stays pending
    t.flows.clear()
    add, rem = s.plan(t.flows, 2.0)
    assert add == [] and set(rem) == both and len(rem) == 2
    assert s.stats()["shunted"] == 0 and s.stats()["pending"] == 0
    assert s.totals(SK) is None  # flow gone: its totals are forgotten


def test_flow_replaced_under_same_key_is_unshunted():
    t, f, s = shunted_setup()
    del t.flows[KEY]
    established(t, ts=2.0)  # a new connection reusing the same 5-tuple
    add, rem = s.plan(t.flows, 2.0)
    assert add == [] and rem == [SK]


# -- fold ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("local_is_orig", [True, False])
def test_fold_adds_to_correct_endpoint(local_is_orig):
    t, f, s = shunted_setup(local_is_orig)
    local = f.orig if local_is_orig else f.resp
    remote = f.resp if local_is_orig else f.orig
    lp, lb, rp, rb = local.packets, local.bytes, remote.packets, remote.bytes
    last = f.last_seen
    assert s.fold(t.flows, [row(op=1000, ob=1_066_000, ip=500, ib=33_000)], last + 5) == 1500
    assert (local.packets, local.bytes) == (lp + 1000, lb + 1_066_000)
    assert (remote.packets, remote.bytes) == (rp + 500, rb + 33_000)
    assert f.last_seen == last + 5
    assert s.fold(t.flows, [row(op=1010, ob=1_076_660, ip=505, ib=33_330)], last + 6) == 15
    assert (local.packets, remote.packets) == (lp + 1010, rp + 505)
    assert s.totals(SK) == {"out": {"packets": 1010, "bytes": 1_076_660},
                            "in": {"packets": 505, "bytes": 33_330}}
    st = s.stats()
    assert (st["folded_packets"], st["folded_bytes"]) == (1515, 1_076_660 + 33_330)


def test_repeated_fold_adds_nothing_and_last_seen_never_goes_back():
    t, f, s = shunted_setup()
    rows = [row(op=10, ob=100, ip=5, ib=50)]
    assert s.fold(t.flows, rows, 5.0) == 15
    before = (f.orig.packets, f.orig.bytes, f.resp.packets, f.resp.bytes)
    assert s.fold(t.flows, rows, 9.0) == 0
    assert (f.orig.packets, f.orig.bytes, f.resp.packets, f.resp.bytes) == before
    assert f.last_seen == 5.0  # nothing folded: last_seen untouched
    assert s.fold(t.flows, [row(op=11, ob=110, ip=5, ib=50)], 3.0) == 1
    assert f.last_seen == 5.0


def test_counters_going_backwards_rebaseline():
    t, f, s = shunted_setup()
    s.fold(t.flows, [row(op=100, ob=1000, ip=50, ib=500)], 5.0)
    before = (f.orig.packets, f.resp.packets)
    assert s.fold(t.flows, [row(op=3, ob=30, ip=2, ib=20)], 6.0) == 0  # rule reinstalled
    assert (f.orig.packets, f.resp.packets) == before
    assert s.fold(t.flows, [row(op=13, ob=130, ip=4, ib=40)], 7.0) == 12
    assert (f.orig.packets, f.resp.packets) == (before[0] + 10, before[1] + 2)
    assert s.totals(SK)["out"] == {"packets": 110, "bytes": 1100}


@pytest.mark.parametrize("bad", [
    None, "x", [], {},
    {"id": 7, "out": {"packets": 1, "bytes": 1}, "in": {"packets": 1, "bytes": 1}},
    {"id": SK.id, "out": {"packets": 1, "bytes": 1}},
    {"id": SK.id, "out": None, "in": {"packets": 1, "bytes": 1}},
    {"id": SK.id, "out": {"packets": 1}, "in": {"packets": 1, "bytes": 1}},
    {"id": SK.id, "out": {"packets": -1, "bytes": 1}, "in": {"packets": 1, "bytes": 1}},
    {"id": SK.id, "out": {"packets": 1.5, "bytes": 1}, "in": {"packets": 1, "bytes": 1}},
    {"id": SK.id, "out": {"packets": "1", "bytes": 1}, "in": {"packets": 1, "bytes": 1}},
    {"id": SK.id, "out": {"packets": True, "bytes": 1}, "in": {"packets": 1, "bytes": 1}},
])
def test_malformed_rows_ignored(bad):
    t, f, s = shunted_setup()
    before = (f.orig.packets, f.resp.packets)
    assert s.fold(t.flows, [bad], 5.0) == 0
    assert (f.orig.packets, f.resp.packets) == before
    assert s.fold(t.flows, [bad, row(op=2, ob=20)], 5.0) == 2  # good rows still count


def test_unknown_and_pending_ids_ignored():
    t, _, s = pending_setup()  # SK pending, not shunted
    assert s.fold(t.flows, [row(op=5), row("10.9.9.9:1-10.0.0.2:2", op=5)], 2.0) == 0
    assert s.fold(t.flows, "garbage", 2.0) == 0  # type: ignore[arg-type]


def test_unshunted_key_no_longer_folds_but_keeps_counts():
    t, f, s = shunted_setup()
    s.fold(t.flows, [row(op=10, ob=100)], 5.0)
    packets = f.orig.packets
    t.tcp(KEY, True, FIN | ACK, 5000, 501, 0, 66, 6.0)
    assert s.plan(t.flows, 6.0)[1] == [SK]
    assert s.fold(t.flows, [row(op=20, ob=200)], 7.0) == 0
    assert f.orig.packets == packets + 1  # the FIN only; folded counts stay
    assert s.totals(SK)["out"] == {"packets": 10, "bytes": 100}


def test_shunt_key_of_a_snapshot_connection_either_direction():
    out = {"orig_ip": "10.0.0.1", "orig_port": 40000, "resp_ip": "10.0.0.2",
           "resp_port": 5201, "direction": "outbound"}
    inbound = {"orig_ip": "10.0.0.2", "orig_port": 5201, "resp_ip": "10.0.0.1",
               "resp_port": 40000, "direction": "inbound"}
    assert ShuntKey.of_connection(out) == SK == ShuntKey.of_connection(inbound)
