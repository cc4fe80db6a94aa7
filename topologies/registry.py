"""One place that turns a topology spec string into a Mininet ``Topo``.

The lab, the CLI and the benchmarks all take a topology as a short string
(``ring,6``, ``zoo:Abilene``), so parsing and validating it lives here, once,
with errors that say what is wrong and what would be accepted. ``TopoInfo``
comes back alongside the ``Topo`` because the lab must know how many
switch-to-switch links to expect before it can tell that LLDP discovery has
finished.

Unlike the topology modules, this one is only used from our package and may
import freely.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from mininet.topo import LinearTopo, SingleSwitchTopo, Topo
from mininet.topolib import TreeTopo

from topologies.fattree import FatTreeTopo
from topologies.ring import RingTopo
from topologies.zoo import ZooGraph, ZooTopo, list_zoo_names, load_zoo_graph, zoo_dir

SPEC_FORMS = (
    "single,N",
    "linear,N",
    "tree,DEPTH,FANOUT",
    "ring,N",
    "fattree,K",
    "zoo:NAME",
    "zoo:/path/to/file.gml",
)


@dataclass(frozen=True)
class TopoInfo:
    """What a caller needs to know about a built topology without walking it.

    ``switch_links`` counts undirected switch-to-switch links, i.e. what LLDP
    discovery must find (a controller that tracks directed links sees twice
    as many, see ``directed_links``). Host links are not included.
    """

    name: str
    switches: int
    hosts: int
    switch_links: int
    zoo: ZooGraph | None = None
    """For zoo specs, the cleaned graph with the record of what was repaired."""

    @property
    def directed_links(self) -> int:
        return 2 * self.switch_links


@dataclass(frozen=True)
class _Form:
    factory: Callable[..., Topo]
    params: tuple[str, ...]
    minimum: tuple[int, ...]
    display: Callable[..., str]


_FORMS: dict[str, _Form] = {
    "single": _Form(lambda n: SingleSwitchTopo(k=n), ("N",), (1,), lambda n: f"single({n})"),
    "linear": _Form(lambda n: LinearTopo(k=n, n=1), ("N",), (1,), lambda n: f"linear({n})"),
    "tree": _Form(
        lambda depth, fanout: TreeTopo(depth=depth, fanout=fanout),
        ("DEPTH", "FANOUT"),
        (1, 1),
        lambda depth, fanout: f"tree(depth={depth},fanout={fanout})",
    ),
    # A ring of two would need a doubled link, of one a self-loop.
    "ring": _Form(lambda n: RingTopo(n), ("N",), (3,), lambda n: f"ring({n})"),
    "fattree": _Form(lambda k: FatTreeTopo(k), ("K",), (2,), lambda k: f"fattree(k={k})"),
}


def _spec_error(spec: str, problem: str) -> ValueError:
    return ValueError(
        f"bad topology spec {spec!r}: {problem}; valid forms: {', '.join(SPEC_FORMS)}"
    )


def build_topo(spec: str) -> tuple[Topo, TopoInfo]:
    """Build the ``Topo`` named by ``spec`` (see ``SPEC_FORMS``) and describe it.

    Raises ``ValueError`` for a malformed spec, naming the problem and listing
    the valid forms; zoo specs may also raise ``FileNotFoundError``.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise _spec_error(str(spec), "empty spec")
    text = spec.strip()

    head = text.split(",", 1)[0].split(":", 1)[0].strip().lower()
    if head == "zoo":
        # Both our "zoo:NAME" and Mininet's "zoo,NAME" spelling.
        rest = text[len("zoo") :].lstrip()
        target = rest[1:].strip() if rest[:1] in (":", ",") else ""
        if not target:
            raise _spec_error(spec, "zoo needs a network name or a .gml path, e.g. zoo:Abilene")
        topo = ZooTopo(target)
        return topo, _describe(topo, f"zoo:{topo.zoo.name}", zoo=topo.zoo)

    name, *raw_args = (part.strip() for part in text.split(","))
    name = name.lower()
    form = _FORMS.get(name)
    if form is None:
        raise _spec_error(spec, f"unknown topology {name!r}")
    if len(raw_args) != len(form.params):
        usage = ",".join((name, *form.params))
        raise _spec_error(
            spec, f"{name} takes {len(form.params)} argument(s) ({usage}), got {len(raw_args)}"
        )
    args = []
    for param, raw, minimum in zip(form.params, raw_args, form.minimum, strict=True):
        try:
            value = int(raw)
        except ValueError:
            raise _spec_error(spec, f"{param} must be an integer, got {raw!r}") from None
        if value < minimum:
            raise _spec_error(spec, f"{name} needs {param} >= {minimum}, got {value}")
        args.append(value)
    if name == "fattree" and args[0] % 2:
        raise _spec_error(spec, f"fattree needs an even K, got {args[0]}")
    topo = form.factory(*args)
    return topo, _describe(topo, form.display(*args))


def _describe(topo: Topo, name: str, zoo: ZooGraph | None = None) -> TopoInfo:
    """Count from the built ``Topo`` itself, so the numbers cannot drift from it."""
    switch_links = sum(1 for a, b in topo.links() if topo.isSwitch(a) and topo.isSwitch(b))
    return TopoInfo(
        name=name,
        switches=len(topo.switches()),
        hosts=len(topo.hosts()),
        switch_links=switch_links,
        zoo=zoo,
    )


def find_large_zoo_graphs(min_nodes: int = 30, max_nodes: int | None = None) -> list[str]:
    """Zoo networks whose largest connected component has ``min_nodes``..``max_nodes`` nodes.

    Sorted by that size, then name, so the first entries are the cheapest
    networks that are still a fair test at scale. Files that fail to load are
    skipped (none do in the shipped corpus).
    """
    sizes = _zoo_component_sizes(str(zoo_dir()))
    chosen = [
        (size, name)
        for name, size in sizes.items()
        if size >= min_nodes and (max_nodes is None or size <= max_nodes)
    ]
    return [name for _, name in sorted(chosen)]


@lru_cache(maxsize=4)
def _zoo_component_sizes(directory: str) -> dict[str, int]:
    # Loading the whole corpus takes about a second; cache per directory
    # (SHADOWNET_ZOO_DIR may point elsewhere in tests).
    sizes = {}
    for name in list_zoo_names(directory):
        try:
            sizes[name] = load_zoo_graph(name).graph.number_of_nodes()
        except ValueError:
            continue
    return sizes
