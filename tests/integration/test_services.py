"""A service behind a virtual IP on real OVS: steering, and an operator switchover."""

from __future__ import annotations

import pytest

from lab.network import Lab
from tests.integration.conftest import LabTest, wait_for

VIP = "10.0.0.100"
SERVICE = {"name": "web", "vip": VIP, "port": 80, "mode": "stateless",
           "primary": {"name": "h2", "ip": "10.0.0.2", "mac": "00:00:00:00:00:02"},
           "standbys": [{"name": "h3", "ip": "10.0.0.3", "mac": "00:00:00:00:00:03"}]}


def serve_name(host) -> int:
    """A real HTTP server on the node that answers with the node's name; returns its pid.

    (Mininet hosts share one PID namespace: kill by pid, never by name.)
    """
    root = f"/tmp/shadownet-svc-{host.name}"
    host.cmd(f"mkdir -p {root} && echo {host.name} > {root}/index.html")
    out = host.cmd(f"python3 -m http.server 80 --bind 0.0.0.0 --directory {root} "
                   ">/dev/null 2>&1 & echo $!")
    return int(out.strip().split()[-1])


class TestServiceVip(LabTest):
    TOPO = "linear,3"
    CONFIG = {"services": [SERVICE], "reconcile": {"interval": 1},
              "node_probes": {"interval": 1}}

    def test_clients_reach_the_vip_and_follow_a_switchover(self, lab):
        h1, h2, h3 = lab.net.get("h1", "h2", "h3")
        for host in (h2, h3):
            serve_name(host)
        try:
            assert lab.net.pingAll(timeout="3") == 0  # hosts learned, as in a running network
            curl = f"curl -s --max-time 5 http://{VIP}/"
            assert wait_for(lambda: h1.cmd(curl).strip() == "h2", timeout=15), h1.cmd(curl)
            services = lab.controller.get("/api/services")
            assert services[0]["active_node"] == "h2" and services[0]["flows"] >= 1

            result = lab.controller.post("/api/services/web/switch", {"node": "h3"})
            assert result["active_node"] == "h3"
            # New connections (and, stateless, the existing ones) now reach h3.
            assert wait_for(lambda: h1.cmd(curl).strip() == "h3", timeout=15), h1.cmd(curl)
            events = lab.controller.get("/api/services/events")
            assert any(e.get("target") == "h3" or e.get("node") == "h3" for e in events)
        finally:
            for host in (h2, h3):
                host.cmd("pkill -f 'http.server 80' ; rm -rf /tmp/shadownet-svc-" + host.name)


class TestServiceNodeDies(LabTest):
    """The Flow Monitor's probes see a dead node and the service moves off it."""

    TOPO = "linear,3"
    CONFIG = {"services": [SERVICE], "reconcile": {"interval": 1},
              "node_probes": {"interval": 1}}

    @pytest.fixture()
    def lab(self):
        with Lab(self.TOPO, config=self.CONFIG, probe_port=True) as lab:
            yield lab

    def test_dead_primary_is_replaced_by_its_shadow(self, lab):
        h1, h2, h3 = lab.net.get("h1", "h2", "h3")
        pids = {host.name: serve_name(host) for host in (h2, h3)}
        try:
            assert lab.net.pingAll(timeout="3") == 0
            curl = f"curl -s --max-time 3 http://{VIP}/"
            assert wait_for(lambda: h1.cmd(curl).strip() == "h2", timeout=15)
            assert wait_for(lambda: (lab.controller.get("/api/services")[0]["health"]
                                     .get("h2") or {}).get("score"), timeout=20)
            h2.cmd(f"kill {pids['h2']}")
            assert wait_for(lambda: lab.controller.get("/api/services")[0]["active_node"]
                            == "h3", timeout=40), lab.controller.get("/api/services")
            assert wait_for(lambda: h1.cmd(curl).strip() == "h3", timeout=15)
        finally:
            for host in (h2, h3):
                host.cmd("pkill -f 'http.server 80' ; rm -rf /tmp/shadownet-svc-" + host.name)
