"""Service scenarios: a node behind a virtual IP degrades (or only looks noisy).

Both run a real HTTP service on Mininet hosts: the second host is the
primary, the later ones are standbys, and the first host is a client that
sends requests to the VIP at a fixed rate (``lab.request_client``). They run
in one of three modes, so what prediction buys is visible side by side:

- ``predictive``: probes plus the predictive engine; the service moves when
  the node's failure probability or health crosses its thresholds;
- ``health``: the same probes and thresholds without prediction
  (``prediction.enabled: false``): the one difference is the engine's
  probability, so what prediction buys is what separates the two;
- ``none``: no probes, no fast failover: nothing moves the service.

**degrading-node**: the primary's answers slow down step by step (20 to 200 ms),
then it drops a growing share of packets (iptables ``statistic``), then it
dies (server killed, every packet dropped). Reported: failed requests, and
when the service moved relative to the death.

**noise-only**: the primary's latency jitters and it drops 1 % of packets for
the whole run, but nothing fails. Reported: switchovers (the right answer is
0), and the margin: the primary's lowest health and highest failure
probability while the client ran, beside the levels that would have tripped it.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from lab.network import Lab
from shadownet import progress

VIP = "10.0.0.100"
MODES = ("predictive", "health", "none")
RATE = 10.0  # client requests per second
WARMUP_S = 30.0  # the predictive engine needs about 20 intervals of baseline

# degrading-node: (seconds, server delay, packet loss); then death.
DEGRADE_STEPS = [(5, 0.0, 0.0), (4, 0.02, 0.0), (4, 0.05, 0.0), (4, 0.1, 0.0),
                 (4, 0.2, 0.0), (4, 0.2, 0.1), (4, 0.2, 0.3)]
DEAD_S = 10.0
NOISE_S = 60.0
NOISE_JITTER_S = 0.03
NOISE_LOSS = 0.01


@dataclass(frozen=True)
class LabHost:
    name: str
    ip: str
    mac: str

    def node(self) -> dict[str, str]:
        return {"name": self.name, "ip": self.ip, "mac": self.mac}


def lab_hosts(topo: Any) -> list[LabHost]:
    """Hosts with the addresses Mininet will give them (in order, autoSetMacs)."""
    from mininet.util import ipAdd, macColonHex

    return [LabHost(name, ipAdd(i), macColonHex(i)) for i, name in enumerate(topo.hosts(), 1)]


def service_config(mode: str, topo: Any) -> dict[str, Any]:
    """The controller config for one mode: the service, and how it may react."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    hosts = lab_hosts(topo)
    if len(hosts) < 3:
        raise ValueError("service scenarios need at least 3 hosts (client, primary, standby)")
    service: dict[str, Any] = {
        "name": "web", "vip": VIP, "port": 80, "mode": "stateful", "drain_seconds": 3,
        "primary": hosts[1].node(), "standbys": [h.node() for h in hosts[2:]],
    }
    if mode == "none":
        service["monitor"] = False  # steered, never probed: nothing moves it
    return {
        "services": [service],
        "reconcile": {"interval": 1},
        "node_probes": {"interval": 1},  # the scenarios last a minute: probe every second
        "prediction": {"enabled": mode == "predictive"},
        "forwarding": {"fast_failover": mode != "none"},
    }


class ServiceLab:
    """The servers, the client and the degradation knobs of one scenario run."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        hosts = lab.net.hosts
        self.client, self.primary, self.standbys = hosts[0], hosts[1], hosts[2:]
        self.control = {h.name: lab.workdir / f"delay-{h.name}" for h in hosts[1:]}
        self.pids: dict[str, int] = {}
        self._client_proc: Any = None
        self._client_out = lab.workdir / "requests.json"

    def start_servers(self) -> None:
        for host in [self.primary, *self.standbys]:
            self.control[host.name].write_text("0\n")
            proc = host.popen([sys.executable, "-m", "lab.http_node", host.name,
                               str(self.control[host.name])])
            self.pids[host.name] = proc.pid
        # Learn every host (as in a running network) and let the servers come up.
        self.lab.net.pingAll(timeout="3")

    def set_delay(self, delay: float, jitter: float = 0.0) -> None:
        self.control[self.primary.name].write_text(f"{delay} {jitter}\n")

    def set_loss(self, probability: float) -> None:
        """Drop this share of the packets the primary receives (replaces the last rule)."""
        self.primary.cmd("iptables -F INPUT")
        if probability > 0:
            self.primary.cmd("iptables -A INPUT -m statistic --mode random "
                             f"--probability {probability} -j DROP")

    def kill_primary(self) -> None:
        """The node dies: its server stops and it answers nothing, not even RSTs."""
        self.primary.cmd("iptables -F INPUT; iptables -A INPUT -j DROP")
        self.primary.cmd(f"kill -9 {self.pids[self.primary.name]}")

    def start_client(self, seconds: float) -> None:
        self._client_seconds = seconds
        self._client_fh = self._client_out.open("w")
        self._client_proc = self.client.popen(
            [sys.executable, "-m", "lab.request_client", f"http://{VIP}/",
             "--rate", str(RATE), "--seconds", str(seconds), "--timeout", "2"],
            stdout=self._client_fh)

    def client_results(self) -> list[dict[str, Any]]:
        self._client_proc.wait(timeout=self._client_seconds + 30)
        self._client_fh.close()
        try:
            results: list[dict[str, Any]] = json.loads(self._client_out.read_text())
            return results
        except ValueError:
            return []

    def switchovers(self) -> list[dict[str, Any]]:
        return [e for e in self.lab.controller.get("/api/services/events")
                if e["kind"] == "switchover"]


def request_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    failed = [r for r in results if not r["ok"]]
    served: dict[str, int] = {}
    for r in results:
        if r["ok"]:
            served[r["node"]] = served.get(r["node"], 0) + 1
    return {"requests": len(results), "failed": len(failed), "served_by": served}


def degrading_node(lab: Lab, mode: str) -> dict[str, Any]:
    slab = ServiceLab(lab)
    progress.phase("starting the servers")
    slab.start_servers()
    progress.wait(WARMUP_S, "warmup")  # probes and the engine learn the healthy node first
    total = sum(s for s, _, _ in DEGRADE_STEPS) + DEAD_S
    slab.start_client(total)
    for seconds, delay, loss in DEGRADE_STEPS:
        slab.set_delay(delay)
        slab.set_loss(loss)
        progress.wait(seconds, f"degrading: +{delay * 1000:.0f} ms, {loss:.0%} loss")
    died_at = time.time()
    slab.kill_primary()
    progress.wait(DEAD_S, "primary dead")  # the client runs this long after the death
    results = slab.client_results()
    moves = slab.switchovers()
    out = {"mode": mode, **request_summary(results)}
    out["failed_before_death"] = sum(1 for r in results if not r["ok"] and r["t"] < died_at)
    out["failed_after_death"] = out["failed"] - out["failed_before_death"]
    out["migrations"] = len(moves)
    out["migrated_s_before_death"] = (round(died_at - moves[0]["ts"], 1) if moves else None)
    # The first few failures, in seconds relative to the death, with their error.
    out["first_failures"] = [[round(r["t"] - died_at, 2), r["node"]]
                             for r in results if not r["ok"]][:5]
    if moves:
        out["migration_reason"] = event_reason(moves[0])
    out["switchover_events"] = [e["kind"] for e in lab.controller.get("/api/services/events")
                                if e["kind"] in ("switchover", "committed", "retired",
                                                 "verification_failed", "drain_expired")]
    return out


class HealthWatch:
    """Polls one node's health every second in the background: its worst moments.

    The controller keeps only the latest health per node; how close a run came
    to a trip is the lowest score and the highest failure probability seen.
    """

    def __init__(self, lab: Lab, node: str, period: float = 1.0) -> None:
        self.lab, self.node, self.period = lab, node, period
        self.lowest_health = 1.0
        self.highest_probability = 0.0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                services = self.lab.controller.get("/api/services")
            except OSError:
                continue  # a slow answer is no sample; the next one may come
            for svc in services:
                view = (svc.get("health") or {}).get(self.node)
                if view:
                    self.samples += 1
                    self.lowest_health = min(self.lowest_health, view["score"])
                    self.highest_probability = max(self.highest_probability,
                                                   view["failure_probability"])

    def margin(self, thresholds: dict[str, Any]) -> dict[str, Any]:
        return {"lowest_health": self.lowest_health, "enter_health": thresholds["enter_health"],
                "highest_probability": self.highest_probability,
                "enter_probability": thresholds["enter_probability"], "samples": self.samples}


def noise_only(lab: Lab, mode: str) -> dict[str, Any]:
    slab = ServiceLab(lab)
    progress.phase("starting the servers")
    slab.start_servers()
    slab.set_delay(0.0, NOISE_JITTER_S)
    slab.set_loss(NOISE_LOSS)
    progress.wait(WARMUP_S, "warmup")  # probes and the engine learn the healthy node first
    with HealthWatch(lab, slab.primary.name) as watch:
        slab.start_client(NOISE_S)
        progress.wait(NOISE_S, "noisy node under load")  # the client's run, counted down
        results = slab.client_results()
    moves = slab.switchovers()
    trips = [e for e in lab.controller.get("/api/services/events")
             if e["kind"] == "node_tripped"]
    [svc] = [s for s in lab.controller.get("/api/services") if s["name"] == "web"]
    out = {"mode": mode, **request_summary(results), "migrations": len(moves),
           "trips": len(trips), "margin": watch.margin(svc["thresholds"])}
    if trips:
        out["first_trip"] = {"node": trips[0]["node"], **event_reason(trips[0])}
    return out


def event_reason(event: dict[str, Any]) -> dict[str, Any]:
    reason = event.get("reason") or {}
    return {k: reason[k] for k in ("health", "failure_probability", "top_metrics",
                                   "weak_factors", "trigger") if k in reason}
