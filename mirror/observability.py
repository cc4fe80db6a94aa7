"""The agent's observability API: per-container state, history, pcap, alerts, metrics.

Every ``/api`` request carries ``Authorization: Bearer TOKEN``. A token is
scoped to one tenant: it lists and reads that tenant's containers, and gets
403 for another tenant's; an admin token reads everything. ``/metrics`` needs
a token too (its labels name every container and tenant): an admin token
scrapes every mirror, a tenant's token its own. ``/health`` needs none and
says only that the agent is up.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from werkzeug.exceptions import HTTPException

from mirror.tenancy import find_principal

api = Blueprint("mirror_api", __name__)
KINDS = ("arp", "routes", "connections", "dns")


def _agent() -> Any:
    return current_app.extensions["shadownet_agent"]


@api.before_request
def _authenticate() -> None:
    g.principal = _principal()


def _principal() -> Any:
    """The caller's principal; 401 without a known token."""
    header = request.headers.get("Authorization", "")
    token = header[7:] if header.startswith("Bearer ") else None
    principal = find_principal(_agent().tokens, token)
    if principal is None:
        abort(401, description="a valid 'Authorization: Bearer TOKEN' header is required")
    return principal


def _mirror(container: str) -> Any:
    mirrored = _agent().mirrors.get(container)
    if mirrored is None:
        abort(404, description=f"no mirror for container {container!r}")
    if not g.principal.may_read(mirrored.record.tenant):
        abort(403, description=f"container {container!r} belongs to another tenant")
    return mirrored


def _float_arg(name: str) -> float | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    try:
        return float(raw)
    except ValueError:
        abort(400, description=f"query parameter {name!r} must be a UNIX time, got {raw!r}")


@api.get("/api/containers")
def containers() -> ResponseReturnValue:
    visible = [m.summary() for m in list(_agent().mirrors.values())
               if g.principal.may_read(m.record.tenant)]
    return jsonify(sorted(visible, key=lambda m: m["container"]))


@api.get("/api/containers/<container>")
def container_summary(container: str) -> ResponseReturnValue:
    return jsonify(_mirror(container).summary())


@api.get("/api/containers/<container>/state")
def state(container: str) -> ResponseReturnValue:
    snap = _mirror(container).snapshot()
    kind = request.args.get("kind")
    if kind is not None:
        if kind not in KINDS:
            abort(400, description=f"'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
        return jsonify({kind: snap[kind]})
    return jsonify(snap)


@api.get("/api/containers/<container>/history")
def history(container: str) -> ResponseReturnValue:
    mirrored = _mirror(container)
    kind = request.args.get("kind")
    if kind is not None and kind not in ("arp", "route", "connection", "dns"):
        abort(400, description="'kind' must be arp, route, connection or dns")
    start, end = _float_arg("start"), _float_arg("end")
    if start is not None and end is not None and end < start:
        abort(400, description="'end' is before 'start'")
    _agent().store.flush()
    record = mirrored.record
    return jsonify(_agent().store.changes(record.container, start, end, kind,
                                          tenant=record.tenant, uid=record.uid))


@api.get("/api/containers/<container>/pcap")
def pcap(container: str) -> ResponseReturnValue:
    mirrored = _mirror(container)
    start, end = _float_arg("start"), _float_arg("end")
    if start is not None and end is not None and end < start:
        abort(400, description="'end' is before 'start'")
    body = mirrored.pcap(start, end)
    return Response(body, mimetype="application/vnd.tcpdump.pcap", headers={
        "Content-Disposition": f'attachment; filename="{container}.pcap"'})


@api.get("/api/containers/<container>/alerts")
def container_alerts(container: str) -> ResponseReturnValue:
    mirrored = _mirror(container)
    _agent().store.flush()
    record = mirrored.record
    return jsonify(_agent().store.alerts(record.tenant, _float_arg("start"), _float_arg("end"),
                                         container=(record.container, record.uid)))


@api.get("/api/alerts")
def alerts() -> ResponseReturnValue:
    agent = _agent()
    agent.store.flush()
    tenant = None if g.principal.admin else g.principal.tenant
    return jsonify(agent.store.alerts(tenant, _float_arg("start"), _float_arg("end")))


class _MirrorCollector:
    """Per-mirror gauges read at scrape time (no hot-path cost)."""

    def __init__(self, agent: Any, principal: Any) -> None:
        self.agent = agent
        self.principal = principal  # who scrapes: only their tenants' mirrors are shown

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["container", "tenant"]
        fams = {
            "packets": GaugeMetricFamily("shadownet_mirror_packets", "Frames mirrored",
                                         labels=labels),
            "drops": GaugeMetricFamily("shadownet_mirror_drops",
                                       "Frames lost (kernel drops) or malformed", labels=labels),
            "lag": GaugeMetricFamily("shadownet_mirror_sync_lag_p99_seconds",
                                     "p99 capture-to-applied lag", labels=labels),
            "alerts": GaugeMetricFamily("shadownet_mirror_alerts_active", "Alerts firing",
                                        labels=labels),
            "shunted": GaugeMetricFamily("shadownet_mirror_shunted_connections",
                                         "Connections whose bulk the switch counts",
                                         labels=labels),
            "shunted_packets": GaugeMetricFamily(
                "shadownet_mirror_shunted_packets",
                "Packets counted by the switch for shunted connections", labels=labels),
        }
        for m in list(self.agent.mirrors.values()):
            if not self.principal.may_read(m.record.tenant):
                continue
            key = [m.record.container, m.record.tenant]
            s = m.summary()
            fams["packets"].add_metric(key, s["packets"])
            fams["drops"].add_metric(key, s["kernel_drops"] + s["malformed"])
            fams["lag"].add_metric(key, s["lag"].get("p99_ms", 0) / 1000)
            fams["alerts"].add_metric(key, s["alerts_active"])
            shunts = s.get("shunts") or {}
            fams["shunted"].add_metric(key, shunts.get("shunted", 0))
            fams["shunted_packets"].add_metric(key, shunts.get("folded_packets", 0))
        yield from fams.values()


def create_app(agent: Any) -> Flask:
    app = Flask(__name__)
    app.extensions["shadownet_agent"] = agent
    app.register_blueprint(api)

    @app.get("/metrics")
    def metrics() -> ResponseReturnValue:
        registry = CollectorRegistry()
        registry.register(_MirrorCollector(agent, _principal()))
        return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4")

    @app.get("/health")
    def health() -> ResponseReturnValue:
        return jsonify(status="ok")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> ResponseReturnValue:
        return jsonify(error=exc.name, message=exc.description, status=exc.code), exc.code or 500

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> ResponseReturnValue:
        app.logger.exception("agent API failed")
        return jsonify(error="Internal Server Error", message=type(exc).__name__, status=500), 500

    return app


def serve(agent: Any, host: str, port: int) -> Any:
    """Serve the API from a thread; returns the server (call ``shutdown()`` to stop)."""
    from werkzeug.serving import make_server

    server = make_server(host, port, create_app(agent), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True, name="agent-api").start()
    return server
