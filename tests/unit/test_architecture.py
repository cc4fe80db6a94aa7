"""What each package may import: the layers, checked on the source (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# package -> top-level modules it must never import
FORBIDDEN = {
    "predictive": {"controller", "webui", "mirror", "lab", "os_ken", "mininet"},  # a pure library
    "webui": {"controller", "mirror", "lab", "os_ken", "mininet"},  # talks through CoreAPI
    "mirror": {"controller", "webui", "lab", "os_ken", "mininet"},  # the per-host agent
    "shadownet": {"webui", "os_ken", "mininet"},  # the CLI and what the packages share
    "topologies": {"controller", "webui", "mirror", "lab", "os_ken"},
}
# The umbrella CLI registers the packages' sub-commands, lazily, inside a function.
ALLOWED_LAZY = {("shadownet/cli.py", "lab"), ("shadownet/cli.py", "mirror"),
                ("shadownet/cli.py", "predictive")}


def imported(path: Path) -> list[tuple[str, bool]]:
    """(top-level module, imported at module level) for every import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name.split(".")[0], id(node) in top_level) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module.split(".")[0], id(node) in top_level))
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_only_what_their_layer_allows(package):
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        for module, _ in imported(path):
            if module in FORBIDDEN[package] and (rel, module) not in ALLOWED_LAZY:
                bad.append(f"{rel} imports {module}")
    assert not bad, "\n".join(bad)
