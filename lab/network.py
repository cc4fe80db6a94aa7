"""``Lab``: a controller process plus a Mininet topology on the userspace datapath.

Used by ``shadownet lab run`` and by the integration tests. Everything it
creates (controller, bridges, host processes, veths) is removed on exit,
including when a step fails or the run is interrupted.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from lab.controller_process import AgentProcess, ControllerProcess
from lab.ovs import LabError, delete_bridges, delete_links, ensure_ovs, require_root

LOG = logging.getLogger(__name__)

PROBE_IF, PROBE_PEER, PROBE_IP = "snprobe0", "snprobe1", "10.0.0.250"


class Lab:
    """Context manager: ``with Lab("ring,6") as lab: lab.net.pingAll()``."""

    def __init__(
        self,
        topo_spec: str,
        *,
        config: dict[str, Any] | None = None,
        workdir: Path | None = None,
        discovery_timeout: float | None = None,
        hub: str | None = None,
        tenants: dict[str, str] | None = None,
        probe_port: bool = False,
    ) -> None:
        from topologies.registry import build_topo

        self.topo, self.info = build_topo(topo_spec)
        self.spec = topo_spec
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="shadownet-lab-"))
        self.config = config
        self.hub = hub
        self.discovery_timeout = discovery_timeout or 30 + 1.5 * self.info.switches
        self.tenants = tenants
        self.probe_port = probe_port
        self._controller: ControllerProcess | None = None
        self.agent: AgentProcess | None = None
        self.net: Any = None

    # --- lifecycle --------------------------------------------------------------
    def __enter__(self) -> Lab:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        require_root()
        ensure_ovs()
        if shutil.which("mnexec") is None:
            raise LabError("Mininet's mnexec is missing (run 'make setup')")
        import yaml

        admin_token = self._make_tokens()
        config = dict(self.config or {})
        config["rest"] = {**config.get("rest", {}), "tokens_file": str(self.tokens_file)}
        config_file = self.workdir / "shadownet.yaml"
        config_file.write_text(yaml.safe_dump(config))
        self._controller = ControllerProcess(self.workdir, config_file=config_file, hub=self.hub,
                                            token=admin_token)
        self.controller.start()
        self._start_mininet()
        if self.probe_port:
            self._add_probe_port()
        self.wait_for_discovery()

    @property
    def controller(self) -> ControllerProcess:
        """The lab's controller (started by :meth:`start`)."""
        if self._controller is None:
            raise LabError("the lab is not started: no controller yet")
        return self._controller

    @property
    def tokens_file(self) -> Path:
        return self.workdir / "controller-tokens.yaml"

    @property
    def agent_token_file(self) -> Path:
        return self.workdir / "agent.token"

    def _make_tokens(self) -> str:
        """The lab's controller tokens: an admin one for the lab itself, an agent one.

        Returns the admin token; the agent's goes to ``agent_token_file`` (mode 0600).
        """
        from shadownet.access import ADMIN, AGENT, add_token

        self.tokens_file.unlink(missing_ok=True)
        admin = add_token(self.tokens_file, "lab", ADMIN)
        agent = add_token(self.tokens_file, "lab-agent", AGENT)
        fd = os.open(self.agent_token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(agent + "\n")
        return admin

    def _start_mininet(self) -> None:
        from mininet.log import setLogLevel
        from mininet.net import Mininet
        from mininet.node import OVSSwitch

        setLogLevel("warning")
        switch = partial(OVSSwitch, datapath="user", protocols="OpenFlow13", failMode="secure")
        self.net = Mininet(
            topo=self.topo, switch=switch, controller=None, autoSetMacs=True,
            autoStaticArp=False, waitConnected=False,
        )
        self.net.addController(
            "c0", controller=_remote_controller_class(), ip="127.0.0.1",
            port=self.controller.ofp_port,
        )
        self.net.start()
        # The userspace datapath drops TCP with bad (offloaded) checksums.
        for host in self.net.hosts:
            for intf in host.intfList():
                host.cmd(f"ethtool -K {intf.name} tx off >/dev/null 2>&1")

    def stop(self) -> None:
        """Tear down in reverse order; each step runs even if an earlier one failed."""
        switch_names = list(self.topo.switches()) if self.topo is not None else []
        if self.agent is not None:
            self.agent.stop()
            self.agent = None
        self._remove_mirrors()
        if self.probe_port:
            subprocess.run(["ip", "link", "del", PROBE_IF], capture_output=True, check=False)
        if self.net is not None:
            self._kill_host_processes()
            try:
                self.net.stop()
            except Exception:  # noqa: BLE001 - keep tearing down
                LOG.exception("mininet stop failed")
            self.net = None
        try:
            delete_bridges(switch_names)
            delete_links(tuple(f"{s}-" for s in switch_names))
        except Exception:  # noqa: BLE001
            LOG.exception("bridge cleanup failed")
        if self._controller is not None:
            self._controller.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _kill_host_processes(self) -> None:
        """Kill whatever still runs in a host's namespace (daemons detach from its shell).

        Mininet only stops each host's shell; a server started with ``&`` or ``-D``
        would otherwise outlive the lab and keep its namespace alive.
        """
        namespaces = set()
        for host in self.net.hosts:
            try:
                namespaces.add(os.stat(f"/proc/{host.pid}/ns/net").st_ino)
            except (OSError, TypeError):
                continue
        namespaces.discard(os.stat("/proc/self/ns/net").st_ino)  # never the root's
        shells = {host.pid for host in self.net.hosts}
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in shells:
                continue
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino in namespaces:
                    os.kill(int(entry), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                continue

    # --- the controller's way into the lab ------------------------------------------
    def _add_probe_port(self) -> None:
        """Plug this host into the first switch, as a management network would.

        The controller's Flow Monitor probes service nodes from this host; the
        route covers only the lab's hosts (10.0.0.0/24), never more.
        """
        first = sorted(self.topo.switches(), key=lambda s: int(s[1:]))[0]
        for cmd in (
            ["ip", "link", "add", PROBE_IF, "type", "veth", "peer", "name", PROBE_PEER],
            ["ip", "addr", "add", f"{PROBE_IP}/32", "dev", PROBE_IF],
            ["ip", "link", "set", PROBE_IF, "up"],
            ["ip", "link", "set", PROBE_PEER, "up"],
            ["ip", "route", "add", "10.0.0.0/24", "dev", PROBE_IF, "src", PROBE_IP],
            ["ovs-vsctl", "add-port", first, PROBE_PEER],
        ):
            subprocess.run(cmd, check=True, capture_output=True)
        for intf in (PROBE_IF, PROBE_PEER):
            subprocess.run(["ethtool", "-K", intf, "tx", "off"], capture_output=True)

    # --- containers and mirrors -----------------------------------------------------
    def mark_containers(self) -> None:
        """Label each host's bridge port as ovs-docker does, so the agent sees containers."""
        import subprocess

        for host in self.net.hosts:
            intf = host.defaultIntf()
            port = intf.link.intf2 if intf.link.intf1 is intf else intf.link.intf1
            tenant = (self.tenants or {}).get(host.name, "default")
            subprocess.run(
                ["ovs-vsctl", "set", "Interface", port.name,
                 f"external_ids:container_id={host.name}",
                 f"external_ids:attached-mac={host.MAC()}",
                 f"external_ids:container_ip={host.IP()}/{intf.prefixLen}",
                 f"external_ids:tenant={tenant}"],
                check=True, capture_output=True,
            )

    def start_agent(self, tokens: dict[str, Any] | None = None, rules: dict[str, Any] | None = None,
                    args: list[str] | None = None) -> AgentProcess:
        """Start the mirroring agent against this lab's controller (``args``: extra flags)."""
        import yaml

        self.mark_containers()
        paths: dict[str, Path | None] = {"tokens": None, "rules": None}
        for name, data in (("tokens", tokens), ("rules", rules)):
            if data is not None:
                path = paths[name] = self.workdir / f"{name}.yaml"
                path.write_text(yaml.safe_dump(data))
        self.agent = AgentProcess(self.workdir, self.controller.base_url, tokens=paths["tokens"],
                                  rules=paths["rules"], args=args,
                                  controller_token_file=self.agent_token_file)
        self.agent.start()
        return self.agent

    def wait_for_mirrors(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        mirrors: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            mirrors = self.controller.get("/api/mirrors")
            if len(mirrors) >= count:
                return mirrors
            time.sleep(0.3)
        raise LabError(f"only {len(mirrors)} of {count} mirrors registered:\n"
                       f"{self.agent.log_tail() if self.agent else ''}")

    def stop_agent(self) -> None:
        """Stop the agent and remove every mirror it made."""
        if self.agent is not None:
            self.agent.stop()
            self.agent = None
        self._remove_mirrors()

    def _remove_mirrors(self) -> None:
        try:
            from mirror import lifecycle

            for host in self.topo.hosts():
                lifecycle.destroy(host)
        except Exception:  # noqa: BLE001 - keep tearing down
            LOG.exception("mirror cleanup failed")

    # --- helpers ------------------------------------------------------------------
    def wait_for_discovery(self) -> None:
        """Wait until every switch is connected and LLDP has found every link."""
        deadline = time.monotonic() + self.discovery_timeout
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            health = self.controller.get("/api/health")
            if (health["switches"] >= self.info.switches
                    and health["links"] >= self.info.switch_links):
                return
            time.sleep(0.5)
        raise LabError(
            f"topology discovery incomplete after {self.discovery_timeout:.0f}s: "
            f"{health.get('switches')}/{self.info.switches} switches, "
            f"{health.get('links')}/{self.info.switch_links} links"
        )

    def restart_controller(self) -> None:
        self.controller.stop()
        self.controller.start()

    def host_pairs(self) -> int:
        n = len(self.net.hosts)
        return n * (n - 1)


def _remote_controller_class() -> type:
    from mininet.node import RemoteController

    class QuietRemoteController(RemoteController):
        """Mininet probes the port with telnet and can choke on the OpenFlow HELLO it
        gets back (a UnicodeDecodeError); the lab already knows the controller is up."""

        def checkListening(self) -> None:
            return None

    return QuietRemoteController

