"""REST fuzzing from the published OpenAPI description: no request gets a 5xx.

schemathesis generates requests from ``/api/openapi.json`` (valid and invalid
bodies, odd path and query values) and sends them in-process with an admin
token, so every handler runs to its end. Hypothesis is seeded and examples
are capped, so the run is repeatable and fits in CI.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from controller.core import ControllerCore
from controller.forwarding import ForwardingSettings
from controller.rest_api import ControllerAPI
from tests.unit.fakes import connect_ring
from tests.unit.rest import TOKENS, security
from webui.app import create_app
from webui.openapi import openapi


def _app():
    core = ControllerCore(None, ForwardingSettings(fast_failover=False))
    connect_ring(core)
    core.add_service({"name": "web", "vip": "10.0.0.100", "port": 80,
                      "primary": {"name": "h2", "ip": "10.0.0.2", "mac": "00:00:00:00:00:02"},
                      "standbys": [{"name": "h3", "ip": "10.0.0.3",
                                    "mac": "00:00:00:00:00:03"}]})
    return create_app(ControllerAPI(core), security(), testing=True)


APP = _app()
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", APP)
HEADERS = {"Authorization": f"Bearer {TOKENS['admin']}", "Host": "localhost"}


def test_every_route_is_described():
    described = set(openapi()["paths"])
    for rule in APP.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule.startswith("/ui/") or rule.rule == "/":
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        assert path in described, f"{path} is missing from webui/openapi.py"


@schema.parametrize()
@settings(max_examples=50, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case):
    response = case.call(headers=HEADERS)
    case.validate_response(response, checks=[not_a_server_error])
    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:300])


REGISTRATION = {"container": "h1", "tenant": "t", "dpid": 1, "container_port": 1,
                "mirror_port": 9, "mac": "00:00:00:00:00:01"}


@pytest.mark.parametrize("change", [
    {"policy": "copy-all"}, {"policy": ["arp"]}, {"dpid": 10**400}, {"mirror_port": 10**400},
    {"mirror_port": 2**32 + 1}, {"policy": {"sample": 10**400}},
])
def test_known_5xx_bodies_from_the_review_are_4xx(change):
    response = APP.test_client().post("/api/mirrors", json={**REGISTRATION, **change},
                                      headers=HEADERS)
    assert 400 <= response.status_code < 500, response.json
