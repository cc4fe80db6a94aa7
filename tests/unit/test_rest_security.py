"""The REST gate: tokens and roles on every change, Host allow-list, body limits, token files."""

from __future__ import annotations

import os
import stat

import pytest

from controller.core import ControllerCore
from controller.forwarding import ForwardingSettings
from controller.rest_api import ControllerAPI
from controller.state_store import StateStore
from shadownet.access import (
    ADMIN,
    AGENT,
    OPERATOR,
    VIEWER,
    Access,
    TokenFileError,
    add_token,
    load_tokens,
)
from tests.unit.fakes import connect_ring
from tests.unit.packets import ping
from tests.unit.rest import TOKENS, client, security
from webui.app import create_app
from webui.guard import RestSecurity


@pytest.fixture()
def core(tmp_path):
    core = ControllerCore(StateStore(f"sqlite:///{tmp_path / 'sec.db'}"),
                          ForwardingSettings(fast_failover=False))
    connect_ring(core)
    return core


def changing_routes(core):
    """Every (method, url) of the API that is not a read, with placeholder ids."""
    app = create_app(ControllerAPI(core), security())
    out = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"GET", "HEAD", "OPTIONS"}):
            url = rule.rule
            for arg in rule.arguments:
                url = url.replace(f"<{arg}>", "x1")
            out.append((method, url, app.view_functions[rule.endpoint]))
    return out


def test_every_changing_route_names_its_roles_and_viewers_are_not_among_them(core):
    routes = changing_routes(core)
    assert len(routes) >= 7
    for method, url, view in routes:
        roles = getattr(view, "allowed_roles", None)
        assert roles, f"{method} {url} names no roles"
        assert VIEWER not in roles


def test_every_change_without_a_token_is_401_and_with_a_viewer_token_403(core):
    anonymous, viewer = client(core, role=None), client(core, role=VIEWER)
    for method, url, _ in changing_routes(core):
        assert anonymous.open(url, method=method, json={}).status_code == 401, url
        wrong = client(core, role=None)
        wrong.environ_base["HTTP_AUTHORIZATION"] = "Bearer not-a-token-we-know"
        assert wrong.open(url, method=method, json={}).status_code == 401, url
        assert viewer.open(url, method=method, json={}).status_code == 403, url


def test_roles_reach_only_their_routes(core):
    agent, operator = client(core, AGENT), client(core, OPERATOR)
    assert operator.post("/api/mirrors", json={}).status_code == 403
    assert agent.post("/api/services/web/switch", json={"node": "h2"}).status_code == 403
    assert agent.post("/api/services", json={}).status_code == 403
    # Allowed: the request reaches the handler, which judges the body.
    assert agent.post("/api/mirrors", json={}).status_code == 400
    assert operator.post("/api/services/web/switch", json={"node": "h2"}).status_code == 404
    assert client(core, ADMIN).post("/api/services", json={}).status_code == 400


def test_reads_need_a_token_unless_opened_and_the_dashboard_page_never_does(core):
    assert client(core, role=None).get("/api/switches").status_code == 401
    assert client(core, VIEWER).get("/api/switches").status_code == 200
    opened = client(core, role=None, sec=security(open_reads=True))
    assert opened.get("/api/switches").status_code == 200
    assert opened.post("/api/services", json={}).status_code == 401  # changes never open
    assert client(core, role=None).get("/").status_code == 200


def test_no_tokens_configured_refuses_every_change_and_says_how_to_fix_it(core):
    c = create_app(ControllerAPI(core), RestSecurity(Access(open_reads=True))).test_client()
    resp = c.post("/api/services", json={})
    assert resp.status_code == 401 and "shadownet token new" in resp.json["message"]


@pytest.mark.parametrize("host,status", [
    ("localhost:8080", 200), ("127.0.0.1", 200), ("[::1]:8080", 200),
    ("evil.example", 400), ("evil.example:8080", 400), ("", 400),
])
def test_host_header_allow_list_stops_dns_rebinding(core, host, status):
    c = client(core, VIEWER)
    assert c.get("/api/switches", headers={"Host": host}).status_code == status


def test_allowed_hosts_from_config_and_the_listen_address():
    sec = RestSecurity.from_config({"tokens_file": "", "open_reads": False,
                                    "allowed_hosts": ["Ctl.Example"], "max_body_bytes": 1024},
                                   "10.1.2.3")
    assert {"ctl.example", "10.1.2.3", "localhost"} <= sec.allowed_hosts
    assert "0.0.0.0" not in RestSecurity.from_config(
        {"tokens_file": "", "open_reads": False, "allowed_hosts": [], "max_body_bytes": 1024},
        "0.0.0.0").allowed_hosts


def test_oversized_deep_or_non_finite_bodies_are_4xx_never_5xx(core):
    c = client(core, ADMIN, sec=security(max_body_bytes=1024))
    assert c.post("/api/services", data="x" * 2000,
                  content_type="application/json").status_code == 413
    deep = "[" * 5000 + "]" * 5000
    big = client(core, ADMIN)
    assert big.post("/api/services", data=deep,
                    content_type="application/json").status_code in (400, 413)
    nested = "[" * 40 + "]" * 40
    assert big.post("/api/services", data=nested,
                    content_type="application/json").status_code == 400
    for text in ('{"vip": NaN}', '{"x": Infinity}', "not json", ""):
        assert big.post("/api/services", data=text,
                        content_type="application/json").status_code == 400


# --- token files ---------------------------------------------------------------------
def test_add_token_keeps_only_a_digest_in_a_private_file(tmp_path):
    path = tmp_path / "tokens.yaml"
    token = add_token(path, "ops", ADMIN)
    assert len(token) >= 40 and token not in path.read_text()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    second = add_token(path, "agent-1", AGENT)
    access = Access(load_tokens(path))
    assert access.principal(token).role == ADMIN
    assert access.principal(second).name == "agent-1"
    assert access.principal("x" + token) is None and access.principal(None) is None
    with pytest.raises(TokenFileError, match="exists already"):
        add_token(path, "ops", VIEWER)


def _write(tmp_path, text: str | bytes):
    path = tmp_path / "t.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


SHA = "a" * 64


@pytest.mark.parametrize("text,needle", [
    (f"tokens:\n - {{name: a, role: admin, sha256: {SHA}}}\n"
     f" - {{name: b, role: viewer, sha256: {SHA}}}\n", "listed twice"),
    (f"tokens:\n - {{name: a, role: admin, sha256: {SHA}}}\n"
     f" - {{name: a, role: viewer, sha256: {'b' * 64}}}\n", "used twice"),
    (f"tokens:\n - {{name: a, role: root, sha256: {SHA}}}\n", ".role: must be one of"),
    ("tokens:\n - {name: a, role: admin, sha256: secret}\n", "64 hex digits"),
    ("tokens: {s3cret: {admin: true}}\n", "tokens: must be a list, got dict"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not a text file"),
    ("a: " + "[" * 2000 + "]" * 2000, "nested too deeply"),
    ('a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
     'c: [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n', "aliases"),
])
def test_bad_token_files_get_one_line_errors(tmp_path, text, needle):
    with pytest.raises(TokenFileError) as exc:
        load_tokens(_write(tmp_path, text))
    assert needle in str(exc.value) and "\n" not in str(exc.value)
    assert len(str(exc.value)) < 400
    assert "s3cret" not in str(exc.value) and "secret" not in str(exc.value)  # never echoed


def test_the_test_tokens_cover_every_role():
    assert set(TOKENS) == {VIEWER, AGENT, OPERATOR, ADMIN}


def test_health_answers_liveness_without_a_token_but_shows_counts_only_to_readers(core):
    anonymous = client(core, role=None).get("/api/health")
    assert anonymous.status_code in (200, 503) and set(anonymous.json) == {"status"}
    assert "switches" in client(core, VIEWER).get("/api/health").json


def test_health_marks_need_a_host_the_network_knows(core):
    c = client(core, OPERATOR)
    core.packet_in(1, 1, ping(1, 3))
    assert c.post("/api/hosts/00:00:00:00:00:01/health",
                  json={"healthy": False, "reason": "r"}).status_code == 200
    for n in range(3):  # made-up hosts would grow the table without end
        assert c.post(f"/api/hosts/made-up-{n}/health",
                      json={"healthy": False}).status_code == 404
    assert c.post("/api/hosts/00:00:00:00:00:01/health",
                  json={"healthy": False, "reason": "x" * 600}).status_code == 400
