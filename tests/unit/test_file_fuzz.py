"""Fuzzed input files: captures, series CSVs, YAML. Only each reader's own error may escape.

Fixed seeds; each file is a valid one with a few random mutations. A reader
that raises anything but its declared error (a ``struct.error``, an
``IndexError``, a ``UnicodeDecodeError``) would reach the user as a stack trace.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from controller import config
from lab.hostile_frames import mutate
from mirror.pcap import PcapError, PcapWriter
from mirror.replay import replay
from predictive.series_io import read_series_csv
from tests.unit.packets import arp_reply, arp_request, ping
from tests.unit.test_frames import KILLER

SEED_FRAMES = [arp_request(1, 2), arp_reply(2, 1), ping(1, 2), ping(2, 1), KILLER]


def pcap_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "seed.pcap"
    with open(path, "wb") as fh:
        writer = PcapWriter(fh)
        for i, frame in enumerate(SEED_FRAMES * 3):
            writer.write(frame, 1000.0 + i * 0.01)
    return path.read_bytes()


def pcapng_bytes() -> bytes:
    def block(btype: int, body: bytes) -> bytes:
        length = 12 + len(body)
        return struct.pack("<II", btype, length) + body + struct.pack("<I", length)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 65535) + struct.pack("<HHB3x", 9, 1, 6)
                 + struct.pack("<HH", 0, 0))
    for i, frame in enumerate(SEED_FRAMES * 3):
        pad = b"\x00" * (-len(frame) % 4)
        ts = 1_000_000_000 + i * 10_000
        out += block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(frame),
                                    len(frame)) + frame + pad)
    return out


def file_mutate(rng: random.Random, data: bytes) -> bytes:
    out = data
    for _ in range(rng.randint(1, 3)):
        out = mutate(rng, out)
    if rng.random() < 0.3 and len(out) >= 8:  # a length field set small: a block cut short
        at = rng.randrange(0, len(out) - 4) & ~3
        out = out[:at] + struct.pack("<I", rng.choice((0, 4, 12, 16, 20, 24, 28))) + out[at + 4:]
    if rng.random() < 0.3:
        out = out[:rng.randrange(len(out) + 1)]  # cut short, anywhere
    return out


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_fuzzed_captures_replay_or_fail_with_a_capture_error(tmp_path, kind):
    seed = pcap_bytes(tmp_path) if kind == "pcap" else pcapng_bytes()
    path = tmp_path / f"f.{kind}"
    path.write_bytes(seed)
    assert replay(path, "00:00:00:00:00:01", ["10.0.0.1"]).engine.stats.packets > 0
    rng = random.Random(5 if kind == "pcap" else 6)
    failed = 0
    for _ in range(600):
        path.write_bytes(file_mutate(rng, seed))
        try:
            replay(path, "00:00:00:00:00:01", ["10.0.0.1"])
        except (PcapError, ValueError):  # PcapError is a ValueError; so are link-type errors
            failed += 1
    assert 0 < failed < 600  # both outcomes happened: the mutations reach the parser


def test_a_pcapng_packet_block_shorter_than_its_header_is_a_capture_error(tmp_path):
    seed = pcapng_bytes()
    short = struct.pack("<II", 6, 16) + b"\x00" * 4 + struct.pack("<I", 16)
    path = tmp_path / "short.pcapng"
    path.write_bytes(seed + short)
    with pytest.raises(PcapError, match="truncated enhanced packet block"):
        replay(path, "00:00:00:00:00:01", ["10.0.0.1"])


def test_fuzzed_series_csvs_read_or_fail_with_a_value_error(tmp_path):
    lines = ["timestamp,value,cpu"] + [
        f"2024-01-01 00:{i // 60:02d}:{i % 60:02d},{i * 1.5},{(i * 7) % 100 / 100}"
        for i in range(120)]
    seed = ("\n".join(lines) + "\n").encode()
    path = tmp_path / "s.csv"
    rng = random.Random(7)
    for _ in range(400):
        path.write_bytes(file_mutate(rng, seed))
        try:
            read_series_csv(path)
        except ValueError:
            pass


def test_fuzzed_configs_load_or_fail_with_a_config_error(tmp_path):
    seed = (b"controller:\n  wsapi_port: 8080\nforwarding:\n  idle_timeout: 60\n"
            b"reconcile:\n  interval: 1\nswitch_drain:\n  critical: [2]\n"
            b"services:\n  - name: web\n    vip: 10.0.0.100\n    port: 80\n"
            b"    primary: {name: h2, ip: 10.0.0.2, mac: '00:00:00:00:00:02'}\n")
    assert config.load(_write(tmp_path, seed))["services"]
    rng = random.Random(8)
    for _ in range(400):
        try:
            config.load(_write(tmp_path, file_mutate(rng, seed)))
        except config.ConfigError:
            pass


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "c.yaml"
    path.write_bytes(data)
    return path
