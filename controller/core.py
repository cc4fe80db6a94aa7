"""The controller's state and decisions, without os-ken.

``ControllerCore`` owns the network graph, the host table, the signature table,
the forwarder, the state store and the metrics. The os-ken app feeds it events
and sends the messages it returns; the REST API reads it. One lock guards it,
so the API never sees a half-applied change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from controller import mirroring, ofmsgs, shunt_flows
from controller.config_reload import ConfigDiff
from controller.forwarding import Forwarder, ForwardingSettings
from controller.frames import decode
from controller.host_table import HostTable
from controller.metrics import ControllerMetrics
from controller.mirroring import Mirror, MirrorError, MirrorPolicy
from controller.network_graph import Link, NetworkGraph
from controller.ofmsgs import OutMsg
from controller.port_stats import PortCounters, PortStats
from controller.reconciler import ObservedFlow, reconcile
from controller.services.health import NodeHealth, node_engine
from controller.services.runtime import ServiceRuntime
from controller.services.service import Node, Service, services_from_config
from controller.signature_table import ACTIVE, REMOVED, SignatureTable
from controller.state_store import StateStore, StoreError
from controller.switch_drain import DrainSettings, SwitchDrain
from predictive.trend import TrendEngine

LOG = logging.getLogger(__name__)
# LLDP frames sent out of a link's port since its last answer before its silence
# counts (os-ken sends one per port about every second; see link_silent).
LLDP_UNANSWERED_MIN = 3


class ControllerCore:
    def __init__(
        self,
        store: StateStore | None,
        settings: ForwardingSettings | None = None,
        history_seconds: float = 3600.0,
        mirror_policy: MirrorPolicy | None = None,
        services: list[Mapping[str, Any]] | None = None,
        clock: Callable[[], float] = time.time,
        predictive: bool = True,
        switch_drain: Mapping[str, Any] | None = None,
    ) -> None:
        """``predictive``: node health includes the predictive engine's failure
        probability, so services move *before* a node fails; off, they move only
        on measured health (the same thresholds, no engine)."""
        self.lock = threading.RLock()
        self.clock = clock
        self.started = clock()
        self.graph = NetworkGraph()
        self.hosts = HostTable()
        self.table = SignatureTable()
        self.store = store
        self.history_seconds = history_seconds
        self.metrics = ControllerMetrics()
        self.connected: set[int] = set()
        self.last_reconcile: dict[int, float] = {}
        self.shunt_counters_at: dict[int, float] = {}
        self._hosts_dirty = False
        self._unsaved: dict[str, Any] | None = None  # a batch the database could not take
        if store is not None:
            self.table.restore(store.load_flows())
            for host in store.load_hosts():
                self.hosts.restore(host)
        self.forwarder = Forwarder(self.graph, self.hosts, self.table, settings, clock)
        self.mirror_policy = mirror_policy or MirrorPolicy()
        self.services = self._service_runtime(services or [], predictive)
        self._saved_service_state: dict[str, dict[str, Any]] = {}
        if store is not None:
            # After the ST: restored service flows are re-attached to their rules there.
            self._saved_service_state = store.load_service_state()
            self.services.restore(store.load_shadow(), self._saved_service_state,
                                  self.clock())
        shadow = DrainSettings.from_config(switch_drain or {})
        self.switch_drain = SwitchDrain(replace(shadow, predictive=predictive), self.forwarder)
        if store is not None:
            self.restore_baselines()
        self.node_health: dict[str, NodeHealth] = {}
        self.port_stats = PortStats()
        self.unhealthy: dict[str, dict[str, Any]] = {}
        # Set by the os-ken app: sends messages produced outside an OpenFlow event.
        self.sender: Callable[[list[OutMsg]], None] | None = None
        if store is not None:
            for data in store.load_mirrors():
                self.forwarder.mirrors.add(Mirror.from_dict(
                    {k: v for k, v in data.items() if k != "policy"} | {
                        "policy": data.get("policy")}, self.mirror_policy))
        LOG.info("state loaded: %d flow entries (%d active), %d hosts",
                 len(self.table), self.table.active_count(), len(self.hosts))

    def _service_runtime(self, declared: list[Mapping[str, Any]], predictive: bool
                         ) -> ServiceRuntime:
        """Services (VIPs steered to nodes) share the ST, the graph and the host table."""

        def locate(node: Node) -> int | None:
            host = self.hosts.get(node.mac)
            return host.dpid if host else None

        def ensure_path(client_mac: str, node: Node) -> list[OutMsg]:
            client, server = self.hosts.get(client_mac), self.hosts.get(node.mac)
            if client is None or server is None or client.mac == server.mac:
                return []
            return self.forwarder.install_pair(client, server)

        return ServiceRuntime(
            services_from_config(declared, "services"), self.table, self.graph,
            engine=node_engine() if predictive else None,
            locate=locate, ensure_path=ensure_path,
            forward_priority=self.forwarder.settings.priority, clock=self.clock,
        )

    # --- events from the switches ------------------------------------------
    def switch_connected(self, dpid: int, ports: list[int]) -> list[OutMsg]:
        with self.lock:
            self.connected.add(dpid)
            msgs = self.forwarder.switch_connected(dpid, ports)
            msgs += self.services.switch_connected(dpid)
            msgs += self.switch_drain.switch_connected(dpid)
            # Groups are not in the ST; re-create them before reconciliation re-adds flows.
            for entry in self.table.active(dpid):
                if entry.backup_port is not None and entry.group_id is not None:
                    msgs += self.forwarder.group_msgs(entry)
            for mirror in self.forwarder.mirrors.for_dpid(dpid):
                msgs += [m for m in mirroring.install_mirror(self.table, mirror, self.clock())
                         if type(m[1]).__name__ == "OFPGroupMod"]
            return self._counted(msgs)

    def switch_disconnected(self, dpid: int) -> list[OutMsg]:
        with self.lock:
            self.connected.discard(dpid)
            self.switch_drain.switch_disconnected(dpid)
            self.port_stats.forget(dpid)
            return self._counted(self.forwarder.switch_disconnected(dpid))

    def port_changed(self, dpid: int, port: int, up: bool, name: str = "",
                     deleted: bool = False) -> list[OutMsg]:
        """A port came up, went down or was deleted. A port named as a mirror's bridge
        port is guarded (nothing from it is forwarded) until it is deleted."""
        with self.lock:
            msgs: list[OutMsg] = []
            mirrors = self.forwarder.mirrors
            if (dpid, port) in mirrors.guarded and deleted:
                mirrors.guarded.discard((dpid, port))
                msgs += mirroring.unguard_port(self.table, dpid, port, self.clock())
            elif mirroring.MIRROR_PORT_NAME.fullmatch(name) and not deleted:
                if (dpid, port) not in mirrors.guarded:
                    mirrors.guarded.add((dpid, port))
                    msgs += mirroring.guard_port(self.table, dpid, port, self.clock())
            if up:
                self.graph.port_up(dpid, port)
            else:
                msgs += self.forwarder.port_down(dpid, port)
                msgs += self._nodes_on_port_down(dpid, port)
            return self._counted(msgs)

    def _nodes_on_port_down(self, dpid: int, port: int) -> list[OutMsg]:
        """Service nodes learned on a port that went down are unreachable: act now."""
        msgs: list[OutMsg] = []
        on_port = {h.mac for h in self.hosts.all() if (h.dpid, h.port) == (dpid, port)}
        for svc in list(self.services.services):
            for node in svc.nodes:
                if node.mac in on_port:
                    msgs += self.services.unreachable(
                        node.name, {"evidence": "port_down", "dpid": dpid, "port": port},
                        self.clock())[0]
        return msgs

    def node_unreachable(self, node: str, misses: int) -> list[OutMsg]:
        """The liveness checks found ``node`` silent ``misses`` times in a row."""
        with self.lock:
            msgs, _plan = self.services.unreachable(
                node, {"evidence": "liveness", "misses": misses}, self.clock())
            return self._counted(msgs)

    def liveness_targets(self) -> dict[str, tuple[str, int]]:
        """The nodes the liveness checks watch: every node of the monitored services."""
        with self.lock:
            return self.services.liveness_targets()

    def link_added(self, link: Link) -> list[OutMsg]:
        """A link LLDP found; refused if an end is a mirror's or a container's port
        (LLDP that a mirror namespace or a container forged, not a switch)."""
        with self.lock:
            mirrors = self.forwarder.mirrors
            for dpid, port in ((link.src_dpid, link.src_port), (link.dst_dpid, link.dst_port)):
                if mirrors.is_mirror_port(dpid, port) or mirrors.is_container_port(dpid, port):
                    LOG.warning("link %s refused: port %s:%s is a mirror's or a container's",
                                link, dpid, port)
                    self.forwarder.stats.links_refused += 1
                    return []
            return self._counted(self.forwarder.link_added(link))

    def link_silent(self, link: Link, unanswered: int) -> tuple[bool, list[OutMsg]]:
        """LLDP discovery timed ``link`` out; returns (believed, messages).

        Silence means the link is dead only if the controller kept asking. Its
        LLDP sender stalls behind a switch too busy to read its flow-mods, and
        then every link on every switch times out at once while all of them
        work: rerouting them all made the stall worse. With both ports up and
        fewer than ``LLDP_UNANSWERED_MIN`` frames sent since the last answer, the
        link is kept; a port going down still removes it at once.
        """
        with self.lock:
            ends = ((link.src_dpid, link.src_port), (link.dst_dpid, link.dst_port))
            if unanswered < LLDP_UNANSWERED_MIN and all(
                    self.graph.is_port_up(dpid, port) for dpid, port in ends):
                return False, []
            return True, self._counted(self.forwarder.link_removed(link))

    def packet_in(self, dpid: int, in_port: int, data: bytes) -> list[OutMsg]:
        with self.lock:
            self.metrics.count_packet_in()
            if self.switch_drain.packet_in(dpid, in_port, data, self.clock()):
                return []  # a switch health probe
            before_hosts = len(self.hosts)
            malformed = self.forwarder.stats.malformed
            frame = decode(data)  # once, for the services and the forwarder
            # Services first: the forwarder would flood a VIP nobody owns.
            if len(self.services.services) and frame is not None:
                msgs = self.services.packet_in(dpid, in_port, data, frame)
                if msgs is not None:
                    return self._counted(msgs)
            msgs = self.forwarder.packet_in(dpid, in_port, data, frame)
            if self.forwarder.stats.malformed != malformed:
                self.metrics.malformed.inc()
            if len(self.hosts) != before_hosts or msgs:
                self._hosts_dirty = True
            return self._counted(msgs)

    def flow_removed(
        self, cookie: int, reason: str, packets: int, byte_count: int
    ) -> list[OutMsg]:
        with self.lock:
            entry, msgs = self.forwarder.flow_removed(cookie, reason, packets, byte_count)
            if entry is not None:
                self.metrics.flow_removed.labels(reason).inc()
                if entry.kind == "service":
                    msgs += self.services.flow_removed(cookie)
            return self._counted(msgs)

    def flow_stats(self, dpid: int, observed: list[ObservedFlow], requested_at: float
                   ) -> list[OutMsg]:
        """Reconcile one switch; returns the repair messages."""
        with self.lock:
            result = reconcile(self.table, dpid, observed, requested_at, self.clock())
            self.last_reconcile[dpid] = self.clock()
            self.metrics.reconcile_runs.inc()
            msgs: list[OutMsg] = []
            for entry in result.missing:
                LOG.info("reconcile: reinstalling missing flow %s on %s", hex(entry.cookie), dpid)
                entry.installed_at = self.clock()
                if entry.kind == "service":
                    # Steering rules rewrite addresses; only the steering knows how.
                    mod = self.services.steering.rebuild(entry)
                    if mod is not None:
                        msgs.append((dpid, mod))
                    continue
                if entry.backup_port is not None:
                    msgs += self.forwarder.group_msgs(entry)
                msgs.append((dpid, ofmsgs.flow_add(entry)))
            for flow in result.stray:
                LOG.info("reconcile: deleting stray flow %s on %s", hex(flow.cookie), dpid)
                msgs.append((dpid, ofmsgs.flow_delete_cookie(flow.cookie)))
            if result.missing:
                self.metrics.repairs.labels("missing").inc(len(result.missing))
            if result.stray:
                self.metrics.repairs.labels("stray").inc(len(result.stray))
            return self._counted(msgs)

    # --- services ---------------------------------------------------------------
    def service_tick(self) -> list[OutMsg]:
        """One monitoring interval for services (after a round of flow stats)."""
        with self.lock:
            msgs, _plan = self.services.tick(self.clock())
            return self._counted(msgs)

    def switch_tick(self) -> list[OutMsg]:
        """One switch-probe interval: score critical switches, drain or undrain, probe."""
        with self.lock:
            critical = self.switch_drain.settings.critical_of(self.connected)
            extra = {dpid: self.port_stats.switch(dpid) for dpid in critical}
            msgs, events = self.switch_drain.tick(self.clock(), self.connected, extra)
            for event in events:
                LOG.info("switch drain: %s", event.as_dict())
            return self._counted(msgs)

    def switch_health(self) -> dict[str, Any]:
        """Critical switches: health, drained or not, and the decisions so far."""
        with self.lock:
            sh = self.switch_drain
            return {
                "critical": sorted(sh.settings.critical_of(self.connected)),
                "drained": sorted(self.forwarder.drained),
                "sample_percent": self.forwarder.settings.bypass_sample_percent,
                "health": {str(dpid): _health_view(h) for dpid, h in sh.health.items()},
                "ports": {str(dpid): self.port_stats.ports(dpid)
                          for dpid in sh.settings.critical_of(self.connected)},
                "events": [e.as_dict() for e in sh.failover.events],
            }

    def service_nodes(self) -> list[Service]:
        """The services whose nodes the Flow Monitor probes."""
        with self.lock:
            return [svc for svc in self.services.services if svc.monitor]

    def observe_node(self, node: str, ts: float, metrics: dict[str, float]) -> None:
        """One interval of probe results for a node (the Flow Monitor feeds this)."""
        with self.lock:
            health = self.services.observe(node, ts, {**self._node_port_rates(node), **metrics})
            self.node_health[node] = health

    def _node_port_rates(self, name: str) -> dict[str, float]:
        """Drops and errors on the edge port a service node is learned on."""
        for svc in self.services.services:
            node = svc.node(name)
            host = self.hosts.get(node.mac) if node is not None else None
            if host is not None:
                rates = self.port_stats.port(host.dpid, host.port)
                return {k: rates[k] for k in ("drops_per_s", "errors_per_s") if k in rates}
        return {}

    def port_stats_reply(self, dpid: int, counters: list[PortCounters]) -> None:
        """One switch's port counters (the Flow Monitor polls them every interval)."""
        with self.lock:
            self.port_stats.update(dpid, self.clock(), counters)

    def service_list(self) -> list[dict[str, Any]]:
        with self.lock:
            rt = self.services
            return [svc.as_dict() | {
                "active_node": rt.redirection.active_node(svc.name),
                "flows": len(rt.shadow.entries(svc.name, True)),
                "health": {n.name: _health_view(self.node_health.get(n.name))
                           for n in svc.nodes},
            } for svc in rt.services]

    def add_service(self, data: object) -> dict[str, Any]:
        """Declare a service from an unchecked mapping (raises ServiceError on bad input)."""
        with self.lock:
            svc = Service.from_dict(data, "service")
            self.send(self._counted(self.services.declare(svc, self.connected)))
            return svc.as_dict()

    def _engines(self) -> dict[str, TrendEngine]:
        """The predictive engines whose baselines outlive a restart, by name."""
        engines = {"nodes": self.services.health.engine,
                   "switches": self.switch_drain.monitor.engine}
        return {name: engine for name, engine in engines.items() if engine is not None}

    def save_baselines(self) -> None:
        """Store every engine's baselines (the app calls this periodically and on stop)."""
        if self.store is None:
            return
        with self.lock:
            states = {name: engine.state_dict() for name, engine in self._engines().items()}
        for name, state in states.items():
            try:
                self.store.save_engine_state(name, state, self.clock())
            except StoreError as exc:
                LOG.error("baselines of %s not saved: %s", name, exc)

    def restore_baselines(self) -> None:
        """Take back the stored baselines; a stored state that does not fit is dropped
        (the engine learns afresh) and said so."""
        assert self.store is not None
        for name, engine in self._engines().items():
            state = self.store.load_engine_state(name)
            if state is None:
                continue
            try:
                engine.restore_state(state)
            except (ValueError, KeyError, TypeError) as exc:
                LOG.warning("stored %s baselines ignored: %s", name, exc)
                continue
            LOG.info("%s baselines restored: %d entities", name, len(state.get("entities", {})))

    def reconfigure(self, change: ConfigDiff) -> list[OutMsg]:
        """Apply a reload's diff (see :mod:`controller.config_reload`); flows that the
        change does not concern stay as they are. Returns the messages to send."""
        cfg = change.config
        with self.lock:
            fwd = cfg["forwarding"]
            self.forwarder.settings = replace(self.forwarder.settings,
                                              idle_timeout=fwd["idle_timeout"],
                                              hard_timeout=fwd["hard_timeout"])
            self.history_seconds = cfg["reconcile"]["history_seconds"]
            drain = replace(DrainSettings.from_config(cfg["switch_drain"]),
                            predictive=self.switch_drain.settings.predictive)
            self.switch_drain.settings = self.switch_drain.failover.settings = drain
            # Mirrors registered from now on get the new default policy; registered
            # ones keep the rules they were installed with until they register again.
            self.mirror_policy = MirrorPolicy.from_dict(cfg["mirroring"], "mirroring")
            msgs: list[OutMsg] = []
            declared = {s["name"]: s for s in cfg.get("services", [])}
            for name in change.services_withdrawn:
                msgs += self.services.withdraw(name, self.connected)
            for name in change.services_added + change.services_replaced:
                svc = Service.from_dict(declared[name], f"services ({name})")
                msgs += self.services.declare(svc, self.connected)
            return self._counted(msgs)

    def service_shadow(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            if self.services.services.get(name) is None:
                raise LookupError(f"unknown service {name!r}")
            return [e.as_dict() for e in self.services.shadow.entries(name)]

    def switch_service(self, name: str, node: str) -> dict[str, Any]:
        with self.lock:
            if self.services.services.get(name) is None:
                raise LookupError(f"unknown service {name!r}")
            msgs, plan = self.services.switch_to(name, node)
            self.send(self._counted(msgs))
            return {"service": name, "active_node": self.services.redirection.active_node(name),
                    "moves": len(plan.moves), "events": [e.as_dict() for e in plan.events]}

    def service_events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [e.as_dict() for e in self.services.redirection.events]

    # --- mirrors ----------------------------------------------------------------
    def add_mirror(self, data: object) -> tuple[dict[str, Any], list[OutMsg]]:
        """Register a container's mirror port (raises MirrorError on bad input)."""
        with self.lock:
            mirror = Mirror.from_dict(data, self.mirror_policy)
            self._check_mirror_ports(mirror)
            if not mirror.policy.applies_to(mirror.tenant):
                mirror.policy = MirrorPolicy(protocols=["arp"], sample=1.0)
                LOG.info("mirror %s: tenant %s not selected by policy; ARP only",
                         mirror.container, mirror.tenant)
            old = self.forwarder.mirrors.add(mirror)
            msgs = []
            if old is not None and (old.dpid, old.mirror_port) != (mirror.dpid,
                                                                    mirror.mirror_port):
                msgs += mirroring.remove_mirror(self.table, old, self.clock())
            msgs += mirroring.install_mirror(self.table, mirror, self.clock())
            self.graph.port_up(mirror.dpid, mirror.mirror_port)
            if self.store is not None:
                self.store.save_mirror(mirror.as_dict())
            return mirror.as_dict(), self._counted(msgs)

    def _check_mirror_ports(self, mirror: Mirror) -> None:
        """The ids of a mirror must name the live network, and the mirror port must be
        nobody else's: copying a host's traffic to another host's port would hand it
        over, and a mirror port's read-only guard would black-hole that host."""
        dpid = mirror.dpid
        if not self.graph.has_switch(dpid):
            raise MirrorError(f"mirror: switch {dpid} is not connected")
        if not self.graph.is_port_up(dpid, mirror.container_port):
            raise MirrorError(f"mirror: switch {dpid} has no port {mirror.container_port}")
        for name, port in (("container_port", mirror.container_port),
                           ("mirror_port", mirror.mirror_port)):
            if self.graph.is_link_port(dpid, port):
                raise MirrorError(f"mirror: {name} {port} on switch {dpid} links to "
                                  "another switch")
        for host in self.hosts.all():
            # A host with an address (a mirror's own veth may announce itself over
            # IPv6 before it is registered and guarded, but it has no IPv4 address).
            if (host.dpid, host.port) == (dpid, mirror.mirror_port) and host.ips:
                raise MirrorError(f"mirror: mirror_port {mirror.mirror_port} on switch {dpid} "
                                  f"faces host {host.mac}")
        for other in self.forwarder.mirrors.all():
            if other.container != mirror.container and (other.dpid, other.container_port) == (
                    dpid, mirror.mirror_port):
                raise MirrorError(f"mirror: mirror_port {mirror.mirror_port} on switch {dpid} "
                                  f"is container {other.container!r}'s port")

    def send(self, msgs: list[OutMsg]) -> None:
        if self.sender is not None and msgs:
            self.sender(msgs)

    def remove_mirror(self, container: str) -> list[OutMsg] | None:
        with self.lock:
            mirror = self.forwarder.mirrors.remove(container)
            if mirror is None:
                return None
            if self.store is not None:
                self.store.delete_mirror(container)
            msgs = mirroring.remove_mirror(self.table, mirror, self.clock())
            msgs += shunt_flows.remove_shunts(self.table, container, None, self.clock(),
                                               reason="mirror_removed")
            return self._counted(msgs)

    # --- elephant shunts (see controller/shunt_flows.py) -------------------------
    def add_shunt(self, container: str, data: object
                  ) -> tuple[dict[str, Any], bool, list[OutMsg]]:
        """Stop copying one connection's bulk segments; (view, created, messages).

        Raises KeyError for an unknown mirror and MirrorError for a bad body.
        """
        with self.lock:
            mirror = self.forwarder.mirrors.get(container)
            if mirror is None:
                raise KeyError(container)
            shunt = shunt_flows.Shunt.from_dict(container, data)
            created, msgs = shunt_flows.install_shunt(self.table, mirror, shunt, self.clock())
            (view,) = shunt_flows.shunt_views(self.table, container,
                                               self.shunt_counters_at.get(mirror.dpid), shunt.id)
            return view, created, self._counted(msgs)

    def remove_shunt(self, container: str, shunt_id: str) -> list[OutMsg] | None:
        """Copy the whole connection again; None when there is no such shunt."""
        with self.lock:
            msgs = shunt_flows.remove_shunts(self.table, container, shunt_id, self.clock())
            return self._counted(msgs) if msgs else None

    def shunts(self, container: str) -> list[dict[str, Any]] | None:
        """A mirror's active shunts with their counters; None for an unknown mirror."""
        with self.lock:
            mirror = self.forwarder.mirrors.get(container)
            if mirror is None:
                return None
            return shunt_flows.shunt_views(self.table, container,
                                            self.shunt_counters_at.get(mirror.dpid))

    def shunt_cookies(self) -> dict[int, list[int]]:
        with self.lock:
            return shunt_flows.shunt_cookies(self.table)

    def shunt_counters(self, dpid: int, observed: list[ObservedFlow]) -> None:
        """Counters from the fast poll of shunt flows (no reconciliation: a partial view)."""
        with self.lock:
            now = self.clock()
            for flow in observed:
                entry = self.table.by_cookie(flow.cookie)
                if entry is not None and entry.active:
                    # Every second per shunt: kept in memory; reconciliation persists them.
                    self.table.update_counters(entry, flow.packets, flow.bytes, now,
                                               persist=False)
            self.shunt_counters_at[dpid] = now

    def mirror_list(self) -> list[dict[str, Any]]:
        with self.lock:
            return [m.as_dict() for m in self.forwarder.mirrors.all()]

    def set_health(self, host: str, healthy: bool, reason: str) -> dict[str, Any]:
        """Mark a host healthy or not (from a mirror rule's remediation hook)."""
        with self.lock:
            target = self.hosts.lookup(host)
            if target is not None:
                key = target.mac
            elif any(m.mac == host.lower() for m in self.forwarder.mirrors.all()):
                key = host.lower()  # a mirrored container not heard from yet
            else:
                raise LookupError(f"no host {host!r} (not learned, not a mirrored container)")
            if healthy:
                self.unhealthy.pop(key, None)
            else:
                self.unhealthy[key] = {"reason": reason, "since": self.clock()}
            return {"host": key, "healthy": healthy, "reason": reason}

    # --- persistence ----------------------------------------------------------
    def flush(self) -> int:
        """Write changed rows to the store; returns how many flow rows were written.

        The ShT entries that changed (expired ones deleted) and the services whose
        active node or last switchover changed go in the same transaction as the
        flows, so a restart sees steering rules and the flows they belong to agree.
        """
        with self.lock:
            horizon = self.clock() - self.history_seconds
            pruned = self.table.prune_removed(horizon) if self.history_seconds else []
            rows = self.table.take_dirty()
            hosts = self.hosts.all() if self._hosts_dirty else []
            self._hosts_dirty = False
            changed, gone = self.services.shadow.take_dirty()
            # Records are copied under the lock: the entries keep changing after it.
            shadow = [e.as_record() for e in changed]
            deleted_shadow = [(k.service, k.client_ip, k.client_port) for k in gone]
            state = self.services.redirection.export_state()
            service_state = {name: data for name, data in state.items()
                             if self._saved_service_state.get(name) != data}
            self._saved_service_state.update(service_state)
        batch: dict[str, Any] = {"flows": rows, "hosts": hosts, "deleted_flow_ids": pruned,
                                 "shadow": shadow, "deleted_shadow": deleted_shadow,
                                 "service_state": service_state}
        if self._unsaved is not None:  # what the database could not take last time
            batch, self._unsaved = _merge_batches(self._unsaved, batch), None
        if self.store is None or not any(batch.values()):
            return 0
        try:
            self.store.save(**batch)
        except StoreError as exc:
            # The database is out of reach (the store retried already): keep the whole
            # batch for the next flush, so nothing is lost while it is away.
            LOG.error("state flush: %s; keeping %d flow rows for the next flush",
                      exc, len(batch["flows"]))
            self._unsaved = batch
            return 0
        except (SQLAlchemyError, ValueError, TypeError, OverflowError) as exc:
            # One bad row must not lose the rest of the batch: retry row by row.
            LOG.error("state flush failed (%s: %s); saving row by row",
                      type(exc).__name__, str(exc)[:200])
            for refused in self.store.save_each(**batch):
                LOG.error("state flush: not saved: %s", refused)
        return len(batch["flows"])

    # --- queries for the REST API -------------------------------------------
    def _counted(self, msgs: list[OutMsg]) -> list[OutMsg]:
        for _, msg in msgs:
            name = type(msg).__name__
            if name == "OFPFlowMod":
                self.metrics.flow_mods.labels(_FLOW_MOD_COMMANDS.get(msg.command, "other")).inc()
            elif name == "OFPPacketOut":
                self.metrics.packet_out.inc()
        return msgs

    def refresh_gauges(self) -> None:
        with self.lock:
            self.metrics.table_entries.labels(ACTIVE).set(self.table.active_count())
            self.metrics.table_entries.labels(REMOVED).set(
                len(self.table) - self.table.active_count()
            )
            self.metrics.switches.set(len(self.connected))
            self.metrics.links.set(len(self.graph.links()))
            self.metrics.hosts.set(len(self.hosts))

    def switches(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {
                    "dpid": dpid,
                    "dpid_hex": f"{dpid:016x}",
                    "connected": dpid in self.connected,
                    "ports": self.graph.ports(dpid),
                    "edge_ports": self.graph.edge_ports(dpid),
                    "flows": len(self.table.active(dpid)),
                    "last_reconcile": self.last_reconcile.get(dpid),
                }
                for dpid in self.graph.switches()
            ]

    def links(self) -> list[dict[str, int]]:
        with self.lock:
            return [link.as_dict() for link in self.graph.links()]

    def host_list(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                h.as_dict() | {"healthy": h.mac not in self.unhealthy,
                               "health_reason": self.unhealthy.get(h.mac, {}).get("reason")}
                for h in self.hosts.all()
            ]

    def path(self, src: str, dst: str) -> dict[str, Any]:
        """The path between two hosts (by MAC or IP). Raises LookupError naming the unknown one."""
        with self.lock:
            a, b = self.hosts.lookup(src), self.hosts.lookup(dst)
            if a is None:
                raise LookupError(f"unknown host {src!r}")
            if b is None:
                raise LookupError(f"unknown host {dst!r}")
            switch_path = self.graph.switch_path(a.dpid, b.dpid)
            if switch_path is None:
                return {"src": a.as_dict(), "dst": b.as_dict(), "reachable": False, "hops": []}
            hops = self.graph.hops(switch_path, a.port, b.port)
            installed = {
                e.dpid: e.as_dict()["cookie"]
                for e in self.table.active_paths().get(f"{a.mac}>{b.mac}", [])
                if e.kind == "forward"
            }
            return {
                "src": a.as_dict(),
                "dst": b.as_dict(),
                "reachable": True,
                "switches": switch_path,
                "hops": [
                    {"dpid": h.dpid, "in_port": h.in_port, "out_port": h.out_port,
                     "installed_cookie": installed.get(h.dpid)}
                    for h in hops
                ],
            }

    def flows(self, **filters: Any) -> list[dict[str, Any]]:
        with self.lock:
            return [e.as_dict() for e in self.table.query(**filters)]

    def health(self) -> dict[str, Any]:
        with self.lock:
            db_ok = self.store.ping() if self.store is not None else None
            return {
                "status": "ok" if db_ok in (True, None) else "degraded",
                "uptime_s": round(self.clock() - self.started, 3),
                "switches": len(self.connected),
                "links": len(self.graph.links()),
                "hosts": len(self.hosts),
                "flows_active": self.table.active_count(),
                "flows_total": len(self.table),
                "mirrors": len(self.forwarder.mirrors),
                "database": {"url": _redact(self.store.url) if self.store else None,
                             "ok": db_ok},
                "packet_in": self.forwarder.stats.packet_in,
                "malformed_packets": self.forwarder.stats.malformed,
            }


_FLOW_MOD_COMMANDS = {0: "add", 1: "modify", 2: "modify_strict", 3: "delete", 4: "delete_strict"}


def _merge_batches(older: dict[str, Any], newer: dict[str, Any]) -> dict[str, Any]:
    """One flush batch from two: the newer row wins for a flow, host list, ShT entry
    or service, and a newer deletion beats an older row (and the other way round)."""
    gone_flows = set(newer["deleted_flow_ids"])
    flows = {r.entry_id: r for r in older["flows"] if r.entry_id not in gone_flows}
    flows.update((r.entry_id, r) for r in newer["flows"])

    def shadow_key(record: dict[str, Any]) -> tuple[Any, ...]:
        return record["service"], record["client_ip"], record["client_port"]

    gone_shadow = set(newer["deleted_shadow"])
    shadow = {shadow_key(r): r for r in older["shadow"] if shadow_key(r) not in gone_shadow}
    shadow.update((shadow_key(r), r) for r in newer["shadow"])
    deleted_shadow = [k for k in older["deleted_shadow"] if k not in shadow]
    return {"flows": list(flows.values()), "hosts": newer["hosts"] or older["hosts"],
            "deleted_flow_ids": older["deleted_flow_ids"] + newer["deleted_flow_ids"],
            "shadow": list(shadow.values()),
            "deleted_shadow": deleted_shadow + newer["deleted_shadow"],
            "service_state": older["service_state"] | newer["service_state"]}


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _health_view(health: NodeHealth | None) -> dict[str, Any] | None:
    if health is None:
        return None
    return {"score": round(health.score, 3),
            "failure_probability": round(health.failure_probability, 3),
            "reason": health.reason()}
