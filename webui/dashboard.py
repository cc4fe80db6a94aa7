"""The web dashboard: one static page that polls the REST API."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

dashboard = Blueprint("dashboard", __name__, static_folder="static", static_url_path="/ui/static")


@dashboard.get("/")
def index() -> ResponseReturnValue:
    return dashboard.send_static_file("index.html")
