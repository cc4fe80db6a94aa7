"""A fake OpenFlow network for unit tests: flow tables that apply our flow-mods.

Messages are serialised first (as os-ken would on the wire) so a malformed
message fails here, not on a switch. Forwarding is then simulated by looking
up the highest-priority matching flow hop by hop, like Faucet's fake table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller.network_graph import Link, NetworkGraph


class _FakeDatapath:
    ofproto = ofp
    ofproto_parser = parser

    def __init__(self, dpid: int) -> None:
        self.id = dpid


@dataclass
class FakeFlow:
    cookie: int
    table_id: int
    priority: int
    match: dict
    outputs: list[int]
    group_id: int | None
    goto: int | None
    idle_timeout: int

    @property
    def out_port(self) -> int | None:
        return self.outputs[0] if self.outputs else None


@dataclass
class FakeSwitch:
    dpid: int
    flows: list[FakeFlow] = field(default_factory=list)
    groups: dict[int, list] = field(default_factory=dict)
    packet_outs: list[tuple[list[int], bytes]] = field(default_factory=list)
    sent: list = field(default_factory=list)

    def apply(self, msg) -> None:
        msg.datapath = _FakeDatapath(self.dpid)
        msg.serialize()  # must be encodable
        self.sent.append(msg)
        if isinstance(msg, parser.OFPFlowMod):
            match = dict(msg.match.items())
            if msg.command == ofp.OFPFC_ADD:
                self.flows = [
                    f for f in self.flows
                    if not (f.table_id == msg.table_id and f.priority == msg.priority
                            and f.match == match)
                ]
                outputs, group, goto = [], None, None
                for inst in msg.instructions:
                    if isinstance(inst, parser.OFPInstructionGotoTable):
                        goto = inst.table_id
                        continue
                    for action in inst.actions:
                        if isinstance(action, parser.OFPActionOutput):
                            outputs.append(action.port)
                        elif isinstance(action, parser.OFPActionGroup):
                            group = action.group_id
                self.flows.append(FakeFlow(msg.cookie, msg.table_id, msg.priority, match,
                                           outputs, group, goto, msg.idle_timeout))
            elif msg.command == ofp.OFPFC_DELETE:
                mask = msg.cookie_mask
                self.flows = [f for f in self.flows if (f.cookie & mask) != (msg.cookie & mask)]
        elif isinstance(msg, parser.OFPGroupMod):
            if msg.command == ofp.OFPGC_DELETE:
                self.groups.pop(msg.group_id, None)
            else:
                self.groups[msg.group_id] = msg.buckets
        elif isinstance(msg, parser.OFPPacketOut):
            ports = [a.port for a in msg.actions]
            self.packet_outs.append((ports, msg.data))

    def lookup(self, fields: dict, table_id: int = 2) -> FakeFlow | None:
        best = None
        for flow in self.flows:
            if flow.table_id != table_id:
                continue
            if all(_matches(fields.get(k), v) for k, v in flow.match.items()):
                if best is None or flow.priority > best.priority:
                    best = flow
        return best

    def process(self, fields: dict) -> tuple[list[int], bool]:
        """Run a packet through the pipeline: (every output port, reached the controller?)."""
        outputs: list[int] = []
        table = 0
        while True:
            flow = self.lookup(fields, table)
            if flow is None:
                return outputs, False
            outputs += [p for p in flow.outputs if p != ofp.OFPP_CONTROLLER]
            if flow.group_id is not None:
                for bucket in self.groups.get(flow.group_id, []):
                    if bucket.weight:
                        outputs += [a.port for a in bucket.actions]
            if ofp.OFPP_CONTROLLER in flow.outputs:
                return outputs, True
            if flow.goto is None:
                return outputs, False
            table = flow.goto


def _matches(value, want) -> bool:
    if isinstance(want, tuple):  # (value, mask): MAC or IPv4
        import ipaddress

        if value is None:
            return False
        if ":" in want[0]:
            def as_int(m: str) -> int:
                return int(m.replace(":", ""), 16)

            return as_int(value) & as_int(want[1]) == as_int(want[0]) & as_int(want[1])
        net = ipaddress.IPv4Network(f"{want[0]}/{want[1]}", strict=False)
        return ipaddress.IPv4Address(value) in net
    return str(value) == str(want)


class FakeNetwork:
    """Switches keyed by dpid plus the wiring, so a frame can be walked through."""

    def __init__(self, links: list[Link]) -> None:
        self.switches: dict[int, FakeSwitch] = {}
        self.wiring: dict[tuple[int, int], tuple[int, int]] = {}
        for link in links:
            self.wiring[(link.src_dpid, link.src_port)] = (link.dst_dpid, link.dst_port)
            self.wiring[(link.dst_dpid, link.dst_port)] = (link.src_dpid, link.src_port)

    def switch(self, dpid: int) -> FakeSwitch:
        return self.switches.setdefault(dpid, FakeSwitch(dpid))

    def send(self, msgs) -> None:
        for dpid, msg in msgs:
            self.switch(dpid).apply(msg)

    def walk(self, dpid: int, fields: dict, max_hops: int = 64) -> tuple[int, int] | None:
        """Follow installed flows from ``dpid``; return the (dpid, port) where the frame exits."""
        for _ in range(max_hops):
            flow = self.switch(dpid).lookup(fields, 2)
            if flow is None or flow.out_port is None:
                return None
            nxt = self.wiring.get((dpid, flow.out_port))
            if nxt is None:
                return dpid, flow.out_port
            dpid = nxt[0]
        raise AssertionError("forwarding loop")


def ring_graph(n: int) -> tuple[NetworkGraph, list[Link]]:
    """n switches in a ring: port 1 host, port 2 to next, port 3 to previous."""
    graph = NetworkGraph()
    links = []
    for i in range(1, n + 1):
        graph.add_switch(i, [1, 2, 3])
    for i in range(1, n + 1):
        nxt = i % n + 1
        link = Link(i, 2, nxt, 3)
        graph.add_link(link)
        links.append(link)
    return graph, links
