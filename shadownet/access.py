"""Who may do what through the controller's REST API: tokens, roles, and the file that holds them.

Every change to the network (a mirror, a shunt, a service, a switchover, a
health override) needs a token whose role allows it; reads need a token too
unless the operator opens them (``rest.open_reads``). Roles:

============  ==========================================================
``viewer``    reads only (dashboards, monitoring)
``agent``     what a mirror agent does: register and remove mirrors, shunt
              connections, report a container's health, read
``operator``  day-to-day decisions: switch a service, override a host's health, read
``admin``     everything, adding services and mirrors by hand included
============  ==========================================================

The tokens file keeps only SHA-256 digests, never a token: a token is 32
random bytes (``shadownet token new``), so a plain digest cannot be reversed
and needs no slow hash. A token is checked against every digest in constant
time. A file with the same digest or name twice is refused: the last one
silently winning is how a token could gain a role nobody gave it.

tokens.yaml::

    tokens:
      - {name: ops, role: admin, sha256: 5e88...}
      - {name: agent-host1, role: agent, sha256: 9f86...}
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from shadownet.checks import Checks, Invalid
from shadownet.safe_yaml import SafeYamlError, load_yaml

VIEWER, AGENT, OPERATOR, ADMIN = "viewer", "agent", "operator", "admin"
ROLES = (VIEWER, AGENT, OPERATOR, ADMIN)


class TokenFileError(Invalid):
    """The tokens file is missing or malformed; the message says where."""


check = Checks(TokenFileError, show_values=False)  # a misplaced token must not be echoed
_NAME = re.compile(r"^\S.{0,63}$")
_SHA256 = re.compile(r"^[0-9A-Fa-f]{64}$")


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: the token's name and its role."""

    name: str
    role: str


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh token: 32 random bytes, URL-safe text."""
    return secrets.token_urlsafe(32)


class Access:
    """The tokens the controller accepts, and the check of one request's token."""

    def __init__(self, entries: dict[str, Principal] | None = None,
                 open_reads: bool = False) -> None:
        self._by_digest = dict(entries or {})  # sha256 hex -> principal
        self.open_reads = open_reads

    @property
    def configured(self) -> bool:
        return bool(self._by_digest)

    def principal(self, token: str | None) -> Principal | None:
        """The principal of ``token``, or None; compares every digest in constant time."""
        if not token:
            return None
        seen = digest(token)
        found = None
        for known, who in self._by_digest.items():
            if hmac.compare_digest(known, seen):
                found = who
        return found

    @classmethod
    def from_file(cls, path: str | Path, open_reads: bool = False) -> Access:
        return cls(load_tokens(path), open_reads)


def load_tokens(path: str | Path) -> dict[str, Principal]:
    """Read a tokens file: digest -> principal. Raises :class:`TokenFileError`."""
    p = Path(path)
    try:
        data = load_yaml(p, what="tokens file")
    except SafeYamlError as exc:
        raise TokenFileError(str(exc)) from None
    return parse_tokens(data, str(p))


def parse_tokens(data: object, source: str = "tokens") -> dict[str, Principal]:
    if data is None:
        return {}
    doc = check.mapping(data, source)
    check.keys(doc, source, ("tokens",), ("tokens",))
    out: dict[str, Principal] = {}
    names: set[str] = set()
    for i, item in enumerate(check.items(doc["tokens"], f"{source}: tokens", 10_000)):
        where = f"{source}: tokens[{i}]"
        entry = check.mapping(item, where)
        check.keys(entry, where, ("name", "role", "sha256"), ("name", "role", "sha256"))
        name = check.string(entry["name"], f"{where}.name", 64, _NAME, "a name")
        role = check.choice(entry["role"], f"{where}.role", ROLES)
        sha = check.string(entry["sha256"], f"{where}.sha256", pattern=_SHA256,
                           what="64 hex digits (the token's digest; 'shadownet token new' "
                                "writes it)").lower()
        if sha in out:
            raise TokenFileError(f"{where}: the same token is listed twice "
                                 f"(also as {out[sha].name!r})")
        if name in names:
            raise TokenFileError(f"{where}.name: {name!r} is used twice")
        names.add(name)
        out[sha] = Principal(name, role)
    return out


def add_token(path: str | Path, name: str, role: str) -> str:
    """Create a token for ``name`` with ``role``, store its digest in ``path``; return it."""
    p = Path(path)
    entries = load_tokens(p) if p.exists() else {}
    if role not in ROLES:
        raise TokenFileError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if any(who.name == name for who in entries.values()):
        raise TokenFileError(f"{p}: a token named {name!r} exists already")
    token = new_token()
    entries[digest(token)] = Principal(name, role)
    lines = ["tokens:"] + [f"  - {{name: {_quoted(who.name)}, role: {who.role}, sha256: {sha}}}"
                           for sha, who in entries.items()]
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, p)
    return token


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
