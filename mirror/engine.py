"""The State Synchronization Engine: mirrored frames in, replicated state out.

The agent's capture loop (AF_PACKET in the mirror namespace) and the offline
replay both call :meth:`SyncEngine.feed` once per frame.  ``feed`` never
raises: undecodable frames are counted by reason in :attr:`EngineStats.malformed_reasons`,
and an unexpected bug is counted in ``errors`` and logged once, because one bad
frame must not stop the replica of a running container.

Direction is decided by MAC first (the mirror copies frames to *and* from the
container's port, so one of the two MACs is the container's), then by IP for
frames whose MACs are neither (e.g. the container's traffic seen through a
bridge).  Once per second of packet time the engine expires state and records
its counters, so rules can ask for deltas over a window without sampling
themselves.
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from typing import Any

from mirror.packets import (
    ETH_ARP,
    ETH_IPV4,
    ETH_IPV6,
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    MalformedPacket,
    parse,
    parse_dhcp,
    parse_dns,
)
from mirror.state import ChangeCallback, NamespaceState

log = logging.getLogger(__name__)

# Ethernet + IPv4 without options + the TCP header up to its flags, in one unpack.
_ETH_IPV4_TCP = struct.Struct("!6s6sHBBHHHBBH4s4sHHIIBB")
HISTORY_SECONDS = 3600
WINDOW_COUNTERS = ("packets", "bytes", "malformed", "tcp_data_packets", "tcp_retransmissions",
                   "tcp_rsts", "tcp_syns", "dns_responses", "dns_nxdomain")


class EngineStats:
    """Counters of everything fed, plus one sample per second of packet time.

    ``protocols`` counts frames by their innermost recognised layer (``tcp``, ``udp``,
    ``icmp``, ``arp``, ``ipv6``, ``ipv4-fragment``, ``dns``, ``dhcp``, ``other``) and
    ``foreign`` counts frames neither to nor from the container.
    """

    def __init__(self, state: NamespaceState) -> None:
        self._state = state
        self.packets = 0
        self.bytes = 0
        self.malformed = 0
        self.errors = 0
        self.foreign = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.protocols: dict[str, int] = {}
        self.malformed_reasons: dict[str, int] = {}
        self.history: deque[tuple[float, tuple[int, ...]]] = deque(maxlen=HISTORY_SECONDS)

    def counters(self) -> dict[str, int]:
        """Cumulative counters the rules take windowed deltas of."""
        c = self._state.connections
        s = self._state
        return {"packets": self.packets, "bytes": self.bytes, "malformed": self.malformed,
                "tcp_data_packets": c.data_packets, "tcp_retransmissions": c.retransmissions,
                "tcp_rsts": c.rsts, "tcp_syns": c.syns, "dns_responses": s.dns_responses,
                "dns_nxdomain": s.dns_nxdomain}

    def sample(self, ts: float) -> None:
        c = self.counters()
        self.history.append((ts, tuple(c[k] for k in WINDOW_COUNTERS)))

    def delta(self, name: str, window: float, now: float | None = None) -> int:
        """Increase of counter ``name`` over the last ``window`` seconds (of packet time).

        Uses the newest per-second sample at least ``window`` old; if the history is
        shorter than the window, the increase since the engine started.
        """
        idx = WINDOW_COUNTERS.index(name)
        cur = self.counters()[name]
        now = self.last_ts if now is None else now
        if now is None:
            return cur
        base = 0
        for ts, values in reversed(self.history):
            if ts <= now - window:
                base = values[idx]
                break
        return cur - base

    def as_dict(self) -> dict[str, Any]:
        return {"packets": self.packets, "bytes": self.bytes, "malformed": self.malformed,
                "errors": self.errors, "foreign": self.foreign, "first_ts": self.first_ts,
                "last_ts": self.last_ts, "protocols": dict(sorted(self.protocols.items())),
                "malformed_reasons": dict(sorted(self.malformed_reasons.items())),
                **{k: v for k, v in self.counters().items() if k not in ("packets", "bytes",
                                                                          "malformed")}}


class SyncEngine:
    """Keeps :attr:`state` (a :class:`NamespaceState`) in step with mirrored frames."""

    def __init__(self, container_mac: str, container_ips: list[str] | None = None,
                 on_change: ChangeCallback | None = None, subnet: str | None = None) -> None:
        self.state = NamespaceState(container_mac, container_ips or [], subnet, on_change)
        self.stats = EngineStats(self.state)
        self._mac = self.state.mac_raw
        self._ips = self.state.ip_raw
        self._peers: dict[bytes, bytes] = {}
        self._next_tick = float("-inf")
        self._logged_error = False

    def feed(self, frame: bytes, ts: float, wire_len: int | None = None) -> None:
        """Account one frame captured at ``ts`` (seconds); ``wire_len`` is its original
        length when the capture was truncated.  Never raises."""
        st = self.stats
        st.packets += 1
        wlen = wire_len or len(frame)
        st.bytes += wlen
        st.last_ts = ts
        if ts >= self._next_tick:
            self._tick(ts)
        protos = st.protocols
        try:
            # Fast path for what bulk traffic is made of: untagged IPv4 without options,
            # not fragmented, carrying TCP with a sane header. One unpack instead of a
            # Packet object; anything else (or anything odd) takes the full decoder,
            # which also names what is malformed.
            if (len(frame) >= 54 and frame[12] == 8 and frame[13] == 0 and frame[14] == 0x45
                    and frame[23] == PROTO_TCP):
                (dmac, smac, _, _, _, total, _, frag, _, _, _, src, dst, sport, dport, seq, ack,
                 doff, flags) = _ETH_IPV4_TCP.unpack_from(frame)
                hl = (doff >> 4) << 2
                l4len = total - 20
                if not frag & 0x3FFF and 20 <= hl <= l4len:
                    self._tcp(smac, dmac, src, dst, sport, dport, flags, seq, ack,
                              l4len - hl, wlen, ts)
                    return
            p = parse(frame)
            et = p.ethertype
            if et == ETH_IPV4 or et == ETH_IPV6:
                proto = p.proto
                if p.fragment and p.frag_offset:
                    protos["ipv4-fragment"] = protos.get("ipv4-fragment", 0) + 1
                    return
                if proto == PROTO_TCP:
                    self._tcp(p.src_mac, p.dst_mac, p.src_ip, p.dst_ip, p.sport, p.dport,
                              p.tcp_flags, p.seq, p.ack, p.payload_len, wlen, ts)
                    return
                # The same sides as _tcp tells apart (kept inline there: it is per packet).
                if p.src_mac == self._mac:
                    out = True
                elif p.dst_mac == self._mac:
                    out = False
                elif p.src_ip in self._ips:
                    out = True
                elif p.dst_ip in self._ips:
                    out = False
                else:
                    out = None
                if out is None:
                    st.foreign += 1
                    if proto == PROTO_UDP and (p.dport == 68 or p.dport == 67):
                        self._dhcp(p, ts)
                    else:
                        protos["other"] = protos.get("other", 0) + 1
                    return
                if out:
                    rip, rmac = p.dst_ip, p.dst_mac
                    lport, rport = p.sport, p.dport
                    key = (proto, p.src_ip, lport, rip, rport)
                else:
                    rip, rmac = p.src_ip, p.src_mac
                    lport, rport = p.dport, p.sport
                    key = (proto, p.dst_ip, lport, rip, rport)
                if self._peers.get(rip) != rmac:
                    self._peers[rip] = rmac
                    self.state.observe_peer(rip, rmac, ts)
                if proto == PROTO_UDP:
                    if rport == 53 or lport == 53:
                        self._dns(p, out, ts)
                    elif lport == 68 or lport == 67:
                        self._dhcp(p, ts)
                    else:
                        protos["udp"] = protos.get("udp", 0) + 1
                    self.state.connections.datagram(PROTO_UDP, key, out, wlen, p.payload_len, ts)
                elif proto == PROTO_ICMP or proto == PROTO_ICMPV6:
                    protos["icmp"] = protos.get("icmp", 0) + 1
                    t = p.icmp_type
                    ident = p.icmp_id if t in (0, 8, 128, 129) else 0
                    key = (proto, key[1], ident, rip, ident)
                    self.state.connections.datagram(proto, key, out, wlen, p.payload_len, ts,
                                                    t, p.icmp_code)
                else:
                    name = "ipv6" if et == ETH_IPV6 else "other"
                    protos[name] = protos.get(name, 0) + 1
            elif et == ETH_ARP:
                protos["arp"] = protos.get("arp", 0) + 1
                self.state.observe_arp(p, ts)
            else:
                protos["other"] = protos.get("other", 0) + 1
        except MalformedPacket as exc:
            st.malformed += 1
            r = exc.reason
            st.malformed_reasons[r] = st.malformed_reasons.get(r, 0) + 1
        except Exception:  # a decoder/state bug must not take the replica down
            st.errors += 1
            if not self._logged_error:
                self._logged_error = True
                log.exception("mirror engine: unexpected error on a frame (logged once)")

    def _tcp(self, smac: bytes, dmac: bytes, src: bytes, dst: bytes, sport: int, dport: int,
             flags: int, seq: int, ack: int, plen: int, wlen: int, ts: float) -> None:
        """One TCP segment, from either decoder: which side is the container, then the table."""
        mac = self._mac
        if smac == mac:
            out = True
        elif dmac == mac:
            out = False
        elif src in self._ips:
            out = True
        elif dst in self._ips:
            out = False
        else:
            self.stats.foreign += 1
            protos = self.stats.protocols
            protos["other"] = protos.get("other", 0) + 1
            return
        if out:
            rip, rmac, key = dst, dmac, (PROTO_TCP, src, sport, dst, dport)
        else:
            rip, rmac, key = src, smac, (PROTO_TCP, dst, dport, src, sport)
        if self._peers.get(rip) != rmac:
            self._peers[rip] = rmac
            self.state.observe_peer(rip, rmac, ts)
        protos = self.stats.protocols
        protos["tcp"] = protos.get("tcp", 0) + 1
        self.state.connections.tcp(key, out, flags, seq, ack, plen, wlen, ts)

    def _dns(self, p: Any, out: bool, ts: float) -> None:
        """Queries the container sends and responses it receives; the container acting as
        a DNS server is not its own resolver cache."""
        self.stats.protocols["dns"] = self.stats.protocols.get("dns", 0) + 1
        msg = parse_dns(p.payload)
        if msg.is_response != out:
            self.state.observe_dns(msg, ts)

    def _dhcp(self, p: Any, ts: float) -> None:
        self.stats.protocols["dhcp"] = self.stats.protocols.get("dhcp", 0) + 1
        self.state.observe_dhcp(parse_dhcp(p.payload), ts)

    def _tick(self, ts: float) -> None:
        if self.stats.first_ts is None:
            self.stats.first_ts = ts
            self.state.start(ts)
        self._next_tick = ts + 1.0
        self.expire(ts)
        self.stats.sample(ts)

    def expire(self, now: float) -> None:
        """Expire DNS/connection state at ``now``; called every second of packet time by
        :meth:`feed`, callable by the agent when traffic is idle."""
        try:
            self.state.expire(now)
        except Exception:
            self.stats.errors += 1
            log.exception("mirror engine: expiry failed")

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """``state.snapshot`` at ``now`` (default: the last packet's time) plus ``stats``."""
        if now is None:
            now = self.stats.last_ts or 0.0
        snap = self.state.snapshot(now)
        snap["stats"] = self.stats.as_dict()
        return snap
