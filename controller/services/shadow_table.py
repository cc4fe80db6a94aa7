"""The Shadow Table (ShT): for every service flow, the nodes it could move to, best first.

It runs parallel to the Flow Signature Table (ST). The ST holds what is
installed (the steering rules of a flow, by cookie); the ShT holds, for the
same flow, which node serves it now (the *primary*) and its
``shadow_node_list``: every other eligible node, ranked, so that when the
primary has to go, the target is already known and nothing is computed under
pressure.

A shadow's rank score is a weighted mean of four components, each in [0, 1]:

- **availability**: the node's current health score (:mod:`.health`);
- **capacity**: spare capacity, ``1 - flows on the node / its declared capacity``;
- **proximity**: ``1 / (1 + hops + path latency / latency_ref_ms)`` from the
  client's edge switch to the node's, over the topology graph, so a
  millisecond of latency costs as much as a switch hop by default;
- **history**: the node's long-run average health (historical performance).

Nodes that do not answer probes, that sit behind no path, or that the caller
excludes (e.g. nodes the redirection engine has tripped) are not listed at
all. Ties are broken by health, then by the operator's declared order, then
by name, so the ranking is deterministic.

Entries outlive their flows for ``keep_seconds`` (expiration criteria): a
client that returns soon after its flow ended can be sent back to the same
node (affinity), and the record of a move stays inspectable for a while.

Like the ST, the table remembers which entries changed (``take_dirty``) so the
controller writes only those to its store, and can be ``restore``d from it
after a restart: a steered flow keeps its node and its shadow list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from controller.network_graph import NetworkGraph
from controller.services.health import NodeHealth
from controller.services.service import Node, Service, ServiceError, ServiceTable, check

ACTIVE = "active"
ENDED = "ended"
UNKNOWN = 0.5  # availability / history of a node never probed: neither trusted nor shunned
COMPONENTS = ("availability", "capacity", "proximity", "history")


@dataclass(frozen=True)
class ShadowWeights:
    """How much each component counts in the rank score (normalised by their sum)."""

    availability: float = 0.4
    capacity: float = 0.2
    proximity: float = 0.25
    history: float = 0.15

    def __post_init__(self) -> None:
        for name in COMPONENTS:
            check.number(getattr(self, name), f"shadow.weights.{name}", 0)
        if sum(getattr(self, n) for n in COMPONENTS) <= 0:
            raise ServiceError("shadow.weights: at least one weight must be above 0")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ShadowWeights:
        data = dict(check.mapping(data or {}, "shadow.weights"))
        check.keys(data, "shadow.weights", COMPONENTS)
        return cls(**data)

    def score(self, components: Mapping[str, float]) -> float:
        total: float = sum(getattr(self, n) for n in COMPONENTS)
        weighted: float = sum(getattr(self, n) * components[n] for n in COMPONENTS)
        return weighted / total


@dataclass(frozen=True)
class FlowKey:
    """A client flow to a service: the client side of its 5-tuple plus the service."""

    service: str
    client_ip: str
    client_port: int

    def __str__(self) -> str:
        return f"{self.service}|{self.client_ip}:{self.client_port}"


@dataclass(frozen=True)
class ShadowNode:
    """One node in a flow's shadow_node_list."""

    node: str
    health: float
    priority: int  # the operator's declared order: 0 = the service's primary
    score: float  # rank score, 0..1
    components: dict[str, float]
    hops: int | None = None
    latency_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "health": round(self.health, 4), "priority": self.priority,
                "score": round(self.score, 4),
                "components": {k: round(v, 4) for k, v in self.components.items()},
                "hops": self.hops, "latency_ms": self.latency_ms}


@dataclass
class ShadowEntry:
    key: FlowKey
    primary: str
    client_dpid: int | None
    shadows: list[ShadowNode]
    created: float
    updated: float
    status: str = ACTIVE
    ended_at: float | None = None
    end_reason: str | None = None
    cookies: set[int] = field(default_factory=set)
    moves: list[dict[str, Any]] = field(default_factory=list)
    client_mac: str | None = None  # so a restarted controller can re-install its path

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    @property
    def shadow_node_list(self) -> list[ShadowNode]:
        """The issue's name for :attr:`shadows`: ordered, best first."""
        return self.shadows

    def as_dict(self) -> dict[str, Any]:
        return {
            "flow": str(self.key), "service": self.key.service, "client_ip": self.key.client_ip,
            "client_port": self.key.client_port, "primary": self.primary,
            "client_dpid": self.client_dpid,
            "shadow_node_list": [s.as_dict() for s in self.shadows],
            "created": self.created, "updated": self.updated, "status": self.status,
            "ended_at": self.ended_at, "end_reason": self.end_reason,
            "cookies": [hex(c) for c in sorted(self.cookies)], "moves": list(self.moves),
        }

    def as_record(self) -> dict[str, Any]:
        """Everything needed to rebuild the entry, unrounded (the store's row)."""
        return {
            "service": self.key.service, "client_ip": self.key.client_ip,
            "client_port": self.key.client_port, "primary": self.primary,
            "client_dpid": self.client_dpid, "client_mac": self.client_mac,
            "shadows": [asdict(s) for s in self.shadows], "created": self.created,
            "updated": self.updated, "status": self.status, "ended_at": self.ended_at,
            "end_reason": self.end_reason, "cookies": sorted(self.cookies),
            "moves": [dict(m) for m in self.moves],
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ShadowEntry:
        return cls(
            FlowKey(record["service"], record["client_ip"], int(record["client_port"])),
            record["primary"], record.get("client_dpid"),
            [ShadowNode(**s) for s in record.get("shadows") or []],
            record["created"], record["updated"], record.get("status") or ACTIVE,
            record.get("ended_at"), record.get("end_reason"),
            {int(c) for c in record.get("cookies") or []},
            [dict(m) for m in record.get("moves") or []], record.get("client_mac"))


class ShadowTable:
    """Shadow entries by flow, with the ranking that fills them."""

    def __init__(
        self,
        services: ServiceTable,
        graph: NetworkGraph | None = None,
        weights: ShadowWeights | None = None,
        *,
        keep_seconds: float = 300.0,
        redundancy: int = 1,
        latency_ref_ms: float = 1.0,
        link_latency_ms: Mapping[frozenset[int], float] | None = None,
        locate: Callable[[Node], int | None] | None = None,
    ) -> None:
        """``locate`` finds a node's switch (e.g. from the host table) when it is not declared;
        ``link_latency_ms`` maps ``frozenset({dpid_a, dpid_b})`` to a measured link latency."""
        self.services = services
        self.graph = graph
        self.weights = weights or ShadowWeights()
        self.keep_seconds = keep_seconds
        self.redundancy = redundancy
        self.latency_ref_ms = latency_ref_ms
        self.link_latency_ms = dict(link_latency_ms or {})
        self.locate = locate or (lambda node: node.dpid)
        self._entries: dict[FlowKey, ShadowEntry] = {}
        self._by_cookie: dict[int, FlowKey] = {}
        self._dirty: set[FlowKey] = set()  # changed since the last take_dirty
        self._gone: set[FlowKey] = set()  # expired (or dropped at restore) since then

    def __len__(self) -> int:
        return len(self._entries)

    # --- ranking --------------------------------------------------------------
    def proximity(self, client_dpid: int | None, node: Node) -> tuple[float, int | None,
                                                                       float | None] | None:
        """(proximity component, hops, path latency); None when no path reaches the node."""
        node_dpid = self.locate(node)
        if self.graph is None or client_dpid is None or node_dpid is None:
            return UNKNOWN, None, None
        path = self.graph.switch_path(client_dpid, node_dpid)
        if path is None:
            return None
        hops = len(path) - 1
        latency = sum(self.link_latency_ms.get(frozenset(pair), 0.0)
                      for pair in zip(path, path[1:], strict=False))
        return 1.0 / (1.0 + hops + latency / self.latency_ref_ms), hops, latency

    def load(self, node: Node) -> int:
        """Active flows on a host (by IP, across services): what its capacity is spent on."""
        count = 0
        for entry in self._entries.values():
            if not entry.active:
                continue
            svc = self.services.get(entry.key.service)
            current = svc.node(entry.primary) if svc else None
            if current is not None and current.ip == node.ip:
                count += 1
        return count

    def rank(
        self,
        service: Service,
        client_dpid: int | None,
        health: Mapping[str, NodeHealth],
        exclude: Iterable[str] = (),
    ) -> list[ShadowNode]:
        """Every eligible node of ``service`` for a client at ``client_dpid``, best first."""
        skip = set(exclude)
        ranked = []
        for node in service.nodes:
            if node.name in skip:
                continue
            h = health.get(node.name)
            if h is not None and not h.available:
                continue
            prox = self.proximity(client_dpid, node)
            if prox is None:
                continue
            components = {
                "availability": h.score if h else UNKNOWN,
                "capacity": max(0.0, 1.0 - self.load(node) / node.capacity),
                "proximity": prox[0],
                "history": h.history if h else UNKNOWN,
            }
            ranked.append(ShadowNode(node.name, components["availability"],
                                     service.preference(node.name),
                                     self.weights.score(components), components,
                                     prox[1], prox[2]))
        ranked.sort(key=lambda s: (-round(s.score, 9), -round(s.health, 9), s.priority, s.node))
        return ranked

    # --- entries --------------------------------------------------------------
    def fill(
        self,
        key: FlowKey,
        primary: str,
        client_dpid: int | None,
        health: Mapping[str, NodeHealth],
        now: float,
        exclude: Iterable[str] = (),
    ) -> ShadowEntry:
        """Record a new flow on ``primary`` and fill its shadow list from every other node."""
        service = self._service(key)
        if service.node(primary) is None:
            raise ServiceError(f"service {service.name!r} has no node {primary!r}")
        entry = ShadowEntry(key, primary, client_dpid, [], now, now)
        old = self._entries.get(key)
        if old is not None:
            for cookie in old.cookies:
                self._by_cookie.pop(cookie, None)
        self._entries[key] = entry
        entry.shadows = self.rank(service, client_dpid, health, {primary, *exclude})
        self._touch(key)
        return entry

    def get(self, key: FlowKey) -> ShadowEntry | None:
        return self._entries.get(key)

    def retained(self, key: FlowKey, now: float) -> ShadowEntry | None:
        """An ended entry still inside its keep window (for affinity), else None."""
        entry = self._entries.get(key)
        if entry is None or entry.active or entry.ended_at is None:
            return None
        return entry if now - entry.ended_at <= self.keep_seconds else None

    def best_shadow(self, key: FlowKey, exclude: Iterable[str] = ()) -> ShadowNode | None:
        """The first shadow of a flow not in ``exclude``: where it goes if its primary fails."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        skip = set(exclude)
        return next((s for s in entry.shadows if s.node not in skip), None)

    def refresh(self, health: Mapping[str, NodeHealth], now: float,
                exclude: Iterable[str] = (), service: str | None = None) -> None:
        """Re-rank active flows' shadows (of one service, or all) with the latest health
        and load."""
        skip = set(exclude)
        for entry in self._entries.values():
            if entry.active and (service is None or entry.key.service == service):
                svc = self._service(entry.key)
                shadows = self.rank(svc, entry.client_dpid, health, {entry.primary, *skip})
                if shadows != entry.shadows:  # unchanged lists are not rewritten to the store
                    entry.shadows = shadows
                    self._touch(entry.key)
                entry.updated = now

    def move(
        self,
        key: FlowKey,
        new_primary: str,
        health: Mapping[str, NodeHealth],
        now: float,
        reason: str,
        exclude: Iterable[str] = (),
    ) -> ShadowEntry:
        """Point a flow at a new node and recompute its shadows for that node (redundancy).

        The old primary stays a candidate unless excluded: once it recovers it is
        a perfectly good shadow again.
        """
        entry = self._entries[key]
        if new_primary == entry.primary:
            return entry
        entry.moves.append({"ts": now, "from": entry.primary, "to": new_primary,
                            "reason": reason})
        entry.primary = new_primary
        entry.shadows = self.rank(self._service(key), entry.client_dpid, health,
                                  {new_primary, *exclude})
        entry.updated = now
        self._touch(key)
        return entry

    def end(self, key: FlowKey, now: float, reason: str = "ended") -> ShadowEntry | None:
        """The flow is gone (idle timeout, FIN, drain expiry): keep it for ``keep_seconds``."""
        entry = self._entries.get(key)
        if entry is not None and entry.active:
            entry.status, entry.ended_at, entry.end_reason = ENDED, now, reason
            entry.updated = now
            self._touch(key)
        return entry

    def expire(self, now: float) -> list[FlowKey]:
        """Drop entries ended more than ``keep_seconds`` ago, and old move records."""
        gone = [k for k, e in self._entries.items()
                if not e.active and e.ended_at is not None
                and now - e.ended_at > self.keep_seconds]
        for key in gone:
            for cookie in self._entries.pop(key).cookies:
                self._by_cookie.pop(cookie, None)
            self._dirty.discard(key)
            self._gone.add(key)
        for entry in self._entries.values():
            kept = [m for m in entry.moves if now - m["ts"] <= self.keep_seconds]
            if len(kept) != len(entry.moves):
                entry.moves = kept
                self._touch(entry.key)
        return gone

    def attach_cookie(self, key: FlowKey, cookie: int) -> None:
        """Tie an ST entry (a steering rule) to the flow it implements."""
        self._entries[key].cookies.add(cookie)
        self._by_cookie[cookie] = key
        self._touch(key)

    def detach_cookie(self, cookie: int) -> None:
        key = self._by_cookie.pop(cookie, None)
        if key is not None and key in self._entries:
            self._entries[key].cookies.discard(cookie)
            self._touch(key)

    def by_cookie(self, cookie: int) -> ShadowEntry | None:
        key = self._by_cookie.get(cookie)
        return self._entries.get(key) if key is not None else None

    def flows_on(self, service: str, node: str) -> list[ShadowEntry]:
        """Active flows of ``service`` whose primary is ``node``, oldest first."""
        return sorted((e for e in self._entries.values()
                       if e.active and e.key.service == service and e.primary == node),
                      key=lambda e: (e.created, str(e.key)))

    def entries(self, service: str | None = None, active_only: bool = False
                ) -> list[ShadowEntry]:
        return sorted((e for e in self._entries.values()
                       if (service is None or e.key.service == service)
                       and (e.active or not active_only)),
                      key=lambda e: (e.created, str(e.key)))

    def under_redundant(self) -> list[FlowKey]:
        """Active flows with fewer shadows than ``redundancy``: one failure from no fallback."""
        return [e.key for e in self.entries(active_only=True)
                if len(e.shadows) < self.redundancy]

    # --- persistence ------------------------------------------------------------
    def take_dirty(self) -> tuple[list[ShadowEntry], list[FlowKey]]:
        """(entries changed, keys gone) since the last call, for the store's next batch."""
        changed = [self._entries[k] for k in self._dirty if k in self._entries]
        gone = sorted(self._gone - self._dirty, key=str)
        self._dirty.clear()
        self._gone.clear()
        return changed, gone

    def restore(self, entries: Iterable[ShadowEntry]) -> list[FlowKey]:
        """Load entries saved before a restart; returns the keys dropped.

        An entry whose service is no longer declared, or whose primary is no
        longer a node of it, cannot be steered or moved: it is dropped (and
        deleted from the store at the next write). Shadows that are no longer
        nodes of the service are left out of the list.
        """
        dropped = []
        for entry in entries:
            svc = self.services.get(entry.key.service)
            if svc is None or svc.node(entry.primary) is None:
                dropped.append(entry.key)
                self._gone.add(entry.key)
                continue
            kept = [s for s in entry.shadows if svc.node(s.node) is not None]
            if len(kept) != len(entry.shadows):
                entry.shadows = kept
                self._dirty.add(entry.key)
            self._entries[entry.key] = entry
            for cookie in entry.cookies:
                self._by_cookie[cookie] = entry.key
        return dropped

    def _touch(self, key: FlowKey) -> None:
        self._dirty.add(key)
        self._gone.discard(key)

    def _service(self, key: FlowKey) -> Service:
        svc = self.services.get(key.service)
        if svc is None:
            raise ServiceError(f"unknown service {key.service!r}")
        return svc
