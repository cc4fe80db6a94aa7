"""Fixes to os-ken 4.x applied in-process, until upstream has them (``docs/security.md``).

shadownet reads packet-ins with its own bounded decoder (:mod:`controller.frames`),
but os-ken's topology app (``os_ken.topology.switches``) still hands *every*
packet-in to os-ken's packet library, only to find out whether it is LLDP.
Two things follow from a hostile frame there:

- **a hang**: os-ken's TCP option loop advances by the option's own length
  field, so an option of unknown kind with length 0 (or 1) never advances.
  Under the eventlet hub that one loop stops every green thread: no OpenFlow,
  no LLDP, no REST. :func:`bound_tcp_options` makes an option that does not
  advance a parse error, which os-ken's TCP parser already handles (it keeps
  the header and drops the options);
- **wasted work and stray exceptions**: :func:`lldp_only` makes the topology
  app look at LLDP frames only (by ethertype, before any parsing), and turns
  whatever else its LLDP parser raises into its own "not our format".

:func:`apply` does both, once; ``shadownet-manager`` calls it before any app starts.
"""

from __future__ import annotations

import struct
from typing import Any

ETH_TYPE_LLDP = 0x88CC
_applied = False


def bound_tcp_options() -> None:
    """Make a TCP option that would not advance the parser a ``struct.error``."""
    from os_ken.lib.packet import tcp

    original = tcp.TCPOption.parser.__func__
    if getattr(original, "shadownet_bounded", False):
        return

    def parser(cls: Any, buf: bytes) -> tuple[Any, bytes]:
        opt, rest = original(cls, buf)
        if len(rest) >= len(buf):
            raise struct.error("TCP option does not advance (length field below 2)")
        return opt, rest

    parser.shadownet_bounded = True  # type: ignore[attr-defined]
    tcp.TCPOption.parser = classmethod(parser)


def lldp_only() -> None:
    """Let os-ken's topology app parse LLDP frames only, and never raise past its handler."""
    from os_ken.topology.switches import LLDPPacket

    original = LLDPPacket.lldp_parse
    if getattr(original, "shadownet_bounded", False):
        return

    def lldp_parse(data: bytes) -> Any:
        if bytes(data[12:14]) != ETH_TYPE_LLDP.to_bytes(2, "big"):
            raise LLDPPacket.LLDPUnknownFormat(msg="not an LLDP frame")
        try:
            return original(data)
        except LLDPPacket.LLDPUnknownFormat:
            raise
        except Exception as exc:  # noqa: BLE001 - any parse failure is "not our LLDP"
            raise LLDPPacket.LLDPUnknownFormat(msg=f"malformed LLDP: {exc!r}") from None

    lldp_parse.shadownet_bounded = True  # type: ignore[attr-defined]
    LLDPPacket.lldp_parse = staticmethod(lldp_parse)


def apply() -> None:
    """Apply every fix (idempotent)."""
    global _applied
    if not _applied:
        bound_tcp_options()
        lldp_only()
        _applied = True
