"""Fabric scenarios: a link is cut, or a switch degrades, under a 1000 packets/s stream.

A numbered UDP stream (``lab.udp_stream``) runs from the first host to the
host farthest from it, so its path crosses the fabric. Modes, as for the
service scenarios:

- ``predictive``: fast-failover groups, switch probes and the predictive
  engine (critical switches are drained before they fail);
- ``health``: the same, without the engine's probability: critical switches
  are drained on measured health alone;
- ``none``: no fast failover; the controller reroutes when it hears of the failure.

**link-cut**: a link on the stream's path goes down (both ends) without
warning. Nothing can predict it, so prediction is not what its modes vary;
they vary the two things that can recover the stream, one at a time:

- ``groups``: fast-failover groups, controller up;
- ``controller``: no groups, controller up (it reroutes on the port-down event);
- ``groups-alone``: fast-failover groups, controller stopped before the cut;
- ``none``: no groups, controller stopped: nothing recovers the stream.

Reported is the outage in milliseconds (``gap_ms``: the longest run of lost
packets at 1000 packets/s).

**degrading-switch**: the stream's transit switch slows down step by step
(its egress ports are rate-limited below the stream's rate, so a queue, and
with it latency, builds up), then drops packets, then dies (all its links go
down). Reported: packets lost, and when its paths moved relative to the death.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from typing import Any

from lab.network import Lab
from lab.ovs import tx_packets
from lab.service_scenarios import MODES
from shadownet import progress

RATE = 1000.0


LINK_CUT_MODES = ("groups", "controller", "groups-alone", "none")


def link_cut_config(mode: str, topo: Any) -> dict[str, Any]:
    """Fast-failover groups on or off; whether the controller stays up is the run's."""
    if mode not in LINK_CUT_MODES:
        raise ValueError(f"mode must be one of {', '.join(LINK_CUT_MODES)}, got {mode!r}")
    return {"reconcile": {"interval": 1},
            "forwarding": {"fast_failover": mode in ("groups", "groups-alone")}}


def switch_config(mode: str, topo: Any, critical: list[int] | str | None = None
                  ) -> dict[str, Any]:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    cfg: dict[str, Any] = {
        "reconcile": {"interval": 1},
        "prediction": {"enabled": mode == "predictive"},
        "forwarding": {"fast_failover": mode != "none"},
    }
    if critical:
        cfg["switch_drain"] = {"critical": critical}
    return cfg


class Stream:
    """One UDP stream between two lab hosts; ``result()`` waits for the receiver."""

    def __init__(self, lab: Lab, src: Any, dst: Any, seconds: float, sport: int = 0) -> None:
        self._out = lab.workdir / f"stream-{src.name}-{dst.name}.json"
        self._fh = self._out.open("w")
        self._recv = dst.popen([sys.executable, "-m", "lab.udp_stream", "receive",
                                "--rate", str(RATE), "--seconds", str(seconds + 3)],
                               stdout=self._fh)
        time.sleep(0.5)
        self._send = src.popen([sys.executable, "-m", "lab.udp_stream", "send", dst.IP(),
                                "--rate", str(RATE), "--seconds", str(seconds),
                                "--sport", str(sport)])

    def result(self) -> dict[str, Any]:
        self._send.wait(timeout=120)
        self._recv.wait(timeout=120)
        self._fh.close()
        try:
            result: dict[str, Any] = json.loads(self._out.read_text())
            return result
        except ValueError:
            return {"error": "receiver printed no result"}


def far_pair(lab: Lab) -> tuple[Any, Any, list[int]]:
    """The first host and the host whose path from it is longest, with that path."""
    src = lab.net.hosts[0]
    best: tuple[Any, list[int]] | None = None
    for dst in lab.net.hosts[1:]:
        path = lab.controller.get(f"/api/path?src={src.IP()}&dst={dst.IP()}")["switches"]
        if best is None or len(path) > len(best[1]):
            best = (dst, path)
    assert best is not None
    return src, best[0], best[1]


def link_cut(lab: Lab, mode: str) -> dict[str, Any]:
    lab.net.pingAll(timeout="3")
    src, dst, path = far_pair(lab)
    if len(path) < 2:
        raise ValueError("link-cut needs a topology where the stream crosses a link")
    controller_up = mode in ("groups", "controller")
    stream = Stream(lab, src, dst, seconds=6)
    time.sleep(2)
    if not controller_up:
        # Stopped before the cut: only what the switches already hold can help.
        lab.controller.stop()
    a, b = f"s{path[0]}", f"s{path[1]}"
    lab.net.configLinkStatus(a, b, "down")
    progress.phase(f"{a}-{b} cut, stream running", 4)
    result = stream.result()
    out = {"mode": mode, "cut": f"{a}-{b}", "controller_up": controller_up,
           "path_before": path, **result}
    if controller_up:
        out["path_after"] = lab.controller.get(
            f"/api/path?src={src.IP()}&dst={dst.IP()}")["switches"]
    return out


def set_switch_rate(switch: Any, rate_kbit: int | None) -> None:
    """Rate-limit every port of a switch (a queue builds when traffic exceeds it)."""
    for intf in switch.intfList():
        if intf.name == "lo":
            continue
        if rate_kbit is None:
            cmd = ["tc", "qdisc", "del", "dev", intf.name, "root"]
        else:
            cmd = ["tc", "qdisc", "replace", "dev", intf.name, "root", "tbf",
                   "rate", f"{rate_kbit}kbit", "burst", "4kb", "latency", "2000ms"]
        subprocess.run(cmd, capture_output=True, check=False)


# degrading-switch: (seconds, rate limit in kbit/s or None) on the transit switch; then death.
SWITCH_STEPS = [(4, None), (8, 1100), (6, 700)]
SWITCH_DEAD_S = 5.0
SWITCH_WARMUP_S = 35.0  # probes and the engine need a baseline of the healthy switch


def degrading_switch_config(mode: str, topo: Any) -> dict[str, Any]:
    """Every switch is critical: the controller is not told which one will fail."""
    return switch_config(mode, topo, critical="all")


def _pick_sport(lab: Lab, src: Any, dst: Any, switch: str, via: str) -> int:
    """A source port whose flow crosses the critical switch, not its sampled bypass.

    A few percent of flows ride the bypass all the time (hashed per flow),
    so a stream that should cross the switch is checked on its egress counter.
    """
    for sport in range(40000, 40020):
        before = tx_packets(switch, via)
        Stream(lab, src, dst, seconds=0.3, sport=sport).result()
        if tx_packets(switch, via) - before >= 250:
            return sport
    raise ValueError(f"no stream from {src.name} to {dst.name} crosses {via}")


def degrading_switch(lab: Lab, mode: str, rng: random.Random | None = None) -> dict[str, Any]:
    """Degrade one transit switch of the stream's path, picked at random: every switch is
    critical, so the controller cannot know which one it will be."""
    lab.net.pingAll(timeout="3")
    src, dst, path = far_pair(lab)
    if len(path) < 3:
        raise ValueError(f"degrading-switch needs a transit switch (stream path {path})")
    victim = (rng or random.Random()).choice(path[1:-1])
    switch = lab.net.get(f"s{victim}")
    nxt = lab.net.get(f"s{path[path.index(victim) + 1]}")
    egress = lab.net.linksBetween(switch, nxt)[0]
    via = egress.intf1.name if egress.intf1.node is switch else egress.intf2.name
    progress.phase(f"finding a stream through {via}")
    sport = _pick_sport(lab, src, dst, switch.name, via)
    progress.wait(SWITCH_WARMUP_S, "warmup")
    total = sum(s for s, _ in SWITCH_STEPS) + SWITCH_DEAD_S
    stream = Stream(lab, src, dst, seconds=total, sport=sport)
    try:
        for seconds, rate in SWITCH_STEPS:
            set_switch_rate(switch, rate)
            progress.wait(seconds, f"degrading: {rate} kbit/s" if rate else "degrading: healthy")
        died_at = time.time()
        for neighbour in {n for n in lab.net.switches if lab.net.linksBetween(switch, n)}:
            lab.net.configLinkStatus(switch.name, neighbour.name, "down")
        progress.phase("switch dead", SWITCH_DEAD_S)
        result = stream.result()
    finally:
        set_switch_rate(switch, None)
    drain_state = lab.controller.get("/api/switches/drain")
    drained = [e for e in drain_state["events"] if e.get("kind") == "drained"]
    drains = [e for e in drained if e.get("switch") == victim]
    out = {"mode": mode, "victim": f"s{victim}", "stream_sport": sport, **result,
           "drains": len(drains),
           "other_drains": sorted(f"s{e.get('switch')}" for e in drained
                                  if e.get("switch") != victim),
           "drained_s_before_death": round(died_at - drains[0]["ts"], 1) if drains else None}
    if drains:
        out["drain_reason"] = drains[0].get("reason")
    others = [e for e in drained if e.get("switch") != victim]
    if others:  # why another switch went: the first such drain, with its time
        out["other_drain_reason"] = {**(others[0].get("reason") or {}),
                                     "s_after_death": round(others[0]["ts"] - died_at, 1)}
    return out
