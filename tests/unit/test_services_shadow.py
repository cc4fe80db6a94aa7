"""Shadow table: weighted ranking, ties, exclusions, redundancy after moves, expiry."""

from __future__ import annotations

import pytest

from controller.services.health import NodeHealth
from controller.services.service import Service, ServiceError, ServiceTable
from controller.services.shadow_table import FlowKey, ShadowTable, ShadowWeights
from tests.unit.fakes import ring_graph


def node(name, i, dpid, capacity=100):
    return {"name": name, "ip": f"10.0.0.{i}", "mac": f"00:00:00:00:00:{i:02x}",
            "dpid": dpid, "capacity": capacity}


def health(name, score=1.0, history=None, loss=0.0):
    return NodeHealth(name, 0.0, score, score, score if history is None else history, 0.0, 0.0,
                      False, 10, {"loss": 1.0 - loss})


def make(weights=None, capacity_a=100, **kw):
    # Ring of 6: the client sits on s1; a on s2 and c on s6 are 1 hop away, b on s4 is 3.
    svc = Service.from_dict({
        "name": "web", "vip": "10.0.0.100", "port": 80, "primary": node("p", 3, 3),
        "standbys": [node("a", 2, 2, capacity_a), node("b", 4, 4), node("c", 6, 6)]})
    graph, _ = ring_graph(6)
    services = ServiceTable([svc])
    return ShadowTable(services, graph, weights, **kw), svc


def key(port):
    return FlowKey("web", "10.0.0.1", port)


def test_proximity_ranks_near_nodes_first_and_ties_follow_declared_order():
    sht, _ = make(ShadowWeights(availability=0, capacity=0, proximity=1, history=0))
    entry = sht.fill(key(1000), "p", 1, {}, 0.0)
    assert [s.node for s in entry.shadow_node_list] == ["a", "c", "b"]
    assert [s.hops for s in entry.shadows] == [1, 1, 3]
    assert [s.priority for s in entry.shadows] == [1, 3, 2]  # a and c tie: declared order
    assert entry.shadows[0].score == pytest.approx(0.5) and sht.best_shadow(key(1000)).node == "a"
    assert sht.best_shadow(key(1000), exclude={"a"}).node == "c"


def test_capacity_against_proximity_depends_on_the_weights():
    # a is near but full; b is far with room.
    def rank(weights):
        sht, svc = make(weights, capacity_a=2)
        sht.fill(key(1), "a", 2, {}, 0.0)
        sht.fill(key(2), "a", 2, {}, 0.0)
        return [s.node for s in sht.rank(svc, 1, {}, exclude={"p", "c"})]

    assert rank(ShadowWeights(availability=0, capacity=1, proximity=1, history=0)) == ["b", "a"]
    assert rank(ShadowWeights(availability=0, capacity=0.1, proximity=1, history=0)) == ["a", "b"]


def test_health_and_history_break_proximity_ties():
    sht, svc = make()
    h = {"a": health("a", 0.9, history=0.5), "c": health("c", 0.9, history=0.95)}
    assert [s.node for s in sht.rank(svc, 1, h, {"p", "b"})] == ["c", "a"]
    # Equal scores: the healthier node first, even against declared order.
    sht2, _ = make(ShadowWeights(availability=0, capacity=0, proximity=1, history=0))
    h2 = {"a": health("a", 0.8), "c": health("c", 0.9)}
    assert [s.node for s in sht2.rank(svc, 1, h2, {"p", "b"})] == ["c", "a"]


def test_unavailable_unreachable_and_excluded_nodes_are_not_listed():
    sht, svc = make()
    sht.graph.remove_switch(4)  # b is cut off
    entry = sht.fill(key(1), "p", 1, {"c": health("c", loss=1.0)}, 0.0, exclude={"x"})
    assert [s.node for s in entry.shadows] == ["a"]
    assert sht.under_redundant() == []
    sht.redundancy = 2
    assert sht.under_redundant() == [key(1)]
    with pytest.raises(ServiceError, match="has no node 'zz'"):
        sht.fill(key(2), "zz", 1, {}, 0.0)


def test_link_latency_counts_like_hops():
    sht, svc = make(ShadowWeights(availability=0, capacity=0, proximity=1, history=0),
                    link_latency_ms={frozenset({1, 2}): 3.0})
    ranked = sht.rank(svc, 1, {}, {"p"})
    assert [s.node for s in ranked][:2] == ["c", "a"]
    assert ranked[1].latency_ms == 3.0 and ranked[1].score == pytest.approx(1 / 5)


def test_move_keeps_redundancy_for_the_new_primary():
    sht, _ = make()
    sht.fill(key(1), "p", 1, {}, 0.0)
    entry = sht.move(key(1), "a", {}, 5.0, "switchover", exclude={"c"})
    assert entry.primary == "a"
    assert [s.node for s in entry.shadows] == ["p", "b"]  # old primary is a shadow again
    assert entry.moves == [{"ts": 5.0, "from": "p", "to": "a", "reason": "switchover"}]
    assert sht.flows_on("web", "a") == [entry] and sht.flows_on("web", "p") == []


def test_expiry_after_end_and_cookies():
    sht, _ = make(keep_seconds=60)
    sht.fill(key(1), "p", 1, {}, 0.0)
    sht.attach_cookie(key(1), 0x5348000000000001)
    assert sht.by_cookie(0x5348000000000001).key == key(1)
    sht.end(key(1), 10.0, "idle_timeout")
    assert sht.flows_on("web", "p") == [] and sht.retained(key(1), 70.0) is not None
    assert sht.expire(70.0) == []
    assert sht.expire(70.1) == [key(1)]
    assert sht.get(key(1)) is None and sht.by_cookie(0x5348000000000001) is None
    assert sht.retained(key(1), 71.0) is None


def test_weights_validation():
    with pytest.raises(ServiceError, match="shadow.weights.capacity: must be >= 0"):
        ShadowWeights(capacity=-1)
    with pytest.raises(ServiceError, match="at least one weight"):
        ShadowWeights(0, 0, 0, 0)
    with pytest.raises(ServiceError, match="unknown key 'speed'"):
        ShadowWeights.from_dict({"speed": 1})
    assert ShadowWeights.from_dict({"proximity": 2}).proximity == 2
