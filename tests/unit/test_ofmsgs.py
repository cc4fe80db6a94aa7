"""Message classification the sender uses to place barriers (make before break)."""

from controller import ofmsgs


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
