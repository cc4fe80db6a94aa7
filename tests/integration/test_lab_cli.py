"""The user-facing lab command and Mininet's own ``mn --custom`` loader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab.ovs import bridges, delete_bridges

ROOT = Path(__file__).resolve().parents[2]
SHADOWNET = str(Path(sys.executable).parent / "shadownet")


def test_lab_run_pingall_json():
    result = subprocess.run([SHADOWNET, "lab", "run", "pingall", "--topo", "linear,3", "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"scenario", "topo", "hosts", "pairs", "dropped_pct", "throughput_mbps",
                           "duration_s"}
    assert report["hosts"] == 3 and report["pairs"] == 6 and report["dropped_pct"] == 0
    assert report["throughput_mbps"] > 0


@pytest.mark.parametrize("custom,topo", [
    ("ring.py", "ring,3"),
    ("fattree.py", "fattree,2"),
    ("zoo.py", "zoo,Abilene"),
])
def test_mn_custom_loads_our_topologies(custom, topo):
    """``mn --custom topologies/X.py --topo ...`` builds, starts and stops the network."""
    before = set(bridges())
    try:
        result = subprocess.run(
            ["mn", "--custom", str(ROOT / "topologies" / custom), "--topo", topo,
             "--switch", "ovs,datapath=user", "--controller", "none", "--test", "none"],
            capture_output=True, text=True, timeout=180,
        )
    finally:
        delete_bridges(sorted(set(bridges()) - before))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Exception" not in result.stderr, result.stderr
    assert "*** Done" in result.stderr


def test_lab_run_mirror_scenario_agreement():
    """The mirror scenario: the replicas agree with the containers' own kernels."""
    result = subprocess.run([SHADOWNET, "lab", "run", "mirror", "--topo", "linear,2", "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["arp_entries"] > 0 and report["arp_agreement_pct"] == 100.0
    assert report["tcp_established"] > 0 and report["tcp_established_agreement_pct"] == 100.0
    assert report["dns_agreement_pct"] == 100.0
    assert report["lag_samples"] > 0 and report["throughput_ratio"] > 0
    # iperf3's bulk connections were shunted, and the switch's counters, folded back
    # into the replica, account for every byte iperf3 sent, plus its headers (~4.6 %).
    assert report["shunted_connections"] >= 2 and report["shunted_packets"] > 0
    assert 1.0 <= report["shunt_bytes_vs_iperf"] <= 1.08, report
    assert report["mirror_kernel_drops"] == 0, report
