"""shadownet-manager refuses bad input with one line and exit status 2 (real processes)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from lab.controller_process import free_port


def run_manager(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "controller.manager", *args],
        capture_output=True, text=True, timeout=timeout,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, needle: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("shadownet-manager: error:")
    assert needle in lines[0]
    assert "Traceback" not in result.stderr


def test_unknown_app(tmp_path):
    result = run_manager("no_such.app", "--db-url", f"sqlite:///{tmp_path}/s.db")
    assert_one_line_error(result, "unknown app module 'no_such.app'")


def test_port_in_use(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = run_manager("--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", str(port),
                             "--db-url", f"sqlite:///{tmp_path}/s.db")
    assert_one_line_error(result, f"OpenFlow port {port} on 127.0.0.1 is already in use")


def test_rest_port_in_use(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = run_manager("--ofp-tcp-listen-port", str(free_port()), "--wsapi-port", str(port),
                             "--db-url", f"sqlite:///{tmp_path}/s.db")
    assert_one_line_error(result, f"REST API port {port}")


def test_missing_config_file(tmp_path):
    result = run_manager("--config-file", str(tmp_path / "nope.yaml"))
    assert_one_line_error(result, "not found")


def test_invalid_config_names_key_and_type(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("reconcile:\n  interval: soon\n")
    result = run_manager("--config-file", str(bad))
    assert_one_line_error(result, "reconcile.interval: must be a number, got str 'soon'")


def test_unreachable_database():
    result = run_manager("--db-url", "postgresql://127.0.0.1:1/shadownet",
                         "--ofp-tcp-listen-port", str(free_port()))
    assert_one_line_error(result, "cannot reach database")


def test_bad_log_level_from_cli(tmp_path):
    result = run_manager("--log-level", "LOUD", "--db-url", f"sqlite:///{tmp_path}/s.db")
    assert_one_line_error(result, "controller.log_level: must be one of DEBUG")


@pytest.mark.parametrize("hub", ["eventlet", "native"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_starts_serves_and_stops_cleanly_on_signal(tmp_path, hub, sig):
    api = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.manager", "--hub", hub,
         "--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", str(free_port()),
         "--wsapi-port", str(api), "--db-url", f"sqlite:///{tmp_path}/s.db"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        for _ in range(150):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{api}/api/health", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("controller never answered")
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "state saved" in out and "Traceback" not in out
    assert (tmp_path / "s.db").exists()


@pytest.mark.parametrize("hub,green", [("eventlet", True), ("native", False)])
def test_eventlet_hub_makes_sockets_cooperative(hub, green):
    """Under eventlet a blocking socket call must yield, or one slow health probe
    freezes LLDP and every other green thread (links then time out)."""
    code = ("import socket; from controller.manager import patch_hub; "
            f"patch_hub({hub!r}); import eventlet.patcher as p; "
            "print(p.is_monkey_patched('socket'), p.is_monkey_patched('thread'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == [str(green), str(green)]


def test_lldp_round_over_a_thousand_ports_fits_inside_the_link_timeout(monkeypatch):
    from os_ken.topology.switches import Switches

    from controller.manager import tune_link_discovery

    monkeypatch.setattr(Switches, "LLDP_SEND_GUARD", Switches.LLDP_SEND_GUARD)
    untuned_round = 130 * Switches.LLDP_SEND_GUARD  # zoo:Bics' ports, os-ken's pacing
    tune_link_discovery(Switches)
    tuned_round = 1000 * Switches.LLDP_SEND_GUARD + Switches.LLDP_SEND_PERIOD_PER_PORT
    # A busy machine can stretch every sleep several times over: keep 3x margin.
    assert untuned_round * 3 > Switches.LINK_TIMEOUT
    assert tuned_round * 3 < Switches.LINK_TIMEOUT
