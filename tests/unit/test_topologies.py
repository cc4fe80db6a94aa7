"""Topology construction tests: pure Python, no Mininet network is started.

The zoo tests read the real Topology Zoo files from the shared folder and
assert on specific known-dirty files, so a change in how we repair them shows
up as a failing test rather than as a strange lab run.
"""

from __future__ import annotations

import runpy
import shutil
import subprocess
import time
from pathlib import Path

import networkx as nx
import pytest

from topologies import zoo as zoo_module
from topologies.fattree import FatTreeTopo
from topologies.registry import SPEC_FORMS, TopoInfo, build_topo, find_large_zoo_graphs
from topologies.ring import RingTopo
from topologies.zoo import ZooTopo, list_zoo_names, load_zoo_graph, resolve_zoo_path, zoo_dir

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY_FILES = {"ring": "ring.py", "fattree": "fattree.py", "zoo": "zoo.py"}

needs_zoo = pytest.mark.skipif(
    not zoo_dir().is_dir(), reason="Topology Zoo data (../shared/data/topology-zoo) not present"
)


def switch_graph(topo) -> nx.MultiGraph:
    """Switches and the links between them, as a multigraph so doubled links would show."""
    graph = nx.MultiGraph()
    graph.add_nodes_from(topo.switches())
    graph.add_edges_from((a, b) for a, b in topo.links() if topo.isSwitch(a) and topo.isSwitch(b))
    return graph


def host_switch(topo, host: str) -> str:
    (switch,) = [b if a == host else a for a, b in topo.links() if host in (a, b)]
    return switch


# --- ring -----------------------------------------------------------------


@pytest.mark.parametrize("n", [3, 4, 6, 10])
def test_ring_is_one_cycle_with_a_host_per_switch(n):
    topo = RingTopo(n)
    assert sorted(topo.switches()) == sorted(f"s{i}" for i in range(1, n + 1))
    assert sorted(topo.hosts()) == sorted(f"h{i}" for i in range(1, n + 1))
    assert len(topo.links()) == 2 * n
    graph = switch_graph(topo)
    assert graph.number_of_edges() == n
    assert all(degree == 2 for _, degree in graph.degree())
    assert nx.is_connected(graph)
    assert len(nx.cycle_basis(nx.Graph(graph))) == 1
    assert all(host_switch(topo, f"h{i}") == f"s{i}" for i in range(1, n + 1))


def test_ring_with_several_hosts_per_switch_numbers_hosts_consecutively():
    topo = RingTopo(4, hosts_per_switch=3)
    assert len(topo.hosts()) == 12
    assert switch_graph(topo).number_of_edges() == 4
    assert [host_switch(topo, f"h{i}") for i in (1, 3, 4, 12)] == ["s1", "s1", "s2", "s4"]


@pytest.mark.parametrize("n", [0, 1, 2, -5])
def test_ring_refuses_fewer_than_three_switches(n):
    with pytest.raises(ValueError, match="at least 3"):
        RingTopo(n)


# --- fat tree ---------------------------------------------------------------


@pytest.mark.parametrize(
    "k, core, aggregation, edge, hosts",
    [(2, 1, 2, 2, 2), (4, 4, 8, 8, 16), (6, 9, 18, 18, 54)],
)
def test_fattree_counts(k, core, aggregation, edge, hosts):
    topo = FatTreeTopo(k)
    assert (len(topo.core), len(topo.aggregation), len(topo.edge)) == (core, aggregation, edge)
    assert len(topo.switches()) == core + aggregation + edge
    assert sorted(topo.switches()) == sorted(f"s{i}" for i in range(1, len(topo.switches()) + 1))
    assert sorted(topo.hosts()) == sorted(f"h{i}" for i in range(1, hosts + 1))
    graph = switch_graph(topo)
    # k^3/4 core-aggregation plus k^3/4 aggregation-edge links.
    assert graph.number_of_edges() == k**3 // 2
    assert nx.is_connected(graph)


def test_fattree_k4_wiring():
    topo = FatTreeTopo(4)
    graph = switch_graph(topo)
    tiers = (topo.core, topo.aggregation, topo.edge)
    assert len(set().union(*tiers)) == 20
    # Every switch has k ports in use: core to k pods, aggregation k/2 up and
    # k/2 down, edge k/2 up plus k/2 hosts.
    for core in topo.core:
        assert {n for n in graph[core]} <= set(topo.aggregation)
        assert graph.degree(core) == 4
    for agg in topo.aggregation:
        assert graph.degree(agg) == 4
    for edge in topo.edge:
        assert set(graph[edge]) <= set(topo.aggregation)
        assert graph.degree(edge) == 2
    assert all(host_switch(topo, h) in topo.edge for h in topo.hosts())
    # Many equal-cost paths are the point of the topology: 4 between pods.
    paths = list(nx.all_shortest_paths(nx.Graph(graph), topo.edge[0], topo.edge[-1]))
    assert len(paths) == 4


@pytest.mark.parametrize("k", [0, 1, 3, 5, -2])
def test_fattree_refuses_odd_or_small_k(k):
    with pytest.raises(ValueError, match="even integer >= 2"):
        FatTreeTopo(k)


def test_fattree_refuses_non_integer_k():
    with pytest.raises(ValueError, match="integer"):
        FatTreeTopo("four")


# --- registry -----------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, name, switches, hosts, links",
    [
        ("single,3", "single(3)", 1, 3, 0),
        ("linear,4", "linear(4)", 4, 4, 3),
        ("linear,1", "linear(1)", 1, 1, 0),
        ("tree,2,2", "tree(depth=2,fanout=2)", 3, 4, 2),
        ("tree,3,2", "tree(depth=3,fanout=2)", 7, 8, 6),
        ("tree,2,3", "tree(depth=2,fanout=3)", 4, 9, 3),
        ("ring,6", "ring(6)", 6, 6, 6),
        ("fattree,4", "fattree(k=4)", 20, 16, 32),
        (" Ring , 5 ", "ring(5)", 5, 5, 5),
    ],
)
def test_build_topo_counts(spec, name, switches, hosts, links):
    topo, info = build_topo(spec)
    assert info == TopoInfo(name=name, switches=switches, hosts=hosts, switch_links=links)
    assert info.directed_links == 2 * links
    assert len(topo.switches()) == switches
    assert len(topo.hosts()) == hosts


@pytest.mark.parametrize(
    "spec, problem",
    [
        ("", "empty spec"),
        ("mesh,4", "unknown topology 'mesh'"),
        ("linear", "linear takes 1 argument(s) (linear,N), got 0"),
        ("single,2,3", "single takes 1 argument(s)"),
        ("tree,2", "tree takes 2 argument(s) (tree,DEPTH,FANOUT), got 1"),
        ("ring,six", "N must be an integer, got 'six'"),
        ("linear,2.5", "N must be an integer"),
        ("single,0", "single needs N >= 1, got 0"),
        ("linear,-1", "linear needs N >= 1"),
        ("tree,0,2", "tree needs DEPTH >= 1"),
        ("ring,2", "ring needs N >= 3, got 2"),
        ("fattree,3", "fattree needs an even K"),
        ("fattree,0", "fattree needs K >= 2"),
        ("zoo", "zoo needs a network name"),
        ("zoo:", "zoo needs a network name"),
    ],
)
def test_build_topo_rejects_bad_specs(spec, problem):
    with pytest.raises(ValueError) as excinfo:
        build_topo(spec)
    message = str(excinfo.value)
    assert problem in message
    assert "\n" not in message
    for form in SPEC_FORMS:
        assert form in message


# --- zoo loader on real files ------------------------------------------------


@needs_zoo
def test_zoo_dir_is_the_shared_folder_next_to_the_repo(monkeypatch):
    monkeypatch.delenv(zoo_module.ZOO_DIR_ENV, raising=False)
    assert zoo_dir() == REPO.parent / "shared" / "data" / "topology-zoo"
    names = list_zoo_names()
    assert len(names) >= 200
    assert "Abilene" in names


@needs_zoo
def test_clean_file_loads_unchanged():
    zg = load_zoo_graph("Abilene")
    graph = zg.graph
    assert (graph.number_of_nodes(), graph.number_of_edges()) == (11, 14)
    assert list(graph) == list(range(1, 12))
    assert (zg.merged_edges, zg.self_loops, zg.dropped_nodes) == (0, 0, [])
    assert zg.connected and zg.component_sizes == [11]
    assert graph.nodes[1]["label"] == "New York" and graph.nodes[1]["orig_id"] == 0
    assert graph.nodes[1]["latitude"] == pytest.approx(40.71427)


@needs_zoo
def test_duplicated_edges_are_merged_keeping_the_fastest():
    # Plain networkx refuses this file: "edge #11 (4--7) is duplicated".
    path = resolve_zoo_path("Arnes")
    with pytest.raises(nx.NetworkXError, match="duplicated"):
        nx.read_gml(path, label="id")
    zg = load_zoo_graph("Arnes")
    assert zg.merged_edges == 1
    by_orig = {data["orig_id"]: node for node, data in zg.graph.nodes(data=True)}
    link = zg.graph.edges[by_orig[4], by_orig[7]]
    # The two Kranj links are 1 Gbit/s and 10 Gbit/s.
    assert link == {"multiplicity": 2, "speed_bps": 10e9}
    assert nx.is_connected(zg.graph)


@needs_zoo
def test_triple_links_count_two_merges():
    zg = load_zoo_graph("Airtel")
    multiplicities = [d["multiplicity"] for _, _, d in zg.graph.edges(data=True)]
    assert zg.merged_edges == sum(m - 1 for m in multiplicities) == 11
    assert max(multiplicities) == 3


@needs_zoo
def test_disconnected_graph_keeps_largest_component_and_reports_the_rest():
    zg = load_zoo_graph("DeutscheTelekom")
    assert zg.component_sizes == [30, 7, 1, 1]
    assert not zg.connected
    assert zg.graph.number_of_nodes() == 30
    assert list(zg.graph) == list(range(1, 31))
    assert nx.is_connected(zg.graph)
    assert len(zg.dropped_nodes) == 9
    assert {"Berlin", "Munich", "Vienna"} <= set(zg.dropped_nodes)
    assert "kept largest of 4 components (30, 7, 1, 1), dropped 9 nodes" in zg.summary()


@needs_zoo
def test_disconnected_graph_refused_on_request():
    with pytest.raises(ValueError) as excinfo:
        load_zoo_graph("DeutscheTelekom", components="refuse")
    message = str(excinfo.value)
    assert "DeutscheTelekom.gml" in message
    assert "4 components of sizes 30, 7, 1, 1" in message
    # A connected file passes the same check.
    assert load_zoo_graph("Abilene", components="refuse").connected


def test_unknown_component_policy_is_rejected():
    with pytest.raises(ValueError, match="components must be one of largest, refuse"):
        load_zoo_graph("Abilene", components="split")


@needs_zoo
def test_nodes_without_coordinates_are_kept():
    zg = load_zoo_graph("Cesnet2")  # no node in this file has coordinates
    assert zg.graph.number_of_nodes() == 30
    assert zg.missing_coordinates == 30
    assert all(
        d["latitude"] is None and d["longitude"] is None for _, d in zg.graph.nodes(data=True)
    )
    partial = load_zoo_graph("Aconet")  # 6 of 23 have none
    assert (partial.graph.number_of_nodes(), partial.missing_coordinates) == (23, 6)


@needs_zoo
def test_self_loops_are_dropped():
    zg = load_zoo_graph("Interoute")
    assert zg.self_loops == 2
    assert nx.number_of_selfloops(zg.graph) == 0


@needs_zoo
def test_repeated_and_none_labels():
    zg = load_zoo_graph("Arpanet19719")  # two different nodes are both called BBN
    assert zg.repeated_labels == ["BBN"]
    bbn = [n for n, d in zg.graph.nodes(data=True) if d["label"] == "BBN"]
    assert len(bbn) == 2
    # Columbus writes missing labels as the literal "None": not a repeated name.
    columbus = load_zoo_graph("Columbus")
    assert columbus.repeated_labels == []
    assert columbus.graph.nodes[1]["label"] == "node 0"


@needs_zoo
def test_numbering_is_stable_and_follows_gml_ids():
    first = load_zoo_graph("Garr201201")
    second = load_zoo_graph("Garr201201")
    assert nx.utils.graphs_equal(first.graph, second.graph)
    orig_ids = [first.graph.nodes[n]["orig_id"] for n in first.graph]
    assert orig_ids == sorted(orig_ids)


@needs_zoo
def test_names_are_case_insensitive_and_paths_accepted():
    path = resolve_zoo_path("Abilene")
    assert resolve_zoo_path("abilene") == path
    assert load_zoo_graph(path).name == "Abilene"
    assert load_zoo_graph(str(path)).graph.number_of_nodes() == 11


@needs_zoo
def test_unknown_name_suggests_close_names():
    with pytest.raises(
        ValueError, match=r"unknown Topology Zoo network 'Abilne'.*did you mean Abilene"
    ):
        load_zoo_graph("Abilne")
    with pytest.raises(ValueError, match="networks available"):
        load_zoo_graph("qqqqqqqqqq")


def test_missing_file_is_a_clear_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="Topology Zoo file not found: .*nope.gml"):
        load_zoo_graph(tmp_path / "nope.gml")
    with pytest.raises(FileNotFoundError, match="Topology Zoo file not found"):
        load_zoo_graph(str(tmp_path / "nope.gml"))


def test_missing_zoo_directory_names_the_override(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo_module.ZOO_DIR_ENV, str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match=zoo_module.ZOO_DIR_ENV):
        load_zoo_graph("Abilene")


GOOD_GML = """graph [
  node [ id 5 label "b" ]
  node [ id 2 label "a" Latitude 1.5 Longitude 2.5 ]
  node [ id 9 label "c" ]
  edge [ source 5 target 2 LinkSpeed "100" LinkSpeedUnits "M" ]
  edge [ source 2 target 5 LinkSpeed "1" LinkSpeedUnits "G" ]
  edge [ source 9 target 9 ]
  edge [ source 9 target 2 ]
]
"""


@pytest.mark.parametrize(
    "content, problem",
    [
        ("graph [\n  node [ id 1 \n", "unparsable GML"),
        ("this is not gml", "no 'graph [' block"),
        ("graph [\n  node [ id 1 ]\n  node [ id 1 ]\n]\n", "unparsable GML"),
        ("graph [\n  edge [ source 1 target 2 ]\n]\n", "unparsable GML"),
        ("graph [\n]\n", "graph has no nodes"),
        ("", "no 'graph [' block"),
    ],
)
def test_broken_files_raise_one_line_value_errors(tmp_path, content, problem):
    path = tmp_path / "Broken.gml"
    path.write_text(content)
    with pytest.raises(ValueError) as excinfo:
        load_zoo_graph(path)
    message = str(excinfo.value)
    assert message.startswith("Broken.gml: ")
    assert problem in message
    assert "\n" not in message


def test_binary_file_is_refused(tmp_path):
    path = tmp_path / "Binary.gml"
    path.write_bytes(b'graph [\n node [ id 1 label "\xff\xfe" ]\n]\n')
    with pytest.raises(ValueError, match="not ASCII"):
        load_zoo_graph(path)


def test_zoo_dir_override_and_synthetic_repairs(tmp_path, monkeypatch):
    (tmp_path / "Tiny.gml").write_text(GOOD_GML)
    monkeypatch.setenv(zoo_module.ZOO_DIR_ENV, str(tmp_path))
    assert list_zoo_names() == ["Tiny"]
    zg = load_zoo_graph("Tiny")
    assert [zg.graph.nodes[n]["label"] for n in zg.graph] == ["a", "b", "c"]  # by GML id
    assert zg.graph.edges[1, 2] == {"multiplicity": 2, "speed_bps": 1e9}
    assert (zg.merged_edges, zg.self_loops, zg.missing_coordinates) == (1, 1, 2)
    assert zg.graph.nodes[1]["latitude"] == 1.5


def test_directed_file_is_read_as_undirected(tmp_path):
    path = tmp_path / "Directed.gml"
    path.write_text(
        "graph [\n directed 1\n node [ id 1 ]\n node [ id 2 ]\n"
        " edge [ source 1 target 2 ]\n edge [ source 2 target 1 ]\n]\n"
    )
    zg = load_zoo_graph(path)
    assert not zg.graph.is_directed()
    assert zg.graph.number_of_edges() == 1
    assert zg.merged_edges == 1


@needs_zoo
def test_whole_corpus_loads_or_fails_cleanly():
    """Every real file either loads into a clean graph or raises a one-line ValueError."""
    started = time.monotonic()
    loaded, failed = 0, []
    for name in list_zoo_names():
        try:
            zg = load_zoo_graph(name)
        except ValueError as err:
            assert "\n" not in str(err)
            failed.append(name)
            continue
        loaded += 1
        graph = zg.graph
        assert type(graph) is nx.Graph
        assert list(graph) == list(range(1, graph.number_of_nodes() + 1))
        assert graph.number_of_nodes() == zg.component_sizes[0]
        assert nx.is_connected(graph)
        assert nx.number_of_selfloops(graph) == 0
        assert len(zg.dropped_nodes) == sum(zg.component_sizes[1:])
        multiplicity = sum(d["multiplicity"] for _, _, d in graph.edges(data=True))
        assert multiplicity >= graph.number_of_edges()
    assert time.monotonic() - started < 20
    # The shipped corpus has no file we cannot repair.
    assert failed == []
    assert loaded >= 200


# --- ZooTopo and zoo specs ----------------------------------------------------


@needs_zoo
def test_zoo_topo_maps_nodes_to_switches_and_hosts():
    topo = ZooTopo("Abilene")
    assert sorted(topo.switches()) == sorted(f"s{i}" for i in range(1, 12))
    assert sorted(topo.hosts()) == sorted(f"h{i}" for i in range(1, 12))
    assert switch_graph(topo).number_of_edges() == 14
    assert all(host_switch(topo, f"h{i}") == f"s{i}" for i in range(1, 12))
    graph = topo.zoo.graph
    assert {tuple(sorted(e)) for e in switch_graph(topo).edges()} == {
        tuple(sorted((f"s{u}", f"s{v}"))) for u, v in graph.edges
    }


@needs_zoo
def test_zoo_topo_merged_links_become_one_mininet_link():
    topo = ZooTopo("Ntt", hosts_per_switch=2)  # 153 parallel edges, 16 components
    graph = switch_graph(topo)
    assert graph.number_of_nodes() == 32
    assert graph.number_of_edges() == nx.Graph(graph).number_of_edges() == 63
    assert len(topo.hosts()) == 64


@needs_zoo
def test_zoo_topo_refuse_mode():
    with pytest.raises(ValueError, match="disconnected"):
        ZooTopo("Bandcon", components="refuse")


@needs_zoo
@pytest.mark.parametrize("spec", ["zoo:Abilene", "zoo:abilene", "zoo,Abilene", "ZOO: Abilene"])
def test_zoo_specs(spec):
    topo, info = build_topo(spec)
    assert (info.name, info.switches, info.hosts, info.switch_links) == ("zoo:Abilene", 11, 11, 14)
    assert info.zoo is topo.zoo


@needs_zoo
def test_zoo_spec_by_path_reports_largest_component():
    path = resolve_zoo_path("DeutscheTelekom")
    _, info = build_topo(f"zoo:{path}")
    assert (info.switches, info.hosts, info.switch_links) == (30, 30, 55)
    assert len(info.zoo.dropped_nodes) == 9


@needs_zoo
def test_zoo_spec_errors():
    with pytest.raises(ValueError, match="did you mean Abilene"):
        build_topo("zoo:Abilne")
    with pytest.raises(FileNotFoundError):
        build_topo("zoo:/no/such/file.gml")


@needs_zoo
def test_find_large_zoo_graphs():
    names = find_large_zoo_graphs(30)
    sizes = [load_zoo_graph(n).graph.number_of_nodes() for n in names]
    assert sizes == sorted(sizes) and min(sizes) >= 30
    # DeutscheTelekom has 39 nodes but only 30 connected: it counts as 30.
    assert "DeutscheTelekom" in names
    assert "DeutscheTelekom" not in find_large_zoo_graphs(31)
    assert "Abilene" not in names
    bounded = find_large_zoo_graphs(30, max_nodes=45)
    assert bounded and set(bounded) < set(names)
    assert {"Bics", "Geant2009", "Xspedius"} <= set(bounded)


# --- standalone use by mn --custom ------------------------------------------------


@pytest.mark.parametrize("name, filename", TOPOLOGY_FILES.items())
def test_topology_file_runs_standalone(name, filename):
    namespace = runpy.run_path(str(REPO / "topologies" / filename))
    assert set(namespace["topos"]) == {name}


def _mn_custom(filename: str) -> dict:
    """Load a file exactly as ``mn --custom`` does: exec() with no ``__file__`` or ``__name__``."""
    path = REPO / "topologies" / filename
    customs: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), customs, customs)  # noqa: S102
    return customs


@pytest.mark.parametrize(
    "name, args, switches, hosts",
    [("ring", (5,), 5, 5), ("fattree", (4,), 20, 16), ("zoo", ("Abilene",), 11, 11)],
)
def test_topology_file_works_under_mn_custom(name, args, switches, hosts):
    if name == "zoo" and not zoo_dir().is_dir():
        pytest.skip("Topology Zoo data not present")
    customs = _mn_custom(TOPOLOGY_FILES[name])
    topo = customs["topos"][name](*args)
    assert (len(topo.switches()), len(topo.hosts())) == (switches, hosts)


@pytest.mark.skipif(not Path("/usr/bin/mn").exists(), reason="Mininet's mn script not installed")
@pytest.mark.parametrize("filename", TOPOLOGY_FILES.values())
def test_custom_file_does_not_clobber_mn_globals(filename):
    """``mn`` copies every top-level name of a custom file into its own globals.

    A helper called ``info`` or ``cleanup`` would silently replace mn's own;
    any name we share with mn must be the very same object.
    """
    mn_globals = runpy.run_path("/usr/bin/mn", run_name="mn_probe")
    for key, value in _mn_custom(filename).items():
        if key.startswith("__") or key not in mn_globals:
            continue
        assert value is mn_globals[key], f"{filename} redefines mn's global {key!r}"


def _system_python_with(*modules: str) -> str | None:
    python = shutil.which("python3", path="/usr/bin")
    if python is None:
        return None
    probe = subprocess.run(
        [python, "-c", f"import {', '.join(modules)}"], capture_output=True, check=False
    )
    return python if probe.returncode == 0 else None


@pytest.mark.parametrize(
    "filename, modules",
    [("ring.py", ("mininet",)), ("fattree.py", ("mininet",)), ("zoo.py", ("mininet", "networkx"))],
)
def test_topology_file_loads_with_system_python(filename, modules):
    """mn runs under Debian's python3, where our package is not importable."""
    python = _system_python_with(*modules)
    if python is None:
        pytest.skip(f"/usr/bin/python3 lacks {', '.join(modules)}")
    code = (
        "import runpy, sys; ns = runpy.run_path(sys.argv[1]); print(','.join(sorted(ns['topos'])))"
    )
    result = subprocess.run(
        [python, "-c", code, str(REPO / "topologies" / filename)],
        capture_output=True,
        text=True,
        cwd="/",
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == filename.removesuffix(".py")
