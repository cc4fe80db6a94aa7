"""API tokens scoped to one tenant, or admin for all.

tokens.yaml::

    tokens:
      "sha256:5e884898...": {tenant: blue}   # the token's SHA-256 digest (preferred)
      s3cret-red: {tenant: red}              # or the token itself
      s3cret-ops: {admin: true}

Tokens are kept in memory as digests only, whichever way the file gives them;
``sha256:`` keys keep them out of the file too (``python -c "import hashlib;
print('sha256:' + hashlib.sha256(b'TOKEN').hexdigest())"``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from shadownet.safe_yaml import SafeYamlError, load_yaml


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
        key = _digest_key(token, where)
        if key in out:
            raise TokenFileError(f"{where}: the same token is listed twice")
        out[key] = Principal(str(spec.get("name", tenant or "admin")), tenant, admin)
    return out


def _digest_key(token: str, where: str) -> str:
    if token.startswith("sha256:"):
        digest = token[7:].lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise TokenFileError(f"{where}: 'sha256:' must be followed by 64 hex digits")
        return digest
    return hashlib.sha256(token.encode()).hexdigest()


def find_principal(tokens: dict[str, Principal], token: str | None) -> Principal | None:
    """Who holds ``token`` (``tokens`` as :func:`parse_tokens` returns them)."""
    if not token:
        return None
    return tokens.get(hashlib.sha256(token.encode()).hexdigest())
