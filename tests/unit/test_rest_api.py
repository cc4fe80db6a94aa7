"""The REST API over a core fed by fake switch events (Flask test client)."""

from __future__ import annotations

import pytest

from controller.core import ControllerCore
from controller.forwarding import ForwardingSettings
from controller.state_store import StateStore
from tests.unit.fakes import connect_ring
from tests.unit.packets import mac, ping
from tests.unit.rest import client as rest_client


@pytest.fixture()
def core(tmp_path):
    core = ControllerCore(StateStore(f"sqlite:///{tmp_path / 'api.db'}"),
                          ForwardingSettings(fast_failover=False))
    connect_ring(core)
    core.packet_in(1, 1, ping(1, 3))
    return core


@pytest.fixture()
def client(core):
    return rest_client(core)


def test_topology_endpoints(client):
    assert len(client.get("/api/switches").json) == 4
    assert len(client.get("/api/links").json) == 4
    hosts = client.get("/api/hosts").json
    assert [h["mac"] for h in hosts] == [mac(i) for i in range(1, 5)]


def test_path_by_ip_and_mac(client):
    body = client.get("/api/path?src=10.0.0.1&dst=" + mac(3)).json
    assert body["reachable"] and body["switches"][0] == 1 and body["switches"][-1] == 3
    assert all(h["installed_cookie"] for h in body["hops"])


def test_path_errors(client):
    assert client.get("/api/path?src=10.0.0.1").status_code == 400
    resp = client.get("/api/path?src=10.0.0.1&dst=10.9.9.9")
    assert resp.status_code == 404 and "10.9.9.9" in resp.json["message"]


def test_flows_filters(client):
    all_flows = client.get("/api/flows").json
    assert len(all_flows) == 6  # 3 hops each way
    assert {f["status"] for f in all_flows} == {"active"}
    assert len(client.get("/api/flows?dpid=2").json) == 2
    assert len(client.get(f"/api/flows?mac={mac(3)}").json) == 6
    cookie = all_flows[0]["cookie"]
    assert [f["cookie"] for f in client.get(f"/api/flows?cookie={cookie}").json] == [cookie]
    assert client.get("/api/flows?status=removed").json == []


@pytest.mark.parametrize("query", ["dpid=abc", "status=gone", "colour=red", "limit=-1"])
def test_bad_filters_are_400_json(client, query):
    resp = client.get(f"/api/flows?{query}")
    assert resp.status_code == 400
    assert resp.is_json and resp.json["status"] == 400


def test_unknown_route_is_json_404(client):
    resp = client.get("/api/nothing")
    assert resp.status_code == 404 and resp.json["error"] == "Not Found"


def test_method_not_allowed_is_json(client):
    resp = client.post("/api/flows")
    assert resp.status_code == 405 and resp.is_json


def test_health(client):
    body = client.get("/api/health").json
    assert body["status"] == "ok" and body["switches"] == 4 and body["flows_active"] == 6
    assert body["database"]["ok"] is True


def test_metrics(client):
    text = client.get("/metrics").get_data(as_text=True)
    assert "shadownet_packet_in_total 5.0" in text
    assert 'shadownet_flow_mods_total{command="add"}' in text
    assert 'shadownet_signature_table_entries{status="active"} 6.0' in text
    assert "shadownet_packet_in_per_second" in text
    assert "shadownet_reconcile_repairs" in text


def test_internal_error_is_json_without_trace(core):
    def boom():
        raise RuntimeError("secret detail")

    core.switches = boom
    resp = rest_client(core).get("/api/switches")
    assert resp.status_code == 500 and resp.is_json
    assert "secret detail" not in resp.get_data(as_text=True)


def test_dashboard_page(client):
    resp = client.get("/")
    assert resp.status_code == 200 and b"shadownet" in resp.data


def test_switch_draining_report(tmp_path):
    core = ControllerCore(StateStore(f"sqlite:///{tmp_path / 'sh.db'}"),
                          ForwardingSettings(critical_switches=frozenset({2})),
                          switch_drain={"critical": [2], "sample_percent": 2})
    connect_ring(core)
    core.switch_tick()  # sends the first probes; no evidence yet
    body = rest_client(core).get("/api/switches/drain").json
    assert body["critical"] == [2] and body["drained"] == [] and body["events"] == []
    assert body["sample_percent"] == 2
