"""Each lab scenario's target: a run that misses it makes ``shadownet lab run`` exit 1."""

from __future__ import annotations

import pytest

from lab.scenarios import SCENARIOS


@pytest.mark.parametrize("name,mode,result,missed", [
    ("pingall", None, {"dropped_pct": 0.0}, False),
    ("pingall", None, {"dropped_pct": 0.3}, True),
    ("mirror", None, {"arp_agreement_pct": 100.0, "tcp_established_agreement_pct": None,
                      "dns_agreement_pct": 100.0}, False),
    ("mirror", None, {"arp_agreement_pct": 97.5, "dns_agreement_pct": 100.0}, True),
    ("degrading-node", "predictive", {"failed": 0}, False),
    ("degrading-node", "predictive", {"failed": 3}, True),
    ("degrading-node", "health", {"failed": 83}, False),  # a baseline promises nothing
    ("noise-only", "health", {"migrations": 0}, False),
    ("noise-only", "predictive", {"migrations": 1}, True),
    ("link-cut", "groups", {"gap_ms": 8.0}, False),
    ("link-cut", "groups-alone", {"gap_ms": 51.0}, True),
    ("link-cut", "groups", {"error": "receiver printed no result"}, True),
    ("link-cut", "controller", {"gap_ms": 900.0}, False),
    ("link-cut", "none", {"gap_ms": 4000.0}, False),
    ("degrading-switch", "predictive", {"lost": 962, "drains": 1, "drained_s_before_death": 3.4,
                                        "other_drains": []}, False),
    ("degrading-switch", "predictive", {"drains": 1, "drained_s_before_death": -0.5,
                                        "other_drains": []}, True),
    ("degrading-switch", "predictive", {"drains": 1, "drained_s_before_death": 3.0,
                                        "other_drains": ["s1"]}, True),
    ("degrading-switch", "predictive", {"drains": 0, "other_drains": []}, True),
    ("degrading-switch", "health", {"drains": 0, "other_drains": []}, False),
    ("degrading-switch", "none", {"lost": 2585, "drains": 0}, False),
])
def test_targets(name, mode, result, missed):
    assert bool(SCENARIOS[name].misses(mode, result)) is missed
