"""Ring topology: N switches in a cycle, each with its own hosts.

A ring is the smallest topology with a loop in it, which is exactly why we
want it: broadcast storms, flooding rules and path computation all behave
differently once there are two ways between any pair of switches, and a
ring shows that with very few switches.

Usable in two ways:

    mn --custom topologies/ring.py --topo ring,6        # six switches
    mn --custom topologies/ring.py --topo ring,6,2      # two hosts each

    from topologies.ring import RingTopo
    topo = RingTopo(6)

The file is self-contained on purpose: ``mn --custom`` exec()s it with the
system python3, where our package is not importable.
"""

from __future__ import annotations

from mininet.topo import Topo


class RingTopo(Topo):
    """``n`` switches ``s1..sn`` linked in a cycle, ``hosts_per_switch`` hosts on each.

    Hosts are numbered consecutively (``h1``, ``h2``, ...), switch ``si`` owning
    hosts ``h((i-1)*k+1)`` to ``h(i*k)``; with one host per switch that is
    simply ``hi`` on ``si``. Switch names end in their number because Mininet
    derives each datapath id from it.
    """

    def build(self, n: int = 4, hosts_per_switch: int = 1) -> None:
        n = _int_arg("n", n)
        hosts_per_switch = _int_arg("hosts_per_switch", hosts_per_switch)
        # Two switches would need a doubled link and one a self-loop: neither
        # is a ring, and Mininet would build something the caller did not mean.
        if n < 3:
            raise ValueError(f"ring needs at least 3 switches to form a loop, got n={n}")
        if hosts_per_switch < 0:
            raise ValueError(f"hosts_per_switch must be >= 0, got {hosts_per_switch}")
        self.n = n
        self.hosts_per_switch = hosts_per_switch

        switches = [self.addSwitch(f"s{i}") for i in range(1, n + 1)]
        host_number = 0
        for switch in switches:
            for _ in range(hosts_per_switch):
                host_number += 1
                self.addLink(self.addHost(f"h{host_number}"), switch)
        # Closing the cycle: s1-s2, ..., s(n-1)-sn, sn-s1.
        for i, switch in enumerate(switches):
            self.addLink(switch, switches[(i + 1) % n])


def _int_arg(name: str, value: object) -> int:
    """Accept ints (and integral strings, as ``mn --topo`` may pass) and nothing else."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


topos = {"ring": RingTopo}
