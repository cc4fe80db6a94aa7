"""pcap/pcapng I/O, container auto-selection and ``shadownet mirror replay``/``check-rules``."""

from __future__ import annotations

import json
import struct

import pytest

from mirror import packets as P
from mirror.pcap import PcapError, PcapReader, PcapWriter, read_pcap
from mirror.replay import pick_container, replay
from shadownet.cli import main

C, S, GW = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:fe"


def conversation() -> list[bytes]:
    def t(out, flags, seq, ack, data=b""):
        src, dst, sm, dm = (("10.0.0.1", "10.0.0.2", C, S) if out else
                            ("10.0.0.2", "10.0.0.1", S, C))
        ports = (40000, 80) if out else (80, 40000)
        return P.build_eth(dm, sm, P.ETH_IPV4, P.build_ipv4(src, dst, 6, P.build_tcp(
            *ports, seq, ack, flags, data)))
    A = P.TCP_ACK
    dns = P.build_dns(3, "svc.example", P.DNS_A, response=True,
                      answers=[("svc.example", P.DNS_A, "10.0.0.2", 120)])
    return [
        P.build_eth(C, GW, P.ETH_ARP, P.build_arp(2, GW, "10.0.0.254", C, "10.0.0.1")),
        P.build_eth(C, GW, P.ETH_IPV4, P.build_ipv4("10.0.0.254", "10.0.0.1", 17,
                                                    P.build_udp(53, 5353, dns))),
        t(True, P.TCP_SYN, 0, 0), t(False, P.TCP_SYN | A, 0, 1), t(True, A, 1, 1),
        t(True, A, 1, 1, b"GET / HTTP/1.0\r\n\r\n"), t(False, A, 1, 19, b"x" * 500),
        t(True, A | P.TCP_FIN, 19, 501), t(False, A | P.TCP_FIN, 501, 20), t(True, A, 20, 502),
    ]


def write(path, frames, nanosecond=False, t0=1700000000.0):
    with PcapWriter(path, nanosecond=nanosecond) as w:
        for i, f in enumerate(frames):
            w.write(f, t0 + i * 0.001)
    return path


def test_pcap_round_trip_both_resolutions(tmp_path):
    frames = conversation()
    for ns in (False, True):
        path = write(tmp_path / f"c{ns}.pcap", frames, nanosecond=ns)
        recs = list(read_pcap(path))
        assert [r[1] for r in recs] == frames and recs[1][0] == pytest.approx(1700000000.001)
        with PcapReader(path) as r:
            assert r.nanosecond == ns and r.linktype == 1 and r.format == "pcap"


def test_big_endian_pcap(tmp_path):
    frame = conversation()[2]
    data = struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    data += struct.pack(">IIII", 10, 500000, len(frame), len(frame)) + frame
    (tmp_path / "be.pcap").write_bytes(data)
    assert list(read_pcap(tmp_path / "be.pcap")) == [(10.5, frame, len(frame))]


def test_pcapng_with_tsresol(tmp_path):
    frame = conversation()[2]

    def block(btype, body):
        body += b"\0" * (-len(body) % 4)
        n = len(body) + 12
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)

    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    opts = struct.pack("<HH", 9, 1) + b"\x09\0\0\0" + struct.pack("<HH", 0, 0)  # 1e-9
    idb = block(1, struct.pack("<HHI", 1, 0, 65535) + opts)
    ticks = 1_700_000_000_123_456_789
    epb = block(6, struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(frame),
                               len(frame)) + frame)
    (tmp_path / "x.pcapng").write_bytes(shb + idb + epb + block(0x99, b"skip"))
    recs = list(read_pcap(tmp_path / "x.pcapng"))
    assert len(recs) == 1 and recs[0][1] == frame
    assert recs[0][0] == pytest.approx(1700000000.123456789)


def test_unsupported_and_corrupt_files(tmp_path):
    (tmp_path / "text.pcap").write_text("hello world, not a capture")
    with pytest.raises(PcapError, match="not a pcap or pcapng file"):
        PcapReader(tmp_path / "text.pcap")
    (tmp_path / "empty.pcap").write_bytes(b"")
    with pytest.raises(PcapError, match="empty"):
        PcapReader(tmp_path / "empty.pcap")
    good = write(tmp_path / "good.pcap", conversation()).read_bytes()
    (tmp_path / "cut.pcap").write_bytes(good[:-10])
    with pytest.raises(PcapError, match="ends inside a packet"):
        list(read_pcap(tmp_path / "cut.pcap"))
    with pytest.raises(FileNotFoundError):
        PcapReader(tmp_path / "missing.pcap")


def test_replay_state_and_auto_pick_refuses_two_equal_hosts(tmp_path):
    path = write(tmp_path / "c.pcap", conversation())
    res = replay(path, C, ["10.0.0.1"])
    snap = res.as_dict()
    assert snap["arp"][0]["ip"] == "10.0.0.254" and snap["dns"][0]["name"] == "svc.example"
    (conn,) = [c for c in snap["connections"] if c["proto"] == "tcp"]
    assert conn["state"] == "TIME_WAIT" and conn["conn_state"] == "SF"
    assert conn["resp"]["payload_bytes"] == 500
    assert pick_container(path) == (C, ["10.0.0.1"])  # in 10 frames, 10.0.0.2 in 8
    two_hosts = write(tmp_path / "two.pcap", conversation()[2:])
    with pytest.raises(ValueError, match="cannot tell the container apart"):
        pick_container(two_hosts)


def test_auto_pick_on_a_mirror_port_capture(tmp_path):
    frames = conversation() + [P.build_eth(C, f"02:00:00:00:00:0{i}", P.ETH_IPV4, P.build_ipv4(
        f"10.0.0.{10 + i}", "10.0.0.1", 1, P.build_icmp(8, 0, i, 1))) for i in range(3, 9)]
    path = write(tmp_path / "m.pcap", frames)
    assert pick_container(path) == (C, ["10.0.0.1"])
    assert pick_container(path, "10.0.0.2") == (S, ["10.0.0.2"])
    res = replay(path)
    assert res.auto_selected and res.container_mac == C


def test_cli_replay_table_json_and_errors(tmp_path, capsys):
    path = write(tmp_path / "c.pcap", conversation())
    assert main(["mirror", "replay", str(path), "--container-mac", C]) == 0
    out = capsys.readouterr().out
    assert "TIME_WAIT" in out and "svc.example" in out and "10.0.0.254" in out
    assert main(["mirror", "replay", str(path), "--json", "--container-mac", C,
                 "--container-ip", "10.0.0.1"]) == 0
    snap = json.loads(capsys.readouterr().out)
    assert snap["container"]["ips"] == ["10.0.0.1"] and snap["stats"]["packets"] == 10
    assert main(["mirror", "replay", str(tmp_path / "nope.pcap")]) == 2
    assert "no such file" in capsys.readouterr().err
    two_hosts = write(tmp_path / "two.pcap", conversation()[2:])
    assert main(["mirror", "replay", str(two_hosts)]) == 2
    assert "pass --container-mac" in capsys.readouterr().err
    assert main(["mirror", "replay", str(path), "--container-mac", "zz"]) == 2
    assert "not a MAC" in capsys.readouterr().err
    (tmp_path / "bad.pcap").write_bytes(b"\x00" * 40)
    assert main(["mirror", "replay", str(tmp_path / "bad.pcap")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("shadownet: error:") and "not a pcap" in err


def test_cli_replay_with_rules_and_check_rules(tmp_path, capsys):
    path = write(tmp_path / "c.pcap", conversation())
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: egress\n    type: dns_answer_outside\n"
                     "    allowed: [192.168.0.0/16]\n    severity: critical\n")
    assert main(["mirror", "replay", str(path), "--container-mac", C, "--json",
                 "--rules", str(rules)]) == 0
    alerts = json.loads(capsys.readouterr().out)["alerts"]
    assert [(a["rule"], a["status"], a["labels"]["address"]) for a in alerts] == [
        ("egress", "firing", "10.0.0.2")]
    assert main(["mirror", "check-rules", str(rules)]) == 0
    assert "1 rule(s) OK" in capsys.readouterr().out
    rules.write_text("- name: rst-storm\n  type: rst_storm\n  threshold: lots\n")
    assert main(["mirror", "check-rules", str(rules)]) == 2
    assert ("rules.yaml: rules[0] (rst-storm).threshold: must be a number, got str 'lots'"
            in capsys.readouterr().err)
