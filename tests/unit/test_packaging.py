"""Setup files: the Vagrantfile validates, the console scripts exist, CI runs make test."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_vagrantfile_validates():
    if shutil.which("vagrant") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("vagrant is not installed (make setup installs it)")
        pytest.skip("vagrant not installed")
    result = subprocess.run(
        ["vagrant", "validate", "--ignore-provider"], cwd=ROOT / "vagrant",
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_vagrant_provisions_with_the_setup_script():
    text = (ROOT / "vagrant" / "Vagrantfile").read_text()
    assert 'path: "provision.sh"' in text and "bookworm" in text
    assert "vagrant/provision.sh" in (ROOT / "Makefile").read_text()


def test_provision_script_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(ROOT / "vagrant" / "provision.sh")]).returncode == 0


def test_ci_runs_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_console_scripts_installed():
    import sys

    bindir = Path(sys.executable).parent
    for name in ("shadownet", "shadownet-manager"):
        assert (bindir / name).exists(), name


def test_shadownet_cli_bad_topo_is_one_line():
    import sys

    result = subprocess.run(
        [str(Path(sys.executable).parent / "shadownet"), "lab", "run", "pingall",
         "--topo", "ring,two"], capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("shadownet: error: --topo 'ring,two'")
