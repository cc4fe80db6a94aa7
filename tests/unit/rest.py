"""REST test clients that carry a token of a given role (the API refuses calls without one)."""

from __future__ import annotations

from typing import Any

from controller.rest_api import ControllerAPI
from shadownet.access import ROLES, Access, Principal, digest
from webui.app import create_app
from webui.guard import RestSecurity

TOKENS = {role: f"test-token-for-the-{role}-role" for role in ROLES}


def security(open_reads: bool = False, **kwargs: Any) -> RestSecurity:
    access = Access({digest(t): Principal(f"test-{role}", role) for role, t in TOKENS.items()},
                    open_reads)
    return RestSecurity(access, **kwargs)


def client(core: Any, role: str | None = "admin", sec: RestSecurity | None = None) -> Any:
    """A Flask test client of ``create_app(core)``; ``role`` None sends no token."""
    c = create_app(ControllerAPI(core), sec or security(), testing=True).test_client()
    if role is not None:
        c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKENS[role]}"
    return c
