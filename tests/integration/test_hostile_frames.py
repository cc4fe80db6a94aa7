"""A host sends the frame that used to stop the controller, then 2,000 fuzzed variants of it,
while others ping: nothing stops, not forwarding, not LLDP, not REST."""

from __future__ import annotations

import re
import sys

from tests.integration.conftest import LabTest

UNKNOWN_MAC = "02:00:00:00:99:99"  # nobody's: every copy of the frame is a packet-in


class TestKillerFrame(LabTest):
    TOPO = "linear,3"

    def test_pings_and_rest_go_on_while_a_host_sends_a_tcp_option_of_length_zero(self, lab):
        h1, h2, h3 = lab.net.get("h1", "h2", "h3")
        assert lab.net.pingAll(timeout="3") == 0
        before = lab.controller.get("/api/health")["packet_in"]
        links = len(lab.controller.get("/api/links"))
        ping = h2.popen(["ping", "-c", "300", "-i", "0.02", "-W", "1", h3.IP()])
        sent = h1.cmd(
            f"{sys.executable} -m lab.hostile_frames {h1.defaultIntf()} --src-mac {h1.MAC()} "
            f"--dst-mac {UNKNOWN_MAC} --src-ip {h1.IP()} --dst-ip 10.0.0.99 "
            "--count 50 --fuzz 2000 --seed 3 --interval 0.002")
        assert int(sent.strip().splitlines()[-1]) >= 1900, sent  # bar those cut below 14 bytes
        out, _ = ping.communicate(timeout=60)
        received = int(re.search(r"(\d+) received", out.decode()).group(1))
        assert received >= 297, out.decode()  # the fabric kept forwarding
        # The controller kept reading packet-ins (the frames among them) and answering REST.
        health = lab.controller.get("/api/health")
        assert health["status"] == "ok" and health["packet_in"] >= before + 50
        assert len(lab.controller.get("/api/links")) == links  # LLDP kept every link
        # And it still learns and installs paths for new traffic.
        assert h1.cmd(f"ping -c 2 -W 1 {h3.IP()}").count("bytes from") == 2
