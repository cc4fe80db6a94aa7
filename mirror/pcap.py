"""Pure-Python pcap/pcapng reading and classic pcap writing.

The replay command and the benchmark need captures without scapy or libpcap
bindings.  Files are memory-mapped and records decoded with ``struct.unpack_from``
so reading costs little next to the engine itself.

Read: classic pcap in both byte orders with microsecond (``a1b2c3d4``) or
nanosecond (``a1b23c4d``) timestamps, and pcapng (section header, interface
description with ``if_tsresol``, enhanced and simple packet blocks; other blocks
skipped).  Anything else — or a file cut or corrupted mid-record — raises
:class:`PcapError` naming the file and the offset.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

LINKTYPE_ETHERNET = 1
MAX_RECORD = 0x4000000  # 64 MiB: no real link has frames this size; beyond it is corruption

_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D
_PCAPNG_SHB = 0x0A0D0D0A
_BOM = 0x1A2B3C4D


class PcapError(ValueError):
    """The file is not a capture we can read (format, version or corruption)."""


Record = tuple[float, bytes, int]  # (timestamp seconds, captured bytes, original length)


class PcapReader:
    """Iterate ``(ts, frame, orig_len)`` over a pcap or pcapng file.

    ``linktype`` is known after construction (the first interface's, for pcapng).
    Use as a context manager or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise PcapError(f"{self.path}: is a directory, not a capture file")
        self._file = open(self.path, "rb")
        size = os.fstat(self._file.fileno()).st_size
        self._buf: bytes | mmap.mmap
        if size == 0:
            self._file.close()
            raise PcapError(f"{self.path}: empty file, not a pcap/pcapng capture")
        self._buf = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        self.format = ""
        self.nanosecond = False
        self.linktype = -1
        self.snaplen = 0
        self._endian = "<"
        self._sniff()

    def _err(self, msg: str, offset: int | None = None) -> PcapError:
        where = f" at offset {offset}" if offset is not None else ""
        return PcapError(f"{self.path}: {msg}{where}")

    def _sniff(self) -> None:
        buf = self._buf
        if len(buf) < 4:
            raise self._err("too short to be a capture file")
        magic_le = struct.unpack_from("<I", buf, 0)[0]
        magic_be = struct.unpack_from(">I", buf, 0)[0]
        if magic_le == _PCAPNG_SHB:
            self.format = "pcapng"
            if len(buf) < 12:
                raise self._err("truncated pcapng section header", 0)
            bom_le = struct.unpack_from("<I", buf, 8)[0]
            if bom_le == _BOM:
                self._endian = "<"
            elif struct.unpack_from(">I", buf, 8)[0] == _BOM:
                self._endian = ">"
            else:
                raise self._err("pcapng section header has a bad byte-order magic", 8)
            # Find the first interface to report a linktype up front.
            for block_type, off, _blen in self._blocks():
                if block_type == 1:
                    self.linktype = struct.unpack_from(self._endian + "H", buf, off + 8)[0]
                    break
            return
        for endian, magic in (("<", magic_le), (">", magic_be)):
            if magic in (_MAGIC_US, _MAGIC_NS):
                if len(buf) < 24:
                    raise self._err("truncated pcap global header", 0)
                self.format = "pcap"
                self._endian = endian
                self.nanosecond = magic == _MAGIC_NS
                major, _minor, _tz, _sig, snaplen, linktype = struct.unpack_from(
                    endian + "HHiIII", buf, 4
                )
                if major != 2:
                    raise self._err(f"unsupported pcap version {major}")
                self.snaplen = snaplen
                self.linktype = linktype & 0x0FFFFFFF
                return
        raise self._err(f"not a pcap or pcapng file (magic 0x{magic_be:08x})")

    def _blocks(self) -> Iterator[tuple[int, int, int]]:
        buf, n = self._buf, len(self._buf)
        hdr = struct.Struct(self._endian + "II")
        off = 0
        while off < n:
            if off + 12 > n:
                raise self._err("truncated pcapng block", off)
            btype, blen = hdr.unpack_from(buf, off)
            if blen < 12 or blen % 4 or off + blen > n:
                raise self._err(f"corrupt pcapng block length {blen}", off)
            if btype == _PCAPNG_SHB:
                bom = struct.unpack_from(self._endian + "I", buf, off + 8)[0]
                if bom != _BOM:
                    raise self._err("pcapng sections of different byte order are unsupported",
                                    off)
            yield btype, off, blen
            off += blen

    def __iter__(self) -> Iterator[Record]:
        if self.format == "pcap":
            return self._iter_pcap()
        return self._iter_pcapng()

    def _iter_pcap(self) -> Iterator[Record]:
        buf, n = self._buf, len(self._buf)
        rec = struct.Struct(self._endian + "IIII")
        unpack = rec.unpack_from
        div = 1e9 if self.nanosecond else 1e6
        off = 24
        while off < n:
            if off + 16 > n:
                raise self._err("file ends inside a record header", off)
            sec, frac, caplen, orig = unpack(buf, off)
            if caplen > MAX_RECORD:
                raise self._err(f"corrupt record (captured length {caplen})", off)
            start = off + 16
            off = start + caplen
            if off > n:
                raise self._err("file ends inside a packet", start)
            yield sec + frac / div, buf[start:off], orig

    def _iter_pcapng(self) -> Iterator[Record]:
        buf = self._buf
        e = self._endian
        epb = struct.Struct(e + "IIIII")
        ifaces: list[tuple[int, float]] = []  # (linktype, seconds per tick)
        for btype, off, blen in self._blocks():
            if btype == 6:
                if blen < 32:
                    raise self._err("truncated enhanced packet block", off)
                iface, hi, lo, caplen, orig = epb.unpack_from(buf, off + 8)
                if iface >= len(ifaces):
                    raise self._err(f"packet on undeclared interface {iface}", off)
                if caplen > blen - 32:
                    raise self._err(f"corrupt packet block (captured length {caplen})", off)
                lt, unit = ifaces[iface]
                if lt != self.linktype:
                    raise self._err("interfaces with different link types are unsupported",
                                    off)
                yield ((hi << 32) | lo) * unit, buf[off + 28:off + 28 + caplen], orig
            elif btype == 3:
                if not ifaces:
                    raise self._err("simple packet block before any interface", off)
                if blen < 16:
                    raise self._err("truncated simple packet block", off)
                orig = struct.unpack_from(e + "I", buf, off + 8)[0]
                caplen = min(orig, blen - 16)
                yield 0.0, buf[off + 12:off + 12 + caplen], orig
            elif btype == 1:
                if blen < 20:
                    raise self._err("truncated interface description block", off)
                lt = struct.unpack_from(e + "H", buf, off + 8)[0]
                ifaces.append((lt, self._tsresol(off + 16, off + blen - 4)))
            elif btype == _PCAPNG_SHB:
                ifaces = []

    def _tsresol(self, off: int, end: int) -> float:
        """Seconds per timestamp tick from the if_tsresol option (default microseconds)."""
        buf, e = self._buf, self._endian
        while off + 4 <= end:
            code, ln = struct.unpack_from(e + "HH", buf, off)
            if code == 0:
                break
            if code == 9 and ln >= 1 and off + 5 <= end:
                v = buf[off + 4]
                return 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
            off += 4 + ((ln + 3) & ~3)
        return 1e-6

    def close(self) -> None:
        if isinstance(self._buf, mmap.mmap):
            self._buf.close()
        self._file.close()

    def __enter__(self) -> PcapReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_pcap(path: str | os.PathLike[str]) -> Iterator[Record]:
    """All records of a capture file (closes it when exhausted)."""
    with PcapReader(path) as r:
        yield from r


class PcapWriter:
    """Write classic pcap (little-endian; microsecond or nanosecond timestamps)."""

    def __init__(self, dest: str | os.PathLike[str] | BinaryIO,
                 linktype: int = LINKTYPE_ETHERNET, snaplen: int = 262144,
                 nanosecond: bool = False) -> None:
        if isinstance(dest, (str, os.PathLike)):
            self._f: BinaryIO = open(dest, "wb")
            self._own = True
        else:
            self._f = dest
            self._own = False
        self.nanosecond = nanosecond
        self.snaplen = snaplen
        self._mult = 1_000_000_000 if nanosecond else 1_000_000
        self._rec = struct.Struct("<IIII")
        self._f.write(struct.pack("<IHHiIII", _MAGIC_NS if nanosecond else _MAGIC_US, 2, 4, 0,
                                  0, snaplen, linktype))

    def write(self, frame: bytes, ts: float, orig_len: int | None = None) -> None:
        """Append one frame captured at ``ts``; it is cut to ``snaplen`` bytes."""
        ticks = round(ts * self._mult)
        sec, frac = divmod(ticks, self._mult)
        data = frame[:self.snaplen]
        self._f.write(self._rec.pack(sec, frac, len(data),
                                     len(frame) if orig_len is None else orig_len))
        self._f.write(data)

    def close(self) -> None:
        if self._own:
            self._f.close()
        else:
            self._f.flush()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
