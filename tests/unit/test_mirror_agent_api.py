"""The agent's observability API, token file and history store, without OVS."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from mirror.history_store import HistoryStore
from mirror.observability import create_app
from mirror.tenancy import TokenFileError, parse_tokens

TOKENS = parse_tokens({"tokens": {"blue-token-1": {"tenant": "blue"},
                                  "red-token-1": {"tenant": "red"},
                                  "admin-token-1": {"admin": True}}})


class FakeMirror:
    def __init__(self, name: str, tenant: str, uid: str = "") -> None:
        self.record = SimpleNamespace(container=name, tenant=tenant, uid=uid)

    def summary(self):
        return {"container": self.record.container, "tenant": self.record.tenant,
                "packets": 7, "kernel_drops": 0, "malformed": 1, "alerts_active": 0,
                "lag": {"samples": 1, "p50_ms": 1.0, "p99_ms": 2.0},
                "shunts": {"shunted": 2, "pending": 0, "shunts_total": 3,
                           "folded_packets": 1234, "folded_bytes": 99}}

    def snapshot(self):
        return {"arp": [{"ip": "10.0.0.2", "mac": "00:00:00:00:00:02"}], "routes": [],
                "connections": [], "dns": []}

    def pcap(self, start, end):
        return b"\xd4\xc3\xb2\xa1" + b"\0" * 20


@pytest.fixture()
def client(tmp_path):
    store = HistoryStore(f"sqlite:///{tmp_path / 'agent.db'}")
    store.add_change("h1", {"ts": 10.0, "kind": "arp", "action": "add", "key": "10.0.0.2",
                            "value": {"mac": "00:00:00:00:00:02"}}, tenant="blue")
    store.add_change("h1", {"ts": 20.0, "kind": "dns", "action": "add", "key": "a.test A",
                            "value": {}}, tenant="blue")
    store.add_alert("h1", "blue", {"ts": 15.0, "rule": "r", "severity": "warning",
                                   "message": "m", "labels": {}})
    agent = SimpleNamespace(tokens=TOKENS, store=store,
                            mirrors={"h1": FakeMirror("h1", "blue"),
                                     "h2": FakeMirror("h2", "red")})
    return create_app(agent).test_client()


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def test_token_required(client):
    assert client.get("/api/containers").status_code == 401
    assert client.get("/api/containers", headers=auth("nope-nope-nope")).status_code == 401
    assert client.get("/metrics").status_code == 401  # its labels name every tenant
    assert client.get("/health").json == {"status": "ok"}


def test_tenant_scoping(client):
    listed = client.get("/api/containers", headers=auth("blue-token-1")).json
    assert [c["container"] for c in listed] == ["h1"]
    assert client.get("/api/containers/h2/state", headers=auth("blue-token-1")).status_code == 403
    assert client.get("/api/containers/h2/state", headers=auth("admin-token-1")).status_code == 200
    assert client.get("/api/containers/h9", headers=auth("admin-token-1")).status_code == 404


def test_state_kind_filter(client):
    body = client.get("/api/containers/h1/state?kind=arp", headers=auth("blue-token-1")).json
    assert list(body) == ["arp"]
    resp = client.get("/api/containers/h1/state?kind=bogus", headers=auth("blue-token-1"))
    assert resp.status_code == 400 and resp.is_json


def test_history_time_range(client):
    h = auth("blue-token-1")
    assert len(client.get("/api/containers/h1/history", headers=h).json) == 2
    assert [c["kind"] for c in
            client.get("/api/containers/h1/history?start=15", headers=h).json] == ["dns"]
    assert client.get("/api/containers/h1/history?kind=arp", headers=h).json[0]["key"] == \
        "10.0.0.2"
    assert client.get("/api/containers/h1/history?start=x", headers=h).status_code == 400
    assert client.get("/api/containers/h1/history?start=5&end=1", headers=h).status_code == 400


def test_pcap_and_alerts(client):
    resp = client.get("/api/containers/h1/pcap", headers=auth("blue-token-1"))
    assert resp.status_code == 200 and resp.mimetype == "application/vnd.tcpdump.pcap"
    alerts = client.get("/api/alerts", headers=auth("blue-token-1")).json
    assert [a["rule"] for a in alerts] == ["r"]


def test_metrics_per_mirror(client):
    text = client.get("/metrics", headers=auth("admin-token-1")).get_data(as_text=True)
    assert 'shadownet_mirror_packets{container="h1",tenant="blue"} 7.0' in text
    assert 'tenant="red"' in text
    red = client.get("/metrics", headers=auth("red-token-1")).get_data(as_text=True)
    assert 'tenant="red"' in red and 'tenant="blue"' not in red
    assert 'shadownet_mirror_drops{container="h1",tenant="blue"} 1.0' in text
    assert 'shadownet_mirror_shunted_connections{container="h1",tenant="blue"} 2.0' in text
    assert 'shadownet_mirror_shunted_packets{container="h1",tenant="blue"} 1234.0' in text


@pytest.mark.parametrize("data,needle", [
    ({"tokens": {"short": {"tenant": "a"}}}, "at least 8 characters"),
    ({"tokens": {"long-enough-1": {"tenant": 5}}}, ".tenant: must be a tenant name"),
    ({"tokens": {"long-enough-1": {"admin": "yes"}}}, ".admin: must be true or false"),
    ({"tokens": {"long-enough-1": {"colour": "x"}}}, "unknown key 'colour'"),
    ({"nope": 1}, "tokens.yaml: unknown key 'nope' (expected one of: tokens)"),
    ({"tokens": ["abcdefgh"]}, "tokens.yaml: tokens: must be a mapping, got list"),
])
def test_bad_token_files(data, needle):
    with pytest.raises(TokenFileError) as exc:
        parse_tokens(data, "tokens.yaml")
    assert needle in str(exc.value)


def test_agent_cli_refuses_bad_files_in_one_line(tmp_path):
    bad_rules = tmp_path / "rules.yaml"
    bad_rules.write_text("rules:\n  - name: r\n    type: rst_storm\n    threshold: lots\n")
    result = subprocess.run([sys.executable, "-m", "mirror.agent", "--rules", str(bad_rules),
                             "--db-url", f"sqlite:///{tmp_path / 'a.db'}"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("shadownet-agent: error:") and "threshold" in result.stderr
    assert "Traceback" not in result.stderr
    missing = subprocess.run([sys.executable, "-m", "mirror.agent", "--tokens",
                              str(tmp_path / "none.yaml")], capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 2 and "cannot read token file" in missing.stderr


def test_a_name_reused_by_another_tenant_sees_none_of_the_old_containers_state(tmp_path):
    """Blue's h1 went; red made a new h1 (another OVS interface, another uid)."""
    store = HistoryStore(f"sqlite:///{tmp_path / 'agent.db'}")
    store.add_change("h1", {"ts": 10.0, "kind": "dns", "action": "add", "key": "secret.blue A",
                            "value": {}}, tenant="blue", uid="uid-blue")
    store.add_alert("h1", "blue", {"ts": 11.0, "rule": "r", "severity": "warning",
                                   "message": "blue's", "labels": {}}, uid="uid-blue")
    agent = SimpleNamespace(tokens=TOKENS, store=store,
                            mirrors={"h1": FakeMirror("h1", "red", "uid-red")})
    client = create_app(agent).test_client()
    red = auth("red-token-1")
    assert client.get("/api/containers/h1/history", headers=red).json == []
    assert client.get("/api/containers/h1/alerts", headers=red).json == []
    assert client.get("/api/alerts", headers=red).json == []
    # Nor does an agent restart restore blue's DNS into red's mirror.
    assert store.changes("h1", None, None, tenant="red", uid="uid-red") == []
    # Blue's history is still blue's.
    assert [a["message"] for a in store.alerts("blue")] == ["blue's"]


def test_a_record_mirrors_only_the_container_it_was_made_for():
    from mirror.lifecycle import Container, MirrorRecord

    record = MirrorRecord("h1", "blue", "mirror-h1", "s1", "sm1", 9, 1, 1,
                          "00:00:00:00:00:01", ["10.0.0.1"], uid="uid-blue")
    same = Container("h1", "s1", "h1-eth0", 1, 1, "00:00:00:00:00:01", tenant="blue",
                     uid="uid-blue")
    assert record.mirrors(same)
    for other in (dict(tenant="red"), dict(uid="uid-new"), dict(ofport=2)):
        assert not record.mirrors(Container(**{**same.__dict__, **other}))


def test_a_history_database_from_before_tenants_and_uids_is_upgraded(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE state_changes (id INTEGER PRIMARY KEY, container VARCHAR(128),"
                   " ts FLOAT, kind VARCHAR(16), action VARCHAR(16), key VARCHAR(256),"
                   " value TEXT)")
        db.execute("INSERT INTO state_changes VALUES (1, 'h1', 1.0, 'dns', 'add', 'a A', '{}')")
        db.execute("CREATE TABLE alerts (id INTEGER PRIMARY KEY, container VARCHAR(128),"
                   " tenant VARCHAR(128), ts FLOAT, rule VARCHAR(128), severity VARCHAR(16),"
                   " message TEXT, labels TEXT)")
    store = HistoryStore(f"sqlite:///{path}")
    # Old rows belong to no container seen since: nothing restores or shows them.
    assert store.changes("h1", None, None, tenant="blue", uid="u1") == []
    store.add_change("h1", {"ts": 2.0, "kind": "arp", "action": "add", "key": "k", "value": {}},
                     tenant="blue", uid="u1")
    store.flush()
    assert len(store.changes("h1", None, None, tenant="blue", uid="u1")) == 1


def test_tokens_can_be_given_as_digests_and_are_kept_only_as_digests():
    import hashlib

    digest = hashlib.sha256(b"green-token-1").hexdigest()
    tokens = parse_tokens({"tokens": {f"sha256:{digest}": {"tenant": "green"},
                                      "plain-token-1": {"tenant": "blue"}}})
    assert "plain-token-1" not in tokens and digest in tokens  # no token kept in memory
    agent = SimpleNamespace(tokens=tokens, store=None, mirrors={"h5": FakeMirror("h5", "green")})
    client = create_app(agent).test_client()
    listed = client.get("/api/containers", headers=auth("green-token-1")).json
    assert [c["container"] for c in listed] == ["h5"]
    assert client.get("/api/containers", headers=auth(f"sha256:{digest}")).status_code == 401
    with pytest.raises(TokenFileError, match="64 hex digits"):
        parse_tokens({"tokens": {"sha256:abc": {"tenant": "x"}}})
    with pytest.raises(TokenFileError, match="listed twice"):
        parse_tokens({"tokens": {f"sha256:{hashlib.sha256(b'plain-token-1').hexdigest()}":
                                 {"tenant": "x"}, "plain-token-1": {"tenant": "y"}}})
