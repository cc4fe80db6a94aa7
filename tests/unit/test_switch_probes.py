"""Switch health probes: catch rules, probe frames, latency and loss accounting, garbage."""

from __future__ import annotations

import random
import struct

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller.pipeline import MIRROR_PRIORITY, PROBE_COOKIE, PROBE_PRIORITY, READ_ONLY_PRIORITY
from controller.reconciler import ObservedFlow, reconcile
from controller.services.health import HealthMonitor, wilson_lower
from controller.signature_table import SignatureTable, is_our_cookie
from controller.switch_probes import PROBE_ETHERTYPE, SwitchProber
from tests.unit.fakes import FakeNetwork, ring_graph
from tests.unit.packets import arp_request, ping


def send_probes(prober: SwitchProber, dpid: int, ports=(2, 3), now: float = 0.0):
    msgs = prober.probes(dpid, ports, now)
    return [(d, m.actions[0].port, m.data) for d, m in msgs]


def test_catch_rule_outranks_table_zero_and_punts_whole_packets():
    [(dpid, mod)] = SwitchProber.catch_rules(4)
    assert dpid == 4 and isinstance(mod, parser.OFPFlowMod)
    assert mod.table_id == 0 and mod.priority == PROBE_PRIORITY
    assert PROBE_PRIORITY > max(MIRROR_PRIORITY, READ_ONLY_PRIORITY)
    assert dict(mod.match.items()) == {"eth_type": PROBE_ETHERTYPE}
    [action] = mod.instructions[0].actions
    assert (action.port, action.max_len) == (ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)
    assert mod.buffer_id == ofp.OFP_NO_BUFFER and mod.cookie == PROBE_COOKIE


def test_catch_rule_cookie_is_invisible_to_reconciliation():
    assert not is_our_cookie(PROBE_COOKIE)
    table = SignatureTable()
    result = reconcile(table, 4, [ObservedFlow(PROBE_COOKIE, 0, PROBE_PRIORITY, 5, 500)],
                       requested_at=1.0, now=2.0)
    assert result.stray == [] and result.missing == []


def test_probe_reaches_the_controller_through_a_mirrored_port():
    # Even on a port whose table-0 rules would copy or drop it, the probe goes up.
    graph, links = ring_graph(4)
    net = FakeNetwork(links)
    from controller.forwarding import Forwarder
    from controller.host_table import HostTable
    from controller.mirroring import Mirror, MirrorPolicy, install_mirror

    fwd = Forwarder(graph, HostTable(), SignatureTable())
    for dpid in graph.switches():
        net.send(fwd.switch_connected(dpid, [1, 2, 3]))
        net.send(SwitchProber.catch_rules(dpid))
    mirror = Mirror("c", "t", 2, 3, 3, "00:00:00:00:00:02", policy=MirrorPolicy())
    net.send(install_mirror(fwd.table, mirror, 0.0))
    outputs, up = net.switch(2).process({"in_port": 3, "eth_type": PROBE_ETHERTYPE})
    assert up and outputs == []
    # Without the catch rule the read-only guard would have dropped it.
    net.switch(2).flows = [f for f in net.switch(2).flows if f.cookie != PROBE_COOKIE]
    assert net.switch(2).process({"in_port": 3, "eth_type": PROBE_ETHERTYPE}) == ([], False)


def test_one_probe_per_link_port_with_origin_port_and_sequence():
    prober = SwitchProber(token=b"12345678")
    sent = send_probes(prober, 7, ports=[3, 2], now=5.0)
    assert [(d, p) for d, p, _ in sent] == [(7, 2), (7, 3)]
    seqs = set()
    for _, port, data in sent:
        assert len(data) >= 60
        assert struct.unpack_from("!H", data, 12)[0] == PROBE_ETHERTYPE
        assert data[0] & 1  # a multicast destination: no switch learns or floods it as a host
        magic, token, origin, in_frame_port, seq, when = struct.unpack_from(
            "!4s8sQIQd", data, 14)
        assert (magic, token, origin, in_frame_port, when) == (b"SHPR", b"12345678", 7, port,
                                                               5.0)
        seqs.add(seq)
    assert len(seqs) == 2
    # Messages must be encodable as real packet-outs.
    net = FakeNetwork([])
    net.send(prober.probes(7, [2], 6.0))
    assert net.switch(7).packet_outs[0][0] == [2]


def test_latency_is_the_median_of_answered_probes_credited_to_the_origin():
    prober = SwitchProber(timeout=1.0)
    for t, delay in ((0.0, 0.004), (1.0, 0.002), (2.0, 0.100)):
        for _, port, data in send_probes(prober, 2, now=t):
            assert prober.packet_in(3 if port == 2 else 1, 3, data, t + delay)
    metrics = prober.metrics(2, 2.5)
    assert metrics["loss"] == 0.0
    assert metrics["latency_ms"] == pytest.approx(4.0)
    assert prober.metrics(1, 2.5) == {} and prober.metrics(3, 2.5) == {}  # the neighbours


def test_unanswered_probes_count_as_lost_once_after_the_timeout():
    prober = SwitchProber(timeout=1.0)
    first = send_probes(prober, 2, now=0.0)
    assert prober.packet_in(3, 3, first[0][2], 0.01)  # one of two answered
    assert prober.metrics(2, 0.5) == {"loss": 0.0, "probes": 1, "latency_ms": pytest.approx(10.0)}
    assert prober.outstanding(2) == 1  # still in flight: not lost yet
    assert prober.metrics(2, 1.2) == {"loss": 1.0, "probes": 1}  # now it is
    assert prober.metrics(2, 5.0) == {}  # and never again
    # A late answer is ours, but neither an answer nor a second loss.
    assert prober.packet_in(1, 2, first[1][2], 5.0)
    assert prober.metrics(2, 6.0) == {}


def test_answer_that_arrives_after_the_timeout_is_a_loss():
    prober = SwitchProber(timeout=1.0)
    [(_, _, data)] = send_probes(prober, 2, ports=[2], now=0.0)
    assert prober.packet_in(3, 3, data, 1.5)
    assert prober.metrics(2, 1.6) == {"loss": 1.0, "probes": 1}


def test_duplicated_answer_counts_once():
    prober = SwitchProber()
    [(_, _, data)] = send_probes(prober, 2, ports=[2], now=0.0)
    assert prober.packet_in(3, 3, data, 0.001)
    assert prober.packet_in(3, 3, data, 0.002)
    [(_, _, other)] = send_probes(prober, 2, ports=[2], now=0.01)
    assert prober.metrics(2, 2.0) == {"loss": 0.5, "probes": 2, "latency_ms": pytest.approx(1.0)}


def test_loss_fraction_over_many_intervals():
    prober = SwitchProber(timeout=0.5)
    rng = random.Random(7)
    answered = sent = 0
    for i in range(50):
        for _, _, data in send_probes(prober, 2, ports=[2, 3, 4, 5], now=float(i)):
            sent += 1
            if rng.random() < 0.3:
                continue
            answered += 1
            prober.packet_in(3, 3, data, i + 0.003)
    metrics = prober.metrics(2, 100.0)
    assert metrics["loss"] == pytest.approx(1 - answered / sent)
    assert 0.2 < metrics["loss"] < 0.4


@pytest.mark.parametrize("data", [
    b"", b"\x00", b"\xff" * 13, b"\x00" * 200, arp_request(1, 2), ping(1, 2),
])
def test_other_frames_are_not_probes(data):
    prober = SwitchProber()
    send_probes(prober, 2)
    assert prober.packet_in(2, 2, data, 0.1) is False
    assert prober.outstanding(2) == 2


def test_forged_or_foreign_probes_are_refused_and_garbage_never_raises():
    ours, theirs = SwitchProber(token=b"A" * 8), SwitchProber(token=b"B" * 8)
    [(_, _, real)] = send_probes(ours, 2, ports=[2], now=0.0)
    [(_, _, foreign)] = send_probes(theirs, 2, ports=[2], now=0.0)
    assert ours.packet_in(3, 3, foreign, 0.01) is False
    assert ours.packet_in(3, 3, real[:20], 0.01) is False  # truncated
    bad_magic = real[:14] + b"XXXX" + real[18:]
    assert ours.packet_in(3, 3, bad_magic, 0.01) is False
    rng = random.Random(1)
    for _ in range(2000):
        n = rng.randrange(0, 80)
        junk = bytes(rng.randrange(256) for _ in range(n))
        if rng.random() < 0.5:  # flip bytes of a real probe
            junk = bytearray(real)
            for _ in range(rng.randrange(1, 4)):
                junk[rng.randrange(len(junk))] = rng.randrange(256)
            junk = bytes(junk)
        assert ours.packet_in(rng.randrange(1, 5), rng.randrange(1, 5), junk, 0.01) in (
            True, False)
    metrics = ours.metrics(2, 5.0)
    assert 0.0 <= metrics["loss"] <= 1.0


def test_memory_stays_bounded_when_nothing_answers():
    prober = SwitchProber(timeout=1000.0, max_outstanding=16)
    for i in range(100):
        send_probes(prober, 2, ports=[2, 3], now=float(i))
    assert prober.outstanding(2) == 16
    assert prober.metrics(2, 100.0) == {"loss": 1.0, "probes": 184}  # 184 given up, each once
    prober.forget(2)
    assert prober.outstanding(2) == 0 and prober.metrics(2, 200.0) == {}


def test_metrics_feed_the_health_monitor():
    prober = SwitchProber(timeout=0.5)
    monitor = HealthMonitor()
    send_probes(prober, 2, now=0.0)
    dead = monitor.observe("switch:2", 1.0, prober.metrics(2, 1.0))
    assert dead.score == 0.0 and not dead.available
    for _, _, data in send_probes(prober, 2, now=1.0):
        prober.packet_in(3, 3, data, 1.002)
    alive = monitor.observe("switch:2", 2.0, prober.metrics(2, 2.0))
    assert alive.available and alive.factors["latency_ms"] == 1.0
    # The silent round still counts as evidence of loss: 2 of the 4 probes so far.
    assert alive.factors["loss"] == pytest.approx(1 - wilson_lower(2, 4, 1.96))


def test_forwarder_ignores_probe_frames():
    from controller.forwarding import Forwarder
    from controller.host_table import HostTable

    graph, _ = ring_graph(4)
    fwd = Forwarder(graph, HostTable(), SignatureTable())
    [(_, _, data)] = send_probes(SwitchProber(), 2, ports=[2], now=0.0)
    assert fwd.packet_in(3, 3, data) == []  # no flood, no learning
    assert fwd.packet_in(3, 1, data) == [] and len(fwd.hosts) == 0
