"""SIGHUP reloads: the diff rules, the core applying them, and a real manager process."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller import config
from controller.config_reload import diff
from controller.core import ControllerCore
from lab.controller_process import free_port
from shadownet.access import add_token
from tests.unit.fakes import connect_ring
from tests.unit.packets import ip, mac
from tests.unit.test_services_steering import VIP, syn

WEB = {"name": "web", "vip": VIP, "port": 80, "mode": "stateful",
       "primary": {"name": "h2", "ip": ip(2), "mac": mac(2)},
       "standbys": [{"name": "h3", "ip": ip(3), "mac": mac(3)}]}


def cfg(**sections) -> dict:
    doc = {k: v for k, v in sections.items() if k != "services"}
    out = config.validate(doc | {"services": sections.get("services", [])})
    return out


# --- the rules --------------------------------------------------------------------
def test_same_config_is_no_change():
    assert diff(cfg(), cfg()).empty and diff(cfg(), cfg()).summary() == "no change"


def test_keys_that_need_a_restart_are_kept_at_their_running_value():
    running = cfg(controller={"ofp_tcp_listen_port": 6653})
    change = diff(running, cfg(controller={"ofp_tcp_listen_port": 6999, "log_level": "DEBUG"},
                               switch_drain={"critical": [3], "confirm": 4}))
    assert change.restart == ["controller.ofp_tcp_listen_port", "switch_drain.critical"]
    assert change.applied == ["controller.log_level", "switch_drain.confirm"]
    assert change.config["controller"]["ofp_tcp_listen_port"] == 6653  # what runs
    assert change.config["switch_drain"]["critical"] == []
    assert change.config["switch_drain"]["confirm"] == 4
    assert "needs a restart" in change.summary()


def test_services_are_added_replaced_or_withdrawn_by_name():
    calmer = copy.deepcopy(WEB) | {"thresholds": {"cooldown_seconds": 120}}
    moved = copy.deepcopy(WEB) | {"port": 8080}
    dns = copy.deepcopy(WEB) | {"name": "dns", "vip": "10.0.0.200", "port": 53, "proto": "udp"}
    assert diff(cfg(), cfg(services=[WEB])).services_added == ["web"]
    assert diff(cfg(services=[WEB]), cfg()).services_withdrawn == ["web"]
    same_clients = diff(cfg(services=[WEB]), cfg(services=[calmer, dns]))
    assert same_clients.services_replaced == ["web"] and same_clients.services_added == ["dns"]
    readdressed = diff(cfg(services=[WEB]), cfg(services=[moved]))
    assert readdressed.services_withdrawn == ["web"] and readdressed.services_added == ["web"]


# --- the core applying a diff -------------------------------------------------------
def punts(net) -> set[tuple[int, int]]:
    """(dpid, tcp_dst) of the VIP punt rules on the fake switches."""
    return {(dpid, f.match.get("tcp_dst")) for dpid, sw in net.switches.items()
            for f in sw.flows if f.match.get("ipv4_dst") == VIP and "tcp_dst" in f.match}


def test_replacing_thresholds_keeps_flows_and_withdrawing_ends_them():
    running = cfg(services=[WEB])
    core = ControllerCore(None, services=running["services"])
    net = connect_ring(core)
    vip_mac = core.services.services.get("web").vip_mac
    net.send(core.packet_in(1, 1, syn(1, 40000, vip_mac)))
    pinned = [f for f in net.switch(1).flows if f.match.get("tcp_src") == 40000]
    assert pinned and punts(net) == {(d, 80) for d in (1, 2, 3, 4)}

    calmer = cfg(services=[copy.deepcopy(WEB) | {"thresholds": {"cooldown_seconds": 120}}],
                 reconcile={"interval": 2})
    change = diff(running, calmer)
    sent = core.reconfigure(change)
    net.send(sent)
    assert not [m for _, m in sent if isinstance(m, parser.OFPFlowMod) and m.command != 0]
    assert [f for f in net.switch(1).flows if f.match.get("tcp_src") == 40000] == pinned
    assert core.services.services.get("web").thresholds.cooldown_seconds == 120
    assert core.service_shadow("web")[0]["status"] == "active"

    net.send(core.reconfigure(diff(calmer, cfg())))
    assert not [f for f in net.switch(1).flows if f.match.get("tcp_src") == 40000]
    assert punts(net) == set() and core.services.services.get("web") is None


def test_a_readdressed_service_moves_its_vip_rules():
    running = cfg(services=[WEB])
    core = ControllerCore(None, services=running["services"])
    net = connect_ring(core)
    net.send(core.reconfigure(diff(running, cfg(services=[copy.deepcopy(WEB) | {"port": 81}]))))
    assert punts(net) == {(d, 81) for d in (1, 2, 3, 4)}


# --- a real controller process ------------------------------------------------------
def test_sighup_reloads_tokens_and_refuses_a_bad_file_without_stopping(tmp_path):
    tokens = tmp_path / "tokens.yaml"
    admin = add_token(tokens, "admin", "admin")
    conf = tmp_path / "shadownet.yaml"
    conf.write_text(f"rest:\n  tokens_file: {tokens}\n")
    api = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.manager", "--config-file", str(conf),
         "--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", str(free_port()),
         "--wsapi-port", str(api), "--db-url", f"sqlite:///{tmp_path}/s.db"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )

    def status(token: str) -> int:
        req = urllib.request.Request(f"http://127.0.0.1:{api}/api/flows",
                                     headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=2) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def eventually(token: str, want: int) -> None:
        for _ in range(100):
            try:
                if status(token) == want:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        pytest.fail(f"never {want}")

    try:
        eventually(admin, 200)
        viewer = add_token(tokens, "viewer", "viewer")
        assert status(viewer) == 401  # not known yet
        proc.send_signal(signal.SIGHUP)
        eventually(viewer, 200)
        conf.write_text("rest:\n  tokens_file: 5\n")  # bad: the running config stays
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert proc.poll() is None and status(viewer) == 200
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "config reloaded" in out and "config reload refused" in out
    assert "rest.tokens_file: must be a string, got int 5" in out
    assert "Traceback" not in out
