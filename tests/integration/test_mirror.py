"""Mirror namespaces on real OVS, Mininet, controller and agent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.network import Lab
from tests.integration.conftest import LabTest, wait_for

TOKENS = {"tokens": {"blue-token-1": {"tenant": "blue"}, "red-token-1": {"tenant": "red"},
                     "admin-token-1": {"admin": True}}}
TENANTS = {"h1": "blue", "h2": "red"}


def netns_list() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def in_mirror(ns: str, *cmd: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True,
                          text=True).stdout


def start_services(h2) -> None:
    h2.cmd("python3 -m http.server 8000 >/dev/null 2>&1 &")
    h2.cmd("dnsmasq --no-daemon --no-resolv --no-hosts --local-ttl=300 --port=53 --listen-address="
           f"{h2.IP()} --bind-interfaces --address=/shadow.test/{h2.IP()} "
           "--address=/nosuch.test/ >/dev/null 2>&1 &")
    h2.cmd("iperf3 -s -D >/dev/null 2>&1")
    time.sleep(1.0)


class MirrorLabTest(LabTest):
    """h1 belongs to tenant blue, h2 to red."""

    TOPO = "linear,2"

    @pytest.fixture()
    def lab(self):
        with Lab(self.TOPO, config=self.CONFIG, tenants=TENANTS) as lab:
            yield lab


class TestMirrorEndToEnd(MirrorLabTest):

    def test_lifecycle_interception_state_and_api(self, lab):
        agent = lab.start_agent(tokens=TOKENS)
        mirrors = lab.wait_for_mirrors(2)
        assert {m["container"] for m in mirrors} == {"h1", "h2"}
        assert {"snm-h1", "snm-h2"} <= set(netns_list())
        h1, h2 = lab.net.get("h1", "h2")
        start_services(h2)
        t0 = time.time()
        assert lab.net.ping([h1, h2], timeout="3") == 0
        assert "200" in h1.cmd(f"curl -s -o /dev/null -w '%{{http_code}}' http://{h2.IP()}:8000/")
        assert h2.IP() in h1.cmd(f"dig +short @{h2.IP()} shadow.test")
        assert "NXDOMAIN" in h1.cmd(f"dig @{h2.IP()} nosuch.test")
        iperf = h1.popen(["iperf3", "-c", h2.IP(), "-t", "6", "-b", "10M"])
        try:
            def established():
                _, state = agent.request("/api/containers/h1/state", "admin-token-1")
                return [c for c in state["connections"]
                        if c["proto"] == "tcp" and c["resp_port"] == 5201
                        and c["state"] == "ESTABLISHED"] and state
            state = wait_for(established)
            assert state, "the iperf3 connection never showed as ESTABLISHED in the mirror"
            kernel = h1.cmd("ss -Htn state established '( dport = :5201 )'")
            assert kernel.strip(), "iperf3 not established in the container"
            conntrack = wait_for(lambda: "dport=5201" in in_mirror("snm-h1", "conntrack", "-L")
                                 and in_mirror("snm-h1", "conntrack", "-L"))
            assert "ESTABLISHED" in conntrack
        finally:
            iperf.wait(20)

        arp = {a["ip"]: a["mac"] for a in state["arp"]}
        assert arp.get(h2.IP()) == h2.MAC()
        neigh = in_mirror("snm-h1", "ip", "neigh")
        assert f"{h2.IP()} dev mirror0 lladdr {h2.MAC()}" in neigh
        assert "10.0.0.0/8" in in_mirror("snm-h1", "ip", "route")
        dns = {(d["name"], d["rcode"]): d for d in state["dns"]}
        assert ("shadow.test", "NOERROR") in dns and ("nosuch.test", "NXDOMAIN") in dns
        assert any(a["data"] == h2.IP() for a in dns[("shadow.test", "NOERROR")]["answers"])
        protos = {c["proto"] for c in state["connections"]}
        assert {"tcp", "udp", "icmp"} <= protos
        assert any(c["resp_port"] == 8000 for c in state["connections"])
        # Both directions were seen for the web request.
        web = [c for c in state["connections"] if c["resp_port"] == 8000][0]
        assert web["orig"]["packets"] > 0 and web["resp"]["packets"] > 0

        # History by time range, and pcap export that replays to the same connections.
        code, history = agent.request(f"/api/containers/h1/history?kind=arp&start={t0 - 5}",
                                      "admin-token-1")
        assert code == 200 and any(c["key"] == h2.IP() for c in history)
        code, later = agent.request(f"/api/containers/h1/history?start={time.time() + 60}",
                                    "admin-token-1")
        assert code == 200 and later == []
        code, pcap = agent.request("/api/containers/h1/pcap", "admin-token-1")
        assert code == 200 and isinstance(pcap, bytes) and len(pcap) > 24
        path = lab.workdir / "h1.pcap"
        path.write_bytes(pcap)
        replay = subprocess.run(
            [str(Path(sys.executable).parent / "shadownet"), "mirror", "replay", str(path),
             "--json", "--container-mac", h1.MAC(), "--container-ip", h1.IP()],
            capture_output=True, text=True, timeout=120)
        assert replay.returncode == 0, replay.stderr
        replayed = json.loads(replay.stdout)
        assert any(c.get("resp_port") == 8000 for c in replayed["connections"])
        code, _ = agent.request("/api/containers/h1/history?start=abc", "admin-token-1")
        assert code == 400

        assert agent.request("/metrics")[0] == 401  # labels name every tenant
        metrics = agent.request("/metrics", "admin-token-1")[1].decode()
        assert 'shadownet_mirror_packets{container="h1",tenant="blue"}' in metrics
        red = agent.request("/metrics", "red-token-1")[1].decode()
        assert 'tenant="blue"' not in red

        # The container goes: so does its mirror, here and in the controller.
        port = [m for m in mirrors if m["container"] == "h2"][0]
        iface = subprocess.run(["ovs-vsctl", "--bare", "--columns=name", "find", "Interface",
                                "external_ids:container_id=h2"], capture_output=True,
                               text=True).stdout.strip()
        subprocess.run(["ovs-vsctl", "remove", "Interface", iface, "external_ids",
                        "container_id"], check=True)
        assert wait_for(lambda: "snm-h2" not in netns_list())
        assert wait_for(lambda: [m["container"] for m in lab.controller.get("/api/mirrors")]
                        == ["h1"])
        assert port["mirror_port"] > 0

    def test_read_only_tenancy_and_restart(self, lab):
        agent = lab.start_agent(tokens=TOKENS)
        lab.wait_for_mirrors(2)
        h1, h2 = lab.net.get("h1", "h2")
        assert lab.net.ping([h1, h2], timeout="3") == 0
        wait_for(lambda: h2.IP() in in_mirror("snm-h1", "ip", "neigh"))

        # Read-only: whatever the mirror sends is dropped at the bridge.
        mirror = [m for m in lab.controller.get("/api/mirrors") if m["container"] == "h1"][0]
        sniff = h2.popen(["timeout", "4", "tcpdump", "-l", "-n", "-i", "h2-eth0", "icmp"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(1)
        in_mirror("snm-h1", "ping", "-c", "5", "-i", "0.2", "-W", "1", h2.IP())
        seen, _ = sniff.communicate(timeout=10)
        assert seen.strip() == "", f"mirror traffic reached h2:\n{seen}"
        flows = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "s1",
                                f"table=0,in_port={mirror['mirror_port']}"],
                               capture_output=True, text=True, check=True).stdout
        drops = [int(part.split("=")[1]) for line in flows.splitlines()
                 for part in line.split(", ") if part.strip().startswith("n_packets=")]
        assert drops and max(drops) >= 5, flows

        # Tenancy: a token sees its own tenant; another tenant's mirror is 403.
        assert agent.request("/api/containers")[0] == 401
        assert agent.request("/api/containers", "wrong-token-x")[0] == 401
        code, listed = agent.request("/api/containers", "blue-token-1")
        assert code == 200 and [c["container"] for c in listed] == ["h1"]
        assert agent.request("/api/containers/h2/state", "blue-token-1")[0] == 403
        assert agent.request("/api/containers/h2/pcap", "blue-token-1")[0] == 403
        assert agent.request("/api/containers/h2/state", "red-token-1")[0] == 200
        code, listed = agent.request("/api/containers", "admin-token-1")
        assert [c["container"] for c in listed] == ["h1", "h2"]

        # An agent restart adopts the mirrors it made; none is lost or recreated.
        agent.stop()  # the lab starts it with --remove-on-exit; restart it without
        agent.start(remove_on_exit=False)
        assert wait_for(lambda: {"snm-h1", "snm-h2"} <= set(netns_list()))
        inode = os.stat("/run/netns/snm-h1").st_ino
        agent.stop()
        assert {"snm-h1", "snm-h2"} <= set(netns_list())
        agent.start()
        assert wait_for(lambda: "adopted from an earlier agent" in agent.log_tail(60))
        assert os.stat("/run/netns/snm-h1").st_ino == inode
        assert len(lab.controller.get("/api/mirrors")) == 2

        # A controller restart keeps the mirrors (persisted) and the copies flowing.
        lab.restart_controller()
        lab.wait_for_discovery()
        assert len(lab.controller.get("/api/mirrors")) == 2
        before = agent.request("/api/containers/h1", "admin-token-1")[1]["packets"]
        assert lab.net.ping([h1, h2], timeout="3") == 0
        assert wait_for(lambda: agent.request("/api/containers/h1", "admin-token-1")[1][
            "packets"] > before)
        assert lab.net.ping([h1, h2], timeout="3") == 0
        assert wait_for(lambda: lab.agent.request("/api/containers/h1/state",
                                                  "admin-token-1")[1]["arp"])


class TestMirrorPolicyAndRules(MirrorLabTest):
    CONFIG = {"mirroring": {"protocols": ["arp", "dns"]}}
    RULES = {"rules": [{"name": "nxdomain-burst", "type": "nxdomain_rate", "threshold": 0.5,
                        "min_responses": 3, "window": 60, "severity": "critical",
                        "mark_unhealthy": True}]}

    def test_policy_limits_copies_and_rules_mark_unhealthy(self, lab):
        agent = lab.start_agent(tokens=TOKENS, rules=self.RULES)
        lab.wait_for_mirrors(2)
        h1, h2 = lab.net.get("h1", "h2")
        start_services(h2)
        assert lab.net.ping([h1, h2], timeout="3") == 0
        for i in range(5):
            h1.cmd(f"dig +tries=1 +time=1 @{h2.IP()} n{i}.nosuch.test")
        code, state = agent.request("/api/containers/h1/state", "admin-token-1")
        protos = {c["proto"] for c in state["connections"]}
        assert "icmp" not in protos and "udp" in protos  # ICMP was not copied, DNS was
        assert state["arp"]

        def unhealthy():
            hosts = {h["mac"]: h for h in lab.controller.get("/api/hosts")}
            return hosts.get(h1.MAC(), {}).get("healthy") is False

        assert wait_for(unhealthy), lab.agent.log_tail()
        code, alerts = agent.request("/api/alerts", "blue-token-1")
        assert code == 200 and alerts and alerts[0]["rule"] == "nxdomain-burst"
        assert agent.request("/api/alerts", "red-token-1")[1] == []


class TestMirrorSampling(MirrorLabTest):
    CONFIG = {"mirroring": {"protocols": ["tcp"], "sample": 0.5}}

    def test_select_group_samples_whole_flows(self, lab):
        agent = lab.start_agent(tokens=TOKENS)
        lab.wait_for_mirrors(2)
        groups = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-groups", "s1"],
                                capture_output=True, text=True, check=True).stdout
        assert "type=select" in groups and "weight:500" in groups
        h1, h2 = lab.net.get("h1", "h2")
        start_services(h2)
        assert lab.net.ping([h1, h2], timeout="3") == 0
        total = 40
        for _ in range(total):
            h1.cmd(f"curl -s -o /dev/null http://{h2.IP()}:8000/")
        time.sleep(1)
        _, state = agent.request("/api/containers/h1/state", "admin-token-1")
        web = [c for c in state["connections"] if c["resp_port"] == 8000]
        # Binomial(40, 0.5): outside 8..32 has probability below 1e-4.
        assert 8 <= len(web) <= 32, len(web)
        # Sampled flows are whole: handshake and data in both directions.
        assert all(c["orig"]["packets"] >= 3 and c["resp"]["packets"] >= 2 for c in web)
