"""Hosts learned from traffic: where each MAC attaches and which IPs it uses.

Learning happens only on edge ports (never on inter-switch links), so a frame
that crossed the fabric cannot move a host to the wrong place. The table is
also what proxy ARP answers from.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Host:
    mac: str
    dpid: int
    port: int
    ips: set[str] = field(default_factory=set)
    first_seen: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return {
            "mac": self.mac,
            "dpid": self.dpid,
            "port": self.port,
            "ips": sorted(self.ips),
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        }


class HostTable:
    """MAC-indexed hosts with an IP index for proxy ARP and path queries."""

    def __init__(self) -> None:
        self._by_mac: dict[str, Host] = {}
        self._ip_to_mac: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._by_mac)

    def learn(
        self, mac: str, dpid: int, port: int, ip: str | None = None, now: float | None = None
    ) -> tuple[Host, bool]:
        """Record that ``mac`` was seen at ``dpid:port``.

        Returns the host and whether its location is new or changed (a move),
        which is when paths towards it must be recomputed.
        """
        now = time.time() if now is None else now
        host = self._by_mac.get(mac)
        changed = False
        if host is None:
            host = Host(mac=mac, dpid=dpid, port=port, first_seen=now, last_seen=now)
            self._by_mac[mac] = host
            changed = True
        elif (host.dpid, host.port) != (dpid, port):
            host.dpid, host.port = dpid, port
            changed = True
        host.last_seen = now
        if ip and ip != "0.0.0.0":
            old = self._ip_to_mac.get(ip)
            if old and old != mac and old in self._by_mac:
                self._by_mac[old].ips.discard(ip)
            self._ip_to_mac[ip] = mac
            host.ips.add(ip)
        return host, changed

    def restore(self, host: Host) -> None:
        """Put back a host loaded from the state store."""
        self._by_mac[host.mac] = host
        for ip in host.ips:
            self._ip_to_mac[ip] = host.mac

    def get(self, mac: str) -> Host | None:
        return self._by_mac.get(mac)

    def by_ip(self, ip: str) -> Host | None:
        mac = self._ip_to_mac.get(ip)
        return self._by_mac.get(mac) if mac else None

    def lookup(self, key: str) -> Host | None:
        """Find a host by MAC or IP (what REST users type)."""
        return self.get(key.lower()) or self.by_ip(key)

    def forget_port(self, dpid: int, port: int) -> list[Host]:
        """Drop hosts learned on a port that turned out to be an inter-switch link."""
        gone = [h for h in self._by_mac.values() if (h.dpid, h.port) == (dpid, port)]
        for host in gone:
            self.remove(host.mac)
        return gone

    def remove(self, mac: str) -> None:
        host = self._by_mac.pop(mac, None)
        if host:
            for ip in host.ips:
                if self._ip_to_mac.get(ip) == mac:
                    del self._ip_to_mac[ip]

    def all(self) -> list[Host]:
        return sorted(self._by_mac.values(), key=lambda h: (h.dpid, h.port, h.mac))
