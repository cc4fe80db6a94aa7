"""JSON REST API: switches, links, hosts, paths, the signature table, health, metrics.

Query parameters and bodies are checked with :mod:`shadownet.checks`, like the
config and the rule files; a bad one is a 400 whose message names it
(``body.node: is required``), raised as :class:`~shadownet.checks.Invalid` and
answered by the app's error handler.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST

from shadownet.access import ADMIN, AGENT, OPERATOR
from shadownet.checks import CHECK
from webui.core_api import CoreAPI
from webui.guard import allow, json_body, may_read, public

api = Blueprint("api", __name__)

_FLOW_FILTERS = ("dpid", "status", "mac", "cookie", "limit")


def _core() -> CoreAPI:
    core: CoreAPI = current_app.extensions["shadownet_core"]
    return core


def _refused(exc: ValueError) -> str:
    """The first line of why the network refused a request (400)."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _int_arg(name: str, base: int = 10) -> int | None:
    """A non-negative integer query parameter (``base`` 0 also takes 0x...)."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        value: object = int(raw, 0 if base == 0 else base)
    except ValueError:
        value = raw
    return CHECK.integer(value, f"query.{name}", 0)


@api.get("/api/switches")
def switches() -> ResponseReturnValue:
    return jsonify(_core().switches())


@api.get("/api/links")
def links() -> ResponseReturnValue:
    return jsonify(_core().links())


@api.get("/api/hosts")
def hosts() -> ResponseReturnValue:
    return jsonify(_core().host_list())


@api.get("/api/path")
def path() -> ResponseReturnValue:
    CHECK.keys(request.args, "query", ("src", "dst"), ("src", "dst"))
    src, dst = request.args["src"], request.args["dst"]
    try:
        return jsonify(_core().path(src, dst))
    except LookupError as exc:
        abort(404, description=str(exc.args[0]))


@api.get("/api/flows")
def flows() -> ResponseReturnValue:
    CHECK.keys(request.args, "query", _FLOW_FILTERS)
    status = request.args.get("status")
    if status is not None:
        status = CHECK.choice(status, "query.status", ("active", "removed"))
    mac = request.args.get("mac")
    return jsonify(
        _core().flows(
            dpid=_int_arg("dpid", 0),
            status=status,
            mac=mac.lower() if mac else None,
            cookie=_int_arg("cookie", 0),
            limit=_int_arg("limit"),
        )
    )


@api.get("/api/mirrors")
def mirrors() -> ResponseReturnValue:
    return jsonify(_core().mirror_list())


@api.post("/api/mirrors")
@allow(AGENT, ADMIN)
def add_mirror() -> ResponseReturnValue:
    body = json_body("a JSON object describing the mirror")
    try:
        mirror = _core().register_mirror(body)
    except ValueError as exc:
        abort(400, description=_refused(exc))
    return jsonify(mirror), 201


@api.delete("/api/mirrors/<container>")
@allow(AGENT, ADMIN)
def delete_mirror(container: str) -> ResponseReturnValue:
    if not _core().unregister_mirror(container):
        abort(404, description=f"no mirror for container {container!r}")
    return "", 204


@api.get("/api/mirrors/<container>/shunts")
def shunts(container: str) -> ResponseReturnValue:
    views = _core().shunts(container)
    if views is None:
        abort(404, description=f"no mirror for container {container!r}")
    return jsonify(views)


@api.post("/api/mirrors/<container>/shunts")
@allow(AGENT, ADMIN)
def add_shunt(container: str) -> ResponseReturnValue:
    """Stop copying a connection's bulk segments (the agent asks for its elephants)."""
    body = json_body("a JSON object naming the connection")
    try:
        view, created = _core().start_shunt(container, body)
    except LookupError:
        abort(404, description=f"no mirror for container {container!r}")
    except ValueError as exc:
        abort(400, description=_refused(exc))
    return jsonify(view), 201 if created else 200


@api.delete("/api/mirrors/<container>/shunts/<shunt_id>")
@allow(AGENT, ADMIN)
def delete_shunt(container: str, shunt_id: str) -> ResponseReturnValue:
    if not _core().end_shunt(container, shunt_id):
        abort(404, description=f"no shunt {shunt_id!r} on container {container!r}")
    return "", 204


@api.get("/api/services")
def services() -> ResponseReturnValue:
    return jsonify(_core().service_list())


@api.post("/api/services")
@allow(ADMIN)
def add_service() -> ResponseReturnValue:
    body = CHECK.mapping(json_body("a JSON object describing the service"), "service")
    try:
        return jsonify(_core().add_service(body)), 201
    except ValueError as exc:
        abort(400, description=_refused(exc))


@api.get("/api/services/events")
def service_events() -> ResponseReturnValue:
    return jsonify(_core().service_events())


@api.get("/api/services/<name>/shadow")
def service_shadow(name: str) -> ResponseReturnValue:
    try:
        return jsonify(_core().service_shadow(name))
    except LookupError as exc:
        abort(404, description=str(exc.args[0]))


@api.post("/api/services/<name>/switch")
@allow(OPERATOR, ADMIN)
def switch_service(name: str) -> ResponseReturnValue:
    body = CHECK.mapping(json_body("a JSON object with the target 'node' name"), "body")
    CHECK.keys(body, "body", ("node",), ("node",))
    CHECK.string(body["node"], "body.node", 63)
    try:
        return jsonify(_core().switch_service(name, body["node"]))
    except LookupError as exc:
        abort(404, description=str(exc.args[0]))
    except ValueError as exc:
        abort(400, description=_refused(exc))


@api.post("/api/hosts/<host>/health")
@allow(AGENT, OPERATOR, ADMIN)
def set_health(host: str) -> ResponseReturnValue:
    body = CHECK.mapping(json_body("a JSON object with a boolean 'healthy'"), "body")
    CHECK.keys(body, "body", ("healthy", "reason"), ("healthy",))
    CHECK.boolean(body["healthy"], "body.healthy")
    reason = CHECK.string(body.get("reason", ""), "body.reason", 512)
    try:
        return jsonify(_core().set_health(host, body["healthy"], reason))
    except LookupError as exc:
        abort(404, description=str(exc.args[0]))


@api.get("/api/switches/drain")
def switch_drain() -> ResponseReturnValue:
    """Critical switches: their health, which are drained, and the decisions taken."""
    return jsonify(_core().switch_health())


@api.get("/api/health")
@public
def health() -> ResponseReturnValue:
    """Liveness for anyone (status only); the whole report for those who may read."""
    report = _core().health()
    code = 200 if report["status"] == "ok" else 503
    return jsonify(report if may_read() else {"status": report["status"]}), code


@api.get("/api/openapi.json")
@public
def openapi_document() -> ResponseReturnValue:
    from webui.openapi import openapi

    return jsonify(openapi())


@api.get("/metrics")
def metrics() -> ResponseReturnValue:
    return Response(_core().metrics_text(), mimetype=CONTENT_TYPE_LATEST)
