"""shadownet.yaml: loading and validation.

Every key is declared once in ``SCHEMA`` with its type and default. A file
with an unknown key, a wrong type or an out-of-range value is refused with a
message that names the key and what was expected, like Faucet does.

Example::

    controller:
      ofp_listen_host: 0.0.0.0
      ofp_tcp_listen_port: 6653
      wsapi_host: 127.0.0.1
      wsapi_port: 8080
      db_url: sqlite:////var/lib/shadownet/state.db
      log_level: INFO
      hub: eventlet
    forwarding:
      idle_timeout: 60
      hard_timeout: 0
      priority: 100
      fast_failover: true   # detours in fast-failover groups, before anything fails
    mirroring:              # what is copied to mirror namespaces (default: all)
      protocols: [arp, dns, tcp, udp, icmp]
      ports: []
      cidrs: []
      sample: 1.0           # fraction of flows, hashed per flow
      tenants: []
    reconcile:
      interval: 10
      flush_interval: 1.0
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class ConfigError(Exception):
    """The configuration is missing or invalid; the message names the key."""


@dataclass(frozen=True)
class Key:
    type: type | tuple[type, ...]
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

SCHEMA: dict[str, dict[str, Key]] = {
    "controller": {
        "ofp_listen_host": Key(str, "0.0.0.0"),
        "ofp_tcp_listen_port": Key(int, 6653, 1, 65535),
        "wsapi_host": Key(str, "127.0.0.1"),
        "wsapi_port": Key(int, 8080, 0, 65535),
        "db_url": Key(str, ""),
        "log_level": Key(str, "INFO", choices=LOG_LEVELS),
        "hub": Key(str, "eventlet", choices=("eventlet", "native")),
    },
    "forwarding": {
        "idle_timeout": Key(int, 60, 0, 65535),
        "hard_timeout": Key(int, 0, 0, 65535),
        "priority": Key(int, 100, 2, 65000),
        "fast_failover": Key(bool, True),
    },
    "mirroring": {
        "protocols": Key(list, []),
        "ports": Key(list, []),
        "cidrs": Key(list, []),
        "sample": Key((int, float), 1.0, 0.001, 1.0),
        "tenants": Key(list, []),
    },
    "reconcile": {
        "interval": Key((int, float), 10, 0.5, 3600),
        "flush_interval": Key((int, float), 1.0, 0.05, 60),
        "history_seconds": Key((int, float), 3600, 0, 10**8),
    },
}

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", list: "a list",
               bool: "true or false"}


def _expected(key: Key) -> str:
    types = key.type if isinstance(key.type, tuple) else (key.type,)
    return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)


def defaults() -> dict[str, Any]:
    config: dict[str, Any] = {sec: {k: spec.default for k, spec in keys.items()}
                              for sec, keys in SCHEMA.items()}
    config["services"] = []
    return config


def validate(data: Any, source: str = "config") -> dict[str, dict[str, Any]]:
    """Check a parsed YAML document against the schema; return it merged over the defaults."""
    config = defaults()
    if data is None:
        return config
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping of sections, got {_kind(data)}")
    for section, values in data.items():
        if section == "services":
            from controller.services.service import ServiceError, services_from_config

            try:
                services_from_config(values, source)
            except ServiceError as exc:
                raise ConfigError(str(exc).splitlines()[0]) from None
            config["services"] = list(values or [])
            continue
        if section not in SCHEMA:
            raise ConfigError(
                f"{source}: unknown section {section!r} "
                f"(expected one of: {', '.join([*SCHEMA, 'services'])})"
            )
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(
                f"{source}: section {section!r} must be a mapping, got {_kind(values)}"
            )
        for name, value in values.items():
            spec = SCHEMA[section].get(name)
            if spec is None:
                raise ConfigError(
                    f"{source}: unknown key '{section}.{name}' "
                    f"(expected one of: {', '.join(SCHEMA[section])})"
                )
            config[section][name] = _check(f"{section}.{name}", value, spec, source)
    return config


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _check(path: str, value: Any, spec: Key, source: str) -> Any:
    types = spec.type if isinstance(spec.type, tuple) else (spec.type,)
    if bool in types:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: key '{path}' must be true or false, got {_kind(value)}")
        return value
    if isinstance(value, bool) or not isinstance(value, types):
        raise ConfigError(f"{source}: key '{path}' must be {_expected(spec)}, got {_kind(value)}")
    if spec.minimum is not None and value < spec.minimum:
        raise ConfigError(f"{source}: key '{path}' must be >= {spec.minimum}, got {value!r}")
    if spec.maximum is not None and value > spec.maximum:
        raise ConfigError(f"{source}: key '{path}' must be <= {spec.maximum}, got {value!r}")
    if spec.choices is not None:
        if str(value).upper() in spec.choices:
            value = str(value).upper()
        elif value not in spec.choices:
            raise ConfigError(
                f"{source}: key '{path}' must be one of {', '.join(spec.choices)}, got {value!r}"
            )
    return value


def load(path: str | Path | None) -> dict[str, dict[str, Any]]:
    """Read and validate a config file (``None`` gives the defaults)."""
    if path is None:
        return defaults()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc}") from None
    config = validate(data, str(path))
    from controller.mirroring import MirrorError, MirrorPolicy

    try:
        MirrorPolicy.from_dict(config["mirroring"], f"{path}: mirroring")
    except MirrorError as exc:
        raise ConfigError(str(exc)) from None
    return config
