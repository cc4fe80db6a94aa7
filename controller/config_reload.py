"""SIGHUP: read the config again and apply only what changed, flows kept.

Faucet's warm start is the model: a reload compares the running config with
the new file and changes only what differs, so a new token, a tuned threshold
or one more service never costs a flow that was working. The rules:

- the new file is validated whole first; if it is bad, nothing changes (the
  error is logged and the running config stays);
- keys in :data:`RESTART_KEYS` cannot change under a running controller
  (listen ports, the database, the hub, the forwarding priority every flow was
  installed with, what the paths were planned around): a change there is
  reported and **kept at its running value** until a restart, so the config
  the controller reports is always the one it runs;
- every other key is applied at once: the REST tokens and limits, the log
  level, the loop intervals, the node probes, the switch drain's levels, new
  idle and hard timeouts (for new flows), the default mirror policy (mirrors
  that use it get their copy rules again) and the services, by name: a new one
  is declared, a removed one withdrawn (its client flows end), a changed one
  replaced; only a change of what the clients see (VIP, port, protocol, VIP
  MAC, nodes) withdraws its flows, a change of thresholds, drain time or
  monitoring keeps them.

:func:`diff` is pure, so the rules are tested without a controller; the app
applies the result (``ShadownetApp.reload``).
"""

from __future__ import annotations

from collections.abc import Mapping
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

RESTART_KEYS = frozenset({
    "controller.ofp_listen_host", "controller.ofp_tcp_listen_port", "controller.wsapi_host",
    "controller.wsapi_port", "controller.db_url", "controller.hub", "controller.ofp_tls_key",
    "controller.ofp_tls_cert", "controller.ofp_tls_ca_certs",
    "forwarding.priority", "forwarding.fast_failover",
    "switch_drain.critical", "switch_drain.sample_percent",
    "prediction.enabled",
    "node_probes.liveness_interval", "node_probes.liveness_timeout",
    "node_probes.liveness_misses",
})

# What a client sees of a service: a change here withdraws its flows.
SERVICE_IDENTITY = ("vip", "port", "proto", "vip_mac", "primary", "standbys")


@dataclass
class ConfigDiff:
    """What a reload changes."""

    applied: list[str] = field(default_factory=list)  # dotted keys now in force
    restart: list[str] = field(default_factory=list)  # changed, kept until a restart
    services_added: list[str] = field(default_factory=list)
    services_replaced: list[str] = field(default_factory=list)  # flows kept
    services_withdrawn: list[str] = field(default_factory=list)  # removed or re-addressed
    config: dict[str, Any] = field(default_factory=dict)  # the config in force after it

    @property
    def empty(self) -> bool:
        return not (self.applied or self.restart or self.services_added
                    or self.services_replaced or self.services_withdrawn)

    def summary(self) -> str:
        parts = []
        if self.applied:
            parts.append("applied " + ", ".join(self.applied))
        for what, names in (("added", self.services_added),
                            ("replaced", self.services_replaced),
                            ("withdrawn", self.services_withdrawn)):
            if names:
                parts.append(f"services {what}: {', '.join(names)}")
        if self.restart:
            parts.append("needs a restart (kept as running): " + ", ".join(self.restart))
        return "; ".join(parts) or "no change"


def diff(running: Mapping[str, Any], new: Mapping[str, Any]) -> ConfigDiff:
    """Compare two validated configs (``controller.config.validate`` output)."""
    out = ConfigDiff(config=deepcopy(dict(new)))
    for section, keys in new.items():
        if section == "services":
            continue
        for key, value in keys.items():
            old = running.get(section, {}).get(key)
            if old == value:
                continue
            name = f"{section}.{key}"
            if name in RESTART_KEYS:
                out.restart.append(name)
                out.config[section][key] = deepcopy(old)
            else:
                out.applied.append(name)
    before = {s["name"]: s for s in running.get("services", [])}
    after = {s["name"]: s for s in new.get("services", [])}
    for name in sorted(set(before) | set(after)):
        old_svc, new_svc = before.get(name), after.get(name)
        if old_svc == new_svc:
            continue
        if old_svc is None:
            out.services_added.append(name)
        elif new_svc is None:
            out.services_withdrawn.append(name)
        elif any(old_svc.get(k) != new_svc.get(k) for k in SERVICE_IDENTITY):
            out.services_withdrawn.append(name)
            out.services_added.append(name)
        else:
            out.services_replaced.append(name)
    return out
