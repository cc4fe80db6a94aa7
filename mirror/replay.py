"""Offline replay: run a capture through the same :class:`SyncEngine` the agent runs live.

Used by ``shadownet mirror replay`` to inspect what the mirror would have built
from a pcap, and by the benchmark.  Which host is "the container" matters (the
state is one host's point of view), so it comes from the flags or, failing
that, from the capture itself: the unicast MAC present in clearly the most
frames (on a mirror port the container is in every frame), and the IPv4
source addresses that MAC used.  When two MACs are about equally frequent
(a capture between two hosts) we refuse to guess and ask for the flag.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirror.engine import SyncEngine
from mirror.packets import ETH_ARP, ETH_IPV4, ip_bytes, ip_str, mac_bytes, mac_str
from mirror.pcap import LINKTYPE_ETHERNET, PcapReader
from mirror.state import ChangeCallback

AMBIGUITY_MARGIN = 1.05  # the container must appear in 5% more frames than the runner-up


@dataclass
class ReplayResult:
    """What a replay produced: the engine (state + stats), who the container was, timing."""

    path: Path
    container_mac: str
    container_ips: list[str]
    auto_selected: bool
    engine: SyncEngine
    elapsed: float
    alerts: list[Any] = field(default_factory=list)

    @property
    def packets_per_second(self) -> float:
        return self.engine.stats.packets / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        snap = self.engine.snapshot()
        snap["replay"] = {"file": str(self.path), "auto_selected": self.auto_selected,
                          "seconds": round(self.elapsed, 6),
                          "packets_per_second": round(self.packets_per_second, 1)}
        if self.alerts:
            snap["alerts"] = [a.as_dict() for a in self.alerts]
        return snap


def _open(path: Path) -> PcapReader:
    reader = PcapReader(path)
    if reader.linktype != LINKTYPE_ETHERNET:
        reader.close()
        raise ValueError(f"{path}: link type {reader.linktype} is not Ethernet (1); capture on "
                         "the interface itself, not 'any'")
    return reader


def pick_container(path: str | Path, container_ip: str | None = None) -> tuple[str, list[str]]:
    """Guess (mac, ips) of the container a capture is about; ValueError when ambiguous."""
    path = Path(path)
    macs: Counter[bytes] = Counter()
    sources: Counter[tuple[bytes, bytes]] = Counter()
    with _open(path) as reader:
        for _ts, frame, _orig in reader:
            if len(frame) < 14:
                continue
            dst, src = frame[0:6], frame[6:12]
            if not dst[0] & 1:
                macs[dst] += 1
            if not src[0] & 1:
                macs[src] += 1
            et = frame[12:14]
            off = 14
            if et == b"\x81\x00":
                et, off = frame[16:18], 18
            if et == b"\x08\x00" and len(frame) >= off + 20:
                sources[(src, frame[off + 12:off + 16])] += 1
            elif et == b"\x08\x06" and len(frame) >= off + 28:
                sources[(src, frame[off + 14:off + 18])] += 1
    if not macs:
        raise ValueError(f"{path}: no unicast Ethernet frames to pick a container from")
    zero = b"\x00\x00\x00\x00"
    if container_ip is not None:
        want = ip_bytes(container_ip)
        owners = Counter({m: n for (m, ip), n in sources.items() if ip == want})
        if not owners:
            raise ValueError(f"{path}: no frame is sent from {container_ip}; pass --container-mac")
        mac = owners.most_common(1)[0][0]
        return mac_str(mac), [container_ip]
    ranked = macs.most_common(2)
    mac, count = ranked[0]
    if len(ranked) > 1 and count < ranked[1][1] * AMBIGUITY_MARGIN:
        other, n2 = ranked[1]
        raise ValueError(
            f"{path}: cannot tell the container apart: {mac_str(mac)} is in {count} frames and "
            f"{mac_str(other)} in {n2}; pass --container-mac (and --container-ip)")
    ips = [ip for (m, ip), _ in sorted(sources.items(), key=lambda kv: -kv[1])
           if m == mac and ip != zero]
    return mac_str(mac), [ip_str(ip) for ip in dict.fromkeys(ips)]


def replay(path: str | Path, container_mac: str | None = None,
           container_ips: list[str] | None = None, subnet: str | None = None,
           on_change: ChangeCallback | None = None, rules: Any = None,
           progress: Callable[[int], None] | None = None) -> ReplayResult:
    """Feed every frame of ``path`` to a fresh engine; evaluate ``rules`` (a
    :class:`mirror.rules.RuleSet`) once per second of capture time when given."""
    path = Path(path)
    auto = False
    if container_mac is not None:
        mac_bytes(container_mac)  # validate early, with a clear message
        ips = list(container_ips or [])
        if not ips:
            ips = _ips_of(path, container_mac)
    else:
        ip = container_ips[0] if container_ips else None
        container_mac, ips = pick_container(path, ip)
        if container_ips:
            ips = list(container_ips)
        auto = True
    engine = SyncEngine(container_mac, ips, on_change=on_change, subnet=subnet)
    alerts: list[Any] = []
    feed = engine.feed
    start = time.perf_counter()
    with _open(path) as reader:
        if rules is None:
            for ts, frame, orig in reader:
                feed(frame, ts, orig)
        else:
            next_eval = float("-inf")
            for ts, frame, orig in reader:
                feed(frame, ts, orig)
                if ts >= next_eval:
                    next_eval = ts + 1.0
                    alerts.extend(rules.evaluate(engine.state, engine.stats, ts))
            if engine.stats.last_ts is not None:
                alerts.extend(rules.evaluate(engine.state, engine.stats, engine.stats.last_ts))
    elapsed = time.perf_counter() - start
    return ReplayResult(path, engine.state.mac, list(engine.state.ips), auto, engine, elapsed,
                        alerts)


def _ips_of(path: Path, mac: str) -> list[str]:
    raw = mac_bytes(mac)
    seen: dict[bytes, int] = {}
    with _open(path) as reader:
        for _ts, frame, _orig in reader:
            if frame[6:12] != raw:
                continue
            et, off = frame[12:14], 14
            if et == b"\x81\x00":
                et, off = frame[16:18], 18
            if et == ETH_IPV4.to_bytes(2, "big") and len(frame) >= off + 20:
                ip = frame[off + 12:off + 16]
            elif et == ETH_ARP.to_bytes(2, "big") and len(frame) >= off + 28:
                ip = frame[off + 14:off + 18]
            else:
                continue
            if ip != b"\x00\x00\x00\x00":
                seen[ip] = seen.get(ip, 0) + 1
    return [ip_str(ip) for ip, _ in sorted(seen.items(), key=lambda kv: -kv[1])]


# -- human output -----------------------------------------------------------------------------


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in cells)


def format_result(result: ReplayResult, limit: int = 50) -> str:
    """Human-readable state: one table per section, connections capped at ``limit`` rows."""
    snap = result.engine.snapshot()
    st = snap["stats"]
    how = "auto-selected" if result.auto_selected else "given"
    out = [f"{result.path}: {st['packets']} frames, {st['bytes']} bytes, "
           f"{st['malformed']} malformed, replayed in {result.elapsed:.3f}s "
           f"({result.packets_per_second:,.0f} frames/s)",
           f"container ({how}): {result.container_mac} {' '.join(result.container_ips) or '-'}",
           "protocols: " + ", ".join(f"{k}={v}" for k, v in st["protocols"].items()), ""]
    out += [f"ARP cache ({len(snap['arp'])})",
            _table(["IP", "MAC", "SOURCE", "LAST SEEN"],
                   [[a["ip"], a["mac"], a["source"], f"{a['last_seen']:.3f}"]
                    for a in snap["arp"]]), ""]
    out += [f"Routes ({len(snap['routes'])})",
            _table(["DESTINATION", "GATEWAY", "GATEWAY MAC", "SOURCE"],
                   [[r["dst"], r["gateway"], r["gateway_mac"], r["source"]]
                    for r in snap["routes"]]), ""]
    conns = snap["connections"]
    shown = sorted(conns, key=lambda c: -(c["orig"]["bytes"] + c["resp"]["bytes"]))[:limit]
    more = f", top {limit} by bytes" if len(conns) > limit else ""
    out += [f"Connections ({len(conns)}{more})",
            _table(["PROTO", "ORIGINATOR", "RESPONDER", "STATE", "ZEEK", "HISTORY", "PKTS >/<",
                    "BYTES >/<", "RETX"],
                   [[c["proto"], f"{c['orig_ip']}:{c['orig_port']}",
                     f"{c['resp_ip']}:{c['resp_port']}", c["state"], c["conn_state"],
                     c["history"] or "-", f"{c['orig']['packets']}/{c['resp']['packets']}",
                     f"{c['orig']['bytes']}/{c['resp']['bytes']}",
                     c["orig"]["retransmissions"] + c["resp"]["retransmissions"]]
                    for c in shown]), ""]
    out += [f"DNS cache ({len(snap['dns'])})",
            _table(["NAME", "TYPE", "RCODE", "ANSWERS", "TTL LEFT"],
                   [[d["name"], d["type"], d["rcode"],
                     ", ".join(a["data"] for a in d["answers"]) or "-", d["ttl_left"]]
                    for d in snap["dns"]])]
    if result.alerts:
        out += ["", f"Alerts ({len(result.alerts)})",
                _table(["TIME", "STATUS", "SEVERITY", "RULE", "MESSAGE"],
                       [[f"{a.ts:.3f}", a.status, a.severity, a.rule, a.message]
                        for a in result.alerts])]
    return "\n".join(out)
