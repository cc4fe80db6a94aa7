"""Integration tests run real OVS, Mininet and the controller.

They need root and Open vSwitch. Locally they skip without them; under
``CI=true`` they fail instead, so a CI machine without OVS can never look green.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import Any

import pytest

from lab.network import Lab
from lab.ovs import LabError, bridges, ensure_ovs


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "integration tests need root"
    for tool in ("ovs-vsctl", "mnexec", "iperf3", "ethtool"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (run 'make setup')"
    try:
        ensure_ovs()
    except LabError as exc:
        return str(exc)
    return None


@pytest.fixture(autouse=True)
def _require_lab():
    reason = _unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    before = set(bridges())
    yield
    left = set(bridges()) - before
    assert not left, f"test left bridges behind: {sorted(left)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can see a failure."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


class LabTest:
    """Base class: a test class declares its topology and config, Faucet-style."""

    TOPO = "ring,4"
    CONFIG: dict[str, Any] | None = None

    @pytest.fixture()
    def lab(self, request):
        with Lab(self.TOPO, config=self.CONFIG) as lab:
            yield lab
            report = getattr(request.node, "report_call", None)
            if report is not None and report.failed:
                # The lab's work directory goes with it: keep the logs in the report.
                print(f"--- controller log ---\n{lab.controller.log_tail(80)}")
                if lab.agent is not None:
                    print(f"--- agent log ---\n{lab.agent.log_tail(80)}")


def our_cookies(switch: str) -> set[int]:
    """Cookies of shadownet's flows on a switch, read back with ovs-ofctl."""
    out = subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", switch,
         "cookie=0x5348000000000000/0xffff000000000000"],
        capture_output=True, text=True, check=True,
    ).stdout
    cookies = set()
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("cookie="):
            cookies.add(int(line.split(",")[0].split("=")[1], 16))
    return cookies


def wait_for(predicate, timeout: float = 30.0, step: float = 0.3):
    """Poll until ``predicate()`` is truthy; returns its last value (no timed asserts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()
