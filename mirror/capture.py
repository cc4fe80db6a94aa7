"""Read a mirror port: an AF_PACKET socket opened inside the mirror namespace.

The socket is created from a thread that enters the namespace with setns(2)
(which moves only the calling thread) and returns at once, so the agent
process itself never changes namespace. Each frame carries the kernel's
receive timestamp, the start of the sync-lag measurement: the packet ring
stamps every frame as it is queued. Only the frame-by-frame fallback asks for
SO_TIMESTAMPNS, because that option turns on receive timestamps for every
packet on the host (a global static key in the kernel), paid by the primary's
own traffic in the forwarding thread that hands it through veths: perf showed
read_tsc from netif_rx and dev_queue_xmit_nit, and with the agent frozen its
mirrors cost 10 % of the primary's throughput with the option, 3 % without.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable

LOG = logging.getLogger(__name__)

ETH_P_ALL = 0x0003
CLONE_NEWNET = 0x40000000
SO_TIMESTAMPNS = 35
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
PACKET_RX_RING = 5
PACKET_VERSION = 10
TPACKET_V3 = 2
TP_STATUS_USER = 1
RING_BLOCK_SIZE = 128 << 10  # small blocks fill before they retire: the ring holds a burst
RING_BLOCKS = 256  # 32 MiB per mirror
RING_FRAME_SIZE = 2048
RING_RETIRE_MS = 2  # a block goes to us at the latest this long after its first frame
_BLOCK_HDR = struct.Struct("=III")  # block_status, num_pkts, offset_to_first_pkt (at +8)
_PKT_HDR = struct.Struct("=IIIIIIHH")  # next, sec, nsec, snaplen, len, status, mac, net
SLL_OFFSET = 48  # TPACKET_ALIGN(sizeof(struct tpacket3_hdr))

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def enter_netns(netns: str) -> None:
    """Move the calling thread (only) into named namespace ``netns`` for good."""
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        _setns(target)
    finally:
        os.close(target)


def open_packet_socket(netns: str, ifname: str) -> socket.socket:
    """An AF_PACKET socket bound to ``ifname`` inside named namespace ``netns``."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            sock.bind((ifname, 0))
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    return sock


class MirrorCapture:
    """A thread that hands every frame arriving on the mirror port to ``on_frame(frame, ts)``."""

    def __init__(self, netns: str, ifname: str, on_frame: Callable[[bytes, float], None]) -> None:
        self.netns, self.ifname, self.on_frame = netns, ifname, on_frame
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.kernel_drops = 0
        self.frames = 0

    def start(self) -> None:
        self._sock = open_packet_socket(self.netns, self.ifname)
        target = self._run
        try:
            self._ring = self._map_ring(self._sock)
            target = self._run_ring
        except OSError as exc:  # no PACKET_MMAP: one recvmsg per frame still works
            LOG.warning("mirror %s: no packet ring (%s); reading frame by frame",
                        self.netns, exc)
            self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=target, name=f"capture-{self.netns}",
                                        daemon=True)
        self._thread.start()

    @staticmethod
    def _map_ring(sock: socket.socket) -> mmap.mmap:
        """A TPACKET_V3 ring: the kernel fills blocks, we read them without a syscall each."""
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        req = struct.pack("=IIIIIII", RING_BLOCK_SIZE, RING_BLOCKS, RING_FRAME_SIZE,
                          RING_BLOCK_SIZE * RING_BLOCKS // RING_FRAME_SIZE, RING_RETIRE_MS, 0, 0)
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
        return mmap.mmap(sock.fileno(), RING_BLOCK_SIZE * RING_BLOCKS, mmap.MAP_SHARED,
                         mmap.PROT_READ | mmap.PROT_WRITE)

    def _run_ring(self) -> None:
        ring, poller = self._ring, select.poll()
        assert self._sock is not None  # opened by start(), before this thread
        poller.register(self._sock.fileno(), select.POLLIN | select.POLLERR)
        block, on_frame = 0, self.on_frame
        unpack_block, unpack_pkt = _BLOCK_HDR.unpack_from, _PKT_HDR.unpack_from
        while not self._stop.is_set():
            base = block * RING_BLOCK_SIZE
            status, count, offset = unpack_block(ring, base + 8)
            if not status & TP_STATUS_USER:
                if not poller.poll(200):
                    self._read_drops()
                continue
            pos = base + offset
            for _ in range(count):
                nxt, sec, nsec, snaplen, _wire, _st, mac, _net = unpack_pkt(ring, pos)
                if ring[pos + SLL_OFFSET + 10] != PACKET_OUTGOING:
                    self.frames += 1
                    try:
                        on_frame(ring[pos + mac:pos + mac + snaplen], sec + nsec / 1e9)
                    except Exception:  # noqa: BLE001 - one bad frame must not stop the mirror
                        LOG.exception("mirror %s: frame handler failed", self.netns)
                pos += nxt
            struct.pack_into("=I", ring, base + 8, 0)  # hand the block back to the kernel
            block = (block + 1) % RING_BLOCKS

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        ring = getattr(self, "_ring", None)
        if ring is not None:
            ring.close()
        if self._sock is not None:
            self._sock.close()

    def _run(self) -> None:
        sock = self._sock
        assert sock is not None  # opened by start(), before this thread
        while not self._stop.is_set():
            try:
                data, ancdata, _flags, addr = sock.recvmsg(65535, 64)
            except TimeoutError:
                self._read_drops()
                continue
            except OSError:
                if self._stop.is_set():
                    return
                LOG.exception("capture on %s failed", self.netns)
                return
            if addr[2] == PACKET_OUTGOING:
                continue  # what the mirror itself sends is dropped at the bridge anyway
            ts = time.time()
            for level, kind, value in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                    sec, nsec = struct.unpack("qq", value[:16])
                    ts = sec + nsec / 1e9
            self.frames += 1
            try:
                self.on_frame(data, ts)
            except Exception:  # noqa: BLE001 - one bad frame must not stop the mirror
                LOG.exception("mirror %s: frame handler failed", self.netns)

    def _read_drops(self) -> None:
        if self._sock is None:
            return
        try:
            raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
            # The kernel resets these counters on every read.
            self.kernel_drops += struct.unpack_from("II", raw)[1]
        except OSError:
            pass
