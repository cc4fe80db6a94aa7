"""The agent's side of elephant shunting: one thread that talks to the controller.

:class:`~mirror.shunt_policy.Shunter` decides; this thread carries the decisions out.
Every ``PLAN_INTERVAL`` (and at once when a shunted connection changes state,
so a closing connection is copied in full again) it plans each mirror's
shunts and asks the controller to install or remove them. Once a second it
folds the switch's counters into the replica, and a moment after a shunt is
removed it folds the rules' final counters, which the switch reports when
they are deleted, so no packet goes uncounted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from mirror.shunt_policy import ShuntKey

LOG = logging.getLogger("shadownet.agent.shunts")

PLAN_INTERVAL = 0.1
COUNTER_INTERVAL = 1.0
# Open vSwitch credits a rule with its datapath flows' packets every 500 ms or so (the
# revalidators), and a deleted rule reports what it was credited, not what it matched.
# So a shunt goes this long after its connection closed, when its counters are whole.
UNSHUNT_DELAY = 2.0
FINAL_DELAY = 1.5  # the removed rules' last counters have reached the controller by then
FINAL_TRIES = 5

# (method, path, body) -> (HTTP status or 0, decoded JSON body or None)
ControllerCall = Callable[[str, str, Any], tuple[int, Any]]


class ShuntDriver:
    """Runs the shunt plan of every mirror the agent holds."""

    def __init__(self, mirrors: Callable[[], list[Any]], call: ControllerCall) -> None:
        self.mirrors = mirrors
        self.call = call
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cookies: dict[tuple[str, ShuntKey], list[str]] = {}
        self._finals: list[tuple[float, int, Any, ShuntKey]] = []  # due, tries, mirror, key
        self._unshunts: list[tuple[float, Any, ShuntKey]] = []  # due, mirror, key
        self._last_counters = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="shunts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.wake.wait(PLAN_INTERVAL)
            self.wake.clear()
            try:
                self.step(time.time())
            except Exception:  # noqa: BLE001 - a bad round must not end shunting
                LOG.exception("shunt round failed")

    def step(self, now: float) -> None:
        """One round: plan and apply, counters when due, final counters when due."""
        counters_due = now - self._last_counters >= COUNTER_INTERVAL
        if counters_due:
            self._last_counters = now
        for mirrored in self.mirrors():
            self._plan(mirrored, now)
            if counters_due and mirrored.shunter.shunted():
                self._counters(mirrored, now)
        self._delete_due(now)
        self._final_counters(now)

    def _plan(self, mirrored: Any, now: float) -> None:
        name = mirrored.record.container
        with mirrored.lock:
            to_add, to_remove = mirrored.shunter.plan(mirrored.engine.state.connections.flows,
                                                      now)
        for key in to_remove:  # closing: its bulk has ended; its rules go once counted
            self._unshunts.append((now + UNSHUNT_DELAY, mirrored, key))
        for key in to_add:
            status, view = self.call("POST", f"/api/mirrors/{name}/shunts", key.body())
            with mirrored.lock:
                if status in (200, 201) and isinstance(view, dict):
                    mirrored.shunter.accepted(key)
                    self._cookies[(name, key)] = list(view.get("cookies", []))
                else:
                    mirrored.shunter.refused(key)
            LOG.info("mirror %s: shunted %s (%s)", name, key.id, status)

    def _delete_due(self, now: float) -> None:
        waiting = []
        for due, mirrored, key in self._unshunts:
            if due > now:
                waiting.append((due, mirrored, key))
                continue
            name = mirrored.record.container
            status, _ = self.call("DELETE", f"/api/mirrors/{name}/shunts/{key.id}", None)
            LOG.info("mirror %s: unshunted %s (%s)", name, key.id, status)
            if (name, key) in self._cookies:
                self._finals.append((now + FINAL_DELAY, 0, mirrored, key))
        self._unshunts = waiting

    def _counters(self, mirrored: Any, now: float) -> None:
        status, rows = self.call("GET", f"/api/mirrors/{mirrored.record.container}/shunts",
                                 None)
        if status != 200 or not isinstance(rows, list):
            return
        name = mirrored.record.container
        with mirrored.lock:
            mirrored.shunter.fold(mirrored.engine.state.connections.flows, rows, now)
            listed = {row.get("id") for row in rows if isinstance(row, dict)}
            lost = [k for k in mirrored.shunter.shunted() if k.id not in listed]
            for key in lost:
                mirrored.shunter.lost(key)
        for key in lost:  # idle-timed out on the switch
            LOG.info("mirror %s: shunt %s expired on the switch", name, key.id)
            if (name, key) in self._cookies:
                self._finals.append((now + FINAL_DELAY, 0, mirrored, key))

    def _final_counters(self, now: float) -> None:
        waiting = []
        for due, tries, mirrored, key in self._finals:
            if due > now:
                waiting.append((due, tries, mirrored, key))
                continue
            name = mirrored.record.container
            row = self._removed_row(key, self._cookies.get((name, key), []))
            if row is None and tries + 1 < FINAL_TRIES:
                waiting.append((now + FINAL_DELAY, tries + 1, mirrored, key))
                continue
            with mirrored.lock:  # on the last try without a row, forget the key
                added = mirrored.shunter.fold_final(key, row or {}, now)
            LOG.info("mirror %s: final counters of %s: %s (+%d packets)", name, key.id, row,
                     added)
            self._cookies.pop((name, key), None)
        self._finals = waiting

    def _removed_row(self, key: ShuntKey, cookies: list[str]) -> dict[str, Any] | None:
        """The removed rules' counters as a shunt row, once both are closed."""
        row: dict[str, Any] = {"id": key.id}
        for cookie in cookies:
            status, flows = self.call("GET", f"/api/flows?cookie={cookie}", None)
            if status != 200 or not isinstance(flows, list) or not flows:
                return None
            flow = flows[0]
            if flow.get("status") != "removed":
                return None
            side = "out" if flow.get("table_id") == 0 else "in"
            row[side] = {"packets": flow.get("packets"), "bytes": flow.get("bytes")}
        return row if "out" in row and "in" in row else None
