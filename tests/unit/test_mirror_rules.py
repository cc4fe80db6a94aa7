"""Alert rules: each type fires on its condition, de-duplicates, resolves; bad files refused."""

from __future__ import annotations

import pytest

from mirror import packets as P
from mirror.engine import SyncEngine
from mirror.rules import RuleError, load_rules, parse_rules

C, S, EVIL = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:66"


def tcp(out, flags, seq=0, ack=0, data=b"", sport=40000):
    src, dst = ("10.0.0.1", "10.0.0.2") if out else ("10.0.0.2", "10.0.0.1")
    sm, dm = (C, S) if out else (S, C)
    ports = (sport, 80) if out else (80, sport)
    return P.build_eth(dm, sm, P.ETH_IPV4, P.build_ipv4(
        src, dst, 6, P.build_tcp(*ports, seq, ack, flags, data)))


def dns(name, rcode=0, addr=None):
    answers = [(name, P.DNS_A, addr, 300)] if addr else []
    msg = P.build_dns(1, name, P.DNS_A, response=True, rcode=rcode, answers=answers)
    return P.build_eth(C, S, P.ETH_IPV4, P.build_ipv4("10.0.0.2", "10.0.0.1", 17,
                                                       P.build_udp(53, 5000, msg)))


def run(rule_yaml_list, frames, when):
    rs = parse_rules(rule_yaml_list)
    e = SyncEngine(C, ["10.0.0.1"])
    for ts, f in frames:
        e.feed(f, ts)
    return rs, e, rs.evaluate(e.state, e.stats, when)


def test_retransmission_rate_fires_once_and_resolves():
    frames = [(0.0, tcp(True, P.TCP_SYN, 0)), (0.0, tcp(False, P.TCP_SYN | P.TCP_ACK, 0, 1)),
              (0.0, tcp(True, P.TCP_ACK, 1, 1))]
    for i in range(10):
        frames.append((0.1, tcp(True, P.TCP_ACK, 1 + i * 100, 1, b"x" * 100)))
    for i in range(3):
        frames.append((0.2, tcp(True, P.TCP_ACK, 1 + i * 100, 1, b"x" * 100)))
    rule = [{"name": "loss", "type": "tcp_retransmission_rate", "threshold": 0.1,
             "min_packets": 5, "window": 10, "severity": "critical", "labels": {"team": "a"},
             "webhook": "https://hooks.example/x", "mark_unhealthy": True}]
    rs, e, alerts = run(rule, frames, 1.0)
    assert len(alerts) == 1
    a = alerts[0]
    assert (a.rule, a.severity, a.status, a.webhook, a.mark_unhealthy) == (
        "loss", "critical", "firing", "https://hooks.example/x", True)
    assert a.labels["team"] == "a" and a.value == pytest.approx(3 / 13)
    assert rs.evaluate(e.state, e.stats, 2.0) == []  # still firing: not repeated
    for t in range(3, 20):
        e.feed(tcp(True, P.TCP_ACK, 1, 1), float(t))
    resolved = rs.evaluate(e.state, e.stats, 19.0)
    assert [x.status for x in resolved] == ["resolved"] and not rs.active


def test_retransmission_rate_needs_min_packets():
    frames = [(0.0, tcp(True, P.TCP_ACK, 1, 1, b"x")), (0.1, tcp(True, P.TCP_ACK, 1, 1, b"x"))]
    _, _, alerts = run([{"name": "l", "type": "tcp_retransmission_rate", "threshold": 0.1}],
                       frames, 1.0)
    assert alerts == []


def test_syn_unanswered_counts_after_grace():
    frames = [(float(i) / 10, tcp(True, P.TCP_SYN, 0, sport=1000 + i)) for i in range(6)]
    frames.append((0.0, tcp(True, P.TCP_SYN, 0, sport=2000)))
    frames.append((0.1, tcp(False, P.TCP_SYN | P.TCP_ACK, 0, 1, sport=2000)))  # answered
    rule = [{"name": "syn", "type": "syn_unanswered", "threshold": 5, "window": 30,
             "grace": 2}]
    _, _, early = run(rule, frames, 1.0)
    assert early == []  # still within the grace period
    _, _, alerts = run(rule, frames, 5.0)
    assert len(alerts) == 1 and alerts[0].value == 6


def test_rst_storm():
    frames = [(1.0, tcp(False, P.TCP_RST, 0, sport=3000 + i)) for i in range(5)]
    _, _, alerts = run([{"name": "rst", "type": "rst_storm", "threshold": 4}], frames, 1.0)
    assert len(alerts) == 1 and "5 TCP RSTs" in alerts[0].message
    _, _, none = run([{"name": "rst", "type": "rst_storm", "threshold": 5}], frames, 1.0)
    assert none == []


def test_nxdomain_rate_and_dns_outside_allowed():
    frames = [(1.0, dns(f"n{i}.example", rcode=3)) for i in range(3)]
    frames += [(1.0, dns("ok.example", addr="10.1.2.3")), (1.0, dns("bad.example",
                                                                    addr="203.0.113.9"))]
    rules = [{"name": "nx", "type": "nxdomain_rate", "threshold": 0.5, "min_responses": 5},
             {"name": "egress", "type": "dns_answer_outside", "allowed": ["10.0.0.0/8"]}]
    _, _, alerts = run(rules, frames, 1.0)
    by_rule = {a.rule: a for a in alerts}
    assert by_rule["nx"].value == pytest.approx(0.6)
    assert by_rule["egress"].labels["address"] == "203.0.113.9"
    assert by_rule["egress"].labels["name"] == "bad.example" and len(alerts) == 2


def test_mac_change_fires_per_change_and_clears_after_window():
    def arp_reply(mac, ts):
        return ts, P.build_eth(C, mac, P.ETH_ARP, P.build_arp(2, mac, "10.0.0.2", C, "10.0.0.1"))

    rs, e, alerts = run([{"name": "spoof", "type": "mac_change", "window": 60}],
                        [arp_reply(S, 1.0), arp_reply(EVIL, 2.0)], 3.0)
    assert len(alerts) == 1 and alerts[0].labels["new_mac"] == EVIL
    assert alerts[0].labels["old_mac"] == S
    assert [a.status for a in rs.evaluate(e.state, e.stats, 100.0)] == ["resolved"]


@pytest.mark.parametrize("rule, message", [
    ({"name": "rst-storm", "type": "rst_storm", "threshold": "lots"},
     "rules.yaml: rules[0] (rst-storm).threshold: must be a number, got str 'lots'"),
    ({"name": "x", "type": "nope"},
     "rules[0] (x).type: must be one of tcp_retransmission_rate, syn_unanswered, rst_storm, "
     "nxdomain_rate, dns_answer_outside, mac_change, got str 'nope'"),
    ({"name": "x", "type": "rst_storm"}, "rules[0] (x).threshold: is required"),
    ({"name": "x", "type": "rst_storm", "threshold": 1, "severity": "meh"},
     "rules[0] (x).severity: must be one of info, warning, critical, got str 'meh'"),
    ({"name": "x", "type": "rst_storm", "threshold": 1, "thresold": 2},
     "rules[0] (x): unknown key 'thresold'"),
    ({"name": "x", "type": "nxdomain_rate", "threshold": 5},
     "rules[0] (x).threshold: must be between 0 and 1, got 5"),
    ({"name": "x", "type": "dns_answer_outside", "allowed": ["10.0.0.0/33"]},
     "rules[0] (x).allowed[0]: must be a CIDR prefix like 10.0.0.0/24, got str '10.0.0.0/33'"),
    ({"name": "x", "type": "mac_change", "webhook": "ftp://a"},
     "rules[0] (x).webhook: must be an http(s) URL, got str 'ftp://a'"),
    ({"name": "x", "type": "mac_change", "mark_unhealthy": "yes"},
     "rules[0] (x).mark_unhealthy: must be true or false, got str 'yes'"),
    ({"type": "mac_change"}, "rules[0].name: must be a non-empty name, got NoneType None"),
])
def test_bad_rules_are_refused_naming_rule_and_field(tmp_path, rule, message):
    import yaml

    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"rules": [rule]}))
    with pytest.raises(RuleError) as exc:
        load_rules(path)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_duplicate_names_and_invalid_yaml(tmp_path):
    with pytest.raises(RuleError, match="duplicate"):
        parse_rules([{"name": "a", "type": "mac_change"}, {"name": "a", "type": "mac_change"}])
    bad = tmp_path / "r.yaml"
    bad.write_text("rules: [\n  - {name: a\n")
    with pytest.raises(RuleError, match="invalid YAML at line 2"):
        load_rules(bad)
    with pytest.raises(FileNotFoundError):
        load_rules(tmp_path / "missing.yaml")


def test_defaults_applied():
    rs = parse_rules({"rules": [{"name": "s", "type": "syn_unanswered", "threshold": 3}]})
    r = rs.rules[0]
    assert r.severity == "warning" and r.params == {"threshold": 3, "window": 60, "grace": 3}
