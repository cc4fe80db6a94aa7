"""Lab scenarios: each takes a running ``Lab`` and returns a JSON-able result.

``SCENARIOS`` is what ``shadownet lab run`` offers. A scenario with modes
(the failover scenarios) is run once per mode on a fresh lab, because the
mode changes the controller's configuration; see ``lab.service_scenarios``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lab.network import Lab
from shadownet import progress


def iperf3_pair(lab: Lab, seconds: int = 3) -> float:
    """TCP throughput in Mbit/s from the first host to the last."""
    client, server = lab.net.hosts[0], lab.net.hosts[-1]
    srv = server.popen(["iperf3", "-s", "-1", "-p", "5201"])
    try:
        time.sleep(0.5)
        out = client.cmd(f"iperf3 -c {server.IP()} -p 5201 -t {seconds} -J")
        try:
            report = json.loads(out)
            return round(float(report["end"]["sum_received"]["bits_per_second"]) / 1e6, 1)
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


# --- targets: what each scenario promises; a run that misses one exits non-zero ---------
Misses = Callable[[str | None, dict[str, Any]], list[str]]  # (mode, result) -> misses


def _no_drops(mode: str | None, r: dict[str, Any]) -> list[str]:
    return [f"dropped {r['dropped_pct']} % of pings (target 0)"] if r.get("dropped_pct") else []


def _mirror_agrees(mode: str | None, r: dict[str, Any]) -> list[str]:
    return [f"{key} = {r[key]} (target 100)" for key in
            ("arp_agreement_pct", "tcp_established_agreement_pct", "dns_agreement_pct")
            if r.get(key) not in (None, 100.0)]


def _predicted_node_loses_nothing(mode: str | None, r: dict[str, Any]) -> list[str]:
    if mode != "predictive":
        return []  # the baselines show what prediction buys; they promise nothing
    return [f"{r.get('failed')} failed requests (target 0)"] if r.get("failed") != 0 else []


def _noise_moves_nothing(mode: str | None, r: dict[str, Any]) -> list[str]:
    return [f"{r.get('migrations')} migrations (target 0)"] if r.get("migrations") != 0 else []


def _cut_within_50ms(mode: str | None, r: dict[str, Any]) -> list[str]:
    if mode not in ("groups", "groups-alone"):
        return []  # without groups: the controller's reroute, or nothing; no promise
    gap = r.get("gap_ms")
    return [f"outage {gap} ms (target <= 50)"] if gap is None or gap > 50 else []


def _switch_drained_in_time(mode: str | None, r: dict[str, Any]) -> list[str]:
    """Predictive: the degrading switch, and only it, is drained before it dies. Its
    packet loss is reported, not promised: the queue costs packets before any
    method has seen enough of it (12 probe intervals for the trend)."""
    if mode != "predictive":
        return []  # health drains once latency costs the switch its health: no promise
    misses = []
    if r.get("drains") != 1 or not (r.get("drained_s_before_death") or 0) > 0:
        misses.append(f"victim drained {r.get('drains')} times, "
                      f"{r.get('drained_s_before_death')} s before its death "
                      "(target once, before)")
    if r.get("other_drains"):
        misses.append(f"other switches drained: {r['other_drains']} (target none)")
    return misses


@dataclass(frozen=True)
class Scenario:
    """How to run one scenario: its default topology, per mode its config, its target."""

    run: Callable[..., dict[str, Any]]  # (lab) or, with modes, (lab, mode)
    default_topo: str = "ring,6"
    modes: tuple[str, ...] = ()
    config: Callable[[str, Any], dict[str, Any]] | None = None  # (mode, topo) -> config
    probe_port: Callable[[str], bool] = lambda mode: False
    misses: Misses = lambda mode, result: []
    options: tuple[str, ...] = ()  # keyword arguments the run takes from the CLI (seed, ...)


def _service_scenario(run: Callable[..., dict[str, Any]], misses: Misses) -> Scenario:
    from lab import service_scenarios as ss

    return Scenario(run, "linear,3", ss.MODES, ss.service_config,
                    probe_port=lambda mode: mode != "none", misses=misses)


def _switch_scenario(run: Callable[..., dict[str, Any]], default_topo: str,
                     config: Callable[[str, Any], dict[str, Any]], misses: Misses) -> Scenario:
    from lab import service_scenarios as ss

    return Scenario(run, default_topo, ss.MODES, config, misses=misses)


def _scenarios() -> dict[str, Scenario]:
    from lab import pattern_scenario as ps
    from lab import service_scenarios as ss
    from lab import switch_scenarios as sw

    return {
        "pingall": Scenario(pingall, misses=_no_drops),
        "mirror": Scenario(mirror, "linear,3", misses=_mirror_agrees),
        "degrading-node": _service_scenario(ss.degrading_node, _predicted_node_loses_nothing),
        "noise-only": _service_scenario(ss.noise_only, _noise_moves_nothing),
        "pattern": Scenario(ps.pattern_run, "linear,3", ss.MODES, ss.service_config,
                            probe_port=lambda mode: mode != "none", misses=ps.pattern_misses,
                            options=("seed", "kind")),
        "link-cut": Scenario(sw.link_cut, "ring,4", sw.LINK_CUT_MODES, sw.link_cut_config,
                             misses=_cut_within_50ms),
        "degrading-switch": _switch_scenario(sw.degrading_switch, "ring,4",
                                             sw.degrading_switch_config,
                                             _switch_drained_in_time),
    }


SCENARIOS = _scenarios()


def run_scenario(name: str, topo: str | None = None, mode: str | None = None,
                 hub: str | None = None, log: Callable[[str], None] = lambda msg: None,
                 **options: Any) -> dict[str, Any]:
    """Run one scenario (in one mode) on a fresh lab, torn down before this returns.

    ``options`` go to the scenario's run; only those it declares are accepted."""
    scenario = SCENARIOS[name]
    unknown = set(options) - set(scenario.options)
    if unknown:
        raise ValueError(f"{name} takes no {', '.join(sorted(unknown))}")
    spec = topo or scenario.default_topo
    if scenario.modes and mode not in scenario.modes:
        raise ValueError(f"{name} needs a mode: one of {', '.join(scenario.modes)}")
    started = time.monotonic()
    try:
        lab = Lab(spec, hub=hub, probe_port=scenario.probe_port(mode or ""))
        if mode is not None and scenario.config is not None:
            lab.config = scenario.config(mode, lab.topo)
    except (ValueError, FileNotFoundError) as exc:
        raise ValueError(f"--topo {spec!r}: {exc}") from None
    label = f" ({mode})" if mode else ""
    log(f"lab: {lab.info.name}{label}: {lab.info.switches} switches, {lab.info.hosts} hosts, "
        f"{lab.info.switch_links} links")
    # Starting OVS, the controller and Mininet and waiting for LLDP takes up to a minute.
    progress.phase("starting the lab")
    with lab:
        log(f"lab: topology discovered in {time.monotonic() - started:.1f}s; running {name}{label}")
        progress.phase(f"running {name}")
        result = scenario.run(lab, mode, **options) if mode else scenario.run(lab)
        progress.phase("tearing the lab down")
    return {**result, "duration_s": round(time.monotonic() - started, 1)}
