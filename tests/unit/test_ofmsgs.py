"""Message building: barrier classification, and matches as os-ken would build them."""

import pytest
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller import ofmsgs
from controller.ofmsgs import ordered_match


def test_deletes_and_table_changes_are_told_apart():
    delete = ofmsgs.flow_delete_cookie(0x5348_0000_0000_0001)
    group_delete = ofmsgs.group_delete(7)
    add = ofmsgs.table_miss(2)
    group_add = ofmsgs.ff_group(7, 1, 2)
    out = ofmsgs.packet_out([1], b"\0" * 60)
    assert ofmsgs.is_delete(delete) and ofmsgs.is_delete(group_delete)
    assert not ofmsgs.is_delete(add) and not ofmsgs.is_delete(group_add)
    assert ofmsgs.is_table_change(add) and ofmsgs.is_table_change(group_add)
    assert not ofmsgs.is_table_change(out) and not ofmsgs.is_delete(out)


MATCHES = [
    {"eth_src": "00:00:00:00:00:0A", "eth_dst": "00:00:00:00:00:01"},
    {"in_port": 3, "eth_src": "0a:00:00:00:00:01", "eth_dst": "00:00:00:00:00:02"},
    {"eth_type": 0x0800, "ip_proto": 6, "ipv4_src": "10.0.0.1", "tcp_dst": 80, "in_port": 1},
    {"eth_type": 0x0800, "ipv4_dst": ("10.0.0.0", "255.255.255.0")},
    {"eth_type": 0x0800, "ipv4_dst": ["10.0.0.0", "255.255.255.0"]},  # as JSON gives it back
    {"eth_dst": ("01:00:00:00:00:00", "01:00:00:00:00:00")},
]


def wire(match: parser.OFPMatch) -> bytes:
    buf = bytearray()
    match.serialize(buf, 0)
    return bytes(buf)


@pytest.mark.parametrize("fields", MATCHES)
def test_match_has_the_same_bytes_as_os_ken_builds(fields):
    plain = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    assert wire(ordered_match(fields)) == wire(parser.OFPMatch(**plain))
    assert dict(ordered_match(fields).items()) == dict(parser.OFPMatch(**plain).items())


def test_nxm_tcp_flags_go_after_their_prerequisites():
    match = ordered_match({"tcp_flags_nxm": (0, 7), "eth_type": 0x0800, "ip_proto": 6,
                           "tcp_src": 5201})
    assert [k for k, _ in match.items()] == ["eth_type", "ip_proto", "tcp_src",
                                             "tcp_flags_nxm"]
