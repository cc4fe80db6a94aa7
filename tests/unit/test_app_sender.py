"""The app's sender: make-before-break batches wait for barriers before deleting."""

from __future__ import annotations

from types import SimpleNamespace

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller import ofmsgs
from controller.app import ShadownetApp


class FakeDatapath:
    ofproto = ofp
    ofproto_parser = parser

    def __init__(self, dpid: int, log: list, app: ShadownetApp, answers: bool = True):
        self.id, self.log, self.app, self.answers, self.xid = dpid, log, app, answers, 0

    def set_xid(self, msg) -> int:
        self.xid += 1
        msg.set_xid(self.xid)
        return self.xid

    def send_msg(self, msg) -> None:
        kind = type(msg).__name__
        if isinstance(msg, parser.OFPFlowMod):
            kind = "delete" if ofmsgs.is_delete(msg) else "add"
        self.log.append((self.id, kind))
        if isinstance(msg, parser.OFPBarrierRequest) and self.answers:
            reply = SimpleNamespace(msg=SimpleNamespace(datapath=self, xid=msg.xid))
            self.app._barrier_reply(reply)
            self.log.append((self.id, "barrier-reply"))


def make_app(answers: dict[int, bool]) -> tuple[ShadownetApp, list]:
    app = object.__new__(ShadownetApp)  # no os-ken machinery: only the sender's state
    log: list = []
    app._barriers = {}
    app.datapaths = {d: FakeDatapath(d, log, app, ok) for d, ok in answers.items()}
    return app, log


def test_deletes_wait_for_barriers_from_every_switch_that_got_adds():
    app, log = make_app({1: True, 2: True, 3: True})
    add = lambda: ofmsgs.table_miss(2)  # noqa: E731
    delete = lambda: ofmsgs.flow_delete_cookie(0x5348_0000_0000_0009)  # noqa: E731
    app._send_now([(2, add()), (1, add()), (3, delete()), (2, delete())])
    assert log[:2] == [(2, "add"), (1, "add")]
    barriers = log[2:6]
    assert sorted(e for e in barriers if e[1] == "OFPBarrierRequest") == [
        (1, "OFPBarrierRequest"), (2, "OFPBarrierRequest")]
    assert log[6:] == [(3, "delete"), (2, "delete")]


def test_adds_alone_need_no_barrier_and_a_silent_switch_only_delays():
    app, log = make_app({1: True, 2: False})
    app._send_now([(1, ofmsgs.table_miss(2)), (2, ofmsgs.table_miss(2))])
    assert [k for _, k in log] == ["add", "add"]
    log.clear()
    app._barrier({2}, timeout=0.05)  # switch 2 never answers: give up, do not hang
    assert log == [(2, "OFPBarrierRequest")] and not app._barriers
