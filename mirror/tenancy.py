"""API tokens scoped to one tenant, or admin for all.

tokens.yaml::

    tokens:
      s3cret-blue: {tenant: blue}
      s3cret-red: {tenant: red}
      s3cret-ops: {admin: true}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from controller.safe_yaml import SafeYamlError, load_yaml


class TokenFileError(ValueError):
    pass


@dataclass(frozen=True)
class Principal:
    name: str
    tenant: str | None
    admin: bool

    def may_read(self, tenant: str) -> bool:
        return self.admin or self.tenant == tenant


def load_tokens(path: str | Path) -> dict[str, Principal]:
    path = Path(path)
    try:
        data = load_yaml(path, what="token file")
    except SafeYamlError as exc:
        raise TokenFileError(str(exc)) from None
    return parse_tokens(data, str(path))


def parse_tokens(data: object, source: str = "tokens") -> dict[str, Principal]:
    if not isinstance(data, dict) or not isinstance(data.get("tokens"), dict):
        raise TokenFileError(f"{source}: expected a mapping 'tokens: {{TOKEN: {{tenant: NAME}}}}'")
    out = {}
    for token, spec in data["tokens"].items():
        where = f"{source}: token {str(token)[:4]}…"
        if not isinstance(token, str) or len(token) < 8:
            raise TokenFileError(f"{where}: tokens must be strings of at least 8 characters")
        if not isinstance(spec, dict) or set(spec) - {"tenant", "admin", "name"}:
            raise TokenFileError(f"{where}: fields are 'tenant', 'admin' and 'name'")
        admin = spec.get("admin", False)
        tenant = spec.get("tenant")
        if not isinstance(admin, bool):
            raise TokenFileError(f"{where}: field 'admin' must be true or false")
        if not admin and not isinstance(tenant, str):
            raise TokenFileError(f"{where}: field 'tenant' must be a string (or admin: true)")
        out[token] = Principal(str(spec.get("name", tenant or "admin")), tenant, admin)
    return out
