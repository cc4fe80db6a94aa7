"""Switch drain: move paths off a critical switch *before* it fails, make before break.

For every switch the operator marks critical, paths that cross it keep a
bypass around it (planned in :mod:`controller.fast_failover`, installed
by :class:`controller.forwarding.Forwarder`), and a small share of flows rides
the bypass all the time so it is known to work. The switch itself is probed
(:mod:`controller.switch_probes`) and scored like a service node
(:class:`controller.services.health.HealthMonitor`, node ``switch:<dpid>``),
which includes the predictive engine's failure probability.

:class:`SwitchFailover` decides, once per interval, which critical switches to
*drain* (the forwarder recomputes every path crossing it around it) and which
to *undrain*:

- drain when the failure probability reaches ``enter_probability`` or health
  falls to ``enter_health``, for ``confirm`` consecutive intervals;
- undrain only when ``cooldown_seconds`` have passed since the drain **and**
  health has been at or above ``exit_health`` (with the probability back at or
  below ``exit_probability``) for ``confirm`` intervals. Enter and exit levels
  differ, so a switch wobbling around one line does not flap;
- the verdicts come from :class:`controller.hysteresis.Hysteresis`, the machine
  that judges service nodes too;
- draining is always allowed: a path with no way around the switch keeps it
  (see ``NetworkGraph.switch_path``), so draining never disconnects anyone;
- with ``predictive`` off the switch is scored without the engine's probability,
  so it is drained on measured health alone, at the same levels (what
  ``prediction.enabled: false`` promises); the data-plane groups and the
  port-down reroute act as always.

It sends nothing; :class:`SwitchDrain` wires prober, health, decisions and
forwarder together for the core.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.forwarding import Forwarder
from controller.hysteresis import TRIPPED, Hysteresis, Levels, Verdict
from controller.ofmsgs import OutMsg
from controller.services.health import HealthMonitor, NodeHealth, node_engine
from controller.switch_probes import SwitchProber

LOG = logging.getLogger(__name__)

DRAINED = "drained"
UNDRAINED = "undrained"


def switch_node(dpid: int) -> str:
    """The node name a switch has in the health monitor (entity ``node:switch:<dpid>``)."""
    return f"switch:{dpid}"


@dataclass(frozen=True)
class DrainSettings:
    """The ``switch_drain:`` config section."""

    critical: frozenset[int] = frozenset()
    every_switch: bool = False  # critical: all; every switch is probed and may be drained
    sample_percent: float = 2.0
    probe_interval: float = 1.0
    enter_probability: float = 0.9
    enter_health: float = 0.5
    confirm: int = 2
    cooldown_seconds: float = 30.0
    exit_health: float = 0.8
    exit_probability: float = 0.9
    predictive: bool = True

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> DrainSettings:
        """From the validated config section (see ``controller.config``)."""
        values = dict(section)
        critical = values.get("critical", ())
        values["every_switch"] = critical == "all"
        values["critical"] = frozenset() if critical == "all" else frozenset(critical)
        return cls(**values)

    def is_critical(self, dpid: int) -> bool:
        return self.every_switch or dpid in self.critical

    def critical_of(self, switches: Iterable[int]) -> set[int]:
        """The critical ones among ``switches`` (all of them with ``critical: all``)."""
        return {d for d in switches if self.is_critical(d)}


@dataclass(frozen=True)
class SwitchEvent:
    """A decision about a switch and the evidence behind it."""

    ts: float
    switch: int
    kind: str  # drained, undrained
    reason: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class SwitchDecision:
    """What one interval decided."""

    drain: list[int] = field(default_factory=list)
    undrain: list[int] = field(default_factory=list)
    events: list[SwitchEvent] = field(default_factory=list)


class SwitchFailover:
    """Per-interval drain / undrain decisions for the critical switches."""

    def __init__(self, settings: DrainSettings, history: int = 1000) -> None:
        self.settings = settings
        self.hysteresis = Hysteresis()  # verdicts by dpid
        self._drained: set[int] = set()
        self.events: deque[SwitchEvent] = deque(maxlen=history)

    @property
    def levels(self) -> Levels:
        """A drained switch stays drained ``cooldown_seconds`` at least: the clear waits."""
        s = self.settings
        return Levels(s.enter_probability, s.exit_probability, s.enter_health, s.exit_health,
                      s.confirm, hold_seconds=s.cooldown_seconds)

    def verdict(self, dpid: int) -> Verdict:
        return self.hysteresis.verdict(dpid, self.levels)

    def drained(self) -> set[int]:
        return set(self._drained)

    def step(self, health: Mapping[int, NodeHealth], now: float) -> SwitchDecision:
        """Take this interval's health per switch (by dpid); non-critical ones are ignored."""
        decision = SwitchDecision()
        for dpid in sorted(health):
            if self.settings.is_critical(dpid):
                self._judge(dpid, health[dpid], now, decision)
        for event in decision.events:
            self.events.append(event)
            LOG.warning("switch %s: %s %s", event.switch, event.kind, event.reason)
        return decision

    def _judge(self, dpid: int, h: NodeHealth, now: float, decision: SwitchDecision) -> None:
        change = self.hysteresis.observe(dpid, h, now, self.levels)
        if change is None:
            return
        if change.kind == TRIPPED:
            self._drained.add(dpid)
            decision.drain.append(dpid)
            decision.events.append(SwitchEvent(now, dpid, DRAINED, change.reason))
        elif dpid in self._drained:
            self._drained.discard(dpid)
            decision.undrain.append(dpid)
            reason = dict(change.reason)
            reason["drained_seconds"] = reason.pop("tripped_seconds")
            decision.events.append(SwitchEvent(now, dpid, UNDRAINED, reason))


class SwitchDrain:
    """Probes, health, decisions and the forwarder's drain, wired for the core.

    The core calls :meth:`switch_connected` and :meth:`switch_disconnected`
    with the switch lifecycle, offers every packet-in to :meth:`packet_in`
    first, and calls :meth:`tick` every ``probe_interval`` seconds; it sends
    what comes back. Everything runs under the core's lock.
    """

    def __init__(self, settings: DrainSettings, forwarder: Forwarder,
                 monitor: HealthMonitor | None = None,
                 prober: SwitchProber | None = None) -> None:
        self.settings = settings
        self.forwarder = forwarder
        if monitor is None:  # prediction off: health from the probes alone
            monitor = HealthMonitor(node_engine() if settings.predictive else None)
        self.monitor = monitor
        self.prober = prober or SwitchProber(timeout=settings.probe_interval)
        self.failover = SwitchFailover(settings)
        self.health: dict[int, NodeHealth] = {}

    def switch_connected(self, dpid: int) -> list[OutMsg]:
        """The probe catch rule (every switch answers its neighbours' probes)."""
        return self.prober.catch_rules(dpid)

    def switch_disconnected(self, dpid: int) -> None:
        self.prober.forget(dpid)

    def packet_in(self, dpid: int, in_port: int, data: bytes, now: float) -> bool:
        """True when the packet was a probe (then nothing else should look at it)."""
        return self.prober.packet_in(dpid, in_port, data, now)

    def tick(self, now: float, connected: Iterable[int],
             extra: Mapping[int, Mapping[str, float]] | None = None,
             ) -> tuple[list[OutMsg], list[SwitchEvent]]:
        """One interval: score the critical switches, drain/undrain, send the next probes.

        ``extra``: more metrics per switch (port drops and errors per second).
        """
        probed = sorted(self.settings.critical_of(connected))
        current: dict[int, NodeHealth] = {}
        settled = {dpid: m for dpid in probed if (m := self.prober.metrics(dpid, now))}
        if len(settled) > 1 and all(m.get("loss") == 1.0 for m in settled.values()):
            # Every switch silent at once: the controller's own probing stalled (or its
            # channel did), not every switch. No evidence this interval, as for liveness.
            LOG.warning("switch probes: every critical switch lost every probe; "
                        "read as the controller's stall, not as %d dead switches", len(settled))
            settled = {}
        for dpid, metrics in settled.items():
            metrics.update((extra or {}).get(dpid, {}))
            current[dpid] = self.monitor.observe(switch_node(dpid), now, metrics)
        self.health.update(current)
        decision = self.failover.step(current, now)
        msgs: list[OutMsg] = []
        for dpid in decision.drain:
            msgs += self.forwarder.drain(dpid)
        for dpid in decision.undrain:
            msgs += self.forwarder.undrain(dpid)
        for dpid in probed:
            msgs += self.prober.probes(dpid, self.forwarder.graph.link_ports(dpid), now)
        return msgs, decision.events
