"""sfi against plc's slice manager, as against any aggregate: one slice over plc and ple."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sfa.client.cli import main as sfi_main
from sfa.trust.keys import private_key_to_pem
from sfa.xrn import hrn_to_urn
from tests.federation.conftest import Federation
from tests.federation.test_slices import request


def sfi(directory: Path, *args: str) -> dict:
    result = CliRunner().invoke(sfi_main, ["--dir", str(directory), "--json", *args],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_sfi_creates_renews_and_deletes_a_slice_through_the_slice_manager(
        federation: Federation, tmp_path: Path) -> None:
    fed = federation
    key_file = tmp_path / "alice.pkey"
    key_file.write_bytes(private_key_to_pem(fed.alice.key))
    home = tmp_path / "sfi"
    sfi(home, "config", "--registry", fed.plc.registry.url, "--user", "plc.alice",
        "--key", str(key_file), "--trusted-root", str(fed.plc.root_file),
        "--trusted-root", str(fed.ple.root_file), "--slicemgr", fed.sm.url)
    rspec = tmp_path / "request.xml"
    rspec.write_text(request(fed, 2, 1))
    slice_urn = hrn_to_urn("plc.s7", "slice")
    sfi(home, "createslice", "plc.s7", str(rspec))
    assert len(fed.plc.slivers(slice_urn)) == 2 and len(fed.ple.slivers(slice_urn)) == 1
    sfi(home, "renewslice", "plc.s7", "+2d")
    sfi(home, "deleteslice", "plc.s7")
    assert fed.plc.slivers(slice_urn) == [] and fed.ple.slivers(slice_urn) == []
