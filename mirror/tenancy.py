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

from shadownet.checks import Checks, Invalid
from shadownet.safe_yaml import SafeYamlError, load_yaml


class TokenFileError(Invalid):
    pass


check = Checks(TokenFileError, show_values=False)  # a misplaced token must not be echoed


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
    """``tokens: {TOKEN: {tenant: NAME}}`` (TOKEN may be ``sha256:<digest>``)."""
    doc = check.mapping(data, source)
    check.keys(doc, source, ("tokens",), ("tokens",))
    out = {}
    for token, item in check.mapping(doc["tokens"], f"{source}: tokens").items():
        where = f"{source}: tokens[{str(token)[:4]}…]"
        if not isinstance(token, str) or len(token) < 8:
            raise TokenFileError(f"{where}: a token must be a string of at least 8 characters")
        spec = check.mapping(item, where)
        check.keys(spec, where, ("tenant", "admin", "name"))
        admin = check.boolean(spec.get("admin", False), f"{where}.admin")
        tenant = spec.get("tenant")
        if not admin or tenant is not None:
            tenant = check.string(tenant, f"{where}.tenant", 128,
                                  what="a tenant name (or admin: true)")
        name = check.string(spec.get("name", tenant or "admin"), f"{where}.name", 128)
        key = _digest_key(token, where)
        if key in out:
            raise TokenFileError(f"{where}: the same token is listed twice")
        out[key] = Principal(name, tenant, admin)
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
