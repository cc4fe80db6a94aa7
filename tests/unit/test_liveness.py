"""Liveness: misses in a row make a node unreachable, and the service moves at once."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from controller.services.health import HealthMonitor
from controller.services.liveness import LivenessProber, LivenessSettings, MissCounter
from controller.services.redirection import RedirectionEngine
from controller.services.service import Service, ServiceTable
from controller.services.shadow_table import ShadowTable


def test_miss_counter_says_once_when_the_run_is_long_enough():
    counter = MissCounter(3, arm=4)
    assert [counter.record("a", False) for _ in range(5)] == [False] * 5  # never answered
    for _ in range(3):
        counter.record("a", True)
    assert counter.record("a", False) is False  # not armed: 3 answers, then silence
    assert [counter.record("a", True) for _ in range(4)] == [False] * 4  # armed now
    assert [counter.record("a", False) for _ in range(5)] == [False, False, True, False, False]
    counter.record("a", True)
    assert counter.run("a") == 0
    assert [counter.record("a", ok) for ok in (False, False, True, False, False, False)] == [
        False, False, False, False, False, True]
    with pytest.raises(ValueError):
        MissCounter(0)
    with pytest.raises(ValueError):
        MissCounter(3, arm=0)


def _wait_for(found: list[str], seconds: float) -> bool:
    end = time.monotonic() + seconds
    while not found and time.monotonic() < end:
        time.sleep(0.02)
    return bool(found)


@pytest.fixture
def server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)

    def accept() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    yield srv
    srv.close()


def test_a_node_that_answers_stays_reachable_and_one_that_stops_does_not(server):
    found: list[str] = []
    prober = LivenessProber(LivenessSettings(interval=0.05, timeout=0.3, misses=5, arm=5),
                            lambda node, misses: found.append(node))
    prober.targets = {"a": ("127.0.0.1", server.getsockname()[1])}
    prober.start()
    try:
        assert not _wait_for(found, 0.6)
        server.close()  # connects are refused from now on
        assert _wait_for(found, 5.0)
        assert found == ["a"]
    finally:
        prober.stop()


def test_a_silent_path_is_not_a_dead_node(server):
    """When every node falls silent at once, the controller's own path is down: nothing is
    declared until another node answers while the silent one still does not."""
    found: list[str] = []
    prober = LivenessProber(LivenessSettings(interval=0.05, timeout=0.2, misses=3, arm=3),
                            lambda node, misses: found.append(node))
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen(64)
    prober.targets = {"a": ("127.0.0.1", server.getsockname()[1]),
                      "b": ("127.0.0.1", other.getsockname()[1])}
    prober.start()
    try:
        assert not _wait_for(found, 0.4)
        server.close()
        other.close()  # both refuse: a path failure, as far as the checks can tell
        assert not _wait_for(found, 1.0)
    finally:
        prober.stop()


def test_silence_counts_as_misses_once_the_timeout_passes():
    """A listener that never accepts: the first connect fills its backlog and is answered
    (by the kernel), later SYNs are dropped, so connects neither succeed nor fail."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    found: list[str] = []
    prober = LivenessProber(LivenessSettings(interval=0.05, timeout=0.2, misses=3, arm=1),
                            lambda node, misses: found.append(node))
    prober.targets = {"quiet": srv.getsockname()}
    prober.start()
    try:
        assert _wait_for(found, 5.0)
    finally:
        prober.stop()
        srv.close()


def _engine() -> tuple[RedirectionEngine, ServiceTable]:
    svc = Service.from_dict({
        "name": "web", "vip": "10.0.0.100", "port": 80,
        "primary": {"name": "p", "ip": "10.0.0.2", "mac": "00:00:00:00:00:02"},
        "standbys": [{"name": "s", "ip": "10.0.0.3", "mac": "00:00:00:00:00:03"}]})
    services = ServiceTable([svc])
    return RedirectionEngine(services, ShadowTable(services, None)), services


def test_an_unreachable_node_is_left_at_once_even_within_the_cooldown():
    redirection, _ = _engine()
    monitor = HealthMonitor()
    for t in range(5):
        for node in ("p", "s"):
            monitor.observe(node, float(t), {"latency_ms": 1.0, "loss": 0.0})
        redirection.step(monitor.snapshot(), float(t))
    redirection.restore_state({"web": {"active": "p", "last_switch": 4.0}})  # cooling down
    assert redirection.unreachable("p", 5.0, {"evidence": "liveness"}) == ["web"]
    assert redirection.unreachable("p", 5.1, {"evidence": "liveness"}) == []  # already tripped
    plan = redirection.step(monitor.snapshot(), 5.2)
    moves = [e for e in plan.events if e.kind == "switchover"]
    assert moves and moves[0].node == "p" and moves[0].target == "s"
    assert moves[0].reason["dead"] is True and moves[0].reason["evidence"] == "liveness"


def test_unreachable_ignores_a_node_no_service_has():
    redirection, _ = _engine()
    assert redirection.unreachable("nobody", 1.0, {}) == []
