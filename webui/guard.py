"""The REST API's gate: Host allow-list, body limits, tokens and roles, checked per request.

Checked before any handler runs, in this order:

1. **Host header.** Only the names in the allow-list are served (localhost,
   the address the API listens on, and ``rest.allowed_hosts``). A page on
   another site that rebinds its DNS name to 127.0.0.1 still sends its own
   name, so it is refused (400) before it can read or change anything.
2. **Body size.** Bodies above ``rest.max_body_bytes`` get 413 unread.
3. **Token.** ``Authorization: Bearer <token>``. Changes always need one
   (401 without a valid token); reads too, unless ``rest.open_reads``.
   ``/api/health`` answers without a token (liveness checks carry no
   secrets), but only with its status unless the caller may read.
4. **Role.** Each changing route names the roles it allows with
   :func:`allow`; a route that names none allows no change at all (deny by
   default), and a token whose role is not named gets 403.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Flask, abort, current_app, g, request

from shadownet.access import ROLES, Access, Principal

F = TypeVar("F", bound=Callable[..., Any])
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
MAX_JSON_DEPTH = 32


@dataclass(frozen=True)
class RestSecurity:
    """What the gate enforces (from the ``rest`` config section)."""

    access: Access = field(default_factory=Access)
    allowed_hosts: frozenset[str] = LOCAL_NAMES
    max_body_bytes: int = 65536

    @classmethod
    def from_config(cls, rest: dict[str, Any], listen_host: str) -> RestSecurity:
        access = (Access.from_file(rest["tokens_file"], rest["open_reads"])
                  if rest["tokens_file"] else Access(open_reads=rest["open_reads"]))
        names = set(LOCAL_NAMES) | {h.lower() for h in rest["allowed_hosts"]}
        if listen_host not in ("0.0.0.0", "::", ""):
            names.add(listen_host.lower())
        return cls(access, frozenset(names), rest["max_body_bytes"])


def allow(*roles: str) -> Callable[[F], F]:
    """Mark a changing route with the roles that may call it."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles: {sorted(unknown)}")

    def mark(view: F) -> F:
        view.allowed_roles = frozenset(roles)  # type: ignore[attr-defined]
        return view

    return mark


def public(view: F) -> F:
    """Mark a read that needs no token (liveness checks must work without secrets)."""
    view.public = True  # type: ignore[attr-defined]
    return view


def install(app: Flask, security: RestSecurity) -> None:
    """Check every request of ``app`` against ``security`` (see the module docstring)."""
    replace(app, security)

    @app.before_request
    def _gate() -> None:
        security: RestSecurity = current_app.extensions["shadownet_security"]
        host = host_name(request.headers.get("Host", ""))
        if host not in security.allowed_hosts:
            abort(400, description=f"Host {host!r} is not served here; add it to "
                                   "rest.allowed_hosts if it should be")
        length = request.content_length
        if length is not None and length > security.max_body_bytes:
            abort(413, description=f"body of {length} bytes; at most "
                                   f"{security.max_body_bytes} are accepted")
        if request.routing_exception is not None:
            return  # no such route or method: Flask answers 404 or 405, nothing is run
        reading = request.method in READ_METHODS
        who = security.access.principal(bearer_token())
        g.principal = who
        view = current_app.view_functions.get(request.endpoint or "")
        if reading and (security.access.open_reads or request.blueprint == "dashboard"
                        or getattr(view, "public", False)):
            return  # the dashboard's page and scripts hold no data; they ask for a token
        if who is None:
            hint = ("" if security.access.configured else
                    "; no tokens are configured (rest.tokens_file, 'shadownet token new')")
            abort(401, description=f"a valid token is required (Authorization: Bearer){hint}")
        if reading:
            return
        roles: Iterable[str] = getattr(view, "allowed_roles", frozenset())
        if who.role not in roles:
            abort(403, description=f"role {who.role!r} ({who.name}) may not "
                                   f"{request.method} {request.path}")


def replace(app: Flask, security: RestSecurity) -> None:
    """Put new tokens and limits in force (a config reload); the next request sees them."""
    app.config["MAX_CONTENT_LENGTH"] = security.max_body_bytes
    app.extensions["shadownet_security"] = security


def host_name(header: str) -> str:
    """The host part of a Host header, lower case, without port or IPv6 brackets."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def bearer_token() -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def principal() -> Principal | None:
    """Who the current request comes from (None on open reads without a token)."""
    principal: Principal | None = g.get("principal")
    return principal


def may_read() -> bool:
    """Does the current request see data: a valid token, or reads opened to all?"""
    security: RestSecurity = current_app.extensions["shadownet_security"]
    return security.access.open_reads or principal() is not None


def json_body(what: str) -> Any:
    """The request's JSON body; 400 (naming ``what``) when absent, invalid or too deep."""
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw, parse_constant=_refuse_constant) if raw else None
    except (ValueError, RecursionError):
        body = None
    if body is None or _depth(body) > MAX_JSON_DEPTH:
        abort(400, description=f"body must be {what}")
    return body


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level
