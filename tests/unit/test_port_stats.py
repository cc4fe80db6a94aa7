"""Port counters become per-second rates, per port and summed per switch."""

from controller.port_stats import PortCounters, PortStats


def counters(port: int, n: int, drops: int = 0, errors: int = 0) -> PortCounters:
    return PortCounters(port, rx_packets=n, tx_packets=2 * n, rx_dropped=drops, tx_dropped=drops,
                        rx_errors=errors, tx_errors=0)


def test_rates_need_two_samples_and_sum_per_switch():
    stats = PortStats()
    stats.update(1, 10.0, [counters(1, 100), counters(2, 0)])
    assert stats.port(1, 1) == {} and stats.switch(1) == {}
    stats.update(1, 12.0, [counters(1, 300, drops=4), counters(2, 0, errors=6)])
    assert stats.port(1, 1) == {"rx_pps": 100.0, "tx_pps": 200.0, "drops_per_s": 4.0,
                                "errors_per_s": 0.0}
    assert stats.switch(1) == {"drops_per_s": 4.0, "errors_per_s": 3.0}


def test_a_counter_reset_gives_no_rate_and_forget_clears():
    stats = PortStats()
    stats.update(1, 0.0, [counters(1, 500)])
    stats.update(1, 1.0, [counters(1, 600)])
    stats.update(1, 2.0, [counters(1, 5)])  # the switch restarted
    assert stats.port(1, 1)["rx_pps"] == 100.0  # the last good rate stays
    stats.forget(1)
    assert stats.ports(1) == {}


def test_core_feeds_node_port_drops_to_health(tmp_path):
    from controller.core import ControllerCore
    from tests.unit.fakes import connect_ring
    from tests.unit.packets import ping

    svc = {"name": "web", "vip": "10.0.0.100", "port": 80,
           "primary": {"name": "h2", "ip": "10.0.0.2", "mac": "00:00:00:00:00:02"}}
    now = [100.0]
    core = ControllerCore(None, services=[svc], clock=lambda: now[0])
    connect_ring(core)
    core.packet_in(2, 1, ping(2, 1))  # h2 learned on switch 2, port 1
    host = core.hosts.get("00:00:00:00:00:02")
    core.port_stats_reply(host.dpid, [counters(host.port, 0)])
    now[0] = 101.0
    core.port_stats_reply(host.dpid, [counters(host.port, 10, drops=5)])
    core.observe_node("h2", 101.0, {"loss": 0.0, "latency_ms": 1.0})
    # Drops are no health factor of their own, but the engine sees them.
    detector = core.services.health.engine._entities["node:h2"]
    assert "drops_per_s" in detector.metrics
    assert core._node_port_rates("h2") == {"drops_per_s": 10.0, "errors_per_s": 0.0}
