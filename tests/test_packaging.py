"""Packaging facts other tools rely on: one version source, the license, typing marker, extras."""

from __future__ import annotations

import tomllib
from pathlib import Path

from click.testing import CliRunner

import sfa
from sfa.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_version_has_one_source() -> None:
    assert "version" not in PROJECT["project"] and "version" in PROJECT["project"]["dynamic"]
    assert PROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "sfa.__version__"}
    done = CliRunner().invoke(main, ["--version"])
    assert done.exit_code == 0 and sfa.__version__ in done.output


def test_license_file_matches_the_metadata() -> None:
    assert PROJECT["project"]["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_the_package_ships_its_typing_marker_and_schemas() -> None:
    assert (ROOT / "sfa" / "py.typed").is_file()
    data = PROJECT["tool"]["setuptools"]["package-data"]
    assert "py.typed" in data["sfa"] and "schemas/*.xsd" in data["sfa.rspecs"]


def test_geni_lib_is_an_interop_extra_not_a_dev_tool() -> None:
    extras = PROJECT["project"]["optional-dependencies"]
    assert any(req.startswith("geni-lib") for req in extras["interop"])
    assert not any(req.startswith("geni-lib") for req in extras["dev"])
