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
      ofp_tls_key: /etc/shadownet/ctl-key.pem      # optional: OpenFlow over TLS only
      ofp_tls_cert: /etc/shadownet/ctl-cert.pem
      ofp_tls_ca_certs: /etc/shadownet/switch-ca.pem  # switches must show a cert it signed
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
    prediction:
      enabled: true         # false: act on measured health only (reactive-only)
    node_probes:            # active probes of service nodes (the Flow Monitor)
      interval: 10          # seconds between rounds
      count: 3              # probes per node and round
      timeout: 0.5          # seconds before a probe counts as lost
    rest:                   # the REST API (see README, Security)
      tokens_file: /etc/shadownet/tokens.yaml  # hashed tokens with roles
      open_reads: false     # true: GETs need no token (changes always do)
      allowed_hosts: []     # Host names accepted besides localhost and wsapi_host
      max_body_bytes: 65536
    switch_drain:       # keep a live bypass around critical switches
      critical: [2, 5]      # switch dpids
      sample_percent: 2     # % of flows hashed onto the shadow all the time (0..5)
      probe_interval: 1.0   # seconds between health probes of a critical switch
      enter_probability: 0.9
      enter_health: 0.5
      confirm: 2            # consecutive intervals before draining / undraining
      cool_down: 30         # seconds a drained switch stays drained at least
      exit_health: 0.8
"""

from __future__ import annotations

import builtins
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shadownet.safe_yaml import SafeYamlError, load_yaml

LOG = logging.getLogger(__name__)


class ConfigError(Exception):
    """The configuration is missing or invalid; the message names the key."""


@dataclass(frozen=True)
class Key:
    type: builtins.type | tuple[builtins.type, ...]
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    item: builtins.type | None = None  # lists: each element's type (minimum/maximum bound each)


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
        # OpenFlow over TLS: with a key and a certificate the OpenFlow port speaks TLS
        # only; with ca_certs too, switches must present a certificate that CA signed.
        "ofp_tls_key": Key(str, ""),
        "ofp_tls_cert": Key(str, ""),
        "ofp_tls_ca_certs": Key(str, ""),
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
    "node_probes": {
        # The Flow Monitor's active probes of service nodes (controller.services.probes).
        "interval": Key((int, float), 10, 0.2, 3600),
        "count": Key(int, 3, 1, 100),  # probes per node and interval
        "timeout": Key((int, float), 0.5, 0.01, 60),  # seconds before a probe counts as lost
    },
    "rest": {
        "tokens_file": Key(str, ""),  # empty: no tokens, so every change is refused
        "open_reads": Key(bool, False),
        "allowed_hosts": Key(list, [], item=str),
        "max_body_bytes": Key(int, 65536, 256, 16 * 2**20),
    },
    "prediction": {
        # Off: services and switches move only on measured health (reactive-only).
        "enabled": Key(bool, True),
    },
    "switch_drain": {
        "critical": Key(list, [], 0, 2**64 - 1, item=int),
        "sample_percent": Key((int, float), 2, 0, 5),
        "probe_interval": Key((int, float), 1.0, 0.05, 3600),
        "enter_probability": Key((int, float), 0.9, 0, 1),
        "exit_probability": Key((int, float), 0.9, 0, 1),
        "enter_health": Key((int, float), 0.5, 0, 1),
        "exit_health": Key((int, float), 0.8, 0, 1),
        "confirm": Key(int, 2, 1, 1000),
        "cooldown_seconds": Key((int, float), 30, 0, 10**6),
    },
}

# Old names still read, each with a warning naming the new one: (section, key) -> new.
RENAMED_SECTIONS = {"switch_shadowing": "switch_drain"}
RENAMED_KEYS = {("switch_drain", "cool_down"): "cooldown_seconds"}

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", list: "a list",
               bool: "true or false"}
_PLURAL_NAMES = {int: "integers", float: "numbers", str: "strings"}


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
        if section in RENAMED_SECTIONS:
            new = RENAMED_SECTIONS[section]
            LOG.warning("%s: section %r is now called %r; please rename it", source, section, new)
            if new in data:
                raise ConfigError(f"{source}: sections {section!r} and {new!r} are the same "
                                  f"section (renamed); keep only {new!r}")
            section = new
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
            if (section, name) in RENAMED_KEYS:
                new = RENAMED_KEYS[section, name]
                LOG.warning("%s: key '%s.%s' is now called '%s.%s'; please rename it",
                            source, section, name, section, new)
                if new in values:
                    raise ConfigError(f"{source}: keys '{section}.{name}' and "
                                      f"'{section}.{new}' are the same key (renamed); "
                                      f"keep only '{section}.{new}'")
                name = new
            spec = SCHEMA[section].get(name)
            if spec is None:
                raise ConfigError(
                    f"{source}: unknown key '{section}.{name}' "
                    f"(expected one of: {', '.join(SCHEMA[section])})"
                )
            config[section][name] = _check(f"{section}.{name}", value, spec, source)
    _check_together(config, source)
    return config


def _check_together(config: dict[str, Any], source: str) -> None:
    """Rules that span two keys of a section."""
    ctl = config["controller"]
    if bool(ctl["ofp_tls_key"]) != bool(ctl["ofp_tls_cert"]):
        raise ConfigError(f"{source}: keys 'controller.ofp_tls_key' and "
                          "'controller.ofp_tls_cert' go together (set both, or neither)")
    if ctl["ofp_tls_ca_certs"] and not ctl["ofp_tls_key"]:
        raise ConfigError(f"{source}: key 'controller.ofp_tls_ca_certs' needs "
                          "'controller.ofp_tls_key' and 'controller.ofp_tls_cert'")
    for key in ("ofp_tls_key", "ofp_tls_cert", "ofp_tls_ca_certs"):
        if ctl[key] and not Path(ctl[key]).is_file():
            raise ConfigError(f"{source}: key 'controller.{key}': no such file {ctl[key]!r}")
    drain = config["switch_drain"]
    # Hysteresis: a switch must look clearly better to come back than it did to go.
    if drain["exit_health"] <= drain["enter_health"]:
        raise ConfigError(
            f"{source}: key 'switch_drain.exit_health' must be above "
            f"'switch_drain.enter_health' ({drain['exit_health']!r} <= "
            f"{drain['enter_health']!r})"
        )
    if drain["exit_probability"] > drain["enter_probability"]:
        raise ConfigError(
            f"{source}: key 'switch_drain.exit_probability' must not be above "
            f"'switch_drain.enter_probability' ({drain['exit_probability']!r} > "
            f"{drain['enter_probability']!r})"
        )


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
    return _check_value(path, value, spec, source)


def _check_value(path: str, value: Any, spec: Key, source: str) -> Any:
    """Range, finiteness and choices of a value of the right type."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{source}: key '{path}' must be a finite number, got {value!r}")
    if spec.item is not None:
        return [_check_item(path, item, spec, source) for item in value]
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


def _check_item(path: str, item: Any, spec: Key, source: str) -> Any:
    """One element of a list key: its type, and the key's range applies to each element."""
    kind = spec.item or object
    if isinstance(item, bool) or not isinstance(item, kind):
        raise ConfigError(f"{source}: key '{path}' must hold only "
                          f"{_PLURAL_NAMES.get(kind, kind.__name__)}, "
                          f"got {_kind(item)}")
    return _check_element(path, item, spec, source)


def _check_element(path: str, item: Any, spec: Key, source: str) -> Any:
    """Finiteness and the key's range, for one element of the right type."""
    if isinstance(item, float) and not math.isfinite(item):
        raise ConfigError(f"{source}: key '{path}' must hold finite numbers, got {item!r}")
    if spec.minimum is not None and item < spec.minimum:
        raise ConfigError(f"{source}: key '{path}' must hold values >= {spec.minimum}, "
                          f"got {item!r}")
    if spec.maximum is not None and item > spec.maximum:
        raise ConfigError(f"{source}: key '{path}' must hold values <= {spec.maximum}, "
                          f"got {item!r}")
    return item


def load(path: str | Path | None) -> dict[str, dict[str, Any]]:
    """Read and validate a config file (``None`` gives the defaults)."""
    if path is None:
        return defaults()
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} not found")
    try:
        data = load_yaml(path, what="config file")
    except SafeYamlError as exc:
        raise ConfigError(str(exc)) from None
    config = validate(data, str(path))
    if config["rest"]["tokens_file"]:
        from shadownet.access import TokenFileError, load_tokens

        try:
            load_tokens(config["rest"]["tokens_file"])
        except TokenFileError as exc:
            raise ConfigError(f"{path}: rest.tokens_file: {exc}") from None
    from controller.mirroring import MirrorError, MirrorPolicy

    try:
        MirrorPolicy.from_dict(config["mirroring"], f"{path}: mirroring")
    except MirrorError as exc:
        raise ConfigError(str(exc)) from None
    return config
