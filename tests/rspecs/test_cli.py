"""`sfa rspec show` and `sfa rspec validate`."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sfa.cli.rspec import rspec

EXOGENI = ("rspecs/ad/GENI-NSF_geni-portal__portal__www__common__map__"
           "rspec-exogeni-net-bbnvmsite.xml")
GCF_REQUEST = "rspecs/request/GENI-NSF_geni-tools__src__gcf__geni__am__amapi2-request.xml"


def test_show_summary(samples_dir: Path) -> None:
    result = CliRunner().invoke(rspec, ["show", str(samples_dir / EXOGENI)])
    assert result.exit_code == 0, result.output
    assert "advertisement" in result.output
    assert "nodes:      3" in result.output and "links:      6" in result.output
    assert "urn:publicid:IDN+exogeni.net:bbnvmsite+authority+am        2" in result.output


def test_show_json(samples_dir: Path) -> None:
    result = CliRunner().invoke(rspec, ["show", "--json", str(samples_dir / EXOGENI)])
    data = json.loads(result.output)
    assert data["type"] == "advertisement" and len(data["nodes"]) == 3


def test_show_refuses_a_non_rspec(tmp_path: Path) -> None:
    bad = tmp_path / "x.xml"
    bad.write_text("<credential/>")
    result = CliRunner().invoke(rspec, ["show", str(bad)])
    assert result.exit_code == 1 and "BADARGS" in result.output


def test_validate(samples_dir: Path, schemas_dir: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(rspec, ["validate", "--schemas", str(schemas_dir),
                                str(samples_dir / EXOGENI)])
    assert bad.exit_code == 1 and ":90: " in bad.output
    good = samples_dir / GCF_REQUEST
    ok = runner.invoke(rspec, ["validate", "--schemas", str(schemas_dir), str(good)])
    assert ok.exit_code == 0 and "valid" in ok.output
