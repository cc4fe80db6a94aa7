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

import ipaddress
import math
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

PROTOCOLS = {"tcp": 6, "udp": 17}
MODES = ("stateless", "stateful")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class ServiceError(ValueError):
    """A service declaration is invalid; the message names the key."""


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
        if not isinstance(data, Mapping):
            raise ServiceError(f"{where}: must be a mapping, got {_kind(data)}")
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            spec = known.get(key)
            if spec is None:
                raise ServiceError(f"{where}: unknown key {key!r} "
                                   f"(expected one of: {', '.join(known)})")
            default = spec.default
            path = f"{where}.{key}"
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ServiceError(f"{path}: must be true or false, got {_kind(value)}")
            elif isinstance(default, int):
                values[key] = _int(value, path, 1, 10**6)
                continue
            else:
                value = _number(value, path)
                if key.endswith(("_probability", "_health")) and not 0.0 <= value <= 1.0:
                    raise ServiceError(f"{path}: must be between 0 and 1, got {value!r}")
                if key.endswith("_seconds") and value < 0:
                    raise ServiceError(f"{path}: must be >= 0, got {value!r}")
            values[key] = value
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
                               f"got {_kind(data)}")
        allowed = {"name", "ip", "mac", "port", "capacity", "dpid", "switch_port"}
        _no_unknown(data, allowed, where)
        name = _required(data, "name", where)
        if not isinstance(name, str) or not _NAME.match(name):
            raise ServiceError(f"{where}.name: must be a name of letters, digits, '.', '_' "
                               f"or '-', got {_kind(name)}")
        return cls(
            name=name,
            ip=_ipv4(_required(data, "ip", where), f"{where}.ip"),
            mac=_mac(_required(data, "mac", where), f"{where}.mac"),
            port=_int(data.get("port", default_port), f"{where}.port", 1, 65535),
            capacity=_int(data.get("capacity", 100), f"{where}.capacity", 1, 10**9),
            dpid=None if data.get("dpid") is None else _int(data["dpid"], f"{where}.dpid",
                                                             1, 2**64 - 1),
            switch_port=None if data.get("switch_port") is None else _int(
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
            raise ServiceError(f"{where}: must be a mapping, got {_kind(data)}")
        allowed = {"name", "vip", "port", "proto", "mode", "primary", "standbys", "vip_mac",
                   "drain_seconds", "idle_timeout", "thresholds", "monitor"}
        _no_unknown(data, allowed, where)
        name = _required(data, "name", where)
        if not isinstance(name, str) or not _NAME.match(name):
            raise ServiceError(f"{where}.name: must be a name of letters, digits, '.', '_' "
                               f"or '-', got {_kind(name)}")
        where = f"{where} ({name})" if where.endswith("]") else where
        vip = _ipv4(_required(data, "vip", where), f"{where}.vip")
        port = _int(_required(data, "port", where), f"{where}.port", 1, 65535)
        proto = _choice(data.get("proto", "tcp"), f"{where}.proto", tuple(PROTOCOLS))
        mode = _choice(data.get("mode", "stateful"), f"{where}.mode", MODES)
        primary = Node.from_dict(_required(data, "primary", where), f"{where}.primary", port)
        raw_standbys = data.get("standbys", [])
        if not isinstance(raw_standbys, list):
            raise ServiceError(f"{where}.standbys: must be a list of nodes, "
                               f"got {_kind(raw_standbys)}")
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
        vip_mac = (_mac(data["vip_mac"], f"{where}.vip_mac") if data.get("vip_mac") is not None
                   else default_vip_mac(name))
        drain = _number(data.get("drain_seconds", 30.0), f"{where}.drain_seconds")
        if not 0 <= drain <= 86400:
            raise ServiceError(f"{where}.drain_seconds: must be between 0 and 86400, "
                               f"got {drain!r}")
        return cls(
            name=name, vip=vip, port=port, proto=proto, mode=mode, primary=primary,
            standbys=standbys, vip_mac=vip_mac, drain_seconds=drain,
            idle_timeout=_int(data.get("idle_timeout", 60), f"{where}.idle_timeout", 1, 65535),
            thresholds=Thresholds.from_dict(data.get("thresholds"), f"{where}.thresholds"),
            monitor=_bool(data.get("monitor", True), f"{where}.monitor"),
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
                           f"got {_kind(data)}")
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
        raise ServiceError(f"{p}: top level must be a mapping of sections, got {_kind(doc)}")
    return services_from_config((doc or {}).get("services"), str(p))


# --- field checks -------------------------------------------------------------
def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ServiceError(f"{where}: must be true or false, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _no_unknown(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in set(data) - allowed)
    if unknown:
        raise ServiceError(f"{where}: unknown key {unknown[0]!r} "
                           f"(expected one of: {', '.join(sorted(allowed))})")


def _required(data: Mapping[str, Any], key: str, where: str) -> Any:
    if data.get(key) is None:
        raise ServiceError(f"{where}.{key}: is required")
    return data[key]


def _int(value: Any, path: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ServiceError(f"{path}: must be an integer, got {_kind(value)}")
    if not low <= value <= high:
        shown = str(value) if abs(value) < 10**20 else f"an integer of {len(str(value))} digits"
        raise ServiceError(f"{path}: must be between {low} and {high}, got {shown}")
    return value


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ServiceError(f"{path}: must be a number, got {_kind(value)}")
    try:
        number = float(value)
    except OverflowError:  # a 400-digit integer
        raise ServiceError(f"{path}: must be a finite number, got an integer of "
                           f"{len(str(value))} digits") from None
    if not math.isfinite(number):  # NaN compares false with every bound, and breaks JSON
        raise ServiceError(f"{path}: must be a finite number, got {value!r}")
    return number


def _choice(value: Any, path: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.lower() not in choices:
        raise ServiceError(f"{path}: must be one of {', '.join(choices)}, got {_kind(value)}")
    return value.lower()


def _ipv4(value: Any, path: str) -> str:
    try:
        addr = ipaddress.IPv4Address(value) if isinstance(value, str) else None
    except ValueError:
        addr = None
    if addr is None:
        raise ServiceError(f"{path}: must be an IPv4 address, got {_kind(value)}")
    if addr.is_multicast or addr.is_unspecified or str(addr) == "255.255.255.255":
        raise ServiceError(f"{path}: must be a unicast address, got {value!r}")
    return str(addr)


def _mac(value: Any, path: str) -> str:
    if not isinstance(value, str) or not _MAC.match(value.lower()):
        raise ServiceError(f"{path}: must be a MAC like 00:00:00:00:00:01, got {_kind(value)}")
    if int(value[:2], 16) & 1:
        raise ServiceError(f"{path}: must be a unicast MAC, got {value!r}")
    return value.lower()
