"""An LLDP timeout removes a link only when the controller kept asking."""

from __future__ import annotations

from controller.core import LLDP_UNANSWERED_MIN, ControllerCore
from controller.network_graph import Link
from tests.unit.fakes import connect_ring
from tests.unit.packets import mac, ping

LINK = Link(1, 2, 2, 3)  # ring: port 2 to the next switch, port 3 to the previous


def ring_with_paths() -> ControllerCore:
    core = ControllerCore(None)
    connect_ring(core, 4)
    core.packet_in(1, 1, ping(1, 2))  # a path over 1 -> 2
    return core


def test_silence_while_the_sender_was_stalled_keeps_the_link():
    core = ring_with_paths()
    believed, msgs = core.link_silent(LINK, unanswered=LLDP_UNANSWERED_MIN - 1)
    assert not believed and msgs == []
    assert core.graph.switch_path(1, 2) == [1, 2]


def test_silence_after_enough_unanswered_frames_reroutes():
    core = ring_with_paths()
    believed, msgs = core.link_silent(LINK, unanswered=LLDP_UNANSWERED_MIN)
    assert believed and msgs
    assert core.graph.switch_path(1, 2) == [1, 4, 3, 2]
    path = [e for e in core.table.active() if e.match.get("eth_dst") == mac(2)
            and "in_port" not in e.match]
    assert sorted(e.dpid for e in path) == [1, 2, 3, 4]


def test_a_port_that_is_down_needs_no_unanswered_frames():
    core = ring_with_paths()
    core.graph.port_down(2, 3)  # as its port-status message would
    believed, _ = core.link_silent(LINK, unanswered=0)
    assert believed and core.graph.switch_path(1, 2) == [1, 4, 3, 2]
