"""Open vSwitch on this host: make sure the daemons run, and clean up our bridges."""

from __future__ import annotations

import os
import shutil
import subprocess

OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"


class LabError(Exception):
    """The lab cannot run here (not root, no OVS, no Mininet); the message says why."""


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (it creates OVS bridges and network namespaces)")


def ovs_running() -> bool:
    if shutil.which("ovs-vsctl") is None:
        return False
    result = subprocess.run(
        ["ovs-vsctl", "--timeout=3", "show"], capture_output=True, text=True, check=False
    )
    return result.returncode == 0


def ensure_ovs() -> None:
    """Start ovsdb-server and ovs-vswitchd if they are not running."""
    if shutil.which("ovs-vsctl") is None or not os.path.exists(OVS_CTL):
        raise LabError("Open vSwitch is not installed (run 'make setup')")
    if ovs_running():
        return
    subprocess.run([OVS_CTL, "start"], capture_output=True, text=True, check=False)
    if not ovs_running():
        raise LabError(f"could not start Open vSwitch with '{OVS_CTL} start'")


def bridges() -> list[str]:
    result = subprocess.run(
        ["ovs-vsctl", "--timeout=5", "list-br"], capture_output=True, text=True, check=False
    )
    return result.stdout.split()


def delete_bridges(names: list[str]) -> None:
    present = set(bridges())
    for name in names:
        if name in present:
            subprocess.run(
                ["ovs-vsctl", "--timeout=10", "--if-exists", "del-br", name],
                capture_output=True, check=False,
            )


def delete_links(prefixes: tuple[str, ...]) -> None:
    """Remove leftover veth ends named after our switches (``s1-eth1`` ...)."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(prefixes) and "-eth" in name:
            subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)


def tx_packets(bridge: str, intf: str) -> int:
    """Packets a bridge has sent out of one of its interfaces, read live from the datapath.

    (The Interface table's statistics column lags by up to five seconds.)
    """
    ofport = subprocess.run(["ovs-vsctl", "get", "Interface", intf, "ofport"],
                            capture_output=True, text=True, check=True).stdout.strip()
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-ports", bridge, ofport],
                         capture_output=True, text=True, check=True).stdout
    tx = out.split("tx pkts=", 1)[1] if "tx pkts=" in out else ""
    digits = tx.split(",", 1)[0].strip()
    return int(digits) if digits.isdigit() else 0
