"""Wire-format decoding for the mirror engine: Ethernet to DNS/DHCP with ``struct``.

The State Synchronization Engine sees every frame to and from a container, so
decoding is the hot path.  os-ken's packet library builds an object per header
and validates far more than we need; here one flat :class:`Packet` carries the
few fields the engine uses, decoded with precompiled :class:`struct.Struct`
objects.  Only DNS and DHCP payloads (rare) get a second, deeper pass.

Everything a hostile or broken frame can do ends in :class:`MalformedPacket`:
no ``IndexError``/``struct.error`` escapes, so the engine has exactly one
exception to catch and count.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

ETH_IPV4 = 0x0800
ETH_ARP = 0x0806
ETH_IPV6 = 0x86DD
ETH_VLAN = 0x8100
ETH_QINQ = 0x88A8

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_PSH = 0x08
TCP_ACK = 0x10
TCP_URG = 0x20

DNS_A = 1
DNS_NS = 2
DNS_CNAME = 5
DNS_SOA = 6
DNS_AAAA = 28
DNS_TYPE_NAMES = {DNS_A: "A", DNS_NS: "NS", DNS_CNAME: "CNAME", DNS_SOA: "SOA", DNS_AAAA: "AAAA",
                  12: "PTR", 15: "MX", 16: "TXT", 33: "SRV", 65: "HTTPS"}
RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}

_ETH = struct.Struct("!6s6sH")
_U16 = struct.Struct("!H")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_TCP = struct.Struct("!HHIIBB")
_UDP = struct.Struct("!HHHH")
_ICMP = struct.Struct("!BBHHH")
_DNS_HDR = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_DHCP = struct.Struct("!BBBBIHH4s4s4s4s16s")

DHCP_MAGIC = b"\x63\x82\x53\x63"
DHCP_ACK = 5


class MalformedPacket(Exception):
    """Any frame the decoder cannot make sense of; ``reason`` says why (for counting)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def mac_str(raw: bytes) -> str:
    """``aa:bb:cc:dd:ee:ff`` for 6 raw bytes."""
    return raw.hex(":")


def mac_bytes(text: str) -> bytes:
    """Parse ``aa:bb:cc:dd:ee:ff`` (or ``-``/no separators); ValueError on anything else."""
    try:
        raw = bytes.fromhex(text.replace(":", "").replace("-", ""))
    except ValueError:
        raw = b""
    if len(raw) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return raw


def ip_str(raw: bytes) -> str:
    """Dotted quad for 4 bytes, RFC 5952 text for 16 bytes."""
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    return socket.inet_ntop(socket.AF_INET6, raw)


def ip_bytes(text: str) -> bytes:
    """Raw form of an IPv4/IPv6 address; ValueError if it is neither."""
    try:
        return socket.inet_pton(socket.AF_INET, text)
    except OSError:
        try:
            return socket.inet_pton(socket.AF_INET6, text)
        except OSError:
            raise ValueError(f"not an IP address: {text!r}") from None


class Packet:
    """One decoded frame.  Attributes not set by the decoder keep these class defaults.

    Kept as a plain class (no ``__init__``) because creating it and setting only the
    fields a frame has is the cheapest object Python offers for the hot path.
    Addresses stay raw ``bytes``; convert with :func:`mac_str`/:func:`ip_str`.
    """

    src_mac: bytes = b""
    dst_mac: bytes = b""
    vlan: int | None = None
    ethertype: int = 0
    wire_len: int = 0
    # ARP
    arp_op: int = 0
    arp_sha: bytes = b""
    arp_spa: bytes = b""
    arp_tha: bytes = b""
    arp_tpa: bytes = b""
    # IP
    ip_version: int = 0
    src_ip: bytes = b""
    dst_ip: bytes = b""
    proto: int = -1
    ip_len: int = 0
    ttl: int = 0
    fragment: bool = False
    frag_offset: int = 0
    more_fragments: bool = False
    # L4
    sport: int = 0
    dport: int = 0
    tcp_flags: int = 0
    seq: int = 0
    ack: int = 0
    payload_len: int = 0
    icmp_type: int = -1
    icmp_code: int = -1
    icmp_id: int = 0
    icmp_seq: int = 0
    payload_offset: int = 0
    frame: bytes = b""

    @property
    def payload(self) -> bytes:
        """Transport payload (TCP/UDP) as bytes; only what was captured."""
        off = self.payload_offset
        return self.frame[off:off + self.payload_len]

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        fields = {k: getattr(self, k) for k in ("ethertype", "proto", "sport", "dport")}
        return f"Packet({fields})"


def parse(frame: bytes) -> Packet:
    """Decode an Ethernet frame down to its transport header.

    IPv4 fragments after the first carry no transport header: they come back with
    ``fragment=True`` and ``proto`` set but no ports, so callers count them without
    reassembling.  Unknown ethertypes and IP protocols are not errors.
    """
    n = len(frame)
    if n < 14:
        raise MalformedPacket("ethernet: truncated header")
    p = Packet()
    p.frame = frame
    p.dst_mac, p.src_mac, etype = _ETH.unpack_from(frame, 0)
    off = 14
    if etype == ETH_VLAN or etype == ETH_QINQ:
        for _ in range(2):
            if n < off + 4:
                raise MalformedPacket("vlan: truncated tag")
            tci, etype = struct.unpack_from("!HH", frame, off)
            p.vlan = tci & 0x0FFF
            off += 4
            if etype != ETH_VLAN and etype != ETH_QINQ:
                break
        else:
            raise MalformedPacket("vlan: more than two tags")
    p.ethertype = etype
    if etype == ETH_IPV4:
        if n < off + 20:
            raise MalformedPacket("ipv4: truncated header")
        vihl, _tos, total, _ident, frag, ttl, proto, _csum, src, dst = _IPV4.unpack_from(
            frame, off
        )
        if vihl >> 4 != 4:
            raise MalformedPacket("ipv4: version is not 4")
        ihl = (vihl & 0x0F) << 2
        if ihl < 20:
            raise MalformedPacket("ipv4: header length below 20")
        if total < ihl:
            raise MalformedPacket("ipv4: total length below header length")
        if n < off + ihl:
            raise MalformedPacket("ipv4: truncated options")
        p.ip_version = 4
        p.src_ip = src
        p.dst_ip = dst
        p.proto = proto
        p.ip_len = total
        p.ttl = ttl
        l4len = total - ihl
        off += ihl
        frag_off = frag & 0x1FFF
        if frag & 0x2000 or frag_off:
            p.fragment = True
            p.frag_offset = frag_off << 3
            p.more_fragments = bool(frag & 0x2000)
            if frag_off:
                p.payload_offset = off
                p.payload_len = l4len
                return p
    elif etype == ETH_ARP:
        if n < off + 28:
            raise MalformedPacket("arp: truncated")
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(frame, off)
        if htype != 1 or ptype != ETH_IPV4 or hlen != 6 or plen != 4:
            raise MalformedPacket("arp: not Ethernet/IPv4")
        p.arp_op = op
        p.arp_sha = sha
        p.arp_spa = spa
        p.arp_tha = tha
        p.arp_tpa = tpa
        return p
    elif etype == ETH_IPV6:
        if n < off + 40:
            raise MalformedPacket("ipv6: truncated header")
        vtf, plen, nh, hop, src, dst = _IPV6.unpack_from(frame, off)
        if vtf >> 28 != 6:
            raise MalformedPacket("ipv6: version is not 6")
        p.ip_version = 6
        p.src_ip = src
        p.dst_ip = dst
        p.proto = nh
        p.ttl = hop
        p.ip_len = plen + 40
        l4len = plen
        off += 40
    else:
        return p
    # Transport header of IPv4 (first fragment or whole) / IPv6 (no extension headers).
    proto = p.proto
    if proto == PROTO_TCP:
        if n < off + 14 or l4len < 20:
            if p.fragment:
                return p
            raise MalformedPacket("tcp: truncated header")
        p.sport, p.dport, p.seq, p.ack, doff, flags = _TCP.unpack_from(frame, off)
        hl = (doff >> 4) << 2
        if hl < 20 or hl > l4len:
            raise MalformedPacket("tcp: bad data offset")
        p.tcp_flags = flags
        p.payload_offset = off + hl
        p.payload_len = l4len - hl
    elif proto == PROTO_UDP:
        if n < off + 8 or l4len < 8:
            if p.fragment:
                return p
            raise MalformedPacket("udp: truncated header")
        p.sport, p.dport, ulen, _ = _UDP.unpack_from(frame, off)
        if ulen < 8 or (ulen > l4len and not p.fragment):
            raise MalformedPacket("udp: bad length")
        p.payload_offset = off + 8
        p.payload_len = ulen - 8
    elif proto == PROTO_ICMP or proto == PROTO_ICMPV6:
        if n < off + 8 or l4len < 8:
            if p.fragment:
                return p
            raise MalformedPacket("icmp: truncated header")
        p.icmp_type, p.icmp_code, _, p.icmp_id, p.icmp_seq = _ICMP.unpack_from(frame, off)
        p.payload_offset = off + 8
        p.payload_len = l4len - 8
    return p


# -- DNS --------------------------------------------------------------------------------------


@dataclass(slots=True)
class DnsRecord:
    """One resource record: ``data`` is text (address or name) for A/AAAA/CNAME/NS."""

    name: str
    rtype: int
    ttl: int
    data: str | None = None
    soa_minimum: int | None = None

    @property
    def type_name(self) -> str:
        return DNS_TYPE_NAMES.get(self.rtype, str(self.rtype))


@dataclass(slots=True)
class DnsMessage:
    """A decoded DNS message: header bits, the question(s), answers and authority."""

    ident: int
    is_response: bool
    rcode: int
    questions: list[tuple[str, int]] = field(default_factory=list)
    answers: list[DnsRecord] = field(default_factory=list)
    authority: list[DnsRecord] = field(default_factory=list)

    @property
    def rcode_name(self) -> str:
        return RCODE_NAMES.get(self.rcode, str(self.rcode))


def _dns_name(msg: bytes, off: int) -> tuple[str, int]:
    """Read a possibly compressed name; returns (name, offset after it in the original place).

    Compression pointers must point strictly backwards and a name may follow at most
    a bounded number of them, so crafted loops and forward references are refused.
    """
    labels: list[str] = []
    end = -1
    jumps = 0
    total = 0
    n = len(msg)
    while True:
        if off >= n:
            raise MalformedPacket("dns: name runs past the end")
        ln = msg[off]
        if ln == 0:
            off += 1
            break
        kind = ln & 0xC0
        if kind == 0xC0:
            if off + 1 >= n:
                raise MalformedPacket("dns: truncated compression pointer")
            ptr = ((ln & 0x3F) << 8) | msg[off + 1]
            if ptr >= off:
                raise MalformedPacket("dns: compression pointer does not point backwards")
            jumps += 1
            if jumps > 32:
                raise MalformedPacket("dns: compression pointer loop")
            if end < 0:
                end = off + 2
            off = ptr
            continue
        if kind:
            raise MalformedPacket("dns: unsupported label type")
        off += 1
        if off + ln > n:
            raise MalformedPacket("dns: label runs past the end")
        total += ln + 1
        if total > 255:
            raise MalformedPacket("dns: name longer than 255 bytes")
        labels.append(msg[off:off + ln].decode("ascii", "backslashreplace"))
        off += ln
    return ".".join(labels).lower() or ".", (end if end >= 0 else off)


def _dns_records(msg: bytes, off: int, count: int, out: list[DnsRecord]) -> int:
    n = len(msg)
    for _ in range(count):
        name, off = _dns_name(msg, off)
        if off + 10 > n:
            raise MalformedPacket("dns: truncated resource record")
        rtype, _rclass, ttl, rdlen = _RR.unpack_from(msg, off)
        off += 10
        if off + rdlen > n:
            raise MalformedPacket("dns: rdata runs past the end")
        rec = DnsRecord(name, rtype, ttl & 0x7FFFFFFF)
        if rtype == DNS_A:
            if rdlen != 4:
                raise MalformedPacket("dns: A record is not 4 bytes")
            rec.data = socket.inet_ntop(socket.AF_INET, msg[off:off + 4])
        elif rtype == DNS_AAAA:
            if rdlen != 16:
                raise MalformedPacket("dns: AAAA record is not 16 bytes")
            rec.data = socket.inet_ntop(socket.AF_INET6, msg[off:off + 16])
        elif rtype == DNS_CNAME or rtype == DNS_NS:
            rec.data, _ = _dns_name(msg, off)
        elif rtype == DNS_SOA:
            _mname, o = _dns_name(msg, off)
            _rname, o = _dns_name(msg, o)
            if o + 20 > off + rdlen:
                raise MalformedPacket("dns: truncated SOA")
            rec.soa_minimum = struct.unpack_from("!I", msg, o + 16)[0]
        out.append(rec)
        off += rdlen
    return off


def parse_dns(msg: bytes) -> DnsMessage:
    """Decode a DNS message (UDP payload, or TCP payload without the length prefix)."""
    if len(msg) < 12:
        raise MalformedPacket("dns: truncated header")
    ident, flags, qd, an, ns, _ar = _DNS_HDR.unpack_from(msg, 0)
    if qd > 64 or an > 512 or ns > 512:
        raise MalformedPacket("dns: implausible record counts")
    m = DnsMessage(ident, bool(flags & 0x8000), flags & 0x000F)
    off = 12
    for _ in range(qd):
        name, off = _dns_name(msg, off)
        if off + 4 > len(msg):
            raise MalformedPacket("dns: truncated question")
        qtype = _U16.unpack_from(msg, off)[0]
        m.questions.append((name, qtype))
        off += 4
    off = _dns_records(msg, off, an, m.answers)
    _dns_records(msg, off, ns, m.authority)
    return m


# -- DHCP -------------------------------------------------------------------------------------


@dataclass(slots=True)
class DhcpMessage:
    """The parts of a BOOTP/DHCP message that shape a client's network state."""

    op: int
    msg_type: int | None
    chaddr: bytes
    yiaddr: str
    subnet_mask: str | None = None
    routers: list[str] = field(default_factory=list)
    lease_time: int | None = None
    server_id: str | None = None


def parse_dhcp(payload: bytes) -> DhcpMessage:
    """Decode a DHCP message: yiaddr, option 1 (mask), 3 (routers), 51 (lease), 53, 54."""
    if len(payload) < 240:
        raise MalformedPacket("dhcp: truncated")
    op, htype, hlen, _hops, _xid, _secs, _flags, _ci, yi, _si, _gi, chaddr = _DHCP.unpack_from(
        payload, 0
    )
    if payload[236:240] != DHCP_MAGIC:
        raise MalformedPacket("dhcp: bad magic cookie")
    if htype != 1 or hlen != 6:
        raise MalformedPacket("dhcp: not Ethernet")
    m = DhcpMessage(op, None, chaddr[:6], socket.inet_ntop(socket.AF_INET, yi))
    off = 240
    n = len(payload)
    while off < n:
        code = payload[off]
        if code == 255:
            break
        if code == 0:
            off += 1
            continue
        if off + 1 >= n:
            raise MalformedPacket("dhcp: truncated option")
        ln = payload[off + 1]
        val = payload[off + 2:off + 2 + ln]
        if len(val) != ln:
            raise MalformedPacket("dhcp: option runs past the end")
        if code == 53 and ln == 1:
            m.msg_type = val[0]
        elif code == 1 and ln == 4:
            m.subnet_mask = socket.inet_ntop(socket.AF_INET, val)
        elif code == 3 and ln >= 4 and ln % 4 == 0:
            m.routers = [socket.inet_ntop(socket.AF_INET, val[i:i + 4]) for i in range(0, ln, 4)]
        elif code == 51 and ln == 4:
            m.lease_time = struct.unpack("!I", val)[0]
        elif code == 54 and ln == 4:
            m.server_id = socket.inet_ntop(socket.AF_INET, val)
        off += 2 + ln
    return m


# -- construction (tests, synthetic captures, the benchmark) ----------------------------------


def inet_checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return int(~s & 0xFFFF)


def build_eth(dst: str, src: str, ethertype: int, payload: bytes, vlan: int | None = None) -> bytes:
    """Ethernet frame (optionally 802.1Q tagged) around ``payload``."""
    head = mac_bytes(dst) + mac_bytes(src)
    if vlan is not None:
        head += struct.pack("!HH", ETH_VLAN, vlan & 0x0FFF)
    return head + struct.pack("!H", ethertype) + payload


def build_ipv4(src: str, dst: str, proto: int, payload: bytes, ttl: int = 64, ident: int = 0,
               frag: int = 0, options: bytes = b"") -> bytes:
    """IPv4 header with a valid checksum; ``frag`` is the raw flags+offset field."""
    if len(options) % 4:
        raise ValueError("IPv4 options must be a multiple of 4 bytes")
    ihl = 5 + len(options) // 4
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(payload), ident, frag, ttl,
                      proto, 0, ip_bytes(src), ip_bytes(dst)) + options
    hdr = hdr[:10] + struct.pack("!H", inet_checksum(hdr)) + hdr[12:]
    return hdr + payload


def build_ipv6(src: str, dst: str, nh: int, payload: bytes, hop: int = 64) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nh, hop, ip_bytes(src),
                       ip_bytes(dst)) + payload


def build_tcp(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"",
              window: int = 65535) -> bytes:
    """TCP header (no options, checksum left zero: nothing here verifies it)."""
    return struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4,
                       flags, window, 0, 0) + payload


def build_udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def build_icmp(icmp_type: int, code: int, ident: int, seq: int, data: bytes = b"") -> bytes:
    body = struct.pack("!BBHHH", icmp_type, code, 0, ident, seq) + data
    return body[:2] + struct.pack("!H", inet_checksum(body)) + body[4:]


def build_arp(op: int, sha: str, spa: str, tha: str, tpa: str) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, ETH_IPV4, 6, 4, op, mac_bytes(sha), ip_bytes(spa),
                       mac_bytes(tha), ip_bytes(tpa))


def _dns_encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def build_dns(ident: int, qname: str, qtype: int = DNS_A, response: bool = False,
              rcode: int = 0, answers: list[tuple[str, int, str, int]] | None = None,
              soa_minimum: int | None = None) -> bytes:
    """DNS message with one question.  ``answers`` are (owner, type, data, ttl); an owner
    equal to the question name is written as a compression pointer to it, as servers do."""
    answers = answers or []
    flags = (0x8180 | rcode) if response else 0x0100
    ns = 1 if soa_minimum is not None else 0
    msg = struct.pack("!HHHHHH", ident, flags, 1, len(answers), ns, 0)
    msg += _dns_encode_name(qname) + struct.pack("!HH", qtype, 1)
    for owner, rtype, data, ttl in answers:
        name = b"\xc0\x0c" if owner.rstrip(".") == qname.rstrip(".") else _dns_encode_name(owner)
        if rtype in (DNS_A, DNS_AAAA):
            rdata = ip_bytes(data)
        else:
            rdata = _dns_encode_name(data)
        msg += name + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata
    if soa_minimum is not None:
        rdata = (_dns_encode_name("ns." + qname) + _dns_encode_name("admin." + qname)
                 + struct.pack("!IIIII", 1, 3600, 600, 86400, soa_minimum))
        msg += b"\xc0\x0c" + struct.pack("!HHIH", DNS_SOA, 1, 3600, len(rdata)) + rdata
    return msg


def build_dhcp(op: int, msg_type: int, chaddr: str, yiaddr: str = "0.0.0.0",
               subnet_mask: str | None = None, router: str | None = None,
               lease: int | None = None, xid: int = 1) -> bytes:
    """BOOTP/DHCP message with options 53 and, if given, 1, 3 and 51."""
    msg = struct.pack("!BBBBIHH4s4s4s4s16s", op, 1, 6, 0, xid, 0, 0, b"\0" * 4, ip_bytes(yiaddr),
                      b"\0" * 4, b"\0" * 4, mac_bytes(chaddr) + b"\0" * 10)
    msg += b"\0" * 192 + DHCP_MAGIC + bytes([53, 1, msg_type])
    if subnet_mask:
        msg += bytes([1, 4]) + ip_bytes(subnet_mask)
    if router:
        msg += bytes([3, 4]) + ip_bytes(router)
    if lease is not None:
        msg += bytes([51, 4]) + struct.pack("!I", lease)
    return msg + b"\xff"
