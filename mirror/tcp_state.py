"""Per-connection tracking for one container: TCP state machine, UDP/ICMP flows.

A flow is keyed from the container's side (``proto, local ip, local port, remote
ip, remote port``) so both directions of a connection land in one dict slot
without sorting addresses.  Who *originated* it is decided once, like conntrack
and Zeek do: the sender of a bare SYN, the receiver of a SYN-ACK, or — when we
pick a connection up mid-stream — the sender of the first packet (flipped when
it comes from a well-known port to an ephemeral one).

Two views of the same connection are kept because both are useful downstream:

* ``state`` — the conntrack name (SYN_SENT ... CLOSE), which is what the applier
  writes into the mirror namespace with ``conntrack -I``;
* ``conn_state`` — Zeek's summary (S0, SF, REJ, RSTO ...), computed from
  per-endpoint states with Zeek's own decision order, plus a Zeek-style
  ``history`` string (uppercase = originator).

The per-packet path only touches counters and the sequence high-water mark;
state is recomputed only for packets carrying SYN/FIN/RST or acknowledging a FIN.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mirror.packets import ip_str

# A connection's table key: protocol and both endpoints, normalised (see ConnTable).
FlowTuple = tuple[Any, ...]

M32 = 0xFFFFFFFF
HALF = 0x80000000

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10

# Zeek endpoint states.
INACTIVE, SYN_SENT_E, SYN_ACK_SENT_E, PARTIAL, ESTABLISHED_E, CLOSED_E, RESET_E = range(7)

# conntrack default timeouts (seconds), net.netfilter.nf_conntrack_*_timeout*.
TIMEOUTS = {
    "SYN_SENT": 120.0, "SYN_RECV": 60.0, "ESTABLISHED": 432000.0, "FIN_WAIT": 120.0,
    "CLOSE_WAIT": 60.0, "LAST_ACK": 30.0, "TIME_WAIT": 120.0, "CLOSE": 10.0,
    "UNREPLIED": 30.0, "REPLIED": 120.0,
}
ICMP_TIMEOUT = 30.0
# Segments in one direction after which a TCP flow is worth a shunt decision (see
# ConnectionTable.on_busy): far more than any handshake or request/response exchange.
BUSY_PACKETS = 128
PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}

# History letters, indexed by bit: S h A D F R T (retransmission); '^' is flipped.
_H_SYN, _H_SYNACK, _H_ACK, _H_DATA, _H_FIN, _H_RST, _H_RETX = (1 << i for i in range(7))
_LETTERS = {_H_SYN: "S", _H_SYNACK: "H", _H_ACK: "A", _H_DATA: "D", _H_FIN: "F",
            _H_RST: "R", _H_RETX: "T"}


def _text(ip: str | bytes) -> str:
    return ip if isinstance(ip, str) else ip_str(ip)


def _fmt_ep(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class Endpoint:
    """One direction of a flow: what that side sent."""

    __slots__ = ("packets", "bytes", "payload", "retrans", "zstate", "next_seq", "syn",
                 "fin_seq", "fin_acked", "rst", "hist")

    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0
        self.payload = 0
        self.retrans = 0
        self.zstate = INACTIVE
        self.next_seq: int | None = None
        self.syn = False
        self.fin_seq: int | None = None
        self.fin_acked = False
        self.rst = False
        self.hist = 0

    def as_dict(self) -> dict[str, int]:
        return {"packets": self.packets, "bytes": self.bytes, "payload_bytes": self.payload,
                "retransmissions": self.retrans}


class Flow:
    """A tracked TCP/UDP/ICMP conversation between the container and one peer."""

    __slots__ = ("proto", "key", "local_is_orig", "orig_ip", "orig_port", "resp_ip",
                 "resp_port", "orig", "resp", "first_seen", "last_seen", "state", "partial",
                 "flipped", "history", "icmp_type", "icmp_code", "established")

    def __init__(self, proto: int, key: FlowTuple, local_is_orig: bool, lip: str, lport: int,
                 rip: str, rport: int, ts: float) -> None:
        self.proto = proto
        self.key = key
        self.local_is_orig = local_is_orig
        if local_is_orig:
            self.orig_ip, self.orig_port, self.resp_ip, self.resp_port = lip, lport, rip, rport
        else:
            self.orig_ip, self.orig_port, self.resp_ip, self.resp_port = rip, rport, lip, lport
        self.orig = Endpoint()
        self.resp = Endpoint()
        self.first_seen = ts
        self.last_seen = ts
        self.state = ""
        self.partial = False
        self.flipped = False
        self.history = ""
        self.icmp_type = -1
        self.icmp_code = -1
        self.established = False

    @property
    def name(self) -> str:
        """Stable text key: ``tcp 10.0.0.1:40000 > 10.0.0.2:80`` (originator first)."""
        return (f"{PROTO_NAMES.get(self.proto, self.proto)} "
                f"{_fmt_ep(self.orig_ip, self.orig_port)} > "
                f"{_fmt_ep(self.resp_ip, self.resp_port)}")

    @property
    def conn_state(self) -> str:
        """Zeek's conn_state, with Zeek's decision order (base/protocols/conn/main.zeek)."""
        o, r = self.orig, self.resp
        if self.proto != 6:
            if o.packets:
                return "SF" if r.packets else "S0"
            return "SHR" if r.packets else "OTH"
        os_, rs = o.zstate, r.zstate
        o_inactive = os_ == INACTIVE or os_ == PARTIAL
        r_inactive = rs == INACTIVE or rs == PARTIAL
        if rs == RESET_E:
            if os_ in (SYN_SENT_E, SYN_ACK_SENT_E) or (
                os_ == RESET_E and o.payload == 0 and r.payload == 0
            ):
                return "REJ"
            return "RSTRH" if o_inactive else "RSTR"
        if os_ == RESET_E:
            if r_inactive:
                if o.hist & _H_SYN and not o.hist & (_H_SYNACK | _H_ACK | _H_FIN):
                    return "RSTOS0"
                return "OTH"
            return "RSTO"
        if rs == CLOSED_E and os_ == CLOSED_E:
            return "SF"
        if os_ == CLOSED_E:
            return "SH" if r_inactive else "S2"
        if rs == CLOSED_E:
            return "SHR" if o_inactive else "S3"
        if os_ == SYN_SENT_E and rs == INACTIVE:
            return "S0"
        if os_ == ESTABLISHED_E and rs == ESTABLISHED_E:
            return "S1"
        return "OTH"

    def timeout(self) -> float:
        if self.proto == 6 or self.proto == 17:
            return TIMEOUTS.get(self.state, 120.0)
        return ICMP_TIMEOUT

    def as_dict(self, now: float | None = None) -> dict[str, Any]:
        """JSON-able view; ``expires_in`` (seconds of idle time left) when ``now`` is given."""
        d: dict[str, Any] = {
            "proto": PROTO_NAMES.get(self.proto, str(self.proto)),
            "orig_ip": self.orig_ip, "orig_port": self.orig_port,
            "resp_ip": self.resp_ip, "resp_port": self.resp_port,
            "direction": "outbound" if self.local_is_orig else "inbound",
            "state": self.state, "conn_state": self.conn_state, "history": self.history,
            "partial": self.partial,
            "first_seen": self.first_seen, "last_seen": self.last_seen,
            "orig": self.orig.as_dict(), "resp": self.resp.as_dict(),
        }
        if self.icmp_type >= 0:
            d["icmp_type"], d["icmp_code"] = self.icmp_type, self.icmp_code
        if now is not None:
            d["expires_in"] = round(max(0.0, self.last_seen + self.timeout() - now), 3)
        return d


ChangeHook = Callable[[str, Flow, float], None]


def _seq_before(a: int, b: int) -> bool:
    """``a`` strictly precedes ``b`` in 32-bit sequence space."""
    d = (b - a) & M32
    return 0 < d < HALF


class ConnectionTable:
    """All flows of one container, plus the cumulative counters the rules read.

    ``on_change(action, flow, ts)`` is called with ``add`` for a new flow, ``update``
    when its conntrack state changes and ``remove`` when it expires — not per packet.
    ``on_busy(flow)`` is called when one direction of a TCP flow reaches
    ``BUSY_PACKETS`` segments: the moment a bulk transfer can be told from a
    handshake, so the agent can shunt it without waiting for its next round.
    """

    def __init__(self, on_change: ChangeHook | None = None) -> None:
        self.flows: dict[FlowTuple, Flow] = {}
        self.on_change = on_change
        self.on_busy: Callable[[Flow], None] | None = None
        self.data_packets = 0
        self.retransmissions = 0
        self.rsts = 0
        self.syns = 0

    def __len__(self) -> int:
        return len(self.flows)

    # -- TCP ----------------------------------------------------------------------------------

    def tcp(self, key: FlowTuple, from_local: bool, flags: int, seq: int, ack: int, plen: int,
            wlen: int, ts: float) -> Flow:
        """Account one TCP segment.  ``key`` is ``(6, local ip, local port, remote ip,
        remote port)`` with raw (packed) addresses; ``from_local`` says the container sent
        it, ``wlen`` is the frame's length on the wire and ``plen`` the TCP payload."""
        f = self.flows.get(key)
        if f is None:
            f = self._new_tcp(key, from_local, flags, ts)
            new = True
        else:
            new = False
        f.last_seen = ts
        if from_local == f.local_is_orig:
            src, dst, up = f.orig, f.resp, True
        else:
            src, dst, up = f.resp, f.orig, False
        src.packets += 1
        src.bytes += wlen
        if src.packets == BUSY_PACKETS and self.on_busy is not None:
            self.on_busy(f)
        hist = 0
        retx = False
        if plen:
            self.data_packets += 1
            src.payload += plen
            hist = _H_DATA
            nxt = src.next_seq
            end = (seq + plen) & M32
            if nxt is None:
                src.next_seq = end
            elif _seq_before(seq, nxt):
                # Sequence space already seen.  A keep-alive probe (one byte below
                # the edge) is not a retransmission.
                if not (plen <= 1 and ((nxt - seq) & M32) == 1):
                    retx = True
                if _seq_before(nxt, end):
                    src.next_seq = end
            else:
                src.next_seq = end
        changed = new
        if flags & (SYN | FIN | RST):
            if flags & RST:
                hist |= _H_RST
                self.rsts += 1
                src.rst = True
                src.zstate = RESET_E
            elif flags & SYN:
                if src.syn:
                    retx = True
                src.syn = True
                if flags & ACK:
                    hist |= _H_SYNACK
                    if src.zstate == INACTIVE or src.zstate == PARTIAL:
                        src.zstate = SYN_ACK_SENT_E
                else:
                    self.syns += 1
                    hist |= _H_SYN
                    if src.zstate == INACTIVE:
                        src.zstate = SYN_SENT_E
                end = (seq + plen + 1) & M32
                if src.next_seq is None or _seq_before(src.next_seq, end):
                    src.next_seq = end
            if flags & FIN:
                hist |= _H_FIN
                fin_seq = (seq + plen) & M32
                if src.fin_seq is not None and src.fin_seq == fin_seq and not plen:
                    retx = True
                src.fin_seq = fin_seq
                end = (fin_seq + 1) & M32
                if src.next_seq is None or _seq_before(src.next_seq, end):
                    src.next_seq = end
                if src.zstate != RESET_E:
                    src.zstate = CLOSED_E
            changed = True
        elif src.zstate == INACTIVE:
            src.zstate = PARTIAL
        if flags & ACK:
            if not hist:
                hist = _H_ACK
            if not flags & SYN and (src.zstate == SYN_SENT_E or src.zstate == SYN_ACK_SENT_E):
                if dst.zstate in (SYN_SENT_E, SYN_ACK_SENT_E, ESTABLISHED_E):
                    src.zstate = ESTABLISHED_E
                    if dst.zstate != ESTABLISHED_E:
                        dst.zstate = ESTABLISHED_E
                    changed = True
            if not f.established and up and f.resp.syn and not flags & (SYN | RST):
                f.established = True
                changed = True
            if dst.fin_seq is not None and not dst.fin_acked:
                if not _seq_before(ack, (dst.fin_seq + 1) & M32):
                    dst.fin_acked = True
                    changed = True
        if retx:
            src.retrans += 1
            self.retransmissions += 1
            hist |= _H_RETX
        if hist & ~src.hist:
            self._history(f, src, up, hist)
        if changed:
            old = f.state
            f.state = self._ct_state(f)
            if new:
                if self.on_change is not None:
                    self.on_change("add", f, ts)
            elif f.state != old and self.on_change is not None:
                self.on_change("update", f, ts)
        return f

    def _new_tcp(self, key: FlowTuple, from_local: bool, flags: int, ts: float) -> Flow:
        _, lip, lport, rip, rport = key
        if flags & SYN:
            sender_is_orig = not flags & ACK
            partial = False
            flipped = not sender_is_orig
        else:
            # Mid-stream pickup: assume the sender originated, unless it talks from a
            # well-known port to an ephemeral one (then it is most likely the server).
            sport, dport = (lport, rport) if from_local else (rport, lport)
            sender_is_orig = not (sport < 1024 <= dport)
            partial = True
            flipped = not sender_is_orig
        f = Flow(6, key, from_local == sender_is_orig, _text(lip), lport, _text(rip), rport, ts)
        f.partial = partial
        f.flipped = flipped
        if flipped:
            f.history = "^"
        if partial:
            f.established = True
        self.flows[key] = f
        return f

    @staticmethod
    def _history(f: Flow, src: Endpoint, up: bool, hist: int) -> None:
        new = hist & ~src.hist
        src.hist |= new
        letters = ""
        for bit, letter in _LETTERS.items():
            if new & bit:
                letters += letter if up else letter.lower()
        f.history += letters

    @staticmethod
    def _ct_state(f: Flow) -> str:
        o, r = f.orig, f.resp
        if o.rst or r.rst:
            return "CLOSE"
        of, rf = o.fin_seq is not None, r.fin_seq is not None
        if of and rf:
            return "TIME_WAIT" if o.fin_acked and r.fin_acked else "LAST_ACK"
        if of or rf:
            return "CLOSE_WAIT" if (o.fin_acked or r.fin_acked) else "FIN_WAIT"
        if f.established:
            return "ESTABLISHED"
        if r.syn:
            return "SYN_RECV"
        if o.syn:
            return "SYN_SENT"
        return "ESTABLISHED"

    # -- UDP / ICMP ---------------------------------------------------------------------------

    def datagram(self, proto: int, key: FlowTuple, from_local: bool, wlen: int, plen: int,
                 ts: float, icmp_type: int = -1, icmp_code: int = -1) -> Flow:
        """Account one UDP datagram or ICMP message: packets/bytes and UNREPLIED/REPLIED.
        ``key`` is shaped like :meth:`tcp`'s; ICMP echo uses the identifier as both ports."""
        f = self.flows.get(key)
        if f is None:
            _, lip, lport, rip, rport = key
            f = Flow(proto, key, from_local, _text(lip), lport, _text(rip), rport, ts)
            f.state = "UNREPLIED"
            f.icmp_type, f.icmp_code = icmp_type, icmp_code
            self.flows[key] = f
            src = f.orig
            src.packets = 1
            src.bytes = wlen
            src.payload = plen
            if self.on_change is not None:
                self.on_change("add", f, ts)
            return f
        f.last_seen = ts
        src = f.orig if from_local == f.local_is_orig else f.resp
        src.packets += 1
        src.bytes += wlen
        src.payload += plen
        if src is f.resp and f.state == "UNREPLIED":
            f.state = "REPLIED"
            if self.on_change is not None:
                self.on_change("update", f, ts)
        return f

    # -- expiry -------------------------------------------------------------------------------

    def expire(self, now: float) -> list[Flow]:
        """Drop flows idle longer than their state's timeout; returns them."""
        gone = [f for f in self.flows.values() if now - f.last_seen > f.timeout()]
        for f in gone:
            del self.flows[f.key]
            if self.on_change is not None:
                self.on_change("remove", f, now)
        return gone

    def snapshot(self, now: float | None = None) -> list[dict[str, Any]]:
        return [f.as_dict(now) for f in sorted(self.flows.values(), key=lambda f: f.first_seen)]
