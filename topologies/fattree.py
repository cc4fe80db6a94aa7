"""k-ary fat tree, the classic data-centre topology (Al-Fares et al., SIGCOMM 2008).

We use it because it is the opposite of a ring: many equal-cost paths between
every pair of hosts, so it exercises multipath path computation and the number
of flows a controller installs, while staying small enough for one machine
(k=4 is 20 switches and 16 hosts).

For an even ``k``:

* ``(k/2)^2`` core switches,
* ``k`` pods, each with ``k/2`` aggregation and ``k/2`` edge switches,
* every edge switch linked to every aggregation switch of its pod,
* aggregation switch ``j`` of every pod linked to core switches
  ``j*(k/2) .. j*(k/2) + k/2 - 1``,
* ``k/2`` hosts on every edge switch (``k^3/4`` hosts in all).

Switches are numbered core first, then aggregation, then edge, all as
``s1..sN`` because Mininet derives each datapath id from the trailing number;
hosts are ``h1..hM`` in edge-switch order.

    mn --custom topologies/fattree.py --topo fattree,4

The file is self-contained on purpose: ``mn --custom`` exec()s it with the
system python3, where our package is not importable.
"""

from __future__ import annotations

from mininet.topo import Topo


class FatTreeTopo(Topo):
    """The k-ary fat tree; ``k`` must be even and at least 2.

    After ``build`` the switch names by role are kept in ``core``,
    ``aggregation`` and ``edge`` so callers can reason about tiers without
    parsing names.
    """

    def build(self, k: int = 4) -> None:
        if isinstance(k, bool) or not isinstance(k, int):
            try:
                k = int(str(k).strip())
            except ValueError:
                raise ValueError(f"fattree k must be an integer, got {k!r}") from None
        if k < 2 or k % 2:
            raise ValueError(
                f"fattree k must be an even integer >= 2 (e.g. 4 -> 20 switches, 16 hosts), "
                f"got k={k}"
            )
        half = k // 2
        self.k = k

        counter = iter(range(1, 5 * k * k // 4 + 1))

        def switch() -> str:
            name: str = self.addSwitch(f"s{next(counter)}")
            return name

        self.core = [switch() for _ in range(half * half)]
        # aggregation[p][j] / edge[p][j]: switch j of pod p.
        pods_agg = [[switch() for _ in range(half)] for _ in range(k)]
        pods_edge = [[switch() for _ in range(half)] for _ in range(k)]
        self.aggregation = [s for pod in pods_agg for s in pod]
        self.edge = [s for pod in pods_edge for s in pod]

        for pod in range(k):
            for j, agg in enumerate(pods_agg[pod]):
                for core in self.core[j * half : (j + 1) * half]:
                    self.addLink(core, agg)
                for edge in pods_edge[pod]:
                    self.addLink(agg, edge)

        host_number = 0
        for edge in self.edge:
            for _ in range(half):
                host_number += 1
                self.addLink(self.addHost(f"h{host_number}"), edge)


topos = {"fattree": FatTreeTopo}
