"""The REST API described in OpenAPI 3.0, served at ``/api/openapi.json``.

It is what clients and fuzzers (``tests/unit/test_rest_fuzz.py`` runs
schemathesis from it) read; a route added to ``webui/api.py`` without an entry
here fails that test's coverage check.
"""

from __future__ import annotations

from typing import Any

JSON = "application/json"


def _ok(description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": {}}}}


def _errors(*codes: int) -> dict[str, Any]:
    names = {400: "Bad request", 401: "No valid token", 403: "Role not allowed",
             404: "Not found", 409: "Conflict", 413: "Body too large", 503: "Degraded"}
    return {str(c): {"description": names[c], "content": {JSON: {"schema": {
        "$ref": "#/components/schemas/Error"}}}} for c in codes}


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "minLength": 1, "maxLength": 128}}


def _query(name: str, schema: dict[str, Any], description: str,
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema,
            "description": description}


def _read(summary: str, params: list[dict[str, Any]] | None = None,
          errors: tuple[int, ...] = (401,)) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": params or [],
                    "responses": {"200": _ok(), **_errors(*errors)}}}


def _change(summary: str, body: dict[str, Any] | None, roles: str,
            ok: str = "200", errors: tuple[int, ...] = (400, 401, 403, 413)
            ) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": f"{summary} (roles: {roles})",
                          "responses": {ok: _ok(), **_errors(*errors)}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
    return op


UINT = {"type": "integer", "minimum": 0}
MIRROR = {
    "type": "object",
    "required": ["container", "tenant", "dpid", "container_port", "mirror_port", "mac"],
    "properties": {
        "container": {"type": "string"}, "tenant": {"type": "string"},
        "dpid": UINT, "container_port": UINT, "mirror_port": UINT,
        "mac": {"type": "string"}, "ips": {"type": "array", "items": {"type": "string"}},
        "netns": {"type": "string"}, "policy": {"type": "object"},
    },
}
SHUNT = {"type": "object", "description": "the connection: addresses, ports, protocol"}
SERVICE = {"type": "object", "required": ["name", "vip", "port", "primary"],
           "properties": {"name": {"type": "string"}, "vip": {"type": "string"},
                          "port": {"type": "integer"}, "primary": {"type": "object"},
                          "standbys": {"type": "array", "items": {"type": "object"}},
                          "thresholds": {"type": "object"}}}


def openapi() -> dict[str, Any]:
    """The whole document (a fresh dict each call)."""
    container = _path_param("container", "container name")
    paths: dict[str, Any] = {
        "/api/switches": _read("connected switches"),
        "/api/links": _read("inter-switch links"),
        "/api/hosts": _read("learned hosts"),
        "/api/path": _read("the installed path between two hosts", [
            _query("src", {"type": "string"}, "host MAC or IP", True),
            _query("dst", {"type": "string"}, "host MAC or IP", True)], (400, 401, 404)),
        "/api/flows": _read("the flow signature table", [
            _query("dpid", {"type": "string"}, "switch (decimal or 0x hex)"),
            _query("status", {"type": "string", "enum": ["active", "removed"]}, "status"),
            _query("mac", {"type": "string"}, "a host MAC in the match"),
            _query("cookie", {"type": "string"}, "flow cookie (decimal or 0x hex)"),
            _query("limit", {"type": "integer", "minimum": 0}, "at most this many")],
            (400, 401)),
        "/api/mirrors": {**_read("registered mirrors"),
                         "post": _change("register a container's mirror", MIRROR,
                                         "agent, admin", ok="201")},
        "/api/mirrors/{container}": {"delete": {
            **_change("remove a mirror", None, "agent, admin", ok="204",
                      errors=(401, 403, 404)), "parameters": [container]}},
        "/api/mirrors/{container}/shunts": {
            "get": {**_read("a mirror's shunted connections", errors=(401, 404))["get"],
                    "parameters": [container]},
            "post": {**_change("shunt a connection's bulk segments", SHUNT, "agent, admin",
                               ok="201", errors=(400, 401, 403, 404, 413)),
                     "parameters": [container]}},
        "/api/mirrors/{container}/shunts/{shunt_id}": {"delete": {
            **_change("end a shunt", None, "agent, admin", ok="204", errors=(401, 403, 404)),
            "parameters": [container, _path_param("shunt_id", "shunt id")]}},
        "/api/services": {**_read("services, their active node and node health"),
                          "post": _change("add a service", SERVICE, "admin", ok="201")},
        "/api/services/events": _read("failover events, oldest first"),
        "/api/services/{name}/shadow": {"get": {
            **_read("a service's shadow table", errors=(401, 404))["get"],
            "parameters": [_path_param("name", "service name")]}},
        "/api/services/{name}/switch": {"post": {
            **_change("switch a service to a node now",
                      {"type": "object", "required": ["node"],
                       "properties": {"node": {"type": "string"}}},
                      "operator, admin", errors=(400, 401, 403, 404, 413)),
            "parameters": [_path_param("name", "service name")]}},
        "/api/hosts/{host}/health": {"post": {
            **_change("mark a host healthy or not",
                      {"type": "object", "required": ["healthy"],
                       "properties": {"healthy": {"type": "boolean"},
                                      "reason": {"type": "string", "maxLength": 512}}},
                      "agent, operator, admin", errors=(400, 401, 403, 404, 413)),
            "parameters": [_path_param("host", "host MAC, IP or name")]}},
        "/api/switches/drain": _read("critical switches, drains and their decisions"),
        "/api/health": {"get": {"summary": "liveness; the full report with a token",
                                "security": [{}, {"bearer": []}],
                                "responses": {"200": _ok(), **_errors(503)}}},
        "/api/openapi.json": {"get": {"summary": "this document", "security": [{}],
                                      "responses": {"200": _ok()}}},
        "/metrics": {"get": {"summary": "Prometheus metrics",
                             "responses": {"200": {"description": "text exposition"},
                                           **_errors(401)}}},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "shadownet controller", "version": "1"},
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "properties": {
                "error": {"type": "string"}, "message": {"type": "string"},
                "status": {"type": "integer"}}}},
        },
        "paths": paths,
    }
