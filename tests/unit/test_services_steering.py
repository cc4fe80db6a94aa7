"""VIP steering on a fake pipeline that applies rewrites: requests reach the chosen node,
replies come back from the VIP, drains keep old connections where they are."""

from __future__ import annotations

from os_ken.lib.packet import arp, ethernet, ipv4, packet, tcp
from os_ken.ofproto import ether, inet
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller.forwarding import Forwarder
from controller.host_table import HostTable
from controller.pipeline import FORWARD_TABLE
from controller.services.runtime import ServiceRuntime
from controller.services.service import Service, ServiceTable
from controller.services.shadow_table import FlowKey
from controller.signature_table import SignatureTable
from tests.unit.fakes import _FakeDatapath, _matches, ring_graph
from tests.unit.packets import arp_request, ip, mac

VIP = "10.0.0.100"


class RewritingSwitch:
    """Applies flow-mods and group-mods and runs packets through them, set_field included."""

    def __init__(self, dpid):
        self.dpid = dpid
        self.flows = []  # (table, priority, match, cookie, instructions)
        self.groups = {}
        self.packet_outs = []

    def apply(self, msg):
        msg.datapath = _FakeDatapath(self.dpid)
        msg.serialize()
        if isinstance(msg, parser.OFPFlowMod):
            match = dict(msg.match.items())
            if msg.command == ofp.OFPFC_ADD:
                self.flows = [f for f in self.flows
                              if (f[0], f[1], f[2]) != (msg.table_id, msg.priority, match)]
                self.flows.append((msg.table_id, msg.priority, match, msg.cookie,
                                   msg.instructions))
            elif msg.command == ofp.OFPFC_DELETE:
                self.flows = [f for f in self.flows
                              if f[3] & msg.cookie_mask != msg.cookie & msg.cookie_mask]
        elif isinstance(msg, parser.OFPGroupMod):
            self.groups[msg.group_id] = (msg.type, msg.buckets)
        elif isinstance(msg, parser.OFPPacketOut):
            self.packet_outs.append(msg)

    def run(self, fields):
        """(out_port, fields as they leave) for every output; port CONTROLLER included."""
        fields, outputs, table = dict(fields), [], 0
        while table is not None:
            hits = [f for f in self.flows if f[0] == table
                    and all(_matches(fields.get(k), v) for k, v in f[2].items())]
            if not hits:
                return outputs
            flow = max(hits, key=lambda f: f[1])
            table = None
            for inst in flow[4]:
                if isinstance(inst, parser.OFPInstructionGotoTable):
                    table = inst.table_id
                    continue
                for action in inst.actions:
                    self._act(action, fields, outputs)
        return outputs

    def _act(self, action, fields, outputs):
        if isinstance(action, parser.OFPActionSetField):
            fields[action.key] = action.value
        elif isinstance(action, parser.OFPActionOutput):
            outputs.append((action.port, dict(fields)))
        elif isinstance(action, parser.OFPActionGroup):
            kind, buckets = self.groups[action.group_id]
            if kind == ofp.OFPGT_FF:  # every port is live here: the first bucket
                chosen = buckets[:1]
            elif kind == ofp.OFPGT_SELECT:  # deterministic: the heaviest bucket
                chosen = [max(buckets, key=lambda b: b.weight)]
            else:
                chosen = buckets
            for bucket in chosen:
                copy = dict(fields)
                for a in bucket.actions:
                    self._act(a, copy, outputs)


class RewritingNetwork:
    def __init__(self, links):
        self.switches = {}
        self.wiring = {}
        for link in links:
            self.wiring[(link.src_dpid, link.src_port)] = (link.dst_dpid, link.dst_port)
            self.wiring[(link.dst_dpid, link.dst_port)] = (link.src_dpid, link.src_port)

    def switch(self, dpid):
        return self.switches.setdefault(dpid, RewritingSwitch(dpid))

    def send(self, msgs):
        for dpid, msg in msgs:
            self.switch(dpid).apply(msg)

    def walk(self, dpid, in_port, fields):
        """Where a frame leaves the fabric: [(dpid, port, fields)]; CONTROLLER as a port."""
        for _ in range(32):
            outs = self.switch(dpid).run({**fields, "in_port": in_port})
            if len(outs) != 1:
                return [(dpid, port, f) for port, f in outs]
            port, fields = outs[0]
            nxt = self.wiring.get((dpid, port))
            if nxt is None:
                return [(dpid, port, fields)]
            dpid, in_port = nxt
        raise AssertionError("forwarding loop")


def syn(client, cport, dst_mac):
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst_mac, mac(client), ether.ETH_TYPE_IP))
    pkt.add_protocol(ipv4.ipv4(src=ip(client), dst=VIP, proto=inet.IPPROTO_TCP))
    pkt.add_protocol(tcp.tcp(src_port=cport, dst_port=80, bits=tcp.TCP_SYN))
    pkt.serialize()
    return bytes(pkt.data)


def request(client, cport, vip_mac):
    return {"eth_src": mac(client), "eth_dst": vip_mac, "eth_type": 0x800, "ip_proto": 6,
            "ipv4_src": ip(client), "ipv4_dst": VIP, "tcp_src": cport, "tcp_dst": 80}


def reply(node, client, cport):
    return {"eth_src": mac(node), "eth_dst": mac(client), "eth_type": 0x800, "ip_proto": 6,
            "ipv4_src": ip(node), "ipv4_dst": ip(client), "tcp_src": 80, "tcp_dst": cport}


class Lab:
    """A 4-switch ring, host i on switch i port 1; web = VIP:80 on h3, standbys h2 and h4."""

    def __init__(self, mode):
        self.now = 0.0
        graph, links = ring_graph(4)
        self.hosts = HostTable()
        for i in range(1, 5):
            self.hosts.learn(mac(i), i, 1, ip(i), 0.0)
        self.table = SignatureTable()
        self.forwarder = Forwarder(graph, self.hosts, self.table, clock=lambda: self.now)
        self.svc = Service.from_dict({
            "name": "web", "vip": VIP, "port": 80, "mode": mode, "drain_seconds": 30,
            "primary": {"name": "h3", "ip": ip(3), "mac": mac(3)},
            "standbys": [{"name": "h2", "ip": ip(2), "mac": mac(2)},
                         {"name": "h4", "ip": ip(4), "mac": mac(4)}],
            "thresholds": {"min_observations": 2, "confirm": 2, "verify_seconds": 20}})
        self.rt = ServiceRuntime(
            ServiceTable([self.svc]), self.table, graph,
            locate=lambda node: self.hosts.get(node.mac).dpid,
            ensure_path=lambda cmac, node: self.forwarder.install_pair(
                self.hosts.get(cmac), self.hosts.get(node.mac)),
            clock=lambda: self.now)
        self.net = RewritingNetwork(links)
        for dpid in graph.switches():
            self.net.send(self.forwarder.switch_connected(dpid, [1, 2, 3]))
            self.net.send([(dpid, m) for _, m in self.rt.switch_connected(dpid)])

    def connect(self, client, cport):
        msgs = self.rt.packet_in(client, 1, syn(client, cport, self.svc.vip_mac))
        self.net.send(msgs)
        return msgs

    def lands(self, client, cport):
        """The host a client's request reaches, checking the rewrite on the way."""
        [(dpid, port, f)] = self.net.walk(client, 1, request(client, cport, self.svc.vip_mac))
        assert port == 1 and (f["eth_dst"], f["ipv4_dst"], f["tcp_dst"]) == (
            mac(dpid), ip(dpid), 80)
        assert (f["eth_src"], f["ipv4_src"]) == (mac(client), ip(client))
        return dpid

    def answer(self, node, client, cport, packets=3):
        """The node replies; returns what the client receives. Counts on the reply rule."""
        out = self.net.walk(node, 1, reply(node, client, cport))
        key = FlowKey("web", ip(client), cport)
        for cookie in self.rt.shadow.get(key).cookies:
            st = self.table.by_cookie(cookie)
            if st.table_id == FORWARD_TABLE and st.match["ipv4_src"] == ip(node) and out:
                self.table.update_counters(st, st.packets + packets, 0, self.now)
        return out

    def interval(self, sick=None, dt=5.0):
        self.now += dt
        for i in (2, 3, 4):
            loss = 0.7 if f"h{i}" == sick else 0.0
            self.rt.observe(f"h{i}", self.now, {"loss": loss, "latency_ms": 1.0})
        msgs, plan = self.rt.tick(self.now)
        self.net.send(msgs)
        return plan


def test_arp_for_the_vip_is_answered_with_the_vip_mac():
    lab = Lab("stateful")
    [(dpid, out)] = lab.rt.packet_in(1, 1, arp_request(1, 100))
    assert dpid == 1 and [a.port for a in out.actions] == [1]
    answer = packet.Packet(out.data).get_protocol(arp.arp)
    assert (answer.opcode, answer.src_ip, answer.src_mac) == (arp.ARP_REPLY, VIP,
                                                               lab.svc.vip_mac)
    assert (answer.dst_ip, answer.dst_mac) == (ip(1), mac(1))
    assert lab.rt.packet_in(1, 1, arp_request(1, 2)) is None  # not ours: the forwarder's
    # On the switches, ARP for the VIP and new VIP flows go to the controller.
    arp_fields = {"eth_type": 0x806, "arp_tpa": VIP, "eth_dst": "ff:ff:ff:ff:ff:ff"}
    assert lab.net.walk(2, 1, arp_fields) == [(2, ofp.OFPP_CONTROLLER, {**arp_fields,
                                                                       "in_port": 1})]
    [(_, port, _)] = lab.net.walk(2, 1, request(2, 5555, lab.svc.vip_mac))
    assert port == ofp.OFPP_CONTROLLER


def test_client_reaches_the_node_and_replies_come_from_the_vip():
    lab = Lab("stateful")
    msgs = lab.connect(1, 40000)
    # The first packet is re-injected into the pipeline once its rules are in.
    po = msgs[-1][1]
    assert isinstance(po, parser.OFPPacketOut) and po.actions[0].port == ofp.OFPP_TABLE
    assert lab.lands(1, 40000) == 3
    [(dpid, port, f)] = lab.answer(3, 1, 40000)
    assert (dpid, port) == (1, 1)
    assert (f["eth_src"], f["ipv4_src"], f["tcp_src"]) == (lab.svc.vip_mac, VIP, 80)
    assert (f["eth_dst"], f["ipv4_dst"], f["tcp_dst"]) == (mac(1), ip(1), 40000)
    # The steering rules are ST entries, tied to the flow by cookie.
    entry = lab.rt.shadow.get(FlowKey("web", ip(1), 40000))
    kinds = {lab.table.by_cookie(c).kind for c in entry.cookies}
    assert kinds == {"service"} and len(entry.cookies) == 2
    assert [s.node for s in entry.shadows] == ["h2", "h4"]


def test_stateful_drain_on_the_fake_datapath():
    lab = Lab("stateful")
    lab.interval()
    lab.connect(1, 40000)
    lab.answer(3, 1, 40000)
    lab.interval(sick="h3")
    lab.interval(sick="h3")  # smoothed health: the first bad interval only halves it
    plan = lab.interval(sick="h3")  # t=20: h3 trips
    [sw] = [e for e in plan.events if e.kind == "switchover"]
    assert (sw.node, sw.target, sw.flows) == ("h3", "h2", 1) and plan.moves == []
    # The existing connection stays on h3; a new one goes to h2.
    lab.connect(1, 40001)
    assert lab.lands(1, 40000) == 3 and lab.lands(1, 40001) == 2
    assert lab.answer(2, 1, 40001)[0][2]["ipv4_src"] == VIP
    plan = lab.interval(sick="h3")
    assert [e.kind for e in plan.events] == ["committed"]  # h2's reply counters rose
    assert plan.retire == []  # but h3 still has a connection
    while lab.now < 20 + 30:
        plan = lab.interval(sick="h3")
    assert [(m.key.client_port, m.to_node) for m in plan.moves] == [(40000, "h4")]
    assert plan.retire == [("web", "h3")]
    assert lab.lands(1, 40000) == 4
    # h3's old reply rule is gone: it can no longer answer as the VIP.
    [(dpid, port, f)] = lab.net.walk(3, 1, reply(3, 1, 40000))
    assert f["ipv4_src"] == ip(3)


def test_stateless_moves_everything_at_once_on_the_fake_datapath():
    lab = Lab("stateless")
    lab.interval()
    for cport in (40000, 40001):
        lab.connect(1, cport)
    for _ in range(2):
        lab.interval(sick="h3")
    plan = lab.interval(sick="h3")
    assert sorted(m.to_node for m in plan.moves) == ["h2", "h4"]
    assert {lab.lands(1, 40000), lab.lands(1, 40001)} == {2, 4}
    # No reply rule for h3 is left on the switches.
    assert not any(f[2].get("ipv4_src") == ip(3) for f in lab.net.switch(1).flows)


def test_idle_timeout_of_a_request_rule_ends_the_flow_and_removes_its_reply_rule():
    lab = Lab("stateful")
    lab.connect(1, 40000)
    key = FlowKey("web", ip(1), 40000)
    cookies = sorted(lab.rt.shadow.get(key).cookies)
    request_cookie = next(c for c in cookies if lab.table.by_cookie(c).table_id != FORWARD_TABLE)
    lab.table.mark_removed(lab.table.by_cookie(request_cookie), "idle_timeout", 1.0)
    msgs = lab.rt.flow_removed(request_cookie, 1.0)
    assert len(msgs) == 1 and msgs[0][1].command == ofp.OFPFC_DELETE
    lab.net.send(msgs)
    assert lab.rt.shadow.get(key).status == "ended"
    assert not any(f[2].get("ipv4_src") == ip(3) for f in lab.net.switch(1).flows)
    assert lab.rt.flow_removed(request_cookie, 2.0) == []


