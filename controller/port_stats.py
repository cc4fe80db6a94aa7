"""Port counters polled from every switch, turned into per-second rates per port.

The Flow Monitor asks each switch for its port stats every reconcile
interval. Drops and errors on a service node's edge port, and summed over a
critical switch's ports, become extra metrics for that node's or switch's
health (the predictive engine sees them; see ``HealthSettings``). Counters
that go backwards (a switch restarted) give no rate for that sample.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from controller.services.health import CounterRates


@dataclass(frozen=True)
class PortCounters:
    """One port's cumulative counters, as an OpenFlow port-stats reply carries them."""

    port: int
    rx_packets: int
    tx_packets: int
    rx_dropped: int
    tx_dropped: int
    rx_errors: int
    tx_errors: int


class PortStats:
    def __init__(self) -> None:
        self._counters = CounterRates()
        self._rates: dict[tuple[int, int], dict[str, float]] = {}

    def update(self, dpid: int, ts: float, counters: Iterable[PortCounters]) -> None:
        for c in counters:
            values = {
                "rx_pps": c.rx_packets, "tx_pps": c.tx_packets,
                "drops_per_s": c.rx_dropped + c.tx_dropped,
                "errors_per_s": c.rx_errors + c.tx_errors,
            }
            rates = {name: self._counters.update((dpid, c.port, name), ts, float(value))
                     for name, value in values.items()}
            if all(r is not None for r in rates.values()):
                self._rates[(dpid, c.port)] = {k: round(v, 3) for k, v in rates.items()
                                               if v is not None}

    def port(self, dpid: int, port: int) -> dict[str, float]:
        """The latest rates of one port ({} until two samples arrived)."""
        return dict(self._rates.get((dpid, port), {}))

    def switch(self, dpid: int) -> dict[str, float]:
        """Drops and errors per second summed over a switch's ports."""
        ports = [r for (d, _), r in self._rates.items() if d == dpid]
        if not ports:
            return {}
        return {name: round(sum(r[name] for r in ports), 3)
                for name in ("drops_per_s", "errors_per_s")}

    def ports(self, dpid: int) -> dict[int, dict[str, float]]:
        return {p: dict(r) for (d, p), r in self._rates.items() if d == dpid}

    def forget(self, dpid: int) -> None:
        for key in [k for k in self._rates if k[0] == dpid]:
            del self._rates[key]
