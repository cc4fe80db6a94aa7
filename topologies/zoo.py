"""Internet Topology Zoo networks as Mininet topologies.

The Topology Zoo (Knight et al., IEEE JSAC 2011) gives us real operator
networks of 4 to 100+ nodes, a far better test of discovery and path
computation than hand-made shapes. The files are real, though, and not clean,
so the loader handles each known defect on purpose instead of crashing:

* **Parallel edges.** Many files list the same link twice (two circuits
  between the same cities). ``networkx.read_gml`` refuses them unless the
  graph is read as a multigraph, so we parse as one and merge each bundle into
  a single link: Mininet and OpenFlow discovery see one port pair per
  neighbour, ``multiplicity`` records how many circuits were merged, and
  ``speed_bps`` keeps the fastest one.
* **Self-loops** carry no meaning for forwarding and would give a switch a
  link to itself; they are dropped and counted.
* **Disconnected graphs.** Hosts in different islands could never reach each
  other, which looks exactly like a controller bug. By default we keep the
  largest connected component and report what was dropped;
  ``components="refuse"`` raises instead.
* **Nodes without coordinates** are kept (coordinates are only for drawing);
  ``latitude``/``longitude`` are ``None`` for them.
* **Repeated or missing labels** do not matter because nodes are renumbered
  ``1..N`` (sorted by their GML id, so the numbering is stable); the original
  label and id are kept as node attributes. A missing label, or the literal
  ``"None"`` some files carry, becomes ``node <id>``; repeated labels are
  listed in ``repeated_labels``.

Mininet use (``--topo zoo,NAME[,HOSTS_PER_SWITCH]`` or a path to a .gml):

    mn --custom topologies/zoo.py --topo zoo,Abilene

Data location: ``$SHADOWNET_ZOO_DIR`` if set, else ``../shared/data/topology-zoo``
next to the repository root.

This file is self-contained on purpose: ``mn --custom`` exec()s it with the
system python3, where our package is not importable and ``__file__`` is not
even set.
"""

from __future__ import annotations

import difflib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mininet.topo import Topo

try:
    import networkx as nx
except ImportError:  # pragma: no cover - only on a python without networkx
    nx = None

ZOO_DIR_ENV = "SHADOWNET_ZOO_DIR"
COMPONENT_POLICIES = ("largest", "refuse")

# Multipliers for LinkSpeed when only the human-readable speed is present.
_SPEED_UNITS = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


@dataclass
class ZooGraph:
    """A cleaned Topology Zoo network, ready to turn into switches and links.

    ``graph`` is an undirected simple graph with nodes ``1..N``; each node has
    ``label``, ``orig_id``, ``latitude`` and ``longitude`` (``None`` when the
    file has no coordinates) plus the file's other node attributes; each edge
    has ``multiplicity`` and ``speed_bps`` (``None`` when unknown).
    """

    name: str
    path: Path
    graph: nx.Graph
    merged_edges: int = 0
    """Parallel edges folded into another link (a triple link counts 2)."""
    dropped_nodes: list[str] = field(default_factory=list)
    """Labels of the nodes left out because they are outside the kept component."""
    self_loops: int = 0
    component_sizes: list[int] = field(default_factory=list)
    """Sizes of the connected components of the file, largest first."""
    missing_coordinates: int = 0
    repeated_labels: list[str] = field(default_factory=list)

    @property
    def connected(self) -> bool:
        """True when the file itself was one connected graph."""
        return len(self.component_sizes) <= 1

    def summary(self) -> str:
        """One line for logs: size plus every repair that was made."""
        g = self.graph
        parts = [f"{self.name}: {g.number_of_nodes()} nodes, {g.number_of_edges()} links"]
        if self.merged_edges:
            parts.append(f"merged {self.merged_edges} parallel edges")
        if self.self_loops:
            parts.append(f"dropped {self.self_loops} self-loops")
        if self.dropped_nodes:
            sizes = ", ".join(str(s) for s in self.component_sizes)
            parts.append(
                f"kept largest of {len(self.component_sizes)} components ({sizes}), "
                f"dropped {len(self.dropped_nodes)} nodes"
            )
        if self.missing_coordinates:
            parts.append(f"{self.missing_coordinates} nodes without coordinates")
        return "; ".join(parts)


def zoo_dir() -> Path:
    """Directory holding the Topology Zoo ``*.gml`` files."""
    override = os.environ.get(ZOO_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return _this_file().parents[1].parent / "shared" / "data" / "topology-zoo"


def _this_file() -> Path:
    """This module's path, also when ``mn --custom`` exec()s it without ``__file__``.

    The code object always remembers the file name it was compiled from.
    """
    return Path(_this_file.__code__.co_filename).resolve()


def list_zoo_names(directory: str | os.PathLike[str] | None = None) -> list[str]:
    """Names (file stems) of all networks in the zoo directory, sorted."""
    directory = Path(directory) if directory is not None else zoo_dir()
    if not directory.is_dir():
        raise FileNotFoundError(
            f"Topology Zoo directory not found: {directory} (set {ZOO_DIR_ENV} to override)"
        )
    return sorted(p.stem for p in directory.glob("*.gml"))


def resolve_zoo_path(name_or_path: str | os.PathLike[str]) -> Path:
    """Turn ``Abilene``, ``abilene`` or ``/some/file.gml`` into an existing file path."""
    text = os.fspath(name_or_path).strip()
    if not text:
        raise ValueError("empty Topology Zoo name; give a network name such as Abilene")
    looks_like_path = (
        isinstance(name_or_path, os.PathLike)
        or os.sep in text
        or "/" in text
        or text.lower().endswith(".gml")
    )
    if looks_like_path:
        path = Path(text).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"Topology Zoo file not found: {path}")
        return path

    names = list_zoo_names()
    directory = zoo_dir()
    if text in names:
        return directory / f"{text}.gml"
    by_lower = {n.lower(): n for n in names}
    if text.lower() in by_lower:
        return directory / f"{by_lower[text.lower()]}.gml"
    close = difflib.get_close_matches(text.lower(), list(by_lower), n=3, cutoff=0.6)
    hint = (
        f"did you mean {', '.join(by_lower[c] for c in close)}?"
        if close
        else f"{len(names)} networks available, see list_zoo_names()"
    )
    raise ValueError(f"unknown Topology Zoo network {text!r} in {directory}; {hint}")


def load_zoo_graph(name_or_path: str | os.PathLike[str], components: str = "largest") -> ZooGraph:
    """Read one zoo network and repair it as described in the module docstring.

    Raises ``FileNotFoundError`` for a missing file or directory and
    ``ValueError`` for an unknown name, an unparsable or empty file, or a
    disconnected graph when ``components="refuse"``; messages are one line.
    """
    if components not in COMPONENT_POLICIES:
        raise ValueError(
            f"components must be one of {', '.join(COMPONENT_POLICIES)}, got {components!r}"
        )
    if nx is None:
        raise ValueError("the zoo loader needs networkx (apt install python3-networkx)")
    path = resolve_zoo_path(name_or_path)
    raw = _read_multigraph(path)

    # Stable numbering: by GML id (ints in every zoo file), whatever the file order.
    order = sorted(raw.nodes, key=_id_sort_key)

    simple = nx.Graph()
    for node in order:
        simple.add_node(node)
    self_loops = 0
    merged = 0
    for u, v, data in raw.edges(data=True):
        if u == v:
            self_loops += 1
            continue
        speed = _speed_bps(data)
        if simple.has_edge(u, v):
            merged += 1
            link = simple.edges[u, v]
            link["multiplicity"] += 1
            if speed is not None and (link["speed_bps"] is None or speed > link["speed_bps"]):
                link["speed_bps"] = speed
        else:
            simple.add_edge(u, v, multiplicity=1, speed_bps=speed)

    position = {node: i for i, node in enumerate(order)}
    comps = sorted(
        (sorted(c, key=position.__getitem__) for c in nx.connected_components(simple)),
        # Largest first; ties go to the component holding the lowest id.
        key=lambda c: (-len(c), position[c[0]]),
    )
    sizes = [len(c) for c in comps]
    if len(comps) > 1 and components == "refuse":
        raise ValueError(
            f"{path.name}: graph is disconnected ({len(comps)} components of sizes "
            f"{', '.join(map(str, sizes))}); use components='largest' to keep the largest"
        )
    keep = set(comps[0])
    dropped = [_label(raw, n) for n in order if n not in keep]

    graph = nx.Graph(name=path.stem)
    number: dict[Any, int] = {}
    for node in order:
        if node not in keep:
            continue
        number[node] = len(number) + 1
        attrs = dict(raw.nodes[node])
        attrs["orig_id"] = node
        attrs["label"] = _label(raw, node)
        attrs["latitude"] = _float_or_none(attrs.pop("Latitude", None))
        attrs["longitude"] = _float_or_none(attrs.pop("Longitude", None))
        graph.add_node(number[node], **attrs)
    for u, v, data in simple.edges(data=True):
        if u in keep:
            a, b = sorted((number[u], number[v]))
            graph.add_edge(a, b, **data)

    label_counts = Counter(graph.nodes[n]["label"] for n in graph)
    repeated = sorted(label for label, count in label_counts.items() if count > 1)
    missing = sum(
        1 for _, attrs in graph.nodes(data=True) if None in (attrs["latitude"], attrs["longitude"])
    )
    return ZooGraph(
        name=path.stem,
        path=path,
        graph=graph,
        merged_edges=merged,
        dropped_nodes=dropped,
        self_loops=self_loops,
        component_sizes=sizes,
        missing_coordinates=missing,
        repeated_labels=repeated,
    )


def _read_multigraph(path: Path) -> nx.MultiGraph:
    """Parse a GML file as an undirected multigraph, whatever its header says.

    ``nx.read_gml`` only builds a multigraph when the file declares
    ``multigraph 1``, and raises on the first repeated edge otherwise. Zoo
    files never declare it, so we add the declaration to the text before
    parsing rather than depend on networkx internals.
    """
    try:
        text = path.read_bytes().decode("ascii")
    except UnicodeDecodeError:
        raise ValueError(f"{path.name}: not a GML file (not ASCII text)") from None
    except OSError as err:
        raise ValueError(f"{path.name}: cannot read: {err.strerror or err}") from None
    if not re.search(r"^\s*multigraph\s+1\b", text, flags=re.MULTILINE):
        text, found = re.subn(r"\bgraph\s*\[", "graph [\n  multigraph 1", text, count=1)
        if not found:
            raise ValueError(f"{path.name}: not a GML file (no 'graph [' block)")
    try:
        graph = nx.parse_gml(text, label="id")
    except (nx.NetworkXError, ValueError, KeyError, TypeError, IndexError) as err:
        message = " ".join(str(err).split()) or type(err).__name__
        raise ValueError(f"{path.name}: unparsable GML: {message}") from None
    if graph.is_directed():
        # Links are duplex; keep every listed edge (a->b and b->a become a
        # parallel pair) so the merge below accounts for all of them.
        undirected = nx.MultiGraph()
        undirected.add_nodes_from(graph.nodes(data=True))
        undirected.add_edges_from(graph.edges(data=True))
        graph = undirected
    if graph.number_of_nodes() == 0:
        raise ValueError(f"{path.name}: graph has no nodes")
    return graph


def _id_sort_key(node: object) -> tuple[int, int | str]:
    if isinstance(node, int) and not isinstance(node, bool):
        return (0, node)
    return (1, str(node))


def _label(graph: nx.MultiGraph, node: object) -> str:
    """The node's name, or ``node <id>`` when the file has none.

    62 zoo files carry the literal label ``"None"`` (the exporting toolset
    wrote Python's None as text); treat it as missing rather than as dozens of
    nodes sharing one name.
    """
    label = graph.nodes[node].get("label")
    if label is None or str(label).strip() in ("", "None"):
        return f"node {node}"
    return str(label)


def _float_or_none(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _speed_bps(edge: dict[str, Any]) -> float | None:
    """Link speed in bit/s from ``LinkSpeedRaw``, else ``LinkSpeed`` + ``LinkSpeedUnits``."""
    raw = _float_or_none(edge.get("LinkSpeedRaw"))
    if raw is not None and raw > 0:
        return raw
    speed = _float_or_none(edge.get("LinkSpeed"))
    unit = str(edge.get("LinkSpeedUnits", "")).strip().upper()
    if speed is not None and speed > 0 and unit in _SPEED_UNITS:
        return speed * _SPEED_UNITS[unit]
    return None


class ZooTopo(Topo):
    """A Topology Zoo network: node ``i`` becomes switch ``si`` with hosts on it.

    With one host per switch, ``hi`` sits on ``si``; with ``k`` hosts they are
    numbered consecutively (``h((i-1)*k+1)`` .. ``h(i*k)`` on ``si``). The
    cleaned graph is kept in ``self.zoo`` (a ``ZooGraph``) so callers can log
    what was repaired. Links carry no bandwidth shaping: zoo speeds (up to
    10 Gbit/s) are beyond what tc can emulate faithfully on one machine.
    """

    def build(
        self,
        name_or_path: str | os.PathLike[str] = "Abilene",
        hosts_per_switch: int = 1,
        components: str = "largest",
    ) -> None:
        if isinstance(hosts_per_switch, bool) or not isinstance(hosts_per_switch, int):
            raise ValueError(f"hosts_per_switch must be an integer, got {hosts_per_switch!r}")
        if hosts_per_switch < 0:
            raise ValueError(f"hosts_per_switch must be >= 0, got {hosts_per_switch}")
        self.zoo = load_zoo_graph(name_or_path, components=components)
        self.hosts_per_switch = hosts_per_switch
        graph = self.zoo.graph
        host_number = 0
        for node in sorted(graph):
            switch = self.addSwitch(f"s{node}")
            for _ in range(hosts_per_switch):
                host_number += 1
                self.addLink(self.addHost(f"h{host_number}"), switch)
        for u, v in sorted(graph.edges):
            self.addLink(f"s{u}", f"s{v}")


topos = {"zoo": ZooTopo}
