"""Lab scenarios: each takes a running ``Lab`` and returns a JSON-able result."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from lab.network import Lab


def iperf3_pair(lab: Lab, seconds: int = 3) -> float:
    """TCP throughput in Mbit/s from the first host to the last."""
    client, server = lab.net.hosts[0], lab.net.hosts[-1]
    srv = server.popen(["iperf3", "-s", "-1", "-p", "5201"])
    try:
        time.sleep(0.5)
        out = client.cmd(f"iperf3 -c {server.IP()} -p 5201 -t {seconds} -J")
        try:
            report = json.loads(out)
            return round(report["end"]["sum_received"]["bits_per_second"] / 1e6, 1)
        except (ValueError, KeyError):
            return 0.0
    finally:
        srv.kill()
        srv.wait()


def pingall(lab: Lab) -> dict[str, Any]:
    """Every host pings every other host once; then one iperf3 pair."""
    dropped = lab.net.pingAll(timeout="3")
    return {
        "hosts": len(lab.net.hosts),
        "pairs": lab.host_pairs(),
        "dropped_pct": round(float(dropped), 2),
        "throughput_mbps": iperf3_pair(lab),
    }


def mirror(lab: Lab) -> dict[str, Any]:
    from lab.mirror_scenario import mirror_scenario

    return mirror_scenario(lab)


SCENARIOS: dict[str, Callable[[Lab], dict[str, Any]]] = {"pingall": pingall, "mirror": mirror}
