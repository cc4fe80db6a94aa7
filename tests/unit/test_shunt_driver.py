"""The agent's shunt driver against a recorded controller: install, fold, unshunt, final fold."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from mirror import shunt_driver
from mirror.shunt_driver import ShuntDriver
from mirror.shunt_policy import Shunter
from mirror.tcp_state import ACK, FIN, ConnectionTable
from tests.unit.test_shunt_policy import KEY, SK, data, established, shunter

BASE = "/api/mirrors/h1/shunts"


class Controller:
    """Answers like the controller's REST API and records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.rows: list[dict] = []
        self.removed: dict[str, dict] = {}
        self.accept = True

    def __call__(self, method: str, path: str, body):
        self.calls.append((method, path))
        if method == "POST" and path == BASE:
            if not self.accept:
                return 0, None
            return 201, {"id": SK.id, "cookies": ["0x1", "0x2"]}
        if method == "GET" and path == BASE:
            return 200, self.rows
        if method == "DELETE":
            return 204, None
        if method == "GET" and path.startswith("/api/flows?cookie="):
            flow = self.removed.get(path.split("=", 1)[1])
            return 200, [flow] if flow else []
        return 404, None


def mirror(table: ConnectionTable, s: Shunter):
    return SimpleNamespace(record=SimpleNamespace(container="h1"), lock=threading.Lock(),
                           engine=SimpleNamespace(state=SimpleNamespace(connections=table)),
                           shunter=s)


def row(op: int, ob: int, ip: int, ib: int) -> dict:
    return {"id": SK.id, "out": {"packets": op, "bytes": ob}, "in": {"packets": ip, "bytes": ib}}


def test_lifecycle_every_packet_counted_once():
    table = ConnectionTable()
    flow = established(table)
    m = mirror(table, shunter(min_pps=100))
    ctl = Controller()
    driver = ShuntDriver(lambda: [m], ctl)
    driver.step(0.0)  # first sighting
    data(table, 200)
    driver.step(0.5)  # 400 packets/s: shunted
    assert ("POST", BASE) in ctl.calls and m.shunter.shunted() == [SK]
    before = flow.orig.packets
    ctl.rows = [row(1000, 1_066_000, 500, 33_000)]
    driver.step(2.0)  # counters due
    assert flow.orig.packets == before + 1000 and flow.resp.packets >= 500
    # The connection closes: the FIN is copied, so the engine sees it; the shunt goes,
    # once the switch has credited its rules with every packet they matched.
    table.tcp(KEY, True, FIN | ACK, 300_000, 501, 0, 66, 2.1)
    driver.step(2.2)
    assert m.shunter.shunted() == [] and ("DELETE", f"{BASE}/{SK.id}") not in ctl.calls
    deleted = 2.2 + shunt_driver.UNSHUNT_DELAY
    driver.step(deleted)
    assert ("DELETE", f"{BASE}/{SK.id}") in ctl.calls
    # The switch reported the rules' last counters when they were deleted.
    ctl.removed = {"0x1": {"status": "removed", "table_id": 0, "packets": 1200,
                           "bytes": 1_278_000},
                   "0x2": {"status": "removed", "table_id": 1, "packets": 600, "bytes": 39_600}}
    driver.step(deleted + shunt_driver.FINAL_DELAY + 0.1)
    assert flow.orig.packets == before + 1200 + 1  # + the FIN itself
    assert m.shunter.closing() == []
    driver.step(10.0)  # nothing left to fold twice
    assert flow.orig.packets == before + 1201


def test_refused_shunt_is_retried_later():
    table = ConnectionTable()
    established(table)
    m = mirror(table, shunter(min_pps=100))
    ctl = Controller()
    ctl.accept = False
    driver = ShuntDriver(lambda: [m], ctl)
    driver.step(0.0)
    data(table, 200)
    driver.step(0.5)
    assert m.shunter.shunted() == [] and m.shunter.stats()["pending"] == 0
    ctl.accept = True
    ctl.rows = [row(0, 0, 0, 0)]  # listed once installed
    data(table, 200)
    driver.step(1.0)
    assert m.shunter.shunted() == [SK]


def test_rules_expired_on_the_switch_are_copied_again():
    table = ConnectionTable()
    established(table)
    m = mirror(table, shunter(min_pps=100))
    ctl = Controller()
    driver = ShuntDriver(lambda: [m], ctl)
    driver.step(0.0)
    data(table, 200)
    driver.step(0.5)
    ctl.rows = []  # idle timeout: the controller lists it no more
    driver.step(2.0)
    assert m.shunter.shunted() == [] and m.shunter.closing() == [SK]
