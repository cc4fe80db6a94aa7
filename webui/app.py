"""Flask app factory for the controller's REST API, metrics and dashboard.

The app talks to the controller through ``webui.core_api.CoreAPI`` only,
passed in explicitly (the controller passes ``controller.rest_api.ControllerAPI``;
tests build one around a core with no switches attached).
"""

from __future__ import annotations

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from shadownet.checks import Invalid
from webui import guard
from webui.api import api
from webui.core_api import CoreAPI
from webui.dashboard import dashboard
from webui.guard import RestSecurity


def create_app(core: CoreAPI, security: RestSecurity | None = None,
               testing: bool = False) -> Flask:
    """The API and dashboard around ``core``, behind ``security``'s gate
    (the default has no tokens: every change and every read is refused)."""
    app = Flask(__name__)
    app.config.update(TESTING=testing, JSON_SORT_KEYS=False)
    app.extensions["shadownet_core"] = core
    guard.install(app, security or RestSecurity())
    app.register_blueprint(api)
    app.register_blueprint(dashboard)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> ResponseReturnValue:
        return jsonify(error=exc.name, message=exc.description, status=exc.code), exc.code or 500

    @app.errorhandler(Invalid)
    def _invalid(exc: Invalid) -> ResponseReturnValue:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return jsonify(error="Bad Request", message=message, status=400), 400

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> ResponseReturnValue:
        # Never leak a stack trace to the client.
        app.logger.exception("REST handler failed")
        return jsonify(error="Internal Server Error", message=type(exc).__name__, status=500), 500

    return app
