"""Pingall with 0% loss on every supported topology, and the ST matches the switches."""

from __future__ import annotations

from tests.integration.conftest import LabTest, our_cookies


class PingallTest(LabTest):
    def test_pingall_no_loss_and_table_matches_switches(self, lab):
        assert lab.net.pingAll(timeout="3") == 0
        active = lab.controller.get("/api/flows?status=active")
        assert active, "no flows in the signature table after pingall"
        by_switch: dict[int, set[int]] = {}
        for entry in active:
            by_switch.setdefault(entry["dpid"], set()).add(int(entry["cookie"], 16))
        for switch in lab.net.switches:
            on_switch = our_cookies(switch.name)
            assert on_switch == by_switch.get(int(switch.dpid, 16), set()), switch.name


class TestSingle(PingallTest):
    TOPO = "single,3"


class TestLinear(PingallTest):
    TOPO = "linear,4"


class TestTree(PingallTest):
    TOPO = "tree,2,2"


class TestRing(PingallTest):
    TOPO = "ring,6"


class TestFatTree(PingallTest):
    TOPO = "fattree,4"


class TestZooBics(PingallTest):
    """A real operator graph: 33 switches, 48 links, many loops."""

    TOPO = "zoo:Bics"
