"""How long the controller's event loop is held by topology changes on a real graph.

Every host pair of a Topology Zoo network gets its path (with fast-failover
detours), then each link is cut and restored, one event at a time, the way
LLDP and port status report them. The figure that matters is the worst single
event: while it runs no LLDP, barrier or packet-in is handled.

    python bench/reroute.py [--topo Bics] [--repeat 3]

Two variants run side by side in one process: ``cached`` is the controller as
shipped; ``baseline`` turns off the graph's path and port-peer caches and the
match-field cache (so every match is normalised by os-ken, as before). The
ratio is baseline time over cached time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller import ofmsgs  # noqa: E402
from controller.forwarding import Forwarder, ForwardingSettings  # noqa: E402
from controller.host_table import HostTable  # noqa: E402
from controller.network_graph import Link, NetworkGraph  # noqa: E402
from controller.signature_table import SignatureTable  # noqa: E402
from shadownet import progress  # noqa: E402
from shadownet.progress import Progress  # noqa: E402
from topologies.zoo import load_zoo_graph  # noqa: E402


class _NoCache(dict[Any, Any]):
    """A cache that never keeps anything."""

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


def build(topo: str, cached: bool = True) -> tuple[Forwarder, list[Link]]:
    """Switch i gets port 1 for its host and ports 2.. for its links, as in the lab."""
    zoo = load_zoo_graph(topo).graph
    graph = NetworkGraph()
    if not cached:
        graph._cache = _NoCache()
    next_port = {n: 2 for n in zoo.nodes}
    links = []
    for a, b in sorted(zoo.edges):
        link = Link(a, next_port[a], b, next_port[b])
        next_port[a] += 1
        next_port[b] += 1
        links.append(link)
    for n in zoo.nodes:
        graph.add_switch(n, list(range(1, next_port[n])))
    for link in links:
        graph.add_link(link)
    fwd = Forwarder(graph, HostTable(), SignatureTable(), ForwardingSettings())
    for n in zoo.nodes:
        mac, ip = f"00:00:00:00:{n >> 8:02x}:{n & 0xff:02x}", f"10.0.{n >> 8}.{n & 0xff}"
        fwd.hosts.learn(mac, n, 1, ip, 0.0)
    return fwd, links


def install_all(fwd: Forwarder) -> int:
    hosts = fwd.hosts.all()
    count = 0
    for i, a in enumerate(hosts):
        for b in hosts[i + 1:]:
            count += len(fwd.install_pair(a, b))
    return count


def run(topo: str, repeat: int, cached: bool) -> dict[str, list[float]]:
    cached_field = ofmsgs._oxm_field
    if not cached:
        ofmsgs._oxm_field = cached_field.__wrapped__  # type: ignore[assignment]
    try:
        variant = "cached" if cached else "baseline"
        fwd, links = build(topo, cached)
        started = time.perf_counter()
        install_all(fwd)
        times: dict[str, list[float]] = {"install all pairs": [time.perf_counter() - started],
                                         "link cut": [], "link restored": []}
        for _ in range(repeat):
            for link in links:
                progress.step(variant)  # outside the timed calls
                started = time.perf_counter()
                fwd.link_removed(link)
                times["link cut"].append(time.perf_counter() - started)
                started = time.perf_counter()
                fwd.link_added(link)
                times["link restored"].append(time.perf_counter() - started)
        return times
    finally:
        ofmsgs._oxm_field = cached_field


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topo", default="Bics")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    fwd, links = build(args.topo)
    msgs = install_all(fwd)
    print(f"{args.topo}: {len(links)} links, {len(fwd.table.active_paths())} paths, "
          f"{msgs} messages to install them", flush=True)
    # A step is one link cut and restored; Bics with --repeat 2 takes over a minute.
    with Progress("reroute", total=2 * args.repeat * len(links), unit="link",
                  quiet=args.quiet):
        base = run(args.topo, args.repeat, cached=False)
        ours = run(args.topo, args.repeat, cached=True)
    print(f"{'event':18s} {'baseline ms':>24s} {'cached ms':>24s} {'ratio':>6s}")
    print(f"{'':18s} {'median':>11s} {'worst':>12s} {'median':>11s} {'worst':>12s}")
    for name in ours:
        b, o = base[name], ours[name]
        print(f"{name:18s} {statistics.median(b) * 1e3:11.1f} {max(b) * 1e3:12.1f} "
              f"{statistics.median(o) * 1e3:11.1f} {max(o) * 1e3:12.1f} "
              f"{max(b) / max(o):6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
