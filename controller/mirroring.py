"""Mirror ports and policy: which packets of which container are copied where.

A mirror is a container's port on a bridge paired with a mirror port on the
same bridge (the agent's veth into the mirror namespace). The controller
copies the container's traffic to the mirror port in two pipeline tables
before forwarding, so forwarding itself is untouched:

- table 0 (``FROM_CONTAINER_TABLE``): packets entering from the container port;
- table 1 (``TO_CONTAINER_TABLE``): packets addressed to the container's MAC;
- table 2 (``FORWARD_TABLE``): shortest-path forwarding.

A packet between two mirrored containers on one bridge is copied to both
mirrors, because each direction is matched in its own table. Anything the
mirror port sends is dropped at the bridge (the replica is read-only).

Policy narrows what is copied: by tenant, protocol, L4 port, remote CIDR, and
a sample fraction. Sampling hashes per flow through a select group, so a
sample keeps whole connections rather than the first N packets.
"""

from __future__ import annotations

import ipaddress
import re
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

from controller.pipeline import (
    FF_GROUP_BASE,
    FORWARD_TABLE,
    FROM_CONTAINER_TABLE,
    MIRROR_GROUP_BASE,
    MIRROR_PRIORITY,
    READ_ONLY_PRIORITY,
    TO_CONTAINER_TABLE,
)
from shadownet.checks import Checks, Invalid

PROTOCOLS = ("arp", "icmp", "tcp", "udp", "dns")
_ETH_IP, _ETH_ARP = 0x0800, 0x0806
_PROTO_NUM = {"icmp": 1, "tcp": 6, "udp": 17}


OFPP_MAX = 0xFFFFFF00  # the highest physical port number in OpenFlow 1.3


class MirrorError(Invalid):
    """A mirror registration or policy is invalid; the message names the field."""


check = Checks(MirrorError)


@dataclass
class MirrorPolicy:
    protocols: list[str] = field(default_factory=list)  # empty: everything
    ports: list[int] = field(default_factory=list)  # TCP/UDP ports, either side
    cidrs: list[str] = field(default_factory=list)  # remote addresses
    sample: float = 1.0  # fraction of flows, by per-flow hash
    tenants: list[str] = field(default_factory=list)  # empty: all tenants

    @classmethod
    def from_dict(cls, data: object, where: str = "policy") -> MirrorPolicy:
        values = check.mapping(data if data is not None else {}, where)
        check.keys(values, where, ("protocols", "ports", "cidrs", "sample", "tenants"))

        def each(name: str) -> list[tuple[str, Any]]:
            raw = values.get(name)
            items = check.items(raw if raw is not None else [], f"{where}.{name}", 10_000)
            return [(f"{where}.{name}[{i}]", item) for i, item in enumerate(items)]

        cidrs = [check.cidr(v, w) for w, v in each("cidrs")]
        if any(":" in c for c in cidrs):
            raise MirrorError(f"{where}.cidrs: must hold IPv4 prefixes, got {cidrs}")
        return cls(
            protocols=[check.choice(v, w, PROTOCOLS) for w, v in each("protocols")],
            ports=[check.port(v, w) for w, v in each("ports")],
            cidrs=cidrs,
            sample=check.number(values.get("sample", 1.0), f"{where}.sample", 0.001, 1.0),
            tenants=[check.string(v, w, 128) for w, v in each("tenants")],
        )

    def applies_to(self, tenant: str) -> bool:
        return not self.tenants or tenant in self.tenants

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Mirror:
    container: str
    tenant: str
    dpid: int
    container_port: int
    mirror_port: int
    mac: str
    ips: list[str] = field(default_factory=list)
    netns: str = ""
    policy: MirrorPolicy = field(default_factory=MirrorPolicy)

    @classmethod
    def from_dict(cls, data: object, default_policy: MirrorPolicy) -> Mirror:
        """Validate an agent's registration (a REST body, or a stored row)."""
        data = check.mapping(data, "mirror")
        required = ("container", "tenant", "dpid", "container_port", "mirror_port", "mac")
        check.keys(data, "mirror", (*required, "ips", "netns", "policy"), required)
        for name in ("container", "tenant", "netns"):
            check.string(data.get(name, ""), f"mirror.{name}", 128)
        check.integer(data["dpid"], "mirror.dpid", 0, (1 << 64) - 1)
        for name in ("container_port", "mirror_port"):
            # OpenFlow 1.3 physical ports are 1..OFPP_MAX (0xffffff00); anything larger
            # would wrap on the wire (2**32 + 1 went out as port 1).
            check.integer(data[name], f"mirror.{name}", 1, OFPP_MAX)
        if data["container_port"] == data["mirror_port"]:
            raise MirrorError("mirror.mirror_port: must differ from container_port")
        mac = check.mac(data["mac"], "mirror.mac", unicast=True)
        ips = check.items(data.get("ips") or [], "mirror.ips", 64)
        ips = [check.ip(ip, f"mirror.ips[{i}]") for i, ip in enumerate(ips)]
        policy = (MirrorPolicy.from_dict(data["policy"], "mirror.policy")
                  if data.get("policy") is not None else default_policy)
        return cls(
            container=data["container"], tenant=data["tenant"], dpid=data["dpid"],
            container_port=data["container_port"], mirror_port=data["mirror_port"],
            mac=mac, ips=ips,
            netns=str(data.get("netns", "")), policy=policy,
        )

    @property
    def group_id(self) -> int:
        """A stable select-group id for sampling (never 0, below OFPG_MAX)."""
        return MIRROR_GROUP_BASE + zlib.crc32(self.container.encode()) % (
            FF_GROUP_BASE - MIRROR_GROUP_BASE)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["policy"] = self.policy.as_dict()
        return data


@dataclass(frozen=True)
class MirrorFlow:
    """One flow a mirror needs: where, what it matches, and whether it copies or drops."""

    dpid: int
    table_id: int
    priority: int
    match: dict[str, Any]
    copy: bool  # True: copy to mirror then continue; False: drop (read-only guard)


def mirror_flows(mirror: Mirror) -> list[MirrorFlow]:
    """The flows that copy a container's traffic to its mirror and guard the mirror port."""
    flows = [MirrorFlow(mirror.dpid, FROM_CONTAINER_TABLE, READ_ONLY_PRIORITY,
                        {"in_port": mirror.mirror_port}, copy=False)]
    for extra, remote_src, remote_dst in _policy_matches(mirror.policy):
        out = {"in_port": mirror.container_port, **extra, **remote_dst}
        inbound = {"eth_dst": mirror.mac, **extra, **remote_src}
        flows.append(MirrorFlow(mirror.dpid, FROM_CONTAINER_TABLE, MIRROR_PRIORITY, out, True))
        flows.append(MirrorFlow(mirror.dpid, TO_CONTAINER_TABLE, MIRROR_PRIORITY, inbound, True))
    return flows


def _policy_matches(policy: MirrorPolicy
                    ) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(protocol/port fields, remote-as-source fields, remote-as-destination fields) combos."""
    protos: list[dict[str, Any]] = []
    protocols: list[str | None] = list(policy.protocols) or [None]
    for proto in protocols:
        if proto is None:
            protos.append({} if not (policy.ports or policy.cidrs) else {"eth_type": _ETH_IP})
        elif proto == "arp":
            protos.append({"eth_type": _ETH_ARP})
        elif proto == "dns":
            protos.append({"eth_type": _ETH_IP, "ip_proto": 17, "_dns": True})
        else:
            protos.append({"eth_type": _ETH_IP, "ip_proto": _PROTO_NUM[proto]})
    combos: list[dict[str, Any]] = []
    for base in protos:
        dns = base.pop("_dns", False)
        ports = [53] if dns else policy.ports
        if base.get("eth_type") == _ETH_ARP or not ports:
            combos.append(base)
            continue
        l4 = [base["ip_proto"]] if "ip_proto" in base else [6, 17]
        for proto_num in l4:
            prefix = "tcp" if proto_num == 6 else "udp"
            if proto_num not in (6, 17):
                combos.append(base)
                continue
            for port in ports:
                for side in ("src", "dst"):
                    combos.append({**base, "ip_proto": proto_num, f"{prefix}_{side}": port})
    out = []
    for fields in combos:
        if policy.cidrs and fields.get("eth_type") != _ETH_ARP:
            for cidr in policy.cidrs:
                net = ipaddress.IPv4Network(cidr, strict=False)
                value = (str(net.network_address), str(net.netmask))
                out.append(({**fields, "eth_type": _ETH_IP},
                            {"ipv4_src": value}, {"ipv4_dst": value}))
        else:
            out.append((fields, {}, {}))
    return out


class MirrorTable:
    """Registered mirrors, by container and by (switch, port)."""

    def __init__(self) -> None:
        self._by_container: dict[str, Mirror] = {}
        self.guarded: set[tuple[int, int]] = set()  # mirror-named ports, registered or not

    def __len__(self) -> int:
        return len(self._by_container)

    def add(self, mirror: Mirror) -> Mirror | None:
        """Register (or replace) a mirror; returns the one it replaced."""
        for other in self._by_container.values():
            if other.container != mirror.container and (other.dpid, other.mirror_port) in (
                (mirror.dpid, mirror.mirror_port), (mirror.dpid, mirror.container_port)
            ):
                raise MirrorError(f"mirror: port {mirror.mirror_port} on switch {mirror.dpid} "
                                  f"already belongs to {other.container!r}")
        old = self._by_container.get(mirror.container)
        self._by_container[mirror.container] = mirror
        return old

    def remove(self, container: str) -> Mirror | None:
        return self._by_container.pop(container, None)

    def get(self, container: str) -> Mirror | None:
        return self._by_container.get(container)

    def all(self) -> list[Mirror]:
        return sorted(self._by_container.values(), key=lambda m: m.container)

    def for_dpid(self, dpid: int) -> list[Mirror]:
        return [m for m in self._by_container.values() if m.dpid == dpid]

    def is_mirror_port(self, dpid: int, port: int) -> bool:
        return (dpid, port) in self.guarded or any(
            m.dpid == dpid and m.mirror_port == port for m in self._by_container.values())

    def is_container_port(self, dpid: int, port: int) -> bool:
        return any(m.dpid == dpid and m.container_port == port
                   for m in self._by_container.values())

    def copy_ports(self, dpid: int, out_ports: list[int]) -> list[int]:
        """Mirror ports that should also get a controller packet-out sent to ``out_ports``."""
        return [m.mirror_port for m in self._by_container.values()
                if m.dpid == dpid and m.container_port in out_ports]


def mirror_key(container: str) -> str:
    """The ST ``path_key`` that groups one mirror's flows."""
    return f"mirror:{container}"


def install_mirror(table: Any, mirror: Mirror, now: float) -> list[tuple[int, Any]]:
    """ST entries and messages for a mirror: the sample group first, then the flows.

    Flows the mirror no longer needs (a narrower policy on re-registration)
    are deleted after the new ones are in place.
    """
    from controller import ofmsgs

    msgs: list[tuple[int, Any]] = []
    sampled = mirror.policy.sample < 1.0
    if sampled:
        weight = max(1, round(mirror.policy.sample * 1000))
        msgs.append((mirror.dpid, ofmsgs.group_delete(mirror.group_id)))
        msgs.append((mirror.dpid, ofmsgs.select_group(
            mirror.group_id, [(weight, mirror.mirror_port), (1000 - weight, None)])))
    key = mirror_key(mirror.container)
    wanted = set()
    for flow in mirror_flows(mirror):
        next_table = None
        if flow.copy:
            next_table = TO_CONTAINER_TABLE if flow.table_id == FROM_CONTAINER_TABLE else (
                FORWARD_TABLE)
        entry, changed = table.upsert(
            flow.dpid, flow.match,
            mirror.mirror_port if flow.copy and not sampled else None,
            priority=flow.priority, table_id=flow.table_id,
            group_id=mirror.group_id if flow.copy and sampled else None,
            goto_table=next_table, kind="mirror", path_key=key, now=now,
        )
        wanted.add(entry.entry_id)
        if changed or sampled:
            msgs.append((flow.dpid, ofmsgs.flow_add(entry)))
    for entry in table.active_paths().get(key, []):
        if entry.entry_id not in wanted:
            table.mark_removed(entry, "mirror_policy_changed", now)
            msgs.append((entry.dpid, ofmsgs.flow_delete_cookie(entry.cookie)))
    return msgs


# The bridge side of a mirror's veth (mirror.lifecycle.bridge_port_name). A port so
# named is guarded from the moment the switch reports it until it is deleted: before
# the agent registers the mirror, if registration fails, and after the mirror is
# removed while the port is still on the bridge.
MIRROR_PORT_NAME = re.compile(r"sm[0-9a-f]{8}")


def guard_key(dpid: int, port: int) -> str:
    return f"guard:{dpid}:{port}"


def guard_port(table: Any, dpid: int, port: int, now: float) -> list[tuple[int, Any]]:
    """The read-only guard alone (drop all from ``port``), for a mirror port not yet
    registered. A registration's own guard is the same flow, so it takes it over."""
    from controller import ofmsgs

    entry, changed = table.upsert(dpid, {"in_port": port}, None, priority=READ_ONLY_PRIORITY,
                                  table_id=FROM_CONTAINER_TABLE, kind="mirror",
                                  path_key=guard_key(dpid, port), now=now)
    return [(dpid, ofmsgs.flow_add(entry))] if changed else []


def unguard_port(table: Any, dpid: int, port: int, now: float) -> list[tuple[int, Any]]:
    """The port is gone from the bridge: its guard goes too."""
    from controller import ofmsgs

    msgs = []
    for entry in table.active(dpid):
        if (entry.table_id, entry.priority, entry.match) == (
                FROM_CONTAINER_TABLE, READ_ONLY_PRIORITY, {"in_port": port}):
            table.mark_removed(entry, "port_deleted", now)
            msgs.append((dpid, ofmsgs.flow_delete_cookie(entry.cookie)))
    return msgs


def remove_mirror(table: Any, mirror: Mirror, now: float) -> list[tuple[int, Any]]:
    from controller import ofmsgs

    msgs = []
    for entry in table.active_paths().get(mirror_key(mirror.container), []):
        table.mark_removed(entry, "mirror_removed", now)
        msgs.append((entry.dpid, ofmsgs.flow_delete_cookie(entry.cookie)))
    if mirror.policy.sample < 1.0:
        msgs.append((mirror.dpid, ofmsgs.group_delete(mirror.group_id)))
    return msgs


def frame_selected(policy: MirrorPolicy, fields: dict[str, Any]) -> bool:
    """Would ``policy`` copy a frame with these parsed fields? (for controller packet-outs)

    ``fields``: eth_type, ip_proto, src/dst ports and IPs where present. Sampling
    hashes the 5-tuple, so a flow's packets are all in or all out.
    """
    eth_type, proto = fields.get("eth_type"), fields.get("ip_proto")
    ports = {fields.get("sport"), fields.get("dport")}
    if policy.protocols:
        ok = False
        for name in policy.protocols:
            if name == "arp" and eth_type == _ETH_ARP:
                ok = True
            elif name == "dns" and proto == 17 and 53 in ports:
                ok = True
            elif _PROTO_NUM.get(name) == proto and eth_type == _ETH_IP:
                ok = True
        if not ok:
            return False
    if policy.ports and eth_type != _ETH_ARP and not ports & set(policy.ports):
        return False
    if policy.cidrs and eth_type != _ETH_ARP:
        addrs = [fields.get("src_ip"), fields.get("dst_ip")]
        nets = [ipaddress.IPv4Network(c, strict=False) for c in policy.cidrs]
        if not any(a and ipaddress.IPv4Address(a) in n for a in addrs for n in nets):
            return False
    if policy.sample < 1.0:
        key = "|".join(str(fields.get(k)) for k in ("src_ip", "dst_ip", "ip_proto", "sport",
                                                      "dport"))
        return zlib.crc32(key.encode()) % 1000 < policy.sample * 1000
    return True
