"""Prometheus metrics of one controller instance.

Each controller gets its own registry so tests (and several apps in one
process) do not collide on global metric names.
"""

from __future__ import annotations

import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge


class RateWindow:
    """Events per second over a sliding window, for a gauge people can read directly."""

    def __init__(self, seconds: float = 10.0) -> None:
        self.seconds = seconds
        self._times: deque[float] = deque()

    def add(self, now: float | None = None) -> None:
        self._times.append(time.monotonic() if now is None else now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while self._times and self._times[0] < now - self.seconds:
            self._times.popleft()
        return len(self._times) / self.seconds


class MaxWindow:
    """The largest value seen over a sliding window."""

    def __init__(self, seconds: float = 10.0) -> None:
        self.seconds = seconds
        self._values: deque[tuple[float, float]] = deque()

    def add(self, value: float, now: float | None = None) -> None:
        self._values.append((time.monotonic() if now is None else now, value))

    def max(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while self._values and self._values[0][0] < now - self.seconds:
            self._values.popleft()
        return max((v for _, v in self._values), default=0.0)


class ControllerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.packet_in = Counter("shadownet_packet_in", "Packet-in messages received", registry=r)
        self.packet_in_window = RateWindow()
        self.packet_in_rate = Gauge(
            "shadownet_packet_in_per_second", "Packet-ins per second over the last 10 s",
            registry=r,
        )
        self.packet_in_rate.set_function(self.packet_in_window.rate)
        self.loop_lag_window = MaxWindow()
        self.loop_lag = Gauge(
            "shadownet_loop_lag_seconds",
            "Longest the controller's event loop was held up over the last 10 s "
            "(LLDP drops links held up 10 s)", registry=r,
        )
        self.loop_lag.set_function(self.loop_lag_window.max)
        self.flow_mods = Counter(
            "shadownet_flow_mods", "Flow-mod messages sent", ["command"], registry=r
        )
        self.packet_out = Counter("shadownet_packet_out", "Packet-out messages sent", registry=r)
        self.repairs = Counter(
            "shadownet_reconcile_repairs",
            "Flows repaired by reconciliation (missing reinstalled, stray deleted)",
            ["kind"],
            registry=r,
        )
        self.reconcile_runs = Counter(
            "shadownet_reconcile_runs", "Flow-stats reconciliation passes", registry=r
        )
        self.flow_removed = Counter(
            "shadownet_flow_removed", "Flow-removed messages", ["reason"], registry=r
        )
        self.table_entries = Gauge(
            "shadownet_signature_table_entries", "Signature table entries", ["status"],
            registry=r,
        )
        self.switches = Gauge("shadownet_switches", "Connected switches", registry=r)
        self.links = Gauge("shadownet_links", "Known inter-switch links", registry=r)
        self.hosts = Gauge("shadownet_hosts", "Learned hosts", registry=r)
        self.malformed = Counter(
            "shadownet_malformed_packets", "Packet-ins that could not be parsed", registry=r
        )

    def count_packet_in(self) -> None:
        self.packet_in.inc()
        self.packet_in_window.add()
