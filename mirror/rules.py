"""Alert rules over a mirror's replicated state and the engine's counters.

Rules live in YAML so operators tune thresholds without code::

    rules:
      - name: rst-storm
        type: rst_storm          # see RULE_TYPES for each type's fields
        threshold: 50            # RSTs in the window (alert when above)
        window: 10               # seconds of packet time
        severity: critical       # info | warning | critical (default warning)
        labels: {team: payments}
        webhook: https://hooks.example/alert
        mark_unhealthy: true

A rule file is validated completely before use: a bad one is refused with one
line naming the file, the rule and the field, so a typo never silently disables
an alert.  Remediation (``webhook``, ``mark_unhealthy``) is returned as data on
each :class:`Alert`; the agent performs it, keeping this module pure.

An alert fires once per *instance* (a rule plus, for per-object rules, the
object — a DNS name and address, an IP whose MAC changed) and is reported again
only as ``resolved`` once its condition stops holding.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shadownet.checks import Checks, Invalid
from shadownet.safe_yaml import SafeYamlError, load_yaml

SEVERITIES = ("info", "warning", "critical")
COMMON_FIELDS = {"name", "type", "severity", "labels", "webhook", "mark_unhealthy",
                 "description"}

# type -> {field: (kind, default)}; default None means required.
RULE_TYPES: dict[str, dict[str, tuple[str, Any]]] = {
    "tcp_retransmission_rate": {"threshold": ("fraction", None), "window": ("seconds", 60),
                                "min_packets": ("count", 100)},
    "syn_unanswered": {"threshold": ("count", None), "window": ("seconds", 60),
                       "grace": ("seconds", 3)},
    "rst_storm": {"threshold": ("count", None), "window": ("seconds", 10)},
    "nxdomain_rate": {"threshold": ("fraction", None), "window": ("seconds", 60),
                      "min_responses": ("count", 20)},
    "dns_answer_outside": {"allowed": ("cidrs", None)},
    "mac_change": {"window": ("seconds", 300)},
}


class RuleError(Invalid):
    """A rule file that cannot be used; the message is one line naming rule and field."""


check = Checks(RuleError)
_NAME = re.compile(r"^\S.*$")
_URL = re.compile(r"^https?://\S+$")


@dataclass
class Alert:
    """One alert transition: ``status`` is ``firing`` when raised, ``resolved`` when cleared."""

    rule: str
    severity: str
    message: str
    labels: dict[str, str]
    ts: float
    status: str = "firing"
    value: float | None = None
    webhook: str | None = None
    mark_unhealthy: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "severity": self.severity, "status": self.status,
                "message": self.message, "labels": dict(self.labels), "ts": self.ts,
                "value": self.value, "webhook": self.webhook,
                "mark_unhealthy": self.mark_unhealthy}


@dataclass
class Rule:
    name: str
    type: str
    severity: str = "warning"
    params: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    webhook: str | None = None
    mark_unhealthy: bool = False
    description: str = ""


# An instance condition: key -> (value, message, extra labels).
Conditions = dict[tuple[Any, ...], tuple[float, str, dict[str, str]]]


def _rate_rule(num: str, den: str, min_field: str, what: str) -> Callable[..., Conditions]:
    def check(rule: Rule, state: Any, stats: Any, now: float) -> Conditions:
        p = rule.params
        d = stats.delta(den, p["window"], now)
        n = stats.delta(num, p["window"], now)
        if d < p[min_field] or d == 0:
            return {}
        rate = n / d
        if rate <= p["threshold"]:
            return {}
        return {(): (rate, f"{what} {rate:.1%} over {p['window']:g}s ({n}/{d}) above "
                           f"{p['threshold']:.1%}", {})}
    return check


def _syn_unanswered(rule: Rule, state: Any, stats: Any, now: float) -> Conditions:
    p = rule.params
    lo, hi = now - p["window"], now - p["grace"]
    n = sum(1 for f in state.connections.flows.values()
            if f.proto == 6 and f.orig.syn and not f.resp.packets and lo <= f.first_seen <= hi)
    if n <= p["threshold"]:
        return {}
    return {(): (n, f"{n} SYNs without an answer in {p['window']:g}s (above "
                    f"{p['threshold']:g})", {})}


def _rst_storm(rule: Rule, state: Any, stats: Any, now: float) -> Conditions:
    p = rule.params
    n = stats.delta("tcp_rsts", p["window"], now)
    if n <= p["threshold"]:
        return {}
    return {(): (n, f"{n} TCP RSTs in {p['window']:g}s (above {p['threshold']:g})", {})}


def _dns_outside(rule: Rule, state: Any, stats: Any, now: float) -> Conditions:
    nets = rule.params["allowed"]
    out: Conditions = {}
    for e in state.dns.values():
        for a in e["answers"]:
            if a["type"] not in ("A", "AAAA"):
                continue
            addr = ipaddress.ip_address(a["data"])
            if not any(addr.version == n.version and addr in n for n in nets):
                out[(e["name"], a["data"])] = (
                    1, f"DNS answer {e['name']} -> {a['data']} is outside the allowed networks",
                    {"name": e["name"], "address": a["data"]})
    return out


def _mac_change(rule: Rule, state: Any, stats: Any, now: float) -> Conditions:
    lo = now - rule.params["window"]
    out: Conditions = {}
    for c in state.mac_changes:
        if c["ts"] >= lo:
            out[(c["ip"], c["old_mac"], c["new_mac"])] = (
                1, f"{c['ip']} moved from {c['old_mac']} to {c['new_mac']} (possible ARP "
                   "spoofing)", {"ip": c["ip"], "old_mac": c["old_mac"],
                                 "new_mac": c["new_mac"]})
    return out


CHECKS: dict[str, Callable[..., Conditions]] = {
    "tcp_retransmission_rate": _rate_rule("tcp_retransmissions", "tcp_data_packets",
                                          "min_packets", "TCP retransmission rate"),
    "syn_unanswered": _syn_unanswered,
    "rst_storm": _rst_storm,
    "nxdomain_rate": _rate_rule("dns_nxdomain", "dns_responses", "min_responses",
                                "NXDOMAIN rate"),
    "dns_answer_outside": _dns_outside,
    "mac_change": _mac_change,
}


class RuleSet:
    """Validated rules plus the alerts currently firing (for de-duplication)."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self.active: dict[tuple[Any, ...], Alert] = {}

    def evaluate(self, state: Any, stats: Any, now: float) -> list[Alert]:
        """Alerts that started firing or resolved since the last call (each only once).

        ``state`` is a :class:`mirror.state.NamespaceState`, ``stats`` an
        :class:`mirror.engine.EngineStats`; ``now`` is packet time.
        """
        changes: list[Alert] = []
        for rule in self.rules:
            conds = CHECKS[rule.type](rule, state, stats, now)
            for key, (value, message, extra) in conds.items():
                akey = (rule.name, key)
                if akey not in self.active:
                    alert = Alert(rule.name, rule.severity, message,
                                  {**rule.labels, **extra, "rule_type": rule.type}, now,
                                  "firing", float(value), rule.webhook, rule.mark_unhealthy)
                    self.active[akey] = alert
                    changes.append(alert)
            for akey in [k for k in self.active if k[0] == rule.name and k[1] not in conds]:
                fired = self.active.pop(akey)
                changes.append(Alert(rule.name, rule.severity, f"resolved: {fired.message}",
                                     fired.labels, now, "resolved", fired.value, rule.webhook,
                                     False))
        return changes


# -- loading and validation -------------------------------------------------------------------


def _check_field(where: str, kind: str, value: Any) -> Any:
    if kind == "fraction":
        return check.number(value, where, 0, 1)
    if kind == "count":
        return check.number(value, where, 0)
    if kind == "seconds":
        number = check.number(value, where, 0)
        if number == 0 and where.endswith(".window"):
            raise RuleError(f"{where}: must be a positive number of seconds, got 0")
        return number
    if kind == "cidrs":
        items = check.items(value, where, 10_000)
        if not items:
            raise RuleError(f"{where}: must be a non-empty list of CIDR prefixes, got []")
        return [ipaddress.ip_network(check.cidr(item, f"{where}[{i}]"))
                for i, item in enumerate(items)]
    raise AssertionError(kind)  # pragma: no cover


def parse_rules(data: Any, source: str = "rules") -> RuleSet:
    """Validate already-loaded YAML (a list of rules or ``{rules: [...]}``)."""
    if isinstance(data, dict) and set(data) == {"rules"}:
        data = data["rules"]
    items = check.items(data, f"{source}: rules")
    rules: list[Rule] = []
    names: set[str] = set()
    for i, item in enumerate(items):
        raw = check.mapping(item, f"{source}: rules[{i}]")
        name = check.string(raw.get("name"), f"{source}: rules[{i}].name", 128,
                            _NAME, "a non-empty name")
        where = f"{source}: rules[{i}] ({name})"
        if name in names:
            raise RuleError(f"{where}.name: is a duplicate")
        names.add(name)
        rtype = check.choice(raw.get("type"), f"{where}.type", RULE_TYPES)
        spec = RULE_TYPES[rtype]
        check.keys(raw, where, [*sorted(COMMON_FIELDS), *spec],
                   [f for f, (_, default) in spec.items() if default is None])
        params = {fname: _check_field(f"{where}.{fname}", kind, raw.get(fname, default))
                  for fname, (kind, default) in spec.items()}
        severity = check.choice(raw.get("severity", "warning"), f"{where}.severity", SEVERITIES)
        labels = check.mapping(raw.get("labels", {}), f"{where}.labels")
        for key, value in labels.items():
            check.string(key, f"{where}.labels", what="a mapping with string keys")
            check.string(str(value), f"{where}.labels.{key}", 256)
        webhook = raw.get("webhook")
        if webhook is not None:
            check.string(webhook, f"{where}.webhook", 2048, _URL, "an http(s) URL")
        unhealthy = check.boolean(raw.get("mark_unhealthy", False), f"{where}.mark_unhealthy")
        description = check.string(raw.get("description", ""), f"{where}.description", 1024)
        rules.append(Rule(name, rtype, severity, params, {k: str(v) for k, v in labels.items()},
                          webhook, unhealthy, description))
    return RuleSet(rules)


def load_rules(path: str | os.PathLike[str]) -> RuleSet:
    """Read and validate a YAML rule file; RuleError (a ValueError) / FileNotFoundError."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        data = load_yaml(path, what="rules file")
    except SafeYamlError as exc:
        raise RuleError(str(exc)) from None
    return parse_rules(data, path.name)
