"""Switch health probes: is a switch still forwarding, and how fast?

The controller sends a small frame as a packet-out on a switch, out of each
of its inter-switch ports; the neighbour on the other end sends it straight
back (a catch rule at the top of its table 0). What comes back measures the
whole way a path would use the switch, controller -> switch -> link ->
neighbour -> controller, and what never comes back is loss. Both are credited
to the switch that sent the probe (the *origin*), in the shape
:meth:`controller.services.health.HealthMonitor.observe` takes, so a switch
gets a health score and a failure probability like a service node does.

``SwitchProber`` is pure logic: it builds messages and takes packet-ins and
the time from its caller, and sends nothing itself.

Frame: Ethernet to a locally administered multicast address with ethertype
0x88B5 (IEEE "local experimental"), then ``magic | token | origin dpid | port
| sequence | send time``. The token is random per prober, so a host that
sends 0x88B5 frames cannot pass them off as answers.
"""

from __future__ import annotations

import os
import statistics
import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from controller import ofmsgs
from controller.ofmsgs import OutMsg
from controller.pipeline import FROM_CONTAINER_TABLE, PROBE_COOKIE, PROBE_PRIORITY
from controller.services.health import PROBES

PROBE_ETHERTYPE = 0x88B5
PROBE_DST = bytes.fromhex("035348505242")  # multicast + locally administered: "SHPRB"
PROBE_MAGIC = b"SHPR"
# PROBE_PRIORITY (controller.pipeline) is above every other table-0 rule (mirror copies
# and the mirror read-only guard), so a probe is answered before any mirror copies it or
# forwarding sees it.
# The catch rule's cookie lies *outside* the signature table's 0x5348 prefix, on
# purpose. The reconciler only asks for and only deletes flows in that prefix that
# the ST does not hold; a rule outside it is never seen as a stray, and needs no ST
# entry (which would show up among the host flows in the REST API, be persisted, and
# be reinstalled through flow_add, which cannot say "whole packet, no buffering").
# The rule is re-sent on every switch connect (an ADD of the same rule is a no-op),
# and a switch that lost it still sends probes up through its table miss.
# That cookie is PROBE_COOKIE ("SP") in controller.pipeline.

_HEADER = struct.Struct("!6s6sH")
_PAYLOAD = struct.Struct("!4s8sQIQd")  # magic, token, origin dpid, port, seq, sent (s)
_MIN_FRAME = 60  # Ethernet minimum without the FCS


@dataclass
class _Origin:
    """Probe bookkeeping for one origin switch."""

    outstanding: dict[int, tuple[int, float]] = field(default_factory=dict)  # seq -> port, sent
    latencies_ms: deque[float] = field(default_factory=deque)
    answered: int = 0
    lost: int = 0


class SwitchProber:
    """Builds probes, recognises them when they come back, and sums up each interval.

    ``timeout``: a probe not back this long after it was sent is lost (counted
    once, even if it turns up later). ``max_outstanding`` bounds memory per
    switch: past it the oldest probe is given up as lost.
    """

    def __init__(self, timeout: float = 1.0, max_outstanding: int = 1024,
                 token: bytes | None = None) -> None:
        if timeout <= 0 or max_outstanding < 1:
            raise ValueError("probe timeout must be > 0 and max_outstanding >= 1")
        self.timeout = timeout
        self.max_outstanding = max_outstanding
        self.token = (token or os.urandom(8)).ljust(8, b"\0")[:8]
        self._origins: dict[int, _Origin] = {}
        self._seq = 0

    # --- messages -------------------------------------------------------------
    @staticmethod
    def catch_rules(dpid: int) -> list[OutMsg]:
        """The rule every switch needs so probes from its neighbours come up to us."""
        return [(dpid, ofmsgs.punt(FROM_CONTAINER_TABLE, PROBE_PRIORITY,
                                   {"eth_type": PROBE_ETHERTYPE}, PROBE_COOKIE))]

    def probes(self, dpid: int, link_ports: Iterable[int], now: float) -> list[OutMsg]:
        """One probe out of each inter-switch port of ``dpid`` (a packet-out on it)."""
        origin = self._origins.setdefault(dpid, _Origin())
        self._expire(origin, now)
        msgs: list[OutMsg] = []
        for port in sorted(link_ports):
            self._seq += 1
            if len(origin.outstanding) >= self.max_outstanding:
                origin.outstanding.pop(next(iter(origin.outstanding)))
                origin.lost += 1
            origin.outstanding[self._seq] = (port, now)
            msgs.append((dpid, ofmsgs.packet_out([port], self.frame(dpid, port, self._seq, now))))
        return msgs

    def frame(self, dpid: int, port: int, seq: int, sent: float) -> bytes:
        src = b"\x02" + (dpid & 0xFFFFFFFFFF).to_bytes(5, "big")  # locally administered
        data = _HEADER.pack(PROBE_DST, src, PROBE_ETHERTYPE) + _PAYLOAD.pack(
            PROBE_MAGIC, self.token, dpid, port, seq, sent)
        return data.ljust(_MIN_FRAME, b"\0")

    # --- answers --------------------------------------------------------------
    def packet_in(self, dpid: int, in_port: int, data: bytes, now: float) -> bool:
        """Take a packet-in if it is one of our probes (True); anything else is False.

        Never raises: any frame may arrive here. A probe that is late, repeated
        or from a switch we forgot is still ours (True) but changes nothing.
        """
        try:
            if len(data) < _HEADER.size + _PAYLOAD.size:
                return False
            _dst, _src, ethertype = _HEADER.unpack_from(data)
            if ethertype != PROBE_ETHERTYPE:
                return False
            magic, token, origin_id, port, seq, _sent = _PAYLOAD.unpack_from(data, _HEADER.size)
        except (struct.error, TypeError):
            return False
        if magic != PROBE_MAGIC or token != self.token:
            return False
        origin = self._origins.get(origin_id)
        record = origin.outstanding.get(seq) if origin is not None else None
        if origin is None or record is None or record[0] != port:
            return True
        del origin.outstanding[seq]
        elapsed = now - record[1]  # our own send time: the frame's copy is informational
        if elapsed >= self.timeout:
            origin.lost += 1  # too late to count as an answer
        else:
            origin.answered += 1
            origin.latencies_ms.append(max(0.0, elapsed) * 1000.0)
            if len(origin.latencies_ms) > self.max_outstanding:
                origin.latencies_ms.popleft()
        return True

    def metrics(self, dpid: int, now: float) -> dict[str, float]:
        """This interval for ``dpid``: ``{"latency_ms": median, "loss": fraction,
        "probes": settled}``, then reset.

        Loss is over the probes that were settled this interval (answered, or
        older than the timeout); probes still in flight count next time. The
        count lets the health monitor judge loss by its confidence bound. No
        settled probe gives ``{}``: no evidence either way.
        """
        origin = self._origins.get(dpid)
        if origin is None:
            return {}
        self._expire(origin, now)
        settled = origin.answered + origin.lost
        out: dict[str, float] = {}
        if settled:
            out["loss"] = origin.lost / settled
            out[PROBES] = float(settled)
        if origin.latencies_ms:
            out["latency_ms"] = float(statistics.median(origin.latencies_ms))
        origin.answered = origin.lost = 0
        origin.latencies_ms.clear()
        return out

    def outstanding(self, dpid: int) -> int:
        origin = self._origins.get(dpid)
        return len(origin.outstanding) if origin else 0

    def forget(self, dpid: int) -> None:
        """A switch went away: drop its probes (they will never be answered)."""
        self._origins.pop(dpid, None)

    def _expire(self, origin: _Origin, now: float) -> None:
        """Count probes older than the timeout as lost, once (sends are in time order)."""
        horizon = now - self.timeout
        while origin.outstanding:
            seq = next(iter(origin.outstanding))
            if origin.outstanding[seq][1] > horizon:
                break
            del origin.outstanding[seq]
            origin.lost += 1
