"""TCP/UDP/ICMP tracking: conntrack states, Zeek conn_state/history, counters, retransmissions."""

from __future__ import annotations

import pytest

from mirror.packets import ip_bytes
from mirror.tcp_state import ACK, FIN, RST, SYN, ConnectionTable

L, R = ip_bytes("10.0.0.1"), ip_bytes("10.0.0.2")
PSH = 0x08


class Conv:
    """Drive one connection: ``out`` = sent by the container (local 10.0.0.1:40000)."""

    def __init__(self, lport=40000, rport=80):
        self.changes: list[tuple[str, str]] = []
        self.t = ConnectionTable(lambda a, f, ts: self.changes.append((a, f.state)))
        self.key = (6, L, lport, R, rport)
        self.ts = 0.0

    def out(self, flags, seq=0, ack=0, n=0):
        return self._send(True, flags, seq, ack, n)

    def inn(self, flags, seq=0, ack=0, n=0):
        return self._send(False, flags, seq, ack, n)

    def _send(self, up, flags, seq, ack, n):
        self.ts += 0.01
        return self.t.tcp(self.key, up, flags, seq, ack, n, 54 + n, self.ts)

    @property
    def flow(self):
        return self.t.flows[self.key]


def handshake(c: Conv):
    c.out(SYN, 100)
    c.inn(SYN | ACK, 500, 101)
    return c.out(ACK, 101, 501)


def test_handshake_data_and_counters():
    c = Conv()
    f = handshake(c)
    assert f.state == "ESTABLISHED" and f.conn_state == "S1" and f.local_is_orig
    c.out(ACK | PSH, 101, 501, 100)
    c.inn(ACK | PSH, 501, 201, 1000)
    assert (f.orig.packets, f.orig.payload, f.resp.packets, f.resp.payload) == (3, 100, 2, 1000)
    assert f.orig.bytes == 54 * 3 + 100 and f.history == "ShAD" + "d"
    assert [a for a, _ in c.changes] == ["add", "update", "update"]
    assert [s for _, s in c.changes] == ["SYN_SENT", "SYN_RECV", "ESTABLISHED"]


def test_close_originator_first():
    c = Conv()
    f = handshake(c)
    c.out(FIN | ACK, 101, 501)
    assert (f.state, f.conn_state) == ("FIN_WAIT", "S2")
    c.inn(ACK, 501, 102)
    assert f.state == "CLOSE_WAIT"
    c.inn(FIN | ACK, 501, 102)
    assert (f.state, f.conn_state) == ("LAST_ACK", "SF")
    c.out(ACK, 102, 502)
    assert f.state == "TIME_WAIT" and f.history == "ShAFaf"


def test_close_responder_first():
    c = Conv()
    f = handshake(c)
    c.inn(FIN | ACK, 501, 101)
    assert (f.state, f.conn_state) == ("FIN_WAIT", "S3")
    c.out(FIN | ACK, 101, 502)
    c.inn(ACK, 502, 102)
    assert (f.state, f.conn_state) == ("TIME_WAIT", "SF")


@pytest.mark.parametrize("from_orig, expected", [(True, "RSTO"), (False, "RSTR")])
def test_rst_from_each_side(from_orig, expected):
    c = Conv()
    f = handshake(c)
    (c.out if from_orig else c.inn)(RST, 101 if from_orig else 501)
    assert (f.state, f.conn_state) == ("CLOSE", expected)
    assert c.t.rsts == 1


def test_syn_without_answer_and_repeated_syn_is_retransmission():
    c = Conv()
    f = c.out(SYN, 100)
    assert (f.state, f.conn_state) == ("SYN_SENT", "S0")
    c.out(SYN, 100)
    assert f.orig.retrans == 1 and c.t.retransmissions == 1 and f.conn_state == "S0"
    assert "T" in f.history


def test_rejected_connection():
    c = Conv()
    c.out(SYN, 100)
    f = c.inn(RST | ACK, 0, 101)
    assert (f.state, f.conn_state, f.history) == ("CLOSE", "REJ", "Sr")


def test_originator_gives_up_before_answer():
    c = Conv()
    c.out(SYN, 100)
    f = c.out(RST, 101)
    assert f.conn_state == "RSTOS0"


def test_inbound_connection_orientation():
    c = Conv(lport=80, rport=51000)
    c.inn(SYN, 7)
    f = c.out(SYN | ACK, 9, 8)
    assert not f.local_is_orig and f.orig_port == 51000 and f.resp_port == 80
    assert f.as_dict()["direction"] == "inbound"


def test_data_retransmission_and_keepalive():
    c = Conv()
    f = handshake(c)
    c.out(ACK, 101, 501, 1000)
    c.out(ACK, 1101, 501, 1000)
    c.out(ACK, 101, 501, 1000)  # full retransmission
    c.out(ACK, 1601, 501, 1000)  # overlaps already-seen space
    assert f.orig.retrans == 2
    c.out(ACK, 2600, 501, 1)  # keep-alive probe: one byte below the edge
    assert f.orig.retrans == 2
    c.out(ACK, 2601, 501, 500)  # new data
    assert f.orig.retrans == 2 and c.t.data_packets == 6


def test_sequence_wraparound_is_not_retransmission():
    c = Conv()
    f = c.out(SYN, 0xFFFFFF00)
    c.inn(SYN | ACK, 1, 0xFFFFFF01)
    c.out(ACK, 0xFFFFFF01, 2, 0x200)  # crosses 2**32
    c.out(ACK, 0x101, 2, 0x100)
    assert f.orig.retrans == 0
    c.out(ACK, 0xFFFFFF01, 2, 0x200)
    assert f.orig.retrans == 1


def test_mid_stream_pickup():
    c = Conv(lport=40000, rport=443)
    f = c.inn(ACK, 9000, 100, 1200)  # server -> client data, no SYN seen
    assert f.partial and f.local_is_orig and f.history.startswith("^")
    assert f.state == "ESTABLISHED" and f.conn_state == "OTH"
    c.out(ACK, 100, 10200)
    assert f.orig.packets == 1 and f.resp.payload == 1200


def test_udp_and_icmp_flows_and_expiry():
    changes = []
    t = ConnectionTable(lambda a, f, ts: changes.append((a, f.state)))
    k = (17, L, 5000, R, 53)
    f = t.datagram(17, k, True, 80, 30, 1.0)
    assert (f.state, f.conn_state) == ("UNREPLIED", "S0")
    t.datagram(17, k, False, 120, 70, 1.1)
    assert (f.state, f.conn_state, f.resp.bytes) == ("REPLIED", "SF", 120)
    ki = (1, L, 9, R, 9)
    t.datagram(1, ki, True, 98, 56, 1.2, 8, 0)
    assert t.flows[ki].icmp_type == 8
    t.expire(20.0)
    assert ki in t.flows and k in t.flows
    t.expire(40.0)  # ICMP after 30 s; a replied UDP flow lives 120 s
    assert ki not in t.flows and k in t.flows
    t.expire(200.0)
    assert not t.flows
    assert [a for a, _ in changes] == ["add", "update", "add", "remove", "remove"]


def test_closed_tcp_expires_after_close_timeout():
    c = Conv()
    handshake(c)
    c.out(RST, 101)
    c.t.expire(c.ts + 5)
    assert c.key in c.t.flows
    c.t.expire(c.ts + 11)
    assert c.key not in c.t.flows and c.changes[-1][0] == "remove"
