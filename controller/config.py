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
      enabled: true         # false: act on measured health only, same thresholds
    node_probes:            # active probes of service nodes (the Flow Monitor)
      interval: 2           # seconds between rounds
      count: 3              # probes per node and round
      timeout: 0.5          # seconds before a probe counts as lost
      liveness_interval: 0.1  # seconds between connects to each service node (0: off)
      liveness_timeout: 0.25  # seconds before such a connect counts as a miss
      liveness_misses: 5      # misses in a row: the node is unreachable, moved at once
    rest:                   # the REST API (see README, Security)
      tokens_file: /etc/shadownet/tokens.yaml  # hashed tokens with roles
      open_reads: false     # true: GETs need no token (changes always do)
      allowed_hosts: []     # Host names accepted besides localhost and wsapi_host
      max_body_bytes: 65536
    switch_drain:       # keep a live bypass around critical switches
      critical: [2, 5]      # switch dpids, or all
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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shadownet.checks import Checks, Invalid
from shadownet.safe_yaml import SafeYamlError, load_yaml

LOG = logging.getLogger(__name__)


class ConfigError(Invalid):
    """The configuration is missing or invalid; the message names the key."""


check = Checks(ConfigError)


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
        "interval": Key((int, float), 2, 0.2, 3600),
        "count": Key(int, 3, 1, 100),  # probes per node and interval
        "timeout": Key((int, float), 0.5, 0.01, 60),  # seconds before a probe counts as lost
        # Liveness checks of every service node between rounds
        # (controller.services.liveness): a connect every liveness_interval
        # seconds (0: none); liveness_misses in a row make the node unreachable.
        "liveness_interval": Key((int, float), 0.1, 0, 60),
        "liveness_timeout": Key((int, float), 0.25, 0.01, 60),
        "liveness_misses": Key(int, 5, 1, 1000),
    },
    "rest": {
        "tokens_file": Key(str, ""),  # empty: no tokens, so every change is refused
        "open_reads": Key(bool, False),
        "allowed_hosts": Key(list, [], item=str),
        "max_body_bytes": Key(int, 65536, 256, 16 * 2**20),
    },
    "prediction": {
        # Off: services and switches move only on measured health, same thresholds.
        "enabled": Key(bool, True),
    },
    "switch_drain": {
        # dpids, or "all": every switch is eligible (no need to know which will fail).
        "critical": Key(list, [], 0, 2**64 - 1, choices=("all",), item=int),
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
    data = _renamed(check.mapping(data, f"{source}: top level"), source)
    check.keys(data, source, [*SCHEMA, "services"])
    for section, values in data.items():
        if section == "services":
            from controller.services.service import ServiceError, services_from_config

            try:
                services_from_config(values, source)
            except ServiceError as exc:
                raise ConfigError(str(exc).splitlines()[0]) from None
            config["services"] = list(values or [])
            continue
        if values is None:
            continue
        values = check.mapping(values, f"{source}: {section}")
        check.keys(values, f"{source}: {section}", SCHEMA[section])
        for name, value in values.items():
            config[section][name] = _check(f"{section}.{name}", value, SCHEMA[section][name],
                                           source)
    _check_together(config, source)
    return config


def _renamed(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The document with renamed sections and keys under their new names (with a warning)."""
    out: dict[str, Any] = {}
    for section, values in data.items():
        new = RENAMED_SECTIONS.get(section, section)
        if new != section:
            LOG.warning("%s: section %r is now called %r; please rename it", source, section, new)
            if new in data:
                raise ConfigError(f"{source}: sections {section!r} and {new!r} are the same "
                                  f"section (renamed); keep only {new!r}")
        if isinstance(values, Mapping):
            renamed = {}
            for key, value in values.items():
                new_key = RENAMED_KEYS.get((new, key), key)
                if new_key != key:
                    LOG.warning("%s: key '%s.%s' is now called '%s.%s'; please rename it",
                                source, new, key, new, new_key)
                    if new_key in values:
                        raise ConfigError(f"{source}: keys '{new}.{key}' and '{new}.{new_key}' "
                                          f"are the same key (renamed); keep only "
                                          f"'{new}.{new_key}'")
                renamed[new_key] = value
            values = renamed
        out[new] = values
    return out


def _check_together(config: dict[str, Any], source: str) -> None:
    """Rules that span two keys of a section."""
    ctl = config["controller"]
    if bool(ctl["ofp_tls_key"]) != bool(ctl["ofp_tls_cert"]):
        raise ConfigError(f"{source}: controller.ofp_tls_key: goes with "
                          "controller.ofp_tls_cert (set both, or neither)")
    if ctl["ofp_tls_ca_certs"] and not ctl["ofp_tls_key"]:
        raise ConfigError(f"{source}: controller.ofp_tls_ca_certs: needs "
                          "controller.ofp_tls_key and controller.ofp_tls_cert")
    for key in ("ofp_tls_key", "ofp_tls_cert", "ofp_tls_ca_certs"):
        if ctl[key] and not Path(ctl[key]).is_file():
            raise ConfigError(f"{source}: controller.{key}: no such file {ctl[key]!r}")
    drain = config["switch_drain"]
    # Hysteresis: a switch must look clearly better to come back than it did to go.
    if drain["exit_health"] <= drain["enter_health"]:
        raise ConfigError(
            f"{source}: switch_drain.exit_health: must be above switch_drain.enter_health "
            f"({drain['exit_health']!r} <= {drain['enter_health']!r})"
        )
    if drain["exit_probability"] > drain["enter_probability"]:
        raise ConfigError(
            f"{source}: switch_drain.exit_probability: must not be above "
            f"switch_drain.enter_probability ({drain['exit_probability']!r} > "
            f"{drain['enter_probability']!r})"
        )


def _check(path: str, value: Any, spec: Key, source: str) -> Any:
    """One key's value against its spec (type, finiteness, range, choices)."""
    where = f"{source}: {path}"
    types = spec.type if isinstance(spec.type, tuple) else (spec.type,)
    if bool in types:
        return check.boolean(value, where)
    if list in types:
        if isinstance(value, str) and spec.choices:  # a list, or one named choice
            return check.choice(value, where, spec.choices)
        items = check.items(value, where)
        if spec.item is None:
            return items
        return [_scalar(f"{where}[{i}]", item, spec.item, spec) for i, item in enumerate(items)]
    value = _scalar(where, value, types, spec)
    if spec.choices is not None:
        value = check.choice(value, where, spec.choices)
    return value


def _scalar(where: str, value: Any, types: type | tuple[type, ...], spec: Key) -> Any:
    types = types if isinstance(types, tuple) else (types,)
    if str in types:
        return check.string(value, where)
    if float in types:
        return check.number(value, where, spec.minimum, spec.maximum)
    low = None if spec.minimum is None else int(spec.minimum)
    high = None if spec.maximum is None else int(spec.maximum)
    return check.integer(value, where, low, high)


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
