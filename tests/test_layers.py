"""The layers of DESIGN.md hold (import-linter, contracts in pyproject.toml), and the contracts
would catch each import that once broke them: injected into a copy of the tree, every one is
reported."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# (module file, import added to it, the contract that must break)
OFFENDING = [
    ("sfa/nodemanager/manager.py", "from twisted.internet import reactor",
     "logic-without-transport"),
    ("sfa/nodemanager/manager.py", "from sfa.server import nm_api", "layers"),
    ("sfa/aggregate/nm_driver.py", "from sfa.nodemanager import manager", "layers"),
    ("sfa/slicemgr/manager.py", "from sfa.aggregate import api_v3", "layers"),
    ("sfa/server/sm_api.py", "from sfa.client import session", "layers"),
    ("sfa/trust/wire_credentials.py", "import xmlrpc.client", "logic-without-transport"),
    ("sfa/registry/api.py", "from sfa.deploy import config", "layers"),
    ("sfa/deploy/layout.py", "from sfa.server import listener", "layers"),
    ("sfa/deploy/config.py", "from twisted.internet import defer", "twisted-at-the-edge"),
    ("sfa/rspecs/reader.py", "from sfa.trust import gid", "layers"),
    ("sfa/xrn.py", "from sfa.trust import gid", "layers"),
]


def lint_imports(where: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the tree at `where` (its pyproject.toml and sfa/)."""
    env = {**os.environ, "PYTHONPATH": str(where)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], check=False,
                          cwd=where, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_layers_hold() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    where = tmp_path_factory.mktemp("layers")
    shutil.copytree(ROOT / "sfa", where / "sfa",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", where / "pyproject.toml")
    yield where


@pytest.mark.parametrize(("module", "line", "contract"), OFFENDING,
                         ids=[f"{m.removeprefix('sfa/')}:{line.split()[1]}"
                              for m, line, _ in OFFENDING])
def test_each_known_offence_breaks_its_contract(tree_copy: Path, module: str, line: str,
                                                contract: str) -> None:
    target = tree_copy / module
    original = target.read_text()
    target.write_text(original + f"\n{line}  # injected by tests/test_layers.py\n")
    try:
        done = lint_imports(tree_copy)
    finally:
        target.write_text(original)
    assert done.returncode != 0, done.stdout
    name = _contract_name(contract)
    assert f"{name} BROKEN" in done.stdout, done.stdout
    importer = module.removesuffix(".py").replace("/", ".")
    imported = line.split()[1]
    if not imported.startswith("sfa."):
        imported = imported.split(".")[0]  # import-linter names external packages only
    assert f"{importer} -> {imported}" in done.stdout, done.stdout


def _contract_name(contract_id: str) -> str:
    import tomllib  # noqa: PLC0415

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for contract in config["tool"]["importlinter"]["contracts"]:
        if contract["id"] == contract_id:
            return str(contract["name"])
    raise AssertionError(f"no contract {contract_id!r} in pyproject.toml")
