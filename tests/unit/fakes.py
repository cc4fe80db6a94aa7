"""A fake OpenFlow network for unit tests: flow tables that apply our flow-mods.

Messages are serialised first (as os-ken would on the wire) so a malformed
message fails here, not on a switch. Forwarding is then simulated by looking
up the highest-priority matching flow hop by hop, like Faucet's fake table.

Groups behave as on OVS: fast failover takes the first bucket whose watched
port is live; select hashes each flow (the address and L4 fields the fake
packet carries) onto one live bucket, in proportion to the weights, and skips
buckets whose watched port is down.
"""

from __future__ import annotations

import hashlib
import math
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
            elif msg.command == ofp.OFPFC_DELETE_STRICT:  # exactly this table, priority, match
                self.flows = [f for f in self.flows
                              if (f.table_id, f.priority, f.match) != (msg.table_id,
                                                                      msg.priority, match)]
        elif isinstance(msg, parser.OFPGroupMod):
            if msg.command == ofp.OFPGC_DELETE:
                self.groups.pop(msg.group_id, None)
            else:
                self.groups[msg.group_id] = msg.buckets
                self.group_types[msg.group_id] = msg.type
        elif isinstance(msg, parser.OFPPacketOut):
            ports = [a.port for a in msg.actions]
            self.packet_outs.append((ports, msg.data))

    down: set[int] = field(default_factory=set)
    group_types: dict[int, int] = field(default_factory=dict)

    def group_outputs(self, group_id: int, fields: dict | None = None) -> list[int]:
        """Fast failover: the first live bucket. Select: the bucket this packet's flow
        hashes to (``fields``), or without fields every weighted bucket."""
        buckets = self.groups.get(group_id, [])
        if self.group_types.get(group_id) == ofp.OFPGT_FF:
            for bucket in buckets:
                if bucket.watch_port not in self.down:
                    return [a.port for a in bucket.actions]
            return []
        if fields is None:
            return [a.port for b in buckets if b.weight for a in b.actions]
        bucket = select_bucket(buckets, fields, self.down)
        return [a.port for a in bucket.actions] if bucket is not None else []

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
                outputs += self.group_outputs(flow.group_id, fields)
            if ofp.OFPP_CONTROLLER in flow.outputs:
                return outputs, True
            if flow.goto is None:
                return outputs, False
            table = flow.goto


FLOW_HASH_FIELDS = ("eth_src", "eth_dst", "eth_type", "ipv4_src", "ipv4_dst", "ip_proto",
                    "tcp_src", "tcp_dst", "udp_src", "udp_dst")


def select_bucket(buckets: list, fields: dict, down: set[int]):
    """The live bucket a flow hashes to, each with probability weight / total weight.

    Weighted rendezvous hashing: a flow keeps its bucket while that bucket
    lives, and only the flows of a dead bucket move, which is what a switch
    does. Deterministic for the same fields.
    """
    flow = "|".join(f"{k}={fields.get(k)}" for k in FLOW_HASH_FIELDS)
    best, best_score = None, -1.0
    for i, bucket in enumerate(buckets):
        if not bucket.weight or bucket.watch_port in down:
            continue
        digest = hashlib.blake2b(f"{flow}#{i}".encode(), digest_size=8).digest()
        u = (int.from_bytes(digest, "big") + 0.5) / 2**64  # uniform in (0, 1)
        score = -bucket.weight / math.log(u)
        if score > best_score:
            best, best_score = bucket, score
    return best


def _matches(value, want) -> bool:
    if isinstance(want, tuple):  # (value, mask): MAC, IPv4 or an integer field
        import ipaddress

        if value is None:
            return False
        if isinstance(want[0], int):  # e.g. tcp_flags_nxm
            return int(value) & want[1] == want[0] & want[1]
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
        self.failed: set[int] = set()
        self.wiring: dict[tuple[int, int], tuple[int, int]] = {}
        for link in links:
            self.wiring[(link.src_dpid, link.src_port)] = (link.dst_dpid, link.dst_port)
            self.wiring[(link.dst_dpid, link.dst_port)] = (link.src_dpid, link.src_port)

    def switch(self, dpid: int) -> FakeSwitch:
        return self.switches.setdefault(dpid, FakeSwitch(dpid))

    def send(self, msgs) -> None:
        for dpid, msg in msgs:
            self.switch(dpid).apply(msg)

    def cut(self, dpid: int, port: int) -> None:
        """A link goes down: both ends' ports are dead for fast-failover liveness."""
        self.switch(dpid).down.add(port)
        peer = self.wiring.get((dpid, port))
        if peer:
            self.switch(peer[0]).down.add(peer[1])

    def fail_switch(self, dpid: int) -> None:
        """A whole switch dies: it forwards nothing and every link to it is down."""
        self.failed.add(dpid)
        for (a, port) in list(self.wiring):
            if a == dpid:
                self.cut(a, port)

    def walk(self, dpid: int, fields: dict, max_hops: int = 64,
             in_port: int | None = None) -> tuple[int, int] | None:
        """Follow installed flows from ``dpid``; return the (dpid, port) where the frame exits."""
        return self.trace(dpid, fields, max_hops, in_port)[1]

    def trace(self, dpid: int, fields: dict, max_hops: int = 64, in_port: int | None = None
              ) -> tuple[list[tuple[int, int | None]], tuple[int, int] | None]:
        """Like :meth:`walk`, also returning every (switch, in-port) the frame visited."""
        visited: list[tuple[int, int | None]] = []
        for _ in range(max_hops):
            visited.append((dpid, in_port))
            if dpid in self.failed:
                return visited, None
            sw = self.switch(dpid)
            flow = sw.lookup({**fields, "in_port": in_port}, 2)
            if flow is None:
                return visited, None
            ports = sw.group_outputs(flow.group_id, fields) if flow.group_id is not None else [
                p for p in flow.outputs]
            if ports and ports[0] == ofp.OFPP_IN_PORT:
                ports = [in_port]
            elif ports and ports[0] == in_port:
                return visited, None  # OpenFlow drops output to the arrival port
            if not ports or ports[0] in sw.down:
                return visited, None
            nxt = self.wiring.get((dpid, ports[0]))
            if nxt is None:
                return visited, (dpid, ports[0])
            dpid, in_port = nxt
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


def connect_ring(core, n: int = 4, learn_hosts: bool = True) -> FakeNetwork:
    """Feed a ``ControllerCore`` an n-switch ring (switches, LLDP links, one host each).

    Returns the fake network holding the base pipeline, for tests that walk it.
    """
    from tests.unit.packets import arp_request

    graph, links = ring_graph(n)
    net = FakeNetwork(links)
    for dpid in graph.switches():
        net.send(core.switch_connected(dpid, [1, 2, 3]))
    for link in links:
        core.link_added(link)
    if learn_hosts:
        for i in range(1, n + 1):
            core.packet_in(i, 1, arp_request(i, i % n + 1))
    return net


class FakeClock:
    """A clock that only moves when something sleeps: ``time.sleep`` and
    ``time.monotonic`` patched onto it, so timed waits run instantly."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    @classmethod
    def installed(cls, monkeypatch) -> FakeClock:
        import time

        clock = cls()
        monkeypatch.setattr(time, "sleep", clock.sleep)
        monkeypatch.setattr(time, "monotonic", clock)
        return clock


def load_bench(name: str):
    """A benchmark script as a module (``bench/`` is not a package). Registered in
    ``sys.modules`` first: its dataclasses look their module up there."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
