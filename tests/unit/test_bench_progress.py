"""The benchmarks report progress on stderr and keep stdout for their results.

Each benchmark's ``main`` runs for real with its slow or privileged parts
replaced (the lab, the controller, tshark, the engine's detectors), so the
wiring is checked without OVS, root or minutes of CPU.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.unit.fakes import FakeClock, load_bench

ROOT = Path(__file__).resolve().parents[2]


def load(name: str) -> ModuleType:
    return load_bench(name)


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    return FakeClock.installed(monkeypatch)


# --- noise_margin: repeated lab runs -------------------------------------------------------


def fake_noise_run(name: str, topo: Any = None, mode: Any = None, log: Any = print) -> dict:
    from shadownet import progress

    log("lab: fake lab up")
    progress.wait(30, "warmup")  # the scenario's own phase, under the benchmark's step
    return {"trips": 0, "migrations": 0, "failed": 0, "requests": 600,
            "margin": {"lowest_health": 0.8, "enter_health": 0.4,
                       "highest_probability": 0.1, "enter_probability": 0.8}}


def test_noise_margin_shows_runs_and_their_phases(monkeypatch, clock, capsys):
    bench = load("noise_margin")
    monkeypatch.setattr(bench, "run_scenario", fake_noise_run)
    assert bench.main(["--runs", "3", "--busy", "0"]) == 0
    out, err = capsys.readouterr()
    assert "[noise-margin]" not in out and "lab:" not in out
    assert [line[:7] for line in out.splitlines()] == ["run  1:", "run  2:", "run  3:",
                                                       "3 runs,"]
    lines = err.splitlines()
    assert lines[:3] == ["[noise-margin] run 1/3 · 0s elapsed", "lab: fake lab up",
                         "[noise-margin] run 1/3 · warmup 0s/30s · 0s elapsed"]
    assert "[noise-margin] run 1/3 · warmup 20s/30s · 20s elapsed" in lines
    assert "[noise-margin] run 3/3 · warmup 0s/30s · 1m00s elapsed · ~30s left" in lines
    assert lines[-1] == "[noise-margin] done: 3 runs in 1m30s"


def test_noise_margin_quiet(monkeypatch, clock, capsys):
    bench = load("noise_margin")
    monkeypatch.setattr(bench, "run_scenario", fake_noise_run)
    assert bench.main(["--runs", "1", "--busy", "0", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.startswith("run  1: trips 0")


# --- probe_loss_sim: many quick runs, for real ---------------------------------------------


def test_probe_loss_sim_progress_does_not_change_its_table(capsys):
    bench = load("probe_loss_sim")
    argv = ["--runs", "3", "--intervals", "30", "--loss", "0.01", "0.05"]
    assert bench.main(argv + ["--quiet"]) == 0
    quiet_out, quiet_err = capsys.readouterr()
    assert bench.main(argv) == 0
    out, err = capsys.readouterr()
    assert out == quiet_out and quiet_err == ""
    assert len(out.splitlines()) == 4  # two header lines, a row per loss level
    lines = err.splitlines()
    assert re.fullmatch(r"\[probe-loss-sim\] run 1/6 loss 1% · \d+s elapsed", lines[0])
    assert re.fullmatch(r"\[probe-loss-sim\] done: 6 runs in \d+s", lines[-1])


# --- predict_speed: four parts per run ------------------------------------------------------


def test_predict_speed_steps_through_its_parts(capsys):
    bench = load("predict_speed")
    bench.main(["--points", "4000", "--runs", "1", "--json"])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert set(doc) == {"windowed_gaussian", "rolling_zscore", "signals", "signals_model_gate"}
    assert doc["windowed_gaussian"]["ratio_vs_windowed_gaussian"] == 1.0
    assert all(d["median_pps"] > 0 for d in doc.values())
    assert "[predict-speed] run 1/4 windowed_gaussian" in err
    assert re.search(r"\[predict-speed\] done: 4 runs in \d+s\n$", err)
    bench.main(["--points", "4000", "--runs", "1", "--quiet"])
    out, err = capsys.readouterr()
    assert err == "" and out.startswith("4,000 points, 1 runs, one core")


# --- reroute: a step per link event ---------------------------------------------------------


class FakeForwarder:
    def __init__(self) -> None:
        self.hosts = type("Hosts", (), {"all": staticmethod(lambda: ["a", "b", "c"])})()
        self.table = type("Table", (), {"active_paths": staticmethod(lambda: [1, 2, 3])})()
        self.events: list[tuple[str, int]] = []

    def install_pair(self, a: str, b: str) -> list[int]:
        return [1, 2]

    def link_removed(self, link: int) -> None:
        self.events.append(("cut", link))

    def link_added(self, link: int) -> None:
        self.events.append(("restored", link))


def test_reroute_counts_link_events(monkeypatch, clock, capsys):
    bench = load("reroute")
    made: list[FakeForwarder] = []

    def build(topo: str, cached: bool = True) -> tuple[FakeForwarder, list[int]]:
        made.append(FakeForwarder())
        return made[-1], [1, 2, 3]

    monkeypatch.setattr(bench, "build", build)
    assert bench.main(["--topo", "Fake", "--repeat", "2"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("Fake: 3 links, 3 paths, 6 messages to install them\n")
    assert len(made[1].events) == 12  # the baseline: 3 links, cut and restored, twice
    assert err.splitlines() == ["[reroute] link 1/12 baseline · 0s elapsed",
                                "[reroute] done: 12 links in 0s"]


# --- packet_in_rate: against a fake controller ----------------------------------------------


def header(msg_type: int, length: int, xid: int) -> bytes:
    """An OpenFlow 1.3 message header."""
    return struct.pack("!BBHI", 4, msg_type, length, xid)


class FakeController:
    """Speaks just enough OpenFlow 1.3: handshake, then a packet-out per packet-in."""

    def __init__(self, workdir: Path, hub: str | None = None) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.ofp_port = self.server.getsockname()[1]
        self.conn: socket.socket | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Hang up, as a stopped controller would (the benchmark never closes its end)."""
        if self.conn is not None:
            self.conn.shutdown(socket.SHUT_RDWR)
        self.server.close()
        self.thread.join(timeout=5)

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        self.conn = conn
        with conn:
            conn.sendall(header(0, 8, 1) + header(5, 8, 2)
                         + header(18, 16, 3) + struct.pack("!HH4x", 13, 0))
            buf = b""
            frame = b"\x00" * 12 + b"\x08\x00"
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while len(buf) >= 8:
                    _, msg_type, length, xid = struct.unpack_from("!BBHI", buf)
                    if len(buf) < length:
                        break
                    buf = buf[length:]
                    if msg_type == 10:  # PACKET_IN
                        body = struct.pack("!IIH6x", 0xFFFFFFFF, 1, 0) + frame
                        try:
                            conn.sendall(header(13, 8 + len(body), xid) + body)
                        except OSError:
                            return


def test_packet_in_rate_shows_each_hub(monkeypatch, capsys):
    bench = load("packet_in_rate")
    monkeypatch.setattr(bench, "ControllerProcess", FakeController)
    monkeypatch.setattr(time, "sleep", lambda s: None)
    assert bench.main(["--seconds", "0.2", "--window", "4", "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert set(doc["packet_in_per_s"]) == {"native", "eventlet"}
    assert all(rate > 0 for rate in doc["packet_in_per_s"].values())
    names = [line.split(" · ")[:2] for line in err.splitlines()]
    assert names[:3] == [["[packet-in-rate] hub 1/2 native", "0s elapsed"],
                         ["[packet-in-rate] hub 1/2 native", "starting the controller"],
                         ["[packet-in-rate] hub 1/2 native", "packet-ins in flight 0s/0s"]]
    assert names[3][0] == "[packet-in-rate] hub 2/2 eventlet"
    assert err.splitlines()[-1].startswith("[packet-in-rate] done: 2 hubs in")


# --- mirror_throughput: rounds of modes in one lab ------------------------------------------


class Host:
    def __init__(self, name: str) -> None:
        self.name = name

    def cmd(self, command: str) -> str:
        return ""


class ThroughputLab:
    def __init__(self, topo: str) -> None:
        self.net = type("Net", (), {})()
        self.net.hosts = [Host("h1"), Host("h2")]
        self.net.pingAll = lambda timeout="": 0.0
        self.agents: list[list[str]] = []

    def __enter__(self) -> ThroughputLab:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def start_agent(self, args: list[str] | None = None) -> None:
        self.agents.append(args or [])

    def wait_for_mirrors(self, count: int) -> list:
        return []

    def stop_agent(self) -> None:
        pass


def test_mirror_throughput_steps_through_rounds_and_modes(monkeypatch, clock, capsys):
    bench = load("mirror_throughput")
    monkeypatch.setattr(bench, "Lab", ThroughputLab)
    monkeypatch.setattr(bench, "idle_ports", lambda lab, add: None)
    monkeypatch.setattr(bench, "iperf",
                        lambda client, server, seconds: time.sleep(seconds) or 900.0)
    assert bench.main(["--rounds", "2", "--seconds", "5"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "round 1      off:   900.0 Mbit/s"
    assert "[mirror-throughput]" not in out
    lines = err.splitlines()
    assert lines[0] == "[mirror-throughput] starting the lab · 0s elapsed"
    # iperf3's server gets a second first; each run is 5 s of iperf3 and 1-2 s of settling,
    # and in a log only one line per 10 s gets through.
    assert lines[1:] == ["[mirror-throughput] run 1/8 round 1 off · 1s elapsed",
                         "[mirror-throughput] run 3/8 round 1 shunt · 14s elapsed · ~45s left",
                         "[mirror-throughput] run 5/8 round 2 off · 28s elapsed · ~30s left",
                         "[mirror-throughput] run 7/8 round 2 shunt · 41s elapsed · ~15s left",
                         "[mirror-throughput] done: 8 runs in 55s"]


# --- mirror_replay: captures and their phases -----------------------------------------------


def test_mirror_replay_names_its_phases(monkeypatch, clock, capsys, tmp_path):
    bench = load("mirror_replay")
    monkeypatch.setattr(bench.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(bench, "run_tshark", lambda path: (0.01, {}))
    monkeypatch.setattr(bench.subprocess, "run",
                        lambda *a, **kw: subprocess.CompletedProcess(a, 0, "", ""))
    assert bench.main(["--only", "synthetic", "--connections", "20", "--repeat", "1",
                       "--json", "--keep", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert [r["capture"] for r in doc["results"]] == ["synthetic"]
    assert doc["results"][0]["tcp_connections"] == 20
    assert err.splitlines() == [
        "[mirror-replay] tshark start-up · 0s elapsed",
        "[mirror-replay] capture 1/1 synthetic · 0s elapsed",
        "[mirror-replay] capture 1/1 synthetic · writing 20 connections · 0s elapsed",
        "[mirror-replay] capture 1/1 synthetic · replaying 1x in process · 0s elapsed",
        "[mirror-replay] capture 1/1 synthetic · replaying end to end · 0s elapsed",
        "[mirror-replay] capture 1/1 synthetic · tshark 1x · 0s elapsed",
        "[mirror-replay] done: 1 capture in 0s",
    ]
