"""The redirection engine: when to move a service off a node, and how its flows follow.

Called once per monitoring interval with every node's health
(:class:`~controller.services.health.NodeHealth`) and, when flow stats came
in, the packets each node received in that interval. It returns a
:class:`Plan`: flows to move, nodes to take out of service, and events that
say why. It sends nothing; :mod:`.steering` turns moves into flow-mods.

Deciding that a node is failing is :class:`controller.hysteresis.Hysteresis`'s
job, per service since thresholds are (a node *trips* after ``confirm``
intervals beyond the enter levels, and *clears* after ``confirm`` intervals
within the exit levels; the same machine judges critical switches). Here:

- a service switches at most once per ``cooldown_seconds``, unless the node is
  plainly dead (health at or below ``dead_health``) or the new node failed
  verification: both are decisive evidence, not noise;
- a cleared node becomes a standby again; there is no automatic failback (it
  would be a second disruption for a node that just proved unreliable).

Switching over (a :class:`Switchover`):

- new flows go to the best shadow at once;
- ``stateless`` services move every existing flow now, each to its own best
  shadow (proximity differs per client); ``stateful`` ones leave existing
  connections on the old node until they end or ``drain_seconds`` pass, then
  move what is left;
- the switchover is *committed* only when counters show the new node carrying
  packets; only then, and once no flow is left on it, is the old node
  *retired* (taken out of service). A new node that was given flows but shows
  no packets within ``verify_seconds`` fails verification and the service
  moves on to the next shadow. A node that never carried a packet holds no
  connection state, so its flows move at once even for stateful services.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.hysteresis import TRIPPED, Hysteresis, Levels, Verdict
from controller.services.health import NodeHealth
from controller.services.service import Service, ServiceError, ServiceTable
from controller.services.shadow_table import FlowKey, ShadowEntry, ShadowTable

LOG = logging.getLogger(__name__)

VERIFYING = "verifying"
COMMITTED = "committed"
FAILED = "failed"
SUPERSEDED = "superseded"


@dataclass
class Switchover:
    id: int
    service: str
    from_node: str
    to_node: str
    started: float
    mode: str
    reason: dict[str, Any]
    drain_until: float | None = None
    status: str = VERIFYING
    carried: int = 0  # packets its target nodes received since the start
    flows_sent: int = 0  # flows placed on or moved to its target nodes
    targets: set[str] = field(default_factory=set)  # nodes that got flows (per-client best)
    committed_at: float | None = None
    retired_at: float | None = None
    done: bool = False  # old node retired, or the service came back to it

    @property
    def open(self) -> bool:
        """Still has work: verification, draining, or retiring the old node."""
        return not self.done

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class FlowMove:
    key: FlowKey
    from_node: str
    to_node: str
    reason: str


@dataclass(frozen=True)
class RedirectionEvent:
    ts: float
    service: str
    kind: str  # switchover, suppressed_cooldown, no_shadow, committed, verification_failed,
    #            drain_expired, retired, node_tripped, node_cleared
    node: str
    target: str | None = None
    flows: int = 0
    reason: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Plan:
    """What one interval decided."""

    moves: list[FlowMove] = field(default_factory=list)
    retire: list[tuple[str, str]] = field(default_factory=list)  # (service, node)
    events: list[RedirectionEvent] = field(default_factory=list)

    def extend(self, other: Plan) -> None:
        self.moves += other.moves
        self.retire += other.retire
        self.events += other.events


@dataclass
class _ServiceState:
    active: str
    last_switch: float | None = None
    switchovers: list[Switchover] = field(default_factory=list)
    noted: set[str] = field(default_factory=set)  # once-per-trip events already reported


class RedirectionEngine:
    def __init__(self, services: ServiceTable, shadow: ShadowTable,
                 history: int = 1000) -> None:
        self.services = services
        self.shadow = shadow
        self._state: dict[str, _ServiceState] = {}
        self.hysteresis = Hysteresis()  # verdicts by (service, node)
        self._ids = itertools.count(1)
        self.events: deque[RedirectionEvent] = deque(maxlen=history)

    # --- queries --------------------------------------------------------------
    def state(self, service: str) -> _ServiceState:
        svc = self._service(service)
        st = self._state.get(service)
        if st is None or svc.node(st.active) is None:
            st = self._state[service] = _ServiceState(active=svc.primary.name)
        return st

    def active_node(self, service: str) -> str:
        """Where new flows of ``service`` go."""
        return self.state(service).active

    def verdict(self, service: str, node: str) -> Verdict:
        return self.hysteresis.verdict((service, node), self.levels(service))

    def levels(self, service: str) -> Levels:
        """The service's thresholds as the levels its nodes are judged by."""
        th = self._service(service).thresholds
        return Levels(th.enter_probability, th.exit_probability, th.enter_health,
                      th.exit_health, th.confirm, th.min_observations, adaptive=th.adaptive)

    def tripped(self, service: str) -> set[str]:
        return {n.name for n in self._service(service).nodes
                if self.verdict(service, n.name).tripped}

    def excluded(self, service: str) -> set[str]:
        """Nodes that take no new flows: tripped, or being drained by an open switchover."""
        st = self.state(service)
        draining = {s.from_node for s in st.switchovers if s.open} - {st.active}
        return self.tripped(service) | draining

    def switchovers(self, service: str | None = None) -> list[Switchover]:
        names = [service] if service else [s.name for s in self.services]
        return [sw for n in names for sw in self.state(n).switchovers]

    def unreachable(self, node: str, now: float, evidence: dict[str, Any]) -> list[str]:
        """Trip ``node`` in every service it serves on decisive evidence that it does not
        answer at all (liveness misses, its port down): no confirmation, and the next
        :meth:`step` moves the service even within its cool-down. Returns the services
        whose verdict changed."""
        tripped = []
        for svc in self.services:
            if svc.node(node) is None or self.verdict(svc.name, node).tripped:
                continue
            trigger = {"trigger": "unreachable", "unreachable": True, "node": node, **evidence}
            self.hysteresis.trip((svc.name, node), self.levels(svc.name), now, trigger)
            self.events.append(RedirectionEvent(now, svc.name, "node_tripped", node,
                                                reason=trigger))
            tripped.append(svc.name)
        return tripped

    # --- persistence ------------------------------------------------------------
    def export_state(self) -> dict[str, dict[str, Any]]:
        """Per service: the active node and the last switchover time, for the store.

        Only these survive a restart: the active node, so a service that left a
        failing primary does not fall back to it, and ``last_switch``, so the
        cool-down still holds. Open switchovers (verification, drains) are not
        kept: after a restart they are simply no longer tracked, and node
        verdicts are re-learned from fresh probes.
        """
        return {name: {"active": st.active, "last_switch": st.last_switch}
                for name, st in self._state.items() if self.services.get(name) is not None}

    def restore_state(self, saved: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """Take back :meth:`export_state`'s output; returns the services restored.

        Services no longer declared, and active nodes that are no longer a node
        of their service, are ignored (the service starts on its primary).
        """
        restored = []
        for name, data in saved.items():
            svc = self.services.get(name)
            active = data.get("active")
            if svc is None or not isinstance(active, str) or svc.node(active) is None:
                continue
            last = data.get("last_switch")
            self._state[name] = _ServiceState(
                active=active, last_switch=float(last) if last is not None else None)
            restored.append(name)
        return restored

    # --- flows ----------------------------------------------------------------
    def place(self, key: FlowKey, client_dpid: int | None,
              health: Mapping[str, NodeHealth], now: float) -> ShadowEntry:
        """Choose the node for a new flow and record it in the shadow table.

        A client whose flow ended less than ``keep_seconds`` ago goes back to the
        same node if it is still eligible (affinity); otherwise the service's
        active node; if that is excluded too, the flow's best shadow.
        """
        st = self.state(key.service)
        svc = self._service(key.service)
        excluded = self.excluded(key.service)
        previous = self.shadow.retained(key, now)
        if previous is not None and previous.primary not in excluded and svc.node(
                previous.primary):
            primary = previous.primary
        elif st.active not in excluded:
            primary = st.active
        else:
            ranked = self.shadow.rank(svc, client_dpid, health, excluded)
            primary = ranked[0].node if ranked else st.active
        entry = self.shadow.fill(key, primary, client_dpid, health, now, excluded)
        for sw in st.switchovers:
            if sw.status == VERIFYING and sw.to_node == primary:
                sw.flows_sent += 1
                sw.targets.add(primary)
        return entry

    # --- the interval ---------------------------------------------------------
    def step(self, health: Mapping[str, NodeHealth], now: float,
             traffic: Mapping[str, int] | None = None) -> Plan:
        """One monitoring interval. ``traffic``: packets each node received this interval
        (from flow stats); None when no stats came in, which neither proves nor fails
        verification."""
        plan = Plan()
        for svc in self.services:
            plan.extend(self._step_service(svc, health, now, traffic))
        for event in plan.events:
            self.events.append(event)
            log = LOG.warning if event.kind in ("switchover", "verification_failed",
                                                "no_shadow") else LOG.info
            log("service %s: %s %s%s %s", event.service, event.kind, event.node,
                f" -> {event.target}" if event.target else "", event.reason)
        return plan

    def switch_to(self, service: str, node: str, health: Mapping[str, NodeHealth],
                  now: float, reason: str = "operator") -> Plan:
        """An operator's switchover (REST): no thresholds, no cool-down."""
        svc = self._service(service)
        if svc.node(node) is None:
            raise ServiceError(f"service {service!r} has no node {node!r}")
        st = self.state(service)
        if node == st.active:
            return Plan()
        plan = self._start(svc, st, node, health, now, {"trigger": reason})
        for event in plan.events:
            self.events.append(event)
        return plan

    def _step_service(self, svc: Service, health: Mapping[str, NodeHealth], now: float,
                      traffic: Mapping[str, int] | None) -> Plan:
        plan = Plan()
        st = self.state(svc.name)
        for node in svc.nodes:
            h = health.get(node.name)
            if h is not None:
                plan.extend(self._judge(svc, node.name, h, now))
        plan.extend(self._progress(svc, st, health, now, traffic))
        active = self.verdict(svc.name, st.active)
        if not active.tripped:
            st.noted.clear()
            return plan
        if any(sw.open and sw.from_node == st.active for sw in st.switchovers):
            return plan
        h = health.get(st.active)
        dead = (h is not None and h.raw <= svc.thresholds.dead_health) or bool(
            active.trigger.get("unreachable"))
        cooling = (st.last_switch is not None
                   and now - st.last_switch < svc.thresholds.cooldown_seconds)
        if cooling and not dead:
            if "suppressed_cooldown" not in st.noted:
                st.noted.add("suppressed_cooldown")
                plan.events.append(RedirectionEvent(
                    now, svc.name, "suppressed_cooldown", st.active,
                    reason={**active.trigger, "cooldown_left": round(
                        svc.thresholds.cooldown_seconds - (now - (st.last_switch or now)), 3)}))
            return plan
        target = self._target(svc, None, health, self.excluded(svc.name) | {st.active})
        if target is None:
            if "no_shadow" not in st.noted:
                st.noted.add("no_shadow")
                plan.events.append(RedirectionEvent(now, svc.name, "no_shadow", st.active,
                                                    reason=active.trigger))
            return plan
        plan.extend(self._start(svc, st, target, health, now,
                                {**active.trigger, "dead": dead}))
        return plan

    def _judge(self, svc: Service, node: str, h: NodeHealth, now: float) -> Plan:
        """Advance one node's verdict with a fresh observation."""
        change = self.hysteresis.observe((svc.name, node), h, now, self.levels(svc.name))
        plan = Plan()
        if change is not None:
            kind = "node_tripped" if change.kind == TRIPPED else "node_cleared"
            plan.events.append(RedirectionEvent(now, svc.name, kind, node,
                                                reason=change.reason))
        return plan

    def _target(self, svc: Service, client_dpid: int | None,
                health: Mapping[str, NodeHealth], exclude: set[str]) -> str | None:
        ranked = self.shadow.rank(svc, client_dpid, health, exclude)
        return ranked[0].node if ranked else None

    def _start(self, svc: Service, st: _ServiceState, target: str,
               health: Mapping[str, NodeHealth], now: float, reason: dict[str, Any],
               force_move: bool = False) -> Plan:
        """Point new flows at ``target``; move or drain the old node's flows."""
        old = st.active
        for sw in st.switchovers:
            if sw.status == VERIFYING and sw.to_node == old:
                sw.status = SUPERSEDED
        sw = Switchover(next(self._ids), svc.name, old, target, now, svc.mode, reason)
        st.switchovers.append(sw)
        st.active, st.last_switch = target, now
        st.noted.clear()
        plan = Plan()
        flows = self.shadow.flows_on(svc.name, old)
        if svc.stateful and not force_move:
            sw.drain_until = now + svc.drain_seconds
        else:
            plan.moves += self._move(svc, sw, flows, health, now, "switchover")
        plan.events.append(RedirectionEvent(now, svc.name, "switchover", old, target,
                                            len(flows), {**reason, "mode": svc.mode}))
        return plan

    def _move(self, svc: Service, sw: Switchover, flows: list[ShadowEntry],
              health: Mapping[str, NodeHealth], now: float, why: str) -> list[FlowMove]:
        """Each flow to its own best shadow (fresh ranking), else to the active node."""
        exclude = self.excluded(svc.name) | {sw.from_node}
        fallback = self.state(svc.name).active
        moves = []
        for entry in flows:
            dest = self._target(svc, entry.client_dpid, health, exclude) or fallback
            if dest == entry.primary:
                continue
            moves.append(FlowMove(entry.key, entry.primary, dest, why))
            self.shadow.move(entry.key, dest, health, now, why, exclude)
            if sw.status == VERIFYING:
                sw.flows_sent += 1
                sw.targets.add(dest)
        return moves

    def _progress(self, svc: Service, st: _ServiceState, health: Mapping[str, NodeHealth],
                  now: float, traffic: Mapping[str, int] | None) -> Plan:
        """Verification, drain expiry and retirement of open switchovers.

        A superseded or failed switchover still owns the flows draining on its old
        node; that node is retired once any later switchover of the service is
        committed and no flow is left on it.
        """
        plan = Plan()
        th = svc.thresholds
        for sw in list(st.switchovers):
            if sw.done:
                continue
            if sw.from_node == st.active:  # the service came back to this node
                sw.done = True
                continue
            if sw.status == VERIFYING and traffic is not None:
                sw.carried += sum(max(0, int(traffic.get(n, 0)))
                                  for n in sw.targets | {sw.to_node})
                if sw.carried >= th.verify_packets:
                    sw.status, sw.committed_at = COMMITTED, now
                    plan.events.append(RedirectionEvent(
                        now, svc.name, "committed", sw.from_node, sw.to_node,
                        reason={"packets": sw.carried,
                                "after_seconds": round(now - sw.started, 3)}))
                elif sw.flows_sent and now - sw.started >= th.verify_seconds:
                    plan.extend(self._verification_failed(svc, st, sw, health, now))
                    continue
            left = self.shadow.flows_on(svc.name, sw.from_node)
            if left and sw.drain_until is not None and now >= sw.drain_until:
                moved = self._move(svc, sw, left, health, now, "drain_expired")
                plan.moves += moved
                plan.events.append(RedirectionEvent(now, svc.name, "drain_expired",
                                                    sw.from_node, sw.to_node, len(moved)))
                left = self.shadow.flows_on(svc.name, sw.from_node)
            committed = any(s.status == COMMITTED and s.started >= sw.started
                            for s in st.switchovers)
            if committed and not left:
                sw.done, sw.retired_at = True, now
                plan.retire.append((svc.name, sw.from_node))
                plan.events.append(RedirectionEvent(now, svc.name, "retired", sw.from_node,
                                                    st.active))
        return plan

    def _verification_failed(self, svc: Service, st: _ServiceState, sw: Switchover,
                             health: Mapping[str, NodeHealth], now: float) -> Plan:
        """Nothing the switchover sent flows to answered: trip those nodes, move on."""
        sw.status = FAILED
        trigger = {"trigger": "verification_failed", "flows_sent": sw.flows_sent,
                   "packets": sw.carried, "verify_seconds": svc.thresholds.verify_seconds}
        plan = Plan()
        for name in sorted(sw.targets | {sw.to_node}):
            self.hysteresis.trip((svc.name, name), self.levels(svc.name), now, trigger)
            plan.events.append(RedirectionEvent(now, svc.name, "verification_failed", name,
                                                reason=trigger))
        if st.active != sw.to_node:
            return plan
        target = self._target(svc, None, health, self.excluded(svc.name) | {sw.from_node})
        if target is None and not self.verdict(svc.name, sw.from_node).tripped:
            target = sw.from_node  # nothing better: back to the old node while it still works
        if target is None:
            plan.events.append(RedirectionEvent(now, svc.name, "no_shadow", sw.to_node,
                                                reason=trigger))
            return plan
        plan.extend(self._start(svc, st, target, health, now, trigger, force_move=True))
        retry = st.switchovers[-1]
        for name in sorted(sw.targets - {sw.to_node}):  # per-client targets that failed too
            plan.moves += self._move(svc, retry, self.shadow.flows_on(svc.name, name), health,
                                     now, "verification_failed")
        return plan

    def _service(self, name: str) -> Service:
        svc = self.services.get(name)
        if svc is None:
            raise ServiceError(f"unknown service {name!r}")
        return svc
