"""The replicated network state of ONE container, learned only from its traffic.

:class:`NamespaceState` answers "what would this container's kernel (and stub
resolver) believe right now?": its neighbour (ARP) cache, its routes, its
connections and the DNS answers it has been given.  It is fed decoded packets
by :class:`mirror.engine.SyncEngine` and never looks at the real namespace.

Every change is reported as a :class:`StateChange` through ``on_change`` — the
agent persists them as history and the applier replays them into the mirror
namespace — so the callback sees *changes* (a new neighbour, a MAC that moved,
a connection that reached TIME_WAIT), never per-packet counter bumps.  Counters
are in :meth:`NamespaceState.snapshot`.

What the kernel learns from ARP (and so what we learn):
  * an ARP reply addressed to the container (its sender),
  * an ARP request from someone else asking for the container's IP (the
    kernel creates an entry for the asker so it can answer),
  * gratuitous ARP (sender IP == target IP) from others.
An IP whose MAC changes is reported as an ``update`` carrying ``previous_mac``
and kept in :attr:`NamespaceState.mac_changes` for the spoofing rule.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mirror.packets import (
    DNS_A,
    DNS_AAAA,
    DNS_CNAME,
    DNS_TYPE_NAMES,
    DhcpMessage,
    DnsMessage,
    Packet,
    ip_bytes,
    ip_str,
    mac_bytes,
    mac_str,
)
from mirror.tcp_state import ConnectionTable, Flow

DEFAULT_NEGATIVE_TTL = 60
_DNS_KEEP = (DNS_A, DNS_AAAA, DNS_CNAME)


@dataclass(frozen=True, slots=True)
class StateChange:
    """One change of replicated state.

    kind: ``arp`` | ``route`` | ``connection`` | ``dns``; action: ``add`` | ``update`` |
    ``remove``.  ``key`` identifies the entry within its kind (an IP for arp, ``default``
    or a CIDR for route, ``tcp 10.0.0.1:40000 > 10.0.0.2:80`` for connection,
    ``example.com A`` for dns); ``value`` is the entry after the change (the entry as it
    was for ``remove``) in the same shape as in :meth:`NamespaceState.snapshot`.
    """

    ts: float
    kind: str
    action: str
    key: str
    value: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return {"ts": self.ts, "kind": self.kind, "action": self.action, "key": self.key,
                "value": self.value}


ChangeCallback = Callable[[StateChange], None]


class NamespaceState:
    """Replicated state of the container with ``mac`` and ``ips``.

    ``subnet`` (CIDR) is the container's on-link prefix when known from configuration;
    DHCP overrides it.  Without a subnet, a peer MAC seen carrying traffic for two or
    more remote IPs is taken as the default gateway.
    """

    def __init__(self, mac: str, ips: list[str] | tuple[str, ...] = (), subnet: str | None = None,
                 on_change: ChangeCallback | None = None) -> None:
        self.mac = mac_str(mac_bytes(mac))
        self.mac_raw = mac_bytes(mac)
        self.ips: list[str] = []
        self.ip_raw: set[bytes] = set()
        for ip in ips:
            self.add_ip(ip)
        self.on_change = on_change
        self.arp: dict[str, dict[str, Any]] = {}
        self.routes: dict[str, dict[str, Any]] = {}
        self.dns: dict[str, dict[str, Any]] = {}
        self.connections = ConnectionTable(self._connection_changed)
        self.mac_changes: deque[dict[str, Any]] = deque(maxlen=1024)
        self.dns_queries = 0
        self.dns_responses = 0
        self.dns_nxdomain = 0
        self._subnet = ipaddress.ip_network(subnet, strict=False) if subnet else None
        self._pending: list[tuple[str, str, str, dict[str, Any]]] = []
        if self._subnet is not None:
            self._pending.append(("route", "add", str(self._subnet),
                                  self._subnet_route(self._subnet, "configured")))
        self._peer_ips_by_mac: dict[bytes, set[bytes]] = {}
        self._gateway_macs: set[bytes] = set()

    def add_ip(self, ip: str) -> None:
        """Register one more address of the container (configured or from DHCP)."""
        raw = ip_bytes(ip)
        if raw not in self.ip_raw:
            self.ip_raw.add(raw)
            self.ips.append(ip_str(raw))

    # -- change plumbing ----------------------------------------------------------------------

    def _emit(self, ts: float, kind: str, action: str, key: str,
              value: dict[str, Any] | None) -> None:
        if self.on_change is not None:
            self.on_change(StateChange(ts, kind, action, key, value))

    def start(self, ts: float) -> None:
        """Emit changes that exist from configuration alone (a configured subnet route) at
        the first packet's time, so history is in capture time, not construction time."""
        pending, self._pending = self._pending, []
        for kind, action, key, value in pending:
            if kind == "route":
                self.routes[key] = value
            self._emit(ts, kind, action, key, dict(value))

    def _connection_changed(self, action: str, flow: Flow, ts: float) -> None:
        if self.on_change is not None:
            self.on_change(StateChange(ts, "connection", action, flow.name, flow.as_dict()))

    # -- ARP ----------------------------------------------------------------------------------

    def observe_arp(self, p: Packet, ts: float) -> None:
        """Learn from one ARP packet what the container's kernel would learn."""
        sha, spa, tpa = p.arp_sha, p.arp_spa, p.arp_tpa
        if sha == self.mac_raw or spa == b"\x00\x00\x00\x00":
            if sha == self.mac_raw and spa != b"\x00\x00\x00\x00" and not self.ip_raw:
                self.add_ip(ip_str(spa))  # the container announcing itself
            return
        if sha[0] & 1:
            return  # a multicast/broadcast sender MAC is never a neighbour
        if p.arp_op == 2 and (p.dst_mac == self.mac_raw or tpa in self.ip_raw):
            source = "reply"
        elif p.arp_op == 1 and tpa in self.ip_raw:
            source = "request"
        elif spa == tpa:
            source = "gratuitous"
        else:
            return
        self.learn_neighbour(ip_str(spa), mac_str(sha), ts, source)

    def learn_neighbour(self, ip: str, mac: str, ts: float, source: str) -> None:
        """Add or refresh an ARP entry; a different MAC for a known IP is an ``update``."""
        e = self.arp.get(ip)
        if e is None:
            e = {"ip": ip, "mac": mac, "first_seen": ts, "last_seen": ts, "source": source}
            self.arp[ip] = e
            self._emit(ts, "arp", "add", ip, dict(e))
        elif e["mac"] != mac:
            old = e["mac"]
            e.update(mac=mac, last_seen=ts, source=source, previous_mac=old, changed_at=ts)
            self.mac_changes.append({"ts": ts, "ip": ip, "old_mac": old, "new_mac": mac})
            self._emit(ts, "arp", "update", ip, dict(e))
        else:
            e["last_seen"] = ts
            return
        self._gateway_ip_learned(ip, mac, ts)

    # -- routes -------------------------------------------------------------------------------

    @staticmethod
    def _subnet_route(net: ipaddress.IPv4Network | ipaddress.IPv6Network,
                      source: str) -> dict[str, Any]:
        return {"dst": str(net), "gateway": None, "gateway_mac": None, "scope": "link",
                "source": source}

    def _set_route(self, ts: float, dst: str, value: dict[str, Any]) -> None:
        old = self.routes.get(dst)
        if old == value:
            return
        self.routes[dst] = value
        self._emit(ts, "route", "add" if old is None else "update", dst, dict(value))

    def observe_peer(self, remote_ip: bytes, remote_mac: bytes, ts: float) -> None:
        """A remote IP reached through ``remote_mac`` (called only when that pairing is new).

        Off-subnet destinations — or, without a subnet, a MAC fronting several IPs — reveal
        the default gateway's MAC.  DHCP-learned routes win over this inference.
        """
        if remote_mac[0] & 1 or len(remote_ip) != 4 or remote_ip[0] >= 224:
            return
        if remote_mac in self._gateway_macs:
            return
        if self._subnet is not None:
            if ipaddress.IPv4Address(remote_ip) in self._subnet:
                return
            is_gw = True
        else:
            ips = self._peer_ips_by_mac.setdefault(remote_mac, set())
            ips.add(remote_ip)
            is_gw = len(ips) >= 2
        if not is_gw:
            return
        self._gateway_macs.add(remote_mac)
        cur = self.routes.get("default")
        if cur is not None and cur["source"] == "dhcp":
            return
        mac = mac_str(remote_mac)
        gw_ip = next((ip for ip, e in self.arp.items() if e["mac"] == mac), None)
        self._set_route(ts, "default", {"dst": "default", "gateway": gw_ip, "gateway_mac": mac,
                                        "scope": "global", "source": "traffic"})

    def _gateway_ip_learned(self, ip: str, mac: str, ts: float) -> None:
        cur = self.routes.get("default")
        if cur is not None and cur["source"] == "traffic" and cur["gateway_mac"] == mac \
                and cur["gateway"] != ip:
            self._set_route(ts, "default", {**cur, "gateway": ip})

    def observe_dhcp(self, msg: DhcpMessage, ts: float) -> None:
        """A DHCPACK for the container sets its address, subnet route and default route."""
        if msg.op != 2 or msg.msg_type != 5 or msg.chaddr != self.mac_raw:
            return
        if msg.yiaddr != "0.0.0.0":
            self.add_ip(msg.yiaddr)
        lease = {"lease_expires": ts + msg.lease_time} if msg.lease_time is not None else {}
        if msg.subnet_mask and msg.yiaddr != "0.0.0.0":
            net = ipaddress.ip_network(f"{msg.yiaddr}/{msg.subnet_mask}", strict=False)
            if self._subnet is not None and self._subnet != net:
                old = self.routes.pop(str(self._subnet), None)
                if old is not None:
                    self._emit(ts, "route", "remove", str(self._subnet), old)
            self._subnet = net
            self._set_route(ts, str(net), {**self._subnet_route(net, "dhcp"), **lease})
        if msg.routers:
            gw = msg.routers[0]
            gw_mac = self.arp.get(gw, {}).get("mac")
            self._set_route(ts, "default", {"dst": "default", "gateway": gw,
                                            "gateway_mac": gw_mac, "scope": "global",
                                            "source": "dhcp", **lease})

    # -- DNS ----------------------------------------------------------------------------------

    def observe_dns(self, msg: DnsMessage, ts: float) -> None:
        """Cache the answers of a response sent to the container, keyed ``name TYPE``."""
        if not msg.is_response:
            self.dns_queries += 1
            return
        self.dns_responses += 1
        if msg.rcode == 3:
            self.dns_nxdomain += 1
        if msg.rcode not in (0, 3):
            return
        neg_ttl = next((min(r.ttl, r.soa_minimum) for r in msg.authority
                        if r.soa_minimum is not None), DEFAULT_NEGATIVE_TTL)
        answers: list[dict[str, Any]] = [
            {"type": r.type_name, "name": r.name, "data": r.data, "ttl": r.ttl}
            for r in msg.answers if r.rtype in _DNS_KEEP]
        ttl = min((a["ttl"] for a in answers), default=neg_ttl)
        rcode = "NXDOMAIN" if msg.rcode == 3 else "NOERROR"
        for name, qtype in msg.questions:
            key = f"{name} {DNS_TYPE_NAMES.get(qtype, qtype)}"
            old = self.dns.get(key)
            entry = {"name": name, "type": DNS_TYPE_NAMES.get(qtype, str(qtype)), "rcode": rcode,
                     "answers": answers, "ttl": ttl, "resolved_at": ts, "expires": ts + ttl}
            self.dns[key] = entry
            if old is None:
                self._emit(ts, "dns", "add", key, dict(entry))
            elif old["answers"] != answers or old["rcode"] != rcode:
                self._emit(ts, "dns", "update", key, dict(entry))

    # -- housekeeping -------------------------------------------------------------------------

    def expire(self, now: float) -> None:
        """Drop DNS entries past their TTL and connections past their conntrack timeout."""
        for key in [k for k, e in self.dns.items() if e["expires"] <= now]:
            self._emit(now, "dns", "remove", key, self.dns.pop(key))
        self.connections.expire(now)

    def snapshot(self, now: float) -> dict[str, Any]:
        """JSON-able state: ``container``, ``time``, ``arp``, ``routes``, ``connections``,
        ``dns`` (lists of the same dicts the changes carry, sorted for stable output)."""
        dns = []
        for key in sorted(self.dns):
            e = dict(self.dns[key])
            e["ttl_left"] = max(0, round(e["expires"] - now, 3))
            dns.append(e)
        return {
            "container": {"mac": self.mac, "ips": list(self.ips)},
            "time": now,
            "arp": [dict(self.arp[k]) for k in sorted(self.arp, key=_ip_sort)],
            "routes": [dict(self.routes[k]) for k in sorted(self.routes)],
            "connections": self.connections.snapshot(now),
            "dns": dns,
        }


def _ip_sort(ip: str) -> tuple[int, bytes]:
    raw = ip_bytes(ip)
    return len(raw), raw
