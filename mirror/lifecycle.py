"""Mirror namespaces on this host: create, find again after a restart, remove.

A container's mirror is a named network namespace ``snm-<container>`` joined
to the container's bridge by a veth pair: ``mirror0`` inside, ``sm<hash>`` on
the bridge. The bridge port carries ``external_ids:shadownet-mirror=<container>``
in OVSDB and the namespace keeps a small JSON record, so an agent that starts
again finds every mirror it made and loses none.

Containers are found the way ovs-docker attaches them: an OVS interface whose
``external_ids`` hold ``container_id`` (plus ``attached-mac``, ``container_ip``
and ``tenant`` where known).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import threading
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)

NETNS_PREFIX = "snm-"
MIRROR_IFNAME = "mirror0"
# `ip netns exec NS` bind-mounts files from here over /etc (the mirror's hosts file).
NETNS_ETC = Path("/etc/netns")
RECORD_DIR = Path("/run/shadownet/mirrors")


class LifecycleError(RuntimeError):
    """A mirror could not be created or removed; the message says which step failed."""


@dataclass
class Container:
    """A container port on a bridge, as OVSDB describes it."""

    name: str
    bridge: str
    iface: str
    ofport: int
    dpid: int
    mac: str
    ips: list[str] = field(default_factory=list)
    tenant: str = "default"
    prefixlen: int = 24
    uid: str = ""  # the OVS interface's UUID: new for every container made, names repeat


@dataclass
class MirrorRecord:
    container: str
    tenant: str
    netns: str
    bridge: str
    bridge_port: str
    mirror_ofport: int
    container_ofport: int
    dpid: int
    mac: str
    ips: list[str]
    prefixlen: int = 24
    # The container's OVS interface UUID: a container made again under the same name
    # gets a new one, so its history is not the old one's (mirror.history_store).
    uid: str = ""

    def mirrors(self, container: Container) -> bool:
        """Is this record the mirror of ``container``, and not of an earlier container
        that had its name (another tenant's, or a remade one: another uid)?"""
        return (self.container, self.tenant, self.uid, self.container_ofport) == (
            container.name, container.tenant, container.uid, container.ofport)

    def registration(self) -> dict[str, Any]:
        """The body the controller's ``POST /api/mirrors`` takes."""
        return {"container": self.container, "tenant": self.tenant, "dpid": self.dpid,
                "container_port": self.container_ofport, "mirror_port": self.mirror_ofport,
                "mac": self.mac, "ips": self.ips, "netns": self.netns}


def _run(cmd: list[str], check: bool = True) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise LifecycleError(f"{' '.join(cmd)}: {result.stderr.strip() or result.returncode}")
    return result.stdout


def _vsctl(*args: str, check: bool = True) -> str:
    return _run(["ovs-vsctl", "--timeout=10", *args], check)


def netns_name(container: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", container)
    return f"{NETNS_PREFIX}{safe}"


def bridge_port_name(container: str) -> str:
    """Interface names are limited to 15 bytes, so the bridge side is a hash."""
    return f"sm{zlib.crc32(container.encode()):08x}"


# --- discovery ---------------------------------------------------------------------------
def _ovs_tables(*queries: tuple[str, str]) -> list[list[dict[str, Any]]]:
    """Several ``list TABLE`` queries in one ovs-vsctl run (one fork, one transaction)."""
    args: list[str] = ["--format=json"]
    for i, (table, columns) in enumerate(queries):
        args += (["--"] if i else []) + [f"--columns={columns}", "list", table]
    out = []
    for line in _vsctl(*args).splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        out.append([{name: _ovs_value(v) for name, v in zip(raw["headings"], values,
                                                             strict=True)}
                    for values in raw["data"]])
    if len(out) != len(queries):
        raise LifecycleError(f"ovs-vsctl answered {len(out)} of {len(queries)} queries")
    return out


def _ovs_value(value: Any) -> Any:
    if isinstance(value, list) and value and value[0] == "map":
        return {k: v for k, v in value[1]}
    if isinstance(value, list) and value and value[0] == "set":
        return [_ovs_value(v) for v in value[1]]
    if isinstance(value, list) and value and value[0] == "uuid":
        return value[1]
    return value


def _as_list(value: Any) -> list[Any]:
    """OVSDB prints a one-element set as the element itself."""
    return value if isinstance(value, list) else [value]


def attached_containers() -> list[Container]:
    """Every OVS interface that ovs-docker style metadata marks as a container."""
    interfaces, ports, bridges = _ovs_tables(
        ("Interface", "_uuid,name,ofport,external_ids"), ("Port", "_uuid,interfaces"),
        ("Bridge", "name,ports,datapath_id"))
    port_of = {iface: port["_uuid"] for port in ports for iface in _as_list(port["interfaces"])}
    bridge_of: dict[str, tuple[str, int]] = {}
    for bridge in bridges:
        raw = bridge["datapath_id"] if isinstance(bridge["datapath_id"], str) else ""
        for port in _as_list(bridge["ports"]):
            bridge_of[port] = (bridge["name"], int(raw, 16) if raw else 0)
    found = []
    for row in interfaces:
        ids = row["external_ids"] if isinstance(row["external_ids"], dict) else {}
        if "container_id" not in ids or not isinstance(row["ofport"], int) or row["ofport"] <= 0:
            continue
        where = bridge_of.get(port_of.get(row["_uuid"], ""))
        if where is None:
            continue
        cidrs = [ip for ip in ids.get("container_ip", "").split(",") if ip]
        found.append(Container(
            name=ids["container_id"], bridge=where[0], iface=row["name"], ofport=row["ofport"],
            dpid=where[1], mac=ids.get("attached-mac", "").lower(),
            ips=[c.split("/")[0] for c in cidrs],
            tenant=ids.get("tenant", "default"),
            prefixlen=int(cidrs[0].split("/")[1]) if cidrs and "/" in cidrs[0] else 24,
            uid=str(row["_uuid"]),
        ))
    return sorted(found, key=lambda c: c.name)


class OvsdbWatcher:
    """Calls ``on_change()`` whenever OVSDB's Interface table changes.

    It runs ``ovsdb-client monitor`` (one long-lived process, silent while nothing
    changes), so the agent notices a container at once and does not fork
    ``ovs-vsctl`` every poll on a busy host.
    """

    COMMAND = ["ovsdb-client", "--format=json", "monitor", "Open_vSwitch", "Interface",
               "name,ofport,external_ids"]

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.on_change = on_change
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> bool:
        """False when ovsdb-client cannot be run (the agent then polls)."""
        try:
            self._proc = subprocess.Popen(self.COMMAND, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, text=True)
        except OSError:
            return False
        threading.Thread(target=self._read, name="ovsdb-watch", daemon=True).start()
        return True

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for _line in self._proc.stdout:
            self.on_change()
        self.on_change()  # it ended: let the agent fall back to polling

    def stop(self) -> None:
        if self.alive and self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()


# --- create and remove ---------------------------------------------------------------------
def create_mirror(container: Container) -> MirrorRecord:
    """Make the mirror namespace, its veth, and plug it into the container's bridge."""
    from pyroute2 import IPRoute, NetNS, netns

    ns = netns_name(container.name)
    port = bridge_port_name(container.name)
    if ns not in netns.listnetns():
        netns.create(ns)
    try:
        with IPRoute() as ipr:
            if not ipr.link_lookup(ifname=port):
                ipr.link("add", ifname=port, kind="veth",
                         peer={"ifname": MIRROR_IFNAME, "net_ns_fd": ns})
            idx = ipr.link_lookup(ifname=port)[0]
            ipr.link("set", index=idx, state="up")
        with NetNS(ns) as nsr:
            for ifname in ("lo", MIRROR_IFNAME):
                idx = nsr.link_lookup(ifname=ifname)[0]
                nsr.link("set", index=idx, state="up", promiscuity=1)
        # The mirror only listens: no IPv6 autoconf chatter, no checksum offload surprises.
        _run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
             check=False)
        _run(["ethtool", "-K", port, "tx", "off"], check=False)
        _vsctl("--may-exist", "add-port", container.bridge, port, "--", "set", "Interface", port,
               f"external_ids:shadownet-mirror={container.name}")
        ofport = _wait_ofport(port)
    except Exception:
        destroy(container.name, container.bridge)
        raise
    record = MirrorRecord(
        container=container.name, tenant=container.tenant, netns=ns, bridge=container.bridge,
        bridge_port=port, mirror_ofport=ofport, container_ofport=container.ofport,
        dpid=container.dpid, mac=container.mac, ips=list(container.ips),
        prefixlen=container.prefixlen, uid=container.uid,
    )
    save_record(record)
    return record


def _wait_ofport(port: str, tries: int = 50) -> int:
    import time

    for _ in range(tries):
        value = _vsctl("get", "Interface", port, "ofport", check=False).strip()
        if value.lstrip("-").isdigit() and int(value) > 0:
            return int(value)
        time.sleep(0.1)
    raise LifecycleError(f"OVS gave no OpenFlow port number to {port}")


def destroy(container: str, bridge: str | None = None) -> None:
    """Remove a mirror's bridge port, veth and namespace; missing pieces are fine."""
    from pyroute2 import IPRoute, netns

    port = bridge_port_name(container)
    if bridge:
        _vsctl("--if-exists", "del-port", bridge, port, check=False)
    else:
        _vsctl("--if-exists", "del-port", port, check=False)
    with IPRoute() as ipr:
        for idx in ipr.link_lookup(ifname=port):
            ipr.link("del", index=idx)
    ns = netns_name(container)
    if ns in netns.listnetns():
        netns.remove(ns)
    (RECORD_DIR / f"{ns}.json").unlink(missing_ok=True)
    shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)  # the DNS answers' hosts file


def save_record(record: MirrorRecord) -> None:
    RECORD_DIR.mkdir(parents=True, exist_ok=True)
    (RECORD_DIR / f"{record.netns}.json").write_text(json.dumps(asdict(record)))


def existing_mirrors() -> list[MirrorRecord]:
    """Mirrors left by an earlier agent: namespaces with our prefix and a record."""
    from pyroute2 import netns

    records = []
    for ns in netns.listnetns():
        if not ns.startswith(NETNS_PREFIX):
            continue
        path = RECORD_DIR / f"{ns}.json"
        try:
            records.append(MirrorRecord(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            LOG.warning("mirror namespace %s has no usable record; removing it", ns)
            netns.remove(ns)
    return records
