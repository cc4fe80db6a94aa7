"""Service declarations: a virtual IP and port, a primary node and standby nodes.

Clients only ever address the VIP. The controller steers each client flow to
one node by rewriting addresses, so which node serves is a controller
decision that can change without the client noticing:

- ``stateless`` services may move every flow at once (any node can answer any
  packet, e.g. DNS or an idempotent HTTP API);
- ``stateful`` services keep existing connections on the node that has their
  state until they end or ``drain_seconds`` pass; only new flows move.

Declarations come from the ``services:`` section of shadownet.yaml or from the
REST API as the same mapping. A bad one is refused with a single line naming
the key, like the rest of the configuration::

    services:
      - name: web
        vip: 10.0.0.100
        port: 80
        proto: tcp
        mode: stateful
        drain_seconds: 30
        primary: {name: h2, ip: 10.0.0.2, mac: "00:00:00:00:00:02"}
        standbys:
          - {name: h3, ip: 10.0.0.3, mac: "00:00:00:00:00:03", capacity: 50}
        thresholds: {enter_probability: 0.8, cooldown_seconds: 120}
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from shadownet.checks import Checks, Invalid, kind

PROTOCOLS = {"tcp": 6, "udp": 17}
MODES = ("stateless", "stateful")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_NAME_RULE = "a name of letters, digits, '.', '_' or '-'"


class ServiceError(Invalid):
    """A service declaration is invalid; the message names the key."""


check = Checks(ServiceError)


@dataclass(frozen=True)
class Thresholds:
    """When a node is taken out of service, and when it counts as healthy again.

    Enter and exit levels differ (hysteresis) so a value wobbling around one
    line cannot flip the decision back and forth; ``confirm`` consecutive
    intervals must agree before either transition; ``cooldown_seconds`` must
    pass between two switchovers of one service unless the node is plainly
    dead (health at or below ``dead_health``).
    """

    enter_probability: float = 0.7  # failure probability at or above: trip
    exit_probability: float = 0.4  # at or below (and health recovered): clear
    enter_health: float = 0.35  # health at or below: trip
    exit_health: float = 0.6  # at or above (and probability low): clear
    min_observations: int = 3  # intervals seen before a node can trip at all
    confirm: int = 2  # consecutive intervals needed to trip or clear
    cooldown_seconds: float = 60.0  # between two switchovers of one service
    dead_health: float = 0.05  # at or below: switch even during the cool-down
    verify_seconds: float = 15.0  # new node must show traffic within this, once it has flows
    verify_packets: int = 1  # counter rise on the new node that proves it carries traffic
    adaptive: bool = False  # raise the probability threshold for nodes that are noisy by nature

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Thresholds:
        if data is None:
            return cls()
        data = check.mapping(data, where)
        known = {f.name: f.default for f in fields(cls)}
        check.keys(data, where, known)
        values: dict[str, Any] = {}
        for key, value in data.items():
            default, path = known[key], f"{where}.{key}"
            if isinstance(default, bool):
                values[key] = check.boolean(value, path)
            elif isinstance(default, int):
                values[key] = check.integer(value, path, 1, 10**6)
            elif key.endswith(("_probability", "_health")):
                values[key] = check.number(value, path, 0, 1)
            else:  # seconds
                values[key] = check.number(value, path, 0)
        th = cls(**values)
        if th.exit_probability >= th.enter_probability:
            raise ServiceError(f"{where}.exit_probability: must be below enter_probability "
                               f"({th.exit_probability} >= {th.enter_probability})")
        if th.exit_health <= th.enter_health:
            raise ServiceError(f"{where}.exit_health: must be above enter_health "
                               f"({th.exit_health} <= {th.enter_health})")
        if th.dead_health > th.enter_health:
            raise ServiceError(f"{where}.dead_health: must not exceed enter_health "
                               f"({th.dead_health} > {th.enter_health})")
        return th


@dataclass(frozen=True)
class Node:
    """A real server that can serve a service.

    ``port`` is where the server listens (the VIP port when not given).
    ``dpid``/``switch_port`` pin its attachment when known in advance; otherwise
    the host table's learned location is used.
    """

    name: str
    ip: str
    mac: str
    port: int
    capacity: int = 100  # concurrent flows the node is sized for (spare capacity)
    dpid: int | None = None
    switch_port: int | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str, default_port: int) -> Node:
        if not isinstance(data, Mapping):
            raise ServiceError(f"{where}: must be a mapping with name, ip and mac, "
                               f"got {kind(data)}")
        allowed = {"name", "ip", "mac", "port", "capacity", "dpid", "switch_port"}
        check.keys(data, where, sorted(allowed))
        name = check.required(data, "name", where)
        check.string(name, f"{where}.name", pattern=_NAME, what=_NAME_RULE)
        return cls(
            name=name,
            ip=check.ipv4(check.required(data, "ip", where), f"{where}.ip", unicast=True),
            mac=check.mac(check.required(data, "mac", where), f"{where}.mac", unicast=True),
            port=check.integer(data.get("port", default_port), f"{where}.port", 1, 65535),
            capacity=check.integer(data.get("capacity", 100), f"{where}.capacity", 1, 10**9),
            dpid=None if data.get("dpid") is None else check.integer(data["dpid"], f"{where}.dpid",
                                                             1, 2**64 - 1),
            switch_port=None if data.get("switch_port") is None else check.integer(
                data["switch_port"], f"{where}.switch_port", 1, 0xFFFFFF00),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Service:
    name: str
    vip: str
    port: int
    proto: str
    mode: str
    primary: Node
    standbys: tuple[Node, ...]
    vip_mac: str
    drain_seconds: float = 30.0
    idle_timeout: int = 60  # of the per-flow steering rules, so ended flows leave the switch
    thresholds: Thresholds = field(default_factory=Thresholds)
    monitor: bool = True  # probe the nodes and switch on health; off: operator switches only

    @property
    def ip_proto(self) -> int:
        return PROTOCOLS[self.proto]

    @property
    def stateful(self) -> bool:
        return self.mode == "stateful"

    @property
    def nodes(self) -> tuple[Node, ...]:
        """Every node, in the operator's order of preference (primary first)."""
        return (self.primary, *self.standbys)

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)

    def preference(self, name: str) -> int:
        """Declared preference: 0 for the primary, then standbys in order."""
        return next(i for i, n in enumerate(self.nodes) if n.name == name)

    @classmethod
    def from_dict(cls, data: Any, where: str = "service") -> Service:
        if not isinstance(data, Mapping):
            raise ServiceError(f"{where}: must be a mapping, got {kind(data)}")
        allowed = {"name", "vip", "port", "proto", "mode", "primary", "standbys", "vip_mac",
                   "drain_seconds", "idle_timeout", "thresholds", "monitor"}
        check.keys(data, where, sorted(allowed))
        name = check.required(data, "name", where)
        check.string(name, f"{where}.name", pattern=_NAME, what=_NAME_RULE)
        where = f"{where} ({name})" if where.endswith("]") else where
        vip = check.ipv4(check.required(data, "vip", where), f"{where}.vip", unicast=True)
        port = check.integer(check.required(data, "port", where), f"{where}.port", 1, 65535)
        proto = check.choice(data.get("proto", "tcp"), f"{where}.proto", tuple(PROTOCOLS))
        mode = check.choice(data.get("mode", "stateful"), f"{where}.mode", MODES)
        primary = Node.from_dict(check.required(data, "primary", where), f"{where}.primary", port)
        raw_standbys = data.get("standbys", [])
        if not isinstance(raw_standbys, list):
            raise ServiceError(f"{where}.standbys: must be a list of nodes, "
                               f"got {kind(raw_standbys)}")
        standbys = tuple(Node.from_dict(s, f"{where}.standbys[{i}]", port)
                         for i, s in enumerate(raw_standbys))
        seen: dict[tuple[str, str], str] = {}
        for i, node in enumerate((primary, *standbys)):
            label = f"{where}.primary" if i == 0 else f"{where}.standbys[{i - 1}]"
            for what, value in (("name", node.name), ("ip", node.ip), ("mac", node.mac)):
                if (what, value) in seen:
                    raise ServiceError(f"{label}.{what}: {value!r} is already used by "
                                       f"{seen[(what, value)]}")
                seen[(what, value)] = label
            if node.ip == vip:
                raise ServiceError(f"{label}.ip: a node cannot have the VIP {vip}")
        vip_mac = (check.mac(data["vip_mac"], f"{where}.vip_mac", unicast=True)
                   if data.get("vip_mac") is not None else default_vip_mac(name))
        drain = check.number(data.get("drain_seconds", 30.0), f"{where}.drain_seconds", 0, 86400)
        return cls(
            name=name, vip=vip, port=port, proto=proto, mode=mode, primary=primary,
            standbys=standbys, vip_mac=vip_mac, drain_seconds=drain,
            idle_timeout=check.integer(data.get("idle_timeout", 60), f"{where}.idle_timeout",
                                       1, 65535),
            thresholds=Thresholds.from_dict(data.get("thresholds"), f"{where}.thresholds"),
            monitor=check.boolean(data.get("monitor", True), f"{where}.monitor"),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "vip": self.vip, "port": self.port, "proto": self.proto,
            "mode": self.mode, "vip_mac": self.vip_mac, "drain_seconds": self.drain_seconds,
            "idle_timeout": self.idle_timeout, "primary": self.primary.as_dict(),
            "standbys": [n.as_dict() for n in self.standbys],
            "thresholds": asdict(self.thresholds), "monitor": self.monitor,
        }


def default_vip_mac(name: str) -> str:
    """A stable, locally administered MAC for a VIP ("02:53:48" = local + "SH")."""
    h = zlib.crc32(name.encode()) & 0xFFFFFF
    return f"02:53:48:{h >> 16:02x}:{(h >> 8) & 0xFF:02x}:{h & 0xFF:02x}"


class ServiceTable:
    """Declared services, by name and by (VIP, port, protocol)."""

    def __init__(self, services: Iterable[Service] = ()) -> None:
        self._by_name: dict[str, Service] = {}
        for svc in services:
            self.add(svc)

    def __len__(self) -> int:
        return len(self._by_name)

    def __iter__(self) -> Iterator[Service]:
        return iter(sorted(self._by_name.values(), key=lambda s: s.name))

    def add(self, svc: Service) -> Service | None:
        """Declare (or replace) a service; returns the one it replaced.

        A VIP/port/protocol triple, a VIP MAC and a VIP address already used as a
        node address belong to one service only.
        """
        for other in self._by_name.values():
            if other.name == svc.name:
                continue
            if (other.vip, other.port, other.proto) == (svc.vip, svc.port, svc.proto):
                raise ServiceError(f"service {svc.name!r}: vip {svc.vip}:{svc.port}/{svc.proto} "
                                   f"is already service {other.name!r}")
            if other.vip_mac == svc.vip_mac and other.vip != svc.vip:
                raise ServiceError(f"service {svc.name!r}: vip_mac {svc.vip_mac} is already "
                                   f"service {other.name!r}'s")
            for node in svc.nodes:
                same = other.node(node.name)
                if same is not None and (same.ip, same.mac) != (node.ip, node.mac):
                    raise ServiceError(f"service {svc.name!r}: node {node.name!r} is "
                                       f"{same.ip}/{same.mac} in service {other.name!r}; "
                                       "one name, one host (health is kept per name)")
            if svc.vip in {n.ip for n in other.nodes}:
                raise ServiceError(f"service {svc.name!r}: vip {svc.vip} is a node of service "
                                   f"{other.name!r}")
        old = self._by_name.get(svc.name)
        self._by_name[svc.name] = svc
        return old

    def remove(self, name: str) -> Service | None:
        return self._by_name.pop(name, None)

    def get(self, name: str) -> Service | None:
        return self._by_name.get(name)

    def by_vip(self, vip: str, port: int | None = None, proto: str | None = None) -> list[Service]:
        """Services on a VIP (optionally one port/protocol): what a packet-in addresses."""
        return [s for s in self if s.vip == vip and (port is None or s.port == port)
                and (proto is None or s.proto == proto)]

    def vips(self) -> dict[str, str]:
        """VIP address -> VIP MAC, for answering ARP."""
        return {s.vip: s.vip_mac for s in self}


def services_from_config(data: Any, source: str = "config") -> ServiceTable:
    """Validate the ``services:`` section (a list of service mappings)."""
    table = ServiceTable()
    if data is None:
        return table
    if not isinstance(data, list):
        raise ServiceError(f"{source}: key 'services' must be a list of services, "
                           f"got {kind(data)}")
    names: set[str] = set()
    for i, item in enumerate(data):
        svc = Service.from_dict(item, f"{source}: services[{i}]")
        if svc.name in names:
            raise ServiceError(f"{source}: services[{i}].name: duplicate service {svc.name!r}")
        names.add(svc.name)
        try:
            table.add(svc)
        except ServiceError as exc:
            raise ServiceError(f"{source}: services[{i}]: {exc}") from None
    return table


def load_services(path: str | Path) -> ServiceTable:
    """Read the ``services:`` section of a YAML file (other sections are not looked at)."""
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise ServiceError(f"config file {str(p)!r} not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ServiceError(f"{p}: invalid YAML{where}") from None
    if doc is not None and not isinstance(doc, Mapping):
        raise ServiceError(f"{p}: top level must be a mapping of sections, got {kind(doc)}")
    return services_from_config((doc or {}).get("services"), str(p))

