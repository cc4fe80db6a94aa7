"""The lab scenarios and ``shadownet lab run`` report progress, on fakes: no OVS, no Mininet.

The scenarios run end to end against a fake lab (hosts whose commands and
processes answer with canned output, a controller whose REST answers are
canned) under a fake clock, so a 2-minute scenario takes milliseconds. The
tests check the phases a user sees and that the results are still computed
as before.
"""

from __future__ import annotations

import io
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from lab import mirror_scenario as ms
from lab import scenarios
from lab import service_scenarios as ss
from lab import switch_scenarios as sw
from lab.ovs import LabError
from shadownet.cli import main
from shadownet.progress import Progress
from tests.unit.fakes import FakeClock


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    """Every sleep (the scenarios' own and the reporter's) advances a fake monotonic clock."""
    return FakeClock.installed(monkeypatch)


@pytest.fixture
def report(clock):
    """An active reporter writing plain lines, every tick (interval 0), to a buffer."""
    out = io.StringIO()
    with Progress("test", stream=out, clock=clock, tty=False, interval=0) as p:
        p.out = out  # type: ignore[attr-defined]
        yield p


# --- the fake lab --------------------------------------------------------------------------


class Proc:
    pid = 4242

    def __init__(self, stdout: str = "") -> None:
        self._stdout = stdout

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def kill(self) -> None:
        pass

    def communicate(self, timeout: float | None = None) -> tuple[str, None]:
        return self._stdout, None


IPERF = json.dumps({"end": {"sum_received": {"bits_per_second": 9e8}}})
LONG_IPERF = json.dumps({"start": {"connected": [{"local_port": 5555}]},
                         "end": {"sum_sent": {"bytes": 1000}}})
REQUESTS = [{"ok": True, "t": 0.0, "node": "h2"}, {"ok": False, "t": 1e12, "node": "h2"}]
STREAM = {"sent": 100, "received": 100, "lost": 0, "gap_ms": 3.0}


class Host:
    def __init__(self, n: int) -> None:
        self.name, self.n = f"h{n}", n
        self.cmds: list[str] = []

    def IP(self) -> str:  # noqa: N802 - Mininet's name
        return f"10.0.0.{self.n}"

    def cmd(self, command: str) -> str:
        self.cmds.append(command)
        if command.startswith("iperf3 -c"):
            return IPERF
        if command == "ip neigh show":
            return "10.0.0.9 dev eth0 lladdr 00:00:00:00:00:09 REACHABLE\n"
        if command.startswith("ss -Htn") and self.n == 1:
            return "0 0 10.0.0.1:5555 10.0.0.3:5201\n"
        if command.startswith("dig +short") and "nosuch" not in command:
            return "10.0.0.3\n"
        return ""

    def popen(self, args: list[str], stdout: Any = None) -> Proc:
        """The client, the stream receiver and iperf3 answer as the real ones would."""
        if "lab.request_client" in args:
            stdout.write(json.dumps(REQUESTS))
        elif "receive" in args:
            stdout.write(json.dumps(STREAM))
        elif args[0] == "iperf3":
            return Proc(LONG_IPERF)
        return Proc()


class Intf:
    def __init__(self, node: Any, name: str) -> None:
        self.node, self.name = node, name


class Link:
    def __init__(self, a: Any, b: Any) -> None:
        self.intf1, self.intf2 = Intf(a, f"{a.name}-eth{b.name}"), Intf(b, f"{b.name}-eth{a.name}")


class Switch:
    def __init__(self, n: int) -> None:
        self.name = f"s{n}"


class Net:
    """ring,4: s1-s2-s3-s4-s1, host hN on sN."""

    def __init__(self, hosts: int = 4) -> None:
        self.hosts = [Host(i) for i in range(1, hosts + 1)]
        self.switches = [Switch(i) for i in range(1, 5)]
        self.downs: list[tuple[str, str]] = []

    def pingAll(self, timeout: str = "") -> float:  # noqa: N802
        return 0.0

    def get(self, name: str) -> Switch:
        return next(s for s in self.switches if s.name == name)

    def linksBetween(self, a: Switch, b: Switch) -> list[Link]:  # noqa: N802
        i, j = int(a.name[1:]), int(b.name[1:])
        return [Link(a, b)] if (i - j) % 4 in (1, 3) else []

    def configLinkStatus(self, a: str, b: str, status: str) -> None:  # noqa: N802
        self.downs.append((a, b))


class Controller:
    def __init__(self) -> None:
        self.now = time.time()
        self.stopped = False

    def stop(self) -> int:
        self.stopped = True
        return 0

    def get(self, path: str) -> Any:
        assert not self.stopped, f"GET {path} from a stopped controller"
        if path.startswith("/api/path"):
            return {"switches": [1, 2, 3]}
        if path == "/api/services/events":
            return [{"kind": "switchover", "ts": self.now - 5, "reason": {"health": 0.2}}]
        if path == "/api/services":
            return [{"name": "web", "health": {},
                     "thresholds": {"enter_health": 0.4, "enter_probability": 0.8}}]
        if path.startswith("/api/switches/"):  # the drain state, whatever its name this week
            return {"events": [{"kind": "drained", "switch": 2, "ts": self.now - 3,
                                "reason": "predicted"}]}
        raise AssertionError(f"unexpected GET {path}")


class Agent:
    def __init__(self, hosts: list[Host]) -> None:
        self.hosts = hosts

    def request(self, path: str, token: str | None = None) -> tuple[int, Any]:
        name = path.split("/")[3]
        if path.endswith("/state"):
            conns = [{"proto": "tcp", "state": "ESTABLISHED", "orig_ip": "10.0.0.1",
                      "orig_port": 5555, "resp_ip": "10.0.0.3", "resp_port": 5201,
                      "orig": {"bytes": 1046}}] if name == "h1" else []
            dns = [{"name": n, "rcode": "NOERROR", "answers": [{"type": "A", "data": "10.0.0.3"}]}
                   for n in ms.NAMES]
            return 200, {"arp": [{"ip": "10.0.0.9", "mac": "00:00:00:00:00:09"}],
                         "connections": conns, "dns": dns}
        return 200, {"kernel_drops": 0, "packets": 10,
                     "lag": {"samples": 4, "p50_ms": 0.2, "p99_ms": 0.9},
                     "shunts": {"shunts_total": 1, "folded_packets": 7}}


class FakeLab:
    def __init__(self, workdir: Path, hosts: int = 4) -> None:
        self.workdir = workdir
        self.net = Net(hosts)
        self.controller = Controller()
        self.agents = 0

    def start_agent(self, tokens: dict | None = None) -> Agent:
        self.agents += 1
        return Agent(self.net.hosts)

    def wait_for_mirrors(self, count: int) -> list:
        return []

    def stop_agent(self) -> None:
        pass


def phases(report: Progress) -> list[str]:
    return report.out.getvalue().splitlines()  # type: ignore[attr-defined]


def test_every_lab_module_imports():
    for module in (scenarios, ss, sw, ms):
        assert module.__name__.startswith("lab.")
    from lab import cli  # noqa: F401


# --- service scenarios ---------------------------------------------------------------------


def test_degrading_node_counts_down_its_warmup_steps_and_death(tmp_path, clock, report):
    out = ss.degrading_node(FakeLab(tmp_path), "predictive")
    assert out["failed_before_death"] == 0 and out["failed_after_death"] == 1
    assert out["migrations"] == 1 and out["migration_reason"] == {"health": 0.2}
    lines = phases(report)
    assert "[test] starting the servers · 0s elapsed" in lines
    assert "[test] warmup 29s/30s · 29s elapsed" in lines
    assert "[test] degrading: +0 ms, 0% loss 0s/5s · 30s elapsed" in lines
    assert "[test] degrading: +200 ms, 30% loss 3s/4s · 58s elapsed" in lines
    assert "[test] primary dead 9s/10s · 1m08s elapsed" in lines
    # The scenario still takes its real length: warm-up, the steps and the death.
    assert clock.now == pytest.approx(ss.WARMUP_S + sum(s for s, _, _ in ss.DEGRADE_STEPS)
                                      + ss.DEAD_S)


def test_noise_only_counts_down_the_noisy_minute(tmp_path, clock, report):
    out = ss.noise_only(FakeLab(tmp_path), "health")
    assert out["requests"] == 2 and out["migrations"] == 1 and out["trips"] == 0
    assert out["margin"]["enter_health"] == 0.4
    lines = phases(report)
    assert "[test] warmup 0s/30s · 0s elapsed" in lines
    assert "[test] noisy node under load 59s/1m00s · 1m29s elapsed" in lines
    assert clock.now == pytest.approx(ss.WARMUP_S + ss.NOISE_S)


# --- fabric scenarios ----------------------------------------------------------------------


def test_link_cut_says_which_link_is_down(tmp_path, clock, report):
    lab = FakeLab(tmp_path)
    out = sw.link_cut(lab, "groups")
    assert out["cut"] == "s1-s2" and out["gap_ms"] == 3.0 and lab.net.downs == [("s1", "s2")]
    assert any(line.startswith("[test] s1-s2 cut, stream running 0s/4s") for line in phases(report))


def test_link_cut_with_groups_alone_stops_the_controller_before_the_cut(tmp_path, clock,
                                                                       report):
    lab = FakeLab(tmp_path)
    out = sw.link_cut(lab, "groups-alone")
    assert lab.controller.stopped and out["controller_up"] is False
    assert "path_after" not in out and lab.net.downs == [("s1", "s2")]


def test_degrading_switch_shows_its_search_warmup_and_steps(tmp_path, clock, report, monkeypatch):
    rates: list[int | None] = []
    counter = iter(range(0, 10_000, 300))
    monkeypatch.setattr(sw, "tx_packets", lambda switch, via: next(counter))
    monkeypatch.setattr(sw, "set_switch_rate", lambda switch, rate: rates.append(rate))
    lab = FakeLab(tmp_path)
    out = sw.degrading_switch(lab, "predictive")
    assert out["stream_sport"] == 40000 and out["drains"] == 1 and out["lost"] == 0
    assert rates == [None, 1100, 700, None]  # the steps, then the limit removed
    assert sorted(lab.net.downs) == [("s2", "s1"), ("s2", "s3")]
    lines = phases(report)
    assert any(line.startswith("[test] finding a stream through s2-eths3") for line in lines)
    assert any(line.startswith("[test] warmup 34s/35s") for line in lines)
    assert any(line.startswith("[test] degrading: healthy 3s/4s") for line in lines)
    assert any(line.startswith("[test] degrading: 1100 kbit/s 7s/8s") for line in lines)
    assert any(line.startswith("[test] degrading: 700 kbit/s 0s/6s") for line in lines)
    assert any(line.startswith("[test] switch dead 0s/5s") for line in lines)


# --- the mirror scenario -------------------------------------------------------------------


def test_mirror_scenario_reports_its_phases_and_still_agrees(tmp_path, clock, report):
    out = ms.mirror_scenario(FakeLab(tmp_path, hosts=3))
    assert out["arp_agreement_pct"] == 100.0
    assert out["tcp_established_agreement_pct"] == 100.0
    assert out["dns_agreement_pct"] == 100.0
    assert out["shunt_bytes_vs_iperf"] == 1.046 and out["throughput_ratio"] == 1.0
    names = [line.removeprefix("[test] ").split(" · ")[0] for line in phases(report)]
    expected = ["throughput, mirrors off 0s/4s", "starting the agent and the mirrors",
                "traffic: ping, curl, dig", "throughput, mirrors on 0s/4s",
                "comparing kernels with mirrors under load", "shunt counters 5s/6s",
                "throughput, mirrors off again 0s/4s"]
    assert [n for n in expected if n in names] == expected


# --- run_scenario and the CLI ---------------------------------------------------------------


class LabStub:
    """Stands in for ``lab.network.Lab``: records what run_scenario does with it."""

    made: list[LabStub] = []

    def __init__(self, spec: str, hub: str | None = None, probe_port: bool = False) -> None:
        from topologies.registry import build_topo

        self.topo, self.info = build_topo(spec)
        self.config: dict | None = None
        self.entered = self.exited = False
        LabStub.made.append(self)

    def __enter__(self) -> LabStub:
        self.entered = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.exited = True


def test_run_scenario_phases_frame_the_lab(monkeypatch, clock, report):
    def fake_run(lab, mode):
        assert lab.entered and not lab.exited
        time.sleep(12)
        return {"mode": mode, "lost": 0}

    monkeypatch.setattr(scenarios, "Lab", LabStub)
    monkeypatch.setitem(scenarios.SCENARIOS, "degrading-switch", scenarios.Scenario(
        fake_run, "ring,4", ("predictive",), lambda mode, topo: {"mode": mode}))
    logged: list[str] = []
    result = scenarios.run_scenario("degrading-switch", mode="predictive", log=logged.append)
    assert result == {"mode": "predictive", "lost": 0, "duration_s": 12.0}
    assert LabStub.made[-1].exited and LabStub.made[-1].config == {"mode": "predictive"}
    assert [line.split(" · ")[0] for line in phases(report)] == [
        "[test] starting the lab", "[test] running degrading-switch", "[test] tearing the lab down"]
    assert logged[0] == "lab: ring(4) (predictive): 4 switches, 4 hosts, 4 links"
    assert logged[1] == "lab: topology discovered in 0.0s; running degrading-switch (predictive)"


class Calls(list[str | None]):
    """The modes run, in order, and the options each run was given."""

    def __init__(self) -> None:
        super().__init__()
        self.options: list[dict[str, object]] = []


@pytest.fixture
def fake_runs(monkeypatch, clock):
    """``shadownet lab run`` with run_scenario replaced: each mode warms up for 30 s."""
    monkeypatch.setattr(signal, "signal", lambda *a: None)  # leave pytest's SIGTERM alone
    calls = Calls()

    def run_one(name, topo, mode, hub, log, **options):
        from shadownet import progress

        calls.append(mode)
        calls.options.append(options)
        log(f"lab: {topo} ({mode})")
        progress.wait(30, "warmup")
        if mode == "none" and name == "link-cut":
            raise LabError("OVS went away")
        return {"mode": mode, "failed": 0, "migrations": 0}

    monkeypatch.setattr(scenarios, "run_scenario", run_one)
    return calls


def test_every_mode_plays_the_same_drawn_pattern(fake_runs, capsys):
    assert main(["lab", "run", "pattern", "--kind", "ramp", "--quiet"]) == 0
    seen = fake_runs.options
    assert fake_runs == ["predictive", "health", "none"]
    assert len({o["seed"] for o in seen}) == 1 and all(o["kind"] == "ramp" for o in seen)
    assert main(["lab", "run", "pattern", "--seed", "7", "--quiet"]) == 0
    assert seen[-1] == {"seed": 7}


def test_options_a_scenario_does_not_take_are_refused(fake_runs, capsys):
    assert main(["lab", "run", "link-cut", "--seed", "3"]) == 2
    assert capsys.readouterr().err.strip() == "shadownet: error: link-cut takes no --seed"
    assert fake_runs == []


def test_lab_run_shows_each_mode_and_keeps_stdout_for_the_result(fake_runs, capsys):
    assert main(["lab", "run", "degrading-node", "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)  # stdout is the JSON document and nothing else
    assert [m["mode"] for m in doc["modes"]] == ["predictive", "health", "none"]
    lines = err.splitlines()
    assert lines[:2] == ["lab: linear,3 (predictive)",
                         "[degrading-node] mode 1/3 predictive · warmup 0s/30s · 0s elapsed"]
    assert "[degrading-node] mode 2/3 health · warmup 0s/30s · 30s elapsed · ~1m left" in lines
    assert lines[-1] == "[degrading-node] done: 3 modes in 1m30s"


def test_lab_run_quiet_prints_no_progress(fake_runs, capsys):
    assert main(["lab", "run", "noise-only", "--mode", "predictive", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith("noise-only on linear,3: mode=predictive")


def test_a_failed_lab_run_ends_with_its_error(fake_runs, capsys):
    assert main(["lab", "run", "link-cut"]) == 1
    _, err = capsys.readouterr()
    assert err.splitlines()[-2:] == ["[link-cut] mode 4/4 none · warmup 20s/30s · 1m50s elapsed "
                                     "· ~10s left", "shadownet: error: OVS went away"]
    assert fake_runs == ["groups", "controller", "groups-alone", "none"]


def test_a_mode_the_scenario_does_not_have_is_refused(fake_runs, capsys):
    assert main(["lab", "run", "link-cut", "--mode", "predictive"]) == 2
    _, err = capsys.readouterr()
    assert err.strip() == ("shadownet: error: link-cut has no mode 'predictive': one of "
                           "groups, controller, groups-alone, none")
    assert fake_runs == []


def test_a_bad_topology_is_still_one_line(monkeypatch, capsys):
    monkeypatch.setattr(signal, "signal", lambda *a: None)
    assert main(["lab", "run", "degrading-node", "--topo", "ring,two"]) == 2
    _, err = capsys.readouterr()
    assert len(err.splitlines()) == 1
    assert err.startswith("shadownet: error: --topo 'ring,two': bad topology spec")
